/*
 * rulesInt.h - private to the rule compiler: tokens, the syntax tree, the
 * compilation state and the entry points of each stage.
 *
 * Ownership: everything a compilation makes (tokens' decoded strings, nodes,
 * rules, lists) lives in one arena owned by the compilation and, on success,
 * by the rule set it becomes. Nothing in the tree is freed individually.
 *
 * Positions: tokens and nodes carry byte spans into one source file; line and
 * column are computed only when a diagnostic is rendered (diag.c).
 */
#ifndef VG_RULES_INT_H
#define VG_RULES_INT_H

#include <stdint.h>

#include <stdatomic.h>

#include "vg_rules.h"
#include "vg_vm.h"

typedef struct span {
    uint32_t file;  /* index into cstate.files */
    uint32_t start; /* byte offset */
    uint32_t end;   /* exclusive */
} span;

/* ---- Tokens (lex.c) -------------------------------------------------------
 * TOK(name, spelling) — every token once; keywords are reserved words. */
#define VG_PUNCT_TOKENS(TOK)                                                                       \
    TOK(LBRACE, "{")                                                                               \
    TOK(RBRACE, "}")                                                                               \
    TOK(LPAREN, "(")                                                                               \
    TOK(RPAREN, ")")                                                                               \
    TOK(LBRACKET, "[")                                                                             \
    TOK(RBRACKET, "]")                                                                             \
    TOK(COMMA, ",")                                                                                \
    TOK(COLON, ":")                                                                                \
    TOK(DOT, ".")                                                                                  \
    TOK(ARROW, "->")                                                                               \
    TOK(PLUS, "+")                                                                                 \
    TOK(MINUS, "-")                                                                                \
    TOK(STAR, "*")                                                                                 \
    TOK(SLASH, "/")                                                                                \
    TOK(PERCENT, "%")                                                                              \
    TOK(EQ, "==")                                                                                  \
    TOK(NE, "!=")                                                                                  \
    TOK(LT, "<")                                                                                   \
    TOK(LE, "<=")                                                                                  \
    TOK(GT, ">")                                                                                   \
    TOK(GE, ">=")                                                                                  \
    TOK(TILDE, "~")                                                                                \
    TOK(NTILDE, "!~")                                                                              \
    TOK(ASSIGN, "=")

#define VG_KEYWORD_TOKENS(TOK)                                                                     \
    TOK(LIST, "list")                                                                              \
    TOK(FILE, "file")                                                                              \
    TOK(RULE, "rule")                                                                              \
    TOK(DESCRIPTION, "description")                                                                \
    TOK(KEY, "key")                                                                                \
    TOK(ON, "on")                                                                                  \
    TOK(WHERE, "where")                                                                            \
    TOK(WHEN, "when")                                                                              \
    TOK(MATCH, "match")                                                                            \
    TOK(WITHIN, "within")                                                                          \
    TOK(SCORE, "score")                                                                            \
    TOK(ACTION, "action")                                                                          \
    TOK(SUPPRESS, "suppress")                                                                      \
    TOK(MESSAGE, "message")                                                                        \
    TOK(TAGS, "tags")                                                                              \
    TOK(MODE, "mode")                                                                              \
    TOK(TXN, "txn")                                                                                \
    TOK(EVENT, "event")                                                                            \
    TOK(NOT, "not")                                                                                \
    TOK(BY, "by")                                                                                  \
    TOK(AND, "and")                                                                                \
    TOK(OR, "or")                                                                                  \
    TOK(IN, "in")                                                                                  \
    TOK(OVER, "over")                                                                              \
    TOK(BEFORE, "before")                                                                          \
    TOK(HISTORY, "history")                                                                        \
    TOK(TRUE, "true")                                                                              \
    TOK(FALSE, "false")

typedef enum tok_kind {
    T_EOF = 0,
    T_IDENT,
    T_NUMBER,
    T_DURATION,
    T_STRING,
    T_REGEX,
#define TOK(n, s) T_##n,
    VG_PUNCT_TOKENS(TOK)
#define T_FIRST_KEYWORD T_LIST
        VG_KEYWORD_TOKENS(TOK)
#undef TOK
            T_NKINDS
} tok_kind;

