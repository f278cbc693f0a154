#!/usr/bin/env bash
# HTTP/2 conformance of the built `weir` binary (issue 10 §1): h2spec v2.2.1, strict (-S),
# against both listeners of `weir run --manifests`: h2c (prior knowledge) on the HTTP port
# and h2 over TLS (ALPN) on the HTTPS port, with a certificate from a Secret. Every process it
# starts is stopped by PID. Passes when the cases that do not pass are exactly those listed
# in expected-failures.txt (see README.md).
#
#   e2e/h2spec/test.sh                    WEIR_BIN defaults to target/ci/weir
#
# Environment: WEIR_BIN, WEIR_CACHE (where build.sh caches h2spec), WEIR_H2SPEC_OUT (reports,
# default target/e2e-h2spec), WEIR_H2SPEC_TIMEOUT (h2spec -o, seconds per wait, default 2),
# WEIR_H2SPEC_EXPECTED (default e2e/h2spec/expected-failures.txt).
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
WEIR="${WEIR_BIN:-$REPO/target/ci/weir}"
OUT="${WEIR_H2SPEC_OUT:-$REPO/target/e2e-h2spec}"
EXPECTED="${WEIR_H2SPEC_EXPECTED:-$HERE/expected-failures.txt}"
TIMEOUT="${WEIR_H2SPEC_TIMEOUT:-2}"

log() { printf '[h2spec %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[h2spec] ERROR: %s\n' "$*" >&2; exit 1; }

[[ -x $WEIR ]] || die "no weir binary at $WEIR (cargo build --profile ci --bin weir)"
H2SPEC="$("$HERE/build.sh")" || exit 1
command -v openssl >/dev/null || die "openssl not found on PATH (it makes the test certificate)"

TMP="$(mktemp -d /tmp/weir-e2e-h2spec.XXXXXX)"
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT
mkdir -p "$OUT" && rm -f "$OUT"/{h2c,tls}.{xml,txt} "$OUT"/{weir,backend}.log

# Upstream: HTTP/1.1, 200 and a short body for every request, on a port it picks.
python3 "$HERE/backend.py" 0 >"$TMP/backend.out" 2>"$OUT/backend.log" &
PIDS+=($!)
for _ in $(seq 100); do grep -qs '^ready' "$TMP/backend.out" && break; sleep 0.05; done
BACKEND_PORT="$(awk '/^ready/ {print $2}' "$TMP/backend.out")"
[[ -n $BACKEND_PORT ]] || die "the backend did not start (see $OUT/backend.log)"

# Certificate for the HTTPS listener. h2spec connects to "localhost" so that it sends SNI and
# weir serves this Secret's certificate rather than its built-in no-SNI fallback.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost \
    -keyout "$TMP/tls.key" -out "$TMP/tls.crt" >"$TMP/openssl.log" 2>&1 ||
    { cat "$TMP/openssl.log" >&2; die "openssl could not make the test certificate"; }

mkdir -p "$TMP/manifests"
cat >"$TMP/manifests/h2spec.yaml" <<YAML
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: weir
  annotations: {ingressclass.kubernetes.io/is-default-class: "true"}
spec: {controller: weir.dev/ingress-controller}
---
apiVersion: v1
kind: Service
metadata: {name: backend, namespace: default}
spec:
  ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: backend-1
  namespace: default
  labels: {kubernetes.io/service-name: backend}
addressType: IPv4
ports: [{name: http, port: $BACKEND_PORT, protocol: TCP}]
endpoints: [{addresses: ["127.0.0.1"], conditions: {ready: true}}]
---
apiVersion: v1
kind: Secret
metadata: {name: h2spec-tls, namespace: default}
type: kubernetes.io/tls
stringData:
  tls.crt: |
$(sed 's/^/    /' "$TMP/tls.crt")
  tls.key: |
$(sed 's/^/    /' "$TMP/tls.key")
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: h2spec, namespace: default}
spec:
  tls: [{hosts: [localhost], secretName: h2spec-tls}]
  rules:
  - http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: backend, port: {number: 80}}}}
YAML

