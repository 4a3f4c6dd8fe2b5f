#!/usr/bin/env bash
# Validates the Tessera CUDA interception library on a machine with an
# NVIDIA GPU, the driver and the CUDA toolkit (nvcc). Builds the library,
# then runs real programs under it (LD_PRELOAD, as /etc/ld.so.preload would
# in a container) with a container's environment for GPU 0:
#   - the driver and runtime APIs report the memory limit and stop at it;
#   - PyTorch (if importable) reports the limit and raises OutOfMemoryError;
#   - nvidia-smi (NVML) reports the limit as the total;
#   - a 30% core cap slows a busy kernel loop to about 30% of its uncapped rate,
#     and caps of 10, 60 and 90% deliver their share within 5 points;
#   - what a capped launch that does not wait adds per launch (empty kernels).
# Prints PASS/FAIL lines and "gpu tests: N passed, M failed"; exit 1 on any
# failure, 2 when there is no GPU or toolkit to test with.
# Usage: test/gpu/run.sh [limit-MiB]   (default 2048)
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
limit_mib=${1:-2048}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0

report() { # ok name detail
    if [ "$1" = 1 ]; then
        echo "PASS $2"
        passed=$((passed + 1))
    else
        echo "FAIL $2: $3"
        failed=$((failed + 1))
    fi
}

need() {
    command -v "$1" >/dev/null || { echo "no $1: cannot validate on a GPU here" >&2; exit 2; }
}
need nvidia-smi
need nvcc
need make
uuid=$(nvidia-smi --query-gpu=uuid --format=csv,noheader -i 0) || exit 2
echo "GPU 0: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader -i 0)"

make -C "$root/cuda-hook" build/libtessera-hook.so >/dev/null || exit 1
hook=$root/cuda-hook/build/libtessera-hook.so
nvcc -O2 -o "$work/gpu_check" "$root/test/gpu/gpu_check.cu" -lcuda || exit 1

# A container of one GPU; extra variables (a core cap) come as arguments.
contained() {
    env TESSERA_DEVICE_COUNT=1 TESSERA_MEMORY_LIMIT_MIB_0="$limit_mib" \
        TESSERA_DEVICE_UUID_0="$uuid" TESSERA_REGION_FILE="$work/region" \
        LD_PRELOAD="$hook" "$@"
}

# Memory through the driver and runtime APIs.
out=$(contained "$work/gpu_check" mem 2>&1)
echo "$out" | grep -E '^(PASS|FAIL)'
passed=$((passed + $(echo "$out" | grep -c '^PASS')))
failed=$((failed + $(echo "$out" | grep -c '^FAIL')))
[ -n "$(echo "$out" | grep -E '^(PASS|FAIL)')" ] || report 0 gpu_check_mem "no output: $out"

# NVML, through nvidia-smi.
total=$(contained nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits -i 0)
report $([ "$total" = "$limit_mib" ] && echo 1 || echo 0) nvml_reports_limit \
    "nvidia-smi says $total MiB, limit $limit_mib MiB"

# PyTorch, when present.
if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
    out=$(contained python3 - <<'PY' 2>&1
import os, torch
limit = int(os.environ["TESSERA_MEMORY_LIMIT_MIB_0"]) << 20
free, total = torch.cuda.mem_get_info()
print("mem_get_info", free, total, limit)
assert total == limit, "total is not the limit"
try:
    torch.empty(limit, dtype=torch.uint8, device="cuda")
    print("allocated past the limit")
except torch.cuda.OutOfMemoryError:
    print("TORCH_OOM_OK")
PY
)
    report $(echo "$out" | grep -q TORCH_OOM_OK && echo 1 || echo 0) torch_limit "$out"
else
    echo "(PyTorch with CUDA not importable: skipped its check)"
fi

# Core cap: the same busy loop, uncapped and capped at 30%.
free_rate=$(contained "$work/gpu_check" spin 200 | awk '/kernels_per_s/ {print $2}')
capped_rate=$(contained env TESSERA_CORE_LIMIT_0=30 "$work/gpu_check" spin 100 |
    awk '/kernels_per_s/ {print $2}')
ratio=$(awk -v a="${capped_rate:-0}" -v b="${free_rate:-0}" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print 0 }')
ok=$(awk -v r="$ratio" 'BEGIN { print (r >= 0.2 && r <= 0.4) ? 1 : 0 }')
report "$ok" core_cap_30_percent \
    "capped/uncapped kernel rate $capped_rate/$free_rate = $ratio, want about 0.30"
echo "(core cap 30%: $capped_rate kernels/s against $free_rate uncapped, ratio $ratio)"

# Delivered share at other caps: the paced rate against the uncapped one.
for cap in 10 60 90; do
    rate=$(contained env TESSERA_CORE_LIMIT_0=$cap "$work/gpu_check" spin 100 | awk '/kernels_per_s/ {print $2}')
    share=$(awk -v a="${rate:-0}" -v b="${free_rate:-0}" 'BEGIN { if (b > 0) printf "%.1f", 100 * a / b; else print 0 }')
    ok=$(awk -v s="$share" -v c="$cap" 'BEGIN { d = s - c; if (d < 0) d = -d; print (d <= 5) ? 1 : 0 }')
    report "$ok" "core_cap_${cap}_percent" "delivered $share% of the uncapped rate, cap $cap%"
    echo "(core cap $cap%: delivered $share% of the uncapped rate)"
done

# What a capped launch that does not have to wait costs (issue 14): empty
# kernels, uncapped and capped at 90% (far from reached by empty kernels).
free_ns=$(contained "$work/gpu_check" launch 100000 | awk '/ns_per_launch/ {print $2}')
capped_ns=$(contained env TESSERA_CORE_LIMIT_0=90 "$work/gpu_check" launch 100000 | awk '/ns_per_launch/ {print $2}')
added=$(awk -v a="${capped_ns:-0}" -v b="${free_ns:-0}" 'BEGIN { printf "%.1f", a - b }')
echo "(launch of an empty kernel: $free_ns ns uncapped, $capped_ns ns capped at 90%: +$added ns per launch)"
ok=$(awk -v a="$added" 'BEGIN { print (a <= 1000) ? 1 : 0 }')
report "$ok" capped_launch_cost "a capped launch adds $added ns (more than 1 us)"

echo "gpu tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
