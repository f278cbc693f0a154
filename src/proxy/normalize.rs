//! Request path normalization: the one canonical form of a request path that routing,
//! filters and the upstream all see.
//!
//! Runs on every request before routing, the same for HTTP/1.1 and HTTP/2, and its output is
//! what is forwarded upstream, so weir and the backend can never disagree about which path
//! was asked for (`/app/../secret` must not match a `/app` route and then reach `/secret`).
//!
//! Rules, in order (the README's "Path normalization" table is the user-facing copy):
//!
//! 1. Reject what can never be an origin-form path: not starting with `/` (the asterisk-form
//!    `*` of `OPTIONS *` is accepted and left alone), a raw `?` or `#` (the caller splits the
//!    query off first), a raw NUL or control character, a raw backslash (some backends treat
//!    `\` as `/`), an invalid or truncated percent-escape (`%zz`, `%4`), and `%00`.
//! 2. Percent-escapes of unreserved characters (RFC 3986 §2.3: `A-Z a-z 0-9 - . _ ~`) are
//!    decoded (`%41` → `A`, `%2e` → `.`), before dot segments are looked at, so encoded dots
//!    count. `%2F` and `%5C` (encoded `/` and `\`) follow [`EscapedSlashes`] (reject by
//!    default). Every other escape stays encoded, with upper-case hex digits (RFC 3986
//!    §6.2.2.1: `%2f` → `%2F`, `%c3%a9` → `%C3%A9`).
//! 3. Repeated slashes are merged (`//a///b` → `/a/b`), then dot segments are removed (RFC 3986
//!    §5.2.4: `/a/./b` → `/a/b`, `/a/b/..` → `/a/`, `/..` → `/`). Merging first means an empty
//!    segment never counts as a segment: `/a//../b` is `/b`, as nginx's `merge_slashes` reads
//!    it (plain RFC 3986 would give `/a/b`).
//!
//! Anything else (sub-delims, `:`, `@`, non-ASCII characters the HTTP parser let through) is
//! left exactly as it came.
//!
//! Cost: a path that needs no change is returned as `Cow::Borrowed` after one scan that
//! validates it and looks for anything to rewrite (an escape to decode or re-case, an empty or
//! dot segment); only a path that changes is copied (decode into one buffer, then rebuild the
//! segments into the result).

use std::borrow::Cow;
use std::fmt;

/// What to do with `%2F` and `%5C` (encoded `/` and `\`) in a path. The choices are Envoy's
/// `path_with_escaped_slashes_action`, minus its redirect.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EscapedSlashes {
    /// Reject the request with 400 ([`PathError::EscapedSlash`]). Safe whatever the backend
    /// does with them: one backend decodes `%2F` before routing, another does not.
    #[default]
    Reject,
    /// Keep them encoded (hex upper-cased): the backend receives `%2F` and decides. Routing
    /// sees `/a%2Fb` as one segment.
    KeepUnchanged,
    /// Decode both to `/` and normalize the result (`/a%2F..%2Fb` → `/b`). Only for backends
    /// known to treat them as separators; the backend then never sees the escapes.
    UnescapeAndForward,
}

/// Why a path was refused. Each is answered with 400; [`PathError::message`] is the body and
/// [`PathError::kind`] the metrics label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PathError {
    /// Does not start with `/` (and is not `*`), or contains a raw `?` or `#`.
    NotOriginForm,
    /// `%2F` or `%5C` under [`EscapedSlashes::Reject`].
    EscapedSlash,
    /// A raw `\`.
    Backslash,
    /// A `%` not followed by two hex digits.
    InvalidEscape,
    /// A raw NUL byte or `%00` (C backends end the string there).
    Nul,
    /// A raw control character other than NUL (0x01–0x1F, 0x7F).
    ControlCharacter,
}

