//! rustls needs one process-wide crypto provider; we use ring.

pub fn install() {
    // Err only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
