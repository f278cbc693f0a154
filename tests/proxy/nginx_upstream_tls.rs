//! ingress-nginx's `proxy-ssl-*` annotations, from manifests through the real proxy, over
//! HTTP/1.1 and HTTP/2, against TLS backends whose certificates a test CA signed:
//! `proxy-ssl-verify: on` with the right CA answers 200; with another CA, or a
//! `proxy-ssl-name` the certificate does not hold, the handshake fails (502) and no request
//! reaches the backend; `proxy-ssl-server-name: on` sends the name as SNI; the Secret's
//! `tls.crt`/`tls.key` is presented to a backend that requires a client certificate; a
//! missing Secret makes the backend unavailable (503).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use weir::proxy::ProxyConfig;

use crate::support::*;

/// A test CA.
struct Ca {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
    der: CertificateDer<'static>,
}

fn ca(name: &str) -> Ca {
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(rcgen::DnType::CommonName, name.to_owned());
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = p.self_signed(&key).expect("ca");
    Ca {
        pem: cert.pem(),
        der: cert.der().clone(),
        issuer: rcgen::Issuer::new(p, key),
    }
}

/// A certificate for `names` signed by `ca`: PEM certificate and key, and their DER.
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

fn leaf(ca: &Ca, names: &[&str], usage: rcgen::ExtendedKeyUsagePurpose) -> Leaf {
    let mut p =
        rcgen::CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .expect("params");
    p.extended_key_usages = vec![usage];
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = p.signed_by(&key, &ca.issuer).expect("leaf");
    Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().clone(),
        key: PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    }
}

/// A TLS backend serving `cert` (ALPN h2 and http/1.1); with `client_ca`, it requires a
/// client certificate that CA signed. Answers say the SNI it got (`x-sni`) and whether a
/// client certificate came (`x-client-cert`); `hits` counts requests.
struct TlsBackend {
    addr: SocketAddr,
    hits: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

async fn tls_backend(cert: &Leaf, client_ca: Option<&Ca>) -> TlsBackend {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.der.clone()).expect("root");
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .expect("verifier");
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder
        .with_single_cert(vec![cert.der.clone()], cert.key.clone_key())
        .expect("server cert");
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hits = Arc::new(AtomicU64::new(0));
    let counter = hits.clone();
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                break;
            };
            let acceptor = acceptor.clone();
            let hits = counter.clone();
            conns.spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let session = tls.get_ref().1;
                let sni = session.server_name().unwrap_or("").to_owned();
                let client = session.peer_certificates().is_some_and(|c| !c.is_empty());
                let svc = hyper::service::service_fn(move |_req| {
                    hits.fetch_add(1, Ordering::Relaxed);
                    let mut resp = http::Response::new(body("tls-backend"));
                    let h = resp.headers_mut();
                    h.insert("x-sni", sni.parse().expect("v"));
                    h.insert(
                        "x-client-cert",
                        if client { "yes" } else { "no" }.parse().expect("v"),
                    );
                    async move { Ok::<_, std::convert::Infallible>(resp) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(TokioIo::new(tls), svc)
                .await;
            });
        }
    });
    TlsBackend { addr, hits, task }
}

/// An Ingress `name` (host `<name>.example`) to `service:443` over TLS
/// (`backend-protocol: HTTPS`) with these annotations.
fn ingress(name: &str, service: &str, annotations: &[(&str, &str)]) -> String {
    let host = format!("{name}.example");
    let mut all = annotations.to_vec();
    all.push(("backend-protocol", "HTTPS"));
    IngressYaml::nginx(name, &host)
        .service(service)
        .port(443)
        .nginx_annotations(&all)
        .yaml()
}

/// A Service `name` (port 443, `https`) with the one endpoint `addr`.
fn service(name: &str, addr: SocketAddr) -> String {
    service_port_yaml(name, ("https", 443), &[addr])
}

/// An Opaque Secret with these PEM values.
fn secret(name: &str, data: &[(&str, &str)]) -> String {
    let data = data
        .iter()
        .map(|(k, v)| format!("  {k}: {v:?}\n"))
        .collect::<String>();
    format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: shop}}\ntype: Opaque\nstringData:\n{data}"
    )
}

