/*
 * cmd_listen.c - `vigil webhook-listen`: a local receiver for the webhook
 * sink (SPEC section 6). It checks each POST's Standard Webhooks signature
 * with adapters/sign.c and prints what verified, so a webhook config can be
 * tried by hand and the end-to-end tests have a real HTTP receiver.
 *
 * nng's HTTP server calls the handler on its own threads, possibly several
 * at once: stdout, stderr and the set of seen ids are shared under one mutex.
 * Signals are blocked before the server starts (its threads inherit the
 * mask) and taken by sigwait() on the main thread.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "vg_sign.h"

#define LISTEN_MAX_KEYS 32
#define LISTEN_MAX_SOURCES 16          /* --secret-file and --secret-env each */
#define LISTEN_MAX_BODY (1024 * 1024)  /* bytes; nng answers 400 to more */
#define LISTEN_MAX_SECRET_FILE (65536) /* bytes */

static void
listen_usage(FILE *f)
{
    fprintf(f, "usage: vigil webhook-listen (--secret-file FILE | --secret-env NAME)... [options]\n"
               "\n"
               "A local receiver for the webhook sink, to try a config by hand and for tests.\n"
               "It takes HTTP POSTs on any path and checks their Standard Webhooks headers:\n"
               "webhook-id, webhook-timestamp and webhook-signature (space-separated\n"
               "\"v1,<base64 HMAC-SHA256 of id.timestamp.body>\" entries). When one of the\n"
               "signatures is valid under one of the secrets it answers 204 and prints the\n"
               "body on stdout as one line (line breaks in it become spaces), flushed at once;\n"
               "otherwise it answers 401 with the reason, and prints the reason on stderr.\n"
               "\n"
               "Options:\n"
               "      --listen ADDR       host:port to listen on (default: 127.0.0.1:7480)\n"
               "      --secret-file FILE  read secrets from FILE: whsec_... values (the whsec_\n"
               "                          prefix is optional) separated by whitespace\n"
               "                          (repeatable)\n"
               "      --secret-env NAME   read secrets, written the same way, from the\n"
               "                          environment variable NAME (repeatable)\n"
               "      --tolerance SEC     reject a webhook-timestamp more than SEC seconds\n"
               "                          before or after now (default: 300; 0: any time)\n"
               "      --status CODE       answer valid deliveries with CODE (200-599) instead\n"
               "                          of 204, to make a sender retry (503) or give up\n"
               "                          (410); they are still printed\n"
               "      --dedupe            print a delivery only the first time its webhook-id\n"
               "                          is seen (every attempt at one alert carries its id);\n"
               "                          it is answered as usual each time\n"
               "  -h, --help              show this help and exit\n"
               "\n"
               "Secrets are never taken from the command line, where other users can read\n"
               "them, and never printed. A delivery is valid when any of its signatures\n"
               "matches any of the secrets, so a sender rotating keys is accepted throughout.\n"
               "Methods other than POST are answered 405; bodies over 1 MiB, 400.\n"
               "SIGTERM or SIGINT: stop and exit 0.\n"
               "\n"
               "Exit status: 0 after SIGTERM or SIGINT, 1 the address cannot be listened on,\n"
               "64 usage error, 65 a secret that is not base64 of 1 to 128 bytes, 66 a secret\n"
               "file that cannot be read, 78 a --secret-env variable that is unset or empty.\n");
}

/* ---- The ids seen (--dedupe) ---------------------------------------------
 * An open-addressing set of copied strings, at most half full. It keeps
 * every id for the life of the process: this is a test receiver. */

typedef struct idset {
    char **slot;
    size_t cap, n;
} idset;

static size_t
id_hash(const char *s)
{
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return (size_t)h;
}

static char **
idset_find(char **slot, size_t cap, const char *id)
{
    size_t i = id_hash(id) & (cap - 1);
    while (slot[i] != NULL && strcmp(slot[i], id) != 0)
        i = (i + 1) & (cap - 1);
    return &slot[i];
}

static bool
idset_grow(idset *s)
{
    size_t cap = s->cap ? s->cap * 2 : 64;
    char **slot = calloc(cap, sizeof *slot);
    if (slot == NULL)
        return false;
    for (size_t i = 0; i < s->cap; i++)
        if (s->slot[i] != NULL)
            *idset_find(slot, cap, s->slot[i]) = s->slot[i];
    free(s->slot);
    s->slot = slot;
    s->cap = cap;
    return true;
}

