/*
 * parse.c - the parser: tokens -> syntax tree (second stage of the pipeline).
 *
 * Recursive descent, one function per grammar rule, the rule written above
 * it. Errors are reported where they are found; a function that fails returns
 * NULL and its callers pass the NULL up without saying more, so one mistake
 * gives one message. Recovery happens at clause and declaration boundaries:
 * after an error inside a rule the parser skips to the next clause keyword
 * (or the rule's '}', or the next `rule`/`list`), so every clause still gets
 * looked at. A rule with a syntax error is marked bad and not type-checked.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "rulesInt.h"

typedef struct parser {
    cstate *C;
    lexer *L;
    token tok;   /* the current token */
    span last;   /* the token consumed last, for the end of spans */
    token ahead; /* one token of lookahead, when has_ahead */
    bool has_ahead;
    uint32_t file;
    int depth;     /* expression nesting, bounded by VG_MAX_DEPTH */
    bool too_deep; /* reported; unwinding */
    bool in_match; /* recovery must not stop at a step's `where` */
    bool in_template;
} parser;

/* Errors that make the clause being parsed unusable (not the soft ones the
 * lexer reports in comments). */
static unsigned
hard_errors(const parser *P)
{
    return P->C->nerrors - P->C->nsoft;
}

static void
advance(parser *P)
{
    P->last = P->tok.sp;
    if (P->has_ahead) {
        P->tok = P->ahead;
        P->has_ahead = false;
    } else {
        P->tok = lex_next(P->L);
    }
}

static const token *
peek_ahead(parser *P)
{
    if (!P->has_ahead) {
        P->ahead = lex_next(P->L);
        P->has_ahead = true;
    }
    return &P->ahead;
}

static bool
at(const parser *P, tok_kind k)
{
    return P->tok.kind == k;
}

static bool
accept(parser *P, tok_kind k)
{
    if (P->tok.kind != k)
        return false;
    advance(P);
    return true;
}

/* The current token as messages show it: 'where', 'amout', end of file. */
static const char *
found(parser *P, char *buf, size_t size)
{
    if (P->tok.kind == T_EOF)
        return P->in_template ? "the end of the message" : "end of file";
    uint32_t n = P->tok.lend - P->tok.lstart;
    const char *s = P->L->src + P->tok.lstart;
    if (n > 40) {
        snprintf(buf, size, "'%.37s...'", s);
    } else {
        snprintf(buf, size, "'%.*s'", (int)n, s);
    }
    for (char *p = buf; *p; p++)
        if ((unsigned char)*p < 0x20)
            *p = ' ';
    return buf;
}

static void
error_expected(parser *P, const char *what)
{
    if (P->tok.bad)
        return; /* the lexer said what is wrong with this token */
    char buf[64];
    diag_error(P->C, P->tok.sp, "expected %s, found %s", what, found(P, buf, sizeof buf));
}

/* Reports "expected X to close Y[ of WHAT] at L:C" for an opening token at sp. */
static void
error_unclosed_of(parser *P, const char *close, const char *open, const char *of, span sp)
{
    unsigned line, col;
    char buf[64];
    diag_position(P->C, sp.file, sp.start, &line, &col);
    diag_error(P->C, P->tok.sp, "expected '%s' to close '%s'%s at %u:%u, found %s", close, open, of,
               line, col, found(P, buf, sizeof buf));
}

static void
error_unclosed(parser *P, const char *close, const char *open, span sp)
{
    error_unclosed_of(P, close, open, "", sp);
}

static span
span_join(span a, span b)
{
    span s = a;
    if (b.end > s.end)
        s.end = b.end;
    return s;
}

static node *
node_new(parser *P, node_kind k, span sp)
{
    node *n = cstate_alloc(P->C, sizeof(node));
    if (n == NULL)
        return NULL;
    n->kind = (uint8_t)k;
    n->sp = sp;
    n->step = -1;
    n->tmpl = P->in_template;
    return n;
}

/* Sets the height of n from its operands and bounds it. Every later stage
 * walks the tree recursively, so the height of the whole tree (not only of
 * one operator chain) is what limits their stack use. Returns n, or NULL
 * (reported once) when the tree is too high. */
static node *
seal(parser *P, node *n)
{
    if (n == NULL)
        return NULL;
    unsigned h = 0;
    if (n->a != NULL && n->a->height > h)
        h = n->a->height;
    if (n->b != NULL && n->b->height > h)
        h = n->b->height;
    for (uint32_t i = 0; i < n->nargs; i++)
        if (n->args[i]->height > h)
            h = n->args[i]->height;
    if (h + 1 > VG_MAX_HEIGHT) {
        if (!P->too_deep)
            diag_error(P->C, n->sp,
                       "expression is too large (more than %d levels of operators and "
                       "nesting); split it into smaller conditions",
                       VG_MAX_HEIGHT);
        P->too_deep = true;
        return NULL;
    }
    n->height = (uint16_t)(h + 1);
    return n;
}

/* The text of the current token in the arena. */
static const char *
tok_text(parser *P, uint32_t *len)
{
    *len = P->tok.lend - P->tok.lstart;
    return cstate_strndup(P->C, P->L->src + P->tok.lstart, *len);
}

static bool
is_clause_keyword(tok_kind k)
{
    switch (k) {
    case T_DESCRIPTION:
    case T_KEY:
    case T_ON:
    case T_WHERE:
    case T_WHEN:
    case T_MATCH:
    case T_SCORE:
    case T_ACTION:
    case T_SUPPRESS:
    case T_MESSAGE:
    case T_TAGS:
    case T_MODE: return true;
    default: return false;
    }
}

/* ---- Expressions ----------------------------------------------------------- */

static node *parse_expr(parser *P);
static bool is_cmp(tok_kind k);

/* Can kind begin an expression? (Then a missing ',' is likelier than a
 * missing ')' or ']'.) */
static bool
starts_expr(tok_kind k)
{
    switch (k) {
    case T_IDENT:
    case T_NUMBER:
    case T_DURATION:
    case T_STRING:
    case T_LPAREN:
    case T_LBRACKET:
    case T_MINUS:
    case T_TRUE:
    case T_FALSE: return true;
    default: return false;
    }
}

static bool
enter(parser *P)
{
    if (P->too_deep)
        return false;
    if (++P->depth > VG_MAX_DEPTH) {
        diag_error(P->C, P->tok.sp, "expression nested too deeply (more than %d levels)",
                   VG_MAX_DEPTH);
        P->too_deep = true;
        return false;
    }
    return true;
}

static void
leave(parser *P)
{
    P->depth--;
}

/* args := [ expr { ',' expr } ] ')'     (after the '(') */
static bool
parse_args(parser *P, span open, node ***args, uint32_t *nargs)
{
    node *tmp[VG_MAX_ARGS];
    uint32_t n = 0;
    if (!at(P, T_RPAREN)) {
        for (;;) {
            node *e = parse_expr(P);
            if (e == NULL)
                return false;
            if (n == VG_ARRAY_LEN(tmp)) {
                diag_error(P->C, e->sp, "too many arguments (at most %d)", VG_MAX_ARGS);
                return false;
            }
            tmp[n++] = e;
            if (!accept(P, T_COMMA))
                break;
        }
    }
    if (!at(P, T_RPAREN)) {
        if (starts_expr(P->tok.kind))
            error_expected(P, "',' or ')' after an argument");
        else
            error_unclosed(P, ")", "(", open);
        return false;
    }
    advance(P);
    *args = NULL;
    if (n > 0) {
        *args = cstate_alloc(P->C, n * sizeof(node *));
        if (*args == NULL)
            return false;
        memcpy(*args, tmp, n * sizeof(node *));
    }
    *nargs = n;
    return true;
}

