#!/bin/sh
# Fuzz one target for a while, from its seed corpus (tests/fuzz/README.md):
#   sh tools/fuzz.sh TARGET [SECONDS]     (default 600)
#   sh tools/fuzz.sh list                 the targets
# TARGET is a tests/fuzz/fuzz_TARGET.c: rules, pb, csv, jsonl, map, config,
# webhook. Builds build/fuzz (clang, libFuzzer, ASan + UBSan) if needed, uses
# tests/fuzz/TARGET.dict when there is one (csv, jsonl and map share
# events.dict), keeps what it learns in build/fuzz/work/TARGET (the committed
# corpus is only read) and writes findings to build/fuzz/artifacts/TARGET/.
# Extra libFuzzer flags go in VG_FUZZ_FLAGS (e.g. "-jobs=4 -workers=4").
# Exit status: 0 nothing found, 1 a finding (add it to
# tests/fuzz/regressions/TARGET/), 64 usage.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

targets() {
    for f in tests/fuzz/fuzz_*.c; do
        n=${f#tests/fuzz/fuzz_}
        printf '%s\n' "${n%.c}"
    done
}

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: sh tools/fuzz.sh TARGET [SECONDS]  (targets: $(targets | tr '\n' ' '))" >&2
    exit 64
fi
if [ "$1" = list ]; then
    targets
    exit 0
fi
t=$1
seconds=${2:-600}
if [ ! -f "tests/fuzz/fuzz_$t.c" ]; then
    echo "fuzz: no target '$t' (targets: $(targets | tr '\n' ' '))" >&2
    exit 64
fi

dict() {
    case $1 in
    csv | jsonl | map) echo tests/fuzz/events.dict ;;
    *) if [ -f "tests/fuzz/$1.dict" ]; then echo "tests/fuzz/$1.dict"; fi ;;
    esac
}

b=build/fuzz
if [ ! -f "$b/CMakeCache.txt" ]; then
    CC=clang cmake -S . -B "$b" -DCMAKE_BUILD_TYPE=Debug -DVG_FUZZ=ON -DVG_TESTS=OFF >/dev/null
fi
cmake --build "$b" -j"$(nproc)" --target "fuzz_$t"
mkdir -p "$b/work/$t" "$b/artifacts/$t"
d=$(dict "$t")
log=$b/fuzz-$t.log
echo "fuzz: fuzz_$t for ${seconds}s; log in $log"
# shellcheck disable=SC2086 # VG_FUZZ_FLAGS is a list of flags
"$b/tests/fuzz_$t" -max_total_time="$seconds" -timeout=10 -max_len=4096 -rss_limit_mb=2048 \
    ${d:+-dict=$d} -print_final_stats=1 -artifact_prefix="$b/artifacts/$t/" ${VG_FUZZ_FLAGS:-} \
    "$b/work/$t" "tests/fuzz/corpus/$t" 2>"$log" || {
    tail -50 "$log"
    echo "fuzz: a finding of fuzz_$t is in $b/artifacts/$t/; add it to tests/fuzz/regressions/$t/"
    exit 1
}
grep -E "^stat::number_of_executed_units|^stat::average_exec_per_sec|DONE" "$log" || true
