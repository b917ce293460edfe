/*
 * test_sinks.c - the synchronous sinks: stdout (adapters/file.c) into a
 * tmpfile, jsonl (adapters/file.c) into real files and /dev/full, and nng
 * (adapters/pub.c) to a real SUB socket over ipc:// in a temporary folder.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>

#include "vg_sink.h"

#define MAX_DONE 64

/* What done() reported, in order. */
typedef struct results {
    uint64_t seqs[MAX_DONE];
    size_t n;
    size_t dead;
} results;

static void
on_done(void *ctx, uint64_t seq, vg_sink_outcome outcome)
{
    results *r = ctx;
    if (outcome != VG_SINK_DELIVERED)
        r->dead++;
    else if (r->n < MAX_DONE)
        r->seqs[r->n++] = seq;
}

static vg_outrec
rec(uint64_t seq, const char *rule, const char *json)
{
    return (vg_outrec){.seq = seq,
                       .rule = rule,
                       .id = "alert-id",
                       .key = "k1",
                       .json = json,
                       .len = strlen(json),
                       .time_ms = 1700000000000};
}

static void
assert_seqs(const results *r, const uint64_t *want, size_t n)
{
    assert_int_equal(r->dead, 0);
    assert_int_equal(r->n, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(r->seqs[i], want[i]);
}

/* A new empty folder under TMPDIR; the caller frees the name. */
static char *
temp_dir(void)
{
    const char *tmp = getenv("TMPDIR");
    char *dir;
    assert_true(asprintf(&dir, "%s/vg-sinks-XXXXXX", tmp != NULL ? tmp : "/tmp") > 0);
    assert_non_null(mkdtemp(dir));
    return dir;
}

static char *
read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *text = calloc(1, 65536);
    assert_non_null(text);
    size_t n = fread(text, 1, 65535, f);
    text[n] = '\0';
    fclose(f);
    return text;
}

/* Opens a sink of conf's type; fails the test with why when it does not. */
static void *
open_ok(const vg_sink_conf *conf, results *res)
{
    const vg_sink_type *t = vg_sink_find(conf->type);
    assert_non_null(t);
    void *self = NULL;
    char why[256] = "";
    if (t->open(conf, on_done, res, &self, why, sizeof why) != VG_OK)
        fail_msg("%s sink did not open: %s", conf->type, why);
    assert_non_null(self);
    return self;
}

/* Expects conf to be refused with every one of the NULL-terminated texts in
 * its message. */
static void
expect_refused(const vg_sink_conf *conf, ...)
{
    const vg_sink_type *t = vg_sink_find(conf->type);
    assert_non_null(t);
    void *self = NULL;
    char why[256] = "";
    results res = {0};
    vg_err err = t->open(conf, on_done, &res, &self, why, sizeof why);
    if (err == VG_OK) {
        t->close(self);
        fail_msg("%s sink opened; expected it to be refused", conf->type);
    }
    assert_null(self);
    va_list ap;
    va_start(ap, conf);
    for (const char *want; (want = va_arg(ap, const char *)) != NULL;)
        if (strstr(why, want) == NULL)
            fail_msg("expected '%s' in: %s", want, why);
    va_end(ap);
}

/* ---- The table --------------------------------------------------------- */

static void
test_sink_types_are_listed_and_found_in_order(void **state)
{
    (void)state;
    static const char *const want[] = {"stdout", "jsonl", "nng", "webhook"};
    for (size_t i = 0; i < VG_ARRAY_LEN(want); i++) {
        assert_non_null(vg_sink_types[i]);
        assert_string_equal(vg_sink_types[i], want[i]);
        const vg_sink_type *t = vg_sink_find(want[i]);
        assert_non_null(t);
        assert_string_equal(t->type, want[i]);
    }
    assert_null(vg_sink_types[VG_ARRAY_LEN(want)]);
    assert_null(vg_sink_find("kafka"));
}

/* ---- stdout ------------------------------------------------------------ */

