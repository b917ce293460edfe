/*
 * gen.c - the code generator (fourth stage of the pipeline): checked syntax
 * trees -> programs for the VM (vm.c), plus what the engine needs around
 * them: window aggregates and the columns they read, prev() slots, sets for
 * `in`, message parts, and each rule's rule_version and state identity.
 *
 * Programs are generated one at a time into a growable buffer (a nested one,
 * such as an aggregate's argument, saves and restores the outer); the stack
 * depth is simulated so the VM can size its stack once. Constant subtrees
 * are folded by running them on a scratch VM: the VM is the one definition
 * of what an operator means.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <openssl/evp.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rulesInt.h"

/* pcre2 limits for every regex match: a pattern that backtracks without end
 * over a long field gives up, and the match is missing (and counted). */
#define VG_RX_MATCH_LIMIT 100000
#define VG_RX_DEPTH_LIMIT 10000
#define VG_RX_HEAP_LIMIT 20000 /* KiB */

typedef struct gen {
    vg_ruleset *rs;
    cstate *C;
    vg_buf code; /* vg_insn of the program being generated */
    int depth;   /* simulated stack depth */
    int maxdepth;
    vg_buf consts; /* vg_value */
    vg_buf sets;   /* vg_set */
    /* the rule being generated */
    rule *ast;
    vg_rule *r;
    vg_buf aggs;     /* vg_aggspec */
    vg_buf cols;     /* vg_column */
    vg_buf col_text; /* const char *: each column's text (and hashed flag in [0]) */
    vg_buf prevs;    /* vg_prog */
    vg_buf prev_text;
    vg_buf lists; /* list_decl *: used by the rule, in order of first use */
    vg_vm *fold;  /* scratch VM for constant folding */
    bool oom;
} gen;

static void *
grow(gen *G, vg_buf *b, const void *item, size_t size)
{
    if (vg_buf_append(b, item, size) != VG_OK) {
        G->oom = true;
        return NULL;
    }
    return b->data + b->len - size;
}

/* A text-building vg_buf call: its failure is remembered as out of memory. */
static void
put(gen *G, vg_err err)
{
    if (err != VG_OK)
        G->oom = true;
}

static void
emit(gen *G, uint8_t op, uint8_t a, uint16_t b, uint32_t c)
{
    vg_insn in = {op, a, b, c};
    grow(G, &G->code, &in, sizeof in);
    static const int8_t stack[] = {
#define OP(name, operands, stack, pure) stack,
        VG_OPCODES(OP)
#undef OP
    };
    G->depth += op == OP_CALL ? 1 - b : stack[op];
    if (G->depth > G->maxdepth)
        G->maxdepth = G->depth;
}

static uint32_t
pc(const gen *G)
{
    return (uint32_t)(G->code.len / sizeof(vg_insn));
}

static uint32_t
add_const(gen *G, vg_value v)
{
    uint32_t k = (uint32_t)(G->consts.len / sizeof(vg_value));
    grow(G, &G->consts, &v, sizeof v);
    return k;
}

static void
emit_const(gen *G, vg_value v)
{
    emit(G, OP_CONST, 0, 0, add_const(G, v));
}

static uint8_t
vkind(const type *t)
{
    switch (t->t) {
    case TY_NUMBER: return VG_V_NUM;
    case TY_STRING: return VG_V_STR;
    case TY_BOOL: return VG_V_BOOL;
    case TY_TIME: return VG_V_TIME;
    case TY_DURATION: return VG_V_DUR;
    case TY_ENUM: return VG_V_ENUM;
    default: return VG_V_MISSING;
    }
}

/* ---- Source text ------------------------------------------------------------ */

/* The node's source text with white space collapsed (and, inside a message
 * template, its string escapes undone): the key of "values" in an alert. */
static const char *
node_text(gen *G, const node *n)
{
    const srcfile *f = &G->C->files[n->sp.file];
    vg_buf b = {0};
    bool space = false;
    for (uint32_t i = n->sp.start; i < n->sp.end && i < f->len; i++) {
        char c = f->text[i];
        if (n->tmpl && c == '\\' && i + 1 < n->sp.end)
            c = f->text[++i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            space = b.len > 0;
            continue;
        }
        if (space)
            put(G, vg_buf_putc(&b, ' '));
        space = false;
        put(G, vg_buf_putc(&b, c));
    }
    char *s = cstate_strndup(G->C, b.data ? b.data : "", b.len);
    vg_buf_free(&b);
    if (s == NULL)
        G->oom = true;
    return s ? s : "";
}

