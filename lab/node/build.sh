#!/usr/bin/env bash
# Build what a real lab node needs, and cache it outside the repo, keyed by version:
#   - kubelet, kube-controller-manager, kube-scheduler from k8s.io/kubernetes at the
#     kube-apiserver's version (same wrapper-module trick as lab/kube-apiserver/build.sh);
#   - Multus (thin CNI plugin) and Whereabouts (IPAM plugin) from the Go module proxy (their CRDs
#     are the site's, in templates/crds);
#   - two one-layer OCI image tarballs built from Go sources in lab/node/images: a pause image
#     and a demo workload, for `ctr -n k8s.io images import` (no registry on these machines);
#   - the site addons' images, the lab's stand-ins for the air-gap images robots carry: Multus
#     (thin_entrypoint + the multus binary, from the Multus module), Whereabouts (the whereabouts
#     binary, ip-control-loop and the module's install scripts, with Debian's busybox for their
#     shell) and the reference CNI plugins (Debian's, with lab/node/images/addons' installer).
# containerd, runc and the CNI plugins come from Debian (lab/kube-apiserver/install-deps.sh).
#
#   env=$(lab/node/build.sh)        # last stdout line = a KEY=path file describing the bundle
#   lab/node/build.sh --check       # the same line if everything is cached, else exit 3; builds nothing
#
# Env:
#   KUBE_VERSION, MULTUS_VERSION, WHEREABOUTS_VERSION   (defaults pinned below)
#   EDGECTL_CACHE  cache root (default /var/cache/edgectl)
#   BUILD_JOBS     go build -p (default: number of cores, max 2)
#
# Cache layout under $EDGECTL_CACHE/node/:
#   kubernetes/<v>/{kubelet,kube-controller-manager,kube-scheduler}
#   multus/<v>/multus
#   whereabouts/<v>/whereabouts
#   images/<sha of the sources>/{pause.oci.tar,demo.oci.tar}
#   addon-images/<sha of versions and sources>/{multus.oci.tar,whereabouts.oci.tar,cni-plugins.oci.tar}
#   each dir has SHA256SUMS (checked on every call) and build-info.txt; builds.log keeps timings.
#   bundle-<key>.env    KEY=path lines for lab/node/real-node.ts (the last stdout line)
# The Go caches are the kube-apiserver build's ($EDGECTL_CACHE/kube-apiserver/go): kubelet shares
# most packages with kube-apiserver, so a seeded cache roughly halves its cold build.
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.36.3}"
# The proxy refuses multus-cni.v4's version list, but this exact version downloads.
MULTUS_VERSION="${MULTUS_VERSION:-v4.2.2}"
WHEREABOUTS_VERSION="${WHEREABOUTS_VERSION:-v0.9.2}"

HERE="$(cd "$(dirname "$0")" && pwd)"
log() { printf '[node/build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $KUBE_VERSION =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] \
  || die "KUBE_VERSION must look like v1.Y.Z (got '$KUBE_VERSION')"
KUBE_MINOR="${BASH_REMATCH[1]}"
STAGING_VERSION="v0.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"

CACHE="${EDGECTL_CACHE:-/var/cache/edgectl}"
ROOT="$CACHE/node"
KUBE_DIR="$ROOT/kubernetes/$KUBE_VERSION"
MULTUS_DIR="$ROOT/multus/$MULTUS_VERSION"
WB_DIR="$ROOT/whereabouts/$WHEREABOUTS_VERSION"
# Images are keyed by their sources (and the Go version that compiles them).
IMG_KEY="$(cd "$HERE/images" && { go env GOVERSION 2>/dev/null || echo nogo; find ./pause ./demo -type f | sort | xargs sha256sum; } | sha256sum | cut -c1-16)"
IMG_DIR="$ROOT/images/$IMG_KEY"
# The addon images are keyed by what goes into them: the Multus and Whereabouts versions, the Go
# that compiles their commands, Debian's CNI plugins and busybox, and the lab's installer script.
ADDON_KEY="$(cd "$HERE/images" && {
  go env GOVERSION 2>/dev/null || echo nogo
  echo "$MULTUS_VERSION $WHEREABOUTS_VERSION"
  dpkg-query -W containernetworking-plugins busybox-static 2>/dev/null || echo nodpkg
  find ./addons -type f | sort | xargs sha256sum
} | sha256sum | cut -c1-16)"
ADDON_DIR="$ROOT/addon-images/$ADDON_KEY"
BUNDLE="$ROOT/bundle-kube-$KUBE_VERSION-multus-$MULTUS_VERSION-whereabouts-$WHEREABOUTS_VERSION-images-$IMG_KEY-addons-$ADDON_KEY.env"

