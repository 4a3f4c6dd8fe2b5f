#!/usr/bin/env bash
# Installs valgrind from Debian's "valgrind" package unless a valgrind binary
# is already on PATH. Idempotent; needs root (or sudo) on a Debian or Ubuntu
# machine. Used by `make -C cuda-hook bench`, whose instruction counts come
# from valgrind's callgrind tool (cuda-hook/bench/bench.sh).
set -euo pipefail
. "$(dirname "$0")/lib/debian-package.sh"

if ! command -v valgrind >/dev/null 2>&1; then
  install_debian_package install-valgrind valgrind
  command -v valgrind >/dev/null
fi
valgrind --version