/* list := '[' [ expr { ',' expr } [','] ] ']' */
static node *
parse_list_literal(parser *P)
{
    span open = P->tok.sp;
    advance(P);
    node *n = node_new(P, N_LIST, open);
    if (n == NULL)
        return NULL;
    vg_buf items = {0};
    while (!at(P, T_RBRACKET)) {
        node *e = parse_expr(P);
        if (e == NULL)
            goto fail;
        if (vg_buf_append(&items, &e, sizeof e) != VG_OK) {
            P->C->oom = true;
            goto fail;
        }
        if (!accept(P, T_COMMA))
            break;
    }
    if (!at(P, T_RBRACKET)) {
        if (starts_expr(P->tok.kind))
            error_expected(P, "',' or ']' after a list value");
        else
            error_unclosed(P, "]", "[", open);
        goto fail;
    }
    n->sp = span_join(open, P->tok.sp);
    advance(P);
    n->nargs = (uint32_t)(items.len / sizeof(node *));
    if (n->nargs > 0) {
        n->args = cstate_alloc(P->C, items.len);
        if (n->args == NULL)
            goto fail;
        memcpy(n->args, items.data, items.len);
    }
    vg_buf_free(&items);
    return seal(P, n);
fail:
    vg_buf_free(&items);
    return NULL;
}

/* primary := NUMBER | DURATION | STRING | 'true' | 'false' | list
 *          | NAME [ '(' args ')' ] | ('txn' | 'event') '.' NAME | '(' expr ')' */
static node *
parse_primary(parser *P)
{
    token t = P->tok;
    node *n;
    switch (t.kind) {
    case T_NUMBER:
        n = node_new(P, N_NUMBER, t.sp);
        if (n)
            n->v.num = t.v.num;
        advance(P);
        return n;
    case T_DURATION:
        n = node_new(P, N_DURATION, t.sp);
        if (n)
            n->v.ms = t.v.ms;
        advance(P);
        return n;
    case T_STRING:
        n = node_new(P, N_STRING, t.sp);
        if (n) {
            n->v.s.str = t.v.s.str;
            n->v.s.len = t.v.s.len;
        }
        advance(P);
        return n;
    case T_TRUE:
    case T_FALSE:
        n = node_new(P, N_BOOL, t.sp);
        if (n)
            n->v.b = t.kind == T_TRUE;
        advance(P);
        return n;
    case T_LBRACKET:
        return parse_list_literal(P); /* its items go through parse_expr: counted there */
    case T_LPAREN: {
        advance(P);
        node *e = parse_expr(P);
        if (e == NULL)
            return NULL;
        if (!at(P, T_RPAREN)) {
            error_unclosed(P, ")", "(", t.sp);
            return NULL;
        }
        e->paren = 1;
        e->sp = span_join(t.sp, P->tok.sp);
        advance(P);
        return e;
    }
    case T_TXN:
    case T_EVENT: {
        advance(P);
        if (!at(P, T_DOT)) {
            char what[96];
            snprintf(what, sizeof what, "'.' and a field name after '%s' (like %s.amount)",
                     tok_spelling(t.kind), tok_spelling(t.kind));
            error_expected(P, what);
            return NULL;
        }
        advance(P);
        if (!at(P, T_IDENT) && !tok_is_keyword(P->tok.kind)) {
            error_expected(P, "a field name");
            return NULL;
        }
        n = node_new(P, N_STREAM, span_join(t.sp, P->tok.sp));
        if (n == NULL)
            return NULL;
        n->stream = t.kind == T_TXN ? VG_STREAM_TXN : VG_STREAM_EVENT;
        n->sp2 = P->tok.sp;
        n->name = tok_text(P, &n->namelen);
        advance(P);
        return n;
    }
    case T_IDENT: {
        uint32_t len;
        const char *name = tok_text(P, &len);
        advance(P);
        if (name == NULL)
            return NULL;
        if (at(P, T_LPAREN)) {
            span open = P->tok.sp;
            advance(P);
            n = node_new(P, N_CALL, t.sp);
            if (n == NULL || !parse_args(P, open, &n->args, &n->nargs))
                return NULL;
            n->sp = span_join(t.sp, P->last);
            n->sp2 = t.sp;
            n->name = name;
            n->namelen = len;
            n->fn = (uint8_t)fn_lookup(name, len);
            return seal(P, n);
        }
        n = node_new(P, N_NAME, t.sp);
        if (n) {
            n->name = name;
            n->namelen = len;
        }
        return n;
    }
    default: break;
    }
    if (tok_is_keyword(t.kind) && t.kind != T_NOT && t.kind != T_AND && t.kind != T_OR &&
        t.kind != T_IN) {
        tok_kind next = peek_ahead(P)->kind;
        bool operand = is_cmp(next) || next == T_ASSIGN || next == T_IN || next == T_TILDE ||
                       next == T_NTILDE || next == T_PLUS || next == T_STAR || next == T_SLASH;
        if (operand || !is_clause_keyword(t.kind)) {
            /* `description == "rent"`: a field named like a keyword. Say so
             * once and read it as a name, so the rest parses. */
            error_expected(P, "an expression");
            diag_note(P->C, t.sp,
                      "'%s' is a reserved word; for a field of that name write "
                      "txn.%s or event.%s",
                      tok_spelling(t.kind), tok_spelling(t.kind), tok_spelling(t.kind));
            if (!operand)
                return NULL;
            n = node_new(P, N_NAME, t.sp);
            if (n) {
                n->name = tok_spelling(t.kind);
                n->namelen = (uint32_t)strlen(n->name);
            }
            advance(P);
            return n;
        }
    }
    /* a clause keyword here most likely means a missing operand */
    error_expected(P, "an expression");
    return NULL;
}

/* postfix := primary { '.' NAME [ '(' args ')' ] } [ 'over' window ]
 * window  := DURATION [ 'before' ] | 'history' */