dir_ok() { [[ -s $1/SHA256SUMS ]] && (cd "$1" && sha256sum --status -c SHA256SUMS); }
seal() { (cd "$1" && shift && sha256sum "$@" >SHA256SUMS.tmp && mv -f SHA256SUMS.tmp SHA256SUMS); }

write_bundle() {
  cat >"$BUNDLE.tmp" <<EOF
KUBELET=$KUBE_DIR/kubelet
KUBE_CONTROLLER_MANAGER=$KUBE_DIR/kube-controller-manager
KUBE_SCHEDULER=$KUBE_DIR/kube-scheduler
MULTUS=$MULTUS_DIR/multus
WHEREABOUTS=$WB_DIR/whereabouts
PAUSE_IMAGE_TAR=$IMG_DIR/pause.oci.tar
PAUSE_IMAGE=edgectl.local/pause:$IMG_KEY
DEMO_IMAGE_TAR=$IMG_DIR/demo.oci.tar
DEMO_IMAGE=edgectl.local/demo:$IMG_KEY
MULTUS_IMAGE_TAR=$ADDON_DIR/multus.oci.tar
MULTUS_IMAGE=edgectl.local/multus-thin:$MULTUS_VERSION-$ADDON_KEY
WHEREABOUTS_IMAGE_TAR=$ADDON_DIR/whereabouts.oci.tar
WHEREABOUTS_IMAGE=edgectl.local/whereabouts:$WHEREABOUTS_VERSION-$ADDON_KEY
CNI_PLUGINS_IMAGE_TAR=$ADDON_DIR/cni-plugins.oci.tar
CNI_PLUGINS_IMAGE=edgectl.local/cni-plugins:$ADDON_KEY
KUBE_VERSION=$KUBE_VERSION
MULTUS_VERSION=$MULTUS_VERSION
WHEREABOUTS_VERSION=$WHEREABOUTS_VERSION
EOF
  mv -f "$BUNDLE.tmp" "$BUNDLE"
}

all_ok() { dir_ok "$KUBE_DIR" && dir_ok "$MULTUS_DIR" && dir_ok "$WB_DIR" && dir_ok "$IMG_DIR" && dir_ok "$ADDON_DIR" && [[ -s $BUNDLE ]]; }

# Fast path: nothing to do.
if all_ok; then
  echo "$BUNDLE"
  exit 0
fi
if [[ ${1:-} == --check ]]; then
  log "the node bundle is not built (or its sums do not match) under $ROOT"
  exit 3
fi

command -v go >/dev/null || die "go not found on PATH"
mkdir -p "$ROOT"
exec 9>"$ROOT/.lock"
if ! flock -n 9; then
  log "another node build is running; waiting for it"
  flock 9
fi
if all_ok; then
  echo "$BUNDLE"
  exit 0
fi

GO_ROOT="$CACHE/kube-apiserver/go"
export GOPATH="$GO_ROOT/path"
export GOMODCACHE="$GO_ROOT/mod"
export GOCACHE="$GO_ROOT/build"
export GOFLAGS="-mod=mod -buildvcs=false"
export GOTOOLCHAIN=local
export CGO_ENABLED=0
export GOWORK=off
export GO111MODULE=on
mkdir -p "$GOPATH" "$GOMODCACHE" "$GOCACHE"
ncpu="$(nproc 2>/dev/null || echo 2)"
JOBS="${BUILD_JOBS:-$(( ncpu < 2 ? ncpu : 2 ))}"
export GOMAXPROCS="${GOMAXPROCS:-$JOBS}"
GO_VERSION="$(go env GOVERSION)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/node-build.XXXXXX")"
trap 'chmod -R u+w "$WORK" 2>/dev/null; rm -rf "$WORK"' EXIT

