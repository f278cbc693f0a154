//! GRPCRoutes in their HTTPRoute form: a gRPC call is an HTTP/2 POST to `/<service>/<method>`,
//! so each GRPCRoute match is a path match (plus its header matches), and its filters and
//! weighted backendRefs are HTTPRoute's own types. The front end then attaches, matches and
//! reports them as it does HTTPRoutes, under their own kind.

use crate::api::gateway::{
    GRPCMethodMatch, GRPCRouteMatch, HTTPPathMatch, HTTPRoute, HTTPRouteMatch, HTTPRouteRule,
    HTTPRouteSpec,
};
use crate::store::{ObjectKey, Objects};

/// Every GRPCRoute as an HTTPRoute (metadata and status kept), in key order.
pub(in crate::compile) fn as_http_routes(objects: &Objects) -> Vec<(ObjectKey, HTTPRoute)> {
    objects
        .grpc_routes
        .iter()
        .map(|(key, route)| {
            let spec = &route.spec;
            let rules = spec
                .rules
                .iter()
                .map(|rule| HTTPRouteRule {
                    name: rule.name.clone(),
                    matches: rule.matches.iter().map(http_match).collect(),
                    filters: rule.filters.clone(),
                    backend_refs: rule.backend_refs.clone(),
                    timeouts: None,
                })
                .collect();
            let mut http = HTTPRoute::new(
                "",
                HTTPRouteSpec {
                    parent_refs: spec.parent_refs.clone(),
                    hostnames: spec.hostnames.clone(),
                    rules,
                },
            );
            http.metadata = route.metadata.clone();
            http.status = route.status.clone();
            (key.clone(), http)
        })
        .collect()
}

/// A GRPCRoute match as an HTTPRoute match on the path `/<service>/<method>`.
fn http_match(m: &GRPCRouteMatch) -> HTTPRouteMatch {
    HTTPRouteMatch {
        path: m.method.as_ref().and_then(path_match),
        headers: m.headers.clone(),
        query_params: Vec::new(),
        method: None,
    }
}

/// The path match of a method match; `None`: every call.
fn path_match(m: &GRPCMethodMatch) -> Option<HTTPPathMatch> {
    let (service, method) = (m.service.as_deref(), m.method.as_deref());
    let regex = m.type_.as_deref() == Some("RegularExpression");
    let (type_, value) = match (regex, service, method) {
        (_, None, None) => return None,
        (false, Some(s), Some(m)) => ("Exact", format!("/{s}/{m}")),
        (false, Some(s), None) => ("PathPrefix", format!("/{s}")),
        (false, None, Some(m)) => ("RegularExpression", format!("/[^/]+/{}", regex::escape(m))),
        (true, s, m) => (
            "RegularExpression",
            format!("/(?:{})/(?:{})", s.unwrap_or("[^/]+"), m.unwrap_or("[^/]+")),
        ),
    };
    Some(HTTPPathMatch {
        type_: Some(type_.to_owned()),
        value: Some(value),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn method(
        type_: Option<&str>,
        service: Option<&str>,
        method: Option<&str>,
    ) -> Option<(String, String)> {
        path_match(&GRPCMethodMatch {
            type_: type_.map(str::to_owned),
            service: service.map(str::to_owned),
            method: method.map(str::to_owned),
        })
        .map(|p| (p.type_.unwrap_or_default(), p.value.unwrap_or_default()))
    }

    #[test]
    fn method_matches_become_path_matches() {
        let m = |t: &str, v: &str| Some((t.to_owned(), v.to_owned()));
        assert_eq!(method(None, None, None), None);
        assert_eq!(
            method(None, Some("echo.Echo"), Some("Say")),
            m("Exact", "/echo.Echo/Say")
        );
        assert_eq!(
            method(None, Some("echo.Echo"), None),
            m("PathPrefix", "/echo.Echo")
        );
        assert_eq!(
            method(Some("Exact"), None, Some("Say.it")),
            m("RegularExpression", r"/[^/]+/Say\.it")
        );
        assert_eq!(
            method(Some("RegularExpression"), Some(r"echo\..*"), None),
            m("RegularExpression", r"/(?:echo\..*)/(?:[^/]+)")
        );
    }
}
