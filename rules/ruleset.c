/*
 * ruleset.c - the driver: gathers rule files, runs the stages in order and
 * owns the result (lex.c -> parse.c -> check.c, then later stages).
 *
 * Stage gating: every file is parsed (so all syntax errors are reported);
 * then lists and every rule that parsed cleanly are checked. A rule set with
 * any error is discarded.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <dirent.h>
#include <errno.h>
#include <pcre2.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rulesInt.h"

const fn_info vg_functions[FN_COUNT_] = {[FN_NONE] = {"", 0, 0, 0},
#define FN(n, lo, hi, c) [FN_##n] = {#n, lo, hi, c},
                                         VG_FUNCTIONS(FN)
#undef FN
};

fn_id
fn_lookup(const char *name, size_t len)
{
    for (int i = 1; i < FN_COUNT_; i++)
        if (strlen(vg_functions[i].name) == len && memcmp(vg_functions[i].name, name, len) == 0)
            return (fn_id)i;
    return FN_NONE;
}

struct vg_ruleset {
    atomic_int refs;
    cstate C; /* the checked tree and everything it points to */
};

void *
cstate_alloc(cstate *C, size_t size)
{
    void *p = vg_arena_alloc(C->arena, size);
    if (p == NULL)
        C->oom = true;
    return p;
}

char *
cstate_strndup(cstate *C, const char *s, size_t len)
{
    char *p = vg_arena_strndup(C->arena, s, len);
    if (p == NULL)
        C->oom = true;
    return p;
}

int
cstate_add_file(cstate *C, const char *name, const char *text, size_t len, bool is_list)
{
    if (C->nfiles == C->capfiles) {
        uint32_t cap = C->capfiles ? C->capfiles * 2 : 16;
        srcfile *v = realloc(C->files, cap * sizeof(srcfile));
        if (v == NULL) {
            C->oom = true;
            return -1;
        }
        C->files = v;
        C->capfiles = cap;
    }
    srcfile *f = &C->files[C->nfiles];
    memset(f, 0, sizeof *f);
    f->name = cstate_strndup(C, name, strlen(name));
    f->text = cstate_strndup(C, text, len);
    if (f->name == NULL || f->text == NULL)
        return -1;
    f->len = (uint32_t)len;
    f->is_list = is_list;
    if (!is_list)
        C->nrulefiles++;
    return (int)C->nfiles++;
}

void
cstate_close(cstate *C)
{
    diag_flush(C);
    for (uint32_t i = 0; i < C->nregexes; i++)
        pcre2_code_free(C->regexes[i]);
    free(C->regexes);
    for (uint32_t i = 0; i < C->nfiles; i++)
        free(C->files[i].lines);
    free(C->files);
    vg_arena_free(C->arena);
}

/* A rule file that is not text gets one clear error instead of a hundred. */
static bool
looks_binary(cstate *C, uint32_t f)
{
    srcfile *sf = &C->files[f];
    const char *nul = memchr(sf->text, '\0', sf->len);
    if (nul == NULL)
        return false;
    span sp = {f, (uint32_t)(nul - sf->text), (uint32_t)(nul - sf->text) + 1};
    diag_error(C, sp,
               "this is not a text file (NUL byte at offset %u); rule files are UTF-8 "
               "text",
               sp.start);
    return true;
}

static vg_err
compile(cstate *C, unsigned *nerrors, vg_ruleset **out)
{
    uint32_t nrulefiles = C->nfiles;
    for (uint32_t f = 0; f < nrulefiles && !C->oom; f++) {
        if (C->files[f].len > VG_MAX_FILE) {
            span sp = {f, 0, 0};
            diag_error(C, sp, "rule file is larger than 64 MiB");
            continue;
        }
        if (!looks_binary(C, f))
            parse_file(C, f);
    }
    if (!C->oom)
        check_all(C);
    diag_flush(C);
    if (nerrors)
        *nerrors = C->nerrors;
    if (C->oom) {
        cstate_close(C);
        return VG_ENOMEM;
    }
    if (C->nerrors > 0) {
        cstate_close(C);
        return VG_ECOMPILE;
    }
    vg_ruleset *rs = calloc(1, sizeof *rs);
    if (rs == NULL) {
        cstate_close(C);
        return VG_ENOMEM;
    }
    atomic_init(&rs->refs, 1);
    rs->C = *C;
    *out = rs;
    return VG_OK;
}

vg_err
cstate_open(cstate *C, const vg_compile_opts *opts)
{
    memset(C, 0, sizeof *C);
    if (opts)
        C->opts = *opts;
    C->schema = C->opts.schema ? C->opts.schema : vg_schema_default();
    C->arena = vg_arena_new();
    if (C->schema == NULL || C->arena == NULL) {
        vg_arena_free(C->arena);
        return VG_ENOMEM;
    }
    return VG_OK;
}

vg_err
vg_ruleset_compile_sources(const vg_source *srcs, size_t nsrcs, const vg_compile_opts *opts,
                           unsigned *nerrors, vg_ruleset **out)
{
    cstate C;
    if (nerrors)
        *nerrors = 0;
    if (cstate_open(&C, opts) != VG_OK)
        return VG_ENOMEM;
    for (size_t i = 0; i < nsrcs; i++) {
        if (srcs[i].len > VG_MAX_FILE) {
            diag_error_plain(&C, "%s: rule file is larger than 64 MiB", srcs[i].name);
            continue;
        }
        if (cstate_add_file(&C, srcs[i].name, srcs[i].text, srcs[i].len, false) < 0)
            break;
    }
    if (C.nerrors > 0) {
        if (nerrors)
            *nerrors = C.nerrors;
        cstate_close(&C);
        return VG_ECOMPILE;
    }
    return compile(&C, nerrors, out);
}

