use proptest::prelude::*;

use super::*;

/// What the guard concluded after following `chunks` (stopping where it cuts, as reads do).
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    /// `refuses(i)` for the first few request indexes.
    refused: Vec<Option<Flaw>>,
    cut: bool,
}

fn follow(chunks: &[&[u8]]) -> Seen {
    let findings = Arc::new(Findings::default());
    let mut g = FramingGuard::new((), findings.clone());
    let mut cut = false;
    for c in chunks {
        if g.observe(c).is_err() {
            cut = true;
            break;
        }
    }
    Seen {
        refused: (0..4).map(|i| findings.refuses(i)).collect(),
        cut,
    }
}

fn run(stream: &[u8]) -> Seen {
    let whole = follow(&[stream]);
    // Byte by byte gives the same answer.
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(
        follow(&bytes),
        whole,
        "byte by byte: {:?}",
        String::from_utf8_lossy(stream)
    );
    whole
}

fn clean(s: &Seen) -> bool {
    !s.cut && s.refused.iter().all(Option::is_none)
}

/// The flaw refusing request `i`, with every earlier request served.
fn refused_from(s: &Seen, i: usize) -> Option<Flaw> {
    assert!(!s.cut, "{s:?}");
    assert!(s.refused[..i].iter().all(Option::is_none), "{s:?}");
    s.refused[i]
}

const CHUNKED: &[u8] = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";

