#!/usr/bin/env bash
# Runs every hook test and prints "hook tests: N passed, M failed".
# Each test program prints one "PASS name" or "FAIL name: why" line per
# check; a program that exits non-zero without printing a FAIL counts as one
# failure of its own. Exits non-zero on any failure.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd) || exit 2
hook=$build/libtessera-hook.so
fakes=$build/fake
passed=0
failed=0

tally() { # name, exit status, output file
    local p f
    p=$(grep -c '^PASS ' "$3" 2>/dev/null || true)
    f=$(grep -c '^FAIL ' "$3" 2>/dev/null || true)
    p=${p:-0}
    f=${f:-0}
    grep -E '^(FAIL|     )' "$3"
    if [ "$2" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "FAIL $1: exited with status $2"
        f=1
    fi
    passed=$((passed + p))
    failed=$((failed + f))
    echo "--- $1: $p passed, $f failed"
}

run_unit() { # program
    local out=$build/tests/$1.out
    "$build/tests/$1" >"$out" 2>&1
    tally "$1" $? "$out"
}

# Contexts take memory in the fake driver as on a GPU, and the hook must
# charge exactly that (tests read it back through th_context_bytes).
run_hooked() { # program
    local out=$build/tests/$1.out
    FAKECUDA_CONTEXT_MIB=${FAKECUDA_CONTEXT_MIB:-300} LD_PRELOAD=$hook LD_LIBRARY_PATH=$fakes "$build/tests/$1" >"$out" 2>"$out.stderr"
    tally "$1" $? "$out"
}

# The library exports exactly what it interposes, links nothing but libc,
# and carries no C++ runtime.
check_exports() {
    local out=$build/tests/exports.out
    {
        if diff <(nm -D --defined-only "$hook" | awk '{print $3}' | sort) \
            "$root/tests/expected_exports.txt" >/dev/null; then
            echo "PASS exports_exactly_the_wrappers"
        else
            echo "FAIL exports_exactly_the_wrappers: $(nm -D --defined-only "$hook" | wc -l) symbols"
        fi
        # libc, and the dynamic loader for thread-local storage: no libcuda
        # (found at run time), no C++ runtime.
        needed=$(readelf -d "$hook" | awk '/NEEDED/ {print $5}' | tr -d '[]' |
            grep -vE '^(libc\.so\.6|ld-linux[-a-z0-9_.]*\.so\.[0-9])$' | tr '\n' ' ')
        if [ -z "$needed" ]; then
            echo "PASS links_only_libc"
        else
            echo "FAIL links_only_libc: also needs $needed"
        fi
        if nm -D "$hook" | grep -qE ' _Z|__gxx|libstdc'; then
            echo "FAIL no_cxx_runtime: C++ symbols referenced"
        else
            echo "PASS no_cxx_runtime"
        fi
    } >"$out"
    tally exports 0 "$out"
}

# Every source includes only its own layer or those below (README.md,
# "Layers"); an upward include fails here, naming the file and the include.
check_layers() {
    local out=$build/tests/layers.out
    "$root/tests/layers.sh" "$build/obj/hook" >"$out" 2>&1
    tally layers $? "$out"
}

check_exports
check_layers
for t in t_units t_pacer_sim; do run_unit "$t"; done
for t in t_paths t_dlsym t_kinds t_info t_passthrough t_limits t_region_init t_multiproc t_kill t_context t_fork t_core_cap t_busy; do
    run_hooked "$t"
done
rm -rf /tmp/tessera-hook-test.*
if [ "$passed" -eq 0 ]; then
    echo "FAIL runner: no test passed at all (is $build complete?)"
    failed=$((failed + 1))
fi
echo "hook tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
