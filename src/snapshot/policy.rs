//! A cluster's traffic policy, compiled: how a request picks an endpoint ([`LoadBalancer`]),
//! which endpoints are online ([`HealthPolicy`]), when a request is sent again
//! ([`RetryPolicy`]), and how much a cluster takes at once ([`CircuitBreakers`]).
//!
//! The defaults are what a cluster without any `BackendPolicy` gets: round robin, retry
//! connect failures and refused streams once, passive outlier detection on, no active checks.

use std::time::Duration;

use http::HeaderName;
use serde::Serialize;

use super::{duration_ms, serialize_header_name};

/// How a request picks an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadBalancer {
    /// The policy.
    pub policy: LbPolicy,
    /// A new endpoint's share ramps up linearly over this window (zero: off). Endpoints
    /// present when the cluster was created start at full share.
    #[serde(with = "duration_ms")]
    pub slow_start: Duration,
    /// When fewer than this percentage of endpoints are usable (healthy, not ejected),
    /// balance over all of them instead (Envoy's panic threshold). Zero disables.
    pub panic_threshold: u8,
}

impl Default for LoadBalancer {
    fn default() -> Self {
        LoadBalancer {
            policy: LbPolicy::RoundRobin,
            slow_start: Duration::ZERO,
            panic_threshold: 50,
        }
    }
}

/// Load-balancing policy of a cluster. Policies that need parameters carry them; the
/// balancer is rebuilt when the policy changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LbPolicy {
    /// Smooth weighted round robin, per request.
    #[default]
    RoundRobin,
    /// Uniformly random, weighted.
    Random,
    /// Power of two choices on requests in flight, weighted.
    LeastRequest,
    /// Peak exponentially weighted moving average of latency, times requests in flight
    /// (linkerd, Finagle).
    PeakEwma {
        /// Decay time of the moving average.
        #[serde(with = "duration_ms")]
        decay: Duration,
    },
    /// Ketama-style consistent hash ring over the request's hash key.
    RingHash {
        /// Where the key comes from.
        key: HashKey,
        /// Ring entries (virtual nodes) in total, at least.
        min_ring_size: u32,
    },
    /// Maglev consistent hashing over the request's hash key.
    Maglev {
        /// Where the key comes from.
        key: HashKey,
    },
}

impl LbPolicy {
    /// The hash key of a consistent-hashing policy.
    pub fn hash_key(&self) -> Option<&HashKey> {
        match self {
            LbPolicy::RingHash { key, .. } | LbPolicy::Maglev { key } => Some(key),
            _ => None,
        }
    }
}

/// What a consistent-hashing policy hashes. A request without the key (no such header,
/// cookie or parameter) is balanced as if by random choice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HashKey {
    /// A request header's value.
    Header(#[serde(serialize_with = "serialize_header_name")] HeaderName),
    /// A cookie's value; when the request has none, the proxy sets one on the response (a
    /// random value, `Max-Age` = `ttl`; zero: a session cookie) so the next request sticks.
    Cookie {
        /// Cookie name.
        name: String,
        /// Cookie lifetime (zero: session).
        #[serde(with = "duration_ms")]
        ttl: Duration,
        /// Cookie `Path` (`/` by default).
        path: String,
        /// Cookie `SameSite` value (`Strict`, `Lax`, `None`; absent: not sent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        same_site: Option<&'static str>,
        /// Whether the cookie is marked `Secure`.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        secure: bool,
    },
    /// The client's IP address (the peer, or the trusted `X-Forwarded-For` client).
    SourceIp,
    /// A query parameter's value.
    QueryParameter(String),
    /// The request's path and query, as the upstream gets them (after URL rewrites).
    RequestUri,
}

/// Which endpoints are online, beyond Kubernetes readiness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthPolicy {
    /// Active checks (`None`: none; boxed, as most clusters have none).
    pub active: Option<Box<ActiveCheck>>,
    /// Passive outlier detection (`None`: off).
    pub passive: Option<OutlierDetection>,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy {
            active: None,
            passive: Some(OutlierDetection::default()),
        }
    }
}

/// An active health check, probed per endpoint address (shared by every cluster whose check
/// is the same).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ActiveCheck {
    /// What is probed.
    pub kind: CheckKind,
    /// Between probes (each jittered by up to 10%).
    #[serde(with = "duration_ms")]
    pub interval: Duration,
    /// A probe without an answer in this time failed.
    #[serde(with = "duration_ms")]
    pub timeout: Duration,
    /// Consecutive passes that bring an unhealthy endpoint back.
    pub healthy_threshold: u32,
    /// Consecutive failures that mark an endpoint unhealthy.
    pub unhealthy_threshold: u32,
}

