//! The request path, as phases over one request's context ([`Ctx`]):
//!
//! 1. **accept** — the connection is no longer half-received (`admission`); refuse a request
//!    the framing guard flagged (ambiguous framing, a malformed chunked body: `framing`);
//!    take the host (`host`: one `Host`, agreeing with an absolute-form target; HTTP/1.1
//!    must send it); the upgrade allow-list. A refusal here is 400 and closes the connection.
//! 2. **normalize** — the path, before anything looks at it (`normalize`): dot segments,
//!    unreserved escapes, repeated slashes; what is forwarded is the normalized path.
//! 3. **route** — the listener's route table ([`crate::snapshot::RouteTable::route`]).
//! 4. **request filters** — the route's, in order (`filter`); one may answer early, and
//!    `ExternalAuth` waits for its subrequest (`subrequest`, over the same phases 6–7).
//! 5. **action** — `Respond` and `Redirect` answer here; `Forward` picks a backend by weight
//!    and runs that backend's request filters.
//! 6. **pick endpoint** — the cluster's balancer gives candidates in preference order.
//! 7. **upstream** — the cluster's `max_requests` breaker admits the request; a pooled
//!    connection (`upstream`), the request sent; what failed or answered with a retriable
//!    status is sent again to another endpoint as the cluster's retry policy allows
//!    (`Attempts::run`, the rules in `super::retry`). A route's `ErrorPages`
//!    (`filter::error_pages`) sends a request whose cluster has no endpoint to its cluster
//!    instead, and replaces an answer with one of its statuses, after the attempts, by its
//!    cluster's answer to a request of its own.
//! 8. **response filters** — backend's, then route's, in reverse order; also on local replies.
//! 9. **log/metrics** — when the response body ends ([`Completion`]), or at once for a local
//!    reply; a request whose client goes away first is accounted as 499.
//!
//! Every answer weir makes itself — direct responses, redirects, failures, filters that
//! answer early — is a [`LocalReply`] and leaves through [`Ctx::local_reply`], so it gets the
//! same headers (`X-Request-Id`, response filters), logging and metrics as a forwarded one.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use tokio::sync::{mpsc, watch};

use super::access_log::LogRecord;
use super::admission::Pending;
use super::affinity;
use super::body::{Body, ResponseBody};
use super::error::{Failure, LocalReply};
use super::filter::{
    self, FilterCluster, FilterContext, RequestFacts, RouteFilterState, body_limit,
    concurrency_limit, error_pages, url_rewrite,
};
use super::framing::{Findings, Flaw};
use super::h2_conn::{self, Streams};
use super::headers;
use super::host;
use super::metrics::Accounting;
use super::normalize::normalize_path;
use super::redirect::{self, RedirectRequest};
use super::retry::{self, ActiveRetry, Admitted, Limit, Reason, Refusal};
use super::tunnel::{self, UpgradeDecision};
use super::upstream::{ClusterState, EndpointState, Members, REPLAY_LIMIT, Replay, SendError};
use super::{Inner, ListenerSlot, ListenerView, Picker, RouteRt};
use crate::balance::{Outcome, PickContext, Tried};
use crate::snapshot::{BackendTarget, Cluster, Filter, RequestHead, Route, RouteAction};

/// What the server knows about the connection a request came on.
pub(crate) struct ConnInfo {
    /// The listener it was accepted on (its current routes, its counters).
    pub(crate) listener: Arc<ListenerSlot>,
    pub(crate) peer: SocketAddr,
    /// The peer's IP, ready for `X-Forwarded-For`.
    pub(crate) peer_ip: HeaderValue,
    pub(crate) tls: bool,
    /// The local port (for redirects that keep the listener's port).
    pub(crate) local_port: u16,
    /// What the HTTP/1 framing guard found: the requests to refuse.
    pub(crate) framing: Arc<Findings>,
    /// HTTP/1 requests handed over so far (hyper hands them over in order): the next one's
    /// index, to match the guard's findings.
    pub(crate) requests: AtomicU64,
    /// The connection's place among the listener's half-received connections.
    pub(crate) pending: Arc<Pending>,
    /// Held by tunnels too, so a drain waits for them.
    pub(crate) alive: mpsc::Sender<()>,
    /// Becomes `true` when the connection's listener drains (removed, or shutdown).
    pub(crate) drain: watch::Receiver<bool>,
    /// The connection's open streams (for the HTTP/2 idle timeout); a tunnel holds one.
    pub(crate) streams: Arc<Streams>,
}

/// `HTTP2-Settings`, sent with `Upgrade: h2c`.
static HTTP2_SETTINGS: http::HeaderName = http::HeaderName::from_static("http2-settings");

/// Status recorded for requests whose client went away before the response (nginx's
/// "client closed request").
const CLIENT_CLOSED: u16 = 499;

/// One request's context through the phases.
struct Ctx {
    inner: Arc<Inner>,
    conn: Arc<ConnInfo>,
    view: Arc<ListenerView>,
    start: Instant,
    request_id: HeaderValue,
    /// Counters the request is accounted in: the route's (no backend yet) or its backend's.
    stats: Option<Arc<Accounting>>,
    /// The cluster it was sent to, for per-cluster error counters.
    cluster: Option<Arc<ClusterState>>,
    log: Option<Box<LogRecord>>,
    /// Accounted on drop (as 499) unless a response took the accounting over.
    armed: bool,
    /// A HEAD request: whatever answers it, no body goes downstream (RFC 9110 §9.3.2).
    head: bool,
    /// What the filters' response phase needs to know about the request.
    facts: RequestFacts,
    /// The request's counts in concurrency limits: released when the request is done
    /// (moved into the response body's [`Completion`] once the upstream answered).
    held: concurrency_limit::Held,
}

impl Drop for Ctx {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let elapsed = self.start.elapsed();
        match &self.stats {
            Some(s) => s.record(CLIENT_CLOSED, elapsed),
            None => self.inner.no_cluster.record(CLIENT_CLOSED, elapsed),
        }
        self.conn.listener.stats.answered(CLIENT_CLOSED);
        if let Some(l) = self.log.as_deref_mut() {
            l.status = CLIENT_CLOSED;
            l.duration = elapsed;
            l.error = "downstream_cancelled";
            self.inner.access_log.write(l);
        }
    }
}

/// The filters whose response phase applies to a response: the route's, and the chosen
/// backend's once there is one.
#[derive(Clone, Copy)]
struct FilterChain<'a> {
    route: &'a Route,
    backend: Option<usize>,
    /// The clusters the route's filters send to.
    clusters: &'a [FilterCluster],
    state: &'a RouteFilterState,
}

