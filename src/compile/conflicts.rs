//! Shared pass: routes that claim the same requests.
//!
//! Two routes of one route table conflict when they have the same host and an identical
//! [`RouteMatch`]; two default-route candidates of one table always conflict. One wins:
//!
//! 1. a route whose backends all resolved beats one with an unresolved backend (so an older
//!    object pointing at a missing Service cannot hide a working route of a younger one);
//! 2. then the earlier in source order ([`super::ir::SourceOrder`]: for Ingress the oldest
//!    Ingress, then namespace/name, then rule and path index).
//!
//! Each loser is dropped with an `Accepted` condition (`PathConflict`,
//! `DefaultBackendConflict`) naming the winner and why it won. Rejected routes
//! ([`IrAction::Reject`]) cannot serve anything, so they never take part: they neither win
//! nor lose.
//!
//! This pass also sorts each host's routes into precedence order
//! ([`RouteMatch::precedence`], then source order), which makes identical matches adjacent
//! in runs of equal precedence; assemble keeps that order.

use super::Ir;
use super::backends::Resolver;
use super::ir::{HostMatch, IrAction, IrRoute};
use super::status::Status;
use crate::api::{condition_types, reasons};
use crate::snapshot::{RouteMatch, StringMatch};

/// Sort every host's routes and drop the losers of conflicts, reporting them.
pub(super) fn settle(ir: &mut Ir<'_>, resolver: &Resolver<'_>, status: &mut Status) {
    let sources = &ir.sources;
    let describe = |winner: &IrRoute<'_>, loser: &IrRoute<'_>| {
        let source = &sources[winner.order.source.0];
        if winner.order.source == loser.order.source {
            format!("{} of the same {}", winner.field, source.kind)
        } else {
            format!("{} {}", source.kind, source.key)
        }
    };
    for table in ir.route_tables.values_mut() {
        for (host, routes) in &mut table.hosts {
            routes.sort_by(|a, b| {
                a.matches
                    .precedence()
                    .cmp(&b.matches.precedence())
                    .then(a.order.cmp(&b.order))
            });
            let mut lost = Vec::new();
            let mut start = 0;
            while start < routes.len() {
                let key = routes[start].matches.precedence();
                let end = start
                    + routes[start..]
                        .iter()
                        .take_while(|r| r.matches.precedence() == key)
                        .count();
                if end - start > 1 {
                    lost.extend(
                        losers(&routes[start..end], resolver)
                            .into_iter()
                            .map(|(loser, winner)| (start + loser, start + winner)),
                    );
                }
                start = end;
            }
            if lost.is_empty() {
                continue;
            }
            for &(loser, winner) in &lost {
                let (loser, winner) = (&routes[loser], &routes[winner]);
                let by = describe(winner, loser);
                let why = match resolver.unresolved(loser) {
                    Some(why) if winner.order > loser.order => {
                        format!("{by}, whose backends resolved while this path's did not ({why})")
                    }
                    _ if winner.order.source == loser.order.source => by,
                    _ => format!(
                        "{by}, which takes precedence (older, or earlier in namespace/name order)"
                    ),
                };
                let message = format!(
                    "{}: host {} {} is already served by {why}; path skipped",
                    loser.field,
                    host.display(),
                    describe_match(&loser.matches),
                );
                status.error(
                    &sources[loser.order.source.0],
                    condition_types::ACCEPTED,
                    reasons::PATH_CONFLICT,
                    message,
                );
            }
            drop_losers(routes, &lost);
        }
        table
            .hosts
            .retain(|_: &HostMatch, routes| !routes.is_empty());

        let candidates = &mut table.default_route.candidates;
        candidates.sort_by_key(|c| c.order);
        let lost = losers(candidates, resolver);
        for &(loser, winner) in &lost {
            let (loser, winner) = (&candidates[loser], &candidates[winner]);
            let by = describe(winner, loser);
            let why = match resolver.unresolved(loser) {
                Some(why) if winner.order > loser.order => {
                    format!(", and its backends resolved while this one's did not ({why})")
                }
                _ => " (older, or earlier in namespace/name order)".to_owned(),
            };
            let message = format!(
                "{}: {by} already provides the default backend{why}; ignored",
                loser.field
            );
            status.error(
                &sources[loser.order.source.0],
                condition_types::ACCEPTED,
                reasons::DEFAULT_BACKEND_CONFLICT,
                message,
            );
        }
        drop_losers(candidates, &lost);
    }
}