/* False when id was there already. Out of memory counts as new: printing
 * an alert twice is better than losing it. */
static bool
idset_add(idset *s, const char *id)
{
    if (2 * (s->n + 1) > s->cap && !idset_grow(s))
        return true;
    char **p = idset_find(s->slot, s->cap, id);
    if (*p != NULL)
        return false;
    if ((*p = strdup(id)) != NULL)
        s->n++;
    return true;
}

static void
idset_free(idset *s)
{
    for (size_t i = 0; i < s->cap; i++)
        free(s->slot[i]);
    free(s->slot);
}

/* ---- The receiver ---------------------------------------------------------- */

typedef struct listener {
    vg_whkey keys[LISTEN_MAX_KEYS];
    size_t nkeys;
    int64_t tolerance_s; /* 0: any timestamp */
    uint16_t status;     /* the answer to a valid delivery */
    bool dedupe;
    pthread_mutex_t mu; /* stdout, stderr, seen */
    idset seen;
} listener;

static void
respond(nng_aio *aio, uint16_t status, const char *text)
{
    nng_http_res *res;
    int rv = nng_http_res_alloc(&res);
    if (rv != 0) {
        nng_aio_finish(aio, rv);
        return;
    }
    if ((rv = nng_http_res_set_status(res, status)) == 0 && text != NULL &&
        (rv = nng_http_res_set_header(res, "Content-Type", "text/plain")) == 0)
        rv = nng_http_res_copy_data(res, text, strlen(text));
    if (rv != 0) {
        nng_http_res_free(res);
        nng_aio_finish(aio, rv);
        return;
    }
    nng_aio_set_output(aio, 0, res);
    nng_aio_finish(aio, 0);
}

/* Parses a webhook-timestamp: decimal Unix seconds, nothing else. */
static bool
parse_timestamp(const char *s, int64_t *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return false;
    int64_t v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (INT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (*s - '0');
    }
    if (*s != '\0')
        return false;
    *out = v;
    return true;
}

/* Why the delivery is refused (into why), or NULL when it is valid. */
static const char *
check_delivery(const listener *L, nng_http_req *req, const void *body, size_t len, char *why,
               size_t whylen)
{
    const char *id = nng_http_req_get_header(req, "webhook-id");
    const char *ts = nng_http_req_get_header(req, "webhook-timestamp");
    const char *sig = nng_http_req_get_header(req, "webhook-signature");
    int64_t t;
    if (id == NULL || id[0] == '\0')
        return "no webhook-id header";
    if (ts == NULL)
        return "no webhook-timestamp header";
    if (!parse_timestamp(ts, &t))
        return "webhook-timestamp is not Unix seconds";
    if (sig == NULL)
        return "no webhook-signature header";
    int64_t skew = (int64_t)time(NULL) - t;
    if (L->tolerance_s > 0 && (skew > L->tolerance_s || skew < -L->tolerance_s)) {
        snprintf(why, whylen, "webhook-timestamp is %" PRId64 " s %s now (tolerance %" PRId64 " s)",
                 skew < 0 ? -skew : skew, skew < 0 ? "after" : "before", L->tolerance_s);
        return why;
    }
    if (!vg_webhook_verify(L->keys, L->nkeys, id, t, body, len, sig))
        return "no signature matches";
    return NULL;
}

/* Prints s on f, at most max bytes, control characters as '?': ids come
 * from the network and stderr may be a terminal. */
static void
put_printable(FILE *f, const char *s, size_t max)
{
    size_t i = 0;
    for (; s[i] != '\0' && i < max; i++)
        fputc((unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i], f);
    if (s[i] != '\0')
        fputs("...", f);
}

/* One line on stdout: JSON needs no line breaks outside strings and allows
 * none raw inside them, so turning them into spaces keeps an alert intact. */
static void
print_body(const char *body, size_t len)
{
    for (size_t i = 0; i < len; i++)
        fputc(body[i] == '\n' || body[i] == '\r' ? ' ' : body[i], stdout);
    fputc('\n', stdout);
    fflush(stdout);
}