/* The tokens of file text [start, end), joined by one space (comments and
 * layout dropped): what rule_version and the state identity hash. */
static void
tokens_text(gen *G, uint32_t file, uint32_t start, uint32_t end, vg_buf *out)
{
    const srcfile *f = &G->C->files[file];
    lexer L;
    lex_init(&L, G->C, file, f->text, f->len, NULL);
    L.pos = start;
    bool quiet = G->C->quiet;
    G->C->quiet = true;
    for (;;) {
        token t = lex_next(&L);
        if (t.kind == T_EOF || t.lstart >= end)
            break;
        if (out->len > 0 && out->data[out->len - 1] != '\n')
            put(G, vg_buf_putc(out, ' '));
        put(G, vg_buf_append(out, f->text + t.lstart, t.lend - t.lstart));
    }
    G->C->quiet = quiet;
}

static void
sha256_hex(const vg_buf *b, char *hex, size_t ndigits)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(b->data ? b->data : "", b->len, md, &n, EVP_sha256(), NULL);
    for (size_t i = 0; i < ndigits / 2 && i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    hex[ndigits] = '\0';
}

/* ---- Sets ------------------------------------------------------------------- */

static bool
set_put(vg_set *s, uint64_t *hashes, vg_value *vals, vg_value v)
{
    uint64_t h = vg_value_hash(&v);
    for (uint32_t i = (uint32_t)h & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (hashes[i] == 0) {
            hashes[i] = h;
            vals[i] = v;
            s->n++;
            return true;
        }
        if (hashes[i] == h && vals[i].kind == v.kind &&
            (v.kind == VG_V_STR ? vals[i].len == v.len && memcmp(vals[i].u.s, v.u.s, v.len) == 0
                                : vals[i].u.num == v.u.num))
            return false; /* already there */
    }
}

/* Builds a set from n values; returns its index. */
static uint32_t
add_set(gen *G, const vg_value *vals, uint32_t n)
{
    vg_set s = {0};
    s.cap = 8;
    while (s.cap < n * 2)
        s.cap *= 2;
    uint64_t *h = cstate_alloc(G->C, s.cap * sizeof(uint64_t));
    vg_value *v = cstate_alloc(G->C, s.cap * sizeof(vg_value));
    if (h == NULL || v == NULL) {
        G->oom = true;
        return 0;
    }
    for (uint32_t i = 0; i < n; i++)
        set_put(&s, h, v, vals[i]);
    s.hashes = h;
    s.vals = v;
    uint32_t k = (uint32_t)(G->sets.len / sizeof(vg_set));
    grow(G, &G->sets, &s, sizeof s);
    return k;
}

static vg_value
str_value(const char *s, uint32_t len)
{
    vg_value v = {.kind = VG_V_STR, .len = len};
    v.u.s = s;
    return v;
}

static vg_value
num_value(double d, uint8_t kind)
{
    vg_value v = {.kind = kind};
    v.u.num = d;
    return v;
}

/* A literal list item as the value the left side of `in` is compared as. */
static vg_value
item_value(const node *it, const type *left)
{
    if (left->t == TY_ENUM) {
        int v = 0;
        if (it->kind == N_NAME)
            vg_enum_lookup(left->en, it->name, it->namelen, &v);
        else if (it->kind == N_STRING)
            vg_enum_lookup(left->en, it->v.s.str, it->v.s.len, &v);
        return num_value(v, VG_V_ENUM);
    }
    if (it->kind == N_STRING)
        return str_value(it->v.s.str, it->v.s.len);
    if (it->kind == N_NEG)
        return num_value(-it->a->v.num, VG_V_NUM);
    return num_value(it->v.num, VG_V_NUM);
}

static void
note_list(gen *G, list_decl *l)
{
    for (size_t i = 0; i < G->lists.len / sizeof(list_decl *); i++)
        if (((list_decl **)G->lists.data)[i] == l)
            return;
    grow(G, &G->lists, &l, sizeof l);
}

