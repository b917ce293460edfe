/*
 * pattern.c - match rules: temporal patterns over the events of a key
 * (SPEC §2 "Patterns").
 *
 * A pattern's state for (rule, key) is a list of partial matches. The first
 * is the root: nothing bound, never discarded; every event that satisfies
 * the first positive step starts a new partial match from it (relaxed
 * contiguity: the root, and every partial match, stay to be extended by
 * later events too). A partial match records the events bound to each step
 * (a quantified step: all the events that satisfied it since the step
 * before), the time of its first event and, for a leading `not` step, the
 * latest time of a satisfying event that arrived before its first event.
 *
 * An event e, for each partial match P, in list order (matches made by e
 * are not extended by e itself):
 *   - P waits at plain step j: e satisfies j (given P's events) -> a copy of
 *     P with e bound to j;
 *   - P waits at quantified step j: e satisfies j + 1 (given P's events and
 *     the events in j's slot) -> a copy with the slot and e bound; then, if
 *     e satisfies j, e joins P's slot;
 *   - a `not` step just before j that e satisfies ends P (after the above:
 *     e itself is not between the steps);
 *   - P has every positive step bound and waits on a trailing `not`: e
 *     satisfying it ends P.
 * A copy with every positive step bound is a match when e is within W of
 * its first event, no leading-`not` event arrived before its first event
 * with time >= time(e) - W, and each quantified slot (only its events with
 * time >= time(e) - W) holds a count in range. Of the matches e completes,
 * the one with the latest events (compared from the last step back) is
 * reported, then every partial match of the key is discarded (reset). With
 * a trailing `not`, a match is instead a candidate with the deadline
 * time(first) + W, in the engine's timer heap; a later event of the key
 * satisfying the `not` step ends it; when the deadline passes (an accepted
 * event with a later time, or vg_engine_finish) it fires.
 *
 * Bounds: VG_PATTERN_PARTIALS partial matches per (rule, key), the oldest
 * dropped beyond and counted; a partial match whose first event is more
 * than 2W older than the newest event of its key can no longer match (events that late
 * are beyond the lateness the windows allow too) and is pruned.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>

#include "engineInt.h"

/* An event bound to a partial match: a copy of its values (the stream's
 * slots only), shared by the partial matches that bound it. */
typedef struct pev {
    uint32_t refs;
    uint64_t seq; /* arrival number */
    int64_t t;
    vg_event ev; /* truncated: v[] holds the stream's fields only */
} pev;

/* The events bound to one step. */
typedef struct plist {
    pev **v;
    uint32_t n, cap;
} plist;

typedef struct pmatch {
    uint32_t next;     /* the positive step it waits for (nsteps: all bound) */
    bool dead;         /* ended by a `not` step: removed at the next pruning */
    bool candidate;    /* all positive steps bound, waiting for its deadline */
    int64_t t0;        /* time of its first event (INT64_MAX: none yet) */
    int64_t lead_neg;  /* leading `not`: the latest satisfying time before its first
                          event, INT64_MIN none */
    uint64_t last_seq; /* arrival number of its last bound event */
    uint64_t id;       /* candidate: its id in the timer heap */
    int64_t deadline;  /* candidate */
    plist b[];         /* by step */
} pmatch;

#define PS_INLINE 4 /* partial-match pointers in the state's own block */

/* One block: the state, then its root (nothing bound, never freed on its
 * own), so a key whose pattern is idle costs one cache miss to look at. */
struct pstate {
    pmatch **pm; /* pm[0] is the root; pm is inline_pm until it grows */
    uint32_t n, cap;
    pmatch *inline_pm[PS_INLINE];
    int64_t lead_neg_max; /* leading `not`: the latest satisfying time, INT64_MIN none */
    int64_t newest;       /* the latest time of an event of the key the rule saw */
    bool alerted;
    int64_t last_alert;
};

/* A trailing `not` deadline in the engine's heap. */
typedef struct ptimer {
    int64_t deadline;
    uint64_t seq; /* the candidate's last positive event: ties fire earlier first */
    uint64_t id;
    uint32_t rule;
    uint32_t keylen;
    char *key; /* owned */
} ptimer;

/* ---- Bound events and partial matches ------------------------------------ */

static pev *
pev_new(const vg_schema *sc, const vg_event *ev, uint64_t seq, int64_t t)
{
    size_t n = vg_schema_nfields(sc, ev->stream);
    size_t head = offsetof(pev, ev) + offsetof(vg_event, v) + n * sizeof(vg_value);
    head = (head + 7) & ~(size_t)7;
    pev *p = malloc(head + vg_event_size(sc, ev));
    if (p == NULL)
        return NULL;
    p->refs = 1;
    p->seq = seq;
    p->t = t;
    vg_event_copy(sc, &p->ev, ev, (char *)p + head);
    return p;
}

static void
pev_unref(pev *p)
{
    if (p != NULL && --p->refs == 0)
        free(p);
}

