/*
 * webhook.c - the webhook sink (SPEC section 6): each alert POSTed as JSON
 * with Standard Webhooks headers, retried on a schedule, dead-lettered when
 * the schedule runs out or the endpoint answers 410 Gone.
 *
 * Threads. deliver() runs on the engine's thread: it copies the records into
 * an inbox under the sink's mutex and wakes the sink's own thread with
 * curl_multi_wakeup(). Everything else - the per-key queues, the backoff
 * timers, the curl multi handle and its transfers - belongs to that one
 * thread and takes no lock. The mutex guards only what both sides touch: the
 * inbox, the count of records held (deliver's limit, flush's wait), the stop
 * flag and the health counters.
 *
 * Order. Records are grouped by rule key: a key's records form a FIFO whose
 * head alone is active (in flight, or waiting out its backoff), so one key's
 * alerts reach the endpoint in outbox order while other keys proceed. A key
 * whose head may go now sits in the ready list; one in backoff sits in the
 * timer list, sorted by due time.
 *
 * done() is called on the sink's thread without the mutex held, and a record
 * stops counting as held only after done() returned, so a flush() that
 * returns VG_OK means every done() call has finished; one that times out
 * returns VG_ELIMIT.
 *
 * Limits. deliver() refuses (VG_ELIMIT) once max_in_flight * 16 records are
 * held that could go now or soon: records parked behind a key waiting out
 * its backoff do not count, so one failing key (a hot merchant whose alerts
 * the endpoint refuses) does not hold back the other keys. Parked records
 * are bounded too, at 64 times that (then deliver() refuses everything
 * until the keys move). A batch offered below the limits is taken whole. A Retry-After longer than
 * a day counts as a day, so an endpoint cannot park an alert for good.
 *
 * Address guard. Unless allow_private is set, every socket curl opens goes
 * through wh_opensocket(), which looks at the address curl is about to
 * connect to (after DNS, so a name that resolves to 127.0.0.1 is caught, and
 * so is DNS rebinding) and refuses loopback, private, link-local (cloud
 * metadata included), CGNAT, unspecified and multicast addresses, and their
 * IPv4-mapped forms. With a proxy the socket goes to the proxy, so the guard
 * judges the proxy's address; the proxy is then the one to filter targets.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "vg_sign.h"
#include "vg_sink.h"

#define WH_MAX_IN_FLIGHT 64            /* default requests at once */
#define WH_MAX_IN_FLIGHT_LIMIT 10000   /* the most open() accepts */
#define WH_HELD_PER_SLOT 16            /* records held per request slot */
#define WH_PARKED_FACTOR 64            /* parked records allowed, per max_held */
#define WH_TIMEOUT_S 10.0              /* default limit of one attempt */
#define WH_RETRY_AFTER_MAX_MS 86400000 /* a Retry-After longer than a day is read as a day */
#define WH_POLL_MAX_MS 1000            /* the thread looks at its clock at least this often */

/* SPEC section 5's retry_schedule default: 5s, 5m, 30m, 2h, 5h, 10h, 14h, 20h, 24h. */
static const int64_t default_retry_ms[] = {5000,     300000,   1800000,  7200000, 18000000,
                                           36000000, 50400000, 72000000, 86400000};

/* One record taken by deliver(); a single allocation with its strings. */
typedef struct wh_rec {
    struct wh_rec *next; /* the inbox, then its key's FIFO */
    uint64_t seq;
    const char *id, *key, *json; /* into data[] */
    size_t len;                  /* bytes of json */
    unsigned failures;           /* attempts of this record that failed */
    char data[];
} wh_rec;

typedef enum wh_key_state {
    KEY_READY,   /* in the ready list: the head may go when a slot is free */
    KEY_WAITING, /* in the timer list: the head waits out its backoff */
    KEY_SENDING  /* the head is in flight */
} wh_key_state;

/* The records of one rule key, oldest first; only the head is active. */
typedef struct wh_key {
    struct wh_key *hnext; /* hash chain */
    struct wh_key *lnext; /* the ready list or the timer list */
    wh_rec *head, *tail;
    size_t n;       /* records in the FIFO */
    int64_t due_ms; /* monotonic: when the head may be tried again (KEY_WAITING) */
    wh_key_state state;
    uint32_t hash;
    char name[];
} wh_key;

