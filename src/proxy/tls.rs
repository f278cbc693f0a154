//! Downstream TLS: the rustls server configuration of an HTTPS listener and certificate
//! selection by SNI from that listener's current view, so a rotated certificate is served
//! from the next handshake on.
//!
//! Lookup: exact SNI (lower-cased), then the wildcard `*.parent` covering one extra label,
//! then the snapshot's default certificate, then a self-signed certificate generated once at
//! start-up (SAN `weir.invalid`), served also when the client sends no SNI.

use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::ListenerSlot;
use super::error::ProxyError;

/// Picks the certificate for a handshake from the snapshot current at that moment.
pub(crate) struct SniResolver {
    slot: Arc<ListenerSlot>,
    fallback: Arc<CertifiedKey>,
}

impl std::fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SniResolver").finish_non_exhaustive()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let view = self.slot.view.load();
        let chosen = view
            .tls()
            .and_then(|tls| tls.select(hello.server_name()))
            .map(|(c, _)| c.key.clone());
        Some(chosen.unwrap_or_else(|| self.fallback.clone()))
    }
}

/// The HTTPS listener's configuration: TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`.
pub(crate) fn server_config(
    slot: Arc<ListenerSlot>,
) -> Result<Arc<rustls::ServerConfig>, ProxyError> {
    let fallback = self_signed()?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ProxyError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver { slot, fallback }));
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// A self-signed certificate for `weir.invalid`, for handshakes no configured certificate
/// covers; generated once per process and shared by every HTTPS listener.
fn self_signed() -> Result<Arc<CertifiedKey>, ProxyError> {
    static CERT: std::sync::OnceLock<Result<Arc<CertifiedKey>, String>> =
        std::sync::OnceLock::new();
    CERT.get_or_init(|| generate().map_err(|e| e.to_string()))
        .clone()
        .map_err(ProxyError::Tls)
}

fn generate() -> Result<Arc<CertifiedKey>, ProxyError> {
    let generated = rcgen::generate_simple_self_signed(vec!["weir.invalid".to_string()])
        .map_err(|e| ProxyError::Tls(e.to_string()))?;
    let key_der =
        rustls::pki_types::PrivateKeyDer::Pkcs8(generated.signing_key.serialize_der().into());
    let signer = rustls::crypto::ring::sign::any_supported_type(&key_der)
        .map_err(|e| ProxyError::Tls(e.to_string()))?;
    Ok(Arc::new(CertifiedKey::new(
        vec![generated.cert.der().clone()],
        signer,
    )))
}
