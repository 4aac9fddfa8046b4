//! Opening a PostgreSQL connection as `DATABASE_URL` says, TLS included.
//!
//! `AsyncPgConnection::establish` never uses TLS, so every connection of ours
//! (pool, migrations, listeners, tests) is opened here instead.
//!
//! The TLS options of the URL follow libpq:
//!
//! | `sslmode`          | TLS                        | server certificate checked          |
//! |--------------------|----------------------------|-------------------------------------|
//! | `disable`          | never                      | –                                   |
//! | `allow`            | if the server offers it    | as `prefer`                         |
//! | `prefer` (default) | if the server offers it    | no, unless a root certificate exists |
//! | `require`          | always                     | no, unless a root certificate exists |
//! | `verify-ca`        | always                     | chain against the root certificates |
//! | `verify-full`      | always                     | chain and host name (or IP address) |
//!
//! "A root certificate exists" means, as in libpq, that `sslrootcert` is given or
//! `~/.postgresql/root.crt` exists; `prefer`/`require` then check the chain like
//! `verify-ca`. `verify-*` without any root certificate is an error.
//!
//! tokio-postgres knows neither `verify-ca`/`verify-full` nor `sslrootcert`, so
//! [`DatabaseTarget::parse`] takes `sslmode` and `sslrootcert` out of the string
//! (URL or `key=value` form) before tokio-postgres parses the rest, and builds
//! the rustls client configuration from them once.
//!
//! Deliberate differences from libpq, all failing loudly rather than silently
//! connecting with less protection:
//! * `allow` is treated as `prefer` (TLS first, plaintext if the server has no
//!   TLS). libpq tries plaintext first; the set of connections it accepts is the
//!   same, ours just never picks plaintext when TLS is on offer.
//! * `sslrootcert=system` is refused (no OS trust store dependency).
//! * An explicit `sslrootcert` that cannot be read is an error in every mode
//!   (libpq ignores a missing file under `prefer`/`require`).
//! * With `prefer`, a failed certificate check fails the connection; libpq
//!   would retry without TLS.
//! * `sslcert`, `sslkey`, `sslpassword`, `sslcrl`, `sslcrldir` (client
//!   certificates, revocation lists) are refused as unsupported.
//! * Over a Unix-domain socket, `require`/`verify-*` fail (tokio-postgres asks
//!   the server for TLS there too, which it never offers); libpq ignores
//!   `sslmode` on sockets.
//! * The `PGSSLMODE`/`PGSSLROOTCERT` environment variables are not read, like
//!   every other `PG*` variable (tokio-postgres ignores them too).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use diesel::connection::CacheSize;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use tokio_postgres_rustls::MakeRustlsConnect;

mod conninfo;
mod hosts;
#[cfg(test)]
mod tests;
mod tls;

use conninfo::split_tls_options;
use tls::{client_config, root_cert_path};

/// A parsed `DATABASE_URL`: the tokio-postgres configuration and the TLS
/// client configuration, built once and shared by every connection.
#[derive(Clone)]
pub struct DatabaseTarget {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    sslmode: SslMode,
    /// The root certificate file in use, if any (for messages).
    rootcert: Option<PathBuf>,
    /// Named, cached prepared statements (`DATABASE_PREPARED_STATEMENTS`).
    prepared_statements: bool,
}

/// libpq's `sslmode` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self, ConnectError> {
        Ok(match value {
            "disable" => Self::Disable,
            "allow" => Self::Allow,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            other => {
                return Err(ConnectError::message(format!(
                    "DATABASE_URL: invalid sslmode \"{other}\" (expected disable, allow, \
                     prefer, require, verify-ca or verify-full)"
                )));
            }
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Allow => "allow",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    /// What tokio-postgres is told: it only knows whether TLS is optional.
    fn for_tokio_postgres(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as T;
        match self {
            Self::Disable => T::Disable,
            Self::Allow | Self::Prefer => T::Prefer,
            Self::Require | Self::VerifyCa | Self::VerifyFull => T::Require,
        }
    }
}

/// How much of the server certificate is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verification {
    None,
    /// Chain to a trusted root; any host name.
    Chain,
    /// Chain and host name.
    Full,
}

