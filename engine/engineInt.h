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

#include <stdlib.h>
#include <string.h>

#include "vg_engine.h"

/* slab.c: the allocator of per-key state (see there) */
typedef struct slab slab;
slab *slab_new(void);
void slab_destroy(slab *s); /* frees every block */
void *slab_alloc(slab *s, size_t n);
void slab_free(slab *s, void *p, size_t n);
void *slab_realloc(slab *s, void *p, size_t old, size_t n);

/* `over history` for one aggregate: O(1) state. */
typedef struct hist {
    uint64_t n; /* entries with a value */
    double sum;
    int64_t xsum; /* money: exact, in 1/10000 of a unit */
    double min, max;
} hist;

/* Window entries live in one array of 64-bit words, stride 2 + ncols per
 * entry: the time (int64), the missing bits (bit c: column c is missing),
 * then each column's value (a double's bits). The first few entries sit in
 * the rstate's own allocation, so a key's small windows cost no extra
 * pointer chase. */
typedef struct rstate {
    uint64_t *e;     /* entries, ascending by time */
    uint32_t n, cap; /* entries */
    uint32_t stride; /* words per entry */
    bool inline_e;   /* e points into this allocation */
    hist *hist;      /* one per aggregate (only HISTORY ones are used) */
    vg_value *prev;  /* nprevs values of the previous event that passed `where` */
    char *prevbuf;   /* the strings of prev, owned */
    size_t prevcap;
    bool has_prev;
    bool alerted; /* an alert was emitted: suppression runs from last_alert */
    int64_t last_alert;
    /* hist[], prev[] and the first RSTATE_INLINE entries follow */
} rstate;

#define RSTATE_INLINE 4

static inline int64_t
ent_time(const rstate *s, uint32_t i)
{
    return (int64_t)s->e[(size_t)i * s->stride];
}

static inline uint64_t
ent_miss(const rstate *s, uint32_t i)
{
    return s->e[(size_t)i * s->stride + 1];
}

static inline double
ent_val(const rstate *s, uint32_t i, uint32_t c)
{
    double d;
    memcpy(&d, &s->e[(size_t)i * s->stride + 2 + c], sizeof d);
    return d;
}

/* Makes room for n entries (VG_ENOMEM). */
vg_err rstate_reserve(slab *sl, rstate *s, uint32_t n);

/* window.c: rule state */
/* The bytes of a rule's state (with room for its first few entries), and
 * making one in mem (that many bytes, from sl). rstate_free() frees it. */
size_t rstate_size(const vg_rule *r);
rstate *rstate_init(const vg_rule *r, void *mem);
void rstate_free(slab *sl, rstate *s, const vg_rule *r);

typedef struct keyrec {
    uint64_t hash; /* 0: empty slot */
    uint16_t keyspace;
    bool dirty; /* changed since it was last written to the store */
    uint32_t keylen;
    uint32_t touched; /* the cache generation of its last event */
    char *key;
    rstate **rules; /* by rule index; NULL until the rule's first event of the key */
} keyrec;

/* The rule's state in k, made on its first event (NULL: out of memory). */
static inline rstate *
keyrec_state(slab *sl, keyrec *k, const vg_rule *r, size_t ri)
{
    if (k->rules[ri] == NULL) {
        void *m = slab_alloc(sl, rstate_size(r));
        if (m != NULL)
            k->rules[ri] = rstate_init(r, m);
    }
    return k->rules[ri];
}

/* A slot of the key table: the record's hash, so probes need not touch it. */
typedef struct keyslot {
    uint64_t hash; /* 0: empty */
    keyrec *k;
} keyslot;

/* store.c: state in LMDB (see the file's header for the format) */
typedef struct store store;
vg_err store_open(const char *dir, bool durable, size_t max_bytes, store **out, char *why,
                  size_t whylen);
void store_close(store *s);
vg_err store_get(store *s, const char *ks, const char *key, uint32_t keylen, vg_buf *scratch,
                 vg_buf *out, bool *found);
vg_err store_put(store *s, const char *ks, const char *key, uint32_t keylen, const vg_buf *rec,
                 vg_buf *scratch);
/* An id's record: its time and its recorded decision (dec: decided, action,
 * score). */
vg_err store_put_id(store *s, const char *id, uint32_t len, int64_t time_ms, const uint8_t dec[3]);
vg_err store_ids(store *s, int64_t horizon_start,
                 void (*fn)(void *, const char *, uint32_t, int64_t, const uint8_t *), void *ctx);
/* A named 64-bit value of the meta database (left as it is when absent). */
vg_err store_meta(store *s, const char *name, int64_t *value, bool write);
/* The timers database: emptied, added to, read in key order. */
vg_err store_timers_clear(store *s);
vg_err store_timer_put(store *s, const void *key, size_t klen, const void *val, size_t vlen);
vg_err store_timers(store *s, void (*fn)(void *, const void *, size_t, const void *, size_t),
                    void *ctx);
/* The outbox and dead-letter databases: put, delete, scan in key order
 * from a key (flen 0: from the first) until fn says stop, and delete every
 * entry below a key. */
