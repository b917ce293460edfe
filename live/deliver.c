/*
 * deliver.c - the outbox to the sinks (vg_deliver.h).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vg_deliver.h"

#define BATCH 512           /* records per deliver() call */
#define PER_STEP 8192       /* records offered to one sink per round */
#define MAX_OPEN (1u << 20) /* offered and unfinished, per sink */

typedef struct doneent {
    uint64_t seq;
    bool dead;
} doneent;

typedef struct run {
    vg_deliver *d;
    const vg_sink_conf *conf;
    const vg_sink_type *type;
    void *self;
    bool attached, full;
    bool failing;     /* its last deliver() failed: said once in the log */
    bool disabled;    /* said in the log that it is disabled */
    uint64_t cursor;  /* first unfinished */
    uint64_t offered; /* next to offer */
    uint8_t *fin;     /* fin[i]: record cursor + i is finished */
    size_t capfin;
    doneent *q; /* finished, not yet collected: under d->mu */
    size_t nq, capq;
    uint64_t delivered, dead, skipped;
    uint64_t high;     /* one past the highest number ever read: counts each skip once */
    double since;      /* when its oldest pending record became pending, to a round */
    uint64_t seen_end; /* the outbox's end at the last round */
} run;

struct vg_deliver {
    run *runs;
    size_t n;
    pthread_mutex_t mu;
    void (*wake)(void *);
    void *ctx;
    /* one batch being collected */
    vg_buf arena;
    vg_outrec *batch;
    size_t *offs; /* per record: rule, id, key, json offsets in arena */
    size_t nbatch;
    run *cur;
    uint64_t next_seq; /* the number after the last one read */
};

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
on_done(void *ctx, uint64_t seq, vg_sink_outcome outcome)
{
    run *r = ctx;
    vg_deliver *d = r->d;
    pthread_mutex_lock(&d->mu);
    if (r->nq == r->capq) {
        size_t cap = r->capq ? r->capq * 2 : 256;
        doneent *v = realloc(r->q, cap * sizeof *v);
        if (v == NULL) { /* lost: the record is offered again after a restart */
            pthread_mutex_unlock(&d->mu);
            return;
        }
        r->q = v;
        r->capq = cap;
    }
    r->q[r->nq++] = (doneent){seq, outcome == VG_SINK_DEAD};
    pthread_mutex_unlock(&d->mu);
    if (d->wake)
        d->wake(d->ctx);
}

vg_err
vg_deliver_open(const vg_sink_conf *confs, size_t n, void (*wake)(void *), void *ctx,
                vg_deliver **out, char *why, size_t whylen)
{
    vg_deliver *d = calloc(1, sizeof *d);
    if (d == NULL || (d->runs = calloc(n ? n : 1, sizeof *d->runs)) == NULL ||
        (d->batch = malloc(BATCH * sizeof *d->batch)) == NULL ||
        (d->offs = malloc(BATCH * 4 * sizeof *d->offs)) == NULL) {
        if (d != NULL) {
            free(d->runs);
            free(d->batch);
        }
        free(d);
        return VG_ENOMEM;
    }
    pthread_mutex_init(&d->mu, NULL);
    d->wake = wake;
    d->ctx = ctx;
    for (size_t i = 0; i < n; i++) {
        run *r = &d->runs[i];
        r->d = d;
        r->conf = &confs[i];
        r->type = vg_sink_find(confs[i].type);
        if (r->type == NULL) {
            snprintf(why, whylen, "sinks: no sink type '%s'", confs[i].type);
            vg_deliver_close(d);
            return VG_EINVAL;
        }
        char w[400] = "";
        vg_err err = r->type->open(&confs[i], on_done, r, &r->self, w, sizeof w);
        if (err) {
            snprintf(why, whylen, "sink %s: %s", confs[i].name, w[0] ? w : vg_strerror(err));
            vg_deliver_close(d);
            return err;
        }
        d->n++;
    }
    *out = d;
    return VG_OK;
}

