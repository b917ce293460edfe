/*
 * test_webhook.c - the webhook sink (adapters/webhook.c) against a real HTTP
 * receiver: a small HTTP/1.1 server on 127.0.0.1 running on its own thread in
 * this process, answering as each test scripts it and recording every request
 * (arrival time, path, headers, whether the signatures verify).
 *
 * Backoff is checked as a lower bound ("no attempt before its delay"), which
 * is a correctness property, not a speed measurement.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "vg_sign.h"
#include "vg_sink.h"

#define SECRET1 "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SECRET2 "whsec_dmlnaWwtdGVzdC1rZXktbnVtYmVyLXR3byE=" /* "vigil-test-key-number-two!" */
#define MAX_REQS 512
#define MAX_CONNS 64
#define MAX_SEQ 128

static int64_t
mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- The receiver ------------------------------------------------------ */

typedef struct request {
    int64_t t_ms; /* monotonic, when it arrived */
    char path[64];
    char id[64];
    int key, seq;  /* from the id, "k<key>-<seq>" */
    int64_t ts;    /* webhook-timestamp */
    bool sig_each; /* the signature header verifies under each secret alone */
    bool json;     /* content-type: application/json */
    int status;    /* what the server answered (0: nothing) */
} request;

struct server;
/* Answers one request: the status (0: do not answer), extra header lines. */
typedef int respond_fn(struct server *sv, const request *r, char *extra, size_t extralen);

typedef struct server {
    int lfd, port;
    pthread_t thread;
    atomic_bool stop;
    respond_fn *respond;
    int answered;   /* requests answered so far (server thread only) */
    int fail_first; /* respond_flaky: this many 503s first */
    vg_whkey keys[2];
    pthread_mutex_t mu; /* guards what follows */
    request reqs[MAX_REQS];
    int nreqs;
    int conns; /* connections accepted */
} server;

typedef struct conn {
    int fd;
    size_t len;
    char buf[16384];
} conn;

/* The value of header name in head (CRLF lines), copied to out. */
static bool
header_get(const char *head, const char *name, char *out, size_t outlen)
{
    size_t n = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p != NULL; p = strstr(p, "\r\n")) {
        p += 2;
        if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ')
                v++;
            size_t len = strcspn(v, "\r");
            if (len >= outlen)
                len = outlen - 1;
            memcpy(out, v, len);
            out[len] = '\0';
            return true;
        }
    }
    return false;
}

/* Handles every complete request in c's buffer. */
static void
serve_requests(server *sv, conn *c)
{
    for (;;) {
        c->buf[c->len] = '\0';
        char *end = strstr(c->buf, "\r\n\r\n");
        if (end == NULL)
            return;
        *end = '\0';
        char cl[32] = "0";
        header_get(c->buf, "content-length", cl, sizeof cl);
        size_t body_len = strtoul(cl, NULL, 10);
        size_t total = (size_t)(end - c->buf) + 4 + body_len;
        if (total > c->len) {
            *end = '\r';
            return;
        }
        request r = {.t_ms = mono_ms()};
        sscanf(c->buf, "%*s %63s", r.path);
        char ts[32] = "", sig[512] = "", ctype[64] = "";
        header_get(c->buf, "webhook-id", r.id, sizeof r.id);
        header_get(c->buf, "webhook-timestamp", ts, sizeof ts);
        header_get(c->buf, "webhook-signature", sig, sizeof sig);
        header_get(c->buf, "content-type", ctype, sizeof ctype);
        r.ts = strtoll(ts, NULL, 10);
        r.json = strcmp(ctype, "application/json") == 0;
        sscanf(r.id, "k%d-%d", &r.key, &r.seq);
        const char *body = end + 4;
        r.sig_each = vg_webhook_verify(&sv->keys[0], 1, r.id, r.ts, body, body_len, sig) &&
                     vg_webhook_verify(&sv->keys[1], 1, r.id, r.ts, body, body_len, sig);

        char extra[256] = "";
        r.status = sv->respond(sv, &r, extra, sizeof extra);
        sv->answered++;
        pthread_mutex_lock(&sv->mu);
        if (sv->nreqs < MAX_REQS)
            sv->reqs[sv->nreqs++] = r;
        pthread_mutex_unlock(&sv->mu);
        if (r.status != 0) {
            char out[512];
            int n = snprintf(out, sizeof out, "HTTP/1.1 %d Scripted\r\nContent-Length: 0\r\n%s\r\n",
                             r.status, extra);
            (void)!send(c->fd, out, (size_t)n, MSG_NOSIGNAL);
        }
        memmove(c->buf, c->buf + total, c->len - total);
        c->len -= total;
    }
}

