//! One request, from head to upstream and back: route, balance, rewrite headers, forward,
//! stream the response, account for it.
//!
//! Header rules (documented for users in `ProxyConfig`):
//! - hop-by-hop headers are removed both ways: `Connection` and every header it lists,
//!   `Keep-Alive`, `Proxy-Connection`, `Transfer-Encoding`, `Upgrade` (kept when tunnelling),
//!   `TE` (except `TE: trailers`, which gRPC needs);
//! - `X-Forwarded-For` / `-Proto` / `-Host` follow [`ForwardedHeaders`];
//! - `X-Request-Id` follows [`RequestIdMode`] and is echoed on the response.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper::client::conn::http1;

use super::access_log::LogRecord;
use super::body::ProxyBody;
use super::config::{ForwardedHeaders, RequestIdMode};
use super::error::{Failure, synthetic};
use super::framing::Ambiguous;
use super::upstream::{ClusterState, EndpointState, H2Stream, Lease};
use super::{Inner, RouteRt};
use crate::balance::PickContext;
use crate::snapshot::{RequestHead, RouteAction};

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// What the server knows about the connection a request came on.
#[derive(Debug)]
pub(crate) struct ConnInfo {
    /// Name of the listener (in the snapshot) the connection came in on.
    pub(crate) listener: &'static str,
    pub(crate) peer: SocketAddr,
    /// The peer's IP, ready for `X-Forwarded-For`.
    pub(crate) peer_ip: HeaderValue,
    pub(crate) tls: bool,
    /// Raised by the HTTP/1 framing guard: refuse every request left on the connection.
    pub(crate) ambiguous: Arc<Ambiguous>,
}

/// Handles one request. Never fails: failures become responses via [`Failure::into_response`].
pub(crate) async fn handle(
    inner: Arc<Inner>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let start = Instant::now();
    let mut log = inner.access_log.enabled().then(|| {
        Box::new(LogRecord {
            method: req.method().to_string(),
            path: req.uri().path().to_string(),
            protocol: version_name(req.version()),
            peer: Some(conn.peer),
            ..LogRecord::default()
        })
    });
    // Accounts for the request (499, as ingress-nginx logs it) if the client goes away while
    // weir is still waiting for the upstream's response headers.
    let mut pending = Pending {
        inner: inner.clone(),
        start,
        route: None,
        log: log.take(),
        armed: true,
    };
    // Boxed: hyper and tokio move this request's future several times (spawn, task stage
    // changes); in a box, what they move stays a few hundred bytes instead of kilobytes.
    let result = Box::pin(forward(
        &inner,
        &conn,
        req,
        start,
        &mut pending.log,
        &mut pending.route,
    ))
    .await;
    pending.armed = false;
    let mut log = pending.log.take();
    let (resp, route) = match result {
        Ok(resp) => return resp,
        Err((failure, route, cluster)) => {
            failure.trace();
            if let Some(c) = &cluster {
                c.stats.error(failure.kind());
            }
            if let Some(l) = log.as_deref_mut() {
                l.error = failure.kind();
            }
            (failure.into_response(), route)
        }
    };
    finish_synthetic(&inner, resp, route, start, log)
}

/// See [`handle`]: the request's accounting while its future may still be dropped.
struct Pending {
    inner: Arc<Inner>,
    start: Instant,
    route: Option<Arc<RouteRt>>,
    log: Option<Box<LogRecord>>,
    armed: bool,
}

/// Status recorded for requests whose client went away before the response (nginx's
/// "client closed request").
const CLIENT_CLOSED: u16 = 499;

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let elapsed = self.start.elapsed();
        match &self.route {
            Some(r) => r.stats.record(CLIENT_CLOSED, elapsed),
            None => self.inner.unrouted.record(CLIENT_CLOSED),
        }
        if let Some(l) = self.log.as_deref_mut() {
            l.status = CLIENT_CLOSED;
            l.duration = elapsed;
            l.error = "downstream_cancelled";
            self.inner.access_log.write(l);
        }
    }
}

type Failed = (Failure, Option<Arc<RouteRt>>, Option<Arc<ClusterState>>);