vg_err
vg_deliver_attach(vg_deliver *d, vg_engine *e)
{
    for (size_t i = 0; i < d->n; i++) {
        run *r = &d->runs[i];
        if (!r->attached) {
            vg_err err = vg_engine_outbox_cursor(e, r->conf->name, &r->cursor);
            if (err)
                return err;
            r->offered = r->cursor;
            r->since = now_s();
            r->attached = true;
        }
        vg_err err = vg_engine_outbox_set_cursor(e, r->conf->name, r->cursor);
        if (err)
            return err;
    }
    return VG_OK;
}

static vg_err
fin_room(run *r, size_t n)
{
    if (n <= r->capfin)
        return VG_OK;
    size_t cap = r->capfin ? r->capfin : 1024;
    while (cap < n)
        cap *= 2;
    uint8_t *v = realloc(r->fin, cap);
    if (v == NULL)
        return VG_ENOMEM;
    memset(v + r->capfin, 0, cap - r->capfin);
    r->fin = v;
    r->capfin = cap;
    return VG_OK;
}

static void
mark(run *r, uint64_t seq)
{
    if (seq >= r->cursor && seq < r->offered)
        r->fin[seq - r->cursor] = 1;
}

/* Copies a record into the batch (the read callback). */
static bool
collect(void *ctx, const vg_outbox_rec *rec)
{
    vg_deliver *d = ctx;
    run *r = d->cur;
    d->next_seq = rec->seq + 1;
    bool first = rec->seq >= r->high; /* a batch refused is read again */
    if (first)
        r->high = rec->seq + 1;
    vg_outrec probe = {
        .rule = rec->rule, .json = rec->json, .len = rec->len, .shadow = rec->shadow};
    if (!vg_sink_wants(r->conf, &probe)) {
        r->skipped += first;
        if (fin_room(r, (size_t)(rec->seq + 1 - r->cursor)) != VG_OK)
            return false;
        if (r->offered <= rec->seq)
            r->offered = rec->seq + 1;
        mark(r, rec->seq);
        return d->nbatch < BATCH;
    }
    size_t *o = &d->offs[d->nbatch * 4];
    const char *s[4] = {rec->rule, rec->id, rec->key, rec->json};
    size_t l[4] = {strlen(rec->rule), strlen(rec->id), strlen(rec->key), rec->len};
    for (int k = 0; k < 4; k++) {
        o[k] = d->arena.len;
        if (vg_buf_append(&d->arena, s[k], l[k]) != VG_OK || vg_buf_putc(&d->arena, '\0') != VG_OK)
            return false;
    }
    d->batch[d->nbatch++] = (vg_outrec){
        .seq = rec->seq, .len = rec->len, .shadow = rec->shadow, .time_ms = rec->time_ms};
    return d->nbatch < BATCH;
}

/* A sink started failing (from the alert id) or works again: in the log,
 * once per change, not once per retry. */
static void
say_state(run *r, bool failing, const char *id)
{
    r->failing = failing;
    if (r->conf->attempt == NULL)
        return;
    if (!failing) {
        r->conf->attempt(r->conf->attempt_ctx, r->conf->name, id, 0, 200, 0, "delivering again");
        return;
    }
    vg_sink_health h = {0};
    r->type->health(r->self, &h);
    char why[256];
    snprintf(why, sizeof why, "%s (said once; logged again when it works)", h.last_error);
    r->conf->attempt(r->conf->attempt_ctx, r->conf->name, id, 0, 0, 0, why);
}

