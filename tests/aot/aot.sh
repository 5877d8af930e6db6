#!/bin/sh
# aot.sh NNLC CHECK [ARGS] — standalone trainers (nnlc build).
#   example NAME   examples/NAME.nnl built with --cpu=native: `nnlc run` and the trainer,
#                  run from another directory with the same seed, write byte-identical
#                  logs and final parameters; the trainer needs no libLLVM; --help lists
#                  the parameters; --data points a data set at another copy of its file
#   fashion        examples/fashion_mnist.nnl on the first 600 training and 200 test images
#                  of Fashion-MNIST (Debian's dataset-fashion-mnist; skipped without it),
#                  one epoch: as `example`, with IDX files and --data IMAGES,LABELS; a
#                  split of an IDX set; images cut short (the build, which reads only
#                  their header, succeeds; the trainer and nnlc check refuse them); a bad
#                  label (the build refuses it)
#   portable       the default --cpu=x86-64-v3 trainer trains (its results may differ from
#                  `nnlc run`: another CPU model), and takes --set epochs/batch/seed/...
#   errors         the trainer's and nnlc build's errors, with their exit codes
#   resume         checkpoint keys compiled in; --resume continues bit-exactly
# How long each build takes is printed, never checked.
set -eu
nnlc=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
check=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

# build SCRIPT TRAINER [OPTIONS]: nnlc build, printing how long it took
# (shell functions share variables: theirs start with an underscore)
build() {
    _script=$1 _out=$2
    shift 2
    _start=$(date +%s%N)
    "$nnlc" build "$_script" -o "$_out" --quiet "$@"
    _end=$(date +%s%N)
    echo "built $(basename "$_out") from $(basename "$_script") $* in" \
        "$(((_end - _start) / 1000000)) ms"
}

# same A B WHAT: files A and B are byte-identical
same() {
    if ! cmp "$1" "$2"; then
        echo "FAIL: $3: $1 and $2 differ"
        diff "$1" "$2" | head -10
        fail=1
    fi
}

# no_llvm TRAINER: ldd shows no libLLVM
no_llvm() {
    if ldd "$1" | grep -i llvm; then
        echo "FAIL: $(basename "$1") links LLVM"
        fail=1
    fi
}

# expect CODE DESCRIPTION COMMAND...: runs COMMAND, checks its exit status
expect() {
    want=$1 what=$2
    shift 2
    set +e
    "$@" >"$tmp/out" 2>"$tmp/err"
    got=$?
    set -e
    if [ "$got" != "$want" ]; then
        echo "FAIL: $what: exit $got, expected $want"
        cat "$tmp/out" "$tmp/err"
        fail=1
    fi
}

# has PATTERN out|err DESCRIPTION: the last command's output contains PATTERN
has() {
    if ! grep -q -- "$1" "$tmp/$2"; then
        echo "FAIL: $3: '$1' not in std$2:"
        cat "$tmp/$2"
        fail=1
    fi
}

# compare SCRIPT TRAINER [RUN-OPTIONS]: nnlc run in the script's directory, the trainer in
# another one, same seed: identical logs and parameters
compare() {
    _script=$1 _trainer=$2
    shift 2
    (cd "$(dirname "$_script")" &&
        "$nnlc" run "$(basename "$_script")" --quiet "$@" --log "$tmp/run.csv" \
            --save-params "$tmp/run.params")
    mkdir -p "$tmp/elsewhere"
    (cd "$tmp/elsewhere" &&
        "$_trainer" --quiet --log "$tmp/aot.csv" --save-params "$tmp/aot.params")
    same "$tmp/run.csv" "$tmp/aot.csv" "$(basename "$_script"): the logs"
    same "$tmp/run.params" "$tmp/aot.params" "$(basename "$_script"): the final parameters"
    echo "$(basename "$_script"): nnlc run and the trainer wrote identical logs" \
        "($(($(wc -l <"$tmp/run.csv") - 1)) rows) and parameters"
}