enum { RX_I = 1, RX_M = 2, RX_S = 4, RX_X = 8 }; /* regex flags */

typedef struct token {
    tok_kind kind;
    bool bad;        /* the lexer reported an error in it */
    span sp;         /* in the source file */
    uint32_t lstart; /* offsets in the lexer's own buffer (differs inside */
    uint32_t lend;   /* message templates, whose text is decoded) */
    union {
        double num; /* T_NUMBER */
        int64_t ms; /* T_DURATION */
        struct {    /* T_STRING: decoded, NUL-terminated, in the arena */
            const char *str;
            uint32_t len;
        } s;
        struct { /* T_REGEX: pattern as written (between the slashes) */
            const char *pat;
            uint32_t len;
            unsigned flags; /* RX_* */
        } rx;
    } v;
} token;

/* The fixed spelling of punctuation and keywords ("->", "where"), else NULL. */
const char *tok_spelling(tok_kind k);
bool tok_is_keyword(tok_kind k);

/* ---- Types (check.c) ----------------------------------------------------- */

typedef enum vtype {
    TY_ERROR = 0, /* poisoned: an error was reported; stay quiet */
    TY_NUMBER,
    TY_STRING,
    TY_BOOL,
    TY_TIME,
    TY_DURATION,
    TY_ENUM,
    TY_NAME, /* a bare name no scope knows: an enum value if context says so */
    TY_LIST, /* a list; elem says of what */
    TY_REGEX,
    TY_STEP, /* a pattern binding used as a value (only count(a) takes it) */
} vtype;

typedef struct type {
    uint8_t t;         /* vtype */
    uint8_t elem;      /* TY_LIST: the element vtype, TY_ERROR if empty */
    bool money;        /* a number in major units of a currency */
    bool text;         /* TY_STRING read from a CSV column (map files): it converts to
                          whatever it meets (a number, a time, an enum by name) */
    const vg_enum *en; /* TY_ENUM, and TY_LIST of enums */
} type;

/* ---- Syntax tree (parse.c builds, check.c annotates) ---------------------- */

#define VG_NODE_KINDS(N)                                                                           \
    N(NUMBER)   /* num, text in sp */                                                              \
    N(STRING)   /* str */                                                                          \
    N(BOOL)     /* b */                                                                            \
    N(DURATION) /* ms */                                                                           \
    N(NAME)     /* name: a bare identifier, resolved by check.c */                                 \
    N(STREAM)   /* txn.NAME / event.NAME: stream, name */                                          \
    N(MEMBER)   /* a.NAME: name = binding, field = NAME */                                         \
    N(CALL)     /* fn(args...), a.fn(args...) (recv = binding name) */                             \
    N(AGG)      /* aggregate: fn, args, window */                                                  \
    N(NEG)      /* -a */                                                                           \
    N(NOT)      /* not a */                                                                        \
    N(BINARY)   /* a op b (arithmetic, comparison) */                                              \
    N(LOGIC)    /* args joined by op: 'and' or 'or' (n-ary, so long chains stay flat) */           \
    N(IN)       /* a [not] in b */                                                                 \
    N(REGEX)    /* a ~ /re/, a !~ /re/ */                                                          \
    N(LIST)     /* [a, b, ...] */                                                                  \
    N(CONV)     /* a (column text) converted to ty (map files) */

typedef enum node_kind {
#define N(k) N_##k,
    VG_NODE_KINDS(N)
#undef N
} node_kind;

typedef enum win_kind {
    WIN_NONE = 0, /* no window: a binding aggregate, or an error */
    WIN_RANGE,    /* over D */
    WIN_BEFORE,   /* over D before */
    WIN_HISTORY,  /* over history */
} win_kind;

/* Functions: FN(name, min args, max args, class). Aggregates double as
 * scalars where SPEC says so (min/max with two or more arguments). */