/* Offers r the records after what it was offered, a batch at a time. */
static vg_err
offer(vg_deliver *d, run *r, vg_engine *e)
{
    uint64_t end = vg_engine_outbox_end(e), start = r->offered;
    while (!r->full && r->offered < end && r->offered - start < PER_STEP &&
           r->offered - r->cursor < MAX_OPEN) {
        d->cur = r;
        d->nbatch = 0;
        d->arena.len = 0;
        uint64_t from = r->offered;
        vg_err err = vg_engine_outbox_read(e, from, collect, d);
        if (err)
            return err;
        if (d->nbatch == 0) {
            if (r->offered == from)
                break; /* nothing there to read */
            continue;  /* all filtered out: offered moved on */
        }
        for (size_t i = 0; i < d->nbatch; i++) {
            const size_t *o = &d->offs[i * 4];
            d->batch[i].rule = d->arena.data + o[0];
            d->batch[i].id = d->arena.data + o[1];
            d->batch[i].key = d->arena.data + o[2];
            d->batch[i].json = d->arena.data + o[3];
        }
        uint64_t last = d->batch[d->nbatch - 1].seq;
        if ((err = fin_room(r, (size_t)(last + 1 - r->cursor))) != VG_OK)
            return err;
        /* offered first: a synchronous sink reports done from deliver() */
        r->offered = last + 1 > r->offered ? last + 1 : r->offered;
        err = r->type->deliver(r->self, d->batch, d->nbatch);
        if (err != VG_ELIMIT && r->failing != (err != VG_OK))
            say_state(r, err != VG_OK, d->batch[0].id);
        if (err) {
            /* full, or failing: from its first record not reported done
             * next round (a synchronous sink reports the ones it finished,
             * in order, before it returns) */
            size_t ndone = 0;
            pthread_mutex_lock(&d->mu);
            for (size_t k = 0; k < r->nq; k++)
                ndone += r->q[k].seq >= d->batch[0].seq && r->q[k].seq <= last;
            pthread_mutex_unlock(&d->mu);
            r->offered = ndone < d->nbatch ? d->batch[ndone].seq : last + 1;
            /* fin stays zero past what was offered (filtered ones are
             * marked again when read again) */
            memset(r->fin + (r->offered - r->cursor), 0, (size_t)(last + 1 - r->offered));
            r->full = err == VG_ELIMIT;
            return VG_OK;
        }
    }
    return VG_OK;
}

vg_err
vg_deliver_step(vg_deliver *d, vg_engine *e)
{
    vg_err err = VG_OK;
    for (size_t i = 0; i < d->n && err == VG_OK; i++) {
        run *r = &d->runs[i];
        pthread_mutex_lock(&d->mu);
        doneent *q = r->q;
        size_t nq = r->nq;
        r->q = NULL;
        r->nq = r->capq = 0;
        pthread_mutex_unlock(&d->mu);
        for (size_t k = 0; k < nq && err == VG_OK; k++) {
            if (q[k].seq < r->cursor || q[k].seq >= r->offered)
                continue;
            if (q[k].dead) {
                r->dead++;
                err = vg_engine_outbox_dead(e, r->conf->name, q[k].seq);
            } else {
                r->delivered++;
            }
            mark(r, q[k].seq);
        }
        free(q);
        /* full (VG_ELIMIT) is tried again each round: a sink may make room
         * without finishing anything (a pipe its reader drained) */
        r->full = false;
        size_t k = 0, open = (size_t)(r->offered - r->cursor);
        while (k < open && r->fin[k])
            k++;
        if (k > 0) {
            memmove(r->fin, r->fin + k, open - k);
            memset(r->fin + open - k, 0, k);
            r->cursor += k;
            r->since = now_s();
        }
        if (r->cursor == r->offered && r->offered == r->seen_end)
            r->since = now_s(); /* nothing was pending: the age of what is new starts now */
        r->seen_end = vg_engine_outbox_end(e);
        if (!r->disabled && r->conf->attempt != NULL) {
            vg_sink_health h = {0};
            r->type->health(r->self, &h);
            if (h.disabled) {
                r->disabled = true;
                r->conf->attempt(r->conf->attempt_ctx, r->conf->name, "-", 0, 0, 0,
                                 "disabled: the endpoint answered 410 Gone; its alerts now go to "
                                 "the dead-letter list (vigil dlq) until a restart");
            }
        }
        if (err == VG_OK)
            err = offer(d, r, e);
        if (err == VG_OK)
            err = vg_engine_outbox_set_cursor(e, r->conf->name, r->cursor);
    }
    return err;
}

