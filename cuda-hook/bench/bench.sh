#!/usr/bin/env bash
# Runs the micro-benchmark and prints a markdown table of what the hook adds
# to a call into the (fake) driver: nanoseconds (fastest of many rounds) and
# instructions (valgrind's callgrind, which the machine's load cannot move).
# With a second argument, also writes the results as the
# "## cuda-hook micro-benchmark" section of that file, replacing that section
# only. BENCH_HOOK=<path> measures another build of libtessera-hook.so (a
# "before" build) with the same harness and fake driver.
set -eu
build=$(cd "${1:-build}" && pwd)
doc=${2:-}
root=$(cd "$(dirname "$0")/.." && pwd)
hook=${BENCH_HOOK:-$build/libtessera-hook.so}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Iterations counted under callgrind: the counts are exact, so few suffice.
COUNT_N=20000

run() { # extra env..., then the bench arguments
    env TESSERA_DEVICE_COUNT=1 TESSERA_MEMORY_LIMIT_MIB_0=65536 \
        TESSERA_REGION_FILE="$tmp/bench.region" FAKECUDA_DEVICE_MEMORY_MIB=131072 \
        LD_PRELOAD="$hook" LD_LIBRARY_PATH="$build/fake" "$@"
}

# Instructions per call of one case and side: callgrind collects only inside
# bench's measured(), which runs the case COUNT_N times.
count() { # case side
    local out=$tmp/cg.$1.$2
    run valgrind --tool=callgrind --callgrind-out-file="$out" --collect-atstart=no \
        --toggle-collect=measured "$build/bench/bench" count "$1" "$2" "$COUNT_N" \
        >/dev/null 2>"$out.log" || {
        cat "$out.log" >&2
        return 1
    }
    awk -v n="$COUNT_N" '/^(summary|totals):/ { printf "%.1f\n", $2 / n; exit }' "$out"
}

{
    run "$build/bench/bench" nocap
    run TESSERA_CORE_LIMIT_0=90 "$build/bench/bench" cap
} >"$tmp/raw"

# valgrind is a Debian package; the installer is idempotent. Without it (no
# root, no apt) the table says so instead of failing the benchmark.
counted=yes
if ! command -v valgrind >/dev/null 2>&1; then
    "$root/../test/tools/install-valgrind.sh" >&2 || counted=no
fi
: >"$tmp/counts"
if [ "$counted" = yes ]; then
    for c in launch alloc_free mem_get_info; do
        echo "$c $(count "$c" direct) $(count "$c" hooked)" >>"$tmp/counts"
    done
fi

machine=$(lscpu | grep 'Model name' | sed 's/.*: *//' | head -1)
table=$(awk '
    BEGIN {
        label["launch_no_cap"] = "`cuLaunchKernel`, no core cap"
        label["launch_cap_not_reached"] = "`cuLaunchKernel`, cap 90% set, not reached"
        label["alloc_free"] = "`cuMemAlloc_v2` (1 MiB) + `cuMemFree_v2`"
        label["mem_get_info"] = "`cuMemGetInfo_v2`"
        label["get_proc_address"] = "`cuGetProcAddress`"
        key["launch_no_cap"] = "launch"
        key["alloc_free"] = "alloc_free"; key["mem_get_info"] = "mem_get_info"
        target["launch"] = 1; target["alloc_free"] = 250; target["mem_get_info"] = 100
        print "| Call | direct (ns) | through hook (ns) | added (ns) | direct (instr) | through hook (instr) | added (instr) | target (added instr) |"
        print "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    }
    FNR == NR { di[$1] = $2; hi[$1] = $3; next }
    {
        k = key[$1]
        if (k != "" && (k in di)) {
            added = hi[k] - di[k]
            cnt = sprintf("%.1f | %.1f | %+.1f", di[k], hi[k], added)
            t = sprintf("<= %d: %s", target[k], added <= target[k] ? "met" : "MISSED")
        } else {
            cnt = "- | - | -"
            t = (k != "") ? "not counted (no valgrind)" : "none"
        }
        printf "| %s | %.1f | %.1f | %.1f | %s | %s |\n", label[$1], $2, $3, $3 - $2, cnt, t
    }' "$tmp/counts" "$tmp/raw")

section=$(cat <<MD
## cuda-hook micro-benchmark

Command (run from the repository root; \`make -C cuda-hook bench-doc\` records this section):

\`\`\`
make -C cuda-hook bench
\`\`\`

CPU (\`lscpu | grep 'Model name'\`): \`${machine}\`, $(nproc) vCPUs (\`nproc\`), shared with other
builds, so every time is the fastest of 101 rounds (400,000 launches, 40,000 allocation pairs,
100,000 \`cuMemGetInfo_v2\` calls or 100,000 lookups per round; 40,000 capped launches), direct
and hooked rounds alternating. Instructions are counted by valgrind's callgrind
($(valgrind --version 2>/dev/null || echo "not installed")) over ${COUNT_N} calls run inside one
function (\`bench count CASE SIDE N\`, \`--toggle-collect=measured\`); they are the same on a busy
machine and an idle one.

"direct" calls the fake driver's own function (its address from \`fakecuda_raw_proc\`); "through
hook" calls the hook's exported wrapper, which ends in that same function. "added" is the
difference. The fake driver does almost nothing, so what the hook adds looks large next to it: a
real \`cuLaunchKernel\` or \`cuMemAlloc_v2\` costs microseconds. Without a core cap a launch wrapper
is a single indirect jump; with a cap set each launch is bracketed by two timing events (see
cuda-hook/README.md, "Core limit").

${table}
MD
)

echo "$section"
echo "$section" >"$build/bench.md"
if [ -n "$doc" ]; then
    [ -f "$doc" ] || printf '# Benchmarks\n' >"$doc"
    awk -v section="$section" '
        /^## cuda-hook micro-benchmark$/ { skip = 1; next }
        skip && /^## / { skip = 0 }
        !skip { print }
        END { printf "\n%s\n", section }' "$doc" | cat -s >"$tmp/doc"
    cp "$tmp/doc" "$doc"
    echo "recorded in $doc"
fi
