/* test_lex.c - the lexer: token kinds, values, spans and lexical errors. */
#include "testutil.h"

#include "rulesInt.h"

typedef struct lexed {
    cstate C;
    captured cap;
    token toks[64];
    int n;
} lexed;

/* Lexes src completely into L->toks (EOF included). */
static void
lex_all(lexed *L, const char *src)
{
    memset(L, 0, sizeof *L);
    vg_buf_append(&L->cap.text, "", 0);
    vg_compile_opts opts = {.diag = capture_diag, .diag_ctx = &L->cap};
    assert_int_equal(cstate_open(&L->C, &opts), VG_OK);
    int f = cstate_add_file(&L->C, "t.vgl", src, strlen(src), false);
    assert_true(f >= 0);
    lexer lx;
    lex_init(&lx, &L->C, (uint32_t)f, L->C.files[f].text, L->C.files[f].len, NULL);
    do {
        L->toks[L->n] = lex_next(&lx);
    } while (L->toks[L->n++].kind != T_EOF && L->n < 64);
}

/* Ends the compilation (flushing diagnostics into cap) and frees it. */
static void
lex_done(lexed *L)
{
    cstate_close(&L->C);
}

static void
lex_free(lexed *L)
{
    vg_buf_free(&L->cap.text);
}

static void
test_lex_rule_header_and_operators(void **state)
{
    (void)state;
    lexed L;
    lex_all(&L, "rule r1 { where a.amount >= 5 and x != y or not z -> w <= 1 == 2 < 3 > 4 }");
    tok_kind want[] = {T_RULE,   T_IDENT,  T_LBRACE, T_WHERE, T_IDENT,  T_DOT,    T_IDENT,
                       T_GE,     T_NUMBER, T_AND,    T_IDENT, T_NE,     T_IDENT,  T_OR,
                       T_NOT,    T_IDENT,  T_ARROW,  T_IDENT, T_LE,     T_NUMBER, T_EQ,
                       T_NUMBER, T_LT,     T_NUMBER, T_GT,    T_NUMBER, T_RBRACE, T_EOF};
    assert_int_equal(L.n, (int)VG_ARRAY_LEN(want));
    for (int i = 0; i < L.n; i++)
        assert_int_equal(L.toks[i].kind, want[i]);
    /* spans are byte offsets into the file */
    assert_int_equal(L.toks[1].sp.start, 5);
    assert_int_equal(L.toks[1].sp.end, 7);
    lex_done(&L);
    assert_int_equal(L.cap.errors, 0);
    lex_free(&L);
}

static void
test_lex_numbers_and_durations(void **state)
{
    (void)state;
    lexed L;
    lex_all(&L, "5 5.00 1e6 2.5E-3 500ms 30s 10m 1h 7d 1h30m 1d2h3m4s5ms");
    assert_int_equal(L.toks[0].kind, T_NUMBER);
    assert_true(L.toks[0].v.num == 5);
    assert_true(L.toks[1].v.num == 5.0);
    assert_true(L.toks[2].v.num == 1e6);
    assert_true(L.toks[3].v.num == 2.5e-3);
    int64_t ms[] = {500,
                    30000,
                    600000,
                    3600000,
                    7 * 86400000LL,
                    5400000,
                    86400000LL + 2 * 3600000 + 3 * 60000 + 4000 + 5};
    for (int i = 0; i < 7; i++) {
        assert_int_equal(L.toks[4 + i].kind, T_DURATION);
        assert_int_equal(L.toks[4 + i].v.ms, ms[i]);
    }
    lex_done(&L);
    assert_int_equal(L.cap.errors, 0);
    lex_free(&L);
}

static void
test_lex_reports_bad_durations(void **state)
{
    (void)state;
    lexed L;
    lex_all(&L, "10x 1.5h 30m1h 5min");
    lex_done(&L);
    assert_int_equal(L.cap.errors, 4);
    assert_non_null(strstr(L.cap.text.data,
                           "t.vgl:1:1: error: unknown unit 'x' after a number; durations use ms, "
                           "s, m, h or d (like 10m)"));
    assert_non_null(strstr(L.cap.text.data, "t.vgl:1:5: error: a duration is a whole number"));
    assert_non_null(strstr(L.cap.text.data, "t.vgl:1:10: error: units of a duration go from "
                                            "largest to smallest"));
    assert_non_null(strstr(L.cap.text.data, "t.vgl:1:16: error: unknown unit 'min'"));
    lex_free(&L);
}

static void
test_lex_regex_only_after_match_operators(void **state)
{
    (void)state;
    lexed L;
    lex_all(&L, "a / b ~ /x\\/y/ims c !~ /d/");
    tok_kind want[] = {T_IDENT, T_SLASH,  T_IDENT, T_TILDE, T_REGEX,
                       T_IDENT, T_NTILDE, T_REGEX, T_EOF};
    assert_int_equal(L.n, (int)VG_ARRAY_LEN(want));
    for (int i = 0; i < L.n; i++)
        assert_int_equal(L.toks[i].kind, want[i]);
    /* the pattern ends at the first unescaped '/' */
    assert_int_equal(L.toks[4].v.rx.len, 4);
    assert_memory_equal(L.toks[4].v.rx.pat, "x\\/y", 4);
    lex_done(&L);
    lex_free(&L);
}