static uint32_t
list_set(gen *G, const node *n)
{
    const node *l = n->b;
    const type *left = &n->a->ty;
    vg_buf vals = {0};
    if (l->kind == N_LIST) {
        for (uint32_t i = 0; i < l->nargs; i++) {
            vg_value v = item_value(l->args[i], left);
            grow(G, &vals, &v, sizeof v);
        }
    } else {
        list_decl *d = l->list;
        note_list(G, d);
        if (d->from_file) {
            for (uint32_t i = 0; i < d->nvalues; i++) {
                vg_value v = str_value(d->values[i], d->value_lens[i]);
                if (left->t == TY_ENUM) {
                    int e = 0;
                    vg_enum_lookup(left->en, d->values[i], d->value_lens[i], &e);
                    v = num_value(e, VG_V_ENUM);
                }
                grow(G, &vals, &v, sizeof v);
            }
        } else {
            for (uint32_t i = 0; i < d->nitems; i++) {
                vg_value v = item_value(d->items[i], left);
                grow(G, &vals, &v, sizeof v);
            }
        }
    }
    uint32_t k = add_set(G, (const vg_value *)vals.data, (uint32_t)(vals.len / sizeof(vg_value)));
    vg_buf_free(&vals);
    return k;
}

/* ---- Expressions ------------------------------------------------------------ */

static void gen_expr(gen *G, node *n);
static void gen_prog(gen *G, node *n, vg_prog *out);

/* Could code[from..to) be run now? Only constants and pure operators. */
static bool
foldable(const gen *G, uint32_t from, uint32_t to)
{
    const vg_insn *code = (const vg_insn *)G->code.data;
    if (to - from < 2 || to - from > 200) /* the scratch VM's stack holds 256 */
        return false;
    static const bool pure[] = {
#define OP(name, operands, stack, pure) pure,
        VG_OPCODES(OP)
#undef OP
    };
    for (uint32_t i = from; i < to; i++) {
        if (!pure[code[i].op])
            return false;
        if (code[i].op == OP_CALL && (code[i].a == FN_attr || code[i].a == FN_prev))
            return false;
    }
    return true;
}

/* Replaces code[from..) (a constant expression) by one CONST of its value. */
static void
fold(gen *G, uint32_t from, int depth_before)
{
    uint32_t to = pc(G);
    if (!foldable(G, from, to) || G->fold == NULL)
        return;
    emit(G, OP_RET, 0, 0, 0);
    if (G->oom)
        return;
    vg_prog p = {.code = (const vg_insn *)G->code.data + from, .n = to - from + 1};
    G->rs->consts = (vg_value *)G->consts.data;
    vg_vm_ctx ctx = {0};
    vg_value v = vg_vm_eval(G->fold, &p, &ctx);
    if (v.kind == VG_V_STR) { /* it lives in the VM's scratch: keep a copy */
        char *s = cstate_strndup(G->C, v.u.s, v.len);
        if (s == NULL) {
            G->oom = true;
            return;
        }
        v.u.s = s;
    }
    G->code.len = from * sizeof(vg_insn);
    G->depth = depth_before;
    emit_const(G, v);
}

static uint32_t
find_text(const vg_buf *texts, const char *t)
{
    const char *const *v = (const char *const *)texts->data;
    for (uint32_t i = 0; i < texts->len / sizeof(char *); i++)
        if (strcmp(v[i], t) == 0)
            return i;
    return UINT32_MAX;
}

/* The column holding arg (hashed or not) for the current rule. */
static int16_t
column(gen *G, node *arg, bool hashed)
{
    const char *t = node_text(G, arg);
    char *key = cstate_alloc(G->C, strlen(t) + 2);
    if (key == NULL) {
        G->oom = true;
        return 0;
    }
    key[0] = hashed ? 'h' : 'v';
    strcpy(key + 1, t);
    uint32_t i = find_text(&G->col_text, key);
    if (i != UINT32_MAX)
        return (int16_t)i;
    vg_column c = {.hashed = hashed, .text = key};
    gen_prog(G, arg, &c.prog);
    grow(G, &G->cols, &c, sizeof c);
    grow(G, &G->col_text, &key, sizeof key);
    return (int16_t)(G->col_text.len / sizeof(char *) - 1);
}

/* The rule already has the aggregate written `text`: emits a load of it. */
static bool
emit_known_agg(gen *G, const char *text)
{
    const vg_aggspec *have = (const vg_aggspec *)G->aggs.data;
    for (uint32_t i = 0; i < G->aggs.len / sizeof(vg_aggspec); i++) {
        if (strcmp(have[i].text, text) == 0) {
            emit(G, OP_AGG, 0, 0, i);
            return true;
        }
    }
    return false;
}

