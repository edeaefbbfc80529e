#!/bin/sh
# The lab's stand-in for the cni-plugins image's entrypoint (templates/site/multus.yaml runs it as an
# init container): copy the reference CNI plugins this image carries into the node's CNI bin dir,
# except those named in SKIP_CNI_BINARIES (k3s links its own). Each copy lands under a temporary
# name and is renamed over the old one, so a plugin a runtime is executing is never half written.
set -eu
SRC=/opt/cni/bin
DEST="${CNI_BIN_DIR:-/host/opt/cni/bin}"
skip=",${SKIP_CNI_BINARIES:-},"
for f in "$SRC"/*; do
  name="${f##*/}"
  case "$skip" in *",$name,"*) continue ;; esac
  cp "$f" "$DEST/.$name.tmp"
  mv -f "$DEST/.$name.tmp" "$DEST/$name"
  echo "installed $name"
done