# help_lists TRAINER SCRIPT: --help names every tensor of the parameter file, with a shape
help_lists() {
    expect 0 "--help" "$1" --help
    has "usage: $(basename "$1")" out "--help usage"
    cut -d, -f1 "$tmp/run.params" >"$tmp/names"
    while read -r _name; do
        has "^  $_name  *\[[0-9, ]*\]$" out "--help lists $_name with its shape"
    done <"$tmp/names"
}

# be32 N: N as 4 bytes, big-endian (an IDX header field)
be32() {
    # shellcheck disable=SC2059 # the format is the octal escapes
    printf "$(printf '\\%03o\\%03o\\%03o\\%03o' $(($1 >> 24 & 255)) $(($1 >> 16 & 255)) \
        $(($1 >> 8 & 255)) $(($1 & 255)))"
}

# idx_subset SRC-IMAGES SRC-LABELS N DST-IMAGES DST-LABELS: the first N 28x28 samples
idx_subset() {
    { be32 2051; be32 "$3"; be32 28; be32 28; gzip -dc "$1" | tail -c +17 | head -c $(($3 * 784)); } >"$4"
    { be32 2049; be32 "$3"; gzip -dc "$2" | tail -c +9 | head -c "$3"; } >"$5"
}

# fashion_subsets DIR N-TRAIN N-TEST: the first samples of Debian's Fashion-MNIST, as
# plain IDX under the .gz names, in DIR/fashion-mnist (where the examples look)
fashion_subsets() {
    _src=/usr/share/datasets/fashion-mnist _dst=$1/fashion-mnist
    mkdir -p "$_dst"
    idx_subset "$_src/train-images-idx3-ubyte.gz" "$_src/train-labels-idx1-ubyte.gz" "$2" \
        "$_dst/train-images-idx3-ubyte.gz" "$_dst/train-labels-idx1-ubyte.gz"
    idx_subset "$_src/t10k-images-idx3-ubyte.gz" "$_src/t10k-labels-idx1-ubyte.gz" "$3" \
        "$_dst/t10k-images-idx3-ubyte.gz" "$_dst/t10k-labels-idx1-ubyte.gz"
}

case $check in
example)
    name=$1
    script=$root/examples/$name.nnl
    build "$script" "$tmp/trainer" --cpu=native
    no_llvm "$tmp/trainer"
    compare "$script" "$tmp/trainer"
    help_lists "$tmp/trainer" "$script"
    # --data: the same file under another name gives the same run
    file=$(sed -n 's/^data \([a-z_]*\) *= *csv("\([^"]*\)".*/\1 \2/p' "$script")
    set -- $file
    cp "$root/examples/$2" "$tmp/copy.csv"
    (cd "$tmp/elsewhere" && "$tmp/trainer" --quiet --data "$1=$tmp/copy.csv" --log "$tmp/data.csv")
    same "$tmp/run.csv" "$tmp/data.csv" "$name: --data $1=copy.csv"
    echo "$name: --data $1=FILE reads the other file"
    ;;
