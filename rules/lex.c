/*
 * lex.c - the lexer: rule source text -> tokens (first stage of the pipeline).
 *
 * The parser pulls tokens one at a time. A lexical error is reported here and
 * lexing goes on, so the parser never sees an "error token": an unknown
 * character is skipped, a bad number still yields a number. The parser marks
 * the enclosing rule bad when the error count moves.
 *
 * A lexer reads either a whole file (map == NULL) or the decoded text of a
 * message template's `{expr}`; `map` then turns offsets back into file offsets.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rulesInt.h"

static const char *const spellings[T_NKINDS] = {
#define TOK(n, s) [T_##n] = s,
    VG_PUNCT_TOKENS(TOK) VG_KEYWORD_TOKENS(TOK)
#undef TOK
};

const char *
tok_spelling(tok_kind k)
{
    return k < T_NKINDS ? spellings[k] : NULL;
}

bool
tok_is_keyword(tok_kind k)
{
    return k >= T_FIRST_KEYWORD && k < T_NKINDS;
}

void
lex_init(lexer *L, cstate *C, uint32_t file, const char *src, uint32_t len, const uint32_t *map)
{
    memset(L, 0, sizeof *L);
    L->C = C;
    L->file = file;
    L->src = src;
    L->len = len;
    L->map = map;
    L->prev = T_EOF;
}

span
lex_span(const lexer *L, uint32_t lstart, uint32_t lend)
{
    span sp = {L->file, lstart, lend};
    if (L->map != NULL) {
        sp.start = L->map[lstart];
        sp.end = L->map[lend];
        if (sp.end < sp.start)
            sp.end = sp.start;
    }
    return sp;
}

static void lex_error(lexer *L, uint32_t start, uint32_t end, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
lex_error(lexer *L, uint32_t start, uint32_t end, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_verror(L->C, lex_span(L, start, end), fmt, ap);
    va_end(ap);
}

static bool
is_ident_start(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool
is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static bool
is_ident_char(int c)
{
    return is_ident_start(c) || is_digit(c);
}

static int
peek(const lexer *L, uint32_t ahead)
{
    uint32_t p = L->pos + ahead;
    return p < L->len ? (unsigned char)L->src[p] : -1;
}

static tok_kind
keyword(const char *s, size_t n)
{
    for (int k = T_FIRST_KEYWORD; k < T_NKINDS; k++) {
        const char *w = spellings[k];
        if (strlen(w) == n && memcmp(w, s, n) == 0)
            return (tok_kind)k;
    }
    return T_IDENT;
}

/* Skips one UTF-8 character outside any literal, reporting it. */
static void
bad_char(lexer *L)
{
    const unsigned char *s = (const unsigned char *)L->src + L->pos;
    uint32_t cp;
    size_t n = vg_utf8_decode(s, L->len - L->pos, &cp);
    char what[64];
    if (n == 0) {
        /* one error for a run of bad bytes */
        uint32_t end = L->pos + 1;
        while (end < L->len && end - L->pos < 64 &&
               vg_utf8_decode(s + (end - L->pos), L->len - end, &cp) == 0)
            end++;
        snprintf(what, sizeof what, "%02X", s[0]);
        if (end - L->pos == 1)
            lex_error(L, L->pos, end, "invalid UTF-8 byte 0x%s", what);
        else
            lex_error(L, L->pos, end, "invalid UTF-8 (%u bytes, the first 0x%s)", end - L->pos,
                      what);
        L->pos = end;
        return;
    }
    if (cp == 0)
        snprintf(what, sizeof what, "NUL byte");
    else if (cp < 0x20 || cp == 0x7F)
        snprintf(what, sizeof what, "control character U+%04X", cp);
    else
        snprintf(what, sizeof what, "character '%.*s' (U+%04X)", (int)n, (const char *)s, cp);
    lex_error(L, L->pos, L->pos + (uint32_t)n, "unexpected %s", what);
    L->pos += (uint32_t)n;
}

