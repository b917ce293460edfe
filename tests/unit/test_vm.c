/*
 * test_vm.c - code generation and the VM: expressions of every kind,
 * evaluated on real events, with SQL three-valued logic, exact money,
 * functions, sets, regexes and constant folding; and value formatting.
 */
#include <math.h>

#include "testutil.h"

#include "vg_vm.h"

typedef struct fixture {
    vg_ruleset *rs;
    vg_vm *vm;
    vg_event ev;
    vg_attr attrs[4];
} fixture;

static const vg_schema *
schema(void)
{
    return vg_schema_default();
}

static unsigned
slot(vg_stream_id s, const char *name)
{
    const vg_field *f = vg_schema_field(schema(), s, name, strlen(name));
    assert_non_null(f);
    return f->slot;
}

static void
set_num(vg_event *ev, const char *name, double v)
{
    vg_value *x = &ev->v[slot(ev->stream, name)];
    x->kind = VG_V_NUM;
    x->u.num = v;
}

static void
set_str(vg_event *ev, const char *name, const char *s)
{
    vg_value *x = &ev->v[slot(ev->stream, name)];
    x->kind = VG_V_STR;
    x->u.s = s;
    x->len = (uint32_t)strlen(s);
}

static void
set_kind(vg_event *ev, const char *name, uint8_t kind, double v)
{
    vg_value *x = &ev->v[slot(ev->stream, name)];
    x->kind = kind;
    x->u.num = v;
}

/* A transaction: 250.01 EUR, APPROVED (1) PURCHASE (1) on ECOMMERCE (2),
 * at 2024-05-01T13:30:00Z (a Wednesday), merchant "Casino Royale". */
static void
setup_event(fixture *F)
{
    vg_event_clear(&F->ev, VG_STREAM_TXN);
    set_str(&F->ev, "id", "t-1");
    set_kind(&F->ev, "time", VG_V_TIME, 1714570200000.0);
    set_str(&F->ev, "account_id", "acct-1");
    set_num(&F->ev, "amount", 25001 / 100.0);
    set_str(&F->ev, "currency", "EUR");
    set_kind(&F->ev, "status", VG_V_ENUM, 1);
    set_kind(&F->ev, "type", VG_V_ENUM, 1);
    set_kind(&F->ev, "channel", VG_V_ENUM, 2);
    set_str(&F->ev, "merchant_name", "Casino Royale");
    set_str(&F->ev, "country", "NG");
    set_num(&F->ev, "lat", 52.52);
    set_num(&F->ev, "lon", 13.405);
    F->attrs[0] = (vg_attr){"k", "v", 1, 1};
    F->attrs[1] = (vg_attr){"score", "0.75", 5, 4};
    F->ev.attrs = F->attrs;
    F->ev.nattrs = 2;
}

/* Compiles `rule r { where EXPR }` (with list l) and evaluates EXPR. */
static vg_value
eval_where(fixture *F, const char *expr)
{
    char src[2048];
    snprintf(src, sizeof src, "list l = [\"NG\", \"KP\"]\nrule r { where %s }", expr);
    captured cap;
    vg_ruleset_unref(F->rs);
    vg_vm_free(F->vm);
    F->rs = NULL;
    F->vm = NULL;
    if (compile_with(NULL, src, &cap, &F->rs) != VG_OK)
        fail_msg("%s\n%s", expr, cap.text.data);
    vg_buf_free(&cap.text);
    assert_int_equal(vg_vm_new(F->rs, &F->vm), VG_OK);
    vg_vm_ctx ctx = {.ev = &F->ev};
    return vg_vm_eval(F->vm, &vg_ruleset_rule(F->rs, 0)->where, &ctx);
}

static fixture F;

static int
setup(void **state)
{
    (void)state;
    memset(&F, 0, sizeof F);
    setup_event(&F);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    vg_vm_free(F.vm);
    vg_ruleset_unref(F.rs);
    return 0;
}

