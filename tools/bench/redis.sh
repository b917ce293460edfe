#!/bin/sh
# The comparison of issue 7: one velocity rule, "more than 5 transactions on
# an account within an hour", in Vigil (vigil replay, one core) and as teams
# build it without Vigil: Redis sorted sets (Redis from Debian, started here
# on loopback, no persistence) driven by a pipelined hiredis client
# (tools/bench/redis_velocity.c), over the same generated events. Both must
# find the same number of alerts; prints events/s of each and the ratio,
# median of RUNS runs.
#
#   sh tools/bench/redis.sh [BUILD_DIR]   (default build/release)
#
# Environment: RUNS (default 3), EVENTS (default 1000000), ACCOUNTS
# (default 100000). Installs redis-server and libhiredis-dev if missing.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$top/build/release}
runs=${RUNS:-3}
events=${EVENTS:-1000000}
accounts=${ACCOUNTS:-100000}
for p in redis-server libhiredis-dev; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        { apt-get update -qq && apt-get install -y -qq "$p" >/dev/null; }
done
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release -DVG_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target vigil vg_bench_redis >/dev/null
vigil=$build/tools/vigil
tmp=$(mktemp -d)
rpid=""
trap '[ -n "$rpid" ] && kill "$rpid" 2>/dev/null; rm -rf "$tmp"' EXIT
port=$((20000 + $$ % 20000))
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
    >"$tmp/redis.log" 2>&1 &
rpid=$!
"$vigil" gen --accounts "$accounts" --events "$events" --seed 3 -o "$tmp/g.pb" 2>/dev/null
printf 'rule velocity {\n  on txn\n  key account_id\n  when count() over 1h > 5\n}\n' >"$tmp/v.vgl"
pin=""
command -v taskset >/dev/null && pin="taskset -c 0"
median() { sort -n | sed -n "$(((runs + 1) / 2))p"; }
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; $(date -u +%F)"
: >"$tmp/v"
: >"$tmp/r"
k=0
while [ $k -lt "$runs" ]; do
    t0=$(date +%s%N)
    $pin "$vigil" replay -q --rules "$tmp/v.vgl" --input "$tmp/g.pb" --out "$tmp/alerts.jsonl"
    t1=$(date +%s%N)
    echo $((t1 - t0)) >>"$tmp/v"
    redis-cli -p "$port" flushall >/dev/null
    "$build/tools/vg_bench_redis" "$tmp/g.pb" 127.0.0.1 "$port" 3600000 5 1000 >"$tmp/redis.out"
    sed 's/.*(\(.*\) s)/\1/' "$tmp/redis.out" | awk '{ printf "%d\n", $1 * 1e9 }' >>"$tmp/r"
    k=$((k + 1))
done
n=$(($("$vigil" replay -q --rules "$tmp/v.vgl" --input "$tmp/g.pb" --decisions | wc -l)))
va=$(wc -l <"$tmp/alerts.jsonl")
ra=$(sed 's/.* events, \([0-9]*\) alerts.*/\1/' "$tmp/redis.out")
[ "$va" = "$ra" ] || echo "WARNING: vigil found $va alerts, redis $ra"
vns=$(median <"$tmp/v")
rns=$(median <"$tmp/r")
awk -v n="$n" -v v="$vns" -v r="$rns" -v a="$va" 'BEGIN {
    printf "velocity rule over %d events (%d alerts, both):\n", n, a
    printf "  vigil replay (one core, file to alerts):   %8.0f events/s\n", n / (v / 1e9)
    printf "  redis sorted sets + pipelined hiredis:     %8.0f events/s\n", n / (r / 1e9)
    printf "  ratio vigil/redis: %.1f\n", r / v }'
