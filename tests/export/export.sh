#!/bin/sh
# export.sh NNLC CHECK — nnlc export, read back with numpy (tests/export/check_export.py).
#   values   examples/iris.nnl and xor.nnl (float32, and xor with --float64) and a script
#            with a scalar parameter, trained by `nnlc run` with --set checkpoint=...:
#            the safetensors file and the NPY files hold exactly the --save-params values,
#            dtypes, shapes and offsets; a name needing JSON escapes; an export replaces
#            an older one
#   errors   usage errors, bad -o, unwritable paths, refused checkpoints (truncated, v1,
#            a text file, a missing file), unsafe names for npy: each message exactly,
#            with its exit code, and no file written or left half-written
set -eu
nnlc=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
check=$2
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

# train NAME SCRIPT [OPTIONS]: a run of SCRIPT leaving $tmp/NAME.ckpt and $tmp/NAME.params
train() {
    _name=$1 _script=$2
    shift 2
    (cd "$(dirname "$_script")" && "$nnlc" run "$(basename "$_script")" --quiet \
        --set "checkpoint=\"$tmp/$_name.ckpt\"" --save-params "$tmp/$_name.params" "$@")
}

# exported NAME DTYPE: both formats of $tmp/NAME.ckpt, compared with its parameters
exported() {
    "$nnlc" export "$tmp/$1.ckpt" -o "$tmp/$1.safetensors"
    "$nnlc" export "$tmp/$1.ckpt" --format npy -o "$tmp/$1.npy"
    if ! "$py" "$here/check_export.py" values "$tmp/$1.params" "$tmp/$1.safetensors" \
        "$tmp/$1.npy" "$2"; then
        echo "FAIL: $1: the exported values"
        fail=1
    fi
}

# expect CODE MESSAGE COMMAND...: exit status CODE and exactly MESSAGE on stderr
expect() {
    _want=$1 _msg=$2
    shift 2
    set +e
    "$@" >"$tmp/out" 2>"$tmp/err"
    _got=$?
    set -e
    if [ "$_got" != "$_want" ] || [ "$(cat "$tmp/err")" != "$_msg" ]; then
        echo "FAIL: $*: exit $_got, expected $_want"
        echo "  got:      $(cat "$tmp/err")"
        echo "  expected: $_msg"
        fail=1
    fi
}

# absent PATH...: none of them exists, nor any temporary file in $tmp/out.d
absent() {
    for _p in "$@"; do
        if [ -e "$_p" ]; then
            echo "FAIL: $_p was written"
            fail=1
        fi
    done
    if ls "$tmp/out.d" | grep -q '\.tmp\.'; then
        echo "FAIL: a temporary file was left: $(ls "$tmp/out.d")"
        fail=1
    fi
}

case $check in
values)
    train iris "$root/examples/iris.nnl" --set epochs=3
    exported iris float32
    train xor "$root/examples/xor.nnl" --set epochs=20
    exported xor float32
    train xor64 "$root/examples/xor.nnl" --set epochs=20 --float64
    exported xor64 float64
    # a scalar parameter: rank 0, shape [] and ()
    mkdir "$tmp/scalar"
    cp "$root/examples/data/xor.csv" "$tmp/scalar/"
    cat >"$tmp/scalar/scalar.nnl" <<'EOF'
data xor = csv("xor.csv", target = "y")
layer scaled(x) {
    param s = 1
    return x * s
}
model net(x[2]) {
    return sigmoid(scaled(dense(x, 1)))
}
train net {
    data = xor
    loss = bce
    optimizer = sgd(lr = 0.5)
    epochs = 3
}
EOF
    train scalar "$tmp/scalar/scalar.nnl"
    exported scalar float32
    # names that need escaping in JSON: the CRC made to agree
    "$py" "$here/check_export.py" patch "$tmp/xor.ckpt" "$tmp/q.ckpt" rename h.b 'h"\'
    "$nnlc" export "$tmp/q.ckpt" -o "$tmp/q.safetensors"
    "$py" "$here/check_export.py" names "$tmp/q.safetensors" >"$tmp/names"
    printf 'h.W\nh"\\\noutput.W\noutput.b\n__metadata__\n' >"$tmp/want"
    if ! cmp -s "$tmp/names" "$tmp/want"; then
        echo "FAIL: escaped names: $(cat "$tmp/names")"
        fail=1
    fi
    # a second export replaces the first, whole
    "$nnlc" export "$tmp/iris.ckpt" -o "$tmp/xor.safetensors"
    cmp "$tmp/xor.safetensors" "$tmp/iris.safetensors"
    ;;
