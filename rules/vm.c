/*
 * vm.c - the bytecode interpreter (last stage of the pipeline): a stack
 * machine over vg_value. Every opcode is documented at its case.
 *
 * Missing values follow SQL: arithmetic on a missing value is missing, a
 * comparison touching one is unknown (a missing bool), and/or/not combine
 * unknowns as SQL does. Division by zero is missing; a regex match that hits
 * its match limit is missing (and counted).
 *
 * No allocation per evaluation: the stack is sized at vg_vm_new() from the
 * deepest program, and strings built while evaluating (lower, upper, +) go to
 * a scratch region that is reset at each vg_vm_eval() and only grows when a
 * longer string than ever before is built.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <math.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "rulesInt.h"
#include "vg_text.h"

/* Scratch chunks never move, so a string made earlier in an evaluation stays
 * valid while later ones are built. */
typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    char data[];
} chunk;

struct vg_vm {
    const vg_ruleset *rs;
    vg_value *stack;
    uint32_t depth; /* stack capacity */
    chunk *scratch; /* newest first */
    pcre2_match_data **md;
    uint32_t nmd;
    uint64_t limit_hits;
    /* the last failed column conversion (map files) */
    bool conv_failed;
    vg_value conv_text;
    uint8_t conv_kind;
};

bool
vg_vm_conv_failed(const vg_vm *vm, const char **text, uint32_t *len, uint8_t *kind)
{
    if (!vm->conv_failed)
        return false;
    *text = vm->conv_text.u.s;
    *len = vm->conv_text.len;
    *kind = vm->conv_kind;
    return true;
}

vg_err
vg_vm_new(const vg_ruleset *rs, vg_vm **out)
{
    vg_vm *vm = calloc(1, sizeof *vm);
    if (vm == NULL)
        return VG_ENOMEM;
    vm->rs = rs;
    vm->depth = rs->max_stack + 1;
    vm->stack = calloc(vm->depth, sizeof(vg_value));
    vm->scratch = malloc(sizeof(chunk) + 4096);
    if (vm->scratch != NULL) { /* before any goto fail: vg_vm_free() walks the chain */
        vm->scratch->next = NULL;
        vm->scratch->used = 0;
        vm->scratch->cap = 4096;
    }
    vm->nmd = rs->C.nregexes;
    vm->md = calloc(vm->nmd ? vm->nmd : 1, sizeof(pcre2_match_data *));
    if (vm->stack == NULL || vm->scratch == NULL || vm->md == NULL)
        goto fail;
    for (uint32_t i = 0; i < vm->nmd; i++) {
        vm->md[i] = pcre2_match_data_create_from_pattern(rs->C.regexes[i], NULL);
        if (vm->md[i] == NULL)
            goto fail;
    }
    *out = vm;
    return VG_OK;
fail:
    vg_vm_free(vm);
    return VG_ENOMEM;
}

void
vg_vm_free(vg_vm *vm)
{
    if (vm == NULL)
        return;
    for (uint32_t i = 0; i < vm->nmd && vm->md; i++)
        pcre2_match_data_free(vm->md[i]);
    free(vm->md);
    chunk *c = vm->scratch;
    while (c != NULL) {
        chunk *next = c->next;
        free(c);
        c = next;
    }
    free(vm->stack);
    free(vm);
}

uint64_t
vg_vm_regex_limit_hits(const vg_vm *vm)
{
    return vm->limit_hits;
}

/* Forgets the strings of the last evaluation; after a busy one with several
 * chunks, keeps one chunk as large as all of them. */
static void
scratch_reset(vg_vm *vm)
{
    chunk *c = vm->scratch;
    if (c->next != NULL) {
        size_t total = 0;
        for (chunk *k = c; k != NULL; k = k->next)
            total += k->cap;
        chunk *big = malloc(sizeof(chunk) + total);
        if (big != NULL) {
            while (c != NULL) {
                chunk *next = c->next;
                free(c);
                c = next;
            }
            big->next = NULL;
            big->cap = total;
            vm->scratch = c = big;
        }
    }
    c->used = 0;
}

