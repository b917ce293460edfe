#!/bin/sh
# The alert sinks end to end (SPEC section 6): the real `vigil run` with
# webhook, jsonl and nng sinks in its config, fed by `vigil send`, delivering
# to a real HTTP receiver (tests/webhook/receiver.js) that checks every
# signature with an independent implementation (npm standardwebhooks) and
# follows a script of outages. Everything is compared with `vigil replay`.
#
#   a. an outage (503 with Retry-After, then connection refused): every alert
#      arrives signed, each key's alerts in order, no retry before its delay
#      or its Retry-After; the jsonl file equals replay's; the outbox drains
#   b. kill -9 during deliveries, twice: after the restarts every alert has
#      arrived, and the distinct ids are replay's
#   c. the independent verifier refuses captured deliveries once tampered
#   d. the address guard: without allow_private nothing reaches loopback or
#      the metadata address, the engine keeps acking, failures are counted
#   e. the nng PUB sink: a subscriber (tests/live/sub.c) gets "<rule>\0<json>"
#   f. a sink taken out of the config and put back: no re-sends, the outbox
#      empties
#
#   sh tests/cli/sinks.sh path/to/vigil path/to/source-tree [npm-dir [path/to/sub]]
#
# npm-dir is where standardwebhooks is installed (default: a temporary
# folder); without the subscriber, (e) is skipped. Exits 77 (skipped) only
# when node or npm is not installed. Processes are stopped by their ids.
set -u
vigil=$1
top=$(cd "$2" && pwd)
sub=${4:-}
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
    echo "SKIP: node or npm is not installed, so the webhook receiver (node, with npm"
    echo "      standardwebhooks as its verifier) cannot run; install Node.js and npm"
    exit 77
