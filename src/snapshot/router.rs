//! Request routing: a pure function from (host, path) to a route of the snapshot.
//!
//! Lookup order, as the Ingress spec defines host precedence:
//!
//! 1. the exact virtual host (host lower-cased, port and one trailing dot stripped);
//! 2. the wildcard virtual host whose suffix follows the request host's first label
//!    (`*.example.com` matches `a.example.com`, never `a.b.example.com` nor `example.com`);
//! 3. the virtual host of rules without a host (`any`).
//!
//! The first of these that has a route matching the path serves the request; otherwise the
//! snapshot's default backend (route name `default-backend`); otherwise no route (404).
//!
//! Inside a virtual host, routes are sorted at compile time by [`PathMatch::precedence`]
//! (longest path first; at equal length `Exact` before `Prefix`), so the first matching
//! route is the best one whatever the order of the rules in the Ingresses.
//!
//! Paths are matched as received (no percent-decoding or dot-segment removal); the query
//! string (and a fragment, should a client send one) is never part of the match.
//!
//! This runs once per request: it does not allocate unless the host has upper-case letters.

use std::borrow::Cow;
use std::cmp::Reverse;

use super::{PathMatch, RouteAction, Snapshot, VirtualHost};

/// Name of the route reported when the default backend serves a request.
pub const DEFAULT_BACKEND_ROUTE: &str = "default-backend";

/// The route that serves a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteMatch<'a> {
    /// The route's name (`namespace/ingress/rule/path`, or `default-backend`).
    pub name: &'a str,
    /// What to do with the request.
    pub action: &'a RouteAction,
}

impl Snapshot {
    /// The route for a request: `host` is the raw `Host` header or `:authority` (any case,
    /// maybe with a port, maybe an IPv6 literal), `path` the request-target path, maybe with
    /// a query string. `None` means 404.
    pub fn route(&self, host: &str, path: &str) -> Option<RouteMatch<'_>> {
        let path = strip_query(path);
        let host = normalize_host(host);
        let vhosts = &self.virtual_hosts;
        let found = vhosts
            .exact
            .get(host.as_ref())
            .and_then(|vhost| vhost.find(path))
            .or_else(|| {
                wildcard_suffix(&host)
                    .and_then(|suffix| vhosts.wildcard.get(suffix))
                    .and_then(|vhost| vhost.find(path))
            })
            .or_else(|| vhosts.any.as_ref().and_then(|vhost| vhost.find(path)));
        found.or_else(|| {
            self.default_backend.as_ref().map(|action| RouteMatch {
                name: DEFAULT_BACKEND_ROUTE,
                action,
            })
        })
    }
}

impl VirtualHost {
    /// The first (best) route matching `path` (already stripped of its query).
    pub fn find(&self, path: &str) -> Option<RouteMatch<'_>> {
        self.routes
            .iter()
            .find(|route| route.path.matches(path))
            .map(|route| RouteMatch {
                name: &route.name,
                action: &route.action,
            })
    }
}

impl PathMatch {
    /// Whether a request path (without query) matches.
    ///
    /// `Prefix` matches element by element on `/`: `/foo` matches `/foo`, `/foo/` and
    /// `/foo/bar` but not `/foobar`; the prefix is stored without trailing slash, so a
    /// trailing slash on the rule is ignored too.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Exact(exact) => path == exact,
            PathMatch::Prefix(prefix) => {
                prefix == "/"
                    || (path.starts_with(prefix.as_str())
                        && matches!(path.as_bytes().get(prefix.len()), None | Some(b'/')))
            }
        }
    }

    /// The path as stored.
    pub fn path(&self) -> &str {
        match self {
            PathMatch::Exact(p) | PathMatch::Prefix(p) => p,
        }
    }

    /// Sort key for route precedence: smaller is better. Longest path first; at equal
    /// length `Exact` before `Prefix`; then the path itself, so the order is total and
    /// deterministic (two different paths of equal length and type never match the same
    /// request).
    pub fn precedence(&self) -> (Reverse<usize>, u8, &str) {
        let rank = match self {
            PathMatch::Exact(_) => 0,
            PathMatch::Prefix(_) => 1,
        };
        (Reverse(self.path().len()), rank, self.path())
    }
}

/// The path without `?query` (or `#fragment`).
fn strip_query(path: &str) -> &str {
    match path.find(['?', '#']) {
        Some(end) => &path[..end],
        None => path,
    }
}

