#!/bin/sh
# Malformed messages at the engine (issue 5): 100,000 requests over nng, 99%
# garbage or truncated, 1% valid. The engine keeps running, takes every
# valid event, counts every bad message, and its memory stays bounded.
#
#   sh tests/cli/flood.sh path/to/vigil path/to/flood path/to/source-tree [N]
set -u
vigil=$1
flood=$2
top=$(cd "$3" && pwd)
n=${4:-100000}
tmp=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
url="ipc://$tmp/ingest.ipc"
port=$((20000 + ($$ + 7) % 20000))
fail() {
    echo "FAIL: $*"
    exit 1
}
"$vigil" run --rules "$top/rules/examples" --state "$tmp/state" --ingest "$url" \
    --http "127.0.0.1:$port" >/dev/null 2>"$tmp/err" &
pid=$!
i=0
while ! grep -q "ready:" "$tmp/err"; do
    i=$((i + 1))
    [ $i -gt 100 ] && fail "the engine did not start: $(cat "$tmp/err")"
    sleep 0.1
done
"$flood" "$url" "$n" 7 >"$tmp/out" 2>"$tmp/flood.err" || fail "flood: $(cat "$tmp/flood.err")"
read -r _ valid _ bad _ rejected <"$tmp/out"
kill -0 "$pid" 2>/dev/null || fail "the engine died"
python3 - "$port" "$valid" "$bad" "$pid" "$rejected" <<'PY' || exit 1
import sys, urllib.request
port, valid, bad, pid, rejected = sys.argv[1:6]
m = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
vals = dict(l.rsplit(" ", 1) for l in m.splitlines() if l and not l.startswith("#"))
acc = int(vals['vigil_events_total{outcome="accepted"}'])
badm = int(vals["vigil_bad_messages_total"])
rej = int(vals['vigil_events_total{outcome="rejected",code="malformed"}'])
rss = int([l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS:")][0].split()[1])
if acc != int(valid) or badm != int(bad) or rej != int(rejected):
    sys.exit(f"FAIL: metrics say accepted {acc}, bad messages {badm}, malformed events {rej}; "
             f"sent {valid} valid events, {bad} bad messages, {rejected} bad events in batches")
if rss > 200 * 1024:
    sys.exit(f"FAIL: RSS {rss} KB after the flood")
print(f"flood: {valid} valid events taken, {bad} bad messages and {rejected} bad events in "
      f"otherwise good batches counted, RSS {rss // 1024} MB")
PY
kill -TERM "$pid"
wait "$pid" || fail "the engine's stop: $(tail -2 "$tmp/err")"
pid=""
