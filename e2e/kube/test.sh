#!/usr/bin/env bash
# weir in Kubernetes mode, end to end, against the real control plane of e2e/cluster
# (issue 6, section 5). The built `weir` binary runs as a process inside the cluster's
# network namespace with a kubeconfig for a ServiceAccount bound to exactly docs/rbac.yaml,
# so least privilege is proven, not assumed.
#
#   e2e/kube/test.sh            (WEIR_BIN=path to use a prebuilt binary; default: cargo build)
#
# Brings a cluster up in its own state directory, always brings it down, stops every weir
# it started by PID, and ends with "N passed, N failed". Exit status 0 only if none failed.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
export WEIR_E2E_STATE="${WEIR_E2E_KUBE_STATE:-/tmp/weir-e2e-kube.$$}"
CLUSTER="$REPO/e2e/cluster/cluster.sh"
CONTROLLER="${WEIR_E2E_CONTROLLER:-weir.dev/ingress-controller}"
NS=weir-e2e            # the application
SYS=weir-system        # weir's ServiceAccount and Lease
LEASE=weir-leader
PUBLISH_IP=10.244.255.1
LEASE_SECONDS=15 RETRY_SECONDS=2 # weir's defaults (client-go's)
# shellcheck source=e2e/kube/lib.sh
source "$HERE/lib.sh"

declare -A WEIR_PID
LOGS="$WEIR_E2E_STATE/weir-logs"

