#!/usr/bin/env bash
# Build a real kube-apiserver from the Go module proxy with this machine's Go,
# and cache it outside the repo, keyed by Kubernetes version.
#
#   bin=$(lab/kube-apiserver/build.sh)      # last stdout line = binary path
#
# Env:
#   KUBE_VERSION   Kubernetes version to build (default: pinned below)
#   EDGECTL_CACHE  cache root (default /var/cache/edgectl)
#   BUILD_JOBS     go build -p (default: number of cores, max 2)
#
# Cache layout under $EDGECTL_CACHE/kube-apiserver/:
#   <version>/kube-apiserver         the binary
#   <version>/kube-apiserver.sha256  sha256sum of it (checked on every call)
#   <version>/build-info.txt         version, go version, timings of the last build
#   <version>/builds.log             one line per build (timings history)
#   go/{path,mod,build}              GOPATH, GOMODCACHE, GOCACHE (shared by versions)
#
# k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces every
# k8s.io/* staging module with ./staging/src/..., and replace directives of a
# dependency are ignored. So we generate a throwaway wrapper module that
# requires k8s.io/kubernetes and replaces each staging module with its
# published v0.Y.Z tag (kubernetes v1.Y.Z <-> staging v0.Y.Z).
set -euo pipefail

# Pinned: newest v1.36 patch on the proxy; its go.mod says `go 1.26.0`, which
# this machine's go1.26.x satisfies (v1.36 is the first minor that needs 1.26).
KUBE_VERSION="${KUBE_VERSION:-v1.36.3}"

log() { printf '[kube-apiserver/build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $KUBE_VERSION =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] \
  || die "KUBE_VERSION must look like v1.Y.Z (got '$KUBE_VERSION')"
KUBE_MINOR="${BASH_REMATCH[1]}"
STAGING_VERSION="v0.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"

CACHE_ROOT="${EDGECTL_CACHE:-/var/cache/edgectl}/kube-apiserver"
OUT_DIR="$CACHE_ROOT/$KUBE_VERSION"
BIN="$OUT_DIR/kube-apiserver"
SUM="$BIN.sha256"

cache_ok() {
  [[ -x $BIN && -s $SUM ]] && (cd "$OUT_DIR" && sha256sum --status -c "$(basename "$SUM")")
}

# Fast path: nothing to do.
if cache_ok; then
  echo "$BIN"
  exit 0
fi

command -v go >/dev/null || die "go not found on PATH"
mkdir -p "$OUT_DIR"

# One build per version at a time; a second caller waits, then hits the cache.
exec 9>"$OUT_DIR/.lock"
if ! flock -n 9; then
  log "another build of $KUBE_VERSION is running; waiting for it"
  flock 9
fi
if cache_ok; then
  echo "$BIN"
  exit 0
fi
rm -f "$BIN" "$SUM"

# Isolated Go environment under the cache dir: never touches the repo or ~/go.
export GOPATH="$CACHE_ROOT/go/path"
export GOMODCACHE="$CACHE_ROOT/go/mod"
export GOCACHE="$CACHE_ROOT/go/build"
export GOFLAGS="-mod=mod -buildvcs=false"
export GOTOOLCHAIN=local     # build with this machine's Go, never fetch another
export CGO_ENABLED=0         # static binary, like the upstream release builds
export GOWORK=off
export GO111MODULE=on
mkdir -p "$GOPATH" "$GOMODCACHE" "$GOCACHE"

ncpu="$(nproc 2>/dev/null || echo 2)"
JOBS="${BUILD_JOBS:-$(( ncpu < 2 ? ncpu : 2 ))}"
export GOMAXPROCS="${GOMAXPROCS:-$JOBS}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/kube-apiserver-build.XXXXXX")"
cleanup() { rm -rf "$WORK" "$BIN.tmp.$$"; }
trap cleanup EXIT

GO_VERSION="$(go env GOVERSION)"
log "building kube-apiserver $KUBE_VERSION with $GO_VERSION (-p $JOBS) into $OUT_DIR"
t_start=$SECONDS

# 1. Fetch k8s.io/kubernetes' go.mod (and .info) through the proxy.
cd "$WORK"
go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" >"$WORK/dl.json" \
  || { cat "$WORK/dl.json" >&2 || true; die "cannot download k8s.io/kubernetes@$KUBE_VERSION"; }