static bool
plist_add(plist *l, pev *p)
{
    if (l->n == l->cap) {
        uint32_t cap = l->cap ? l->cap * 2 : 4;
        pev **v = realloc(l->v, cap * sizeof(pev *));
        if (v == NULL)
            return false;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = p;
    p->refs++;
    return true;
}

/* Drops the first n events of l. */
static void
plist_drop(plist *l, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        pev_unref(l->v[i]);
    if (n > 0) {
        memmove(l->v, l->v + n, (l->n - n) * sizeof(pev *));
        l->n -= n;
    }
}

static void
plist_clear(plist *l)
{
    for (uint32_t i = 0; i < l->n; i++)
        pev_unref(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static void
pmatch_free(pmatch *m, uint32_t nsteps)
{
    if (m == NULL)
        return;
    for (uint32_t i = 0; i < nsteps; i++)
        plist_clear(&m->b[i]);
    free(m);
}

static uint32_t
first_positive(const vg_rule *r)
{
    uint32_t j = 0;
    while (j < r->nsteps && r->steps[j].neg)
        j++;
    return j;
}

/* The positive step after j (a `not` step between is skipped: it is checked
 * while the partial match waits), or nsteps. */
static uint32_t
next_positive(const vg_rule *r, uint32_t j)
{
    j++;
    while (j < r->nsteps && r->steps[j].neg)
        j++;
    return j;
}

static void
pmatch_init(const vg_rule *r, pmatch *m)
{
    memset(m, 0, sizeof *m + r->nsteps * sizeof(plist));
    m->next = first_positive(r);
    m->t0 = INT64_MAX;
    m->lead_neg = INT64_MIN;
}

static pmatch *
pmatch_new(const vg_rule *r)
{
    pmatch *m = malloc(sizeof *m + r->nsteps * sizeof(plist));
    if (m != NULL)
        pmatch_init(r, m);
    return m;
}

/* A copy of m sharing its events (quantified slots copied as they are). */
static pmatch *
pmatch_copy(const vg_rule *r, const pmatch *m)
{
    pmatch *c = pmatch_new(r);
    if (c == NULL)
        return NULL;
    *c = *m;
    for (uint32_t i = 0; i < r->nsteps; i++) {
        memset(&c->b[i], 0, sizeof c->b[i]);
        for (uint32_t k = 0; k < m->b[i].n; k++) {
            if (!plist_add(&c->b[i], m->b[i].v[k])) {
                pmatch_free(c, r->nsteps);
                return NULL;
            }
        }
    }
    return c;
}

static bool
pmatch_is_root(const pstate *ps, const pmatch *m)
{
    return ps->n > 0 && ps->pm[0] == m;
}

struct pmatch *
pattern_root_alloc(void)
{
    return calloc(1, sizeof(pmatch) + VG_PATTERN_STEPS * sizeof(plist));
}

static pstate *
pstate_new(const vg_rule *r)
{
    pstate *ps = calloc(1, sizeof *ps + sizeof(pmatch) + r->nsteps * sizeof(plist));
    if (ps == NULL)
        return NULL;
    ps->lead_neg_max = INT64_MIN;
    ps->newest = INT64_MIN;
    ps->cap = PS_INLINE;
    ps->pm = ps->inline_pm;
    ps->pm[0] = (pmatch *)(void *)(ps + 1);
    pmatch_init(r, ps->pm[0]);
    ps->n = 1;
    return ps;
}

void
pstate_free(pstate *ps, const vg_rule *r)
{
    if (ps == NULL)
        return;
    for (uint32_t i = 1; i < ps->n; i++)
        pmatch_free(ps->pm[i], r->nsteps);
    for (uint32_t s = 0; s < r->nsteps; s++)
        plist_clear(&ps->pm[0]->b[s]);
    if (ps->pm != ps->inline_pm)
        free(ps->pm);
    free(ps);
}

/* Appends m to ps (false: out of memory). */
static bool
pstate_push(pstate *ps, pmatch *m)
{
    if (ps->n == ps->cap) {
        uint32_t cap = ps->cap * 2;
        pmatch **v = ps->pm == ps->inline_pm ? malloc(cap * sizeof(pmatch *))
                                             : realloc(ps->pm, cap * sizeof(pmatch *));
        if (v == NULL)
            return false;
        if (ps->pm == ps->inline_pm)
            memcpy(v, ps->inline_pm, sizeof ps->inline_pm);
        ps->pm = v;
        ps->cap = cap;
    }
    ps->pm[ps->n++] = m;
    return true;
}

/* Adds m to ps (the bound is enforced by pstate_prune(), after the event:
 * dropping while the partial matches are being walked would move the event's
 * own new ones into the walk). */
static vg_err
pstate_add(vg_engine *e, size_t ri, pstate *ps, pmatch *m)
{
    if (!pstate_push(ps, m)) {
        pmatch_free(m, vg_ruleset_rule(e->rs, ri)->nsteps);
        return VG_ENOMEM;
    }
    return VG_OK;
}

/* Removes dead partial matches and those too old to match (more than
 * twice `within` behind the key's newest event), drops slot events of the
 * root too old to count, then the oldest partial matches beyond the bound
 * (counted). */
static void
pstate_prune(vg_engine *e, size_t ri, pstate *ps)
{
    const vg_rule *r = vg_ruleset_rule(e->rs, ri);
    int64_t horizon = ps->newest == INT64_MIN ? INT64_MIN : ps->newest - 2 * r->within_ms;
    uint32_t k = 1;
    for (uint32_t i = 1; i < ps->n; i++) {
        pmatch *m = ps->pm[i];
        bool old = !m->candidate && m->t0 != INT64_MAX && m->t0 < horizon;
        if (m->dead || old)
            pmatch_free(m, r->nsteps);
        else
            ps->pm[k++] = m;
    }
    ps->n = k;
    if (ps->n - 1 > VG_PATTERN_PARTIALS) {
        uint32_t drop = ps->n - 1 - VG_PATTERN_PARTIALS;
        for (uint32_t i = 1; i <= drop; i++)
            pmatch_free(ps->pm[i], r->nsteps);
        memmove(&ps->pm[1], &ps->pm[1 + drop], (ps->n - 1 - drop) * sizeof(pmatch *));
        ps->n -= drop;
        e->stats[ri].dropped += drop;
    }
    pmatch *root = ps->pm[0];
    for (uint32_t s = 0; s < r->nsteps; s++) {
        plist *l = &root->b[s];
        uint32_t drop = 0;
        while (drop < l->n && l->v[drop]->t < horizon)
            drop++;
        plist_drop(l, drop);
    }
}

/* ---- Evaluation ------------------------------------------------------------ */

/* Points e->steps at m's events (a quantified step: its first, which only
 * first() reads through aggregates anyway); step self is ev. */
static void
bind_steps(vg_engine *e, const vg_rule *r, const pmatch *m, uint32_t self, const vg_event *ev)
{
    for (uint32_t i = 0; i < r->nsteps; i++)
        e->steps[i] = m->b[i].n > 0 ? &m->b[i].v[0]->ev : NULL;
    if (self < r->nsteps)
        e->steps[self] = ev;
}

static bool
truthy(vg_value v)
{
    return v.kind == VG_V_BOOL && v.u.num != 0;
}

/* The events of slot l that count at time t: time >= t - W. */
static uint32_t
slot_from(const vg_rule *r, const plist *l, int64_t t)
{
    uint32_t i = 0;
    while (i < l->n && l->v[i]->t < t - r->within_ms)
        i++;
    return i;
}

/* Computes the binding aggregates of r over m's steps before `upto` into
 * e->aggs (later steps' aggregates are missing); quantified slots count
 * their events with time >= t - W. */
static void
binding_aggs(vg_engine *e, const vg_rule *r, const pmatch *m, uint32_t upto, int64_t t)
{
    const vg_event *saved[VG_PATTERN_STEPS];
    for (uint32_t s = 0; s < r->nsteps; s++)
        saved[s] = e->steps[s];
    for (uint32_t i = 0; i < r->naggs; i++) {
        const vg_aggspec *a = &r->aggs[i];
        vg_value out = {.kind = VG_V_MISSING};
        if (a->win != VG_WIN_STEP || (uint32_t)a->step >= upto) {
            e->aggs[i] = out;
            continue;
        }
        const plist *l = &m->b[a->step];
        uint32_t from = r->steps[a->step].qmin > 0 ? slot_from(r, l, t) : 0;
        double sum = 0, best = 0;
        int64_t xsum = 0;
        uint32_t n = 0;
        for (uint32_t k = from; k < l->n; k++) {
            if (a->fn == VG_AGG_COUNT) {
                n++;
                continue;
            }
            e->steps[a->step] = &l->v[k]->ev;
            vg_vm_ctx ctx = {.ev = &l->v[k]->ev, .steps = e->steps};
            vg_value v = vg_vm_eval(e->vm, &r->cols[a->col].prog, &ctx);
            if (v.kind == VG_V_MISSING || v.kind == VG_V_STR)
                continue;
            if (a->fn == VG_AGG_FIRST && n == 0)
                out = v;
            if (a->money)
                xsum += llround(v.u.num * 10000.0);
            else
                sum += v.u.num;
            if (n == 0 || (a->fn == VG_AGG_MIN ? v.u.num < best : v.u.num > best))
                best = v.u.num;
            n++;
        }
        e->steps[a->step] = saved[a->step];
        if (a->money)
            sum = (double)xsum / 10000.0;
        switch ((vg_aggfn)a->fn) {
        case VG_AGG_COUNT: out = (vg_value){.kind = VG_V_NUM, .u.num = n}; break;
        case VG_AGG_SUM: out = (vg_value){.kind = VG_V_NUM, .u.num = sum}; break;
        case VG_AGG_AVG:
            if (n > 0)
                out = (vg_value){.kind = VG_V_NUM, .u.num = sum / n};
            break;
        case VG_AGG_MIN:
        case VG_AGG_MAX:
            if (n > 0)
                out = (vg_value){.kind = a->kind, .u.num = best};
            break;
        default: break; /* FIRST: set above */
        }
        e->aggs[i] = out;
    }
}

/* Does ev satisfy step j of r given m's events? (The rule's `where` was
 * checked already.) */
static bool
step_holds(vg_engine *e, const vg_rule *r, const pmatch *m, uint32_t j, const vg_event *ev,
           int64_t t)
{
    const vg_step *s = &r->steps[j];
    if (s->where.n == 0)
        return true;
    bind_steps(e, r, m, j, ev);
    binding_aggs(e, r, m, j, t);
    vg_vm_ctx ctx = {.ev = ev, .steps = e->steps, .aggs = e->aggs};
    return truthy(vg_vm_eval(e->vm, &s->where, &ctx));
}

/* Is complete match m (every positive step bound, the last at time t) within
 * W, clear of leading `not` events, and are its slots' counts in range? */
static bool
match_ok(const vg_rule *r, pmatch *m, int64_t t)
{
    int64_t t0 = INT64_MAX;
    for (uint32_t s = 0; s < r->nsteps; s++) {
        const vg_step *st = &r->steps[s];
        const plist *l = &m->b[s];
        if (st->neg)
            continue;
        uint32_t from = st->qmin > 0 ? slot_from(r, l, t) : 0;
        uint32_t n = l->n - from;
        if (st->qmin > 0 && (n < (uint32_t)st->qmin || (st->qmax >= 0 && n > (uint32_t)st->qmax)))
            return false;
        if (n > 0 && l->v[from]->t < t0)
            t0 = l->v[from]->t;
    }
    if (t0 == INT64_MAX || t - t0 > r->within_ms)
        return false;
    if (m->lead_neg != INT64_MIN && m->lead_neg >= t - r->within_ms)
        return false;
    m->t0 = t0;
    return true;
}

/* Is a more recent than b: its events compared from the last step back? */
static bool
more_recent(const vg_rule *r, const pmatch *a, const pmatch *b)
{
    for (uint32_t s = r->nsteps; s-- > 0;) {
        if (r->steps[s].neg || a->b[s].n == 0 || b->b[s].n == 0)
            continue;
        uint64_t x = a->b[s].v[a->b[s].n - 1]->seq, y = b->b[s].v[b->b[s].n - 1]->seq;
        if (x != y)
            return x > y;
    }
    return false;
}

/* ---- Alerts ------------------------------------------------------------------ */

/* The last positive step's event of a complete match. */
static const pev *
last_event(const vg_rule *r, const pmatch *m)
{
    for (uint32_t s = r->nsteps; s-- > 0;)
        if (!r->steps[s].neg && m->b[s].n > 0)
            return m->b[s].v[m->b[s].n - 1];
    return NULL;
}

static vg_err
emit(vg_engine *e, size_t ri, pstate *ps, pmatch *m, const char *key, uint32_t keylen,
     int64_t time_ms, bool due, vg_alert_fn fn, void *fctx)
{
    const vg_rule *r = vg_ruleset_rule(e->rs, ri);
    const pev *last = last_event(r, m);
    int64_t tl = last->t;
    bool suppressed = alert_suppressed(e, ri, &ps->alerted, &ps->last_alert, time_ms);
    bind_steps(e, r, m, r->nsteps, NULL);
    binding_aggs(e, r, m, r->nsteps, tl);
    vg_vm_ctx ctx = {.ev = &last->ev, .steps = e->steps, .aggs = e->aggs};
    vg_err err = render_message(e, r, &ctx, last->ev.digits);
    if (err)
        return err;
    /* the ids of the match, in step order */
    uint32_t nids = 0;
    for (uint32_t s = 0; s < r->nsteps; s++) {
        const plist *l = &m->b[s];
        uint32_t from = r->steps[s].qmin > 0 ? slot_from(r, l, tl) : 0;
        for (uint32_t k = from; k < l->n && k - from < VG_PATTERN_IDS; k++) {
            const vg_event *ev = &l->v[k]->ev;
            int slot = e->id_slot[ev->stream];
            e->pid[nids] = ev->v[slot].u.s;
            e->pidlen[nids] = ev->v[slot].len;
            nids++;
        }
    }
    int idslot = e->id_slot[last->ev.stream];
    vg_alert a = {.rule = r,
                  .key = key,
                  .keylen = keylen,
                  .time_ms = time_ms,
                  .event_id = last->ev.v[idslot].u.s,
                  .event_id_len = last->ev.v[idslot].len,
                  .message = e->msgbuf.data,
                  .message_len = (uint32_t)e->msgbuf.len,
                  .suppressed = suppressed,
                  .due = due,
                  .events = e->pid,
                  .event_lens = e->pidlen,
                  .nevents = nids};
    return alert_deliver(e, &a, last->ev.digits, fn, fctx);
}

/* ---- Deadlines ----------------------------------------------------------------- */

static bool
timer_before(const ptimer *a, const ptimer *b)
{
    return a->deadline != b->deadline ? a->deadline < b->deadline : a->seq < b->seq;
}

static vg_err
timer_push(vg_engine *e, const ptimer *t)
{
    if (e->ntimers == e->captimers) {
        size_t cap = e->captimers ? e->captimers * 2 : 64;
        ptimer *v = realloc(e->timers, cap * sizeof(ptimer));
        if (v == NULL)
            return VG_ENOMEM;
        e->timers = v;
        e->captimers = cap;
    }
    size_t i = e->ntimers++;
    e->timers[i] = *t;
    while (i > 0 && timer_before(&e->timers[i], &e->timers[(i - 1) / 2])) {
        ptimer x = e->timers[i];
        e->timers[i] = e->timers[(i - 1) / 2];
        e->timers[(i - 1) / 2] = x;
        i = (i - 1) / 2;
    }
    return VG_OK;
}

static ptimer
timer_pop(vg_engine *e)
{
    ptimer top = e->timers[0];
    e->timers[0] = e->timers[--e->ntimers];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < e->ntimers && timer_before(&e->timers[l], &e->timers[m]))
            m = l;
        if (r < e->ntimers && timer_before(&e->timers[r], &e->timers[m]))
            m = r;
        if (m == i)
            break;
        ptimer x = e->timers[i];
        e->timers[i] = e->timers[m];
        e->timers[m] = x;
        i = m;
    }
    return top;
}

void
pattern_timers_free(vg_engine *e)
{
    for (size_t i = 0; i < e->ntimers; i++)
        free(e->timers[i].key);
    free(e->timers);
    e->timers = NULL;
    e->ntimers = e->captimers = 0;
}

/* Whether m uses an event that arrived at or before seq. */
static bool
uses_upto(const vg_rule *r, const pmatch *m, uint64_t seq)
{
    for (uint32_t s = 0; s < r->nsteps; s++)
        for (uint32_t k = 0; k < m->b[s].n; k++)
            if (m->b[s].v[k]->seq <= seq)
                return true;
    return false;
}

/* Fires one due timer of key record k: its candidate, if still pending. */
static vg_err
fire(vg_engine *e, const ptimer *t, keyrec *k, vg_alert_fn fn, void *fctx)
{
    const vg_rule *r = vg_ruleset_rule(e->rs, t->rule);
    pstate *ps = (pstate *)k->rules[t->rule];
    pmatch *m = NULL;
    for (uint32_t i = 1; ps != NULL && i < ps->n && m == NULL; i++)
        if (ps->pm[i]->candidate && ps->pm[i]->id == t->id && !ps->pm[i]->dead)
            m = ps->pm[i];
    if (m == NULL)
        return VG_OK; /* ended by a `not` event, or reset */
    k->dirty = true;
    vg_err err = emit(e, t->rule, ps, m, k->key, k->keylen, t->deadline, true, fn, fctx);
    /* reset: what uses any event up to the last positive one goes */
    uint64_t upto = m->last_seq;
    for (uint32_t i = 1; i < ps->n; i++)
        if (uses_upto(r, ps->pm[i], upto))
            ps->pm[i]->dead = true;
    pmatch *root = ps->pm[0];
    for (uint32_t s = 0; s < r->nsteps; s++) {
        plist *l = &root->b[s];
        uint32_t drop = 0;
        while (drop < l->n && l->v[drop]->seq <= upto)
            drop++;
        plist_drop(l, drop);
    }
    pstate_prune(e, t->rule, ps);
    return err;
}

int64_t
vg_engine_next_deadline(const vg_engine *e)
{
    return e->ntimers > 0 ? e->timers[0].deadline : INT64_MAX;
}

vg_err
pattern_fire(vg_engine *e, int64_t t, vg_alert_fn fn, void *fctx)
{
    vg_err err = VG_OK;
    while (err == VG_OK && e->ntimers > 0 && (t == INT64_MAX || e->timers[0].deadline < t)) {
        /* the key first: when that fails, the deadline stays to fire later */
        const ptimer *next = &e->timers[0];
        const vg_rule *r = vg_ruleset_rule(e->rs, next->rule);
        keyrec *k = key_get(e, r->keyspace, next->key, next->keylen,
                            hash_bytes(next->key, next->keylen, r->keyspace));
        if (k == NULL)
            return VG_ENOMEM;
        ptimer top = timer_pop(e);
        err = fire(e, &top, k, fn, fctx);
        free(top.key);
    }
    return err;
}

/* ---- An event --------------------------------------------------------------------- */

/* Binds ev to step j of a copy of m; the copy is complete, a candidate, or
 * waits for a later step. *done gets a complete match (not a candidate) for
 * the caller to judge, else NULL. */
static vg_err
advance(vg_engine *e, size_t ri, pstate *ps, const pmatch *m, uint32_t j, pev *x, const char *key,
        uint32_t keylen, pmatch **done)
{
    const vg_rule *r = vg_ruleset_rule(e->rs, ri);
    *done = NULL;
    pmatch *c = pmatch_copy(r, m);
    if (c == NULL)
        return VG_ENOMEM;
    if (pmatch_is_root(ps, m))
        c->lead_neg = ps->lead_neg_max; /* before x: x is not before itself */
    if (m->next != j) {                 /* a quantified step's slot closed by x at j */
        const plist *slot = &m->b[m->next];
        if (slot->n > 0 && slot->v[0]->t < c->t0)
            c->t0 = slot->v[0]->t;
    }
    if (!plist_add(&c->b[j], x)) {
        pmatch_free(c, r->nsteps);
        return VG_ENOMEM;
    }
    if (c->t0 == INT64_MAX)
        c->t0 = x->t;
    c->last_seq = x->seq;
    c->next = next_positive(r, j);
    if (c->next < r->nsteps)
        return pstate_add(e, ri, ps, c);
    if (!match_ok(r, c, x->t)) {
        pmatch_free(c, r->nsteps);
        return VG_OK;
    }
    if (!r->steps[r->nsteps - 1].neg) {
        *done = c;
        return VG_OK;
    }
    /* a trailing `not`: a candidate until its deadline */
    c->candidate = true;
    c->id = ++e->next_cand;
    c->deadline = c->t0 + r->within_ms;
    ptimer t = {.deadline = c->deadline,
                .seq = x->seq,
                .id = c->id,
                .rule = (uint32_t)ri,
                .keylen = keylen,
                .key = malloc(keylen ? keylen : 1)};
    if (t.key == NULL) {
        pmatch_free(c, r->nsteps);
        return VG_ENOMEM;
    }
    memcpy(t.key, key, keylen);
    vg_err err = timer_push(e, &t);
    if (err) {
        free(t.key);
        pmatch_free(c, r->nsteps);
        return err;
    }
    return pstate_add(e, ri, ps, c);
}

/* What one event does to one key of a match rule: the state and the event's
 * copy are made only when something is to be kept (most events bind
 * nothing). */
typedef struct apply_ctx {
    vg_engine *e;
    size_t ri;
    const vg_rule *r;
    keyrec *k;
    pstate *ps; /* NULL: the key has no state for the rule yet */
    pev *x;     /* the event's copy, NULL until bound */
    const vg_event *ev;
    int64_t t;
    uint64_t seq;
} apply_ctx;

/* Makes sure the state exists; *m, if it was the stand-in root, becomes
 * the real one. */
static vg_err
need_state(apply_ctx *A, pmatch **m)
{
    if (A->ps == NULL) {
        A->ps = pstate_new(A->r);
        if (A->ps == NULL)
            return VG_ENOMEM;
        A->k->rules[A->ri] = (rstate *)(void *)A->ps;
    }
    if (m != NULL && *m == A->e->proot)
        *m = A->ps->pm[0];
    A->k->dirty = true;
    return VG_OK;
}

static vg_err
need_event(apply_ctx *A, pmatch **m)
{
    vg_err err = need_state(A, m);
    if (err == VG_OK && A->x == NULL && (A->x = pev_new(A->e->sc, A->ev, A->seq, A->t)) == NULL)
        err = VG_ENOMEM;
    return err;
}

/* The event for one key of rule ri: the steps in mask (their key is this
 * key and the rule's `where` holds). */
static vg_err
apply(apply_ctx *A, uint64_t mask, vg_alert_fn fn, void *fctx)
{
    vg_engine *e = A->e;
    const vg_rule *r = A->r;
    const vg_event *ev = A->ev;
    int64_t t = A->t;
    vg_err err = VG_OK;
    pmatch *best = NULL;
    uint32_t n0 = A->ps ? A->ps->n : 1;
    uint32_t last = r->nsteps - 1;
    if (A->ps != NULL && A->ps->newest != INT64_MIN && t < A->ps->newest - r->within_ms)
        e->stats[A->ri].late++; /* partial matches it could complete may be gone */
    if (A->ps == NULL) {        /* a stand-in for the root: nothing bound */
        memset(e->proot, 0, sizeof *e->proot + r->nsteps * sizeof(plist));
        e->proot->next = first_positive(r);
        e->proot->t0 = INT64_MAX;
        e->proot->lead_neg = INT64_MIN;
    }
    for (uint32_t i = 0; i < n0 && err == VG_OK; i++) {
        pmatch *m = A->ps ? A->ps->pm[i] : e->proot;
        if (m->dead)
            continue;
        if (m->candidate) {
            if ((mask >> last & 1) && step_holds(e, r, m, last, ev, t)) {
                m->dead = true;
                A->k->dirty = true;
            }
            continue;
        }
        uint32_t j = m->next;
        pmatch *done = NULL;
        if (r->steps[j].qmin > 0) {
            uint32_t j2 = j + 1; /* plain and positive: the checker sees to it */
            if ((mask >> j2 & 1) && step_holds(e, r, m, j2, ev, t) &&
                (err = need_event(A, &m)) == VG_OK)
                err = advance(e, A->ri, A->ps, m, j2, A->x, A->k->key, A->k->keylen, &done);
            if (err == VG_OK && (mask >> j & 1) && step_holds(e, r, m, j, ev, t) &&
                (err = need_event(A, &m)) == VG_OK && !plist_add(&m->b[j], A->x))
                err = VG_ENOMEM;
        } else if ((mask >> j & 1) && step_holds(e, r, m, j, ev, t) &&
                   (err = need_event(A, &m)) == VG_OK) {
            err = advance(e, A->ri, A->ps, m, j, A->x, A->k->key, A->k->keylen, &done);
        }
        if (done != NULL) {
            if (best == NULL || more_recent(r, done, best)) {
                pmatch_free(best, r->nsteps);
                best = done;
            } else {
                pmatch_free(done, r->nsteps);
            }
        }
        /* a `not` step between the last bound step and j */
        if (err == VG_OK && j > 0 && r->steps[j - 1].neg && m != e->proot &&
            !pmatch_is_root(A->ps, m) && (mask >> (j - 1) & 1) &&
            step_holds(e, r, m, j - 1, ev, t)) {
            m->dead = true;
            A->k->dirty = true;
        }
    }
    if (err == VG_OK && r->steps[0].neg && (mask & 1) &&
        step_holds(e, r, A->ps ? A->ps->pm[0] : e->proot, 0, ev, t) &&
        (err = need_state(A, NULL)) == VG_OK && t > A->ps->lead_neg_max)
        A->ps->lead_neg_max = t;
    if (err == VG_OK && best != NULL) {
        pstate *ps = A->ps;
        err = emit(e, A->ri, ps, best, A->k->key, A->k->keylen, t, false, fn, fctx);
        /* reset: every partial match goes; the root starts afresh */
        for (uint32_t i = 1; i < ps->n; i++)
            ps->pm[i]->dead = true;
        for (uint32_t s = 0; s < r->nsteps; s++)
            plist_clear(&ps->pm[0]->b[s]);
    }
    pmatch_free(best, r->nsteps);
    pev_unref(A->x);
    if (A->ps != NULL && t > A->ps->newest)
        A->ps->newest = t;
    if (A->ps != NULL)
        pstate_prune(e, A->ri, A->ps);
    return err;
}

vg_err
pattern_event(vg_engine *e, size_t ri, const vg_event *ev, int64_t t, uint64_t seq, vg_alert_fn fn,
              void *fctx)
{
    const vg_rule *r = vg_ruleset_rule(e->rs, ri);
    vg_vm_ctx ctx = {.ev = ev};
    size_t off[VG_PATTERN_STEPS], len[VG_PATTERN_STEPS];
    uint64_t live = 0; /* steps this event may serve */
    bool empty = false;
    e->pkeys.len = 0;
    for (uint32_t j = 0; j < r->nsteps; j++) {
        const vg_step *s = &r->steps[j];
        if (s->stream != ev->stream)
            continue;
        if (s->filter.n > 0 && !truthy(vg_vm_eval(e->vm, &s->filter, &ctx)))
            continue;
        vg_value kv = vg_vm_eval(e->vm, &s->key, &ctx);
        off[j] = e->pkeys.len;
        vg_err err = vg_value_format(&kv, false, 0, s->key.en, &e->pkeys);
        if (err)
            return err;
        len[j] = e->pkeys.len - off[j];
        if (len[j] == 0) {
            empty = true;
            continue;
        }
        live |= 1ull << j;
    }
    if (empty)
        e->stats[ri].empty_keys++;
    if (live != 0)
        e->stats[ri].matched++;
    /* the steps of one key together */
    while (live != 0) {
        uint32_t j = (uint32_t)__builtin_ctzll(live);
        uint64_t mask = 0;
        for (uint32_t i = j; i < r->nsteps; i++)
            if ((live >> i & 1) && len[i] == len[j] &&
                memcmp(e->pkeys.data + off[i], e->pkeys.data + off[j], len[j]) == 0)
                mask |= 1ull << i;
        live &= ~mask;
        const char *key = e->pkeys.data + off[j];
        uint16_t ks = r->keyspace;
        /* the rule's own key: this event's record for it may be known */
        bool own = r->steps[j].keyspace == ks;
        keyrec *k = own && e->ks_epoch[ks] == e->epoch ? e->ks_rec[ks] : NULL;
        if (k == NULL) {
            k = key_get(e, ks, key, (uint32_t)len[j], hash_bytes(key, len[j], ks));
            if (k == NULL)
                return VG_ENOMEM;
            if (own) {
                e->ks_rec[ks] = k;
                e->ks_epoch[ks] = e->epoch;
            }
        }
        k->touched = e->gen;
        apply_ctx A = {.e = e,
                       .ri = ri,
                       .r = r,
                       .k = k,
                       .ps = (pstate *)(void *)k->rules[ri],
                       .ev = ev,
                       .t = t,
                       .seq = seq};
        vg_err err = apply(&A, mask, fn, fctx);
        if (err)
            return err;
    }
    return VG_OK;
}

/* ---- Saved state ---------------------------------------------------------------------
 *
 * A pattern state (the payload of its rule in a key record; integers as
 * the host writes them):
 *   u8 flags (1 alerted), i64 last_alert, i64 lead_neg_max, i64 newest,
 *   u32 nevents, nevents x event: u64 seq, i64 time, u8 stream, u8 digits,
 *       u16 nfields, nfields x (u8 kind, STR: u32 len + bytes, else f64),
 *       u32 nattrs, nattrs x (u32 len + key bytes, u32 len + value bytes),
 *   u16 nsteps, u32 npartials (the root first), npartials x partial:
 *       u32 next, u8 flags (1 candidate), i64 t0, i64 lead_neg, u64 last_seq,
 *       u64 id, i64 deadline, nsteps x (u32 n, n x u32 event index).
 * Events shared by several partial matches are written once.
 */

typedef struct prd {
    const unsigned char *p, *end;
    bool bad;
} prd;

static void
rget(prd *r, void *out, size_t n)
{
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = true;
        memset(out, 0, n);
        return;
    }
    memcpy(out, r->p, n);
    r->p += n;
}

