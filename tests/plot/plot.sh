#!/bin/sh
# plot.sh NNLC CHECK — plots of training logs (nnlc plot, the plot train key) and progress.
#   golden     every tests/plot/NAME.csv through `nnlc plot`: the SVG compared byte for byte
#              with NAME.svg, or the messages and exit status with NAME.err (NNL_UPDATE=1
#              rewrites them: review the diff)
#   render     small.svg rendered by headless Chromium to PNG: not blank, both curves'
#              colours present; a blank SVG rendered the same way is refused by the check.
#              Chromium missing is a failure; NNL_NO_CHROMIUM=1 skips (exit 77) instead
#   run        plot = "..." in nnlc run: with a log, the same bytes as `nnlc plot LOG`;
#              without one, from the rows kept in memory; written on divergence and on
#              SIGTERM too; its errors
#   trainer    a standalone trainer writes the same plot (--set plot=...), takes --verbose
#   progress   on a terminal (a pty from `script`): live lines rewritten with \r that end
#              as the epoch lines a pipe gets; --verbose adds the stages and the totals
set -eu
nnlc=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
check=$2
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() {
    echo "plot.sh $check: $*" >&2
    exit 1
}

# plot_of NAME OUT: `nnlc plot NAME.csv` run in tests/plot, its messages and exit status
# into OUT.err, its SVG into OUT.svg
plot_of() {
    rc=0
    (cd "$here" && "$nnlc" plot "$1.csv" -o "$2.svg") >"$2.err" 2>&1 || rc=$?
    echo "exit: $rc" >>"$2.err"
}

