/*
 * main.c - the `vigil` executable: git-style subcommands.
 *
 * The top of the dependency graph (STYLE.md): commands call into rules/ (and,
 * as they arrive, engine/ and adapters/); nothing calls back up here.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "vg_rules.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"check", cmd_check, "compile rule files and folders; report every error"},
    {"replay", cmd_replay, "run rules over historical events; print the alerts"},
    {"gen", cmd_gen, "write a synthetic event stream with labelled fraud scenarios"},
    {"run", cmd_run, "the engine: take events over nng, alert, ack once durable"},
    {"send", cmd_send, "send a file of events to a running engine, batch by batch"},
    {"score", cmd_score, "one event (JSON on stdin) to a running engine: its decision"},
    {"webhook-listen", cmd_listen, "a local webhook receiver: check signatures, print alerts"},
    {"dlq", cmd_dlq, "show the dead letters the sinks gave up on, or re-send them"},
};

static void
usage(FILE *f)
{
    fprintf(f, "usage: vigil <command> [options] [arguments]\n"
               "\n"
               "Vigil is a fraud-detection event processing engine. Fraud analysts describe\n"
               "what to catch in the Vigil rule language (.vgl files); vigil compiles the\n"
               "rules and evaluates events against them.\n"
               "\n"
               "Commands:\n");
    for (size_t i = 0; i < VG_ARRAY_LEN(commands); i++)
        fprintf(f, "  %-15s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n"
               "Options:\n"
               "  -h, --help     show this help and exit\n"
               "  -V, --version  show the version and exit\n"
               "\n"
               "Run 'vigil <command> --help' for the options of a command.\n"
               "The rule language: docs/language.md; replaying history: docs/replay.md.\n"
               "\n"
               "Exit status: 0 success, 1 rule errors (or a replay --expect difference),\n"
               "64 usage error, 65 an input that is not of its format, 66 a file that cannot\n"
               "be opened or written, 69 an engine that cannot be reached (send, score),\n"
               "78 a run config error.\n");
}

int
cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "vigil%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'vigil%s%s --help'.\n", cmd ? " " : "", cmd ? cmd : "");
    return VG_EXIT_USAGE;
}

void
cli_print_diag(void *ctx, const vg_diag *d)
{
    vg_buf b = {0};
    (void)ctx;
    if (vg_diag_render(d, cli_color("auto") == 1, &b) == VG_OK)
        fwrite(b.data, 1, b.len, stderr);
    vg_buf_free(&b);
}

int
cli_color(const char *when)
{
    if (strcmp(when, "always") == 0)
        return 1;
    if (strcmp(when, "never") == 0)
        return 0;
    if (strcmp(when, "auto") == 0) {
        const char *no = getenv("NO_COLOR");
        return isatty(STDERR_FILENO) && (no == NULL || no[0] == '\0');
    }
    return -1;
}

int
main(int argc, char **argv)
{
    /* standard input, output or error closed (`vigil run >&-`): the next file
     * opened would take its number, and alerts or log lines would land in
     * it (the state's lock file, LMDB's): they go to /dev/null instead */
    for (int fd = 0; fd <= 2; fd++)
        if (fcntl(fd, F_GETFD) == -1 && errno == EBADF &&
            open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY) != fd)
            return 1;
    if (argc < 2) {
        usage(stderr);
        return VG_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "help") == 0 && argc > 2) { /* vigil help check */
        char help[] = "--help";
        char *args[] = {argv[2], help, NULL};
        for (size_t i = 0; i < VG_ARRAY_LEN(commands); i++)
            if (strcmp(argv[2], commands[i].name) == 0)
                return commands[i].run(2, args);
        cmd = argv[2]; /* not a command: say so below */
    } else if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return VG_EXIT_OK;
    }
    if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0) {
        printf("vigil %s\n", VG_VERSION);
        return VG_EXIT_OK;
    }
    for (size_t i = 0; i < VG_ARRAY_LEN(commands); i++)
        if (strcmp(cmd, commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    if (cmd[0] == '-')
        return cli_usage_error(NULL, "unrecognized option '%s'", cmd);
    const char *names[VG_ARRAY_LEN(commands)];
    size_t n = 0;
    for (size_t i = 0; i < VG_ARRAY_LEN(commands); i++)
        names[n++] = commands[i].name;
    const char *sug = vg_suggest(cmd, strlen(cmd), names, n);
    if (sug != NULL)
        return cli_usage_error(NULL, "'%s' is not a vigil command; did you mean '%s'?", cmd, sug);
    return cli_usage_error(NULL, "'%s' is not a vigil command", cmd);
}
