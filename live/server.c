/*
 * server.c - the live engine (vg_server.h).
 *
 * Requests: NCTX nng contexts on one REP socket, each cycling receive ->
 * (queued to the engine thread) -> send reply -> receive. The engine thread
 * takes every queued request at once (a group), processes their events in
 * order through the engine, appends the accepted ones to the event log,
 * commits the log once (fdatasync), writes the group's alerts, and only then
 * sends the replies. A checkpoint (the engine's state flushed to LMDB with
 * the log position it reflects) runs every few seconds and at shutdown; the
 * log segments before it are removed. On start, the log's records after
 * the checkpoint are replayed through the engine: the same events in the
 * same order give the same state and the same alert ids.
 */
#include <errno.h>
#include <inttypes.h>
#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/util/platform.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vg_admin.h"
#include "vg_log.h"
#include "vg_deliver.h"
#include "vg_server.h"
#include "vg_tls.h"

#define NCTX 16

enum { REQ_RECV, REQ_QUEUED, REQ_SEND };

typedef struct server server;

/* A histogram of the Prometheus kind: cumulative at render time. */
#define NBUCKETS 10
typedef struct histo {
    const double *bounds; /* NBUCKETS upper bounds, the last +Inf */
    uint64_t n[NBUCKETS];
    uint64_t count;
    double sum;
} histo;

static const double seconds_bounds[NBUCKETS] = {0.0001, 0.0005, 0.001, 0.002, 0.005,
                                                0.01,   0.05,   0.1,   1,     1e300};
static const double size_bounds[NBUCKETS] = {1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 1e300};

static void
histo_add(histo *h, double v)
{
    int i = 0;
    while (i < NBUCKETS - 1 && v > h->bounds[i])
        i++;
    h->n[i]++;
    h->count++;
    h->sum += v;
}

/* What /metrics shows: updated by the engine thread at the end of each
 * group, read by the HTTP threads, both under the server's mutex. */
/* The stable codes of rejected events (BatchReply, /metrics). */
static const char *const code_names[] = {"malformed", "missing_id", "bad_time", "too_old"};
#define NCODES 4

typedef struct metrics {
    uint64_t accepted, duplicates, batches, bad_messages, oversized, log_failures;
    uint64_t rejected[NCODES];     /* by code_names[] */
    uint64_t *alerts, *suppressed; /* by rule */
    histo batch_events, group_seconds, commit_seconds;
    uint64_t map_used, map_size;
    uint64_t regex_limit_hits;
    int64_t log_position;
    bool ready;
} metrics;

typedef struct req {
    server *S;
    nng_ctx ctx;
    nng_aio *aio;
    int state;
    nng_msg *msg;     /* the request, while queued */
    vg_buf reply;     /* the encoded reply, until sent */
    size_t nevents;   /* in the request (metrics) */
    bool pull;        /* from the PULL socket: no reply */
    struct req *next; /* in the queue */
} req;

struct server {
    const vg_server_opts *o;
    vg_ruleset *rs;
    vg_engine *eng;
    vg_log *log;
    nng_socket sock;
    req reqs[NCTX];
    nng_socket pull;       /* the optional fire-and-forget endpoint */
    req puller;            /* its one receive: one at a time keeps the producers' order */
    uint64_t pull_batches; /* under mu */
    /* idle_advance: the event clock and the monotonic time when an event
     * last moved it */
    uint64_t regex_hits_before; /* of the engines before a reload */
    /* per rule of S->rs: its alerts and suppressed alerts under the engines
     * before a reload (matched by name), so the counters never go back */
    uint64_t *alerts_before, *suppressed_before;
    int64_t tick_clock;
    double tick_at;
    uint64_t tick_events; /* S->events then */
    uint64_t ticks;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    req *head, *tail; /* queued requests */
    bool busy;        /* the engine thread is processing a group */
    bool stopping;
    bool failed;
    /* the engine thread's */
    vg_pb_event *holder;
    vg_batch batch;
    vg_buf rec;
    vg_deliver *dl; /* the outbox to the sinks */
    bool sink_wake; /* under mu: a sink finished something */
    vg_buf sinkm;   /* under mu: the sinks' metrics text */
    vg_buf sinkm_tmp;
    vg_rejection *rej;
    size_t caprej;
    const vg_event **ptrs;
    size_t capptrs;
    double last_checkpoint;
    uint64_t events, rejected, duplicates, nalerts;
    /* decisions of the request being processed: each event's hits (rules
     * whose alerts count for it, their messages in hitbuf) */
    struct hitrec {
        const vg_rule *rule; /* NULL: a recorded hit (a duplicate's), below */
        size_t off, len;
        size_t name_off; /* recorded: the rule's name in hitbuf, NUL-terminated */
        int score, action;
        bool shadow;
    } * hits;
    vg_buf decrules; /* one decision's rules, encoded to be recorded or read back */
    size_t nhits, caphits;
    vg_buf hitbuf;
    vg_decision *dec;
    size_t ndec, capdec;
    vg_rule_hit *rh;
    size_t caprh;
    const vg_rule **drules;
    size_t capdrules;
    unsigned review_at, block_at;
    metrics m;                  /* under mu */
    uint64_t rej_codes[NCODES]; /* the engine thread's, moved into m per group */
    vg_admin *admin;
    uint64_t bad_msgs, oversized;
    vg_ruleset *next_rs; /* under mu: a new rule set for the engine thread to switch to */
    bool full;           /* under mu: the LMDB map is at its maximum */
    bool full_disk;      /* under mu: ... because the disk had no room for it */
    uint64_t reloads, reload_failures; /* under mu */
};

/* ---- Metrics ----------------------------------------------------------------- */

/* Moves the engine thread's counts into what /metrics shows (end of a group). */
static void
publish(server *S, size_t nreq, const histo *sizes, double group_s, double commit_s)
{
    uint64_t used, size;
    vg_engine_store_usage(S->eng, &used, &size);
    size_t nr = vg_ruleset_nrules(S->rs);
    S->sinkm_tmp.len = 0;
    if (S->dl != NULL)
        vg_deliver_metrics(S->dl, S->eng, &S->sinkm_tmp);
    pthread_mutex_lock(&S->mu);
    vg_buf t = S->sinkm; /* swapped: the HTTP threads read S->sinkm under mu */
    S->sinkm = S->sinkm_tmp;
    S->sinkm_tmp = t;
    metrics *m = &S->m;
    m->accepted = S->events;
    m->duplicates = S->duplicates;
    memcpy(m->rejected, S->rej_codes, sizeof m->rejected);
    m->bad_messages = S->bad_msgs;
    m->oversized = S->oversized;
    m->batches += nreq;
    if (sizes != NULL) {
        for (int i = 0; i < NBUCKETS; i++)
            m->batch_events.n[i] += sizes->n[i];
        m->batch_events.count += sizes->count;
        m->batch_events.sum += sizes->sum;
    }
    if (nreq > 0) {
        histo_add(&m->group_seconds, group_s);
        histo_add(&m->commit_seconds, commit_s);
    }
    for (size_t i = 0; m->alerts != NULL && i < nr; i++) {
        const vg_rule_stats *st = vg_engine_rule_stats(S->eng, i);
        m->alerts[i] = st->alerts + (S->alerts_before ? S->alerts_before[i] : 0);
        m->suppressed[i] = st->suppressed + (S->suppressed_before ? S->suppressed_before[i] : 0);
    }
    m->map_used = used;
    m->map_size = size;
    m->regex_limit_hits = vg_engine_regex_limit_hits(S->eng) + S->regex_hits_before;
    m->log_position = vg_engine_logpos(S->eng);
    pthread_mutex_unlock(&S->mu);
}

