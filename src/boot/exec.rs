//! `--exec`: the loader replaces itself with the agent, so credentials reach
//! it through memory only: the environment for one tenant, a sealed memory
//! file (memfd) for many, whose descriptor number is in `VIBEE_SESSIONS_FD`.
//!
//! A memfd rather than a pipe: ten thousand tenants are megabytes of JSON,
//! far past a pipe's 64 KiB buffer, and after `exec` no thread of ours is
//! left to feed a pipe. The memfd holds any size, never touches a disk, is
//! sealed against writes, and vanishes when the agent closes it.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use super::{BootError, TenantConfig};

/// Never handed to the agent: what unlocks the store, and our own token.
pub const STRIPPED: [&str; 9] = [
    "MASTER_KEY",
    "MASTER_KEY_FILE",
    "MASTER_PASSPHRASE",
    "MASTER_KEY_PREVIOUS",
    "MASTER_KEY_PREVIOUS_FILE",
    "DATABASE_URL",
    "VIBEE_TOKEN",
    "VIBEE_TOKEN_FILE",
    "VIBEE_API_URL",
];

pub(crate) fn command(argv: &[OsString]) -> Result<Command, BootError> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| BootError::Config("--exec needs a command after --".into()))?;
    let mut cmd = Command::new(program);
    cmd.args(args);
    for name in STRIPPED {
        cmd.env_remove(name);
    }
    Ok(cmd)
}

fn exec_failed(argv: &[OsString], e: std::io::Error) -> BootError {
    BootError::Failure(format!("cannot start {}: {e}", argv[0].to_string_lossy()))
}

/// The agent's command with one tenant's variables.
pub fn command_one(argv: &[OsString], tenant: &TenantConfig) -> Result<Command, BootError> {
    let mut cmd = command(argv)?;
    cmd.env_remove("VIBEE_SESSIONS_FD");
    cmd.envs(tenant.env_vars());
    Ok(cmd)
}

/// Runs the agent with one tenant's variables. Returns only on failure.
pub fn exec_one(argv: &[OsString], tenant: &TenantConfig) -> BootError {
    match command_one(argv, tenant) {
        Ok(mut cmd) => exec_failed(argv, cmd.exec()),
        Err(e) => e,
    }
}

/// A memory file to write the tenants' JSON into, inherited across `exec`.
pub struct SessionsFile {
    file: File,
}

impl SessionsFile {
    pub fn create() -> Result<Self, BootError> {
        // No MFD_CLOEXEC: the agent is meant to inherit it.
        // SAFETY: the name is a NUL-terminated literal that outlives the call;
        // the flags are plain integers.
        let fd = unsafe { libc::memfd_create(c"vibee-sessions".as_ptr(), libc::MFD_ALLOW_SEALING) };
        if fd < 0 {
            return Err(BootError::Failure(format!(
                "cannot create the in-memory sessions file (memfd_create): {}",
                std::io::Error::last_os_error()
            )));
        }
        // SAFETY: `fd` was just returned by memfd_create and is owned by nobody else.
        let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        Ok(Self { file })
    }

    pub fn writer(&mut self) -> &mut File {
        &mut self.file
    }

    /// Seals the contents (the agent reads exactly what was written) and
    /// rewinds, then runs the agent. Returns only on failure.
    pub fn exec(self, argv: &[OsString], count: usize) -> BootError {
        match self.into_command(argv, count) {
            Ok((mut cmd, _file)) => exec_failed(argv, cmd.exec()),
            Err(e) => e,
        }
    }

    /// Seals and rewinds the file and builds the agent's command; the file
    /// must stay open until the command is spawned (it is inherited).
    pub fn into_command(
        mut self,
        argv: &[OsString],
        count: usize,
    ) -> Result<(Command, File), BootError> {
        let seals =
            libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE | libc::F_SEAL_SEAL;
        // SAFETY: fcntl on a descriptor we own, with integer arguments.
        if unsafe { libc::fcntl(self.file.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
            return Err(BootError::Failure(format!(
                "cannot seal the in-memory sessions file: {}",
                std::io::Error::last_os_error()
            )));
        }
        self.file.seek(SeekFrom::Start(0)).map_err(|e| {
            BootError::Failure(format!("cannot rewind the in-memory sessions file: {e}"))
        })?;
        let mut cmd = command(argv)?;
        // One tenant's variables in a many-tenant agent's environment would
        // only be mistaken for a default tenant.
        for name in [
            "TELEGRAM_SESSION_ID",
            "TELEGRAM_API_ID",
            "TELEGRAM_API_HASH",
            "TELEGRAM_PHONE",
            "TELEGRAM_SESSION_DATA",
        ] {
            cmd.env_remove(name);
        }
        cmd.env("VIBEE_SESSIONS_FD", self.file.as_raw_fd().to_string());
        cmd.env("VIBEE_SESSIONS_COUNT", count.to_string());
        Ok((cmd, self.file))
    }
}
