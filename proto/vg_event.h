/*
 * vg_event.h - one event as rules see it: a flat array of values, one per
 * rule-visible field of its stream (vg_schema.h slots), plus its attributes.
 *
 * Every reader (protobuf, CSV, JSONL) fills the same record, so the VM and
 * the engine never see a wire format. Values hold numbers as doubles: money
 * is minor units / 10^digits (a correctly rounded division of exact integers,
 * so it equals the double a decimal literal compiles to and comparisons with
 * literals are exact); times and durations are milliseconds; enums their
 * wire number; bools 0 or 1. Strings are not NUL-terminated and point into
 * memory the event's filler owns; they stay valid until the filler reuses it.
 */
#ifndef VG_EVENT_H
#define VG_EVENT_H

#include "vg_schema.h"

typedef enum vg_vkind {
    VG_V_MISSING = 0, /* absent optional field, absent attr, empty-window avg, ... */
    VG_V_NUM,
    VG_V_STR,
    VG_V_BOOL,
    VG_V_TIME, /* num: Unix epoch ms */
    VG_V_DUR,  /* num: ms */
    VG_V_ENUM, /* num: the wire number */
} vg_vkind;

typedef struct vg_value {
    union {
        double num;    /* NUM, TIME, DUR, ENUM, BOOL */
        const char *s; /* STR */
    } u;
    uint32_t len; /* STR: bytes */
    uint8_t kind; /* vg_vkind */
} vg_value;

typedef struct vg_attr {
    const char *key, *val;
    uint32_t klen, vlen; /* bytes */
} vg_attr;

/* Fields of one stream are at most this many (a schema with more is refused). */
#define VG_MAX_FIELDS 64

typedef struct vg_event {
    vg_stream_id stream;
    uint8_t digits; /* decimal digits of the currency: money fields are minor / 10^digits */
    uint32_t nattrs;
    const vg_attr *attrs;      /* the attrs map, in wire order */
    vg_value v[VG_MAX_FIELDS]; /* by slot; slots past the stream's fields are unused */
} vg_event;

/* Makes ev an event of stream s with every field missing and no attrs. */
void vg_event_clear(vg_event *ev, vg_stream_id s);

/* Gives each field still missing what an absent field is on the wire: the
 * proto3 zero value ("", 0, the *_UNSPECIFIED enum, false), except fields
 * that are `optional` (they stay missing), `id` and the time (text readers
 * tell an absent id or time from a zero one). Text readers call it last, so
 * CSV, JSONL and protobuf input give the same event. */
void vg_event_defaults(const vg_schema *sc, vg_event *ev);

/* The bytes vg_event_copy() needs for ev's strings and attrs. */
size_t vg_event_size(const vg_schema *sc, const vg_event *ev);
/* Copies src into dst with its strings and attrs in mem (vg_event_size()
 * bytes, suitably aligned for pointers), so the copy outlives the buffers of
 * src's filler. Only the stream's slots are copied. */
void vg_event_copy(const vg_schema *sc, vg_event *dst, const vg_event *src, char *mem);

/* Decimal digits of an ISO 4217 currency's minor unit: 0 (JPY), 3 (KWD),
 * 4 (CLF), else 2 (unknown and empty codes included). */
unsigned vg_currency_digits(const char *code, size_t len);

/* 10^digits for digits 0..4. */
double vg_pow10(unsigned digits);

/* A decoded protobuf Event that an event's strings point into; reused from
 * one decode to the next. */
typedef struct vg_pb_event vg_pb_event;

/* Decodes one serialized vigil.v1.Event (the default schema's) into ev,
 * holding the message in *holder (made on first use; vg_pb_event_free()
 * it). VG_EINVAL, with *why, when the bytes are not such an Event. */
vg_err vg_pb_decode(vg_pb_event **holder, const vg_schema *sc, const uint8_t *buf, size_t len,
                    vg_event *ev, char *why, size_t whylen);
void vg_pb_event_free(vg_pb_event *h);

/* The events of one EventBatch (the ingest request). */
typedef struct vg_batch {
    vg_event *ev;        /* n events, valid until the next decode into the holder */
    const char **bad;    /* per event: why it cannot be an event (static text), or NULL */
    const uint8_t **raw; /* per event: its bytes in the request as the delimited format has
                            them (a varint length, then the Event), or NULL */
    size_t *rawlen;
    size_t n, cap;
    bool decisions; /* the producer asks for a decision per event */
} vg_batch;

/* Decodes a serialized vigil.v1.EventBatch into out (reused between calls;
 * vg_batch_free() it), its strings in *holder. VG_EINVAL, with *why, when
 * the bytes are not such a batch; VG_ELIMIT, with *why, when decoding its
 * events needs more memory than the budget (16 times its size, 64 MiB to
 * 512 MiB): fewer events per batch would fit. */
vg_err vg_pb_decode_batch(vg_pb_event **holder, const vg_schema *sc, const uint8_t *buf, size_t len,
                          vg_batch *out, char *why, size_t whylen);
void vg_batch_free(vg_batch *b);

/* An EventBatch of n events (the default schema's), asking for decisions or
 * not, into out (replaced). */
vg_err vg_batch_encode(const vg_schema *sc, const vg_event *const *evs, size_t n, bool decisions,
                       vg_buf *out);

/* One event of a batch that was not taken. */
typedef struct vg_rejection {
    uint32_t index; /* in the batch */
    const char *event_id;
    uint32_t idlen;
    const char *reason; /* what, and what was expected */
    const char *code;   /* a stable label: "missing_id", "bad_time", "malformed", ... */
} vg_rejection;

/* One rule that alerted on an event, in a decision. */
typedef struct vg_rule_hit {
    const char *rule;
    int score;
    int action; /* 0 allow, 1 review, 2 block */
    const char *message;
    uint32_t message_len;
    bool shadow;
} vg_rule_hit;

/* The verdict for one event (SPEC §2 "Decisions"). */
typedef struct vg_decision {
    const char *event_id;
    uint32_t idlen;
    int action; /* 0 allow, 1 review, 2 block */
    int score;
    vg_rule_hit *hits;
    size_t nhits;
    bool duplicate; /* a resent id: the recorded decision, without its rules */
} vg_decision;

/* A BatchReply. */
typedef struct vg_reply {
    uint32_t accepted, duplicates;
    vg_rejection *rej;
    size_t nrej;
    vg_decision *dec; /* when the batch asked: one per event, in batch order */
    size_t ndec;
    const char *error; /* non-NULL: nothing in the batch was taken; retry later */
    bool permanent;    /* with error: retrying the same request cannot help */
} vg_reply;

vg_err vg_reply_encode(const vg_reply *r, vg_buf *out); /* out is replaced */
/* Decodes a BatchReply; its strings are copies (vg_reply_free()). VG_EINVAL:
 * not such a message. */
vg_err vg_reply_decode(const uint8_t *buf, size_t len, vg_reply *out);
void vg_reply_free(vg_reply *r);

/* Appends ev (an event of the default schema) to out as one
 * varint-length-delimited vigil.v1.Event: the `pb` input format. Money is
 * written as minor units of the event's currency. */
vg_err vg_pb_encode(const vg_schema *sc, const vg_event *ev, vg_buf *out);

#endif
