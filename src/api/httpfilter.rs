//! `HTTPFilter` (weir.dev/v1alpha1): an ordered list of typed filters a route runs on every
//! request, attached to Ingresses with the `weir.dev/filters` annotation (and later to
//! Gateway API routes with an `ExtensionRef`).
//!
//! These are the user-facing types: what the API server validates (the generated schema and
//! its CEL rules) and what compile reads. Compile (`crate::compile::filters`) turns each entry
//! into a validated [`crate::snapshot::Filter`]; nothing here is used per request. The first
//! four filter kinds follow the Gateway API's HTTPRoute filters field for field.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// What an `HTTPFilter` declares: filters, run in list order on the request (and in reverse
/// order on the response).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "weir.dev",
    version = "v1alpha1",
    kind = "HTTPFilter",
    plural = "httpfilters",
    shortname = "hf",
    namespaced,
    status = "HTTPFilterStatus",
    printcolumn = r#"{"name":"Filters","type":"string","jsonPath":".spec.filters[*].type"}"#,
    printcolumn = r#"{"name":"Accepted","type":"string","jsonPath":".status.conditions[?(@.type==\"Accepted\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Accepted\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.filters)").message("spec.filters is required"))]
pub struct HTTPFilterSpec {
    /// The filters, in order. Each entry names its `type` and sets exactly the field of that
    /// type. (Defaulted when absent so that such an object decodes and gets a condition.)
    #[serde(default)]
    #[schemars(length(min = 1, max = 32), transform = no_default)]
    pub filters: Vec<FilterEntry>,
}

/// Drop the `default` schemars derives from `#[serde(default)]`: the API server refuses a
/// default that fails the field's own `minItems`, and the field is required there.
fn no_default(schema: &mut schemars::Schema) {
    schema.remove("default");
}

/// The filter kinds.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum FilterType {
    /// Set, add and remove request headers (Gateway API `RequestHeaderModifier`).
    RequestHeaderModifier,
    /// Set, add and remove response headers (Gateway API `ResponseHeaderModifier`).
    ResponseHeaderModifier,
    /// Answer with a redirect (Gateway API `RequestRedirect`).
    RequestRedirect,
    /// Rewrite host and path before forwarding (Gateway API `URLRewrite`).
    #[serde(rename = "URLRewrite")]
    UrlRewrite,
    /// Cross-origin resource sharing: preflight answers and response headers.
    #[serde(rename = "CORS")]
    Cors,
    /// Token-bucket rate limit: 429 with `Retry-After` when the bucket is empty.
    RateLimit,
    /// Allow or deny by client address (CIDR lists).
    #[serde(rename = "IPAccess")]
    IpAccess,
    /// HTTP Basic authentication against htpasswd lines in a Secret.
    BasicAuth,
    /// Ask an authentication Service (a subrequest) before forwarding.
    ExternalAuth,
    /// Send a copy of requests to another Service, without waiting for it.
    RequestMirror,
    /// Refuse request bodies larger than a limit (413).
    BodyLimit,
    /// Answer for a backend without endpoints, and replace chosen error responses, from
    /// another Service (ingress-nginx `default-backend` and `custom-http-errors`).
    ErrorPages,
    /// At most so many requests of one client address in flight at once (503 past it).
    ConcurrencyLimit,
}

impl FilterType {
    /// Every type, in declaration order.
    pub const ALL: [FilterType; 13] = [
        FilterType::RequestHeaderModifier,
        FilterType::ResponseHeaderModifier,
        FilterType::RequestRedirect,
        FilterType::UrlRewrite,
        FilterType::Cors,
        FilterType::RateLimit,
        FilterType::IpAccess,
        FilterType::BasicAuth,
        FilterType::ExternalAuth,
        FilterType::RequestMirror,
        FilterType::BodyLimit,
        FilterType::ErrorPages,
        FilterType::ConcurrencyLimit,
    ];

