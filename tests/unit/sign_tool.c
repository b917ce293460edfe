/*
 * sign_tool.c - signed webhook deliveries for the end-to-end test
 * (tests/cli/sign.sh): each line of standard input is a body, signed with
 * adapters/sign.c as the webhook sink signs it and printed as one JSON line
 * {"id","timestamp","signature","body"}. The test hands these to an
 * independent verifier (tests/webhook/verify.js) and POSTs them to `vigil
 * webhook-listen`; --tamper spoils each record after signing, to check that
 * both refuse it.
 *
 *   sign_tool [--timestamp SEC] [--id-prefix P] [--tamper WHAT] SECRET_FILE... < bodies
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vg_sign.h"

#define MAX_KEYS 16

typedef enum tamper { T_NONE, T_BODY, T_ID, T_TIMESTAMP, T_SIGNATURE } tamper;

static int
usage(void)
{
    fprintf(stderr, "usage: sign_tool [--timestamp SEC] [--id-prefix P] "
                    "[--tamper body|id|timestamp|signature] SECRET_FILE... < bodies\n");
    return 64;
}

static int
load_keys(char **files, int nfiles, vg_whkey *keys, size_t *n)
{
    for (int i = 0; i < nfiles; i++) {
        vg_buf text = {0};
        char why[200] = "";
        vg_err err = vg_read_file(files[i], &text);
        if (err == VG_OK)
            err = vg_whsec_decode_list(text.data, keys, MAX_KEYS, n, why, sizeof why);
        vg_buf_free(&text);
        if (err) {
            fprintf(stderr, "sign_tool: %s: %s\n", files[i], why[0] ? why : vg_strerror(err));
            return 1;
        }
    }
    return 0;
}

/* Spoils one part of a signed record, so that its signature no longer holds
 * (the body by one trailing space: signatures cover bytes, not JSON). */
static void
spoil(tamper t, vg_buf *id, int64_t *ts, vg_buf *sig, vg_buf *body)
{
    switch (t) {
    case T_NONE: break;
    case T_BODY: vg_buf_putc(body, ' '); break;
    case T_ID: vg_buf_putc(id, 'x'); break;
    case T_TIMESTAMP: (*ts)++; break;
    case T_SIGNATURE: sig->data[5] = sig->data[5] == 'A' ? 'B' : 'A'; break;
    }
}

/* Signs body as delivery number seq and prints its record. */
static int
sign_line(const vg_whkey *keys, size_t n, const char *prefix, unsigned long seq, int64_t ts,
          tamper t, const char *line, size_t len)
{
    vg_buf id = {0}, sig = {0}, body = {0};
    int rc = 1;
    if (vg_buf_printf(&id, "%s%lu", prefix, seq) || vg_buf_append(&body, line, len) ||
        vg_webhook_sign(keys, n, id.data, ts, body.data, body.len, &sig))
        goto fail;
    spoil(t, &id, &ts, &sig, &body);
    json_t *rec = json_pack("{s:s, s:I, s:s, s:s%}", "id", id.data, "timestamp", (json_int_t)ts,
                            "signature", sig.data, "body", body.data, body.len);
    char *out = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
    if (out != NULL) {
        puts(out);
        rc = 0;
    }
    free(out);
    json_decref(rec);
fail:
    if (rc)
        fprintf(stderr, "sign_tool: can't sign line %lu (not UTF-8?)\n", seq);
    vg_buf_free(&id);
    vg_buf_free(&sig);
    vg_buf_free(&body);
    return rc;
}

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"timestamp", required_argument, NULL, 't'},
        {"id-prefix", required_argument, NULL, 'p'},
        {"tamper", required_argument, NULL, 'x'},
        {NULL, 0, NULL, 0},
    };
    static const char *const tampers[] = {"none", "body", "id", "timestamp", "signature"};
    int64_t ts = (int64_t)time(NULL);
    const char *prefix = "msg_sign_tool_";
    tamper t = T_NONE;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 't': ts = strtoll(optarg, NULL, 10); break;
        case 'p': prefix = optarg; break;
        case 'x':
            for (t = T_NONE; t <= T_SIGNATURE && strcmp(optarg, tampers[t]) != 0; t++)
                ;
            if (t > T_SIGNATURE)
                return usage();
            break;
        default: return usage();
        }
    }
    if (optind == argc)
        return usage();
    vg_whkey keys[MAX_KEYS];
    size_t n = 0;
    if (load_keys(argv + optind, argc - optind, keys, &n))
        return 1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    unsigned long seq = 0;
    int rc = 0;
    while (rc == 0 && (len = getline(&line, &cap, stdin)) >= 0) {
        if (len > 0 && line[len - 1] == '\n')
            len--;
        rc = sign_line(keys, n, prefix, ++seq, ts, t, line, (size_t)len);
    }
    free(line);
    return rc;
}
