#!/usr/bin/env bash
# Offline checks of the Helm chart: `helm lint --strict` (values.schema.json), rendered
# manifests validated against the Kubernetes 1.33 schemas (kubernetes-validate, strict),
# bad values refused by the schema, and the chart's RBAC identical to docs/rbac.yaml
# (the rules the Kubernetes-mode e2e test runs weir with). Ends with "N passed, N failed".
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
PASSED=0 FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "PASS: $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL: $*"; }
t() { local what=$1; shift; if "$@" >"$TMP/out" 2>&1; then pass "$what"; else fail "$what"; cat "$TMP/out"; fi; }
not() { ! "$@"; }

t "helm lint --strict" "$HELM" lint --strict "$CHART"
t "render defaults" "$HELM" template weir "$CHART" -n weir-system --output-dir "$TMP/default"
t "render with options" "$HELM" template weir "$CHART" -n weir-system --output-dir "$TMP/opts" \
    --set ingressClass.default=true,workers=1,watchNamespace=apps,accessLog=stdout,service.type=ClusterIP,metrics.service=true,zone=eu-west-1a,serveIngressClasses={nginx},annotationsPrefix=custom.example
for d in default opts; do
    t "rendered manifests ($d) valid for Kubernetes 1.33 (strict)" \
        bash -c "cat \$(find '$TMP/$d' -name '*.yaml' | sort) | '$VENV/bin/kubernetes-validate' -k 1.33.0 --strict --quiet -"
done
t "the chart ships weir's CRDs, identical to crds/" diff -r "$REPO/crds" "$CHART/crds"
t "rendered CRDs (--include-crds) valid for Kubernetes 1.33 (strict)" \
    bash -c "'$HELM' template weir '$CHART' --include-crds | '$VENV/bin/kubernetes-validate' -k 1.33.0 --strict --quiet -"
t "no Gateway API CRDs by default" not grep -rq "name: gateways.gateway.networking.k8s.io" "$TMP/default"
t "gatewayAPI.installCRDs renders the Gateway API standard CRDs, valid for Kubernetes 1.33 (strict)" \
    bash -c "'$HELM' template weir '$CHART' --set gatewayAPI.installCRDs=true --show-only templates/gateway-api-crds.yaml > '$TMP/gw-crds.yaml' && grep -q 'name: gateways.gateway.networking.k8s.io' '$TMP/gw-crds.yaml' && grep -q 'name: grpcroutes.gateway.networking.k8s.io' '$TMP/gw-crds.yaml' && '$VENV/bin/kubernetes-validate' -k 1.33.0 --strict --quiet - < '$TMP/gw-crds.yaml'"
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
echo "$PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