fi
tmp=$(mktemp -d)
npmdir=${3:-$tmp/npm}
pid=""     # the engine
rpid=""    # the receiver
spid=""    # the subscriber
sendpid="" # a vigil send in the background
cleanup() {
    for p in $pid $rpid $spid $sendpid; do
        kill -9 "$p" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
fails=0
n=0
ok() { n=$((n + 1)); }
bad() {
    n=$((n + 1))
    fails=$((fails + 1))
    echo "FAIL: $*"
}
fail() {
    echo "FAIL: $*"
    exit 1
}
began=$(date +%s)
say() { echo "[$(($(date +%s) - began)) s] $*"; }

# standardwebhooks, as tests/cli/sign.sh installs it (--install-links copies
# the folder so that its dependency lands in npmdir); not again when there
mkdir -p "$npmdir"
if ! grep -qs '"version": "1.3.0"' "$npmdir/node_modules/standardwebhooks/package.json"; then
    if ! npm install --no-audit --no-fund --install-links --prefix "$npmdir" \
        "$top/tests/webhook" >"$tmp/npm.log" 2>&1; then
        echo "FAIL: npm install of tests/webhook (standardwebhooks):"
        cat "$tmp/npm.log"
        exit 1
    fi
fi
# exported, so that node started in the background is the process whose id we hold
NODE_PATH="$npmdir/node_modules"
export NODE_PATH

. "$top/tests/cli/lib.sh"
http="127.0.0.1:$(free_port)"
metrics() { curl -s --max-time 5 "http://$http/metrics"; }
# metric NAME_AND_LABELS: its value now (empty when absent)
metric() { metrics | awk -v m="$1" '$1 == m { print $2 }'; }

# receiver LOG ARGS...: starts receiver.js, waits until it listens; sets rpid
# and rport
receiver() {
    log=$1
    shift
    node "$top/tests/webhook/receiver.js" --out "$log" "$@" >"$log.stdout" 2>"$log.stderr" &
    rpid=$!
    i=0
    while ! grep -q "^listening on" "$log.stdout"; do
        i=$((i + 1))
        if [ $i -gt 200 ] || ! kill -0 "$rpid" 2>/dev/null; then
            fail "the receiver did not start: $(cat "$log.stderr")"
        fi
        sleep 0.05
    done
    rport=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$log.stdout")
}
stop_receiver() {
    kill -TERM "$rpid"
    wait "$rpid" || bad "the receiver exited $?: $(cat "$1.stderr")"
    rpid=""
}

# start CONFIG ERR: the engine in the background, waited for (ERR may hold
# earlier starts' lines); sets pid
start() {
    touch "$2"
    before=$(grep -c "ready:" "$2")
    "$vigil" run --config "$1" --rules "$rules" --rules "$tmp/many" --http "$http" \
        --checkpoint 0.3 >>"$2.stdout" 2>>"$2" &
    pid=$!
    i=0
    while [ "$(grep -c "ready:" "$2")" = "$before" ]; do
        i=$((i + 1))
        if [ $i -gt 400 ] || ! kill -0 "$pid" 2>/dev/null; then
            fail "the engine did not start: $(cat "$2")"
        fi
        sleep 0.05
    done
}
stop() {
    kill -TERM "$pid"
    wait "$pid"
    rc=$?
    pid=""
    return $rc
}
# drained SINK...: waits (up to 45 s) until each sink's outbox depth is 0
drained() {
    i=0
    while [ $i -lt 450 ]; do
        all=1
        for s in "$@"; do
            [ "$(metric "vigil_outbox_depth{sink=\"$s\"}")" = 0 ] || all=0
        done
        [ $all = 1 ] && return 0
        i=$((i + 1))
        sleep 0.1
    done
    return 1
}

# --- the stream: a few thousand alerts over hundreds of keys ------------------------
rules="$top/rules/examples"
mkdir "$tmp/many"
# the example rules alert a few hundred times; this one adds thousands
cat >"$tmp/many/many.vgl" <<'EOF'
rule many {
  on txn
  key account_id
  where amount > 100
}
EOF
"$vigil" gen --accounts 300 --events 30000 --seed 4 --out "$tmp/g.csv" 2>/dev/null
"$vigil" replay -q --rules "$rules" --rules "$tmp/many" --input "$tmp/g.csv" --out "$tmp/want.jsonl"
nwant=$(wc -l <"$tmp/want.jsonl")
[ "$nwant" -ge 2000 ] && ok || fail "replay raised $nwant alerts, not thousands"
nmany=$(grep -c '"rule":"many"' "$tmp/want.jsonl")
echo "whsec_$(head -c 32 /dev/urandom | base64 | tr -d '\n')" >"$tmp/secret"

# check WANT MODE LOG [ARGS]: the receiver's log against the alerts of WANT
# (replay's, or those of them a webhook takes) (python)
check() { python3 - "$@" <<'EOF'
import json, sys
from collections import defaultdict

want_path, mode, log_path = sys.argv[1], sys.argv[2], sys.argv[3]
want = [json.loads(l) for l in open(want_path, encoding="utf-8")]
want_ids = [a["id"] for a in want]
key_of = {a["id"]: a["key"] for a in want}
log = [dict(json.loads(l), n=n) for n, l in enumerate(open(log_path, encoding="utf-8"))]
fails = []
def bad(what, examples=()):
    ex = list(examples)[:3]
    fails.append(what + (": " + "; ".join(map(str, ex)) if ex else ""))

invalid = [r for r in log if not r["valid"]]
if invalid:
    bad(f"{len(invalid)} of {len(log)} attempts did not verify with standardwebhooks", invalid)
mismatch = [r for r in log if r["body_id"] != r["id"] or key_of.get(r["id"], r["key"]) != r["key"]]
if mismatch:
    bad(f"{len(mismatch)} attempts whose webhook-id, body id or key differ from replay's", mismatch)
good = [r for r in log if r["valid"] and 200 <= r["status"] <= 299]
got = set(r["id"] for r in good)
missing = [i for i in want_ids if i not in got]
if missing:
    bad(f"{len(missing)} of {len(want_ids)} alerts never delivered", missing)
extra = set(r["id"] for r in log) - set(want_ids)
if extra:
    bad(f"{len(extra)} ids delivered that replay did not raise", extra)
if len(set(want_ids)) != len(want_ids):
    bad("replay's ids are not unique")
dups = len(good) - len(got)
stats = {"attempts": len(log), "answered 503": sum(r["status"] == 503 for r in log),
         "answered 500": sum(r["status"] == 500 for r in log),
         "delivered": len(got), "delivered again": dups}

if mode == "outage":
    schedule = [int(x) for x in sys.argv[4].split(",")]
    tolerance = int(sys.argv[5])
    # per key: the order of first successful deliveries is replay's order
    # (deliveries in one ms in the log's order: the receiver writes each down
    # as it answers it)
    first = {}
    for r in good:
        first.setdefault(r["id"], r)
    order_want, order_got = defaultdict(list), defaultdict(list)
    for a in want:
        order_want[a["key"]].append(a["id"])
    for r in sorted(first.values(), key=lambda r: (r["t"], r["n"])):
        order_got[r["key"]].append(r["id"])
    wrong = [k for k in order_want if order_got[k] != order_want[k]]
    if wrong:
        k = wrong[0]
        bad(f"{len(wrong)} of {len(order_want)} keys got their alerts out of replay's order",
            [f"key {k}: replay {order_want[k][:4]}..., delivered {order_got[k][:4]}..."])
    # retries: never before the previous attempt's answer + its delay (the
    # engine's count of failures is at least the receiver's count of
    # answered failures: refused connects are failures it cannot see, and
    # the schedule does not decrease), nor before a Retry-After
    early = []
    retried = 0
    by_id = defaultdict(list)
    for r in log:
        by_id[r["id"]].append(r)
    for aid, rs in by_id.items():
        rs.sort(key=lambda r: (r["t"], r["n"]))
        failures = 0
        for prev, nxt in zip(rs, rs[1:]):
            if 200 <= prev["status"] <= 299:
                continue  # sent again after a success: an answer the engine did not see in time
            retried += 1
            delay = schedule[min(failures, len(schedule) - 1)]
            failures += 1
            need = max(delay, 1000 * prev.get("retry_after", 0))
            if nxt["t"] - prev["t"] < need - tolerance:
                early.append(f"{aid}: {prev['status']} at {prev['t']}, again {nxt['t'] - prev['t']} ms "
                             f"later (at least {need} ms due)")
    if early:
        bad(f"{len(early)} retries came before their delay or Retry-After", early)
    stats["retries seen"] = retried
    if stats["answered 503"] == 0 or stats["answered 500"] == 0 or retried == 0:
        bad("the outage was not seen: no 503 or 500 answered, or no retry", [stats])

print("; ".join(f"{k} {v}" for k, v in stats.items()))
for f in fails:
    print("FAIL: " + f)
sys.exit(1 if fails else 0)
EOF
}

# --- a. an outage, with webhook, jsonl and nng sinks --------------------------------
say "a: outage"
mkdir "$tmp/a"
cp "$tmp/secret" "$tmp/a/secret"
# 503 (Retry-After: 1) for 2 s from the first delivery, connection refused
# from 2 s to 3.5 s, then 204; one delivery in 16 (by its id) is answered 500
# (no Retry-After) on its first 2 attempts, so the schedule's own delays show
receiver "$tmp/a/recv.jsonl" --secret-file "$tmp/secret" --unavailable 2000 --retry-after 1 \
    --refuse 2000 3500 --flaky 0 2 --capture "$tmp/a/captured.jsonl" 5
schedule="200,400,800,1000,1000,1000,1000,1000,1000,1000,1000,1000"
cat >"$tmp/a/vigil.yaml" <<EOF
state: {path: st}
ingest: ipc://$tmp/a/ingest.ipc
sinks:
  - type: webhook
    url: http://127.0.0.1:$rport/hook
    secret_files: [secret]
    allow_private: true
    retry_schedule: [200ms, 400ms, 800ms, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s]
    timeout: 5s
    shadow: true
  - {type: jsonl, path: alerts.jsonl, fsync: true, shadow: true}
  - {type: nng, url: "ipc://$tmp/a/alerts.ipc"}
EOF
hook="webhook:http://127.0.0.1:$rport/hook"
jsonl="jsonl:$tmp/a/alerts.jsonl"
start "$tmp/a/vigil.yaml" "$tmp/a/err"
if [ -n "$sub" ]; then
    "$sub" "ipc://$tmp/a/alerts.ipc" many "$nmany" 20000 >"$tmp/a/sub.out" 2>"$tmp/a/sub.err" &
    spid=$!
    i=0
    while ! grep -q subscribed "$tmp/a/sub.err" && [ $i -lt 100 ]; do
        i=$((i + 1))
        sleep 0.05
    done
    sleep 0.3 # the PUB side attaches the new pipe
fi
# about 4 s of stream, through the whole outage
"$vigil" send --to "ipc://$tmp/a/ingest.ipc" --input "$tmp/g.csv" --batch 50 --rate 8000 \
    2>"$tmp/a/send.err" && ok || bad "send: $(cat "$tmp/a/send.err")"
say "a: sent: $(cat "$tmp/a/send.err")"
drained "$hook" "$jsonl" "nng:ipc://$tmp/a/alerts.ipc" && ok ||
    bad "the outbox did not drain in 45 s: $(metrics | grep '^vigil_outbox_depth')"
say "a: drained"
m=$(metrics)
# the nng sink does not ask for shadow-mode alerts (SPEC §2): they are filtered out
nactive=$(grep -vc '"shadow":true' "$tmp/want.jsonl")
[ "$nactive" -lt "$nwant" ] && ok || bad "replay raised no shadow-mode alert to filter"
for s in "$hook" "$jsonl" "nng:ipc://$tmp/a/alerts.ipc"; do
    w=$nwant
    case $s in nng:*) w=$nactive ;; esac
    echo "$m" | grep -qxF "vigil_outbox_depth{sink=\"$s\"} 0" && ok ||
        bad "depth of $s: $(echo "$m" | grep -F "vigil_outbox_depth{sink=\"$s\"}")"
    echo "$m" | grep -qxF "vigil_sink_alerts_total{sink=\"$s\",outcome=\"delivered\"} $w" &&
        ok || bad "$s delivered: $(echo "$m" | grep -F "{sink=\"$s\",outcome=\"delivered\"}")"
    echo "$m" | grep -qxF "vigil_sink_alerts_total{sink=\"$s\",outcome=\"dead\"} 0" && ok ||
        bad "$s dead letters: $(echo "$m" | grep -F "{sink=\"$s\",outcome=\"dead\"}")"
done
failed=$(echo "$m" | awk -v m="vigil_sink_failed_attempts_total{sink=\"$hook\"}" '$1 == m { print $2 }')
[ "${failed:-0}" -gt 0 ] && ok || bad "the outage's failed attempts are not counted: '$failed'"
stop && ok || bad "SIGTERM: the engine exited $rc: $(cat "$tmp/a/err")"
stop_receiver "$tmp/a/recv.jsonl"
check "$tmp/want.jsonl" outage "$tmp/a/recv.jsonl" "$schedule" 20 >"$tmp/a/check.out"
rc=$?
grep -v '^FAIL' "$tmp/a/check.out" | sed 's/^/a: /'
grep '^FAIL' "$tmp/a/check.out" | while read -r l; do echo "$l"; done
[ $rc = 0 ] && ok || bad "a: the deliveries (above)"
say "a: $failed failed attempts counted by the engine"
# the jsonl sink: replay's alerts, in replay's order
sort "$tmp/want.jsonl" >"$tmp/want.sorted"
sort "$tmp/a/alerts.jsonl" | cmp -s - "$tmp/want.sorted" && ok ||
    bad "the jsonl file differs from replay's alerts: $(sort "$tmp/a/alerts.jsonl" |
        diff "$tmp/want.sorted" - | head -3)"
