//! Downstream connections until their first request: the header read deadline and the
//! per-listener cap on half-received connections (the slowloris defence).
//!
//! A connection is *half-received* from accept until its first complete request head reaches
//! the pipeline (HTTP/1 or HTTP/2; a TLS handshake counts as part of it). Two limits apply:
//!
//! - **Deadline**: a connection that has not sent its first request head within
//!   [`ProxyConfig::header_read_timeout`](super::ProxyConfig::header_read_timeout) of accept
//!   (of the end of the TLS handshake on HTTPS, which has its own timeout) is closed without
//!   an answer — as HAProxy's `timeout http-request` and nginx's `client_header_timeout` do.
//!   It covers what hyper's own header timeout does not: a connection that sends nothing, or
//!   only the start of the HTTP/2 preface, never reaches hyper's HTTP/1 parser. Later heads
//!   on a keep-alive connection are hyper's: the same setting is its header read timeout.
//! - **Cap**: at most [`ProxyConfig::max_half_received`](super::ProxyConfig::max_half_received)
//!   half-received connections per listener. A connection accepted at the cap closes the
//!   **oldest** half-received one. A well-behaved client sends its head within a round trip,
//!   so the oldest is almost always a slow one, and a flood of idle connections ends up
//!   evicting itself while new clients get in. Refusing the newcomer instead (what a plain
//!   connection limit does: nginx's `worker_connections`, HAProxy's `maxconn`, Envoy's
//!   connection limit) would let whoever holds the cap lock every new client out until the
//!   deadline frees a slot.
//!
//! Both are counted in `weir_downstream_rejected_total{reason="header_timeout"|
//! "half_received_limit"}`; `weir_downstream_half_received` shows the current number.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use super::ListenerSlot;
use super::metrics::Rejection;

/// The half-received connections of one listener.
pub(crate) struct Admission {
    slot: Arc<ListenerSlot>,
    /// 0: no cap.
    limit: usize,
    timeout: Duration,
    waiting: Mutex<Waiting>,
}

#[derive(Default)]
struct Waiting {
    next: u64,
    /// By admission order (the first is the oldest); sending evicts the connection, dropping
    /// the sender tells it its first request arrived.
    conns: BTreeMap<u64, oneshot::Sender<()>>,
}

impl Admission {
    /// `limit` half-received connections at most (0: no cap), each for `timeout` at most
    /// (zero: no deadline).
    pub(crate) fn new(slot: Arc<ListenerSlot>, limit: usize, timeout: Duration) -> Arc<Self> {
        Arc::new(Admission {
            slot,
            limit,
            timeout,
            waiting: Mutex::new(Waiting::default()),
        })
    }

    /// Admits a newly accepted connection, evicting the oldest half-received one at the cap.
    pub(crate) fn admit(self: &Arc<Self>) -> (Arc<Pending>, Watch) {
        let (tx, rx) = oneshot::channel();
        let mut w = self.lock();
        if self.limit > 0
            && w.conns.len() >= self.limit
            && let Some((_, oldest)) = w.conns.pop_first()
        {
            let _ = oldest.send(());
        }
        let id = w.next;
        w.next += 1;
        w.conns.insert(id, tx);
        self.record(&w);
        drop(w);
        let pending = Arc::new(Pending {
            admission: self.clone(),
            id,
            arrived: AtomicBool::new(false),
        });
        let watch = Watch {
            evicted: Some(rx),
            timeout: self.timeout,
        };
        (pending, watch)
    }

    fn remove(&self, id: u64) {
        let mut w = self.lock();
        if w.conns.remove(&id).is_some() {
            self.record(&w);
        }
    }

