/*
 * cmd_send.c - `vigil send`: replay a file into a running engine over nng,
 * batch by batch, each acked before the next goes.
 */
#include <getopt.h>
#include <nng/nng.h>
#include <pthread.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "vg_tls.h"
#include "vg_input.h"

static void
send_usage(FILE *f)
{
    fprintf(
        f,
        "usage: vigil send --to URL --input FILE [options]\n"
        "\n"
        "Send historical events to a running engine (vigil run) in batches, waiting for\n"
        "each batch's ack, and say what became of them: sent, acked (new events taken),\n"
        "duplicates (ids the engine had seen), rejected (with the first reasons).\n"
        "\n"
        "Options:\n"
        "  -t, --to URL         the engine's ingest endpoint (like tcp://127.0.0.1:7470)\n"
        "  -i, --input FILE     events: CSV, JSONL or length-delimited protobuf, as for\n"
        "                       vigil replay ('-' reads standard input)\n"
        "  -f, --format FMT     csv, jsonl or pb (default: from the file extension)\n"
        "      --map FILE       CSV only: a map file (see vigil replay --help)\n"
        "  -b, --batch N        events per batch (default 256)\n"
        "      --rate N         at most N events per second (also N/s; default: as fast as acked)\n"
        "      --inflight N     batches in flight at once (default 1); more is faster,\n"
        "                       but the engine may then take batches out of file\n"
        "                       order, so alerts that depend on order may differ from\n"
        "                       a replay of the file\n"
        "      --timeout SEC    give up on a batch not acked after SEC seconds of\n"
        "                       retrying (default 60); a batch is resent after 5 s\n"
        "                       without a reply, harmlessly: the engine dedupes ids\n" CLI_TLS_HELP
        "      --push           fire and forget: send to the engine's PULL endpoint\n"
        "                       (vigil run --stream URL) without waiting for acks;\n"
        "                       nothing says what became of the events (see the\n"
        "                       engine's /metrics)\n"
        "  -q, --quiet          no summary, no progress\n"
        "  -h, --help           show this help and exit\n"
        "\n"
        "An engine that is not up yet is waited for, up to --timeout.\n"
        "\n"
        "Exit status: 0 every batch acked (rejected events included), 1 the engine\n"
        "refused a batch for good (too big: use a smaller --batch), 64 usage error,\n"
        "65 an input not of its format, 66 a file that cannot be opened, 69 the engine\n"
        "cannot be reached or stops acking.\n");
}

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct sender {
    nng_socket sock;
    const vg_schema *sc;
    const char *input;
    double timeout;
    vg_buf msg;
    /* the batch: events copied out of the reader's buffers */
    vg_event *ev;
    const vg_event **ptrs;
    uint64_t *lines;
    size_t n, cap;
    vg_buf arena;
    size_t *offs; /* where each event's strings start in the arena */
    uint64_t sent, acked, dups, rejected;
    bool refused; /* under mu: a batch was refused for good (too big) */
    bool push;    /* --push: a PUSH socket, no replies */
    char *reasons[5];
    size_t nreasons;
    /* --inflight N > 1: encoded batches for N worker threads, each with its
     * own nng context */
    int inflight;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *head, *tail;
    size_t queued;
    bool done, failed;
} sender;

/* An encoded batch for a worker, with its events' lines. */
typedef struct job {
    struct job *next;
    vg_buf msg;
    uint64_t *lines;
    size_t n;
} job;

static void
keep_reason(sender *S, uint64_t line, const char *reason)
{
    if (S->nreasons == 5)
        return;
    char buf[700];
    snprintf(buf, sizeof buf, "%s:%llu: %s", S->input, (unsigned long long)line, reason);
    if ((S->reasons[S->nreasons] = strdup(buf)) != NULL)
        S->nreasons++;
}

