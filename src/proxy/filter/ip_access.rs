//! `IPAccess`: allow or refuse by client address — a deny entry always refuses, then a
//! non-empty allow list must contain the client. Refusals are **403**.
//!
//! # Which address is the client
//!
//! With `trustedHops: 0` (the default), the connection's peer. With `trustedHops: N`, the
//! address N entries left of the peer in `X-Forwarded-For` as weir forwards it: weir has
//! already appended the peer (phase 4 runs after the forwarding headers), so the client is
//! entry `N + 1` from the right of every `X-Forwarded-For` line taken together — the entry the
//! N-th proxy in front of weir appended. Weir keeps incoming `X-Forwarded-For` only from
//! peers in `--trusted-proxies`; from any other peer the header holds the peer alone.
//!
//! **Fail closed**: when the client cannot be read — too few entries (including an untrusted
//! peer whose incoming header weir discarded), or the chosen entry is not a bare IP address
//! (`unknown`, `host:port`, garbage) — the request is refused with 403, whatever the lists
//! say. Treating it as the peer instead would let a misconfigured chain through as the load
//! balancer's address, which an allow list often contains.

use std::net::IpAddr;

use bytes::Bytes;
use http::{StatusCode, request};

use super::FilterContext;
use crate::proxy::error::LocalReply;
use crate::proxy::headers::X_FORWARDED_FOR;
use crate::snapshot::IpAccess;

/// Request phase: let the client through or answer 403. With `satisfy_any`, a client the
/// allow list does not contain (and no deny entry matches) goes on, marked
/// [`AuthPending`]: the authentication filters decide, and the chain's end refuses it when
/// none did; an allowed one is marked [`AuthSatisfied`], which those filters skip on.
pub(crate) fn request(
    cfg: &IpAccess,
    ctx: &FilterContext<'_>,
    req: &mut request::Parts,
) -> Result<(), Box<LocalReply>> {
    let client = if cfg.trusted_hops == 0 {
        Some(ctx.conn.peer.ip())
    } else {
        forwarded_client(&req.headers, cfg.trusted_hops)
    };
    match client.map(|ip| ip.to_canonical()) {
        Some(ip) if allows(cfg, ip) => {
            if cfg.satisfy_any {
                req.extensions.insert(AuthSatisfied);
            }
            Ok(())
        }
        Some(ip) if cfg.satisfy_any && !cfg.deny.iter().any(|c| c.contains(ip)) => {
            req.extensions.insert(AuthPending);
            Ok(())
        }
        _ => Err(Box::new(forbidden())),
    }
}

/// 403.
pub(super) fn forbidden() -> LocalReply {
    LocalReply::text(StatusCode::FORBIDDEN, Bytes::from_static(b"forbidden\n"))
}

/// Request mark: an `IPAccess` with `satisfy_any` allowed the client, so the authentication
/// filters after it let the request through unchecked.
#[derive(Debug, Clone, Copy)]
pub(super) struct AuthSatisfied;

/// Request mark: an `IPAccess` with `satisfy_any` did not allow the client; an
/// authentication filter must pass it before the chain ends.
#[derive(Debug, Clone, Copy)]
pub(super) struct AuthPending;

/// Deny wins; then an empty allow list allows, a non-empty one must contain `ip`.
pub(crate) fn allows(cfg: &IpAccess, ip: IpAddr) -> bool {
    !cfg.deny.iter().any(|c| c.contains(ip))
        && (cfg.allow.is_empty() || cfg.allow.iter().any(|c| c.contains(ip)))
}

/// The entry `hops + 1` from the right of every `X-Forwarded-For` line, if it is an address.
pub(crate) fn forwarded_client(headers: &http::HeaderMap, hops: u32) -> Option<IpAddr> {
    let skip = usize::try_from(hops).ok()?;
    let lines: Vec<&str> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .map(|v| v.to_str().ok())
        .collect::<Option<_>>()?;
    lines
        .iter()
        .rev()
        .flat_map(|line| line.rsplit(','))
        .map(str::trim)
        .nth(skip)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    fn cfg(allow: &[&str], deny: &[&str]) -> IpAccess {
        IpAccess {
            allow: allow.iter().map(|s| s.parse().expect("cidr")).collect(),
            deny: deny.iter().map(|s| s.parse().expect("cidr")).collect(),
            trusted_hops: 0,
            satisfy_any: false,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn deny_wins_then_allow_must_contain() {
        let c = cfg(&["10.0.0.0/8"], &["10.1.0.0/16"]);
        assert!(allows(&c, ip("10.2.3.4")));
        assert!(!allows(&c, ip("10.1.3.4")), "deny wins over allow");
        assert!(!allows(&c, ip("192.0.2.1")), "not in the allow list");
        let deny_only = cfg(&[], &["192.0.2.0/24"]);
        assert!(allows(&deny_only, ip("198.51.100.1")));
        assert!(!allows(&deny_only, ip("192.0.2.9")));
    }

    fn xff(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(&X_FORWARDED_FOR, l.parse().expect("value"));
        }
        h
    }

    #[test]
    fn the_client_is_counted_from_the_right_over_every_line() {
        // spoofed by the client, then appended by the LB, then weir's own (the peer).
        let h = xff(&["6.6.6.6, 192.0.2.1", "10.0.0.5"]);
        assert_eq!(forwarded_client(&h, 1), Some(ip("192.0.2.1")));
        assert_eq!(forwarded_client(&h, 2), Some(ip("6.6.6.6")));
        assert_eq!(forwarded_client(&h, 3), None, "too few entries");
        assert_eq!(forwarded_client(&xff(&["unknown, 10.0.0.5"]), 1), None);
        assert_eq!(
            forwarded_client(&xff(&["192.0.2.1:443, 10.0.0.5"]), 1),
            None
        );
        assert_eq!(
            forwarded_client(&xff(&["2001:db8::1,10.0.0.5"]), 1),
            Some(ip("2001:db8::1"))
        );
    }
}
