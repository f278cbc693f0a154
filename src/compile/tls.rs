//! Shared pass: certificates of the HTTPS listeners, from the IR's certificate sets.
//!
//! Each [`CertificateRef`] names a Secret of type `kubernetes.io/tls` (in the namespace the
//! reference names). The certificate chain and key are parsed and checked here, once per
//! Secret however many references name it: PEM syntax, a key rustls can sign with, the key
//! matching the leaf certificate, and the leaf's validity period against
//! [`super::CompileConfig::now_unix`]. A Secret that fails any check gets no SNI entry (its
//! hosts are served the default certificate) and the referencing object gets a `TLSValid`
//! condition. A reference without hosts offers its certificate as the default certificate
//! (the first one, in source order). When two references give different Secrets for one host
//! the earlier in source order (for Ingress: the older Ingress) wins and the other gets
//! `TLSHostConflict`.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use rustls::pki_types::CertificateDer;
use rustls::sign::CertifiedKey;
use x509_parser::extensions::GeneralName;

use super::Ir;
use super::ir::CertificateRef;
use super::status::Status;
use crate::api::{condition_types, reasons, values};
use crate::snapshot::{Certificate, TlsConfig};
use crate::store::{ObjectKey, Objects};

/// Why a Secret cannot be used: a reason constant and a message.
type Rejection = (&'static str, String);

/// The SNI map and default certificate of every certificate set, by set name.
pub(super) fn certificates(
    ir: &Ir<'_>,
    objects: &Objects,
    now_unix: i64,
    status: &mut Status,
) -> BTreeMap<String, TlsConfig> {
    let mut parsed: HashMap<ObjectKey, Result<Arc<Certificate>, Rejection>> = HashMap::new();
    ir.certificate_sets
        .iter()
        .map(|(name, refs)| {
            let tls = certificate_set(ir, refs, objects, now_unix, &mut parsed, status);
            (name.clone(), tls)
        })
        .collect()
}

fn certificate_set(
    ir: &Ir<'_>,
    refs: &[CertificateRef<'_>],
    objects: &Objects,
    now_unix: i64,
    parsed: &mut HashMap<ObjectKey, Result<Arc<Certificate>, Rejection>>,
    status: &mut Status,
) -> TlsConfig {
    let mut tls = TlsConfig::default();
    // Which object put each host into the SNI map (named in conflict messages).
    let mut owners: HashMap<String, &str> = HashMap::new();
    for reference in refs {
        let source = ir.source(reference.source);
        let field = reference.field;
        let secret_key = ObjectKey::new(reference.namespace, reference.name);
        let result = match parsed.entry(secret_key) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let result = match objects.secrets.get(e.key()) {
                    None => Err((
                        reasons::SECRET_NOT_FOUND,
                        "not found (or not of type kubernetes.io/tls)".to_owned(),
                    )),
                    Some(secret) => {
                        check_secret(e.key().to_string(), secret, now_unix).map(Arc::new)
                    }
                };
                e.insert(result)
            }
        };
        let certificate = match result {
            Ok(certificate) => certificate,
            Err((reason, message)) => {
                let message = format!(
                    "{field}: Secret {}/{}: {message}; its hosts get the default certificate",
                    reference.namespace, reference.name
                );
                status.error(source, condition_types::TLS, reason, message);
                continue;
            }
        };
        if reference.hosts.is_empty() && tls.default.is_none() {
            tls.default = Some(certificate.clone());
        }
        for host in reference.hosts {
            let host = host.to_ascii_lowercase();
            if !covers(&certificate.subject_alt_names, &host) {
                let message = format!(
                    "{field}: the certificate of Secret {} does not cover host {host} (subjectAltNames: {})",
                    certificate.source,
                    certificate.subject_alt_names.join(", ")
                );
                status.warning(
                    source,
                    condition_types::TLS,
                    reasons::CERTIFICATE_HOST_MISMATCH,
                    message,
                );
            }
            match tls.sni.get(&host) {
                None => {
                    owners.insert(host.clone(), source.kind);
                    tls.sni.insert(host, certificate.clone());
                }
                Some(existing) if existing.source == certificate.source => {}
                Some(existing) => {
                    let message = format!(
                        "{field}: host {host} already uses Secret {} from an older {}; Secret {} is ignored for it",
                        existing.source,
                        owners.get(&host).copied().unwrap_or(source.kind),
                        certificate.source
                    );
                    status.error(
                        source,
                        condition_types::TLS,
                        reasons::TLS_HOST_CONFLICT,
                        message,
                    );
                }
            }
        }
    }
    tls
}