static void
gen_agg(gen *G, node *n)
{
    vg_aggspec a = {0};
    a.text = node_text(G, n);
    if (emit_known_agg(G, a.text))
        return;
    a.win = n->win == WIN_RANGE    ? VG_WIN_RANGE
            : n->win == WIN_BEFORE ? VG_WIN_BEFORE
                                   : VG_WIN_HISTORY;
    a.ms = n->win_ms;
    a.col = -1;
    a.kind = VG_V_NUM;
    switch (n->fn) {
    case FN_count:
        a.fn = n->nargs ? VG_AGG_COUNT_IF : VG_AGG_COUNT;
        if (n->nargs)
            a.col = column(G, n->args[0], false);
        break;
    case FN_sum: a.fn = VG_AGG_SUM; break;
    case FN_avg: a.fn = VG_AGG_AVG; break;
    case FN_min: a.fn = VG_AGG_MIN; break;
    case FN_max: a.fn = VG_AGG_MAX; break;
    case FN_distinct: a.fn = VG_AGG_DISTINCT; break;
    case FN_seen:
        a.fn = VG_AGG_SEEN;
        a.kind = VG_V_BOOL;
        break;
    default: break;
    }
    if (a.fn != VG_AGG_COUNT && a.fn != VG_AGG_COUNT_IF)
        a.col = column(G, n->args[0], a.fn == VG_AGG_DISTINCT || a.fn == VG_AGG_SEEN);
    if (a.fn == VG_AGG_MIN || a.fn == VG_AGG_MAX)
        a.kind = vkind(&n->args[0]->ty);
    if (a.fn == VG_AGG_SUM || a.fn == VG_AGG_AVG || a.fn == VG_AGG_MIN || a.fn == VG_AGG_MAX)
        a.money = n->args[0]->ty.money;
    if (a.win != VG_WIN_HISTORY && a.ms > G->r->max_window_ms)
        G->r->max_window_ms = a.ms;
    uint32_t k = (uint32_t)(G->aggs.len / sizeof(vg_aggspec));
    grow(G, &G->aggs, &a, sizeof a);
    emit(G, OP_AGG, 0, 0, k);
}

/* count(a), sum(a.f), avg, min, max, first(a.f): over a step's events. */
static void
gen_binding_agg(gen *G, node *n)
{
    vg_aggspec a = {0};
    a.text = node_text(G, n);
    if (emit_known_agg(G, a.text))
        return;
    node *arg = n->args[0];
    a.win = VG_WIN_STEP;
    a.step = arg->step;
    a.col = -1;
    a.kind = VG_V_NUM;
    switch (n->fn) {
    case FN_count: a.fn = VG_AGG_COUNT; break;
    case FN_sum: a.fn = VG_AGG_SUM; break;
    case FN_avg: a.fn = VG_AGG_AVG; break;
    case FN_min: a.fn = VG_AGG_MIN; break;
    case FN_max: a.fn = VG_AGG_MAX; break;
    default: a.fn = VG_AGG_FIRST; break;
    }
    if (a.fn != VG_AGG_COUNT) {
        a.col = column(G, arg, false);
        if (a.fn != VG_AGG_SUM && a.fn != VG_AGG_AVG)
            a.kind = vkind(&arg->ty);
        a.money = arg->ty.money;
    }
    uint32_t k = (uint32_t)(G->aggs.len / sizeof(vg_aggspec));
    grow(G, &G->aggs, &a, sizeof a);
    emit(G, OP_AGG, 0, 0, k);
}

static void
gen_prev(gen *G, node *n)
{
    const char *t = node_text(G, n->args[0]);
    uint32_t i = find_text(&G->prev_text, t);
    if (i == UINT32_MAX) {
        vg_prog p;
        gen_prog(G, n->args[0], &p);
        grow(G, &G->prevs, &p, sizeof p);
        grow(G, &G->prev_text, &t, sizeof t);
        i = (uint32_t)(G->prev_text.len / sizeof(char *) - 1);
    }
    emit(G, OP_PREV, 0, 0, i);
}

static uint8_t
arith_op(uint8_t tok)
{
    switch (tok) {
    case T_PLUS: return OP_ADD;
    case T_MINUS: return OP_SUB;
    case T_STAR: return OP_MUL;
    case T_SLASH: return OP_DIV;
    default: return OP_MOD;
    }
}

static uint8_t
cmp_op(uint8_t tok, bool strings)
{
    static const uint8_t num[] = {OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE};
    static const uint8_t str[] = {OP_SEQ, OP_SNE, OP_SLT, OP_SLE, OP_SGT, OP_SGE};
    int i = tok == T_EQ   ? 0
            : tok == T_NE ? 1
            : tok == T_LT ? 2
            : tok == T_LE ? 3
            : tok == T_GT ? 4
                          : 5;
    return strings ? str[i] : num[i];
}

