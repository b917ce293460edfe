/*
 * engine.c - the evaluation loop (vg_engine.h): ids, keys, `where`, windows,
 * `when`, suppression and alerts, for `when` rules. State lives in memory in
 * a hash table of key records; a key record holds each rule's state for it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engineInt.h"

#define DAY_MS 86400000LL

/* The key and id tables: big, and probed at random, so nearly every probe
 * misses the TLB with 4 KiB pages. From 2 MiB up they are mapped on their
 * own and asked to use transparent huge pages (on by default in Debian only
 * for regions that ask). Zeroed. */
#define TABLE_HUGE ((size_t)2 << 20)

static void *
table_alloc(size_t n, size_t size)
{
    size_t bytes = n * size;
    if (bytes < TABLE_HUGE)
        return calloc(n, size);
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
#ifdef MADV_HUGEPAGE
    (void)madvise(p, bytes, MADV_HUGEPAGE); /* a hint: without it, 4 KiB pages */
#endif
    return p;
}

static void
table_free(void *p, size_t n, size_t size)
{
    if (p != NULL && n * size >= TABLE_HUGE)
        munmap(p, n * size);
    else
        free(p);
}

/* Groups the `when` rules by keyspace (counting sort, rule order kept). */
static bool
ksrules_build(vg_engine *e, size_t nks)
{
    e->ksrule_start = calloc(nks + 1, sizeof(size_t));
    e->ksrule_ix = calloc(e->nrules ? e->nrules : 1, sizeof(size_t));
    size_t *fill = calloc(nks, sizeof(size_t));
    bool ok = e->ksrule_start && e->ksrule_ix && fill;
    for (size_t i = 0; ok && i < e->nrules; i++)
        e->ksrule_start[vg_ruleset_rule(e->rs, i)->keyspace + 1]++;
    for (size_t k = 1; ok && k <= nks; k++)
        e->ksrule_start[k] += e->ksrule_start[k - 1];
    for (size_t i = 0; ok && i < e->nrules; i++) {
        const vg_rule *r = vg_ruleset_rule(e->rs, i);
        e->ksrule_ix[e->ksrule_start[r->keyspace] + fill[r->keyspace]++] = i;
    }
    free(fill);
    return ok;
}

uint64_t
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

static vg_err ids_add_hashed(vg_engine *e, uint64_t h, uint64_t h2, int64_t t, bool saved,
                             bool *dup);

typedef struct idload {
    vg_engine *e;
    vg_err err; /* the first failure: the index would miss ids */
} idload;

/* store_ids() callback: an id of an earlier run, stored as its two hashes */
static void
load_id(void *ctx, const char *key, uint32_t len, int64_t t, const uint8_t *dec)
{
    idload *L = ctx;
    uint64_t h[2];
    bool dup;
    if (len != sizeof h || L->err != VG_OK)
        return;
    memcpy(h, key, sizeof h);
    L->err = ids_add_hashed(L->e, h[0], h[1], t, true, &dup);
    if (L->err == VG_OK && L->e->last_id != NULL)
        memcpy(L->e->last_id->dec, dec, 3);
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

/* Takes the state folder dir for e (made if missing): an exclusive flock on
 * dir/lock, held until vg_engine_close(), so a second engine (vigil run or
 * replay --state) on the same folder is refused; the lock file holds the
 * owner's pid, for the message. The kernel drops the lock when the process
 * dies, so a kill -9 leaves nothing to clean up. vigil dlq reads the state
 * beside a running engine, and takes no lock. */
static vg_err
lock_dir(vg_engine *e, const char *dir, char *why, size_t whylen)
{
    if (mkdir(dir, 0775) != 0 && errno != EEXIST) {
        snprintf(why, whylen, "can't make the state folder '%s': %s", dir, strerror(errno));
        return VG_EIO;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0664);
    if (fd < 0) {
        snprintf(why, whylen, "can't open '%s': %s", path, strerror(errno));
        return VG_EIO;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int en = errno;
        char pid[24] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        close(fd);
        if (en == EWOULDBLOCK)
            snprintf(why, whylen,
                     "the state folder '%s' is in use by another vigil%s%s%s: stop it first, or "
                     "give this one another folder",
                     dir, pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "");
        else
            snprintf(why, whylen, "can't lock '%s': %s", path, strerror(en));
        return en == EWOULDBLOCK ? VG_EINVAL : VG_EIO;
    }
    char pid[24];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    /* if this fails the lock holds all the same; only the message lacks the pid */
    bool noted = ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)len, 0) == len;
    (void)noted;
    e->lockfd = fd;
    return VG_OK;
}

