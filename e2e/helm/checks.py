"""What the chart's options render, checked on the rendered documents (e2e/helm/test.sh).

    checks.py CHECK RENDERED.yaml [ARGS...]    exit 0 if CHECK holds, else print why and exit 1
    checks.py without-kind KIND < IN > OUT     drop the documents of KIND (schema validation
                                               of the rest: kubernetes-validate has no schema
                                               for custom resources such as ServiceMonitor)

Each check reads the YAML stream `helm template` printed and asserts what a user of that
option would notice (a Deployment without `replicas` under an HPA, no debug port in a
NetworkPolicy, a grace period longer than the drain, ...).
"""
import sys

import yaml


def docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def of_kind(ds, kind):
    return [d for d in ds if d.get("kind") == kind]


def one(ds, kind):
    found = of_kind(ds, kind)
    if len(found) != 1:
        raise AssertionError(f"expected one {kind}, found {len(found)}")
    return found[0]


def workload(ds):
    found = of_kind(ds, "Deployment") + of_kind(ds, "DaemonSet")
    if len(found) != 1:
        raise AssertionError(f"expected one Deployment or DaemonSet, found {len(found)}")
    return found[0]


def pod(ds):
    return workload(ds)["spec"]["template"]["spec"]


def container(ds):
    return pod(ds)["containers"][0]


def arg(ds, flag):
    """The value of --flag=VALUE in weir's args, or None."""
    for a in container(ds)["args"]:
        if a.startswith(f"--{flag}="):
            return a.split("=", 1)[1]
    return None


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


# ---------------------------------------------------------------- checks

