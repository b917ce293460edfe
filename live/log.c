/*
 * log.c - the event log (vg_log.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vg_log.h"

#define SEGMENT_BYTES ((off_t)64 << 20) /* a new segment after this many */
#define HEADER 12                       /* u32 length + u64 checksum */
#define MAX_RECORD ((uint32_t)64 << 20)

struct vg_log {
    char *dir;
    int fd;          /* the segment being written */
    off_t size;      /* its bytes */
    int64_t first;   /* position of its first record */
    int64_t next;    /* position of the next record */
    vg_buf pending;  /* records not yet written */
    int64_t *starts; /* every segment's first position, ascending */
    size_t nstarts;
    int last_errno; /* of the last write or sync that failed */
};

static uint64_t
checksum(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, 64 bits */
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static void
segment_path(const vg_log *l, int64_t first, char *out, size_t size)
{
    snprintf(out, size, "%s/%016" PRIx64 ".log", l->dir, (uint64_t)first);
}

static int
cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Reads segment first's records from fd, calling fn (if any) for those at
 * or after `from`; *count gets the whole records, *good the bytes they end
 * at (a torn tail stops the scan). */
static vg_err
scan(int fd, int64_t first, int64_t from, vg_err (*fn)(void *, int64_t, const uint8_t *, size_t),
     void *ctx, int64_t *count, off_t *good)
{
    vg_buf rec = {0};
    vg_err err = VG_OK;
    *count = 0;
    *good = 0;
    FILE *f = fdopen(dup(fd), "rb");
    if (f == NULL)
        return VG_EIO;
    if (fseeko(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return VG_EIO;
    }
    for (;;) {
        unsigned char hdr[HEADER];
        if (fread(hdr, 1, HEADER, f) != HEADER)
            break;
        uint32_t len;
        uint64_t sum;
        memcpy(&len, hdr, 4);
        memcpy(&sum, hdr + 4, 8);
        if (len > MAX_RECORD)
            break;
        rec.len = 0;
        if ((err = vg_buf_append(&rec, NULL, 0)) != VG_OK)
            break;
        if (rec.cap < len + 1) {
            char *p = realloc(rec.data, len + 1);
            if (p == NULL) {
                err = VG_ENOMEM;
                break;
            }
            rec.data = p;
            rec.cap = len + 1;
        }
        if (fread(rec.data, 1, len, f) != len || checksum((uint8_t *)rec.data, len) != sum)
            break; /* torn: written, never acked */
        int64_t pos = first + *count;
        if (fn != NULL && pos >= from && (err = fn(ctx, pos, (uint8_t *)rec.data, len)) != VG_OK)
            break;
        (*count)++;
        *good += HEADER + len;
    }
    fclose(f);
    vg_buf_free(&rec);
    return err;
}

/* Syncs the folder that holds path (vg_sync_dir). */
static vg_err
sync_parent(const char *path)
{
    char up[4096];
    snprintf(up, sizeof up, "%s", path);
    char *slash = strrchr(up, '/');
    if (slash == NULL)
        return vg_sync_dir(".");
    if (slash == up)
        slash[1] = '\0';
    else
        *slash = '\0';
    return vg_sync_dir(up);
}

vg_err
vg_log_open(const char *dir, vg_log **out, int64_t *end, char *why, size_t whylen)
{
    vg_log *l = calloc(1, sizeof *l);
    if (l == NULL || (l->dir = strdup(dir)) == NULL) {
        free(l);
        return VG_ENOMEM;
    }
    l->fd = -1;
    if (mkdir(dir, 0775) == 0) {
        if (sync_parent(dir) != VG_OK) {
            snprintf(why, whylen, "can't sync the folder of '%s': %s", dir, strerror(errno));
            vg_log_close(l);
            return VG_EIO;
        }
    } else if (errno != EEXIST) {
        snprintf(why, whylen, "can't make the log folder '%s': %s", dir, strerror(errno));
        vg_log_close(l);
        return VG_EIO;
    }
    DIR *d = opendir(dir);
    if (d == NULL) {
        snprintf(why, whylen, "can't read the log folder '%s': %s", dir, strerror(errno));
        vg_log_close(l);
        return VG_EIO;
    }
    struct dirent *de;
    size_t cap = 0;
    while ((de = readdir(d)) != NULL) {
        unsigned long long v;
        char tail[8];
        if (strlen(de->d_name) != 20 || sscanf(de->d_name, "%16llx%7s", &v, tail) != 2 ||
            strcmp(tail, ".log") != 0)
            continue;
        if (l->nstarts == cap) {
            cap = cap ? cap * 2 : 16;
            int64_t *s = realloc(l->starts, cap * sizeof *s);
            if (s == NULL) {
                closedir(d);
                vg_log_close(l);
                return VG_ENOMEM;
            }
            l->starts = s;
        }
        l->starts[l->nstarts++] = (int64_t)v;
    }
    closedir(d);
    if (l->nstarts > 1)
        qsort(l->starts, l->nstarts, sizeof *l->starts, cmp_i64);
    if (l->nstarts == 0) { /* a new log */
        l->starts = malloc(sizeof *l->starts);
        if (l->starts == NULL) {
            vg_log_close(l);
            return VG_ENOMEM;
        }
        l->starts[l->nstarts++] = 0;
    }
    /* the last segment: find its end, cut off a torn tail */
    char path[4096];
    l->first = l->starts[l->nstarts - 1];
    segment_path(l, l->first, path, sizeof path);
    l->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0664);
    int64_t count;
    off_t good;
    vg_err err = l->fd < 0 ? VG_EIO : scan(l->fd, l->first, INT64_MAX, NULL, NULL, &count, &good);
    if (err == VG_OK)
        err = vg_sync_dir(dir); /* the segment may be new */
    if (err == VG_OK && ftruncate(l->fd, good) != 0)
        err = VG_EIO;
    if (err) {
        snprintf(why, whylen, "can't read the log segment '%s': %s", path, strerror(errno));
        vg_log_close(l);
        return err;
    }
    l->size = good;
    l->next = l->first + count;
    *end = l->next;
    *out = l;
    return VG_OK;
}

void
vg_log_close(vg_log *l)
{
    if (l == NULL)
        return;
    if (l->fd >= 0)
        close(l->fd);
    vg_buf_free(&l->pending);
    free(l->starts);
    free(l->dir);
    free(l);
}

vg_err
vg_log_replay(vg_log *l, int64_t from,
              vg_err (*fn)(void *ctx, int64_t pos, const uint8_t *rec, size_t len), void *ctx)
{
    for (size_t i = 0; i < l->nstarts; i++) {
        if (i + 1 < l->nstarts && l->starts[i + 1] <= from)
            continue; /* wholly before */
        char path[4096];
        segment_path(l, l->starts[i], path, sizeof path);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return VG_EIO;
        int64_t count;
        off_t good;
        vg_err err = scan(fd, l->starts[i], from, fn, ctx, &count, &good);
        close(fd);
        if (err)
            return err;
    }
    return VG_OK;
}

vg_err
vg_log_add(vg_log *l, const uint8_t *rec, size_t len, int64_t *pos)
{
    if (len > MAX_RECORD)
        return VG_ELIMIT;
    uint32_t n = (uint32_t)len;
    uint64_t sum = checksum(rec, len);
    vg_err err = vg_buf_append(&l->pending, &n, 4);
    err = err ? err : vg_buf_append(&l->pending, &sum, 8);
    err = err ? err : vg_buf_append(&l->pending, rec, len);
    if (err == VG_OK)
        *pos = l->next++;
    return err;
}

/* Starts a new segment at position l->next - records pending. */
static vg_err
roll(vg_log *l, int64_t first)
{
    char path[4096];
    segment_path(l, first, path, sizeof path);
    int fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0664);
    if (fd < 0)
        return VG_EIO;
    if (vg_sync_dir(l->dir) != VG_OK) { /* its name, durable before a record is acked */
        close(fd);
        return VG_EIO;
    }
    int64_t *s = realloc(l->starts, (l->nstarts + 1) * sizeof *s);
    if (s == NULL) {
        close(fd);
        return VG_ENOMEM;
    }
    s[l->nstarts++] = first;
    l->starts = s;
    close(l->fd);
    l->fd = fd;
    l->first = first;
    l->size = 0;
    return VG_OK;
}

