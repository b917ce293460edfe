#!/bin/sh
# Webhook signatures end to end (SPEC section 6): deliveries signed by
# adapters/sign.c (through tests/unit/sign_tool.c) are checked by an
# independent implementation, the npm package standardwebhooks
# (tests/webhook/verify.js), and POSTed to a real `vigil webhook-listen`
# started on a loopback port and stopped by its process id. Valid ones must
# verify and print; tampered ones must be refused by both.
#
#   sh tests/cli/sign.sh path/to/vigil path/to/source-tree path/to/sign_tool [npm-dir]
#
# npm-dir is where standardwebhooks is installed (default: a temporary
# folder). Exits 77 (skipped) only when npm is not installed.
set -u
vigil=$1
top=$(cd "$2" && pwd)
signer=$3
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
    echo "SKIP: npm is not installed, so the independent verifier (npm standardwebhooks)"
    echo "      cannot run; install Node.js and npm to run this test"
    exit 77
fi
tmp=$(mktemp -d)
npmdir=${4:-$tmp/npm}
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

# --install-links copies the folder, so its dependency lands in npmdir (a
# link would leave it uninstalled); verify.js runs from the source tree
mkdir -p "$npmdir"
if ! npm install --no-audit --no-fund --install-links --prefix "$npmdir" "$top/tests/webhook" \
    >"$tmp/npm.log" 2>&1; then
    echo "FAIL: npm install of tests/webhook (standardwebhooks):"
    cat "$tmp/npm.log"
    exit 1
fi
verify() { NODE_PATH="$npmdir/node_modules" node "$top/tests/webhook/verify.js" "$@"; }

# --- secrets and bodies ----------------------------------------------------------
# s1: the secret of the Standard Webhooks test vector; s2: a fixed second key;
# s3 and other: random, so every run signs with keys never seen before
echo "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" >"$tmp/s1"
echo "whsec_cm90YXRpb24ga2V5IG51bWJlciB0d28sIDMyIGJ5dA==" >"$tmp/s2"
echo "whsec_$(head -c 32 /dev/urandom | base64 | tr -d '\n')" >"$tmp/s3"
echo "whsec_$(head -c 24 /dev/urandom | base64 | tr -d '\n')" >"$tmp/other"
cat >"$tmp/bodies" <<'EOF'
{"alert_id":"a-1","rule":"velocity_cnp","key":"acct-1","score":80,"action":"review"}
{"alert_id":"a-2","rule":"geo_jump","message":"Zürich → 東京 in 10 min","score":12.5}
{"alert_id":"a-3","rule":"odd","message":"a quote \" a backslash \\ a tab \t","score":1}
EOF

"$signer" --id-prefix msg_good_ "$tmp/s1" <"$tmp/bodies" >"$tmp/good.jsonl" &&
    [ "$(wc -l <"$tmp/good.jsonl")" = 3 ] && ok || bad "sign_tool did not sign 3 bodies"
"$signer" --id-prefix msg_rot_ "$tmp/s1" "$tmp/s2" "$tmp/s3" <"$tmp/bodies" >"$tmp/rot.jsonl" &&
    grep -q '"signature":"v1,[^ ]* v1,[^ ]* v1,[^ ]*"' "$tmp/rot.jsonl" && ok ||
    bad "three secrets did not give three signatures: $(head -1 "$tmp/rot.jsonl")"
for t in body id timestamp signature; do
    "$signer" --id-prefix "msg_bad_${t}_" --tamper "$t" "$tmp/s1" <"$tmp/bodies" >"$tmp/bad_$t.jsonl"
    cat "$tmp/bad_$t.jsonl" >>"$tmp/bad.jsonl"
done
[ "$(wc -l <"$tmp/bad.jsonl")" = 12 ] && ok || bad "sign_tool --tamper did not give 12 records"

