#!/usr/bin/env bash
# Builds a command-line tool that syncer runs (helm, ...) from the Go module pinned in
# tools/NAME (go.mod and go.sum; tools.go imports the command's main package), and prints the
# path of the binary on stdout. Cached per version in ~/.cache/syncer/tools/NAME-VERSION/, so a
# second call is instant.
#
#   tools/build.sh NAME            e.g. tools/build.sh helm
#
# Modules come from the Go module proxy into syncer's own build cache (shared with the
# control plane build), checked against go.sum; -mod=readonly refuses a go.mod that would
# need changing. Progress goes to stderr.
set -euo pipefail

name="${1:?usage: tools/build.sh NAME}"
MODULE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/$name" 2>/dev/null && pwd)" || {
  echo "[build-tool] unknown tool $name; known: $(cd "$(dirname "${BASH_SOURCE[0]}")" && ls -d */ | tr -d / | paste -sd' ')" >&2
  exit 2
}
WORK="${SYNCER_BUILD_DIR:-$HOME/.cache/syncer/build}"
log() { echo "[build-tool] $*" >&2; }

export GOENV=off
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
export GOFLAGS="-mod=readonly -modcacherw -buildvcs=false -trimpath"
export GOMODCACHE="$WORK/go/mod" GOCACHE="$WORK/go/cache" GOPATH="$WORK/go/path"
export CGO_ENABLED=0
export GOPROXY="${GOPROXY:-https://proxy.golang.org,direct}"

cd "$MODULE_DIR"
# The one import of tools.go is the command's main package; its module's version names the build.
pkg="$(sed -n 's/^import _ "\(.*\)"$/\1/p' tools.go)"
module="$(sed -n 's/^require \([^ ]*\) v.*/\1/p; /^require (/,/^)/ { /indirect/! s/^\t\([^ ]*\) v.*/\1/p }' go.mod | sed -n 1p)"
[[ -n "$pkg" && -n "$module" ]] || { log "$MODULE_DIR: tools.go or go.mod does not name a command"; exit 2; }
command -v go >/dev/null || { log "go: not found; $name is built with Go 1.26 or newer from the Go module proxy"; exit 1; }
version="$(go list -m -f '{{.Version}}' "$module")"
DEST="${SYNCER_TOOLS_DIR:-$HOME/.cache/syncer/tools}/$name-$version"
if [[ -x "$DEST/$name" ]]; then
  echo "$DEST/$name"
  exit 0
fi
mkdir -p "$GOMODCACHE" "$GOCACHE" "$GOPATH" "$DEST"
NICE=()
command -v nice >/dev/null && NICE+=(nice -n 19)
log "building $name $version ($pkg) with $(go version | cut -d' ' -f3)"
out="$(mktemp -d "$DEST/.build.XXXXXX")"
trap 'rm -rf "$out"' EXIT
# The version helm (and tools built alike) reports is stamped by its own Makefile; stamp the
# module's version the same way so `helm version` tells the truth.
ldflags="-s -w"
if [[ "$module" == helm.sh/helm/v3 ]]; then
  ldflags+=" -X helm.sh/helm/v3/internal/version.version=$version"
fi
started=$SECONDS
"${NICE[@]}" go build -ldflags="$ldflags" -o "$out/$name" "$pkg"
mv "$out/$name" "$DEST/$name"
log "built $DEST/$name in $((SECONDS - started)) s"
echo "$DEST/$name"
