//! Filters: what happens to a request between routing and the upstream, and to its response.
//!
//! # Phase order (the one place it is written down)
//!
//! 1. **Request phase**, after routing and before the backend is picked: the route's filters
//!    in list order. A filter may change the request or answer it (`Err(LocalReply)`, boxed: the
//!    answer leaves through the pipeline's one local-reply path and no later filter runs).
//! 2. After the backend is picked by weight: that backend's filters, request phase, in list
//!    order.
//! 3. **Response phase**, on every response of a routed request — the upstream's, and every
//!    answer weir makes itself (direct responses, redirects, failures, early answers of
//!    filters): the backend's filters, then the route's, each list in reverse order (the
//!    filter that saw the request first sees the response last, as in Envoy's chain).
//!
//! A request-phase filter that needs something of the upstream phase beyond the request head
//! leaves a typed value in the request's extensions, which the pipeline takes once both
//! request phases ran: [`url_rewrite::UpstreamHost`] (the host the upstream gets, whatever
//! protocol it speaks) [`body_limit::Limit`] (count the streamed body; past the limit
//! the answer is 413) and [`concurrency_limit::Held`] (counts the request holds until its
//! response was sent). What the response phase needs to know about the request is captured
//! before the request phase in [`RequestFacts`].
//!
//! Each filter kind's behaviour lives in its own file; [`HttpFilter`] (implemented for the
//! snapshot's [`Filter`], dispatching to those files) is the interface the pipeline calls. The
//! snapshot holds the validated configuration, so nothing is parsed per request.
//!
//! # Synchronous, but one kind waits
//!
//! The request phase of every kind is synchronous, except `ExternalAuth`, which waits for
//! its subrequest: [`request`] is `async` and awaits that kind alone (boxed, so chains
//! without it keep a small future), and calls [`HttpFilter::on_request`] for every other.
//! `RequestMirror` does not wait: it spawns its copy and returns.
//!
//! # Filters that send requests of their own
//!
//! `ExternalAuth` and `RequestMirror` send to clusters of the snapshot like any backend
//! (compile keeps those clusters for the routes whose chains name them). Publishing resolves
//! them per route into [`FilterCluster`]s (the cluster's state, with its pools, endpoints and
//! balancer, and the route's counters for it), which [`FilterContext::clusters`] hands to the
//! filters: no lookup by name per request.

mod basic_auth;
#[doc(hidden)]
pub mod bench;
pub(crate) mod body_limit;
pub(crate) mod concurrency_limit;
mod cors;
mod deny;
pub(crate) mod error_pages;
mod external_auth;
mod header_modifier;
pub(crate) mod ip_access;
mod rate_limit;
mod request_mirror;
mod request_redirect;
mod state;
pub(crate) mod url_rewrite;

pub(crate) use state::{RouteFilterState, StateCarry};

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method, header, request, response};

use super::error::LocalReply;
use super::metrics::Accounting;
use super::pipeline::ConnInfo;
use super::upstream::ClusterState;
use crate::snapshot::{ClusterKey, Filter, Route};

/// A cluster a route's filters send to, resolved when the snapshot was published.
pub(crate) struct FilterCluster {
    /// Its runtime state: pools, endpoints, balancer, error counters.
    pub(crate) state: Arc<ClusterState>,
    /// Where the requests the route's filters send there are counted
    /// (`weir_requests_total{cluster}`, and the route's with per-route metrics).
    pub(crate) stats: Arc<Accounting>,
}

/// What a filter may know about the request beyond its head.
pub(crate) struct FilterContext<'a> {
    /// The connection it came on (peer address, TLS).
    pub(crate) conn: &'a ConnInfo,
    /// The route it matched.
    pub(crate) route: &'a Route,
    /// What the response phase needs to know about the request.
    pub(crate) facts: &'a RequestFacts,
    /// The clusters the route's filters send to (see the module docs).
    pub(crate) clusters: &'a [FilterCluster],
    /// Request phase: the request has no body (`RequestMirror` copies only those). `false`
    /// in the response phase.
    pub(crate) body_empty: bool,
    /// The runtime state of the route's filters (rate-limit buckets, basic-auth caches).
    pub(crate) state: &'a RouteFilterState,
}

impl FilterContext<'_> {
    /// The resolved cluster `key` (`None` only when snapshot and runtime disagree).
    fn cluster(&self, key: &ClusterKey) -> Option<&FilterCluster> {
        self.clusters.iter().find(|c| c.state.key == *key)
    }
}

