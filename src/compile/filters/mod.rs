//! Filters from weir's `HTTPFilter` CRD: each object compiled once per compile into
//! [`crate::snapshot::Filter`]s, then attached to the routes of the objects that name it.
//!
//! # Attachment
//!
//! An Ingress names filters of its own namespace in the annotation `weir.dev/filters`
//! (`"api-guard, cors"`, chain order); every route of the Ingress (rules and default backend)
//! runs them, in that order. A Gateway API `ExtensionRef` and ingress-nginx annotations will
//! go through [`FilterSet::chain`] the same way, so they produce the same filters.
//!
//! # Failure rule: closed, for every kind
//!
//! A named filter that is missing, or whose spec does not compile, becomes a
//! [`Filter::Deny`] in the chain at its position: the routes answer **500** with a body
//! naming the filter, and the Ingress gets a `ResolvedRefs` condition (`FilterNotFound`).
//! The filter itself reports `Accepted: False` with the reason and the field path. This is
//! required for access control (BasicAuth, ExternalAuth, IPAccess, RateLimit: never open),
//! and weir applies it to the other kinds too: a route whose declared behaviour cannot be
//! honoured (a CORS policy, a rewrite, a body limit) answers an error that says so rather
//! than serve something its owner did not declare — the Gateway API's rule for unresolvable
//! filters. One bad entry fails the whole filter, so a chain never runs half a filter.
//!
//! # One file per kind
//!
//! Each kind's validation lives in its own file, from the CRD type to the snapshot type;
//! errors carry the field path (`spec.filters[2].cors.allowOrigins[0]`) for the condition.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::api::httpfilter::{FilterEntry, FilterType, HTTPFilter};
use crate::api::{condition_types, reasons};
use crate::snapshot::{DirectResponse, Filter};
use crate::store::{ObjectKey, Objects};

use super::ObjectRef;
use super::ir::Source;
use super::status::Status;

mod basic_auth;
mod body_limit;
mod concurrency_limit;
mod cors;
mod error_pages;
mod external_auth;
mod header_modifier;
mod ip_access;
mod rate_limit;
mod redirect;
mod request_mirror;
mod url_rewrite;

/// Kind of the CRD, as conditions name it.
pub(super) const HTTP_FILTER: &str = "HTTPFilter";

/// Why one entry of an `HTTPFilter` does not compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FieldError {
    /// The field, relative to the entry (`cors.allowOrigins[0]`); empty for the entry itself.
    pub(super) field: String,
    /// What is wrong with it.
    pub(super) message: String,
    /// `InvalidFilter`, or `RefNotFound` for a missing Secret or Service.
    pub(super) reason: &'static str,
}

impl FieldError {
    /// An invalid value at `field`.
    pub(super) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
            reason: reasons::INVALID_FILTER,
        }
    }

    /// A referenced object at `field` is missing or unusable.
    pub(super) fn missing_ref(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
            reason: reasons::FILTER_REF_NOT_FOUND,
        }
    }
}

/// What a kind's compile function may look at besides its own settings.
pub(super) struct EntryContext<'a> {
    /// The filter object.
    pub(super) key: &'a ObjectKey,
    /// Every object (Secrets of `BasicAuth`, Services of `ExternalAuth` and `RequestMirror`).
    pub(super) objects: &'a Objects,
}

/// One `HTTPFilter`, compiled.
#[derive(Debug, Clone)]
enum Outcome {
    /// Its filters, in order.
    Accepted(Arc<[Filter]>),
    /// Why it does not compile: the answer its users give instead.
    Rejected(DirectResponse),
}

/// Every `HTTPFilter`, compiled once, and who uses which.
#[derive(Debug, Default)]
pub(super) struct FilterSet {
    compiled: BTreeMap<ObjectKey, Outcome>,
    /// Users of each filter (for `status.usedBy`).
    used_by: BTreeMap<ObjectKey, Vec<ObjectRef>>,
}

