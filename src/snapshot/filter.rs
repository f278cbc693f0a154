//! Compiled filters: the validated, typed form of every filter kind, ready for the proxy.
//!
//! Every front end compiles into these — weir's `HTTPFilter` CRD, ingress-nginx annotations,
//! Gateway API `HTTPRoute` filters — so the proxy has one implementation per kind
//! (`crate::proxy::filter`). Everything here was validated by compile: header names and
//! values, CIDRs, hashes, origins and durations are already parsed; nothing is parsed per
//! request. Large or secret-bearing settings sit behind an `Arc`, so one `HTTPFilter` attached
//! to a thousand routes is held once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use serde::{Serialize, Serializer};

use super::{
    ClusterKey, DirectResponse, PathRewrite, Redirect, serialize_header_name,
    serialize_header_names, serialize_header_value,
};
use crate::net::Cidr;

/// A typed, validated filter. Request-phase filters run in list order before the request is
/// forwarded; response-phase filters run on the response (also on answers weir makes itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type")]
pub enum Filter {
    /// Set, add and remove request headers before forwarding (Gateway API
    /// `RequestHeaderModifier`).
    RequestHeaderModifier(HeaderModifier),
    /// Set, add and remove response headers (Gateway API `ResponseHeaderModifier`).
    ResponseHeaderModifier(HeaderModifier),
    /// Answer with a redirect built from the request (Gateway API `RequestRedirect`; also the
    /// Ingress front end's HTTPS redirect).
    RequestRedirect(RequestRedirect),
    /// Rewrite the host and path the backend gets (Gateway API `URLRewrite`).
    #[serde(rename = "URLRewrite")]
    UrlRewrite(UrlRewrite),
    /// Cross-origin resource sharing.
    #[serde(rename = "CORS")]
    Cors(Arc<Cors>),
    /// Token-bucket rate limit.
    RateLimit(Arc<RateLimit>),
    /// Allow or deny by client address.
    #[serde(rename = "IPAccess")]
    IpAccess(Arc<IpAccess>),
    /// HTTP Basic authentication.
    BasicAuth(Arc<BasicAuth>),
    /// A subrequest to an authentication Service decides.
    ExternalAuth(Arc<ExternalAuth>),
    /// A copy of the request goes to another cluster.
    RequestMirror(RequestMirror),
    /// Request bodies over a limit get 413.
    BodyLimit(BodyLimit),
    /// Another cluster answers for a backend without endpoints, and instead of chosen
    /// upstream error statuses (the pipeline runs it, around phase 7).
    ErrorPages(Arc<ErrorPages>),
    /// At most so many requests of one client address in flight.
    ConcurrencyLimit(Arc<ConcurrencyLimit>),
    /// Every request is answered with this, before anything else runs: a referenced filter
    /// that is missing or invalid, failing closed.
    Deny(DirectResponse),
}

impl Filter {
    /// The cluster this filter sends requests of its own to (`ExternalAuth`'s subrequests,
    /// `RequestMirror`'s copies), if any. Compile keeps such a cluster in the snapshot for
    /// every served route whose chain names it, exactly like a backend's cluster, so its
    /// endpoints are followed and the proxy reaches it through the same pools and balancer.
    pub fn cluster(&self) -> Option<&ClusterKey> {
        match self {
            Filter::ExternalAuth(a) => Some(&a.cluster),
            Filter::RequestMirror(m) => Some(&m.cluster),
            Filter::ErrorPages(e) => Some(&e.cluster),
            _ => None,
        }
    }
}

/// Header changes, applied in the order remove, set, add (Gateway API `HTTPHeaderFilter`:
/// `set` replaces every value of the name, `add` appends one).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HeaderModifier {
    /// Headers to replace (or create).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<HeaderPair>,
    /// Headers to append.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<HeaderPair>,
    /// Headers to remove.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "serialize_header_names"
    )]
    pub remove: Vec<HeaderName>,
}

/// A validated header name and value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeaderPair {
    /// Name.
    #[serde(serialize_with = "serialize_header_name")]
    pub name: HeaderName,
    /// Value.
    #[serde(serialize_with = "serialize_header_value")]
    pub value: HeaderValue,
}

