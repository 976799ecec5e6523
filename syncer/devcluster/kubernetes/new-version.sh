#!/usr/bin/env bash
# Makes the Go module that pins a Kubernetes release, v1.N/go.mod and go.sum beside this
# script, for build.sh to build; a maintainer runs it once per release and commits the result.
#
#   new-version.sh 1.N.x
#
# k8s.io/kubernetes requires its staging modules (k8s.io/api, k8s.io/apiserver, ...) at
# v0.0.0 and replaces each with a folder of its own repository, which a module that requires
# it cannot see; the module made here replaces each with the published v0.N.x instead. The
# list of staging modules is read from k8s.io/kubernetes's own go.mod, so it follows releases.
# `go mod tidy` then resolves and pins everything (go.sum), which is the cheap check that
# a release builds at all.
set -euo pipefail

version="${1:?usage: new-version.sh 1.N.x}"
version="${version#v}"
[[ "$version" =~ ^1\.([0-9]+)\.([0-9]+)$ ]] || { echo "not a version 1.N.x: $version" >&2; exit 2; }
minor="${BASH_REMATCH[1]}"
staging_version="v0.$minor.${BASH_REMATCH[2]}"
dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/v1.$minor"

export GOENV=off GOTOOLCHAIN="${GOTOOLCHAIN:-local}" GOFLAGS="-mod=mod -modcacherw"
export GOMODCACHE="${SYNCER_BUILD_DIR:-$HOME/.cache/syncer/build}/go/mod"
export GOPROXY="${GOPROXY:-https://proxy.golang.org,direct}"

kube_mod="$(go mod download -json "k8s.io/kubernetes@v$version" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')"
go_directive="$(awk '$1 == "go" { print $2; exit }' "$kube_mod")"
staging="$(awk '/^replace \(/ { inside = 1; next } inside && /^\)/ { inside = 0 }
                inside && $3 ~ /^\.\/staging\// { print $1 }' "$kube_mod")"
[[ -n "$staging" ]] || { echo "$kube_mod: no staging modules replaced" >&2; exit 1; }

mkdir -p "$dir"
{
  echo "// The control plane of Kubernetes v$version, built from the Go module k8s.io/kubernetes."
  echo "// k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with folders of"
  echo "// its own repository; a module that requires it replaces each with its published v0.N.x."
  echo "// Made by ../new-version.sh; built by ../build.sh."
  echo "module syncer.local/control-plane"
  echo
  echo "go $go_directive"
  echo
  echo "tool ("
  echo "	k8s.io/kubernetes/cmd/kube-apiserver"
  echo "	k8s.io/kubernetes/cmd/kube-controller-manager"
  echo ")"
  echo
  echo "require k8s.io/kubernetes v$version"
  echo
  echo "replace ("
  for module in $staging; do echo "	$module => $module $staging_version"; done
  echo ")"
} > "$dir/go.mod"
rm -f "$dir/go.sum"
(cd "$dir" && go mod tidy)
echo "$dir: k8s.io/kubernetes v$version, go $go_directive" >&2
