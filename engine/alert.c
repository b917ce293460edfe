/*
 * alert.c - an alert as SPEC §3 writes it: deterministic ids and the compact
 * JSON line (fields in the documented order, money with its currency's
 * digits, missing values as null).
 */
/* The one-shot SHA-256 functions: OpenSSL 3 marks them deprecated in favour
 * of EVP, but EVP allocates on every digest (the provider's context, about
 * one malloc per EVP_DigestInit_ex even with a reused EVP_MD_CTX), and an
 * alert id is computed per alert on the hot path. */
#define OPENSSL_API_COMPAT 0x10100000L
#include <openssl/sha.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engineInt.h"

void
alert_id(const vg_rule *r, const char *key, uint32_t keylen, const char *event_id, uint32_t idlen,
         char out[33])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char h[SHA256_DIGEST_LENGTH];
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, r->name, strlen(r->name) + 1); /* with its \0 */
    SHA256_Update(&c, r->version, strlen(r->version) + 1);
    SHA256_Update(&c, key, keylen);
    SHA256_Update(&c, "", 1);
    SHA256_Update(&c, event_id, idlen);
    SHA256_Final(h, &c);
    for (unsigned i = 0; i < 16; i++) {
        out[2 * i] = hex[h[i] >> 4];
        out[2 * i + 1] = hex[h[i] & 15];
    }
    out[32] = '\0';
}

/* Appends s as a JSON string. */
static vg_err
json_str(vg_buf *b, const char *s, size_t len)
{
    vg_err err = vg_buf_putc(b, '"');
    for (size_t i = 0; i < len && err == VG_OK; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': err = vg_buf_puts(b, "\\\""); break;
        case '\\': err = vg_buf_puts(b, "\\\\"); break;
        case '\n': err = vg_buf_puts(b, "\\n"); break;
        case '\r': err = vg_buf_puts(b, "\\r"); break;
        case '\t': err = vg_buf_puts(b, "\\t"); break;
        default:
            if (c < 0x20 || c == 0x7F) {
                err = vg_buf_printf(b, "\\u%04x", c);
            } else if (c < 0x80) {
                err = vg_buf_putc(b, (char)c);
            } else {
                /* input is not checked for UTF-8 on the way in: a byte
                 * that does not start a valid sequence becomes U+FFFD, so
                 * the output is always valid JSON */
                uint32_t cp;
                size_t n = vg_utf8_decode((const unsigned char *)s + i, len - i, &cp);
                if (n == 0) {
                    err = vg_buf_puts(b, "\\ufffd");
                } else {
                    err = vg_buf_append(b, s + i, n);
                    i += n - 1;
                }
            }
        }
    }
    return err ? err : vg_buf_putc(b, '"');
}

/* A value in "values": numbers bare (money with its digits), booleans,
 * times and durations and strings as strings, missing as null. */
static vg_err
json_value(vg_buf *b, const vg_value *v, bool money, unsigned digits, vg_buf *tmp)
{
    switch ((vg_vkind)v->kind) {
    case VG_V_MISSING: return vg_buf_puts(b, "null");
    case VG_V_NUM:
        if (!isfinite(v->u.num))
            return vg_buf_puts(b, "null"); /* JSON has no infinity */
        /* fall through */
    case VG_V_BOOL: return vg_value_format(v, money, digits, NULL, b);
    default: {
        tmp->len = 0;
        vg_err err = vg_value_format(v, money, digits, NULL, tmp);
        if (err == VG_OK)
            err = json_str(b, tmp->data ? tmp->data : "", tmp->len);
        return err;
    }
    }
}

static const char *const actions[] = {"allow", "review", "block"};

vg_err
alert_json(const vg_alert *a, const vg_rule *r, const vg_value *aggs, unsigned digits,
           const char *const *tags, vg_buf *tmp, vg_buf *b)
{
    vg_err err = vg_buf_printf(b, "{\"id\":\"%s\",\"type\":\"alert.created\",\"rule\":", a->id);
    err = err ? err : json_str(b, r->name, strlen(r->name));
    err = err ? err : vg_buf_printf(b, ",\"rule_version\":\"%s\",\"key\":", r->version);
    err = err ? err : json_str(b, a->key, a->keylen);
    err = err ? err : vg_buf_printf(b, ",\"time_ms\":%lld,\"event_id\":", (long long)a->time_ms);
    err = err ? err : json_str(b, a->event_id, a->event_id_len);
    err = err ? err
              : vg_buf_printf(b, ",\"score\":%d,\"action\":\"%s\",\"message\":", r->score,
                              actions[r->action]);
    err = err ? err : json_str(b, a->message, a->message_len);
    /* a when rule's match is its one event */
    err = err ? err : vg_buf_puts(b, ",\"events\":[");
    if (a->events == NULL)
        err = err ? err : json_str(b, a->event_id, a->event_id_len);
    for (uint32_t i = 0; a->events != NULL && i < a->nevents && err == VG_OK; i++) {
        if (i > 0)
            err = vg_buf_putc(b, ',');
        err = err ? err : json_str(b, a->events[i], a->event_lens[i]);
    }
    err = err ? err : vg_buf_puts(b, "],\"values\":{");
    for (uint32_t i = 0; i < r->naggs && err == VG_OK; i++) {
        if (i > 0)
            err = vg_buf_putc(b, ',');
        err = err ? err : json_str(b, r->aggs[i].text, strlen(r->aggs[i].text));
        err = err ? err : vg_buf_putc(b, ':');
        err = err ? err : json_value(b, &aggs[i], r->aggs[i].money, digits, tmp);
    }
    err = err ? err : vg_buf_printf(b, "},\"shadow\":%s,\"tags\":[", r->shadow ? "true" : "false");
    for (uint32_t i = 0; i < r->ntags && err == VG_OK; i++) {
        if (i > 0)
            err = vg_buf_putc(b, ',');
        err = err ? err : json_str(b, tags[i], strlen(tags[i]));
    }
    return err ? err : vg_buf_puts(b, "]}");
}

void
vg_decide(const vg_rule *const *rules, size_t n, unsigned review_at, unsigned block_at, int *action,
          int *score)
{
    int sc = 0;
    bool any_allow = false, any_block = false, any_review = false;
    for (size_t i = 0; i < n; i++) {
        const vg_rule *r = rules[i];
        if (r->shadow)
            continue; /* reported, never counted */
        sc += r->score;
        any_allow |= r->action == VG_ALLOW;
        any_block |= r->action == VG_BLOCK;
        any_review |= r->action == VG_REVIEW;
    }
    if (sc > 100)
        sc = 100;
    *score = sc;
    *action = any_allow                            ? VG_ALLOW
              : any_block || sc >= (int)block_at   ? VG_BLOCK
              : any_review || sc >= (int)review_at ? VG_REVIEW
                                                   : VG_ALLOW;
}
