#!/bin/sh
# oom.sh NNLC MODE CASES — allocation-failure injection (docs/cli.md, Environment;
# docs/checkpoints.md, How this is tested).
#
# NNL_FAIL_ALLOC=N makes the N-th allocation of a process fail (docs/cli.md); =count
# prints how many there were. For each MODE this counts the allocations of one command on
# examples/xor.nnl, then makes them fail one at a time. Every failing run must:
#   - exit with status 2,
#   - print exactly one line on stderr, "PROG: error: out of memory (allocating N bytes)"
#     (so no sanitizer report either: ASan, LSan and UBSan all write to stderr),
#   - leave no half-written file: a --save-params file, if there, is the finished one; a
#     log is a whole-line prefix of the finished one; each checkpoint is byte-identical to
#     one the uninterrupted run writes; no checkpoint temp file, nothing left in TMPDIR,
#     no other file; a trainer written by nnlc build, if there, runs.
# One allocation past the count, the command succeeds and writes what the reference run
# wrote: the count and the injection agree.
#
# MODEs: check (nnlc check), run (nnlc run with a log, a checkpoint every 100 of the 500
# epochs, keep = 5, and --save-params), build (nnlc build), trainer (the trainer nnlc
# build writes from the same script, with the same outputs as `run`).
# Which N: about CASES of them (tests/CMakeLists.txt gives fewer to the slower sanitizer
# build): all of the first CASES/4 and of the last CASES/4, and a fixed stride between,
# so that each stage of the pipeline (parse, sema, autodiff, codegen, JIT, training,
# writing) has some. A process costs 0.1 s to 0.5 s, most of it starting up with LLVM,
# and there are hundreds of allocations. NNL_OOM_ALL=1 tries every one: the long mode,
# outside CI (every one passed, both builds, when this test was written).
set -eu
nnlc=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
mode=$2
budget=$3
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

# What every case starts from: the script (with checkpoints) and its data.
base=$tmp/base
mkdir -p "$base/data"
cp "$root/examples/data/xor.csv" "$base/data/"
keys='    checkpoint = "xor.ckpt"\n    checkpoint_every = 100\n    keep = 5'
sed "s/^    seed *= 1\$/    seed = 1\n$keys/" "$root/examples/xor.nnl" >"$base/xor.nnl"
grep -q '^    keep = 5$' "$base/xor.nnl"
outputs='--log xor.log --save-params params.csv'

case $mode in
check)   prog=nnlc
         set -- "$nnlc" check xor.nnl ;;
run)     prog=nnlc
         set -- "$nnlc" run xor.nnl --quiet $outputs ;;
build)   prog=nnlc
         set -- "$nnlc" build xor.nnl -o trainer --quiet ;;
trainer) prog=trainer
         (cd "$base" && "$nnlc" build xor.nnl -o trainer --quiet)
         set -- ./trainer --quiet $outputs ;;
*)       echo "oom.sh: unknown mode '$mode'" >&2; exit 2 ;;
esac

# in_dir DIR FAIL: runs the command in DIR, a fresh copy of base, with NNL_FAIL_ALLOC=FAIL
# and TMPDIR=DIR/tmp; its status in $rc, its output in DIR.out and DIR.err.
in_dir() {
    _dir=$1 _fail=$2
    shift 2
    rm -rf "$_dir"
    cp -r "$base" "$_dir"
    mkdir "$_dir/tmp"
    set +e
    (cd "$_dir" && TMPDIR="$_dir/tmp" NNL_FAIL_ALLOC=$_fail "$@") >"$_dir.out" 2>"$_dir.err"
    rc=$?
    set -e
}

# bad N WHAT: a failed check of case N
bad() {
    echo "FAIL: NNL_FAIL_ALLOC=$1: $2"
    fail=1
}

# Every run works in a directory whose path has the same length (ref0, case, past): the
# count of allocations depends on it (command lines and paths grow buffers), and a count
# taken in a shorter path would be off by one for the others.
ref=$tmp/ref0
in_dir "$ref" count "$@"
total=$(sed -n "s/^$prog: note: NNL_FAIL_ALLOC: \([0-9]*\) allocations$/\1/p" "$ref.err")
if [ "$rc" != 0 ] || [ -z "$total" ]; then
    echo "FAIL: the reference run (NNL_FAIL_ALLOC=count) exits $rc:"
    cat "$ref.err"
    exit 1
