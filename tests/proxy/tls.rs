//! The HTTPS listener: certificate selection by SNI from the current snapshot (exact,
//! wildcard, default, generated fallback), rotation without restart, and requests over both
//! ALPN protocols.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::support::*;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use weir::proxy::ProxyConfig;

#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

pub(crate) struct Tls {
    pub(crate) client: Client,
    sans: Vec<String>,
    der: Vec<u8>,
    alpn: Option<Vec<u8>>,
}

pub(crate) async fn tls_connect(addr: SocketAddr, sni: &str, proto: Proto, tls13: bool) -> Tls {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = if tls13 {
        &[&rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS12]
    };
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![match proto {
        Proto::H1 => b"http/1.1".to_vec(),
        Proto::H2 => b"h2".to_vec(),
    }];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).expect("sni");
    let stream = connector.connect(name, tcp).await.expect("handshake");
    let (_, conn) = stream.get_ref();
    let der = conn.peer_certificates().expect("certs")[0].to_vec();
    let alpn = conn.alpn_protocol().map(|p| p.to_vec());
    let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("x509");
    let sans = cert
        .subject_alternative_name()
        .expect("san ext")
        .map(|s| {
            s.value
                .general_names
                .iter()
                .map(|g| match g {
                    x509_parser::extensions::GeneralName::DNSName(d) => d.to_string(),
                    other => format!("{other:?}"),
                })
                .collect()
        })
        .unwrap_or_default();
    let client = Client::over(TokioIo::new(stream), proto).await;
    Tls {
        client,
        sans,
        der,
        alpn,
    }
}

#[tokio::test]
async fn sni_selects_certificates_and_requests_flow_over_both_alpn_protocols() {
    let a = Backend::start("a").await;
    let h = Harness::start(ProxyConfig::default()).await;
    h.proxy.publish_endpoints(endpoints(&[("a", &[&a])]));
    h.publish(
        snapshot()
            .host("a.example")
            .prefix("/", "a")
            .host("*.wild.example")
            .prefix("/", "a")
            .cert("a.example", certificate(&["a.example"]))
            .cert("*.wild.example", certificate(&["*.wild.example"]))
            .build(),
    );
    for proto in BOTH {
        for tls13 in [true, false] {
            let mut t = tls_connect(h.https, "a.example", proto, tls13).await;
            assert_eq!(t.sans, vec!["a.example"]);
            let want_alpn: &[u8] = if proto == Proto::H2 {
                b"h2"
            } else {
                b"http/1.1"
            };
            assert_eq!(t.alpn.as_deref(), Some(want_alpn));
            let r = t.client.get("a.example", "/").await;
            assert_eq!(r.backend(), Some("a"), "{proto:?} tls13={tls13}");
            assert_eq!(r.header("x-seen-x-forwarded-proto"), Some("https"));
        }
        let t = tls_connect(h.https, "x.wild.example", proto, true).await;
        assert_eq!(t.sans, vec!["*.wild.example"]);
        // No certificate for this name and no default: the generated self-signed one.
        let mut t = tls_connect(h.https, "unknown.example", proto, true).await;
        assert_eq!(t.sans, vec!["weir.invalid"]);
        // The request is still routed (and gets 404: unknown host).
        assert_eq!(t.client.get("unknown.example", "/").await.status, 404);
    }
}

#[tokio::test]
async fn default_certificate_and_rotation_without_restart() {
    let a = Backend::start("a").await;
    let h = Harness::start(ProxyConfig::default()).await;
    h.proxy.publish_endpoints(endpoints(&[("a", &[&a])]));
    let first = certificate(&["a.example"]);
    let base = snapshot().host("a.example").prefix("/", "a");
    h.publish(
        base.clone()
            .cert("a.example", first.clone())
            .default_cert(certificate(&["default.example"]))
            .build(),
    );
    for proto in BOTH {
        let t = tls_connect(h.https, "unknown.example", proto, true).await;
        assert_eq!(t.sans, vec!["default.example"]);
    }
    let before = tls_connect(h.https, "a.example", Proto::H2, true).await;
    let rotated = certificate(&["a.example", "www.a.example"]);
    h.publish(base.cert("a.example", rotated).build());
    for proto in BOTH {
        let mut after = tls_connect(h.https, "a.example", proto, true).await;
        assert_ne!(
            after.der, before.der,
            "a new handshake gets the rotated certificate"
        );
        assert_eq!(after.sans, vec!["a.example", "www.a.example"]);
        assert_eq!(after.client.get("a.example", "/").await.status, 200);
    }
}

/// A TLS backend with a self-signed certificate offering `alpn`.
async fn tls_backend(alpn: &[&[u8]]) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let cert = certificate(&["backend.internal"]);
    let mut server_cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_cert_resolver(Arc::new(Fixed(cert.key.clone())));
    server_cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                break;
            };
            let acceptor = acceptor.clone();
            conns.spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let alpn = tls.get_ref().1.alpn_protocol().map(|p| p.to_vec());
                let svc =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let alpn = alpn.clone();
                        async move {
                            let mut resp = http::Response::new(body("tls-backend"));
                            resp.headers_mut().insert(
                                "x-alpn",
                                String::from_utf8(alpn.unwrap_or_default())
                                    .expect("utf8")
                                    .parse()
                                    .expect("v"),
                            );
                            resp.headers_mut().insert(
                                "x-seen-version",
                                format!("{:?}", req.version()).parse().expect("v"),
                            );
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(TokioIo::new(tls), svc)
                .await;
            });
        }
    });
    (addr, server)
}

#[tokio::test]
async fn tls_upstream_with_self_signed_certificate_negotiates_h2_or_http1() {
    for (offered, want_alpn, want_version) in [
        (&[&b"h2"[..], b"http/1.1"][..], "h2", "HTTP/2.0"),
        (&[&b"http/1.1"[..]][..], "http/1.1", "HTTP/1.1"),
    ] {
        let (addr, server) = tls_backend(offered).await;
        let h = Harness::start(ProxyConfig::default()).await;
        let mut sets = std::collections::BTreeMap::new();
        sets.insert(key("secure"), set([addr]));
        h.proxy.publish_endpoints(Arc::new(sets));
        h.publish(
            snapshot()
                .host("a.example")
                .prefix("/", "secure")
                .protocol("secure", weir::snapshot::UpstreamProtocol::Tls)
                .build(),
        );
        for proto in BOTH {
            let mut c = h.client(proto).await;
            for _ in 0..3 {
                let r = c.get("a.example", "/").await;
                assert_eq!(r.status, 200, "{proto:?}");
                assert_eq!(&r.body[..], b"tls-backend");
                assert_eq!(r.header("x-alpn"), Some(want_alpn));
                assert_eq!(r.header("x-seen-version"), Some(want_version));
            }
        }
        server.abort();
    }
}

#[derive(Debug)]
struct Fixed(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for Fixed {
    fn resolve(
        &self,
        _: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}