/// Accounts for a response weir made itself (no upstream body to wait for).
fn finish_synthetic(
    inner: &Inner,
    resp: Response<ProxyBody>,
    route: Option<Arc<RouteRt>>,
    start: Instant,
    log: Option<Box<LogRecord>>,
) -> Response<ProxyBody> {
    let status = resp.status().as_u16();
    let elapsed = start.elapsed();
    match &route {
        Some(r) => r.stats.record(status, elapsed),
        None => inner.unrouted.record(status),
    }
    if let Some(mut l) = log {
        l.status = status;
        l.duration = elapsed;
        inner.access_log.write(&l);
    }
    resp
}

async fn forward(
    inner: &Arc<Inner>,
    conn: &ConnInfo,
    mut req: Request<Incoming>,
    start: Instant,
    log: &mut Option<Box<LogRecord>>,
    route_out: &mut Option<Arc<RouteRt>>,
) -> Result<Response<ProxyBody>, Failed> {
    if conn.ambiguous.is_set() {
        // Drain nothing of it: the connection closes after the 400.
        drop(req);
        return Err((Failure::AmbiguousFraming, None, None));
    }
    let rt = inner.runtime.load_full();

    // An owned copy of the host (for HTTP/1 a reference-counted slice of the read buffer),
    // so the request can be rewritten while the host is still borrowed.
    let Some(host_value) = request_host(&req) else {
        return Err((Failure::BadRequest("missing host\n"), None, None));
    };
    let Ok(host) = host_value.to_str() else {
        return Err((Failure::BadRequest("invalid host\n"), None, None));
    };
    let head = RequestHead {
        method: req.method(),
        host,
        path: req.uri().path(),
        query: req.uri().query(),
        headers: req.headers(),
    };
    let Some(m) = rt.snapshot.route(conn.listener, &head) else {
        if let Some(l) = log.as_deref_mut() {
            l.authority = host.to_string();
        }
        return Err((Failure::NoRoute, None, None));
    };
    let route = rt.route_for(m);
    route_out.clone_from(&route);
    if let Some(l) = log.as_deref_mut() {
        l.authority = host.to_string();
        l.route = m.name.clone();
    }
    let cluster = match (&m.action, route.as_ref().and_then(|r| r.cluster.clone())) {
        (RouteAction::Respond(r), _) => {
            let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let resp = synthetic(status, bytes::Bytes::from(r.body.clone()));
            return Ok(finish_synthetic(inner, resp, route, start, log.take()));
        }
        (RouteAction::Forward(_), Some(c)) => c,
        // The route table always resolves Forward routes; a miss means a publish race.
        (RouteAction::Forward(_), None) | (RouteAction::Redirect(_), _) => {
            return Err((Failure::NoEndpoint, route, None));
        }
    };
    if let Some(l) = log.as_deref_mut() {
        l.cluster = cluster.name.to_string();
    }

    let members = cluster.members.load_full();
    let Some(candidates) = members.balancer.pick(&PickContext::default()) else {
        return Err((Failure::NoEndpoint, route, Some(cluster)));
    };

    let downstream_h1 = req.version() < Version::HTTP_2;
    // WebSocket over HTTP/2 (RFC 8441 extended CONNECT) is tunnelled to the upstream as an
    // HTTP/1.1 Upgrade, the way Envoy does it.
    let h2_websocket = is_h2_websocket(&req);
    let upgrade = h2_websocket || is_upgrade(&req);
    let on_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let request_id = prepare_headers(inner, conn, &mut req, &host_value, upgrade);
    if h2_websocket {
        websocket_h2_to_h1(&mut req);
    }
    if let Some(l) = log.as_deref_mut() {
        l.request_id = request_id.to_str().unwrap_or_default().to_string();
    }

    let cfg = cluster.config.load_full();
    let mut last = Failure::NoEndpoint;
    let mut req = Some(req);
    let mut candidates = candidates;
    // `(endpoint, retried)`: a request that came back unsent from a pooled connection the
    // peer had closed is retried once on the same endpoint (over a new connection) before
    // moving on, so a stale keep-alive connection never costs a 502.
    let mut current: Option<(usize, bool)> = None;
    loop {
        let i = match current {
            Some((i, false)) => {
                current = Some((i, true));
                i
            }
            _ => match candidates.next() {
                Some(i) => {
                    current = None;
                    i
                }
                None => break,
            },
        };
        let ep = &members.endpoints[i];
        let lease = if upgrade {
            ep.connect(&cfg, true).await
        } else {
            ep.checkout(&cluster).await
        };
        let lease = match lease {
            Ok(l) => l,
            Err(f) if f.retry_safe() => {
                tracing::debug!(endpoint = %ep.address, error = ?f, "connect failed; trying next endpoint");
                cluster.stats.error(f.kind());
                last = f;
                continue;
            }
            Err(f) => return Err((f, route, Some(cluster))),
        };
        let Some(mut r) = req.take() else { break };
        set_request_target(&mut r, &lease, &host_value);
        // Counted until the response body is done — or until this future is dropped because
        // the client went away.
        let in_flight = InFlight::start(ep);
        ep.total.fetch_add(1, Ordering::Relaxed);
        // Upstream time is only logged: no clock read without an access log.
        let sent_at = log.is_some().then(Instant::now);
        let outcome = send(lease, r, cfg.timeouts.request).await;
        let (resp, h1, h2) = match outcome {
            Ok(ok) => ok,
            Err(SendError::NotSent(back, f)) => {
                // The connection died before the request left: safe to try again.
                drop(in_flight);
                ep.total.fetch_sub(1, Ordering::Relaxed);
                if current.is_none() {
                    current = Some((i, false));
                }
                last = f;
                req = Some(*back);
                continue;
            }
            Err(SendError::Failed(f)) => {
                drop(in_flight);
                return Err((f, route, Some(cluster)));
            }
        };
        let (mut parts, body) = resp.into_parts();
        let status = parts.status;
        strip_hop_by_hop(
            &mut parts.headers,
            status == StatusCode::SWITCHING_PROTOCOLS && upgrade,
        );
        parts.headers.insert(X_REQUEST_ID.clone(), request_id);
        if downstream_h1 {
            declare_grpc_trailers(&mut parts.headers);
        }
        if let Some(l) = log.as_deref_mut() {
            l.endpoint = Some(ep.address);
            l.upstream = sent_at.map(|t| t.elapsed());
        }
        let completion = Completion {
            inner: inner.clone(),
            start,
            status: status.as_u16(),
            route,
            in_flight,
            h1,
            _h2: h2,
            log: log.take(),
            errored: false,
        };
        if status == StatusCode::SWITCHING_PROTOCOLS && upgrade {
            let mut upstream_resp = Response::from_parts(parts, body);
            let upstream_io = hyper::upgrade::on(&mut upstream_resp);
            let (mut parts, _empty) = upstream_resp.into_parts();
            if h2_websocket {
                // RFC 8441 §5: a 2xx answers the CONNECT; the HTTP/1.1 handshake headers
                // have no meaning on HTTP/2.
                parts.status = StatusCode::OK;
                for h in [
                    header::UPGRADE,
                    header::CONNECTION,
                    header::SEC_WEBSOCKET_ACCEPT,
                ] {
                    parts.headers.remove(h);
                }
            }
            tunnel(on_upgrade, upstream_io);
            completion.finish(false);
            return Ok(Response::from_parts(parts, ProxyBody::empty()));
        }
        return Ok(Response::from_parts(
            parts,
            ProxyBody::upstream(body, completion),
        ));
    }
    Err((last, route, Some(cluster)))
}