vg_err
vg_engine_open(vg_ruleset *rs, const vg_engine_opts *opts, char *why, size_t whylen,
               vg_engine **out)
{
    vg_engine *e = calloc(1, sizeof *e);
    if (e == NULL)
        return VG_ENOMEM;
    e->lockfd = -1;
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
    e->keys = table_alloc(e->capkeys, sizeof(keyslot));
    e->ks_rec = calloc(vg_ruleset_nkeyspaces(rs) + 1, sizeof(keyrec *));
    e->ks_epoch = calloc(vg_ruleset_nkeyspaces(rs) + 1, sizeof(uint64_t));
    e->epoch = 1;
    e->slab = slab_new();
    size_t nks1 = vg_ruleset_nkeyspaces(rs) + 1;
    bool ksrules_ok = ksrules_build(e, nks1);
    e->nks1 = nks1;
    e->rows_hash = calloc((VG_ENGINE_BATCH + 1) * nks1, sizeof(uint64_t));
    e->rows_off = calloc((VG_ENGINE_BATCH + 1) * nks1, sizeof(size_t));
    e->rows_len = calloc((VG_ENGINE_BATCH + 1) * nks1, sizeof(size_t));
    for (int s = 0; s < VG_NSTREAMS; s++) {
        e->kspre[s] = calloc(nks1, sizeof(kspre));
        for (size_t i = 0; e->kspre[s] && i < e->nrules; i++) {
            const vg_rule *r = vg_ruleset_rule(rs, i);
            bool have = false;
            for (size_t j = 0; j < e->nkspre[s]; j++)
                have |= e->kspre[s][j].ks == r->keyspace;
            if (!r->is_match && (int)r->on == s && !have)
                e->kspre[s][e->nkspre[s]++] = (kspre){r->keyspace, (uint32_t)i};
        }
    }
    e->capids = 1024;
    e->ids = table_alloc(e->capids, sizeof(idrec));
    e->steps = calloc(VG_PATTERN_STEPS, sizeof(vg_event *));
    e->proot = pattern_root_alloc();
    e->pid = calloc(VG_PATTERN_STEPS * VG_PATTERN_IDS, sizeof(char *));
    e->pidlen = calloc(VG_PATTERN_STEPS * VG_PATTERN_IDS, sizeof(uint32_t));
    e->cache_keys = opts && opts->cache_keys ? opts->cache_keys : 4000000;
    e->defer_evict = opts && opts->defer_evict;
    e->gen = 1;
    if (e->stats == NULL || e->aggs == NULL || e->cols == NULL || e->prevs == NULL ||
        e->noprev == NULL || e->keys == NULL || e->steps == NULL || e->proot == NULL ||
        e->pid == NULL || e->pidlen == NULL || e->ids == NULL || e->ks_rec == NULL ||
        e->slab == NULL || !ksrules_ok || e->rows_hash == NULL || e->rows_off == NULL ||
        e->rows_len == NULL || e->kspre[0] == NULL || e->kspre[1] == NULL || e->ks_epoch == NULL ||
        vg_vm_new(rs, &e->vm) != VG_OK) {
        vg_engine_close(e);
        return VG_ENOMEM;
    }
    /* the store: the caller's folder, or a temporary one */
    const char *dir = opts ? opts->state_dir : NULL;
    if (dir == NULL) {
        const char *tmp = getenv("TMPDIR");
        char path[4096];
        snprintf(path, sizeof path, "%s/vigil-state-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (mkdtemp(path) == NULL) {
            snprintf(why, whylen, "can't make a temporary state folder in %s",
                     tmp && *tmp ? tmp : "/tmp");
            vg_engine_close(e);
            return VG_EIO;
        }
        if ((e->tmpdir = strdup(path)) == NULL) {
            rmdir(path);
            vg_engine_close(e);
            return VG_ENOMEM;
        }
        dir = e->tmpdir;
    }
    /* one engine per folder: two would interleave their state and logs */
    if (e->tmpdir == NULL) {
        vg_err lerr = lock_dir(e, dir, why, whylen);
        if (lerr) {
            vg_engine_close(e);
            return lerr;
        }
    }
    /* the map is sparse: 64 GiB of address space costs nothing until used */
    vg_err err =
        store_open(dir, e->tmpdir == NULL,
                   opts && opts->max_state_bytes ? opts->max_state_bytes : (size_t)64 << 30, &e->st,
                   why, whylen);
    if (err == VG_OK && e->tmpdir == NULL) {
        /* data.mdb may be new: its name durable in the folder before any
         * checkpoint lets the event log drop what it holds */
        if ((err = vg_sync_dir(dir)) != VG_OK)
            snprintf(why, whylen, "can't sync the state folder '%s': %s", dir, strerror(errno));
    }
    if (err == VG_OK && e->tmpdir == NULL) {
        int64_t clock = INT64_MIN;
        err = store_meta(e->st, "clock", &clock, false);
        if (err == VG_OK && clock != INT64_MIN) {
            e->clock = clock;
            e->have_clock = true;
        }
        idload L = {e, VG_OK};
        if (err == VG_OK)
            err =
                store_ids(e->st, e->have_clock ? e->clock - e->horizon_ms : INT64_MIN, load_id, &L);
        if (err == VG_OK)
            err = L.err;
        if (err == VG_OK)
            err = pattern_load(e);
        if (err == VG_OK)
            err = store_meta(e->st, "logpos", &e->logpos, false);
        if (err == VG_OK)
            err = outbox_load(e);
        if (err == VG_OK)
            err = store_commit(e->st);
        if (err && why[0] == '\0')
            snprintf(why, whylen, "can't read the state in '%s': %s", dir, vg_strerror(err));
    }
    if (err) {
        /* closed without the flush of vg_engine_close(): what was read back
         * may be partial, and must not be written over the state */
        store_close(e->st);
        e->st = NULL;
        vg_engine_close(e);
        return err;
    }
    *out = e;
    return VG_OK;
}