/// Handles one request. Never fails: failures become local replies.
pub(crate) async fn handle(
    inner: Arc<Inner>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Response<ResponseBody> {
    let log = inner.access_log.enabled().then(|| {
        Box::new(LogRecord {
            method: req.method().to_string(),
            path: req.uri().path().to_string(),
            protocol: version_name(req.version()),
            peer: Some(conn.peer),
            ..LogRecord::default()
        })
    });
    let request_id = headers::request_id(inner.config.request_id, req.headers());
    let view = conn.listener.view.load_full();
    let head = req.method() == http::Method::HEAD;
    let mut ctx = Ctx {
        inner,
        conn,
        view,
        start: Instant::now(),
        request_id,
        stats: None,
        cluster: None,
        log,
        armed: true,
        head,
        facts: RequestFacts::default(),
        held: concurrency_limit::Held::default(),
    };
    if let Some(l) = ctx.log.as_deref_mut() {
        l.request_id = ctx.request_id.to_str().unwrap_or_default().to_string();
    }
    // Boxed: hyper and tokio move this request's future several times (spawn, task stage
    // changes); in a box, what they move stays a few hundred bytes instead of kilobytes.
    Box::pin(run(&mut ctx, req)).await
}

impl Ctx {
    /// The one local-reply path: every answer weir makes itself leaves through here.
    fn local_reply(
        &mut self,
        reply: LocalReply,
        chain: Option<FilterChain<'_>>,
    ) -> Response<ResponseBody> {
        self.armed = false;
        let LocalReply {
            status,
            headers,
            body,
            close,
            error,
        } = reply;
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = status;
        *resp.headers_mut() = headers;
        if self.head {
            // The head of the GET answer, its Content-Length included; no content.
            let len = HeaderValue::from(body.len());
            resp.headers_mut()
                .entry(header::CONTENT_LENGTH)
                .or_insert(len);
        } else {
            *resp.body_mut() = Body::full(body);
        }
        if close {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        let (mut parts, body) = resp.into_parts();
        if let Some(chain) = chain {
            self.response_filters(chain, &mut parts);
        }
        parts
            .headers
            .insert(headers::X_REQUEST_ID.clone(), self.request_id.clone());
        let status = status.as_u16();
        let elapsed = self.start.elapsed();
        match &self.stats {
            Some(s) => s.record(status, elapsed),
            None => self.inner.no_cluster.record(status, elapsed),
        }
        self.conn.listener.stats.answered(status);
        if let Some(mut l) = self.log.take() {
            l.status = status;
            l.duration = elapsed;
            if !error.is_empty() {
                l.error = error;
            }
            self.inner.access_log.write(&l);
        }
        Response::from_parts(parts, ResponseBody::local(body))
    }

    /// Response phase: the backend's filters, then the route's (each in reverse order).
    fn response_filters(&self, chain: FilterChain<'_>, parts: &mut http::response::Parts) {
        let route = chain.route;
        let fctx = FilterContext {
            conn: &self.conn,
            route,
            facts: &self.facts,
            clusters: chain.clusters,
            body_empty: false,
            state: chain.state,
        };
        if let Some(i) = chain.backend
            && let RouteAction::Forward(f) = &route.action
            && let Some(b) = f.backends.get(i)
        {
            filter::response(&b.filters, &fctx, parts);
        }
        filter::response(&route.filters, &fctx, parts);
    }

    fn fail(&mut self, failure: Failure, chain: Option<FilterChain<'_>>) -> Response<ResponseBody> {
        failure.trace();
        if let Some(reason) = failure.rejection() {
            self.conn.listener.stats.rejected(reason);
        }
        if let Some(c) = &self.cluster {
            c.stats.error(failure.kind());
        }
        self.local_reply(failure.reply(), chain)
    }
}

/// The phases; returns what to answer.
async fn run(ctx: &mut Ctx, mut req: Request<Incoming>) -> Response<ResponseBody> {
    // 1. accept
    ctx.conn.pending.arrived();
    if req.version() < Version::HTTP_2 {
        let index = ctx.conn.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(flaw) = ctx.conn.framing.refuses(index) {
            // Drain nothing of it: the connection closes after the 400.
            drop(req);
            let failure = match flaw {
                Flaw::Ambiguous => Failure::AmbiguousFraming,
                Flaw::BadChunk => Failure::BadChunk,
            };
            return ctx.fail(failure, None);
        }
    }
    if let Err(why) = h2_conn::check_request(&req) {
        return ctx.fail(Failure::BadRequest(why), None);
    }
    // An owned copy of the host (for HTTP/1 a reference-counted slice of the read buffer),
    // so the request can be rewritten while the host is still borrowed.
    let host_value = match host::request_host(&req) {
        Ok(h) => h,
        Err(failure) => return ctx.fail(failure, None),
    };
    let Ok(host) = host_value.to_str() else {
        return ctx.fail(Failure::BadRequest("invalid host\n"), None);
    };
    if let Some(l) = ctx.log.as_deref_mut() {
        l.authority = host.to_string();
    }
    let upgrade = match upgrade_decision(&req) {
        UpgradeDecision::NotRequested => Upgrade::None,
        UpgradeDecision::Tunnel if req.version() == Version::HTTP_2 => Upgrade::H2WebSocket,
        UpgradeDecision::Tunnel => Upgrade::WebSocket,
        UpgradeDecision::IgnoreH2c => {
            // Served as the plain HTTP/1.1 request it also is (as Envoy does); the upgrade
            // headers never reach the backend.
            let h = req.headers_mut();
            h.remove(header::UPGRADE);
            h.remove(&HTTP2_SETTINGS);
            Upgrade::None
        }
        UpgradeDecision::Refuse => return ctx.fail(Failure::UpgradeRefused, None),
    };

    // 2. normalize (the path the route matches is the path the backend gets)
    let path = match normalize_path(req.uri().path(), ctx.inner.config.escaped_slashes) {
        Ok(Cow::Borrowed(_)) => None,
        Ok(Cow::Owned(normalized)) => Some(normalized),
        Err(e) => return ctx.fail(Failure::BadPath(e), None),
    };
    if let Some(normalized) = path {
        set_path(&mut req, &normalized);
    }

    // 3. route
    let view = ctx.view.clone();
    let Some(table) = view.table() else {
        return ctx.fail(Failure::NoRoute, None);
    };
    let head = RequestHead {
        method: req.method(),
        host,
        path: req.uri().path(),
        query: req.uri().query(),
        headers: req.headers(),
    };
    let Some(route) = table.route(&head) else {
        return ctx.fail(Failure::NoRoute, None);
    };
    let Some(route_rt) = view.runtime.routes.get(route.id.0 as usize).cloned() else {
        // A route id the runtime does not know: the snapshot and its runtime disagree.
        debug_assert!(false, "route ids are dense");
        return ctx.fail(Failure::NoRoute, None);
    };
    ctx.stats = Some(route_rt.local.clone());
    if let Some(l) = ctx.log.as_deref_mut() {
        l.route = route.name.clone();
    }
    let chain = FilterChain {
        route,
        backend: None,
        clusters: &route_rt.filter_clusters,
        state: &route_rt.filters,
    };

    // 4. request filters (the route's), after weir's own header rules so that they can
    // override them
    headers::prepare_upstream(
        &ctx.inner.config.forwarded,
        &ctx.conn,
        req.headers_mut(),
        &host_value,
        upgrade != Upgrade::None,
        &ctx.request_id,
    );
    let (mut parts, body) = req.into_parts();
    ctx.facts = RequestFacts::capture(&parts.method, &parts.headers);
    // `ErrorPages` needs the request as it arrived (`X-Original-URI`, `X-Format`).
    let error_pages = error_pages_of(route, &route_rt.filter_clusters);
    let arrived = error_pages.is_some().then(|| {
        let mut head = Request::new(());
        *head.uri_mut() = parts.uri.clone();
        if let Some(accept) = parts.headers.get(header::ACCEPT) {
            head.headers_mut().insert(header::ACCEPT, accept.clone());
        }
        head.into_parts().0
    });
    let fctx = FilterContext {
        conn: &ctx.conn,
        route,
        facts: &ctx.facts,
        clusters: &route_rt.filter_clusters,
        body_empty: hyper::body::Body::is_end_stream(&body),
        state: &route_rt.filters,
    };
    if let Err(reply) = filter::request(&route.filters, &fctx, &mut parts).await {
        return ctx.local_reply(*reply, Some(chain));
    }

    // 5. action
    let forward = match &route.action {
        RouteAction::Respond(r) => {
            let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let reply = LocalReply::text(status, Bytes::from(r.body.clone()));
            return ctx.local_reply(reply, Some(chain));
        }
        RouteAction::Redirect(r) => {
            let rreq = RedirectRequest {
                scheme: if ctx.conn.tls { "https" } else { "http" },
                host,
                listener_port: ctx.conn.local_port,
                path: parts.uri.path(),
                query: parts.uri.query(),
                matched: &route.matches.path,
            };
            let reply = redirect::reply(r, &rreq);
            return ctx.local_reply(reply, Some(chain));
        }
        RouteAction::Forward(f) => f,
    };
    let Some(b) = route_rt.pick_backend() else {
        return ctx.fail(Failure::NoBackend, Some(chain));
    };
    let backend = &forward.backends[b];
    let backend_rt = &route_rt.backends[b];
    ctx.stats = Some(backend_rt.stats.clone());
    let chain = FilterChain {
        route,
        backend: Some(b),
        clusters: &route_rt.filter_clusters,
        state: &route_rt.filters,
    };
    if let Err(reply) = filter::request(&backend.filters, &fctx, &mut parts).await {
        return ctx.local_reply(*reply, Some(chain));
    }
    let cluster = match (&backend.target, &backend_rt.cluster) {
        (BackendTarget::Respond(r), _) => {
            let status =
                StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let reply = LocalReply::text(status, Bytes::from(r.body.clone()));
            return ctx.local_reply(reply, Some(chain));
        }
        (BackendTarget::Cluster(_), Some(c)) => c.clone(),
        // The runtime resolves every cluster of the snapshot; a miss means a publish race.
        (BackendTarget::Cluster(_), None) => {
            return ctx.fail(Failure::NoEndpoint, Some(chain));
        }
    };
    if let Some(l) = ctx.log.as_deref_mut() {
        l.cluster = cluster.name.to_string();
    }
    ctx.cluster = Some(cluster.clone());
    // What the request filters asked of the upstream phase: another host (URLRewrite), a
    // limit on a streamed body (BodyLimit).
    let upstream_host = parts.extensions.remove::<url_rewrite::UpstreamHost>();
    let limit = parts.extensions.remove::<body_limit::Limit>();
    if let Some(held) = parts.extensions.remove::<concurrency_limit::Held>() {
        ctx.held = held;
    }
    let body_ends = http_body::Body::is_end_stream(&body);
    let mut body = Body::incoming(body);
    let mut body_limit = None;
    if let Some(limit) = limit
        && !body_ends
    {
        let tripped = Arc::new(AtomicBool::new(false));
        body = body.limited(limit.0, tripped.clone());
        body_limit = Some(tripped);
    }
    let errors = match (error_pages, &arrived) {
        (Some((pages, state)), Some(head)) => Some(error_pages::Plan::new(
            pages,
            state,
            &cluster.key,
            head,
            &ctx.request_id,
        )),
        _ => None,
    };
    let req = Request::from_parts(parts, body);
    let fwd = Forwarding {
        host_value: upstream_host.as_ref().map_or(&host_value, |h| &h.0),
        upgrade,
        chain,
        cluster,
        body_limit,
        errors,
        timeouts: forward.timeouts(),
    };
    // Not boxed again: `handle` boxed the whole request future once.
    forward_upstream(ctx, req, fwd).await
}

/// What the upstream phase needs from the earlier ones.
struct Forwarding<'a> {
    host_value: &'a HeaderValue,
    upgrade: Upgrade,
    chain: FilterChain<'a>,
    cluster: Arc<ClusterState>,
    /// Set when the request body passed its `BodyLimit` (then a failed exchange is 413).
    body_limit: Option<Arc<AtomicBool>>,
    /// The route's `ErrorPages`, if it has one.
    errors: Option<error_pages::Plan<'a>>,
    /// The route's own timeouts.
    timeouts: crate::snapshot::RouteTimeouts,
}

/// The route's `ErrorPages` filter and its cluster's runtime state, if it has one and the
/// cluster resolved (else the route is served without it).
fn error_pages_of<'a>(
    route: &'a Route,
    clusters: &[FilterCluster],
) -> Option<(&'a crate::snapshot::ErrorPages, Arc<ClusterState>)> {
    route.filters.iter().find_map(|f| match f {
        Filter::ErrorPages(e) => clusters
            .iter()
            .find(|c| c.state.key == e.cluster)
            .map(|c| (&**e, c.state.clone())),
        _ => None,
    })
}

