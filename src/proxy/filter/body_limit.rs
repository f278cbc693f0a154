//! `BodyLimit`: request bodies longer than the limit get **413**.
//!
//! - A declared `Content-Length` over the limit is refused in the request phase, before
//!   anything is forwarded.
//! - A body of unknown length (HTTP/1.1 chunked, HTTP/2 without `content-length`) is
//!   counted as it streams: the filter hands the limit to the pipeline ([`Limit`], a request
//!   extension; the smallest of several wins), which wraps the body (`Body::limited`). A body
//!   that passes the limit fails, the upstream exchange stops, and — when no response has
//!   started — the client gets 413 ([`Failure::BodyTooLarge`]); a response already under way
//!   is cut instead.
//!
//! A declared length needs no counting: hyper holds both protocols to it.

use http::{header, request};

use crate::proxy::error::{Failure, LocalReply};
use crate::snapshot::BodyLimit;

/// The limit the pipeline applies to a streamed request body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limit(pub(crate) u64);

/// Request phase: refuse a declared length over the limit, or ask for the body to be
/// counted.
pub(crate) fn on_request(b: &BodyLimit, req: &mut request::Parts) -> Result<(), Box<LocalReply>> {
    let max = b.max_request_bytes;
    let declared = req
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(len) if len > max => Err(Box::new(Failure::BodyTooLarge.reply())),
        Some(_) => Ok(()),
        None => {
            match req.extensions.get_mut::<Limit>() {
                Some(limit) => limit.0 = limit.0.min(max),
                None => {
                    req.extensions.insert(Limit(max));
                }
            }
            Ok(())
        }
    }
}
