#!/usr/bin/env bash
# Installs Prometheus from Debian's "prometheus" package unless a prometheus
# binary is already on PATH. Idempotent; needs root (or sudo) on a Debian or
# Ubuntu machine. Used by the scrape test in test/prometheus.
#
# The package's maintainer scripts would start a Prometheus daemon listening
# on every interface; a policy-rc.d that forbids service starts is put in
# place for the install (unless one already exists), so nothing is started.
set -euo pipefail
. "$(dirname "$0")/lib/debian-package.sh"

if command -v prometheus >/dev/null 2>&1; then
  exit 0
fi

debian_sudo install-prometheus prometheus
POLICY=/usr/sbin/policy-rc.d
created_policy=false
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
  "${SUDO[@]}" chmod 0755 "$POLICY"
  created_policy=true
fi
cleanup() {
  if [ "$created_policy" = true ]; then
    "${SUDO[@]}" rm -f "$POLICY"
  fi
}
trap cleanup EXIT

install_debian_package install-prometheus prometheus
command -v prometheus >/dev/null
prometheus --version 2>&1 | head -n 1