static void *
server_main(void *arg)
{
    server *sv = arg;
    static conn conns[MAX_CONNS]; /* one server runs at a time */
    size_t nconns = 0;
    while (!atomic_load(&sv->stop)) {
        struct pollfd fds[1 + MAX_CONNS];
        fds[0] = (struct pollfd){.fd = sv->lfd, .events = POLLIN};
        for (size_t i = 0; i < nconns; i++)
            fds[1 + i] = (struct pollfd){.fd = conns[i].fd, .events = POLLIN};
        if (poll(fds, 1 + nconns, 10) <= 0)
            continue;
        for (size_t i = nconns; i-- > 0;) {
            if (!(fds[1 + i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            conn *c = &conns[i];
            ssize_t got = recv(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len, 0);
            if (got <= 0) {
                close(c->fd);
                conns[i] = conns[--nconns];
                continue;
            }
            c->len += (size_t)got;
            serve_requests(sv, c);
        }
        if ((fds[0].revents & POLLIN) && nconns < MAX_CONNS) {
            int fd = accept(sv->lfd, NULL, NULL);
            if (fd >= 0) {
                conns[nconns].fd = fd;
                conns[nconns++].len = 0;
                pthread_mutex_lock(&sv->mu);
                sv->conns++;
                pthread_mutex_unlock(&sv->mu);
            }
        }
    }
    for (size_t i = 0; i < nconns; i++)
        close(conns[i].fd);
    return NULL;
}

/* A free loopback port (bound, then released). */
static int
free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t alen = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &alen);
    close(fd);
    return ntohs(a.sin_port);
}

/* Starts sv answering with respond on 127.0.0.1:port (0: any free port). */
static void
server_start(server *sv, respond_fn *respond, int port)
{
    memset(sv, 0, sizeof *sv);
    pthread_mutex_init(&sv->mu, NULL);
    sv->respond = respond;
    char why[160];
    assert_int_equal(vg_whsec_decode(SECRET1, &sv->keys[0], why, sizeof why), VG_OK);
    assert_int_equal(vg_whsec_decode(SECRET2, &sv->keys[1], why, sizeof why), VG_OK);
    sv->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(sv->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons((uint16_t)port)};
    assert_int_equal(bind(sv->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(sv->lfd, 64), 0);
    socklen_t alen = sizeof a;
    getsockname(sv->lfd, (struct sockaddr *)&a, &alen);
    sv->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&sv->thread, NULL, server_main, sv), 0);
}

static void
server_stop(server *sv)
{
    atomic_store(&sv->stop, true);
    pthread_join(sv->thread, NULL);
    close(sv->lfd);
    pthread_mutex_destroy(&sv->mu);
}

static int
server_count(server *sv)
{
    pthread_mutex_lock(&sv->mu);
    int n = sv->nreqs;
    pthread_mutex_unlock(&sv->mu);
    return n;
}

static int
respond_ok(server *sv, const request *r, char *extra, size_t extralen)
{
    (void)sv, (void)r, (void)extra, (void)extralen;
    return 200;
}

static int
respond_flaky(server *sv, const request *r, char *extra, size_t extralen)
{
    (void)r, (void)extra, (void)extralen;
    return sv->answered < sv->fail_first ? 503 : 200;
}

/* 503 for key 0 (a hot key the endpoint refuses), 200 for the others */
static int
respond_hot_key_fails(server *sv, const request *r, char *extra, size_t extralen)
{
    (void)sv, (void)extra, (void)extralen;
    return r->key == 0 ? 503 : 200;
}

static int
respond_gone(server *sv, const request *r, char *extra, size_t extralen)
{
    (void)sv, (void)r, (void)extra, (void)extralen;
    return 410;
}

static int
respond_500(server *sv, const request *r, char *extra, size_t extralen)
{
    (void)sv, (void)r, (void)extra, (void)extralen;
    return 500;
}

static int
respond_silent(server *sv, const request *r, char *extra, size_t extralen)
{
    (void)sv, (void)r, (void)extra, (void)extralen;
    return 0;
}

static int
respond_redirect_once(server *sv, const request *r, char *extra, size_t extralen)
{
    (void)r;
    if (sv->answered > 0)
        return 200;
    snprintf(extra, extralen, "Location: http://127.0.0.1:%d/elsewhere\r\n", sv->port);
    return 302;
}

/* 503 with Retry-After in seconds, then 503 with Retry-After as an HTTP date
 * two seconds ahead, then 200. */
static int
respond_retry_after(server *sv, const request *r, char *extra, size_t extralen)
{
    (void)r;
    if (sv->answered == 0) {
        snprintf(extra, extralen, "Retry-After: 1\r\n");
        return 503;
    }
    if (sv->answered == 1) {
        time_t t = time(NULL) + 2;
        struct tm tm;
        gmtime_r(&t, &tm);
        char date[64];
        strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        snprintf(extra, extralen, "Retry-After: %s\r\n", date);
        return 503;
    }
    return 200;
}

