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
    if (nul != NULL) {
        span sp = {f, (uint32_t)(nul - sf->text), (uint32_t)(nul - sf->text) + 1};
        diag_error(C, sp,
                   "this is not a text file (NUL byte at offset %u); rule files are UTF-8 "
                   "text",
                   sp.start);
        return true;
    }
    /* Random bytes, an image, a file in another encoding: many bytes in the
     * first 64 KiB that are not UTF-8 text. A stray accent in a comment is
     * not enough (it gets its own error at its place). */
    uint32_t n = sf->len < 65536 ? sf->len : 65536, bad = 0, first = 0;
    const unsigned char *s = (const unsigned char *)sf->text;
    for (uint32_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = vg_utf8_decode(s + i, sf->len - i, &cp);
        bool ok = k > 0 && (cp >= 0x20 || cp == '\t' || cp == '\n' || cp == '\r' || cp == '\f');
        if (!ok && bad++ == 0)
            first = i;
        i += k ? (uint32_t)k : 1;
    }
    if (bad < 8 || bad * 20 < n)
        return false;
    span sp = {f, first, first + 1};
    diag_error(C, sp,
               "this is not a text file (%u of its first %u bytes are not UTF-8 text); rule "
               "files are UTF-8 text",
               bad, n);
    return true;
}

/* Checks what C has parsed and, without errors, generates code and moves C
 * into a new rule set. C is closed either way. */
static vg_err
compile_parsed(cstate *C, unsigned *nerrors, vg_ruleset **out)
{
    vg_err err;
    if (!C->oom)
        check_all(C);
    diag_flush(C);
    if (nerrors)
        *nerrors = C->nerrors;
    err = C->oom ? VG_ENOMEM : C->nerrors > 0 ? VG_ECOMPILE : VG_OK;
    if (err)
        goto fail;
    vg_ruleset *rs = calloc(1, sizeof *rs);
    if (rs == NULL) {
        err = VG_ENOMEM;
        goto fail;
    }
    atomic_init(&rs->refs, 1);
    rs->C = *C;
    err = gen_ruleset(rs);
    if (err) {
        gen_free(rs);
        cstate_close(&rs->C);
        free(rs);
        return err;
    }
    *out = rs;
    return VG_OK;
fail:
    cstate_close(C);
    return err;
}

/* Parses every rule file in C, then compile_parsed(). */
static vg_err
compile(cstate *C, unsigned *nerrors, vg_ruleset **out)
{
    uint32_t nrulefiles = C->nfiles;
    for (uint32_t f = 0; f < nrulefiles && !C->oom; f++)
        if (!looks_binary(C, f))
            parse_file(C, f);
    return compile_parsed(C, nerrors, out);
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
    vg_err err = VG_OK;
    for (size_t i = 0; i < nsrcs; i++) {
        if (srcs[i].len > VG_MAX_FILE) {
            diag_error_plain(&C, "%s: rule file is larger than 64 MiB", srcs[i].name);
            err = VG_ECOMPILE;
        } else if (cstate_add_file(&C, srcs[i].name, srcs[i].text, srcs[i].len, false) < 0) {
            err = VG_ENOMEM;
            break;
        }
    }
    if (err != VG_OK)
        goto fail;
    return compile(&C, nerrors, out);
fail:
    if (nerrors)
        *nerrors = C.nerrors;
    cstate_close(&C);
    return err;
}

/* ---- Map files ------------------------------------------------------------- */

vg_err
vg_map_compile(const char *path, const char *const *cols, size_t ncols, const vg_compile_opts *opts,
               unsigned *nerrors, vg_ruleset **out)
{
    cstate C;
    if (nerrors)
        *nerrors = 0;
    if (cstate_open(&C, opts) != VG_OK)
        return VG_ENOMEM;
    C.map_mode = true;
    C.columns = cols;
    C.ncolumns = (uint32_t)ncols;
    vg_buf b = {0};
    vg_err err = vg_read_file_max(path, VG_MAX_FILE, &b);
    if (err == VG_ENOENT || err == VG_EIO)
        diag_error_plain(&C, "can't read map file '%s': %s", path, strerror(errno));
    else if (err == VG_ELIMIT)
        diag_error_plain(&C, "%s: map file is larger than 64 MiB", path);
    if (err == VG_OK) {
        int f = cstate_add_file(&C, path, b.data, b.len, false);
        if (f < 0)
            err = VG_ENOMEM;
        else if (!looks_binary(&C, (uint32_t)f))
            parse_map(&C, (uint32_t)f);
    }
    vg_buf_free(&b);
    if (err != VG_OK) {
        if (nerrors)
            *nerrors = C.nerrors;
        cstate_close(&C);
        return err;
    }
    if (!C.oom)
        check_map(&C);
    return compile_parsed(&C, nerrors, out);
}

/* ---- Gathering files ----------------------------------------------------------
 * Folders are walked recursively for *.vgl; every file is compiled once, in
 * path order, however many ways it is reached (a file and its folder, a
 * symlinked folder, ./x and x); a symlink loop is walked once. */

typedef struct rulefile {
    char *path;
    dev_t dev;
    ino_t ino;
} rulefile;

typedef struct gather {
    cstate *C;
    rulefile *v;
    size_t n, cap;
    struct {
        dev_t dev;
        ino_t ino;
    } dirs[256]; /* folders walked so far */
    size_t ndirs;
} gather;