impl PathError {
    /// A short, fixed explanation, usable as the body of the 400 answer.
    pub(crate) fn message(self) -> &'static str {
        match self {
            PathError::NotOriginForm => "request path must start with '/'",
            PathError::EscapedSlash => {
                "request path contains an encoded slash or backslash (%2F or %5C)"
            }
            PathError::Backslash => "request path contains a backslash",
            PathError::InvalidEscape => "request path contains an invalid percent-escape",
            PathError::Nul => "request path contains a NUL byte",
            PathError::ControlCharacter => "request path contains a control character",
        }
    }

    /// A stable label for metrics and the access log.
    pub(crate) fn kind(self) -> &'static str {
        match self {
            PathError::NotOriginForm => "not_origin_form",
            PathError::EscapedSlash => "escaped_slash",
            PathError::Backslash => "backslash",
            PathError::InvalidEscape => "invalid_escape",
            PathError::Nul => "nul",
            PathError::ControlCharacter => "control_character",
        }
    }
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for PathError {}

/// Normalizes a request path (without its query) by the rules in the module docs.
///
/// Returns the input itself (`Cow::Borrowed`) when it is already normal, which is the common
/// case; the result is idempotent: normalizing it again returns it borrowed.
pub(crate) fn normalize_path(
    path: &str,
    escaped_slashes: EscapedSlashes,
) -> Result<Cow<'_, str>, PathError> {
    if path == "*" {
        return Ok(Cow::Borrowed(path));
    }
    if !path.starts_with('/') {
        return Err(PathError::NotOriginForm);
    }
    if scan(path.as_bytes(), escaped_slashes)? {
        Ok(Cow::Owned(rebuild(&decode(path, escaped_slashes))))
    } else {
        Ok(Cow::Borrowed(path))
    }
}

/// Validates `path` (which starts with `/`) and returns whether it needs rewriting. The whole
/// path is always scanned, so an invalid byte after a rewritable one is still an error.
fn scan(bytes: &[u8], escaped_slashes: EscapedSlashes) -> Result<bool, PathError> {
    let mut dirty = false;
    // The segment being scanned: its length and whether it is only dots so far.
    let mut seg_len = 0usize;
    let mut seg_dots = true;
    let mut i = 1;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'/' => {
                // An empty segment (`//`) is merged, a `.` or `..` segment removed.
                if seg_len == 0 || (seg_dots && seg_len <= 2) {
                    dirty = true;
                }
                seg_len = 0;
                seg_dots = true;
            }
            b'%' => {
                let value = escape_at(bytes, i).ok_or(PathError::InvalidEscape)?;
                match value {
                    0 => return Err(PathError::Nul),
                    b'/' | b'\\' => match escaped_slashes {
                        EscapedSlashes::Reject => return Err(PathError::EscapedSlash),
                        EscapedSlashes::KeepUnchanged => {}
                        EscapedSlashes::UnescapeAndForward => dirty = true,
                    },
                    v if is_unreserved(v) => dirty = true,
                    _ => {}
                }
                // Lower-case hex digits are re-cased (`escape_at` checked both are hex).
                if bytes[i + 1].is_ascii_lowercase() || bytes[i + 2].is_ascii_lowercase() {
                    dirty = true;
                }
                // An escape never stays a dot (an encoded dot is decoded, hence dirty already).
                seg_len += 3;
                seg_dots = false;
                i += 3;
                continue;
            }
            b'\\' => return Err(PathError::Backslash),
            0 => return Err(PathError::Nul),
            b'?' | b'#' => return Err(PathError::NotOriginForm),
            b if b < 0x20 || b == 0x7f => return Err(PathError::ControlCharacter),
            _ => {
                seg_len += 1;
                seg_dots &= b == b'.';
            }
        }
        i += 1;
    }
    // A final `.` or `..` is a dot segment too; a final empty segment is a trailing slash.
    Ok(dirty || (seg_len > 0 && seg_dots && seg_len <= 2))
}

