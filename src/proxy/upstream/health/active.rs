//! Active health checks: **one prober task per (endpoint address, check)**, shared by every
//! cluster and route that reaches the address with that check. The `Registry` counts the
//! memberships using each prober; the first starts it, the last one's release aborts it (and
//! takes back its verdict).
//!
//! - **Timing**: the first probe goes out after a random delay of up to a tenth of the
//!   interval (at most 100 ms), so a new endpoint is checked promptly and many endpoints do
//!   not probe in lockstep; then every interval, each jittered by ±10%. A probe without an
//!   answer within the check's timeout failed.
//! - **Verdict**: `unhealthy_threshold` consecutive failures mark the address down,
//!   `healthy_threshold` consecutive passes bring it back (each at least 1); every change
//!   bumps the health epoch so clusters rebuild their balancers.
//! - **A new endpoint starts healthy**: Kubernetes readiness is the first word, so traffic
//!   follows EndpointSlices within milliseconds (Envoy instead holds a host back until its
//!   first check passes).
//! - **Several checks on one address** (two clusters with different checks): the address is
//!   unhealthy while any of them says so.
//! - **Protocols**: probes go to the endpoint address directly. HTTP checks are HTTP/1.1
//!   `GET` (`Host`: the check's host, else the address; `Connection: close`); gRPC checks are
//!   `grpc.health.v1.Health/Check` over HTTP/2 (h2c). For a TLS cluster both are sent over
//!   TLS with the cluster's own settings (verified only when its BackendPolicy `tls` says so, as for its requests); TCP checks only connect.
//! - Probes are not requests: they do not count in `/clusters` totals, in-flight load or
//!   passive outlier detection.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::super::client::{cluster_connector, tls_connector};
use super::super::{EndpointState, TlsIdentity};
use crate::snapshot::{ActiveCheck, CheckKind, UpstreamTls};

/// What one prober probes: an address, a check, and whether the cluster speaks TLS.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ProberKey {
    pub(crate) address: SocketAddr,
    /// The TLS identity of the endpoint state it reports to (one prober per state).
    pub(crate) identity: TlsIdentity,
    pub(crate) check: ActiveCheck,
    pub(crate) tls: bool,
}

/// A running prober; dropping it stops the task and takes back its verdict.
pub(crate) struct Prober {
    task: Option<JoinHandle<()>>,
    verdict: Arc<Verdict>,
}

/// One prober's say about its address.
struct Verdict {
    endpoint: Arc<EndpointState>,
    /// (says down, stopped): under one lock so a probe finishing while the prober is
    /// stopped cannot leave a down vote behind.
    state: Mutex<(bool, bool)>,
}

impl Verdict {
    fn set(&self, down: bool) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (was, stopped) = *state;
        if stopped || was == down {
            return;
        }
        state.0 = down;
        self.endpoint.health.check_down(down);
        if down {
            tracing::info!(endpoint = %self.endpoint.address, "active health check failing; endpoint unhealthy");
        } else {
            tracing::info!(endpoint = %self.endpoint.address, "active health check passing; endpoint healthy");
        }
    }
}

impl Prober {
    /// Starts probing `endpoint` (its address is `key.address`). Without a tokio runtime
    /// (unit tests of the registry) nothing is probed.
    pub(crate) fn start(key: &ProberKey, endpoint: Arc<EndpointState>) -> Prober {
        let verdict = Arc::new(Verdict {
            endpoint,
            state: Mutex::new((false, false)),
        });
        let task = tokio::runtime::Handle::try_current()
            .ok()
            .map(|rt| rt.spawn(run(key.clone(), verdict.clone())));
        Prober { task, verdict }
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        let mut state = self.verdict.state.lock().unwrap_or_else(|p| p.into_inner());
        let (down, _) = *state;
        *state = (false, true);
        if down {
            self.verdict.endpoint.health.check_down(false);
        }
    }
}

