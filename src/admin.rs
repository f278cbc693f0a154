//! The admin and debug listeners (unauthenticated, like Envoy's admin port), split the way
//! Contour and ingress-nginx split them: what the cluster needs to reach on one, the
//! configuration dumps on another that only the pod itself reaches.
//!
//! [`Surface::Admin`] (`--admin-addr`, default `0.0.0.0:9901`: the kubelet's probes and
//! Prometheus reach it on the pod IP):
//!
//! - `/healthz`: 200 while the process runs.
//! - `/readyz`: 200 once the first snapshot is live in the proxy, 503 before (in Kubernetes
//!   mode that is after every watched kind has listed once). It stays 200 when the API server
//!   becomes unreachable later: the last snapshot keeps serving traffic.
//! - `/metrics`: Prometheus text format, from the proxy and the control plane.
//!
//! [`Surface::Debug`] (`--debug-addr`, default `127.0.0.1:9902`: loopback, so only
//! `kubectl port-forward` or a shell in the pod reaches it; `off` disables it):
//!
//! - `/`: the status page, one self-contained HTML file (`admin/status.html`, inline CSS
//!   and JS, no external assets) that shows `/status.json` and fetches it again every 2 s.
//! - `/status.json`: listeners, routes (host, path, backends), clusters with their
//!   endpoints' health and load, the last publishes (generation, time, what changed) and
//!   the last compile's conditions; routes and clusters capped at [`STATUS_LIMIT`] each.
//! - `/config`: the current snapshot as JSON (never key material or credentials).
//! - `/clusters`: endpoints per cluster with in-flight and total request counts.
//! - `/explain?url=URL[&method=M][&header=Name:%20value]...[&client_ip=IP][&format=text]`:
//!   what the proxy does with that request now, and why (see [`crate::proxy::explain`]);
//!   JSON, or text with `format=text`. `weir explain --admin` asks it.
//!
//! Each listener answers the other's paths with a 404 that says where they are served.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::proxy::Proxy;
use crate::snapshot::{BackendTarget, RouteAction, Snapshot};

/// The status page (`/` on the debug listener).
const STATUS_PAGE: &str = include_str!("admin/status.html");

/// Routes and clusters `/status.json` lists at most (each); `/config` and `/clusters` have
/// them all.
pub const STATUS_LIMIT: usize = 500;

/// Something that appends Prometheus text to the `/metrics` page.
pub type MetricsSource = Arc<dyn Fn(&mut String) + Send + Sync>;

/// What the admin listener reads.
#[derive(Clone)]
pub struct AdminState {
    /// The data plane.
    pub proxy: Proxy,
    /// Extra metric sources (control plane).
    pub metrics: Vec<MetricsSource>,
}

/// Which endpoints a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// `/healthz`, `/readyz`, `/metrics`: for the kubelet and Prometheus.
    Admin,
    /// `/`, `/status.json`, `/config`, `/clusters`, `/explain`: the status page and the
    /// configuration dumps, for an operator on the pod's loopback.
    Debug,
}

/// Serve the endpoints of `surface` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: AdminState,
    surface: Surface,
    shutdown: impl Future<Output = ()>,
) {
    let state = Arc::new(state);
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "admin: accept failed");
                    continue;
                }
            },
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: http::Request<Incoming>| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, surface, req.method(), req.uri())) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(error) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "admin: connection error");
            }
        });
    }
}

