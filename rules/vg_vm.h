/*
 * vg_vm.h - the compiled form of a rule set, as the engine runs it, and the
 * VM that evaluates its programs.
 *
 * gen.c turns each checked rule into programs (key, where, when, the argument
 * of each window aggregate, each prev(), each message part) of bytecode for
 * a small stack machine (vm.c, opcodes.h). The engine owns state; it hands
 * the VM the values that depend on it (aggregates, prev values) through
 * vg_vm_ctx. Everything here is read-only after compilation and lives as
 * long as the rule set.
 */
#ifndef VG_VM_H
#define VG_VM_H

#include "vg_event.h"
#include "vg_rules.h"

typedef struct vg_insn {
    uint8_t op;
    uint8_t a;
    uint16_t b;
    uint32_t c;
} vg_insn;

/* One program: code ending in RET, and the kind of value it yields. */
typedef struct vg_prog {
    const vg_insn *code;
    uint32_t n;
    uint8_t kind;      /* vg_vkind of the result (VG_V_BOOL for conditions) */
    bool money;        /* a number in major units of the event's currency */
    const vg_enum *en; /* VG_V_ENUM: its enum, for printing names */
} vg_prog;

typedef enum vg_aggfn {
    VG_AGG_COUNT = 0, /* count(): entries */
    VG_AGG_COUNT_IF,  /* count(cond): entries whose column is true */
    VG_AGG_SUM,
    VG_AGG_AVG,
    VG_AGG_MIN,
    VG_AGG_MAX,
    VG_AGG_DISTINCT, /* distinct values of the column */
    VG_AGG_SEEN,     /* did an earlier entry have the current event's value? */
    VG_AGG_FIRST,    /* match rules: the column on a step's first event */
} vg_aggfn;

typedef enum vg_window {
    VG_WIN_RANGE = 0, /* over D: t - D <= time <= t, the current event included */
    VG_WIN_BEFORE,    /* over D before: the same without the current event */
    VG_WIN_HISTORY,   /* over history: every earlier entry, not the current one */
    VG_WIN_STEP,      /* match rules: over the events bound to a step (vg_aggspec.step) */
} vg_window;

/* A window aggregate of a rule. */
typedef struct vg_aggspec {
    uint8_t fn;   /* vg_aggfn */
    uint8_t win;  /* vg_window */
    int16_t col;  /* the column it reads, -1 for count() */
    int64_t ms;   /* the window (RANGE, BEFORE) */
    uint8_t kind; /* vg_vkind of the value (MIN/MAX/FIRST keep the column's kind) */
    int16_t step; /* VG_WIN_STEP: the step; its column reads the step's event */
    bool money;
    const char *text; /* source text, white space collapsed: the key in "values" */
} vg_aggspec;

/* A column: a value computed from each event that passes `where` and kept in
 * the rule's window entries. Strings, enums and bools are kept as a 64-bit
 * hash (distinct and seen only compare them); numbers as they are. */
typedef struct vg_column {
    vg_prog prog;
    bool hashed;
    const char *text; /* the argument's source text: how saved state finds it again */
} vg_column;

/* A part of a message template: literal text, or a program whose value is
 * printed (money with the event currency's digits, times ISO 8601 UTC,
 * durations like 1h30m, enums by name, missing as nothing). */
typedef struct vg_msgpart {
    const char *text; /* literal, or NULL */
    uint32_t len;
    vg_prog prog;
} vg_msgpart;

typedef enum vg_action { VG_ALLOW = 0, VG_REVIEW, VG_BLOCK } vg_action;

/* Steps of one pattern, at most. */
#define VG_PATTERN_STEPS 64

/* One step of a match rule's pattern. Programs read the step's event as the
 * current event (ctx.ev) and earlier steps' events through ctx.steps. */
typedef struct vg_step {
    const char *name; /* the binding; NULL for a `not` step */
    bool neg;
    vg_stream_id stream;
    int32_t qmin, qmax; /* quantifier: qmin 0 = none; qmax -1 = no upper bound */
    uint16_t keyspace;  /* of the key program's text */
    vg_prog key;        /* `by`, else the rule's key, else account_id */
    vg_prog filter;     /* the rule's `where` (.n == 0: true) */
    vg_prog where;      /* the step's own `where` (.n == 0: true) */
} vg_step;