    /// The name in manifests (`URLRewrite`, `CORS`, …).
    pub fn name(self) -> &'static str {
        match self {
            FilterType::RequestHeaderModifier => "RequestHeaderModifier",
            FilterType::ResponseHeaderModifier => "ResponseHeaderModifier",
            FilterType::RequestRedirect => "RequestRedirect",
            FilterType::UrlRewrite => "URLRewrite",
            FilterType::Cors => "CORS",
            FilterType::RateLimit => "RateLimit",
            FilterType::IpAccess => "IPAccess",
            FilterType::BasicAuth => "BasicAuth",
            FilterType::ExternalAuth => "ExternalAuth",
            FilterType::RequestMirror => "RequestMirror",
            FilterType::BodyLimit => "BodyLimit",
            FilterType::ErrorPages => "ErrorPages",
            FilterType::ConcurrencyLimit => "ConcurrencyLimit",
        }
    }

    /// The entry field that carries this type's settings (`urlRewrite`, `cors`, …).
    pub fn field(self) -> &'static str {
        match self {
            FilterType::RequestHeaderModifier => "requestHeaderModifier",
            FilterType::ResponseHeaderModifier => "responseHeaderModifier",
            FilterType::RequestRedirect => "requestRedirect",
            FilterType::UrlRewrite => "urlRewrite",
            FilterType::Cors => "cors",
            FilterType::RateLimit => "rateLimit",
            FilterType::IpAccess => "ipAccess",
            FilterType::BasicAuth => "basicAuth",
            FilterType::ExternalAuth => "externalAuth",
            FilterType::RequestMirror => "requestMirror",
            FilterType::BodyLimit => "bodyLimit",
            FilterType::ErrorPages => "errorPages",
            FilterType::ConcurrencyLimit => "concurrencyLimit",
        }
    }

    /// Whether the filter controls access: when it cannot be compiled, the routes using it
    /// answer 500 rather than serve without it (fail closed).
    pub fn controls_access(self) -> bool {
        matches!(
            self,
            FilterType::BasicAuth
                | FilterType::ExternalAuth
                | FilterType::IpAccess
                | FilterType::RateLimit
                | FilterType::ConcurrencyLimit
        )
    }
}

/// One filter: its type, and the settings of that type (exactly one field, the one `type`
/// names; the API server enforces it with the CEL rules below, compile checks it again for
/// manifests that never met an API server).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.type == 'RequestHeaderModifier' ? has(self.requestHeaderModifier) : !has(self.requestHeaderModifier)").message("requestHeaderModifier must be set exactly when type is RequestHeaderModifier"),
    validation = Rule::new("self.type == 'ResponseHeaderModifier' ? has(self.responseHeaderModifier) : !has(self.responseHeaderModifier)").message("responseHeaderModifier must be set exactly when type is ResponseHeaderModifier"),
    validation = Rule::new("self.type == 'RequestRedirect' ? has(self.requestRedirect) : !has(self.requestRedirect)").message("requestRedirect must be set exactly when type is RequestRedirect"),
    validation = Rule::new("self.type == 'URLRewrite' ? has(self.urlRewrite) : !has(self.urlRewrite)").message("urlRewrite must be set exactly when type is URLRewrite"),
    validation = Rule::new("self.type == 'CORS' ? has(self.cors) : !has(self.cors)").message("cors must be set exactly when type is CORS"),
    validation = Rule::new("self.type == 'RateLimit' ? has(self.rateLimit) : !has(self.rateLimit)").message("rateLimit must be set exactly when type is RateLimit"),
    validation = Rule::new("self.type == 'IPAccess' ? has(self.ipAccess) : !has(self.ipAccess)").message("ipAccess must be set exactly when type is IPAccess"),
    validation = Rule::new("self.type == 'BasicAuth' ? has(self.basicAuth) : !has(self.basicAuth)").message("basicAuth must be set exactly when type is BasicAuth"),
    validation = Rule::new("self.type == 'ExternalAuth' ? has(self.externalAuth) : !has(self.externalAuth)").message("externalAuth must be set exactly when type is ExternalAuth"),
    validation = Rule::new("self.type == 'RequestMirror' ? has(self.requestMirror) : !has(self.requestMirror)").message("requestMirror must be set exactly when type is RequestMirror"),
    validation = Rule::new("self.type == 'BodyLimit' ? has(self.bodyLimit) : !has(self.bodyLimit)").message("bodyLimit must be set exactly when type is BodyLimit"),
    validation = Rule::new("self.type == 'ErrorPages' ? has(self.errorPages) : !has(self.errorPages)").message("errorPages must be set exactly when type is ErrorPages"),
    validation = Rule::new("self.type == 'ConcurrencyLimit' ? has(self.concurrencyLimit) : !has(self.concurrencyLimit)").message("concurrencyLimit must be set exactly when type is ConcurrencyLimit")
)]
pub struct FilterEntry {
    /// Which filter this is.
    #[serde(rename = "type")]
    pub type_: FilterType,
    /// Settings of `RequestHeaderModifier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_header_modifier: Option<HeaderFilter>,
    /// Settings of `ResponseHeaderModifier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_header_modifier: Option<HeaderFilter>,
    /// Settings of `RequestRedirect`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_redirect: Option<RequestRedirectFilter>,
    /// Settings of `URLRewrite`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_rewrite: Option<UrlRewriteFilter>,
    /// Settings of `CORS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsFilter>,
    /// Settings of `RateLimit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitFilter>,
    /// Settings of `IPAccess`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_access: Option<IpAccessFilter>,
    /// Settings of `BasicAuth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuthFilter>,
    /// Settings of `ExternalAuth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_auth: Option<ExternalAuthFilter>,
    /// Settings of `RequestMirror`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_mirror: Option<RequestMirrorFilter>,
    /// Settings of `BodyLimit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_limit: Option<BodyLimitFilter>,
    /// Settings of `ErrorPages`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_pages: Option<ErrorPagesFilter>,
    /// Settings of `ConcurrencyLimit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_limit: Option<ConcurrencyLimitFilter>,
}

