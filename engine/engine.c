/*
 * engine.c - the evaluation loop (vg_engine.h): ids, keys, `where`, windows,
 * `when`, suppression and alerts, for `when` rules. State lives in memory in
 * a hash table of key records; a key record holds each rule's state for it.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engineInt.h"

#define DAY_MS 86400000LL

/* An id remembered for deduplication: its bytes live in the id pool. */
typedef struct idrec {
    uint64_t hash; /* 0: empty slot */
    int64_t time_ms;
    size_t off; /* in idpool */
    uint32_t len;
    bool saved; /* in the store already */
} idrec;

struct vg_engine {
    vg_ruleset *rs;
    vg_vm *vm;
    const vg_schema *sc;
    size_t nrules;
    vg_rule_stats *stats;
    /* key records: open addressing, cap a power of two */
    keyrec *keys;
    size_t nkeys, capkeys;
    /* dedupe index */
    idrec *ids;
    size_t nids, capids;
    vg_buf idpool;
    size_t next_compact; /* compact the index when nids reaches this */
    int64_t horizon_ms;
    int64_t clock;
    bool have_clock;
    int id_slot[VG_NSTREAMS], time_slot[VG_NSTREAMS];
    /* the store: LMDB, written back in batches */
    store *st;
    char *tmpdir;      /* a temporary state folder to remove at close */
    size_t cache_keys; /* budget of key records in memory */
    uint32_t gen;      /* cache generation: eviction drops keys untouched since the last */
    vg_buf rec, reckey;
    /* scratch, reused for every event */
    vg_buf keybuf, msgbuf, jsonbuf, scratch;
    vg_value *aggs, *cols, *prevs, *noprev;
};

static uint64_t
hash_bytes(const char *s, size_t n, uint64_t seed)
{
    uint64_t h = 1469598103934665603ull ^ seed; /* FNV-1a, then a final mix */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h | 1;
}

static vg_err ids_add(vg_engine *e, const char *id, uint32_t len, int64_t t, bool *dup);

/* store_ids() callback: an id of an earlier run, already saved */
static void
load_id(void *ctx, const char *id, uint32_t len, int64_t t)
{
    vg_engine *e = ctx;
    bool dup;
    if (ids_add(e, id, len, t, &dup) == VG_OK && !dup) {
        /* mark it saved: find it again (ids_add may have moved the table) */
        for (size_t i = 0; i < e->capids; i++)
            if (e->ids[i].hash && e->ids[i].len == len && e->ids[i].time_ms == t &&
                memcmp(e->idpool.data + e->ids[i].off, id, len) == 0)
                e->ids[i].saved = true;
    }
}

static void
remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *ent;
    while (d != NULL && (ent = readdir(d)) != NULL) {
        if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0)
            continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, ent->d_name);
        unlink(p);
    }
    if (d != NULL)
        closedir(d);
    rmdir(dir);
}

