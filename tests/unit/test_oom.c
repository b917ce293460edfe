/*
 * test_oom.c - fault injection: the Nth allocation of Vigil's own code
 * fails (or, in one scenario, the Nth LMDB write: put, delete or commit,
 * with EIO), for N = 1, 2, 3, ... until a run gets through without reaching N,
 * through the compiler, the engine (VM, windows, patterns, eviction), the
 * state write-back, the outbox, the file sinks and the protobuf codec.
 *
 * The program is linked with --wrap=malloc,calloc,realloc,strdup,strndup,
 * posix_memalign,free, so the calls made by the objects linked into it
 * (Vigil's static libraries and this file) come here; shared libraries
 * (pcre2, LMDB, jansson, protobuf-c, libcurl, libc itself) are not wrapped,
 * by design. Only calls made while a scenario has armed the injector count,
 * so a scenario chooses what it tests (say vg_engine_process, not the open
 * before it). Every run must end with an error the contract names (VG_ENOMEM)
 * or in success, and free everything: the wrapper keeps the blocks Vigil
 * allocated during a run and fails the run naming N when one is left over.
 * After an error, allocation works again (only the Nth call fails): the
 * scenario goes on, and the rest must work and, where the scenario can know
 * it, give exactly the results of a run without failures.
 *
 * VG_OOM_ONLY=name:N runs just that scenario with the Nth allocation failing
 * (to debug one failure); VG_OOM_STEP=k fails every k-th allocation only
 * (VG_OOM_STEP=1: all, where a scenario samples); VG_OOM_VERBOSE=1 reports
 * each run.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#include <lmdb.h>

#include "vg_engine.h"
#include "vg_schema_pb.h"
#include "vg_sink.h"
#include "vigil.pb-c.h"

/* ---- The allocation wrapper ------------------------------------------------ */

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
int __real_posix_memalign(void **p, size_t align, size_t size);
void __real_free(void *p);
void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);
int __wrap_posix_memalign(void **p, size_t align, size_t size);
void __wrap_free(void *p);

static struct {
    const char *name; /* the scenario running */
    long fail_at;     /* the allocation to fail, counted while armed; 0: none */
    long calls;       /* allocations while armed */
    bool hit;         /* the fail_at-th came, and failed */
    int armed;        /* > 0: allocations count */
    bool tracking;    /* blocks allocated are remembered until freed */
    unsigned errors;  /* errors the scenario saw in this run */
    void *site;       /* where the failed allocation was made */
    bool lmdb;        /* LMDB writes fail (EIO), not allocations */
} inj;

/* What the next inj_begin() injects: allocation failures, or LMDB ones. */
static bool inj_lmdb;

/* The blocks allocated while tracking and not freed yet: an open-addressing
 * set of pointers (the test is single-threaded, as Vigil's paths here are). */
#define LIVE_CAP ((size_t)1 << 18)
typedef struct live_blk {
    void *p;
    void *site; /* the caller, for the report */
    size_t size;
} live_blk;
static live_blk live[LIVE_CAP];
static size_t nlive;

static size_t
live_home(const void *p)
{
    return (size_t)(((uintptr_t)p >> 4) * 0x9E3779B97F4A7C15ull >> 40) & (LIVE_CAP - 1);
}

static void
live_add(void *p, size_t size, void *site)
{
    if (nlive + 1 >= LIVE_CAP / 2)
        abort(); /* more live blocks than the table takes: make it bigger */
    size_t i = live_home(p);
    while (live[i].p != NULL)
        i = (i + 1) & (LIVE_CAP - 1);
    live[i] = (live_blk){p, site, size};
    nlive++;
}

/* Forgets p; false when it was not there (a block from before the run, or
 * from a shared library). Deletes by shifting back (no tombstones). */
static bool
live_del(const void *p)
{
    if (nlive == 0 || p == NULL)
        return false;
    size_t i = live_home(p);
    while (live[i].p != p) {
        if (live[i].p == NULL)
            return false;
        i = (i + 1) & (LIVE_CAP - 1);
    }
    live[i].p = NULL;
    nlive--;
    for (size_t j = (i + 1) & (LIVE_CAP - 1); live[j].p != NULL; j = (j + 1) & (LIVE_CAP - 1)) {
        size_t h = live_home(live[j].p);
        /* can j's block move to the hole at i (is i on its probe path)? */
        if ((j > i && (h <= i || h > j)) || (j < i && h <= i && h > j)) {
            live[i] = live[j];
            live[j].p = NULL;
            i = j;
        }
    }
    return true;
}

/* Should this allocation fail? */
static bool
inj_fail(void *site)
{
    if (inj.armed <= 0 || inj.lmdb)
        return false;
    if (++inj.calls != inj.fail_at)
        return false;
    inj.hit = true;
    inj.site = site;
    return true;
}

/* An address in this program as addr2line takes it. */
static uintmax_t
code_offset(void *site)
{
    Dl_info di;
    uintptr_t off = (uintptr_t)site;
    if (site != NULL && dladdr(site, &di) != 0)
        off -= (uintptr_t)di.dli_fbase;
    return off;
}

static void *
inj_track(void *p, size_t size, void *site)
{
    if (p != NULL && inj.tracking)
        live_add(p, size, site);
    return p;
}

void *
__wrap_malloc(size_t size)
{
    if (inj_fail(__builtin_return_address(0)))
        return NULL;
    return inj_track(__real_malloc(size), size, __builtin_return_address(0));
}

void *
__wrap_calloc(size_t n, size_t size)
{
    if (inj_fail(__builtin_return_address(0)))
        return NULL;
    return inj_track(__real_calloc(n, size), n * size, __builtin_return_address(0));
}

void *
__wrap_realloc(void *p, size_t size)
{
    if (inj_fail(__builtin_return_address(0)))
        return NULL; /* p stays as it was */
    void *q = __real_realloc(p, size);
    if (q == NULL && size > 0)
        return NULL;
    bool was = live_del(p);
    if (q != NULL && (was || inj.tracking))
        live_add(q, size, __builtin_return_address(0));
    return q;
}

char *
__wrap_strdup(const char *s)
{
    if (inj_fail(__builtin_return_address(0)))
        return NULL;
    return inj_track(__real_strdup(s), strlen(s) + 1, __builtin_return_address(0));
}

char *
__wrap_strndup(const char *s, size_t n)
{
    if (inj_fail(__builtin_return_address(0)))
        return NULL;
    return inj_track(__real_strndup(s, n), n + 1, __builtin_return_address(0));
}

int
__wrap_posix_memalign(void **p, size_t align, size_t size)
{
    if (inj_fail(__builtin_return_address(0)))
        return ENOMEM;
    int rc = __real_posix_memalign(p, align, size);
    if (rc == 0)
        inj_track(*p, size, __builtin_return_address(0));
    return rc;
}

void
__wrap_free(void *p)
{
    live_del(p);
    __real_free(p);
}

/* ---- The LMDB wrapper: the Nth write Vigil makes fails with EIO, as a
 * disk that fails would make it (a failed commit frees its transaction, as
 * LMDB's does). */

int __real_mdb_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data, unsigned flags);
int __real_mdb_del(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data);
int __real_mdb_cursor_del(MDB_cursor *c, unsigned flags);
int __real_mdb_txn_commit(MDB_txn *txn);
int __wrap_mdb_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data, unsigned flags);
int __wrap_mdb_del(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data);
int __wrap_mdb_cursor_del(MDB_cursor *c, unsigned flags);
int __wrap_mdb_txn_commit(MDB_txn *txn);

