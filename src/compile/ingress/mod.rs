//! The Ingress front end: weir's Ingresses (and `--default-backend`) → the [`Ir`].
//!
//! - **Classes** (`classes.rs`) decide which Ingresses are weir's; their precedence (oldest
//!   `creationTimestamp`, then namespace/name) is their [`SourceId`] order, and a route's
//!   [`SourceOrder`] is (Ingress, rule index, path index).
//! - **Listeners**: `http` and, when configured, `https` (from [`CompileConfig`]), both serving
//!   the one route table [`INGRESS_ROUTE_TABLE`]; `https` offers the certificate set of every
//!   `spec.tls` entry (a Secret in the Ingress's namespace; an entry without `secretName`
//!   leaves its hosts on the default certificate).
//! - **Hosts** are lower-cased. `*.example.com` is a wildcard matching one extra label; any
//!   other `*`, an IP address, a port or a character outside `[a-z0-9.-]` is rejected
//!   (`InvalidHost`). A rule without host goes to the `any` virtual host.
//! - **Paths** must be absolute and free of `//`, `/./`, `/../`, `%2f`, and may not end in `/.`
//!   or `/..` (the API server's own checks; files bypass it). `Prefix` paths are stored
//!   without trailing slash. **`ImplementationSpecific` is treated as `Prefix`** (as Contour
//!   and ingress-nginx without regex do); an empty `ImplementationSpecific` path means `/`.
//!   With ingress-nginx's `use-regex` or `rewrite-target` every path of the Ingress is a
//!   regular expression instead (`nginx::paths`), a path that is not one rejected alone;
//!   `rewrite-target` adds a `URLRewrite` per path, last in its chain.
//! - **ingress-nginx route settings** (`nginx::paths::RouteSettings`): `server-alias` serves
//!   the rules under more hosts, `app-root` adds an `Exact /` redirect route per host,
//!   `from-to-www-redirect` adds a redirect route under the other host once every Ingress is
//!   in (only where no Ingress serves that host), `force-ssl-redirect` puts the HTTPS
//!   redirect on every host of the Ingress, and a fixed redirect (`permanent-redirect`)
//!   answers before any HTTPS redirect.
//! - **Backends** reference a Service port (by number or name) in the Ingress's namespace,
//!   weight 1; an unresolvable one answers **503**. A `resource` backend, or one naming no
//!   Service with a port, cannot be served: the path is rejected (`ResourceBackendNotSupported`,
//!   `InvalidBackend`).
//! - **HTTPS redirect by default**: when weir has an HTTPS listener, a host listed in the
//!   `spec.tls` of any of weir's Ingresses (TLS is a property of the host: its certificate is
//!   picked by SNI) answers plain-HTTP requests with **308** to `https://` on the well-known
//!   port, as ingress-nginx and Contour do; ACME HTTP-01 paths
//!   (`/.well-known/acme-challenge/`) are never redirected. An Ingress annotated
//!   `weir.dev/ssl-redirect: "false"` (or ingress-nginx's `ssl-redirect: "false"`) keeps its
//!   own routes of those hosts on plain HTTP. Both
//!   listeners serve one route table, so the redirect is a route-level condition: each such
//!   route's chain starts with a `RequestRedirect` marked `https_upgrade`, which answers only
//!   cleartext requests outside the ACME paths (see [`crate::snapshot::RequestRedirect`]).
//!   A second table for the HTTP listener would duplicate every route, and the conflicts
//!   pass and its conditions with it, to express one condition. Default backends are not
//!   redirected (they serve no host in particular).
//! - **Default backend**: every `spec.defaultBackend` is a candidate in precedence order; the
//!   controller-wide `--default-backend` is the fallback, its conditions reported on its
//!   Service.
//! - **Canaries** (ingress-nginx `canary: "true"`) are not served on their own: once every
//!   other Ingress's routes exist, their paths join the main routes (`nginx/canary.rs`).
//!
//! Conflicts between the Ingresses' routes are settled by the shared passes.

use std::sync::Arc;

use crate::api::ingress::{IngressBackend, IngressSpec};

