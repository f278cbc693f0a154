#!/usr/bin/env bash
# Black-box test of the built `weir` binary in manifests mode (issue 4 §1, §9): it starts
# `weir run --manifests DIR` on 127.0.0.1 with named Python backends, then checks routing
# over HTTP/1.1, h2c and TLS, live reload on a file change, the admin endpoints, the Helm
# chart's Grafana dashboard against the live /metrics (dashboard_check.py), the status page
# in a headless Chromium (status_page.py), `weir validate` exit codes, and a clean exit on
# SIGTERM. Every process it starts is stopped by PID. Ends with "N passed, N failed".
#
#   WEIR_BIN=target/release/weir e2e/manifests/test.sh
#
# The browser test needs Debian's chromium (installed here with apt-get when running as root,
# or by .ci/run) and Playwright from PyPI (a venv in $WEIR_CACHE/browser-venv, default
# ~/.cache/weir-e2e; Playwright's own browser downloads are never used). When either cannot
# be had the test fails; WEIR_SKIP_BROWSER=1 skips it, saying so.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
WEIR="${WEIR_BIN:-$REPO/target/release/weir}"
[[ -x $WEIR ]] || { echo "no weir binary at $WEIR (cargo build --release)"; exit 1; }
TMP="$(mktemp -d /tmp/weir-e2e-manifests.XXXXXX)"
HTTP=127.0.0.1:18280 HTTPS=127.0.0.1:18643 ADMIN=127.0.0.1:18901 DEBUG=127.0.0.1:18902
PIDS=()
PASSED=0 FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "PASS: $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL: $*"; }
check() { # check DESCRIPTION EXPECTED ACTUAL
    if [[ $3 == *"$2"* ]]; then pass "$1"; else fail "$1: expected '$2' in '$3'"; fi
}
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    rm -rf "$TMP"
    echo "$PASSED passed, $FAILED failed"
    [[ $FAILED -eq 0 ]]
}
trap 'cleanup; exit $?' EXIT
c() { curl -s --max-time 5 "$@"; }

# Manifests: the demo example, with its endpoints moved to this test's backend ports.
mkdir -p "$TMP/m/apps"
cp "$REPO"/examples/demo/ingressclass.yaml "$TMP/m/"
sed 's/18101/18211/; s/18102/18212/' "$REPO"/examples/demo/echo-a.yaml >"$TMP/m/apps/echo-a.yaml"
sed 's/18103/18213/; s/18104/18214/' "$REPO"/examples/demo/echo-b.yaml >"$TMP/m/apps/echo-b.yaml"
cp "$REPO"/examples/demo/ingress.yaml "$TMP/m/apps/"
cat >"$TMP/m/apps/broken.yaml" <<'YAML'
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: ghost, namespace: default}
spec:
  rules:
  - host: ghost.localhost
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: missing, port: {number: 80}}}}
YAML

# A Service whose only endpoint refuses connections (nothing listens on 18219): 502s, so the
# scrape has upstream errors and 5xx series for the dashboard check.
cat >"$TMP/m/apps/refused.yaml" <<'YAML'
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: refused, namespace: default}
spec:
  rules:
  - host: refused.localhost
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: refused, port: {number: 80}}}}
---
apiVersion: v1
kind: Service
metadata: {name: refused, namespace: default}
spec:
  ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: refused-1
  namespace: default
  labels: {kubernetes.io/service-name: refused}
addressType: IPv4
ports: [{name: http, port: 18219, protocol: TCP}]
endpoints: [{addresses: [127.0.0.1], conditions: {ready: true}}]
YAML

python3 "$HERE/backend.py" a1=18211 a2=18212 b1=18213 b2=18214 >"$TMP/backend.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q ready "$TMP/backend.log" && break; sleep 0.1; done
"$WEIR" run --manifests "$TMP/m" --http-addr $HTTP --https-addr $HTTPS --admin-addr $ADMIN --debug-addr $DEBUG \
    --workers 1 --access-log "$TMP/access.log" --access-log-json --metrics-per-route >"$TMP/weir.log" 2>&1 &
