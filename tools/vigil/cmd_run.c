/*
 * cmd_run.c - `vigil run`: the live engine (SPEC §5) on its built-in
 * defaults, or as flags say.
 */
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "cli.h"
#include "vg_config.h"
#include "vg_deliver.h"
#include "vg_rules.h"
#include "vg_server.h"
#include "vg_tls.h"

static void
run_usage(FILE *f)
{
    fprintf(f, "usage: vigil run [options]\n"
               "\n"
               "Run the engine: take batches of events over nng (request/reply), evaluate the\n"
               "rules, and reply to each batch only once its events are in the durable event\n"
               "log. Alerts go to an outbox in the state and from there to each sink of the\n"
               "config (stdout, jsonl, nng PUB, signed webhooks; by default stdout, as JSON\n"
               "lines), each sink with its own cursor. With no options it runs on its\n"
               "defaults: rules from ./rules, state in ./vigil-data, ingest on\n"
               "tcp://127.0.0.1:7470.\n"
               "\n"
               "Options:\n"
               "  -r, --rules PATH       rule file or folder (repeatable; default: rules)\n"
               "  -s, --state DIR        LMDB state and event log (default: vigil-data)\n"
               "  -i, --ingest URL       the REP endpoint for EventBatch requests, tcp://,\n"
               "                         ipc:// or tls+tcp:// (mutual TLS: the config's tls\n"
               "                         key; default: tcp://127.0.0.1:7470)\n"
               "      --stream URL       also take EventBatch messages on a PULL endpoint, for\n"
               "                         fire-and-forget producers (PUSH; no reply, no ack;\n"
               "                         default: none)\n"
               "      --idle-advance     let the event clock follow the wall clock while no\n"
               "                         event comes, so trailing `not` deadlines fire on a\n"
               "                         quiet stream (config idle_advance; off by default:\n"
               "                         replay never does it, so live then differs)\n"
               "      --http ADDR        serve /metrics, /healthz and /readyz on host:port\n"
               "                         (default: 127.0.0.1:7471; none: not at all)\n"
               "      --max-message N    the largest request in bytes (default: 16777216)\n"
               "      --checkpoint SEC   seconds between state checkpoints (default: 30)\n"
               "      --cache-keys N     keys held in memory before the least recent are written\n"
               "                         back to LMDB and dropped (default: 4000000)\n"
               "  -c, --config FILE      a YAML run config (SPEC §5, docs/operations.md); the\n"
               "                         options above override it. Its keys: rules, state\n"
               "                         {path, max_size}, ingest, stream, http,\n"
               "                         idle_advance, decisions {review_at, block_at},\n"
               "                         tls {cert, key, ca}, max_message_bytes,\n"
               "                         dedupe_horizon, sinks (a list: type stdout, jsonl,\n"
               "                         nng or webhook, and their url, path, secrets,\n"
               "                         secret_files, secret_env, retry_schedule, timeout,\n"
               "                         allow_private, proxy, rules, shadow, fsync)\n"
               "      --check-config     check the config (and the rules) and exit: 0 when\n"
               "                         the engine would start, 78 when the config is wrong\n"
               "  -h, --help             show this help and exit\n"
               "\n"
               "Every accepted event is appended to an event log in the state folder and made\n"
               "durable (one fdatasync per group of concurrent batches) before its batch is\n"
               "acked. The state is checkpointed to LMDB with the log position it reflects; on\n"
               "start, the log's events after the checkpoint are replayed, so a crash (even\n"
               "kill -9) loses no acked event and counts none twice. Every alert is in the\n"
               "outbox once; a sink gets each at least once (after a crash, those it had not\n"
               "finished again, with the same ids: receivers dedupe on them).\n"
               "SIGTERM or SIGINT: stop taking batches, finish those in flight, checkpoint,\n"
               "exit 0. SIGHUP: compile the rules again; a rule set with errors is refused\n"
               "(they are printed, the old rules keep running); otherwise the engine switches\n"
               "between two batches, and a rule keeps its state unless its key, on, where,\n"
               "when, match, within or suppress changed.\n"
               "\n"
               "Exit status: 0 after SIGTERM, 1 the rules do not compile or the engine cannot\n"
               "start or go on (stderr says why), 64 usage error, 66 a rule file or folder\n"
               "that cannot be read, 78 a config error (an\n"
               "unknown key, a value of the wrong type, a setting this version cannot do).\n"
               "\n"
               "Feed it with `vigil send`. More: docs/operations.md.\n");
}

