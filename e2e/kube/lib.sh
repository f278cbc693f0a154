# Shared helpers of e2e/kube/test.sh and e2e/kube/bench.sh (sourced, not run).
# Expects REPO, CLUSTER, WEIR_E2E_STATE set by the caller.

PASSED=0 FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "PASS: $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL: $*"; }
log() { printf '[e2e-kube %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

x() { "$CLUSTER" exec -- "$@"; } # inside the cluster's network namespace, admin kubeconfig
k() { x kubectl "$@"; }

netns_pid() { cat "$WEIR_E2E_STATE/pids/netns"; }

# nsenter_args: the nsenter command line that enters the cluster's network namespace. Use
# it directly (`"${NSENTER[@]}" CMD &`, never through a function) when starting a
# background process: then `$!` is CMD's own PID (nsenter and env exec it), so stopping it
# by PID stops it, not a wrapper.
nsenter_args() {
  if [[ "$(id -u)" == 0 ]]; then
    NSENTER=(nsenter -t "$(netns_pid)" -n --)
  else
    NSENTER=(nsenter -t "$(netns_pid)" -U -n --preserve-credentials --)
  fi
}

# wait_until SECONDS CMD...: run CMD every 0.2 s until it succeeds; false on timeout.
wait_until() {
  local deadline=$((SECONDS + $1)); shift
  while ((SECONDS < deadline)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}

# metric ADMIN_PORT NAME_WITH_LABELS: the value of one sample from weir's /metrics.
metric() {
  x curl -s --max-time 5 "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n {print $2; exit}'
}

# quantile ADMIN_PORT KIND Q: quantile estimate (seconds) of weir_config_propagation_seconds
# from the histogram buckets, linear within a bucket (as Prometheus histogram_quantile).
quantile() {
  x curl -s --max-time 5 "http://127.0.0.1:$1/metrics" | python3 -c '
import re, sys
kind, q = sys.argv[1], float(sys.argv[2])
buckets = []
for line in sys.stdin:
    m = re.match(r"weir_config_propagation_seconds_bucket\{kind=\"%s\",le=\"([^\"]+)\"\} (\d+)" % kind, line)
    if m:
        buckets.append((float("inf") if m.group(1) == "+Inf" else float(m.group(1)), int(m.group(2))))
if not buckets or buckets[-1][1] == 0:
    print("nan"); sys.exit()
total = buckets[-1][1]; rank = q * total; lo, prev = 0.0, 0
for le, c in buckets:
    if c >= rank:
        if le == float("inf"):
            print(lo); break
        print(lo + (le - lo) * ((rank - prev) / max(c - prev, 1))); break
    lo, prev = le, c
' "$2" "$3"
}

# sa_kubeconfig NS SA FILE: a kubeconfig that authenticates as the ServiceAccount NS/SA
# with a freshly minted token (kubectl create token).
sa_kubeconfig() {
  local token
  token="$(k -n "$1" create token "$2" --duration 2h)" || return 1
  cat >"$3" <<KC
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: https://127.0.0.1:${WEIR_E2E_APISERVER_PORT:-16443}
    certificate-authority: $WEIR_E2E_STATE/pki/ca.crt
users:
- name: $2
  user:
    token: $token
contexts:
- name: $2
  context: {cluster: e2e, user: $2}
current-context: $2
KC
}

# apply_rbac NS: create NS, the ServiceAccount weir and exactly the rules of docs/rbac.yaml.
apply_rbac() {
  k create namespace "$1" >/dev/null 2>&1 || true
  k -n "$1" create serviceaccount weir >/dev/null 2>&1 || true
  sed "s/WEIR_NAMESPACE/$1/g" "$REPO/docs/rbac.yaml" | k apply -f - >/dev/null
}

# rss_kib PID
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null; }

# stop_pid PID: TERM, wait up to 10 s, then KILL; only our own processes, by PID.
stop_pid() {
  local pid="$1" i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  kill -KILL "$pid" 2>/dev/null
}

# servicemonitor_crd: the path of prometheus-operator's own ServiceMonitor CRD
# (example/prometheus-operator-crd/ of the Go module github.com/prometheus-operator/
# prometheus-operator at PROM_OPERATOR_VERSION, the newest version the Go module proxy serves),
# fetched once with `go mod download` (checked against the Go checksum database) and cached
# under ${WEIR_CACHE:-~/.cache/weir-e2e}; the file's sha256 is pinned as well.
PROM_OPERATOR_VERSION=v0.85.0
PROM_OPERATOR_SM_SHA256=1dae27b7189b5ce7b9ab764656c18b4c75a45cde1e6f3af6a5e84c4317628919
servicemonitor_crd() {
  local mod=github.com/prometheus-operator/prometheus-operator
  local dir="${WEIR_CACHE:-$HOME/.cache/weir-e2e}/prometheus-operator-$PROM_OPERATOR_VERSION"
  local file="$dir/monitoring.coreos.com_servicemonitors.yaml" tmp zip
  if [[ ! -s $file ]]; then
    tmp="$(mktemp -d)" || return 1
    # A throwaway module cache (writable, so it can be removed): only the one file is kept.
    zip="$(cd "$tmp" && GOMODCACHE="$tmp/mod" GOFLAGS=-modcacherw GOTOOLCHAIN=local \
      go mod download -json "$mod@$PROM_OPERATOR_VERSION" |
      python3 -c 'import json, sys; d = json.load(sys.stdin); print(d.get("Zip") or sys.exit(d.get("Error", "no Zip")))')" &&
      mkdir -p "$dir" &&
      python3 -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))' \
        "$zip" "$mod@$PROM_OPERATOR_VERSION/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml" \
        >"$file.tmp" && mv -f "$file.tmp" "$file"
    rm -rf "$tmp" "$file.tmp"
  fi
  [[ -s $file && "$(sha256sum "$file" | cut -d' ' -f1)" == "$PROM_OPERATOR_SM_SHA256" ]] || {
    echo "servicemonitor_crd: $file missing or not sha256 $PROM_OPERATOR_SM_SHA256" >&2; return 1; }
  echo "$file"
}
