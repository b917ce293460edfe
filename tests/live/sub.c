/*
 * sub.c - a subscriber to the nng sink (SPEC section 6), for
 * tests/cli/sinks.sh: it dials the engine's PUB socket, subscribes to one
 * rule's alerts (the rule name and its NUL: exactly that rule; "" with --all:
 * every alert) and prints the JSON part of each message, one per line, so the
 * output compares with a replay's alerts line for line.
 *
 *   sub URL RULE COUNT [IDLE_MS]    exactly RULE's alerts
 *   sub URL --all COUNT [IDLE_MS]   every alert
 *
 * Prints "subscribed" on stderr once connected. Exits 0 after COUNT
 * messages, 1 when IDLE_MS (default 10000) pass with none (having printed
 * what came), 2 on a usage or nng error, 3 on a message that is not
 * "<rule>\0<json>" or not of the subscribed rule.
 */
#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: sub URL RULE|--all COUNT [IDLE_MS]\n");
        return 2;
    }
    const char *url = argv[1];
    const char *rule = strcmp(argv[2], "--all") == 0 ? NULL : argv[2];
    long want = atol(argv[3]);
    int idle_ms = argc > 4 ? atoi(argv[4]) : 10000;
    nng_socket sock;
    int rv;
    /* the topic is the rule name with its NUL, so "rule" does not take "rule2" */
    if ((rv = nng_sub0_open(&sock)) != 0 ||
        (rv = nng_socket_set(sock, NNG_OPT_SUB_SUBSCRIBE, rule ? rule : "",
                             rule ? strlen(rule) + 1 : 0)) != 0 ||
        (rv = nng_socket_set_int(sock, NNG_OPT_RECVBUF, 8192)) != 0 ||
        (rv = nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, idle_ms)) != 0 ||
        (rv = nng_dial(sock, url, NULL, 0)) != 0) {
        fprintf(stderr, "sub: %s: %s\n", url, nng_strerror(rv));
        return 2;
    }
    fprintf(stderr, "subscribed\n");
    long got = 0;
    int status = 0;
    while (got < want) {
        nng_msg *m;
        if ((rv = nng_recvmsg(sock, &m, 0)) != 0) {
            fprintf(stderr, "sub: %ld of %ld messages, then %s\n", got, want, nng_strerror(rv));
            status = rv == NNG_ETIMEDOUT ? 1 : 2;
            break;
        }
        const char *body = nng_msg_body(m);
        size_t len = nng_msg_len(m);
        const char *nul = memchr(body, '\0', len);
        if (nul == NULL || (rule != NULL && strcmp(body, rule) != 0)) {
            fprintf(stderr, "sub: message %ld is not \"%s\\0<json>\"\n", got + 1,
                    rule ? rule : "<rule>");
            nng_msg_free(m);
            status = 3;
            break;
        }
        size_t off = (size_t)(nul - body) + 1;
        fwrite(body + off, 1, len - off, stdout);
        fputc('\n', stdout);
        nng_msg_free(m);
        got++;
    }
    fflush(stdout);
    nng_close(sock);
    return status;
}
