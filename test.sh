#!/usr/bin/env bash
# The whole weir test suite: what CI runs (.ci/run) and what a newcomer runs.
#
#   ./test.sh            format, lint, unit/integration/golden/proxy tests, then the black-box
#                        e2e tests of the built binary: manifests mode, the real Kubernetes
#                        control plane (built from Go modules on first use, cached), weir
#                        in Kubernetes mode against it, and the Gateway API's conformance suite.
#
# Environment: WEIR_SKIP_CLUSTER=1 skips the three control-plane suites (e.g. on a laptop
# without Go); WEIR_CACHE is the Go build cache of e2e/cluster (default ~/.cache/weir-e2e).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

step() { printf '\n=== %s (%s)\n' "$*" "$(date +%H:%M:%S)"; }
SECONDS=0

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

step "cargo test --profile ci (optimized, with debug assertions; see Cargo.toml)"
# The fan-out test's full count (issue 4: max/min share <= 1.02 over 100,000 requests).
export WEIR_FANOUT_REQUESTS=100000
cargo test --profile ci --all-targets

# The binary the e2e tests drive: the one cargo test just built for the CLI tests, from the
# same compiled dependencies. A separate `cargo build --profile ci` would resolve tokio without
# the dev-only `test-util` feature and compile most of the tree a second time.
export WEIR_BIN="$PWD/target/ci/weir"
[[ -x $WEIR_BIN ]] || { echo "cargo test did not build $WEIR_BIN"; exit 1; }

failed=()
for suite in e2e/manifests/test.sh e2e/h2spec/test.sh e2e/helm/test.sh e2e/cluster/test.sh e2e/kube/test.sh e2e/gateway/test.sh; do
    [[ -x $suite ]] || continue
    if [[ ${WEIR_SKIP_CLUSTER:-0} == 1 && ($suite == e2e/cluster/* || $suite == e2e/kube/* || $suite == e2e/gateway/*) ]]; then
        echo "skipping $suite (WEIR_SKIP_CLUSTER=1)"
        continue
    fi
    step "$suite"
    if ! "$suite"; then failed+=("$suite"); fi
done

step "done in ${SECONDS}s"
if ((${#failed[@]})); then
    echo "FAILED suites: ${failed[*]}"
    exit 1
fi