impl FilterEntry {
    /// An entry of `type_` with no settings (set the one field the type names).
    pub fn new(type_: FilterType) -> Self {
        FilterEntry {
            type_,
            request_header_modifier: None,
            response_header_modifier: None,
            request_redirect: None,
            url_rewrite: None,
            cors: None,
            rate_limit: None,
            ip_access: None,
            basic_auth: None,
            external_auth: None,
            request_mirror: None,
            body_limit: None,
            error_pages: None,
            concurrency_limit: None,
        }
    }
}

/// Gateway API `HTTPHeaderFilter`: remove, then set (replace every value), then add (append).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderFilter {
    /// Headers to replace or create.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub set: Vec<HttpHeader>,
    /// Headers to append.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub add: Vec<HttpHeader>,
    /// Header names to remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub remove: Vec<String>,
}

/// A header name and value.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
pub struct HttpHeader {
    /// Header name (case-insensitive).
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    /// Header value.
    #[schemars(length(min = 1, max = 4096))]
    pub value: String,
}

/// Gateway API `HTTPRequestRedirectFilter`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestRedirectFilter {
    /// `http` or `https` (default: the request's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// Host of the `Location` (default: the request's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Port of the `Location` (default: the scheme's well-known port when `scheme` is set,
    /// else the request's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// How the path changes (default: kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathModifier>,
    /// The query of the `Location` instead of the request's, without `?` (`""`: none).
    /// Not a Gateway API field: ingress-nginx's `permanent-redirect` answers exactly its URL,
    /// without the request's query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub replace_query: Option<String>,
    /// 301, 302 (default), 303, 307 or 308.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<i32>,
}

/// Gateway API `HTTPURLRewriteFilter`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UrlRewriteFilter {
    /// The `Host` the backend gets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// How the path changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathModifier>,
}

/// Gateway API `HTTPPathModifier`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.type == 'ReplaceFullPath' ? has(self.replaceFullPath) : !has(self.replaceFullPath)").message("replaceFullPath must be set exactly when type is ReplaceFullPath"),
    validation = Rule::new("self.type == 'ReplacePrefixMatch' ? has(self.replacePrefixMatch) : !has(self.replacePrefixMatch)").message("replacePrefixMatch must be set exactly when type is ReplacePrefixMatch"),
    validation = Rule::new("self.type == 'ReplaceRegexMatch' ? has(self.replaceRegexMatch) : !has(self.replaceRegexMatch)").message("replaceRegexMatch must be set exactly when type is ReplaceRegexMatch")
)]
pub struct PathModifier {
    /// `ReplaceFullPath`, `ReplacePrefixMatch` or `ReplaceRegexMatch`.
    #[serde(rename = "type")]
    pub type_: PathModifierType,
    /// The new path (type `ReplaceFullPath`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_full_path: Option<String>,
    /// What replaces the matched prefix (type `ReplacePrefixMatch`; only on prefix routes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_prefix_match: Option<String>,
    /// What replaces the matches of a regular expression (type `ReplaceRegexMatch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_regex_match: Option<RegexMatchReplace>,
}