/* Skips white space and comments; reports invalid UTF-8 inside comments. */
static void
skip_space(lexer *L)
{
    for (;;) {
        int c = peek(L, 0);
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
            L->pos++;
        } else if (c == '#') {
            while (L->pos < L->len && L->src[L->pos] != '\n') {
                const unsigned char *s = (const unsigned char *)L->src + L->pos;
                uint32_t cp;
                size_t n = vg_utf8_decode(s, L->len - L->pos, &cp);
                if (n == 0) {
                    char what[8];
                    snprintf(what, sizeof what, "%02X", s[0]);
                    unsigned before = L->C->nerrors;
                    lex_error(L, L->pos, L->pos + 1, "invalid UTF-8 byte 0x%s in a comment", what);
                    L->C->nsoft += L->C->nerrors - before; /* taints no clause */
                    n = 1;
                }
                L->pos += (uint32_t)n;
            }
        } else {
            return;
        }
    }
}

/* Duration units, longest spelling first so "ms" wins over "m". */
static const struct {
    const char *name;
    int64_t ms;
} units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};

/* "1.5h": say which whole duration was meant (90m) when there is one. */
static void
fraction_hint(lexer *L, uint32_t start, uint32_t numend)
{
    char buf[64];
    uint32_t n = numend - start < sizeof buf - 1 ? numend - start : (uint32_t)sizeof buf - 1;
    memcpy(buf, L->src + start, n);
    buf[n] = '\0';
    double v = strtod(buf, NULL);
    const char *unit = L->src + numend;
    uint32_t ulen = L->pos - numend;
    for (size_t u = 0; u < VG_ARRAY_LEN(units); u++) {
        if (strlen(units[u].name) != ulen || memcmp(unit, units[u].name, ulen) != 0)
            continue;
        double ms = v * (double)units[u].ms;
        if (ms >= 1 && ms < 9e15 && ms == (double)(int64_t)ms) {
            int64_t whole = (int64_t)ms;
            size_t w = VG_ARRAY_LEN(units) - 1;
            while (w > 0 && whole % units[w].ms != 0)
                w--;
            lex_error(L, start, L->pos,
                      "a duration is a whole number of units: write %lld%s, "
                      "not %.*s",
                      (long long)(whole / units[w].ms), units[w].name, (int)(L->pos - start),
                      L->src + start);
            return;
        }
    }
    lex_error(L, start, L->pos, "a duration is a whole number of units (like 90m, not 1.5h)");
}

/* number := digits ['.' digits] [('e'|'E') ['+'|'-'] digits]
 * duration := (digits unit)+   with units in decreasing size: 1h30m */