/// Phases 6–8: pick an endpoint, send, and shape the response.
async fn forward_upstream(
    ctx: &mut Ctx,
    mut req: Request<Body>,
    fwd: Forwarding<'_>,
) -> Response<ResponseBody> {
    let Forwarding {
        host_value,
        upgrade,
        chain,
        mut cluster,
        body_limit,
        mut errors,
        timeouts,
    } = fwd;
    // 6. pick endpoint (per attempt, in `Attempts::run`)
    let mut members = cluster.members();
    if members.endpoints.is_empty() {
        // ingress-nginx swaps a backend without endpoints for the `default-backend`; that
        // answer is not replaced again.
        let Some(plan) = errors.take() else {
            return ctx.fail(Failure::NoEndpoint, Some(chain));
        };
        plan.divert(&mut req);
        cluster = plan.state;
        members = cluster.members();
        if members.endpoints.is_empty() {
            return ctx.fail(Failure::NoEndpoint, Some(chain));
        }
        if let Some(l) = ctx.log.as_deref_mut() {
            l.cluster = cluster.name.to_string();
        }
        ctx.cluster = Some(cluster.clone());
    }
    // No upgrade is intercepted: its answer is the tunnel's.
    if upgrade != Upgrade::None {
        errors = None;
    }

    let downstream_h1 = req.version() < Version::HTTP_2;
    // WebSocket over HTTP/2 (RFC 8441 extended CONNECT) is tunnelled to the upstream as an
    // HTTP/1.1 Upgrade, the way Envoy does it.
    let h2_websocket = upgrade == Upgrade::H2WebSocket;
    let upgrade = upgrade != Upgrade::None;
    let on_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    if h2_websocket {
        headers::websocket_h2_to_h1(&mut req);
    }

    // 7. upstream
    let cfg = cluster.config.load_full();
    let affinity = cfg.lb.policy.hash_key().map_or_else(Default::default, |k| {
        affinity::of(k, req.headers(), req.uri(), ctx.conn.peer.ip())
    });
    let attempts = Attempts {
        members: &members,
        cluster: &cluster,
        cfg: &cfg,
        host_value,
        upgrade,
        logged: ctx.log.is_some(),
        hash: affinity.hash,
        after_sending: true,
        body_limit: body_limit.as_deref(),
        // A route's own timeouts (HTTPRoute `timeouts`) replace the cluster's.
        per_try: match timeouts.backend_request {
            t if t.is_zero() => per_try_timeout(&cfg),
            t => t,
        },
    };
    let total = match timeouts.request {
        t if t.is_zero() => cfg.timeouts.total,
        t => t,
    };
    let total = effective_total(total, ctx.inner.config.max_request_duration);
    let deadline = (!total.is_zero()).then(|| tokio::time::Instant::from_std(ctx.start) + total);
    let sent = match deadline {
        None => attempts.run(req, None).await,
        Some(at) => {
            let run = attempts.run(req, Some(at));
            match tokio::time::timeout_at(at, run).await {
                Ok(sent) => sent,
                Err(_) => Err(Failure::TotalTimeout),
            }
        }
    };
    let sent = match sent {
        Ok(sent) => sent,
        // However the upstream client reported the body that failed, it was the limit: the
        // client's fault, not the upstream's.
        Err(_) if body_limit.is_some_and(|t| t.load(Ordering::Relaxed)) => {
            return ctx.fail(Failure::BodyTooLarge, Some(chain));
        }
        Err(f) => return ctx.fail(f, Some(chain)),
    };
    if let Some(l) = ctx.log.as_deref_mut() {
        l.endpoint = Some(sent.endpoint);
        l.upstream = sent.upstream;
    }
    let status = sent.response.status().as_u16();
    let (response, in_flight) = match errors.filter(|p| p.pages.replaces(status)) {
        None => (sent.response, sent.in_flight),
        Some(plan) => {
            // The upstream's answer is dropped (its body unread) and the error cluster's
            // answer to its own request goes to the client instead.
            drop(sent);
            let sub = plan.request(status, ctx.head, ctx.conn.peer.ip());
            let timeout =
                deadline.map(|at| at.saturating_duration_since(tokio::time::Instant::now()));
            match subrequest(&plan.state, sub, host_value, timeout).await {
                Ok(answer) => (answer.response, answer._in_flight),
                Err(f) => return ctx.fail(f, Some(chain)),
            }
        }
    };
    respond(
        ctx,
        response,
        chain,
        in_flight,
        deadline,
        Shape {
            upgrade,
            h2_websocket,
            downstream_h1,
            set_cookie: affinity.set_cookie,
        },
        on_upgrade,
    )
}