cleanup() {
  local rc=$? name
  for name in "${!WEIR_PID[@]}"; do stop_pid "${WEIR_PID[$name]}"; done
  for pid in $(jobs -p); do stop_pid "$pid"; done
  if [[ "$FAILED" -gt 0 && -d "$LOGS" ]]; then
    for f in "$LOGS"/*.log; do echo "---- tail $f"; tail -n 30 "$f"; done
  fi
  "$CLUSTER" down >/dev/null 2>&1 || "$CLUSTER" down
  trap - EXIT
  [[ $rc -ne 0 && $FAILED -eq 0 ]] && fail "test script aborted (exit $rc)"
  echo "$PASSED passed, $FAILED failed"
  [[ $FAILED -eq 0 ]] || exit 1
  exit 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- build, cluster, RBAC
if [[ -z "${WEIR_BIN:-}" ]]; then
  (cd "$REPO" && nice cargo build --bin weir) || { fail "cargo build --bin weir"; exit 1; }
  WEIR_BIN="$REPO/target/debug/weir"
fi
"$CLUSTER" up || { fail "cluster up"; exit 1; }
nsenter_args
mkdir -p "$LOGS"
pass "cluster up"
# weir's CRDs first, as the chart installs them before weir starts.
k apply -f "$REPO/crds/" >/dev/null && k wait --for condition=Established crd --all --timeout 30s >/dev/null \
  && pass "weir's CRDs applied (crds/)" || fail "applying crds/"

apply_rbac "$SYS"
SA_KUBECONFIG="$WEIR_E2E_STATE/weir-sa.kubeconfig"
sa_kubeconfig "$SYS" weir "$SA_KUBECONFIG" || { fail "minting a token for $SYS/weir"; exit 1; }
as_sa="system:serviceaccount:$SYS:weir"
bad=""
for allowed in "list ingresses.networking.k8s.io" "watch endpointslices.discovery.k8s.io" \
  "patch ingresses.networking.k8s.io --subresource=status" "create events.events.k8s.io" \
  "watch httpfilters.weir.dev" "patch httpfilters.weir.dev --subresource=status" \
  "watch backendpolicies.weir.dev" "patch backendpolicies.weir.dev --subresource=status" \
  "-n $SYS update leases.coordination.k8s.io/$LEASE"; do
  # shellcheck disable=SC2086
  [[ "$(k auth can-i $allowed --as "$as_sa" 2>&1)" == yes ]] || bad+=" missing($allowed)"
done
for denied in "get secrets" "update ingresses.networking.k8s.io" "delete ingresses.networking.k8s.io" \
  "list pods" "update ingresses.networking.k8s.io --subresource=status" "update httpfilters.weir.dev" \
  "-n $SYS update leases.coordination.k8s.io/other-lease" "-n default create leases.coordination.k8s.io"; do
  # shellcheck disable=SC2086
  [[ "$(k auth can-i $denied --as "$as_sa" 2>&1)" == no ]] || bad+=" granted($denied)"
done
[[ -z "$bad" ]] && pass "ServiceAccount $SYS/weir has exactly the docs/rbac.yaml rules (can-i spot checks)" \
  || fail "RBAC spot checks:$bad"

# start_weir NAME HTTP_PORT HTTPS_PORT ADMIN_PORT [EXTRA ARGS]
start_weir() {
  local name="$1" http="$2" https="$3" admin="$4"; shift 4
  "${NSENTER[@]}" env RUST_LOG="${RUST_LOG:-info}" "$WEIR_BIN" run --kubeconfig "$SA_KUBECONFIG" \
    --http-addr "127.0.0.1:$http" --https-addr "127.0.0.1:$https" --admin-addr "127.0.0.1:$admin" --debug-addr off \
    --lease-namespace "$SYS" --lease-name "$LEASE" --identity "$name" \
    --publish-address "$PUBLISH_IP" "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  WEIR_PID[$name]=$!
  sleep 0.2
  [[ "$(cat "/proc/${WEIR_PID[$name]}/comm" 2>/dev/null)" == "$(basename "$WEIR_BIN" | cut -c1-15)" ]] ||
    fail "start_weir $name: pid ${WEIR_PID[$name]} is not $WEIR_BIN"
}
ready() { [[ "$(x curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$1/readyz")" == 200 ]]; }
code() { # code HTTP_PORT HOST [PATH]
  x curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Host: $2" "http://127.0.0.1:$1${3:-/}"
}
has_code() { [[ "$(code "$1" "$2" "${4:-/}")" == "$3" ]]; }
lb_ip() { k -n "$NS" get ingress "$1" -o jsonpath='{.status.loadBalancer.ingress[*].ip}' 2>/dev/null; }
has_lb_ip() { [[ "$(lb_ip "$1")" == "$2" ]]; }
leader_of() { k -n "$SYS" get lease "$LEASE" -o jsonpath='{.spec.holderIdentity}' 2>/dev/null; }
holder_is() { [[ "$(leader_of)" == "$1" ]]; }
is_leader() { [[ "$(metric "$1" weir_leader)" == 1 ]]; }
# ips_seen HTTP_PORT HOST: the sorted pod IPs weir balanced 2 s of requests over.
ips_seen() {
  x python3 "$HERE/load.py" --url "http://127.0.0.1:$1/" --host "$2" --seconds 2 --threads 2 --rps 100 |
    python3 -c 'import json,sys; print(" ".join(sorted(json.load(sys.stdin)["pod_ips"])))'
}
ready_pod_ips() {
  k -n "$NS" get pods -l app=web -o json | python3 -c '
import json, sys
ips = []
for p in json.load(sys.stdin)["items"]:
    conds = {c["type"]: c["status"] for c in p.get("status", {}).get("conditions", [])}
    if not p["metadata"].get("deletionTimestamp") and conds.get("Ready") == "True" and p["status"].get("podIP"):
        ips.append(p["status"]["podIP"])
print(" ".join(sorted(ips)))'
}
# follows N: weir balances over exactly the N ready pods.
follows() {
  local want got
  want="$(ready_pod_ips)"
  [[ $(wc -w <<<"$want") == "$1" ]] || return 1
  got="$(ips_seen 18081 web.example)"
  [[ "$got" == "$want" ]]
}
ingress() { # ingress NAME HOST CLASS [SERVICE PORT]
  cat <<YAML | k apply -f - >/dev/null
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: $1, namespace: $NS}
spec:
  ingressClassName: $3
  rules:
  - host: $2
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: ${4:-web}, port: {number: ${5:-80}}}}}
YAML
}

# ---------------------------------------------------------------- app, class, first weir
k create namespace "$NS" >/dev/null
cat <<YAML | k apply -f - >/dev/null
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: weir}
spec: {controller: $CONTROLLER}
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: other}
spec: {controller: example.com/another-controller}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: $NS}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: weir-e2e/backend:fake
        ports: [{name: http, containerPort: ${WEIR_E2E_BACKEND_PORT:-18080}}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: $NS}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
YAML
ingress web web.example weir

start_weir weir-a 18081 18443 18091 --ingress-class nginx
if wait_until 60 ready 18091; then pass "weir-a ready (/readyz 200) after the initial sync"; else
  fail "weir-a never became ready"; exit 1; fi

# ---------------------------------------------------------------- traffic, status
wait_until 30 follows 2 && pass "Service + Deployment(2) + Ingress: traffic reaches both pods through weir" \
  || fail "traffic: weir balanced over '$(ips_seen 18081 web.example)', pods '$(ready_pod_ips)'"
wait_until 30 has_lb_ip web "$PUBLISH_IP" && pass "status.loadBalancer.ingress = $PUBLISH_IP (--publish-address)" \
  || fail "status of web: '$(lb_ip web)'"
wait_until 20 holder_is weir-a && pass "weir-a holds Lease $SYS/$LEASE" \
  || fail "lease holder '$(leader_of)'"

# ---------------------------------------------------------------- HTTPFilter: create, attach, change, delete
# Under steady load (which must see no failure while the filter is created, attached and
# changed); the CRDs were applied before weir started, as the chart does.
filter() { # filter NAME VALUE: an HTTPFilter setting X-Weir-Filter on responses
  cat <<YAML | k apply -f - >/dev/null
apiVersion: weir.dev/v1alpha1
kind: HTTPFilter
metadata: {name: $1, namespace: $NS}
spec:
  filters:
  - type: ResponseHeaderModifier
    responseHeaderModifier: {set: [{name: X-Weir-Filter, value: "$2"}]}
YAML
}
resp_header() { # resp_header HOST NAME
  x curl -s -D - -o /dev/null --max-time 5 -H "Host: $1" http://127.0.0.1:18081/ |
    tr -d '\r' | awk -v IGNORECASE=1 -v h="$2:" 'tolower($1)==tolower(h) {print $2}'
}
header_is() { [[ "$(resp_header web.example X-Weir-Filter)" == "$1" ]]; }
filter_status() { # filter_status NAME TYPE -> "status reason"
  k -n "$NS" get httpfilter "$1" -o jsonpath="{.status.conditions[?(@.type==\"$2\")].status} {.status.conditions[?(@.type==\"$2\")].reason}" 2>/dev/null
}
filter_status_is() { [[ "$(filter_status "$1" "$2")" == "$3" ]]; }
x python3 "$HERE/load.py" --url http://127.0.0.1:18081/ --host web.example --seconds 30 --threads 2 --rps 100 \
  >"$WEIR_E2E_STATE/load-filter.json" &
load_pid=$!
filter stamp v1
wait_until 30 filter_status_is stamp Accepted "True Accepted" \
  && pass "HTTPFilter created: status Accepted=True (written by the leader)" \
  || fail "HTTPFilter stamp status: '$(filter_status stamp Accepted)'"
k -n "$NS" annotate ingress web weir.dev/filters=stamp --overwrite >/dev/null
wait_until 30 header_is v1 && pass "Ingress annotated weir.dev/filters=stamp: responses carry X-Weir-Filter: v1" \
  || fail "after attaching: X-Weir-Filter '$(resp_header web.example X-Weir-Filter)'"
used="$(k -n "$NS" get httpfilter stamp -o jsonpath='{.status.usedBy[*].name}' 2>&1)"
[[ "$used" == web ]] && pass "HTTPFilter status.usedBy names Ingress web" || fail "usedBy: '$used'"
filter stamp v2
wait_until 30 header_is v2 && pass "HTTPFilter changed under load: responses carry X-Weir-Filter: v2" \
  || fail "after change: X-Weir-Filter '$(resp_header web.example X-Weir-Filter)'"
cols="$(k -n "$NS" get httpfilter stamp 2>&1 | head -1 | tr -s ' ')"
[[ "$cols" == "NAME FILTERS ACCEPTED REASON AGE" ]] && pass "kubectl get httpfilter shows the printer columns ($cols)" \
  || fail "printer columns: '$cols'"
wait "$load_pid"
res="$(cat "$WEIR_E2E_STATE/load-filter.json")"
python3 -c 'import json,sys; r=json.loads(sys.argv[1]); sys.exit(0 if r["failed"]==0 and r["ok"]>0 else 1)' "$res" \
  && pass "zero failed requests while the filter was created, attached and changed ($res)" \
  || fail "requests failed during the filter changes: $res"
cat <<YAML | k apply -f - >/dev/null
apiVersion: weir.dev/v1alpha1
kind: HTTPFilter
metadata: {name: broken, namespace: $NS}
spec:
  filters:
  - type: RequestHeaderModifier
    requestHeaderModifier: {set: [{name: "X Bad Name", value: v}]}
YAML
wait_until 30 filter_status_is broken Accepted "False InvalidFilter" \
  && pass "invalid HTTPFilter: Accepted=False InvalidFilter ($(k -n "$NS" get httpfilter broken -o jsonpath='{.status.conditions[0].message}'))" \
  || fail "broken filter status: '$(filter_status broken Accepted)'"
k -n "$NS" delete httpfilter stamp >/dev/null
wait_until 30 has_code 18081 web.example 500 \
  && pass "attached HTTPFilter deleted: the Ingress's routes fail closed (500)" \
  || fail "after deleting the filter: $(code 18081 web.example)"
filter_event() {
  k -n "$NS" get events.events.k8s.io -o json | python3 -c '
import json, sys
evs = [e for e in json.load(sys.stdin)["items"]
       if e.get("regarding", {}).get("name") == "web" and e.get("reason") == "FilterNotFound"]
print(evs[0].get("note", "")) if evs else sys.exit(1)'
}
wait_until 30 filter_event && pass "Ingress web gets a FilterNotFound Event: $(filter_event)" \
  || fail "no FilterNotFound Event for Ingress web"
k -n "$NS" annotate ingress web weir.dev/filters- >/dev/null
k -n "$NS" delete httpfilter broken >/dev/null
wait_until 30 has_code 18081 web.example 200 && pass "annotation removed: 200 again" \
  || fail "after removing the annotation: $(code 18081 web.example)"

# ---------------------------------------------------------------- BackendPolicy: active checks in Kubernetes mode
# A pod that stops answering (503) while it stays Ready in its EndpointSlice is taken out by
# the policy's active check (passive detection off, so the check is what acts), and gets
# traffic again once it answers.
policy_status() { # policy_status NAME TYPE -> "status reason"
  k -n "$NS" get backendpolicy "$1" -o jsonpath="{.status.conditions[?(@.type==\"$2\")].status} {.status.conditions[?(@.type==\"$2\")].reason}" 2>/dev/null
}
policy_status_is() { [[ "$(policy_status "$1" "$2")" == "$3" ]]; }
cat <<YAML | k apply -f - >/dev/null
apiVersion: weir.dev/v1alpha1
kind: BackendPolicy
metadata: {name: web, namespace: $NS}
spec:
  targetRefs: [{group: "", kind: Service, name: web}]
  healthCheck:
    active: {type: HTTP, http: {path: /healthz}, interval: 500ms, timeout: 500ms,
             healthyThreshold: 2, unhealthyThreshold: 2}
    passive: {disabled: true}
YAML
wait_until 30 policy_status_is web Accepted "True Accepted" \
  && pass "BackendPolicy created: status Accepted=True (written by the leader)" \
  || fail "BackendPolicy web status: '$(policy_status web Accepted)'"
read -r sick_ip well_ip <<<"$(ready_pod_ips)"
backend_port="${WEIR_E2E_BACKEND_PORT:-18080}"
only_well() { # 2 s of traffic: every request 200, all from the well pod
  x python3 "$HERE/load.py" --url http://127.0.0.1:18081/ --host web.example --seconds 2 --threads 2 --rps 100 |
    python3 -c 'import json,sys; r=json.load(sys.stdin); sys.exit(0 if r["failed"]==0 and r["ok"]>0 and list(r["pod_ips"])==[sys.argv[1]] else 1)' "$well_ip"
}
x curl -s -o /dev/null --max-time 5 -X POST "http://$sick_ip:$backend_port/__e2e/sick"
t0=$SECONDS
wait_until 30 only_well \
  && pass "pod $sick_ip answers 503 while Ready: active checks take it out (within $((SECONDS - t0)) s); then 2 s of traffic all 200 from $well_ip" \
  || fail "sick pod $sick_ip still gets traffic: $(ips_seen 18081 web.example)"
x curl -s -o /dev/null --max-time 5 -X POST "http://$sick_ip:$backend_port/__e2e/well"
t0=$SECONDS
wait_until 30 follows 2 && pass "pod $sick_ip answers again: traffic returns to both pods (within $((SECONDS - t0)) s)" \
  || fail "after recovery: weir '$(ips_seen 18081 web.example)', pods '$(ready_pod_ips)'"
cat <<YAML | k apply -f - >/dev/null
apiVersion: weir.dev/v1alpha1
kind: BackendPolicy
metadata: {name: web-newer, namespace: $NS}
spec:
  targetRefs: [{group: "", kind: Service, name: web}]
  loadBalancer: {type: Random}
YAML
wait_until 30 policy_status_is web-newer Accepted "False Conflicted" \
  && pass "a second BackendPolicy for the same Service: Accepted=False Conflicted (the oldest wins)" \
  || fail "conflicting policy status: '$(policy_status web-newer Accepted)'"
k -n "$NS" delete backendpolicy web web-newer >/dev/null

# ---------------------------------------------------------------- scale under steady load
x python3 "$HERE/load.py" --url http://127.0.0.1:18081/ --host web.example --seconds 40 --threads 4 --rps 200 \
  >"$WEIR_E2E_STATE/load-scale.json" &
load_pid=$!
sleep 2
k -n "$NS" scale deployment/web --replicas 5 >/dev/null
wait_until 60 follows 5 && pass "kubectl scale 2 -> 5 under load: weir balances over the 5 new pods" \
  || fail "scale to 5: weir '$(ips_seen 18081 web.example)', pods '$(ready_pod_ips)'"
k -n "$NS" scale deployment/web --replicas 1 >/dev/null
wait_until 60 follows 1 && pass "kubectl scale 5 -> 1 under load: weir follows down to 1 pod" \
  || fail "scale to 1: weir '$(ips_seen 18081 web.example)', pods '$(ready_pod_ips)'"
wait "$load_pid"
res="$(cat "$WEIR_E2E_STATE/load-scale.json")"
python3 -c 'import json,sys; r=json.loads(sys.argv[1]); sys.exit(0 if r["failed"]==0 and r["ok"]>0 else 1)' "$res" \
  && pass "zero failed requests during scaling ($res)" || fail "requests failed during scaling: $res"

# ---------------------------------------------------------------- TLS secret, rotation
for i in 1 2; do
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=web.example" \
    -addext "subjectAltName=DNS:web.example" -keyout "$WEIR_E2E_STATE/tls$i.key" \
    -out "$WEIR_E2E_STATE/tls$i.crt" >/dev/null 2>&1
done
fp() { openssl x509 -noout -fingerprint -sha256 -in "$1" | cut -d= -f2; }
served_fp() {
  x sh -c 'openssl s_client -connect 127.0.0.1:18443 -servername web.example </dev/null 2>/dev/null |
    openssl x509 -noout -fingerprint -sha256' | cut -d= -f2
}
served_is() { [[ "$(served_fp)" == "$1" ]]; }
k -n "$NS" create secret tls web-tls --cert "$WEIR_E2E_STATE/tls1.crt" --key "$WEIR_E2E_STATE/tls1.key" >/dev/null
k -n "$NS" patch ingress web --type merge -p '{"spec":{"tls":[{"hosts":["web.example"],"secretName":"web-tls"}]}}' >/dev/null
want="$(fp "$WEIR_E2E_STATE/tls1.crt")"
wait_until 30 served_is "$want" && pass "TLS Secret created: weir serves its certificate for SNI web.example" \
  || fail "served certificate '$(served_fp)', want '$want'"
https_ok() {
  [[ "$(x curl -s -o /dev/null -w '%{http_code}' --max-time 5 --cacert "$WEIR_E2E_STATE/tls$1.crt" \
    --resolve web.example:18443:127.0.0.1 https://web.example:18443/)" == 200 ]]
}
wait_until 10 https_ok 1 && pass "HTTPS request verified against the Secret's certificate: 200" || fail "HTTPS request failed"
location() { x curl -s -o /dev/null -w '%{http_code} %{redirect_url}' --max-time 5 -H "Host: web.example" "http://127.0.0.1:18081$1"; }
got="$(location /cart?x=1)"
[[ "$got" == "308 https://web.example/cart?x=1" ]] && pass "TLS host: plain HTTP redirected to HTTPS by default ($got)" \
  || fail "HTTPS redirect of a TLS host: '$got'"
[[ "$(code 18081 web.example /.well-known/acme-challenge/t)" == 200 ]] && pass "ACME HTTP-01 path not redirected" \
  || fail "ACME path: $(code 18081 web.example /.well-known/acme-challenge/t)"
# The rest of the suite drives plain HTTP at web.example: opt out, as a user behind a TLS-ending LB would.
k -n "$NS" annotate ingress web weir.dev/ssl-redirect=false --overwrite >/dev/null
wait_until 30 has_code 18081 web.example 200 && pass "weir.dev/ssl-redirect=false: plain HTTP served again" \
  || fail "after ssl-redirect=false: $(code 18081 web.example)"
k -n "$NS" create secret tls web-tls --cert "$WEIR_E2E_STATE/tls2.crt" --key "$WEIR_E2E_STATE/tls2.key" \
  --dry-run=client -o yaml | k apply -f - >/dev/null
want="$(fp "$WEIR_E2E_STATE/tls2.crt")"
pid_before="${WEIR_PID[weir-a]}"
wait_until 30 served_is "$want" && kill -0 "$pid_before" \
  && pass "TLS Secret rotated: the new certificate is served without a restart (same pid $pid_before)" \
  || fail "after rotation served '$(served_fp)', want '$want'"

# ---------------------------------------------------------------- events for a rejected Ingress
ingress bad bad.example weir web 9999
has_event() {
  k -n "$NS" get events.events.k8s.io -o json | python3 -c '
import json, sys
evs = [e for e in json.load(sys.stdin)["items"]
       if e.get("regarding", {}).get("name") == "bad" and e.get("type") == "Warning"]
print(evs[0]["reason"], evs[0].get("note", "")) if evs else sys.exit(1)'
}
if wait_until 30 has_event; then pass "rejected Ingress gets a Warning Event: $(has_event)"; else
  fail "no Warning Event for Ingress bad (status conditions are compile's: is port 9999 rejected?)"; fi
k -n "$NS" delete ingress bad >/dev/null

# ---------------------------------------------------------------- ingress-nginx annotations: Events, weir migrate --kubeconfig
cat <<YAML | k apply -f - >/dev/null
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: nginx-annotated
  namespace: $NS
  annotations:
    nginx.ingress.kubernetes.io/proxy-body-size: 1m
    nginx.ingress.kubernetes.io/configuration-snippet: "more_set_headers 'X-A: b';"
    nginx.ingress.kubernetes.io/enable-opentelemetry: "true"
spec:
  ingressClassName: weir
  rules:
  - host: annotated.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: v1
kind: Namespace
metadata: {name: ingress-nginx}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ingress-nginx-controller, namespace: ingress-nginx}
data: {use-forwarded-headers: "true", allow-snippet-annotations: "false"}
YAML
annotation_events() {
  k -n "$NS" get events.events.k8s.io -o json | python3 -c '
import json, sys
evs = sorted(e["reason"] for e in json.load(sys.stdin)["items"]
             if e.get("regarding", {}).get("name") == "nginx-annotated" and e.get("type") == "Warning")
print(" ".join(evs)) if evs == ["SnippetRefused", "UnsupportedAnnotation"] else sys.exit(1)'
}
if wait_until 30 annotation_events; then pass "annotation warnings are Events on the Ingress: $(annotation_events)"; else
  fail "no SnippetRefused + UnsupportedAnnotation Events for Ingress nginx-annotated"; fi
out="$(x "$WEIR_BIN" migrate --kubeconfig "$WEIR_E2E_STATE/kubeconfig" --namespace "$NS" --output json 2>"$LOGS/migrate.err")"
rc=$?
got="$(python3 -c '
import json, sys
r = json.loads(sys.argv[1])
i = next(i for i in r["ingresses"] if i["name"] == "nginx-annotated")
words = ",".join(a["name"] + "=" + a["verdict"] for a in i["annotations"])
keys = ",".join(k["name"] + "=" + k["verdict"] for k in r["configMap"]["keys"])
print(words, keys, i["served"])' "$out" 2>&1)"
want="configuration-snippet=refused,enable-opentelemetry=unsupported,proxy-body-size=translated allow-snippet-annotations=translated,use-forwarded-headers=partial True"
[[ $rc == 1 && "$got" == "$want" ]] && pass "weir migrate --kubeconfig: exit 1, $got" \
  || fail "weir migrate --kubeconfig: exit $rc, '$got' (want '$want'); stderr: $(head -c 500 "$LOGS/migrate.err")"
k -n "$NS" delete ingress nginx-annotated >/dev/null
k delete namespace ingress-nginx --wait=false >/dev/null

# ---------------------------------------------------------------- class change, delete
ingress moved moved.example weir
wait_until 30 has_lb_ip moved "$PUBLISH_IP" && wait_until 10 has_code 18081 moved.example 200 \
  && pass "Ingress moved: routed and status written" || fail "Ingress moved: status '$(lb_ip moved)'"
k -n "$NS" patch ingress moved --type merge -p '{"spec":{"ingressClassName":"other"}}' >/dev/null
wait_until 30 has_lb_ip moved "" && wait_until 10 has_code 18081 moved.example 404 \
  && pass "class changed to another controller: weir drops the route (404) and clears its status" \
  || fail "after class change: status '$(lb_ip moved)', code $(code 18081 moved.example)"
k -n "$NS" delete ingress moved >/dev/null
ingress gone gone.example weir
wait_until 30 has_code 18081 gone.example 200 || fail "Ingress gone never routed"
k -n "$NS" delete ingress gone >/dev/null
wait_until 30 has_code 18081 gone.example 404 && pass "Ingress deleted: 404" \
  || fail "after delete: $(code 18081 gone.example)"

# ---------------------------------------------------------------- kube-apiserver restart under load
# kube-controller-manager and kube-scheduler exit when their own leader lease lapses during
# the restart, so what weir must follow afterwards is written directly: a Service without
# selector and an EndpointSlice managed by this test (the backend answers on every 10.244.x IP).
manual_slice() { # manual_slice IP: the manual Service's only endpoint is IP:backend port
  cat <<YAML | k apply -f - >/dev/null
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: manual-1
  namespace: $NS
  labels: {kubernetes.io/service-name: manual, endpointslice.kubernetes.io/managed-by: e2e.weir.dev}
addressType: IPv4
ports: [{name: http, port: ${WEIR_E2E_BACKEND_PORT:-18080}, protocol: TCP}]
endpoints: [{addresses: ["$1"], conditions: {ready: true}}]
YAML
}
routes_to() { [[ "$(ips_seen 18081 "$1")" == "$2" ]]; } # routes_to HOST IP
cat <<YAML | k apply -f - >/dev/null
apiVersion: v1
kind: Service
metadata: {name: manual, namespace: $NS}
spec: {ports: [{name: http, port: 80, targetPort: ${WEIR_E2E_BACKEND_PORT:-18080}}]}
YAML
manual_slice 10.244.1.10
ingress manual manual.example weir manual 80
wait_until 30 routes_to manual.example 10.244.1.10 || fail "manual Service never routed: '$(ips_seen 18081 manual.example)'"

# ---------------------------------------------------------------- ingress-nginx canary: weight 10 -> 50 under load
# Ingresses of class nginx (an IngressClass of ingress-nginx's controller; weir-a runs with
# --ingress-class nginx): a main Ingress and a canary one (nginx.ingress.kubernetes.io/canary),
# each to a Service without selector whose test-managed EndpointSlice lists one IP (the
# backend answers on every 10.244.x IP and says which one it was reached on, so the IP says
# which Service served). The canary's weight is patched from 10 to 50 under steady load.
canary_service() { # canary_service NAME IP
  cat <<YAML | k apply -f - >/dev/null
apiVersion: v1
kind: Service
metadata: {name: $1, namespace: $NS}
spec: {ports: [{name: http, port: 80, targetPort: ${WEIR_E2E_BACKEND_PORT:-18080}}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: $1-1
  namespace: $NS
  labels: {kubernetes.io/service-name: $1, endpointslice.kubernetes.io/managed-by: e2e.weir.dev}
addressType: IPv4
ports: [{name: http, port: ${WEIR_E2E_BACKEND_PORT:-18080}, protocol: TCP}]
endpoints: [{addresses: ["$2"], conditions: {ready: true}}]
YAML
}
nginx_ingress() { # nginx_ingress NAME SERVICE ANNOTATIONS(json object)
  cat <<YAML | k apply -f - >/dev/null
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: $1, namespace: $NS, annotations: $3}
spec:
  ingressClassName: nginx
  rules:
  - host: shop.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: $2, port: {number: 80}}}}
YAML
}
MAIN_IP=10.244.1.41 CANARY_IP=10.244.1.42
canary_service shop-main "$MAIN_IP"
canary_service shop-canary "$CANARY_IP"
cat <<YAML | k apply -f - >/dev/null
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nginx}
spec: {controller: k8s.io/ingress-nginx}
YAML
nginx_ingress shop-main shop-main '{}'
nginx_ingress shop-canary shop-canary \
  '{"nginx.ingress.kubernetes.io/canary": "true", "nginx.ingress.kubernetes.io/canary-weight": "10"}'
wait_until 30 routes_to shop.example "$MAIN_IP $CANARY_IP" \
  && pass "ingress-nginx canary (class nginx, weight 10): shop.example reaches the main and the canary Service" \
  || fail "canary: shop.example -> '$(ips_seen 18081 shop.example)'"
x python3 "$HERE/load.py" --url http://127.0.0.1:18081/ --host shop.example --seconds 12 --threads 4 --rps 200 \
  --timeline >"$WEIR_E2E_STATE/load-canary.json" &
load_pid=$!
sleep 6
patched_at="$(date +%s%3N)"
k -n "$NS" patch ingress shop-canary --type merge \
  -p '{"metadata":{"annotations":{"nginx.ingress.kubernetes.io/canary-weight":"50"}}}' >/dev/null
log "kubectl patch took $(($(date +%s%3N) - patched_at)) ms"
wait "$load_pid"
if shares="$(python3 "$HERE/canary_shares.py" --result "$WEIR_E2E_STATE/load-canary.json" --patched-at "$patched_at" \
  --main "$MAIN_IP" --canary "$CANARY_IP" --before 0.1 --after 0.5)"; then
  pass "canary weight 10 -> 50 under load: share 0.1 before, 0.5 from 1 s after the patch on, zero failed requests ($shares)"
else
  fail "canary weight change: $shares"
fi
k -n "$NS" delete ingress shop-main shop-canary >/dev/null

# steady_load NAME: 40 s of load on web.example in the background; LOAD_PID, result in NAME.json
steady_load() {
  x python3 "$HERE/load.py" --url http://127.0.0.1:18081/ --host web.example --seconds 40 --threads 4 --rps 200 \
    >"$WEIR_E2E_STATE/$1.json" &
  LOAD_PID=$!
  sleep 2
}
no_failures() { # no_failures NAME WHAT
  local res; wait "$LOAD_PID"; res="$(cat "$WEIR_E2E_STATE/$1.json")"
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); sys.exit(0 if r["failed"]==0 and r["ok"]>0 else 1)' "$res" \
    && pass "zero failed requests $2 ($res)" || fail "requests failed $2: $res"
}

steady_load load-restart
errors_before="$(metric 18091 'weir_watch_errors_total{kind="endpointslice"}')"
t0=$SECONDS
"$CLUSTER" restart-apiserver >/dev/null 2>&1 || fail "cluster.sh restart-apiserver"
wait_until 60 k get --raw /readyz || fail "kube-apiserver not ready after restart"
log "kube-apiserver was away for about $((SECONDS - t0)) s"
manual_slice 10.244.1.11
ingress after-restart after.example weir
wait_until 60 routes_to manual.example 10.244.1.11 && wait_until 30 has_code 18081 after.example 200 \
  && pass "after a kube-apiserver restart weir resumed its watches (new endpoint and new Ingress served)" \
  || fail "after restart: manual.example -> '$(ips_seen 18081 manual.example)', after.example -> $(code 18081 after.example)"
errors_after="$(metric 18091 'weir_watch_errors_total{kind="endpointslice"}')"
[[ "${errors_after:-0}" -gt "${errors_before:-0}" ]] \
  && pass "the outage is visible in weir_watch_errors_total{kind=endpointslice} ($errors_before -> $errors_after)" \
  || fail "weir_watch_errors_total{kind=endpointslice} did not rise ($errors_before -> $errors_after)"
ready 18091 && pass "/readyz stayed 200 across the outage (last snapshot kept serving)" || fail "/readyz not 200 after restart"
no_failures load-restart "while kube-apiserver restarted"

# ---------------------------------------------------------------- etcd compaction -> 410 -> re-list
etcd() { x curl -s --max-time 5 -X POST "http://127.0.0.1:${WEIR_E2E_ETCD_PORT:-12379}$1" -d "$2"; }
steady_load load-compact
for i in $(seq 30); do k -n "$NS" create configmap "churn-$i" --from-literal=i="$i" >/dev/null; done
rev="$(etcd /v3/kv/range '{"key":"Lw=="}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["header"]["revision"])')"
etcd /v3/kv/compaction "{\"revision\":\"$rev\",\"physical\":true}" >/dev/null
lines_before="$(wc -l <"$LOGS/weir-a.log")"
"$CLUSTER" restart-apiserver >/dev/null 2>&1 || fail "cluster.sh restart-apiserver"
wait_until 60 k get --raw /readyz || fail "kube-apiserver not ready after restart"
manual_slice 10.244.1.12
wait_until 60 routes_to manual.example 10.244.1.12 \
  && pass "etcd compacted at revision $rev + apiserver restart: weir re-listed and follows the next EndpointSlice change" \
  || fail "after compaction: manual.example -> '$(ips_seen 18081 manual.example)'"
gone="$(tail -n +"$lines_before" "$LOGS/weir-a.log" | grep -c -E '410|too old resource version|Expired' || true)"
[[ "$gone" -gt 0 ]] && pass "weir saw 410 Gone on resume ($gone log lines) and re-listed" \
  || fail "no 410 in weir's log after compaction (resume may have used a fresh bookmark)"
no_failures load-compact "across compaction and re-list"

# ---------------------------------------------------------------- two replicas, one writer
start_weir weir-b 18082 18444 18092
wait_until 60 ready 18092 || fail "weir-b never became ready"
leaders=$(($(metric 18091 weir_leader) + $(metric 18092 weir_leader)))
[[ "$leaders" == 1 && "$(leader_of)" == weir-a ]] && pass "two replicas: exactly one leader (weir-a)" \
  || fail "leaders=$leaders holder=$(leader_of)"
wait_until 10 has_code 18082 web.example 200 && pass "the follower serves traffic too" || fail "weir-b does not serve"
writes_b="$(metric 18092 weir_status_writes_total)"
ingress two two.example weir
wait_until 30 has_lb_ip two "$PUBLISH_IP" && [[ "$(metric 18092 weir_status_writes_total)" == "$writes_b" && "$writes_b" == 0 ]] \
  && pass "status of a new Ingress written by the leader only (follower wrote $writes_b)" \
  || fail "status of two: '$(lb_ip two)', follower writes $(metric 18092 weir_status_writes_total)"

kill -KILL "${WEIR_PID[weir-a]}"; unset 'WEIR_PID[weir-a]'
t0=$SECONDS
if wait_until $((LEASE_SECONDS + 3 * RETRY_SECONDS)) is_leader 18092; then
  took=$((SECONDS - t0))
  [[ "$(leader_of)" == weir-b ]] && pass "leader killed: weir-b took over in ${took} s (lease ${LEASE_SECONDS} s)" \
    || fail "weir-b says leader but the Lease holder is '$(leader_of)'"
else
  fail "weir-b did not take over within $((LEASE_SECONDS + 3 * RETRY_SECONDS)) s (holder '$(leader_of)')"
fi
ingress three three.example weir
wait_until 30 has_lb_ip three "$PUBLISH_IP" && pass "the new leader writes status" || fail "status of three: '$(lb_ip three)'"

# ---------------------------------------------------------------- a Lease held by someone else
stop_pid "${WEIR_PID[weir-b]}"; unset 'WEIR_PID[weir-b]'
now="$(date -u +%Y-%m-%dT%H:%M:%S.000000Z)"
k -n "$SYS" patch lease "$LEASE" --type merge \
  -p "{\"spec\":{\"holderIdentity\":\"someone-else\",\"renewTime\":\"$now\",\"leaseDurationSeconds\":3600}}" >/dev/null
start_weir weir-c 18083 18445 18093
wait_until 60 ready 18093 || fail "weir-c never became ready"
ingress four four.example weir
wait_until 30 has_code 18083 four.example 200 || fail "weir-c does not route four"
sleep $((3 * RETRY_SECONDS))
[[ -z "$(lb_ip four)" && "$(metric 18093 weir_status_writes_total)" == 0 && "$(metric 18093 weir_leader)" == 0 \
  && "$(leader_of)" == someone-else ]] \
  && pass "Lease held by another identity: weir-c serves but writes no status" \
  || fail "weir-c: status '$(lb_ip four)', writes $(metric 18093 weir_status_writes_total), leader $(metric 18093 weir_leader), holder $(leader_of)"

# ---------------------------------------------------------------- --publish-service
stop_pid "${WEIR_PID[weir-c]}"; unset 'WEIR_PID[weir-c]'
k -n "$SYS" delete lease "$LEASE" >/dev/null
cat <<YAML | k apply -f - >/dev/null
apiVersion: v1
kind: Service
metadata: {name: weir-lb, namespace: $SYS}
spec: {type: LoadBalancer, ports: [{name: http, port: 80}]}
YAML
lb_status() {
  k -n "$SYS" patch service weir-lb --subresource=status --type merge \
    -p "{\"status\":{\"loadBalancer\":{\"ingress\":[{\"ip\":\"$1\"}]}}}" >/dev/null
}
lb_status 192.0.2.10
start_weir weir-d 18084 18446 18094 --publish-service "$SYS/weir-lb"
wait_until 60 ready 18094 || fail "weir-d never became ready"
wait_until 40 has_lb_ip four 192.0.2.10 \
  && pass "--publish-service: Ingress status takes the Service's load-balancer IP" \
  || fail "--publish-service: status of four '$(lb_ip four)'"
lb_status 192.0.2.11
wait_until 30 has_lb_ip four 192.0.2.11 \
  && pass "--publish-service: a new load-balancer IP is followed into Ingress status" \
  || fail "--publish-service after change: '$(lb_ip four)'"

# ---------------------------------------------------------------- --watch-namespace
k create namespace elsewhere >/dev/null
cat <<YAML | k apply -f - >/dev/null
apiVersion: v1
kind: Service
metadata: {name: manual, namespace: elsewhere}
spec: {ports: [{name: http, port: 80, targetPort: ${WEIR_E2E_BACKEND_PORT:-18080}}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: manual-1
  namespace: elsewhere
  labels: {kubernetes.io/service-name: manual, endpointslice.kubernetes.io/managed-by: e2e.weir.dev}
addressType: IPv4
ports: [{name: http, port: ${WEIR_E2E_BACKEND_PORT:-18080}, protocol: TCP}]
endpoints: [{addresses: ["10.244.1.20"], conditions: {ready: true}}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: elsewhere, namespace: elsewhere}
spec:
  ingressClassName: weir
  rules:
  - host: elsewhere.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: manual, port: {number: 80}}}}
YAML
start_weir weir-e 18085 18447 18095 --watch-namespace "$NS"
wait_until 60 ready 18095 || fail "weir-e never became ready"
if wait_until 30 has_code 18084 elsewhere.example 200 && wait_until 10 has_code 18085 web.example 200 \
  && has_code 18085 elsewhere.example 404; then
  pass "--watch-namespace $NS: routes $NS, ignores namespace elsewhere (served by the unrestricted replica)"
else
  fail "--watch-namespace: weir-d elsewhere $(code 18084 elsewhere.example), weir-e web $(code 18085 web.example) elsewhere $(code 18085 elsewhere.example)"
fi

# ---------------------------------------------------------------- the Helm chart, installed for real
# helm/weir into the real API server: its RBAC, IngressClass, Service, PodDisruptionBudget and
# Deployment are accepted (server-side validation; a field the server does not know, such as
# the preStop sleep action behind a feature gate, would be dropped and is checked for), the
# Deployment's pods become Ready (kwok runs them as fakes, with the chart's probes and security
# context), `helm upgrade` with changed values rolls the Deployment, and uninstall removes it.
chart_get() { k -n weir-chart get "$1" weir-chart -o jsonpath="$2" 2>&1; }
if x helm install weir-chart "$REPO/helm/weir" -n weir-chart --create-namespace \
    --set ingressClass.name=weir-chart --set replicas=2 --wait --timeout 90s >"$WEIR_E2E_STATE/helm.out" 2>&1; then
  ready="$(chart_get deployment '{.status.readyReplicas}')"
  can="$(k auth can-i patch ingresses --subresource=status --as system:serviceaccount:weir-chart:weir-chart -A 2>&1)"
  cls="$(k get ingressclass weir-chart -o jsonpath='{.spec.controller}' 2>&1)"
  if [[ $ready == 2 && $can == yes && $cls == "$CONTROLLER" ]]; then
    pass "helm install helm/weir: accepted by the API server, 2 pods Ready, RBAC and IngressClass in place"
  else
    fail "helm install: readyReplicas '$ready', can-i patch ingresses/status '$can', class controller '$cls'"
  fi
  grace="$(chart_get deployment '{.spec.template.spec.terminationGracePeriodSeconds}')"
  sleep_s="$(chart_get deployment '{.spec.template.spec.containers[0].lifecycle.preStop.sleep.seconds}')"
  pdb="$(chart_get poddisruptionbudget '{.spec.maxUnavailable}')"
  [[ $grace == 35 && $sleep_s == 5 && $pdb == 1 ]] \
    && pass "the API server keeps the preStop sleep (5 s) and the grace period (35 s); PodDisruptionBudget maxUnavailable 1" \
    || fail "after install: terminationGracePeriodSeconds '$grace', preStop sleep '$sleep_s', PDB maxUnavailable '$pdb'"
  gen="$(chart_get deployment '{.metadata.generation}')"
  if x helm upgrade weir-chart "$REPO/helm/weir" -n weir-chart --reuse-values \
      --set replicas=3 --set drainTimeoutSeconds=40 --wait --timeout 90s >"$WEIR_E2E_STATE/helm-upgrade.out" 2>&1; then
    spec="$(chart_get deployment '{.spec.replicas} {.status.readyReplicas} {.status.updatedReplicas} {.spec.template.spec.terminationGracePeriodSeconds}')"
    args="$(chart_get deployment '{.spec.template.spec.containers[0].args}')"
    gen2="$(chart_get deployment '{.metadata.generation}')"
    rev="$(x helm status weir-chart -n weir-chart -o json 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("version", d.get("revision")))' 2>&1)"
    if [[ $spec == "3 3 3 50" && $args == *--drain-timeout=40s* && $gen2 -gt $gen && $rev == 2 ]]; then
      pass "helm upgrade (replicas 3, drainTimeoutSeconds 40): 3 pods Ready, --drain-timeout=40s, grace period 50 s, revision 2"
    else
      fail "helm upgrade: replicas/ready/updated/grace '$spec', generation $gen -> $gen2, revision '$rev', args $args"
    fi
  else
    fail "helm upgrade helm/weir: $(tail -5 "$WEIR_E2E_STATE/helm-upgrade.out")"
  fi
  chart_up=1
else
  fail "helm install helm/weir: $(tail -5 "$WEIR_E2E_STATE/helm.out")"
fi

# ---------------------------------------------------------------- the chart's options, for real
# The same release, upgraded (--reuse-values) through the options e2e/helm only renders: an
# HPA that kube-controller-manager acts on, the NetworkPolicy without and with adminFrom, the
# ServiceMonitor before and after prometheus-operator's own CRD is served (helm's
# .Capabilities come from the real API server), then kind DaemonSet with hostPorts: the
# Deployment goes, one pod on the kwok node binds its ports 80 and 443.
chart_upgrade() { # chart_upgrade OUT HELM-ARGS...
  local out="$1"; shift
  x helm upgrade weir-chart "$REPO/helm/weir" -n weir-chart --reuse-values "$@" --wait --timeout 60s >"$out" 2>&1
}
chart_json() { k -n weir-chart get "$@" -o json 2>/dev/null; }
chart_py() { python3 "$HERE/chart_objects.py" "$@"; }
hpa_get() { k -n weir-chart get horizontalpodautoscalers.v2.autoscaling weir-chart -o jsonpath="$1" 2>&1; }
ready_ips() { # ready_ips SELECTOR: the sorted IPs of the Ready pods it selects in weir-chart
  k -n weir-chart get pods -l "$1" -o jsonpath='{range .items[*]}{.status.podIP} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>/dev/null |
    awk '$2 == "True" {print $1}' | sort | tr '\n' ' '
}
# The addresses of the Ready endpoints of Service weir-chart-metrics, as kube-controller-manager's
# EndpointSlice controller wrote them, and their port.
metrics_endpoints() {
  k -n weir-chart get endpointslices -l kubernetes.io/service-name=weir-chart-metrics \
    -o jsonpath='{range .items[*].endpoints[?(@.conditions.ready==true)]}{.addresses[0]}{"\n"}{end}' 2>/dev/null | sort | tr '\n' ' '
}
metrics_port() {
  k -n weir-chart get endpointslices -l kubernetes.io/service-name=weir-chart-metrics -o jsonpath='{.items[*].ports[*].name}:{.items[*].ports[*].port}' 2>&1
}
sm_served() { [[ "$(k api-resources --api-group monitoring.coreos.com -o name 2>/dev/null)" == *servicemonitors.monitoring.coreos.com* ]]; }
if [[ ${chart_up:-0} == 1 ]]; then
  # -------- autoscaling on, NetworkPolicy without adminFrom, ServiceMonitor without its CRD
  if sm_served; then fail "monitoring.coreos.com is served before the ServiceMonitor checks"; fi
  # The Deployment's scaling events from here on (uids of the earlier ones left out).
  deployment_scaled() {
    k -n weir-chart get events --field-selector involvedObject.kind=Deployment,involvedObject.name=weir-chart,reason=ScalingReplicaSet \
      -o jsonpath='{range .items[*]}{.metadata.uid} {.message}{"\n"}{end}' 2>/dev/null
  }
  old_events="$(deployment_scaled | cut -d' ' -f1)"
  out="$WEIR_E2E_STATE/helm-hpa.out"
  if chart_upgrade "$out" --set autoscaling.enabled=true,autoscaling.minReplicas=4,autoscaling.maxReplicas=6 \
      --set networkPolicy.enabled=true --set metrics.serviceMonitor.enabled=true; then
    hpa_settled() {
      [[ "$(chart_get deployment '{.spec.replicas}/{.status.readyReplicas}')" == 4/4 &&
        "$(hpa_get '{.status.currentReplicas}/{.status.desiredReplicas}')" == 4/4 ]]
    }
    wait_until 40 hpa_settled
    hpa="$(hpa_get '{.spec.scaleTargetRef.apiVersion}/{.spec.scaleTargetRef.kind}/{.spec.scaleTargetRef.name} {.spec.minReplicas}-{.spec.maxReplicas} {.spec.metrics[0].resource.name}:{.spec.metrics[0].resource.target.averageUtilization} {.status.currentReplicas}/{.status.desiredReplicas}')"
    sent="$(chart_json hpa weir-chart --show-managed-fields | python3 -c 'import json, sys; print(",".join(sorted({m["apiVersion"] for m in json.load(sys.stdin)["metadata"]["managedFields"] if m["manager"] == "helm"})))' 2>&1)"
    owners="$(chart_json deployment weir-chart --show-managed-fields | chart_py owners spec.replicas)"
    scaled="$(deployment_scaled | grep -v -F -f <(echo "${old_events:-none}") | sed -n 's/.* from \([0-9]*\) to \([0-9]*\)$/\1>\2/p' | tr '\n' ' ')"
    rescale="$(k -n weir-chart get events --field-selector involvedObject.kind=HorizontalPodAutoscaler,involvedObject.name=weir-chart,reason=SuccessfulRescale \
      -o jsonpath='{.items[*].message}' 2>&1)"
    if [[ $hpa == "apps/v1/Deployment/weir-chart 4-6 cpu:70 4/4" && $sent == autoscaling/v2 && $owners == */Update/scale && $owners != *helm* &&
      $rescale == *"below Spec.MinReplicas"* ]]; then
      pass "autoscaling.enabled: the HPA (sent as autoscaling/v2) targets the Deployment; kube-controller-manager scaled it to minReplicas 4, the count is its (spec.replicas: $owners)"
    else
      fail "HPA: '$hpa', helm sent '$sent', spec.replicas owned by '$owners', rescale events '$rescale'"
    fi
    # Switching a running release to autoscaling: helm drops spec.replicas from the Deployment,
    # which must not reset the count to the API server's default of 1 on the way (from the 3
    # replicas of the upgrade above to the HPA's 4 it only grows).
    [[ $scaled != *">1 "* ]] && pass "autoscaling.enabled on a running release: the Deployment never drops below its replicas (scaled: $scaled)" \
      || fail "autoscaling.enabled on a running release: the Deployment was scaled ${scaled}before the HPA raised it"
    np_sel="$(chart_json networkpolicy weir-chart | chart_py selector)"
    np="$(chart_json networkpolicy weir-chart | chart_py netpol 8080 8443 9901 9902)"
    types="$(chart_get networkpolicy '{.spec.policyTypes}')"
    [[ $np == "8080=any 8443=any 9901=none 9902=none" && $types == '["Ingress"]' && -n $np_sel &&
      "$(ready_ips "$np_sel")" == "$(ready_ips app.kubernetes.io/instance=weir-chart)" && -n "$(ready_ips "$np_sel")" ]] \
      && pass "networkPolicy.enabled: accepted; http/https from anywhere, admin port from nowhere, debug port never; selects the 4 weir pods" \
      || fail "NetworkPolicy without adminFrom: '$np' types '$types' selector '$np_sel' selects '$(ready_ips "$np_sel")'"
    sms="$(x helm get manifest weir-chart -n weir-chart 2>&1 | grep -c '^kind: ServiceMonitor')"
    msvc="$(k -n weir-chart get service weir-chart-metrics -o jsonpath='{.spec.ports[0].name}:{.spec.ports[0].port}' 2>&1)"
    if [[ $sms == 0 ]] && ! sm_served && grep -q 'none was created' "$out" && [[ $msvc == metrics:9901 ]]; then
      pass "serviceMonitor.enabled without the ServiceMonitor CRD: helm renders none (.Capabilities of the real API server), NOTES warn; Service weir-chart-metrics in place"
    else
      fail "serviceMonitor without its CRD: $sms ServiceMonitor(s) in the release, metrics Service '$msvc', NOTES: $(grep -i servicemonitor "$out" | tr '\n' ' ')"
    fi
  else
    fail "helm upgrade to autoscaling, networkPolicy, serviceMonitor: $(tail -5 "$out")"
  fi

  # -------- prometheus-operator's ServiceMonitor CRD, then NetworkPolicy with adminFrom
  if SM_CRD="$(servicemonitor_crd)" && k apply --server-side -f "$SM_CRD" >"$WEIR_E2E_STATE/sm-crd.out" 2>&1 &&
    k wait --for condition=Established crd/servicemonitors.monitoring.coreos.com --timeout 30s >/dev/null 2>&1 &&
    wait_until 20 sm_served; then
    cat >"$WEIR_E2E_STATE/admin-from.yaml" <<YAML
