//! Request routing: a pure function from a request head to a route of a [`RouteTable`].
//!
//! Host lookup order, as the Ingress spec defines host precedence:
//!
//! 1. the exact virtual host (host lower-cased, port and one trailing dot stripped);
//! 2. the wildcard virtual host whose suffix follows the request host's first label
//!    (`*.example.com` matches `a.example.com`, never `a.b.example.com` nor `example.com`);
//!    in a table with deep wildcards (the Gateway API's), then each shorter suffix in turn
//!    (`a.b.example.com` tries `*.b.example.com`, then `*.example.com`, then `*.com`);
//! 3. the virtual host that matches every host (`any`).
//!
//! The first of these that has a route matching the request serves it; otherwise the table's
//! default route; otherwise no route (404).
//!
//! Inside a virtual host, routes are sorted at compile time by [`RouteMatch::precedence`], the
//! Gateway API's order: the path first (longer first; at equal length `Exact`, then `Prefix`,
//! then a regular expression), then a method match, then more header matches, then more query
//! matches; compile breaks the remaining ties by source order (oldest object first). Ingress
//! routes match on the path alone, which makes this exactly Ingress's rule (longest path
//! wins, `Exact` beats `Prefix` at equal length). So the first route that matches is the best.
//!
//! Paths are matched as the proxy hands them over, after normalization (the proxy's job); the
//! query string is never part of the path match.
//!
//! This runs once per request: it does not allocate unless the host has upper-case letters or
//! a matched query value is percent-encoded.

use std::borrow::Cow;
use std::cmp::Reverse;

use http::{HeaderMap, Method};

use super::{PathMatch, Route, RouteMatch, RouteTable, Snapshot, VirtualHost};

/// Name of the route that serves a request through a table's default route.
pub const DEFAULT_BACKEND_ROUTE: &str = "default-backend";

/// What the router looks at in a request.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    /// The method.
    pub method: &'a Method,
    /// The raw `Host` header or `:authority` (any case, maybe with a port, maybe an IPv6
    /// literal).
    pub host: &'a str,
    /// The (normalized) path, without query.
    pub path: &'a str,
    /// The query string without `?`, if any.
    pub query: Option<&'a str>,
    /// Request headers.
    pub headers: &'a HeaderMap,
}

impl<'a> RequestHead<'a> {
    /// A head from a request target that may carry a query (`/a?b=c`; a `#fragment` is
    /// dropped too).
    pub fn new(
        method: &'a Method,
        host: &'a str,
        target: &'a str,
        headers: &'a HeaderMap,
    ) -> RequestHead<'a> {
        let (path, query) = match target.find(['?', '#']) {
            Some(end) if target.as_bytes()[end] == b'?' => {
                let rest = &target[end + 1..];
                let query = rest.split_once('#').map_or(rest, |(q, _)| q);
                (&target[..end], Some(query))
            }
            Some(end) => (&target[..end], None),
            None => (target, None),
        };
        RequestHead {
            method,
            host,
            path,
            query,
            headers,
        }
    }
}

impl Snapshot {
    /// The route the listener called `listener` picks for a request; `None` means 404 (or an
    /// unknown listener).
    pub fn route(&self, listener: &str, req: &RequestHead<'_>) -> Option<&Route> {
        self.route_table(listener)?.route(req)
    }
}

impl RouteTable {
    /// The route for a request; `None` means 404.
    pub fn route(&self, req: &RequestHead<'_>) -> Option<&Route> {
        let host = normalize_host(req.host);
        let vhosts = &self.virtual_hosts;
        vhosts
            .exact
            .get(host.as_ref())
            .and_then(|vhost| vhost.find(req))
            .or_else(|| {
                let mut suffix = wildcard_suffix(&host)?;
                loop {
                    if let Some(route) = vhosts.wildcard.get(suffix).and_then(|v| v.find(req)) {
                        return Some(route);
                    }
                    if !vhosts.deep_wildcards {
                        return None;
                    }
                    suffix = wildcard_suffix(&suffix[1..])?;
                }
            })
            .or_else(|| vhosts.any.as_ref().and_then(|vhost| vhost.find(req)))
            .or(self.default_route.as_ref())
    }
}

impl VirtualHost {
    /// The first (best) route matching the request.
    #[inline]
    pub fn find(&self, req: &RequestHead<'_>) -> Option<&Route> {
        self.routes.iter().find(|route| route.matches.matches(req))
    }
}

