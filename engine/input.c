/*
 * input.c - readers of historical events (vg_input.h): CSV (RFC 4180: quoted
 * cells with "" escapes and line breaks, CRLF or LF, a header row naming the
 * columns), JSONL (one object per line, via jansson) and length-delimited
 * protobuf Event messages.
 *
 * CSV and JSONL set fields by name, converting text as the field needs
 * (vg_text.h). Money is converted last, once the row's currency is known,
 * so its digits apply whatever the column order.
 */
#include <errno.h>
#include <stdarg.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "vg_input.h"
#include "vg_text.h"
#include "vg_vm.h"

typedef struct cell {
    size_t off; /* in rd->cells */
    uint32_t len;
} cell;

struct vg_reader {
    uint64_t syntax; /* rows rejected for not being of the format at all */
    FILE *f;
    bool is_stdin;
    vg_format fmt;
    const vg_schema *sc;
    uint64_t size, done; /* bytes */
    uint64_t lineno;     /* lines read so far */
    vg_buf rec;          /* the current record's raw bytes */
    vg_buf reason;
    char idbuf[24]; /* a row number as an id */
    /* CSV */
    vg_buf cells; /* unescaped cell text */
    cell *cellv;
    uint32_t ncells, capcells;
    uint32_t ncols; /* header columns */
    char **colnames;
    char **coldesc;             /* "column 'name'", for reasons */
    int *colfield[VG_NSTREAMS]; /* column -> field slot, or -1 */
    const vg_field *idfield[VG_NSTREAMS];
    int stream_col; /* the `stream` column, or -1 */
    bool *attr_col; /* column -> named `attr.NAME`: sets attribute NAME */
    bool any_attr;
    int label_col; /* the --label column, or -1 */
    uint64_t datarow;
    /* JSONL */
    json_t *json;
    vg_buf attrbuf; /* vg_attr of a JSONL row's attrs */
    bool want_map;  /* a map file sets the fields: no column need name one */
    bool at_end;    /* pb: the file was cut short; the next read is the end */
    bool row_ids;   /* some event's id was its row number */
    const char *label;
    /* map file */
    vg_ruleset *map;
    vg_vm *mapvm;
    vg_value *rowcells; /* the row's cells as values, for the map's programs */
    vg_value *mapvals;  /* each assignment's value */
    vg_buf mapstr;      /* strings the map's programs made, copied out of the VM */
    const vg_map_assign *assigns;
    size_t nassigns;
    unsigned map_errors;
    /* pb */
    vg_pb_event *pb;
    /* money cells to convert once the currency is known */
    struct {
        unsigned slot;
        const char *s;
        uint32_t len;
        double num; /* JSONL numbers */
        bool is_num;
    } money[VG_MAX_FIELDS];
    unsigned nmoney;
};

vg_format
vg_format_parse(const char *name)
{
    if (strcmp(name, "csv") == 0)
        return VG_FMT_CSV;
    if (strcmp(name, "jsonl") == 0)
        return VG_FMT_JSONL;
    if (strcmp(name, "pb") == 0)
        return VG_FMT_PB;
    return VG_FMT_AUTO;
}

vg_format
vg_format_of_path(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (dot == NULL)
        return VG_FMT_AUTO;
    if (strcasecmp(dot, ".csv") == 0)
        return VG_FMT_CSV;
    if (strcasecmp(dot, ".jsonl") == 0 || strcasecmp(dot, ".ndjson") == 0)
        return VG_FMT_JSONL;
    if (strcasecmp(dot, ".pb") == 0)
        return VG_FMT_PB;
    return VG_FMT_AUTO;
}

uint64_t
vg_reader_syntax_rejects(const vg_reader *rd)
{
    return rd->syntax;
}

bool
vg_reader_row_ids(const vg_reader *rd)
{
    return rd->row_ids;
}

void
vg_reader_progress(const vg_reader *rd, uint64_t *done, uint64_t *total)
{
    *done = rd->done;
    *total = rd->size;
}

void
vg_reader_close(vg_reader *rd)
{
    if (rd == NULL)
        return;
    if (rd->f && !rd->is_stdin)
        fclose(rd->f);
    vg_buf_free(&rd->rec);
    vg_buf_free(&rd->reason);
    vg_buf_free(&rd->cells);
    vg_buf_free(&rd->attrbuf);
    free(rd->cellv);
    for (uint32_t i = 0; rd->colnames && i < rd->ncols; i++)
        free(rd->colnames[i]);
    free(rd->colnames);
    for (uint32_t i = 0; rd->coldesc && i < rd->ncols; i++)
        free(rd->coldesc[i]);
    free(rd->coldesc);
    for (int s = 0; s < VG_NSTREAMS; s++)
        free(rd->colfield[s]);
    free(rd->attr_col);
    if (rd->json)
        json_decref(rd->json);
    vg_pb_event_free(rd->pb);
    vg_vm_free(rd->mapvm);
    vg_ruleset_unref(rd->map);
    free(rd->rowcells);
    free(rd->mapvals);
    vg_buf_free(&rd->mapstr);
    free(rd);
}

