/*
 * fuzz_map.c - libFuzzer target for CSV input through a map file (SPEC §4):
 * the map compiler (rules/ in map mode: column names, conversions) and the
 * reader applying its programs to each row (engine/input.c).
 *
 *   CC=clang cmake -S . -B build/fuzz -DVG_FUZZ=ON -DVG_TESTS=OFF
 *   cmake --build build/fuzz --target fuzz_map
 *   mkdir -p /tmp/corpus-map
 *   build/fuzz/tests/fuzz_map -max_total_time=600 -dict=tests/fuzz/events.dict \
 *       /tmp/corpus-map tests/fuzz/corpus/map
 *   (or: sh tools/fuzz.sh map 600)
 *
 * The input is the map file, a blank line ("\n\n"), then the CSV file; each
 * goes to a memfd of its own. Without the separator the input is not used.
 * Map diagnostics are rendered and dropped.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_reader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *sep = memmem(data, size, "\n\n", 2);
    if (sep == NULL)
        return 0;
    size_t maplen = (size_t)(sep - data) + 1; /* the map keeps its last newline */
    char map_path[64];
    int mapfd = fuzz_memfd("fuzz-map", data, maplen, map_path, sizeof map_path);
    if (mapfd < 0)
        return 0;
    vg_buf diags = {0};
    unsigned map_errors = 0;
    bool map_failed = false;
    vg_reader_opts opts = {.format = VG_FMT_CSV,
                           .map_path = map_path,
                           .diag = fuzz_reader_diag,
                           .diag_ctx = &diags,
                           .map_errors = &map_errors,
                           .map_failed = &map_failed};
    fuzz_reader_bytes(sep + 2, size - maplen - 1, &opts);
    vg_buf_free(&diags);
    close(mapfd);
    return 0;
}
