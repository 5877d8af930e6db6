#!/bin/sh
# run_file.sh FUZZER SEEDS KIND SECONDS WORKDIR [ARG...] — one libFuzzer session over a file
# reader. SEEDS KIND writes the generated seed corpus into WORKDIR/seeds (SEEDS "-": none);
# ARGs are more seed directories and libFuzzer flags (-dict=...). New inputs go to
# WORKDIR/corpus, crashes to WORKDIR/artifacts; any crash, leak, timeout or abort fails the
# test. Copy a reproducer into tests/fuzz/repro-KIND/ to keep it replayed.
set -eu
fuzzer=$1 seeds=$2 kind=$3 seconds=$4 work=$5
shift 5
rm -rf "$work/seeds"
mkdir -p "$work/corpus" "$work/artifacts" "$work/seeds"
[ "$seeds" = - ] || "$seeds" "$kind" "$work/seeds"
"$fuzzer" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 -max_len=16384 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/" "$work/corpus" "$work/seeds" "$@"