vg_err
vg_engine_open(vg_ruleset *rs, const vg_engine_opts *opts, char *why, size_t whylen,
               vg_engine **out)
{
    vg_engine *e = calloc(1, sizeof *e);
    if (e == NULL)
        return VG_ENOMEM;
    e->rs = vg_ruleset_ref(rs);
    e->sc = vg_ruleset_schema(rs);
    e->nrules = vg_ruleset_nrules(rs);
    e->horizon_ms = opts && opts->dedupe_horizon_ms > 0 ? opts->dedupe_horizon_ms : 7 * DAY_MS;
    uint32_t maxaggs = 1, maxcols = 1, maxprevs = 1;
    for (size_t i = 0; i < e->nrules; i++) {
        const vg_rule *r = vg_ruleset_rule(rs, i);
        maxaggs = r->naggs > maxaggs ? r->naggs : maxaggs;
        maxcols = r->ncols > maxcols ? r->ncols : maxcols;
        maxprevs = r->nprevs > maxprevs ? r->nprevs : maxprevs;
    }
    for (int s = 0; s < VG_NSTREAMS; s++) {
        const vg_field *id = vg_schema_field(e->sc, (vg_stream_id)s, "id", 2);
        const vg_field *t = vg_schema_field(e->sc, (vg_stream_id)s, "time", 4);
        e->id_slot[s] = id && id->type == VG_FT_STRING ? (int)id->slot : -1;
        e->time_slot[s] = t && t->type == VG_FT_TIME ? (int)t->slot : -1;
    }
    e->stats = calloc(e->nrules ? e->nrules : 1, sizeof(vg_rule_stats));
    e->aggs = calloc(maxaggs, sizeof(vg_value));
    e->cols = calloc(maxcols, sizeof(vg_value));
    e->prevs = calloc(maxprevs, sizeof(vg_value));
    e->noprev = calloc(maxprevs, sizeof(vg_value)); /* all missing: a key's first event */
    e->capkeys = 1024;
    e->keys = calloc(e->capkeys, sizeof(keyrec));
    e->capids = 1024;
    e->ids = calloc(e->capids, sizeof(idrec));
    e->next_compact = 1 << 16;
    e->cache_keys = opts && opts->cache_keys ? opts->cache_keys : 4000000;
    e->gen = 1;
    if (e->stats == NULL || e->aggs == NULL || e->cols == NULL || e->prevs == NULL ||
        e->noprev == NULL || e->keys == NULL || e->ids == NULL || vg_vm_new(rs, &e->vm) != VG_OK) {
        vg_engine_close(e);
        return VG_ENOMEM;
    }
    /* the store: the caller's folder, or a temporary one */
    const char *dir = opts ? opts->state_dir : NULL;
    if (dir == NULL) {
        const char *tmp = getenv("TMPDIR");
        char path[4096];
        snprintf(path, sizeof path, "%s/vigil-state-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (mkdtemp(path) == NULL || (e->tmpdir = strdup(path)) == NULL) {
            snprintf(why, whylen, "can't make a temporary state folder in %s",
                     tmp && *tmp ? tmp : "/tmp");
            vg_engine_close(e);
            return VG_EIO;
        }
        dir = e->tmpdir;
    }
    /* the map is sparse: 64 GiB of address space costs nothing until used */
    vg_err err = store_open(dir, e->tmpdir == NULL, (size_t)64 << 30, &e->st, why, whylen);
    if (err == VG_OK && e->tmpdir == NULL) {
        int64_t clock = INT64_MIN;
        err = store_clock(e->st, &clock, false);
        if (err == VG_OK && clock != INT64_MIN) {
            e->clock = clock;
            e->have_clock = true;
        }
        if (err == VG_OK)
            err =
                store_ids(e->st, e->have_clock ? e->clock - e->horizon_ms : INT64_MIN, load_id, e);
        if (err == VG_OK)
            err = store_commit(e->st);
        if (err && why[0] == '\0')
            snprintf(why, whylen, "can't read the state in '%s': %s", dir, vg_strerror(err));
    }
    if (err) {
        vg_engine_close(e);
        return err;
    }
    *out = e;
    return VG_OK;
}

/* Writes dirty key records and new ids, then commits: one durable batch.
 * Large batches commit every 100,000 records to bound the transaction. */
vg_err
vg_engine_flush(vg_engine *e)
{
    if (e->st == NULL)
        return VG_OK;
    vg_err err = VG_OK;
    size_t puts = 0;
    for (size_t i = 0; i < e->capkeys && err == VG_OK; i++) {
        keyrec *k = &e->keys[i];
        if (k->hash == 0 || !k->dirty)
            continue;
        err = keyrec_encode(k, e->rs, e->nrules, &e->rec);
        if (err == VG_OK)
            err = store_put(e->st, vg_ruleset_keyspace(e->rs, k->keyspace), k->key, k->keylen,
                            &e->rec, &e->reckey);
        k->dirty = err != VG_OK;
        if (err == VG_OK && ++puts % 100000 == 0)
            err = store_commit(e->st);
    }
    for (size_t i = 0; i < e->capids && err == VG_OK; i++) {
        idrec *r = &e->ids[i];
        if (r->hash == 0 || r->saved)
            continue;
        err = store_put_id(e->st, e->idpool.data + r->off, r->len, r->time_ms);
        r->saved = err == VG_OK;
        if (err == VG_OK && ++puts % 100000 == 0)
            err = store_commit(e->st);
    }
    if (err == VG_OK && e->have_clock) {
        err = store_ids(e->st, e->clock - e->horizon_ms, NULL, NULL); /* drop expired ids */
        if (err == VG_OK)
            err = store_clock(e->st, &e->clock, true);
    }
    if (err == VG_OK)
        err = store_commit(e->st);
    return err;
}

