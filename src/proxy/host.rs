//! The request's host, and the requests refused for it (RFC 9112 §3.2, RFC 9113 §8.3.1).
//!
//! The host is the target's authority (HTTP/2 `:authority`, an HTTP/1 absolute-form target)
//! or else the `Host` header. Refused with 400 (and the connection closed), as HAProxy does:
//!
//! - more than one `Host` header;
//! - a `Host` that is not `host [ ":" port ]` (userinfo, a path, spaces, ...), or a target
//!   authority with userinfo;
//! - a `Host` naming another authority than the target (compared case-insensitively, a
//!   missing port standing for the scheme's default): which one would the backend believe?
//! - an HTTP/1.1 request without `Host` (even in absolute-form), or with an empty one.
//!
//! HTTP/1.0 may omit `Host`: such a request is routed as the empty host (the route table's
//! any-host virtual host).

use http::header::{self, HeaderValue};
use http::uri::{Authority, Scheme};
use http::{Request, Version};

use super::error::Failure;

/// The request's host, as routed and forwarded; see the module docs for what is refused.
pub(crate) fn request_host<B>(req: &Request<B>) -> Result<HeaderValue, Failure> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(Failure::BadHost("more than one Host header\n"));
    }
    let parsed = match host {
        Some(h) if !h.is_empty() => {
            Some(split_host(h.as_bytes()).ok_or(Failure::BadHost("invalid host\n"))?)
        }
        _ => None,
    };
    match (req.uri().authority(), parsed) {
        (Some(target), _) if target.as_str().contains('@') => {
            Err(Failure::BadHost("invalid host\n"))
        }
        (Some(target), Some(host)) if !same_authority(target, host, req.uri().scheme()) => {
            Err(Failure::BadHost("Host does not match the request target\n"))
        }
        (Some(_), None) if req.version() == Version::HTTP_11 => {
            Err(Failure::BadHost("missing host\n"))
        }
        (Some(target), _) => {
            HeaderValue::from_str(target.as_str()).map_err(|_| Failure::BadHost("invalid host\n"))
        }
        (None, Some(_)) => Ok(host
            .cloned()
            .expect("invariant: a parsed Host header exists")),
        (None, None) if req.version() < Version::HTTP_11 && host.is_none() => {
            Ok(HeaderValue::from_static(""))
        }
        (None, None) => Err(Failure::BadHost("missing host\n")),
    }
}

/// A `Host` value split into host and port (`None`: no `:port`, or an empty one), or `None`
/// when it is not `uri-host [ ":" port ]` (RFC 9112 §3.2, RFC 3986 §3.2.2): an IP literal in
/// brackets, or a reg-name / IPv4 address of unreserved, sub-delims and percent-escape
/// characters; the port is digits.
pub(crate) fn split_host(value: &[u8]) -> Option<(&[u8], Option<u16>)> {
    let (host, rest) = if value.first() == Some(&b'[') {
        let end = value.iter().position(|&b| b == b']')?;
        let literal = &value[1..end];
        let ok = !literal.is_empty()
            && literal
                .iter()
                .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'));
        if !ok {
            return None;
        }
        value.split_at(end + 1)
    } else {
        let end = value.iter().position(|&b| b == b':').unwrap_or(value.len());
        let (host, rest) = value.split_at(end);
        let ok = !host.is_empty()
            && host
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(&b));
        if !ok {
            return None;
        }
        (host, rest)
    };
    let port = match rest {
        [] | [b':'] => None,
        [b':', digits @ ..] if digits.iter().all(u8::is_ascii_digit) => {
            Some(std::str::from_utf8(digits).ok()?.parse::<u16>().ok()?)
        }
        _ => return None,
    };
    Some((host, port))
}