/// The losers among `routes` (sorted by source order within identical matches), each with
/// its winner, as indices into `routes`. Rejected routes take no part.
fn losers(routes: &[IrRoute<'_>], resolver: &Resolver<'_>) -> Vec<(usize, usize)> {
    let mut decided = vec![false; routes.len()];
    let mut lost = Vec::new();
    for first in 0..routes.len() {
        if decided[first] || matches!(routes[first].action, IrAction::Reject(_)) {
            continue;
        }
        let group: Vec<usize> = (first..routes.len())
            .filter(|&i| {
                !decided[i]
                    && !matches!(routes[i].action, IrAction::Reject(_))
                    && routes[i].matches == routes[first].matches
            })
            .collect();
        let winner = group
            .iter()
            .copied()
            .find(|&i| resolver.unresolved(&routes[i]).is_none())
            .unwrap_or(first);
        for &i in &group {
            decided[i] = true;
            if i != winner {
                lost.push((i, winner));
            }
        }
    }
    lost
}

/// Remove the losers (first of each pair) from `routes`, keeping the order of the rest.
fn drop_losers(routes: &mut Vec<IrRoute<'_>>, lost: &[(usize, usize)]) {
    let mut keep = vec![true; routes.len()];
    for &(loser, _) in lost {
        keep[loser] = false;
    }
    let mut keep = keep.into_iter();
    routes.retain(|_| keep.next().unwrap_or(true));
}

/// A match as messages show it: `path Prefix "/x"`, then any method, header and query
/// conditions.
fn describe_match(matches: &RouteMatch) -> String {
    let mut text = format!("path {} {:?}", matches.path.kind(), matches.path.as_str());
    if let Some(method) = matches.method() {
        text.push_str(&format!(" method {method}"));
    }
    let value = |v: &StringMatch| match v {
        StringMatch::Exact(s) => format!("Exact {s:?}"),
        StringMatch::Regex(p) => format!("RegularExpression {:?}", p.as_str()),
    };
    for header in matches.headers() {
        text.push_str(&format!(" header {} {}", header.name, value(&header.value)));
    }
    for query in matches.query() {
        text.push_str(&format!(" query {} {}", query.name, value(&query.value)));
    }
    text
}

#[cfg(test)]
mod tests {
    use http::HeaderName;

    use super::super::testing::{TABLE, add, ir, rejected, route, run, services};
    use super::super::{Compiled, ObjectRef};
    use crate::api::reasons;
    use crate::snapshot::{HeaderMatch, StringMatch};
    use crate::store::ObjectKey;

    fn served(compiled: &Compiled, host: &str) -> Vec<String> {
        compiled.snapshot.route_tables[TABLE].virtual_hosts.exact[host]
            .routes
            .iter()
            .map(|r| r.name.clone())
            .collect()
    }

    fn reasons_of(compiled: &Compiled, key: &ObjectKey) -> Vec<&'static str> {
        let object = ObjectRef {
            kind: "Ingress",
            key: key.clone(),
        };
        compiled
            .status
            .conditions
            .get(&object)
            .map(|cs| cs.iter().map(|c| c.reason).collect())
            .unwrap_or_default()
    }

    fn keys() -> [ObjectKey; 3] {
        ["old", "mid", "young"].map(|name| ObjectKey::new("default", name))
    }

    #[test]
    fn a_route_whose_backends_resolved_beats_an_older_one_that_did_not() {
        let objects = services(&["default/a"]);
        let keys = keys();
        let mut ir = ir(&keys);
        add(
            &mut ir,
            "h",
            [
                route(0, 0, "/x", &[("default/missing", 1)]),
                route(2, 0, "/x", &[("default/a", 1)]),
            ],
        );
        let compiled = run(ir, &objects);
        assert_eq!(served(&compiled, "h"), ["route-2-0"]);
        assert_eq!(reasons_of(&compiled, &keys[0]), [reasons::PATH_CONFLICT]);
        let message = &compiled
            .status
            .conditions
            .values()
            .flatten()
            .next()
            .expect("one")
            .message;
        assert!(
            message.contains("Ingress default/young, whose backends resolved while this path's did not (Service default/missing not found)"),
            "{message}"
        );
        assert!(reasons_of(&compiled, &keys[2]).is_empty());
    }

    #[test]
    fn among_unresolved_routes_source_order_decides() {
        let objects = services(&[]);
        let keys = keys();
        let mut ir = ir(&keys);
        add(
            &mut ir,
            "h",
            [
                route(2, 0, "/x", &[("default/gone", 1)]),
                route(0, 0, "/x", &[("default/missing", 1)]),
            ],
        );
        let compiled = run(ir, &objects);
        assert_eq!(served(&compiled, "h"), ["route-0-0"]);
        assert_eq!(
            reasons_of(&compiled, &keys[0]),
            [reasons::SERVICE_NOT_FOUND]
        );
        // The loser reports only the conflict, not a Service it would never have served.
        assert_eq!(reasons_of(&compiled, &keys[2]), [reasons::PATH_CONFLICT]);
    }

    #[test]
    fn among_resolved_routes_source_order_decides() {
        let objects = services(&["default/a", "default/b"]);
        let keys = keys();
        let mut ir = ir(&keys);
        add(
            &mut ir,
            "h",
            [
                route(1, 3, "/x", &[("default/b", 1)]),
                route(1, 2, "/x", &[("default/a", 1)]),
            ],
        );
        let compiled = run(ir, &objects);
        assert_eq!(served(&compiled, "h"), ["route-1-2"]);
        let message = &compiled
            .status
            .conditions
            .values()
            .flatten()
            .next()
            .expect("one")
            .message;
        assert!(
            message.contains(
                "is already served by spec.rules[0].http.paths[2] of the same Ingress; path skipped"
            ),
            "{message}"
        );
    }

    #[test]
    fn identical_matches_conflict_even_when_not_adjacent() {
        // Equal precedence (one header match each), sorted by source order: h=1, h=2, h=1.
        let objects = services(&["default/a"]);
        let keys = keys();
        let mut ir = ir(&keys);
        let with_header = |source, value: &str| {
            let mut r = route(source, 0, "/x", &[("default/a", 1)]);
            r.matches.push_header(HeaderMatch {
                name: HeaderName::from_static("x-variant"),
                value: StringMatch::Exact(value.to_owned()),
            });
            r
        };
        add(
            &mut ir,
            "h",
            [
                with_header(0, "1"),
                with_header(1, "2"),
                with_header(2, "1"),
            ],
        );
        let compiled = run(ir, &objects);
        assert_eq!(served(&compiled, "h"), ["route-0-0", "route-1-0"]);
        assert_eq!(reasons_of(&compiled, &keys[2]), [reasons::PATH_CONFLICT]);
        let message = &compiled
            .status
            .conditions
            .values()
            .flatten()
            .next()
            .expect("one")
            .message;
        assert!(
            message.contains(r#"path Prefix "/x" header x-variant Exact "1""#),
            "{message}"
        );
    }

    #[test]
    fn rejected_routes_neither_win_nor_lose() {
        let objects = services(&["default/a"]);
        let keys = keys();
        let mut ir = ir(&keys);
        add(
            &mut ir,
            "h",
            [rejected(0, 0, "/x"), route(2, 0, "/x", &[("default/a", 1)])],
        );
        let compiled = run(ir, &objects);
        assert_eq!(served(&compiled, "h"), ["route-2-0"]);
        assert_eq!(reasons_of(&compiled, &keys[0]), ["Rejected"]);
        assert!(reasons_of(&compiled, &keys[2]).is_empty());
    }

    #[test]
    fn a_default_route_whose_backends_resolved_beats_an_older_one() {
        let objects = services(&["default/a"]);
        let keys = keys();
        let mut ir = ir(&keys);
        let table = ir.route_tables.get_mut(TABLE).expect("table");
        table.default_route.candidates = vec![
            route(0, 0, "/", &[("default/missing", 1)]),
            route(1, 0, "/", &[("default/a", 1)]),
            route(2, 0, "/", &[("default/a", 1)]),
        ];
        let compiled = run(ir, &objects);
        let default = compiled.snapshot.route_tables[TABLE]
            .default_route
            .as_ref()
            .expect("default route");
        assert_eq!(default.name, "route-1-0");
        assert_eq!(
            reasons_of(&compiled, &keys[0]),
            [reasons::DEFAULT_BACKEND_CONFLICT]
        );
        assert_eq!(
            reasons_of(&compiled, &keys[2]),
            [reasons::DEFAULT_BACKEND_CONFLICT]
        );
        let messages: Vec<&str> = compiled
            .status
            .conditions
            .values()
            .flatten()
            .map(|c| c.message.as_str())
            .collect();
        assert!(
            messages[0].contains("its backends resolved while this one's did not"),
            "{messages:?}"
        );
        assert!(
            messages[1].contains("(older, or earlier in namespace/name order)"),
            "{messages:?}"
        );
    }
}
