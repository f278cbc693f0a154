//! Listeners come from the snapshot: one added at runtime serves at once (with its own route
//! table), one removed stops accepting and drains its connections, and the other listeners
//! serve through all of it without a failed request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use weir::proxy::ProxyConfig;
use weir::snapshot::{
    Listener, ListenerProtocol, PathMatch, RouteAction, RouteMatch, RouteTable, Snapshot,
    VirtualHost,
};

use crate::support::*;

/// `base` plus a listener `extra` on 127.0.0.1:0 serving its own table, which answers 299.
fn with_extra(base: &Arc<Snapshot>) -> Arc<Snapshot> {
    let mut snap = Snapshot::clone(base);
    let mut table = RouteTable::default();
    table.virtual_hosts.any = Some(VirtualHost {
        host: "*".into(),
        routes: vec![weir::snapshot::Route {
            id: Default::default(),
            name: "extra/0".into(),
            matches: RouteMatch::path(PathMatch::Prefix("/".into())),
            filters: vec![],
            action: RouteAction::respond(299, "extra\n"),
            metrics_per_route: false,
        }],
    });
    snap.route_tables.insert("extra".into(), table);
    snap.listeners.push(Listener {
        name: "extra".into(),
        address: "127.0.0.1:0".parse().expect("addr"),
        protocol: ListenerProtocol::Http,
        route_table: "extra".into(),
        tls: None,
    });
    snap.assign_route_ids();
    Arc::new(snap)
}

async fn address_of(h: &Harness, name: &str, present: bool) -> Option<std::net::SocketAddr> {
    for _ in 0..400 {
        let found = h
            .proxy
            .listeners()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a);
        if found.is_some() == present {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("listener {name} present={present} never happened");
}

#[tokio::test]
async fn listeners_added_and_removed_under_load_leave_the_others_untouched() {
    let a = Backend::start("a").await;
    let h = Harness::start(ProxyConfig::default()).await;
    h.proxy.publish_endpoints(endpoints(&[("a", &[&a])]));
    let base = snapshot().host("a.example").prefix("/", "a").build();
    h.publish(base.clone());

    // Steady load on the `http` listener: 4 HTTP/1.1 connections and one HTTP/2 connection
    // with 8 concurrent streams, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut load = Vec::new();
    let h2 = h.client(Proto::H2).await.h2();
    for i in 0..12 {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        let addr = h.http;
        let mut h2 = h2.clone();
        load.push(tokio::spawn(async move {
            let mut c1 = if i < 4 {
                Some(Client::connect(addr, Proto::H1).await)
            } else {
                None
            };
            while !stop.load(Ordering::Relaxed) {
                let status = match c1.as_mut() {
                    Some(c) => c.get("a.example", "/").await.status,
                    None => {
                        let req = http::Request::get("http://a.example/")
                            .body(empty())
                            .expect("request");
                        match h2.ready().await {
                            Ok(()) => match h2.send_request(req).await {
                                Ok(resp) => collect(resp).await.status,
                                Err(_) => http::StatusCode::BAD_GATEWAY,
                            },
                            Err(_) => http::StatusCode::BAD_GATEWAY,
                        }
                    }
                };
                if status == 200 {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }

    for round in 0..5 {
        // Added: bound and served with its own route table, over HTTP/1.1 and HTTP/2.
        h.publish(with_extra(&base));
        let extra = address_of(&h, "extra", true).await.expect("bound");
        for proto in BOTH {
            let mut c = Client::connect(extra, proto).await;
            let r = c.get("any.example", "/").await;
            assert_eq!(r.status, 299, "round {round} {proto:?}");
            assert_eq!(&r.body[..], b"extra\n");
        }
        // A request in flight on it when it is removed still finishes.
        let mut draining = Client::connect(extra, Proto::H2).await;
        assert_eq!(draining.get("x", "/").await.status, 299);
        let mut held = Client::connect(extra, Proto::H1).await;
        assert_eq!(held.get("x", "/").await.status, 299);

        h.publish(base.clone());
        address_of(&h, "extra", false).await;
        // Stops accepting.
        let mut refused = false;
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(extra).await.is_err() {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(refused, "round {round}: the removed listener still accepts");
        // Its idle keep-alive connections are closed (HTTP/2 after GOAWAY).
        let mut closed = false;
        for _ in 0..200 {
            let gone = match &draining {
                Client::H2(s) => s.is_closed(),
                Client::H1(s) => s.is_closed(),
            };
            if gone {
                closed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(closed, "round {round}: drained HTTP/2 connection left open");
        drop(held);
    }

    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.await.expect("load task");
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(failed, 0, "failed requests on the http listener ({ok} ok)");
    assert!(ok > 100, "too little load to prove anything: {ok}");
}

#[tokio::test]
async fn a_removed_listener_lets_its_in_flight_request_finish() {
    let a = Backend::start("a").await;
    let h = Harness::start(ProxyConfig::default()).await;
    h.proxy.publish_endpoints(endpoints(&[("a", &[&a])]));
    let base = snapshot().host("a.example").prefix("/", "a").build();
    // `extra` serves the main table here, so it can reach the slow backend.
    let mut snap = Snapshot::clone(&with_extra(&base));
    if let Some(l) = snap.listeners.iter_mut().find(|l| l.name == "extra") {
        l.route_table = TABLE.into();
    }
    h.publish(Arc::new(snap));
    let extra = address_of(&h, "extra", true).await.expect("bound");
    for proto in BOTH {
        let mut c = Client::connect(extra, proto).await;
        assert_eq!(c.get("a.example", "/").await.status, 200);
    }
    let mut slow = Vec::new();
    for proto in BOTH {
        let mut c = Client::connect(extra, proto).await;
        slow.push(tokio::spawn(async move {
            c.get("a.example", "/slow/300").await
        }));
    }
    while a.hits() < 4 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    h.publish(base);
    address_of(&h, "extra", false).await;
    for s in slow {
        let r = s.await.expect("task");
        assert_eq!(
            r.status, 200,
            "in-flight request cut by the listener's removal"
        );
    }
}

#[tokio::test]
async fn prebound_listeners_serve_before_the_first_snapshot_and_are_kept_by_it() {
    let a = Backend::start("a").await;
    let h = Harness::start(ProxyConfig::default()).await;
    // Give the server time to look at the (empty) configuration it starts with.
    tokio::time::sleep(Duration::from_millis(50)).await;
    for proto in BOTH {
        let mut c = h.client(proto).await;
        assert_eq!(c.get("a.example", "/").await.status, 404, "{proto:?}");
    }
    let mut early = h.client(Proto::H1).await;
    assert_eq!(early.get("a.example", "/").await.status, 404);
    h.proxy.publish_endpoints(endpoints(&[("a", &[&a])]));
    h.publish(snapshot().host("a.example").prefix("/", "a").build());
    for proto in BOTH {
        let mut c = h.client(proto).await;
        assert_eq!(c.get("a.example", "/").await.status, 200, "{proto:?}");
    }
    // The socket was kept, not re-bound: a connection from before the snapshot still works.
    assert_eq!(early.get("a.example", "/").await.status, 200);
}
