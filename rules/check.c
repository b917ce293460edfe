/*
 * check.c - the checker: resolves names and checks types of parsed rules
 * (third stage of the pipeline; runs only on rules that parsed cleanly).
 *
 * Names resolve, in order, to a pattern step (binding), a field of the event
 * in scope, a list; a name nothing knows stays "pending" (TY_NAME) so that a
 * comparison with an enum can read it as an enum constant (`status ==
 * DECLINED`). Any other use of a pending name is an unknown-name error with a
 * suggestion. An expression with an error gets TY_ERROR, and TY_ERROR is
 * accepted everywhere silently, so one mistake gives one message.
 *
 * Regexes are compiled with pcre2 here, so their errors point into the regex.
 * List files are loaded here, before the rules that use them are checked.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <errno.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rulesInt.h"

enum {
    ALLOW_WINDOW = 1 << 0,  /* count() over 1h ... */
    ALLOW_BINDING = 1 << 1, /* count(a), sum(a.amount) ... */
    ALLOW_PREV = 1 << 2,
};

typedef struct scope {
    rule *r;
    int stream;       /* vg_stream_id of bare field names; -1: none */
    int self_step;    /* the step being checked, or -1 */
    uint32_t visible; /* steps [0, visible) may be named */
    unsigned allow;   /* ALLOW_* */
    const char *ctx;  /* the clause, for messages: "where", "key", ... */
    bool in_agg;      /* inside an aggregate's argument */
    bool in_binding;  /* inside count(a)/sum(a.f)...: quantified steps allowed */
} scope;

static const char *const type_names[] = {
    [TY_ERROR] = "an error", [TY_NUMBER] = "a number",    [TY_STRING] = "a string",
    [TY_BOOL] = "a bool",    [TY_TIME] = "a time",        [TY_DURATION] = "a duration",
    [TY_ENUM] = "an enum",   [TY_NAME] = "an enum value", [TY_LIST] = "a list",
    [TY_REGEX] = "a regex",  [TY_STEP] = "a step",
};

/* "a number", "a Status value", ... */
static const char *
type_desc(type t, char *buf, size_t size)
{
    if (t.t == TY_ENUM && t.en != NULL) {
        snprintf(buf, size, "a %s value", vg_enum_name(t.en));
        return buf;
    }
    return type_names[t.t];
}

static type
ty(uint8_t t)
{
    type x = {.t = t};
    return x;
}

static const char *
plural(size_t n)
{
    return n == 1 ? "" : "s";
}

/* ---- Helpers ----------------------------------------------------------------- */

static const step *
find_step(const scope *sc, const char *name, uint32_t len, int *index)
{
    if (sc->r == NULL || sc->r->match == NULL)
        return NULL;
    const pattern *p = sc->r->match;
    for (uint32_t i = 0; i < p->nsteps; i++) {
        const step *s = &p->steps[i];
        if (!s->neg && s->name && s->namelen == len && memcmp(s->name, name, len) == 0) {
            *index = (int)i;
            return s;
        }
    }
    return NULL;
}

static uint32_t name_hash(const char *s, uint32_t len);

static list_decl *
find_list(cstate *C, const char *name, uint32_t len)
{
    if (C->list_index == NULL)
        return NULL;
    uint32_t mask = C->list_index_cap - 1;
    for (uint32_t h = name_hash(name, len) & mask; C->list_index[h] != NULL; h = (h + 1) & mask) {
        list_decl *l = C->list_index[h];
        if (l->namelen == len && memcmp(l->name, name, len) == 0)
            return l;
    }
    return NULL;
}

/* Indexes the lists by name, reporting a name declared twice. */
static void
index_lists(cstate *C)
{
    uint32_t cap = 16;
    while (cap < C->nlists * 2)
        cap *= 2;
    C->list_index = cstate_alloc(C, cap * sizeof(list_decl *));
    if (C->list_index == NULL)
        return;
    C->list_index_cap = cap;
    for (uint32_t i = 0; i < C->nlists; i++) {
        list_decl *l = C->lists[i];
        if (l->name == NULL)
            continue;
        list_decl *o = find_list(C, l->name, l->namelen);
        if (o != NULL) {
            diag_error(C, l->name_sp, "list '%s' is declared twice", l->name);
            diag_note(C, o->name_sp, "first declared here");
            continue;
        }
        uint32_t h = name_hash(l->name, l->namelen) & (cap - 1);
        while (C->list_index[h] != NULL)
            h = (h + 1) & (cap - 1);
        C->list_index[h] = l;
    }
}

static type
field_type(const vg_field *f)
{
    type t = {0};
    switch (f->type) {
    case VG_FT_NUMBER:
        t.t = TY_NUMBER;
        t.money = (f->flags & VG_FIELD_MONEY) != 0;
        break;
    case VG_FT_STRING: t.t = TY_STRING; break;
    case VG_FT_BOOL: t.t = TY_BOOL; break;
    case VG_FT_TIME: t.t = TY_TIME; break;
    case VG_FT_ENUM:
        t.t = TY_ENUM;
        t.en = f->enum_type;
        break;
    case VG_FT_MAP: t.t = TY_ERROR; break;
    }
    return t;
}

/* Suggestion candidates for a misspelt value name: fields of the stream, the
 * steps in view, lists and (for names in capitals) enum values. */
static const char *
suggest_name(cstate *C, const scope *sc, const char *name, uint32_t len)
{
    const char *cands[512];
    size_t n = 0;
    if (sc->stream >= 0) {
        size_t nf = vg_schema_nfields(C->schema, (vg_stream_id)sc->stream);
        for (size_t i = 0; i < nf && n < 256; i++) {
            const vg_field *f = vg_schema_field_at(C->schema, (vg_stream_id)sc->stream, i);
            if (f->type != VG_FT_MAP)
                cands[n++] = f->name;
            if (f->type == VG_FT_ENUM)
                for (size_t j = 0; j < vg_enum_count(f->enum_type) && n < 400; j++)
                    cands[n++] = vg_enum_value_name(f->enum_type, j);
        }
    }
    if (sc->r && sc->r->match)
        for (uint32_t i = 0; i < sc->visible && n < 450; i++)
            if (!sc->r->match->steps[i].neg)
                cands[n++] = sc->r->match->steps[i].name;
    for (uint32_t i = 0; i < C->nlists && n < VG_ARRAY_LEN(cands); i++)
        cands[n++] = C->lists[i]->name;
    return diag_suggest(name, len, cands, n);
}

static const char *
suggest_field(cstate *C, int stream, const char *name, uint32_t len)
{
    const char *cands[256];
    size_t n = 0;
    size_t nf = vg_schema_nfields(C->schema, (vg_stream_id)stream);
    for (size_t i = 0; i < nf && n < VG_ARRAY_LEN(cands); i++) {
        const vg_field *f = vg_schema_field_at(C->schema, (vg_stream_id)stream, i);
        if (f->type != VG_FT_MAP)
            cands[n++] = f->name;
    }
    return diag_suggest(name, len, cands, n);
}

/* Resolves field name[0..len) of stream s for node n; reports when absent. */
static bool
resolve_field(cstate *C, node *n, int s, const char *name, uint32_t len, span where)
{
    const vg_field *f = vg_schema_field(C->schema, (vg_stream_id)s, name, len);
    if (f == NULL) {
        diag_error(C, where, "'%.*s' is not a field of %s", (int)len, name,
                   vg_stream_name((vg_stream_id)s));
        const char *sug = suggest_field(C, s, name, len);
        if (vg_schema_field(C->schema, (vg_stream_id)!s, name, len))
            diag_note(C, where, "'%.*s' is a field of %s", (int)len, name,
                      vg_stream_name((vg_stream_id)!s));
        else if (sug)
            diag_note(C, where, "did you mean '%s'?", sug);
        n->ty = ty(TY_ERROR);
        return false;
    }
    if (f->type == VG_FT_MAP) {
        diag_error(C, where, "'%s' is a map; read one entry with attr(\"name\")", f->name);
        n->ty = ty(TY_ERROR);
        return false;
    }
    n->ref = REF_FIELD;
    n->stream = (uint8_t)s;
    n->field = f;
    n->ty = field_type(f);
    return true;
}

/* Checks that step `idx` may be named here; reports why not. */
static bool
step_in_view(cstate *C, const scope *sc, int idx, const char *name, uint32_t len, span where)
{
    if (idx == sc->self_step)
        return true; /* b.lat in b's own condition: the event being tested */
    if (sc->visible == 0 && sc->self_step >= 0 && idx < sc->self_step) {
        diag_error(C, where,
                   "step '%.*s' can't be used in the %s: it is computed from this step's event "
                   "alone",
                   (int)len, name, sc->ctx);
        return false;
    }
    if ((uint32_t)idx >= sc->visible) {
        const step *s = &sc->r->match->steps[idx];
        unsigned line, col;
        diag_position(C, s->name_sp.file, s->name_sp.start, &line, &col);
        diag_error(C, where,
                   "step '%.*s' is used before it is bound (at %u:%u); a condition can refer "
                   "only to earlier steps",
                   (int)len, name, line, col);
        return false;
    }
    return true;
}

/* ---- Regexes --------------------------------------------------------------- */