# weir on three free loopback ports, drawn below the kernel's usual ephemeral range
# (32768-60999): with the hundreds of TIME-WAIT sockets an h2spec run leaves, ports that
# bind(0) had just handed out were seen refused to weir ("Address already in use"). If one is
# taken anyway between the check and weir's bind, weir is started again on other ports.
free_ports() {
    python3 -c '
import random, socket
ports = []
while len(ports) < 3:
    p = random.randrange(20000, 32000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        ports.append(p)
    except OSError:
        pass
    finally:
        s.close()
print(*ports)'
}
ready=""
for attempt in 1 2 3 4 5; do
    read -r HTTP_PORT HTTPS_PORT ADMIN_PORT < <(free_ports)
    ADMIN=127.0.0.1:$ADMIN_PORT
    "$WEIR" run --manifests "$TMP/manifests" --http-addr "127.0.0.1:$HTTP_PORT" \
        --https-addr "127.0.0.1:$HTTPS_PORT" --admin-addr "$ADMIN" --debug-addr off --workers 1 \
        >"$OUT/weir.log" 2>&1 &
    WEIR_PID=$!
    PIDS+=($WEIR_PID)
    for _ in $(seq 100); do
        kill -0 $WEIR_PID 2>/dev/null || break
        [[ $(curl -s --max-time 1 -o /dev/null -w '%{http_code}' "http://$ADMIN/readyz") == 200 ]] && { ready=yes; break; }
        sleep 0.1
    done
    [[ -n $ready ]] && break
    grep -q 'Address already in use' "$OUT/weir.log" || break
    log "a port was taken (attempt $attempt): $(tail -n 1 "$OUT/weir.log")"
    wait $WEIR_PID 2>/dev/null
done
[[ -n $ready ]] || { tail -n 20 "$OUT/weir.log" >&2; die "weir did not become ready on $ADMIN (log: $OUT/weir.log)"; }
# Preflight, so that a broken setup is not mistaken for 146 conformance failures: h2c
# answers, and the TLS listener negotiates h2 with the Secret's certificate (verified).
[[ $(curl -s --max-time 5 -o /dev/null -w '%{http_version} %{http_code}' --http2-prior-knowledge \
    "http://127.0.0.1:$HTTP_PORT/") == "2 200" ]] ||
    die "weir does not answer h2c with 200 on 127.0.0.1:$HTTP_PORT (log: $OUT/weir.log)"
[[ $(curl -s --max-time 5 -o /dev/null -w '%{http_version} %{http_code}' --http2 --cacert "$TMP/tls.crt" \
    "https://localhost:$HTTPS_PORT/") == "2 200" ]] ||
    die "weir does not answer h2 over TLS with 200 and the test certificate on localhost:$HTTPS_PORT (log: $OUT/weir.log)"

# h2spec exits 1 when any case fails: the verdict is check.py's, against the expected list.
run_h2spec() { # run_h2spec NAME ARGS...
    local name="$1"; shift
    log "h2spec -S $* -o $TIMEOUT (output: $OUT/$name.txt, JUnit: $OUT/$name.xml)"
    "$H2SPEC" -S -o "$TIMEOUT" -j "$OUT/$name.xml" "$@" >"$OUT/$name.txt" 2>&1
    if [[ ! -s $OUT/$name.xml ]]; then
        # h2spec stops without a report when it cannot connect at all.
        tail -n 20 "$OUT/$name.txt" >&2
        die "h2spec $name wrote no JUnit report (output: $OUT/$name.txt, weir log: $OUT/weir.log)"
    fi
}
run_h2spec h2c -h 127.0.0.1 -p "$HTTP_PORT"
run_h2spec tls -t -k -h localhost -p "$HTTPS_PORT"

if python3 "$HERE/check.py" "$EXPECTED" h2c="$OUT/h2c.xml" tls="$OUT/tls.xml"; then
    log "ok: every case passes except those listed in ${EXPECTED#"$REPO"/}"
else
    rc=$?
    ((rc == 2)) && die "the expected-failures list or a JUnit report is unreadable (above)"
    log "FAILED: h2spec disagrees with ${EXPECTED#"$REPO"/} (above). JUnit: $OUT/h2c.xml $OUT/tls.xml;"
    log "        h2spec's own output: $OUT/h2c.txt $OUT/tls.txt; weir log: $OUT/weir.log"
    exit "$rc"
fi
