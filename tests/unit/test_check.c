/*
 * test_check.c - the checker: name resolution, types, windows, pattern rules,
 * regexes, lists, and fields added to the .proto (no compiler change).
 */
#include "testutil.h"

#include "vg_schema_pb.h"
#include "vigil_ext.pb-c.h"

static void
test_check_accepts_the_spec_examples(void **state)
{
    (void)state;
    assert_compiles(
        "list high_risk_countries = [\"NG\", \"KP\", \"RU\"]\n"
        "rule velocity_cnp {\n"
        "  description \"More than 10 online transactions on one account within an hour\"\n"
        "  key account_id\n  where channel == ECOMMERCE\n  when count() over 1h > 10\n"
        "  score 40\n  action review\n  suppress 1h\n"
        "  message \"{count() over 1h} online transactions in the last hour\"\n}\n"
        "rule card_testing {\n  key card_id\n"
        "  match small: txn where status == DECLINED and amount < 5.00 {3,}\n"
        "     -> big:   txn where status == APPROVED and amount > 500.00\n"
        "  within 10m\n  score 90\n  action block\n"
        "  message \"{count(small)} small declines, then {big.amount} {big.currency}\"\n}\n"
        "rule impossible_travel {\n"
        "  match a: txn -> b: txn where geo_km(a.lat, a.lon, b.lat, b.lon) > 900 * "
        "hours(b.time - a.time)\n  within 6h\n  score 70\n  action review\n}\n"
        "rule mule_cash_out {\n"
        "  match t: txn by counterparty_id where type == TRANSFER and balance_after == 0\n"
        "     -> c: txn by account_id where type == CASH_OUT and amount == t.amount\n"
        "  within 1h\n  action block\n}\n"
        "rule transfer_without_recent_login {\n"
        "  match not event where kind == \"login\"\n"
        "     -> t: txn where type == TRANSFER and amount > 1000\n"
        "  within 30m\n  action review\n}\n"
        "rule unconfirmed_payee {\n"
        "  match p: event where kind == \"new_payee\"\n"
        "     -> not event where kind == \"payee_confirmed\"\n"
        "  within 15m\n  action review\n}\n");
}

static void
test_check_accepts_every_function_and_window(void **state)
{
    (void)state;
    assert_compiles(
        "rule f {\n"
        "  key account_id + \":\" + merchant_id\n"
        "  where abs(amount) > 0 and min(amount, 5) < max(amount, 1, 2) and lower(country) != "
        "upper(country)\n"
        "    and len(merchant_name) > 2 and contains(merchant_name, \"x\") and starts_with(ip, "
        "\"10.\")\n"
        "    and ends_with(device_id, \"z\") and attr(\"k\") == \"v\" and num(attr(\"n\")) > 3\n"
        "    and hour_of_day(time) < 6 and day_of_week(time) >= 6 and merchant_name ~ /a/imsx\n"
        "  when count() over 1h > 1 and count(amount > 5) over 10m before < 3\n"
        "    and sum(amount) over history > 100 and avg(amount) over 7d < amount\n"
        "    and min(amount) over 1d < 5 and max(time) over 1d > time - 1h\n"
        "    and distinct(merchant_id) over 30d > 2 and not seen(device_id) over 30d\n"
        "    and prev(amount) < amount and time - prev(time) < 10m\n"
        "    and hours(time - prev(time)) + minutes(10m) + seconds(1h30m) > 0\n"
        "    and geo_km(lat, lon, 0, 0) > 10 and -amount < 0 and 2h / 1h == 2\n"
        "  message \"{sum(amount) over 1d} {prev(country)} {{ok}}\"\n"
        "}\n");
}