static bool
compile_regex(cstate *C, node *n)
{
    uint32_t opts = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF;
    if (n->rx_flags & RX_I)
        opts |= PCRE2_CASELESS;
    if (n->rx_flags & RX_M)
        opts |= PCRE2_MULTILINE;
    if (n->rx_flags & RX_S)
        opts |= PCRE2_DOTALL;
    if (n->rx_flags & RX_X)
        opts |= PCRE2_EXTENDED;
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)n->rx_pat, n->rx_len, opts, &code, &off, NULL);
    if (re == NULL) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        span sp = n->rx_sp;
        if (n->rx_exact) {
            if (off > n->rx_len)
                off = n->rx_len;
            sp.start = n->rx_sp.start + 1 + (uint32_t)off;
            sp.end = sp.start + (off < n->rx_len ? 1 : 0);
        }
        diag_error(C, sp, "invalid regex: %s", (const char *)msg);
        return false;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* without JIT, matching still works */
    if (C->nregexes == C->capregexes) {
        uint32_t cap = C->capregexes ? C->capregexes * 2 : 16;
        void **v = realloc(C->regexes, cap * sizeof(void *));
        if (v == NULL) {
            pcre2_code_free(re);
            C->oom = true;
            return false;
        }
        C->regexes = v;
        C->capregexes = cap;
    }
    n->rx_index = (int32_t)C->nregexes;
    C->regexes[C->nregexes++] = re;
    n->rx_code = re;
    return true;
}

/* ---- Expressions --------------------------------------------------------------- */

static type check_expr(cstate *C, const scope *sc, node *n);

/* The enum field of stream s whose enum has a value called name, or NULL. */
static const vg_field *
enum_owner(cstate *C, int s, const char *name, uint32_t len)
{
    for (size_t k = 0; k < vg_schema_nfields(C->schema, (vg_stream_id)s); k++) {
        const vg_field *f = vg_schema_field_at(C->schema, (vg_stream_id)s, k);
        int v;
        if (f->type == VG_FT_ENUM && vg_enum_lookup(f->enum_type, name, len, &v))
            return f;
    }
    return NULL;
}

/* A pending name used where a value is needed: report it as unknown. */
static type
settle(cstate *C, const scope *sc, node *n)
{
    switch (n->ty.t) {
    case TY_NAME: {
        if (C->map_mode) {
            diag_error(C, n->sp, "the CSV header has no column '%.*s'", (int)n->namelen, n->name);
            const char *sug = diag_suggest(n->name, n->namelen, C->columns, C->ncolumns);
            if (sug)
                diag_note(C, n->sp, "did you mean '%s'?", sug);
            else
                diag_note(C, n->sp, "a column whose name is not a word is read with col(\"%.*s\")",
                          (int)n->namelen, n->name);
            break;
        }
        if (sc->stream >= 0)
            diag_error(C, n->sp, "'%.*s' is not a field of %s", (int)n->namelen, n->name,
                       vg_stream_name((vg_stream_id)sc->stream));
        else
            diag_error(C, n->sp, "unknown name '%.*s'", (int)n->namelen, n->name);
        const char *sug = suggest_name(C, sc, n->name, n->namelen);
        const vg_field *owner =
            sc->stream >= 0 ? enum_owner(C, sc->stream, n->name, n->namelen) : NULL;
        if (owner != NULL)
            diag_note(C, n->sp, "'%.*s' is a %s value; it compares with %s", (int)n->namelen,
                      n->name, vg_enum_name(owner->enum_type), owner->name);
        else if (sc->stream >= 0 &&
                 vg_schema_field(C->schema, (vg_stream_id)!sc->stream, n->name, n->namelen))
            diag_note(C, n->sp, "'%.*s' is a field of %s", (int)n->namelen, n->name,
                      vg_stream_name((vg_stream_id)!sc->stream));
        else if (sug)
            diag_note(C, n->sp, "did you mean '%s'?", sug);
        break;
    }
    case TY_STEP:
        diag_error(C, n->sp,
                   "step '%.*s' stands for an event; use one of its fields (like %.*s.amount) "
                   "or count(%.*s)",
                   (int)n->namelen, n->name, (int)n->namelen, n->name, (int)n->namelen, n->name);
        break;
    case TY_LIST:
        diag_error(C, n->sp, "list '%.*s' can only be used after 'in'", (int)n->namelen, n->name);
        break;
    default: return n->ty;
    }
    n->ty = ty(TY_ERROR);
    return n->ty;
}

static type
check_value(cstate *C, const scope *sc, node *n)
{
    check_expr(C, sc, n);
    return settle(C, sc, n);
}

/* Reports that operand n of `what` has the wrong type; returns TY_ERROR. */
static type
want(cstate *C, node *n, const char *what, const char *expected)
{
    char buf[64];
    diag_error(C, n->sp, "%s needs %s, but this is %s", what, expected,
               type_desc(n->ty, buf, sizeof buf));
    return ty(TY_ERROR);
}

/* Resolves a pending name n against enum e (a comparison with an enum). */
static bool
resolve_enum(cstate *C, node *n, const vg_enum *e)
{
    int v;
    if (vg_enum_lookup(e, n->name, n->namelen, &v)) {
        n->ref = REF_ENUM;
        n->enum_value = v;
        n->ty.t = TY_ENUM;
        n->ty.en = e;
        return true;
    }
    diag_error(C, n->sp, "'%.*s' is not a %s value", (int)n->namelen, n->name, vg_enum_name(e));
    const char *cands[64];
    size_t k = 0;
    for (size_t i = 0; i < vg_enum_count(e) && k < VG_ARRAY_LEN(cands); i++)
        cands[k++] = vg_enum_value_name(e, i);
    const char *sug = diag_suggest(n->name, n->namelen, cands, k);
    if (sug) {
        diag_note(C, n->sp, "did you mean '%s'?", sug);
    } else {
        char all[512] = "";
        for (size_t i = 0; i < k; i++)
            if (strstr(cands[i], "_UNSPECIFIED") == NULL)
                snprintf(all + strlen(all), sizeof all - strlen(all), "%s%s", all[0] ? ", " : "",
                         cands[i]);
        diag_note(C, n->sp, "%s values: %s", vg_enum_name(e), all);
    }
    n->ty = ty(TY_ERROR);
    return false;
}

/* Does enum e name a value called s[0..len)? Reports at sp when not. */
static bool
enum_has_name(cstate *C, const vg_enum *e, const char *s, uint32_t len, span sp,
              const char *context)
{
    int v;
    if (vg_enum_lookup(e, s, len, &v))
        return true;
    diag_error(C, sp, "%s '%.*s', which is not a %s value", context, (int)len, s, vg_enum_name(e));
    const char *cands[64];
    size_t k = 0;
    for (size_t i = 0; i < vg_enum_count(e) && k < VG_ARRAY_LEN(cands); i++)
        cands[k++] = vg_enum_value_name(e, i);
    const char *sug = diag_suggest(s, len, cands, k);
    if (sug)
        diag_note(C, sp, "did you mean '%s'?", sug);
    return false;
}

static bool
is_cmp_op(uint8_t op)
{
    return op == T_EQ || op == T_NE || op == T_LT || op == T_LE || op == T_GT || op == T_GE;
}

/* Map files: a column's text meeting a type converts to it. Wraps *slot in a
 * conversion node and returns true when *slot is column text. */
static bool
convert_text(cstate *C, node **slot, uint8_t to, const vg_enum *en)
{
    node *n = *slot;
    if (n->ty.t != TY_STRING || !n->ty.text || to == TY_STRING)
        return false;
    node *c = cstate_alloc(C, sizeof(node));
    if (c == NULL)
        return false;
    c->kind = N_CONV;
    c->a = n;
    c->sp = n->sp;
    c->step = -1;
    c->height = n->height + 1;
    c->ty = ty(to);
    c->ty.en = en;
    *slot = c;
    return true;
}

static bool
is_text(type t)
{
    return t.t == TY_STRING && t.text;
}

static type
check_compare(cstate *C, const scope *sc, node *n)
{
    type a = check_expr(C, sc, n->a);
    type b = check_expr(C, sc, n->b);
    /* enum constants take their type from the other side */
    if (a.t == TY_ENUM && b.t == TY_NAME)
        b = resolve_enum(C, n->b, a.en) ? n->b->ty : ty(TY_ERROR);
    else if (b.t == TY_ENUM && a.t == TY_NAME)
        a = resolve_enum(C, n->a, b.en) ? n->a->ty : ty(TY_ERROR);
    /* A pending name facing an error or another pending name may well be an
     * enum constant of the side that went wrong (`chanel == ECOMMERCE`):
     * report the first unknown name only. */
    if (a.t == TY_NAME && b.t == TY_NAME)
        b = n->b->ty = ty(TY_ERROR);
    else if (b.t == TY_NAME && a.t == TY_ERROR)
        b = n->b->ty = ty(TY_ERROR);
    else if (a.t == TY_NAME && b.t == TY_ERROR)
        a = n->a->ty = ty(TY_ERROR);
    a = settle(C, sc, n->a);
    b = settle(C, sc, n->b);
    if (is_text(a) && b.t != TY_STRING && b.t != TY_ERROR && convert_text(C, &n->a, b.t, b.en))
        a = n->a->ty;
    else if (is_text(b) && a.t != TY_STRING && a.t != TY_ERROR && convert_text(C, &n->b, a.t, a.en))
        b = n->b->ty;
    if (a.t == TY_ERROR || b.t == TY_ERROR)
        return ty(TY_ERROR);
    const char *op = tok_spelling((tok_kind)n->op);
    char ba[64], bb[64];
    if (a.t != b.t || (a.t == TY_ENUM && a.en != b.en)) {
        diag_error(C, n->sp, "can't compare %s with %s", type_desc(a, ba, sizeof ba),
                   type_desc(b, bb, sizeof bb));
        node *dur = a.t == TY_DURATION ? n->a : b.t == TY_DURATION ? n->b : NULL;
        node *enm = a.t == TY_ENUM ? n->a : b.t == TY_ENUM ? n->b : NULL;
        node *str = a.t == TY_STRING ? n->a : b.t == TY_STRING ? n->b : NULL;
        node *num = a.t == TY_NUMBER ? n->a : b.t == TY_NUMBER ? n->b : NULL;
        if (dur && dur->kind == N_DURATION && num)
            diag_note(C, dur->sp, "this is a duration (m is minutes); a number has no unit");
        else if (dur && num && num->kind == N_NUMBER)
            diag_note(C, num->sp,
                      "give the number a unit (like %gs or %gm), or compare "
                      "seconds(...) or minutes(...) of the duration",
                      num->v.num, num->v.num);
        else if (enm && str && str->kind == N_STRING)
            diag_note(C, str->sp, "write enum values without quotes: %.*s", (int)str->v.s.len,
                      str->v.s.str);
        else if ((a.t == TY_TIME && b.t == TY_NUMBER) || (a.t == TY_NUMBER && b.t == TY_TIME))
            diag_note(C, n->sp, "times compare with times; 'time - other.time' is a duration");
        return ty(TY_ERROR);
    }
    if (n->op != T_EQ && n->op != T_NE && (a.t == TY_BOOL || a.t == TY_ENUM)) {
        diag_error(C, n->sp2, "'%s' does not order %ss; use == or !=", op,
                   a.t == TY_BOOL ? "bool" : "enum");
        return ty(TY_ERROR);
    }
    if (a.t == TY_LIST || a.t == TY_REGEX || a.t == TY_STEP)
        return want(C, n->a, "a comparison", "a value");
    return ty(TY_BOOL);
}