/// Envoy Gateway's `ReplaceRegexMatch`: every match of `pattern` in the path is replaced by
/// `substitution`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegexMatchReplace {
    /// A regular expression (the Rust `regex` crate's syntax, close to RE2: no look-around,
    /// no backreferences; matching takes linear time).
    #[schemars(length(min = 1, max = 1024))]
    pub pattern: String,
    /// The replacement: `$1`…`$9` are capture groups (one digit, as nginx reads them:
    /// `$10` is group 1 then `0`); any other `$` is literal. The result is the new path (a
    /// leading `/` is added if missing).
    #[schemars(length(max = 1024))]
    pub substitution: String,
}

/// Gateway API `HTTPPathModifierType`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum PathModifierType {
    /// Replace the whole path.
    ReplaceFullPath,
    /// Replace the part the route's prefix matched.
    ReplacePrefixMatch,
    /// Replace the matches of a regular expression (Envoy Gateway's extension).
    ReplaceRegexMatch,
}

/// Cross-origin resource sharing (Gateway API `HTTPCORSFilter` fields).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CorsFilter {
    /// Allowed origins: exact (`https://app.example.com`), a wildcard host
    /// (`https://*.example.com`) or `*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub allow_origins: Vec<String>,
    /// Allowed methods (`*` for any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub allow_methods: Vec<String>,
    /// Allowed request headers (`*` for any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub allow_headers: Vec<String>,
    /// Response headers the browser may expose.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub expose_headers: Vec<String>,
    /// Whether credentials are allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
    /// How long (seconds) a preflight answer may be cached (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_age: Option<i32>,
}

/// Token-bucket rate limit.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitFilter {
    /// Tokens added per `unit`.
    #[schemars(range(min = 1), extend("format" = "int32"))]
    pub requests: u32,
    /// `Second`, `Minute` or `Hour`.
    pub unit: RateLimitUnit,
    /// Bucket size (default: `requests`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1), extend("format" = "int32"))]
    pub burst: Option<u32>,
    /// What a bucket is kept per (default: the client address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<RateLimitKey>,
    /// The status of a refused request (default 429; ingress-nginx's `limit-req-status-code`
    /// is 503).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 400, max = 599))]
    pub status_code: Option<i32>,
    /// Client CIDRs (or addresses) the limit does not apply to (ingress-nginx's
    /// `limit-whitelist`); the client is the connection's peer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1024))]
    pub exempt: Vec<String>,
}

/// A limit on the requests of one client address in flight at once (ingress-nginx's
/// `limit-connections`): a request counts from its request phase until its response has been
/// sent (or abandoned); past `max` the request is answered `statusCode` at once.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConcurrencyLimitFilter {
    /// Requests of one client address in flight at once, at most.
    #[schemars(range(min = 1), extend("format" = "int32"))]
    pub max: u32,
    /// The status of a refused request (default 503, ingress-nginx's
    /// `limit-conn-status-code`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 400, max = 599))]
    pub status_code: Option<i32>,
    /// Client CIDRs (or addresses) the limit does not apply to (ingress-nginx's
    /// `limit-whitelist`); the client is the connection's peer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1024))]
    pub exempt: Vec<String>,
}

/// Rate-limit time unit.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum RateLimitUnit {
    /// Per second.
    Second,
    /// Per minute.
    Minute,
    /// Per hour.
    Hour,
}

/// What a rate-limit bucket is kept per.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.type == 'Header' ? has(self.header) : !has(self.header)").message("header must be set exactly when type is Header")
)]
pub struct RateLimitKey {
    /// `ClientIP`, `Header` or `Route` (one bucket for the route).
    #[serde(rename = "type")]
    pub type_: RateLimitKeyType,
    /// The header whose value keys the bucket (type `Header`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<HeaderNameRef>,
}

/// Rate-limit key kinds.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum RateLimitKeyType {
    /// One bucket per client address.
    #[serde(rename = "ClientIP")]
    ClientIp,
    /// One bucket per value of a request header.
    Header,
    /// One bucket for every request of the route.
    Route,
}

/// A header, by name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
pub struct HeaderNameRef {
    /// Header name.
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
}

