/*
 * vg_engine.h - the runtime: events in, alerts out, per-key state in between.
 *
 * The engine evaluates a compiled rule set (rules/vg_vm.h) over events in
 * arrival order. For each rule and each event of its stream it computes the
 * key, applies `where`, adds the event to the key's windows, evaluates
 * `when`, and reports alerts (suppression applied) through a callback, in
 * rule order. Event ids are deduplicated over a horizon of event time. All
 * time is event time: the same events give the same alerts, live or replay.
 *
 * Threading: one engine is used by one thread at a time.
 */
#ifndef VG_ENGINE_H
#define VG_ENGINE_H

#include "vg_event.h"
#include "vg_rules.h"
#include "vg_vm.h"

typedef struct vg_engine vg_engine;

typedef struct vg_engine_opts {
    int64_t dedupe_horizon_ms; /* ids remembered this long in event time; 0 means 7 days */
    const char *state_dir;     /* LMDB environment kept between runs; NULL: a temporary one,
                                  removed at close */
    size_t cache_keys;         /* keys held in memory before the least recent are written
                                  back and dropped; 0 means 4,000,000 */
    size_t max_state_bytes;    /* how far the LMDB map may grow; 0 means 64 GiB */
    bool defer_evict;          /* the live engine: never write back in the middle of a group of
                                  events, only in vg_engine_maintain() (the state written must not be
                                  ahead of the event log's durable end) */
} vg_engine_opts;

/* Opens an engine over rs (which it references until closed). With a state
 * folder, the state, the dedupe index and the event clock of earlier runs
 * carry on. Returns VG_EIO / VG_EINVAL (state unreadable; *why says why),
 * VG_ENOMEM. */
vg_err vg_engine_open(vg_ruleset *rs, const vg_engine_opts *opts, char *why, size_t whylen,
                      vg_engine **out);
/* Writes everything held in memory to the store, in one durable commit. */
vg_err vg_engine_flush(vg_engine *e);
/* With defer_evict: writes back and drops keys when over the cache budget.
 * Call it only when everything processed is durable (after a log commit). */
vg_err vg_engine_maintain(vg_engine *e);

/* The live engine's checkpoint: the position in its event log that the
 * state reflects, written with the state by the next flush, and read back
 * at open (0 for a new state). */
void vg_engine_set_logpos(vg_engine *e, int64_t pos);
/* The LMDB map: bytes in use and its current size. */
void vg_engine_store_usage(vg_engine *e, uint64_t *used, uint64_t *size);
/* After VG_ELIMIT: true when the disk, not state.max_size, had no room. */
bool vg_engine_disk_full(const vg_engine *e);
int64_t vg_engine_logpos(const vg_engine *e);
/* Frees everything without writing it: after an error that may have left an
 * event half applied in memory (the live engine recovers from its log). */
void vg_engine_discard(vg_engine *e); /* NULL is a no-op */
/* Flushes (when the state folder is the caller's), then frees everything. */
vg_err vg_engine_close(vg_engine *e); /* NULL is a no-op */

/* One alert, valid during the callback only. */
typedef struct vg_alert {
    const vg_rule *rule;
    char id[33];     /* first 32 hex of SHA-256(rule \0 rule_version \0 key \0 event_id) */
    const char *key; /* as text */
    uint32_t keylen;
    int64_t time_ms;
    const char *event_id;
    uint32_t event_id_len;
    const char *message; /* the rendered template ("" when the rule has none) */
    uint32_t message_len;
    const char *json; /* the alert as one line of compact JSON (SPEC §3), no newline */
    uint32_t json_len;
    bool suppressed; /* counted, not to be delivered */
    bool due;        /* made due by a deadline (a trailing `not`), not by the event
                        being processed: it does not count for that event's decision */
    /* the ids of the match's events, in order (NULL: just event_id) */
    const char *const *events;
    const uint32_t *event_lens;
    uint32_t nevents;
} vg_alert;

typedef void (*vg_alert_fn)(void *ctx, const vg_alert *a);

typedef enum vg_outcome {
    VG_EV_ACCEPTED = 0,
    VG_EV_DUPLICATE, /* its id was seen within the horizon: ignored */
    VG_EV_REJECTED,  /* no id or no time: see the reason */
} vg_outcome;

/* Events vg_engine_prepare() looks ahead at, at most. */
#define VG_ENGINE_BATCH 64

/* Optional, for speed: announces the next n events (at most
 * VG_ENGINE_BATCH; more are ignored) vg_engine_process() will be given, in
 * that order, so their keys are computed and their state is fetched from
 * memory together, the cache misses of many events overlapping. They must
 * stay unchanged until processed; passing another event forgets the rest.
 * Returns VG_ENOMEM (then nothing is prepared). */
vg_err vg_engine_prepare(vg_engine *e, const vg_event *const *evs, size_t n);

/* Processes one event: alerts go to fn (suppressed ones too, flagged), in
 * rule order. *outcome says what became of the event; for a rejection,
 * *reason (static text) says why. An event whose time is more than the
 * dedupe horizon behind the event clock is rejected with reason
 * vg_too_old: its id may have been forgotten, so a resend could not be told
 * from a new event. Returns VG_ENOMEM only. */
extern const char vg_too_old[];

/* An event stamped more than VG_MAX_AHEAD_MS ahead of the wall clock
 * (now_ms) is taken for a unit or clock error (microseconds for
 * milliseconds) and refused, live and in replay alike: it would move the
 * event clock there, and every later event would be too old. The reason is
 * vg_too_far_ahead. */
#define VG_MAX_AHEAD_MS 86400000.0
extern const char vg_too_far_ahead[];
bool vg_event_too_far_ahead(const vg_schema *sc, const vg_event *ev, double now_ms);
vg_err vg_engine_process(vg_engine *e, const vg_event *ev, vg_alert_fn fn, void *ctx,
                         vg_outcome *outcome, const char **reason);