static vg_err flush_once(vg_engine *e);
static void be64_key(int64_t t, uint8_t out[8]);
static idrec *id_slot(idrec *tab, size_t cap, uint64_t h, uint64_t h2);

/* Writes dirty key records and new ids, then commits: one durable batch.
 * When the map is full it grows and the whole batch is written again. */
vg_err
vg_engine_flush(vg_engine *e)
{
    if (e->st == NULL)
        return VG_OK;
    for (;;) {
        vg_err err = flush_once(e);
        if (err != VG_ELIMIT || store_grow(e->st) != VG_OK)
            return err; /* the records stay unwritten, to be written next time */
    }
}

/* Large batches commit every 100,000 records to bound the transaction. */
static vg_err
flush_once(vg_engine *e)
{
    /* everything in one transaction; the records are marked written only
     * once it commits (a failed commit leaves them all to write again) */
    vg_err err = VG_OK;
    for (size_t i = 0; i < e->capkeys && err == VG_OK; i++) {
        keyrec *k = e->keys[i].k;
        if (e->keys[i].hash == 0 || !k->dirty)
            continue;
        err = keyrec_encode(k, e->rs, e->nrules, &e->rec);
        if (err == VG_OK)
            err = store_put(e->st, vg_ruleset_keyspace(e->rs, k->keyspace), k->key, k->keylen,
                            &e->rec, &e->reckey);
    }
    for (size_t i = 0; i < e->capids && err == VG_OK; i++) {
        idrec *r = &e->ids[i];
        if (r->hash == 0 || r->saved)
            continue;
        uint64_t h[2] = {r->hash, r->hash2};
        err = store_put_id(e->st, (const char *)h, sizeof h, r->time_ms, r->dec);
    }
    for (size_t at = 0; at < e->decpend.len && err == VG_OK;) {
        uint32_t len;
        memcpy(&len, e->decpend.data + at + 24, 4);
        err = store_put_in(e->st, STORE_DECISIONS, e->decpend.data + at, 24,
                           e->decpend.data + at + 28, len);
        at += 28 + len;
    }
    if (err == VG_OK && e->have_clock) {
        uint8_t low[8]; /* the decisions of forgotten ids go with them */
        be64_key(e->clock - e->horizon_ms, low);
        err = store_del_below(e->st, STORE_DECISIONS, low, sizeof low);
    }
    if (err == VG_OK && e->have_clock) {
        err = store_ids(e->st, e->clock - e->horizon_ms, NULL, NULL); /* drop expired ids */
        if (err == VG_OK)
            err = store_meta(e->st, "clock", &e->clock, true);
    }
    if (err == VG_OK)
        err = pattern_save(e);
    if (err == VG_OK)
        err = outbox_save(e);
    if (err == VG_OK)
        err = store_meta(e->st, "logpos", &e->logpos, true);
    if (err == VG_OK)
        err = store_commit(e->st);
    if (err != VG_OK) {
        store_abort(e->st);
        return err;
    }
    outbox_saved(e);
    /* the pending decisions are in the store now: their ids point there */
    for (size_t at = 0; at < e->decpend.len;) {
        uint64_t h[2];
        uint32_t len;
        memcpy(h, e->decpend.data + at + 8, 16);
        memcpy(&len, e->decpend.data + at + 24, 4);
        idrec *r = id_slot(e->ids, e->capids, h[0], h[1]);
        if (r->hash != 0 && r->decoff == at + 1)
            r->decoff = 0;
        at += 28 + len;
    }
    e->decpend.len = 0;
    for (size_t i = 0; i < e->capkeys; i++)
        if (e->keys[i].hash != 0)
            e->keys[i].k->dirty = false;
    for (size_t i = 0; i < e->capids; i++)
        e->ids[i].saved = true;
    return VG_OK;
}

static size_t
keyrec_bytes(const vg_engine *e, uint32_t keylen)
{
    return sizeof(keyrec) + (e->nrules ? e->nrules : 1) * sizeof(rstate *) + keylen + 1;
}

static void
keyrec_free(vg_engine *e, keyrec *k)
{
    for (size_t r = 0; r < e->nrules; r++) {
        const vg_rule *rule = vg_ruleset_rule(e->rs, r);
        if (rule->is_match)
            pstate_free((pstate *)(void *)k->rules[r], rule);
        else
            rstate_free(e->slab, k->rules[r], rule);
    }
    slab_free(e->slab, k, keyrec_bytes(e, k->keylen)); /* rule pointers and key included */
}

void
vg_engine_discard(vg_engine *e)
{
    if (e != NULL) {
        e->discard = true;
        vg_engine_close(e);
    }
}

