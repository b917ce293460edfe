/*
 * cmd_dlq.c - `vigil dlq list|resend`: the dead-letter list of a state folder
 * (SPEC §6), read and re-sent from another process than the engine's.
 *
 * The live engine copies a record a sink gave up on (its retry schedule ran
 * out, or the endpoint answered 410) into the state's dlq database, keyed by
 * the sink's name and the alert's outbox number (engine/outbox.c). `list`
 * prints them; `resend` opens each sink of the same name from the run
 * config, hands it the records as the engine would (adapters/vg_sink.h), and
 * removes from the list exactly those the sink reports delivered - only
 * after it says so, so a resend killed half-way re-sends rather than loses.
 * LMDB keeps this process and a running engine apart.
 *
 * Threads: a sink may report outcomes from its own thread (the webhook sink
 * does); they go into the letters under one mutex, and are read after the
 * sink is closed (its thread joined).
 */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "vg_config.h"
#include "vg_engine.h"
#include "vg_rules.h"
#include "vg_sink.h"
#include "vg_vm.h"

#define RESEND_BATCH 256 /* records per deliver() call */

static const char dlq_about[] =
    "The dead-letter list of an engine's state folder (SPEC section 6): the alerts\n"
    "a sink gave up on - a webhook whose retry_schedule ran out, or whose endpoint\n"
    "answered 410 Gone (then every alert pending for it) - kept per sink, by the\n"
    "sink's name (type, or type:url or type:path, as in the engine's logs and\n"
    "metrics) and the alert's outbox number. Both commands may run while the\n"
    "engine runs; a sink's new dead letters appear at the engine's next checkpoint.\n";

static const char dlq_list_opts[] =
    "vigil dlq list: print the dead letters, one line each, fields separated by tabs:\n"
    "sink, outbox number, alert id, rule, key, alert time (ISO 8601, UTC); tabs,\n"
    "line breaks and backslashes in a field are written \\t, \\n, \\\\. A count follows\n"
    "on stderr.\n"
    "\n"
    "Options:\n"
    "  -s, --state DIR      the state folder (default: the config's state.path,\n"
    "                       else vigil-data, as for vigil run)\n"
    "  -c, --config FILE    a run config, for its state.path\n"
    "      --sink NAME      only this sink's dead letters (like\n"
    "                       webhook:https://hooks.example.com/vigil)\n"
    "      --json           print each dead letter's alert JSON line instead\n"
    "  -h, --help           show this help and exit\n";

static const char dlq_resend_opts[] =
    "vigil dlq resend: deliver the dead letters again, each to the sink of the\n"
    "config with the same name, opened as vigil run opens it (same secrets, retry\n"
    "schedule, address guard); the sink's rules filter is not applied again.\n"
    "Each one the sink reports delivered is removed from the list; one it gives up\n"
    "on again, or that is not finished within --timeout, stays. A dead letter of a\n"
    "sink the config no longer has is reported and left alone. Ends with\n"
    "\"resent N, still dead M\" on stderr (alerts re-sent to a stdout sink go to\n"
    "stdout).\n"
    "\n"
    "Options:\n"
    "  -c, --config FILE    the run config (required): its sinks, its state.path\n"
    "  -s, --state DIR      the state folder (default: the config's, as for vigil run)\n"
    "      --sink NAME      only this sink's dead letters (a sink of the config)\n"
    "      --timeout SEC    wait at most SEC seconds in all for the sinks to finish\n"
    "                       (default 60); a webhook retries on its schedule until then\n"
    "  -h, --help           show this help and exit\n";

static const char dlq_exit[] =
    "\n"
    "Exit status: 0 success (resend: every dead letter was delivered), 1 resend\n"
    "left some dead letters (or the state could not be read or written), 64 usage\n"
    "error, 65 a damaged dead letter, 66 a state folder (or config file) that does\n"
    "not exist, 78 a config error.\n"
    "\n"
    "More: docs/operations.md (Dead letters).\n";

