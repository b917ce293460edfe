#!/bin/sh
# `vigil dlq list|resend` end to end (SPEC section 6): real dead letters made
# by the real engine, then re-sent through the same config.
#
#   a. `vigil run` with a webhook sink to a loopback port where nothing
#      listens (retry_schedule [100ms, 100ms]) is fed by `vigil send`; every
#      alert fails three times and is dead-lettered at a checkpoint; `dlq
#      list` (and --json, and --sink) shows exactly replay's alerts
#   b. `dlq resend` while nothing listens: exit 1, every letter stays
#   c. `vigil webhook-listen` on that port: `dlq resend` exits 0, the
#      listener printed every alert once, verified, and the list is empty
#   d. usage, config and state errors, and a letter whose sink the config
#      no longer has
#   e. an endpoint that answers 410 Gone: the sink is disabled, the log says
#      so once, vigil_sink_disabled is 1, its alerts are dead letters
#
#   sh tests/cli/dlq.sh path/to/vigil path/to/source-tree
#
# Background processes are stopped by their ids.
set -u
vigil=$1
top=$(cd "$2" && pwd)
tmp=$(mktemp -d)
pid=""  # the engine
lpid="" # the listener
cleanup() {
    for p in $pid $lpid; do
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
# expect CODE WHAT -- CMD...: runs CMD (stdout to $tmp/out, stderr to
# $tmp/err) and checks its exit status
expect() {
    code=$1
    what=$2
    shift 3
    "$@" >"$tmp/out" 2>"$tmp/err"
    got=$?
    if [ "$got" = "$code" ]; then
        ok
    else
        bad "$what: exit $got, expected $code; stderr: $(head -5 "$tmp/err")"
    fi
}
# grep_in FILE PATTERN WHAT
grep_in() {
    if grep -q -- "$2" "$1"; then ok; else bad "$3: no '$2' in: $(head -5 "$1")"; fi
}
# count: the number `dlq list --config` reports on stderr (empty on failure)
count() {
    "$vigil" dlq list --config "$tmp/vigil.yaml" "$@" 2>&1 >/dev/null |
        sed -n 's/^dlq: \([0-9]*\) dead letters*.*/\1/p'
}

# a port nothing listens on: webhook-listen takes it in (c); a port another
# process took meanwhile makes (a) or (c) fail loudly, not pass
. "$top/tests/cli/lib.sh"
port=$(free_port)
gport=$(free_port) # (e) a receiver that answers 410
hport=$(free_port) # (e) the engine's admin
url="http://127.0.0.1:$port/hook"
sink="webhook:$url"
echo "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" >"$tmp/hook.secret"
cat >"$tmp/vigil.yaml" <<EOF
state: {path: state}
sinks:
  - type: webhook
    url: $url
    secret_files: [hook.secret]
    allow_private: true
    retry_schedule: [100ms, 100ms]
    timeout: 2s
EOF

# --- a. dead letters from the real engine -------------------------------------------
"$vigil" gen --accounts 500 --events 5000 --seed 2 --out "$tmp/g.csv" 2>"$tmp/gen.err" ||
    fail "vigil gen: $(cat "$tmp/gen.err")"
"$vigil" replay -q --rules "$top/rules/examples" --input "$tmp/g.csv" >"$tmp/replay.jsonl" ||
    fail "vigil replay failed"
# webhooks leave shadow-mode alerts out (shadow: false)
grep '"shadow":false' "$tmp/replay.jsonl" | sed 's/^{"id":"\([0-9a-f]*\)".*/\1/' |
    sort >"$tmp/replay.ids"
want=$(wc -l <"$tmp/replay.ids" | tr -d ' ')
[ "$want" -gt 0 ] || fail "replay made no alerts to dead-letter"

"$vigil" run --config "$tmp/vigil.yaml" --rules "$top/rules/examples" \
    --ingest "ipc://$tmp/i.ipc" --http none --checkpoint 0.3 >"$tmp/run.out" 2>"$tmp/run.err" &
pid=$!
i=0
while ! grep -q "ready:" "$tmp/run.err"; do
    i=$((i + 1))
    if [ $i -gt 200 ] || ! kill -0 "$pid" 2>/dev/null; then
        fail "the engine did not start: $(cat "$tmp/run.err")"
    fi
    sleep 0.05
done
"$vigil" send -q --to "ipc://$tmp/i.ipc" --input "$tmp/g.csv" 2>"$tmp/send.err" ||
    fail "vigil send: $(cat "$tmp/send.err")"
# each alert fails fast (connection refused) three times, ~0.2 s in all
i=0
while [ "$(count)" != "$want" ]; do
    i=$((i + 1))
    [ $i -gt 150 ] && fail "after 15 s, $(count) of $want alerts dead-lettered"
    sleep 0.1
done
ok

# list: one line per letter, fields by tabs, the ids replay's
expect 0 "dlq list" -- "$vigil" dlq list --config "$tmp/vigil.yaml"
grep_in "$tmp/err" "^dlq: $want dead letters$" "dlq list counts on stderr"
cut -f3 "$tmp/out" | sort >"$tmp/list.ids"
cmp -s "$tmp/list.ids" "$tmp/replay.ids" && ok ||
    bad "dlq list ids differ from replay's: $(diff "$tmp/replay.ids" "$tmp/list.ids" | head -5)"
awk -F '\t' -v s="$sink" 'NF != 6 || $1 != s || $2 !~ /^[0-9]+$/ ||
    $6 !~ /^20[0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-9:.]*Z$/ { print; exit 1 }' "$tmp/out" && ok ||
    bad "dlq list lines are not sink, number, id, rule, key, time: $(head -2 "$tmp/out")"
# rule and key as the alert says (the first line against replay's alert)
first=$(head -1 "$tmp/out")
fid=$(printf '%s\n' "$first" | cut -f3)
frule=$(printf '%s\n' "$first" | cut -f4)
fkey=$(printf '%s\n' "$first" | cut -f5)
grep -q "^{\"id\":\"$fid\",\"type\":\"alert.created\",\"rule\":\"$frule\",[^}]*\"key\":\"$fkey\"" \
    "$tmp/replay.jsonl" && ok || bad "dlq list's rule and key are not the alert's: $first"
# the outbox numbers are distinct
[ "$(cut -f2 "$tmp/out" | sort -u | wc -l | tr -d ' ')" = "$want" ] && ok ||
    bad "dlq list numbers are not distinct"
# --json: the alert JSON lines themselves, as replay wrote them
expect 0 "dlq list --json" -- "$vigil" dlq list --config "$tmp/vigil.yaml" --json
sort "$tmp/out" >"$tmp/list.json"
grep '"shadow":false' "$tmp/replay.jsonl" | sort >"$tmp/replay.sorted"
cmp -s "$tmp/list.json" "$tmp/replay.sorted" && ok ||
    bad "dlq list --json differs from replay's alerts: $(diff "$tmp/replay.sorted" \
        "$tmp/list.json" | head -4)"
# --state names the same folder; --sink filters
expect 0 "dlq list --state" -- "$vigil" dlq list --state "$tmp/state"
[ "$(wc -l <"$tmp/out" | tr -d ' ')" = "$want" ] && ok || bad "dlq list --state: $(cat "$tmp/err")"
[ "$(count --sink "$sink")" = "$want" ] && ok || bad "dlq list --sink with the webhook's name"
[ "$(count --sink stdout)" = 0 ] && ok || bad "dlq list --sink stdout is not empty"

# --- b. resend while nothing listens: every letter stays -----------------------------
expect 1 "resend with nothing listening" -- "$vigil" dlq resend --config "$tmp/vigil.yaml" \
    --timeout 10
grep_in "$tmp/err" "^dlq: resent 0, still dead $want$" "resend counts what stays"
grep_in "$tmp/err" "given up on again" "resend says the sink gave up again"
[ "$(count)" = "$want" ] && ok || bad "after a failed resend, $(count) of $want letters left"

# --- d. errors -------------------------------------------------------------------------
expect 64 "dlq without a command" -- "$vigil" dlq
grep_in "$tmp/err" "give a command: list or resend" "dlq without a command says what to give"
expect 64 "dlq with a misspelt command" -- "$vigil" dlq resnd
grep_in "$tmp/err" "did you mean 'resend'" "dlq command suggestion"
expect 64 "dlq list with a bad option" -- "$vigil" dlq list --frob
expect 64 "dlq list with an argument" -- "$vigil" dlq list extra
expect 64 "resend without --config" -- "$vigil" dlq resend
expect 64 "resend with a bad --timeout" -- "$vigil" dlq resend --config "$tmp/vigil.yaml" \
    --timeout soon
expect 64 "resend to a sink the config lacks" -- "$vigil" dlq resend \
    --config "$tmp/vigil.yaml" --sink jsonl:/nowhere
grep_in "$tmp/err" "has no sink 'jsonl:/nowhere'; its sinks: $sink" "unknown --sink message"
expect 66 "dlq list of a missing state" -- "$vigil" dlq list --state "$tmp/nope"
grep_in "$tmp/err" "no state folder '$tmp/nope'" "missing state message"
mkdir "$tmp/empty"
expect 66 "dlq list of a folder without state" -- "$vigil" dlq list --state "$tmp/empty"
[ -e "$tmp/empty/data.mdb" ] && bad "dlq list made a state in an empty folder" || ok
expect 66 "dlq resend with a missing state" -- "$vigil" dlq resend \
    --config "$tmp/vigil.yaml" --state "$tmp/nope"
expect 66 "dlq list with a missing config" -- "$vigil" dlq list --config "$tmp/nope.yaml"
printf 'sinks:\n  - {type: webhook, urll: x}\n' >"$tmp/bad.yaml"
expect 78 "dlq list with a bad config" -- "$vigil" dlq list --config "$tmp/bad.yaml"
printf 'state: {path: state}\nsinks:\n  - {type: webhook, url: %s, secret_files: [gone]}\n' \
    "$url" >"$tmp/nosecret.yaml"
expect 78 "resend with an unreadable secret file" -- "$vigil" dlq resend \
    --config "$tmp/nosecret.yaml"
# a config without that sink: its letters are reported and left alone
printf 'state: {path: state}\nsinks:\n  - {type: jsonl, path: other.jsonl}\n' >"$tmp/other.yaml"
expect 1 "resend with the sink gone from the config" -- "$vigil" dlq resend \
    --config "$tmp/other.yaml"
grep_in "$tmp/err" "$want dead letters of sink $sink: the config has no such sink; left alone" \
    "a letter of an unknown sink is reported"
[ -e "$tmp/other.jsonl" ] && [ -s "$tmp/other.jsonl" ] && bad "letters went to another sink" || ok
[ "$(count)" = "$want" ] && ok || bad "letters of an unknown sink were not left alone"
# help
for sub in list resend; do
    expect 0 "dlq $sub --help" -- "$vigil" dlq "$sub" --help
    grep_in "$tmp/out" "usage: vigil dlq $sub" "dlq $sub --help"
    grep_in "$tmp/out" "Exit status" "dlq $sub --help documents exit codes"
done
expect 0 "vigil help dlq" -- "$vigil" help dlq
grep_in "$tmp/out" "usage: vigil dlq list" "help dlq shows list"
grep_in "$tmp/out" "vigil dlq resend" "help dlq shows resend"

# --- c. resend to a listener: delivered once each, the list empty ---------------------
"$vigil" webhook-listen --listen "127.0.0.1:$port" --secret-file "$tmp/hook.secret" \
    >"$tmp/listen.out" 2>"$tmp/listen.err" &
lpid=$!
i=0
while ! grep -q "listening on" "$tmp/listen.err"; do
    i=$((i + 1))
    if [ $i -gt 200 ] || ! kill -0 "$lpid" 2>/dev/null; then
        fail "webhook-listen did not start: $(cat "$tmp/listen.err")"
    fi
    sleep 0.05
done
expect 0 "resend to a listener" -- "$vigil" dlq resend --config "$tmp/vigil.yaml" --timeout 10
grep_in "$tmp/err" "^dlq: resent $want, still dead 0$" "resend counts what arrived"
sed 's/^{"id":"\([0-9a-f]*\)".*/\1/' "$tmp/listen.out" | sort >"$tmp/got.ids"
cmp -s "$tmp/got.ids" "$tmp/replay.ids" && ok ||
    bad "the listener got other alerts than replay's (each once): $(diff "$tmp/replay.ids" \
        "$tmp/got.ids" | head -5)"
[ "$(count)" = 0 ] && ok || bad "after the resend, $(count) letters left"
# nothing more to do: exit 0, nothing sent
expect 0 "resend of an empty list" -- "$vigil" dlq resend --config "$tmp/vigil.yaml"
grep_in "$tmp/err" "^dlq: resent 0, still dead 0$" "an empty resend"
[ "$(wc -l <"$tmp/listen.out" | tr -d ' ')" = "$want" ] && ok ||
    bad "the listener got more than $want deliveries"
grep -q "rejected" "$tmp/listen.err" &&
    bad "the listener refused a delivery: $(head -3 "$tmp/listen.err")" || ok

# the engine ran throughout, and stops cleanly
kill -TERM "$pid"
wait "$pid" && ok || bad "the engine exited $?: $(tail -5 "$tmp/run.err")"
pid=""
kill -TERM "$lpid"
wait "$lpid"
lpid=""

# --- e. an endpoint that answers 410 Gone: the sink is disabled, says so ---------
python3 -c '
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(410); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
print("listening", flush=True)
s.serve_forever()
' "$gport" >"$tmp/gone.out" 2>&1 &
lpid=$!
i=0
while ! grep -q listening "$tmp/gone.out" && [ $i -lt 100 ]; do i=$((i + 1)); sleep 0.1; done
mkdir "$tmp/e"
cp "$tmp/hook.secret" "$tmp/e/secret"
printf 'state: {path: st}\nhttp: 127.0.0.1:%s\nsinks:\n  - {type: webhook, url: "http://127.0.0.1:%s/h", secret_files: [secret], allow_private: true}\n' \
    "$hport" "$gport" >"$tmp/e/vigil.yaml"
"$vigil" run --config "$tmp/e/vigil.yaml" --rules "$top/rules/examples" --ingest "ipc://$tmp/e.ipc" \
    --checkpoint 0.3 >/dev/null 2>"$tmp/e/err" &
pid=$!
i=0
while ! grep -q "ready:" "$tmp/e/err" && [ $i -lt 100 ]; do i=$((i + 1)); sleep 0.1; done
"$vigil" send -q --to "ipc://$tmp/e.ipc" --input "$tmp/g.csv" || bad "e: send"
i=0
while ! grep -q "disabled: the endpoint answered 410 Gone" "$tmp/e/err" && [ $i -lt 100 ]; do
    i=$((i + 1))
    sleep 0.1
done
grep -q "disabled: the endpoint answered 410 Gone" "$tmp/e/err" && ok ||
    bad "e: a 410 is not in the log: $(cat "$tmp/e/err")"
[ "$(grep -c "disabled: the endpoint" "$tmp/e/err")" = 1 ] && ok || bad "e: the disable is logged more than once"
curl -s --max-time 5 "http://127.0.0.1:$hport/metrics" |
    grep -q '^vigil_sink_disabled{sink="webhook:http://127.0.0.1:'"$gport"'/h"} 1$' && ok ||
    bad "e: vigil_sink_disabled: $(curl -s "http://127.0.0.1:$hport/metrics" | grep disabled)"
kill -TERM "$pid"
wait "$pid" && ok || bad "e: the engine exited $?"
pid=""
"$vigil" dlq list --state "$tmp/e/st" >"$tmp/e/list" 2>"$tmp/e/list.err" && ok || bad "e: dlq list"
[ "$(grep -c . "$tmp/e/list")" -gt 0 ] && ok || bad "e: no dead letters after a 410: $(cat "$tmp/e/list.err")"
kill "$lpid"
wait "$lpid" 2>/dev/null
lpid=""

echo "$n checks, $fails failed"
[ "$fails" = 0 ]
