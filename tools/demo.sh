#!/bin/sh
# The main job on its defaults: install what is missing, build, and check the
# example rule set (rules/examples/), then show what a mistake in a rule
# looks like. Run from anywhere, as root on a fresh Debian 12 machine.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
sh tools/deps.sh
echo "== building (build/release)"
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DVG_TESTS=OFF >/dev/null
cmake --build build/release -j"$(nproc)" >/dev/null
vigil=build/release/tools/vigil
echo
echo "== vigil check rules/examples"
$vigil check rules/examples
echo
echo "== a rule with mistakes, and what vigil check says about it"
demo=$(mktemp -d)
trap 'rm -rf "$demo"' EXIT
cat >"$demo/typos.vgl" <<'VGL'
rule velocity_typo {
  where chanel == ECOMMERCE and status == DECLNED
  when count() over 1h > 10 and amount > 5m
  action blok
}
VGL
cat "$demo/typos.vgl"
echo
(cd "$demo" && "$top/$vigil" check typos.vgl) || true
echo
echo "The rule language: docs/language.md. Next: write rules in a folder and run"
echo "  $vigil check YOUR_FOLDER"
