//! `weir validate --manifests DIR`: load a manifests directory, compile it and print what
//! weir would serve (listeners, virtual hosts with routes in precedence order, the default
//! backend, clusters with their endpoints, certificate metadata) and every diagnostic.
//!
//! Exit status, like `nginx -t`: 0 when nothing was rejected, 1 when a document or a piece
//! of an object was, 2 when the directory cannot be read, 64 for a command-line error
//! ([`EXIT_STATUS_HELP`]).
//!
//! The printed [`Report`] is also what the golden tests compare against.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::api::{reasons, values};
use crate::compile::{self, CompileConfig, Compiled, DefaultBackend, Severity};
use crate::endpoints;
use crate::snapshot::{Cluster, Listener, Route, RouteTable, VirtualHost};
use crate::store::files::{self, LoadDiagnostic};
use crate::store::{ObjectKey, Objects};

/// Exit status: nothing rejected.
pub const EXIT_OK: i32 = 0;
/// Exit status: something was rejected.
pub const EXIT_REJECTED: i32 = 1;
/// Exit status: the manifests could not be read.
pub const EXIT_UNREADABLE: i32 = 2;
/// Exit status of every weir command when its command line is wrong (an unknown flag, a
/// value that does not parse): 64, `EX_USAGE` of sysexits.h, apart from 2 (unreadable input).
pub const EXIT_USAGE: i32 = 64;

/// The exit status table `weir validate --help` prints.
pub const EXIT_STATUS_HELP: &str = "Exit status:\n  \
    0   nothing was rejected\n  \
    1   a manifest document, an object or a piece of one was rejected (see the diagnostics)\n  \
    2   the manifests cannot be read (no such directory, unreadable file)\n  \
    64  the command line is wrong (unknown flag, a value that does not parse)";

/// Arguments of `weir validate`.
#[derive(Debug, Clone, clap::Args)]
pub struct ValidateArgs {
    /// Directory (read recursively) or file of Kubernetes manifests.
    #[arg(long, value_name = "DIR")]
    pub manifests: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Yaml)]
    pub output: OutputFormat,
    /// How the manifests are compiled.
    #[command(flatten)]
    pub compile: CompileArgs,
}

/// The compile settings `weir run` takes, for the commands that compile a manifests
/// directory offline (`validate`, `explain`).
#[derive(Debug, Clone, clap::Args)]
pub struct CompileArgs {
    /// IngressClass `spec.controller` value that marks weir's classes.
    #[arg(long, default_value = values::DEFAULT_CONTROLLER_NAME)]
    pub controller_name: String,
    /// Controller-wide default backend, `NAMESPACE/SERVICE:PORT` (port number or name).
    #[arg(long, value_name = "NS/SVC:PORT", value_parser = parse_default_backend)]
    pub default_backend: Option<DefaultBackend>,
    /// Also serve the Ingresses of this IngressClass name, whatever its controller (e.g.
    /// `nginx`, to take over from ingress-nginx). Repeatable.
    #[arg(long = "ingress-class", value_name = "NAME")]
    pub ingress_classes: Vec<String>,
    /// Prefix of the ingress-nginx annotations weir serves (ingress-nginx's own
    /// `--annotations-prefix`).
    #[arg(long, default_value = crate::compile::nginx::DEFAULT_PREFIX)]
    pub annotations_prefix: String,
    /// The Gateway API settings, as `weir run` takes them.
    #[command(flatten)]
    pub gateway: crate::compile::gateway::GatewayArgs,
}

impl Default for CompileArgs {
    fn default() -> Self {
        CompileArgs {
            controller_name: values::DEFAULT_CONTROLLER_NAME.to_owned(),
            default_backend: None,
            ingress_classes: Vec::new(),
            annotations_prefix: crate::compile::nginx::DEFAULT_PREFIX.to_owned(),
            gateway: Default::default(),
        }
    }
}

/// Output format of `weir validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// YAML.
    Yaml,
    /// Pretty-printed JSON.
    Json,
}