/* ---- The sink's side --------------------------------------------------- */

/* What the sink reported, through done() and attempt(). */
typedef struct results {
    pthread_mutex_t mu;
    int outcome[MAX_SEQ]; /* 0: not reported, 1 + vg_sink_outcome */
    int reports;
    int odd; /* reports or attempts that should not have happened */
    int attempts;
    long status[64];
    char error[64][200]; /* "" for a success */
} results;

static results res;

static void
on_done(void *ctx, uint64_t seq, vg_sink_outcome outcome)
{
    results *r = ctx;
    /* on the sink's thread: no cmocka asserts here, the test checks r->odd */
    pthread_mutex_lock(&r->mu);
    if (seq >= MAX_SEQ || r->outcome[seq] != 0)
        r->odd++; /* out of range, or reported twice */
    else
        r->outcome[seq] = 1 + (int)outcome;
    r->reports++;
    pthread_mutex_unlock(&r->mu);
}

static void
on_attempt(void *ctx, const char *sink, const char *alert_id, int attempt, long status,
           double latency_s, const char *error)
{
    results *r = ctx;
    (void)alert_id, (void)attempt;
    pthread_mutex_lock(&r->mu);
    if (strcmp(sink, "webhook:test") != 0 || latency_s < 0)
        r->odd++;
    if (r->attempts < 64) {
        r->status[r->attempts] = status;
        snprintf(r->error[r->attempts], sizeof r->error[0], "%s", error ? error : "");
    }
    r->attempts++;
    pthread_mutex_unlock(&r->mu);
}

static int
attempts(void)
{
    pthread_mutex_lock(&res.mu);
    int n = res.attempts;
    pthread_mutex_unlock(&res.mu);
    return n;
}

static const char *const secrets[] = {SECRET1, SECRET2};

/* A conf for the test sink; the caller sets url, schedule and the rest. */
static vg_sink_conf
test_conf(const char *url, const int64_t *retry_ms, size_t nretry)
{
    return (vg_sink_conf){.type = "webhook",
                          .name = "webhook:test",
                          .url = url,
                          .secrets = secrets,
                          .nsecrets = 2,
                          .retry_ms = retry_ms,
                          .nretry = nretry,
                          .allow_private = true,
                          .max_in_flight = 4,
                          .attempt = on_attempt,
                          .attempt_ctx = &res};
}

static void *
open_sink(const vg_sink_conf *conf)
{
    memset(&res, 0, sizeof res);
    pthread_mutex_init(&res.mu, NULL);
    const vg_sink_type *t = vg_sink_find("webhook");
    assert_non_null(t);
    void *self = NULL;
    char why[256] = "";
    vg_err err = t->open(conf, on_done, &res, &self, why, sizeof why);
    if (err != VG_OK)
        fail_msg("open: %s", why);
    return self;
}

/* Closes the sink; nothing it reported may have been odd. */
static void
close_sink(void *self)
{
    vg_sink_find("webhook")->close(self);
    assert_int_equal(res.odd, 0);
}

/* Offers nkeys * per_key records, keys interleaved, seq 1 upward; records
 * of key k are "k<k>-<seq>". */
static void
offer(void *self, int first_seq, int nkeys, int per_key)
{
    const vg_sink_type *t = vg_sink_find("webhook");
    int seq = first_seq;
    for (int i = 0; i < per_key; i++)
        for (int k = 0; k < nkeys; k++, seq++) {
            char id[32], key[16], json[128];
            snprintf(id, sizeof id, "k%d-%d", k, seq);
            snprintf(key, sizeof key, "card-%d", k);
            int n = snprintf(json, sizeof json, "{\"id\":\"%s\",\"key\":\"%s\",\"seq\":%d}", id,
                             key, seq);
            vg_outrec r = {.seq = (uint64_t)seq,
                           .rule = "card_testing",
                           .id = id,
                           .key = key,
                           .json = json,
                           .len = (size_t)n,
                           .time_ms = 1700000000000};
            assert_int_equal(t->deliver(self, &r, 1), VG_OK);
        }
}

static void
url_of(char *out, size_t n, const server *sv)
{
    snprintf(out, n, "http://127.0.0.1:%d/hook", sv->port);
}

/* Asserts that the attempts at record id (in server order) were no closer
 * together than the schedule says. */
static void
assert_backoff_respected(server *sv, const char *id, const int64_t *retry_ms, size_t nretry)
{
    int64_t prev = -1;
    size_t fails = 0;
    for (int i = 0; i < sv->nreqs; i++) {
        const request *r = &sv->reqs[i];
        if (strcmp(r->id, id) != 0)
            continue;
        if (prev >= 0) {
            assert_true(fails >= 1 && fails <= nretry);
            if (r->t_ms - prev < retry_ms[fails - 1])
                fail_msg("%s: attempt %zu came %lld ms after the last, before its %lld ms backoff",
                         id, fails + 1, (long long)(r->t_ms - prev),
                         (long long)retry_ms[fails - 1]);
        }
        prev = r->t_ms;
        fails++;
    }
}

