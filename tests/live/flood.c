/*
 * flood.c - malformed messages at a running engine (issue 5, 7): N requests
 * over nng, of which 1 in 100 is a valid one-event batch and the rest are
 * garbage (bytes that cannot be a protobuf message), valid batches cut
 * short, batches of three whose middle event is damaged, or batches of two
 * good events and a damaged rest. Every reply is checked: a valid batch is
 * acked with its event accepted, a bad message is answered with an error and
 * nothing taken, and in a mixed batch the good events are accepted and each
 * bad part is rejected by its index.
 *
 *   flood URL N [SEED]   prints "accepted A bad B rejected R", exits 1 on any surprise
 */
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vg_event.h"

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

int
main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: flood URL N [SEED]\n");
        return 2;
    }
    long n = atol(argv[2]);
    uint64_t seed = argc > 3 ? strtoull(argv[3], NULL, 10) : 1;
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
    long valid = 0, bad = 0, rejected = 0, surprises = 0;
    for (long i = 0; i < n; i++) {
        uint64_t r = next(&seed);
        /* 0 valid, 1 garbage, 2 cut, 3 a bad event between good ones, 4 a damaged rest */
        int kind = i % 100 == 0 ? 0 : i % 100 == 50 ? 3 + (int)(r % 2) : (int)(r % 2) + 1;
        /* a one-event batch: a transaction with a unique id */
        char id[32];
        snprintf(id, sizeof id, "flood-%ld", i);
        vg_event ev;
        vg_event_clear(&ev, VG_STREAM_TXN);
        set(&ev, sc, "id", (vg_value){.u.s = id, .len = (uint32_t)strlen(id), .kind = VG_V_STR});
        set(&ev, sc, "time", (vg_value){.u.num = 1.7e12 + (double)i, .kind = VG_V_TIME});
        set(&ev, sc, "account_id", (vg_value){.u.s = "acct-1", .len = 6, .kind = VG_V_STR});
        set(&ev, sc, "amount", (vg_value){.u.num = 12.5, .kind = VG_V_NUM});
        set(&ev, sc, "currency", (vg_value){.u.s = "EUR", .len = 3, .kind = VG_V_STR});
        const vg_event *one = &ev;
        if (kind >= 3) { /* the same event with ids ...-a, -b, -c */
            char ids[3][40];
            vg_event evs[3];
            const vg_event *p[3];
            for (int k = 0; k < 3; k++) {
                evs[k] = ev;
                snprintf(ids[k], sizeof ids[k], "%s-%c", id, 'a' + k);
                set(&evs[k], sc, "id",
                    (vg_value){.u.s = ids[k], .len = (uint32_t)strlen(ids[k]), .kind = VG_V_STR});
                p[k] = &evs[k];
            }
            if (vg_batch_encode(sc, p, 3, false, &msg) != VG_OK)
                return 1;
        } else if (vg_batch_encode(sc, &one, 1, false, &msg) != VG_OK) {
            return 1;
        }
        /* the three events' framing: tag 0x0A, a one-byte length, the event */
        size_t e1 = 0, e2 = 0;
        if (kind >= 3) {
            e1 = 2 + (uint8_t)msg.data[1];
            e2 = e1 + 2 + (uint8_t)msg.data[e1 + 1];
        }
        if (kind == 1) { /* wire type 7 in the first byte: never a message */
            size_t len = 1 + next(&seed) % 200;
            msg.len = 0;
            for (size_t k = 0; k < len; k++)
                vg_buf_putc(&msg, (char)next(&seed));
            msg.data[0] = (char)0xFF;
        } else if (kind == 2) { /* cut inside the event: its length runs past the end */
            msg.len = 3 + next(&seed) % (msg.len - 3);
        } else if (kind == 3) { /* the middle event's first field: wire type 7 */
            msg.data[e1 + 2] = (char)0x0F;
        } else if (kind == 4) { /* the third event's length runs past the end */
            msg.data[e2 + 1] = (char)0x7F;
        }
        void *buf = NULL;
        size_t len = 0;
        if ((rv = nng_send(sock, msg.data, msg.len, 0)) != 0 ||
            (rv = nng_recv(sock, &buf, &len, NNG_FLAG_ALLOC)) != 0) {
            fprintf(stderr, "flood: message %ld: %s\n", i, nng_strerror(rv));
            return 1;
        }
        vg_reply rep;
        if (vg_reply_decode(buf, len, &rep) != VG_OK) {
            fprintf(stderr, "flood: message %ld: the reply is not a BatchReply\n", i);
            return 1;
        }
        nng_free(buf, len);
        uint32_t bad_at = kind == 3 ? 1 : 2;
        bool ok = kind == 0 ? rep.error == NULL && rep.accepted == 1
                  : kind >= 3
                      ? rep.error == NULL && rep.accepted == 2 && rep.nrej == 1 &&
                            rep.rej[0].index == bad_at && strcmp(rep.rej[0].code, "malformed") == 0
                      : rep.error != NULL && rep.accepted == 0;
        if (!ok && surprises++ < 5)
            fprintf(stderr, "flood: message %ld (%s): accepted %u, error %s\n", i,
                    kind == 0 ? "valid" : "bad", rep.accepted, rep.error ? rep.error : "none");
        valid += kind == 0 ? 1 : kind >= 3 ? 2 : 0;
        bad += kind == 1 || kind == 2;
        rejected += kind >= 3;
        vg_reply_free(&rep);
    }
    vg_buf_free(&msg);
    nng_close(sock);
    printf("accepted %ld bad %ld rejected %ld\n", valid, bad, rejected);
    return surprises ? 1 : 0;
}