fn handle(
    state: &AdminState,
    surface: Surface,
    method: &Method,
    uri: &http::Uri,
) -> Response<Full<Bytes>> {
    let path = uri.path();
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".into());
    }
    match (surface, path) {
        (Surface::Admin, "/healthz") => text(StatusCode::OK, "ok\n".into()),
        (Surface::Admin, "/readyz") => {
            if state.proxy.generation() > 0 {
                text(StatusCode::OK, "ok\n".into())
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no snapshot live yet\n".into(),
                )
            }
        }
        (Surface::Admin, "/metrics") => {
            let mut out = String::with_capacity(16 * 1024);
            state.proxy.render_metrics(&mut out);
            for source in &state.metrics {
                source(&mut out);
            }
            with_type(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                out,
            )
        }
        (Surface::Debug, "/") => with_type(
            StatusCode::OK,
            "text/html; charset=utf-8",
            STATUS_PAGE.to_owned(),
        ),
        (Surface::Debug, "/status.json") => json(&status_json(&state.proxy)),
        // Browsers ask for it with every page; 204 keeps their console free of 404s.
        (Surface::Debug, "/favicon.ico") => {
            with_type(StatusCode::NO_CONTENT, "image/x-icon", String::new())
        }
        (Surface::Debug, "/config") => json(&*state.proxy.snapshot()),
        (Surface::Debug, "/clusters") => json(&state.proxy.clusters_json()),
        (Surface::Debug, "/explain") => explain(state, uri.query().unwrap_or_default()),
        (Surface::Admin, "/") => text(
            StatusCode::NOT_FOUND,
            "the status page is served at / on the debug listener (--debug-addr, loopback by \
             default: kubectl port-forward POD 9902, then http://127.0.0.1:9902/); here: \
             /healthz /readyz /metrics\n"
                .into(),
        ),
        (Surface::Admin, "/status.json" | "/config" | "/clusters" | "/explain") => text(
            StatusCode::NOT_FOUND,
            format!("{path} is served on the debug listener (--debug-addr, loopback by default)\n"),
        ),
        (Surface::Debug, "/healthz" | "/readyz" | "/metrics") => text(
            StatusCode::NOT_FOUND,
            format!("{path} is served on the admin listener (--admin-addr)\n"),
        ),
        (Surface::Admin, _) => text(
            StatusCode::NOT_FOUND,
            "not found; try /healthz /readyz /metrics\n".into(),
        ),
        (Surface::Debug, _) => text(
            StatusCode::NOT_FOUND,
            "not found; try / (the status page) /status.json /config /clusters /explain\n".into(),
        ),
    }
}

/// `/explain`: the request named by the query's `method`, `url`, `header` (repeatable) and
/// `client_ip`, explained against the live proxy.
fn explain(state: &AdminState, query: &str) -> Response<Full<Bytes>> {
    use crate::snapshot::router::decode;
    let (mut method, mut url, mut client_ip, mut as_text) = (None, None, None, false);
    let mut headers = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = decode(v).into_owned();
        match decode(k).as_ref() {
            "method" => method = Some(v),
            "url" => url = Some(v),
            "header" => headers.push(v),
            "client_ip" => client_ip = Some(v),
            "format" => as_text = v == "text",
            other => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "unknown parameter {other:?}; use url, method, header, client_ip, format\n"
                    ),
                );
            }
        }
    }
    let Some(url) = url else {
        return text(
            StatusCode::BAD_REQUEST,
            "url=... is required (e.g. /explain?url=https://shop.example.com/api)\n".into(),
        );
    };
    let method = method.as_deref().unwrap_or("GET");
    match crate::proxy::explain::ExplainRequest::parse(method, &url, &headers, client_ip.as_deref())
    {
        Ok(req) => {
            let e = state.proxy.explain(&req);
            if as_text {
                text(StatusCode::OK, e.to_string())
            } else {
                json(&e)
            }
        }
        Err(e) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
    }
}

/// What the status page shows: the live snapshot's listeners and routes, the clusters with
/// their endpoints (as `/clusters`), and the publish history with its conditions.
fn status_json(proxy: &Proxy) -> serde_json::Value {
    use serde_json::json;
    let snapshot = proxy.snapshot();
    let bound = proxy.listeners();
    let listeners: Vec<_> = snapshot
        .listeners
        .iter()
        .map(|l| {
            json!({
                "name": l.name,
                "address": l.address.to_string(),
                "bound": bound.iter().find(|(n, _)| *n == l.name).map(|(_, a)| a.to_string()),
                "protocol": l.protocol,
                "route_table": l.route_table,
                "certificates": l.tls.as_ref().map(|t| t.sni.len() + usize::from(t.default.is_some())),
            })
        })
        .collect();
    let (routes, routes_total) = status_routes(&snapshot);
    let mut clusters = match proxy.clusters_json() {
        serde_json::Value::Object(mut o) => o.remove("clusters").unwrap_or_default(),
        _ => serde_json::Value::Null,
    };
    let clusters_total = clusters.as_array().map_or(0, Vec::len);
    if let Some(list) = clusters.as_array_mut() {
        list.truncate(STATUS_LIMIT);
    }
    json!({
        "generation": proxy.generation(),
        "listeners": listeners,
        "routes": routes,
        "routes_total": routes_total,
        "clusters": clusters,
        "clusters_total": clusters_total,
        "history": proxy.publish_history(),
    })
}