static type
check_arith(cstate *C, const scope *sc, node *n)
{
    type a = check_value(C, sc, n->a);
    type b = check_value(C, sc, n->b);
    if (a.t == TY_ERROR || b.t == TY_ERROR)
        return ty(TY_ERROR);
    /* column text is a number in arithmetic (`+` of two texts joins them) */
    bool join = n->op == T_PLUS && (a.t == TY_STRING) && (b.t == TY_STRING) &&
                !(is_text(a) && b.t != TY_STRING) && !(is_text(b) && a.t != TY_STRING);
    if (!join) {
        if (is_text(a) && convert_text(C, &n->a, TY_NUMBER, NULL))
            a = n->a->ty;
        if (is_text(b) && convert_text(C, &n->b, TY_NUMBER, NULL))
            b = n->b->ty;
    }
    type r = ty(TY_ERROR);
    uint8_t A = a.t, B = b.t;
    switch (n->op) {
    case T_PLUS:
        if (A == TY_NUMBER && B == TY_NUMBER)
            r = ty(TY_NUMBER), r.money = a.money || b.money;
        else if (A == TY_STRING && B == TY_STRING)
            r = ty(TY_STRING);
        else if ((A == TY_TIME && B == TY_DURATION) || (A == TY_DURATION && B == TY_TIME))
            r = ty(TY_TIME);
        else if (A == TY_DURATION && B == TY_DURATION)
            r = ty(TY_DURATION);
        break;
    case T_MINUS:
        if (A == TY_NUMBER && B == TY_NUMBER)
            r = ty(TY_NUMBER), r.money = a.money || b.money;
        else if (A == TY_TIME && B == TY_TIME)
            r = ty(TY_DURATION);
        else if (A == TY_TIME && B == TY_DURATION)
            r = ty(TY_TIME);
        else if (A == TY_DURATION && B == TY_DURATION)
            r = ty(TY_DURATION);
        break;
    case T_STAR:
        if (A == TY_NUMBER && B == TY_NUMBER)
            r = ty(TY_NUMBER), r.money = a.money || b.money;
        else if ((A == TY_DURATION && B == TY_NUMBER) || (A == TY_NUMBER && B == TY_DURATION))
            r = ty(TY_DURATION);
        break;
    case T_SLASH:
        if (A == TY_NUMBER && B == TY_NUMBER)
            r = ty(TY_NUMBER), r.money = a.money && !b.money;
        else if (A == TY_DURATION && B == TY_NUMBER)
            r = ty(TY_DURATION);
        else if (A == TY_DURATION && B == TY_DURATION)
            r = ty(TY_NUMBER);
        break;
    case T_PERCENT:
        if (A == TY_NUMBER && B == TY_NUMBER)
            r = ty(TY_NUMBER);
        else if (A == TY_DURATION && B == TY_DURATION)
            r = ty(TY_DURATION);
        break;
    default: break;
    }
    if (r.t == TY_ERROR) {
        char ba[64], bb[64];
        diag_error(C, n->sp, "can't apply '%s' to %s and %s", tok_spelling((tok_kind)n->op),
                   type_desc(a, ba, sizeof ba), type_desc(b, bb, sizeof bb));
        if (n->op == T_PLUS && (A == TY_STRING || B == TY_STRING))
            diag_note(C, n->sp2, "'+' joins two strings");
        else if ((A == TY_TIME || B == TY_TIME) && (A == TY_NUMBER || B == TY_NUMBER))
            diag_note(C, n->sp2, "add a duration to a time: time + 10m");
    }
    return r;
}

static type
check_logic(cstate *C, const scope *sc, node *n)
{
    const char *op = n->op == T_AND ? "'and'" : "'or'";
    bool ok = true;
    for (uint32_t i = 0; i < n->nargs; i++) {
        type t = check_value(C, sc, n->args[i]);
        if (t.t != TY_ERROR && t.t != TY_BOOL) {
            want(C, n->args[i], op, "true/false conditions");
            t.t = TY_ERROR;
        }
        ok = ok && t.t == TY_BOOL;
    }
    return ok ? ty(TY_BOOL) : ty(TY_ERROR);
}

/* The literal type of a list item, or TY_ERROR (reported). Pending names are
 * enum constants when the list meets an enum. */
static type
check_list_item(cstate *C, const scope *sc, node *it, const vg_enum *en)
{
    if (it->kind == N_NAME && en != NULL) {
        it->ty = ty(TY_NAME);
        return resolve_enum(C, it, en) ? it->ty : ty(TY_ERROR);
    }
    bool literal = it->kind == N_NUMBER || it->kind == N_STRING ||
                   (it->kind == N_NEG && it->a->kind == N_NUMBER);
    if (!literal) {
        if (it->kind == N_NAME)
            diag_error(C, it->sp, "list values are literals: write \"%.*s\" in quotes",
                       (int)it->namelen, it->name);
        else
            diag_error(C, it->sp, "list values are literals: numbers or \"strings\"");
        return ty(TY_ERROR);
    }
    return check_value(C, sc, it);
}

