/*
 * fuzz_reader.h - decoded events read whole, and the input readers
 * (engine/input.c) over a fuzzed file: for fuzz_pb, fuzz_csv, fuzz_jsonl and
 * fuzz_map.
 *
 * vg_reader_open() takes a path: the input goes to a memfd opened as
 * /proc/self/fd/N (fuzz_util.h), and the reader runs to its end over the
 * default schema, every event read whole (fuzz_touch_event) and every
 * rejection's reason read. The event is poisoned before each call, so a
 * field a reader forgets to write is caught.
 */
#ifndef VG_FUZZ_READER_H
#define VG_FUZZ_READER_H

#include <math.h>

#include "fuzz_util.h"
#include "vg_input.h"

/* An event is poisoned before a decoder fills it: a value the decoder did
 * not write keeps kind FUZZ_POISON, which fuzz_touch_event() refuses, every
 * time and whatever the stack held before. */
#define FUZZ_POISON 0xA5

static inline void
fuzz_event_poison(vg_event *ev)
{
    memset(ev, FUZZ_POISON, sizeof *ev);
}

/* A pending finding (fuzz_util.h): vg_event_from_pb() (proto/event.c) never
 * writes the value of the attrs (map) slot; made missing here, as
 * vg_event_clear() makes it, unless VG_FUZZ_STRICT is set. */
static inline void
fuzz_event_pending(const vg_schema *sc, vg_event *ev)
{
    if (fuzz_strict() || (unsigned)ev->stream >= VG_NSTREAMS)
        return;
    size_t nf = vg_schema_nfields(sc, ev->stream);
    for (size_t i = 0; i < nf; i++)
        if (vg_schema_field_at(sc, ev->stream, i)->type == VG_FT_MAP &&
            ev->v[i].kind == FUZZ_POISON)
            ev->v[i].kind = VG_V_MISSING;
}

/* A pending finding (fuzz_util.h): vg_pb_encode() converts times, money
 * and enums to their integer wire types with a plain cast (proto/event.c
 * pb_set), undefined for a value out of range, and the CSV reader makes such
 * times (csv/time_cell_reads_next_cells_digits). Unless VG_FUZZ_STRICT is
 * set, such an event is not encoded. */
static inline bool
fuzz_pb_encodable(const vg_schema *sc, const vg_event *ev)
{
    if (fuzz_strict())
        return true;
    size_t nf = vg_schema_nfields(sc, ev->stream);
    for (size_t i = 0; i < nf; i++) {
        const vg_field *f = vg_schema_field_at(sc, ev->stream, i);
        const vg_value *v = &ev->v[i];
        if (v->kind == VG_V_MISSING || v->kind == VG_V_STR)
            continue;
        double x = v->u.num;
        if (f->flags & VG_FIELD_MONEY)
            x *= vg_pow10(ev->digits);
        if ((f->type == VG_FT_TIME || (f->flags & VG_FIELD_MONEY)) && !(fabs(x) < 9.2e18))
            return false;
        if (f->type == VG_FT_ENUM && !(fabs(x) < 2.1e9))
            return false;
    }
    return true;
}

/* Reads each field value of ev (the strings byte by byte) and each attr;
 * aborts when a value is not of a kind vg_event.h allows. Then copies the
 * event into a block of exactly vg_event_size() bytes (so an undersized
 * block is an overflow ASan reports) and encodes it as protobuf, as `vigil
 * send` does with events read from CSV or JSONL. */
static inline void
fuzz_touch_event(const vg_schema *sc, const vg_event *ev)
{
    if ((unsigned)ev->stream >= VG_NSTREAMS)
        abort();
    size_t nf = vg_schema_nfields(sc, ev->stream);
    for (size_t i = 0; i < nf; i++) {
        const vg_value *v = &ev->v[i];
        if (v->kind > VG_V_ENUM)
            abort();
        if (v->kind == VG_V_STR) {
            if (v->len > 0 && v->u.s == NULL)
                abort();
            fuzz_touch(v->u.s, v->len);
        } else if (v->kind != VG_V_MISSING) {
            fuzz_touch(&v->u.num, sizeof v->u.num);
        }
    }
    if (ev->nattrs > 0 && ev->attrs == NULL)
        abort();
    for (uint32_t i = 0; i < ev->nattrs; i++) {
        fuzz_touch(ev->attrs[i].key, ev->attrs[i].klen);
        fuzz_touch(ev->attrs[i].val, ev->attrs[i].vlen);
    }

    size_t need = vg_event_size(sc, ev);
    char *mem = malloc(need ? need : 1);
    vg_event *copy = malloc(sizeof *copy);
    if (mem != NULL && copy != NULL) {
        vg_event_copy(sc, copy, ev, mem);
        for (size_t i = 0; i < nf; i++)
            if (copy->v[i].kind == VG_V_STR)
                fuzz_touch(copy->v[i].u.s, copy->v[i].len);
        for (uint32_t i = 0; i < copy->nattrs; i++) {
            fuzz_touch(copy->attrs[i].key, copy->attrs[i].klen);
            fuzz_touch(copy->attrs[i].val, copy->attrs[i].vlen);
        }
    }
    free(copy);
    free(mem);

    vg_buf pb = {0};
    if (fuzz_pb_encodable(sc, ev) && vg_pb_encode(sc, ev, &pb) == VG_OK)
        fuzz_touch(pb.data, pb.len);
    vg_buf_free(&pb);
}

/* Diagnostics of a map file: rendered (the renderer is fuzzed too), dropped. */
static inline void
fuzz_reader_diag(void *ctx, const vg_diag *d)
{
    vg_buf *b = ctx;
    b->len = 0;
    vg_diag_render(d, (d->line & 1) != 0, b);
}

/* Reads every row of the file at path with opts (format set). */
static inline void
fuzz_reader_run(const char *path, const vg_reader_opts *opts)
{
    const vg_schema *sc = vg_schema_default();
    if (sc == NULL)
        return;
    char why[512];
    vg_reader *rd = NULL;
    if (vg_reader_open(path, sc, opts, why, sizeof why, &rd) != VG_OK) {
        fuzz_touch(why, strnlen(why, sizeof why));
        return;
    }
    vg_event ev;
    uint64_t line = 0, prev = 0;
    const char *reason;
    int label;
    for (;;) {
        fuzz_event_poison(&ev);
        vg_read r = vg_reader_next(rd, &ev, &line, &reason, &label);
        if (r == VG_READ_END || r == VG_READ_ERROR)
            break;
        if (r == VG_READ_EVENT) {
            fuzz_event_pending(sc, &ev);
            fuzz_touch_event(sc, &ev);
        } else {
            fuzz_touch(reason, strlen(reason));
        }
        if (label < -1 || label > 1)
            abort();
        /* lines only move forward, and each call consumes one */
        if (line <= prev && prev != 0)
            abort();
        prev = line;
    }
    uint64_t done, total;
    vg_reader_progress(rd, &done, &total);
    (void)vg_reader_syntax_rejects(rd);
    (void)vg_reader_row_ids(rd);
    vg_reader_close(rd);
}

/* fuzz_reader_run() on data[0..size) put in a memfd. */
static inline void
fuzz_reader_bytes(const uint8_t *data, size_t size, const vg_reader_opts *opts)
{
    char path[64];
    int fd = fuzz_memfd("fuzz-input", data, size, path, sizeof path);
    if (fd < 0)
        return;
    fuzz_reader_run(path, opts);
    close(fd);
}

#endif
