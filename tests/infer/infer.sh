#!/bin/sh
# infer.sh NNLC CHECK — using trained models: nnlc predict, nnlc eval, nnlc build --lib.
#   forward   xor's predictions equal a forward pass computed here (awk) from the
#             parameters --save-params wrote, to 1e-6; .csv and .npy outputs agree
#   eval      iris: eval's accuracy and loss on the whole file equal those computed here
#             from predict's outputs and the labels; an input file without the target
#             column gives the same outputs; the confusion matrix adds up
#   binary    a one-output classifier of iris (versicolor or not, 20 epochs: imperfect):
#             with bce on a sigmoid output eval's 2x2 confusion matrix counts output > 0.5,
#             with bce_logits on the logit output > 0, each equal to the counts from
#             predict's outputs; mse prints none; targets not 0/1 print a note, no matrix
#   errors    a missing or damaged checkpoint, another model's checkpoint, inputs of the
#             wrong width, an unknown output format, an unknown --data name: each refused
#             with a message naming the file (or option), exit status 1 or 2, no output file
#   lib       nnlc build --lib: a C program linked with NAME.o gives outputs identical to
#             nnlc predict's (--cpu=native) and within 1e-6 of them (x86-64-v3); NAME_load
#             refuses damaged and foreign checkpoints
set -eu
nnlc=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
check=$2
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r "$root/examples/data" "$root/examples/xor.nnl" "$root/examples/iris.nnl" "$tmp/"
cd "$tmp"

fail() {
    echo "$check: $*" >&2
    exit 1
}

# train SCRIPT: trains with a checkpoint NAME.ckpt and parameters NAME.params
train() {
    name=${1%.nnl}
    "$nnlc" run "$1" --quiet --set "checkpoint=\"$name.ckpt\"" --save-params "$name.params"
}

# close A B TOL: two CSV files of numbers agree to TOL relative (absolute below 1)
close() {
    paste -d, "$1" "$2" | awk -F, -v tol="$3" '
        NR == 1 { next }
        { n = NF / 2
          for (i = 1; i <= n; i++) {
              a = $i; b = $(i + n); d = a - b; if (d < 0) d = -d
              m = a < 0 ? -a : a; if (m < 1) m = 1
              if (d > tol * m) { print "row " NR " column " i ": " a " vs " b; bad = 1; exit }
          } }
        END { exit bad }'
}

case $check in
forward)
    train xor.nnl
    "$nnlc" predict xor.nnl --checkpoint xor.ckpt --input data/xor.csv -o pred.csv
    "$nnlc" predict xor.nnl --checkpoint xor.ckpt --input data/xor.csv -o pred.npy
    "$nnlc" predict xor.nnl --checkpoint xor.ckpt --input data/xor.csv >stdout.csv
    cmp pred.csv stdout.csv || fail "-o FILE.csv and standard output differ"
    # h = tanh(x W1 + b1), out = sigmoid(h W2 + b2), from the parameter file
    awk -F, 'NR == FNR { for (i = 2; i <= NF; i++) p[$1, i - 2] = $i; next }
             FNR == 1 { print "output"; next }
             { z = p["output.b", 0]
               for (j = 0; j < 8; j++) {
                   a = p["h.b", j] + $1 * p["h.W", j] + $2 * p["h.W", 8 + j]
                   e = exp(2 * a); z += (e - 1) / (e + 1) * p["output.W", j]
               }
               printf "%.9g\n", 1 / (1 + exp(-z)) }' xor.params data/xor.csv >expect.csv
    [ "$(head -1 pred.csv)" = output ] || fail "header $(head -1 pred.csv)"
    [ "$(wc -l <pred.csv)" = "$(wc -l <data/xor.csv)" ] || fail "a row per sample expected"
    close pred.csv expect.csv 1e-6 || fail "predictions differ from the forward pass"
    # the .npy: a 128-byte header for this shape, then float32 little-endian
    od -An -v -t f4 -j 128 pred.npy | tr -s ' ' '\n' | sed '/^$/d' >npy.txt
    tail -n +2 pred.csv | paste -d, - npy.txt | awk -F, '{ d = $1 - $2; if (d < 0) d = -d
        if (d > 1e-7) { print "npy row " NR ": " $1 " vs " $2; exit 1 } }' ||
        fail ".npy and .csv disagree"
    head -c 10 pred.npy | od -An -c | grep -q "N   U   M   P   Y" || fail "not an npy file"
    echo "forward: xor predictions equal the forward pass to 1e-6; csv, npy, stdout agree"
    ;;