static bool
lmdb_fail(void *site)
{
    if (inj.armed <= 0 || !inj.lmdb || ++inj.calls != inj.fail_at)
        return false;
    inj.hit = true;
    inj.site = site;
    return true;
}

int
__wrap_mdb_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data, unsigned flags)
{
    if (lmdb_fail(__builtin_return_address(0)))
        return EIO;
    return __real_mdb_put(txn, dbi, key, data, flags);
}

int
__wrap_mdb_del(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data)
{
    if (lmdb_fail(__builtin_return_address(0)))
        return EIO;
    return __real_mdb_del(txn, dbi, key, data);
}

int
__wrap_mdb_cursor_del(MDB_cursor *c, unsigned flags)
{
    if (lmdb_fail(__builtin_return_address(0)))
        return EIO;
    return __real_mdb_cursor_del(c, flags);
}

int
__wrap_mdb_txn_commit(MDB_txn *txn)
{
    if (lmdb_fail(__builtin_return_address(0))) {
        mdb_txn_abort(txn);
        return EIO;
    }
    return __real_mdb_txn_commit(txn);
}

/* Arms the injector around one call (a statement expression keeps the call
 * readable where it is made). */
#define ARMED(call)                                                                                \
    __extension__({                                                                                \
        inj.armed++;                                                                               \
        __typeof__(call) r_ = (call);                                                              \
        inj.armed--;                                                                               \
        r_;                                                                                        \
    })

/* A check that names the scenario and N when it fails. */
#define oom_check(cond)                                                                            \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fail_msg("%s, allocation %ld failing (made at 0x%jx): %s is false (%s:%d)", inj.name,  \
                     inj.fail_at, code_offset(inj.site), #cond, __FILE__, __LINE__);               \
    } while (0)

/* An error from a call: it must be the injected failure, reported once. */
static void
check_injected(vg_err err, const char *what)
{
    if (err != (inj.lmdb ? VG_EIO : VG_ENOMEM) || !inj.hit || ++inj.errors != 1)
        fail_msg("%s, allocation %ld failing (made at 0x%jx): %s returned %s (%s, error %u of the "
                 "run)",
                 inj.name, inj.fail_at, code_offset(inj.site), what, vg_strerror(err),
                 inj.hit ? "after the failure" : "no failure", inj.errors);
}

static void
inj_begin(const char *name, long fail_at)
{
    memset(&inj, 0, sizeof inj);
    inj.name = name;
    inj.fail_at = fail_at;
    inj.tracking = true;
    inj.lmdb = inj_lmdb;
}

/* Ends a run: every block allocated in it must have been freed. */
static void
inj_end(void)
{
    inj.tracking = false;
    inj.armed = 0;
    if (nlive == 0)
        return;
    size_t n = nlive;
    live_blk first = {0};
    for (size_t i = 0; i < LIVE_CAP; i++) {
        if (live[i].p != NULL && first.p == NULL)
            first = live[i];
        live[i].p = NULL;
    }
    nlive = 0;
    fail_msg("%s, allocation %ld failing (made at 0x%jx): %zu block(s) leaked, one of %zu bytes "
             "allocated at 0x%jx (addr2line -f -i -e test_oom ADDRESS)",
             inj.name, inj.fail_at, code_offset(inj.site), n, first.size, code_offset(first.site));
}

/* ---- Test-side text (not through the wrapper) ------------------------------ */

typedef struct text {
    char *p;
    size_t len, cap;
} text;