/// Parse and check a TLS Secret.
pub(super) fn check_secret(
    source: String,
    secret: &Secret,
    now_unix: i64,
) -> Result<Certificate, Rejection> {
    if secret.type_.as_deref() != Some(values::SECRET_TYPE_TLS) {
        return Err((
            reasons::INVALID_SECRET_TYPE,
            format!(
                "type is {:?}, not kubernetes.io/tls",
                secret.type_.as_deref().unwrap_or("")
            ),
        ));
    }
    let data = |key: &str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| b.0.as_slice())
    };
    let Some(cert_pem) = data(values::TLS_CERT_KEY) else {
        return Err((reasons::INVALID_CERTIFICATE, "has no tls.crt".to_owned()));
    };
    let Some(key_pem) = data(values::TLS_PRIVATE_KEY) else {
        return Err((reasons::INVALID_PRIVATE_KEY, "has no tls.key".to_owned()));
    };
    let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| {
            (
                reasons::INVALID_CERTIFICATE,
                format!("tls.crt is not valid PEM: {e}"),
            )
        })?;
    let Some(leaf) = chain.first() else {
        return Err((
            reasons::INVALID_CERTIFICATE,
            "tls.crt holds no CERTIFICATE block".to_owned(),
        ));
    };
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf).map_err(|e| {
        (
            reasons::INVALID_CERTIFICATE,
            format!("tls.crt: the first certificate is not valid X.509: {e}"),
        )
    })?;
    let private_key = match rustls_pemfile::private_key(&mut &key_pem[..]) {
        Ok(Some(key)) => key,
        Ok(None) => {
            return Err((
                reasons::INVALID_PRIVATE_KEY,
                "tls.key holds no PRIVATE KEY block".to_owned(),
            ));
        }
        Err(e) => {
            return Err((
                reasons::INVALID_PRIVATE_KEY,
                format!("tls.key is not valid PEM: {e}"),
            ));
        }
    };
    let signing_key =
        rustls::crypto::ring::sign::any_supported_type(&private_key).map_err(|e| {
            (
                reasons::INVALID_PRIVATE_KEY,
                format!("tls.key is not a usable RSA, ECDSA or Ed25519 key: {e}"),
            )
        })?;
    let certified = CertifiedKey::new(chain.clone(), signing_key);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(e) => {
            return Err((
                reasons::CERTIFICATE_KEY_MISMATCH,
                format!("tls.key does not match the certificate in tls.crt: {e}"),
            ));
        }
    }
    let validity = parsed.validity();
    let not_after = validity.not_after.timestamp();
    let not_before = validity.not_before.timestamp();
    if not_after < now_unix {
        return Err((
            reasons::CERTIFICATE_EXPIRED,
            format!("the certificate expired at {}", rfc3339(not_after)),
        ));
    }
    if not_before > now_unix {
        return Err((
            reasons::CERTIFICATE_NOT_YET_VALID,
            format!(
                "the certificate is not valid before {}",
                rfc3339(not_before)
            ),
        ));
    }
    let mut subject_alt_names = Vec::new();
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => subject_alt_names.push(dns.to_ascii_lowercase()),
                GeneralName::IPAddress(bytes) => {
                    let ip = match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes).ok().map(std::net::IpAddr::from),
                        16 => <[u8; 16]>::try_from(*bytes)
                            .ok()
                            .map(std::net::IpAddr::from),
                        _ => None,
                    };
                    subject_alt_names.extend(ip.map(|ip| ip.to_string()));
                }
                _ => {}
            }
        }
    }
    Ok(Certificate {
        source,
        subject_alt_names,
        not_after: rfc3339(not_after),
        key: Arc::new(certified),
    })
}

fn rfc3339(unix: i64) -> String {
    match k8s_openapi::jiff::Timestamp::from_second(unix) {
        Ok(t) => t.to_string(),
        Err(_) => format!("@{unix}"),
    }
}

/// Whether a certificate's names cover a host (`*.example.com` in the certificate covers one
/// label, as in TLS; a wildcard host is covered only by the same wildcard).
fn covers(names: &[String], host: &str) -> bool {
    names.iter().any(|name| {
        name == host
            || name.strip_prefix('*').is_some_and(|suffix| {
                suffix.starts_with('.')
                    && host.strip_suffix(suffix).is_some_and(|label| {
                        !label.is_empty() && !label.contains('.') && label != "*"
                    })
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_certificate_covers_one_label() {
        let names = ["*.example.com".to_owned(), "example.org".to_owned()];
        assert!(covers(&names, "a.example.com"));
        assert!(covers(&names, "*.example.com"));
        assert!(!covers(&names, "a.b.example.com"));
        assert!(!covers(&names, "example.com"));
        assert!(covers(&names, "example.org"));
        assert!(!covers(&names, "a.example.org"));
    }
}