/// Step 2: decodes unreserved escapes, applies [`EscapedSlashes`], upper-cases the rest.
/// `path` has passed [`scan`].
fn decode(path: &str, escaped_slashes: EscapedSlashes) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    // Copy the runs between escapes as `str` slices: `%` is ASCII, so every cut falls on a
    // character boundary and the output stays valid UTF-8 without a check.
    let mut run = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            i += 1;
            continue;
        }
        let Some(value) = escape_at(bytes, i) else {
            // `scan` rejected invalid escapes; leave the byte as it is if one slips through.
            i += 1;
            continue;
        };
        out.push_str(&path[run..i]);
        match value {
            b'/' | b'\\' if escaped_slashes == EscapedSlashes::UnescapeAndForward => out.push('/'),
            v if is_unreserved(v) => out.push(char::from(v)),
            v => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(char::from(HEX[usize::from(v >> 4)]));
                out.push(char::from(HEX[usize::from(v & 0xf)]));
            }
        }
        i += 3;
        run = i;
    }
    out.push_str(&path[run..]);
    out
}

/// Step 3: merges empty segments and removes dot segments of a decoded path that starts with
/// `/`. Works like RFC 3986 §5.2.4's output buffer: `..` truncates to the previous `/`.
fn rebuild(decoded: &str) -> String {
    let mut out = String::with_capacity(decoded.len());
    let mut segments = decoded[1..].split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        match segment {
            "" | "." => {}
            ".." => {
                if let Some(slash) = out.rfind('/') {
                    out.truncate(slash);
                }
            }
            _ => {
                out.push('/');
                out.push_str(segment);
                continue;
            }
        }
        // A path that ends in an empty or dot segment names a directory: keep the slash.
        if last {
            out.push('/');
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// The byte encoded by the escape starting at `bytes[i] == b'%'`, if two hex digits follow.
fn escape_at(bytes: &[u8], i: usize) -> Option<u8> {
    let hex = |b: u8| char::from(b).to_digit(16);
    let hi = hex(*bytes.get(i + 1)?)?;
    let lo = hex(*bytes.get(i + 2)?)?;
    u8::try_from(hi << 4 | lo).ok()
}

/// RFC 3986 §2.3 unreserved characters.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn norm(path: &str) -> Result<Cow<'_, str>, PathError> {
        normalize_path(path, EscapedSlashes::Reject)
    }

    #[test]
    fn table() {
        let cases: &[(&str, Result<&str, PathError>)] = &[
            // The examples.
            ("/app/../secret", Ok("/secret")),
            ("/app/%2e%2e/secret", Ok("/secret")),
            ("/a/./b", Ok("/a/b")),
            ("/a/b/..", Ok("/a/")),
            ("/..", Ok("/")),
            ("/%41", Ok("/A")),
            ("/a%2Fb", Err(PathError::EscapedSlash)),
            ("/a%5cb", Err(PathError::EscapedSlash)),
            ("//x", Ok("/x")),
            ("/a/%2E/b", Ok("/a/b")),
            ("/%7e", Ok("/~")),
            ("/a%20b", Ok("/a%20b")),
            // The README's examples.
            ("/%7euser/%41", Ok("/~user/A")),
            // Dot segments (RFC 3986 §5.2.4).
            ("/a/b/c/./../../g", Ok("/a/g")),
            ("/a/.", Ok("/a/")),
            ("/a/./", Ok("/a/")),
            ("/a/..", Ok("/")),
            ("/../../a", Ok("/a")),
            ("/./a", Ok("/a")),
            ("/a/b/../", Ok("/a/")),
            ("/.a/..b/.../a..", Ok("/.a/..b/.../a..")),
            ("/%2E%2E/a", Ok("/a")),
            ("/%2e./a/.%2E", Ok("/")),
            // Decoding: unreserved only, and not twice.
            ("/%61%62%2D%5F%30", Ok("/ab-_0")),
            ("/%252e", Ok("/%252e")),
            ("/%2f", Err(PathError::EscapedSlash)),
            ("/%3a%40", Ok("/%3A%40")),
            ("/caf%c3%a9", Ok("/caf%C3%A9")),
            ("/caf%C3%A9", Ok("/caf%C3%A9")),
            // Slashes.
            ("/", Ok("/")),
            ("//", Ok("/")),
            ("//a///b", Ok("/a/b")),
            ("/a//", Ok("/a/")),
            ("/a//../b", Ok("/b")),
            // Left alone.
            ("*", Ok("*")),
            ("/a:b@c;d=e,f!$&'()*+", Ok("/a:b@c;d=e,f!$&'()*+")),
            ("/café", Ok("/café")),
            // Rejected.
            ("", Err(PathError::NotOriginForm)),
            ("a/b", Err(PathError::NotOriginForm)),
            ("http://x/a", Err(PathError::NotOriginForm)),
            ("**", Err(PathError::NotOriginForm)),
            ("/a?b", Err(PathError::NotOriginForm)),
            ("/a#b", Err(PathError::NotOriginForm)),
            ("/a\\b", Err(PathError::Backslash)),
            ("/..\\a", Err(PathError::Backslash)),
            ("/%zz", Err(PathError::InvalidEscape)),
            ("/%4", Err(PathError::InvalidEscape)),
            ("/%", Err(PathError::InvalidEscape)),
            ("/%g1", Err(PathError::InvalidEscape)),
            ("/a\0b", Err(PathError::Nul)),
            ("/a%00b", Err(PathError::Nul)),
            ("/a\nb", Err(PathError::ControlCharacter)),
            ("/a\x7fb", Err(PathError::ControlCharacter)),
            // An error after something rewritable is still an error.
            ("/a/../%zz", Err(PathError::InvalidEscape)),
            ("/%41/%2F", Err(PathError::EscapedSlash)),
        ];
        for (input, expected) in cases {
            let got = norm(input);
            assert_eq!(got.as_deref().map_err(|e| *e), *expected, "input {input:?}");
        }
    }

    #[test]
    fn normal_paths_are_borrowed() {
        for path in [
            "/",
            "/a",
            "/a/",
            "/a/b.c/~d_e-f",
            "/a%20b",
            "/a%2Fb%5C",
            "*",
        ] {
            let mode = if path.contains("%2F") {
                EscapedSlashes::KeepUnchanged
            } else {
                EscapedSlashes::Reject
            };
            let got = normalize_path(path, mode).expect("valid path");
            assert!(matches!(got, Cow::Borrowed(p) if p == path), "{path:?}");
        }
        assert!(matches!(norm("/a/../b"), Ok(Cow::Owned(_))));
        assert!(matches!(norm("/%7e"), Ok(Cow::Owned(_))));
        assert!(matches!(norm("/%2f%2f"), Err(PathError::EscapedSlash)));
    }

    #[test]
    fn escaped_slash_modes() {
        let keep = |p| normalize_path(p, EscapedSlashes::KeepUnchanged);
        let unescape = |p| normalize_path(p, EscapedSlashes::UnescapeAndForward);
        assert_eq!(keep("/a%2fb").as_deref(), Ok("/a%2Fb"));
        assert_eq!(keep("/a%5c..").as_deref(), Ok("/a%5C.."));
        assert_eq!(keep("/a/%2F../b").as_deref(), Ok("/a/%2F../b"));
        assert_eq!(unescape("/a%2fb").as_deref(), Ok("/a/b"));
        assert_eq!(unescape("/a%5Cb").as_deref(), Ok("/a/b"));
        assert_eq!(unescape("/a%2F..%2Fb").as_deref(), Ok("/b"));
        assert_eq!(unescape("/a%2F%2F%2Fb").as_deref(), Ok("/a/b"));
        // A raw backslash is refused whatever the mode.
        assert_eq!(unescape("/a\\b"), Err(PathError::Backslash));
        assert_eq!(keep("/a\\b"), Err(PathError::Backslash));
    }

    #[test]
    fn errors_have_distinct_labels_and_messages() {
        let all = [
            PathError::NotOriginForm,
            PathError::EscapedSlash,
            PathError::Backslash,
            PathError::InvalidEscape,
            PathError::Nul,
            PathError::ControlCharacter,
        ];
        let kinds: std::collections::HashSet<_> = all.iter().map(|e| e.kind()).collect();
        let messages: std::collections::HashSet<_> = all.iter().map(|e| e.message()).collect();
        assert_eq!(kinds.len(), all.len());
        assert_eq!(messages.len(), all.len());
        assert_eq!(
            PathError::EscapedSlash.to_string(),
            PathError::EscapedSlash.message()
        );
    }

    /// Pieces that exercise every rule when glued together at random.
    const PIECES: &[&str] = &[
        "/", "/", "//", ".", "..", "a", "B", "~", "-", "%2e", "%2E", "%2f", "%2F", "%5c", "%41",
        "%7e", "%20", "%c3%a9", "%25", "%zz", "%4", "%", "%00", "\\", "?", "é", ":", "@", "*",
        "\0", "\n",
    ];

    fn pieces() -> impl Strategy<Value = String> {
        (
            any::<bool>(),
            prop::collection::vec(prop::sample::select(PIECES), 0..16),
        )
            .prop_map(|(slash, parts)| {
                let mut path = if slash {
                    "/".to_string()
                } else {
                    String::new()
                };
                path.extend(parts);
                path
            })
    }

    fn modes() -> impl Strategy<Value = EscapedSlashes> {
        prop_oneof![
            Just(EscapedSlashes::Reject),
            Just(EscapedSlashes::KeepUnchanged),
            Just(EscapedSlashes::UnescapeAndForward),
        ]
    }

    /// The invariants of a normalized path (other than `*`).
    fn assert_normal(out: &str, mode: EscapedSlashes) {
        assert!(out.starts_with('/'), "{out:?} starts with /");
        assert!(!out.contains("//"), "{out:?} has no //");
        let segments: Vec<&str> = out[1..].split('/').collect();
        assert!(
            !segments.iter().any(|s| *s == "." || *s == ".."),
            "{out:?} has no dot segment"
        );
        let bytes = out.as_bytes();
        for (i, _) in out.match_indices('%') {
            let value = escape_at(bytes, i).expect("escapes in the output are valid");
            assert!(!is_unreserved(value), "{out:?}: unreserved escape at {i}");
            assert!(
                !bytes[i + 1..i + 3].iter().any(u8::is_ascii_lowercase),
                "{out:?}: lower-case escape at {i}"
            );
            if mode != EscapedSlashes::KeepUnchanged {
                assert!(
                    value != b'/' && value != b'\\',
                    "{out:?}: escaped slash at {i}"
                );
            }
        }
    }

    fn check(input: &str, mode: EscapedSlashes) {
        if let Ok(out) = normalize_path(input, mode) {
            if input == "*" {
                return;
            }
            assert_normal(&out, mode);
            let again = normalize_path(&out, mode);
            assert!(
                matches!(again, Ok(Cow::Borrowed(p)) if p == out),
                "{input:?} → {out:?} → {again:?}: normalizing twice changes nothing"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn any_string_never_panics_and_output_is_normal(input in any::<String>(), mode in modes()) {
            check(&input, mode);
            check(&format!("/{input}"), mode);
        }

        #[test]
        fn glued_pieces_output_is_normal(input in pieces(), mode in modes()) {
            check(&input, mode);
        }

        #[test]
        fn plain_paths_are_borrowed_unchanged(
            segments in prop::collection::vec("[A-Za-z0-9._~-]{1,8}", 0..8),
            trailing in any::<bool>(),
        ) {
            let segments: Vec<String> =
                segments.into_iter().filter(|s| s != "." && s != "..").collect();
            let mut path = format!("/{}", segments.join("/"));
            if trailing && !segments.is_empty() {
                path.push('/');
            }
            let got = norm(&path);
            prop_assert!(matches!(got, Ok(Cow::Borrowed(p)) if p == path), "{path:?} → {got:?}");
        }
    }
}