cmp -s "$tmp/a/alerts.jsonl" "$tmp/want.jsonl" && ok || bad "the jsonl file is not in replay's order"

# --- e. the nng sink ------------------------------------------------------------------
if [ -n "$sub" ]; then
    wait "$spid"
    rc=$?
    spid=""
    [ $rc = 0 ] && ok || bad "the subscriber exited $rc: $(cat "$tmp/a/sub.err")"
    grep '"rule":"many"' "$tmp/want.jsonl" | cmp -s - "$tmp/a/sub.out" && ok ||
        bad "the subscriber to 'many' got $(wc -l <"$tmp/a/sub.out") messages, not replay's" \
            "$nmany 'many' alerts: $(grep '"rule":"many"' "$tmp/want.jsonl" |
                diff - "$tmp/a/sub.out" | head -3)"
    say "e: a subscriber to 'many' got $(wc -l <"$tmp/a/sub.out") alerts (of $nwant in all)"
else
    echo "SKIP: e (no subscriber program given)"
fi

# --- c. tampered deliveries are refused by the independent verifier -------------------
[ "$(wc -l <"$tmp/a/captured.jsonl")" = 5 ] && ok || bad "the receiver captured no 5 deliveries"
verify() { node "$top/tests/webhook/verify.js" "$@"; }
verify "$tmp/a/captured.jsonl" "$tmp/secret" >"$tmp/v.out" 2>&1 && ok ||
    bad "captured deliveries do not verify: $(cat "$tmp/v.out")"