eval)
    train iris.nnl
    "$nnlc" predict iris.nnl --checkpoint iris.ckpt --input data/iris.csv -o full.csv
    cut -d, -f1-4 data/iris.csv >inputs.csv
    "$nnlc" predict iris.nnl --checkpoint iris.ckpt --input inputs.csv -o part.csv
    cmp full.csv part.csv || fail "inputs without the target column predict differently"
    "$nnlc" eval iris.nnl --checkpoint iris.ckpt --data iris --quiet >eval.txt
    cat eval.txt
    # accuracy and mean cross-entropy from the outputs and the labels
    tail -n +2 data/iris.csv | cut -d, -f5 >labels.txt
    tail -n +2 full.csv | paste -d, labels.txt - | awk -F, '
        { y = $1; c = $2; m = $3; for (k = 3; k <= 5; k++) if ($k > m) m = $k
          s = 0; for (k = 3; k <= 5; k++) s += exp($k - m)
          loss += m + log(s) - $(3 + y); right += (c == y); n++ }
        END { printf "%.9g %.9g\n", loss / n, right / n }' >mine.txt
    read -r myloss myacc <mine.txt
    loss=$(awk '$1 == "loss" { print $2 }' eval.txt)
    acc=$(awk '$1 == "accuracy" { print $2 }' eval.txt)
    awk -v a="$loss" -v b="$myloss" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-5 * b + 1e-7) }' ||
        fail "eval's loss $loss, the outputs' $myloss"
    awk -v a="$acc" -v b="$myacc" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d < 1e-5) }' ||
        fail "eval's accuracy $acc, the outputs' $myacc"
    total=$(awk '/^confusion/ { on = 1; getline; next } on { for (i = 2; i <= NF; i++) s += $i }
                 END { print s }' eval.txt)
    [ "$total" = 150 ] || fail "the confusion matrix counts $total samples, not 150"
    # the default data set is the validation set
    "$nnlc" eval iris.nnl --checkpoint iris.ckpt >default.txt
    grep -q "evaluated on 'test' (30 samples)" default.txt || fail "$(cat default.txt)"
    echo "eval: loss $loss and accuracy $acc equal those of predict's outputs; 150 samples"
    ;;
binary)
    # y: 1 for versicolor, which no line separates from the other two species
    awk -F, 'NR == 1 { print "a,b,c,d,y"; next } { print $1 "," $2 "," $3 "," $4 "," ($5 == 1) }' \
        data/iris.csv >data/bin.csv
    cat >bin.nnl <<'EOF'
data bin = csv("data/bin.csv", target = "y", standardize = true)
model net(x[4]) {
    return sigmoid(dense(x, 1))
}
train net {
    data      = bin
    loss      = bce
    optimizer = adam(lr = 0.01)
    epochs    = 20
    batch     = 16
    seed      = 1
    metrics   = [accuracy]
}
EOF
    sed -e 's/return sigmoid(dense(x, 1))/return dense(x, 1)/' \
        -e 's/loss      = bce/loss      = bce_logits/' bin.nnl >logit.nnl
    sed 's/loss      = bce/loss      = mse/' bin.nnl >mse.nnl
    tail -n +2 data/bin.csv | cut -d, -f5 >labels.txt
    # matrix SCRIPT THRESHOLD: eval's matrix equals the one counted from predict's outputs
    matrix() {
        name=${1%.nnl}
        train "$1"
        "$nnlc" eval "$1" --checkpoint "$name.ckpt" --quiet >"$name.txt"
        cat "$name.txt"
        grep -q "^confusion matrix (.* > $2)\$" "$name.txt" || fail "$1: no matrix for > $2"
        awk '/^confusion/ { on = 1; getline; next } on { print $2, $3 }' "$name.txt" >"$name.got"
        "$nnlc" predict "$1" --checkpoint "$name.ckpt" --input data/bin.csv -o "$name.pred.csv"
        tail -n +2 "$name.pred.csv" | paste -d, labels.txt - | awk -F, -v t="$2" '
            { n[$1, ($2 > t)]++ }
            END { print n[0, 0] + 0, n[0, 1] + 0; print n[1, 0] + 0, n[1, 1] + 0 }' >"$name.want"
        cmp "$name.got" "$name.want" ||
            fail "$1: eval's matrix $(cat "$name.got"), the outputs' $(cat "$name.want")"
    }
    matrix bin.nnl 0.5
    matrix logit.nnl 0
    # logits in (0, 0.5] make the two thresholds count differently
    tail -n +2 logit.pred.csv | awk '$1 > 0 && $1 <= 0.5 { n++ } END { exit !n }' ||
        fail "no logit in (0, 0.5]: the test cannot tell the thresholds apart"
    train mse.nnl
    "$nnlc" eval mse.nnl --checkpoint mse.ckpt --quiet >mse.txt
    ! grep -q confusion mse.txt || fail "mse printed a confusion matrix: $(cat mse.txt)"
    # a target neither 0 nor 1: a note instead of the matrix (unless refused as bce's data)
    sed '2s/,[01]$/,0.5/' data/bin.csv >data/soft.csv
    sed 's|data/bin.csv|data/soft.csv|' bin.nnl >soft.nnl
    if "$nnlc" eval soft.nnl --checkpoint bin.ckpt --quiet >soft.txt 2>soft.err; then
        grep -q "^no confusion matrix: the targets must be 0 or 1, and 1 of the 150 is not$" soft.txt ||
            fail "soft targets: $(cat soft.txt)"
        ! grep -q "^confusion" soft.txt || fail "soft targets printed a matrix"
    fi
    echo "binary: eval's confusion matrices (> 0.5 for bce, > 0 for bce_logits) equal" \
        "predict's counts; none for mse"
    ;;
