//! The admin listener: /healthz, /readyz, /metrics, /config, /clusters.