/// The first [`STATUS_LIMIT`] routes of every table (host, path, what else it matches, its
/// action and backends), and how many there are.
fn status_routes(snapshot: &Snapshot) -> (Vec<serde_json::Value>, usize) {
    use serde_json::json;
    let mut out = Vec::new();
    let mut total = 0;
    for (table, t) in &snapshot.route_tables {
        let v = &t.virtual_hosts;
        let hosts = v
            .exact
            .values()
            .chain(v.wildcard.values())
            .chain(v.any.iter());
        let routes = hosts
            .flat_map(|h| h.routes.iter().map(move |r| (h.host.as_str(), r)))
            .chain(t.default_route.iter().map(|r| ("(default backend)", r)));
        for (host, r) in routes {
            total += 1;
            if out.len() >= STATUS_LIMIT {
                continue;
            }
            let path = match serde_json::to_value(&r.matches.path) {
                Ok(serde_json::Value::Object(p)) => format!(
                    "{} {}",
                    p.get("type").and_then(|t| t.as_str()).unwrap_or_default(),
                    p.get("value").and_then(|t| t.as_str()).unwrap_or_default()
                ),
                _ => String::new(),
            };
            let m = &r.matches;
            let mut extra = Vec::new();
            if let Some(method) = m.method() {
                extra.push(format!("method {method}"));
            }
            if !m.headers().is_empty() {
                extra.push(format!("{} header(s)", m.headers().len()));
            }
            if !m.query().is_empty() {
                extra.push(format!("{} query param(s)", m.query().len()));
            }
            let (action, backends) = match &r.action {
                RouteAction::Forward(f) => (
                    "forward".to_owned(),
                    f.backends
                        .iter()
                        .map(|b| {
                            let target = match &b.target {
                                BackendTarget::Cluster(key) => key.to_string(),
                                BackendTarget::Respond(d) => format!("answer {}", d.status),
                            };
                            if f.backends.len() > 1 {
                                format!("{target} (weight {})", b.weight)
                            } else {
                                target
                            }
                        })
                        .collect(),
                ),
                RouteAction::Redirect(redirect) => {
                    (format!("redirect {}", redirect.status), vec![])
                }
                RouteAction::Respond(d) => (format!("answer {}", d.status), vec![]),
            };
            out.push(json!({
                "table": table,
                "host": host,
                "path": path,
                "extra": extra.join(", "),
                "name": r.name,
                "action": action,
                "backends": backends,
                "filters": r.filters.len(),
            }));
        }
    }
    (out, total)
}

