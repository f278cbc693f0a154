//! `ErrorPages` (ingress-nginx `default-backend` and `custom-http-errors`): the requests
//! weir sends to the error cluster. The pipeline runs it around the upstream exchange:
//! a route backend without endpoints forwards the request there ([`Plan::divert`]); an
//! upstream answer with a chosen status is dropped and replaced by the error cluster's
//! answer to [`Plan::request`] (`GET /`, `HEAD /` for a HEAD), as ingress-nginx's
//! `proxy_intercept_errors on` + `error_page <code> = @custom_…` location does. That request
//! is never replaced itself, so there are no loops.

use std::sync::Arc;

use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Uri, request};

use super::header_modifier;
use crate::proxy::body::Body;
use crate::proxy::upstream::ClusterState;
use crate::snapshot::{ClusterKey, ErrorPages};

static X_CODE: HeaderName = HeaderName::from_static("x-code");
static X_FORMAT: HeaderName = HeaderName::from_static("x-format");
static X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
static X_NAMESPACE: HeaderName = HeaderName::from_static("x-namespace");
static X_SERVICE_NAME: HeaderName = HeaderName::from_static("x-service-name");
static X_SERVICE_PORT: HeaderName = HeaderName::from_static("x-service-port");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// What one request needs to be diverted or to have its answer replaced.
pub(crate) struct Plan<'a> {
    pub(crate) pages: &'a ErrorPages,
    /// The error cluster.
    pub(crate) state: Arc<ClusterState>,
    /// The headers both kinds of request carry (`X-Format`, `X-Namespace`, …).
    common: HeaderMap,
    /// The request's URI before any rewrite (`X-Original-URI`).
    original_uri: Option<HeaderValue>,
}

impl<'a> Plan<'a> {
    /// The plan for a request to `backend` (the route backend's cluster), its head as it
    /// arrived (`req`, before the filters ran).
    pub(crate) fn new(
        pages: &'a ErrorPages,
        state: Arc<ClusterState>,
        backend: &ClusterKey,
        req: &request::Parts,
        request_id: &HeaderValue,
    ) -> Self {
        let mut common = HeaderMap::new();
        if let Some(accept) = req.headers.get(header::ACCEPT) {
            common.insert(X_FORMAT.clone(), accept.clone());
        }
        let text = |s: &str| HeaderValue::from_str(s).ok();
        for (name, value) in [
            (&X_NAMESPACE, text(backend.namespace())),
            (&X_SERVICE_NAME, text(backend.service())),
            (&X_SERVICE_PORT, text(&backend.port().to_string())),
        ] {
            if let Some(v) = value {
                common.insert(name.clone(), v);
            }
        }
        common.insert(
            crate::proxy::headers::X_REQUEST_ID.clone(),
            request_id.clone(),
        );
        header_modifier::apply(&pages.request_headers, &mut common);
        let original_uri = req.uri.path_and_query().and_then(|pq| text(pq.as_str()));
        Plan {
            pages,
            state,
            common,
            original_uri,
        }
    }

    /// Diverts `req` (whose backend has no endpoint) to the error cluster: it gets
    /// `X-Code: 503` and the common headers, as ingress-nginx's `custom-default-backend-…`
    /// upstream does.
    pub(crate) fn divert<B>(&self, req: &mut Request<B>) {
        let headers = req.headers_mut();
        headers.insert(X_CODE.clone(), HeaderValue::from_static("503"));
        for (name, value) in &self.common {
            headers.insert(name.clone(), value.clone());
        }
    }

    /// The request whose answer replaces an upstream answer with `status`.
    pub(crate) fn request(
        &self,
        status: u16,
        head: bool,
        client: std::net::IpAddr,
    ) -> Request<Body> {
        let mut sub = Request::new(Body::empty());
        *sub.method_mut() = if head { Method::HEAD } else { Method::GET };
        *sub.uri_mut() = Uri::from_static("/");
        let headers = sub.headers_mut();
        *headers = self.common.clone();
        headers.insert(X_CODE.clone(), HeaderValue::from(status));
        if let Some(uri) = &self.original_uri {
            headers.insert(X_ORIGINAL_URI.clone(), uri.clone());
        }
        if let Ok(v) = HeaderValue::from_str(&client.to_string()) {
            headers.insert(X_FORWARDED_FOR.clone(), v);
        }
        sub
    }
}