/* ---- Tests ------------------------------------------------------------- */

static void
test_webhook_open_explains_what_to_write_instead(void **state)
{
    (void)state;
    const vg_sink_type *t = vg_sink_find("webhook");
    assert_non_null(t);
    bool found = false;
    for (size_t i = 0; vg_sink_types[i] != NULL; i++)
        found |= strcmp(vg_sink_types[i], "webhook") == 0;
    assert_true(found);

    static const int64_t neg[] = {50, -5};
    static const int64_t one[] = {50};
    static const char *const bad[] = {"whsec_!!!"};
    static const char *const mixed[] = {"whsec_!!!", SECRET1};
    struct {
        vg_sink_conf conf;
        const char *want; /* in *why; NULL: opens */
    } cases[] = {
        {test_conf(NULL, one, 1), "needs a url: write url: https://"},
        {test_conf("ftp://example.com/x", one, 1), "is not http:// or https://: write url:"},
        {test_conf("http://", one, 1), "is not a valid URL"},
        {test_conf("http://example.com/x", neg, 2), "retry_schedule entry 2 is negative"},
        {test_conf("http://example.com/x", one, 0), "retry_schedule is empty: write at least"},
        {test_conf("http://example.com/x", one, 1), NULL},
        {test_conf("https://example.com/x", NULL, 0), NULL}, /* the default schedule */
    };
    vg_sink_conf nosecret = test_conf("http://example.com/x", one, 1);
    nosecret.nsecrets = 0;
    vg_sink_conf badsecret = nosecret;
    badsecret.secrets = bad;
    badsecret.nsecrets = 1;
    vg_sink_conf mixedsecret = nosecret;
    mixedsecret.secrets = mixed;
    mixedsecret.nsecrets = 2;

    for (size_t i = 0; i < VG_ARRAY_LEN(cases) + 3; i++) {
        const vg_sink_conf *c = i < VG_ARRAY_LEN(cases)        ? &cases[i].conf
                                : i == VG_ARRAY_LEN(cases)     ? &nosecret
                                : i == VG_ARRAY_LEN(cases) + 1 ? &badsecret
                                                               : &mixedsecret;
        const char *want = i < VG_ARRAY_LEN(cases)    ? cases[i].want
                           : i == VG_ARRAY_LEN(cases) ? "needs a signing secret: write secrets:"
                           : i == VG_ARRAY_LEN(cases) + 1
                               ? "a webhook secret does not decode"
                               /* one bad among good ones too: the rotation's new key */
                               : "a webhook secret does not decode (secret 1:";
        void *self = NULL;
        char why[256] = "";
        vg_err err = t->open(c, on_done, &res, &self, why, sizeof why);
        if (want == NULL) {
            if (err != VG_OK)
                fail_msg("case %zu: expected to open, got: %s", i, why);
            t->close(self);
        } else {
            assert_int_equal(err, VG_EINVAL);
            if (strstr(why, want) == NULL)
                fail_msg("case %zu: expected '%s' in: %s", i, want, why);
            assert_null(strstr(why, "!!!")); /* a secret is never quoted */
        }
    }
}

static void
test_webhook_delivers_signed_posts_over_reused_connections(void **state)
{
    (void)state;
    server sv;
    server_start(&sv, respond_ok, 0);
    char url[64];
    url_of(url, sizeof url, &sv);
    static const int64_t sched[] = {50};
    vg_sink_conf conf = test_conf(url, sched, 1);
    void *self = open_sink(&conf);
    const vg_sink_type *t = vg_sink_find("webhook");

    offer(self, 1, 3, 8); /* 24 records over 3 keys */
    assert_int_equal(t->flush(self, 5.0), VG_OK);
    vg_sink_health h;
    t->health(self, &h);
    close_sink(self);
    server_stop(&sv);

    for (int seq = 1; seq <= 24; seq++)
        assert_int_equal(res.outcome[seq], 1 + VG_SINK_DELIVERED);
    assert_int_equal(sv.nreqs, 24);
    int64_t now = (int64_t)time(NULL);
    for (int i = 0; i < sv.nreqs; i++) {
        const request *r = &sv.reqs[i];
        assert_string_equal(r->path, "/hook");
        assert_true(r->sig_each);
        assert_true(r->json);
        assert_true(r->ts > now - 30 && r->ts <= now);
    }
    assert_true(sv.conns >= 1 && sv.conns <= 4); /* max_in_flight connections, reused */
    assert_true(h.ok);
    assert_false(h.disabled);
    assert_int_equal(h.delivered, 24);
    assert_int_equal(h.failed, 0);
    assert_int_equal(h.dead, 0);
    assert_int_equal(h.in_flight, 0);
    assert_int_equal(res.attempts, 24);
}