static void
dlq_usage(FILE *f)
{
    fprintf(f, "usage: vigil dlq list [--state DIR | --config FILE] [--sink NAME] [--json]\n"
               "       vigil dlq resend --config FILE [--state DIR] [--sink NAME] [--timeout SEC]\n"
               "\n");
    fputs(dlq_about, f);
    fputc('\n', f);
    fputs(dlq_list_opts, f);
    fputc('\n', f);
    fputs(dlq_resend_opts, f);
    fputs(dlq_exit, f);
}

static void
list_usage(FILE *f)
{
    fprintf(f, "usage: vigil dlq list [--state DIR | --config FILE] [--sink NAME] [--json]\n\n");
    fputs(dlq_about, f);
    fputc('\n', f);
    fputs(dlq_list_opts, f);
    fputs(dlq_exit, f);
}

static void
resend_usage(FILE *f)
{
    fprintf(f, "usage: vigil dlq resend --config FILE [--state DIR] [--sink NAME] [--timeout SEC]\n"
               "\n");
    fputs(dlq_about, f);
    fputc('\n', f);
    fputs(dlq_resend_opts, f);
    fputs(dlq_exit, f);
}

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- Opening the list ------------------------------------------------------ */

/* Loads config (when given) into *cfg, over the defaults. Returns an exit
 * status: VG_EXIT_OK, or what vigil run returns for that config. */
static int
load_config(const char *config, bool check, vg_config *cfg)
{
    vg_config_defaults(cfg);
    if (config == NULL)
        return VG_EXIT_OK;
    vg_err err = vg_config_load(config, cfg, stderr);
    if (err == VG_OK && check)
        err = vg_config_check(cfg, stderr, config);
    if (err == VG_OK)
        return VG_EXIT_OK;
    return err == VG_ENOMEM ? 1 : err == VG_ENOENT ? VG_EXIT_NOINPUT : VG_EXIT_CONFIG;
}

/* Opens the dead-letter list of dir. A folder without LMDB state is refused
 * here: vg_dlq_open() would make an empty state in it. Returns an exit status. */
static int
open_dlq(const char *dir, vg_dlq **q)
{
    char data[4096], why[512] = "";
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        fprintf(stderr,
                "vigil dlq: no state folder '%s' (give the engine's state with --state or "
                "--config)\n",
                dir);
        return VG_EXIT_NOINPUT;
    }
    snprintf(data, sizeof data, "%s/data.mdb", dir);
    if (stat(data, &sb) != 0) {
        fprintf(stderr, "vigil dlq: '%s' holds no engine state (no data.mdb)\n", dir);
        return VG_EXIT_NOINPUT;
    }
    vg_err err = vg_dlq_open(dir, q, why, sizeof why);
    if (err) {
        fprintf(stderr, "vigil dlq: %s\n", why[0] ? why : vg_strerror(err));
        return err == VG_ENOENT ? VG_EXIT_NOINPUT : 1;
    }
    return VG_EXIT_OK;
}

/* The status for a failed vg_dlq_each(): damaged records, or LMDB failing. */
static int
each_failed(const char *dir, vg_err err)
{
    if (err == VG_EINVAL) {
        fprintf(stderr, "vigil dlq: some dead letters in '%s' are damaged and were skipped\n", dir);
        return VG_EXIT_DATAERR;
    }
    fprintf(stderr, "vigil dlq: can't read the dead letters in '%s': %s\n", dir, vg_strerror(err));
    return 1;
}

/* ---- list --------------------------------------------------------------------- */

typedef struct lister {
    const char *sink; /* --sink, or NULL */
    bool json;
    uint64_t n;
    vg_buf t;
} lister;

/* Writes s with tab, line breaks, backslash and other control bytes escaped,
 * so that a line stays one line of tab-separated fields. */
static void
put_field(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '\t': fputs("\\t", stdout); break;
        case '\n': fputs("\\n", stdout); break;
        case '\r': fputs("\\r", stdout); break;
        case '\\': fputs("\\\\", stdout); break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                printf("\\x%02x", *p);
            else
                putchar(*p);
        }
    }
}