vg_err
vg_log_commit(vg_log *l)
{
    if (l->pending.len == 0)
        return VG_OK;
    if (l->size >= SEGMENT_BYTES) {
        /* the pending group starts the new segment: count its records */
        int64_t n = 0;
        for (size_t at = 0; at < l->pending.len; n++) {
            uint32_t len;
            memcpy(&len, l->pending.data + at, 4);
            at += HEADER + len;
        }
        vg_err err = roll(l, l->next - n);
        if (err)
            return err;
    }
    size_t done = 0;
    l->last_errno = 0;
    while (done < l->pending.len) {
        ssize_t w = write(l->fd, l->pending.data + done, l->pending.len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            l->last_errno = w < 0 ? errno : ENOSPC; /* a write of 0: no room */
            break;
        }
        done += (size_t)w;
    }
    if (done == l->pending.len && fdatasync(l->fd) != 0)
        l->last_errno = errno;
    if (done < l->pending.len || l->last_errno != 0) {
        /* leave no torn record behind for the next group to follow */
        if (ftruncate(l->fd, l->size) != 0) {
            /* opening the log cuts a torn tail off anyway */
        }
        return VG_EIO;
    }
    l->size += (off_t)l->pending.len;
    l->pending.len = 0;
    return VG_OK;
}

const char *
vg_log_error(const vg_log *l)
{
    return l != NULL && l->last_errno != 0 ? strerror(l->last_errno) : NULL;
}

int64_t
vg_log_next(const vg_log *l)
{
    return l->next;
}

void
vg_log_trim(vg_log *l, int64_t pos)
{
    size_t keep = 0;
    while (keep + 1 < l->nstarts && l->starts[keep + 1] <= pos) {
        char path[4096];
        segment_path(l, l->starts[keep], path, sizeof path);
        unlink(path);
        keep++;
    }
    if (keep > 0) {
        memmove(l->starts, l->starts + keep, (l->nstarts - keep) * sizeof *l->starts);
        l->nstarts -= keep;
    }
}
