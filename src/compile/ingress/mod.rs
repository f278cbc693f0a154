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
//! - **Backends** reference a Service port (by number or name) in the Ingress's namespace,
//!   weight 1; an unresolvable one answers **503**. A `resource` backend, or one naming no
//!   Service with a port, cannot be served: the path is rejected (`ResourceBackendNotSupported`,
//!   `InvalidBackend`).
//! - **Default backend**: every `spec.defaultBackend` is a candidate in precedence order; the
//!   controller-wide `--default-backend` is the fallback, its conditions reported on its
//!   Service.
//!
//! Conflicts between the Ingresses' routes are settled by the shared passes.

use k8s_openapi::api::networking::v1::{IngressBackend, IngressSpec};

use super::filters::FilterSet;
use super::ir::{
    BackendRef, CertificateRef, FieldPath, HostMatch, IrAction, IrForward, IrListener, IrRoute,
    IrRouteTable, PortRef, Rejection, Source, SourceId, SourceOrder, Unresolved,
};
use super::status::Status;
use super::{CompileConfig, INGRESS_ROUTE_TABLE, Ir};
use crate::api::{annotations, condition_types, reasons};
use crate::snapshot::router::DEFAULT_BACKEND_ROUTE;
use crate::snapshot::{Filter, ListenerProtocol, PathMatch, RouteMatch};
use crate::store::Objects;

mod classes;

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
    let mut ir = Ir::default();
    let mut table = IrRouteTable::default();
    let mut certificates = Vec::new();
    for owned in &owned {
        let ingress = Source {
            kind: INGRESS,
            key: owned.key,
            generation: owned.ingress.metadata.generation,
        };
        let source = ir.add_source(ingress);
        let Some(spec) = owned.ingress.spec.as_ref() else {
            continue;
        };
        let filters = match annotation(owned.ingress, annotations::FILTERS) {
            Some(names) => filter_set.chain(&ingress, &owned.key.namespace, names, status),
            None => Vec::new(),
        };
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
        rules(&ingress, source, spec, &filters, &mut table, status);
        if let Some(backend) = spec.default_backend.as_ref() {
            table.default_route.candidates.push(IrRoute {
                name: DEFAULT_BACKEND_ROUTE.to_owned(),
                matches: RouteMatch::path(PathMatch::Prefix("/".to_owned())),
                filters,
                action: action(
                    &owned.key.namespace,
                    backend,
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
    if let Some(flag) = &config.default_backend {
        let source = ir.add_source(Source {
            kind: "Service",
            key: &flag.service,
            generation: objects
                .services
                .get(&flag.service)
                .and_then(|s| s.metadata.generation),
        });
        let port = match flag.port.parse::<i32>() {
            Ok(n) => PortRef::Number(n),
            Err(_) => PortRef::Name(&flag.port),
        };
        table.default_route.fallback = Some(IrRoute {
            name: DEFAULT_BACKEND_ROUTE.to_owned(),
            matches: RouteMatch::path(PathMatch::Prefix("/".to_owned())),
            filters: Vec::new(),
            action: IrAction::Forward(IrForward {
                backends: vec![BackendRef::new(
                    &flag.service.namespace,
                    &flag.service.name,
                    port,
                )],
                unresolved: UNAVAILABLE,
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
fn annotation<'a>(
    ingress: &'a k8s_openapi::api::networking::v1::Ingress,
    key: &str,
) -> Option<&'a str> {
    ingress
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// The routes of one Ingress's rules, into the table by host.
fn rules<'a>(
    ingress: &Source<'a>,
    source: SourceId,
    spec: &'a IngressSpec,
    filters: &[Filter],
    table: &mut IrRouteTable<'a>,
    status: &mut Status,
) {
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
        let routes = table.hosts.entry(host).or_default();
        for (path_index, path) in http.paths.iter().enumerate() {
            let field =
                FieldPath::indexed("spec.rules[{}].http.paths[{}]", [rule_index, path_index]);
            let path_match = match parse_path(path.path.as_deref().unwrap_or(""), &path.path_type) {
                Ok(path_match) => path_match,
                Err((reason, why)) => {
                    let message = format!("{field}: {why}; path skipped");
                    status.error(ingress, condition_types::ACCEPTED, reason, message);
                    continue;
                }
            };
            routes.push(IrRoute {
                name: format!(
                    "{}/{}/{rule_index}/{path_index}",
                    ingress.key.namespace, ingress.key.name
                ),
                matches: RouteMatch::path(path_match),
                filters: filters.to_vec(),
                action: action(&ingress.key.namespace, &path.backend, field),
                field,
                order: SourceOrder {
                    source,
                    rule: rule_index,
                    index: path_index,
                },
            });
        }
    }
}

/// The action of an Ingress backend: a Service port in the Ingress's namespace, or a
/// rejection when the backend names none.
fn action<'a>(namespace: &'a str, backend: &'a IngressBackend, field: FieldPath) -> IrAction<'a> {
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
    IrAction::Forward(IrForward {
        backends: vec![BackendRef::new(namespace, &service.name, port)],
        unresolved: UNAVAILABLE,
    })
}

/// Validate and classify a rule host.
fn parse_host(host: &str) -> Result<HostMatch, &'static str> {
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
