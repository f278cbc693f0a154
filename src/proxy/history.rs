//! What was published lately, for the debug listener's status page: a bounded ring of the
//! last [`CAPACITY`] publishes (snapshots, and endpoint sets on the EndpointSlice fast
//! path), each with its generation, wall-clock time and a short list of what changed, plus
//! the diagnostics (conditions) of the last compile as the control plane handed them over.
//!
//! Nothing here is on the request path: records are written under the publish lock, and
//! the admin listener copies them out.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::snapshot::{ClusterKey, PathMatch, RouteAction, Snapshot};

/// Publishes kept.
pub const CAPACITY: usize = 32;
/// Changes listed per publish (the rest are counted).
const MAX_CHANGES: usize = 12;
/// Diagnostics kept (the rest are counted).
const MAX_DIAGNOSTICS: usize = 200;

/// One publish.
#[derive(Debug, Clone, Serialize)]
pub struct PublishRecord {
    /// The snapshot generation live after this publish.
    pub generation: u64,
    /// Wall-clock time of the publish, milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// `snapshot` (a compile was published) or `endpoints` (one cluster's endpoints).
    pub kind: &'static str,
    /// Listeners, virtual hosts, routes and clusters of the snapshot live after it.
    pub counts: Counts,
    /// What changed, one short line each (`+ host a.example`, `- cluster ns/svc:80`, ...).
    pub changes: Vec<String>,
    /// Changes not listed in `changes`.
    pub more_changes: usize,
    /// Error and warning diagnostics of the compile behind a snapshot publish (`None` until
    /// the control plane reported them, and for endpoint publishes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<DiagnosticCounts>,
}

/// Sizes of a snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Listeners.
    pub listeners: usize,
    /// Virtual hosts over every route table.
    pub virtual_hosts: usize,
    /// Routes over every route table, default routes included.
    pub routes: usize,
    /// Clusters.
    pub clusters: usize,
}

/// How many diagnostics of each severity a compile produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DiagnosticCounts {
    /// Pieces rejected.
    pub errors: usize,
    /// Pieces accepted with a caveat.
    pub warnings: usize,
}

/// One diagnostic of the last compile, as plain text (the proxy sees no Kubernetes types).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The object: `Ingress default/web`.
    pub object: String,
    /// `Error` or `Warning`.
    pub severity: &'static str,
    /// Condition type (`Accepted`, `ResolvedRefs`, ...).
    #[serde(rename = "type")]
    pub type_: String,
    /// CamelCase reason.
    pub reason: String,
    /// What is wrong.
    pub message: String,
}

/// The ring, and the diagnostics of the last compile.
#[derive(Debug, Default)]
pub struct History {
    records: VecDeque<PublishRecord>,
    diagnostics: Vec<Diagnostic>,
    diagnostics_total: usize,
    diagnostics_reported: bool,
}

/// What the status page reads.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryView {
    /// Publishes, newest first.
    pub publishes: Vec<PublishRecord>,
    /// Whether a control plane reported diagnostics at all (a bare proxy has none to show).
    pub diagnostics_reported: bool,
    /// Diagnostics of the last compile, errors first (at most 200).
    pub diagnostics: Vec<Diagnostic>,
    /// Diagnostics of the last compile, including those not listed.
    pub diagnostics_total: usize,
}

impl History {
    /// Record a snapshot publish: `old` was live before, `new` is now, as `generation`.
    pub fn snapshot(&mut self, generation: u64, old: &Snapshot, new: &Snapshot) {
        let (changes, more_changes) = snapshot_changes(old, new);
        self.push(PublishRecord {
            generation,
            unix_ms: now_ms(),
            kind: "snapshot",
            counts: counts(new),
            changes,
            more_changes,
            diagnostics: None,
        });
    }

    /// Record an endpoint-set change of one cluster (the EndpointSlice fast path).
    pub fn endpoints(
        &mut self,
        generation: u64,
        snapshot: &Snapshot,
        cluster: &ClusterKey,
        before: Option<usize>,
        after: Option<usize>,
    ) {
        let show = |n: Option<usize>| n.map_or_else(|| "none".to_owned(), |n| n.to_string());
        self.push(PublishRecord {
            generation,
            unix_ms: now_ms(),
            kind: "endpoints",
            // The snapshot did not change: its sizes are the last record's (counting 50,000
            // routes on every EndpointSlice change would cost more than the change).
            counts: self
                .records
                .back()
                .filter(|r| r.generation == generation)
                .map_or_else(|| counts(snapshot), |r| r.counts),
            changes: vec![format!(
                "~ endpoints of {cluster}: {} → {}",
                show(before),
                show(after)
            )],
            more_changes: 0,
            diagnostics: None,
        });
    }

