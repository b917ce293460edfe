/*
 * sign.c - Standard Webhooks signatures (vg_sign.h, SPEC section 6).
 *
 * The webhook sink signs each attempt with these, and `vigil webhook-listen`
 * checks them; an independent implementation (the npm package
 * standardwebhooks, tests/webhook/verify.js) checks that both agree with the
 * published scheme. Keys are secret: nothing here copies one into a message,
 * and key bytes held on the stack are wiped before returning.
 */
#include "vg_sign.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#define SIG_BYTES 32                        /* HMAC-SHA256 */
#define SIG_B64 (4 * ((SIG_BYTES + 2) / 3)) /* 44 characters */
#define KEY_B64_MAX (4 * ((VG_WHKEY_MAX + 2) / 3))

static bool
is_b64(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

static bool
is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Checks that s[0..n) is padded standard base64 and returns the number of
 * bytes it decodes to, or 0 with *why set. EVP_DecodeBlock alone accepts
 * '=' anywhere and counts padding as data, so the shape is checked here;
 * characters first, as a stray one is the likelier mistake. */
static size_t
b64_check(const char *s, size_t n, char *why, size_t whylen)
{
    size_t pad = 0;
    while (pad < 2 && pad < n && s[n - 1 - pad] == '=')
        pad++;
    for (size_t i = 0; i < n - pad; i++) {
        if (!is_b64((unsigned char)s[i])) {
            /* the offset, never the character: it is part of the secret */
            snprintf(why, whylen, "character %zu of its base64 part is not base64", i + 1);
            return 0;
        }
    }
    if (n == 0 || n % 4 != 0) {
        snprintf(why, whylen, "its base64 part is %zu characters long, not a multiple of 4", n);
        return 0;
    }
    return n / 4 * 3 - pad;
}

vg_err
vg_whsec_decode(const char *secret, vg_whkey *out, char *why, size_t whylen)
{
    const char *s = secret;
    size_t n = strlen(s);
    while (n > 0 && is_space((unsigned char)s[0]))
        s++, n--;
    while (n > 0 && is_space((unsigned char)s[n - 1]))
        n--;
    if (n >= 6 && memcmp(s, "whsec_", 6) == 0)
        s += 6, n -= 6;
    if (n == 0) {
        snprintf(why, whylen, "the secret is empty");
        return VG_EINVAL;
    }
    if (n > KEY_B64_MAX) {
        snprintf(why, whylen, "the secret's key is longer than %d bytes", VG_WHKEY_MAX);
        return VG_EINVAL;
    }
    size_t len = b64_check(s, n, why, whylen);
    if (len == 0)
        return VG_EINVAL;
    if (len > VG_WHKEY_MAX) {
        snprintf(why, whylen, "the secret's key is longer than %d bytes", VG_WHKEY_MAX);
        return VG_EINVAL;
    }
    unsigned char tmp[KEY_B64_MAX / 4 * 3]; /* EVP_DecodeBlock writes whole groups */
    if (EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)n) < 0) {
        OPENSSL_cleanse(tmp, sizeof tmp);
        snprintf(why, whylen, "the secret is not base64");
        return VG_EINVAL;
    }
    memcpy(out->key, tmp, len);
    out->len = len;
    OPENSSL_cleanse(tmp, sizeof tmp);
    return VG_OK;
}