/// A redirect filter: the redirect, and which requests it answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestRedirect {
    /// The redirect (Gateway API `HTTPRequestRedirectFilter` semantics).
    #[serde(flatten)]
    pub redirect: Redirect,
    /// Answer only requests that arrived in cleartext and whose path is not under
    /// [`ACME_CHALLENGE_PREFIX`]; let every other request through. This is the HTTPS redirect
    /// of a TLS host (the Ingress front end's default, and ingress-nginx's `ssl-redirect`):
    /// one route table serves both listeners, so the condition travels with the route.
    /// `false`: answer every request (the Gateway API filter).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub https_upgrade: bool,
}

/// Paths ACME HTTP-01 challenges are served under (RFC 8555 §8.3): never redirected to
/// HTTPS, since the certificate they obtain may not exist yet.
pub const ACME_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// Gateway API `URLRewrite`: what the backend gets instead of the request's host and path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UrlRewrite {
    /// The `Host` (`:authority`) sent upstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// How the path changes (the query is kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathRewrite>,
}

/// Which origins a CORS filter allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "value")]
pub enum OriginMatch {
    /// Every origin (`*`).
    Any,
    /// One origin, `scheme://host[:port]`, lower-cased.
    Exact(String),
    /// `scheme://*.suffix[:port]`: the scheme, then any host ending in `.suffix`, then the
    /// port part (stored as prefix `scheme://` and suffix `.suffix[:port]`).
    Wildcard {
        /// `https://`.
        prefix: String,
        /// `.example.com` (with the port, if any).
        suffix: String,
    },
}

/// Cross-origin resource sharing: preflight answers and the headers of actual responses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cors {
    /// Allowed origins (empty: none).
    pub allow_origins: Vec<OriginMatch>,
    /// `Access-Control-Allow-Methods` of a preflight answer (`GET, HEAD, POST` when the
    /// filter lists none); `None` exactly when `any_method`.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "opt_value")]
    pub allow_methods: Option<HeaderValue>,
    /// Whether every method is allowed (`*`: the preflight's requested method is echoed
    /// with credentials, `*` without).
    pub any_method: bool,
    /// `Access-Control-Allow-Headers` of a preflight answer (`None`: no header listed).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "opt_value")]
    pub allow_headers: Option<HeaderValue>,
    /// Whether every request header is allowed (`*`: the requested headers are echoed with
    /// credentials, `*` without).
    pub any_header: bool,
    /// `Access-Control-Expose-Headers`.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "opt_value")]
    pub expose_headers: Option<HeaderValue>,
    /// `Access-Control-Allow-Credentials: true`.
    pub allow_credentials: bool,
    /// `Access-Control-Max-Age`, seconds.
    pub max_age: u32,
}

/// Token-bucket rate limit: `burst` tokens, refilled at `requests` per `period`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RateLimit {
    /// Tokens added per `period`.
    pub requests: u32,
    /// The refill period (1 s, 1 min or 1 h).
    #[serde(with = "super::duration_ms")]
    pub period: Duration,
    /// Bucket size.
    pub burst: u32,
    /// What a bucket is kept per.
    pub key: RateLimitKey,
    /// The status of a refused request (429 unless set otherwise).
    #[serde(skip_serializing_if = "is_429")]
    pub status: u16,
    /// Client networks the limit does not apply to (the connection's peer is checked).
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "display_seq")]
    pub exempt: Vec<Cidr>,
}

fn is_429(status: &u16) -> bool {
    *status == 429
}

/// What a rate-limit bucket is kept per.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "header")]
pub enum RateLimitKey {
    /// The client address: the connection's peer (`X-Forwarded-For` is not read).
    ClientIp,
    /// A request header's value (requests without it share one bucket).
    Header(#[serde(serialize_with = "serialize_header_name")] HeaderName),
    /// One bucket for the whole route.
    Route,
}

/// Allow or deny by client address: deny wins, then an allow list (when non-empty) must
/// contain the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IpAccess {
    /// Allowed networks (empty: every address not denied).
    #[serde(serialize_with = "display_seq")]
    pub allow: Vec<Cidr>,
    /// Denied networks.
    #[serde(serialize_with = "display_seq")]
    pub deny: Vec<Cidr>,
    /// Proxies in front of weir that append to `X-Forwarded-For`: the client is the address
    /// that many entries from the right (0: the connection's peer).
    pub trusted_hops: u32,
    /// `satisfy: any`: an allowed client skips the authentication filters after this one; a
    /// client not allowed must pass them (refused at the chain's end when none ran).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub satisfy_any: bool,
}

