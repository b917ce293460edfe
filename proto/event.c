/*
 * event.c - events as rules see them (vg_event.h): currency digits, and the
 * protobuf-c -> vg_event conversion, driven by the schema's descriptors so a
 * new .proto field flows through with no code here.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vg_event.h"
#include "vg_schema_pb.h"
#include "vigil.pb-c.h"

void
vg_event_clear(vg_event *ev, vg_stream_id s)
{
    ev->stream = s;
    ev->digits = 2;
    ev->nattrs = 0;
    ev->attrs = NULL;
    memset(ev->v, 0, sizeof ev->v);
}

void
vg_event_defaults(const vg_schema *sc, vg_event *ev)
{
    size_t n = vg_schema_nfields(sc, ev->stream);
    const vg_field *fields = vg_schema_field_at(sc, ev->stream, 0);
    for (size_t i = 0; i < n; i++) {
        const vg_field *f = &fields[i];
        vg_value *v = &ev->v[f->slot];
        if (v->kind != VG_V_MISSING || (f->flags & VG_FIELD_OPTIONAL) ||
            (f->name[0] == 'i' && f->name[1] == 'd' && f->name[2] == 0))
            continue;
        switch (f->type) {
        case VG_FT_STRING:
            v->kind = VG_V_STR;
            v->u.s = "";
            v->len = 0;
            break;
        case VG_FT_NUMBER: v->kind = VG_V_NUM, v->u.num = 0; break;
        case VG_FT_BOOL: v->kind = VG_V_BOOL, v->u.num = 0; break;
        case VG_FT_ENUM: v->kind = VG_V_ENUM, v->u.num = 0; break;
        case VG_FT_TIME:
        case VG_FT_MAP: break;
        }
    }
}

/* Copies n bytes of s to *mem and moves *mem past them. */
static const char *
copy_bytes(char **mem, const char *s, size_t n)
{
    char *d = *mem;
    if (n > 0)
        memcpy(d, s, n);
    *mem += n;
    return d;
}

size_t
vg_event_size(const vg_schema *sc, const vg_event *ev)
{
    size_t n = vg_schema_nfields(sc, ev->stream), bytes = ev->nattrs * sizeof(vg_attr);
    for (size_t i = 0; i < n; i++)
        if (ev->v[i].kind == VG_V_STR)
            bytes += ev->v[i].len;
    for (uint32_t i = 0; i < ev->nattrs; i++)
        bytes += ev->attrs[i].klen + ev->attrs[i].vlen;
    return bytes;
}

void
vg_event_copy(const vg_schema *sc, vg_event *dst, const vg_event *src, char *mem)
{
    size_t n = vg_schema_nfields(sc, src->stream);
    dst->stream = src->stream;
    dst->digits = src->digits;
    dst->nattrs = src->nattrs;
    dst->attrs = NULL;
    if (src->nattrs > 0) { /* first: mem is aligned for it */
        vg_attr *a = (vg_attr *)(void *)mem;
        mem += src->nattrs * sizeof(vg_attr);
        for (uint32_t i = 0; i < src->nattrs; i++) {
            a[i] = src->attrs[i];
            a[i].key = copy_bytes(&mem, src->attrs[i].key, src->attrs[i].klen);
            a[i].val = copy_bytes(&mem, src->attrs[i].val, src->attrs[i].vlen);
        }
        dst->attrs = a;
    }
    for (size_t i = 0; i < n; i++) {
        dst->v[i] = src->v[i];
        if (src->v[i].kind == VG_V_STR)
            dst->v[i].u.s = copy_bytes(&mem, src->v[i].u.s, src->v[i].len);
    }
}

double
vg_pow10(unsigned digits)
{
    static const double p[] = {1, 10, 100, 1000, 10000};
    return digits < VG_ARRAY_LEN(p) ? p[digits] : 100;
}

