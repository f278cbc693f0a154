//! Peak-memory probe for the compile benchmark's cluster (run under `/usr/bin/time -v`):
//! `compile_mem objects` only builds the objects; `compile_mem compile` also compiles them
//! and builds the endpoint sets. The difference in max RSS is what compile adds.

#[path = "../benches/compile/objects.rs"]
mod objects;

fn main() {
    let objects = objects::objects();
    let mode = std::env::args().nth(1).unwrap_or_default();
    if mode == "compile" {
        let config = objects::config();
        let compiled = weir::compile::compile(&objects, &config);
        let sets = weir::endpoints::build(&objects, &compiled.snapshot.clusters, None);
        println!(
            "clusters {} endpoint sets {} routes {}",
            compiled.snapshot.clusters.len(),
            sets.len(),
            compiled.snapshot.routes().count()
        );
    } else {
        println!("objects {}", objects.len());
    }
}
