//! `BackendPolicy` (weir.dev/v1alpha1): how requests to a Service pick its endpoints, which
//! endpoints are online, when requests are retried, and how much the Service takes at once.
//!
//! Attached to Services with `targetRefs`, Gateway API policy-attachment style; field names
//! follow Envoy Gateway's `BackendTrafficPolicy` where one exists. These are the user-facing
//! types; compile (`crate::compile::policy`) validates them and writes the result into each
//! target's [`crate::snapshot::Cluster`]. Durations are Gateway API durations (`2s`, `500ms`,
//! `1m30s`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// What a `BackendPolicy` declares. Every section is optional; what is absent keeps weir's
/// default (round robin, one retry of connect failures and refused streams, passive outlier
/// detection on, no active checks).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "weir.dev",
    version = "v1alpha1",
    kind = "BackendPolicy",
    plural = "backendpolicies",
    shortname = "bp",
    namespaced,
    status = "BackendPolicyStatus",
    printcolumn = r#"{"name":"Targets","type":"string","jsonPath":".spec.targetRefs[*].name"}"#,
    printcolumn = r#"{"name":"LB","type":"string","jsonPath":".spec.loadBalancer.type"}"#,
    printcolumn = r#"{"name":"Accepted","type":"string","jsonPath":".status.conditions[?(@.type==\"Accepted\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Accepted\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.targetRefs)").message("spec.targetRefs is required"))]
pub struct BackendPolicySpec {
    /// The Services (optionally one port of each, by `sectionName`) the policy applies to.
    #[serde(default)]
    #[schemars(length(min = 1, max = 16), transform = no_default)]
    pub target_refs: Vec<PolicyTargetRef>,
    /// How a request picks an endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerSpec>,
    /// Active checks and passive outlier detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheckSpec>,
    /// When a request is sent again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySpec>,
    /// What the Service takes at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreakerSpec>,
    /// Connect, request and idle timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<TimeoutSpec>,
    /// Forward to the Service's ClusterIP and port (one endpoint; kube-proxy balances per
    /// connection) instead of balancing over its endpoints (default false). A Service without
    /// a ClusterIP (headless) is then unavailable: its routes answer 503.
    #[serde(
        default,
        rename = "forwardToClusterIP",
        skip_serializing_if = "Option::is_none"
    )]
    pub forward_to_cluster_ip: Option<bool>,
    /// How weir's TLS to the endpoints is authenticated (used when the port speaks TLS:
    /// `appProtocol: https`, or an Ingress's `backend-protocol: HTTPS`). Without it, upstream
    /// TLS is encrypted but the certificate is not verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<BackendTlsSpec>,
}

/// Upstream TLS settings (the shape of Gateway API's `BackendTLSPolicy` validation, with the
/// client certificate of Envoy Gateway's `backendTLS`, in one Secret as ingress-nginx's
/// `proxy-ssl-secret`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendTlsSpec {
    /// A Secret in the policy's namespace: `ca.crt` (PEM: the CAs the endpoints'
    /// certificates must chain to) and optionally `tls.crt` + `tls.key` (PEM: the client
    /// certificate weir presents). A missing Secret or unreadable PEM makes the Service port
    /// unavailable (its routes answer 503/500): serving it unverified would be a downgrade.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
    /// Verify the endpoint's certificate against `ca.crt` and `hostname` (default false: the
    /// Secret then only supplies the client certificate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<bool>,
    /// The DNS name the endpoint's certificate is verified against (and sent as SNI when
    /// `sni` is true); default `<service>.<namespace>.svc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub hostname: Option<String>,
    /// Send `hostname` as the TLS server name indication (default false: no SNI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<bool>,
}

/// Drop the `default` schemars derives from `#[serde(default)]` (the field is required).
fn no_default(schema: &mut schemars::Schema) {
    schema.remove("default");
}

/// A Service the policy attaches to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyTargetRef {
    /// API group of the target: `""` (core).
    #[serde(default)]
    #[schemars(length(max = 253))]
    pub group: String,
    /// Kind of the target: `Service`.
    #[schemars(length(min = 1, max = 63))]
    pub kind: String,
    /// Name of the Service, in the policy's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// A port name of the Service: the policy applies to that port only (and wins over a
    /// policy for the whole Service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub section_name: Option<String>,
}

/// Balancing policies.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum LoadBalancerType {
    /// Smooth weighted round robin (the default).
    RoundRobin,
    /// Power of two choices on requests in flight.
    LeastRequest,
    /// Uniformly random.
    Random,
    /// Consistent hash ring (needs `consistentHash`).
    RingHash,
    /// Maglev consistent hashing (needs `consistentHash`).
    Maglev,
    /// Peak EWMA of latency times requests in flight.
    #[serde(rename = "PeakEWMA")]
    PeakEwma,
}

