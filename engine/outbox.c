/*
 * outbox.c - alerts on their way to the sinks (vg_engine.h, "The outbox").
 *
 * The live engine adds every alert it emits; each gets the next number
 * (seq). New records wait in memory and go to the store with the rest of
 * the state, in the same transaction, so a checkpoint holds exactly the
 * alerts of the events it reflects: after a crash, the replay of the log tail
 * makes the others again, with the same numbers, since replay is
 * deterministic. Each sink's cursor (its first unfinished number) is kept
 * with them; records every sink has finished are deleted. Records a sink gave
 * up on go to the dead-letter database, keyed by sink and number.
 *
 * A record: u8 flags (1 shadow), i64 time_ms, u16 rule length, rule, NUL,
 * u32 key length, key, NUL, u8 id length, id, NUL, u32 JSON length, JSON,
 * NUL (integers as the host writes them).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engineInt.h"

static void
be64(uint64_t v, uint8_t out[8])
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        out[i] = (uint8_t)v;
}

static uint64_t
from_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static vg_err
encode(vg_buf *b, const vg_outbox_rec *r)
{
    uint8_t flags = r->shadow ? 1 : 0;
    uint16_t rl = (uint16_t)strlen(r->rule);
    uint32_t kl = (uint32_t)strlen(r->key), jl = (uint32_t)r->len;
    uint8_t il = (uint8_t)strlen(r->id);
    vg_err err = vg_buf_append(b, &flags, 1);
    if (err == VG_OK)
        err = vg_buf_append(b, &r->time_ms, 8);
    if (err == VG_OK)
        err = vg_buf_append(b, &rl, 2);
    if (err == VG_OK)
        err = vg_buf_append(b, r->rule, rl + 1u);
    if (err == VG_OK)
        err = vg_buf_append(b, &kl, 4);
    if (err == VG_OK)
        err = vg_buf_append(b, r->key, kl + 1u);
    if (err == VG_OK)
        err = vg_buf_append(b, &il, 1);
    if (err == VG_OK)
        err = vg_buf_append(b, r->id, il + 1u);
    if (err == VG_OK)
        err = vg_buf_append(b, &jl, 4);
    if (err == VG_OK)
        err = vg_buf_append(b, r->json, jl);
    if (err == VG_OK)
        err = vg_buf_putc(b, '\0');
    return err;
}

/* Reads a record of n bytes at p into *r (pointing into p). False: damaged. */
static bool
decode(const uint8_t *p, size_t n, uint64_t seq, vg_outbox_rec *r)
{
    size_t at = 0;
    uint16_t rl;
    uint32_t kl, jl;
    uint8_t il;
#define NEED(k)                                                                                    \
    if (n - at < (size_t)(k))                                                                      \
    return false
    NEED(11);
    r->seq = seq;
    r->shadow = p[0] & 1;
    memcpy(&r->time_ms, p + 1, 8);
    memcpy(&rl, p + 9, 2);
    at = 11;
    NEED(rl + 1u + 4);
    r->rule = (const char *)p + at;
    at += rl + 1u;
    memcpy(&kl, p + at, 4);
    at += 4;
    NEED(kl + 1u + 1);
    r->key = (const char *)p + at;
    at += kl + 1u;
    il = p[at++];
    NEED(il + 1u + 4);
    r->id = (const char *)p + at;
    at += il + 1u;
    memcpy(&jl, p + at, 4);
    at += 4;
    NEED(jl + 1u);
    r->json = (const char *)p + at;
    r->len = jl;
#undef NEED
    return true;
}

vg_err
outbox_load(vg_engine *e)
{
    int64_t next = 0;
    vg_err err = store_meta(e->st, "outseq", &next, false);
    e->ob.next = e->ob.flushed = (uint64_t)next;
    e->ob.pruned = 0; /* the first flush deletes what the saved cursors passed */
    return err;
}