static void
test_stdout_writes_each_alert_as_a_line_and_reports_it_delivered(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    results res = {0};
    vg_sink_conf conf = {.type = "stdout", .file = f};
    const vg_sink_type *t = vg_sink_find("stdout");
    void *s = open_ok(&conf, &res);

    vg_outrec a[] = {rec(7, "r1", "{\"a\":1}"), rec(8, "r2", "{\"b\":\"x y\"}")};
    assert_int_equal(t->deliver(s, a, 2), VG_OK);
    /* synchronous: reported before deliver returned */
    assert_seqs(&res, (const uint64_t[]){7, 8}, 2);
    vg_outrec b[] = {rec(9, "r1", "{}")};
    assert_int_equal(t->deliver(s, b, 1), VG_OK);
    assert_int_equal(t->deliver(s, NULL, 0), VG_OK);
    assert_int_equal(t->flush(s, 1.0), VG_OK);
    assert_seqs(&res, (const uint64_t[]){7, 8, 9}, 3);

    /* flushed after each call: the bytes are in the file without closing */
    char text[128] = "";
    rewind(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    assert_string_equal(text, "{\"a\":1}\n{\"b\":\"x y\"}\n{}\n");

    vg_sink_health h;
    t->health(s, &h);
    assert_true(h.ok);
    assert_int_equal(h.delivered, 3);
    assert_int_equal(h.failed, 0);
    assert_int_equal(h.in_flight, 0);
    t->close(s);
    /* the stream is the caller's: still open */
    assert_int_equal(fputs("after\n", f) >= 0, 1);
    fclose(f);
}

static void
test_stdout_write_error_reports_nothing_and_shows_in_health(void **state)
{
    (void)state;
    FILE *f = fopen("/dev/full", "w");
    if (f == NULL)
        skip();
    results res = {0};
    vg_sink_conf conf = {.type = "stdout", .file = f};
    const vg_sink_type *t = vg_sink_find("stdout");
    void *s = open_ok(&conf, &res);
    vg_outrec a[] = {rec(1, "r1", "{\"a\":1}"), rec(2, "r1", "{\"a\":2}")};
    assert_int_equal(t->deliver(s, a, 2), VG_EIO);
    assert_int_equal(res.n, 0);
    assert_int_equal(res.dead, 0);
    vg_sink_health h;
    t->health(s, &h);
    assert_false(h.ok);
    assert_int_equal(h.failed, 1);
    assert_int_equal(h.delivered, 0);
    assert_non_null(strstr(h.last_error, strerror(ENOSPC)));
    /* offered again later: it fails again, and still reports nothing */
    assert_int_equal(t->deliver(s, a, 2), VG_EIO);
    assert_int_equal(res.n, 0);
    t->close(s);
    fclose(f);
}

static void
test_stdout_open_refuses_a_path_or_url(void **state)
{
    (void)state;
    vg_sink_conf conf = {.type = "stdout", .path = "alerts.jsonl"};
    expect_refused(&conf, "a stdout sink takes no path", "{type: jsonl, path: alerts.jsonl}", NULL);
    conf = (vg_sink_conf){.type = "stdout", .url = "tcp://127.0.0.1:7472"};
    expect_refused(&conf, "a stdout sink takes no url", "type: nng", NULL);
}

/* ---- jsonl ------------------------------------------------------------- */

static void
test_jsonl_appends_exact_lines_across_opens_with_fsync(void **state)
{
    (void)state;
    char *dir = temp_dir();
    char *path;
    assert_true(asprintf(&path, "%s/alerts.jsonl", dir) > 0);
    mode_t old_umask = umask(022);
    const vg_sink_type *t = vg_sink_find("jsonl");
    results res = {0};
    vg_sink_conf conf = {.type = "jsonl", .path = path, .fsync = true};

    void *s = open_ok(&conf, &res);
    vg_outrec a[] = {rec(1, "r1", "{\"n\":1}"), rec(2, "r2", "{\"n\":2,\"s\":\"a\\nb\"}")};
    assert_int_equal(t->deliver(s, a, 2), VG_OK);
    assert_seqs(&res, (const uint64_t[]){1, 2}, 2);
    t->close(s);

    s = open_ok(&conf, &res); /* appends, does not truncate */
    vg_outrec b[] = {rec(3, "r1", "{\"n\":3}")};
    vg_outrec c[] = {rec(4, "r1", "{\"n\":4}"), rec(5, "r3", "{\"n\":5}")};
    assert_int_equal(t->deliver(s, b, 1), VG_OK);
    assert_int_equal(t->deliver(s, c, 2), VG_OK);
    assert_int_equal(t->flush(s, 1.0), VG_OK);
    assert_seqs(&res, (const uint64_t[]){1, 2, 3, 4, 5}, 5);
    vg_sink_health h;
    t->health(s, &h);
    assert_true(h.ok);
    assert_int_equal(h.delivered, 3); /* since this open */
    assert_int_equal(h.failed, 0);
    t->close(s);

    char *text = read_all(path);
    assert_string_equal(text, "{\"n\":1}\n"
                              "{\"n\":2,\"s\":\"a\\nb\"}\n"
                              "{\"n\":3}\n"
                              "{\"n\":4}\n"
                              "{\"n\":5}\n");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    umask(old_umask);
    free(text);
    unlink(path);
    rmdir(dir);
    free(path);
    free(dir);
}

static void
test_jsonl_full_disk_reports_nothing_and_shows_in_health(void **state)
{
    (void)state;
    if (access("/dev/full", W_OK) != 0)
        skip();
    const vg_sink_type *t = vg_sink_find("jsonl");
    results res = {0};
    vg_sink_conf conf = {.type = "jsonl", .path = "/dev/full"};
    void *s = open_ok(&conf, &res);
    vg_outrec a[] = {rec(1, "r1", "{\"a\":1}"), rec(2, "r1", "{\"a\":2}")};
    assert_int_equal(t->deliver(s, a, 2), VG_EIO);
    assert_int_equal(res.n, 0);
    assert_int_equal(res.dead, 0);
    vg_sink_health h;
    t->health(s, &h);
    assert_false(h.ok);
    assert_int_equal(h.failed, 1);
    assert_int_equal(h.delivered, 0);
    assert_int_equal(h.in_flight, 0);
    assert_non_null(strstr(h.last_error, "/dev/full"));
    assert_non_null(strstr(h.last_error, strerror(ENOSPC)));
    assert_non_null(strstr(h.last_error, "offered again"));
    t->close(s);
}

/* logrotate moves the file away: the next delivery opens the path again,
 * so the old file keeps what it had and the new one gets what follows. */
static void
test_jsonl_follows_a_rotated_file(void **state)
{
    (void)state;
    char *dir = temp_dir();
    char *path, *moved;
    assert_true(asprintf(&path, "%s/alerts.jsonl", dir) > 0);
    assert_true(asprintf(&moved, "%s/alerts.jsonl.1", dir) > 0);
    const vg_sink_type *t = vg_sink_find("jsonl");
    results res = {0};
    vg_sink_conf conf = {.type = "jsonl", .path = path};
    void *s = open_ok(&conf, &res);
    vg_outrec a[] = {rec(1, "r1", "{\"n\":1}")};
    assert_int_equal(t->deliver(s, a, 1), VG_OK);
    assert_int_equal(rename(path, moved), 0);
    vg_outrec b[] = {rec(2, "r1", "{\"n\":2}")};
    assert_int_equal(t->deliver(s, b, 1), VG_OK);
    assert_int_equal(unlink(path), 0); /* removed outright, too */
    vg_outrec c[] = {rec(3, "r1", "{\"n\":3}")};
    assert_int_equal(t->deliver(s, c, 1), VG_OK);
    t->close(s);
    assert_seqs(&res, (const uint64_t[]){1, 2, 3}, 3);
    char buf[64] = "";
    FILE *f = fopen(moved, "r");
    assert_non_null(f);
    assert_non_null(fgets(buf, sizeof buf, f));
    assert_string_equal(buf, "{\"n\":1}\n");
    assert_null(fgets(buf, sizeof buf, f));
    fclose(f);
    f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(buf, sizeof buf, f));
    assert_string_equal(buf, "{\"n\":3}\n");
    fclose(f);
    unlink(path);
    unlink(moved);
    rmdir(dir);
    free(path);
    free(moved);
    free(dir);
}

