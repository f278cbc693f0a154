//! A copy of a request kept while an attempt may come back unprocessed, so it can be sent
//! again ([`super::SendError::NotProcessed`]: an HTTP/2 stream refused, a new connection whose
//! peer never acknowledged it).
//!
//! The head is cloned. The body is not buffered up front: the attempt's body is a
//! [`TeeBody`] that keeps each frame it hands on (a reference count on the data, no copy)
//! until [`REPLAY_LIMIT`] bytes; a later attempt reads the kept frames again, then the rest of
//! the original body. A body that outgrew the limit cannot be replayed. Once the caller has a
//! response it drops the [`Replay`], and the body stops keeping frames.
//!
//! Only the attempt started last may read: an older attempt's body (still held by a
//! connection that has not noticed its stream is dead) yields an error, so two attempts never
//! share the rest of the body.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Uri, Version};
use http_body::{Body as HttpBody, Frame, SizeHint};

use crate::proxy::body::{Body, BodyError};

/// Most request-body bytes kept for a replay; a longer body is sent once.
pub(crate) const REPLAY_LIMIT: usize = 64 * 1024;

/// The request as it was before an attempt, ready to be rebuilt.
pub(crate) struct Replay {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    /// The shared body (`None`: the request had none).
    body: Option<Shared<Body>>,
}

type Shared<B> = Arc<Mutex<Tee<B>>>;

impl Replay {
    /// Keeps a copy of `req` and returns it with its body made replayable.
    pub(crate) fn keep(req: Request<Body>) -> (Replay, Request<Body>) {
        let (parts, body) = req.into_parts();
        let (shared, body) = if body.is_end_stream() {
            (None, body)
        } else {
            let (shared, first) = tee(body);
            (Some(shared), Body::replayed(first))
        };
        let replay = Replay {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            version: parts.version,
            headers: parts.headers.clone(),
            body: shared,
        };
        (replay, Request::from_parts(parts, body))
    }

    /// Whether [`Replay::request`] would give the request again (its body, if any, has not
    /// outgrown [`REPLAY_LIMIT`]), without cutting the current attempt's body off.
    pub(crate) fn replayable(&self) -> bool {
        self.body
            .as_ref()
            .is_none_or(|shared| !lock(shared).overflow)
    }

    /// The request again, for a new attempt; `None` when its body outgrew [`REPLAY_LIMIT`].
    pub(crate) fn request(&self) -> Option<Request<Body>> {
        let body = match &self.body {
            None => Body::empty(),
            Some(shared) => Body::replayed(again(shared)?),
        };
        let mut req = Request::new(body);
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.version_mut() = self.version;
        *req.headers_mut() = self.headers.clone();
        Some(req)
    }
}

/// Makes `body` replayable: the shared state (held by the [`Replay`]) and the first
/// attempt's view.
fn tee<B>(body: B) -> (Shared<B>, TeeBody<B>) {
    let shared = Arc::new(Mutex::new(Tee {
        rest: Some(body),
        kept: Vec::new(),
        kept_bytes: 0,
        overflow: false,
        attempt: 0,
    }));
    let first = TeeBody {
        shared: shared.clone(),
        attempt: 0,
        pos: 0,
    };
    (shared, first)
}

/// A new attempt's view, from the start; the older views read nothing more. `None` when
/// the body outgrew the limit.
fn again<B>(shared: &Shared<B>) -> Option<TeeBody<B>> {
    let mut tee = lock(shared);
    if tee.overflow {
        return None;
    }
    tee.attempt += 1;
    Some(TeeBody {
        shared: shared.clone(),
        attempt: tee.attempt,
        pos: 0,
    })
}

/// The body shared by a request's attempts.
struct Tee<B> {
    /// What no attempt has read yet (`None` once it ended).
    rest: Option<B>,
    /// What attempts have read, in order, while a replay is possible.
    kept: Vec<Kept>,
    kept_bytes: usize,
    /// More than [`REPLAY_LIMIT`] was read, or the request was answered: nothing is kept and
    /// no replay is possible.
    overflow: bool,
    /// The attempt allowed to read.
    attempt: u32,
}

enum Kept {
    Data(Bytes),
    Trailers(HeaderMap),
}

impl Kept {
    fn of(frame: &Frame<Bytes>) -> Option<Kept> {
        if let Some(data) = frame.data_ref() {
            Some(Kept::Data(data.clone()))
        } else {
            frame.trailers_ref().map(|t| Kept::Trailers(t.clone()))
        }
    }

    fn frame(&self) -> Frame<Bytes> {
        match self {
            Kept::Data(b) => Frame::data(b.clone()),
            Kept::Trailers(t) => Frame::trailers(t.clone()),
        }
    }

    fn len(&self) -> usize {
        match self {
            Kept::Data(b) => b.len(),
            Kept::Trailers(_) => 0,
        }
    }
}

