//! The rustls client configuration for each `sslmode`: root certificates,
//! and the verifiers for `verify-ca` (chain only) and no verification.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{ConnectError, Verification};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// The root certificate file to use: `sslrootcert`, else libpq's default
/// `~/.postgresql/root.crt` if it exists.
pub(super) fn root_cert_path(sslrootcert: Option<&str>) -> Result<Option<PathBuf>, ConnectError> {
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

pub(super) fn load_roots(path: &Path) -> Result<RootCertStore, ConnectError> {
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

pub(super) fn client_config(
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
        (Verification::Chain, Some(path)) => {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Relaxed {
                    chain: Some(webpki(path)?),
                    provider: provider.clone(),
                }))
        }
        (Verification::None, _) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Relaxed {
                chain: None,
                provider: provider.clone(),
            })),
        (_, None) => unreachable!("verification needs a root certificate"),
    };
    Ok(config.with_no_client_auth())
}

/// The two `sslmode`s rustls ships no verifier for: `verify-ca` (`chain`:
/// the webpki verifier, minus its host name check, which it does after the
/// chain check, so a name error means the chain was fine) and `prefer` /
/// `require` without a root certificate (no `chain`: any server certificate).
/// Handshake signatures are checked either way, with the provider's
/// algorithms, as webpki does (channel binding relies on them).
#[derive(Debug)]
struct Relaxed {
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Relaxed {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
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
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
