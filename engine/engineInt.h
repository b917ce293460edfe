/*
 * engineInt.h - private to the engine: per-key state and its parts.
 *
 * State is per (keyspace, key): a key record holds, for each rule of the
 * rule set, that rule's state for the key (NULL until an event of the key
 * passes the rule's `where`). A rule's state is its window entries (time and
 * column values, sorted by time, ties in arrival order, pruned past the
 * rule's longest window), its `over history` sums, its prev() values and its
 * suppression clock. Everything else (window sums, distinct counts) is
 * computed from the entries, so the state serialises as just that.
 */
#ifndef VG_ENGINE_INT_H
#define VG_ENGINE_INT_H

#include "vg_engine.h"

/* `over history` for one aggregate: O(1) state. */
typedef struct hist {
    uint64_t n; /* entries with a value */
    double sum;
    int64_t xsum; /* money: exact, in 1/10000 of a unit */
    double min, max;
} hist;

typedef struct rstate {
    int64_t *t;      /* entry times, ascending */
    double *v;       /* ncols values per entry (numbers, or hashes as bits) */
    uint64_t *miss;  /* per entry: bit c set = column c missing */
    uint32_t n, cap; /* entries */
    hist *hist;      /* one per aggregate (only HISTORY ones are used) */
    vg_value *prev;  /* nprevs values of the previous event that passed `where` */
    char *prevbuf;   /* the strings of prev, owned */
    size_t prevcap;
    bool has_prev;
    bool alerted; /* an alert was emitted: suppression runs from last_alert */
    int64_t last_alert;
} rstate;

typedef struct keyrec {
    uint64_t hash; /* 0: empty slot */
    uint16_t keyspace;
    bool dirty; /* changed since it was last written to the store */
    uint32_t keylen;
    uint32_t touched; /* the cache generation of its last event */
    char *key;
    rstate **rules; /* by rule index */
} keyrec;

/* store.c: state in LMDB (see the file's header for the format) */
typedef struct store store;
vg_err store_open(const char *dir, bool durable, size_t map_bytes, store **out, char *why,
                  size_t whylen);
void store_close(store *s);
vg_err store_get(store *s, const char *ks, const char *key, uint32_t keylen, vg_buf *scratch,
                 vg_buf *out, bool *found);
vg_err store_put(store *s, const char *ks, const char *key, uint32_t keylen, const vg_buf *rec,
                 vg_buf *scratch);
vg_err store_put_id(store *s, const char *id, uint32_t len, int64_t time_ms);
vg_err store_ids(store *s, int64_t horizon_start,
                 void (*fn)(void *, const char *, uint32_t, int64_t), void *ctx);
vg_err store_clock(store *s, int64_t *clock, bool write);
vg_err store_commit(store *s);
vg_err keyrec_encode(const keyrec *k, const vg_ruleset *rs, size_t nrules, vg_buf *out);
vg_err keyrec_decode(keyrec *k, const vg_ruleset *rs, size_t nrules, const vg_buf *in);

/* window.c */
rstate *rstate_new(const vg_rule *r);
void rstate_free(rstate *s, const vg_rule *r);
/* Processes one event of a key for a when rule: computes the aggregates
 * (aggs, r->naggs values) around adding the event's entry (cols: its column
 * values), in SPEC order. scratch is room for distinct(). */
vg_err rstate_add(rstate *s, const vg_rule *r, int64_t t, const vg_value *cols, vg_value *aggs,
                  vg_buf *scratch);
/* Remembers the prev() values of the event just processed. */
vg_err rstate_set_prev(rstate *s, const vg_rule *r, const vg_value *prev);

/* alert.c */
/* Renders the alert JSON of SPEC §3 into out. */
vg_err alert_json(const vg_alert *a, const vg_rule *r, const vg_value *aggs, unsigned digits,
                  const char *const *tags, vg_buf *out);
void alert_id(const vg_rule *r, const char *key, uint32_t keylen, const char *event_id,
              uint32_t idlen, char out[33]);

#endif
