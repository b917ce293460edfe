/*
 * store.c - per-key state on disk, in LMDB, and its byte format.
 *
 * The engine keeps key records in memory and writes them back in batches
 * (vg_engine_flush, or when the in-memory cache is over its budget); a key
 * the engine no longer holds is read back from here on its next event. The
 * hot path touches LMDB only on such a miss.
 *
 * Databases of the environment:
 *   state  keyspace text \0 key bytes -> a key record (format below)
 *   ids    the event id's 128-bit hash -> its time (ms): the deduplication index
 *   meta   "clock" -> the event clock; "format" -> the format version;
 *          "outseq" -> the next outbox number; "cursor:NAME" -> sink NAME's
 *          first unfinished outbox number
 *   timers pending trailing-`not` deadlines (pattern.c)
 *   outbox alert number (u64 big-endian) -> an outbox record (outbox.c)
 *   dlq    sink name \0 alert number -> an outbox record: the dead letters
 *   decisions  event time (i64 big-endian) + the id's two hashes -> the rules
 *          that made a decision (vg_engine_record_decision_rules), so a
 *          resent id gets them back; pruned with the ids
 *
 * Key record, version 1 (integers little-endian as the host writes them):
 *   u8 version, u16 nrules, then per rule:
 *     16 bytes state_id, u32 payload length, payload:
 *       i64 last_alert, u8 flags (1 alerted, 2 has_prev),
 *       u16 ncols, ncols x str (column text),
 *       u32 nentries, nentries x (i64 time, u64 missing bits, ncols x f64),
 *       u16 nhist, nhist x (str agg text, u64 n, f64 sum, i64 xsum, f64 min, f64 max),
 *       u16 nprev, nprev x (str text, u8 kind, f64 num | u32 len + bytes)
 *   str = u16 length + bytes
 * Columns, history sums and prev values are matched to the rule by their
 * text when read back, so a rule whose message gains an aggregate keeps the
 * rest of its state; a rule whose state_id is gone is dropped.
 */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engineInt.h"

struct store {
    size_t map_bytes, max_bytes; /* the map now, and how far it may grow */
    MDB_env *env;
    MDB_dbi state, ids, meta, timers, outbox, dlq, decisions;
    MDB_txn *wtxn; /* the open write transaction, if any */
    bool nospace;  /* the map could not grow: no room on the disk */
};

static vg_err
mdb_err(int rc)
{
    return rc == 0 ? VG_OK : rc == ENOMEM ? VG_ENOMEM : rc == MDB_MAP_FULL ? VG_ELIMIT : VG_EIO;
}

/* With MDB_WRITEMAP LMDB writes the state through a shared mapping of
 * data.mdb, a file as long as the map but sparse: a page the disk has no
 * room for would kill the process with SIGBUS when touched (and again on
 * every restart). So the map's bytes are reserved on disk before LMDB may use
 * them, and a disk without room is found here, as an error: VG_ELIMIT (like
 * a full map), or VG_EIO. File systems that cannot reserve are left as they
 * are. */
static vg_err
reserve(store *s, size_t bytes)
{
    mdb_filehandle_t fd;
    if (mdb_env_get_fd(s->env, &fd) != 0)
        return VG_EIO;
    if (fallocate(fd, 0, 0, (off_t)bytes) == 0)
        return VG_OK;
    if (errno == EOPNOTSUPP || errno == ENOSYS)
        return VG_OK;
    if (errno == ENOSPC || errno == EDQUOT) {
        s->nospace = true;
        return VG_ELIMIT;
    }
    return VG_EIO;
}

bool
store_nospace(const store *s)
{
    return s->nospace;
}