/* One attempt in flight. */
typedef struct wh_xfer {
    CURL *easy; /* NULL: the slot is free */
    struct curl_slist *headers;
    wh_key *key;
    int64_t start_ms;       /* monotonic */
    int64_t retry_after_ms; /* the answer's Retry-After; -1: none */
    char refused[160];      /* why the address guard refused a connect; "" if it did not */
    char errbuf[CURL_ERROR_SIZE];
} wh_xfer;

typedef struct wh_sink {
    /* Set by open(), read-only afterwards. */
    char *name, *url, *proxy;
    vg_whkey *keys;
    size_t nkeys;
    int64_t *retry_ms;
    size_t nretry;
    long timeout_ms;
    bool allow_private;
    size_t max_in_flight, max_held;
    vg_sink_done_fn *done;
    void *ctx;
    void (*attempt)(void *ctx, const char *sink, const char *alert_id, int attempt, long status,
                    double latency_s, const char *error);
    void *attempt_ctx;

    /* The sink's thread alone. */
    CURLM *multi; /* curl_multi_wakeup() is the one call other threads make on it */
    CURLSH *share;
    wh_xfer *xfers;     /* max_in_flight slots */
    size_t *free_slots; /* a stack of free slot numbers */
    size_t nfree;
    wh_key **buckets; /* the keys that hold records */
    size_t nbuckets;  /* a power of two */
    wh_key *ready, *ready_tail;
    wh_key *timers; /* sorted by due_ms */
    bool gone;      /* answered 410: everything left is dead */
    uint64_t rng;   /* jitter */

    /* Guarded by mu. */
    pthread_mutex_t mu;
    pthread_cond_t idle; /* signalled when held drops to 0 */
    wh_rec *inbox, *inbox_tail;
    size_t held;   /* records taken by deliver() and not yet reported */
    size_t parked; /* of those, the records of keys waiting out a backoff */
    bool stop;
    vg_sink_health health; /* in_flight is held */

    pthread_t thread;
} wh_sink;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void
curl_init_once(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t
rng_next(wh_sink *s)
{
    /* xorshift64: jitter needs spread, not secrecy */
    uint64_t x = s->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return s->rng = x;
}

static uint32_t
hash_str(const char *p)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h;
}

/* ---- The address guard ------------------------------------------------- */

/* What an IPv4 address (host order) is, when it is one we refuse; else NULL. */
static const char *
guard_v4(uint32_t a)
{
    if (a >> 24 == 0)
        return "unspecified";
    if (a >> 24 == 127)
        return "loopback";
    if (a >> 24 == 10 || (a & 0xfff00000u) == 0xac100000u || (a & 0xffff0000u) == 0xc0a80000u)
        return "private";
    if (a == 0xa9fea9feu)
        return "link-local (the cloud metadata service)";
    if ((a & 0xffff0000u) == 0xa9fe0000u)
        return "link-local";
    if ((a & 0xffc00000u) == 0x64400000u)
        return "carrier-grade NAT (shared, 100.64.0.0/10)";
    if (a >= 0xe0000000u)
        return "multicast or reserved";
    return NULL;
}

/* The same for IPv6; *mapped is set when the verdict is about an embedded
 * IPv4 address. */
static const char *
guard_v6(const uint8_t b[16], bool *mapped)
{
    static const uint8_t zero[12] = {0};
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    uint32_t v4 = (uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15];
    *mapped = false;
    if (memcmp(b, zero, 12) == 0) {
        if (v4 == 0)
            return "unspecified";
        if (v4 == 1)
            return "loopback";
        *mapped = true; /* IPv4-compatible, ::a.b.c.d */
        return guard_v4(v4);
    }
    if (memcmp(b, v4mapped, 12) == 0 || memcmp(b, nat64, 12) == 0) {
        *mapped = true;
        return guard_v4(v4);
    }
    if ((b[0] & 0xfe) == 0xfc)
        return "private (unique local, fc00::/7)";
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
        return "link-local";
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0)
        return "site-local";
    if (b[0] == 0xff)
        return "multicast";
    return NULL;
}