static token
lex_number(lexer *L, token t)
{
    uint32_t start = L->pos;
    bool integral = true;
    while (is_digit(peek(L, 0)))
        L->pos++;
    if (peek(L, 0) == '.' && is_digit(peek(L, 1))) {
        integral = false;
        L->pos++;
        while (is_digit(peek(L, 0)))
            L->pos++;
    } else if (peek(L, 0) == '.') {
        L->pos++;
        lex_error(L, start, L->pos, "a number can't end with '.'; write %.*s or %.*s.0",
                  (int)(L->pos - 1 - start), L->src + start, (int)(L->pos - 1 - start),
                  L->src + start);
        t.kind = T_NUMBER;
        t.bad = true;
        t.lstart = start;
        t.lend = L->pos;
        return t;
    }
    if ((peek(L, 0) == 'e' || peek(L, 0) == 'E') &&
        (is_digit(peek(L, 1)) ||
         ((peek(L, 1) == '+' || peek(L, 1) == '-') && is_digit(peek(L, 2))))) {
        integral = false;
        L->pos += 2;
        while (is_digit(peek(L, 0)))
            L->pos++;
    }
    uint32_t numend = L->pos;
    if (!is_ident_char(peek(L, 0))) {
        char buf[64];
        uint32_t n = numend - start;
        t.kind = T_NUMBER;
        if (n >= sizeof buf) {
            /* very long digit strings: strtod needs a terminated copy */
            char *p = cstate_strndup(L->C, L->src + start, n);
            t.v.num = p ? strtod(p, NULL) : 0;
        } else {
            memcpy(buf, L->src + start, n);
            buf[n] = '\0';
            t.v.num = strtod(buf, NULL);
        }
        if (!isfinite(t.v.num)) {
            lex_error(L, start, numend, "number is too large");
            t.v.num = 0;
            t.bad = true;
        }
        t.lstart = start;
        t.lend = L->pos;
        return t;
    }
    /* A suffix: it must make a duration. */
    while (is_ident_char(peek(L, 0)))
        L->pos++;
    t.kind = T_DURATION;
    t.v.ms = 0;
    t.bad = true; /* until it parses */
    t.lstart = start;
    t.lend = L->pos;
    if (!integral) {
        fraction_hint(L, start, numend);
        return t;
    }
    uint32_t p = start;
    int64_t total = 0;
    size_t last_unit = (size_t)-1;
    while (p < L->pos) {
        if (!is_digit((unsigned char)L->src[p]))
            goto bad;
        int64_t v = 0;
        while (p < L->pos && is_digit((unsigned char)L->src[p])) {
            if (v > INT64_MAX / 10 - 9)
                goto too_big;
            v = v * 10 + (L->src[p++] - '0');
        }
        if (p == L->pos && last_unit != (size_t)-1) {
            lex_error(L, start, L->pos,
                      "the last number of a duration needs a unit too (like "
                      "1h30m)");
            return t;
        }
        size_t u;
        for (u = 0; u < VG_ARRAY_LEN(units); u++) {
            size_t n = strlen(units[u].name);
            if (L->pos - p >= n && memcmp(L->src + p, units[u].name, n) == 0 &&
                (p + n == L->pos || is_digit((unsigned char)L->src[p + n])))
                break;
        }
        if (u == VG_ARRAY_LEN(units))
            goto bad;
        if (last_unit != (size_t)-1 && units[u].ms >= units[last_unit].ms) {
            lex_error(L, start, L->pos,
                      "units of a duration go from largest to smallest, each once (like 1h30m)");
            return t;
        }
        last_unit = u;
        p += (uint32_t)strlen(units[u].name);
        if (v > (VG_MAX_DURATION_MS - total) / units[u].ms)
            goto too_big;
        total += v * units[u].ms;
    }
    t.v.ms = total;
    t.bad = false;
    return t;
bad:
    if (numend == L->pos) {
        lex_error(L, start, L->pos, "bad duration");
    } else {
        char msg[160];
        snprintf(msg, sizeof msg, "%.*s", (int)(L->pos - numend > 40 ? 40 : L->pos - numend),
                 L->src + numend);
        lex_error(L, start, L->pos,
                  "unknown unit '%s' after a number; durations use ms, s, m, h or d (like 10m)",
                  msg);
    }
    return t;
too_big:
    lex_error(L, start, L->pos, "duration is too large: at most 36500d (100 years)");
    return t;
}

/* Appends the UTF-8 character or escape at L->pos of a string literal to out.
 * Returns false at a character that ends the literal badly (newline, EOF). */
