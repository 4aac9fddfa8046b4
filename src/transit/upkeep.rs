//! The background task of a serving process with a transit master key.

use std::sync::Arc;
use std::time::Duration;

use super::{Due, Transit};

/// Keeps the token fresh and the engine's state known: every second it
/// checks what the token needs, every `probe_every` it asks `sys/health`.
pub fn spawn_upkeep(transit: Arc<Transit>, probe_every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut since_probe = Duration::ZERO;
        // After a failed refresh, wait before the next (5 s, doubling to 60 s).
        let mut pause = Duration::ZERO;
        let mut paused = Duration::ZERO;
        loop {
            tick.tick().await;
            since_probe += Duration::from_secs(1);
            paused += Duration::from_secs(1);
            let due = if paused >= pause {
                transit.due()
            } else {
                Due::Nothing
            };
            let probe = since_probe >= probe_every;
            if due == Due::Nothing && !probe {
                continue;
            }
            if probe {
                since_probe = Duration::ZERO;
            }
            let t = transit.clone();
            let outcome = tokio::task::spawn_blocking(move || {
                let r = t.refresh(due);
                if probe {
                    t.probe();
                }
                r
            })
            .await;
            match outcome {
                Ok(Err(e)) => {
                    pause = (pause * 2).clamp(Duration::from_secs(5), Duration::from_secs(60));
                    paused = Duration::ZERO;
                    tracing::error!(
                        error = %e,
                        retry_in_secs = pause.as_secs(),
                        "cannot keep the engine token fresh"
                    );
                }
                Ok(Ok(())) if due != Due::Nothing => pause = Duration::ZERO,
                _ => {}
            }
        }
    })
}
