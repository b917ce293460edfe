/*
 * test_parse.c - the parser: precedence and shape of expressions (printed as
 * S-expressions), patterns, clauses, and error recovery.
 */
#include "testutil.h"

#include "rulesInt.h"

typedef struct parsed {
    cstate C;
    captured cap;
} parsed;

static void
parse_src(parsed *P, const char *src)
{
    memset(P, 0, sizeof *P);
    vg_buf_append(&P->cap.text, "", 0);
    vg_compile_opts opts = {.diag = capture_diag, .diag_ctx = &P->cap};
    assert_int_equal(cstate_open(&P->C, &opts), VG_OK);
    int f = cstate_add_file(&P->C, "t.vgl", src, strlen(src), false);
    assert_true(f >= 0);
    parse_file(&P->C, (uint32_t)f);
}

static void
parse_done(parsed *P)
{
    cstate_close(&P->C);
    vg_buf_free(&P->cap.text);
}

static void
sexpr(const node *n, vg_buf *b)
{
    static const char *const wins[] = {"", "", " before", " history"};
    switch ((node_kind)n->kind) {
    case N_NUMBER: vg_buf_printf(b, "%g", n->v.num); break;
    case N_STRING: vg_buf_printf(b, "\"%s\"", n->v.s.str); break;
    case N_BOOL: vg_buf_puts(b, n->v.b ? "true" : "false"); break;
    case N_DURATION: vg_buf_printf(b, "%lldms", (long long)n->v.ms); break;
    case N_NAME: vg_buf_printf(b, "%s", n->name); break;
    case N_STREAM: vg_buf_printf(b, "%s.%s", n->stream ? "event" : "txn", n->name); break;
    case N_MEMBER: vg_buf_printf(b, "%.*s.%s", (int)n->bindlen, n->bind, n->name); break;
    case N_CALL:
    case N_AGG:
        vg_buf_puts(b, "(");
        if (n->kind == N_AGG)
            vg_buf_printf(b, "over %lldms%s ", (long long)n->win_ms, wins[n->win]);
        if (n->bind)
            vg_buf_printf(b, "%.*s.", (int)n->bindlen, n->bind);
        vg_buf_puts(b, n->name);
        for (uint32_t i = 0; i < n->nargs; i++) {
            vg_buf_puts(b, " ");
            sexpr(n->args[i], b);
        }
        vg_buf_puts(b, ")");
        break;
    case N_NEG:
        vg_buf_puts(b, "(neg ");
        sexpr(n->a, b);
        vg_buf_puts(b, ")");
        break;
    case N_NOT:
        vg_buf_puts(b, "(not ");
        sexpr(n->a, b);
        vg_buf_puts(b, ")");
        break;
    case N_BINARY:
        vg_buf_printf(b, "(%s ", tok_spelling((tok_kind)n->op));
        sexpr(n->a, b);
        vg_buf_puts(b, " ");
        sexpr(n->b, b);
        vg_buf_puts(b, ")");
        break;
    case N_CONV:
        vg_buf_puts(b, "(conv ");
        sexpr(n->a, b);
        vg_buf_puts(b, ")");
        break;
    case N_LOGIC:
        vg_buf_printf(b, "(%s", tok_spelling((tok_kind)n->op));
        for (uint32_t i = 0; i < n->nargs; i++) {
            vg_buf_puts(b, " ");
            sexpr(n->args[i], b);
        }
        vg_buf_puts(b, ")");
        break;
    case N_IN:
        vg_buf_printf(b, "(%s ", n->op ? "not-in" : "in");
        sexpr(n->a, b);
        vg_buf_puts(b, " ");
        sexpr(n->b, b);
        vg_buf_puts(b, ")");
        break;
    case N_REGEX:
        vg_buf_printf(b, "(%s ", n->op ? "!~" : "~");
        sexpr(n->a, b);
        vg_buf_printf(b, " /%s/)", n->rx_pat);
        break;
    case N_LIST:
        vg_buf_puts(b, "[");
        for (uint32_t i = 0; i < n->nargs; i++) {
            if (i)
                vg_buf_puts(b, " ");
            sexpr(n->args[i], b);
        }
        vg_buf_puts(b, "]");
        break;
    }
}