static node *
parse_postfix(parser *P)
{
    node *n = parse_primary(P);
    if (n == NULL)
        return NULL;
    while (at(P, T_DOT)) {
        advance(P);
        if (!at(P, T_IDENT) && !tok_is_keyword(P->tok.kind)) {
            error_expected(P, "a field name after '.'");
            return NULL;
        }
        if (n->kind != N_NAME) {
            diag_error(P->C, n->sp, "only a step name can be followed by '.field' (like a.amount)");
            return NULL;
        }
        span fsp = P->tok.sp;
        uint32_t flen;
        const char *fname = tok_text(P, &flen);
        advance(P);
        if (at(P, T_LPAREN)) {
            span open = P->tok.sp;
            advance(P);
            node *c = node_new(P, N_CALL, span_join(n->sp, fsp));
            if (c == NULL || !parse_args(P, open, &c->args, &c->nargs))
                return NULL;
            c->bind = n->name;
            c->bindlen = n->namelen;
            c->name = fname;
            c->namelen = flen;
            c->sp2 = fsp;
            c->fn = (uint8_t)fn_lookup(fname, flen);
            c->sp = span_join(c->sp, P->last);
            n = seal(P, c);
            if (n == NULL)
                return NULL;
        } else {
            node *m = node_new(P, N_MEMBER, span_join(n->sp, fsp));
            if (m == NULL)
                return NULL;
            m->bind = n->name;
            m->bindlen = n->namelen;
            m->name = fname;
            m->namelen = flen;
            m->sp2 = fsp;
            n = m;
        }
    }
    if (at(P, T_OVER)) {
        span over = P->tok.sp;
        if (n->kind != N_CALL || n->bind != NULL) {
            diag_error(P->C, over,
                       "'over' must follow an aggregate such as count(), sum(amount) or "
                       "avg(amount)");
            return NULL;
        }
        advance(P);
        n->kind = N_AGG;
        if (at(P, T_DURATION)) {
            if (P->tok.v.ms <= 0) {
                if (!P->tok.bad)
                    diag_error(P->C, P->tok.sp, "a window must be longer than 0");
                return NULL;
            }
            n->win = WIN_RANGE;
            n->win_ms = P->tok.v.ms;
            n->sp2 = span_join(over, P->tok.sp);
            n->sp = span_join(n->sp, P->tok.sp);
            advance(P);
            if (at(P, T_BEFORE)) {
                n->win = WIN_BEFORE;
                n->sp2 = span_join(n->sp2, P->tok.sp);
                n->sp = span_join(n->sp, P->tok.sp);
                advance(P);
            }
        } else if (at(P, T_HISTORY)) {
            n->win = WIN_HISTORY;
            n->sp2 = span_join(over, P->tok.sp);
            n->sp = span_join(n->sp, P->tok.sp);
            advance(P);
        } else if (at(P, T_NUMBER)) {
            diag_error(P->C, P->tok.sp,
                       "a window needs a unit: write 'over 10m' (ms, s, m, h or d)");
            return NULL;
        } else {
            error_expected(P, "a duration (like 1h) or 'history' after 'over'");
            return NULL;
        }
    }
    return n;
}

/* unary := '-' unary | postfix */
static node *
parse_unary(parser *P)
{
    if (!at(P, T_MINUS))
        return parse_postfix(P);
    span op = P->tok.sp;
    if (!enter(P))
        return NULL;
    advance(P);
    node *a = parse_unary(P);
    leave(P);
    if (a == NULL)
        return NULL;
    node *n = node_new(P, N_NEG, span_join(op, a->sp));
    if (n)
        n->a = a;
    return seal(P, n);
}

static node *
binary(parser *P, tok_kind op, span opsp, node *a, node *b)
{
    node *n = node_new(P, N_BINARY, span_join(a->sp, b->sp));
    if (n == NULL)
        return NULL;
    n->op = (uint8_t)op;
    n->sp2 = opsp;
    n->a = a;
    n->b = b;
    return seal(P, n);
}

/* mul := unary { ('*' | '/' | '%') unary } */
static node *
parse_mul(parser *P)
{
    node *a = parse_unary(P);
    while (a != NULL && (at(P, T_STAR) || at(P, T_SLASH) || at(P, T_PERCENT))) {
        token op = P->tok;
        advance(P);
        node *b = parse_unary(P);
        if (b == NULL)
            return NULL;
        a = binary(P, op.kind, op.sp, a, b);
    }
    return a;
}

/* add := mul { ('+' | '-') mul } */
static node *
parse_add(parser *P)
{
    node *a = parse_mul(P);
    while (a != NULL && (at(P, T_PLUS) || at(P, T_MINUS))) {
        token op = P->tok;
        advance(P);
        node *b = parse_mul(P);
        if (b == NULL)
            return NULL;
        a = binary(P, op.kind, op.sp, a, b);
    }
    return a;
}

static bool
is_cmp(tok_kind k)
{
    return k == T_EQ || k == T_NE || k == T_LT || k == T_LE || k == T_GT || k == T_GE;
}

/* cmp := add [ ('==' | '!=' | '<' | '<=' | '>' | '>=') add | ['not'] 'in' add ]
 * Comparisons do not chain: `a < b < c` is an error, not (a < b) < c. */
static node *
parse_cmp(parser *P)
{
    node *a = parse_add(P);
    if (a == NULL)
        return NULL;
    node *n = NULL;
    if (at(P, T_ASSIGN)) {
        /* `amount = 100`: say so once, then read it as the comparison */
        diag_error(P->C, P->tok.sp, "'=' is not a comparison; write '=='");
        P->tok.kind = T_EQ;
    }
    if (is_cmp(P->tok.kind)) {
        token op = P->tok;
        advance(P);
        node *b = parse_add(P);
        if (b == NULL)
            return NULL;
        n = binary(P, op.kind, op.sp, a, b);
    } else if (at(P, T_IN) || (at(P, T_NOT) && peek_ahead(P)->kind == T_IN)) {
        span opsp = P->tok.sp;
        bool neg = at(P, T_NOT);
        if (neg) {
            advance(P);
            opsp = span_join(opsp, P->tok.sp);
        }
        advance(P);
        node *b = parse_add(P);
        if (b == NULL)
            return NULL;
        n = node_new(P, N_IN, span_join(a->sp, b->sp));
        if (n == NULL)
            return NULL;
        n->op = neg;
        n->sp2 = opsp;
        n->a = a;
        n->b = b;
        if (seal(P, n) == NULL)
            return NULL;
    } else {
        return a;
    }
    if (n != NULL && (is_cmp(P->tok.kind) || at(P, T_IN))) {
        diag_error(P->C, P->tok.sp,
                   "comparisons do not chain; write 'a < b and b < c', or use parentheses");
        return NULL;
    }
    return n;
}

/* match := cmp { ('~' | '!~') REGEX } */
static node *
parse_match(parser *P)
{
    node *a = parse_cmp(P);
    while (a != NULL && (at(P, T_TILDE) || at(P, T_NTILDE))) {
        token op = P->tok;
        advance(P);
        if (at(P, T_REGEX) && P->tok.bad)
            return NULL; /* the lexer said what is wrong with it */
        if (!at(P, T_REGEX)) {
            char what[64];
            snprintf(what, sizeof what, "a regex like /pattern/ after '%s'", tok_spelling(op.kind));
            error_expected(P, what);
            return NULL;
        }
        token rx = P->tok;
        node *n = node_new(P, N_REGEX, span_join(a->sp, rx.sp));
        if (n == NULL)
            return NULL;
        n->op = op.kind == T_NTILDE;
        n->sp2 = op.sp;
        n->a = a;
        n->rx_pat = cstate_strndup(P->C, rx.v.rx.pat, rx.v.rx.len);
        n->rx_len = rx.v.rx.len;
        n->rx_flags = rx.v.rx.flags;
        n->rx_sp = rx.sp;
        n->rx_exact = P->L->map == NULL;
        advance(P);
        a = seal(P, n);
    }
    return a;
}