/* CURLOPT_OPENSOCKETFUNCTION: every connect curl makes for a transfer. */
static curl_socket_t
wh_opensocket(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr)
{
    wh_xfer *x = clientp;
    (void)purpose;
    const char *what = NULL;
    bool mapped = false;
    char text[INET6_ADDRSTRLEN] = "?";
    if (addr->family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&addr->addr;
        what = guard_v4(ntohl(in->sin_addr.s_addr));
        inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
    } else if (addr->family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&addr->addr;
        what = guard_v6(in6->sin6_addr.s6_addr, &mapped);
        inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
    } else {
        what = "not an internet address";
    }
    if (what != NULL) {
        snprintf(x->refused, sizeof x->refused,
                 "address %s is %s%s; set allow_private: true to deliver there", text, what,
                 mapped ? " (an IPv4 address inside IPv6)" : "");
        return CURL_SOCKET_BAD;
    }
    return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

/* ---- Finishing records ------------------------------------------------- */

/* Reports rec and frees it. */
static void
wh_finish(wh_sink *s, wh_rec *rec, vg_sink_outcome outcome)
{
    s->done(s->ctx, rec->seq, outcome);
    pthread_mutex_lock(&s->mu);
    if (outcome == VG_SINK_DELIVERED)
        s->health.delivered++;
    else
        s->health.dead++;
    if (--s->held == 0)
        pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->mu);
    free(rec);
}

/* ---- Keys -------------------------------------------------------------- */

static wh_key *
key_find(wh_sink *s, const char *name, uint32_t h)
{
    for (wh_key *k = s->buckets[h & (s->nbuckets - 1)]; k != NULL; k = k->hnext)
        if (k->hash == h && strcmp(k->name, name) == 0)
            return k;
    return NULL;
}

static void
ready_push(wh_sink *s, wh_key *k)
{
    k->state = KEY_READY;
    k->lnext = NULL;
    if (s->ready_tail != NULL)
        s->ready_tail->lnext = k;
    else
        s->ready = k;
    s->ready_tail = k;
}

/* Records that start or stop waiting behind a backoff (delta may be
 * negative): deliver() does not count them against max_held. */
static void
park(wh_sink *s, ptrdiff_t delta)
{
    pthread_mutex_lock(&s->mu);
    s->parked = (size_t)((ptrdiff_t)s->parked + delta);
    pthread_mutex_unlock(&s->mu);
}

static void
timer_push(wh_sink *s, wh_key *k, int64_t due_ms)
{
    park(s, (ptrdiff_t)k->n);
    k->state = KEY_WAITING;
    k->due_ms = due_ms;
    wh_key **p = &s->timers;
    while (*p != NULL && (*p)->due_ms <= due_ms)
        p = &(*p)->lnext;
    k->lnext = *p;
    *p = k;
}

/* Takes rec into its key's FIFO; a new key goes to the ready list. */
static void
key_add(wh_sink *s, wh_rec *rec)
{
    uint32_t h = hash_str(rec->key);
    wh_key *k = key_find(s, rec->key, h);
    if (k != NULL) {
        k->tail->next = rec;
        k->tail = rec;
        k->n++;
        if (k->state == KEY_WAITING)
            park(s, 1);
        return;
    }
    size_t n = strlen(rec->key) + 1;
    k = malloc(sizeof *k + n);
    if (k == NULL) {
        /* out of memory: give up on it; the dead-letter list can re-send it */
        wh_finish(s, rec, VG_SINK_DEAD);
        return;
    }
    memcpy(k->name, rec->key, n);
    k->hash = h;
    k->head = k->tail = rec;
    k->n = 1;
    k->hnext = s->buckets[h & (s->nbuckets - 1)];
    s->buckets[h & (s->nbuckets - 1)] = k;
    ready_push(s, k);
}

/* Drops k (which is in neither list) from the table and frees it. */
static void
key_free(wh_sink *s, wh_key *k)
{
    wh_key **p = &s->buckets[k->hash & (s->nbuckets - 1)];
    while (*p != k)
        p = &(*p)->hnext;
    *p = k->hnext;
    free(k);
}

/* Takes the finished head off k and returns it: the key's next record
 * becomes ready, or the key goes away. */
static wh_rec *
key_pop(wh_sink *s, wh_key *k)
{
    wh_rec *rec = k->head;
    k->head = rec->next;
    k->n--;
    if (k->head == NULL)
        key_free(s, k);
    else
        ready_push(s, k);
    return rec;
}

/* 410 Gone: every record not in flight is dead, now and from now on. */
static void
wh_disable(wh_sink *s)
{
    s->gone = true;
    pthread_mutex_lock(&s->mu);
    s->health.disabled = true;
    s->health.ok = false;
    pthread_mutex_unlock(&s->mu);
    for (size_t b = 0; b < s->nbuckets; b++) {
        wh_key **p = &s->buckets[b];
        while (*p != NULL) {
            wh_key *k = *p;
            /* a head in flight finishes first (the endpoint may yet take it) */
            wh_rec *rec = k->state == KEY_SENDING ? k->head->next : k->head;
            while (rec != NULL) {
                wh_rec *next = rec->next;
                wh_finish(s, rec, VG_SINK_DEAD);
                rec = next;
            }
            if (k->state == KEY_SENDING) {
                k->head->next = NULL;
                k->tail = k->head;
                k->n = 1;
                p = &k->hnext;
            } else {
                *p = k->hnext;
                free(k);
            }
        }
    }
    s->ready = s->ready_tail = s->timers = NULL; /* every key in them is gone */
    pthread_mutex_lock(&s->mu);
    s->parked = 0;
    pthread_mutex_unlock(&s->mu);
}

