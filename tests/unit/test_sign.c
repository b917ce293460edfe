/*
 * test_sign.c - Standard Webhooks signatures (adapters/sign.c): the
 * published test vector, several secrets for rotation, tampering, and
 * secrets that are not secrets. The second and third expected signatures
 * were computed independently with Python's hmac and base64 modules.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vg_sign.h"

/* The vector published with the Standard Webhooks specification. */
#define VEC_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define VEC_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define VEC_TS 1614265330
#define VEC_BODY "{\"test\": 2432232314}"
#define VEC_SIG "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

#define SECRET2 "whsec_cm90YXRpb24ga2V5IG51bWJlciB0d28sIDMyIGJ5dA=="
#define SIG2 "v1,qy9dVmxMsOf7G0J29+O+OMdjpOVXmADJsiOQ4yf2tk8="
#define SECRET3 "AAECIHRoaXJk" /* no whsec_ prefix: it is optional */
#define SIG3 "v1,UZ6MoWtGSRlNCRlCsTXgNkopACMlmpXCKgpTslYJVyk="

static vg_whkey
key_of(const char *secret)
{
    vg_whkey k;
    char why[200] = "";
    assert_int_equal(vg_whsec_decode(secret, &k, why, sizeof why), VG_OK);
    assert_string_equal(why, "");
    return k;
}

static bool
verify_vec(const vg_whkey *keys, size_t n, const char *id, int64_t ts, const char *body,
           const char *header)
{
    return vg_webhook_verify(keys, n, id, ts, body, strlen(body), header);
}

static void
test_sign_matches_the_published_vector(void **state)
{
    (void)state;
    vg_whkey k = key_of(VEC_SECRET);
    assert_int_equal(k.len, 24);
    vg_buf out = {0};
    assert_int_equal(vg_webhook_sign(&k, 1, VEC_ID, VEC_TS, VEC_BODY, strlen(VEC_BODY), &out),
                     VG_OK);
    assert_string_equal(out.data, VEC_SIG);
    assert_true(verify_vec(&k, 1, VEC_ID, VEC_TS, VEC_BODY, VEC_SIG));
    vg_buf_free(&out);
}

static void
test_sign_gives_one_signature_per_secret_space_separated(void **state)
{
    (void)state;
    vg_whkey keys[] = {key_of(VEC_SECRET), key_of(SECRET2), key_of(SECRET3)};
    vg_buf out = {0};
    assert_int_equal(vg_buf_puts(&out, "prefix:"), VG_OK); /* sign appends */
    assert_int_equal(vg_webhook_sign(keys, 3, VEC_ID, VEC_TS, VEC_BODY, strlen(VEC_BODY), &out),
                     VG_OK);
    assert_string_equal(out.data, "prefix:" VEC_SIG " " SIG2 " " SIG3);
    vg_buf_free(&out);
}

static void
test_sign_refuses_no_keys(void **state)
{
    (void)state;
    vg_buf out = {0};
    assert_int_equal(vg_webhook_sign(NULL, 0, VEC_ID, VEC_TS, "", 0, &out), VG_EINVAL);
    assert_int_equal(out.len, 0);
}

static void
test_sign_handles_an_empty_body(void **state)
{
    (void)state;
    vg_whkey k = key_of(VEC_SECRET);
    vg_buf out = {0};
    assert_int_equal(vg_webhook_sign(&k, 1, "id", 1, NULL, 0, &out), VG_OK);
    assert_true(vg_webhook_verify(&k, 1, "id", 1, "", 0, out.data));
    assert_false(vg_webhook_verify(&k, 1, "id", 1, " ", 1, out.data));
    vg_buf_free(&out);
}

static void
test_verify_accepts_any_one_matching_signature(void **state)
{
    (void)state;
    vg_whkey mine = key_of(SECRET2);
    /* a receiver that knows one key of a sender rotating between three */
    assert_true(verify_vec(&mine, 1, VEC_ID, VEC_TS, VEC_BODY, VEC_SIG " " SIG2 " " SIG3));
    assert_true(verify_vec(&mine, 1, VEC_ID, VEC_TS, VEC_BODY, SIG2));
    /* a receiver that knows several keys, one of which signed */
    vg_whkey keys[] = {key_of(SECRET3), key_of(VEC_SECRET)};
    assert_true(verify_vec(keys, 2, VEC_ID, VEC_TS, VEC_BODY, VEC_SIG));
    /* unknown versions, garbage and extra spaces around the good entry */
    assert_true(verify_vec(keys, 2, VEC_ID, VEC_TS, VEC_BODY,
                           "v1a,AAAA  v2,xyz garbage v1,short   " VEC_SIG "  "));
}