json_field() { tr ',{}' '\n\n\n' <"$2" | sed -n -E "s/^[[:space:]]*\"$1\":[[:space:]]*\"([^\"]*)\".*/\1/p" | head -n1; }
record() { # dir name seconds
  printf '%s\t%s\t%s\tjobs=%s\ttotal=%ss\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$2" "$GO_VERSION" "$JOBS" "$3" >>"$ROOT/builds.log"
}

build_kubernetes() {
  local t0=$SECONDS w="$WORK/kubernetes" out="$KUBE_DIR"
  mkdir -p "$w" "$out"
  cd "$w"
  go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" >dl.json \
    || { cat dl.json >&2; die "cannot download k8s.io/kubernetes@$KUBE_VERSION"; }
  local gomod info
  gomod="$(json_field GoMod dl.json)"
  info="$(json_field Info dl.json)"
  mapfile -t staging < <(
    sed -n -E 's#^[[:space:]]*(replace[[:space:]]+)?(k8s\.io/[^[:space:]]+)[[:space:]]+=>[[:space:]]+\./staging/.*#\2#p' "$gomod" | sort -u
  )
  (( ${#staging[@]} > 0 )) || die "found no staging replace directives in $gomod"
  local go_directive
  go_directive="$(sed -n -E 's/^go[[:space:]]+([0-9][0-9.]*)[[:space:]]*$/\1/p' "$gomod" | head -n1)"
  {
    echo "module edgectl.local/kube-node-build"
    echo
    echo "go ${go_directive:-${GO_VERSION#go}}"
    echo
    grep -E '^godebug[[:space:]]' "$gomod" || true
    echo
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo
    echo "replace ("
    for m in "${staging[@]}"; do echo "	$m => $m $STAGING_VERSION"; done
    echo ")"
  } >go.mod
  local build_date commit ldx=""
  build_date="$(json_field Time "$info")"
  commit="$(json_field Hash "$info")"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldx+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$KUBE_MINOR"
    ldx+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=${build_date:-unknown}"
    [[ -n $commit ]] && ldx+=" -X $pkg.gitCommit=$commit"
  done
  local cmds=(kubelet kube-controller-manager kube-scheduler) timings=""
  for c in "${cmds[@]}"; do
    local t=$SECONDS
    log "compiling $c $KUBE_VERSION (-p $JOBS)"
    go build -p "$JOBS" -trimpath -ldflags "-s -w$ldx" -o "$out/$c" "k8s.io/kubernetes/cmd/$c" >&2
    "$out/$c" --version >&2 || die "$c does not run"
    timings+="${c}_seconds=$(( SECONDS - t ))"$'\n'
  done
  cp go.mod "$out/wrapper.go.mod"
  printf 'kube_version=%s\ngo_version=%s\nbuild_jobs=%s\n%sbuilt_at=%s\n' \
    "$KUBE_VERSION" "$GO_VERSION" "$JOBS" "$timings" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$out/build-info.txt"
  seal "$out" "${cmds[@]}"
  record "$out" "kubernetes-$KUBE_VERSION" $(( SECONDS - t0 ))
}

# module_copy MODULE@VERSION DEST: a writable copy of a module's source (the module cache is
# read-only, and `go install` ignores a module's own replace directives).
module_copy() {
  local dl="$WORK/dl-$RANDOM.json" dir
  (cd "$WORK" && go mod download -json "$1") >"$dl" || { cat "$dl" >&2; die "cannot download $1"; }
  dir="$(json_field Dir "$dl")"
  [[ -d $dir ]] || die "go mod download gave no source dir for $1"
  cp -r "$dir" "$2"
  chmod -R u+w "$2"
}

build_multus() {
  local t0=$SECONDS src="$WORK/multus" out="$MULTUS_DIR"
  mkdir -p "$out"
  module_copy "gopkg.in/k8snetworkplumbingwg/multus-cni.v4@$MULTUS_VERSION" "$src"
  log "compiling multus $MULTUS_VERSION (thin plugin)"
  (cd "$src" && go build -p "$JOBS" -trimpath -ldflags "-s -w" -o "$out/multus" ./cmd/multus >&2)
  printf 'multus_version=%s\ngo_version=%s\ntotal_seconds=%s\n' "$MULTUS_VERSION" "$GO_VERSION" $(( SECONDS - t0 )) >"$out/build-info.txt"
  seal "$out" multus
  record "$out" "multus-$MULTUS_VERSION" $(( SECONDS - t0 ))
}

build_whereabouts() {
  local t0=$SECONDS src="$WORK/whereabouts" out="$WB_DIR"
  mkdir -p "$out"
  module_copy "github.com/k8snetworkplumbingwg/whereabouts@$WHEREABOUTS_VERSION" "$src"
  log "compiling whereabouts $WHEREABOUTS_VERSION"
  (cd "$src" && go build -p "$JOBS" -trimpath -ldflags "-s -w" -o "$out/whereabouts" ./cmd/whereabouts.go >&2)
  printf 'whereabouts_version=%s\ngo_version=%s\ntotal_seconds=%s\n' "$WHEREABOUTS_VERSION" "$GO_VERSION" $(( SECONDS - t0 )) >"$out/build-info.txt"
  seal "$out" whereabouts
  record "$out" "whereabouts-$WHEREABOUTS_VERSION" $(( SECONDS - t0 ))
}

# oci_image NAME TAG ROOTFS OUT ENTRYPOINT...: a one-layer OCI image layout as a tar, reproducible
# (fixed mtimes and owners), named by the io.containerd.image.name annotation `ctr import` reads.
oci_image() {
  local name="$1" tag="$2" rootfs="$3" out="$4"
  shift 4
  local d="$WORK/oci-$name"
  mkdir -p "$d/blobs/sha256"
  tar -C "$rootfs" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$d/layer.tar" .
  local diff_id layer_sha layer_size
  diff_id="$(sha256sum "$d/layer.tar" | cut -d' ' -f1)"
  gzip -n -9 "$d/layer.tar"
  layer_sha="$(sha256sum "$d/layer.tar.gz" | cut -d' ' -f1)"
  layer_size="$(stat -c %s "$d/layer.tar.gz")"
  mv "$d/layer.tar.gz" "$d/blobs/sha256/$layer_sha"
  local ep="" a
  for a in "$@"; do ep+="${ep:+,}\"$a\""; done
  printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":[%s],"Env":["PATH=/bin"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$ep" "$diff_id" >"$d/config.json"
  local cfg_sha cfg_size
  cfg_sha="$(sha256sum "$d/config.json" | cut -d' ' -f1)"
  cfg_size="$(stat -c %s "$d/config.json")"
  mv "$d/config.json" "$d/blobs/sha256/$cfg_sha"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
    "$cfg_sha" "$cfg_size" "$layer_sha" "$layer_size" >"$d/manifest.json"
  local man_sha man_size
  man_sha="$(sha256sum "$d/manifest.json" | cut -d' ' -f1)"
  man_size="$(stat -c %s "$d/manifest.json")"
  mv "$d/manifest.json" "$d/blobs/sha256/$man_sha"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"%s:%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$man_sha" "$man_size" "$name" "$tag" "$tag" >"$d/index.json"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$d/oci-layout"
  tar -C "$d" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$out" oci-layout index.json blobs
}

build_images() {
  local t0=$SECONDS out="$IMG_DIR"
  mkdir -p "$out"
  local img
  for img in pause demo; do
    local src="$WORK/img-src-$img" rootfs="$WORK/rootfs-$img"
    cp -r "$HERE/images/$img" "$src"
    mkdir -p "$rootfs/bin"
    (cd "$src" && go build -trimpath -ldflags "-s -w" -o "$rootfs/bin/$img" . >&2)
    oci_image "edgectl.local/$img" "$IMG_KEY" "$rootfs" "$out/$img.oci.tar" "/bin/$img"
  done
  printf 'images_key=%s\ngo_version=%s\ntotal_seconds=%s\n' "$IMG_KEY" "$GO_VERSION" $(( SECONDS - t0 )) >"$out/build-info.txt"
  seal "$out" pause.oci.tar demo.oci.tar
}

# busybox_into ROOTFS: Debian's static busybox as /bin/sh and the other applets the install
# scripts call (the upstream images are alpine or distroless; these carry only what runs).
busybox_into() {
  local bb
  bb="$(command -v busybox)" || die "busybox not found (Debian: busybox-static; lab/kube-apiserver/install-deps.sh)"
  mkdir -p "$1/bin"
  cp "$bb" "$1/bin/busybox"
  local a
  for a in $("$bb" --list); do [[ $a == busybox ]] || ln -sf busybox "$1/bin/$a"; done
}

build_addon_images() {
  local t0=$SECONDS out="$ADDON_DIR"
  mkdir -p "$out"
  # Multus (thin): thin_entrypoint installs the multus binary and writes the autoconfig, both from
  # the Multus module at the version the node's CNI bin dir gets; paths as in the upstream image.
  local msrc="$WORK/multus-img-src" mroot="$WORK/rootfs-multus"
  module_copy "gopkg.in/k8snetworkplumbingwg/multus-cni.v4@$MULTUS_VERSION" "$msrc"
  patch -p1 -d "$msrc" --forward <"$HERE/images/addons/multus-thin-entrypoint-host.patch" >&2 \
    || die "the thin_entrypoint patch does not apply to Multus $MULTUS_VERSION (lab/node/images/addons)"
  mkdir -p "$mroot/usr/src/multus-cni/bin"
  log "compiling multus thin_entrypoint $MULTUS_VERSION"
  (cd "$msrc" && go build -p "$JOBS" -trimpath -ldflags "-s -w" -o "$mroot/thin_entrypoint" ./cmd/thin_entrypoint >&2)
  cp "$MULTUS_DIR/multus" "$mroot/usr/src/multus-cni/bin/multus"
  oci_image edgectl.local/multus-thin "$MULTUS_VERSION-$ADDON_KEY" "$mroot" "$out/multus.oci.tar" /thin_entrypoint
  # Whereabouts: the CNI binary, ip-control-loop (the pod controller and the cron reconciler) and
  # the module's install scripts, laid out as in the upstream image.
  local wsrc="$WORK/whereabouts-img-src" wroot="$WORK/rootfs-whereabouts"
  module_copy "github.com/k8snetworkplumbingwg/whereabouts@$WHEREABOUTS_VERSION" "$wsrc"
  busybox_into "$wroot"
  log "compiling whereabouts ip-control-loop $WHEREABOUTS_VERSION"
  (cd "$wsrc" && go build -p "$JOBS" -trimpath -ldflags "-s -w" -o "$wroot/ip-control-loop" ./cmd/controlloop >&2)
  cp "$WB_DIR/whereabouts" "$wroot/whereabouts"
  local s
  for s in install-cni.sh lib.sh token-watcher.sh; do install -m 0755 "$wsrc/script/$s" "$wroot/$s"; done
  oci_image edgectl.local/whereabouts "$WHEREABOUTS_VERSION-$ADDON_KEY" "$wroot" "$out/whereabouts.oci.tar" /install-cni.sh
  # The reference CNI plugins: Debian's, and an installer that honours SKIP_CNI_BINARIES.
  local croot="$WORK/rootfs-cni-plugins"
  busybox_into "$croot"
  mkdir -p "$croot/opt/cni/bin"
  cp /usr/lib/cni/* "$croot/opt/cni/bin/"
  install -m 0755 "$HERE/images/addons/install-cni-plugins.sh" "$croot/install-cni-plugins.sh"
  oci_image edgectl.local/cni-plugins "$ADDON_KEY" "$croot" "$out/cni-plugins.oci.tar" /install-cni-plugins.sh
  printf 'addon_key=%s\nmultus_version=%s\nwhereabouts_version=%s\ngo_version=%s\ntotal_seconds=%s\n' \
    "$ADDON_KEY" "$MULTUS_VERSION" "$WHEREABOUTS_VERSION" "$GO_VERSION" $(( SECONDS - t0 )) >"$out/build-info.txt"
  seal "$out" multus.oci.tar whereabouts.oci.tar cni-plugins.oci.tar
  record "$out" "addon-images-$ADDON_KEY" $(( SECONDS - t0 ))
}

t_all=$SECONDS
log "building the real-node bundle into $ROOT with $GO_VERSION (-p $JOBS)"
dir_ok "$IMG_DIR" || build_images
dir_ok "$MULTUS_DIR" || build_multus
dir_ok "$WB_DIR" || build_whereabouts
dir_ok "$ADDON_DIR" || build_addon_images
dir_ok "$KUBE_DIR" || build_kubernetes
write_bundle
log "done in $(( SECONDS - t_all ))s: $BUNDLE"
echo "$BUNDLE"