typedef enum store_db { STORE_OUTBOX, STORE_DLQ, STORE_DECISIONS } store_db;
/* The value under key in db, copied to out; *found says whether there is one. */
vg_err store_get_in(store *s, store_db db, const void *key, size_t klen, vg_buf *out, bool *found);
vg_err store_put_in(store *s, store_db db, const void *key, size_t klen, const void *val,
                    size_t vlen);
vg_err store_del_in(store *s, store_db db, const void *key, size_t klen);
vg_err store_scan(store *s, store_db db, const void *from, size_t flen,
                  bool (*fn)(void *ctx, const void *k, size_t klen, const void *v, size_t vlen),
                  void *ctx);
vg_err store_del_below(store *s, store_db db, const void *upto, size_t ulen);
vg_err store_commit(store *s);
void store_abort(store *s); /* drops the open write transaction, if any */
/* The map could not grow for want of disk space (not state.max_size). */
bool store_nospace(const store *s);
void store_usage(store *s, uint64_t *used,
                 uint64_t *size); /* bytes of the map in use, and its size */
/* After VG_ELIMIT (the map is full): drops the open write transaction and
 * doubles the map, up to its maximum (then VG_ELIMIT). */
vg_err store_grow(store *s);
vg_err keyrec_encode(const keyrec *k, const vg_ruleset *rs, size_t nrules, vg_buf *out);
vg_err keyrec_decode(slab *sl, keyrec *k, const vg_ruleset *rs, size_t nrules, const vg_buf *in);

/* window.c */
/* Processes one event of a key for a when rule: computes the aggregates
 * (aggs, r->naggs values) around adding the event's entry (cols: its column
 * values), in SPEC order. scratch is room for distinct(). */
vg_err rstate_add(slab *sl, rstate *s, const vg_rule *r, int64_t t, const vg_value *cols,
                  vg_value *aggs, vg_buf *scratch);
/* Remembers the prev() values of the event just processed. */
vg_err rstate_set_prev(slab *sl, rstate *s, const vg_rule *r, const vg_value *prev);

/* alert.c */
/* Renders the alert JSON of SPEC §3 into out. */
vg_err alert_json(const vg_alert *a, const vg_rule *r, const vg_value *aggs, unsigned digits,
                  const char *const *tags, vg_buf *tmp, vg_buf *out);
void alert_id(const vg_rule *r, const char *key, uint32_t keylen, const char *event_id,
              uint32_t idlen, char out[33]);

/* ---- The engine ---------------------------------------------------------- */

/* An id remembered for deduplication, by two independent 64-bit hashes of
 * its bytes (a false duplicate needs both to collide: ~2^-128). */
typedef struct idrec {
    uint64_t hash;  /* 0: empty slot */
    uint64_t hash2; /* a second, independent hash of the id */
    int64_t time_ms;
    bool saved;      /* in the store already */
    uint8_t dec[3];  /* the decision given for it: decided (0/1), action, score */
    uint32_t decoff; /* its decision's rules in the engine's decpend, at decoff - 1; 0: none */
} idrec;

/* A keyspace an event's stream uses, and a rule whose key program computes it. */
typedef struct kspre {
    uint16_t ks;
    uint32_t rule;
} kspre;

/* outbox.c: alerts waiting for the sinks, saved with the state */
typedef struct outbox_cursor {
    char *name;
    uint64_t seq; /* the sink's first unfinished number */
} outbox_cursor;
typedef struct outbox {
    uint64_t next;    /* the number the next alert gets */
    uint64_t flushed; /* numbers below it are in the store */
    uint64_t pruned;  /* numbers below it are deleted from the store */
    vg_buf pend;      /* the records flushed..next-1, back to back */
    size_t *off;      /* where each starts in pend */
    size_t noff, capoff;
    vg_buf dead; /* dead letters to write: u16 name length, name, u64 seq, u32 length, record */
    outbox_cursor *cur;
    size_t ncur;
} outbox;
vg_err outbox_load(vg_engine *e);
vg_err outbox_save(vg_engine *e); /* into the open write transaction */
void outbox_saved(vg_engine *e);  /* after it committed */
void outbox_free(vg_engine *e);

