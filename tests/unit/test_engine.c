/*
 * test_engine.c - the engine's batch look-ahead (vg_engine_prepare) changes
 * nothing but speed: the same events give the same alerts and outcomes
 * whether they are prepared in batches, not prepared, or prepared and then
 * passed out of order; and vg_event_copy() makes an event that outlives its
 * filler's buffers.
 */
#include <stdlib.h>

#include "testutil.h"

#include "vg_engine.h"

static const char *const RULES =
    "rule velocity { when count() over 10m >= 3 }\n"
    "rule cards { key device_id when distinct(card_id) over 1h >= 2 }\n"
    "rule big { where amount > 500 }\n"
    "rule declines { key card_id when count(status == DECLINED) over 1h >= 2 suppress 5m }\n";

#define NEV 600

/* NEV transactions over 17 accounts, 5 devices and 11 cards, a second apart;
 * every 50th repeats an earlier id, every 97th has none. Strings live in the
 * caller's text buffer (NEV rows of 3 x 16 bytes). */
static void
make_events(vg_event *evs, char (*text)[3][16], int nev)
{
    const vg_schema *sc = vg_schema_default();
    const vg_field *id = vg_schema_field(sc, VG_STREAM_TXN, "id", 2);
    const vg_field *tm = vg_schema_field(sc, VG_STREAM_TXN, "time", 4);
    const vg_field *acct = vg_schema_field(sc, VG_STREAM_TXN, "account_id", 10);
    const vg_field *dev = vg_schema_field(sc, VG_STREAM_TXN, "device_id", 9);
    const vg_field *card = vg_schema_field(sc, VG_STREAM_TXN, "card_id", 7);
    const vg_field *amt = vg_schema_field(sc, VG_STREAM_TXN, "amount", 6);
    const vg_field *st = vg_schema_field(sc, VG_STREAM_TXN, "status", 6);
    for (int i = 0; i < nev; i++) {
        vg_event *ev = &evs[i];
        vg_event_clear(ev, VG_STREAM_TXN);
        int n = i % 50 == 49 ? i - 7 : i;
        snprintf(text[i][0], 16, "t%d", n);
        snprintf(text[i][1], 16, "a%d", i % 17);
        snprintf(text[i][2], 16, "d%d", i % 5);
        if (i % 97 != 96)
            ev->v[id->slot] =
                (vg_value){.u.s = text[i][0], .len = strlen(text[i][0]), .kind = VG_V_STR};
        ev->v[tm->slot] = (vg_value){.u.num = 1.7e12 + 1000.0 * i, .kind = VG_V_TIME};
        ev->v[acct->slot] =
            (vg_value){.u.s = text[i][1], .len = strlen(text[i][1]), .kind = VG_V_STR};
        ev->v[dev->slot] =
            (vg_value){.u.s = text[i][2], .len = strlen(text[i][2]), .kind = VG_V_STR};
        ev->v[card->slot] =
            (vg_value){.u.s = text[i][1], .len = (i % 11) ? 2 : 0, .kind = VG_V_STR};
        ev->v[amt->slot] = (vg_value){.u.num = (i * 37) % 700, .kind = VG_V_NUM};
        ev->v[st->slot] = (vg_value){.u.num = i % 3 == 0 ? 2 : 1, .kind = VG_V_ENUM};
        vg_event_defaults(sc, ev);
    }
}

static void
on_alert(void *ctx, const vg_alert *a)
{
    vg_buf *out = ctx;
    assert_int_equal(vg_buf_append(out, a->json, a->json_len), VG_OK);
    assert_int_equal(vg_buf_append(out, a->suppressed ? " S\n" : "\n", a->suppressed ? 3 : 1),
                     VG_OK);
}

/* The order events are passed in: in file order, or with skip the second
 * of each batch before the first. */
static void
make_order(size_t *order, size_t batch, bool skip)
{
    for (size_t i = 0; i < NEV; i++)
        order[i] = i;
    for (size_t i = 0; skip && i + 1 < NEV; i += batch) {
        order[i] = i + 1;
        order[i + 1] = i;
    }
}

/* Runs the events through a fresh engine in order, preparing each batch of
 * that many (0: none) in file order: with skip, the second of a batch comes
 * first, so the rest are forgotten and pass unprepared. Returns the alerts
 * and outcomes as text. */
