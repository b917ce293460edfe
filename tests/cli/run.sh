#!/bin/sh
# End-to-end tests of the vigil command line: help, version, exit codes, and
# input that must never crash the compiler (binary garbage, a 10 MB file,
# deep nesting, invalid UTF-8). Each check runs the real binary.
#
#   sh tests/cli/run.sh path/to/vigil path/to/source-tree
set -u
vigil=$1
top=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
n=0

ok() { n=$((n + 1)); }
bad() {
    n=$((n + 1))
    fails=$((fails + 1))
    echo "FAIL: $*"
}
# expect CODE DESCRIPTION -- CMD...: runs CMD, output in $tmp/out and $tmp/err
expect() {
    code=$1
    what=$2
    shift 3
    "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    if [ "$rc" -eq "$code" ]; then ok; else
        bad "$what: exit $rc, expected $code"
        sed 's/^/    stderr: /' "$tmp/err" | head -5
    fi
}
# grep_in FILE PATTERN DESCRIPTION
grep_in() {
    if grep -q -- "$2" "$1"; then ok; else
        bad "$3: '$2' not found in $(basename "$1")"
        sed 's/^/    /' "$1" | head -5
    fi
}

# --- help, version, usage ---------------------------------------------------
expect 0 "vigil --help" -- "$vigil" --help
grep_in "$tmp/out" "usage: vigil <command>" "--help on stdout"
grep_in "$tmp/out" "check" "--help lists check"
expect 0 "vigil --version" -- "$vigil" --version
grep_in "$tmp/out" "^vigil [0-9]" "--version"
expect 0 "vigil check --help" -- "$vigil" check --help
grep_in "$tmp/out" "usage: vigil check" "check --help"
grep_in "$tmp/out" "Exit status" "check --help documents exit codes"
expect 0 "vigil check --version" -- "$vigil" check --version
grep_in "$tmp/out" "^vigil [0-9]" "check --version"
expect 64 "no command" -- "$vigil"
expect 64 "unknown command" -- "$vigil" frobnicate
grep_in "$tmp/err" "'frobnicate' is not a vigil command" "unknown command message"
expect 64 "a misspelt command" -- "$vigil" chek x.vgl
grep_in "$tmp/err" "'chek' is not a vigil command; did you mean 'check'?" "command suggestion"
expect 0 "vigil help check" -- "$vigil" help check
grep_in "$tmp/out" "usage: vigil check" "help for a command"
expect 0 "check --dump" -- "$vigil" check --dump "$top/rules/examples"
grep_in "$tmp/out" "^rule velocity_cnp  version [0-9a-f]\{8\}" "--dump names each rule and its version"
grep_in "$tmp/out" "aggregate 0: count column -1 over 3600000ms" "--dump shows aggregates"
expect 64 "dlq without a subcommand" -- "$vigil" dlq
grep_in "$tmp/err" "give a command: list or resend" "dlq says what it wants"
expect 64 "check without files" -- "$vigil" check
expect 64 "check with a bad option" -- "$vigil" check --frob x.vgl
expect 64 "check with a bad --color" -- "$vigil" check --color=pink x.vgl

# --- the example rules and files that cannot be opened -------------------------
expect 0 "rules/examples compile" -- "$vigil" check "$top/rules/examples"
grep_in "$tmp/out" "^ok: [0-9]* rules" "summary line"
expect 0 "--quiet prints nothing" -- "$vigil" check -q "$top/rules/examples"
[ -s "$tmp/out" ] && bad "--quiet printed: $(cat "$tmp/out")" || ok
expect 66 "missing file" -- "$vigil" check "$tmp/nope.vgl"
grep_in "$tmp/err" "can't open '$tmp/nope.vgl': No such file or directory" "missing file message"
mkdir "$tmp/empty"
expect 66 "folder without rules" -- "$vigil" check "$tmp/empty"
grep_in "$tmp/err" "no rule files" "empty folder message"
printf 'rule from_stdin { where amount > 5 }\n' >"$tmp/stdin.vgl"
expect 0 "rules on stdin" -- sh -c "\"$vigil\" check - <\"$tmp/stdin.vgl\""
printf 'rule from_stdin { where amout > 5 }\n' >"$tmp/stdin.vgl"
expect 1 "bad rules on stdin" -- sh -c "\"$vigil\" check - <\"$tmp/stdin.vgl\""
grep_in "$tmp/err" "^<stdin>:1:25: error: 'amout' is not a field of txn" "stdin diagnostics"
expect 0 "forced color" -- "$vigil" check --color=always "$top/rules/examples"
printf 'rule c { where amout > 5 }\n' >"$tmp/color.vgl"
expect 1 "colored diagnostics" -- "$vigil" check --color=always "$tmp/color.vgl"
grep_in "$tmp/err" "$(printf '\033')\[1;31merror" "error in red"

