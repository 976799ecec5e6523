#!/usr/bin/env bash
# Builds kube-apiserver and kube-controller-manager from the Go module k8s.io/kubernetes, as
# pinned by the module in MODULE_DIR (go.mod and go.sum: one folder per minor version beside
# this script), into DEST.
#
#   build.sh MODULE_DIR DEST
#
# Modules come from the Go module proxy into a cache of syncer's own (not the user's GOPATH),
# checked against go.sum; -mod=readonly refuses a go.mod that would need changing. The version
# stamped into the binaries (what /version serves) is the k8s.io/kubernetes version in go.mod,
# as Kubernetes' own hack/lib/version.sh stamps it. Progress goes to stderr, one line per 10%.
set -euo pipefail

MODULE_DIR="$(cd "$1" && pwd)"
DEST="$2"
WORK="${SYNCER_BUILD_DIR:-$HOME/.cache/syncer/build}"
log() { echo "[build-control-plane] $*" >&2; }

# The machine's `go env -w` settings are not the build's: read no configuration file, and say
# what the build needs here. Go 1.26 or newer is needed (go.mod says which); GOTOOLCHAIN from
# the environment is honoured, so a go.mod that names a newer Go can be built with it.
export GOENV=off
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
export GOFLAGS="-mod=readonly -modcacherw -buildvcs=false -trimpath"
export GOMODCACHE="$WORK/go/mod" GOCACHE="$WORK/go/cache" GOPATH="$WORK/go/path"
export CGO_ENABLED=0
export GOPROXY="${GOPROXY:-https://proxy.golang.org,direct}"
mkdir -p "$GOMODCACHE" "$GOCACHE" "$GOPATH" "$DEST"
JOBS="${SYNCER_BUILD_JOBS:-$(nproc)}"
export GOMAXPROCS="${GOMAXPROCS:-$JOBS}"
# Yield the CPU and the disk to everything else on the machine: the build is long and runs
# beside tests.
NICE=()
command -v nice >/dev/null && NICE+=(nice -n 19)
command -v ionice >/dev/null && NICE+=(ionice -c3)

cd "$MODULE_DIR"
version="$(go list -m -f '{{.Version}}' k8s.io/kubernetes)"
log "$(go version); k8s.io/kubernetes $version; $JOBS jobs"

log "downloading modules"
"${NICE[@]}" go mod download

pkgs=(k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager)
total="$(go list -deps "${pkgs[@]}" | wc -l)"
minor="${version#v1.}"
minor="${minor%%.*}"
ldflags=()
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  ldflags+=(
    "-X" "$pkg.gitVersion=$version" "-X" "$pkg.gitMajor=1" "-X" "$pkg.gitMinor=$minor"
    "-X" "$pkg.gitTreeState=clean" "-X" "$pkg.buildDate=1970-01-01T00:00:00Z"
  )
done
log "building ${pkgs[*]##*/} ($total packages; about 20 minutes on 2 cores when nothing is cached)"
# Into a folder beside DEST first, so that DEST never holds a half-written binary.
out="$(mktemp -d "$DEST/.build.XXXXXX")"
trap 'rm -rf "$out"' EXIT
# `go build -v` names each package as it compiles it; the count is the progress.
"${NICE[@]}" go build -p "$JOBS" -v -ldflags="-s -w ${ldflags[*]}" -o "$out/" "${pkgs[@]}" 2>&1 \
  | awk -v total="$total" -v logfile="$WORK/build-$version.log" '
      { print > logfile; n++ }
      n * 10 >= (step + 1) * total && step < 9 {
        step++
        printf "[build-control-plane] %d%% (%d of %d packages)\n", step * 10, n, total > "/dev/stderr"
        fflush("/dev/stderr")
      }
    '
status=("${PIPESTATUS[@]}")
if [[ ${status[0]} -ne 0 ]]; then
  tail -n 40 "$WORK/build-$version.log" >&2
  log "build failed; full log in $WORK/build-$version.log"
  exit 1
fi
"$out/kube-apiserver" --version >&2
mv "$out"/kube-apiserver "$out"/kube-controller-manager "$DEST/"
log "built into $DEST"
