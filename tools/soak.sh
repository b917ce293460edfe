#!/bin/sh
# A bounded soak (issue 7): the engine at a steady rate for MINUTES minutes,
# its alerts going to a jsonl file and a webhook whose receiver is down for
# 15 s of every minute; every 10 s the engine's RSS, LMDB file size, open
# file descriptors and outbox depth are sampled. At the end every alert
# must have reached the jsonl file, and every alert of a rule not in shadow
# mode the receiver (webhooks skip shadow alerts by default), each once by
# webhook-id; the samples of the last half must not keep growing (plateau).
# The rules: RULES, default tools/bench/rules/rules10.vgl (windows up to 30
# days).
#
#   sh tools/soak.sh [BUILD_DIR]    (default build/release)
#
# Environment: MINUTES (default 5), RATE (events/s, default 20000),
# ACCOUNTS (default 2000: vigil gen spreads each account's events over time,
# so few accounts make a stream of many months, longer than the rules'
# windows and the 7-day dedupe horizon: the state can level off). Not part
# of the test suite: it takes minutes.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build/release}
minutes=${MINUTES:-5}
rate=${RATE:-20000}
accounts=${ACCOUNTS:-2000}
rules=${RULES:-$top/tools/bench/rules/rules10.vgl}
vigil=$build/tools/vigil
if [ ! -x "$vigil" ]; then
    cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release -DVG_TESTS=OFF >/dev/null
    cmake --build "$build" -j"$(nproc)" >/dev/null
fi
tmp=$(mktemp -d)
epid=""
lpid=""
trap '[ -n "$epid" ] && kill -9 "$epid" 2>/dev/null; [ -n "$lpid" ] && kill "$lpid" 2>/dev/null; rm -rf "$tmp"' EXIT
port=$((20000 + $$ % 20000))
hport=$((port + 1))
events=$((rate * minutes * 60))
echo "soak: $minutes min at $rate events/s ($events events), webhook down 15 s a minute; $(date -u +%FT%TZ)"
"$vigil" gen --accounts "$accounts" --events "$events" --seed 11 -o "$tmp/g.pb" 2>/dev/null
"$vigil" replay -q --rules "$rules" --input "$tmp/g.pb" --out "$tmp/want.jsonl"
echo "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" >"$tmp/secret"
cat >"$tmp/vigil.yaml" <<YAML
state: {path: state}
ingest: ipc://$tmp/i.ipc
http: 127.0.0.1:$port
sinks:
  - {type: jsonl, path: alerts.jsonl}
  - type: webhook
    url: http://127.0.0.1:$hport/hook
    secret_files: [secret]
    allow_private: true
    retry_schedule: [1s, 2s, 5s, 10s, 10s, 10s, 10s, 10s, 10s, 10s, 10s, 10s, 10s]
YAML
listen() {
    "$vigil" webhook-listen --listen "127.0.0.1:$hport" --secret-file "$tmp/secret" \
        >>"$tmp/hook.jsonl" 2>>"$tmp/hook.err" &
    lpid=$!
}
listen
"$vigil" run --config "$tmp/vigil.yaml" --rules "$rules" >/dev/null 2>"$tmp/run.err" &
epid=$!
while ! grep -q "ready:" "$tmp/run.err"; do sleep 0.1; done
"$vigil" send -q --to "ipc://$tmp/i.ipc" --input "$tmp/g.pb" --rate "$rate" --batch 500 &
spid=$!
echo "t_s,rss_kb,lmdb_kb,fds,outbox_depth" >"$tmp/samples.csv"
t=0
while kill -0 "$spid" 2>/dev/null; do
    sleep 10
    t=$((t + 10))
    # the receiver: down from second 30 to 45 of every minute
    if [ $((t % 60)) -eq 30 ] && [ -n "$lpid" ]; then kill "$lpid"; wait "$lpid" 2>/dev/null || true; lpid=""; fi
    if [ $((t % 60)) -eq 50 ] && [ -z "$lpid" ]; then listen; fi
    rss=$(awk '/VmRSS/ { print $2 }' "/proc/$epid/status")
    lmdb=$(du -k "$tmp/state/data.mdb" | cut -f1)
    fds=$(ls "/proc/$epid/fd" | wc -l)
    depth=$(python3 -c "
import urllib.request
m = urllib.request.urlopen('http://127.0.0.1:$port/metrics', timeout=5).read().decode()
print(sum(int(float(l.rsplit(' ', 1)[1])) for l in m.splitlines() if l.startswith('vigil_outbox_depth{sink=\"webhook')))")
    echo "$t,$rss,$lmdb,$fds,$depth" | tee -a "$tmp/samples.csv"
done
wait "$spid"
[ -z "$lpid" ] && listen
# the webhook catches up
n=$(grep -vc '"shadow":true' "$tmp/want.jsonl" || true)
all=$(wc -l <"$tmp/want.jsonl")
i=0
while [ "$(cut -d'"' -f4 "$tmp/hook.jsonl" | sort -u | wc -l)" -lt "$n" ] && [ $i -lt 300 ]; do
    sleep 1
    i=$((i + 1))
done
kill -TERM "$epid"
wait "$epid" || true
epid=""
got=$(cut -d'"' -f4 "$tmp/hook.jsonl" | sort -u | wc -l)
dups=$(($(wc -l <"$tmp/hook.jsonl") - got))
jl=$(sort -u "$tmp/alerts.jsonl" 2>/dev/null | wc -l)
echo "alerts: $all by replay ($n not shadow); webhook received $got distinct ($dups repeated deliveries); jsonl has $jl"
python3 - "$tmp/samples.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
half = rows[len(rows) // 2:]
for col in ("rss_kb", "lmdb_kb", "fds"):
    a, b = int(half[0][col]), max(int(r[col]) for r in half)
    print(f"  {col}: {rows[0][col]} at start, {half[0][col]} at half time, at most {b} after: "
          f"{'plateau' if b <= a * 1.2 + 64 else 'STILL GROWING'}")
PY
[ "$got" -eq "$n" ] && [ "$jl" -eq "$all" ] && echo "soak: every alert delivered" ||
    { echo "soak: FAIL: alerts lost"; exit 1; }