unsigned
vg_currency_digits(const char *code, size_t len)
{
    /* ISO 4217 minor units where they are not 2 (docs/language.md, "Money"),
     * as three upper-case letters packed in an int: the common codes cost a
     * few compares, not string searches */
#define CC(a, b, c) ((uint32_t)(a) << 16 | (uint32_t)(b) << 8 | (uint32_t)(c))
    static const struct {
        uint32_t code;
        uint8_t digits;
    } odd[] = {
        {CC('B', 'I', 'F'), 0}, {CC('C', 'L', 'P'), 0}, {CC('D', 'J', 'F'), 0},
        {CC('G', 'N', 'F'), 0}, {CC('I', 'S', 'K'), 0}, {CC('J', 'P', 'Y'), 0},
        {CC('K', 'M', 'F'), 0}, {CC('K', 'R', 'W'), 0}, {CC('P', 'Y', 'G'), 0},
        {CC('R', 'W', 'F'), 0}, {CC('U', 'G', 'X'), 0}, {CC('U', 'Y', 'I'), 0},
        {CC('V', 'N', 'D'), 0}, {CC('V', 'U', 'V'), 0}, {CC('X', 'A', 'F'), 0},
        {CC('X', 'O', 'F'), 0}, {CC('X', 'P', 'F'), 0}, {CC('B', 'H', 'D'), 3},
        {CC('I', 'Q', 'D'), 3}, {CC('J', 'O', 'D'), 3}, {CC('K', 'W', 'D'), 3},
        {CC('L', 'Y', 'D'), 3}, {CC('O', 'M', 'R'), 3}, {CC('T', 'N', 'D'), 3},
        {CC('C', 'L', 'F'), 4}, {CC('U', 'Y', 'W'), 4},
    };
    if (len != 3)
        return 2;
    uint32_t c = 0;
    for (int i = 0; i < 3; i++) {
        char ch = code[i];
        c = c << 8 | (uint32_t)(unsigned char)(ch >= 'a' && ch <= 'z' ? ch - 32 : ch);
    }
    for (size_t i = 0; i < VG_ARRAY_LEN(odd); i++)
        if (odd[i].code == c)
            return odd[i].digits;
    return 2;
#undef CC
}

/* The value of field f of message m, or missing. */
static vg_value
pb_value(const ProtobufCMessage *m, const vg_field *f)
{
    const ProtobufCFieldDescriptor *fd = f->pb;
    const char *base = (const char *)m;
    vg_value v = {0};
    if (f->flags & VG_FIELD_OPTIONAL) {
        uint32_t which = *(const uint32_t *)(base + fd->quantifier_offset);
        if (which != fd->id)
            return v;
    }
    const void *p = base + fd->offset;
    double num = 0;
    switch (fd->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32: num = *(const int32_t *)p; break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: num = *(const uint32_t *)p; break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64: num = (double)*(const int64_t *)p; break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: num = (double)*(const uint64_t *)p; break;
    case PROTOBUF_C_TYPE_FLOAT: num = *(const float *)p; break;
    case PROTOBUF_C_TYPE_DOUBLE: num = *(const double *)p; break;
    case PROTOBUF_C_TYPE_BOOL: num = *(const protobuf_c_boolean *)p ? 1 : 0; break;
    case PROTOBUF_C_TYPE_ENUM: num = *(const int *)p; break;
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        v.kind = VG_V_STR;
        v.u.s = s ? s : "";
        v.len = s ? (uint32_t)strlen(s) : 0;
        return v;
    }
    default: return v;
    }
    v.u.num = num;
    switch (f->type) {
    case VG_FT_TIME:
        /* proto3 cannot tell an int64 left out from 0: a time of 0 is taken
         * as no time, so an event whose producer forgot time_ms is rejected
         * rather than placed in 1970 */
        if (num == 0 && !(f->flags & VG_FIELD_OPTIONAL))
            return (vg_value){0};
        v.kind = VG_V_TIME;
        break;
    case VG_FT_BOOL: v.kind = VG_V_BOOL; break;
    case VG_FT_ENUM: v.kind = VG_V_ENUM; break;
    default: v.kind = VG_V_NUM; break;
    }
    return v;
}

