/*
 * test_schema.c - the field table derived from protobuf-c descriptors: names,
 * types and conventions (X_minor money, time_ms time, optional, maps), for
 * the real schema and for an extended copy of vigil.proto built at test time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vg_event.h"
#include "vg_schema.h"
#include "vg_schema_pb.h"
#include "vigil.pb-c.h"
#include "vigil_ext.pb-c.h"

static const vg_field *
field(const vg_schema *sc, vg_stream_id s, const char *name)
{
    return vg_schema_field(sc, s, name, strlen(name));
}

static void
test_transaction_fields_follow_the_naming_conventions(void **state)
{
    (void)state;
    const vg_schema *sc = vg_schema_default();
    assert_non_null(sc);
    const vg_field *f = field(sc, VG_STREAM_TXN, "amount");
    assert_non_null(f);
    assert_int_equal(f->type, VG_FT_NUMBER);
    assert_true(f->flags & VG_FIELD_MONEY);
    assert_false(f->flags & VG_FIELD_OPTIONAL);
    assert_string_equal(f->wire_name, "amount_minor");
    assert_null(field(sc, VG_STREAM_TXN, "amount_minor"));

    f = field(sc, VG_STREAM_TXN, "time");
    assert_non_null(f);
    assert_int_equal(f->type, VG_FT_TIME);
    assert_string_equal(f->wire_name, "time_ms");

    f = field(sc, VG_STREAM_TXN, "balance_before");
    assert_non_null(f);
    assert_true(f->flags & VG_FIELD_MONEY);
    assert_true(f->flags & VG_FIELD_OPTIONAL);

    f = field(sc, VG_STREAM_TXN, "lat");
    assert_non_null(f);
    assert_int_equal(f->type, VG_FT_NUMBER);
    assert_true(f->flags & VG_FIELD_OPTIONAL);
    assert_false(f->flags & VG_FIELD_MONEY);

    f = field(sc, VG_STREAM_TXN, "attrs");
    assert_non_null(f);
    assert_int_equal(f->type, VG_FT_MAP);

    f = field(sc, VG_STREAM_TXN, "currency");
    assert_ptr_equal(vg_schema_currency(sc, VG_STREAM_TXN), f);
    assert_int_equal(f->type, VG_FT_STRING);
}

static void
test_enum_fields_expose_their_value_names(void **state)
{
    (void)state;
    const vg_schema *sc = vg_schema_default();
    const vg_field *f = field(sc, VG_STREAM_TXN, "status");
    assert_int_equal(f->type, VG_FT_ENUM);
    assert_string_equal(vg_enum_name(f->enum_type), "Status");
    int v = -1;
    assert_true(vg_enum_lookup(f->enum_type, "DECLINED", 8, &v));
    assert_int_equal(v, 2);
    assert_false(vg_enum_lookup(f->enum_type, "DECLINE", 7, &v));
    assert_string_equal(vg_enum_name_of(f->enum_type, 1), "APPROVED");
    assert_null(vg_enum_name_of(f->enum_type, 99));
    f = field(sc, VG_STREAM_TXN, "type");
    assert_true(vg_enum_lookup(f->enum_type, "CASH_OUT", 8, &v));
    f = field(sc, VG_STREAM_TXN, "channel");
    assert_true(vg_enum_lookup(f->enum_type, "ECOMMERCE", 9, &v));
}

static void
test_account_event_fields(void **state)
{
    (void)state;
    const vg_schema *sc = vg_schema_default();
    assert_int_equal(field(sc, VG_STREAM_EVENT, "kind")->type, VG_FT_STRING);
    assert_int_equal(field(sc, VG_STREAM_EVENT, "success")->type, VG_FT_BOOL);
    assert_int_equal(field(sc, VG_STREAM_EVENT, "time")->type, VG_FT_TIME);
    assert_null(field(sc, VG_STREAM_EVENT, "amount"));
    assert_string_equal(vg_stream_name(VG_STREAM_EVENT), "event");
    assert_string_equal(vg_stream_name(VG_STREAM_TXN), "txn");
    /* slots are dense and match positions */
    for (size_t i = 0; i < vg_schema_nfields(sc, VG_STREAM_EVENT); i++)
        assert_int_equal(vg_schema_field_at(sc, VG_STREAM_EVENT, i)->slot, i);
}

/* The extended copy of vigil.proto (tests/unit/extend_proto.cmake) adds
 * fields; the schema layer must see them with no code change. */
static void
test_fields_added_to_the_proto_appear_in_the_schema(void **state)
{
    (void)state;
    vg_schema *sc = NULL;
    char why[256];
    assert_int_equal(vg_schema_new(&vigiltest__v1__transaction__descriptor,
                                   &vigiltest__v1__account_event__descriptor, why, sizeof why, &sc),
                     VG_OK);
    const vg_field *f = field(sc, VG_STREAM_TXN, "risk_segment");
    assert_non_null(f);
    assert_int_equal(f->type, VG_FT_STRING);
    f = field(sc, VG_STREAM_TXN, "fee");
    assert_non_null(f);
    assert_true(f->flags & VG_FIELD_MONEY);
    f = field(sc, VG_STREAM_TXN, "ip_risk");
    assert_non_null(f);
    assert_true(f->flags & VG_FIELD_OPTIONAL);
    f = field(sc, VG_STREAM_TXN, "tier");
    assert_int_equal(f->type, VG_FT_ENUM);
    int v;
    assert_true(vg_enum_lookup(f->enum_type, "GOLD", 4, &v));
    assert_non_null(field(sc, VG_STREAM_EVENT, "browser"));
    assert_null(field(vg_schema_default(), VG_STREAM_TXN, "risk_segment"));
    vg_schema_free(sc);
}