fi
rm -rf "$ref/tmp"
(cd "$ref" && find . -type f | sort) >"$tmp/ref.files"

# files N DIR: what case N left in DIR is finished, or nothing
files() {
    _n=$1 _dir=$2
    if [ -n "$(ls -A "$_dir/tmp")" ]; then
        bad "$_n" "left in TMPDIR: $(ls -A "$_dir/tmp" | tr '\n' ' ')"
    fi
    rm -rf "$_dir/tmp"
    for _f in $(cd "$_dir" && find . -type f | sort); do
        _f=${_f#./}
        case $_f in
        params.csv)
            cmp -s "$_dir/$_f" "$ref/$_f" || bad "$_n" "$_f differs from the finished one" ;;
        xor.log)
            _size=$(wc -c <"$_dir/$_f")
            if ! cmp -s -n "$_size" "$_dir/$_f" "$ref/$_f" || [ -n "$(tail -c 1 "$_dir/$_f")" ]
            then
                bad "$_n" "$_f is not a whole-line prefix of the finished log"
            fi ;;
        xor.ckpt|xor.ckpt.[1-4])
            _same=
            for _r in "$ref"/xor.ckpt*; do
                cmp -s "$_dir/$_f" "$_r" && _same=1
            done
            [ -n "$_same" ] || bad "$_n" "$_f is none of the checkpoints the run writes" ;;
        *)
            if [ -f "$base/$_f" ]; then
                :
            elif [ "$mode" = build ] && [ "$_f" = trainer ]; then
                "$_dir/trainer" --help >/dev/null 2>&1 || bad "$_n" "the trainer left does not run"
            else
                bad "$_n" "left a file: $_f"
            fi ;;
        esac
    done
}

# one N: case N
one() {
    _n=$1
    _dir=$tmp/case
    shift
    in_dir "$_dir" "$_n" "$@"
    [ "$rc" = 2 ] || bad "$_n" "exit status $rc, not 2"
    if ! grep -qx "$prog: error: out of memory (allocating [0-9]* bytes)" "$_dir.err" ||
       [ "$(wc -l <"$_dir.err")" != 1 ]; then
        bad "$_n" "stderr is not one 'out of memory' line:"
        head -20 "$_dir.err"
    fi
    files "$_n" "$_dir"
}

first=$((budget / 4)) last=$((budget / 4))
stride=1
if [ "${NNL_OOM_ALL:-0}" != 1 ] && [ "$total" -gt "$budget" ]; then
    stride=$(((total - first - last + budget - first - last - 1) / (budget - first - last)))
fi
cases=0
n=1
while [ "$n" -le "$total" ]; do
    if [ "$n" -le "$first" ] || [ "$n" -gt $((total - last)) ] ||
       [ $(((n - first) % stride)) = 0 ]; then
        one "$n" "$@"
        cases=$((cases + 1))
    fi
    n=$((n + 1))
done

# One past the count: nothing fails, the outputs are the reference's.
in_dir "$tmp/past" $((total + 1)) "$@"
rm -rf "$tmp/past/tmp"
(cd "$tmp/past" && find . -type f | sort) >"$tmp/past.files"
if [ "$rc" != 0 ] || ! cmp -s "$tmp/past.files" "$tmp/ref.files"; then
    bad $((total + 1)) "exit $rc, or other files than the reference run's"
    cat "$tmp/past.err"
fi
for f in params.csv xor.log xor.ckpt; do
    [ ! -f "$ref/$f" ] || cmp -s "$ref/$f" "$tmp/past/$f" || bad $((total + 1)) "$f differs"
done

# A value that is neither a number nor "count" is refused, not ignored.
for v in x 0 -1 1x; do
    in_dir "$tmp/bad" "$v" "$@"
    msg="NNL_FAIL_ALLOC must be 'count' or the number (from 1) of the allocation to fail"
    if [ "$rc" != 2 ] || ! grep -qxF "$prog: error: $msg, not '$v'" "$tmp/bad.err"; then
        bad "$v" "exit $rc, not refused:"
        cat "$tmp/bad.err"
    fi
done

echo "$mode: $total allocations, $cases of them made to fail"
[ "$fail" = 0 ] && echo "PASS" || echo "FAILED"
exit "$fail"