static void
test_webhook_503_then_recovery_delivers_all_in_key_order_after_backoff(void **state)
{
    (void)state;
    server sv;
    server_start(&sv, respond_flaky, 0);
    sv.fail_first = 10;
    char url[64];
    url_of(url, sizeof url, &sv);
    static const int64_t sched[] = {50, 100, 200, 400, 800};
    vg_sink_conf conf = test_conf(url, sched, VG_ARRAY_LEN(sched));
    void *self = open_sink(&conf);
    const vg_sink_type *t = vg_sink_find("webhook");

    offer(self, 1, 4, 5); /* 20 records; key k holds seq k+1, k+5, ... */
    assert_int_equal(t->flush(self, 8.0), VG_OK);
    vg_sink_health h;
    t->health(self, &h);
    close_sink(self);
    server_stop(&sv);

    for (int seq = 1; seq <= 20; seq++)
        assert_int_equal(res.outcome[seq], 1 + VG_SINK_DELIVERED);
    assert_int_equal(h.delivered, 20);
    assert_int_equal(h.failed, 10);
    assert_int_equal(sv.nreqs, 30);
    /* per key: a record is first tried only after the one before it was
     * delivered, and delivered records come in seq order */
    for (int k = 0; k < 4; k++) {
        int last_seq = 0;
        int64_t last_ok_ms = -1;
        for (int i = 0; i < sv.nreqs; i++) {
            const request *r = &sv.reqs[i];
            if (r->key != k)
                continue;
            assert_true(r->seq >= last_seq);
            if (r->seq > last_seq) /* the first attempt at a record */
                assert_true(r->t_ms >= last_ok_ms);
            last_seq = r->seq;
            if (r->status == 200)
                last_ok_ms = r->t_ms;
        }
        assert_int_equal(last_seq, 17 + k);
    }
    for (int seq = 1; seq <= 20; seq++) {
        char id[32];
        snprintf(id, sizeof id, "k%d-%d", (seq - 1) % 4, seq);
        assert_backoff_respected(&sv, id, sched, VG_ARRAY_LEN(sched));
    }
}

static void
test_webhook_honours_retry_after_seconds_and_date(void **state)
{
    (void)state;
    server sv;
    server_start(&sv, respond_retry_after, 0);
    char url[64];
    url_of(url, sizeof url, &sv);
    static const int64_t sched[] = {50, 50, 50};
    vg_sink_conf conf = test_conf(url, sched, VG_ARRAY_LEN(sched));
    void *self = open_sink(&conf);
    const vg_sink_type *t = vg_sink_find("webhook");

    offer(self, 1, 1, 1);
    assert_int_equal(t->flush(self, 6.0), VG_OK);
    close_sink(self);
    server_stop(&sv);

    assert_int_equal(res.outcome[1], 1 + VG_SINK_DELIVERED);
    assert_int_equal(sv.nreqs, 3);
    /* Retry-After: 1 -> at least 1000 ms; the date two seconds ahead, read at
     * a whole second, at least 1000 ms */
    assert_true(sv.reqs[1].t_ms - sv.reqs[0].t_ms >= 1000);
    assert_true(sv.reqs[2].t_ms - sv.reqs[1].t_ms >= 1000);
}

static void
test_webhook_410_disables_and_dead_letters_pending_and_future(void **state)
{
    (void)state;
    server sv;
    server_start(&sv, respond_gone, 0);
    char url[64];
    url_of(url, sizeof url, &sv);
    static const int64_t sched[] = {50, 100};
    vg_sink_conf conf = test_conf(url, sched, VG_ARRAY_LEN(sched));
    conf.max_in_flight = 2;
    void *self = open_sink(&conf);
    const vg_sink_type *t = vg_sink_find("webhook");

    offer(self, 1, 3, 2); /* 6 records */
    assert_int_equal(t->flush(self, 5.0), VG_OK);
    int seen = server_count(&sv);
    assert_true(seen >= 1 && seen <= 2); /* only what was in flight reached it */
    offer(self, 7, 2, 1);                /* after the 410 */
    assert_int_equal(t->flush(self, 5.0), VG_OK);
    vg_sink_health h;
    t->health(self, &h);
    close_sink(self);
    server_stop(&sv);

    for (int seq = 1; seq <= 8; seq++)
        assert_int_equal(res.outcome[seq], 1 + VG_SINK_DEAD);
    assert_int_equal(sv.nreqs, seen);
    assert_true(h.disabled);
    assert_false(h.ok);
    assert_int_equal(h.dead, 8);
    assert_int_equal(h.delivered, 0);
    assert_non_null(strstr(h.last_error, "410"));
}