use super::filters::{self, EntryContext, FilterSet};
use super::ir::{
    BackendRef, CertificateRef, FieldPath, HostMatch, IrAction, IrForward, IrListener, IrRoute,
    IrRouteTable, PortRef, Rejection, Source, SourceId, SourceOrder, Unresolved, Variant,
};
use super::status::Status;
use super::{CompileConfig, INGRESS_ROUTE_TABLE, Ir};
use crate::api::{annotations, condition_types, reasons};
use crate::snapshot::router::DEFAULT_BACKEND_ROUTE;
use crate::snapshot::{Filter, ListenerProtocol, PathMatch, Redirect, RequestRedirect, RouteMatch};
use crate::store::Objects;

mod classes;
pub mod nginx;

/// Kind of the objects this front end reads.
const INGRESS: &str = "Ingress";

/// Name of the certificate set of the HTTPS listener.
const INGRESS_CERTIFICATES: &str = "ingress";

/// What requests to an unresolvable Ingress backend get.
const UNAVAILABLE: Unresolved = Unresolved {
    status: 503,
    body: "service unavailable\n",
};

/// The IR of weir's Ingresses; records them in `status.owned_ingresses` and reports what
/// cannot enter the IR (bad hosts, paths, path types).
pub(super) fn front_end<'a>(
    objects: &'a Objects,
    config: &'a CompileConfig,
    filter_set: &mut FilterSet,
    status: &mut Status,
) -> Ir<'a> {
    let owned = classes::owned_ingresses(objects, config, status);
    // Without an HTTPS listener there is nowhere to redirect to.
    let tls_hosts = match config.https_addr {
        Some(_) => TlsHosts::of(owned.iter().filter_map(|o| o.ingress.spec.as_ref())),
        None => TlsHosts::default(),
    };
    let mut ir = Ir::default();
    let mut table = IrRouteTable::default();
    let mut certificates = Vec::new();
    let mut canaries = Vec::new();
    // `from-to-www-redirect` routes, added once every Ingress is in: like ingress-nginx,
    // only under hosts that no Ingress serves.
    let mut www: Vec<(HostMatch, IrRoute<'a>)> = Vec::new();
    for owned in &owned {
        let mut ingress = Source {
            kind: INGRESS,
            key: owned.key,
            generation: owned.ingress.metadata.generation,
            metrics_per_route: false,
        };
        ingress.read_metrics_annotation(&owned.ingress.metadata, status);
        let source = ir.add_source(ingress);
        let ctx = nginx::Context {
            annotations: nginx::Annotations::of(owned.ingress, &config.annotations_prefix),
            ingress: owned.ingress,
            key: owned.key,
            objects,
        };
        let translation = nginx::translate(&ctx);
        let mut filters = nginx::compile(&translation, &ctx, &ingress, status);
        let variant = translation.variant();
        let at = (ingress, source);
        if nginx::canary::defer(
            &translation,
            owned.ingress,
            at,
            variant.as_ref(),
            &mut canaries,
        ) {
            continue;
        }
        let Some(spec) = owned.ingress.spec.as_ref() else {
            continue;
        };
        if let Some(names) = annotation(owned.ingress, annotations::FILTERS) {
            filters.extend(filter_set.chain(&ingress, &owned.key.namespace, names, status));
        }
        for (index, entry) in spec.tls.iter().flatten().enumerate() {
            let Some(secret) = entry.secret_name.as_deref().filter(|s| !s.is_empty()) else {
                continue;
            };
            certificates.push(CertificateRef {
                source,
                field: FieldPath::indexed("spec.tls[{}]", [index, 0]),
                namespace: &owned.key.namespace,
                name: secret,
                hosts: entry.hosts.as_deref().unwrap_or_default(),
            });
        }
        let redirect = (ssl_redirect(owned.ingress, &ingress, status)
            && translation.routes.ssl_redirect != Some(false))
        .then_some(&tls_hosts);
        let pieces = Pieces {
            filters: &filters,
            variant: variant.as_ref(),
            redirect,
            https: config.https_addr.is_some(),
            settings: &translation.routes,
            entries: EntryContext {
                key: owned.key,
                objects,
            },
        };
        rules(
            &ingress, source, spec, &pieces, &mut table, &mut www, status,
        );
        if let Some(backend) = spec.default_backend.as_ref() {
            table.default_route.candidates.push(IrRoute {
                name: DEFAULT_BACKEND_ROUTE.to_owned(),
                matches: RouteMatch::path(PathMatch::Prefix("/".into())),
                filters,
                action: action(
                    &owned.key.namespace,
                    backend,
                    variant.as_ref(),
                    FieldPath::new("spec.defaultBackend"),
                ),
                field: FieldPath::new("spec.defaultBackend"),
                order: SourceOrder {
                    source,
                    rule: 0,
                    index: 0,
                },
            });
        }
    }
    // After every main route exists: canaries join them.
    nginx::canary::join(&canaries, &mut table, status);
    for (host, route) in www {
        let routes = table.hosts.entry(host).or_default();
        if routes.is_empty() {
            routes.push(route);
        }
    }
    if let Some(flag) = &config.default_backend {
        let source = ir.add_source(Source {
            kind: "Service",
            key: &flag.service,
            generation: objects
                .services
                .get(&flag.service)
                .and_then(|s| s.metadata.generation),
            metrics_per_route: false,
        });
        let port = match flag.port.parse::<i32>() {
            Ok(n) => PortRef::Number(n),
            Err(_) => PortRef::Name(&flag.port),
        };
        table.default_route.fallback = Some(IrRoute {
            name: DEFAULT_BACKEND_ROUTE.to_owned(),
            matches: RouteMatch::path(PathMatch::Prefix("/".into())),
            filters: Vec::new(),
            action: IrAction::Forward(IrForward {
                backends: vec![BackendRef::new(
                    &flag.service.namespace,
                    &flag.service.name,
                    port,
                )],
                unresolved: UNAVAILABLE,
                timeouts: Default::default(),
            }),
            field: FieldPath::new("controller default backend"),
            order: SourceOrder {
                source,
                rule: 0,
                index: 0,
            },
        });
    }

    ir.listeners.push(IrListener {
        name: "http".to_owned(),
        address: config.http_addr,
        protocol: ListenerProtocol::Http,
        route_table: INGRESS_ROUTE_TABLE.to_owned(),
        certificates: None,
    });
    if let Some(address) = config.https_addr {
        ir.listeners.push(IrListener {
            name: "https".to_owned(),
            address,
            protocol: ListenerProtocol::Https,
            route_table: INGRESS_ROUTE_TABLE.to_owned(),
            certificates: Some(INGRESS_CERTIFICATES.to_owned()),
        });
    }
    // Checked even without an HTTPS listener: a broken Secret is worth a condition anyway.
    ir.certificate_sets
        .insert(INGRESS_CERTIFICATES.to_owned(), certificates);
    ir.route_tables
        .insert(INGRESS_ROUTE_TABLE.to_owned(), table);
    ir
}

