#!/bin/sh
# cli.sh NNLC — the command line's contract: help, version, usage errors and exit codes.
set -u
nnlc=$1
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# expect CODE DESCRIPTION COMMAND... : runs COMMAND, checks its exit status
expect() {
    want=$1 what=$2
    shift 2
    "$@" >"$tmp/out" 2>"$tmp/err"
    got=$?
    if [ "$got" != "$want" ]; then
        echo "FAIL: $what: exit $got, expected $want"
        cat "$tmp/out" "$tmp/err"
        fail=1
    fi
}
# has PATTERN FILE DESCRIPTION : the last command's output contains PATTERN
has() {
    if ! grep -q -- "$1" "$tmp/$2"; then
        echo "FAIL: $3: '$1' not in std$2:"
        cat "$tmp/$2"
        fail=1
    fi
}

printf 'fn f(x) = x\n' >"$tmp/ok.nnl"
printf 'fn f(x) = \n' >"$tmp/bad.nnl"

expect 0 "--help" "$nnlc" --help
has "usage: nnlc COMMAND" out "--help prints usage"
has "check" out "--help lists check"
expect 0 "-h" "$nnlc" -h
expect 0 "--version" "$nnlc" --version
has "^nnlc [0-9]" out "--version prints the version"
expect 0 "help check" "$nnlc" help check
has "usage: nnlc check" out "help check"
expect 0 "help dump" "$nnlc" help dump
has "tokens" out "help dump lists stages"
expect 0 "check --help" "$nnlc" check --help
expect 2 "help of an unknown command" "$nnlc" help frobnicate
has "unknown command 'frobnicate'" err "unknown command in help"
expect 2 "no arguments" "$nnlc"
expect 2 "unknown command" "$nnlc" frobnicate
has "error: unknown command 'frobnicate'" err "unknown command"
expect 2 "unknown option" "$nnlc" --frobnicate
expect 2 "check without files" "$nnlc" check
expect 2 "check with an unknown option" "$nnlc" check --nope "$tmp/ok.nnl"
has "unknown option '--nope'" err "unknown option"
expect 2 "dump without a stage" "$nnlc" dump "$tmp/ok.nnl"
expect 2 "dump with an unknown stage" "$nnlc" dump --stage=nope "$tmp/ok.nnl"
expect 0 "check a good file" "$nnlc" check "$tmp/ok.nnl"
expect 1 "check a bad file" "$nnlc" check "$tmp/bad.nnl"
has "bad.nnl:1:10: error:" err "error location"
expect 1 "check a good and a bad file" "$nnlc" check "$tmp/ok.nnl" "$tmp/bad.nnl"
expect 2 "check a missing file" "$nnlc" check "$tmp/missing.nnl"
has "missing.nnl: error: cannot open file" err "missing file message"
expect 2 "check a directory" "$nnlc" check "$tmp"
expect 0 "check from stdin" sh -c "'$nnlc' check - <'$tmp/ok.nnl'"
expect 0 "dump tokens" "$nnlc" dump --stage=tokens "$tmp/ok.nnl"
has "1:1 FN fn" out "token dump"
expect 0 "dump ast" "$nnlc" dump --stage ast "$tmp/ok.nnl"
has "fn f @1:1" out "ast dump"
expect 1 "dump of a bad file" "$nnlc" dump --stage=ast "$tmp/bad.nnl"
head -c 1100000 /dev/zero | tr '\0' ' ' >"$tmp/big.nnl"
expect 1 "a file over the size limit" "$nnlc" check "$tmp/big.nnl"
has "file is too large" err "size limit"
head -c 3000000 /dev/zero | tr '\0' ' ' >"$tmp/big3.nnl"
expect 1 "a 3 MB file" "$nnlc" check "$tmp/big3.nnl"
has "big3.nnl: error: file is too large (3000000 bytes; the limit is 1048576 bytes)" err \
    "the size limit's message gives the file's real size"
expect 1 "a 3 MB file from stdin" sh -c "'$nnlc' check - <'$tmp/big3.nnl'"
has "<stdin>: error: file is too large (3000000 bytes;" err "stdin from a file: its real size"
expect 1 "a 3 MB pipe" sh -c "cat '$tmp/big3.nnl' | '$nnlc' check -"
has "<stdin>: error: file is too large (more than the limit of 1048576 bytes)" err \
    "a pipe over the limit"
# --set takes one argument, KEY=VALUE
expect 2 "--set epochs 5" "$nnlc" run "$tmp/ok.nnl" --set epochs 5
has "^nnlc: error: --set needs KEY=VALUE, not 'epochs' (e.g. --set epochs=5)$" err "--set epochs 5"
expect 2 "check --set epochs 5" "$nnlc" check "$tmp/ok.nnl" --set epochs 5
has "^nnlc: error: --set needs KEY=VALUE, not 'epochs' (e.g. --set epochs=5)$" err \
    "check --set epochs 5"
