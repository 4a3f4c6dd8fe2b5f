#!/usr/bin/env bash
# Runs the micro-benchmark and prints a markdown table of what the hook adds
# to a call into the (fake) driver: nanoseconds (fastest of many rounds) and
# instructions (valgrind's callgrind, which the machine's load cannot move).
# With a second argument, also records the results in that file, in the
# "## cuda-hook micro-benchmark" section: only the block between the two
# bench-doc markers is replaced (created at the end of the section the first
# time), so what the section says outside it, such as figures of earlier
# builds, is kept. BENCH_HOOK=<path> measures another build of
# libtessera-hook.so (a "before" build) with the same harness and fake driver;
# BENCH_SEED=<n> (default 1) seeds the capped case's sampling.
set -eu
build=$(cd "${1:-build}" && pwd)
doc=${2:-}
root=$(cd "$(dirname "$0")/.." && pwd)
hook=${BENCH_HOOK:-$build/libtessera-hook.so}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Iterations counted under callgrind (after as many to warm up). The counts
# are exact; what a capped launch costs on average depends on how many of
# them are timed, about one in 128 at rest, so enough launches that the
# share is near its mean whatever the seed.
COUNT_N=100000
# A core cap the loops never reach: the fake's kernels take no GPU time and
# its events time only work (FAKECUDA_EVENTS_WORK_ONLY), so the estimate
# settles near zero as it would for such kernels on a GPU, and no launch
# waits. Timed on the wall clock, under valgrind's slowdown, it would
# settle at microseconds, time more launches than at full speed, and make
# some wait. TESSERA_SAMPLE_SEED fixes which launches are timed, so that the
# count is the same in every run.
CAP="TESSERA_CORE_LIMIT_0=90 FAKECUDA_EVENTS_WORK_ONLY=1 TESSERA_SAMPLE_SEED=${BENCH_SEED:-1}"

run() { # extra env..., then the bench arguments
    env TESSERA_DEVICE_COUNT=1 TESSERA_MEMORY_LIMIT_MIB_0=65536 \
        TESSERA_REGION_FILE="$tmp/bench.region" FAKECUDA_DEVICE_MEMORY_MIB=131072 \
        LD_PRELOAD="$hook" LD_LIBRARY_PATH="$build/fake" "$@"
}

# Instructions per call of one case and side: callgrind collects only inside
# bench's measured(), which runs the case COUNT_N times. Extra environment
# (a core cap) comes after the side.
count() { # case side [VAR=value...]
    local out=$tmp/cg.$1.$2.$#
    local c=$1 s=$2
    shift 2
    run "$@" valgrind --tool=callgrind --callgrind-out-file="$out" --collect-atstart=no \
        --toggle-collect=measured "$build/bench/bench" count "$c" "$s" "$COUNT_N" \
        >/dev/null 2>"$out.log" || {
        cat "$out.log" >&2
        return 1
    }
    awk -v n="$COUNT_N" '/^(summary|totals):/ { printf "%.1f\n", $2 / n; exit }' "$out"
}

{
    run "$build/bench/bench" nocap
    # shellcheck disable=SC2086 # CAP is a list of assignments
    run $CAP "$build/bench/bench" cap
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
    # A capped launch that never waits: the pacing and timing cost alone.
    # shellcheck disable=SC2086
    echo "launch_cap $(count launch direct $CAP) $(count launch hooked $CAP)" >>"$tmp/counts"
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
        key["launch_cap_not_reached"] = "launch_cap"
        target["launch"] = 1; target["alloc_free"] = 250; target["mem_get_info"] = 100
        target["launch_cap"] = 150
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

begin='<!-- bench-doc: generated by `make -C cuda-hook bench-doc` down to its end marker; edits inside are lost -->'
end='<!-- bench-doc: end -->'
section=$(cat <<MD
${begin}

### Latest run

Command (run from the repository root; \`make -C cuda-hook bench-doc\` records this block):

\`\`\`
make -C cuda-hook bench
\`\`\`

CPU (\`lscpu | grep 'Model name'\`): \`${machine}\`, $(nproc) vCPUs (\`nproc\`), shared with other
builds, so every time is the fastest of 101 rounds (400,000 launches, 40,000 allocation pairs,
100,000 \`cuMemGetInfo_v2\` calls or 100,000 lookups per round; 40,000 capped launches), direct
and hooked rounds alternating. Instructions are counted by valgrind's callgrind
($(valgrind --version 2>/dev/null || echo "not installed")) over ${COUNT_N} calls run inside one
function (\`bench count CASE SIDE N\`, \`--toggle-collect=measured\`), after as many calls to warm
up; they are the same on a busy machine and an idle one.

The capped case runs with \`${CAP}\`: the fake's kernels take no GPU time and its events time
only work, so the estimate settles near zero, about one launch in 128 is timed (the floor of the
sampling rate) and no launch waits for the cap; the seed fixes which launches are timed, so its
count is the same in every run (\`BENCH_SEED=N\` picks another; over seeds 1-8 the added count
spans about one instruction: docs/benchmarks.md, "Issue 14's last goal").

"direct" calls the fake driver's own function (its address from \`fakecuda_raw_proc\`); "through
hook" calls the hook's exported wrapper, which ends in that same function. "added" is the
difference. The fake driver does almost nothing, so what the hook adds looks large next to it: a
real \`cuLaunchKernel\` or \`cuMemAlloc_v2\` costs microseconds. Without a core cap a launch wrapper
is a single indirect jump; with a cap set a sample of launches is timed by two events each (see
cuda-hook/README.md, "Core limit").

${table}

${end}
MD
)

echo "$section"
echo "$section" >"$build/bench.md"
if [ -n "$doc" ]; then
    [ -f "$doc" ] || printf '# Benchmarks\n' >"$doc"
    # Replace the marked block; without one, put it at the end of the
    # section, or start the section at the end of the file.
    awk -v section="$section" -v begin="$begin" -v end="$end" '
        { line[NR] = $0 }
        $0 == begin { b = NR }
        $0 == end && b { e = NR }
        /^## cuda-hook micro-benchmark$/ { h = NR }
        h && !stop && NR > h && /^## / { stop = NR }
        END {
            if (b && e) { from = b; to = e }
            else if (h) { from = stop ? stop : NR + 1; to = from - 1 }
            else { from = NR + 1; to = NR; section = "## cuda-hook micro-benchmark\n\n" section }
            for (i = 1; i < from; i++) print line[i]
            if (!(b && e)) print ""
            print section
            if (!(b && e)) print ""
            for (i = to + 1; i <= NR; i++) print line[i]
        }' "$doc" | cat -s >"$tmp/doc"
    cp "$tmp/doc" "$doc"
    echo "recorded in $doc"
fi
