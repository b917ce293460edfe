#!/bin/sh
# A full disk (issues 5 and 7), on small tmpfs mounts made for the test (root
# only; skipped otherwise):
#   - the state's disk: the LMDB map cannot grow. The engine stops taking
#     batches (error replies, /readyz 503), never crashes (with MDB_WRITEMAP a
#     sparse data.mdb would SIGBUS), keeps what it acked in the event log,
#     refuses to start while there is no room, and after the disk has room
#     recovers everything it acked.
#   - a jsonl sink's disk: the engine goes on, the alerts wait in the outbox,
#     and when there is room the file gets each alert once, whole lines only.
#
#   sh tests/cli/diskfull.sh path/to/vigil path/to/source-tree
set -u
vigil=$1
top=$(cd "$2" && pwd)
tmp=$(mktemp -d)
pid=""
cleanup() {
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
    umount "$tmp/disk" 2>/dev/null
    umount "$tmp/sinkdisk" 2>/dev/null
    umount "$tmp/logdisk" 2>/dev/null
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
mkdir "$tmp/disk" "$tmp/sinkdisk"
if ! mount -t tmpfs -o size=48m tmpfs "$tmp/disk" 2>/dev/null; then
    echo "SKIP: can't mount a tmpfs (needs root)"
    exit 77
fi
url="ipc://$tmp/ingest.ipc"
. "$top/tests/cli/lib.sh"
port=$(free_port)
http="127.0.0.1:$port"
code() { python3 -c "
import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen('http://$http' + sys.argv[1], timeout=5).status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print(0)
" "$1"; }
rules="$top/rules/examples"
# start STATE ERR [ARGS]: the engine in the background, until it is ready or gone
start() {
    st=$1 err=$2
    shift 2
    touch "$err"
    "$vigil" run --rules "$rules" --state "$st" --ingest "$url" --http "$http" "$@" \
        >"$tmp/alerts.out" 2>>"$err" &
    pid=$!
    i=0
    while ! grep -q "ready:" "$err" && kill -0 "$pid" 2>/dev/null && [ $i -lt 300 ]; do
        i=$((i + 1))
        sleep 0.1
    done
}

"$vigil" gen --accounts 50000 --events 200000 --seed 3 --out "$tmp/g.pb" 2>/dev/null
total=$("$vigil" replay --rules "$rules" --input "$tmp/g.pb" --out "$tmp/want.jsonl" 2>&1 |
    sed -n 's/^replay: \([0-9][0-9]*\) events read.*/\1/p')

# --- the state's disk ---------------------------------------------------------
# the state on the small disk, its event log elsewhere (a log that cannot be
# written stops the engine: durability first; that is another test)
mkdir "$tmp/disk/st" "$tmp/log"
ln -s "$tmp/log" "$tmp/disk/st/log"
start "$tmp/disk/st" "$tmp/err1" --checkpoint 1
timeout 120 "$vigil" send --to "$url" --input "$tmp/g.pb" --timeout 5 2>"$tmp/send1"
rc=$?
[ $rc -eq 69 ] && ok || bad "send into a full state: exit $rc, expected 69: $(tail -2 "$tmp/send1")"
kill -0 "$pid" 2>/dev/null && ok || bad "the engine died on a full disk: $(cat "$tmp/err1")"
grep -q "no room on the disk for the state to grow" "$tmp/err1" && ok ||
    bad "a full disk is not in the log: $(cat "$tmp/err1")"
[ "$(code /readyz)" = 503 ] && ok || bad "/readyz on a full disk: $(code /readyz)"
acked=$(sed -n 's/.* \([0-9][0-9]*\) acked.*/\1/p' "$tmp/send1")
[ "${acked:-0}" -gt 0 ] && ok || bad "nothing acked before the disk filled: $(cat "$tmp/send1")"
kill -TERM "$pid"
wait "$pid"
rc=$?
pid=""
[ $rc -eq 0 ] && ok || bad "SIGTERM on a full disk: exit $rc"
grep -q "does not fit on the disk" "$tmp/err1" && ok || bad "the last checkpoint: $(cat "$tmp/err1")"
# a start on the still-full disk: refused with the reason, not a crash
start "$tmp/disk/st" "$tmp/err2"
wait "$pid"
rc=$?
pid=""
[ $rc -eq 1 ] && ok || bad "a start on a full disk: exit $rc, expected 1: $(cat "$tmp/err2")"
grep -q "no room on the disk" "$tmp/err2" && ok || bad "a start on a full disk says why: $(cat "$tmp/err2")"
# room again: everything acked is there; the rest goes in
mount -o remount,size=400m "$tmp/disk"
start "$tmp/disk/st" "$tmp/err3"
timeout 120 "$vigil" send --to "$url" --input "$tmp/g.pb" 2>"$tmp/send3" && ok || bad "send after the disk has room: $(tail -2 "$tmp/send3")"
grep -q "$total events read, $total sent, $((total - acked)) acked, $acked duplicates, 0 rejected" "$tmp/send3" && ok ||
    bad "after the disk has room ($acked acked before of $total): $(tail -1 "$tmp/send3")"
kill -TERM "$pid"
wait "$pid" && ok || bad "the engine after the disk has room: exit $?"
pid=""

# --- the event log's disk ---------------------------------------------------------
# the group that cannot be logged is refused; the engine stops (its memory may
# hold events the log does not) with exit 1; after a restart with room every
# acked event is there once
mkdir "$tmp/logdisk" "$tmp/st3"
mount -t tmpfs -o size=2m tmpfs "$tmp/logdisk"
ln -s "$tmp/logdisk" "$tmp/st3/log"
start "$tmp/st3" "$tmp/err5"
timeout 120 "$vigil" send --to "$url" --input "$tmp/g.pb" --timeout 3 2>"$tmp/send5"
rc=$?
[ $rc -eq 69 ] && ok || bad "send into a full log: exit $rc, expected 69: $(tail -2 "$tmp/send5")"
wait "$pid"
rc=$?
pid=""
[ $rc -eq 1 ] && ok || bad "the engine with a full log: exit $rc, expected 1: $(tail -3 "$tmp/err5")"
grep -q "stopping: the event log could not be written: No space left on device .*free some disk space" "$tmp/err5" && ok || bad "a full log is not in the log: $(cat "$tmp/err5")"
acked=$(sed -n 's/.* \([0-9][0-9]*\) acked.*/\1/p' "$tmp/send5")
mount -o remount,size=400m "$tmp/logdisk"
start "$tmp/st3" "$tmp/err6"
timeout 120 "$vigil" send --to "$url" --input "$tmp/g.pb" 2>"$tmp/send6" && ok || bad "send after the log has room"
grep -q "$total events read, $total sent, $((total - acked)) acked, $acked duplicates, 0 rejected" "$tmp/send6" && ok ||
    bad "after the log has room ($acked acked before of $total): $(tail -1 "$tmp/send6")"
kill -TERM "$pid"
wait "$pid" && ok || bad "the engine after the log has room: exit $?"
pid=""
umount "$tmp/logdisk"

# --- a jsonl sink's disk ---------------------------------------------------------
mount -t tmpfs -o size=64k tmpfs "$tmp/sinkdisk"
cat >"$tmp/sink.yaml" <<EOC
sinks:
  - {type: jsonl, path: $tmp/sinkdisk/alerts.jsonl}
EOC
start "$tmp/st2" "$tmp/err4" --config "$tmp/sink.yaml"
timeout 120 "$vigil" send --to "$url" --input "$tmp/g.pb" -q && ok || bad "send with the sink's disk full"
sleep 1
kill -0 "$pid" 2>/dev/null && ok || bad "the engine died with its sink's disk full"
grep -q "failing from alert .*No space left on device" "$tmp/err4" && ok ||
    bad "the sink's full disk is not in the log: $(cat "$tmp/err4")"
mount -o remount,size=64m "$tmp/sinkdisk"
# the sink does not ask for shadow-mode alerts (SPEC §2)
grep -v '"shadow":true' "$tmp/want.jsonl" >"$tmp/want.active"
mv "$tmp/want.active" "$tmp/want.jsonl"
want=$(wc -l <"$tmp/want.jsonl")
i=0
while [ "$(wc -l <"$tmp/sinkdisk/alerts.jsonl")" -lt "$want" ] && [ $i -lt 100 ]; do
    i=$((i + 1))
    sleep 0.1
done
sort "$tmp/sinkdisk/alerts.jsonl" >"$tmp/got.sorted"
sort "$tmp/want.jsonl" >"$tmp/want.sorted"
cmp -s "$tmp/got.sorted" "$tmp/want.sorted" && ok ||
    bad "the sink's file after the disk has room: $(wc -l <"$tmp/got.sorted") lines, $want wanted"
grep -q "sink jsonl:.* working from alert" "$tmp/err4" && ok || bad "the sink's recovery is not in the log"
kill -TERM "$pid"
wait "$pid" && ok || bad "the engine with the sink: exit $?"
pid=""

echo "diskfull: $n checks, $fails failed"
[ $fails -eq 0 ]
