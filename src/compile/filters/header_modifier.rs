//! `RequestHeaderModifier` / `ResponseHeaderModifier` (Gateway API `HTTPHeaderFilter`):
//! names must be valid header names, values valid header values, and no name may appear
//! twice across set, add and remove (the Gateway API's rule).

use http::{HeaderName, HeaderValue};

use super::{FieldError, at};
use crate::api::httpfilter::HeaderFilter;
use crate::snapshot::{HeaderModifier, HeaderPair};

/// Compile the settings.
pub(super) fn compile(spec: &HeaderFilter) -> Result<HeaderModifier, FieldError> {
    let mut seen: Vec<HeaderName> = Vec::new();
    let mut check = |field: String, name: &str| -> Result<HeaderName, FieldError> {
        let parsed = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| FieldError::invalid(&field, format!("{name:?} is not a header name")))?;
        if seen.contains(&parsed) {
            return Err(FieldError::invalid(
                field,
                format!("{name:?} appears more than once"),
            ));
        }
        seen.push(parsed.clone());
        Ok(parsed)
    };
    let pairs = |list: &[crate::api::httpfilter::HttpHeader],
                 what: &str,
                 check: &mut dyn FnMut(String, &str) -> Result<HeaderName, FieldError>|
     -> Result<Vec<HeaderPair>, FieldError> {
        list.iter()
            .enumerate()
            .map(|(i, h)| {
                let field = at(what, i);
                let name = check(format!("{field}.name"), &h.name)?;
                let value = HeaderValue::from_str(&h.value).map_err(|_| {
                    FieldError::invalid(format!("{field}.value"), "not a valid header value")
                })?;
                Ok(HeaderPair { name, value })
            })
            .collect()
    };
    let set = pairs(&spec.set, "set", &mut check)?;
    let add = pairs(&spec.add, "add", &mut check)?;
    let remove = spec
        .remove
        .iter()
        .enumerate()
        .map(|(i, n)| check(at("remove", i), n))
        .collect::<Result<_, _>>()?;
    Ok(HeaderModifier { set, add, remove })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::httpfilter::HttpHeader;

    fn h(name: &str, value: &str) -> HttpHeader {
        HttpHeader {
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn compiles_names_and_values() {
        let m = compile(&HeaderFilter {
            set: vec![h("X-Env", "prod")],
            add: vec![h("x-list", "a")],
            remove: vec!["X-Debug".into()],
        })
        .expect("valid");
        assert_eq!(m.set[0].name, "x-env");
        assert_eq!(m.remove[0], "x-debug");
    }

    #[test]
    fn refuses_bad_names_values_and_repeats() {
        let bad_name = compile(&HeaderFilter {
            set: vec![h("X Env", "prod")],
            ..Default::default()
        });
        assert_eq!(bad_name.expect_err("bad name").field, "set[0].name");
        let bad_value = compile(&HeaderFilter {
            add: vec![h("x-a", "line\nbreak")],
            ..Default::default()
        });
        assert_eq!(bad_value.expect_err("bad value").field, "add[0].value");
        let repeated = compile(&HeaderFilter {
            set: vec![h("x-a", "1")],
            remove: vec!["X-A".into()],
            ..Default::default()
        });
        assert_eq!(repeated.expect_err("repeat").field, "remove[0]");
    }
}
