#!/usr/bin/env bash
# The Gateway API conformance suite (sigs.k8s.io/gateway-api/conformance, the version pinned
# in gomod/go.mod) against weir in Kubernetes mode, inside the real control plane of
# e2e/cluster (issue 14, section 2). weir runs as a process inside the cluster's network
# namespace with a kubeconfig for a ServiceAccount bound to exactly docs/rbac.yaml; kubelet.py
# runs the suite's real echo-basic for the echo pods kwok fakes (one process and network
# namespace per pod, podIP:port forwarded to it, pod logs served to the API server).
#
#   e2e/gateway/test.sh          (WEIR_BIN=path to use a prebuilt binary; default: cargo build)
#
# Steps: build the suite (build.sh, cached), cluster up in its own state directory, the
# Gateway API standard CRDs + weir's crds/, RBAC + ServiceAccount kubeconfig, kubelet.py with
# echo-basic (checked against a pod of its own), GatewayClass `weir`, weir, then the suite under
# `timeout`, its
# per-test results compared with expected-failures.txt. Always brings the cluster down and
# stops every process it started by PID; ends with "N passed, N failed"; exit 0 only if none
# failed. Results (suite log, report.yaml, weir and kubelet logs, pods/) stay in $OUT (printed).
#
# Environment (all optional):
#   WEIR_BIN                  prebuilt weir (default: cargo build --bin weir, target/debug/weir)
#   WEIR_GATEWAY_FLAGS        extra `weir run` flags; default "--gateway-address-pool 10.244.200.0/24"
#                             (set it empty for a weir without that flag)
#   WEIR_GATEWAY_SUITE_TIMEOUT  seconds the suite may run (-test.timeout; default 480)
#   WEIR_GATEWAY_TIMEOUTS     `short` (default: the options file below) or `default` (the
#                             suite's own timeouts, 60-300 s per wait; needs a longer suite timeout)
#   WEIR_GATEWAY_PROFILES     -conformance-profiles (default GATEWAY-HTTP,GATEWAY-GRPC)
#   WEIR_GATEWAY_SUPPORTED_FEATURES  comma list passed as -supported-features; default: inferred
#                             from GatewayClass status.supportedFeatures, or, if weir writes none,
#                             the profile's core features (Gateway,HTTPRoute,ReferenceGrant)
#   WEIR_GATEWAY_SUITE_ARGS   more suite flags, e.g. "-run-test HTTPRouteSimpleSameNamespace"
#   WEIR_GATEWAY_REPORT_DIR   if set, report.yaml is also copied there (e.g. $REPO/conformance)
#   WEIR_GATEWAY_OUT          results directory (default /tmp/weir-e2e-gateway.$$)
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
OUT="${WEIR_GATEWAY_OUT:-/tmp/weir-e2e-gateway.$$}"
export WEIR_E2E_STATE="$OUT/cluster" # removed by `cluster.sh down`; the results beside it stay
CLUSTER="$REPO/e2e/cluster/cluster.sh"
CONTROLLER=weir.dev/gateway-controller
CLASS=weir
SYS=weir-system
PROBE_NS=weir-e2e-echo
SUITE_TIMEOUT="${WEIR_GATEWAY_SUITE_TIMEOUT:-480}"
PROFILES="${WEIR_GATEWAY_PROFILES:-GATEWAY-HTTP,GATEWAY-GRPC}"
WEIR_GATEWAY_FLAGS="${WEIR_GATEWAY_FLAGS---gateway-address-pool 10.244.200.0/24}"
EXPECTED="$HERE/expected-failures.txt"
T0=$SECONDS
# shellcheck source=e2e/kube/lib.sh
source "$REPO/e2e/kube/lib.sh"
log() { printf '[e2e-gateway %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

declare -A PID
PHASES=""
phase() { PHASES+=" $1=$((SECONDS - PHASE_T0))s"; PHASE_T0=$SECONDS; }
PHASE_T0=$SECONDS

cleanup() {
  local rc=$? name
  for name in suite weir kubelet; do [[ -n "${PID[$name]:-}" ]] && stop_pid "${PID[$name]}"; done
  for pid in $(jobs -p); do stop_pid "$pid"; done
  if [[ "$FAILED" -gt 0 ]]; then
    for f in "$OUT/weir.log" "$OUT/kubelet.log"; do [[ -s $f ]] && { echo "---- tail $f"; tail -n 20 "$f"; }; done
  fi
  "$CLUSTER" down >/dev/null 2>&1 || "$CLUSTER" down
  trap - EXIT
  [[ $rc -ne 0 && $FAILED -eq 0 ]] && fail "test script aborted (exit $rc)"
  [[ -s "$OUT/kubelet.out" ]] && grep '^summary' "$OUT/kubelet.out" | sed 's/^/kubelet.py /'
  echo "results in $OUT (suite.log, report.yaml, weir.log, kubelet.log, pods/); phases:$PHASES; total $((SECONDS - T0)) s"
  echo "$PASSED passed, $FAILED failed"
  [[ $FAILED -eq 0 ]] || exit 1
  exit 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$OUT"
# ---------------------------------------------------------------- build: weir, the suite
if [[ -z "${WEIR_BIN:-}" ]]; then
  (cd "$REPO" && nice cargo build --bin weir) || { fail "cargo build --bin weir"; exit 1; }
  WEIR_BIN="$REPO/target/debug/weir"
fi
SUITE_DIR="$("$HERE/build.sh")" || { fail "build the conformance suite (e2e/gateway/build.sh)"; exit 1; }
SUITE_BIN="$SUITE_DIR/bin/conformance.test"
ECHO_BIN="$SUITE_DIR/bin/echo-basic"
phase build

# ---------------------------------------------------------------- cluster, CRDs, RBAC
"$CLUSTER" up || { fail "cluster up"; exit 1; }
nsenter_args
pass "cluster up"
phase cluster

# The chart's copy (gatewayAPI.installCRDs) must be the suite's own release, file for file.
if diff -r "$SUITE_DIR/crd/standard" "$REPO/helm/weir/gateway-api-crds" >"$OUT/crds-diff.log" 2>&1; then
  pass "helm/weir/gateway-api-crds/ is the suite's $(basename "$SUITE_DIR" | sed 's/.*-//') standard channel, unchanged"
else
  fail "helm/weir/gateway-api-crds/ differs from the suite's standard CRDs (copy $SUITE_DIR/crd/standard/*): $(head -3 "$OUT/crds-diff.log")"
fi
if k apply --server-side -f "$SUITE_DIR/crd/standard/" >"$OUT/crds.log" 2>&1 &&
  k apply -f "$REPO/crds/" >>"$OUT/crds.log" 2>&1 &&
  k wait --for condition=Established crd --all --timeout 60s >>"$OUT/crds.log" 2>&1; then
  pass "Gateway API $(basename "$SUITE_DIR" | sed 's/.*-//') standard CRDs and weir's crds/ applied and Established"
else
  fail "applying CRDs (log $OUT/crds.log)"; tail -n 5 "$OUT/crds.log"; exit 1
fi

apply_rbac "$SYS"
SA_KUBECONFIG="$OUT/weir-sa.kubeconfig"
sa_kubeconfig "$SYS" weir "$SA_KUBECONFIG" || { fail "minting a token for $SYS/weir"; exit 1; }
as_sa="system:serviceaccount:$SYS:weir"
bad=""
for allowed in "watch gatewayclasses.gateway.networking.k8s.io" "watch gateways.gateway.networking.k8s.io" \
  "watch httproutes.gateway.networking.k8s.io" "watch referencegrants.gateway.networking.k8s.io" \
  "patch gatewayclasses.gateway.networking.k8s.io --subresource=status" \
  "patch gateways.gateway.networking.k8s.io --subresource=status" \
  "patch httproutes.gateway.networking.k8s.io --subresource=status"; do
  # shellcheck disable=SC2086
  [[ "$(k auth can-i $allowed --as "$as_sa" 2>/dev/null)" == yes ]] || bad+=" missing($allowed)"
done
for denied in "get secrets" "update gateways.gateway.networking.k8s.io" "delete httproutes.gateway.networking.k8s.io" \
  "update gatewayclasses.gateway.networking.k8s.io"; do
  # shellcheck disable=SC2086
  [[ "$(k auth can-i $denied --as "$as_sa" 2>/dev/null)" == no ]] || bad+=" granted($denied)"
done
[[ -z "$bad" ]] && pass "ServiceAccount $SYS/weir has the docs/rbac.yaml rules (Gateway API can-i spot checks)" \
  || fail "RBAC spot checks:$bad"
# ---------------------------------------------------------------- echo-basic pods
# kubelet.py plays the kubelet for the echo pods kwok fakes: the suite's real echo-basic per
# pod, in a network namespace of its own, podIP:port forwarded to it; pod logs on the node's
# kubelet port (10.244.255.1:10250, where the API server asks for pods/log).
mkdir -p "$OUT/pods"
"${NSENTER[@]}" python3 -u "$HERE/kubelet.py" --echo-basic "$ECHO_BIN" --dir "$OUT/pods" \
  --kubectl "$(x sh -c 'command -v kubectl')" --kubeconfig "$WEIR_E2E_STATE/kubeconfig" \
  >"$OUT/kubelet.out" 2>"$OUT/kubelet.log" </dev/null &
PID[kubelet]=$!
kubelet_ready() { grep -q '^ready' "$OUT/kubelet.out"; }
kubelet_ready_or_gone() { kubelet_ready || ! kill -0 "${PID[kubelet]}" 2>/dev/null; }
if wait_until 30 kubelet_ready_or_gone && kubelet_ready; then
  pass "kubelet.py $(head -1 "$OUT/kubelet.out")"
else
  fail "kubelet.py not ready after 30 s (log $OUT/kubelet.log)"; tail -n 5 "$OUT/kubelet.log"; exit 1
fi

# One pod as the suite's manifests make them (fieldRef env, the TLS Secret mounted under
# items), then echo-basic through its pod IP the way the suite's roundtripper reads it.
probe_dir="$OUT/probe"; mkdir -p "$probe_dir"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=probe.example -addext subjectAltName=DNS:probe.example \
  -keyout "$probe_dir/key" -out "$probe_dir/crt" >/dev/null 2>&1
k create namespace "$PROBE_NS" >/dev/null
k -n "$PROBE_NS" create secret tls probe-cert --cert "$probe_dir/crt" --key "$probe_dir/key" >/dev/null
cat <<YAML | k apply -f - >/dev/null
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo-probe, namespace: $PROBE_NS}
spec:
  replicas: 1
  selector: {matchLabels: {app: echo-probe}}
  template:
    metadata: {labels: {app: echo-probe}}
    spec:
      containers:
      - name: echo-probe
        image: registry.k8s.io/gateway-api/echo-basic:v1.5.1
        volumeMounts: [{name: secret-volume, mountPath: /etc/secret-volume}]
        env:
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: NAMESPACE, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
        - {name: TLS_SERVER_CERT, value: /etc/secret-volume/crt}
        - {name: TLS_SERVER_PRIVKEY, value: /etc/secret-volume/key}
      volumes:
      - name: secret-volume
        secret:
          secretName: probe-cert
          items: [{key: tls.crt, path: crt}, {key: tls.key, path: key}]
YAML
probe_ip() {
  k -n "$PROBE_NS" get pods -l app=echo-probe -o jsonpath='{range .items[?(@.status.podIP)]}{.status.podIP}{end}' 2>/dev/null
}
has_probe_ip() { [[ -n "$(probe_ip)" ]]; }
probe_listens() { x curl -s -o /dev/null --max-time 2 "http://$(probe_ip):3000/health"; }
check_echo() { # HTTP/1.1 on 3000, h2c on 3001, TLS with ALPN h2 on 8443, and the pod's log
  local ip="$1" pod
  x curl -s -i --max-time 5 -H 'Host: probe.example' -H 'X-Echo-Set-Header;' -H 'X-Probe:  v1 ' \
    -H 'X-Probe: v2' "http://$ip:3000//echo/path?a=1" >"$probe_dir/http.txt" &&
    x curl -s --max-time 5 --http2-prior-knowledge "http://$ip:3001/h2c" >"$probe_dir/h2c.json" &&
    x curl -s --max-time 5 --http2 -H 'X-Echo-Set-Header: X-Set:1,X-Set:2' --cacert "$probe_dir/crt" \
      --resolve "probe.example:8443:$ip" "https://probe.example:8443/tls" >"$probe_dir/https.json" || return 1
  pod="$(k -n "$PROBE_NS" get pods -l app=echo-probe -o jsonpath='{.items[0].metadata.name}')"
  k -n "$PROBE_NS" logs "$pod" -c echo-probe >"$probe_dir/pod.log" 2>&1
  python3 - "$probe_dir" "$PROBE_NS" <<'PY'
import json, re, sys
d, ns = sys.argv[1], sys.argv[2]
raw = open(d + "/http.txt", "rb").read().decode()
head, _, body = raw.partition("\r\n\r\n")
lines = head.split("\r\n")
assert lines[0].startswith("HTTP/1.1 200"), lines[0]
hdr = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:]}
assert hdr.get("content-type") == "application/json", hdr
j = json.loads(body)
assert j["path"] == "//echo/path?a=1", j["path"]
assert j["host"] == "probe.example" and j["method"] == "GET" and j["proto"] == "HTTP/1.1", j
assert j["namespace"] == ns and j["pod"].startswith("echo-probe-"), j
assert j["headers"]["X-Probe"] == ["v1", "v2"], j["headers"]
assert j["httpPort"] == "3000", j
h = json.load(open(d + "/h2c.json"))
assert h["pod"] == j["pod"] and h["proto"] == "HTTP/2.0", h
t = json.load(open(d + "/https.json"))
assert t["pod"] == j["pod"] and t["tls"]["serverName"] == "probe.example", t
assert t["tls"].get("negotiatedProtocol") == "h2" and t["proto"] == "HTTP/2.0", t
log = open(d + "/pod.log").read()
assert "Echoing back request made to //echo/path?a=1" in log, "pod log (kubectl logs): %r" % log[-300:]
print(j["pod"], t["tls"]["version"], t["tls"]["cipherSuite"])
PY
}
ip=""
if wait_until 30 has_probe_ip; then ip="$(probe_ip)"; wait_until 10 probe_listens; fi
if [[ -n "$ip" ]] && res="$(check_echo "$ip" 2>&1)"; then
  pass "echo-basic answers as pod $PROBE_NS/$res on $ip (3000 HTTP/1.1, 3001 h2c, 8443 TLS+h2 with the pod's Secret; kubectl logs)"