static void
keyrec_free(vg_engine *e, keyrec *k)
{
    for (size_t r = 0; k->rules && r < e->nrules; r++)
        rstate_free(k->rules[r], vg_ruleset_rule(e->rs, r));
    free(k->rules);
    free(k->key);
}

vg_err
vg_engine_close(vg_engine *e)
{
    if (e == NULL)
        return VG_OK;
    vg_err err = e->tmpdir == NULL ? vg_engine_flush(e) : VG_OK;
    store_close(e->st);
    if (e->tmpdir != NULL) {
        remove_tree(e->tmpdir);
        free(e->tmpdir);
    }
    vg_buf_free(&e->rec);
    vg_buf_free(&e->reckey);
    for (size_t i = 0; e->keys && i < e->capkeys; i++)
        if (e->keys[i].hash != 0)
            keyrec_free(e, &e->keys[i]);
    free(e->keys);
    free(e->ids);
    vg_buf_free(&e->idpool);
    vg_buf_free(&e->keybuf);
    vg_buf_free(&e->msgbuf);
    vg_buf_free(&e->jsonbuf);
    vg_buf_free(&e->scratch);
    free(e->stats);
    free(e->aggs);
    free(e->cols);
    free(e->prevs);
    free(e->noprev);
    vg_vm_free(e->vm);
    vg_ruleset_unref(e->rs);
    free(e);
    return err;
}

const vg_rule_stats *
vg_engine_rule_stats(const vg_engine *e, size_t rule)
{
    return rule < e->nrules ? &e->stats[rule] : NULL;
}

uint64_t
vg_engine_keys(const vg_engine *e)
{
    return e->nkeys;
}

uint64_t
vg_engine_regex_limit_hits(const vg_engine *e)
{
    return vg_vm_regex_limit_hits(e->vm);
}

/* ---- Deduplication -------------------------------------------------------- */

static idrec *
id_slot(idrec *tab, size_t cap, const vg_buf *pool, uint64_t h, const char *id, uint32_t len)
{
    for (size_t i = h & (cap - 1);; i = (i + 1) & (cap - 1)) {
        idrec *r = &tab[i];
        if (r->hash == 0)
            return r;
        if (r->hash == h && r->len == len && memcmp(pool->data + r->off, id, len) == 0)
            return r;
    }
}

/* Keeps the ids of the last horizon of event time; the rest go. Amortised:
 * runs when the index has doubled since the last time. */
static vg_err
ids_compact(vg_engine *e)
{
    size_t cap = 1024;
    size_t live = 0;
    for (size_t i = 0; i < e->capids; i++)
        if (e->ids[i].hash && e->ids[i].time_ms >= e->clock - e->horizon_ms)
            live++;
    while (cap < live * 2 + 2)
        cap *= 2;
    idrec *tab = calloc(cap, sizeof(idrec));
    vg_buf pool = {0};
    if (tab == NULL)
        return VG_ENOMEM;
    for (size_t i = 0; i < e->capids; i++) {
        idrec *r = &e->ids[i];
        if (r->hash == 0 || r->time_ms < e->clock - e->horizon_ms)
            continue;
        idrec *n = id_slot(tab, cap, &pool, r->hash, e->idpool.data + r->off, r->len);
        *n = *r;
        n->off = pool.len;
        if (vg_buf_append(&pool, e->idpool.data + r->off, r->len) != VG_OK) {
            free(tab);
            vg_buf_free(&pool);
            return VG_ENOMEM;
        }
    }
    free(e->ids);
    vg_buf_free(&e->idpool);
    e->ids = tab;
    e->capids = cap;
    e->nids = live;
    e->idpool = pool;
    e->next_compact = live * 2 > (1 << 16) ? live * 2 : 1 << 16;
    return VG_OK;
}

