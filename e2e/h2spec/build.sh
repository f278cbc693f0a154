#!/usr/bin/env bash
# Build h2spec (the HTTP/2 conformance tester) from the Go module proxy, pinned, once, into
# the same cache as e2e/cluster, and print the binary's path on stdout:
#
#   e2e/h2spec/build.sh      -> ${WEIR_CACHE:-~/.cache/weir-e2e}/h2spec-v2.2.1/bin/h2spec
#
# The version of h2spec and of every dependency is fixed by the wrapper module gomod/go.mod
# (+ go.sum): h2spec has no go.mod of its own, so a bare `go install ...@v2.2.1+incompatible`
# would pick up whatever golang.org/x/net is newest that day. The binary is rebuilt when
# gomod/go.sum changes (a stamp next to it records the one it was built from).
#
# Environment: WEIR_CACHE (build cache, default ~/.cache/weir-e2e), WEIR_E2E_GO_P (go build
# -p, default 2).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${WEIR_CACHE:-$HOME/.cache/weir-e2e}"
PKG=github.com/summerwind/h2spec/cmd/h2spec
VERSION="$(awk '$1 == "github.com/summerwind/h2spec" {print $2; exit}' "$HERE/gomod/go.mod")"
VERSION="${VERSION%+incompatible}" # v2.2.1
BIN="$CACHE/h2spec-$VERSION/bin"
STAMP="$BIN/.go.sum.sha256"

log() { printf '[h2spec %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[h2spec] ERROR: %s\n' "$*" >&2; exit 1; }

[[ $VERSION == v* ]] || die "no github.com/summerwind/h2spec requirement in $HERE/gomod/go.mod"
want="$(sha256sum "$HERE/gomod/go.sum" | cut -d' ' -f1)"
built() { [[ -x "$BIN/h2spec" && "$(cat "$STAMP" 2>/dev/null)" == "$want" ]]; }

if ! built; then
  command -v go >/dev/null ||
    die "step 'build h2spec': go not found on PATH (h2spec $VERSION is built from the Go module proxy; install Go >= 1.26)"
  mkdir -p "$CACHE/logs" "$BIN"
  # Two runs at once must not build into the same place.
  exec 9>"$CACHE/.h2spec-build.lock"
  flock -n 9 || { log "waiting for another build to finish ($CACHE/.h2spec-build.lock)"; flock 9; }
  if ! built; then
    logf="$CACHE/logs/h2spec-$VERSION.log" t0=$SECONDS
    log "build h2spec-$VERSION (go build $PKG; log: $logf)"
    if ! (cd "$HERE/gomod" &&
      CGO_ENABLED=0 GOFLAGS="-trimpath -mod=readonly -buildvcs=false" GOTOOLCHAIN=local \
        nice -n 10 go build -p "${WEIR_E2E_GO_P:-2}" \
        -ldflags "-s -w -X main.VERSION=${VERSION#v} -X main.COMMIT=module-proxy" \
        -o "$BIN/h2spec.tmp" "$PKG") >"$logf" 2>&1; then
      tail -n 30 "$logf" >&2
      die "step 'build h2spec' failed (command: cd e2e/h2spec/gomod && go build $PKG); full log: $logf"
    fi
    mv -f "$BIN/h2spec.tmp" "$BIN/h2spec"
    echo "$want" >"$STAMP"
    log "built h2spec-$VERSION in $((SECONDS - t0)) s"
    echo "h2spec-$VERSION $((SECONDS - t0))" >>"$CACHE/logs/build-times.txt"
  fi
  flock -u 9
  exec 9>&-
fi
echo "$BIN/h2spec"
