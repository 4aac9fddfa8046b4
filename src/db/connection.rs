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

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use diesel_async::AsyncPgConnection;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_postgres_rustls::MakeRustlsConnect;

/// A parsed `DATABASE_URL`: the tokio-postgres configuration and the TLS
/// client configuration, built once and shared by every connection.
#[derive(Clone)]
pub struct DatabaseTarget {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    sslmode: SslMode,
    /// The root certificate file in use, if any (for messages).
    rootcert: Option<PathBuf>,
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
        let (client, connection) = self
            .config
            .connect(self.tls.clone())
            .await
            .map_err(|e| self.connect_error(&e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "PostgreSQL connection closed");
            }
        });
        Ok(client)
    }

    pub async fn connect(&self) -> Result<AsyncPgConnection, ConnectError> {
        let (client, connection) = self
            .config
            .connect(self.tls.clone())
            .await
            .map_err(|e| self.connect_error(&e))?;
        AsyncPgConnection::try_from_client_and_connection(client, connection)
            .await
            .map_err(|e| {
                ConnectError::new("cannot set up the PostgreSQL connection", &e)
                    .without_password(self.config.get_password())
            })
    }

    fn connect_error(&self, err: &tokio_postgres::Error) -> ConnectError {
        let rootcert = match &self.rootcert {
            Some(path) => format!(", sslrootcert={}", path.display()),
            None => String::new(),
        };
        let context = if is_certificate_error(err) {
            format!(
                "cannot connect to PostgreSQL: server certificate verification failed \
                 (sslmode={}{rootcert})",
                self.sslmode.as_str()
            )
        } else {
            format!(
                "cannot connect to PostgreSQL (sslmode={}{rootcert})",
                self.sslmode.as_str()
            )
        };
        ConnectError::new(&context, err).without_password(self.config.get_password())
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

/// The TLS options taken out of the connection string.
#[derive(Debug, Default, PartialEq, Eq)]
struct TlsOptions {
    sslmode: Option<String>,
    sslrootcert: Option<String>,
}

impl TlsOptions {
    fn is_ours(key: &str) -> bool {
        key.starts_with("ssl") && key != "sslnegotiation"
    }

    /// Records `key=value` if it is ours; `Ok(false)` means "leave it to tokio-postgres".
    fn take(&mut self, key: &str, value: String) -> Result<bool, ConnectError> {
        match key {
            "sslmode" => self.sslmode = Some(value),
            "sslrootcert" => self.sslrootcert = Some(value),
            "sslcert" | "sslkey" | "sslpassword" | "sslcrl" | "sslcrldir" => {
                return Err(ConnectError::message(format!(
                    "DATABASE_URL: option {key} is not supported (no client certificates \
                     or certificate revocation lists)"
                )));
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// Splits `sslmode` and `sslrootcert` (and refuses unsupported `ssl*` options)
/// off a connection string in URL or `key=value` form; returns the rest,
/// which tokio-postgres can parse. Later occurrences win, as in tokio-postgres.
fn split_tls_options(s: &str) -> Result<(String, TlsOptions), ConnectError> {
    let mut options = TlsOptions::default();
    let prefix = ["postgres://", "postgresql://"]
        .into_iter()
        .find(|p| s.starts_with(p));
    let Some(prefix) = prefix else {
        return Ok((split_key_value(s, &mut options)?, options));
    };

    // As tokio-postgres' URL parser: user info ends at the first '@', the
    // query starts at the first '?' after it.
    let after_prefix = &s[prefix.len()..];
    let creds_end = after_prefix.find('@').map_or(0, |i| i + 1);
    let Some(q) = after_prefix[creds_end..].find('?') else {
        return Ok((s.to_owned(), options));
    };
    let query_start = prefix.len() + creds_end + q + 1;

    let mut kept = Vec::new();
    for param in s[query_start..].split('&') {
        let taken = match param.split_once('=') {
            Some((key, value)) => {
                let key = percent_decode(key, "a parameter name")?;
                // Only our values are decoded here; the rest is tokio-postgres' business.
                if TlsOptions::is_ours(&key) {
                    let value = percent_decode(value, &key)?.into_owned();
                    options.take(&key, value)?
                } else {
                    false
                }
            }
            None => false,
        };
        if !taken {
            kept.push(param);
        }
    }

    let mut rest = s[..query_start - 1].to_owned();
    if !kept.is_empty() {
        rest.push('?');
        rest.push_str(&kept.join("&"));
    }
    Ok((rest, options))
}

fn percent_decode<'a>(s: &'a str, what: &str) -> Result<Cow<'a, str>, ConnectError> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map_err(|_| {
            ConnectError::message(format!(
                "DATABASE_URL: {what} is not valid UTF-8 once percent-decoded"
            ))
        })
}

/// The `key=value` form: removes our parameters, keeps everything else
/// byte for byte. A string this tokenizer cannot read is returned as is, for
/// tokio-postgres to report.
fn split_key_value(s: &str, options: &mut TlsOptions) -> Result<String, ConnectError> {
    let Some(params) = tokenize_key_value(s) else {
        return Ok(s.to_owned());
    };
    let mut rest = String::with_capacity(s.len());
    let mut copied_to = 0;
    for (key, value, span) in params {
        if options.take(key, value)? {
            rest.push_str(&s[copied_to..span.start]);
            copied_to = span.end;
        }
    }
    rest.push_str(&s[copied_to..]);
    Ok(rest)
}

/// `(key, unescaped value, byte span of the whole parameter)`, with the
/// grammar of tokio-postgres' (and libpq's) `key=value` parser.
fn tokenize_key_value(s: &str) -> Option<Vec<(&str, String, std::ops::Range<usize>)>> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let skip_ws = |mut i: usize| {
        while let Some(c) = s[i..].chars().next()
            && c.is_whitespace()
        {
            i += c.len_utf8();
        }
        i
    };
    loop {
        i = skip_ws(i);
        if i == s.len() {
            return Some(out);
        }
        let start = i;
        while let Some(c) = s[i..].chars().next()
            && !c.is_whitespace()
            && c != '='
        {
            i += c.len_utf8();
        }
        let key = &s[start..i];
        i = skip_ws(i);
        if bytes.get(i) != Some(&b'=') {
            return None;
        }
        i = skip_ws(i + 1);
        let mut value = String::new();
        let quoted = bytes.get(i) == Some(&b'\'');
        if quoted {
            i += 1;
        }
        loop {
            let c = s[i..].chars().next();
            match c {
                None if quoted => return None,
                None => break,
                Some('\'') if quoted => {
                    i += 1;
                    break;
                }
                Some(c) if !quoted && c.is_whitespace() => break,
                Some('\\') => {
                    i += 1;
                    if let Some(c2) = s[i..].chars().next() {
                        value.push(c2);
                        i += c2.len_utf8();
                    }
                }
                Some(c) => {
                    value.push(c);
                    i += c.len_utf8();
                }
            }
        }
        if !quoted && value.is_empty() {
            return None;
        }
        out.push((key, value, start..i));
    }
}

