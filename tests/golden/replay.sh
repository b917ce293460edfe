#!/bin/sh
# Golden tests of `vigil replay`: every folder in tests/golden/replay holds
# rules.vgl, an input (events.csv, events.jsonl or events.pb) and optionally
# `args` (more options, one line). NAME.out beside the folder holds the exact
# expected output: the alerts (stdout), the summary (stderr, with the
# events/s figure masked) and "exit: N".
#
#   sh tests/golden/replay.sh path/to/vigil
#   VG_GOLDEN_UPDATE=1 sh tests/golden/replay.sh path/to/vigil   (then review)
set -u
vigil=$1
case $vigil in /*) ;; *) vigil=$(pwd)/$vigil ;; esac
[ -x "$vigil" ] || { echo "replay golden: no vigil at '$vigil'" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/replay" || exit 1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
fail=0
for c in */; do
    c=${c%/}
    input=$(ls "$c"/events.* 2>/dev/null | head -1)
    args=""
    [ -f "$c/args" ] && args=$(cat "$c/args")
    # shellcheck disable=SC2086 # args are meant to split
    (cd "$c" && "$vigil" replay --rules rules.vgl --input "$(basename "$input")" $args) \
        >"$tmp/stdout" 2>"$tmp/stderr"
    rc=$?
    {
        cat "$tmp/stdout"
        echo "--- stderr"
        sed -E 's/, [0-9]+ events\/s/, N events\/s/' "$tmp/stderr"
        echo "exit: $rc"
    } >"$tmp/got"
    n=$((n + 1))
    if [ "${VG_GOLDEN_UPDATE:-}" = 1 ]; then
        cp "$tmp/got" "$c.out"
    elif ! diff -u "$c.out" "$tmp/got" >"$tmp/diff" 2>&1; then
        echo "FAIL: $c"
        cat "$tmp/diff"
        fail=$((fail + 1))
    fi
done
echo "replay golden: $n cases, $fail failed"
[ "$n" -gt 0 ] && [ "$fail" -eq 0 ]