vg_err
vg_event_from_pb(const vg_schema *sc, vg_stream_id s, const ProtobufCMessage *m, vg_attr *attrs,
                 size_t attr_cap, vg_event *ev)
{
    /* every field is set below: no need to clear them first */
    ev->stream = s;
    ev->digits = 2;
    ev->nattrs = 0;
    ev->attrs = NULL;
    size_t n = vg_schema_nfields(sc, s);
    const vg_field *fields = vg_schema_field_at(sc, s, 0);
    int64_t minor[VG_MAX_FIELDS];
    bool any_money = false;
    for (size_t i = 0; i < n; i++) {
        const vg_field *f = &fields[i];
        if (f->type == VG_FT_MAP) {
            ev->v[i] = (vg_value){0}; /* a map is read through attr(), never as a value */
            const ProtobufCFieldDescriptor *fd = f->pb;
            size_t count = *(const size_t *)((const char *)m + fd->quantifier_offset);
            ProtobufCMessage *const *ents =
                *(ProtobufCMessage *const *const *)((const char *)m + fd->offset);
            if (count > attr_cap)
                return VG_ELIMIT;
            for (size_t k = 0; k < count; k++) {
                /* a map entry: field 1 key, field 2 value, both strings */
                const ProtobufCMessageDescriptor *ed = ents[k]->descriptor;
                const char *key = *(char *const *)((const char *)ents[k] + ed->fields[0].offset);
                const char *val = *(char *const *)((const char *)ents[k] + ed->fields[1].offset);
                attrs[k].key = key ? key : "";
                attrs[k].val = val ? val : "";
                attrs[k].klen = (uint32_t)strlen(attrs[k].key);
                attrs[k].vlen = (uint32_t)strlen(attrs[k].val);
            }
            ev->attrs = attrs;
            ev->nattrs = (uint32_t)count;
            continue;
        }
        ev->v[i] = pb_value(m, f);
        if ((f->flags & VG_FIELD_MONEY) && ev->v[i].kind == VG_V_NUM) {
            minor[i] = *(const int64_t *)((const char *)m +
                                          ((const ProtobufCFieldDescriptor *)f->pb)->offset);
            any_money = true;
        }
    }
    if (!any_money)
        return VG_OK;
    const vg_field *cur = vg_schema_currency(sc, s);
    if (cur != NULL && ev->v[cur->slot].kind == VG_V_STR)
        ev->digits = (uint8_t)vg_currency_digits(ev->v[cur->slot].u.s, ev->v[cur->slot].len);
    /* money: minor units / 10^digits, once the currency is known */
    double scale = vg_pow10(ev->digits);
    for (size_t i = 0; i < n; i++)
        if ((fields[i].flags & VG_FIELD_MONEY) && ev->v[i].kind == VG_V_NUM)
            ev->v[i].u.num = (double)minor[i] / scale;
    return VG_OK;
}

/* ---- Length-delimited protobuf ------------------------------------------- */

/* Decoding allocates from one block, reset for each message: no malloc or
 * free per event, and a budget: a message may not make protobuf-c allocate
 * more than 16 times its size, within [VG_PB_BUDGET_MIN, VG_PB_BUDGET_MAX]
 * (decoding can ask for many times the input: each event costs about a
 * kilobyte of structures however small it is). */
#define VG_PB_BUDGET_MIN ((size_t)64 << 20)
#define VG_PB_BUDGET_MAX ((size_t)512 << 20)

static size_t
pb_budget(size_t len)
{
    size_t b = len > VG_PB_BUDGET_MAX / 16 ? VG_PB_BUDGET_MAX : len * 16;
    return b < VG_PB_BUDGET_MIN ? VG_PB_BUDGET_MIN : b;
}

struct vg_pb_event {
    Vigil__V1__Event *msg;
    vg_attr *attrs;
    size_t cap;
    char *mem; /* the block */
    size_t memcap, used;
    bool short_of_room; /* an allocation of this message did not fit */
    ProtobufCAllocator alloc;
};

static void *
bump_alloc(void *ctx, size_t size)
{
    vg_pb_event *h = ctx;
    size = (size + 15) & ~(size_t)15;
    if (h->used + size > h->memcap) {
        /* only between messages may the block move: grow for the next one
         * and fail this allocation if it does not fit the budget */
        h->short_of_room = true;
        return NULL;
    }
    void *p = h->mem + h->used;
    h->used += size;
    return p;
}