vg_err
vg_engine_close(vg_engine *e)
{
    if (e == NULL)
        return VG_OK;
    vg_err err = e->tmpdir == NULL && !e->discard && e->st != NULL ? vg_engine_flush(e) : VG_OK;
    store_close(e->st);
    if (e->lockfd >= 0)
        close(e->lockfd);
    if (e->tmpdir != NULL) {
        remove_tree(e->tmpdir);
        free(e->tmpdir);
    }
    outbox_free(e);
    vg_buf_free(&e->decpend);
    vg_buf_free(&e->rec);
    vg_buf_free(&e->reckey);
    for (size_t r = 0; r < e->nrules && e->keys != NULL; r++) { /* not in the slab */
        const vg_rule *rule = vg_ruleset_rule(e->rs, r);
        for (size_t i = 0; rule->is_match && i < e->capkeys; i++)
            if (e->keys[i].hash != 0)
                pstate_free((pstate *)(void *)e->keys[i].k->rules[r], rule);
    }
    pattern_timers_free(e);
    vg_buf_free(&e->pkeys);
    free(e->steps);
    free(e->proot);
    vg_buf_free(&e->jsontmp);
    free(e->pid);
    free(e->pidlen);
    slab_destroy(e->slab); /* every key record and state at once */
    free(e->ks_rec);
    free(e->ks_epoch);
    free(e->rows_hash);
    free(e->ksrule_start);
    free(e->ksrule_ix);
    free(e->rows_off);
    free(e->rows_len);
    for (int s = 0; s < VG_NSTREAMS; s++)
        free(e->kspre[s]);
    vg_buf_free(&e->ksbuf);

    table_free(e->keys, e->capkeys, sizeof(keyslot));
    table_free(e->ids, e->capids, sizeof(idrec));
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

static vg_err evict(vg_engine *e);

vg_err
vg_engine_maintain(vg_engine *e)
{
    return e->nkeys > e->cache_keys ? evict(e) : VG_OK;
}

void
vg_engine_record_decision(vg_engine *e, int action, int score)
{
    if (e->last_id != NULL) {
        e->last_id->dec[0] = 1;
        e->last_id->dec[1] = (uint8_t)action;
        e->last_id->dec[2] = (uint8_t)score;
        e->last_id->saved = false; /* written back with its decision */
    }
}

/* Event time t as a big-endian key (ordered like the times, negative ones
 * first). */
static void
be64_key(int64_t t, uint8_t out[8])
{
    uint64_t v = (uint64_t)t ^ ((uint64_t)1 << 63);
    for (int i = 7; i >= 0; i--, v >>= 8)
        out[i] = (uint8_t)v;
}

/* The decisions database's key of an id: its time, then its hashes. */
static void
decision_key(const idrec *r, uint8_t key[24])
{
    be64_key(r->time_ms, key);
    memcpy(key + 8, &r->hash, 8);
    memcpy(key + 16, &r->hash2, 8);
}

vg_err
vg_engine_record_decision_rules(vg_engine *e, const void *rules, size_t len)
{
    idrec *r = e->last_id;
    if (r == NULL || len > UINT32_MAX || e->decpend.len + 28 + len >= UINT32_MAX)
        return VG_OK; /* nothing to attach it to, or past what decoff can say: not kept */
    size_t at = e->decpend.len;
    uint8_t key[24];
    uint32_t l = (uint32_t)len;
    decision_key(r, key);
    vg_err err = vg_buf_append(&e->decpend, key, sizeof key);
    err = err ? err : vg_buf_append(&e->decpend, &l, 4);
    err = err ? err : vg_buf_append(&e->decpend, rules, len);
    if (err) {
        e->decpend.len = at;
        return err;
    }
    r->decoff = (uint32_t)at + 1;
    return VG_OK;
}

vg_err
vg_engine_recorded_decision_rules(vg_engine *e, vg_buf *out, bool *found)
{
    idrec *r = e->last_id;
    *found = false;
    out->len = 0;
    if (r == NULL || !r->dec[0])
        return VG_OK;
    if (r->decoff != 0) {
        uint32_t len;
        memcpy(&len, e->decpend.data + r->decoff - 1 + 24, 4);
        *found = true;
        return vg_buf_append(out, e->decpend.data + r->decoff - 1 + 28, len);
    }
    uint8_t key[24];
    decision_key(r, key);
    return store_get_in(e->st, STORE_DECISIONS, key, sizeof key, out, found);
}

bool
vg_engine_recorded_decision(const vg_engine *e, int *action, int *score)
{
    if (e->last_id == NULL || !e->last_id->dec[0])
        return false;
    *action = e->last_id->dec[1];
    *score = e->last_id->dec[2];
    return true;
}

bool
vg_engine_disk_full(const vg_engine *e)
{
    return e->st != NULL && store_nospace(e->st);
}

void
vg_engine_store_usage(vg_engine *e, uint64_t *used, uint64_t *size)
{
    store_usage(e->st, used, size);
}

void
vg_engine_set_logpos(vg_engine *e, int64_t pos)
{
    e->logpos = pos;
}

int64_t
vg_engine_logpos(const vg_engine *e)
{
    return e->logpos;
}

vg_err
vg_engine_advance(vg_engine *e, int64_t t, vg_alert_fn fn, void *ctx)
{
    if (!e->have_clock || t <= e->clock)
        return VG_OK;
    e->clock = t;
    return e->ntimers > 0 ? pattern_fire(e, t, fn, ctx) : VG_OK;
}

bool
vg_engine_clock(const vg_engine *e, int64_t *t)
{
    *t = e->clock;
    return e->have_clock;
}

vg_err
vg_engine_finish(vg_engine *e, vg_alert_fn fn, void *ctx)
{
    return pattern_fire(e, INT64_MAX, fn, ctx);
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

/* ---- Deduplication --------------------------------------------------------
 * An id is remembered as a 128-bit hash (two independent 64-bit ones), not
 * its bytes: a false duplicate needs a collision of both, about 2^-128 per
 * pair; the table stays small and a lookup touches one cache line. */

static uint64_t
hash2(const char *s, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (uint64_t)n; /* a multiply-xorshift mix */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0xbf58476d1ce4e5b9ull;
        h ^= h >> 29;
    }
    h ^= h >> 32;
    h *= 0x94d049bb133111ebull;
    return h ^ (h >> 29);
}

static idrec *
id_slot(idrec *tab, size_t cap, uint64_t h, uint64_t h2)
{
    for (size_t i = h & (cap - 1);; i = (i + 1) & (cap - 1)) {
        idrec *r = &tab[i];
        if (r->hash == 0 || (r->hash == h && r->hash2 == h2))
            return r;
    }
}

/* Rebuilds the index at cap slots, keeping the ids of the last horizon of
 * event time. */
static vg_err
ids_rebuild(vg_engine *e, size_t cap)
{
    idrec *tab = table_alloc(cap, sizeof(idrec));
    if (tab == NULL)
        return VG_ENOMEM;
    size_t live = 0;
    for (size_t i = 0; i < e->capids; i++) {
        idrec *r = &e->ids[i];
        if (r->hash == 0 || (e->have_clock && r->time_ms < e->clock - e->horizon_ms))
            continue;
        *id_slot(tab, cap, r->hash, r->hash2) = *r;
        live++;
    }
    table_free(e->ids, e->capids, sizeof(idrec));
    e->ids = tab;
    e->capids = cap;
    e->nids = live;
    return VG_OK;
}

/* Records an id by its hashes; *dup tells whether it was already there. */
static vg_err
ids_add_hashed(vg_engine *e, uint64_t h, uint64_t h2, int64_t t, bool saved, bool *dup)
{
    idrec *r = id_slot(e->ids, e->capids, h, h2);
    if (r->hash != 0 && e->have_clock && r->time_ms < e->clock - e->horizon_ms) {
        /* seen, but longer ago than the horizon: forgotten, so new again
         * (as if the table had been pruned just now) */
        *dup = false;
        r->time_ms = t;
        r->saved = saved;
        memset(r->dec, 0, sizeof r->dec);
        r->decoff = 0;
        e->last_id = r;
        return VG_OK;
    }
    if (r->hash != 0) {
        *dup = true;
        e->last_id = r;
        return VG_OK;
    }
    *dup = false;
    if ((e->nids + 1) * 4 > e->capids * 3) { /* at 3/4 load */
        /* full: drop what is past the horizon, and grow if that is not
         * enough (counted first, so the table is rebuilt once) */
        size_t live = 0;
        for (size_t i = 0; i < e->capids; i++)
            live += e->ids[i].hash != 0 &&
                    !(e->have_clock && e->ids[i].time_ms < e->clock - e->horizon_ms);
        vg_err err = ids_rebuild(e, (live + 1) * 2 > e->capids ? e->capids * 2 : e->capids);
        if (err)
            return err;
        r = id_slot(e->ids, e->capids, h, h2);
    }
    r->hash = h;
    r->hash2 = h2;
    r->time_ms = t;
    r->saved = saved;
    memset(r->dec, 0, sizeof r->dec);
    r->decoff = 0;
    e->last_id = r;
    e->nids++;
    return VG_OK;
}

/* ---- Key records ------------------------------------------------------------
 * The table holds (hash, pointer) pairs: a probe compares hashes without
 * touching the records, and a record never moves, so a pointer to it stays
 * good for the whole event (the per-event keyspace cache relies on it). A
 * record, its rule-state pointers and its key are one allocation. */

static keyslot *
key_find(keyslot *tab, size_t cap, uint64_t h, uint16_t ks, const char *key, uint32_t len)
{
    for (size_t i = h & (cap - 1);; i = (i + 1) & (cap - 1)) {
        keyslot *sl = &tab[i];
        if (sl->hash == 0)
            return sl;
        if (sl->hash == h && sl->k->keyspace == ks && sl->k->keylen == len &&
            memcmp(sl->k->key, key, len) == 0)
            return sl;
    }
}

/* Moves the key records into tab (cap slots, empty) and frees the old table. */
static void
keys_move(vg_engine *e, keyslot *tab, size_t cap)
{
    /* the keys are distinct: each goes to the first free slot of its probe
     * sequence, without touching its record */
    for (size_t i = 0; i < e->capkeys; i++) {
        if (e->keys[i].hash == 0)
            continue;
        size_t j = e->keys[i].hash & (cap - 1);
        while (tab[j].hash != 0)
            j = (j + 1) & (cap - 1);
        tab[j] = e->keys[i];
    }
    table_free(e->keys, e->capkeys, sizeof(keyslot));
    e->keys = tab;
    e->capkeys = cap;
}

static vg_err
keys_rehash(vg_engine *e, size_t cap)
{
    keyslot *tab = table_alloc(cap, sizeof(keyslot));
    if (tab == NULL)
        return VG_ENOMEM;
    keys_move(e, tab, cap);
    return VG_OK;
}

keyrec *
key_get(vg_engine *e, uint16_t ks, const char *key, uint32_t len, uint64_t h)
{
    keyslot *sl = key_find(e->keys, e->capkeys, h, ks, key, len);
    if (sl->hash != 0)
        return sl->k;
    if ((e->nkeys + 1) * 2 > e->capkeys) {
        if (keys_rehash(e, e->capkeys * 2) != VG_OK)
            return NULL;
        sl = key_find(e->keys, e->capkeys, h, ks, key, len);
    }
    size_t nr = e->nrules ? e->nrules : 1;
    /* the key record, its rule pointers, then its key: one block */
    keyrec *k = slab_alloc(e->slab, keyrec_bytes(e, len));
    if (k == NULL)
        return NULL;
    memset(k, 0, sizeof(keyrec) + nr * sizeof(rstate *));
    k->rules = (rstate **)(k + 1);
    k->key = (char *)(k->rules + nr);
    memcpy(k->key, key, len);
    k->hash = h;
    k->keyspace = ks;
    k->keylen = len;
    /* not in memory: perhaps written back earlier (read before the record
     * joins the table, so that running out of memory leaves no record that
     * would shadow the stored one) */
    if (e->st != NULL) {
        bool found = false;
        vg_err err =
            store_get(e->st, vg_ruleset_keyspace(e->rs, ks), key, len, &e->reckey, &e->rec, &found);
        if (err == VG_OK && found)
            err = keyrec_decode(e->slab, k, e->rs, e->nrules, &e->rec);
        if (err == VG_ENOMEM) {
            keyrec_free(e, k);
            return NULL;
        }
        /* an unreadable record: the key starts afresh (it is rewritten at flush) */
        k->dirty = err != VG_OK;
    }
    sl->hash = h;
    sl->k = k;
    e->nkeys++;
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
        keep += e->keys[i].hash && e->keys[i].k->touched == e->gen;
    bool all = keep > e->cache_keys / 2;
    /* the new table first: without it, every key stays (dropping keys from
     * the old table in place would cut its probe sequences) */
    size_t cap = 1024;
    while (cap < (all ? 0 : keep) * 2 + 2)
        cap *= 2;
    keyslot *tab = table_alloc(cap, sizeof(keyslot));
    if (tab == NULL)
        return VG_ENOMEM;
    for (size_t i = 0; i < e->capkeys; i++) {
        keyslot *sl = &e->keys[i];
        if (sl->hash && (all || sl->k->touched != e->gen)) {
            keyrec_free(e, sl->k);
            sl->hash = 0;
            sl->k = NULL;
            e->nkeys--;
        }
    }
    keys_move(e, tab, cap);
    e->gen++;
    e->epoch++; /* cached key records may be gone */
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

vg_err
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

/* Points ks_hash etc. at row's keys. */
static void
keys_row(vg_engine *e, size_t row)
{
    e->ks_hash = e->rows_hash + row * e->nks1;
    e->ks_off = e->rows_off + row * e->nks1;
    e->ks_len = e->rows_len + row * e->nks1;
}

/* Computes the event's key in each keyspace its stream's rules use (keys:
 * shortest form; empty: the rules skip the event) into row (appended to
 * ksbuf) and prefetches its slot. */
static vg_err
keys_prepare(vg_engine *e, const vg_event *ev, size_t row)
{
    vg_vm_ctx ctx = {.ev = ev};
    keys_row(e, row);
    for (size_t j = 0; j < e->nkspre[ev->stream]; j++) {
        const kspre *p = &e->kspre[ev->stream][j];
        const vg_rule *r = vg_ruleset_rule(e->rs, p->rule);
        vg_value kv = vg_vm_eval(e->vm, &r->key, &ctx);
        size_t off = e->ksbuf.len;
        vg_err err = vg_value_format(&kv, false, 0, r->key.en, &e->ksbuf);
        if (err == VG_OK)
            err = vg_buf_append(&e->ksbuf, "", 0);
        if (err)
            return err;
        e->ks_off[p->ks] = off;
        e->ks_len[p->ks] = e->ksbuf.len - off;
        e->ks_hash[p->ks] = hash_bytes(e->ksbuf.data + off, e->ks_len[p->ks], p->ks);
        __builtin_prefetch(&e->keys[e->ks_hash[p->ks] & (e->capkeys - 1)]);
    }
    return VG_OK;
}

/* Once the slots are in: prefetches the key records they point to. */
static void
keys_prefetch_records(vg_engine *e, vg_stream_id s)
{
    for (size_t j = 0; j < e->nkspre[s]; j++) {
        uint16_t ks = e->kspre[s][j].ks;
        uint64_t h = e->ks_hash[ks];
        for (size_t i = h & (e->capkeys - 1);; i = (i + 1) & (e->capkeys - 1)) {
            if (e->keys[i].hash == 0)
                break;
            if (e->keys[i].hash == h) {
                /* the record, its rule pointers and its key: one block */
                const char *k = (const char *)e->keys[i].k;
                size_t end = sizeof(keyrec) + e->nrules * sizeof(rstate *) + e->ks_len[ks];
                for (size_t off = 0; off < end; off += 64)
                    __builtin_prefetch(k + off);
                break;
            }
        }
    }
}

/* The key record of ks in the current row, if it is in memory (no key
 * comparison: for prefetching only). */
static keyrec *
keys_peek(const vg_engine *e, uint16_t ks)
{
    uint64_t h = e->ks_hash[ks];
    for (size_t i = h & (e->capkeys - 1);; i = (i + 1) & (e->capkeys - 1)) {
        if (e->keys[i].hash == 0)
            return NULL;
        if (e->keys[i].hash == h)
            return e->keys[i].k;
    }
}

/* Once the records are in: prefetches the states of their rules. (One
 * level deeper, the states' window entries, measured no faster.) */
static void
keys_prefetch_states(vg_engine *e, vg_stream_id s)
{
    for (size_t j = 0; j < e->nkspre[s]; j++) {
        uint16_t ks = e->kspre[s][j].ks;
        keyrec *k = keys_peek(e, ks);
        for (size_t r = e->ksrule_start[ks]; k != NULL && r < e->ksrule_start[ks + 1]; r++) {
            if (k->rules[e->ksrule_ix[r]] != NULL)
                __builtin_prefetch(k->rules[e->ksrule_ix[r]]);
        }
    }
}

bool
alert_suppressed(vg_engine *e, size_t ri, bool *alerted, int64_t *last_alert, int64_t t)
{
    const vg_rule *r = vg_ruleset_rule(e->rs, ri);
    bool suppressed = r->suppress_ms > 0 && *alerted && t < *last_alert + r->suppress_ms;
    if (suppressed) {
        e->stats[ri].suppressed++;
    } else {
        e->stats[ri].alerts++;
        *alerted = true;
        *last_alert = t;
    }
    return suppressed;
}

vg_err
alert_deliver(vg_engine *e, vg_alert *a, unsigned digits, vg_alert_fn fn, void *fctx)
{
    alert_id(a->rule, a->key, a->keylen, a->event_id, a->event_id_len, a->id);
    e->jsonbuf.len = 0;
    vg_err err = alert_json(a, a->rule, e->aggs, digits, a->rule->tags, &e->jsontmp, &e->jsonbuf);
    if (err)
        return err;
    a->json = e->jsonbuf.data;
    a->json_len = (uint32_t)e->jsonbuf.len;
    if (fn != NULL)
        fn(fctx, a);
    return VG_OK;
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
    /* the key, once per keyspace per event: rules that share a key share it */
    keyrec *k = e->ks_rec[r->keyspace];
    if (e->ks_epoch[r->keyspace] != e->epoch) {
        /* the key was computed (and its slot prefetched) by keys_prepare() */
        uint16_t ks = r->keyspace;
        size_t len = e->ks_len[ks];
        k = len == 0 ? NULL
                     : key_get(e, ks, e->ksbuf.data + e->ks_off[ks], (uint32_t)len, e->ks_hash[ks]);
        if (k == NULL && len > 0)
            return VG_ENOMEM;
        /* the states of this key's other rules will be wanted next */
        for (size_t j = e->ksrule_start[ks]; k != NULL && j < e->ksrule_start[ks + 1]; j++)
            if (k->rules[e->ksrule_ix[j]] != NULL)
                __builtin_prefetch(k->rules[e->ksrule_ix[j]]);
        e->ks_rec[ks] = k;
        e->ks_epoch[ks] = e->epoch;
    }
    if (k == NULL) {
        e->stats[ri].empty_keys++;
        return VG_OK;
    }
    e->stats[ri].matched++;
    vg_err err;
    k->dirty = true;
    k->touched = e->gen;
    rstate *s = keyrec_state(e->slab, k, r, ri);
    if (s == NULL)
        return VG_ENOMEM;
    /* entries are kept for twice the longest window behind the newest: an
     * event later than one window may find some of its window gone */
    if (s->n > 0 && r->max_window_ms > 0 &&
        t < (int64_t)s->e[(size_t)(s->n - 1) * s->stride] - r->max_window_ms)
        e->stats[ri].late++;
    for (uint32_t c = 0; c < r->ncols; c++)
        e->cols[c] = column_value(&r->cols[c], vg_vm_eval(e->vm, &r->cols[c].prog, &ctx));
    err = rstate_add(e->slab, s, r, t, e->cols, e->aggs, &e->scratch);
    if (err)
        return err;
    ctx.aggs = e->aggs;
    ctx.prevs = s->has_prev ? s->prev : e->noprev;
    vg_value when = vg_vm_eval(e->vm, &r->when, &ctx);
    if (is_true(&when)) {
        bool suppressed = alert_suppressed(e, ri, &s->alerted, &s->last_alert, t);
        err = render_message(e, r, &ctx, ev->digits);
        if (err)
            return err;
        vg_alert a = {.rule = r,
                      .key = k->key,
                      .keylen = k->keylen,
                      .time_ms = t,
                      .event_id = idv->u.s,
                      .event_id_len = idv->len,
                      .message = e->msgbuf.data,
                      .message_len = (uint32_t)e->msgbuf.len,
                      .suppressed = suppressed};
        err = alert_deliver(e, &a, ev->digits, fn, fctx);
        if (err)
            return err;
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
            err = rstate_set_prev(e->slab, s, r, e->prevs);
    }
    return err;
}

/* ev's id and time, or why it cannot be processed (static text). */
static const char *
event_id_time(const vg_engine *e, const vg_event *ev, const vg_value **idv, int64_t *t)
{
    int is = e->id_slot[ev->stream], ts = e->time_slot[ev->stream];
    const vg_value *tv = ts >= 0 ? &ev->v[ts] : NULL;
    *idv = is >= 0 ? &ev->v[is] : NULL;
    if (*idv == NULL || (*idv)->kind != VG_V_STR || (*idv)->len == 0)
        return "the event has no id";
    if (tv == NULL || tv->kind != VG_V_TIME)
        return "the event has no time";
    *t = (int64_t)tv->u.num;
    return NULL;
}

/* Hashes ev's id into row and computes its keys there, asking for the id
 * slot and the key slots on the way. */
static vg_err
event_prepare(vg_engine *e, const vg_event *ev, size_t row)
{
    const vg_value *idv;
    int64_t t;
    if (event_id_time(e, ev, &idv, &t) == NULL) {
        uint64_t h = hash_bytes(idv->u.s, idv->len, 0);
        e->prep_h[row] = h;
        e->prep_h2[row] = hash2(idv->u.s, idv->len);
        __builtin_prefetch(&e->ids[h & (e->capids - 1)]);
    }
    return keys_prepare(e, ev, row);
}

vg_err
vg_engine_prepare(vg_engine *e, const vg_event *const *evs, size_t n)
{
    e->nprep = e->iprep = 0;
    e->ksbuf.len = 0;
    n = n < VG_ENGINE_BATCH ? n : VG_ENGINE_BATCH;

    /* The id slots, the key slots and then the key records are mostly cache
     * misses: ask for all of them for all the events before using any, so
     * they overlap. */
    for (size_t i = 0; i < n; i++) {
        vg_err err = event_prepare(e, evs[i], i);
        if (err)
            return err; /* nothing prepared */
        e->prep[i] = evs[i];
    }
    for (size_t i = 0; i < n; i++) {
        keys_row(e, i);
        keys_prefetch_records(e, evs[i]->stream);
    }
    for (size_t i = 0; i < n; i++) {
        keys_row(e, i);
        keys_prefetch_states(e, evs[i]->stream);
    }
    e->nprep = n;
    return VG_OK;
}

const char vg_too_far_ahead[] =
    "the event's time is more than a day ahead of this machine's clock: time must be Unix epoch "
    "milliseconds (not micro- or nanoseconds), or a date, and the clock that stamped it must be "
    "right";

bool
vg_event_too_far_ahead(const vg_schema *sc, const vg_event *ev, double now_ms)
{
    const vg_field *tf = vg_schema_field(sc, ev->stream, "time", 4);
    const vg_value *t = tf ? &ev->v[tf->slot] : NULL;
    return t != NULL && t->kind == VG_V_TIME && t->u.num > now_ms + VG_MAX_AHEAD_MS;
}

const char vg_too_old[] =
    "the event is older than the dedupe horizon behind the newest event's time, so a resend of it "
    "could no longer be told from a new event; a longer dedupe_horizon takes later events";

vg_err
vg_engine_process(vg_engine *e, const vg_event *ev, vg_alert_fn fn, void *ctx, vg_outcome *outcome,
                  const char **reason)
{
    vg_err err = VG_OK;
    size_t row = VG_ENGINE_BATCH;
    if (e->iprep < e->nprep && e->prep[e->iprep] == ev) {
        row = e->iprep++;
        keys_row(e, row);
    } else { /* not prepared: the prepared ones are forgotten */
        e->nprep = e->iprep = 0;
        e->ksbuf.len = 0;
    }
    const vg_value *idv;
    int64_t t;
    *reason = event_id_time(e, ev, &idv, &t);
    if (*reason != NULL) {
        *outcome = VG_EV_REJECTED;
        return VG_OK;
    }
    if (e->have_clock && t < e->clock - e->horizon_ms) {
        *reason = vg_too_old;
        *outcome = VG_EV_REJECTED;
        return VG_OK;
    }
    if (row == VG_ENGINE_BATCH) {
        err = event_prepare(e, ev, row);
        if (err)
            return err;
    }
    uint64_t h = e->prep_h[row], h2 = e->prep_h2[row];
    bool dup;
    err = ids_add_hashed(e, h, h2, t, false, &dup);
    if (err)
        return err;
    if (row == VG_ENGINE_BATCH) /* the key slots have had the probe's time to come in */
        keys_prefetch_records(e, ev->stream);
    if (dup) {
        *outcome = VG_EV_DUPLICATE;
        return VG_OK;
    }
    *outcome = VG_EV_ACCEPTED;
    e->epoch++; /* a new event: no key computed yet */
    e->seq++;
    if (!e->have_clock || t > e->clock)
        e->clock = t;
    e->have_clock = true;
    /* first the alerts whose deadlines this event's time passes */
    if (e->ntimers > 0)
        err = pattern_fire(e, e->clock, fn, ctx);
    for (size_t i = 0; i < e->nrules && err == VG_OK; i++) {
        const vg_rule *r = vg_ruleset_rule(e->rs, i);
        if (r->is_match)
            err = pattern_event(e, i, ev, t, e->seq, fn, ctx);
        else if (r->on == ev->stream)
            err = run_rule(e, i, ev, t, idv, fn, ctx);
    }
    if (err == VG_OK && e->nkeys > e->cache_keys && !e->defer_evict)
        err = evict(e);
    return err;
}