typedef struct vg_rule {
    const char *name;
    char version[9];   /* rule_version: 8 hex digits */
    char state_id[17]; /* changes when key/on/where/when/match/within/suppress change */
    uint32_t index;    /* in rule order */
    vg_stream_id on;
    bool is_match;            /* a pattern: steps, within; no key/where/when */
    uint16_t keyspace;        /* rules with the same key expression share one */
    vg_prog key, where, when; /* where/when: .n == 0 means true */
    vg_column *cols;
    uint32_t ncols;
    vg_aggspec *aggs;
    uint32_t naggs;
    vg_prog *prevs;
    const char *const *prev_texts; /* each prev()'s argument text, for saved state */
    uint32_t nprevs;
    vg_msgpart *msg;
    uint32_t nmsg;
    int score;
    uint8_t action; /* vg_action */
    bool shadow;
    int64_t suppress_ms;   /* 0: none */
    int64_t max_window_ms; /* longest RANGE/BEFORE window: entries older are pruned */
    vg_step *steps;        /* match rules */
    uint32_t nsteps;
    int64_t within_ms;
    const char *const *tags;
    uint32_t ntags;
} vg_rule;

/* The compiled rules, in rule order (files sorted by path, then declaration
 * order). Valid as long as rs. */
const vg_rule *vg_ruleset_rule(const vg_ruleset *rs, size_t i);
/* Number of distinct key expressions (keyspaces), and the text of one. */
size_t vg_ruleset_nkeyspaces(const vg_ruleset *rs);
const char *vg_ruleset_keyspace(const vg_ruleset *rs, size_t i);
/* The schema the rules were compiled against. */
const vg_schema *vg_ruleset_schema(const vg_ruleset *rs);

/* Writes the bytecode of every rule, readably, to f (vigil check --dump). */
void vg_ruleset_dump(const vg_ruleset *rs, FILE *f);

/* ---- The VM ------------------------------------------------------------- */

/* Per-thread scratch: the stack, pcre2 match data, room for strings made
 * while evaluating. Made once; evaluation does not allocate (the string
 * room grows only when a longer string than ever before is built). */
typedef struct vg_vm vg_vm;

vg_err vg_vm_new(const vg_ruleset *rs, vg_vm **out);
void vg_vm_free(vg_vm *vm);

/* What a program may read besides its event. */
typedef struct vg_vm_ctx {
    const vg_event *ev;
    const vg_value *aggs;         /* the rule's aggregate values, by vg_aggspec index */
    const vg_value *prevs;        /* the rule's prev() values, by index */
    const vg_event *const *steps; /* pattern steps' events (later versions) */
    const vg_value *cols;         /* map files: the CSV row's cells (strings or missing) */
} vg_vm_ctx;

/* Evaluates p. Strings in the result live until the next vg_vm_eval() on vm.
 * A program with no code yields true. */
vg_value vg_vm_eval(vg_vm *vm, const vg_prog *p, const vg_vm_ctx *ctx);

/* Did the last vg_vm_eval() fail to convert column text (map files)? Then
 * *text, *len and *kind say what could not be read as what. */
bool vg_vm_conv_failed(const vg_vm *vm, const char **text, uint32_t *len, uint8_t *kind);

/* ---- Map files ------------------------------------------------------------ */

/* One `field = EXPR` of a map file, compiled. */
typedef struct vg_map_assign {
    const char *name;                   /* the field */
    const vg_field *field[VG_NSTREAMS]; /* in each stream, NULL where it is not */
    vg_prog prog;                       /* its value: a STR result is column text that
                                           the reader converts to the field's type */
} vg_map_assign;

/* Compiles the map file at path against a CSV header (cols[0..ncols)):
 * `field = EXPR` lines whose expressions read columns by name (or
 * col("any name")). Results as vg_ruleset_compile(); the map is in
 * vg_ruleset_map(). */
vg_err vg_map_compile(const char *path, const char *const *cols, size_t ncols,
                      const vg_compile_opts *opts, unsigned *nerrors, vg_ruleset **out);
const vg_map_assign *vg_ruleset_map(const vg_ruleset *rs, size_t *n);

/* Regex matches that hit their match limit (and were taken as missing). */
uint64_t vg_vm_regex_limit_hits(const vg_vm *vm);

/* ---- Formatting values (messages, keys, alert JSON) ---------------------- */

/* Appends v as text: strings as they are, numbers in their shortest form
 * (181, 9.5), money with `digits` decimals, times as 2024-05-01T12:00:00.000Z,
 * durations like 1h30m, enums by name (en), bools true/false, missing as
 * nothing. */
vg_err vg_value_format(const vg_value *v, bool money, unsigned digits, const vg_enum *en,
                       vg_buf *out);

/* 64-bit hash of a value (strings by bytes, numbers by value). */
uint64_t vg_value_hash(const vg_value *v);

#endif
