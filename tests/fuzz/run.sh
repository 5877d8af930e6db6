#!/bin/sh
# run.sh FUZZER SECONDS WORKDIR SEED_DIR... — one libFuzzer session.
# New inputs go to WORKDIR/corpus, crashes to WORKDIR/artifacts; any crash, leak or
# timeout fails the test. Copy a reproducer into tests/fuzz/repro/ to keep it replayed.
set -eu
fuzzer=$1 seconds=$2 work=$3
shift 3
mkdir -p "$work/corpus" "$work/artifacts"
dict="$(dirname "$0")/nnl.dict"
"$fuzzer" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 -max_len=8192 \
    -print_final_stats=1 -dict="$dict" -artifact_prefix="$work/artifacts/" \
    "$work/corpus" "$@"