static bool
list_one(void *ctx, const char *sink, const vg_outbox_rec *r)
{
    lister *L = ctx;
    if (L->sink != NULL && strcmp(L->sink, sink) != 0)
        return true;
    L->n++;
    if (L->json) {
        fwrite(r->json, 1, r->len, stdout);
        putchar('\n');
        return true;
    }
    vg_value v = {.kind = VG_V_TIME};
    v.u.num = (double)r->time_ms;
    L->t.len = 0;
    if (vg_value_format(&v, false, 0, NULL, &L->t) != VG_OK || L->t.data == NULL)
        vg_buf_printf(&L->t, "%lld", (long long)r->time_ms);
    put_field(sink);
    printf("\t%llu\t", (unsigned long long)r->seq);
    put_field(r->id);
    putchar('\t');
    put_field(r->rule);
    putchar('\t');
    put_field(r->key);
    printf("\t%s\n", L->t.data ? L->t.data : "");
    return true;
}

static int
dlq_list(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"state", required_argument, NULL, 's'}, {"config", required_argument, NULL, 'c'},
        {"sink", required_argument, NULL, 'S'},  {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    const char *state = NULL, *config = NULL;
    lister L = {0};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "s:c:h", longopts, NULL)) != -1) {
        switch (c) {
        case 's': state = optarg; break;
        case 'c': config = optarg; break;
        case 'S': L.sink = optarg; break;
        case 'j': L.json = true; break;
        case 'h': list_usage(stdout); return VG_EXIT_OK;
        default: return cli_usage_error("dlq list", "unknown option");
        }
    }
    if (optind < argc)
        return cli_usage_error("dlq list", "unexpected argument '%s'", argv[optind]);
    vg_config cfg;
    int rc = load_config(config, false, &cfg);
    if (rc != VG_EXIT_OK) {
        vg_config_free(&cfg);
        return rc;
    }
    const char *dir = state ? state : cfg.state ? cfg.state : "vigil-data";
    vg_dlq *q = NULL;
    if ((rc = open_dlq(dir, &q)) == VG_EXIT_OK) {
        vg_err err = vg_dlq_each(q, list_one, &L);
        if (fflush(stdout) != 0) {
            perror("vigil dlq: stdout");
            rc = 1;
        }
        if (err)
            rc = each_failed(dir, err);
        fprintf(stderr, "dlq: %llu dead letter%s%s%s\n", (unsigned long long)L.n,
                L.n == 1 ? "" : "s", L.sink ? " of " : "", L.sink ? L.sink : "");
        vg_dlq_close(q);
    }
    vg_buf_free(&L.t);
    vg_config_free(&cfg);
    return rc;
}

/* ---- resend ------------------------------------------------------------------- */

enum { OUT_PENDING, OUT_DELIVERED, OUT_DEAD };

/* A dead letter copied out of the list: one allocation, the strings after it. */
typedef struct letter {
    const char *sink;
    vg_outrec rec;
    int outcome; /* OUT_*: under resender.mu while its sink is open */
    char data[];
} letter;

typedef struct resender {
    const char *only; /* --sink, or NULL */
    letter **v;
    size_t n, cap;
    vg_err err; /* an allocation failed while copying */
    pthread_mutex_t mu;
} resender;

/* One sink being re-sent to: its letters are v[0..n), by outbox number. */
typedef struct target {
    resender *R;
    const vg_sink_conf *conf;
    const vg_sink_type *type;
    void *self; /* NULL: not open */
    letter **v;
    size_t n, next; /* next: the first not yet taken by the sink */
    bool failed;    /* deliver() failed: nothing more is offered */
} target;

