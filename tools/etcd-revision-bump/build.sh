#!/usr/bin/env bash
# Build edgectl-etcd-revision-bump (main.go here) with this machine's Go and cache it outside the
# repo, keyed by a digest of its sources, so an edit rebuilds and an unchanged tool never does.
#
#   bin=$(tools/etcd-revision-bump/build.sh)      # last stdout line = binary path
#
# Env: EDGECTL_CACHE  cache root (default /var/cache/edgectl)
# Cache: $EDGECTL_CACHE/etcd-revision-bump/<digest>/edgectl-etcd-revision-bump (+ .sha256),
#        $EDGECTL_CACHE/etcd-revision-bump/go/{mod,build} (module and build caches).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { printf '[etcd-revision-bump/build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

DIGEST="$(cd "$HERE" && cat go.mod go.sum main.go | sha256sum | cut -c1-16)"
ROOT="${EDGECTL_CACHE:-/var/cache/edgectl}/etcd-revision-bump"
OUT_DIR="$ROOT/$DIGEST"
BIN="$OUT_DIR/edgectl-etcd-revision-bump"
cache_ok() { [[ -x $BIN && -s $BIN.sha256 ]] && (cd "$OUT_DIR" && sha256sum --status -c "$(basename "$BIN").sha256"); }
if cache_ok; then
  echo "$BIN"
  exit 0
fi
command -v go >/dev/null || { log "ERROR: go not found on PATH"; exit 1; }
mkdir -p "$OUT_DIR"
exec 9>"$OUT_DIR/.lock"
flock 9
if cache_ok; then
  echo "$BIN"
  exit 0
fi
export GOMODCACHE="$ROOT/go/mod" GOCACHE="$ROOT/go/build" GOPATH="$ROOT/go/path"
export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false"
log "building $DIGEST with $(go env GOVERSION)"
(cd "$HERE" && go build -trimpath -ldflags '-s -w' -o "$BIN.tmp.$$" .) >&2
mv -f "$BIN.tmp.$$" "$BIN"
(cd "$OUT_DIR" && sha256sum "$(basename "$BIN")" >"$(basename "$BIN").sha256")
echo "$BIN"