/// How a request picks an endpoint.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.type == 'RingHash' || self.type == 'Maglev' ? has(self.consistentHash) : !has(self.consistentHash)").message("consistentHash must be set exactly when type is RingHash or Maglev")
)]
pub struct LoadBalancerSpec {
    /// The policy.
    #[serde(rename = "type")]
    pub type_: LoadBalancerType,
    /// The hash key of `RingHash` and `Maglev`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistent_hash: Option<ConsistentHashSpec>,
    /// Ramp a new endpoint's share up over a window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_start: Option<SlowStartSpec>,
    /// Below this percentage of healthy endpoints, balance over all of them (default 50;
    /// 0 disables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub panic_threshold: Option<i32>,
    /// `PeakEWMA`: decay time of the latency average (default `10s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decay: Option<String>,
}

/// Where a consistent hash's key comes from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum ConsistentHashType {
    /// A request header.
    Header,
    /// A cookie (set by weir when the request has none).
    Cookie,
    /// The client IP.
    #[serde(rename = "SourceIP")]
    SourceIp,
    /// A query parameter.
    QueryParameter,
    /// The request's path and query (nginx's `$request_uri`).
    #[serde(rename = "RequestURI")]
    RequestUri,
}

/// The key of a consistent hash: its `type`, and the settings of that type.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.type == 'Header' ? has(self.header) : !has(self.header)").message("header must be set exactly when type is Header"),
    validation = Rule::new("self.type == 'Cookie' ? has(self.cookie) : !has(self.cookie)").message("cookie must be set exactly when type is Cookie"),
    validation = Rule::new("self.type == 'QueryParameter' ? has(self.queryParameter) : !has(self.queryParameter)").message("queryParameter must be set exactly when type is QueryParameter")
)]
pub struct ConsistentHashSpec {
    /// Where the key comes from.
    #[serde(rename = "type")]
    pub type_: ConsistentHashType,
    /// `Header`: the header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<NamedKey>,
    /// `Cookie`: the cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<CookieKey>,
    /// `QueryParameter`: the parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_parameter: Option<NamedKey>,
    /// `RingHash`: ring entries in total, at least (default 1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 8_388_608))]
    pub min_ring_size: Option<i64>,
}

/// A header or query parameter name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub struct NamedKey {
    /// The name.
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
}

/// A hash cookie.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CookieKey {
    /// Cookie name.
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    /// Lifetime of the cookie weir sets (absent: a session cookie).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// `Path` of the cookie weir sets (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `SameSite` of the cookie weir sets (default: none sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_site: Option<CookieSameSite>,
    /// Mark the cookie weir sets `Secure` (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure: Option<bool>,
}

/// The `SameSite` attribute of a cookie.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum CookieSameSite {
    /// `SameSite=Strict`.
    Strict,
    /// `SameSite=Lax`.
    Lax,
    /// `SameSite=None` (browsers require `Secure` with it).
    None,
}

/// Slow start.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub struct SlowStartSpec {
    /// The ramp-up window of a new endpoint.
    pub window: String,
}

/// Active and passive health.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckSpec {
    /// Probe each endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<ActiveHealthCheck>,
    /// Eject endpoints whose answers fail (default: on, see `PassiveHealthCheck`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passive: Option<PassiveHealthCheck>,
}

/// Probe kinds.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum ActiveCheckType {
    /// An HTTP GET.
    #[serde(rename = "HTTP")]
    Http,
    /// A TCP connect.
    #[serde(rename = "TCP")]
    Tcp,
    /// gRPC health checking protocol v1.
    #[serde(rename = "GRPC")]
    Grpc,
}

/// An active check.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.type == 'HTTP' ? has(self.http) : !has(self.http)").message("http must be set exactly when type is HTTP"),
    validation = Rule::new("self.type == 'GRPC' || !has(self.grpc)").message("grpc may be set only when type is GRPC")
)]
pub struct ActiveHealthCheck {
    /// What is probed.
    #[serde(rename = "type")]
    pub type_: ActiveCheckType,
    /// `HTTP`: the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCheck>,
    /// `GRPC`: the service asked about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcCheck>,
    /// Between probes (default `3s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// A probe unanswered this long failed (default `1s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Passes in a row that bring an endpoint back (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub healthy_threshold: Option<i32>,
    /// Failures in a row that take an endpoint out (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub unhealthy_threshold: Option<i32>,
}

/// The HTTP probe.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpCheck {
    /// Request path (starts with `/`).
    #[schemars(length(min = 1, max = 1024))]
    pub path: String,
    /// Host header (default: the endpoint address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Statuses that pass (default: 200–399).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub expected_statuses: Vec<i32>,
}