    fn record(&self, w: &Waiting) {
        self.slot
            .stats
            .half_received
            .store(w.conns.len() as u64, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        // Never held across an await; a panic in these few lines leaves a consistent map.
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A connection's place among the half-received, until its first request arrives or it ends.
pub(crate) struct Pending {
    admission: Arc<Admission>,
    id: u64,
    arrived: AtomicBool,
}

impl Pending {
    /// A request head arrived on the connection: it is no longer half-received. Cheap after
    /// the first call (one load).
    pub(crate) fn arrived(&self) {
        if !self.arrived.load(Ordering::Relaxed) && !self.arrived.swap(true, Ordering::Relaxed) {
            self.admission.remove(self.id);
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.admission.remove(self.id);
    }
}

/// Says when a half-received connection must close; owned by the connection's task.
pub(crate) struct Watch {
    /// `None` once it resolved.
    evicted: Option<oneshot::Receiver<()>>,
    timeout: Duration,
}

impl Watch {
    /// Runs `fut` (a TLS handshake) unless the connection is evicted first.
    pub(crate) async fn before_http<F: Future>(&mut self, fut: F) -> Result<F::Output, Rejection> {
        tokio::select! {
            out = fut => Ok(out),
            true = evicted(&mut self.evicted) => Err(Rejection::HalfReceivedLimit),
        }
    }

    /// Serves the connection (`serve`) until it ends, or until it must close because its
    /// first request head is late or it was evicted (the reason is returned; dropping `serve`
    /// closes the socket without an answer).
    pub(crate) async fn serve<F: Future<Output = ()>>(
        &mut self,
        serve: F,
    ) -> Result<(), Rejection> {
        let timeout = self.timeout;
        let place = &mut self.evicted;
        let closing = async move {
            let deadline = async {
                if timeout.is_zero() {
                    std::future::pending::<()>().await
                } else {
                    tokio::time::sleep(timeout).await
                }
            };
            tokio::select! {
                evicted = evicted(place) => match evicted {
                    true => Rejection::HalfReceivedLimit,
                    // The first request arrived: no deadline any more.
                    false => std::future::pending().await,
                },
                () = deadline => Rejection::HeaderTimeout,
            }
        };
        tokio::select! {
            // Biased: a deadline due at the same instant as hyper's own header timeout is
            // counted as weir's.
            biased;
            reason = closing => Err(reason),
            () = serve => Ok(()),
        }
    }
}

/// Waits for the connection's place to resolve: `true` evicted, `false` its first request
/// arrived (the sender was dropped).
async fn evicted(place: &mut Option<oneshot::Receiver<()>>) -> bool {
    let Some(rx) = place else { return false };
    let evicted = rx.await.is_ok();
    *place = None;
    evicted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(limit: usize, timeout: Duration) -> Arc<Admission> {
        Admission::new(ListenerSlot::new("http"), limit, timeout)
    }

    fn half_received(a: &Admission) -> u64 {
        a.slot.stats.half_received.load(Ordering::Relaxed)
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_a_request_closes_at_the_deadline() {
        let a = admission(0, Duration::from_secs(10));
        let (_pending, mut watch) = a.admit();
        let start = tokio::time::Instant::now();
        let served = watch.serve(std::future::pending()).await;
        assert_eq!(served, Err(Rejection::HeaderTimeout));
        assert_eq!(start.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_request_lifts_the_deadline() {
        let a = admission(0, Duration::from_secs(10));
        let (pending, mut watch) = a.admit();
        assert_eq!(half_received(&a), 1);
        let serve = async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            pending.arrived();
            pending.arrived();
            tokio::time::sleep(Duration::from_secs(60)).await;
        };
        assert_eq!(watch.serve(serve).await, Ok(()));
        assert_eq!(half_received(&a), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_the_oldest_half_received_connection_is_evicted() {
        let a = admission(2, Duration::from_secs(10));
        let (_p1, mut w1) = a.admit();
        let (p2, mut w2) = a.admit();
        p2.arrived();
        let (_p3, mut w3) = a.admit();
        assert_eq!(half_received(&a), 2);
        // At the cap: the fourth evicts the oldest still waiting (the first); the second had
        // its request and is not counted.
        let (_p4, _w4) = a.admit();
        assert_eq!(half_received(&a), 2);
        let forever = std::future::pending::<()>;
        assert_eq!(w1.serve(forever()).await, Err(Rejection::HalfReceivedLimit));
        assert_eq!(
            w3.before_http(tokio::time::sleep(Duration::from_secs(1)))
                .await,
            Ok(())
        );
        let (_p5, _w5) = a.admit();
        assert_eq!(
            w3.before_http(forever()).await,
            Err(Rejection::HalfReceivedLimit)
        );
        // The second is past admission: only its own serving ends it.
        assert_eq!(w2.serve(async {}).await, Ok(()));
    }

    #[tokio::test]
    async fn a_connection_that_ends_leaves_the_half_received() {
        let a = admission(1, Duration::ZERO);
        let (p1, _w1) = a.admit();
        drop(p1);
        assert_eq!(half_received(&a), 0);
        let (_p2, mut w2) = a.admit();
        // Zero: no deadline.
        assert_eq!(w2.serve(tokio::task::yield_now()).await, Ok(()));
    }
}