static void
gen_expr(gen *G, node *n)
{
    uint32_t start = pc(G);
    int depth0 = G->depth;
    switch ((node_kind)n->kind) {
    case N_NUMBER: emit_const(G, num_value(n->v.num, VG_V_NUM)); return;
    case N_STRING: emit_const(G, str_value(n->v.s.str, n->v.s.len)); return;
    case N_BOOL: emit_const(G, num_value(n->v.b ? 1 : 0, VG_V_BOOL)); return;
    case N_DURATION: emit_const(G, num_value((double)n->v.ms, VG_V_DUR)); return;
    case N_NAME:
        if (n->ref == REF_ENUM) {
            emit_const(G, num_value(n->enum_value, VG_V_ENUM));
            return;
        }
        if (n->ref == REF_COLUMN) {
            emit(G, OP_COL, 0, 0, (uint32_t)n->col);
            return;
        }
        __attribute__((fallthrough)); /* a field */
    case N_STREAM:
    case N_MEMBER:
        if (n->step >= 0 && n->kind == N_MEMBER)
            emit(G, OP_STEPFIELD, 0, (uint16_t)n->step, n->field->slot);
        else
            emit(G, OP_FIELD, 0, 0, n->field->slot);
        return;
    case N_CALL:
        if (n->fn == FN_prev) {
            gen_prev(G, n);
            return;
        }
        if (n->fn == FN_col) {
            emit(G, OP_COL, 0, 0, (uint32_t)n->col);
            return;
        }
        if (vg_functions[n->fn].cls == FC_AGG &&
            !((n->fn == FN_min || n->fn == FN_max) && n->nargs >= 2)) {
            gen_binding_agg(G, n);
            return;
        }
        if (n->fn == FN_attr) {
            gen_expr(G, n->args[0]);
            if (n->bind != NULL)
                emit(G, OP_STEPATTR, 0, (uint16_t)n->step, 0);
            else
                emit(G, OP_ATTR, 0, 0, 0);
            return;
        }
        for (uint32_t i = 0; i < n->nargs; i++)
            gen_expr(G, n->args[i]);
        emit(G, OP_CALL, n->fn, (uint16_t)n->nargs, 0);
        break;
    case N_AGG: gen_agg(G, n); return;
    case N_NEG:
        gen_expr(G, n->a);
        emit(G, OP_NEG, vkind(&n->ty), 0, 0);
        break;
    case N_NOT:
        gen_expr(G, n->a);
        emit(G, OP_NOT, 0, 0, 0);
        break;
    case N_BINARY:
        gen_expr(G, n->a);
        gen_expr(G, n->b);
        if (n->op == T_EQ || n->op == T_NE || n->op == T_LT || n->op == T_LE || n->op == T_GT ||
            n->op == T_GE)
            emit(G, cmp_op(n->op, n->a->ty.t == TY_STRING), 0, 0, 0);
        else if (n->op == T_PLUS && n->ty.t == TY_STRING)
            emit(G, OP_CONCAT, 0, 0, 0);
        else
            emit(G, arith_op(n->op), vkind(&n->ty), 0, 0);
        break;
    case N_LOGIC: {
        /* a and b and c: a JFALSE end; b AND JFALSE end; c AND; end:
         * An operand that folded to a constant is dropped when it cannot
         * change the result (true in `and`, false in `or`), and decides it
         * when it can (false in `and`: false whatever the others are, even
         * missing, as in SQL). */
        bool and = n->op == T_AND;
        uint32_t kept = 0;
        vg_buf jumps = {0};
        for (uint32_t i = 0; i < n->nargs && !G->oom; i++) {
            uint32_t at = pc(G);
            int d = G->depth;
            gen_expr(G, n->args[i]);
            const vg_insn *in = pc(G) == at + 1 ? (const vg_insn *)G->code.data + at : NULL;
            const vg_value *k = in != NULL && in->op == OP_CONST
                                    ? &((const vg_value *)G->consts.data)[in->c]
                                    : NULL;
            if (k != NULL && k->kind == VG_V_BOOL && (k->u.num != 0) == and) {
                G->code.len = at * sizeof(vg_insn); /* neutral: drop it */
                G->depth = d;
                continue;
            }
            if (k != NULL && k->kind == VG_V_BOOL) { /* absorbing: the result */
                vg_value v = *k;
                G->code.len = start * sizeof(vg_insn);
                G->depth = depth0;
                vg_buf_free(&jumps);
                emit_const(G, v);
                return;
            }
            if (kept++ > 0)
                emit(G, and? OP_AND : OP_OR, 0, 0, 0);
            uint32_t j = pc(G);
            grow(G, &jumps, &j, sizeof j);
            emit(G, and? OP_JFALSE : OP_JTRUE, 0, 0, 0);
        }
        if (G->oom) {
            vg_buf_free(&jumps);
            return;
        }
        if (kept > 0) { /* the jump after the last operand kept goes nowhere */
            G->code.len -= sizeof(vg_insn);
            jumps.len -= sizeof(uint32_t);
        } else { /* every operand was neutral */
            emit_const(G, (vg_value){.kind = VG_V_BOOL, .u.num = and});
        }
        for (size_t i = 0; i < jumps.len / sizeof(uint32_t); i++)
            ((vg_insn *)G->code.data)[((uint32_t *)jumps.data)[i]].c = pc(G);
        vg_buf_free(&jumps);
        return; /* jumps are not folded */
    }
    case N_IN:
        gen_expr(G, n->a);
        emit(G, OP_IN, n->op, 0, list_set(G, n));
        return;
    case N_REGEX:
        gen_expr(G, n->a);
        emit(G, OP_MATCH, n->op, 0, (uint32_t)n->rx_index);
        return;
    case N_LIST: return; /* only under N_IN */
    case N_CONV: {
        uint32_t en = 0;
        if (n->ty.t == TY_ENUM) {
            while (en < G->rs->nenums && G->rs->enums[en] != n->ty.en)
                en++;
            if (en == G->rs->nenums) {
                const vg_enum **v = realloc(G->rs->enums, (en + 1) * sizeof(vg_enum *));
                if (v == NULL) {
                    G->oom = true;
                    return;
                }
                v[en] = n->ty.en;
                G->rs->enums = v;
                G->rs->nenums++;
            }
        }
        gen_expr(G, n->a);
        emit(G, OP_CONV, vkind(&n->ty), 0, en);
        return;
    }
    }
    fold(G, start, depth0);
}