/* A write that stops part way (here: past RLIMIT_FSIZE, a short write and
 * then EFBIG) leaves the file as it was, and the records come again. */
static void
test_jsonl_short_write_cuts_the_file_back_and_reports_nothing(void **state)
{
    (void)state;
    char *dir = temp_dir();
    char *path;
    assert_true(asprintf(&path, "%s/alerts.jsonl", dir) > 0);
    const vg_sink_type *t = vg_sink_find("jsonl");
    results res = {0};
    vg_sink_conf conf = {.type = "jsonl", .path = path};
    void *s = open_ok(&conf, &res);
    vg_outrec a[] = {rec(1, "r1", "{\"n\":1}")}; /* 8 bytes with its newline */
    assert_int_equal(t->deliver(s, a, 1), VG_OK);

    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 20;
    void (*old_sig)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    vg_outrec b[] = {rec(2, "r1", "{\"n\":2222222}"), rec(3, "r1", "{\"n\":3333333}")};
    vg_err err = t->deliver(s, b, 2);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, old_sig);
    assert_int_equal(err, VG_EIO);
    assert_seqs(&res, (const uint64_t[]){1}, 1);
    vg_sink_health h;
    t->health(s, &h);
    assert_false(h.ok);
    assert_non_null(strstr(h.last_error, strerror(EFBIG)));
    assert_null(strstr(h.last_error, "cutting off the partial lines failed"));
    char *text = read_all(path);
    assert_string_equal(text, "{\"n\":1}\n");
    free(text);

    /* offered again once the file can grow: whole lines, once each */
    assert_int_equal(t->deliver(s, b, 2), VG_OK);
    assert_seqs(&res, (const uint64_t[]){1, 2, 3}, 3);
    t->health(s, &h);
    assert_true(h.ok);
    t->close(s);
    text = read_all(path);
    assert_string_equal(text, "{\"n\":1}\n{\"n\":2222222}\n{\"n\":3333333}\n");
    free(text);
    unlink(path);
    rmdir(dir);
    free(path);
    free(dir);
}