static bool
string_char(lexer *L, vg_buf *out, uint32_t *map_n, uint32_t **mapv, bool want_map, bool *ok)
{
    uint32_t at = L->pos;
    const unsigned char *s = (const unsigned char *)L->src;
    char enc[4];
    const char *bytes = NULL;
    size_t nbytes = 0;
    if (s[at] == '\\') {
        int e = peek(L, 1);
        if (e == '\\' || e == '"') {
            enc[0] = (char)e, bytes = enc, nbytes = 1;
            L->pos += 2;
        } else if (e == 'n') {
            enc[0] = '\n', bytes = enc, nbytes = 1;
            L->pos += 2;
        } else if (e == 't') {
            enc[0] = '\t', bytes = enc, nbytes = 1;
            L->pos += 2;
        } else if (e == 'u' && peek(L, 2) == '{') {
            uint32_t p = at + 3, v = 0, digits = 0;
            while (p < L->len && digits < 7) {
                int c = s[p];
                int d = is_digit(c)              ? c - '0'
                        : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                        : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                                 : -1;
                if (d < 0)
                    break;
                v = v * 16 + (uint32_t)d;
                digits++, p++;
            }
            if (p < L->len && s[p] == '}' && digits >= 1 && digits <= 6) {
                L->pos = p + 1;
                nbytes = v == 0 ? 0 : vg_utf8_encode(v, enc);
                if (nbytes == 0) {
                    lex_error(L, at, L->pos,
                              v == 0         ? "\\u{0} is not allowed in a string"
                              : v > 0x10FFFF ? "\\u{%X} is beyond U+10FFFF, the last character"
                                             : "\\u{%X} is a surrogate, not a character",
                              v);
                    *ok = false;
                }
                bytes = enc;
            } else {
                /* skip to the escape's closing brace, if it is near */
                uint32_t q = at + 3;
                while (q < L->len && q < at + 12 && s[q] != '}' && s[q] != '"' && s[q] != '\n')
                    q++;
                L->pos = q < L->len && s[q] == '}' ? q + 1 : p;
                lex_error(L, at, L->pos, "bad \\u escape: write \\u{HEX} with 1 to 6 hex digits");
                *ok = false;
            }
        } else {
            uint32_t end = at + (e >= 0 ? 2 : 1);
            char what[8];
            snprintf(what, sizeof what, "%c", e >= 0x20 && e < 0x7F ? e : '?');
            lex_error(L, at, end,
                      "unknown escape '\\%s' in a string; use \\\\, \\\", \\n, \\t or \\u{HEX}",
                      what);
            *ok = false;
            L->pos = end;
        }
    } else {
        uint32_t cp;
        size_t n = vg_utf8_decode(s + at, L->len - at, &cp);
        if (n == 0) {
            char what[8];
            snprintf(what, sizeof what, "%02X", s[at]);
            lex_error(L, at, at + 1, "invalid UTF-8 byte 0x%s in a string", what);
            *ok = false;
            L->pos++;
            return true;
        }
        if (cp == 0) {
            lex_error(L, at, at + 1, "NUL byte in a string");
            *ok = false;
            L->pos++;
            return true;
        }
        bytes = (const char *)s + at, nbytes = n;
        L->pos += (uint32_t)n;
    }
    if (nbytes > 0 && vg_buf_append(out, bytes, nbytes) != VG_OK)
        L->C->oom = true;
    if (want_map) {
        for (size_t i = 0; i < nbytes; i++)
            (*mapv)[(*map_n)++] = L->map ? L->map[at] : at;
    }
    return true;
}

/* string := '"' { char | escape } '"' ; no raw newline inside. */
static token
lex_string(lexer *L, token t)
{
    uint32_t start = L->pos++;
    vg_buf out = {0};
    bool ok = true, split = false;
    for (;;) {
        int c = peek(L, 0);
        if (c == '"') {
            L->pos++;
            break;
        }
        if (c < 0 || c == '\n' || (c == '\r' && peek(L, 1) == '\n')) {
            /* a quote on the next line most likely closes this string */
            uint32_t nl = L->pos + (c == '\r' ? 2 : 1), q = nl;
            while (c >= 0 && q < L->len && L->src[q] != '\n' && L->src[q] != '"')
                q++;
            if (c >= 0 && q < L->len && L->src[q] == '"' && !split) {
                lex_error(L, start, L->pos,
                          "a string can't go over a line break; write \\n for "
                          "one, or close it on this line");
                ok = false;
                split = true;
                L->pos = nl;
                continue;
            }
            if (!split)
                lex_error(L, start, L->pos, "missing closing quote of this string");
            ok = false;
            break;
        }
        string_char(L, &out, NULL, NULL, false, &ok);
    }
    t.kind = T_STRING;
    t.bad = !ok;
    t.lstart = start;
    t.lend = L->pos;
    t.v.s.str = cstate_strndup(L->C, out.data ? out.data : "", out.len);
    t.v.s.len = (uint32_t)out.len;
    if (t.v.s.str == NULL)
        t.v.s.len = 0, t.v.s.str = "";
    vg_buf_free(&out);
    return t;
}

