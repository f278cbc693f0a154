//! `RequestHeaderModifier` and `ResponseHeaderModifier` (Gateway API `HTTPHeaderFilter`):
//! remove, then set (replacing every value of the name), then add (appending one value).
//! Names and values were validated by compile.

use http::HeaderMap;

use crate::snapshot::HeaderModifier;

/// Applies `m` to `headers`.
pub(crate) fn apply(m: &HeaderModifier, headers: &mut HeaderMap) {
    for name in &m.remove {
        headers.remove(name);
    }
    for pair in &m.set {
        headers.insert(pair.name.clone(), pair.value.clone());
    }
    for pair in &m.add {
        headers.append(pair.name.clone(), pair.value.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::HeaderPair;
    use http::{HeaderName, HeaderValue};

    fn pair(n: &'static str, v: &'static str) -> HeaderPair {
        HeaderPair {
            name: HeaderName::from_static(n),
            value: HeaderValue::from_static(v),
        }
    }

    #[test]
    fn remove_then_set_then_add() {
        let mut h = HeaderMap::new();
        h.append("x-a", HeaderValue::from_static("1"));
        h.append("x-a", HeaderValue::from_static("2"));
        h.insert("x-debug", HeaderValue::from_static("on"));
        h.insert("x-list", HeaderValue::from_static("a"));
        let m = HeaderModifier {
            set: vec![pair("x-a", "only")],
            add: vec![pair("x-list", "b"), pair("x-new", "n")],
            remove: vec![HeaderName::from_static("x-debug")],
        };
        apply(&m, &mut h);
        assert_eq!(h.get_all("x-a").iter().collect::<Vec<_>>(), ["only"]);
        assert_eq!(h.get_all("x-list").iter().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(h.get("x-new").map(|v| v.as_bytes()), Some(&b"n"[..]));
        assert!(!h.contains_key("x-debug"));
    }
}
