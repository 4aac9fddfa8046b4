//! Several hosts in `DATABASE_URL` (`host=a,b port=5432,5433`, or
//! `postgres://u@a:5432,b:5433/db`), tried one after the other as libpq does,
//! with `target_session_attrs` deciding which server is acceptable: with
//! `read-write`, a standby (or a primary made read-only) is passed over, so
//! after a failover new connections find the promoted standby by themselves.
//!
//! tokio-postgres can walk the hosts itself, but it reports only the last
//! host's error, names no host, and bounds only the TCP connect of each host
//! by `connect_timeout`. Here each host gets a single-host copy of the
//! configuration, so that:
//! * a failure names every host tried and why each was refused (never the
//!   password: [`ConnectError::without_password`]);
//! * `connect_timeout` bounds each host's whole attempt (TCP, TLS,
//!   authentication, the read-write check), as in libpq, so a host that
//!   accepts TCP and then hangs cannot keep the next one from being tried;
//! * the TLS server name is still each host's own `host` (tokio-postgres takes
//!   it from the single host of each copy), so `sslmode=verify-full` checks
//!   every host against its own name.

use std::fmt::Write as _;
use std::time::Duration;

use tokio_postgres::config::{Host, LoadBalanceHosts};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, Config, Connection, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{ConnectError, DatabaseTarget, is_certificate_error};

type TlsStream = <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream;

/// One host of the list: its single-host configuration and its name for messages.
pub(super) struct Endpoint {
    pub(super) config: Config,
    pub(super) label: String,
}

/// The host, hostaddr and port lists must line up, as libpq requires; checked
/// once, when `DATABASE_URL` is parsed, so a mistake stops the process at
/// start instead of at the first connection.
pub(super) fn check_host_lists(config: &Config) -> Result<(), ConnectError> {
    let (hosts, addrs, ports) = (
        config.get_hosts().len(),
        config.get_hostaddrs().len(),
        config.get_ports().len(),
    );
    if hosts > 0 && addrs > 0 && hosts != addrs {
        return Err(ConnectError::message(format!(
            "DATABASE_URL: {hosts} hosts but {addrs} hostaddrs (give one hostaddr per host, \
             or none)"
        )));
    }
    let n = hosts.max(addrs);
    if ports > 1 && ports != n {
        return Err(ConnectError::message(format!(
            "DATABASE_URL: {n} host(s) but {ports} ports (give one port for all hosts, \
             or one per host)"
        )));
    }
    Ok(())
}

/// Every host of `config`, each with a configuration naming it alone, in
/// the order to try them (`load_balance_hosts=random` shuffles it).
pub(super) fn endpoints(config: &Config) -> Result<Vec<Endpoint>, ConnectError> {
    check_host_lists(config)?;
    let hosts = config.get_hosts();
    let addrs = config.get_hostaddrs();
    let n = hosts.len().max(addrs.len());
    if n == 0 {
        return Err(ConnectError::message(
            "DATABASE_URL names no host (set host, or hostaddr)",
        ));
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let port = match config.get_ports() {
            [] => 5432,
            [one] => *one,
            many => many[i],
        };
        let mut single = without_hosts(config);
        let mut label = String::new();
        match hosts.get(i) {
            Some(Host::Tcp(name)) => {
                single.host(name);
                let _ = write!(label, "{}:{port}", bracketed(name));
            }
            Some(Host::Unix(path)) => {
                single.host_path(path);
                let _ = write!(label, "{} (port {port})", path.display());
            }
            None => {}
        }
        if let Some(addr) = addrs.get(i) {
            single.hostaddr(*addr);
            let addr_text = addr.to_string();
            if label.is_empty() {
                let _ = write!(label, "{}:{port}", bracketed(&addr_text));
            } else if !matches!(hosts.get(i), Some(Host::Tcp(name)) if *name == addr_text) {
                let _ = write!(label, " (hostaddr {addr})");
            }
        }
        single.port(port);
        out.push(Endpoint {
            config: single,
            label,
        });
    }
    if config.get_load_balance_hosts() == LoadBalanceHosts::Random {
        shuffle(&mut out);
    }
    Ok(out)
}