python3 - "$tmp/a/captured.jsonl" "$tmp/a" <<'EOF'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
def write(name, rs):
    with open(f"{sys.argv[2]}/{name}.jsonl", "w", encoding="utf-8") as f:
        for r in rs:
            f.write(json.dumps(r) + "\n")
# a body that says something else: another key, one more space, another score
write("t_body", [dict(r, body=r["body"].replace('"key":"', '"key":"x', 1)) for r in recs[:2]] +
      [dict(r, body=r["body"] + " ") for r in recs[2:3]] +
      [dict(r, body=r["body"].replace('"score":', '"score":1', 1)) for r in recs[3:]])
# a signature moved to another delivery, an id swapped, a timestamp moved by 1 s
write("t_sig", [dict(r, signature=recs[(i + 1) % len(recs)]["signature"]) for i, r in enumerate(recs)])
write("t_id", [dict(r, id=recs[(i + 1) % len(recs)]["id"]) for i, r in enumerate(recs)])
write("t_ts", [dict(r, timestamp=str(int(r["timestamp"]) - 1)) for r in recs])
EOF
for t in body sig id ts; do
    verify --expect-fail "$tmp/a/t_$t.jsonl" "$tmp/secret" >"$tmp/v.out" 2>&1 && ok ||
        bad "standardwebhooks accepts a delivery with a tampered $t: $(cat "$tmp/v.out")"