/* Room for n bytes of a string being built, or NULL when out of memory. */
static char *
scratch_alloc(vg_vm *vm, size_t n)
{
    chunk *c = vm->scratch;
    if (c->cap - c->used < n) {
        size_t cap = c->cap * 2 > n ? c->cap * 2 : n;
        chunk *k = malloc(sizeof(chunk) + cap);
        if (k == NULL)
            return NULL;
        k->next = c;
        k->used = 0;
        k->cap = cap;
        vm->scratch = c = k;
    }
    char *p = c->data + c->used;
    c->used += n;
    return p;
}

static const vg_value missing_value = {.kind = VG_V_MISSING};

static vg_value
num(double d, uint8_t kind)
{
    vg_value v = {.kind = kind};
    v.u.num = d;
    return v;
}

static vg_value
boolean(bool b)
{
    return num(b ? 1 : 0, VG_V_BOOL);
}

static vg_value
str(const char *s, uint32_t len)
{
    vg_value v = {.kind = VG_V_STR, .len = len};
    v.u.s = s;
    return v;
}

static bool
is_true(const vg_value *v)
{
    return v->kind == VG_V_BOOL && v->u.num != 0;
}

static bool
is_false(const vg_value *v)
{
    return v->kind == VG_V_BOOL && v->u.num == 0;
}

static int
str_cmp(const vg_value *a, const vg_value *b)
{
    uint32_t n = a->len < b->len ? a->len : b->len;
    int c = n ? memcmp(a->u.s, b->u.s, n) : 0;
    return c != 0 ? c : (a->len > b->len) - (a->len < b->len);
}

static bool
set_has(const vg_set *s, const vg_value *v)
{
    if (s->cap == 0)
        return false;
    uint64_t h = vg_value_hash(v);
    for (uint32_t i = (uint32_t)h & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (s->hashes[i] == 0)
            return false;
        if (s->hashes[i] != h)
            continue;
        const vg_value *w = &s->vals[i];
        if (v->kind == VG_V_STR ? (w->kind == VG_V_STR && str_cmp(v, w) == 0)
                                : w->u.num == v->u.num)
            return true;
    }
}

static vg_value
attr_value(const vg_event *ev, const vg_value *key)
{
    if (ev == NULL || key->kind != VG_V_STR)
        return missing_value;
    for (uint32_t i = 0; i < ev->nattrs; i++) {
        const vg_attr *a = &ev->attrs[i];
        if (a->klen == key->len && memcmp(a->key, key->u.s, key->len) == 0)
            return str(a->val, a->vlen);
    }
    return missing_value; /* an absent key is missing, not "" */
}

