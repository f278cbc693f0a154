//! `RateLimit`: a token bucket per key (client address, header value, or the route), kept in
//! the route's runtime state and shared by every worker thread. An empty bucket answers
//! **429** (or the filter's status, 503 for ingress-nginx's `limit-rps`) with `Retry-After`:
//! the seconds until one token is back, rounded up. A client whose address (the
//! connection's peer) is in the filter's exempt networks is not limited and takes no token.
//!
//! # The bucket
//!
//! Each bucket is one number, its *theoretical arrival time* (GCRA, the cell-rate form of a
//! token bucket): a request at `now` moves it to `max(tat, now) + interval` and is allowed when
//! that is at most `burst × interval` ahead of `now`. A bucket with `tat ≤ now` is full — the
//! same as a bucket never seen — so it can be forgotten without changing any answer.
//!
//! # Bounded memory
//!
//! At most [`MAX_KEYS`] buckets per filter per route. Inserting a key into a full map first
//! drops every full bucket (harmless, see above); if that frees less than a quarter of the map,
//! the buckets closest to full are dropped until a quarter is free (one linear selection, so
//! the cost is amortised over the next quarter-map of inserts). A dropped bucket that was not
//! full comes back full: under a flood of distinct keys a client may get up to `burst` extra
//! requests, the price of bounded memory (the alternative, refusing new keys, would let the
//! flood lock everyone else out).
//!
//! Times come from `tokio::time::Instant`, so tests drive refills with the paused clock.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header, request};
use tokio::time::Instant;

use super::FilterContext;
use crate::proxy::error::LocalReply;
use crate::snapshot::{RateLimit, RateLimitKey};

/// Most buckets one rate-limit filter keeps for one route.
pub(crate) const MAX_KEYS: usize = 16_384;

/// What a bucket is kept per, reduced to a few bytes (header values are hashed with a
/// per-process random key, so a client cannot aim collisions at another's bucket).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum BucketKey {
    Ip(IpAddr),
    Header(u64),
    /// The route's one bucket (also requests without the keying header).
    Whole,
}

/// The buckets of one rate-limit filter on one route.
#[derive(Debug)]
pub(crate) struct Limiter {
    /// Nanoseconds per token.
    interval: u64,
    /// `burst × interval`: how far ahead of now a bucket's time may run.
    capacity: u64,
    epoch: Instant,
    hasher: RandomState,
    buckets: Mutex<HashMap<BucketKey, u64>>,
}