static bool
copy_one(void *ctx, const char *sink, const vg_outbox_rec *r)
{
    resender *R = ctx;
    if (R->only != NULL && strcmp(R->only, sink) != 0)
        return true;
    if (R->n == R->cap) {
        size_t cap = R->cap ? R->cap * 2 : 256;
        letter **v = realloc(R->v, cap * sizeof *v);
        if (v == NULL) {
            R->err = VG_ENOMEM;
            return false;
        }
        R->v = v;
        R->cap = cap;
    }
    size_t ls = strlen(sink) + 1, lr = strlen(r->rule) + 1, li = strlen(r->id) + 1,
           lk = strlen(r->key) + 1;
    letter *l = malloc(sizeof *l + ls + lr + li + lk + r->len + 1);
    if (l == NULL) {
        R->err = VG_ENOMEM;
        return false;
    }
    char *d = l->data;
    l->sink = memcpy(d, sink, ls);
    l->rec = (vg_outrec){.seq = r->seq,
                         .rule = memcpy(d + ls, r->rule, lr),
                         .id = memcpy(d + ls + lr, r->id, li),
                         .key = memcpy(d + ls + lr + li, r->key, lk),
                         .json = memcpy(d + ls + lr + li + lk, r->json, r->len),
                         .len = r->len,
                         .shadow = r->shadow,
                         .time_ms = r->time_ms};
    d[ls + lr + li + lk + r->len] = '\0';
    l->outcome = OUT_PENDING;
    R->v[R->n++] = l;
    return true;
}

/* By sink, then outbox number: each sink's letters are one sorted run. */
static int
by_sink_seq(const void *a, const void *b)
{
    const letter *x = *(letter *const *)a, *y = *(letter *const *)b;
    int c = strcmp(x->sink, y->sink);
    return c ? c : x->rec.seq < y->rec.seq ? -1 : x->rec.seq > y->rec.seq;
}

/* The sink's done callback: any thread, any order. */
static void
on_done(void *ctx, uint64_t seq, vg_sink_outcome outcome)
{
    target *t = ctx;
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->v[mid]->rec.seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == t->n || t->v[lo]->rec.seq != seq)
        return; /* not one we offered */
    pthread_mutex_lock(&t->R->mu);
    t->v[lo]->outcome = outcome == VG_SINK_DELIVERED ? OUT_DELIVERED : OUT_DEAD;
    pthread_mutex_unlock(&t->R->mu);
}

/* Offers each open target its next batch. Returns whether any still has
 * letters to offer; *moved says whether a batch was taken. */
static bool
offer_round(target *ts, size_t nt, bool *moved)
{
    vg_outrec batch[RESEND_BATCH];
    bool left = false;
    *moved = false;
    for (size_t i = 0; i < nt; i++) {
        target *t = &ts[i];
        if (t->self == NULL || t->failed || t->next == t->n)
            continue;
        size_t n = t->n - t->next < RESEND_BATCH ? t->n - t->next : RESEND_BATCH;
        for (size_t k = 0; k < n; k++)
            batch[k] = t->v[t->next + k]->rec;
        vg_err err = t->type->deliver(t->self, batch, n);
        if (err == VG_OK) {
            t->next += n;
            *moved = true;
        } else if (err != VG_ELIMIT) { /* those it reported done are done; no more */
            vg_sink_health h;
            t->type->health(t->self, &h);
            fprintf(stderr, "vigil dlq: sink %s: %s\n", t->conf->name,
                    h.last_error[0] ? h.last_error : vg_strerror(err));
            t->failed = true;
            continue;
        }
        left = left || t->next < t->n;
    }
    return left;
}

/* Removes the delivered letters from the list; counts both kinds. Returns
 * false when a removal failed (the letter stays, and would be re-sent). */
static bool
settle(vg_dlq *q, const resender *R, uint64_t *resent, uint64_t *dead)
{
    bool ok = true;
    for (size_t i = 0; i < R->n; i++) {
        const letter *l = R->v[i];
        if (l->outcome != OUT_DELIVERED) {
            (*dead)++;
            continue;
        }
        (*resent)++;
        vg_err err = vg_dlq_remove(q, l->sink, l->rec.seq);
        if (err) {
            fprintf(stderr,
                    "vigil dlq: %s: alert %s (number %llu) was delivered but can't be removed "
                    "from the list: %s\n",
                    l->sink, l->rec.id, (unsigned long long)l->rec.seq, vg_strerror(err));
            ok = false;
        }
    }
    return ok;
}

/* Re-sends R's letters (sorted) to the sinks of confs; opens, delivers,
 * waits up to timeout_s in all, closes. Outcomes are in the letters after. */