resume)
    # the checkpoint keys are compiled in; a trainer stopped at epoch 37 and resumed with
    # --resume (and the script's 100 epochs: the checkpoint records --set epochs=37) ends
    # byte-identical to an uninterrupted trainer run
    mkdir -p "$tmp/r"
    cp -r "$root/examples/data" "$tmp/r/"
    sed 's/    seed      = 1/    seed      = 1\n    checkpoint = "iris.ckpt"\n    checkpoint_every = 10/' \
        "$root/examples/iris.nnl" >"$tmp/r/iris.nnl"
    build "$tmp/r/iris.nnl" "$tmp/trainer" --cpu=native
    cd "$tmp/r"
    "$tmp/trainer" --quiet --log full.csv --save-params full.params
    rm -f iris.ckpt
    "$tmp/trainer" --quiet --set epochs=37 --log part.csv
    "$tmp/trainer" --quiet --resume iris.ckpt --set epochs=100 --save-params part.params
    same full.csv part.csv "resume: log"
    same full.params part.params "resume: parameters"
    "$tmp/trainer" --help | grep -q -- "--resume"
    echo "resume: a stopped and resumed trainer ends byte-identical to an uninterrupted one"
    # a run without --resume never replaces the checkpoint a run left: exit 1, the file
    # untouched; --fresh starts over and replaces it; --help names the compiled-in paths
    cp iris.ckpt kept.ckpt
    expect 1 "resume: a trainer over a checkpoint" "$tmp/trainer" --quiet --set epochs=1
    has "^iris.ckpt: error: a checkpoint is already there (step [0-9]* of a run of this model): go on from it with --resume iris.ckpt, or start over with --fresh (which replaces it)" err "resume: a checkpoint is already there"
    same kept.ckpt iris.ckpt "resume: a refused trainer left the checkpoint as it was"
    expect 0 "resume: --fresh over a checkpoint" "$tmp/trainer" --quiet --fresh --set epochs=1
    if cmp -s kept.ckpt iris.ckpt; then
        echo "FAIL: resume: --fresh did not replace the checkpoint"
        fail=1
    fi
    expect 0 "resume: --help" "$tmp/trainer" --help
    has "^  checkpoint  iris.ckpt$" out "resume: --help names the checkpoint compiled in"
    has "^  log         (none)$" out "resume: --help names the log compiled in"
    has "^  --fresh " out "resume: --help names --fresh"
    echo "resume: a trainer refuses to replace a checkpoint without --fresh"
    # resuming needs nothing but the checkpoint: a stopped trainer's options are recorded
    # in it, and the hint it prints, pasted as printed, ends as the uninterrupted run
    cp data/iris.csv flowers.csv
    rm -f iris.ckpt
    "$tmp/trainer" --quiet --set epochs=7 --log full7.csv --save-params full7.params
    rm -f iris.ckpt
    expect 130 "resume: a stopped trainer" env NNL_STOP_AFTER=20 "$tmp/trainer" --quiet \
        --set epochs=7 --log part7.csv --save-params part7.params --data iris=flowers.csv
    hint=$(sed -n 's/.*; to resume: //p' "$tmp/err")
    [ "$hint" = "$tmp/trainer --resume iris.ckpt" ] ||
        { echo "FAIL: resume: the hint is '$hint'"; fail=1; }
    expect 0 "resume: the hint, pasted as printed" sh -c "$hint"
    has "with the options recorded in iris.ckpt: --set epochs=7 --log part7.csv --save-params part7.params --data iris=flowers.csv$" out "resume: the recorded options said"
    same full7.csv part7.csv "resume: log, resumed with the hint"
    same full7.params part7.params "resume: parameters, resumed with the hint"
    # nnlc cannot read the data the trainer was given: it says so
    expect 1 "resume: nnlc run on a trainer's checkpoint with --data" "$nnlc" run iris.nnl \
        --resume iris.ckpt
    has "^iris.ckpt: error: was written by a trainer given '--data iris=flowers.csv', which 'nnlc run' cannot take: resume it with that trainer$" err "resume: nnlc refuses a trainer's --data"
    echo "resume: a trainer's options are recorded in its checkpoints"
    ;;
fashion_cnn)
    # the CNN example (convolutions, pooling, batch normalization: runtime routines the
    # object calls, running statistics the step updates) on subsets, bit-identical
    d=/usr/share/datasets/fashion-mnist
    if [ ! -f "$d/train-images-idx3-ubyte.gz" ]; then
        echo "skipped: no Fashion-MNIST in /usr/share/datasets (dataset-fashion-mnist)"
        exit 0
    fi
    mkdir -p "$tmp/model"
    cp "$root/examples/fashion_cnn.nnl" "$tmp/model/"
    fashion_subsets "$tmp/model" 300 100
    build "$tmp/model/fashion_cnn.nnl" "$tmp/trainer" --cpu=native --set epochs=2
    no_llvm "$tmp/trainer"
    compare "$tmp/model/fashion_cnn.nnl" "$tmp/trainer" --set epochs=2
    ;;