# --- the independent verifier -------------------------------------------------------
verify "$tmp/good.jsonl" "$tmp/s1" >"$tmp/v.out" 2>&1 && ok ||
    bad "standardwebhooks rejects vigil's signatures: $(cat "$tmp/v.out")"
verify "$tmp/rot.jsonl" "$tmp/s2" >"$tmp/v.out" 2>&1 && ok ||
    bad "standardwebhooks rejects one of three rotated signatures: $(cat "$tmp/v.out")"
verify "$tmp/rot.jsonl" "$tmp/s3" >"$tmp/v.out" 2>&1 && ok ||
    bad "standardwebhooks rejects a random key's signature: $(cat "$tmp/v.out")"
verify --expect-fail "$tmp/rot.jsonl" "$tmp/other" >"$tmp/v.out" 2>&1 && ok ||
    bad "standardwebhooks accepts signatures under a key not used: $(cat "$tmp/v.out")"
for t in body id timestamp signature; do
    verify --expect-fail "$tmp/bad_$t.jsonl" "$tmp/s1" >"$tmp/v.out" 2>&1 && ok ||
        bad "standardwebhooks accepts a tampered $t: $(cat "$tmp/v.out")"
done
# the verifier itself: it must fail on what it should fail on
verify "$tmp/bad.jsonl" "$tmp/s1" >"$tmp/v.out" 2>&1
[ $? = 1 ] && ok || bad "verify.js passed tampered deliveries without --expect-fail"
verify --expect-fail "$tmp/good.jsonl" "$tmp/s1" >"$tmp/v.out" 2>&1
[ $? = 1 ] && ok || bad "verify.js --expect-fail passed valid deliveries"