impl RouteMatch {
    /// Whether the request meets every condition. Inlined into the route loop: the path is
    /// checked first, and a route with nothing but a path (every Ingress route) costs no more
    /// than the path comparison.
    #[inline]
    pub fn matches(&self, req: &RequestHead<'_>) -> bool {
        if !self.path.matches(req.path) {
            return false;
        }
        if self.path_only() {
            return true;
        }
        self.matches_rest(req)
    }

    /// The conditions beyond the path (out of line: only rich routes pay for them).
    #[inline(never)]
    fn matches_rest(&self, req: &RequestHead<'_>) -> bool {
        self.method().is_none_or(|m| m == req.method)
            && self.headers().iter().all(|h| {
                req.headers
                    .get_all(&h.name)
                    .iter()
                    .any(|v| v.to_str().is_ok_and(|v| h.value.matches(v)))
            })
            && self
                .query()
                .iter()
                .all(|q| query_value(req.query, &q.name).is_some_and(|v| q.value.matches(&v)))
    }

    /// Sort key for route precedence: smaller is better. The path (longest first; at equal
    /// length `Exact`, `Prefix`, then a regular expression; then the path text, so that the
    /// order is total — two different `Exact`/`Prefix` paths of equal length never match the
    /// same request), then a method match before none, then more header matches, then more
    /// query matches. Compile breaks ties by source order (oldest first); among those, routes
    /// whose whole match is identical are conflicts, and only the first is kept.
    pub fn precedence(
        &self,
    ) -> (
        Reverse<usize>,
        u8,
        &str,
        bool,
        Reverse<usize>,
        Reverse<usize>,
    ) {
        let rank = match self.path {
            PathMatch::Exact(_) => 0,
            PathMatch::Prefix(_) => 1,
            PathMatch::Regex(_) => 2,
        };
        let path = self.path.as_str();
        (
            Reverse(path.len()),
            rank,
            path,
            self.method().is_none(),
            Reverse(self.headers().len()),
            Reverse(self.query().len()),
        )
    }
}

impl PathMatch {
    /// Whether a request path (without query) matches.
    ///
    /// `Prefix` matches element by element on `/`: `/foo` matches `/foo`, `/foo/` and
    /// `/foo/bar` but not `/foobar`; the prefix is stored without trailing slash, so a
    /// trailing slash on the rule is ignored too.
    #[inline]
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Exact(exact) => path == &**exact,
            PathMatch::Prefix(prefix) => {
                &**prefix == "/"
                    || (path.starts_with(&**prefix)
                        && matches!(path.as_bytes().get(prefix.len()), None | Some(b'/')))
            }
            PathMatch::Regex(pattern) => pattern.is_match(path),
        }
    }

    /// The path (or pattern) as stored.
    pub fn as_str(&self) -> &str {
        match self {
            PathMatch::Exact(p) | PathMatch::Prefix(p) => p,
            PathMatch::Regex(p) => p.as_str(),
        }
    }

    /// The kind, as the Gateway API names it (`Exact`, `Prefix`, `RegularExpression`).
    pub fn kind(&self) -> &'static str {
        match self {
            PathMatch::Exact(_) => "Exact",
            PathMatch::Prefix(_) => "Prefix",
            PathMatch::Regex(_) => "RegularExpression",
        }
    }
}

/// The first value of query parameter `name`, percent-decoded (`+` is a space, as in forms).
pub(crate) fn query_value<'q>(query: Option<&'q str>, name: &str) -> Option<Cow<'q, str>> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k).as_ref() == name).then(|| decode(v))
    })
}

