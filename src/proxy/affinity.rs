//! Affinity keys for the hashing balancers (ring hash, Maglev): which value of a request
//! the cluster's [`HashKey`] names, hashed with [`balance::stable_hash`] (the same in every
//! proxy of a build, so a client sticks to one endpoint whichever weir replica it reaches).
//!
//! - **Header**: the first value of the header.
//! - **Cookie**: the named cookie of the `Cookie` header(s). A request without it gets a
//!   fresh random value, which is hashed as if the request had carried it, and the response
//!   sets it (`Set-Cookie: name=value; Path=path; Max-Age=ttl; HttpOnly`, then `SameSite`
//!   and `Secure` when the key asks for them; a session cookie when the ttl is zero), so the
//!   client's next requests land on the same endpoint.
//! - **Source IP**: the client address weir resolved (the peer, or the first untrusted
//!   address of `X-Forwarded-For` when the peer is a trusted proxy) — the `X-Real-IP` weir
//!   sets before the request filters; the peer's address when a filter removed it.
//! - **Query parameter**: the raw (still percent-encoded) value of the first parameter of
//!   that name.
//! - **Request URI**: the path and query, as sent upstream (after URL rewrites).
//!
//! A request without the key has no hash and is balanced by weighted random choice.

use std::net::IpAddr;

use http::Uri;
use http::header::{self, HeaderMap, HeaderValue};

use crate::balance::stable_hash;
use crate::snapshot::HashKey;

/// A request's affinity: the hash to balance by, and a cookie to set on the response.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Affinity {
    /// The key's hash (`None`: the request has no such key).
    pub(crate) hash: Option<u64>,
    /// `Set-Cookie` for a generated cookie key.
    pub(crate) set_cookie: Option<HeaderValue>,
}

/// The affinity of a request (its `headers` after weir's forwarding headers, `uri`, and
/// the connection's `peer` address) under `key`.
pub(crate) fn of(key: &HashKey, headers: &HeaderMap, uri: &Uri, peer: IpAddr) -> Affinity {
    let hashed = |bytes: &[u8]| Affinity {
        hash: Some(stable_hash(bytes)),
        set_cookie: None,
    };
    match key {
        HashKey::Header(name) => headers
            .get(name)
            .map(|v| hashed(v.as_bytes()))
            .unwrap_or_default(),
        HashKey::SourceIp => match headers.get("x-real-ip") {
            Some(ip) => hashed(ip.as_bytes()),
            None => hashed(peer.to_string().as_bytes()),
        },
        HashKey::RequestUri => hashed(
            uri.path_and_query()
                .map_or(uri.path(), |p| p.as_str())
                .as_bytes(),
        ),
        HashKey::QueryParameter(name) => query_value(uri, name)
            .map(|v| hashed(v.as_bytes()))
            .unwrap_or_default(),
        HashKey::Cookie {
            name,
            ttl,
            path,
            same_site,
            secure,
        } => match cookie_value(headers, name) {
            Some(v) => hashed(v.as_bytes()),
            None => {
                let value = new_cookie_value();
                let path = if path.is_empty() { "/" } else { path };
                let mut cookie = format!("{name}={value}; Path={path}");
                if !ttl.is_zero() {
                    cookie.push_str(&format!("; Max-Age={}", ttl.as_secs().max(1)));
                }
                cookie.push_str("; HttpOnly");
                if let Some(same_site) = same_site {
                    cookie.push_str(&format!("; SameSite={same_site}"));
                }
                if *secure {
                    cookie.push_str("; Secure");
                }
                Affinity {
                    hash: Some(stable_hash(value.as_bytes())),
                    set_cookie: HeaderValue::try_from(cookie).ok(),
                }
            }
        },
    }
}

