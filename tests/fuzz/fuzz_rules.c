/*
 * fuzz_rules.c - libFuzzer target for the rule compiler front end: lexer,
 * parser, checker (and pcre2 compilation of regex literals), on one file.
 *
 *   cmake -S . -B build/fuzz -DVG_FUZZ=ON -DCMAKE_C_COMPILER=clang
 *   cmake --build build/fuzz --target fuzz_rules
 *   mkdir -p /tmp/corpus && build/fuzz/tests/fuzz_rules /tmp/corpus tests/fuzz/corpus/rules
 *
 * Diagnostics are rendered (so the renderer is fuzzed too) and dropped. List
 * files are refused: the input must not name paths on this machine.
 */
#include <stddef.h>
#include <stdint.h>

#include "vg_rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
render(void *ctx, const vg_diag *d)
{
    vg_buf *b = ctx;
    b->len = 0;
    vg_diag_render(d, (d->line & 1) != 0, b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vg_buf out = {0};
    vg_compile_opts opts = {.diag = render, .diag_ctx = &out, .no_list_files = true};
    vg_source src = {"fuzz.vgl", (const char *)data, size};
    vg_ruleset *rs = NULL;
    if (vg_ruleset_compile_sources(&src, 1, &opts, NULL, &rs) == VG_OK)
        vg_ruleset_unref(rs);
    vg_buf_free(&out);
    return 0;
}
