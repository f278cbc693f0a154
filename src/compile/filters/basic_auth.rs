//! `BasicAuth`: the Secret `secretRef` names (in the filter's namespace) must exist and hold
//! key `auth` with htpasswd lines, as ingress-nginx's `auth-file`: `user:hash`, blank lines
//! and `#` comments skipped. Every hash is parsed here — bcrypt (`$2y$`, `$2a$`, `$2b$`),
//! `{SHA}` and `$apr1$`; a plain-text or `crypt(3)` password, an unknown format or a user
//! named twice refuses the whole filter (so it fails closed). Messages name the line number,
//! never its content: the Secret's values never reach a condition.
//!
//! With `secretType: AuthMap` (ingress-nginx's `auth-map`) the Secret holds one key per user,
//! its value the hash; each is checked the same way, and messages name the user.
//!
//! The realm defaults to the filter's name; an explicitly empty realm is allowed
//! (`Basic realm=""`, what ingress-nginx sends without `auth-realm`).

use std::collections::BTreeMap;

use base64::Engine;
use http::HeaderValue;

use super::{EntryContext, FieldError};
use crate::api::httpfilter::{BasicAuthFilter, BasicAuthSecretType};
use crate::snapshot::{BasicAuth, PasswordHash};
use crate::store::ObjectKey;

/// The Secret key that holds the htpasswd lines (ingress-nginx's `auth-file` key).
const AUTH_KEY: &str = crate::api::values::SECRET_KEY_AUTH;

/// Compile the settings.
pub(super) fn compile(
    spec: &BasicAuthFilter,
    ctx: &EntryContext<'_>,
) -> Result<BasicAuth, FieldError> {
    let realm = spec.realm.as_deref().unwrap_or(&ctx.key.name);
    if realm.contains(['"', '\\']) {
        return Err(FieldError::invalid("realm", "must contain no '\"' or '\\'"));
    }
    let challenge = HeaderValue::try_from(format!("Basic realm=\"{realm}\""))
        .map_err(|_| FieldError::invalid("realm", "not a valid header value"))?;
    let key = ObjectKey::new(&ctx.key.namespace, &spec.secret_ref.name);
    let secret = ctx.objects.secrets.get(&key).ok_or_else(|| {
        FieldError::missing_ref("secretRef.name", format!("Secret {key} not found"))
    })?;
    if spec.secret_type == Some(BasicAuthSecretType::AuthMap) {
        let users = parse_map(secret.data.as_ref())
            .map_err(|e| FieldError::invalid("secretRef.name", format!("Secret {key} {e}")))?;
        return Ok(BasicAuth { challenge, users });
    }
    let data = secret
        .data
        .as_ref()
        .and_then(|d| d.get(AUTH_KEY))
        .ok_or_else(|| {
            FieldError::missing_ref(
                "secretRef.name",
                format!("Secret {key} has no key {AUTH_KEY:?}"),
            )
        })?;
    let text = std::str::from_utf8(&data.0).map_err(|_| {
        FieldError::invalid(
            "secretRef.name",
            format!("Secret {key} key {AUTH_KEY:?} is not UTF-8"),
        )
    })?;
    let users = parse_htpasswd(text).map_err(|e| {
        FieldError::invalid(
            "secretRef.name",
            format!("Secret {key} key {AUTH_KEY:?} {e}"),
        )
    })?;
    if users.is_empty() {
        return Err(FieldError::invalid(
            "secretRef.name",
            format!("Secret {key} key {AUTH_KEY:?} has no users"),
        ));
    }
    Ok(BasicAuth { challenge, users })
}

/// Reads an `AuthMap` Secret: every key a user, its value the hash.
fn parse_map(
    data: Option<&BTreeMap<String, k8s_openapi::ByteString>>,
) -> Result<BTreeMap<String, PasswordHash>, String> {
    let mut users = BTreeMap::new();
    for (user, value) in data.into_iter().flatten() {
        let hash = std::str::from_utf8(&value.0)
            .map_err(|_| format!("key {user:?} is not UTF-8"))?
            .trim();
        let hash = parse_hash(hash).map_err(|e| format!("key {user:?}: {e}"))?;
        users.insert(user.clone(), hash);
    }
    if users.is_empty() {
        return Err("has no users".to_owned());
    }
    Ok(users)
}