/* One request/reply on ctx (a blocking exchange over an aio). */
static int
exchange(nng_ctx ctx, nng_aio *aio, const vg_buf *msg, nng_msg **reply)
{
    nng_msg *m;
    int rv = nng_msg_alloc(&m, 0);
    if (rv == 0 && (rv = nng_msg_append(m, msg->data, msg->len)) != 0)
        nng_msg_free(m);
    if (rv != 0)
        return rv;
    nng_aio_set_msg(aio, m);
    nng_ctx_send(ctx, aio);
    nng_aio_wait(aio);
    if ((rv = nng_aio_result(aio)) != 0) {
        nng_msg_free(nng_aio_get_msg(aio));
        return rv;
    }
    nng_ctx_recv(ctx, aio);
    nng_aio_wait(aio);
    if ((rv = nng_aio_result(aio)) != 0)
        return rv;
    *reply = nng_aio_get_msg(aio);
    return 0;
}

/* Sends an encoded batch and waits for its ack, resending as needed; the
 * counts go to S (under its mutex when workers share it). Returns VG_OK, or
 * VG_EIO after the timeout (the engine is gone or not acking). */
/* The engine's reason for not taking a batch: said when it changes, and
 * every 10 s while it lasts (a full engine refuses every retry). */
static void
say_refusal(sender *S, const char *why)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static char last[256];
    static double at;
    (void)S;
    pthread_mutex_lock(&mu);
    double now = now_s();
    if (strncmp(last, why, sizeof last - 1) != 0 || now - at > 10) {
        fprintf(stderr, "vigil send: the engine did not take a batch: %s\n", why);
        snprintf(last, sizeof last, "%s", why);
        at = now;
    }
    pthread_mutex_unlock(&mu);
}

static vg_err
deliver(sender *S, nng_ctx *ctx, nng_aio *aio, const vg_buf *msg, const uint64_t *lines, size_t n)
{
    double t0 = now_s();
    if (S->push) { /* fire and forget: sent is all there is to know */
        int rv;
        while ((rv = nng_send(S->sock, msg->data, msg->len, 0)) == NNG_ETIMEDOUT)
            if (now_s() - t0 > S->timeout)
                return VG_EIO;
        if (rv != 0)
            return VG_EIO;
        S->sent += n;
        return VG_OK;
    }
    for (;;) {
        void *buf = NULL;
        size_t len = 0;
        nng_msg *reply = NULL;
        int rv = ctx != NULL ? exchange(*ctx, aio, msg, &reply)
                             : nng_send(S->sock, msg->data, msg->len, 0);
        if (rv == 0 && ctx == NULL)
            rv = nng_recv(S->sock, &buf, &len, NNG_FLAG_ALLOC);
        if (rv == 0 && reply != NULL) {
            buf = nng_msg_body(reply);
            len = nng_msg_len(reply);
        }
        if (rv == 0) {
            vg_reply rep;
            vg_err e = vg_reply_decode(buf, len, &rep);
            if (reply != NULL)
                nng_msg_free(reply);
            else
                nng_free(buf, len);
            if (e == VG_OK && rep.error == NULL) {
                if (ctx != NULL)
                    pthread_mutex_lock(&S->mu);
                S->sent += n;
                S->acked += rep.accepted;
                S->dups += rep.duplicates;
                S->rejected += rep.nrej;
                for (size_t i = 0; i < rep.nrej; i++)
                    keep_reason(S, rep.rej[i].index < n ? lines[rep.rej[i].index] : 0,
                                rep.rej[i].reason);
                if (ctx != NULL)
                    pthread_mutex_unlock(&S->mu);
                vg_reply_free(&rep);
                return VG_OK;
            }
            if (e == VG_OK) {
                bool permanent = rep.permanent;
                say_refusal(S, rep.error);
                vg_reply_free(&rep);
                if (permanent) /* the same bytes again would fail again */
                    return VG_ELIMIT;
            }
            nng_msleep(500);
        } else if (rv != NNG_ETIMEDOUT) {
            nng_msleep(200);
        }
        if (now_s() - t0 > S->timeout)
            return VG_EIO;
    }
}