fn bracketed(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

fn shuffle<T>(items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let mut b = [0u8; 8];
        // A failed draw keeps the given order: only load spreading is lost.
        if getrandom::fill(&mut b).is_err() {
            return;
        }
        let j = (u64::from_le_bytes(b) % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

/// A copy of `config` without its hosts, hostaddrs and ports (tokio-postgres
/// has no way to remove them from a configuration). Every other setting is
/// carried over; `tests::single_host_copies_keep_every_setting` checks it
/// against `Config`'s equality.
pub(super) fn without_hosts(config: &Config) -> Config {
    let mut c = Config::new();
    if let Some(v) = config.get_user() {
        c.user(v);
    }
    if let Some(v) = config.get_password() {
        c.password(v);
    }
    if let Some(v) = config.get_dbname() {
        c.dbname(v);
    }
    if let Some(v) = config.get_options() {
        c.options(v);
    }
    if let Some(v) = config.get_application_name() {
        c.application_name(v);
    }
    if let Some(v) = config.get_connect_timeout() {
        c.connect_timeout(*v);
    }
    if let Some(v) = config.get_tcp_user_timeout() {
        c.tcp_user_timeout(*v);
    }
    if let Some(v) = config.get_keepalives_interval() {
        c.keepalives_interval(v);
    }
    if let Some(v) = config.get_keepalives_retries() {
        c.keepalives_retries(v);
    }
    c.ssl_mode(config.get_ssl_mode())
        .ssl_negotiation(config.get_ssl_negotiation())
        .keepalives(config.get_keepalives())
        .keepalives_idle(config.get_keepalives_idle())
        .target_session_attrs(config.get_target_session_attrs())
        .channel_binding(config.get_channel_binding())
        .load_balance_hosts(config.get_load_balance_hosts());
    c
}

impl DatabaseTarget {
    /// Bounds each host's connection attempt (TCP, TLS, authentication, the
    /// `target_session_attrs` check) when `DATABASE_URL` sets no
    /// `connect_timeout`, so a host that does not answer cannot keep the next
    /// one from being tried.
    pub fn default_connect_timeout(&mut self, timeout: Duration) {
        if self.config.get_connect_timeout().is_none() {
            self.config.connect_timeout(timeout);
        }
    }

    /// The per-host connection bound and the number of hosts: a connection
    /// may take up to their product before it succeeds or fails.
    pub fn connect_budget(&self) -> Option<Duration> {
        let hosts = self
            .config
            .get_hosts()
            .len()
            .max(self.config.get_hostaddrs().len())
            .max(1);
        self.config
            .get_connect_timeout()
            .map(|t| *t * u32::try_from(hosts).unwrap_or(u32::MAX))
    }

    /// Connects to the first acceptable host, in order; the error names each
    /// host tried and why it was refused.
    pub(super) async fn open(
        &self,
    ) -> Result<(Client, Connection<Socket, TlsStream>), ConnectError> {
        let endpoints = endpoints(&self.config)?;
        let limit = self.config.get_connect_timeout().copied();
        let mut failures = Vec::with_capacity(endpoints.len());
        let mut certificate = false;
        for endpoint in &endpoints {
            let attempt = endpoint.config.connect(self.tls.clone());
            let result = match limit {
                Some(limit) => match tokio::time::timeout(limit, attempt).await {
                    Ok(result) => result,
                    Err(_) => {
                        failures.push(format!(
                            "{}: no answer within connect_timeout ({} s)",
                            endpoint.label,
                            limit.as_secs_f64()
                        ));
                        continue;
                    }
                },
                None => attempt.await,
            };
            match result {
                Ok(connected) => return Ok(connected),
                Err(e) => {
                    certificate |= is_certificate_error(&e);
                    failures.push(ConnectError::new(&endpoint.label, &e).to_string());
                }
            }
        }
        Err(self.connect_failure(&failures, certificate))
    }

    fn connect_failure(&self, failures: &[String], certificate: bool) -> ConnectError {
        use tokio_postgres::config::TargetSessionAttrs;
        let mut context = String::from("cannot connect to PostgreSQL");
        if certificate {
            context.push_str(": server certificate verification failed");
        }
        let _ = write!(context, " (sslmode={}", self.sslmode.as_str());
        if let Some(path) = &self.rootcert {
            let _ = write!(context, ", sslrootcert={}", path.display());
        }
        match self.config.get_target_session_attrs() {
            TargetSessionAttrs::ReadWrite => context.push_str(", target_session_attrs=read-write"),
            TargetSessionAttrs::ReadOnly => context.push_str(", target_session_attrs=read-only"),
            _ => {}
        }
        context.push(')');
        if failures.len() > 1 {
            let _ = write!(context, "; none of the {} hosts was usable", failures.len());
        }
        ConnectError::message(format!("{context}: {}", failures.join("; ")))
            .without_password(self.config.get_password())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_host_copies_keep_every_setting() {
        let config: Config = "host=a,b,/run/pg hostaddr=10.0.0.1,10.0.0.2,10.0.0.3 \
             port=1,2,3 user=u password=secret-pw dbname=d options='-c x=1' \
             application_name=app sslmode=require sslnegotiation=direct connect_timeout=7 \
             tcp_user_timeout=9 keepalives=0 keepalives_idle=11 keepalives_interval=13 \
             keepalives_retries=15 target_session_attrs=read-write channel_binding=require \
             load_balance_hosts=random"
            .parse()
            .unwrap();
        let mut rebuilt = without_hosts(&config);
        rebuilt.host("a").host("b").host_path("/run/pg");
        for addr in config.get_hostaddrs() {
            rebuilt.hostaddr(*addr);
        }
        rebuilt.port(1).port(2).port(3);
        assert!(rebuilt == config, "a setting was lost in without_hosts");
    }

    #[test]
    fn each_host_gets_its_own_port_and_name() {
        let config: Config = "postgres://u:pw@db-a:5432,db-b:5433,[::1]:5434/d"
            .parse()
            .unwrap();
        let e = endpoints(&config).unwrap();
        let labels: Vec<&str> = e.iter().map(|e| e.label.as_str()).collect();
        assert_eq!(labels, ["db-a:5432", "db-b:5433", "[::1]:5434"]);
        for e in &e {
            assert_eq!(e.config.get_hosts().len(), 1);
            assert_eq!(e.config.get_ports().len(), 1);
            assert_eq!(e.config.get_password(), Some(&b"pw"[..]));
        }

        let config: Config = "host=a,b port=6000 dbname=d".parse().unwrap();
        let labels: Vec<String> = endpoints(&config)
            .unwrap()
            .into_iter()
            .map(|e| e.label)
            .collect();
        assert_eq!(labels, ["a:6000", "b:6000"]);

        let config: Config = "hostaddr=127.0.0.1,127.0.0.2 dbname=d".parse().unwrap();
        let labels: Vec<String> = endpoints(&config)
            .unwrap()
            .into_iter()
            .map(|e| e.label)
            .collect();
        assert_eq!(labels, ["127.0.0.1:5432", "127.0.0.2:5432"]);
    }

    #[test]
    fn host_lists_that_do_not_line_up_are_refused() {
        let config: Config = "host=a,b,c port=1,2 dbname=d".parse().unwrap();
        let err = check_host_lists(&config).unwrap_err().to_string();
        assert!(err.contains("3 host(s) but 2 ports"), "{err}");
        let config: Config = "host=a,b hostaddr=127.0.0.1 dbname=d".parse().unwrap();
        let err = check_host_lists(&config).unwrap_err().to_string();
        assert!(err.contains("2 hosts but 1 hostaddrs"), "{err}");
    }
}
