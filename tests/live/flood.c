/*
 * flood.c - hostile messages at a running engine (issues 5 and 7): N
 * requests over nng, 1 in 100 a valid one-event batch, the rest bad in one
 * of these ways, in turn by a seeded generator:
 *   garbage    random bytes that cannot be a protobuf message
 *   cut        a valid batch cut short
 *   mixed      three events, the middle one's bytes damaged
 *   tail       two good events and a damaged rest
 *   nested     an event field holding length-prefixed fields nested deep
 *   oversized  a valid batch padded past the engine's max_message_bytes
 *   no_id      a valid event without an id
 *   no_time    a valid event with time_ms 0
 *   future     a valid event stamped years ahead
 * Every reply is checked against what that kind must get, and the totals by
 * outcome are printed for the caller to compare with the engine's metrics:
 *
 *   flood URL N SEED MAXBYTES
 *   prints: accepted A bad_messages B oversized O malformed M missing_id I bad_time T
 *   exits 1 on any surprise
 */
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vg_event.h"

enum { VALID, GARBAGE, CUT, MIXED, TAIL, NESTED, OVERSIZED, NO_ID, NO_TIME, FUTURE, NKINDS };
static const char *const kind_names[] = {"valid",  "garbage",   "cut",   "mixed",   "tail",
                                         "nested", "oversized", "no_id", "no_time", "future"};

static uint64_t
next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void
set(vg_event *ev, const vg_schema *sc, const char *name, vg_value v)
{
    const vg_field *f = vg_schema_field(sc, VG_STREAM_TXN, name, strlen(name));
    ev->v[f->slot] = v;
}

/* A transaction with id `id` (none when NULL) at time t (ms). */
static void
make_event(vg_event *ev, const vg_schema *sc, const char *id, double t)
{
    vg_event_clear(ev, VG_STREAM_TXN);
    if (id != NULL)
        set(ev, sc, "id", (vg_value){.u.s = id, .len = (uint32_t)strlen(id), .kind = VG_V_STR});
    set(ev, sc, "time", (vg_value){.u.num = t, .kind = VG_V_TIME});
    set(ev, sc, "account_id", (vg_value){.u.s = "acct-1", .len = 6, .kind = VG_V_STR});
    set(ev, sc, "amount", (vg_value){.u.num = 12.5, .kind = VG_V_NUM});
    set(ev, sc, "currency", (vg_value){.u.s = "EUR", .len = 3, .kind = VG_V_STR});
}

static void
put_varint(vg_buf *b, uint64_t v)
{
    while (v >= 0x80) {
        vg_buf_putc(b, (char)(v | 0x80));
        v >>= 7;
    }
    vg_buf_putc(b, (char)v);
}

/* An EventBatch whose one event field holds depth fields nested in each
 * other (field 15, length-delimited: unknown to the schema). */
static void
make_nested(vg_buf *out, int depth)
{
    vg_buf inner = {0}, tmp = {0};
    for (int d = 0; d < depth; d++) {
        tmp.len = 0;
        vg_buf_putc(&tmp, 0x7A); /* field 15, wire type 2 */
        put_varint(&tmp, inner.len);
        vg_buf_append(&tmp, inner.data, inner.len);
        vg_buf t = inner;
        inner = tmp;
        tmp = t;
    }
    out->len = 0;
    vg_buf_putc(out, 0x0A); /* EventBatch.events */
    put_varint(out, inner.len);
    vg_buf_append(out, inner.data, inner.len);
    vg_buf_free(&inner);
    vg_buf_free(&tmp);
}

