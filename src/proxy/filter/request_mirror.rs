//! `RequestMirror`: a fire-and-forget copy of the request to a shadow cluster.
//!
//! For `percent`% of requests (drawn at random per request), a copy — method, target, and
//! headers as they are at this point of the chain (put the filter last to mirror what the
//! backend gets), `Host` kept unless the filter names one — is sent on a task of its own
//! through the shadow cluster's balancer and pools (`pipeline::subrequest`, the cluster's own
//! timeouts). The client never waits for it: the filter spawns and returns, and nothing of the shadow's answer or failure
//! reaches the client. The shadow's answer is read (up to [`DRAIN_LIMIT`], so its HTTP/1.1
//! connection can return to the pool) and dropped, and counted in the route's counters for
//! the shadow cluster; its failures in the cluster's error counters.
//!
//! **Only requests without a body are mirrored** (`GET`, `HEAD`, `DELETE`… without one):
//! a copy of a body would have to be kept or teed while the real request streams, which
//! costs memory per request and couples the client's upload to the shadow's speed. Requests
//! with a body are not copied and are counted (`weir_mirror_skipped_total{reason="body"}`).
//!
//! **In flight is bounded**: at most [`MAX_IN_FLIGHT`] copies per shadow cluster at once; a
//! copy beyond that is dropped and counted (`reason="in_flight_limit"`), so a slow or dead
//! shadow costs a bounded number of tasks and connections, never the client's time.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use http::header::{self, HeaderName, HeaderValue};
use http::{Request, request};
use http_body_util::BodyExt;

use super::FilterContext;
use crate::proxy::body::Body;
use crate::proxy::pipeline;
use crate::proxy::upstream::ClusterState;
use crate::snapshot::RequestMirror;

/// Copies in flight per shadow cluster, at most.
pub(crate) const MAX_IN_FLIGHT: usize = 256;

/// How much of the shadow's response body is read before it is dropped.
const DRAIN_LIMIT: usize = 64 * 1024;

/// Headers not copied: the copy has no body and no upgrade.
const NOT_COPIED: [HeaderName; 5] = [
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::EXPECT,
    header::UPGRADE,
    header::CONNECTION,
];

/// Starts the copy of `req` (when this request is drawn), without waiting for it.
pub(super) fn start(m: &RequestMirror, ctx: &FilterContext<'_>, req: &request::Parts) {
    if m.percent == 0 || (m.percent < 100 && rand::random_range(0..100) >= m.percent) {
        return;
    }
    let Some(cluster) = ctx.cluster(&m.cluster) else {
        return;
    };
    let state = &cluster.state;
    if !ctx.body_empty {
        state.stats.mirror_skipped("body");
        return;
    }
    let Some(permit) = Permit::take(state) else {
        state.stats.mirror_skipped("in_flight_limit");
        return;
    };
    let host = m.hostname.clone().unwrap_or_else(|| {
        req.uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            .or_else(|| req.headers.get(header::HOST).cloned())
            .unwrap_or_else(|| HeaderValue::from_static("localhost"))
    });
    let mut copy = Request::new(Body::empty());
    *copy.method_mut() = req.method.clone();
    *copy.uri_mut() = req.uri.clone();
    *copy.version_mut() = req.version;
    let headers = copy.headers_mut();
    for (name, value) in &req.headers {
        if !NOT_COPIED.contains(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    let state = state.clone();
    let stats = cluster.stats.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let started = Instant::now();
        match pipeline::subrequest(&state, copy, &host, None).await {
            Ok(answer) => {
                let status = answer.response.status().as_u16();
                let mut body = answer.response.into_body();
                let mut read = 0;
                while read < DRAIN_LIMIT {
                    match body.frame().await {
                        Some(Ok(frame)) => {
                            read += frame.data_ref().map_or(0, |d| d.len());
                        }
                        Some(Err(_)) | None => break,
                    }
                }
                stats.record(status, started.elapsed());
            }
            Err(failure) => {
                tracing::debug!(cluster = %state.name, kind = failure.kind(), "mirror failed");
                stats.record(failure.status().as_u16(), started.elapsed());
            }
        }
    });
}

/// One of the shadow cluster's [`MAX_IN_FLIGHT`] places, given back on drop.
struct Permit(Arc<ClusterState>);

impl Permit {
    fn take(state: &Arc<ClusterState>) -> Option<Permit> {
        acquire(&state.stats.mirrors_in_flight, MAX_IN_FLIGHT).then(|| Permit(state.clone()))
    }
}

/// Counts one more in `counter` unless it is at `max` already.
fn acquire(counter: &AtomicUsize, max: usize) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.0
            .stats
            .mirrors_in_flight
            .fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_beyond_the_bound_are_refused_until_one_ends() {
        let counter = AtomicUsize::new(0);
        assert!((0..3).all(|_| acquire(&counter, 3)));
        assert!(!acquire(&counter, 3), "the fourth is dropped");
        counter.fetch_sub(1, Ordering::AcqRel);
        assert!(acquire(&counter, 3), "a place freed is taken again");
        assert_eq!(counter.load(Ordering::Acquire), 3);
    }
}