#define VG_FUNCTIONS(FN)                                                                           \
    FN(abs, 1, 1, FC_SCALAR)                                                                       \
    FN(min, 1, VG_MAX_ARGS, FC_AGG)                                                                \
    FN(max, 1, VG_MAX_ARGS, FC_AGG)                                                                \
    FN(lower, 1, 1, FC_SCALAR)                                                                     \
    FN(upper, 1, 1, FC_SCALAR)                                                                     \
    FN(len, 1, 1, FC_SCALAR)                                                                       \
    FN(contains, 2, 2, FC_SCALAR)                                                                  \
    FN(starts_with, 2, 2, FC_SCALAR)                                                               \
    FN(ends_with, 2, 2, FC_SCALAR)                                                                 \
    FN(attr, 1, 1, FC_SCALAR)                                                                      \
    FN(num, 1, 1, FC_SCALAR)                                                                       \
    FN(geo_km, 4, 4, FC_SCALAR)                                                                    \
    FN(hours, 1, 1, FC_SCALAR)                                                                     \
    FN(minutes, 1, 1, FC_SCALAR)                                                                   \
    FN(seconds, 1, 1, FC_SCALAR)                                                                   \
    FN(hour_of_day, 1, 1, FC_SCALAR)                                                               \
    FN(day_of_week, 1, 1, FC_SCALAR)                                                               \
    FN(prev, 1, 1, FC_SCALAR)                                                                      \
    FN(count, 0, 1, FC_AGG)                                                                        \
    FN(sum, 1, 1, FC_AGG)                                                                          \
    FN(avg, 1, 1, FC_AGG)                                                                          \
    FN(distinct, 1, 1, FC_AGG)                                                                     \
    FN(seen, 1, 1, FC_AGG)                                                                         \
    FN(first, 1, 1, FC_AGG)                                                                        \
    FN(col, 1, 1, FC_SCALAR) /* map files: a column by name */

typedef enum fn_id {
    FN_NONE = 0,
#define FN(n, lo, hi, c) FN_##n,
    VG_FUNCTIONS(FN)
#undef FN
        FN_COUNT_
} fn_id;

enum { FC_SCALAR = 1, FC_AGG = 2 };

typedef struct fn_info {
    const char *name;
    uint8_t min_args, max_args, cls;
} fn_info;

extern const fn_info vg_functions[FN_COUNT_];
/* The function called name[0..len), or FN_NONE. */
fn_id fn_lookup(const char *name, size_t len);

typedef struct list_decl list_decl;
typedef struct rule rule;

/* What a bare or qualified name resolved to (check.c). */
typedef enum ref_kind {
    REF_NONE = 0,
    REF_FIELD, /* a field of the current event (or of a step's, via MEMBER) */
    REF_STEP,  /* a pattern binding itself (count(a)) */
    REF_LIST,
    REF_ENUM,   /* an enum constant */
    REF_COLUMN, /* a CSV column (map files) */
} ref_kind;

typedef struct node node;
struct node {
    uint8_t kind;    /* node_kind */
    uint8_t op;      /* N_BINARY: the operator's tok_kind; N_IN/N_REGEX: 1 = negated */
    uint8_t paren;   /* written inside parentheses (for "comparisons do not chain") */
    uint16_t height; /* levels of operands below, 0 for a leaf (bounded by VG_MAX_HEIGHT) */
    uint8_t tmpl;    /* inside a message template: its text has string escapes */
    type ty;         /* set by check.c */
    span sp;         /* the whole expression */
    span sp2;        /* N_STREAM/N_MEMBER: the field name; N_CALL/N_AGG: the callee;
                        N_BINARY/N_IN/N_REGEX: the operator; N_AGG: the window */
    node *a, *b;     /* operands; N_IN: b is the list; N_NEG/N_NOT: a */
    node **args;     /* N_CALL, N_AGG, N_LIST, N_LOGIC */
    uint32_t nargs;
    const char *name; /* N_NAME, N_STREAM/N_MEMBER field, N_CALL receiver */
    uint32_t namelen;
    const char *bind; /* N_MEMBER, N_CALL with receiver: the binding name */
    uint32_t bindlen;
    union {
        double num;
        bool b;
        int64_t ms;
        struct {
            const char *str;
            uint32_t len;
        } s;
    } v;
    /* N_CALL / N_AGG */
    uint8_t fn;     /* fn_id */
    uint8_t win;    /* win_kind */
    int64_t win_ms; /* WIN_RANGE, WIN_BEFORE */
    /* N_REGEX */
    const char *rx_pat;
    uint32_t rx_len;
    unsigned rx_flags;
    span rx_sp;       /* the pattern text, for pcre2 error offsets */
    bool rx_exact;    /* rx_sp maps pattern bytes 1:1 (not inside a template) */
    void *rx_code;    /* pcre2_code *, owned by the rule set */
    bool rx_done;     /* compile_regex() ran on this literal (rx_code NULL: it failed) */
    int32_t rx_index; /* its index in cstate.regexes (when rx_code is set) */
    /* resolution (check.c) */
    uint8_t ref;           /* ref_kind */
    uint8_t stream;        /* REF_FIELD: vg_stream_id of the event read */
    int16_t step;          /* REF_FIELD via a binding, REF_STEP: step index; -1 current */
    const vg_field *field; /* REF_FIELD */
    list_decl *list;       /* REF_LIST */
    int enum_value;        /* REF_ENUM */
    int32_t col;           /* REF_COLUMN: the column's index */
};