enum SendError {
    /// Nothing was sent; the request comes back for another attempt.
    NotSent(Box<Request<Incoming>>, Failure),
    Failed(Failure),
}

type Sent = (
    Response<Incoming>,
    Option<http1::SendRequest<Incoming>>,
    Option<H2Stream>,
);

async fn send(lease: Lease, req: Request<Incoming>, timeout: Duration) -> Result<Sent, SendError> {
    match lease {
        Lease::H1 { mut sender, .. } => {
            let fut = sender.try_send_request(req);
            match with_timeout(timeout, fut).await {
                None => Err(SendError::Failed(Failure::Timeout)),
                Some(Ok(resp)) => Ok((resp, Some(sender), None)),
                Some(Err(mut e)) => match e.take_message() {
                    Some(back) => Err(SendError::NotSent(
                        Box::new(back),
                        Failure::Connect(std::io::Error::other(e.into_error())),
                    )),
                    None => Err(SendError::Failed(Failure::Upstream(e.into_error()))),
                },
            }
        }
        Lease::H2 { mut sender, conn } => {
            let fut = sender.try_send_request(req);
            match with_timeout(timeout, fut).await {
                None => Err(SendError::Failed(Failure::Timeout)),
                Some(Ok(resp)) => Ok((resp, None, Some(conn))),
                Some(Err(mut e)) => match e.take_message() {
                    Some(back) => Err(SendError::NotSent(
                        Box::new(back),
                        Failure::Connect(std::io::Error::other(e.into_error())),
                    )),
                    None => Err(SendError::Failed(Failure::Upstream(e.into_error()))),
                },
            }
        }
    }
}