done

# --- b. kill -9 while deliveries are in progress ----------------------------------------
say "b: crash"
mkdir "$tmp/b"
VG_SINKS_SECRET=$(cat "$tmp/secret")
export VG_SINKS_SECRET
# 503 for 1.5 s from the first delivery, then slow 204s (40 ms each)
receiver "$tmp/b/recv.jsonl" --secret-file "$tmp/secret" --unavailable 1500 --retry-after 1 \
    --delay 40
cat >"$tmp/b/vigil.yaml" <<EOF
state: {path: st}
ingest: ipc://$tmp/b/ingest.ipc
sinks:
  - type: webhook
    url: http://127.0.0.1:$rport/hook
    secret_env: VG_SINKS_SECRET
    allow_private: true
    retry_schedule: [200ms, 400ms, 800ms, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s]
    timeout: 5s
EOF
hook="webhook:http://127.0.0.1:$rport/hook"
# shadow: false (the default): the shadow-mode rules' alerts are not posted
grep -v '"shadow":true' "$tmp/want.jsonl" >"$tmp/b/want.jsonl"
nshadow=$((nwant - $(wc -l <"$tmp/b/want.jsonl")))
[ "$nshadow" -gt 0 ] && ok || bad "replay raised no shadow-mode alert: (b) tests no filter"
start "$tmp/b/vigil.yaml" "$tmp/b/err"
"$vigil" send --to "ipc://$tmp/b/ingest.ipc" --input "$tmp/g.csv" --batch 50 --rate 10000 \
    --timeout 60 2>"$tmp/b/send.err" &
