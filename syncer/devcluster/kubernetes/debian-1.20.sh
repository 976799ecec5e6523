#!/usr/bin/env bash
# Installs Kubernetes 1.20.2, the oldest supported version, into one folder (etcd,
# kube-apiserver, kube-controller-manager): run by ../install-control-plane.sh
# --kubernetes-version 1.20.
#
#   debian-1.20.sh [DEST]      (default: ~/.cache/syncer/control-plane/v1.20.2)
#
# etcd comes from Debian's etcd-server package. kube-apiserver and kube-controller-manager are
# built from Debian's `kubernetes` source package (1.20.2, with vendor/) using Go 1.15 from
# Debian bullseye: built with a newer Go the apiserver segfaults serving custom resources
# (its vendored reflect2 predates Go 1.18). The build takes ~5 minutes on 2 cores and runs
# once: a DEST that already holds all three binaries is left as it is.
set -euo pipefail

K8S_VERSION=1.20.2
DEST="${1:-${SYNCER_CONTROL_PLANE_DIR:-$HOME/.cache/syncer/control-plane/v$K8S_VERSION}}"
WORK="${SYNCER_BUILD_DIR:-$HOME/.cache/syncer/build}"

have_all() {
  [[ -x "$DEST/etcd" && -x "$DEST/kube-apiserver" && -x "$DEST/kube-controller-manager" ]]
}
if have_all; then
  echo "control plane binaries already in $DEST"
  exit 0
fi

log() { echo "[install-control-plane] $*" >&2; }
# shellcheck source=../private-apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/../private-apt.sh"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

export DEBIAN_FRONTEND=noninteractive
need_pkgs=()
for pkg in etcd-server rsync jq dpkg-dev make; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_pkgs+=("$pkg")
done
if ((${#need_pkgs[@]})); then
  log "installing Debian packages: ${need_pkgs[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

mkdir -p "$WORK" "$DEST"
# bookworm's source packages and bullseye's Go 1.15.
private_apt "$WORK/apt" \
  "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main" \
  "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bullseye main"
log "updating the private apt lists"
apt-get "${APT_OPTS[@]}" update -qq

SRC="$WORK/kubernetes-$K8S_VERSION"
if [[ ! -f "$SRC/Makefile" ]]; then
  log "fetching Debian's kubernetes source package"
  rm -rf "$WORK/src" && mkdir -p "$WORK/src"
  (cd "$WORK/src" && apt-get "${APT_OPTS[@]}" source --download-only kubernetes >/dev/null)
  dsc=$(ls "$WORK"/src/kubernetes_*.dsc | sed -n 1p)
  rm -rf "$SRC"
  dpkg-source --no-check --skip-patches -x "$dsc" "$SRC" >/dev/null
fi

GOROOT_DIR="$WORK/go1.15"
if [[ ! -x "$GOROOT_DIR/usr/lib/go-1.15/bin/go" ]]; then
  log "fetching Go 1.15 from Debian bullseye"
  rm -rf "$WORK/debs" "$GOROOT_DIR" && mkdir -p "$WORK/debs" "$GOROOT_DIR"
  (cd "$WORK/debs" && apt-get "${APT_OPTS[@]}" download golang-1.15-go golang-1.15-src >/dev/null)
  for deb in "$WORK"/debs/*.deb; do dpkg -x "$deb" "$GOROOT_DIR"; done
fi
export GOROOT="$GOROOT_DIR/usr/lib/go-1.15"
export PATH="$GOROOT/bin:$PATH"
export GOPATH="$SRC/.go" GO111MODULE=off CGO_ENABLED=0 GOFLAGS=""
# A machine's own Go settings (`go env -w`, e.g. GOFLAGS=-buildvcs=false for a newer Go) are
# not for Go 1.15, which refuses flags it does not know: read no configuration file.
export GOENV=off
export GOCACHE="$WORK/gocache"
mkdir -p "$GOPATH/src/k8s.io"
ln -sfn "$SRC" "$GOPATH/src/k8s.io/kubernetes"

log "building kube-apiserver and kube-controller-manager with $(go version) (about 5 minutes)"
(cd "$GOPATH/src/k8s.io/kubernetes" \
  && KUBE_GIT_VERSION="v$K8S_VERSION" KUBE_GIT_TREE_STATE=clean \
     make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >"$WORK/build.log" 2>&1) || {
  tail -n 40 "$WORK/build.log" >&2
  log "build failed; full log in $WORK/build.log"
  exit 1
}
out="$SRC/_output/local/bin/linux/amd64"
[[ -d "$out" ]] || out="$SRC/_output/bin"
install -m 0755 "$out/kube-apiserver" "$out/kube-controller-manager" "$DEST/"
ln -sfn "$(command -v etcd || echo /usr/bin/etcd)" "$DEST/etcd"
have_all
log "control plane binaries installed in $DEST"
