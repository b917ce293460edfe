/*
 * vg_sign.h - Standard Webhooks signatures (SPEC section 6).
 *
 * A secret is "whsec_" followed by the base64 of the key (the prefix is
 * optional); the signature of a delivery is
 *   v1,<base64(HMAC-SHA256(key, "<id>.<timestamp>.<body>"))>
 * and several secrets give several signatures, space-separated, so that a
 * receiver can rotate keys.
 */
#ifndef VG_SIGN_H
#define VG_SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vg_base.h"

#define VG_WHKEY_MAX 128 /* bytes of one decoded key */

typedef struct vg_whkey {
    uint8_t key[VG_WHKEY_MAX];
    size_t len;
} vg_whkey;

/* Decodes secret into *out. VG_EINVAL, with *why (never quoting the
 * secret), when it is not base64 of 1..VG_WHKEY_MAX bytes. Whitespace
 * around the secret (the newline ending a secret file) is ignored; the
 * base64 is the standard alphabet with its '=' padding. */
vg_err vg_whsec_decode(const char *secret, vg_whkey *out, char *why, size_t whylen);

/* Decodes every secret of text, separated by whitespace (a secret file or
 * environment variable may hold several, for rotation), into keys[*n..cap)
 * and adds their number to *n. VG_EINVAL with *why ("secret 2: ...") when
 * one is bad or there is none; VG_ELIMIT when they do not fit. On failure
 * *n is unchanged; keys[*n..cap) may have been written. */
vg_err vg_whsec_decode_list(const char *text, vg_whkey *keys, size_t cap, size_t *n, char *why,
                            size_t whylen);

/* Appends the webhook-signature header's value for (id, timestamp, body)
 * under each of the n keys to out ("v1,... v1,..."). VG_EINVAL when n is 0;
 * VG_ENOMEM leaves out as it was. body may be NULL when len is 0. */
vg_err vg_webhook_sign(const vg_whkey *keys, size_t n, const char *id, int64_t timestamp,
                       const void *body, size_t len, vg_buf *out);

/* True when header (a webhook-signature value, possibly several
 * space-separated "v1,..." entries) holds a signature of (id, timestamp,
 * body) under one of the n keys; compared in constant time. */
bool vg_webhook_verify(const vg_whkey *keys, size_t n, const char *id, int64_t timestamp,
                       const void *body, size_t len, const char *header);

#endif
