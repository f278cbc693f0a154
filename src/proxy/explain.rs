//! `weir explain`: what weir does with one request, and why. The listener it arrives on, the
//! certificate it gets, the virtual hosts tried, the route chosen and why every other route of
//! that host lost, what each filter of the chain does to this request, the backend split,
//! the clusters with their policy, and their endpoints (with health and load when a running
//! proxy answers).
//!
//! It runs the same pure pieces the request path runs — [`crate::snapshot::router`], path
//! normalization, redirects and rewrites, certificate selection, the address checks of
//! `IpAccess` — over a snapshot, so what it says is what the proxy does. Filters whose effect
//! depends on state (rate-limit buckets, credentials, an auth service's answer) are described
//! by their settings.

use std::fmt::{self, Write as _};
use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde::Serialize;

use super::config::EscapedSlashes;
use super::normalize::normalize_path;
use super::redirect::{self, RedirectRequest};
use crate::snapshot::router::{RequestHead, normalize_host, wildcard_suffix};
use crate::snapshot::{
    BackendTarget, ClusterKey, EndpointSets, Filter, HeaderModifier, Listener, ListenerProtocol,
    PathMatch, PathRewrite, Route, RouteAction, RouteMatch, RouteTable, Snapshot, StringMatch,
    VirtualHost,
};

/// The request to explain.
#[derive(Debug, Clone)]
pub struct ExplainRequest {
    /// The method.
    pub method: Method,
    /// Arrived over TLS (`https://`).
    pub https: bool,
    /// The `Host` as sent (`shop.example.com`, maybe with a port).
    pub authority: String,
    /// The port in the URL, if any (it picks the listener).
    pub port: Option<u16>,
    /// Path and query as sent.
    pub target: String,
    /// Request headers.
    pub headers: HeaderMap,
    /// The client's address (the connection's peer), for address-based filters.
    pub client_ip: Option<IpAddr>,
}

impl ExplainRequest {
    /// A request from a method, an absolute `http://` or `https://` URL, `Name: value`
    /// headers and an optional client address.
    pub fn parse(
        method: &str,
        url: &str,
        headers: &[String],
        client_ip: Option<&str>,
    ) -> Result<ExplainRequest, String> {
        let method =
            Method::from_bytes(method.as_bytes()).map_err(|_| format!("bad method {method:?}"))?;
        let uri: http::Uri = url.parse().map_err(|e| format!("bad URL {url:?}: {e}"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(format!("URL {url:?}: http:// or https:// expected")),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("URL {url:?} has no host"))?;
        let target = uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_owned();
        let mut map = HeaderMap::new();
        for h in headers {
            let (name, value) = h
                .split_once(':')
                .ok_or_else(|| format!("header {h:?}: `Name: value` expected"))?;
            let name = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| format!("header {h:?}: bad name"))?;
            let value = HeaderValue::from_str(value.trim())
                .map_err(|_| format!("header {h:?}: bad value"))?;
            map.append(name, value);
        }
        let client_ip = client_ip
            .map(|ip| ip.parse().map_err(|_| format!("bad client address {ip:?}")))
            .transpose()?;
        Ok(ExplainRequest {
            method,
            https,
            authority: authority.as_str().to_owned(),
            port: authority.port_u16(),
            target,
            headers: map,
            client_ip,
        })
    }

    /// The URL the request names.
    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}{}", self.authority, self.target)
    }
}

/// What weir does with the request.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// `METHOD URL`.
    pub request: String,
    /// One line: what the client gets.
    pub outcome: String,
    /// The listener that receives it (`None`: no listener of that scheme and port).
    pub listener: Option<ListenerChoice>,
    /// The certificate of an HTTPS request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// The path routing sees, when normalization changed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub normalized_path: Option<String>,
    /// The virtual hosts tried, in lookup order.
    pub virtual_hosts: Vec<HostStep>,
    /// The routes of the virtual host that served it (or of the last one tried), best first,
    /// each with its verdict.
    pub routes: Vec<RouteVerdict>,
    /// The route chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The filter chain, in request order, with what each does to this request.
    pub filters: Vec<FilterStep>,
    /// The backends and their share of requests.
    pub backends: Vec<BackendShare>,
    /// The clusters the backends (and filters) send to.
    pub clusters: Vec<ClusterView>,
}