static void
histo_text(vg_buf *b, const char *name, const char *help, const histo *h)
{
    vg_buf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int i = 0; i < NBUCKETS; i++) {
        cum += h->n[i];
        if (i == NBUCKETS - 1)
            vg_buf_printf(b, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, cum);
        else
            vg_buf_printf(b, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name, h->bounds[i], cum);
    }
    vg_buf_printf(b, "%s_sum %.9g\n%s_count %" PRIu64 "\n", name, h->sum, name, h->count);
}

static void
metrics_text(void *ctx, vg_buf *b)
{
    server *S = ctx;
    pthread_mutex_lock(&S->mu);
    const metrics *m = &S->m;
    uint64_t in = m->accepted + m->duplicates;
    for (int i = 0; i < NCODES; i++)
        in += m->rejected[i];
    vg_buf_printf(b,
                  "# HELP vigil_events_in_total Events received in batches (each one accepted, "
                  "a duplicate or rejected).\n"
                  "# TYPE vigil_events_in_total counter\n"
                  "vigil_events_in_total %" PRIu64 "\n",
                  in);
    vg_buf_printf(b, "# HELP vigil_events_total Events received, by what became of them.\n"
                     "# TYPE vigil_events_total counter\n");
    vg_buf_printf(b, "vigil_events_total{outcome=\"accepted\"} %" PRIu64 "\n", m->accepted);
    vg_buf_printf(b, "vigil_events_total{outcome=\"duplicate\"} %" PRIu64 "\n", m->duplicates);
    for (int i = 0; i < NCODES; i++)
        vg_buf_printf(b, "vigil_events_total{outcome=\"rejected\",code=\"%s\"} %" PRIu64 "\n",
                      code_names[i], m->rejected[i]);
    vg_buf_printf(b,
                  "# HELP vigil_dedupe_hits_total Events whose id was seen before.\n"
                  "# TYPE vigil_dedupe_hits_total counter\nvigil_dedupe_hits_total %" PRIu64 "\n",
                  m->duplicates);
    vg_buf_printf(b,
                  "# HELP vigil_batches_total Ingest requests answered.\n"
                  "# TYPE vigil_batches_total counter\nvigil_batches_total %" PRIu64 "\n",
                  m->batches);
    vg_buf_printf(b,
                  "# HELP vigil_bad_messages_total Requests that were not an EventBatch.\n"
                  "# TYPE vigil_bad_messages_total counter\nvigil_bad_messages_total %" PRIu64 "\n",
                  m->bad_messages);
    vg_buf_printf(b,
                  "# HELP vigil_oversized_messages_total Requests over max_message_bytes (also "
                  "counted as bad messages; over twice the limit they are dropped unread).\n"
                  "# TYPE vigil_oversized_messages_total counter\nvigil_oversized_messages_total "
                  "%" PRIu64 "\n",
                  m->oversized);
    vg_buf_printf(b, "# HELP vigil_alerts_total Alerts by rule (suppressed ones counted apart).\n"
                     "# TYPE vigil_alerts_total counter\n");
    size_t nr = vg_ruleset_nrules(S->rs);
    for (size_t i = 0; m->alerts != NULL && i < nr; i++) {
        const char *name = vg_ruleset_rule(S->rs, i)->name;
        vg_buf_printf(b, "vigil_alerts_total{rule=\"%s\"} %" PRIu64 "\n", name, m->alerts[i]);
        vg_buf_printf(b, "vigil_alerts_total{rule=\"%s\",suppressed=\"true\"} %" PRIu64 "\n", name,
                      m->suppressed[i]);
    }
    histo_text(b, "vigil_batch_events", "Events per ingest request.", &m->batch_events);
    histo_text(b, "vigil_evaluation_seconds", "Time to evaluate a group of requests.",
               &m->group_seconds);
    histo_text(b, "vigil_commit_seconds", "Time to make a group's events durable (fdatasync).",
               &m->commit_seconds);
    vg_buf_printf(b,
                  "# HELP vigil_lmdb_map_used_bytes Bytes of the LMDB map in use.\n"
                  "# TYPE vigil_lmdb_map_used_bytes gauge\nvigil_lmdb_map_used_bytes %" PRIu64
                  "\n# HELP vigil_lmdb_map_bytes The LMDB map's size.\n"
                  "# TYPE vigil_lmdb_map_bytes gauge\nvigil_lmdb_map_bytes %" PRIu64 "\n",
                  m->map_used, m->map_size);
    vg_buf_printf(b,
                  "# HELP vigil_regex_limit_hits_total Regex matches stopped at their match "
                  "limit (the value taken as missing).\n"
                  "# TYPE vigil_regex_limit_hits_total counter\nvigil_regex_limit_hits_total "
                  "%" PRIu64 "\n",
                  m->regex_limit_hits);
    vg_buf_printf(b,
                  "# HELP vigil_log_position Events in the event log so far.\n"
                  "# TYPE vigil_log_position gauge\nvigil_log_position %" PRId64 "\n",
                  m->log_position);
    vg_buf_printf(b,
                  "# HELP vigil_reloads_total Rule sets loaded on SIGHUP.\n"
                  "# TYPE vigil_reloads_total counter\nvigil_reloads_total %" PRIu64 "\n"
                  "# HELP vigil_reload_failures_total SIGHUPs whose rules did not compile.\n"
                  "# TYPE vigil_reload_failures_total counter\n"
                  "vigil_reload_failures_total %" PRIu64 "\n",
                  S->reloads, S->reload_failures);
    vg_buf_printf(b,
                  "# HELP vigil_ready Whether the engine takes batches.\n"
                  "# TYPE vigil_ready gauge\nvigil_ready %d\n",
                  m->ready && !S->stopping && !S->failed && !S->full ? 1 : 0);
    if (S->sinkm.len > 0)
        vg_buf_append(b, S->sinkm.data, S->sinkm.len);
    pthread_mutex_unlock(&S->mu);
}

static bool
is_ready(void *ctx)
{
    server *S = ctx;
    pthread_mutex_lock(&S->mu);
    bool r = S->m.ready && !S->stopping && !S->failed && !S->full;
    pthread_mutex_unlock(&S->mu);
    return r;
}