/* Records id; *dup tells whether it was already there. */
static vg_err
ids_add(vg_engine *e, const char *id, uint32_t len, int64_t t, bool *dup)
{
    uint64_t h = hash_bytes(id, len, 0);
    idrec *r = id_slot(e->ids, e->capids, &e->idpool, h, id, len);
    if (r->hash != 0) {
        *dup = true;
        return VG_OK;
    }
    *dup = false;
    if ((e->nids + 1) * 2 > e->capids || e->nids + 1 >= e->next_compact) {
        vg_err err = e->nids + 1 >= e->next_compact ? ids_compact(e) : VG_OK;
        if (err)
            return err;
        if ((e->nids + 1) * 2 > e->capids) { /* grow */
            size_t cap = e->capids * 2;
            idrec *tab = calloc(cap, sizeof(idrec));
            if (tab == NULL)
                return VG_ENOMEM;
            for (size_t i = 0; i < e->capids; i++)
                if (e->ids[i].hash)
                    *id_slot(tab, cap, &e->idpool, e->ids[i].hash, e->idpool.data + e->ids[i].off,
                             e->ids[i].len) = e->ids[i];
            free(e->ids);
            e->ids = tab;
            e->capids = cap;
        }
        r = id_slot(e->ids, e->capids, &e->idpool, h, id, len);
    }
    r->hash = h;
    r->time_ms = t;
    r->off = e->idpool.len;
    r->len = len;
    e->nids++;
    return vg_buf_append(&e->idpool, id, len);
}

/* ---- Key records ---------------------------------------------------------- */

static keyrec *
key_find(keyrec *tab, size_t cap, uint64_t h, uint16_t ks, const char *key, uint32_t len)
{
    for (size_t i = h & (cap - 1);; i = (i + 1) & (cap - 1)) {
        keyrec *k = &tab[i];
        if (k->hash == 0)
            return k;
        if (k->hash == h && k->keyspace == ks && k->keylen == len && memcmp(k->key, key, len) == 0)
            return k;
    }
}

static keyrec *
key_get(vg_engine *e, uint16_t ks, const char *key, uint32_t len)
{
    uint64_t h = hash_bytes(key, len, ks);
    keyrec *k = key_find(e->keys, e->capkeys, h, ks, key, len);
    if (k->hash != 0)
        return k;
    if ((e->nkeys + 1) * 2 > e->capkeys) {
        size_t cap = e->capkeys * 2;
        keyrec *tab = calloc(cap, sizeof(keyrec));
        if (tab == NULL)
            return NULL;
        for (size_t i = 0; i < e->capkeys; i++)
            if (e->keys[i].hash)
                *key_find(tab, cap, e->keys[i].hash, e->keys[i].keyspace, e->keys[i].key,
                          e->keys[i].keylen) = e->keys[i];
        free(e->keys);
        e->keys = tab;
        e->capkeys = cap;
        k = key_find(e->keys, e->capkeys, h, ks, key, len);
    }
    k->key = malloc(len ? len : 1);
    k->rules = calloc(e->nrules ? e->nrules : 1, sizeof(rstate *));
    if (k->key == NULL || k->rules == NULL) {
        free(k->key);
        free(k->rules);
        k->key = NULL;
        k->rules = NULL;
        return NULL;
    }
    memcpy(k->key, key, len);
    k->hash = h;
    k->keyspace = ks;
    k->keylen = len;
    e->nkeys++;
    /* not in memory: perhaps written back earlier */
    if (e->st != NULL) {
        bool found = false;
        vg_err err =
            store_get(e->st, vg_ruleset_keyspace(e->rs, ks), key, len, &e->reckey, &e->rec, &found);
        if (err == VG_OK && found)
            err = keyrec_decode(k, e->rs, e->nrules, &e->rec);
        if (err == VG_ENOMEM)
            return NULL;
        /* an unreadable record: the key starts afresh (it is rewritten at flush) */
        k->dirty = err != VG_OK;
    }
    return k;
}

/* Over the budget: write everything back, then drop the key records no
 * event touched since the last eviction (all of them, if that frees too few).
 * The table is rebuilt with the survivors. */