__attribute__((format(printf, 2, 3))) static void
text_printf(text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    assert_true(n >= 0);
    if (t->len + (size_t)n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap < t->len + (size_t)n + 1)
            cap *= 2;
        t->p = __real_realloc(t->p, cap);
        assert_non_null(t->p);
        t->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(t->p + t->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

static void
text_bytes(text *t, const char *s, size_t n)
{
    text_printf(t, "%.*s", (int)n, s);
}

static void
text_free(text *t)
{
    __real_free(t->p);
    memset(t, 0, sizeof *t);
}

static const char *
text_str(const text *t)
{
    return t->p ? t->p : "";
}

/* got must be want; when it is not, both go to files for diff, named in the
 * failure. */
static void
check_same(const text *got, const text *want, const char *what)
{
    if (strcmp(text_str(got), text_str(want)) == 0)
        return;
    const char *tmp = getenv("TMPDIR");
    char gp[4200], wp[4200];
    snprintf(gp, sizeof gp, "%s/vigil-oom-got.txt", tmp && *tmp ? tmp : "/tmp");
    snprintf(wp, sizeof wp, "%s/vigil-oom-want.txt", tmp && *tmp ? tmp : "/tmp");
    FILE *g = fopen(gp, "w"), *w = fopen(wp, "w");
    if (g != NULL)
        fputs(text_str(got), g), fclose(g);
    if (w != NULL)
        fputs(text_str(want), w), fclose(w);
    fail_msg("%s, allocation %ld failing (made at 0x%jx): %s: not as expected (diff %s %s)",
             inj.name, inj.fail_at, code_offset(inj.site), what, wp, gp);
}

/* ---- The driver -------------------------------------------------------------- */

/* Runs fn with nothing failing (counting the allocations), then with
 * allocation N failing for N = 1, 2, ... (every step-th when there are more
 * than max_runs) until a run does not reach N. */
static void
sweep(const char *name, void (*fn)(void *), void *ctx, long max_runs)
{
    const char *only = getenv("VG_OOM_ONLY");
    const char *force = getenv("VG_OOM_STEP");
    bool verbose = getenv("VG_OOM_VERBOSE") != NULL;
    size_t nl = strlen(name);
    if (only != NULL) {
        if (strncmp(only, name, nl) != 0 || only[nl] != ':')
            return;
        inj_begin(name, atol(only + nl + 1));
        fn(ctx);
        inj_end();
        printf("oom %s: allocation %ld %s\n", name, inj.fail_at,
               inj.hit ? "failed" : "was not reached");
        return;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    inj_begin(name, 0);
    fn(ctx);
    inj_end();
    long total = inj.calls;
    long step = total > max_runs ? (total + max_runs - 1) / max_runs : 1;
    if (force != NULL && atol(force) > 0)
        step = atol(force);
    long runs = 0, errors = 0;
    for (long n = 1;; n += step) {
        inj_begin(name, n);
        fn(ctx);
        inj_end();
        runs++;
        errors += inj.errors > 0;
        if (verbose)
            printf("oom %s: allocation %ld (at 0x%jx): %s\n", name, n, code_offset(inj.site),
                   !inj.hit     ? "not reached"
                   : inj.errors ? "error"
                                : "absorbed");
        if (!inj.hit)
            break;
        if (n > 2 * total + 1000)
            fail_msg("%s: allocation %ld still reached: the runs are not alike", name, n);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    printf("oom %s: %ld %s, %ld runs%s, %ld ended in %s, %.0f ms\n", name, total,
           inj_lmdb ? "LMDB writes" : "allocations", runs, step > 1 ? " (sampled)" : "", errors,
           inj_lmdb ? "VG_EIO" : "VG_ENOMEM", ms);
    if (step > 1)
        printf("oom %s: every %ld-th allocation failed (more than %ld runs otherwise)\n", name,
               step, max_runs);
    fflush(stdout);
}

/* ---- Files and folders ------------------------------------------------------- */

static char src_dir[4000]; /* the source tree */

static void
make_dir(char *out, size_t n)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(out, n, "%s/vigil-oom-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(out));
}

static void
remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *ent;
    while (d != NULL && (ent = readdir(d)) != NULL) {
        if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0)
            continue;
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", dir, ent->d_name);
        unlink(p);
    }
    if (d != NULL)
        closedir(d);
    rmdir(dir);
}

/* The example rules, and rules for what they leave out (prev(), history,
 * min/max, a `not` between steps, a trailing `not` of another stream). */
static const char *const EXTRA_RULES =
    "rule faster_card {\n"
    "  key card_id\n"
    "  where card_id != \"\"\n"
    "  when time - prev(time) < 5m and amount > prev(amount)\n"
    "  suppress 10m\n"
    "  message \"{amount} after {prev(amount)} on {prev(merchant_name)}\"\n"
    "}\n"
    "rule device_spend {\n"
    "  key device_id\n"
    "  when sum(amount) over 30m > 2000 and min(amount) over 30m < 100\n"
    "    and count(status == DECLINED) over 1h before >= 1\n"
    "  message \"{sum(amount) over 30m} {avg(amount) over history} {max(amount) over 1h}\"\n"
    "  tags \"device\", \"spend\"\n"
    "}\n"
    "rule payee_then_transfer {\n"
    "  match p: event where kind == \"new_payee\"\n"
    "     -> not event where kind == \"payee_confirmed\"\n"
    "     -> t: txn where type == TRANSFER\n"
    "  within 1h\n"
    "  message \"{t.amount} to a new payee\"\n"
    "}\n"
    "rule login_then_quiet {\n"
    "  match l: event where kind == \"login\" -> not txn\n"
    "  within 10m\n"
    "  message \"login {l.id}, then no transaction\"\n"
    "}\n";

#define MAX_SRCS 16

typedef struct sources {
    vg_source s[MAX_SRCS];
    vg_buf text[MAX_SRCS];
    char names[MAX_SRCS][4400];
    size_t n;
    char examples[4100]; /* the folder */
} sources;

static int
cmp_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The example rule files (in path order, as a folder compiles), then the
 * extra rules. */
static void
load_sources(sources *S)
{
    memset(S, 0, sizeof *S);
    snprintf(S->examples, sizeof S->examples, "%s/rules/examples", src_dir);
    DIR *d = opendir(S->examples);
    assert_non_null(d);
    char *names[MAX_SRCS];
    size_t n = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        size_t l = strlen(ent->d_name);
        if (l > 4 && strcmp(ent->d_name + l - 4, ".vgl") == 0) {
            assert_true(n < MAX_SRCS - 1);
            names[n++] = strdup(ent->d_name);
        }
    }
    closedir(d);
    qsort(names, n, sizeof names[0], cmp_name);
    for (size_t i = 0; i < n; i++) {
        snprintf(S->names[i], sizeof S->names[i], "%s/%s", S->examples, names[i]);
        free(names[i]);
        assert_int_equal(vg_read_file(S->names[i], &S->text[i]), VG_OK);
        S->s[i] = (vg_source){S->names[i], S->text[i].data, S->text[i].len};
    }
    assert_true(n >= 5);
    snprintf(S->names[n], sizeof S->names[n], "%s/extra.vgl", S->examples);
    S->s[n] = (vg_source){S->names[n], EXTRA_RULES, strlen(EXTRA_RULES)};
    S->n = n + 1;
}

static void
free_sources(sources *S)
{
    for (size_t i = 0; i < S->n; i++)
        vg_buf_free(&S->text[i]);
}

/* ---- Scenario a: the compiler ------------------------------------------------ */

typedef struct compile_ctx {
    sources *S;
    text want_dump;     /* the rule set compiled without failures, disassembled */
    text want_folder;   /* the same of the examples folder */
    text want_errors;   /* the diagnostics of a source with errors */
    const char *broken; /* that source */
} compile_ctx;

static void
dump_rules(const vg_ruleset *rs, text *out)
{
    char *p = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&p, &n); /* libc's allocation: not counted */
    assert_non_null(f);
    vg_ruleset_dump(rs, f);
    fclose(f);
    text_bytes(out, p, n);
    __real_free(p);
}

static void
on_diag(void *ctx, const vg_diag *d)
{
    text *t = ctx;
    vg_buf b = {0};
    inj.armed--; /* the test's own rendering */
    bool tracking = inj.tracking;
    inj.tracking = false;
    assert_int_equal(vg_diag_render(d, false, &b), VG_OK);
    text_bytes(t, b.data, b.len);
    vg_buf_free(&b);
    inj.tracking = tracking;
    inj.armed++;
}

static void
run_compile(void *arg)
{
    compile_ctx *X = arg;
    /* in memory, every feature of the examples and lists from files */
    vg_ruleset *rs = NULL;
    vg_compile_opts opts = {0};
    unsigned nerr = 0;
    vg_err err = ARMED(vg_ruleset_compile_sources(X->S->s, X->S->n, &opts, &nerr, &rs));
    if (err != VG_OK) {
        check_injected(err, "vg_ruleset_compile_sources");
        oom_check(rs == NULL);
    } else {
        text got = {0};
        dump_rules(rs, &got);
        check_same(&got, &X->want_dump, "the rule set");
        text_free(&got);
        vg_ruleset_unref(rs);
    }
    /* the folder: its files are gathered, read and compiled in path order */
    rs = NULL;
    const char *path = X->S->examples;
    err = ARMED(vg_ruleset_compile(&path, 1, &opts, &nerr, &rs));
    if (err != VG_OK) {
        check_injected(err, "vg_ruleset_compile");
        oom_check(rs == NULL);
    } else {
        text got = {0};
        dump_rules(rs, &got);
        check_same(&got, &X->want_folder, "the rule set");
        text_free(&got);
        vg_ruleset_unref(rs);
    }
    /* errors: diagnostics, suggestions and recovery */
    rs = NULL;
    text diags = {0};
    opts.diag = on_diag;
    opts.diag_ctx = &diags;
    vg_source src = {"broken.vgl", X->broken, strlen(X->broken)};
    err = ARMED(vg_ruleset_compile_sources(&src, 1, &opts, &nerr, &rs));
    oom_check(rs == NULL);
    if (err != VG_ECOMPILE)
        check_injected(err, "vg_ruleset_compile_sources (errors)");
    else
        check_same(&diags, &X->want_errors, "the diagnostics");
    text_free(&diags);
}

static void
test_compile_fails_cleanly(void **state)
{
    (void)state;
    sources S;
    load_sources(&S);
    compile_ctx X = {.S = &S,
                     .broken = "rule a { when count() >= 3 }\n"
                               "rule b { where amout > 5 and merchant_nme ~ /x/ }\n"
                               "list l = [\"a\", \"b\"\n"
                               "rule c { match x: txn -> not event within 5m message \"{y.id}\" }\n"
                               "rule d { key account_id when sum(amount) over 1h > 1000 }\n"};
    vg_ruleset *rs = NULL;
    assert_int_equal(vg_ruleset_compile_sources(S.s, S.n, NULL, NULL, &rs), VG_OK);
    dump_rules(rs, &X.want_dump);
    vg_ruleset_unref(rs);
    const char *path = S.examples;
    assert_int_equal(vg_ruleset_compile(&path, 1, NULL, NULL, &rs), VG_OK);
    dump_rules(rs, &X.want_folder);
    vg_ruleset_unref(rs);
    vg_compile_opts opts = {.diag = on_diag, .diag_ctx = &X.want_errors};
    vg_source src = {"broken.vgl", X.broken, strlen(X.broken)};
    inj.armed = 1; /* on_diag undoes it */
    assert_int_equal(vg_ruleset_compile_sources(&src, 1, &opts, NULL, &rs), VG_ECOMPILE);
    inj.armed = 0;
    assert_true(X.want_errors.len > 0);
    sweep("compile", run_compile, &X, 20000);
    text_free(&X.want_dump);
    text_free(&X.want_folder);
    text_free(&X.want_errors);
    free_sources(&S);
}

