//! `BackendPolicy` → the traffic settings of each target Service port's clusters.
//!
//! Each policy is validated once (every value, with its field path); a policy with an invalid
//! value is rejected whole (`Accepted=False Invalid`) and its targets keep their defaults.
//! Targets are Services of the policy's namespace, optionally one port by `sectionName`:
//! - a port-specific policy replaces a whole-Service one for that port (no merging);
//! - two policies for the same target: the oldest wins (creation time, then namespace/name),
//!   the other gets `Accepted=False Conflicted` naming the winner;
//! - a target Service (or port) that does not exist gives `ResolvedRefs=False TargetNotFound`
//!   (and `Accepted=False` when no target exists at all); the policy applies once it appears.
//!
//! Topology is compiled here too: a Service with `spec.trafficDistribution: PreferClose`
//! marks its clusters `prefer_close`.

use std::collections::BTreeMap;
use std::time::Duration;

use http::HeaderName;

use super::ir::Source;
use super::parse_duration;
use super::status::Status;
use crate::api::backendpolicy::{
    ActiveCheckType, BackendPolicy, BackendPolicySpec, BackendTlsSpec, ConsistentHashSpec,
    ConsistentHashType, CookieSameSite, LoadBalancerType, RetryTrigger,
};
use crate::api::{condition_types, reasons, values};
use crate::snapshot::{
    ActiveCheck, CheckKind, Cluster, ClusterKey, HashKey, LbPolicy, OutlierDetection, RetryOn,
    UpstreamProtocol, UpstreamTls,
};
use crate::store::{ObjectKey, Objects};
use rustls::pki_types::{CertificateDer, ServerName};

/// Kind name of `BackendPolicy` in conditions.
pub(super) const BACKEND_POLICY: &str = "BackendPolicy";

/// A target slot: namespace, Service, and port name (`None`: every port).
type Slot = (String, String, Option<String>);

/// The winning policy of every target slot.
#[derive(Debug, Default)]
pub(super) struct Policies<'a> {
    by_slot: BTreeMap<Slot, &'a BackendPolicy>,
}

