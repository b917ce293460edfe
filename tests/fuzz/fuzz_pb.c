/*
 * fuzz_pb.c - libFuzzer target for the protobuf side of ingest (proto/event.c,
 * proto/ingest.c): what a producer or an engine sends over the wire.
 *
 *   CC=clang cmake -S . -B build/fuzz -DVG_FUZZ=ON -DVG_TESTS=OFF
 *   cmake --build build/fuzz --target fuzz_pb
 *   mkdir -p /tmp/corpus-pb
 *   build/fuzz/tests/fuzz_pb -max_total_time=600 /tmp/corpus-pb tests/fuzz/corpus/pb
 *   (or: sh tools/fuzz.sh pb 600)
 *
 * The first byte chooses what the rest is (its value mod 4):
 *   0  one vigil.v1.Event (vg_pb_decode), as a `pb` input file record holds;
 *   1  a vigil.v1.EventBatch (vg_pb_decode_batch), the ingest request;
 *   2  a vigil.v1.BatchReply (vg_reply_decode), what `vigil send` reads;
 *   3  a `pb` input file (length-delimited Events) read by vg_reader
 *      (engine/input.c), as `vigil replay --input x.pb` reads it.
 * Modes 0 and 1 decode twice into the same holder, the whole input then its
 * first half, as the server reuses its holder from one request to the next.
 * Every decoded value is read (fuzz_reader.h); a batch's raw event bytes
 * must lie inside the request; a reply is encoded again. Two findings not
 * yet fixed are worked around unless VG_FUZZ_STRICT is set (fuzz_util.h).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_reader.h"
#include "vg_event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
one_event(vg_pb_event **h, const vg_schema *sc, const uint8_t *p, size_t n)
{
    vg_event ev;
    char why[256];
    fuzz_event_poison(&ev);
    if (vg_pb_decode(h, sc, p, n, &ev, why, sizeof why) == VG_OK) {
        fuzz_event_pending(sc, &ev);
        fuzz_touch_event(sc, &ev);
    } else {
        fuzz_touch(why, strlen(why));
    }
}

static void
batch(vg_pb_event **h, vg_batch *b, const vg_schema *sc, const uint8_t *p, size_t n)
{
    char why[256];
    if (vg_pb_decode_batch(h, sc, p, n, b, why, sizeof why) != VG_OK) {
        fuzz_touch(why, strlen(why));
        return;
    }
    if (b->n > b->cap)
        abort();
    for (size_t i = 0; i < b->n; i++) {
        fuzz_touch_event(sc, &b->ev[i]);
        if (b->bad[i] != NULL)
            fuzz_touch(b->bad[i], strlen(b->bad[i]));
        if (b->raw[i] != NULL) {
            /* the event's bytes as the log keeps them: inside the request */
            if (b->raw[i] < p || b->rawlen[i] > n || b->raw[i] + b->rawlen[i] > p + n)
                abort();
            fuzz_touch(b->raw[i], b->rawlen[i]);
        }
    }
}

/* A pending finding (fuzz_util.h): a batch none of whose events has attrs,
 * decoded into a holder that never held any, computes NULL + 0
 * (proto/event.c convert_events, `h->attrs + at`), undefined behaviour that
 * clang's UBSan stops on. Unless VG_FUZZ_STRICT is set, the holder first
 * decodes an event with one attr, so that its attrs array exists. */
static void
warm_holder(vg_pb_event **h, const vg_schema *sc)
{
    /* Event{txn: Transaction{attrs: {"k": "v"}}} */
    static const uint8_t one_attr[] = {0x0a, 0x09, 0xba, 0x01, 0x06, 0x0a,
                                       0x01, 0x6b, 0x12, 0x01, 0x76};
    vg_event ev;
    char why[160];
    if (!fuzz_strict())
        (void)vg_pb_decode(h, sc, one_attr, sizeof one_attr, &ev, why, sizeof why);
}

static void
reply(const uint8_t *p, size_t n)
{
    vg_reply r;
    if (vg_reply_decode(p, n, &r) != VG_OK)
        return;
    for (size_t i = 0; i < r.nrej; i++) {
        fuzz_touch(r.rej[i].event_id, r.rej[i].idlen);
        fuzz_touch(r.rej[i].reason, strlen(r.rej[i].reason));
        fuzz_touch(r.rej[i].code, strlen(r.rej[i].code));
    }
    for (size_t i = 0; i < r.ndec; i++) {
        const vg_decision *d = &r.dec[i];
        fuzz_touch(d->event_id, d->idlen);
        for (size_t k = 0; k < d->nhits; k++) {
            fuzz_touch(d->hits[k].rule, strlen(d->hits[k].rule));
            fuzz_touch(d->hits[k].message, d->hits[k].message_len);
        }
    }
    if (r.error != NULL)
        fuzz_touch(r.error, strlen(r.error));
    /* A pending finding (fuzz_util.h): decisions without a single rule hit
     * make vg_reply_encode() compute NULL + 0 (proto/ingest.c, `hp + h`);
     * not encoded unless VG_FUZZ_STRICT is set. */
    size_t nhits = 0;
    for (size_t i = 0; i < r.ndec; i++)
        nhits += r.dec[i].nhits;
    vg_buf out = {0};
    if ((fuzz_strict() || r.ndec == 0 || nhits > 0) && vg_reply_encode(&r, &out) == VG_OK)
        fuzz_touch(out.data, out.len);
    vg_buf_free(&out);
    vg_reply_free(&r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const vg_schema *sc = vg_schema_default();
    if (size == 0 || sc == NULL)
        return 0;
    unsigned mode = data[0] % 4;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    vg_pb_event *h = NULL;
    vg_batch b = {0};
    switch (mode) {
    case 0:
        one_event(&h, sc, p, n);
        one_event(&h, sc, p, n / 2);
        break;
    case 1:
        warm_holder(&h, sc);
        batch(&h, &b, sc, p, n);
        batch(&h, &b, sc, p, n / 2);
        break;
    case 2: reply(p, n); break;
    default: {
        vg_reader_opts opts = {.format = VG_FMT_PB};
        fuzz_reader_bytes(p, n, &opts);
        break;
    }
    }
    vg_batch_free(&b);
    vg_pb_event_free(h);
    return 0;
}
