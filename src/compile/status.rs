//! The status accumulator every pass writes its conditions into.

use super::{Condition, ObjectRef, Severity, StatusReport};
use crate::store::ObjectKey;

/// Collects conditions per object; identical conditions on one object are kept once (a
/// missing Service referenced by ten paths of one Ingress is one diagnostic).
#[derive(Debug, Default)]
pub(super) struct Status {
    pub(super) report: StatusReport,
}

impl Status {
    /// Record a condition on an object.
    pub(super) fn push(
        &mut self,
        kind: &'static str,
        key: &ObjectKey,
        type_: &'static str,
        severity: Severity,
        reason: &'static str,
        message: String,
    ) {
        let condition = Condition {
            type_,
            severity,
            reason,
            message,
        };
        let object = ObjectRef {
            kind,
            key: key.clone(),
        };
        let conditions = self.report.conditions.entry(object).or_default();
        if !conditions.contains(&condition) {
            conditions.push(condition);
        }
    }

    /// Record an error (the piece was skipped) on an Ingress.
    pub(super) fn ingress_error(
        &mut self,
        key: &ObjectKey,
        type_: &'static str,
        reason: &'static str,
        message: String,
    ) {
        self.push("Ingress", key, type_, Severity::Error, reason, message);
    }

    /// Record a warning (accepted with a caveat) on an Ingress.
    pub(super) fn ingress_warning(
        &mut self,
        key: &ObjectKey,
        type_: &'static str,
        reason: &'static str,
        message: String,
    ) {
        self.push("Ingress", key, type_, Severity::Warning, reason, message);
    }
}