/* ---- Attempts ---------------------------------------------------------- */

static size_t
wh_discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

/* Retry-After: delay-seconds or an HTTP date; -1 when it is neither. */
static int64_t
parse_retry_after(const char *v, size_t len)
{
    while (len > 0 && (*v == ' ' || *v == '\t'))
        v++, len--;
    while (len > 0 &&
           (v[len - 1] == ' ' || v[len - 1] == '\t' || v[len - 1] == '\r' || v[len - 1] == '\n'))
        len--;
    if (len == 0 || len >= 64)
        return -1;
    char text[64];
    memcpy(text, v, len);
    text[len] = '\0';
    int64_t ms;
    if (strspn(text, "0123456789") == len) {
        if (len > 9)
            return WH_RETRY_AFTER_MAX_MS;
        ms = strtoll(text, NULL, 10) * 1000;
    } else {
        time_t t = curl_getdate(text, NULL);
        if (t == -1)
            return -1;
        ms = ((int64_t)t - (int64_t)time(NULL)) * 1000;
        if (ms < 0)
            ms = 0;
    }
    return ms > WH_RETRY_AFTER_MAX_MS ? WH_RETRY_AFTER_MAX_MS : ms;
}

/* CURLOPT_HEADERFUNCTION: picks Retry-After out of the final answer. */
static size_t
wh_header(char *p, size_t size, size_t n, void *ud)
{
    wh_xfer *x = ud;
    size_t len = size * n;
    static const char name[] = "retry-after:";
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0)
        x->retry_after_ms = -1; /* a new answer (after a 1xx) */
    else if (len > sizeof name - 1 && strncasecmp(p, name, sizeof name - 1) == 0)
        x->retry_after_ms = parse_retry_after(p + sizeof name - 1, len - (sizeof name - 1));
    return len;
}

/* Appends line to x's request headers (curl copies it) and empties line. */
static bool
header_add(wh_xfer *x, vg_buf *line)
{
    struct curl_slist *h = curl_slist_append(x->headers, line->data);
    if (h == NULL)
        return false;
    x->headers = h;
    line->len = 0;
    return true;
}

/* Starts one attempt at k's head. False when it could not be set up (out of
 * memory); the caller treats that as a failed attempt. */
static bool
wh_start(wh_sink *s, wh_key *k)
{
    wh_rec *rec = k->head;
    wh_xfer *x = &s->xfers[s->free_slots[--s->nfree]];
    memset(x, 0, sizeof *x);
    x->key = k;
    x->retry_after_ms = -1;
    x->start_ms = now_ms();
    k->state = KEY_SENDING;

    /* one timestamp for the header and the signature */
    long long ts = (long long)time(NULL);
    vg_buf line = {0};
    bool ok =
        vg_buf_puts(&line, "content-type: application/json") == VG_OK && header_add(x, &line) &&
        vg_buf_printf(&line, "webhook-id: %s", rec->id) == VG_OK && header_add(x, &line) &&
        vg_buf_printf(&line, "webhook-timestamp: %lld", ts) == VG_OK && header_add(x, &line) &&
        vg_buf_puts(&line, "webhook-signature: ") == VG_OK &&
        vg_webhook_sign(s->keys, s->nkeys, rec->id, ts, rec->json, rec->len, &line) == VG_OK &&
        header_add(x, &line) && vg_buf_puts(&line, "Expect:") == VG_OK && /* no 100 wait */
        header_add(x, &line);
    vg_buf_free(&line);
    if (ok)
        ok = (x->easy = curl_easy_init()) != NULL;
    if (!ok)
        goto fail;
    CURL *e = x->easy;
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_URL, s->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, rec->json);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rec->len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "vigil");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L); /* a 3xx is a failed attempt */
    curl_easy_setopt(e, CURLOPT_PROXY, s->proxy);    /* "" ignores http_proxy & co */
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, s->timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_SHARE, s->share);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, wh_discard);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, wh_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    if (!s->allow_private) {
        curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, wh_opensocket);
        curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, x);
    }
    if (curl_multi_add_handle(s->multi, e) != CURLM_OK)
        goto fail;
    return true;

