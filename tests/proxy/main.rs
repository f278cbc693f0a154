//! The in-process proxy tests: real hyper backends on `127.0.0.1:0`, the real proxy, and
//! clients over HTTP/1.1 and HTTP/2 (each case runs over both). One test binary with one
//! harness (`tests/support`), so the harness is compiled once.

#[path = "../support/mod.rs"]
mod support;

mod bad_input;
mod balancing;
mod fanout;
mod filters_access;
mod filters_edge;
mod filters_extauth;
mod gateway;
mod h2_frames;
mod health;
mod http1_probes;
mod listeners;
mod metrics_scale;
mod model;
mod nginx_annotations;
mod nginx_canary;
mod nginx_errors;
mod nginx_filters;
mod nginx_limits;
mod nginx_paths;
mod nginx_upstream;
mod nginx_upstream_tls;
mod observability;
mod paths;
mod pools;
mod reconfigure;
mod resilience;
mod retries;
mod routing;
mod shutdown;
mod streams;
mod tls;
mod topology;