else
  fail "echo-basic check on pod IP '${ip}': $res (files in $probe_dir)"
fi
# Nothing answers on a pod address without a pod, as a real cluster refuses it.
if ! x curl -s -o /dev/null --max-time 3 http://10.244.0.254:3000/ 2>/dev/null; then
  pass "a pod address without a pod refuses connections"
else
  fail "something answered on 10.244.0.254:3000, which no pod has"
fi
k delete namespace "$PROBE_NS" --wait=false >/dev/null 2>&1
phase setup

# ---------------------------------------------------------------- GatewayClass, weir
cat <<YAML | k apply -f - >/dev/null
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: $CLASS}
spec: {controllerName: $CONTROLLER}
YAML
# shellcheck disable=SC2086
"${NSENTER[@]}" env NO_COLOR=1 WEIR_LOG="${WEIR_LOG:-info}" "$WEIR_BIN" run --kubeconfig "$SA_KUBECONFIG" \
  --http-addr 127.0.0.1:18081 --https-addr 127.0.0.1:18444 --admin-addr 127.0.0.1:19901 --debug-addr off \
  --lease-namespace "$SYS" --identity gw-0 $WEIR_GATEWAY_FLAGS >>"$OUT/weir.log" 2>&1 </dev/null &
PID[weir]=$!
ready() { [[ "$(x curl -s -o /dev/null -w '%{http_code}' --max-time 2 http://127.0.0.1:19901/readyz)" == 200 ]]; }
ready_or_gone() { ready || ! kill -0 "${PID[weir]}" 2>/dev/null; }
if wait_until 60 ready_or_gone && ready; then
  pass "weir ready (/readyz 200; flags: ${WEIR_GATEWAY_FLAGS:-none})"