networkPolicy:
  adminFrom:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}
      podSelector: {matchLabels: {app.kubernetes.io/name: prometheus}}
metrics:
  serviceMonitor:
    labels: {release: kube-prometheus-stack}
YAML
    out="$WEIR_E2E_STATE/helm-sm.out"
    if chart_upgrade "$out" -f "$WEIR_E2E_STATE/admin-from.yaml"; then
      chart_json servicemonitor weir-chart >"$WEIR_E2E_STATE/sm.json"
      selects="$(k -n weir-chart get services -o json 2>/dev/null | chart_py selects "$WEIR_E2E_STATE/sm.json" 2>&1)"
      sm="$(chart_get servicemonitor '{.metadata.labels.release} {.spec.endpoints[0].port} {.spec.endpoints[0].path} {.spec.endpoints[0].scheme} {.spec.endpoints[0].interval} {.spec.endpoints[0].scrapeTimeout}')"
      eps="$(metrics_endpoints)" pods="$(ready_ips app.kubernetes.io/instance=weir-chart)"
      if [[ $selects == weir-chart-metrics && $sm == "kube-prometheus-stack metrics /metrics http 30s 10s" &&
        $(metrics_port) == metrics:9901 && -n $pods && $eps == "$pods" ]] &&
        grep -q 'ServiceMonitor weir-chart/weir-chart scrapes it every 30s' "$out"; then
        pass "with prometheus-operator's ServiceMonitor CRD ($PROM_OPERATOR_VERSION) served, helm upgrade creates the ServiceMonitor: it selects Service weir-chart-metrics only, whose EndpointSlice has the 4 pods on port metrics 9901"
      else
        fail "ServiceMonitor: selects '$selects', fields '$sm', metrics endpoints '$eps' port $(metrics_port), pods '$pods'; NOTES: $(grep -i servicemonitor "$out" | tr '\n' ' ')"
      fi
      np="$(chart_json networkpolicy weir-chart | chart_py netpol 8080 8443 9901 9902)"
      peer='[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}},"podSelector":{"matchLabels":{"app.kubernetes.io/name":"prometheus"}}}]'
      [[ $np == "8080=any 8443=any 9901=$peer 9902=none" ]] \
        && pass "networkPolicy.adminFrom: the admin port admitted from that one peer (namespace and pod selector together), http/https from anywhere, debug port never" \
        || fail "NetworkPolicy with adminFrom: '$np'"
      [[ "$(chart_get deployment '{.spec.replicas}/{.status.readyReplicas}')" == 4/4 ]] \
        && pass "helm upgrade with the HPA in place leaves its count (4) alone" \
        || fail "after helm upgrade with the HPA: replicas/ready $(chart_get deployment '{.spec.replicas}/{.status.readyReplicas}')"
    else
      fail "helm upgrade with the ServiceMonitor CRD served: $(tail -5 "$out")"
    fi
  else
    fail "prometheus-operator's ServiceMonitor CRD $PROM_OPERATOR_VERSION not served: $(tail -3 "$WEIR_E2E_STATE/sm-crd.out" 2>/dev/null)"
  fi
  # What kube-controller-manager says of the HPA without a resource metrics API (no
  # metrics-server here): it cannot compute a utilization, so it keeps the count.
  hpa_inactive() { [[ "$(hpa_get '{.status.conditions[?(@.type=="ScalingActive")].status}')" == False ]]; }
  if wait_until 30 hpa_inactive; then
    why="$(hpa_get '{.status.conditions[?(@.type=="ScalingActive")].reason}')"
    able="$(hpa_get '{.status.conditions[?(@.type=="AbleToScale")].status}')"
    [[ $why == FailedGetResourceMetric && $able == True ]] \
      && pass "HPA without metrics-server: AbleToScale True, ScalingActive False ($why), as values.yaml says it needs a resource metrics API" \
      || fail "HPA conditions: ScalingActive reason '$why', AbleToScale '$able'"
  else
    fail "HPA: ScalingActive never False without a metrics API: $(hpa_get '{.status.conditions}')"
  fi

  # -------- kind DaemonSet with hostPorts
  out="$WEIR_E2E_STATE/helm-ds.out"
  if chart_upgrade "$out" --set kind=DaemonSet,hostPorts.enabled=true,autoscaling.enabled=false; then
    ds_ready() { [[ "$(chart_get daemonset '{.status.desiredNumberScheduled}/{.status.numberReady}/{.status.updatedNumberScheduled}')" == 1/1/1 ]]; }
    deployment_gone() {
      [[ -z "$(k -n weir-chart get deployments,replicasets,horizontalpodautoscalers,poddisruptionbudgets -o name 2>/dev/null)" &&
        -z "$(k -n weir-chart get pods -l pod-template-hash -o name 2>/dev/null)" ]]
    }
    wait_until 30 ds_ready
    wait_until 60 deployment_gone
    pods="$(k -n weir-chart get pods -l app.kubernetes.io/instance=weir-chart -o jsonpath='{range .items[*]}{.metadata.ownerReferences[0].kind} {.spec.nodeName} {.status.hostIP} {range .spec.containers[0].ports[*]}{.name}:{.containerPort}:{.hostPort},{end} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>&1)"
    node_ip="$(k get node kwok-node-0 -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}' 2>&1)"
    if ds_ready && [[ $pods == "DaemonSet kwok-node-0 $node_ip http:8080:80,https:8443:443,admin:9901:, True" ]]; then
      pass "kind=DaemonSet, hostPorts: one pod Ready on kwok-node-0 ($node_ip), hostPorts 80/443 on http/https only"
    else
      fail "DaemonSet: status $(chart_get daemonset '{.status.desiredNumberScheduled}/{.status.numberReady}/{.status.updatedNumberScheduled}'), pods: $pods"
    fi
    deployment_gone && grep -q 'installed as the DaemonSet weir-chart/weir-chart' "$out" &&
      grep -q 'every node weir runs on: http://NODE-IP:80/' "$out" \
      && pass "switching kind to DaemonSet: no Deployment, ReplicaSet, pod of it, HPA or PodDisruptionBudget left; NOTES name the hostPorts" \
      || fail "after switching to DaemonSet: left $(k -n weir-chart get deployments,replicasets,horizontalpodautoscalers,poddisruptionbudgets,pods -o name 2>/dev/null | tr '\n' ' ')"
    pod="$(ready_ips app.kubernetes.io/instance=weir-chart)"
    np_sel="$(chart_json networkpolicy weir-chart | chart_py selector)"
    wait_until 20 eval '[[ "$(metrics_endpoints)" == "$pod" ]]'
    [[ -n $pod && "$(ready_ips "$np_sel")" == "$pod" && "$(metrics_endpoints)" == "$pod" ]] \
      && pass "the NetworkPolicy and the metrics Service (so the ServiceMonitor) follow to the DaemonSet pod" \
      || fail "after switching to DaemonSet: pod '$pod', NetworkPolicy selects '$(ready_ips "$np_sel")', metrics endpoints '$(metrics_endpoints)'"
  else
    fail "helm upgrade to kind=DaemonSet with hostPorts: $(tail -5 "$out")"
  fi

  # -------- uninstall
  chart_left() {
    k -n weir-chart get all,networkpolicies,poddisruptionbudgets,horizontalpodautoscalers,serviceaccounts,roles,rolebindings,configmaps,secrets \
      -o name 2>/dev/null | grep -v -e '^serviceaccount/default$' -e '^configmap/kube-root-ca.crt$'
    if sm_served; then k -n weir-chart get servicemonitors -o name 2>/dev/null; fi
    k get clusterrole/weir-chart clusterrolebinding/weir-chart ingressclass/weir-chart -o name 2>/dev/null
  }
  if x helm uninstall weir-chart -n weir-chart --wait --timeout 90s >"$WEIR_E2E_STATE/helm-uninstall.out" 2>&1 &&
    wait_until 30 eval '[[ -z "$(chart_left)" ]]'; then
    pass "helm uninstall removes every object of the chart (DaemonSet and its pod, Services, NetworkPolicy, ServiceMonitor, RBAC, IngressClass)"
  else
    fail "helm uninstall left: $(chart_left | tr '\n' ' ') $(tail -3 "$WEIR_E2E_STATE/helm-uninstall.out")"
  fi