static void *
worker_main(void *arg)
{
    sender *S = arg;
    nng_ctx ctx;
    nng_aio *aio = NULL;
    bool ok = nng_ctx_open(&ctx, S->sock) == 0 && nng_aio_alloc(&aio, NULL, NULL) == 0;
    if (ok) {
        nng_ctx_set_ms(ctx, NNG_OPT_REQ_RESENDTIME, 5000);
        nng_aio_set_timeout(aio, 5000);
    }
    for (;;) {
        pthread_mutex_lock(&S->mu);
        while (S->head == NULL && !S->done && ok && !S->failed)
            pthread_cond_wait(&S->cv, &S->mu);
        job *j = S->head;
        if (j != NULL && (S->head = j->next) == NULL)
            S->tail = NULL;
        if (j != NULL)
            S->queued--;
        if (!ok)
            S->failed = true;
        pthread_cond_broadcast(&S->cv);
        pthread_mutex_unlock(&S->mu);
        if (j == NULL)
            break;
        vg_err err = ok && !S->failed ? deliver(S, &ctx, aio, &j->msg, j->lines, j->n) : VG_EIO;
        vg_buf_free(&j->msg);
        free(j->lines);
        free(j);
        if (err) {
            pthread_mutex_lock(&S->mu);
            S->failed = true;
            S->refused |= err == VG_ELIMIT;
            pthread_cond_broadcast(&S->cv);
            pthread_mutex_unlock(&S->mu);
        }
    }
    if (aio != NULL)
        nng_aio_free(aio);
    if (ok)
        nng_ctx_close(ctx);
    return NULL;
}

/* Sends the batch: with one in flight, now, waiting for its ack; with
 * more, queued for the workers (waiting while INFLIGHT are queued). */
static vg_err
flush_batch(sender *S)
{
    if (S->n == 0)
        return VG_OK;
    for (size_t i = 0; i < S->n; i++)
        S->ptrs[i] = &S->ev[i];
    if (S->inflight > 1) {
        job *j = calloc(1, sizeof *j);
        if (j == NULL || (j->lines = malloc(S->n * sizeof(uint64_t))) == NULL) {
            free(j);
            return VG_ENOMEM;
        }
        memcpy(j->lines, S->lines, S->n * sizeof(uint64_t));
        j->n = S->n;
        vg_err err = vg_batch_encode(S->sc, S->ptrs, S->n, false, &j->msg);
        if (err) {
            free(j->lines);
            free(j);
            return err;
        }
        pthread_mutex_lock(&S->mu);
        while (S->queued >= (size_t)S->inflight && !S->failed)
            pthread_cond_wait(&S->cv, &S->mu);
        bool failed = S->failed;
        if (!failed) {
            if (S->tail)
                S->tail->next = j;
            else
                S->head = j;
            S->tail = j;
            S->queued++;
            pthread_cond_broadcast(&S->cv);
        }
        pthread_mutex_unlock(&S->mu);
        if (failed) {
            vg_buf_free(&j->msg);
            free(j->lines);
            free(j);
            return VG_EIO;
        }
        S->n = 0;
        S->arena.len = 0;
        return VG_OK;
    }
    vg_err err = vg_batch_encode(S->sc, S->ptrs, S->n, false, &S->msg);
    if (err)
        return err;
    err = deliver(S, NULL, NULL, &S->msg, S->lines, S->n);
    if (err)
        return err;
    S->n = 0;
    S->arena.len = 0;
    return VG_OK;
}

/* Re-points ev's strings and attrs from a block at old to the same offsets
 * in a block at now (integers: old may be freed). */
static void
rebase(const vg_schema *sc, vg_event *ev, uintptr_t o, char *now)
{
    size_t n = vg_schema_nfields(sc, ev->stream);
    for (size_t i = 0; i < n; i++)
        if (ev->v[i].kind == VG_V_STR)
            ev->v[i].u.s = now + ((uintptr_t)ev->v[i].u.s - o);
    if (ev->nattrs > 0) {
        vg_attr *a = (vg_attr *)(void *)(now + ((uintptr_t)ev->attrs - o));
        for (uint32_t i = 0; i < ev->nattrs; i++) {
            a[i].key = now + ((uintptr_t)a[i].key - o);
            a[i].val = now + ((uintptr_t)a[i].val - o);
        }
        ev->attrs = a;
    }
}

