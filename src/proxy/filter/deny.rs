//! `Deny`: the fail-closed stand-in compile puts where a referenced filter is missing or
//! invalid. Every request of the route gets the compiled status and body (500 and a message
//! naming the filter), so a broken access-control filter never lets a request through.

use bytes::Bytes;
use http::StatusCode;

use crate::proxy::error::LocalReply;
use crate::snapshot::DirectResponse;

/// The answer to every request.
pub(crate) fn reply(d: &DirectResponse) -> LocalReply {
    let status = StatusCode::from_u16(d.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    LocalReply::text(status, Bytes::from(d.body.clone()))
}