/* A message template: literal text and {expr} parts, in order. */
typedef struct tmpl_part {
    const char *text; /* literal text (decoded, braces unescaped) or NULL */
    uint32_t len;
    node *expr; /* an interpolated expression, or NULL */
} tmpl_part;

typedef struct tmpl {
    tmpl_part *parts;
    uint32_t nparts;
    span sp;
} tmpl;

/* One step of a pattern. */
typedef struct step {
    bool neg;         /* a `not` step */
    const char *name; /* binding (positive steps) */
    uint32_t namelen;
    span name_sp;
    uint8_t stream; /* vg_stream_id */
    span stream_sp;
    node *by;           /* NULL: the rule's key */
    node *where;        /* the step's own condition, or NULL */
    node *rule_where;   /* check.c: the rule's `where`, copied and checked for this step */
    node *rule_key;     /* check.c: the rule's `key` (no `by`), copied and checked likewise */
    int32_t qmin, qmax; /* quantifier; qmin 0 = none; qmax -1 = no upper bound */
    span quant_sp;
    span sp; /* the whole step */
} step;

typedef struct pattern {
    step *steps;
    uint32_t nsteps;
    span sp;
} pattern;

typedef enum action_kind { ACT_ALLOW = 0, ACT_REVIEW, ACT_BLOCK } action_kind;

/* Rule clauses, for "at most once" and for messages. */
#define VG_CLAUSES(CL)                                                                             \
    CL(DESCRIPTION, "description")                                                                 \
    CL(KEY, "key")                                                                                 \
    CL(ON, "on")                                                                                   \
    CL(WHERE, "where")                                                                             \
    CL(WHEN, "when")                                                                               \
    CL(MATCH, "match")                                                                             \
    CL(SCORE, "score")                                                                             \
    CL(ACTION, "action")                                                                           \
    CL(SUPPRESS, "suppress")                                                                       \
    CL(MESSAGE, "message")                                                                         \
    CL(TAGS, "tags")                                                                               \
    CL(MODE, "mode")

typedef enum clause_id {
#define CL(n, s) CL_##n,
    VG_CLAUSES(CL)
#undef CL
        CL_COUNT_
} clause_id;

struct rule {
    const char *name;
    uint32_t namelen;
    span name_sp;
    span sp;                   /* from `rule` to its `}` */
    uint32_t file;             /* index into cstate.files */
    bool bad;                  /* no name or no body: not checked at all */
    span clause_sp[CL_COUNT_]; /* where each clause was given (end 0: absent) */
    bool has[CL_COUNT_];
    bool failed[CL_COUNT_]; /* the clause had a syntax error: not checked */
    bool stray_within;      /* `within` came before `match` (reported) */
    const char *description;
    node *key;  /* NULL: account_id */
    uint8_t on; /* vg_stream_id of a `when` rule */
    node *where;
    node *when; /* NULL: true */
    pattern *match;
    int64_t within_ms;
    int score;      /* 0..100 */
    uint8_t action; /* action_kind */
    int64_t suppress_ms;
    tmpl *message;
    const char **tags;
    uint32_t ntags;
    bool shadow; /* mode shadow */
};