/// The probe of an active check.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CheckKind {
    /// An HTTP/1.1 `GET` of `path` (with `Host: host` when set); passes on one of
    /// `expected_statuses` (200..=399 when empty).
    Http {
        /// Request path.
        path: String,
        /// Host header (empty: the endpoint address).
        host: String,
        /// Statuses that pass.
        expected_statuses: Vec<u16>,
    },
    /// A TCP connect.
    Tcp,
    /// gRPC health checking protocol v1 (`grpc.health.v1.Health/Check`) over HTTP/2
    /// cleartext; passes on `SERVING`.
    Grpc {
        /// The `service` field of the request (empty: the server as a whole).
        service: String,
    },
}

/// Passive outlier detection: endpoints whose answers fail are ejected for a while.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OutlierDetection {
    /// Consecutive 5xx answers that eject an endpoint (zero: not counted).
    pub consecutive_5xx: u32,
    /// Consecutive gateway errors (connect failure, reset, timeout, 502/503/504) that eject
    /// an endpoint (zero: not counted).
    pub consecutive_gateway_errors: u32,
    /// How often ejections are reconsidered (an ejected endpoint returns at the first sweep
    /// after its ejection time).
    #[serde(with = "duration_ms")]
    pub interval: Duration,
    /// Ejection time for a first ejection; the n-th consecutive ejection lasts n times this.
    #[serde(with = "duration_ms")]
    pub base_ejection_time: Duration,
    /// Most endpoints of a cluster ejected at once, in percent (at least one may always be
    /// ejected).
    pub max_ejection_percent: u8,
}

impl Default for OutlierDetection {
    fn default() -> Self {
        OutlierDetection {
            consecutive_5xx: 5,
            consecutive_gateway_errors: 3,
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_percent: 50,
        }
    }
}

/// When a request is sent again. A request is retried only when that is safe: nothing of it
/// was sent, or the method is idempotent and its body is replayable (buffered within 64 KiB).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetryPolicy {
    /// Most retries per request (attempts = 1 + this).
    pub num_retries: u32,
    /// What triggers a retry.
    pub on: RetryOn,
    /// Statuses that trigger a retry (on top of the triggers).
    pub statuses: Vec<u16>,
    /// Wait for response headers, per attempt (zero: the cluster's request timeout).
    #[serde(with = "duration_ms")]
    pub per_try_timeout: Duration,
    /// Backoff before a retry: a random wait in `[0, min(max, base × 2^n))`.
    #[serde(with = "duration_ms")]
    pub backoff_base: Duration,
    /// Longest backoff.
    #[serde(with = "duration_ms")]
    pub backoff_max: Duration,
    /// Retries after the request may have been processed (reset, timeout, status) in flight
    /// at most this percentage of the cluster's active requests (but always at least
    /// [`RetryPolicy::budget_min`]). Retries of requests provably not processed (connect
    /// failure, refused stream) do no work upstream and take no budget.
    pub budget_percent: u8,
    /// Retries always allowed in flight, whatever the budget.
    pub budget_min: u32,
    /// No retry starts later than this after the first attempt (`None`: no limit).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "opt_duration_ms"
    )]
    pub timeout: Option<Duration>,
}

fn opt_duration_ms<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => duration_ms::serialize(d, s),
        None => s.serialize_none(),
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            num_retries: 1,
            on: RetryOn {
                connect_failure: true,
                refused_stream: true,
                ..RetryOn::default()
            },
            statuses: Vec::new(),
            per_try_timeout: Duration::ZERO,
            backoff_base: Duration::from_millis(25),
            backoff_max: Duration::from_millis(250),
            budget_percent: 20,
            budget_min: 3,
            timeout: None,
        }
    }
}

/// Retry triggers (Envoy's `retry_on` names; serialized as the list of those set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetryOn {
    /// Connecting failed (refused, timed out, reset before anything was sent).
    pub connect_failure: bool,
    /// The connection was reset or closed after the request was sent, before a response.
    pub reset: bool,
    /// The upstream refused the stream unprocessed (HTTP/2 `REFUSED_STREAM`, GOAWAY).
    pub refused_stream: bool,
    /// Any 5xx answer.
    pub server_error: bool,
    /// 502, 503 or 504.
    pub gateway_error: bool,
    /// No response headers within the per-try timeout.
    pub timeout: bool,
}

impl RetryOn {
    /// The triggers set, by their `BackendPolicy` names.
    pub fn names(&self) -> impl Iterator<Item = &'static str> {
        [
            (self.connect_failure, "connect-failure"),
            (self.reset, "reset"),
            (self.refused_stream, "refused-stream"),
            (self.server_error, "5xx"),
            (self.gateway_error, "gateway-error"),
            (self.timeout, "timeout"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
    }
}

impl Serialize for RetryOn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.names())
    }
}