sendpid=$!
# the first kill: in the outage, once deliveries began
i=0
while [ ! -s "$tmp/b/recv.jsonl" ] && [ $i -lt 200 ]; do
    i=$((i + 1))
    sleep 0.05
done
sleep 0.3
d1=$(metric "vigil_outbox_depth{sink=\"$hook\"}")
kill -9 "$pid"
wait "$pid" 2>/dev/null
start "$tmp/b/vigil.yaml" "$tmp/b/err"
# the second: 300 alerts delivered, most still to go
i=0
while [ "$(grep -c '"status":204' "$tmp/b/recv.jsonl")" -lt 300 ] && [ $i -lt 400 ]; do
    i=$((i + 1))
    sleep 0.05
done
d2=$(metric "vigil_outbox_depth{sink=\"$hook\"}")
kill -9 "$pid"
wait "$pid" 2>/dev/null
say "b: killed twice, with $d1 and $d2 alerts pending in the outbox"
[ "${d1:-0}" -gt 0 ] && [ "${d2:-0}" -gt 0 ] && ok ||
    bad "no deliveries were pending at the kills (depths '$d1', '$d2')"
start "$tmp/b/vigil.yaml" "$tmp/b/err"
# the stream has about 3 s to go: 30 s is a send that no longer gets acks;
# then say where the sender and the engine are before stopping the sender
i=0
while kill -0 "$sendpid" 2>/dev/null && [ $i -lt 300 ]; do
    i=$((i + 1))
    sleep 0.1
done
if kill -0 "$sendpid" 2>/dev/null; then
    bad "send across the kills gets no ack 30 s after the last restart: $(cat "$tmp/b/send.err")"
    echo "the engine's stderr:"
    cat "$tmp/b/err"
    echo "its metrics: $(metrics | grep -E '^vigil_(events_total|batches_total|outbox_depth)')"
    if command -v gdb >/dev/null; then
        for p in "$sendpid" "$pid"; do
            echo "threads of $(tr '\0' ' ' <"/proc/$p/cmdline" | cut -c1-60):"
            gdb -batch -p "$p" -ex "thread apply all bt" 2>&1 | grep "^#" | head -60
        done
    fi
    kill -9 "$sendpid"
    wait "$sendpid" 2>/dev/null
else
    wait "$sendpid" && ok || bad "send across the kills: $(cat "$tmp/b/send.err")"
fi
sendpid=""
drained "$hook" && ok || bad "after the kills the outbox did not drain in 45 s: $(metrics |
    grep '^vigil_outbox_depth')"
say "b: drained"
stop && ok || bad "SIGTERM after the kills: exit $rc: $(cat "$tmp/b/err")"
stop_receiver "$tmp/b/recv.jsonl"
check "$tmp/b/want.jsonl" crash "$tmp/b/recv.jsonl" >"$tmp/b/check.out"
rc=$?
grep -v '^FAIL' "$tmp/b/check.out" | sed 's/^/b: /'
grep '^FAIL' "$tmp/b/check.out" | while read -r l; do echo "$l"; done
[ $rc = 0 ] && ok || bad "b: the deliveries across kill -9 (above)"