/// The gRPC probe.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
pub struct GrpcCheck {
    /// The `service` of the health request (default: the server as a whole).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

/// Passive outlier detection (Envoy's names).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PassiveHealthCheck {
    /// 5xx answers in a row that eject an endpoint (default 5; 0: not counted).
    #[serde(
        default,
        rename = "consecutive5XxErrors",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 0, max = 1000))]
    pub consecutive_5xx_errors: Option<i32>,
    /// Gateway errors (connect failure, reset, timeout, 502, 503, 504) in a row that eject
    /// an endpoint (default 3; 0: not counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub consecutive_gateway_errors: Option<i32>,
    /// How often ejections are reconsidered (default `10s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// First ejection time; repeated ejections last longer (default `30s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_ejection_time: Option<String>,
    /// Most endpoints ejected at once, percent (default 50; one may always be ejected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub max_ejection_percent: Option<i32>,
    /// Turn outlier detection off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

/// Retry triggers (Envoy's `retry_on` names).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum RetryTrigger {
    /// Connecting failed.
    #[serde(rename = "connect-failure")]
    ConnectFailure,
    /// The connection failed after the request was sent, before a response.
    #[serde(rename = "reset")]
    Reset,
    /// The upstream refused the stream unprocessed.
    #[serde(rename = "refused-stream")]
    RefusedStream,
    /// Any 5xx answer.
    #[serde(rename = "5xx")]
    ServerError,
    /// 502, 503 or 504.
    #[serde(rename = "gateway-error")]
    GatewayError,
    /// No response headers within the per-retry timeout.
    #[serde(rename = "timeout")]
    Timeout,
    /// The statuses of `httpStatusCodes` (implied when any is listed).
    #[serde(rename = "retriable-status-codes")]
    RetriableStatusCodes,
}

/// When a request is sent again. Only when safe: nothing was sent, or the method is
/// idempotent and the body (if any) was buffered within 64 KiB.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetrySpec {
    /// Most retries per request (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10))]
    pub num_retries: Option<i32>,
    /// What triggers a retry (default: connect-failure, refused-stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<RetryOnSpec>,
    /// Per-retry timeout and backoff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_retry: Option<PerRetrySpec>,
    /// No retry starts later than this after the request's first attempt (a duration, e.g.
    /// `10s`; default: no limit). ingress-nginx's `proxy-next-upstream-timeout`; Envoy has no
    /// exact equivalent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Retries in flight at most this percentage of the Service's active requests (default
    /// 20; at least 3 are always allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub budget_percent: Option<i32>,
}

/// Retry triggers and statuses.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryOnSpec {
    /// Triggers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub triggers: Vec<RetryTrigger>,
    /// Statuses that trigger a retry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub http_status_codes: Vec<i32>,
}

/// Per-retry settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PerRetrySpec {
    /// Wait for response headers, per attempt (default: the request timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Exponential backoff with jitter between attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub back_off: Option<BackOffSpec>,
}

/// Backoff between attempts.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackOffSpec {
    /// First backoff (default `25ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_interval: Option<String>,
    /// Longest backoff (default 10 × base).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_interval: Option<String>,
}

/// Circuit breakers.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CircuitBreakerSpec {
    /// Most connections open to **each endpoint** at once (HTTP/1.1; default 32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub max_connections: Option<i64>,
    /// Most requests waiting for a connection to **each endpoint** (default 1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1_000_000))]
    pub max_pending_requests: Option<i64>,
    /// Most requests in flight to the Service at once (default: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100_000_000))]
    pub max_parallel_requests: Option<i64>,
    /// Most retries in flight to the Service at once (default: no limit beyond the budget).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1_000_000))]
    pub max_parallel_retries: Option<i64>,
}

/// Timeouts.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimeoutSpec {
    /// TCP timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpTimeoutSpec>,
    /// HTTP timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpTimeoutSpec>,
}

/// TCP timeouts.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TcpTimeoutSpec {
    /// Connecting to an endpoint, per attempt (default `2s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<String>,
}

/// HTTP timeouts.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpTimeoutSpec {
    /// The whole request, from arrival to the end of the response (default: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<String>,
    /// A pooled upstream connection idle this long is closed (default `60s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_idle_timeout: Option<String>,
    /// From the request being sent to the response headers arriving, per attempt (default
    /// `60s`); `retry.perRetry.timeout`, when set, is the shorter of the two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_headers_timeout: Option<String>,
}

/// What weir reports on a `BackendPolicy`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendPolicyStatus {
    /// `Accepted` (and why not: invalid values, a conflict with an older policy) and
    /// `ResolvedRefs` (every target Service and port exists).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