vg_err
vg_engine_outbox_add(vg_engine *e, const vg_alert *a, uint64_t *seq)
{
    outbox *o = &e->ob;
    if (o->noff == o->capoff) {
        size_t cap = o->capoff ? o->capoff * 2 : 256;
        size_t *v = realloc(o->off, cap * sizeof *v);
        if (v == NULL)
            return VG_ENOMEM;
        o->off = v;
        o->capoff = cap;
    }
    /* the key as text may hold no NUL: it is one in the record */
    char key[1024];
    uint32_t kl = a->keylen < sizeof key ? a->keylen : (uint32_t)sizeof key - 1;
    memcpy(key, a->key, kl);
    key[kl] = '\0';
    vg_outbox_rec r = {.seq = o->next,
                       .rule = a->rule->name,
                       .id = a->id,
                       .key = key,
                       .json = a->json,
                       .len = a->json_len,
                       .shadow = a->rule->shadow,
                       .time_ms = a->time_ms};
    size_t start = o->pend.len;
    vg_err err = encode(&o->pend, &r);
    if (err) {
        o->pend.len = start;
        return err;
    }
    o->off[o->noff++] = start;
    if (seq != NULL)
        *seq = o->next;
    o->next++;
    return VG_OK;
}

uint64_t
vg_engine_outbox_end(const vg_engine *e)
{
    return e->ob.next;
}

/* Record seq (flushed <= seq < next) from memory. */
static void
pending(const outbox *o, uint64_t seq, vg_outbox_rec *r)
{
    size_t i = (size_t)(seq - o->flushed);
    size_t end = i + 1 < o->noff ? o->off[i + 1] : o->pend.len;
    decode((const uint8_t *)o->pend.data + o->off[i], end - o->off[i], seq, r);
}

typedef struct reader {
    vg_outbox_fn fn;
    void *ctx;
    uint64_t below; /* stop there: the rest is in memory */
    uint64_t last;  /* the next number to read */
    bool stopped;
    bool damaged;
} reader;

static bool
read_one(void *ctx, const void *k, size_t klen, const void *v, size_t vlen)
{
    reader *R = ctx;
    if (klen != 8)
        return true;
    uint64_t seq = from_be64(k);
    if (seq >= R->below)
        return false;
    vg_outbox_rec r;
    if (!decode(v, vlen, seq, &r)) {
        R->damaged = true;
        return false;
    }
    R->last = seq + 1;
    if (!R->fn(R->ctx, &r)) {
        R->stopped = true;
        return false;
    }
    return true;
}

vg_err
vg_engine_outbox_read(vg_engine *e, uint64_t from, vg_outbox_fn fn, void *ctx)
{
    outbox *o = &e->ob;
    if (from < o->flushed) { /* the store's part first */
        uint8_t k[8];
        be64(from, k);
        reader R = {fn, ctx, o->flushed, from, false, false};
        vg_err err = store_scan(e->st, STORE_OUTBOX, k, 8, read_one, &R);
        if (err)
            return err;
        if (R.damaged)
            return VG_EINVAL;
        if (R.stopped)
            return VG_OK;
        from = o->flushed;
    }
    for (uint64_t s = from; s < o->next; s++) {
        vg_outbox_rec r;
        pending(o, s, &r);
        if (!fn(ctx, &r))
            break;
    }
    return VG_OK;
}

static outbox_cursor *
find_cursor(outbox *o, const char *sink)
{
    for (size_t i = 0; i < o->ncur; i++)
        if (strcmp(o->cur[i].name, sink) == 0)
            return &o->cur[i];
    return NULL;
}

typedef struct first_rec {
    uint64_t seq; /* the first record's number; the end when there is none */
} first_rec;

static bool
first_one(void *ctx, const vg_outbox_rec *r)
{
    ((first_rec *)ctx)->seq = r->seq;
    return false;
}

vg_err
vg_engine_outbox_cursor(vg_engine *e, const char *sink, uint64_t *seq)
{
    outbox_cursor *c = find_cursor(&e->ob, sink);
    if (c != NULL) {
        *seq = c->seq;
        return VG_OK;
    }
    char name[VG_SINK_NAME_MAX + 16];
    snprintf(name, sizeof name, "cursor:%s", sink);
    int64_t v = -1;
    vg_err err = store_meta(e->st, name, &v, false);
    /* a sink never seen starts with the alerts made from now on */
    *seq = v < 0 ? e->ob.flushed : (uint64_t)v;
    if (err == VG_OK && v >= 0) {
        /* a sink back after a while away (taken out of the config, then put
         * back) may find the records after its cursor deleted, as no sink
         * present needed them: it goes on from the first one still here */
        first_rec F = {e->ob.next};
        err = vg_engine_outbox_read(e, *seq, first_one, &F);
        if (err == VG_OK && F.seq > *seq)
            *seq = F.seq;
    }
    return err;
}

