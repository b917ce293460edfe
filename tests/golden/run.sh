#!/bin/sh
# Golden tests of `vigil check`: every case in tests/golden/check is a rule
# file (NAME.vgl) or a folder of them (NAME/); NAME.out beside it holds the
# exact expected output: stderr, then stdout, then a line "exit: N".
#
#   sh tests/golden/run.sh path/to/vigil          compare
#   VG_GOLDEN_UPDATE=1 sh tests/golden/run.sh ... rewrite the .out files
#                                                 (then review git diff)
set -u
vigil=$1
case $vigil in /*) ;; *) vigil=$(pwd)/$vigil ;; esac # we cd below
if [ ! -x "$vigil" ]; then
    echo "golden: no vigil binary at '$vigil'" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/check" || exit 1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
fail=0
for c in *.vgl */; do
    [ -e "$c" ] || continue
    c=${c%/}
    name=${c%.vgl}
    "$vigil" check --color=never "$c" >"$tmp/stdout" 2>"$tmp/got"
    rc=$?
    cat "$tmp/stdout" >>"$tmp/got"
    echo "exit: $rc" >>"$tmp/got"
    n=$((n + 1))
    if [ "${VG_GOLDEN_UPDATE:-}" = 1 ]; then
        cp "$tmp/got" "$name.out"
    elif ! diff -u "$name.out" "$tmp/got" >"$tmp/diff" 2>&1; then
        echo "FAIL: $c"
        cat "$tmp/diff"
        fail=$((fail + 1))
    fi
done
echo "golden: $n cases, $fail failed"
[ "$n" -gt 0 ] && [ "$fail" -eq 0 ]
