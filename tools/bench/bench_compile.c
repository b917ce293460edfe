/*
 * bench_compile.c - how long compiling a large rule set takes.
 *
 *   vg_bench_compile [RULES] [RUNS]     (defaults: 1000 rules, 21 runs)
 *
 * Generates RULES rules in memory, cycling through the shapes of
 * rules/examples (velocity windows, lists, regexes, sequences with
 * quantifiers, absence, per-step keys), compiles the whole set RUNS times and
 * prints the median, minimum and maximum wall time. Results go in
 * docs/performance.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vg_rules.h"

static const char *const shapes[] = {
    "rule velocity_%d {\n"
    "  description \"More than %d online transactions on one account within an hour\"\n"
    "  where channel == ECOMMERCE and amount > %d.50\n"
    "  when count() over 1h > %d and sum(amount) over 1h before >= 1000\n"
    "  score 40\n  action review\n  suppress 1h\n"
    "  message \"{count() over 1h} online transactions in the last hour\"\n}\n",
    "rule card_testing_%d {\n  key card_id\n"
    "  match small: txn where status == DECLINED and amount < %d.00 {3,}\n"
    "     -> big: txn where status == APPROVED and amount > 500.00 + %d\n"
    "  within 10m\n  score 90\n  action block\n"
    "  message \"{count(small)} small declines, then {big.amount} {big.currency} (%d)\"\n}\n",
    "rule travel_%d {\n"
    "  match a: txn -> b: txn where geo_km(a.lat, a.lon, b.lat, b.lon) > %d * hours(b.time - "
    "a.time)\n"
    "  within 6h\n  score %d\n  action review\n  tags \"geo\", \"t%d\"\n}\n",
    "rule risky_country_%d {\n"
    "  where country in high_risk_countries and merchant_name ~ /casino|bet%d|lottery/i\n"
    "  when distinct(merchant_id) over 1d > %d or avg(amount) over 7d before * 5 < amount + %d\n"
    "  score 60\n}\n",
    "rule no_login_%d {\n"
    "  match not event where kind == \"login\" and success\n"
    "     -> t: txn where type == TRANSFER and amount > %d\n"
    "  within 30m\n  action review\n  mode shadow\n  message \"{t.amount} after %d / %d\"\n}\n",
    "rule mule_%d {\n"
    "  match t: txn by counterparty_id where type == TRANSFER and balance_after == 0\n"
    "     -> c: txn by account_id where type == CASH_OUT and amount == t.amount + %d\n"
    "  within 1h\n  action block\n  score %d\n  description \"mule %d\"\n}\n",
};

static double
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
    int nrules = argc > 1 ? atoi(argv[1]) : 1000;
    int runs = argc > 2 ? atoi(argv[2]) : 21;
    if (nrules < 1 || runs < 1) {
        fprintf(stderr, "usage: vg_bench_compile [RULES] [RUNS]\n");
        return 64;
    }
    vg_buf src = {0};
    vg_buf_puts(&src, "list high_risk_countries = [\"NG\", \"KP\", \"RU\"]\n");
    for (int i = 0; i < nrules; i++) {
        const char *shape = shapes[i % (int)VG_ARRAY_LEN(shapes)];
        /* the shapes above are this file's constants, each taking four ints */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        vg_buf_printf(&src, shape, i, 10 + i % 50, 1 + i % 90, 5 + i % 20);
#pragma GCC diagnostic pop
    }
    vg_source s = {"bench.vgl", src.data, src.len};
    double *t = calloc((size_t)runs, sizeof(double));
    for (int r = 0; r < runs; r++) {
        vg_ruleset *rs = NULL;
        unsigned nerr = 0;
        double t0 = now_ms();
        vg_err err = vg_ruleset_compile_sources(&s, 1, NULL, &nerr, &rs);
        t[r] = now_ms() - t0;
        if (err != VG_OK) {
            fprintf(stderr, "compile failed: %s (%u errors)\n", vg_strerror(err), nerr);
            return 1;
        }
        vg_ruleset_unref(rs);
    }
    qsort(t, (size_t)runs, sizeof(double), cmp_double);
    printf("compile %d rules (%zu bytes of source), %d runs: median %.2f ms, min %.2f ms, "
           "max %.2f ms (%.1f us/rule)\n",
           nrules, src.len, runs, t[runs / 2], t[0], t[runs - 1], t[runs / 2] * 1000 / nrules);
    free(t);
    vg_buf_free(&src);
    return 0;
}
