/*
 * schema.c - derives the rule-visible fields of each stream from protobuf-c
 * descriptors (see vg_schema.h for the naming conventions).
 *
 * Nothing here knows a field by name except the two conventions `time_ms` and
 * `X_minor`, and `currency` as the scale of money.
 */
#include "vg_event.h"
#include "vg_schema.h"
#include "vg_schema_pb.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vigil.pb-c.h"

struct vg_enum {
    const ProtobufCEnumDescriptor *d;
};

typedef struct stream {
    vg_field *fields;
    size_t n;
    const vg_field *currency;
} stream;

struct vg_schema {
    stream streams[VG_NSTREAMS];
    vg_enum *enums; /* one per distinct enum descriptor */
    size_t nenums;
    char *names; /* storage for derived rule names */
};

const char *
vg_stream_name(vg_stream_id s)
{
    return s == VG_STREAM_TXN ? "txn" : "event";
}

static bool
ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && memcmp(s + n - m, suffix, m) == 0;
}

/* Is fd a field inside a oneof of its own, the shape of proto3 `optional`? */
static bool
is_single_oneof(const ProtobufCMessageDescriptor *md, const ProtobufCFieldDescriptor *fd)
{
    if (!(fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
        return false;
    for (unsigned i = 0; i < md->n_fields; i++) {
        const ProtobufCFieldDescriptor *o = &md->fields[i];
        if (o != fd && (o->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            o->quantifier_offset == fd->quantifier_offset)
            return false;
    }
    return true;
}

static bool
is_string_map(const ProtobufCFieldDescriptor *fd)
{
    if (fd->label != PROTOBUF_C_LABEL_REPEATED || fd->type != PROTOBUF_C_TYPE_MESSAGE)
        return false;
    const ProtobufCMessageDescriptor *e = fd->descriptor;
    if (e == NULL || e->n_fields != 2 || !ends_with(e->name, "Entry"))
        return false;
    return e->fields[0].type == PROTOBUF_C_TYPE_STRING &&
           e->fields[1].type == PROTOBUF_C_TYPE_STRING;
}

/* The rule type of a field, or 0 when rules cannot see it. */
static vg_ftype
field_type(const ProtobufCFieldDescriptor *fd, unsigned *flags)
{
    *flags = 0;
    if (is_string_map(fd))
        return VG_FT_MAP;
    if (fd->label == PROTOBUF_C_LABEL_REPEATED)
        return 0;
    switch (fd->type) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if (strcmp(fd->name, "time_ms") == 0)
            return VG_FT_TIME;
        if (ends_with(fd->name, "_minor"))
            *flags |= VG_FIELD_MONEY;
        return VG_FT_NUMBER;
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE: return VG_FT_NUMBER;
    case PROTOBUF_C_TYPE_BOOL: return VG_FT_BOOL;
    case PROTOBUF_C_TYPE_STRING: return VG_FT_STRING;
    case PROTOBUF_C_TYPE_ENUM: return VG_FT_ENUM;
    case PROTOBUF_C_TYPE_BYTES:
    case PROTOBUF_C_TYPE_MESSAGE: return 0;
    }
    return 0;
}

/* Rule name of a field: time_ms -> time, X_minor -> X, else the wire name. */
static size_t
rule_name_len(const ProtobufCFieldDescriptor *fd, vg_ftype t, unsigned flags)
{
    size_t n = strlen(fd->name);
    if (t == VG_FT_TIME)
        return n - 3;
    if (flags & VG_FIELD_MONEY)
        return n - 6;
    return n;
}

static const vg_enum *
enum_of(vg_schema *sc, const ProtobufCEnumDescriptor *d)
{
    for (size_t i = 0; i < sc->nenums; i++)
        if (sc->enums[i].d == d)
            return &sc->enums[i];
    sc->enums[sc->nenums].d = d; /* room reserved by the caller */
    return &sc->enums[sc->nenums++];
}

static vg_err
build_stream(vg_schema *sc, stream *st, const ProtobufCMessageDescriptor *md, char **names,
             char *why, size_t whylen)
{
    st->fields = calloc(md->n_fields ? md->n_fields : 1, sizeof(vg_field));
    if (st->fields == NULL)
        return VG_ENOMEM;
    for (unsigned i = 0; i < md->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &md->fields[i];
        unsigned flags;
        vg_ftype t = field_type(fd, &flags);
        if (t == 0)
            continue;
        if (t != VG_FT_MAP && is_single_oneof(md, fd))
            flags |= VG_FIELD_OPTIONAL;
        size_t len = rule_name_len(fd, t, flags);
        char *name = *names;
        memcpy(name, fd->name, len);
        name[len] = '\0';
        *names += len + 1;
        for (size_t j = 0; j < st->n; j++) {
            if (strcmp(st->fields[j].name, name) == 0) {
                snprintf(why, whylen, "%s: fields '%s' and '%s' are both called '%s' in rules",
                         md->name, st->fields[j].wire_name, fd->name, name);
                return VG_EINVAL;
            }
        }
        vg_field *f = &st->fields[st->n];
        f->name = name;
        f->wire_name = fd->name;
        f->type = t;
        f->flags = flags;
        f->slot = (unsigned)st->n;
        f->enum_type = t == VG_FT_ENUM ? enum_of(sc, fd->descriptor) : NULL;
        f->pb = fd;
        st->n++;
        if (t == VG_FT_STRING && strcmp(name, "currency") == 0)
            st->currency = f;
    }
    return VG_OK;
}

vg_err
vg_schema_new(const ProtobufCMessageDescriptor *txn, const ProtobufCMessageDescriptor *event,
              char *why, size_t whylen, vg_schema **out)
{
    const ProtobufCMessageDescriptor *md[VG_NSTREAMS] = {txn, event};
    size_t nfields = 0, namebytes = 0;
    for (int s = 0; s < VG_NSTREAMS; s++) {
        nfields += md[s]->n_fields;
        for (unsigned i = 0; i < md[s]->n_fields; i++)
            namebytes += strlen(md[s]->fields[i].name) + 1;
    }
    for (int s = 0; s < VG_NSTREAMS; s++) {
        if (md[s]->n_fields > VG_MAX_FIELDS) {
            snprintf(why, whylen, "%s has %u fields; at most %d are supported", md[s]->name,
                     md[s]->n_fields, VG_MAX_FIELDS);
            return VG_EINVAL;
        }
    }
    vg_schema *sc = calloc(1, sizeof *sc);
    if (sc == NULL)
        return VG_ENOMEM;
    vg_err err = VG_ENOMEM;
    sc->enums = calloc(nfields ? nfields : 1, sizeof(vg_enum));
    sc->names = malloc(namebytes ? namebytes : 1);
    if (sc->enums == NULL || sc->names == NULL)
        goto fail;
    char *names = sc->names;
    for (int s = 0; s < VG_NSTREAMS; s++) {
        err = build_stream(sc, &sc->streams[s], md[s], &names, why, whylen);
        if (err)
            goto fail;
    }
    *out = sc;
    return VG_OK;
fail:
    vg_schema_free(sc);
    return err;
}

void
vg_schema_free(vg_schema *sc)
{
    if (sc == NULL)
        return;
    for (int s = 0; s < VG_NSTREAMS; s++)
        free(sc->streams[s].fields);
    free(sc->enums);
    free(sc->names);
    free(sc);
}

static vg_schema *default_schema;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void
default_init(void)
{
    char why[256];
    if (vg_schema_new(&vigil__v1__transaction__descriptor, &vigil__v1__account_event__descriptor,
                      why, sizeof why, &default_schema) != VG_OK)
        default_schema = NULL;
}

const vg_schema *
vg_schema_default(void)
{
    pthread_once(&default_once, default_init);
    return default_schema;
}

const vg_field *
vg_schema_field(const vg_schema *sc, vg_stream_id s, const char *name, size_t len)
{
    const stream *st = &sc->streams[s];
    for (size_t i = 0; i < st->n; i++) {
        const char *f = st->fields[i].name;
        if (strncmp(f, name, len) == 0 && f[len] == '\0')
            return &st->fields[i];
    }
    return NULL;
}

size_t
vg_schema_nfields(const vg_schema *sc, vg_stream_id s)
{
    return sc->streams[s].n;
}

const vg_field *
vg_schema_field_at(const vg_schema *sc, vg_stream_id s, size_t i)
{
    return i < sc->streams[s].n ? &sc->streams[s].fields[i] : NULL;
}

const vg_field *
vg_schema_currency(const vg_schema *sc, vg_stream_id s)
{
    return sc->streams[s].currency;
}

const char *
vg_enum_name(const vg_enum *e)
{
    return e->d->short_name;
}

size_t
vg_enum_count(const vg_enum *e)
{
    return e->d->n_values;
}

const char *
vg_enum_value_name(const vg_enum *e, size_t i)
{
    return e->d->values[i].name;
}

bool
vg_enum_lookup(const vg_enum *e, const char *name, size_t len, int *number)
{
    for (unsigned i = 0; i < e->d->n_values; i++) {
        const char *v = e->d->values[i].name;
        if (strncmp(v, name, len) == 0 && v[len] == '\0') {
            *number = e->d->values[i].value;
            return true;
        }
    }
    return false;
}

const char *
vg_enum_name_of(const vg_enum *e, int number)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(e->d, number);
    return v ? v->name : NULL;
}