fail:
    if (x->easy != NULL)
        curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->headers);
    x->easy = NULL;
    s->free_slots[s->nfree++] = (size_t)(x - s->xfers);
    return false;
}

/* Records a failed attempt at k's head and schedules the next one, or
 * dead-letters the record when the schedule is exhausted. */
static void
wh_failed(wh_sink *s, wh_key *k, int64_t retry_after_ms)
{
    wh_rec *rec = k->head;
    unsigned i = rec->failures++;
    if (s->gone || i >= s->nretry) {
        wh_finish(s, key_pop(s, k), VG_SINK_DEAD);
        return;
    }
    int64_t delay = s->retry_ms[i];
    if (delay > 0)
        delay += (int64_t)(rng_next(s) % (uint64_t)(delay / 10 + 1)); /* jitter: +0..10% */
    if (retry_after_ms > delay)
        delay = retry_after_ms;
    timer_push(s, k, now_ms() + delay);
}

static void
note_attempt(wh_sink *s, const wh_rec *rec, long status, double latency_s, const char *error)
{
    pthread_mutex_lock(&s->mu);
    s->health.ok = error == NULL && !s->health.disabled;
    if (error != NULL) {
        s->health.failed++;
        /* cut to fit (the error may be longer than the health record keeps) */
        size_t n = strnlen(error, sizeof s->health.last_error - 1);
        memcpy(s->health.last_error, error, n);
        s->health.last_error[n] = '\0';
    }
    pthread_mutex_unlock(&s->mu);
    if (s->attempt != NULL)
        s->attempt(s->attempt_ctx, s->name, rec->id, (int)rec->failures + 1, status, latency_s,
                   error);
}

/* A transfer ended with rc. */
static void
wh_complete(wh_sink *s, wh_xfer *x, CURLcode rc)
{
    wh_key *k = x->key;
    wh_rec *rec = k->head;
    long status = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    double latency_s = (double)(now_ms() - x->start_ms) / 1000.0;
    char error[256];
    const char *why = NULL;
    if (rc != CURLE_OK) {
        status = 0;
        why = x->refused[0] ? x->refused : x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc);
        snprintf(error, sizeof error, "%s", why);
        why = error;
    } else if (status < 200 || status > 299) {
        snprintf(error, sizeof error, "HTTP %ld%s", status,
                 status == 410                    ? " Gone: the endpoint is disabled"
                 : status >= 300 && status <= 399 ? " (redirects are not followed)"
                                                  : "");
        why = error;
    }
    int64_t retry_after_ms = x->retry_after_ms;
    curl_multi_remove_handle(s->multi, x->easy);
    curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->headers);
    x->easy = NULL;
    x->headers = NULL;
    s->free_slots[s->nfree++] = (size_t)(x - s->xfers);

    note_attempt(s, rec, status, latency_s, why);
    /* after a 410, wh_disable() left k only this head, so key_pop() frees k */
    if (why == NULL) {
        wh_finish(s, key_pop(s, k), VG_SINK_DELIVERED);
        return;
    }
    if (status == 410 && !s->gone)
        wh_disable(s);
    if (s->gone)
        wh_finish(s, key_pop(s, k), VG_SINK_DEAD);
    else
        wh_failed(s, k, retry_after_ms);
}

/* ---- The sink's thread ------------------------------------------------- */

static void *
wh_thread(void *arg)
{
    wh_sink *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        wh_rec *in = s->inbox;
        s->inbox = s->inbox_tail = NULL;
        bool stop = s->stop;
        pthread_mutex_unlock(&s->mu);
        while (in != NULL) {
            wh_rec *next = in->next;
            in->next = NULL;
            if (s->gone)
                wh_finish(s, in, VG_SINK_DEAD);
            else
                key_add(s, in);
            in = next;
        }
        if (stop)
            break;

        int64_t now = now_ms();
        while (s->timers != NULL && s->timers->due_ms <= now) {
            wh_key *k = s->timers;
            s->timers = k->lnext;
            park(s, -(ptrdiff_t)k->n);
            ready_push(s, k);
        }
        while (s->ready != NULL && s->nfree > 0) {
            wh_key *k = s->ready;
            s->ready = k->lnext;
            if (s->ready == NULL)
                s->ready_tail = NULL;
            if (!wh_start(s, k)) {
                note_attempt(s, k->head, 0, 0.0, "out of memory");
                wh_failed(s, k, -1);
            }
        }

        int running = 0;
        curl_multi_perform(s->multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(s->multi, &left)) != NULL) {
            if (m->msg != CURLMSG_DONE)
                continue;
            char *x = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &x);
            wh_complete(s, (wh_xfer *)x, m->data.result);
        }

        /* sleep until curl, the next backoff or deliver() needs us */
        long wait_ms = WH_POLL_MAX_MS;
        curl_multi_timeout(s->multi, &wait_ms);
        if (wait_ms < 0 || wait_ms > WH_POLL_MAX_MS)
            wait_ms = WH_POLL_MAX_MS;
        if (s->ready != NULL && s->nfree > 0)
            wait_ms = 0;
        if (s->timers != NULL) {
            int64_t until = s->timers->due_ms - now_ms();
            if (until < wait_ms)
                wait_ms = until < 0 ? 0 : (long)until;
        }
        curl_multi_poll(s->multi, NULL, 0, (int)wait_ms, NULL);
    }
    return NULL;
}