struct list_decl {
    const char *name;
    uint32_t namelen;
    span name_sp;
    span sp;
    bool bad;
    bool from_file;
    span path_sp;
    const char *path; /* as written */
    node **items;     /* literal items (inline lists) */
    uint32_t nitems;
    const char **values; /* file lists: the values (strings) */
    uint32_t *value_lens;
    uint32_t *value_offs; /* where each value stands in the list file */
    uint32_t vfile;       /* the list file (index into cstate.files) */
    uint32_t nvalues;
    uint8_t elem; /* vtype of the items: TY_NUMBER or TY_STRING; TY_ERROR empty */
};

/* One line `field = EXPR` of a map file. */
typedef struct map_assign {
    const char *name; /* the field, as written */
    uint32_t namelen;
    span name_sp;
    node *expr;
    const vg_field *field[VG_NSTREAMS]; /* the field in each stream (NULL: not there) */
} map_assign;

/* ---- Compilation state --------------------------------------------------- */

typedef struct srcfile {
    const char *name; /* as diagnostics print it */
    const char *text; /* NUL-terminated */
    uint32_t len;
    uint32_t *lines; /* start offset of each line, built on first need */
    uint32_t nlines;
    bool is_list; /* a list file, not a rule file */
    unsigned nerrors;
    bool stopped; /* hit max_errors: say nothing more about it */
} srcfile;

#define VG_MAX_DEPTH 200 /* nesting of expressions, a limit on stack use */
#define VG_MAX_ARGS 64   /* arguments of one call */
/* A duration literal, at most: 100 years, so windows, `within` and their
 * doubles (the state the engine keeps) never overflow event-time arithmetic. */
#define VG_MAX_DURATION_MS (36500LL * 86400000LL)
#define VG_MAX_HEIGHT                                                                              \
    256                               /* height of an expression tree: bounds the stack of every   \
                                         stage that walks it (checked under ASan: ~650 is too many) */
#define VG_MAX_STEPS VG_PATTERN_STEPS /* steps of one pattern (checking is quadratic in them) */
#define VG_MAX_FILE (64u << 20)       /* bytes per rule or list file */

typedef struct cstate {
    vg_arena *arena;
    const vg_schema *schema;
    vg_compile_opts opts;
    srcfile *files;
    uint32_t nfiles, capfiles;
    uint32_t nrulefiles;
    rule **rules;
    uint32_t nrules, caprules;
    list_decl **lists;
    uint32_t nlists, caplists;
    list_decl **list_index;  /* check.c: hash set of lists by name (first of a name) */
    uint32_t list_index_cap; /* a power of two */
    unsigned nerrors;
    unsigned nsoft; /* errors that belong to no clause (bad bytes in comments) */
    bool oom;
    bool quiet; /* report nothing, count nothing (re-decoding checked text) */
    /* the last error, for its notes */
    bool last_shown;
    span last_sp;
    /* diagnostics are held until the end of the compilation, then handed to
     * opts.diag in file and position order (diag_flush) */
    struct pending *pend;
    uint32_t npend, cappend;
    /* recent diagnostics, to drop exact repeats (same place, same text) */
    uint64_t recent[16];
    unsigned nrecent;
    void **regexes; /* pcre2_code * to free with the rule set */
    /* map files (vg_map_compile): the CSV header, and the assignments */
    bool map_mode;
    const char *const *columns;
    uint32_t ncolumns;
    struct map_assign *assigns;
    uint32_t nassigns, capassigns;
    uint32_t nregexes, capregexes;
} cstate;

/* ---- Bytecode (opcodes.h has the list) ------------------------------------ */

#include "opcodes.h"

enum vg_opcode {
#define OP(name, operands, stack, pure) OP_##name,
    VG_OPCODES(OP)
#undef OP
};

/* ---- The rule set ---------------------------------------------------------- */