/// What a cluster takes at once (Envoy's circuit breakers). A request over a limit is
/// answered 503 with `x-weir-overloaded` naming it. The per-endpoint connection cap and
/// pending queue are [`super::Limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct CircuitBreakers {
    /// Most requests in flight to the cluster's endpoints at once (zero: no limit).
    pub max_requests: u32,
    /// Most retries in flight to the cluster at once (zero: no limit; the retry budget
    /// applies as well).
    pub max_retries: u32,
}

/// How TLS to a cluster's endpoints is authenticated (a `BackendPolicy`'s `tls`): the PEMs of
/// its Secret, already parsed. Used only when the cluster's protocol is TLS.
///
/// The proxy builds the rustls client configurations from it once (on the first connection,
/// cached in [`UpstreamTls::configs`]), never per request; a new snapshot carries a new value.
pub struct UpstreamTls {
    /// The Secret (`namespace/name`), for display.
    pub secret: String,
    /// Verify the endpoint's certificate against [`UpstreamTls::roots`] and
    /// [`UpstreamTls::hostname`]; otherwise any certificate is accepted (handshake signatures
    /// are still checked).
    pub verify: bool,
    /// The DNS name the certificate is verified against (and sent as SNI with
    /// [`UpstreamTls::sni`]).
    pub hostname: rustls::pki_types::ServerName<'static>,
    /// Send [`UpstreamTls::hostname`] as SNI.
    pub sni: bool,
    /// The trusted CAs (`ca.crt`).
    pub roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// The client certificate chain and key (`tls.crt`, `tls.key`), when the Secret has them.
    pub client: Option<(
        Vec<rustls::pki_types::CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    )>,
    /// The proxy's rustls configurations (ALPN h2 + http/1.1, and http/1.1 only), built once.
    pub configs: std::sync::OnceLock<Result<UpstreamTlsConfigs, String>>,
}

/// The client configurations of an [`UpstreamTls`].
#[derive(Clone)]
pub struct UpstreamTlsConfigs {
    /// ALPN `h2`, `http/1.1`.
    pub both: std::sync::Arc<rustls::ClientConfig>,
    /// ALPN `http/1.1` (upgrades, HTTP checks).
    pub http1: std::sync::Arc<rustls::ClientConfig>,
}

impl UpstreamTls {
    fn key_der(&self) -> Option<&[u8]> {
        self.client.as_ref().map(|(_, k)| k.secret_der())
    }

    /// A SHA-256 digest of everything the connections depend on (settings, CAs, client
    /// certificate and key): connections are shared only between clusters with the same
    /// identity.
    pub fn identity(&self) -> [u8; 32] {
        let mut d = ring::digest::Context::new(&ring::digest::SHA256);
        let mut field = |bytes: &[u8]| {
            d.update(&(bytes.len() as u64).to_be_bytes());
            d.update(bytes);
        };
        field(&[u8::from(self.verify), u8::from(self.sni)]);
        field(self.hostname.to_str().as_bytes());
        for cert in &self.roots {
            field(cert);
        }
        field(b"client");
        if let Some((chain, key)) = &self.client {
            for cert in chain {
                field(cert);
            }
            field(key.secret_der());
        }
        let mut out = [0; 32];
        out.copy_from_slice(d.finish().as_ref());
        out
    }
}

impl PartialEq for UpstreamTls {
    /// Equal when built from the same settings and PEMs (the cached configurations aside).
    fn eq(&self, other: &Self) -> bool {
        self.secret == other.secret
            && self.verify == other.verify
            && self.hostname == other.hostname
            && self.sni == other.sni
            && self.roots == other.roots
            && self.client.as_ref().map(|(c, _)| c) == other.client.as_ref().map(|(c, _)| c)
            && self.key_der() == other.key_der()
    }
}

impl Eq for UpstreamTls {}

impl std::fmt::Debug for UpstreamTls {
    /// Never the private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("secret", &self.secret)
            .field("verify", &self.verify)
            .field("hostname", &self.hostname)
            .field("sni", &self.sni)
            .field("ca_certificates", &self.roots.len())
            .field("client_certificate", &self.client.is_some())
            .finish()
    }
}

impl Serialize for UpstreamTls {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut st = s.serialize_struct("UpstreamTls", 6)?;
        st.serialize_field("secret", &self.secret)?;
        st.serialize_field("verify", &self.verify)?;
        st.serialize_field("hostname", &self.hostname.to_str())?;
        st.serialize_field("sni", &self.sni)?;
        st.serialize_field("ca_certificates", &self.roots.len())?;
        st.serialize_field("client_certificate", &self.client.is_some())?;
        st.end()
    }
}
