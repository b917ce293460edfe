#!/bin/sh
# The whole test suite, as CI runs it (.ci/run calls this):
#   1. a gcc build with -Werror, and every test (unit, golden, CLI, layering,
#      fuzz regressions);
#   2. the same under AddressSanitizer + UndefinedBehaviorSanitizer;
#   3. a clang build of every libFuzzer target (tests/fuzz/fuzz_*.c), then
#      VG_FUZZ_SECONDS (default 60) of fuzzing from the seed corpora, in
#      rotation: each run fuzzes two targets for half the time each, the pair
#      chosen by the day of the year (targets in name order, day d takes
#      numbers 2d and 2d+1 modulo their count), so every target is fuzzed
#      every few days. VG_FUZZ_TARGETS="pb csv" picks them instead (or "all":
#      VG_FUZZ_SECONDS / 7 each); longer runs: tools/fuzz.sh.
# Installs missing Debian packages first (tools/deps.sh).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=$(nproc)
fuzz_seconds=${VG_FUZZ_SECONDS:-60}

sh tools/deps.sh

step() { printf '\n== %s\n' "$*"; }

step "build (gcc, -Werror)"
cmake -S . -B build/ci -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVG_WERROR=ON >/dev/null
cmake --build build/ci -j"$jobs"
step "tests"
ctest --test-dir build/ci --output-on-failure -j"$jobs"

step "build (ASan + UBSan)"
cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DVG_WERROR=ON -DVG_SANITIZE=ON >/dev/null
cmake --build build/asan -j"$jobs"
step "tests under ASan + UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build/asan --output-on-failure -j"$jobs"

targets=$(for f in tests/fuzz/fuzz_*.c; do f=${f##*/fuzz_}; echo "${f%.c}"; done)
if [ "${VG_FUZZ_TARGETS:-}" = all ]; then
    pick=$targets
elif [ -n "${VG_FUZZ_TARGETS:-}" ]; then
    pick=$VG_FUZZ_TARGETS
else
    n=$(echo "$targets" | wc -l)
    day=$(date -u +%j | sed 's/^0*//')
    first=$(((${day:-0} * 2) % n + 1))
    second=$(((${day:-0} * 2 + 1) % n + 1))
    pick=$(echo "$targets" | sed -n "${first}p;${second}p" | tr '\n' ' ')
fi
npick=0
for t in $pick; do npick=$((npick + 1)); done
each=$((fuzz_seconds / npick))
[ "$each" -ge 1 ] || each=1
step "fuzz ${pick% } for ${each}s each (clang, libFuzzer, ASan + UBSan)"
CC=clang cmake -S . -B build/ci-fuzz -DCMAKE_BUILD_TYPE=Debug -DVG_WERROR=ON -DVG_FUZZ=ON \
    -DVG_TESTS=OFF >/dev/null
# every target builds, whichever are fuzzed today
fuzz_bins=$(for t in $targets; do printf 'fuzz_%s ' "$t"; done)
# shellcheck disable=SC2086 # a list of targets
cmake --build build/ci-fuzz -j"$jobs" --target $fuzz_bins
for t in $pick; do
    case $t in
    csv | jsonl | map) dict=tests/fuzz/events.dict ;;
    *) dict=tests/fuzz/$t.dict ;;
    esac
    [ -f "$dict" ] || dict=
    mkdir -p "build/ci-fuzz/work/$t" "build/ci-fuzz/artifacts/$t"
    # new inputs go to build/ci-fuzz/work/; the committed corpus is only read
    "build/ci-fuzz/tests/fuzz_$t" -max_total_time="$each" -timeout=10 -max_len=4096 \
        -rss_limit_mb=2048 ${dict:+-dict=$dict} -print_final_stats=1 \
        -artifact_prefix="build/ci-fuzz/artifacts/$t/" "build/ci-fuzz/work/$t" \
        "tests/fuzz/corpus/$t" 2>"build/ci-fuzz/fuzz-$t.log" || {
        tail -50 "build/ci-fuzz/fuzz-$t.log"
        echo "fuzz: fuzz_$t found something: the input is in build/ci-fuzz/artifacts/$t/;" \
            "add it to tests/fuzz/regressions/$t/ (tests/fuzz/README.md)"
        exit 1
    }
    echo "fuzz_$t:"
    grep -E "^stat::number_of_executed_units|^stat::average_exec_per_sec|^#[0-9]+.*DONE" \
        "build/ci-fuzz/fuzz-$t.log" || true
done

step "all tests passed"