static void
on_delivery(nng_aio *aio)
{
    nng_http_req *req = nng_aio_get_input(aio, 0);
    nng_http_handler *h = nng_aio_get_input(aio, 1);
    listener *L = nng_http_handler_get_data(h);
    void *body = NULL;
    size_t len = 0;
    nng_http_req_get_data(req, &body, &len);
    char why[160];
    const char *reason = check_delivery(L, req, body, len, why, sizeof why);
    const char *id = nng_http_req_get_header(req, "webhook-id");
    pthread_mutex_lock(&L->mu);
    if (reason != NULL) {
        fputs("vigil webhook-listen: rejected ", stderr);
        put_printable(stderr, id ? id : "(no id)", 128);
        fprintf(stderr, ": %s\n", reason);
        fflush(stderr);
    } else if (!L->dedupe || idset_add(&L->seen, id)) {
        print_body(body, len);
    }
    pthread_mutex_unlock(&L->mu);
    if (reason != NULL) {
        char text[200];
        snprintf(text, sizeof text, "%s\n", reason);
        respond(aio, 401, text);
    } else {
        respond(aio, L->status, L->status == 204 ? NULL : "valid; answered as --status says\n");
    }
}

/* Starts the server on addr; *srv on success, else a message on stderr. */
static int
serve(listener *L, const char *addr, nng_url **url, nng_http_server **srv)
{
    char u[512];
    snprintf(u, sizeof u, "http://%s", addr);
    nng_http_handler *h = NULL;
    int rv = nng_url_parse(url, u);
    if (rv == 0)
        rv = nng_http_server_hold(srv, *url);
    if (rv == 0)
        rv = nng_http_handler_alloc(&h, "/", on_delivery);
    if (rv == 0 && (rv = nng_http_handler_set_tree(h)) == 0 &&
        (rv = nng_http_handler_set_method(h, "POST")) == 0 &&
        (rv = nng_http_handler_collect_body(h, true, LISTEN_MAX_BODY)) == 0 &&
        (rv = nng_http_handler_set_data(h, L, NULL)) == 0)
        rv = nng_http_server_add_handler(*srv, h);
    else if (h != NULL)
        nng_http_handler_free(h);
    if (rv == 0)
        rv = nng_http_server_start(*srv);
    if (rv != 0)
        fprintf(stderr, "vigil webhook-listen: can't listen on %s: %s\n", addr, nng_strerror(rv));
    return rv;
}

/* ---- Secrets --------------------------------------------------------------- */

/* Adds the secrets of one file; an exit code, 0 on success. */
static int
secrets_from_file(listener *L, const char *path)
{
    vg_buf text = {0};
    char why[200] = "";
    vg_err err = vg_read_file_max(path, LISTEN_MAX_SECRET_FILE, &text);
    if (err == VG_ENOENT || err == VG_EIO) {
        fprintf(stderr, "vigil webhook-listen: can't read secret file '%s': %s\n", path,
                strerror(errno));
        return VG_EXIT_NOINPUT;
    }
    if (err == VG_OK)
        err = vg_whsec_decode_list(text.data, L->keys, LISTEN_MAX_KEYS, &L->nkeys, why, sizeof why);
    if (text.data != NULL)
        explicit_bzero(text.data, text.len);
    vg_buf_free(&text);
    if (err == VG_OK)
        return 0;
    const char *msg = why[0] ? why : err == VG_ELIMIT ? "larger than 64 KiB" : vg_strerror(err);
    fprintf(stderr, "vigil webhook-listen: secret file '%s': %s\n", path, msg);
    return err == VG_ENOMEM ? 1 : VG_EXIT_DATAERR;
}

static int
secrets_from_env(listener *L, const char *name)
{
    const char *v = getenv(name);
    char why[200] = "";
    if (v == NULL || v[0] == '\0') {
        fprintf(stderr, "vigil webhook-listen: the environment variable %s (--secret-env) is %s\n",
                name, v == NULL ? "not set" : "empty");
        return VG_EXIT_CONFIG;
    }
    if (vg_whsec_decode_list(v, L->keys, LISTEN_MAX_KEYS, &L->nkeys, why, sizeof why) == VG_OK)
        return 0;
    fprintf(stderr, "vigil webhook-listen: environment variable %s: %s\n", name, why);
    return VG_EXIT_DATAERR;
}

