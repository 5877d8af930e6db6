#!/bin/sh
# example.sh NNLC CHECK [ARGS] — trains an example end to end and checks what it reaches.
#   xor                    final training loss < 0.01
#   iris                   held-out accuracy >= 0.93
#   regression BASELINE    held-out MSE within 10% of the least-squares baseline (a program
#                          that prints it: lstsq_baseline)
#   determinism SCRIPT     two runs with the same seed write byte-identical logs
#   batchnorm              eval normalizes with the running statistics, training with the batch's
#   threads                a CNN trained with NNL_THREADS=1, 2, 3: byte-identical logs and
#                          parameters (the runtime's tasks do not depend on the thread count)
#   dropout                dropout zeroes 30% in training (the loss it gives), none in validation
#   diverge                NaN/Inf forced three ways: huge lr, log of 0 (exit 3), nan cell (1);
#                          a NaN gradient under a finite loss (exit 3, naming the tensor)
#   resume                 iris stopped (at an epoch, and by SIGTERM) and resumed from its
#                          checkpoint ends byte-identical to an uninterrupted run
#   reference DIR          DIR/model.nnl from DIR/init.csv matches PyTorch's losses and final
#                          parameters (DIR/losses.csv, DIR/final.csv) to 1e-5 relative
#   reference32 DIR        the same with DIR/losses32.csv and DIR/final32.csv (float32, 1e-5)
#   reference64 DIR        nnlc run --float64 against DIR/losses64.csv and DIR/final64.csv
#                          (PyTorch in float64) to 1e-9 relative
#   user-optimizer         user_optimizer.nnl (Lion, defined in nnl) trains xor to a final
#                          loss < 0.05, and its update compiles to ONE elementwise kernel
#                          over the parameter arena, as the built-in adam's does
#   compare-optimizers     examples/compare_optimizers.sh writes a row per epoch, and every
#                          optimizer's loss is lower at the last epoch than at the first
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
reference | reference32 | reference64)
    dir=$(cd "$1" && pwd)
    cd "$dir"
    case $check in
    reference) suffix='' precision='' tol=1e-5 floor=1e-2 ;;
    reference32) suffix=32 precision='' tol=1e-5 floor=1e-2 ;;
    # float64: 1e-9 relative, and 1e-12 absolute for parameters below 1e-3. The run agrees
    # with PyTorch's float64 run to about 1e-14 (the order of its sums and FMA contraction
    # differ); 1e-9 leaves room for that to grow on another machine, and still catches any
    # difference in a rule: the smallest one found (the float32 bias correction of Adam,
    # see stdlib/optimizers.nnl) was 1e-5.
    reference64) suffix=64 precision=--float64 tol=1e-9 floor=1e-3 ;;
    esac
    # shellcheck disable=SC2086 # $precision is empty or one word
    "$nnlc" run model.nnl --quiet $precision --init init.csv --log "$tmp/log.csv" \
        --save-params "$tmp/final.csv"
    awk -F, 'NR == 1 { print "step,loss"; next } { print $2 "," $3 }' "$tmp/log.csv" >"$tmp/losses.csv"
    "$here/../reference/compare.sh" "losses$suffix.csv" "$tmp/losses.csv" "$tol"
    # parameters: relative, and absolute for the few below the floor (a parameter near 0
    # cannot be resolved better than the O(0.1) terms it is the difference of: float32 to
    # about 1e-7, float64 to about 1e-16)
    "$here/../reference/compare.sh" "final$suffix.csv" "$tmp/final.csv" "$tol" "$floor"
    steps=$(($(wc -l <"losses$suffix.csv") - 1))
    echo "$(basename "$dir"): $steps losses and the final parameters match PyTorch to $tol"
    ;;