fi
# The ServiceMonitor CRD goes too: the sections after this one run on a cluster without it.
if k get crd servicemonitors.monitoring.coreos.com >/dev/null 2>&1; then
  k delete crd servicemonitors.monitoring.coreos.com --wait --timeout 60s >/dev/null 2>&1 && wait_until 20 eval '! sm_served' \
    && pass "prometheus-operator's ServiceMonitor CRD removed again" || fail "deleting the ServiceMonitor CRD"
fi

# ---------------------------------------------------------------- manifests/install.yaml, applied for real
# The static manifest installs weir into weir-system under the names the test's own weirs
# use (ServiceAccount, ClusterRole and IngressClass "weir"), so this is the last section: the
# test's weirs stop and their objects go first, as on a cluster that never had weir.
for name in "${!WEIR_PID[@]}"; do stop_pid "${WEIR_PID[$name]}"; unset "WEIR_PID[$name]"; done
sed "s/WEIR_NAMESPACE/$SYS/g" "$REPO/docs/rbac.yaml" | k delete --ignore-not-found -f - >/dev/null 2>&1
k delete ingressclass weir --ignore-not-found >/dev/null 2>&1
k delete namespace "$SYS" --ignore-not-found --wait --timeout 90s >/dev/null 2>&1
if k get namespace "$SYS" >/dev/null 2>&1; then
  fail "namespace $SYS still there before applying manifests/install.yaml"
