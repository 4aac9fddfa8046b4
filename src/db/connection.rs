//! Opening a PostgreSQL connection as `DATABASE_URL` says, TLS included.
//!
//! `AsyncPgConnection::establish` never uses TLS, so every connection of ours
//! (pool, migrations, listeners, tests) is opened here instead.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use diesel_async::AsyncPgConnection;
use tokio_postgres_rustls::MakeRustlsConnect;

/// A parsed `DATABASE_URL`: the tokio-postgres configuration and the TLS
/// client configuration, built once and shared by every connection.
#[derive(Clone)]
pub struct DatabaseTarget {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
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
}

impl DatabaseTarget {
    pub fn parse(url: &str) -> Result<Self, ConnectError> {
        crate::crypto_provider::install();
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| ConnectError::new("DATABASE_URL is not a valid PostgreSQL URL", &e))?;
        let tls = rustls::ClientConfig::builder()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify))
            .with_no_client_auth();
        Ok(Self {
            config,
            tls: MakeRustlsConnect::new(tls),
        })
    }

    /// The database name, for messages.
    pub fn dbname(&self) -> &str {
        self.config.get_dbname().unwrap_or("")
    }

    /// Every statement on connections from this target is cancelled by the
    /// server after `timeout` (a cancelled client future does not stop it).
    pub fn set_statement_timeout(&mut self, timeout: Duration) {
        let opt = format!("-c statement_timeout={}", timeout.as_millis());
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
            .map_err(|e| ConnectError::new("cannot connect to PostgreSQL", &e))?;
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
            .map_err(|e| ConnectError::new("cannot connect to PostgreSQL", &e))?;
        AsyncPgConnection::try_from_client_and_connection(client, connection)
            .await
            .map_err(|e| ConnectError::new("cannot set up the PostgreSQL connection", &e))
    }
}

#[derive(Debug)]
struct NoVerify;

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &rustls::crypto::ring::default_provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &rustls::crypto::ring::default_provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