static void
bump_free(void *ctx, void *p)
{
    (void)ctx;
    (void)p; /* the whole block is reset before the next message */
}

/* Makes the block at least want bytes (at most the budget for a message of
 * len bytes). */
static vg_err
pb_room(vg_pb_event *h, size_t want, size_t len)
{
    if (want > pb_budget(len))
        want = pb_budget(len);
    if (want <= h->memcap)
        return VG_OK;
    char *p = realloc(h->mem, want);
    if (p == NULL)
        return VG_ENOMEM;
    h->mem = p;
    h->memcap = want;
    return VG_OK;
}

void
vg_pb_event_free(vg_pb_event *h)
{
    if (h == NULL)
        return;
    free(h->attrs);
    free(h->mem);
    free(h);
}

/* Unpacks a message of type d into the holder's block (made on first use),
 * *out NULL when the bytes are not such a message. protobuf-c needs a few
 * times the input (structs, strings, arrays): the block is sized for that,
 * within the budget, and once more, bigger, for a message heavier than most
 * (many small fields); one that needs more fails to decode. */
static vg_err
pb_unpack(vg_pb_event **holder, const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
          ProtobufCMessage **out)
{
    vg_pb_event *h = *holder;
    if (h == NULL) {
        h = *holder = calloc(1, sizeof *h);
        if (h == NULL)
            return VG_ENOMEM;
    }
    h->alloc.alloc = bump_alloc;
    h->alloc.free = bump_free;
    h->alloc.allocator_data = h;
    if (pb_room(h, len * 4 + 4096, len) != VG_OK)
        return VG_ENOMEM;
    h->used = 0;
    h->short_of_room = false;
    *out = protobuf_c_message_unpack(d, &h->alloc, len, buf);
    if (*out == NULL && h->short_of_room && h->memcap < pb_budget(len)) {
        /* again with all the budget allows (small events cost protobuf-c
         * far more than their bytes) */
        if (pb_room(h, pb_budget(len), len) != VG_OK)
            return VG_ENOMEM;
        h->short_of_room = false;
        h->used = 0;
        *out = protobuf_c_message_unpack(d, &h->alloc, len, buf);
    }
    return VG_OK;
}

/* Makes out hold n events. */
static vg_err
batch_room(vg_batch *out, size_t n)
{
    if (n <= out->cap)
        return VG_OK;
    vg_event *ev = realloc(out->ev, n * sizeof(vg_event));
    if (ev != NULL)
        out->ev = ev;
    const char **bad = realloc(out->bad, n * sizeof(char *));
    if (bad != NULL)
        out->bad = bad;
    const uint8_t **raw = realloc(out->raw, n * sizeof(uint8_t *));
    if (raw != NULL)
        out->raw = raw;
    size_t *rawlen = realloc(out->rawlen, n * sizeof(size_t));
    if (rawlen != NULL)
        out->rawlen = rawlen;
    if (ev == NULL || bad == NULL || raw == NULL || rawlen == NULL)
        return VG_ENOMEM;
    out->cap = n;
    return VG_OK;
}

/* Reads a varint at buf[*pos..len); false when it runs past the end. */
static bool
varint(const uint8_t *buf, size_t len, size_t *pos, uint64_t *v)
{
    *v = 0;
    for (unsigned sh = 0; *pos < len && sh < 64; sh += 7) {
        uint8_t b = buf[(*pos)++];
        *v |= (uint64_t)(b & 0x7F) << sh;
        if (!(b & 0x80))
            return true;
    }
    return false;
}

/* The top-level fields of an EventBatch, without decoding the events: each
 * event field's bytes (from its length prefix: what the event log keeps) go
 * to out->raw, the decisions flag to out->decisions. Returns the number of
 * events framed; *damaged is set when the bytes stop making sense before
 * their end (the events framed so far are whole). */