elif k apply --server-side -f "$REPO/manifests/install.yaml" >"$WEIR_E2E_STATE/install.out" 2>&1; then
  k wait --for condition=Established crd/httpfilters.weir.dev crd/backendpolicies.weir.dev --timeout 30s >/dev/null 2>&1
  if k -n "$SYS" rollout status deployment/weir --timeout 90s >/dev/null 2>&1; then
    ready="$(k -n "$SYS" get deployment weir -o jsonpath='{.status.readyReplicas}' 2>&1)"
    missing=""
    for obj in "-n $SYS serviceaccount/weir" "-n $SYS service/weir" "-n $SYS poddisruptionbudget/weir" \
      "-n $SYS role/weir-leader-election" "-n $SYS rolebinding/weir-leader-election" \
      "clusterrole/weir" "clusterrolebinding/weir" "ingressclass/weir"; do
      # shellcheck disable=SC2086
      k get $obj >/dev/null 2>&1 || missing+=" $obj"
    done
    can="$(k auth can-i watch endpointslices.discovery.k8s.io --as "system:serviceaccount:$SYS:weir" -A 2>&1)"
    [[ $ready == 2 && -z $missing && $can == yes ]] \
      && pass "kubectl apply --server-side -f manifests/install.yaml: 2 pods Ready, RBAC, Service, PDB and IngressClass in place" \
      || fail "install.yaml: readyReplicas '$ready', missing:$missing, can-i watch endpointslices '$can'"
  else
    fail "install.yaml: deployment $SYS/weir not Ready in 90 s: $(k -n "$SYS" get deployment weir -o wide 2>&1 | tail -1)"
  fi
  if k delete -f "$REPO/manifests/install.yaml" --ignore-not-found --wait --timeout 120s >/dev/null 2>&1 &&
    ! k get namespace "$SYS" >/dev/null 2>&1 && ! k get clusterrole weir >/dev/null 2>&1 &&
    ! k get crd httpfilters.weir.dev >/dev/null 2>&1; then
    pass "kubectl delete -f manifests/install.yaml removes the namespace, the cluster-scoped objects and the CRDs"
  else
    fail "kubectl delete -f manifests/install.yaml left: $(k get "namespace/$SYS" clusterrole/weir crd/httpfilters.weir.dev --no-headers 2>&1 | tr '\n' ' ')"
  fi
else
  fail "kubectl apply -f manifests/install.yaml: $(tail -5 "$WEIR_E2E_STATE/install.out")"
fi
