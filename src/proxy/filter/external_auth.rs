//! `ExternalAuth`: before the request goes on, a subrequest to the authentication cluster
//! decides (ingress-nginx `auth-url`, as oauth2-proxy expects it).
//!
//! The subrequest (the filter's method and path, no body) carries the request's headers as
//! they are at this point of the chain — `Cookie`, `Authorization`, and the `X-Forwarded-*`,
//! `X-Real-IP` and `X-Request-Id` weir set — minus the body's framing, plus what
//! ingress-nginx adds: `X-Original-URL` (`scheme://host/path?query`), `X-Original-Method`
//! and `X-Auth-Request-Redirect` (`/path?query`). Its `Host` is the request's. It goes
//! through the cluster's balancer and pools like a forwarded request
//! (`pipeline::subrequest`) and is counted in the route's counters for that cluster.
//!
//! The answer:
//! - **2xx**: the request goes on; each of `headersToBackend` is replaced by the auth
//!   answer's values, or removed when the answer has none (so a client cannot send its own
//!   `X-Auth-Request-User`).
//! - **401**: with `signinURL`, **302** to it (`$escaped_request_uri`, `$host`, `$scheme`
//!   filled in, as ingress-nginx's `auth-signin`); else 401 with the answer's
//!   `WWW-Authenticate`.
//! - **403**: 403.
//! - **any other status**: **500** — the auth service answered, but not with a decision; a
//!   misconfiguration that retrying will not fix (nginx's `auth_request` does the same).
//! - **no endpoint, connect failure, timeout** (`timeout`, default 2 s): **503** — the auth
//!   service is unavailable, which may pass; the request is refused (fail closed), never
//!   forwarded unchecked.

use std::fmt::Write as _;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Request, StatusCode, request};

use super::FilterContext;
use crate::proxy::body::Body;
use crate::proxy::error::LocalReply;
use crate::proxy::pipeline;
use crate::snapshot::ExternalAuth;

static X_ORIGINAL_URL: HeaderName = HeaderName::from_static("x-original-url");
static X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
static X_AUTH_REQUEST_REDIRECT: HeaderName = HeaderName::from_static("x-auth-request-redirect");

/// Headers of the request that do not go to the auth service: the subrequest has no body,
/// and no upgrade.
const NOT_COPIED: [HeaderName; 5] = [
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::EXPECT,
    header::UPGRADE,
    header::CONNECTION,
];

/// Asks the auth cluster about `req`; `Ok` lets it go on (with `headersToBackend` copied).
pub(super) async fn check(
    auth: &ExternalAuth,
    ctx: &FilterContext<'_>,
    req: &mut request::Parts,
) -> Result<(), Box<LocalReply>> {
    let Some(cluster) = ctx.cluster(&auth.cluster) else {
        return Err(unavailable());
    };
    let host = request_host(req);
    let scheme = if ctx.conn.tls { "https" } else { "http" };
    let target = req
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    let sub = subrequest(auth, req, scheme, &host, &target);
    let started = Instant::now();
    let answer = pipeline::subrequest(&cluster.state, sub, &host, Some(auth.timeout)).await;
    let answer = match answer {
        Ok(answer) => answer,
        Err(failure) => {
            cluster
                .stats
                .record(failure.status().as_u16(), started.elapsed());
            tracing::debug!(
                cluster = %cluster.state.name,
                kind = failure.kind(),
                "external auth unavailable; refusing the request"
            );
            return Err(unavailable());
        }
    };
    let status = answer.response.status();
    cluster.stats.record(status.as_u16(), started.elapsed());
    let headers = answer.response.headers();
    if status.is_success() {
        for name in &auth.headers_to_backend {
            req.headers.remove(name);
            for value in headers.get_all(name) {
                req.headers.append(name.clone(), value.clone());
            }
        }
        return Ok(());
    }
    let reply = match status {
        StatusCode::UNAUTHORIZED => match &auth.signin_url {
            Some(url) => signin(url, scheme, &host, &target),
            None => {
                let mut reply = denied(StatusCode::UNAUTHORIZED, "unauthorized\n");
                for v in headers.get_all(header::WWW_AUTHENTICATE) {
                    reply.headers.append(header::WWW_AUTHENTICATE, v.clone());
                }
                reply
            }
        },
        StatusCode::FORBIDDEN => denied(StatusCode::FORBIDDEN, "forbidden\n"),
        other => {
            tracing::debug!(
                cluster = %cluster.state.name,
                status = other.as_u16(),
                "external auth answered neither 2xx, 401 nor 403; refusing the request"
            );
            let mut reply = LocalReply::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                Bytes::from_static(b"authentication service failed\n"),
            );
            reply.error = "ext_auth_error";
            reply
        }
    };
    Err(Box::new(reply))
}

