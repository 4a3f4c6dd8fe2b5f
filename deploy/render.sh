#!/usr/bin/env bash
# Renders the plain manifests under deploy/manifests from the Helm chart in
# deploy/helm/tessera with Helm's Go library (deploy/render): no helm binary
# is needed. Run it after any change to the chart; the chart tests fail while
# a committed manifest differs from a fresh render.
#
# Usage: deploy/render.sh          rewrite deploy/manifests/*.yaml
#        deploy/render.sh --check  only check that they are up to date
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local GONOSUMDB=github.com/karmada-io/karmada
exec go run -tags kubernetes_protomessage_one_more_release ./deploy/render -deploy-dir deploy "$@"
