/*
 * vg_sink.h - alert sinks: one small interface, and the table of them.
 *
 * The live engine appends every alert to the outbox (an ordered list in
 * LMDB, each record numbered by seq) and hands each sink the records after
 * its cursor. A sink takes records without blocking, delivers them on its own
 * time (its own thread, or at once), and reports each one finished through
 * the done callback: delivered, or given up on (dead-lettered). The engine
 * moves a sink's durable cursor past a record only once it and every record
 * before it are finished, so after a crash a sink sees again what it had not
 * finished: delivery is at least once, and a receiver that dedupes on the
 * alert id sees each alert once.
 *
 * The engine knows sinks only through this header; adapters depend on
 * proto/base alone.
 */
#ifndef VG_SINK_H
#define VG_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vg_base.h"

/* One alert from the outbox. The pointers are valid only during deliver():
 * a sink that keeps a record copies it. */
typedef struct vg_outrec {
    uint64_t seq;     /* its place in the outbox, ascending */
    const char *rule; /* the rule's name (NUL-terminated) */
    const char *id;   /* the alert id (NUL-terminated) */
    const char *key;  /* the rule's key value (NUL-terminated) */
    const char *json; /* the alert JSON of SPEC section 3, without a newline */
    size_t len;
    bool shadow;     /* the rule is in shadow mode */
    int64_t time_ms; /* the alert's time */
} vg_outrec;

typedef enum vg_sink_outcome {
    VG_SINK_DELIVERED, /* the destination has it */
    VG_SINK_DEAD       /* given up on: it went to the dead-letter list */
} vg_sink_outcome;

/* Called by a sink, from any thread, once per record it finished: a sink
 * with its own thread calls it from there; synchronous sinks (stdout, jsonl,
 * nng) call it from deliver(), before deliver() returns. */
typedef void vg_sink_done_fn(void *ctx, uint64_t seq, vg_sink_outcome outcome);

/* A sink's configuration: the union of every type's keys (SPEC section 5,
 * "sinks"); a type reads its own and open() refuses what it cannot use. */
typedef struct vg_sink_conf {
    const char *type; /* "stdout", "jsonl", "nng", "webhook" */
    const char *name; /* for logs and metrics: type, or type:url/path */
    const char *path; /* jsonl */
    bool fsync;       /* jsonl: fdatasync after each batch */
    const char *url;  /* nng, webhook */
    /* webhook */
    const char *const *secrets; /* whsec_... values, several for rotation */
    size_t nsecrets;
    const int64_t *retry_ms; /* delay after failure i; then the dead-letter list */
    size_t nretry;
    double timeout_s;     /* one attempt's limit (default 10 s) */
    bool allow_private;   /* loopback, private, link-local targets allowed */
    const char *proxy;    /* NULL: no proxy, whatever the environment says */
    size_t max_in_flight; /* requests at once (default 64) */
    /* a record of each attempt, for logs: may be NULL. Also called by the
     * engine with attempt 0 when a synchronous sink starts failing (error:
     * why) and when it works again (status 200) */
    void (*attempt)(void *ctx, const char *sink, const char *alert_id, int attempt, long status,
                    double latency_s, const char *error);
    void *attempt_ctx;
    /* for the engine, not the sink: which alerts go to it (rule names or
     * tags; none: all) and whether shadow-mode ones do (webhooks) */
    const char *const *rules;
    size_t nrules;
    bool shadow;
    /* where alerts go for stdout (default stdout); tests may point it elsewhere */
    void *file; /* FILE * */
} vg_sink_conf;

/* Health, for /readyz and /metrics. */
typedef struct vg_sink_health {
    bool ok;            /* the last delivery worked, or none was due */
    bool disabled;      /* a webhook that answered 410 */
    uint64_t delivered; /* records delivered since open */
    uint64_t failed;    /* attempts that failed */
    uint64_t dead;      /* records dead-lettered */
    size_t in_flight;   /* records taken, not finished */
    char last_error[160];
} vg_sink_health;

typedef struct vg_sink_type {
    const char *type;
    /* Checks conf and starts the sink; done(ctx, ...) reports each record.
     * VG_EINVAL with *why when the configuration cannot work. */
    vg_err (*open)(const vg_sink_conf *conf, vg_sink_done_fn *done, void *ctx, void **self,
                   char *why, size_t whylen);
    /* Takes n records (copies what it keeps) and returns at once. VG_ELIMIT:
     * it holds as many as it will; none of these were taken, offer them
     * again later. Another error (VG_EIO: the destination failed, and
     * health() says why; VG_ENOMEM): the records already reported done are
     * finished, the others were not taken - offer them again later. */
    vg_err (*deliver)(void *self, const vg_outrec *recs, size_t n);
    /* Waits up to timeout_s for what it holds to be finished. */
    vg_err (*flush)(void *self, double timeout_s);
    void (*health)(void *self, vg_sink_health *out);
    /* Stops at once; records not finished are not reported. */
    void (*close)(void *self);
} vg_sink_type;

/* Does the sink take this alert? Its rules filter (rule names or tags;
 * none: all), and for webhooks its shadow switch. */
bool vg_sink_wants(const vg_sink_conf *c, const vg_outrec *rec);

/* The sink type called name, or NULL. */
const vg_sink_type *vg_sink_find(const char *type);

/* Every sink type's name, NULL-terminated, for messages. */
extern const char *const vg_sink_types[];

#endif