/// The request's host: the authority of an absolute target (HTTP/2), else `Host` (checked
/// to agree by the accept phase).
fn request_host(req: &request::Parts) -> HeaderValue {
    req.uri
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        .or_else(|| req.headers.get(header::HOST).cloned())
        .unwrap_or_else(|| HeaderValue::from_static("localhost"))
}

/// The subrequest: the filter's method and path, the request's headers (see the module
/// docs), no body.
fn subrequest(
    auth: &ExternalAuth,
    req: &request::Parts,
    scheme: &str,
    host: &HeaderValue,
    target: &str,
) -> Request<Body> {
    let mut sub = Request::new(Body::empty());
    *sub.method_mut() = auth.method.clone();
    if let Ok(uri) = auth.path.parse() {
        *sub.uri_mut() = uri;
    }
    let headers = sub.headers_mut();
    for (name, value) in &req.headers {
        if !NOT_COPIED.contains(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    let host = host.to_str().unwrap_or_default();
    if let Ok(v) = HeaderValue::from_str(&format!("{scheme}://{host}{target}")) {
        headers.insert(X_ORIGINAL_URL.clone(), v);
    }
    if let Ok(v) = HeaderValue::from_str(req.method.as_str()) {
        headers.insert(X_ORIGINAL_METHOD.clone(), v);
    }
    if let Ok(v) = HeaderValue::from_str(target) {
        headers.insert(X_AUTH_REQUEST_REDIRECT.clone(), v);
    }
    sub
}

fn denied(status: StatusCode, body: &'static str) -> LocalReply {
    let mut reply = LocalReply::text(status, Bytes::from_static(body.as_bytes()));
    reply.error = "ext_auth_denied";
    reply
}

fn unavailable() -> Box<LocalReply> {
    let mut reply = LocalReply::text(
        StatusCode::SERVICE_UNAVAILABLE,
        Bytes::from_static(b"authentication service unavailable\n"),
    );
    reply.error = "ext_auth_unavailable";
    Box::new(reply)
}

/// 302 to the sign-in URL, its variables filled in.
fn signin(url: &str, scheme: &str, host: &HeaderValue, target: &str) -> LocalReply {
    let location = url
        .replace("$escaped_request_uri", &escape(target))
        .replace("$host", host.to_str().unwrap_or_default())
        .replace("$scheme", scheme);
    let mut reply = denied(StatusCode::FOUND, "sign in\n");
    match HeaderValue::from_str(&location) {
        Ok(v) => {
            reply.headers.insert(header::LOCATION, v);
        }
        // Compile checked the URL; only a strange host could spoil it. Refuse, still closed.
        Err(_) => reply.status = StatusCode::UNAUTHORIZED,
    }
    reply
}

/// Percent-encodes everything but the unreserved characters (RFC 3986 §2.3), as nginx's
/// `set_escape_uri` makes `$escaped_request_uri`.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_uri_is_escaped_like_nginx_set_escape_uri() {
        assert_eq!(
            escape("/a b/c?x=1&y=é"),
            "%2Fa%20b%2Fc%3Fx%3D1%26y%3D%C3%A9"
        );
        assert_eq!(escape("/-._~"), "%2F-._~");
    }

    #[test]
    fn signin_fills_in_host_and_escaped_uri() {
        let host = HeaderValue::from_static("shop.example");
        let reply = signin(
            "https://auth.example/start?rd=$scheme://$host$escaped_request_uri",
            "https",
            &host,
            "/cart?id=1",
        );
        assert_eq!(reply.status, StatusCode::FOUND);
        assert_eq!(
            reply.headers[header::LOCATION],
            "https://auth.example/start?rd=https://shop.example%2Fcart%3Fid%3D1"
        );
    }
}
