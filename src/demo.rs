//! `weir demo`: a few in-process backends, each answering with its own name, served
//! through the real proxy from the example manifests embedded in the binary.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// The example manifests, embedded so `weir demo` needs no checkout: (file name, contents).
pub const MANIFESTS: &[(&str, &str)] = &[
    (
        "ingressclass.yaml",
        include_str!("../examples/demo/ingressclass.yaml"),
    ),
    ("echo-a.yaml", include_str!("../examples/demo/echo-a.yaml")),
    ("echo-b.yaml", include_str!("../examples/demo/echo-b.yaml")),
    (
        "ingress.yaml",
        include_str!("../examples/demo/ingress.yaml"),
    ),
];

/// Demo backends: (name, address). The embedded manifests' EndpointSlices point here.
pub const BACKENDS: &[(&str, &str)] = &[
    ("echo-a-1", "127.0.0.1:18101"),
    ("echo-a-2", "127.0.0.1:18102"),
    ("echo-b-1", "127.0.0.1:18103"),
    ("echo-b-2", "127.0.0.1:18104"),
];

/// Write the embedded manifests into `dir`.
pub fn write_manifests(dir: &Path) -> std::io::Result<()> {
    for (name, contents) in MANIFESTS {
        std::fs::write(dir.join(name), contents)?;
    }
    Ok(())
}

/// Start one demo backend per entry of [`BACKENDS`]; each answers every request with
/// `<name> <method> <path>` and the headers weir added. Runs until the runtime stops.
pub async fn start_backends() -> std::io::Result<()> {
    for (name, addr) in BACKENDS {
        let addr: SocketAddr = addr.parse().expect("invariant: constant address parses");
        let listener = TcpListener::bind(addr).await?;
        tokio::spawn(serve_backend(name, listener));
    }
    Ok(())
}

/// Serve one named echo backend on `listener` (HTTP/1.1 and h2c).
pub async fn serve_backend(name: &'static str, listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| async move {
                let mut body = format!("{name} {} {}\n", req.method(), req.uri());
                for header in [
                    "host",
                    "x-forwarded-for",
                    "x-forwarded-proto",
                    "x-request-id",
                ] {
                    if let Some(value) = req.headers().get(header) {
                        body.push_str(&format!("{header}: {}\n", value.to_str().unwrap_or("?")));
                    }
                }
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await;
        });
    }
}
