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
//! Each filter kind's behaviour lives in its own file; [`HttpFilter`] (implemented for the
//! snapshot's [`Filter`], dispatching to those files) is the interface the pipeline calls. The
//! snapshot holds the validated configuration, so nothing is parsed per request.

mod basic_auth;
#[doc(hidden)]
pub mod bench;
mod deny;
mod header_modifier;
mod ip_access;
mod rate_limit;
mod state;

pub(crate) use state::{RouteFilterState, StateCarry};

use http::request;
use http::response;

use super::error::LocalReply;
use super::pipeline::ConnInfo;
use crate::snapshot::{Filter, Route};

/// What a filter may know about the request beyond its head.
pub(crate) struct FilterContext<'a> {
    /// The connection it came on (peer address, TLS).
    pub(crate) conn: &'a ConnInfo,
    /// The route it matched.
    #[allow(dead_code, reason = "read by the rewrite and rate-limit filters")]
    pub(crate) route: &'a Route,
    /// The runtime state of the route's filters (rate-limit buckets, basic-auth caches).
    pub(crate) state: &'a RouteFilterState,
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
            Filter::RateLimit(rl) => rate_limit::request(rl, ctx, req)?,
            Filter::IpAccess(ip) => ip_access::request(ip, ctx, req)?,
            Filter::BasicAuth(ba) => basic_auth::request(ba, ctx, req)?,
            // Each kind below answers in its own file (issue 11), or only on the response.
            Filter::ResponseHeaderModifier(_)
            | Filter::RequestRedirect(_)
            | Filter::UrlRewrite(_)
            | Filter::Cors(_)
            | Filter::ExternalAuth(_)
            | Filter::RequestMirror(_)
            | Filter::BodyLimit(_) => {
                let _ = ctx;
            }
        }
        Ok(())
    }

    fn on_response(&self, _ctx: &FilterContext<'_>, resp: &mut response::Parts) {
        #[allow(clippy::single_match, reason = "more kinds answer on the response")]
        match self {
            Filter::ResponseHeaderModifier(m) => header_modifier::apply(m, &mut resp.headers),
            _ => {}
        }
    }
}

/// Runs the request phase of `filters`, in order.
pub(crate) fn request(
    filters: &[Filter],
    ctx: &FilterContext<'_>,
    req: &mut request::Parts,
) -> Result<(), Box<LocalReply>> {
    for f in filters {
        f.on_request(ctx, req)?;
    }
    Ok(())
}

/// Runs the response phase of `filters`, in reverse order.
pub(crate) fn response(filters: &[Filter], ctx: &FilterContext<'_>, resp: &mut response::Parts) {
    for f in filters.iter().rev() {
        f.on_response(ctx, resp);
    }
}
