#!/bin/sh
# compare.sh EXPECTED ACTUAL TOL [FLOOR] — compare two CSV files field by field.
#
# Both files must have the same number of rows, and each row the same number of
# comma-separated fields. A field that is a decimal number in both files is compared
# numerically: |a - b| <= TOL * max(|a|, |b|, FLOOR) (FLOOR 1e-6 unless given: values far
# below the magnitude of the terms they are computed from cannot be resolved better than
# float32 resolves those terms). Any other field (a header, a name
# such as "h1.W", "nan", "inf") is compared as text. Carriage returns and spaces around
# fields are ignored; a blank last line is not a row.
#
# Prints the first mismatch (row and field, 1-based, and both values) to stderr.
# Exit status: 0 the files agree, 1 they differ, 2 usage error or unreadable file.
# POSIX sh and awk only.

usage() {
    echo "usage: compare.sh EXPECTED ACTUAL TOL [FLOOR]" >&2
    exit 2
}

[ $# -eq 3 ] || [ $# -eq 4 ] || usage
floor=${4:-1e-6}
for f in "$1" "$2"; do
    if [ ! -f "$f" ] || [ ! -r "$f" ]; then
        echo "compare.sh: cannot read '$f'" >&2
        exit 2
    fi
done
case $3 in
    '' | *[!0-9eE.+-]*) echo "compare.sh: TOL must be a number, got '$3'" >&2; exit 2 ;;
esac

exec awk -v exp_file="$1" -v act_file="$2" -v tol="$3" -v floor="$floor" '
function isnum(s) {
    return s ~ /^[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?$/
}
function abs(v) { return v < 0 ? -v : v }
function clean(s) {
    sub(/\r$/, "", s)
    return s
}
function trim(s) {
    sub(/^[ \t]+/, "", s)
    sub(/[ \t]+$/, "", s)
    return s
}
# Reads file f into rows[1..n] (carriage returns removed); blank lines at the end are
# dropped, blank lines elsewhere are (empty) rows. Returns n.
function slurp(f, rows,    n, r, l) {
    n = 0
    while ((r = (getline l < f)) > 0)
        rows[++n] = clean(l)
    if (r < 0) {
        printf "compare.sh: error reading %s\n", f > "/dev/stderr"
        exit 2
    }
    close(f)
    while (n > 0 && rows[n] ~ /^[ \t]*$/)
        delete rows[n--]
    return n
}
function show(s) { return "\"" s "\"" }
BEGIN {
    tol += 0
    nexp = slurp(exp_file, erows)
    nact = slurp(act_file, arows)
    for (row = 1; row <= nexp || row <= nact; row++) {
        if (row > nexp) {
            printf "compare.sh: row %d: ACTUAL has an extra row: %s\n", row, arows[row] > "/dev/stderr"
            exit 1
        }
        if (row > nact) {
            printf "compare.sh: row %d: ACTUAL is missing this row (EXPECTED: %s)\n", row, erows[row] > "/dev/stderr"
            exit 1
        }
        el = erows[row]; al = arows[row]
        ne = split(el, ev, ",")
        na = split(al, av, ",")
        if (ne != na) {
            printf "compare.sh: row %d: %d fields expected, %d found\n", row, ne, na > "/dev/stderr"
            exit 1
        }
        for (i = 1; i <= ne; i++) {
            e = trim(ev[i]); a = trim(av[i])
            if (isnum(e) && isnum(a)) {
                x = e + 0; y = a + 0
                scale = abs(x)
                if (abs(y) > scale) scale = abs(y)
                if (scale < floor + 0) scale = floor + 0
                if (abs(x - y) > tol * scale) {
                    printf "compare.sh: row %d, field %d: expected %s, got %s (|diff| %.3g > %.3g)\n", \
                        row, i, e, a, abs(x - y), tol * scale > "/dev/stderr"
                    exit 1
                }
            } else if (e != a) {
                printf "compare.sh: row %d, field %d: expected %s, got %s\n", \
                    row, i, show(e), show(a) > "/dev/stderr"
                exit 1
            }
        }
    }
    exit 0
}'