async fn with_timeout<F: Future>(timeout: Duration, fut: F) -> Option<F::Output> {
    if timeout.is_zero() {
        Some(fut.await)
    } else {
        tokio::time::timeout(timeout, fut).await.ok()
    }
}

/// Joins the client's and the upstream's upgraded connections and copies bytes both ways.
fn tunnel(downstream: Option<hyper::upgrade::OnUpgrade>, upstream: hyper::upgrade::OnUpgrade) {
    let Some(downstream) = downstream else { return };
    tokio::spawn(async move {
        let (down, up) = match tokio::try_join!(downstream, upstream) {
            Ok(both) => both,
            Err(error) => {
                tracing::debug!(%error, "upgrade failed");
                return;
            }
        };
        let mut down = hyper_util::rt::TokioIo::new(down);
        let mut up = hyper_util::rt::TokioIo::new(up);
        if let Err(error) = tokio::io::copy_bidirectional(&mut down, &mut up).await {
            tracing::debug!(%error, "tunnel ended");
        }
    });
}

/// One request in flight to an endpoint, until dropped.
struct InFlight(Arc<EndpointState>);

impl InFlight {
    fn start(ep: &Arc<EndpointState>) -> Self {
        ep.load.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(ep.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.load.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Finishes a forwarded request when its response body is dropped.
pub(crate) struct Completion {
    inner: Arc<Inner>,
    start: Instant,
    status: u16,
    route: Option<Arc<RouteRt>>,
    in_flight: InFlight,
    h1: Option<http1::SendRequest<Incoming>>,
    _h2: Option<H2Stream>,
    log: Option<Box<LogRecord>>,
    errored: bool,
}

impl Completion {
    /// The upstream body failed mid-stream.
    pub(crate) fn body_error(&mut self) {
        self.errored = true;
    }

    /// Accounts for the request; `ended`: the response body was sent completely.
    pub(crate) fn finish(mut self, ended: bool) {
        if let Some(h1) = self.h1.take()
            && ended
            && !self.errored
        {
            self.in_flight.0.release_h1(h1);
        }
        let elapsed = self.start.elapsed();
        if let Some(r) = &self.route {
            r.stats.record(self.status, elapsed);
            if self.errored
                && let Some(c) = &r.cluster
            {
                c.stats.error("upstream");
            }
        }
        if let Some(mut l) = self.log.take() {
            l.status = self.status;
            l.duration = elapsed;
            if self.errored {
                l.error = "upstream_body";
            }
            self.inner.access_log.write(&l);
        }
    }
}

/// HTTP/1.1 only sends trailers the response declared in `Trailer`; HTTP/2 gRPC servers
/// declare none, so for gRPC responses to an HTTP/1.1 client weir declares gRPC's own.
fn declare_grpc_trailers(headers: &mut HeaderMap) {
    let grpc = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if grpc && !headers.contains_key(header::TRAILER) {
        headers.insert(
            header::TRAILER,
            HeaderValue::from_static("grpc-status, grpc-message, grpc-status-details-bin"),
        );
    }
}

fn version_name(v: Version) -> &'static str {
    match v {
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2",
        _ => "other",
    }
}

/// The request's host: `:authority` (HTTP/2, absolute-form) or the `Host` header.
fn request_host(req: &Request<Incoming>) -> Option<HeaderValue> {
    if let Some(a) = req.uri().authority() {
        return HeaderValue::from_str(a.as_str()).ok();
    }
    req.headers()
        .get(header::HOST)
        .filter(|h| !h.is_empty())
        .cloned()
}

fn is_h2_websocket(req: &Request<Incoming>) -> bool {
    req.method() == http::Method::CONNECT
        && req
            .extensions()
            .get::<hyper::ext::Protocol>()
            .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"))
}

/// Turns an extended CONNECT (`:protocol websocket`) into the equivalent HTTP/1.1 upgrade
/// request: `GET`, `Upgrade: websocket`, and a fresh `Sec-WebSocket-Key` (HTTP/2 has none).
fn websocket_h2_to_h1(req: &mut Request<Incoming>) {
    *req.method_mut() = http::Method::GET;
    req.extensions_mut().remove::<hyper::ext::Protocol>();
    let headers = req.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    let key: [u8; 16] = rand::random();
    headers.insert(header::SEC_WEBSOCKET_KEY, base64(&key));
}

/// Standard base64 with padding (16 bytes → 24 characters).
fn base64(bytes: &[u8]) -> HeaderValue {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(ALPHABET[(n >> 18) as usize & 63]);
        out.push(ALPHABET[(n >> 12) as usize & 63]);
        out.push(if chunk.len() > 1 {
            ALPHABET[(n >> 6) as usize & 63]
        } else {
            b'='
        });
        out.push(if chunk.len() > 2 {
            ALPHABET[n as usize & 63]
        } else {
            b'='
        });
    }
    HeaderValue::from_bytes(&out).expect("invariant: base64 is a valid header value")
}

fn is_upgrade(req: &Request<Incoming>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && req
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .any(|v| has_token(v, "upgrade"))
}

fn has_token(v: &HeaderValue, token: &str) -> bool {
    v.to_str()
        .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        .unwrap_or(false)
}

/// Removes hop-by-hop headers. With `upgrade`, keeps `Connection: upgrade` and `Upgrade`.
fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    // Most messages carry none: one pass over the names instead of a lookup per header.
    if !upgrade && !headers.keys().any(is_hop_by_hop) {
        return;
    }
    // Headers named in Connection are hop-by-hop too.
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        if upgrade && name == header::UPGRADE {
            continue;
        }
        headers.remove(name);
    }
    headers.remove(&KEEP_ALIVE);
    headers.remove(&PROXY_CONNECTION);
    headers.remove(header::TRANSFER_ENCODING);
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::CONNECTION);
        headers.remove(header::UPGRADE);
    }
}