/* Two wire fields that map to one rule name are refused with a reason. */
static void
test_clashing_rule_names_are_refused(void **state)
{
    (void)state;
    const ProtobufCMessageDescriptor *real = &vigil__v1__transaction__descriptor;
    ProtobufCMessageDescriptor md = *real;
    ProtobufCFieldDescriptor *fields = malloc(sizeof(ProtobufCFieldDescriptor) * real->n_fields);
    memcpy(fields, real->fields, sizeof(ProtobufCFieldDescriptor) * real->n_fields);
    for (unsigned i = 0; i < md.n_fields; i++)
        if (strcmp(fields[i].name, "currency") == 0)
            fields[i].name = "amount"; /* a string `amount` beside amount_minor */
    md.fields = fields;
    vg_schema *sc = NULL;
    char why[256] = "";
    assert_int_equal(
        vg_schema_new(&md, &vigil__v1__account_event__descriptor, why, sizeof why, &sc), VG_EINVAL);
    assert_null(sc);
    assert_non_null(strstr(why, "'amount_minor' and 'amount' are both called 'amount'"));
    free(fields);
}

/* A reply echoes ids and messages from producers' events; protobuf strings
 * must be UTF-8 (strict clients refuse the whole message otherwise), so bad
 * bytes are replaced, valid text kept. */
static void
test_reply_strings_are_made_valid_utf8(void **state)
{
    (void)state;
    vg_rejection rej = {.index = 3,
                        .event_id = "\xff\xfe-ok-\xc3\xa9-\xc3",
                        .idlen = 11,
                        .reason = "r",
                        .code = "malformed"};
    vg_rule_hit hit = {.rule = "x", .message = "caf\xe9 \xe2\x82\xac", .message_len = 8};
    vg_decision dec = {.event_id = "\xc0\xafid", .idlen = 4, .hits = &hit, .nhits = 1};
    vg_reply rep = {.accepted = 1, .rej = &rej, .nrej = 1, .dec = &dec, .ndec = 1};
    vg_buf enc = {0};
    assert_int_equal(vg_reply_encode(&rep, &enc), VG_OK);
    vg_reply got;
    assert_int_equal(vg_reply_decode((const uint8_t *)enc.data, enc.len, &got), VG_OK);
    assert_int_equal(got.nrej, 1);
    assert_string_equal(got.rej[0].event_id, "\xef\xbf\xbd\xef\xbf\xbd-ok-\xc3\xa9-\xef\xbf\xbd");
    assert_int_equal(got.ndec, 1);
    /* an overlong '/' (C0 AF) is two bad bytes, not a slash */
    assert_string_equal(got.dec[0].event_id, "\xef\xbf\xbd\xef\xbf\xbdid");
    assert_string_equal(got.dec[0].hits[0].message, "caf\xef\xbf\xbd \xe2\x82\xac");
    vg_reply_free(&got);
    vg_buf_free(&enc);
}

/* A batch of n empty transactions, 4 bytes each: events = 1 { txn = 1 {} }. */
static void
empty_txns(vg_buf *b, size_t n)
{
    b->len = 0;
    for (size_t i = 0; i < n; i++)
        assert_int_equal(vg_buf_append(b, "\x0a\x02\x0a\x00", 4), VG_OK);
}

/* Decoding may take a bounded multiple of a batch's size; each event costs
 * protobuf-c about a kilobyte however small, so a batch of very many tiny
 * events is refused whole, as too big (a permanent error, not one
 * "malformed" per event for the ones the memory ran out on). */
static void
test_a_batch_too_big_to_decode_is_refused_whole(void **state)
{
    (void)state;
    const vg_schema *sc = vg_schema_default();
    vg_pb_event *h = NULL;
    vg_batch out = {0};
    vg_buf b = {0};
    char why[256] = "";
    empty_txns(&b, 1000);
    assert_int_equal(
        vg_pb_decode_batch(&h, sc, (const uint8_t *)b.data, b.len, &out, why, sizeof why), VG_OK);
    assert_int_equal(out.n, 1000);
    empty_txns(&b, 300000);
    assert_int_equal(
        vg_pb_decode_batch(&h, sc, (const uint8_t *)b.data, b.len, &out, why, sizeof why),
        VG_ELIMIT);
    assert_non_null(strstr(why, "send fewer events per batch"));
    /* and the holder is fine for the next batch */
    empty_txns(&b, 1000);
    assert_int_equal(
        vg_pb_decode_batch(&h, sc, (const uint8_t *)b.data, b.len, &out, why, sizeof why), VG_OK);
    assert_int_equal(out.n, 1000);
    vg_batch_free(&out);
    vg_pb_event_free(h);
    vg_buf_free(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transaction_fields_follow_the_naming_conventions),
        cmocka_unit_test(test_enum_fields_expose_their_value_names),
        cmocka_unit_test(test_account_event_fields),
        cmocka_unit_test(test_fields_added_to_the_proto_appear_in_the_schema),
        cmocka_unit_test(test_clashing_rule_names_are_refused),
        cmocka_unit_test(test_reply_strings_are_made_valid_utf8),
        cmocka_unit_test(test_a_batch_too_big_to_decode_is_refused_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