/* The wall clock, Unix epoch milliseconds. */
static double
now_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void say(server *S, vg_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A line of the engine's log (vg_server_log). */
static void
say(server *S, vg_level level, const char *fmt, ...)
{
    if (S->o->log == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    vg_server_vlog(S->o->log, level, fmt, ap);
    va_end(ap);
}

void
vg_server_vlog(FILE *f, vg_level level, const char *fmt, va_list ap)
{
    static const char *const names[] = {"info", "warn", "error"};
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, sizeof when - n, ".%03ldZ", ts.tv_nsec / 1000000);
    /* logfmt: the message quoted, its quotes, backslashes and line breaks
     * escaped, so one event is one line a log shipper can split into keys */
    flockfile(f);
    fprintf(f, "time=%s level=%s msg=\"", when, names[level]);
    for (const char *p = msg; *p; p++) {
        if (*p == '"' || *p == '\\')
            putc_unlocked('\\', f);
        if (*p == '\n')
            fputs("\\n", f);
        else
            putc_unlocked(*p, f);
    }
    fputs("\"\n", f);
    funlockfile(f);
    fflush(f);
}

void
vg_server_log(FILE *f, vg_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vg_server_vlog(f, level, fmt, ap);
    va_end(ap);
}

static void
on_alert(void *ctx, const vg_alert *a)
{
    server *S = ctx;
    if (!a->due) { /* it counts for this event's decision, suppressed or not */
        if (S->nhits == S->caphits) {
            size_t cap = S->caphits ? S->caphits * 2 : 64;
            struct hitrec *v = realloc(S->hits, cap * sizeof *v);
            if (v == NULL) {
                S->failed = true;
                return;
            }
            S->hits = v;
            S->caphits = cap;
        }
        S->hits[S->nhits].rule = a->rule;
        S->hits[S->nhits].off = S->hitbuf.len;
        S->hits[S->nhits].len = a->message_len;
        S->nhits++;
        if (vg_buf_append(&S->hitbuf, a->message, a->message_len) != VG_OK)
            S->failed = true;
    }
    if (a->suppressed)
        return;
    S->nalerts++;
    if (vg_engine_outbox_add(S->eng, a, NULL) != VG_OK)
        S->failed = true; /* out of memory: stop rather than lose an alert */
}

/* ---- Requests ------------------------------------------------------------- */

static void
send_reply(req *r)
{
    nng_msg *m;
    if (nng_msg_alloc(&m, 0) != 0 || nng_msg_append(m, r->reply.data, r->reply.len) != 0) {
        /* no memory for the reply: the producer times out and resends,
         * and deduplication makes that harmless */
        r->state = REQ_RECV;
        nng_ctx_recv(r->ctx, r->aio);
        return;
    }
    r->state = REQ_SEND;
    nng_aio_set_msg(r->aio, m);
    nng_ctx_send(r->ctx, r->aio);
}

static void
reply_error(req *r, const char *why)
{
    vg_reply rep = {.error = why};
    if (vg_reply_encode(&rep, &r->reply) != VG_OK)
        r->reply.len = 0;
    send_reply(r);
}

/* A PULL message: queued like a request (in a request of its own, freed
 * after its group), then the next one is received at once, unless the engine
 * stops or is full: then PUSH producers block rather than lose events. One
 * receive at a time keeps the order they were sent in. */
static void
pull_cb(void *arg)
{
    req *r = arg;
    server *S = r->S;
    int rv = nng_aio_result(r->aio);
    if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
        return;
    if (rv != 0) {
        nng_recv_aio(S->pull, r->aio);
        return;
    }
    nng_msg *msg = nng_aio_get_msg(r->aio);
    req *q = calloc(1, sizeof *q);
    if (q == NULL) { /* no memory: this one is lost, as a fire-and-forget send may be */
        nng_msg_free(msg);
        nng_recv_aio(S->pull, r->aio);
        return;
    }
    q->S = S;
    q->pull = true;
    q->msg = msg;
    q->state = REQ_QUEUED;
    pthread_mutex_lock(&S->mu);
    if (S->tail)
        S->tail->next = q;
    else
        S->head = q;
    S->tail = q;
    S->pull_batches++;
    bool go = !S->stopping && !S->full;
    pthread_cond_signal(&S->cv);
    pthread_mutex_unlock(&S->mu);
    if (go)
        nng_recv_aio(S->pull, r->aio);
}

static void
req_cb(void *arg)
{
    req *r = arg;
    server *S = r->S;
    int rv = nng_aio_result(r->aio);
    if (r->state == REQ_SEND) {
        if (rv != 0)
            nng_msg_free(nng_aio_get_msg(r->aio));
        r->state = REQ_RECV;
        nng_ctx_recv(r->ctx, r->aio);
        return;
    }
    if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
        return;
    if (rv != 0) {
        nng_ctx_recv(r->ctx, r->aio);
        return;
    }
    r->msg = nng_aio_get_msg(r->aio);
    pthread_mutex_lock(&S->mu);
    if (S->stopping || S->full) {
        bool full = S->full, disk = S->full_disk;
        pthread_mutex_unlock(&S->mu);
        nng_msg_free(r->msg);
        r->msg = NULL;
        reply_error(r, !full  ? "the engine is shutting down: send again later"
                       : disk ? "the engine's disk is full: nothing taken; send again once it "
                                "has room"
                              : "the engine's state is full (state.max_size): nothing taken; send "
                                "again once it has room");
        return;
    }
    r->state = REQ_QUEUED;
    r->next = NULL;
    if (S->tail)
        S->tail->next = r;
    else
        S->head = r;
    S->tail = r;
    pthread_cond_signal(&S->cv);
    pthread_mutex_unlock(&S->mu);
}

/* The LMDB map is at state.max_size, or the disk has no room for it to grow:
 * stop taking batches (producers get an error and retry; /readyz fails)
 * rather than hold state that cannot be checkpointed. Everything acked so
 * far is in the log. */
static void
set_full(server *S)
{
    bool disk = vg_engine_disk_full(S->eng);
    pthread_mutex_lock(&S->mu);
    bool was = S->full;
    S->full = true;
    S->full_disk = disk;
    pthread_mutex_unlock(&S->mu);
    if (was)
        return;
    if (disk)
        say(S, VG_WARN,
            "no room on the disk for the state to grow: taking no more batches; free some "
            "space and restart (the event log keeps everything acked)");
    else
        say(S, VG_WARN,
            "the state is full (state.max_size reached): taking no more batches; restart "
            "with a larger max_size (the event log keeps everything acked)");
}

/* ---- The engine thread ---------------------------------------------------- */

static vg_err
add_rejection(server *S, size_t *n, uint32_t index, const vg_event *ev, const char *reason,
              const char *code)
{
    if (*n == S->caprej) {
        size_t cap = S->caprej ? S->caprej * 2 : 64;
        vg_rejection *v = realloc(S->rej, cap * sizeof *v);
        if (v == NULL)
            return VG_ENOMEM;
        S->rej = v;
        S->caprej = cap;
    }
    vg_rejection *j = &S->rej[(*n)++];
    memset(j, 0, sizeof *j);
    for (int i = 0; i < NCODES; i++)
        if (strcmp(code, code_names[i]) == 0)
            S->rej_codes[i]++;
    j->index = index;
    j->reason = reason;
    j->code = code;
    const vg_field *idf =
        ev ? vg_schema_field(vg_ruleset_schema(S->rs), ev->stream, "id", 2) : NULL;
    if (idf != NULL && ev->v[idf->slot].kind == VG_V_STR) {
        j->event_id = ev->v[idf->slot].u.s;
        j->idlen = ev->v[idf->slot].len;
    }
    return VG_OK;
}

/* The hits S->hits[h0..) encoded to be recorded with the decision: per hit,
 * u8 score, u8 action, u8 shadow, u16 name length, name, u32 message length,
 * message. */
static vg_err
hits_record(server *S, size_t h0, vg_buf *out)
{
    out->len = 0;
    vg_err err = VG_OK;
    for (size_t i = h0; i < S->nhits && err == VG_OK; i++) {
        const vg_rule *r = S->hits[i].rule;
        uint8_t head[3] = {(uint8_t)r->score, (uint8_t)r->action, r->shadow ? 1 : 0};
        size_t nl = strlen(r->name);
        uint16_t nl16 = (uint16_t)(nl > UINT16_MAX ? UINT16_MAX : nl);
        uint32_t ml = (uint32_t)S->hits[i].len;
        err = vg_buf_append(out, head, 3);
        err = err ? err : vg_buf_append(out, &nl16, 2);
        err = err ? err : vg_buf_append(out, r->name, nl16);
        err = err ? err : vg_buf_append(out, &ml, 4);
        err = err ? err : vg_buf_append(out, S->hitbuf.data + S->hits[i].off, ml);
    }
    return err;
}

/* Adds the recorded hits in rec (hits_record's bytes) to S->hits, their
 * names and messages to hitbuf. A damaged record adds what it holds whole. */
static vg_err
hits_from_record(server *S, const vg_buf *rec)
{
    size_t at = 0;
    while (at + 9 <= rec->len) {
        const uint8_t *p = (const uint8_t *)rec->data + at;
        uint16_t nl;
        uint32_t ml;
        memcpy(&nl, p + 3, 2);
        if (at + 5 + nl + 4 > rec->len)
            break;
        memcpy(&ml, p + 5 + nl, 4);
        if (at + 9 + nl + ml > rec->len)
            break;
        if (S->nhits == S->caphits) {
            size_t cap = S->caphits ? S->caphits * 2 : 64;
            struct hitrec *v = realloc(S->hits, cap * sizeof *v);
            if (v == NULL)
                return VG_ENOMEM;
            S->hits = v;
            S->caphits = cap;
        }
        struct hitrec *x = &S->hits[S->nhits];
        *x = (struct hitrec){.rule = NULL, .score = p[0], .action = p[1], .shadow = p[2] != 0};
        x->name_off = S->hitbuf.len;
        vg_err err = vg_buf_append(&S->hitbuf, p + 5, nl);
        err = err ? err : vg_buf_putc(&S->hitbuf, '\0');
        x->off = S->hitbuf.len;
        x->len = ml;
        err = err ? err : vg_buf_append(&S->hitbuf, p + 9 + nl, ml);
        if (err)
            return err;
        S->nhits++;
        at += 9 + nl + ml;
    }
    return VG_OK;
}

/* The decision for the event just processed (its hits are S->hits[h0..)):
 * recorded with its id, and with `want` added to S->dec for the reply
 * (otherwise its hits are dropped). */
static vg_err
decide(server *S, const vg_event *ev, vg_outcome out, size_t h0, size_t b0, bool want)
{
    vg_decision d = {0};
    if (out == VG_EV_DUPLICATE) {
        d.duplicate = true;
        vg_engine_recorded_decision(S->eng, &d.action, &d.score);
        if (want) { /* its rules, as recorded (SPEC §5: the recorded decision back) */
            bool found = false;
            vg_err err = vg_engine_recorded_decision_rules(S->eng, &S->decrules, &found);
            if (err == VG_OK && found)
                err = hits_from_record(S, &S->decrules);
            if (err)
                return err;
        }
    } else if (out == VG_EV_ACCEPTED) {
        size_t n = S->nhits - h0;
        if (n > S->capdrules) {
            const vg_rule **v = realloc(S->drules, n * sizeof *v);
            if (v == NULL)
                return VG_ENOMEM;
            S->drules = v;
            S->capdrules = n;
        }
        for (size_t i = 0; i < n; i++)
            S->drules[i] = S->hits[h0 + i].rule;
        vg_decide(S->drules, n, S->review_at, S->block_at, &d.action, &d.score);
        vg_engine_record_decision(S->eng, d.action, d.score);
        if (want && n > 0) { /* the rules too, for a resend of this id */
            vg_err err = hits_record(S, h0, &S->decrules);
            if (err == VG_OK)
                err = vg_engine_record_decision_rules(S->eng, S->decrules.data, S->decrules.len);
            if (err)
                return err;
        }
    }
    if (!want || out == VG_EV_REJECTED) {
        S->nhits = h0;
        S->hitbuf.len = b0;
        return VG_OK;
    }
    if (S->ndec == S->capdec) {
        size_t cap = S->capdec ? S->capdec * 2 : 64;
        vg_decision *v = realloc(S->dec, cap * sizeof *v);
        if (v == NULL)
            return VG_ENOMEM;
        S->dec = v;
        S->capdec = cap;
    }
    const vg_field *idf = vg_schema_field(vg_ruleset_schema(S->rs), ev->stream, "id", 2);
    d.event_id = ev->v[idf->slot].u.s;
    d.idlen = ev->v[idf->slot].len;
    d.hits = (vg_rule_hit *)(uintptr_t)h0; /* an index until the request is done */
    d.nhits = S->nhits - h0;
    S->dec[S->ndec++] = d;
    return VG_OK;
}

/* Turns the request's decisions' hit indices into vg_rule_hits. */
static vg_err
finish_decisions(server *S)
{
    if (S->nhits > S->caprh) {
        vg_rule_hit *v = realloc(S->rh, S->nhits * sizeof *v);
        if (v == NULL)
            return VG_ENOMEM;
        S->rh = v;
        S->caprh = S->nhits;
    }
    for (size_t i = 0; i < S->nhits; i++) {
        const struct hitrec *x = &S->hits[i];
        const vg_rule *r = x->rule;
        S->rh[i] = (vg_rule_hit){.rule = r ? r->name : S->hitbuf.data + x->name_off,
                                 .score = r ? r->score : x->score,
                                 .action = r ? r->action : x->action,
                                 .message = S->hitbuf.data + x->off,
                                 .message_len = (uint32_t)x->len,
                                 .shadow = r ? r->shadow : x->shadow};
    }
    for (size_t i = 0; i < S->ndec; i++)
        S->dec[i].hits = S->rh + (uintptr_t)S->dec[i].hits;
    return VG_OK;
}

static vg_err process_msg(server *S, req *r);

/* A sink finished something: the engine thread collects it. */
static void
wake_engine(void *ctx)
{
    server *S = ctx;
    pthread_mutex_lock(&S->mu);
    S->sink_wake = true;
    pthread_cond_signal(&S->cv);
    pthread_mutex_unlock(&S->mu);
}

/* Marks b's events stamped too far ahead of the wall clock
 * (vg_event_too_far_ahead: ids within the dedupe horizon of the real time
 * would look new, windows empty, deadlines fire). */
static void
mark_future(server *S, vg_batch *b)
{
    const vg_schema *sc = vg_ruleset_schema(S->rs);
    double now = now_wall_ms();
    for (size_t j = 0; j < b->n; j++)
        if (b->bad[j] == NULL && vg_event_too_far_ahead(sc, &b->ev[j], now))
            b->bad[j] = vg_too_far_ahead;
}

/* Processes one request's events; its reply is encoded into r->reply. The
 * request's bytes live until then: the event log copies events from them. */
static vg_err
process(server *S, req *r)
{
    vg_err err = process_msg(S, r);
    nng_msg_free(r->msg);
    r->msg = NULL;
    return err;
}

static vg_err
process_msg(server *S, req *r)
{
    char why[200];
    size_t len = nng_msg_len(r->msg);
    if (len > S->o->max_message_bytes) { /* nng let it in: up to twice the limit */
        S->bad_msgs++;
        S->oversized++;
        snprintf(why, sizeof why,
                 "the request is %zu bytes, over max_message_bytes (%zu): send smaller batches",
                 len, S->o->max_message_bytes);
        vg_reply rep = {.error = why, .permanent = true};
        return vg_reply_encode(&rep, &r->reply);
    }
    vg_err err = vg_pb_decode_batch(&S->holder, vg_ruleset_schema(S->rs), nng_msg_body(r->msg), len,
                                    &S->batch, why, sizeof why);
    if (err == VG_EINVAL || err == VG_ELIMIT) {
        S->bad_msgs++; /* a message, not an event: not among the rejected events */
        if (err == VG_ELIMIT)
            S->oversized++;
        /* too big to decode: sending it again cannot help */
        vg_reply rep = {.error = why, .permanent = err == VG_ELIMIT};
        return vg_reply_encode(&rep, &r->reply);
    }
    if (err)
        return err;
    vg_batch *b = &S->batch;
    r->nevents = b->n;
    S->nhits = S->ndec = 0;
    S->hitbuf.len = 0;
    if (b->n > S->capptrs) {
        const vg_event **p = realloc(S->ptrs, b->n * sizeof *p);
        if (p == NULL)
            return VG_ENOMEM;
        S->ptrs = p;
        S->capptrs = b->n;
    }
    mark_future(S, b);
    vg_reply rep = {0};
    size_t nrej = 0;
    for (size_t i = 0; i < b->n && err == VG_OK; i += VG_ENGINE_BATCH) {
        /* the look-ahead over the good events of this stretch */
        size_t k = 0;
        for (size_t j = i; j < b->n && j < i + VG_ENGINE_BATCH; j++)
            if (b->bad[j] == NULL)
                S->ptrs[k++] = &b->ev[j];
        err = vg_engine_prepare(S->eng, S->ptrs, k);
        for (size_t j = i; j < b->n && j < i + VG_ENGINE_BATCH && err == VG_OK; j++) {
            if (b->bad[j] != NULL) {
                S->rejected++;
                err = add_rejection(S, &nrej, (uint32_t)j, &b->ev[j], b->bad[j],
                                    b->bad[j] == vg_too_far_ahead ? "bad_time" : "malformed");
                continue;
            }
            vg_outcome out;
            const char *reason;
            size_t h0 = S->nhits, b0 = S->hitbuf.len;
            err = vg_engine_process(S->eng, &b->ev[j], on_alert, S, &out, &reason);
            if (err == VG_OK)
                err = decide(S, &b->ev[j], out, h0, b0, b->decisions);
            if (err)
                break;
            if (out == VG_EV_REJECTED) {
                S->rejected++;
                err = add_rejection(S, &nrej, (uint32_t)j, &b->ev[j], reason,
                                    reason == vg_too_old                         ? "too_old"
                                    : strcmp(reason, "the event has no id") == 0 ? "missing_id"
                                                                                 : "bad_time");
            } else if (out == VG_EV_DUPLICATE) {
                S->duplicates++;
                rep.duplicates++;
            } else {
                S->events++;
                rep.accepted++;
                int64_t pos;
                if (b->raw[j] != NULL) { /* the event's bytes as they came */
                    err = vg_log_add(S->log, b->raw[j], b->rawlen[j], &pos);
                } else {
                    S->rec.len = 0;
                    err = vg_pb_encode(vg_ruleset_schema(S->rs), &b->ev[j], &S->rec);
                    if (err == VG_OK)
                        err = vg_log_add(S->log, (const uint8_t *)S->rec.data, S->rec.len, &pos);
                }
            }
        }
    }
    if (err == VG_OK)
        err = finish_decisions(S);
    if (err)
        return err;
    rep.rej = S->rej;
    rep.nrej = nrej;
    rep.dec = S->dec;
    rep.ndec = S->ndec;
    return vg_reply_encode(&rep, &r->reply);
}

static vg_err
checkpoint(server *S)
{
    int64_t end = 0;
    vg_err err = vg_log_commit(S->log); /* nothing pending between groups */
    if (err == VG_OK && S->dl != NULL)  /* the sinks' cursors as they are now */
        err = vg_deliver_step(S->dl, S->eng);
    if (err == VG_OK) {
        /* the log position after every record processed so far */
        end = vg_engine_logpos(S->eng);
        err = vg_engine_flush(S->eng);
    }
    if (err == VG_OK)
        vg_log_trim(S->log, end);
    S->last_checkpoint = now_s();
    return err;
}

/* Switches to rule set rs between groups: the state is checkpointed, the
 * engine reopened over the new rules on the same state. The state format
 * names each rule's state by its identity (state_id), so a rule whose key,
 * on, where, when, match, within and suppress are unchanged keeps its state,
 * a changed one starts afresh, and a removed one's is dropped; pending
 * deadlines follow their rule the same way. */
static vg_err
switch_rules(server *S, vg_ruleset *rs)
{
    vg_err err = checkpoint(S);
    if (err)
        return err;
    int64_t pos = vg_engine_logpos(S->eng);
    S->regex_hits_before += vg_engine_regex_limit_hits(S->eng);
    /* the old rules' counts so far, to carry over by name */
    size_t nold = vg_ruleset_nrules(S->rs);
    uint64_t *oa = calloc(nold ? nold : 1, sizeof *oa), *os = calloc(nold ? nold : 1, sizeof *os);
    for (size_t i = 0; oa != NULL && os != NULL && i < nold; i++) {
        const vg_rule_stats *st = vg_engine_rule_stats(S->eng, i);
        oa[i] = st->alerts + (S->alerts_before ? S->alerts_before[i] : 0);
        os[i] = st->suppressed + (S->suppressed_before ? S->suppressed_before[i] : 0);
    }
    vg_ruleset *old_rs = vg_ruleset_ref(S->rs);
    vg_engine_close(S->eng);
    S->eng = NULL;
    char why[512] = "";
    vg_engine_opts eo = {.state_dir = S->o->state_dir,
                         .cache_keys = S->o->cache_keys,
                         .dedupe_horizon_ms = S->o->dedupe_horizon_ms,
                         .max_state_bytes = S->o->max_state_bytes,
                         .defer_evict = true};
    vg_ruleset *use = rs;
    err = vg_engine_open(rs, &eo, why, sizeof why, &S->eng);
    if (err) { /* the old rules on the state just written, then */
        say(S, VG_WARN, "the new rules can't open the state: %s; keeping the old ones", why);
        use = S->rs;
        if (vg_engine_open(S->rs, &eo, why, sizeof why, &S->eng) != VG_OK)
            err = VG_EIO;
        else
            err = VG_OK;
    }
    if (err == VG_OK) {
        vg_engine_set_logpos(S->eng, pos);
        err = vg_deliver_attach(S->dl, S->eng);
    }
    if (err) {
        free(oa);
        free(os);
        vg_ruleset_unref(old_rs);
        return err;
    }
    size_t nr = vg_ruleset_nrules(use);
    uint64_t *a = calloc(nr ? nr : 1, sizeof *a), *sp = calloc(nr ? nr : 1, sizeof *sp);
    uint64_t *ba = calloc(nr ? nr : 1, sizeof *ba), *bs = calloc(nr ? nr : 1, sizeof *bs);
    for (size_t i = 0; ba != NULL && bs != NULL && oa != NULL && os != NULL && i < nr; i++) {
        const char *name = vg_ruleset_rule(use, i)->name;
        for (size_t k = 0; k < nold; k++)
            if (strcmp(vg_ruleset_rule(old_rs, k)->name, name) == 0) {
                ba[i] = oa[k];
                bs[i] = os[k];
                break;
            }
    }
    free(oa);
    free(os);
    vg_ruleset_unref(old_rs);
    pthread_mutex_lock(&S->mu);
    free(S->alerts_before);
    free(S->suppressed_before);
    S->alerts_before = ba; /* NULL (out of memory): the counts start again */
    S->suppressed_before = bs;
    if (use == rs) {
        vg_ruleset_unref(S->rs);
        S->rs = vg_ruleset_ref(rs);
        S->reloads++;
    }
    if (a != NULL && sp != NULL) {
        free(S->m.alerts);
        free(S->m.suppressed);
        S->m.alerts = a;
        S->m.suppressed = sp;
        a = sp = NULL;
    }
    pthread_mutex_unlock(&S->mu);
    free(a);
    free(sp);
    if (use == rs)
        say(S, VG_INFO, "reloaded: %zu rules", nr);
    return VG_OK;
}

/* A tick record of the event log: the event clock moved to t with no event
 * (idle_advance). Events are records that begin with their length, never 0. */
#define TICK_LEN 10
static void
tick_record(int64_t t, uint8_t rec[TICK_LEN])
{
    rec[0] = 0;
    rec[1] = 'T';
    memcpy(rec + 2, &t, 8);
}

/* idle_advance (SPEC §5): the event clock moves on by the wall time since an
 * event last moved it, never past the wall clock, so trailing-`not`
 * deadlines fire on a quiet stream. A move that fires a deadline is a record
 * of the event log, made durable before it happens, so recovery moves the
 * clock at the same place among the events and the alerts keep their ids. */
static vg_err
idle_tick(server *S)
{
    int64_t clock;
    if (!vg_engine_clock(S->eng, &clock))
        return VG_OK;
    double now = now_s();
    if (S->events != S->tick_events || S->tick_at == 0) { /* events came: count from here */
        S->tick_events = S->events;
        S->tick_clock = clock;
        S->tick_at = now;
        return VG_OK;
    }
    double target = (double)S->tick_clock + (now - S->tick_at) * 1000.0, wall = now_wall_ms();
    int64_t t = (int64_t)(target < wall ? target : wall);
    if (t <= clock || vg_engine_next_deadline(S->eng) >= t)
        return VG_OK; /* nothing would fire: no need to say so in the log */
    uint8_t rec[TICK_LEN];
    tick_record(t, rec);
    int64_t pos;
    vg_err err = vg_log_add(S->log, rec, sizeof rec, &pos);
    if (err == VG_OK)
        err = vg_log_commit(S->log);
    if (err)
        return err;
    vg_engine_set_logpos(S->eng, vg_log_next(S->log));
    err = vg_engine_advance(S->eng, t, on_alert, S);
    if (err == VG_OK && S->failed)
        err = VG_ENOMEM;
    if (err == VG_OK)
        err = vg_deliver_step(S->dl, S->eng);
    S->ticks++;
    return err;
}

static void *
engine_main(void *arg)
{
    server *S = arg;
    for (;;) {
        pthread_mutex_lock(&S->mu);
        vg_ruleset *next_rs = S->next_rs;
        S->next_rs = NULL;
        pthread_mutex_unlock(&S->mu);
        if (next_rs != NULL) {
            vg_err e = switch_rules(S, next_rs);
            vg_ruleset_unref(next_rs);
            if (e) {
                say(S, VG_ERROR, "stopping: switching the rules failed: %s", vg_strerror(e));
                pthread_mutex_lock(&S->mu);
                S->failed = true;
                pthread_mutex_unlock(&S->mu);
                kill(getpid(), SIGTERM);
                break;
            }
        }
        pthread_mutex_lock(&S->mu);
        while (S->head == NULL && !S->stopping && S->next_rs == NULL && !S->sink_wake) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += 1;
            /* a quiet second: a round all the same, for idle_advance's
             * deadlines, sinks that failed and wait for another try, the
             * metrics, and checkpoints */
            if (pthread_cond_timedwait(&S->cv, &S->mu, &until) == ETIMEDOUT)
                break;
        }
        req *group = S->head;
        S->head = S->tail = NULL;
        bool stop = S->stopping && group == NULL;
        S->busy = group != NULL;
        S->sink_wake = false;
        pthread_mutex_unlock(&S->mu);
        if (stop)
            break;
        vg_err err = VG_OK;
        double t0 = now_s();
        histo sizes = {.bounds = size_bounds};
        size_t nreq = 0;
        for (req *r = group; r != NULL && err == VG_OK; r = r->next) {
            r->nevents = 0;
            err = process(S, r);
            histo_add(&sizes, (double)r->nevents);
            nreq++;
        }
        double t1 = now_s();
        if (err == VG_OK)
            err = vg_log_commit(S->log);
        double t2 = now_s();
        if (err == VG_OK && S->failed)
            err = VG_ENOMEM;
        if (err == VG_OK) {
            /* the events are durable: the state may say so at the next
             * checkpoint, and their alerts go out */
            vg_engine_set_logpos(S->eng, vg_log_next(S->log));
            /* the alerts go out once their events are durable; the
             * outbox goes to the store with any write-back below */
            vg_err derr = vg_deliver_step(S->dl, S->eng);
            if (derr)
                say(S, VG_WARN, "delivering alerts failed: %s (they stay in the outbox)",
                    vg_strerror(derr));
            /* write-back only behind the durable log; if it fails the
             * events are still durable, and acked */
            vg_err merr = vg_engine_maintain(S->eng);
            if (merr == VG_ELIMIT)
                set_full(S);
            else if (merr)
                say(S, VG_WARN, "writing state back failed: %s (the log keeps everything)",
                    vg_strerror(merr));
        }
        publish(S, nreq, &sizes, t1 - t0, t2 - t1);
        for (req *r = group, *next; r != NULL; r = next) {
            next = r->next;
            if (r->pull) {
                if (err)
                    say(S, VG_WARN, "a PULL batch was not taken (the event log failed)");
                vg_buf_free(&r->reply);
                free(r);
            } else if (err)
                reply_error(r, "the engine could not take the batch (its event log or memory "
                               "failed); send again later");
            else
                send_reply(r);
        }
        if (err) {
            /* state may now hold events the log does not: stop, and let the
             * restart recover from the checkpoint and the log */
            const char *lerr = vg_log_error(S->log);
            if (lerr != NULL)
                say(S, VG_ERROR,
                    "stopping: the event log could not be written: %s (the batches of this "
                    "group were refused, nothing of them acked; %s, then restart: recovery "
                    "loses nothing acked)",
                    lerr,
                    strcmp(lerr, strerror(ENOSPC)) == 0 ? "free some disk space"
                                                        : "fix the disk or the folder");
            else
                say(S, VG_ERROR, "stopping: %s", vg_strerror(err));
            pthread_mutex_lock(&S->mu);
            S->failed = true;
            S->busy = false;
            pthread_cond_broadcast(&S->cv);
            pthread_mutex_unlock(&S->mu);
            kill(getpid(), SIGTERM);
            break;
        }
        if (S->o->idle_advance && (err = idle_tick(S)) != VG_OK) {
            say(S, VG_ERROR, "stopping: moving the event clock (idle_advance) failed: %s",
                vg_strerror(err));
            pthread_mutex_lock(&S->mu);
            S->failed = true;
            S->busy = false;
            pthread_cond_broadcast(&S->cv);
            pthread_mutex_unlock(&S->mu);
            kill(getpid(), SIGTERM);
            break;
        }
        if (now_s() - S->last_checkpoint > S->o->checkpoint_s && (err = checkpoint(S)) != VG_OK) {
            if (err == VG_ELIMIT)
                set_full(S);
            else
                say(S, VG_WARN,
                    "a checkpoint failed: %s (the log keeps everything; retrying later)",
                    vg_strerror(err));
        }
        pthread_mutex_lock(&S->mu);
        S->busy = false;
        pthread_cond_broadcast(&S->cv);
        pthread_mutex_unlock(&S->mu);
    }
    return NULL;
}