impl Limiter {
    /// Empty (every bucket full) buckets for `cfg`.
    pub(crate) fn new(cfg: &RateLimit) -> Limiter {
        let interval = (cfg.period.as_nanos() / u128::from(cfg.requests.max(1))).max(1);
        let capacity = interval.saturating_mul(u128::from(cfg.burst.max(1)));
        Limiter {
            interval: u64::try_from(interval).unwrap_or(u64::MAX),
            capacity: u64::try_from(capacity).unwrap_or(u64::MAX),
            epoch: Instant::now(),
            hasher: RandomState::new(),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token from `key`'s bucket, or says how long until one is back.
    fn take(&self, key: BucketKey, at: Instant) -> Result<(), Duration> {
        let now =
            u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
        // Never held across an await; a panic here leaves a map of plain numbers.
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(&key) {
            evict(&mut buckets, now);
        }
        let tat = buckets.get(&key).copied().unwrap_or(0).max(now);
        let next = tat.saturating_add(self.interval);
        let ahead = next - now;
        if ahead > self.capacity {
            return Err(Duration::from_nanos(ahead - self.capacity));
        }
        buckets.insert(key, next);
        Ok(())
    }

    /// Buckets kept now (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.buckets.lock().map(|b| b.len()).unwrap_or_default()
    }
}

/// Frees at least a quarter of a full map (see the module docs).
fn evict(buckets: &mut HashMap<BucketKey, u64>, now: u64) {
    buckets.retain(|_, tat| *tat > now);
    let target = MAX_KEYS - MAX_KEYS / 4;
    if buckets.len() <= target {
        return;
    }
    let mut tats: Vec<u64> = buckets.values().copied().collect();
    let excess = buckets.len() - target;
    let (_, threshold, _) = tats.select_nth_unstable(excess - 1);
    let threshold = *threshold;
    buckets.retain(|_, tat| *tat > threshold);
}

/// Request phase: take a token or answer 429.
pub(crate) fn request(
    cfg: &std::sync::Arc<RateLimit>,
    ctx: &FilterContext<'_>,
    req: &request::Parts,
) -> Result<(), Box<LocalReply>> {
    let Some(limiter) = ctx.state.limiter(cfg) else {
        // The runtime is built from the same snapshot as the route; a miss is a bug, and an
        // access-control filter without its state refuses rather than lets through.
        debug_assert!(false, "every rate-limit filter has its runtime state");
        return Err(Box::new(LocalReply::text(
            StatusCode::INTERNAL_SERVER_ERROR,
            Bytes::from_static(b"rate limit state missing\n"),
        )));
    };
    let peer = ctx.conn.peer.ip().to_canonical();
    if cfg.exempt.iter().any(|c| c.contains(peer)) {
        return Ok(());
    }
    let key = match &cfg.key {
        RateLimitKey::ClientIp => BucketKey::Ip(peer),
        RateLimitKey::Header(name) => match req.headers.get(name) {
            Some(v) => BucketKey::Header(limiter.hasher.hash_one(v.as_bytes())),
            None => BucketKey::Whole,
        },
        RateLimitKey::Route => BucketKey::Whole,
    };
    limiter
        .take(key, Instant::now())
        .map_err(|wait| Box::new(too_many(cfg.status, wait)))
}

/// `status` (429 by default) with `Retry-After` in whole seconds, rounded up (at least 1).
fn too_many(status: u16, wait: Duration) -> LocalReply {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut reply = LocalReply::text(
        StatusCode::from_u16(status).unwrap_or(StatusCode::TOO_MANY_REQUESTS),
        Bytes::from_static(b"too many requests\n"),
    );
    reply
        .headers
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(requests: u32, period: Duration, burst: u32) -> RateLimit {
        RateLimit {
            requests,
            period,
            burst,
            key: RateLimitKey::ClientIp,
            status: 429,
            exempt: Vec::new(),
        }
    }

    const A: BucketKey = BucketKey::Whole;

    #[tokio::test(start_paused = true)]
    async fn burst_then_refill_at_the_rate() {
        let l = Limiter::new(&limit(2, Duration::from_secs(1), 3));
        for _ in 0..3 {
            assert!(l.take(A, Instant::now()).is_ok());
        }
        // Empty: one token comes back every 500 ms.
        assert_eq!(l.take(A, Instant::now()), Err(Duration::from_millis(500)));
        tokio::time::advance(Duration::from_millis(499)).await;
        assert_eq!(l.take(A, Instant::now()), Err(Duration::from_millis(1)));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(l.take(A, Instant::now()).is_ok());
        assert!(l.take(A, Instant::now()).is_err());
        // Idle long enough, the bucket is full again, never fuller.
        tokio::time::advance(Duration::from_secs(60)).await;
        for _ in 0..3 {
            assert!(l.take(A, Instant::now()).is_ok());
        }
        assert!(l.take(A, Instant::now()).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn keys_have_their_own_buckets() {
        let l = Limiter::new(&limit(1, Duration::from_secs(60), 1));
        let a = BucketKey::Ip("10.0.0.1".parse().expect("ip"));
        let b = BucketKey::Ip("10.0.0.2".parse().expect("ip"));
        assert!(l.take(a, Instant::now()).is_ok());
        assert!(l.take(a, Instant::now()).is_err());
        assert!(l.take(b, Instant::now()).is_ok());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let secs = |d| too_many(429, d).headers[header::RETRY_AFTER].clone();
        assert_eq!(secs(Duration::from_millis(1)), "1");
        assert_eq!(secs(Duration::from_millis(1000)), "1");
        assert_eq!(secs(Duration::from_millis(1001)), "2");
        assert_eq!(secs(Duration::from_secs(3599)), "3599");
    }

    #[tokio::test(start_paused = true)]
    async fn the_map_stays_bounded_and_keeps_the_emptiest_buckets() {
        let l = Limiter::new(&limit(1, Duration::from_secs(3600), 2));
        // A client that emptied its bucket first, then a flood of one-request keys.
        let heavy = BucketKey::Header(u64::MAX);
        assert!(l.take(heavy, Instant::now()).is_ok());
        assert!(l.take(heavy, Instant::now()).is_ok());
        for i in 0..(MAX_KEYS as u64 * 2) {
            tokio::time::advance(Duration::from_millis(1)).await;
            assert!(l.take(BucketKey::Header(i), Instant::now()).is_ok());
            assert!(l.len() <= MAX_KEYS);
        }
        // The emptiest bucket survived every eviction: still no token for it.
        assert!(l.take(heavy, Instant::now()).is_err());
    }
}
