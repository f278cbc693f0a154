//! `URLRewrite` (Gateway API `HTTPURLRewriteFilter`): `hostname` a precise DNS name, `path`
//! a path modifier with an absolute path — the same checks as `RequestRedirect`
//! (`redirect.rs`). A rewrite that changes nothing is refused: it is almost certainly a
//! mistake in the manifest.

use super::FieldError;
use super::redirect::{path_rewrite, precise_hostname};
use crate::api::httpfilter::UrlRewriteFilter;
use crate::snapshot::UrlRewrite;

/// Compile the settings.
pub(super) fn compile(spec: &UrlRewriteFilter) -> Result<UrlRewrite, FieldError> {
    if spec.hostname.is_none() && spec.path.is_none() {
        return Err(FieldError::invalid("", "sets neither hostname nor path"));
    }
    let hostname = spec
        .hostname
        .as_deref()
        .map(|h| precise_hostname(h).map_err(|why| FieldError::invalid("hostname", why)))
        .transpose()?;
    let path = spec.path.as_ref().map(path_rewrite).transpose()?;
    Ok(UrlRewrite { hostname, path })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::httpfilter::{PathModifier, PathModifierType};
    use crate::snapshot::PathRewrite;

    #[test]
    fn compiles_host_and_prefix_rewrite() {
        let r = compile(&UrlRewriteFilter {
            hostname: Some("internal.svc".into()),
            path: Some(PathModifier {
                type_: PathModifierType::ReplacePrefixMatch,
                replace_full_path: None,
                replace_prefix_match: Some("/".into()),
                replace_regex_match: None,
            }),
        })
        .expect("valid");
        assert_eq!(r.hostname.as_deref(), Some("internal.svc"));
        assert_eq!(r.path, Some(PathRewrite::ReplacePrefixMatch("/".into())));
    }

    #[test]
    fn refuses_bad_values_and_empty_rewrites() {
        let empty = compile(&UrlRewriteFilter::default()).expect_err("empty");
        assert_eq!(empty.field, "");
        let host = compile(&UrlRewriteFilter {
            hostname: Some("Upper.example".into()),
            path: None,
        });
        assert_eq!(host.expect_err("bad host").field, "hostname");
        let path = compile(&UrlRewriteFilter {
            hostname: None,
            path: Some(PathModifier {
                type_: PathModifierType::ReplaceFullPath,
                replace_full_path: Some("no-slash".into()),
                replace_prefix_match: None,
                replace_regex_match: None,
            }),
        });
        assert_eq!(path.expect_err("bad path").field, "path.replaceFullPath");
    }
}