struct vg_engine {
    vg_ruleset *rs;
    vg_vm *vm;
    const vg_schema *sc;
    size_t nrules;
    vg_rule_stats *stats;
    slab *slab; /* where key records and rule states live */
    /* key records: open addressing, cap a power of two */
    keyslot *keys;
    size_t nkeys, capkeys;
    /* per event, each keyspace's key record (valid while ks_epoch[ks] == epoch) */
    keyrec **ks_rec;
    uint64_t *ks_epoch;
    uint64_t epoch;
    /* per stream, the keyspaces its `when` rules use, each with one rule that
     * computes the key; per event, each one's key (in ksbuf) and its hash:
     * rows of nks1 entries, one per prepared event and a last one for an
     * event not prepared; ks_hash etc. point at the current event's row */
    kspre *kspre[VG_NSTREAMS];
    size_t nkspre[VG_NSTREAMS];
    size_t nks1;
    uint64_t *ks_hash, *rows_hash;
    size_t *ks_off, *ks_len, *rows_off, *rows_len;
    /* events announced by vg_engine_prepare(): the next is prep[iprep] */
    const vg_event *prep[VG_ENGINE_BATCH];
    uint64_t prep_h[VG_ENGINE_BATCH + 1], prep_h2[VG_ENGINE_BATCH + 1];
    size_t nprep, iprep;
    /* per keyspace ks, the rules keyed by it (a match rule: by its `key`): the rule indices
     * ksrule_ix[ksrule_start[ks] .. ksrule_start[ks + 1]) */
    size_t *ksrule_start, *ksrule_ix;
    vg_buf ksbuf;
    /* dedupe index */
    idrec *ids;
    size_t nids, capids;
    int64_t horizon_ms;
    int64_t clock;
    bool have_clock;
    int64_t logpos; /* the event-log position the state reflects (vg_engine_set_logpos) */
    idrec *last_id; /* the id record of the event processed last (until the next) */
    int id_slot[VG_NSTREAMS], time_slot[VG_NSTREAMS];
    /* the store: LMDB, written back in batches */
    store *st;
    outbox ob;
    bool discard; /* closed without the flush: memory may hold a failed event */
    char *tmpdir; /* a temporary state folder to remove at close */
    int lockfd;   /* the state folder's lock file (flock), or -1 */
    /* decisions' rules not yet in the store: per record, a 24-byte key (time
     * big-endian, the id's hashes), u32 length, the bytes */
    vg_buf decpend;
    size_t cache_keys; /* budget of key records in memory */
    bool defer_evict;
    uint32_t gen; /* cache generation: eviction drops keys untouched since the last */
    vg_buf rec, reckey;
    /* match rules */
    uint64_t seq;          /* accepted events so far: arrival numbers */
    struct ptimer *timers; /* trailing `not` deadlines: a binary min-heap */
    size_t ntimers, captimers;
    uint64_t next_cand;     /* ids of candidates waiting for a deadline */
    vg_buf pkeys;           /* an event's step keys */
    const vg_event **steps; /* by step: the events of the match being evaluated */
    struct pmatch *proot;   /* a stand-in root for a key with no pattern state yet */
    const char **pid;       /* an alert's event ids (VG_PATTERN_STEPS x VG_PATTERN_IDS) */
    uint32_t *pidlen;
    /* scratch, reused for every event */
    vg_buf msgbuf, jsonbuf, scratch, jsontmp;
    vg_value *aggs, *cols, *prevs, *noprev;
};

/* engine.c, for pattern.c */
uint64_t hash_bytes(const char *s, size_t n, uint64_t seed);
/* The record of (ks, key), made (or read back from the store) when it is
 * not in memory; h is hash_bytes(key, len, ks). NULL: out of memory. */
keyrec *key_get(vg_engine *e, uint16_t ks, const char *key, uint32_t len, uint64_t h);
/* Suppression of rule ri for one key (its alerted flag and clock): is an
 * alert at t suppressed? Counts it either way, and an emitted one moves the
 * clock. */
bool alert_suppressed(vg_engine *e, size_t ri, bool *alerted, int64_t *last_alert, int64_t t);
/* Gives a its id and JSON (aggregate values from e->aggs) and hands it to fn. */
vg_err alert_deliver(vg_engine *e, vg_alert *a, unsigned digits, vg_alert_fn fn, void *fctx);
/* Renders r's message into e->msgbuf. */
vg_err render_message(vg_engine *e, const vg_rule *r, const vg_vm_ctx *ctx, unsigned digits);

/* pattern.c: match rules. A pattern's state for a key sits in the key
 * record's slot for the rule, like a when rule's rstate. */
typedef struct pstate pstate;
/* Feeds an accepted event to match rule ri (seq: its arrival number). */
vg_err pattern_event(vg_engine *e, size_t ri, const vg_event *ev, int64_t t, uint64_t seq,
                     vg_alert_fn fn, void *ctx);
/* Fires the trailing `not` deadlines earlier than t (all of them when
 * t is INT64_MAX), earliest first. */
vg_err pattern_fire(vg_engine *e, int64_t t, vg_alert_fn fn, void *ctx);
void pstate_free(pstate *ps, const vg_rule *r);
/* A pattern state as bytes (appended to out), and back (VG_EINVAL: damaged). */
vg_err pstate_encode(const pstate *ps, const vg_rule *r, const vg_schema *sc, vg_buf *out);
vg_err pstate_decode(const vg_rule *r, const vg_schema *sc, const unsigned char *p, size_t n,
                     pstate **out);
/* The pending deadlines to the store, and back (at open). */
vg_err pattern_save(vg_engine *e);
vg_err pattern_load(vg_engine *e);
void pattern_timers_free(vg_engine *e);
struct pmatch *pattern_root_alloc(void); /* room for a root of any rule; free() it */

#endif
