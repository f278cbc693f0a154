//! `BasicAuth`: `Authorization: Basic …` checked against the compiled htpasswd users; a
//! missing, malformed or wrong credential gets **401** with `WWW-Authenticate`.
//!
//! # Cost, and the cache
//!
//! bcrypt is slow on purpose (milliseconds at the usual costs), far too slow to run on every
//! request of a steady client. A successful check is remembered in an [`AuthCache`], keyed by
//! the SHA-256 of `user \0 password` — never the password itself — so the next request with
//! the same credentials costs one hash and one set lookup. The cache belongs to the compiled
//! user list: it is shared by every route using that list, carried over snapshot swaps while
//! the list is unchanged, and dropped with it (a changed password is never served from it).
//! Only successes are cached, so it holds at most about one entry per user; it is still
//! bounded ([`MAX_CACHED`]: when full, it is cleared, and the next requests verify again).
//! Failed checks are not cached and pay the full hash every time.
//!
//! A hash check that is slow runs under `tokio::task::block_in_place` on a multi-threaded
//! runtime, so the worker's other tasks move to another thread while bcrypt runs.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use http::{StatusCode, header, request};
use md5::{Digest, Md5};
use ring::digest;
use subtle::ConstantTimeEq;

use super::FilterContext;
use crate::proxy::error::LocalReply;
use crate::snapshot::{BasicAuth, PasswordHash};

/// Most successful verifications remembered per user list.
pub(crate) const MAX_CACHED: usize = 4096;

/// Credentials that verified against one user list, by digest.
#[derive(Debug, Default)]
pub(crate) struct AuthCache {
    verified: Mutex<HashSet<[u8; 32]>>,
}

impl AuthCache {
    fn contains(&self, key: &[u8; 32]) -> bool {
        self.lock().contains(key)
    }

