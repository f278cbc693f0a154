//! Pass 2: certificates of the HTTPS listener, from `spec.tls` of weir's Ingresses.
//!
//! Each `spec.tls` entry names a Secret of type `kubernetes.io/tls` in the Ingress's
//! namespace. The certificate chain and key are parsed and checked here, once per Secret:
//! PEM syntax, a key rustls can sign with, the key matching the leaf certificate, and the
//! leaf's validity period against [`super::CompileConfig::now_unix`]. A Secret that fails any
//! check gets no SNI entry (its hosts are served the default certificate) and the Ingress gets
//! a `TLSValid` condition. An entry without `secretName` leaves its hosts on the default
//! certificate; an entry without `hosts` offers its certificate as the default certificate
//! (the "wildcard host setting" of the spec). When two Ingresses give different Secrets for
//! one host the older Ingress wins and the other gets `TLSHostConflict`.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use rustls::pki_types::CertificateDer;
use rustls::sign::CertifiedKey;
use x509_parser::extensions::GeneralName;

use super::CompileConfig;
use super::classes::OwnedIngress;
use super::status::Status;
use crate::api::{condition_types, reasons, values};
use crate::snapshot::{Certificate, TlsConfig};
use crate::store::{ObjectKey, Objects};

/// Why a Secret cannot be used: a reason constant and a message.
type Rejection = (&'static str, String);

/// Build the SNI map and default certificate.
pub(super) fn certificates(
    owned: &[OwnedIngress<'_>],
    objects: &Objects,
    config: &CompileConfig,
    status: &mut Status,
) -> TlsConfig {
    let mut tls = TlsConfig::default();
    let mut parsed: HashMap<ObjectKey, Result<Arc<Certificate>, Rejection>> = HashMap::new();
    for owned in owned {
        let Some(entries) = owned.ingress.spec.as_ref().and_then(|s| s.tls.as_ref()) else {
            continue;
        };
        for (index, entry) in entries.iter().enumerate() {
            let Some(secret_name) = entry.secret_name.as_deref().filter(|s| !s.is_empty()) else {
                continue;
            };
            let secret_key = ObjectKey::new(owned.key.namespace.clone(), secret_name);
            let result = match parsed.entry(secret_key) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => {
                    let result = match objects.secrets.get(e.key()) {
                        None => Err((
                            reasons::SECRET_NOT_FOUND,
                            "not found (or not of type kubernetes.io/tls)".to_owned(),
                        )),
                        Some(secret) => {
                            check_secret(e.key().to_string(), secret, config.now_unix).map(Arc::new)
                        }
                    };
                    e.insert(result)
                }
            };
            let certificate = match result {
                Ok(certificate) => certificate,
                Err((reason, message)) => {
                    let message = format!(
                        "spec.tls[{index}]: Secret {}/{secret_name}: {message}; its hosts get the default certificate",
                        owned.key.namespace
                    );
                    status.ingress_error(owned.key, condition_types::TLS, reason, message);
                    continue;
                }
            };
            let hosts = entry.hosts.as_deref().unwrap_or_default();
            if hosts.is_empty() && tls.default.is_none() {
                tls.default = Some(certificate.clone());
            }
            for host in hosts {
                let host = host.to_ascii_lowercase();
                if !covers(&certificate.subject_alt_names, &host) {
                    let message = format!(
                        "spec.tls[{index}]: the certificate of Secret {} does not cover host {host} (subjectAltNames: {})",
                        certificate.source,
                        certificate.subject_alt_names.join(", ")
                    );
                    status.ingress_warning(
                        owned.key,
                        condition_types::TLS,
                        reasons::CERTIFICATE_HOST_MISMATCH,
                        message,
                    );
                }
                match tls.sni.get(&host) {
                    None => {
                        tls.sni.insert(host, certificate.clone());
                    }
                    Some(existing) if existing.source == certificate.source => {}
                    Some(existing) => {
                        let message = format!(
                            "spec.tls[{index}]: host {host} already uses Secret {} from an older Ingress; Secret {} is ignored for it",
                            existing.source, certificate.source
                        );
                        status.ingress_error(
                            owned.key,
                            condition_types::TLS,
                            reasons::TLS_HOST_CONFLICT,
                            message,
                        );
                    }
                }
            }
        }
    }
    tls
}

/// Parse and check a TLS Secret.
fn check_secret(source: String, secret: &Secret, now_unix: i64) -> Result<Certificate, Rejection> {
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
