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
    /// `/config`, `/clusters`: configuration dumps, for an operator on the pod's loopback.
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
        (Surface::Debug, "/config") => json(&*state.proxy.snapshot()),
        (Surface::Debug, "/clusters") => json(&state.proxy.clusters_json()),
        (Surface::Debug, "/explain") => explain(state, uri.query().unwrap_or_default()),
        (Surface::Admin, "/config" | "/clusters" | "/explain") => text(
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
            "not found; try /config /clusters /explain\n".into(),
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
        let uri: http::Uri = path.parse().expect("path");
        let response = handle(&state(), surface, &Method::GET, &uri);
        let status = response.status();
        let body =
            futures::executor::block_on(http_body_util::BodyExt::collect(response.into_body()))
                .expect("infallible")
                .to_bytes();
        (status, String::from_utf8(body.to_vec()).expect("utf8"))
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
        for path in ["/config", "/clusters", "/explain?url=http://a/"] {
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
        for path in ["/healthz", "/readyz", "/metrics", "/"] {
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