vg_err
vg_deliver_drain(vg_deliver *d, vg_engine *e, double timeout_s)
{
    double until = now_s() + timeout_s;
    for (;;) {
        vg_err err = vg_deliver_step(d, e);
        if (err)
            return err;
        bool idle = true;
        uint64_t end = vg_engine_outbox_end(e);
        for (size_t i = 0; i < d->n; i++)
            idle = idle && d->runs[i].cursor == end;
        if (idle)
            return VG_OK;
        if (now_s() > until)
            return VG_ELIMIT;
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

vg_err
vg_deliver_metrics(vg_deliver *d, vg_engine *e, vg_buf *out)
{
    uint64_t end = vg_engine_outbox_end(e);
    double now = now_s();
    vg_err err = vg_buf_printf(
        out, "# HELP vigil_outbox_depth Alerts in the outbox a sink has not finished.\n"
             "# TYPE vigil_outbox_depth gauge\n");
    for (size_t i = 0; i < d->n && err == VG_OK; i++)
        err = vg_buf_printf(out, "vigil_outbox_depth{sink=\"%s\"} %llu\n", d->runs[i].conf->name,
                            (unsigned long long)(end - d->runs[i].cursor));
    if (err == VG_OK)
        err = vg_buf_printf(out, "# HELP vigil_outbox_oldest_seconds Seconds the oldest alert a "
                                 "sink has not finished has waited (0 when none is pending).\n"
                                 "# TYPE vigil_outbox_oldest_seconds gauge\n");
    for (size_t i = 0; i < d->n && err == VG_OK; i++) {
        const run *r = &d->runs[i];
        err = vg_buf_printf(out, "vigil_outbox_oldest_seconds{sink=\"%s\"} %.3f\n", r->conf->name,
                            r->cursor < end ? now - r->since : 0.0);
    }
    if (err == VG_OK)
        err = vg_buf_printf(out, "# HELP vigil_sink_alerts_total Alerts by sink and what became of "
                                 "them (delivered, dead-lettered, filtered out).\n"
                                 "# TYPE vigil_sink_alerts_total counter\n");
    for (size_t i = 0; i < d->n && err == VG_OK; i++) {
        const run *r = &d->runs[i];
        err = vg_buf_printf(out,
                            "vigil_sink_alerts_total{sink=\"%s\",outcome=\"delivered\"} %llu\n"
                            "vigil_sink_alerts_total{sink=\"%s\",outcome=\"dead\"} %llu\n"
                            "vigil_sink_alerts_total{sink=\"%s\",outcome=\"filtered\"} %llu\n",
                            r->conf->name, (unsigned long long)r->delivered, r->conf->name,
                            (unsigned long long)r->dead, r->conf->name,
                            (unsigned long long)r->skipped);
    }
    if (err == VG_OK)
        err = vg_buf_printf(out, "# HELP vigil_sink_failed_attempts_total Delivery attempts that "
                                 "failed (retried or dead-lettered).\n"
                                 "# TYPE vigil_sink_failed_attempts_total counter\n");
    for (size_t i = 0; i < d->n && err == VG_OK; i++) {
        vg_sink_health h = {0};
        d->runs[i].type->health(d->runs[i].self, &h);
        err = vg_buf_printf(out, "vigil_sink_failed_attempts_total{sink=\"%s\"} %llu\n",
                            d->runs[i].conf->name, (unsigned long long)h.failed);
    }
    if (err == VG_OK)
        err =
            vg_buf_printf(out, "# HELP vigil_sink_disabled 1 when the sink is disabled (a webhook "
                               "that answered 410 Gone: its alerts go to the dead-letter list "
                               "until a restart).\n"
                               "# TYPE vigil_sink_disabled gauge\n");
    for (size_t i = 0; i < d->n && err == VG_OK; i++) {
        vg_sink_health h = {0};
        d->runs[i].type->health(d->runs[i].self, &h);
        err = vg_buf_printf(out, "vigil_sink_disabled{sink=\"%s\"} %d\n", d->runs[i].conf->name,
                            h.disabled ? 1 : 0);
    }
    return err;
}

bool
vg_deliver_healthy(vg_deliver *d)
{
    for (size_t i = 0; i < d->n; i++) {
        vg_sink_health h = {0};
        d->runs[i].type->health(d->runs[i].self, &h);
        if (h.disabled)
            return false;
    }
    return true;
}

void
vg_deliver_close(vg_deliver *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->n; i++) {
        run *r = &d->runs[i];
        r->type->close(r->self);
        free(r->fin);
        free(r->q);
    }
    pthread_mutex_destroy(&d->mu);
    vg_buf_free(&d->arena);
    free(d->runs);
    free(d->batch);
    free(d->offs);
    free(d);
}