/// Whether `name` is removed by [`strip_hop_by_hop`] even when `Connection` lists nothing.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
        || name == KEEP_ALIVE
        || name == PROXY_CONNECTION
}

/// Rewrites the request headers for the upstream; returns the request id.
fn prepare_headers(
    inner: &Inner,
    conn: &ConnInfo,
    req: &mut Request<Incoming>,
    host: &HeaderValue,
    upgrade: bool,
) -> HeaderValue {
    let headers = req.headers_mut();
    // One pass over the names decides whether any hop-by-hop header (or `TE`) is there.
    if upgrade || headers.keys().any(|n| n == header::TE || is_hop_by_hop(n)) {
        let trailers = headers
            .get_all(header::TE)
            .iter()
            .any(|v| has_token(v, "trailers"));
        strip_hop_by_hop(headers, upgrade);
        headers.remove(header::TE);
        if trailers {
            headers.insert(header::TE, HeaderValue::from_static("trailers"));
        }
    }

    let peer_ip = &conn.peer_ip;
    let proto = HeaderValue::from_static(if conn.tls { "https" } else { "http" });
    match inner.config.forwarded {
        ForwardedHeaders::Overwrite => {
            headers.insert(X_FORWARDED_FOR.clone(), peer_ip.clone());
            headers.insert(X_FORWARDED_PROTO.clone(), proto);
            headers.insert(X_FORWARDED_HOST.clone(), host.clone());
        }
        ForwardedHeaders::Trust => {
            let joined = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
                Some(prev) if !prev.trim().is_empty() => {
                    HeaderValue::from_str(&format!("{prev}, {}", conn.peer.ip())).ok()
                }
                _ => Some(peer_ip.clone()),
            };
            if let Some(v) = joined {
                headers.insert(X_FORWARDED_FOR.clone(), v);
            }
            if !headers.contains_key(&X_FORWARDED_PROTO) {
                headers.insert(X_FORWARDED_PROTO.clone(), proto);
            }
            if !headers.contains_key(&X_FORWARDED_HOST) {
                headers.insert(X_FORWARDED_HOST.clone(), host.clone());
            }
        }
    }

    let keep = match inner.config.request_id {
        RequestIdMode::PreserveOrGenerate => headers
            .get(&X_REQUEST_ID)
            .filter(|v| valid_request_id(v))
            .cloned(),
        RequestIdMode::Generate => None,
    };
    let mut id = keep.unwrap_or_else(new_request_id);
    // Unique per request: HPACK-indexing it (upstream request, downstream response) only
    // churns both dynamic tables, evicting the entries that do repeat.
    id.set_sensitive(true);
    headers.insert(X_REQUEST_ID.clone(), id.clone());
    id
}