/* Parses `rule r { when EXPR }` and compares the S-expression of EXPR. */
static void
check_expr_shape(const char *expr, const char *want)
{
    char src[512];
    snprintf(src, sizeof src, "rule r { when %s }", expr);
    parsed P;
    parse_src(&P, src);
    assert_int_equal(P.C.nrules, 1);
    assert_non_null(P.C.rules[0]->when);
    vg_buf b = {0};
    sexpr(P.C.rules[0]->when, &b);
    if (strcmp(b.data, want) != 0)
        fail_msg("%s\n  parsed as %s\n  expected  %s", expr, b.data, want);
    vg_buf_free(&b);
    parse_done(&P);
}

static void
test_parse_follows_the_precedence_of_the_spec(void **state)
{
    (void)state;
    check_expr_shape("a or b and not c == 1", "(or a (and b (not (== c 1))))");
    check_expr_shape("a + b * c - d % e", "(- (+ a (* b c)) (% d e))");
    check_expr_shape("10 * avg(amount) over 1h", "(* 10 (over 3600000ms avg amount))");
    check_expr_shape("-count() over 1h before", "(neg (over 3600000ms before count))");
    check_expr_shape("- - x", "(neg (neg x))");
    check_expr_shape("a == b ~ /x/", "(~ (== a b) /x/)");
    check_expr_shape("not merchant_name ~ /casino/i", "(not (~ merchant_name /casino/))");
    check_expr_shape("x !~ /a/ and y", "(and (!~ x /a/) y)");
    check_expr_shape("(a or b) and c", "(and (or a b) c)");
    check_expr_shape("a or b or c and d and e", "(or a b (and c d e))");
    check_expr_shape("country not in [\"NG\", \"KP\"] or type in risky",
                     "(or (not-in country [\"NG\" \"KP\"]) (in type risky))");
    check_expr_shape("geo_km(a.lat, a.lon, b.lat, b.lon) > 900 * hours(b.time - a.time)",
                     "(> (geo_km a.lat a.lon b.lat b.lon) (* 900 (hours (- b.time a.time))))");
    check_expr_shape("sum(amount) over history >= 2 * max(a, b)",
                     "(>= (over 0ms history sum amount) (* 2 (max a b)))");
    check_expr_shape("t.attr(\"k\") == txn.key and event.message != \"\"",
                     "(and (== (t.attr \"k\") txn.key) (!= event.message \"\"))");
    check_expr_shape("count(status == DECLINED) over 10m > 3",
                     "(> (over 600000ms count (== status DECLINED)) 3)");
}

static void
test_parse_pattern_steps(void **state)
{
    (void)state;
    parsed P;
    parse_src(&P, "rule r {\n"
                  "  match not event where kind == \"login\"\n"
                  "     -> small: txn by card_id where amount < 5 {3,}\n"
                  "     -> mid: txn {2,4}\n"
                  "     -> big: event\n"
                  "     -> not txn by account_id\n"
                  "  within 1h30m\n"
                  "}\n");
    assert_int_equal(P.C.nrules, 1);
    rule *r = P.C.rules[0];
    assert_false(r->failed[CL_MATCH]);
    pattern *p = r->match;
    assert_non_null(p);
    assert_int_equal(p->nsteps, 5);
    assert_true(p->steps[0].neg);
    assert_int_equal(p->steps[0].stream, VG_STREAM_EVENT);
    assert_non_null(p->steps[0].where);
    assert_string_equal(p->steps[1].name, "small");
    assert_non_null(p->steps[1].by);
    assert_int_equal(p->steps[1].qmin, 3);
    assert_int_equal(p->steps[1].qmax, -1);
    assert_int_equal(p->steps[2].qmin, 2);
    assert_int_equal(p->steps[2].qmax, 4);
    assert_null(p->steps[2].where);
    assert_int_equal(p->steps[3].qmin, 0);
    assert_int_equal(p->steps[3].stream, VG_STREAM_EVENT);
    assert_true(p->steps[4].neg);
    assert_int_equal(r->within_ms, 5400000);
    parse_done(&P);
}