static type
check_in(cstate *C, const scope *sc, node *n)
{
    type a = check_expr(C, sc, n->a);
    if (a.t == TY_NAME)
        a = settle(C, sc, n->a);
    node *l = n->b;
    const char *op = n->op ? "'not in'" : "'in'";
    char ba[64];
    if (a.t != TY_ERROR && a.t != TY_STRING && a.t != TY_NUMBER && a.t != TY_ENUM) {
        diag_error(C, n->a->sp, "%s works with strings, numbers and enums, but this is %s", op,
                   type_desc(a, ba, sizeof ba));
        a = ty(TY_ERROR);
    }
    if (l->kind == N_NAME) {
        list_decl *d = find_list(C, l->name, l->namelen);
        if (d == NULL && sc->stream >= 0 &&
            vg_schema_field(C->schema, (vg_stream_id)sc->stream, l->name, l->namelen)) {
            diag_error(C, l->sp, "'%.*s' is a field, not a list; %s takes a list name or [values]",
                       (int)l->namelen, l->name, op);
            return ty(TY_ERROR);
        }
        if (d == NULL) {
            diag_error(C, l->sp, "unknown list '%.*s'", (int)l->namelen, l->name);
            const char *cands[256];
            size_t k = 0;
            for (uint32_t i = 0; i < C->nlists && k < VG_ARRAY_LEN(cands); i++)
                cands[k++] = C->lists[i]->name;
            const char *sug = diag_suggest(l->name, l->namelen, cands, k);
            if (sug)
                diag_note(C, l->sp, "did you mean '%s'?", sug);
            else if (C->nlists == 0)
                diag_note(C, l->sp, "declare it: list %.*s = [\"a\", \"b\"]", (int)l->namelen,
                          l->name);
            return ty(TY_ERROR);
        }
        l->ref = REF_LIST;
        l->list = d;
        l->ty = ty(TY_LIST);
        l->ty.elem = d->elem;
        if (d->bad || a.t == TY_ERROR)
            return ty(TY_ERROR);
        if (d->elem == TY_ERROR) /* empty: matches nothing */
            return ty(TY_BOOL);
        if (d->elem == TY_NAME && a.t != TY_ENUM) {
            diag_error(C, n->sp, "list '%s' holds enum values (bare names), but this is %s",
                       d->name, type_desc(a, ba, sizeof ba));
            diag_note(C, d->name_sp, "quote them to make a list of strings: [\"%s\", ...]",
                      d->items[0]->name);
            return ty(TY_ERROR);
        }
        if (a.t == TY_ENUM) {
            if (d->elem == TY_NUMBER) {
                diag_error(C, n->sp, "list '%s' holds numbers; %s names enum values as strings",
                           d->name, op);
                return ty(TY_ERROR);
            }
            /* every value must name one of the enum's values */
            bool ok = true;
            if (d->from_file) {
                for (uint32_t i = 0; i < d->nvalues && ok; i++) {
                    span vsp = {d->vfile, d->value_offs[i], d->value_offs[i] + d->value_lens[i]};
                    ok = enum_has_name(C, a.en, d->values[i], d->value_lens[i], vsp,
                                       "the list holds");
                    if (!ok)
                        diag_note(C, n->sp, "list '%s' is compared with %s here", d->name,
                                  type_desc(a, ba, sizeof ba));
                }
            } else {
                for (uint32_t i = 0; i < d->nitems && ok; i++) {
                    const node *it = d->items[i];
                    bool bare = it->kind == N_NAME;
                    ok = enum_has_name(C, a.en, bare ? it->name : it->v.s.str,
                                       bare ? it->namelen : it->v.s.len, it->sp, "the list holds");
                    if (!ok)
                        diag_note(C, n->sp, "the list is compared with %s here",
                                  type_desc(a, ba, sizeof ba));
                }
            }
            return ok ? ty(TY_BOOL) : ty(TY_ERROR);
        }
        if (a.t != d->elem) {
            diag_error(C, n->sp, "list '%s' holds %ss, but this is %s", d->name,
                       d->elem == TY_STRING ? "string" : "number", type_desc(a, ba, sizeof ba));
            return ty(TY_ERROR);
        }
        return ty(TY_BOOL);
    }
    if (l->kind != N_LIST) {
        diag_error(C, l->sp, "%s needs a list: a list name or [values]", op);
        return ty(TY_ERROR);
    }
    if (a.t == TY_ERROR)
        return a; /* the items could be enum constants of what went wrong */
    bool ok = true;
    type first = ty(TY_ERROR);
    for (uint32_t i = 0; i < l->nargs && ok; i++) { /* the first bad item says it all */
        node *it = l->args[i];
        type t = check_list_item(C, sc, it, a.t == TY_ENUM ? a.en : NULL);
        if (t.t == TY_ERROR) {
            ok = false;
            continue;
        }
        if (a.t == TY_ENUM && t.t == TY_STRING) {
            ok = enum_has_name(C, a.en, it->v.s.str, it->v.s.len, it->sp, "the list holds");
            continue;
        }
        if (a.t == TY_ENUM && t.t == TY_ENUM)
            continue;         /* a bare name, resolved against the enum above */
        if (a.t == TY_ENUM) { /* numbers: SPEC matches enums by name only */
            diag_error(C, it->sp, "%s%.*s%s is a %s: list its values by name, like [%s, %s]",
                       n->a->field ? "'" : "", n->a->field ? (int)strlen(n->a->field->name) : 4,
                       n->a->field ? n->a->field->name : "this", n->a->field ? "'" : "",
                       vg_enum_name(a.en), vg_enum_value_name(a.en, 1),
                       vg_enum_value_name(a.en, vg_enum_count(a.en) > 2 ? 2 : 1));
            ok = false;
            continue;
        }
        if (first.t == TY_ERROR)
            first = t;
        if (t.t != first.t) {
            char bt[64], bf[64];
            diag_error(C, it->sp, "a list holds values of one type; this is %s, the first is %s",
                       type_desc(t, bt, sizeof bt), type_desc(first, bf, sizeof bf));
            ok = false;
        } else if (t.t != a.t) {
            char bt[64];
            diag_error(C, it->sp, "%s compares %s with a list value that is %s", op,
                       type_desc(a, ba, sizeof ba), type_desc(t, bt, sizeof bt));
            ok = false;
        }
    }
    l->ty = ty(TY_LIST);
    l->ty.elem = first.t;
    return ok ? ty(TY_BOOL) : ty(TY_ERROR);
}

static type
check_regex(cstate *C, const scope *sc, node *n)
{
    type a = check_value(C, sc, n->a);
    /* compiled once per literal: the copies of a rule's `where` made for
     * each pattern step share the code (see clone()) */
    if (!n->rx_done) {
        n->rx_done = true;
        compile_regex(C, n);
    }
    bool ok = n->rx_code != NULL;
    if (a.t != TY_ERROR && a.t != TY_STRING) {
        char buf[64];
        diag_error(C, n->a->sp, "'%s' matches strings, but this is %s", n->op ? "!~" : "~",
                   type_desc(a, buf, sizeof buf));
        return ty(TY_ERROR);
    }
    return ok && a.t == TY_STRING ? ty(TY_BOOL) : ty(TY_ERROR);
}

/* Checks argument i of call n against one of the accepted types (bitmask of
 * 1 << vtype); returns its type or TY_ERROR (reported). */
static type
check_arg(cstate *C, const scope *sc, node *n, uint32_t i, unsigned accepted, const char *expected)
{
    type t = check_value(C, sc, n->args[i]);
    if (t.t == TY_ERROR)
        return t;
    if (is_text(t) && !(accepted & (1u << TY_STRING))) {
        static const uint8_t order[] = {TY_NUMBER, TY_TIME, TY_DURATION, TY_BOOL};
        for (size_t k = 0; k < VG_ARRAY_LEN(order); k++) {
            if ((accepted & (1u << order[k])) && convert_text(C, &n->args[i], order[k], NULL)) {
                t = n->args[i]->ty;
                break;
            }
        }
    }
    if (!(accepted & (1u << t.t))) {
        char what[64], buf[64];
        snprintf(what, sizeof what, "%s()", vg_functions[n->fn].name);
        if (n->nargs > 1)
            snprintf(what, sizeof what, "argument %u of %s()", i + 1, vg_functions[n->fn].name);
        diag_error(C, n->args[i]->sp, "%s needs %s, but this is %s", what, expected,
                   type_desc(t, buf, sizeof buf));
        return ty(TY_ERROR);
    }
    return t;
}

#define B(t) (1u << (t))

static bool
check_arity(cstate *C, node *n)
{
    const fn_info *f = &vg_functions[n->fn];
    if (n->nargs >= f->min_args && n->nargs <= f->max_args)
        return true;
    if (f->min_args == f->max_args)
        diag_error(C, n->sp, "%s() takes %u argument%s, but %u %s given", f->name, f->min_args,
                   plural(f->min_args), n->nargs, n->nargs == 1 ? "is" : "are");
    else if (n->fn == FN_count)
        diag_error(C, n->sp, "count() takes no argument or one condition, but %u are given",
                   n->nargs);
    else
        diag_error(C, n->sp, "%s() takes one argument (an aggregate) or two or more", f->name);
    return false;
}

/* Binding aggregates of match rules: count(a), sum(a.f), avg(a.f), min(a.f),
 * max(a.f), first(a.f). */
static type
check_binding_agg(cstate *C, const scope *sc, node *n)
{
    const char *fname = vg_functions[n->fn].name;
    if (!(sc->allow & ALLOW_BINDING)) {
        if (n->fn == FN_first)
            diag_error(C, n->sp, "first() takes a pattern step's field, like first(a.amount)");
        else if (sc->allow & ALLOW_WINDOW)
            diag_error(C, n->sp,
                       "%s() needs a window: add 'over 1h', 'over 1h before' or 'over history'",
                       fname);
        else
            diag_error(C, n->sp, "aggregates are not allowed in '%s'", sc->ctx);
        return ty(TY_ERROR);
    }
    if (n->fn == FN_distinct || n->fn == FN_seen) {
        diag_error(C, n->sp,
                   "%s() works over a window ('over 30d'), and windows are not allowed in match "
                   "rules",
                   fname);
        return ty(TY_ERROR);
    }
    if (n->nargs != 1) {
        diag_error(C, n->sp, "%s() on a step takes one argument: %s", fname,
                   n->fn == FN_count ? "count(a)" : "like sum(a.amount)");
        return ty(TY_ERROR);
    }
    node *arg = n->args[0];
    scope in = *sc;
    in.in_binding = true;
    in.in_agg = true;
    if (n->fn == FN_count) {
        if (arg->kind != N_NAME) {
            diag_error(C, arg->sp, "count() in a match rule counts a step's events: count(a)");
            return ty(TY_ERROR);
        }
        type t = check_expr(C, &in, arg);
        if (t.t == TY_ERROR)
            return t;
        if (t.t == TY_STEP && arg->step == sc->self_step) {
            diag_error(C, n->sp, "a step's condition can't count the step itself");
            return ty(TY_ERROR);
        }
        if (t.t != TY_STEP) {
            if (t.t == TY_NAME) {
                settle(C, &in, arg);
                return ty(TY_ERROR);
            }
            diag_error(C, arg->sp, "count() in a match rule counts a step's events: count(a)");
            return ty(TY_ERROR);
        }
        return ty(TY_NUMBER);
    }
    if (arg->kind != N_MEMBER && !(arg->kind == N_CALL && arg->bind != NULL)) {
        diag_error(C, arg->sp, "%s() in a match rule takes a step's field, like %s(a.amount)",
                   fname, fname);
        return ty(TY_ERROR);
    }
    type t = check_value(C, &in, arg);
    if (t.t == TY_ERROR)
        return t;
    if (arg->step == sc->self_step) {
        diag_error(C, n->sp, "a step's condition can't aggregate the step itself");
        return ty(TY_ERROR);
    }
    switch (n->fn) {
    case FN_sum:
    case FN_avg:
        if (t.t != TY_NUMBER)
            return want(C, arg, n->fn == FN_sum ? "sum()" : "avg()", "a number");
        return t;
    case FN_min:
    case FN_max:
        if (t.t != TY_NUMBER && t.t != TY_TIME && t.t != TY_DURATION)
            return want(C, arg, fname[1] == 'i' ? "min()" : "max()",
                        "a number, a time or a duration");
        return t;
    default: /* first */ return t;
    }
}

