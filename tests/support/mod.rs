//! Shared fixtures for the proxy tests: real hyper backends on 127.0.0.1:0, a proxy
//! harness, HTTP/1.1, h2c and TLS clients, and fluent snapshot builders.
#![allow(dead_code, missing_docs)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use weir::proxy::{BoundListener, Proxy, ProxyConfig};
use weir::snapshot::{
    BackendTarget, Certificate, Cluster, ClusterKey, Endpoint, EndpointSet, EndpointSets, Filter,
    Listener, ListenerProtocol, PathMatch, Route, RouteAction, RouteId, RouteMatch, RouteTable,
    Snapshot, Timeouts, TlsConfig, UpstreamProtocol, VirtualHost,
};

mod manifests;
// The benches include this harness too and use none of the manifest builders.
#[allow(unused_imports)]
pub use manifests::*;

pub type Body = BoxBody<Bytes, Infallible>;

pub fn body(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

pub fn empty() -> Body {
    Empty::new().boxed()
}

/// Downstream protocol a test case runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    H1,
    H2,
}

pub const BOTH: [Proto; 2] = [Proto::H1, Proto::H2];

// ---------------------------------------------------------------- backends

/// A real hyper server (HTTP/1.1 and h2c on one port) answering with its name.
///
/// `GET /healthz` is its health endpoint: answered with [`Backend::set_health`]'s status
/// (200 at first) and counted in [`Backend::probes`], not in `hits`. Every other request
/// is answered [`Backend::fail_with`]'s status when one is set.
pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
    pub hits: Arc<AtomicU64>,
    knobs: Arc<Knobs>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// What a test changes in a running [`Backend`].
#[derive(Default)]
struct Knobs {
    /// `/healthz` hits.
    probes: AtomicU64,
    /// Status of `/healthz` (0: 200).
    health: AtomicU16,
    /// Status of every other request (0: the normal answer).
    fail: AtomicU16,
}

impl Backend {
    pub async fn start(name: &str) -> Backend {
        Self::start_on("127.0.0.1:0", name).await
    }

