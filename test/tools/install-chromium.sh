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
. "$(dirname "$0")/lib/debian-package.sh"

if ! command -v chromium >/dev/null 2>&1; then
  # fonts-liberation gives the page's text a real sans-serif face.
  install_debian_package install-chromium chromium fonts-liberation
  command -v chromium >/dev/null
fi
# stderr dropped: the launcher script of some Debian builds prints a
# harmless shell warning. (Captured first: head closing the pipe early
# would fail it under pipefail.)
out=$(chromium --version 2>/dev/null || true)
printf '%s\n' "$out" | head -n 1
