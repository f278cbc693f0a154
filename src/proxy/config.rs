//! Data-plane settings that do not come from Kubernetes objects (command line, defaults).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

pub use super::normalize::EscapedSlashes;
pub use crate::net::{Cidr, CidrError};

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
    /// How long a client may take to send a request head (zero: no limit). Default 10 s, as
    /// HAProxy recommends for `timeout http-request`. The first head is timed from accept (from
    /// the end of the TLS handshake on HTTPS), on HTTP/1 and HTTP/2 alike; a connection that
    /// has not sent it in time is closed without an answer. Later HTTP/1 heads are timed by
    /// hyper from the end of the previous response, so this is also the idle keep-alive
    /// timeout of HTTP/1 client connections.
    pub header_read_timeout: Duration,
    /// Most half-received connections per listener — accepted, first request head not
    /// complete yet (TLS handshake included) — before each new one closes the oldest of them
    /// (0: no limit). Default 1024. See the `admission` module for why the oldest.
    pub max_half_received: usize,
    /// How long a TLS handshake may take. Default 10 s.
    pub tls_handshake_timeout: Duration,
    /// On shutdown, how long in-flight requests may take to finish. Default 30 s.
    pub drain_timeout: Duration,
    /// Which peers' `X-Forwarded-*`, `Forwarded` and `X-Real-IP` are believed (none by
    /// default).
    pub forwarded: ForwardedHeaders,
    /// What to do with an incoming `X-Request-Id`.
    pub request_id: RequestIdMode,
    /// Access log destination and format.
    pub access_log: AccessLogConfig,
    /// Count every route's requests in `weir_route_requests_total` and
    /// `weir_route_request_duration_seconds` (`--metrics-per-route`). Off by default: per-route
    /// series grow with the routes, so only routes annotated `weir.dev/metrics-per-route`
    /// get them; series are created by a route's first request either way.
    pub metrics_per_route: bool,
    /// Upper bound on concurrent streams weir opens on one upstream HTTP/2 connection (the
    /// peer's `SETTINGS_MAX_CONCURRENT_STREAMS` lowers it further). Default 100.
    pub upstream_h2_max_streams: usize,
    /// What to do with `%2F` and `%5C` in request paths. Default: reject with 400.
    pub escaped_slashes: EscapedSlashes,
    /// A WebSocket tunnel in which no byte moved either way for this long is closed (zero:
    /// never). Default 1 hour.
    pub tunnel_idle_timeout: Duration,
    /// A downstream HTTP/2 connection with no open stream for this long is closed with
    /// GOAWAY (zero: never). Default 5 minutes.
    pub h2_idle_timeout: Duration,
    /// How often weir PINGs a downstream HTTP/2 connection it has read nothing from, to find
    /// peers that went away without a close (`None`: never). Default 60 s.
    pub h2_keepalive_interval: Option<Duration>,
    /// How long a keepalive PING may wait for its ACK before the connection is closed.
    /// Default 20 s.
    pub h2_keepalive_timeout: Duration,
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
            header_read_timeout: Duration::from_secs(10),
            max_half_received: 1024,
            tls_handshake_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(30),
            forwarded: ForwardedHeaders::default(),
            request_id: RequestIdMode::default(),
            access_log: AccessLogConfig::default(),
            metrics_per_route: false,
            upstream_h2_max_streams: 100,
            escaped_slashes: EscapedSlashes::default(),
            tunnel_idle_timeout: Duration::from_secs(3600),
            h2_idle_timeout: Duration::from_secs(300),
            h2_keepalive_interval: Some(Duration::from_secs(60)),
            h2_keepalive_timeout: Duration::from_secs(20),
            max_request_duration: Duration::ZERO,
        }
    }
}

/// Whose forwarding headers weir believes, by the address of the connection's peer.
///
/// Every request leaves with `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host` and
/// `X-Real-IP` set by weir:
///
/// - **Peer not trusted** (every peer by default: weir is the edge): each forwarding header
///   the client sent is dropped — `Forwarded` (RFC 7239), `X-Real-IP` and every
///   `X-Forwarded-*` (including `-Port`, `-Prefix`, `-Server`, which backends also use to
///   build URLs) — and weir writes `X-Forwarded-For: <peer>`, `X-Forwarded-Proto` (`http` or
///   `https`, as accepted), `X-Forwarded-Host` (the request host) and `X-Real-IP: <peer>`.
///   Clients cannot spoof any of them.
/// - **Peer trusted** (a load balancer or proxy in [`ForwardedHeaders::trusted_proxies`]):
///   every `X-Forwarded-For` field line is kept, in order, and the peer appended
///   (`client, lb1, peer`); incoming `X-Forwarded-Proto` / `-Host`, the other
///   `X-Forwarded-*` and `Forwarded` pass unchanged (the first three are set when absent).
///   `X-Real-IP` is the client address as ingress-nginx computes it (nginx `realip` with
///   `real_ip_recursive on`): walking `X-Forwarded-For` from the right, the first address
///   that is not a trusted proxy (the leftmost when all are; the last trusted one when an
///   element is not an IP address).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForwardedHeaders {
    /// Networks of the proxies in front of weir (`--trusted-proxies`). Empty by default.
    pub trusted_proxies: Vec<Cidr>,
}

impl ForwardedHeaders {
    /// Trust every peer (`0.0.0.0/0` and `::/0`): the deprecated `--trust-forwarded-headers`.
    pub fn trust_all() -> Self {
        ForwardedHeaders {
            trusted_proxies: vec![
                Cidr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
                Cidr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
            ],
        }
    }

    /// Whether a peer at `ip` is a trusted proxy (IPv4-mapped IPv6 peers, as a dual-stack
    /// listener reports IPv4 clients, compare as IPv4).
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted_proxies.iter().any(|net| net.contains(ip))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn cidr(s: &str) -> Cidr {
        s.parse().expect("cidr")
    }

    #[test]
    fn trust_is_by_peer_network_and_ipv4_mapped_peers_count_as_ipv4() {
        let forwarded = ForwardedHeaders {
            trusted_proxies: vec![cidr("127.0.0.0/8")],
        };
        assert!(forwarded.trusts(ip("127.0.0.1")));
        assert!(forwarded.trusts(ip("::ffff:127.0.0.1")));
        assert!(!forwarded.trusts(ip("10.0.0.1")));
        assert!(!ForwardedHeaders::default().trusts(ip("127.0.0.1")));
        assert!(ForwardedHeaders::trust_all().trusts(ip("2001:db8::1")));
        assert!(ForwardedHeaders::trust_all().trusts(ip("198.51.100.1")));
    }
}