/// The whole-request bound: the cluster's total timeout and the proxy-wide ceiling, the
/// shorter of those set (zero: unset).
fn effective_total(
    cluster: std::time::Duration,
    ceiling: std::time::Duration,
) -> std::time::Duration {
    match (cluster.is_zero(), ceiling.is_zero()) {
        (true, _) => ceiling,
        (false, true) => cluster,
        (false, false) => cluster.min(ceiling),
    }
}

/// Phase 7: the attempts of one request, each to the endpoint the balancer picks.
struct Attempts<'a> {
    members: &'a Members,
    cluster: &'a ClusterState,
    cfg: &'a Cluster,
    host_value: &'a HeaderValue,
    upgrade: bool,
    /// Whether upstream time goes to the access log.
    logged: bool,
    /// The request's affinity-key hash, for hashing balancers.
    hash: Option<u64>,
    /// Whether the policy's triggers that fire after the request was sent (reset, timeout,
    /// statuses) apply: not to filters' own subrequests, which retry only what was not
    /// processed.
    after_sending: bool,
    /// Set when the request body passed its `BodyLimit`: never sent again.
    body_limit: Option<&'a AtomicBool>,
    /// One attempt's wait for the response headers.
    per_try: std::time::Duration,
}

/// A response head from an endpoint, with what accounts for it.
struct Sent {
    response: Response<Body>,
    in_flight: InFlight,
    endpoint: SocketAddr,
    upstream: Option<std::time::Duration>,
}

/// What the retry rules say after an attempt.
enum Decision {
    /// Send the request again after this backoff.
    Retry(std::time::Duration),
    /// The failure or response stands.
    Stop,
}

/// One request's retry state across its attempts.
struct Retrying {
    /// Retries started so far (bounded by `num_retries`).
    used: u32,
    /// Whether it may be sent again after the upstream may have processed it: an idempotent
    /// method, no upgrade, and a policy with such triggers.
    after_processing: bool,
    /// Its place among the cluster's retries in flight, from its first retry on.
    guard: Option<ActiveRetry>,
    /// When its first attempt began (the policy's `timeout` counts from here).
    started: tokio::time::Instant,
}