# --- hostile input: clear errors, never a crash ---------------------------------
head -c 200000 /dev/urandom >"$tmp/garbage.vgl"
expect 1 "binary garbage" -- "$vigil" check "$tmp/garbage.vgl"
grep_in "$tmp/err" "garbage.vgl:[0-9]*:[0-9]*: error: this is not a text file" "garbage is called not text"
grep_in "$tmp/err" "^1 error generated.$" "garbage gives one error"
# fixed bytes (no NUL, no newline before the first bad byte), so the test
# checks the same input on every run
python3 -c 'import random, sys; r = random.Random(7); sys.stdout.buffer.write(bytes(b for b in r.randbytes(200000) if b not in (0, 10)))' >"$tmp/garbage2.vgl"
expect 1 "binary garbage without NUL bytes" -- "$vigil" check "$tmp/garbage2.vgl"
grep_in "$tmp/err" "garbage2.vgl:1:[0-9]*: error: this is not a text file ([0-9]* of its first 65536 bytes are not UTF-8 text)" "garbage without NUL is called not text"
grep_in "$tmp/err" "^1 error generated.$" "garbage without NUL gives one error"
expect 66 "a device, not a file" -- "$vigil" check /dev/zero
grep_in "$tmp/err" "'/dev/zero' is not a regular file" "device message"
expect 1 "endless standard input" -- sh -c "head -c 70000000 /dev/zero | tr '\\000' ' ' | \"$vigil\" check -"
grep_in "$tmp/err" "<stdin>: rule file is larger than 64 MiB" "size limit on stdin"

# a folder reached twice (a symlink to it, a loop, a file named again) is
# compiled once: no false "defined twice"
mkdir -p "$tmp/sym/a/b/c"
printf 'rule deep { where amount > 1 }\n' >"$tmp/sym/a/b/c/deep.vgl"
ln -s "$tmp/sym/a" "$tmp/sym/a/b/loop"
ln -s "$tmp/sym/a" "$tmp/sym/current"
expect 0 "symlinked folders and a symlink loop" -- "$vigil" check "$tmp/sym" "$tmp/sym/a/b/c/deep.vgl"
grep_in "$tmp/out" "^ok: 1 rule in 1 file" "each file once"
printf 'rule r { where amount > 5 }\n\000\001\002' >"$tmp/nul.vgl"
expect 1 "a file with NUL bytes" -- "$vigil" check "$tmp/nul.vgl"
grep_in "$tmp/err" "this is not a text file (NUL byte at offset 28)" "NUL byte message"
printf 'rule r {\n  where merchant_name == "caf\351"\n}\n' >"$tmp/latin1.vgl"
expect 1 "invalid UTF-8 in a string" -- "$vigil" check "$tmp/latin1.vgl"
grep_in "$tmp/err" "latin1.vgl:2:30: error: invalid UTF-8 byte 0xE9 in a string" "UTF-8 message"
printf 'rule r {\n  where \377\376 amount > 5\n}\n' >"$tmp/badbytes.vgl"
expect 1 "invalid UTF-8 outside strings" -- "$vigil" check "$tmp/badbytes.vgl"
grep_in "$tmp/err" "badbytes.vgl:2:9: error: invalid UTF-8 (2 bytes, the first 0xFF)" "UTF-8 message outside strings"