static void
run(vg_ruleset *rs, const vg_event *evs, const size_t *order, size_t batch, vg_buf *out)
{
    vg_engine *e;
    char why[256];
    assert_int_equal(vg_engine_open(rs, NULL, why, sizeof why, &e), VG_OK);
    const vg_event *ptrs[VG_ENGINE_BATCH];
    for (size_t i = 0; i < NEV; i++) {
        if (batch && i % batch == 0) {
            size_t n = NEV - i < batch ? NEV - i : batch;
            for (size_t j = 0; j < n; j++)
                ptrs[j] = &evs[i + j];
            assert_int_equal(vg_engine_prepare(e, ptrs, n), VG_OK);
        }
        size_t k = order[i];
        vg_outcome o;
        const char *reason;
        assert_int_equal(vg_engine_process(e, &evs[k], on_alert, out, &o, &reason), VG_OK);
        char line[64];
        snprintf(line, sizeof line, "event %zu: %d %s\n", k, (int)o, reason ? reason : "");
        assert_int_equal(vg_buf_append(out, line, strlen(line)), VG_OK);
    }
    assert_int_equal(vg_engine_close(e), VG_OK);
    assert_int_equal(vg_buf_append(out, "", 0), VG_OK);
}

static void
test_prepare_changes_nothing(void **state)
{
    (void)state;
    static vg_event evs[NEV];
    static char text[NEV][3][16];
    make_events(evs, text, NEV);
    captured cap;
    vg_ruleset *rs = NULL;
    assert_int_equal(compile_with(NULL, RULES, &cap, &rs), VG_OK);
    static size_t order[NEV];
    make_order(order, 1, false);
    vg_buf plain = {0};
    run(rs, evs, order, 0, &plain);
    /* the run does something: alerts of each rule, duplicates, a rejection */
    assert_non_null(strstr(plain.data, "\"rule\":\"velocity\""));
    assert_non_null(strstr(plain.data, "\"rule\":\"cards\""));
    assert_non_null(strstr(plain.data, "\"rule\":\"big\""));
    assert_non_null(strstr(plain.data, "\"rule\":\"declines\""));
    assert_non_null(strstr(plain.data, " S\n"));
    assert_non_null(strstr(plain.data, ": 1 \n"));
    assert_non_null(strstr(plain.data, "the event has no id"));
    static const size_t batches[] = {1, 7, 64};
    for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
        for (int skip = 0; skip < 2; skip++) {
            vg_buf want = {0}, got = {0};
            make_order(order, batches[b], skip);
            run(rs, evs, order, 0, &want);
            run(rs, evs, order, batches[b], &got);
            assert_string_equal(got.data, want.data);
            if (!skip)
                assert_string_equal(got.data, plain.data);
            vg_buf_free(&want);
            vg_buf_free(&got);
        }
    }
    vg_buf_free(&plain);
    vg_buf_free(&cap.text);
    vg_ruleset_unref(rs);
}

static void
test_event_copy(void **state)
{
    (void)state;
    const vg_schema *sc = vg_schema_default();
    static vg_event evs[1];
    static char text[1][3][16];
    make_events(evs, text, 1);
    char k[] = "key", v[] = "value";
    vg_attr attrs[2] = {{k, v, 3, 5}, {"", "", 0, 0}};
    evs[0].attrs = attrs;
    evs[0].nattrs = 2;
    size_t n = vg_event_size(sc, &evs[0]);
    assert_int_equal(n, 2 * sizeof(vg_attr) + strlen("t0a0d0") + 8);
    char *mem = malloc(n);
    assert_non_null(mem);
    vg_event copy;
    vg_event_copy(sc, &copy, &evs[0], mem);
    memset(text, 'x', sizeof text); /* the filler reuses its buffers */
    memset(k, 'x', 3);
    const vg_field *acct = vg_schema_field(sc, VG_STREAM_TXN, "account_id", 10);
    assert_int_equal(copy.v[acct->slot].len, 2);
    assert_memory_equal(copy.v[acct->slot].u.s, "a0", 2);
    assert_int_equal(copy.nattrs, 2);
    assert_memory_equal(copy.attrs[0].key, "key", 3);
    assert_memory_equal(copy.attrs[0].val, "value", 5);
    assert_int_equal(copy.attrs[1].klen, 0);
    free(mem);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prepare_changes_nothing),
        cmocka_unit_test(test_event_copy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