/// The listener that receives the request.
#[derive(Debug, Clone, Serialize)]
pub struct ListenerChoice {
    /// Its name.
    pub name: String,
    /// Its address.
    pub address: String,
    /// Why this one.
    pub why: String,
}

/// One virtual host lookup.
#[derive(Debug, Clone, Serialize)]
pub struct HostStep {
    /// What was looked up (`exact shop.example.com`, `wildcard *.example.com`, `any host`,
    /// `default route`).
    pub lookup: String,
    /// What came of it.
    pub result: String,
}

/// A route and why it won or lost.
#[derive(Debug, Clone, Serialize)]
pub struct RouteVerdict {
    /// Route name.
    pub name: String,
    /// Its match, in words.
    #[serde(rename = "match")]
    pub matches: String,
    /// `chosen`, `lost` (it matches, but a better route does too) or `no match`.
    pub verdict: &'static str,
    /// Why.
    pub why: String,
}

/// One filter of the chain.
#[derive(Debug, Clone, Serialize)]
pub struct FilterStep {
    /// The filter kind.
    pub kind: &'static str,
    /// `route`, or the backend it belongs to.
    pub on: String,
    /// What it does to this request.
    pub effect: String,
}

/// A backend of the route.
#[derive(Debug, Clone, Serialize)]
pub struct BackendShare {
    /// Cluster name, or the direct response.
    pub target: String,
    /// Its weight.
    pub weight: u32,
    /// Its share of requests, percent.
    pub share_percent: f64,
}

/// A cluster with its policy and endpoints.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterView {
    /// Name.
    pub name: String,
    /// Why it is listed (`backend`, or the filter that sends to it).
    pub role: String,
    /// Protocol, balancer, health checks, retries, timeouts, limits (as `/config` shows them).
    pub policy: serde_json::Value,
    /// Endpoints: from the EndpointSlices (usable ones), or a running proxy's view with
    /// health and load.
    pub endpoints: Vec<serde_json::Value>,
}