/// Up to ±10% of `interval`.
fn jittered(interval: Duration) -> Duration {
    let ms = interval.as_millis().max(1) as u64;
    let spread = ms / 10;
    let low = ms - spread;
    Duration::from_millis(rand::random_range(low..=ms + spread))
}

async fn run(key: ProberKey, verdict: Arc<Verdict>) {
    let interval = key.check.interval.max(Duration::from_millis(1));
    let first = (interval.as_millis() as u64 / 10).clamp(1, 100);
    tokio::time::sleep(Duration::from_millis(rand::random_range(0..first))).await;
    let healthy = key.check.healthy_threshold.max(1);
    let unhealthy = key.check.unhealthy_threshold.max(1);
    let (mut passes, mut failures) = (0u32, 0u32);
    loop {
        let passed = probe_within(&key, verdict.endpoint.upstream_tls.as_deref()).await;
        verdict.endpoint.health.probed(passed);
        if passed {
            passes = passes.saturating_add(1);
            failures = 0;
            if passes >= healthy {
                verdict.set(false);
            }
        } else {
            failures = failures.saturating_add(1);
            passes = 0;
            if failures >= unhealthy {
                verdict.set(true);
            }
        }
        tokio::time::sleep(jittered(interval)).await;
    }
}

/// One probe within the check's timeout.
async fn probe_within(key: &ProberKey, settings: Option<&UpstreamTls>) -> bool {
    let timeout = if key.check.timeout.is_zero() {
        key.check.interval.max(Duration::from_millis(1))
    } else {
        key.check.timeout
    };
    let probe = probe_with(key.address, &key.check.kind, key.tls, settings);
    let passed = tokio::time::timeout(timeout, probe)
        .await
        .unwrap_or(Err(ProbeError::Timeout));
    match passed {
        Ok(()) => true,
        Err(error) => {
            tracing::debug!(endpoint = %key.address, %error, "health probe failed");
            false
        }
    }
}

/// Why a probe failed (for debug logs).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProbeError {
    #[error("no answer within the timeout")]
    Timeout,
    #[error("connect: {0}")]
    Connect(#[source] std::io::Error),
    #[error("{0}")]
    Protocol(String),
    #[error("status {0}")]
    Status(u16),
    #[error("health status {0}, not SERVING")]
    NotServing(u64),
}

fn protocol(e: impl std::fmt::Display) -> ProbeError {
    ProbeError::Protocol(e.to_string())
}

/// One probe of `kind` to `address` (over TLS when `tls`, unverified), without a timeout.
#[cfg(test)]
pub(crate) async fn probe(
    address: SocketAddr,
    kind: &CheckKind,
    tls: bool,
) -> Result<(), ProbeError> {
    probe_with(address, kind, tls, None).await
}

/// One probe of `kind` to `address` (over TLS when `tls`, with the cluster's TLS `settings`
/// when it has them: the same verification and client certificate as its requests), without
/// a timeout.
pub(crate) async fn probe_with(
    address: SocketAddr,
    kind: &CheckKind,
    tls: bool,
    settings: Option<&UpstreamTls>,
) -> Result<(), ProbeError> {
    let tcp = TcpStream::connect(address)
        .await
        .map_err(ProbeError::Connect)?;
    let _ = tcp.set_nodelay(true);
    if matches!(kind, CheckKind::Tcp) {
        return Ok(());
    }
    if !tls {
        return probe_over(tcp, address, kind).await;
    }
    // HTTP checks offer only `http/1.1`; gRPC ones offer `h2` as well.
    let http1 = matches!(kind, CheckKind::Http { .. });
    let (connector, name) = match settings {
        Some(settings) => (
            cluster_connector(settings, http1).map_err(ProbeError::Connect)?,
            settings.hostname.clone(),
        ),
        None => (
            tls_connector(http1),
            rustls::pki_types::ServerName::IpAddress(address.ip().into()),
        ),
    };
    let stream = connector
        .connect(name, tcp)
        .await
        .map_err(ProbeError::Connect)?;
    probe_over(stream, address, kind).await
}

