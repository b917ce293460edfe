#!/bin/sh
# Every rule example in docs/language.md must be true: a ```vgl block must
# pass `vigil check`, unless the block right after it is a ```text block that
# starts with `NAME.vgl:LINE:COL:` -- then the example is wrong on purpose and
# `vigil check NAME.vgl` must print exactly that text.
#
#   sh tests/docs/run.sh path/to/vigil path/to/source-tree
set -u
vigil=$1
top=$2
case $vigil in /*) ;; *) vigil=$(pwd)/$vigil ;; esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/ex/lists"
# the list file the manual's list examples name
cp "$top/rules/examples/lists/blocked_merchants.txt" "$tmp/ex/lists/"

# Split the manual: ex/NNNN.vgl for each vgl block (NNNN = its line), and
# ex/NNNN.expect holding the text block after it when that is a diagnostic.
awk -v dir="$tmp/ex" '
    inblock && /^```$/ {
        if (kind == "vgl") { close(file); last = n } else { last = "" }
        if (kind == "text") close(tfile)
        inblock = 0; next
    }
    inblock && kind == "vgl" { print > file; next }
    inblock && kind == "text" { print > tfile; next }
    inblock { next }
    /^```vgl$/ { inblock = 1; kind = "vgl"; n = NR; file = sprintf("%s/%05d.vgl", dir, n); printf "" > file; next }
    /^```text$/ && last != "" { inblock = 1; kind = "text"; tfile = sprintf("%s/%05d.expect", dir, last); printf "" > tfile; next }
    /^```/ { inblock = 1; kind = "other"; last = ""; next }
    /[^ \t]/ { last = "" }
' "$top/docs/language.md"

n=0
fail=0
cd "$tmp/ex" || exit 1
for f in *.vgl; do
    [ -e "$f" ] || continue
    base=${f%.vgl}
    n=$((n + 1))
    if [ -f "$base.expect" ] && head -1 "$base.expect" | grep -qE '^[A-Za-z0-9_./-]+\.vgl:[0-9]+:[0-9]+: '; then
        name=$(head -1 "$base.expect" | sed -E 's/^([A-Za-z0-9_./-]+\.vgl):.*/\1/')
        mkdir -p "$(dirname "$name")"
        cp "$f" "$name"
        "$vigil" check --color=never "$name" >/dev/null 2>"$base.got"
        if ! diff -u "$base.expect" "$base.got" >"$base.diff"; then
            echo "FAIL: docs/language.md line $(echo "$base" | sed "s/^0*//"): the diagnostic differs"
            cat "$base.diff"
            fail=$((fail + 1))
        fi
        rm -f "$name"
    else
        if ! "$vigil" check --color=never "$f" >/dev/null 2>"$base.got"; then
            echo "FAIL: docs/language.md line $(echo "$base" | sed "s/^0*//"): the example does not compile"
            cat "$base.got"
            fail=$((fail + 1))
        fi
    fi
done
echo "docs: $n examples, $fail failed"
[ "$n" -gt 0 ] && [ "$fail" -eq 0 ]