impl FilterSet {
    /// Compile every `HTTPFilter` of `objects`, reporting each one's `Accepted` condition.
    pub(super) fn compile(objects: &Objects, status: &mut Status) -> FilterSet {
        let mut set = FilterSet::default();
        for (key, filter) in &objects.http_filters {
            let source = Source {
                kind: HTTP_FILTER,
                key,
                generation: filter.metadata.generation,
                metrics_per_route: false,
            };
            let ctx = EntryContext { key, objects };
            // An accepted filter has no diagnostic: its status writer publishes `Accepted: True`
            // for a filter without one.
            let outcome = match compile_filter(filter, &ctx) {
                Ok(filters) => Outcome::Accepted(filters.into()),
                Err((index, e)) => {
                    let field = if e.field.is_empty() {
                        format!("spec.filters[{index}]")
                    } else {
                        format!("spec.filters[{index}].{}", e.field)
                    };
                    let type_ = if e.reason == reasons::FILTER_REF_NOT_FOUND {
                        condition_types::RESOLVED_REFS
                    } else {
                        condition_types::ACCEPTED
                    };
                    let message = format!("{field}: {}", e.message);
                    status.error(&source, type_, e.reason, message.clone());
                    if type_ != condition_types::ACCEPTED {
                        status.error(
                            &source,
                            condition_types::ACCEPTED,
                            e.reason,
                            message.clone(),
                        );
                    }
                    Outcome::Rejected(DirectResponse {
                        status: 500,
                        body: format!("filter {key} is invalid: {message}\n"),
                    })
                }
            };
            set.compiled.insert(key.clone(), outcome);
        }
        set
    }

    /// The chain of the filters named by `names` (a `weir.dev/filters` value) in
    /// `namespace`, for the routes of `user`. A missing or rejected filter becomes a
    /// [`Filter::Deny`] (see the module docs) and a condition on `user`.
    pub(super) fn chain(
        &mut self,
        user: &Source<'_>,
        namespace: &str,
        names: &str,
        status: &mut Status,
    ) -> Vec<Filter> {
        let mut chain = Vec::new();
        for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let key = ObjectKey::new(namespace, name);
            let users = self.used_by.entry(key.clone()).or_default();
            if !users.contains(&user.object()) {
                users.push(user.object());
            }
            match self.compiled.get(&key) {
                Some(Outcome::Accepted(filters)) => chain.extend(filters.iter().cloned()),
                Some(Outcome::Rejected(deny)) => {
                    status.error(
                        user,
                        condition_types::RESOLVED_REFS,
                        reasons::FILTER_NOT_FOUND,
                        format!(
                            "HTTPFilter {key} (annotation weir.dev/filters) is not accepted; \
                             its routes answer 500"
                        ),
                    );
                    chain.push(Filter::Deny(deny.clone()));
                }
                None => {
                    status.error(
                        user,
                        condition_types::RESOLVED_REFS,
                        reasons::FILTER_NOT_FOUND,
                        format!(
                            "HTTPFilter {key} (annotation weir.dev/filters) not found; its \
                             routes answer 500"
                        ),
                    );
                    chain.push(Filter::Deny(DirectResponse {
                        status: 500,
                        body: format!("filter {key} not found\n"),
                    }));
                }
            }
        }
        chain
    }

    /// The objects using each filter, sorted (for `status.usedBy`).
    pub(super) fn into_users(self) -> BTreeMap<ObjectKey, Vec<ObjectRef>> {
        let mut users = self.used_by;
        for list in users.values_mut() {
            list.sort();
        }
        users
    }
}

/// Compile every entry, stopping at the first that does not compile (its index and error).
fn compile_filter(
    filter: &HTTPFilter,
    ctx: &EntryContext<'_>,
) -> Result<Vec<Filter>, (usize, FieldError)> {
    if filter.spec.filters.is_empty() {
        return Err((
            0,
            FieldError::invalid("", "spec.filters must have at least one entry"),
        ));
    }
    filter
        .spec
        .filters
        .iter()
        .enumerate()
        .map(|(i, entry)| compile_entry(entry, ctx).map_err(|e| (i, e)))
        .collect()
}