static void
resend_all(resender *R, const vg_sink_conf *confs, size_t nconf, double timeout_s)
{
    target *ts = calloc(R->n ? R->n : 1, sizeof *ts); /* at most one per letter */
    size_t nt = 0;
    if (ts == NULL) {
        fprintf(stderr, "vigil dlq: out of memory\n");
        return;
    }
    for (size_t i = 0; i < R->n;) {
        size_t j = i;
        while (j < R->n && strcmp(R->v[j]->sink, R->v[i]->sink) == 0)
            j++;
        const char *name = R->v[i]->sink;
        const vg_sink_conf *conf = NULL;
        for (size_t k = 0; k < nconf && conf == NULL; k++)
            if (strcmp(confs[k].name, name) == 0)
                conf = &confs[k];
        target *t = &ts[nt++];
        *t = (target){.R = R, .conf = conf, .v = R->v + i, .n = j - i};
        size_t n = j - i;
        i = j;
        if (conf == NULL) {
            fprintf(stderr,
                    "vigil dlq: %zu dead letter%s of sink %s: the config has no such sink; "
                    "left alone\n",
                    n, n == 1 ? "" : "s", name);
            continue;
        }
        char why[512] = "";
        vg_err err = VG_EINVAL;
        if ((t->type = vg_sink_find(conf->type)) != NULL)
            err = t->type->open(conf, on_done, t, &t->self, why, sizeof why);
        else
            snprintf(why, sizeof why, "no sink type '%s'", conf->type);
        if (err) {
            t->self = NULL;
            fprintf(stderr, "vigil dlq: sink %s: %s; its %zu dead letter%s stay\n", name,
                    why[0] ? why : vg_strerror(err), n, n == 1 ? "" : "s");
        }
    }
    double until = now_s() + timeout_s;
    bool moved;
    while (offer_round(ts, nt, &moved) && now_s() < until) {
        if (!moved) { /* every sink is full: give them time */
            struct timespec pause = {0, 20 * 1000 * 1000};
            nanosleep(&pause, NULL);
        }
    }
    for (size_t i = 0; i < nt; i++) {
        target *t = &ts[i];
        if (t->self == NULL)
            continue;
        double left = until - now_s();
        t->type->flush(t->self, left > 0 ? left : 0);
        vg_sink_health h;
        t->type->health(t->self, &h);
        t->type->close(t->self); /* its thread is joined: no more done() calls */
        t->self = NULL;
        size_t dead = 0, open = 0;
        for (size_t k = 0; k < t->n; k++) {
            dead += t->v[k]->outcome == OUT_DEAD;
            open += t->v[k]->outcome == OUT_PENDING;
        }
        if (dead > 0)
            fprintf(stderr, "vigil dlq: sink %s: %zu given up on again%s%s%s\n", t->conf->name,
                    dead, h.last_error[0] ? " (last error: " : "", h.last_error,
                    h.last_error[0] ? ")" : "");
        if (open > 0 && t->failed)
            fprintf(stderr, "vigil dlq: sink %s: %zu not taken; they stay\n", t->conf->name, open);
        else if (open > 0)
            fprintf(stderr, "vigil dlq: sink %s: %zu not finished within %g s; they stay\n",
                    t->conf->name, open, timeout_s);
    }
    free(ts);
}

