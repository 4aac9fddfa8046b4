//! The agent as a child process: its command (tenants and their fences),
//! started so that it dies with the loader, signalled, and its exit status
//! read as a shell would.

use std::ffi::OsString;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus};

use tokio::signal::unix::{Signal, SignalKind, signal};

use zeroize::Zeroizing;

use super::exec::{self, SessionsFile};
use super::{BootError, TenantConfig};

/// Starts the agent. It gets SIGKILL when we die, however we die.
pub(super) fn spawn(mut cmd: Command) -> Result<Child, BootError> {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and calls only
    // async-signal-safe functions (prctl, getppid), allocating nothing.
    // PR_SET_PDEATHSIG fires when the *thread* that forked exits: every
    // spawn happens on the supervisor's one thread (a current-thread
    // runtime on the main thread), which lives as long as the process.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // We died between fork and prctl: nobody would kill this child.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    cmd.spawn()
        .map_err(|e| BootError::Failure(format!("cannot start the agent: {e}")))
}

pub(super) fn signal_child(child: &Child, sig: libc::c_int) {
    // SAFETY: kill with a pid we spawned and have not reaped yet.
    unsafe {
        libc::kill(child.id() as libc::pid_t, sig);
    }
}

/// A shell's view of a status: the code, or 128 + the signal.
pub fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

pub(super) struct Signals {
    pub(super) term: Signal,
    pub(super) int: Signal,
    pub(super) hup: Signal,
}

impl Signals {
    pub(super) fn new() -> Result<Self, BootError> {
        let make =
            |k| signal(k).map_err(|e| BootError::Failure(format!("cannot handle signals: {e}")));
        Ok(Self {
            term: make(SignalKind::terminate())?,
            int: make(SignalKind::interrupt())?,
            hup: make(SignalKind::hangup())?,
        })
    }
}

/// The agent's command for `tenants`, each with the fence of its lease: one
/// tenant in the environment, several as JSON on descriptor 3.
pub(super) fn agent_command(
    argv: &[OsString],
    holder: &str,
    tenants: &[TenantConfig],
    fence_of: impl Fn(&str) -> Option<i64>,
    one: bool,
) -> Result<(Command, Option<std::fs::File>), BootError> {
    if one {
        let t = &tenants[0];
        let mut cmd = exec::command_one(argv, t)?;
        let fence = fence_of(&t.session_id).unwrap_or_default();
        cmd.env("VIBEE_LEASE_HOLDER", holder)
            .env("VIBEE_LEASE_FENCE", fence.to_string());
        return Ok((cmd, None));
    }
    let mut file = SessionsFile::create()?;
    let w = file.writer();
    let mut write = |bytes: &[u8]| {
        w.write_all(bytes)
            .map_err(|e| BootError::Failure(format!("cannot write the sessions file: {e}")))
    };
    write(b"[")?;
    for (i, t) in tenants.iter().enumerate() {
        let mut v = t.to_json();
        v["lease_fence"] = fence_of(&t.session_id).into();
        let item = Zeroizing::new(serde_json::to_vec(&v).expect("JSON"));
        write(if i == 0 { b"\n" } else { b",\n" })?;
        write(&item)?;
    }
    write(b"\n]\n")?;
    let (mut cmd, file) = file.into_command(argv, tenants.len())?;
    // Descriptor 3 in the agent, as after an exec from a fresh process
    // (a shell can redirect only single-digit descriptors).
    let raw = file.as_raw_fd();
    // SAFETY: dup2 is async-signal-safe; it clears close-on-exec on the copy.
    unsafe {
        cmd.pre_exec(move || {
            if raw != 3 && libc::dup2(raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.env("VIBEE_SESSIONS_FD", "3")
        .env("VIBEE_LEASE_HOLDER", holder);
    Ok((cmd, Some(file)))
}