/* not := 'not' not | match */
static node *
parse_not(parser *P)
{
    if (!at(P, T_NOT))
        return parse_match(P);
    span op = P->tok.sp;
    if (!enter(P))
        return NULL;
    advance(P);
    node *a = parse_not(P);
    leave(P);
    if (a == NULL)
        return NULL;
    node *n = node_new(P, N_NOT, span_join(op, a->sp));
    if (n)
        n->a = a;
    return seal(P, n);
}

/* One n-ary node for `a op b op c ...`: a chain of thousands of terms (a
 * generated allow-list) stays one level deep. */
static node *
parse_chain(parser *P, tok_kind op, node *(*operand)(parser *))
{
    node *a = operand(P);
    if (a == NULL || !at(P, op))
        return a;
    vg_buf terms = {0};
    node *n = NULL;
    span opsp = P->tok.sp;
    if (vg_buf_append(&terms, &a, sizeof a) != VG_OK)
        goto oom;
    while (at(P, op)) {
        advance(P);
        node *b = operand(P);
        if (b == NULL)
            goto done;
        if (vg_buf_append(&terms, &b, sizeof b) != VG_OK)
            goto oom;
    }
    n = node_new(P, N_LOGIC, a->sp);
    if (n == NULL)
        goto done;
    n->op = (uint8_t)op;
    n->sp2 = opsp;
    n->nargs = (uint32_t)(terms.len / sizeof(node *));
    n->args = cstate_alloc(P->C, terms.len);
    if (n->args == NULL) {
        n = NULL;
        goto done;
    }
    memcpy(n->args, terms.data, terms.len);
    n->sp = span_join(a->sp, n->args[n->nargs - 1]->sp);
    n = seal(P, n);
    goto done;
oom:
    P->C->oom = true;
done:
    vg_buf_free(&terms);
    return n;
}

/* and := not { 'and' not } */
static node *
parse_and(parser *P)
{
    return parse_chain(P, T_AND, parse_not);
}

/* expr := and { 'or' and } */
static node *
parse_expr(parser *P)
{
    if (!enter(P))
        return NULL;
    node *a = parse_chain(P, T_OR, parse_and);
    leave(P);
    return a;
}

/* ---- Message templates ------------------------------------------------------
 * template := { text | '{{' | '}}' | '{' expr '}' }   inside a string */

static tmpl *
parse_template(parser *P, const token *str)
{
    char *text;
    uint32_t len;
    uint32_t *map;
    if (!lex_decode_template(P->L, str, &text, &len, &map))
        return NULL;
    tmpl *tp = cstate_alloc(P->C, sizeof(tmpl));
    tmpl_part *parts = cstate_alloc(P->C, sizeof(tmpl_part) * (len + 1));
    if (tp == NULL || parts == NULL)
        return NULL;
    tp->sp = str->sp;
    tp->parts = parts;
    vg_buf lit = {0};
    bool ok = true;
    uint32_t i = 0;
    while (i < len && ok) {
        char c = text[i];
        if ((c == '{' || c == '}') && i + 1 < len && text[i + 1] == c) {
            if (vg_buf_putc(&lit, c) != VG_OK)
                P->C->oom = true;
            i += 2;
            continue;
        }
        if (c == '}') {
            span sp = {P->file, map[i], map[i + 1]};
            diag_error(P->C, sp, "unmatched '}' in a message; write '}}' for a brace");
            ok = false;
            break;
        }
        if (c != '{') {
            if (vg_buf_putc(&lit, c) != VG_OK)
                P->C->oom = true;
            i++;
            continue;
        }
        /* flush the literal text before the expression */
        if (lit.len > 0) {
            parts[tp->nparts].text = cstate_strndup(P->C, lit.data, lit.len);
            parts[tp->nparts++].len = (uint32_t)lit.len;
            lit.len = 0;
        }
        span open = {P->file, map[i], map[i + 1]};
        lexer sub;
        lex_init(&sub, P->C, P->file, text, len, map);
        sub.pos = i + 1;
        parser SP = *P;
        SP.L = &sub;
        SP.has_ahead = false;
        SP.in_template = true;
        advance(&SP);
        if (at(&SP, T_RBRACE)) {
            diag_error(P->C, span_join(open, SP.tok.sp),
                       "empty '{}' in a message; write '{{' for a brace");
            ok = false;
            break;
        }
        node *e = parse_expr(&SP);
        if (e != NULL && !at(&SP, T_RBRACE))
            error_unclosed(&SP, "}", "{", open);
        if (e == NULL || !at(&SP, T_RBRACE)) {
            /* `message "{attr("k")}"`: the inner quote ended the string */
            const srcfile *f = &P->C->files[P->file];
            char after = str->sp.end < f->len ? f->text[str->sp.end] : ' ';
            if (at(&SP, T_EOF) &&
                (after == '_' || after == '"' || after == '(' || (after >= 'a' && after <= 'z') ||
                 (after >= 'A' && after <= 'Z')))
                diag_note(P->C, str->sp,
                          "a '\"' inside a message ends it: write \\\" (like "
                          "{attr(\\\"k\\\")})");
            ok = false;
            break;
        }
        parts[tp->nparts++].expr = e;
        i = SP.tok.lend;
    }
    if (ok && lit.len > 0) {
        parts[tp->nparts].text = cstate_strndup(P->C, lit.data, lit.len);
        parts[tp->nparts++].len = (uint32_t)lit.len;
    }
    vg_buf_free(&lit);
    return ok ? tp : NULL;
}

/* ---- Patterns -------------------------------------------------------------- */

static bool
parse_stream(parser *P, const char *after, uint8_t *stream, span *sp)
{
    if (at(P, T_TXN) || at(P, T_EVENT)) {
        *stream = at(P, T_TXN) ? VG_STREAM_TXN : VG_STREAM_EVENT;
        *sp = P->tok.sp;
        advance(P);
        return true;
    }
    char what[96];
    snprintf(what, sizeof what, "'txn' or 'event' after %s", after);
    error_expected(P, what);
    if (at(P, T_IDENT)) {
        static const char *const streams[] = {"txn", "event"};
        const char *sug =
            diag_suggest(P->L->src + P->tok.lstart, P->tok.lend - P->tok.lstart, streams, 2);
        if (sug)
            diag_note(P->C, P->tok.sp, "did you mean '%s'?", sug);
    }
    return false;
}

static bool
parse_int(parser *P, const char *what, int64_t lo, int64_t hi, int64_t *out)
{
    if (at(P, T_MINUS) && peek_ahead(P)->kind == T_NUMBER) {
        span sp = span_join(P->tok.sp, P->ahead.sp);
        diag_error(P->C, sp, "expected %s, found '-%.*s'", what,
                   (int)(P->ahead.lend - P->ahead.lstart), P->L->src + P->ahead.lstart);
        advance(P);
        advance(P);
        return false;
    }
    if (!at(P, T_NUMBER)) {
        error_expected(P, what);
        return false;
    }
    double v = P->tok.v.num;
    bool integral = true;
    for (uint32_t i = P->tok.lstart; i < P->tok.lend; i++) {
        char c = P->L->src[i];
        if (c == '.' || c == 'e' || c == 'E')
            integral = false;
    }
    if (!integral || v < (double)lo || v > (double)hi) {
        if (!P->tok.bad) {
            char buf[64];
            diag_error(P->C, P->tok.sp, "expected %s, found %s", what, found(P, buf, sizeof buf));
        }
        advance(P);
        return false;
    }
    *out = (int64_t)v;
    advance(P);
    return true;
}