# deep nesting: bounded, one clear error
awk 'BEGIN { printf "rule deep { where "; for (i = 0; i < 100000; i++) printf "("; printf "amount > 5"; for (i = 0; i < 100000; i++) printf ")"; print " }" }' >"$tmp/deep.vgl"
expect 1 "100000 nested parentheses" -- "$vigil" check "$tmp/deep.vgl"
grep_in "$tmp/err" "expression nested too deeply (more than 200 levels)" "nesting message"
grep_in "$tmp/err" "^1 error generated.$" "nesting gives one error"
awk 'BEGIN { printf "rule deep { where "; for (i = 0; i < 100000; i++) printf "not "; print "true }" }' >"$tmp/nots.vgl"
expect 1 "100000 nested 'not'" -- "$vigil" check "$tmp/nots.vgl"
grep_in "$tmp/err" "nested too deeply" "not-nesting message"
awk 'BEGIN { printf "rule deep { where amount > "; for (i = 0; i < 100000; i++) printf "-"; print "5 }" }' >"$tmp/negs.vgl"
expect 1 "100000 nested minus signs" -- "$vigil" check "$tmp/negs.vgl"
grep_in "$tmp/err" "nested too deeply" "minus-nesting message"
awk 'BEGIN { printf "rule ok { where "; for (i = 0; i < 150; i++) printf "("; printf "amount > 5"; for (i = 0; i < 150; i++) printf ")"; print " }" }' >"$tmp/deep_ok.vgl"
expect 0 "150 nested parentheses are fine" -- "$vigil" check "$tmp/deep_ok.vgl"

awk 'BEGIN { printf "rule long { where amount"; for (i = 0; i < 200000; i++) printf " + amount"; print " > 0 }" }' >"$tmp/long.vgl"
expect 1 "200000 chained '+'" -- "$vigil" check "$tmp/long.vgl"
grep_in "$tmp/err" "expression is too large (more than 256 levels of operators and nesting)" "chain message"
grep_in "$tmp/err" "^1 error generated.$" "a long chain gives one error"
awk 'BEGIN { printf "rule long { where amount"; for (i = 0; i < 250; i++) printf " + amount"; print " > 0 }" }' >"$tmp/long_ok.vgl"
expect 0 "250 chained '+' are fine" -- "$vigil" check "$tmp/long_ok.vgl"
awk 'BEGIN { printf "rule wide { where merchant_id == \"m0\""; for (i = 1; i < 100000; i++) printf " or merchant_id == \"m%d\"", i; print " }" }' >"$tmp/wide.vgl"
expect 0 "100000 terms joined by 'or' are fine" -- "$vigil" check "$tmp/wide.vgl"

# a tall tree of mixed shapes just under the height limit: the checker's
# recursion must fit the stack (this runs under ASan too)
awk 'BEGIN { printf "rule tall { where "; for (i = 0; i < 60; i++) printf "-abs("; printf "amount"; for (i = 0; i < 100; i++) printf " + 1"; for (i = 0; i < 60; i++) printf ")"; print " < 0 and merchant_name ~ /x/ }" }' >"$tmp/tall.vgl"
expect 0 "a 220-level expression of calls, minus signs and a chain" -- "$vigil" check "$tmp/tall.vgl"

# a 10 MB file of valid rules compiles; 10 MB of nonsense stops after 100 errors
awk 'BEGIN { for (i = 0; i < 80000; i++) printf "rule r%d {\n  where channel == ECOMMERCE and amount > %d.50\n  when count() over 1h > 10\n  message \"{count() over 1h} in an hour\"\n}\n", i, i % 100 }' >"$tmp/big.vgl"
size=$(wc -c <"$tmp/big.vgl")
[ "$size" -gt 10000000 ] && ok || bad "big.vgl is only $size bytes"
expect 0 "a 10 MB rule file" -- "$vigil" check "$tmp/big.vgl"
grep_in "$tmp/out" "ok: 80000 rules in 1 file" "10 MB summary"
awk 'BEGIN { for (i = 0; i < 700000; i++) print "@@ bogus ###" }' | tr '#' '$' >"$tmp/bignonsense.vgl"
expect 1 "10 MB of nonsense" -- "$vigil" check "$tmp/bignonsense.vgl"
grep_in "$tmp/err" "bignonsense.vgl:1:4: error: expected 'rule' or 'list', found 'bogus'" "nonsense message"
awk 'BEGIN { for (i = 0; i < 500000; i++) printf "rule r%d { where amout > %d }\n", i, i }' >"$tmp/manyerrors.vgl"
expect 1 "a 10 MB file of rules with a mistake each" -- "$vigil" check "$tmp/manyerrors.vgl"
grep_in "$tmp/err" "manyerrors.vgl: error: too many errors; stopping" "error limit"
grep_in "$tmp/err" "^100 errors generated.$" "error count at the limit"