/// The root certificate file to use: `sslrootcert`, else libpq's default
/// `~/.postgresql/root.crt` if it exists.
fn root_cert_path(sslrootcert: Option<&str>) -> Result<Option<PathBuf>, ConnectError> {
    match sslrootcert {
        Some("system") => Err(ConnectError::message(
            "DATABASE_URL: sslrootcert=system (the operating system's trust store) is not \
             supported; set sslrootcert to a PEM file holding the CA certificate(s)",
        )),
        Some(path) if !path.is_empty() => Ok(Some(PathBuf::from(path))),
        _ => Ok(std::env::var_os("HOME")
            .filter(|home| !home.is_empty())
            .map(|home| Path::new(&home).join(".postgresql").join("root.crt"))
            .filter(|path| path.exists())),
    }
}

fn load_roots(path: &Path) -> Result<RootCertStore, ConnectError> {
    let fail = |what: String| {
        ConnectError::message(format!(
            "DATABASE_URL: sslrootcert {}: {what}",
            path.display()
        ))
    };
    let pem = std::fs::read(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| fail(format!("invalid PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| fail(format!("invalid CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(fail("no PEM certificate in it".into()));
    }
    Ok(roots)
}

fn client_config(
    verification: Verification,
    rootcert: Option<&Path>,
) -> Result<rustls::ClientConfig, ConnectError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectError::new("cannot set up TLS", &e))?;
    let webpki = |path: &Path| {
        let roots = load_roots(path)?;
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| ConnectError::new("cannot set up TLS certificate verification", &e))
    };
    let config = match (verification, rootcert) {
        (Verification::Full, Some(path)) => builder.with_webpki_verifier(webpki(path)?),
        (Verification::Chain, Some(path)) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki(path)?))),
        (Verification::None, _) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider.clone()))),
        (_, None) => unreachable!("verification needs a root certificate"),
    };
    Ok(config.with_no_client_auth())
}