/* A webhook attempt that failed, in the log: when, which alert, the answer
 * or the error, how long it took (successes are counted in /metrics). */
static void
log_attempt(void *ctx, const char *sink, const char *alert_id, int attempt, long status,
            double latency_s, const char *error)
{
    (void)ctx;
    if (status >= 200 && status < 300 && attempt != 0)
        return;
    if (attempt == 0 && strcmp(alert_id, "-") == 0) { /* news about the sink itself */
        vg_server_log(stderr, VG_WARN, "sink %s: %s", sink, error ? error : "");
        return;
    }
    if (attempt == 0) { /* a synchronous sink failing, or working again */
        vg_server_log(stderr, status == 0 ? VG_WARN : VG_INFO, "sink %s: %s from alert %s: %s",
                      sink, status == 0 ? "failing" : "working", alert_id, error ? error : "");
        return;
    }
    char what[64] = "";
    if (status != 0 && (error == NULL || strncmp(error, "HTTP ", 5) != 0)) /* not said twice */
        snprintf(what, sizeof what, "status %ld%s", status, error && *error ? ", " : "");
    vg_server_log(stderr, VG_WARN, "sink %s: alert %s, attempt %d failed: %s%s (%.0f ms)", sink,
                  alert_id, attempt, what, error ? error : "", latency_s * 1000);
}

/* An address's host and port: a URL (tcp://, tls+tcp://) or http's
 * HOST:PORT; false for others (ipc://). */
static bool
host_port(const char *a, char *host, size_t hostlen, char *port, size_t portlen)
{
    const char *p = strstr(a, "://");
    if (p != NULL) {
        if (strncmp(a, "tcp", 3) != 0 && strncmp(a, "tls+tcp", 7) != 0)
            return false;
        a = p + 3;
    }
    const char *colon = strrchr(a, ':');
    if (colon == NULL)
        return false;
    size_t hl = (size_t)(colon - a);
    if (hl >= 2 && a[0] == '[' && a[hl - 1] == ']') /* [::1]:7470 */
        a++, hl -= 2;
    snprintf(host, hostlen, "%.*s", (int)hl, a);
    snprintf(port, portlen, "%.*s", (int)strcspn(colon + 1, "/"), colon + 1);
    return true;
}

/* Would a and b listen on the same socket: the same text, or one port on
 * hosts that resolve alike (or a wildcard host)? */
static bool
same_socket(const char *a, const char *b)
{
    if (strcmp(a, b) == 0)
        return true;
    char ha[256], pa[16], hb[256], pb[16];
    if (!host_port(a, ha, sizeof ha, pa, sizeof pa) ||
        !host_port(b, hb, sizeof hb, pb, sizeof pb) || strcmp(pa, pb) != 0)
        return false;
    static const char *const any[] = {"", "*", "0.0.0.0", "::"};
    for (size_t i = 0; i < 4; i++)
        if (strcmp(ha, any[i]) == 0 || strcmp(hb, any[i]) == 0)
            return true;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ra = NULL, *rb = NULL;
    bool same = false;
    if (getaddrinfo(ha, pa, &hints, &ra) == 0 && getaddrinfo(hb, pb, &hints, &rb) == 0)
        for (struct addrinfo *x = ra; x != NULL && !same; x = x->ai_next)
            for (struct addrinfo *y = rb; y != NULL && !same; y = y->ai_next)
                same = x->ai_addrlen == y->ai_addrlen &&
                       memcmp(x->ai_addr, y->ai_addr, x->ai_addrlen) == 0;
    if (ra != NULL)
        freeaddrinfo(ra);
    if (rb != NULL)
        freeaddrinfo(rb);
    return same;
}

/* The addresses the engine will listen on, checked before anything starts
 * (and by --check-config): each parses, has a port or a path, and for
 * tls+tcp:// the TLS files load. TLS files that no address uses are worth a
 * warning. */
