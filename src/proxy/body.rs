//! weir's own body type, and the response body sent downstream.
//!
//! [`Body`] is what crosses the boundary between the request path and the upstream module:
//! requests are sent upstream as `Request<Body>` and responses come back as
//! `Response<Body>`, so the HTTP client behind `upstream` (hyper's today) never shows its own
//! types to the rest of the proxy. It is either streamed frame by frame (data and trailers,
//! never buffered whole) or a small body weir made itself.
//!
//! [`ResponseBody`] wraps the body sent to the client with the request's [`Completion`]:
//! when it is dropped (sent completely, or abandoned by the client) the request is accounted
//! — metrics, access log, in-flight count.

use std::error::Error as StdError;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;

use super::pipeline::{BodyEnd, Completion};
use super::upstream::{TeeBody, UpstreamBody};

/// A body error, whatever side it came from.
pub type BodyError = Box<dyn StdError + Send + Sync>;

/// A request or response body as the proxy handles it.
pub struct Body {
    kind: Kind,
}

enum Kind {
    Full(Option<Bytes>),
    /// Received by hyper's server (a downstream request body).
    Incoming(Incoming),
    /// Received from an upstream (its connection is released when this ends).
    Upstream(UpstreamBody),
    /// A request body kept for a retry while an attempt may be refused (`upstream::replay`).
    Replayed(TeeBody),
    /// A request body held to a length limit (`BodyLimit`).
    Limited(Box<Limited>),
}

/// A body that fails once more than `remaining` bytes came through, and says so in
/// `tripped` (which the pipeline reads to answer 413, whatever error the upstream client
/// made of the failed body).
struct Limited {
    inner: Body,
    remaining: u64,
    tripped: Arc<AtomicBool>,
}

/// The error of a body that passed its limit.
#[derive(Debug, thiserror::Error)]
#[error("request body longer than the limit")]
pub(crate) struct TooLarge;

impl Body {
    /// A complete body.
    pub(crate) fn full(bytes: Bytes) -> Self {
        Body {
            kind: Kind::Full(if bytes.is_empty() { None } else { Some(bytes) }),
        }
    }

    /// An empty body.
    pub(crate) fn empty() -> Self {
        Body {
            kind: Kind::Full(None),
        }
    }

    /// A body hyper's server is receiving.
    pub(crate) fn incoming(body: Incoming) -> Self {
        Body {
            kind: Kind::Incoming(body),
        }
    }

    /// A body an upstream is sending.
    pub(crate) fn upstream(body: UpstreamBody) -> Self {
        Body {
            kind: Kind::Upstream(body),
        }
    }

    /// This body, failing with [`TooLarge`] (and setting `tripped`) once it is longer than
    /// `max` bytes.
    pub(crate) fn limited(self, max: u64, tripped: Arc<AtomicBool>) -> Self {
        Body {
            kind: Kind::Limited(Box::new(Limited {
                inner: self,
                remaining: max,
                tripped,
            })),
        }
    }

    /// One attempt's view of a request body kept for a retry.
    pub(crate) fn replayed(body: TeeBody) -> Self {
        Body {
            kind: Kind::Replayed(body),
        }
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match &mut self.get_mut().kind {
            Kind::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Kind::Incoming(inner) => Pin::new(inner)
                .poll_frame(cx)
                .map_err(|e| Box::new(e) as BodyError),
            Kind::Upstream(inner) => Pin::new(inner).poll_frame(cx),
            Kind::Replayed(inner) => Pin::new(inner).poll_frame(cx),
            Kind::Limited(l) => {
                let polled = Pin::new(&mut l.inner).poll_frame(cx);
                if let Poll::Ready(Some(Ok(frame))) = &polled
                    && let Some(data) = frame.data_ref()
                {
                    let len = data.len() as u64;
                    if len > l.remaining {
                        l.tripped.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(Box::new(TooLarge))));
                    }
                    l.remaining -= len;
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(b) => b.is_none(),
            Kind::Incoming(inner) => inner.is_end_stream(),
            Kind::Upstream(inner) => inner.is_end_stream(),
            Kind::Replayed(inner) => inner.is_end_stream(),
            Kind::Limited(l) => l.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Kind::Full(None) => SizeHint::with_exact(0),
            Kind::Incoming(inner) => inner.size_hint(),
            Kind::Upstream(inner) => inner.size_hint(),
            Kind::Replayed(inner) => inner.size_hint(),
            Kind::Limited(l) => l.inner.size_hint(),
        }
    }
}

/// The body of every response weir sends downstream: a [`Body`] plus, for forwarded
/// requests, the accounting that runs when it ends.
pub struct ResponseBody {
    inner: Body,
    completion: Option<Completion>,
    /// The whole-request deadline, for a forwarded body (none when no total timeout is set).
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The body ended cleanly (`None` polled, or known empty).
    ended: bool,
    errored: bool,
    timed_out: bool,
}

impl ResponseBody {
    /// A response body weir made itself (already accounted).
    pub(crate) fn local(inner: Body) -> Self {
        ResponseBody {
            inner,
            completion: None,
            deadline: None,
            ended: false,
            errored: false,
            timed_out: false,
        }
    }

    /// A forwarded body that finishes `completion` when dropped, and is cut with an error at
    /// `deadline`.
    pub(crate) fn forwarded(
        inner: Body,
        completion: Completion,
        deadline: Option<tokio::time::Instant>,
    ) -> Self {
        ResponseBody {
            inner,
            completion: Some(completion),
            deadline: deadline.map(|at| Box::pin(tokio::time::sleep_until(at))),
            ended: false,
            errored: false,
            timed_out: false,
        }
    }
}

impl HttpBody for ResponseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if let Some(deadline) = &mut this.deadline
            && deadline.as_mut().poll(cx).is_ready()
        {
            // The whole-request timeout: the client sees the body cut (HTTP/2 RST_STREAM,
            // HTTP/1 connection closed before the end).
            this.deadline = None;
            this.timed_out = true;
            return Poll::Ready(Some(Err("whole-request timeout".into())));
        }
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.ended = true,
            Poll::Ready(Some(Err(_))) => this.errored = true,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let Some(c) = self.completion.take() {
            c.finish(if self.timed_out {
                BodyEnd::TotalTimeout
            } else if self.errored {
                BodyEnd::UpstreamError
            } else if self.ended || self.inner.is_end_stream() {
                BodyEnd::Clean
            } else {
                BodyEnd::Abandoned
            });
        }
    }
}