static void
test_check_types_and_durations(void **state)
{
    (void)state;
    assert_one_error("rule r { where amount > 5m }",
                     "t.vgl:1:16: error: can't compare a number with a duration",
                     "t.vgl:1:25: note: this is a duration (m is minutes); a number has no unit");
    assert_one_error("rule r { when time - prev(time) > 10 }",
                     "t.vgl:1:15: error: can't compare a duration with a number", NULL);
    assert_one_error("rule r { where merchant_name + amount == \"x\" }",
                     "t.vgl:1:16: error: can't apply '+' to a string and a number",
                     "note: '+' joins two strings");
    assert_one_error("rule r { where amount and true }",
                     "t.vgl:1:16: error: 'and' needs true/false conditions, but this is a number",
                     NULL);
    assert_one_error(
        "rule r { where amount + 1 }",
        "t.vgl:1:16: error: 'where' needs a true/false condition, but this is a number", NULL);
    assert_one_error("rule r { key amount > 5 }",
                     "t.vgl:1:14: error: a key must be a string, a number or an enum, but this is "
                     "a bool",
                     NULL);
    assert_one_error("rule r { where status < APPROVED }",
                     "t.vgl:1:23: error: '<' does not order enums; use == or !=", NULL);
    assert_one_error("rule r { where hours(time) > 1 }",
                     "t.vgl:1:22: error: hours() needs a duration (like b.time - a.time), but this "
                     "is a time",
                     NULL);
    assert_one_error("rule r { where len(amount, 2) > 1 }",
                     "t.vgl:1:16: error: len() takes 1 argument, but 2 are given", NULL);
    assert_one_error("rule r { where time > 1700000000000 }",
                     "t.vgl:1:16: error: can't compare a time with a number",
                     "times compare with times");
}

static void
test_check_resolves_names_and_suggests(void **state)
{
    (void)state;
    assert_one_error("rule r { where amout > 5 }",
                     "t.vgl:1:16: error: 'amout' is not a field of txn",
                     "t.vgl:1:16: note: did you mean 'amount'?");
    assert_one_error("rule r { where status == DECLNED }",
                     "t.vgl:1:26: error: 'DECLNED' is not a Status value",
                     "note: did you mean 'DECLINED'?");
    assert_one_error("rule r { where status == \"DECLINED\" }",
                     "t.vgl:1:16: error: can't compare a Status value with a string",
                     "note: write enum values without quotes: DECLINED");
    assert_one_error("rule r { where abss(amount) > 1 }",
                     "t.vgl:1:16: error: unknown function 'abss'", "did you mean 'abs'?");
    assert_one_error("rule r { where kind == \"login\" }",
                     "t.vgl:1:16: error: 'kind' is not a field of txn",
                     "note: 'kind' is a field of event");
    assert_one_error("rule r { where event.kind == \"login\" }",
                     "t.vgl:1:16: error: 'event.kind' reads event, but this rule reads txn", NULL);
    assert_one_error("rule r { on event where amount > 1 }",
                     "t.vgl:1:25: error: 'amount' is not a field of event", NULL);
    assert_one_error("rule r { where attrs == \"x\" }",
                     "t.vgl:1:16: error: 'attrs' is a map; read one entry with attr(\"name\")",
                     NULL);
    assert_one_error("list risky = [\"a\"]\nrule r { where country in risk }",
                     "t.vgl:2:27: error: unknown list 'risk'", "did you mean 'risky'?");
    assert_one_error("rule r { where type in [\"TRANSFER\", CASH_OUTT] }",
                     "t.vgl:1:37: error: 'CASH_OUTT' is not a TxnType value",
                     "did you mean 'CASH_OUT'?");
    assert_one_error("list l = [\"TRANSFER\", \"CASHOUT\"]\nrule r { where type in l }",
                     "t.vgl:1:23: error: the list holds 'CASHOUT', which is not a TxnType value",
                     "did you mean 'CASH_OUT'?");
    assert_one_error("list l = [\"TRANSFER\", \"CASHOUT\"]\nrule r { where type in l }",
                     "'CASHOUT', which is not",
                     "t.vgl:2:16: note: the list is compared with a TxnType value here");
    assert_one_error("rule r { where country in [\"NG\", 5] }",
                     "t.vgl:1:34: error: a list holds values of one type; this is a number, the "
                     "first is a string",
                     NULL);
    assert_compiles("list l = [\"TRANSFER\"]\nrule r { where type in l and type not in [PURCHASE, "
                    "\"REFUND\"] and txn.type == TRANSFER }");
}