fn json<T: serde::Serialize + ?Sized>(value: &T) -> Response<Full<Bytes>> {
    match serde_json::to_string_pretty(value) {
        Ok(body) => with_type(StatusCode::OK, "application/json", body + "\n"),
        Err(error) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n")),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    with_type(status, "text/plain; charset=utf-8", body)
}

fn with_type(
    status: StatusCode,
    content_type: &'static str,
    body: String,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> AdminState {
        AdminState {
            proxy: Proxy::default(),
            metrics: vec![Arc::new(|out: &mut String| {
                out.push_str("weir_control_plane_sample 1\n")
            })],
        }
    }

    fn get(surface: Surface, path: &str) -> (StatusCode, String) {
        get_from(&state(), surface, path).0
    }

    fn get_from(
        state: &AdminState,
        surface: Surface,
        path: &str,
    ) -> ((StatusCode, String), String) {
        let uri: http::Uri = path.parse().expect("path");
        let response = handle(state, surface, &Method::GET, &uri);
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let status = response.status();
        let body =
            futures::executor::block_on(http_body_util::BodyExt::collect(response.into_body()))
                .expect("infallible")
                .to_bytes();
        (
            (status, String::from_utf8(body.to_vec()).expect("utf8")),
            content_type,
        )
    }

    /// A proxy serving `shop.example/` from `default/shop:80` (one endpoint), with a
    /// missing-Service diagnostic reported, then `b.example` added.
    fn shop() -> AdminState {
        use crate::proxy::history::Diagnostic;
        use crate::snapshot::{
            Cluster, Endpoint, EndpointSet, Listener, ListenerProtocol, PathMatch, Route, RouteId,
            RouteMatch, RouteTable, UpstreamProtocol, VirtualHost,
        };
        let key = crate::snapshot::ClusterKey::new("default", "shop", 80);
        let route = |host: &str| Route {
            id: RouteId::default(),
            name: format!("default/{host}/0/0"),
            matches: RouteMatch::path(PathMatch::Prefix("/".into())),
            filters: Vec::new(),
            action: RouteAction::forward(key.clone()),
            metrics_per_route: false,
        };
        let mut snapshot = Snapshot::default();
        snapshot.listeners.push(Listener {
            name: "http".into(),
            address: "127.0.0.1:8080".parse().expect("address"),
            protocol: ListenerProtocol::Http,
            route_table: "http".into(),
            tls: None,
        });
        let mut table = RouteTable::default();
        table.virtual_hosts.exact.insert(
            "shop.example".into(),
            VirtualHost {
                host: "shop.example".into(),
                routes: vec![route("shop")],
            },
        );
        snapshot.route_tables.insert("http".into(), table.clone());
        snapshot.clusters.insert(
            key.clone(),
            Cluster::new(key.clone(), "http", UpstreamProtocol::Http1).into(),
        );
        snapshot.assign_route_ids();
        let proxy = Proxy::default();
        let set = EndpointSet {
            endpoints: vec![Endpoint::new("127.0.0.7:9".parse().expect("address"))],
        };
        proxy.publish_endpoints(Arc::new([(key.clone(), Arc::new(set))].into()));
        proxy.publish_snapshot(Arc::new(snapshot.clone()));
        proxy.report_diagnostics(vec![Diagnostic {
            object: "Ingress default/<ghost>".into(),
            severity: "Error",
            type_: "ResolvedRefs".into(),
            reason: "ServiceNotFound".into(),
            message: "Service default/missing not found".into(),
        }]);
        table.virtual_hosts.exact.insert(
            "b.example".into(),
            VirtualHost {
                host: "b.example".into(),
                routes: vec![route("b")],
            },
        );
        snapshot.route_tables.insert("http".into(), table);
        snapshot.assign_route_ids();
        proxy.publish_snapshot(Arc::new(snapshot));
        AdminState {
            proxy,
            metrics: Vec::new(),
        }
    }

    #[test]
    fn the_status_page_is_one_self_contained_html_file_on_the_debug_listener() {
        let ((status, page), content_type) = get_from(&state(), Surface::Debug, "/");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type, "text/html; charset=utf-8");
        assert!(
            page.contains("fetch(\"status.json\""),
            "it refreshes from status.json"
        );
        // No external assets, and data never reaches the DOM as markup.
        for banned in [
            "<link",
            "src=",
            "http://",
            "https://",
            "innerHTML",
            "@import",
        ] {
            assert!(!page.contains(banned), "the page contains {banned:?}");
        }
        assert_eq!(
            get(Surface::Debug, "/favicon.ico").0,
            StatusCode::NO_CONTENT
        );
        let (status, body) = get(Surface::Admin, "/");
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(
            body.contains("debug listener") && body.contains("9902"),
            "{body}"
        );
        let (status, body) = get(Surface::Admin, "/status.json");
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains("--debug-addr"), "{body}");
    }

    #[test]
    fn status_json_shows_routes_endpoints_changes_and_conditions() {
        let ((status, body), content_type) = get_from(&shop(), Surface::Debug, "/status.json");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type, "application/json");
        let s: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(s["generation"], 2);
        assert_eq!(s["listeners"][0]["name"], "http");
        assert_eq!(s["listeners"][0]["address"], "127.0.0.1:8080");
        assert_eq!(
            s["listeners"][0]["bound"],
            serde_json::Value::Null,
            "not served"
        );
        assert_eq!(s["routes_total"], 2);
        let shop = s["routes"]
            .as_array()
            .expect("routes")
            .iter()
            .find(|r| r["host"] == "shop.example")
            .expect("the shop route");
        assert_eq!(shop["path"], "Prefix /");
        assert_eq!(shop["action"], "forward");
        assert_eq!(shop["backends"][0], "default/shop:80");
        let endpoint = &s["clusters"][0]["endpoints"][0];
        assert_eq!(endpoint["address"], "127.0.0.7:9");
        assert_eq!(endpoint["in_flight"], 0);
        let history = &s["history"];
        assert_eq!(history["publishes"][0]["generation"], 2, "newest first");
        assert_eq!(
            history["publishes"][0]["changes"][0], "+ host b.example",
            "{history}"
        );
        assert_eq!(history["publishes"][1]["diagnostics"]["errors"], 1);
        assert!(
            history["publishes"][1]["changes"]
                .as_array()
                .expect("changes")
                .contains(&"+ host shop.example".into()),
            "{history}"
        );
        assert_eq!(history["diagnostics"][0]["reason"], "ServiceNotFound");
        assert_eq!(history["diagnostics_reported"], true);
        // Data is JSON-escaped, never interpreted: the page inserts it with textContent.
        assert_eq!(
            history["diagnostics"][0]["object"],
            "Ingress default/<ghost>"
        );
    }

    #[test]
    fn the_admin_listener_serves_health_and_metrics_but_no_configuration() {
        assert_eq!(get(Surface::Admin, "/healthz").0, StatusCode::OK);
        assert_eq!(
            get(Surface::Admin, "/readyz").0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        let (status, metrics) = get(Surface::Admin, "/metrics");
        assert_eq!(status, StatusCode::OK);
        assert!(metrics.contains("weir_snapshot_generation 0"), "{metrics}");
        assert!(metrics.contains("weir_control_plane_sample 1"), "{metrics}");
        for path in [
            "/config",
            "/clusters",
            "/status.json",
            "/explain?url=http://a/",
        ] {
            let (status, body) = get(Surface::Admin, path);
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            assert!(body.contains("--debug-addr"), "{body}");
        }
    }

    #[test]
    fn the_debug_listener_serves_the_dumps_and_nothing_else() {
        let (status, config) = get(Surface::Debug, "/config");
        assert_eq!(status, StatusCode::OK);
        assert!(config.contains("\"listeners\""), "{config}");
        let (status, clusters) = get(Surface::Debug, "/clusters");
        assert_eq!(status, StatusCode::OK);
        assert!(clusters.contains("\"clusters\""), "{clusters}");
        for path in ["/healthz", "/readyz", "/metrics", "/nope"] {
            assert_eq!(get(Surface::Debug, path).0, StatusCode::NOT_FOUND, "{path}");
        }
        let (status, explained) = get(
            Surface::Debug,
            "/explain?method=GET&url=http%3A%2F%2Fshop.example%2Fa%3Fx%3D1&header=X-User%3A%20a",
        );
        assert_eq!(status, StatusCode::OK);
        assert!(
            explained.contains("\"request\": \"GET http://shop.example/a?x=1\""),
            "{explained}"
        );
        let (status, text) = get(
            Surface::Debug,
            "/explain?url=http://shop.example/&format=text",
        );
        assert_eq!(status, StatusCode::OK);
        assert!(
            text.starts_with("request   GET http://shop.example/"),
            "{text}"
        );
        for bad in [
            "/explain",
            "/explain?url=ftp://x/",
            "/explain?url=http://x/&nope=1",
        ] {
            assert_eq!(get(Surface::Debug, bad).0, StatusCode::BAD_REQUEST, "{bad}");
        }
        let refused = handle(
            &state(),
            Surface::Debug,
            &Method::POST,
            &http::Uri::from_static("/config"),
        );
        assert_eq!(refused.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}