static void
test_parse_reads_every_clause(void **state)
{
    (void)state;
    parsed P;
    parse_src(&P, "list l = [1, 2, -3]\n"
                  "list f = file \"x.txt\"\n"
                  "rule r {\n"
                  "  description \"d\"\n"
                  "  key account_id + \":\" + merchant_id\n"
                  "  on event\n"
                  "  where true\n"
                  "  when false\n"
                  "  score 90\n"
                  "  action block\n"
                  "  suppress 2h\n"
                  "  message \"a {x} b {{c}} {y + 1}\"\n"
                  "  tags \"t1\", \"t2\"\n"
                  "  mode shadow\n"
                  "}\n");
    assert_int_equal(P.C.nlists, 2);
    assert_int_equal(P.C.lists[0]->nitems, 3);
    assert_true(P.C.lists[1]->from_file);
    assert_string_equal(P.C.lists[1]->path, "x.txt");
    rule *r = P.C.rules[0];
    assert_string_equal(r->description, "d");
    assert_int_equal(r->on, VG_STREAM_EVENT);
    assert_int_equal(r->score, 90);
    assert_int_equal(r->action, ACT_BLOCK);
    assert_int_equal(r->suppress_ms, 7200000);
    assert_true(r->shadow);
    assert_int_equal(r->ntags, 2);
    assert_string_equal(r->tags[1], "t2");
    tmpl *m = r->message;
    assert_int_equal(m->nparts, 4);
    assert_string_equal(m->parts[0].text, "a ");
    assert_non_null(m->parts[1].expr);
    assert_string_equal(m->parts[2].text, " b {c} ");
    assert_int_equal(m->parts[3].expr->kind, N_BINARY);
    /* expressions inside a template point back into the file */
    assert_int_equal(m->parts[1].expr->sp.start,
                     (uint32_t)(strstr(P.C.files[0].text, "{x}") - P.C.files[0].text) + 1);
    for (int i = 0; i < CL_COUNT_; i++)
        assert_false(r->failed[i]);
    parse_done(&P);
    assert_int_equal(P.cap.errors, 0);
}

static void
test_parse_defaults(void **state)
{
    (void)state;
    parsed P;
    parse_src(&P, "rule r {}");
    rule *r = P.C.rules[0];
    assert_null(r->key);
    assert_null(r->when);
    assert_int_equal(r->on, VG_STREAM_TXN);
    assert_int_equal(r->action, ACT_REVIEW);
    assert_int_equal(r->score, 0);
    assert_false(r->shadow);
    parse_done(&P);
}

static void
test_parse_reports_unclosed_paren_with_open_location(void **state)
{
    (void)state;
    assert_one_error("rule r {\n  where (amount > 5 and (x or y)\n  score 1\n}\n",
                     "t.vgl:3:3: error: expected ')' to close '(' at 2:9, found 'score'", NULL);
    assert_one_error("rule r {\n  where amount in [1, 2\n}\n",
                     "t.vgl:3:1: error: expected ']' to close '[' at 2:19, found '}'", NULL);
    assert_one_error("rule r {\n  where abs(amount\n}\n",
                     "t.vgl:3:1: error: expected ')' to close '(' at 2:12, found '}'", NULL);
    assert_one_error("rule r {\n  where amount > 5\n\nrule s {}\n",
                     "t.vgl:4:1: error: expected '}' to close '{' of rule 'r' at 1:8, found 'rule'",
                     NULL);
}

static void
test_parse_recovers_at_clauses_and_declarations(void **state)
{
    (void)state;
    captured cap;
    vg_ruleset *rs = NULL;
    const char *src = "rule a {\n"
                      "  where amount >\n" /* 1: missing operand */
                      "  score 500\n"      /* 2: out of range */
                      "  action maybe\n"   /* 3: unknown action */
                      "}\n"
                      "bogus\n" /* 4: not a declaration */
                      "rule b {\n"
                      "  when (count() over 1h\n" /* 5: unclosed paren */
                      "  suppress 10\n"           /* 6: no unit */
                      "}\n"
                      "rule c { where amount > 5 }\n";
    assert_int_equal(compile_with(NULL, src, &cap, &rs), VG_ECOMPILE);
    assert_int_equal(cap.errors, 6);
    const char *want[] = {
        "t.vgl:3:3: error: expected an expression, found 'score'",
        "t.vgl:3:9: error: expected a score: a whole number from 0 to 100, found '500'",
        "t.vgl:4:10: error: unknown action 'maybe'; expected allow, review or block",
        "t.vgl:6:1: error: expected 'rule' or 'list', found 'bogus'",
        "t.vgl:9:3: error: expected ')' to close '(' at 8:8, found 'suppress'",
        "t.vgl:9:12: error: 'suppress' needs a unit: write 10m, 1h, 30s, 500ms or 7d",
    };
    const char *at = cap.text.data;
    for (size_t i = 0; i < VG_ARRAY_LEN(want); i++) {
        const char *hit = strstr(at, want[i]);
        if (hit == NULL)
            fail_msg("missing (in order) '%s' in:\n%s", want[i], cap.text.data);
        at = hit;
    }
    vg_buf_free(&cap.text);
}