/* Appends the next physical line (without its LF) to rd->rec; false at EOF. */
static bool
read_line(vg_reader *rd, bool *io_error)
{
    char chunk[8192];
    bool any = false;
    while (fgets(chunk, sizeof chunk, rd->f) != NULL) {
        size_t n = strlen(chunk);
        any = true;
        rd->done += n;
        bool nl = n > 0 && chunk[n - 1] == '\n';
        if (vg_buf_append(&rd->rec, chunk, nl ? n - 1 : n) != VG_OK) {
            *io_error = true;
            return false;
        }
        if (nl)
            break;
    }
    if (ferror(rd->f))
        *io_error = true;
    if (any)
        rd->lineno++;
    return any;
}

/* A `stream` value: txn (or empty) or event, any case, white space around
 * ignored. -1 when it is neither. */
static int
stream_of(const char *t, size_t n)
{
    while (n > 0 && (*t == ' ' || *t == '\t'))
        t++, n--;
    while (n > 0 && (t[n - 1] == ' ' || t[n - 1] == '\t'))
        n--;
    if (n == 0 || (n == 3 && strncasecmp(t, "txn", 3) == 0))
        return VG_STREAM_TXN;
    if (n == 5 && strncasecmp(t, "event", 5) == 0)
        return VG_STREAM_EVENT;
    return -1;
}

/* ---- CSV -------------------------------------------------------------------- */

/* Reads one CSV record (it may span lines inside quotes) and splits it into
 * cells. Returns false at EOF. */
static bool
csv_record(vg_reader *rd, bool *io_error, bool *unclosed)
{
    rd->rec.len = 0;
    *unclosed = false;
    if (!read_line(rd, io_error))
        return false;
    /* inside quotes at the end of a line: the record goes on */
    for (;;) {
        bool inq = false;
        const char *p = rd->rec.data, *end = p + rd->rec.len;
        while (p < end && (p = memchr(p, '"', (size_t)(end - p))) != NULL) {
            inq = !inq;
            p++;
        }
        if (!inq)
            break;
        vg_buf_putc(&rd->rec, '\n');
        if (!read_line(rd, io_error)) {
            *unclosed = true;
            break;
        }
    }
    if (rd->rec.len > 0 && rd->rec.data[rd->rec.len - 1] == '\r')
        rd->rec.len--; /* CRLF */
    rd->cells.len = 0;
    rd->ncells = 0;
    size_t i = 0, n = rd->rec.len;
    const char *s = rd->rec.data ? rd->rec.data : "";
    for (;;) {
        if (rd->ncells == rd->capcells) {
            uint32_t cap = rd->capcells ? rd->capcells * 2 : 32;
            cell *v = realloc(rd->cellv, cap * sizeof(cell));
            if (v == NULL) {
                *io_error = true;
                return false;
            }
            rd->cellv = v;
            rd->capcells = cap;
        }
        cell *c = &rd->cellv[rd->ncells++];
        c->off = rd->cells.len;
        if (i < n && s[i] == '"') {
            i++;
            while (i < n) {
                const char *q = memchr(s + i, '"', n - i);
                size_t run = q ? (size_t)(q - (s + i)) : n - i;
                vg_buf_append(&rd->cells, s + i, run);
                i += run;
                if (i == n)
                    break;
                if (i + 1 < n && s[i + 1] == '"') { /* "" is a quote */
                    vg_buf_putc(&rd->cells, '"');
                    i += 2;
                    continue;
                }
                i++;
                break;
            }
        }
        /* a plain cell; text after a closing quote belongs to the cell too,
         * as most readers treat it */
        const char *comma = i < n ? memchr(s + i, ',', n - i) : NULL;
        size_t run = comma ? (size_t)(comma - (s + i)) : n - i;
        vg_buf_append(&rd->cells, s + i, run);
        i += run;
        c->len = (uint32_t)(rd->cells.len - c->off);
        if (i < n && s[i] == ',') {
            i++;
            continue;
        }
        break;
    }
    vg_buf_append(&rd->cells, "", 0);
    return true;
}

static const char *
cell_text(const vg_reader *rd, uint32_t i)
{
    return rd->cells.data + rd->cellv[i].off;
}

static bool map_apply(vg_reader *rd, vg_event *ev);

