#!/usr/bin/env python3
"""Check a Grafana dashboard's PromQL against a live weir scrape (e2e/manifests/test.sh).

    dashboard_check.py DASHBOARD.json SCRAPE.txt

Every metric name and every label a query uses (matchers `{label="v"}`, `by (...)`,
`without (...)`, `le` of histogram_quantile, `{{label}}` in a legend, the label of a
`label_values(metric, label)` variable) must appear in the scrape, on the metrics that query
reads; a value matched with `=` (`code_class="5xx"`) must be a value the scrape has. Any other
identifier in an expression must be a PromQL function, aggregation or keyword, so a
misspelled metric cannot hide as an unknown word. Prints what it checked; exits 1 listing
every problem. Standard library only.
"""
import json
import re
import sys

FUNCTIONS = {
    # aggregations
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "group", "count_values",
    # functions the dashboard may use
    "rate", "irate", "increase", "delta", "idelta", "deriv", "histogram_quantile", "clamp_min",
    "clamp_max", "clamp", "abs", "time", "vector", "scalar", "sum_over_time", "max_over_time",
    "min_over_time", "avg_over_time", "label_replace", "absent", "round", "ceil", "floor",
    "timestamp", "changes", "resets",
    # keywords
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and",
    "or", "unless", "inf", "nan",
}
IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{(.*)\})?\s+\S+")
LABEL_PAIR = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')
MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')


def scrape(path):
    """metric name -> {label: set of values}"""
    out = {}
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        m = SAMPLE.match(line)
        if not m:
            continue
        labels = out.setdefault(m.group(1), {})
        for k, v in LABEL_PAIR.findall(m.group(3) or ""):
            labels.setdefault(k, set()).add(v)
    return out


def queries(dashboard):
    """(where, kind, text, legend) for every expr of every panel and every query variable."""
    def walk(panels):
        for p in panels:
            yield p
            yield from walk(p.get("panels", []))

    for p in walk(dashboard.get("panels", [])):
        for t in p.get("targets", []):
            if "expr" in t:
                yield f'panel "{p.get("title")}" {t.get("refId")}', "expr", t["expr"], t.get("legendFormat", "")
    for v in dashboard.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v.get("query")
            q = q.get("query", "") if isinstance(q, dict) else q
            yield f'variable ${v["name"]}', "variable", q, ""


def check_expr(where, expr, legend, metrics, problems):
    used = set()
    # Grafana variables: $__rate_interval, ${datasource}, "$cluster".
    text = re.sub(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", "VAR", expr)
    # Durations and subqueries: [5m], [VAR], [1h:5m].
    text = re.sub(r"\[[^\]]*\]", " ", text)
    # Selectors with matchers: metric{...} (or a bare {...}).
    for m in re.finditer(r"([A-Za-z_:][A-Za-z0-9_:]*)?\s*\{([^}]*)\}", text):
        name = m.group(1)
        if name and name not in FUNCTIONS:
            used.add(name)
        for label, op, value in MATCHER.findall(m.group(2)):
            if not name or name not in metrics:
                continue  # reported below as an unknown metric
            labels = metrics[name]
            if label not in labels:
                problems.append(f"{where}: {name} has no label {label!r} (it has {sorted(labels)})")
            elif op == "=" and "VAR" not in value and value not in labels[label]:
                problems.append(f"{where}: no {name} series has {label}={value!r} (values: {sorted(labels[label])})")
    text = re.sub(r"\{[^}]*\}", " ", text)
    grouping = []
    for m in re.finditer(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", text):
        grouping += [g.strip() for g in m.group(2).split(",") if g.strip()]
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r'"(?:[^"\\]|\\.)*"', " ", text)
    # Numbers (1e-9, 0.99) are not identifiers.
    text = re.sub(r"\b\d+(\.\d+)?([eE][-+]?\d+)?\b", " ", text)
    for word in IDENT.findall(text):
        if word in FUNCTIONS or word == "VAR":
            continue
        used.add(word)
    unknown = sorted(u for u in used if u not in metrics)
    for u in unknown:
        problems.append(f"{where}: metric {u!r} is not in the scrape")
    available = set()
    for u in used:
        available |= set(metrics.get(u, {}))
    for label in grouping + re.findall(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}", legend):
        if label not in available and not unknown:
            problems.append(f"{where}: label {label!r} is on none of {sorted(used)} (they have {sorted(available)})")
    if not used:
        problems.append(f"{where}: no metric in {expr!r}")
    return used, set(grouping)


def main():
    dashboard = json.load(open(sys.argv[1]))
    metrics = scrape(sys.argv[2])
    problems, names, labels, n = [], set(), set(), 0
    for where, kind, text, legend in queries(dashboard):
        n += 1
        if kind == "variable":
            m = re.fullmatch(r"\s*label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*", text)
            if not m:
                problems.append(f"{where}: not label_values(metric, label): {text!r}")
                continue
            metric, label = m.groups()
            names.add(metric)
            labels.add(label)
            if metric not in metrics:
                problems.append(f"{where}: metric {metric!r} is not in the scrape")
            elif label not in metrics[metric]:
                problems.append(f"{where}: {metric} has no label {label!r}")
            continue
        used, grouped = check_expr(where, text, legend, metrics, problems)
        names |= used
        labels |= grouped
    if n == 0:
        problems.append("the dashboard has no queries")
    print(f"{n} queries, {len(names)} metrics ({', '.join(sorted(names))}), labels {sorted(labels)}")
    for p in problems:
        print("PROBLEM:", p)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