# --- vigil gen and vigil replay ----------------------------------------------------
expect 0 "gen --help" -- "$vigil" gen --help
grep_in "$tmp/out" "usage: vigil gen" "gen --help"
expect 0 "replay --help" -- "$vigil" replay --help
grep_in "$tmp/out" "usage: vigil replay" "replay --help"
expect 0 "gen csv" -- "$vigil" gen --accounts 300 --events 20000 --seed 5 --out "$tmp/g.csv"
expect 0 "gen csv again" -- "$vigil" gen --accounts 300 --events 20000 --seed 5 --out "$tmp/g2.csv"
cmp -s "$tmp/g.csv" "$tmp/g2.csv" && ok || bad "gen is not reproducible"
expect 0 "gen jsonl" -- "$vigil" gen --accounts 300 --events 20000 --seed 5 --out "$tmp/g.jsonl"
expect 0 "gen pb" -- "$vigil" gen --accounts 300 --events 20000 --seed 5 --out "$tmp/g.pb"
expect 64 "gen with a bad rate" -- "$vigil" gen --fraud-rate 2
# the event array grows between a new payee and its confirmation here (a
# pointer kept across the growth once crashed gen)
expect 0 "gen across array growth" -- "$vigil" gen --accounts 20000 --events 150000 --seed 5 \
    --out "$tmp/big.csv"
[ "$(wc -l <"$tmp/big.csv")" -gt 150000 ] && ok || bad "gen across array growth: short output"
rm -f "$tmp/big.csv"
for f in csv jsonl pb; do
    expect 0 "replay $f" -- "$vigil" replay -q --rules "$top/rules/examples" --input "$tmp/g.$f" --out "$tmp/alerts.$f"
done
[ -s "$tmp/alerts.csv" ] && ok || bad "the examples raise no alert on generated data"
cmp -s "$tmp/alerts.csv" "$tmp/alerts.jsonl" && ok || bad "csv and jsonl inputs give different alerts"
cmp -s "$tmp/alerts.csv" "$tmp/alerts.pb" && ok || bad "csv and pb inputs give different alerts"
# rules that see unset fields: their zero value must be the same in every format
cat >"$tmp/unset.vgl" <<'EOF2'
rule km { key account_id + ":" + merchant_id when count() over 1h >= 2 }
rule nocp { where counterparty_id == "" and amount > 2000 }
rule nochan { where channel == CHANNEL_UNSPECIFIED }
rule nocard { key card_id when count() over 1d >= 3 }
rule logins { on event where kind == "login" and ip == "" and not success }
EOF2
for f in csv jsonl pb; do
    expect 0 "replay $f (unset fields)" -- "$vigil" replay -q --rules "$tmp/unset.vgl" --input "$tmp/g.$f" --out "$tmp/unset.$f"
done
[ -s "$tmp/unset.csv" ] && ok || bad "the unset-field rules raise no alert"
cmp -s "$tmp/unset.csv" "$tmp/unset.jsonl" && ok || bad "csv and jsonl give different alerts on unset fields"
cmp -s "$tmp/unset.csv" "$tmp/unset.pb" && ok || bad "csv and pb give different alerts on unset fields"
expect 0 "replay twice" -- "$vigil" replay -q --rules "$top/rules/examples" --input "$tmp/g.csv" --out "$tmp/alerts2.csv"
cmp -s "$tmp/alerts.csv" "$tmp/alerts2.csv" && ok || bad "two replays differ"
expect 0 "replay with labels" -- "$vigil" replay --rules "$top/rules/examples" --input "$tmp/g.csv" --label is_fraud --out /dev/null
grep_in "$tmp/err" "precision    recall" "labels give precision and recall"
grep_in "$tmp/err" "velocity_cnp  *[0-9]* *[0-9]* *0 *1.000" "velocity bursts are found with full precision"
# every scenario gen injects is something an example rule can see
for rule in blocked_merchant high_risk_country_cash new_country_login gambling_merchant many_cards_one_device first_time_country disposable_email scripted_user_agent card_testing takeover_sequence unconfirmed_payee; do
    grep_in "$tmp/err" "$rule  *[1-9][0-9]* *[0-9]* *0 *1.000" "gen's scenarios make $rule alert, every alert on fraud"