bool
lex_decode_template(lexer *L, const token *t, char **text, uint32_t *len, uint32_t **map)
{
    uint32_t save = L->pos;
    uint32_t n = t->lend - t->lstart;
    uint32_t *m = cstate_alloc(L->C, sizeof(uint32_t) * (n + 1));
    if (m == NULL)
        return false;
    vg_buf out = {0};
    uint32_t count = 0;
    bool ok = true;
    L->pos = t->lstart + 1;
    uint32_t end = t->lend;
    if (end > t->lstart + 1 && L->src[end - 1] == '"')
        end--;
    /* errors in the string were reported when it was lexed: stay quiet */
    bool quiet = L->C->quiet;
    L->C->quiet = true;
    while (L->pos < end)
        string_char(L, &out, &count, &m, true, &ok);
    L->C->quiet = quiet;
    m[count] = L->map ? L->map[end] : end;
    *text = cstate_strndup(L->C, out.data ? out.data : "", out.len);
    *len = (uint32_t)out.len;
    *map = m;
    vg_buf_free(&out);
    L->pos = save;
    return *text != NULL;
}

/* regex := '/' { char | '\' char } '/' { 'i' | 'm' | 's' | 'x' }
 * Only right after `~` or `!~`. The pattern text is kept as written; pcre2
 * reads `\/` as '/'. */
static token
lex_regex(lexer *L, token t)
{
    uint32_t start = L->pos++;
    uint32_t pat = L->pos;
    bool closed = false, in_class = false;
    uint32_t class_slash = 0; /* the first '/' inside [...], if any */
    while (L->pos < L->len) {
        int c = peek(L, 0);
        if (c == '\n')
            break;
        if (c == '\\' && L->pos + 1 < L->len && L->src[L->pos + 1] != '\n') {
            L->pos += 2;
            continue;
        }
        if (c == '[' && !in_class) {
            in_class = true;
            L->pos++;
            if (peek(L, 0) == '^')
                L->pos++;
            if (peek(L, 0) == ']')
                L->pos++; /* a leading ']' is a member */
            continue;
        }
        if (c == ']')
            in_class = false;
        if (c == '/' && in_class) {
            /* SPEC: the regex ends at the first unescaped '/', even in [...].
             * Read on as the writer may have meant; decide at the end. */
            if (class_slash == 0)
                class_slash = L->pos;
            L->pos++;
            continue;
        }
        if (c == '/') {
            closed = true;
            break;
        }
        L->pos++;
    }
    if (class_slash != 0 && closed) {
        /* /[/]x/: one clear error about the slash */
        lex_error(L, class_slash, class_slash + 1,
                  "a '/' ends the regex, even inside [...]; write \\/ for a slash");
        t.bad = true;
    } else if (class_slash != 0) {
        /* /[a-/ ... with no later '/': that slash was the end, as SPEC says, and
         * pcre2 will say what is wrong with the pattern */
        L->pos = class_slash;
        closed = true;
    }
    t.kind = T_REGEX;
    t.v.rx.pat = L->src + pat;
    t.v.rx.len = L->pos - pat;
    t.v.rx.flags = 0;
    if (!closed) {
        lex_error(L, start, L->pos, "missing closing '/' of this regex");
        t.bad = true;
        t.lstart = start;
        t.lend = L->pos;
        return t;
    }
    L->pos++;
    while (is_ident_char(peek(L, 0))) {
        int c = peek(L, 0);
        unsigned f = c == 'i' ? RX_I : c == 'm' ? RX_M : c == 's' ? RX_S : c == 'x' ? RX_X : 0;
        if (f == 0) {
            char what[2] = {(char)c, 0};
            lex_error(L, L->pos, L->pos + 1, "unknown regex flag '%s'; the flags are i, m, s and x",
                      what);
            t.bad = true;
        }
        t.v.rx.flags |= f;
        L->pos++;
    }
    t.lstart = start;
    t.lend = L->pos;
    return t;
}

