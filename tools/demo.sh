#!/bin/sh
# The main job on its defaults, on a fresh Debian 12 machine (as root):
# install what is missing, build, generate a labelled synthetic stream
# (vigil gen), replay it through the example rules (rules/examples/) and show
# the alerts with each rule's precision and recall.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
sh tools/deps.sh
echo "== building (build/release)"
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DVG_TESTS=OFF >/dev/null
cmake --build build/release -j"$(nproc)" >/dev/null
vigil=build/release/tools/vigil
demo=build/demo
mkdir -p "$demo"

echo
echo "== vigil check rules/examples"
$vigil check rules/examples

echo
echo "== vigil gen: 100,000 events over 2,000 accounts, 1% in fraud scenarios"
$vigil gen --accounts 2000 --events 100000 --seed 7 --out "$demo/events.csv"

echo
echo "== vigil replay --rules rules/examples --input $demo/events.csv --label is_fraud --flush"
$vigil replay --rules rules/examples --input "$demo/events.csv" --label is_fraud --flush \
    --out "$demo/alerts.jsonl"

echo
echo "== the first alerts ($demo/alerts.jsonl holds all of them)"
head -n 3 "$demo/alerts.jsonl"

echo
echo "The rule language: docs/language.md. Try your own rules:"
echo "  $vigil replay --rules YOUR_RULES.vgl --input $demo/events.csv --label is_fraud"
