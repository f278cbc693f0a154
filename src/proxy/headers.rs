//! Header rules of the request path (documented for users in `ProxyConfig`):
//!
//! - hop-by-hop headers are removed both ways: `Connection` and every header it lists,
//!   `Keep-Alive`, `Proxy-Connection`, `Transfer-Encoding`, `Upgrade` (kept when tunnelling),
//!   `TE` (except `TE: trailers`, which gRPC needs);
//! - `X-Forwarded-For` / `-Proto` / `-Host` follow [`ForwardedHeaders`];
//! - `X-Request-Id` follows [`RequestIdMode`] and is echoed on every response;
//! - the request target takes the form the upstream connection needs.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Uri, Version};

use super::config::{ForwardedHeaders, RequestIdMode};
use super::pipeline::ConnInfo;

pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// HTTP/1.1 only sends trailers the response declared in `Trailer`; HTTP/2 gRPC servers
/// declare none, so for gRPC responses to an HTTP/1.1 client weir declares gRPC's own.
pub(crate) fn declare_grpc_trailers(headers: &mut HeaderMap) {
    let grpc = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if grpc && !headers.contains_key(header::TRAILER) {
        headers.insert(
            header::TRAILER,
            HeaderValue::from_static("grpc-status, grpc-message, grpc-status-details-bin"),
        );
    }
}

/// Turns an extended CONNECT (`:protocol websocket`) into the equivalent HTTP/1.1 upgrade
/// request: `GET`, `Upgrade: websocket`, and a fresh `Sec-WebSocket-Key` (HTTP/2 has none).
pub(crate) fn websocket_h2_to_h1<B>(req: &mut Request<B>) {
    *req.method_mut() = http::Method::GET;
    req.extensions_mut().remove::<hyper::ext::Protocol>();
    let headers = req.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    let key: [u8; 16] = rand::random();
    headers.insert(header::SEC_WEBSOCKET_KEY, base64(&key));
}

/// Standard base64 with padding (16 bytes → 24 characters).
fn base64(bytes: &[u8]) -> HeaderValue {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(ALPHABET[(n >> 18) as usize & 63]);
        out.push(ALPHABET[(n >> 12) as usize & 63]);
        out.push(if chunk.len() > 1 {
            ALPHABET[(n >> 6) as usize & 63]
        } else {
            b'='
        });
        out.push(if chunk.len() > 2 {
            ALPHABET[n as usize & 63]
        } else {
            b'='
        });
    }
    HeaderValue::from_bytes(&out).expect("invariant: base64 is a valid header value")
}

fn has_token(v: &HeaderValue, token: &str) -> bool {
    v.to_str()
        .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        .unwrap_or(false)
}

/// Removes hop-by-hop headers. With `upgrade`, keeps `Connection: upgrade` and `Upgrade`.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    // Most messages carry none: one pass over the names instead of a lookup per header.
    if !upgrade && !headers.keys().any(is_hop_by_hop) {
        return;
    }
    // Headers named in Connection are hop-by-hop too.
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        if upgrade && name == header::UPGRADE {
            continue;
        }
        headers.remove(name);
    }
    headers.remove(&KEEP_ALIVE);
    headers.remove(&PROXY_CONNECTION);
    headers.remove(header::TRANSFER_ENCODING);
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::CONNECTION);
        headers.remove(header::UPGRADE);
    }
}

/// Whether `name` is removed by [`strip_hop_by_hop`] even when `Connection` lists nothing.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
        || name == KEEP_ALIVE
        || name == PROXY_CONNECTION
}

/// The request's id: a well-formed incoming `X-Request-Id` when `mode` keeps those, else a
/// new UUID v4. Marked sensitive: unique per request, HPACK-indexing it (upstream request,
/// downstream response) only churns both dynamic tables, evicting the entries that repeat.
pub(crate) fn request_id(mode: RequestIdMode, headers: &HeaderMap) -> HeaderValue {
    let keep = match mode {
        RequestIdMode::PreserveOrGenerate => headers
            .get(&X_REQUEST_ID)
            .filter(|v| valid_request_id(v))
            .cloned(),
        RequestIdMode::Generate => None,
    };
    let mut id = keep.unwrap_or_else(new_request_id);
    id.set_sensitive(true);
    id
}

