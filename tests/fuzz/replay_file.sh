#!/bin/sh
# replay_file.sh REPLAY SEEDS KIND WORKDIR REPRO_DIR [SEED_DIR...] — every build, with or
# without libFuzzer: runs a file-reader harness over its generated seeds (SEEDS KIND
# writes them into WORKDIR/seeds; "-": none), the seed directories given, and every
# reproducer kept in REPRO_DIR.
set -eu
replay=$1 seeds=$2 kind=$3 work=$4 repro=$5
shift 5
rm -rf "$work/seeds"
mkdir -p "$work/seeds"
[ "$seeds" = - ] || "$seeds" "$kind" "$work/seeds" >/dev/null
set -- "$work/seeds" "$@" "$repro"
files=$(find "$@" -type f | sort)
# shellcheck disable=SC2086 # file names are made by the tests and have no blanks
"$replay" $files