fashion)
    images=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
    if [ ! -f "$images" ]; then
        echo "skipped: no Fashion-MNIST in /usr/share/datasets (dataset-fashion-mnist)"
        exit 0
    fi
    mkdir -p "$tmp/model"
    cp "$root/examples/fashion_mnist.nnl" "$tmp/model/"
    # plain IDX under the .gz names: the loaders tell the two apart by their first bytes
    fashion_subsets "$tmp/model" 600 200
    build "$tmp/model/fashion_mnist.nnl" "$tmp/trainer" --cpu=native --set epochs=1
    no_llvm "$tmp/trainer"
    compare "$tmp/model/fashion_mnist.nnl" "$tmp/trainer" --set epochs=1
    help_lists "$tmp/trainer" "$tmp/model/fashion_mnist.nnl"
    # --data with two files: the subsets moved away (without --data the trainer would now
    # read the whole data set in /usr/share/datasets, and log other numbers)
    mv "$tmp/model/fashion-mnist" "$tmp/moved"
    m=$tmp/moved
    (cd "$tmp/elsewhere" && "$tmp/trainer" --quiet --log "$tmp/data.csv" \
        --data "train=$m/train-images-idx3-ubyte.gz,$m/train-labels-idx1-ubyte.gz" \
        --data "test=$m/t10k-images-idx3-ubyte.gz,$m/t10k-labels-idx1-ubyte.gz")
    same "$tmp/run.csv" "$tmp/data.csv" "fashion_mnist: --data IMAGES,LABELS"
    expect 1 "--data idx with one file" "$tmp/trainer" --data "train=$m/train-images-idx3-ubyte.gz"
    has "two files: give IMAGES,LABELS" err "--data idx with one file"
    echo "fashion_mnist: --data NAME=IMAGES,LABELS reads the other files"
    # a split of an IDX set: nnlc build reads only the images' header (and the labels),
    # the trainer splits the images it reads as nnlc run does
    mkdir -p "$tmp/sp"
    cp -r "$m" "$tmp/sp/fashion-mnist"
    sed -e "s/^data train = idx(/data images = idx(/" \
        -e 's/^data test  = idx(.*/data train, test = split(images, 0.8, seed = 5)/' \
        -e '/t10k-labels/d' "$tmp/model/fashion_mnist.nnl" >"$tmp/sp/split.nnl"
    build "$tmp/sp/split.nnl" "$tmp/split" --cpu=native --set epochs=1
    compare "$tmp/sp/split.nnl" "$tmp/split" --set epochs=1
    # images whose pixels are cut short: the build (headers and labels) succeeds, the
    # trainer, which reads the pixels, stops with the file's error; nnlc check reads them
    mkdir -p "$tmp/cut/fashion-mnist"
    cp "$tmp/model/fashion_mnist.nnl" "$tmp/cut/"
    cp "$m/"*labels* "$m/t10k-images-idx3-ubyte.gz" "$tmp/cut/fashion-mnist/"
    gzip -c "$m/train-images-idx3-ubyte.gz" | head -c 20000 \
        >"$tmp/cut/fashion-mnist/train-images-idx3-ubyte.gz"
    expect 0 "build with cut images" "$nnlc" build "$tmp/cut/fashion_mnist.nnl" -o "$tmp/cut/t" --quiet
    expect 1 "a trainer reading cut images" "$tmp/cut/t" --quiet
    has "train-images-idx3-ubyte.gz: error: " err "the trainer names the cut file"
    expect 1 "nnlc check of cut images" "$nnlc" check "$tmp/cut/fashion_mnist.nnl"
    has "train-images-idx3-ubyte.gz: error: " err "nnlc check names the cut file"
    # a label out of range is found by the build
    printf '\n' | dd of="$tmp/cut/fashion-mnist/train-labels-idx1-ubyte.gz" bs=1 seek=8 \
        conv=notrunc 2>/dev/null
    expect 1 "build with a bad label" "$nnlc" build "$tmp/cut/fashion_mnist.nnl" -o "$tmp/cut/t2"
    has "train-labels-idx1-ubyte.gz: sample 1: error: label 10 is not a class" err "bad label"
    ;;
