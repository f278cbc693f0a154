//! EndpointSlice → [`crate::snapshot::EndpointSet`], published apart from the snapshot.