static vg_err
evict(vg_engine *e)
{
    vg_err err = vg_engine_flush(e);
    if (err)
        return err;
    size_t keep = 0;
    for (size_t i = 0; i < e->capkeys; i++)
        keep += e->keys[i].hash && e->keys[i].touched == e->gen;
    bool all = keep > e->cache_keys / 2;
    size_t cap = 1024;
    while (cap < (all ? 1 : keep) * 2 + 2)
        cap *= 2;
    keyrec *tab = calloc(cap, sizeof(keyrec));
    if (tab == NULL)
        return VG_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < e->capkeys; i++) {
        keyrec *k = &e->keys[i];
        if (k->hash == 0)
            continue;
        if (all || k->touched != e->gen) {
            keyrec_free(e, k);
            continue;
        }
        *key_find(tab, cap, k->hash, k->keyspace, k->key, k->keylen) = *k;
        n++;
    }
    free(e->keys);
    e->keys = tab;
    e->capkeys = cap;
    e->nkeys = n;
    e->gen++;
    return VG_OK;
}

/* ---- Evaluation ------------------------------------------------------------- */

static bool
is_true(const vg_value *v)
{
    return v->kind == VG_V_BOOL && v->u.num != 0;
}

/* A column value as the window keeps it: numbers as they are; strings,
 * enums and bools of a hashed column as a 52-bit hash (a finite double). */
static vg_value
column_value(const vg_column *c, vg_value v)
{
    if (!c->hashed || v.kind == VG_V_MISSING)
        return v;
    vg_value h = {.kind = VG_V_NUM};
    h.u.num = (double)(vg_value_hash(&v) >> 12);
    return h;
}

static vg_err
render_message(vg_engine *e, const vg_rule *r, const vg_vm_ctx *ctx, unsigned digits)
{
    e->msgbuf.len = 0;
    vg_err err = vg_buf_append(&e->msgbuf, "", 0);
    for (uint32_t i = 0; i < r->nmsg && err == VG_OK; i++) {
        const vg_msgpart *p = &r->msg[i];
        if (p->text != NULL) {
            err = vg_buf_append(&e->msgbuf, p->text, p->len);
        } else {
            vg_value v = vg_vm_eval(e->vm, &p->prog, ctx);
            err = vg_value_format(&v, p->prog.money, digits, p->prog.en, &e->msgbuf);
        }
    }
    return err;
}

