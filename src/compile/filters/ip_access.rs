//! `IPAccess`: every `allow` and `deny` entry parsed into a [`Cidr`] here (a bare address is
//! a network of one), so the proxy only compares addresses. A filter with neither list would
//! do nothing and is refused as a mistake; `trustedHops` is at most 16; `satisfyAny` needs an
//! `allow` list (it says what the allow list lets skip).

use super::{FieldError, at};
use crate::api::httpfilter::IpAccessFilter;
use crate::net::Cidr;
use crate::snapshot::IpAccess;

/// Most proxies in front of weir that `trustedHops` may name (the CRD schema's bound).
const MAX_TRUSTED_HOPS: u32 = 16;

/// Compile the settings.
pub(super) fn compile(spec: &IpAccessFilter) -> Result<IpAccess, FieldError> {
    let parse = |list: &[String], field: &str| -> Result<Vec<Cidr>, FieldError> {
        list.iter()
            .enumerate()
            .map(|(i, s)| {
                s.parse::<Cidr>()
                    .map_err(|e| FieldError::invalid(at(field, i), e.to_string()))
            })
            .collect()
    };
    let allow = parse(&spec.allow, "allow")?;
    let deny = parse(&spec.deny, "deny")?;
    if allow.is_empty() && deny.is_empty() {
        return Err(FieldError::invalid("", "set allow, deny or both"));
    }
    let trusted_hops = spec.trusted_hops.unwrap_or(0);
    if trusted_hops > MAX_TRUSTED_HOPS {
        return Err(FieldError::invalid(
            "trustedHops",
            format!("must be at most {MAX_TRUSTED_HOPS}"),
        ));
    }
    let satisfy_any = spec.satisfy_any.unwrap_or(false);
    if satisfy_any && allow.is_empty() {
        return Err(FieldError::invalid("satisfyAny", "requires an allow list"));
    }
    Ok(IpAccess {
        allow,
        deny,
        trusted_hops,
        satisfy_any,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(allow: &[&str], deny: &[&str], hops: Option<u32>) -> IpAccessFilter {
        IpAccessFilter {
            allow: allow.iter().map(|s| s.to_string()).collect(),
            deny: deny.iter().map(|s| s.to_string()).collect(),
            trusted_hops: hops,
            satisfy_any: None,
        }
    }

    #[test]
    fn networks_and_addresses_compile() {
        let f = compile(&spec(
            &["10.0.0.0/8", "2001:db8::/32"],
            &["10.1.2.3"],
            Some(2),
        ))
        .expect("valid");
        assert_eq!(f.allow.len(), 2);
        assert_eq!(f.deny[0].to_string(), "10.1.2.3/32");
        assert_eq!(f.trusted_hops, 2);
    }

    #[test]
    fn bad_entries_name_their_index() {
        let field = |s: IpAccessFilter| compile(&s).expect_err("invalid").field;
        assert_eq!(
            field(spec(&["10.0.0.0/8", "10.0.0.0/33"], &[], None)),
            "allow[1]"
        );
        assert_eq!(field(spec(&[], &["nope"], None)), "deny[0]");
        assert_eq!(field(spec(&["10.0.0.0/8"], &[], Some(17))), "trustedHops");
        assert_eq!(field(spec(&[], &[], None)), "");
        let any = |allow: &[&str]| IpAccessFilter {
            satisfy_any: Some(true),
            ..spec(allow, &["10.9.0.0/16"], None)
        };
        assert_eq!(field(any(&[])), "satisfyAny");
        assert!(compile(&any(&["10.0.0.0/8"])).expect("valid").satisfy_any);
    }
}