static vg_err
add_event(sender *S, const vg_event *ev, uint64_t line)
{
    if (S->n == S->cap) {
        size_t cap = S->cap ? S->cap * 2 : 256;
        vg_event *e = realloc(S->ev, cap * sizeof *e);
        if (e != NULL)
            S->ev = e;
        const vg_event **p = realloc(S->ptrs, cap * sizeof *p);
        if (p != NULL)
            S->ptrs = p;
        uint64_t *l = realloc(S->lines, cap * sizeof *l);
        if (l != NULL)
            S->lines = l;
        size_t *o = realloc(S->offs, cap * sizeof *o);
        if (o != NULL)
            S->offs = o;
        if (e == NULL || p == NULL || l == NULL || o == NULL)
            return VG_ENOMEM;
        S->cap = cap;
    }
    size_t need = (vg_event_size(S->sc, ev) + 7) & ~(size_t)7;
    size_t off = S->arena.len;
    vg_err err = vg_buf_append(&S->arena, NULL, 0);
    if (err == VG_OK && S->arena.cap < off + need + 1) {
        size_t cap = (off + need + 1) * 2;
        uintptr_t old = (uintptr_t)S->arena.data;
        char *a = realloc(S->arena.data, cap);
        if (a == NULL)
            return VG_ENOMEM;
        S->arena.data = a;
        S->arena.cap = cap;
        if ((uintptr_t)a != old) /* the batch's copies point into the arena: move them */
            for (size_t i = 0; i < S->n; i++)
                rebase(S->sc, &S->ev[i], old, a);
    }
    if (err)
        return err;
    vg_event_copy(S->sc, &S->ev[S->n], ev, S->arena.data + off);
    S->arena.len = off + need;
    S->offs[S->n] = off;
    S->lines[S->n] = line;
    S->n++;
    return VG_OK;
}