/* After an error inside a quantifier: skip to its '}' when it is close, so
 * that brace is not taken for the end of the rule. */
static void
skip_quantifier(parser *P)
{
    for (int i = 0; i < 8 && !at(P, T_EOF); i++) {
        if (at(P, T_RBRACE)) {
            advance(P);
            return;
        }
        if (at(P, T_ARROW) || at(P, T_WITHIN) || is_clause_keyword(P->tok.kind) || at(P, T_RULE) ||
            at(P, T_LIST) || at(P, T_LBRACE))
            return;
        advance(P);
    }
}

/* quant := '{' INT [ ',' [ INT ] ] '}'
 * An error here is reported and the quantifier skipped; the step stands. */
static bool
parse_quantifier(parser *P, step *s)
{
    span open = P->tok.sp;
    advance(P);
    int64_t lo, hi = -2;
    static const char what[] = "a count like {3}, {3,} or {2,4} (at most 1000000)";
    if (!parse_int(P, what, 0, 1000000, &lo)) {
        skip_quantifier(P);
        return true;
    }
    if (accept(P, T_COMMA)) {
        hi = -1;
        if (at(P, T_NUMBER) && !parse_int(P, what, 0, 1000000, &hi)) {
            skip_quantifier(P);
            return true;
        }
    }
    if (!at(P, T_RBRACE)) {
        if (at(P, T_COMMA) || at(P, T_NUMBER))
            error_expected(P, "'}' after a count like {2,4}");
        else
            error_unclosed(P, "}", "{", open);
        skip_quantifier(P);
        return true;
    }
    s->quant_sp = span_join(open, P->tok.sp);
    advance(P);
    s->qmin = (int32_t)lo;
    s->qmax = hi == -2 ? (int32_t)lo : (int32_t)hi;
    if (lo < 1)
        diag_error(P->C, s->quant_sp, "a quantifier needs at least 1 event");
    else if (hi >= 0 && hi < lo)
        diag_error(P->C, s->quant_sp, "empty range: the upper count is below the lower one");
    return true;
}

/* step := 'not' stream [ 'by' expr ] [ 'where' expr ]
 *       | NAME ':' stream [ 'by' expr ] [ 'where' expr ] [ quant ] */
static bool
parse_step(parser *P, step *s)
{
    memset(s, 0, sizeof *s);
    s->sp = P->tok.sp;
    if (accept(P, T_NOT)) {
        s->neg = true;
        if (at(P, T_IDENT) && peek_ahead(P)->kind == T_COLON) {
            diag_error(P->C, P->tok.sp,
                       "a 'not' step has no name (nothing it matches can be used): write "
                       "'not txn ...' or 'not event ...'");
            return false;
        }
        if (!parse_stream(P, "'not'", &s->stream, &s->stream_sp))
            return false;
    } else if (at(P, T_IDENT)) {
        s->name_sp = P->tok.sp;
        s->name = tok_text(P, &s->namelen);
        advance(P);
        if (!at(P, T_COLON)) {
            char what[128];
            snprintf(what, sizeof what, "':' after the step name (like '%.*s: txn where ...')",
                     (int)(s->namelen > 32 ? 32 : s->namelen), s->name ? s->name : "");
            error_expected(P, what);
            return false;
        }
        advance(P);
        char after[64];
        snprintf(after, sizeof after, "'%.*s:'", (int)(s->namelen > 32 ? 32 : s->namelen),
                 s->name ? s->name : "");
        if (!parse_stream(P, after, &s->stream, &s->stream_sp))
            return false;
    } else if (at(P, T_TXN) || at(P, T_EVENT)) {
        diag_error(P->C, P->tok.sp,
                   "a step needs a name so the rule can refer to it: write 'a: %s ...'",
                   tok_spelling(P->tok.kind));
        return false;
    } else {
        error_expected(P, "a step ('a: txn where ...' or 'not event where ...')");
        return false;
    }
    if (accept(P, T_BY)) {
        s->by = parse_expr(P);
        if (s->by == NULL)
            return false;
    }
    if (accept(P, T_WHERE)) {
        s->where = parse_expr(P);
        if (s->where == NULL)
            return false;
    }
    if (at(P, T_LBRACE)) {
        if (s->neg) {
            diag_error(P->C, P->tok.sp, "a 'not' step can't have a quantifier");
            return false;
        }
        if (!parse_quantifier(P, s))
            return false;
    }
    s->sp = span_join(s->sp, P->last);
    return true;
}

/* pattern := step { '->' step } */
static pattern *
parse_pattern(parser *P)
{
    pattern *pt = cstate_alloc(P->C, sizeof(pattern));
    if (pt == NULL)
        return NULL;
    pt->sp = P->tok.sp;
    vg_buf steps = {0};
    for (;;) {
        step s;
        if (!parse_step(P, &s)) {
            vg_buf_free(&steps);
            return NULL;
        }
        if (vg_buf_append(&steps, &s, sizeof s) != VG_OK) {
            P->C->oom = true;
            vg_buf_free(&steps);
            return NULL;
        }
        pt->sp.end = s.sp.end;
        if (at(P, T_ASSIGN) && peek_ahead(P)->kind == T_GT) {
            /* `=>`: say so once and go on as if it were `->` */
            diag_error(P->C, span_join(P->tok.sp, P->ahead.sp), "write '->' between steps");
            advance(P);
            P->tok.kind = T_ARROW;
        } else if ((at(P, T_IDENT) && peek_ahead(P)->kind == T_COLON) || at(P, T_NOT)) {
            error_expected(P, "'->' between steps");
            vg_buf_free(&steps);
            return NULL;
        }
        if (!at(P, T_ARROW))
            break;
        if (steps.len / sizeof(step) == VG_MAX_STEPS) {
            diag_error(P->C, P->tok.sp, "a pattern has at most %d steps", VG_MAX_STEPS);
            vg_buf_free(&steps);
            return NULL;
        }
        advance(P);
    }
    pt->nsteps = (uint32_t)(steps.len / sizeof(step));
    pt->steps = cstate_alloc(P->C, steps.len);
    if (pt->steps != NULL)
        memcpy(pt->steps, steps.data, steps.len);
    vg_buf_free(&steps);
    return pt->steps ? pt : NULL;
}

/* ---- Rules and lists ------------------------------------------------------- */

static const char *const clause_names[CL_COUNT_] = {
#define CL(n, s) s,
    VG_CLAUSES(CL)
#undef CL
};

static int
clause_of(tok_kind k)
{
    switch (k) {
    case T_DESCRIPTION: return CL_DESCRIPTION;
    case T_KEY: return CL_KEY;
    case T_ON: return CL_ON;
    case T_WHERE: return CL_WHERE;
    case T_WHEN: return CL_WHEN;
    case T_MATCH: return CL_MATCH;
    case T_SCORE: return CL_SCORE;
    case T_ACTION: return CL_ACTION;
    case T_SUPPRESS: return CL_SUPPRESS;
    case T_MESSAGE: return CL_MESSAGE;
    case T_TAGS: return CL_TAGS;
    case T_MODE: return CL_MODE;
    default: return -1;
    }
}

