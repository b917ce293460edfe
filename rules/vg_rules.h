/*
 * vg_rules.h - the rule language: compile rule files into a checked rule set.
 *
 * Pipeline (one file per stage): lex.c -> parse.c -> check.c, with diag.c
 * rendering diagnostics and ruleset.c tying the stages together. Later stages
 * (code generation, the VM) take the checked rule set from here.
 *
 * Diagnostics never go to a stream directly: each is handed to the caller's
 * vg_diag_fn as it is found, so the CLI renders text and tests capture them.
 */
#ifndef VG_RULES_H
#define VG_RULES_H

#include <stdio.h>

#include "vg_base.h"
#include "vg_schema.h"

typedef enum vg_severity {
    VG_SEV_ERROR = 0,
    VG_SEV_NOTE, /* more about the error before it */
} vg_severity;

/* One diagnostic. Every pointer is valid only during the callback. */
typedef struct vg_diag {
    vg_severity severity;
    const char *file; /* as given (path or source name); NULL: no location */
    unsigned line;    /* 1-based; 0 when there is no location */
    unsigned col;     /* 1-based, in bytes */
    unsigned end_col; /* exclusive, in bytes, on the same line; >= col */
    const char *message;
    const char *line_text; /* the source line without its newline, or NULL */
    size_t line_len;       /* bytes */
    bool show_source;      /* false for a note at its error's own location */
} vg_diag;

typedef void (*vg_diag_fn)(void *ctx, const vg_diag *d);

/* Renders d as text (clang style) and appends it to out:
 *     file:line:col: error: message
 *       <source line>
 *             ^~~~~
 * With color, severities and carets get ANSI colors. */
vg_err vg_diag_render(const vg_diag *d, bool color, vg_buf *out);

/* Writes "N error(s) generated." to f, as clang ends; nothing for 0. */
void vg_diag_summary(FILE *f, unsigned errors);

/* The closest of cands[0..n) to name[0..len) by edit distance (ASCII case
 * folded), or NULL when none is close enough to suggest ("did you mean"). */
const char *vg_suggest(const char *name, size_t len, const char *const *cands, size_t n);

typedef struct vg_compile_opts {
    const vg_schema *schema; /* NULL: vg_schema_default() */
    vg_diag_fn diag;         /* NULL: diagnostics are only counted */
    void *diag_ctx;
    unsigned max_errors; /* per file before "too many errors"; 0 means 100 */
    bool no_list_files;  /* refuse `list X = file "..."` (fuzzing, sandboxes) */
} vg_compile_opts;

/* A rule source held in memory. name is what diagnostics print; list files
 * are looked up relative to its folder. */
typedef struct vg_source {
    const char *name;
    const char *text;
    size_t len; /* bytes */
} vg_source;

/* A compiled, immutable rule set, shared by reference count. */
typedef struct vg_ruleset vg_ruleset;

/* Compiles rule files and folders. A folder contributes every `*.vgl` below
 * it, recursively; all files are then compiled in path order (byte order),
 * which is the rule order of SPEC §3. Returns:
 *   VG_OK       *out holds the rule set (refcount 1);
 *   VG_ECOMPILE the rules have errors, reported to opts->diag;
 *   VG_ENOENT / VG_EIO  a path could not be opened or read (reported to
 *               opts->diag without a location; errno is kept);
 *   VG_EINVAL   no rule files were found (reported likewise);
 *   VG_ENOMEM.
 * *nerrors, when not NULL, receives the number of errors reported. */
vg_err vg_ruleset_compile(const char *const *paths, size_t npaths, const vg_compile_opts *opts,
                          unsigned *nerrors, vg_ruleset **out);

/* Compiles sources held in memory, in the order given. Same results. */
vg_err vg_ruleset_compile_sources(const vg_source *srcs, size_t nsrcs, const vg_compile_opts *opts,
                                  unsigned *nerrors, vg_ruleset **out);

vg_ruleset *vg_ruleset_ref(vg_ruleset *rs);
void vg_ruleset_unref(vg_ruleset *rs); /* NULL is a no-op */

/* Introspection (pointers live as long as the rule set). */
size_t vg_ruleset_nrules(const vg_ruleset *rs);
size_t vg_ruleset_nlists(const vg_ruleset *rs);
size_t vg_ruleset_nfiles(const vg_ruleset *rs); /* rule files, not list files */
const char *vg_ruleset_rule_name(const vg_ruleset *rs, size_t i);

#endif