/// Whether the `Host` (split by [`split_host`]) names the same authority as the target.
fn same_authority(target: &Authority, host: (&[u8], Option<u16>), scheme: Option<&Scheme>) -> bool {
    let default = match scheme {
        Some(s) if *s == Scheme::HTTP => Some(80),
        Some(s) if *s == Scheme::HTTPS => Some(443),
        _ => None,
    };
    let (name, port) = host;
    target.host().as_bytes().eq_ignore_ascii_case(name)
        && target.port_u16().or(default) == port.or(default)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn req(version: Version, uri: &str, hosts: &[&str]) -> Request<()> {
        let mut b = Request::builder().version(version).uri(uri);
        for h in hosts {
            b = b.header(header::HOST, *h);
        }
        b.body(()).expect("request")
    }

    fn host(version: Version, uri: &str, hosts: &[&str]) -> Result<String, &'static str> {
        match request_host(&req(version, uri, hosts)) {
            Ok(v) => Ok(v.to_str().expect("ascii").to_owned()),
            Err(Failure::BadHost(why)) => Err(why.trim_end()),
            Err(other) => panic!("{other:?}"),
        }
    }

    const H10: Version = Version::HTTP_10;
    const H11: Version = Version::HTTP_11;
    const H2: Version = Version::HTTP_2;

    #[test]
    fn the_host_comes_from_the_target_or_the_host_header() {
        assert_eq!(host(H11, "/a", &["a.example"]), Ok("a.example".into()));
        assert_eq!(
            host(H11, "/a", &["a.example:8080"]),
            Ok("a.example:8080".into())
        );
        assert_eq!(host(H11, "/a", &["[::1]:80"]), Ok("[::1]:80".into()));
        assert_eq!(
            host(H11, "http://a.example/a", &["A.EXAMPLE"]),
            Ok("a.example".into())
        );
        assert_eq!(
            host(H11, "http://a.example:80/", &["a.example"]),
            Ok("a.example:80".into())
        );
        assert_eq!(
            host(H11, "https://a.example/", &["a.example:443"]),
            Ok("a.example".into())
        );
        assert_eq!(host(H2, "https://a.example/", &[]), Ok("a.example".into()));
        assert_eq!(
            host(H2, "https://a.example/", &["a.example"]),
            Ok("a.example".into())
        );
        assert_eq!(host(H2, "/", &["a.example"]), Ok("a.example".into()));
        assert_eq!(host(H10, "http://a.example/", &[]), Ok("a.example".into()));
        // HTTP/1.0 may omit Host: the empty host.
        assert_eq!(host(H10, "/a", &[]), Ok(String::new()));
    }

    #[test]
    fn refuses_what_rfc_9112_refuses() {
        assert_eq!(host(H11, "/a", &[]), Err("missing host"));
        assert_eq!(host(H11, "/a", &[""]), Err("missing host"));
        assert_eq!(host(H10, "/a", &[""]), Err("missing host"));
        assert_eq!(host(H2, "/a", &[]), Err("missing host"));
        assert_eq!(host(H11, "http://a.example/a", &[]), Err("missing host"));
        assert_eq!(
            host(H11, "/a", &["a.example", "a.example"]),
            Err("more than one Host header")
        );
        assert_eq!(
            host(H2, "/a", &["a.example", "b.example"]),
            Err("more than one Host header")
        );
        for bad in [
            "user@a.example",
            "a.example/x",
            "a example",
            "a.example:x",
            "a.example:99999",
            "[zz]",
            "[::1",
            ":80",
            "a.example?",
        ] {
            assert_eq!(host(H11, "/a", &[bad]), Err("invalid host"), "{bad}");
        }
        assert_eq!(
            host(H11, "http://u@a.example/", &["a.example"]),
            Err("invalid host")
        );
        let mismatch = Err("Host does not match the request target");
        assert_eq!(host(H11, "http://b.example/a", &["a.example"]), mismatch);
        assert_eq!(
            host(H11, "http://a.example:8080/a", &["a.example"]),
            mismatch
        );
        assert_eq!(
            host(H11, "https://a.example/a", &["a.example:80"]),
            mismatch
        );
        assert_eq!(host(H2, "https://a.example/a", &["b.example"]), mismatch);
    }

    fn reg_name() -> impl Strategy<Value = String> {
        "[A-Za-z0-9._~!$&'()*+,;=-]{1,20}"
    }

    proptest! {
        #[test]
        fn split_host_never_panics(value in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = split_host(&value);
        }

        #[test]
        fn split_host_reads_every_well_formed_host(
            name in prop_oneof![reg_name(), "\\[[0-9a-f:.]{1,20}\\]"],
            port in proptest::option::of(any::<u16>()),
        ) {
            let value = match port {
                Some(p) => format!("{name}:{p}"),
                None => name.clone(),
            };
            prop_assert_eq!(split_host(value.as_bytes()), Some((name.as_bytes(), port)));
        }

        #[test]
        fn split_host_refuses_other_characters(
            before in reg_name(),
            bad in "[@/?#\\[\\] \t\"<>\\\\^`{|}\\x00-\\x1f\\x7f]",
            after in "[a-z]{0,5}",
        ) {
            let value = format!("{before}{bad}{after}");
            prop_assert_eq!(split_host(value.as_bytes()), None);
        }

        #[test]
        fn a_host_matches_its_own_authority_in_any_case(
            name in "[a-z0-9-]{1,15}(\\.[a-z0-9-]{1,10}){0,2}",
            port in proptest::option::of(1u16..),
            https in any::<bool>(),
        ) {
            let scheme = if https { Scheme::HTTPS } else { Scheme::HTTP };
            let authority = match port {
                Some(p) => format!("{name}:{p}"),
                None => name.clone(),
            };
            let target: Authority = authority.parse().expect("authority");
            let upper = authority.to_ascii_uppercase();
            let split = split_host(upper.as_bytes()).expect("host");
            prop_assert!(same_authority(&target, split, Some(&scheme)));
            // The default port may be spelled out or not.
            let default = if https { 443 } else { 80 };
            if port.is_none() {
                let spelled = format!("{name}:{default}");
                prop_assert!(same_authority(&target, split_host(spelled.as_bytes()).expect("host"), Some(&scheme)));
            }
            // Another host or another port is another authority.
            let other = format!("x{name}");
            prop_assert!(!same_authority(&target, (other.as_bytes(), port), Some(&scheme)));
            let other_port = port.unwrap_or(default).wrapping_add(1).max(1);
            prop_assert!(!same_authority(&target, (name.as_bytes(), Some(other_port)), Some(&scheme)));
        }
    }
}