/// Parses htpasswd lines; the error says which line and why (never what it holds).
fn parse_htpasswd(text: &str) -> Result<BTreeMap<String, PasswordHash>, String> {
    let mut users = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim_end_matches('\r').trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (user, hash) = line
            .split_once(':')
            .ok_or_else(|| format!("line {n}: expected user:hash"))?;
        if user.is_empty() {
            return Err(format!("line {n}: empty user name"));
        }
        let hash = parse_hash(hash).map_err(|e| format!("line {n} (user {user:?}): {e}"))?;
        if users.insert(user.to_owned(), hash).is_some() {
            return Err(format!("line {n}: user {user:?} appears more than once"));
        }
    }
    Ok(users)
}

/// The alphabet of crypt's base-64 encoding (apr1 salts and digests).
fn is_crypt64(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '.' || c == '/'
}

fn parse_hash(hash: &str) -> Result<PasswordHash, &'static str> {
    if hash.starts_with("$2y$") || hash.starts_with("$2a$") || hash.starts_with("$2b$") {
        // The crate's own parser: cost in range, salt and digest of the right length.
        hash.parse::<bcrypt::HashParts>()
            .map_err(|_| "malformed bcrypt hash")?;
        return Ok(PasswordHash::Bcrypt(hash.to_owned()));
    }
    if let Some(b64) = hash.strip_prefix("{SHA}") {
        let digest = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .ok()
            .and_then(|d| <[u8; 20]>::try_from(d).ok())
            .ok_or("malformed {SHA} hash (expected base64 of 20 bytes)")?;
        return Ok(PasswordHash::Sha1(digest));
    }
    if let Some(rest) = hash.strip_prefix("$apr1$") {
        let (salt, digest) = rest
            .split_once('$')
            .ok_or("malformed $apr1$ hash (expected $apr1$salt$digest)")?;
        if salt.is_empty() || salt.len() > 8 || !salt.chars().all(is_crypt64) {
            return Err("malformed $apr1$ salt (1-8 characters of ./0-9A-Za-z)");
        }
        if digest.len() != 22 || !digest.chars().all(is_crypt64) {
            return Err("malformed $apr1$ digest (22 characters of ./0-9A-Za-z)");
        }
        return Ok(PasswordHash::Apr1 {
            salt: salt.to_owned(),
            hash: digest.to_owned(),
        });
    }
    Err(
        "unsupported hash: use bcrypt ($2y$), {SHA} or $apr1$ (plain-text and crypt(3) passwords are refused)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::httpfilter::LocalObjectRef;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::ObjectMeta;

    use crate::store::Objects;

    // The password `secret`: bcrypt cost 4 (libxcrypt), `{SHA}`, and `openssl passwd -apr1
    // -salt saltsalt secret`.
    const BCRYPT: &str = "$2y$04$/wjv.wj7Z/iAz1OGTu4gc.J5yGjxUN67Q6Ni2rhqIjUtlUKxyUc1i";
    const SHA: &str = "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=";
    const APR1: &str = "$apr1$saltsalt$LrttParrLPdxvgutaSXWJ0";

    fn objects(auth: Option<&str>) -> Objects {
        let mut objects = Objects::default();
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some("htpasswd".into()),
                namespace: Some("shop".into()),
                ..Default::default()
            },
            data: auth.map(|a| [(AUTH_KEY.to_owned(), ByteString(a.as_bytes().to_vec()))].into()),
            ..Default::default()
        };
        objects
            .secrets
            .insert(ObjectKey::new("shop", "htpasswd"), secret.into());
        objects
    }

    fn run(objects: &Objects, realm: Option<&str>) -> Result<BasicAuth, FieldError> {
        let key = ObjectKey::new("shop", "guard");
        let ctx = EntryContext { key: &key, objects };
        compile(
            &BasicAuthFilter {
                secret_ref: LocalObjectRef {
                    name: "htpasswd".into(),
                },
                realm: realm.map(str::to_owned),
                secret_type: None,
            },
            &ctx,
        )
    }

    #[test]
    fn reads_bcrypt_sha_and_apr1_lines() {
        let auth = format!("# users\nalice:{BCRYPT}\n\nbob:{SHA}\r\ncarol:{APR1}\n");
        let f = run(&objects(Some(&auth)), Some("shop")).expect("valid");
        assert_eq!(f.challenge, "Basic realm=\"shop\"");
        assert!(matches!(f.users["alice"], PasswordHash::Bcrypt(_)));
        assert!(matches!(f.users["bob"], PasswordHash::Sha1(_)));
        assert!(matches!(&f.users["carol"], PasswordHash::Apr1 { salt, .. } if salt == "saltsalt"));
        let defaulted = run(&objects(Some(&auth)), None).expect("valid");
        assert_eq!(defaulted.challenge, "Basic realm=\"guard\"");
    }

    #[test]
    fn plain_text_malformed_and_repeated_users_are_refused_without_their_content() {
        for (auth, why) in [
            ("alice:hunter2\n", "unsupported hash"),
            ("alice:abJnggxhB/yWI\n", "unsupported hash"), // crypt(3)
            ("alice:$2y$04$short\n", "malformed bcrypt"),
            ("alice:{SHA}bm90IDIwIGJ5dGVz\n", "malformed {SHA}"),
            ("alice:$apr1$toolongsalt$yv1fsiW7wmIr7uFA1LUlX0\n", "salt"),
            ("no colon here\n", "expected user:hash"),
        ] {
            let e = run(&objects(Some(auth)), None).expect_err(auth);
            assert!(e.message.contains(why), "{auth}: {}", e.message);
            assert!(e.message.contains("line 1"), "{}", e.message);
            assert!(!e.message.contains("hunter2"), "the password leaked");
        }
        let repeated = format!("alice:{SHA}\nalice:{SHA}\n");
        let e = run(&objects(Some(&repeated)), None).expect_err("repeat");
        assert!(e.message.contains("line 2"), "{}", e.message);
    }

    #[test]
    fn missing_secret_or_key_is_a_missing_ref_and_bad_realms_are_refused() {
        let e = run(&Objects::default(), None).expect_err("no secret");
        assert_eq!(
            (e.field.as_str(), e.reason),
            ("secretRef.name", crate::api::reasons::FILTER_REF_NOT_FOUND)
        );
        let e = run(&objects(None), None).expect_err("no key");
        assert_eq!(e.reason, crate::api::reasons::FILTER_REF_NOT_FOUND);
        let e = run(&objects(Some("# nobody\n")), None).expect_err("no users");
        assert!(e.message.contains("no users"));
        let e = run(&objects(Some(&format!("a:{SHA}"))), Some("a\"b")).expect_err("quote");
        assert_eq!(e.field, "realm");
        let empty = run(&objects(Some(&format!("a:{SHA}"))), Some("")).expect("empty realm");
        assert_eq!(empty.challenge, "Basic realm=\"\"");
    }

    #[test]
    fn an_auth_map_secret_holds_one_user_per_key() {
        let mut objects = Objects::default();
        let secret = Secret {
            data: Some(
                [("alice", BCRYPT), ("bob", SHA)]
                    .into_iter()
                    .map(|(u, h)| (u.to_owned(), ByteString(h.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Default::default()
        };
        objects
            .secrets
            .insert(ObjectKey::new("shop", "htpasswd"), secret.clone().into());
        let key = ObjectKey::new("shop", "guard");
        let ctx = EntryContext {
            key: &key,
            objects: &objects,
        };
        let spec = BasicAuthFilter {
            secret_ref: LocalObjectRef {
                name: "htpasswd".into(),
            },
            realm: None,
            secret_type: Some(BasicAuthSecretType::AuthMap),
        };
        let f = compile(&spec, &ctx).expect("valid");
        assert!(matches!(f.users["alice"], PasswordHash::Bcrypt(_)));
        assert!(matches!(f.users["bob"], PasswordHash::Sha1(_)));
        let mut bad = secret;
        bad.data
            .get_or_insert_default()
            .insert("carol".into(), ByteString(b"hunter2".to_vec()));
        objects
            .secrets
            .insert(ObjectKey::new("shop", "htpasswd"), bad.into());
        let ctx = EntryContext {
            key: &key,
            objects: &objects,
        };
        let e = compile(&spec, &ctx).expect_err("plain text");
        assert!(e.message.contains("carol") && !e.message.contains("hunter2"));
    }
}