static void
test_check_windows_are_legal_where_used(void **state)
{
    (void)state;
    assert_one_error("rule r { when distinct(ip) over history > 2 }",
                     "t.vgl:1:28: error: 'over history' works with count, sum, avg, min and max",
                     NULL);
    assert_one_error("rule r { when seen(ip) over history }", "'over history' works with", NULL);
    assert_one_error("rule r { when count() > 2 }",
                     "t.vgl:1:15: error: count() needs a window: add 'over 1h', 'over 1h before' "
                     "or 'over history'",
                     NULL);
    assert_one_error("rule r { where count() over 1h > 2 }",
                     "t.vgl:1:16: error: aggregates are not allowed in 'where'", NULL);
    assert_one_error("rule r { key sum(amount) over 1h }",
                     "t.vgl:1:14: error: aggregates are not allowed in 'key'", NULL);
    assert_one_error("rule r { when sum(count() over 1h) over 1d > 1 }",
                     "t.vgl:1:19: error: an aggregate can't contain another aggregate", NULL);
    assert_one_error("rule r { when abs(amount) over 1h > 1 }",
                     "t.vgl:1:15: error: abs() is not an aggregate", NULL);
    assert_one_error("rule r { where prev(amount) > 1 }",
                     "t.vgl:1:16: error: prev() is available only in a 'when' rule's 'when' and "
                     "'message'",
                     NULL);
    assert_one_error("rule r { match a: txn -> b: txn where count() over 1h > 1 within 1h }",
                     "t.vgl:1:47: error: 'over' windows are not allowed in match rules", NULL);
}

static void
test_check_pattern_rules(void **state)
{
    (void)state;
    assert_one_error("rule r { match not txn -> not event within 1h }",
                     "t.vgl:1:16: error: a pattern needs at least one named step", NULL);
    assert_one_error("rule r { match a: txn where amount > b.amount -> b: txn within 1h }",
                     "t.vgl:1:38: error: step 'b' is used before it is bound (at 1:50)", NULL);
    assert_one_error("rule r { match s: txn {3} -> b: txn where amount > s.amount within 1h }",
                     "t.vgl:1:52: error: step 's' is quantified and stands for several events",
                     NULL);
    assert_compiles("rule r { match s: txn {3} -> b: txn where amount > max(s.amount) within 1h "
                    "message \"{count(s)} then {b.amount}, first {first(s.amount)}\" }");
    assert_one_error("rule r { match a: txn -> b: txn {2} within 1h }",
                     "t.vgl:1:33: error: the last named step can't have a quantifier", NULL);
    assert_one_error("rule r { match a: txn {2} -> not txn -> b: txn within 1h }",
                     "t.vgl:1:23: error: a quantified step can't be next to a 'not' step", NULL);
    assert_one_error("rule r { match a: txn {2} -> b: txn {2} -> c: txn within 1h }",
                     "t.vgl:1:37: error: two quantified steps can't be next to each other", NULL);
    assert_one_error("rule r { match a: txn -> a: txn within 1h }",
                     "t.vgl:1:26: error: step name 'a' is used twice in this pattern",
                     "t.vgl:1:16: note: first used here");
    assert_one_error("rule r { match amount: txn -> b: txn within 1h }",
                     "t.vgl:1:16: error: step name 'amount' is also a field of txn", NULL);
    assert_one_error("rule r { on txn match a: txn within 1h }",
                     "t.vgl:1:10: error: 'on' is for 'when' rules", NULL);
    assert_one_error("rule r { where amount > 5 match e: event -> t: txn within 1h }",
                     "t.vgl:1:16: error: 'amount' is not a field of event",
                     "note: the rule's 'where' applies to every step; this step reads event");
    assert_one_error("rule r { match a: txn by b.account_id -> b: txn within 1h }",
                     "t.vgl:1:26: error: step 'b' is used before it is bound", NULL);
    assert_one_error("rule r { match a: txn -> b: txn by a.account_id within 1h }",
                     "t.vgl:1:36: error: step 'a' can't be used in the step's 'by' key", NULL);
    assert_one_error("rule r { match a: txn within 1h message \"{x.amount}\" }",
                     "t.vgl:1:43: error: 'x' is not a step of this rule's pattern", NULL);
    assert_one_error("rule r { when a.amount > 1 }",
                     "t.vgl:1:15: error: 'a.amount': only the steps of a 'match' pattern have "
                     "fields",
                     NULL);
}

static void
test_check_compiles_regexes_and_places_errors(void **state)
{
    (void)state;
    assert_one_error("rule r { where merchant_name ~ /ab(c/i }",
                     "t.vgl:1:37: error: invalid regex: missing closing parenthesis", NULL);
    assert_one_error("rule r { where merchant_name ~ /a{2,1}/ }",
                     "error: invalid regex: numbers out of order in {} quantifier", NULL);
    assert_one_error("rule r { where amount ~ /1/ }",
                     "t.vgl:1:16: error: '~' matches strings, but this is a number", NULL);
    assert_one_error("rule r { where merchant_name ~ \"x\" }",
                     "t.vgl:1:32: error: expected a regex like /pattern/ after '~', found '\"x\"'",
                     NULL);
}