errors)
    train xor "$root/examples/xor.nnl" --set epochs=5
    ck=$tmp/xor.ckpt
    mkdir "$tmp/out.d"
    o=$tmp/out.d
    expect 2 "nnlc: error: export needs -o OUT (see 'nnlc help export')" "$nnlc" export "$ck"
    expect 2 "nnlc: error: export needs a checkpoint (see 'nnlc help export')" \
        "$nnlc" export -o "$o/w.safetensors"
    expect 2 "nnlc: error: option '-o' needs a value (see 'nnlc help export')" \
        "$nnlc" export "$ck" -o
    expect 2 "nnlc: error: unknown option '--nope' (see 'nnlc help export')" \
        "$nnlc" export "$ck" --nope -o "$o/w.safetensors"
    expect 2 "nnlc: error: export takes one checkpoint (see 'nnlc help export')" \
        "$nnlc" export "$ck" "$ck" -o "$o/w.safetensors"
    expect 2 "nnlc: error: unknown export format 'onnx' (safetensors or npy)" \
        "$nnlc" export "$ck" --format onnx -o "$o/w.onnx"
    expect 2 "$o/w.bin: error: cannot tell the format from the name: end it in .safetensors, or give --format safetensors or --format npy" \
        "$nnlc" export "$ck" -o "$o/w.bin"
    expect 2 "nnlc: error: the output's name is empty" "$nnlc" export "$ck" -o ""
    expect 2 "$o: error: is a directory: safetensors is one file (--format npy writes a directory)" \
        "$nnlc" export "$ck" --format safetensors -o "$o"
    echo keep >"$o/file"
    expect 2 "$o/file: error: exists and is not a directory: --format npy writes one NAME.npy per tensor into a directory" \
        "$nnlc" export "$ck" --format npy -o "$o/file"
    [ "$(cat "$o/file")" = keep ] || { echo "FAIL: $o/file changed"; fail=1; }
    rm "$o/file"
    expect 2 "$o/none/w.safetensors: error: cannot write the export: No such file or directory (creating the temporary file); nothing was written" \
        "$nnlc" export "$ck" -o "$o/none/w.safetensors"
    expect 2 "$o/none/npy: error: cannot create the directory: No such file or directory" \
        "$nnlc" export "$ck" --format npy -o "$o/none/npy"
    expect 2 "$tmp/missing.ckpt: error: cannot open the checkpoint: No such file or directory" \
        "$nnlc" export "$tmp/missing.ckpt" -o "$o/w.safetensors"
    absent "$o/w.safetensors" "$o/none"
    # refused checkpoints: nothing written, an older export left as it was
    size=$(wc -c <"$ck")
    head -c $((size - 1)) "$ck" >"$tmp/short.ckpt"
    expect 1 "$tmp/short.ckpt: error: truncated at byte $((size - 1)) (the header promises $size bytes)" \
        "$nnlc" export "$tmp/short.ckpt" -o "$o/w.safetensors"
    expect 1 "$tmp/short.ckpt: error: truncated at byte $((size - 1)) (the header promises $size bytes)" \
        "$nnlc" export "$tmp/short.ckpt" --format npy -o "$o/npy"
    absent "$o/w.safetensors" "$o/npy"
    "$py" "$here/check_export.py" patch "$ck" "$tmp/v1.ckpt" version 1
    expect 1 "$tmp/v1.ckpt: error: checkpoint format version 1; this runtime reads versions 2 and 3 (it was written by an older nnlc, before checkpoints had a tensor table: resume it with that nnlc)" \
        "$nnlc" export "$tmp/v1.ckpt" -o "$o/w.safetensors"
    printf 'epoch,step,loss\n' >"$tmp/log.csv"
    expect 1 "$tmp/log.csv: error: not an nnlc checkpoint (it does not start with \"NNLCKPT\")" \
        "$nnlc" export "$tmp/log.csv" -o "$o/w.safetensors"
    "$nnlc" export "$ck" -o "$o/w.safetensors"
    cp "$o/w.safetensors" "$tmp/before"
    cp "$ck" "$tmp/flip.ckpt"
    printf 'X' | dd of="$tmp/flip.ckpt" bs=1 seek=200 conv=notrunc 2>/dev/null
    set +e
    "$nnlc" export "$tmp/flip.ckpt" -o "$o/w.safetensors" 2>"$tmp/err"
    rc=$?
    set -e
    if [ $rc != 1 ] || ! grep -q "error: corrupt: CRC mismatch" "$tmp/err" ||
        ! cmp -s "$o/w.safetensors" "$tmp/before"; then
        echo "FAIL: a damaged checkpoint: exit $rc, $(cat "$tmp/err"), or the older export changed"
        fail=1
    fi
    absent
    # names that cannot be file names: refused for npy (safetensors takes them)
    "$py" "$here/check_export.py" patch "$ck" "$tmp/slash.ckpt" rename h.W h/W
    expect 1 "$o/npy: error: the tensor name 'h/W' cannot be a file name (only letters, digits, '_', '.' and '-', not first '.'): use --format safetensors" \
        "$nnlc" export "$tmp/slash.ckpt" --format npy -o "$o/npy"
    "$py" "$here/check_export.py" patch "$ck" "$tmp/dot.ckpt" rename h.b ..b
    expect 1 "$o/npy: error: the tensor name '..b' cannot be a file name (only letters, digits, '_', '.' and '-', not first '.'): use --format safetensors" \
        "$nnlc" export "$tmp/dot.ckpt" --format npy -o "$o/npy"
    absent "$o/npy"
    "$nnlc" export "$tmp/slash.ckpt" -o "$o/slash.safetensors"
    "$nnlc" help export | grep -q "optimizer states"
    ;;
*)
    echo "export.sh: unknown check '$check'"
    exit 2
    ;;
esac
[ $fail = 0 ] && echo "export $check: ok"
exit $fail
