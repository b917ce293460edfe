#!/bin/sh
# Sink benchmarks (issue 6):
#   1. webhook delivery throughput: `vigil replay --sink webhook` of an
#      alert-heavy stream (a rule that alerts on nearly every event) to a
#      local `vigil webhook-listen` (which verifies every signature), alerts
#      delivered per second of wall time, replay and receiver sharing the
#      machine's cores;
#   2. what sinks cost ingest when alerts are frequent: `vigil run` fed by
#      `vigil send` (batches of 1000, ipc), the same stream, with a jsonl sink
#      only, and with a jsonl sink plus the webhook.
# Prints the median of RUNS runs.
#
#   sh tools/bench/sinks.sh [BUILD_DIR]   (default build/release)
#
# Environment: RUNS (default 3), EVENTS (default 200000), ACCOUNTS (default 20000).
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$top/build/release}
runs=${RUNS:-3}
events=${EVENTS:-200000}
accounts=${ACCOUNTS:-20000}
vigil=$build/tools/vigil
if [ ! -x "$vigil" ]; then
    cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release -DVG_TESTS=OFF >/dev/null
    cmake --build "$build" -j"$(nproc)" >/dev/null
fi
tmp=$(mktemp -d)
lpid=""
epid=""
trap '[ -n "$lpid" ] && kill "$lpid" 2>/dev/null; [ -n "$epid" ] && kill -9 "$epid" 2>/dev/null; rm -rf "$tmp"' EXIT
port=$((20000 + $$ % 20000))
echo "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" >"$tmp/secret"
printf 'rule every {\n  on txn\n  key account_id\n  when amount > 0\n}\n' >"$tmp/every.vgl"
"$vigil" gen --accounts "$accounts" --events "$events" --seed 3 --out "$tmp/g.csv" 2>/dev/null
n=$("$vigil" replay -q --rules "$tmp/every.vgl" --input "$tmp/g.csv" | wc -l)
events=$(($(wc -l <"$tmp/g.csv") - 1)) # gen adds scenario events to the count asked for
cat >"$tmp/hook.yaml" <<YAML
sinks:
  - {type: jsonl, path: alerts.jsonl}
  - {type: webhook, url: "http://127.0.0.1:$port/hook", secret_files: [secret], allow_private: true}
YAML
printf 'sinks:\n  - {type: jsonl, path: alerts.jsonl}\n' >"$tmp/jsonl.yaml"

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; $(date -u +%F)"
echo "$n alerts from $events generated events on $accounts accounts; median of $runs runs"

"$vigil" webhook-listen --listen "127.0.0.1:$port" --secret-file "$tmp/secret" >/dev/null 2>"$tmp/listen.err" &
lpid=$!
i=0
while ! grep -q listening "$tmp/listen.err"; do
    i=$((i + 1))
    [ $i -gt 100 ] && { echo "webhook-listen did not start" >&2; exit 1; }
    sleep 0.05
done

median() { sort -n | sed -n "$(((runs + 1) / 2))p"; }

: >"$tmp/t"
k=0
while [ $k -lt "$runs" ]; do
    t0=$(date +%s%N)
    "$vigil" replay -q --rules "$tmp/every.vgl" --input "$tmp/g.csv" --config "$tmp/hook.yaml" \
        --sink webhook >/dev/null
    t1=$(date +%s%N)
    echo $((t1 - t0)) >>"$tmp/t"
    k=$((k + 1))
done
ns=$(median <"$tmp/t")
awk -v n="$n" -v ns="$ns" 'BEGIN { printf "webhook delivery (replay --sink webhook): %.0f alerts/s (%.2f s)\n", n / (ns / 1e9), ns / 1e9 }'

# ingest: vigil run + vigil send, until every alert is in the jsonl sink
ingest() { # CONFIG LABEL
    : >"$tmp/t"
    k=0
    while [ $k -lt "$runs" ]; do
        rm -rf "$tmp/state" "$tmp/alerts.jsonl"
        "$vigil" run --config "$1" --rules "$tmp/every.vgl" --state "$tmp/state" \
            --ingest "ipc://$tmp/i.ipc" --http none >/dev/null 2>"$tmp/run.err" &
        epid=$!
        while ! grep -q "ready:" "$tmp/run.err"; do sleep 0.05; done
        t0=$(date +%s%N)
        "$vigil" send -q --to "ipc://$tmp/i.ipc" --input "$tmp/g.csv" --batch 1000
        while [ "$(wc -l <"$tmp/alerts.jsonl" 2>/dev/null || echo 0)" -lt "$n" ]; do sleep 0.01; done
        t1=$(date +%s%N)
        kill -TERM "$epid"
        wait "$epid" || true
        epid=""
        echo $((t1 - t0)) >>"$tmp/t"
        k=$((k + 1))
    done
    ns=$(median <"$tmp/t")
    awk -v e="$events" -v ns="$ns" -v l="$2" 'BEGIN { printf "ingest with %s: %.0f events/s (%.2f s)\n", l, e / (ns / 1e9), ns / 1e9 }'
}
ingest "$tmp/jsonl.yaml" "a jsonl sink"
ingest "$tmp/hook.yaml" "a jsonl sink and the webhook"
