#!/bin/sh
# The whole test suite, as CI runs it (.ci/run calls this):
#   1. a gcc build with -Werror, and every test (unit, golden, CLI, layering,
#      fuzz regressions);
#   2. the same under AddressSanitizer + UndefinedBehaviorSanitizer;
#   3. a clang build of the libFuzzer target, fuzzing the rule compiler for
#      VG_FUZZ_SECONDS (default 60) from the seed corpus.
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

step "fuzz the rule compiler for ${fuzz_seconds}s (clang, libFuzzer, ASan + UBSan)"
CC=clang cmake -S . -B build/ci-fuzz -DCMAKE_BUILD_TYPE=Debug -DVG_WERROR=ON -DVG_FUZZ=ON \
    -DVG_TESTS=OFF >/dev/null
cmake --build build/ci-fuzz -j"$jobs" --target fuzz_rules
mkdir -p build/ci-fuzz/work build/ci-fuzz/artifacts
# new inputs go to build/ci-fuzz/work; the committed corpus is only read
build/ci-fuzz/tests/fuzz_rules -max_total_time="$fuzz_seconds" -timeout=10 -max_len=4096 \
    -rss_limit_mb=2048 -dict=tests/fuzz/rules.dict -print_final_stats=1 \
    -artifact_prefix=build/ci-fuzz/artifacts/ build/ci-fuzz/work tests/fuzz/corpus/rules \
    2>build/ci-fuzz/fuzz.log || {
    tail -50 build/ci-fuzz/fuzz.log
    echo "fuzz: a finding is in build/ci-fuzz/artifacts/; add it to tests/fuzz/regressions/rules/"
    exit 1
}
grep -E "^stat::number_of_executed_units|^#[0-9]+.*DONE" build/ci-fuzz/fuzz.log || true

step "all tests passed"