expect 2 "--set epochs before the script" "$nnlc" run --set epochs "$tmp/ok.nnl"
has "not 'epochs' (e.g. --set epochs=VALUE)$" err "--set epochs before the script"
expect 2 "--set 'epochs 5'" "$nnlc" build "$tmp/ok.nnl" -o "$tmp/t" --set "epochs 5"
has "not 'epochs 5' (e.g. --set epochs=5)$" err "--set 'epochs 5'"
expect 2 "plot without a log" "$nnlc" plot
expect 2 "plot of two logs" "$nnlc" plot a.csv b.csv
has "plot takes one file" err "plot takes one file"
expect 2 "plot with --quiet" "$nnlc" plot --quiet a.csv
expect 0 "help plot" "$nnlc" help plot
has "usage: nnlc plot LOG.csv" out "help plot"
# NNL_THREADS: a bad value is refused, not ignored
expect 2 "NNL_THREADS=abc" env NNL_THREADS=abc "$nnlc" check "$tmp/ok.nnl"
has "NNL_THREADS must be a whole number from 1 to 16, not 'abc'" err "NNL_THREADS=abc"
expect 2 "NNL_THREADS=0" env NNL_THREADS=0 "$nnlc" check "$tmp/ok.nnl"
expect 2 "NNL_THREADS=17" env NNL_THREADS=17 "$nnlc" check "$tmp/ok.nnl"
expect 0 "NNL_THREADS=3" env NNL_THREADS=3 "$nnlc" check "$tmp/ok.nnl"

# the outputs of a run are checked before its first step: exit 2, no epoch line printed
xor=$(cd "$(dirname "$0")/.." && pwd)/examples/xor.nnl
# before NAME: no epoch line was printed by the last command
before() {
    if grep -q "^epoch" "$tmp/out"; then
        echo "FAIL: $1: found only after training"
        fail=1
    fi
}
expect 2 "a checkpoint in a missing directory" "$nnlc" run "$xor" --set 'checkpoint="/nonexistent/dir/ck"'
has "^/nonexistent/dir/ck: error: cannot write the checkpoint: No such file or directory" err "checkpoint checked"
before "a checkpoint in a missing directory"
expect 2 "--save-params under a file" "$nnlc" run "$xor" --save-params "$tmp/ok.nnl/x"
has "ok.nnl/x: error: cannot write the parameter file: Not a directory" err "--save-params checked"
before "--save-params under a file"
expect 2 "a plot in a missing directory" "$nnlc" run "$xor" --set 'plot="/nonexistent/p.svg"'
has "^/nonexistent/p.svg: error: cannot write the plot: No such file or directory" err "plot checked"
before "a plot in a missing directory"
expect 2 "a log in a missing directory" "$nnlc" run "$xor" --log /nonexistent/l.csv
has "^/nonexistent/l.csv: error: cannot open the log for writing" err "log checked"
before "a log in a missing directory"
[ -z "$(ls "$tmp" | grep tmp)" ] || { echo "FAIL: a check left a temporary file"; fail=1; }
# two runs never share a checkpoint or log: the second exits 1, naming the holder's pid
# (the holder here is this shell, with the lock file's flock, as a run takes it)
(
    exec 9>"$tmp/ck.lock"
    flock -xn 9 || exit 1
    echo 4242 >&9
    expect 1 "a checkpoint in use" "$nnlc" run "$xor" --set "checkpoint=\"$tmp/ck\"" 9>&-
    has "ck: error: the checkpoint is in use by another run (process 4242 holds '$tmp/ck.lock')" err "checkpoint lock"
    before "a checkpoint in use"
    expect 1 "a log in use" "$nnlc" run "$xor" --quiet --log "$tmp/ck" 9>&-
    has "ck: error: the log is in use by another run (process 4242" err "log lock"
    [ ! -e "$tmp/ck" ] || { echo "FAIL: a refused run wrote the file in use"; fail=1; }
    exit $fail
) || fail=1
# a lock file left by a killed run (no flock on it) does not block the next, which removes it
echo 999999 >"$tmp/ck.lock"
expect 0 "a stale lock file" "$nnlc" run "$xor" --quiet --set "checkpoint=\"$tmp/ck\"" --log "$tmp/l.csv"
[ ! -e "$tmp/ck.lock" ] && [ ! -e "$tmp/l.csv.lock" ] || { echo "FAIL: a run left its lock files"; fail=1; }

