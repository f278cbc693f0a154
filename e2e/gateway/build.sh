#!/usr/bin/env bash
# Build the Gateway API conformance suite (sigs.k8s.io/gateway-api/conformance, pinned by the
# wrapper module gomod/go.mod + go.sum) once, as a test binary (`go test -c`), into the same
# cache as e2e/cluster, copy the module's standard-channel CRDs next to it, and print the
# directory on stdout:
#
#   e2e/gateway/build.sh   -> ${WEIR_CACHE:-~/.cache/weir-e2e}/gateway-conformance-v1.6.3
#                             bin/conformance.test   the suite (flags: see README.md)
#                             bin/echo-basic         the suite's own echo server
#                                                    (sigs.k8s.io/gateway-api/conformance/echo-basic,
#                                                    same module and version), run by kubelet.py
#                             crd/standard/*.yaml    config/crd/standard of sigs.k8s.io/gateway-api
#
# Rebuilt when gomod/go.sum or gomod/*_test.go change (a stamp records what it was built from);
# echo-basic has its own stamp (.echo-basic.stamp.sha256, from go.mod + go.sum), so a cache
# with the suite but no echo-basic builds only echo-basic.
# Environment: WEIR_CACHE, WEIR_E2E_GO_P (go test -c -p, default 2).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${WEIR_CACHE:-$HOME/.cache/weir-e2e}"
VERSION="$(awk '$1 == "sigs.k8s.io/gateway-api/conformance" && $2 ~ /^v/ {print $2; exit}' "$HERE/gomod/go.mod")"
API_VERSION="$(awk '$1 == "sigs.k8s.io/gateway-api" && $2 ~ /^v/ {print $2; exit}' "$HERE/gomod/go.mod")"
DIR="$CACHE/gateway-conformance-$VERSION"
STAMP="$DIR/.stamp.sha256"

log() { printf '[gateway %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[gateway] ERROR: %s\n' "$*" >&2; exit 1; }

[[ $VERSION == v* && $API_VERSION == v* ]] || die "no sigs.k8s.io/gateway-api(/conformance) requirement in $HERE/gomod/go.mod"
[[ $VERSION == "$API_VERSION" ]] || die "gomod/go.mod requires gateway-api $API_VERSION but conformance $VERSION: keep them equal"
want="$(cat "$HERE/gomod/go.sum" "$HERE/gomod/go.mod" "$HERE"/gomod/*_test.go | sha256sum | cut -d' ' -f1)"
built() { [[ -x "$DIR/bin/conformance.test" && -d "$DIR/crd/standard" && "$(cat "$STAMP" 2>/dev/null)" == "$want" ]]; }

if ! built; then
  command -v go >/dev/null ||
    die "step 'build gateway conformance': go not found on PATH (the suite is built from the Go module proxy; Go >= 1.26)"
  mkdir -p "$CACHE/logs" "$DIR/bin"
  # Two runs at once must not build into the same place.
  exec 9>"$CACHE/.gateway-conformance-build.lock"
  flock -n 9 || { log "waiting for another build to finish ($CACHE/.gateway-conformance-build.lock)"; flock 9; }
  if ! built; then
    logf="$CACHE/logs/gateway-conformance-$VERSION.log" t0=$SECONDS
    log "build gateway-conformance-$VERSION (go test -c; log: $logf)"
    if ! (cd "$HERE/gomod" &&
      CGO_ENABLED=0 GOFLAGS="-trimpath -mod=readonly -buildvcs=false" GOTOOLCHAIN=local \
        nice -n 10 go test -c -p "${WEIR_E2E_GO_P:-2}" -ldflags "-s -w" \
        -o "$DIR/bin/conformance.test.tmp" .) >"$logf" 2>&1; then
      tail -n 30 "$logf" >&2
      die "step 'build gateway conformance' failed (command: cd e2e/gateway/gomod && go test -c .); full log: $logf"
    fi
    # The CRDs of exactly the API version the suite was built against (the suite checks
    # the bundle-version annotation of the installed CRDs against its own).
    moddir="$(cd "$HERE/gomod" && GOFLAGS=-mod=readonly GOTOOLCHAIN=local go list -m -f '{{.Dir}}' sigs.k8s.io/gateway-api)" ||
      die "step 'locate sigs.k8s.io/gateway-api $API_VERSION in the module cache' failed"
    [[ -d $moddir/config/crd/standard ]] || die "no config/crd/standard in $moddir"
    rm -rf "$DIR/crd.tmp" && mkdir -p "$DIR/crd.tmp/standard"
    cp "$moddir"/config/crd/standard/*.yaml "$DIR/crd.tmp/standard/"
    chmod -R u+w "$DIR/crd.tmp"
    rm -rf "$DIR/crd" && mv "$DIR/crd.tmp" "$DIR/crd"
    mv -f "$DIR/bin/conformance.test.tmp" "$DIR/bin/conformance.test"
    echo "$want" >"$STAMP"
    log "built gateway-conformance-$VERSION in $((SECONDS - t0)) s"
    echo "gateway-conformance-$VERSION $((SECONDS - t0))" >>"$CACHE/logs/build-times.txt"
  fi
  flock -u 9
  exec 9>&-
fi

# echo-basic: `package main` of the conformance module, built from the same go.mod/go.sum
# (-mod=readonly: everything it imports is already in go.sum).
ECHO_STAMP="$DIR/.echo-basic.stamp.sha256"
echo_want="$(cat "$HERE/gomod/go.sum" "$HERE/gomod/go.mod" | sha256sum | cut -d' ' -f1)"
echo_built() { [[ -x "$DIR/bin/echo-basic" && "$(cat "$ECHO_STAMP" 2>/dev/null)" == "$echo_want" ]]; }
if ! echo_built; then
  command -v go >/dev/null || die "step 'build echo-basic': go not found on PATH (Go >= 1.26)"
  mkdir -p "$CACHE/logs" "$DIR/bin"
  exec 9>"$CACHE/.gateway-conformance-build.lock"
  flock -n 9 || { log "waiting for another build to finish ($CACHE/.gateway-conformance-build.lock)"; flock 9; }
  if ! echo_built; then
    logf="$CACHE/logs/echo-basic-$VERSION.log" t0=$SECONDS
    log "build echo-basic $VERSION (go build; log: $logf)"
    if ! (cd "$HERE/gomod" &&
      CGO_ENABLED=0 GOFLAGS="-trimpath -mod=readonly -buildvcs=false" GOTOOLCHAIN=local \
        nice -n 10 go build -p "${WEIR_E2E_GO_P:-2}" -ldflags "-s -w" \
        -o "$DIR/bin/echo-basic.tmp" sigs.k8s.io/gateway-api/conformance/echo-basic) >"$logf" 2>&1; then
      tail -n 30 "$logf" >&2
      die "step 'build echo-basic' failed (command: cd e2e/gateway/gomod && go build sigs.k8s.io/gateway-api/conformance/echo-basic); full log: $logf"
    fi
    mv -f "$DIR/bin/echo-basic.tmp" "$DIR/bin/echo-basic"
    echo "$echo_want" >"$ECHO_STAMP"
    log "built echo-basic $VERSION in $((SECONDS - t0)) s"
    echo "echo-basic-$VERSION $((SECONDS - t0))" >>"$CACHE/logs/build-times.txt"
  fi
  flock -u 9
  exec 9>&-
fi
echo "$DIR"