static void
test_webhook_3xx_is_a_failure_and_is_not_followed(void **state)
{
    (void)state;
    server sv;
    server_start(&sv, respond_redirect_once, 0);
    char url[64];
    url_of(url, sizeof url, &sv);
    static const int64_t sched[] = {50};
    vg_sink_conf conf = test_conf(url, sched, 1);
    void *self = open_sink(&conf);
    const vg_sink_type *t = vg_sink_find("webhook");

    offer(self, 1, 1, 1);
    assert_int_equal(t->flush(self, 5.0), VG_OK);
    vg_sink_health h;
    t->health(self, &h);
    close_sink(self);
    server_stop(&sv);

    assert_int_equal(res.outcome[1], 1 + VG_SINK_DELIVERED);
    assert_int_equal(sv.nreqs, 2);
    assert_string_equal(sv.reqs[0].path, "/hook");
    assert_string_equal(sv.reqs[1].path, "/hook"); /* the retry, not /elsewhere */
    assert_int_equal(res.status[0], 302);
    assert_non_null(strstr(res.error[0], "redirects are not followed"));
    assert_int_equal(h.failed, 1);
    assert_true(h.ok); /* the last attempt worked */
}

static void
test_webhook_exhausted_schedule_dead_letters(void **state)
{
    (void)state;
    server sv;
    server_start(&sv, respond_500, 0);
    char url[64];
    url_of(url, sizeof url, &sv);
    static const int64_t sched[] = {50, 100, 200};
    vg_sink_conf conf = test_conf(url, sched, VG_ARRAY_LEN(sched));
    void *self = open_sink(&conf);
    const vg_sink_type *t = vg_sink_find("webhook");

    offer(self, 1, 1, 1);
    assert_int_equal(t->flush(self, 5.0), VG_OK);
    vg_sink_health h;
    t->health(self, &h);
    close_sink(self);
    server_stop(&sv);

    assert_int_equal(res.outcome[1], 1 + VG_SINK_DEAD);
    assert_int_equal(sv.nreqs, 4); /* the first try and one per delay */
    assert_backoff_respected(&sv, "k0-1", sched, VG_ARRAY_LEN(sched));
    assert_int_equal(res.attempts, 4);
    assert_int_equal(res.status[3], 500);
    assert_false(h.ok);
    assert_int_equal(h.failed, 4);
    assert_int_equal(h.dead, 1);
    assert_string_equal(h.last_error, "HTTP 500");
}

static void
test_webhook_refused_connection_is_retried(void **state)
{
    (void)state;
    int port = free_port(); /* nothing listens there yet */
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/hook", port);
    static const int64_t sched[] = {300, 300, 300, 300, 1600};
    vg_sink_conf conf = test_conf(url, sched, VG_ARRAY_LEN(sched));
    void *self = open_sink(&conf);
    const vg_sink_type *t = vg_sink_find("webhook");

    offer(self, 1, 1, 1);
    for (int i = 0; i < 500 && attempts() == 0; i++)
        sleep_ms(10);
    assert_true(attempts() >= 1);
    server sv;
    server_start(&sv, respond_ok, port);
    assert_int_equal(t->flush(self, 5.0), VG_OK);
    close_sink(self);
    server_stop(&sv);

    assert_int_equal(res.outcome[1], 1 + VG_SINK_DELIVERED);
    assert_int_equal(res.status[0], 0);
    assert_true(res.error[0][0] != '\0');
    assert_true(res.attempts >= 2);
    assert_int_equal(sv.nreqs, 1);
}