static type
check_window_agg(cstate *C, const scope *sc, node *n)
{
    const fn_info *f = &vg_functions[n->fn];
    span callee = {n->sp.file, n->sp.start, n->sp.start + n->namelen};
    if (n->fn == FN_NONE || f->cls != FC_AGG) {
        if (n->fn == FN_NONE) {
            static const char *const aggs[] = {"count", "sum",      "avg", "min",
                                               "max",   "distinct", "seen"};
            diag_error(C, callee, "unknown aggregate '%.*s'", (int)n->namelen, n->name);
            const char *sug = diag_suggest(n->name, n->namelen, aggs, VG_ARRAY_LEN(aggs));
            if (sug)
                diag_note(C, callee, "did you mean '%s'?", sug);
        } else
            diag_error(C, callee,
                       "%s() is not an aggregate; 'over' follows count, sum, avg, "
                       "min, max, distinct or seen",
                       f->name);
        return ty(TY_ERROR);
    }
    if (n->fn == FN_first) {
        diag_error(C, n->sp,
                   "first() takes a pattern step's field (first(a.amount)) and no "
                   "window");
        return ty(TY_ERROR);
    }
    if (!(sc->allow & ALLOW_WINDOW)) {
        if (sc->allow & ALLOW_BINDING)
            diag_error(C, n->sp2,
                       "'over' windows are not allowed in match rules; aggregate a step "
                       "instead, like count(a) or sum(a.amount)");
        else
            diag_error(C, n->sp, "aggregates are not allowed in '%s'%s", sc->ctx,
                       strcmp(sc->ctx, "where") == 0 && (sc->r == NULL || sc->r->match == NULL)
                           ? ": it decides which events the windows hold; use 'when'"
                           : "");
        return ty(TY_ERROR);
    }
    if (sc->in_agg) {
        diag_error(C, n->sp, "an aggregate can't contain another aggregate");
        return ty(TY_ERROR);
    }
    if ((n->fn == FN_min || n->fn == FN_max) && n->nargs > 1) {
        diag_error(C, n->sp, "%s() with a window takes one argument", f->name);
        return ty(TY_ERROR);
    }
    if (!check_arity(C, n))
        return ty(TY_ERROR);
    if (n->win == WIN_HISTORY && (n->fn == FN_distinct || n->fn == FN_seen)) {
        diag_error(C, n->sp2,
                   "'over history' works with count, sum, avg, min and max (their state has a "
                   "fixed size); give %s() a duration, like 'over 30d'",
                   f->name);
        return ty(TY_ERROR);
    }
    scope in = *sc;
    in.in_agg = true;
    in.allow &= ~(unsigned)ALLOW_PREV;
    type t;
    switch (n->fn) {
    case FN_count:
        if (n->nargs == 0)
            return ty(TY_NUMBER);
        t = check_arg(C, &in, n, 0, B(TY_BOOL), "a true/false condition");
        return t.t == TY_ERROR ? t : ty(TY_NUMBER);
    case FN_sum:
    case FN_avg:
        t = check_arg(C, &in, n, 0, B(TY_NUMBER), "a number");
        if (t.t == TY_ERROR)
            return t;
        t.t = TY_NUMBER;
        return t;
    case FN_min:
    case FN_max:
        return check_arg(C, &in, n, 0, B(TY_NUMBER) | B(TY_TIME) | B(TY_DURATION),
                         "a number, a time or a duration");
    case FN_distinct:
        t = check_arg(C, &in, n, 0, B(TY_NUMBER) | B(TY_STRING) | B(TY_ENUM) | B(TY_BOOL),
                      "a string, a number, an enum or a bool");
        return t.t == TY_ERROR ? t : ty(TY_NUMBER);
    case FN_seen:
        t = check_arg(C, &in, n, 0, B(TY_NUMBER) | B(TY_STRING) | B(TY_ENUM) | B(TY_BOOL),
                      "a string, a number, an enum or a bool");
        return t.t == TY_ERROR ? t : ty(TY_BOOL);
    default: return ty(TY_ERROR);
    }
}

static type
check_call(cstate *C, const scope *sc, node *n)
{
    if (n->fn == FN_NONE) {
        diag_error(C, n->sp2, "unknown function '%.*s'", (int)n->namelen, n->name);
        const char *cands[FN_COUNT_];
        for (int i = 1; i < FN_COUNT_; i++)
            cands[i - 1] = vg_functions[i].name;
        const char *sug = diag_suggest(n->name, n->namelen, cands, FN_COUNT_ - 1);
        if (sug)
            diag_note(C, n->sp2, "did you mean '%s'?", sug);
        return ty(TY_ERROR);
    }
    if (n->bind != NULL) { /* a.attr("k") */
        int idx0;
        if (find_step(sc, n->bind, n->bindlen, &idx0) == NULL && sc->stream >= 0 &&
            vg_schema_field(C->schema, (vg_stream_id)sc->stream, n->bind, n->bindlen)) {
            diag_error(C, n->sp, "functions take the value as an argument: write %.*s(%.*s)",
                       (int)n->namelen, n->name, (int)n->bindlen, n->bind);
            return ty(TY_ERROR);
        }
        if (n->fn != FN_attr) {
            diag_error(C, n->sp2, "only attr() can be called on a step, like %.*s.attr(\"k\")",
                       (int)n->bindlen, n->bind);
            return ty(TY_ERROR);
        }
        int idx;
        const step *s = find_step(sc, n->bind, n->bindlen, &idx);
        if (s == NULL) {
            span bsp = {n->sp.file, n->sp.start, n->sp.start + n->bindlen};
            diag_error(C, bsp, "'%.*s' is not a step of this rule's pattern", (int)n->bindlen,
                       n->bind);
            return ty(TY_ERROR);
        }
        span bsp = {n->sp.file, n->sp.start, n->sp.start + n->bindlen};
        if (!step_in_view(C, sc, idx, n->bind, n->bindlen, bsp))
            return ty(TY_ERROR);
        if (s->qmin > 0 && !sc->in_binding && idx != sc->self_step) {
            diag_error(C, n->sp,
                       "'%.*s' is quantified and stands for several events; use "
                       "first(%.*s.attr(...))",
                       (int)n->bindlen, n->bind, (int)n->bindlen, n->bind);
            return ty(TY_ERROR);
        }
        n->step = (int16_t)idx;
        n->stream = s->stream;
        if (!check_arity(C, n))
            return ty(TY_ERROR);
        scope in = *sc;
        type t = check_arg(C, &in, n, 0, B(TY_STRING), "a string");
        return t.t == TY_ERROR ? t : ty(TY_STRING);
    }
    const fn_info *f = &vg_functions[n->fn];
    bool scalar_minmax = (n->fn == FN_min || n->fn == FN_max) && n->nargs >= 2;
    if (f->cls == FC_AGG && !scalar_minmax)
        return check_binding_agg(C, sc, n);
    if (!check_arity(C, n))
        return ty(TY_ERROR);
    type t, u;
    switch (n->fn) {
    case FN_col: {
        node *a = n->args[0];
        if (!C->map_mode) {
            diag_error(C, n->sp, "col() reads a CSV column: it works in map files only");
            return ty(TY_ERROR);
        }
        if (a->kind != N_STRING) {
            diag_error(C, a->sp, "col() takes a column name in quotes, like col(\"merch long\")");
            return ty(TY_ERROR);
        }
        for (uint32_t i = 0; i < C->ncolumns; i++) {
            if (strlen(C->columns[i]) == a->v.s.len &&
                memcmp(C->columns[i], a->v.s.str, a->v.s.len) == 0) {
                n->col = (int32_t)i;
                type text = ty(TY_STRING);
                text.text = true;
                return text;
            }
        }
        diag_error(C, a->sp, "the CSV header has no column \"%.*s\"", (int)a->v.s.len, a->v.s.str);
        const char *sug = diag_suggest(a->v.s.str, a->v.s.len, C->columns, C->ncolumns);
        if (sug)
            diag_note(C, a->sp, "did you mean \"%s\"?", sug);
        return ty(TY_ERROR);
    }
    case FN_abs:
        return check_arg(C, sc, n, 0, B(TY_NUMBER) | B(TY_DURATION), "a number or a duration");
    case FN_min:
    case FN_max: {
        type first = ty(TY_ERROR);
        bool ok = true;
        for (uint32_t i = 0; i < n->nargs; i++) {
            t = check_arg(C, sc, n, i, B(TY_NUMBER) | B(TY_TIME) | B(TY_DURATION),
                          "a number, a time or a duration");
            if (t.t == TY_ERROR) {
                ok = false;
            } else if (first.t == TY_ERROR) {
                first = t;
            } else if (t.t != first.t) {
                char b1[64], b2[64];
                diag_error(C, n->args[i]->sp,
                           "%s() compares values of one type; this is %s, "
                           "the first is %s",
                           f->name, type_desc(t, b1, sizeof b1), type_desc(first, b2, sizeof b2));
                ok = false;
            } else {
                first.money = first.money || t.money;
            }
        }
        return ok ? first : ty(TY_ERROR);
    }
    case FN_lower:
    case FN_upper:
        t = check_arg(C, sc, n, 0, B(TY_STRING), "a string");
        return t.t == TY_ERROR ? t : ty(TY_STRING);
    case FN_len:
        t = check_arg(C, sc, n, 0, B(TY_STRING), "a string");
        return t.t == TY_ERROR ? t : ty(TY_NUMBER);
    case FN_contains:
    case FN_starts_with:
    case FN_ends_with:
        t = check_arg(C, sc, n, 0, B(TY_STRING), "a string");
        u = check_arg(C, sc, n, 1, B(TY_STRING), "a string");
        return t.t == TY_ERROR || u.t == TY_ERROR ? ty(TY_ERROR) : ty(TY_BOOL);
    case FN_attr:
        t = check_arg(C, sc, n, 0, B(TY_STRING), "a string");
        if (t.t == TY_ERROR)
            return t;
        if (sc->stream < 0) {
            diag_error(C, n->sp, "attr() reads the current event, and there is none here");
            return ty(TY_ERROR);
        }
        n->stream = (uint8_t)sc->stream;
        return ty(TY_STRING);
    case FN_num:
        t = check_arg(C, sc, n, 0, B(TY_STRING) | B(TY_NUMBER), "a string");
        return t.t == TY_ERROR ? t : ty(TY_NUMBER);
    case FN_geo_km: {
        bool ok = true;
        for (uint32_t i = 0; i < 4; i++)
            ok = check_arg(C, sc, n, i, B(TY_NUMBER), "a number (degrees)").t != TY_ERROR && ok;
        return ok ? ty(TY_NUMBER) : ty(TY_ERROR);
    }
    case FN_hours:
    case FN_minutes:
    case FN_seconds:
        t = check_arg(C, sc, n, 0, B(TY_DURATION), "a duration (like b.time - a.time)");
        return t.t == TY_ERROR ? t : ty(TY_NUMBER);
    case FN_hour_of_day:
    case FN_day_of_week:
        t = check_arg(C, sc, n, 0, B(TY_TIME), "a time");
        return t.t == TY_ERROR ? t : ty(TY_NUMBER);
    case FN_prev: {
        if (sc->in_agg) {
            diag_error(C, n->sp, "prev() can't be used inside an aggregate");
            return ty(TY_ERROR);
        }
        if (!(sc->allow & ALLOW_PREV)) {
            diag_error(C, n->sp,
                       "prev() is available only in a 'when' rule's 'when' and "
                       "'message'");
            return ty(TY_ERROR);
        }
        scope in = *sc;
        in.allow = 0;
        in.ctx = "prev()";
        t = check_value(C, &in, n->args[0]);
        if (t.t == TY_LIST || t.t == TY_REGEX)
            return want(C, n->args[0], "prev()", "a value");
        return t;
    }
    default: return ty(TY_ERROR);
    }
}

