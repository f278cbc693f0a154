//! `URLRewrite` (Gateway API `HTTPURLRewriteFilter`): the backend gets another path and/or
//! host. The path is replaced in the request target (the query is kept; `ReplacePrefixMatch`
//! replaces what the route's path match matched, element-wise, as redirects do;
//! `ReplaceRegexMatch` replaces every match of its pattern, capture groups substituted). The host
//! replaces HTTP/2's `:authority` in the target and is handed to the pipeline as
//! [`UpstreamHost`], which the upstream phase writes as `Host` (HTTP/1.1) or `:authority`
//! (HTTP/2) whatever the client spoke. `X-Forwarded-Host` keeps the client's host.

use http::{HeaderValue, Uri, request, uri};

use super::FilterContext;
use crate::proxy::redirect;
use crate::snapshot::{PathRewrite, UrlRewrite};

/// The host the upstream gets instead of the client's, set by a rewrite (a request
/// extension: the pipeline takes it after the request phase).
#[derive(Debug, Clone)]
pub(crate) struct UpstreamHost(pub(crate) HeaderValue);

/// Request phase: rewrite path and host.
pub(crate) fn apply(r: &UrlRewrite, ctx: &FilterContext<'_>, req: &mut request::Parts) {
    let path = r.path.as_ref().map(|p| match p {
        PathRewrite::ReplaceFullPath(p) => p.clone(),
        PathRewrite::ReplacePrefixMatch(p) => {
            redirect::replace_prefix(req.uri.path(), &ctx.route.matches.path, p)
        }
        PathRewrite::ReplaceRegexMatch {
            pattern,
            substitution,
        } => redirect::replace_regex(req.uri.path(), pattern, substitution),
    });
    let host = r.hostname.as_deref().and_then(|h| {
        // Compile checked it is a DNS name, so both parse.
        Some((
            HeaderValue::from_str(h).ok()?,
            uri::Authority::try_from(h).ok()?,
        ))
    });
    if path.is_none() && host.is_none() {
        return;
    }
    let mut parts = std::mem::take(&mut req.uri).into_parts();
    if let Some(path) = path {
        let target = match parts.path_and_query.as_ref().and_then(|pq| pq.query()) {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        if let Ok(pq) = uri::PathAndQuery::try_from(target) {
            parts.path_and_query = Some(pq);
        }
    }
    if let Some((value, authority)) = host {
        if parts.authority.is_some() {
            parts.authority = Some(authority);
        }
        req.extensions.insert(UpstreamHost(value));
    }
    req.uri = Uri::from_parts(parts).unwrap_or_default();
}