impl<'a> Policies<'a> {
    /// Validates every `BackendPolicy`, settles conflicts and records conditions.
    pub(super) fn compile(objects: &'a Objects, status: &mut Status) -> Policies<'a> {
        // Oldest first, then by key: the first policy to claim a slot keeps it.
        let mut ordered: Vec<(&ObjectKey, &BackendPolicy)> = objects
            .backend_policies
            .iter()
            .map(|(k, p)| (k, &**p))
            .collect();
        ordered.sort_by(|(ka, a), (kb, b)| {
            let ta = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
            let tb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
            // A policy without a creation time (a manifest file) counts as oldest.
            ta.cmp(&tb).then_with(|| ka.cmp(kb))
        });
        let mut policies = Policies::default();
        let mut owner: BTreeMap<Slot, &ObjectKey> = BTreeMap::new();
        for (key, policy) in ordered {
            let source = Source {
                kind: BACKEND_POLICY,
                key,
                generation: policy.metadata.generation,
                metrics_per_route: false,
            };
            let mut scratch = Cluster::new(ClusterKey::new("", "", 0), "", UpstreamProtocol::Http1);
            if let Err(e) = apply(&policy.spec, &mut scratch) {
                status.error(
                    &source,
                    condition_types::ACCEPTED,
                    reasons::INVALID_POLICY,
                    format!("{}: {}", e.field, e.message),
                );
                continue;
            }
            let mut resolved = 0;
            let mut invalid = 0;
            for (i, target) in policy.spec.target_refs.iter().enumerate() {
                let field = format!("spec.targetRefs[{i}]");
                if !(target.group.is_empty() && target.kind == "Service") {
                    status.error(
                        &source,
                        condition_types::ACCEPTED,
                        reasons::INVALID_POLICY,
                        format!(
                            "{field}: a BackendPolicy targets Services (group \"\", kind Service), not {:?}/{}",
                            target.group, target.kind
                        ),
                    );
                    invalid += 1;
                    continue;
                }
                let service = objects
                    .services
                    .get(&ObjectKey::new(key.namespace.clone(), target.name.clone()));
                let Some(service) = service else {
                    status.error(
                        &source,
                        condition_types::RESOLVED_REFS,
                        reasons::TARGET_NOT_FOUND,
                        format!(
                            "{field}: Service {}/{} not found",
                            key.namespace, target.name
                        ),
                    );
                    continue;
                };
                if let Some(section) = &target.section_name {
                    let has_port = service
                        .spec
                        .as_ref()
                        .and_then(|s| s.ports.as_ref())
                        .is_some_and(|ports| {
                            ports.iter().any(|p| p.name.as_deref() == Some(section))
                        });
                    if !has_port {
                        status.error(
                            &source,
                            condition_types::RESOLVED_REFS,
                            reasons::TARGET_NOT_FOUND,
                            format!(
                                "{field}: Service {}/{} has no port named {section:?}",
                                key.namespace, target.name
                            ),
                        );
                        continue;
                    }
                }
                resolved += 1;
                let slot = (
                    key.namespace.clone(),
                    target.name.clone(),
                    target.section_name.clone(),
                );
                match owner.get(&slot) {
                    Some(winner) if *winner != key => {
                        status.error(
                            &source,
                            condition_types::ACCEPTED,
                            reasons::POLICY_CONFLICTED,
                            format!(
                                "{field}: Service {}/{}{} already has the older BackendPolicy {winner}; the oldest policy of a target wins",
                                key.namespace,
                                target.name,
                                target
                                    .section_name
                                    .as_ref()
                                    .map(|s| format!(" port {s}"))
                                    .unwrap_or_default()
                            ),
                        );
                    }
                    Some(_) => {}
                    None => {
                        owner.insert(slot.clone(), key);
                        policies.by_slot.insert(slot, policy);
                    }
                }
            }
            if resolved == 0 && invalid == 0 && !policy.spec.target_refs.is_empty() {
                status.error(
                    &source,
                    condition_types::ACCEPTED,
                    reasons::TARGET_NOT_FOUND,
                    "no target of the policy exists".to_owned(),
                );
            }
            if policy.spec.target_refs.is_empty() {
                status.error(
                    &source,
                    condition_types::ACCEPTED,
                    reasons::INVALID_POLICY,
                    "spec.targetRefs: at least one target is required".to_owned(),
                );
            }
        }
        policies
    }

    /// Writes the winning policy of `cluster`'s Service port (port-specific first) and the
    /// Service's topology into it.
    ///
    /// The policy's `tls` Secret is read here; when it cannot be used, the reason and message
    /// (the cluster must not be served).
    pub(super) fn apply_to(
        &self,
        cluster: &mut Cluster,
        objects: &Objects,
    ) -> Result<(), (&'static str, String)> {
        let ns = cluster.key.namespace().to_string();
        let svc = cluster.key.service().to_string();
        let service = objects
            .services
            .get(&ObjectKey::new(ns.clone(), svc.clone()));
        cluster.prefer_close = service
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.traffic_distribution.as_deref())
            == Some("PreferClose");
        let port = (!cluster.port_name.is_empty()).then(|| cluster.port_name.clone());
        let policy = port
            .and_then(|p| self.by_slot.get(&(ns.clone(), svc.clone(), Some(p))))
            .or_else(|| self.by_slot.get(&(ns, svc, None)));
        if let Some(policy) = policy {
            // Validated in `compile`: cannot fail here.
            let _ = apply(&policy.spec, cluster);
            if let Some(tls) = &policy.spec.tls {
                let (ns, svc) = (&cluster.key.namespace(), &cluster.key.service());
                cluster.tls = Some(std::sync::Arc::new(upstream_tls(tls, ns, svc, objects)?));
            }
        }
        Ok(())
    }
}