# a run that does not resume never replaces a checkpoint it did not write: exit 1 before any
# step, the file untouched; --resume goes on from it, --fresh starts over and replaces it
expect 0 "a first run leaves a checkpoint" "$nnlc" run "$xor" --quiet --set "checkpoint=\"$tmp/fresh.ck\"; epochs=3"
cp "$tmp/fresh.ck" "$tmp/first.ck"
expect 1 "a second run over a checkpoint" "$nnlc" run "$xor" --set "checkpoint=\"$tmp/fresh.ck\"; epochs=2"
has "fresh.ck: error: a checkpoint is already there (step [0-9]* of a run of this model): go on from it with --resume $tmp/fresh.ck, or start over with --fresh (which replaces it)" err "a checkpoint is already there"
before "a second run over a checkpoint"
cmp -s "$tmp/fresh.ck" "$tmp/first.ck" || { echo "FAIL: a refused run changed the checkpoint"; fail=1; }
expect 0 "--fresh over a checkpoint" "$nnlc" run "$xor" --quiet --fresh --set "checkpoint=\"$tmp/fresh.ck\"; epochs=2"
cmp -s "$tmp/fresh.ck" "$tmp/first.ck" && { echo "FAIL: --fresh did not replace the checkpoint"; fail=1; }
printf 'not a checkpoint\n' >"$tmp/notck"
expect 1 "a run over a file that is not a checkpoint" "$nnlc" run "$xor" --set "checkpoint=\"$tmp/notck\""
has "notck: error: a file that is not a checkpoint is already there" err "not a checkpoint there"
grep -qx 'not a checkpoint' "$tmp/notck" || { echo "FAIL: a refused run changed the file"; fail=1; }
expect 1 "a run over another model's checkpoint" "$nnlc" run "$xor" --float64 --set "checkpoint=\"$tmp/fresh.ck\""
has "fresh.ck: error: another model's checkpoint is already there" err "another model's checkpoint there"
expect 0 "help run names --fresh" "$nnlc" help run
has "--fresh" out "help run names --fresh"

# resuming needs nothing but the checkpoint: a stopped run (NNL_STOP_AFTER stops it as
# SIGINT does) records its options in it; the hint it prints, pasted as printed, ends as
# the uninterrupted run; an option given again on resume wins and is reported
mkdir "$tmp/h"
(cd "$tmp/h" && "$nnlc" run "$xor" --quiet --set 'checkpoint="h.ck"' --set epochs=40 \
    --log full.csv --save-params full.params && rm h.ck &&
    "$nnlc" run "$xor" --quiet --set 'checkpoint="h.ck"' --set epochs=45 --log full45.csv &&
    rm h.ck)
expect 130 "a run stopped by NNL_STOP_AFTER" env NNL_STOP_AFTER=7 sh -c "cd '$tmp/h' && \
    '$nnlc' run '$xor' --quiet --set 'checkpoint=\"h.ck\"' --set epochs=40 --log part.csv \
    --save-params part.params"
has "stopped by NNL_STOP_AFTER after step 7 (the end of epoch 7); checkpoint written to h.ck; to resume: nnlc run $xor --resume h.ck$" err "the resume hint"
hint=$(sed -n 's/.*; to resume: //p' "$tmp/err")
expect 0 "the resume hint, pasted as printed" sh -c "cd '$tmp/h' && PATH='$(dirname "$nnlc")':\$PATH && $hint"
has "^nnlc: with the options recorded in h.ck: --set 'checkpoint=\"h.ck\"' --set epochs=40 --log part.csv --save-params part.params$" out "the recorded options said"
cmp -s "$tmp/h/full.csv" "$tmp/h/part.csv" && cmp -s "$tmp/h/full.params" "$tmp/h/part.params" ||
    { echo "FAIL: a run resumed with the hint differs from the uninterrupted one"; fail=1; }
expect 0 "a resume to more epochs" sh -c "cd '$tmp/h' && '$nnlc' run '$xor' --resume h.ck --set epochs=45"
has "^nnlc: --set epochs=45 replaces epochs=40, recorded in h.ck$" out "an override reported"
cmp -s "$tmp/h/full45.csv" "$tmp/h/part.csv" ||
    { echo "FAIL: a resume to 45 epochs differs from a 45-epoch run"; fail=1; }
expect 0 "a resume with another log" sh -c "cd '$tmp/h' && '$nnlc' run '$xor' --resume h.ck --log other.csv"
has "^nnlc: --log other.csv replaces --log part.csv, recorded in h.ck$" out "--log override reported"
expect 0 "a resume records the options it went on with" sh -c "cd '$tmp/h' && '$nnlc' run '$xor' --resume h.ck --quiet"
grep -q "epoch,step" "$tmp/h/other.csv" && [ ! -s "$tmp/out" ] ||
    { echo "FAIL: the second resume did not go on with --log other.csv"; fail=1; }
# a float64 run's checkpoint: eval and a resume need no --float64
expect 0 "a float64 run" sh -c "cd '$tmp/h' && '$nnlc' run '$xor' --quiet --float64 --set 'checkpoint=\"f64.ck\"; epochs=3'"
expect 0 "eval of a float64 checkpoint without --float64" "$nnlc" eval "$xor" --checkpoint "$tmp/h/f64.ck"
has "^nnlc: with the options recorded in .*f64.ck: --float64 --set 'checkpoint=\"f64.ck\"; epochs=3'$" err "eval says the recorded options"
has "^accuracy " out "eval of a float64 checkpoint"
expect 0 "resume of a float64 checkpoint without --float64" sh -c "cd '$tmp/h' && '$nnlc' run '$xor' --quiet --resume f64.ck --set epochs=4"
expect 2 "NNL_STOP_AFTER=x" env NNL_STOP_AFTER=x "$nnlc" run "$xor" --quiet
has "^nnlc: error: NNL_STOP_AFTER must be a whole number of at least 1 (a step), not 'x'$" err "NNL_STOP_AFTER checked"

exit $fail
