//! How a rotation shows where it is: a progress bar on a terminal, structured
//! log lines (at most one a second) otherwise, so cron mail and journald get
//! something greppable instead of control characters.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where progress and notices go.
pub trait Progress: Send + Sync {
    /// A sweep starts with about `total` rows to move.
    fn start(&self, total: u64);
    fn advance(&self, rows: u64);
    /// A notice for the operator (waiting for a lock, resuming, ...).
    fn say(&self, message: &str);
    fn finish(&self);
}

/// The progress reporter that suits stderr: a bar on a terminal, log lines otherwise.
pub fn for_stderr() -> Box<dyn Progress> {
    if std::io::stderr().is_terminal() {
        Box::new(Bar::new())
    } else {
        Box::new(LogLines::default())
    }
}

pub struct Bar(ProgressBar);

impl Bar {
    fn new() -> Self {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} re-encrypting [{bar:40}] {pos}/{len} rows ({per_sec}, eta {eta})",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        Self(bar)
    }
}

impl Progress for Bar {
    fn start(&self, total: u64) {
        self.0.reset();
        self.0.set_length(total);
        self.0.set_position(0);
    }
    fn advance(&self, rows: u64) {
        self.0.inc(rows);
    }
    fn say(&self, message: &str) {
        self.0.suspend(|| eprintln!("{message}"));
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

#[derive(Default)]
pub struct LogLines(Mutex<LogState>);

#[derive(Default)]
struct LogState {
    total: u64,
    done: u64,
    started: Option<Instant>,
    last: Option<Instant>,
}

const LOG_EVERY: Duration = Duration::from_secs(1);

impl LogState {
    fn log(&self) {
        let secs = self.started.map_or(0.0, |s| s.elapsed().as_secs_f64());
        let rate = if secs > 0.0 {
            self.done as f64 / secs
        } else {
            0.0
        };
        tracing::info!(
            rows_done = self.done,
            rows_total = self.total,
            rows_per_sec = rate.round() as u64,
            "rotation progress"
        );
    }
}

impl Progress for LogLines {
    fn start(&self, total: u64) {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *s = LogState {
            total,
            started: Some(Instant::now()),
            ..LogState::default()
        };
        s.log();
    }
    fn advance(&self, rows: u64) {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        s.done += rows;
        if s.last.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
            s.last = Some(Instant::now());
            s.log();
        }
    }
    fn say(&self, message: &str) {
        tracing::info!("{message}");
    }
    fn finish(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).log();
    }
}