/* ---- The interface ----------------------------------------------------- */

static void
wh_free(wh_sink *s)
{
    if (s->xfers != NULL)
        for (size_t i = 0; i < s->max_in_flight; i++) {
            wh_xfer *x = &s->xfers[i];
            if (x->easy == NULL)
                continue;
            curl_multi_remove_handle(s->multi, x->easy);
            curl_easy_cleanup(x->easy);
            curl_slist_free_all(x->headers);
        }
    if (s->buckets != NULL)
        for (size_t b = 0; b < s->nbuckets; b++)
            for (wh_key *k = s->buckets[b], *kn; k != NULL; k = kn) {
                kn = k->hnext;
                for (wh_rec *r = k->head, *rn; r != NULL; r = rn) {
                    rn = r->next;
                    free(r);
                }
                free(k);
            }
    for (wh_rec *r = s->inbox, *rn; r != NULL; r = rn) {
        rn = r->next;
        free(r);
    }
    if (s->multi != NULL)
        curl_multi_cleanup(s->multi);
    if (s->share != NULL)
        curl_share_cleanup(s->share);
    if (s->keys != NULL) {
        explicit_bzero(s->keys, s->nkeys * sizeof *s->keys);
        free(s->keys);
    }
    free(s->xfers);
    free(s->free_slots);
    free(s->buckets);
    free(s->retry_ms);
    free(s->name);
    free(s->url);
    free(s->proxy);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->idle);
    free(s);
}

/* Checks the parts of conf that do not need allocation; writes *why. */
static bool
wh_check(const vg_sink_conf *conf, char *why, size_t whylen)
{
    if (conf->url == NULL || conf->url[0] == '\0') {
        snprintf(why, whylen,
                 "a webhook sink needs a url: write url: https://hooks.example.com/vigil");
        return false;
    }
    if (strncasecmp(conf->url, "http://", 7) != 0 && strncasecmp(conf->url, "https://", 8) != 0) {
        snprintf(why, whylen,
                 "webhook url '%s' is not http:// or https://: write url: "
                 "https://hooks.example.com/vigil",
                 conf->url);
        return false;
    }
    CURLU *u = curl_url();
    char *host = NULL;
    CURLUcode uc = u == NULL ? CURLUE_OUT_OF_MEMORY : curl_url_set(u, CURLUPART_URL, conf->url, 0);
    if (uc == CURLUE_OK)
        uc = curl_url_get(u, CURLUPART_HOST, &host, 0);
    curl_free(host);
    curl_url_cleanup(u);
    if (uc != CURLUE_OK) {
        snprintf(why, whylen,
                 "webhook url '%s' is not a valid URL (%s): write url: "
                 "https://hooks.example.com/vigil",
                 conf->url, curl_url_strerror(uc));
        return false;
    }
    if (conf->path != NULL) {
        snprintf(why, whylen, "a webhook sink takes no path: it posts to its url; remove path");
        return false;
    }
    if (conf->nsecrets == 0) {
        snprintf(why, whylen,
                 "a webhook sink needs a signing secret: write secrets: [whsec_...], "
                 "secret_files: [FILE] or secret_env: NAME");
        return false;
    }
    if (conf->retry_ms != NULL && conf->nretry == 0) {
        snprintf(why, whylen,
                 "retry_schedule is empty: write at least one delay, for example "
                 "retry_schedule: [5s, 5m, 30m]");
        return false;
    }
    for (size_t i = 0; conf->retry_ms != NULL && i < conf->nretry; i++)
        if (conf->retry_ms[i] < 0) {
            snprintf(why, whylen,
                     "retry_schedule entry %zu is negative (%lld ms): write delays of 0 or "
                     "more, for example retry_schedule: [5s, 5m, 30m]",
                     i + 1, (long long)conf->retry_ms[i]);
            return false;
        }
    if (!(conf->timeout_s >= 0) || conf->timeout_s > 86400) {
        snprintf(why, whylen,
                 "webhook timeout %g s is not between 0 and a day: write a number of "
                 "seconds such as 10",
                 conf->timeout_s);
        return false;
    }
    if (conf->max_in_flight > WH_MAX_IN_FLIGHT_LIMIT) {
        snprintf(why, whylen, "max_in_flight %zu is too large: write at most %d",
                 conf->max_in_flight, WH_MAX_IN_FLIGHT_LIMIT);
        return false;
    }
    return true;
}