# Minimal JSON string-field extraction (no jq/python dependency); works for
# both the pretty `go mod download -json` output and the one-line .info file.
json_field() { tr ',{}' '\n\n\n' <"$2" | sed -n -E "s/^[[:space:]]*\"$1\":[[:space:]]*\"([^\"]*)\".*/\1/p" | head -n1; }
K8S_GOMOD="$(json_field GoMod "$WORK/dl.json")"
K8S_INFO="$(json_field Info "$WORK/dl.json")"
[[ -f $K8S_GOMOD ]] || die "go mod download gave no go.mod path"

# 2. Staging modules = every k8s.io/* module replaced with ./staging/... .
mapfile -t STAGING < <(
  sed -n -E 's#^[[:space:]]*(replace[[:space:]]+)?(k8s\.io/[^[:space:]]+)[[:space:]]+=>[[:space:]]+\./staging/.*#\2#p' "$K8S_GOMOD" \
    | sort -u
)
(( ${#STAGING[@]} > 0 )) || die "found no staging replace directives in $K8S_GOMOD"
log "${#STAGING[@]} staging modules -> $STAGING_VERSION"

GO_DIRECTIVE="$(sed -n -E 's/^go[[:space:]]+([0-9][0-9.]*)[[:space:]]*$/\1/p' "$K8S_GOMOD" | head -n1)"
[[ -n $GO_DIRECTIVE ]] || GO_DIRECTIVE="$(go env GOVERSION | sed 's/^go//')"

# 3. Wrapper module.
{
  echo "module edgectl.local/kube-apiserver-build"
  echo
  echo "go $GO_DIRECTIVE"
  echo
  grep -E '^godebug[[:space:]]' "$K8S_GOMOD" || true   # same runtime defaults as upstream
  echo
  echo "require k8s.io/kubernetes $KUBE_VERSION"
  echo
  echo "replace ("
  for m in "${STAGING[@]}"; do
    echo "	$m => $m $STAGING_VERSION"
  done
  echo ")"
} >"$WORK/go.mod"

# Version stamping, as hack/lib/version.sh does (otherwise the binary reports
# v0.0.0-master+$Format:%H$).
BUILD_DATE="$(json_field Time "$K8S_INFO")"
[[ -n $BUILD_DATE ]] || BUILD_DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
GIT_COMMIT="$(json_field Hash "$K8S_INFO")"
ldx=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldx+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$KUBE_MINOR"
  ldx+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$BUILD_DATE"
  [[ -n $GIT_COMMIT ]] && ldx+=" -X $pkg.gitCommit=$GIT_COMMIT"
done

# 4. Resolve + download every dependency (separately timed from compiling).
t_resolve=$SECONDS
log "resolving dependency graph and downloading modules"
go list -deps k8s.io/kubernetes/cmd/kube-apiserver >/dev/null
resolve_s=$(( SECONDS - t_resolve ))
log "modules ready in ${resolve_s}s; compiling (this is the slow part)"

# 5. Compile.
t_compile=$SECONDS
go build -p "$JOBS" -trimpath -ldflags "-s -w$ldx" -o "$BIN.tmp.$$" \
  k8s.io/kubernetes/cmd/kube-apiserver >&2
compile_s=$(( SECONDS - t_compile ))

"$BIN.tmp.$$" --version >&2 || die "built binary does not run"
mv -f "$BIN.tmp.$$" "$BIN"
(cd "$OUT_DIR" && sha256sum "$(basename "$BIN")" >"$(basename "$SUM").tmp" && mv -f "$(basename "$SUM").tmp" "$(basename "$SUM")")
total_s=$(( SECONDS - t_start ))

cat >"$OUT_DIR/build-info.txt" <<EOF
kube_version=$KUBE_VERSION
staging_version=$STAGING_VERSION
staging_modules=${#STAGING[@]}
go_version=$GO_VERSION
build_jobs=$JOBS
nproc=$ncpu
resolve_seconds=$resolve_s
compile_seconds=$compile_s
total_seconds=$total_s
built_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
sha256=$(cut -d' ' -f1 "$SUM")
size_bytes=$(stat -c %s "$BIN")
EOF
cp "$WORK/go.mod" "$OUT_DIR/wrapper.go.mod"
# build-info.txt describes the last build; builds.log keeps every build's timing.
printf '%s\t%s\t%s\tjobs=%s\tresolve=%ss\tcompile=%ss\ttotal=%ss\n' \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$KUBE_VERSION" "$GO_VERSION" "$JOBS" "$resolve_s" "$compile_s" "$total_s" \
  >>"$OUT_DIR/builds.log"

log "done in ${total_s}s (resolve ${resolve_s}s, compile ${compile_s}s): $BIN"
echo "$BIN"
