/*
 * vg_input.h - historical events from files: CSV (with an optional map
 * file), JSONL and length-delimited protobuf (SPEC §4 "Input formats").
 *
 * A reader yields one event at a time into a caller's vg_event whose
 * strings point into the reader's buffers (valid until the next call). A row
 * that cannot be an event is rejected with its line number and a reason
 * that says what was wrong and what was expected; reading goes on.
 */
#ifndef VG_INPUT_H
#define VG_INPUT_H

#include "vg_event.h"
#include "vg_rules.h"

typedef enum vg_format { VG_FMT_AUTO = 0, VG_FMT_CSV, VG_FMT_JSONL, VG_FMT_PB } vg_format;

/* "csv", "jsonl", "pb" -> the format; VG_FMT_AUTO for anything else. */
vg_format vg_format_parse(const char *name);
/* The format a path's extension implies (.csv .jsonl .pb), or VG_FMT_AUTO. */
vg_format vg_format_of_path(const char *path);

typedef struct vg_reader vg_reader;

typedef struct vg_reader_opts {
    vg_format format;     /* VG_FMT_AUTO: from the extension */
    const char *map_path; /* CSV only: a map file, or NULL */
    const char *label;    /* a column (CSV) or member (JSONL) holding fraud labels, or NULL */
    vg_diag_fn diag;      /* where a broken map file's diagnostics go */
    void *diag_ctx;
    unsigned *map_errors; /* out, when not NULL: how many errors the map file had */
    bool *map_failed;     /* out, when not NULL: the error is the map file's, not the input's */
} vg_reader_opts;

/* Opens path ("-": standard input) for reading events of schema sc.
 * Returns VG_ENOENT / VG_EIO (why in errno), VG_EINVAL when the file is not
 * of its format (no header row, a map that does not compile, a --label
 * column that does not exist; *why says which), VG_ECOMPILE when the map
 * file has errors (reported to opts->diag), VG_ENOMEM. */
vg_err vg_reader_open(const char *path, const vg_schema *sc, const vg_reader_opts *opts, char *why,
                      size_t whylen, vg_reader **out);
void vg_reader_close(vg_reader *rd);

typedef enum vg_read {
    VG_READ_EVENT = 0, /* *ev holds the next event */
    VG_READ_REJECT,    /* the row at *line was rejected: *reason says why */
    VG_READ_END,
    VG_READ_ERROR, /* reading failed (I/O): *reason says why; stop */
} vg_read;

/* The next event. *line is the 1-based line (CSV, JSONL) or record (pb) the
 * event or rejection came from; *reason (valid until the next call) explains
 * a rejection. *label is 1 when the label column says fraud (1, true, yes,
 * fraud, any case), 0 when it says otherwise, -1 without --label or when
 * a JSONL row has no such member. */
vg_read vg_reader_next(vg_reader *rd, vg_event *ev, uint64_t *line, const char **reason,
                       int *label);

/* Bytes read so far and the size of the input (0 when unknown: a pipe). */
void vg_reader_progress(const vg_reader *rd, uint64_t *done, uint64_t *total);

/* Rows rejected so far for not being of the format at all (not JSON, not a
 * protobuf message, a CSV row with the wrong number of cells, ...), as
 * opposed to rows of the format that are not valid events. */
uint64_t vg_reader_syntax_rejects(const vg_reader *rd);

/* Whether some event so far got its row number as its id (CSV without an id
 * column or a map that sets one). */
bool vg_reader_row_ids(const vg_reader *rd);

#endif