errors)
    train iris.nnl
    train xor.nnl
    expect() { # expect STATUS PATTERN COMMAND...: fails unless exit STATUS and PATTERN
        want=$1 pattern=$2
        shift 2
        rc=0
        "$@" >out.txt 2>err.txt || rc=$?
        [ "$rc" = "$want" ] || fail "exit $rc, expected $want: $* ($(cat err.txt))"
        grep -q -- "$pattern" err.txt || fail "expected '$pattern' from $*, got: $(cat err.txt)"
    }
    expect 2 "missing.ckpt: error: cannot open" \
        "$nnlc" eval iris.nnl --checkpoint missing.ckpt
    head -c 200 iris.ckpt >cut.ckpt
    expect 1 "cut.ckpt: error: truncated" "$nnlc" eval iris.nnl --checkpoint cut.ckpt
    expect 1 "xor.ckpt: error: belongs to another model" \
        "$nnlc" predict iris.nnl --checkpoint xor.ckpt --input data/iris.csv -o x.csv
    cut -d, -f1-3 data/iris.csv >narrow.csv
    expect 1 "narrow.csv:1:1: error: 3 columns; the model takes 4 inputs" \
        "$nnlc" predict iris.nnl --checkpoint iris.ckpt --input narrow.csv -o x.csv
    expect 1 "iris.csv:1:1: error: 5 columns; the model takes 2 inputs" \
        "$nnlc" predict xor.nnl --checkpoint xor.ckpt --input data/iris.csv -o x.csv
    expect 1 "x.txt: error: cannot tell the output format" \
        "$nnlc" predict iris.nnl --checkpoint iris.ckpt --input data/iris.csv -o x.txt
    expect 1 "^--data:1:12: error: .*'nothing'" \
        "$nnlc" eval iris.nnl --checkpoint iris.ckpt --data nothing
    expect 2 "predict needs --checkpoint" "$nnlc" predict iris.nnl --input data/iris.csv
    expect 2 "predict needs --input" "$nnlc" predict iris.nnl --checkpoint iris.ckpt
    expect 1 "^--data: error: 'a b' is not the name" "$nnlc" eval iris.nnl --checkpoint iris.ckpt --data "a b"
    [ ! -e x.csv ] && [ ! -e x.txt ] || fail "a refused prediction left an output file"
    ls | grep -q '\.tmp\.' && fail "a temporary file was left: $(ls)"
    echo "errors: 10 refusals, each with its file and exit status, no output left"
    ;;
lib)
    train iris.nnl
    cut -d, -f1-4 data/iris.csv | tail -n +2 >inputs.txt
    "$nnlc" predict iris.nnl --checkpoint iris.ckpt --input data/iris.csv -o expect.csv
    cc=${NNLC_CC:-cc}
    mkdir lib
    for cpu in native x86-64-v3; do
        "$nnlc" build --lib --quiet iris.nnl --cpu=$cpu -o lib/iris
        $cc -std=c11 -Wall -Werror -I lib "$here/use_lib.c" lib/iris.o -lopenblas -lz -lm -pthread \
            -o use_lib
        ./use_lib iris.ckpt <inputs.txt >got.csv
        cut -d, -f2- expect.csv >expect_outputs.csv
        if [ $cpu = native ]; then
            cmp got.csv expect_outputs.csv || fail "--cpu=native: the library's outputs differ"
        else
            close got.csv expect_outputs.csv 1e-6 || fail "$cpu: the library's outputs differ"
        fi
    done
    # NAME_load refuses what nnlc refuses
    head -c 300 iris.ckpt >cut.ckpt
    train xor.nnl
    for bad in cut.ckpt xor.ckpt missing.ckpt; do
        if ./use_lib $bad <inputs.txt >/dev/null 2>err.txt; then
            fail "iris_load accepted $bad"
        fi
        grep -q "$bad" err.txt || fail "no file named in: $(cat err.txt)"
    done
    size=$(wc -c <iris.ckpt)
    cp iris.ckpt flip.ckpt
    printf '\001' | dd of=flip.ckpt bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
    ./use_lib flip.ckpt <inputs.txt >/dev/null 2>err.txt && fail "a flipped byte was accepted"
    grep -q "CRC" err.txt || fail "$(cat err.txt)"
    nm lib/iris.o | awk '$2 == "T" { print $3 }' | sort >symbols.txt
    printf 'iris_error\niris_load\niris_nnl_predict\niris_predict\niris_set_params\n' |
        cmp - symbols.txt || fail "unexpected global symbols: $(cat symbols.txt)"
    echo "lib: 150 samples identical to nnlc predict (native), within 1e-6 (x86-64-v3);" \
         "4 bad checkpoints refused"
    ;;
*)
    fail "unknown check"
    ;;
esac