static int
dlq_resend(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"state", required_argument, NULL, 's'},
        {"sink", required_argument, NULL, 'S'},   {"timeout", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *config = NULL, *state = NULL, *sink = NULL;
    double timeout = 60;
    int c;
    char *end;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:s:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 's': state = optarg; break;
        case 'S': sink = optarg; break;
        case 'T':
            timeout = strtod(optarg, &end);
            if (*end || !(timeout > 0) || timeout > 1e6)
                return cli_usage_error("dlq resend", "--timeout wants seconds, like 60");
            break;
        case 'h': resend_usage(stdout); return VG_EXIT_OK;
        default: return cli_usage_error("dlq resend", "unknown option");
        }
    }
    if (optind < argc)
        return cli_usage_error("dlq resend", "unexpected argument '%s'", argv[optind]);
    if (config == NULL)
        return cli_usage_error("dlq resend", "give the run config (--config FILE): its sinks "
                                             "are where the dead letters go");
    vg_config cfg;
    int rc = load_config(config, true, &cfg);
    if (rc != VG_EXIT_OK) {
        vg_config_free(&cfg);
        return rc;
    }
    vg_sink_conf *confs = NULL;
    size_t nconf = 0;
    if (vg_config_sinks(&cfg, config, &confs, &nconf, stderr) != VG_OK) {
        vg_config_free(&cfg);
        return VG_EXIT_CONFIG;
    }
    /* no sinks configured: the engine's default, stdout */
    vg_sink_conf out1 = {.type = "stdout", .name = "stdout"};
    const vg_sink_conf *sinks = nconf ? confs : &out1;
    size_t nsinks = nconf ? nconf : 1;
    resender R = {.only = sink};
    vg_dlq *q = NULL;
    uint64_t resent = 0, dead = 0;
    if (sink != NULL) {
        bool known = false;
        for (size_t i = 0; i < nsinks; i++)
            known = known || strcmp(sinks[i].name, sink) == 0;
        if (!known) {
            fprintf(stderr, "vigil dlq resend: %s has no sink '%s'; its sinks:", config, sink);
            for (size_t i = 0; i < nsinks; i++)
                fprintf(stderr, " %s", sinks[i].name);
            fprintf(stderr, "\nTry 'vigil dlq list' for the sinks with dead letters.\n");
            rc = VG_EXIT_USAGE;
            goto done;
        }
    }
    const char *dir = state ? state : cfg.state ? cfg.state : "vigil-data";
    if ((rc = open_dlq(dir, &q)) != VG_EXIT_OK)
        goto done;
    pthread_mutex_init(&R.mu, NULL);
    vg_err err = vg_dlq_each(q, copy_one, &R);
    if (err == VG_OK)
        err = R.err;
    if (err != VG_OK && err != VG_EINVAL) { /* damaged ones: the others go */
        rc = each_failed(dir, err);
        goto done_mu;
    }
    if (err == VG_EINVAL)
        each_failed(dir, err);
    if (R.n > 0) /* qsort wants a non-NULL base even for none */
        qsort(R.v, R.n, sizeof *R.v, by_sink_seq);
    resend_all(&R, sinks, nsinks, timeout);
    bool removed = settle(q, &R, &resent, &dead);
    fprintf(stderr, "dlq: resent %llu, still dead %llu\n", (unsigned long long)resent,
            (unsigned long long)dead);
    rc = !removed || dead > 0 ? 1 : err == VG_EINVAL ? VG_EXIT_DATAERR : VG_EXIT_OK;
done_mu:
    pthread_mutex_destroy(&R.mu);
done:
    for (size_t i = 0; i < R.n; i++)
        free(R.v[i]);
    free(R.v);
    vg_dlq_close(q);
    vg_config_sinks_free(confs, nconf);
    vg_config_free(&cfg);
    return rc;
}

/* ---- vigil dlq ---------------------------------------------------------------- */

int
cmd_dlq(int argc, char **argv)
{
    static const char *const subs[] = {"list", "resend"};
    if (argc < 2)
        return cli_usage_error("dlq", "give a command: list or resend");
    const char *sub = argv[1];
    if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0 || strcmp(sub, "help") == 0) {
        dlq_usage(stdout);
        return VG_EXIT_OK;
    }
    if (strcmp(sub, "list") == 0)
        return dlq_list(argc - 1, argv + 1);
    if (strcmp(sub, "resend") == 0)
        return dlq_resend(argc - 1, argv + 1);
    if (sub[0] == '-')
        return cli_usage_error("dlq", "give a command (list or resend) before the options");
    const char *sug = vg_suggest(sub, strlen(sub), subs, VG_ARRAY_LEN(subs));
    if (sug != NULL)
        return cli_usage_error("dlq", "'%s' is not a dlq command; did you mean '%s'?", sub, sug);
    return cli_usage_error("dlq", "'%s' is not a dlq command: list or resend", sub);
}
