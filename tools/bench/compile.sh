#!/bin/sh
# Compile-time benchmark: the in-process compiler (vg_bench_compile) on 1,000
# and 10,000 generated rules, then `vigil check` end to end on a 1,000-rule
# file and on a 10 MB file (80,000 rules), each the median of 11 runs.
#
#   sh tools/bench/compile.sh [BUILD_DIR]     (default build/release)
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$top/build/release}
if [ ! -x "$build/tools/vg_bench_compile" ]; then
    cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release -DVG_TESTS=OFF >/dev/null
    cmake --build "$build" -j"$(nproc)" >/dev/null
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; $(date -u +%F)"
"$build/tools/vg_bench_compile" 1000 21
"$build/tools/vg_bench_compile" 10000 11

# median wall time of `vigil check FILE` over 11 runs, in ms
median_check() {
    i=0
    : >"$tmp/times"
    while [ $i -lt 11 ]; do
        t0=$(date +%s%N)
        "$build/tools/vigil" check -q "$1" >/dev/null
        t1=$(date +%s%N)
        echo $(((t1 - t0) / 1000)) >>"$tmp/times"
        i=$((i + 1))
    done
    sort -n "$tmp/times" | sed -n 6p | awk '{ printf "%.1f ms", $1 / 1000 }'
}

awk 'BEGIN { for (i = 0; i < 1000; i++) printf "rule r%d {\n  where channel == ECOMMERCE and amount > %d.50\n  when count() over 1h > 10 and sum(amount) over 1d before > 500\n  message \"{count() over 1h} in an hour\"\n}\n", i, i % 100 }' >"$tmp/r1000.vgl"
awk 'BEGIN { for (i = 0; i < 80000; i++) printf "rule r%d {\n  where channel == ECOMMERCE and amount > %d.50\n  when count() over 1h > 10\n  message \"{count() over 1h} in an hour\"\n}\n", i, i % 100 }' >"$tmp/r80000.vgl"
echo "vigil check, 1,000 rules ($(wc -c <"$tmp/r1000.vgl") bytes): median $(median_check "$tmp/r1000.vgl")"
echo "vigil check, 80,000 rules ($(wc -c <"$tmp/r80000.vgl") bytes): median $(median_check "$tmp/r80000.vgl")"
