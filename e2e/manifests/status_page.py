#!/usr/bin/env python3
"""Browser test of the status page (`/` on weir's debug listener), for e2e/manifests/test.sh.

    status_page.py URL HOST ENDPOINT NEW_FILE NEW_HOST

Opens URL in Debian's Chromium (headless, driven by Playwright with
executable_path=$CHROMIUM, default /usr/bin/chromium; Playwright's own browser downloads are
never used), and checks that the page:

- loads with no console error and no uncaught exception;
- shows HOST in the routes and ENDPOINT in the clusters;
- after NEW_FILE is written (an Ingress for NEW_HOST, in the watched manifests directory),
  shows NEW_HOST and a newer generation without a reload (the same document: a marker set on
  `window` before the change is still there).

Prints one "PASS: ..." or "FAIL: ..." line per check; exits 1 if any failed.
WEIR_STATUS_SCREENSHOT=FILE.png saves what the page showed at the end.
"""
import os
import sys
import time

from playwright.sync_api import sync_playwright

url, host, endpoint, new_file, new_host = sys.argv[1:6]
results = []


def check(what, ok, detail=""):
    results.append(ok)
    print(("PASS: " if ok else "FAIL: ") + what + ("" if ok else f": {detail}"), flush=True)


def wait_for(page, selector, text, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in page.inner_text(selector):
            return True
        time.sleep(0.2)
    return False


with sync_playwright() as p:
    browser = p.chromium.launch(
        executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
        headless=True,
        # Root in CI: Chromium's sandbox needs user namespaces it may not get there.
        args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
    )
    page = browser.new_page()
    errors = []
    page.on("console", lambda m: m.type == "error" and errors.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    response = page.goto(url, wait_until="load", timeout=15000)
    check("the status page answers 200", response is not None and response.status == 200,
          response and response.status)
    check("the page shows the route host " + host, wait_for(page, "#routes", host),
          page.inner_text("#routes")[:500])
    check("the page shows the endpoint " + endpoint, wait_for(page, "#clusters", endpoint),
          page.inner_text("#clusters")[:500])
    check("the page shows the recent configuration changes", wait_for(page, "#changes", "+ host"),
          page.inner_text("#changes")[:500])
    check("the page shows the conditions of the last compile",
          wait_for(page, "#conditions", "every object was accepted")
          or "Error" in page.inner_text("#conditions") or "Warning" in page.inner_text("#conditions"),
          page.inner_text("#conditions")[:500])
    origin = url.split("/", 3)[:3]
    outside = [r for r in requests if r.split("/", 3)[:3] != origin]
    check("the page loads nothing from elsewhere", not outside, outside)
    generation = int(page.inner_text("#generation"))
    page.evaluate("window.__weirMarker = 1")
    with open(new_file, "w") as f:
        f.write(f"""apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: status-page-test, namespace: default}}
spec:
  rules:
  - host: {new_host}
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: echo-b, port: {{number: 80}}}}}}}}
""")
    check("a config change appears without a reload (" + new_host + ")",
          wait_for(page, "#routes", new_host, timeout=15.0), page.inner_text("#routes")[:500])
    check("the generation rose", int(page.inner_text("#generation")) > generation,
          page.inner_text("#generation"))
    check("the change is listed as + host " + new_host, wait_for(page, "#changes", "+ host " + new_host),
          page.inner_text("#changes")[:500])
    check("the page was not reloaded", page.evaluate("window.__weirMarker") == 1)
    check("no console error or uncaught exception", not errors, errors)
    if os.environ.get("WEIR_STATUS_SCREENSHOT"):
        page.set_viewport_size({"width": 1400, "height": 900})
        page.screenshot(path=os.environ["WEIR_STATUS_SCREENSHOT"], full_page=True)
    browser.close()

sys.exit(0 if all(results) else 1)