static const char *
rbytes(prd *r, uint32_t *len)
{
    rget(r, len, 4);
    if (r->bad || (size_t)(r->end - r->p) < *len) {
        r->bad = true;
        return NULL;
    }
    const char *s = (const char *)r->p;
    r->p += *len;
    return s;
}

/* A table of the events a state refers to, by pointer, for writing. */
typedef struct evtab {
    const pev **v;
    uint32_t n, cap;
} evtab;

static int64_t
evtab_index(evtab *t, const pev *p, bool add)
{
    for (uint32_t i = 0; i < t->n; i++) /* states are small: linear */
        if (t->v[i] == p)
            return i;
    if (!add)
        return -1;
    if (t->n == t->cap) {
        uint32_t cap = t->cap ? t->cap * 2 : 16;
        const pev **v = realloc(t->v, cap * sizeof(pev *));
        if (v == NULL)
            return -1;
        t->v = v;
        t->cap = cap;
    }
    t->v[t->n] = p;
    return t->n++;
}

static vg_err
put_event(vg_buf *b, const pev *p, size_t nfields)
{
    const vg_event *ev = &p->ev;
    uint8_t stream = (uint8_t)ev->stream;
    uint16_t nf = (uint16_t)nfields;
    vg_err err = vg_buf_append(b, &p->seq, 8);
    err = err ? err : vg_buf_append(b, &p->t, 8);
    err = err ? err : vg_buf_append(b, &stream, 1);
    err = err ? err : vg_buf_append(b, &ev->digits, 1);
    err = err ? err : vg_buf_append(b, &nf, 2);
    for (size_t i = 0; i < nfields && !err; i++) {
        const vg_value *v = &ev->v[i];
        err = vg_buf_append(b, &v->kind, 1);
        if (v->kind == VG_V_STR) {
            err = err ? err : vg_buf_append(b, &v->len, 4);
            err = err ? err : vg_buf_append(b, v->u.s, v->len);
        } else {
            err = err ? err : vg_buf_append(b, &v->u.num, 8);
        }
    }
    err = err ? err : vg_buf_append(b, &ev->nattrs, 4);
    for (uint32_t i = 0; i < ev->nattrs && !err; i++) {
        err = vg_buf_append(b, &ev->attrs[i].klen, 4);
        err = err ? err : vg_buf_append(b, ev->attrs[i].key, ev->attrs[i].klen);
        err = err ? err : vg_buf_append(b, &ev->attrs[i].vlen, 4);
        err = err ? err : vg_buf_append(b, ev->attrs[i].val, ev->attrs[i].vlen);
    }
    return err;
}

