//! Reading a file that holds a secret (a master key, a token, a tenant's
//! secrets) so that what is checked is what is read: the file is opened once,
//! without following a symbolic link, and its owner and mode are taken from
//! the open descriptor (`fstat`), not from the path. A path checked and then
//! reopened could be swapped in between; a symlink could point anywhere; and
//! root, who may read every file, would otherwise accept another user's 0600
//! file as its own.

use std::fmt;
use std::io::Read;
use std::path::Path;

use zeroize::Zeroizing;

/// Why a secret file was refused. Names the file and the rule, never content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileError {
    Unreadable {
        reason: String,
    },
    Symlink,
    NotRegular,
    /// Owned by `owner`, not by the user running the command (`ours`).
    Owner {
        owner: u32,
        ours: u32,
    },
    /// Group or others may read or write it (`mode`, octal).
    Mode {
        mode: u32,
    },
    /// Group or others may write it (`mode`, octal).
    Writable {
        mode: u32,
    },
}

/// What a file must satisfy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rules {
    /// A secret: no symlink, owned by this user, no access for group or others.
    Private,
    /// Configuration (`.env`): owned by this user or root, writable by no one
    /// else; symlinks are followed (the target's owner is checked).
    Owned,
}

/// A refused file: `what` ("the master key file", "VIBEE_TOKEN_FILE") and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub what: String,
    pub path: String,
    pub error: FileError,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, path) = (&self.what, &self.path);
        match &self.error {
            FileError::Unreadable { reason } => write!(f, "cannot read {what} {path}: {reason}"),
            FileError::Symlink => write!(
                f,
                "{what} {path} is a symbolic link; name the file itself (symlinks are refused so \
                 the file checked is the file read)"
            ),
            FileError::NotRegular => write!(f, "{what} {path} is not a regular file"),
            FileError::Owner { owner, ours } => write!(
                f,
                "{what} {path} is owned by uid {owner}, not by the user running this command \
                 (uid {ours}); run `chown {ours} {path}` if it is yours"
            ),
            FileError::Mode { mode } => write!(
                f,
                "{what} {path} is readable by group or others (mode {mode:o}); run \
                 `chmod 600 {path}` so only its owner can read it"
            ),
            FileError::Writable { mode } => write!(
                f,
                "{what} {path} is writable by group or others (mode {mode:o}); run \
                 `chmod go-w {path}`"
            ),
        }
    }
}

impl std::error::Error for Refused {}

/// The contents of `path`, checked by `rules` on the open descriptor.
#[cfg(unix)]
pub fn read(path: &Path, what: &str, rules: Rules) -> Result<Zeroizing<Vec<u8>>, Refused> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let refuse = |error| Refused {
        what: what.to_owned(),
        path: path.display().to_string(),
        error,
    };
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    if rules == Rules::Private {
        options.custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            refuse(FileError::Symlink)
        } else {
            refuse(FileError::Unreadable {
                reason: e.kind().to_string(),
            })
        }
    })?;
    let meta = file.metadata().map_err(|e| {
        refuse(FileError::Unreadable {
            reason: e.kind().to_string(),
        })
    })?;
    if !meta.file_type().is_file() {
        return Err(refuse(FileError::NotRegular));
    }
    // SAFETY: geteuid takes nothing and cannot fail.
    let ours = unsafe { libc::geteuid() };
    let owner = meta.uid();
    let mode = meta.mode() & 0o777;
    match rules {
        Rules::Private => {
            if owner != ours {
                return Err(refuse(FileError::Owner { owner, ours }));
            }
            if mode & 0o077 != 0 {
                return Err(refuse(FileError::Mode { mode }));
            }
        }
        Rules::Owned => {
            if owner != ours && owner != 0 {
                return Err(refuse(FileError::Owner { owner, ours }));
            }
            if mode & 0o022 != 0 {
                return Err(refuse(FileError::Writable { mode }));
            }
        }
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(meta.len() as usize));
    file.read_to_end(&mut bytes).map_err(|e| {
        refuse(FileError::Unreadable {
            reason: e.kind().to_string(),
        })
    })?;
    Ok(bytes)
}

#[cfg(not(unix))]
pub fn read(path: &Path, what: &str, _rules: Rules) -> Result<Zeroizing<Vec<u8>>, Refused> {
    std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|e| Refused {
            what: what.to_owned(),
            path: path.display().to_string(),
            error: FileError::Unreadable {
                reason: e.kind().to_string(),
            },
        })
}
