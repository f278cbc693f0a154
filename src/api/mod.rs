//! Kubernetes-facing types: annotation keys and parsers, condition types and reasons,
//! weir's CRDs (later), re-exports of k8s-openapi.
