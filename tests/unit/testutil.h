/*
 * testutil.h - helpers shared by the unit tests: compile rule text held in a
 * string and capture the diagnostics, rendered as `vigil check` prints them.
 */
#ifndef VG_TESTUTIL_H
#define VG_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "vg_rules.h"

typedef struct captured {
    vg_buf text;     /* every diagnostic, rendered without color */
    unsigned errors; /* error diagnostics seen (the "too many" line included) */
    unsigned notes;
} captured;

static inline void
capture_diag(void *ctx, const vg_diag *d)
{
    captured *c = ctx;
    vg_diag_render(d, false, &c->text);
    if (d->severity == VG_SEV_ERROR)
        c->errors++;
    else if (d->severity == VG_SEV_NOTE)
        c->notes++;
}

/* Compiles src as file "t.vgl" with the given schema (NULL: default). Returns
 * the result; *rs gets the rule set on success (caller unrefs), diagnostics
 * land in *cap (caller frees cap->text). */
static inline vg_err
compile_with(const vg_schema *schema, const char *src, captured *cap, vg_ruleset **rs)
{
    memset(cap, 0, sizeof *cap);
    vg_buf_append(&cap->text, "", 0);
    vg_compile_opts opts = {
        .schema = schema, .diag = capture_diag, .diag_ctx = cap, .no_list_files = true};
    vg_source s = {"t.vgl", src, strlen(src)};
    return vg_ruleset_compile_sources(&s, 1, &opts, NULL, rs);
}

/* Asserts that src compiles; prints the diagnostics when it does not. */
#define assert_compiles(src)                                                                       \
    do {                                                                                           \
        captured cap_;                                                                             \
        vg_ruleset *rs_ = NULL;                                                                    \
        vg_err e_ = compile_with(NULL, (src), &cap_, &rs_);                                        \
        if (e_ != VG_OK)                                                                           \
            fail_msg("expected to compile:\n%s\ngot:\n%s", (src), cap_.text.data);                 \
        vg_ruleset_unref(rs_);                                                                     \
        vg_buf_free(&cap_.text);                                                                   \
    } while (0)

/* Asserts that src fails with exactly one error whose text contains `want`
 * (and, when note is not NULL, a note containing it). */
static inline void
check_one_error(const char *src, const char *want, const char *note, const char *file, int line)
{
    captured cap;
    vg_ruleset *rs = NULL;
    vg_err e = compile_with(NULL, src, &cap, &rs);
    bool ok = e == VG_ECOMPILE && cap.errors == 1 && strstr(cap.text.data, want) != NULL;
    if (ok && note != NULL)
        ok = strstr(cap.text.data, note) != NULL;
    if (!ok)
        fail_msg("%s:%d: source:\n%s\nexpected one error with '%s'%s%s, got (%u errors):\n%s", file,
                 line, src, want, note ? " and note " : "", note ? note : "", cap.errors,
                 cap.text.data);
    vg_ruleset_unref(rs);
    vg_buf_free(&cap.text);
}
#define assert_one_error(src, want, note) check_one_error((src), (want), (note), __FILE__, __LINE__)

#endif