golden() {
    for f in "$here"/*.csv; do
        name=$(basename "$f" .csv)
        plot_of "$name" "$tmp/$name"
        if [ "${NNL_UPDATE:-0}" = 1 ]; then
            if [ -f "$tmp/$name.svg" ]; then
                cp "$tmp/$name.svg" "$here/$name.svg"
            else
                cp "$tmp/$name.err" "$here/$name.err"
            fi
        elif [ -f "$here/$name.svg" ]; then
            [ "$(cat "$tmp/$name.err")" = "exit: 0" ] || fail "$name: $(cat "$tmp/$name.err")"
            diff -u "$here/$name.svg" "$tmp/$name.svg" || fail "$name.svg differs"
        elif [ -f "$here/$name.err" ]; then
            diff -u "$here/$name.err" "$tmp/$name.err" || fail "$name.err differs"
            [ ! -e "$tmp/$name.svg" ] || fail "$name: an SVG was written for a bad log"
        else
            fail "$name.csv has neither $name.svg nor $name.err (NNL_UPDATE=1 makes one)"
        fi
    done
    # nothing but the SVG is left beside it (the temp file was renamed)
    [ "$(ls "$tmp" | grep -c tmp)" = 0 ] || fail "a temp file was left: $(ls "$tmp")"
    echo "golden: $(ls "$here"/*.csv | wc -l) logs"
}

# screenshot SVG PNG WIDTH HEIGHT
screenshot() {
    timeout 120 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
        --screenshot="$2" --window-size="$3,$4" "file://$1" >"$tmp/chromium.log" 2>&1 ||
        { cat "$tmp/chromium.log"; fail "chromium failed on $1"; }
    [ -s "$2" ] || { cat "$tmp/chromium.log"; fail "chromium wrote no $2"; }
}

render() {
    if ! command -v chromium >/dev/null 2>&1; then
        if [ "${NNL_NO_CHROMIUM:-0}" = 1 ]; then
            echo "render: skipped: chromium is not installed and NNL_NO_CHROMIUM=1"
            exit 77
        fi
        fail "chromium is not installed (scripts/install-deps installs it; NNL_NO_CHROMIUM=1 skips this test)"
    fi
    (cd "$here" && "$nnlc" plot small.csv -o "$tmp/small.svg")
    screenshot "$tmp/small.svg" "$tmp/small.png" 640 600
    /usr/bin/python3 "$here/png_check.py" "$tmp/small.png" 5000 8 1f77b4 ff7f0e
    printf '<svg xmlns="http://www.w3.org/2000/svg" width="640" height="600"/>\n' >"$tmp/blank.svg"
    screenshot "$tmp/blank.svg" "$tmp/blank.png" 640 600
    if /usr/bin/python3 "$here/png_check.py" "$tmp/blank.png" 5000 8 >/dev/null 2>&1; then
        fail "png_check.py accepted a blank page"
    fi
}

run() {
    cp -r "$root/examples/data" "$root/examples/iris.nnl" "$tmp/"
    cd "$tmp"
    "$nnlc" run iris.nnl --quiet --set epochs=5 --log log.csv --set 'plot = "with-log.svg"'
    "$nnlc" plot log.csv -o from-log.svg
    cmp with-log.svg from-log.svg || fail "the run's plot differs from nnlc plot of its log"
    "$nnlc" run iris.nnl --quiet --set epochs=5 --set 'plot = "memory.svg"'
    cmp memory.svg from-log.svg || fail "the plot from memory differs from the log's"
    "$nnlc" run iris.nnl --quiet --set epochs=2 --set log_every=3 --set 'plot = "steps.svg"'
    grep -q '>step</text>' steps.svg || fail "a per-step log is not plotted against steps"
    [ "$(grep -c '<g>' steps.svg)" = 1 ] || fail "a per-step log has more than the loss panel"
    # diverged: exit 3, and the plot of the epochs before
    rc=0
    "$nnlc" run iris.nnl --quiet --set epochs=3 --set 'plot = "diverged.svg"' \
        --set "optimizer = sgd(lr = 1e30)" 2>err.txt || rc=$?
    [ "$rc" = 3 ] || fail "divergence gave exit $rc"
    grep -q '<svg' diverged.svg || fail "no plot after divergence"
    # SIGTERM: exit 143 and the plot of the rows so far
    "$nnlc" run iris.nnl --quiet --set epochs=1000000 --log term.csv \
        --set 'plot = "term.svg"' 2>err.txt &
    pid=$!
    i=0
    while [ "$(cat term.csv 2>/dev/null | wc -l)" -lt 4 ] && [ $i -lt 600 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    kill -TERM $pid
    rc=0
    wait $pid || rc=$?
    [ "$rc" = 143 ] || fail "SIGTERM gave exit $rc"
    grep -q '<polyline' term.svg || fail "no curve in the plot written on SIGTERM"
    # errors
    rc=0
    "$nnlc" run iris.nnl --quiet --set 'plot = 3' 2>err.txt || rc=$?
    [ "$rc" = 1 ] && grep -q "^--set:1:8: error: plot must be a string" err.txt ||
        { cat err.txt; fail "plot = 3 gave exit $rc"; }
    rc=0
    "$nnlc" run iris.nnl --quiet --log same.csv --set 'plot = "same.csv"' 2>err.txt || rc=$?
    [ "$rc" = 1 ] && grep -q "plot and log name the same file" err.txt ||
        { cat err.txt; fail "plot = log gave exit $rc"; }
    rc=0
    "$nnlc" run iris.nnl --quiet --set epochs=1 --set 'plot = "nodir/x.svg"' 2>err.txt || rc=$?
    [ "$rc" = 2 ] && grep -q "^nodir/x.svg: error: cannot write the plot: No such file" err.txt ||
        { cat err.txt; fail "an unwritable plot gave exit $rc"; }
    rc=0
    "$nnlc" plot log.csv -o log.csv 2>err.txt || rc=$?
    [ "$rc" = 2 ] || fail "nnlc plot over its own log gave exit $rc"
    rc=0
    "$nnlc" plot missing.csv 2>err.txt || rc=$?
    [ "$rc" = 2 ] && grep -q "^missing.csv: error: cannot open the file" err.txt ||
        { cat err.txt; fail "a missing log gave exit $rc"; }
    "$nnlc" plot log.csv
    cmp log.svg from-log.svg || fail "the default output is not LOG.svg"
}

trainer() {
    cp -r "$root/examples/data" "$root/examples/iris.nnl" "$tmp/"
    cd "$tmp"
    "$nnlc" build iris.nnl -o iris-trainer --quiet --set epochs=4
    ./iris-trainer --quiet --log log.csv --set plot=trainer.svg
    "$nnlc" plot log.csv -o from-log.svg
    cmp trainer.svg from-log.svg || fail "the trainer's plot differs from nnlc plot of its log"
    ./iris-trainer --verbose --set 'plot="mem.svg"' >out.txt
    cmp mem.svg from-log.svg || fail "the trainer's plot from memory differs"
    grep -q "^data: 120 training samples from " out.txt && grep -q "^done: 32 steps" out.txt &&
        grep -q "^plot: wrote mem.svg" out.txt || { cat out.txt; fail "--verbose"; }
    ./iris-trainer --help | grep -q "^  plot       (none)" || fail "--help lacks plot"
}

# visible FILE: what a terminal shows of each line: the text after its last \r, less the
# spaces that cleared a longer line, with the times replaced by T
visible() {
    /usr/bin/python3 -c '
import re, sys
for line in open(sys.argv[1], newline="").read().split("\n"):
    line = line.rstrip("\r").split("\r")[-1].rstrip(" ")
    print(re.sub(r"\(\d+\.\d\d s\)|compiled in \d+ ms", "T", line))
' "$1"
}

progress() {
    command -v script >/dev/null || fail "script (bsdutils) is not installed"
    cp -r "$root/examples/data" "$root/examples/iris.nnl" "$tmp/"
    cd "$tmp"
    # iris has 8 batches per epoch: a live line after the first batch of each epoch
    script -qec "$nnlc run iris.nnl --set epochs=3" /dev/null >tty.txt </dev/null
    "$nnlc" run iris.nnl --set epochs=3 >pipe.txt
    ! grep -q "$(printf '\r')" pipe.txt || fail "a pipe got carriage returns"
    for e in 1 2 3; do
        grep -q "$(printf '\r')epoch $e/3  batch 1/8  loss [0-9.e+-]*  [0-9]* samples/s  ETA " \
            tty.txt || { cat -A tty.txt; fail "no live line for epoch $e"; }
        grep -q "$(printf '\r')epoch $e/3  loss .*s)" tty.txt ||
            { cat -A tty.txt; fail "epoch $e's summary does not overwrite its live line"; }
    done
    visible tty.txt >tty.seen
    visible pipe.txt >pipe.seen
    diff -u pipe.seen tty.seen || fail "the terminal ends with other lines than a pipe gets"
    script -qec "$nnlc run iris.nnl --set epochs=1 --verbose" /dev/null >verbose.txt </dev/null
    for what in "nnlc: check " "nnlc: LLVM " "progress: live, on a terminal" "done: 8 steps"; do
        grep -q "^$what" verbose.txt || { cat verbose.txt; fail "--verbose lacks '$what'"; }
    done
    script -qec "$nnlc run iris.nnl --set epochs=2 --verbose --quiet" /dev/null >quiet.txt </dev/null
    [ ! -s quiet.txt ] || { cat -A quiet.txt; fail "--verbose --quiet printed something"; }
}

case $check in
golden) golden ;;
render) render ;;
run) run ;;
trainer) trainer ;;
progress) progress ;;
*) fail "unknown check" ;;
esac