static type
check_expr_inner(cstate *C, const scope *sc, node *n)
{
    switch ((node_kind)n->kind) {
    case N_NUMBER: return ty(TY_NUMBER);
    case N_STRING: return ty(TY_STRING);
    case N_BOOL: return ty(TY_BOOL);
    case N_DURATION: return ty(TY_DURATION);
    case N_NAME: {
        int idx;
        if (C->map_mode) {
            for (uint32_t i = 0; i < C->ncolumns; i++) {
                if (strlen(C->columns[i]) == n->namelen &&
                    memcmp(C->columns[i], n->name, n->namelen) == 0) {
                    n->ref = REF_COLUMN;
                    n->col = (int32_t)i;
                    type t = ty(TY_STRING);
                    t.text = true;
                    return t;
                }
            }
            return ty(TY_NAME); /* an enum constant, or an unknown column */
        }
        if (find_step(sc, n->name, n->namelen, &idx) != NULL) {
            if (!step_in_view(C, sc, idx, n->name, n->namelen, n->sp))
                return ty(TY_ERROR);
            n->ref = REF_STEP;
            n->step = (int16_t)idx;
            return ty(TY_STEP);
        }
        if (sc->stream >= 0) {
            const vg_field *f =
                vg_schema_field(C->schema, (vg_stream_id)sc->stream, n->name, n->namelen);
            if (f != NULL) {
                resolve_field(C, n, sc->stream, n->name, n->namelen, n->sp);
                return n->ty;
            }
        }
        list_decl *l = find_list(C, n->name, n->namelen);
        if (l != NULL) {
            n->ref = REF_LIST;
            n->list = l;
            type t = ty(TY_LIST);
            t.elem = l->elem;
            return t;
        }
        return ty(TY_NAME);
    }
    case N_STREAM:
        if (sc->stream < 0) {
            diag_error(C, n->sp, "there is no current event here");
            return ty(TY_ERROR);
        }
        if (n->stream != sc->stream) {
            diag_error(C, n->sp, "'%s.%.*s' reads %s, but this %s reads %s",
                       vg_stream_name((vg_stream_id)n->stream), (int)n->namelen, n->name,
                       vg_stream_name((vg_stream_id)n->stream),
                       sc->self_step >= 0 ? "step" : "rule",
                       vg_stream_name((vg_stream_id)sc->stream));
            if (sc->r != NULL && sc->r->match == NULL)
                diag_note(C, n->sp, "a rule reads one stream: add 'on %s' to read %s",
                          vg_stream_name((vg_stream_id)n->stream),
                          vg_stream_name((vg_stream_id)n->stream));
            return ty(TY_ERROR);
        }
        resolve_field(C, n, sc->stream, n->name, n->namelen, n->sp2);
        return n->ty;
    case N_MEMBER: {
        int idx;
        const step *s = find_step(sc, n->bind, n->bindlen, &idx);
        span bsp = {n->sp.file, n->sp.start, n->sp.start + n->bindlen};
        if (s == NULL) {
            if (sc->r && sc->r->match) {
                diag_error(C, bsp, "'%.*s' is not a step of this rule's pattern", (int)n->bindlen,
                           n->bind);
                const char *cands[64];
                size_t k = 0;
                for (uint32_t i = 0; i < sc->r->match->nsteps && k < 64; i++)
                    if (!sc->r->match->steps[i].neg)
                        cands[k++] = sc->r->match->steps[i].name;
                const char *sug = diag_suggest(n->bind, n->bindlen, cands, k);
                if (sug)
                    diag_note(C, bsp, "did you mean '%s'?", sug);
            } else {
                diag_error(C, bsp,
                           "'%.*s.%.*s': only the steps of a 'match' pattern have fields; "
                           "write the field alone",
                           (int)n->bindlen, n->bind, (int)n->namelen, n->name);
            }
            return ty(TY_ERROR);
        }
        if (!step_in_view(C, sc, idx, n->bind, n->bindlen, bsp))
            return ty(TY_ERROR);
        if (!resolve_field(C, n, s->stream, n->name, n->namelen, n->sp2))
            return ty(TY_ERROR);
        n->step = (int16_t)idx;
        if (s->qmin > 0 && !sc->in_binding && idx != sc->self_step) {
            diag_error(C, n->sp,
                       "step '%.*s' is quantified and stands for several events; use an "
                       "aggregate such as sum(%.*s), max(%.*s) or first(%.*s)",
                       (int)n->bindlen, n->bind, (int)(n->sp.end - n->sp.start),
                       C->files[n->sp.file].text + n->sp.start, (int)(n->sp.end - n->sp.start),
                       C->files[n->sp.file].text + n->sp.start, (int)(n->sp.end - n->sp.start),
                       C->files[n->sp.file].text + n->sp.start);
            return ty(TY_ERROR);
        }
        return n->ty;
    }
    case N_CALL: return check_call(C, sc, n);
    case N_AGG: return check_window_agg(C, sc, n);
    case N_NEG: {
        type a = check_value(C, sc, n->a);
        if (a.t == TY_ERROR)
            return a;
        if (is_text(a) && convert_text(C, &n->a, TY_NUMBER, NULL))
            a = n->a->ty;
        if (a.t != TY_NUMBER && a.t != TY_DURATION)
            return want(C, n->a, "'-'", "a number or a duration");
        return a;
    }
    case N_NOT: {
        type a = check_value(C, sc, n->a);
        if (a.t == TY_ERROR)
            return a;
        if (a.t != TY_BOOL)
            return want(C, n->a, "'not'", "a true/false condition");
        return a;
    }
    case N_BINARY:
        if (is_cmp_op(n->op))
            return check_compare(C, sc, n);
        return check_arith(C, sc, n);
    case N_LOGIC: return check_logic(C, sc, n);
    case N_IN: return check_in(C, sc, n);
    case N_REGEX: return check_regex(C, sc, n);
    case N_LIST:
        diag_error(C, n->sp, "a [list] can only follow 'in' or 'not in'");
        return ty(TY_ERROR);
    case N_CONV: return n->ty; /* made by the checker itself, already typed */
    }
    return ty(TY_ERROR);
}

static type
check_expr(cstate *C, const scope *sc, node *n)
{
    n->ty = check_expr_inner(C, sc, n);
    return n->ty;
}

/* A clause's condition: bool (or an error already reported). */
static void
check_cond(cstate *C, const scope *sc, node *n)
{
    type t = check_value(C, sc, n);
    if (t.t != TY_ERROR && t.t != TY_BOOL) {
        char buf[64];
        diag_error(C, n->sp, "'%s' needs a true/false condition, but this is %s", sc->ctx,
                   type_desc(t, buf, sizeof buf));
    }
}

static void
check_key(cstate *C, const scope *sc, node *n)
{
    type t = check_value(C, sc, n);
    if (t.t != TY_ERROR && t.t != TY_STRING && t.t != TY_NUMBER && t.t != TY_ENUM) {
        char buf[64];
        diag_error(C, n->sp, "a %s must be a string, a number or an enum, but this is %s", sc->ctx,
                   type_desc(t, buf, sizeof buf));
    }
}

