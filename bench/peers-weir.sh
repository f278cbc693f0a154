#!/usr/bin/env bash
# PROXY_CMD hook for ../shared/bench/peers.sh: writes a manifests directory for the rig's
# four backends and execs `weir run` with one worker.
#
#   cp -r ../shared/bench /tmp/rig && (cd /tmp/rig && ./setup.sh)
#   PROXY_CMD="$PWD/bench/peers-weir.sh" PROXY_NAME=weir PROXY_MODE=h2up PROXY_H2C_PORT=18080 \
#       WEIR_UPSTREAM=h2c /tmp/rig/peers.sh
#
# WEIR_UPSTREAM=h2c (default) speaks h2c to the backends (appProtocol kubernetes.io/h2c),
# WEIR_UPSTREAM=http1 HTTP/1.1 keep-alive. WEIR_BIN defaults to target/release/weir.
# WEIR_FILTERS=2: the route runs a two-filter HTTPFilter chain (see below).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WEIR="${WEIR_BIN:-$HERE/../target/release/weir}"
DIR="${BENCH_RUN_DIR:-$(mktemp -d)}/weir-manifests"
mkdir -p "$DIR"
case "${WEIR_UPSTREAM:-h2c}" in
    h2c) app="appProtocol: kubernetes.io/h2c" ;;
    http1) app="appProtocol: http" ;;
    *) echo "WEIR_UPSTREAM must be h2c or http1" >&2; exit 2 ;;
esac
# WEIR_FILTERS=2 attaches a two-filter chain (a request header set, an IP allow list that
# admits the rig's loopback clients) to the route, for the filter-overhead comparison.
filters=""
if [[ ${WEIR_FILTERS:-0} == 2 ]]; then filters=bench-chain; fi
{
    if [[ -n $filters ]]; then
        cat <<YAML
apiVersion: weir.dev/v1alpha1
kind: HTTPFilter
metadata: {name: bench-chain, namespace: default}
spec:
  filters:
  - type: RequestHeaderModifier
    requestHeaderModifier: {set: [{name: X-Bench, value: "1"}]}
  - type: IPAccess
    ipAccess: {allow: ["127.0.0.0/8"]}
---
YAML
    fi
    cat <<YAML
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: weir
  annotations: {ingressclass.kubernetes.io/is-default-class: "true"}
spec: {controller: weir.dev/ingress-controller}
---
apiVersion: v1
kind: Service
metadata: {name: bench, namespace: default}
spec:
  ports: [{name: http, port: 80, $app}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: bench
  namespace: default
  annotations: {weir.dev/filters: "$filters"}
spec:
  rules:
  - http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: bench, port: {number: 80}}}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: bench-1
  namespace: default
  labels: {kubernetes.io/service-name: bench}
addressType: IPv4
endpoints:
YAML
    IFS=, read -ra backends <<<"${BENCH_BACKENDS:-127.0.0.1:18001,127.0.0.1:18002,127.0.0.1:18003,127.0.0.1:18004}"
    # One slice per backend: the rig's backends share an IP and differ by port, and an
    # EndpointSlice has one port per name.
    n=0
    for b in "${backends[@]}"; do
        n=$((n + 1))
        ((n == 1)) || printf -- '---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: bench-%d\n  namespace: default\n  labels: {kubernetes.io/service-name: bench}\naddressType: IPv4\nendpoints:\n' "$n"
        printf -- '- addresses: ["%s"]\nports: [{name: http, port: %s}]\n' "${b%:*}" "${b##*:}"
    done
} >"$DIR/bench.yaml"
exec "$WEIR" run --manifests "$DIR" --workers 1 \
    --http-addr "127.0.0.1:${BENCH_H1_PORT:-18080}" \
    --https-addr "127.0.0.1:${BENCH_TLS_PORT:-18443}" \
    --admin-addr 127.0.0.1:18901 --debug-addr off --log warn