/// Rewrites the request headers for the upstream: hop-by-hop headers, `X-Forwarded-*`,
/// `X-Request-Id`.
pub(crate) fn prepare_upstream(
    forwarded: ForwardedHeaders,
    conn: &ConnInfo,
    headers: &mut HeaderMap,
    host: &HeaderValue,
    upgrade: bool,
    request_id: &HeaderValue,
) {
    // One pass over the names decides whether any hop-by-hop header (or `TE`) is there.
    if upgrade || headers.keys().any(|n| n == header::TE || is_hop_by_hop(n)) {
        let trailers = headers
            .get_all(header::TE)
            .iter()
            .any(|v| has_token(v, "trailers"));
        strip_hop_by_hop(headers, upgrade);
        headers.remove(header::TE);
        if trailers {
            headers.insert(header::TE, HeaderValue::from_static("trailers"));
        }
    }

    let peer_ip = &conn.peer_ip;
    let proto = HeaderValue::from_static(if conn.tls { "https" } else { "http" });
    match forwarded {
        ForwardedHeaders::Overwrite => {
            headers.insert(X_FORWARDED_FOR.clone(), peer_ip.clone());
            headers.insert(X_FORWARDED_PROTO.clone(), proto);
            headers.insert(X_FORWARDED_HOST.clone(), host.clone());
        }
        ForwardedHeaders::Trust => {
            let joined = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
                Some(prev) if !prev.trim().is_empty() => {
                    HeaderValue::from_str(&format!("{prev}, {}", conn.peer.ip())).ok()
                }
                _ => Some(peer_ip.clone()),
            };
            if let Some(v) = joined {
                headers.insert(X_FORWARDED_FOR.clone(), v);
            }
            if !headers.contains_key(&X_FORWARDED_PROTO) {
                headers.insert(X_FORWARDED_PROTO.clone(), proto);
            }
            if !headers.contains_key(&X_FORWARDED_HOST) {
                headers.insert(X_FORWARDED_HOST.clone(), host.clone());
            }
        }
    }
    headers.insert(X_REQUEST_ID.clone(), request_id.clone());
}

fn valid_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic())
}

/// A random UUID v4, formatted without allocation beyond the header value itself.
fn new_request_id() -> HeaderValue {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 36];
    let mut o = 0;
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out[o] = b'-';
            o += 1;
        }
        out[o] = HEX[(b >> 4) as usize];
        out[o + 1] = HEX[(b & 0x0f) as usize];
        o += 2;
    }
    HeaderValue::from_bytes(&out)
        .expect("invariant: hex digits and dashes are a valid header value")
}

/// Puts the request in the form the upstream connection needs: origin-form plus `Host` for
/// HTTP/1.1, absolute-form (`:scheme`, `:authority`) for HTTP/2.
pub(crate) fn set_request_target<B>(req: &mut Request<B>, version: Version, host: &HeaderValue) {
    match version {
        Version::HTTP_11 | Version::HTTP_10 | Version::HTTP_09 => {
            *req.version_mut() = Version::HTTP_11;
            if req.uri().authority().is_some() {
                let pq = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/");
                if let Ok(uri) = Uri::try_from(pq) {
                    *req.uri_mut() = uri;
                }
            }
            req.headers_mut().insert(header::HOST, host.clone());
        }
        _ => {
            *req.version_mut() = Version::HTTP_2;
            if req.uri().authority().is_none() {
                let mut parts = std::mem::take(req.uri_mut()).into_parts();
                parts.scheme = Some(http::uri::Scheme::HTTP);
                parts.authority = host.to_str().ok().and_then(|h| h.parse().ok());
                if parts.path_and_query.is_none() {
                    parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
                }
                if let Ok(uri) = Uri::from_parts(parts) {
                    *req.uri_mut() = uri;
                }
            } else if req.uri().scheme().is_none() {
                let mut parts = std::mem::take(req.uri_mut()).into_parts();
                parts.scheme = Some(http::uri::Scheme::HTTP);
                if let Ok(uri) = Uri::from_parts(parts) {
                    *req.uri_mut() = uri;
                }
            }
            req.headers_mut().remove(header::HOST);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_4648_vectors() {
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xff; 16]).len(), 24);
    }

    #[test]
    fn request_ids_are_uuid_v4() {
        let id = new_request_id();
        let s = id.to_str().expect("ascii");
        assert_eq!(s.len(), 36);
        assert_eq!(&s[14..15], "4");
        assert!(matches!(&s[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(new_request_id(), id);
    }

    #[test]
    fn hop_by_hop_headers_and_those_listed_in_connection_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }
}
