/*
 * fuzz_webhook.c - libFuzzer target for the webhook sink's configuration
 * check (adapters/webhook.c open) and Standard Webhooks secrets and
 * signatures (adapters/sign.c).
 *
 *   CC=clang cmake -S . -B build/fuzz -DVG_FUZZ=ON -DVG_TESTS=OFF
 *   cmake --build build/fuzz --target fuzz_webhook
 *   mkdir -p /tmp/corpus-webhook
 *   build/fuzz/tests/fuzz_webhook -max_total_time=600 -dict=tests/fuzz/webhook.dict \
 *       /tmp/corpus-webhook tests/fuzz/corpus/webhook
 *   (or: sh tools/fuzz.sh webhook 600)
 *
 * The first byte chooses (its value mod 3; the seeds use '0', '1', '2', and a
 * newline right after it is skipped), and the rest is lines:
 *   0  open: url / secrets (whitespace-separated; "(null)" is a NULL entry) /
 *      retry delays in ms (space-separated; "default" for none given) /
 *      timeout in s / max_in_flight / flags (p allow_private, x a path,
 *      y a proxy) / name. A sink that opens is closed at once: deliver() is
 *      never called, so nothing goes on the network.
 *   1  one secret for vg_whsec_decode, the same text for vg_whsec_decode_list.
 *   2  verify: secrets / id / timestamp / webhook-signature header / body (the
 *      rest, any bytes). The header is verified; then a header signed with the
 *      keys must verify, alone and after the fuzzed one, and must not verify
 *      for another timestamp.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "vg_sign.h"
#include "vg_sink.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_SECRETS 8
#define MAX_RETRY 32

/* The next line of *p..end as a NUL-terminated copy (freed by the caller);
 * "" once the input is used up. */
static char *
next_line(const uint8_t **p, const uint8_t *end)
{
    const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
    size_t n = nl ? (size_t)(nl - *p) : (size_t)(end - *p);
    char *s = malloc(n + 1);
    if (s != NULL) {
        memcpy(s, *p, n);
        s[n] = '\0';
    }
    *p += nl ? n + 1 : n;
    return s;
}

static void
done_cb(void *ctx, uint64_t seq, vg_sink_outcome outcome)
{
    (void)ctx;
    (void)seq;
    (void)outcome;
    abort(); /* nothing is delivered, so nothing can finish */
}

static void
open_sink(const uint8_t *p, const uint8_t *end)
{
    char *url = next_line(&p, end), *sec = next_line(&p, end), *retry = next_line(&p, end);
    char *timeout = next_line(&p, end), *inflight = next_line(&p, end);
    char *flags = next_line(&p, end), *name = next_line(&p, end);
    if (!url || !sec || !retry || !timeout || !inflight || !flags || !name)
        goto done;

    const char *secrets[MAX_SECRETS];
    size_t nsecrets = 0;
    for (char *save = NULL, *w = strtok_r(sec, " \t\r", &save); w && nsecrets < MAX_SECRETS;
         w = strtok_r(NULL, " \t\r", &save))
        secrets[nsecrets++] = strcmp(w, "(null)") == 0 ? NULL : w;
    int64_t retry_ms[MAX_RETRY];
    size_t nretry = 0;
    for (char *save = NULL, *w = strtok_r(retry, " \t\r", &save); w && nretry < MAX_RETRY;
         w = strtok_r(NULL, " \t\r", &save))
        retry_ms[nretry++] = strtoll(w, NULL, 10);

    vg_sink_conf conf = {
        .type = "webhook",
        .name = name[0] ? name : NULL,
        .path = strchr(flags, 'x') ? "alerts.jsonl" : NULL,
        .url = url,
        .secrets = secrets,
        .nsecrets = nsecrets,
        .retry_ms = strcmp(retry, "default") == 0 ? NULL : retry_ms,
        .nretry = nretry,
        .timeout_s = strtod(timeout, NULL),
        .allow_private = strchr(flags, 'p') != NULL,
        .proxy = strchr(flags, 'y') ? "http://127.0.0.1:9" : NULL,
        .max_in_flight = (size_t)strtoull(inflight, NULL, 10),
    };
    const vg_sink_type *t = vg_sink_find("webhook");
    if (t == NULL)
        abort();
    void *self = NULL;
    char why[512] = "";
    if (t->open(&conf, done_cb, NULL, &self, why, sizeof why) == VG_OK) {
        vg_sink_health h;
        t->health(self, &h);
        if (!h.ok || h.in_flight != 0)
            abort();
        t->close(self);
    } else {
        if (why[0] == '\0')
            abort(); /* a refusal says why */
        fuzz_touch(why, strlen(why));
    }
done:
    free(url);
    free(sec);
    free(retry);
    free(timeout);
    free(inflight);
    free(flags);
    free(name);
}

static void
decode(const uint8_t *p, const uint8_t *end)
{
    char *s = malloc((size_t)(end - p) + 1);
    if (s == NULL)
        return;
    memcpy(s, p, (size_t)(end - p));
    s[end - p] = '\0';
    vg_whkey key;
    char why[256];
    if (vg_whsec_decode(s, &key, why, sizeof why) == VG_OK) {
        if (key.len == 0 || key.len > VG_WHKEY_MAX)
            abort();
    }
    vg_whkey keys[4];
    size_t n = 1; /* one slot taken: the list appends */
    if (vg_whsec_decode_list(s, keys, 4, &n, why, sizeof why) == VG_OK) {
        if (n < 2 || n > 4)
            abort();
        for (size_t i = 1; i < n; i++)
            if (keys[i].len == 0 || keys[i].len > VG_WHKEY_MAX)
                abort();
    } else if (n != 1) {
        abort(); /* *n is unchanged on failure */
    }
    free(s);
}

static void
verify(const uint8_t *p, const uint8_t *end)
{
    char *sec = next_line(&p, end), *id = next_line(&p, end), *ts = next_line(&p, end);
    char *header = next_line(&p, end);
    const uint8_t *body = p;
    size_t len = (size_t)(end - p);
    vg_buf sig = {0}, both = {0};
    if (!sec || !id || !ts || !header)
        goto done;
    vg_whkey keys[MAX_SECRETS];
    size_t n = 0;
    char why[256];
    int64_t t = strtoll(ts, NULL, 10);
    if (vg_whsec_decode_list(sec, keys, MAX_SECRETS, &n, why, sizeof why) != VG_OK)
        n = 0;
    /* no key verifies nothing */
    if (vg_webhook_verify(keys, 0, id, t, body, len, header))
        abort();
    if (n == 0)
        goto done;
    fuzz_sink_byte += vg_webhook_verify(keys, n, id, t, body, len, header);
    if (vg_webhook_sign(keys, n, id, t, body, len, &sig) != VG_OK)
        goto done;
    if (!vg_webhook_verify(keys, n, id, t, body, len, sig.data))
        abort();
    if (vg_buf_printf(&both, "%s %s", header, sig.data) == VG_OK &&
        !vg_webhook_verify(keys, n, id, t, body, len, both.data))
        abort();
    if (vg_webhook_verify(keys, n, id, t ^ 1, body, len, sig.data))
        abort(); /* another timestamp, another signature (2^-256 odds aside) */
done:
    vg_buf_free(&sig);
    vg_buf_free(&both);
    free(sec);
    free(id);
    free(ts);
    free(header);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const uint8_t *p = data + 1, *end = data + size;
    if (p < end && *p == '\n')
        p++;
    switch (data[0] % 3) {
    case 0: open_sink(p, end); break;
    case 1: decode(p, end); break;
    default: verify(p, end); break;
    }
    return 0;
}