static vg_err
csv_header(vg_reader *rd, char *why, size_t whylen)
{
    bool io = false, unclosed = false;
    if (!csv_record(rd, &io, &unclosed)) {
        snprintf(why, whylen,
                 io ? "can't read it" : "it is empty: a CSV file starts with a header row");
        return io ? VG_EIO : VG_EINVAL;
    }
    rd->ncols = rd->ncells;
    rd->colnames = calloc(rd->ncols, sizeof(char *));
    rd->attr_col = calloc(rd->ncols, sizeof(bool));
    rd->coldesc = calloc(rd->ncols, sizeof(char *));
    for (int s = 0; s < VG_NSTREAMS; s++) {
        rd->colfield[s] = malloc(rd->ncols * sizeof(int));
        rd->idfield[s] = vg_schema_field(rd->sc, (vg_stream_id)s, "id", 2);
    }
    if (rd->colnames == NULL || rd->coldesc == NULL || rd->attr_col == NULL ||
        rd->colfield[0] == NULL || rd->colfield[1] == NULL)
        return VG_ENOMEM;
    rd->stream_col = rd->label_col = -1;
    int mapped = 0;
    int seen[VG_NSTREAMS][VG_MAX_FIELDS]; /* the column that set each field, + 1 */
    memset(seen, 0, sizeof seen);
    bool has_time = false;
    for (uint32_t i = 0; i < rd->ncols; i++) {
        const char *name = cell_text(rd, i);
        uint32_t len = rd->cellv[i].len;
        if (i == 0 && len >= 3 && memcmp(name, "\xEF\xBB\xBF", 3) == 0) {
            name += 3; /* a byte-order mark */
            len -= 3;
        }
        rd->colnames[i] = strndup(name, len);
        size_t dlen = len + sizeof "column ''";
        rd->coldesc[i] = malloc(dlen);
        if (rd->colnames[i] == NULL || rd->coldesc[i] == NULL)
            return VG_ENOMEM;
        snprintf(rd->coldesc[i], dlen, "column '%s'", rd->colnames[i]);
        for (int s = 0; s < VG_NSTREAMS; s++) {
            const vg_field *f = vg_schema_field(rd->sc, (vg_stream_id)s, name, len);
            rd->colfield[s][i] = f && f->type != VG_FT_MAP ? (int)f->slot : -1;
            mapped += f != NULL;
            has_time |= f != NULL && f->type == VG_FT_TIME;
            if (f != NULL && seen[s][f->slot] && !rd->want_map) {
                snprintf(why, whylen,
                         "its header names '%s' twice (columns %d and %u): which one is meant? "
                         "rename one",
                         rd->colnames[i], seen[s][f->slot], i + 1);
                return VG_EINVAL;
            }
            if (f != NULL)
                seen[s][f->slot] = (int)i + 1;
        }
        if (len == 6 && memcmp(name, "stream", 6) == 0)
            rd->stream_col = (int)i;
        if (len > 5 && memcmp(name, "attr.", 5) == 0) /* attribute NAME (attr("NAME")) */
            rd->any_attr = rd->attr_col[i] = true;
        if (rd->label && strlen(rd->label) == len && memcmp(rd->label, name, len) == 0)
            rd->label_col = (int)i;
    }
    if (rd->label && rd->label_col < 0) {
        snprintf(why, whylen, "it has no column '%s' for --label", rd->label);
        return VG_EINVAL;
    }
    if (mapped > 0 && !has_time && !rd->want_map) {
        snprintf(why, whylen,
                 "its header has no 'time' column, and every event needs a time; name the "
                 "column that holds it 'time', or give a map file with --map (time = ...)");
        return VG_EINVAL;
    }
    if (mapped == 0 && !rd->want_map) {
        snprintf(why, whylen,
                 "no column of its header names an event field (like id, time, account_id, "
                 "amount); give a map file with --map");
        return VG_EINVAL;
    }
    return VG_OK;
}

static int
label_of(const char *s, size_t len)
{
    static const char *const yes[] = {"1", "true", "yes", "fraud"};
    while (len > 0 && (*s == ' ' || *s == '\t'))
        s++, len--;
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    for (size_t i = 0; i < VG_ARRAY_LEN(yes); i++)
        if (strlen(yes[i]) == len && strncasecmp(s, yes[i], len) == 0)
            return 1;
    return 0;
}