async fn probe_over<T>(io: T, address: SocketAddr, kind: &CheckKind) -> Result<(), ProbeError>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match kind {
        CheckKind::Tcp => Ok(()),
        CheckKind::Http {
            path,
            host,
            expected_statuses,
        } => http(io, address, path, host, expected_statuses).await,
        CheckKind::Grpc { service } => grpc(io, address, service).await,
    }
}

async fn http<T>(
    io: T,
    address: SocketAddr,
    path: &str,
    host: &str,
    expected: &[u16],
) -> Result<(), ProbeError>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(protocol)?;
    let driver = tokio::spawn(conn);
    let host = if host.is_empty() {
        address.to_string()
    } else {
        host.to_owned()
    };
    let req = http::Request::get(if path.is_empty() { "/" } else { path })
        .header(http::header::HOST, host)
        .header(http::header::USER_AGENT, "weir-health-check")
        .header(http::header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(protocol)?;
    let answered = sender.send_request(req).await;
    let result = match answered {
        Ok(resp) => {
            let status = resp.status().as_u16();
            // Read (and drop) the body so the server is not cut off mid-answer.
            let _ = resp.into_body().collect().await;
            let passes = if expected.is_empty() {
                (200..=399).contains(&status)
            } else {
                expected.contains(&status)
            };
            if passes {
                Ok(())
            } else {
                Err(ProbeError::Status(status))
            }
        }
        Err(e) => Err(protocol(e)),
    };
    driver.abort();
    result
}

/// The gRPC health request message: field 1 (`service`, a string) when not empty, in a
/// length-prefixed gRPC frame (uncompressed).
pub(crate) fn grpc_request(service: &str) -> Bytes {
    let mut message = Vec::with_capacity(service.len() + 8);
    if !service.is_empty() {
        message.push(0x0a); // field 1, wire type 2 (length-delimited)
        let mut len = service.len() as u64;
        loop {
            let byte = (len & 0x7f) as u8;
            len >>= 7;
            if len == 0 {
                message.push(byte);
                break;
            }
            message.push(byte | 0x80);
        }
        message.extend_from_slice(service.as_bytes());
    }
    let mut frame = Vec::with_capacity(message.len() + 5);
    frame.push(0);
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    Bytes::from(frame)
}

fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first()?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The `status` (field 1, an enum) of a gRPC health response frame; 0 (`UNKNOWN`) when
/// absent, as protobuf defaults are.
pub(crate) fn grpc_status(frame: &[u8]) -> Result<u64, ProbeError> {
    let bad = || ProbeError::Protocol("malformed health response".into());
    if frame.len() < 5 || frame[0] != 0 {
        return Err(bad());
    }
    let len = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize;
    let mut msg = frame.get(5..5 + len).ok_or_else(bad)?;
    let mut status = 0;
    while !msg.is_empty() {
        let tag = varint(&mut msg).ok_or_else(bad)?;
        match tag & 7 {
            0 => {
                let v = varint(&mut msg).ok_or_else(bad)?;
                if tag >> 3 == 1 {
                    status = v;
                }
            }
            1 => msg = msg.get(8..).ok_or_else(bad)?,
            2 => {
                let n = varint(&mut msg).ok_or_else(bad)? as usize;
                msg = msg.get(n..).ok_or_else(bad)?;
            }
            5 => msg = msg.get(4..).ok_or_else(bad)?,
            _ => return Err(bad()),
        }
    }
    Ok(status)
}

/// `SERVING` in `grpc.health.v1.HealthCheckResponse.ServingStatus`.
const SERVING: u64 = 1;

async fn grpc<T>(io: T, address: SocketAddr, service: &str) -> Result<(), ProbeError>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = h2::client::handshake(io).await.map_err(protocol)?;
    let driver = tokio::spawn(conn);
    let result = grpc_call(sender, address, service).await;
    driver.abort();
    result
}

