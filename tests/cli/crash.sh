#!/bin/sh
# The crash test of issue 5: `vigil send` streams a generated file while the
# engine is killed with SIGKILL at random moments and restarted, ten times.
# At the end the set of alerts equals an uncrashed replay's (same ids, none
# missing, none extra), and a resend of the whole file is all duplicates:
# every event is in the state exactly once.
#
#   sh tests/cli/crash.sh path/to/vigil path/to/source-tree [kills]
set -u
vigil=$1
top=$(cd "$2" && pwd)
kills=${3:-10}
tmp=$(mktemp -d)
pid=""
spid=""
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; [ -n "$spid" ] && kill -9 "$spid" 2>/dev/null; rm -rf "$tmp"' EXIT
url="ipc://$tmp/ingest.ipc"
rules="$top/rules/examples"
fail() {
    echo "FAIL: $*"
    exit 1
}
start() {
    : >"$tmp/err"
    "$vigil" run --rules "$rules" --state "$tmp/state" --ingest "$url" --http none \
        --checkpoint 0.3 >>"$tmp/got.jsonl" 2>"$tmp/err" &
    pid=$!
    i=0
    while ! grep -q "ready:" "$tmp/err"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid"
            fail "the engine exited with status $? while starting: $(cat "$tmp/err")"
        fi
        i=$((i + 1))
        if [ $i -gt 600 ]; then
            # 30 s: say where it is stuck before giving up
            echo "the engine (pid $pid) is not ready after 30 s; its state: $(grep State /proc/$pid/status)"
            ls -l "$tmp/state" "$tmp/state/log"
            command -v gdb >/dev/null && gdb -batch -p "$pid" -ex "thread apply all bt" 2>&1 | grep "^#" | head -40
            fail "the engine did not start: $(cat "$tmp/err")"
        fi
        sleep 0.05
    done
}

"$vigil" gen --accounts 10000 --events 60000 --seed 9 --out "$tmp/g.csv" 2>/dev/null
"$vigil" replay -q --rules "$rules" --input "$tmp/g.csv" --out "$tmp/want.jsonl"
# stdout, the engine's default sink, leaves out shadow-mode alerts (SPEC §2)
grep -v '"shadow":true' "$tmp/want.jsonl" >"$tmp/want.active" && mv "$tmp/want.active" "$tmp/want.jsonl"
n=$(($(wc -l <"$tmp/g.csv") - 1))

start
# small batches at a bounded rate: the stream lasts through every kill
"$vigil" send --to "$url" --input "$tmp/g.csv" --batch 50 --rate 4000 --timeout 60 -q \
    2>"$tmp/send.err" &
spid=$!
k=0
while [ $k -lt "$kills" ]; do
    # a random moment: 0.1 to 1.0 s
    sleep "0.$(($(od -An -N1 -tu1 /dev/urandom) % 9 + 1))"
    kill -9 "$pid"
    wait "$pid" 2>/dev/null
    k=$((k + 1))
    start
done
wait "$spid" || fail "send did not finish: $(cat "$tmp/send.err")"
spid=""
"$vigil" send --to "$url" --input "$tmp/g.csv" 2>"$tmp/resend.err"
grep -q " 0 acked, $n duplicates, 0 rejected" "$tmp/resend.err" ||
    fail "a resend after $kills kills: $(cat "$tmp/resend.err")"
kill -TERM "$pid"
wait "$pid" || fail "the engine's last stop: $(cat "$tmp/err")"
pid=""
sort -u "$tmp/got.jsonl" >"$tmp/got.sorted"
sort "$tmp/want.jsonl" >"$tmp/want.sorted"
if ! cmp -s "$tmp/got.sorted" "$tmp/want.sorted"; then
    diff "$tmp/want.sorted" "$tmp/got.sorted" | head -5
    fail "after $kills kills the alerts differ from replay's"
fi
echo "crash: $kills kills during a stream of $n events; alerts equal replay's ($(wc -l <"$tmp/want.sorted") unique), every event counted once"