/// The value of an annotation of `ingress`.
fn annotation<'a>(ingress: &'a crate::api::ingress::Ingress, key: &str) -> Option<&'a str> {
    ingress
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// Hosts with TLS, lower-cased: exact ones, and wildcard suffixes (`*.example.com` →
/// `.example.com`).
#[derive(Debug, Default)]
struct TlsHosts {
    exact: std::collections::BTreeSet<String>,
    wildcard: std::collections::BTreeSet<String>,
}

impl TlsHosts {
    fn of<'s>(specs: impl Iterator<Item = &'s IngressSpec>) -> TlsHosts {
        let mut hosts = TlsHosts::default();
        let listed = specs
            .flat_map(|spec| spec.tls.iter().flatten())
            .flat_map(|entry| entry.hosts.iter().flatten());
        for host in listed {
            let host = host.to_ascii_lowercase();
            match host.strip_prefix('*') {
                Some(suffix) if suffix.starts_with('.') => {
                    hosts.wildcard.insert(suffix.to_owned());
                }
                _ => {
                    hosts.exact.insert(host);
                }
            }
        }
        hosts
    }

    /// Whether a rule's host is served with TLS: listed itself, or (an exact host) covered
    /// by a listed wildcard, which matches one extra label as certificates do.
    fn covers(&self, host: &HostMatch) -> bool {
        match host {
            HostMatch::Exact(h) => {
                self.exact.contains(h)
                    || h.split_once('.')
                        .is_some_and(|(_, rest)| self.wildcard.contains(&format!(".{rest}")))
            }
            HostMatch::Wildcard(suffix) => self.wildcard.contains(suffix),
            HostMatch::Any => false,
        }
    }
}