/// Allow or deny by client address.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IpAccessFilter {
    /// When set, only these CIDRs (or addresses) are allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1024))]
    pub allow: Vec<String>,
    /// These CIDRs (or addresses) are refused (deny wins over allow).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1024))]
    pub deny: Vec<String>,
    /// How many proxies in front of weir append to `X-Forwarded-For`: the client is the
    /// address that many hops from the right (0: the connection's peer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 16), extend("format" = "int32"))]
    pub trusted_hops: Option<u32>,
    /// ingress-nginx's `satisfy: any`: a client in `allow` skips the `BasicAuth` and
    /// `ExternalAuth` filters after this one, and a client not in it goes on to them instead
    /// of a 403 (it must pass every one of them; when none follows, it gets the 403 at the
    /// end of the chain). A `deny` match still refuses. Requires `allow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub satisfy_any: Option<bool>,
}

/// HTTP Basic authentication.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuthFilter {
    /// A Secret in the filter's namespace whose key `auth` holds htpasswd lines (bcrypt,
    /// `{SHA}`, apr1), as ingress-nginx's `auth-file`; or, with `secretType: AuthMap`, one key
    /// per user whose value is the hash.
    pub secret_ref: LocalObjectRef,
    /// How the Secret holds the users (default `AuthFile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_type: Option<BasicAuthSecretType>,
    /// The realm of `WWW-Authenticate` (default: the filter's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
}

/// How a `BasicAuth` Secret holds its users (ingress-nginx's `auth-secret-type`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum BasicAuthSecretType {
    /// Key `auth`: htpasswd lines (`user:hash`).
    AuthFile,
    /// One key per user, the value its hash.
    AuthMap,
}

/// An object in the filter's namespace, by name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
pub struct LocalObjectRef {
    /// Name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A Service port in the filter's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
pub struct BackendRef {
    /// Service name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Service port number.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
}

/// Ask an authentication Service before forwarding (ingress-nginx `auth-url`, oauth2-proxy).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalAuthFilter {
    /// The authentication Service.
    pub backend_ref: BackendRef,
    /// Path of the subrequest (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Method of the subrequest (default `GET`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Headers of the auth response copied onto the request to the backend.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub headers_to_backend: Vec<String>,
    /// Where a 401 sends the browser (`$escaped_request_uri` is replaced by the escaped
    /// original path and query, `$host` by its host, `$scheme` by `http` or `https`), as
    /// ingress-nginx's `auth-signin`.
    #[serde(default, rename = "signinURL", skip_serializing_if = "Option::is_none")]
    pub signin_url: Option<String>,
    /// How long the subrequest may take (default `2s`); a timeout refuses the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// Send a copy of requests to another Service, without waiting for it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestMirrorFilter {
    /// The Service that gets the copies.
    pub backend_ref: BackendRef,
    /// Share of requests mirrored (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub percent: Option<i32>,
    /// The `Host` the copies carry (default: the request's), as ingress-nginx's
    /// `mirror-host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub hostname: Option<String>,
}

/// Refuse request bodies larger than a limit.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BodyLimitFilter {
    /// The largest request body, in bytes.
    #[schemars(range(min = 0))]
    pub max_request_bytes: i64,
}

/// Answers from another Service (ingress-nginx's `default-backend` with
/// `custom-http-errors`). A route whose backend has no endpoint forwards the request there
/// instead (with `X-Code: 503` and the headers below, but no `X-Original-URI`); an upstream
/// answer whose status is in `statusCodes` is replaced: weir sends `GET /` (`HEAD /` for a
/// HEAD) there with `X-Code` (the status), `X-Format` (the request's `Accept`),
/// `X-Original-URI`, `X-Namespace`, `X-Service-Name`, `X-Service-Port` (the route backend's
/// Service), `X-Request-ID` and the headers of `requestHeaders`, and answers with that
/// Service's response (its status, headers and body). That request is never replaced itself.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorPagesFilter {
    /// The Service that answers.
    pub backend_ref: BackendRef,
    /// The upstream statuses replaced (400-599); empty: only requests whose backend has no
    /// endpoint go there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 200))]
    pub status_codes: Vec<i32>,
    /// More headers the requests to that Service carry (ingress-nginx's `X-Ingress-Name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_headers: Option<HeaderFilter>,
}

/// What weir reports on an `HTTPFilter`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HTTPFilterStatus {
    /// `Accepted` (and why not: reason, message with the field path).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The objects whose routes run this filter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub used_by: Vec<UsedBy>,
}

/// An object that attaches a filter.
#[derive(
    Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, schemars::JsonSchema,
)]
pub struct UsedBy {
    /// Kind (`Ingress`).
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}
