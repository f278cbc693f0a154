//! `RequestRedirect` (Gateway API `HTTPRequestRedirectFilter`): the request is answered with
//! a redirect whose `Location` is built by [`crate::proxy::redirect`] — the same builder as
//! the `Redirect` route action, so both follow the Gateway API's scheme, host, port and path
//! rules. `ReplacePrefixMatch` replaces what the route's path match matched.
//!
//! A redirect marked `https_upgrade` (the Ingress front end's HTTPS redirect of TLS hosts)
//! answers only cleartext requests outside ACME HTTP-01 challenge paths; the others go on.
//! "Cleartext" is the client's view: behind a trusted proxy that ended TLS
//! (`--trusted-proxies`) its `X-Forwarded-Proto: https` counts, so a load balancer in front
//! of weir does not loop. Request filters run after weir's forwarding-header rules, so the
//! header is weir's own (`http`) for a peer that is not trusted.

use http::{HeaderMap, header, request};

use super::FilterContext;
use crate::proxy::error::LocalReply;
use crate::proxy::headers::X_FORWARDED_PROTO;
use crate::proxy::redirect::{self, RedirectRequest};
use crate::snapshot::{ACME_CHALLENGE_PREFIX, RequestRedirect};

/// Request phase: the redirect, unless an HTTPS upgrade does not apply to the request.
pub(crate) fn on_request(
    r: &RequestRedirect,
    ctx: &FilterContext<'_>,
    req: &request::Parts,
) -> Result<(), Box<LocalReply>> {
    let path = req.uri.path();
    if r.https_upgrade
        && (ctx.conn.tls
            || path.starts_with(ACME_CHALLENGE_PREFIX)
            || forwarded_https(&req.headers))
    {
        return Ok(());
    }
    // The host the request was routed by: HTTP/2's `:authority` (and an HTTP/1 absolute
    // target, which `host` checked agrees with `Host`), else `Host`.
    let host = req
        .uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or_default();
    let rreq = RedirectRequest {
        scheme: if ctx.conn.tls { "https" } else { "http" },
        host,
        listener_port: ctx.conn.local_port,
        path,
        query: req.uri.query(),
        matched: &ctx.route.matches.path,
    };
    Err(Box::new(redirect::reply(&r.redirect, &rreq)))
}

/// Whether the (already trust-checked) `X-Forwarded-Proto` says the client used HTTPS; with
/// a chain of proxies, the first value is the client's.
fn forwarded_https(headers: &HeaderMap) -> bool {
    headers
        .get(&X_FORWARDED_PROTO)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
}