static void
test_lex_regex_pattern_and_flags(void **state)
{
    (void)state;
    lexed L;
    lex_all(&L, "x ~ /a\\/b/imsx");
    assert_int_equal(L.toks[2].kind, T_REGEX);
    assert_int_equal(L.toks[2].v.rx.len, 4);
    assert_memory_equal(L.toks[2].v.rx.pat, "a\\/b", 4);
    assert_int_equal(L.toks[2].v.rx.flags, RX_I | RX_M | RX_S | RX_X);
    lex_done(&L);
    assert_int_equal(L.cap.errors, 0);
    lex_free(&L);

    lex_all(&L, "x ~ /abc/g");
    lex_done(&L);
    assert_non_null(strstr(
        L.cap.text.data, "t.vgl:1:10: error: unknown regex flag 'g'; the flags are i, m, s and x"));
    lex_free(&L);

    lex_all(&L, "x ~ /abc\ny");
    lex_done(&L);
    assert_non_null(strstr(L.cap.text.data, "t.vgl:1:5: error: missing closing '/' of this regex"));
    lex_free(&L);
}

static void
test_lex_decodes_string_escapes(void **state)
{
    (void)state;
    lexed L;
    lex_all(&L, "\"a\\\"b\\\\c\\nd\\te\\u{48}\\u{1F600}\" \"caf\xC3\xA9\"");
    assert_int_equal(L.toks[0].kind, T_STRING);
    assert_string_equal(L.toks[0].v.s.str, "a\"b\\c\nd\teH\xF0\x9F\x98\x80");
    assert_int_equal(L.toks[0].v.s.len, strlen("a\"b\\c\nd\teH") + 4);
    assert_string_equal(L.toks[1].v.s.str, "caf\xC3\xA9");
    lex_done(&L);
    assert_int_equal(L.cap.errors, 0);
    lex_free(&L);
}

static void
test_lex_reports_string_errors_in_place(void **state)
{
    (void)state;
    lexed L;
    lex_all(&L, "\"a\\qb\" \"\\u{D800}\" \"\\u{}\" \"open\nnext");
    lex_done(&L);
    assert_non_null(strstr(L.cap.text.data, "t.vgl:1:3: error: unknown escape '\\q' in a string"));
    assert_non_null(
        strstr(L.cap.text.data, "t.vgl:1:9: error: \\u{D800} is a surrogate, not a character"));
    assert_non_null(strstr(L.cap.text.data, "t.vgl:1:20: error: bad \\u escape"));
    assert_non_null(strstr(L.cap.text.data, "t.vgl:1:26: error: missing closing quote"));
    assert_int_equal(L.cap.errors, 4);
    lex_free(&L);
}

static void
test_lex_keywords_comments_and_bad_characters(void **state)
{
    (void)state;
    lexed L;
    lex_all(&L, "list listing # a comment with \"quotes\" and /slashes/\n"
                "txn event over before history @ 'x' !");
    tok_kind want[] = {T_LIST,   T_IDENT,   T_TXN,    T_EVENT, T_OVER,
                       T_BEFORE, T_HISTORY, T_STRING, T_EOF};
    assert_int_equal(L.n, (int)VG_ARRAY_LEN(want));
    for (int i = 0; i < L.n; i++)
        assert_int_equal(L.toks[i].kind, want[i]);
    assert_string_equal(L.toks[7].v.s.str, "x"); /* 'x' goes on as a string */
    lex_done(&L);
    assert_non_null(strstr(L.cap.text.data, "t.vgl:2:31: error: unexpected character '@'"));
    assert_non_null(strstr(L.cap.text.data, "t.vgl:2:33: error: strings use double quotes: "
                                            "write \"x\""));

    assert_non_null(strstr(L.cap.text.data, "t.vgl:2:37: error: unexpected '!'"));
    lex_free(&L);
}

static void
test_lex_reports_invalid_utf8(void **state)
{
    (void)state;
    lexed L;
    lex_all(&L, "a \xFF b # \xC3\n\"\xE2\x82\"");
    lex_done(&L);
    assert_non_null(strstr(L.cap.text.data, "t.vgl:1:3: error: invalid UTF-8 byte 0xFF"));
    assert_non_null(strstr(L.cap.text.data, "t.vgl:1:9: error: invalid UTF-8 byte 0xC3 in a "
                                            "comment"));
    assert_non_null(strstr(L.cap.text.data, "t.vgl:2:2: error: invalid UTF-8 byte 0xE2 in a "
                                            "string"));
    lex_free(&L);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lex_rule_header_and_operators),
        cmocka_unit_test(test_lex_numbers_and_durations),
        cmocka_unit_test(test_lex_reports_bad_durations),
        cmocka_unit_test(test_lex_regex_only_after_match_operators),
        cmocka_unit_test(test_lex_regex_pattern_and_flags),
        cmocka_unit_test(test_lex_decodes_string_escapes),
        cmocka_unit_test(test_lex_reports_string_errors_in_place),
        cmocka_unit_test(test_lex_keywords_comments_and_bad_characters),
        cmocka_unit_test(test_lex_reports_invalid_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