/* ---- Recovery --------------------------------------------------------------- */

typedef struct recovery {
    server *S;
    vg_pb_event *holder;
    int64_t n;
} recovery;

static vg_err
recover_one(void *ctx, int64_t pos, const uint8_t *rec, size_t len)
{
    recovery *R = ctx;
    (void)pos;
    if (len == TICK_LEN && rec[0] == 0 && rec[1] == 'T') { /* idle_advance moved the clock */
        int64_t t;
        memcpy(&t, rec + 2, 8);
        return vg_engine_advance(R->S->eng, t, on_alert, R->S);
    }
    /* a record is an Event as the delimited format writes it: skip the
     * length prefix */
    size_t k = 0;
    while (k < len && k < 10 && (rec[k] & 0x80))
        k++;
    k++;
    vg_event ev;
    char why[160];
    if (k > len || vg_pb_decode(&R->holder, vg_ruleset_schema(R->S->rs), rec + k, len - k, &ev, why,
                                sizeof why) != VG_OK)
        return VG_EINVAL;
    vg_outcome out;
    const char *reason;
    R->n++;
    size_t h0 = R->S->nhits, b0 = R->S->hitbuf.len;
    vg_err err = vg_engine_process(R->S->eng, &ev, on_alert, R->S, &out, &reason);
    /* the decision is recorded again, for resends after the restart */
    return err ? err : decide(R->S, &ev, out, h0, b0, false);
}