struct vg_ruleset {
    atomic_int refs;
    cstate C;       /* the checked tree and everything it points to (C.arena) */
    vg_rule *rules; /* gen.c: the compiled rules, C.nrules of them */
    const char **keyspaces;
    uint32_t nkeyspaces;
    vg_value *consts; /* constants of every program */
    uint32_t nconsts;
    struct vg_set *sets; /* `in` lists as hash sets */
    uint32_t nsets;
    void *match_ctx;       /* pcre2_match_context * with the match limits */
    uint32_t max_stack;    /* the deepest stack any program needs */
    const vg_enum **enums; /* enums CONV converts names of */
    uint32_t nenums;
    vg_map_assign *map; /* map files: one per assignment */
    uint32_t nmap;
};

/* gen.c: compiles every checked rule of rs into programs. Reports nothing
 * (the checker has) but VG_ENOMEM. */
vg_err gen_ruleset(vg_ruleset *rs);
/* Frees what gen_ruleset made outside the arena. */
void gen_free(vg_ruleset *rs);

/* A set of values for `in`: numbers, or strings by bytes. */
typedef struct vg_set {
    uint64_t *hashes;     /* open addressing; 0 = empty slot */
    const vg_value *vals; /* parallel to hashes */
    uint32_t cap;         /* a power of two */
    uint32_t n;
} vg_set;

/* diag.c */
#include <stdarg.h>
void diag_verror(cstate *C, span sp, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
void diag_error(cstate *C, span sp, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A note about the last error (shown only if it was). */
void diag_note(cstate *C, span sp, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* An error that no file position fits (a path that cannot be opened). */
void diag_error_plain(cstate *C, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the held diagnostics to opts.diag, sorted by file and position, each
 * error followed by its notes. */
void diag_flush(cstate *C);
/* 1-based line and byte column of offset off in file f. */
void diag_position(cstate *C, uint32_t f, uint32_t off, unsigned *line, unsigned *col);
/* Is file f past its error limit? */
bool diag_stopped(const cstate *C, uint32_t f);
/* The closest of cands[0..n) to name (edit distance, case folded), or NULL
 * when none is close enough to suggest. */
const char *diag_suggest(const char *name, size_t len, const char *const *cands, size_t n);

/* ruleset.c: a compilation's state. cstate_close() flushes diagnostics and
 * frees everything the compilation made (tests drive the stages with these). */
vg_err cstate_open(cstate *C, const vg_compile_opts *opts);
void cstate_close(cstate *C);
/* files: add a source; returns its index or -1 when out of memory. */
int cstate_add_file(cstate *C, const char *name, const char *text, size_t len, bool is_list);
void *cstate_alloc(cstate *C, size_t size); /* arena; sets C->oom on failure */
char *cstate_strndup(cstate *C, const char *s, size_t len);

/* lex.c */
typedef struct lexer {
    cstate *C;
    uint32_t file;
    const char *src; /* the text being lexed */
    uint32_t len;
    uint32_t pos;
    const uint32_t *map; /* src offset -> file offset (templates); NULL: identity */
    tok_kind prev;       /* for `/` after `~` */
} lexer;

void lex_init(lexer *L, cstate *C, uint32_t file, const char *src, uint32_t len,
              const uint32_t *map);
/* The next token; errors are reported and lexing goes on. */
token lex_next(lexer *L);
/* The file span of lexer offsets [lstart, lend). */
span lex_span(const lexer *L, uint32_t lstart, uint32_t lend);
/* Decodes the string token t (whose text is L->src[t.lstart..t.lend)) for a
 * message template: *text gets the contents with escapes decoded and *map
 * (len + 1 entries) the file offset of each decoded byte. */
bool lex_decode_template(lexer *L, const token *t, char **text, uint32_t *len, uint32_t **map);

/* parse.c: parses file f, appending its rules and lists to C; parse_map()
 * reads a map file's `field = EXPR` lines instead. */
void parse_file(cstate *C, uint32_t f);
void parse_map(cstate *C, uint32_t f);

/* check.c: loads list files and checks every rule that parsed; check_map()
 * checks a map file's assignments against the columns and fields. */
void check_all(cstate *C);
void check_map(cstate *C);

#endif