static size_t
frame_batch(const uint8_t *buf, size_t len, vg_batch *out, size_t cap, bool *damaged)
{
    size_t pos = 0, k = 0;
    *damaged = false;
    out->decisions = false;
    while (pos < len) {
        uint64_t tag, v;
        if (!varint(buf, len, &pos, &tag) || tag >> 3 == 0) {
            *damaged = true;
            break;
        }
        size_t start = pos;
        unsigned wire = (unsigned)(tag & 7);
        bool ok = true;
        if (wire == 0) {
            ok = varint(buf, len, &pos, &v);
            if (ok && tag >> 3 == 2)
                out->decisions = v != 0;
        } else if (wire == 1 || wire == 5) {
            size_t w = wire == 1 ? 8 : 4;
            ok = len - pos >= w;
            pos += ok ? w : 0;
        } else if (wire == 2) {
            ok = varint(buf, len, &pos, &v) && v <= len - pos;
            if (ok && tag >> 3 == 1 && k < cap) {
                out->raw[k] = buf + start;
                out->rawlen[k] = pos - start + (size_t)v;
                k++;
            }
            pos += ok ? (size_t)v : 0;
        } else {
            ok = false; /* groups and unknown wire types have no place here */
        }
        if (!ok) {
            *damaged = true;
            break;
        }
    }
    return k;
}

/* Counts the attrs of events e[0..n) and makes the holder's array hold them. */
static vg_err
attrs_room(vg_pb_event *h, Vigil__V1__Event *const *e, size_t n)
{
    size_t nattrs = 0;
    for (size_t i = 0; i < n; i++) {
        if (e[i] == NULL)
            continue;
        nattrs += e[i]->kind_case == VIGIL__V1__EVENT__KIND_TXN       ? e[i]->txn->n_attrs
                  : e[i]->kind_case == VIGIL__V1__EVENT__KIND_ACCOUNT ? e[i]->account->n_attrs
                                                                      : 0;
    }
    if (nattrs > h->cap) {
        vg_attr *a = realloc(h->attrs, nattrs * sizeof(vg_attr));
        if (a == NULL)
            return VG_ENOMEM;
        h->attrs = a;
        h->cap = nattrs;
    }
    return VG_OK;
}

/* Turns the unpacked events e[0..n) into out->ev; a NULL one (it did not
 * decode) is marked bad. */
static void
convert_events(vg_pb_event *h, const vg_schema *sc, Vigil__V1__Event *const *e, size_t n,
               vg_batch *out)
{
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        out->bad[i] = NULL;
        vg_event_clear(&out->ev[i], VG_STREAM_TXN);
        if (e[i] == NULL) {
            out->bad[i] = "not a valid vigil.v1.Event: its bytes do not decode (a wrong field "
                          "type, a length past its end, or invalid data)";
            continue;
        }
        const ProtobufCMessage *m = NULL;
        vg_stream_id s = VG_STREAM_TXN;
        size_t na = 0;
        if (e[i]->kind_case == VIGIL__V1__EVENT__KIND_TXN) {
            m = &e[i]->txn->base;
            na = e[i]->txn->n_attrs;
        } else if (e[i]->kind_case == VIGIL__V1__EVENT__KIND_ACCOUNT) {
            m = &e[i]->account->base;
            s = VG_STREAM_EVENT;
            na = e[i]->account->n_attrs;
        }
        if (m == NULL) {
            out->bad[i] = "the Event has neither txn nor account set";
            continue;
        }
        if (vg_event_from_pb(sc, s, m, h->attrs ? h->attrs + at : NULL, na, &out->ev[i]) != VG_OK)
            out->bad[i] = "the event cannot be read";
        at += na;
    }
}

/* The batch does not decode as a whole: each event on its own, so that a bad
 * one costs only itself. A batch damaged part way gets one more entry, bad,
 * for its unreadable rest. */