/// `verify-ca`: the webpki verifier, minus its host name check (which it does
/// after the chain check, so a name error means the chain was fine).
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer`/`require` without a root certificate: any server certificate
/// (handshake signatures are still checked, channel binding relies on them).
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> (String, TlsOptions) {
        split_tls_options(s).unwrap()
    }

    fn opts(mode: Option<&str>, root: Option<&str>) -> TlsOptions {
        TlsOptions {
            sslmode: mode.map(str::to_owned),
            sslrootcert: root.map(str::to_owned),
        }
    }

    #[test]
    fn url_options_are_taken_out_and_decoded() {
        let (rest, o) = split(
            "postgres://u:p%3Fw@h:5433/db?sslmode=verify-full&application_name=x\
             &sslrootcert=%2Ftmp%2Fca%20dir%2Fca.pem",
        );
        assert_eq!(rest, "postgres://u:p%3Fw@h:5433/db?application_name=x");
        assert_eq!(o, opts(Some("verify-full"), Some("/tmp/ca dir/ca.pem")));

        let (rest, o) = split("postgresql://h/db?sslmode=require");
        assert_eq!(rest, "postgresql://h/db");
        assert_eq!(o, opts(Some("require"), None));

        let (rest, o) = split("postgres://u:pa?ss@h/db");
        assert_eq!(rest, "postgres://u:pa?ss@h/db");
        assert_eq!(o, TlsOptions::default());

        let (rest, o) = split("postgres://h/db?sslmode=disable&sslmode=verify-ca");
        assert_eq!(rest, "postgres://h/db");
        assert_eq!(o, opts(Some("verify-ca"), None));
    }

    #[test]
    fn key_value_options_are_taken_out() {
        let (rest, o) = split(
            "host=h  sslmode = verify-ca password='a b\\'c' sslrootcert='/x y/ca.pem' dbname=d",
        );
        assert_eq!(rest, "host=h   password='a b\\'c'  dbname=d");
        assert_eq!(o, opts(Some("verify-ca"), Some("/x y/ca.pem")));
        let config: tokio_postgres::Config = rest.parse().unwrap();
        assert_eq!(config.get_password(), Some(&b"a b'c"[..]));

        let (rest, o) = split("sslrootcert=/a\\ b");
        assert_eq!(rest, "");
        assert_eq!(o, opts(None, Some("/a b")));
    }

    #[test]
    fn unsupported_and_invalid_options_are_refused_clearly() {
        let err = DatabaseTarget::parse("postgres://h/db?sslcert=/c.pem")
            .err()
            .unwrap();
        assert!(err.to_string().contains("sslcert"), "{err}");
        let err = DatabaseTarget::parse("host=h sslmode=verify")
            .err()
            .unwrap();
        assert!(err.to_string().contains("invalid sslmode"), "{err}");
        let err = DatabaseTarget::parse("host=h sslmode=require sslrootcert=system")
            .err()
            .unwrap();
        assert!(err.to_string().contains("sslrootcert=system"), "{err}");
        let err = DatabaseTarget::parse("host=h sslmode=verify-ca sslrootcert=/nonexistent/ca")
            .err()
            .unwrap();
        assert!(err.to_string().contains("/nonexistent/ca"), "{err}");
    }

    #[test]
    fn modes() {
        let t = DatabaseTarget::parse("postgres://u:secret@h/db").unwrap();
        assert_eq!(t.sslmode(), "prefer");
        let t = DatabaseTarget::parse("postgres://u:secret@h/db?sslmode=allow").unwrap();
        assert_eq!(t.sslmode(), "allow");
        assert_eq!(
            t.config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Prefer
        );
        let t = DatabaseTarget::parse("hostaddr=127.0.0.1 sslmode=require").unwrap();
        assert_eq!(t.config.get_hosts().len(), 1);
        let t = DatabaseTarget::parse("postgres://h/db?sslnegotiation=direct&sslmode=require");
        assert_eq!(
            t.unwrap().config.get_ssl_negotiation(),
            tokio_postgres::config::SslNegotiation::Direct
        );
        let err = DatabaseTarget::parse("hostaddr=127.0.0.1 sslmode=verify-full sslrootcert=/x")
            .err()
            .unwrap();
        assert!(err.to_string().contains("needs `host`"), "{err}");
    }
}