/* Skips to where parsing can resume inside a rule: a clause keyword or the
 * rule's '}' at brace depth 0, or the next declaration. */
static void
sync_clause(parser *P)
{
    /* what is skipped was already reported as broken: lexical errors in it
     * would only echo that */
    bool quiet = P->C->quiet;
    P->C->quiet = true;
    int depth = 0;
    while (!at(P, T_EOF) && !at(P, T_RULE) && !at(P, T_LIST) && !diag_stopped(P->C, P->file)) {
        if (depth == 0 && at(P, T_RBRACE))
            break;
        if (depth == 0 && is_clause_keyword(P->tok.kind) && !(P->in_match && at(P, T_WHERE)))
            break;
        if (at(P, T_LBRACE))
            depth++;
        else if (at(P, T_RBRACE))
            depth--;
        else if (at(P, T_WITHIN) && P->in_match && depth == 0)
            P->in_match = false; /* past the pattern: `where` is a clause again */
        advance(P);
    }
    P->C->quiet = quiet;
}

/* Skips to the next `rule` or `list`. */
static void
sync_decl(parser *P)
{
    bool quiet = P->C->quiet;
    P->C->quiet = true;
    while (!at(P, T_EOF) && !at(P, T_RULE) && !at(P, T_LIST) && !diag_stopped(P->C, P->file))
        advance(P);
    P->C->quiet = quiet;
}

static bool
parse_duration(parser *P, const char *what, int64_t *ms)
{
    if (at(P, T_DURATION)) {
        if (P->tok.v.ms <= 0) {
            if (!P->tok.bad)
                diag_error(P->C, P->tok.sp, "%s must be longer than 0", what);
            advance(P);
            return false;
        }
        *ms = P->tok.v.ms;
        advance(P);
        return *ms > 0;
    }
    if (at(P, T_NUMBER)) {
        diag_error(P->C, P->tok.sp, "%s needs a unit: write 10m, 1h, 30s, 500ms or 7d", what);
        advance(P);
        return false;
    }
    char buf[96];
    snprintf(buf, sizeof buf, "a duration (like 10m) for %s", what);
    error_expected(P, buf);
    return false;
}

static bool
parse_string_value(parser *P, const char *clause, const char **out, uint32_t *len)
{
    if (!at(P, T_STRING)) {
        char what[96];
        snprintf(what, sizeof what, "a string after '%s'", clause);
        error_expected(P, what);
        return false;
    }
    *out = P->tok.v.s.str;
    if (len)
        *len = P->tok.v.s.len;
    advance(P);
    return true;
}

/* A bare word out of a closed set (action, mode). */
static bool
parse_word(parser *P, const char *clause, const char *const *words, size_t n, int *out)
{
    if (at(P, T_IDENT)) {
        uint32_t len = P->tok.lend - P->tok.lstart;
        const char *s = P->L->src + P->tok.lstart;
        for (size_t i = 0; i < n; i++) {
            if (strlen(words[i]) == len && memcmp(words[i], s, len) == 0) {
                *out = (int)i;
                advance(P);
                return true;
            }
        }
        char list[96] = "";
        for (size_t i = 0; i < n; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                     i == 0       ? ""
                     : i + 1 == n ? " or "
                                  : ", ",
                     words[i]);
        diag_error(P->C, P->tok.sp, "unknown %s '%.*s'; expected %s", clause,
                   (int)(len > 40 ? 40 : len), s, list);
        const char *sug = diag_suggest(s, len, words, n);
        if (sug)
            diag_note(P->C, P->tok.sp, "did you mean '%s'?", sug);
        advance(P);
        return false;
    }
    char what[96] = "";
    for (size_t i = 0; i < n; i++)
        snprintf(what + strlen(what), sizeof what - strlen(what), "%s'%s'",
                 i == 0       ? ""
                 : i + 1 == n ? " or "
                              : ", ",
                 words[i]);
    snprintf(what + strlen(what), sizeof what - strlen(what), " after '%s'", clause);
    error_expected(P, what);
    return false;
}

/* clause := 'description' STRING | 'key' expr | 'on' ('txn' | 'event')
 *         | 'where' expr | 'when' expr | 'match' pattern 'within' DURATION
 *         | 'score' INT | 'action' ('allow' | 'review' | 'block')
 *         | 'suppress' DURATION | 'message' STRING | 'tags' STRING { ',' STRING }
 *         | 'mode' ('active' | 'shadow') */
static bool
parse_clause(parser *P, rule *r)
{
    static const char *const actions[] = {"allow", "review", "block"};
    static const char *const modes[] = {"active", "shadow"};
    int cl = clause_of(P->tok.kind);
    span kw = P->tok.sp;
    bool dup = r->has[cl];
    if (dup) {
        diag_error(P->C, kw, "'%s' is given twice in rule '%s'", clause_names[cl], r->name);
        diag_note(P->C, r->clause_sp[cl], "first given here");
    } else if ((cl == CL_WHEN && r->has[CL_MATCH]) || (cl == CL_MATCH && r->has[CL_WHEN])) {
        int other = cl == CL_WHEN ? CL_MATCH : CL_WHEN;
        diag_error(P->C, kw, "a rule has either 'when' or 'match', not both");
        diag_note(P->C, r->clause_sp[other], "'%s' given here", clause_names[other]);
        dup = true;
    }
    rule scratch; /* a repeated clause is parsed for its errors, then dropped */
    rule *into = dup ? &scratch : r;
    if (dup)
        memset(&scratch, 0, sizeof scratch);
    advance(P);
    bool ok = true;
    switch (cl) {
    case CL_DESCRIPTION: ok = parse_string_value(P, "description", &into->description, NULL); break;
    case CL_KEY: ok = (into->key = parse_expr(P)) != NULL; break;
    case CL_ON: {
        span ssp;
        ok = parse_stream(P, "'on'", &into->on, &ssp);
    } break;
    case CL_WHERE: ok = (into->where = parse_expr(P)) != NULL; break;
    case CL_WHEN: ok = (into->when = parse_expr(P)) != NULL; break;
    case CL_MATCH:
        P->in_match = true;
        into->match = parse_pattern(P);
        ok = into->match != NULL;
        if (ok && !at(P, T_WITHIN) && r->stray_within) {
            P->in_match = false; /* reported where it stands; use it */
            break;
        }
        if (ok && !at(P, T_WITHIN)) {
            error_expected(P, "'within' and a duration after the pattern (a pattern needs a "
                              "time limit, like 'within 10m')");
            ok = false;
        }
        if (ok) {
            P->in_match = false;
            advance(P);
            ok = parse_duration(P, "'within'", &into->within_ms);
        }
        break;
    case CL_SCORE: {
        int64_t v;
        ok = parse_int(P, "a score: a whole number from 0 to 100", 0, 100, &v);
        into->score = ok ? (int)v : 0;
        break;
    }
    case CL_ACTION: {
        int v = ACT_REVIEW;
        ok = parse_word(P, "action", actions, 3, &v);
        into->action = (uint8_t)v;
        break;
    }
    case CL_SUPPRESS: ok = parse_duration(P, "'suppress'", &into->suppress_ms); break;
    case CL_MESSAGE:
        if (!at(P, T_STRING)) {
            error_expected(P, "a string after 'message'");
            ok = false;
            break;
        }
        {
            token str = P->tok;
            /* a string the lexer already complained about is not parsed as a
             * template: its braces could be halves of a broken escape */
            if (!str.bad) {
                into->message = parse_template(P, &str);
                ok = into->message != NULL;
            }
            advance(P);
        }
        break;
    case CL_TAGS: {
        vg_buf tags = {0};
        uint32_t n = 0;
        do {
            const char *t;
            ok = parse_string_value(P, n == 0 ? "tags" : ",", &t, NULL);
            if (ok && vg_buf_append(&tags, &t, sizeof t) != VG_OK)
                P->C->oom = true;
            n += ok;
        } while (ok && accept(P, T_COMMA));
        if (ok && n > 0 && !P->C->oom) { /* out of memory: tags may be missing */
            into->tags = cstate_alloc(P->C, tags.len);
            if (into->tags)
                memcpy(into->tags, tags.data, tags.len);
            into->ntags = n;
        }
        vg_buf_free(&tags);
        break;
    }
    case CL_MODE: {
        int v = 0;
        ok = parse_word(P, "mode", modes, 2, &v);
        into->shadow = v == 1;
        break;
    }
    default: break;
    }
    if (!dup) {
        r->has[cl] = true;
        r->clause_sp[cl] = kw;
    }
    P->in_match = P->in_match && !ok;
    return ok && !dup;
}