/// Parse `NAMESPACE/SERVICE:PORT`.
pub fn parse_default_backend(value: &str) -> Result<DefaultBackend, String> {
    let invalid = || format!("{value:?} is not NAMESPACE/SERVICE:PORT");
    let (namespace, rest) = value.split_once('/').ok_or_else(invalid)?;
    let (service, port) = rest.rsplit_once(':').ok_or_else(invalid)?;
    if [namespace, service, port].iter().any(|s| s.is_empty()) {
        return Err(invalid());
    }
    Ok(DefaultBackend {
        service: ObjectKey::new(namespace, service),
        port: port.to_owned(),
    })
}

/// What `weir validate` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Listeners, with certificate metadata (never key material) for HTTPS ones.
    pub listeners: Vec<Listener>,
    /// Route tables by name.
    pub route_tables: Vec<RouteTableReport>,
    /// Clusters with their current endpoints.
    pub clusters: Vec<ClusterReport>,
    /// Ingresses of weir's class.
    pub owned_ingresses: Vec<String>,
    /// Every diagnostic: skipped manifest documents, then object conditions.
    pub diagnostics: Vec<Diagnostic>,
    /// The Gateway API status weir would write (when a GatewayClass is weir's).
    #[serde(skip_serializing_if = "crate::compile::gateway::GatewayApiReport::is_empty")]
    pub gateway_api: crate::compile::gateway::GatewayApiReport,
}

/// One route table.
#[derive(Debug, Clone, Serialize)]
pub struct RouteTableReport {
    /// Its name (listeners refer to it).
    pub name: String,
    /// Virtual hosts in lookup order (exact, wildcard, no host), routes in precedence order.
    pub virtual_hosts: Vec<VirtualHostReport>,
    /// What serves requests no route matches (`null`: 404).
    pub default_route: Option<Route>,
}

impl RouteTableReport {
    fn new(name: &str, table: &RouteTable) -> Self {
        let vhost = |match_, vhost: &VirtualHost| VirtualHostReport {
            match_,
            host: vhost.host.clone(),
            routes: vhost.routes.clone(),
        };
        let hosts = &table.virtual_hosts;
        RouteTableReport {
            name: name.to_owned(),
            virtual_hosts: hosts
                .exact
                .values()
                .map(|v| vhost("exact", v))
                .chain(hosts.wildcard.values().map(|v| vhost("wildcard", v)))
                .chain(hosts.any.iter().map(|v| vhost("any", v)))
                .collect(),
            default_route: table.default_route.clone(),
        }
    }
}

/// One virtual host.
#[derive(Debug, Clone, Serialize)]
pub struct VirtualHostReport {
    /// `exact`, `wildcard` or `any`.
    #[serde(rename = "match")]
    pub match_: &'static str,
    /// The host.
    pub host: String,
    /// Routes, best first.
    pub routes: Vec<Route>,
}

/// One cluster and its endpoints.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterReport {
    /// The cluster.
    #[serde(flatten)]
    pub cluster: Cluster,
    /// Usable endpoints (ready, or serving-terminating when none is ready).
    pub endpoints: Vec<SocketAddr>,
}