else
  kill -0 "${PID[weir]}" 2>/dev/null && why="not ready after 60 s" || why="exited"
  fail "weir $why (log $OUT/weir.log; flags: ${WEIR_GATEWAY_FLAGS:-none})"; exit 1
fi
# The suite reads the GatewayClass first (its supported features); give weir a moment.
gwc_accepted() {
  [[ "$(k get gatewayclass "$CLASS" -o jsonpath='{.status.conditions[?(@.type=="Accepted")].status}' 2>/dev/null)" == True ]]
}
wait_until 20 gwc_accepted || log "note: GatewayClass $CLASS is not Accepted after 20 s (weir wrote no status)"
features="$(k get gatewayclass "$CLASS" -o jsonpath='{.status.supportedFeatures[*].name}' 2>/dev/null | tr ' ' ,)"
log "GatewayClass $CLASS status: $(k get gatewayclass "$CLASS" -o jsonpath='{.status}' 2>/dev/null | head -c 600)"
phase weir

# ---------------------------------------------------------------- the suite
suite_args=(-test.v -test.run '^TestConformance$' -test.timeout "${SUITE_TIMEOUT}s"
  -gateway-class "$CLASS" -conformance-profiles "$PROFILES" -report-output "$OUT/report.yaml"
  -organization weir -project weir -url https://github.com/weir-dev/weir
  -version "$("$WEIR_BIN" --version | awk '{print $NF}')" -contact weir -cleanup-base-resources=false)