/* ---- Events ------------------------------------------------------------------ */

#define NEV 200
#define HALF 100

static vg_event evs[NEV];
static vg_attr ev_attrs[NEV][2];
static char pool[NEV * 160]; /* the events' strings */
static size_t pool_used;

static const char *pool_str(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static const char *
pool_str(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = pool + pool_used;
    int n = vsnprintf(p, sizeof pool - pool_used, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof pool - pool_used);
    pool_used += (size_t)n + 1;
    return p;
}

static void
set_value(vg_event *ev, const char *name, vg_value v)
{
    const vg_field *f = vg_schema_field(vg_schema_default(), ev->stream, name, strlen(name));
    assert_non_null(f);
    ev->v[f->slot] = v;
}

static void
set_str(vg_event *ev, const char *name, const char *s)
{
    set_value(ev, name, (vg_value){.u.s = s, .len = (uint32_t)strlen(s), .kind = VG_V_STR});
}

static void
set_num(vg_event *ev, const char *name, double x, vg_vkind kind)
{
    set_value(ev, name, (vg_value){.u.num = x, .kind = (uint8_t)kind});
}

static uint32_t rnd_state = 12345;

static uint32_t
rnd(uint32_t n)
{
    rnd_state = rnd_state * 1103515245u + 12345u;
    return (rnd_state >> 16) % n;
}

/* NEV events over 8 accounts (a0 online, and busiest), 45 s apart (every 23rd ten minutes late):
 * transactions and account events that the example rules, windows and
 * patterns (a trailing `not` included) alert on; every 37th repeats an
 * earlier id and every 61st has none. */
static void
make_events(void)
{
    static const char *const kinds[] = {"login",           "login",         "password_change",
                                        "new_payee",       "device_change", "payee_confirmed",
                                        "password_change", "new_payee"};
    static const double amounts[] = {2.5, 3.0, 4.99, 40, 260, 600, 1500, 2500, 3000};
    static const int types[] = {1, 3, 3, 4, 7, 1};
    static const char *const countries[] = {"US", "NG", "FR", "RU", "US"};
    static const char *const merchants[] = {"m-1", "m-casino-991", "m-2", "m-books"};
    static const char *const mnames[] = {"Grocer", "Lucky Casino", "Bet Palace", "Books"};
    pool_used = 0;
    rnd_state = 12345;
    for (int i = 0; i < NEV; i++) {
        vg_event *ev = &evs[i];
        bool acct = rnd(10) < 3;
        vg_event_clear(ev, acct ? VG_STREAM_EVENT : VG_STREAM_TXN);
        int a = rnd(3) == 0 ? 0 : (int)rnd(8); /* a0 is busy: velocity */
        double t = 1.7e12 + 45000.0 * i - (i % 23 == 22 ? 600000.0 : 0);
        if (i % 61 != 60)
            set_str(ev, "id", i % 37 == 36 ? pool_str("e%d", i - 5) : pool_str("e%d", i));
        set_num(ev, "time", t, VG_V_TIME);
        set_str(ev, "account_id", pool_str("a%d", a));
        set_str(ev, "device_id", pool_str("d%u", rnd(5)));
        set_str(ev, "country", countries[rnd(5)]);
        set_num(ev, "lat", (double)rnd(60), VG_V_NUM);
        set_num(ev, "lon", (double)rnd(100), VG_V_NUM);
        ev_attrs[i][0] = (vg_attr){"user_agent", rnd(2) ? "curl/8.0" : "Mozilla/5.0", 10, 0};
        ev_attrs[i][0].vlen = (uint32_t)strlen(ev_attrs[i][0].val);
        if (acct) {
            set_str(ev, "kind", kinds[rnd(8)]);
            set_num(ev, "success", rnd(4) != 0, VG_V_BOOL);
            ev->attrs = ev_attrs[i];
            ev->nattrs = 1;
        } else {
            const char *cur = rnd(6) == 0 ? "JPY" : "USD";
            int m = (int)rnd(4);
            set_num(ev, "type", types[rnd(6)], VG_V_ENUM);
            set_num(ev, "status", rnd(3) == 0 ? 2 : 1, VG_V_ENUM);
            set_num(ev, "channel", a == 0 ? 2 : 1 + rnd(3), VG_V_ENUM);
            set_num(ev, "amount", amounts[rnd(9)], VG_V_NUM);
            set_str(ev, "currency", cur);
            ev->digits = (uint8_t)vg_currency_digits(cur, 3);
            set_num(ev, "balance_after", rnd(4) == 0 ? 0 : 100, VG_V_NUM);
            set_str(ev, "counterparty_id", pool_str("a%u", rnd(8)));
            set_str(ev, "merchant_id", merchants[m]);
            set_str(ev, "merchant_name", mnames[m]);
            set_str(ev, "card_id", rnd(5) ? pool_str("c%u", rnd(6)) : "");
            ev_attrs[i][1] =
                (vg_attr){"payee_email", rnd(3) ? "x@mailinator.com" : "y@example.com", 11, 0};
            ev_attrs[i][1].vlen = (uint32_t)strlen(ev_attrs[i][1].val);
            ev->attrs = ev_attrs[i];
            ev->nattrs = 2;
        }
        vg_event_defaults(vg_schema_default(), ev);
    }
}

static vg_ruleset *
engine_rules(void)
{
    sources S;
    load_sources(&S);
    vg_ruleset *rs = NULL;
    assert_int_equal(vg_ruleset_compile_sources(S.s, S.n, NULL, NULL, &rs), VG_OK);
    free_sources(&S);
    return rs;
}

static void
on_alert(void *ctx, const vg_alert *a)
{
    text *t = ctx;
    text_printf(t, "%s %s %c%c ", a->rule->name, a->id, a->suppressed ? 'S' : '-',
                a->due ? 'D' : '-');
    text_bytes(t, a->json, a->json_len);
    text_printf(t, "\n");
}

/* Events processed after an error, to show the engine goes on (then the
 * run ends: what comes later is what every other run checks). */
#define AFTER_ERROR 24

/* The LMDB map of the state folders here: small, so a copy is cheap. */
#define STATE_BYTES ((size_t)4 << 20)

/* When dir is set, feed() closes the engine after an error and opens it
 * again over its state folder: what was written must be what it held. */
static struct {
    vg_ruleset *rs;
    const char *dir;
} reopen_at_error;

/* Processes events [from, to) (announcing them in batches of 16), armed
 * when asked. An error must be the injected failure; the events after it are
 * processed as if nothing had happened, and must work. */
static void
feed(vg_engine **ep, size_t from, size_t to, bool armed, text *out)
{
    vg_engine *e = *ep;
    const vg_event *ptrs[16];
    for (size_t i = from; i < to; i++) {
        vg_err err;
        if ((i - from) % 16 == 0) {
            size_t n = to - i < 16 ? to - i : 16;
            for (size_t j = 0; j < n; j++)
                ptrs[j] = &evs[i + j];
            inj.armed += armed;
            err = vg_engine_prepare(e, ptrs, n);
            inj.armed -= armed;
            if (err)
                check_injected(err, "vg_engine_prepare");
        }
        vg_outcome o;
        const char *reason = NULL;
        inj.armed += armed;
        err = vg_engine_process(e, &evs[i], on_alert, out, &o, &reason);
        inj.armed -= armed;
        if (err) {
            check_injected(err, "vg_engine_process");
            text_printf(out, "event %zu: error\n", i);
            to = to < i + 1 + AFTER_ERROR ? to : i + 1 + AFTER_ERROR;
            if (reopen_at_error.dir != NULL) {
                vg_engine_opts opts = {.state_dir = reopen_at_error.dir,
                                       .max_state_bytes = STATE_BYTES};
                char why[256] = "";
                oom_check(vg_engine_close(e) == VG_OK);
                oom_check(vg_engine_open(reopen_at_error.rs, &opts, why, sizeof why, ep) == VG_OK);
                e = *ep;
                from = i + 1; /* a new batch to announce */
            }
            continue;
        }
        text_printf(out, "event %zu: %d %s\n", i, (int)o, reason ? reason : "");
    }
}

/* ---- Scenario b: the engine over events --------------------------------------- */

typedef struct engine_ctx {
    vg_ruleset *rs;
    vg_engine_opts opts;
    text want;
} engine_ctx;

static void
run_engine(void *arg)
{
    engine_ctx *X = arg;
    vg_engine *e = NULL;
    char why[256] = "";
    vg_err err = ARMED(vg_engine_open(X->rs, &X->opts, why, sizeof why, &e));
    if (err) { /* and then it works */
        check_injected(err, "vg_engine_open");
        oom_check(vg_engine_open(X->rs, &X->opts, why, sizeof why, &e) == VG_OK);
    }
    text got = {0};
    feed(&e, 0, NEV, true, &got);
    err = ARMED(vg_engine_finish(e, on_alert, &got));
    if (err) {
        check_injected(err, "vg_engine_finish");
        text_printf(&got, "finish: error\n");
    }
    /* whatever happened, the state is whole: it writes back and closes */
    oom_check(vg_engine_flush(e) == VG_OK);
    oom_check(vg_engine_close(e) == VG_OK);
    /* a failure that was absorbed, or only lost a look-ahead, changes nothing */
    if (strstr(text_str(&got), "error") == NULL)
        check_same(&got, &X->want, "the alerts");
    text_free(&got);
}

static void
test_engine_fails_cleanly(void **state)
{
    (void)state;
    make_events();
    /* all keys in memory; then a cache of 16 keys, so that keys are written
     * back and read again all the time (every allocation of that is not
     * tried: see sweep()) */
    static const struct {
        const char *name;
        size_t cache_keys;
        long max_runs;
    } configs[] = {{"engine", 0, 20000}, {"engine evicting", 16, 600}};
    vg_ruleset *rs = engine_rules();
    text first = {0};
    for (size_t c = 0; c < VG_ARRAY_LEN(configs); c++) {
        engine_ctx X = {.rs = rs, .opts = {.cache_keys = configs[c].cache_keys}};
        /* the reference: nothing fails */
        vg_engine *e = NULL;
        char why[256] = "";
        assert_int_equal(vg_engine_open(X.rs, &X.opts, why, sizeof why, &e), VG_OK);
        feed(&e, 0, NEV, false, &X.want);
        assert_int_equal(vg_engine_finish(e, on_alert, &X.want), VG_OK);
        assert_int_equal(vg_engine_close(e), VG_OK);
        /* the events reach what they are meant to */
        static const char *const want[] = {"velocity_cnp ",
                                           "many_cards_one_device ",
                                           "blocked_merchant ",
                                           "gambling_merchant ",
                                           "disposable_email ",
                                           "scripted_user_agent ",
                                           "unconfirmed_payee ",
                                           "faster_card ",
                                           "device_spend ",
                                           "login_then_quiet ",
                                           "impossible_travel ",
                                           "transfer_without_recent_login ",
                                           "payee_then_transfer ",
                                           " S- ",
                                           " -D ",
                                           ": 1 ",
                                           "the event has no id"};
        for (size_t i = 0; i < VG_ARRAY_LEN(want); i++) {
            if (strstr(text_str(&X.want), want[i]) == NULL) {
                text none = {0};
                check_same(&none, &X.want, want[i]);
            }
        }
        if (c == 0)
            first = X.want;
        else /* state written back and read again is the same state */
            check_same(&X.want, &first, "the alerts with eviction");
        sweep(configs[c].name, run_engine, &X, configs[c].max_runs);
        if (c > 0)
            text_free(&X.want);
    }
    text_free(&first);
    vg_ruleset_unref(rs);
}

/* ---- Scenario c: the state, written back and read again ------------------------ */

typedef enum state_mode {
    FAIL_OPEN,   /* the open over a state folder fails */
    FAIL_FLUSH,  /* a write-back fails (and then the one at close) */
    FAIL_RELOAD, /* processing fails while keys are read back from the store */
} state_mode;

typedef struct state_ctx {
    vg_ruleset *rs;
    text want; /* alerts and outcomes of the second half, after a reopen */
    state_mode mode;
    char tmpl[4096]; /* a state folder holding the first half, copied for each run */
} state_ctx;

/* Events that only leave their ids: enough (with the first half's) that
 * reading the ids back at open grows the id index. */
#define NFILL 520
static vg_event fill[NFILL];
static char fill_ids[NFILL][8];

static void
make_fill(void)
{
    for (int i = 0; i < NFILL; i++) {
        vg_event *ev = &fill[i];
        vg_event_clear(ev, VG_STREAM_EVENT);
        snprintf(fill_ids[i], sizeof fill_ids[i], "f%d", i);
        set_str(ev, "id", fill_ids[i]);
        set_num(ev, "time", 1.7e12 + i, VG_V_TIME);
        set_str(ev, "account_id", "zz");
        set_str(ev, "kind", "noop");
        vg_event_defaults(vg_schema_default(), ev);
    }
}

/* A state folder holding the first half of the events. */
static void
state_first_half(vg_ruleset *rs, char *dir, size_t n)
{
    make_dir(dir, n);
    vg_engine_opts o = {.state_dir = dir, .max_state_bytes = STATE_BYTES};
    vg_engine *e = NULL;
    char why[256] = "";
    oom_check(vg_engine_open(rs, &o, why, sizeof why, &e) == VG_OK);
    text ignored = {0};
    feed(&e, 0, HALF, false, &ignored);
    for (int i = 0; i < NFILL; i++) {
        vg_outcome out;
        const char *reason;
        oom_check(vg_engine_process(e, &fill[i], NULL, NULL, &out, &reason) == VG_OK);
    }
    text_free(&ignored);
    /* outbox records, a cursor and a dead letter to carry over too */
    uint64_t seq;
    vg_alert a = {.rule = vg_ruleset_rule(rs, 0),
                  .id = "0123456789abcdef0123456789abcdef",
                  .key = "k",
                  .keylen = 1,
                  .json = "{}",
                  .json_len = 2};
    oom_check(vg_engine_outbox_add(e, &a, &seq) == VG_OK);
    oom_check(vg_engine_outbox_set_cursor(e, "jsonl", seq) == VG_OK);
    oom_check(vg_engine_outbox_dead(e, "jsonl", seq) == VG_OK);
    oom_check(vg_engine_close(e) == VG_OK);
}

/* A new state folder with the template's state (LMDB's data file: the lock
 * file is made again at open). */
static void
state_copy(const char *tmpl, char *dir, size_t n)
{
    make_dir(dir, n);
    char from[4200], to[4200];
    snprintf(from, sizeof from, "%s/data.mdb", tmpl);
    snprintf(to, sizeof to, "%s/data.mdb", dir);
    FILE *f = fopen(from, "rb"), *g = fopen(to, "wb");
    oom_check(f != NULL && g != NULL);
    char buf[65536];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0)
        oom_check(fwrite(buf, 1, k, g) == k);
    oom_check(!ferror(f) && fclose(g) == 0);
    fclose(f);
}