int
cmd_send(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"to", required_argument, NULL, 't'},
        {"input", required_argument, NULL, 'i'},
        {"format", required_argument, NULL, 'f'},
        {"map", required_argument, NULL, 'm'},
        {"batch", required_argument, NULL, 'b'},
        {"rate", required_argument, NULL, 'R'},
        {"timeout", required_argument, NULL, 'T'},
        {"quiet", no_argument, NULL, 'q'},
        {"inflight", required_argument, NULL, 'I'},
        {"push", no_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},
        CLI_TLS_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    const char *to = NULL, *input = NULL, *format = NULL, *map = NULL;
    long batch = 256;
    double rate = 0, timeout = 60;
    bool quiet = false;
    long inflight = 1;
    bool push = false;
    vg_tls_files tls = {0};
    int c;
    char *end;
    optind = 1;
    while ((c = getopt_long(argc, argv, "t:i:f:b:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 't': to = optarg; break;
        case 'i': input = optarg; break;
        case 'f': format = optarg; break;
        case 'm': map = optarg; break;
        case 'b':
            batch = strtol(optarg, &end, 10);
            if (*end || batch < 1 || batch > 100000)
                return cli_usage_error("send", "--batch wants 1 to 100000 events");
            break;
        case 'R':
            rate = strtod(optarg, &end);
            if (strcmp(end, "/s") == 0) /* "5000/s" reads as it is meant */
                end += 2;
            if (*end || rate <= 0)
                return cli_usage_error("send", "--rate wants events per second, like 5000");
            break;
        case 'T':
            timeout = strtod(optarg, &end);
            if (*end || timeout <= 0)
                return cli_usage_error("send", "--timeout wants seconds, like 60");
            break;
        case 'I':
            inflight = strtol(optarg, &end, 10);
            if (*end || inflight < 1 || inflight > 64)
                return cli_usage_error("send", "--inflight wants 1 to 64 batches");
            break;
        case 'q': quiet = true; break;
        case 'P': push = true; break;
        case 'h': send_usage(stdout); return VG_EXIT_OK;
        default:
            if (cli_tls_option(c, optarg, &tls))
                break;
            return cli_usage_error("send", "unknown option");
        }
    }
    if (to == NULL || input == NULL)
        return cli_usage_error("send", "give the engine (--to URL) and the events (--input FILE)");
    if (push && inflight > 1)
        return cli_usage_error("send", "--push sends without waiting: --inflight does not apply");
    vg_format fmt = VG_FMT_AUTO;
    if (format != NULL && (fmt = vg_format_parse(format)) == VG_FMT_AUTO)
        return cli_usage_error("send", "--format is csv, jsonl or pb, not '%s'", format);
    if (fmt == VG_FMT_AUTO && vg_format_of_path(input) == VG_FMT_AUTO)
        return cli_usage_error("send", "can't tell the format of '%s' from its name: give --format",
                               input);
    sender S = {.sc = vg_schema_default(), .input = input, .timeout = timeout, .push = push};
    int rc = VG_EXIT_OK;
    char why[512] = "";
    vg_reader *rd = NULL;
    vg_reader_opts ropts = {.format = fmt, .map_path = map, .diag = cli_print_diag};
    vg_err err = vg_reader_open(input, S.sc, &ropts, why, sizeof why, &rd);
    if (err) {
        fprintf(stderr, "vigil send: can't read '%s': %s\n", input,
                why[0] ? why : vg_strerror(err));
        return err == VG_EINVAL || err == VG_ECOMPILE ? VG_EXIT_DATAERR : VG_EXIT_NOINPUT;
    }
    int rv;
    vg_err terr = VG_OK;
    if ((rv = push ? nng_push0_open(&S.sock) : nng_req0_open(&S.sock)) != 0 ||
        (!push && (rv = nng_socket_set_ms(S.sock, NNG_OPT_REQ_RESENDTIME, 5000)) != 0) ||
        (!push && (rv = nng_socket_set_ms(S.sock, NNG_OPT_RECVTIMEO, 5000)) != 0) ||
        (rv = nng_socket_set_ms(S.sock, NNG_OPT_SENDTIMEO, 1000)) != 0 ||
        (rv = (terr = vg_tls_dial(S.sock, to, &tls, why, sizeof why)) == VG_OK ? 0 : -1) != 0) {
        if (rv > 0)
            snprintf(why, sizeof why, "can't reach the engine at %s: %s", to, nng_strerror(rv));
        fprintf(stderr, "vigil send: %s%s\n", why, terr == VG_EINVAL ? "" : " (is vigil run up?)");
        if (terr == VG_EINVAL) { /* the TLS options: what is missing or wrong is said */
            vg_reader_close(rd);
            nng_close(S.sock);
            return VG_EXIT_USAGE;
        }
        vg_reader_close(rd);
        if (S.sock.id != 0)
            nng_close(S.sock);
        return VG_EXIT_UNAVAILABLE;
    }
    S.inflight = (int)inflight;
    pthread_mutex_init(&S.mu, NULL);
    pthread_cond_init(&S.cv, NULL);
    pthread_t workers[64];
    int nworkers = 0;
    for (int i = 0; inflight > 1 && i < inflight; i++)
        if (pthread_create(&workers[nworkers], NULL, worker_main, &S) == 0)
            nworkers++;
    bool tty = isatty(STDERR_FILENO) && !quiet;
    double t0 = now_s(), last = t0;
    uint64_t read = 0;
    vg_event ev;
    for (;;) {
        uint64_t line;
        const char *reason;
        int lab;
        vg_read r = vg_reader_next(rd, &ev, &line, &reason, &lab);
        if (r == VG_READ_END)
            break;
        if (r == VG_READ_ERROR) {
            fprintf(stderr, "vigil send: %s:%llu: %s\n", input, (unsigned long long)line, reason);
            rc = VG_EXIT_DATAERR;
            break;
        }
        read++;
        if (r == VG_READ_REJECT) {
            S.rejected++;
            keep_reason(&S, line, reason);
            continue;
        }
        if ((err = add_event(&S, &ev, line)) == VG_OK && S.n >= (size_t)batch)
            err = flush_batch(&S);
        if (err)
            break;
        if (rate > 0) { /* hold back to the rate */
            double ahead = (double)read / rate - (now_s() - t0);
            if (ahead > 0.001)
                nng_msleep((nng_duration)(ahead * 1000));
        }
        if (tty && now_s() - last > 0.5) {
            last = now_s();
            pthread_mutex_lock(&S.mu);
            fprintf(stderr, "\r  %llu sent, %llu acked   ", (unsigned long long)S.sent,
                    (unsigned long long)S.acked);
            pthread_mutex_unlock(&S.mu);
        }
    }
    if (err == VG_OK)
        err = flush_batch(&S);
    /* the workers finish what is queued */
    pthread_mutex_lock(&S.mu);
    S.done = true;
    pthread_cond_broadcast(&S.cv);
    pthread_mutex_unlock(&S.mu);
    for (int i = 0; i < nworkers; i++)
        pthread_join(workers[i], NULL);
    if (err == VG_OK && S.failed)
        err = S.refused ? VG_ELIMIT : VG_EIO;
    if (err == VG_ELIMIT) { /* said above, with the engine's reason */
        fprintf(stderr,
                "vigil send: stopped: the engine refuses such requests; with --batch smaller "
                "they may fit (%llu events were acked before)\n",
                (unsigned long long)S.acked);
        rc = 1;
    } else if (err == VG_EIO && S.acked + S.dups + S.rejected == 0 && !push) {
        fprintf(stderr,
                "vigil send: no engine answered at %s within %.0f s (is vigil run up, and "
                "listening there?%s)\n",
                to, timeout,
                vg_tls_url(to) ? " With tls+tcp://, a TLS handshake that fails looks the same: "
                                 "check --tls-ca (the CA of the engine's certificate), "
                                 "--tls-cert/--tls-key (a client certificate its CA signed) and "
                                 "--tls-server-name"
                               : "");
        rc = VG_EXIT_UNAVAILABLE;
    } else if (err == VG_EIO) {
        fprintf(stderr,
                "vigil send: the engine at %s did not ack a batch within %.0f s; %llu events "
                "were acked before (sending the file again is safe: ids are deduplicated)\n",
                to, timeout, (unsigned long long)S.acked);
        rc = VG_EXIT_UNAVAILABLE;
    } else if (err) {
        fprintf(stderr, "vigil send: %s\n", vg_strerror(err));
        rc = 1;
    }
    double dt = now_s() - t0;
    if (tty)
        fputc('\n', stderr);
    if (!quiet) {
        fprintf(stderr,
                "send: %llu events read, %llu sent, %llu acked, %llu duplicates, %llu rejected, "
                "%.0f events/s\n",
                (unsigned long long)read, (unsigned long long)S.sent, (unsigned long long)S.acked,
                (unsigned long long)S.dups, (unsigned long long)S.rejected,
                dt > 0 ? (double)S.sent / dt : 0.0);
        for (size_t i = 0; i < S.nreasons; i++)
            fprintf(stderr, "  rejected %s\n", S.reasons[i]);
        if (S.rejected > S.nreasons)
            fprintf(stderr, "  ... and %llu more rejected\n",
                    (unsigned long long)(S.rejected - S.nreasons));
    }
    for (size_t i = 0; i < S.nreasons; i++)
        free(S.reasons[i]);
    nng_close(S.sock);
    vg_reader_close(rd);
    vg_buf_free(&S.msg);
    vg_buf_free(&S.arena);
    free(S.ev);
    free(S.ptrs);
    free(S.lines);
    free(S.offs);
    pthread_mutex_destroy(&S.mu);
    pthread_cond_destroy(&S.cv);
    return rc;
}

bool
cli_tls_option(int c, const char *arg, vg_tls_files *t)
{
    switch (c) {
    case 1001: t->ca = arg; return true;
    case 1002: t->cert = arg; return true;
    case 1003: t->key = arg; return true;
    case 1004: t->server_name = arg; return true;
    default: return false;
    }
}