if [[ -n "${WEIR_GATEWAY_SUPPORTED_FEATURES:-}" ]]; then
  suite_args+=(-supported-features "$WEIR_GATEWAY_SUPPORTED_FEATURES")
elif [[ -z "$features" ]]; then
  # Inference refuses an empty list ("no supported features were determined") before any test.
  log "note: GatewayClass $CLASS lists no status.supportedFeatures: running the profile's core features only"
  suite_args+=(-supported-features Gateway,HTTPRoute,ReferenceGrant)
else
  log "supported features inferred by the suite from GatewayClass $CLASS: $features"
fi
if [[ "${WEIR_GATEWAY_TIMEOUTS:-short}" == short ]]; then
  # Durations as Go strings (a bare number would be nanoseconds: config.parseDuration). Short
  # enough that a run in which most tests fail stays within minutes; a weir that writes status
  # within a second or two is far inside them. MaxTimeToConsistency: the suite's own maximum
  # for a conformant implementation is 30 s.
  cat >"$OUT/conformance-options.yaml" <<'YAML'
timeoutConfig:
  createTimeout: 30s
  deleteTimeout: 10s
  getTimeout: 10s
  gwcMustBeAccepted: 20s
  gatewayMustHaveAddress: 10s
  gatewayMustHaveCondition: 10s
  gatewayStatusMustHaveListeners: 10s
  gatewayListenersMustHaveConditions: 10s
  httpRouteMustNotHaveParents: 10s
  httpRouteMustHaveCondition: 10s
  routeMustHaveParents: 10s
  latestObservedGenerationSet: 10s
  namespacesMustBeReady: 60s
  maxTimeToConsistency: 15s
  requestTimeout: 5s
  defaultTestTimeout: 30s