user-optimizer)
    script=$here/user_optimizer.nnl
    "$nnlc" run "$script" --quiet --log "$tmp/log.csv"
    loss=$(column loss "$tmp/log.csv")
    echo "user_optimizer.nnl (Lion): final loss $loss (target < 0.05)"
    at_most "$loss" 0.04999999
    # The update entry: its lines up to the next entry (a line "name:") or the end.
    update() {
        "$nnlc" dump --stage=kernels "$1" >"$tmp/kernels.txt"
        awk '/^[A-Za-z_][A-Za-z0-9_]*:$/ { on = ($0 == "nnl_update:"); next } on && NF' \
            "$tmp/kernels.txt"
    }
    mine=$(update "$script")
    adam=$(update xor.nnl)
    echo "lion:  $mine"
    echo "adam:  $adam"
    # exactly one kernel, elementwise, writing the parameters, over the whole arena
    for k in "$mine" "$adam"; do
        [ "$(printf '%s\n' "$k" | wc -l)" -eq 1 ] || { echo "not one kernel" >&2; exit 1; }
        case $k in
        *'elementwise '*'-> params+0'*' over ['*']') ;;
        *) echo "not one elementwise loop over the parameter arena: $k" >&2; exit 1 ;;
        esac
    done
    [ "${mine##* over }" = "${adam##* over }" ] || {
        echo "lion's loop is not over the same arena as adam's" >&2
        exit 1
    }
    ;;
compare-optimizers)
    NNLC=$nnlc sh ./compare_optimizers.sh "$tmp/optimizers.csv" 2>/dev/null
    epochs=$(sed -n 's/^ *epochs *= *\([0-9]*\).*/\1/p' iris.nnl)
    awk -F, -v want="$epochs" '
        NR == 1 {
            if ($0 != "epoch,sgd,momentum,nesterov,adagrad,rmsprop,adadelta,adam,adamax,nadam") {
                print "bad header: " $0; bad = 1
            }
            n = NF; next
        }
        NF != n || $1 != NR - 1 { print "bad row " NR ": " $0; bad = 1 }
        NR == 2 { for (i = 2; i <= n; i++) first[i] = $i }
        { for (i = 2; i <= n; i++) last[i] = $i }
        END {
            if (NR - 1 != want) { print NR - 1 " rows, " want " epochs"; bad = 1 }
            for (i = 2; i <= n; i++)
                if (!(last[i] + 0 < first[i] + 0)) {
                    print "column " i ": loss " first[i] " at epoch 1, " last[i] " at the last"
                    bad = 1
                }
            exit bad
        }' "$tmp/optimizers.csv" >&2
    echo "compare_optimizers.sh: $(($(wc -l <"$tmp/optimizers.csv") - 1)) epochs, 9 optimizers, every loss decreased"
    ;;
resume)
    # stopped after 37 epochs (a checkpoint at the end), then resumed to 100 (the script's
    # epochs, given again: the checkpoint records --set epochs=37), and stopped by SIGTERM
    # mid-run then resumed: both end byte-identical to an uninterrupted run
    cp -r data "$tmp/"
    sed 's/    seed      = 1/    seed      = 1\n    checkpoint = "iris.ckpt"\n    checkpoint_every = 10/' \
        iris.nnl >"$tmp/iris.nnl"
    cd "$tmp"
    "$nnlc" run iris.nnl --quiet --log full.csv --save-params full.params
    rm -f iris.ckpt
    "$nnlc" run iris.nnl --quiet --set epochs=37 --log part.csv
    "$nnlc" run iris.nnl --quiet --resume iris.ckpt --set epochs=100 --save-params part.params
    cmp full.csv part.csv
    cmp full.params part.params
    rm -f iris.ckpt
    "$nnlc" run iris.nnl --quiet --set epochs=20000 --log long.csv --save-params long.params
    rm -f iris.ckpt killed.csv
    "$nnlc" run iris.nnl --quiet --set epochs=20000 --log killed.csv &
    pid=$!
    # SIGTERM once training has begun (a log row is written), not while the script is
    # still compiling (slow in the sanitizer build), when no handler is installed yet
    tries=0
    while [ "$(cat killed.csv 2>/dev/null | wc -l)" -lt 2 ] && [ $tries -lt 600 ] &&
        kill -0 $pid 2>/dev/null; do
        sleep 0.1
        tries=$((tries + 1))
    done
    kill -TERM $pid 2>/dev/null || true
    rc=0
    wait $pid || rc=$?
    if [ "$rc" = 0 ]; then
        echo "resume: the run ended before SIGTERM; nothing to check"
    else
        [ "$rc" = 143 ] || { echo "resume: SIGTERM gave exit $rc, expected 143"; exit 1; }
        "$nnlc" run iris.nnl --quiet --set epochs=20000 --resume iris.ckpt --log killed.csv \
            --save-params killed.params
        cmp long.csv killed.csv
        cmp long.params killed.params
    fi
    head -c 100 iris.ckpt >bad.ckpt
    if "$nnlc" run iris.nnl --quiet --resume bad.ckpt 2>err.txt; then
        echo "resume: a truncated checkpoint was accepted"; exit 1
    fi
    grep -q "truncated at byte 100" err.txt
    echo "resume: stopped and resumed runs end byte-identical; a truncated checkpoint is refused"
    ;;