/// An invalid value: where, and why.
#[derive(Debug)]
pub(super) struct FieldError {
    /// The field (`loadBalancer.consistentHash.header.name`).
    pub(super) field: String,
    /// What is wrong with it.
    pub(super) message: String,
}

fn bad(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// A required positive duration.
fn duration(field: &str, value: &str) -> Result<Duration, FieldError> {
    match parse_duration(value) {
        Some(d) if !d.is_zero() => Ok(d),
        Some(_) => Err(bad(field, "must be more than zero")),
        None => Err(bad(
            field,
            format!("{value:?} is not a duration (e.g. 500ms, 2s, 1m30s)"),
        )),
    }
}

/// An optional positive duration, `default` when absent.
fn duration_or(
    field: &str,
    value: Option<&str>,
    default: Duration,
) -> Result<Duration, FieldError> {
    value.map_or(Ok(default), |v| duration(field, v))
}

fn count(field: &str, value: Option<i64>, min: i64, max: i64) -> Result<Option<u32>, FieldError> {
    match value {
        None => Ok(None),
        Some(v) if (min..=max).contains(&v) => Ok(Some(v as u32)),
        Some(v) => Err(bad(field, format!("{v} is not within {min}..={max}"))),
    }
}

fn status_code(field: &str, code: i32) -> Result<u16, FieldError> {
    if (100..=599).contains(&code) {
        Ok(code as u16)
    } else {
        Err(bad(
            field,
            format!("{code} is not an HTTP status (100..=599)"),
        ))
    }
}

/// A DNS name a certificate can be verified against.
fn hostname(field: &str, name: &str) -> Result<ServerName<'static>, FieldError> {
    match ServerName::try_from(name.to_owned()) {
        Ok(n @ ServerName::DnsName(_)) => Ok(n),
        _ => Err(bad(field, format!("{name:?} is not a DNS name"))),
    }
}

