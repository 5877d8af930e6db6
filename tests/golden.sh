#!/bin/sh
# golden.sh NNLC MODE INPUT EXPECTED — runs nnlc on INPUT and compares with EXPECTED.
#   MODE diag: `nnlc check INPUT`, stderr and stdout, then "exit: N"
#   MODE ast:  `nnlc dump --stage=ast INPUT`, same capture
#   MODE ir, grad, kernels: `nnlc dump --stage=MODE INPUT`, same capture
#   MODE summary: `nnlc check --summary INPUT`, same capture
# nnlc runs in INPUT's directory with the bare file name, so paths in messages are stable.
# With NNL_UPDATE=1 the expected file is (re)written instead: review the diff before committing.
set -u
nnlc=$1 mode=$2 input=$3 expected=$4

case $mode in
    diag) args="check" ;;
    ast)  args="dump --stage=ast" ;;
    ir|grad|kernels) args="dump --stage=$mode" ;;
    summary) args="check --summary" ;;
    *)    echo "golden.sh: unknown mode '$mode'" >&2; exit 2 ;;
esac

dir=$(dirname "$input")
name=$(basename "$input")
actual=$(mktemp)
trap 'rm -f "$actual"' EXIT
# shellcheck disable=SC2086
(cd "$dir" && timeout 60 "$nnlc" $args "$name" >"$actual.out" 2>&1; echo "exit: $?" >>"$actual.out")
mv "$actual.out" "$actual"

if [ "${NNL_UPDATE:-0}" = 1 ]; then
    mkdir -p "$(dirname "$expected")"
    cp "$actual" "$expected"
    exit 0
fi
if [ ! -f "$expected" ]; then
    echo "golden.sh: no expected output $expected (run with NNL_UPDATE=1 to create it)" >&2
    cat "$actual"
    exit 1
fi
diff -u "$expected" "$actual"
