/*
 * pub.c - the nng sink (SPEC section 6): alerts published on an nng PUB
 * socket listening on conf->url, one message per alert:
 *
 *     <rule name> NUL <alert JSON>
 *
 * nng's SUB filters on a prefix of the message, so the rule name is the
 * topic: a subscriber that subscribes to the name and its NUL (strlen + 1
 * bytes) gets exactly that rule's alerts; the name without the NUL also
 * matches every rule whose name begins with it; an empty subscription gets
 * everything.
 *
 * PUB semantics. Publishing never blocks and never waits for a subscriber:
 * an alert published while nobody is connected is gone, and one that finds a
 * subscriber's queue full (a slow reader) is dropped for that subscriber.
 * A record is reported delivered once nng_sendmsg() has taken it, which
 * means "published", not "received": for alerts that must arrive, use the
 * jsonl or webhook sink. Each subscriber's queue holds PUB_SENDBUF messages,
 * so a burst of alerts is not dropped at once by a reader that keeps up on
 * average.
 *
 * Like the file sinks it is synchronous: deliver() publishes on the engine's
 * thread and calls done() before it returns; health() may be called from
 * another thread, so the health record sits under a mutex.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>

#include "vg_sink.h"

#define PUB_SENDBUF 1024 /* messages queued per subscriber before PUB drops (nng's limit: 8192) */

typedef struct pub_sink {
    /* Set by open(), read-only afterwards. */
    nng_socket sock;
    char *url; /* for messages */
    vg_sink_done_fn *done;
    void *ctx;

    pthread_mutex_t mu; /* guards health */
    vg_sink_health health;
} pub_sink;

static vg_err
pub_open(const vg_sink_conf *conf, vg_sink_done_fn *done, void *ctx, void **self, char *why,
         size_t whylen)
{
    if (conf->url == NULL || conf->url[0] == '\0') {
        snprintf(why, whylen,
                 "an nng sink needs a url to listen on: write url: "
                 "tcp://127.0.0.1:7472 or url: ipc:///run/vigil/alerts.ipc");
        return VG_EINVAL;
    }
    if (conf->path != NULL) {
        snprintf(why, whylen,
                 "an nng sink takes no path: it publishes on its url; remove path (or write "
                 "url: ipc://%s to publish on a socket file)",
                 conf->path);
        return VG_EINVAL;
    }
    pub_sink *s = calloc(1, sizeof *s);
    if (s == NULL || (s->url = strdup(conf->url)) == NULL) {
        free(s);
        snprintf(why, whylen, "nng sink: out of memory");
        return VG_ENOMEM;
    }
    int rv = nng_pub0_open(&s->sock);
    if (rv != 0) {
        snprintf(why, whylen, "nng sink: cannot open a PUB socket: %s", nng_strerror(rv));
        free(s->url);
        free(s);
        return VG_EIO;
    }
    /* a larger queue only lowers drops: failing to set it is no reason to refuse */
    (void)nng_socket_set_int(s->sock, NNG_OPT_SENDBUF, PUB_SENDBUF);
    rv = nng_listen(s->sock, conf->url, NULL, 0);
    if (rv != 0) {
        if (rv == NNG_EADDRINUSE)
            snprintf(why, whylen,
                     "nng sink cannot listen on '%s': %s: another process (or another sink) "
                     "listens there; stop it or choose another address",
                     conf->url, nng_strerror(rv));
        else
            snprintf(why, whylen,
                     "nng sink cannot listen on '%s': %s: write a url such as "
                     "tcp://127.0.0.1:7472 or ipc:///run/vigil/alerts.ipc",
                     conf->url, nng_strerror(rv));
        nng_close(s->sock);
        free(s->url);
        free(s);
        return rv == NNG_ENOMEM ? VG_ENOMEM : VG_EINVAL;
    }
    s->done = done;
    s->ctx = ctx;
    s->health.ok = true;
    pthread_mutex_init(&s->mu, NULL);
    *self = s;
    return VG_OK;
}

static vg_err
pub_deliver(void *self, const vg_outrec *recs, size_t n)
{
    pub_sink *s = self;
    size_t sent = 0;
    int rv = 0;
    for (; sent < n; sent++) {
        const vg_outrec *r = &recs[sent];
        size_t lrule = strlen(r->rule) + 1; /* the topic and its NUL */
        nng_msg *m;
        if ((rv = nng_msg_alloc(&m, lrule + r->len)) != 0)
            break;
        char *body = nng_msg_body(m);
        memcpy(body, r->rule, lrule);
        memcpy(body + lrule, r->json, r->len);
        /* PUB never waits; NONBLOCK says so should that ever change */
        if ((rv = nng_sendmsg(s->sock, m, NNG_FLAG_NONBLOCK)) != 0) {
            nng_msg_free(m); /* a failed send leaves the message ours */
            break;
        }
        s->done(s->ctx, r->seq, VG_SINK_DELIVERED);
    }
    pthread_mutex_lock(&s->mu);
    s->health.delivered += sent;
    s->health.ok = rv == 0;
    if (rv != 0) {
        s->health.failed++;
        snprintf(s->health.last_error, sizeof s->health.last_error,
                 "publishing on %s failed: %s; %zu alerts will be offered again", s->url,
                 nng_strerror(rv), n - sent);
    }
    pthread_mutex_unlock(&s->mu);
    if (rv == 0)
        return VG_OK;
    return rv == NNG_ENOMEM ? VG_ENOMEM : VG_EIO;
}

static vg_err
pub_flush(void *self, double timeout_s)
{
    (void)self;
    (void)timeout_s;
    return VG_OK; /* every record was finished inside its deliver() */
}

static void
pub_health(void *self, vg_sink_health *out)
{
    pub_sink *s = self;
    pthread_mutex_lock(&s->mu);
    *out = s->health;
    out->in_flight = 0;
    pthread_mutex_unlock(&s->mu);
}

static void
pub_close(void *self)
{
    pub_sink *s = self;
    if (s == NULL)
        return;
    nng_close(s->sock); /* messages still queued for subscribers are dropped */
    pthread_mutex_destroy(&s->mu);
    free(s->url);
    free(s);
}

const vg_sink_type vg_sink_nng = {
    .type = "nng",
    .open = pub_open,
    .deliver = pub_deliver,
    .flush = pub_flush,
    .health = pub_health,
    .close = pub_close,
};