/// Facts about the request captured before the request phase, for filters whose response
/// phase depends on the request (its head is gone by then) — and read in the request phase
/// too, so both phases agree.
#[derive(Debug, Default)]
pub(crate) struct RequestFacts {
    /// The client's `Origin` (CORS).
    pub(crate) origin: Option<HeaderValue>,
    /// Whether the request is a CORS preflight: `OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`.
    pub(crate) preflight: bool,
}

impl RequestFacts {
    /// The facts of a request head.
    pub(crate) fn capture(method: &Method, headers: &HeaderMap) -> RequestFacts {
        let origin = headers.get(header::ORIGIN).cloned();
        let preflight = origin.is_some()
            && method == Method::OPTIONS
            && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        RequestFacts { origin, preflight }
    }
}

/// One filter kind's behaviour.
pub(crate) trait HttpFilter {
    /// Request phase: change the request, or answer it.
    fn on_request(
        &self,
        _ctx: &FilterContext<'_>,
        _req: &mut request::Parts,
    ) -> Result<(), Box<LocalReply>> {
        Ok(())
    }

    /// Response phase: change the response head.
    fn on_response(&self, _ctx: &FilterContext<'_>, _resp: &mut response::Parts) {}
}

impl HttpFilter for Filter {
    fn on_request(
        &self,
        ctx: &FilterContext<'_>,
        req: &mut request::Parts,
    ) -> Result<(), Box<LocalReply>> {
        match self {
            Filter::RequestHeaderModifier(m) => header_modifier::apply(m, &mut req.headers),
            Filter::Deny(d) => return Err(Box::new(deny::reply(d))),
            Filter::RequestRedirect(r) => request_redirect::on_request(r, ctx, req)?,
            Filter::UrlRewrite(r) => url_rewrite::apply(r, ctx, req),
            Filter::Cors(c) => cors::on_request(c, ctx, req)?,
            Filter::BodyLimit(b) => body_limit::on_request(b, req)?,
            Filter::RequestMirror(m) => request_mirror::start(m, ctx, req),
            Filter::RateLimit(rl) => rate_limit::request(rl, ctx, req)?,
            Filter::ConcurrencyLimit(cl) => concurrency_limit::request(cl, ctx, req)?,
            Filter::IpAccess(ip) => ip_access::request(ip, ctx, req)?,
            Filter::BasicAuth(ba) => basic_auth::request(ba, ctx, req)?,
            // Awaited by `request`, not here; the response-only kind; run by the pipeline
            // around the upstream exchange.
            Filter::ExternalAuth(_) | Filter::ResponseHeaderModifier(_) | Filter::ErrorPages(_) => {
                let _ = ctx;
            }
        }
        Ok(())
    }

    fn on_response(&self, ctx: &FilterContext<'_>, resp: &mut response::Parts) {
        match self {
            Filter::ResponseHeaderModifier(m) => header_modifier::apply(m, &mut resp.headers),
            Filter::Cors(c) => cors::on_response(c, ctx, resp),
            _ => {}
        }
    }
}

/// Runs the request phase of `filters`, in order; only `ExternalAuth` waits.
///
/// `satisfy: any` (an `IPAccess` with `satisfy_any`): after it allowed the client, the
/// authentication filters are skipped; after it did not, a request no authentication filter
/// passed is refused with 403 once the chain has run (fail closed, also when no
/// authentication filter follows).
pub(crate) async fn request(
    filters: &[Filter],
    ctx: &FilterContext<'_>,
    req: &mut request::Parts,
) -> Result<(), Box<LocalReply>> {
    use ip_access::{AuthPending, AuthSatisfied};
    for f in filters {
        let auth = matches!(f, Filter::BasicAuth(_) | Filter::ExternalAuth(_));
        if auth && req.extensions.get::<AuthSatisfied>().is_some() {
            continue;
        }
        match f {
            Filter::ExternalAuth(a) => Box::pin(external_auth::check(a, ctx, req)).await?,
            _ => f.on_request(ctx, req)?,
        }
        if auth {
            req.extensions.remove::<AuthPending>();
        }
    }
    req.extensions.remove::<AuthSatisfied>();
    if req.extensions.remove::<AuthPending>().is_some() {
        return Err(Box::new(ip_access::forbidden()));
    }
    Ok(())
}

/// Runs the response phase of `filters`, in reverse order.
pub(crate) fn response(filters: &[Filter], ctx: &FilterContext<'_>, resp: &mut response::Parts) {
    for f in filters.iter().rev() {
        f.on_response(ctx, resp);
    }
}