static void
test_parse_reports_chained_comparisons(void **state)
{
    (void)state;
    assert_one_error("rule r { where 1 < amount < 10 }",
                     "t.vgl:1:27: error: comparisons do not chain", NULL);
}

static void
test_parse_requires_within_and_step_names(void **state)
{
    (void)state;
    assert_one_error("rule r {\n  match a: txn -> b: txn\n  score 1\n}",
                     "t.vgl:3:3: error: expected 'within' and a duration after the pattern", NULL);
    assert_one_error("rule r { match txn where amount > 5 within 1m }",
                     "t.vgl:1:16: error: a step needs a name so the rule can refer to it: write "
                     "'a: txn ...'",
                     NULL);
    assert_one_error("rule r { match a txn within 1m }",
                     "t.vgl:1:18: error: expected ':' after the step name (like 'a: txn where "
                     "...'), found 'txn'",
                     NULL);
    assert_one_error("rule r { match a: payment within 1m }",
                     "t.vgl:1:19: error: expected 'txn' or 'event' after 'a:', found 'payment'",
                     NULL);
    assert_one_error("rule r { match a: txn {0} -> b: txn within 1m }",
                     "t.vgl:1:23: error: a quantifier needs at least 1 event", NULL);
    assert_one_error("rule r { match a: txn {3,2} -> b: txn within 1m }",
                     "t.vgl:1:23: error: empty range", NULL);
    assert_one_error("rule r { match not txn {2} -> b: txn within 1m }",
                     "t.vgl:1:24: error: a 'not' step can't have a quantifier", NULL);
}

static void
test_parse_reports_repeated_and_conflicting_clauses(void **state)
{
    (void)state;
    assert_one_error("rule r {\n  where true\n  where false\n}",
                     "t.vgl:3:3: error: 'where' is given twice in rule 'r'",
                     "t.vgl:2:3: note: first given here");
    assert_one_error("rule r {\n  when true\n  match a: txn within 1m\n}",
                     "t.vgl:3:3: error: a rule has either 'when' or 'match', not both",
                     "t.vgl:2:3: note: 'when' given here");
}

static void
test_parse_suggests_clause_keywords(void **state)
{
    (void)state;
    assert_one_error("rule r {\n  scor 5\n}", "t.vgl:2:3: error: unknown clause 'scor' in rule 'r'",
                     "did you mean 'score'?");
    assert_one_error("rul r {}", "t.vgl:1:1: error: expected 'rule' or 'list', found 'rul'",
                     "did you mean 'rule'?");
    assert_one_error("rule where {}",
                     "t.vgl:1:6: error: 'where' is a reserved word and can't name a rule", NULL);
}

static void
test_parse_templates_report_brace_errors(void **state)
{
    (void)state;
    assert_one_error("rule r { message \"a } b\" }",
                     "t.vgl:1:21: error: unmatched '}' in a message; write '}}' for a brace", NULL);
    assert_one_error("rule r { message \"a {} b\" }", "t.vgl:1:21: error: empty '{}' in a message",
                     NULL);
    assert_one_error("rule r { message \"a {amount b\" }",
                     "t.vgl:1:29: error: expected '}' to close '{' at 1:21, found 'b'", NULL);
    /* an escape before the expression shifts nothing: columns are the file's */
    assert_one_error("rule r { message \"\\\"q\\\" {amout}\" }",
                     "t.vgl:1:26: error: 'amout' is not a field of txn", NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_follows_the_precedence_of_the_spec),
        cmocka_unit_test(test_parse_pattern_steps),
        cmocka_unit_test(test_parse_reads_every_clause),
        cmocka_unit_test(test_parse_defaults),
        cmocka_unit_test(test_parse_reports_unclosed_paren_with_open_location),
        cmocka_unit_test(test_parse_recovers_at_clauses_and_declarations),
        cmocka_unit_test(test_parse_reports_chained_comparisons),
        cmocka_unit_test(test_parse_requires_within_and_step_names),
        cmocka_unit_test(test_parse_reports_repeated_and_conflicting_clauses),
        cmocka_unit_test(test_parse_suggests_clause_keywords),
        cmocka_unit_test(test_parse_templates_report_brace_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