/// The upstream TLS of a cluster of Service `namespace/service`: `spec`'s Secret (in
/// `namespace`) read and parsed. Errors are a reason and a message for the routes that
/// use the cluster, which is then unavailable: fail closed, since serving it without the
/// requested verification or client certificate would be a silent downgrade.
pub(super) fn upstream_tls(
    spec: &BackendTlsSpec,
    namespace: &str,
    service: &str,
    objects: &Objects,
) -> Result<UpstreamTls, (&'static str, String)> {
    let key = ObjectKey::new(namespace, spec.secret_name.as_str());
    let secret = objects.secrets.get(&key).ok_or_else(|| {
        (
            reasons::SECRET_NOT_FOUND,
            format!("upstream TLS Secret {key} not found (or it has no ca.crt)"),
        )
    })?;
    let data = |k: &str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(k))
            .map(|b| b.0.as_slice())
    };
    let invalid = |what: String| {
        (
            reasons::INVALID_CERTIFICATE,
            format!("Secret {key}: {what}"),
        )
    };
    let pem_certs = |k: &str, pem: &[u8]| -> Result<Vec<CertificateDer<'static>>, _> {
        let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &pem[..])
            .collect::<Result<_, _>>()
            .map_err(|e| invalid(format!("{k} is not valid PEM: {e}")))?;
        if certs.is_empty() {
            return Err(invalid(format!("{k} holds no CERTIFICATE block")));
        }
        Ok(certs)
    };
    let verify = spec.verify.unwrap_or(false);
    let roots = match data(values::CA_CERT_KEY) {
        Some(ca) => pem_certs(values::CA_CERT_KEY, ca)?,
        None if verify => return Err(invalid("has no ca.crt to verify with".to_owned())),
        None => Vec::new(),
    };
    let mut store = rustls::RootCertStore::empty();
    for cert in &roots {
        store
            .add(cert.clone())
            .map_err(|e| invalid(format!("ca.crt: a certificate is not a usable CA: {e}")))?;
    }
    let client = match (data(values::TLS_CERT_KEY), data(values::TLS_PRIVATE_KEY)) {
        (None, None) => None,
        (Some(_), None) | (None, Some(_)) => {
            return Err(invalid("has only one of tls.crt and tls.key".to_owned()));
        }
        (Some(cert), Some(key_pem)) => {
            let chain = pem_certs(values::TLS_CERT_KEY, cert)?;
            let private = match rustls_pemfile::private_key(&mut &key_pem[..]) {
                Ok(Some(k)) => k,
                Ok(None) => return Err(invalid("tls.key holds no PRIVATE KEY block".to_owned())),
                Err(e) => return Err(invalid(format!("tls.key is not valid PEM: {e}"))),
            };
            let signing =
                rustls::crypto::ring::sign::any_supported_type(&private).map_err(|e| {
                    (
                        reasons::INVALID_PRIVATE_KEY,
                        format!(
                            "Secret {key}: tls.key is not a usable RSA, ECDSA or Ed25519 key: {e}"
                        ),
                    )
                })?;
            match rustls::sign::CertifiedKey::new(chain.clone(), signing).keys_match() {
                Ok(())
                | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
                Err(e) => {
                    return Err((
                        reasons::CERTIFICATE_KEY_MISMATCH,
                        format!("Secret {key}: tls.key does not match tls.crt: {e}"),
                    ));
                }
            }
            Some((chain, private))
        }
    };
    if roots.is_empty() && client.is_none() {
        return Err(invalid(
            "has neither ca.crt nor tls.crt and tls.key".to_owned(),
        ));
    }
    let default = format!("{service}.{namespace}.svc");
    let name = spec.hostname.as_deref().unwrap_or(&default);
    let hostname = hostname("spec.tls.hostname", name).map_err(|e| {
        (
            reasons::INVALID_POLICY,
            format!("{}: {}", e.field, e.message),
        )
    })?;
    Ok(UpstreamTls {
        secret: key.to_string(),
        verify,
        hostname,
        sni: spec.sni.unwrap_or(false),
        roots,
        client,
        configs: std::sync::OnceLock::new(),
    })
}