static void
test_jsonl_open_explains_a_missing_or_unopenable_path(void **state)
{
    (void)state;
    char *dir = temp_dir();
    char *missing;
    assert_true(asprintf(&missing, "%s/no-such-folder/alerts.jsonl", dir) > 0);

    vg_sink_conf conf = {.type = "jsonl"};
    expect_refused(&conf, "a jsonl sink needs a path: write path: alerts.jsonl", NULL);
    conf.path = "";
    expect_refused(&conf, "a jsonl sink needs a path", NULL);
    conf.path = missing;
    expect_refused(&conf, "cannot open jsonl file '", missing, strerror(ENOENT),
                   "create its folder first", NULL);
    conf.path = dir;
    expect_refused(&conf, "cannot open jsonl file '", dir, strerror(EISDIR), "name a file in it",
                   NULL);
    if (access("/dev/full", W_OK) == 0) {
        conf = (vg_sink_conf){.type = "jsonl", .path = "/dev/full", .fsync = true};
        expect_refused(&conf, "jsonl file '/dev/full' is not a regular file, so fsync: true", NULL);
    }
    conf = (vg_sink_conf){.type = "jsonl", .path = "a.jsonl", .url = "tcp://127.0.0.1:1"};
    expect_refused(&conf, "a jsonl sink takes no url", NULL);
    rmdir(dir);
    free(missing);
    free(dir);
}

/* ---- nng --------------------------------------------------------------- */

/* Receives one message into buf (NUL-terminated after len bytes); false on
 * timeout. */
static bool
sub_recv(nng_socket sub, char *buf, size_t cap, size_t *len)
{
    nng_msg *m;
    int rv = nng_recvmsg(sub, &m, 0);
    if (rv == NNG_ETIMEDOUT)
        return false;
    if (rv != 0)
        fail_msg("nng_recvmsg: %s", nng_strerror(rv));
    *len = nng_msg_len(m);
    assert_true(*len < cap);
    memcpy(buf, nng_msg_body(m), *len);
    buf[*len] = '\0';
    nng_msg_free(m);
    return true;
}

static bool
is_msg(const char *buf, size_t len, const char *rule, const char *json)
{
    size_t lr = strlen(rule) + 1, lj = strlen(json);
    return len == lr + lj && memcmp(buf, rule, lr) == 0 && memcmp(buf + lr, json, lj) == 0;
}