static void
test_verify_rejects_a_tampered_body_id_or_timestamp(void **state)
{
    (void)state;
    vg_whkey k = key_of(VEC_SECRET);
    assert_false(verify_vec(&k, 1, VEC_ID, VEC_TS, "{\"test\": 2432232315}", VEC_SIG));
    assert_false(verify_vec(&k, 1, VEC_ID, VEC_TS, "{\"test\": 2432232314} ", VEC_SIG));
    assert_false(verify_vec(&k, 1, "msg_p5jXN8AQM9LWM0D4loKWxJel", VEC_TS, VEC_BODY, VEC_SIG));
    assert_false(verify_vec(&k, 1, VEC_ID, VEC_TS + 1, VEC_BODY, VEC_SIG));
    /* the same signature, one bit of it flipped, or under another version */
    assert_false(verify_vec(&k, 1, VEC_ID, VEC_TS, VEC_BODY,
                            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OF="));
    assert_false(verify_vec(&k, 1, VEC_ID, VEC_TS, VEC_BODY,
                            "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="));
}

static void
test_verify_rejects_other_keys_and_empty_headers(void **state)
{
    (void)state;
    vg_whkey other = key_of(SECRET2);
    assert_false(verify_vec(&other, 1, VEC_ID, VEC_TS, VEC_BODY, VEC_SIG));
    vg_whkey k = key_of(VEC_SECRET);
    assert_false(verify_vec(&k, 1, VEC_ID, VEC_TS, VEC_BODY, ""));
    assert_false(verify_vec(&k, 1, VEC_ID, VEC_TS, VEC_BODY, "   "));
    assert_false(verify_vec(&k, 1, VEC_ID, VEC_TS, VEC_BODY, "v1,"));
    assert_false(verify_vec(&k, 0, VEC_ID, VEC_TS, VEC_BODY, VEC_SIG));
}

static void
test_whsec_decode_ignores_surrounding_whitespace(void **state)
{
    (void)state;
    vg_whkey a = key_of(VEC_SECRET);
    vg_whkey b = key_of("  " VEC_SECRET "\r\n");
    vg_whkey c = key_of("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.key, b.key, a.len);
    assert_int_equal(a.len, c.len);
    assert_memory_equal(a.key, c.key, a.len);
}

/* Every bad secret is refused with a reason that does not quote it. */
static void
test_whsec_decode_rejects_bad_secrets_with_a_message(void **state)
{
    (void)state;
    static const struct {
        const char *secret, *why;
    } bad[] = {
        {"", "the secret is empty"},
        {"whsec_", "the secret is empty"},
        {" \n", "the secret is empty"},
        {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS", "not a multiple of 4"},
        {"whsec_MfKQ9r8GKYqr!wjUPD8ILPZIo2LaLaSw", "character 13 of its base64 part"},
        {"whsec_MfKQ9r8GKYqr wjUPD8ILPZIo2LaLaSw", "character 13 of its base64 part"},
        {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZI=2LaLaSw", "character 25 of its base64 part"},
        {"whsec_====", "character 1 of its base64 part"},
        {"whsec-MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "character 6 of its base64 part"},
        {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw_", "character 33 of its base64 part"},
    };
    for (size_t i = 0; i < VG_ARRAY_LEN(bad); i++) {
        vg_whkey k = {.len = 99};
        char why[200] = "";
        assert_int_equal(vg_whsec_decode(bad[i].secret, &k, why, sizeof why), VG_EINVAL);
        if (strstr(why, bad[i].why) == NULL)
            fail_msg("secret %zu: '%s' does not say '%s'", i, why, bad[i].why);
        assert_int_equal(k.len, 99); /* untouched on failure */
        const char *body = strchr(bad[i].secret, '_');
        if (body != NULL && strlen(body + 1) >= 4)
            assert_null(strstr(why, body + 1));
    }
}

static void
test_whsec_decode_bounds_the_key_length(void **state)
{
    (void)state;
    /* 128 bytes of key: 172 base64 characters, the last group padded */
    char s[6 + 176 + 1] = "whsec_";
    memset(s + 6, 'A', 171);
    strcpy(s + 6 + 171, "=");
    vg_whkey k;
    char why[200] = "";
    assert_int_equal(vg_whsec_decode(s, &k, why, sizeof why), VG_OK);
    assert_int_equal(k.len, VG_WHKEY_MAX);
    /* 129 bytes */
    memset(s + 6, 'A', 172);
    s[6 + 172] = '\0';
    assert_int_equal(vg_whsec_decode(s, &k, why, sizeof why), VG_EINVAL);
    assert_non_null(strstr(why, "longer than 128 bytes"));
    memset(s + 6, 'A', 176);
    s[6 + 176] = '\0';
    assert_int_equal(vg_whsec_decode(s, &k, why, sizeof why), VG_EINVAL);
    assert_non_null(strstr(why, "longer than 128 bytes"));
}

static void
test_whsec_decode_list_reads_every_secret_of_a_file(void **state)
{
    (void)state;
    vg_whkey keys[4];
    size_t n = 1; /* one key already there: the list adds to it */
    char why[200] = "";
    assert_int_equal(vg_whsec_decode_list(VEC_SECRET "\n" SECRET2 "\n\n\t " SECRET3 "\n", keys,
                                          VG_ARRAY_LEN(keys), &n, why, sizeof why),
                     VG_OK);
    assert_int_equal(n, 4);
    assert_true(verify_vec(&keys[1], 1, VEC_ID, VEC_TS, VEC_BODY, VEC_SIG));
    assert_true(verify_vec(&keys[2], 1, VEC_ID, VEC_TS, VEC_BODY, SIG2));
    assert_true(verify_vec(&keys[3], 1, VEC_ID, VEC_TS, VEC_BODY, SIG3));
}

static void
test_whsec_decode_list_names_the_bad_secret_and_keeps_the_count(void **state)
{
    (void)state;
    vg_whkey keys[2];
    size_t n = 0;
    char why[200] = "";
    assert_int_equal(
        vg_whsec_decode_list(VEC_SECRET "\nwhsec_AB!D\n", keys, 2, &n, why, sizeof why), VG_EINVAL);
    assert_string_equal(why, "secret 2: character 3 of its base64 part is not base64");
    assert_int_equal(n, 0);
    assert_int_equal(vg_whsec_decode_list(" \n\t", keys, 2, &n, why, sizeof why), VG_EINVAL);
    assert_string_equal(why, "no secret in it");
    assert_int_equal(
        vg_whsec_decode_list(VEC_SECRET " " SECRET2 " " SECRET3, keys, 2, &n, why, sizeof why),
        VG_ELIMIT);
    assert_string_equal(why, "more than 2 secrets");
    assert_int_equal(n, 0);
    /* a very long token is refused without overrunning anything */
    char big[4096];
    memset(big, 'A', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(vg_whsec_decode_list(big, keys, 2, &n, why, sizeof why), VG_EINVAL);
    assert_non_null(strstr(why, "longer than 128 bytes"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_matches_the_published_vector),
        cmocka_unit_test(test_sign_gives_one_signature_per_secret_space_separated),
        cmocka_unit_test(test_sign_refuses_no_keys),
        cmocka_unit_test(test_sign_handles_an_empty_body),
        cmocka_unit_test(test_verify_accepts_any_one_matching_signature),
        cmocka_unit_test(test_verify_rejects_a_tampered_body_id_or_timestamp),
        cmocka_unit_test(test_verify_rejects_other_keys_and_empty_headers),
        cmocka_unit_test(test_whsec_decode_ignores_surrounding_whitespace),
        cmocka_unit_test(test_whsec_decode_rejects_bad_secrets_with_a_message),
        cmocka_unit_test(test_whsec_decode_bounds_the_key_length),
        cmocka_unit_test(test_whsec_decode_list_reads_every_secret_of_a_file),
        cmocka_unit_test(test_whsec_decode_list_names_the_bad_secret_and_keeps_the_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