vg_err
store_open(const char *dir, bool durable, size_t max_bytes, store **out, char *why, size_t whylen)
{
    store *s = calloc(1, sizeof *s);
    if (s == NULL)
        return VG_ENOMEM;
    /* start small (a small address space, valgrind) and grow on demand; but
     * never below the file: with MDB_WRITEMAP, LMDB sizes the file to the
     * map, and a smaller map would cut the file under another process that
     * has it open (the engine, while vigil dlq looks at its state) */
    size_t map_bytes = (size_t)32 << 20;
    if (map_bytes > max_bytes)
        map_bytes = max_bytes;
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    if (stat(path, &sb) == 0 && (size_t)sb.st_size > map_bytes)
        map_bytes = (size_t)sb.st_size;
    if (map_bytes > max_bytes)
        max_bytes = map_bytes; /* a state bigger than the limit still opens */
    s->map_bytes = map_bytes;
    s->max_bytes = max_bytes;
    int rc;
    MDB_txn *txn = NULL;
    if (mkdir(dir, 0775) != 0 && errno != EEXIST) {
        snprintf(why, whylen, "can't make the state folder '%s': %s", dir, strerror(errno));
        free(s);
        return VG_EIO;
    }
    if ((rc = mdb_env_create(&s->env)) != 0 || (rc = mdb_env_set_maxdbs(s->env, 8)) != 0 ||
        (rc = mdb_env_set_mapsize(s->env, map_bytes)) != 0 ||
        (rc = mdb_env_open(s->env, dir, MDB_WRITEMAP | (durable ? 0 : MDB_NOSYNC), 0664)) != 0 ||
        (rc = reserve(s, map_bytes) == VG_OK ? 0
              : s->nospace                   ? ENOSPC
                                             : EIO) != 0 ||
        (rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0 ||
        (rc = mdb_dbi_open(txn, "state", MDB_CREATE, &s->state)) != 0 ||
        (rc = mdb_dbi_open(txn, "ids", MDB_CREATE, &s->ids)) != 0 ||
        (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->meta)) != 0 ||
        (rc = mdb_dbi_open(txn, "timers", MDB_CREATE, &s->timers)) != 0 ||
        (rc = mdb_dbi_open(txn, "outbox", MDB_CREATE, &s->outbox)) != 0 ||
        (rc = mdb_dbi_open(txn, "dlq", MDB_CREATE, &s->dlq)) != 0 ||
        (rc = mdb_dbi_open(txn, "decisions", MDB_CREATE, &s->decisions)) != 0) {
        if (s->nospace)
            snprintf(why, whylen,
                     "no room on the disk for the state in '%s' (%zu MiB reserved for it): free "
                     "some space, or give --state another disk",
                     dir, map_bytes >> 20);
        else
            snprintf(why, whylen, "can't open the state in '%s': %s", dir, mdb_strerror(rc));
        if (txn)
            mdb_txn_abort(txn);
        if (s->env)
            mdb_env_close(s->env);
        free(s);
        return mdb_err(rc);
    }
    /* the format version: refuse what this version cannot read */
    MDB_val k = {6, (void *)"format"}, v;
    rc = mdb_get(txn, s->meta, &k, &v);
    if (rc == MDB_NOTFOUND) {
        uint8_t one = 1;
        v.mv_size = 1;
        v.mv_data = &one;
        rc = mdb_put(txn, s->meta, &k, &v, 0);
    } else if (rc == 0 && (v.mv_size != 1 || *(uint8_t *)v.mv_data != 1)) {
        snprintf(why, whylen, "the state in '%s' was written by another version of vigil", dir);
        mdb_txn_abort(txn);
        mdb_env_close(s->env);
        free(s);
        return VG_EINVAL;
    }
    if (rc == 0)
        rc = mdb_txn_commit(txn);
    else
        mdb_txn_abort(txn);
    if (rc != 0) {
        snprintf(why, whylen, "can't write the state in '%s': %s", dir, mdb_strerror(rc));
        mdb_env_close(s->env);
        free(s);
        return mdb_err(rc);
    }
    *out = s;
    return VG_OK;
}

void
store_close(store *s)
{
    if (s == NULL)
        return;
    if (s->wtxn)
        mdb_txn_abort(s->wtxn);
    mdb_env_close(s->env);
    free(s);
}

/* Begins a transaction; when another process grew the map, adopts its
 * size first (MDB_MAP_RESIZED). */
static int
begin(store *s, unsigned flags, MDB_txn **txn)
{
    int rc = mdb_txn_begin(s->env, NULL, flags, txn);
    if (rc == MDB_MAP_RESIZED && (rc = mdb_env_set_mapsize(s->env, 0)) == 0) {
        MDB_envinfo info;
        mdb_env_info(s->env, &info);
        s->map_bytes = info.me_mapsize;
        if (s->map_bytes > s->max_bytes)
            s->max_bytes = s->map_bytes;
        rc = mdb_txn_begin(s->env, NULL, flags, txn);
    }
    return rc;
}