    pub async fn start_on(bind: &str, name: &str) -> Backend {
        let listener = TcpListener::bind(bind).await.expect("bind backend");
        let addr = listener.local_addr().expect("addr");
        let hits = Arc::new(AtomicU64::new(0));
        let (stop, mut stopped) = oneshot::channel();
        let name_s = name.to_string();
        let hits_c = hits.clone();
        let knobs = Arc::new(Knobs::default());
        let knobs_c = knobs.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    accepted = listener.accept() => {
                        let Ok((tcp, _)) = accepted else { continue };
                        let name = name_s.clone();
                        let hits = hits_c.clone();
                        let knobs = knobs_c.clone();
                        conns.spawn(async move {
                            let svc = service_fn(move |req| {
                                backend_handle(name.clone(), hits.clone(), knobs.clone(), req)
                            });
                            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                            let _ = builder
                                .serve_connection_with_upgrades(TokioIo::new(tcp), svc)
                                .await;
                        });
                    }
                }
            }
            conns.abort_all();
        });
        Backend {
            name: name.to_string(),
            addr,
            hits,
            knobs,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// `GET /healthz` requests seen so far.
    pub fn probes(&self) -> u64 {
        self.knobs.probes.load(Ordering::Relaxed)
    }

    /// The status `/healthz` answers from now on.
    pub fn set_health(&self, status: u16) {
        self.knobs.health.store(status, Ordering::Relaxed);
    }

    /// Every request but `/healthz` is answered `status` from now on (0: normally again).
    pub fn fail_with(&self, status: u16) {
        self.knobs.fail.store(status, Ordering::Relaxed);
    }

    pub fn endpoint(&self) -> Endpoint {
        Endpoint::new(self.addr)
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn seen(headers: &mut HeaderMap, from: &HeaderMap, name: &str) {
    if let Some(v) = from.get(name) {
        headers.insert(
            http::HeaderName::from_bytes(format!("x-seen-{name}").as_bytes()).expect("name"),
            v.clone(),
        );
    }
}

async fn backend_handle(
    name: String,
    hits: Arc<AtomicU64>,
    knobs: Arc<Knobs>,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let status = |s: u16| StatusCode::from_u16(s).unwrap_or(StatusCode::OK);
    if path == "/healthz" {
        knobs.probes.fetch_add(1, Ordering::Relaxed);
        let mut resp = Response::new(body("health\n"));
        *resp.status_mut() = status(match knobs.health.load(Ordering::Relaxed) {
            0 => 200,
            s => s,
        });
        return Ok(resp);
    }
    hits.fetch_add(1, Ordering::Relaxed);
    let mut out_headers = HeaderMap::new();
    out_headers.insert("x-backend", HeaderValue::from_str(&name).expect("name"));
    let fail = knobs.fail.load(Ordering::Relaxed);
    if fail != 0 {
        let mut resp = Response::new(body("failing\n"));
        *resp.status_mut() = status(fail);
        resp.headers_mut().extend(out_headers);
        return Ok(resp);
    }
    let authority = req
        .uri()
        .authority()
        .map(|a| a.to_string())
        .or_else(|| {
            req.headers()
                .get("host")
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_default();
    out_headers.insert(
        "x-seen-authority",
        HeaderValue::from_str(&authority).expect("a"),
    );
    out_headers.insert(
        "x-seen-path",
        HeaderValue::from_str(&req.uri().to_string()).expect("p"),
    );
    out_headers.insert(
        "x-seen-version",
        HeaderValue::from_str(&format!("{:?}", req.version())).expect("v"),
    );
    for h in [
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "x-real-ip",
        "forwarded",
        "x-request-id",
        "connection",
        "keep-alive",
        "x-hop",
        "te",
        "upgrade",
        "http2-settings",
    ] {
        seen(&mut out_headers, req.headers(), h);
    }
    let xff_lines = req.headers().get_all("x-forwarded-for").iter().count();
    out_headers.insert("x-seen-x-forwarded-for-lines", HeaderValue::from(xff_lines));

    if path == "/ws" && req.headers().contains_key("upgrade") {
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(up) = on.await {
                let mut io = TokioIo::new(up);
                let mut buf = [0u8; 1024];
                loop {
                    match io.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let mut echoed = b"echo:".to_vec();
                            echoed.extend_from_slice(&buf[..n]);
                            if io.write_all(&echoed).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            }
        });
        let mut resp = Response::new(empty());
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        resp.headers_mut()
            .insert("upgrade", HeaderValue::from_static("websocket"));
        resp.headers_mut()
            .insert("connection", HeaderValue::from_static("upgrade"));
        return Ok(resp);
    }
    if path == "/head-body" {
        // Misbehaves: a body whatever the method, HEAD included (hyper's HTTP/2 server sends
        // it; its HTTP/1 server drops it — `head_body_backend` is the HTTP/1 one).
        let mut resp = Response::new(body(HEAD_BODY));
        resp.headers_mut().extend(out_headers);
        return Ok(resp);
    }
    if let Some(ms) = path.strip_prefix("/slow/") {
        let ms: u64 = ms.parse().unwrap_or(100);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if path == "/trailers" {
        let undeclared = req.uri().query() == Some("undeclared");
        // gRPC-like: echo the request body, then trailers; report request trailers too.
        let collected = req.into_body().collect().await.expect("request body");
        let req_trailers = collected.trailers().cloned();
        let data = collected.to_bytes();
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        trailers.insert("grpc-message", HeaderValue::from_static("ok"));
        if let Some(t) = req_trailers.and_then(|t| t.get("x-client-trailer").cloned()) {
            trailers.insert("x-seen-client-trailer", t);
        }
        let frames = vec![
            Ok::<_, Infallible>(Frame::data(data)),
            Ok(Frame::trailers(trailers)),
        ];
        let mut resp = Response::new(StreamBody::new(futures::stream::iter(frames)).boxed());
        resp.headers_mut().extend(out_headers);
        resp.headers_mut()
            .insert("content-type", HeaderValue::from_static("application/grpc"));
        // HTTP/1.1 sends only the trailers declared up front (gRPC servers, speaking h2,
        // declare none: `?undeclared` behaves like them).
        if !undeclared {
            resp.headers_mut().insert(
                "trailer",
                HeaderValue::from_static("grpc-status, grpc-message, x-seen-client-trailer"),
            );
        }
        return Ok(resp);
    }
    let data = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let mut resp = Response::new(body(data));
    resp.headers_mut().extend(out_headers);
    resp.headers_mut()
        .insert("connection", HeaderValue::from_static("x-hop"));
    resp.headers_mut()
        .insert("x-hop", HeaderValue::from_static("1"));
    Ok(resp)
}

/// The body `/head-body` sends, HEAD or not.
pub const HEAD_BODY: &[u8] = b"head-body\n";

/// A raw HTTP/1.1 backend that misbehaves: every request, HEAD included, gets
/// `Content-Length: 10` and the 10 body bytes; the connection is closed after each answer.
pub async fn head_body_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut b = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut b).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&b[..n]),
                    }
                }
                let mut answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n",
                    HEAD_BODY.len()
                )
                .into_bytes();
                answer.extend_from_slice(HEAD_BODY);
                let _ = tcp.write_all(&answer).await;
            });
        }
    });
    addr
}