static void
test_check_list_files_can_be_refused(void **state)
{
    (void)state;
    assert_one_error("list l = file \"/etc/passwd\"\nrule r { where country in l }",
                     "t.vgl:1:15: error: list files are not allowed here", NULL);
}

static void
test_check_rule_names_are_unique_across_files(void **state)
{
    (void)state;
    captured cap = {0};
    vg_buf_append(&cap.text, "", 0);
    vg_compile_opts opts = {.diag = capture_diag, .diag_ctx = &cap};
    vg_source srcs[] = {{"a.vgl", "rule same {}\n", 13}, {"b.vgl", "\n\nrule same {}\n", 15}};
    vg_ruleset *rs = NULL;
    unsigned nerr = 0;
    assert_int_equal(vg_ruleset_compile_sources(srcs, 2, &opts, &nerr, &rs), VG_ECOMPILE);
    assert_int_equal(nerr, 1);
    assert_non_null(strstr(cap.text.data, "b.vgl:3:6: error: rule 'same' is defined twice"));
    assert_non_null(strstr(cap.text.data, "a.vgl:1:6: note: first defined here"));
    vg_buf_free(&cap.text);
}

/* A field added to the .proto is usable in rules with no compiler change: the
 * extended copy of vigil.proto adds risk_segment, fee_minor, ip_risk, tier
 * (Transaction) and browser (AccountEvent). */
static void
test_new_proto_fields_are_usable_in_rules(void **state)
{
    (void)state;
    vg_schema *ext = NULL;
    char why[256];
    assert_int_equal(vg_schema_new(&vigiltest__v1__transaction__descriptor,
                                   &vigiltest__v1__account_event__descriptor, why, sizeof why,
                                   &ext),
                     VG_OK);
    const char *src = "rule uses_new_fields {\n"
                      "  where risk_segment == \"high\" and fee > 2.50 and tier == GOLD\n"
                      "  when ip_risk > 0.8 or sum(fee) over 1d > 100\n"
                      "  message \"{risk_segment} {fee}\"\n"
                      "}\n"
                      "rule new_event_field { on event where browser ~ /headless/i }\n";
    captured cap;
    vg_ruleset *rs = NULL;
    vg_err err = compile_with(ext, src, &cap, &rs);
    if (err != VG_OK)
        fail_msg("with the extended schema:\n%s", cap.text.data);
    assert_int_equal(vg_ruleset_nrules(rs), 2);
    assert_string_equal(vg_ruleset_rule_name(rs, 1), "new_event_field");
    assert_ptr_equal(vg_ruleset_ref(rs), rs); /* shared: both references must go */
    vg_ruleset_unref(rs);
    assert_int_equal(vg_ruleset_nrules(rs), 2);
    vg_ruleset_unref(rs);
    vg_buf_free(&cap.text);

    /* the same rules against the real schema: the fields do not exist */
    assert_int_equal(compile_with(NULL, src, &cap, &rs), VG_ECOMPILE);
    assert_non_null(strstr(cap.text.data, "'risk_segment' is not a field of txn"));
    assert_non_null(strstr(cap.text.data, "'browser' is not a field of event"));
    vg_buf_free(&cap.text);

    /* enum values come from the new enum too */
    assert_int_equal(compile_with(ext, "rule r { where tier == PLATINUM }", &cap, &rs),
                     VG_ECOMPILE);
    assert_non_null(strstr(cap.text.data, "'PLATINUM' is not a Tier value"));
    vg_buf_free(&cap.text);
    vg_schema_free(ext);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_accepts_the_spec_examples),
        cmocka_unit_test(test_check_accepts_every_function_and_window),
        cmocka_unit_test(test_check_types_and_durations),
        cmocka_unit_test(test_check_resolves_names_and_suggests),
        cmocka_unit_test(test_check_windows_are_legal_where_used),
        cmocka_unit_test(test_check_pattern_rules),
        cmocka_unit_test(test_check_compiles_regexes_and_places_errors),
        cmocka_unit_test(test_check_list_files_can_be_refused),
        cmocka_unit_test(test_check_rule_names_are_unique_across_files),
        cmocka_unit_test(test_new_proto_fields_are_usable_in_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
