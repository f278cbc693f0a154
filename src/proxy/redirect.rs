//! Redirect answers, built from the request with the Gateway API's rules
//! (`HTTPRequestRedirectFilter`):
//!
//! - scheme: the redirect's, else the request's (the listener's: `https` on TLS);
//! - host: the redirect's hostname, else the request's host without its port;
//! - port: the redirect's; else, when the redirect sets a scheme, that scheme's well-known
//!   port; else the listener's port. A port that is well known for the final scheme (80 for
//!   `http`, 443 for `https`) is not written;
//! - path: `ReplaceFullPath` replaces it, `ReplacePrefixMatch` replaces the part the route's
//!   `Prefix` path matched (element-wise, so `/prefix` → `/one` turns `/prefix/two` into
//!   `/one/two` and `/prefix` into `/one`); otherwise kept. The query string is kept.

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};

use super::error::LocalReply;
use crate::snapshot::{PathMatch, PathRewrite, Redirect};

/// What the redirect needs to know about the request.
pub(crate) struct RedirectRequest<'a> {
    /// `http` or `https`, as the request arrived.
    pub(crate) scheme: &'static str,
    /// The request's host, maybe with a port.
    pub(crate) host: &'a str,
    /// The port of the listener the request came in on.
    pub(crate) listener_port: u16,
    /// The (normalized) path.
    pub(crate) path: &'a str,
    /// The query, without `?`.
    pub(crate) query: Option<&'a str>,
    /// The route's path match (for `ReplacePrefixMatch`).
    pub(crate) matched: &'a PathMatch,
}

/// The redirect answer: the status and `Location`.
pub(crate) fn reply(redirect: &Redirect, req: &RedirectRequest<'_>) -> LocalReply {
    let location = location(redirect, req);
    let status = StatusCode::from_u16(redirect.status).unwrap_or(StatusCode::FOUND);
    let mut reply = LocalReply::text(status, Bytes::new());
    reply.headers.remove(header::CONTENT_TYPE);
    match HeaderValue::from_str(&location) {
        Ok(v) => {
            reply.headers.insert(header::LOCATION, v);
        }
        Err(_) => {
            // Compile validates every part; a request host that is not a valid header value
            // cannot reach here either (it came in as one).
            tracing::warn!(%location, "redirect location is not a valid header value");
        }
    }
    reply
}

/// The `Location` of a redirect.
pub(crate) fn location(redirect: &Redirect, req: &RedirectRequest<'_>) -> String {
    let scheme = redirect.scheme.as_deref().unwrap_or(req.scheme);
    let host = match &redirect.hostname {
        Some(h) => h.as_str(),
        None => strip_port(req.host),
    };
    let port = match (redirect.port, &redirect.scheme) {
        (Some(port), _) => port,
        (None, Some(s)) => well_known_port(s),
        (None, None) => req.listener_port,
    };
    let path = match &redirect.path {
        None => req.path.to_owned(),
        Some(PathRewrite::ReplaceFullPath(p)) => p.clone(),
        Some(PathRewrite::ReplacePrefixMatch(p)) => replace_prefix(req.path, req.matched, p),
    };
    let mut out = String::with_capacity(scheme.len() + host.len() + path.len() + 16);
    out.push_str(scheme);
    out.push_str("://");
    out.push_str(host);
    if port != well_known_port(scheme) {
        out.push(':');
        out.push_str(&port.to_string());
    }
    out.push_str(&path);
    if let Some(q) = req.query {
        out.push('?');
        out.push_str(q);
    }
    out
}

fn well_known_port(scheme: &str) -> u16 {
    if scheme.eq_ignore_ascii_case("https") {
        443
    } else {
        80
    }
}

/// The host without a port (`[::1]:80` → `[::1]`).
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    match host.rfind(':') {
        Some(colon) if !host[..colon].contains(':') => &host[..colon],
        _ => host,
    }
}

/// Replaces the prefix `matched` matched in `path` with `with`, element-wise: the rest of the
/// path keeps exactly one `/` between the replacement and it, and an empty result is `/`.
pub(crate) fn replace_prefix(path: &str, matched: &PathMatch, with: &str) -> String {
    let rest = match matched {
        PathMatch::Prefix(p) if p == "/" => path,
        PathMatch::Prefix(p) => path.strip_prefix(p.as_str()).unwrap_or(path),
        // Compile only allows prefix replacement on Prefix matches; an Exact match consumes
        // the whole path.
        PathMatch::Exact(_) => "",
        PathMatch::Regex(_) => path,
    };
    let with = with.trim_end_matches('/');
    let tail = rest.trim_start_matches('/');
    let mut out = String::with_capacity(with.len() + tail.len() + 1);
    out.push_str(with);
    if !rest.is_empty() || out.is_empty() {
        out.push('/');
    }
    out.push_str(tail);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(
        scheme: &'static str,
        host: &'a str,
        path: &'a str,
        m: &'a PathMatch,
    ) -> RedirectRequest<'a> {
        RedirectRequest {
            scheme,
            host,
            listener_port: 8080,
            path,
            query: Some("a=1"),
            matched: m,
        }
    }

    fn redirect() -> Redirect {
        Redirect {
            scheme: None,
            hostname: None,
            port: None,
            path: None,
            status: 302,
        }
    }

    #[test]
    fn https_redirect_drops_the_well_known_port_and_keeps_path_and_query() {
        let m = PathMatch::Prefix("/".into());
        let r = Redirect {
            scheme: Some("https".into()),
            status: 308,
            ..redirect()
        };
        assert_eq!(
            location(&r, &req("http", "shop.example:8080", "/cart", &m)),
            "https://shop.example/cart?a=1"
        );
    }

    #[test]
    fn without_a_scheme_the_listener_port_is_kept() {
        let m = PathMatch::Prefix("/".into());
        let r = Redirect {
            hostname: Some("other.example".into()),
            ..redirect()
        };
        assert_eq!(
            location(&r, &req("http", "a.example", "/x", &m)),
            "http://other.example:8080/x?a=1"
        );
        let r = Redirect {
            port: Some(80),
            ..redirect()
        };
        assert_eq!(
            location(&r, &req("http", "a.example", "/x", &m)),
            "http://a.example/x?a=1"
        );
    }

    #[test]
    fn prefix_replacement_is_element_wise() {
        let m = PathMatch::Prefix("/prefix".into());
        assert_eq!(replace_prefix("/prefix/two", &m, "/one"), "/one/two");
        assert_eq!(replace_prefix("/prefix", &m, "/one"), "/one");
        assert_eq!(replace_prefix("/prefix/", &m, "/one"), "/one/");
        assert_eq!(replace_prefix("/prefix/two", &m, "/"), "/two");
        assert_eq!(replace_prefix("/prefix", &m, "/"), "/");
        assert_eq!(replace_prefix("/prefix/two", &m, "/one/"), "/one/two");
        let root = PathMatch::Prefix("/".into());
        assert_eq!(replace_prefix("/a/b", &root, "/new"), "/new/a/b");
    }

    #[test]
    fn full_path_replacement() {
        let m = PathMatch::Exact("/old".into());
        let r = Redirect {
            path: Some(PathRewrite::ReplaceFullPath("/new".into())),
            status: 301,
            ..redirect()
        };
        assert_eq!(
            location(&r, &req("https", "a.example", "/old", &m)),
            "https://a.example:8080/new?a=1"
        );
    }
}