vg_err
pstate_encode(const pstate *ps, const vg_rule *r, const vg_schema *sc, vg_buf *out)
{
    evtab t = {0};
    vg_err err = VG_OK;
    for (uint32_t i = 0; i < ps->n && !err; i++)
        for (uint32_t s = 0; s < r->nsteps && !err; s++)
            for (uint32_t k = 0; k < ps->pm[i]->b[s].n && !err; k++)
                if (evtab_index(&t, ps->pm[i]->b[s].v[k], true) < 0)
                    err = VG_ENOMEM;
    uint8_t flags = ps->alerted ? 1 : 0;
    err = err ? err : vg_buf_append(out, &flags, 1);
    err = err ? err : vg_buf_append(out, &ps->last_alert, 8);
    err = err ? err : vg_buf_append(out, &ps->lead_neg_max, 8);
    err = err ? err : vg_buf_append(out, &ps->newest, 8);
    err = err ? err : vg_buf_append(out, &t.n, 4);
    for (uint32_t i = 0; i < t.n && !err; i++)
        err = put_event(out, t.v[i], vg_schema_nfields(sc, t.v[i]->ev.stream));
    uint16_t ns = (uint16_t)r->nsteps;
    err = err ? err : vg_buf_append(out, &ns, 2);
    err = err ? err : vg_buf_append(out, &ps->n, 4);
    for (uint32_t i = 0; i < ps->n && !err; i++) {
        const pmatch *m = ps->pm[i];
        uint8_t f = m->candidate ? 1 : 0;
        err = vg_buf_append(out, &m->next, 4);
        err = err ? err : vg_buf_append(out, &f, 1);
        err = err ? err : vg_buf_append(out, &m->t0, 8);
        err = err ? err : vg_buf_append(out, &m->lead_neg, 8);
        err = err ? err : vg_buf_append(out, &m->last_seq, 8);
        err = err ? err : vg_buf_append(out, &m->id, 8);
        err = err ? err : vg_buf_append(out, &m->deadline, 8);
        for (uint32_t s = 0; s < r->nsteps && !err; s++) {
            err = vg_buf_append(out, &m->b[s].n, 4);
            for (uint32_t k = 0; k < m->b[s].n && !err; k++) {
                uint32_t ix = (uint32_t)evtab_index(&t, m->b[s].v[k], false);
                err = vg_buf_append(out, &ix, 4);
            }
        }
    }
    free(t.v);
    return err;
}

