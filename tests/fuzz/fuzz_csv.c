/*
 * fuzz_csv.c - libFuzzer target for the CSV input reader (engine/input.c):
 * the header row, RFC 4180 quoting, cell conversion to each field's type,
 * money scaled by the row's currency, attr.NAME columns, the stream column.
 *
 *   CC=clang cmake -S . -B build/fuzz -DVG_FUZZ=ON -DVG_TESTS=OFF
 *   cmake --build build/fuzz --target fuzz_csv
 *   mkdir -p /tmp/corpus-csv
 *   build/fuzz/tests/fuzz_csv -max_total_time=600 -dict=tests/fuzz/events.dict \
 *       /tmp/corpus-csv tests/fuzz/corpus/csv
 *   (or: sh tools/fuzz.sh csv 600)
 *
 * The input is the whole file, read to its end over the default schema. When
 * it names an is_fraud column it is read a second time with --label is_fraud.
 * Map files are fuzz_map's.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_reader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vg_reader_opts opts = {.format = VG_FMT_CSV};
    fuzz_reader_bytes(data, size, &opts);
    if (memmem(data, size, "is_fraud", 8) != NULL) {
        opts.label = "is_fraud";
        fuzz_reader_bytes(data, size, &opts);
    }
    return 0;
}
