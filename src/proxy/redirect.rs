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
//!   `/one/two` and `/prefix` into `/one`), `ReplaceRegexMatch` replaces every match of its
//!   pattern; otherwise kept. The query string is kept unless the redirect replaces it
//!   (`query`, an empty one dropping it).

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};

use super::error::LocalReply;
use crate::snapshot::{PathMatch, PathRewrite, Pattern, Redirect};

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
        Some(PathRewrite::ReplaceRegexMatch {
            pattern,
            substitution,
        }) => replace_regex(req.path, pattern, substitution),
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
    let query = match redirect.query.as_deref() {
        Some(q) => Some(q).filter(|q| !q.is_empty()),
        None => req.query,
    };
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Replaces every match of `pattern` in `path` by `substitution` (the `regex` crate's
/// expansion syntax, as compile wrote it), with a leading `/` added if the result lacks one.
pub(crate) fn replace_regex(path: &str, pattern: &Pattern, substitution: &str) -> String {
    let out = pattern.regex().replace_all(path, substitution);
    if out.starts_with('/') {
        out.into_owned()
    } else {
        format!("/{out}")
    }
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
        PathMatch::Prefix(p) if &**p == "/" => path,
        PathMatch::Prefix(p) => path.strip_prefix(&**p).unwrap_or(path),
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
            query: None,
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
    fn regex_replacement_substitutes_groups_and_a_set_query_replaces_the_requests() {
        let m = PathMatch::Prefix("/".into());
        let r = Redirect {
            path: Some(PathRewrite::ReplaceRegexMatch {
                pattern: Pattern::new("(?i)^(?:/something(/|$)(.*)).*").expect("pattern"),
                substitution: "/${2}".into(),
            }),
            query: Some(String::new()),
            ..redirect()
        };
        assert_eq!(
            location(&r, &req("http", "a.example", "/Something/new", &m)),
            "http://a.example:8080/new"
        );
        let r = Redirect {
            query: Some("b=2".into()),
            ..redirect()
        };
        assert_eq!(
            location(&r, &req("http", "a.example", "/x", &m)),
            "http://a.example:8080/x?b=2"
        );
        let one = Pattern::new("one").expect("pattern");
        assert_eq!(replace_regex("/x/one/y/one", &one, "two"), "/x/two/y/two");
        let all = Pattern::new("^/.*").expect("pattern");
        assert_eq!(replace_regex("/a", &all, "b"), "/b");
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