/* ---- Running ---------------------------------------------------------------- */

int
vg_server_run(vg_ruleset *rs, const vg_server_opts *opts)
{
    vg_server_opts o = *opts;
    if (o.max_message_bytes == 0)
        o.max_message_bytes = (size_t)16 << 20;
    if (o.checkpoint_s <= 0)
        o.checkpoint_s = 30;
    server *S = calloc(1, sizeof *S);
    if (S == NULL)
        return 1;
    S->o = &o;
    S->rs = vg_ruleset_ref(rs); /* the server's own: SIGHUP may swap it */
    S->review_at = o.review_at; /* 0 is a threshold like any other */
    S->block_at = o.block_at;
    pthread_mutex_init(&S->mu, NULL);
    pthread_cond_init(&S->cv, NULL);
    S->m.batch_events.bounds = size_bounds;
    S->m.group_seconds.bounds = seconds_bounds;
    S->m.commit_seconds.bounds = seconds_bounds;
    size_t nr = vg_ruleset_nrules(rs);
    S->m.alerts = calloc(nr ? nr : 1, sizeof(uint64_t));
    S->m.suppressed = calloc(nr ? nr : 1, sizeof(uint64_t));
    /* signals go to sigwait() below, never to nng's or the engine's threads */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    int rc = 1;
    char why[512] = "";
    char logdir[4096];
    snprintf(logdir, sizeof logdir, "%s/log", o.state_dir);
    vg_engine_opts eo = {.state_dir = o.state_dir,
                         .cache_keys = o.cache_keys,
                         .dedupe_horizon_ms = o.dedupe_horizon_ms,
                         .max_state_bytes = o.max_state_bytes,
                         .defer_evict = true};
    int64_t end = 0;
    pthread_t th;
    bool started = false;
    int rv = 0;
    /* no sinks configured: stdout */
    vg_sink_conf out1 = {.type = "stdout", .name = "stdout", .file = o.alerts};
    vg_err err = vg_engine_open(rs, &eo, why, sizeof why, &S->eng);
    if (err == VG_OK)
        err = vg_deliver_open(o.nsinks ? o.sinks : &out1, o.nsinks ? o.nsinks : 1, wake_engine, S,
                              &S->dl, why, sizeof why);
    if (err == VG_OK && (err = vg_deliver_attach(S->dl, S->eng)) != VG_OK)
        snprintf(why, sizeof why, "can't read the sinks' cursors: %s", vg_strerror(err));
    if (err == VG_OK)
        err = vg_log_open(logdir, &S->log, &end, why, sizeof why);
    if (err) {
        say(S, VG_ERROR, "%s", why[0] ? why : vg_strerror(err));
        goto done;
    }
    /* /healthz answers from here on, through a long recovery; /readyz only
     * once batches are taken */
    publish(S, 0, NULL, 0, 0);
    if (o.http != NULL && o.http[0] != '\0') {
        vg_admin_fns fns = {metrics_text, is_ready, S};
        if (vg_admin_start(o.http, &fns, &S->admin, why, sizeof why) != VG_OK) {
            say(S, VG_ERROR, "%s (set http to another address, or to \"\" for none)", why);
            goto done;
        }
    }
    /* recovery: the log's records after the checkpoint, through the engine */
    int64_t from = vg_engine_logpos(S->eng);
    if (end > from) {
        recovery R = {S, NULL, 0};
        double t0 = now_s();
        err = vg_log_replay(S->log, from, recover_one, &R);
        vg_pb_event_free(R.holder);
        if (err) {
            say(S, VG_ERROR, "recovery from the event log failed at a damaged record: %s",
                vg_strerror(err));
            goto done;
        }
        vg_engine_set_logpos(S->eng, end);
        say(S, VG_INFO, "recovered %" PRId64 " events from the event log in %.1f s", R.n,
            now_s() - t0);
    } else {
        vg_engine_set_logpos(S->eng, end);
    }
    if ((err = checkpoint(S)) != VG_OK) {
        say(S, VG_ERROR, "can't write a checkpoint to '%s': %s", o.state_dir,
            err != VG_ELIMIT              ? vg_strerror(err)
            : vg_engine_disk_full(S->eng) ? "no room on the disk: free some space and start again"
                                          : "state.max_size reached: start with a larger max_size");
        goto done;
    }
    publish(S, 0, NULL, 0, 0); /* what recovery made; the engine thread publishes next */
    if ((rv = nng_rep0_open(&S->sock)) != 0 ||
        /* nng drops a bigger message and the connection with it, unanswered;
         * up to twice the limit it is read, answered with an error, counted */
        (rv = nng_socket_set_size(S->sock, NNG_OPT_RECVMAXSZ, 2 * o.max_message_bytes)) != 0) {
        say(S, VG_ERROR, "can't listen on %s: %s", o.ingest_url, nng_strerror(rv));
        goto done;
    }
    if (vg_tls_listen(S->sock, o.ingest_url, &o.tls, why, sizeof why) != VG_OK) {
        say(S, VG_ERROR, "%s", why);
        goto done;
    }
    for (int i = 0; i < NCTX; i++) {
        req *r = &S->reqs[i];
        r->S = S;
        if ((rv = nng_aio_alloc(&r->aio, req_cb, r)) != 0 ||
            (rv = nng_ctx_open(&r->ctx, S->sock)) != 0) {
            say(S, VG_ERROR, "can't start: %s", nng_strerror(rv));
            goto done;
        }
    }
    if (o.stream_url != NULL && o.stream_url[0] != '\0') {
        if ((rv = nng_pull0_open(&S->pull)) != 0 ||
            (rv = nng_socket_set_size(S->pull, NNG_OPT_RECVMAXSZ, 2 * o.max_message_bytes)) != 0) {
            say(S, VG_ERROR, "can't listen on %s (stream): %s", o.stream_url, nng_strerror(rv));
            goto done;
        }
        if (vg_tls_listen(S->pull, o.stream_url, &o.tls, why, sizeof why) != VG_OK) {
            say(S, VG_ERROR, "%s (stream)", why);
            goto done;
        }
        S->puller.S = S;
        S->puller.pull = true;
        if ((rv = nng_aio_alloc(&S->puller.aio, pull_cb, &S->puller)) != 0) {
            say(S, VG_ERROR, "can't start: %s", nng_strerror(rv));
            goto done;
        }
    }
    if (pthread_create(&th, NULL, engine_main, S) != 0) {
        say(S, VG_ERROR, "can't start the engine thread");
        goto done;
    }
    started = true;
    pthread_mutex_lock(&S->mu);
    S->m.ready = true;
    pthread_mutex_unlock(&S->mu);
    for (int i = 0; i < NCTX; i++)
        nng_ctx_recv(S->reqs[i].ctx, S->reqs[i].aio);
    if (S->pull.id != 0)
        nng_recv_aio(S->pull, S->puller.aio);
    say(S, VG_INFO, "ready: %zu rules, ingest on %s%s%s, state in %s", vg_ruleset_nrules(rs),
        o.ingest_url, S->pull.id != 0 ? ", stream on " : "", S->pull.id != 0 ? o.stream_url : "",
        o.state_dir);
    for (;;) {
        int sig = 0;
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            vg_ruleset *next = o.reload ? o.reload(o.reload_ctx) : NULL;
            pthread_mutex_lock(&S->mu);
            if (next == NULL && o.reload != NULL) {
                S->reload_failures++;
                pthread_mutex_unlock(&S->mu);
                say(S, VG_WARN,
                    "SIGHUP: the rules do not compile (above); the old ones keep running");
                continue;
            }
            vg_ruleset_unref(S->next_rs); /* a reload not yet taken: the newest wins */
            S->next_rs = next;
            pthread_cond_broadcast(&S->cv);
            pthread_mutex_unlock(&S->mu);
            continue;
        }
        break;
    }
    say(S, VG_INFO, "stopping: no new batches; finishing those in flight");
    if (S->pull.id != 0) /* nothing more from it; what it queued is processed */
        nng_close(S->pull);
    pthread_mutex_lock(&S->mu);
    S->stopping = true;
    pthread_cond_broadcast(&S->cv);
    while ((S->head != NULL && !S->failed) || S->busy) /* failed: the thread is gone */
        pthread_cond_wait(&S->cv, &S->mu);
    pthread_mutex_unlock(&S->mu);
    /* let the last replies leave */
    for (int tries = 0; tries < 200; tries++) {
        bool sending = false;
        for (int i = 0; i < NCTX; i++)
            sending |= S->reqs[i].state == REQ_SEND;
        if (!sending)
            break;
        nng_msleep(10);
    }
    rc = S->failed ? 1 : 0;