# --- d. the address guard ---------------------------------------------------------------
say "d: address guard"
mkdir "$tmp/d"
# on :: the receiver takes 127.0.0.1 and ::1 both: were the guard to let a
# delivery through, it would arrive
receiver "$tmp/d/recv.jsonl" --host :: --secret-file "$tmp/secret"
for u in "http://127.0.0.1:$rport/probe" "http://[::1]:$rport/probe"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -d '{}' "$u")
    [ "$code" = 401 ] && ok || bad "the receiver is not reachable at $u (answer '$code')"
done
cat >"$tmp/d/vigil.yaml" <<EOF
state: {path: st}
ingest: ipc://$tmp/d/ingest.ipc
sinks:
  - type: webhook
    url: http://127.0.0.1:$rport/hook
    secrets: [$(cat "$tmp/secret")]
    retry_schedule: [100ms, 100ms, 100ms, 100ms, 100ms, 100ms, 100ms, 100ms, 100ms, 100ms]
    timeout: 2s
  - type: webhook
    url: http://169.254.169.254/latest/meta-data/
    secrets: [$(cat "$tmp/secret")]
    retry_schedule: [100ms, 100ms, 100ms, 100ms, 100ms, 100ms, 100ms, 100ms, 100ms, 100ms]
    timeout: 2s
  - type: webhook
    url: "http://[::1]:$rport/hook"
    secrets: [$(cat "$tmp/secret")]
    retry_schedule: [100ms, 100ms, 100ms, 100ms, 100ms, 100ms, 100ms, 100ms, 100ms, 100ms]
    timeout: 2s
EOF
guarded="webhook:http://127.0.0.1:$rport/hook webhook:http://169.254.169.254/latest/meta-data/
webhook:http://[::1]:$rport/hook"
start "$tmp/d/vigil.yaml" "$tmp/d/err"
head -n 3001 "$tmp/g.csv" >"$tmp/d/first.csv"
{
    head -n 1 "$tmp/g.csv"
    sed -n '3002,6001p' "$tmp/g.csv"
} >"$tmp/d/second.csv"
"$vigil" send --to "ipc://$tmp/d/ingest.ipc" --input "$tmp/d/first.csv" 2>"$tmp/d/send1.err"
grep -q "3000 sent, 3000 acked" "$tmp/d/send1.err" && ok || bad "send: $(cat "$tmp/d/send1.err")"
# wait until each guarded sink has failed a few times
i=0
while [ $i -lt 200 ]; do
    m=$(metrics)
    low=0
    for s in $guarded; do
        f=$(echo "$m" | awk -v m="vigil_sink_failed_attempts_total{sink=\"$s\"}" '$1 == m { print $2 }')
        [ "${f:-0}" -ge 3 ] || low=1
    done
    [ $low = 0 ] && break
    i=$((i + 1))
    sleep 0.1
done
m1=$(metrics)
"$vigil" send --to "ipc://$tmp/d/ingest.ipc" --input "$tmp/d/second.csv" 2>"$tmp/d/send2.err"
grep -q "3000 sent, 3000 acked" "$tmp/d/send2.err" && ok ||
    bad "send while every webhook is refused: $(cat "$tmp/d/send2.err")"
sleep 0.5
m2=$(metrics)
for s in $guarded; do
    f1=$(echo "$m1" | awk -v m="vigil_sink_failed_attempts_total{sink=\"$s\"}" '$1 == m { print $2 }')
    f2=$(echo "$m2" | awk -v m="vigil_sink_failed_attempts_total{sink=\"$s\"}" '$1 == m { print $2 }')
    d=$(echo "$m2" | awk -v m="vigil_sink_alerts_total{sink=\"$s\",outcome=\"delivered\"}" \
        '$1 == m { print $2 }')
    [ "${f1:-0}" -ge 3 ] && [ "${f2:-0}" -gt "${f1:-0}" ] && ok ||
        bad "$s: failed attempts do not grow: '$f1', then '$f2'"
    [ "$d" = 0 ] && ok || bad "$s: '$d' alerts counted delivered"