/* The live engine's idle_advance: moves the event clock to t when that is
 * later (never back, and not before the first event) and fires the
 * deadlines it passes, as an event at t would. */
vg_err vg_engine_advance(vg_engine *e, int64_t t, vg_alert_fn fn, void *ctx);
/* The event clock; false before the first accepted event. */
bool vg_engine_clock(const vg_engine *e, int64_t *t);
/* The earliest pending trailing-`not` deadline, or INT64_MAX. */
int64_t vg_engine_next_deadline(const vg_engine *e);

/* At the end of a replay (--flush): fires every pending trailing `not`
 * deadline, earliest first, as if time had passed them all. */
vg_err vg_engine_finish(vg_engine *e, vg_alert_fn fn, void *ctx);

/* Partial matches a match rule keeps per key; beyond, the oldest is
 * dropped (and counted in vg_rule_stats.dropped). */
#define VG_PATTERN_PARTIALS 1024
/* Event ids an alert lists per quantified step (count() stays exact). */
#define VG_PATTERN_IDS 100

/* SPEC §2 "Decisions": the action (VG_ALLOW, VG_REVIEW, VG_BLOCK) and the
 * score of an event, given the rules whose alerts count for it (suppressed
 * ones included, those made due by a deadline not). Shadow rules never
 * count. */
void vg_decide(const vg_rule *const *rules, size_t n, unsigned review_at, unsigned block_at,
               int *action, int *score);

/* The decision given for the event processed last (accepted): remembered
 * with its id, so a resend of the id gets it back. */
void vg_engine_record_decision(vg_engine *e, int action, int score);
/* For the event processed last: the decision recorded for its id, when
 * there is one (a duplicate of a decided event). */
bool vg_engine_recorded_decision(const vg_engine *e, int *action, int *score);
/* The rules behind the decision just recorded, as the caller encodes them
 * (opaque bytes), kept for its id as long as the id is remembered, so a
 * resent id gets its whole decision back (SPEC §5). Saved with the state. */
vg_err vg_engine_record_decision_rules(vg_engine *e, const void *rules, size_t len);
/* For the event just processed (a duplicate): those bytes, *found false
 * when none were recorded. */
vg_err vg_engine_recorded_decision_rules(vg_engine *e, vg_buf *out, bool *found);

/* Counters, per rule index (vg_ruleset_rule order). */
typedef struct vg_rule_stats {
    uint64_t matched;    /* events that passed `where` */
    uint64_t alerts;     /* alerts emitted */
    uint64_t suppressed; /* alerts counted but not emitted */
    uint64_t empty_keys; /* events skipped because the key was empty */
    uint64_t dropped;    /* match rules: partial matches dropped at the bound (oldest first) */
    uint64_t late;       /* events more than the rule's longest window older than the newest
                            event of their key: their windows may miss pruned entries */
} vg_rule_stats;

const vg_rule_stats *vg_engine_rule_stats(const vg_engine *e, size_t rule);
uint64_t vg_engine_keys(const vg_engine *e); /* (key, keyspace) pairs with state */
uint64_t vg_engine_regex_limit_hits(const vg_engine *e);

/* ---- The outbox -------------------------------------------------------------
 * The live engine's alerts on their way to the sinks, numbered in the order
 * they were made and saved with the state by each flush (so a restart that
 * replays the event log makes the unsaved ones again, with the same
 * numbers). Each sink has a cursor, its first unfinished number, saved too;
 * records below every cursor are deleted at the flush. */
typedef struct vg_outbox_rec {
    uint64_t seq;
    const char *rule, *id, *key, *json; /* NUL-terminated; json is len bytes */
    size_t len;
    bool shadow;
    int64_t time_ms;
} vg_outbox_rec;
/* Return false to stop. The record is valid during the call only. */
typedef bool (*vg_outbox_fn)(void *ctx, const vg_outbox_rec *r);

vg_err vg_engine_outbox_add(vg_engine *e, const vg_alert *a, uint64_t *seq);
#define VG_SINK_NAME_MAX 480 /* bytes of a sink's name: LMDB keys hold at most 511 */
uint64_t vg_engine_outbox_end(const vg_engine *e); /* the number the next alert gets */
/* Calls fn for the records from number from on, in order (from the store,
 * then memory). VG_EINVAL: a stored record is damaged. */
vg_err vg_engine_outbox_read(vg_engine *e, uint64_t from, vg_outbox_fn fn, void *ctx);
/* A sink's saved cursor; a sink never seen starts at the saved end (it gets
 * the alerts made from now on, and those the replay of the log makes). */
vg_err vg_engine_outbox_cursor(vg_engine *e, const char *sink, uint64_t *seq);
vg_err vg_engine_outbox_set_cursor(vg_engine *e, const char *sink, uint64_t seq);
/* Copies record seq to sink's dead-letter list (written by the next flush). */
vg_err vg_engine_outbox_dead(vg_engine *e, const char *sink, uint64_t seq);

/* The dead-letter list of a state folder, for `vigil dlq` (another process
 * than the engine's may open it; LMDB keeps the two apart). */
typedef struct vg_dlq vg_dlq;
typedef bool (*vg_dlq_fn)(void *ctx, const char *sink, const vg_outbox_rec *r);
vg_err vg_dlq_open(const char *dir, vg_dlq **out, char *why, size_t whylen);
vg_err vg_dlq_each(vg_dlq *q, vg_dlq_fn fn, void *ctx);          /* in sink, number order */
vg_err vg_dlq_remove(vg_dlq *q, const char *sink, uint64_t seq); /* committed at once */
void vg_dlq_close(vg_dlq *q);

#endif
