#!/usr/bin/env bash
# Checks that the sources of src/ include only their own layer or the layers
# below it (README.md, "Layers"), so that the dependencies stay one-way:
#   1 config -> 2 region -> 3 state -> 4 accounting -> 5 entry points
# Prints "PASS name" or one "FAIL name: ..." line per upward include, and
# fails on a source file that has no layer yet (give it one below).
# Headers of include/ (the shared contracts) may be included anywhere.
#
# With the directory of the library's objects (build/obj/hook), it also
# checks the calls: a symbol an object uses from another object must come
# from its own layer or below. This catches what includes cannot, a
# function declared by hand in a lower file and defined in a higher one.
set -u
src=$(cd "$(dirname "$0")/../src" && pwd)
objs=${1:-}

declare -A layer=(
    # 1 config: pure code and tables, no process state
    [env.h]=1 [env.c]=1 [symbols.h]=1 [symbols.c]=1 [table.h]=1 [table.c]=1
    [spin.h]=1 [pacer.h]=1 [pacer.c]=1
    [sample.h]=1 [sample.c]=1
    [limitsfile.h]=1 [limitsfile.c]=1
    # 2 region: the shared usage region
    [region.h]=2 [region.c]=2 [region_attach.c]=2 [proc.c]=2
    # 3 state: the process-wide state, its start-up and the logger
    [state.h]=3 [state.c]=3 [init.c]=3
    # 4 accounting: devices, charges, pools, contexts' size, pacing
    [devmap.h]=4 [devmap.c]=4 [account.h]=4 [account.c]=4 [poolacct.h]=4
    [poolacct.c]=4 [ctxmem.h]=4 [ctxmem.c]=4 [timing.h]=4 [timing.c]=4
    # 5 entry points: the exported wrappers
    [hook.h]=5 [mem.c]=5 [pool.c]=5 [pool_free.c]=5 [arrays.c]=5 [graph.c]=5
    [context.c]=5 [info.c]=5 [launch.c]=5 [resolve.c]=5
)
names=([1]=config [2]=region [3]=state [4]=accounting [5]="entry points")

bad=0
for path in "$src"/*.c "$src"/*.h; do
    f=$(basename "$path")
    mine=${layer[$f]:-}
    if [ -z "$mine" ]; then
        echo "FAIL layers_include_only_downward: src/$f has no layer in tests/layers.sh"
        bad=1
        continue
    fi
    while IFS= read -r inc; do
        [ -f "$src/$inc" ] || continue # include/ and system headers
        theirs=${layer[$inc]:-9}
        if [ "$theirs" -gt "$mine" ]; then
            echo "FAIL layers_include_only_downward: src/$f (${names[$mine]}) includes \"$inc\" (${names[$theirs]:-no layer})"
            bad=1
        fi
    done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$path")
done
[ "$bad" -eq 0 ] && echo "PASS layers_include_only_downward"

[ -n "$objs" ] || exit 0
declare -A owner=() # symbol -> the source file whose object defines it
for o in "$objs"/*.o; do
    f=$(basename "$o" .o).c
    for sym in $(nm --defined-only "$o" | awk '$2 ~ /[TDBRV]/ {print $3}'); do
        owner[$sym]=$f
    done
done
bad=0
for o in "$objs"/*.o; do
    f=$(basename "$o" .o).c
    mine=${layer[$f]:-9}
    for sym in $(nm --undefined-only "$o" | awk '{print $2}'); do
        def=${owner[$sym]:-}
        [ -n "$def" ] || continue # libc and the loader
        theirs=${layer[$def]:-9}
        if [ "$theirs" -gt "$mine" ]; then
            echo "FAIL layers_call_only_downward: src/$f (${names[$mine]:-no layer}) uses $sym of src/$def (${names[$theirs]:-no layer})"
            bad=1
        fi
    done
done
[ "$bad" -eq 0 ] && echo "PASS layers_call_only_downward"
exit 0
