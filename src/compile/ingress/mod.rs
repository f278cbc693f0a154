//! Pass 3: hosts, paths and conflicts of weir's Ingresses (backends are resolved later).
//!
//! - Hosts are lower-cased. `*.example.com` is a wildcard matching one extra label; any other
//!   `*`, an IP address, a port or a character outside `[a-z0-9.-]` is rejected
//!   (`InvalidHost`). A rule without host goes to the `any` virtual host.
//! - Paths must be absolute and free of `//`, `/./`, `/../`, `%2f`, and may not end in `/.`
//!   or `/..` (the API server's own checks; files bypass it). `Prefix` paths are stored
//!   without trailing slash. **`ImplementationSpecific` is treated as `Prefix`** (as Contour
//!   and ingress-nginx without regex do); an empty `ImplementationSpecific` path means `/`.
//! - Rules of all weir Ingresses are merged per host. Two routes with the same host, path
//!   match and type conflict: the one from the Ingress earlier in precedence order (oldest,
//!   then namespace/name), or from the earlier rule of one Ingress, wins; the loser is
//!   skipped with `PathConflict`.
//!
//! Routes come out sorted by [`PathMatch::precedence`], which is what the router relies on.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::IngressBackend;

use super::classes::OwnedIngress;
use super::status::Status;
use crate::api::{condition_types, reasons};
use crate::snapshot::{PathMatch, RouteMatch};

/// Which virtual host a rule goes to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum HostKey {
    /// Exact host, lower-cased.
    Exact(String),
    /// Wildcard, keyed by its suffix with the dot (`.example.com`).
    Wildcard(String),
    /// No host.
    Any,
}

impl HostKey {
    /// The host as the snapshot shows it.
    pub(super) fn display(&self) -> String {
        match self {
            HostKey::Exact(host) => host.clone(),
            HostKey::Wildcard(suffix) => format!("*{suffix}"),
            HostKey::Any => "*".to_owned(),
        }
    }
}

/// A route whose backend is not resolved yet.
#[derive(Debug)]
pub(super) struct PendingRoute<'a> {
    /// Index of the Ingress in the precedence-ordered owned list.
    pub(super) owner: usize,
    /// Rule index in `spec.rules`.
    pub(super) rule: usize,
    /// Path index in `spec.rules[rule].http.paths`.
    pub(super) path_index: usize,
    /// The match (the path alone, for Ingress).
    pub(super) matches: RouteMatch,
    /// The backend to resolve.
    pub(super) backend: &'a IngressBackend,
}

/// Routes per virtual host, sorted by precedence, conflicts removed.
pub(super) fn routes<'a>(
    owned: &[OwnedIngress<'a>],
    status: &mut Status,
) -> BTreeMap<HostKey, Vec<PendingRoute<'a>>> {
    let mut hosts: BTreeMap<HostKey, Vec<PendingRoute<'a>>> = BTreeMap::new();
    for (owner, ingress) in owned.iter().enumerate() {
        let Some(rules) = ingress.ingress.spec.as_ref().and_then(|s| s.rules.as_ref()) else {
            continue;
        };
        for (rule_index, rule) in rules.iter().enumerate() {
            let host_key = match rule.host.as_deref() {
                None | Some("") => HostKey::Any,
                Some(host) => match parse_host(host) {
                    Ok(key) => key,
                    Err(why) => {
                        let message =
                            format!("spec.rules[{rule_index}].host {host:?} {why}; rule skipped");
                        status.ingress_error(
                            ingress.key,
                            condition_types::ACCEPTED,
                            reasons::INVALID_HOST,
                            message,
                        );
                        continue;
                    }
                },
            };
            let Some(http) = rule.http.as_ref() else {
                continue;
            };
            let host_routes = hosts.entry(host_key).or_default();
            for (path_index, path) in http.paths.iter().enumerate() {
                let field = || format!("spec.rules[{rule_index}].http.paths[{path_index}]");
                let path_match =
                    match parse_path(path.path.as_deref().unwrap_or(""), &path.path_type) {
                        Ok(path_match) => path_match,
                        Err((reason, why)) => {
                            let message = format!("{}: {why}; path skipped", field());
                            status.ingress_error(
                                ingress.key,
                                condition_types::ACCEPTED,
                                reason,
                                message,
                            );
                            continue;
                        }
                    };
                host_routes.push(PendingRoute {
                    owner,
                    rule: rule_index,
                    path_index,
                    matches: RouteMatch::path(path_match),
                    backend: &path.backend,
                });
            }
        }
    }
    for (host, routes) in &mut hosts {
        // Sort by precedence, then by owner order, so among equal matches the winner
        // comes first; then drop the losers.
        routes.sort_by(|a, b| {
            a.matches
                .precedence()
                .cmp(&b.matches.precedence())
                .then((a.owner, a.rule, a.path_index).cmp(&(b.owner, b.rule, b.path_index)))
        });
        let mut kept: Vec<PendingRoute<'a>> = Vec::with_capacity(routes.len());
        for route in routes.drain(..) {
            match kept.last() {
                Some(winner) if winner.matches == route.matches => {
                    let loser = &owned[route.owner];
                    let winner_key = owned[winner.owner].key;
                    let by = if winner.owner == route.owner {
                        format!(
                            "spec.rules[{}].http.paths[{}] of the same Ingress",
                            winner.rule, winner.path_index
                        )
                    } else {
                        format!(
                            "Ingress {winner_key}, which takes precedence (older, or earlier in namespace/name order)"
                        )
                    };
                    let message = format!(
                        "spec.rules[{}].http.paths[{}]: host {} path {} {:?} is already served by {by}; path skipped",
                        route.rule,
                        route.path_index,
                        host.display(),
                        route.matches.path.kind(),
                        route.matches.path.as_str(),
                    );
                    status.ingress_error(
                        loser.key,
                        condition_types::ACCEPTED,
                        reasons::PATH_CONFLICT,
                        message,
                    );
                }
                _ => kept.push(route),
            }
        }
        *routes = kept;
    }
    hosts.retain(|_, routes| !routes.is_empty());
    hosts
}

