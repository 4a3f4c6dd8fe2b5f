# Sourced by test/tools/install-*.sh: installs one Debian package the
# tests or benchmarks need, the same way for each of them.
#
#   install_debian_package TOOL PACKAGE [EXTRA_PACKAGE...]
#
# TOOL is the script's name for messages. The package lists of a fresh
# machine are empty, so the package is looked up only after an update, and
# a missing candidate is a clear error rather than apt-get's. Needs root,
# or sudo. Recommends are left out: the tests need the program, not the
# desktop integration that comes with it.

# debian_sudo sets SUDO to the command prefix that runs as root.
debian_sudo() {
  local tool=$1
  SUDO=()
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "$tool: not root and no sudo; install Debian's $2 package by hand" >&2
      exit 1
    fi
    SUDO=(sudo)
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "$tool: no apt-get; install $2 by hand" >&2
    exit 1
  fi
}

install_debian_package() {
  local tool=$1 package=$2
  shift 2
  debian_sudo "$tool" "$package"
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq
  local candidate
  # (Captured first: a reader closing the pipe early would fail it under pipefail.)
  candidate=$(LC_ALL=C apt-cache policy "$package" | sed -n 's/^ *Candidate: //p')
  if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
    echo "$tool: Debian's package lists have no $package package" >&2
    exit 1
  fi
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "$package" "$@" >/dev/null
}
