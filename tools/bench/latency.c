/*
 * latency.c - decision latency of a running engine (issue 5 benchmark):
 * single-event batches asking for a decision, sent at a fixed rate from T
 * threads (each its own REQ socket, paced to RATE / T per second), the
 * round trip of each measured. Prints p50, p99, p99.9 and the worst.
 *
 *   latency URL RATE SECONDS [THREADS]
 */
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vg_event.h"

typedef struct worker {
    const char *url;
    double rate, seconds;
    int index;
    double *lat;
    size_t n, cap;
    int failed;
} worker;

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
set(vg_event *ev, const vg_schema *sc, const char *name, vg_value v)
{
    const vg_field *f = vg_schema_field(sc, VG_STREAM_TXN, name, strlen(name));
    ev->v[f->slot] = v;
}

static void *
run(void *arg)
{
    worker *w = arg;
    const vg_schema *sc = vg_schema_default();
    nng_socket s;
    if (nng_req0_open(&s) != 0 || nng_dial(s, w->url, NULL, 0) != 0) {
        w->failed = 1;
        return NULL;
    }
    vg_buf msg = {0};
    double t0 = now_s(), gap = 1.0 / w->rate;
    for (long i = 0;; i++) {
        double due = t0 + (double)i * gap;
        if (due - t0 > w->seconds)
            break;
        double wait = due - now_s();
        if (wait > 0) {
            struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
            nanosleep(&ts, NULL);
        }
        char id[48], acct[32];
        snprintf(id, sizeof id, "lat-%d-%ld-%ld", w->index, (long)t0, i);
        snprintf(acct, sizeof acct, "acct-%ld", (i * 7919 + w->index) % 100000);
        vg_event ev;
        vg_event_clear(&ev, VG_STREAM_TXN);
        set(&ev, sc, "id", (vg_value){.u.s = id, .len = (uint32_t)strlen(id), .kind = VG_V_STR});
        set(&ev, sc, "time", (vg_value){.u.num = 1.7e12 + (double)i, .kind = VG_V_TIME});
        set(&ev, sc, "account_id",
            (vg_value){.u.s = acct, .len = (uint32_t)strlen(acct), .kind = VG_V_STR});
        set(&ev, sc, "amount", (vg_value){.u.num = 42, .kind = VG_V_NUM});
        set(&ev, sc, "currency", (vg_value){.u.s = "EUR", .len = 3, .kind = VG_V_STR});
        const vg_event *one = &ev;
        vg_batch_encode(sc, &one, 1, true, &msg);
        double a = now_s();
        void *buf;
        size_t len;
        if (nng_send(s, msg.data, msg.len, 0) != 0 ||
            nng_recv(s, &buf, &len, NNG_FLAG_ALLOC) != 0) {
            w->failed = 1;
            break;
        }
        double b = now_s();
        nng_free(buf, len);
        if (w->n == w->cap) {
            w->cap = w->cap ? w->cap * 2 : 4096;
            w->lat = realloc(w->lat, w->cap * sizeof(double));
        }
        w->lat[w->n++] = b - a;
    }
    vg_buf_free(&msg);
    nng_close(s);
    return NULL;
}

static int
cmp(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

int
main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: latency URL RATE SECONDS [THREADS]\n");
        return 2;
    }
    int nt = argc > 4 ? atoi(argv[4]) : 1;
    worker *w = calloc((size_t)nt, sizeof *w);
    pthread_t *th = calloc((size_t)nt, sizeof *th);
    for (int i = 0; i < nt; i++) {
        w[i] = (worker){
            .url = argv[1], .rate = atof(argv[2]) / nt, .seconds = atof(argv[3]), .index = i};
        pthread_create(&th[i], NULL, run, &w[i]);
    }
    size_t total = 0;
    for (int i = 0; i < nt; i++) {
        pthread_join(th[i], NULL);
        if (w[i].failed)
            fprintf(stderr, "latency: thread %d failed\n", i);
        total += w[i].n;
    }
    double *all = malloc((total ? total : 1) * sizeof *all);
    size_t k = 0;
    for (int i = 0; i < nt; i++) {
        memcpy(all + k, w[i].lat, w[i].n * sizeof(double));
        k += w[i].n;
        free(w[i].lat);
    }
    qsort(all, total, sizeof *all, cmp);
    if (total > 0)
        printf("%zu requests at %s/s over %s s, %d threads: p50 %.0f us, p99 %.0f us, p99.9 %.0f "
               "us, max %.0f us\n",
               total, argv[2], argv[3], nt, all[total / 2] * 1e6, all[total * 99 / 100] * 1e6,
               all[total * 999 / 1000] * 1e6, all[total - 1] * 1e6);
    free(all);
    free(w);
    free(th);
    return 0;
}