static vg_err
decode_each(vg_pb_event *h, const vg_schema *sc, const uint8_t *buf, size_t len, vg_batch *out,
            char *why, size_t whylen)
{
    bool damaged;
    size_t n = frame_batch(buf, len, out, out->cap, &damaged);
    if (n + 1 >= out->cap) { /* perhaps more than there was room for */
        vg_err err = batch_room(out, len / 2 + 2);
        if (err)
            return err;
        n = frame_batch(buf, len, out, out->cap - 1, &damaged);
    }
    if (n == 0) {
        snprintf(why, whylen,
                 "not a valid vigil.v1.EventBatch message (%zu bytes): no event could be read "
                 "from it",
                 len);
        return VG_EINVAL;
    }
    Vigil__V1__Event **e = malloc(n * sizeof *e);
    if (e == NULL)
        return VG_ENOMEM;
    h->used = 0;
    h->short_of_room = false;
    vg_err err = pb_room(h, pb_budget(len), len);
    for (size_t i = 0; i < n && err == VG_OK; i++) {
        /* the event's bytes after their length prefix */
        size_t k = 0;
        uint64_t v;
        varint(out->raw[i], out->rawlen[i], &k, &v);
        e[i] = (Vigil__V1__Event *)protobuf_c_message_unpack(
            &vigil__v1__event__descriptor, &h->alloc, out->rawlen[i] - k, out->raw[i] + k);
    }
    if (err == VG_OK && h->short_of_room) {
        /* not a damaged event: a batch of more events than decoding may
         * take memory for; none of it is taken, and resending it cannot help */
        snprintf(why, whylen,
                 "the batch has too many events to decode at once (%zu bytes, %zu events; "
                 "decoding may use %zu MiB): send fewer events per batch",
                 len, n, pb_budget(len) >> 20);
        err = VG_ELIMIT;
    }
    if (err == VG_OK)
        err = attrs_room(h, e, n);
    if (err == VG_OK) {
        convert_events(h, sc, e, n, out);
        out->n = n;
        if (damaged) {
            vg_event_clear(&out->ev[n], VG_STREAM_TXN);
            out->bad[n] = "the batch is cut short or damaged here: the rest of its bytes do not "
                          "frame as events (resend them in a new batch)";
            out->raw[n] = NULL;
            out->n = n + 1;
        }
    }
    free(e);
    return err;
}

vg_err
vg_pb_decode_batch(vg_pb_event **holder, const vg_schema *sc, const uint8_t *buf, size_t len,
                   vg_batch *out, char *why, size_t whylen)
{
    ProtobufCMessage *whole;
    vg_err err = pb_unpack(holder, &vigil__v1__event_batch__descriptor, buf, len, &whole);
    if (err)
        return err;
    vg_pb_event *h = *holder;
    Vigil__V1__EventBatch *b = (Vigil__V1__EventBatch *)whole;
    if (b == NULL)
        return decode_each(h, sc, buf, len, out, why, whylen);
    /* room for one more: a damaged batch's rest (decode_each) */
    if ((err = batch_room(out, b->n_events + 1)) != VG_OK ||
        (err = attrs_room(h, b->events, b->n_events)) != VG_OK)
        return err;
    /* each event's own bytes, without encoding the event again */
    bool damaged;
    for (size_t i = 0; i < b->n_events; i++)
        out->raw[i] = NULL;
    frame_batch(buf, len, out, b->n_events, &damaged);
    out->n = b->n_events;
    out->decisions = b->decisions;
    convert_events(h, sc, b->events, b->n_events, out);
    return VG_OK;
}

void
vg_batch_free(vg_batch *b)
{
    free(b->ev);
    free(b->bad);
    free(b->raw);
    free(b->rawlen);
    memset(b, 0, sizeof *b);
}

vg_err
vg_pb_decode(vg_pb_event **holder, const vg_schema *sc, const uint8_t *buf, size_t len,
             vg_event *ev, char *why, size_t whylen)
{
    ProtobufCMessage *whole;
    vg_err err = pb_unpack(holder, &vigil__v1__event__descriptor, buf, len, &whole);
    if (err)
        return err;
    vg_pb_event *h = *holder;
    h->msg = (Vigil__V1__Event *)whole;
    if (h->msg == NULL) {
        snprintf(why, whylen, "not a valid vigil.v1.Event message (%zu bytes)", len);
        return VG_EINVAL;
    }
    const ProtobufCMessage *m;
    vg_stream_id s;
    if (h->msg->kind_case == VIGIL__V1__EVENT__KIND_TXN) {
        m = &h->msg->txn->base;
        s = VG_STREAM_TXN;
    } else if (h->msg->kind_case == VIGIL__V1__EVENT__KIND_ACCOUNT) {
        m = &h->msg->account->base;
        s = VG_STREAM_EVENT;
    } else {
        snprintf(why, whylen, "the Event has neither txn nor account set");
        return VG_EINVAL;
    }
    size_t nattrs = s == VG_STREAM_TXN ? h->msg->txn->n_attrs : h->msg->account->n_attrs;
    if (nattrs > h->cap) {
        vg_attr *a = realloc(h->attrs, nattrs * sizeof(vg_attr));
        if (a == NULL)
            return VG_ENOMEM;
        h->attrs = a;
        h->cap = nattrs;
    }
    return vg_event_from_pb(sc, s, m, h->attrs, h->cap, ev);
}

