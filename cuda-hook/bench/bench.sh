#!/usr/bin/env bash
# Runs the micro-benchmark and prints a markdown table of what the hook adds
# to a call into the (fake) driver. With a second argument, also writes the
# results as the "## cuda-hook micro-benchmark" section of that file,
# replacing that section only.
set -eu
build=$(cd "${1:-build}" && pwd)
doc=${2:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

run() { # mode, extra env...
    local mode=$1
    shift
    env "$@" TESSERA_DEVICE_COUNT=1 TESSERA_MEMORY_LIMIT_MIB_0=65536 \
        TESSERA_REGION_FILE="$tmp/bench.region" FAKECUDA_DEVICE_MEMORY_MIB=131072 \
        LD_PRELOAD="$build/libtessera-hook.so" LD_LIBRARY_PATH="$build/fake" \
        "$build/bench/bench" "$mode"
}

{
    run nocap
    run cap TESSERA_CORE_LIMIT_0=90
} >"$tmp/raw"

machine=$(lscpu | grep 'Model name' | sed 's/.*: *//' | head -1)
table=$(awk '
    BEGIN {
        label["launch_no_cap"] = "`cuLaunchKernel`, no core cap"
        label["launch_cap_not_reached"] = "`cuLaunchKernel`, cap 90% set, not reached"
        label["alloc_free"] = "`cuMemAlloc_v2` + `cuMemFree_v2`"
        label["get_proc_address"] = "`cuGetProcAddress`"
        target["launch_no_cap"] = 5; target["alloc_free"] = 100
        print "| Call | direct (ns) | through hook (ns) | added (ns) | ratio | target |"
        print "| --- | ---: | ---: | ---: | ---: | --- |"
    }
    {
        added = $3 - $2
        t = ($1 in target) ? sprintf("<= %d ns added: %s", target[$1], added <= target[$1] ? "met" : "MISSED") : "none"
        printf "| %s | %.1f | %.1f | %.1f | %.2fx | %s |\n", label[$1], $2, $3, added, $3 / $2, t
    }' "$tmp/raw")

section=$(cat <<MD
## cuda-hook micro-benchmark

Command (run from the repository root; \`make -C cuda-hook bench-doc\` records this section):

\`\`\`
make -C cuda-hook bench
\`\`\`

CPU (\`lscpu | grep 'Model name'\`): \`${machine}\`, $(nproc) vCPUs, shared with other builds, so every
number is the fastest of 101 rounds (400,000 launches, 40,000 allocation pairs or 100,000
lookups per round; 40,000 capped launches), direct and hooked rounds alternating.

"direct" calls the fake driver's own function (its address from \`fakecuda_raw_proc\`); "through
hook" calls the hook's exported wrapper, which ends in that same function. "added" is the
difference, "ratio" hooked/direct. The fake driver does almost nothing, so the ratio overstates
what a real driver call sees: a real \`cuLaunchKernel\` costs microseconds. Without a core cap a
launch wrapper is a single indirect jump; with a cap set each launch is bracketed by two timing
events (see cuda-hook/README.md, "Core limit").

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