    /// The diagnostics of the compile whose snapshot was published last: kept for the
    /// page, and counted on that publish's record.
    pub fn diagnostics(&mut self, mut diagnostics: Vec<Diagnostic>) {
        diagnostics.sort_by_key(|d| d.severity != "Error");
        let errors = diagnostics.iter().filter(|d| d.severity == "Error").count();
        let counts = DiagnosticCounts {
            errors,
            warnings: diagnostics.len() - errors,
        };
        if let Some(record) = self.records.iter_mut().rev().find(|r| r.kind == "snapshot") {
            record.diagnostics = Some(counts);
        }
        self.diagnostics_total = diagnostics.len();
        diagnostics.truncate(MAX_DIAGNOSTICS);
        self.diagnostics = diagnostics;
        self.diagnostics_reported = true;
    }

    /// A copy for the page.
    pub fn view(&self) -> HistoryView {
        HistoryView {
            publishes: self.records.iter().rev().cloned().collect(),
            diagnostics_reported: self.diagnostics_reported,
            diagnostics: self.diagnostics.clone(),
            diagnostics_total: self.diagnostics_total,
        }
    }

    fn push(&mut self, record: PublishRecord) {
        if self.records.len() == CAPACITY {
            self.records.pop_front();
        }
        self.records.push_back(record);
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn counts(s: &Snapshot) -> Counts {
    let tables = s.route_tables.values();
    Counts {
        listeners: s.listeners.len(),
        virtual_hosts: tables
            .clone()
            .map(|t| {
                let v = &t.virtual_hosts;
                v.exact.len() + v.wildcard.len() + usize::from(v.any.is_some())
            })
            .sum(),
        routes: s.routes().count(),
        clusters: s.clusters.len(),
    }
}

/// Host names served by any route table (`*` for the catch-all).
fn hosts(s: &Snapshot) -> BTreeSet<&str> {
    s.route_tables
        .values()
        .flat_map(|t| {
            let v = &t.virtual_hosts;
            v.exact
                .values()
                .chain(v.wildcard.values())
                .chain(v.any.iter())
                .map(|h| h.host.as_str())
        })
        .collect()
}

/// Routes by name, with what they do (a route whose backends changed shows as changed).
fn routes(s: &Snapshot) -> BTreeMap<&str, (&PathMatch, &RouteAction)> {
    s.routes()
        .map(|r| (r.name.as_str(), (&r.matches.path, &r.action)))
        .collect()
}

/// What changed from `old` to `new`: the first [`MAX_CHANGES`] lines, and how many more. Lines
/// past the limit are counted, never formatted (a first publish adds every route: 50,000
/// lines at scale, which the page would not show).
fn snapshot_changes(old: &Snapshot, new: &Snapshot) -> (Vec<String>, usize) {
    let mut out = Changes::default();
    let names = |s: &Snapshot| -> BTreeSet<String> {
        s.listeners
            .iter()
            .map(|l| format!("{} {}", l.name, l.address))
            .collect()
    };
    out.diff("listener", &names(old), &names(new));
    out.diff("host", &hosts(old), &hosts(new));
    let (old_routes, new_routes) = (routes(old), routes(new));
    let old_names: BTreeSet<&str> = old_routes.keys().copied().collect();
    let new_names: BTreeSet<&str> = new_routes.keys().copied().collect();
    out.diff("route", &old_names, &new_names);
    for (name, action) in &new_routes {
        if old_routes.get(name).is_some_and(|a| a != action) {
            out.add(|| format!("~ route {name}"));
        }
    }
    let (old_keys, new_keys): (BTreeSet<&ClusterKey>, BTreeSet<&ClusterKey>) =
        (old.clusters.keys().collect(), new.clusters.keys().collect());
    out.diff("cluster", &old_keys, &new_keys);
    for (key, cluster) in &new.clusters {
        if old.clusters.get(key).is_some_and(|c| c != cluster) {
            out.add(|| format!("~ cluster {key}"));
        }
    }
    (out.lines, out.more)
}

/// Change lines, at most [`MAX_CHANGES`] of them, and a count of the rest.
#[derive(Default)]
struct Changes {
    lines: Vec<String>,
    more: usize,
}

impl Changes {
    fn add(&mut self, line: impl FnOnce() -> String) {
        if self.lines.len() < MAX_CHANGES {
            self.lines.push(line());
        } else {
            self.more += 1;
        }
    }

    fn diff<T: Ord + std::fmt::Display>(
        &mut self,
        what: &str,
        old: &BTreeSet<T>,
        new: &BTreeSet<T>,
    ) {
        for x in new.difference(old) {
            self.add(|| format!("+ {what} {x}"));
        }
        for x in old.difference(new) {
            self.add(|| format!("- {what} {x}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{RouteTable, VirtualHost};

    fn snapshot(hosts: &[(&str, &str)]) -> Snapshot {
        let mut s = Snapshot::default();
        let mut table = RouteTable::default();
        for (host, service) in hosts {
            let key = ClusterKey::new("default", service, 80);
            let route = crate::snapshot::Route {
                id: crate::snapshot::RouteId::default(),
                name: format!("default/web/{host}"),
                matches: crate::snapshot::RouteMatch::path(PathMatch::Prefix("/".into())),
                filters: Vec::new(),
                action: RouteAction::forward(key),
                metrics_per_route: false,
            };
            table.virtual_hosts.exact.insert(
                (*host).to_owned(),
                VirtualHost {
                    host: (*host).to_owned(),
                    routes: vec![route],
                },
            );
        }
        s.route_tables.insert("http".into(), table);
        s
    }

    #[test]
    fn a_publish_lists_hosts_and_routes_added_removed_and_changed() {
        let mut h = History::default();
        let a = snapshot(&[("a.example", "svc-a")]);
        let b = snapshot(&[("a.example", "svc-b"), ("b.example", "svc-b")]);
        h.snapshot(1, &Snapshot::default(), &a);
        h.snapshot(2, &a, &b);
        let view = h.view();
        assert_eq!(view.publishes[0].generation, 2, "newest first");
        let changes = &view.publishes[0].changes;
        assert!(
            changes.contains(&"+ host b.example".to_owned()),
            "{changes:?}"
        );
        assert!(
            changes.contains(&"+ route default/web/b.example".to_owned()),
            "{changes:?}"
        );
        assert!(
            changes.contains(&"~ route default/web/a.example".to_owned()),
            "{changes:?}"
        );
        assert_eq!(view.publishes[0].counts.routes, 2);
        assert!(!view.diagnostics_reported);
    }

    #[test]
    fn a_large_publish_lists_the_first_changes_and_counts_the_rest() {
        let mut h = History::default();
        let hosts: Vec<(String, &str)> =
            (0..20).map(|i| (format!("h{i}.example"), "svc")).collect();
        let hosts: Vec<(&str, &str)> = hosts.iter().map(|(h, s)| (h.as_str(), *s)).collect();
        h.snapshot(1, &Snapshot::default(), &snapshot(&hosts));
        let record = &h.view().publishes[0];
        // 20 hosts and 20 routes added: 40 changes, 12 of them listed.
        assert_eq!(record.changes.len(), MAX_CHANGES);
        assert_eq!(record.more_changes, 40 - MAX_CHANGES);
        assert!(
            record.changes[0].starts_with("+ host "),
            "{:?}",
            record.changes
        );
    }

    #[test]
    fn the_ring_keeps_the_last_publishes_and_diagnostics_count_on_the_latest_snapshot() {
        let mut h = History::default();
        let s = Snapshot::default();
        for g in 1..=(CAPACITY as u64 + 5) {
            h.snapshot(g, &s, &s);
        }
        h.endpoints(
            CAPACITY as u64 + 5,
            &s,
            &ClusterKey::new("default", "a", 80),
            Some(1),
            Some(2),
        );
        h.diagnostics(vec![
            Diagnostic {
                object: "Ingress default/x".into(),
                severity: "Warning",
                type_: "Accepted".into(),
                reason: "R".into(),
                message: "m".into(),
            },
            Diagnostic {
                object: "Ingress default/y".into(),
                severity: "Error",
                type_: "ResolvedRefs".into(),
                reason: "ServiceNotFound".into(),
                message: "m".into(),
            },
        ]);
        let view = h.view();
        assert_eq!(view.publishes.len(), CAPACITY);
        assert_eq!(view.publishes[0].kind, "endpoints");
        assert_eq!(
            view.publishes[0].changes,
            ["~ endpoints of default/a:80: 1 → 2"]
        );
        assert_eq!(
            view.publishes[1].diagnostics,
            Some(DiagnosticCounts {
                errors: 1,
                warnings: 1
            })
        );
        // 37 snapshots and 1 endpoint publish: the oldest 6 are gone.
        assert_eq!(view.publishes.last().map(|r| r.generation), Some(7));
        assert_eq!(view.diagnostics[0].severity, "Error", "errors first");
        assert_eq!(view.diagnostics_total, 2);
    }
}
