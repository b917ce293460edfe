/*
 * cmd_check.c - `vigil check RULES...`: compile rule files and folders and
 * print every diagnostic, clang style, on stderr.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "vg_rules.h"
#include "vg_vm.h"

static void
check_usage(FILE *f)
{
    fprintf(f, "usage: vigil check [options] RULES...\n"
               "\n"
               "Compile rule files (.vgl) and folders of them (searched recursively for *.vgl;\n"
               "files are compiled in path order) and report every error like a compiler:\n"
               "\n"
               "  rules/velocity.vgl:3:9: error: 'amout' is not a field of txn\n"
               "    where amout > 5\n"
               "          ^~~~~\n"
               "  rules/velocity.vgl:3:9: note: did you mean 'amount'?\n"
               "\n"
               "Errors go to stderr, ending with 'N errors generated.'; when every rule\n"
               "compiles, a one-line summary goes to stdout. A RULES argument of '-' reads a\n"
               "rule file from standard input.\n"
               "\n"
               "Options:\n"
               "  -q, --quiet        print nothing when every rule compiles\n"
               "      --dump         print each rule's compiled programs (the bytecode, its\n"
               "                     aggregates and columns) on stdout\n"
               "      --color=WHEN   color diagnostics: auto (a terminal, NO_COLOR unset),\n"
               "                     always or never (default: auto)\n"
               "  -h, --help         show this help and exit\n"
               "  -V, --version      show the version and exit\n"
               "\n"
               "Exit status: 0 every rule compiles, 1 some rule has errors, 64 usage error,\n"
               "66 a path that cannot be opened or holds no rule files.\n");
}

typedef struct sink {
    bool color;
    vg_buf out;
} sink;

static void
print_diag(void *ctx, const vg_diag *d)
{
    sink *s = ctx;
    s->out.len = 0;
    if (vg_diag_render(d, s->color, &s->out) == VG_OK)
        fwrite(s->out.data, 1, s->out.len, stderr);
    else
        fprintf(stderr, "vigil check: %s\n", d->message);
}

int
cmd_check(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"quiet", no_argument, NULL, 'q'}, {"color", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},  {"version", no_argument, NULL, 'V'},
        {"dump", no_argument, NULL, 'D'},  {NULL, 0, NULL, 0},
    };
    bool quiet = false, dump = false;
    const char *color = "auto";
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+qhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'q': quiet = true; break;
        case 'c': color = optarg; break;
        case 'h': check_usage(stdout); return VG_EXIT_OK;
        case 'V': printf("vigil %s\n", VG_VERSION); return VG_EXIT_OK;
        case 'D': dump = true; break;
        default:
            if (optopt == 'c')
                return cli_usage_error("check", "--color needs a value: auto, always or never");
            return cli_usage_error("check", "unrecognized option '%s'", argv[optind - 1]);
        }
    }
    int use_color = cli_color(color);
    if (use_color < 0)
        return cli_usage_error("check", "--color takes auto, always or never, not '%s'", color);
    if (optind >= argc)
        return cli_usage_error("check", "no rule files given");

    sink s = {.color = use_color == 1};
    vg_compile_opts opts = {.diag = print_diag, .diag_ctx = &s};
    unsigned nerrors = 0;
    vg_ruleset *rs = NULL;
    vg_err err = vg_ruleset_compile((const char *const *)argv + optind, (size_t)(argc - optind),
                                    &opts, &nerrors, &rs);
    vg_buf_free(&s.out);
    switch (err) {
    case VG_OK:
        if (dump)
            vg_ruleset_dump(rs, stdout);
        if (!quiet) {
            size_t nr = vg_ruleset_nrules(rs), nl = vg_ruleset_nlists(rs),
                   nf = vg_ruleset_nfiles(rs);
            printf("ok: %zu rule%s", nr, nr == 1 ? "" : "s");
            if (nl > 0)
                printf(", %zu list%s", nl, nl == 1 ? "" : "s");
            printf(" in %zu file%s\n", nf, nf == 1 ? "" : "s");
        }
        vg_ruleset_unref(rs);
        return VG_EXIT_OK;
    case VG_ECOMPILE: vg_diag_summary(stderr, nerrors); return VG_EXIT_RULES;
    case VG_ENOENT:
    case VG_EIO:
    case VG_EINVAL: return VG_EXIT_NOINPUT;
    default: fprintf(stderr, "vigil check: %s\n", vg_strerror(err)); return VG_EXIT_RULES;
    }
}