/// One entry: the settings field its type names (and no other), compiled by its kind's file.
pub(super) fn compile_entry(
    entry: &FilterEntry,
    ctx: &EntryContext<'_>,
) -> Result<Filter, FieldError> {
    let set = set_fields(entry);
    let type_ = entry.type_;
    if let Some(other) = set.iter().find(|t| **t != type_) {
        return Err(FieldError::invalid(
            other.field(),
            format!("must not be set when type is {}", type_.name()),
        ));
    }
    let missing =
        || FieldError::invalid(type_.field(), format!("required for type {}", type_.name()));
    let within = |e: FieldError| FieldError {
        field: if e.field.is_empty() {
            type_.field().to_owned()
        } else {
            format!("{}.{}", type_.field(), e.field)
        },
        ..e
    };
    let f = match type_ {
        FilterType::RequestHeaderModifier => Filter::RequestHeaderModifier(
            header_modifier::compile(entry.request_header_modifier.as_ref().ok_or_else(missing)?)
                .map_err(within)?,
        ),
        FilterType::ResponseHeaderModifier => Filter::ResponseHeaderModifier(
            header_modifier::compile(
                entry
                    .response_header_modifier
                    .as_ref()
                    .ok_or_else(missing)?,
            )
            .map_err(within)?,
        ),
        FilterType::RequestRedirect => Filter::RequestRedirect(
            redirect::compile(entry.request_redirect.as_ref().ok_or_else(missing)?)
                .map_err(within)?,
        ),
        FilterType::UrlRewrite => Filter::UrlRewrite(
            url_rewrite::compile(entry.url_rewrite.as_ref().ok_or_else(missing)?)
                .map_err(within)?,
        ),
        FilterType::Cors => Filter::Cors(Arc::new(
            cors::compile(entry.cors.as_ref().ok_or_else(missing)?).map_err(within)?,
        )),
        FilterType::RateLimit => Filter::RateLimit(Arc::new(
            rate_limit::compile(entry.rate_limit.as_ref().ok_or_else(missing)?).map_err(within)?,
        )),
        FilterType::IpAccess => Filter::IpAccess(Arc::new(
            ip_access::compile(entry.ip_access.as_ref().ok_or_else(missing)?).map_err(within)?,
        )),
        FilterType::BasicAuth => Filter::BasicAuth(Arc::new(
            basic_auth::compile(entry.basic_auth.as_ref().ok_or_else(missing)?, ctx)
                .map_err(within)?,
        )),
        FilterType::ExternalAuth => Filter::ExternalAuth(Arc::new(
            external_auth::compile(entry.external_auth.as_ref().ok_or_else(missing)?, ctx)
                .map_err(within)?,
        )),
        FilterType::RequestMirror => Filter::RequestMirror(
            request_mirror::compile(entry.request_mirror.as_ref().ok_or_else(missing)?, ctx)
                .map_err(within)?,
        ),
        FilterType::BodyLimit => Filter::BodyLimit(
            body_limit::compile(entry.body_limit.as_ref().ok_or_else(missing)?).map_err(within)?,
        ),
        FilterType::ErrorPages => Filter::ErrorPages(Arc::new(
            error_pages::compile(entry.error_pages.as_ref().ok_or_else(missing)?, ctx)
                .map_err(within)?,
        )),
        FilterType::ConcurrencyLimit => Filter::ConcurrencyLimit(Arc::new(
            concurrency_limit::compile(entry.concurrency_limit.as_ref().ok_or_else(missing)?)
                .map_err(within)?,
        )),
    };
    Ok(f)
}

/// A limit filter's `statusCode`: 400-599, `default` when unset.
pub(super) fn status_code(code: Option<i32>, default: u16) -> Result<u16, FieldError> {
    match code {
        None => Ok(default),
        Some(s) => u16::try_from(s)
            .ok()
            .filter(|s| (400..=599).contains(s))
            .ok_or_else(|| FieldError::invalid("statusCode", format!("{s} is not 400-599"))),
    }
}

/// A limit filter's `exempt` CIDRs (or addresses).
pub(super) fn exempt(list: &[String]) -> Result<Vec<crate::net::Cidr>, FieldError> {
    list.iter()
        .enumerate()
        .map(|(i, c)| {
            c.parse()
                .map_err(|e| FieldError::invalid(at("exempt", i), format!("{c:?}: {e}")))
        })
        .collect()
}

/// The types whose settings field is set on `entry`.
fn set_fields(entry: &FilterEntry) -> Vec<FilterType> {
    let FilterEntry {
        type_: _,
        request_header_modifier,
        response_header_modifier,
        request_redirect,
        url_rewrite,
        cors,
        rate_limit,
        ip_access,
        basic_auth,
        external_auth,
        request_mirror,
        body_limit,
        error_pages,
        concurrency_limit,
    } = entry;
    [
        (
            request_header_modifier.is_some(),
            FilterType::RequestHeaderModifier,
        ),
        (
            response_header_modifier.is_some(),
            FilterType::ResponseHeaderModifier,
        ),
        (request_redirect.is_some(), FilterType::RequestRedirect),
        (url_rewrite.is_some(), FilterType::UrlRewrite),
        (cors.is_some(), FilterType::Cors),
        (rate_limit.is_some(), FilterType::RateLimit),
        (ip_access.is_some(), FilterType::IpAccess),
        (basic_auth.is_some(), FilterType::BasicAuth),
        (external_auth.is_some(), FilterType::ExternalAuth),
        (request_mirror.is_some(), FilterType::RequestMirror),
        (body_limit.is_some(), FilterType::BodyLimit),
        (error_pages.is_some(), FilterType::ErrorPages),
        (concurrency_limit.is_some(), FilterType::ConcurrencyLimit),
    ]
    .into_iter()
    .filter_map(|(set, t)| set.then_some(t))
    .collect()
}

/// An indexed field name (`allowOrigins[3]`).
pub(super) fn at(field: &str, index: usize) -> String {
    format!("{field}[{index}]")
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}
