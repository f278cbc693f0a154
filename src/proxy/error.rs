//! Failures of the request path, where each came from, and the one mapping of failures to the
//! answers weir makes itself.
//!
//! Every answer weir makes without an upstream response — direct responses, redirects,
//! failures, and filters that answer early — is a [`LocalReply`], sent through the pipeline's
//! one local-reply path (so it gets the same headers, logging and metrics). A [`Failure`]
//! becomes a `LocalReply` in exactly one place: [`Failure::reply`].

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};

use super::body::BodyError;
use super::metrics::Rejection;
use super::normalize::PathError;
use super::retry::Limit;

/// Set on weir's own 503 when a limit refused the request: `max_requests` (the cluster's
/// circuit breaker) or `max_pending` (an endpoint's pending queue was full, or the request
/// waited in it for the queue timeout).
pub(crate) static X_WEIR_OVERLOADED: http::HeaderName =
    http::HeaderName::from_static("x-weir-overloaded");

/// Where a failure came from (CONVENTIONS.md: data-plane errors record their origin).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The client sent something unusable.
    Downstream,
    /// No route: nothing is configured for the request.
    Routing,
    /// Getting a connection to an upstream failed; nothing was sent.
    UpstreamConnect,
    /// The upstream failed after the request was (maybe partly) sent, or did not answer.
    UpstreamResponse,
    /// A filter refused the request.
    Filter,
    /// weir's own state (a configuration that cannot serve the request).
    Internal,
}

impl Source {
    /// Label for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Downstream => "downstream",
            Source::Routing => "routing",
            Source::UpstreamConnect => "upstream_connect",
            Source::UpstreamResponse => "upstream_response",
            Source::Filter => "filter",
            Source::Internal => "internal",
        }
    }
}