static vg_err
run_rule(vg_engine *e, size_t ri, const vg_event *ev, int64_t t, const vg_value *idv,
         vg_alert_fn fn, void *fctx)
{
    const vg_rule *r = vg_ruleset_rule(e->rs, ri);
    vg_vm_ctx ctx = {.ev = ev};
    vg_value w = vg_vm_eval(e->vm, &r->where, &ctx);
    if (!is_true(&w))
        return VG_OK;
    vg_value kv = vg_vm_eval(e->vm, &r->key, &ctx);
    e->keybuf.len = 0;
    vg_err err = vg_buf_append(&e->keybuf, "", 0);
    if (err == VG_OK)
        err = vg_value_format(&kv, false, 0, r->key.en, &e->keybuf); /* keys: shortest form */
    if (err)
        return err;
    if (e->keybuf.len == 0) {
        e->stats[ri].empty_keys++;
        return VG_OK;
    }
    e->stats[ri].matched++;
    keyrec *k = key_get(e, r->keyspace, e->keybuf.data, (uint32_t)e->keybuf.len);
    if (k == NULL)
        return VG_ENOMEM;
    k->dirty = true;
    k->touched = e->gen;
    rstate *s = k->rules[ri];
    if (s == NULL) {
        s = k->rules[ri] = rstate_new(r);
        if (s == NULL)
            return VG_ENOMEM;
    }
    for (uint32_t c = 0; c < r->ncols; c++)
        e->cols[c] = column_value(&r->cols[c], vg_vm_eval(e->vm, &r->cols[c].prog, &ctx));
    err = rstate_add(s, r, t, e->cols, e->aggs, &e->scratch);
    if (err)
        return err;
    ctx.aggs = e->aggs;
    ctx.prevs = s->has_prev ? s->prev : e->noprev;
    vg_value when = vg_vm_eval(e->vm, &r->when, &ctx);
    if (is_true(&when)) {
        bool suppressed = r->suppress_ms > 0 && s->alerted && t < s->last_alert + r->suppress_ms;
        if (suppressed) {
            e->stats[ri].suppressed++;
        } else {
            e->stats[ri].alerts++;
            s->alerted = true;
            s->last_alert = t;
        }
        err = render_message(e, r, &ctx, ev->digits);
        if (err)
            return err;
        vg_alert a = {.rule = r,
                      .key = e->keybuf.data,
                      .keylen = (uint32_t)e->keybuf.len,
                      .time_ms = t,
                      .event_id = idv->u.s,
                      .event_id_len = idv->len,
                      .message = e->msgbuf.data,
                      .message_len = (uint32_t)e->msgbuf.len,
                      .suppressed = suppressed};
        alert_id(r, a.key, a.keylen, a.event_id, a.event_id_len, a.id);
        e->jsonbuf.len = 0;
        err = alert_json(&a, r, e->aggs, ev->digits, r->tags, &e->jsonbuf);
        if (err)
            return err;
        a.json = e->jsonbuf.data;
        a.json_len = (uint32_t)e->jsonbuf.len;
        if (fn != NULL)
            fn(fctx, &a);
    }
    if (r->nprevs > 0) { /* after the message, which may read the old ones */
        /* a string result lives in VM scratch only until the next eval: keep
         * its bytes (by offset: the buffer may move) */
        e->scratch.len = 0;
        for (uint32_t i = 0; i < r->nprevs && err == VG_OK; i++) {
            e->prevs[i] = vg_vm_eval(e->vm, &r->prevs[i], &ctx);
            if (e->prevs[i].kind == VG_V_STR) {
                size_t off = e->scratch.len;
                err = vg_buf_append(&e->scratch, e->prevs[i].u.s, e->prevs[i].len);
                e->prevs[i].u.s = (const char *)(uintptr_t)off;
            }
        }
        for (uint32_t i = 0; i < r->nprevs && err == VG_OK; i++)
            if (e->prevs[i].kind == VG_V_STR)
                e->prevs[i].u.s = e->scratch.data + (uintptr_t)e->prevs[i].u.s;
        if (err == VG_OK)
            err = rstate_set_prev(s, r, e->prevs);
    }
    return err;
}

vg_err
vg_engine_process(vg_engine *e, const vg_event *ev, vg_alert_fn fn, void *ctx, vg_outcome *outcome,
                  const char **reason)
{
    int is = e->id_slot[ev->stream], ts = e->time_slot[ev->stream];
    const vg_value *idv = is >= 0 ? &ev->v[is] : NULL;
    const vg_value *tv = ts >= 0 ? &ev->v[ts] : NULL;
    *reason = NULL;
    if (idv == NULL || idv->kind != VG_V_STR || idv->len == 0) {
        *outcome = VG_EV_REJECTED;
        *reason = "the event has no id";
        return VG_OK;
    }
    if (tv == NULL || tv->kind != VG_V_TIME) {
        *outcome = VG_EV_REJECTED;
        *reason = "the event has no time";
        return VG_OK;
    }
    int64_t t = (int64_t)tv->u.num;
    bool dup;
    vg_err err = ids_add(e, idv->u.s, idv->len, t, &dup);
    if (err)
        return err;
    if (dup) {
        *outcome = VG_EV_DUPLICATE;
        return VG_OK;
    }
    *outcome = VG_EV_ACCEPTED;
    if (!e->have_clock || t > e->clock)
        e->clock = t;
    e->have_clock = true;
    for (size_t i = 0; i < e->nrules && err == VG_OK; i++) {
        const vg_rule *r = vg_ruleset_rule(e->rs, i);
        if (!r->is_match && r->on == ev->stream)
            err = run_rule(e, i, ev, t, idv, fn, ctx);
    }
    if (err == VG_OK && e->nkeys > e->cache_keys)
        err = evict(e);
    return err;
}
