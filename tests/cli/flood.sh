#!/bin/sh
# Hostile input at the engine (issues 5 and 7): N requests over nng (default
# 100,000), 1% valid and the rest garbage, truncated, damaged in part, deeply
# nested, oversized or semantically invalid (tests/live/flood.c), while 300
# idle TCP connections and a slow-trickle sender hold sockets open and
# another producer streams a file. The engine keeps running, takes every
# valid event, counts every bad message and event by reason (its metrics
# equal what the flood saw), its memory stays bounded, and the other
# producer is not held up.
#
#   sh tests/cli/flood.sh path/to/vigil path/to/flood path/to/source-tree [N]
#
# The long run of issue 7: N=1000000 (about 3 minutes here).
set -u
vigil=$1
flood=$2
top=$(cd "$3" && pwd)
n=${4:-100000}
tmp=$(mktemp -d)
pid=""
ppid_idle=""
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; [ -n "$ppid_idle" ] && kill "$ppid_idle" 2>/dev/null; rm -rf "$tmp"' EXIT
. "$top/tests/cli/lib.sh"
port=$(free_port)
iport=$(free_port)
url="tcp://127.0.0.1:$iport"
max=65536
fail() {
    echo "FAIL: $*"
    exit 1
}
ulimit -n 4096 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
"$vigil" run --rules "$top/rules/examples" --state "$tmp/state" --ingest "$url" \
    --max-message "$max" --http "127.0.0.1:$port" >/dev/null 2>"$tmp/err" &
pid=$!
i=0
while ! grep -q "ready:" "$tmp/err"; do
    i=$((i + 1))
    [ $i -gt 100 ] && fail "the engine did not start: $(cat "$tmp/err")"
    sleep 0.1
done

# 300 idle connections, and one that sends an SP header a byte every 200 ms
python3 - "$iport" >"$tmp/idle.out" 2>&1 <<'PY' &
import socket, sys, time
port = int(sys.argv[1])
idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(300)]
slow = socket.create_connection(("127.0.0.1", port))
print(f"{len(idle)} idle connections open", flush=True)
hdr = b"\0SP\0\x00\x31\0\0"  # the SP header of a REQ peer, never finished in time
for b in hdr * 100:
    try:
        slow.send(bytes([b]))
    except OSError:
        break
    time.sleep(0.2)
time.sleep(600)
PY
ppid_idle=$!
i=0
while ! grep -q "idle connections open" "$tmp/idle.out"; do
    i=$((i + 1))
    [ $i -gt 100 ] && fail "the idle connections did not open: $(cat "$tmp/idle.out")"
    sleep 0.1
done

"$vigil" gen --accounts 500 --events 5000 --seed 8 --out "$tmp/g.csv" 2>/dev/null
ng=$(($(wc -l <"$tmp/g.csv") - 1))
t0=$(date +%s)
"$vigil" send --to "$url" --input "$tmp/g.csv" --timeout 60 -q 2>"$tmp/send.err" &
spid=$!
"$flood" "$url" "$n" 7 "$max" >"$tmp/out" 2>"$tmp/flood.err" || fail "flood: $(cat "$tmp/flood.err")"
wait "$spid" || fail "the other producer: $(cat "$tmp/send.err")"
t1=$(date +%s)
kill -0 "$pid" 2>/dev/null || fail "the engine died"
# RSS bound: 200 MB; under AddressSanitizer (its shadow memory and its
# quarantine of freed blocks, 256 MB by default) 1 GB
limit=200
[ -n "${ASAN_OPTIONS:-}" ] && limit=1024
python3 - "$port" "$pid" "$ng" "$(cat "$tmp/out")" "$limit" <<'PY' || exit 1
import sys, urllib.request
port, pid, ng, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].split()
limit = int(sys.argv[5])
want = {out[i]: int(out[i + 1]) for i in range(0, len(out), 2)}
m = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
vals = dict(l.rsplit(" ", 1) for l in m.splitlines() if l and not l.startswith("#"))
got = {
    "accepted": int(vals['vigil_events_total{outcome="accepted"}']) - ng,
    "bad_messages": int(vals["vigil_bad_messages_total"]),
    "oversized": int(vals["vigil_oversized_messages_total"]),
    "malformed": int(vals['vigil_events_total{outcome="rejected",code="malformed"}']),
    "missing_id": int(vals['vigil_events_total{outcome="rejected",code="missing_id"}']),
    "bad_time": int(vals['vigil_events_total{outcome="rejected",code="bad_time"}']),
}
if got != want:
    sys.exit(f"FAIL: the engine's metrics {got} differ from what the flood saw {want}")
rss = int([l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS:")][0].split()[1])
if rss > limit * 1024:
    sys.exit(f"FAIL: RSS {rss} KB after the flood (the bound: {limit} MB)")
print(f"flood: the engine counted every outcome by reason as the flood saw it: {want}; "
      f"RSS {rss // 1024} MB; the other producer's {ng} events all acked")
PY
[ $((t1 - t0)) -lt 120 ] || fail "the flood and the other producer took $((t1 - t0)) s"
kill "$ppid_idle" 2>/dev/null
ppid_idle=""
kill -TERM "$pid"
wait "$pid" || fail "the engine's stop: $(tail -2 "$tmp/err")"
pid=""
