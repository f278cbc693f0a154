#!/usr/bin/env python3
"""Summaries of chart objects as the API server returned them (kubectl get -o json on stdin),
for e2e/kube/test.sh to compare with what helm/weir means.

  netpol PORT...       NetworkPolicy: "PORT=PEERS" for each port, PEERS being "any" (every
                       source), "none" (admitted by no rule) or the JSON list of the peers of
                       the rules that admit it, as NetworkPolicy semantics have it (a rule
                       without ports admits every port, one without from every source)
  owners FIELD.PATH    which field managers own a field (managedFields), "manager/operation
                       [/subresource]" comma separated, e.g. owners spec.replicas
  selector             the pod selector (spec.podSelector or spec.selector matchLabels) as
                       k=v,k=v for kubectl get -l
  selects SM.json      stdin: a ServiceList; the names of the Services the ServiceMonitor in
                       SM.json selects (namespace, matchLabels, and a port of that name)
"""
import json
import sys


def netpol(obj, ports):
    rules = obj["spec"].get("ingress") or []
    out = []
    for port in ports:
        peers, anyone = [], False
        for rule in rules:
            rports = rule.get("ports") or []
            hit = not rports or any(
                p.get("protocol", "TCP") == "TCP"
                and isinstance(p.get("port"), int)
                and p["port"] <= int(port) <= p.get("endPort", p["port"])
                for p in rports
            )
            if not hit:
                continue
            if not rule.get("from"):
                anyone = True
            else:
                peers.extend(rule["from"])
        out.append(f"{port}=" + ("any" if anyone else json.dumps(peers, sort_keys=True, separators=(",", ":")) if peers else "none"))
    return " ".join(out)


def owners(obj, path):
    keys = ["f:" + k for k in path.split(".")]
    found = []
    for entry in obj["metadata"].get("managedFields") or []:
        node = entry.get("fieldsV1") or {}
        for k in keys:
            node = node.get(k) if isinstance(node, dict) else None
            if node is None:
                break
        if node is not None:
            who = f"{entry.get('manager')}/{entry.get('operation')}"
            if entry.get("subresource"):
                who += "/" + entry["subresource"]
            found.append(who)
    return ",".join(found) or "none"


def selects(sm, services):
    spec = sm["spec"]
    want = spec.get("selector", {}).get("matchLabels", {})
    nss = spec.get("namespaceSelector", {})
    names = []
    for svc in services["items"]:
        meta = svc["metadata"]
        if not nss.get("any") and meta["namespace"] not in (nss.get("matchNames") or [sm["metadata"]["namespace"]]):
            continue
        labels = meta.get("labels") or {}
        if any(labels.get(k) != v for k, v in want.items()):
            continue
        svc_ports = {p.get("name") for p in svc["spec"].get("ports", [])}
        if all(e.get("port") in svc_ports for e in spec.get("endpoints", [])):
            names.append(meta["name"])
    return " ".join(sorted(names)) or "none"


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "netpol":
        print(netpol(json.load(sys.stdin), args))
    elif cmd == "selector":
        spec = json.load(sys.stdin)["spec"]
        labels = (spec.get("podSelector") or spec.get("selector") or {}).get("matchLabels") or {}
        print(",".join(f"{k}={v}" for k, v in sorted(labels.items())))
    elif cmd == "owners":
        print(owners(json.load(sys.stdin), args[0]))
    elif cmd == "selects":
        with open(args[0]) as f:
            print(selects(json.load(f), json.load(sys.stdin)))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