static bool
endpoints_ok(const vg_server_opts *o, const char *config)
{
    const char *where = config ? config : "vigil run";
    char why[512];
    const char *names[] = {"ingest", "stream"}, *urls[] = {o->ingest_url, o->stream_url};
    bool ok = true, tls_used = false;
    for (int i = 0; i < 2; i++) {
        if (urls[i] == NULL)
            continue;
        tls_used |= vg_tls_url(urls[i]);
        if (vg_tls_check_listen(urls[i], &o->tls, why, sizeof why) != VG_OK) {
            fprintf(stderr, "%s: error: %s: %s\n", where, names[i], why);
            ok = false;
        }
    }
    if (o->http[0] != '\0') {
        const char *colon = strrchr(o->http, ':');
        char *end = NULL;
        long port = colon ? strtol(colon + 1, &end, 10) : 0;
        if (colon == NULL || colon == o->http || end == colon + 1 || *end != '\0' || port < 1 ||
            port > 65535) {
            fprintf(stderr,
                    "%s: error: http: '%s' is not HOST:PORT (like 127.0.0.1:7471; \"none\" for "
                    "no admin endpoint)\n",
                    where, o->http);
            ok = false;
        }
    }
    /* two of ingest, stream and http on one socket: the second cannot listen */
    const char *what[3] = {"ingest", "stream", "http"};
    const char *addr[3] = {o->ingest_url, o->stream_url, o->http[0] ? o->http : NULL};
    for (int i = 0; ok && i < 3; i++)
        for (int k = i + 1; ok && k < 3; k++)
            if (addr[i] != NULL && addr[k] != NULL && same_socket(addr[i], addr[k])) {
                fprintf(stderr,
                        "%s: error: %s (%s) and %s (%s) are the same address: give them "
                        "addresses of their own\n",
                        where, what[i], addr[i], what[k], addr[k]);
                ok = false;
            }
    if (ok && !tls_used && (o->tls.cert || o->tls.key || o->tls.ca))
        fprintf(stderr,
                "%s: warning: tls is set but neither ingest nor stream is a tls+tcp:// "
                "address: the certificates are not used\n",
                where);
    return ok;
}

/* What SIGHUP compiles: the same paths as at start. */
typedef struct rule_paths {
    const char *const *paths;
    size_t n;
} rule_paths;

static vg_ruleset *
recompile(void *ctx)
{
    rule_paths *p = ctx;
    vg_compile_opts copts = {.diag = cli_print_diag};
    unsigned nerr = 0;
    vg_ruleset *rs = NULL;
    vg_err err = vg_ruleset_compile(p->paths, p->n, &copts, &nerr, &rs);
    if (err == VG_ECOMPILE)
        vg_diag_summary(stderr, nerr);
    else if (err)
        fprintf(stderr, "vigil run: can't load the rules: %s\n", vg_strerror(err));
    return err ? NULL : rs;
}