// ---------------------------------------------------------------- snapshot builders

pub fn key(service: &str) -> ClusterKey {
    ClusterKey::new("default", service, 80)
}

pub fn forward(service: &str) -> RouteAction {
    RouteAction::forward(key(service))
}

/// Name of the route table both listeners of a built snapshot serve.
pub const TABLE: &str = "main";

/// Fluent snapshot builder: `snapshot().host("a.example").prefix("/", "web")`. The snapshot
/// has the two listeners the harness serves, `http` and `https`, sharing one route table.
#[derive(Clone)]
pub struct SnapshotBuilder {
    snap: Snapshot,
    current: Option<String>,
}

pub fn snapshot() -> SnapshotBuilder {
    let mut snap = Snapshot::default();
    snap.route_tables
        .insert(TABLE.to_owned(), RouteTable::default());
    for (name, protocol) in [
        ("http", ListenerProtocol::Http),
        ("https", ListenerProtocol::Https),
    ] {
        snap.listeners.push(Listener {
            name: name.to_owned(),
            address: "127.0.0.1:0".parse().expect("addr"),
            protocol,
            route_table: TABLE.to_owned(),
            tls: (protocol == ListenerProtocol::Https).then(TlsConfig::default),
        });
    }
    SnapshotBuilder {
        snap,
        current: None,
    }
}

impl SnapshotBuilder {
    /// Starts (or continues) the virtual host for `host` (`*` = any, `*.x` = wildcard).
    pub fn host(mut self, host: &str) -> Self {
        self.current = Some(host.to_string());
        self
    }

    fn table(&mut self) -> &mut RouteTable {
        self.snap.route_tables.get_mut(TABLE).expect("table")
    }

    fn vhost(&mut self) -> &mut VirtualHost {
        let host = self.current.clone().expect("call host() first");
        let vhs = &mut self.table().virtual_hosts;
        let v = if host == "*" {
            vhs.any.get_or_insert_with(VirtualHost::default)
        } else if let Some(suffix) = host.strip_prefix('*') {
            vhs.wildcard.entry(suffix.to_string()).or_default()
        } else {
            vhs.exact.entry(host.clone()).or_default()
        };
        v.host = host;
        v
    }

    fn add_clusters(&mut self, action: &RouteAction) {
        if let RouteAction::Forward(f) = action {
            for b in &f.backends {
                if let BackendTarget::Cluster(cluster) = &b.target {
                    self.snap
                        .clusters
                        .entry(cluster.clone())
                        .or_insert_with(|| {
                            Arc::new(cluster_of(cluster.clone(), UpstreamProtocol::Http1))
                        });
                }
            }
        }
    }

    /// Adds a route to the current host, kept in precedence order (source order on ties).
    pub fn route_with(
        mut self,
        matches: RouteMatch,
        filters: Vec<Filter>,
        action: RouteAction,
    ) -> Self {
        let host = self.current.clone().unwrap_or_default();
        self.add_clusters(&action);
        let v = self.vhost();
        let name = format!("{host}/{}", v.routes.len());
        v.routes.push(Route {
            id: RouteId::default(),
            name,
            matches,
            filters,
            action,
            metrics_per_route: false,
        });
        // Stable sort: equal matches keep the order they were added in.
        v.routes
            .sort_by(|a, b| a.matches.precedence().cmp(&b.matches.precedence()));
        self
    }