impl Attempts<'_> {
    /// Sends the request, one attempt to one endpoint at a time, until one answers or the
    /// cluster's [`crate::snapshot::RetryPolicy`] says stop.
    ///
    /// First the cluster's `max_requests` circuit breaker admits it (else 503 at once). Then,
    /// per attempt:
    /// - an endpoint whose HTTP/1 connections are all busy is skipped at first, and waited
    ///   for (its pending queue, up to the queue timeout) once every candidate was tried;
    ///   so is, once, an endpoint that answers but timed out a connect (overloaded: its
    ///   connection window shrank, so the request waits for a connection there);
    /// - a request that came back unsent from a pooled connection the peer had closed is
    ///   sent once more on the same endpoint (a new connection), free: it is not a retry;
    ///   so is an idempotent one whose HTTP/1 connection failed before any answer (the peer
    ///   closed a pooled one as the request went out — the keep-alive race — or a new one
    ///   as its process was killed; a dead endpoint then fails the connect, which is
    ///   retried elsewhere);
    /// - any other failure, and a response with a retriable status, goes to
    ///   [`Attempts::retry_after`]: a retry goes to another endpoint while an untried one
    ///   is left (the balancer's fallback), after a jittered backoff. A connect failure
    ///   or a refused stream (nothing processed) may be retried whatever the method; a
    ///   reset, a timeout or a status only for an idempotent method whose body could be
    ///   kept for a replay. When retries are exhausted (or the budget or a breaker says
    ///   no), the last failure stands, and the last response is returned as it is.
    ///
    /// Every attempt that reached an endpoint is `observe`d, retried or not (passive health
    /// sees every answer). `deadline` (the whole-request timeout) bounds each attempt's wait
    /// for headers, and no backoff runs past it; nor does any backoff end past the policy's
    /// retry `timeout` after the first attempt (no retry starts later than that).
    async fn run(
        &self,
        req: Request<Body>,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Sent, Failure> {
        let cfg = self.cfg;
        let stats = &self.cluster.stats;
        let Some(request_guard) = stats.traffic.admit(&cfg.breakers) else {
            stats.breaker_open(Limit::Requests);
            return Err(Failure::MaxRequests);
        };
        let idempotent = retry::idempotent(req.method());
        let mut state = Retrying {
            used: 0,
            after_processing: self.after_sending
                && !self.upgrade
                && idempotent
                && retry::retries_after_sending(&cfg.retry),
            guard: None,
            started: tokio::time::Instant::now(),
        };
        let mut last = Failure::NoEndpoint;
        let mut req = req;
        // A copy of the request, kept while an attempt may need sending again: from the
        // start when a processed attempt may be retried (unless the body is declared too
        // long to keep), else from the first connection that may refuse it.
        let mut replay: Option<Replay> = None;
        if state.after_processing {
            let too_long = http_body::Body::size_hint(req.body()).lower() > REPLAY_LIMIT as u64;
            if too_long {
                state.after_processing = false;
            } else {
                let (kept, r) = Replay::keep(req);
                replay = Some(kept);
                req = r;
            }
        }
        // An endpoint to try again before moving on (a stale pooled connection).
        let mut again: Option<usize> = None;
        // The endpoint that already had its stale-connection resend.
        let mut resent: Option<usize> = None;
        // Whether an idempotent request already moved on, free, from an endpoint whose
        // connections kept dying unanswered (once per request).
        let mut moved = false;
        // The first candidate found with every connection busy.
        let mut busy: Option<usize> = None;
        // Whether a connect timeout on an overloaded endpoint already sent the request back
        // to wait in a pending queue (once: the queue timeout bounds that wait).
        let mut requeued = false;
        // Whether the next attempt, a granted retry, may go to an endpoint already tried
        // (when none is left untried): after a refusal or a processed attempt, not after a
        // connect failure.
        let mut reuse_tried = false;
        let mut tried = Tried::default();
        let mut attempt = 0u32;
        loop {
            // One granted retry, at most one such pick: resends that are free (a stale
            // connection) never cycle over the tried endpoints.
            let reuse = std::mem::take(&mut reuse_tried);
            let (i, wait) = match again.take() {
                Some(i) => (i, true),
                None => match self.pick(&tried, attempt) {
                    Some(i) => (i, false),
                    None => match busy.take() {
                        Some(i) => (i, true),
                        None if reuse => match self.pick_any(&tried, attempt) {
                            Some(i) => (i, true),
                            None => return Err(last),
                        },
                        None => return Err(last),
                    },
                },
            };
            tried.push(i);
            attempt += 1;
            let ep = &self.members.endpoints[i].state;
            let conn = if self.upgrade {
                ep.connect_upgrade(cfg).await.map(Some)
            } else {
                ep.checkout(cfg, wait).await
            };
            let conn = match conn {
                Ok(Some(c)) => c,
                Ok(None) => {
                    busy.get_or_insert(i);
                    continue;
                }
                Err(f) if f.retry_safe() => {
                    tracing::debug!(endpoint = %ep.address, error = ?f, "connect failed");
                    stats.error(f.kind());
                    if matches!(f, Failure::Connect(_) | Failure::ConnectTimeout) {
                        self.members.observe(i, cfg, &Outcome::failed());
                    }
                    if matches!(f, Failure::ConnectTimeout) && !requeued && ep.overloaded(cfg) {
                        requeued = true;
                        busy.get_or_insert(i);
                    }
                    last = f;
                    let next = busy.is_some() || self.untried_left(&tried) > 0;
                    if !next {
                        return Err(last);
                    }
                    match self.retry_after(&mut state, Reason::ConnectFailure, None, deadline) {
                        Decision::Retry(backoff) => {
                            pause(backoff).await;
                            continue;
                        }
                        Decision::Stop => return Err(last),
                    }
                }
                Err(f) => {
                    if matches!(f, Failure::QueueFull) {
                        stats.breaker_open(Limit::Pending);
                    }
                    return Err(f);
                }
            };
            headers::set_request_target(&mut req, conn.version(), self.host_value);
            // An HTTP/1 connection the peer may close as the request goes out (a pooled one
            // in the keep-alive race, a new one to a process being killed): an idempotent
            // request is kept, to resend if it dies without an answer.
            let resendable =
                conn.version() == http::Version::HTTP_11 && !self.upgrade && idempotent;
            if replay.is_none() && (conn.may_refuse() || resendable) {
                let (kept, r) = Replay::keep(req);
                replay = Some(kept);
                req = r;
            }
            // Counted until the response body is done — or until this future is dropped
            // because the client went away.
            let mut in_flight = InFlight::start(ep);
            ep.total.fetch_add(1, Ordering::Relaxed);
            let sent_at = Instant::now();
            let timeout = attempt_timeout(self.per_try, deadline);
            let (reason, failure) = match conn.send(req, timeout).await {
                Ok(response) => {
                    let latency = sent_at.elapsed();
                    let status = response.status().as_u16();
                    let outcome = Outcome {
                        status: Some(status),
                        latency,
                    };
                    self.members.observe(i, cfg, &outcome);
                    let retried = match retry::status_reason(&cfg.retry, status) {
                        Some(reason) => {
                            self.retry_after(&mut state, reason, replay.as_ref(), deadline)
                        }
                        None => Decision::Stop,
                    };
                    if let Decision::Retry(backoff) = retried
                        && let Some(r) = replay.as_ref().and_then(Replay::request)
                    {
                        // Dropped unread: an HTTP/1 connection with a body left unread is
                        // closed rather than pooled, an HTTP/2 stream is reset.
                        tracing::debug!(endpoint = %ep.address, status, "retriable status; retrying");
                        drop(response);
                        drop(in_flight);
                        req = r;
                        reuse_tried = true;
                        pause(backoff).await;
                        continue;
                    }
                    in_flight.admitted = Some(Admitted {
                        _request: request_guard,
                        _retry: state.guard.take(),
                    });
                    return Ok(Sent {
                        response,
                        in_flight,
                        endpoint: ep.address,
                        upstream: self.logged.then_some(latency),
                    });
                }
                Err(SendError::NotSent(back, f)) => {
                    // The connection died before the request left (a stale pooled
                    // connection): once per endpoint, the same endpoint again, free.
                    drop(in_flight);
                    ep.total.fetch_sub(1, Ordering::Relaxed);
                    if resent != Some(i) {
                        resent = Some(i);
                        again = Some(i);
                    }
                    last = f;
                    req = *back;
                    continue;
                }
                // Sent, and provably not processed.
                Err(SendError::NotProcessed(f)) => {
                    if matches!(f, Failure::ConnectTimeout) {
                        ep.connect_timed_out(cfg);
                        if !requeued && ep.overloaded(cfg) {
                            requeued = true;
                            busy.get_or_insert(i);
                        }
                    }
                    let reason = match f {
                        Failure::Refused => Reason::RefusedStream,
                        _ => Reason::ConnectFailure,
                    };
                    (reason, f)
                }
                Err(SendError::Failed(f)) => {
                    self.members.observe(
                        i,
                        cfg,
                        &Outcome {
                            status: None,
                            latency: sent_at.elapsed(),
                        },
                    );
                    // The keep-alive race (RFC 9112 §9.3.1), or a process killed with the
                    // request on its way: the connection closed, no answer came. An
                    // idempotent request goes once more to the same endpoint on a new
                    // connection, free, like a request that came back unsent (RFC 9110
                    // §9.2.2 allows it). If that resend dies unanswered too, the endpoint is
                    // going away (a listener closing with the connection still in its
                    // backlog): a policy without `reset` retries still sends the request on
                    // to another endpoint, once, free, as nginx's `proxy_next_upstream
                    // error` does; one with them counts it as such a retry.
                    let here = resent != Some(i);
                    let elsewhere = !here
                        && !moved
                        && !Reason::Reset.enabled(&cfg.retry)
                        && self.untried_left(&tried) > 0;
                    if resendable
                        && matches!(f, Failure::Upstream(_))
                        && (here || elsewhere)
                        && let Some(r) = replay.as_ref().and_then(Replay::request)
                    {
                        tracing::debug!(endpoint = %ep.address, error = ?f, here, "connection failed before an answer; resending");
                        drop(in_flight);
                        stats.error(f.kind());
                        if here {
                            resent = Some(i);
                            again = Some(i);
                        } else {
                            moved = true;
                        }
                        last = f;
                        req = r;
                        continue;
                    }
                    match f {
                        Failure::Timeout => (Reason::Timeout, f),
                        Failure::Upstream(_) => (Reason::Reset, f),
                        // The client's body failed: never the upstream's to retry.
                        _ => return Err(f),
                    }
                }
            };
            drop(in_flight);
            let decision = match replay.as_ref() {
                Some(kept) => self.retry_after(&mut state, reason, Some(kept), deadline),
                None => Decision::Stop,
            };
            let next = match decision {
                Decision::Retry(backoff) => replay
                    .as_ref()
                    .and_then(Replay::request)
                    .map(|r| (r, backoff)),
                Decision::Stop => None,
            };
            let Some((r, backoff)) = next else {
                return Err(failure);
            };
            tracing::debug!(endpoint = %ep.address, error = ?failure, reason = reason.as_str(), "retrying");
            stats.error(failure.kind());
            req = r;
            // When every endpoint was tried, a refused or processed request may go to one of
            // them again (the only endpoint, say); an unreachable one is not asked again.
            reuse_tried = reason != Reason::ConnectFailure;
            last = failure;
            pause(backoff).await;
        }
    }

    /// The retry rule: whether attempt number `state.used + 1`'s outcome, of trigger
    /// `reason`, is sent again, and after which backoff. `replay` is the kept copy (`None`
    /// for a connect failure, where the request never left). Counts what it decides.
    fn retry_after(
        &self,
        state: &mut Retrying,
        reason: Reason,
        replay: Option<&Replay>,
        deadline: Option<tokio::time::Instant>,
    ) -> Decision {
        let policy = &self.cfg.retry;
        let stats = &self.cluster.stats;
        let allowed = if reason.after_processing() {
            state.after_processing
        } else {
            // Nothing was processed; an upgrade may go again only if nothing was sent.
            !self.upgrade || reason == Reason::ConnectFailure
        };
        if !allowed
            || !reason.enabled(policy)
            || state.used >= policy.num_retries
            || replay.is_some_and(|r| !r.replayable())
            || self.body_limit.is_some_and(|t| t.load(Ordering::Relaxed))
        {
            return Decision::Stop;
        }
        let backoff = retry::backoff(policy, state.used + 1);
        let now = tokio::time::Instant::now();
        if deadline.is_some_and(|d| now + backoff >= d) {
            return Decision::Stop;
        }
        // The retry would start at `now + backoff`: not past the retry timeout.
        if policy
            .timeout
            .is_some_and(|t| now + backoff > state.started + t)
        {
            return Decision::Stop;
        }
        // The budget and `max_retries` bound the extra work retries give the upstreams: a
        // retry of a request nothing processed (a connect failure, a refused stream) gives
        // none, so only `num_retries` bounds those.
        if reason.after_processing() && state.guard.is_none() {
            match stats.traffic.start_retry(policy, &self.cfg.breakers) {
                Ok(guard) => state.guard = Some(guard),
                Err(Refusal::Budget) => {
                    stats.budget_exhausted();
                    return Decision::Stop;
                }
                Err(Refusal::Breaker(limit)) => {
                    stats.breaker_open(limit);
                    return Decision::Stop;
                }
            }
        }
        state.used += 1;
        stats.retried(reason);
        Decision::Retry(backoff)
    }
    /// The balancer's pick for the next attempt, when it is an endpoint not tried yet.
    fn pick(&self, tried: &Tried, attempt: u32) -> Option<usize> {
        if self.untried_left(tried) == 0 {
            return None;
        }
        let ctx = PickContext {
            hash: self.hash,
            attempt,
            tried: tried.as_slice(),
        };
        self.members
            .balancer
            .pick(&ctx)
            .filter(|i| !tried.as_slice().contains(i))
    }

    /// The balancer's pick for a retry when every endpoint was tried: its choice among them.
    fn pick_any(&self, tried: &Tried, attempt: u32) -> Option<usize> {
        let ctx = PickContext {
            hash: self.hash,
            attempt,
            tried: tried.as_slice(),
        };
        self.members.balancer.pick(&ctx)
    }

    /// How many endpoints the balancer balances over that this request has not tried.
    fn untried_left(&self, tried: &Tried) -> usize {
        if tried.count() >= self.members.usable.len() {
            return 0;
        }
        self.members
            .usable
            .iter()
            .filter(|i| !tried.as_slice().contains(i))
            .count()
    }
}