threads)
    # the runtime's worker threads change nothing: a CNN on random 12x12 images, batches of
    # 40 (convolutions in tasks of 16, 16 and 8 samples), with 1, 2 and 3 threads
    cd "$tmp"
    awk 'BEGIN { srand(7); for (i = 0; i < 144; i++) printf "p%d,", i; print "y"
                 for (r = 0; r < 100; r++) { for (i = 0; i < 144; i++) printf "%.4f,", rand()
                                             print int(rand() * 3) } }' >img.csv
    cat >cnn.nnl <<NNL
data d = csv("img.csv", target = "y")
model m(x[1, 12, 12]) {
    c1 = conv2d(x, 4, 3, padding = 1)
    p1 = max_pool(relu(c1))
    c2 = relu(conv2d(p1, 9, 3))
    return dense(flatten(c2), 3)
}
train m {
    data = d
    loss = cross_entropy
    optimizer = adam(lr = 0.01)
    epochs = 3
    batch = 40
    seed = 2
}
NNL
    for t in 1 2 3; do
        NNL_THREADS=$t "$nnlc" run cnn.nnl --quiet --log "t$t.csv" --save-params "t$t.params"
    done
    for t in 2 3; do
        cmp t1.csv "t$t.csv"
        cmp t1.params "t$t.params"
    done
    echo "threads: 1, 2 and 3 threads wrote identical logs and parameters"
    ;;
batchnorm)
    # evaluation normalizes with the running statistics: after one full-batch step with
    # momentum 1 (running = the batch's, the variance unbiased) and lr 0, eval's loss is
    # the training loss to 1%; with momentum 0 (running mean 0, variance 1) far from it
    cd "$tmp"
    cat >bn.nnl <<NNL
data iris = csv("$root/examples/data/iris.csv", target = "species")
model net(x[4]) {
    h = relu(batch_norm(dense(x, 16), momentum = 1))
    return dense(h, 3)
}
train net {
    data = iris
    loss = cross_entropy
    optimizer = sgd(lr = 0)
    epochs = 1
    batch = all
    checkpoint = "bn.ckpt"
}
NNL
    "$nnlc" run bn.nnl --quiet --log bn.csv
    train=$(tail -1 bn.csv | cut -d, -f3)
    ev=$("$nnlc" eval bn.nnl --checkpoint bn.ckpt --quiet | awk '$1 == "loss" { print $2 }')
    sed 's/momentum = 1/momentum = 0/' bn.nnl >bn0.nnl
    "$nnlc" run bn0.nnl --quiet --fresh # the same model: it replaces bn.ckpt on purpose
    ev0=$("$nnlc" eval bn0.nnl --checkpoint bn.ckpt --quiet | awk '$1 == "loss" { print $2 }')
    echo "batchnorm: training loss $train, eval $ev (momentum 1), $ev0 (momentum 0)"
    awk -v t="$train" -v e="$ev" -v z="$ev0" 'BEGIN {
        d = (e - t) / t; if (d < 0) d = -d; d0 = (z - t) / t; if (d0 < 0) d0 = -d0
        exit !(d < 0.01 && d0 > 0.1) }'
    ;;
