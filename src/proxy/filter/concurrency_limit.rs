//! `ConcurrencyLimit`: at most `max` requests of one client address (the connection's peer)
//! in flight at once — ingress-nginx's `limit-connections`, which counts a connection only
//! while a request of it is processed, and each HTTP/2 stream on its own. A request past the
//! limit is answered the filter's status (503 by default) at once; a client in the filter's
//! exempt networks is not counted.
//!
//! # The count's lifetime
//!
//! The request phase takes a [`Slot`] (one count for the address) and leaves it in the
//! request's extensions ([`Held`]); the pipeline takes it from there with the other upstream
//! asks and keeps it with the request: in the response body's accounting once the upstream
//! answered (so the count lasts until the body was sent, or the client went away; for an
//! upgrade, until the tunnel ends, as nginx counts a WebSocket connection while it lasts),
//! or until weir's own answer was made. Dropping the request anywhere releases it.
//!
//! # Bounded memory
//!
//! The counters of one filter on one route are a map from address to count in which an
//! address is present only while it has a request in flight (the last slot's drop removes
//! it), so the map is never larger than the requests in flight: churn of addresses leaves
//! nothing behind.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{StatusCode, request};

use super::FilterContext;
use crate::proxy::error::LocalReply;
use crate::snapshot::ConcurrencyLimit;

/// The in-flight counts of one concurrency-limit filter on one route, per client address.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    counts: Mutex<HashMap<IpAddr, u32>>,
}

impl Counters {
    /// Takes a count for `ip` unless it has `max` already.
    fn take(self: &Arc<Self>, ip: IpAddr, max: u32) -> Option<Slot> {
        // Never held across an await; a panic here leaves a map of plain numbers.
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if *n >= max {
            if *n == 0 {
                counts.remove(&ip);
            }
            return None;
        }
        *n += 1;
        Some(Slot {
            counters: self.clone(),
            ip,
        })
    }

    /// Addresses counted now (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.counts.lock().map(|c| c.len()).unwrap_or_default()
    }
}

/// One request's count for its address, given back on drop.
#[derive(Debug)]
pub(crate) struct Slot {
    counters: Arc<Counters>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self
            .counters
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// The slots a request holds (one per concurrency-limit filter of its chain), a request
/// extension until the pipeline takes it. `Arc`s because extensions must be `Clone`; the
/// count is given back when the last clone goes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Held(Vec<Arc<Slot>>);

/// Request phase: take a count for the client, or answer the filter's status.
pub(crate) fn request(
    cfg: &Arc<ConcurrencyLimit>,
    ctx: &FilterContext<'_>,
    req: &mut request::Parts,
) -> Result<(), Box<LocalReply>> {
    let Some(counters) = ctx.state.concurrency(cfg) else {
        // The runtime is built from the same snapshot as the route; a miss is a bug, and an
        // access-control filter without its state refuses rather than lets through.
        debug_assert!(
            false,
            "every concurrency-limit filter has its runtime state"
        );
        return Err(Box::new(LocalReply::text(
            StatusCode::INTERNAL_SERVER_ERROR,
            Bytes::from_static(b"concurrency limit state missing\n"),
        )));
    };
    let peer = ctx.conn.peer.ip().to_canonical();
    if cfg.exempt.iter().any(|c| c.contains(peer)) {
        return Ok(());
    }
    let Some(slot) = counters.take(peer, cfg.max) else {
        return Err(Box::new(LocalReply::text(
            StatusCode::from_u16(cfg.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            Bytes::from_static(b"too many requests in flight\n"),
        )));
    };
    match req.extensions.get_mut::<Held>() {
        Some(held) => held.0.push(Arc::new(slot)),
        None => {
            req.extensions.insert(Held(vec![Arc::new(slot)]));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_per_address_and_given_back_on_drop() {
        let c = Arc::new(Counters::default());
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        let first = c.take(a, 2).expect("first");
        let second = c.take(a, 2).expect("second");
        assert!(c.take(a, 2).is_none(), "a third while two are in flight");
        let other = c.take(b, 2).expect("another address has its own count");
        drop(first);
        let third = c.take(a, 2).expect("a slot was given back");
        drop((second, third, other));
        assert_eq!(c.len(), 0, "no address is kept without a request in flight");
    }

    #[test]
    fn address_churn_leaves_nothing_behind() {
        let c = Arc::new(Counters::default());
        for i in 0..10_000u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            let slot = c.take(ip, 1).expect("a new address");
            assert_eq!(c.len(), 1);
            drop(slot);
        }
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn a_slot_held_by_clones_of_the_extension_lasts_until_the_last() {
        let c = Arc::new(Counters::default());
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let held = Held(vec![Arc::new(c.take(a, 1).expect("slot"))]);
        let copy = held.clone();
        drop(held);
        assert!(c.take(a, 1).is_none());
        drop(copy);
        assert!(c.take(a, 1).is_some());
    }
}