/// One diagnostic.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnostic {
    /// `Kind namespace/name`, or `file:line (document N)` for a manifest document.
    pub object: String,
    /// `Error` (rejected) or `Warning`.
    pub severity: Severity,
    /// Condition type (absent for manifest documents).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<&'static str>,
    /// Reason constant.
    pub reason: &'static str,
    /// Explanation.
    pub message: String,
    /// The object's `metadata.generation` the diagnostic is about, when it has one. (The
    /// condition's `status` is not printed: for every diagnostic it follows from
    /// `severity` — `Error` is `False`, `Warning` is `True`.)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl Report {
    /// Build the report; load diagnostics' paths are shown relative to `base`.
    pub fn new(
        base: &Path,
        objects: &Objects,
        load_diagnostics: &[LoadDiagnostic],
        compiled: &Compiled,
    ) -> Report {
        let snapshot = &compiled.snapshot;
        let endpoint_sets = endpoints::build(objects, &snapshot.clusters, None);
        let route_tables = snapshot
            .route_tables
            .iter()
            .map(|(name, table)| RouteTableReport::new(name, table))
            .collect();
        let clusters = snapshot
            .clusters
            .values()
            .map(|cluster| ClusterReport {
                cluster: Cluster::clone(cluster),
                endpoints: endpoint_sets
                    .get(&cluster.key)
                    .map(|set| set.endpoints.iter().map(|e| e.address).collect())
                    .unwrap_or_default(),
            })
            .collect();
        let mut diagnostics: Vec<Diagnostic> = load_diagnostics
            .iter()
            .map(|d| {
                let file = d.file.strip_prefix(base).unwrap_or(&d.file);
                let line = d.line.map(|l| format!(":{l}")).unwrap_or_default();
                Diagnostic {
                    object: format!("{}{line} (document {})", file.display(), d.document_index),
                    severity: Severity::Error,
                    type_: None,
                    reason: reasons::INVALID_MANIFEST,
                    message: d.reason.clone(),
                    observed_generation: None,
                }
            })
            .collect();
        for (object, conditions) in &compiled.status.conditions {
            for c in conditions {
                diagnostics.push(Diagnostic {
                    object: format!("{} {}", object.kind, object.key),
                    severity: c.severity,
                    type_: Some(c.type_),
                    reason: c.reason,
                    message: c.message.clone(),
                    observed_generation: c.observed_generation,
                });
            }
        }
        Report {
            listeners: snapshot.listeners.clone(),
            route_tables,
            clusters,
            owned_ingresses: compiled
                .status
                .owned_ingresses
                .iter()
                .map(ToString::to_string)
                .collect(),
            diagnostics,
            gateway_api: compiled.status.gateway_api.clone(),
        }
    }

    /// Whether anything was rejected (exit status 1).
    pub fn has_rejections(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }
}

/// The compile configuration of `weir validate` and `weir explain`.
pub fn compile_config(args: &CompileArgs, now_unix: i64) -> CompileConfig {
    CompileConfig {
        controller_name: args.controller_name.clone(),
        http_addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
        https_addr: Some(SocketAddr::from(([0, 0, 0, 0], 8443))),
        default_backend: args.default_backend.clone(),
        now_unix,
        ingress_classes: args.ingress_classes.clone(),
        annotations_prefix: args.annotations_prefix.clone(),
        gateway: args.gateway.config(),
    }
}

/// The wall clock in Unix seconds, for [`compile_config`] (certificate expiry).
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Run `weir validate`: print the report to stdout, errors to stderr; return the exit status.
pub fn run(args: &ValidateArgs) -> i32 {
    let (objects, load_diagnostics) = match files::load_dir(&args.manifests) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("weir validate: {error}");
            return EXIT_UNREADABLE;
        }
    };
    let now_unix = now_unix();
    let compiled = compile::compile(&objects, &compile_config(&args.compile, now_unix));
    let report = Report::new(&args.manifests, &objects, &load_diagnostics, &compiled);
    let printed = match args.output {
        OutputFormat::Yaml => serde_yaml::to_string(&report).map_err(|e| e.to_string()),
        OutputFormat::Json => serde_json::to_string_pretty(&report)
            .map(|s| s + "\n")
            .map_err(|e| e.to_string()),
    };
    match printed {
        Ok(text) => print!("{text}"),
        Err(error) => {
            eprintln!("weir validate: cannot serialize the report: {error}");
            return EXIT_REJECTED;
        }
    }
    let rejected = report
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    if rejected > 0 {
        eprintln!("weir validate: {rejected} rejection(s); see diagnostics");
        EXIT_REJECTED
    } else {
        eprintln!("weir validate: configuration is valid");
        EXIT_OK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_backend_flag_parses() {
        let b = parse_default_backend("ns/svc:http").expect("valid");
        assert_eq!(b.service, ObjectKey::new("ns", "svc"));
        assert_eq!(b.port, "http");
        for bad in ["svc:80", "ns/svc", "/svc:80", "ns/:80", "ns/svc:"] {
            assert!(parse_default_backend(bad).is_err(), "{bad}");
        }
    }
}