portable)
    build "$root/examples/iris.nnl" "$tmp/trainer"
    no_llvm "$tmp/trainer"
    expect 0 "x86-64-v3 trainer" "$tmp/trainer" --log "$tmp/a.csv"
    has "^trainer: net: 131 parameters; training on 120 samples" out "first line"
    has "^epoch 100/100" out "x86-64-v3 trainer trains 100 epochs"
    expect 0 "--version" "$tmp/trainer" --version
    has "for x86-64-v3" out "--version names the CPU"
    # --set of what the runtime decides: as nnlc run --set (same compiled code for seed,
    # shuffle, log_every; batch and epochs within what was compiled)
    build "$root/examples/iris.nnl" "$tmp/native" --cpu=native
    (cd "$root/examples" && "$nnlc" run iris.nnl --quiet --set "epochs=7; seed=3" \
        --set shuffle=false --set log_every=2 --log "$tmp/run.csv")
    "$tmp/native" --quiet --set "epochs=7; seed=3" --set shuffle=false --set log_every=2 \
        --log "$tmp/aot.csv"
    same "$tmp/run.csv" "$tmp/aot.csv" "iris: --set epochs, seed, shuffle, log_every"
    (cd "$tmp" && "$tmp/native" --quiet --set 'epochs=2; batch=all; log="set.csv"')
    [ "$(wc -l <"$tmp/set.csv")" -eq 3 ] || { echo "FAIL: --set log= wrote no 2-epoch log"; fail=1; }
    echo "iris: the x86-64-v3 trainer trains; --set changes epochs, batch, seed, shuffle, log"
    ;;