static vg_err
wh_open(const vg_sink_conf *conf, vg_sink_done_fn *done, void *ctx, void **self, char *why,
        size_t whylen)
{
    if (!wh_check(conf, why, whylen))
        return VG_EINVAL;
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != CURLE_OK) {
        snprintf(why, whylen, "libcurl could not start: %s", curl_easy_strerror(curl_init_rc));
        return VG_EIO;
    }

    wh_sink *s = calloc(1, sizeof *s);
    if (s == NULL)
        return VG_ENOMEM;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->idle, &ca);
    pthread_condattr_destroy(&ca);
    vg_err err = VG_ENOMEM;

    /* the secrets: every one must decode (a typo in the rotation's new key
     * would otherwise show only when receivers switch to it) */
    s->keys = calloc(conf->nsecrets, sizeof *s->keys);
    if (s->keys == NULL)
        goto fail;
    char first_why[160] = "";
    size_t first_bad = 0;
    for (size_t i = 0; i < conf->nsecrets; i++) {
        char kwhy[160];
        if (conf->secrets[i] != NULL &&
            vg_whsec_decode(conf->secrets[i], &s->keys[s->nkeys], kwhy, sizeof kwhy) == VG_OK)
            s->nkeys++;
        else if (first_bad == 0) {
            first_bad = i + 1;
            snprintf(first_why, sizeof first_why, "%s",
                     conf->secrets[i] == NULL ? "it is missing" : kwhy);
        }
    }
    if (s->nkeys == 0 || first_bad != 0) {
        snprintf(why, whylen,
                 "%s (secret %zu: %s): write whsec_ followed by the base64 of the key, for "
                 "example whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                 conf->nsecrets == 0 ? "a webhook needs a secret"
                                     : "a webhook secret does not decode",
                 first_bad, first_why[0] ? first_why : "none given");
        err = VG_EINVAL;
        goto fail;
    }

    const int64_t *sched = conf->retry_ms != NULL ? conf->retry_ms : default_retry_ms;
    s->nretry = conf->retry_ms != NULL ? conf->nretry : VG_ARRAY_LEN(default_retry_ms);
    s->retry_ms = malloc(s->nretry * sizeof *s->retry_ms);
    if (s->retry_ms == NULL)
        goto fail;
    memcpy(s->retry_ms, sched, s->nretry * sizeof *s->retry_ms);

    s->name = strdup(conf->name != NULL ? conf->name : "webhook");
    s->url = strdup(conf->url);
    s->proxy = strdup(conf->proxy != NULL ? conf->proxy : "");
    if (s->name == NULL || s->url == NULL || s->proxy == NULL)
        goto fail;
    double timeout_s = conf->timeout_s > 0 ? conf->timeout_s : WH_TIMEOUT_S;
    s->timeout_ms = (long)(timeout_s * 1000.0 + 0.5);
    s->allow_private = conf->allow_private;
    s->max_in_flight = conf->max_in_flight > 0 ? conf->max_in_flight : WH_MAX_IN_FLIGHT;
    s->max_held = s->max_in_flight * WH_HELD_PER_SLOT;
    s->done = done;
    s->ctx = ctx;
    s->attempt = conf->attempt;
    s->attempt_ctx = conf->attempt_ctx;
    s->health.ok = true;

    s->xfers = calloc(s->max_in_flight, sizeof *s->xfers);
    s->free_slots = malloc(s->max_in_flight * sizeof *s->free_slots);
    for (s->nbuckets = 16; s->nbuckets < s->max_held; s->nbuckets *= 2)
        ;
    s->buckets = calloc(s->nbuckets, sizeof *s->buckets);
    if (s->xfers == NULL || s->free_slots == NULL || s->buckets == NULL)
        goto fail;
    for (size_t i = 0; i < s->max_in_flight; i++)
        s->free_slots[i] = s->max_in_flight - 1 - i;
    s->nfree = s->max_in_flight;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    s->rng = ((uint64_t)ts.tv_nsec << 20 ^ (uint64_t)ts.tv_sec ^ (uintptr_t)s) | 1;

    s->multi = curl_multi_init();
    s->share = curl_share_init();
    if (s->multi == NULL || s->share == NULL)
        goto fail;
    /* the multi handle pools connections; the share keeps TLS sessions for new ones */
    curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_multi_setopt(s->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)s->max_in_flight);
    curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS, (long)s->max_in_flight);

    if (pthread_create(&s->thread, NULL, wh_thread, s) != 0) {
        snprintf(why, whylen, "webhook sink: cannot start its thread");
        err = VG_EIO;
        goto fail;
    }
    *self = s;
    return VG_OK;

