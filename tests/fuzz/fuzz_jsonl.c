/*
 * fuzz_jsonl.c - libFuzzer target for the JSONL input reader (engine/input.c,
 * jansson): one object per line, members converted to each field's type,
 * money as strings or numbers, the stream member, attrs objects.
 *
 *   CC=clang cmake -S . -B build/fuzz -DVG_FUZZ=ON -DVG_TESTS=OFF
 *   cmake --build build/fuzz --target fuzz_jsonl
 *   mkdir -p /tmp/corpus-jsonl
 *   build/fuzz/tests/fuzz_jsonl -max_total_time=600 -dict=tests/fuzz/events.dict \
 *       /tmp/corpus-jsonl tests/fuzz/corpus/jsonl
 *   (or: sh tools/fuzz.sh jsonl 600)
 *
 * The input is the whole file, read to its end over the default schema. When
 * it mentions is_fraud it is read a second time with --label is_fraud.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_reader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vg_reader_opts opts = {.format = VG_FMT_JSONL};
    fuzz_reader_bytes(data, size, &opts);
    if (memmem(data, size, "is_fraud", 8) != NULL) {
        opts.label = "is_fraud";
        fuzz_reader_bytes(data, size, &opts);
    }
    return 0;
}