/* Reads one event and makes it a pev. */
static pev *
get_event(prd *r, const vg_schema *sc)
{
    vg_event ev;
    uint64_t seq;
    int64_t t;
    uint8_t stream;
    uint16_t nf;
    rget(r, &seq, 8);
    rget(r, &t, 8);
    rget(r, &stream, 1);
    vg_event_clear(&ev, stream < VG_NSTREAMS ? (vg_stream_id)stream : VG_STREAM_TXN);
    rget(r, &ev.digits, 1);
    rget(r, &nf, 2);
    if (r->bad || stream >= VG_NSTREAMS || nf != vg_schema_nfields(sc, (vg_stream_id)stream)) {
        r->bad = true;
        return NULL;
    }
    for (uint16_t i = 0; i < nf && !r->bad; i++) {
        vg_value *v = &ev.v[i];
        rget(r, &v->kind, 1);
        if (v->kind == VG_V_STR)
            v->u.s = rbytes(r, &v->len);
        else
            rget(r, &v->u.num, 8);
    }
    uint32_t na;
    rget(r, &na, 4);
    if (r->bad || na > (size_t)(r->end - r->p) / 8) {
        r->bad = true;
        return NULL;
    }
    vg_attr *attrs = na ? malloc(na * sizeof(vg_attr)) : NULL;
    if (na && attrs == NULL)
        return NULL;
    for (uint32_t i = 0; i < na && !r->bad; i++) {
        attrs[i].key = rbytes(r, &attrs[i].klen);
        attrs[i].val = rbytes(r, &attrs[i].vlen);
    }
    ev.attrs = attrs;
    ev.nattrs = na;
    pev *p = r->bad ? NULL : pev_new(sc, &ev, seq, t);
    free(attrs);
    return p;
}

