#!/usr/bin/env bash
# Propagation at scale (issue 6, section 2): 5,000 Ingress routes and 20,000 endpoints in
# the real API server, then EndpointSlice changes; reports p50/p99 of
# weir_config_propagation_seconds{kind="endpoints"} from weir's /metrics, and weir's RSS.
#
#   e2e/kube/bench.sh   (WEIR_BIN=... to use a prebuilt binary; default: cargo build --release)
#   BENCH_SERVICES=500 BENCH_ENDPOINTS=40 BENCH_PATHS=10 BENCH_ROUNDS=30 BENCH_BATCH=10
#
# Bounded: every wait has a timeout; the cluster is always brought down.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
export WEIR_E2E_STATE="${WEIR_E2E_KUBE_STATE:-/tmp/weir-e2e-bench.$$}"
CLUSTER="$REPO/e2e/cluster/cluster.sh"
CONTROLLER="${WEIR_E2E_CONTROLLER:-weir.dev/ingress-controller}"
SERVICES="${BENCH_SERVICES:-500}" ENDPOINTS="${BENCH_ENDPOINTS:-40}" PATHS="${BENCH_PATHS:-10}"
ROUNDS="${BENCH_ROUNDS:-30}" BATCH="${BENCH_BATCH:-10}"
SYS=weir-system
# shellcheck source=e2e/kube/lib.sh
source "$HERE/lib.sh"
WEIR_PID=""

cleanup() {
  [[ -n "$WEIR_PID" ]] && stop_pid "$WEIR_PID"
  "$CLUSTER" down >/dev/null 2>&1 || "$CLUSTER" down
  trap - EXIT
  echo "$PASSED passed, $FAILED failed"
  [[ $FAILED -eq 0 ]] || exit 1
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -z "${WEIR_BIN:-}" ]]; then
  (cd "$REPO" && nice cargo build --release --bin weir) || { fail "cargo build --release"; exit 1; }
  WEIR_BIN="$REPO/target/release/weir"
fi
"$CLUSTER" up || { fail "cluster up"; exit 1; }
nsenter_args
apply_rbac "$SYS"
# weir's CRDs, as the chart installs them before weir starts (weir waits for every kind it
# watches to list).
k apply -f "$REPO/crds/" >/dev/null && k wait --for condition=Established crd --all --timeout 30s >/dev/null \
  || { fail "applying crds/"; exit 1; }
SA_KUBECONFIG="$WEIR_E2E_STATE/weir-sa.kubeconfig"
sa_kubeconfig "$SYS" weir "$SA_KUBECONFIG" || { fail "token"; exit 1; }

routes=$((SERVICES * PATHS)) endpoints=$((SERVICES * ENDPOINTS))
log "loading $SERVICES Services, $SERVICES EndpointSlices ($endpoints endpoints), $SERVICES Ingresses ($routes routes)"
k create namespace bench >/dev/null
k apply -f - >/dev/null <<YAML
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: weir}
spec: {controller: $CONTROLLER}
YAML
python3 "$HERE/gen_bench.py" objects --services "$SERVICES" --endpoints "$ENDPOINTS" --paths "$PATHS" \
  >"$WEIR_E2E_STATE/bench.json"
t0=$SECONDS
timeout 900 "$CLUSTER" exec -- kubectl apply --server-side --field-manager bench -f - \
  <"$WEIR_E2E_STATE/bench.json" >/dev/null || { fail "loading objects"; exit 1; }
pass "loaded $((SERVICES * 3)) objects in $((SECONDS - t0)) s"

t0=$SECONDS
"${NSENTER[@]}" env RUST_LOG="${RUST_LOG:-warn}" "$WEIR_BIN" run --kubeconfig "$SA_KUBECONFIG" \
  --http-addr 127.0.0.1:18081 --https-addr 127.0.0.1:18443 --admin-addr 127.0.0.1:18091 --debug-addr off \
  --lease-namespace "$SYS" --lease-name weir-leader --identity bench \
  --publish-address 10.244.255.1 >"$WEIR_E2E_STATE/weir.log" 2>&1 </dev/null &
WEIR_PID=$!
ready() { [[ "$(x curl -s -o /dev/null -w '%{http_code}' --max-time 2 http://127.0.0.1:18091/readyz)" == 200 ]]; }
wait_until 300 ready || { fail "weir not ready"; tail -20 "$WEIR_E2E_STATE/weir.log"; exit 1; }
pass "weir ready (listed + compiled $routes routes, $endpoints endpoints) in $((SECONDS - t0)) s; RSS $(rss_kib "$WEIR_PID") KiB"
sleep 3 # let the status writer settle (status patches echo back as watch events)

log "EndpointSlice changes: $ROUNDS rounds of $BATCH slices"
for r in $(seq "$ROUNDS"); do
  python3 "$HERE/gen_bench.py" churn --services "$SERVICES" --endpoints "$ENDPOINTS" --changes "$BATCH" --seed "$r" |
    timeout 60 "$CLUSTER" exec -- kubectl apply --server-side --field-manager bench --force-conflicts -f - >/dev/null \
    || fail "churn round $r"
done
sleep 2
count="$(metric 18091 'weir_config_propagation_seconds_count{kind="endpoints"}')"
p50="$(quantile 18091 endpoints 0.5)" p99="$(quantile 18091 endpoints 0.99)"
rss="$(rss_kib "$WEIR_PID")"
if [[ "${count:-0}" -ge $((ROUNDS * BATCH / 2)) ]]; then
  pass "endpoints propagation over $count changes: p50 $(python3 -c "print(f'{$p50*1000:.2f}')") ms, p99 $(python3 -c "print(f'{$p99*1000:.2f}')") ms; RSS $rss KiB"
else
  fail "only ${count:-0} endpoint propagations measured for $((ROUNDS * BATCH)) slice changes"
fi

log "Ingress changes: 20 single-Ingress patches"
for i in $(seq 0 19); do
  k -n bench patch ingress "ing-$i" --type json \
    -p '[{"op":"add","path":"/spec/rules/0/http/paths/-","value":{"path":"/extra","pathType":"Prefix","backend":{"service":{"name":"svc-0","port":{"number":80}}}}}]' >/dev/null
  sleep 0.3 # beyond the quiet period: one compile per change
done
sleep 2
rcount="$(metric 18091 'weir_config_propagation_seconds_count{kind="routes"}')"
r50="$(quantile 18091 routes 0.5)" r99="$(quantile 18091 routes 0.99)"
pass "routes propagation over $rcount compiles (includes the 100 ms quiet period): p50 $(python3 -c "print(f'{$r50*1000:.1f}')") ms, p99 $(python3 -c "print(f'{$r99*1000:.1f}')") ms; RSS $(rss_kib "$WEIR_PID") KiB"
# A compile builds the next snapshot beside the live one; the allocator returns the old one's
# pages after its 10 s decay. What stays:
sleep 15
pass "RSS 15 s after the last change: $(rss_kib "$WEIR_PID") KiB"