YAML
  suite_args+=(-conformance-options-file "$OUT/conformance-options.yaml")
fi
# shellcheck disable=SC2206
[[ -n "${WEIR_GATEWAY_SUITE_ARGS:-}" ]] && suite_args+=($WEIR_GATEWAY_SUITE_ARGS)
printf '%q ' "$SUITE_BIN" "${suite_args[@]}" >"$OUT/suite.cmd"; echo >>"$OUT/suite.cmd"
log "suite: $(cat "$OUT/suite.cmd")"
(cd "$OUT" && exec "${NSENTER[@]}" env KUBECONFIG="$WEIR_E2E_STATE/kubeconfig" \
  timeout -k 10 $((SUITE_TIMEOUT + 30)) nice "$SUITE_BIN" "${suite_args[@]}") >"$OUT/suite.log" 2>&1 </dev/null &
PID[suite]=$!
wait "${PID[suite]}"; suite_rc=$?
unset 'PID[suite]'
phase suite
[[ -n "${WEIR_GATEWAY_REPORT_DIR:-}" && -s "$OUT/report.yaml" ]] &&
  { mkdir -p "$WEIR_GATEWAY_REPORT_DIR" && cp "$OUT/report.yaml" "$WEIR_GATEWAY_REPORT_DIR/" &&
    log "report copied to $WEIR_GATEWAY_REPORT_DIR/report.yaml"; }

