//! The response body weir sends downstream: either streamed from the upstream frame by frame
//! (data and trailers, never buffered whole) or a small body weir made itself.
//!
//! The upstream variant carries the request's [`Completion`]: when the body is dropped
//! (sent completely, or abandoned by the client) the request is accounted — metrics, access
//! log, in-flight count — and an HTTP/1 connection whose response ended cleanly goes back
//! to its pool.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::forward::Completion;

/// Body of every response weir sends.
pub struct ProxyBody {
    kind: Kind,
}

enum Kind {
    Full(Option<Bytes>),
    Upstream {
        inner: Incoming,
        completion: Option<Completion>,
        /// The upstream body ended cleanly (`None` polled, or known empty).
        ended: bool,
    },
}

impl ProxyBody {
    /// A complete body.
    pub(crate) fn full(bytes: Bytes) -> Self {
        ProxyBody {
            kind: Kind::Full(if bytes.is_empty() { None } else { Some(bytes) }),
        }
    }

    /// An empty body.
    pub(crate) fn empty() -> Self {
        ProxyBody {
            kind: Kind::Full(None),
        }
    }

    /// A body streamed from the upstream, finishing `completion` when dropped.
    pub(crate) fn upstream(inner: Incoming, completion: Completion) -> Self {
        ProxyBody {
            kind: Kind::Upstream {
                inner,
                completion: Some(completion),
                ended: false,
            },
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match &mut self.get_mut().kind {
            Kind::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Kind::Upstream {
                inner,
                completion,
                ended,
            } => {
                let polled = Pin::new(inner).poll_frame(cx);
                match &polled {
                    Poll::Ready(None) => *ended = true,
                    Poll::Ready(Some(Err(_))) => {
                        if let Some(c) = completion {
                            c.body_error();
                        }
                    }
                    _ => {}
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(b) => b.is_none(),
            Kind::Upstream { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Kind::Full(None) => SizeHint::with_exact(0),
            Kind::Upstream { inner, .. } => inner.size_hint(),
        }
    }
}

impl Drop for ProxyBody {
    fn drop(&mut self) {
        if let Kind::Upstream {
            inner,
            completion,
            ended,
        } = &mut self.kind
        {
            if let Some(c) = completion.take() {
                c.finish(*ended || inner.is_end_stream());
            }
        }
    }
}