static void reject(vg_reader *rd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
reject(vg_reader *rd, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rd->reason.len = 0;
    vg_buf_puts(&rd->reason, msg);
}

/* Sets field f of ev from text; money waits for the currency. False (with
 * the reason set) when the text is not a value of the field's type. */
static bool
set_text(vg_reader *rd, vg_event *ev, const vg_field *f, const char *col, const char *s,
         uint32_t len)
{
    vg_value *v = &ev->v[f->slot];
    switch (f->type) {
    case VG_FT_STRING:
        v->kind = VG_V_STR;
        v->u.s = s;
        v->len = len;
        return true;
    case VG_FT_NUMBER:
        if (f->flags & VG_FIELD_MONEY) {
            unsigned k = rd->nmoney++;
            rd->money[k].slot = f->slot;
            rd->money[k].s = s;
            rd->money[k].len = len;
            rd->money[k].is_num = false;
            return true;
        }
        if (!vg_parse_number(s, len, &v->u.num)) {
            reject(rd, "%s '%.*s' is not a number", col, (int)(len > 40 ? 40 : len), s);
            return false;
        }
        v->kind = VG_V_NUM;
        return true;
    case VG_FT_TIME: {
        int64_t ms;
        if (!vg_parse_time(s, len, &ms)) {
            reject(rd,
                   "%s '%.*s' is not a time: write epoch milliseconds or ISO 8601 "
                   "(2024-05-01T12:00:00Z)",
                   col, (int)(len > 40 ? 40 : len), s);
            return false;
        }
        v->kind = VG_V_TIME;
        v->u.num = (double)ms;
        return true;
    }
    case VG_FT_BOOL: {
        bool b;
        if (!vg_parse_bool(s, len, &b)) {
            reject(rd, "%s '%.*s' is not true or false", col, (int)(len > 40 ? 40 : len), s);
            return false;
        }
        v->kind = VG_V_BOOL;
        v->u.num = b;
        return true;
    }
    case VG_FT_ENUM: {
        int e;
        if (!vg_parse_enum(f->enum_type, s, len, &e)) {
            reject(rd, "%s '%.*s' is not a %s value", col, (int)(len > 40 ? 40 : len), s,
                   vg_enum_name(f->enum_type));
            return false;
        }
        v->kind = VG_V_ENUM;
        v->u.num = e;
        return true;
    }
    case VG_FT_MAP: return true;
    }
    return true;
}

/* Converts the money cells now that the currency (ev->digits) is known. */
static bool
set_money(vg_reader *rd, vg_event *ev)
{
    const vg_field *cur = vg_schema_currency(rd->sc, ev->stream);
    if (cur != NULL && ev->v[cur->slot].kind == VG_V_STR)
        ev->digits = (uint8_t)vg_currency_digits(ev->v[cur->slot].u.s, ev->v[cur->slot].len);
    for (unsigned k = 0; k < rd->nmoney; k++) {
        const vg_field *f = vg_schema_field_at(rd->sc, ev->stream, rd->money[k].slot);
        int64_t minor;
        const char *why = NULL;
        /* the amount as text: a cell, or a number (JSON, a map) in its
         * shortest form, so 9839.64 is not 9839.6399999999994 */
        char buf[64];
        const char *txt = rd->money[k].s;
        size_t tlen = rd->money[k].len;
        if (rd->money[k].is_num) {
            for (int p = 1; p <= 17; p++) {
                snprintf(buf, sizeof buf, "%.*g", p, rd->money[k].num);
                if (strtod(buf, NULL) == rd->money[k].num)
                    break;
            }
            txt = buf;
            tlen = strlen(buf);
        }
        if (!vg_parse_money(txt, tlen, ev->digits, &minor, &why)) {
            const vg_field *cf = vg_schema_currency(rd->sc, ev->stream);
            const vg_value *cv = cf ? &ev->v[cf->slot] : NULL;
            char amount[48];
            snprintf(amount, sizeof amount, "%.*s", (int)(tlen > 40 ? 40 : tlen), txt);
            if (why != NULL && strstr(why, "decimals"))
                reject(rd, "%s '%s' has more decimals than %.*s allows (%u)", f->name, amount,
                       cv && cv->kind == VG_V_STR && cv->len ? (int)cv->len : 12,
                       cv && cv->kind == VG_V_STR && cv->len ? cv->u.s : "its currency",
                       ev->digits);
            else if (why != NULL)
                reject(rd, "%s '%s': %s", f->name, amount, why);
            else
                reject(rd, "%s '%s' is not an amount", f->name, amount);
            return false;
        }
        ev->v[f->slot].kind = VG_V_NUM;
        ev->v[f->slot].u.num = (double)minor / vg_pow10(ev->digits);
    }
    return true;
}

static vg_read
csv_next(vg_reader *rd, vg_event *ev, uint64_t *line, int *label)
{
    bool io = false, unclosed = false;
    uint64_t start;
    do {
        start = rd->lineno + 1;
        if (!csv_record(rd, &io, &unclosed)) {
            if (io) {
                reject(rd, "can't read: %s", strerror(errno));
                return VG_READ_ERROR;
            }
            return VG_READ_END;
        }
    } while (rd->rec.len == 0); /* blank lines are not rows */
    rd->datarow++;
    *line = start;
    if (unclosed) {
        reject(rd, "a quoted cell is never closed (a '\"' is missing)");
        rd->syntax++;
        return VG_READ_REJECT;
    }
    if (rd->ncells != rd->ncols) {
        reject(rd, "%u cells, but the header has %u columns", rd->ncells, rd->ncols);
        rd->syntax++;
        return VG_READ_REJECT;
    }
    vg_stream_id s = VG_STREAM_TXN;
    if (rd->stream_col >= 0) {
        const char *t = cell_text(rd, (uint32_t)rd->stream_col);
        uint32_t n = rd->cellv[rd->stream_col].len;
        int sv = stream_of(t, n);
        if (sv < 0) {
            reject(rd, "stream '%.*s' is neither txn nor event", (int)(n > 40 ? 40 : n), t);
            return VG_READ_REJECT;
        }
        s = (vg_stream_id)sv;
    }
    vg_event_clear(ev, s);
    rd->nmoney = 0;
    for (uint32_t i = 0; i < rd->ncols; i++) {
        int slot = rd->colfield[s][i];
        if (slot < 0 || rd->cellv[i].len == 0) /* an empty cell sets nothing */
            continue;
        if (!set_text(rd, ev, vg_schema_field_at(rd->sc, s, (size_t)slot), rd->coldesc[i],
                      cell_text(rd, i), rd->cellv[i].len))
            return VG_READ_REJECT;
    }
    if (rd->any_attr) {
        rd->attrbuf.len = 0;
        for (uint32_t i = 0; i < rd->ncols; i++) {
            if (!rd->attr_col[i] || rd->cellv[i].len == 0)
                continue;
            vg_attr a = {rd->colnames[i] + 5, cell_text(rd, i),
                         (uint32_t)strlen(rd->colnames[i] + 5), rd->cellv[i].len};
            if (vg_buf_append(&rd->attrbuf, &a, sizeof a) != VG_OK)
                return VG_READ_ERROR;
        }
        ev->attrs = (const vg_attr *)rd->attrbuf.data;
        ev->nattrs = (uint32_t)(rd->attrbuf.len / sizeof(vg_attr));
    }
    if (rd->map != NULL && !map_apply(rd, ev))
        return VG_READ_REJECT;
    if (!set_money(rd, ev))
        return VG_READ_REJECT;
    /* no id column: the 1-based data row number is the id */
    const vg_field *id = rd->idfield[s];
    if (id != NULL && ev->v[id->slot].kind == VG_V_MISSING) {
        int n = snprintf(rd->idbuf, sizeof rd->idbuf, "%llu", (unsigned long long)rd->datarow);
        rd->row_ids = true;
        ev->v[id->slot].kind = VG_V_STR;
        ev->v[id->slot].u.s = rd->idbuf;
        ev->v[id->slot].len = (uint32_t)n;
    }
    vg_event_defaults(rd->sc, ev); /* an empty cell is what an absent wire field is */
    if (rd->label_col >= 0)
        *label = label_of(cell_text(rd, (uint32_t)rd->label_col), rd->cellv[rd->label_col].len);
    return VG_READ_EVENT;
}

/* ---- JSONL ------------------------------------------------------------------ */

static vg_read
jsonl_next(vg_reader *rd, vg_event *ev, uint64_t *line, int *label)
{
    bool io = false;
    do {
        rd->rec.len = 0;
        if (!read_line(rd, &io)) {
            if (io) {
                reject(rd, "can't read: %s", strerror(errno));
                return VG_READ_ERROR;
            }
            return VG_READ_END;
        }
        while (rd->rec.len > 0 &&
               (rd->rec.data[rd->rec.len - 1] == '\r' || rd->rec.data[rd->rec.len - 1] == ' '))
            rd->rec.len--;
    } while (rd->rec.len == 0);
    *line = rd->lineno;
    if (rd->json) {
        json_decref(rd->json);
        rd->json = NULL;
    }
    json_error_t jerr;
    rd->json = json_loadb(rd->rec.data, rd->rec.len, JSON_REJECT_DUPLICATES, &jerr);
    if (rd->json == NULL) {
        reject(rd, "not JSON: %s (at column %d)", jerr.text, jerr.column);
        rd->syntax++;
        return VG_READ_REJECT;
    }
    if (!json_is_object(rd->json)) {
        reject(rd, "a line holds one JSON object, like {\"id\": \"t-1\", ...}");
        rd->syntax++;
        return VG_READ_REJECT;
    }
    vg_stream_id s = VG_STREAM_TXN;
    json_t *st = json_object_get(rd->json, "stream");
    if (st != NULL) {
        int sv = json_is_string(st) ? stream_of(json_string_value(st), json_string_length(st)) : -1;
        if (sv < 0) {
            reject(rd, "\"stream\" must be \"txn\" or \"event\"");
            return VG_READ_REJECT;
        }
        s = (vg_stream_id)sv;
    }
    vg_event_clear(ev, s);
    rd->nmoney = 0;
    rd->attrbuf.len = 0;
    const char *name;
    json_t *val;
    json_object_foreach(rd->json, name, val)
    {
        const vg_field *f = vg_schema_field(rd->sc, s, name, strlen(name));
        if (f == NULL || json_is_null(val))
            continue;
        char col[80];
        snprintf(col, sizeof col, "\"%s\"", name);
        if (f->type == VG_FT_MAP) {
            if (!json_is_object(val)) {
                reject(rd, "%s must be an object of strings", col);
                return VG_READ_REJECT;
            }
            const char *k;
            json_t *x;
            json_object_foreach(val, k, x)
            {
                if (!json_is_string(x)) {
                    reject(rd, "%s: \"%s\" must be a string", col, k);
                    return VG_READ_REJECT;
                }
                vg_attr a = {k, json_string_value(x), (uint32_t)strlen(k),
                             (uint32_t)json_string_length(x)};
                if (vg_buf_append(&rd->attrbuf, &a, sizeof a) != VG_OK)
                    return VG_READ_ERROR;
            }
            continue;
        }
        if (json_is_string(val)) {
            if (!set_text(rd, ev, f, col, json_string_value(val),
                          (uint32_t)json_string_length(val)))
                return VG_READ_REJECT;
        } else if (json_is_number(val) && f->type == VG_FT_NUMBER) {
            if (f->flags & VG_FIELD_MONEY) {
                unsigned k = rd->nmoney++;
                rd->money[k].slot = f->slot;
                rd->money[k].num = json_number_value(val);
                rd->money[k].is_num = true;
            } else {
                ev->v[f->slot].kind = VG_V_NUM;
                ev->v[f->slot].u.num = json_number_value(val);
            }
        } else if (f->type == VG_FT_TIME && json_is_number(val) &&
                   json_number_value(val) == floor(json_number_value(val)) &&
                   fabs(json_number_value(val)) < 9e15) {
            ev->v[f->slot].kind = VG_V_TIME; /* epoch ms, 1714557600000 or 1.7145576e12 */
            ev->v[f->slot].u.num = json_number_value(val);
        } else if (json_is_boolean(val) && f->type == VG_FT_BOOL) {
            ev->v[f->slot].kind = VG_V_BOOL;
            ev->v[f->slot].u.num = json_is_true(val);
        } else {
            static const char *const want[] = {"",
                                               "a number",
                                               "a string",
                                               "true or false",
                                               "a time (epoch ms or ISO 8601)",
                                               "a value name",
                                               ""};
            reject(rd, "%s must be %s", col, want[f->type]);
            return VG_READ_REJECT;
        }
    }
    ev->attrs = (const vg_attr *)rd->attrbuf.data;
    ev->nattrs = (uint32_t)(rd->attrbuf.len / sizeof(vg_attr));
    if (!set_money(rd, ev))
        return VG_READ_REJECT;
    vg_event_defaults(rd->sc, ev); /* an absent member is what an absent wire field is */
    if (rd->label) {
        json_t *l = json_object_get(rd->json, rd->label);
        *label = l == NULL ? -1 : 0; /* -1: the row says nothing */
        if (json_is_true(l) || (json_is_number(l) && json_number_value(l) == 1))
            *label = 1;
        else if (json_is_string(l))
            *label = label_of(json_string_value(l), json_string_length(l));
    }
    return VG_READ_EVENT;
}

/* ---- Length-delimited protobuf ------------------------------------------ */

static vg_read
pb_next(vg_reader *rd, vg_event *ev, uint64_t *line)
{
    /* varint length */
    uint64_t len = 0;
    int shift = 0, c;
    for (;;) {
        c = fgetc(rd->f);
        if (c == EOF) {
            if ((shift == 0 && !ferror(rd->f)) || rd->at_end)
                return VG_READ_END;
            if (ferror(rd->f)) {
                reject(rd, "can't read: %s", strerror(errno));
                return VG_READ_ERROR;
            }
            /* a truncated tail: one bad record, then the end */
            *line = ++rd->lineno;
            rd->at_end = true;
            reject(rd, "the file ends inside a length prefix (a truncated last message)");
            rd->syntax++;
            return VG_READ_REJECT;
        }
        rd->done++;
        len |= (uint64_t)(c & 0x7F) << shift;
        shift += 7;
        if (!(c & 0x80))
            break;
        if (shift > 63) {
            reject(rd, "a length prefix is longer than 10 bytes: not a length-delimited file");
            rd->syntax++;
            return VG_READ_ERROR;
        }
    }
    *line = ++rd->lineno;
    if (len > (64u << 20)) {
        reject(rd, "a message of %llu bytes: more than 64 MiB", (unsigned long long)len);
        rd->syntax++;
        return VG_READ_ERROR; /* cannot resynchronise */
    }
    rd->rec.len = 0;
    if (vg_buf_append(&rd->rec, NULL, 0) != VG_OK)
        return VG_READ_ERROR;
    while (rd->rec.len < len) {
        char chunk[65536];
        size_t want = len - rd->rec.len < sizeof chunk ? (size_t)(len - rd->rec.len) : sizeof chunk;
        size_t n = fread(chunk, 1, want, rd->f);
        if (n == 0) {
            if (ferror(rd->f)) {
                reject(rd, "can't read: %s", strerror(errno));
                return VG_READ_ERROR;
            }
            rd->at_end = true;
            reject(rd, "the file ends inside a message (%llu of its %llu bytes are there)",
                   (unsigned long long)rd->rec.len, (unsigned long long)len);
            rd->syntax++;
            return VG_READ_REJECT;
        }
        rd->done += n;
        if (vg_buf_append(&rd->rec, chunk, n) != VG_OK)
            return VG_READ_ERROR;
    }
    char why[160];
    vg_err err = vg_pb_decode(&rd->pb, rd->sc, (const uint8_t *)rd->rec.data, rd->rec.len, ev, why,
                              sizeof why);
    if (err == VG_EINVAL) {
        reject(rd, "%s", why);
        rd->syntax += strncmp(why, "not a valid", 11) == 0; /* not a message at all */
        return VG_READ_REJECT;
    }
    return err ? VG_READ_ERROR : VG_READ_EVENT;
}

vg_read
vg_reader_next(vg_reader *rd, vg_event *ev, uint64_t *line, const char **reason, int *label)
{
    *label = -1;
    rd->reason.len = 0;
    vg_read r;
    switch (rd->fmt) {
    case VG_FMT_CSV: r = csv_next(rd, ev, line, label); break;
    case VG_FMT_JSONL: r = jsonl_next(rd, ev, line, label); break;
    default: r = pb_next(rd, ev, line); break;
    }
    if (r == VG_READ_EVENT && rd->label == NULL)
        *label = -1;
    *reason = rd->reason.data ? rd->reason.data : "";
    return r;
}

/* ---- Map files ------------------------------------------------------------ */

static vg_err
map_open(vg_reader *rd, const vg_reader_opts *opts, char *why, size_t whylen)
{
    vg_compile_opts copts = {.schema = rd->sc, .diag = opts->diag, .diag_ctx = opts->diag_ctx};
    vg_err err = vg_map_compile(opts->map_path, (const char *const *)rd->colnames, rd->ncols,
                                &copts, &rd->map_errors, &rd->map);
    if (opts->map_errors)
        *opts->map_errors = rd->map_errors;
    if (err && opts->map_failed)
        *opts->map_failed = true;
    if (err == VG_ECOMPILE) {
        snprintf(why, whylen, "the map file '%s' has errors", opts->map_path);
        return VG_ECOMPILE;
    }
    if (err) {
        snprintf(why, whylen, "can't read the map file '%s': %s", opts->map_path, vg_strerror(err));
        return err;
    }
    rd->assigns = vg_ruleset_map(rd->map, &rd->nassigns);
    rd->rowcells = calloc(rd->ncols ? rd->ncols : 1, sizeof(vg_value));
    rd->mapvals = calloc(rd->nassigns ? rd->nassigns : 1, sizeof(vg_value));
    if (rd->rowcells == NULL || rd->mapvals == NULL || vg_vm_new(rd->map, &rd->mapvm) != VG_OK)
        return VG_ENOMEM;
    return VG_OK;
}

/* Runs the map's assignments on the row and sets the fields they name. */
static bool
map_apply(vg_reader *rd, vg_event *ev)
{
    static const char *const kinds[] = {
        "",           "a number",    "a string", "true or false", "a time (epoch ms or ISO 8601)",
        "a duration", "a value name"};
    for (uint32_t i = 0; i < rd->ncols; i++) {
        vg_value *c = &rd->rowcells[i];
        c->kind = rd->cellv[i].len ? VG_V_STR : VG_V_MISSING; /* empty: sets nothing */
        c->u.s = cell_text(rd, i);
        c->len = rd->cellv[i].len;
    }
    vg_vm_ctx ctx = {.cols = rd->rowcells};
    rd->mapstr.len = 0;
    /* a string a program made lives in VM scratch until the next eval: keep
     * its bytes, by offset, and fix the pointers once all have run */
    for (size_t i = 0; i < rd->nassigns; i++) {
        const vg_map_assign *a = &rd->assigns[i];
        if (a->field[ev->stream] == NULL) {
            rd->mapvals[i].kind = VG_V_MISSING;
            continue;
        }
        vg_value v = vg_vm_eval(rd->mapvm, &a->prog, &ctx);
        const char *text;
        uint32_t len;
        uint8_t kind;
        if (vg_vm_conv_failed(rd->mapvm, &text, &len, &kind)) {
            reject(rd, "%s: '%.*s' is not %s", a->name, (int)(len > 40 ? 40 : len), text,
                   kinds[kind]);
            return false;
        }
        if (v.kind == VG_V_STR) {
            const char *cells = rd->cells.data;
            if (!(v.u.s >= cells && v.u.s < cells + rd->cells.cap)) {
                size_t off = rd->mapstr.len;
                if (vg_buf_append(&rd->mapstr, v.u.s, v.len) != VG_OK)
                    return false;
                rd->mapvals[i].u.num = (double)off; /* patched below */
                rd->mapvals[i].kind = 0xFF;
                rd->mapvals[i].len = v.len;
                continue;
            }
        }
        rd->mapvals[i] = v;
    }
    for (size_t i = 0; i < rd->nassigns; i++) {
        vg_value *v = &rd->mapvals[i];
        if (v->kind == 0xFF) {
            size_t off = (size_t)v->u.num;
            v->kind = VG_V_STR;
            v->u.s = rd->mapstr.data + off;
        }
    }
    for (size_t i = 0; i < rd->nassigns; i++) {
        const vg_map_assign *a = &rd->assigns[i];
        const vg_field *f = a->field[ev->stream];
        vg_value *v = &rd->mapvals[i];
        if (f == NULL || v->kind == VG_V_MISSING)
            continue;
        /* a field the map sets wins over a same-named column */
        ev->v[f->slot].kind = VG_V_MISSING;
        for (unsigned k = 0; k < rd->nmoney; k++)
            if (rd->money[k].slot == f->slot)
                rd->money[k] = rd->money[--rd->nmoney];
        char what[80];
        snprintf(what, sizeof what, "%s", a->name);
        if (v->kind == VG_V_STR) {
            if (!set_text(rd, ev, f, what, v->u.s, v->len))
                return false;
        } else if ((f->flags & VG_FIELD_MONEY) && v->kind == VG_V_NUM) {
            unsigned k = rd->nmoney++;
            rd->money[k].slot = f->slot;
            rd->money[k].num = v->u.num;
            rd->money[k].is_num = true;
        } else if (f->type == VG_FT_TIME && v->kind == VG_V_DUR) {
            ev->v[f->slot].kind = VG_V_TIME; /* a duration counts from the epoch */
            ev->v[f->slot].u.num = v->u.num;
        } else {
            ev->v[f->slot] = *v;
        }
    }
    return true;
}

vg_err
vg_reader_open(const char *path, const vg_schema *sc, const vg_reader_opts *opts, char *why,
               size_t whylen, vg_reader **out)
{
    vg_reader *rd = calloc(1, sizeof *rd);
    if (rd == NULL)
        return VG_ENOMEM;
    vg_err err = VG_OK;
    rd->sc = sc;
    rd->fmt = opts && opts->format ? opts->format : vg_format_of_path(path);
    rd->label = opts ? opts->label : NULL;
    if (rd->fmt == VG_FMT_AUTO) {
        snprintf(why, whylen,
                 "can't tell its format from the name: give --format csv, jsonl or pb");
        err = VG_EINVAL;
        goto fail;
    }
    if (opts && opts->map_path && rd->fmt != VG_FMT_CSV) {
        snprintf(why, whylen, "a map file applies to CSV input only");
        err = VG_EINVAL;
        goto fail;
    }
    if (rd->label && rd->fmt == VG_FMT_PB) {
        snprintf(why, whylen, "--label needs CSV or JSONL input (pb events carry no label)");
        err = VG_EINVAL;
        goto fail;
    }
    rd->is_stdin = strcmp(path, "-") == 0;
    rd->f = rd->is_stdin ? stdin : fopen(path, rd->fmt == VG_FMT_PB ? "rb" : "r");
    if (rd->f == NULL) {
        snprintf(why, whylen, "%s", strerror(errno));
        err = errno == ENOENT ? VG_ENOENT : VG_EIO;
        goto fail;
    }
    struct stat st;
    if (!rd->is_stdin && fstat(fileno(rd->f), &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            snprintf(why, whylen, "it is a folder");
            err = VG_EIO;
            goto fail;
        }
        if (S_ISREG(st.st_mode))
            rd->size = (uint64_t)st.st_size;
    }
    if (rd->fmt == VG_FMT_CSV) {
        rd->want_map = opts && opts->map_path;
        err = csv_header(rd, why, whylen);
        if (err == VG_OK && opts && opts->map_path)
            err = map_open(rd, opts, why, whylen);
        if (err)
            goto fail;
    }
    *out = rd;
    return VG_OK;
fail:
    vg_reader_close(rd);
    return err;
}