vg_err
vg_engine_outbox_set_cursor(vg_engine *e, const char *sink, uint64_t seq)
{
    outbox *o = &e->ob;
    outbox_cursor *c = find_cursor(o, sink);
    if (c == NULL) {
        outbox_cursor *v = realloc(o->cur, (o->ncur + 1) * sizeof *v);
        if (v == NULL)
            return VG_ENOMEM;
        o->cur = v;
        c = &o->cur[o->ncur];
        if ((c->name = strdup(sink)) == NULL)
            return VG_ENOMEM;
        o->ncur++;
    }
    c->seq = seq;
    return VG_OK;
}

typedef struct finder {
    vg_buf *out;
    uint64_t seq;
    vg_err err;
    bool found;
} finder;

static bool
copy_one(void *ctx, const vg_outbox_rec *r)
{
    finder *F = ctx;
    if (r->seq == F->seq) { /* the first at or after seq must be seq itself */
        F->found = true;
        F->err = encode(F->out, r);
    }
    return false;
}

vg_err
vg_engine_outbox_dead(vg_engine *e, const char *sink, uint64_t seq)
{
    outbox *o = &e->ob;
    size_t start = o->dead.len;
    size_t len0 = strlen(sink);
    if (len0 > VG_SINK_NAME_MAX)
        return VG_EINVAL;
    uint16_t nl = (uint16_t)len0;
    vg_err err = vg_buf_append(&o->dead, &nl, 2);
    if (err == VG_OK)
        err = vg_buf_append(&o->dead, sink, nl);
    if (err == VG_OK)
        err = vg_buf_append(&o->dead, &seq, 8);
    size_t lenat = o->dead.len;
    uint32_t len = 0;
    if (err == VG_OK)
        err = vg_buf_append(&o->dead, &len, 4);
    finder F = {&o->dead, seq, VG_OK, false};
    if (err == VG_OK)
        err = vg_engine_outbox_read(e, seq, copy_one, &F);
    if (err == VG_OK)
        err = F.err;
    if (err == VG_OK && !F.found)
        err = VG_ENOENT;
    if (err) {
        o->dead.len = start;
        return err;
    }
    len = (uint32_t)(o->dead.len - lenat - 4);
    memcpy(o->dead.data + lenat, &len, 4);
    return VG_OK;
}

vg_err
outbox_save(vg_engine *e)
{
    outbox *o = &e->ob;
    vg_err err = VG_OK;
    uint8_t k[8];
    for (size_t i = 0; i < o->noff && err == VG_OK; i++) {
        size_t end = i + 1 < o->noff ? o->off[i + 1] : o->pend.len;
        be64(o->flushed + i, k);
        err = store_put_in(e->st, STORE_OUTBOX, k, 8, o->pend.data + o->off[i], end - o->off[i]);
    }
    for (size_t at = 0; at < o->dead.len && err == VG_OK;) {
        uint16_t nl;
        uint32_t len;
        uint64_t seq;
        memcpy(&nl, o->dead.data + at, 2);
        memcpy(&seq, o->dead.data + at + 2 + nl, 8);
        memcpy(&len, o->dead.data + at + 2 + nl + 8, 4);
        char key[VG_SINK_NAME_MAX + 16];
        size_t kl = nl;
        memcpy(key, o->dead.data + at + 2, kl);
        key[kl] = '\0';
        be64(seq, (uint8_t *)key + kl + 1);
        err = store_put_in(e->st, STORE_DLQ, key, kl + 9, o->dead.data + at + 2 + nl + 12, len);
        at += 2 + nl + 12 + len;
    }
    int64_t next = (int64_t)o->next;
    if (err == VG_OK)
        err = store_meta(e->st, "outseq", &next, true);
    uint64_t low = o->next;
    for (size_t i = 0; i < o->ncur && err == VG_OK; i++) {
        char name[VG_SINK_NAME_MAX + 16];
        snprintf(name, sizeof name, "cursor:%s", o->cur[i].name);
        int64_t v = (int64_t)o->cur[i].seq;
        err = store_meta(e->st, name, &v, true);
        low = o->cur[i].seq < low ? o->cur[i].seq : low;
    }
    /* what every sink has finished goes (no sink known yet: nothing goes) */
    if (err == VG_OK && o->ncur > 0 && low > o->pruned) {
        be64(low, k);
        err = store_del_below(e->st, STORE_OUTBOX, k, 8);
    }
    return err;
}