done
# mule_cash_out's first step is keyed by the counterparty: most transactions
# have none, and the summary counts them as empty keys
grep_in "$tmp/err" "mule_cash_out  *[1-9][0-9]* *[0-9]* *[1-9][0-9]* *1.000" "gen's mule cash-outs are found, every alert on fraud"
# --state: a replay in two halves equals one replay of the whole; a second
# run of the same events is all duplicates
head -n 10001 "$tmp/g.csv" >"$tmp/half1.csv"
{ head -n 1 "$tmp/g.csv"; tail -n +10002 "$tmp/g.csv"; } >"$tmp/half2.csv"
expect 0 "replay the first half with --state" -- "$vigil" replay -q --rules "$top/rules/examples" --input "$tmp/half1.csv" --state "$tmp/state" --out "$tmp/a1"
expect 0 "replay the second half with --state" -- "$vigil" replay -q --rules "$top/rules/examples" --input "$tmp/half2.csv" --state "$tmp/state" --out "$tmp/a2"
cat "$tmp/a1" "$tmp/a2" >"$tmp/a12"
cmp -s "$tmp/a12" "$tmp/alerts.csv" && ok || bad "two halves with --state differ from the whole"
[ -f "$tmp/state/data.mdb" ] && ok || bad "--state left no LMDB environment"
{ head -n 1 "$tmp/g.csv"; tail -n 2000 "$tmp/g.csv"; } >"$tmp/last.csv"
expect 0 "the last events again, same state" -- "$vigil" replay --rules "$top/rules/examples" --input "$tmp/last.csv" --state "$tmp/state" --out "$tmp/a3"
grep_in "$tmp/err" "2000 events read, 0 accepted, 0 rejected, 2000 duplicates, 0 alerts" "resent events (within the 7-day horizon) are duplicates"
mkdir "$tmp/tmpdir"
TMPDIR="$tmp/tmpdir" expect 0 "a small cache: state goes to LMDB and back" -- "$vigil" replay -q --rules "$top/rules/examples" --input "$tmp/g.csv" --cache-keys 50 --out "$tmp/a4"
cmp -s "$tmp/a4" "$tmp/alerts.csv" && ok || bad "--cache-keys 50 changes the alerts"
[ -z "$(ls -A "$tmp/tmpdir")" ] && ok || bad "a temporary state folder was left behind in \$TMPDIR"
expect 66 "replay of a missing file" -- "$vigil" replay --rules "$top/rules/examples" --input "$tmp/none.csv"
expect 64 "replay of a file of no known format" -- "$vigil" replay --rules "$top/rules/examples" --input "$tmp/g.txt"
printf 'a,b\n1,2\n' >"$tmp/nofields.csv"
expect 65 "replay of a CSV without field columns" -- "$vigil" replay --rules "$top/rules/examples" --input "$tmp/nofields.csv"
grep_in "$tmp/err" "give a map file with --map" "no-field CSV says what to do"
printf 'rule big { key account_id where amount > 1 }\n' >"$tmp/big.vgl"
printf 'account_id = a\namount = b\ncurrency = "EUR"\ntime = a * 1h\n' >"$tmp/nofields.map"
expect 0 "a map over a CSV whose columns name no field" -- "$vigil" replay -q --rules "$tmp/big.vgl" --input "$tmp/nofields.csv" --map "$tmp/nofields.map"
grep_in "$tmp/out" '"key":"1","time_ms":3600000,"event_id":"1"' "the map sets key, time and id (row number)"
expect 0 "row-number ids, first file" -- "$vigil" replay -q --rules "$tmp/big.vgl" --input "$tmp/nofields.csv" --map "$tmp/nofields.map" --state "$tmp/rowstate"
expect 0 "row-number ids, second file" -- "$vigil" replay --rules "$tmp/big.vgl" --input "$tmp/nofields.csv" --map "$tmp/nofields.map" --state "$tmp/rowstate" --out /dev/null
grep_in "$tmp/err" "ids are row numbers here" "duplicates from row-number ids are explained"
# patterns across files: partial matches and pending deadlines live in --state
pn="$top/tests/golden/replay/pattern_not"
expect 0 "patterns over one file, flushed" -- "$vigil" replay -q --rules "$pn/rules.vgl" --input "$pn/events.jsonl" --flush --out "$tmp/pw"
head -n 14 "$pn/events.jsonl" >"$tmp/p1.jsonl"
tail -n +15 "$pn/events.jsonl" >"$tmp/p2.jsonl"
expect 0 "patterns, first half" -- "$vigil" replay -q --rules "$pn/rules.vgl" --input "$tmp/p1.jsonl" --state "$tmp/pstate" --out "$tmp/pa"
expect 0 "patterns, second half, flushed" -- "$vigil" replay -q --rules "$pn/rules.vgl" --input "$tmp/p2.jsonl" --state "$tmp/pstate" --flush --out "$tmp/pb"
cat "$tmp/pa" "$tmp/pb" >"$tmp/pab"
[ -s "$tmp/pw" ] && cmp -s "$tmp/pab" "$tmp/pw" && ok || bad "patterns split over two --state runs differ from one run"
grep -q '"event_id":"n2-p"' "$tmp/pb" && ok || bad "a deadline pending at the end of the first run fires in the second"
expect 0 "--flush is accepted (when rules have no deadlines)" -- "$vigil" replay -q --flush --rules "$tmp/big.vgl" --input "$tmp/nofields.csv" --map "$tmp/nofields.map"
expect 66 "replay --config of a missing file" -- "$vigil" replay --config "$tmp/c.yaml" --rules "$tmp/big.vgl" --input "$tmp/nofields.csv"
printf 'decisions: {review_at: 5, block_at: 10}\nfoo: 1\n' >"$tmp/c.yaml"
expect 78 "replay --config with an unknown key" -- "$vigil" replay --config "$tmp/c.yaml" --rules "$tmp/big.vgl" --input "$tmp/nofields.csv"
grep_in "$tmp/err" "c.yaml:2:1: error: unknown key 'foo'" "a config error names the line"
printf 'decisions: {review_at: 5, block_at: 10}\n' >"$tmp/c.yaml"
printf 'rule big { key account_id where amount > 1 score 7 }\n' >"$tmp/big7.vgl"
expect 0 "replay --decisions with thresholds from --config" -- "$vigil" replay -q --decisions --config "$tmp/c.yaml" --rules "$tmp/big7.vgl" --input "$tmp/nofields.csv" --map "$tmp/nofields.map"
grep_in "$tmp/out" '"action":"review","score":7' "review_at 5 makes a score of 7 a review"
printf 'account_id = nameOrg\n' >"$tmp/typo.map"
expect 1 "a map naming a missing column" -- "$vigil" replay -q --rules "$tmp/big.vgl" --input "$tmp/nofields.csv" --map "$tmp/typo.map"
grep_in "$tmp/err" "typo.map:1:14: error: the CSV header has no column 'nameOrg'" "the map error says where and what"
expect 64 "replay without rules" -- "$vigil" replay --input "$tmp/g.csv"
expect 64 "--map with JSONL input" -- "$vigil" replay --rules "$tmp/big.vgl" --input "$tmp/g.jsonl" --map "$tmp/nofields.map"
grep_in "$tmp/err" "map applies to CSV input only" "--map on JSONL says why"
expect 64 "standard input without --format" -- sh -c "\"$vigil\" replay --rules \"$tmp/big.vgl\" --input - <\"$tmp/g.csv\""
grep_in "$tmp/err" "say its format with --format" "stdin without --format says what to do"
expect 66 "a missing map file" -- "$vigil" replay --rules "$tmp/big.vgl" --input "$tmp/nofields.csv" --map "$tmp/nosuch.map"
[ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q "nosuch.map" "$tmp/err" && ok || bad "a missing map file is one message naming the map"
expect 66 "alerts to a full disk" -- "$vigil" replay -q --rules "$top/rules/examples" --input "$tmp/g.csv" --out /dev/full
grep_in "$tmp/err" "writing the alerts to /dev/full failed" "a failed write says so"
head -c $(($(wc -c <"$tmp/g.pb") - 7)) "$tmp/g.pb" >"$tmp/cut.pb"
expect 0 "a truncated pb file" -- "$vigil" replay --rules "$tmp/big.vgl" --input "$tmp/cut.pb" --out /dev/null
grep_in "$tmp/err" ", 1 rejected," "the cut-off last message is counted as rejected"
grep_in "$tmp/err" "cut.pb:[0-9]*: the file ends inside a message" "the cut-off message is named"
printf 'id,time,account_id,amount,amount\n1,1,a,1,2\n' >"$tmp/twice.csv"
expect 65 "a header naming a field twice" -- "$vigil" replay --rules "$tmp/big.vgl" --input "$tmp/twice.csv"
grep_in "$tmp/err" "names 'amount' twice (columns 4 and 5)" "the repeated column is named"
printf 'step,type,amount\n1,PAYMENT,5\n' >"$tmp/notime.csv"
expect 65 "a header without time" -- "$vigil" replay --rules "$tmp/big.vgl" --input "$tmp/notime.csv"
grep_in "$tmp/err" "no 'time' column" "a missing time column is one clear error"
printf '{"id":"1","time":1000,"account_id":"a","amount":5,"stream":" TXN "}\n{"id":"2","time":2e3,"account_id":"a","amount":5,"fraud":1.0}\n' >"$tmp/lab.jsonl"
expect 0 "JSONL with a partly absent label" -- "$vigil" replay --rules "$tmp/big.vgl" --input "$tmp/lab.jsonl" --label fraud --out "$tmp/lab.out"
grep_in "$tmp/err" "2 accepted" "stream any case, time 2e3"
grep_in "$tmp/err" "1 events labelled fraud" "a label of 1.0 is fraud"
grep_in "$tmp/err" "1 events have no member 'fraud'" "rows without the label are counted and said"
printf '{"id":"1","time":1000,"account_id":"a","amount":1.005,"currency":"EUR"}\n' >"$tmp/dec.jsonl"
# a file that is not of its format: not one event, most rows not even of the format
head -n 50 "$tmp/g.csv" >"$tmp/csv-as.pb"
expect 65 "a CSV file named .pb" -- "$vigil" replay -q --rules "$tmp/big.vgl" --input "$tmp/csv-as.pb"
grep_in "$tmp/err" "is it really length-delimited protobuf?" "a CSV named .pb: the error says what to check"
expect 65 "a CSV file read as JSONL" -- "$vigil" replay -q --rules "$tmp/big.vgl" --input "$tmp/g.csv" --format jsonl
grep_in "$tmp/err" "no row of '$tmp/g.csv' is an event (the first: $tmp/g.csv:1: not JSON" "CSV as JSONL quotes the first reason"
head -c 4000 /dev/zero | tr '\0' '\377' >"$tmp/random.pb"
expect 65 "bytes that are no length prefix, as protobuf" -- "$vigil" replay -q --rules "$tmp/big.vgl" --input "$tmp/random.pb"
expect 0 "a JSON amount with too many decimals" -- "$vigil" replay --rules "$tmp/big.vgl" --input "$tmp/dec.jsonl" --out /dev/null
grep_in "$tmp/err" "amount '1.005' has more decimals than EUR allows (2)" "the amount is quoted as written"
printf 'rule r { where amout > 1 }\n' >"$tmp/bad.vgl"
expect 1 "replay with rules that do not compile" -- "$vigil" replay --rules "$tmp/bad.vgl" --input "$tmp/g.csv"

# a time in microseconds is refused as the live engine refuses it (more than
# a day ahead of the clock), not taken to move the event clock years ahead
printf 'id,time,stream,account_id,type,amount,currency\nu1,1714550400000000,txn,a1,PURCHASE,10.00,EUR\nu2,2024-05-01T00:00:00Z,txn,a1,PURCHASE,10.00,EUR\n' >"$tmp/us.csv"
expect 0 "replay of a time in microseconds" -- "$vigil" replay --rules "$top/rules/examples" --input "$tmp/us.csv" --out /dev/null
grep_in "$tmp/err" "2 events read, 1 accepted, 1 rejected" "a time in microseconds: only that row is refused"
grep_in "$tmp/err" "us.csv:2: the event's time is more than a day ahead" "a time in microseconds: the reason"

# replay --sink: the alerts also go through the config's sinks
printf 'sinks:\n  - {type: jsonl, path: a.jsonl}\n  - {type: jsonl, path: b.jsonl, rules: [no_such_rule]}\n' >"$tmp/sinks.yaml"
expect 0 "replay --sink jsonl" -- "$vigil" replay --rules "$top/rules/examples" --input "$tmp/g.csv" \
    --config "$tmp/sinks.yaml" --sink jsonl --out "$tmp/sink-want.jsonl"
# shadow-mode alerts go only to sinks that ask for them (SPEC §2)
grep -v '"shadow":true' "$tmp/sink-want.jsonl" >"$tmp/sink-want-active.jsonl"
cmp -s "$tmp/a.jsonl" "$tmp/sink-want-active.jsonl" && ok || bad "replay --sink jsonl: the file differs from the alerts"
grep -q '"shadow":true' "$tmp/sink-want.jsonl" && ok || bad "replay --sink: no shadow-mode alert to leave out"
[ -s "$tmp/a.jsonl" ] && ok || bad "replay --sink jsonl: no alerts to compare"
[ ! -s "$tmp/b.jsonl" ] && ok || bad "a sink's rules filter let alerts through"
grep_in "$tmp/err" "sink jsonl:$tmp/a.jsonl: [0-9]* delivered, 0 given up" "replay --sink counts deliveries"
# a webhook that is down: replay waits --sink-wait for progress, then says
# what was not delivered and exits 69 (nothing is kept: replay has no outbox)
echo whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw >"$tmp/hook.secret"
printf 'sinks:\n  - {type: webhook, url: "http://127.0.0.1:9/h", secret_files: [hook.secret], allow_private: true}\n' \
    >"$tmp/down.yaml"
expect 69 "replay --sink to a webhook that is down" -- "$vigil" replay -q --rules "$top/rules/examples" \
    --input "$tmp/g.csv" --config "$tmp/down.yaml" --sink webhook --sink-wait 1 --out /dev/null
grep_in "$tmp/err" "[1-9][0-9]* not delivered in --sink-wait" "replay --sink to a webhook that is down: the count"
grep_in "$tmp/err" "not every alert reached its sinks" "replay --sink to a webhook that is down: the summary"
expect 64 "--sink without --config" -- "$vigil" replay --rules "$top/rules/examples" --input "$tmp/g.csv" --sink jsonl
expect 64 "--sink of no such sink" -- "$vigil" replay --rules "$top/rules/examples" --input "$tmp/g.csv" \
    --config "$tmp/sinks.yaml" --sink webhook
grep_in "$tmp/err" "has no such sink (its sinks: jsonl:$tmp/a.jsonl jsonl:$tmp/b.jsonl)" "--sink names the sinks there are"

# regex abuse: a catastrophic pattern over a long field stays within the match
# limit, is counted, and the replay goes on
printf 'rule rx {\n  on txn\n  key account_id\n  when merchant_name ~ /(a+)+$/\n}\n' >"$tmp/rx.vgl"
long=$(head -c 20000 /dev/zero | tr '\0' a)
printf 'id,time,account_id,amount,currency,merchant_name\n' >"$tmp/rx.csv"
for k in 1 2 3 4 5; do printf 'rx-%s,2024-05-01T10:00:0%sZ,a,1,EUR,%s!\n' "$k" "$k" "$long" >>"$tmp/rx.csv"; done
printf 'rx-6,2024-05-01T10:00:06Z,a,1,EUR,aaa\n' >>"$tmp/rx.csv"
t0=$(date +%s)
expect 0 "a catastrophic regex" -- "$vigil" replay --rules "$tmp/rx.vgl" --input "$tmp/rx.csv"
[ $(($(date +%s) - t0)) -lt 10 ] && ok || bad "a catastrophic regex took $(($(date +%s) - t0)) s"
grep_in "$tmp/err" "5 regex matches stopped at their match limit" "the match limit hits are counted"
[ "$(wc -l <"$tmp/out")" = 1 ] && ok || bad "the regex rule's one honest match: $(cat "$tmp/out")"

echo "cli: $n checks, $fails failed"
[ "$fails" -eq 0 ]