token
lex_next(lexer *L)
{
    token t;
    memset(&t, 0, sizeof t);
    for (;;) {
        skip_space(L);
        if (L->pos >= L->len) {
            t.kind = T_EOF;
            t.lstart = t.lend = L->len;
            break;
        }
        int c = peek(L, 0);
        uint32_t start = L->pos;
        if (is_ident_start(c)) {
            while (is_ident_char(peek(L, 0)))
                L->pos++;
            t.kind = keyword(L->src + start, L->pos - start);
            t.lstart = start;
            t.lend = L->pos;
            break;
        }
        if (is_digit(c)) {
            t = lex_number(L, t);
            break;
        }
        if (c == '"') {
            t = lex_string(L, t);
            break;
        }
        if (c == '/' && (L->prev == T_TILDE || L->prev == T_NTILDE)) {
            t = lex_regex(L, t);
            break;
        }
        int d = peek(L, 1);
        tok_kind k = T_EOF;
        uint32_t n = 1;
        switch (c) {
        case '{': k = T_LBRACE; break;
        case '}': k = T_RBRACE; break;
        case '(': k = T_LPAREN; break;
        case ')': k = T_RPAREN; break;
        case '[': k = T_LBRACKET; break;
        case ']': k = T_RBRACKET; break;
        case ',': k = T_COMMA; break;
        case ':': k = T_COLON; break;
        case '.': k = T_DOT; break;
        case '+': k = T_PLUS; break;
        case '*': k = T_STAR; break;
        case '/': k = T_SLASH; break;
        case '%': k = T_PERCENT; break;
        case '~': k = T_TILDE; break;
        case '-': k = d == '>' ? (n = 2, T_ARROW) : T_MINUS; break;
        case '=':
            if (d == '~') {
                lex_error(L, start, start + 2, "write '~' for a regex match, not '=~'");
                k = T_TILDE, n = 2;
            } else {
                k = d == '=' ? (n = 2, T_EQ) : T_ASSIGN;
            }
            break;
        case '<': k = d == '=' ? (n = 2, T_LE) : T_LT; break;
        case '>': k = d == '=' ? (n = 2, T_GE) : T_GT; break;
        case '!':
            if (d == '=')
                k = T_NE, n = 2;
            else if (d == '~')
                k = T_NTILDE, n = 2;
            break;
        default: break;
        }
        if (c == '&' || c == '|') {
            /* C's && and ||: say what to write and carry on as if it was */
            n = d == c ? 2 : 1;
            lex_error(L, start, start + n, "write '%s' instead of '%.*s'", c == '&' ? "and" : "or",
                      (int)n, L->src + start);
            k = c == '&' ? T_AND : T_OR;
        } else if (c == '\'') {
            uint32_t q = start + 1;
            while (q < L->len && L->src[q] != '\'' && L->src[q] != '\n')
                q++;
            if (q < L->len && L->src[q] == '\'') {
                /* 'text': one error, then a string token so parsing goes on */
                lex_error(L, start, q + 1, "strings use double quotes: write \"%.*s\"",
                          (int)(q - start - 1), L->src + start + 1);
                L->pos = q + 1;
                t.kind = T_STRING;
                t.bad = true;
                t.lstart = start;
                t.lend = L->pos;
                t.v.s.str = cstate_strndup(L->C, L->src + start + 1, q - start - 1);
                t.v.s.len = t.v.s.str ? q - start - 1 : 0;
                if (t.v.s.str == NULL)
                    t.v.s.str = "";
                break;
            }
        }
        if (k == T_EOF) {
            if (c == '!') {
                lex_error(L, start, start + 1, "unexpected '!'; write 'not', '!=' or '!~'");
                L->pos++;
            } else if (c == '\'') {
                lex_error(L, start, start + 1, "strings use double quotes: \"text\"");
                L->pos++;
            } else {
                bad_char(L);
            }
            if (diag_stopped(L->C, L->file)) {
                L->pos = L->len;
            }
            continue;
        }
        L->pos += n;
        t.kind = k;
        t.lstart = start;
        t.lend = L->pos;
        break;
    }
    t.sp = lex_span(L, t.lstart, t.lend);
    L->prev = t.kind;
    return t;
}