vg_err
vg_whsec_decode_list(const char *text, vg_whkey *keys, size_t cap, size_t *n, char *why,
                     size_t whylen)
{
    size_t have = *n, count = 0;
    char tok[6 + KEY_B64_MAX + 2]; /* one longer than any valid secret */
    const char *p = text;
    vg_err err = VG_OK;
    while (err == VG_OK) {
        while (is_space((unsigned char)*p))
            p++;
        if (*p == '\0')
            break;
        size_t len = 0;
        while (p[len] != '\0' && !is_space((unsigned char)p[len]))
            len++;
        if (have + count == cap) {
            snprintf(why, whylen, "more than %zu secrets", cap);
            err = VG_ELIMIT;
            break;
        }
        /* a token too long for tok is cut to one too long for a key */
        size_t keep = len < sizeof tok - 1 ? len : sizeof tok - 1;
        memcpy(tok, p, keep);
        tok[keep] = '\0';
        char inner[160];
        if ((err = vg_whsec_decode(tok, &keys[have + count], inner, sizeof inner)) != VG_OK)
            snprintf(why, whylen, "secret %zu: %s", count + 1, inner);
        count++;
        p += len;
    }
    OPENSSL_cleanse(tok, sizeof tok);
    if (err == VG_OK && count == 0) {
        snprintf(why, whylen, "no secret in it");
        err = VG_EINVAL;
    }
    if (err == VG_OK)
        *n = have + count;
    return err;
}

/* HMAC-SHA256 of "<id>.<timestamp>.<body>" under key, base64 into b64
 * (SIG_B64 characters and a NUL). The parts are fed one by one so the body
 * is never copied. */
static vg_err
sign_one(const vg_whkey *key, const char *id, int64_t timestamp, const void *body, size_t len,
         char b64[SIG_B64 + 1])
{
    char ts[24];
    int tslen = snprintf(ts, sizeof ts, ".%" PRId64 ".", timestamp);
    unsigned char mac[SIG_BYTES];
    size_t maclen = 0;
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    vg_err err = VG_ENOMEM;
    EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
    if (ctx == NULL)
        goto fail;
    if (!EVP_MAC_init(ctx, key->key, key->len, params) ||
        !EVP_MAC_update(ctx, (const unsigned char *)id, strlen(id)) ||
        !EVP_MAC_update(ctx, (const unsigned char *)ts, (size_t)tslen) ||
        (len > 0 && !EVP_MAC_update(ctx, body, len)) ||
        !EVP_MAC_final(ctx, mac, &maclen, sizeof mac) || maclen != SIG_BYTES) {
        err = VG_EINVAL;
        goto fail;
    }
    EVP_EncodeBlock((unsigned char *)b64, mac, SIG_BYTES);
    err = VG_OK;
fail:
    OPENSSL_cleanse(mac, sizeof mac);
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(hmac);
    return err;
}

vg_err
vg_webhook_sign(const vg_whkey *keys, size_t n, const char *id, int64_t timestamp, const void *body,
                size_t len, vg_buf *out)
{
    if (n == 0)
        return VG_EINVAL;
    size_t start = out->len;
    vg_err err = VG_OK;
    for (size_t i = 0; i < n && err == VG_OK; i++) {
        char b64[SIG_B64 + 1];
        err = sign_one(&keys[i], id, timestamp, body, len, b64);
        if (err == VG_OK)
            err = vg_buf_printf(out, "%sv1,%s", i > 0 ? " " : "", b64);
    }
    if (err && out->data != NULL) { /* written only on success: undo a partial header */
        out->len = start;
        out->data[start] = '\0';
    }
    return err;
}

/* Does header hold "v1,<expect>" among its space-separated entries? Every
 * entry of the right length is compared in constant time; other versions
 * ("v1a,...") are skipped, as the scheme asks. */
static bool
header_has(const char *header, const char expect[SIG_B64])
{
    bool found = false;
    const char *p = header;
    while (*p != '\0') {
        while (*p == ' ')
            p++;
        const char *e = p;
        while (*e != '\0' && *e != ' ')
            e++;
        if (e - p == 3 + SIG_B64 && memcmp(p, "v1,", 3) == 0)
            found |= CRYPTO_memcmp(p + 3, expect, SIG_B64) == 0;
        p = e;
    }
    return found;
}

bool
vg_webhook_verify(const vg_whkey *keys, size_t n, const char *id, int64_t timestamp,
                  const void *body, size_t len, const char *header)
{
    bool ok = false;
    for (size_t i = 0; i < n; i++) {
        char b64[SIG_B64 + 1];
        if (sign_one(&keys[i], id, timestamp, body, len, b64) == VG_OK)
            ok |= header_has(header, b64);
    }
    return ok;
}