static const char *const all_clause_names[] = {
#define CL(n, s) s,
    VG_CLAUSES(CL)
#undef CL
        "within",
};

/* Words from other languages that people write in conditions, with what to
 * write instead; NULL when the current token is none of them. */
static const char *
junk_word(parser *P)
{
    static const struct {
        const char *word, *advice;
    } words[] = {
        {"like", "there is no LIKE: use a regex (x ~ /^abc/) or starts_with, ends_with, contains"},
        {"matches", "write '~' for a regex match: x ~ /pattern/"},
        {"between", "there is no BETWEEN: write 'x >= a and x <= b'"},
        {"is", "there is no IS: compare with == or !="},
        {"null", "there is no null: a missing value makes a comparison unknown (see 'Missing "
                 "values' in docs/language.md)"},
        {"then", "'then' is not needed: steps of a pattern are joined with '->'"},
    };
    uint32_t len = P->tok.lend - P->tok.lstart;
    const char *s = P->L->src + P->tok.lstart;
    for (size_t i = 0; i < VG_ARRAY_LEN(words); i++)
        if (strlen(words[i].word) == len && strncasecmp(words[i].word, s, len) == 0)
            return words[i].advice;
    return NULL;
}

/* rule := 'rule' NAME '{' { clause } '}' */
static void
parse_rule(parser *P)
{
    span kw = P->tok.sp;
    advance(P);
    rule *r = cstate_alloc(P->C, sizeof(rule));
    if (r == NULL)
        return;
    r->file = P->file;
    r->sp = kw;
    r->action = ACT_REVIEW;
    r->on = VG_STREAM_TXN;
    if (at(P, T_IDENT)) {
        r->name_sp = P->tok.sp;
        r->name = tok_text(P, &r->namelen);
        advance(P);
    } else {
        if (tok_is_keyword(P->tok.kind))
            diag_error(P->C, P->tok.sp, "'%s' is a reserved word and can't name a rule",
                       tok_spelling(P->tok.kind));
        else
            error_expected(P, "a rule name after 'rule'");
        if (!at(P, T_EOF))
            advance(P); /* `rule list {`: do not start over at `list` */
        sync_decl(P);
        return;
    }
    if (r->name == NULL)
        return;
    if (!at(P, T_LBRACE)) {
        char what[96];
        snprintf(what, sizeof what, "'{' after 'rule %.40s'", r->name);
        error_expected(P, what);
        sync_decl(P);
        r->bad = true;
        goto done;
    }
    span open = P->tok.sp;
    advance(P);
    int last = -1; /* the clause just parsed */
    for (;;) {
        if (diag_stopped(P->C, P->file) || P->C->oom)
            break;
        if (at(P, T_RBRACE)) {
            r->sp = span_join(r->sp, P->tok.sp);
            advance(P);
            break;
        }
        if (at(P, T_EOF) || at(P, T_RULE) || at(P, T_LIST)) {
            char of[96];
            snprintf(of, sizeof of, " of rule '%.40s'", r->name);
            error_unclosed_of(P, "}", "{", of, open);
            break;
        }
        P->too_deep = false;
        P->depth = 0;
        if (is_clause_keyword(P->tok.kind)) {
            int cl = clause_of(P->tok.kind);
            bool dup = r->has[cl];
            unsigned before = hard_errors(P);
            bool ok = parse_clause(P, r);
            /* a clause with any error (the lexer's too) is not type-checked,
             * so one mistake does not also show up as a type error */
            if (!dup && (!ok || hard_errors(P) != before))
                r->failed[cl] = true;
            if (!ok)
                sync_clause(P);
            last = dup ? -1 : cl;
            continue;
        }
        /* Junk right after a clause most likely belongs to it: `where x like
         * "a%"`. The clause is not type-checked then, and when it already has
         * an error, the junk is part of that one mistake. */
        if (last >= 0 && !at(P, T_WITHIN)) {
            bool quiet_junk = r->failed[last];
            r->failed[last] = true;
            if (quiet_junk) {
                advance(P);
                sync_clause(P);
                continue;
            }
        }
        last = -1;
        char buf[64];
        if (at(P, T_IDENT) && junk_word(P) != NULL) {
            diag_error(P->C, P->tok.sp, "%s", junk_word(P));
        } else if (at(P, T_RPAREN)) {
            diag_error(P->C, P->tok.sp, "unmatched ')'");
        } else if (at(P, T_LBRACKET)) {
            diag_error(P->C, P->tok.sp,
                       "there is no indexing with [...]: read an attribute with attr(\"name\")");
        } else if (at(P, T_IDENT)) {
            uint32_t len = P->tok.lend - P->tok.lstart;
            const char *s = P->L->src + P->tok.lstart;
            const char *sug =
                diag_suggest(s, len, all_clause_names, VG_ARRAY_LEN(all_clause_names));
            diag_error(P->C, P->tok.sp, "unknown clause %s in rule '%s'", found(P, buf, sizeof buf),
                       r->name);
            if (sug)
                diag_note(P->C, P->tok.sp, "did you mean '%s'?", sug);
        } else if (at(P, T_WITHIN)) {
            diag_error(P->C, P->tok.sp,
                       r->has[CL_MATCH] && !r->failed[CL_MATCH]
                           ? "'within' is given twice"
                           : "'within' belongs right after a 'match' pattern");
            advance(P);
            if (at(P, T_DURATION)) {
                if (!r->stray_within && !r->has[CL_MATCH] && !P->tok.bad) {
                    r->stray_within = true; /* a later `match` takes it, no second error */
                    r->within_ms = P->tok.v.ms;
                }
                advance(P);
            }
            continue;
        } else {
            diag_error(P->C, P->tok.sp,
                       "expected a clause (where, when, match, score, action, message, ...) or "
                       "'}', found %s",
                       found(P, buf, sizeof buf));
        }
        bool quiet = P->C->quiet;
        P->C->quiet = true; /* the rest is part of what was just reported */
        advance(P);
        P->C->quiet = quiet;
        sync_clause(P);
    }
done:
    P->in_match = false;
    if (P->C->nrules == P->C->caprules) {
        uint32_t cap = P->C->caprules ? P->C->caprules * 2 : 16;
        rule **v = cstate_alloc(P->C, cap * sizeof(rule *));
        if (v == NULL)
            return;
        if (P->C->nrules)
            memcpy(v, P->C->rules, P->C->nrules * sizeof(rule *));
        P->C->rules = v;
        P->C->caprules = cap;
    }
    P->C->rules[P->C->nrules++] = r;
}

