/* test_base.c - the shared basics: arena, buffer, UTF-8, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vg_base.h"

static void
test_arena_returns_zeroed_aligned_memory_across_blocks(void **state)
{
    (void)state;
    vg_arena *a = vg_arena_new();
    assert_non_null(a);
    for (int i = 0; i < 10000; i++) {
        unsigned char *p = vg_arena_alloc(a, (size_t)(i % 97) + 1);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 16, 0);
        for (int j = 0; j < i % 97 + 1; j++)
            assert_int_equal(p[j], 0);
        memset(p, 0xAB, (size_t)(i % 97) + 1);
    }
    char *big = vg_arena_alloc(a, 1 << 20); /* larger than a block */
    assert_non_null(big);
    assert_int_equal(big[(1 << 20) - 1], 0);
    char *s = vg_arena_strndup(a, "hello world", 5);
    assert_string_equal(s, "hello");
    assert_true(vg_arena_size(a) >= (1 << 20));
    vg_arena_free(a);
    vg_arena_free(NULL);
}

static void
test_buf_appends_and_formats(void **state)
{
    (void)state;
    vg_buf b = {0};
    assert_int_equal(vg_buf_puts(&b, "abc"), VG_OK);
    assert_int_equal(vg_buf_putc(&b, '-'), VG_OK);
    assert_int_equal(vg_buf_printf(&b, "%d/%s", 42, "x"), VG_OK);
    assert_string_equal(b.data, "abc-42/x");
    assert_int_equal(b.len, 8);
    for (int i = 0; i < 10000; i++)
        vg_buf_putc(&b, 'z');
    assert_int_equal(b.len, 10008);
    assert_int_equal(b.data[b.len], '\0');
    vg_buf_free(&b);
    assert_null(b.data);
}

static void
test_utf8_decode_accepts_valid_and_rejects_invalid(void **state)
{
    (void)state;
    uint32_t cp;
    assert_int_equal(vg_utf8_decode((const unsigned char *)"A", 1, &cp), 1);
    assert_int_equal(cp, 'A');
    assert_int_equal(vg_utf8_decode((const unsigned char *)"\xC3\xA9", 2, &cp), 2);
    assert_int_equal(cp, 0xE9);
    assert_int_equal(vg_utf8_decode((const unsigned char *)"\xF0\x9F\x98\x80", 4, &cp), 4);
    assert_int_equal(cp, 0x1F600);
    /* overlong, surrogate, truncated, stray continuation, above U+10FFFF */
    assert_int_equal(vg_utf8_decode((const unsigned char *)"\xC0\x80", 2, &cp), 0);
    assert_int_equal(vg_utf8_decode((const unsigned char *)"\xED\xA0\x80", 3, &cp), 0);
    assert_int_equal(vg_utf8_decode((const unsigned char *)"\xE2\x82", 2, &cp), 0);
    assert_int_equal(vg_utf8_decode((const unsigned char *)"\x80", 1, &cp), 0);
    assert_int_equal(vg_utf8_decode((const unsigned char *)"\xF4\x90\x80\x80", 4, &cp), 0);
}

static void
test_utf8_encode_round_trips(void **state)
{
    (void)state;
    uint32_t cps[] = {0x24, 0xA2, 0x20AC, 0x10348, 0x10FFFF};
    for (size_t i = 0; i < VG_ARRAY_LEN(cps); i++) {
        char out[4];
        size_t n = vg_utf8_encode(cps[i], out);
        assert_true(n >= 1 && n <= 4);
        uint32_t back;
        assert_int_equal(vg_utf8_decode((const unsigned char *)out, n, &back), n);
        assert_int_equal(back, cps[i]);
    }
    char out[4];
    assert_int_equal(vg_utf8_encode(0xD800, out), 0);
    assert_int_equal(vg_utf8_encode(0x110000, out), 0);
}

static void
test_read_file_reports_missing_file(void **state)
{
    (void)state;
    vg_buf b = {0};
    assert_int_equal(vg_read_file("/nonexistent/vigil/file", &b), VG_ENOENT);
    assert_null(b.data);
    assert_string_equal(vg_strerror(VG_OK), "success");
    assert_string_equal(vg_strerror(VG_ECOMPILE), "rules have errors");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arena_returns_zeroed_aligned_memory_across_blocks),
        cmocka_unit_test(test_buf_appends_and_formats),
        cmocka_unit_test(test_utf8_decode_accepts_valid_and_rejects_invalid),
        cmocka_unit_test(test_utf8_encode_round_trips),
        cmocka_unit_test(test_read_file_reports_missing_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