/// A connection failure, with the whole cause chain in its message (tokio-postgres
/// hides the server's reason behind "db error") and never the password.
#[derive(Debug)]
pub struct ConnectError(String);

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConnectError {}

impl ConnectError {
    pub(crate) fn new(context: &str, err: &(dyn std::error::Error + 'static)) -> Self {
        let mut msg = format!("{context}: {err}");
        let mut source = err.source();
        while let Some(s) = source {
            let text = s.to_string();
            if !msg.contains(&text) {
                msg.push_str(": ");
                msg.push_str(&text);
            }
            source = s.source();
        }
        Self(msg)
    }

    pub(crate) fn message(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }

    /// The same error about another variable than `DATABASE_URL` (the
    /// parser's messages name that one).
    pub fn for_variable(self, name: &str) -> Self {
        Self(self.0.replace("DATABASE_URL", name))
    }

    /// Blanks out `password` wherever it appears (defence in depth: neither
    /// tokio-postgres nor the server should ever echo it). Passwords shorter
    /// than 4 bytes are left alone, they would match ordinary words.
    fn without_password(mut self, password: Option<&[u8]>) -> Self {
        if let Some(password) = password.and_then(|p| std::str::from_utf8(p).ok())
            && password.len() >= 4
            && self.0.contains(password)
        {
            self.0 = self.0.replace(password, "********");
        }
        self
    }
}

/// `localhost` or a loopback address (127.0.0.0/8, ::1).
pub fn is_loopback_name(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl DatabaseTarget {
    pub fn parse(url: &str) -> Result<Self, ConnectError> {
        crate::crypto_provider::install();
        let (rest, options) = split_tls_options(url)?;
        let mut config: tokio_postgres::Config = rest
            .parse()
            .map_err(|e| ConnectError::new("DATABASE_URL is not a valid PostgreSQL URL", &e))?;
        hosts::check_host_lists(&config)?;

        let sslmode = match options.sslmode.as_deref() {
            None | Some("") => SslMode::Prefer,
            Some(value) => SslMode::parse(value)?,
        };
        config.ssl_mode(sslmode.for_tokio_postgres());

        let rootcert = if sslmode == SslMode::Disable {
            None
        } else {
            root_cert_path(options.sslrootcert.as_deref())?
        };
        let verification = match (sslmode, &rootcert) {
            (SslMode::Disable, _) => Verification::None,
            (SslMode::VerifyFull, Some(_)) => Verification::Full,
            (_, Some(_)) => Verification::Chain,
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
                return Err(ConnectError::message(format!(
                    "DATABASE_URL: sslmode={} needs the CA certificate(s) to verify the server \
                     against: set sslrootcert=/path/to/ca.pem (~/.postgresql/root.crt does not exist)",
                    sslmode.as_str()
                )));
            }
            (_, None) => Verification::None,
        };

        // tokio-postgres takes the TLS server name from `host` and refuses TLS
        // without one. With only `hostaddr`, use the address itself (libpq checks
        // nothing then, and verify-full has no name to check: an error in libpq).
        if sslmode != SslMode::Disable
            && config.get_hosts().is_empty()
            && !config.get_hostaddrs().is_empty()
        {
            if verification == Verification::Full {
                return Err(ConnectError::message(
                    "DATABASE_URL: sslmode=verify-full needs `host` (the name to verify \
                     the server certificate against), not only `hostaddr`",
                ));
            }
            let addrs = config.get_hostaddrs().to_vec();
            for addr in addrs {
                config.host(addr.to_string());
            }
        }

        let tls = client_config(verification, rootcert.as_deref())?;
        let target = Self {
            config,
            tls: MakeRustlsConnect::new(tls),
            sslmode,
            rootcert,
            prepared_statements: true,
        };
        if let Some(warning) = target.cleartext_warning() {
            tracing::warn!("{warning}");
        }
        Ok(target)
    }

    /// A warning when this target may talk to a host across a network in
    /// the clear: `sslmode` `disable`, `allow` or `prefer` (libpq's default,
    /// and ours) falls back to plain text whenever the server, or a man in
    /// the middle, declines TLS. Loopback and Unix sockets cross no network.
    pub fn cleartext_warning(&self) -> Option<String> {
        use tokio_postgres::config::Host;
        if !matches!(
            self.sslmode,
            SslMode::Disable | SslMode::Allow | SslMode::Prefer
        ) {
            return None;
        }
        let remote: Vec<&str> = self
            .config
            .get_hosts()
            .iter()
            .filter_map(|h| match h {
                Host::Tcp(name) if !is_loopback_name(name) => Some(name.as_str()),
                _ => None,
            })
            .collect();
        if remote.is_empty() {
            return None;
        }
        Some(format!(
            "DATABASE_URL connects to {} with sslmode={}: a man in the middle can make the \
             connection plain text and read every query, ciphertext and the password exchange; \
             set sslmode=verify-full&sslrootcert=/path/to/ca.pem (docs/CONFIGURATION.md)",
            remote.join(", "),
            self.sslmode.as_str()
        ))
    }

    /// The database name, for messages.
    pub fn dbname(&self) -> &str {
        self.config.get_dbname().unwrap_or("")
    }

    /// The effective libpq `sslmode` (`prefer` when the URL has none).
    pub fn sslmode(&self) -> &'static str {
        self.sslmode.as_str()
    }