static void
test_webhook_guard_refuses_private_targets_without_allow_private(void **state)
{
    (void)state;
    server sv;
    server_start(&sv, respond_ok, 0);
    char url[64];
    url_of(url, sizeof url, &sv);
    static const int64_t sched[] = {20, 20};
    vg_sink_conf conf = test_conf(url, sched, VG_ARRAY_LEN(sched));
    conf.allow_private = false;
    void *self = open_sink(&conf);
    const vg_sink_type *t = vg_sink_find("webhook");

    offer(self, 1, 1, 1);
    assert_int_equal(t->flush(self, 5.0), VG_OK);
    close_sink(self);
    assert_int_equal(res.outcome[1], 1 + VG_SINK_DEAD);
    assert_int_equal(res.attempts, 3); /* refused, retried, dead-lettered */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(res.status[i], 0);
        if (strstr(res.error[i], "address 127.0.0.1 is loopback; set allow_private") == NULL)
            fail_msg("unexpected error: %s", res.error[i]);
    }
    assert_int_equal(server_count(&sv), 0); /* no connection reached the receiver */
    server_stop(&sv);

    /* other forbidden targets, refused before any packet leaves */
    struct {
        const char *url, *want;
    } cases[] = {
        {"http://[::1]:9/hook", "address ::1 is loopback"},
        {"http://[::ffff:127.0.0.1]:9/hook",
         "address ::ffff:127.0.0.1 is loopback (an IPv4 address inside IPv6)"},
        {"http://169.254.169.254/latest/meta-data/",
         "address 169.254.169.254 is link-local (the cloud metadata service)"},
        {"http://10.1.2.3:9/hook", "address 10.1.2.3 is private"},
        {"http://172.20.0.1:9/hook", "address 172.20.0.1 is private"},
        {"http://192.168.1.1:9/hook", "address 192.168.1.1 is private"},
        {"http://100.64.0.1:9/hook", "address 100.64.0.1 is carrier-grade NAT"},
        {"http://0.0.0.0:9/hook", "address 0.0.0.0 is unspecified"},
        {"http://[fd00:ec2::254]:9/hook", "address fd00:ec2::254 is private"},
        {"http://[fe80::1]:9/hook", "address fe80::1 is link-local"},
    };
    static const int64_t once[] = {0}; /* one retry, at once */
    for (size_t i = 0; i < VG_ARRAY_LEN(cases); i++) {
        conf = test_conf(cases[i].url, once, 1);
        conf.allow_private = false;
        self = open_sink(&conf);
        offer(self, 1, 1, 1);
        assert_int_equal(t->flush(self, 5.0), VG_OK);
        close_sink(self);
        assert_int_equal(res.outcome[1], 1 + VG_SINK_DEAD);
        if (strstr(res.error[0], cases[i].want) == NULL)
            fail_msg("%s: expected '%s', got: %s", cases[i].url, cases[i].want, res.error[0]);
    }
}

static void
test_webhook_attempt_timeout_is_a_failure(void **state)
{
    (void)state;
    server sv;
    server_start(&sv, respond_silent, 0);
    char url[64];
    url_of(url, sizeof url, &sv);
    static const int64_t sched[] = {10};
    vg_sink_conf conf = test_conf(url, sched, 1);
    conf.timeout_s = 0.3;
    void *self = open_sink(&conf);
    const vg_sink_type *t = vg_sink_find("webhook");

    offer(self, 1, 1, 1);
    assert_int_equal(t->flush(self, 5.0), VG_OK);
    close_sink(self);
    server_stop(&sv);

    assert_int_equal(res.outcome[1], 1 + VG_SINK_DEAD);
    assert_int_equal(res.attempts, 2);
    assert_non_null(strstr(res.error[0], "timed out"));
    assert_int_equal(sv.nreqs, 2);
}

static void
test_webhook_uses_its_proxy_setting_and_ignores_the_environment(void **state)
{
    (void)state;
    server sv;
    server_start(&sv, respond_ok, 0);
    char url[64], proxy[64];
    url_of(url, sizeof url, &sv);
    static const int64_t sched[] = {50};
    /* no proxy configured: a proxy in the environment is not used */
    setenv("http_proxy", "http://127.0.0.1:9", 1);
    setenv("HTTP_PROXY", "http://127.0.0.1:9", 1);
    vg_sink_conf conf = test_conf(url, sched, 1);
    void *self = open_sink(&conf);
    const vg_sink_type *t = vg_sink_find("webhook");
    offer(self, 1, 1, 1);
    assert_int_equal(t->flush(self, 5.0), VG_OK);
    close_sink(self);
    unsetenv("http_proxy");
    unsetenv("HTTP_PROXY");
    assert_int_equal(res.outcome[1], 1 + VG_SINK_DELIVERED);
    assert_int_equal(res.attempts, 1);

    /* a configured proxy is: the receiver sees a proxy request */
    snprintf(proxy, sizeof proxy, "http://127.0.0.1:%d", sv.port);
    conf = test_conf("http://hooks.example.invalid/vigil", sched, 1);
    conf.proxy = proxy;
    self = open_sink(&conf);
    offer(self, 1, 1, 1);
    assert_int_equal(t->flush(self, 5.0), VG_OK);
    close_sink(self);
    server_stop(&sv);
    assert_int_equal(res.outcome[1], 1 + VG_SINK_DELIVERED);
    assert_int_equal(sv.nreqs, 2);
    assert_string_equal(sv.reqs[0].path, "/hook");
    assert_string_equal(sv.reqs[1].path, "http://hooks.example.invalid/vigil");
    assert_true(sv.reqs[1].sig_each);
}

static void
test_webhook_deliver_refuses_beyond_sixteen_per_slot(void **state)
{
    (void)state;
    /* a receiver that never answers: the records are in flight or ready,
     * none waits out a backoff */
    server sv;
    server_start(&sv, respond_silent, 0);
    char url[64];
    url_of(url, sizeof url, &sv);
    static const int64_t sched[] = {60000};
    vg_sink_conf conf = test_conf(url, sched, 1);
    conf.max_in_flight = 1;
    void *self = open_sink(&conf);
    const vg_sink_type *t = vg_sink_find("webhook");

    offer(self, 1, 4, 4); /* 16 = max_in_flight * 16 */
    vg_outrec more = {.seq = 17, .id = "k9-17", .key = "card-9", .json = "{}", .len = 2};
    assert_int_equal(t->deliver(self, &more, 1), VG_ELIMIT);
    assert_int_equal(t->flush(self, 0.05), VG_ELIMIT); /* still holding them */
    vg_sink_health h;
    t->health(self, &h);
    assert_int_equal(h.in_flight, 16);
    close_sink(self); /* unfinished records are freed, not reported */
    server_stop(&sv);
    assert_int_equal(res.reports, 0);
}

