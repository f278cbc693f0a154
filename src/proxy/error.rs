//! Failures of the request path, and the one function that turns them into responses.

use http::{HeaderValue, Response, StatusCode, header};

use super::body::ProxyBody;

/// Where and how a request failed. Mapped to a response by [`Failure::into_response`] only.
#[derive(Debug)]
pub enum Failure {
    /// The request is unusable (missing host, bad URI): 400.
    BadRequest(&'static str),
    /// No virtual host or route matched and there is no default backend: 404.
    NoRoute,
    /// The route's cluster has no endpoint: 503.
    NoEndpoint,
    /// Connecting to the upstream failed (refused, unreachable, TLS, handshake); nothing of
    /// the request was sent, so another endpoint may be tried: 502 when none is left.
    Connect(std::io::Error),
    /// Connecting took longer than the cluster's connect timeout (retry-safe): 504 when it
    /// was the last candidate.
    ConnectTimeout,
    /// The upstream failed after the request was (maybe partly) sent: 502, never retried.
    Upstream(hyper::Error),
    /// No response headers within the cluster's request timeout: 504.
    Timeout,
}

impl Failure {
    /// Whether another endpoint may be tried: true only when nothing was sent upstream.
    pub fn retry_safe(&self) -> bool {
        matches!(self, Failure::Connect(_) | Failure::ConnectTimeout)
    }

    /// Short, bounded label for metrics (`weir_upstream_errors_total{kind}`) and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::BadRequest(_) => "bad_request",
            Failure::NoRoute => "no_route",
            Failure::NoEndpoint => "no_endpoint",
            Failure::Connect(_) => "connect",
            Failure::ConnectTimeout => "connect_timeout",
            Failure::Upstream(_) => "upstream",
            Failure::Timeout => "timeout",
        }
    }

    /// Logs the failure with its cause (debug level: failures are also counted and logged
    /// in the access log).
    pub fn trace(&self) {
        match self {
            Failure::Connect(error) => tracing::debug!(%error, "upstream connect failed"),
            Failure::Upstream(error) => tracing::debug!(%error, "upstream failed"),
            other => tracing::debug!(kind = other.kind(), "request failed"),
        }
    }

    /// The status a client gets for this failure.
    pub fn status(&self) -> StatusCode {
        match self {
            Failure::BadRequest(_) => StatusCode::BAD_REQUEST,
            Failure::NoRoute => StatusCode::NOT_FOUND,
            Failure::NoEndpoint => StatusCode::SERVICE_UNAVAILABLE,
            Failure::Connect(_) | Failure::Upstream(_) => StatusCode::BAD_GATEWAY,
            Failure::ConnectTimeout | Failure::Timeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The one place that maps failures to responses.
    pub fn into_response(self) -> Response<ProxyBody> {
        let status = self.status();
        let body: &'static str = match &self {
            Failure::BadRequest(why) => why,
            Failure::NoRoute => "no route\n",
            Failure::NoEndpoint => "no healthy upstream\n",
            Failure::Connect(_) | Failure::Upstream(_) => "upstream connect error or disconnect\n",
            Failure::ConnectTimeout | Failure::Timeout => "upstream request timeout\n",
        };
        synthetic(status, bytes::Bytes::from_static(body.as_bytes()))
    }
}

/// A plain-text response made by weir itself.
pub fn synthetic(status: StatusCode, body: bytes::Bytes) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Failure of [`super::Proxy::serve`].
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Building the TLS configuration failed (the self-signed default certificate).
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// A listener's local address could not be read.
    #[error("listener error")]
    Listener(#[source] std::io::Error),
}