/* Code points in s[0..len); invalid bytes count one each. */
static double
utf8_len(const char *s, uint32_t len)
{
    double n = 0;
    for (uint32_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

static vg_value
case_map(vg_vm *vm, const vg_value *v, bool upper)
{
    char *p = scratch_alloc(vm, v->len ? v->len : 1);
    if (p == NULL)
        return missing_value;
    for (uint32_t i = 0; i < v->len; i++) {
        char c = v->u.s[i];
        if (upper && c >= 'a' && c <= 'z')
            c = (char)(c - 32);
        else if (!upper && c >= 'A' && c <= 'Z')
            c = (char)(c + 32);
        p[i] = c;
    }
    return str(p, v->len);
}

/* num("12.5"), num(" 1e3 "): a number, or missing if the text is not one. */
static vg_value
parse_num(vg_vm *vm, const vg_value *v)
{
    if (v->kind != VG_V_STR)
        return v->kind == VG_V_NUM ? *v : missing_value;
    if (v->len == 0 || v->len > 64)
        return missing_value;
    char *p = scratch_alloc(vm, v->len + 1);
    if (p == NULL)
        return missing_value;
    memcpy(p, v->u.s, v->len);
    p[v->len] = '\0';
    char *end;
    double d = strtod(p, &end);
    while (*end == ' ' || *end == '\t')
        end++;
    if (end == p || *end != '\0' || !isfinite(d))
        return missing_value;
    return num(d, VG_V_NUM);
}

static double
radians(double deg)
{
    return deg * (M_PI / 180.0);
}

/* Great-circle distance in km: haversine on a sphere of radius 6371.0 km. */
static double
geo_km(double lat1, double lon1, double lat2, double lon2)
{
    double dlat = radians(lat2 - lat1), dlon = radians(lon2 - lon1);
    double a = sin(dlat / 2) * sin(dlat / 2) +
               cos(radians(lat1)) * cos(radians(lat2)) * sin(dlon / 2) * sin(dlon / 2);
    return 2 * 6371.0 * asin(fmin(1.0, sqrt(a)));
}

static vg_value
call(vg_vm *vm, const vg_vm_ctx *ctx, int fn, vg_value *args, int argc)
{
    for (int i = 0; i < argc; i++)
        if (args[i].kind == VG_V_MISSING)
            return missing_value; /* every function is strict in its arguments */
    switch (fn) {
    case FN_abs: return num(fabs(args[0].u.num), args[0].kind);
    case FN_min:
    case FN_max: {
        vg_value best = args[0];
        for (int i = 1; i < argc; i++)
            if (fn == FN_min ? args[i].u.num < best.u.num : args[i].u.num > best.u.num)
                best = args[i];
        return best;
    }
    case FN_lower: return case_map(vm, &args[0], false);
    case FN_upper: return case_map(vm, &args[0], true);
    case FN_len: return num(utf8_len(args[0].u.s, args[0].len), VG_V_NUM);
    case FN_contains:
        if (args[1].len == 0)
            return boolean(true);
        return boolean(args[0].len >= args[1].len &&
                       memmem(args[0].u.s, args[0].len, args[1].u.s, args[1].len) != NULL);
    case FN_starts_with:
        return boolean(args[0].len >= args[1].len &&
                       memcmp(args[0].u.s, args[1].u.s, args[1].len) == 0);
    case FN_ends_with:
        return boolean(args[0].len >= args[1].len && memcmp(args[0].u.s + args[0].len - args[1].len,
                                                            args[1].u.s, args[1].len) == 0);
    case FN_attr: return attr_value(ctx->ev, &args[0]);
    case FN_num: return parse_num(vm, &args[0]);
    case FN_geo_km:
        return num(geo_km(args[0].u.num, args[1].u.num, args[2].u.num, args[3].u.num), VG_V_NUM);
    case FN_hours: return num(args[0].u.num / 3600000.0, VG_V_NUM);
    case FN_minutes: return num(args[0].u.num / 60000.0, VG_V_NUM);
    case FN_seconds: return num(args[0].u.num / 1000.0, VG_V_NUM);
    case FN_hour_of_day: {
        int64_t ms = (int64_t)args[0].u.num, day = 86400000;
        int64_t in_day = ((ms % day) + day) % day;
        return num((double)(in_day / 3600000), VG_V_NUM);
    }
    case FN_day_of_week: {
        /* ISO: 1 = Monday; 1970-01-01 was a Thursday (4) */
        int64_t ms = (int64_t)args[0].u.num, day = 86400000;
        int64_t days = ms >= 0 ? ms / day : -((-ms + day - 1) / day);
        int64_t dow = ((days + 3) % 7 + 7) % 7; /* 0 = Monday */
        return num((double)(dow + 1), VG_V_NUM);
    }
    default: return missing_value;
    }
}

static vg_value
convert(vg_vm *vm, const vg_value *v, uint8_t kind, uint32_t en)
{
    vg_value out = {.kind = kind};
    bool ok = false;
    switch (kind) {
    case VG_V_NUM: ok = vg_parse_number(v->u.s, v->len, &out.u.num); break;
    case VG_V_TIME: {
        int64_t ms;
        ok = vg_parse_time(v->u.s, v->len, &ms);
        out.u.num = (double)ms;
        break;
    }
    case VG_V_BOOL: {
        bool b;
        ok = vg_parse_bool(v->u.s, v->len, &b);
        out.u.num = b;
        break;
    }
    case VG_V_ENUM: {
        int e = 0;
        ok = en < vm->rs->nenums && vg_parse_enum(vm->rs->enums[en], v->u.s, v->len, &e);
        out.u.num = e;
        break;
    }
    default: break;
    }
    if (ok)
        return out;
    if (!vm->conv_failed) {
        vm->conv_failed = true;
        vm->conv_text = *v;
        vm->conv_kind = kind;
    }
    return missing_value;
}

static vg_value
regex_match(vg_vm *vm, uint32_t idx, const vg_value *v, bool negate)
{
    if (v->kind != VG_V_STR)
        return missing_value;
    int rc = pcre2_match(vm->rs->C.regexes[idx], (PCRE2_SPTR)v->u.s, v->len, 0, 0, vm->md[idx],
                         vm->rs->match_ctx);
    if (rc >= 0)
        return boolean(!negate);
    if (rc == PCRE2_ERROR_NOMATCH)
        return boolean(negate);
    vm->limit_hits++; /* match, depth or heap limit: the answer is unknown */
    return missing_value;
}

vg_value
vg_vm_eval(vg_vm *vm, const vg_prog *p, const vg_vm_ctx *ctx)
{
    if (p->n == 0)
        return boolean(true);
    scratch_reset(vm);
    vm->conv_failed = false;
    vg_value *sp = vm->stack; /* next free slot */
    const vg_value *consts = vm->rs->consts;
    const vg_insn *code = p->code;
    for (uint32_t pc = 0;; pc++) {
        const vg_insn *in = &code[pc];
        switch (in->op) {
        case OP_CONST: /* push constant c */ *sp++ = consts[in->c]; break;
        case OP_FIELD: /* push field (slot c) of the current event */
            *sp++ = ctx->ev->v[in->c];
            break;
        case OP_COL: /* map files: push CSV cell c (a string, or missing when empty) */
            *sp++ = ctx->cols ? ctx->cols[in->c] : missing_value;
            break;
        case OP_CONV: /* map files: read the top (column text) as kind a; on failure
                         it is missing and vg_vm_conv_failed() says why */
            if (sp[-1].kind == VG_V_STR)
                sp[-1] = convert(vm, &sp[-1], in->a, in->c);
            break;
        case OP_STEPFIELD: /* push field c of pattern step b's event */
            *sp++ = ctx->steps && ctx->steps[in->b] ? ctx->steps[in->b]->v[in->c] : missing_value;
            break;
        case OP_ATTR: /* pop a key; push the current event's attribute, or missing */
            sp[-1] = attr_value(ctx->ev, &sp[-1]);
            break;
        case OP_STEPATTR: /* the same on pattern step b's event */
            sp[-1] = attr_value(ctx->steps ? ctx->steps[in->b] : NULL, &sp[-1]);
            break;
        case OP_AGG: /* push the value of the rule's aggregate c */
            *sp++ = ctx->aggs ? ctx->aggs[in->c] : missing_value;
            break;
        case OP_PREV: /* push prev() value c: the key's previous event's */
            *sp++ = ctx->prevs ? ctx->prevs[in->c] : missing_value;
            break;
        case OP_NEG: /* negate a number or duration */
            if (sp[-1].kind != VG_V_MISSING)
                sp[-1].u.num = -sp[-1].u.num;
            break;
        case OP_ADD: /* a + b; the result has kind a (NUM, TIME or DUR) */
        case OP_SUB:
        case OP_MUL:
        case OP_DIV: /* by zero: missing */
        case OP_MOD: {
            vg_value *l = &sp[-2], *r = &sp[-1];
            sp--;
            if (l->kind == VG_V_MISSING || r->kind == VG_V_MISSING) {
                *l = missing_value;
                break;
            }
            double x = l->u.num, y = r->u.num, z;
            switch (in->op) {
            case OP_ADD: z = x + y; break;
            case OP_SUB: z = x - y; break;
            case OP_MUL: z = x * y; break;
            case OP_DIV: z = y == 0 ? NAN : x / y; break;
            default: z = y == 0 ? NAN : fmod(x, y); break;
            }
            *l = isnan(z) ? missing_value : num(z, in->a);
            break;
        }
        case OP_CONCAT: { /* join two strings */
            vg_value *l = &sp[-2], *r = &sp[-1];
            sp--;
            if (l->kind != VG_V_STR || r->kind != VG_V_STR) {
                *l = missing_value;
                break;
            }
            char *buf = scratch_alloc(vm, (size_t)l->len + r->len + 1);
            if (buf == NULL) {
                *l = missing_value;
                break;
            }
            memcpy(buf, l->u.s, l->len);
            memcpy(buf + l->len, r->u.s, r->len);
            *l = str(buf, l->len + r->len);
            break;
        }
        case OP_EQ: /* compare numbers (and times, durations, enums, bools) */
        case OP_NE:
        case OP_LT:
        case OP_LE:
        case OP_GT:
        case OP_GE: {
            vg_value *l = &sp[-2], *r = &sp[-1];
            sp--;
            if (l->kind == VG_V_MISSING || r->kind == VG_V_MISSING) {
                *l = missing_value;
                break;
            }
            double x = l->u.num, y = r->u.num;
            bool b = in->op == OP_EQ   ? x == y
                     : in->op == OP_NE ? x != y
                     : in->op == OP_LT ? x < y
                     : in->op == OP_LE ? x <= y
                     : in->op == OP_GT ? x > y
                                       : x >= y;
            *l = boolean(b);
            break;
        }
        case OP_SEQ: /* compare strings by their bytes */
        case OP_SNE:
        case OP_SLT:
        case OP_SLE:
        case OP_SGT:
        case OP_SGE: {
            vg_value *l = &sp[-2], *r = &sp[-1];
            sp--;
            if (l->kind != VG_V_STR || r->kind != VG_V_STR) {
                *l = missing_value;
                break;
            }
            int c = str_cmp(l, r);
            bool b = in->op == OP_SEQ   ? c == 0
                     : in->op == OP_SNE ? c != 0
                     : in->op == OP_SLT ? c < 0
                     : in->op == OP_SLE ? c <= 0
                     : in->op == OP_SGT ? c > 0
                                        : c >= 0;
            *l = boolean(b);
            break;
        }
        case OP_NOT: /* not; unknown stays unknown */
            if (sp[-1].kind == VG_V_BOOL)
                sp[-1].u.num = sp[-1].u.num != 0 ? 0 : 1;
            break;
        case OP_AND: { /* SQL and: false wins, then unknown */
            vg_value *l = &sp[-2], *r = &sp[-1];
            sp--;
            if (is_false(l) || is_false(r))
                *l = boolean(false);
            else if (is_true(l) && is_true(r))
                *l = boolean(true);
            else
                *l = missing_value;
            break;
        }
        case OP_OR: { /* SQL or: true wins, then unknown */
            vg_value *l = &sp[-2], *r = &sp[-1];
            sp--;
            if (is_true(l) || is_true(r))
                *l = boolean(true);
            else if (is_false(l) && is_false(r))
                *l = boolean(false);
            else
                *l = missing_value;
            break;
        }
        case OP_JFALSE: /* short-circuit `and`: the top is false, jump to c keeping it */
            if (is_false(&sp[-1]))
                pc = in->c - 1;
            break;
        case OP_JTRUE: /* short-circuit `or`: the top is true, jump to c keeping it */
            if (is_true(&sp[-1]))
                pc = in->c - 1;
            break;
        case OP_IN: /* is the top in set c? (a = 1: not in) */
            if (sp[-1].kind != VG_V_MISSING) {
                bool has = set_has(&vm->rs->sets[in->c], &sp[-1]);
                sp[-1] = boolean(in->a ? !has : has);
            }
            break;
        case OP_MATCH: /* does regex c match the top? (a = 1: !~) */
            sp[-1] = regex_match(vm, in->c, &sp[-1], in->a != 0);
            break;
        case OP_CALL: /* call function a with the top b values as arguments */
            sp -= in->b;
            *sp = call(vm, ctx, in->a, sp, in->b);
            sp++;
            break;
        case OP_RET: /* the top is the result */
        default: return sp[-1];
        }
    }
}