/// Validate and classify a rule host.
pub(super) fn parse_host(host: &str) -> Result<HostKey, &'static str> {
    let host = host.to_ascii_lowercase();
    let (wildcard, name) = match host.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, host.as_str()),
    };
    if name.is_empty() || name.len() > 253 {
        return Err("is empty or longer than 253 characters");
    }
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Err("is an IP address, which the Ingress spec does not allow");
    }
    for label in name.split('.') {
        let valid = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !valid {
            return Err(
                "is not a DNS name (or `*.` followed by one): labels of a-z, 0-9 and '-', no port",
            );
        }
    }
    Ok(if wildcard {
        HostKey::Wildcard(format!(".{name}"))
    } else {
        HostKey::Exact(host)
    })
}

/// Validate a path and its type.
pub(super) fn parse_path(path: &str, path_type: &str) -> Result<PathMatch, (&'static str, String)> {
    let path = match (path_type, path) {
        ("ImplementationSpecific", "") => "/",
        ("Exact" | "Prefix" | "ImplementationSpecific", _) => path,
        _ => {
            return Err((
                reasons::INVALID_PATH_TYPE,
                format!("pathType {path_type:?} is not Exact, Prefix or ImplementationSpecific"),
            ));
        }
    };
    if !path.starts_with('/') {
        return Err((
            reasons::INVALID_PATH,
            format!("path {path:?} is not absolute (must start with '/')"),
        ));
    }
    const SEQUENCES: [&str; 5] = ["//", "/./", "/../", "%2f", "%2F"];
    if let Some(seq) = SEQUENCES.iter().find(|s| path.contains(*s)) {
        return Err((
            reasons::INVALID_PATH,
            format!("path {path:?} contains {seq:?}"),
        ));
    }
    if path.ends_with("/.") || path.ends_with("/..") {
        return Err((
            reasons::INVALID_PATH,
            format!("path {path:?} ends with a dot segment"),
        ));
    }
    if path
        .bytes()
        .any(|b| b.is_ascii_control() || b == b' ' || b == b'?' || b == b'#')
    {
        return Err((
            reasons::INVALID_PATH,
            format!("path {path:?} contains a space, control character, '?' or '#'"),
        ));
    }
    Ok(match path_type {
        "Exact" => PathMatch::Exact(path.to_owned()),
        _ => {
            let trimmed = path.trim_end_matches('/');
            PathMatch::Prefix(if trimmed.is_empty() {
                "/".to_owned()
            } else {
                trimmed.to_owned()
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_classified_and_validated() {
        assert_eq!(
            parse_host("A.Example.com"),
            Ok(HostKey::Exact("a.example.com".into()))
        );
        assert_eq!(
            parse_host("*.example.com"),
            Ok(HostKey::Wildcard(".example.com".into()))
        );
        for bad in [
            "*",
            "a.*.com",
            "foo.com:80",
            "10.0.0.1",
            "a..b",
            "-a.com",
            "a_b.com",
            "*.",
            "",
        ] {
            assert!(parse_host(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn paths_are_normalised_per_type() {
        assert_eq!(
            parse_path("/foo/", "Prefix"),
            Ok(PathMatch::Prefix("/foo".into()))
        );
        assert_eq!(parse_path("/", "Prefix"), Ok(PathMatch::Prefix("/".into())));
        assert_eq!(
            parse_path("/foo/", "Exact"),
            Ok(PathMatch::Exact("/foo/".into()))
        );
        assert_eq!(
            parse_path("", "ImplementationSpecific"),
            Ok(PathMatch::Prefix("/".into()))
        );
        assert_eq!(
            parse_path("/a/", "ImplementationSpecific"),
            Ok(PathMatch::Prefix("/a".into()))
        );
    }

    #[test]
    fn bad_paths_and_types_are_rejected() {
        for bad in [
            "foo", "", "/a//b", "/a/../b", "/a/./b", "/a%2fb", "/a/..", "/a/.", "/a b", "/a?b",
        ] {
            assert_eq!(
                parse_path(bad, "Prefix").map_err(|e| e.0),
                Err(reasons::INVALID_PATH),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_path("/", "Regex").map_err(|e| e.0),
            Err(reasons::INVALID_PATH_TYPE)
        );
    }
}