/// Whether the Ingress's routes of TLS hosts redirect plain HTTP to HTTPS: yes unless
/// `weir.dev/ssl-redirect` says `"false"`; a value that is neither `"true"` nor `"false"`
/// keeps the default and is reported.
fn ssl_redirect(
    ingress: &crate::api::ingress::Ingress,
    source: &Source<'_>,
    status: &mut Status,
) -> bool {
    match annotation(ingress, annotations::SSL_REDIRECT).map(str::trim) {
        None | Some("true") => true,
        Some("false") => false,
        Some(other) => {
            status.warning(
                source,
                condition_types::ACCEPTED,
                reasons::INVALID_ANNOTATION,
                format!(
                    "annotation {}: {other:?} is not \"true\" or \"false\"; plain HTTP \
                     requests to its TLS hosts are redirected (the default)",
                    annotations::SSL_REDIRECT
                ),
            );
            true
        }
    }
}

/// The filter that sends plain-HTTP requests of a TLS host to HTTPS (308, the method and
/// body kept; the well-known port, since weir's HTTPS port is usually behind a Service
/// that maps 443 onto it).
fn https_redirect() -> Filter {
    Filter::RequestRedirect(RequestRedirect {
        redirect: Redirect {
            scheme: Some("https".to_owned()),
            hostname: None,
            port: None,
            path: None,
            query: None,
            status: 308,
        },
        https_upgrade: true,
    })
}

/// What every route of one Ingress gets besides its own match and backend.
struct Pieces<'p> {
    /// The filter chain (annotations, then `weir.dev/filters`).
    filters: &'p [Filter],
    /// The cluster variant of its backends (ingress-nginx cluster annotations).
    variant: Option<&'p Arc<Variant>>,
    /// The TLS hosts whose routes redirect plain HTTP (`None`: the Ingress turned the
    /// redirect off).
    redirect: Option<&'p TlsHosts>,
    /// Whether weir has an HTTPS listener (`force-ssl-redirect` needs one to send to).
    https: bool,
    /// Route-level settings of its ingress-nginx annotations.
    settings: &'p nginx::paths::RouteSettings,
    /// What the per-route entries of those settings compile with.
    entries: EntryContext<'p>,
}