vg_err
pstate_decode(const vg_rule *r, const vg_schema *sc, const unsigned char *data, size_t len,
              pstate **out)
{
    prd rd = {data, data + len, false};
    *out = NULL;
    pstate *ps = pstate_new(r);
    if (ps == NULL)
        return VG_ENOMEM;
    uint8_t flags;
    rget(&rd, &flags, 1);
    ps->alerted = flags & 1;
    rget(&rd, &ps->last_alert, 8);
    rget(&rd, &ps->lead_neg_max, 8);
    rget(&rd, &ps->newest, 8);
    uint32_t nev;
    rget(&rd, &nev, 4);
    vg_err err = VG_OK;
    pev **evs = NULL;
    if (rd.bad || nev > len / 16)
        rd.bad = true;
    else if ((evs = calloc(nev ? nev : 1, sizeof(pev *))) == NULL)
        err = VG_ENOMEM;
    for (uint32_t i = 0; i < nev && !rd.bad && !err; i++)
        if ((evs[i] = get_event(&rd, sc)) == NULL && !rd.bad)
            err = VG_ENOMEM;
    uint16_t ns;
    uint32_t np;
    rget(&rd, &ns, 2);
    rget(&rd, &np, 4);
    if (ns != r->nsteps || np == 0 || np > len / 16)
        rd.bad = true;
    for (uint32_t i = 0; i < np && !rd.bad && !err; i++) {
        pmatch *m = i == 0 ? ps->pm[0] : pmatch_new(r); /* the root first */
        if (m == NULL || (i > 0 && !pstate_push(ps, m))) {
            free(m);
            err = VG_ENOMEM;
            break;
        }
        uint8_t f;
        rget(&rd, &m->next, 4);
        rget(&rd, &f, 1);
        m->candidate = f & 1;
        rget(&rd, &m->t0, 8);
        rget(&rd, &m->lead_neg, 8);
        rget(&rd, &m->last_seq, 8);
        rget(&rd, &m->id, 8);
        rget(&rd, &m->deadline, 8);
        if (m->next > r->nsteps)
            rd.bad = true;
        for (uint32_t s = 0; s < r->nsteps && !rd.bad && !err; s++) {
            uint32_t n;
            rget(&rd, &n, 4);
            if (n > (size_t)(rd.end - rd.p) / 4)
                rd.bad = true;
            for (uint32_t k = 0; k < n && !rd.bad && !err; k++) {
                uint32_t ix;
                rget(&rd, &ix, 4);
                if (ix >= nev)
                    rd.bad = true;
                else if (!plist_add(&m->b[s], evs[ix]))
                    err = VG_ENOMEM;
            }
        }
    }
    for (uint32_t i = 0; evs != NULL && i < nev; i++)
        pev_unref(evs[i]); /* the partial matches hold their own references */
    free(evs);
    if (err || rd.bad) {
        pstate_free(ps, r);
        return err ? err : VG_EINVAL;
    }
    *out = ps;
    return VG_OK;
}

