/*
 * cmd_score.c - `vigil score`: one transaction (JSON) on stdin to a running
 * engine, its decision (SPEC §2 "Decisions") as JSON on stdout.
 */
#include <getopt.h>
#include <jansson.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "vg_tls.h"
#include "vg_input.h"

static void
score_usage(FILE *f)
{
    fprintf(f, "usage: vigil score --to URL < event.json\n"
               "\n"
               "Send one event, written as a JSON object on standard input (the fields of\n"
               "a JSONL input line, docs/replay.md), to a running engine, and print its\n"
               "decision: {\"event_id\",\"action\",\"score\",\"rules\":[{\"rule\",\"score\",\n"
               "\"action\",\"message\",\"shadow\"}]}. The event counts like any other: its\n"
               "state changes stay, and sending it again returns the recorded decision,\n"
               "marked \"duplicate\":true.\n"
               "\n"
               "Options:\n"
               "  -t, --to URL       the engine's ingest endpoint (like tcp://127.0.0.1:7470)\n"
               "      --timeout SEC  give up after SEC seconds (default 10)\n" CLI_TLS_HELP
               "  -h, --help         show this help and exit\n"
               "\n"
               "Exit status: 0 a decision, 64 usage error, 65 the input is not one event\n"
               "(the reason is printed), 69 the engine cannot be reached or does not answer.\n");
}

int
cmd_score(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"to", required_argument, NULL, 't'},
        {"timeout", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        CLI_TLS_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    const char *to = NULL;
    double timeout = 10;
    vg_tls_files tls = {0};
    int c;
    char *end;
    optind = 1;
    while ((c = getopt_long(argc, argv, "t:h", longopts, NULL)) != -1) {
        switch (c) {
        case 't': to = optarg; break;
        case 'T':
            timeout = strtod(optarg, &end);
            if (*end || timeout <= 0)
                return cli_usage_error("score", "--timeout wants seconds, like 10");
            break;
        case 'h': score_usage(stdout); return VG_EXIT_OK;
        default:
            if (cli_tls_option(c, optarg, &tls))
                break;
            return cli_usage_error("score", "unknown option");
        }
    }
    if (to == NULL)
        return cli_usage_error("score", "give the engine's endpoint: --to URL");
    const vg_schema *sc = vg_schema_default();
    vg_reader_opts ropts = {.format = VG_FMT_JSONL};
    char why[512] = "";
    vg_reader *rd = NULL;
    if (vg_reader_open("-", sc, &ropts, why, sizeof why, &rd) != VG_OK) {
        fprintf(stderr, "vigil score: can't read standard input: %s\n", why);
        return VG_EXIT_NOINPUT;
    }
    vg_event ev;
    uint64_t line;
    const char *reason = NULL;
    int lab;
    vg_read r = vg_reader_next(rd, &ev, &line, &reason, &lab);
    if (r != VG_READ_EVENT) {
        fprintf(stderr, "vigil score: the input is not an event: %s\n",
                r == VG_READ_END ? "it is empty; write one JSON object, like {\"id\": \"t-1\", ...}"
                                 : reason);
        vg_reader_close(rd);
        return VG_EXIT_DATAERR;
    }
    vg_buf msg = {0};
    const vg_event *one = &ev;
    vg_err err = vg_batch_encode(sc, &one, 1, true, &msg);
    if (err == VG_OK && vg_reader_next(rd, &ev, &line, &reason, &lab) != VG_READ_END) {
        fprintf(stderr,
                "vigil score: the input holds more than one event (another at line %llu): "
                "score takes one; to send many, use vigil send\n",
                (unsigned long long)line);
        vg_buf_free(&msg);
        vg_reader_close(rd);
        return VG_EXIT_DATAERR;
    }
    vg_reader_close(rd);
    if (err) {
        vg_buf_free(&msg);
        fprintf(stderr, "vigil score: %s\n", vg_strerror(err));
        return 1;
    }
    nng_socket sock = NNG_SOCKET_INITIALIZER;
    int rv;
    vg_err terr = VG_OK;
    void *buf = NULL;
    size_t len = 0;
    if ((rv = nng_req0_open(&sock)) != 0 ||
        (rv = nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, (nng_duration)(timeout * 1000))) != 0 ||
        (rv = nng_socket_set_ms(sock, NNG_OPT_SENDTIMEO, (nng_duration)(timeout * 1000))) != 0 ||
        (rv = (terr = vg_tls_dial_now(sock, to, &tls, why, sizeof why)) == VG_OK ? 0 : -1) != 0 ||
        (rv = nng_send(sock, msg.data, msg.len, 0)) != 0 ||
        (rv = nng_recv(sock, &buf, &len, NNG_FLAG_ALLOC)) != 0) {
        if (rv > 0)
            snprintf(why, sizeof why, "no answer from the engine at %s: %s", to, nng_strerror(rv));
        fprintf(stderr, "vigil score: %s%s\n", why, terr == VG_EINVAL ? "" : " (is vigil run up?)");
        vg_buf_free(&msg);
        if (sock.id != 0)
            nng_close(sock);
        return terr == VG_EINVAL ? VG_EXIT_USAGE : VG_EXIT_UNAVAILABLE;
    }
    vg_buf_free(&msg);
    nng_close(sock);
    vg_reply rep;
    err = vg_reply_decode(buf, len, &rep);
    nng_free(buf, len);
    if (err) {
        fprintf(stderr, "vigil score: the engine's reply is not a BatchReply\n");
        return VG_EXIT_UNAVAILABLE;
    }
    int rc = VG_EXIT_OK;
    if (rep.error != NULL) {
        fprintf(stderr, "vigil score: the engine did not take it: %s\n", rep.error);
        rc = VG_EXIT_UNAVAILABLE;
    } else if (rep.nrej > 0) {
        fprintf(stderr, "vigil score: the engine rejected the event: %s\n", rep.rej[0].reason);
        rc = VG_EXIT_DATAERR;
    } else if (rep.ndec == 1) {
        static const char *const names[] = {"allow", "review", "block"};
        const vg_decision *d = &rep.dec[0];
        json_t *o = json_object(), *rules = json_array();
        json_object_set_new(o, "event_id", json_stringn(d->event_id, d->idlen));
        json_object_set_new(o, "action", json_string(names[d->action % 3]));
        json_object_set_new(o, "score", json_integer(d->score));
        for (size_t i = 0; i < d->nhits; i++) {
            const vg_rule_hit *h = &d->hits[i];
            json_t *x = json_object();
            json_object_set_new(x, "rule", json_string(h->rule));
            json_object_set_new(x, "score", json_integer(h->score));
            json_object_set_new(x, "action", json_string(names[h->action % 3]));
            json_object_set_new(x, "message", json_stringn(h->message, h->message_len));
            json_object_set_new(x, "shadow", json_boolean(h->shadow));
            json_array_append_new(rules, x);
        }
        json_object_set_new(o, "rules", rules);
        if (d->duplicate)
            json_object_set_new(o, "duplicate", json_true());
        char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (s != NULL)
            puts(s);
        free(s);
        json_decref(o);
    } else {
        fprintf(stderr, "vigil score: the engine sent no decision\n");
        rc = VG_EXIT_UNAVAILABLE;
    }
    vg_reply_free(&rep);
    return rc;
}