/// Writes `spec` over `cluster`'s settings, checking every value.
pub(super) fn apply(spec: &BackendPolicySpec, cluster: &mut Cluster) -> Result<(), FieldError> {
    if let Some(lb) = &spec.load_balancer {
        let f = "spec.loadBalancer";
        let key = |hash: Option<&ConsistentHashSpec>| {
            hash.ok_or_else(|| {
                bad(
                    &format!("{f}.consistentHash"),
                    "required for RingHash and Maglev",
                )
            })
            .and_then(|h| hash_key(&format!("{f}.consistentHash"), h))
        };
        if lb.consistent_hash.is_some()
            && !matches!(
                lb.type_,
                LoadBalancerType::RingHash | LoadBalancerType::Maglev
            )
        {
            return Err(bad(
                &format!("{f}.consistentHash"),
                "may be set only for RingHash and Maglev",
            ));
        }
        if lb.decay.is_some() && lb.type_ != LoadBalancerType::PeakEwma {
            return Err(bad(&format!("{f}.decay"), "may be set only for PeakEWMA"));
        }
        cluster.lb.policy = match lb.type_ {
            LoadBalancerType::RoundRobin => LbPolicy::RoundRobin,
            LoadBalancerType::Random => LbPolicy::Random,
            LoadBalancerType::LeastRequest => LbPolicy::LeastRequest,
            LoadBalancerType::PeakEwma => LbPolicy::PeakEwma {
                decay: duration_or(
                    &format!("{f}.decay"),
                    lb.decay.as_deref(),
                    Duration::from_secs(10),
                )?,
            },
            LoadBalancerType::RingHash => LbPolicy::RingHash {
                key: key(lb.consistent_hash.as_ref())?,
                min_ring_size: count(
                    &format!("{f}.consistentHash.minRingSize"),
                    lb.consistent_hash.as_ref().and_then(|h| h.min_ring_size),
                    1,
                    8_388_608,
                )?
                .unwrap_or(1024),
            },
            LoadBalancerType::Maglev => LbPolicy::Maglev {
                key: key(lb.consistent_hash.as_ref())?,
            },
        };
        if let Some(slow) = &lb.slow_start {
            cluster.lb.slow_start = duration(&format!("{f}.slowStart.window"), &slow.window)?;
        }
        if let Some(p) = count(
            &format!("{f}.panicThreshold"),
            lb.panic_threshold.map(i64::from),
            0,
            100,
        )? {
            cluster.lb.panic_threshold = p as u8;
        }
    }
    if let Some(health) = &spec.health_check {
        if let Some(active) = &health.active {
            cluster.health.active = Some(Box::new(active_check(active)?));
        }
        if let Some(passive) = &health.passive {
            let f = "spec.healthCheck.passive";
            if passive.disabled == Some(true) {
                cluster.health.passive = None;
            } else {
                let d = OutlierDetection::default();
                cluster.health.passive = Some(OutlierDetection {
                    consecutive_5xx: count(
                        &format!("{f}.consecutive5XxErrors"),
                        passive.consecutive_5xx_errors.map(i64::from),
                        0,
                        1000,
                    )?
                    .unwrap_or(d.consecutive_5xx),
                    consecutive_gateway_errors: count(
                        &format!("{f}.consecutiveGatewayErrors"),
                        passive.consecutive_gateway_errors.map(i64::from),
                        0,
                        1000,
                    )?
                    .unwrap_or(d.consecutive_gateway_errors),
                    interval: duration_or(
                        &format!("{f}.interval"),
                        passive.interval.as_deref(),
                        d.interval,
                    )?,
                    base_ejection_time: duration_or(
                        &format!("{f}.baseEjectionTime"),
                        passive.base_ejection_time.as_deref(),
                        d.base_ejection_time,
                    )?,
                    max_ejection_percent: count(
                        &format!("{f}.maxEjectionPercent"),
                        passive.max_ejection_percent.map(i64::from),
                        0,
                        100,
                    )?
                    .map_or(d.max_ejection_percent, |p| p as u8),
                });
            }
        }
    }
    if let Some(retry) = &spec.retry {
        let f = "spec.retry";
        let r = &mut cluster.retry;
        if let Some(n) = count(
            &format!("{f}.numRetries"),
            retry.num_retries.map(i64::from),
            0,
            10,
        )? {
            r.num_retries = n;
        }
        if let Some(on) = &retry.retry_on {
            if !on.triggers.is_empty() {
                let mut set = RetryOn::default();
                for t in &on.triggers {
                    match t {
                        RetryTrigger::ConnectFailure => set.connect_failure = true,
                        RetryTrigger::Reset => set.reset = true,
                        RetryTrigger::RefusedStream => set.refused_stream = true,
                        RetryTrigger::ServerError => set.server_error = true,
                        RetryTrigger::GatewayError => set.gateway_error = true,
                        RetryTrigger::Timeout => set.timeout = true,
                        RetryTrigger::RetriableStatusCodes => {}
                    }
                }
                r.on = set;
            }
            r.statuses = on
                .http_status_codes
                .iter()
                .enumerate()
                .map(|(i, &c)| status_code(&format!("{f}.retryOn.httpStatusCodes[{i}]"), c))
                .collect::<Result<_, _>>()?;
            if on.triggers.contains(&RetryTrigger::RetriableStatusCodes) && r.statuses.is_empty() {
                return Err(bad(
                    &format!("{f}.retryOn.httpStatusCodes"),
                    "retriable-status-codes needs at least one status",
                ));
            }
        }
        if let Some(per) = &retry.per_retry {
            if let Some(t) = &per.timeout {
                r.per_try_timeout = duration(&format!("{f}.perRetry.timeout"), t)?;
            }
            if let Some(b) = &per.back_off {
                let g = format!("{f}.perRetry.backOff");
                r.backoff_base = duration_or(
                    &format!("{g}.baseInterval"),
                    b.base_interval.as_deref(),
                    r.backoff_base,
                )?;
                r.backoff_max = duration_or(
                    &format!("{g}.maxInterval"),
                    b.max_interval.as_deref(),
                    r.backoff_base * 10,
                )?;
                if r.backoff_max < r.backoff_base {
                    return Err(bad(
                        &format!("{g}.maxInterval"),
                        "must not be less than baseInterval",
                    ));
                }
            }
        }
        if let Some(t) = &retry.timeout {
            r.timeout = Some(duration(&format!("{f}.timeout"), t)?);
        }
        if let Some(p) = count(
            &format!("{f}.budgetPercent"),
            retry.budget_percent.map(i64::from),
            0,
            100,
        )? {
            r.budget_percent = p as u8;
        }
    }
    if let Some(cb) = &spec.circuit_breaker {
        let f = "spec.circuitBreaker";
        if let Some(n) = count(
            &format!("{f}.maxConnections"),
            cb.max_connections,
            1,
            1_000_000,
        )? {
            cluster.limits.max_connections = n;
        }
        if let Some(n) = count(
            &format!("{f}.maxPendingRequests"),
            cb.max_pending_requests,
            0,
            1_000_000,
        )? {
            cluster.limits.max_pending = n;
        }
        if let Some(n) = count(
            &format!("{f}.maxParallelRequests"),
            cb.max_parallel_requests,
            1,
            100_000_000,
        )? {
            cluster.breakers.max_requests = n;
        }
        if let Some(n) = count(
            &format!("{f}.maxParallelRetries"),
            cb.max_parallel_retries,
            0,
            1_000_000,
        )? {
            cluster.breakers.max_retries = n;
        }
    }
    if let Some(via) = spec.forward_to_cluster_ip {
        cluster.via_cluster_ip = via;
    }
    if let Some(tls) = &spec.tls
        && let Some(h) = &tls.hostname
    {
        hostname("spec.tls.hostname", h)?;
    }
    if let Some(t) = &spec.timeout {
        if let Some(c) = t.tcp.as_ref().and_then(|t| t.connect_timeout.as_deref()) {
            cluster.timeouts.connect = duration("spec.timeout.tcp.connectTimeout", c)?;
        }
        if let Some(http) = &t.http {
            if let Some(r) = &http.request_timeout {
                cluster.timeouts.total = duration("spec.timeout.http.requestTimeout", r)?;
            }
            if let Some(i) = &http.connection_idle_timeout {
                cluster.timeouts.idle = duration("spec.timeout.http.connectionIdleTimeout", i)?;
            }
            if let Some(h) = &http.response_headers_timeout {
                cluster.timeouts.request = duration("spec.timeout.http.responseHeadersTimeout", h)?;
            }
        }
    }
    Ok(())
}