/* Timers in the store: key = deadline, seq and id (big-endian, the
 * deadline's sign flipped, so LMDB orders them by deadline); value = the
 * rule's state_id (16 bytes) and the key. */
static void
be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static uint64_t
get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

vg_err
pattern_save(vg_engine *e)
{
    int64_t seq = (int64_t)e->seq, cand = (int64_t)e->next_cand;
    vg_err err = store_meta(e->st, "seq", &seq, true);
    err = err ? err : store_meta(e->st, "candidates", &cand, true);
    err = err ? err : store_timers_clear(e->st);
    vg_buf v = {0};
    for (size_t i = 0; i < e->ntimers && !err; i++) {
        const ptimer *t = &e->timers[i];
        unsigned char k[24];
        be64(k, (uint64_t)t->deadline ^ (1ull << 63));
        be64(k + 8, t->seq);
        be64(k + 16, t->id);
        v.len = 0;
        err = vg_buf_append(&v, vg_ruleset_rule(e->rs, t->rule)->state_id, 16);
        err = err ? err : vg_buf_append(&v, t->key, t->keylen);
        err = err ? err : store_timer_put(e->st, k, sizeof k, v.data, v.len);
    }
    vg_buf_free(&v);
    return err;
}

typedef struct loadctx {
    vg_engine *e;
    vg_err err;
} loadctx;

