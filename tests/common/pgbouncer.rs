//! A real PgBouncer (Debian's package) in transaction mode in front of the
//! test PostgreSQL, started with scripts/lib/pgbouncer.sh (which installs it
//! when missing) and stopped on drop.

use std::process::Command;

use super::admin_url;

pub struct PgBouncer {
    pub port: u16,
    pid: u32,
    dir: std::path::PathBuf,
}

impl PgBouncer {
    /// `users`: the roles besides postgres that may log in through it.
    pub fn start(users: &[&str]) -> Self {
        let root = env!("CARGO_MANIFEST_DIR");
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("pgbouncer-{}", uuid::Uuid::new_v4().simple()));
        let config: tokio_postgres::Config = admin_url()
            .parse()
            .expect("TEST_DATABASE_URL parses (without verify-* TLS options)");
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "127.0.0.1".to_owned(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let out = Command::new("bash")
            .arg("-c")
            .arg(
                r#"set -e
                source "$1/scripts/lib/server.sh"
                source "$1/scripts/lib/pgbouncer.sh"
                root=$1 dir=$2 host=$3 port=$4
                shift 4
                pgbouncer_start "$dir" "$host" "$port" "$@" >&2
                echo "$pgbouncer_port $pgbouncer_pid""#,
            )
            .arg("pgbouncer")
            .arg(root)
            .arg(&dir)
            .arg(&host)
            .arg(port.to_string())
            .args(users)
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "cannot start pgbouncer: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let mut words = text.split_whitespace();
        let port = words.next().unwrap().parse().unwrap();
        let pid = words.next().unwrap().parse().unwrap();
        Self { port, pid, dir }
    }

    /// `url` (a postgres:// URL) through this bouncer: same user and
    /// database, its host and port replaced.
    pub fn url(&self, url: &str) -> String {
        through(url, self.port)
    }
}

/// `url` with its host:port replaced by 127.0.0.1:`port`.
pub fn through(url: &str, port: u16) -> String {
    let scheme_end = url.find("://").unwrap() + 3;
    let rest = &url[scheme_end..];
    let host_start = rest.find('@').map_or(0, |i| i + 1);
    let host_end = rest[host_start..]
        .find(['/', '?'])
        .map_or(rest.len(), |i| host_start + i);
    format!(
        "{}{}127.0.0.1:{port}{}",
        &url[..scheme_end],
        &rest[..host_start],
        &rest[host_end..]
    )
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the daemon's own pid, read from its pid file.
        unsafe { libc::kill(self.pid as i32, libc::SIGTERM) };
        // Its config and log; it may still be closing the log for a moment.
        for _ in 0..20 {
            // SAFETY: signal 0 only asks whether the pid still exists.
            if unsafe { libc::kill(self.pid as i32, 0) } != 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