/// A response to a request a filter sent itself (`ExternalAuth`, `RequestMirror`), holding
/// the endpoint's in-flight count until it is dropped.
pub(crate) struct Subresponse {
    /// The response; its body streams from the endpoint.
    pub(crate) response: Response<Body>,
    _in_flight: InFlight,
}

/// Sends a request of a filter's own to `cluster` the way a forwarded request goes (phases
/// 6 and 7): the cluster's balancer, its endpoints' pools, its `max_requests` breaker, and
/// the same attempts ([`Attempts::run`]), retried only on what was never processed (connect
/// failures, refused streams, as the cluster's policy allows): a filter's own request is not
/// the client's to repeat. `timeout` bounds everything
/// up to the response head (`None`: the cluster's own timeouts). The failure returned is
/// counted in the cluster's error counters, like a forwarded request's.
pub(crate) async fn subrequest(
    cluster: &ClusterState,
    req: Request<Body>,
    host: &HeaderValue,
    timeout: Option<std::time::Duration>,
) -> Result<Subresponse, Failure> {
    let members = cluster.members();
    let cfg = cluster.config.load_full();
    let sent = if members.endpoints.is_empty() {
        Err(Failure::NoEndpoint)
    } else {
        let attempts = Attempts {
            members: &members,
            cluster,
            cfg: &cfg,
            host_value: host,
            upgrade: false,
            logged: false,
            hash: None,
            after_sending: false,
            body_limit: None,
            per_try: per_try_timeout(&cfg),
        };
        match timeout {
            None => attempts.run(req, None).await,
            Some(t) => {
                let at = tokio::time::Instant::now() + t;
                tokio::time::timeout_at(at, attempts.run(req, Some(at)))
                    .await
                    .unwrap_or(Err(Failure::Timeout))
            }
        }
    };
    match sent {
        Ok(sent) => Ok(Subresponse {
            response: sent.response,
            _in_flight: sent.in_flight,
        }),
        Err(f) => {
            cluster.stats.error(f.kind());
            Err(f)
        }
    }
}

