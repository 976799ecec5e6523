#!/usr/bin/env bash
# Installs the binaries of a local Kubernetes control plane (etcd, kube-apiserver,
# kube-controller-manager) into one folder, the envtest "KUBEBUILDER_ASSETS" layout.
#
#   install-control-plane.sh [--kubernetes-version 1.N] [DEST]
#   install-control-plane.sh --list          (the known minor versions, newest first)
#
# Known versions: each folder kubernetes/v1.N beside this script holds a Go module pinning
# k8s.io/kubernetes v1.N.x (go.mod, go.sum), built by kubernetes/build.sh with the machine's
# Go and the Go module proxy; etcd is Debian trixie's etcd-server 3.5, unpacked from its
# package (fetched with a private apt list, the machine's sources untouched). 1.20 is the
# oldest supported: built from Debian's source package by kubernetes/debian-1.20.sh.
# The default is $SYNCER_KUBERNETES_VERSION, else the newest known version. DEST defaults to
# $SYNCER_CONTROL_PLANE_DIR, else ~/.cache/syncer/control-plane/v1.N.x; a DEST that already
# holds all three binaries is left as it is.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LEGACY_MINOR=1.20
log() { echo "[install-control-plane] $*" >&2; }
# shellcheck source=private-apt.sh
source "$HERE/private-apt.sh"

known_minors() {
  local dir
  for dir in "$HERE"/kubernetes/v1.*/; do
    [[ -f "$dir/go.mod" ]] && basename "$dir" | sed 's/^v//'
  done | sort -t. -k2,2nr
  echo "$LEGACY_MINOR"
}

# The k8s.io/kubernetes version a module folder pins, without the "v".
pinned_version() {
  awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v1\./ { sub(/^v/, "", $2); print $2; exit }
       $1 == "require" && $2 == "k8s.io/kubernetes" { sub(/^v/, "", $3); print $3; exit }' \
    "$HERE/kubernetes/v$1/go.mod"
}

minor=""
dest=""
while (($#)); do
  case "$1" in
    --kubernetes-version) (($# >= 2)) || { log "--kubernetes-version needs a value"; exit 2; }
      minor="$2"; shift 2 ;;
    --kubernetes-version=*) minor="${1#*=}"; shift ;;
    --list) known_minors; exit 0 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    -*) log "unknown option $1"; exit 2 ;;
    *) dest="$1"; shift ;;
  esac
done
minor="${minor:-${SYNCER_KUBERNETES_VERSION:-}}"
minor="${minor#v}"
[[ -n "$minor" ]] || minor="$(known_minors | sed -n 1p)"
# A patch version names its minor: 1.37.2 -> 1.37.
if [[ "$minor" =~ ^([0-9]+\.[0-9]+)\.[0-9]+$ ]]; then minor="${BASH_REMATCH[1]}"; fi

if [[ "$minor" == "$LEGACY_MINOR" ]]; then
  exec bash "$HERE/kubernetes/debian-1.20.sh" ${dest:+"$dest"}
fi
if [[ ! -f "$HERE/kubernetes/v$minor/go.mod" ]]; then
  log "unknown Kubernetes version $minor; known: $(known_minors | paste -sd' ')"
  exit 2
fi

version="$(pinned_version "$minor")"
DEST="${dest:-${SYNCER_CONTROL_PLANE_DIR:-$HOME/.cache/syncer/control-plane/v$version}}"
WORK="${SYNCER_BUILD_DIR:-$HOME/.cache/syncer/build}"
export SYNCER_BUILD_DIR="$WORK"

have_all() {
  [[ -x "$DEST/etcd" && -x "$DEST/kube-apiserver" && -x "$DEST/kube-controller-manager" ]]
}
if have_all; then
  echo "control plane binaries of Kubernetes $version already in $DEST"
  exit 0
fi
mkdir -p "$WORK" "$DEST"

command -v go >/dev/null || {
  log "go: not found; Kubernetes $version is built with Go 1.26 or newer from the Go module proxy"
  exit 1
}

if [[ ! -x "$DEST/etcd" ]]; then
  mkdir -p "$WORK/debs-trixie"
  # trixie's etcd-server is 3.5; bookworm's is 3.4.
  private_apt "$WORK/apt-trixie" \
    "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main"
  log "fetching etcd-server from Debian trixie"
  apt-get "${APT_OPTS[@]}" update -qq
  rm -rf "$WORK/debs-trixie" && mkdir -p "$WORK/debs-trixie"
  (cd "$WORK/debs-trixie" && apt-get "${APT_OPTS[@]}" download etcd-server >/dev/null)
  dpkg -x "$WORK"/debs-trixie/etcd-server_*.deb "$WORK/debs-trixie/root"
  install -m 0755 "$WORK/debs-trixie/root/usr/bin/etcd" "$DEST/etcd"
  "$DEST/etcd" --version | sed -n 1p >&2
fi

if [[ ! -x "$DEST/kube-apiserver" || ! -x "$DEST/kube-controller-manager" ]]; then
  bash "$HERE/kubernetes/build.sh" "$HERE/kubernetes/v$minor" "$DEST"
fi
have_all
log "control plane binaries of Kubernetes $version installed in $DEST"