/* ---- The command ----------------------------------------------------------- */

typedef struct listen_opts {
    const char *addr;
    const char *files[LISTEN_MAX_SOURCES], *envs[LISTEN_MAX_SOURCES];
    size_t nfiles, nenvs;
} listen_opts;

/* Parses argv into *o and L's settings; an exit code, or -1 to go on. */
static int
parse_args(int argc, char **argv, listen_opts *o, listener *L)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"secret-file", required_argument, NULL, 'f'},
        {"secret-env", required_argument, NULL, 'e'},
        {"tolerance", required_argument, NULL, 'T'},
        {"status", required_argument, NULL, 'S'},
        {"dedupe", no_argument, NULL, 'D'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = "webhook-listen";
    int c;
    char *end;
    long v;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'l': o->addr = optarg; break;
        case 'f':
            if (o->nfiles == LISTEN_MAX_SOURCES)
                return cli_usage_error(cmd, "more than %d --secret-file", LISTEN_MAX_SOURCES);
            o->files[o->nfiles++] = optarg;
            break;
        case 'e':
            if (o->nenvs == LISTEN_MAX_SOURCES)
                return cli_usage_error(cmd, "more than %d --secret-env", LISTEN_MAX_SOURCES);
            o->envs[o->nenvs++] = optarg;
            break;
        case 'T':
            v = strtol(optarg, &end, 10);
            if (*end || end == optarg || v < 0 || v > 100L * 365 * 86400)
                return cli_usage_error(cmd, "--tolerance wants seconds, like 300 (0: any time)");
            L->tolerance_s = v;
            break;
        case 'S':
            v = strtol(optarg, &end, 10);
            if (*end || end == optarg || v < 200 || v > 599)
                return cli_usage_error(cmd, "--status wants an HTTP status from 200 to 599");
            L->status = (uint16_t)v;
            break;
        case 'D': L->dedupe = true; break;
        case 'h': listen_usage(stdout); return VG_EXIT_OK;
        default: return cli_usage_error(cmd, "unknown option");
        }
    }
    if (optind < argc)
        return cli_usage_error(cmd,
                               "unexpected argument '%s' (secrets are read from "
                               "--secret-file or --secret-env, never from arguments)",
                               argv[optind]);
    if (o->nfiles == 0 && o->nenvs == 0)
        return cli_usage_error(cmd, "give the secrets: --secret-file FILE or --secret-env NAME");
    return -1;
}

static int
load_secrets(listener *L, const listen_opts *o)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < o->nfiles; i++)
        rc = secrets_from_file(L, o->files[i]);
    for (size_t i = 0; rc == 0 && i < o->nenvs; i++)
        rc = secrets_from_env(L, o->envs[i]);
    return rc;
}

/* Serves until SIGTERM or SIGINT; an exit code. */
static int
run(listener *L, const char *addr)
{
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    pthread_mutex_init(&L->mu, NULL);
    nng_url *url = NULL;
    nng_http_server *srv = NULL;
    int rc = 1;
    if (serve(L, addr, &url, &srv) == 0) {
        fprintf(stderr, "vigil webhook-listen: listening on http://%s/ with %zu key%s\n", addr,
                L->nkeys, L->nkeys == 1 ? "" : "s");
        int sig;
        while (sigwait(&sigs, &sig) != 0)
            ;
        rc = VG_EXIT_OK;
    }
    /* stopped before L goes: no handler runs after this */
    if (srv != NULL) {
        nng_http_server_stop(srv);
        nng_http_server_release(srv);
    }
    if (url != NULL)
        nng_url_free(url);
    idset_free(&L->seen);
    pthread_mutex_destroy(&L->mu);
    return rc;
}

int
cmd_listen(int argc, char **argv)
{
    listener L = {.tolerance_s = 300, .status = 204};
    listen_opts o = {.addr = "127.0.0.1:7480"};
    int rc = parse_args(argc, argv, &o, &L);
    if (rc < 0 && (rc = load_secrets(&L, &o)) == 0)
        rc = run(&L, o.addr);
    explicit_bzero(L.keys, sizeof L.keys);
    return rc;
}