void
outbox_saved(vg_engine *e)
{
    outbox *o = &e->ob;
    o->flushed = o->next;
    o->noff = 0;
    o->pend.len = 0;
    o->dead.len = 0;
    uint64_t low = o->next;
    for (size_t i = 0; i < o->ncur; i++)
        low = o->cur[i].seq < low ? o->cur[i].seq : low;
    if (o->ncur > 0)
        o->pruned = low;
}

void
outbox_free(vg_engine *e)
{
    outbox *o = &e->ob;
    vg_buf_free(&o->pend);
    vg_buf_free(&o->dead);
    free(o->off);
    for (size_t i = 0; i < o->ncur; i++)
        free(o->cur[i].name);
    free(o->cur);
    memset(o, 0, sizeof *o);
}

/* ---- The dead-letter list, for vigil dlq ------------------------------------ */

struct vg_dlq {
    store *st;
};

vg_err
vg_dlq_open(const char *dir, vg_dlq **out, char *why, size_t whylen)
{
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        snprintf(why, whylen, "'%s' is not a state folder (give the engine's --state)", dir);
        return VG_ENOENT;
    }
    vg_dlq *q = calloc(1, sizeof *q);
    if (q == NULL)
        return VG_ENOMEM;
    vg_err err = store_open(dir, true, (size_t)64 << 30, &q->st, why, whylen);
    if (err) {
        free(q);
        return err;
    }
    *out = q;
    return VG_OK;
}

typedef struct dlq_walk {
    vg_dlq_fn fn;
    void *ctx;
    bool damaged;
} dlq_walk;

static bool
dlq_one(void *ctx, const void *k, size_t klen, const void *v, size_t vlen)
{
    dlq_walk *W = ctx;
    const char *key = k;
    size_t nl = strnlen(key, klen);
    if (klen != nl + 9)
        return true;
    char sink[VG_SINK_NAME_MAX + 16];
    snprintf(sink, sizeof sink, "%.*s", (int)nl, key);
    vg_outbox_rec r;
    if (!decode(v, vlen, from_be64((const uint8_t *)key + nl + 1), &r)) {
        W->damaged = true;
        return true;
    }
    return W->fn(W->ctx, sink, &r);
}

vg_err
vg_dlq_each(vg_dlq *q, vg_dlq_fn fn, void *ctx)
{
    dlq_walk W = {fn, ctx, false};
    vg_err err = store_scan(q->st, STORE_DLQ, NULL, 0, dlq_one, &W);
    return err ? err : W.damaged ? VG_EINVAL : VG_OK;
}

vg_err
vg_dlq_remove(vg_dlq *q, const char *sink, uint64_t seq)
{
    char key[VG_SINK_NAME_MAX + 16];
    size_t kl = strlen(sink);
    if (kl > VG_SINK_NAME_MAX)
        return VG_EINVAL;
    memcpy(key, sink, kl + 1);
    be64(seq, (uint8_t *)key + kl + 1);
    vg_err err = store_del_in(q->st, STORE_DLQ, key, kl + 9);
    if (err == VG_OK)
        err = store_commit(q->st);
    else
        store_abort(q->st);
    return err;
}

void
vg_dlq_close(vg_dlq *q)
{
    if (q == NULL)
        return;
    store_close(q->st);
    free(q);
}