/// Where endpoint details come from.
pub enum Endpoints<'a> {
    /// The endpoint sets (a manifests directory: no health, no load).
    Sets(&'a EndpointSets),
    /// A running proxy's `/clusters` view (health, in-flight and total requests).
    Live(&'a serde_json::Value),
}

/// Explains `req` against `snapshot`.
pub fn explain(
    snapshot: &Snapshot,
    endpoints: Endpoints<'_>,
    escaped_slashes: EscapedSlashes,
    req: &ExplainRequest,
) -> Explanation {
    let mut out = Explanation {
        request: format!("{} {}", req.method, req.url()),
        outcome: String::new(),
        listener: None,
        certificate: None,
        normalized_path: None,
        virtual_hosts: Vec::new(),
        routes: Vec::new(),
        route: None,
        filters: Vec::new(),
        backends: Vec::new(),
        clusters: Vec::new(),
    };
    let Some((listener, why)) = pick_listener(snapshot, req) else {
        let scheme = if req.https { "HTTPS" } else { "HTTP" };
        out.outcome = format!("no {scheme} listener for this URL: the connection is refused");
        return out;
    };
    out.listener = Some(ListenerChoice {
        name: listener.name.clone(),
        address: listener.address.to_string(),
        why,
    });
    let host = normalize_host(&req.authority).into_owned();
    if let Some(tls) = &listener.tls {
        out.certificate = Some(match tls.select(Some(&host)) {
            Some((c, choice)) => format!(
                "{} ({choice:?} match for SNI {host}; expires {})",
                c.source, c.not_after
            ),
            None => format!("self-signed (weir.invalid): no certificate covers SNI {host}"),
        });
    }
    let (raw_path, query) = match req.target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (req.target.as_str(), None),
    };
    let path = match normalize_path(raw_path, escaped_slashes) {
        Ok(p) => p.into_owned(),
        Err(e) => {
            out.outcome = format!("400: the path is refused before routing ({e})");
            return out;
        }
    };
    if path != raw_path {
        out.normalized_path = Some(path.clone());
    }
    let Some(table) = snapshot.route_tables.get(&listener.route_table) else {
        out.outcome = "404: the listener has no route table".into();
        return out;
    };
    let head = RequestHead {
        method: &req.method,
        host: &req.authority,
        path: &path,
        query,
        headers: &req.headers,
    };
    let Some((route, vhost)) = lookup(table, &head, &host, &mut out.virtual_hosts) else {
        out.outcome = "404: no route matches".into();
        return out;
    };
    debug_assert!(
        table.route(&head).is_some_and(|r| std::ptr::eq(r, route)),
        "explain picks the router's route"
    );
    out.routes = verdicts(vhost, route, &head);
    out.route = Some(route.name.clone());
    let redirect_req = RedirectRequest {
        scheme: if req.https { "https" } else { "http" },
        host: &req.authority,
        listener_port: listener.address.port(),
        path: &path,
        query,
        matched: &route.matches.path,
    };
    let mut answered = None;
    for f in &route.filters {
        let (effect, answer) = effect(f, req, &redirect_req, &route.matches.path);
        out.filters.push(FilterStep {
            kind: kind(f),
            on: "route".into(),
            effect,
        });
        if answered.is_none() {
            answered = answer;
        }
    }
    let role = |key: &ClusterKey, role: String, out: &mut Explanation| {
        if let Some(c) = out.clusters.iter_mut().find(|c| c.name == key.to_string()) {
            if !c.role.contains(&role) {
                c.role = format!("{}, {role}", c.role);
            }
            return;
        }
        out.clusters
            .push(cluster_view(snapshot, &endpoints, key, role));
    };
    for f in &route.filters {
        if let Some(key) = f.cluster() {
            role(key, format!("{} filter", kind(f)), &mut out);
        }
    }
    match &route.action {
        RouteAction::Forward(fwd) => {
            let total: u64 = fwd.backends.iter().map(|b| u64::from(b.weight)).sum();
            for (i, b) in fwd.backends.iter().enumerate() {
                let target = match &b.target {
                    BackendTarget::Cluster(key) => {
                        role(key, "backend".into(), &mut out);
                        key.to_string()
                    }
                    BackendTarget::Respond(r) => format!("direct response {}", r.status),
                };
                let share = if total == 0 {
                    0.0
                } else {
                    (f64::from(b.weight) * 1000.0 / total as f64).round() / 10.0
                };
                for f in &b.filters {
                    let (effect, _) = effect(f, req, &redirect_req, &route.matches.path);
                    out.filters.push(FilterStep {
                        kind: kind(f),
                        on: format!("backend {i} ({target})"),
                        effect,
                    });
                    if let Some(key) = f.cluster() {
                        role(key, format!("{} filter", kind(f)), &mut out);
                    }
                }
                out.backends.push(BackendShare {
                    target,
                    weight: b.weight,
                    share_percent: share,
                });
            }
            out.outcome = match answered {
                Some(answer) => answer,
                None if total == 0 => "500: every backend has weight 0".into(),
                None => match out.backends.as_slice() {
                    [one] => format!("forwarded to {}", one.target),
                    many => format!("forwarded to one of {} backends by weight", many.len()),
                },
            };
        }
        RouteAction::Redirect(r) => {
            let location = redirect::location(r, &redirect_req);
            out.outcome = answered.unwrap_or(format!("{} redirect to {location}", r.status));
        }
        RouteAction::Respond(r) => {
            out.outcome =
                answered.unwrap_or(format!("{} answered by weir: {:?}", r.status, r.body));
        }
    }
    out
}