# ---------------------------------------------------------------- results
# `go test -v` prints one line per subtest: "--- PASS|FAIL|SKIP: TestConformance/<Name> (1.2s)".
results="$(grep -E '^\s*--- (PASS|FAIL|SKIP): TestConformance/[^/ ]+ ' "$OUT/suite.log" |
  sed -E 's/^\s*--- (PASS|FAIL|SKIP): TestConformance\/([^ ]+) .*/\1 \2/' | sort -u -k2)"
count() { grep -c "^$1 " <<<"$results"; }
P=$(count PASS) F=$(count FAIL) S=$(count SKIP)
echo "gateway conformance: $P passed, $F failed, $S skipped (suite exit $suite_rc, log $OUT/suite.log)"
if [[ -s "$OUT/report.yaml" && $((P + F)) -gt 0 ]]; then
  pass "the suite ran $((P + F)) tests ($S skipped) and wrote report.yaml"
elif [[ -s "$OUT/report.yaml" ]]; then
  fail "the suite ran no test (report.yaml empty of results): $(grep -m3 -E 'Error:|error waiting|FAIL|panic' "$OUT/suite.log" | tr -s ' \t' ' ' | head -c 400)"
else
  fail "the suite wrote no report (exit $suite_rc$([[ $suite_rc == 124 ]] && echo ': timeout')); tail of $OUT/suite.log:"
  tail -n 15 "$OUT/suite.log"
fi
declare -A expected=()
if [[ -f "$EXPECTED" ]]; then
  while read -r name _; do [[ -n "$name" ]] && expected[$name]=1; done < <(sed 's/#.*//' "$EXPECTED")
fi
unexpected="" now_passing=""
while read -r res name; do
  [[ -n "$name" ]] || continue
  if [[ $res == FAIL && -z "${expected[$name]:-}" ]]; then unexpected+=" $name"; fi
  if [[ $res == PASS && -n "${expected[$name]:-}" ]]; then now_passing+=" $name"; fi
done <<<"$results"
[[ -n "$now_passing" ]] && echo "listed in expected-failures.txt but passed now (trim the list):$now_passing"
if [[ $((P + F)) -eq 0 ]]; then
  : # nothing ran: already counted as a failure above
elif [[ -z "$unexpected" ]]; then
  pass "no conformance test failed that expected-failures.txt does not list ($F expected failures)"
else
  fail "conformance tests failed that expected-failures.txt does not list:$unexpected"
  # The first testify failure of each (Error Trace / Error / Test / Messages blocks).
  python3 - "$OUT/suite.log" $unexpected <<'PY'
import re, sys
log, names = sys.argv[1], sys.argv[2:]
first, block, field = {}, None, None
last, cur = {}, None  # fallback: the last "expected ..." / "Error ..." logged under the test

def done(b):
    if b and b.get("Test"):
        name = b["Test"][0].split("/")[1] if "/" in b["Test"][0] else b["Test"][0]
        first.setdefault(name, b)
for line in open(log, errors="replace"):
    line = line.rstrip("\n")
    m = re.match(r"^=== (?:RUN|CONT|NAME|PAUSE) +TestConformance/([^/ ]+)", line)
    if m:
        cur = m.group(1)
    elif cur:
        m = re.search(r"((?:Error|expected|error) .*)", line)
        if m and "Error Trace" not in line:
            last[cur] = m.group(1)
    m = re.match(r"^\s+(Error Trace|Error|Test|Messages):\s*\t(.*)", line)
    if m:
        if m.group(1) == "Error Trace":
            done(block); block = {}
        if block is not None:
            field = m.group(1); block.setdefault(field, []).append(m.group(2).strip())
        continue
    if block is not None and re.match(r"^\s+\t", line) and field:
        block[field].append(line.strip()); continue
    done(block); block, field = None, None