    fn route(self, path: PathMatch, action: RouteAction) -> Self {
        self.route_with(RouteMatch::path(path), Vec::new(), action)
    }

    pub fn prefix(self, path: &str, service: &str) -> Self {
        self.route(PathMatch::Prefix(path.into()), forward(service))
    }

    pub fn exact(self, path: &str, service: &str) -> Self {
        self.route(PathMatch::Exact(path.into()), forward(service))
    }

    pub fn respond(self, path: &str, status: u16, text: &str) -> Self {
        self.route(
            PathMatch::Prefix(path.into()),
            RouteAction::respond(status, text),
        )
    }

    /// `service`'s cluster, created HTTP/1.1 when absent.
    fn cluster_mut(&mut self, service: &str) -> &mut Cluster {
        let cluster = self
            .snap
            .clusters
            .entry(key(service))
            .or_insert_with(|| Arc::new(cluster_of(key(service), UpstreamProtocol::Http1)));
        Arc::make_mut(cluster)
    }

    pub fn protocol(mut self, service: &str, protocol: UpstreamProtocol) -> Self {
        self.cluster_mut(service).protocol = protocol;
        self
    }

    pub fn timeouts(mut self, service: &str, timeouts: Timeouts) -> Self {
        self.cluster_mut(service).timeouts = timeouts;
        self
    }

    /// Changes any setting of `service`'s cluster (created HTTP/1.1 when absent): the
    /// balancer, health, retry, breakers, limits.
    pub fn cluster(mut self, service: &str, change: impl FnOnce(&mut Cluster)) -> Self {
        change(self.cluster_mut(service));
        self
    }

    pub fn default_backend(mut self, service: &str) -> Self {
        let action = forward(service);
        self.add_clusters(&action);
        self.table().default_route = Some(Route {
            id: RouteId::default(),
            name: weir::snapshot::router::DEFAULT_BACKEND_ROUTE.to_owned(),
            matches: RouteMatch::path(PathMatch::Prefix("/".into())),
            filters: Vec::new(),
            action,
            metrics_per_route: false,
        });
        self
    }

    fn tls(&mut self) -> &mut TlsConfig {
        self.snap
            .listeners
            .iter_mut()
            .find(|l| l.protocol == ListenerProtocol::Https)
            .and_then(|l| l.tls.as_mut())
            .expect("https listener")
    }

    pub fn cert(mut self, sni: &str, cert: Arc<Certificate>) -> Self {
        self.tls().sni.insert(sni.to_string(), cert);
        self
    }

    pub fn default_cert(mut self, cert: Arc<Certificate>) -> Self {
        self.tls().default = Some(cert);
        self
    }

    pub fn build(mut self) -> Arc<Snapshot> {
        self.snap.assign_route_ids();
        Arc::new(self.snap)
    }
}

pub fn cluster_of(key: ClusterKey, protocol: UpstreamProtocol) -> Cluster {
    Cluster::new(key, "", protocol)
}

pub fn endpoints(sets: &[(&str, &[&Backend])]) -> Arc<EndpointSets> {
    let mut out = BTreeMap::new();
    for (svc, backends) in sets {
        out.insert(key(svc), set(backends.iter().map(|b| b.addr)));
    }
    Arc::new(out)
}

pub fn set(addrs: impl IntoIterator<Item = SocketAddr>) -> Arc<EndpointSet> {
    let mut endpoints: Vec<Endpoint> = addrs.into_iter().map(Endpoint::new).collect();
    endpoints.sort_by_key(|e| e.address);
    Arc::new(EndpointSet { endpoints })
}