def hardened(ds):
    """Non-root, read-only root filesystem, no capabilities, RuntimeDefault seccomp, a token
    only for weir's own pods."""
    p, c = pod(ds), container(ds)
    psc, csc = p["securityContext"], c["securityContext"]
    check(psc.get("runAsNonRoot") is True and csc.get("runAsNonRoot") is True, "runAsNonRoot")
    check(psc.get("runAsUser") == 65532, "runAsUser 65532 (distroless nonroot)")
    check(psc.get("seccompProfile") == {"type": "RuntimeDefault"}, "seccomp RuntimeDefault")
    check(csc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem")
    check(csc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation false")
    check(csc.get("privileged") is False, "privileged false")
    check(csc.get("capabilities") == {"drop": ["ALL"]}, f"capabilities {csc.get('capabilities')}")
    check(p.get("automountServiceAccountToken") is True, "the weir pod mounts its token (it watches the API server)")
    check(one(ds, "ServiceAccount").get("automountServiceAccountToken") is False,
          "the ServiceAccount does not automount into other pods")


def drain(ds, drain_s, sleep_s):
    """--drain-timeout=<n>s, a preStop sleep of sleep_s (none if 0), and a grace period longer
    than the sleep plus the drain."""
    drain_s, sleep_s = int(drain_s), int(sleep_s)
    check(arg(ds, "drain-timeout") == f"{drain_s}s", f"--drain-timeout={arg(ds, 'drain-timeout')}")
    grace = pod(ds)["terminationGracePeriodSeconds"]
    check(grace > drain_s + sleep_s, f"terminationGracePeriodSeconds {grace} <= drain {drain_s} + preStop {sleep_s}")
    pre = container(ds).get("lifecycle", {}).get("preStop")
    if sleep_s:
        check(pre == {"sleep": {"seconds": sleep_s}}, f"preStop {pre} (want the kubelet's sleep action: no shell in the image)")
    else:
        check(pre is None, f"preStop {pre} with preStopSleepSeconds 0")


def replicas(ds, want):
    d = one(ds, "Deployment")
    got = d["spec"].get("replicas")
    if want == "none":
        check("replicas" not in d["spec"], f"Deployment has replicas {got} under an HPA")
    else:
        check(got == int(want), f"Deployment replicas {got}, want {want}")


def pdb(ds, want):
    found = of_kind(ds, "PodDisruptionBudget")
    if want == "none":
        check(not found, "a PodDisruptionBudget was rendered")
        return
    b = one(ds, "PodDisruptionBudget")
    check(b["apiVersion"] == "policy/v1", b["apiVersion"])
    check(str(b["spec"].get("maxUnavailable")) == want, f"maxUnavailable {b['spec'].get('maxUnavailable')}, want {want}")
    check(b["spec"]["selector"] == workload(ds)["spec"]["selector"], "the budget selects the weir pods")


def hpa(ds, lo, hi, metrics):
    h = one(ds, "HorizontalPodAutoscaler")
    check(h["apiVersion"] == "autoscaling/v2", h["apiVersion"])
    d = one(ds, "Deployment")
    ref = h["spec"]["scaleTargetRef"]
    check(ref == {"apiVersion": "apps/v1", "kind": "Deployment", "name": d["metadata"]["name"]}, f"scaleTargetRef {ref}")
    check((h["spec"]["minReplicas"], h["spec"]["maxReplicas"]) == (int(lo), int(hi)), "min/max replicas")
    got = sorted(m["resource"]["name"] for m in h["spec"]["metrics"])
    check(got == sorted(metrics.split(",")), f"HPA metrics {got}")


def no_kind(ds, kind):
    check(not of_kind(ds, kind), f"a {kind} was rendered")


def daemonset_hostports(ds, http, https):
    check(not of_kind(ds, "Deployment"), "kind DaemonSet still renders a Deployment")
    dset = one(ds, "DaemonSet")
    ports = {p["name"]: p for p in dset["spec"]["template"]["spec"]["containers"][0]["ports"]}
    check(ports["http"].get("hostPort") == int(http) and ports["https"].get("hostPort") == int(https),
          f"hostPorts {ports}")
    check("hostPort" not in ports["admin"], "the admin port is bound on the node")
    check(dset["spec"]["updateStrategy"]["rollingUpdate"].get("maxSurge", 0) == 0, "maxSurge with hostPorts")
    p = pod(ds)
    check("topologySpreadConstraints" not in p and "affinity" not in p, "spread/anti-affinity on a DaemonSet")


def default_scheduling(ds):
    p = pod(ds)
    tsc = p["topologySpreadConstraints"]
    check(sorted(t["topologyKey"] for t in tsc) == ["kubernetes.io/hostname", "topology.kubernetes.io/zone"], f"spread {tsc}")
    sel = workload(ds)["spec"]["selector"]["matchLabels"]
    for t in tsc:
        check(t["whenUnsatisfiable"] == "ScheduleAnyway" and t["maxSkew"] == 1, f"spread {t}")
        check(t["labelSelector"]["matchLabels"] == sel, "spread selects the weir pods")
    pref = p["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    check(len(pref) == 1 and pref[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname", f"anti-affinity {pref}")
    check("requiredDuringSchedulingIgnoredDuringExecution" not in p["affinity"]["podAntiAffinity"], "required anti-affinity")


def no_default_scheduling(ds):
    p = pod(ds)
    check("topologySpreadConstraints" not in p, "spread rendered")
    check("podAntiAffinity" not in p.get("affinity", {}), "anti-affinity rendered")


def user_affinity(ds):
    aff = pod(ds).get("affinity", {})
    check("nodeAffinity" in aff and "podAntiAffinity" not in aff, f"the user's affinity replaces the default: {aff}")


def networkpolicy(ds, admin_peers):
    """Ingress only; http/https from anywhere; the admin port only from the given number of
    peers; the debug port never."""
    n = one(ds, "NetworkPolicy")
    spec = n["spec"]
    check(spec["podSelector"] == workload(ds)["spec"]["selector"], "the policy selects the weir pods")
    check(spec["policyTypes"] == ["Ingress"], f"policyTypes {spec['policyTypes']} (egress must stay open)")
    c = container(ds)
    named = {p["name"]: p["containerPort"] for p in c["ports"]}
    debug = int(next(a for a in c["args"] if a.startswith("--debug-addr=")).rsplit(":", 1)[1])
    seen_admin = []
    for rule in spec["ingress"]:
        ports = [p["port"] for p in rule["ports"]]
        check(debug not in ports and "debug" not in ports, f"the debug port {debug} is admitted: {rule}")
        if named["admin"] in ports or "admin" in ports:
            check(rule.get("from"), f"the admin port is admitted from anywhere: {rule}")
            seen_admin += rule["from"]
        else:
            check(sorted(ports) == sorted([named["http"], named["https"]]) and "from" not in rule,
                  f"http/https rule: {rule}")
    check(len(seen_admin) == int(admin_peers), f"admin peers {seen_admin}, want {admin_peers}")


def servicemonitor(ds):
    """The ServiceMonitor (a custom resource: no Kubernetes schema) by its own rules: it selects
    the metrics Service, names one of its ports, and scrapes /metrics."""
    sm = one(ds, "ServiceMonitor")
    check(sm["apiVersion"] == "monitoring.coreos.com/v1", sm["apiVersion"])
    svc = [s for s in of_kind(ds, "Service") if s["metadata"]["name"].endswith("-metrics")]
    check(len(svc) == 1, "no metrics Service with the ServiceMonitor")
    svc = svc[0]
    labels = svc["metadata"]["labels"]
    sel = sm["spec"]["selector"]["matchLabels"]
    check(all(labels.get(k) == v for k, v in sel.items()), f"selector {sel} does not match the metrics Service {labels}")
    check(set(sm["spec"].keys()) <= {"selector", "namespaceSelector", "endpoints"}, f"spec keys {sorted(sm['spec'])}")
    check(sm["spec"]["namespaceSelector"] == {"matchNames": [svc["metadata"]["namespace"]]}, "namespaceSelector")
    ports = {p["name"] for p in svc["spec"]["ports"]}
    for e in sm["spec"]["endpoints"]:
        check(e["port"] in ports, f"endpoint port {e['port']} not in {ports}")
        check(e["path"] == "/metrics", e["path"])
        allowed = {"port", "path", "scheme", "interval", "scrapeTimeout"}
        check(set(e) <= allowed, f"unknown endpoint keys {set(e) - allowed}")
    check(any(p["targetPort"] == "admin" for p in svc["spec"]["ports"]), "the metrics Service targets the admin port")


def metrics_service(ds):
    check(any(s["metadata"]["name"].endswith("-metrics") for s in of_kind(ds, "Service")), "no metrics Service")


def traffic_policy(ds, want):
    svc = [s for s in of_kind(ds, "Service") if not s["metadata"]["name"].endswith("-metrics")][0]
    got = svc["spec"].get("externalTrafficPolicy")
    if want == "none":
        check(got is None, f"externalTrafficPolicy {got} on a {svc['spec']['type']} Service")
    else:
        check(got == want, f"externalTrafficPolicy {got}, want {want}")


def namespace_first(ds, ns):
    check(ds[0]["kind"] == "Namespace" and ds[0]["metadata"]["name"] == ns, f"first document {ds[0]['kind']}")
    crds = [i for i, d in enumerate(ds) if d["kind"] == "CustomResourceDefinition"]
    check(len(crds) >= 2 and crds == list(range(1, 1 + len(crds))), "the CRDs right after the Namespace")
    for d in ds[1 + len(crds):]:
        if d["kind"] not in ("ClusterRole", "ClusterRoleBinding", "IngressClass"):
            check(d["metadata"].get("namespace") == ns, f"{d['kind']} {d['metadata']['name']} outside {ns}")


def dashboard(ds, chart_file, label, value, namespace):
    """One ConfigMap with the sidecar's label, in the expected namespace, whose weir.json is
    the chart's dashboards/weir.json unchanged: JSON with a $datasource variable that every
    query uses."""
    import json
    cm = [d for d in of_kind(ds, "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")]
    check(len(cm) == 1, f"{len(cm)} dashboard ConfigMaps")
    meta = cm[0]["metadata"]
    check(meta["labels"].get(label) == value, f"label {label}={meta['labels'].get(label)!r}, want {value!r}")
    check(meta.get("namespace") == namespace, f"namespace {meta.get('namespace')}, want {namespace}")
    text = cm[0]["data"]["weir.json"]
    with open(chart_file) as f:
        check(json.loads(text) == json.load(f), "weir.json differs from the chart's dashboards/weir.json")
    dash = json.loads(text)
    names = [v["name"] for v in dash["templating"]["list"]]
    check("datasource" in names, f"no datasource variable in {names}")
    targets = [t for p in dash["panels"] for t in p.get("targets", [])]
    check(targets and all(t["datasource"]["uid"] == "${datasource}" for t in targets),
          "every query reads ${datasource}")


CHECKS = {f.__name__.replace("_", "-"): f for f in [
    hardened, drain, replicas, pdb, hpa, no_kind, daemonset_hostports, default_scheduling,
    no_default_scheduling, user_affinity, networkpolicy, servicemonitor, metrics_service,
    traffic_policy, namespace_first, dashboard]}


def main():
    name = sys.argv[1]
    if name == "without-kind":
        keep = [d for d in yaml.safe_load_all(sys.stdin) if d and d.get("kind") != sys.argv[2]]
        yaml.safe_dump_all(keep, sys.stdout, sort_keys=False)
        return 0
    try:
        CHECKS[name](docs(sys.argv[2]), *sys.argv[3:])
    except (AssertionError, KeyError, IndexError, TypeError) as e:
        print(f"{name}: {type(e).__name__}: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