#define assert_true_expr(e)                                                                        \
    do {                                                                                           \
        vg_value v_ = eval_where(&F, (e));                                                         \
        if (v_.kind != VG_V_BOOL || v_.u.num != 1)                                                 \
            fail_msg("%s: expected true, got kind %d value %g", (e), v_.kind, v_.u.num);           \
    } while (0)
#define assert_false_expr(e)                                                                       \
    do {                                                                                           \
        vg_value v_ = eval_where(&F, (e));                                                         \
        if (v_.kind != VG_V_BOOL || v_.u.num != 0)                                                 \
            fail_msg("%s: expected false, got kind %d value %g", (e), v_.kind, v_.u.num);          \
    } while (0)
#define assert_unknown_expr(e)                                                                     \
    do {                                                                                           \
        vg_value v_ = eval_where(&F, (e));                                                         \
        if (v_.kind != VG_V_MISSING)                                                               \
            fail_msg("%s: expected unknown, got kind %d value %g", (e), v_.kind, v_.u.num);        \
    } while (0)

static void
test_vm_compares_money_exactly(void **state)
{
    (void)state;
    assert_true_expr("amount == 250.01");
    assert_true_expr("amount > 250.00");
    assert_false_expr("amount > 250.01");
    assert_true_expr("amount >= 250.01 and amount < 250.02");
    assert_true_expr("amount * 100 == 25001");
}

static void
test_vm_enums_strings_and_lists(void **state)
{
    (void)state;
    assert_true_expr("status == APPROVED and channel != POS");
    assert_true_expr("type in [PURCHASE, REFUND] and type not in [\"TRANSFER\"]");
    assert_true_expr("country in l and country not in [\"RU\"]");
    assert_true_expr("merchant_name > \"Bank\" and merchant_name < \"Dog\"");
    assert_true_expr("lower(merchant_name) == \"casino royale\" and upper(country) == \"NG\"");
    assert_true_expr("account_id + \":\" + country == \"acct-1:NG\"");
    assert_true_expr("len(\"caf\\u{E9}\") == 4 and len(merchant_name) == 13");
    assert_true_expr("contains(merchant_name, \"sino\") and starts_with(merchant_name, \"Cas\")");
    assert_true_expr("ends_with(merchant_name, \"ale\") and not ends_with(merchant_name, \"x\")");
}

static void
test_vm_regexes(void **state)
{
    (void)state;
    assert_true_expr("merchant_name ~ /casino/i");
    assert_false_expr("merchant_name ~ /casino/");
    assert_true_expr("merchant_name !~ /^Bank/");
    assert_unknown_expr("attr(\"nope\") ~ /x/");
}

static void
test_vm_three_valued_logic(void **state)
{
    (void)state;
    /* balance_after is absent: comparisons with it are unknown */
    assert_unknown_expr("balance_after == 0");
    assert_unknown_expr("not (balance_after == 0)");
    assert_false_expr("balance_after == 0 and false");
    assert_true_expr("balance_after == 0 or true");
    assert_unknown_expr("balance_after == 0 and true");
    assert_unknown_expr("balance_after == 0 or false");
    assert_unknown_expr("balance_after + 1 > 0");
    assert_unknown_expr("amount / 0 > 1");
    assert_unknown_expr("amount % 0 > 1");
    assert_unknown_expr("attr(\"nope\") == \"\"");
    assert_unknown_expr("attr(\"nope\") != \"\"");
    assert_true_expr("attr(\"k\") == \"v\" and num(attr(\"score\")) == 0.75");
    assert_unknown_expr("num(attr(\"k\")) > 0");
}

static void
test_vm_times_durations_and_functions(void **state)
{
    (void)state;
    assert_true_expr("hour_of_day(time) == 13 and day_of_week(time) == 3");
    assert_true_expr("time + 1h > time and time - (time - 90m) == 1h30m");
    assert_true_expr("hours(90m) == 1.5 and minutes(1h) == 60 and seconds(1500ms) == 1.5");
    assert_true_expr("2h / 1h == 2 and 1h * 2 == 120m and abs(-5m) == 5m");
    assert_true_expr("min(amount, 5) == 5 and max(1, 2, 3) == 3 and abs(-2.5) == 2.5");
    /* Berlin to Paris: 878 km on a sphere of radius 6371.0 km */
    assert_true_expr("geo_km(lat, lon, 48.8566, 2.3522) > 877 and geo_km(lat, lon, 48.8566, "
                     "2.3522) < 879");
    assert_true_expr("geo_km(0, 0, 0, 0) == 0");
}