#[test]
fn flags_content_length_with_transfer_encoding() {
    let s = run(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(refused_from(&s, 0), Some(Flaw::Ambiguous));
}

#[test]
fn follows_bodies_to_find_the_next_head() {
    let stream: &[u8] = b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloPOST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nCL: 1\r\n0\r\nX: y\r\n\r\nGET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
    // The third request is the ambiguous one; the two before it are served.
    assert_eq!(refused_from(&run(stream), 2), Some(Flaw::Ambiguous));
    // Header-looking bytes inside bodies are not heads.
    assert!(clean(&run(
        b"POST / HTTP/1.1\r\nContent-Length: 55\r\n\r\nX: 1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
    )));
    // Equal Content-Length values, as hyper accepts them, frame the body.
    assert_eq!(
        refused_from(
            &run(b"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            1
        ),
        Some(Flaw::Ambiguous)
    );
}

#[test]
fn heads_ending_in_bare_lf_are_followed_like_hyper_does() {
    let s = run(b"GET / HTTP/1.1\nHost: a\n\nGET / HTTP/1.1\nContent-Length: 1\nTransfer-Encoding: chunked\n\n");
    assert_eq!(refused_from(&s, 1), Some(Flaw::Ambiguous));
}

#[test]
fn steps_aside_for_http2() {
    let s = run(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\nGET / HTTP/9.9\r\n");
    assert!(clean(&s), "{s:?}");
}

#[test]
fn flags_malformed_chunked_bodies() {
    for body in [
        &b"zz\r\nhello\r\n0\r\n\r\n"[..],
        b"10000000000000000\r\n",
        b"-5\r\nhello\r\n0\r\n\r\n",
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b" 5\r\nhello\r\n0\r\n\r\n",
        b"\r\n",
        b"5\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloXX",
        b"5\r\nhello\rX",
        b"5\r\nhello\n",
        b"5;\r\nhello\r\n0\r\n\r\n",
        b"5;=x\r\n",
        b"5;a=\r\n",
        b"5;a=\"x\r\n",
        b"5;a b\r\n",
        b"5;a\nhello\r\n",
        b"5 x\r\n",
        b"5\r\nhello\r\n0\r\nX: y\n\r\n",
        b"0\r\n\n",
    ] {
        let mut stream = CHUNKED.to_vec();
        stream.extend_from_slice(body);
        let s = run(&stream);
        assert_eq!(
            refused_from(&s, 0),
            Some(Flaw::BadChunk),
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn accepts_well_formed_chunk_lines() {
    for line in [
        &b"5"[..],
        b"A",
        b"a",
        b"00000000000000000005",
        b"ffffffffffffffff",
        b"5 ",
        b"5\t",
        b"5;a",
        b"5;a=b",
        b"5 ; a = b ; c",
        b"5;a=\"quoted \\\" string\"",
        b"5;!#$%&'*+-.^_`|~=1",
    ] {
        assert!(
            chunk_size(line).is_some(),
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }
    assert_eq!(chunk_size(b"ffffffffffffffff"), Some(u64::MAX));
    assert_eq!(chunk_size(b"1A;x=y"), Some(26));
    let s = run(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nX: y\r\n\r\nGET / HTTP/1.1\r\n\r\n");
    assert!(clean(&s), "{s:?}");
}

#[test]
fn cuts_request_lines_that_are_not_http1() {
    for line in [
        &b"INVALID CONNECTION PREFACE\r\n\r\n"[..],
        b"GET / HTTP/1.2\r\n",
        b"GET / HTTP/2.0\r\n",
        b"GET / HTTP/1.1x\r\n",
        b"GET / HTTX/1.1\r\n",
        b"GET / http/1.1\r\n",
        b"GET / HTTP/1.1 \r\n",
        b"GET / HTTP/1.1\rX\n",
        b"GET  / HTTP/1.1\r\n",
        b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n",
        b"PRI * HTTP/2.0\n",
        b"\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ] {
        assert!(run(line).cut, "{:?}", String::from_utf8_lossy(line));
    }
    // The cut happens at the first impossible byte, before the line ends (hyper must not
    // get the bytes that would make it answer 400).
    assert!(follow(&[b"GET / HTTP/1.3"]).cut);
    assert!(follow(&[b"INVALID CONNECTION PREFA"]).cut);
    // Not at the first request only.
    assert!(run(b"GET / HTTP/1.1\r\n\r\nGET / HTTP/3\r\n").cut);
}

#[test]
fn leaves_other_request_lines_to_hyper() {
    for stream in [
        &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"GET / HTTP/1.0\n\n",
        b"\r\n\r\nGET / HTTP/1.1\r\n\r\n",
        b"PRI * HTTP/1.1\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        // No version to judge: hyper answers 400.
        b"GET /\r\n\r\n",
        b"\x16\x03\x01garbage\r\n\r\n",
    ] {
        assert!(clean(&run(stream)), "{:?}", String::from_utf8_lossy(stream));
    }
}

// ---------------------------------------------------------------- properties

fn token() -> impl Strategy<Value = String> {
    "[!#$%&'*+.^_`|~0-9A-Za-z-]{1,8}"
}

fn quoted() -> impl Strategy<Value = String> {
    prop_oneof![r#"[ !#-\[\]-~]{0,6}"#, r#"[a-z]{0,2}\\"[a-z]{0,2}"#]
        .prop_map(|s| format!("\"{s}\""))
}

fn extensions() -> impl Strategy<Value = String> {
    let ext = (
        "[ \t]{0,2}",
        "[ \t]{0,2}",
        token(),
        proptest::option::of(prop_oneof![token(), quoted()]),
    )
        .prop_map(|(a, b, name, value)| match value {
            Some(v) => format!("{a};{b}{name}={v}"),
            None => format!("{a};{b}{name}"),
        });
    proptest::collection::vec(ext, 0..3).prop_map(|v| v.concat())
}

/// One well-formed request: a head, and a body framed by Content-Length or chunked.
fn request() -> impl Strategy<Value = Vec<u8>> {
    let chunk = (
        proptest::collection::vec(any::<u8>(), 1..40),
        extensions(),
        any::<bool>(),
    );
    let body = prop_oneof![
        Just(None),
        proptest::collection::vec(any::<u8>(), 0..60).prop_map(|b| Some(Ok(b))),
        (
            proptest::collection::vec(chunk, 0..4),
            extensions(),
            proptest::collection::vec(("[A-Za-z]{1,6}", "[ -~]{0,10}"), 0..2),
        )
            .prop_map(|c| Some(Err(c))),
    ];
    (
        "(GET|POST|PUT|PATCH|DELETE|OPTIONS|PRI)",
        "/[!-~]{0,20}",
        "HTTP/1\\.[01]",
        proptest::collection::vec(("[A-Za-z][A-Za-z0-9-]{0,10}", "[ -~]{0,20}"), 0..4),
        body,
    )
        .prop_map(|(method, target, version, headers, body)| {
            let mut out = format!("{method} {target} {version}\r\n").into_bytes();
            for (name, value) in headers {
                let lower = name.to_ascii_lowercase();
                if ["content-length", "transfer-encoding", "upgrade"].contains(&lower.as_str()) {
                    continue;
                }
                out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
            }
            match body {
                None => out.extend_from_slice(b"\r\n"),
                Some(Ok(bytes)) => {
                    out.extend_from_slice(
                        format!("Content-Length: {}\r\n\r\n", bytes.len()).as_bytes(),
                    );
                    out.extend_from_slice(&bytes);
                }
                Some(Err((chunks, last_ext, trailers))) => {
                    out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                    for (data, ext, upper) in chunks {
                        let size = if upper {
                            format!("{:X}", data.len())
                        } else {
                            format!("{:x}", data.len())
                        };
                        out.extend_from_slice(format!("{size}{ext}\r\n").as_bytes());
                        out.extend_from_slice(&data);
                        out.extend_from_slice(b"\r\n");
                    }
                    out.extend_from_slice(format!("0{last_ext}\r\n").as_bytes());
                    for (name, value) in trailers {
                        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
                    }
                    out.extend_from_slice(b"\r\n");
                }
            }
            out
        })
}

/// A chunked request whose first chunk-size line (or the CRLF after its data) is malformed.
fn bad_chunked_request() -> impl Strategy<Value = Vec<u8>> {
    let bad_line = prop_oneof![
        // Not hex, or nothing before the extension.
        "[g-zG-Z -/:-@]{1,4}",
        ";[a-z]{1,3}",
        // More than 64 bits.
        "[1-9a-f][0-9a-f]{16,20}",
        // An extension without a name, or a value that is neither token nor quoted-string.
        "[1-9];[ \t]*",
        "[1-9];=[a-z]{1,3}",
        "[1-9];[a-z]{1,3}=",
        "[1-9];[a-z]{1,3}=\"[a-z]{0,3}",
        "[1-9];[a-z]{1,3}[@,/]",
    ]
    .prop_map(|line| format!("{line}\r\n").into_bytes());
    let lone_lf = "[1-9](;[a-z]{1,3})?".prop_map(|line| format!("{line}\n").into_bytes());
    let missing_crlf = ("[1-9]", "[!-~]{2}").prop_filter_map("not CRLF", |(size, after)| {
        (after != "\r\n").then(|| {
            let n: usize = size.parse().unwrap_or(1);
            let mut out = format!("{size}\r\n").into_bytes();
            out.extend(std::iter::repeat_n(b'x', n));
            out.extend_from_slice(after.as_bytes());
            out
        })
    });
    prop_oneof![bad_line, lone_lf, missing_crlf].prop_map(|body| {
        let mut out = CHUNKED.to_vec();
        out.extend_from_slice(&body);
        out
    })
}

/// A request line with a version that is not HTTP/1.0 or HTTP/1.1.
fn bad_version_line() -> impl Strategy<Value = Vec<u8>> {
    ("[A-Z]{1,7}", "/[!-~]{0,10}", "[!-~]{1,12}")
        .prop_filter("a valid version", |(_, _, v)| {
            v != "HTTP/1.0" && v != "HTTP/1.1"
        })
        .prop_map(|(m, t, v)| format!("{m} {t} {v}\r\nHost: a\r\n\r\n").into_bytes())
}

/// `stream` cut into pieces at the given (sorted, deduplicated) offsets.
fn split<'a>(stream: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    at.sort_unstable();
    at.dedup();
    let mut pieces = Vec::new();
    let mut from = 0;
    for c in at {
        pieces.push(&stream[from..c]);
        from = c;
    }
    pieces.push(&stream[from..]);
    pieces
}

proptest! {
    #[test]
    fn never_panics_and_reads_split_anywhere_agree(
        stream in proptest::collection::vec(any::<u8>(), 0..300),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        prop_assert_eq!(follow(&split(&stream, &cuts)), follow(&[&stream]));
    }

    #[test]
    fn never_flags_well_formed_requests(
        requests in proptest::collection::vec(request(), 1..4),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let stream = requests.concat();
        let seen = follow(&split(&stream, &cuts));
        prop_assert!(clean(&seen), "{:?} {:?}", seen, String::from_utf8_lossy(&stream));
    }

    #[test]
    fn flags_every_malformed_chunked_body_on_its_request(
        before in proptest::collection::vec(request(), 0..3),
        bad in bad_chunked_request(),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let n = before.len();
        let mut stream = before.concat();
        stream.extend_from_slice(&bad);
        let seen = follow(&split(&stream, &cuts));
        prop_assert!(!seen.cut);
        prop_assert!(seen.refused[..n].iter().all(Option::is_none), "{:?}", seen);
        prop_assert_eq!(seen.refused[n], Some(Flaw::BadChunk), "{:?}", String::from_utf8_lossy(&bad));
    }

    #[test]
    fn cuts_every_request_line_with_another_version(
        before in proptest::collection::vec(request(), 0..3),
        bad in bad_version_line(),
    ) {
        let mut stream = before.concat();
        stream.extend_from_slice(&bad);
        prop_assert!(run(&stream).cut, "{:?}", String::from_utf8_lossy(&bad));
    }
}