errors)
    script=$root/examples/xor.nnl
    mkdir -p "$tmp/model/data" "$tmp/elsewhere"
    cp "$script" "$tmp/model/"
    cp "$root/examples/data/xor.csv" "$tmp/model/data/"
    build "$tmp/model/xor.nnl" "$tmp/trainer"
    t=$tmp/trainer
    expect 2 "unknown option" "$t" --frobnicate
    has "trainer: error: unknown option '--frobnicate'" err "unknown option"
    expect 2 "an argument" "$t" model.nnl
    expect 2 "--log without a file" "$t" --log
    has "option '--log' needs a value" err "--log without a file"
    expect 1 "--set of a compiled-in key" "$t" --set "optimizer=sgd(lr = 0.1)"
    has "trainer: error: --set optimizer=sgd(lr = 0.1): 'optimizer' is compiled into the trainer" err "compiled-in key"
    expect 1 "--set loss" "$t" --set loss=mse
    has "is compiled into the trainer" err "--set loss"
    expect 1 "--set of an unknown key" "$t" --set epoch=3
    has "unknown train key 'epoch'" err "unknown key"
    expect 1 "--set epochs=0" "$t" --set epochs=0
    has "epochs must be a whole number, at least 1" err "--set epochs=0"
    expect 1 "--set batch=x" "$t" --set batch=x
    expect 1 "--set shuffle=maybe" "$t" --set shuffle=maybe
    expect 2 "--set without =" "$t" --set epochs
    has "trainer: error: --set needs KEY=VALUE, not 'epochs' (e.g. --set epochs=VALUE)" err \
        "--set without ="
    expect 2 "--set epochs 5" "$t" --set epochs 5
    has "^trainer: error: --set needs KEY=VALUE, not 'epochs' (e.g. --set epochs=5)$" err \
        "--set epochs 5"
    expect 1 "--set of a list with an item without =" "$t" --set "epochs=3; batch"
    has "'batch' is not key=value" err "--set list item without ="
    expect 1 "--data of an unknown set" "$t" --data nope=x.csv
    has "the trainer reads no data set 'nope' (it reads xor)" err "--data nope"
    expect 1 "--data file missing" "$t" --data "xor=$tmp/missing.csv"
    has "missing.csv: error: cannot open" err "--data missing file"
    expect 2 "--init file missing" "$t" --quiet --init "$tmp/missing.params"
    # the outputs are checked before the first step, and a log in use is refused
    expect 2 "--save-params in a missing directory" "$t" --save-params "$tmp/no/x.params"
    has "no/x.params: error: cannot write the parameter file: No such file or directory" err "--save-params checked"
    ! grep -q "^epoch" "$tmp/out" || { echo "FAIL: --save-params checked after training"; fail=1; }
    expect 2 "a plot in a missing directory" "$t" --set "plot=\"$tmp/no/p.svg\""
    has "no/p.svg: error: cannot write the plot: No such file or directory" err "plot checked"
    ! grep -q "^epoch" "$tmp/out" || { echo "FAIL: the plot checked after training"; fail=1; }
    (
        exec 9>"$tmp/l.csv.lock"
        flock -xn 9 || exit 1
        echo 4242 >&9
        expect 1 "a log in use" "$t" --log "$tmp/l.csv" 9>&-
        has "l.csv: error: the log is in use by another run (process 4242 holds" err "log lock"
        exit $fail
    ) || fail=1
    rm "$tmp/model/data/xor.csv"
    expect 1 "missing data file" "$t"
    has "trainer: error: data 'xor': cannot find the data file 'data/xor.csv' (looked in: $tmp/model" err "missing data file"
    has "give its place with --data NAME=FILE" err "missing data file hint"
    (cd "$tmp/elsewhere" && "$t" --quiet --data "xor=$root/examples/data/xor.csv") ||
        { echo "FAIL: --data after the file went away"; fail=1; }
    # a split part is not a file
    build "$root/examples/iris.nnl" "$tmp/iris"
    expect 1 "--data of a split part" "$tmp/iris" --data train=x.csv
    has "'train' is a part of a split of 'iris'" err "--data split part"
    # epochs used by a hyper-parameter is compiled in
    sed 's/adam(lr = 0.05)/adam(lr = 0.05 * cosine(epochs))/' "$script" >"$tmp/model/cosine.nnl"
    cp "$root/examples/data/xor.csv" "$tmp/model/data/"
    build "$tmp/model/cosine.nnl" "$tmp/cosine"
    expect 1 "--set epochs with a schedule" "$tmp/cosine" --set epochs=3
    has "hyper-parameters use 'epochs'" err "epochs compiled in"
    expect 0 "--set seed with a schedule" "$tmp/cosine" --quiet --set seed=2
    # nnlc build's own errors
    expect 2 "build: unknown CPU" "$nnlc" build "$script" -o "$tmp/x" --cpu=pentium
    has "unknown CPU 'pentium'" err "unknown CPU"
    expect 2 "build: --log" "$nnlc" build "$script" -o "$tmp/x" --log x.csv
    expect 2 "build: no C compiler" env NNLC_CC=/nonexistent/cc "$nnlc" build "$script" -o "$tmp/x"
    has "cannot find the C compiler '/nonexistent/cc'" err "no C compiler"
    expect 2 "build: a missing script" "$nnlc" build "$tmp/model/nope.nnl" -o "$tmp/x"
    printf 'fn f(x) = \n' >"$tmp/bad.nnl"
    expect 1 "build: a script with errors" "$nnlc" build "$tmp/bad.nnl" -o "$tmp/x"
    [ ! -e "$tmp/x" ] || { echo "FAIL: a failed build left a trainer"; fail=1; }
    expect 2 "build: an unwritable trainer" "$nnlc" build "$script" -o "$tmp/no/such/dir/x"
    expect 0 "nnlc help build" "$nnlc" help build
    has "usage: nnlc build" out "help build"
    has "x86-64-v3" out "help build names the default CPU"
    expect 0 "nnlc build --help" "$nnlc" build --help
    echo "errors: every case gave its message and exit status"
    ;;
*)
    echo "aot.sh: unknown check '$check'" >&2
    exit 2
    ;;
esac
exit $fail
