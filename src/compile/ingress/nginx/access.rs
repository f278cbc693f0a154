//! Access and size annotations:
//! - `whitelist-source-range` / `allowlist-source-range` (allowed CIDRs or addresses,
//!   comma-separated; ingress-nginx renamed `whitelist` to `allowlist` and reads both) and
//!   `denylist-source-range` → one `IPAccess` entry (403; the client is the connection's
//!   peer, as ingress-nginx without `use-forwarded-headers`);
//! - `proxy-body-size` (nginx sizes: `8m`, `512k`, `1g`, bytes; `0` = no limit) → `BodyLimit`
//!   (413).
//!
//! A value that cannot be read fails closed: an access list that cannot be read must not
//! open the routes, and a body limit that cannot be read must not lift the limit.

use super::{Context, Phase, Translation, Verdict};
use crate::api::httpfilter::{BodyLimitFilter, FilterEntry, FilterType, IpAccessFilter};
use crate::net::Cidr;

/// Allow-list annotations (both spellings work).
const ALLOW: [&str; 2] = ["whitelist-source-range", "allowlist-source-range"];
const DENY: &str = "denylist-source-range";
const BODY_SIZE: &str = "proxy-body-size";

/// Read the family's annotations into `t`.
pub(super) fn translate(ctx: &Context<'_>, t: &mut Translation) {
    let mut access = IpAccessFilter::default();
    let mut from = Vec::new();
    for name in ALLOW.into_iter().chain([DENY]) {
        let Some(value) = ctx.get(name) else {
            continue;
        };
        match cidrs(value) {
            Ok(list) => {
                let into = if name == DENY {
                    &mut access.deny
                } else {
                    &mut access.allow
                };
                into.extend(list);
                from.push(name);
                let to = if name == DENY {
                    "IPAccess filter (deny; 403)"
                } else {
                    "IPAccess filter (allow; others get 403)"
                };
                t.found(name, value, Verdict::Translated(to.to_owned()));
            }
            Err(why) => t.found(
                name,
                value,
                Verdict::Invalid {
                    why,
                    fails_closed: true,
                },
            ),
        }
    }
    if !access.allow.is_empty() || !access.deny.is_empty() {
        t.entry(
            from,
            Phase::Access,
            FilterEntry {
                ip_access: Some(access),
                ..FilterEntry::new(FilterType::IpAccess)
            },
        );
    }
    if let Some(value) = ctx.get(BODY_SIZE) {
        match nginx_size(value) {
            Some(0) => t.found(
                BODY_SIZE,
                value,
                Verdict::Translated("no body limit (0)".to_owned()),
            ),
            Some(n) => {
                t.found(
                    BODY_SIZE,
                    value,
                    Verdict::Translated(format!("BodyLimit filter ({n} bytes; 413 over it)")),
                );
                t.entry(
                    vec![BODY_SIZE],
                    Phase::Body,
                    FilterEntry {
                        body_limit: Some(BodyLimitFilter {
                            max_request_bytes: i64::try_from(n).unwrap_or(i64::MAX),
                        }),
                        ..FilterEntry::new(FilterType::BodyLimit)
                    },
                );
            }
            None => t.found(
                BODY_SIZE,
                value,
                Verdict::Invalid {
                    why: format!(
                        "{value:?} is not an nginx size (e.g. 8m, 512k, 1g, 1024; 0 = no limit)"
                    ),
                    fails_closed: true,
                },
            ),
        }
    }
}

/// CIDRs (or bare addresses) separated by commas, checked and kept as written.
pub(super) fn cidrs(value: &str) -> Result<Vec<String>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<Cidr>()
                .map(|_| s.to_owned())
                .map_err(|e| format!("{s:?}: {e}"))
        })
        .collect()
}

/// An nginx size: bytes, or a number with `k`, `m` or `g` (either case), powers of 1024.
pub(super) fn nginx_size(value: &str) -> Option<u64> {
    let v = value.trim();
    let (digits, unit) = match v.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&v[..i], c.to_ascii_lowercase()),
        _ => (v, 'b'),
    };
    let n: u64 = digits.parse().ok()?;
    let scale: u64 = match unit {
        'b' => 1,
        'k' => 1 << 10,
        'm' => 1 << 20,
        'g' => 1 << 30,
        _ => return None,
    };
    n.checked_mul(scale)
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn nginx_sizes_are_powers_of_1024() {
        for (v, n) in [
            ("1024", 1024),
            ("8m", 8 << 20),
            ("512K", 512 << 10),
            ("1g", 1 << 30),
            ("0", 0),
        ] {
            assert_eq!(nginx_size(v), Some(n), "{v}");
        }
        for v in ["", "m", "8x", "-1", "1.5m", "8mb"] {
            assert_eq!(nginx_size(v), None, "{v:?}");
        }
    }

    #[test]
    fn source_ranges_are_cidrs_or_addresses() {
        assert_eq!(cidrs("10.0.0.0/8, 192.168.1.7 ,").map(|c| c.len()), Ok(2));
        assert!(cidrs("10.0.0.0/33").is_err());
    }

    #[test]
    fn both_allow_spellings_and_the_deny_list_make_one_entry() {
        let t = translate_only(&[
            ("whitelist-source-range", "10.0.0.0/8"),
            ("allowlist-source-range", "192.168.0.1"),
            ("denylist-source-range", "10.1.0.0/16"),
        ]);
        assert_eq!(t.entries.len(), 1);
        let access = t.entries[0].entry.ip_access.as_ref().expect("IPAccess");
        assert_eq!(access.allow, ["10.0.0.0/8", "192.168.0.1"]);
        assert_eq!(access.deny, ["10.1.0.0/16"]);
        assert!(matches!(
            verdict(&t, "denylist-source-range"),
            Verdict::Translated(_)
        ));
    }

    #[test]
    fn unreadable_values_fail_closed() {
        let t = translate_only(&[("proxy-body-size", "8mb"), ("denylist-source-range", "x")]);
        for name in ["proxy-body-size", "denylist-source-range"] {
            assert!(matches!(
                verdict(&t, name),
                Verdict::Invalid {
                    fails_closed: true,
                    ..
                }
            ));
        }
        assert!(t.entries.is_empty());
    }
}