/* Reopens the state (unless e is open already) and processes the second
 * half, armed when asked. */
static void
state_second_half(vg_ruleset *rs, const char *dir, vg_engine *e, bool armed, text *out)
{
    vg_engine_opts o = {.state_dir = dir, .max_state_bytes = STATE_BYTES};
    char why[256] = "";
    if (e == NULL)
        oom_check(vg_engine_open(rs, &o, why, sizeof why, &e) == VG_OK);
    uint64_t c = 0;
    oom_check(vg_engine_outbox_cursor(e, "jsonl", &c) == VG_OK);
    text_printf(out, "outbox end %llu, cursor %llu, logpos %lld\n",
                (unsigned long long)vg_engine_outbox_end(e), (unsigned long long)c,
                (long long)vg_engine_logpos(e));
    /* the ids of the first half are remembered: sent again, they are duplicates */
    unsigned n[3] = {0, 0, 0};
    for (int i = 0; i < HALF + NFILL; i++) {
        vg_outcome oc;
        const char *reason;
        oom_check(vg_engine_process(e, i < HALF ? &evs[i] : &fill[i - HALF], NULL, NULL, &oc,
                                    &reason) == VG_OK);
        n[oc]++;
    }
    text_printf(out, "sent again: %u accepted, %u duplicates, %u rejected\n", n[0], n[1], n[2]);
    feed(&e, HALF, NEV, armed, out);
    inj.armed += armed;
    vg_err err = vg_engine_finish(e, on_alert, out);
    inj.armed -= armed;
    if (err) {
        check_injected(err, "vg_engine_finish");
        text_printf(out, "finish: error\n");
    }
    oom_check(vg_engine_close(e) == VG_OK);
}