/// How a request failed. Mapped to an answer by [`Failure::reply`] only.
#[derive(Debug)]
pub enum Failure {
    /// The request is unusable: 400, and the connection is closed.
    BadRequest(&'static str),
    /// The host is missing, repeated, invalid, or disagrees with an absolute-form target
    /// (RFC 9112 §3.2): 400, and the connection is closed.
    BadHost(&'static str),
    /// The request path cannot be normalized (an encoded slash, a bad escape, ...): 400.
    BadPath(PathError),
    /// An upgrade weir does not tunnel (anything but WebSocket) or a CONNECT: 400, and the
    /// connection is closed.
    UpgradeRefused,
    /// The request head had both `Content-Length` and `Transfer-Encoding`: 400, and the
    /// connection is closed.
    AmbiguousFraming,
    /// The chunked request body is malformed (seen by the framing guard before anything was
    /// forwarded): 400, and the connection is closed.
    BadChunk,
    /// The request body failed while it was being sent upstream (a malformed chunk that came
    /// after the head, a client gone mid-body): the client's fault, 400, and the connection
    /// is closed.
    RequestBody(BodyError),
    /// The request body is longer than the route's `BodyLimit` (declared, or counted as it
    /// streamed, before any response started): 413, and the connection is closed (the rest
    /// of the body is not read).
    BodyTooLarge,
    /// No virtual host or route matched and there is no default route: 404.
    NoRoute,
    /// The route's cluster has no endpoint: 503.
    NoEndpoint,
    /// Every backend of the route has weight 0 (the Gateway API answers 500).
    NoBackend,
    /// Connecting to the upstream failed (refused, unreachable, TLS, handshake); nothing of
    /// the request was sent, so another endpoint may be tried: 502 when none is left.
    Connect(std::io::Error),
    /// Connecting took longer than the cluster's connect timeout (retry-safe): 504 when it
    /// was the last candidate.
    ConnectTimeout,
    /// The upstream failed after the request was (maybe partly) sent: 502, never retried.
    Upstream(BodyError),
    /// No response headers within the cluster's request timeout: 504.
    Timeout,
    /// The upstream refused the request without processing it (HTTP/2 `REFUSED_STREAM`, or a
    /// graceful GOAWAY that left the stream out) and the one retry was spent or impossible:
    /// 503.
    Refused,
    /// Every connection to the endpoint was busy and its pending queue was full: 503 at once,
    /// with `x-weir-overloaded: max_pending`.
    QueueFull,
    /// Every connection to the endpoint stayed busy for the cluster's queue timeout: 503,
    /// with `x-weir-overloaded: max_pending`.
    QueueTimeout,
    /// The cluster already had `max_requests` requests in flight (its circuit breaker is
    /// open): 503 at once, with `x-weir-overloaded: max_requests`; nothing was sent.
    MaxRequests,
    /// The whole request took longer than its total timeout: 504.
    TotalTimeout,
}

impl Failure {
    /// Whether another endpoint may be tried: true only when nothing was sent upstream.
    pub fn retry_safe(&self) -> bool {
        matches!(self, Failure::Connect(_) | Failure::ConnectTimeout)
    }

    /// Where it came from.
    pub fn source(&self) -> Source {
        match self {
            Failure::BadRequest(_)
            | Failure::BadHost(_)
            | Failure::BadPath(_)
            | Failure::UpgradeRefused
            | Failure::AmbiguousFraming
            | Failure::BadChunk
            | Failure::RequestBody(_) => Source::Downstream,
            Failure::NoRoute => Source::Routing,
            Failure::BodyTooLarge => Source::Filter,
            Failure::NoEndpoint
            | Failure::Connect(_)
            | Failure::ConnectTimeout
            | Failure::QueueFull
            | Failure::QueueTimeout
            | Failure::MaxRequests => Source::UpstreamConnect,
            Failure::Upstream(_) | Failure::Timeout | Failure::Refused | Failure::TotalTimeout => {
                Source::UpstreamResponse
            }
            Failure::NoBackend => Source::Internal,
        }
    }

    /// Short, bounded label for metrics (`weir_upstream_errors_total{kind}`) and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::BadRequest(_) => "bad_request",
            Failure::BadHost(_) => "bad_host",
            Failure::BadPath(e) => e.kind(),
            Failure::UpgradeRefused => "upgrade_refused",
            Failure::AmbiguousFraming => "ambiguous_framing",
            Failure::BadChunk => "bad_chunk",
            Failure::RequestBody(_) => "request_body",
            Failure::BodyTooLarge => "body_too_large",
            Failure::NoRoute => "no_route",
            Failure::NoEndpoint => "no_endpoint",
            Failure::NoBackend => "no_backend",
            Failure::Connect(_) => "connect",
            Failure::ConnectTimeout => "connect_timeout",
            Failure::Upstream(_) => "upstream",
            Failure::Timeout => "timeout",
            Failure::Refused => "refused",
            Failure::QueueFull => "queue_full",
            Failure::QueueTimeout => "queue_timeout",
            Failure::MaxRequests => "max_requests",
            Failure::TotalTimeout => "total_timeout",
        }
    }

    /// Logs the failure with its cause (debug level: failures are also counted and logged
    /// in the access log).
    pub fn trace(&self) {
        let source = self.source().as_str();
        match self {
            Failure::Connect(error) => tracing::debug!(%error, source, "upstream connect failed"),
            Failure::Upstream(error) => tracing::debug!(%error, source, "upstream failed"),
            Failure::RequestBody(error) => {
                tracing::debug!(%error, source, "request body failed")
            }
            other => tracing::debug!(kind = other.kind(), source, "request failed"),
        }
    }

    /// The status a client gets for this failure.
    pub fn status(&self) -> StatusCode {
        match self {
            Failure::BadRequest(_)
            | Failure::BadHost(_)
            | Failure::BadPath(_)
            | Failure::UpgradeRefused
            | Failure::AmbiguousFraming
            | Failure::BadChunk
            | Failure::RequestBody(_) => StatusCode::BAD_REQUEST,
            Failure::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Failure::NoRoute => StatusCode::NOT_FOUND,
            Failure::NoEndpoint
            | Failure::Refused
            | Failure::QueueFull
            | Failure::QueueTimeout
            | Failure::MaxRequests => StatusCode::SERVICE_UNAVAILABLE,
            Failure::NoBackend => StatusCode::INTERNAL_SERVER_ERROR,
            Failure::Connect(_) | Failure::Upstream(_) => StatusCode::BAD_GATEWAY,
            Failure::ConnectTimeout | Failure::Timeout | Failure::TotalTimeout => {
                StatusCode::GATEWAY_TIMEOUT
            }
        }
    }