    /// Every statement on connections from this target is cancelled by the
    /// server after `timeout` (a cancelled client future does not stop it).
    pub fn set_statement_timeout(&mut self, timeout: Duration) {
        self.add_server_option(&format!("-c statement_timeout={}", timeout.as_millis()));
    }

    /// A statement waiting longer than `timeout` for a lock (a row another
    /// transaction holds, a table an operator locked) is cancelled by the
    /// server, so a held lock turns into a fast 503 instead of a pile-up.
    pub fn set_lock_timeout(&mut self, timeout: Duration) {
        self.add_server_option(&format!("-c lock_timeout={}", timeout.as_millis()));
    }

    /// `false`: connections send every query as an unnamed statement (Parse,
    /// Bind, Execute and Sync in one round trip) and cache none. A
    /// transaction-mode pooler may hand each Sync-terminated exchange outside
    /// an explicit transaction to a different server connection, so a
    /// statement prepared in one exchange is unknown to the server that gets
    /// the next; an unnamed statement lives and dies within one exchange.
    pub fn set_prepared_statements(&mut self, on: bool) {
        self.prepared_statements = on;
    }

    /// The `-c name=value` settings this target sends at connection start
    /// (a transaction-mode pooler may drop them: `pool::check_timeouts`).
    fn add_server_option(&mut self, opt: &str) {
        let opt = opt.to_owned();
        let options = match self.config.get_options() {
            Some(existing) if !existing.is_empty() => format!("{existing} {opt}"),
            _ => opt,
        };
        self.config.options(options);
    }

    /// A plain tokio-postgres client; the connection task is spawned.
    pub async fn connect_client(&self) -> Result<tokio_postgres::Client, ConnectError> {
        let (client, connection) = self.open().await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "PostgreSQL connection closed");
            }
        });
        Ok(client)
    }

    pub async fn connect(&self) -> Result<AsyncPgConnection, ConnectError> {
        let (client, connection) = self.open().await?;
        let mut conn = AsyncPgConnection::try_from_client_and_connection(client, connection)
            .await
            .map_err(|e| {
                ConnectError::new("cannot set up the PostgreSQL connection", &e)
                    .without_password(self.config.get_password())
            })?;
        if !self.prepared_statements {
            // The vendored diesel-async reads `Disabled` as "unnamed statements".
            conn.set_prepared_statement_cache_size(CacheSize::Disabled);
        }
        Ok(conn)
    }
}

/// Whether rustls rejected the server certificate somewhere in `err`'s causes.
fn is_certificate_error(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        let rustls_err = e.downcast_ref::<rustls::Error>().or_else(|| {
            e.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if matches!(
            rustls_err,
            Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented)
        ) {
            return true;
        }
        next = e.source();
    }
    false
}