#[tokio::test]
async fn proxy_ssl_verifies_backends_and_presents_client_certificates() {
    use rcgen::ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
    let good_ca = ca("good ca");
    let other_ca = ca("other ca");
    // The default name weir verifies: <service>.<namespace>.svc.
    let server = leaf(&good_ca, &["web.shop.svc", "api.internal"], ServerAuth);
    let mtls_server = leaf(&good_ca, &["mtls.shop.svc"], ServerAuth);
    let client = leaf(&good_ca, &["weir.client"], ClientAuth);
    let web = tls_backend(&server, None).await;
    let mtls = tls_backend(&mtls_server, Some(&good_ca)).await;

    let verify = ("proxy-ssl-verify", "on");
    let manifests = [
        NGINX_CLASS.to_owned(),
        service("web", web.addr),
        service("mtls", mtls.addr),
        secret("good", &[("ca.crt", &good_ca.pem)]),
        secret("other", &[("ca.crt", &other_ca.pem)]),
        secret(
            "client",
            &[
                ("ca.crt", &good_ca.pem),
                ("tls.crt", &client.cert_pem),
                ("tls.key", &client.key_pem),
            ],
        ),
        ingress("good", "web", &[("proxy-ssl-secret", "shop/good"), verify]),
        ingress(
            "wrongca",
            "web",
            &[("proxy-ssl-secret", "shop/other"), verify],
        ),
        ingress(
            "wrongname",
            "web",
            &[
                ("proxy-ssl-secret", "shop/good"),
                verify,
                ("proxy-ssl-name", "other.internal"),
            ],
        ),
        ingress(
            "sni",
            "web",
            &[
                ("proxy-ssl-secret", "shop/good"),
                verify,
                ("proxy-ssl-name", "api.internal"),
                ("proxy-ssl-server-name", "on"),
            ],
        ),
        // Another CA, but verification off: served, as ingress-nginx's default.
        ingress("unverified", "web", &[("proxy-ssl-secret", "shop/other")]),
        ingress(
            "mtls",
            "mtls",
            &[("proxy-ssl-secret", "shop/client"), verify],
        ),
        ingress(
            "nocert",
            "mtls",
            &[("proxy-ssl-secret", "shop/good"), verify],
        ),
        ingress(
            "missing",
            "web",
            &[("proxy-ssl-secret", "shop/nope"), verify],
        ),
    ]
    .concat();
    let h = Harness::start(ProxyConfig::default()).await;
    let compiled = h.serve_manifests(&manifests, &["nginx"]);
    // The missing Secret is reported on the Ingress that names it.
    let missing = compiled
        .status
        .conditions
        .iter()
        .find(|(object, _)| format!("{object:?}").contains("\"missing\""))
        .map(|(_, conditions)| format!("{conditions:?}"))
        .expect("conditions of the missing Ingress");
    assert!(
        missing.contains("SecretNotFound") && missing.contains("shop/nope"),
        "{missing}"
    );

    for proto in BOTH {
        let mut c = h.client(proto).await;
        // Verified against the right CA and the default name; no SNI without proxy-ssl-name.
        let before = web.hits.load(Ordering::Relaxed);
        let r = c.get("good.example", "/").await;
        assert_eq!(r.status, 200, "{proto:?}");
        assert_eq!(&r.body[..], b"tls-backend");
        assert_eq!(r.header("x-sni"), Some(""), "{proto:?}");
        assert_eq!(r.header("x-client-cert"), Some("no"), "{proto:?}");
        assert_eq!(web.hits.load(Ordering::Relaxed), before + 1);

        // The name is verified and sent as SNI.
        let r = c.get("sni.example", "/").await;
        assert_eq!(r.status, 200, "{proto:?}");
        assert_eq!(r.header("x-sni"), Some("api.internal"), "{proto:?}");

        let r = c.get("unverified.example", "/").await;
        assert_eq!(r.status, 200, "{proto:?}");

        // Another CA or another name: the handshake fails, nothing reaches the backend (even
        // though verified connections to the same address are pooled).
        let before = web.hits.load(Ordering::Relaxed);
        for host in ["wrongca.example", "wrongname.example"] {
            let r = c.get(host, "/").await;
            assert_eq!(r.status, 502, "{host} {proto:?}");
        }
        assert_eq!(web.hits.load(Ordering::Relaxed), before, "{proto:?}");

        // The client certificate is presented; without one the backend refuses.
        let before = mtls.hits.load(Ordering::Relaxed);
        let r = c.get("mtls.example", "/").await;
        assert_eq!(r.status, 200, "{proto:?}");
        assert_eq!(r.header("x-client-cert"), Some("yes"), "{proto:?}");
        assert_eq!(mtls.hits.load(Ordering::Relaxed), before + 1);
        let r = c.get("nocert.example", "/").await;
        assert_eq!(r.status, 502, "{proto:?}");
        assert_eq!(mtls.hits.load(Ordering::Relaxed), before + 1, "{proto:?}");

        // No Secret: not served unverified but unavailable.
        let r = c.get("missing.example", "/").await;
        assert_eq!(r.status, 503, "{proto:?}");
    }
    web.task.abort();
    mtls.task.abort();
}

/// Active checks of a cluster with TLS settings use them: a backend that requires a client
/// certificate sees the probes (its handler runs only after a handshake with the certificate)
/// and the endpoint stays online.
#[tokio::test]
async fn active_checks_present_the_client_certificate() {
    use rcgen::ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
    let ca = ca("ca");
    let server = leaf(&ca, &["mtls.shop.svc"], ServerAuth);
    let client = leaf(&ca, &["weir.client"], ClientAuth);
    let mtls = tls_backend(&server, Some(&ca)).await;
    let policy = r#"---
apiVersion: weir.dev/v1alpha1
kind: BackendPolicy
metadata: {name: mtls, namespace: shop}
spec:
  targetRefs: [{group: "", kind: Service, name: mtls}]
  healthCheck:
    active: {type: HTTP, http: {path: /healthz}, interval: 50ms, timeout: 1s,
             healthyThreshold: 1, unhealthyThreshold: 1}
"#;
    let manifests = [
        NGINX_CLASS.to_owned(),
        service("mtls", mtls.addr),
        policy.to_owned(),
        secret(
            "client",
            &[
                ("ca.crt", &ca.pem),
                ("tls.crt", &client.cert_pem),
                ("tls.key", &client.key_pem),
            ],
        ),
        ingress(
            "mtls",
            "mtls",
            &[
                ("proxy-ssl-secret", "shop/client"),
                ("proxy-ssl-verify", "on"),
            ],
        ),
    ]
    .concat();
    let h = Harness::start(ProxyConfig::default()).await;
    h.serve_manifests(&manifests, &["nginx"]);
    // No request sent yet: only probes can reach the handler.
    wait_until("probes pass the mTLS handshake", || {
        mtls.hits.load(Ordering::Relaxed) >= 3
    })
    .await;
    for proto in BOTH {
        let mut c = h.client(proto).await;
        let r = c.get("mtls.example", "/").await;
        assert_eq!(r.status, 200, "{proto:?}");
        assert_eq!(r.header("x-client-cert"), Some("yes"), "{proto:?}");
    }
    mtls.task.abort();
}