fn hash_key(f: &str, h: &ConsistentHashSpec) -> Result<HashKey, FieldError> {
    let set = [
        (h.header.is_some(), ConsistentHashType::Header, "header"),
        (h.cookie.is_some(), ConsistentHashType::Cookie, "cookie"),
        (
            h.query_parameter.is_some(),
            ConsistentHashType::QueryParameter,
            "queryParameter",
        ),
    ];
    for (present, type_, field) in set {
        if present != (h.type_ == type_) {
            return Err(bad(
                &format!("{f}.{field}"),
                format!("must be set exactly when type is {type_:?}"),
            ));
        }
    }
    Ok(match h.type_ {
        ConsistentHashType::Header => {
            let name = &h.header.as_ref().expect("checked above").name;
            HashKey::Header(HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                bad(
                    &format!("{f}.header.name"),
                    format!("{name:?} is not a header name"),
                )
            })?)
        }
        ConsistentHashType::Cookie => {
            let c = h.cookie.as_ref().expect("checked above");
            let token = |s: &str| {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
            };
            if !token(&c.name) {
                return Err(bad(
                    &format!("{f}.cookie.name"),
                    format!("{:?} is not a cookie name", c.name),
                ));
            }
            let path = c.path.clone().unwrap_or_else(|| "/".to_owned());
            if !path.starts_with('/') || path.bytes().any(|b| b.is_ascii_control() || b == b';') {
                return Err(bad(
                    &format!("{f}.cookie.path"),
                    format!("{path:?} is not a cookie path"),
                ));
            }
            HashKey::Cookie {
                name: c.name.clone(),
                ttl: match &c.ttl {
                    Some(t) => duration(&format!("{f}.cookie.ttl"), t)?,
                    None => Duration::ZERO,
                },
                path,
                same_site: c.same_site.map(|s| match s {
                    CookieSameSite::Strict => "Strict",
                    CookieSameSite::Lax => "Lax",
                    CookieSameSite::None => "None",
                }),
                secure: c.secure.unwrap_or(false),
            }
        }
        ConsistentHashType::SourceIp => HashKey::SourceIp,
        ConsistentHashType::RequestUri => HashKey::RequestUri,
        ConsistentHashType::QueryParameter => {
            let name = &h.query_parameter.as_ref().expect("checked above").name;
            if name.is_empty() {
                return Err(bad(
                    &format!("{f}.queryParameter.name"),
                    "must not be empty",
                ));
            }
            HashKey::QueryParameter(name.clone())
        }
    })
}