static void
load_timer(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    loadctx *L = ctx;
    if (L->err || klen != 24 || vlen < 16)
        return; /* damaged: dropped */
    const unsigned char *k = key;
    for (size_t ri = 0; ri < L->e->nrules; ri++) {
        const vg_rule *r = vg_ruleset_rule(L->e->rs, ri);
        if (!r->is_match || memcmp(r->state_id, val, 16) != 0)
            continue;
        ptimer t = {.deadline = (int64_t)(get_be64(k) ^ (1ull << 63)),
                    .seq = get_be64(k + 8),
                    .id = get_be64(k + 16),
                    .rule = (uint32_t)ri,
                    .keylen = (uint32_t)(vlen - 16),
                    .key = malloc(vlen - 16 ? vlen - 16 : 1)};
        if (t.key == NULL) {
            L->err = VG_ENOMEM;
            return;
        }
        memcpy(t.key, (const char *)val + 16, vlen - 16);
        L->err = timer_push(L->e, &t);
        if (L->err)
            free(t.key);
        return; /* a rule no longer there: its deadline is dropped */
    }
}

vg_err
pattern_load(vg_engine *e)
{
    int64_t seq = 0, cand = 0;
    vg_err err = store_meta(e->st, "seq", &seq, false);
    err = err ? err : store_meta(e->st, "candidates", &cand, false);
    e->seq = (uint64_t)seq;
    e->next_cand = (uint64_t)cand;
    loadctx L = {e, VG_OK};
    err = err ? err : store_timers(e->st, load_timer, &L);
    return err ? err : L.err;
}