/* Offers one record (seq, key k) until the sink takes it, as the engine
 * would offer it again; false if it did not within 5 s. */
static bool
offer_until_taken(void *self, int seq, int k)
{
    const vg_sink_type *t = vg_sink_find("webhook");
    char id[32], key[16], json[128];
    snprintf(id, sizeof id, "k%d-%d", k, seq);
    snprintf(key, sizeof key, "card-%d", k);
    int n = snprintf(json, sizeof json, "{\"id\":\"%s\",\"seq\":%d}", id, seq);
    vg_outrec r = {
        .seq = (uint64_t)seq, .rule = "r", .id = id, .key = key, .json = json, .len = (size_t)n};
    for (int64_t until = mono_ms() + 5000; mono_ms() < until; sleep_ms(5)) {
        vg_err err = t->deliver(self, &r, 1);
        if (err == VG_OK)
            return true;
        assert_int_equal(err, VG_ELIMIT);
    }
    return false;
}

static void
test_webhook_a_failing_key_does_not_hold_back_the_others(void **state)
{
    (void)state;
    /* key 0's alerts are refused and wait out a long backoff; more of them
     * than the sink holds (16 with one slot) pile up behind the first: the
     * other keys' alerts must still be taken and delivered */
    server sv;
    server_start(&sv, respond_hot_key_fails, 0);
    char url[64];
    url_of(url, sizeof url, &sv);
    static const int64_t sched[] = {60000};
    vg_sink_conf conf = test_conf(url, sched, 1);
    conf.max_in_flight = 1;
    void *self = open_sink(&conf);

    assert_true(offer_until_taken(self, 1, 0));
    for (int64_t until = mono_ms() + 5000; attempts() < 1 && mono_ms() < until;)
        sleep_ms(5);
    assert_int_equal(attempts(), 1); /* refused: key 0 now waits a minute */
    int seq = 2;
    for (; seq <= 40; seq++) /* behind it: parked, not counted as held */
        assert_true(offer_until_taken(self, seq, 0));
    for (int k = 1; k <= 40; k++, seq++)
        if (!offer_until_taken(self, seq, k))
            fail_msg("key %d's alert was not taken while key 0 waits out its backoff", k);
    int delivered = 0;
    for (int64_t until = mono_ms() + 5000; mono_ms() < until; sleep_ms(10)) {
        delivered = 0;
        pthread_mutex_lock(&res.mu);
        for (int q = 41; q < seq; q++)
            delivered += res.outcome[q] == 1 + VG_SINK_DELIVERED;
        pthread_mutex_unlock(&res.mu);
        if (delivered == 40)
            break;
    }
    assert_int_equal(delivered, 40);
    pthread_mutex_lock(&res.mu);
    for (int q = 1; q <= 40; q++)
        assert_int_equal(res.outcome[q], 0); /* key 0: still waiting, in order */
    pthread_mutex_unlock(&res.mu);
    vg_sink_health h;
    vg_sink_find("webhook")->health(self, &h);
    assert_int_equal(h.in_flight, 40);
    close_sink(self);
    server_stop(&sv);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_webhook_open_explains_what_to_write_instead),
        cmocka_unit_test(test_webhook_delivers_signed_posts_over_reused_connections),
        cmocka_unit_test(test_webhook_503_then_recovery_delivers_all_in_key_order_after_backoff),
        cmocka_unit_test(test_webhook_honours_retry_after_seconds_and_date),
        cmocka_unit_test(test_webhook_410_disables_and_dead_letters_pending_and_future),
        cmocka_unit_test(test_webhook_3xx_is_a_failure_and_is_not_followed),
        cmocka_unit_test(test_webhook_exhausted_schedule_dead_letters),
        cmocka_unit_test(test_webhook_refused_connection_is_retried),
        cmocka_unit_test(test_webhook_guard_refuses_private_targets_without_allow_private),
        cmocka_unit_test(test_webhook_attempt_timeout_is_a_failure),
        cmocka_unit_test(test_webhook_uses_its_proxy_setting_and_ignores_the_environment),
        cmocka_unit_test(test_webhook_deliver_refuses_beyond_sixteen_per_slot),
        cmocka_unit_test(test_webhook_a_failing_key_does_not_hold_back_the_others),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