/// The wait for one attempt's response headers: the retry policy's per-try timeout when set
/// (within the request timeout, when that is set too), else the request timeout.
fn per_try_timeout(cfg: &Cluster) -> std::time::Duration {
    let per_try = cfg.retry.per_try_timeout;
    match (per_try.is_zero(), cfg.timeouts.request.is_zero()) {
        (true, _) => cfg.timeouts.request,
        (false, true) => per_try,
        (false, false) => per_try.min(cfg.timeouts.request),
    }
}

/// Waits out a retry's backoff.
async fn pause(backoff: std::time::Duration) {
    if !backoff.is_zero() {
        tokio::time::sleep(backoff).await;
    }
}

/// One attempt's wait for response headers: the request timeout, cut to what is left of the
/// whole-request deadline (zero: no limit).
fn attempt_timeout(
    request: std::time::Duration,
    deadline: Option<tokio::time::Instant>,
) -> std::time::Duration {
    let Some(deadline) = deadline else {
        return request;
    };
    // At least a millisecond: zero would mean "no limit".
    let left = deadline
        .saturating_duration_since(tokio::time::Instant::now())
        .max(std::time::Duration::from_millis(1));
    if request.is_zero() {
        left
    } else {
        request.min(left)
    }
}

/// How the response is shaped for the client.
struct Shape {
    /// The request asked for an upgrade (a WebSocket tunnel).
    upgrade: bool,
    /// ... over HTTP/2 (RFC 8441).
    h2_websocket: bool,
    downstream_h1: bool,
    /// A generated affinity cookie to set (see `affinity`).
    set_cookie: Option<HeaderValue>,
}

/// Phase 8 and the hand-over to phase 9: shape the upstream's response head, run the
/// response filters, attach the accounting to the body (or start the tunnel).
fn respond(
    ctx: &mut Ctx,
    mut resp: Response<Body>,
    chain: FilterChain<'_>,
    in_flight: InFlight,
    deadline: Option<tokio::time::Instant>,
    shape: Shape,
    on_upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Response<ResponseBody> {
    let Shape {
        upgrade,
        h2_websocket,
        downstream_h1,
        set_cookie,
    } = shape;
    let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS && upgrade;
    let upstream_io = switching.then(|| hyper::upgrade::on(&mut resp));
    let (mut parts, body) = resp.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers, switching);
    if downstream_h1 {
        headers::declare_grpc_trailers(&mut parts.headers);
    }
    ctx.response_filters(chain, &mut parts);
    if let Some(cookie) = set_cookie {
        parts.headers.append(header::SET_COOKIE, cookie);
    }
    parts
        .headers
        .insert(headers::X_REQUEST_ID.clone(), ctx.request_id.clone());
    // The body's end accounts for the request from here on; the listener counts it now.
    ctx.armed = false;
    ctx.conn.listener.stats.answered(parts.status.as_u16());
    let completion = Completion {
        inner: ctx.inner.clone(),
        start: ctx.start,
        status: parts.status.as_u16(),
        stats: ctx.stats.clone(),
        cluster: ctx.cluster.clone(),
        _in_flight: in_flight,
        held: std::mem::take(&mut ctx.held),
        log: ctx.log.take(),
    };
    if ctx.head {
        // A HEAD answer has no content, whatever the upstream sent after its head; the
        // upstream's Content-Length stays (RFC 9110 §9.3.2). HTTP/1 would not send it
        // anyway, but on HTTP/2 it would go out as DATA, which clients reset.
        drop(body);
        return Response::from_parts(
            parts,
            ResponseBody::forwarded(Body::empty(), completion, None),
        );
    }
    if let Some(upstream_io) = upstream_io {
        if h2_websocket {
            // RFC 8441 §5: a 2xx answers the CONNECT; the HTTP/1.1 handshake headers have no
            // meaning on HTTP/2.
            parts.status = StatusCode::OK;
            for h in [
                header::UPGRADE,
                header::CONNECTION,
                header::SEC_WEBSOCKET_ACCEPT,
            ] {
                parts.headers.remove(h);
            }
        }
        let mut completion = completion;
        tunnel(
            on_upgrade,
            upstream_io,
            &ctx.conn,
            ctx.inner.config.tunnel_idle_timeout,
            std::mem::take(&mut completion.held),
        );
        drop(body);
        completion.finish(BodyEnd::Abandoned);
        return Response::from_parts(parts, ResponseBody::local(Body::empty()));
    }
    Response::from_parts(parts, ResponseBody::forwarded(body, completion, deadline))
}