/* ---- Gathering files ---------------------------------------------------------- */

typedef struct pathlist {
    char **v;
    size_t n, cap;
} pathlist;

static vg_err
pathlist_add(pathlist *pl, const char *p)
{
    if (pl->n == pl->cap) {
        size_t cap = pl->cap ? pl->cap * 2 : 16;
        char **v = realloc(pl->v, cap * sizeof(char *));
        if (v == NULL)
            return VG_ENOMEM;
        pl->v = v;
        pl->cap = cap;
    }
    pl->v[pl->n] = strdup(p);
    if (pl->v[pl->n] == NULL)
        return VG_ENOMEM;
    pl->n++;
    return VG_OK;
}

static void
pathlist_free(pathlist *pl)
{
    for (size_t i = 0; i < pl->n; i++)
        free(pl->v[i]);
    free(pl->v);
}

static bool
has_vgl_suffix(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && strcmp(name + n - 4, ".vgl") == 0;
}

/* Adds every *.vgl below dir (recursively); hidden entries are skipped. */
static vg_err
walk(cstate *C, const char *dir, pathlist *pl, int depth)
{
    if (depth > 64)
        return VG_OK; /* a symlink loop, most likely */
    DIR *d = opendir(dir);
    if (d == NULL) {
        diag_error_plain(C, "can't open folder '%s': %s", dir, strerror(errno));
        return VG_EIO;
    }
    vg_err err = VG_OK;
    struct dirent *e;
    while (err == VG_OK && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        size_t n = strlen(dir) + strlen(e->d_name) + 2;
        char *p = malloc(n);
        if (p == NULL) {
            err = VG_ENOMEM;
            break;
        }
        bool slash = dir[0] && dir[strlen(dir) - 1] == '/';
        snprintf(p, n, "%s%s%s", dir, slash ? "" : "/", e->d_name);
        struct stat st;
        if (stat(p, &st) == 0) {
            if (S_ISDIR(st.st_mode))
                err = walk(C, p, pl, depth + 1);
            else if (S_ISREG(st.st_mode) && has_vgl_suffix(e->d_name))
                err = pathlist_add(pl, p);
        }
        free(p);
    }
    closedir(d);
    return err;
}

static int
cmp_path(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

vg_err
vg_ruleset_compile(const char *const *paths, size_t npaths, const vg_compile_opts *opts,
                   unsigned *nerrors, vg_ruleset **out)
{
    cstate C;
    if (nerrors)
        *nerrors = 0;
    if (cstate_open(&C, opts) != VG_OK)
        return VG_ENOMEM;
    pathlist pl = {0};
    vg_err err = VG_OK;
    for (size_t i = 0; i < npaths && err == VG_OK; i++) {
        struct stat st;
        if (strcmp(paths[i], "-") != 0 && stat(paths[i], &st) != 0) {
            diag_error_plain(&C, "can't open '%s': %s", paths[i], strerror(errno));
            err = errno == ENOENT ? VG_ENOENT : VG_EIO;
        } else if (strcmp(paths[i], "-") != 0 && S_ISDIR(st.st_mode)) {
            size_t before = pl.n;
            err = walk(&C, paths[i], &pl, 0);
            if (err == VG_OK && pl.n == before) {
                diag_error_plain(&C, "no rule files (*.vgl) in folder '%s'", paths[i]);
                err = VG_EINVAL;
            }
        } else {
            err = pathlist_add(&pl, paths[i]);
        }
    }
    if (err == VG_OK && pl.n == 0) {
        diag_error_plain(&C, "no rule files given");
        err = VG_EINVAL;
    }
    if (err == VG_OK) {
        qsort(pl.v, pl.n, sizeof(char *), cmp_path);
        for (size_t i = 0; i < pl.n && err == VG_OK; i++) {
            if (i > 0 && strcmp(pl.v[i], pl.v[i - 1]) == 0)
                continue; /* named twice (a file and its folder) */
            vg_buf b = {0};
            err = vg_read_file(pl.v[i], &b);
            if (err == VG_ENOENT || err == VG_EIO) {
                diag_error_plain(&C, "can't read '%s': %s", pl.v[i], strerror(errno));
            } else if (err == VG_OK) {
                if (b.len > VG_MAX_FILE) {
                    diag_error_plain(&C, "%s: rule file is larger than 64 MiB", pl.v[i]);
                    err = VG_EINVAL;
                } else if (cstate_add_file(&C, strcmp(pl.v[i], "-") == 0 ? "<stdin>" : pl.v[i],
                                           b.data, b.len, false) < 0) {
                    err = VG_ENOMEM;
                }
            }
            vg_buf_free(&b);
        }
    }
    pathlist_free(&pl);
    if (err != VG_OK) {
        if (nerrors)
            *nerrors = C.nerrors;
        cstate_close(&C);
        return err;
    }
    return compile(&C, nerrors, out);
}

vg_ruleset *
vg_ruleset_ref(vg_ruleset *rs)
{
    atomic_fetch_add(&rs->refs, 1);
    return rs;
}

void
vg_ruleset_unref(vg_ruleset *rs)
{
    if (rs == NULL || atomic_fetch_sub(&rs->refs, 1) != 1)
        return;
    cstate_close(&rs->C);
    free(rs);
}

size_t
vg_ruleset_nrules(const vg_ruleset *rs)
{
    return rs->C.nrules;
}

size_t
vg_ruleset_nlists(const vg_ruleset *rs)
{
    return rs->C.nlists;
}

size_t
vg_ruleset_nfiles(const vg_ruleset *rs)
{
    return rs->C.nrulefiles;
}

const char *
vg_ruleset_rule_name(const vg_ruleset *rs, size_t i)
{
    return i < rs->C.nrules ? rs->C.rules[i]->name : NULL;
}