done(block)
for n in names:
    b = first.get(n)
    msg = " | ".join(" ".join(b.get(k, [])) for k in ("Messages", "Error") if b.get(k)) if b else last.get(n, "(see suite.log)")
    print("  %s: %s" % (n, msg[:300]))
PY
fi

# ---------------------------------------------------------------- examples/gateway in the cluster
# The example routes with their cluster backends (echo-basic Deployments; kubelet.py runs them),
# served by the same weir: the header canary, the 90/10 split, and a gRPC call over the
# GRPCRoute to the h2c gRPC echo.
phase_examples() {
  k apply -f "$REPO/examples/gateway/gateway.yaml" -f "$REPO/examples/gateway/httproute.yaml" \
    -f "$REPO/examples/gateway/grpcroute.yaml" -f "$REPO/examples/gateway-cluster/backends.yaml" >/dev/null ||
    { fail "kubectl apply examples/gateway"; return; }
  local addr="" i
  for i in $(seq 60); do
    addr="$(k -n default get gateway web -o jsonpath='{.status.addresses[0].value}' 2>/dev/null)"
    [[ -n $addr ]] && k -n default wait --for condition=Available deployment --all --timeout 1s >/dev/null 2>&1 &&
      [[ "$(x curl -s -o /dev/null -w '%{http_code}' --max-time 2 -H 'Host: shop.localhost' "http://$addr:8000/")" == 200 ]] && break
    sleep 1
  done
  [[ -n $addr ]] || { fail "examples: Gateway default/web got no address"; return; }
  local canary
  canary="$(x curl -s --max-time 5 -H 'Host: shop.localhost' -H 'X-Canary: always' -D - "http://$addr:8000/")"
  if [[ $canary == *'"pod": "echo-b-'* || $canary == *'"pod":"echo-b-'* ]] && grep -qi '^x-route: canary' <<<"$canary"; then
    pass "examples: X-Canary: always reaches echo-b (HTTPRoute header match) at $addr:8000"
  else
    fail "examples: the canary request did not reach echo-b: ${canary:0:300}"
  fi
  local a=0 b=0 pod
  for i in $(seq 100); do
    pod="$(x curl -s --max-time 5 -H 'Host: shop.localhost' "http://$addr:8000/" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("pod",""))' 2>/dev/null)"
    case $pod in echo-a-*) a=$((a + 1)) ;; echo-b-*) b=$((b + 1)) ;; esac
  done
  # 90/10 over 100 requests: echo-b's share is binomial(100, 0.1); 1..30 is far outside chance.
  if ((a + b == 100 && b >= 1 && b <= 30)); then
    pass "examples: the 90/10 split sent $a requests to echo-a and $b to echo-b"
  else
    fail "examples: the 90/10 split sent $a to echo-a and $b to echo-b (of 100)"
  fi
  # A unary gRPC call (an empty EchoRequest frame) through the GRPCRoute to the h2c echo.
  local grpc
  grpc="$(printf '\0\0\0\0\0' | x curl -s -v --max-time 5 --http2-prior-knowledge -H 'Host: grpc.localhost' \
    -H 'content-type: application/grpc' -H 'te: trailers' --data-binary @- --output /dev/null \
    "http://$addr:8000/gateway_api_conformance.echo_basic.grpcecho.GrpcEcho/Echo" 2>&1)"
  if grep -qi '^< grpc-status: 0' <<<"$grpc"; then
    pass "examples: gRPC GrpcEcho/Echo through the GRPCRoute answers grpc-status 0"
  else
    fail "examples: the gRPC call through the GRPCRoute failed: $(grep '^<' <<<"$grpc" | head -5 | tr '\n' ' ')"
  fi
}
phase_examples
phase examples
