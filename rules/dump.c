/*
 * dump.c - the disassembler: every rule's programs as text (vigil check
 * --dump), from the one opcode list in opcodes.h.
 */
#include <stdio.h>

#include "rulesInt.h"

static const char *const op_names[] = {
#define OP(name, operands, stack, pure) #name,
    VG_OPCODES(OP)
#undef OP
};

static const char *const kinds[] = {"missing", "number",   "string", "bool",
                                    "time",    "duration", "enum"};

static void
dump_value(FILE *f, const vg_value *v)
{
    vg_buf b = {0};
    if (v->kind == VG_V_STR) {
        fputc('"', f);
        fwrite(v->u.s, 1, v->len, f);
        fputc('"', f);
        return;
    }
    vg_value_format(v, false, 0, NULL, &b);
    fprintf(f, "%s %s", kinds[v->kind], b.data ? b.data : "");
    vg_buf_free(&b);
}

static void
dump_prog(const vg_ruleset *rs, FILE *f, const char *label, const vg_prog *p)
{
    if (p->n == 0)
        return;
    fprintf(f, "  %s: (%s%s)\n", label, kinds[p->kind], p->money ? ", money" : "");
    for (uint32_t i = 0; i < p->n; i++) {
        const vg_insn *in = &p->code[i];
        fprintf(f, "    %3u  %-9s", i, op_names[in->op]);
        switch (in->op) {
        case OP_CONST: dump_value(f, &rs->consts[in->c]); break;
        case OP_FIELD: fprintf(f, "slot %u", in->c); break;
        case OP_STEPFIELD: fprintf(f, "step %u slot %u", in->b, in->c); break;
        case OP_STEPATTR: fprintf(f, "step %u", in->b); break;
        case OP_AGG: fprintf(f, "aggregate %u", in->c); break;
        case OP_PREV: fprintf(f, "prev %u", in->c); break;
        case OP_NEG:
        case OP_ADD:
        case OP_SUB:
        case OP_MUL:
        case OP_DIV:
        case OP_MOD: fprintf(f, "%s", kinds[in->a]); break;
        case OP_JFALSE:
        case OP_JTRUE: fprintf(f, "-> %u", in->c); break;
        case OP_IN:
            fprintf(f, "%sset %u (%u values)", in->a ? "not " : "", in->c, rs->sets[in->c].n);
            break;
        case OP_MATCH: fprintf(f, "%sregex %u", in->a ? "not " : "", in->c); break;
        case OP_CALL: fprintf(f, "%s/%u", vg_functions[in->a].name, in->b); break;
        default: break;
        }
        fputc('\n', f);
    }
}

void
vg_ruleset_dump(const vg_ruleset *rs, FILE *f)
{
    static const char *const wins[] = {"over", "over-before", "over-history", "step"};
    static const char *const fns[] = {"count", "count-if", "sum",  "avg",  "min",
                                      "max",   "distinct", "seen", "first"};
    for (uint32_t i = 0; i < rs->C.nrules; i++) {
        const vg_rule *r = &rs->rules[i];
        fprintf(f, "rule %s  version %s  state %s  keyspace %u (%s)\n", r->name, r->version,
                r->state_id, r->keyspace, rs->keyspaces[r->keyspace]);
        if (r->is_match)
            fprintf(f, "  within %lldms\n", (long long)r->within_ms);
        for (uint32_t k = 0; k < r->nsteps; k++) {
            const vg_step *s = &r->steps[k];
            fprintf(f, "  step %u: %s%s %s", k, s->neg ? "not" : s->name, s->neg ? "" : ":",
                    vg_stream_name(s->stream));
            if (s->qmin > 0 && s->qmax < 0)
                fprintf(f, " {%d,}", s->qmin);
            else if (s->qmin > 0)
                fprintf(f, " {%d,%d}", s->qmin, s->qmax);
            fprintf(f, "  keyspace %u (%s)\n", s->keyspace, rs->keyspaces[s->keyspace]);
            dump_prog(rs, f, "  key", &s->key);
            dump_prog(rs, f, "  rule where", &s->filter);
            dump_prog(rs, f, "  where", &s->where);
        }
        if (!r->is_match) {
            dump_prog(rs, f, "key", &r->key);
            dump_prog(rs, f, "where", &r->where);
            dump_prog(rs, f, "when", &r->when);
        }
        for (uint32_t k = 0; k < r->ncols; k++) {
            char label[32];
            snprintf(label, sizeof label, "column %u%s", k, r->cols[k].hashed ? " (hashed)" : "");
            dump_prog(rs, f, label, &r->cols[k].prog);
        }
        for (uint32_t k = 0; k < r->naggs; k++) {
            const vg_aggspec *a = &r->aggs[k];
            fprintf(f, "  aggregate %u: %s column %d %s", k, fns[a->fn], a->col, wins[a->win]);
            if (a->win == VG_WIN_STEP)
                fprintf(f, " %d", a->step);
            else if (a->win != VG_WIN_HISTORY)
                fprintf(f, " %lldms", (long long)a->ms);
            fprintf(f, "   \"%s\"\n", a->text);
        }
        for (uint32_t k = 0; k < r->nprevs; k++) {
            char label[32];
            snprintf(label, sizeof label, "prev %u", k);
            dump_prog(rs, f, label, &r->prevs[k]);
        }
        for (uint32_t k = 0; k < r->nmsg; k++) {
            if (r->msg[k].text)
                fprintf(f, "  message text \"%.*s\"\n", (int)r->msg[k].len, r->msg[k].text);
            else
                dump_prog(rs, f, "message part", &r->msg[k].prog);
        }
        fputc('\n', f);
    }
}
