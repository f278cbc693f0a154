//! `proxy-ssl-*`: how weir's TLS to the backend is authenticated → the variant's
//! `BackendPolicy` `tls` (`secretName`, `verify`, `hostname`, `sni`).
//!
//! As ingress-nginx's `proxyssl` parser: everything hangs on `proxy-ssl-secret`
//! (`namespace/name`, the Ingress's own namespace only); without it the other annotations do
//! nothing. The settings apply when the backend speaks TLS (`backend-protocol: HTTPS`/`GRPCS`
//! or the port's `appProtocol: https`), as nginx's `proxy_ssl_*` apply only to `https://`
//! upstreams.
//!
//! The name verified: `proxy-ssl-name`, else weir's default `<service>.<namespace>.svc` (nginx
//! would verify against its upstream's name `upstream_balancer`, which no real certificate
//! holds). SNI is sent only with `proxy-ssl-name` and `proxy-ssl-server-name: on`, as
//! ingress-nginx's template writes `proxy_ssl_server_name` only next to `proxy_ssl_name`.
//!
//! The Secret is read when the cluster is built (`compile::policy::upstream_tls`): a missing
//! Secret or unreadable PEM makes the backend unavailable (fail closed), as ingress-nginx
//! denies the location when it cannot read the Secret.

use super::super::{Context, Translation, Verdict};
use super::ignored;
use crate::api::backendpolicy::BackendTlsSpec;

const SECRET: &str = "proxy-ssl-secret";
const VERIFY: &str = "proxy-ssl-verify";
const VERIFY_DEPTH: &str = "proxy-ssl-verify-depth";
const NAME: &str = "proxy-ssl-name";
const SERVER_NAME: &str = "proxy-ssl-server-name";

/// Read the `proxy-ssl-*` annotations (but `-protocols` and `-ciphers`) into `t`.
pub(super) fn translate(ctx: &Context<'_>, t: &mut Translation) {
    let Some(secret) = ctx.get(SECRET) else {
        for name in [VERIFY, VERIFY_DEPTH, NAME, SERVER_NAME] {
            if let Some(value) = ctx.get(name) {
                t.found(
                    name,
                    value,
                    ignored("without proxy-ssl-secret it has no effect".to_owned()),
                );
            }
        }
        return;
    };
    let Some(secret_name) = secret_name(ctx, t, secret) else {
        // Denied: the other annotations are moot (the finding of the Secret fails the
        // Ingress).
        for name in [VERIFY, VERIFY_DEPTH, NAME, SERVER_NAME] {
            if let Some(value) = ctx.get(name) {
                t.found(
                    name,
                    value,
                    ignored("proxy-ssl-secret is invalid".to_owned()),
                );
            }
        }
        return;
    };
    let on_off = |name: &str, t: &mut Translation| -> Option<bool> {
        let value = ctx.get(name)?;
        match value {
            "on" => Some(true),
            "off" => Some(false),
            _ => {
                t.found(
                    name,
                    value,
                    ignored(format!("{value:?} is not on or off; off")),
                );
                None
            }
        }
    };
    let verify = on_off(VERIFY, t).unwrap_or(false);
    let hostname = ctx.get(NAME).and_then(|value| {
        let dns = rustls::pki_types::ServerName::try_from(value.to_owned())
            .is_ok_and(|n| matches!(n, rustls::pki_types::ServerName::DnsName(_)));
        if dns {
            Some(value.to_owned())
        } else {
            t.found(
                NAME,
                value,
                ignored(format!(
                    "{value:?} is not a DNS name (weir does not expand nginx variables); the \
                     default name is used"
                )),
            );
            None
        }
    });
    let sni = on_off(SERVER_NAME, t).unwrap_or(false) && hostname.is_some();
    t.found(
        SECRET,
        secret,
        Verdict::Translated(format!(
            "BackendPolicy tls.secretName {secret_name}: its tls.crt/tls.key (when present) are \
             presented as the client certificate, its ca.crt verifies the backend with \
             proxy-ssl-verify: on; a missing Secret or bad PEM makes the backend unavailable \
             (applies when the backend speaks TLS)"
        )),
    );
    if let Some(value) = ctx.get(VERIFY)
        && matches!(value, "on" | "off")
    {
        let verdict = if verify {
            Verdict::Partial {
                to: format!(
                    "tls.verify: the backend's certificate must chain to ca.crt and name {}",
                    hostname
                        .clone()
                        .unwrap_or_else(|| "<service>.<namespace>.svc".to_owned())
                ),
                differs: "weir accepts intermediates the backend sends (any chain depth \
                          webpki allows; nginx's proxy-ssl-verify-depth defaults to 1); \
                          without proxy-ssl-name weir verifies <service>.<namespace>.svc, \
                          nginx its upstream name upstream_balancer"
                    .to_owned(),
            }
        } else {
            Verdict::Translated("the backend's certificate is not verified".to_owned())
        };
        t.found(VERIFY, value, verdict);
    }
    if let Some(value) = ctx.get(VERIFY_DEPTH) {
        let verdict = match value.parse::<i64>() {
            Err(_) => ignored(format!("{value:?} is not a whole number; depth 1")),
            Ok(_) if !verify => {
                Verdict::Translated("nothing: the certificate is not verified".to_owned())
            }
            Ok(_) => Verdict::Partial {
                to: "nothing".to_owned(),
                differs: "weir does not limit the chain's depth (webpki's own limits apply); \
                          nginx refuses longer chains"
                    .to_owned(),
            },
        };
        t.found(VERIFY_DEPTH, value, verdict);
    }
    if let Some(name) = &hostname {
        t.found(
            NAME,
            name,
            Verdict::Translated(format!(
                "tls.hostname {name}: the name the certificate is verified against{}",
                if sni { " and sent as SNI" } else { "" }
            )),
        );
    }
    if let Some(value) = ctx.get(SERVER_NAME)
        && matches!(value, "on" | "off")
    {
        let to = match (value, &hostname) {
            ("on", Some(_)) => "tls.sni: proxy-ssl-name is sent as SNI",
            ("on", None) => "nothing: without proxy-ssl-name ingress-nginx sends no SNI",
            _ => "no SNI is sent",
        };
        t.found(SERVER_NAME, value, Verdict::Translated(to.to_owned()));
    }
    t.policy.tls = Some(BackendTlsSpec {
        secret_name,
        verify: verify.then_some(true),
        hostname,
        sni: sni.then_some(true),
    });
}