/* Generates n as a program of its own (nested programs save the outer). */
static void
gen_prog(gen *G, node *n, vg_prog *out)
{
    vg_buf outer = G->code;
    int depth = G->depth, maxdepth = G->maxdepth;
    memset(&G->code, 0, sizeof G->code);
    G->depth = G->maxdepth = 0;
    memset(out, 0, sizeof *out);
    if (n != NULL) {
        gen_expr(G, n);
        emit(G, OP_RET, 0, 0, 0);
        out->n = pc(G);
        out->code = cstate_alloc(G->C, G->code.len);
        if (out->code == NULL)
            G->oom = true;
        else
            memcpy((void *)out->code, G->code.data, G->code.len);
        out->kind = vkind(&n->ty);
        out->money = n->ty.money;
        out->en = n->ty.t == TY_ENUM ? n->ty.en : NULL;
        if ((uint32_t)G->maxdepth > G->rs->max_stack)
            G->rs->max_stack = (uint32_t)G->maxdepth;
    }
    vg_buf_free(&G->code);
    G->code = outer;
    G->depth = depth;
    G->maxdepth = maxdepth;
}

/* ---- Rules ------------------------------------------------------------------ */

static void *
arena_copy(gen *G, const vg_buf *b)
{
    if (b->len == 0)
        return NULL;
    void *p = cstate_alloc(G->C, b->len);
    if (p == NULL)
        G->oom = true;
    else
        memcpy(p, b->data, b->len);
    return p;
}

static void
rule_identity(gen *G, rule *a, vg_rule *r)
{
    /* rule_version: the rule's tokens, then the contents of its lists */
    vg_buf b = {0};
    tokens_text(G, a->file, a->sp.start, a->sp.end, &b);
    for (size_t i = 0; i < G->lists.len / sizeof(list_decl *); i++) {
        const list_decl *l = ((list_decl **)G->lists.data)[i];
        put(G, vg_buf_putc(&b, '\n'));
        if (l->from_file) {
            for (uint32_t k = 0; k < l->nvalues; k++) {
                put(G, vg_buf_append(&b, l->values[k], l->value_lens[k]));
                put(G, vg_buf_putc(&b, '\n'));
            }
        } else {
            for (uint32_t k = 0; k < l->nitems; k++) {
                tokens_text(G, l->sp.file, l->items[k]->sp.start, l->items[k]->sp.end, &b);
                put(G, vg_buf_putc(&b, '\n'));
            }
        }
    }
    sha256_hex(&b, r->version, 8);
    /* state identity: what the state of a key depends on */
    b.len = 0;
    put(G, vg_buf_printf(&b, "rule %s\non %s\n", a->name, vg_stream_name(a->on)));
    node *parts[] = {a->key, a->where, a->when};
    const char *labels[] = {"key", "where", "when"};
    for (int i = 0; i < 3; i++) {
        put(G, vg_buf_printf(&b, "%s ", labels[i]));
        if (parts[i])
            tokens_text(G, parts[i]->sp.file, parts[i]->sp.start, parts[i]->sp.end, &b);
        put(G, vg_buf_putc(&b, '\n'));
    }
    if (a->match) {
        put(G, vg_buf_puts(&b, "match "));
        tokens_text(G, a->file, a->match->sp.start, a->match->sp.end, &b);
        put(G, vg_buf_printf(&b, "\nwithin %lld\n", (long long)a->within_ms));
    }
    put(G, vg_buf_printf(&b, "suppress %lld\n", (long long)a->suppress_ms));
    sha256_hex(&b, r->state_id, 16);
    vg_buf_free(&b);
}