/// The listener of the URL's scheme and port (any port when the URL has none: the first).
fn pick_listener<'s>(
    snapshot: &'s Snapshot,
    req: &ExplainRequest,
) -> Option<(&'s Listener, String)> {
    let protocol = if req.https {
        ListenerProtocol::Https
    } else {
        ListenerProtocol::Http
    };
    let mut candidates = snapshot.listeners.iter().filter(|l| l.protocol == protocol);
    match req.port {
        Some(port) => {
            let l = candidates.find(|l| l.address.port() == port)?;
            Some((l, format!("the {protocol:?} listener on port {port}")))
        }
        None => {
            let l = candidates.next()?;
            Some((
                l,
                format!("the first {protocol:?} listener (the URL names no port)"),
            ))
        }
    }
}

/// The router's lookup, step by step (see [`crate::snapshot::router`]).
fn lookup<'t>(
    table: &'t RouteTable,
    req: &RequestHead<'_>,
    host: &str,
    steps: &mut Vec<HostStep>,
) -> Option<(&'t Route, &'t VirtualHost)> {
    let vhosts = &table.virtual_hosts;
    let mut tried: Vec<(String, Option<&'t VirtualHost>)> =
        vec![(format!("exact {host}"), vhosts.exact.get(host))];
    let mut suffix = wildcard_suffix(host);
    while let Some(s) = suffix {
        tried.push((format!("wildcard *{s}"), vhosts.wildcard.get(s)));
        suffix = if vhosts.deep_wildcards {
            wildcard_suffix(&s[1..])
        } else {
            None
        };
    }
    tried.push(("any host".into(), vhosts.any.as_ref()));
    let mut last = None;
    for (lookup, vhost) in tried {
        let Some(vhost) = vhost else {
            steps.push(HostStep {
                lookup,
                result: "no such virtual host".into(),
            });
            continue;
        };
        last = Some(vhost);
        if let Some(route) = vhost.find(req) {
            steps.push(HostStep {
                lookup,
                result: format!("route {} matches", route.name),
            });
            return Some((route, vhost));
        }
        steps.push(HostStep {
            lookup,
            result: format!("none of its {} routes matches", vhost.routes.len()),
        });
    }
    match &table.default_route {
        Some(route) => {
            steps.push(HostStep {
                lookup: "default route".into(),
                result: format!("serves it ({})", route.name),
            });
            static EMPTY: std::sync::OnceLock<VirtualHost> = std::sync::OnceLock::new();
            let alone = EMPTY.get_or_init(VirtualHost::default);
            Some((route, last.unwrap_or(alone)))
        }
        None => {
            steps.push(HostStep {
                lookup: "default route".into(),
                result: "none: 404".into(),
            });
            None
        }
    }
}

/// Every route of `vhost`, with why it won or lost against `chosen`.
fn verdicts(vhost: &VirtualHost, chosen: &Route, req: &RequestHead<'_>) -> Vec<RouteVerdict> {
    let mut out: Vec<RouteVerdict> = vhost
        .routes
        .iter()
        .map(|r| {
            let (verdict, why) = if std::ptr::eq(r, chosen) {
                ("chosen", "the best route that matches".to_owned())
            } else if let Some(miss) = mismatch(&r.matches, req) {
                ("no match", miss)
            } else {
                ("lost", lost_to(&r.matches, chosen))
            };
            RouteVerdict {
                name: r.name.clone(),
                matches: describe_match(&r.matches),
                verdict,
                why,
            }
        })
        .collect();
    if !vhost.routes.iter().any(|r| std::ptr::eq(r, chosen)) {
        out.push(RouteVerdict {
            name: chosen.name.clone(),
            matches: describe_match(&chosen.matches),
            verdict: "chosen",
            why: "no route of the host matches: the table's default route".into(),
        });
    }
    out
}

/// Why `m` does not match the request (`None`: it matches).
fn mismatch(m: &RouteMatch, req: &RequestHead<'_>) -> Option<String> {
    if !m.path.matches(req.path) {
        return Some(format!(
            "path {} is not {}",
            req.path,
            describe_path(&m.path)
        ));
    }
    if let Some(method) = m.method()
        && method != req.method
    {
        return Some(format!("method {} is not {method}", req.method));
    }
    for h in m.headers() {
        let values: Vec<&str> = req
            .headers
            .get_all(&h.name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if !values.iter().any(|v| h.value.matches(v)) {
            return Some(match values.as_slice() {
                [] => format!("no header {}", h.name),
                _ => format!(
                    "header {}: {} is not {}",
                    h.name,
                    values.join(", "),
                    describe_string(&h.value)
                ),
            });
        }
    }
    for q in m.query() {
        match crate::snapshot::router::query_value(req.query, &q.name) {
            None => return Some(format!("no query parameter {}", q.name)),
            Some(v) if !q.value.matches(&v) => {
                return Some(format!(
                    "query parameter {}={v} is not {}",
                    q.name,
                    describe_string(&q.value)
                ));
            }
            Some(_) => {}
        }
    }
    None
}

/// Why a route that matches lost to `chosen` (which sorts before it).
fn lost_to(m: &RouteMatch, chosen: &Route) -> String {
    let (a, b) = (&chosen.matches, m);
    let to = &chosen.name;
    let (pa, pb) = (a.path.as_str().len(), b.path.as_str().len());
    if pa != pb {
        return format!("{to} has a longer path ({pa} characters against {pb})");
    }
    if a.path.kind() != b.path.kind() {
        return format!(
            "{to}'s path is {}, which beats {} at equal length",
            a.path.kind(),
            b.path.kind()
        );
    }
    if a.method().is_some() != b.method().is_some() {
        return format!("{to} also matches the method");
    }
    if a.headers().len() != b.headers().len() {
        return format!(
            "{to} matches more headers ({} against {})",
            a.headers().len(),
            b.headers().len()
        );
    }
    if a.query().len() != b.query().len() {
        return format!(
            "{to} matches more query parameters ({} against {})",
            a.query().len(),
            b.query().len()
        );
    }
    format!("equal precedence: {to} comes from the older object (creation order)")
}

fn describe_path(p: &PathMatch) -> String {
    format!("{} {}", p.kind(), p.as_str())
}

fn describe_string(s: &StringMatch) -> String {
    match s {
        StringMatch::Exact(v) => format!("{v:?}"),
        StringMatch::Regex(p) => format!("~ /{}/", p.as_str()),
    }
}

fn describe_match(m: &RouteMatch) -> String {
    let mut out = describe_path(&m.path);
    if let Some(method) = m.method() {
        let _ = write!(out, ", method {method}");
    }
    for h in m.headers() {
        let _ = write!(out, ", header {} {}", h.name, describe_string(&h.value));
    }
    for q in m.query() {
        let _ = write!(out, ", query {} {}", q.name, describe_string(&q.value));
    }
    out
}

fn kind(f: &Filter) -> &'static str {
    match f {
        Filter::RequestHeaderModifier(_) => "RequestHeaderModifier",
        Filter::ResponseHeaderModifier(_) => "ResponseHeaderModifier",
        Filter::RequestRedirect(_) => "RequestRedirect",
        Filter::UrlRewrite(_) => "URLRewrite",
        Filter::Cors(_) => "CORS",
        Filter::RateLimit(_) => "RateLimit",
        Filter::IpAccess(_) => "IPAccess",
        Filter::BasicAuth(_) => "BasicAuth",
        Filter::ExternalAuth(_) => "ExternalAuth",
        Filter::RequestMirror(_) => "RequestMirror",
        Filter::BodyLimit(_) => "BodyLimit",
        Filter::ErrorPages(_) => "ErrorPages",
        Filter::ConcurrencyLimit(_) => "ConcurrencyLimit",
        Filter::Deny(_) => "Deny",
    }
}

fn describe_headers(m: &HeaderModifier) -> String {
    let pair = |p: &crate::snapshot::HeaderPair| {
        format!(
            "{}: {}",
            p.name,
            String::from_utf8_lossy(p.value.as_bytes())
        )
    };
    let mut parts = Vec::new();
    if !m.remove.is_empty() {
        let names: Vec<&str> = m.remove.iter().map(HeaderName::as_str).collect();
        parts.push(format!("removes {}", names.join(", ")));
    }
    if !m.set.is_empty() {
        let set: Vec<String> = m.set.iter().map(pair).collect();
        parts.push(format!("sets {}", set.join("; ")));
    }
    if !m.add.is_empty() {
        let add: Vec<String> = m.add.iter().map(pair).collect();
        parts.push(format!("adds {}", add.join("; ")));
    }
    parts.join(", ")
}

/// What filter `f` does to the request, and the answer it gives instead of forwarding, if it
/// certainly answers.
fn effect(
    f: &Filter,
    req: &ExplainRequest,
    redirect_req: &RedirectRequest<'_>,
    matched: &PathMatch,
) -> (String, Option<String>) {
    match f {
        Filter::RequestHeaderModifier(m) => {
            (format!("request headers: {}", describe_headers(m)), None)
        }
        Filter::ResponseHeaderModifier(m) => {
            (format!("response headers: {}", describe_headers(m)), None)
        }
        Filter::RequestRedirect(r) => {
            let acme = redirect_req
                .path
                .starts_with(crate::snapshot::ACME_CHALLENGE_PREFIX);
            if r.https_upgrade && (req.https || acme) {
                let why = if req.https {
                    "it arrived over TLS"
                } else {
                    "an ACME challenge path"
                };
                return (format!("HTTPS redirect: not applied ({why})"), None);
            }
            let location = redirect::location(&r.redirect, redirect_req);
            let answer = format!("{} redirect to {location}", r.redirect.status);
            (
                format!("answers {answer}; nothing after it runs"),
                Some(answer),
            )
        }
        Filter::UrlRewrite(r) => {
            let mut parts = Vec::new();
            if let Some(p) = &r.path {
                let path = match p {
                    PathRewrite::ReplaceFullPath(p) => p.clone(),
                    PathRewrite::ReplacePrefixMatch(p) => {
                        redirect::replace_prefix(redirect_req.path, matched, p)
                    }
                    PathRewrite::ReplaceRegexMatch {
                        pattern,
                        substitution,
                    } => redirect::replace_regex(redirect_req.path, pattern, substitution),
                };
                parts.push(format!("path {path}"));
            }
            if let Some(h) = &r.hostname {
                parts.push(format!("Host {h}"));
            }
            (format!("the backend gets {}", parts.join(" and ")), None)
        }
        Filter::IpAccess(a) => {
            let source = if a.trusted_hops == 0 {
                req.client_ip
            } else {
                super::filter::ip_access::forwarded_client(&req.headers, a.trusted_hops)
            };
            match source.map(|ip| ip.to_canonical()) {
                None if a.trusted_hops > 0 => (
                    format!(
                        "403: no client address {} hops into X-Forwarded-For",
                        a.trusted_hops
                    ),
                    Some("403 forbidden (IPAccess)".into()),
                ),
                None => (
                    "decides by the client address (give --client-ip)".into(),
                    None,
                ),
                Some(ip) if super::filter::ip_access::allows(a, ip) => {
                    (format!("allows {ip}"), None)
                }
                Some(ip) if a.satisfy_any && !a.deny.iter().any(|c| c.contains(ip)) => (
                    format!("{ip} is not allowed: the authentication filters must pass it"),
                    None,
                ),
                Some(ip) => (
                    format!("denies {ip}: 403"),
                    Some(format!("403 forbidden (IPAccess denies {ip})")),
                ),
            }
        }
        Filter::BasicAuth(b) => {
            let has = req.headers.contains_key(http::header::AUTHORIZATION);
            let realm = String::from_utf8_lossy(b.challenge.as_bytes()).into_owned();
            let users = b.users.len();
            if has {
                (
                    format!("checks the Authorization header against {users} users ({realm})"),
                    None,
                )
            } else {
                (
                    format!("401 without credentials ({realm}, {users} users)"),
                    Some("401 unauthorized (BasicAuth: no credentials)".into()),
                )
            }
        }
        Filter::ExternalAuth(a) => (
            format!(
                "asks {} first ({} {}, {} ms timeout): its 2xx lets the request through",
                a.cluster,
                a.method,
                a.path,
                a.timeout.as_millis()
            ),
            None,
        ),
        Filter::RequestMirror(m) => (
            format!(
                "copies {}% of requests to {} (answers ignored)",
                m.percent, m.cluster
            ),
            None,
        ),
        Filter::BodyLimit(b) => (
            format!("bodies over {} bytes get 413", b.max_request_bytes),
            None,
        ),
        Filter::Deny(d) => (
            format!("answers {} to every request ({:?})", d.status, d.body),
            Some(format!("{} answered by weir: {:?}", d.status, d.body)),
        ),
        Filter::Cors(_)
        | Filter::RateLimit(_)
        | Filter::ErrorPages(_)
        | Filter::ConcurrencyLimit(_) => {
            let settings = serde_json::to_value(f)
                .ok()
                .and_then(|v| v.as_object()?.values().next().cloned())
                .map(|v| v.to_string())
                .unwrap_or_default();
            (settings, None)
        }
    }
}

fn cluster_view(
    snapshot: &Snapshot,
    endpoints: &Endpoints<'_>,
    key: &ClusterKey,
    role: String,
) -> ClusterView {
    let name = key.to_string();
    let policy = snapshot
        .clusters
        .get(key)
        .and_then(|c| serde_json::to_value(c).ok())
        .map(|mut v| {
            if let Some(o) = v.as_object_mut() {
                o.remove("key");
            }
            v
        })
        .unwrap_or_else(|| serde_json::json!("not in the snapshot"));
    let endpoints = match endpoints {
        Endpoints::Sets(sets) => sets
            .get(key)
            .map(|set| {
                set.endpoints
                    .iter()
                    .map(|e| {
                        serde_json::json!({
                            "address": e.address.to_string(),
                            "weight": e.weight,
                            "preferred": e.preferred,
                            "ready": true,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default(),
        Endpoints::Live(live) => live["clusters"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == name.as_str()))
            .and_then(|c| c["endpoints"].as_array().cloned())
            .unwrap_or_default(),
    };
    ClusterView {
        name,
        role,
        policy,
        endpoints,
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "request   {}", self.request)?;
        writeln!(f, "outcome   {}", self.outcome)?;
        if let Some(l) = &self.listener {
            writeln!(f, "listener  {} ({}): {}", l.name, l.address, l.why)?;
        }
        if let Some(c) = &self.certificate {
            writeln!(f, "tls       {c}")?;
        }
        if let Some(p) = &self.normalized_path {
            writeln!(f, "path      normalized to {p}")?;
        }
        if !self.virtual_hosts.is_empty() {
            writeln!(f, "\nvirtual hosts")?;
            for s in &self.virtual_hosts {
                writeln!(f, "  {:<32} {}", s.lookup, s.result)?;
            }
        }
        if !self.routes.is_empty() {
            writeln!(f, "\nroutes (best first)")?;
            for r in &self.routes {
                writeln!(f, "  {:<9} {}  [{}]", r.verdict, r.name, r.matches)?;
                writeln!(f, "            {}", r.why)?;
            }
        }
        if !self.filters.is_empty() {
            writeln!(f, "\nfilters (request order)")?;
            for s in &self.filters {
                writeln!(f, "  {} on {}: {}", s.kind, s.on, s.effect)?;
            }
        }
        if !self.backends.is_empty() {
            writeln!(f, "\nbackends")?;
            for b in &self.backends {
                writeln!(
                    f,
                    "  {}  weight {} ({}%)",
                    b.target, b.weight, b.share_percent
                )?;
            }
        }
        for c in &self.clusters {
            writeln!(f, "\ncluster {} ({})", c.name, c.role)?;
            if let Some(p) = c.policy.as_object() {
                for (k, v) in p {
                    writeln!(f, "  {k}: {v}")?;
                }
            }
            if c.endpoints.is_empty() {
                writeln!(f, "  endpoints: none (requests get 503)")?;
            }
            for e in &c.endpoints {
                writeln!(f, "  endpoint {e}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