int
cmd_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"rules", required_argument, NULL, 'r'},
        {"state", required_argument, NULL, 's'},
        {"ingest", required_argument, NULL, 'i'},
        {"max-message", required_argument, NULL, 'M'},
        {"checkpoint", required_argument, NULL, 'C'},
        {"config", required_argument, NULL, 'c'},
        {"cache-keys", required_argument, NULL, 'K'},
        {"check-config", no_argument, NULL, 'X'},
        {"http", required_argument, NULL, 'H'},
        {"stream", required_argument, NULL, 'P'},
        {"idle-advance", no_argument, NULL, 'A'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *rules[256];
    size_t nrules = 0;
    const char *config = NULL, *state = NULL, *ingest = NULL, *http = NULL, *stream = NULL;
    bool check_only = false, idle_advance = false;
    size_t max_message = 0;
    vg_server_opts o = {.state_dir = "vigil-data",
                        .ingest_url = "tcp://127.0.0.1:7470",
                        .alerts = stdout,
                        .log = stderr};
    int c;
    char *end;
    optind = 1;
    while ((c = getopt_long(argc, argv, "r:s:i:c:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'r':
            if (nrules == sizeof rules / sizeof rules[0])
                return cli_usage_error("run", "too many --rules");
            rules[nrules++] = optarg;
            break;
        case 's': state = optarg; break;
        case 'i': ingest = optarg; break;
        case 'M':
            max_message = strtoull(optarg, &end, 10);
            if (*end || max_message < 1024)
                return cli_usage_error("run", "--max-message wants a number of bytes (>= 1024)");
            break;
        case 'C':
            o.checkpoint_s = strtod(optarg, &end);
            if (*end || o.checkpoint_s <= 0)
                return cli_usage_error("run", "--checkpoint wants seconds, like 30");
            break;
        case 'K':
            o.cache_keys = strtoull(optarg, &end, 10);
            if (*end || o.cache_keys == 0)
                return cli_usage_error("run", "--cache-keys wants a number of keys");
            break;
        case 'c': config = optarg; break;
        case 'X': check_only = true; break;
        case 'H': http = optarg; break;
        case 'P': stream = optarg; break;
        case 'A': idle_advance = true; break;
        case 'h': run_usage(stdout); return VG_EXIT_OK;
        default: return cli_usage_error("run", "unknown option");
        }
    }
    if (optind < argc)
        return cli_usage_error("run", "unexpected argument '%s'", argv[optind]);
    /* the defaults, then the config, then the options */
    vg_config cfg;
    vg_config_defaults(&cfg);
    if (config != NULL) {
        vg_err err = vg_config_load(config, &cfg, stderr);
        if (err == VG_OK)
            err = vg_config_check(&cfg, stderr, config);
        if (err) {
            vg_config_free(&cfg);
            return err == VG_ENOMEM ? 1 : err == VG_ENOENT ? VG_EXIT_NOINPUT : VG_EXIT_CONFIG;
        }
    }
    vg_sink_conf *sinks = NULL;
    size_t nsinks = 0;
    if (config != NULL && vg_config_sinks(&cfg, config, &sinks, &nsinks, stderr) != VG_OK) {
        vg_config_free(&cfg);
        return VG_EXIT_CONFIG;
    }
    for (size_t i = 0; i < nsinks; i++)
        sinks[i].attempt = log_attempt;
    /* none configured: standard output, its failures logged like the others' */
    vg_sink_conf out1 = {.type = "stdout", .name = "stdout", .attempt = log_attempt};
    o.sinks = nsinks ? sinks : &out1;
    o.nsinks = nsinks ? nsinks : 1;
    o.state_dir = state ? state : cfg.state ? cfg.state : o.state_dir;
    o.ingest_url = ingest ? ingest : cfg.ingest ? cfg.ingest : o.ingest_url;
    o.stream_url = stream ? stream : cfg.stream;
    o.idle_advance = idle_advance || cfg.idle_advance;
    o.tls = (vg_tls_files){.cert = cfg.tls_cert, .key = cfg.tls_key, .ca = cfg.tls_ca};
    o.http = http ? http : cfg.http ? cfg.http : "127.0.0.1:7471";
    if (strcmp(o.http, "none") == 0)
        o.http = "";
    o.max_message_bytes = max_message ? max_message : (size_t)cfg.max_message_bytes;
    o.dedupe_horizon_ms = cfg.dedupe_horizon_ms;
    o.review_at = cfg.review_at;
    o.max_state_bytes = (size_t)cfg.max_size;
    o.block_at = cfg.block_at;
    if (!endpoints_ok(&o, config)) {
        vg_config_free(&cfg);
        vg_config_sinks_free(sinks, nsinks);
        return VG_EXIT_CONFIG;
    }
    if (nrules == 0)
        rules[nrules++] = cfg.rules ? cfg.rules : "rules";
    vg_compile_opts copts = {.diag = cli_print_diag};
    unsigned nerr = 0;
    vg_ruleset *rs = NULL;
    vg_err err = vg_ruleset_compile(rules, nrules, &copts, &nerr, &rs);
    if (err) {
        if (err == VG_ECOMPILE)
            vg_diag_summary(stderr, nerr);
        else
            fprintf(stderr, "vigil run: can't load the rules: %s\n", vg_strerror(err));
        vg_config_free(&cfg);
        vg_config_sinks_free(sinks, nsinks);
        return err == VG_ENOENT || err == VG_EIO ? VG_EXIT_NOINPUT : VG_EXIT_RULES;
    }
    int rc = VG_EXIT_OK;
    rule_paths paths = {rules, nrules};
    o.reload = recompile;
    o.reload_ctx = &paths;
    if (check_only) {
        /* the sinks open as they would: files, addresses, secrets */
        vg_deliver *d = NULL;
        char why[512] = "";
        if (vg_deliver_open(o.sinks, o.nsinks, NULL, NULL, &d, why, sizeof why) != VG_OK) {
            fprintf(stderr, "%s: error: %s\n", config ? config : "vigil run", why);
            rc = VG_EXIT_CONFIG;
        } else {
            vg_deliver_close(d);
            printf("ok: %s; %zu rules; state in %s; ingest on %s%s%s; %zu sinks\n",
                   config ? config : "the built-in defaults", vg_ruleset_nrules(rs), o.state_dir,
                   o.ingest_url, o.stream_url ? ", stream on " : "",
                   o.stream_url ? o.stream_url : "", o.nsinks);
        }
    } else {
        /* a reader of stdout (or of a sink's pipe) that goes away makes the
         * write fail with EPIPE, which the sink reports and retries: it does
         * not stop the engine */
        signal(SIGPIPE, SIG_IGN);
        rc = vg_server_run(rs, &o);
    }
    vg_ruleset_unref(rs);
    vg_config_free(&cfg);
    vg_config_sinks_free(sinks, nsinks);
    return rc;
}
