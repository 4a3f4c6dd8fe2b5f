#!/usr/bin/env bash
# Installs Debian's "chromium" package unless a chromium binary is already
# on PATH, then prints its version. Idempotent; needs root (or sudo) on a
# Debian or Ubuntu machine. Used by the fleet page's browser tests
# (pkg/fleetweb, test/e2e), which drive headless Chromium with chromedp.
#
# Debian's package, not a downloaded Chrome: the tests must run on machines
# that reach only the distribution's mirror, and Debian's build has no
# auto-update or first-run services to start.
set -euo pipefail

version() {
  # stderr dropped: the launcher script of some Debian builds prints a
  # harmless shell warning. (Captured first: head closing the pipe early
  # would fail it under pipefail.)
  local out
  out=$(chromium --version 2>/dev/null || true)
  printf '%s\n' "$out" | head -n 1
}

if command -v chromium >/dev/null 2>&1; then
  version
  exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "install-chromium: not root and no sudo; install Debian's chromium package by hand" >&2
    exit 1
  fi
  SUDO=(sudo)
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-chromium: no apt-get; install Chromium by hand and put a 'chromium' binary on PATH" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# The package lists of a fresh machine are empty: look the package up only
# after an update.
"${SUDO[@]}" apt-get update -qq
candidate=$(LC_ALL=C apt-cache policy chromium | sed -n 's/^ *Candidate: //p')
if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
  echo "install-chromium: Debian's package lists have no chromium package" >&2
  exit 1
fi
# Recommends pull in desktop integration and extra fonts the headless
# tests do not need; fonts-liberation gives text a real sans-serif face.
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
command -v chromium >/dev/null
version
