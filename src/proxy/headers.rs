//! Header rules of the request path (documented for users in `ProxyConfig`):
//!
//! - hop-by-hop headers are removed both ways: `Connection` and every header it lists,
//!   `Keep-Alive`, `Proxy-Connection`, `Transfer-Encoding`, `Upgrade` (kept when tunnelling),
//!   `TE` (except `TE: trailers`, which gRPC needs);
//! - `X-Forwarded-For` / `-Proto` / `-Host`, `X-Real-IP`, `Forwarded` and the other
//!   `X-Forwarded-*` follow [`ForwardedHeaders`] (dropped and rewritten unless the peer is a
//!   trusted proxy);
//! - `X-Request-Id` follows [`RequestIdMode`] and is echoed on every response;
//! - the request target takes the form the upstream connection needs.

use std::net::{IpAddr, SocketAddr};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Uri, Version};

use super::config::{ForwardedHeaders, RequestIdMode};
use super::pipeline::ConnInfo;

pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");
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

/// Rewrites the request headers for the upstream: hop-by-hop headers, the forwarding
/// headers, `X-Request-Id`.
pub(crate) fn prepare_upstream(
    forwarded: &ForwardedHeaders,
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

    forwarding_headers(forwarded, conn, headers, host);
    headers.insert(X_REQUEST_ID.clone(), request_id.clone());
}

/// `X-Forwarded-For` / `-Proto` / `-Host`, `X-Real-IP` and `Forwarded`, by whether the peer is
/// a trusted proxy (the rules are documented on [`ForwardedHeaders`]).
fn forwarding_headers(
    forwarded: &ForwardedHeaders,
    conn: &ConnInfo,
    headers: &mut HeaderMap,
    host: &HeaderValue,
) {
    let peer = conn.peer.ip().to_canonical();
    let proto = HeaderValue::from_static(if conn.tls { "https" } else { "http" });
    if !forwarded.trusts(peer) {
        // One pass over the names: most requests carry none of the headers to drop (the
        // three weir sets and `X-Real-IP` are replaced by `insert` below anyway).
        if headers.keys().any(is_dropped_forwarding_header) {
            let dropped: Vec<HeaderName> = headers
                .keys()
                .filter(|n| is_dropped_forwarding_header(n))
                .cloned()
                .collect();
            for name in dropped {
                headers.remove(name);
            }
        }
        headers.insert(X_FORWARDED_FOR.clone(), conn.peer_ip.clone());
        headers.insert(X_FORWARDED_PROTO.clone(), proto);
        headers.insert(X_FORWARDED_HOST.clone(), host.clone());
        headers.insert(X_REAL_IP.clone(), conn.peer_ip.clone());
        return;
    }
    // Every field line, in order (a client or a chain of proxies may send several).
    let mut chain = String::new();
    for line in headers.get_all(&X_FORWARDED_FOR) {
        let Ok(line) = line.to_str() else { continue };
        for element in line.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if !chain.is_empty() {
                chain.push_str(", ");
            }
            chain.push_str(element);
        }
    }
    let client = real_ip(forwarded, peer, &chain);
    let peer_text = conn.peer_ip.to_str().unwrap_or_default();
    let joined = if chain.is_empty() {
        Some(conn.peer_ip.clone())
    } else {
        HeaderValue::try_from(format!("{chain}, {peer_text}")).ok()
    };
    headers.insert(
        X_FORWARDED_FOR.clone(),
        joined.unwrap_or_else(|| conn.peer_ip.clone()),
    );
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO.clone(), proto);
    }
    if !headers.contains_key(&X_FORWARDED_HOST) {
        headers.insert(X_FORWARDED_HOST.clone(), host.clone());
    }
    let real = if client == peer {
        conn.peer_ip.clone()
    } else {
        HeaderValue::try_from(client.to_string())
            .expect("invariant: an IP address is a valid header value")
    };
    headers.insert(X_REAL_IP.clone(), real);
}

