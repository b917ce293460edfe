/*
 * redis_velocity.c - the velocity rule as teams build it without Vigil: a
 * Redis sorted set per account, driven by a pipelined C client (hiredis).
 * For every transaction of the input, in file order:
 *
 *   ZREMRANGEBYSCORE vel:ACCOUNT -inf (T-W     drop what left the window
 *   ZADD vel:ACCOUNT T ID                      add this transaction
 *   ZCARD vel:ACCOUNT                          count the window, [T-W, T]
 *
 * and an alert when the count is over the threshold: the semantics of
 * `when count() over W > N` (SPEC §2: inclusive, the current event counted).
 * Commands go out BATCH events at a time, replies read back after each
 * batch. Prints the events, the alerts and the events per second.
 *
 *   vg_bench_redis FILE HOST PORT WINDOW_MS THRESHOLD [BATCH]
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vg_input.h"

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const vg_value *
field(const vg_schema *sc, const vg_event *ev, const char *name)
{
    const vg_field *f = vg_schema_field(sc, ev->stream, name, strlen(name));
    return f ? &ev->v[f->slot] : NULL;
}

/* Reads the replies of n events (three each); counts the alerts. */
static int
drain(redisContext *c, size_t n, long threshold, unsigned long *alerts)
{
    for (size_t i = 0; i < n; i++) {
        for (int k = 0; k < 3; k++) {
            redisReply *r;
            if (redisGetReply(c, (void **)&r) != REDIS_OK) {
                fprintf(stderr, "redis: %s\n", c->errstr);
                return -1;
            }
            if (k == 2 && r->type == REDIS_REPLY_INTEGER && r->integer > threshold)
                (*alerts)++;
            freeReplyObject(r);
        }
    }
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: vg_bench_redis FILE HOST PORT WINDOW_MS THRESHOLD [BATCH]\n");
        return 2;
    }
    long window = atol(argv[4]), threshold = atol(argv[5]);
    size_t batch = argc > 6 ? (size_t)atol(argv[6]) : 1000;
    redisContext *c = redisConnect(argv[2], atoi(argv[3]));
    if (c == NULL || c->err) {
        fprintf(stderr, "redis: can't connect: %s\n", c ? c->errstr : "out of memory");
        return 1;
    }
    const vg_schema *sc = vg_schema_default();
    vg_reader_opts ro = {0};
    vg_reader *rd;
    char why[256];
    if (vg_reader_open(argv[1], sc, &ro, why, sizeof why, &rd) != VG_OK) {
        fprintf(stderr, "vg_bench_redis: %s\n", why);
        return 1;
    }
    unsigned long events = 0, alerts = 0;
    size_t pending = 0;
    double t0 = now_s();
    vg_event ev;
    uint64_t line;
    const char *reason;
    int label;
    vg_read r;
    while ((r = vg_reader_next(rd, &ev, &line, &reason, &label)) != VG_READ_END) {
        if (r != VG_READ_EVENT || ev.stream != VG_STREAM_TXN)
            continue;
        const vg_value *acct = field(sc, &ev, "account_id"), *id = field(sc, &ev, "id"),
                       *t = field(sc, &ev, "time");
        if (acct == NULL || acct->kind != VG_V_STR || id == NULL || id->kind != VG_V_STR)
            continue;
        long long ms = (long long)t->u.num;
        char key[160], lo[32], score[32];
        snprintf(key, sizeof key, "vel:%.*s", (int)acct->len, acct->u.s);
        snprintf(lo, sizeof lo, "(%lld", ms - window);
        snprintf(score, sizeof score, "%lld", ms);
        redisAppendCommand(c, "ZREMRANGEBYSCORE %s -inf %s", key, lo);
        redisAppendCommand(c, "ZADD %s %s %b", key, score, id->u.s, (size_t)id->len);
        redisAppendCommand(c, "ZCARD %s", key);
        events++;
        if (++pending == batch) {
            if (drain(c, pending, threshold, &alerts) != 0)
                return 1;
            pending = 0;
        }
    }
    if (drain(c, pending, threshold, &alerts) != 0)
        return 1;
    double dt = now_s() - t0;
    printf("redis: %lu events, %lu alerts, %.0f events/s (%.2f s)\n", events, alerts,
           (double)events / dt, dt);
    vg_reader_close(rd);
    redisFree(c);
    return 0;
}