/// The value of cookie `name` in the request's `Cookie` header lines.
fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|line| line.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// The raw value of query parameter `name` (`a` in `?a=1&b`; `b` has the empty value).
fn query_value<'a>(uri: &'a Uri, name: &str) -> Option<&'a str> {
    uri.query()?
        .split('&')
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// 128 random bits as 32 hex digits.
fn new_cookie_value() -> String {
    let bits: u128 = rand::random();
    format!("{bits:032x}")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn peer() -> IpAddr {
        "192.0.2.7".parse().expect("ip")
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(n.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    fn cookie_key(ttl: Duration) -> HashKey {
        HashKey::Cookie {
            name: "sticky".into(),
            ttl,
            path: String::new(),
            same_site: None,
            secure: false,
        }
    }

    #[test]
    fn header_values_hash_stably_and_a_missing_header_has_no_hash() {
        let key = HashKey::Header(http::HeaderName::from_static("x-user"));
        let uri = Uri::from_static("/");
        let a = of(&key, &headers(&[("x-user", "ann")]), &uri, peer());
        let b = of(&key, &headers(&[("x-user", "ann")]), &uri, peer());
        let c = of(&key, &headers(&[("x-user", "bob")]), &uri, peer());
        assert_eq!(a, b);
        assert_ne!(a.hash, c.hash);
        assert_eq!(a.hash, Some(stable_hash(b"ann")));
        assert_eq!(
            of(&key, &HeaderMap::new(), &uri, peer()),
            Affinity::default()
        );
    }

    #[test]
    fn a_present_cookie_is_hashed_without_setting_one() {
        let h = headers(&[("cookie", "a=1; sticky=v42"), ("cookie", "z=2")]);
        let got = of(
            &cookie_key(Duration::from_secs(60)),
            &h,
            &Uri::from_static("/"),
            peer(),
        );
        assert_eq!(got.hash, Some(stable_hash(b"v42")));
        assert_eq!(got.set_cookie, None);
    }

    #[test]
    fn a_missing_cookie_is_generated_hashed_and_set() {
        let uri = Uri::from_static("/");
        let got = of(
            &cookie_key(Duration::from_secs(3600)),
            &headers(&[("cookie", "other=1")]),
            &uri,
            peer(),
        );
        let set = got
            .set_cookie
            .expect("set-cookie")
            .to_str()
            .expect("ascii")
            .to_owned();
        let value = set
            .strip_prefix("sticky=")
            .and_then(|r| r.split(';').next())
            .expect("name=value first");
        assert_eq!(value.len(), 32);
        assert_eq!(
            got.hash,
            Some(stable_hash(value.as_bytes())),
            "hashed as it will be replayed"
        );
        assert!(set.ends_with("; Path=/; Max-Age=3600; HttpOnly"), "{set}");
        // Two requests without the cookie get different values.
        let other = of(&cookie_key(Duration::ZERO), &HeaderMap::new(), &uri, peer());
        assert_ne!(other.hash, got.hash);
        let session = other.set_cookie.expect("set-cookie");
        let session = session.to_str().expect("ascii");
        assert!(!session.contains("Max-Age"), "session cookie: {session}");
        let custom = HashKey::Cookie {
            name: "s".into(),
            ttl: Duration::ZERO,
            path: "/app".into(),
            same_site: None,
            secure: false,
        };
        let set = of(&custom, &HeaderMap::new(), &uri, peer())
            .set_cookie
            .expect("set");
        assert!(
            set.to_str()
                .expect("ascii")
                .ends_with("; Path=/app; HttpOnly")
        );
        let strict = HashKey::Cookie {
            name: "s".into(),
            ttl: Duration::ZERO,
            path: "/".into(),
            same_site: Some("Strict"),
            secure: true,
        };
        let set = of(&strict, &HeaderMap::new(), &uri, peer())
            .set_cookie
            .expect("set");
        assert!(
            set.to_str()
                .expect("ascii")
                .ends_with("; Path=/; HttpOnly; SameSite=Strict; Secure"),
            "{set:?}"
        );
    }

    #[test]
    fn source_ip_is_the_resolved_client_or_the_peer() {
        let uri = Uri::from_static("/");
        let got = of(
            &HashKey::SourceIp,
            &headers(&[("x-real-ip", "203.0.113.9")]),
            &uri,
            peer(),
        );
        assert_eq!(got.hash, Some(stable_hash(b"203.0.113.9")));
        let got = of(&HashKey::SourceIp, &HeaderMap::new(), &uri, peer());
        assert_eq!(got.hash, Some(stable_hash(b"192.0.2.7")));
    }

    #[test]
    fn the_request_uri_is_its_path_and_query() {
        let h = HeaderMap::new();
        let at = |u: &'static str| of(&HashKey::RequestUri, &h, &Uri::from_static(u), peer()).hash;
        assert_eq!(at("/a/b?x=1"), Some(stable_hash(b"/a/b?x=1")));
        assert_eq!(
            at("http://a.example/a/b?x=1"),
            Some(stable_hash(b"/a/b?x=1"))
        );
        assert_ne!(at("/a/b?x=1"), at("/a/b?x=2"));
    }

    #[test]
    fn query_parameters_are_matched_by_name() {
        let key = HashKey::QueryParameter("user".into());
        let h = HeaderMap::new();
        let at = |u: &'static str| of(&key, &h, &Uri::from_static(u), peer()).hash;
        assert_eq!(at("/p?a=1&user=ann&user=bob"), Some(stable_hash(b"ann")));
        assert_eq!(at("/p?user"), Some(stable_hash(b"")));
        assert_eq!(at("/p?username=ann"), None);
        assert_eq!(at("/p"), None);
    }
}