fail:
    if (err == VG_ENOMEM)
        snprintf(why, whylen, "webhook sink: out of memory");
    wh_free(s);
    return err;
}

static vg_err
wh_deliver(void *self, const vg_outrec *recs, size_t n)
{
    wh_sink *s = self;
    if (n == 0)
        return VG_OK;
    pthread_mutex_lock(&s->mu);
    bool full = s->held - s->parked >= s->max_held || s->held >= s->max_held * WH_PARKED_FACTOR;
    pthread_mutex_unlock(&s->mu);
    if (full)
        return VG_ELIMIT;

    /* copies made outside the lock; deliver has one caller at a time, so the
     * check above still holds (at worst a batch overshoots a limit once) */
    wh_rec *first = NULL, **tail = &first, *last = NULL;
    for (size_t i = 0; i < n; i++) {
        const vg_outrec *o = &recs[i];
        size_t lid = strlen(o->id) + 1, lkey = strlen(o->key) + 1;
        wh_rec *r = malloc(sizeof *r + lid + lkey + o->len + 1);
        if (r == NULL) {
            for (wh_rec *p = first, *pn; p != NULL; p = pn) {
                pn = p->next;
                free(p);
            }
            return VG_ENOMEM;
        }
        char *d = r->data;
        r->next = NULL;
        r->seq = o->seq;
        r->failures = 0;
        r->len = o->len;
        r->id = memcpy(d, o->id, lid);
        r->key = memcpy(d + lid, o->key, lkey);
        r->json = memcpy(d + lid + lkey, o->json, o->len);
        d[lid + lkey + o->len] = '\0';
        *tail = last = r;
        tail = &r->next;
    }
    pthread_mutex_lock(&s->mu);
    if (s->inbox_tail != NULL)
        s->inbox_tail->next = first;
    else
        s->inbox = first;
    s->inbox_tail = last;
    s->held += n;
    s->health.in_flight = s->held;
    pthread_mutex_unlock(&s->mu);
    curl_multi_wakeup(s->multi);
    return VG_OK;
}

static vg_err
wh_flush(void *self, double timeout_s)
{
    wh_sink *s = self;
    if (!(timeout_s > 0))
        timeout_s = 0;
    if (timeout_s > 1e9)
        timeout_s = 1e9;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    int64_t ns = (int64_t)until.tv_nsec + (int64_t)(timeout_s * 1e9);
    until.tv_sec += (time_t)(ns / 1000000000);
    until.tv_nsec = (long)(ns % 1000000000);
    pthread_mutex_lock(&s->mu);
    while (s->held > 0)
        if (pthread_cond_timedwait(&s->idle, &s->mu, &until) != 0)
            break;
    bool empty = s->held == 0;
    pthread_mutex_unlock(&s->mu);
    return empty ? VG_OK : VG_ELIMIT;
}

static void
wh_health(void *self, vg_sink_health *out)
{
    wh_sink *s = self;
    pthread_mutex_lock(&s->mu);
    *out = s->health;
    out->in_flight = s->held;
    pthread_mutex_unlock(&s->mu);
}

static void
wh_close(void *self)
{
    wh_sink *s = self;
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_mutex_unlock(&s->mu);
    curl_multi_wakeup(s->multi);
    pthread_join(s->thread, NULL);
    wh_free(s);
}

const vg_sink_type vg_sink_webhook = {
    .type = "webhook",
    .open = wh_open,
    .deliver = wh_deliver,
    .flush = wh_flush,
    .health = wh_health,
    .close = wh_close,
};