/* list := 'list' NAME '=' ( '[' [ expr { ',' expr } [','] ] ']' | 'file' STRING ) */
static void
parse_list(parser *P)
{
    span kw = P->tok.sp;
    unsigned errors_before = P->C->nerrors;
    advance(P);
    list_decl *l = cstate_alloc(P->C, sizeof(list_decl));
    if (l == NULL)
        return;
    l->sp = kw;
    if (!at(P, T_IDENT)) {
        if (tok_is_keyword(P->tok.kind))
            diag_error(P->C, P->tok.sp, "'%s' is a reserved word and can't name a list",
                       tok_spelling(P->tok.kind));
        else
            error_expected(P, "a list name after 'list'");
        if (!at(P, T_EOF))
            advance(P); /* `list rule = ...`: do not start over at `rule` */
        sync_decl(P);
        return;
    }
    l->name_sp = P->tok.sp;
    l->name = tok_text(P, &l->namelen);
    advance(P);
    if (!accept(P, T_ASSIGN)) {
        error_expected(P, "'=' after the list name");
        sync_decl(P);
        l->bad = true;
        goto done;
    }
    if (accept(P, T_FILE)) {
        l->from_file = true;
        if (!at(P, T_STRING)) {
            error_expected(P, "a file path in quotes after 'file'");
            sync_decl(P);
            l->bad = true;
            goto done;
        }
        l->path = P->tok.v.s.str;
        l->path_sp = P->tok.sp;
        l->sp = span_join(l->sp, P->tok.sp);
        advance(P);
    } else if (at(P, T_LBRACKET)) {
        P->depth = 0;
        P->too_deep = false;
        node *n = parse_list_literal(P);
        if (n == NULL) {
            sync_decl(P);
            l->bad = true;
            goto done;
        }
        l->items = n->args;
        l->nitems = n->nargs;
        l->sp = span_join(l->sp, n->sp);
    } else {
        error_expected(P, "'[' or 'file' after '='");
        sync_decl(P);
        l->bad = true;
        goto done;
    }
    if (!at(P, T_EOF) && !at(P, T_RULE) && !at(P, T_LIST)) {
        char buf[64];
        diag_error(P->C, P->tok.sp, "expected 'rule' or 'list' after the list, found %s",
                   found(P, buf, sizeof buf));
        sync_decl(P);
    }
done:
    l->bad = l->bad || P->C->nerrors != errors_before;
    if (P->C->nlists == P->C->caplists) {
        uint32_t cap = P->C->caplists ? P->C->caplists * 2 : 16;
        list_decl **v = cstate_alloc(P->C, cap * sizeof(list_decl *));
        if (v == NULL)
            return;
        if (P->C->nlists)
            memcpy(v, P->C->lists, P->C->nlists * sizeof(list_decl *));
        P->C->lists = v;
        P->C->caplists = cap;
    }
    P->C->lists[P->C->nlists++] = l;
}

/* file := { list | rule } EOF */
void
parse_file(cstate *C, uint32_t f)
{
    srcfile *sf = &C->files[f];
    lexer L;
    lex_init(&L, C, f, sf->text, sf->len, NULL);
    parser P = {.C = C, .L = &L, .file = f};
    advance(&P);
    static const char *const decls[] = {"rule", "list"};
    while (!at(&P, T_EOF) && !diag_stopped(C, f) && !C->oom) {
        if (at(&P, T_RULE)) {
            parse_rule(&P);
        } else if (at(&P, T_LIST)) {
            parse_list(&P);
        } else {
            char buf[64];
            diag_error(C, P.tok.sp, "expected 'rule' or 'list', found %s",
                       found(&P, buf, sizeof buf));
            if (at(&P, T_IDENT)) {
                const char *sug =
                    diag_suggest(L.src + P.tok.lstart, P.tok.lend - P.tok.lstart, decls, 2);
                if (sug)
                    diag_note(C, P.tok.sp, "did you mean '%s'?", sug);
            }
            advance(&P);
            sync_decl(&P);
        }
    }
}

/* ---- Map files -----------------------------------------------------------
 * map := { FIELD '=' expr }      one assignment per line, `#` comments */

/* Does the current token start a line? */
static bool
at_line_start(parser *P)
{
    const srcfile *f = &P->C->files[P->file];
    for (uint32_t i = P->tok.sp.start; i > 0; i--) {
        char c = f->text[i - 1];
        if (c == '\n')
            return true;
        if (c != ' ' && c != '\t' && c != '\r')
            return false;
    }
    return true;
}

void
parse_map(cstate *C, uint32_t f)
{
    srcfile *sf = &C->files[f];
    lexer L;
    lex_init(&L, C, f, sf->text, sf->len, NULL);
    parser P = {.C = C, .L = &L, .file = f};
    advance(&P);
    while (!at(&P, T_EOF) && !diag_stopped(C, f) && !C->oom) {
        P.depth = 0;
        P.too_deep = false;
        map_assign a = {0};
        bool ok = false;
        if (at(&P, T_IDENT) || tok_is_keyword(P.tok.kind)) {
            a.name_sp = P.tok.sp;
            a.name = tok_text(&P, &a.namelen);
            advance(&P);
            if (at(&P, T_ASSIGN)) {
                advance(&P);
                a.expr = parse_expr(&P);
                ok = a.expr != NULL;
                if (ok && !at(&P, T_EOF) && !at_line_start(&P)) {
                    error_expected(&P, "the end of the line after the expression");
                    ok = false;
                }
            } else {
                char what[96];
                snprintf(what, sizeof what, "'=' after '%.*s' (a map line is 'field = expression')",
                         (int)(a.namelen > 40 ? 40 : a.namelen), a.name ? a.name : "");
                error_expected(&P, what);
            }
        } else {
            error_expected(&P, "a field name (a map line is 'field = expression')");
        }
        if (ok) {
            if (C->nassigns == C->capassigns) {
                uint32_t cap = C->capassigns ? C->capassigns * 2 : 16;
                map_assign *v = cstate_alloc(C, cap * sizeof(map_assign));
                if (v == NULL)
                    return;
                if (C->nassigns)
                    memcpy(v, C->assigns, C->nassigns * sizeof(map_assign));
                C->assigns = v;
                C->capassigns = cap;
            }
            C->assigns[C->nassigns++] = a;
            continue;
        }
        /* skip to the next line */
        bool quiet = C->quiet;
        C->quiet = true;
        do
            advance(&P);
        while (!at(&P, T_EOF) && !at_line_start(&P));
        C->quiet = quiet;
    }
}