/* The keyspace of a key expression (NULL: account_id). */
static uint16_t
keyspace(gen *G, const node *key)
{
    vg_buf b = {0};
    if (key)
        tokens_text(G, key->sp.file, key->sp.start, key->sp.end, &b);
    else
        put(G, vg_buf_puts(&b, "account_id"));
    if (G->oom) { /* the text may be cut short: the rule set is discarded anyway */
        vg_buf_free(&b);
        return 0;
    }
    uint16_t k;
    for (k = 0; k < G->rs->nkeyspaces; k++)
        if (strcmp(G->rs->keyspaces[k], b.data) == 0)
            break;
    if (k == G->rs->nkeyspaces) {
        const char **v = realloc(G->rs->keyspaces, (k + 1) * sizeof(char *));
        char *s = cstate_strndup(G->C, b.data, b.len);
        if (v == NULL || s == NULL) {
            G->oom = true;
            if (v != NULL)
                G->rs->keyspaces = v;
            vg_buf_free(&b);
            return 0;
        }
        v[k] = s;
        G->rs->keyspaces = v;
        G->rs->nkeyspaces++;
    }
    vg_buf_free(&b);
    return k;
}

/* A key program: the expression, or the stream's account_id. */
static void
gen_key(gen *G, node *key, uint8_t stream, vg_prog *out)
{
    if (key) {
        gen_prog(G, key, out);
    } else {
        node k = {.kind = N_NAME, .ref = REF_FIELD, .step = -1};
        k.field = vg_schema_field(G->C->schema, (vg_stream_id)stream, "account_id", 10);
        k.ty.t = TY_STRING;
        gen_prog(G, &k, out);
    }
}

static void
gen_rule(gen *G, rule *a, vg_rule *r, uint32_t index)
{
    G->ast = a;
    G->r = r;
    G->aggs.len = G->cols.len = G->col_text.len = G->prevs.len = G->prev_text.len = 0;
    G->lists.len = 0;
    r->name = a->name;
    r->index = index;
    r->on = a->on;
    r->is_match = a->match != NULL;
    r->score = a->score;
    r->action = a->action == ACT_ALLOW ? VG_ALLOW : a->action == ACT_BLOCK ? VG_BLOCK : VG_REVIEW;
    r->shadow = a->shadow;
    r->suppress_ms = a->suppress_ms;
    r->tags = (const char *const *)a->tags;
    r->ntags = a->ntags;
    r->keyspace = keyspace(G, a->key);
    if (!r->is_match) {
        gen_key(G, a->key, a->on, &r->key);
        gen_prog(G, a->where, &r->where);
        gen_prog(G, a->when, &r->when);
    } else {
        pattern *p = a->match;
        r->within_ms = a->within_ms;
        r->nsteps = p->nsteps;
        r->steps = cstate_alloc(G->C, p->nsteps * sizeof(vg_step));
        for (uint32_t i = 0; r->steps && i < p->nsteps; i++) {
            step *s = &p->steps[i];
            vg_step *v = &r->steps[i];
            memset(v, 0, sizeof *v);
            v->name = s->neg ? NULL : cstate_strndup(G->C, s->name, s->namelen);
            v->neg = s->neg;
            v->stream = (vg_stream_id)s->stream;
            v->qmin = s->qmin;
            v->qmax = s->qmax;
            node *key = s->by ? s->by : s->rule_key;
            v->keyspace = keyspace(G, key);
            gen_key(G, key, s->stream, &v->key);
            gen_prog(G, s->rule_where, &v->filter);
            gen_prog(G, s->where, &v->where);
        }
        if (r->steps == NULL)
            G->oom = true;
    }
    {
        if (a->message) {
            r->nmsg = a->message->nparts;
            r->msg = cstate_alloc(G->C, r->nmsg * sizeof(vg_msgpart));
            for (uint32_t i = 0; r->msg && i < r->nmsg; i++) {
                tmpl_part *p = &a->message->parts[i];
                r->msg[i].text = p->text;
                r->msg[i].len = p->len;
                if (p->expr)
                    gen_prog(G, p->expr, &r->msg[i].prog);
            }
        }
    }
    r->aggs = arena_copy(G, &G->aggs);
    r->naggs = (uint32_t)(G->aggs.len / sizeof(vg_aggspec));
    r->cols = arena_copy(G, &G->cols);
    r->ncols = (uint32_t)(G->cols.len / sizeof(vg_column));
    r->prevs = arena_copy(G, &G->prevs);
    r->prev_texts = arena_copy(G, &G->prev_text);
    r->nprevs = (uint32_t)(G->prevs.len / sizeof(vg_prog));
    rule_identity(G, a, r);
}

