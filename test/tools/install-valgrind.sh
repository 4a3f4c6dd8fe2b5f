#!/usr/bin/env bash
# Installs valgrind from Debian's "valgrind" package unless a valgrind binary
# is already on PATH. Idempotent; needs root (or sudo) on a Debian or Ubuntu
# machine. Used by `make -C cuda-hook bench`, whose instruction counts come
# from valgrind's callgrind tool (cuda-hook/bench/bench.sh).
set -euo pipefail

if command -v valgrind >/dev/null 2>&1; then
  exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "install-valgrind: not root and no sudo; install Debian's valgrind package by hand" >&2
    exit 1
  fi
  SUDO=(sudo)
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-valgrind: no apt-get; install valgrind (3.16 or later) by hand" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# The package lists of a fresh machine are empty: look the package up only
# after an update.
"${SUDO[@]}" apt-get update -qq
# (Captured first: grep -q closing the pipe early would fail it under pipefail.)
candidate=$(LC_ALL=C apt-cache policy valgrind | sed -n 's/^ *Candidate: //p')
if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
  echo "install-valgrind: Debian's package lists have no valgrind package" >&2
  exit 1
fi
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends valgrind >/dev/null
command -v valgrind >/dev/null
valgrind --version