static void
run_state(void *arg)
{
    state_ctx *X = arg;
    char dir[4096];
    state_copy(X->tmpl, dir, sizeof dir);
    vg_engine *e = NULL;
    vg_engine_opts o = {.state_dir = dir, .max_state_bytes = STATE_BYTES};
    char why[256] = "";
    vg_err err;
    switch (X->mode) {
    case FAIL_OPEN: /* a failed open leaves the state as it was */
        err = ARMED(vg_engine_open(X->rs, &o, why, sizeof why, &e));
        if (err) {
            check_injected(err, "vg_engine_open");
            e = NULL;
        }
        break;
    case FAIL_FLUSH:
        /* a failed write-back leaves the state as it was, and the next (the
         * one at close) writes everything */
        oom_check(vg_engine_open(X->rs, &o, why, sizeof why, &e) == VG_OK);
        vg_engine_set_logpos(e, 42);
        text ignored = {0};
        feed(&e, HALF, HALF + 20, false, &ignored);
        text_free(&ignored);
        err = ARMED(vg_engine_flush(e));
        if (err)
            check_injected(err, "vg_engine_flush");
        err = ARMED(vg_engine_close(e));
        if (err)
            check_injected(err, "vg_engine_close");
        e = NULL;
        break;
    case FAIL_RELOAD: break;
    }
    text got = {0};
    state_second_half(X->rs, dir, e, X->mode == FAIL_RELOAD, &got);
    remove_dir(dir);
    if (strstr(text_str(&got), "error") == NULL)
        check_same(&got, &X->want, "the second half's alerts");
    if (X->mode == FAIL_RELOAD && inj.errors > 0) {
        /* the same failure, then the engine closed and opened again: the
         * state it wrote is the state it held (part of the failed event
         * included), so the rest goes the same */
        inj.calls = 0;
        inj.hit = false;
        inj.errors = 0;
        state_copy(X->tmpl, dir, sizeof dir);
        reopen_at_error.rs = X->rs;
        reopen_at_error.dir = dir;
        text again = {0};
        state_second_half(X->rs, dir, NULL, true, &again);
        reopen_at_error.dir = NULL;
        remove_dir(dir);
        check_same(&again, &got, "the alerts after a reopen");
        text_free(&again);
    }
    text_free(&got);
}

static void
test_state_fails_cleanly(void **state)
{
    (void)state;
    make_events();
    make_fill();
    state_ctx X = {.rs = engine_rules(), .mode = FAIL_OPEN};
    char dir[4096];
    inj_begin("state reference", 0);
    state_first_half(X.rs, X.tmpl, sizeof X.tmpl);
    state_copy(X.tmpl, dir, sizeof dir);
    state_second_half(X.rs, dir, NULL, false, &X.want);
    remove_dir(dir);
    inj_end();
    assert_non_null(strstr(text_str(&X.want), "outbox end 1, cursor 0,"));
    assert_non_null(
        strstr(text_str(&X.want), "sent again: 0 accepted, 619 duplicates, 1 rejected"));
    assert_non_null(strstr(text_str(&X.want), ": 1 \n")); /* ids of the first half */
    sweep("state open", run_state, &X, 2000);
    X.mode = FAIL_RELOAD;
    sweep("state reload", run_state, &X, 150);
    text_free(&X.want);

    /* the write-back: the reference flushes too (logpos 42, 20 events) */
    inj_begin("state reference", 0);
    state_copy(X.tmpl, dir, sizeof dir);
    vg_engine_opts o = {.state_dir = dir, .max_state_bytes = STATE_BYTES};
    vg_engine *e = NULL;
    char why[256] = "";
    assert_int_equal(vg_engine_open(X.rs, &o, why, sizeof why, &e), VG_OK);
    vg_engine_set_logpos(e, 42);
    text ignored = {0};
    feed(&e, HALF, HALF + 20, false, &ignored);
    text_free(&ignored);
    assert_int_equal(vg_engine_flush(e), VG_OK);
    assert_int_equal(vg_engine_close(e), VG_OK);
    state_second_half(X.rs, dir, NULL, false, &X.want);
    remove_dir(dir);
    inj_end();
    assert_non_null(strstr(text_str(&X.want), "logpos 42"));
    X.mode = FAIL_FLUSH;
    sweep("state flush", run_state, &X, 2000);
    /* the same with the Nth LMDB write failing (a disk error): the
     * transaction is dropped whole, the state stays as it was, and the next
     * write-back writes everything */
    inj_lmdb = true;
    sweep("state flush, LMDB writes failing", run_state, &X, 2000);
    inj_lmdb = false;
    text_free(&X.want);
    remove_dir(X.tmpl);
    vg_ruleset_unref(X.rs);
}

/* ---- Scenario d: the outbox ----------------------------------------------------- */

#define NALERTS 48

typedef struct outbox_ctx {
    vg_ruleset *rs;
    vg_alert a[NALERTS];
    char ids[NALERTS][33], keys[NALERTS][16], json[NALERTS][400];
    text want;
} outbox_ctx;