/// A certificate for `names`, as compile would produce it.
pub fn certificate(names: &[&str]) -> Arc<Certificate> {
    let generated =
        rcgen::generate_simple_self_signed(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("rcgen");
    let der = rustls::pki_types::PrivateKeyDer::Pkcs8(generated.signing_key.serialize_der().into());
    let signer = rustls::crypto::ring::sign::any_supported_type(&der).expect("key");
    Arc::new(Certificate {
        source: format!("default/{}", names[0]),
        subject_alt_names: names.iter().map(|s| s.to_string()).collect(),
        not_after: String::new(),
        key: Arc::new(rustls::sign::CertifiedKey::new(
            vec![generated.cert.der().clone()],
            signer,
        )),
    })
}

// ---------------------------------------------------------------- proxy harness

/// Every condition `compiled` reports, as (object name, reason), in report order.
pub fn condition_reasons(compiled: &weir::compile::Compiled) -> Vec<(String, &'static str)> {
    compiled
        .status
        .conditions
        .iter()
        .flat_map(|(o, cs)| cs.iter().map(move |c| (o.key.name.clone(), c.reason)))
        .collect()
}

/// Loads `yaml` as `weir run --manifests` reads a directory and compiles it ("now"
/// 2030-01-01, `--ingress-class` = `ingress_classes`, an HTTPS listener if `https`); the
/// objects and what they compiled to. The manifests must load without a diagnostic.
pub fn compile_manifests(
    yaml: &str,
    ingress_classes: &[&str],
    https: bool,
) -> (weir::store::Objects, weir::compile::Compiled) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("all.yaml"), yaml).expect("write");
    let (objects, diagnostics) = weir::store::files::load_dir(dir.path()).expect("load");
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let config = weir::compile::CompileConfig {
        controller_name: "weir.dev/ingress-controller".to_owned(),
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        https_addr: https.then(|| "127.0.0.1:0".parse().expect("addr")),
        default_backend: None,
        now_unix: 1_893_456_000,
        ingress_classes: ingress_classes.iter().map(|c| (*c).to_owned()).collect(),
        annotations_prefix: weir::compile::nginx::DEFAULT_PREFIX.to_owned(),
        gateway: weir::compile::gateway::GatewayConfig {
            bind: [127, 0, 0, 1].into(),
            ..Default::default()
        },
    };
    let compiled = weir::compile::compile(&objects, &config);
    (objects, compiled)
}

pub struct Harness {
    pub proxy: Proxy,
    pub http: SocketAddr,
    pub https: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), weir::proxy::ProxyError>>>,
}

impl Harness {
    pub async fn start(config: ProxyConfig) -> Harness {
        let proxy = Proxy::new(config);
        let http = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let https = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let (http_addr, https_addr) = (
            http.local_addr().expect("a"),
            https.local_addr().expect("a"),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let p = proxy.clone();
        let prebound = vec![
            BoundListener {
                name: "http".into(),
                protocol: ListenerProtocol::Http,
                socket: http,
            },
            BoundListener {
                name: "https".into(),
                protocol: ListenerProtocol::Https,
                socket: https,
            },
        ];
        let task = tokio::spawn(async move {
            p.serve(prebound, async move {
                let _ = stopped.await;
            })
            .await
        });
        Harness {
            proxy,
            http: http_addr,
            https: https_addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Loads and compiles `yaml` as [`compile_manifests`] does (HTTPS listener on), and
    /// publishes the endpoints and the snapshot.
    pub fn serve_manifests(&self, yaml: &str, ingress_classes: &[&str]) -> weir::compile::Compiled {
        let (objects, compiled) = compile_manifests(yaml, ingress_classes, true);
        let sets = weir::endpoints::build(&objects, &compiled.snapshot.clusters, None);
        self.proxy.publish_endpoints(Arc::new(sets));
        self.publish(Arc::new(compiled.snapshot.clone()));
        compiled
    }

    /// Publishes `snapshot` with its `http` and `https` listeners on the harness's sockets
    /// (a built snapshot says 127.0.0.1:0; other listeners keep their addresses).
    pub fn publish(&self, snapshot: Arc<Snapshot>) {
        self.proxy.publish_snapshot(self.placed(snapshot));
    }

    /// `snapshot` with its `http` and `https` listeners on the harness's addresses.
    pub fn placed(&self, snapshot: Arc<Snapshot>) -> Arc<Snapshot> {
        let mut snap = Snapshot::clone(&snapshot);
        for l in &mut snap.listeners {
            match l.name.as_str() {
                "http" => l.address = self.http,
                "https" => l.address = self.https,
                _ => {}
            }
        }
        Arc::new(snap)
    }

    /// Triggers graceful shutdown; returns the serve task to await.
    pub fn shutdown(&mut self) -> JoinHandle<Result<(), weir::proxy::ProxyError>> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.take().expect("serve task")
    }

    /// The value of one `/metrics` sample, named with its labels as rendered
    /// (`weir_downstream_rejected_total{listener="http",reason="bad_chunk"}`); 0 when absent.
    pub fn metric(&self, sample: &str) -> u64 {
        let mut out = String::new();
        self.proxy.render_metrics(&mut out);
        out.lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0)
    }

    /// `weir_downstream_rejected_total` of the `http` listener for `reason`.
    pub fn rejected(&self, reason: &str) -> u64 {
        self.metric(&format!(
            "weir_downstream_rejected_total{{listener=\"http\",reason=\"{reason}\"}}"
        ))
    }

    pub async fn client(&self, proto: Proto) -> Client {
        Client::connect(self.http, proto).await
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

// ---------------------------------------------------------------- clients

pub enum Client {
    H1(hyper::client::conn::http1::SendRequest<Body>),
    H2(hyper::client::conn::http2::SendRequest<Body>),
}

/// A finished response: status, headers, body, trailers.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn backend(&self) -> Option<&str> {
        self.header("x-backend")
    }
}

impl Client {
    pub async fn connect(addr: SocketAddr, proto: Proto) -> Client {
        let tcp = TcpStream::connect(addr).await.expect("connect proxy");
        Self::over(TokioIo::new(tcp), proto).await
    }

