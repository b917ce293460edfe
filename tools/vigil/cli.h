/*
 * cli.h - what the `vigil` subcommands share: exit codes (SPEC §4) and the
 * command entry points. Each command lives in its own cmd_*.c.
 */
#ifndef VG_CLI_H
#define VG_CLI_H

#include <stdbool.h>

/* Exit codes, after BSD sysexits.h as SPEC §4 fixes them. */
enum {
    VG_EXIT_OK = 0,
    VG_EXIT_RULES = 1, /* rule compile errors, or an --expect mismatch */
    VG_EXIT_USAGE = 64,
    VG_EXIT_DATAERR = 65,     /* an input file unreadable as its format */
    VG_EXIT_NOINPUT = 66,     /* a file that cannot be opened */
    VG_EXIT_UNAVAILABLE = 69, /* an engine that cannot be reached */
    VG_EXIT_CONFIG = 78,
};

/* Reports a usage error for `vigil CMD` on stderr; returns VG_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Should diagnostics on stderr be colored? `when` is "auto", "always" or
 * "never"; returns -1 for anything else. */
int cli_color(const char *when);

/* Prints a diagnostic on stderr as `vigil check` does (colored on a
 * terminal): a vg_diag_fn for commands that compile rules. */
struct vg_diag;
void cli_print_diag(void *ctx, const struct vg_diag *d);

/* --tls-ca, --tls-cert, --tls-key, --tls-server-name: how vigil send and
 * vigil score reach a tls+tcp:// engine (getopt codes 1001-1004). */
#define CLI_TLS_OPTIONS                                                                            \
    {"tls-ca", required_argument, NULL, 1001}, {"tls-cert", required_argument, NULL, 1002},        \
        {"tls-key", required_argument, NULL, 1003},                                                \
    {                                                                                              \
        "tls-server-name", required_argument, NULL, 1004                                           \
    }
#define CLI_TLS_HELP                                                                               \
    "      --tls-ca FILE    for tls+tcp:// URLs: the CA (PEM) that signed the engine's\n"          \
    "                       certificate\n"                                                         \
    "      --tls-cert FILE, --tls-key FILE\n"                                                      \
    "                       this client's certificate and key (PEM), when the engine\n"            \
    "                       asks for one (mutual TLS: its config has tls.ca)\n"                    \
    "      --tls-server-name NAME\n"                                                               \
    "                       the name the engine's certificate must carry (default: the\n"          \
    "                       URL's host)\n"
struct vg_tls_files;
/* Takes a TLS option (codes 1001-1004) into *t: true when c was one. */
bool cli_tls_option(int c, const char *arg, struct vg_tls_files *t);

int cmd_check(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_gen(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_send(int argc, char **argv);
int cmd_score(int argc, char **argv);
int cmd_listen(int argc, char **argv);
int cmd_dlq(int argc, char **argv);

#ifndef VG_VERSION
#define VG_VERSION "0.0.0"
#endif

#endif