/// The Secret's name, when `value` is `namespace/name` in the Ingress's namespace; otherwise
/// the finding that fails the Ingress closed (ingress-nginx denies the location).
fn secret_name(ctx: &Context<'_>, t: &mut Translation, value: &str) -> Option<String> {
    let denied = |why: String| Verdict::Invalid {
        why: format!("{why}; ingress-nginx denies the location, weir fails the Ingress"),
        fails_closed: true,
    };
    let Some((ns, name)) = value.split_once('/') else {
        t.found(
            SECRET,
            value,
            denied(format!("{value:?} is not namespace/name")),
        );
        return None;
    };
    let valid = |s: &str| {
        !s.is_empty()
            && s.len() <= 253
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    };
    if !valid(ns) || !valid(name) {
        t.found(
            SECRET,
            value,
            denied(format!("{value:?} is not namespace/name")),
        );
        return None;
    }
    if ns != ctx.key.namespace {
        t.found(
            SECRET,
            value,
            denied(format!(
                "the Secret is in namespace {ns}, not the Ingress's {}: cross-namespace \
                 Secrets are not read",
                ctx.key.namespace
            )),
        );
        return None;
    }
    Some(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::super::super::testing::*;
    use super::super::testing::warned;
    use super::*;

    fn tls(t: &Translation) -> &BackendTlsSpec {
        t.policy.tls.as_ref().expect("tls settings")
    }

    #[test]
    fn secret_verify_name_and_sni() {
        let t = translate_only(&[
            ("proxy-ssl-secret", "default/upstream-ca"),
            ("proxy-ssl-verify", "on"),
            ("proxy-ssl-name", "api.internal"),
            ("proxy-ssl-server-name", "on"),
        ]);
        assert_eq!(
            tls(&t),
            &BackendTlsSpec {
                secret_name: "upstream-ca".to_owned(),
                verify: Some(true),
                hostname: Some("api.internal".to_owned()),
                sni: Some(true),
            }
        );
        assert!(matches!(
            verdict(&t, "proxy-ssl-secret"),
            Verdict::Translated(_)
        ));
        assert!(matches!(
            verdict(&t, "proxy-ssl-verify"),
            Verdict::Partial { .. }
        ));
        assert!(matches!(
            verdict(&t, "proxy-ssl-name"),
            Verdict::Translated(w) if w.contains("SNI")
        ));
    }

    #[test]
    fn defaults_are_off() {
        let t = translate_only(&[("proxy-ssl-secret", "default/s")]);
        assert_eq!(
            tls(&t),
            &BackendTlsSpec {
                secret_name: "s".to_owned(),
                ..Default::default()
            }
        );
        // SNI needs proxy-ssl-name, as ingress-nginx's template writes it only with the name.
        let t = translate_only(&[
            ("proxy-ssl-secret", "default/s"),
            ("proxy-ssl-server-name", "on"),
        ]);
        assert_eq!(tls(&t).sni, None);
        // Bad values fall back to off, with a warning.
        let t = translate_only(&[
            ("proxy-ssl-secret", "default/s"),
            ("proxy-ssl-verify", "ON"),
        ]);
        assert!(warned(verdict(&t, "proxy-ssl-verify")));
        assert_eq!(tls(&t).verify, None);
        let t = translate_only(&[
            ("proxy-ssl-secret", "default/s"),
            ("proxy-ssl-name", "$host"),
        ]);
        assert!(warned(verdict(&t, "proxy-ssl-name")));
        assert_eq!(tls(&t).hostname, None);
    }

    #[test]
    fn without_the_secret_the_rest_is_ignored() {
        let t = translate_only(&[("proxy-ssl-verify", "on"), ("proxy-ssl-name", "a.b")]);
        assert!(warned(verdict(&t, "proxy-ssl-verify")));
        assert!(warned(verdict(&t, "proxy-ssl-name")));
        assert!(!t.has_variant());
    }

    #[test]
    fn bad_or_foreign_secrets_fail_closed() {
        for value in ["no-slash", "other/s", "default/", "default/UPPER"] {
            let t = translate_only(&[("proxy-ssl-secret", value), ("proxy-ssl-verify", "on")]);
            assert!(
                matches!(
                    verdict(&t, "proxy-ssl-secret"),
                    Verdict::Invalid {
                        fails_closed: true,
                        ..
                    }
                ),
                "{value}"
            );
            assert!(t.policy.tls.is_none(), "{value}");
        }
    }

    #[test]
    fn verify_depth() {
        let t = translate_only(&[
            ("proxy-ssl-secret", "default/s"),
            ("proxy-ssl-verify", "on"),
            ("proxy-ssl-verify-depth", "2"),
        ]);
        assert!(matches!(
            verdict(&t, "proxy-ssl-verify-depth"),
            Verdict::Partial { .. }
        ));
        let t = translate_only(&[
            ("proxy-ssl-secret", "default/s"),
            ("proxy-ssl-verify-depth", "x"),
        ]);
        assert!(warned(verdict(&t, "proxy-ssl-verify-depth")));
    }
}
