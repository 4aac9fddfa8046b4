//! The agent as a child process: started so that it dies with the loader,
//! signalled, and its exit status read as a shell would.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus};

use tokio::signal::unix::{Signal, SignalKind, signal};

use super::BootError;

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