/* Sets field f of message m from v (the reverse of pb_value). Strings are
 * copied into *strs (a list of blocks freed by the caller). */
/* Adds block p to *strs (freed by the caller). False: out of memory (p is
 * freed). */
static bool
own(char ***strs, size_t *nstrs, void *p)
{
    char **v = p ? realloc(*strs, (*nstrs + 1) * sizeof(char *)) : NULL;
    if (v == NULL) {
        free(p);
        return false;
    }
    *strs = v;
    (*strs)[(*nstrs)++] = p;
    return true;
}

/* A NUL-terminated copy of s[0..n), owned by *strs. */
static char *
keep(char ***strs, size_t *nstrs, const char *s, size_t n)
{
    char *c = malloc(n + 1);
    if (c != NULL) {
        if (n > 0)
            memcpy(c, s, n);
        c[n] = '\0';
    }
    return own(strs, nstrs, c) ? c : NULL;
}

/* Sets the message's attrs map from ev's attrs (entry messages and their
 * strings are owned by *strs). */
static vg_err
pb_set_attrs(ProtobufCMessage *m, const vg_event *ev, char ***strs, size_t *nstrs)
{
    const ProtobufCFieldDescriptor *fd =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, "attrs");
    if (fd == NULL || ev->nattrs == 0)
        return VG_OK;
    const ProtobufCMessageDescriptor *ed = fd->descriptor;
    const ProtobufCFieldDescriptor *kf = protobuf_c_message_descriptor_get_field_by_name(ed, "key");
    const ProtobufCFieldDescriptor *vf =
        protobuf_c_message_descriptor_get_field_by_name(ed, "value");
    if (kf == NULL || vf == NULL)
        return VG_EINVAL;
    ProtobufCMessage **entries = calloc(ev->nattrs, sizeof *entries);
    if (!own(strs, nstrs, entries))
        return VG_ENOMEM;
    for (uint32_t i = 0; i < ev->nattrs; i++) {
        ProtobufCMessage *e = calloc(1, ed->sizeof_message);
        if (!own(strs, nstrs, e))
            return VG_ENOMEM;
        protobuf_c_message_init(ed, e);
        char *k = keep(strs, nstrs, ev->attrs[i].key, ev->attrs[i].klen);
        char *val = keep(strs, nstrs, ev->attrs[i].val, ev->attrs[i].vlen);
        if (k == NULL || val == NULL)
            return VG_ENOMEM;
        *(char **)((char *)e + kf->offset) = k;
        *(char **)((char *)e + vf->offset) = val;
        entries[i] = e;
    }
    *(size_t *)((char *)m + fd->quantifier_offset) = ev->nattrs;
    *(ProtobufCMessage ***)((char *)m + fd->offset) = entries;
    return VG_OK;
}

