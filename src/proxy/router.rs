//! Request → route, a pure function over the snapshot.
//!
//! TEMPORARY: this minimal matcher stands in for `Snapshot::route` (src/snapshot/router.rs,
//! written on another branch) and is deleted when that lands. Semantics: exact host
//! (lower-cased, port stripped) → wildcard `*.x` (exactly one extra label) → `any`; the first
//! virtual host with a route matching the path wins; else the default backend; else `None`.

use std::borrow::Cow;

use crate::snapshot::{PathMatch, RouteAction, Snapshot, VirtualHost};

/// The route a request matched.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RouteMatch<'a> {
    /// Route name (`""` for the default backend).
    pub(crate) name: &'a str,
    /// What to do.
    pub(crate) action: &'a RouteAction,
}

/// Routes a request by host and path (the path without query string).
pub(crate) fn route<'a>(snap: &'a Snapshot, host: &str, path: &str) -> Option<RouteMatch<'a>> {
    let host = normalize_host(host);
    let vh = &snap.virtual_hosts;
    let exact = vh.exact.get(host.as_ref());
    let wildcard = host
        .find('.')
        .and_then(|dot| vh.wildcard.get(&host[dot..]))
        .filter(|_| !host.starts_with('.'));
    for v in [exact, wildcard, vh.any.as_ref()].into_iter().flatten() {
        if let Some(m) = match_vhost(v, path) {
            return Some(m);
        }
    }
    snap.default_backend
        .as_ref()
        .map(|action| RouteMatch { name: "", action })
}

fn match_vhost<'a>(v: &'a VirtualHost, path: &str) -> Option<RouteMatch<'a>> {
    v.routes
        .iter()
        .find(|r| path_matches(&r.path, path))
        .map(|r| RouteMatch {
            name: &r.name,
            action: &r.action,
        })
}

fn path_matches(m: &PathMatch, path: &str) -> bool {
    match m {
        PathMatch::Exact(p) => p == path,
        PathMatch::Prefix(p) if p == "/" => true,
        PathMatch::Prefix(p) => {
            path.starts_with(p.as_str())
                && matches!(path.as_bytes().get(p.len()), None | Some(b'/'))
        }
    }
}

/// Lower-cases and strips the port (`A.Example:8080` → `a.example`, `[::1]:80` → `[::1]`).
fn normalize_host(host: &str) -> Cow<'_, str> {
    let without_port = if host.starts_with('[') {
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        match host.rfind(':') {
            Some(colon) => &host[..colon],
            None => host,
        }
    };
    let trimmed = without_port.strip_suffix('.').unwrap_or(without_port);
    if trimmed.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(trimmed.to_ascii_lowercase())
    } else {
        Cow::Borrowed(trimmed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{ClusterKey, Route};

    fn fwd(svc: &str) -> RouteAction {
        RouteAction::Forward {
            cluster: ClusterKey {
                namespace: "default".into(),
                service: svc.into(),
                port: 80,
            },
        }
    }

    fn vhost(host: &str, routes: &[(&str, PathMatch)]) -> VirtualHost {
        VirtualHost {
            host: host.into(),
            routes: routes
                .iter()
                .map(|(svc, p)| Route {
                    name: format!("r-{svc}"),
                    path: p.clone(),
                    action: fwd(svc),
                })
                .collect(),
        }
    }

    fn snap() -> Snapshot {
        let mut s = Snapshot::default();
        s.virtual_hosts.exact.insert(
            "a.example".into(),
            vhost(
                "a.example",
                &[
                    ("foo", PathMatch::Prefix("/foo".into())),
                    ("exact", PathMatch::Exact("/x".into())),
                ],
            ),
        );
        s.virtual_hosts.wildcard.insert(
            ".example".into(),
            vhost("*.example", &[("wild", PathMatch::Prefix("/".into()))]),
        );
        s.virtual_hosts.any = Some(vhost("*", &[("any", PathMatch::Prefix("/".into()))]));
        s
    }

    fn name(s: &Snapshot, host: &str, path: &str) -> Option<String> {
        route(s, host, path).map(|m| m.name.to_string())
    }

    #[test]
    fn prefix_matches_path_elements_only() {
        let s = snap();
        assert_eq!(name(&s, "a.example", "/foo").as_deref(), Some("r-foo"));
        assert_eq!(name(&s, "a.example", "/foo/bar").as_deref(), Some("r-foo"));
        // `/foobar` is not under `/foo`: falls through to the wildcard host.
        assert_eq!(name(&s, "a.example", "/foobar").as_deref(), Some("r-wild"));
    }

    #[test]
    fn host_is_lowercased_and_port_stripped() {
        let s = snap();
        assert_eq!(name(&s, "A.Example:8080", "/x").as_deref(), Some("r-exact"));
    }

    #[test]
    fn wildcard_matches_one_label_only() {
        let s = snap();
        assert_eq!(name(&s, "b.example", "/").as_deref(), Some("r-wild"));
        assert_eq!(name(&s, "c.b.example", "/").as_deref(), Some("r-any"));
    }

    #[test]
    fn no_match_and_no_default_is_none() {
        let mut s = snap();
        s.virtual_hosts.any = None;
        assert!(route(&s, "other", "/").is_none());
        s.default_backend = Some(fwd("default"));
        assert_eq!(name(&s, "other", "/").as_deref(), Some(""));
    }
}