vg_err
gen_ruleset(vg_ruleset *rs)
{
    gen G = {.rs = rs, .C = &rs->C};
    pcre2_match_context *mc = pcre2_match_context_create(NULL);
    if (mc == NULL)
        return VG_ENOMEM;
    pcre2_set_match_limit(mc, VG_RX_MATCH_LIMIT);
    pcre2_set_depth_limit(mc, VG_RX_DEPTH_LIMIT);
    pcre2_set_heap_limit(mc, VG_RX_HEAP_LIMIT);
    rs->match_ctx = mc;
    rs->max_stack = 256;
    if (vg_vm_new(rs, &G.fold) != VG_OK)
        G.fold = NULL; /* no folding, still correct */
    rs->max_stack = 1;
    rs->rules = cstate_alloc(&rs->C, (rs->C.nrules ? rs->C.nrules : 1) * sizeof(vg_rule));
    if (rs->rules == NULL)
        G.oom = true;
    for (uint32_t i = 0; i < rs->C.nrules && !G.oom; i++)
        gen_rule(&G, rs->C.rules[i], &rs->rules[i], i);
    if (rs->C.nassigns > 0) {
        rs->map = cstate_alloc(&rs->C, rs->C.nassigns * sizeof(vg_map_assign));
        if (rs->map == NULL)
            G.oom = true;
        for (uint32_t i = 0; rs->map && i < rs->C.nassigns && !G.oom; i++) {
            map_assign *a = &rs->C.assigns[i];
            rs->map[i].name = cstate_strndup(&rs->C, a->name, a->namelen);
            memcpy(rs->map[i].field, a->field, sizeof a->field);
            gen_prog(&G, a->expr, &rs->map[i].prog);
            rs->map[i].prog.kind = vkind(&a->expr->ty);
        }
        rs->nmap = rs->C.nassigns;
    }
    rs->consts = arena_copy(&G, &G.consts);
    rs->nconsts = (uint32_t)(G.consts.len / sizeof(vg_value));
    rs->sets = arena_copy(&G, &G.sets);
    rs->nsets = (uint32_t)(G.sets.len / sizeof(vg_set));
    vg_vm_free(G.fold);
    vg_buf *bufs[] = {&G.code,     &G.consts, &G.sets,      &G.aggs, &G.cols,
                      &G.col_text, &G.prevs,  &G.prev_text, &G.lists};
    for (size_t i = 0; i < VG_ARRAY_LEN(bufs); i++)
        vg_buf_free(bufs[i]);
    return G.oom || rs->C.oom ? VG_ENOMEM : VG_OK;
}

void
gen_free(vg_ruleset *rs)
{
    pcre2_match_context_free(rs->match_ctx);
    free(rs->keyspaces);
    free(rs->enums);
}

const vg_rule *
vg_ruleset_rule(const vg_ruleset *rs, size_t i)
{
    return i < rs->C.nrules ? &rs->rules[i] : NULL;
}

size_t
vg_ruleset_nkeyspaces(const vg_ruleset *rs)
{
    return rs->nkeyspaces;
}

const char *
vg_ruleset_keyspace(const vg_ruleset *rs, size_t i)
{
    return i < rs->nkeyspaces ? rs->keyspaces[i] : NULL;
}

const vg_map_assign *
vg_ruleset_map(const vg_ruleset *rs, size_t *n)
{
    *n = rs->nmap;
    return rs->map;
}

const vg_schema *
vg_ruleset_schema(const vg_ruleset *rs)
{
    return rs->C.schema;
}
