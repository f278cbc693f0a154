//! Topology through the real proxy, over HTTP/1.1 and HTTP/2: endpoints the endpoint set
//! marks preferred (the proxy's zone) take every request while any of them is usable; when
//! none is (here: ejected by outlier detection), the other zones serve.

use std::sync::Arc;

use weir::proxy::ProxyConfig;
use weir::snapshot::{EndpointSet, OutlierDetection};

use crate::support::*;

fn zoned(near: &[&Backend], far: &[&Backend]) -> Arc<weir::snapshot::EndpointSets> {
    let mut endpoints: Vec<_> = near
        .iter()
        .map(|b| weir::snapshot::Endpoint {
            preferred: true,
            ..b.endpoint()
        })
        .chain(far.iter().map(|b| b.endpoint()))
        .collect();
    endpoints.sort_by_key(|e| e.address);
    Arc::new([(key("web"), Arc::new(EndpointSet { endpoints }))].into())
}

#[tokio::test]
async fn preferred_endpoints_take_the_traffic_until_none_is_usable() {
    let near1 = Backend::start("near1").await;
    let near2 = Backend::start("near2").await;
    let far = Backend::start("far").await;
    let h = Harness::start(ProxyConfig::default()).await;
    h.proxy.publish_endpoints(zoned(&[&near1, &near2], &[&far]));
    h.publish(
        snapshot()
            .host("a.example")
            .prefix("/", "web")
            .cluster("web", |c| {
                // Two of three endpoints ejected is under the default panic threshold (50%),
                // which would balance over all of them again.
                c.lb.panic_threshold = 0;
                c.health.passive = Some(OutlierDetection {
                    consecutive_gateway_errors: 1,
                    max_ejection_percent: 100,
                    ..OutlierDetection::default()
                });
            })
            .build(),
    );
    for proto in BOTH {
        let mut c = h.client(proto).await;
        for _ in 0..40 {
            let a = c.get("a.example", "/").await;
            assert_eq!(a.status, 200, "{proto:?}");
            assert_ne!(a.backend(), Some("far"), "{proto:?}: a far endpoint served");
        }
    }
    assert!(
        near1.hits() > 0 && near2.hits() > 0,
        "both near endpoints serve"
    );
    assert_eq!(far.hits(), 0);

    // The whole near zone goes away: after the failures that eject both, the far zone
    // serves (each failed attempt ejects its endpoint; a request may fail while it
    // happens, at most one per near endpoint and protocol).
    near1.stop().await;
    near2.stop().await;
    for proto in BOTH {
        let mut c = h.client(proto).await;
        let mut failed = 0;
        let mut ok = 0;
        for _ in 0..30 {
            let a = c.get("a.example", "/").await;
            if a.status == 200 {
                assert_eq!(a.backend(), Some("far"), "{proto:?}");
                ok += 1;
            } else {
                failed += 1;
            }
        }
        assert!(
            failed <= 2,
            "{proto:?}: {failed} failed before the far zone took over"
        );
        assert!(ok >= 28, "{proto:?}: {ok} answered");
    }
    far.stop().await;
}
