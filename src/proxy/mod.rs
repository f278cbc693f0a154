//! The data plane: listeners, connections, routing, forwarding, upstream pools.
//!
//! The control plane talks to the proxy only through [`Proxy::publish_snapshot`],
//! [`Proxy::publish_endpoints`] and [`Proxy::update_endpoints`]; everything else here is
//! the request path.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;

use crate::snapshot::{ClusterKey, EndpointSet, EndpointSets, Snapshot};

/// Handle to the data plane. Cheap to clone.
#[derive(Clone, Default)]
pub struct Proxy {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    snapshot: ArcSwap<Snapshot>,
    endpoints: ArcSwap<EndpointSets>,
    generation: AtomicU64,
}

impl Proxy {
    /// Swap in a new snapshot. Requests in flight keep the snapshot they started with.
    pub fn publish_snapshot(&self, snapshot: Arc<Snapshot>) {
        self.inner.snapshot.store(snapshot);
        self.inner.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// Replace the endpoint sets of every cluster.
    pub fn publish_endpoints(&self, endpoints: Arc<EndpointSets>) {
        self.inner.endpoints.store(endpoints);
    }

    /// Replace (`Some`) or remove (`None`) the endpoint set of one cluster; the fast path
    /// for EndpointSlice changes.
    pub fn update_endpoints(&self, cluster: &ClusterKey, set: Option<Arc<EndpointSet>>) {
        self.inner.endpoints.rcu(|current| {
            let mut next = EndpointSets::clone(current);
            match &set {
                Some(set) => next.insert(cluster.clone(), set.clone()),
                None => next.remove(cluster),
            };
            next
        });
    }

    /// Number of snapshots published so far; `0` means not ready.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Relaxed)
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.snapshot.load_full()
    }
}