fn active_check(
    a: &crate::api::backendpolicy::ActiveHealthCheck,
) -> Result<ActiveCheck, FieldError> {
    let f = "spec.healthCheck.active";
    if a.http.is_some() != (a.type_ == ActiveCheckType::Http) {
        return Err(bad(
            &format!("{f}.http"),
            "must be set exactly when type is HTTP",
        ));
    }
    if a.grpc.is_some() && a.type_ != ActiveCheckType::Grpc {
        return Err(bad(
            &format!("{f}.grpc"),
            "may be set only when type is GRPC",
        ));
    }
    let kind = match a.type_ {
        ActiveCheckType::Http => {
            let h = a.http.as_ref().expect("checked above");
            if !h.path.starts_with('/')
                || http::uri::PathAndQuery::try_from(h.path.as_str()).is_err()
            {
                return Err(bad(
                    &format!("{f}.http.path"),
                    format!("{:?} is not an absolute request path", h.path),
                ));
            }
            let host = h.host.clone().unwrap_or_default();
            if !host.is_empty() && http::HeaderValue::from_str(&host).is_err() {
                return Err(bad(
                    &format!("{f}.http.host"),
                    format!("{host:?} is not a Host value"),
                ));
            }
            CheckKind::Http {
                path: h.path.clone(),
                host,
                expected_statuses: h
                    .expected_statuses
                    .iter()
                    .enumerate()
                    .map(|(i, &c)| status_code(&format!("{f}.http.expectedStatuses[{i}]"), c))
                    .collect::<Result<_, _>>()?,
            }
        }
        ActiveCheckType::Tcp => CheckKind::Tcp,
        ActiveCheckType::Grpc => CheckKind::Grpc {
            service: a
                .grpc
                .as_ref()
                .and_then(|g| g.service.clone())
                .unwrap_or_default(),
        },
    };
    let interval = duration_or(
        &format!("{f}.interval"),
        a.interval.as_deref(),
        Duration::from_secs(3),
    )?;
    let timeout = duration_or(
        &format!("{f}.timeout"),
        a.timeout.as_deref(),
        Duration::from_secs(1),
    )?;
    Ok(ActiveCheck {
        kind,
        interval,
        timeout,
        healthy_threshold: count(
            &format!("{f}.healthyThreshold"),
            a.healthy_threshold.map(i64::from),
            1,
            100,
        )?
        .unwrap_or(1),
        unhealthy_threshold: count(
            &format!("{f}.unhealthyThreshold"),
            a.unhealthy_threshold.map(i64::from),
            1,
            100,
        )?
        .unwrap_or(3),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;

    fn objects(data: &[(&str, String)]) -> Objects {
        let mut objects = Objects::default();
        let secret = Secret {
            data: Some(
                data.iter()
                    .map(|(k, v)| ((*k).to_owned(), ByteString(v.clone().into_bytes())))
                    .collect(),
            ),
            ..Default::default()
        };
        objects
            .secrets
            .insert(ObjectKey::new("ns", "s"), secret.into());
        objects
    }

    fn spec(verify: bool) -> BackendTlsSpec {
        BackendTlsSpec {
            secret_name: "s".to_owned(),
            verify: Some(verify),
            ..Default::default()
        }
    }

    fn pem_pair() -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["a.example".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn upstream_tls_reads_the_secret() {
        let (ca, _) = pem_pair();
        let (cert, key) = pem_pair();
        let o = objects(&[("ca.crt", ca), ("tls.crt", cert), ("tls.key", key)]);
        let tls = upstream_tls(&spec(true), "ns", "web", &o).expect("valid");
        assert!(tls.verify && !tls.sni);
        assert_eq!(tls.roots.len(), 1);
        assert!(tls.client.is_some());
        // The default name is the Service's in-cluster name.
        assert_eq!(tls.hostname.to_str(), "web.ns.svc");
        let again = upstream_tls(&spec(true), "ns", "web", &o).expect("valid");
        assert_eq!(tls, again);
        assert_eq!(tls.identity(), again.identity());
        let unverified = upstream_tls(&spec(false), "ns", "web", &o).expect("valid");
        assert_ne!(tls.identity(), unverified.identity());
    }

    #[test]
    fn unusable_secrets_are_errors() {
        let (ca, key) = pem_pair();
        let (_, other_key) = pem_pair();
        assert_eq!(
            upstream_tls(&spec(true), "ns", "web", &Objects::default())
                .map(|_| ())
                .expect_err("rejected")
                .0,
            reasons::SECRET_NOT_FOUND
        );
        for (verify, data, reason) in [
            (
                true,
                vec![("ca.crt", "junk".to_owned())],
                reasons::INVALID_CERTIFICATE,
            ),
            (
                true,
                vec![("tls.crt", ca.clone()), ("tls.key", key.clone())],
                reasons::INVALID_CERTIFICATE,
            ),
            (
                false,
                vec![("ca.crt", ca.clone()), ("tls.crt", ca.clone())],
                reasons::INVALID_CERTIFICATE,
            ),
            (
                false,
                vec![("tls.crt", ca.clone()), ("tls.key", other_key)],
                reasons::CERTIFICATE_KEY_MISMATCH,
            ),
        ] {
            let got = upstream_tls(&spec(verify), "ns", "web", &objects(&data));
            assert_eq!(got.map(|_| ()).expect_err("rejected").0, reason, "{data:?}");
        }
        // Without verification a client certificate alone is enough.
        let o = objects(&[("tls.crt", ca), ("tls.key", key)]);
        assert!(upstream_tls(&spec(false), "ns", "web", &o).is_ok());
    }

    #[test]
    fn hostnames_must_be_dns_names() {
        let s = BackendPolicySpec {
            tls: Some(BackendTlsSpec {
                hostname: Some("10.0.0.1".to_owned()),
                ..spec(true)
            }),
            ..Default::default()
        };
        let mut c = Cluster::new(ClusterKey::new("", "", 0), "", UpstreamProtocol::Tls);
        assert_eq!(
            apply(&s, &mut c).expect_err("rejected").field,
            "spec.tls.hostname"
        );
    }
}
