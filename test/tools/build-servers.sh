#!/usr/bin/env bash
# Builds the real servers the end-to-end tests run (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, and Karmada's control plane) from
# Go modules, into a cache outside the repository keyed by version:
#
#   $TESSERA_CACHE (default $HOME/.cache/tessera)/servers/<component>-<version>/bin/
#
# A component is rebuilt only when its directory lacks the .complete marker,
# so a finished build is reused. A lock per component serialises concurrent
# builds of it; a finished component is reused without taking the lock.
#
# Usage: test/tools/build-servers.sh [kubernetes|etcd|karmada|all]...
# Prints, on stdout, KEY=DIR lines that callers can eval (ETCD_BIN=..., and so on;
# KARMADA_CRDS names a directory of Karmada's CustomResourceDefinitions).
set -euo pipefail

KUBERNETES_VERSION=v1.35.4   # the module proxy serves k8s.io/kubernetes only at a few versions
STAGING_VERSION=v0.35.4      # the published twin of each ./staging module
ETCD_VERSION=v3.6.5          # what k8s.io/kubernetes v1.35.4 requires
KARMADA_VERSION=v1.18.0
GO_TAGS=kubernetes_protomessage_one_more_release

CACHE=${TESSERA_CACHE:-$HOME/.cache/tessera}/servers
export GOTOOLCHAIN=local GONOSUMDB=github.com/karmada-io/karmada GOFLAGS=-mod=mod

started=$SECONDS
log() { printf '[build-servers +%4ds] %s\n' "$((SECONDS - started))" "$*" >&2; }

# lock NAME holds $CACHE/.lock-NAME (on fd 9) until unlock or exit, so two
# test runs never build one component into the same directory at once. The
# lock is per component: a test that needs only etcd and Kubernetes does not
# wait for someone else's Karmada build.
lock() {
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock-$1"
  if ! flock -n 9; then
    log "$1: another build holds $CACHE/.lock-$1; waiting for it"
    flock 9
  fi
}
unlock() { exec 9>&-; }

# wrapper_module DIR MODULE@VERSION creates a throwaway module in DIR that
# requires MODULE at exactly VERSION.
wrapper_module() {
  local dir=$1 require=$2
  mkdir -p "$dir"
  [ -f "$dir/go.mod" ] || (cd "$dir" && go mod init tessera.invalid/servers >/dev/null 2>&1)
  (cd "$dir" && go mod edit -require="$require")
}

build_kubernetes() {
  local out=$CACHE/kubernetes-$KUBERNETES_VERSION
  [ -f "$out/.complete" ] && { log "kubernetes $KUBERNETES_VERSION: cached in $out"; return; }
  lock kubernetes
  [ -f "$out/.complete" ] && { unlock; log "kubernetes $KUBERNETES_VERSION: built by another run in $out"; return; }
  local src=$out/src
  wrapper_module "$src" "k8s.io/kubernetes@$KUBERNETES_VERSION"
  # k8s.io/kubernetes replaces every ./staging module with a path that only
  # exists in its git tree; point each at its published twin instead.
  local gomod
  gomod=$(cd "$src" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  local mod
  for mod in $(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod"); do
    (cd "$src" && go mod edit -replace="$mod=$mod@$STAGING_VERSION")
  done
  local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION"
  ldflags+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=35"
  local bin
  for bin in kube-apiserver kube-controller-manager kube-scheduler; do
    log "kubernetes $KUBERNETES_VERSION: building $bin (minutes on a cold cache)"
    (cd "$src" && go build -tags "$GO_TAGS" -ldflags "$ldflags" -o "$out/bin/$bin" "k8s.io/kubernetes/cmd/$bin")
  done
  touch "$out/.complete"
  unlock
  log "kubernetes $KUBERNETES_VERSION: done"
}

build_etcd() {
  local out=$CACHE/etcd-$ETCD_VERSION
  [ -f "$out/.complete" ] && { log "etcd $ETCD_VERSION: cached in $out"; return; }
  lock etcd
  [ -f "$out/.complete" ] && { unlock; log "etcd $ETCD_VERSION: built by another run in $out"; return; }
  local src=$out/src
  wrapper_module "$src" "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  cat >"$src/main.go" <<'GO'
// Command etcd is etcd's own entry point, built from the server module.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  log "etcd $ETCD_VERSION: building"
  (cd "$src" && go build -ldflags "-s -w" -o "$out/bin/etcd" .)
  touch "$out/.complete"
  unlock
  log "etcd $ETCD_VERSION: done"
}

build_karmada() {
  local out=$CACHE/karmada-$KARMADA_VERSION
  local src=$out/src
  if [ -f "$out/.complete" ] && [ -f "$out/crds/.complete" ]; then
    log "karmada $KARMADA_VERSION: cached in $out"
    return
  fi
  lock karmada
  if [ ! -f "$out/.complete" ]; then
    wrapper_module "$src" "github.com/karmada-io/karmada@$KARMADA_VERSION"
    local cmd
    for cmd in aggregated-apiserver controller-manager scheduler; do
      log "karmada $KARMADA_VERSION: building karmada-$cmd (3-4 minutes each on a cold cache)"
      (cd "$src" && go build -tags "$GO_TAGS" -ldflags "-s -w" -o "$out/bin/karmada-$cmd" \
        "github.com/karmada-io/karmada/cmd/$cmd")
    done
    touch "$out/.complete"
    log "karmada $KARMADA_VERSION: done"
  fi
  copy_karmada_crds "$out" "$src"
  unlock
}

# copy_karmada_crds OUT SRC copies Karmada's CRDs (the chart's bases, without
# the kustomize patches that add conversion webhooks) into OUT/crds, so that
# tests install exactly the version they run. It has its own marker because
# caches completed before it existed lack the directory.
copy_karmada_crds() {
  local out=$1 src=$2
  [ -f "$out/crds/.complete" ] && return
  wrapper_module "$src" "github.com/karmada-io/karmada@$KARMADA_VERSION"
  local dir
  dir=$(cd "$src" && go mod download -json "github.com/karmada-io/karmada@$KARMADA_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  [ -d "$dir/charts/karmada/_crds/bases" ] || { log "karmada $KARMADA_VERSION: no CRDs under $dir/charts/karmada/_crds/bases"; exit 1; }
  rm -rf "$out/crds"
  mkdir -p "$out/crds"
  cp "$dir"/charts/karmada/_crds/bases/*/*.yaml "$out/crds/"
  chmod u+w "$out"/crds/*.yaml
  touch "$out/crds/.complete"
  log "karmada $KARMADA_VERSION: CRDs copied to $out/crds"
}

build() {
  local what
  for what in "$@"; do
    case $what in
      kubernetes) build_kubernetes ;;
      etcd) build_etcd ;;
      karmada) build_karmada ;;
      all) build_etcd; build_kubernetes; build_karmada ;;
      *) echo "build-servers: unknown component $what (want kubernetes, etcd, karmada or all)" >&2; exit 2 ;;
    esac
  done
}

[ $# -gt 0 ] || set -- all
build "$@"
echo "ETCD_BIN=$CACHE/etcd-$ETCD_VERSION/bin"
echo "KUBERNETES_BIN=$CACHE/kubernetes-$KUBERNETES_VERSION/bin"
echo "KARMADA_BIN=$CACHE/karmada-$KARMADA_VERSION/bin"
echo "KARMADA_CRDS=$CACHE/karmada-$KARMADA_VERSION/crds"