    pub async fn over<T>(io: T, proto: Proto) -> Client
    where
        T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        match proto {
            Proto::H1 => {
                let (s, c) = hyper::client::conn::http1::handshake(io).await.expect("h1");
                tokio::spawn(async move {
                    let _ = c.with_upgrades().await;
                });
                Client::H1(s)
            }
            Proto::H2 => {
                let (s, c) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .expect("h2");
                tokio::spawn(c);
                Client::H2(s)
            }
        }
    }

    pub fn proto(&self) -> Proto {
        match self {
            Client::H1(_) => Proto::H1,
            Client::H2(_) => Proto::H2,
        }
    }

    /// Sends a request; `uri` is a path, `host` goes to Host (h1) or `:authority` (h2).
    pub async fn send(&mut self, req: Request<Body>) -> hyper::Result<Response<Incoming>> {
        match self {
            Client::H1(s) => {
                s.ready().await?;
                s.send_request(req).await
            }
            Client::H2(s) => {
                s.ready().await?;
                s.send_request(req).await
            }
        }
    }

    pub fn request(&self, method: &str, host: &str, path: &str, b: Body) -> Request<Body> {
        let mut builder = Request::builder().method(method);
        builder = match self {
            Client::H1(_) => builder.uri(path).header("host", host),
            Client::H2(_) => builder.uri(format!("http://{host}{path}")),
        };
        builder.body(b).expect("request")
    }

    pub async fn get(&mut self, host: &str, path: &str) -> Answer {
        let req = self.request("GET", host, path, empty());
        self.answer(req).await
    }

    pub async fn answer(&mut self, req: Request<Body>) -> Answer {
        let resp = self.send(req).await.expect("response");
        collect(resp).await
    }

    /// A cloneable h2 sender (panics for h1).
    pub fn h2(&self) -> hyper::client::conn::http2::SendRequest<Body> {
        match self {
            Client::H2(s) => s.clone(),
            Client::H1(_) => panic!("not h2"),
        }
    }
}

pub async fn collect(resp: Response<Incoming>) -> Answer {
    let (parts, b) = resp.into_parts();
    let collected = b.collect().await.expect("body");
    let trailers = collected.trailers().cloned();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: collected.to_bytes(),
        trailers,
    }
}