done
kill -0 "$pid" 2>/dev/null && ok || bad "the engine died of refused webhooks: $(cat "$tmp/d/err")"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$http/healthz")
[ "$code" = 200 ] && ok || bad "/healthz with refused webhooks: $code"
# a clean stop waits (5 s) for what the sinks cannot deliver, then leaves it
# in the outbox and says so
stop && ok || bad "SIGTERM with refused webhooks: exit $rc: $(cat "$tmp/d/err")"
grep -q "some alerts are not delivered yet" "$tmp/d/err" && ok ||
    bad "the stop does not say that alerts stay in the outbox: $(cat "$tmp/d/err")"
stop_receiver "$tmp/d/recv.jsonl"
# the two probes above, and nothing else
[ "$(wc -l <"$tmp/d/recv.jsonl")" = 2 ] && ok ||
    bad "deliveries reached a loopback receiver without allow_private: $(head -4 \
        "$tmp/d/recv.jsonl")"
say "d: failed attempts: $(echo "$m2" | grep '^vigil_sink_failed_attempts_total' | tr '\n' ' ')"

# --- f. a sink taken out of the config and put back ------------------------------
# While it was out, the other sink's cursor let the outbox go; back, it goes
# on from the first alert still there: no re-sends, no outbox that never
# empties, however the config file's path is spelled
mkdir -p "$tmp/f/sub"
head -n 3001 "$tmp/g.csv" >"$tmp/f/p1.csv"
sed -n '1p;3002,9001p' "$tmp/g.csv" >"$tmp/f/p2.csv"
for c in both one; do
    {
        printf 'state: {path: st}\ningest: ipc://%s/f/ingest.ipc\nsinks:\n' "$tmp"
        printf '  - {type: jsonl, path: j.jsonl}\n'
        [ $c = both ] && printf '  - {type: jsonl, path: k.jsonl}\n'
    } >"$tmp/f/$c.yaml"
done
depth() { metric "vigil_outbox_depth{sink=\"jsonl:$tmp/f/$1.jsonl\"}"; }
start "$tmp/f/both.yaml" "$tmp/f/err"
"$vigil" send -q --to "ipc://$tmp/f/ingest.ipc" --input "$tmp/f/p1.csv" && ok || bad "f: send p1"
drained "jsonl:$tmp/f/j.jsonl" "jsonl:$tmp/f/k.jsonl" && ok || bad "f: p1 not drained: $(depth j) $(depth k)"
stop
start "$tmp/f/one.yaml" "$tmp/f/err"
"$vigil" send -q --to "ipc://$tmp/f/ingest.ipc" --input "$tmp/f/p2.csv" && ok || bad "f: send p2"
drained "jsonl:$tmp/f/j.jsonl" && ok || bad "f: p2 not drained: $(depth j)"
stop
k1=$(wc -l <"$tmp/f/k.jsonl")
for cfg in "$tmp/f/both.yaml" "$tmp/f/sub/../both.yaml"; do
    start "$cfg" "$tmp/f/err"
    drained "jsonl:$tmp/f/j.jsonl" "jsonl:$tmp/f/k.jsonl" && ok ||
        bad "f: k put back ($cfg): depth j $(depth j), k $(depth k)"
    stop
done
[ "$(wc -l <"$tmp/f/k.jsonl")" = "$k1" ] && ok ||
    bad "f: k put back was sent $(($(wc -l <"$tmp/f/k.jsonl") - k1)) alerts again"
! grep -q "some alerts are not delivered yet" "$tmp/f/err" && ok ||
    bad "f: a stop waited for alerts it could not deliver: $(cat "$tmp/f/err")"
say "f: a sink put back goes on from the outbox's first alert"

echo "sinks: $((n - fails)) of $n checks passed in $(($(date +%s) - began)) s"
[ $fails -eq 0 ]
