//! The admin listener: `/healthz`, `/readyz`, `/metrics`, `/config`, `/clusters`.
//!
//! Bind it to loopback or a private interface: it dumps configuration (never key
//! material) and is unauthenticated, like Envoy's admin port.
//!
//! - `/healthz`: 200 while the process runs.
//! - `/readyz`: 200 once the first snapshot is live in the proxy, 503 before (in Kubernetes
//!   mode that is after every watched kind has listed once). It stays 200 when the API server
//!   becomes unreachable later: the last snapshot keeps serving traffic.
//! - `/metrics`: Prometheus text format, from the proxy and the control plane.
//! - `/config`: the current snapshot as JSON.
//! - `/clusters`: endpoints per cluster with in-flight and total request counts.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
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

/// Serve the admin endpoints on `listener` until `shutdown` resolves.
pub async fn serve(listener: TcpListener, state: AdminState, shutdown: impl Future<Output = ()>) {
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
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, &req)) }
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

fn handle(state: &AdminState, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".into());
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => {
            if state.proxy.generation() > 0 {
                text(StatusCode::OK, "ok\n".into())
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no snapshot live yet\n".into(),
                )
            }
        }
        "/metrics" => {
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
        "/config" => json(&*state.proxy.snapshot()),
        "/clusters" => json(&state.proxy.clusters_json()),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; try /healthz /readyz /metrics /config /clusters\n".into(),
        ),
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
