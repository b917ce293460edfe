#!/bin/sh
# End-to-end tests of the live engine: `vigil run` started on an ipc://
# endpoint in a temporary folder, fed by `vigil send`, stopped by its
# process id. Live equals replay; a kill -9 loses no acked event and counts
# none twice.
#
#   sh tests/cli/live.sh path/to/vigil path/to/source-tree
set -u
vigil=$1
top=$(cd "$2" && pwd)
tmp=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
fails=0
n=0
ok() { n=$((n + 1)); }
bad() {
    n=$((n + 1))
    fails=$((fails + 1))
    echo "FAIL: $*"
}
url="ipc://$tmp/ingest.ipc"
# the admin endpoint: a port of its own per run of this script
. "$top/tests/cli/lib.sh"
port=$(free_port)
http="127.0.0.1:$port"
fetch() { python3 -c "
import sys, urllib.request, urllib.error
try:
    r = urllib.request.urlopen('http://$http' + sys.argv[1], timeout=5)
    print(r.status); sys.stdout.write(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code); sys.stdout.write(e.read().decode())
" "$1"; }
rules="$top/rules/examples"

# start STATE OUT ERR: runs the engine in the background, waits until ready
start() {
    touch "$3"
    before=$(grep -c "ready:" "$3")
    "$vigil" run --rules "$rules" --state "$1" --ingest "$url" --http "$http" >>"$2" 2>>"$3" &
    pid=$!
    i=0
    while [ "$(grep -c "ready:" "$3")" = "$before" ]; do
        i=$((i + 1))
        if [ $i -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then
            bad "the engine did not start"
            cat "$3"
            return 1
        fi
        sleep 0.1
    done
}
# stop: SIGTERM, then the exit status
stop() {
    kill -TERM "$pid"
    wait "$pid"
    rc=$?
    pid=""
    return $rc
}

"$vigil" gen --accounts 2000 --events 20000 --seed 5 --out "$tmp/g.csv" 2>/dev/null
"$vigil" replay -q --rules "$rules" --input "$tmp/g.csv" --out "$tmp/want.jsonl"
[ -s "$tmp/want.jsonl" ] && ok || bad "replay raised no alert to compare with"
# the engine's default sink, stdout, does not ask for shadow-mode alerts (SPEC §2)
grep -q '"shadow":true' "$tmp/want.jsonl" && ok || bad "replay raised no shadow-mode alert"
grep -v '"shadow":true' "$tmp/want.jsonl" >"$tmp/want.active" && mv "$tmp/want.active" "$tmp/want.jsonl"

# --- live equals replay --------------------------------------------------------
start "$tmp/s1" "$tmp/got1.jsonl" "$tmp/err1" || exit 1
"$vigil" send --to "$url" --input "$tmp/g.csv" 2>"$tmp/send1" && ok || bad "send exited $?"
grep -q "21470 events read, 21470 sent, 21470 acked, 0 duplicates, 0 rejected" "$tmp/send1" && ok ||
    bad "send's counts: $(cat "$tmp/send1")"
fetch /healthz >"$tmp/h1"
[ "$(head -1 "$tmp/h1")" = 200 ] && ok || bad "/healthz: $(cat "$tmp/h1")"
fetch /readyz >"$tmp/h2"
grep -q "^ready" "$tmp/h2" && ok || bad "/readyz: $(cat "$tmp/h2")"
fetch /metrics >"$tmp/m1"
grep -q '^vigil_events_total{outcome="accepted"} 21470$' "$tmp/m1" && ok || bad "/metrics accepted: $(grep accepted "$tmp/m1")"
grep -q '^vigil_batches_total 84$' "$tmp/m1" && ok || bad "/metrics batches: $(grep batches_total "$tmp/m1")"
grep -q '^vigil_alerts_total{rule="velocity_cnp"} [1-9]' "$tmp/m1" && ok || bad "/metrics alerts by rule"
grep -q '^vigil_commit_seconds_count [1-9]' "$tmp/m1" && ok || bad "/metrics commit latency"
grep -q '^vigil_log_position 21470$' "$tmp/m1" && ok || bad "/metrics log position: $(grep log_position "$tmp/m1")"
stop && ok || bad "SIGTERM: the engine exited $rc, expected 0"
cmp -s "$tmp/got1.jsonl" "$tmp/want.jsonl" && ok || bad "live alerts differ from replay's"
grep -q "stopped: 21470 events, 0 duplicates, 0 rejected" "$tmp/err1" && ok ||
    bad "the engine's last line: $(tail -1 "$tmp/err1")"

# --- several batches in flight: every event taken once --------------------------
start "$tmp/s7" /dev/null "$tmp/err14" || exit 1
"$vigil" send --to "$url" --input "$tmp/g.csv" --batch 100 --inflight 8 2>"$tmp/send14"
grep -q "21470 sent, 21470 acked, 0 duplicates" "$tmp/send14" && ok || bad "--inflight 8: $(cat "$tmp/send14")"
"$vigil" send --to "$url" --input "$tmp/g.csv" --batch 100 --inflight 8 2>"$tmp/send15"
grep -q "0 acked, 21470 duplicates" "$tmp/send15" && ok || bad "--inflight 8, again: $(cat "$tmp/send15")"
stop

# --- events with no time, or stamped far ahead, are rejected one by one ---------
printf 'id,time,account_id,amount,currency\nnt-1,0,acct-t,1,EUR\nfut-1,2099-01-01T00:00:00Z,acct-t,1,EUR\nok-1,2024-05-01T10:00:00Z,acct-t,1,EUR\n' >"$tmp/times.csv"
start "$tmp/s9t" /dev/null "$tmp/err9t" || exit 1
"$vigil" send --to "$url" --input "$tmp/times.csv" 2>"$tmp/send9t"
grep -q "1 acked, 0 duplicates, 2 rejected" "$tmp/send9t" && ok || bad "bad times: $(cat "$tmp/send9t")"
grep -q "times.csv:2: the event has no time" "$tmp/send9t" && ok || bad "time 0: $(cat "$tmp/send9t")"
grep -q "times.csv:3: the event's time is more than a day ahead" "$tmp/send9t" && ok ||
    bad "a time in 2099: $(cat "$tmp/send9t")"
fetch /metrics | grep -q 'vigil_events_total{outcome="rejected",code="bad_time"} 2' && ok ||
    bad "bad_time metric: $(fetch /metrics | grep rejected)"
stop

# --- an oversized request is answered, counted, and not retried -----------------
"$vigil" run --rules "$rules" --state "$tmp/s9o" --ingest "$url" --http "$http" --max-message 65536 \
    >/dev/null 2>"$tmp/err9o" &
pid=$!
i=0
while ! grep -q "ready:" "$tmp/err9o" && [ $i -lt 100 ]; do i=$((i + 1)); sleep 0.1; done
"$vigil" send --to "$url" --input "$tmp/g.csv" --batch 600 --timeout 20 2>"$tmp/send9o"
rc=$?
[ $rc -eq 1 ] && ok || bad "send of too big batches exited $rc"
grep -q "over max_message_bytes (65536): send smaller batches" "$tmp/send9o" && ok ||
    bad "oversized: $(cat "$tmp/send9o")"
fetch /metrics | grep -q "vigil_oversized_messages_total 1" && ok ||
    bad "oversized metric: $(fetch /metrics | grep oversized)"
"$vigil" send --to "$url" --input "$tmp/times.csv" 2>"$tmp/send9o2"
grep -q "1 acked" "$tmp/send9o2" && ok || bad "after an oversized request: $(cat "$tmp/send9o2")"
stop

# --- the PULL endpoint: fire-and-forget producers --------------------------------
"$vigil" run --rules "$rules" --state "$tmp/s9p" --ingest "$url" --stream "ipc://$tmp/stream.ipc" \
    --http "$http" >"$tmp/got9p.jsonl" 2>"$tmp/err9p" &
pid=$!
i=0
while ! grep -q "ready:" "$tmp/err9p" && [ $i -lt 100 ]; do i=$((i + 1)); sleep 0.1; done
grep -q "stream on ipc://$tmp/stream.ipc" "$tmp/err9p" && ok || bad "stream: $(cat "$tmp/err9p")"
"$vigil" send --push --to "ipc://$tmp/stream.ipc" --input "$tmp/g.csv" 2>"$tmp/send9p" && ok ||
    bad "send --push: $(cat "$tmp/send9p")"
i=0
while ! fetch /metrics | grep -q 'vigil_events_total{outcome="accepted"} 21470' && [ $i -lt 100 ]; do
    i=$((i + 1))
    sleep 0.2
done
[ $i -lt 100 ] && ok || bad "PULL: not every event taken: $(fetch /metrics | grep accepted)"
stop && ok || bad "stop after PULL: exit $rc"
sort "$tmp/got9p.jsonl" >"$tmp/got9p.sorted"
sort "$tmp/want.jsonl" >"$tmp/want9p.sorted"
cmp -s "$tmp/got9p.sorted" "$tmp/want9p.sorted" && ok || bad "alerts over PULL differ from replay's"

# --- send waits for an engine that is not up yet ---------------------------------
"$vigil" send --to "ipc://$tmp/late.ipc" --input "$tmp/times.csv" --timeout 20 2>"$tmp/send9l" &
spid=$!
sleep 1
"$vigil" run --rules "$rules" --state "$tmp/s9l" --ingest "ipc://$tmp/late.ipc" --http none \
    >/dev/null 2>"$tmp/err9l" &
pid=$!
wait "$spid"
rc=$?
[ $rc -eq 0 ] && ok || bad "send to a late engine: exit $rc: $(cat "$tmp/send9l")"
grep -q "1 acked" "$tmp/send9l" && ok || bad "send to a late engine: $(cat "$tmp/send9l")"
stop

# --- idle_advance: a trailing `not` deadline fires on a quiet stream -------------
printf 'rule quiet_payee {\n  match p: event where kind == "new_payee"\n     -> not event where kind == "payee_confirmed"\n  within 2s\n}\n' >"$tmp/quiet.vgl"
now=$(date +%s%3N)
printf 'id,time,stream,account_id,kind\nq-1,%s,event,acct-q,new_payee\n' "$now" >"$tmp/quiet.csv"
for mode in off on; do
    flag=""
    [ $mode = on ] && flag="--idle-advance"
    # (the default checkpoint interval: idle_advance does not wait for checkpoints)
    "$vigil" run --rules "$tmp/quiet.vgl" --state "$tmp/s9q$mode" --ingest "$url" --http none \
        $flag >"$tmp/got9q$mode.jsonl" 2>"$tmp/err9q$mode" &
    pid=$!
    i=0
    while ! grep -q "ready:" "$tmp/err9q$mode" && [ $i -lt 100 ]; do i=$((i + 1)); sleep 0.1; done
    "$vigil" send -q --to "$url" --input "$tmp/quiet.csv"
    sleep 4
    if [ $mode = on ]; then
        grep -q '"rule":"quiet_payee"' "$tmp/got9qon.jsonl" && ok ||
            bad "idle_advance: no alert 4 s after a 2 s deadline: $(cat "$tmp/err9qon")"
        # kill -9 and restart: the clock's move is in the log; the alert keeps its id
        kill -9 "$pid"
        wait "$pid" 2>/dev/null
        "$vigil" run --rules "$tmp/quiet.vgl" --state "$tmp/s9q$mode" --ingest "$url" --http none \
            $flag >>"$tmp/got9q$mode.jsonl" 2>>"$tmp/err9q$mode" &
        pid=$!
        i=0
        while [ "$(grep -c "ready:" "$tmp/err9q$mode")" != 2 ] && [ $i -lt 100 ]; do i=$((i + 1)); sleep 0.1; done
        stop
        [ "$(sort -u "$tmp/got9qon.jsonl" | wc -l)" = 1 ] && ok ||
            bad "idle_advance after kill -9: $(cat "$tmp/got9qon.jsonl")"
    else
        [ ! -s "$tmp/got9qoff.jsonl" ] && ok || bad "no idle_advance, yet an alert: $(cat "$tmp/got9qoff.jsonl")"
        stop
    fi
done

# --- restart: the state carries on; a resend is all duplicates ------------------
start "$tmp/s1" "$tmp/got1b.jsonl" "$tmp/err1" || exit 1
"$vigil" send --to "$url" --input "$tmp/g.csv" 2>"$tmp/send1b"
grep -q "0 acked, 21470 duplicates" "$tmp/send1b" && ok || bad "a resend after restart: $(cat "$tmp/send1b")"
stop
[ ! -s "$tmp/got1b.jsonl" ] && ok || bad "duplicates raised alerts"

# --- an event older than the dedupe horizon is refused, not taken again ---------
# (its id may be forgotten: a resend of it could not be told from a new event)
printf 'id,time,stream,account_id,type,amount,currency\n%s\n%s\n' \
    'o-1,2024-05-01T00:00:00Z,txn,a1,PURCHASE,10.00,EUR' \
    'o-2,2024-05-12T00:00:00Z,txn,a1,PURCHASE,10.00,EUR' >"$tmp/old.csv"
start "$tmp/s8" "$tmp/got8o.jsonl" "$tmp/err8o" || exit 1
"$vigil" send --to "$url" --input "$tmp/old.csv" -q && ok || bad "send of 12 days"
"$vigil" send --to "$url" --input "$tmp/old.csv" 2>"$tmp/send8o"
grep -q "0 acked, 1 duplicates, 1 rejected" "$tmp/send8o" && ok ||
    bad "a resend of an event older than the horizon: $(cat "$tmp/send8o")"
grep -q "older than the dedupe horizon" "$tmp/send8o" && ok || bad "too old: no reason: $(cat "$tmp/send8o")"
fetch /metrics | grep -q 'vigil_events_total{outcome="rejected",code="too_old"} 1' && ok ||
    bad "too_old metric: $(fetch /metrics | grep rejected)"
stop
cat "$tmp/old.csv" >"$tmp/old2.csv"
tail -n 2 "$tmp/old.csv" >>"$tmp/old2.csv"
"$vigil" replay --rules "$rules" --input "$tmp/old2.csv" >/dev/null 2>"$tmp/rep8o"
grep -q "older than the dedupe horizon" "$tmp/rep8o" && ok || bad "replay takes a too-old event: $(cat "$tmp/rep8o")"

# --- kill -9: nothing acked is lost, nothing counted twice ----------------------
head -n 10001 "$tmp/g.csv" >"$tmp/half.csv"
start "$tmp/s2" "$tmp/got2.jsonl" "$tmp/err2" || exit 1
"$vigil" send --to "$url" --input "$tmp/half.csv" 2>"$tmp/send2a"
grep -q "10000 acked" "$tmp/send2a" && ok || bad "the first half: $(cat "$tmp/send2a")"
kill -9 "$pid"
wait "$pid" 2>/dev/null
pid=""
start "$tmp/s2" "$tmp/got2.jsonl" "$tmp/err2" || exit 1
grep -q "recovered 10000 events from the event log" "$tmp/err2" && ok ||
    bad "recovery: $(grep recovered "$tmp/err2")"
"$vigil" send --to "$url" --input "$tmp/g.csv" 2>"$tmp/send2b"
grep -q "11470 acked, 10000 duplicates" "$tmp/send2b" && ok || bad "after the crash: $(cat "$tmp/send2b")"
stop && ok || bad "SIGTERM after recovery: exit $rc"
# every alert arrives; those of the recovered events may come twice, same id
sort -u "$tmp/got2.jsonl" >"$tmp/got2u"
sort "$tmp/want.jsonl" >"$tmp/want.sorted"
cmp -s "$tmp/got2u" "$tmp/want.sorted" && ok || bad "alerts after kill -9 differ from replay's"
# the log is trimmed at checkpoints: a third start recovers nothing
start "$tmp/s2" /dev/null "$tmp/err3" || exit 1
stop
grep -q "recovered" "$tmp/err3" && bad "a clean stop left events to recover" || ok

# --- a small cache: keys are written back between groups, never ahead of the
# log; kill -9 and recovery still give replay's alerts
rules_small() {
    "$vigil" run --rules "$rules" --state "$tmp/s3" --ingest "$url" --http none --cache-keys 200 >>"$tmp/got3.jsonl" 2>>"$tmp/err6" &
    pid=$!
    i=0
    while [ "$(grep -c "ready:" "$tmp/err6" 2>/dev/null || true)" != "$1" ] && [ $i -lt 100 ]; do
        i=$((i + 1))
        sleep 0.1
    done
}
: >"$tmp/err6"
rules_small 1
"$vigil" send --to "$url" --input "$tmp/half.csv" -q
kill -9 "$pid"
wait "$pid" 2>/dev/null
rules_small 2
"$vigil" send --to "$url" --input "$tmp/g.csv" 2>"$tmp/send3"
stop
grep -q "11470 acked, 10000 duplicates" "$tmp/send3" && ok || bad "a small cache after the crash: $(cat "$tmp/send3")"
sort -u "$tmp/got3.jsonl" >"$tmp/got3u"
cmp -s "$tmp/got3u" "$tmp/want.sorted" && ok || bad "a small cache: alerts differ from replay's"

# --- decisions: vigil score --------------------------------------------------------
ev='{"id":"s1","time":"2024-05-01T10:00:00Z","account_id":"a","type":"PURCHASE","amount":"300.00","currency":"EUR","merchant_name":"Lucky Casino","channel":"ECOMMERCE"}'
want_dec='{"event_id":"s1","action":"review","score":35,"rules":[{"rule":"gambling_merchant","score":35,"action":"review","message":"300.00 EUR at Lucky Casino","shadow":false}]}'
start "$tmp/s5" /dev/null "$tmp/err9" || exit 1
echo "$ev" | "$vigil" score --to "$url" >"$tmp/dec1"
[ "$(cat "$tmp/dec1")" = "$want_dec" ] && ok || bad "score: $(cat "$tmp/dec1")"
echo "$ev" >"$tmp/one.jsonl"
"$vigil" replay -q --decisions --rules "$rules" --input "$tmp/one.jsonl" >"$tmp/dec0"
cmp -s "$tmp/dec0" "$tmp/dec1" && ok || bad "score and replay --decisions differ: $(cat "$tmp/dec0")"
# a resent id gets its recorded decision back, rules included, marked
# duplicate: from memory, and after a restart from the state (SPEC §5)
want_dup="${want_dec%\}},\"duplicate\":true}"
echo "$ev" | "$vigil" score --to "$url" >"$tmp/dec2"
[ "$(cat "$tmp/dec2")" = "$want_dup" ] && ok || bad "a resent id gets its recorded decision: $(cat "$tmp/dec2")"
stop
start "$tmp/s5" /dev/null "$tmp/err9" || exit 1
echo "$ev" | "$vigil" score --to "$url" >"$tmp/dec2"
[ "$(cat "$tmp/dec2")" = "$want_dup" ] && ok ||
    bad "a resent id after a restart gets its recorded decision: $(cat "$tmp/dec2")"
echo '{"time":"2024-05-01T10:00:00Z"}' | "$vigil" score --to "$url" 2>"$tmp/err10"
rc=$?
[ $rc -eq 65 ] && ok || bad "score of an event without id: exit $rc, expected 65"
grep -q "the event has no id" "$tmp/err10" && ok || bad "score says why: $(cat "$tmp/err10")"
printf '%s\n%s\n' "$ev" "$ev" | "$vigil" score --to "$url" 2>"$tmp/err10"
rc=$?
[ $rc -eq 65 ] && ok || bad "score of two events: exit $rc, expected 65"
grep -q "more than one event" "$tmp/err10" && ok || bad "score of two events says why: $(cat "$tmp/err10")"
stop

# --- hot reload (SIGHUP) -------------------------------------------------------
mkdir "$tmp/hr"
cat >"$tmp/hr/r.vgl" <<'EOR'
rule third { when count() over history == 2 message "v1 {count() over history}" }
rule fresh { where amount > 0 when count() over history == 2 message "fresh" }
rule early { when amount > 0 message "e" }
EOR
for i in 1 2; do echo "{\"id\":\"h$i\",\"time\":$((1000 * i)),\"account_id\":\"a\",\"amount\":1,\"currency\":\"EUR\"}"; done >"$tmp/h12.jsonl"
for i in 3 4; do echo "{\"id\":\"h$i\",\"time\":$((1000 * i)),\"account_id\":\"a\",\"amount\":1,\"currency\":\"EUR\"}"; done >"$tmp/h34.jsonl"
"$vigil" run --rules "$tmp/hr/r.vgl" --state "$tmp/s6" --ingest "$url" --http "$http" >"$tmp/got6" 2>"$tmp/err11" &
pid=$!
i=0
while ! grep -q "ready:" "$tmp/err11" && [ $i -lt 100 ]; do i=$((i + 1)); sleep 0.1; done
"$vigil" send --to "$url" --input "$tmp/h12.jsonl" -q
# a broken edit is refused; the old rules keep running
printf 'rule third { when count() over histroy == 2 }\n' >"$tmp/hr/r.vgl"
kill -HUP "$pid"
i=0
while ! grep -q "the old ones keep running" "$tmp/err11" && [ $i -lt 50 ]; do i=$((i + 1)); sleep 0.1; done
grep -q "the old ones keep running" "$tmp/err11" && ok || bad "a broken reload is refused: $(cat "$tmp/err11")"
fetch /metrics | grep -q '^vigil_reload_failures_total 1$' && ok || bad "the failed reload is counted"
# a message changes (the rule keeps its state: its third event alerts),
# a where changes (that rule starts afresh: no alert on the third event)
cat >"$tmp/hr/r.vgl" <<'EOR'
rule third { when count() over history == 2 message "v2 {count() over history}" }
rule fresh { where amount > 0.5 when count() over history == 2 message "fresh" }
rule early { when amount > 0 message "e" }
EOR
kill -HUP "$pid"
i=0
while ! grep -q "reloaded: 3 rules" "$tmp/err11" && [ $i -lt 50 ]; do i=$((i + 1)); sleep 0.1; done
grep -q "reloaded: 3 rules" "$tmp/err11" && ok || bad "a good reload: $(cat "$tmp/err11")"
"$vigil" send --to "$url" --input "$tmp/h34.jsonl" -q
# a counter never goes back: a rule's alerts before the reload still count
i=0
while ! fetch /metrics | grep -q '^vigil_alerts_total{rule="early"} 4$' && [ $i -lt 30 ]; do i=$((i + 1)); sleep 0.1; done
fetch /metrics | grep -q '^vigil_alerts_total{rule="early"} 4$' && ok ||
    bad "alerts_total after a reload: $(fetch /metrics | grep 'alerts_total{rule="early"}')"
stop && ok || bad "SIGTERM after reloads: exit $rc"
grep -q '"rule":"third".*"event_id":"h3".*"message":"v2 2"' "$tmp/got6" && ok || bad "a rule with a new message keeps its state: $(cat "$tmp/got6")"
# with its state kept, fresh would alert on h3 (two earlier events) like third
grep -q '"rule":"fresh"' "$tmp/got6" && bad "a rule with a new where kept its state: $(cat "$tmp/got6")" || ok

# --- a full state: at max_size the engine stops acking, /readyz fails ---------------
mkdir "$tmp/mf"
printf 'rules: %s\nstate: {path: st, max_size: 1MiB}\ningest: %s\nhttp: "%s"\n' "$rules" "$url" "$http" >"$tmp/mf/vigil.yaml"
"$vigil" run --config "$tmp/mf/vigil.yaml" --checkpoint 0.2 >/dev/null 2>"$tmp/err12" &
pid=$!
i=0
while ! grep -q "ready:" "$tmp/err12" && [ $i -lt 100 ]; do i=$((i + 1)); sleep 0.1; done
"$vigil" send --to "$url" --input "$tmp/g.csv" --timeout 3 2>"$tmp/send12"
rc=$?
[ $rc -eq 69 ] && ok || bad "send into a full state: exit $rc, expected 69: $(tail -2 "$tmp/send12")"
grep -q "state is full" "$tmp/send12" && ok || bad "the producer is told the state is full: $(head -3 "$tmp/send12")"
grep -q "the state is full (state.max_size reached)" "$tmp/err12" && ok || bad "the engine says it is full: $(cat "$tmp/err12")"
fetch /readyz >"$tmp/r12"
head -1 "$tmp/r12" | grep -q 503 && ok || bad "/readyz while full: $(cat "$tmp/r12")"
kill -0 "$pid" 2>/dev/null && ok || bad "the engine died when full"
[ "$(grep -c "did not take a batch" "$tmp/send12")" -le 2 ] && ok ||
    bad "send repeats the engine's refusal: $(grep -c "did not take a batch" "$tmp/send12") times in 3 s"
kill -TERM "$pid"
wait "$pid"
rc=$?
pid=""
[ $rc -eq 0 ] && ok || bad "SIGTERM while full: exit $rc, expected 0: $(tail -2 "$tmp/err12")"
# a restart with room recovers every acked event from the log
acked=$(grep -o 'sent, [0-9]* acked' "$tmp/send12" | grep -o '[0-9][0-9]*')
printf 'rules: %s\nstate: {path: st, max_size: 1GiB}\ningest: %s\nhttp: ""\n' "$rules" "$url" >"$tmp/mf/vigil.yaml"
"$vigil" run --config "$tmp/mf/vigil.yaml" >/dev/null 2>"$tmp/err13" &
pid=$!
i=0
while ! grep -q "ready:" "$tmp/err13" && [ $i -lt 100 ]; do i=$((i + 1)); sleep 0.1; done
"$vigil" send --to "$url" --input "$tmp/g.csv" 2>"$tmp/send13"
grep -q "$((21470 - acked)) acked, $acked duplicates" "$tmp/send13" && ok ||
    bad "after the full state, with room: $(cat "$tmp/send13") (acked before: $acked)"
stop

# --- errors ------------------------------------------------------------------
# the admin address taken: a clear error and exit 1, not a hang
python3 -m http.server "$port" --bind 127.0.0.1 >/dev/null 2>&1 &
hpid=$!
sleep 0.5
timeout 20 "$vigil" run --rules "$rules" --state "$tmp/s8" --ingest "$url" --http "$http" 2>"$tmp/err15"
rc=$?
kill "$hpid" 2>/dev/null
[ $rc -eq 1 ] && ok || bad "run with its http address taken: exit $rc, expected 1"
grep -q "can't serve /metrics on $http" "$tmp/err15" && ok || bad "the taken address is named: $(cat "$tmp/err15")"
# the engine killed under a sender: send gives up within --timeout, exit 69
"$vigil" run --rules "$rules" --state "$tmp/s9" --ingest "$url" --http none >/dev/null 2>"$tmp/err16" &
pid=$!
i=0
while ! grep -q "ready:" "$tmp/err16" && [ $i -lt 100 ]; do i=$((i + 1)); sleep 0.1; done
timeout 40 "$vigil" send --to "$url" --input "$tmp/g.csv" --rate 3000 --timeout 3 2>"$tmp/send16" &
sendpid=$!
sleep 1
kill -9 "$pid"
wait "$pid" 2>/dev/null
pid=""
wait "$sendpid"
rc=$?
[ $rc -eq 69 ] && ok || bad "send to a killed engine: exit $rc, expected 69: $(tail -1 "$tmp/send16")"
# one engine per state folder: a second run, or a replay into it, is refused
# (a log file of its own: the killed engine's says "ready:" already)
"$vigil" run --rules "$rules" --state "$tmp/s9" --ingest "$url" --http none >/dev/null 2>"$tmp/err16b" &
pid=$!
i=0
while ! grep -q "ready:" "$tmp/err16b" 2>/dev/null && [ $i -lt 100 ]; do i=$((i + 1)); sleep 0.1; done
timeout 20 "$vigil" run --rules "$rules" --state "$tmp/s9" --ingest "ipc://$tmp/other.ipc" --http none \
    2>"$tmp/err17"
rc=$?
[ $rc -eq 1 ] && ok || bad "a second engine on the same state: exit $rc, expected 1"
grep -q "state folder '$tmp/s9' is in use by another vigil (pid $pid)" "$tmp/err17" && ok ||
    bad "a second engine on the same state: $(cat "$tmp/err17")"
timeout 20 "$vigil" replay -q --rules "$rules" --state "$tmp/s9" --input "$tmp/half.csv" \
    >/dev/null 2>"$tmp/err17"
grep -q "is in use by another vigil" "$tmp/err17" && ok || bad "a replay into a running engine's state: $(cat "$tmp/err17")"
stop && ok || bad "the first engine, after the second was refused: exit $rc"
"$vigil" send --to "ipc://$tmp/nobody.ipc" --input "$tmp/half.csv" --timeout 2 2>"$tmp/err4"
rc=$?
[ $rc -eq 69 ] && ok || bad "send to no engine: exit $rc, expected 69"
grep -q "is vigil run up" "$tmp/err4" && ok || bad "send to no engine says what to check"
"$vigil" run --rules "$tmp/no-such-rules" --state "$tmp/s10" --ingest "$url" --http none 2>/dev/null
rc=$?
[ $rc -eq 66 ] && ok || bad "run with a missing rules folder: exit $rc, expected 66"
printf 'rule r { where amout > 1 }\n' >"$tmp/bad.vgl"
"$vigil" run --rules "$tmp/bad.vgl" --state "$tmp/s4" --ingest "$url" 2>"$tmp/err5"
rc=$?
[ $rc -eq 1 ] && ok || bad "run with broken rules: exit $rc, expected 1"
grep -q "did you mean 'amount'" "$tmp/err5" && ok || bad "run shows the rule errors"
# --check-config checks the addresses and the TLS files as run would use them
for bad in "--ingest tcp://127.0.0.1" "--ingest foo://x:1" "--stream ipc://" "--http localhost" \
    "--ingest tls+tcp://127.0.0.1:7999" "--ingest tcp://127.0.0.1:99999" \
    "--ingest ipc:///nonexistent/dir/x.ipc" "--ingest $url --stream $url" \
    "--ingest tcp://127.0.0.1:7999 --http 127.0.0.1:7999" \
    "--ingest tcp://localhost:7998 --stream tcp://127.0.0.1:7998"; do
    # shellcheck disable=SC2086 # the option and its value
    "$vigil" run --rules "$rules" --state "$tmp/s11" $bad --check-config 2>"$tmp/err11"
    rc=$?
    [ $rc -eq 78 ] && ok || bad "--check-config $bad: exit $rc, expected 78"
    grep -q "error: " "$tmp/err11" && ok || bad "--check-config $bad says nothing: $(cat "$tmp/err11")"
done
printf 'tls: {cert: nope.pem, key: nope.key}\ningest: tls+tcp://127.0.0.1:7999\n' >"$tmp/tlsbad.yaml"
"$vigil" run --rules "$rules" --config "$tmp/tlsbad.yaml" --check-config 2>"$tmp/err11"
rc=$?
[ $rc -eq 78 ] && ok || bad "--check-config with missing TLS files: exit $rc, expected 78"
grep -q "can't read the TLS certificate '$tmp/nope.pem'" "$tmp/err11" && ok ||
    bad "missing TLS files: $(cat "$tmp/err11")"
printf 'tls: {cert: nope.pem, key: nope.key}\n' >"$tmp/tlsunused.yaml"
"$vigil" run --rules "$rules" --config "$tmp/tlsunused.yaml" --state "$tmp/s11" --check-config \
    >/dev/null 2>"$tmp/err11" && ok || bad "tls set but unused is not an error"
grep -q "warning: tls is set but neither ingest nor stream" "$tmp/err11" && ok ||
    bad "tls set but unused: no warning: $(cat "$tmp/err11")"
# a sink setting the sink does not use is an error, not ignored
printf 'sinks:\n  - {type: jsonl, path: a.jsonl, secrets: [whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw]}\n' \
    >"$tmp/unused.yaml"
"$vigil" run --rules "$rules" --config "$tmp/unused.yaml" --state "$tmp/s11" --check-config 2>"$tmp/err11"
rc=$?
[ $rc -eq 78 ] && ok || bad "secrets on a jsonl sink: exit $rc, expected 78"
grep -q "sinks\[0\] (jsonl): secrets is not a setting of a jsonl sink" "$tmp/err11" && ok ||
    bad "secrets on a jsonl sink: $(cat "$tmp/err11")"
# --- the run config ---------------------------------------------------------------
mkdir "$tmp/cfg"
cat >"$tmp/cfg/vigil.yaml" <<EOC
rules: $rules
state: {path: st, max_size: 1GiB}
ingest: $url
decisions: {review_at: 40, block_at: 90}
sinks:
  - {type: stdout}
EOC
"$vigil" run --config "$tmp/cfg/vigil.yaml" --check-config >"$tmp/out7" 2>&1
rc=$?
[ $rc -eq 0 ] && ok || bad "a good config: exit $rc: $(cat "$tmp/out7")"
grep -q "state in $tmp/cfg/st;" "$tmp/out7" && ok || bad "relative paths are the config's folder's: $(cat "$tmp/out7")"
printf 'rules: x\nstate: {path: st, max_sise: 1}\n' >"$tmp/cfg/bad.yaml"
"$vigil" run --config "$tmp/cfg/bad.yaml" --check-config 2>"$tmp/err7"
rc=$?
[ $rc -eq 78 ] && ok || bad "an unknown key: exit $rc, expected 78"
grep -q "bad.yaml:2:19: error: unknown key 'max_sise'" "$tmp/err7" && ok || bad "an unknown key's line: $(cat "$tmp/err7")"
printf 'idle_advance: maybe\n' >"$tmp/cfg/bad2.yaml"
"$vigil" run --config "$tmp/cfg/bad2.yaml" --check-config 2>"$tmp/err7"
rc=$?
[ $rc -eq 78 ] && ok || bad "a wrong type: exit $rc, expected 78"
grep -q "bad2.yaml:1:15: error: 'maybe' is not true or false" "$tmp/err7" && ok || bad "a wrong type's line: $(cat "$tmp/err7")"
printf 'sinks:\n  - {type: webhook, url: "https://x"}\n' >"$tmp/cfg/bad3.yaml"
"$vigil" run --config "$tmp/cfg/bad3.yaml" --rules "$rules" --check-config 2>"$tmp/err7"
rc=$?
[ $rc -eq 78 ] && ok || bad "a webhook without a secret: exit $rc, expected 78"
grep -q "a webhook sink needs a signing secret" "$tmp/err7" && ok || bad "no secret: $(cat "$tmp/err7")"
"$vigil" run --config "$tmp/cfg/none.yaml" 2>/dev/null
rc=$?
[ $rc -eq 66 ] && ok || bad "a missing config: exit $rc, expected 66"
# the config's engine runs: state where it says
start_cfg() {
    "$vigil" run --config "$tmp/cfg/vigil.yaml" --http none >"$tmp/got8.jsonl" 2>"$tmp/err8" &
    pid=$!
    i=0
    while ! grep -q "ready:" "$tmp/err8" && [ $i -lt 100 ]; do
        i=$((i + 1))
        sleep 0.1
    done
}
start_cfg
"$vigil" send --to "$url" --input "$tmp/half.csv" -q && ok || bad "send to the config's engine"
stop && ok || bad "the config's engine: exit $rc"
[ -f "$tmp/cfg/st/data.mdb" ] && ok || bad "the state is not in the config's state.path"

# --- standard output closed: the engine goes on; the alerts wait in the outbox --
"$vigil" run --rules "$rules" --state "$tmp/s13" --ingest "$url" --http "$http" 2>"$tmp/errpipe" |
    head -c 10 >/dev/null &
i=0
while ! grep -q "ready:" "$tmp/errpipe" 2>/dev/null && [ $i -lt 100 ]; do
    i=$((i + 1))
    sleep 0.1
done
pid=$(pgrep -f -- "--state $tmp/s13 ")
"$vigil" send --to "$url" --input "$tmp/half.csv" -q && ok || bad "send to an engine whose stdout is closed"
sleep 0.5
kill -0 "$pid" 2>/dev/null && ok || bad "a closed stdout stopped the engine"
grep -q "sink stdout: failing from alert .*Broken pipe" "$tmp/errpipe" && ok ||
    bad "a closed stdout is not in the log: $(cat "$tmp/errpipe")"
[ "$(grep -c "sink stdout: failing" "$tmp/errpipe")" = 1 ] && ok || bad "the failing stdout is logged more than once"
fetch /metrics >"$tmp/mpipe"
grep -q '^vigil_outbox_depth{sink="stdout"} [1-9]' "$tmp/mpipe" && ok ||
    bad "the alerts are not kept in the outbox: $(grep outbox_depth "$tmp/mpipe")"
kill -TERM "$pid" # not this shell's child (a pipeline's): wait until it is gone
i=0
while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
    i=$((i + 1))
    sleep 0.1
done
kill -0 "$pid" 2>/dev/null && bad "the engine with a closed stdout did not stop" || ok
pid=""
wait

# --- a slow reader of standard output does not hold up ingest ---------------------
# stdout is a pipe nobody reads for 5 s: every batch is acked meanwhile, the
# alerts wait in the outbox, then reach the reader whole and once each
"$vigil" run --rules "$rules" --state "$tmp/s12" --ingest "$url" --http "$http" 2>"$tmp/errslow" |
    (sleep 5; cat >"$tmp/got12.jsonl") &
i=0
while ! grep -q "ready:" "$tmp/errslow" 2>/dev/null && [ $i -lt 100 ]; do i=$((i + 1)); sleep 0.1; done
pid=$(pgrep -f -- "--state $tmp/s12 ")
t0=$(date +%s)
timeout 30 "$vigil" send --to "$url" --input "$tmp/g.csv" -q && ok || bad "send while stdout is not read"
[ $(($(date +%s) - t0)) -lt 4 ] && ok || bad "ingest waited for the slow reader ($(($(date +%s) - t0)) s)"
i=0
while [ "$(wc -l <"$tmp/got12.jsonl" 2>/dev/null || echo 0)" -lt "$(wc -l <"$tmp/want.jsonl")" ] &&
    [ $i -lt 150 ]; do
    i=$((i + 1))
    sleep 0.1
done
kill -TERM "$pid"
i=0
while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do i=$((i + 1)); sleep 0.1; done
pid=""
wait
sort "$tmp/got12.jsonl" >"$tmp/got12.sorted"
sort "$tmp/want.jsonl" >"$tmp/want12.sorted"
cmp -s "$tmp/got12.sorted" "$tmp/want12.sorted" && ok ||
    bad "a slow reader's alerts differ from replay's: $(wc -l <"$tmp/got12.jsonl") lines"

echo "live: $n checks, $fails failed"
[ $fails -eq 0 ]
