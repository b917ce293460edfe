/*
 * diag.c - diagnostics: counting, limits, line/column lookup, rendering and
 * "did you mean" suggestions.
 *
 * Stages report through diag_error()/diag_note(); nothing here knows the
 * grammar. Line and column are computed only when a diagnostic is emitted,
 * from a per-file table of line starts built on first need.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rulesInt.h"

static void
build_lines(cstate *C, srcfile *f)
{
    uint32_t n = 1;
    for (uint32_t i = 0; i < f->len; i++)
        if (f->text[i] == '\n')
            n++;
    f->lines = malloc(sizeof(uint32_t) * n);
    if (f->lines == NULL) {
        C->oom = true;
        return;
    }
    f->nlines = 0;
    f->lines[f->nlines++] = 0;
    for (uint32_t i = 0; i < f->len; i++)
        if (f->text[i] == '\n')
            f->lines[f->nlines++] = i + 1;
}

/* The 0-based line holding offset off. */
static uint32_t
line_of(const srcfile *f, uint32_t off)
{
    uint32_t lo = 0, hi = f->nlines;
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (f->lines[mid] <= off)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

void
diag_position(cstate *C, uint32_t fi, uint32_t off, unsigned *line, unsigned *col)
{
    srcfile *f = &C->files[fi];
    if (f->lines == NULL)
        build_lines(C, f);
    if (f->lines == NULL) {
        *line = 0, *col = 0;
        return;
    }
    if (off > f->len)
        off = f->len;
    uint32_t l = line_of(f, off);
    *line = l + 1;
    *col = off - f->lines[l] + 1;
}

bool
diag_stopped(const cstate *C, uint32_t f)
{
    return C->files[f].stopped;
}

static uint64_t
diag_hash(span sp, const char *msg)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    uint32_t parts[3] = {sp.file, sp.start, sp.end};
    const unsigned char *p = (const unsigned char *)parts;
    for (size_t i = 0; i < sizeof parts; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    for (const unsigned char *s = (const unsigned char *)msg; *s; s++)
        h = (h ^ *s) * 1099511628211ull;
    return h;
}

/* A diagnostic waiting for diag_flush(). */
typedef struct pending {
    uint8_t sev;   /* vg_severity */
    uint8_t where; /* 0: a span, 1: a file only, 2: nowhere */
    bool show_source;
    span sp;
    uint32_t key_file; /* sort key: the error a note belongs to */
    uint32_t key_off;
    uint32_t seq;
    char *msg;
} pending;

static void
hold(cstate *C, vg_severity sev, int where, const span *sp, bool show_source, const char *msg)
{
    if (C->opts.diag == NULL)
        return;
    if (C->npend == C->cappend) {
        uint32_t cap = C->cappend ? C->cappend * 2 : 32;
        pending *v = realloc(C->pend, cap * sizeof(pending));
        if (v == NULL) {
            C->oom = true;
            return;
        }
        C->pend = v;
        C->cappend = cap;
    }
    pending *p = &C->pend[C->npend];
    memset(p, 0, sizeof *p);
    p->msg = strdup(msg);
    if (p->msg == NULL) {
        C->oom = true;
        return;
    }
    p->sev = (uint8_t)sev;
    p->where = (uint8_t)where;
    p->show_source = show_source;
    if (sp != NULL)
        p->sp = *sp;
    p->seq = C->npend++;
    if (sev == VG_SEV_NOTE) {
        p->key_file = C->last_sp.file;
        p->key_off = C->last_sp.start;
    } else if (where == 0) {
        p->key_file = sp->file;
        p->key_off = sp->start;
    } else if (where == 1) {
        p->key_file = sp->file;
        p->key_off = UINT32_MAX;
    }
}

static int
cmp_pending(const void *x, const void *y)
{
    const pending *a = x, *b = y;
    int wa = a->where == 2 && a->sev != VG_SEV_NOTE, wb = b->where == 2 && b->sev != VG_SEV_NOTE;
    if (wa != wb)
        return wb - wa; /* errors without a place first */
    if (a->key_file != b->key_file)
        return a->key_file < b->key_file ? -1 : 1;
    if (a->key_off != b->key_off)
        return a->key_off < b->key_off ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static void emit(cstate *C, vg_severity sev, const span *sp, bool show_source, const char *msg);

void
diag_flush(cstate *C)
{
    /* an error found later can have an earlier place than one found before;
     * a note's key is its error's, so it stays right behind it */
    if (C->npend > 1)
        qsort(C->pend, C->npend, sizeof(pending), cmp_pending);
    for (uint32_t i = 0; i < C->npend; i++) {
        pending *p = &C->pend[i];
        if (p->where == 0) {
            emit(C, (vg_severity)p->sev, &p->sp, p->show_source, p->msg);
        } else if (C->opts.diag != NULL) {
            vg_diag d = {.severity = (vg_severity)p->sev, .message = p->msg};
            if (p->where == 1)
                d.file = C->files[p->sp.file].name;
            C->opts.diag(C->opts.diag_ctx, &d);
        }
        free(p->msg);
    }
    free(C->pend);
    C->pend = NULL;
    C->npend = C->cappend = 0;
}

static void
emit(cstate *C, vg_severity sev, const span *sp, bool show_source, const char *msg)
{
    if (C->opts.diag == NULL)
        return;
    vg_diag d = {.severity = sev, .message = msg, .show_source = show_source};
    if (sp != NULL) {
        srcfile *f = &C->files[sp->file];
        d.file = f->name;
        diag_position(C, sp->file, sp->start, &d.line, &d.col);
        if (d.line > 0) {
            uint32_t ls = f->lines[d.line - 1];
            uint32_t le = d.line < f->nlines ? f->lines[d.line] - 1 : f->len;
            if (le > ls && f->text[le - 1] == '\r')
                le--;
            d.line_text = f->text + ls;
            d.line_len = le - ls;
            uint32_t end = sp->end > le ? le : sp->end;
            d.end_col = end > sp->start ? d.col + (end - sp->start) : d.col;
        }
    }
    C->opts.diag(C->opts.diag_ctx, &d);
}

static void report(cstate *C, span sp, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Holds an error at sp for diag_flush(), unless it repeats one just made or
 * its file is past the error limit. */
static void
report(cstate *C, span sp, const char *fmt, va_list ap)
{
    C->last_shown = false;
    if (C->quiet)
        return;
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    srcfile *f = &C->files[sp.file];
    if (f->stopped)
        return;
    uint64_t h = diag_hash(sp, msg);
    for (unsigned i = 0; i < C->nrecent && i < VG_ARRAY_LEN(C->recent); i++)
        if (C->recent[i] == h)
            return; /* the same words at the same place: once is enough */
    C->recent[C->nrecent++ % VG_ARRAY_LEN(C->recent)] = h;
    unsigned max = C->opts.max_errors ? C->opts.max_errors : 100;
    if (f->nerrors >= max) {
        f->stopped = true;
        hold(C, VG_SEV_ERROR, 1, &sp, false, "too many errors; stopping");
        return;
    }
    f->nerrors++;
    C->nerrors++;
    C->last_shown = true;
    C->last_sp = sp;
    hold(C, VG_SEV_ERROR, 0, &sp, true, msg);
}

void
diag_verror(cstate *C, span sp, const char *fmt, va_list ap)
{
    report(C, sp, fmt, ap);
}

void
diag_error(cstate *C, span sp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report(C, sp, fmt, ap);
    va_end(ap);
}

void
diag_note(cstate *C, span sp, const char *fmt, ...)
{
    if (!C->last_shown)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    bool same = sp.file == C->last_sp.file && sp.start == C->last_sp.start;
    hold(C, VG_SEV_NOTE, 0, &sp, !same, msg);
}

void
diag_error_plain(cstate *C, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    C->nerrors++;
    hold(C, VG_SEV_ERROR, 2, NULL, false, msg);
    C->last_shown = true;
    C->last_sp.file = UINT32_MAX;
}

/* ---- Suggestions -----------------------------------------------------------
 * Optimal string alignment distance (Levenshtein plus adjacent swaps) over
 * ASCII-case-folded names; a candidate differing only in case scores best. */

static int
fold(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static unsigned
edit_distance(const char *a, size_t n, const char *b, size_t m)
{
    enum { MAXN = 64 };
    if (n > MAXN || m > MAXN)
        return ~0u;
    unsigned d[MAXN + 1][MAXN + 1];
    for (size_t i = 0; i <= n; i++)
        d[i][0] = (unsigned)i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = (unsigned)j;
    for (size_t i = 1; i <= n; i++) {
        for (size_t j = 1; j <= m; j++) {
            unsigned cost = fold(a[i - 1]) != fold(b[j - 1]);
            unsigned v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v)
                v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && fold(a[i - 1]) == fold(b[j - 2]) &&
                fold(a[i - 2]) == fold(b[j - 1]) && d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    }
    return d[n][m];
}

const char *
diag_suggest(const char *name, size_t len, const char *const *cands, size_t n)
{
    unsigned limit = 3;
    const char *best = NULL;
    unsigned best_d = ~0u;
    for (size_t i = 0; i < n; i++) {
        if (cands[i] == NULL)
            continue;
        size_t m = strlen(cands[i]);
        if (m == len && memcmp(cands[i], name, len) == 0)
            continue; /* the name itself is no suggestion */
        unsigned d = edit_distance(name, len, cands[i], m);
        if (d == ~0u)
            continue;
        /* scale by 2 so "differs only in case" (0) beats one edit (2) */
        unsigned score = d == 0 ? 0 : 2 * d;
        /* a suggestion must keep most of the name: "id" is no guess for
         * "kind", but "sml" is one for "small" */
        size_t longer = len > m ? len : m;
        limit = longer <= 3 ? 1 : longer <= 6 ? 2 : 3;
        bool close = d <= limit && d * 3 <= longer + 1;
        /* a longer spelling of a short name: "length" for "len" */
        size_t shorter = len < m ? len : m;
        bool prefix =
            shorter >= 3 && d == longer - shorter && strncasecmp(name, cands[i], shorter) == 0;
        if (prefix && !close)
            score = 2 * limit + 1; /* after any close match */
        if ((close || prefix) && score < best_d) {
            best_d = score;
            best = cands[i];
        }
    }
    return best;
}

const char *
vg_suggest(const char *name, size_t len, const char *const *cands, size_t n)
{
    return diag_suggest(name, len, cands, n);
}

/* ---- Rendering ------------------------------------------------------------ */

#define C_BOLD "\033[1m"
#define C_RED "\033[1;31m"
#define C_CYAN "\033[1;36m"
#define C_GREEN "\033[1;32m"
#define C_RESET "\033[0m"

/* Appends the source line (control bytes and invalid UTF-8 shown as '?') and
 * a caret line under [col, end_col). Columns count code points on screen;
 * tabs are kept so the caret lines up in any tab width. */
#define SHOW_BEFORE 60 /* code points shown before the caret on a long line */
#define SHOW_WIDTH 160 /* code points shown of a long line */

static vg_err
render_source(const vg_diag *d, bool color, vg_buf *out)
{
    vg_err err = vg_buf_puts(out, "  ");
    vg_buf caret = {0};
    err = err ? err : vg_buf_puts(&caret, "  ");
    const unsigned char *s = (const unsigned char *)d->line_text;
    size_t i = 0;
    size_t start = d->col - 1, end = d->end_col > d->col ? d->end_col - 1 : d->col;
    bool marked = false;
    /* A long line (generated rules, a minified file) shows a window around
     * the caret, with "..." where it is cut. */
    size_t lo = 0, hi = d->line_len;
    if (d->line_len > SHOW_WIDTH) {
        lo = start > SHOW_BEFORE ? start - SHOW_BEFORE : 0;
        while (lo > 0 && lo < d->line_len && (s[lo] & 0xC0) == 0x80)
            lo--; /* not inside a UTF-8 sequence */
        hi = lo + SHOW_WIDTH < d->line_len ? lo + SHOW_WIDTH : d->line_len;
        while (hi < d->line_len && (s[hi] & 0xC0) == 0x80)
            hi++;
        if (lo > 0) {
            err = err ? err : vg_buf_puts(out, "...");
            err = err ? err : vg_buf_puts(&caret, "   ");
        }
        i = lo;
    }
    while (err == VG_OK && i < hi) {
        uint32_t cp;
        size_t n = vg_utf8_decode(s + i, d->line_len - i, &cp);
        bool ok = n > 0 && (cp >= 0x20 || cp == '\t') && cp != 0x7F;
        if (n == 0)
            n = 1;
        err = ok ? vg_buf_append(out, s + i, n) : vg_buf_putc(out, '?');
        char mark = ' ';
        if (i >= start && i < end) {
            mark = marked ? '~' : '^';
            marked = true;
        } else if (cp == '\t' && ok) {
            mark = '\t';
        }
        if (err == VG_OK)
            err = vg_buf_putc(&caret, mark);
        i += n;
    }
    if (err == VG_OK && hi < d->line_len)
        err = vg_buf_puts(out, "...");
    if (err == VG_OK && !marked) /* a span at the end of the line */
        err = vg_buf_putc(&caret, '^');
    while (err == VG_OK && caret.len > 0 && caret.data[caret.len - 1] == ' ')
        caret.data[--caret.len] = '\0';
    if (err == VG_OK)
        err = vg_buf_putc(out, '\n');
    if (err == VG_OK) {
        if (color)
            err = vg_buf_puts(out, C_GREEN);
        err = err ? err : vg_buf_append(out, caret.data, caret.len);
        if (color && err == VG_OK)
            err = vg_buf_puts(out, C_RESET);
        err = err ? err : vg_buf_putc(out, '\n');
    }
    vg_buf_free(&caret);
    return err;
}

vg_err
vg_diag_render(const vg_diag *d, bool color, vg_buf *out)
{
    static const char *const names[] = {"error", "note"};
    static const char *const colors[] = {C_RED, C_CYAN};
    vg_err err = VG_OK;
    if (color)
        err = vg_buf_puts(out, C_BOLD);
    if (err == VG_OK && d->file != NULL) {
        if (d->line > 0)
            err = vg_buf_printf(out, "%s:%u:%u: ", d->file, d->line, d->col);
        else
            err = vg_buf_printf(out, "%s: ", d->file);
    }
    if (err == VG_OK)
        err = vg_buf_printf(out, "%s%s:%s%s%s%s\n", color ? colors[d->severity] : "",
                            names[d->severity], color ? C_RESET C_BOLD : "", " ", d->message,
                            color ? C_RESET : "");
    if (err == VG_OK && d->show_source && d->line_text != NULL)
        err = render_source(d, color, out);
    return err;
}

void
vg_diag_summary(FILE *f, unsigned errors)
{
    if (errors > 0)
        fprintf(f, "%u error%s generated.\n", errors, errors == 1 ? "" : "s");
}
