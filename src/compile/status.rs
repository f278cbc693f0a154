//! The status accumulator every pass writes its conditions into.

use super::ir::Source;
use super::{Condition, ConditionStatus, ObjectRef, Severity, StatusReport};

/// Collects conditions per object; identical conditions on one object are kept once (a
/// missing Service referenced by ten paths of one Ingress is one diagnostic).
#[derive(Debug, Default)]
pub(super) struct Status {
    pub(super) report: StatusReport,
}

impl Status {
    /// Record a condition on an object.
    pub(super) fn push(&mut self, object: ObjectRef, condition: Condition) {
        let conditions = self.report.conditions.entry(object).or_default();
        if !conditions.contains(&condition) {
            conditions.push(condition);
        }
    }

    /// Record an error on a source object: the piece was rejected (skipped, or answered
    /// with an error), so the condition's status is `False`.
    pub(super) fn error(
        &mut self,
        source: &Source<'_>,
        type_: &'static str,
        reason: &'static str,
        message: String,
    ) {
        self.push(
            source.object(),
            condition(source, type_, Severity::Error, reason, message),
        );
    }

    /// Record a warning on a source object: accepted with a caveat, so the condition's
    /// status is `True`.
    pub(super) fn warning(
        &mut self,
        source: &Source<'_>,
        type_: &'static str,
        reason: &'static str,
        message: String,
    ) {
        self.push(
            source.object(),
            condition(source, type_, Severity::Warning, reason, message),
        );
    }
}

fn condition(
    source: &Source<'_>,
    type_: &'static str,
    severity: Severity,
    reason: &'static str,
    message: String,
) -> Condition {
    Condition {
        type_,
        status: match severity {
            Severity::Error => ConditionStatus::False,
            Severity::Warning => ConditionStatus::True,
        },
        severity,
        reason,
        message,
        observed_generation: source.generation,
    }
}
