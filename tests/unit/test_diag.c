/* test_diag.c - rendering diagnostics and "did you mean" suggestions. */
#include "testutil.h"

#include "rulesInt.h"

static void
test_diag_renders_clang_style_with_underline(void **state)
{
    (void)state;
    vg_diag d = {.severity = VG_SEV_ERROR,
                 .file = "r.vgl",
                 .line = 3,
                 .col = 9,
                 .end_col = 14,
                 .message = "'amout' is not a field of txn",
                 .line_text = "  where amout > 5",
                 .line_len = 17,
                 .show_source = true};
    vg_buf b = {0};
    assert_int_equal(vg_diag_render(&d, false, &b), VG_OK);
    assert_string_equal(b.data, "r.vgl:3:9: error: 'amout' is not a field of txn\n"
                                "    where amout > 5\n"
                                "          ^~~~~\n");
    vg_buf_free(&b);
}

static void
test_diag_keeps_tabs_and_counts_code_points(void **state)
{
    (void)state;
    /* "\tcafé x": the caret under x sits after a tab and 5 code points */
    const char *line = "\tcaf\xC3\xA9 x";
    vg_diag d = {.severity = VG_SEV_ERROR,
                 .file = "r.vgl",
                 .line = 1,
                 .col = 8,
                 .end_col = 9,
                 .message = "m",
                 .line_text = line,
                 .line_len = strlen(line),
                 .show_source = true};
    vg_buf b = {0};
    vg_diag_render(&d, false, &b);
    assert_string_equal(b.data, "r.vgl:1:8: error: m\n  \tcaf\xC3\xA9 x\n  \t     ^\n");
    vg_buf_free(&b);
}

static void
test_diag_marks_end_of_line_and_hides_bad_bytes(void **state)
{
    (void)state;
    vg_diag d = {.severity = VG_SEV_ERROR,
                 .file = "r.vgl",
                 .line = 1,
                 .col = 4,
                 .end_col = 4,
                 .message = "m",
                 .line_text = "a\x01\xFF",
                 .line_len = 3,
                 .show_source = true};
    vg_buf b = {0};
    vg_diag_render(&d, false, &b);
    assert_string_equal(b.data, "r.vgl:1:4: error: m\n  a??\n     ^\n");
    vg_buf_free(&b);
}

static void
test_diag_shows_a_window_of_long_lines(void **state)
{
    (void)state;
    char line[1001];
    memset(line, 'a', 1000);
    line[1000] = '\0';
    memcpy(line + 500, "XY", 2);
    vg_diag d = {.severity = VG_SEV_ERROR,
                 .file = "r.vgl",
                 .line = 1,
                 .col = 501,
                 .end_col = 503,
                 .message = "m",
                 .line_text = line,
                 .line_len = 1000,
                 .show_source = true};
    vg_buf b = {0};
    vg_diag_render(&d, false, &b);
    const char *src = strchr(b.data, '\n') + 1;
    const char *car = strchr(src, '\n') + 1;
    assert_int_equal(strchr(src, '\n') - src, 2 + 3 + 160 + 3); /* indent ... text ... */
    assert_memory_equal(src, "  ...", 5);
    assert_int_equal(strstr(src, "XY") - src, strchr(car, '^') - car); /* caret under XY */
    assert_string_equal(strchr(car, '^'), "^~\n");
    vg_buf_free(&b);
}

static void
test_diag_notes_and_plain_messages(void **state)
{
    (void)state;
    vg_diag note = {.severity = VG_SEV_NOTE,
                    .file = "r.vgl",
                    .line = 3,
                    .col = 9,
                    .message = "did you mean 'amount'?",
                    .line_text = "x",
                    .line_len = 1,
                    .show_source = false};
    vg_diag plain = {.severity = VG_SEV_ERROR, .message = "can't open 'x': No such file"};
    vg_diag fileonly = {
        .severity = VG_SEV_ERROR, .file = "r.vgl", .message = "too many errors; stopping"};
    vg_buf b = {0};
    vg_diag_render(&note, false, &b);
    vg_diag_render(&plain, false, &b);
    vg_diag_render(&fileonly, false, &b);
    assert_string_equal(b.data, "r.vgl:3:9: note: did you mean 'amount'?\n"
                                "error: can't open 'x': No such file\n"
                                "r.vgl: error: too many errors; stopping\n");
    vg_buf_free(&b);
}

static void
test_diag_colors_only_when_asked(void **state)
{
    (void)state;
    vg_diag d = {.severity = VG_SEV_ERROR,
                 .file = "r.vgl",
                 .line = 1,
                 .col = 1,
                 .end_col = 2,
                 .message = "m",
                 .line_text = "x",
                 .line_len = 1,
                 .show_source = true};
    vg_buf b = {0};
    vg_diag_render(&d, true, &b);
    assert_non_null(strstr(b.data, "\033[1;31merror"));
    vg_buf_free(&b);
}

static void
test_suggest_picks_the_closest_name(void **state)
{
    (void)state;
    const char *names[] = {"amount", "account_id", "country", "currency", "counterparty_id"};
    assert_string_equal(diag_suggest("amout", 5, names, 5), "amount");
    assert_string_equal(diag_suggest("ammount", 7, names, 5), "amount");
    assert_string_equal(diag_suggest("Amount", 6, names, 5), "amount"); /* case only */
    assert_string_equal(diag_suggest("contry", 6, names, 5), "country");
    assert_string_equal(diag_suggest("cuontry", 7, names, 5), "country"); /* a swap */
    assert_null(diag_suggest("zzzzzz", 6, names, 5));
    assert_null(diag_suggest("x", 1, names, 5));
    assert_null(diag_suggest("amount", 6, names, 5)); /* the name itself is no suggestion */
}

static void
test_error_limit_stops_at_100_per_file(void **state)
{
    (void)state;
    vg_buf src = {0};
    for (int i = 0; i < 150; i++)
        vg_buf_printf(&src, "rule r%d { where amout%d > 1 }\n", i, i);
    captured cap;
    vg_ruleset *rs = NULL;
    unsigned nerr = 0;
    memset(&cap, 0, sizeof cap);
    vg_buf_append(&cap.text, "", 0);
    vg_compile_opts opts = {.diag = capture_diag, .diag_ctx = &cap};
    vg_source s = {"t.vgl", src.data, src.len};
    assert_int_equal(vg_ruleset_compile_sources(&s, 1, &opts, &nerr, &rs), VG_ECOMPILE);
    assert_int_equal(nerr, 100);
    assert_non_null(strstr(cap.text.data, "t.vgl: error: too many errors; stopping\n"));
    /* reported in line order */
    assert_true(strstr(cap.text.data, "t.vgl:1:") < strstr(cap.text.data, "t.vgl:2:"));
    vg_buf_free(&cap.text);
    vg_buf_free(&src);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_diag_renders_clang_style_with_underline),
        cmocka_unit_test(test_diag_keeps_tabs_and_counts_code_points),
        cmocka_unit_test(test_diag_marks_end_of_line_and_hides_bad_bytes),
        cmocka_unit_test(test_diag_shows_a_window_of_long_lines),
        cmocka_unit_test(test_diag_notes_and_plain_messages),
        cmocka_unit_test(test_diag_colors_only_when_asked),
        cmocka_unit_test(test_suggest_picks_the_closest_name),
        cmocka_unit_test(test_error_limit_stops_at_100_per_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