    fn insert(&self, key: [u8; 32]) {
        let mut set = self.lock();
        if set.len() >= MAX_CACHED {
            set.clear();
        }
        set.insert(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        // Never held across an await; a set of digests is consistent after any panic.
        self.verified.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Request phase: let a valid credential through or answer 401.
pub(crate) fn request(
    cfg: &Arc<BasicAuth>,
    ctx: &FilterContext<'_>,
    req: &request::Parts,
) -> Result<(), Box<LocalReply>> {
    let cache = ctx.state.auth_cache(cfg);
    debug_assert!(cache.is_some(), "every basic-auth filter has its cache");
    match credentials(&req.headers) {
        Some((user, password)) if check(cfg, cache, &user, &password) => Ok(()),
        _ => Err(Box::new(unauthorized(cfg))),
    }
}

/// 401 with the filter's challenge.
fn unauthorized(cfg: &BasicAuth) -> LocalReply {
    let mut reply = LocalReply::text(
        StatusCode::UNAUTHORIZED,
        Bytes::from_static(b"authentication required\n"),
    );
    reply
        .headers
        .insert(header::WWW_AUTHENTICATE, cfg.challenge.clone());
    reply
}

/// User and password of an `Authorization: Basic` header (scheme case-insensitive).
fn credentials(headers: &http::HeaderMap) -> Option<(String, Vec<u8>)> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim_ascii())
        .ok()?;
    let colon = decoded.iter().position(|b| *b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((user, decoded[colon + 1..].to_vec()))
}

/// Whether `password` is `user`'s, from the cache when it verified before.
fn check(cfg: &BasicAuth, cache: Option<&AuthCache>, user: &str, password: &[u8]) -> bool {
    let Some(hash) = cfg.users.get(user) else {
        return false;
    };
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(user.as_bytes());
    ctx.update(&[0]);
    ctx.update(password);
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    if cache.is_some_and(|c| c.contains(&key)) {
        return true;
    }
    let ok = match hash {
        PasswordHash::Bcrypt(h) => slow(|| bcrypt::verify(password, h).unwrap_or(false)),
        PasswordHash::Sha1(expected) => {
            let got = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, password);
            bool::from(got.as_ref().ct_eq(expected))
        }
        PasswordHash::Apr1 { salt, hash } => {
            let got = apr1(password, salt.as_bytes());
            bool::from(got.as_bytes().ct_eq(hash.as_bytes()))
        }
    };
    if ok && let Some(c) = cache {
        c.insert(key);
    }
    ok
}

/// Runs a slow check off the worker's task queue when the runtime allows it.
fn slow<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// The crypt alphabet of MD5-crypt's output.
const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Apache's `$apr1$` MD5-crypt of `password` with `salt`: the 22-character digest part (the
/// algorithm of FreeBSD's `md5crypt` with the magic `$apr1$`; no maintained crate implements
/// the apr1 variant, and it is these few lines).
fn apr1(password: &[u8], salt: &[u8]) -> String {
    const MAGIC: &[u8] = b"$apr1$";
    let salt = &salt[..salt.len().min(8)];
    let alt = Md5::new()
        .chain_update(password)
        .chain_update(salt)
        .chain_update(password)
        .finalize();
    let mut ctx = Md5::new();
    ctx.update(password);
    ctx.update(MAGIC);
    ctx.update(salt);
    let mut left = password.len();
    while left > 0 {
        ctx.update(&alt[..left.min(16)]);
        left = left.saturating_sub(16);
    }
    let mut i = password.len();
    while i > 0 {
        if i & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&password[..1]);
        }
        i >>= 1;
    }
    let mut fin = ctx.finalize();
    for round in 0..1000 {
        let mut c = Md5::new();
        if round & 1 == 1 {
            c.update(password);
        } else {
            c.update(fin);
        }
        if round % 3 != 0 {
            c.update(salt);
        }
        if round % 7 != 0 {
            c.update(password);
        }
        if round & 1 == 1 {
            c.update(fin);
        } else {
            c.update(password);
        }
        fin = c.finalize();
    }
    let mut out = String::with_capacity(22);
    let mut put = |v: u32, n: usize| {
        let mut v = v;
        for _ in 0..n {
            out.push(char::from(ITOA64[(v & 0x3f) as usize]));
            v >>= 6;
        }
    };
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        put(
            (u32::from(fin[a]) << 16) | (u32::from(fin[b]) << 8) | u32::from(fin[c]),
            4,
        );
    }
    put(u32::from(fin[11]), 2);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn auth(user: &str, hash: PasswordHash) -> BasicAuth {
        BasicAuth {
            challenge: http::HeaderValue::from_static("Basic realm=\"t\""),
            users: BTreeMap::from([(user.to_owned(), hash)]),
        }
    }

    #[test]
    fn apr1_matches_openssl() {
        // `openssl passwd -apr1 -salt saltsalt secret`
        assert_eq!(apr1(b"secret", b"saltsalt"), "LrttParrLPdxvgutaSXWJ0");
    }

    #[test]
    fn each_format_accepts_its_password_only() {
        let sha = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, b"secret");
        let sha = PasswordHash::Sha1(sha.as_ref().try_into().expect("20 bytes"));
        let apr = PasswordHash::Apr1 {
            salt: "saltsalt".into(),
            hash: "LrttParrLPdxvgutaSXWJ0".into(),
        };
        let bc = PasswordHash::Bcrypt(bcrypt::hash("secret", 4).expect("hash"));
        for hash in [sha, apr, bc] {
            let a = auth("alice", hash);
            assert!(check(&a, None, "alice", b"secret"));
            assert!(!check(&a, None, "alice", b"Secret"));
            assert!(!check(&a, None, "bob", b"secret"));
        }
    }

    #[test]
    fn a_verified_credential_is_cached_by_digest_and_a_wrong_one_is_not() {
        let a = auth(
            "alice",
            PasswordHash::Bcrypt(bcrypt::hash("secret", 4).expect("hash")),
        );
        let cache = AuthCache::default();
        assert!(!check(&a, Some(&cache), "alice", b"wrong"));
        assert!(cache.lock().is_empty(), "failures are not cached");
        assert!(check(&a, Some(&cache), "alice", b"secret"));
        assert_eq!(cache.lock().len(), 1);
        // Served from the cache: the same answer without the hash (an entry whose hash no
        // longer matches proves it is the cache that answers).
        let changed = auth("alice", PasswordHash::Sha1([0; 20]));
        assert!(check(&changed, Some(&cache), "alice", b"secret"));
        assert!(!check(&changed, Some(&cache), "alice", b"wrong"));
    }

    #[test]
    fn credentials_parse_the_basic_scheme_only() {
        let h = |v: &str| {
            let mut m = http::HeaderMap::new();
            m.insert(header::AUTHORIZATION, v.parse().expect("value"));
            credentials(&m)
        };
        // "alice:se:cret"
        assert_eq!(
            h("basic YWxpY2U6c2U6Y3JldA=="),
            Some(("alice".into(), b"se:cret".to_vec()))
        );
        assert_eq!(h("Bearer YWxpY2U6c2VjcmV0"), None);
        assert_eq!(h("Basic !!!"), None);
        assert_eq!(h("Basic YWxpY2U="), None, "no colon");
    }
}
