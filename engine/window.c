/*
 * window.c - a rule's state for one key, and the window aggregates of SPEC
 * §2 "Windows", computed from it:
 *   over W          entries with t - W <= time <= t, the current one included;
 *   over W before   the same, without the current one;
 *   over history    every earlier entry (not the current one), kept as sums.
 * Entries are sorted by time (ties in arrival order), so a window is one
 * contiguous run found by binary search, also for an event that arrives
 * late. An entry whose column is missing is skipped by that aggregate.
 * Entries older than the newest minus twice the rule's longest window are
 * pruned: memory per key is bounded by the window contents, and an event that
 * arrives up to one window late still sees its whole window (one later still
 * sees only what is left).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engineInt.h"

size_t
rstate_size(const vg_rule *r)
{
    size_t size = sizeof(rstate) + r->naggs * sizeof(hist) + r->nprevs * sizeof(vg_value) +
                  (size_t)RSTATE_INLINE * (2 + r->ncols) * sizeof(uint64_t);
    return (size + 15) & ~(size_t)15;
}

rstate *
rstate_init(const vg_rule *r, void *mem)
{
    uint32_t stride = 2 + r->ncols;
    rstate *s = mem;
    memset(s, 0, rstate_size(r));
    s->hist = (hist *)(s + 1);
    s->prev = (vg_value *)(s->hist + r->naggs);
    s->e = (uint64_t *)(s->prev + r->nprevs);
    s->inline_e = true;
    s->cap = RSTATE_INLINE;
    s->stride = stride;
    for (uint32_t i = 0; i < r->naggs; i++) {
        s->hist[i].min = INFINITY;
        s->hist[i].max = -INFINITY;
    }
    return s;
}

void
rstate_free(slab *sl, rstate *s, const vg_rule *r)
{
    if (s == NULL)
        return;
    if (!s->inline_e)
        slab_free(sl, s->e, (size_t)s->cap * s->stride * sizeof(uint64_t));
    slab_free(sl, s->prevbuf, s->prevcap);
    slab_free(sl, s, rstate_size(r));
}

vg_err
rstate_reserve(slab *sl, rstate *s, uint32_t n)
{
    if (n <= s->cap)
        return VG_OK;
    uint32_t cap = s->cap * 2 > n ? s->cap * 2 : n;
    size_t bytes = (size_t)cap * s->stride * sizeof(uint64_t);
    uint64_t *e =
        s->inline_e ? slab_alloc(sl, bytes)
                    : slab_realloc(sl, s->e, (size_t)s->cap * s->stride * sizeof(uint64_t), bytes);
    if (e == NULL)
        return VG_ENOMEM;
    if (s->inline_e)
        memcpy(e, s->e, (size_t)s->n * s->stride * sizeof(uint64_t));
    s->e = e;
    s->inline_e = false;
    s->cap = cap;
    return VG_OK;
}

/* First entry with time >= t (lower bound). */
static uint32_t
lower(const rstate *s, int64_t t)
{
    uint32_t lo = 0, hi = s->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (ent_time(s, mid) < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* First entry with time > t (upper bound). */
static uint32_t
upper(const rstate *s, int64_t t)
{
    uint32_t lo = 0, hi = s->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (ent_time(s, mid) <= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static vg_value
number(double d)
{
    vg_value v = {.kind = VG_V_NUM};
    v.u.num = d;
    return v;
}

static vg_value
typed(double d, uint8_t kind)
{
    vg_value v = {.kind = kind};
    v.u.num = d;
    return v;
}

static const vg_value missing = {.kind = VG_V_MISSING};

static int64_t
money_units(double v)
{
    return llround(v * 10000.0); /* money has at most 4 decimals: exact */
}

/* Is hash h in the open-addressing table (cap a power of two)? Adds it. */
static bool
hset_add(uint64_t *tab, uint32_t cap, uint64_t h)
{
    for (uint32_t i = (uint32_t)h & (cap - 1);; i = (i + 1) & (cap - 1)) {
        if (tab[i] == 0) {
            tab[i] = h;
            return true;
        }
        if (tab[i] == h)
            return false;
    }
}

static uint64_t
bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

/* The aggregate a over entries [from, to) of s (ncols columns each). For
 * seen(), cur is the current event's column value. */
static vg_err
window_value(const rstate *s, uint32_t ncols, const vg_aggspec *a, uint32_t from, uint32_t to,
             const vg_value *cur, vg_buf *scratch, vg_value *out)
{
    uint64_t bit = a->col >= 0 ? 1ull << a->col : 0;
    uint32_t c = a->col >= 0 ? (uint32_t)a->col : 0;
    (void)ncols;
    switch ((vg_aggfn)a->fn) {
    case VG_AGG_COUNT: *out = number(to - from); return VG_OK;
    case VG_AGG_COUNT_IF: {
        double n = 0;
        for (uint32_t i = from; i < to; i++)
            n += !(ent_miss(s, i) & bit) && ent_val(s, i, c) != 0;
        *out = number(n);
        return VG_OK;
    }
    case VG_AGG_SUM:
    case VG_AGG_AVG: {
        double sum = 0;
        int64_t xsum = 0;
        uint32_t n = 0;
        for (uint32_t i = from; i < to; i++) {
            if (ent_miss(s, i) & bit)
                continue;
            double x = ent_val(s, i, c);
            if (a->money)
                xsum += money_units(x);
            else
                sum += x;
            n++;
        }
        if (a->money)
            sum = (double)xsum / 10000.0;
        if (a->fn == VG_AGG_SUM)
            *out = number(sum); /* over an empty window: 0 */
        else
            *out = n ? number(a->money ? (double)xsum / (10000.0 * (double)n) : sum / n) : missing;
        return VG_OK;
    }
    case VG_AGG_MIN:
    case VG_AGG_MAX: {
        bool any = false;
        double best = 0;
        for (uint32_t i = from; i < to; i++) {
            if (ent_miss(s, i) & bit)
                continue;
            double x = ent_val(s, i, c);
            if (!any || (a->fn == VG_AGG_MIN ? x < best : x > best))
                best = x;
            any = true;
        }
        *out = any ? typed(best, a->kind) : missing;
        return VG_OK;
    }
    case VG_AGG_DISTINCT: {
        uint32_t cap = 16;
        while (cap < (to - from) * 2)
            cap *= 2;
        if (scratch->cap < cap * sizeof(uint64_t)) {
            char *p = realloc(scratch->data, cap * sizeof(uint64_t));
            if (p == NULL)
                return VG_ENOMEM;
            scratch->data = p;
            scratch->cap = cap * sizeof(uint64_t);
        }
        uint64_t *tab = (uint64_t *)scratch->data;
        memset(tab, 0, cap * sizeof(uint64_t));
        double n = 0;
        for (uint32_t i = from; i < to; i++)
            if (!(ent_miss(s, i) & bit))
                n += hset_add(tab, cap, bits(ent_val(s, i, c)));
        *out = number(n);
        return VG_OK;
    }
    case VG_AGG_SEEN: {
        if (cur->kind == VG_V_MISSING) {
            *out = missing;
            return VG_OK;
        }
        bool seen = false;
        double want = cur->u.num;
        for (uint32_t i = from; i < to && !seen; i++)
            seen = !(ent_miss(s, i) & bit) && bits(ent_val(s, i, c)) == bits(want);
        *out = typed(seen ? 1 : 0, VG_V_BOOL);
        return VG_OK;
    }
    case VG_AGG_FIRST: break; /* match rules only */
    }
    *out = missing;
    return VG_OK;
}

static vg_value
history_value(const hist *h, const vg_aggspec *a)
{
    switch ((vg_aggfn)a->fn) {
    case VG_AGG_COUNT:
    case VG_AGG_COUNT_IF: return number((double)h->n);
    case VG_AGG_SUM: return number(a->money ? (double)h->xsum / 10000.0 : h->sum);
    case VG_AGG_AVG:
        if (h->n == 0)
            return missing;
        return number(a->money ? (double)h->xsum / (10000.0 * (double)h->n)
                               : h->sum / (double)h->n);
    case VG_AGG_MIN: return h->n ? typed(h->min, a->kind) : missing;
    case VG_AGG_MAX: return h->n ? typed(h->max, a->kind) : missing;
    default: return missing; /* distinct and seen have no history form */
    }
}

static void
history_add(hist *h, const vg_aggspec *a, const vg_value *x)
{
    if (a->fn == VG_AGG_COUNT) {
        h->n++;
        return;
    }
    if (x->kind == VG_V_MISSING)
        return;
    if (a->fn == VG_AGG_COUNT_IF) {
        h->n += x->u.num != 0;
        return;
    }
    h->n++;
    if (a->money)
        h->xsum += money_units(x->u.num);
    else
        h->sum += x->u.num;
    if (x->u.num < h->min)
        h->min = x->u.num;
    if (x->u.num > h->max)
        h->max = x->u.num;
}

/* Drops entries older than newest - keep_ms. */
static void
prune(rstate *s, int64_t keep_ms)
{
    if (s->n == 0)
        return;
    int64_t newest = ent_time(s, s->n - 1);
    uint32_t k = lower(s, newest - keep_ms);
    if (k == 0)
        return;
    s->n -= k;
    memmove(s->e, s->e + (size_t)k * s->stride, (size_t)s->n * s->stride * sizeof(uint64_t));
}

/* Inserts an entry at its place: after every entry with time <= t. */
static vg_err
insert(slab *sl, rstate *s, uint32_t ncols, int64_t t, const vg_value *cols)
{
    vg_err err = rstate_reserve(sl, s, s->n + 1);
    if (err)
        return err;
    uint32_t at = upper(s, t);
    uint64_t *w = s->e + (size_t)at * s->stride;
    if (at < s->n) /* a late event: make room */
        memmove(w + s->stride, w, (size_t)(s->n - at) * s->stride * sizeof(uint64_t));
    w[0] = (uint64_t)t;
    w[1] = 0;
    for (uint32_t c = 0; c < ncols; c++) {
        double x = cols[c].kind == VG_V_MISSING ? 0 : cols[c].u.num;
        if (cols[c].kind == VG_V_MISSING)
            w[1] |= 1ull << c;
        memcpy(&w[2 + c], &x, sizeof x);
    }
    s->n++;
    return VG_OK;
}

vg_err
rstate_add(slab *sl, rstate *s, const vg_rule *r, int64_t t, const vg_value *cols, vg_value *aggs,
           vg_buf *scratch)
{
    uint32_t nc = r->ncols;
    bool windows = false;
    /* before the current event joins: `before` windows, seen, history */
    for (uint32_t i = 0; i < r->naggs; i++) {
        const vg_aggspec *a = &r->aggs[i];
        const vg_value *cur = a->col >= 0 ? &cols[a->col] : NULL;
        if (a->win == VG_WIN_HISTORY) {
            aggs[i] = history_value(&s->hist[i], a);
        } else if (a->win == VG_WIN_BEFORE || a->fn == VG_AGG_SEEN) {
            /* seen() looks only at events that arrived before this one */
            vg_err err =
                window_value(s, nc, a, lower(s, t - a->ms), upper(s, t), cur, scratch, &aggs[i]);
            if (err)
                return err;
        } else {
            windows = true;
        }
    }
    if (r->max_window_ms > 0) {
        vg_err err = insert(sl, s, nc, t, cols);
        if (err)
            return err;
    }
    /* after: `over W` windows include the current event */
    for (uint32_t i = 0; windows && i < r->naggs; i++) {
        const vg_aggspec *a = &r->aggs[i];
        if (a->win != VG_WIN_RANGE || a->fn == VG_AGG_SEEN)
            continue;
        const vg_value *cur = a->col >= 0 ? &cols[a->col] : NULL;
        vg_err err =
            window_value(s, nc, a, lower(s, t - a->ms), upper(s, t), cur, scratch, &aggs[i]);
        if (err)
            return err;
    }
    for (uint32_t i = 0; i < r->naggs; i++)
        if (r->aggs[i].win == VG_WIN_HISTORY)
            history_add(&s->hist[i], &r->aggs[i],
                        r->aggs[i].col >= 0 ? &cols[r->aggs[i].col] : NULL);
    /* Keep twice the longest window: an event up to one window late still
     * finds every entry its window needs. */
    prune(s, 2 * r->max_window_ms);
    return VG_OK;
}

vg_err
rstate_set_prev(slab *sl, rstate *s, const vg_rule *r, const vg_value *prev)
{
    size_t need = 0;
    for (uint32_t i = 0; i < r->nprevs; i++)
        if (prev[i].kind == VG_V_STR)
            need += prev[i].len;
    if (need > s->prevcap) {
        char *p = slab_realloc(sl, s->prevbuf, s->prevcap, need);
        if (p == NULL)
            return VG_ENOMEM;
        s->prevbuf = p;
        s->prevcap = need;
    }
    size_t at = 0;
    for (uint32_t i = 0; i < r->nprevs; i++) {
        s->prev[i] = prev[i];
        if (prev[i].kind == VG_V_STR) {
            if (prev[i].len)
                memcpy(s->prevbuf + at, prev[i].u.s, prev[i].len);
            s->prev[i].u.s = s->prevbuf + at;
            at += prev[i].len;
        }
    }
    s->has_prev = true;
    return VG_OK;
}
