//! weir: a Kubernetes ingress controller with its own data plane.
//!
//! The pipeline (see `docs/architecture.md`):
//!
//! ```text
//! store (files | Kubernetes API) → Objects → compile (pure) → Snapshot ─ArcSwap→ proxy
//!                                     └──→ endpoints (EndpointSlice → EndpointSet) ──┘
//! ```
//!
//! - [`store`]: the objects weir compiles from, and their sources.
//! - [`compile`]: Objects → Snapshot + status, as ordered passes; never aborts on bad input.
//! - [`snapshot`]: the compiled model; no Kubernetes types.
//! - [`net`]: IP networks (CIDRs) shared by the snapshot and the proxy.
//! - [`endpoints`]: EndpointSlice → EndpointSet, published apart from the snapshot.
//! - [`reconcile`]: debounce, compile, publish.
//! - [`status`], [`lease`]: Ingress status and Events, written by the elected leader.
//! - [`proxy`]: listeners, routing, forwarding, upstream pools.
//! - [`balance`]: load-balancing policies behind one trait.
//! - [`admin`]: health, readiness, metrics and dumps.
//! - [`validate`]: `weir validate`, compile a manifests directory and report, like `nginx -t`.
//! - [`migrate`]: `weir migrate`, what becomes of ingress-nginx annotations, and weir-native
//!   manifests that leave them behind.

pub mod admin;
pub mod api;
pub mod balance;
pub mod compile;
pub mod demo;
pub mod endpoints;
pub mod explain;
pub mod lease;
pub mod migrate;
pub mod net;
pub mod proxy;
pub mod reconcile;
pub mod snapshot;
pub mod status;
pub mod store;
pub mod validate;
