//! Kubernetes-facing types: annotation and label keys, condition types and reason constants,
//! and the well-known values weir reads from objects (weir's CRDs will join them later).
//!
//! Everything a user may see in a status condition or a `weir validate` diagnostic is named
//! here, so reasons stay stable and greppable. weir's own CRDs live in submodules.

/// `k8s_openapi::Resource` and `Metadata` for weir's own form of a built-in kind
/// (`$ours`, with a `metadata: ObjectMeta` field) as k8s-openapi's `$theirs` has them, so kube's
/// watcher and the store take it like the original.
macro_rules! same_resource_as {
    ($ours:ty, $theirs:ty) => {
        impl k8s_openapi::Resource for $ours {
            const API_VERSION: &'static str = <$theirs as k8s_openapi::Resource>::API_VERSION;
            const GROUP: &'static str = <$theirs as k8s_openapi::Resource>::GROUP;
            const KIND: &'static str = <$theirs as k8s_openapi::Resource>::KIND;
            const VERSION: &'static str = <$theirs as k8s_openapi::Resource>::VERSION;
            const URL_PATH_SEGMENT: &'static str =
                <$theirs as k8s_openapi::Resource>::URL_PATH_SEGMENT;
            type Scope = <$theirs as k8s_openapi::Resource>::Scope;
        }

        impl k8s_openapi::Metadata for $ours {
            type Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

            fn metadata(&self) -> &Self::Ty {
                &self.metadata
            }

            fn metadata_mut(&mut self) -> &mut Self::Ty {
                &mut self.metadata
            }
        }
    };
}

pub mod backendpolicy;
pub mod crds;
pub mod endpointslice;
pub mod gateway;
pub mod httpfilter;
pub mod ingress;
pub mod service;

/// Annotation and label keys weir reads.
pub mod annotations {
    /// Legacy class annotation on an Ingress (deprecated by `spec.ingressClassName`, still
    /// honoured): its value names an IngressClass.
    pub const INGRESS_CLASS: &str = "kubernetes.io/ingress.class";
    /// IngressClass annotation marking the class used by Ingresses without a class.
    pub const IS_DEFAULT_CLASS: &str = "ingressclass.kubernetes.io/is-default-class";
    /// Annotation written by `kubectl apply`; a full copy of the object, dropped on load.
    pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
    /// Label on an EndpointSlice naming the Service it belongs to.
    pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
    /// ingress-nginx's annotation prefix: weir reports each such annotation it does not
    /// serve (snippets are refused by design).
    pub const NGINX_PREFIX: &str = "nginx.ingress.kubernetes.io/";
    /// Annotation on an Ingress: the `HTTPFilter`s of its namespace its routes run, in chain
    /// order (`"api-guard, cors"`).
    pub const FILTERS: &str = "weir.dev/filters";
    /// Annotation on an Ingress: `"false"` turns off the redirect of plain-HTTP requests to
    /// HTTPS for its TLS hosts.
    pub const SSL_REDIRECT: &str = "weir.dev/ssl-redirect";
    /// Annotation on an Ingress, HTTPRoute or GRPCRoute: `"true"` counts its routes' requests
    /// in the per-route metric series (`weir_route_requests_total{route,cluster,code_class}`
    /// and its latency histogram), which `--metrics-per-route` turns on for every route.
    pub const METRICS_PER_ROUTE: &str = "weir.dev/metrics-per-route";
}

/// Well-known values of Kubernetes fields.
pub mod values {
    /// The default IngressClass `spec.controller` weir claims.
    pub const DEFAULT_CONTROLLER_NAME: &str = "weir.dev/ingress-controller";
    /// The Secret type of certificates (Ingress `spec.tls`).
    pub const SECRET_TYPE_TLS: &str = "kubernetes.io/tls";
    /// The Secret key holding htpasswd lines (`BasicAuth`, as ingress-nginx's `auth-file`).
    pub const SECRET_KEY_AUTH: &str = "auth";
    /// Secret key of the PEM certificate chain.
    pub const TLS_CERT_KEY: &str = "tls.crt";
    /// Secret key of the PEM private key.
    pub const TLS_PRIVATE_KEY: &str = "tls.key";
    /// Secret key of a CA bundle (PEM): the CAs an upstream's certificate must chain to.
    pub const CA_CERT_KEY: &str = "ca.crt";
    /// Service type whose backends are DNS names.
    pub const SERVICE_TYPE_EXTERNAL_NAME: &str = "ExternalName";
}

