#!/bin/sh
# mutate.sh NNLC MUTATE EXAMPLES_DIR — every example truncated and mutated
# (bad input never crashes: docs/language.md §9): `nnlc check` on each damaged copy must exit 0 or 1
# within 2 seconds of CPU time (and 20 of wall-clock time, for a machine shared with other
# tests), with no sanitizer report. Per example: 15 truncations (evenly spread offsets)
# and 15 mutations (MUTATE, seeded 1..15); NNL_LONG=1: a truncation at every byte and 300
# mutations. The data files are found through NNL_DATA_PATH (the examples' directory) and
# /usr/share/datasets, so a copy that still names its data checks it too.
set -eu
nnlc=$1 mutate=$2 examples=$(cd "$3" && pwd)
mutations=15 every=
if [ "${NNL_LONG:-0}" = 1 ]; then
    mutations=300 every=1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export NNL_DATA_PATH="$examples"
# a sanitizer report is an exit code of its own, and is looked for in the output too
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}exitcode=86"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}exitcode=86:halt_on_error=1"
runs=0 failed=0

# one damaged copy: what it is, for the message
check() {
    rc=0
    (ulimit -t 2 && exec timeout -s KILL 20 "$nnlc" check "$tmp/damaged.nnl") \
        >"$tmp/out.txt" 2>&1 || rc=$?
    runs=$((runs + 1))
    if [ "$rc" -gt 1 ] || grep -q -e 'Sanitizer' -e 'runtime error:' "$tmp/out.txt"; then
        failed=$((failed + 1))
        keep="${TMPDIR:-/tmp}/nnl-mutate-$$-$runs.nnl"
        cp "$tmp/damaged.nnl" "$keep"
        echo "mutate: $1: exit code $rc (137, 152: over the time limit); copy kept as $keep"
        head -c 2000 "$tmp/out.txt"
    fi
}

for f in "$examples"/*.nnl; do
    name=$(basename "$f")
    size=$(wc -c <"$f")
    k=0
    while [ "$k" -lt "$size" ]; do
        head -c "$k" "$f" >"$tmp/damaged.nnl"
        check "$name cut at byte $k"
        if [ -n "$every" ]; then k=$((k + 1)); else k=$((k + size / 15 + 1)); fi
    done
    s=1
    while [ "$s" -le "$mutations" ]; do
        "$mutate" "$f" "$tmp/damaged.nnl" "$s"
        check "$name mutated with seed $s"
        s=$((s + 1))
    done
done
echo "mutate: $runs damaged copies of $(ls "$examples"/*.nnl | wc -l) examples checked," \
     "$failed failed"
[ "$failed" = 0 ]