/// Lower-case the host and strip its port and a trailing dot; allocates only when the host
/// has upper-case letters.
fn normalize_host(host: &str) -> Cow<'_, str> {
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
fn wildcard_suffix(host: &str) -> Option<&str> {
    let dot = host.find('.')?;
    (dot > 0 && dot + 1 < host.len()).then(|| &host[dot..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{ClusterKey, Route, VirtualHosts};

    fn forward(service: &str) -> RouteAction {
        RouteAction::Forward {
            cluster: ClusterKey {
                namespace: "default".into(),
                service: service.into(),
                port: 80,
            },
        }
    }

    fn prefix(p: &str) -> PathMatch {
        PathMatch::Prefix(p.into())
    }

    fn exact(p: &str) -> PathMatch {
        PathMatch::Exact(p.into())
    }

    /// A virtual host whose routes are named after their service, sorted as compile sorts.
    fn vhost(host: &str, routes: &[(PathMatch, &str)]) -> VirtualHost {
        let mut routes: Vec<Route> = routes
            .iter()
            .map(|(path, service)| Route {
                name: (*service).to_owned(),
                path: path.clone(),
                action: forward(service),
            })
            .collect();
        routes.sort_by(|a, b| a.path.precedence().cmp(&b.path.precedence()));
        VirtualHost {
            host: host.into(),
            routes,
        }
    }

    fn snapshot(
        exact: &[VirtualHost],
        wildcard: &[VirtualHost],
        any: Option<VirtualHost>,
    ) -> Snapshot {
        Snapshot {
            virtual_hosts: VirtualHosts {
                exact: exact.iter().map(|v| (v.host.clone(), v.clone())).collect(),
                wildcard: wildcard
                    .iter()
                    .map(|v| (v.host.trim_start_matches('*').to_owned(), v.clone()))
                    .collect(),
                any,
            },
            ..Snapshot::default()
        }
    }

    fn name<'a>(s: &'a Snapshot, host: &str, path: &str) -> Option<&'a str> {
        s.route(host, path).map(|m| m.name)
    }

    #[test]
    fn exact_host_beats_wildcard() {
        let s = snapshot(
            &[vhost("a.example.com", &[(prefix("/"), "exact")])],
            &[vhost("*.example.com", &[(prefix("/"), "wild")])],
            None,
        );
        assert_eq!(name(&s, "a.example.com", "/"), Some("exact"));
        assert_eq!(name(&s, "b.example.com", "/"), Some("wild"));
    }

    #[test]
    fn wildcard_beats_no_host() {
        let s = snapshot(
            &[],
            &[vhost("*.example.com", &[(prefix("/"), "wild")])],
            Some(vhost("*", &[(prefix("/"), "any")])),
        );
        assert_eq!(name(&s, "b.example.com", "/"), Some("wild"));
        assert_eq!(name(&s, "example.org", "/"), Some("any"));
    }

    #[test]
    fn wildcard_matches_one_label_only() {
        let s = snapshot(
            &[],
            &[vhost("*.example.com", &[(prefix("/"), "wild")])],
            None,
        );
        assert_eq!(name(&s, "a.example.com", "/"), Some("wild"));
        assert_eq!(name(&s, "a.b.example.com", "/"), None);
        assert_eq!(name(&s, "example.com", "/"), None);
        assert_eq!(name(&s, ".example.com", "/"), None);
    }

    #[test]
    fn no_host_matches_any_host() {
        let s = snapshot(&[], &[], Some(vhost("*", &[(prefix("/"), "any")])));
        for host in [
            "a.example.com",
            "localhost",
            "127.0.0.1:8080",
            "[::1]:8080",
            "",
        ] {
            assert_eq!(name(&s, host, "/x"), Some("any"), "host {host}");
        }
    }

    #[test]
    fn host_without_matching_path_falls_through_to_less_specific_host() {
        let s = snapshot(
            &[vhost("a.example.com", &[(prefix("/api"), "exact-api")])],
            &[vhost("*.example.com", &[(prefix("/web"), "wild-web")])],
            Some(vhost("*", &[(prefix("/"), "any")])),
        );
        assert_eq!(name(&s, "a.example.com", "/api/v1"), Some("exact-api"));
        assert_eq!(name(&s, "a.example.com", "/web"), Some("wild-web"));
        assert_eq!(name(&s, "a.example.com", "/other"), Some("any"));
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
            let s = snapshot(&[], &[], Some(vhost("*", order)));
            assert_eq!(name(&s, "h", "/aaa/bbb/c"), Some("deep"));
            assert_eq!(name(&s, "h", "/aaa/c"), Some("mid"));
            assert_eq!(name(&s, "h", "/c"), Some("root"));
        }
    }

    #[test]
    fn exact_beats_prefix_at_equal_length() {
        let s = snapshot(
            &[],
            &[],
            Some(vhost(
                "*",
                &[(prefix("/foo"), "prefix"), (exact("/foo"), "exact")],
            )),
        );
        assert_eq!(name(&s, "h", "/foo"), Some("exact"));
        assert_eq!(name(&s, "h", "/foo/"), Some("prefix"));
    }

    #[test]
    fn longer_prefix_beats_shorter_exact() {
        let s = snapshot(
            &[],
            &[],
            Some(vhost(
                "*",
                &[(exact("/foo"), "exact"), (prefix("/foo/bar"), "prefix")],
            )),
        );
        assert_eq!(name(&s, "h", "/foo/bar"), Some("prefix"));
        assert_eq!(name(&s, "h", "/foo"), Some("exact"));
    }

    #[test]
    fn exact_is_exact() {
        let s = snapshot(&[], &[], Some(vhost("*", &[(exact("/foo"), "exact")])));
        assert_eq!(name(&s, "h", "/foo"), Some("exact"));
        assert_eq!(name(&s, "h", "/foo/"), None);
        assert_eq!(name(&s, "h", "/FOO"), None);
    }

    #[test]
    fn trailing_slash_of_request_ignored_by_prefix() {
        let s = snapshot(&[], &[], Some(vhost("*", &[(prefix("/foo"), "p")])));
        assert_eq!(name(&s, "h", "/foo/"), Some("p"));
        assert_eq!(name(&s, "h", "/foo"), Some("p"));
    }

    #[test]
    fn prefix_foo_does_not_match_foobar() {
        let s = snapshot(&[], &[], Some(vhost("*", &[(prefix("/foo"), "p")])));
        assert_eq!(name(&s, "h", "/foobar"), None);
        assert_eq!(name(&s, "h", "/foo/bar"), Some("p"));
    }

    #[test]
    fn query_string_ignored() {
        let s = snapshot(&[], &[], Some(vhost("*", &[(exact("/foo"), "e")])));
        assert_eq!(name(&s, "h", "/foo?x=/bar"), Some("e"));
        assert_eq!(name(&s, "h", "/foo?"), Some("e"));
        assert_eq!(name(&s, "h", "/fo?o"), None);
    }

    #[test]
    fn port_stripped_from_host() {
        let s = snapshot(&[vhost("a.example.com", &[(prefix("/"), "a")])], &[], None);
        assert_eq!(name(&s, "a.example.com:8080", "/"), Some("a"));
        assert_eq!(name(&s, "a.example.com.", "/"), Some("a"));
        assert_eq!(name(&s, "a.example.com:", "/"), Some("a"));
    }

    #[test]
    fn ipv6_literal_host_with_port() {
        assert_eq!(normalize_host("[::1]:8080"), "[::1]");
        assert_eq!(normalize_host("[::1]"), "[::1]");
        assert_eq!(normalize_host("::1"), "::1");
    }

    #[test]
    fn host_compared_case_insensitively() {
        let s = snapshot(
            &[vhost("a.example.com", &[(prefix("/"), "a")])],
            &[vhost("*.example.org", &[(prefix("/"), "w")])],
            None,
        );
        assert_eq!(name(&s, "A.Example.COM", "/"), Some("a"));
        assert_eq!(name(&s, "X.EXAMPLE.ORG:443", "/"), Some("w"));
        assert!(matches!(normalize_host("a.example.com"), Cow::Borrowed(_)));
    }

    #[test]
    fn default_backend_when_nothing_matches() {
        let mut s = snapshot(&[vhost("a.example.com", &[(exact("/x"), "a")])], &[], None);
        s.default_backend = Some(forward("fallback"));
        let m = s.route("a.example.com", "/y").expect("default backend");
        assert_eq!(m.name, DEFAULT_BACKEND_ROUTE);
        assert_eq!(m.action, &forward("fallback"));
        assert_eq!(name(&s, "other", "/x"), Some(DEFAULT_BACKEND_ROUTE));
    }

    #[test]
    fn not_found_without_default_backend() {
        let s = snapshot(&[vhost("a.example.com", &[(exact("/x"), "a")])], &[], None);
        assert_eq!(s.route("a.example.com", "/y"), None);
        assert_eq!(s.route("b.example.com", "/x"), None);
    }

    #[test]
    fn root_prefix_matches_everything() {
        let s = snapshot(&[], &[], Some(vhost("*", &[(prefix("/"), "root")])));
        for path in ["/", "/a", "/a/b/", "*"] {
            assert_eq!(name(&s, "h", path), Some("root"), "path {path}");
        }
    }
}
