#!/bin/sh
# Replay benchmark (issues 3, 4): `vigil replay` end to end (process start, file
# read, decode, dedupe, rules, alert output to /dev/null) on one core, over
# 1M generated events on 100k accounts, with 1, 10 and 50 rules, and 10
# pattern rules plus 10 window rules
# (tools/bench/rules/), from protobuf and from CSV input. Reports the median
# wall time of RUNS runs as events/s, the peak RSS, and the LMDB size per
# account after a replay with --state.
#
#   sh tools/bench/replay.sh [BUILD_DIR]   (default build/release)
#
# Environment: RUNS (default 3), EVENTS (default 1000000), ACCOUNTS (default
# 100000), DATA (a folder to keep the generated inputs in between runs;
# default a temporary one).
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$top/build/release}
runs=${RUNS:-3}
events=${EVENTS:-1000000}
accounts=${ACCOUNTS:-100000}
vigil=$build/tools/vigil
if [ ! -x "$vigil" ]; then
    cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release -DVG_TESTS=OFF >/dev/null
    cmake --build "$build" -j"$(nproc)" >/dev/null
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
data=${DATA:-$tmp}
mkdir -p "$data"
pin=""
command -v taskset >/dev/null && pin="taskset -c 0"

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; $(date -u +%F)"
for fmt in pb csv; do
    f=$data/bench-$events-$accounts.$fmt
    if [ ! -s "$f" ]; then
        echo "generating $f ..." >&2
        "$vigil" gen --accounts "$accounts" --events "$events" --seed 3 -o "$f"
    fi
done
n=$("$vigil" replay -q --rules "$top/tools/bench/rules/none.vgl" --input "$data/bench-$events-$accounts.pb" --decisions | wc -l)
echo "$n events, $accounts accounts; median of $runs runs, pinned to one core"

# run FMT RULEFILE: prints "events/s peakRSS-MB"
run() {
    : >"$tmp/times"
    : >"$tmp/rss"
    i=0
    while [ "$i" -lt "$runs" ]; do
        t0=$(date +%s%N)
        /usr/bin/time -f %M -o "$tmp/m" $pin "$vigil" replay -q --rules "$2" \
            --input "$data/bench-$events-$accounts.$1" --out /dev/null
        t1=$(date +%s%N)
        echo $((t1 - t0)) >>"$tmp/times"
        cat "$tmp/m" >>"$tmp/rss"
        i=$((i + 1))
    done
    ns=$(sort -n "$tmp/times" | sed -n "$(((runs + 1) / 2))p")
    kb=$(sort -n "$tmp/rss" | tail -n 1)
    awk -v n="$n" -v ns="$ns" -v kb="$kb" -v runs="$(sort -n "$tmp/times" | awk '{ printf "%s%.2f", (NR > 1 ? " " : ""), $1 / 1e9 }')" \
        'BEGIN { printf "%9.0f events/s  %6.0f MB peak RSS  (runs: %s s)\n", n / (ns / 1e9), kb / 1024, runs }'
}

printf '%-6s %-4s ' "none" "pb"
run pb "$top/tools/bench/rules/none.vgl"
for rules in 1 10 50; do
    for fmt in pb csv; do
        printf '%-6s %-4s ' "$rules" "$fmt"
        run "$fmt" "$top/tools/bench/rules/rules$rules.vgl"
    done
done
# issue 4: 10 pattern rules plus the 10 window rules
printf '%-6s %-4s ' "10p+10" "pb"
run pb "$top/tools/bench/rules/patterns10.vgl"

# LMDB size per account: replay once with --state, then the pages LMDB uses
# (the file is sparse: du counts the blocks written)
for rules in 10 50 patterns10; do
    f=$top/tools/bench/rules/rules$rules.vgl
    [ "$rules" = patterns10 ] && f=$top/tools/bench/rules/patterns10.vgl
    rm -rf "$tmp/state"
    "$vigil" replay -q --rules "$f" \
        --input "$data/bench-$events-$accounts.pb" --state "$tmp/state" --out /dev/null
    kb=$(du -k "$tmp/state/data.mdb" | cut -f1)
    awk -v kb="$kb" -v a="$accounts" -v r="$rules" \
        'BEGIN { printf "LMDB after %s rules: %.0f MB, %.0f bytes per account (all keyspaces and the dedupe index included)\n", r, kb / 1024, kb * 1024 / a }'
done
