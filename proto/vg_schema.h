/*
 * vg_schema.h - the event fields rules can name, with their types.
 *
 * The schema is derived from the protobuf-c descriptors of proto/vigil.proto
 * (see vg_schema_pb.h), so a field added to the .proto is usable in rules with
 * no compiler change. Conventions (SPEC §1):
 *   - int64 `X_minor` is money: rules see `X`, a number in major units;
 *   - int64 `time_ms` is the event time: rules see `time`, a timestamp;
 *   - a field inside a one-field oneof (how protoc-c spells proto3 `optional`)
 *     is optional: absent means missing, not zero;
 *   - map<string,string> is read with attr("name"), not by its name;
 *   - bytes, nested messages and repeated fields are not visible to rules.
 * This header exposes no protobuf-c type.
 */
#ifndef VG_SCHEMA_H
#define VG_SCHEMA_H

#include "vg_base.h"

/* The event streams rules can read; the names are the rule keywords. */
typedef enum vg_stream_id {
    VG_STREAM_TXN = 0,   /* Transaction, `txn` in rules */
    VG_STREAM_EVENT = 1, /* AccountEvent, `event` in rules */
} vg_stream_id;
#define VG_NSTREAMS 2

/* "txn" or "event". */
const char *vg_stream_name(vg_stream_id s);

typedef enum vg_ftype {
    VG_FT_NUMBER = 1, /* integers, doubles, money */
    VG_FT_STRING,
    VG_FT_BOOL,
    VG_FT_TIME, /* Unix epoch milliseconds, UTC */
    VG_FT_ENUM,
    VG_FT_MAP, /* map<string,string>, read with attr() */
} vg_ftype;

enum {
    VG_FIELD_MONEY = 1 << 0,    /* wire X_minor: major units of `currency` */
    VG_FIELD_OPTIONAL = 1 << 1, /* may be absent (missing) */
};

typedef struct vg_enum vg_enum;

typedef struct vg_field {
    const char *name;      /* as rules write it: "amount", "time" */
    const char *wire_name; /* the protobuf field: "amount_minor", "time_ms" */
    vg_ftype type;
    unsigned flags;           /* VG_FIELD_* */
    unsigned slot;            /* 0-based index within its stream */
    const vg_enum *enum_type; /* VG_FT_ENUM only, else NULL */
    const void *pb;           /* the ProtobufCFieldDescriptor (vg_schema_pb.h) */
} vg_field;

typedef struct vg_schema vg_schema;

/* The schema of proto/vigil.proto, built once on first use and never freed.
 * NULL only when out of memory. Thread-safe. */
const vg_schema *vg_schema_default(void);

/* Frees a schema made by vg_schema_new(); NULL is a no-op. The default schema
 * must not be passed. */
void vg_schema_free(vg_schema *s);

/* The field that rules call name[0..len) in stream s, or NULL. */
const vg_field *vg_schema_field(const vg_schema *sc, vg_stream_id s, const char *name, size_t len);
/* Number of rule-visible fields of stream s, and the i-th (by slot). */
size_t vg_schema_nfields(const vg_schema *sc, vg_stream_id s);
const vg_field *vg_schema_field_at(const vg_schema *sc, vg_stream_id s, size_t i);
/* The `currency` field of stream s that money fields are scaled by, or NULL. */
const vg_field *vg_schema_currency(const vg_schema *sc, vg_stream_id s);

/* Enum types: the protobuf name ("Status"), its values (rule names are the
 * protobuf value names: "DECLINED"). Lookup returns false when absent. */
const char *vg_enum_name(const vg_enum *e);
size_t vg_enum_count(const vg_enum *e);
const char *vg_enum_value_name(const vg_enum *e, size_t i);
bool vg_enum_lookup(const vg_enum *e, const char *name, size_t len, int *number);
/* The value name for a wire number, or NULL for an unknown number. */
const char *vg_enum_name_of(const vg_enum *e, int number);

#endif