static void
test_vm_folds_constants(void **state)
{
    (void)state;
    assert_true_expr("amount > 100 * 2 + 50");
    const vg_rule *r = vg_ruleset_rule(F.rs, 0);
    /* FIELD, CONST 250, GT, RET: 100 * 2 + 50 was folded */
    assert_int_equal(r->where.n, 4);
    eval_where(&F, "merchant_name == lower(\"CASINO\") + \" royale\"");
    assert_int_equal(vg_ruleset_rule(F.rs, 0)->where.n, 4);
    /* a constant operand of and/or: dropped when neutral ... */
    assert_true_expr("amount > 5 and lower(\"ABC\") == \"abc\"");
    assert_int_equal(vg_ruleset_rule(F.rs, 0)->where.n, 4); /* FIELD CONST GT RET */
    assert_true_expr("amount > 5 or 1 > 2 or 2 > 3");
    assert_int_equal(vg_ruleset_rule(F.rs, 0)->where.n, 4);
    /* ... and the result when absorbing, even next to a missing value */
    eval_where(&F, "lat > 1 and 1 > 2");
    assert_int_equal(vg_ruleset_rule(F.rs, 0)->where.n, 2); /* CONST false, RET */
    eval_where(&F, "1 < 2 and 2 < 3");
    assert_int_equal(vg_ruleset_rule(F.rs, 0)->where.n, 2); /* CONST true, RET */
    assert_true_expr("1 < 2 and 2 < 3");
    assert_true_expr("not (lat > 1 and 1 > 2)"); /* false, not missing */
}

static void
test_value_format(void **state)
{
    (void)state;
    vg_buf b = {0};
    vg_value v = {.kind = VG_V_NUM};
    v.u.num = 181;
    vg_value_format(&v, false, 2, NULL, &b);
    vg_buf_putc(&b, ' ');
    v.u.num = 9.5;
    vg_value_format(&v, false, 2, NULL, &b);
    vg_buf_putc(&b, ' ');
    v.u.num = 612;
    vg_value_format(&v, true, 2, NULL, &b);
    vg_buf_putc(&b, ' ');
    v.u.num = 0.1 + 0.2;
    vg_value_format(&v, false, 2, NULL, &b);
    vg_buf_putc(&b, ' ');
    v.kind = VG_V_TIME;
    v.u.num = 1700000123000;
    vg_value_format(&v, false, 2, NULL, &b);
    vg_buf_putc(&b, ' ');
    v.kind = VG_V_DUR;
    v.u.num = 5400000;
    vg_value_format(&v, false, 2, NULL, &b);
    vg_buf_putc(&b, ' ');
    v.u.num = 1500;
    vg_value_format(&v, false, 2, NULL, &b);
    vg_buf_putc(&b, ' ');
    v.kind = VG_V_MISSING;
    vg_value_format(&v, false, 2, NULL, &b);
    vg_buf_putc(&b, '|');
    assert_string_equal(b.data, "181 9.5 612.00 0.30000000000000004 2023-11-14T22:15:23.000Z "
                                "1h30m 1s500ms |");
    vg_buf_free(&b);
    assert_int_equal(vg_currency_digits("JPY", 3), 0);
    assert_int_equal(vg_currency_digits("kwd", 3), 3);
    assert_int_equal(vg_currency_digits("EUR", 3), 2);
    assert_int_equal(vg_currency_digits("", 0), 2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_vm_compares_money_exactly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vm_enums_strings_and_lists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vm_regexes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vm_three_valued_logic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vm_times_durations_and_functions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vm_folds_constants, setup, teardown),
        cmocka_unit_test(test_value_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