/// Condition types (the `type` of a [`crate::compile::Condition`]).
pub mod condition_types {
    /// Whether the object, or a rule of it, was accepted into the snapshot.
    pub const ACCEPTED: &str = "Accepted";
    /// Whether the objects it references (Services, ports) resolved.
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
    /// Whether its TLS configuration (Secret, certificate, key) is usable.
    pub const TLS: &str = "TLSValid";
    /// Gateway API: whether a Gateway or listener is served.
    pub const PROGRAMMED: &str = "Programmed";
    /// Gateway API: whether a listener conflicts with another on its port.
    pub const CONFLICTED: &str = "Conflicted";
}

/// Reason constants (the `reason` of a [`crate::compile::Condition`]), CamelCase.
pub mod reasons {
    /// A manifest document could not be read or parsed (`weir validate` only; the document
    /// was skipped).
    pub const INVALID_MANIFEST: &str = "InvalidManifest";
    /// A rule's host is not a valid DNS name or wildcard (`*.` followed by a name).
    pub const INVALID_HOST: &str = "InvalidHost";
    /// A path is not absolute or contains a forbidden sequence (`//`, `/./`, `/../`, `%2f`).
    pub const INVALID_PATH: &str = "InvalidPath";
    /// `pathType` is not `Exact`, `Prefix` or `ImplementationSpecific`.
    pub const INVALID_PATH_TYPE: &str = "InvalidPathType";
    /// Another route already serves the same host and match (for Ingress: path and path
    /// type): one whose backends resolved while this one's did not, or else one earlier in
    /// source order (an older Ingress, or earlier in namespace/name order, or an earlier
    /// rule of the same Ingress).
    pub const PATH_CONFLICT: &str = "PathConflict";
    /// A backend names neither a Service nor a resource, or a Service without a port.
    pub const INVALID_BACKEND: &str = "InvalidBackend";
    /// A `resource` backend: weir only forwards to Services.
    pub const RESOURCE_BACKEND_NOT_SUPPORTED: &str = "ResourceBackendNotSupported";
    /// The backend Service does not exist; its routes answer 503.
    pub const SERVICE_NOT_FOUND: &str = "ServiceNotFound";
    /// The backend Service has no port with that number or name; its routes answer 503.
    pub const SERVICE_PORT_NOT_FOUND: &str = "ServicePortNotFound";
    /// The backend Service is of type ExternalName: weir does not proxy to DNS names in this
    /// version; its routes answer 503.
    pub const EXTERNAL_NAME_NOT_SUPPORTED: &str = "ExternalNameNotSupported";
    /// The backend is forwarded to its Service's ClusterIP, and the Service has none
    /// (headless); its routes answer 503.
    pub const NO_CLUSTER_IP: &str = "NoClusterIP";
    /// A Service port's `appProtocol` is not one weir knows; HTTP/1.1 is used.
    pub const UNKNOWN_APP_PROTOCOL: &str = "UnknownAppProtocol";
    /// More than one Ingress declares `spec.defaultBackend`; the oldest one whose backend
    /// resolves wins (the oldest one, when none does).
    pub const DEFAULT_BACKEND_CONFLICT: &str = "DefaultBackendConflict";
    /// The TLS Secret does not exist in the Ingress's namespace (or is not of type
    /// `kubernetes.io/tls`, which the store does not keep).
    pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
    /// The Secret is not of type `kubernetes.io/tls`.
    pub const INVALID_SECRET_TYPE: &str = "InvalidSecretType";
    /// `tls.crt` is missing, is not PEM, or holds no parsable X.509 certificate.
    pub const INVALID_CERTIFICATE: &str = "InvalidCertificate";
    /// `tls.key` is missing, is not PEM, or holds a key type rustls cannot sign with.
    pub const INVALID_PRIVATE_KEY: &str = "InvalidPrivateKey";
    /// The private key does not belong to the leaf certificate.
    pub const CERTIFICATE_KEY_MISMATCH: &str = "CertificateKeyMismatch";
    /// The leaf certificate's notAfter is in the past.
    pub const CERTIFICATE_EXPIRED: &str = "CertificateExpired";
    /// The leaf certificate's notBefore is in the future.
    pub const CERTIFICATE_NOT_YET_VALID: &str = "CertificateNotYetValid";
    /// The certificate's subjectAltNames do not cover a host it is configured for
    /// (accepted: clients will warn).
    pub const CERTIFICATE_HOST_MISMATCH: &str = "CertificateHostMismatch";
    /// Another Ingress (older) already configured a different Secret for this TLS host.
    pub const TLS_HOST_CONFLICT: &str = "TLSHostConflict";
    /// Every reference of the object resolved (status `True`).
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
    /// The `HTTPFilter` is valid and compiled (status `True`).
    pub const ACCEPTED: &str = "Accepted";
    /// A field of an `HTTPFilter` is invalid (the message names it); the routes using the
    /// filter answer 500.
    pub const INVALID_FILTER: &str = "InvalidFilter";
    /// An object an `HTTPFilter` references (a Secret, a Service) is missing or unusable; the
    /// routes using the filter answer 500.
    pub const FILTER_REF_NOT_FOUND: &str = "RefNotFound";
    /// An Ingress names, in `weir.dev/filters`, an `HTTPFilter` that does not exist in its
    /// namespace (or cannot be compiled); its routes answer 500.
    pub const FILTER_NOT_FOUND: &str = "FilterNotFound";
    /// A `BackendPolicy` value is invalid (the message names the field); its targets keep
    /// their defaults.
    pub const INVALID_POLICY: &str = "Invalid";
    /// An older `BackendPolicy` already targets the same Service (port); the oldest wins.
    pub const POLICY_CONFLICTED: &str = "Conflicted";
    /// A `BackendPolicy` target Service (or port) does not exist.
    pub const TARGET_NOT_FOUND: &str = "TargetNotFound";
    /// An Ingress's `weir.dev/filters` or `weir.dev/ssl-redirect` annotation cannot be read.
    pub const INVALID_ANNOTATION: &str = "InvalidAnnotation";
    /// An ingress-nginx snippet annotation (free-text nginx configuration): refused by design;
    /// the Ingress is served without it.
    pub const SNIPPET_REFUSED: &str = "SnippetRefused";
    /// An ingress-nginx annotation weir does not serve (yet); the Ingress is served without it.
    pub const UNSUPPORTED_ANNOTATION: &str = "UnsupportedAnnotation";
    /// An ingress-nginx annotation served, but not exactly with ingress-nginx's semantics (the
    /// message says what differs).
    pub const PARTIAL_ANNOTATION: &str = "PartiallySupportedAnnotation";
    /// A canary Ingress's path joins no main route (none, or it already has a canary).
    pub const CANARY_NOT_APPLIED: &str = "CanaryNotApplied";
    /// Gateway API: a route's parentRef names no Gateway (listener) of weir's.
    pub const NO_MATCHING_PARENT: &str = "NoMatchingParent";
    /// Gateway API: a listener's `allowedRoutes` does not admit the route.
    pub const NOT_ALLOWED_BY_LISTENERS: &str = "NotAllowedByListeners";
    /// Gateway API: no route hostname intersects the listener's.
    pub const NO_MATCHING_LISTENER_HOSTNAME: &str = "NoMatchingListenerHostname";
    /// Gateway API: a cross-namespace reference without a ReferenceGrant.
    pub const REF_NOT_PERMITTED: &str = "RefNotPermitted";
    /// Gateway API: a listener protocol weir does not serve.
    pub const UNSUPPORTED_PROTOCOL: &str = "UnsupportedProtocol";
    /// Gateway API: two listeners on one port with different protocols.
    pub const PROTOCOL_CONFLICT: &str = "ProtocolConflict";
    /// Gateway API: a reference to a kind weir does not serve.
    pub const INVALID_KIND: &str = "InvalidKind";
    /// Gateway API: a value weir does not support (a filter type, a TLS mode).
    pub const UNSUPPORTED_VALUE: &str = "UnsupportedValue";
    /// Gateway API: a Gateway or listener is served (`Programmed` `True`).
    pub const PROGRAMMED: &str = "Programmed";
    /// Gateway API: a listener is not served (`Programmed` `False`).
    pub const INVALID: &str = "Invalid";
    /// Gateway API: a listener shares its port with no incompatible listener.
    pub const NO_CONFLICTS: &str = "NoConflicts";
    /// Gateway API: some listeners of a Gateway are not served.
    pub const LISTENERS_NOT_VALID: &str = "ListenersNotValid";
    /// Gateway API: a listener's certificateRefs name no usable certificate.
    pub const INVALID_CERTIFICATE_REF: &str = "InvalidCertificateRef";
    /// Gateway API: a listener's allowedRoutes.kinds names a kind weir does not serve.
    pub const INVALID_ROUTE_KINDS: &str = "InvalidRouteKinds";
    /// Gateway API: a listener's port is held by something else (an Ingress listener).
    pub const PORT_UNAVAILABLE: &str = "PortUnavailable";
    /// Gateway API: a Gateway's spec.addresses asks for an address weir cannot give it.
    pub const UNSUPPORTED_ADDRESS: &str = "UnsupportedAddress";
    /// Gateway API: no address is free for the Gateway.
    pub const ADDRESS_NOT_ASSIGNED: &str = "AddressNotAssigned";
    /// Gateway API: a backendRef's Service (or port) does not exist.
    pub const BACKEND_NOT_FOUND: &str = "BackendNotFound";
}