fn valid_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic())
}

/// A random UUID v4, formatted without allocation beyond the header value itself.
fn new_request_id() -> HeaderValue {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 36];
    let mut o = 0;
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out[o] = b'-';
            o += 1;
        }
        out[o] = HEX[(b >> 4) as usize];
        out[o + 1] = HEX[(b & 0x0f) as usize];
        o += 2;
    }
    HeaderValue::from_bytes(&out)
        .expect("invariant: hex digits and dashes are a valid header value")
}

/// Puts the request in the form the upstream connection needs: origin-form plus `Host` for
/// HTTP/1.1, absolute-form (`:scheme`, `:authority`) for HTTP/2.
fn set_request_target(req: &mut Request<Incoming>, lease: &Lease, host: &HeaderValue) {
    match lease {
        Lease::H1 { .. } => {
            *req.version_mut() = Version::HTTP_11;
            if req.uri().authority().is_some() {
                let pq = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/");
                if let Ok(uri) = Uri::try_from(pq) {
                    *req.uri_mut() = uri;
                }
            }
            req.headers_mut().insert(header::HOST, host.clone());
        }
        Lease::H2 { .. } => {
            *req.version_mut() = Version::HTTP_2;
            if req.uri().authority().is_none() {
                let mut parts = std::mem::take(req.uri_mut()).into_parts();
                parts.scheme = Some(http::uri::Scheme::HTTP);
                parts.authority = host.to_str().ok().and_then(|h| h.parse().ok());
                if parts.path_and_query.is_none() {
                    parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
                }
                if let Ok(uri) = Uri::from_parts(parts) {
                    *req.uri_mut() = uri;
                }
            } else if req.uri().scheme().is_none() {
                let mut parts = std::mem::take(req.uri_mut()).into_parts();
                parts.scheme = Some(http::uri::Scheme::HTTP);
                if let Ok(uri) = Uri::from_parts(parts) {
                    *req.uri_mut() = uri;
                }
            }
            req.headers_mut().remove(header::HOST);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_4648_vectors() {
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xff; 16]).len(), 24);
    }

    #[test]
    fn request_ids_are_uuid_v4() {
        let id = new_request_id();
        let s = id.to_str().expect("ascii");
        assert_eq!(s.len(), 36);
        assert_eq!(&s[14..15], "4");
        assert!(matches!(&s[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(new_request_id(), id);
    }

    #[test]
    fn hop_by_hop_headers_and_those_listed_in_connection_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }
}