static vg_err
gather_add(gather *g, const char *path, const struct stat *st)
{
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 16;
        rulefile *v = realloc(g->v, cap * sizeof(rulefile));
        if (v == NULL)
            return VG_ENOMEM;
        g->v = v;
        g->cap = cap;
    }
    g->v[g->n].path = strdup(path);
    if (g->v[g->n].path == NULL)
        return VG_ENOMEM;
    g->v[g->n].dev = st ? st->st_dev : 0;
    g->v[g->n].ino = st ? st->st_ino : 0;
    g->n++;
    return VG_OK;
}

static bool
has_vgl_suffix(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && strcmp(name + n - 4, ".vgl") == 0;
}

/* Adds every *.vgl below dir (whose stat is st); hidden entries are skipped. */
static vg_err
walk(gather *g, const char *dir, const struct stat *st)
{
    for (size_t i = 0; i < g->ndirs; i++)
        if (g->dirs[i].dev == st->st_dev && g->dirs[i].ino == st->st_ino)
            return VG_OK; /* walked already: a symlink to it, or a loop */
    if (g->ndirs == VG_ARRAY_LEN(g->dirs)) {
        diag_error_plain(g->C, "more than %zu folders of rules under '%s'", VG_ARRAY_LEN(g->dirs),
                         dir);
        return VG_ELIMIT;
    }
    g->dirs[g->ndirs].dev = st->st_dev;
    g->dirs[g->ndirs++].ino = st->st_ino;
    DIR *d = opendir(dir);
    if (d == NULL) {
        diag_error_plain(g->C, "can't open folder '%s': %s", dir, strerror(errno));
        return VG_EIO;
    }
    vg_err err = VG_OK;
    struct dirent *e;
    bool slash = dir[0] && dir[strlen(dir) - 1] == '/';
    while (err == VG_OK && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        size_t n = strlen(dir) + strlen(e->d_name) + 2;
        char *p = malloc(n);
        if (p == NULL) {
            err = VG_ENOMEM;
            break;
        }
        snprintf(p, n, "%s%s%s", dir, slash ? "" : "/", e->d_name);
        struct stat est;
        if (stat(p, &est) == 0) {
            if (S_ISDIR(est.st_mode))
                err = walk(g, p, &est);
            else if (S_ISREG(est.st_mode) && has_vgl_suffix(e->d_name))
                err = gather_add(g, p, &est);
        }
        free(p);
    }
    closedir(d);
    return err;
}

static int
cmp_path(const void *a, const void *b)
{
    return strcmp(((const rulefile *)a)->path, ((const rulefile *)b)->path);
}

/* Was the file at index i (in path order) already taken under another name? */
static bool
seen_before(const gather *g, size_t i)
{
    if (strcmp(g->v[i].path, "-") == 0)
        return false;
    for (size_t j = 0; j < i; j++)
        if (g->v[j].dev == g->v[i].dev && g->v[j].ino == g->v[i].ino &&
            strcmp(g->v[j].path, "-") != 0)
            return true;
    return false;
}

static vg_err
gather_paths(gather *g, const char *const *paths, size_t npaths)
{
    vg_err err = VG_OK;
    for (size_t i = 0; i < npaths && err == VG_OK; i++) {
        struct stat st;
        if (strcmp(paths[i], "-") == 0) {
            err = gather_add(g, paths[i], NULL);
        } else if (stat(paths[i], &st) != 0) {
            diag_error_plain(g->C, "can't open '%s': %s", paths[i], strerror(errno));
            err = errno == ENOENT ? VG_ENOENT : VG_EIO;
        } else if (S_ISDIR(st.st_mode)) {
            size_t before = g->n;
            err = walk(g, paths[i], &st);
            if (err == VG_OK && g->n == before) {
                diag_error_plain(g->C, "no rule files (*.vgl) in folder '%s'", paths[i]);
                err = VG_EINVAL;
            }
        } else if (!S_ISREG(st.st_mode)) {
            diag_error_plain(g->C, "'%s' is not a regular file", paths[i]);
            err = VG_EINVAL;
        } else {
            err = gather_add(g, paths[i], &st);
        }
    }
    if (err == VG_OK && g->n == 0) {
        diag_error_plain(g->C, "no rule files given");
        err = VG_EINVAL;
    }
    return err;
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
    gather g = {.C = &C};
    vg_err err = gather_paths(&g, paths, npaths);
    if (err == VG_OK)
        qsort(g.v, g.n, sizeof(rulefile), cmp_path);
    for (size_t i = 0; i < g.n && err == VG_OK; i++) {
        if (seen_before(&g, i))
            continue;
        vg_buf b = {0};
        const char *name = strcmp(g.v[i].path, "-") == 0 ? "<stdin>" : g.v[i].path;
        err = vg_read_file_max(g.v[i].path, VG_MAX_FILE, &b);
        if (err == VG_ENOENT || err == VG_EIO) {
            diag_error_plain(&C, "can't read '%s': %s", name, strerror(errno));
        } else if (err == VG_ELIMIT) {
            diag_error_plain(&C, "%s: rule file is larger than 64 MiB", name);
            err = VG_ECOMPILE; /* a rule error: the file is there, but too big */
        } else if (err == VG_OK && cstate_add_file(&C, name, b.data, b.len, false) < 0) {
            err = VG_ENOMEM;
        }
        vg_buf_free(&b);
    }
    for (size_t i = 0; i < g.n; i++)
        free(g.v[i].path);
    free(g.v);
    if (err != VG_OK)
        goto fail;
    return compile(&C, nerrors, out);
fail:
    if (nerrors)
        *nerrors = C.nerrors;
    cstate_close(&C);
    return err;
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
    gen_free(rs);
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