/// HTTP Basic authentication against htpasswd entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BasicAuth {
    /// `WWW-Authenticate` of a 401 (`Basic realm="…"`).
    #[serde(serialize_with = "serialize_header_value")]
    pub challenge: HeaderValue,
    /// Users and their password hashes, by user name (never serialized: `/config` shows the
    /// count).
    #[serde(serialize_with = "user_count")]
    pub users: BTreeMap<String, PasswordHash>,
}

/// A password hash of an htpasswd line, parsed (the formats ingress-nginx's `auth-file`
/// reads). `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordHash {
    /// bcrypt (`$2y$`, `$2a$`, `$2b$`), kept as written (the `bcrypt` crate parses it).
    Bcrypt(String),
    /// `{SHA}`: the SHA-1 digest of the password (base64 in the file).
    Sha1([u8; 20]),
    /// `$apr1$`: Apache's MD5-crypt variant.
    Apr1 {
        /// The salt (at most 8 characters).
        salt: String,
        /// The 22-character encoded digest.
        hash: String,
    },
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            PasswordHash::Bcrypt(_) => "Bcrypt",
            PasswordHash::Sha1(_) => "Sha1",
            PasswordHash::Apr1 { .. } => "Apr1",
        };
        write!(f, "{kind}(<redacted>)")
    }
}

/// A subrequest to an authentication Service decides whether the request goes on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExternalAuth {
    /// The authentication Service's cluster.
    pub cluster: ClusterKey,
    /// Path (and query) of the subrequest.
    pub path: String,
    /// Method of the subrequest.
    #[serde(serialize_with = "serialize_method")]
    pub method: Method,
    /// Headers of a 2xx auth answer copied onto the request to the backend.
    #[serde(serialize_with = "serialize_header_names")]
    pub headers_to_backend: Vec<HeaderName>,
    /// Where a 401 sends the client (`$escaped_request_uri` replaced per request).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signin_url: Option<String>,
    /// How long the subrequest may take; a timeout refuses the request (fails closed).
    #[serde(with = "super::duration_ms")]
    pub timeout: Duration,
}

/// A copy of requests goes to another cluster; the client never waits for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestMirror {
    /// Where the copies go.
    pub cluster: ClusterKey,
    /// Share of requests mirrored, 0–100.
    pub percent: u32,
    /// The `Host` of the copies (`None`: the request's).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "opt_value")]
    pub hostname: Option<HeaderValue>,
}

/// Request bodies longer than `max_request_bytes` get 413, before anything is forwarded when
/// the length is declared, else as soon as the streamed body passes the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BodyLimit {
    /// The largest request body.
    pub max_request_bytes: u64,
}

/// Answers from another cluster (see `crate::api::httpfilter::ErrorPagesFilter`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorPages {
    /// The cluster that answers.
    pub cluster: ClusterKey,
    /// The upstream statuses it replaces (sorted, 400–599).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub status_codes: Vec<u16>,
    /// Header changes of the requests sent there.
    pub request_headers: HeaderModifier,
}

impl ErrorPages {
    /// Whether an upstream answer with `status` is replaced.
    pub fn replaces(&self, status: u16) -> bool {
        self.status_codes.binary_search(&status).is_ok()
    }
}

/// At most `max` requests of one client address (the connection's peer) in flight at once;
/// the next is answered `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConcurrencyLimit {
    /// Requests in flight per client address, at most.
    pub max: u32,
    /// The status of a refused request.
    pub status: u16,
    /// Client networks the limit does not apply to.
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "display_seq")]
    pub exempt: Vec<Cidr>,
}

fn opt_value<S: Serializer>(v: &Option<HeaderValue>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => serialize_header_value(v, s),
        None => s.serialize_none(),
    }
}

fn display_seq<S: Serializer, T: std::fmt::Display>(v: &[T], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(ToString::to_string))
}

fn user_count<S: Serializer, T>(v: &BTreeMap<String, T>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("<{} users, redacted>", v.len()))
}

fn serialize_method<S: Serializer>(m: &Method, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(m.as_str())
}