/// Percent-decodes a query component; invalid escapes are kept as written. Allocates only
/// when there is something to decode.
pub(crate) fn decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex(b: Option<&u8>) -> Option<u8> {
    let b = *b?;
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Lower-case the host and strip its port and a trailing dot; allocates only when the host
/// has upper-case letters.
#[inline]
pub fn normalize_host(host: &str) -> Cow<'_, str> {
    let host = if host.starts_with('[') {
        // IPv6 literal: `[::1]` or `[::1]:8080`.
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        match host.rfind(':') {
            Some(colon)
                if !host[..colon].contains(':')
                    && host[colon + 1..].bytes().all(|b| b.is_ascii_digit()) =>
            {
                &host[..colon]
            }
            _ => host,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// `a.example.com` → `.example.com` (the key of `*.example.com`); `None` for a single label.
pub(crate) fn wildcard_suffix(host: &str) -> Option<&str> {
    let dot = host.find('.')?;
    (dot > 0 && dot + 1 < host.len()).then(|| &host[dot..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{
        ClusterKey, HeaderMatch, Pattern, QueryMatch, RouteAction, RouteId, StringMatch,
        VirtualHosts,
    };

    fn prefix(p: &str) -> RouteMatch {
        RouteMatch::path(PathMatch::Prefix(p.into()))
    }

    fn exact(p: &str) -> RouteMatch {
        RouteMatch::path(PathMatch::Exact(p.into()))
    }

    fn regex(p: &str) -> RouteMatch {
        RouteMatch::path(PathMatch::Regex(Box::new(
            Pattern::new(p).expect("pattern"),
        )))
    }

    fn route(matches: RouteMatch, name: &str) -> Route {
        Route {
            id: RouteId::default(),
            name: name.to_owned(),
            matches,
            filters: Vec::new(),
            action: RouteAction::forward(ClusterKey::new("default", name, 80)),
            metrics_per_route: false,
        }
    }

    /// A virtual host whose routes are named as given, sorted as compile sorts them
    /// (precedence, then the order given here as source order).
    fn vhost(host: &str, routes: &[(RouteMatch, &str)]) -> VirtualHost {
        let mut routes: Vec<(usize, Route)> = routes
            .iter()
            .enumerate()
            .map(|(i, (m, name))| (i, route(m.clone(), name)))
            .collect();
        routes.sort_by(|(ia, a), (ib, b)| {
            a.matches
                .precedence()
                .cmp(&b.matches.precedence())
                .then(ia.cmp(ib))
        });
        VirtualHost {
            host: host.into(),
            routes: routes.into_iter().map(|(_, r)| r).collect(),
        }
    }

    fn table(
        exact: &[VirtualHost],
        wildcard: &[VirtualHost],
        any: Option<VirtualHost>,
    ) -> RouteTable {
        RouteTable {
            virtual_hosts: VirtualHosts {
                exact: exact.iter().map(|v| (v.host.clone(), v.clone())).collect(),
                wildcard: wildcard
                    .iter()
                    .map(|v| (v.host.trim_start_matches('*').to_owned(), v.clone()))
                    .collect(),
                any,
                deep_wildcards: false,
            },
            default_route: None,
        }
    }

    fn any(routes: &[(RouteMatch, &str)]) -> RouteTable {
        table(&[], &[], Some(vhost("*", routes)))
    }

    /// Route `GET host target` with `headers`.
    fn pick<'t>(
        t: &'t RouteTable,
        method: &str,
        host: &str,
        target: &str,
        headers: &[(&str, &str)],
    ) -> Option<&'t str> {
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        let head = RequestHead::new(&method, host, target, &map);
        t.route(&head).map(|r| r.name.as_str())
    }

    fn name<'t>(t: &'t RouteTable, host: &str, target: &str) -> Option<&'t str> {
        pick(t, "GET", host, target, &[])
    }

    #[test]
    fn exact_host_beats_wildcard() {
        let t = table(
            &[vhost("a.example.com", &[(prefix("/"), "exact")])],
            &[vhost("*.example.com", &[(prefix("/"), "wild")])],
            None,
        );
        assert_eq!(name(&t, "a.example.com", "/"), Some("exact"));
        assert_eq!(name(&t, "b.example.com", "/"), Some("wild"));
    }

    #[test]
    fn wildcard_beats_no_host() {
        let t = table(
            &[],
            &[vhost("*.example.com", &[(prefix("/"), "wild")])],
            Some(vhost("*", &[(prefix("/"), "any")])),
        );
        assert_eq!(name(&t, "b.example.com", "/"), Some("wild"));
        assert_eq!(name(&t, "example.org", "/"), Some("any"));
    }

    #[test]
    fn wildcard_matches_one_label_only() {
        let t = table(
            &[],
            &[vhost("*.example.com", &[(prefix("/"), "wild")])],
            None,
        );
        assert_eq!(name(&t, "a.example.com", "/"), Some("wild"));
        assert_eq!(name(&t, "a.b.example.com", "/"), None);
        assert_eq!(name(&t, "example.com", "/"), None);
        assert_eq!(name(&t, ".example.com", "/"), None);
    }

    #[test]
    fn deep_wildcards_match_more_labels_most_specific_first() {
        let mut t = table(
            &[],
            &[
                vhost("*.example.com", &[(prefix("/"), "wide")]),
                vhost("*.b.example.com", &[(prefix("/b"), "narrow")]),
            ],
            None,
        );
        t.virtual_hosts.deep_wildcards = true;
        assert_eq!(name(&t, "a.example.com", "/"), Some("wide"));
        assert_eq!(name(&t, "x.y.b.example.com", "/b"), Some("narrow"));
        // No route of the narrower wildcard matches: the wider one serves.
        assert_eq!(name(&t, "a.b.example.com", "/c"), Some("wide"));
        assert_eq!(name(&t, "example.com", "/"), None);
        assert_eq!(name(&t, ".example.com", "/"), None);
    }

    #[test]
    fn no_host_matches_any_host() {
        let t = any(&[(prefix("/"), "any")]);
        for host in [
            "a.example.com",
            "localhost",
            "127.0.0.1:8080",
            "[::1]:8080",
            "",
        ] {
            assert_eq!(name(&t, host, "/x"), Some("any"), "host {host}");
        }
    }

    #[test]
    fn host_without_matching_path_falls_through_to_less_specific_host() {
        let t = table(
            &[vhost("a.example.com", &[(prefix("/api"), "exact-api")])],
            &[vhost("*.example.com", &[(prefix("/web"), "wild-web")])],
            Some(vhost("*", &[(prefix("/"), "any")])),
        );
        assert_eq!(name(&t, "a.example.com", "/api/v1"), Some("exact-api"));
        assert_eq!(name(&t, "a.example.com", "/web"), Some("wild-web"));
        assert_eq!(name(&t, "a.example.com", "/other"), Some("any"));
    }

    #[test]
    fn longest_path_wins_regardless_of_order() {
        let routes = [
            (prefix("/"), "root"),
            (prefix("/aaa/bbb"), "deep"),
            (prefix("/aaa"), "mid"),
        ];
        let mut reversed = routes.clone();
        reversed.reverse();
        for order in [&routes[..], &reversed[..]] {
            let t = any(order);
            assert_eq!(name(&t, "h", "/aaa/bbb/c"), Some("deep"));
            assert_eq!(name(&t, "h", "/aaa/c"), Some("mid"));
            assert_eq!(name(&t, "h", "/c"), Some("root"));
        }
    }

    #[test]
    fn exact_beats_prefix_at_equal_length() {
        let t = any(&[(prefix("/foo"), "prefix"), (exact("/foo"), "exact")]);
        assert_eq!(name(&t, "h", "/foo"), Some("exact"));
        assert_eq!(name(&t, "h", "/foo/"), Some("prefix"));
    }

    #[test]
    fn longer_prefix_beats_shorter_exact() {
        let t = any(&[(exact("/foo"), "exact"), (prefix("/foo/bar"), "prefix")]);
        assert_eq!(name(&t, "h", "/foo/bar"), Some("prefix"));
        assert_eq!(name(&t, "h", "/foo"), Some("exact"));
    }

    #[test]
    fn exact_is_exact() {
        let t = any(&[(exact("/foo"), "exact")]);
        assert_eq!(name(&t, "h", "/foo"), Some("exact"));
        assert_eq!(name(&t, "h", "/foo/"), None);
        assert_eq!(name(&t, "h", "/FOO"), None);
    }

    #[test]
    fn trailing_slash_of_request_ignored_by_prefix() {
        let t = any(&[(prefix("/foo"), "p")]);
        assert_eq!(name(&t, "h", "/foo/"), Some("p"));
        assert_eq!(name(&t, "h", "/foo"), Some("p"));
    }

    #[test]
    fn prefix_foo_does_not_match_foobar() {
        let t = any(&[(prefix("/foo"), "p")]);
        assert_eq!(name(&t, "h", "/foobar"), None);
        assert_eq!(name(&t, "h", "/foo/bar"), Some("p"));
    }

    #[test]
    fn query_string_ignored_by_the_path_match() {
        let t = any(&[(exact("/foo"), "e")]);
        assert_eq!(name(&t, "h", "/foo?x=/bar"), Some("e"));
        assert_eq!(name(&t, "h", "/foo?"), Some("e"));
        assert_eq!(name(&t, "h", "/foo#frag"), Some("e"));
        assert_eq!(name(&t, "h", "/fo?o"), None);
    }

    #[test]
    fn port_stripped_from_host() {
        let t = table(&[vhost("a.example.com", &[(prefix("/"), "a")])], &[], None);
        assert_eq!(name(&t, "a.example.com:8080", "/"), Some("a"));
        assert_eq!(name(&t, "a.example.com.", "/"), Some("a"));
        assert_eq!(name(&t, "a.example.com:", "/"), Some("a"));
    }

    #[test]
    fn ipv6_literal_host_with_port() {
        assert_eq!(normalize_host("[::1]:8080"), "[::1]");
        assert_eq!(normalize_host("[::1]"), "[::1]");
        assert_eq!(normalize_host("::1"), "::1");
    }

    #[test]
    fn host_compared_case_insensitively() {
        let t = table(
            &[vhost("a.example.com", &[(prefix("/"), "a")])],
            &[vhost("*.example.org", &[(prefix("/"), "w")])],
            None,
        );
        assert_eq!(name(&t, "A.Example.COM", "/"), Some("a"));
        assert_eq!(name(&t, "X.EXAMPLE.ORG:443", "/"), Some("w"));
        assert!(matches!(normalize_host("a.example.com"), Cow::Borrowed(_)));
    }

    #[test]
    fn default_route_when_nothing_matches() {
        let mut t = table(&[vhost("a.example.com", &[(exact("/x"), "a")])], &[], None);
        t.default_route = Some(route(prefix("/"), DEFAULT_BACKEND_ROUTE));
        assert_eq!(name(&t, "a.example.com", "/y"), Some(DEFAULT_BACKEND_ROUTE));
        assert_eq!(name(&t, "other", "/x"), Some(DEFAULT_BACKEND_ROUTE));
    }

    #[test]
    fn not_found_without_default_route() {
        let t = table(&[vhost("a.example.com", &[(exact("/x"), "a")])], &[], None);
        assert_eq!(name(&t, "a.example.com", "/y"), None);
        assert_eq!(name(&t, "b.example.com", "/x"), None);
    }

    #[test]
    fn root_prefix_matches_everything() {
        let t = any(&[(prefix("/"), "root")]);
        for path in ["/", "/a", "/a/b/", "*"] {
            assert_eq!(name(&t, "h", path), Some("root"), "path {path}");
        }
    }

    // ------------------------------------------------ matches beyond the path

    fn with_method(mut m: RouteMatch, method: Method) -> RouteMatch {
        m.set_method(method);
        m
    }

    fn with_header(mut m: RouteMatch, name: &'static str, value: StringMatch) -> RouteMatch {
        m.push_header(HeaderMatch {
            name: http::HeaderName::from_static(name),
            value,
        });
        m
    }

    fn with_query(mut m: RouteMatch, name: &str, value: StringMatch) -> RouteMatch {
        m.push_query(QueryMatch {
            name: name.to_owned(),
            value,
        });
        m
    }

    fn is(v: &str) -> StringMatch {
        StringMatch::Exact(v.to_owned())
    }

    fn re(v: &str) -> StringMatch {
        StringMatch::Regex(Pattern::new(v).expect("pattern"))
    }

    #[test]
    fn method_match_requires_the_method() {
        let t = any(&[(with_method(prefix("/"), Method::POST), "post")]);
        assert_eq!(pick(&t, "POST", "h", "/", &[]), Some("post"));
        assert_eq!(pick(&t, "GET", "h", "/", &[]), None);
    }

    #[test]
    fn header_match_exact_and_regex_with_case_insensitive_names() {
        let t = any(&[
            (with_header(prefix("/"), "x-env", is("canary")), "exact"),
            (with_header(prefix("/"), "x-user", re("^[0-9]+$")), "regex"),
        ]);
        assert_eq!(
            pick(&t, "GET", "h", "/", &[("X-Env", "canary")]),
            Some("exact")
        );
        assert_eq!(pick(&t, "GET", "h", "/", &[("x-env", "Canary")]), None);
        assert_eq!(
            pick(&t, "GET", "h", "/", &[("x-user", "42")]),
            Some("regex")
        );
        assert_eq!(pick(&t, "GET", "h", "/", &[("x-user", "4a")]), None);
        // A repeated header matches when any of its values does.
        assert_eq!(
            pick(
                &t,
                "GET",
                "h",
                "/",
                &[("x-env", "prod"), ("x-env", "canary")]
            ),
            Some("exact")
        );
    }

    #[test]
    fn query_match_first_occurrence_percent_decoded() {
        let t = any(&[
            (with_query(prefix("/"), "v", is("a b")), "exact"),
            (with_query(prefix("/"), "id", re("^x[0-9]$")), "regex"),
        ]);
        assert_eq!(name(&t, "h", "/?v=a%20b"), Some("exact"));
        assert_eq!(name(&t, "h", "/?x=1&v=a+b"), Some("exact"));
        assert_eq!(
            name(&t, "h", "/?v=c&v=a%20b"),
            None,
            "first occurrence only"
        );
        assert_eq!(name(&t, "h", "/?id=x7"), Some("regex"));
        assert_eq!(name(&t, "h", "/?V=a%20b"), None, "names are case-sensitive");
        assert_eq!(name(&t, "h", "/"), None);
    }

    #[test]
    fn regex_path_matches_and_ranks_after_exact_and_prefix_of_equal_length() {
        let t = any(&[
            (regex("^/api/v[0-9]+/.*$"), "regex"),
            (prefix("/api"), "prefix"),
        ]);
        assert_eq!(name(&t, "h", "/api/v2/users"), Some("regex"));
        assert_eq!(name(&t, "h", "/api/vx/users"), Some("prefix"));
        let t = any(&[(regex("/abc"), "regex"), (prefix("/abc"), "prefix")]);
        assert_eq!(name(&t, "h", "/abc"), Some("prefix"));
    }

    #[test]
    fn gateway_precedence_method_beats_headers_beat_fewer_headers_beat_query() {
        // Gateway API: path, then method, then most header matches, then most query matches.
        let t = any(&[
            (with_query(prefix("/"), "q", is("1")), "query"),
            (with_header(prefix("/"), "x-a", is("1")), "one-header"),
            (
                with_header(with_header(prefix("/"), "x-a", is("1")), "x-b", is("1")),
                "two-headers",
            ),
            (with_method(prefix("/"), Method::GET), "method"),
            (prefix("/"), "plain"),
        ]);
        let all = [("x-a", "1"), ("x-b", "1")];
        assert_eq!(pick(&t, "GET", "h", "/?q=1", &all), Some("method"));
        assert_eq!(pick(&t, "PUT", "h", "/?q=1", &all), Some("two-headers"));
        assert_eq!(
            pick(&t, "PUT", "h", "/?q=1", &[("x-a", "1")]),
            Some("one-header")
        );
        assert_eq!(pick(&t, "PUT", "h", "/?q=1", &[]), Some("query"));
        assert_eq!(pick(&t, "PUT", "h", "/", &[]), Some("plain"));
    }

    #[test]
    fn path_precedes_every_other_match() {
        let t = any(&[
            (
                with_method(with_header(prefix("/"), "x-a", is("1")), Method::GET),
                "rich",
            ),
            (prefix("/longer"), "longer"),
        ]);
        assert_eq!(
            pick(&t, "GET", "h", "/longer/x", &[("x-a", "1")]),
            Some("longer")
        );
    }

    #[test]
    fn equal_matches_keep_source_order() {
        let t = any(&[
            (with_header(prefix("/"), "x-a", is("1")), "first"),
            (with_header(prefix("/"), "x-b", is("1")), "second"),
        ]);
        assert_eq!(
            pick(&t, "GET", "h", "/", &[("x-a", "1"), ("x-b", "1")]),
            Some("first")
        );
    }

    #[test]
    fn snapshot_routes_through_the_listeners_table() {
        use crate::snapshot::{Listener, ListenerProtocol, Snapshot};
        let mut s = Snapshot::default();
        s.route_tables
            .insert("plain".into(), any(&[(prefix("/"), "plain")]));
        s.route_tables
            .insert("secure".into(), any(&[(prefix("/"), "secure")]));
        for (name, table) in [("http", "plain"), ("https", "secure")] {
            s.listeners.push(Listener {
                name: name.into(),
                address: "127.0.0.1:0".parse().expect("addr"),
                protocol: ListenerProtocol::Http,
                route_table: table.into(),
                tls: None,
            });
        }
        let headers = HeaderMap::new();
        let head = RequestHead::new(&Method::GET, "h", "/", &headers);
        assert_eq!(
            s.route("http", &head).map(|r| r.name.as_str()),
            Some("plain")
        );
        assert_eq!(
            s.route("https", &head).map(|r| r.name.as_str()),
            Some("secure")
        );
        assert!(s.route("other", &head).is_none());
    }
}