static vg_err
pb_set(ProtobufCMessage *m, const vg_field *f, const vg_value *v, unsigned digits, char ***strs,
       size_t *nstrs)
{
    const ProtobufCFieldDescriptor *fd = f->pb;
    char *base = (char *)m;
    void *p = base + fd->offset;
    if (v->kind == VG_V_MISSING)
        return VG_OK;
    if (f->flags & VG_FIELD_OPTIONAL)
        *(uint32_t *)(base + fd->quantifier_offset) = fd->id;
    double num = v->u.num;
    if (f->flags & VG_FIELD_MONEY)
        num = num * vg_pow10(digits);
    /* within what every integer type below holds: a cast of a double out of
     * range is undefined (inputs are checked before; this is the last guard) */
    if (fd->type != PROTOBUF_C_TYPE_FLOAT && fd->type != PROTOBUF_C_TYPE_DOUBLE)
        num = !(num == num) ? 0 : num > 9.2e18 ? 9.2e18 : num < -9.2e18 ? -9.2e18 : num;
    if (f->flags & VG_FIELD_MONEY)
        num = (double)llround(num);
    switch (fd->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32: *(int32_t *)p = (int32_t)num; break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: *(uint32_t *)p = (uint32_t)num; break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64: *(int64_t *)p = (int64_t)num; break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: *(uint64_t *)p = (uint64_t)num; break;
    case PROTOBUF_C_TYPE_FLOAT: *(float *)p = (float)num; break;
    case PROTOBUF_C_TYPE_DOUBLE: *(double *)p = num; break;
    case PROTOBUF_C_TYPE_BOOL: *(protobuf_c_boolean *)p = num != 0; break;
    case PROTOBUF_C_TYPE_ENUM: *(int *)p = (int)num; break;
    case PROTOBUF_C_TYPE_STRING: {
        char *s = keep(strs, nstrs, v->u.s, v->len);
        if (s == NULL)
            return VG_ENOMEM;
        *(char **)p = s;
        break;
    }
    default: break;
    }
    return VG_OK;
}

vg_err
vg_pb_encode(const vg_schema *sc, const vg_event *ev, vg_buf *out)
{
    const vg_field *first = vg_schema_field_at(sc, ev->stream, 0);
    if (first == NULL)
        return VG_EINVAL;
    const ProtobufCMessageDescriptor *md = ev->stream == VG_STREAM_TXN
                                               ? &vigil__v1__transaction__descriptor
                                               : &vigil__v1__account_event__descriptor;
    ProtobufCMessage *m = calloc(1, md->sizeof_message);
    if (m == NULL)
        return VG_ENOMEM;
    protobuf_c_message_init(md, m);
    char **strs = NULL;
    size_t nstrs = 0;
    vg_err err = VG_OK;
    size_t n = vg_schema_nfields(sc, ev->stream);
    for (size_t i = 0; i < n && err == VG_OK; i++) {
        const vg_field *f = vg_schema_field_at(sc, ev->stream, i);
        if (f->type != VG_FT_MAP)
            err = pb_set(m, f, &ev->v[i], ev->digits, &strs, &nstrs);
    }
    if (err == VG_OK)
        err = pb_set_attrs(m, ev, &strs, &nstrs);
    Vigil__V1__Event e = VIGIL__V1__EVENT__INIT;
    if (ev->stream == VG_STREAM_TXN) {
        e.kind_case = VIGIL__V1__EVENT__KIND_TXN;
        e.txn = (Vigil__V1__Transaction *)m;
    } else {
        e.kind_case = VIGIL__V1__EVENT__KIND_ACCOUNT;
        e.account = (Vigil__V1__AccountEvent *)m;
    }
    if (err == VG_OK) {
        size_t len = vigil__v1__event__get_packed_size(&e);
        uint8_t pre[10];
        size_t k = 0;
        for (uint64_t x = len; k == 0 || x > 0; x >>= 7)
            pre[k++] = (uint8_t)((x & 0x7F) | (x >> 7 ? 0x80 : 0));
        err = vg_buf_append(out, pre, k);
        size_t at = out->len;
        if (err == VG_OK)
            err = vg_buf_append(out, NULL, 0);
        if (err == VG_OK && out->cap < at + len + 1) {
            char *p = realloc(out->data, at + len + 1);
            if (p == NULL)
                err = VG_ENOMEM;
            else {
                out->data = p;
                out->cap = at + len + 1;
            }
        }
        if (err == VG_OK) {
            vigil__v1__event__pack(&e, (uint8_t *)out->data + at);
            out->len = at + len;
            out->data[out->len] = '\0';
        }
    }
    for (size_t i = 0; i < nstrs; i++)
        free(strs[i]);
    free(strs);
    free(m);
    return err;
}