dropout)
    # dropout(ones, 0.3) summed over 50 elements: in training (kept / 0.7), whose squared
    # distance from 50 averages 50·0.3·0.7/0.49 = 21.43 (±1.7 over 320 samples); in
    # validation exactly 50, so val_loss is 0
    cd "$tmp"
    cat >dstat.nnl <<NNL
data d = csv("$root/tests/grad/images.csv", target = "y")
model m(x[50]) {
    return sum(dropout(x * 0 + 1, 0.3)) + 0 * dense(x, 1)
}
loss off50(out, y) = mse(out, y * 0 + 50)
train m {
    data = d
    validate = d
    loss = off50
    optimizer = sgd(lr = 0)
    epochs = 40
    batch = 8
    seed = 3
}
NNL
    "$nnlc" run dstat.nnl --quiet --log dstat.csv
    awk -F, 'NR > 1 { s += $3; if ($4 != 0) bad = 1; n++ }
             END { m = s / n; print "dropout: training loss " m " (expected 21.43), val_loss 0"
                   exit !(n == 40 && !bad && m > 15 && m < 28) }' dstat.csv
    ;;
diverge)
    # NaN and Inf forced three ways: an enormous lr, the log of 0, a bad input cell
    cp -r data iris.nnl "$tmp/"
    cd "$tmp"
    rc=0
    "$nnlc" run iris.nnl --quiet --set "optimizer = sgd(lr = 1e30)" 2>err.txt || rc=$?
    [ "$rc" = 3 ] || { echo "diverge: huge lr gave exit $rc, expected 3"; cat err.txt; exit 1; }
    grep -q "training diverged: the loss is .* at epoch 1, step" err.txt
    sed 's/    loss      = cross_entropy/    loss      = log0/' "$root/examples/iris.nnl" >log0.nnl
    printf 'loss log0(out, label) = cross_entropy(out, label) + log(0 * mean(out))\n' >>log0.nnl
    rc=0
    "$nnlc" run log0.nnl --quiet 2>err.txt || rc=$?
    [ "$rc" = 3 ] || { echo "diverge: log of 0 gave exit $rc, expected 3"; cat err.txt; exit 1; }
    grep -q "the loss is -inf at epoch 1, step 1 (no finite loss before it)" err.txt
    { head -1 data/iris.csv; echo "5.1,nan,1.4,0.2,0"; } >data/bad.csv
    sed 's|data/iris.csv|data/bad.csv|' "$root/examples/iris.nnl" >bad.nnl
    rc=0
    "$nnlc" run bad.nnl --quiet 2>err.txt || rc=$?
    [ "$rc" = 1 ] || { echo "diverge: a nan cell gave exit $rc, expected 1"; cat err.txt; exit 1; }
    grep -q "bad.csv:2:5: error: value 'nan' is not a finite number" err.txt
    # a NaN gradient under a finite loss: the update's gradient norm catches it in the same
    # step and names the tensor; no checkpoint records the step
    cat >nangrad.nnl <<'NNL'
data xor = csv("data/xor.csv", target = "y")
model net(x[2]) {
    a = dense(x, 1)
    b = dense(x, 1)
    return sqrt(0 * a) + b
}
train net {
    data = xor
    loss = mse
    optimizer = sgd(lr = 0.1)
    epochs = 5
    batch = all
    checkpoint = "nan.ckpt"
}
NNL
    rc=0
    "$nnlc" run nangrad.nnl --quiet 2>err.txt || rc=$?
    [ "$rc" = 3 ] || { echo "diverge: a nan gradient gave exit $rc, expected 3"; cat err.txt; exit 1; }
    grep -q "training diverged: the gradient of 'a.W' (nan first) is not finite at epoch 1, step 1 (gradient norm nan; the step's loss " err.txt
    [ ! -e nan.ckpt ] || { echo "diverge: a checkpoint was written after a nan gradient"; exit 1; }
    echo "diverge: huge lr and log 0 stop with exit 3 naming the step; a nan cell is refused at 2:5;"
    echo "diverge: a nan gradient under a finite loss stops at step 1 naming 'a.W'"
    ;;
*)
    echo "example.sh: unknown check '$check'" >&2
    exit 2
    ;;
esac