# --- vigil webhook-listen -----------------------------------------------------------
. "$top/tests/cli/lib.sh"
port=$(free_port)
addr="127.0.0.1:$port"
url="http://$addr/hooks/vigil"
# post FILE: POSTs each delivery record of FILE (a field left out: its header
# is not sent); prints the status and the answer's text, one line each
post() { python3 - "$url" "$1" <<'EOF'
import json, sys, urllib.request, urllib.error
url, path = sys.argv[1], sys.argv[2]
names = (("webhook-id", "id"), ("webhook-timestamp", "timestamp"), ("webhook-signature", "signature"))
for line in open(path, encoding="utf-8"):
    d = json.loads(line)
    headers = {h: str(d[f]) for h, f in names if f in d}
    req = urllib.request.Request(url, data=d["body"].encode(), headers=headers, method="POST")
    try:
        r = urllib.request.urlopen(req, timeout=5)
        code, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        code, text = e.code, e.read().decode()
    print(code, text.strip())
EOF
}
# start OUT ERR ARGS...: a listener in the background, waited for
start() {
    out=$1
    err=$2
    shift 2
    "$vigil" webhook-listen --listen "$addr" "$@" >"$out" 2>"$err" &
    pid=$!
    i=0
    while ! grep -q "listening on" "$err"; do
        i=$((i + 1))
        if [ $i -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then
            bad "webhook-listen did not start: $(cat "$err")"
            pid=""
            return 1
        fi
        sleep 0.1
    done
}
# stop SIGNAL: the listener's exit status
stop() {
    kill -"$1" "$pid"
    wait "$pid"
    rc=$?
    pid=""
    return $rc
}
count() { grep -c "$1" "$2"; }

VG_TEST_SECRETS="$(cat "$tmp/s3") $(cat "$tmp/other")"
export VG_TEST_SECRETS
if start "$tmp/l1.out" "$tmp/l1.err" --secret-file "$tmp/s1" --secret-env VG_TEST_SECRETS; then
    grep -q "with 3 keys" "$tmp/l1.err" && ok || bad "listener keys: $(cat "$tmp/l1.err")"
    post "$tmp/good.jsonl" >"$tmp/p.out"
    [ "$(count '^204 $' "$tmp/p.out")" = 3 ] && ok || bad "valid deliveries: $(cat "$tmp/p.out")"
    cmp -s "$tmp/bodies" "$tmp/l1.out" && ok ||
        bad "printed bodies differ from those sent: $(diff "$tmp/bodies" "$tmp/l1.out")"
    # signed under s1, s2 and s3; the listener knows s1 and (from the environment) s3
    "$signer" --id-prefix msg_env_ "$tmp/s2" "$tmp/s3" <"$tmp/bodies" >"$tmp/env.jsonl"
    post "$tmp/env.jsonl" >"$tmp/p.out"
    [ "$(count '^204 $' "$tmp/p.out")" = 3 ] && ok ||
        bad "a key from --secret-env, among rotated ones: $(cat "$tmp/p.out")"
    post "$tmp/bad.jsonl" >"$tmp/p.out"
    [ "$(count '^401 no signature matches$' "$tmp/p.out")" = 12 ] && ok ||
        bad "tampered deliveries: $(cat "$tmp/p.out")"
    [ "$(count 'rejected msg_bad_.*: no signature matches$' "$tmp/l1.err")" = 12 ] && ok ||
        bad "each rejection on stderr: $(cat "$tmp/l1.err")"
    "$signer" --id-prefix msg_s2_ "$tmp/s2" <"$tmp/bodies" >"$tmp/s2.jsonl"
    post "$tmp/s2.jsonl" >"$tmp/p.out"
    [ "$(count '^401 no signature matches$' "$tmp/p.out")" = 3 ] && ok ||
        bad "a key the listener does not know: $(cat "$tmp/p.out")"
    "$signer" --id-prefix msg_old_ --timestamp $(($(date +%s) - 1000)) "$tmp/s1" \
        <"$tmp/bodies" >"$tmp/old.jsonl"
    post "$tmp/old.jsonl" >"$tmp/p.out"
    [ "$(count '^401 webhook-timestamp is 1[0-9][0-9][0-9] s before now (tolerance 300 s)$' \
        "$tmp/p.out")" = 3 ] && ok || bad "a timestamp out of tolerance: $(cat "$tmp/p.out")"
    # headers missing, or not a number
    head -1 "$tmp/good.jsonl" | python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
for drop in ("signature", "id", "timestamp"):
    print(json.dumps({k: v for k, v in d.items() if k != drop}))
print(json.dumps(dict(d, timestamp="12a")))' >"$tmp/headers.jsonl"
    post "$tmp/headers.jsonl" >"$tmp/p.out"
    printf '%s\n' "401 no webhook-signature header" "401 no webhook-id header" \
        "401 no webhook-timestamp header" "401 webhook-timestamp is not Unix seconds" |
        cmp -s - "$tmp/p.out" && ok || bad "missing headers: $(cat "$tmp/p.out")"
    code=$(curl -s -o /dev/null -w '%{http_code}' "$url")
    [ "$code" = 405 ] && ok || bad "GET answered $code, not 405"
    [ "$(wc -l <"$tmp/l1.out")" = 6 ] && ok || bad "stdout holds more than the valid ones"
    # a second listener on the same address cannot start
    "$vigil" webhook-listen --listen "$addr" --secret-file "$tmp/s1" >/dev/null 2>"$tmp/busy.err"
    [ $? = 1 ] && grep -q "can't listen on $addr" "$tmp/busy.err" && ok ||
        bad "a busy address: $(cat "$tmp/busy.err")"
    stop TERM && ok || bad "SIGTERM: exit $rc, not 0"
    for s in s1 s2 s3 other; do
        k=$(sed 's/^whsec_//' "$tmp/$s")
        grep -qF "$k" "$tmp/l1.out" "$tmp/l1.err" && bad "secret $s printed by the listener" || ok
    done
fi

# --status, --dedupe, --tolerance 0, and the published test vector over HTTP
cat >"$tmp/vector.jsonl" <<'EOF'
{"id":"msg_p5jXN8AQM9LWM0D4loKWxJek","timestamp":1614265330,"signature":"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=","body":"{\"test\": 2432232314}"}
EOF
if start "$tmp/l2.out" "$tmp/l2.err" --secret-file "$tmp/s1" --status 503 --dedupe --tolerance 0
then
    post "$tmp/good.jsonl" >"$tmp/p1.out"
    post "$tmp/good.jsonl" >"$tmp/p2.out"
    post "$tmp/vector.jsonl" >>"$tmp/p2.out"
    post "$tmp/vector.jsonl" >>"$tmp/p2.out"
    [ "$(cat "$tmp/p1.out" "$tmp/p2.out" | grep -c '^503 valid')" = 8 ] && ok ||
        bad "--status 503: $(cat "$tmp/p1.out" "$tmp/p2.out")"
    { cat "$tmp/bodies"; echo '{"test": 2432232314}'; } | cmp -s - "$tmp/l2.out" && ok ||
        bad "--dedupe printed: $(cat "$tmp/l2.out")"
    stop INT && ok || bad "SIGINT: exit $rc, not 0"
fi

# --- usage and secret errors -----------------------------------------------------------
expect() { # expect CODE WHAT CMD...: the exit status, stderr kept in $tmp/err
    want=$1
    what=$2
    shift 2
    "$@" >"$tmp/out" 2>"$tmp/err"
    got=$?
    [ "$got" = "$want" ] && ok || bad "$what: exit $got, not $want: $(cat "$tmp/err")"
}
expect 0 "--help" "$vigil" webhook-listen --help
for o in --listen --secret-file --secret-env --tolerance --status --dedupe; do
    grep -q -- "$o" "$tmp/out" && ok || bad "--help does not mention $o"
done
expect 0 "vigil help webhook-listen" "$vigil" help webhook-listen
expect 64 "no secret" "$vigil" webhook-listen --listen "$addr"
grep -q "give the secrets" "$tmp/err" && ok || bad "no-secret message: $(cat "$tmp/err")"
expect 64 "a secret as an argument" "$vigil" webhook-listen "$(cat "$tmp/s1")"
grep -q "never from arguments" "$tmp/err" && ok || bad "argv-secret message: $(cat "$tmp/err")"
expect 64 "--status 99" "$vigil" webhook-listen --secret-file "$tmp/s1" --status 99
expect 64 "--tolerance -1" "$vigil" webhook-listen --secret-file "$tmp/s1" --tolerance -1
expect 66 "a missing secret file" "$vigil" webhook-listen --secret-file "$tmp/nope"
grep -q "can't read secret file" "$tmp/err" && ok || bad "missing file: $(cat "$tmp/err")"
printf 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\nwhsec_c2VjcmV0!c2VjcmV0\n' >"$tmp/badsecret"
expect 65 "a secret not base64" "$vigil" webhook-listen --secret-file "$tmp/badsecret"
grep -q "secret 2: character 9 of its base64 part is not base64" "$tmp/err" && ok ||
    bad "bad secret message: $(cat "$tmp/err")"
grep -q "c2VjcmV0\|MfKQ9r8G" "$tmp/err" && bad "a secret quoted in an error" || ok
: >"$tmp/empty"
expect 65 "an empty secret file" "$vigil" webhook-listen --secret-file "$tmp/empty"
expect 78 "an unset --secret-env" env -u VG_TEST_NOPE "$vigil" webhook-listen \
    --secret-env VG_TEST_NOPE
grep -q "VG_TEST_NOPE (--secret-env) is not set" "$tmp/err" && ok ||
    bad "unset env message: $(cat "$tmp/err")"
expect 65 "a bad secret in the environment" env VG_TEST_BAD="whsec_!!" "$vigil" webhook-listen \
    --secret-env VG_TEST_BAD

echo "webhook_sign: $((n - fails)) of $n checks passed"
[ $fails -eq 0 ]