    /// The one place that maps failures to answers.
    pub fn reply(&self) -> LocalReply {
        let body: &'static str = match self {
            Failure::BadRequest(why) | Failure::BadHost(why) => why,
            Failure::BadPath(e) => e.message(),
            Failure::UpgradeRefused => "only WebSocket upgrades are tunnelled\n",
            Failure::AmbiguousFraming => "ambiguous message framing\n",
            Failure::BadChunk => "malformed chunked body\n",
            Failure::RequestBody(_) => "the request body could not be read\n",
            Failure::BodyTooLarge => "request body too large\n",
            Failure::NoRoute => "no route\n",
            Failure::NoEndpoint => "no healthy upstream\n",
            Failure::NoBackend => "no backend\n",
            Failure::Connect(_) | Failure::Upstream(_) => "upstream connect error or disconnect\n",
            Failure::ConnectTimeout | Failure::Timeout | Failure::TotalTimeout => {
                "upstream request timeout\n"
            }
            Failure::Refused => "upstream refused the request\n",
            Failure::QueueFull | Failure::QueueTimeout | Failure::MaxRequests => {
                "upstream overloaded\n"
            }
        };
        let mut reply = LocalReply::text(self.status(), Bytes::from_static(body.as_bytes()));
        // Which limit refused the request, so a client (or an operator reading a capture)
        // can tell weir's own overload answer from an upstream's 503.
        let overloaded = match self {
            Failure::MaxRequests => Some(Limit::Requests),
            Failure::QueueFull | Failure::QueueTimeout => Some(Limit::Pending),
            _ => None,
        };
        if let Some(limit) = overloaded {
            reply.headers.insert(
                X_WEIR_OVERLOADED.clone(),
                HeaderValue::from_static(limit.as_str()),
            );
        }
        // A request whose head or body weir refused leaves the connection in a state weir
        // does not trust (the rest of the body, what follows it): close it. A refused path
        // came in a well-framed request; the connection stays usable.
        // A body refused for its length was not read to its end either.
        reply.close = (self.source() == Source::Downstream && !matches!(self, Failure::BadPath(_)))
            || matches!(self, Failure::BodyTooLarge);
        reply.error = self.kind();
        reply
    }

    /// The `weir_downstream_rejected_total` reason of a client's failure.
    pub(crate) fn rejection(&self) -> Option<Rejection> {
        Some(match self {
            Failure::BadRequest(_) => Rejection::BadRequest,
            Failure::BadHost(_) => Rejection::BadHost,
            Failure::BadPath(_) => Rejection::BadPath,
            Failure::UpgradeRefused => Rejection::UpgradeRefused,
            Failure::AmbiguousFraming => Rejection::AmbiguousFraming,
            Failure::BadChunk => Rejection::BadChunk,
            Failure::RequestBody(_) => Rejection::RequestBody,
            Failure::BodyTooLarge
            | Failure::NoRoute
            | Failure::NoEndpoint
            | Failure::NoBackend
            | Failure::Connect(_)
            | Failure::ConnectTimeout
            | Failure::Upstream(_)
            | Failure::Timeout
            | Failure::Refused
            | Failure::QueueFull
            | Failure::QueueTimeout
            | Failure::MaxRequests
            | Failure::TotalTimeout => return None,
        })
    }
}

/// An answer weir makes itself.
#[derive(Debug)]
pub struct LocalReply {
    /// Status.
    pub status: StatusCode,
    /// Headers beyond `Content-Type` (e.g. `Location`).
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
    /// Close the (HTTP/1) connection after it.
    pub close: bool,
    /// Error label for the access log (empty when the answer is what the route asked for).
    pub error: &'static str,
}

impl LocalReply {
    /// A plain-text answer.
    pub fn text(status: StatusCode, body: Bytes) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        LocalReply {
            status,
            headers,
            body,
            close: false,
            error: "",
        }
    }
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