/// Joins the client's and the upgraded upstream connection in a tunnel (`tunnel::run`): idle
/// tunnels close, and at shutdown a tunnel is drained, not cut (its task holds the
/// connection's `alive` handle, so the server's drain waits for it). It holds the request's
/// concurrency-limit counts until it ends.
fn tunnel(
    downstream: Option<hyper::upgrade::OnUpgrade>,
    upstream: hyper::upgrade::OnUpgrade,
    conn: &ConnInfo,
    idle_timeout: std::time::Duration,
    held: concurrency_limit::Held,
) {
    let Some(downstream) = downstream else { return };
    let alive = conn.alive.clone();
    let stream = conn.streams.hold();
    let mut drain = conn.drain.clone();
    let peer = conn.peer;
    tokio::spawn(async move {
        let _alive = alive;
        let _stream = stream;
        let _held = held;
        let (down, up) = match tokio::try_join!(downstream, upstream) {
            Ok(both) => both,
            Err(error) => {
                tracing::debug!(%error, "upgrade failed");
                return;
            }
        };
        let draining = async move {
            let _ = drain.wait_for(|d| *d).await;
        };
        let down = hyper_util::rt::TokioIo::new(down);
        let up = hyper_util::rt::TokioIo::new(up);
        let summary = tunnel::run(down, up, idle_timeout, draining).await;
        tracing::debug!(
            %peer,
            to_upstream = summary.to_upstream,
            to_downstream = summary.to_downstream,
            end = summary.end.as_str(),
            "tunnel ended"
        );
    });
}

/// Which upgrade a request asked for (after the allow-list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Upgrade {
    None,
    /// HTTP/1.1 `Upgrade: websocket`.
    WebSocket,
    /// HTTP/2 extended CONNECT with `:protocol websocket` (RFC 8441).
    H2WebSocket,
}

/// The allow-list's verdict on a request's upgrade (`tunnel::classify_*`); a CONNECT that is
/// not WebSocket's extended CONNECT is refused like an unknown upgrade.
fn upgrade_decision<B>(req: &Request<B>) -> UpgradeDecision {
    if req.method() == http::Method::CONNECT {
        return match req.extensions().get::<hyper::ext::Protocol>() {
            Some(p) => tunnel::classify_extended_connect(p.as_str()),
            None => UpgradeDecision::Refuse,
        };
    }
    if req.version() == Version::HTTP_11 {
        tunnel::classify_upgrade(req.headers())
    } else {
        UpgradeDecision::NotRequested
    }
}

/// Replaces the request's path, keeping its query (and scheme and authority).
fn set_path<B>(req: &mut Request<B>, path: &str) {
    let uri = std::mem::take(req.uri_mut());
    let mut parts = uri.into_parts();
    let target = match parts.path_and_query.as_ref().and_then(|pq| pq.query()) {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    parts.path_and_query = http::uri::PathAndQuery::try_from(target).ok();
    if let Ok(uri) = http::Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
}

/// One request in flight to an endpoint, until dropped; once answered, it also holds the
/// request's place in its cluster's counters (requests and retries in flight).
struct InFlight {
    ep: Arc<EndpointState>,
    admitted: Option<Admitted>,
}

impl InFlight {
    fn start(ep: &Arc<EndpointState>) -> Self {
        ep.load.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            ep: ep.clone(),
            admitted: None,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.ep.load.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Finishes a forwarded request when its response body is dropped.
pub(crate) struct Completion {
    inner: Arc<Inner>,
    start: Instant,
    status: u16,
    stats: Option<Arc<Accounting>>,
    cluster: Option<Arc<ClusterState>>,
    _in_flight: InFlight,
    /// Concurrency-limit counts, given back when the response is done (or, for an upgrade,
    /// when the tunnel ends: nginx counts a WebSocket connection for as long as it lasts).
    held: concurrency_limit::Held,
    log: Option<Box<LogRecord>>,
}

/// How a forwarded response body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyEnd {
    /// Sent to the end.
    Clean,
    /// Dropped before its end (the client went away, or a tunnel took over).
    Abandoned,
    /// The upstream body failed mid-stream.
    UpstreamError,
    /// Cut at the whole-request deadline.
    TotalTimeout,
}

impl Completion {
    /// Accounts for the request.
    pub(crate) fn finish(mut self, end: BodyEnd) {
        let elapsed = self.start.elapsed();
        match &self.stats {
            Some(s) => s.record(self.status, elapsed),
            None => self.inner.no_cluster.record(self.status, elapsed),
        }
        let error = match end {
            BodyEnd::UpstreamError => Some(("upstream", "upstream_body")),
            BodyEnd::TotalTimeout => Some(("total_timeout", "total_timeout")),
            BodyEnd::Clean | BodyEnd::Abandoned => None,
        };
        if let Some((kind, _)) = error
            && let Some(c) = &self.cluster
        {
            c.stats.error(kind);
        }
        if let Some(mut l) = self.log.take() {
            l.status = self.status;
            l.duration = elapsed;
            if let Some((_, label)) = error {
                l.error = label;
            }
            self.inner.access_log.write(&l);
        }
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

impl RouteRt {
    /// Index of the backend this request goes to (weighted); `None` when every weight is 0.
    fn pick_backend(&self) -> Option<usize> {
        match &self.picker {
            Picker::Only => Some(0),
            Picker::None => None,
            Picker::Weighted(cycle, indices) => Some(indices[cycle.next()]),
        }
    }
}