/// Forwarding headers a client that is not a trusted proxy may not pass on: `Forwarded`,
/// `X-Real-IP` and every `X-Forwarded-*` but the three weir overwrites.
fn is_dropped_forwarding_header(name: &HeaderName) -> bool {
    *name == FORWARDED
        || (name.as_str().starts_with("x-forwarded-")
            && *name != X_FORWARDED_FOR
            && *name != X_FORWARDED_PROTO
            && *name != X_FORWARDED_HOST)
}

/// The client address behind trusted proxies (nginx `realip`, `real_ip_recursive on`): from
/// the peer, step left through `chain` (the incoming `X-Forwarded-For` elements) while the
/// address reached is a trusted proxy; stop at an element that is not an IP address.
fn real_ip(forwarded: &ForwardedHeaders, peer: IpAddr, chain: &str) -> IpAddr {
    let mut client = peer;
    for element in chain.rsplit(',').map(str::trim) {
        if !forwarded.trusts(client) {
            break;
        }
        match parse_forwarded_ip(element) {
            Some(ip) => client = ip,
            None => break,
        }
    }
    client
}

/// An `X-Forwarded-For` element: an address, or an address with a port (`[::1]:80`).
fn parse_forwarded_ip(element: &str) -> Option<IpAddr> {
    element
        .parse::<IpAddr>()
        .or_else(|_| element.parse::<SocketAddr>().map(|a| a.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
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

    fn trusting(nets: &[&str]) -> ForwardedHeaders {
        ForwardedHeaders {
            trusted_proxies: nets.iter().map(|n| n.parse().expect("cidr")).collect(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn real_ip_is_the_first_untrusted_address_from_the_right() {
        let f = trusting(&["10.0.0.0/8", "127.0.0.0/8"]);
        let peer = ip("127.0.0.1");
        // The chain a client and two trusted proxies built: the client is the first address
        // from the right that is not a proxy; what it claimed to its left is ignored.
        let chain = "198.51.100.1, 203.0.113.9, 10.1.1.1, 10.2.2.2";
        assert_eq!(real_ip(&f, peer, chain), ip("203.0.113.9"));
        // Only trusted proxies: the leftmost.
        assert_eq!(real_ip(&f, peer, "10.9.9.9, 10.1.1.1"), ip("10.9.9.9"));
        // Nothing forwarded: the peer.
        assert_eq!(real_ip(&f, peer, ""), peer);
        // Garbage stops the walk at the last trusted address.
        assert_eq!(
            real_ip(&f, peer, "203.0.113.9, unknown, 10.1.1.1"),
            ip("10.1.1.1")
        );
        // Ports and brackets are stripped, IPv4-mapped addresses read as IPv4.
        assert_eq!(real_ip(&f, peer, "[2001:db8::1]:443"), ip("2001:db8::1"));
        assert_eq!(real_ip(&f, peer, "203.0.113.9:5555"), ip("203.0.113.9"));
        assert_eq!(real_ip(&f, peer, "::ffff:203.0.113.9"), ip("203.0.113.9"));
        // An untrusted peer's chain is not looked at.
        assert_eq!(real_ip(&f, ip("192.0.2.1"), "203.0.113.9"), ip("192.0.2.1"));
    }

    #[test]
    fn untrusted_peers_lose_every_forwarding_header_but_the_ones_weir_rewrites() {
        for name in [
            "forwarded",
            "x-forwarded-port",
            "x-forwarded-prefix",
            "x-forwarded-server",
            "x-forwarded-scheme",
        ] {
            let name = HeaderName::from_static(name);
            assert!(is_dropped_forwarding_header(&name), "{name}");
        }
        for name in [
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-forwarded-host",
            "x-real-ip",
            "x-forwardedfor",
            "via",
        ] {
            let name = HeaderName::from_static(name);
            assert!(!is_dropped_forwarding_header(&name), "{name}");
        }
    }
}