/// One attempt's view of a replayable request body.
pub(crate) struct TeeBody<B = Body> {
    shared: Shared<B>,
    attempt: u32,
    /// Next kept frame to hand on (then the rest of the body).
    pos: usize,
}

impl<B> HttpBody for TeeBody<B>
where
    B: HttpBody<Data = Bytes, Error = BodyError> + Unpin,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        // Only the `Replay` holds another reference: once it is gone the request has its
        // response, and nothing needs keeping any more.
        let replayable = Arc::strong_count(&this.shared) > 1;
        let mut tee = lock(&this.shared);
        if tee.attempt != this.attempt {
            return Poll::Ready(Some(Err("request body taken over by a retry".into())));
        }
        if !replayable && !tee.overflow {
            tee.kept = Vec::new();
            tee.overflow = true;
        }
        if !tee.overflow && this.pos < tee.kept.len() {
            let frame = tee.kept[this.pos].frame();
            this.pos += 1;
            return Poll::Ready(Some(Ok(frame)));
        }
        let Some(rest) = tee.rest.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(rest).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) if !tee.overflow => {
                if let Some(kept) = Kept::of(frame) {
                    tee.kept_bytes += kept.len();
                    if tee.kept_bytes > REPLAY_LIMIT {
                        tee.kept = Vec::new();
                        tee.overflow = true;
                    } else {
                        tee.kept.push(kept);
                        this.pos = tee.kept.len();
                    }
                }
            }
            Poll::Ready(None) => tee.rest = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        let tee = lock(&self.shared);
        tee.attempt == self.attempt
            && (tee.overflow || self.pos >= tee.kept.len())
            && tee.rest.as_ref().is_none_or(|r| r.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let tee = lock(&self.shared);
        let kept = if tee.overflow {
            0
        } else {
            tee.kept.iter().skip(self.pos).map(Kept::len).sum::<usize>() as u64
        };
        let rest = tee
            .rest
            .as_ref()
            .map(|r| r.size_hint())
            .unwrap_or_else(|| SizeHint::with_exact(0));
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + kept);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + kept);
        }
        hint
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these short critical sections leaves plain data behind.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use http_body_util::combinators::UnsyncBoxBody;

    type Chunks = UnsyncBoxBody<Bytes, BodyError>;

    fn chunks(parts: &[&'static str]) -> Chunks {
        let frames: Vec<Result<Frame<Bytes>, BodyError>> = parts
            .iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes()))))
            .collect();
        http_body_util::StreamBody::new(futures::stream::iter(frames)).boxed_unsync()
    }

    async fn read<B>(body: B) -> Result<Bytes, BodyError>
    where
        B: HttpBody<Data = Bytes, Error = BodyError>,
    {
        Ok(body.collect().await?.to_bytes())
    }

    #[tokio::test]
    async fn a_retry_reads_what_the_first_attempt_read_then_the_rest() {
        let (shared, mut first) = tee(chunks(&["ab", "cd", "ef"]));
        // The first attempt reads one frame, then is refused.
        let frame = first.frame().await.expect("frame").expect("ok");
        assert_eq!(frame.into_data().expect("data"), "ab");
        let second = again(&shared).expect("replayable");
        assert_eq!(second.size_hint().exact(), None);
        assert_eq!(read(second).await.expect("body"), "abcdef");
        // The superseded attempt reads nothing more.
        assert!(first.frame().await.expect("frame").is_err());
        // A third attempt still gets all of it.
        let third = again(&shared).expect("replayable");
        assert_eq!(read(third).await.expect("body"), "abcdef");
    }

    #[tokio::test]
    async fn a_body_past_the_limit_is_not_replayed() {
        let big: &'static str = Box::leak("x".repeat(REPLAY_LIMIT + 1).into_boxed_str());
        let (shared, first) = tee(chunks(&["ab", big]));
        assert_eq!(read(first).await.expect("body").len(), REPLAY_LIMIT + 3);
        assert!(again(&shared).is_none());
    }

    #[tokio::test]
    async fn once_answered_the_body_keeps_nothing() {
        let (shared, mut first) = tee(chunks(&["ab", "cd"]));
        let watch = Arc::downgrade(&shared);
        // The caller has its response: it drops its replay.
        drop(shared);
        let _ = first.frame().await;
        let shared = watch.upgrade().expect("alive while the body is");
        assert!(lock(&shared).kept.is_empty());
        drop(shared);
        assert_eq!(read(first).await.expect("rest"), "cd");
    }

    #[test]
    fn a_request_without_body_replays_its_head() {
        let req = Request::builder()
            .method("DELETE")
            .uri("/x")
            .header("x-a", "1")
            .body(Body::empty())
            .expect("request");
        let (replay, sent) = Replay::keep(req);
        drop(sent);
        let again = replay.request().expect("replayable");
        assert_eq!(again.method(), Method::DELETE);
        assert_eq!(again.uri(), "/x");
        assert_eq!(again.headers()["x-a"], "1");
        assert!(again.body().is_end_stream());
    }
}