/// The routes of one Ingress's rules, into the table by host (and under each
/// `server-alias`); `from-to-www-redirect` routes go to `www` for [`front_end`] to add.
fn rules<'a>(
    ingress: &Source<'a>,
    source: SourceId,
    spec: &'a IngressSpec,
    pieces: &Pieces<'_>,
    table: &mut IrRouteTable<'a>,
    www: &mut Vec<(HostMatch, IrRoute<'a>)>,
    status: &mut Status,
) {
    let settings = pieces.settings;
    // An Ingress failing closed answers 500 on every route, the extra ones too.
    let fails_closed = matches!(pieces.filters.first(), Some(Filter::Deny(_)));
    let aliases: Vec<HostMatch> = settings
        .aliases
        .iter()
        .filter_map(|a| parse_host(a).ok())
        .collect();
    let app_root = settings
        .app_root_entry()
        .and_then(|e| compile_extra(&e, pieces, ingress, "app-root", status));
    for (rule_index, rule) in spec.rules.iter().flatten().enumerate() {
        let host = match rule.host.as_deref() {
            None | Some("") => HostMatch::Any,
            Some(host) => match parse_host(host) {
                Ok(key) => key,
                Err(why) => {
                    let message =
                        format!("spec.rules[{rule_index}].host {host:?} {why}; rule skipped");
                    status.error(
                        ingress,
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
        // Paths are read once (one condition each), then served under every host.
        let mut paths = Vec::new();
        for (path_index, path) in http.paths.iter().enumerate() {
            let field =
                FieldPath::indexed("spec.rules[{}].http.paths[{}]", [rule_index, path_index]);
            let text = path.path.as_deref().unwrap_or("");
            let parsed = match settings.regex_path(text) {
                Some(regex) => regex.map_err(|why| (reasons::INVALID_PATH, why)),
                None => parse_path(text, &path.path_type),
            };
            let path_match = match parsed {
                Ok(path_match) => path_match,
                Err((reason, why)) => {
                    let message = format!("{field}: {why}; path skipped");
                    status.error(ingress, condition_types::ACCEPTED, reason, message);
                    continue;
                }
            };
            // An empty ImplementationSpecific path is `/`, for the rewrite as for the match.
            let rewrite = match settings.rewrite_entry(if text.is_empty() { "/" } else { text }) {
                None => None,
                Some(entry) => {
                    match compile_extra(&entry, pieces, ingress, "rewrite-target", status) {
                        Some(filter) => Some(filter),
                        None => continue,
                    }
                }
            };
            paths.push((path_index, path, field, path_match, rewrite));
        }
        let hosts = std::iter::once(host.clone()).chain(match host {
            HostMatch::Any => Vec::new(),
            _ => aliases.clone(),
        });
        for host in hosts {
            // The redirect runs first: nothing else (credentials, CORS) happens in cleartext.
            // A fixed redirect (`permanent-redirect`) answers before it, as nginx's `return`.
            let upgrade = !settings.redirects_all
                && (pieces.redirect.is_some_and(|tls| tls.covers(&host))
                    || (settings.force_ssl_redirect && pieces.https));
            let filters: Vec<Filter> = if upgrade {
                std::iter::once(https_redirect())
                    .chain(pieces.filters.iter().cloned())
                    .collect()
            } else {
                pieces.filters.to_vec()
            };
            let routes = table.hosts.entry(host.clone()).or_default();
            let name = |path_index: usize| {
                format!(
                    "{}/{}/{rule_index}/{path_index}",
                    ingress.key.namespace, ingress.key.name
                )
            };
            let order = |index| SourceOrder {
                source,
                rule: rule_index,
                index,
            };
            // `app-root` answers `/` before anything else of the location (nginx's `if ($uri
            // = /) { return 302 ...; }`), where a path of this rule serves `/`.
            if let (Some(redirect), Some((index, path, field, ..))) =
                (app_root.as_ref(), paths.iter().find(|p| p.3.matches("/")))
            {
                routes.push(IrRoute {
                    name: format!("{}/app-root", name(*index)),
                    matches: RouteMatch::path(PathMatch::Exact("/".into())),
                    filters: if fails_closed {
                        pieces.filters.to_vec()
                    } else {
                        vec![redirect.clone()]
                    },
                    action: action(
                        &ingress.key.namespace,
                        &path.backend,
                        pieces.variant,
                        *field,
                    ),
                    field: *field,
                    order: order(*index),
                });
            }
            for (path_index, path, field, path_match, rewrite) in &paths {
                // ingress-nginx rewrites when proxying: every other filter sees the
                // client's path.
                let mut filters = filters.clone();
                filters.extend(rewrite.iter().cloned());
                routes.push(IrRoute {
                    name: name(*path_index),
                    matches: RouteMatch::path(path_match.clone()),
                    filters,
                    action: action(
                        &ingress.key.namespace,
                        &path.backend,
                        pieces.variant,
                        *field,
                    ),
                    field: *field,
                    order: order(*path_index),
                });
            }
            if let (true, HostMatch::Exact(h), Some((index, path, field, ..))) =
                (settings.from_to_www, &host, paths.first())
            {
                let (from, to) = nginx::paths::www_pair(h);
                let entry = nginx::paths::RouteSettings::www_entry(&to);
                if let (Ok(from), Some(redirect)) = (
                    parse_host(&from),
                    compile_extra(&entry, pieces, ingress, "from-to-www-redirect", status),
                ) {
                    www.push((
                        from,
                        IrRoute {
                            name: format!("{}/www", name(*index)),
                            matches: RouteMatch::path(PathMatch::Prefix("/".into())),
                            filters: if fails_closed {
                                pieces.filters.to_vec()
                            } else {
                                vec![redirect]
                            },
                            action: action(
                                &ingress.key.namespace,
                                &path.backend,
                                pieces.variant,
                                *field,
                            ),
                            field: *field,
                            order: order(*index),
                        },
                    ));
                }
            }
        }
    }
}

/// Compile an entry the front end builds from the annotations (a rewrite, a redirect); one
/// that does not compile is reported and left out.
fn compile_extra(
    entry: &crate::api::httpfilter::FilterEntry,
    pieces: &Pieces<'_>,
    ingress: &Source<'_>,
    annotation: &str,
    status: &mut Status,
) -> Option<Filter> {
    match filters::compile_entry(entry, &pieces.entries) {
        Ok(filter) => Some(filter),
        Err(e) => {
            status.error(
                ingress,
                condition_types::ACCEPTED,
                reasons::INVALID_ANNOTATION,
                format!(
                    "annotation {annotation}: {} ({}); not served",
                    e.message, e.field
                ),
            );
            None
        }
    }
}

/// The action of an Ingress backend: a Service port in the Ingress's namespace, or a
/// rejection when the backend names none.
fn action<'a>(
    namespace: &'a str,
    backend: &'a IngressBackend,
    variant: Option<&Arc<Variant>>,
    field: FieldPath,
) -> IrAction<'a> {
    if backend.resource.is_some() {
        return IrAction::Reject(Rejection {
            type_: condition_types::ACCEPTED,
            reason: reasons::RESOURCE_BACKEND_NOT_SUPPORTED,
            message: format!(
                "{field}: resource backends are not supported (weir forwards to Services only); skipped"
            ),
        });
    }
    let service = backend.service.as_ref();
    let port =
        service
            .and_then(|s| s.port.as_ref())
            .and_then(|p| match (p.number, p.name.as_deref()) {
                (Some(n), _) => Some(PortRef::Number(n)),
                (None, Some(name)) if !name.is_empty() => Some(PortRef::Name(name)),
                _ => None,
            });
    let (Some(service), Some(port)) = (service, port) else {
        return IrAction::Reject(Rejection {
            type_: condition_types::ACCEPTED,
            reason: reasons::INVALID_BACKEND,
            message: format!(
                "{field}: the backend names no Service with a port number or name; skipped"
            ),
        });
    };
    let mut backend = BackendRef::new(namespace, &service.name, port);
    backend.variant = variant.cloned();
    IrAction::Forward(IrForward {
        backends: vec![backend],
        unresolved: UNAVAILABLE,
        timeouts: Default::default(),
    })
}

/// Validate and classify a rule host.
pub(super) fn parse_host(host: &str) -> Result<HostMatch, &'static str> {
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
    if !super::is_dns_name(name) {
        return Err(
            "is not a DNS name (or `*.` followed by one): labels of a-z, 0-9 and '-', no port",
        );
    }
    Ok(if wildcard {
        HostMatch::Wildcard(format!(".{name}"))
    } else {
        HostMatch::Exact(host)
    })
}

/// Validate a path and its type.
fn parse_path(path: &str, path_type: &str) -> Result<PathMatch, (&'static str, String)> {
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
        "Exact" => PathMatch::Exact(path.into()),
        _ => {
            let trimmed = path.trim_end_matches('/');
            PathMatch::Prefix(if trimmed.is_empty() {
                "/".into()
            } else {
                trimmed.into()
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
            Ok(HostMatch::Exact("a.example.com".into()))
        );
        assert_eq!(
            parse_host("*.example.com"),
            Ok(HostMatch::Wildcard(".example.com".into()))
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
    fn tls_hosts_cover_listed_hosts_and_one_label_below_a_wildcard() {
        let spec: IngressSpec = serde_json::from_value(serde_json::json!({
            "tls": [{"hosts": ["Secure.example.com", "*.wild.example.com"]}]
        }))
        .expect("spec");
        let tls = TlsHosts::of(std::iter::once(&spec));
        let exact = |h: &str| HostMatch::Exact(h.into());
        assert!(tls.covers(&exact("secure.example.com")));
        assert!(tls.covers(&exact("a.wild.example.com")));
        assert!(tls.covers(&HostMatch::Wildcard(".wild.example.com".into())));
        assert!(
            !tls.covers(&exact("a.b.wild.example.com")),
            "one label only"
        );
        assert!(!tls.covers(&exact("wild.example.com")));
        assert!(!tls.covers(&exact("other.example.com")));
        assert!(!tls.covers(&HostMatch::Any));
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
