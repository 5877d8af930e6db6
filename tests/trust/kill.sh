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
# Where a kill lands is chosen from progress the test observes, never from a guess of how
# long things take, so that a loaded machine changes nothing but the test's duration: most
# kills wait until the run has put 1 to 3 new checkpoints in place (inotifywait reports
# each rename onto run.ckpt; nothing is polled) and then 0 to 4 ms more, so that they land
# in training, many while the next checkpoint is being written; every fifth kill lands 0 to 20 ms after the
# start, in the start-up (parsing, compiling, reading the data). Every restart after the
# first checkpoint must resume from one. The random choices come from bash's RANDOM seeded
# with NNL_KILL_SEED (printed first).
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

# What happens in the directory, as inotifywait sees it: the name of every file renamed into
# it, a line each, on fd 3. A checkpoint put in place is "run.ckpt"; a run that reaches its
# end puts "run.params" in place last.
mkfifo events
inotifywait -m -q -e moved_to --format %f . >events &
monitor=$!
trap 'kill "$monitor" 2>/dev/null; rm -rf "$tmp"' EXIT
exec 3<events

# forgets the events of runs that are over
drain_events() {
    local line
    while read -t 0 -u 3; do
        read -r -u 3 line || break
    done
}

# waits until the run in progress has put `n` new checkpoints in place, or has ended;
# fails the test when nothing happens for 300 s (a hung run)
await_checkpoints() {
    local n=$1 name
    while [ "$n" -gt 0 ]; do
        if ! read -r -t 300 -u 3 name; then
            echo "kill: no checkpoint and no end for 300 s (seed $seed)"
            exit 1
        fi
        case $name in
        run.ckpt) n=$((n - 1)) ;;
        run.params) return ;;
        esac
    done
}

# sleeps `ms` milliseconds
sleep_ms() {
    sleep "$(($1 / 1000)).$(printf %03d $(($1 % 1000)))"
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

# the uninterrupted run; the run with its checkpoints, which ends the same
"$nnlc" run fit.nnl --quiet --log ref.csv --save-params ref.params
"$nnlc" run fit.nnl --quiet "${ckpt[@]}" --log run.csv --save-params run.params
round=0
finished

kills=0 resumed=0
while [ "$kills" -lt "$cycles" ]; do
    [ -e run.ckpt ] && resumed=$((resumed + 1))
    drain_events
    start
    if [ $((kills % 5)) = 4 ]; then
        ms=$((RANDOM % 21))
        sleep_ms "$ms"
        when="$ms ms after the start"
    else
        n=$((1 + RANDOM % 3)) ms=$((RANDOM % 5))
        await_checkpoints "$n"
        sleep_ms "$ms"
        when="$ms ms after $n new checkpoints"
    fi
    kill -KILL "$pid" 2>/dev/null || true
    rc=0
    { wait "$pid"; } 2>/dev/null || rc=$?
    case $rc in
    137)
        kills=$((kills + 1))
        echo "kill $kills: $when ($([ -e run.csv ] && wc -l <run.csv || echo 0) log lines)"
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
if [ "$resumed" -lt $((cycles / 2)) ]; then
    echo "kill: only $resumed of $cycles restarts found a checkpoint to resume from" \
         "(seed $seed)"
    exit 1
fi
echo "kill: $kills kills, $resumed restarts resumed from a checkpoint, $((round - 1)) killed" \
     "rounds byte-identical to the uninterrupted run"