/// Writes raw bytes on a fresh TCP connection and reads until the peer closes (or 5 s).
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> (Vec<u8>, bool) {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut out))
        .await
        .is_ok();
    (out, closed)
}

/// How a peer ended a raw exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    /// A clean close (FIN): the read ended.
    Fin,
    /// The read failed (a reset).
    Reset,
    /// Still open after 5 s.
    Open,
}

/// Like [`raw_exchange`], telling a clean close from a reset (an HTTP/2 client takes only
/// the former for "connection closed").
pub async fn raw_exchange_closing(addr: SocketAddr, bytes: &[u8]) -> (Vec<u8>, Closing) {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    let closing =
        match tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut out)).await {
            Ok(Ok(_)) => Closing::Fin,
            Ok(Err(_)) => Closing::Reset,
            Err(_) => Closing::Open,
        };
    (out, closing)
}

/// The first line of a raw HTTP/1 answer (empty when nothing came back).
pub fn status_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Waits (real time, 5 s at most) until `ready` holds; panics with `what` otherwise.
pub async fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// ---------------------------------------------------------------- gRPC health backend

/// A tiny h2c server (built on `h2`) that answers `grpc.health.v1.Health/Check` with
/// `SERVING` or `NOT_SERVING` ([`GrpcBackend::set_serving`]) and every other request with
/// 200 and `x-backend: name`, counted in `hits`.
pub struct GrpcBackend {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicU64>,
    /// Health checks answered.
    pub checks: Arc<AtomicU64>,
    serving: Arc<std::sync::atomic::AtomicBool>,
    task: JoinHandle<()>,
}

impl GrpcBackend {
    pub async fn start(name: &str) -> GrpcBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let hits = Arc::new(AtomicU64::new(0));
        let checks = Arc::new(AtomicU64::new(0));
        let serving = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (h, c, s, name) = (
            hits.clone(),
            checks.clone(),
            serving.clone(),
            name.to_owned(),
        );
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((tcp, _)) = listener.accept().await {
                let (hits, checks, serving, name) = (h.clone(), c.clone(), s.clone(), name.clone());
                conns.spawn(async move {
                    let Ok(mut conn) = h2::server::handshake(tcp).await else {
                        return;
                    };
                    while let Some(Ok((req, mut respond))) = conn.accept().await {
                        let check = req.uri().path() == "/grpc.health.v1.Health/Check";
                        let mut body = req.into_body();
                        while let Some(Ok(chunk)) = body.data().await {
                            let _ = body.flow_control().release_capacity(chunk.len());
                        }
                        if !check {
                            hits.fetch_add(1, Ordering::Relaxed);
                            let resp = Response::builder()
                                .header("x-backend", name.as_str())
                                .body(())
                                .expect("response");
                            let _ = respond.send_response(resp, true);
                            continue;
                        }
                        checks.fetch_add(1, Ordering::Relaxed);
                        let status = if serving.load(Ordering::Relaxed) {
                            1
                        } else {
                            2
                        };
                        let resp = Response::builder()
                            .header("content-type", "application/grpc")
                            .body(())
                            .expect("response");
                        let Ok(mut send) = respond.send_response(resp, false) else {
                            continue;
                        };
                        // A HealthCheckResponse frame: field 1 (status) = `status`.
                        let _ =
                            send.send_data(Bytes::from(vec![0, 0, 0, 0, 2, 0x08, status]), false);
                        let mut trailers = HeaderMap::new();
                        trailers.insert("grpc-status", HeaderValue::from_static("0"));
                        let _ = send.send_trailers(trailers);
                    }
                });
            }
        });
        GrpcBackend {
            addr,
            hits,
            checks,
            serving,
            task,
        }
    }

    pub fn set_serving(&self, serving: bool) {
        self.serving.store(serving, Ordering::Relaxed);
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}

impl Drop for GrpcBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A listener whose accept queue is full and never drained: new connects never complete.
pub fn black_hole() -> (std::net::TcpListener, std::net::TcpStream) {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind");
    socket.listen(0).expect("listen");
    let listener: std::net::TcpListener = socket.into();
    // The one connection a backlog of 0 admits, held so the queue stays full.
    let filler = std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("fill");
    (listener, filler)
}