static vg_err
wtxn(store *s)
{
    if (s->wtxn != NULL)
        return VG_OK;
    return mdb_err(begin(s, 0, &s->wtxn));
}

vg_err
store_grow(store *s)
{
    if (s->wtxn != NULL) {
        mdb_txn_abort(s->wtxn);
        s->wtxn = NULL;
    }
    if (s->map_bytes >= s->max_bytes)
        return VG_ELIMIT;
    size_t next = s->map_bytes * 2 > s->max_bytes ? s->max_bytes : s->map_bytes * 2;
    vg_err err = reserve(s, next);
    if (err)
        return err;
    int rc = mdb_env_set_mapsize(s->env, next);
    if (rc != 0)
        return mdb_err(rc);
    s->map_bytes = next;
    return VG_OK;
}

void
store_usage(store *s, uint64_t *used, uint64_t *size)
{
    MDB_envinfo info;
    MDB_stat st;
    *used = *size = 0;
    if (mdb_env_info(s->env, &info) == 0 && mdb_env_stat(s->env, &st) == 0) {
        *used = (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
        *size = info.me_mapsize;
    }
}

void
store_abort(store *s)
{
    if (s->wtxn != NULL) {
        mdb_txn_abort(s->wtxn);
        s->wtxn = NULL;
    }
}

vg_err
store_commit(store *s)
{
    if (s->wtxn == NULL)
        return VG_OK;
    int rc = mdb_txn_commit(s->wtxn);
    s->wtxn = NULL;
    return mdb_err(rc);
}

static vg_err
state_key(vg_buf *b, const char *ks, const char *key, uint32_t keylen)
{
    b->len = 0;
    vg_err err = vg_buf_puts(b, ks);
    err = err ? err : vg_buf_putc(b, '\0');
    return err ? err : vg_buf_append(b, key, keylen);
}

vg_err
store_get(store *s, const char *ks, const char *key, uint32_t keylen, vg_buf *scratch, vg_buf *out,
          bool *found)
{
    vg_err err = state_key(scratch, ks, key, keylen);
    if (err)
        return err; /* not a shorter key's record */
    MDB_txn *txn = s->wtxn;
    int rc = 0;
    if (txn == NULL && (rc = begin(s, MDB_RDONLY, &txn)) != 0)
        return mdb_err(rc);
    MDB_val k = {scratch->len, scratch->data}, v;
    rc = mdb_get(txn, s->state, &k, &v);
    *found = rc == 0;
    out->len = 0;
    err = rc == 0              ? vg_buf_append(out, v.mv_data, v.mv_size)
          : rc == MDB_NOTFOUND ? VG_OK
                               : mdb_err(rc);
    if (txn != s->wtxn)
        mdb_txn_abort(txn);
    return err;
}

vg_err
store_put(store *s, const char *ks, const char *key, uint32_t keylen, const vg_buf *rec,
          vg_buf *scratch)
{
    vg_err err = wtxn(s);
    err = err ? err : state_key(scratch, ks, key, keylen);
    if (err)
        return err; /* not under a shorter key */
    MDB_val k = {scratch->len, scratch->data}, v = {rec->len, rec->data};
    return mdb_err(mdb_put(s->wtxn, s->state, &k, &v, 0));
}

vg_err
store_put_id(store *s, const char *id, uint32_t len, int64_t time_ms, const uint8_t dec[3])
{
    vg_err err = wtxn(s);
    if (err)
        return err;
    unsigned char val[11];
    memcpy(val, &time_ms, 8);
    memcpy(val + 8, dec, 3);
    MDB_val k = {len, (void *)id}, v = {sizeof val, val};
    return mdb_err(mdb_put(s->wtxn, s->ids, &k, &v, 0));
}

/* Deletes the ids older than horizon_start; then calls fn for every id kept. */
vg_err
store_ids(store *s, int64_t horizon_start,
          void (*fn)(void *, const char *, uint32_t, int64_t, const uint8_t *), void *ctx)
{
    vg_err err = wtxn(s);
    if (err)
        return err;
    MDB_cursor *c;
    int rc = mdb_cursor_open(s->wtxn, s->ids, &c);
    if (rc != 0)
        return mdb_err(rc);
    MDB_val k, v;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        int64_t t;
        uint8_t dec[3] = {0, 0, 0};
        if (v.mv_size != sizeof t && v.mv_size != sizeof t + 3)
            continue;
        memcpy(&t, v.mv_data, sizeof t);
        if (v.mv_size == sizeof t + 3)
            memcpy(dec, (const char *)v.mv_data + 8, 3);
        if (t < horizon_start) {
            mdb_cursor_del(c, 0);
            continue;
        }
        if (fn)
            fn(ctx, k.mv_data, (uint32_t)k.mv_size, t, dec);
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? VG_OK : mdb_err(rc);
}

vg_err
store_timers_clear(store *s)
{
    vg_err err = wtxn(s);
    return err ? err : mdb_err(mdb_drop(s->wtxn, s->timers, 0));
}

vg_err
store_timer_put(store *s, const void *key, size_t klen, const void *val, size_t vlen)
{
    vg_err err = wtxn(s);
    if (err)
        return err;
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    return mdb_err(mdb_put(s->wtxn, s->timers, &k, &v, 0));
}

vg_err
store_timers(store *s, void (*fn)(void *, const void *, size_t, const void *, size_t), void *ctx)
{
    MDB_txn *txn = s->wtxn; /* one transaction per thread: the open one, if any */
    int rc = 0;
    if (txn == NULL && (rc = begin(s, MDB_RDONLY, &txn)) != 0)
        return mdb_err(rc);
    MDB_cursor *c;
    rc = mdb_cursor_open(txn, s->timers, &c);
    MDB_val k, v;
    for (rc = rc ? rc : mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
        fn(ctx, k.mv_data, k.mv_size, v.mv_data, v.mv_size);
    if (rc == MDB_NOTFOUND || rc == 0)
        mdb_cursor_close(c);
    if (txn != s->wtxn)
        mdb_txn_abort(txn);
    return rc == MDB_NOTFOUND ? VG_OK : mdb_err(rc);
}

static MDB_dbi
dbi(store *s, store_db db)
{
    return db == STORE_OUTBOX ? s->outbox : db == STORE_DLQ ? s->dlq : s->decisions;
}

vg_err
store_get_in(store *s, store_db db, const void *key, size_t klen, vg_buf *out, bool *found)
{
    MDB_txn *txn = s->wtxn;
    int rc = 0;
    if (txn == NULL && (rc = begin(s, MDB_RDONLY, &txn)) != 0)
        return mdb_err(rc);
    MDB_val k = {klen, (void *)key}, v;
    rc = mdb_get(txn, dbi(s, db), &k, &v);
    *found = rc == 0;
    out->len = 0;
    vg_err err = rc == 0              ? vg_buf_append(out, v.mv_data, v.mv_size)
                 : rc == MDB_NOTFOUND ? VG_OK
                                      : mdb_err(rc);
    if (txn != s->wtxn)
        mdb_txn_abort(txn);
    return err;
}

vg_err
store_put_in(store *s, store_db db, const void *key, size_t klen, const void *val, size_t vlen)
{
    vg_err err = wtxn(s);
    if (err)
        return err;
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    return mdb_err(mdb_put(s->wtxn, dbi(s, db), &k, &v, 0));
}

vg_err
store_del_in(store *s, store_db db, const void *key, size_t klen)
{
    vg_err err = wtxn(s);
    if (err)
        return err;
    MDB_val k = {klen, (void *)key};
    int rc = mdb_del(s->wtxn, dbi(s, db), &k, NULL);
    return rc == MDB_NOTFOUND ? VG_OK : mdb_err(rc);
}

vg_err
store_scan(store *s, store_db db, const void *from, size_t flen,
           bool (*fn)(void *ctx, const void *k, size_t klen, const void *v, size_t vlen), void *ctx)
{
    MDB_txn *txn = s->wtxn; /* one transaction per thread: the open one, if any */
    int rc = 0;
    if (txn == NULL && (rc = begin(s, MDB_RDONLY, &txn)) != 0)
        return mdb_err(rc);
    MDB_cursor *c = NULL;
    MDB_val k = {flen, (void *)from}, v;
    if ((rc = mdb_cursor_open(txn, dbi(s, db), &c)) == 0)
        rc = mdb_cursor_get(c, &k, &v, flen ? MDB_SET_RANGE : MDB_FIRST);
    for (; rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
        if (!fn(ctx, k.mv_data, k.mv_size, v.mv_data, v.mv_size))
            break;
    if (c != NULL)
        mdb_cursor_close(c);
    if (txn != s->wtxn)
        mdb_txn_abort(txn);
    return rc == MDB_NOTFOUND || rc == 0 ? VG_OK : mdb_err(rc);
}

vg_err
store_del_below(store *s, store_db db, const void *upto, size_t ulen)
{
    vg_err err = wtxn(s);
    if (err)
        return err;
    MDB_cursor *c;
    int rc = mdb_cursor_open(s->wtxn, dbi(s, db), &c);
    if (rc)
        return mdb_err(rc);
    MDB_val k, v, u = {ulen, (void *)upto};
    while ((rc = mdb_cursor_get(c, &k, &v, MDB_FIRST)) == 0 &&
           mdb_cmp(s->wtxn, dbi(s, db), &k, &u) < 0)
        if ((rc = mdb_cursor_del(c, 0)) != 0)
            break;
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND || rc == 0 ? VG_OK : mdb_err(rc);
}

vg_err
store_meta(store *s, const char *name, int64_t *value, bool write)
{
    MDB_val k = {strlen(name), (void *)name}, v = {sizeof *value, value};
    if (write) {
        vg_err err = wtxn(s);
        return err ? err : mdb_err(mdb_put(s->wtxn, s->meta, &k, &v, 0));
    }
    MDB_txn *txn = s->wtxn;
    int rc = 0;
    if (txn == NULL && (rc = begin(s, MDB_RDONLY, &txn)) != 0)
        return mdb_err(rc);
    rc = mdb_get(txn, s->meta, &k, &v);
    if (rc == 0 && v.mv_size == sizeof *value)
        memcpy(value, v.mv_data, sizeof *value);
    if (txn != s->wtxn)
        mdb_txn_abort(txn);
    return rc == 0 || rc == MDB_NOTFOUND ? VG_OK : mdb_err(rc);
}

/* ---- The record format --------------------------------------------------- */

static vg_err
put(vg_buf *b, const void *p, size_t n)
{
    return vg_buf_append(b, p, n);
}

static vg_err
put_str(vg_buf *b, const char *s, size_t n)
{
    uint16_t l = n > 65535 ? 65535 : (uint16_t)n;
    vg_err err = put(b, &l, 2);
    return err ? err : put(b, s, l);
}

static vg_err
encode_rule(vg_buf *b, const vg_rule *r, const rstate *st)
{
    vg_err err = put(b, r->state_id, 16);
    size_t lenat = b->len;
    uint32_t len = 0;
    err = err ? err : put(b, &len, 4);
    err = err ? err : put(b, &st->last_alert, 8);
    uint8_t flags = (st->alerted ? 1 : 0) | (st->has_prev ? 2 : 0);
    err = err ? err : put(b, &flags, 1);
    uint16_t nc = (uint16_t)r->ncols;
    err = err ? err : put(b, &nc, 2);
    for (uint32_t c = 0; c < r->ncols && !err; c++)
        err = put_str(b, r->cols[c].text, strlen(r->cols[c].text));
    err = err ? err : put(b, &st->n, 4);
    /* an entry is its time, missing bits and columns: the words as they are */
    for (uint32_t i = 0; i < st->n && !err; i++)
        err = put(b, st->e + (size_t)i * st->stride, (size_t)st->stride * 8);
    uint16_t nh = 0;
    for (uint32_t i = 0; i < r->naggs; i++)
        nh += r->aggs[i].win == VG_WIN_HISTORY;
    err = err ? err : put(b, &nh, 2);
    for (uint32_t i = 0; i < r->naggs && !err; i++) {
        if (r->aggs[i].win != VG_WIN_HISTORY)
            continue;
        const hist *h = &st->hist[i];
        err = put_str(b, r->aggs[i].text, strlen(r->aggs[i].text));
        err = err ? err : put(b, &h->n, 8);
        err = err ? err : put(b, &h->sum, 8);
        err = err ? err : put(b, &h->xsum, 8);
        err = err ? err : put(b, &h->min, 8);
        err = err ? err : put(b, &h->max, 8);
    }
    uint16_t np = st->has_prev ? (uint16_t)r->nprevs : 0;
    err = err ? err : put(b, &np, 2);
    for (uint32_t i = 0; i < np && !err; i++) {
        const vg_value *v = &st->prev[i];
        err = put_str(b, r->prev_texts[i], strlen(r->prev_texts[i]));
        err = err ? err : put(b, &v->kind, 1);
        if (v->kind == VG_V_STR) {
            err = err ? err : put(b, &v->len, 4);
            err = err ? err : put(b, v->u.s, v->len);
        } else {
            err = err ? err : put(b, &v->u.num, 8);
        }
    }
    if (!err) {
        len = (uint32_t)(b->len - lenat - 4);
        memcpy(b->data + lenat, &len, 4);
    }
    return err;
}

vg_err
keyrec_encode(const keyrec *k, const vg_ruleset *rs, size_t nrules, vg_buf *out)
{
    out->len = 0;
    uint8_t ver = 1;
    uint16_t n = 0;
    vg_err err = put(out, &ver, 1);
    size_t nat = out->len;
    err = err ? err : put(out, &n, 2);
    for (size_t i = 0; i < nrules && !err; i++) {
        const vg_rule *r = vg_ruleset_rule(rs, i);
        if (k->rules[i] == NULL)
            continue;
        if (r->is_match) {
            err = put(out, r->state_id, 16);
            size_t lenat = out->len;
            uint32_t len = 0;
            err = err ? err : put(out, &len, 4);
            err = err ? err
                      : pstate_encode((const pstate *)(const void *)k->rules[i], r,
                                      vg_ruleset_schema(rs), out);
            len = (uint32_t)(out->len - lenat - 4);
            if (!err)
                memcpy(out->data + lenat, &len, 4);
        } else {
            err = encode_rule(out, r, k->rules[i]);
        }
        n++;
    }
    if (!err)
        memcpy(out->data + nat, &n, 2);
    return err;
}

/* A bounds-checked reader over a record. */
typedef struct rd {
    const unsigned char *p, *end;
    bool bad;
} rd;

static bool
get(rd *r, void *out, size_t n)
{
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = true;
        memset(out, 0, n);
        return false;
    }
    memcpy(out, r->p, n);
    r->p += n;
    return true;
}

static const char *
get_str(rd *r, uint16_t *len)
{
    if (!get(r, len, 2) || (size_t)(r->end - r->p) < *len) {
        r->bad = true;
        return NULL;
    }
    const char *s = (const char *)r->p;
    r->p += *len;
    return s;
}

static bool
text_eq(const char *s, uint16_t len, const char *t)
{
    return s && strlen(t) == len && memcmp(s, t, len) == 0;
}

static vg_err
decode_rule(slab *sl, rd *r, const vg_rule *rule, rstate *st)
{
    uint8_t flags;
    get(r, &st->last_alert, 8);
    get(r, &flags, 1);
    st->alerted = flags & 1;
    uint16_t nc;
    get(r, &nc, 2);
    int map[64]; /* stored column -> the rule's column, or -1 */
    if (nc > 64)
        r->bad = true;
    for (uint16_t c = 0; c < nc && !r->bad; c++) {
        uint16_t len;
        const char *t = get_str(r, &len);
        map[c] = -1;
        for (uint32_t k = 0; k < rule->ncols; k++)
            if (text_eq(t, len, rule->cols[k].text))
                map[c] = (int)k;
    }
    uint32_t n;
    get(r, &n, 4);
    if (r->bad || n > (size_t)(r->end - r->p) / 16)
        return VG_EINVAL;
    uint32_t ncols = rule->ncols;
    if (rstate_reserve(sl, st, n) != VG_OK)
        return VG_ENOMEM;
    uint64_t all = ncols >= 64 ? ~0ull : (1ull << ncols) - 1;
    for (uint32_t i = 0; i < n && !r->bad; i++) {
        uint64_t miss, *w = st->e + (size_t)i * st->stride;
        int64_t t;
        get(r, &t, 8);
        get(r, &miss, 8);
        w[0] = (uint64_t)t;
        w[1] = all; /* columns the stored entry lacks are missing */
        for (uint32_t c = 0; c < ncols; c++)
            w[2 + c] = 0;
        for (uint16_t c = 0; c < nc; c++) {
            uint64_t x;
            get(r, &x, 8);
            if (map[c] >= 0) {
                w[2 + map[c]] = x;
                if (!(miss & (1ull << c)))
                    w[1] &= ~(1ull << map[c]);
            }
        }
        st->n = i + 1;
    }
    uint16_t nh;
    get(r, &nh, 2);
    for (uint16_t i = 0; i < nh && !r->bad; i++) {
        uint16_t len;
        const char *t = get_str(r, &len);
        hist h;
        get(r, &h.n, 8);
        get(r, &h.sum, 8);
        get(r, &h.xsum, 8);
        get(r, &h.min, 8);
        get(r, &h.max, 8);
        for (uint32_t k = 0; k < rule->naggs; k++)
            if (rule->aggs[k].win == VG_WIN_HISTORY && text_eq(t, len, rule->aggs[k].text))
                st->hist[k] = h;
    }
    uint16_t np;
    get(r, &np, 2);
    vg_value prev[64];
    bool have[64] = {0};
    for (uint16_t i = 0; i < np && !r->bad; i++) {
        uint16_t len;
        const char *t = get_str(r, &len);
        vg_value v = {0};
        get(r, &v.kind, 1);
        if (v.kind == VG_V_STR) {
            get(r, &v.len, 4);
            if ((size_t)(r->end - r->p) < v.len) {
                r->bad = true;
                break;
            }
            v.u.s = (const char *)r->p;
            r->p += v.len;
        } else {
            get(r, &v.u.num, 8);
        }
        for (uint32_t k = 0; k < rule->nprevs && k < 64; k++) {
            if (text_eq(t, len, rule->prev_texts[k])) {
                prev[k] = v;
                have[k] = true;
            }
        }
    }
    if (r->bad)
        return VG_EINVAL;
    if (flags & 2) {
        for (uint32_t k = 0; k < rule->nprevs && k < 64; k++)
            if (!have[k])
                prev[k].kind = VG_V_MISSING;
        return rstate_set_prev(sl, st, rule, prev);
    }
    return VG_OK;
}

vg_err
keyrec_decode(slab *sl, keyrec *k, const vg_ruleset *rs, size_t nrules, const vg_buf *in)
{
    rd r = {(const unsigned char *)in->data, (const unsigned char *)in->data + in->len, false};
    uint8_t ver;
    uint16_t n;
    get(&r, &ver, 1);
    get(&r, &n, 2);
    if (r.bad || ver != 1)
        return VG_EINVAL;
    for (uint16_t i = 0; i < n && !r.bad; i++) {
        char id[16];
        uint32_t len;
        get(&r, id, 16);
        get(&r, &len, 4);
        if (r.bad || (size_t)(r.end - r.p) < len)
            return VG_EINVAL;
        rd sub = {r.p, r.p + len, false};
        r.p += len;
        for (size_t ri = 0; ri < nrules; ri++) {
            const vg_rule *rule = vg_ruleset_rule(rs, ri);
            if (memcmp(rule->state_id, id, 16) != 0 || rule->keyspace != k->keyspace ||
                k->rules[ri] != NULL)
                continue;
            vg_err err;
            if (rule->is_match) {
                pstate *ps = NULL;
                err = pstate_decode(rule, vg_ruleset_schema(rs), sub.p, (size_t)(sub.end - sub.p),
                                    &ps);
                k->rules[ri] = (rstate *)(void *)ps;
                if (err)
                    return err;
                break;
            }
            rstate *st = keyrec_state(sl, k, rule, ri);
            if (st == NULL)
                return VG_ENOMEM;
            err = decode_rule(sl, &sub, rule, st);
            if (err)
                return err;
            break; /* a state_id no rule has is dropped */
        }
    }
    return r.bad ? VG_EINVAL : VG_OK;
}
