//! A way for `benches/filters.rs` to run the filter phases without a server: a route's
//! filters with their runtime state, and a connection from a chosen peer. Not an API (hidden
//! from the docs); the pipeline never uses it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use http::{HeaderValue, request, response};
use tokio::sync::{mpsc, watch};

use futures::FutureExt;

use super::{FilterContext, RequestFacts, RouteFilterState, StateCarry};
use crate::proxy::ListenerSlot;
use crate::proxy::admission::Admission;
use crate::proxy::framing::Findings;
use crate::proxy::pipeline::ConnInfo;
use crate::snapshot::Route;

/// One route's filters, ready to run on requests from one peer.
pub struct FilterChainBench {
    conn: ConnInfo,
    route: Route,
    state: RouteFilterState,
}

impl FilterChainBench {
    /// The filters of `route` (and their fresh runtime state), for requests from `peer`.
    pub fn new(route: Route, peer: SocketAddr) -> FilterChainBench {
        let slot = ListenerSlot::new("bench");
        let (pending, _watch) = Admission::new(slot.clone(), 0, Duration::ZERO).admit();
        let conn = ConnInfo {
            listener: slot,
            peer,
            peer_ip: HeaderValue::from_str(&peer.ip().to_string())
                .expect("invariant: an IP address is a valid header value"),
            tls: false,
            local_port: 80,
            framing: Arc::new(Findings::default()),
            requests: AtomicU64::new(0),
            pending,
            alive: mpsc::channel(1).0,
            drain: watch::channel(false).1,
            streams: Arc::default(),
        };
        let state = StateCarry::default().route(&mut StateCarry::default(), &route);
        FilterChainBench { conn, route, state }
    }

    /// The request phase of the route's filters on `req`, then (when no filter answered) the
    /// response phase on `resp`. Whether the request went through.
    pub fn run(&self, req: &mut request::Parts, resp: &mut response::Parts) -> bool {
        let facts = RequestFacts::capture(&req.method, &req.headers);
        let ctx = FilterContext {
            conn: &self.conn,
            route: &self.route,
            facts: &facts,
            clusters: &[],
            body_empty: true,
            state: &self.state,
        };
        // No kind of a bench chain waits (`ExternalAuth` would need a server): the request
        // phase is ready at its first poll.
        let passed = super::request(&self.route.filters, &ctx, req)
            .now_or_never()
            .is_some_and(|r| r.is_ok());
        super::response(&self.route.filters, &ctx, resp);
        passed
    }
}