static bool
on_record(void *ctx, const vg_outbox_rec *r)
{
    text *t = ctx;
    text_printf(t, "%llu %s %s %s %d %lld %s\n", (unsigned long long)r->seq, r->rule, r->id, r->key,
                (int)r->shadow, (long long)r->time_ms, r->json);
    return true;
}

static bool
on_dead(void *ctx, const char *sink, const vg_outbox_rec *r)
{
    text_printf(ctx, "dead %s: ", sink);
    return on_record(ctx, r);
}

/* A call that fails at most by the injected failure; then it is made again. */
#define RETRY(call)                                                                                \
    do {                                                                                           \
        vg_err e_ = ARMED(call);                                                                   \
        if (e_ != VG_OK) {                                                                         \
            check_injected(e_, #call);                                                             \
            e_ = ARMED(call);                                                                      \
        }                                                                                          \
        oom_check(e_ == VG_OK);                                                                    \
    } while (0)

/* Adds alerts, moves cursors, reads, dead-letters and flushes, each call
 * made again after a failure; then everything is read back from the store. */
static void
run_outbox(void *arg)
{
    outbox_ctx *X = arg;
    char dir[4096];
    make_dir(dir, sizeof dir);
    vg_engine_opts o = {.state_dir = dir};
    vg_engine *e = NULL;
    char why[256] = "";
    oom_check(vg_engine_open(X->rs, &o, why, sizeof why, &e) == VG_OK);
    text got = {0};
    uint64_t seq = 0;
    for (int i = 0; i < NALERTS / 2; i++) {
        RETRY(vg_engine_outbox_add(e, &X->a[i], &seq));
        oom_check(seq == (uint64_t)i);
    }
    RETRY(vg_engine_outbox_set_cursor(e, "jsonl", 0));
    RETRY(vg_engine_outbox_set_cursor(e, "webhook:https://example.com/hook", 5));
    RETRY(vg_engine_flush(e));
    for (int i = NALERTS / 2; i < NALERTS; i++) {
        RETRY(vg_engine_outbox_add(e, &X->a[i], &seq));
        oom_check(seq == (uint64_t)i);
    }
    size_t mark = got.len;
    vg_err err = ARMED(vg_engine_outbox_read(e, 2, on_record, &got));
    if (err) {
        check_injected(err, "vg_engine_outbox_read");
        got.len = mark;
        oom_check(vg_engine_outbox_read(e, 2, on_record, &got) == VG_OK);
    }
    RETRY(vg_engine_outbox_dead(e, "webhook:https://example.com/hook", 3));
    RETRY(vg_engine_outbox_dead(e, "webhook:https://example.com/hook", NALERTS - 2));
    uint64_t c = 0;
    RETRY(vg_engine_outbox_cursor(e, "webhook:https://example.com/hook", &c));
    text_printf(&got, "cursor %llu\n", (unsigned long long)c);
    RETRY(vg_engine_outbox_set_cursor(e, "jsonl", 30));
    RETRY(vg_engine_outbox_set_cursor(e, "stdout", 40));
    RETRY(vg_engine_flush(e));
    err = ARMED(vg_engine_close(e)); /* everything was written: a failure here loses nothing */
    if (err)
        check_injected(err, "vg_engine_close");
    /* what the store holds */
    oom_check(vg_engine_open(X->rs, &o, why, sizeof why, &e) == VG_OK);
    oom_check(vg_engine_outbox_read(e, 0, on_record, &got) == VG_OK);
    static const char *const sinks[] = {"jsonl", "stdout", "webhook:https://example.com/hook",
                                        "new"};
    for (size_t i = 0; i < VG_ARRAY_LEN(sinks); i++) {
        oom_check(vg_engine_outbox_cursor(e, sinks[i], &c) == VG_OK);
        text_printf(&got, "cursor %s %llu\n", sinks[i], (unsigned long long)c);
    }
    oom_check(vg_engine_close(e) == VG_OK);
    vg_dlq *q = NULL;
    oom_check(vg_dlq_open(dir, &q, why, sizeof why) == VG_OK);
    oom_check(vg_dlq_each(q, on_dead, &got) == VG_OK);
    vg_dlq_close(q);
    remove_dir(dir);
    if (inj.fail_at == 0)
        X->want = got;
    else
        check_same(&got, &X->want, "what the store holds");
    if (inj.fail_at != 0)
        text_free(&got);
}

static void
test_outbox_fails_cleanly(void **state)
{
    (void)state;
    outbox_ctx *X = calloc(1, sizeof *X);
    assert_non_null(X);
    X->rs = engine_rules();
    for (int i = 0; i < NALERTS; i++) {
        snprintf(X->ids[i], sizeof X->ids[i], "%032x", i * 7919);
        snprintf(X->keys[i], sizeof X->keys[i], "k%d", i % 5);
        int pad = (i * 37) % 300;
        snprintf(
            X->json[i], sizeof X->json[i], "{\"n\":%d,\"pad\":\"%.*s\"}", i, pad,
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        X->a[i] = (vg_alert){.rule = vg_ruleset_rule(X->rs, (size_t)i % vg_ruleset_nrules(X->rs)),
                             .key = X->keys[i],
                             .keylen = (uint32_t)strlen(X->keys[i]),
                             .time_ms = 1700000000000 + i,
                             .json = X->json[i],
                             .json_len = (uint32_t)strlen(X->json[i])};
        memcpy(X->a[i].id, X->ids[i], 33);
    }
    sweep("outbox", run_outbox, X, 5000);
    assert_non_null(strstr(text_str(&X->want), "dead webhook:https://example.com/hook: 3 "));
    assert_non_null(strstr(text_str(&X->want), "cursor jsonl 30\n"));
    text_free(&X->want);
    vg_ruleset_unref(X->rs);
    free(X);
}

/* ---- Scenario e: the file sinks -------------------------------------------------- */

#define NREC 40

typedef struct sink_ctx {
    const char *type;
    vg_outrec recs[NREC];
    char json[NREC][700];
    uint64_t done[NREC * 2];
    size_t ndone;
    text want;
} sink_ctx;

static void
on_done(void *ctx, uint64_t seq, vg_sink_outcome outcome)
{
    sink_ctx *X = ctx;
    oom_check(outcome == VG_SINK_DELIVERED && X->ndone < VG_ARRAY_LEN(X->done));
    X->done[X->ndone++] = seq;
}

static void
read_all(FILE *f, text *out)
{
    char buf[4096];
    size_t n;
    rewind(f);
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        text_bytes(out, buf, n);
}

static void
run_sink(void *arg)
{
    sink_ctx *X = arg;
    const vg_sink_type *T = vg_sink_find(X->type);
    char dir[4096], path[4200];
    make_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/alerts.jsonl", dir);
    FILE *f = tmpfile();
    oom_check(f != NULL);
    vg_sink_conf conf = {.type = X->type, .name = X->type};
    if (strcmp(X->type, "jsonl") == 0)
        conf.path = path;
    else
        conf.file = f;
    void *self = NULL;
    char why[256] = "";
    X->ndone = 0;
    vg_err err = ARMED(T->open(&conf, on_done, X, &self, why, sizeof why));
    if (err) {
        check_injected(err, "open");
        oom_check(T->open(&conf, on_done, X, &self, why, sizeof why) == VG_OK);
    }
    /* batches that grow, so the sink's line buffer grows */
    static const size_t sizes[] = {1, 2, 4, 1, 8, 16, 8};
    size_t at = 0;
    for (size_t b = 0; b < VG_ARRAY_LEN(sizes) && at < NREC; b++) {
        size_t n = at + sizes[b] <= NREC ? sizes[b] : NREC - at;
        size_t before = X->ndone;
        err = ARMED(T->deliver(self, &X->recs[at], n));
        if (err) {
            /* nothing of the call reported done; offered again, it goes */
            check_injected(err, "deliver");
            oom_check(X->ndone == before);
            oom_check(T->deliver(self, &X->recs[at], n) == VG_OK);
        }
        oom_check(X->ndone == before + n);
        for (size_t i = 0; i < n; i++)
            oom_check(X->done[before + i] == X->recs[at + i].seq);
        at += n;
    }
    vg_sink_health h;
    T->health(self, &h);
    oom_check(h.delivered == at && h.ok);
    oom_check(ARMED(T->flush(self, 1.0)) == VG_OK);
    inj.armed++;
    T->close(self);
    inj.armed--;
    text got = {0};
    if (conf.path != NULL) {
        FILE *g = fopen(path, "rb");
        oom_check(g != NULL);
        read_all(g, &got);
        fclose(g);
    } else {
        read_all(f, &got);
    }
    fclose(f);
    unlink(path);
    remove_dir(dir);
    check_same(&got, &X->want, "the lines written");
    text_free(&got);
}

static void
test_sinks_fail_cleanly(void **state)
{
    (void)state;
    static const char *const types[] = {"jsonl", "stdout"};
    for (size_t t = 0; t < VG_ARRAY_LEN(types); t++) {
        sink_ctx *X = calloc(1, sizeof *X);
        assert_non_null(X);
        X->type = types[t];
        for (int i = 0; i < NREC; i++) {
            snprintf(X->json[i], sizeof X->json[i], "{\"seq\":%d,\"pad\":\"%0*d\"}", i,
                     (i * 53) % 600, 0);
            X->recs[i] = (vg_outrec){.seq = 100 + (uint64_t)i,
                                     .rule = "r",
                                     .id = "id",
                                     .key = "k",
                                     .json = X->json[i],
                                     .len = strlen(X->json[i]),
                                     .time_ms = 1700000000000};
            text_printf(&X->want, "%s\n", X->json[i]);
        }
        char name[32];
        snprintf(name, sizeof name, "sink %s", types[t]);
        sweep(name, run_sink, X, 5000);
        text_free(&X->want);
        free(X);
    }
}

/* ---- The schema and the protobuf codec -------------------------------------------- */

typedef struct pb_ctx {
    text want;
} pb_ctx;

static void
run_pb(void *arg)
{
    pb_ctx *X = arg;
    vg_schema *sc = NULL;
    char why[256] = "";
    vg_err err = ARMED(vg_schema_new(&vigil__v1__transaction__descriptor,
                                     &vigil__v1__account_event__descriptor, why, sizeof why, &sc));
    if (err) {
        check_injected(err, "vg_schema_new");
        oom_check(sc == NULL);
    }
    vg_schema_free(sc);
    /* a batch of events, encoded and decoded */
    const vg_schema *def = vg_schema_default();
    const vg_event *ptrs[40];
    for (int i = 0; i < 40; i++)
        ptrs[i] = &evs[i];
    vg_buf buf = {0};
    text got = {0};
    err = ARMED(vg_batch_encode(def, ptrs, 40, true, &buf));
    if (err) {
        check_injected(err, "vg_batch_encode");
        err = vg_batch_encode(def, ptrs, 40, true, &buf);
    }
    oom_check(err == VG_OK);
    vg_pb_event *holder = NULL;
    vg_batch b = {0};
    err = ARMED(
        vg_pb_decode_batch(&holder, def, (const uint8_t *)buf.data, buf.len, &b, why, sizeof why));
    if (err) {
        check_injected(err, "vg_pb_decode_batch");
        err = vg_pb_decode_batch(&holder, def, (const uint8_t *)buf.data, buf.len, &b, why,
                                 sizeof why);
    }
    oom_check(err == VG_OK && b.n == 40 && b.decisions);
    /* a reply with rejections and decisions, both ways */
    vg_rejection rej[3];
    vg_decision dec[4];
    vg_rule_hit hits[4];
    for (int i = 0; i < 3; i++)
        rej[i] = (vg_rejection){.index = (uint32_t)i,
                                .event_id = "e1",
                                .idlen = 2,
                                .reason = "the event has no id",
                                .code = "missing_id"};
    for (int i = 0; i < 4; i++) {
        hits[i] = (vg_rule_hit){.rule = "velocity",
                                .score = 10 * i,
                                .action = i % 3,
                                .message = "msg",
                                .message_len = 3,
                                .shadow = i == 2};
        dec[i] = (vg_decision){.event_id = "e2",
                               .idlen = 2,
                               .action = i % 3,
                               .score = i,
                               .hits = &hits[i],
                               .nhits = i % 2 ? 1 : 0};
    }
    vg_reply rep = {.accepted = 3, .duplicates = 1, .rej = rej, .nrej = 3, .dec = dec, .ndec = 4};
    vg_buf enc = {0};
    err = ARMED(vg_reply_encode(&rep, &enc));
    if (err) {
        check_injected(err, "vg_reply_encode");
        err = vg_reply_encode(&rep, &enc);
    }
    oom_check(err == VG_OK);
    vg_reply back;
    err = ARMED(vg_reply_decode((const uint8_t *)enc.data, enc.len, &back));
    if (err) {
        check_injected(err, "vg_reply_decode");
        err = vg_reply_decode((const uint8_t *)enc.data, enc.len, &back);
    }
    oom_check(err == VG_OK);
    text_printf(&got, "%u %u %zu %zu", back.accepted, back.duplicates, back.nrej, back.ndec);
    for (size_t i = 0; i < back.ndec; i++)
        text_printf(&got, " %.*s:%d:%d:%zu", (int)back.dec[i].idlen, back.dec[i].event_id,
                    back.dec[i].action, back.dec[i].score, back.dec[i].nhits);
    vg_reply_free(&back);
    vg_buf_free(&enc);
    vg_batch_free(&b);
    vg_pb_event_free(holder);
    vg_buf_free(&buf);
    if (inj.fail_at == 0) {
        X->want = got;
    } else {
        check_same(&got, &X->want, "the reply");
        text_free(&got);
    }
}

static void
test_codec_fails_cleanly(void **state)
{
    (void)state;
    make_events();
    pb_ctx X = {0};
    sweep("codec", run_pb, &X, 5000);
    text_free(&X.want);
}

static int
reset(void **state)
{
    (void)state;
    memset(&inj, 0, sizeof inj); /* a failed test may leave a run behind */
    memset(live, 0, sizeof live);
    nlive = 0;
    reopen_at_error.dir = NULL;
    return 0;
}

int
main(void)
{
    const char *dir = getenv("VG_TEST_DIR"); /* tests/: the source tree is above */
    snprintf(src_dir, sizeof src_dir, "%s/..", dir ? dir : "tests");
    (void)vg_schema_default(); /* made once per process: not a run's allocation */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_compile_fails_cleanly, reset),
        cmocka_unit_test_setup(test_engine_fails_cleanly, reset),
        cmocka_unit_test_setup(test_state_fails_cleanly, reset),
        cmocka_unit_test_setup(test_outbox_fails_cleanly, reset),
        cmocka_unit_test_setup(test_sinks_fail_cleanly, reset),
        cmocka_unit_test_setup(test_codec_fails_cleanly, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