done:
    pthread_mutex_lock(&S->mu); /* an error path may come here with the thread running */
    S->stopping = true;
    pthread_cond_broadcast(&S->cv);
    pthread_mutex_unlock(&S->mu);
    vg_admin_stop(S->admin);
    if (S->sock.id != 0)
        nng_close(S->sock);
    if (S->pull.id != 0)
        nng_close(S->pull);
    if (started)
        pthread_join(th, NULL);
    for (int i = 0; i < NCTX; i++) {
        if (S->reqs[i].aio)
            nng_aio_free(S->reqs[i].aio);
        vg_buf_free(&S->reqs[i].reply);
    }
    if (S->puller.aio)
        nng_aio_free(S->puller.aio);
    for (req *r = S->head, *next; r != NULL; r = next) { /* left by a failure */
        next = r->next;
        nng_msg_free(r->msg);
        if (r->pull) {
            vg_buf_free(&r->reply);
            free(r);
        }
    }
    S->head = S->tail = NULL;
    if (S->eng != NULL && S->log != NULL && S->dl != NULL && !S->failed && rc == 0) {
        /* the sinks finish what they can; the rest stays in the outbox */
        if (vg_deliver_drain(S->dl, S->eng, 5.0) == VG_ELIMIT)
            say(S, VG_WARN,
                "some alerts are not delivered yet: they stay in the outbox for the next "
                "start (see vigil_outbox_depth)");
        if ((err = checkpoint(S)) == VG_ELIMIT) { /* full: the next start recovers from the log */
            if (vg_engine_disk_full(S->eng))
                say(S, VG_WARN,
                    "the last checkpoint does not fit on the disk; the event log keeps "
                    "everything: free some space and restart");
            else
                say(S, VG_WARN,
                    "the last checkpoint does not fit in state.max_size; the event log keeps "
                    "everything: restart with a larger max_size");
        } else if (err != VG_OK) {
            say(S, VG_ERROR, "the last checkpoint failed: %s (the log keeps everything)",
                vg_strerror(err));
            rc = 1;
        }
    }
    if (rc == 0)
        say(S, VG_INFO,
            "stopped: %" PRIu64 " events, %" PRIu64 " duplicates, %" PRIu64 " rejected, %" PRIu64
            " alerts, %" PRIu64 " requests refused whole (not an EventBatch, or too big)",
            S->events, S->duplicates, S->rejected, S->nalerts, S->bad_msgs);
    vg_deliver_close(S->dl);
    if (S->failed) /* memory may hold half a failed batch: the log and the checkpoint rule */
        vg_engine_discard(S->eng);
    else
        vg_engine_close(S->eng);
    vg_log_close(S->log);
    vg_ruleset_unref(S->next_rs);
    vg_ruleset_unref(S->rs);
    vg_pb_event_free(S->holder);
    vg_batch_free(&S->batch);
    vg_buf_free(&S->rec);
    vg_buf_free(&S->sinkm);
    vg_buf_free(&S->sinkm_tmp);
    free(S->rej);
    free(S->ptrs);
    free(S->hits);
    free(S->alerts_before);
    free(S->suppressed_before);
    free(S->m.alerts);
    free(S->m.suppressed);
    free(S->dec);
    free(S->rh);
    free(S->drules);
    vg_buf_free(&S->hitbuf);
    vg_buf_free(&S->decrules);
    pthread_mutex_destroy(&S->mu);
    pthread_cond_destroy(&S->cv);
    free(S);
    return rc;
}