WEIR_PID=$!
PIDS+=($WEIR_PID)
for _ in $(seq 100); do
    [[ $(c -o /dev/null -w '%{http_code}' http://$ADMIN/readyz) == 200 ]] && break
    sleep 0.1
done
check "readyz is 200 once the snapshot is live" 200 "$(c -o /dev/null -w '%{http_code}' http://$ADMIN/readyz)"

# Routing over HTTP/1.1, per-request round robin across the two endpoints of echo-a.
got="$(for _ in 1 2 3 4; do c -H 'Host: demo.localhost' http://$HTTP/a/x | head -1; done | sort | uniq -c)"
check "HTTP/1.1 /a round-robins over a1 and a2 (a1)" "2 a1 GET /a/x" "$got"
check "HTTP/1.1 /a round-robins over a1 and a2 (a2)" "2 a2 GET /a/x" "$got"
check "host is case-insensitive, port stripped" "GET /b" "$(c -H 'Host: DEMO.localhost:18280' http://$HTTP/b | head -1)"
check "h2c prior knowledge on the same port" "GET /b?q=1" "$(c --http2-prior-knowledge -H 'Host: demo.localhost' "http://$HTTP/b?q=1" | head -1)"
check "no-host rule catches other hosts" "a" "$(c -H 'Host: other.example' http://$HTTP/anything | head -1 | cut -c1)"
check "X-Forwarded-Proto set" "x-forwarded-proto: http" "$(c -H 'Host: demo.localhost' http://$HTTP/a)"
check "missing Service → 503" 503 "$(c -o /dev/null -w '%{http_code}' -H 'Host: ghost.localhost' http://$HTTP/)"
out="$(c -k --http2 --resolve demo.localhost:18643:127.0.0.1 -w ' proto=%{http_version}' https://demo.localhost:18643/b)"
check "TLS (self-signed default cert) with ALPN h2" "proto=2" "$out"
check "TLS reaches the route" "GET /b" "$out"
check "X-Forwarded-Proto https over TLS" "x-forwarded-proto: https" "$out"

# Live reload: point /b at echo-a by editing the Ingress file.
sed -i 's/name: echo-b/name: echo-a/' "$TMP/m/apps/ingress.yaml"
ok=""
for _ in $(seq 50); do
    first="$(c -H 'Host: demo.localhost' http://$HTTP/b | head -1 | cut -c1)"
    [[ $first == a ]] && { ok=yes; break; }
    sleep 0.1
done
check "a file change is served without a restart" yes "$ok"
rm "$TMP/m/apps/broken.yaml"
sleep 1
check "removing the file removes its route (unknown host → no-host rule)" 200 \
    "$(c -o /dev/null -w '%{http_code}' -H 'Host: ghost.localhost' http://$HTTP/)"

# Admin (health, metrics) and debug (configuration dumps) listeners.
check "/clusters on the debug listener lists endpoint counts" '"total"' "$(c http://$DEBUG/clusters)"
check "/config on the debug listener dumps the snapshot" '"virtual_hosts"' "$(c http://$DEBUG/config)"
check "the admin listener does not dump the configuration" 404 "$(c -o /dev/null -w '%{http_code}' http://$ADMIN/config)"
check "the debug listener does not serve /metrics" 404 "$(c -o /dev/null -w '%{http_code}' http://$DEBUG/metrics)"
metrics="$(c http://$ADMIN/metrics)"
check "/metrics has request counters" 'weir_requests_total{' "$metrics"
check "/metrics has control-plane metrics" 'weir_reconcile' "$metrics"
check "/metrics has dropped access-log lines" "weir_access_log_dropped_total" "$metrics"
check "/metrics has certificate expiry" "weir_certificates_expired 0" "$metrics"
check "access log is JSON with the route" '"route"' "$(head -1 "$TMP/access.log")"

# The Helm chart's Grafana dashboard: every metric and label its queries use is in this
# weir's /metrics after traffic (per-route series on: --metrics-per-route; 5xx and upstream
# errors from the refused endpoint).
check "a refused endpoint answers 502" 502 "$(c -o /dev/null -w '%{http_code}' -H 'Host: refused.localhost' http://$HTTP/)"
c http://$ADMIN/metrics >"$TMP/scrape.txt"
DASHBOARD="$REPO/helm/weir/dashboards/weir.json"
if python3 "$HERE/dashboard_check.py" "$DASHBOARD" "$TMP/scrape.txt" >"$TMP/dashboard.out" 2>&1; then
    pass "every metric and label of the Grafana dashboard is in the live /metrics ($(head -1 "$TMP/dashboard.out" | cut -d, -f1))"
else
    fail "the Grafana dashboard uses what /metrics does not have:"$'\n'"$(cat "$TMP/dashboard.out")"
fi
# The check can fail: the same dashboard with one metric misspelled.
sed 's/weir_upstream_errors_total/weir_upstream_error_total/' "$DASHBOARD" >"$TMP/bogus.json"
python3 "$HERE/dashboard_check.py" "$TMP/bogus.json" "$TMP/scrape.txt" >"$TMP/bogus.out" 2>&1
check "the dashboard check refuses a misspelled metric" "metric 'weir_upstream_error_total' is not in the scrape" "$(cat "$TMP/bogus.out")"
sed 's/sum by (cluster, kind)/sum by (cluster, kinds)/' "$DASHBOARD" >"$TMP/bogus.json"
python3 "$HERE/dashboard_check.py" "$TMP/bogus.json" "$TMP/scrape.txt" >"$TMP/bogus.out" 2>&1
check "the dashboard check refuses a label the metric does not have" "label 'kinds' is on none of" "$(cat "$TMP/bogus.out")"

# The status page at / on the debug listener, in a headless Chromium: it shows a route host
# and an endpoint of this config, and a config change without a reload.
check "the status page is served at / on the debug listener" "<title>weir status</title>" "$(c http://$DEBUG/)"
check "the admin listener points to the debug listener for /" "debug listener" "$(c http://$ADMIN/)"
check "/status.json lists the endpoint 127.0.0.1:18211" '"address": "127.0.0.1:18211"' "$(c http://$DEBUG/status.json)"
browser_ready() { # chromium and a venv with Playwright; installs them when it can
    # Not under tools/: e2e/helm takes the first tools/*/bin for helm's.
    BROWSER_VENV="${WEIR_CACHE:-$HOME/.cache/weir-e2e}/browser-venv"
    if [[ ! -x ${CHROMIUM:-/usr/bin/chromium} ]] && ((EUID == 0)) && command -v apt-get >/dev/null; then
        echo "installing chromium (apt-get)"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >"$TMP/apt.log" 2>&1 ||
            cat "$TMP/apt.log"
    fi
    [[ -x ${CHROMIUM:-/usr/bin/chromium} ]] || { echo "no chromium at ${CHROMIUM:-/usr/bin/chromium} (apt-get install chromium)"; return 1; }
    if [[ ! -x $BROWSER_VENV/bin/python ]] || ! "$BROWSER_VENV/bin/python" -c 'import playwright' 2>/dev/null; then
        echo "installing Playwright into $BROWSER_VENV (pip)"
        python3 -m venv "$BROWSER_VENV" && "$BROWSER_VENV/bin/pip" install -q 'playwright==1.65.2' || return 1
    fi
}
if [[ ${WEIR_SKIP_BROWSER:-0} == 1 ]]; then
    echo "SKIP: the status page browser test (WEIR_SKIP_BROWSER=1)"
elif ! browser_ready; then
    fail "the status page browser test: chromium or Playwright could not be installed (WEIR_SKIP_BROWSER=1 skips it)"
else
    "$BROWSER_VENV/bin/python" "$HERE/status_page.py" "http://$DEBUG/" demo.localhost 127.0.0.1:18211 \
        "$TMP/m/apps/status-page.yaml" status.localhost >"$TMP/browser.out" 2>&1
    rc=$?
    while IFS= read -r line; do
        case $line in
            PASS:*) pass "status page: ${line#PASS: }" ;;
            FAIL:*) fail "status page: ${line#FAIL: }" ;;
        esac
    done <"$TMP/browser.out"
    grep -q '^PASS:' "$TMP/browser.out" && ((rc == 0 || $(grep -c '^FAIL:' "$TMP/browser.out") > 0)) ||
        fail "status page: the browser test did not run:"$'\n'"$(cat "$TMP/browser.out")"
fi

# validate exit codes (like nginx -t).
"$WEIR" validate --manifests "$REPO/examples/demo" >/dev/null 2>&1
check "validate: valid directory exits 0" 0 "$?"
cp -r "$TMP/m" "$TMP/bad" && printf 'kind: Ingress\napiVersion: networking.k8s.io/v1\nmetadata: {name: x}\nspec: {rules: [{http: {paths: [{path: /x, pathType: Exact, backend: {service: {name: nope, port: {number: 1}}}}]}}]}\n' >"$TMP/bad/x.yaml"
"$WEIR" validate --manifests "$TMP/bad" >"$TMP/validate.out" 2>&1
check "validate: rejected piece exits 1" 1 "$?"
check "validate names the reason" "ServiceNotFound" "$(cat "$TMP/validate.out")"
"$WEIR" validate --manifests "$TMP/does-not-exist" >/dev/null 2>&1
check "validate: unreadable directory exits 2" 2 "$?"

# SIGTERM: drain and exit 0.
kill -TERM $WEIR_PID
wait $WEIR_PID
check "SIGTERM exits 0" 0 "$?"

# examples/gateway in manifests mode: a Gateway (its own listener), the HTTPRoute's header
# canary and 90/10 split, the GRPCRoute accepted (a gRPC call needs an h2c server: e2e/gateway
# makes that call in the cluster). Endpoints moved to this test's backends, the listener to 18800.
"$WEIR" validate --manifests "$REPO/examples/gateway" >"$TMP/validate-gw.out" 2>&1
check "validate: examples/gateway is valid (exit 0)" 0 "$?"
check "validate: the GRPCRoute's parent is accepted" "GRPCRoute default/echo" "$(cat "$TMP/validate-gw.out")"
check "validate: --gateway-address-pool gives the Gateway its address" "value: 10.0.0.1" \
    "$("$WEIR" validate --manifests "$REPO/examples/gateway" --gateway-address-pool 10.0.0.0/30 2>&1)"
mkdir -p "$TMP/gw"
for f in "$REPO"/examples/gateway/*.yaml; do
    sed 's/18101/18211/; s/18102/18212/; s/18103/18213/; s/port: 8000/port: 18800/' "$f" >"$TMP/gw/$(basename "$f")"
done
"$WEIR" run --manifests "$TMP/gw" --http-addr 127.0.0.1:18281 --https-addr 127.0.0.1:18644 \
    --admin-addr 127.0.0.1:18903 --debug-addr off --gateway-bind-address 127.0.0.1 >"$TMP/weir-gw.log" 2>&1 &
GW_PID=$!
PIDS+=($GW_PID)
for _ in $(seq 100); do
    [[ $(c -o /dev/null -w '%{http_code}' -H 'Host: shop.localhost' http://127.0.0.1:18800/) == 200 ]] && break
    sleep 0.1
done
out="$(c -D - -H 'Host: shop.localhost' -H 'X-Canary: always' http://127.0.0.1:18800/)"
check "examples/gateway: X-Canary: always reaches echo-b" "b1 GET /" "$out"
check "examples/gateway: the canary rule's response header" "x-route: canary" "$(tr 'A-Z' 'a-z' <<<"$out")"
b=0
for _ in $(seq 100); do
    [[ "$(c -H 'Host: shop.localhost' http://127.0.0.1:18800/ | head -1 | cut -c1)" == b ]] && b=$((b + 1))
done
# echo-b's share of 100 requests at weight 10 of 100: 1..30 is far outside chance.
check "examples/gateway: the 90/10 split gives echo-b a minority ($b of 100)" yes "$( ((b >= 1 && b <= 30)) && echo yes)"
kill -TERM $GW_PID
wait $GW_PID
check "examples/gateway: SIGTERM exits 0" 0 "$?"