static void
check_message(cstate *C, const scope *sc, tmpl *m)
{
    for (uint32_t i = 0; i < m->nparts; i++) {
        node *e = m->parts[i].expr;
        if (e == NULL)
            continue;
        type t = check_value(C, sc, e);
        if (t.t == TY_LIST || t.t == TY_REGEX) {
            char buf[64];
            diag_error(C, e->sp, "a message shows values, but this is %s",
                       type_desc(t, buf, sizeof buf));
        }
    }
}

/* ---- Copies for per-step checking ------------------------------------------- */

static node *
clone(cstate *C, node *n)
{
    if (n == NULL)
        return NULL;
    node *c = cstate_alloc(C, sizeof(node));
    if (c == NULL)
        return NULL;
    if (n->kind == N_REGEX && !n->rx_done) {
        /* compile the original once; every copy shares its code (and a bad
         * regex is reported once, not once per step) */
        n->rx_done = true;
        compile_regex(C, n);
    }
    *c = *n;
    c->a = clone(C, n->a);
    c->b = clone(C, n->b);
    if (n->nargs > 0) {
        c->args = cstate_alloc(C, n->nargs * sizeof(node *));
        if (c->args == NULL)
            return NULL;
        for (uint32_t i = 0; i < n->nargs; i++)
            c->args[i] = clone(C, n->args[i]);
    }
    return c;
}

/* ---- Rules ---------------------------------------------------------------------- */

static void
check_default_key(cstate *C, rule *r, int stream, span where)
{
    if (vg_schema_field(C->schema, (vg_stream_id)stream, "account_id", 10) == NULL)
        diag_error(C, where, "no 'key' is given and %s has no 'account_id' field to default to",
                   vg_stream_name((vg_stream_id)stream));
    (void)r;
}

static void
check_when_rule(cstate *C, rule *r)
{
    scope sc = {.r = r, .stream = r->on, .self_step = -1};
    if (r->failed[CL_ON])
        return; /* which stream the names belong to is unknown */
    if (r->key && !r->failed[CL_KEY]) {
        sc.ctx = "key";
        check_key(C, &sc, r->key);
    } else if (!r->failed[CL_KEY]) {
        check_default_key(C, r, r->on, r->name_sp);
    }
    if (r->where && !r->failed[CL_WHERE]) {
        sc.ctx = "where";
        check_cond(C, &sc, r->where);
    }
    sc.allow = ALLOW_WINDOW | ALLOW_PREV;
    if (r->when && !r->failed[CL_WHEN]) {
        sc.ctx = "when";
        check_cond(C, &sc, r->when);
    }
    if (r->message && !r->failed[CL_MESSAGE]) {
        sc.ctx = "message";
        check_message(C, &sc, r->message);
    }
}

static void
check_pattern_shape(cstate *C, rule *r)
{
    pattern *p = r->match;
    int last_pos = -1;
    for (uint32_t i = 0; i < p->nsteps; i++)
        if (!p->steps[i].neg)
            last_pos = (int)i;
    if (last_pos < 0) {
        diag_error(C, p->sp,
                   "a pattern needs at least one named step (like 'a: txn ...'); 'not' steps "
                   "only say what must not happen");
        return;
    }
    for (uint32_t i = 0; i < p->nsteps; i++) {
        step *s = &p->steps[i];
        if (s->neg)
            continue;
        for (uint32_t j = 0; j < i; j++) {
            step *o = &p->steps[j];
            if (!o->neg && o->namelen == s->namelen && memcmp(o->name, s->name, s->namelen) == 0) {
                diag_error(C, s->name_sp, "step name '%s' is used twice in this pattern", s->name);
                diag_note(C, o->name_sp, "first used here");
                break;
            }
        }
        for (int st = 0; st < VG_NSTREAMS; st++) {
            if (vg_schema_field(C->schema, (vg_stream_id)st, s->name, s->namelen)) {
                diag_error(C, s->name_sp,
                           "step name '%s' is also a field of %s; choose another (like a, t1, "
                           "big)",
                           s->name, vg_stream_name((vg_stream_id)st));
                break;
            }
        }
        const vg_enum *shadowed = NULL;
        for (int st = 0; st < VG_NSTREAMS && shadowed == NULL; st++) {
            for (size_t k = 0; k < vg_schema_nfields(C->schema, (vg_stream_id)st); k++) {
                const vg_field *f = vg_schema_field_at(C->schema, (vg_stream_id)st, k);
                int v;
                if (f->type == VG_FT_ENUM &&
                    vg_enum_lookup(f->enum_type, s->name, s->namelen, &v)) {
                    shadowed = f->enum_type;
                    break;
                }
            }
        }
        if (shadowed != NULL)
            diag_error(C, s->name_sp, "step name '%s' is also a %s value; choose another", s->name,
                       vg_enum_name(shadowed));
        if (s->qmin == 0)
            continue;
        if ((int)i == last_pos) {
            diag_error(C, s->quant_sp,
                       "the last named step can't have a quantifier: a match ends on one event");
        } else if ((i > 0 && p->steps[i - 1].neg) || (i + 1 < p->nsteps && p->steps[i + 1].neg)) {
            diag_error(C, s->quant_sp, "a quantified step can't be next to a 'not' step");
        } else if (i + 1 < p->nsteps && p->steps[i + 1].qmin > 0) {
            diag_error(C, p->steps[i + 1].quant_sp,
                       "two quantified steps can't be next to each other");
        }
    }
}

static void
check_match_rule(cstate *C, rule *r)
{
    pattern *p = r->match;
    if (r->has[CL_ON])
        diag_error(C, r->clause_sp[CL_ON],
                   "'on' is for 'when' rules; each step of a pattern names its stream");
    unsigned before = C->nerrors;
    check_pattern_shape(C, r);
    if (C->nerrors != before)
        return; /* names and shape are what everything below relies on */
    int last_pos = 0;
    for (uint32_t i = 0; i < p->nsteps; i++) {
        step *s = &p->steps[i];
        if (!s->neg)
            last_pos = (int)i;
        scope sc = {.r = r, .stream = s->stream, .self_step = (int)i, .visible = 0};
        if (s->by) {
            sc.ctx = "step's 'by' key";
            check_key(C, &sc, s->by);
        } else if (r->failed[CL_KEY]) {
            ;
        } else if (r->key) {
            sc.ctx = "key";
            unsigned e = C->nerrors;
            s->rule_key = clone(C, r->key);
            if (s->rule_key)
                check_key(C, &sc, s->rule_key);
            if (C->nerrors != e)
                diag_note(C, s->stream_sp,
                          "the rule's 'key' applies to every step without 'by'; "
                          "this step reads %s",
                          vg_stream_name((vg_stream_id)s->stream));
        } else {
            check_default_key(C, r, s->stream, s->stream_sp);
        }
        if (r->where && !r->failed[CL_WHERE]) {
            sc.ctx = "where";
            unsigned e = C->nerrors;
            s->rule_where = clone(C, r->where);
            if (s->rule_where)
                check_cond(C, &sc, s->rule_where);
            if (C->nerrors != e)
                diag_note(C, s->stream_sp,
                          "the rule's 'where' applies to every step; this step reads %s",
                          vg_stream_name((vg_stream_id)s->stream));
        }
        if (s->where) {
            sc.visible = i; /* earlier steps; check_expr skips `not` steps by name */
            sc.allow = ALLOW_BINDING;
            sc.ctx = "where";
            check_cond(C, &sc, s->where);
        }
    }
    if (r->message && !r->failed[CL_MESSAGE]) {
        scope sc = {.r = r,
                    .stream = p->steps[last_pos].stream,
                    .self_step = -1,
                    .visible = p->nsteps,
                    .allow = ALLOW_BINDING,
                    .ctx = "message"};
        check_message(C, &sc, r->message);
    }
}

/* ---- Lists ----------------------------------------------------------------------- */

/* The folder part of path, with its trailing '/', or "" (a static-length copy). */
static void
dir_of(const char *path, char *out, size_t size)
{
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) + 1 : 0;
    if (n >= size)
        n = size - 1;
    memcpy(out, path, n);
    out[n] = '\0';
}

