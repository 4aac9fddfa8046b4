//! `vibee-sessions stats`: the figures of `GET /api/v1/stats`, for a terminal.

use crate::config::Env;
use crate::db::stats;

use super::{CliError, store};

pub async fn run(env: &dyn Env, as_json: bool) -> Result<(), CliError> {
    let mut conn = store::connect(env).await?;
    let s = stats::stats(&mut conn).await?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&s).expect("JSON"));
        return Ok(());
    }
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_else(|| "never".into())
    };
    let c = &s.sessions;
    println!(
        "sessions:         {} ({} active, {} inactive)",
        c.total, c.active, c.inactive
    );
    println!("  authorized:     {}", c.authorized);
    println!("  not authorized: {}", c.unauthorized);
    println!(
        "  leases:         {} held, {} free",
        s.leases.held, s.leases.free
    );
    println!("last seen:        {}", time(s.last_seen_at));
    println!("last activity:    {}", time(s.last_activity_at));
    println!("sessions per data key:");
    for k in &s.sessions_per_data_key {
        println!("  key {:>4}: {}", k.data_key_id, k.sessions);
    }
    if s.sessions_per_data_key.is_empty() {
        println!("  (none)");
    }
    Ok(())
}
