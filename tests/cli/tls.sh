#!/bin/sh
# Mutual TLS on the ingest endpoint (issue 5): certificates made by openssl
# for this run; vigil run on tls+tcp:// with tls.cert, tls.key and tls.ca;
# vigil send and vigil score with and without the right certificates.
#
#   sh tests/cli/tls.sh path/to/vigil path/to/source-tree
set -u
vigil=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
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
command -v openssl >/dev/null || {
    echo "SKIP: no openssl to make certificates"
    exit 77
}
cd "$tmp" || exit 1
# cert NAME CN [CA]: an EC key and a certificate, signed by CA (or self-signed)
cert() {
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$1.key" \
        -out "$1.csr" -subj "/CN=$2" 2>/dev/null
    printf 'subjectAltName=DNS:%s\nbasicConstraints=CA:%s\n' "$2" "$([ -z "${3:-}" ] && echo TRUE || echo FALSE)" >"$1.ext"
    if [ -n "${3:-}" ]; then
        openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -days 2 \
            -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    else
        openssl x509 -req -in "$1.csr" -signkey "$1.key" -days 2 -extfile "$1.ext" \
            -out "$1.pem" 2>/dev/null
    fi
}
cert ca vigil-test-ca
cert server localhost ca
cert client producer ca
cert rogue rogue
[ -s server.pem ] && [ -s client.pem ] && ok || { echo "FAIL: openssl made no certificates"; exit 1; }

. "$top/tests/cli/lib.sh"
port=$(free_port)
url="tls+tcp://127.0.0.1:$port"
printf 'ingest: "%s"\nhttp: ""\nstate: {path: state}\ntls: {cert: server.pem, key: server.key, ca: ca.pem}\n' "$url" >vigil.yaml
"$vigil" gen --accounts 200 --events 2000 --seed 3 --out g.csv 2>/dev/null
nev=$(($(wc -l <g.csv) - 1))
"$vigil" run --config vigil.yaml --rules "$top/rules/examples" >got.jsonl 2>err &
pid=$!
i=0
while ! grep -q "ready:" err && [ $i -lt 100 ]; do i=$((i + 1)); sleep 0.1; done
grep -q "ready:" err && ok || { bad "the engine did not start on TLS: $(cat err)"; exit 1; }

mtls="--tls-ca ca.pem --tls-cert client.pem --tls-key client.key --tls-server-name localhost"
# shellcheck disable=SC2086 # the options are meant to split
"$vigil" send --to "$url" --input g.csv $mtls 2>send1 && ok || bad "send with the right certificates: $(cat send1)"
grep -q "$nev acked" send1 && ok || bad "mutual TLS: $(cat send1)"
# shellcheck disable=SC2086
echo '{"id":"tls-1","time":"2024-05-01T10:00:00Z","account_id":"a","type":"PURCHASE","amount":"3.00","currency":"EUR"}' |
    "$vigil" score --to "$url" $mtls >score.out 2>score.err && ok || bad "score over TLS: $(cat score.err)"
grep -q '"event_id":"tls-1"' score.out && ok || bad "score over TLS: $(cat score.out)"

expect_refused() { # WHAT OPTIONS...
    what=$1
    shift
    "$vigil" send --to "$url" --input g.csv --timeout 3 "$@" >/dev/null 2>refused
    rc=$?
    [ $rc -eq 69 ] && ok || bad "$what: exit $rc, expected 69: $(cat refused)"
}
expect_refused "no client certificate" --tls-ca ca.pem --tls-server-name localhost
expect_refused "a client certificate of another CA" --tls-ca ca.pem --tls-cert rogue.pem \
    --tls-key rogue.key --tls-server-name localhost
expect_refused "an engine certificate this client does not trust" --tls-ca rogue.pem \
    --tls-cert client.pem --tls-key client.key --tls-server-name localhost
expect_refused "the wrong server name" --tls-ca ca.pem --tls-cert client.pem --tls-key client.key \
    --tls-server-name elsewhere
"$vigil" send --to "$url" --input g.csv --timeout 3 >/dev/null 2>refused
rc=$?
[ $rc -eq 64 ] && ok || bad "tls+tcp:// without --tls-ca: exit $rc, expected 64"
grep -q "needs the CA that signed the engine's certificate" refused && ok ||
    bad "tls+tcp:// without --tls-ca says what is missing: $(cat refused)"
kill -TERM "$pid"
wait "$pid" && ok || bad "the TLS engine's stop"
pid=""
grep -q "stopped: $((nev + 1)) events" err && ok || bad "the refused sends took something: $(tail -1 err)"

# a tls+tcp:// endpoint without a certificate: a clear error
printf 'ingest: "%s"\nhttp: ""\nstate: {path: state2}\n' "$url" >nocert.yaml
"$vigil" run --config nocert.yaml --rules "$top/rules/examples" >/dev/null 2>err2
rc=$?
[ $rc -eq 78 ] && ok || bad "tls+tcp:// without tls: exit $rc, expected 78 (a config error)"
grep -q "tls+tcp:// needs tls.cert and tls.key" err2 && ok || bad "no certificate: $(cat err2)"

echo "tls: $n checks, $fails failed"
[ "$fails" -eq 0 ]
