#!/usr/bin/env python3
"""Compare h2spec's JUnit reports with the expected-failures list.

    check.py EXPECTED_FAILURES LISTENER=JUNIT_XML [LISTENER=JUNIT_XML ...]

Prints one summary line per listener ("h2spec h2c: 145/146 passed, 1 failed, 0 skipped (1
listed as expected failures)") and then every disagreement with EXPECTED_FAILURES:

- a test that did not pass (failed, errored or skipped) and is not listed for that listener;
- a listed test that passed (the proxy got better: remove its line);
- a listed test that h2spec does not have (a typo or a renumbering).

Exit status 0 when there is no disagreement, 1 otherwise, 2 on unreadable input.

Test IDs are h2spec's own: GROUP/SEQ, e.g. http2/3.5/2 is case 2 of section "3.5. HTTP/2
Connection Preface" of the "http2" spec (`h2spec http2/3.5/2` runs it alone). The JUnit
report names each case's group (`package`) but not its number; cases appear in run order
within their group, so the number is the position (h2spec numbers them the same way).
"""
import sys
import xml.etree.ElementTree as ET

LISTENERS = ("h2c", "tls")


def bad_input(message):
    print(message, file=sys.stderr)
    sys.exit(2)


def read_expected(path):
    """{(listener, test_id): reason} from the file; exits 2 on a malformed line."""
    expected = {}
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        bad_input(f"cannot read the expected-failures list: {e}")
    with f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(None, 2)
            if len(parts) < 3 or parts[0] not in LISTENERS or parts[1].count("/") < 1:
                bad_input(f"{path}:{n}: expected 'LISTENER TEST-ID REASON' with LISTENER one "
                          f"of {', '.join(LISTENERS)}, got: {line}")
            key = (parts[0], parts[1])
            if key in expected:
                bad_input(f"{path}:{n}: {parts[0]} {parts[1]} is listed twice")
            expected[key] = parts[2]
    return expected


def read_junit(path):
    """[(test_id, description, status, message)] in run order; status pass|fail|skip."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        bad_input(f"cannot read the JUnit report {path}: {e}")
    results = []
    for suite in root.iter("testsuite"):
        group = suite.get("package")
        for seq, case in enumerate(suite.findall("testcase"), 1):
            status, message = "pass", ""
            for child in case:
                if child.tag in ("failure", "error"):
                    status, message = "fail", (child.text or "").strip()
                elif child.tag == "skipped":
                    status = "skip"
            results.append((f"{group}/{seq}", case.get("classname"), status, message))
    return results


def explain(message):
    """h2spec's failure text, indented. Its JUnit <error> holds the expected lines, then the
    actual one (TestError.Error()); other errors are a single line."""
    lines = [l.strip() for l in message.splitlines() if l.strip()]
    if not lines:
        return ""
    if len(lines) == 1:
        return f"\n    error:    {lines[0]}"
    return f"\n    expected: {' | '.join(lines[:-1])}\n    actual:   {lines[-1]}"


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    expected_path = sys.argv[1]
    expected = read_expected(expected_path)
    problems = []
    for arg in sys.argv[2:]:
        listener, path = arg.split("=", 1)
        results = read_junit(path)
        ids = {r[0] for r in results}
        passed = sum(r[2] == "pass" for r in results)
        failed = sum(r[2] == "fail" for r in results)
        skipped = sum(r[2] == "skip" for r in results)
        listed = sum(l == listener for (l, _) in expected)
        print(f"h2spec {listener}: {passed}/{len(results)} passed, {failed} failed, "
              f"{skipped} skipped ({listed} listed as expected failures)")
        for test_id, desc, status, message in results:
            listed = (listener, test_id) in expected
            if status != "pass" and not listed:
                problems.append(f"NEW {status.upper()}: {listener} {test_id} {desc}"
                                + explain(message))
            elif status == "pass" and listed:
                problems.append(f"NOW PASSES: {listener} {test_id} {desc}\n"
                                f"    remove the line '{listener} {test_id} …' from {expected_path}")
        for (l, test_id) in sorted(expected):
            if l == listener and test_id not in ids:
                problems.append(f"UNKNOWN: {listener} {test_id} is listed in {expected_path} "
                                "but h2spec has no such test")
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
