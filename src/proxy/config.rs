//! Data-plane settings that do not come from Kubernetes objects (command line, defaults).

use std::path::PathBuf;
use std::time::Duration;

pub use super::normalize::EscapedSlashes;

/// Settings of the data plane. Per-cluster upstream timeouts come from the snapshot
/// ([`crate::snapshot::Timeouts`]: connect 2 s, request 60 s, idle 60 s by default).
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Largest request head (request line + headers) accepted, in bytes. HTTP/1 requests
    /// over it get 431; on HTTP/2 it is the advertised `SETTINGS_MAX_HEADER_LIST_SIZE`
    /// (hyper answers 431 too). Default 64 KiB; HTTP/1 cannot go below 8 KiB.
    pub max_header_bytes: usize,
    /// Most header fields in an HTTP/1 request (431 above). Default 100.
    pub max_headers: usize,
    /// How long a downstream HTTP/1 connection may take to send a request head. Default 30 s.
    pub header_read_timeout: Duration,
    /// How long a TLS handshake may take. Default 10 s.
    pub tls_handshake_timeout: Duration,
    /// On shutdown, how long in-flight requests may take to finish. Default 30 s.
    pub drain_timeout: Duration,
    /// Trust rules for `X-Forwarded-For`, `-Proto`, `-Host` from downstream.
    pub forwarded: ForwardedHeaders,
    /// What to do with an incoming `X-Request-Id`.
    pub request_id: RequestIdMode,
    /// Access log destination and format.
    pub access_log: AccessLogConfig,
    /// Upper bound on concurrent streams weir opens on one upstream HTTP/2 connection (the
    /// peer's `SETTINGS_MAX_CONCURRENT_STREAMS` lowers it further). Default 100.
    pub upstream_h2_max_streams: usize,
    /// What to do with `%2F` and `%5C` in request paths. Default: reject with 400.
    pub escaped_slashes: EscapedSlashes,
    /// A WebSocket tunnel in which no byte moved either way for this long is closed (zero:
    /// never). Default 1 hour.
    pub tunnel_idle_timeout: Duration,
    /// Ceiling on any forwarded request's whole duration, from its arrival to the end of its
    /// response body (zero: none, the default); a cluster's own total timeout may be
    /// shorter. Over it: 504 before the response headers, the body cut after.
    pub max_request_duration: Duration,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            header_read_timeout: Duration::from_secs(30),
            tls_handshake_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(30),
            forwarded: ForwardedHeaders::default(),
            request_id: RequestIdMode::default(),
            access_log: AccessLogConfig::default(),
            upstream_h2_max_streams: 100,
            escaped_slashes: EscapedSlashes::default(),
            tunnel_idle_timeout: Duration::from_secs(3600),
            max_request_duration: Duration::ZERO,
        }
    }
}

/// Whether weir believes the `X-Forwarded-*` headers a client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardedHeaders {
    /// Default. weir is the edge: it overwrites `X-Forwarded-For` with the peer's IP, and
    /// `-Proto` / `-Host` with the scheme and host it saw. Clients cannot spoof them.
    #[default]
    Overwrite,
    /// weir sits behind a trusted load balancer: it appends the peer's IP to an incoming
    /// `X-Forwarded-For` and keeps incoming `-Proto` / `-Host` (setting them when absent).
    Trust,
}

/// What weir does with an incoming `X-Request-Id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RequestIdMode {
    /// Default (as ingress-nginx): keep a well-formed incoming id (1–128 visible ASCII
    /// characters), generate a random one otherwise.
    #[default]
    PreserveOrGenerate,
    /// Always generate a fresh id, replacing any incoming one.
    Generate,
}

/// Access log settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessLogConfig {
    /// Where lines go.
    pub target: AccessLogTarget,
    /// How lines look.
    pub format: AccessLogFormat,
}

/// Where access log lines go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AccessLogTarget {
    /// No access log (default).
    #[default]
    Off,
    /// Standard output.
    Stdout,
    /// Appended to a file.
    File(PathBuf),
}

/// Format of access log lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// `key=value` pairs (default).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}
