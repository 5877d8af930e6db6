#!/bin/sh
# example.sh NNLC CHECK [ARGS] — trains an example end to end and checks what it reaches.
#   xor                    final training loss < 0.01
#   iris                   held-out accuracy >= 0.93
#   regression BASELINE    held-out MSE within 10% of the least-squares baseline (a program
#                          that prints it: lstsq_baseline)
#   determinism SCRIPT     two runs with the same seed write byte-identical logs
#   reference DIR          DIR/model.nnl from DIR/init.csv matches PyTorch's losses and final
#                          parameters (DIR/losses.csv, DIR/final.csv) to 1e-5 relative
set -eu
nnlc=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
check=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# column NAME FILE: the last row's value of column NAME of a CSV log
column() {
    awk -F, -v name="$1" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == name) c = i; next }
                          { v = $c } END { if (!c) exit 1; print v }' "$2"
}

# at_most A B: A <= B as numbers
at_most() {
    awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 <= b + 0) }'
}

cd "$root/examples"
case $check in
xor)
    "$nnlc" run xor.nnl --quiet --log "$tmp/log.csv"
    loss=$(column loss "$tmp/log.csv")
    echo "xor: final loss $loss (target < 0.01)"
    at_most "$loss" 0.00999999
    ;;
iris)
    "$nnlc" run iris.nnl --quiet --log "$tmp/log.csv"
    acc=$(column val_accuracy "$tmp/log.csv")
    echo "iris: held-out accuracy $acc (target >= 0.93)"
    at_most 0.93 "$acc"
    ;;
regression)
    baseline=$("$1" data/diabetes.csv target 0.8 0)
    "$nnlc" run regression.nnl --quiet --log "$tmp/log.csv"
    mse=$(column val_loss "$tmp/log.csv")
    limit=$(awk -v b="$baseline" 'BEGIN { printf "%.9g", b * 1.1 }')
    echo "regression: held-out MSE $mse, least squares $baseline (target <= $limit)"
    at_most "$mse" "$limit"
    ;;
determinism)
    "$nnlc" run "$1" --quiet --log "$tmp/a.csv" --save-params "$tmp/a.params"
    "$nnlc" run "$1" --quiet --log "$tmp/b.csv" --save-params "$tmp/b.params"
    cmp "$tmp/a.csv" "$tmp/b.csv"
    cmp "$tmp/a.params" "$tmp/b.params"
    echo "$1: two runs wrote identical logs ($(wc -l <"$tmp/a.csv") lines) and parameters"
    ;;
reference)
    dir=$(cd "$1" && pwd)
    cd "$dir"
    "$nnlc" run model.nnl --quiet --init init.csv --log "$tmp/log.csv" \
        --save-params "$tmp/final.csv"
    awk -F, 'NR == 1 { print "step,loss"; next } { print $2 "," $3 }' "$tmp/log.csv" >"$tmp/losses.csv"
    "$here/../reference/compare.sh" losses.csv "$tmp/losses.csv" 1e-5
    # parameters: 1e-5 relative, and 1e-7 absolute for the few below 0.01 (float32 cannot
    # resolve them better than it resolves the O(0.1) terms they are the difference of)
    "$here/../reference/compare.sh" final.csv "$tmp/final.csv" 1e-5 1e-2
    echo "$(basename "$dir"): 20 losses and the final parameters match PyTorch to 1e-5"
    ;;
*)
    echo "example.sh: unknown check '$check'" >&2
    exit 2
    ;;
esac