async fn grpc_call(
    sender: h2::client::SendRequest<Bytes>,
    address: SocketAddr,
    service: &str,
) -> Result<(), ProbeError> {
    let mut sender = sender.ready().await.map_err(protocol)?;
    let req = http::Request::post(format!("http://{address}/grpc.health.v1.Health/Check"))
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .header(http::header::USER_AGENT, "weir-health-check")
        .body(())
        .map_err(protocol)?;
    let (response, mut send) = sender.send_request(req, false).map_err(protocol)?;
    send.send_data(grpc_request(service), true)
        .map_err(protocol)?;
    let response = response.await.map_err(protocol)?;
    if response.status() != http::StatusCode::OK {
        return Err(ProbeError::Status(response.status().as_u16()));
    }
    // A trailers-only answer carries grpc-status in the headers.
    let grpc_ok = |h: &http::HeaderMap| h.get("grpc-status").map(|v| v.as_bytes() == b"0");
    if grpc_ok(response.headers()) == Some(false) {
        return Err(protocol("grpc-status not 0"));
    }
    let mut body = response.into_body();
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(protocol)?;
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(chunk.chunk());
        if data.len() > 64 * 1024 {
            return Err(protocol("health response too large"));
        }
    }
    let trailers = body.trailers().await.map_err(protocol)?;
    if trailers.as_ref().and_then(grpc_ok) != Some(true) {
        return Err(protocol("grpc-status not 0"));
    }
    match grpc_status(&data)? {
        SERVING => Ok(()),
        other => Err(ProbeError::NotServing(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::net::TcpListener;

    #[test]
    fn grpc_messages_round_trip() {
        assert_eq!(grpc_request("").as_ref(), &[0, 0, 0, 0, 0]);
        let r = grpc_request("web");
        assert_eq!(r.as_ref(), &[0, 0, 0, 0, 5, 0x0a, 3, b'w', b'e', b'b']);
        // A 200-byte name needs a two-byte length varint.
        let long = "x".repeat(200);
        let r = grpc_request(&long);
        assert_eq!(&r[5..8], &[0x0a, 0xc8, 0x01]);
        assert_eq!(grpc_status(&[0, 0, 0, 0, 2, 0x08, 1]).ok(), Some(1));
        assert_eq!(grpc_status(&[0, 0, 0, 0, 2, 0x08, 2]).ok(), Some(2));
        assert_eq!(grpc_status(&[0, 0, 0, 0, 0]).ok(), Some(0));
        // Unknown fields are skipped.
        assert_eq!(
            grpc_status(&[0, 0, 0, 0, 6, 0x12, 2, b'h', b'i', 0x08, 1]).ok(),
            Some(1)
        );
        assert!(grpc_status(&[0, 0, 0, 0, 9, 0x08]).is_err());
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..1000 {
            let d = jittered(Duration::from_millis(1000)).as_millis();
            assert!((900..=1100).contains(&d), "{d}");
        }
    }

    /// A tiny gRPC health server (h2c) answering `status` to every check, recording the
    /// `service` asked for.
    async fn grpc_server(status: u8) -> (SocketAddr, Arc<Mutex<Vec<Vec<u8>>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let asked = Arc::new(Mutex::new(Vec::new()));
        let seen = asked.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let Ok(mut conn) = h2::server::handshake(tcp).await else {
                        return;
                    };
                    while let Some(Ok((req, mut respond))) = conn.accept().await {
                        assert_eq!(req.uri().path(), "/grpc.health.v1.Health/Check");
                        let mut body = req.into_body();
                        let mut got = Vec::new();
                        while let Some(Ok(chunk)) = body.data().await {
                            got.extend_from_slice(&chunk);
                        }
                        seen.lock().expect("lock").push(got);
                        let resp = http::Response::builder()
                            .header("content-type", "application/grpc")
                            .body(())
                            .expect("response");
                        let mut send = respond.send_response(resp, false).expect("send");
                        send.send_data(Bytes::from(vec![0, 0, 0, 0, 2, 0x08, status]), false)
                            .expect("data");
                        let mut trailers = http::HeaderMap::new();
                        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                        send.send_trailers(trailers).expect("trailers");
                    }
                });
            }
        });
        (addr, asked)
    }

    #[tokio::test]
    async fn grpc_check_passes_on_serving_only() {
        let kind = CheckKind::Grpc {
            service: "web".into(),
        };
        let (serving, asked) = grpc_server(1).await;
        probe(serving, &kind, false).await.expect("SERVING passes");
        assert_eq!(
            asked.lock().expect("lock")[0],
            grpc_request("web").as_ref()[..]
        );
        let (not_serving, _) = grpc_server(2).await;
        assert!(matches!(
            probe(not_serving, &kind, false).await,
            Err(ProbeError::NotServing(2))
        ));
    }

    /// A raw HTTP/1.1 server (over TLS when `tls`) answering `status` to one request per
    /// connection, recording each request head.
    async fn http_server(status: u16, tls: bool) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let acceptor = tls.then(|| {
            let generated =
                rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("rcgen");
            let key = rustls::pki_types::PrivateKeyDer::Pkcs8(
                generated.signing_key.serialize_der().into(),
            );
            let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![generated.cert.der().clone()], key)
            .expect("cert");
            tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
        });
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
            mut io: S,
            status: u16,
            seen: &Mutex<Vec<String>>,
        ) {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match io.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            seen.lock()
                .expect("lock")
                .push(String::from_utf8_lossy(&head).into_owned());
            let reply =
                format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = io.write_all(reply.as_bytes()).await;
            let _ = io.shutdown().await;
        }
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, seen) = (acceptor.clone(), seen.clone());
                tokio::spawn(async move {
                    match acceptor {
                        Some(a) => {
                            if let Ok(tls) = a.accept(tcp).await {
                                answer(tls, status, &seen).await;
                            }
                        }
                        None => answer(tcp, status, &seen).await,
                    }
                });
            }
        });
        (addr, heads)
    }

    fn http_kind(host: &str, expected: &[u16]) -> CheckKind {
        CheckKind::Http {
            path: "/ready".into(),
            host: host.into(),
            expected_statuses: expected.to_vec(),
        }
    }

    #[tokio::test]
    async fn http_check_passes_on_the_expected_statuses() {
        let (ok, heads) = http_server(204, false).await;
        probe(ok, &http_kind("", &[]), false)
            .await
            .expect("2xx passes");
        let head = heads.lock().expect("lock")[0].to_ascii_lowercase();
        assert!(head.starts_with("get /ready http/1.1\r\n"), "{head}");
        assert!(head.contains(&format!("host: {ok}\r\n")), "{head}");
        assert!(
            probe(ok, &http_kind("app.example", &[200]), false)
                .await
                .is_err(),
            "204 is not in the expected list"
        );
        let head = heads.lock().expect("lock")[1].to_ascii_lowercase();
        assert!(head.contains("host: app.example\r\n"), "{head}");

        let (redirect, _) = http_server(302, false).await;
        probe(redirect, &http_kind("", &[]), false)
            .await
            .expect("3xx passes by default");
        let (failing, _) = http_server(500, false).await;
        assert!(matches!(
            probe(failing, &http_kind("", &[]), false).await,
            Err(ProbeError::Status(500))
        ));
        probe(failing, &http_kind("", &[500]), false)
            .await
            .expect("an expected 500 passes");
    }

    #[tokio::test]
    async fn http_check_of_a_tls_cluster_goes_over_tls() {
        let (addr, heads) = http_server(200, true).await;
        probe(addr, &http_kind("", &[]), true)
            .await
            .expect("over TLS");
        assert_eq!(heads.lock().expect("lock").len(), 1);
        // Cleartext to the TLS port gets no HTTP answer.
        assert!(probe(addr, &http_kind("", &[]), false).await.is_err());
    }

    #[tokio::test]
    async fn tcp_check_fails_once_nothing_listens() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        probe(addr, &CheckKind::Tcp, false)
            .await
            .expect("listening");
        drop(listener);
        assert!(probe(addr, &CheckKind::Tcp, false).await.is_err());
    }
}
