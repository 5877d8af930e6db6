#!/bin/sh
# compare_optimizers.sh [OUT] — trains iris.nnl once with each optimizer of the standard
# library and writes the training loss per epoch of every run into one CSV (OUT, default
# optimizers.csv), the comparison of optimizers that lecture notes draw:
#
#   epoch,sgd,momentum,nesterov,adagrad,rmsprop,adadelta,adam,adamax,nadam
#   1,1.27577597,...
#
# Every run starts from the same parameters (iris.nnl's seed) and sees the same batches; only
# the `optimizer` key differs (nnlc run --set optimizer=...). The hyper-parameters are
# PyTorch's defaults, except sgd's lr, which PyTorch leaves to the user: 0.01 here.
#
# The compiler is $NNLC if set, else build/nnlc of this checkout if it exists, else nnlc
# on the PATH. Plot the result with, e.g., gnuplot:
#   set datafile separator ","; plot for [i=2:10] "optimizers.csv" using 1:i with lines title columnhead
# POSIX sh and awk only.
set -eu

out=${1:-optimizers.csv}
here=$(cd "$(dirname "$0")" && pwd)
if [ -n "${NNLC:-}" ]; then
    nnlc=$NNLC
elif [ -x "$here/../build/nnlc" ]; then
    nnlc=$here/../build/nnlc
else
    nnlc=nnlc
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# name and nnl optimizer call, one per line
optimizers='sgd         sgd(lr = 0.01)
momentum    sgd(lr = 0.01, momentum = 0.9)
nesterov    sgd(lr = 0.01, momentum = 0.9, nesterov = true)
adagrad     adagrad()
rmsprop     rmsprop()
adadelta    adadelta()
adam        adam()
adamax      adamax()
nadam       nadam()'

names=
logs=
while read -r name call; do
    echo "$name: $call" >&2
    "$nnlc" run "$here/iris.nnl" --quiet --set "optimizer=$call" --log "$tmp/$name.csv"
    names="$names $name"
    logs="$logs $tmp/$name.csv"
done <<EOF
$optimizers
EOF

# Join the logs' `loss` columns on their epoch column.
# shellcheck disable=SC2086 # $logs is a list of paths without spaces (mktemp)
awk -F, -v names="$names" '
FNR == 1 {
    f++
    c = 0
    for (i = 1; i <= NF; i++)
        if ($i == "loss")
            c = i
    if (!c) {
        printf "compare_optimizers.sh: %s has no loss column\n", FILENAME > "/dev/stderr"
        exit 1
    }
    next
}
{
    loss[$1, f] = $c
    if ($1 + 0 > last)
        last = $1 + 0
}
END {
    n = split(names, name, " ")
    if (f != n)
        exit 1
    line = "epoch"
    for (i = 1; i <= n; i++)
        line = line "," name[i]
    print line
    for (e = 1; e <= last; e++) {
        line = e
        for (i = 1; i <= n; i++)
            line = line "," loss[e, i]
        print line
    }
}' $logs >"$tmp/out.csv"
mv "$tmp/out.csv" "$out"
echo "wrote $out" >&2