static void
test_nng_subscriber_gets_exactly_its_rule_as_topic_nul_json(void **state)
{
    (void)state;
    char *dir = temp_dir();
    char *url;
    assert_true(asprintf(&url, "ipc://%s/alerts.ipc", dir) > 0);
    const vg_sink_type *t = vg_sink_find("nng");
    results res = {0};
    vg_sink_conf conf = {.type = "nng", .url = url};
    void *s = open_ok(&conf, &res);

    nng_socket sub;
    assert_int_equal(nng_sub0_open(&sub), 0);
    /* the name and its NUL: card_testing, not card_testing_v2 */
    assert_int_equal(nng_socket_set(sub, NNG_OPT_SUB_SUBSCRIBE, "card_testing", 13), 0);
    assert_int_equal(nng_socket_set_ms(sub, NNG_OPT_RECVTIMEO, 20), 0);
    assert_int_equal(nng_dial(sub, url, NULL, 0), 0);

    /* PUB drops what it publishes before the subscriber is connected: probe
     * until one arrives (probes are card_testing alerts, skipped below) */
    char buf[256];
    size_t len = 0;
    bool up = false;
    uint64_t nprobes = 0;
    while (nprobes < 500 && !up) {
        vg_outrec p = rec(1000 + nprobes++, "card_testing", "{\"probe\":true}");
        assert_int_equal(t->deliver(s, &p, 1), VG_OK);
        up = sub_recv(sub, buf, sizeof buf, &len);
    }
    assert_true(up);
    res = (results){0};

    vg_outrec a[] = {
        rec(1, "card_testing", "{\"id\":\"a1\"}"),
        rec(2, "velocity", "{\"id\":\"a2\"}"),
        rec(3, "card_testing_v2", "{\"id\":\"a3\"}"),
        rec(4, "card_testing", "{\"id\":\"a4\"}"),
        rec(5, "card", "{\"id\":\"a5\"}"),
    };
    vg_outrec end = rec(6, "card_testing", "{\"end\":true}");
    assert_int_equal(t->deliver(s, a, VG_ARRAY_LEN(a)), VG_OK);
    assert_int_equal(t->deliver(s, &end, 1), VG_OK);
    assert_seqs(&res, (const uint64_t[]){1, 2, 3, 4, 5, 6}, 6);

    /* one pipe keeps order: everything published before the end marker that
     * passes the filter arrives before it */
    assert_int_equal(nng_socket_set_ms(sub, NNG_OPT_RECVTIMEO, 10000), 0);
    const char *got[8];
    size_t ngot = 0;
    for (;;) {
        assert_true(sub_recv(sub, buf, sizeof buf, &len));
        if (is_msg(buf, len, "card_testing", "{\"probe\":true}"))
            continue;
        if (is_msg(buf, len, "card_testing", "{\"end\":true}"))
            break;
        assert_true(ngot < VG_ARRAY_LEN(got));
        if (is_msg(buf, len, "card_testing", "{\"id\":\"a1\"}"))
            got[ngot++] = "a1";
        else if (is_msg(buf, len, "card_testing", "{\"id\":\"a4\"}"))
            got[ngot++] = "a4";
        else
            fail_msg("unexpected message: '%s' + '%s'", buf,
                     strlen(buf) + 1 < len ? buf + strlen(buf) + 1 : "");
    }
    assert_int_equal(ngot, 2);
    assert_string_equal(got[0], "a1");
    assert_string_equal(got[1], "a4");

    vg_sink_health h;
    t->health(s, &h);
    assert_true(h.ok);
    assert_int_equal(h.delivered, nprobes + 6); /* published, whoever listened */
    assert_int_equal(h.in_flight, 0);
    assert_int_equal(t->flush(s, 1.0), VG_OK);
    nng_close(sub);
    t->close(s);
    rmdir(dir);
    free(url);
    free(dir);
}

static void
test_nng_open_explains_a_bad_or_busy_url(void **state)
{
    (void)state;
    vg_sink_conf conf = {.type = "nng"};
    expect_refused(&conf, "an nng sink needs a url", "tcp://127.0.0.1:7472", NULL);
    conf.url = "nope://somewhere";
    expect_refused(&conf, "nng sink cannot listen on 'nope://somewhere'", nng_strerror(NNG_ENOTSUP),
                   "write a url such as", NULL);
    conf.url = "tcp://127.0.0.1:notaport";
    expect_refused(&conf, "cannot listen on 'tcp://127.0.0.1:notaport'",
                   nng_strerror(NNG_EADDRINVAL), NULL);
    conf = (vg_sink_conf){.type = "nng", .url = "tcp://127.0.0.1:7472", .path = "x.ipc"};
    expect_refused(&conf, "an nng sink takes no path", NULL);

    char *dir = temp_dir();
    char *url;
    assert_true(asprintf(&url, "ipc://%s/busy.ipc", dir) > 0);
    results res = {0};
    conf = (vg_sink_conf){.type = "nng", .url = url};
    void *s = open_ok(&conf, &res);
    expect_refused(&conf, "cannot listen on '", url, nng_strerror(NNG_EADDRINUSE),
                   "another process", NULL);
    vg_sink_find("nng")->close(s);
    rmdir(dir);
    free(url);
    free(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sink_types_are_listed_and_found_in_order),
        cmocka_unit_test(test_stdout_writes_each_alert_as_a_line_and_reports_it_delivered),
        cmocka_unit_test(test_stdout_write_error_reports_nothing_and_shows_in_health),
        cmocka_unit_test(test_stdout_open_refuses_a_path_or_url),
        cmocka_unit_test(test_jsonl_appends_exact_lines_across_opens_with_fsync),
        cmocka_unit_test(test_jsonl_full_disk_reports_nothing_and_shows_in_health),
        cmocka_unit_test(test_jsonl_short_write_cuts_the_file_back_and_reports_nothing),
        cmocka_unit_test(test_jsonl_follows_a_rotated_file),
        cmocka_unit_test(test_jsonl_open_explains_a_missing_or_unopenable_path),
        cmocka_unit_test(test_nng_subscriber_gets_exactly_its_rule_as_topic_nul_json),
        cmocka_unit_test(test_nng_open_explains_a_bad_or_busy_url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