static void
load_list_file(cstate *C, list_decl *l)
{
    if (C->opts.no_list_files) {
        diag_error(C, l->path_sp, "list files are not allowed here");
        l->bad = true;
        return;
    }
    char full[4096];
    if (l->path[0] == '/') {
        snprintf(full, sizeof full, "%s", l->path);
    } else {
        char dir[2048];
        dir_of(C->files[l->sp.file].name, dir, sizeof dir);
        snprintf(full, sizeof full, "%s%s", dir, l->path);
    }
    vg_buf b = {0};
    vg_err err = vg_read_file(full, &b);
    if (err == VG_OK && b.len > VG_MAX_FILE)
        err = VG_ELIMIT;
    if (err == VG_ENOMEM) { /* not the rule author's error */
        C->oom = true;
        l->bad = true;
        return;
    }
    if (err) {
        diag_error(C, l->path_sp, "can't read list file '%s': %s", l->path,
                   err == VG_ENOENT   ? "no such file"
                   : err == VG_ELIMIT ? "larger than 64 MiB"
                   : err == VG_EIO    ? strerror(errno)
                                      : vg_strerror(err));
        if (strcmp(full, l->path) != 0)
            diag_note(C, l->path_sp,
                      "looked for '%s' (paths are relative to the rule file's "
                      "folder)",
                      full);
        vg_buf_free(&b);
        l->bad = true;
        return;
    }
    int f = cstate_add_file(C, full, b.data, b.len, true);
    vg_buf_free(&b);
    if (f < 0) {
        l->bad = true;
        return;
    }
    srcfile *sf = &C->files[f];
    /* one value per line; '#' at the start of a line or after white space
     * begins a comment; surrounding white space is trimmed */
    uint32_t n = 0;
    for (uint32_t i = 0; i < sf->len; i++)
        n += sf->text[i] == '\n';
    l->values = cstate_alloc(C, (n + 1) * sizeof(char *));
    l->value_lens = cstate_alloc(C, (n + 1) * sizeof(uint32_t));
    l->value_offs = cstate_alloc(C, (n + 1) * sizeof(uint32_t));
    l->vfile = (uint32_t)f;
    if (l->values == NULL || l->value_lens == NULL || l->value_offs == NULL)
        return;
    unsigned before = C->nerrors;
    uint32_t pos = 0;
    while (pos < sf->len && !diag_stopped(C, (uint32_t)f)) {
        uint32_t end = pos;
        while (end < sf->len && sf->text[end] != '\n')
            end++;
        uint32_t s = pos, e = end;
        for (uint32_t i = s; i < e; i++) {
            if (sf->text[i] == '#' &&
                (i == s || sf->text[i - 1] == ' ' || sf->text[i - 1] == '\t')) {
                e = i;
                break;
            }
        }
        while (s < e && (sf->text[s] == ' ' || sf->text[s] == '\t'))
            s++;
        while (e > s &&
               (sf->text[e - 1] == ' ' || sf->text[e - 1] == '\t' || sf->text[e - 1] == '\r'))
            e--;
        for (uint32_t i = s; i < e;) {
            uint32_t cp;
            size_t k = vg_utf8_decode((const unsigned char *)sf->text + i, e - i, &cp);
            if (k == 0 || cp == 0) {
                span sp = {(uint32_t)f, i, i + 1};
                diag_error(C, sp,
                           k == 0 ? "invalid UTF-8 in a list value"
                                  : "NUL byte in a list "
                                    "value");
                k = 1;
            }
            i += (uint32_t)k;
        }
        if (e > s) {
            l->values[l->nvalues] = sf->text + s;
            l->value_offs[l->nvalues] = s;
            l->value_lens[l->nvalues++] = e - s;
        }
        pos = end + 1;
    }
    l->elem = l->nvalues > 0 ? TY_STRING : TY_ERROR;
    if (C->nerrors != before)
        l->bad = true;
}

static void
check_list(cstate *C, list_decl *l)
{
    if (l->bad)
        return;
    if (l->from_file) {
        load_list_file(C, l);
        return;
    }
    scope sc = {.stream = -1, .self_step = -1, .ctx = "list"};
    type first = ty(TY_ERROR);
    for (uint32_t i = 0; i < l->nitems; i++) {
        /* bare names are enum constants; which enum, the use decides */
        type t =
            l->items[i]->kind == N_NAME ? ty(TY_NAME) : check_list_item(C, &sc, l->items[i], NULL);
        l->items[i]->ty = t;
        if (t.t == TY_ERROR) {
            l->bad = true;
            continue;
        }
        if (first.t == TY_ERROR) {
            first = t;
        } else if (t.t != first.t) {
            char b1[64], b2[64];
            diag_error(C, l->items[i]->sp,
                       "a list holds values of one type; this is %s, the first is %s",
                       type_desc(t, b1, sizeof b1), type_desc(first, b2, sizeof b2));
            l->bad = true;
        }
    }
    l->elem = first.t;
}

static uint32_t
name_hash(const char *s, uint32_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (uint32_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* Reports rules defined twice, with a hash set: rule sets can be large. */
static void
check_rule_names(cstate *C)
{
    uint32_t cap = 16;
    while (cap < C->nrules * 2)
        cap *= 2;
    rule **set = calloc(cap, sizeof(rule *));
    if (set == NULL) {
        C->oom = true;
        return;
    }
    for (uint32_t i = 0; i < C->nrules; i++) {
        rule *r = C->rules[i];
        uint32_t h = name_hash(r->name, r->namelen) & (cap - 1);
        while (set[h] != NULL) {
            rule *o = set[h];
            if (o->namelen == r->namelen && memcmp(o->name, r->name, r->namelen) == 0) {
                diag_error(C, r->name_sp,
                           "rule '%s' is defined twice (rule names are unique "
                           "across the rule set)",
                           r->name);
                diag_note(C, o->name_sp, "first defined here");
                break;
            }
            h = (h + 1) & (cap - 1);
        }
        if (set[h] == NULL)
            set[h] = r;
    }
    free(set);
}

void
check_all(cstate *C)
{
    index_lists(C);
    for (uint32_t i = 0; i < C->nlists && !C->oom; i++)
        check_list(C, C->lists[i]);
    check_rule_names(C);
    for (uint32_t i = 0; i < C->nrules && !C->oom; i++) {
        rule *r = C->rules[i];
        if (r->bad || diag_stopped(C, r->file))
            continue;
        if (r->match && !r->failed[CL_MATCH])
            check_match_rule(C, r);
        else if (!r->has[CL_MATCH])
            check_when_rule(C, r);
        /* a pattern that did not parse: its step names are unknown, so the
         * clauses that could use them are left alone */
    }
}

/* ---- Map files ------------------------------------------------------------ */

/* Is an expression of type t something field f can take? Column text always
 * is (the reader converts it); a duration makes a time (from the epoch).
 * 1: it fits; 0: it does not; -1: it does not, and that was reported. */
static int
map_fits(cstate *C, map_assign *a, const vg_field *f, type t)
{
    if (is_text(t))
        return 1;
    switch (f->type) {
    case VG_FT_STRING: return t.t == TY_STRING;
    case VG_FT_NUMBER: return t.t == TY_NUMBER;
    case VG_FT_BOOL: return t.t == TY_BOOL;
    case VG_FT_TIME: return t.t == TY_TIME || t.t == TY_DURATION;
    case VG_FT_ENUM:
        if (t.t == TY_NAME)
            return resolve_enum(C, a->expr, f->enum_type) ? 1 : -1;
        if (t.t == TY_STRING && a->expr->kind == N_STRING) {
            if (!enum_has_name(C, f->enum_type, a->expr->v.s.str, a->expr->v.s.len, a->expr->sp,
                               "the map sets"))
                return -1;
            /* a quoted name: from here on it is that enum value */
            int v = 0;
            vg_enum_lookup(f->enum_type, a->expr->v.s.str, a->expr->v.s.len, &v);
            a->expr->kind = N_NAME;
            a->expr->ref = REF_ENUM;
            a->expr->enum_value = v;
            a->expr->ty = ty(TY_ENUM);
            a->expr->ty.en = f->enum_type;
            return 1;
        }
        return t.t == TY_ENUM && t.en == f->enum_type;
    case VG_FT_MAP: return 0;
    }
    return 0;
}

void
check_map(cstate *C)
{
    static const char *const what[] = {"",
                                       "a number",
                                       "a string",
                                       "true or false",
                                       "a time (or a duration from the epoch, like secs * 1s)",
                                       "a value name",
                                       ""};
    for (uint32_t i = 0; i < C->nassigns && !C->oom; i++) {
        map_assign *a = &C->assigns[i];
        const vg_field *any = NULL;
        for (int s = 0; s < VG_NSTREAMS; s++) {
            a->field[s] = vg_schema_field(C->schema, (vg_stream_id)s, a->name, a->namelen);
            if (a->field[s] != NULL && any == NULL)
                any = a->field[s];
        }
        if (any == NULL) {
            diag_error(C, a->name_sp, "'%.*s' is not an event field", (int)a->namelen, a->name);
            const char *sug = suggest_field(C, VG_STREAM_TXN, a->name, a->namelen);
            if (sug == NULL)
                sug = suggest_field(C, VG_STREAM_EVENT, a->name, a->namelen);
            if (sug)
                diag_note(C, a->name_sp, "did you mean '%s'?", sug);
            continue;
        }
        if (any->type == VG_FT_MAP) {
            diag_error(C, a->name_sp,
                       "a map can't set '%s'; its columns that are not fields are "
                       "ignored",
                       any->name);
            continue;
        }
        for (uint32_t j = 0; j < i; j++) {
            if (C->assigns[j].namelen == a->namelen &&
                memcmp(C->assigns[j].name, a->name, a->namelen) == 0) {
                diag_error(C, a->name_sp, "'%.*s' is set twice", (int)a->namelen, a->name);
                diag_note(C, C->assigns[j].name_sp, "first set here");
                break;
            }
        }
        scope sc = {.stream = -1, .self_step = -1, .ctx = "map"};
        type t = check_expr(C, &sc, a->expr);
        if (t.t == TY_NAME && any->type != VG_FT_ENUM)
            t = settle(C, &sc, a->expr);
        if (t.t == TY_ERROR)
            continue;
        for (int s = 0; s < VG_NSTREAMS; s++) {
            const vg_field *f = a->field[s];
            if (f == NULL)
                continue;
            int fits = map_fits(C, a, f, t);
            if (fits <= 0) {
                if (fits == 0) {
                    char buf[64];
                    diag_error(C, a->expr->sp, "'%s' takes %s, but this is %s", f->name,
                               what[f->type], type_desc(t, buf, sizeof buf));
                }
                break;
            }
        }
    }
}
