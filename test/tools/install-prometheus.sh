#!/usr/bin/env bash
# Installs Prometheus from Debian's "prometheus" package unless a prometheus
# binary is already on PATH. Idempotent; needs root (or sudo) on a Debian or
# Ubuntu machine. Used by the scrape test in test/prometheus.
#
# The package's maintainer scripts would start a Prometheus daemon listening
# on every interface; a policy-rc.d that forbids service starts is put in
# place for the install (unless one already exists), so nothing is started.
set -euo pipefail

if command -v prometheus >/dev/null 2>&1; then
  exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "install-prometheus: not root and no sudo; install Debian's prometheus package by hand" >&2
    exit 1
  fi
  SUDO=(sudo)
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-prometheus: no apt-get; install Prometheus by hand (any 2.x or 3.x)" >&2
  exit 1
fi

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

export DEBIAN_FRONTEND=noninteractive
# The package lists of a fresh machine are empty: look the package up only
# after an update.
"${SUDO[@]}" apt-get update -qq
# (Captured first: grep -q closing the pipe early would fail it under pipefail.)
candidate=$(LC_ALL=C apt-cache policy prometheus | sed -n 's/^ *Candidate: //p')
if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
  echo "install-prometheus: Debian's package lists have no prometheus package" >&2
  exit 1
fi
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends prometheus >/dev/null
command -v prometheus >/dev/null
prometheus --version 2>&1 | head -n 1
