//! Where the bytes go at scale (issue 15 §1): the 5,000-Ingress set of the compile benchmark
//! (50,000 routes, 5,000 Services, 20,000 endpoints) taken through the pipeline as `weir run`
//! does — store, compile, endpoint sets, proxy tables — with every allocation counted by
//! [dhat](https://docs.rs/dhat). Prints the heap live after each stage (what the process
//! keeps) and the peak during it (what it needs for a moment).
//!
//!     cargo bench --bench memory
//!     WEIR_DHAT=1 cargo bench --bench memory   # also writes dhat-heap.json (allocation
//!                                              # sites; view at
//!                                              # https://nnethercote.github.io/dh_view/dh_view.html)
//!
//! A figure, not a test: nothing here fails on a number.

use std::sync::Arc;

use weir::compile::compile;
use weir::proxy::{Proxy, ProxyConfig};

#[path = "compile/objects.rs"]
#[allow(dead_code)]
mod objects;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Live bytes now, and the peak since the last call.
struct Meter {
    last_live: usize,
    rows: Vec<(String, usize, usize, usize)>,
}

impl Meter {
    fn stage(&mut self, name: &str) {
        let stats = dhat::HeapStats::get();
        let live = stats.curr_bytes;
        // dhat's peak is the process's highest so far (monotonic).
        self.rows.push((
            name.to_owned(),
            live,
            live.saturating_sub(self.last_live),
            stats.max_bytes,
        ));
        self.last_live = live;
    }

    fn print(&self) {
        let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
        println!(
            "{:<44} {:>10} {:>10} {:>10}",
            "stage", "live MiB", "+MiB", "peak MiB"
        );
        for (name, live, grew, peak) in &self.rows {
            println!(
                "{name:<44} {:>10.1} {:>10.1} {:>10.1}",
                mib(*live),
                mib(*grew),
                mib(*peak)
            );
        }
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too, as a smoke run.
    let _profiler = if std::env::var_os("WEIR_DHAT").is_some() {
        dhat::Profiler::new_heap()
    } else {
        dhat::Profiler::builder().testing().build()
    };
    let mut m = Meter {
        last_live: 0,
        rows: Vec::new(),
    };
    // The store by kind: a second copy of the set, each kind's map dropped in turn.
    let mut by_kind = objects::objects();
    let mut kinds = Vec::new();
    let mut measure = |name: &str, drop_it: &mut dyn FnMut(&mut weir::store::Objects)| {
        let before = dhat::HeapStats::get().curr_bytes;
        drop_it(&mut by_kind);
        kinds.push((name.to_owned(), before - dhat::HeapStats::get().curr_bytes));
    };
    measure("Ingress", &mut |o| drop(std::mem::take(&mut o.ingresses)));
    measure("Service", &mut |o| drop(std::mem::take(&mut o.services)));
    measure("EndpointSlice", &mut |o| {
        drop(std::mem::take(&mut o.endpoint_slices))
    });
    drop(by_kind);
    m.stage("start");

    let objects = objects::objects();
    m.stage("store: Objects (15,001 objects)");
    for (kind, bytes) in &kinds {
        println!(
            "  store, of which {kind}: {:.1} MiB",
            *bytes as f64 / 1048576.0
        );
    }

    let compiled = compile(&objects, &objects::config());
    assert_eq!(
        compiled.snapshot.routes().count(),
        objects::INGRESSES * objects::PATHS
    );
    m.stage("compile: Snapshot + StatusReport");

    let sets = weir::endpoints::build(&objects, &compiled.snapshot.clusters, None);
    m.stage("endpoints: EndpointSets (5,000 clusters)");

    let proxy = Proxy::new(ProxyConfig::default());
    proxy.publish_endpoints(Arc::new(sets));
    proxy.publish_snapshot(Arc::new(compiled.snapshot));
    m.stage("proxy: published (registry, route state)");

    drop(compiled.status);
    m.stage("status report dropped");

    drop(objects);
    m.stage("store dropped (what the proxy alone holds)");

    drop(proxy);
    m.stage("proxy dropped");
    m.print();

    use std::mem::size_of;
    println!(
        "\nsizes (bytes, inline): Ingress {} HTTPIngressPath {} Service {} EndpointSlice {} \
         Endpoint {} ObjectMeta {} | Route {} (RouteMatch {} PathMatch {} RouteAction {}) \
         ClusterKey {} Cluster {}",
        size_of::<weir::api::ingress::Ingress>(),
        size_of::<weir::api::ingress::HTTPIngressPath>(),
        size_of::<weir::api::service::Service>(),
        size_of::<weir::api::endpointslice::EndpointSlice>(),
        size_of::<weir::api::endpointslice::Endpoint>(),
        size_of::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>(),
        size_of::<weir::snapshot::Route>(),
        size_of::<weir::snapshot::RouteMatch>(),
        size_of::<weir::snapshot::PathMatch>(),
        size_of::<weir::snapshot::RouteAction>(),
        size_of::<weir::snapshot::ClusterKey>(),
        size_of::<weir::snapshot::Cluster>(),
    );
}
