#!/bin/bash
# kill.sh NNLC — kill -9 through `nnlc run` itself (docs/checkpoints.md,
# How this is tested).
#
# A small synthetic script (4 inputs, 4000 rows made here, 4 epochs of 250 steps) trains
# with a checkpoint every 5 steps and a log. It is killed with SIGKILL after a random delay,
# restarted with --resume from the checkpoint left behind (the resume checks it whole:
# magic, size, CRC, model, run; a bad one is exit 1 and fails the test), killed again, and
# so on: 30 kills (NNL_LONG=1: 100; NNL_KILL_CYCLES=N: N). A run that ends by itself before
# its kill is a finished round: its parameters (--save-params) and its log must be byte-
# identical to those of an uninterrupted run, and the next round starts afresh. After the
# last kill the run in progress is resumed to its end and compared the same way; no
# temporary checkpoint file may remain.
#
# A kill lands after the start-up (parsing, compiling, reading the data), measured first
# as the time T0 of a one-epoch run without checkpoints, minus 100 ms, plus a random part
# of up to a third of the training time (T1 - T0, T1: an uninterrupted run with the
# checkpoints, mostly their fsyncs), so that most kills land in training, many while a
# checkpoint is being written, some in the start-up. At least a third of the restarts
# must resume from a checkpoint. The random part comes from bash's RANDOM seeded with NNL_KILL_SEED
# (printed first): the same seed gives the same delays, though where a kill lands also
# depends on the machine's speed.
set -eu
nnlc=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
cycles=${NNL_KILL_CYCLES:-30}
[ "${NNL_LONG:-0}" = 1 ] && cycles=${NNL_KILL_CYCLES:-100}
seed=${NNL_KILL_SEED:-7919}
echo "kill: $cycles kills, seed $seed (replay with NNL_KILL_SEED=$seed)"
RANDOM=$seed
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

awk 'BEGIN { srand(1); print "a,b,c,d,y"
             for (i = 0; i < 4000; i++) {
                 a = rand() * 2 - 1; b = rand() * 2 - 1; c = rand() * 2 - 1; d = rand() * 2 - 1
                 printf "%.6f,%.6f,%.6f,%.6f,%.6f\n", a, b, c, d,
                        a * b - 0.5 * c + d * d + 0.1 * rand() } }' >data.csv
cat >fit.nnl <<'NNL'
data d = csv("data.csv", target = "y")

model net(x[4]) {
    h = tanh(dense(x, 32))
    return dense(h, 1)
}

train net {
    data      = d
    loss      = mse
    optimizer = adam(lr = 0.005)
    epochs    = 4
    batch     = 16
    seed      = 3
}
NNL

ms_since() {
    echo $((($(date +%s%N) - $1) / 1000000))
}
ckpt=(--set 'checkpoint = "run.ckpt"' --set checkpoint_every_steps=5)

# start: the run in the background, resumed when a checkpoint is there
start() {
    if [ -e run.ckpt ]; then
        "$nnlc" run fit.nnl --quiet "${ckpt[@]}" --resume run.ckpt --log run.csv \
            --save-params run.params 2>err.txt &
    else
        "$nnlc" run fit.nnl --quiet "${ckpt[@]}" --log run.csv --save-params run.params \
            2>err.txt &
    fi
    pid=$!
}

# finished: a round that ended by itself (round 0: never killed) ends as the uninterrupted
# run did
finished() {
    if ! cmp -s run.params ref.params || ! cmp -s run.csv ref.csv; then
        echo "kill: round $round ended with other parameters or another log than the" \
             "uninterrupted run (seed $seed)"
        exit 1
    fi
    if ls run.ckpt.tmp.* >/dev/null 2>&1; then
        echo "kill: round $round left temporary files: $(ls run.ckpt.tmp.*)"
        exit 1
    fi
    echo "kill: round $round ended byte-identical to the uninterrupted run"
    rm -f run.ckpt run.csv run.params
    round=$((round + 1))
}

# the uninterrupted run; the start-up; the run with its checkpoints, which ends the same
"$nnlc" run fit.nnl --quiet --log ref.csv --save-params ref.params
t=$(date +%s%N)
"$nnlc" run fit.nnl --quiet --set epochs=1
t0=$(ms_since "$t")
t=$(date +%s%N)
"$nnlc" run fit.nnl --quiet "${ckpt[@]}" --log run.csv --save-params run.params
t1=$(ms_since "$t")
round=0
finished
window=$(((t1 - t0) / 3))
[ "$window" -ge 100 ] || window=100
echo "kill: start-up $t0 ms, with training and checkpoints $t1 ms: kills after" \
     "$((t0 - 100)) ms + 0 to $window ms"

kills=0 resumed=0
while [ "$kills" -lt "$cycles" ]; do
    [ -e run.ckpt ] && resumed=$((resumed + 1))
    start
    ms=$((t0 - 100 + RANDOM % window))
    [ "$ms" -ge 10 ] || ms=10
    sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
    kill -KILL "$pid" 2>/dev/null || true
    rc=0
    { wait "$pid"; } 2>/dev/null || rc=$?
    case $rc in
    137)
        kills=$((kills + 1))
        echo "kill $kills: after $ms ms ($([ -e run.csv ] && wc -l <run.csv || echo 0) log lines)"
        ;;
    0) finished ;;
    *)
        echo "kill: a run ended with exit code $rc (round $round, after $kills kills, seed $seed):"
        cat err.txt
        exit 1
        ;;
    esac
done
[ -e run.ckpt ] && resumed=$((resumed + 1))
start
rc=0
wait "$pid" || rc=$?
if [ "$rc" != 0 ]; then
    echo "kill: the last run ended with exit code $rc (seed $seed):"
    cat err.txt
    exit 1
fi
finished
if [ $((3 * resumed)) -lt "$cycles" ]; then
    echo "kill: only $resumed of $cycles restarts found a checkpoint to resume from: the kills" \
         "came too early to test resuming"
    exit 1
fi
echo "kill: $kills kills, $resumed restarts resumed from a checkpoint, $((round - 1)) killed" \
     "rounds byte-identical to the uninterrupted run"
