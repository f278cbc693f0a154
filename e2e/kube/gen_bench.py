#!/usr/bin/env python3
"""Manifests for the propagation benchmark: S Services without selector, each with one
EndpointSlice of E endpoints (managed by the benchmark, so the EndpointSlice controller
leaves them alone), and S Ingresses of P paths each (S*P routes).

    gen_bench.py objects --services 500 --endpoints 40 --paths 10 --namespace bench > all.yaml
    gen_bench.py churn --services 500 --endpoints 40 --namespace bench --changes 10 --seed N > x.yaml

`churn` prints changed EndpointSlices: each flips the readiness of one endpoint.
Addresses are 10.244.1.1 upward (never the kwok pod range 10.244.0.0/24).
"""
import argparse
import json
import random


def addr(n):
    return f"10.244.{n // 250 + 1}.{n % 250 + 1}"


def slice_doc(ns, i, endpoints, not_ready=()):
    eps = []
    for j in range(endpoints):
        n = i * endpoints + j
        eps.append({"addresses": [addr(n)], "conditions": {"ready": j not in not_ready}})
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"svc-{i}-bench", "namespace": ns,
                     "labels": {"kubernetes.io/service-name": f"svc-{i}",
                                "endpointslice.kubernetes.io/managed-by": "bench.e2e.weir.dev"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 18080, "protocol": "TCP"}],
        "endpoints": eps,
    }


def objects(a):
    docs = []
    for i in range(a.services):
        docs.append({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": f"svc-{i}", "namespace": a.namespace},
                     "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 18080}]}})
        docs.append(slice_doc(a.namespace, i, a.endpoints))
        paths = [{"path": f"/p{p}", "pathType": "Prefix",
                  "backend": {"service": {"name": f"svc-{i}", "port": {"number": 80}}}}
                 for p in range(a.paths)]
        docs.append({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                     "metadata": {"name": f"ing-{i}", "namespace": a.namespace},
                     "spec": {"ingressClassName": "weir",
                              "rules": [{"host": f"h{i}.bench.example", "http": {"paths": paths}}]}})
    return docs


def churn(a):
    rnd = random.Random(a.seed)
    picked = rnd.sample(range(a.services), a.changes)
    return [slice_doc(a.namespace, i, a.endpoints, not_ready={rnd.randrange(a.endpoints)}) for i in picked]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["objects", "churn"])
    p.add_argument("--services", type=int, default=500)
    p.add_argument("--endpoints", type=int, default=40)
    p.add_argument("--paths", type=int, default=10)
    p.add_argument("--namespace", default="bench")
    p.add_argument("--changes", type=int, default=10)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    docs = objects(a) if a.mode == "objects" else churn(a)
    print(json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))


if __name__ == "__main__":
    main()
