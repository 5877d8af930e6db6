#!/bin/sh
# llvm-flags.sh NNLC EXAMPLES — the optimized module of every example uses only the
# fast-math flags of docs/internals.md (reassoc contract arcp afn nsz): no nnan, ninf or fast,
# under which NaN checks would be folded away.
set -eu
nnlc=$1
cd "$2"
status=0
for f in *.nnl; do
    ir=$("$nnlc" dump --stage=llvm "$f")
    if printf '%s\n' "$ir" | grep -Eq '\b(nnan|ninf|fast)\b'; then
        echo "FAIL: $f: the LLVM module carries nnan, ninf or fast:"
        printf '%s\n' "$ir" | grep -E '\b(nnan|ninf|fast)\b' | head -5
        status=1
    fi
    printf '%s\n' "$ir" | grep -q 'reassoc' || { echo "FAIL: $f: no reassoc flag at all"; status=1; }
done
exit $status