int
main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: flood URL N SEED MAXBYTES\n");
        return 2;
    }
    long n = atol(argv[2]);
    uint64_t seed = strtoull(argv[3], NULL, 10);
    size_t maxbytes = strtoull(argv[4], NULL, 10);
    const vg_schema *sc = vg_schema_default();
    nng_socket sock;
    int rv;
    if ((rv = nng_req0_open(&sock)) != 0 ||
        (rv = nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 10000)) != 0 ||
        (rv = nng_dial(sock, argv[1], NULL, 0)) != 0) {
        fprintf(stderr, "flood: %s\n", nng_strerror(rv));
        return 1;
    }
    vg_buf msg = {0};
    long accepted = 0, bad_messages = 0, oversized = 0, malformed = 0, missing_id = 0, bad_time = 0;
    long surprises = 0;
    for (long i = 0; i < n; i++) {
        uint64_t r = next(&seed);
        int kind = i % 100 == 0 ? VALID : 1 + (int)(r % (NKINDS - 1));
        char id[32];
        snprintf(id, sizeof id, "flood-%ld", i);
        /* 2024-05-01, where `vigil gen` starts: the other producer's events
         * and these share the event clock, and one more than the dedupe
         * horizon behind it would be refused as too_old */
        double t = 1714521600000.0 + (double)i;
        vg_event ev;
        make_event(&ev, sc, kind == NO_ID ? NULL : id,
                   kind == NO_TIME  ? 0
                   : kind == FUTURE ? 4.1e12
                                    : t);
        const vg_event *one = &ev;
        if (kind == MIXED || kind == TAIL) { /* the same event, ids ...-a, -b, -c */
            char ids[3][40];
            vg_event evs[3];
            const vg_event *p[3];
            for (int k = 0; k < 3; k++) {
                snprintf(ids[k], sizeof ids[k], "%s-%c", id, 'a' + k);
                make_event(&evs[k], sc, ids[k], t);
                p[k] = &evs[k];
            }
            if (vg_batch_encode(sc, p, 3, false, &msg) != VG_OK)
                return 1;
            /* the events' framing: tag 0x0A, a one-byte length, the event */
            size_t e1 = 2 + (uint8_t)msg.data[1];
            size_t e2 = e1 + 2 + (uint8_t)msg.data[e1 + 1];
            if (kind == MIXED) /* the middle event's first field: wire type 7 */
                msg.data[e1 + 2] = (char)0x0F;
            else /* the third event's length runs past the end */
                msg.data[e2 + 1] = (char)0x7F;
        } else if (vg_batch_encode(sc, &one, 1, false, &msg) != VG_OK) {
            return 1;
        }
        if (kind == GARBAGE) { /* wire type 7 in the first byte: never a message */
            size_t len = 1 + next(&seed) % 200;
            msg.len = 0;
            for (size_t k = 0; k < len; k++)
                vg_buf_putc(&msg, (char)next(&seed));
            msg.data[0] = (char)0xFF;
        } else if (kind == CUT) { /* cut inside the event: its length runs past the end */
            msg.len = 3 + next(&seed) % (msg.len - 3);
        } else if (kind == NESTED) {
            make_nested(&msg, 200 + (int)(next(&seed) % 800));
        } else if (kind == OVERSIZED) { /* unknown field 15 of the batch, padding */
            size_t pad = maxbytes + 1;
            vg_buf_putc(&msg, 0x7A);
            put_varint(&msg, pad);
            for (size_t k = 0; k < pad; k++)
                vg_buf_putc(&msg, 'x');
        }
        void *buf = NULL;
        size_t len = 0;
        if ((rv = nng_send(sock, msg.data, msg.len, 0)) != 0 ||
            (rv = nng_recv(sock, &buf, &len, NNG_FLAG_ALLOC)) != 0) {
            fprintf(stderr, "flood: message %ld (%s): %s\n", i, kind_names[kind], nng_strerror(rv));
            return 1;
        }
        vg_reply rep;
        if (vg_reply_decode(buf, len, &rep) != VG_OK) {
            fprintf(stderr, "flood: message %ld: the reply is not a BatchReply\n", i);
            return 1;
        }
        nng_free(buf, len);
        const char *code = rep.nrej == 1 ? rep.rej[0].code : "";
        bool ok;
        switch (kind) {
        case VALID: ok = rep.error == NULL && rep.accepted == 1; break;
        case GARBAGE:
        case CUT: ok = rep.error != NULL && rep.accepted == 0; break;
        case MIXED:
        case TAIL:
            ok = rep.error == NULL && rep.accepted == 2 && rep.nrej == 1 &&
                 rep.rej[0].index == (kind == MIXED ? 1u : 2u) && strcmp(code, "malformed") == 0;
            break;
        case NESTED: /* an event of unknown fields only: neither txn nor account */
            ok = rep.error == NULL && rep.accepted == 0 && rep.nrej == 1 &&
                 strcmp(code, "malformed") == 0;
            break;
        case OVERSIZED: ok = rep.error != NULL && rep.permanent && rep.accepted == 0; break;
        case NO_ID: ok = rep.accepted == 0 && strcmp(code, "missing_id") == 0; break;
        default: /* NO_TIME, FUTURE */ ok = rep.accepted == 0 && strcmp(code, "bad_time") == 0;
        }
        if (!ok && surprises++ < 5)
            fprintf(stderr, "flood: message %ld (%s): accepted %u, rejections %zu (%s), error %s\n",
                    i, kind_names[kind], rep.accepted, rep.nrej, code,
                    rep.error ? rep.error : "none");
        accepted += rep.accepted;
        bad_messages += rep.error != NULL;
        oversized += kind == OVERSIZED;
        for (size_t k = 0; k < rep.nrej; k++) {
            malformed += strcmp(rep.rej[k].code, "malformed") == 0;
            missing_id += strcmp(rep.rej[k].code, "missing_id") == 0;
            bad_time += strcmp(rep.rej[k].code, "bad_time") == 0;
        }
        vg_reply_free(&rep);
    }
    vg_buf_free(&msg);
    nng_close(sock);
    printf(
        "accepted %ld bad_messages %ld oversized %ld malformed %ld missing_id %ld bad_time %ld\n",
        accepted, bad_messages, oversized, malformed, missing_id, bad_time);
    return surprises ? 1 : 0;
}
