/*
 * file.c - the synchronous file sinks (SPEC section 6): stdout, each alert's
 * JSON on a line of standard output (or of conf->file), and jsonl, each
 * alert's JSON on a line appended to the file at conf->path.
 *
 * Both write on the engine's thread, inside deliver(), and report each record
 * through done() before deliver() returns; they hold nothing, so flush() has
 * nothing to wait for. A write that fails reports none of the call's records:
 * deliver() returns VG_EIO, health() shows the error, and the engine offers
 * the records again later, so a full disk or a closed pipe loses no alert.
 *
 * jsonl writes a call's lines with one write() (looping only on a short
 * write), so a reader tailing the file sees whole lines. When the file at
 * its path is no longer the one it holds open (logrotate moved or removed
 * it), it opens the path again before writing: rotation needs no signal. When a write stops
 * part way, or fdatasync fails after it, the file is cut back to its size
 * before the call: no partial line, and no duplicate lines when the records
 * come again. stdout cannot take back what already reached a pipe or a
 * terminal, so a failure there part way may leave a partial line.
 *
 * A slow reader must not stop the engine: when standard output is a pipe
 * or a socket, the stdout sink writes with write() to it in non-blocking
 * mode. When the pipe is full, the lines written whole are delivered, the
 * rest of a line cut part way is kept (and that record is reported done
 * once its rest is out: the engine offers it again, and it is recognised by
 * its number), and the records after it are not taken (VG_ELIMIT): they
 * wait in the outbox, ingest goes on.
 *
 * health() may be called from another thread (/metrics), so the health
 * record sits under a mutex; deliver() has one caller at a time.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vg_sink.h"

typedef struct fs_sink {
    /* Set by open(), read-only afterwards. */
    FILE *f;    /* stdout: where the lines go; not owned */
    int fd;     /* jsonl: the file, opened O_APPEND; -1 for stdout */
    bool fsync; /* jsonl: fdatasync after each call */
    char *path; /* jsonl: for messages */
    vg_sink_done_fn *done;
    void *ctx;

    /* deliver() alone: a call's lines, kept so the hot path rarely allocates */
    vg_buf lines;
    /* stdout to a pipe or socket, non-blocking: its fd (else -1), and the
     * unwritten rest of the line of record pend_seq, when has_pend */
    int nbfd;
    vg_buf pend;
    size_t pend_off;
    uint64_t pend_seq;
    bool has_pend;

    pthread_mutex_t mu; /* guards health */
    vg_sink_health health;
} fs_sink;

static fs_sink *
fs_new(vg_sink_done_fn *done, void *ctx)
{
    fs_sink *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->fd = -1;
    s->nbfd = -1;
    s->done = done;
    s->ctx = ctx;
    s->health.ok = true;
    pthread_mutex_init(&s->mu, NULL);
    return s;
}

static void
fs_free(fs_sink *s)
{
    if (s == NULL)
        return;
    if (s->fd >= 0)
        close(s->fd);
    free(s->path);
    vg_buf_free(&s->lines);
    vg_buf_free(&s->pend);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* Records a failed call in health and returns VG_EIO. */
__attribute__((format(printf, 2, 3))) static vg_err
fs_failed(fs_sink *s, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&s->mu);
    s->health.ok = false;
    s->health.failed++;
    va_start(ap, fmt);
    vsnprintf(s->health.last_error, sizeof s->health.last_error, fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&s->mu);
    return VG_EIO;
}

/* The call's records reached the destination: reports them, in order. */
static void
fs_delivered(fs_sink *s, const vg_outrec *recs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        s->done(s->ctx, recs[i].seq, VG_SINK_DELIVERED);
    pthread_mutex_lock(&s->mu);
    s->health.ok = true;
    s->health.delivered += n;
    pthread_mutex_unlock(&s->mu);
}

static vg_err
fs_flush(void *self, double timeout_s)
{
    (void)self;
    (void)timeout_s;
    return VG_OK; /* every record was finished inside its deliver() */
}

static void
fs_health(void *self, vg_sink_health *out)
{
    fs_sink *s = self;
    pthread_mutex_lock(&s->mu);
    *out = s->health;
    out->in_flight = 0;
    pthread_mutex_unlock(&s->mu);
}

/* ---- stdout ------------------------------------------------------------ */

static vg_err
stdout_open(const vg_sink_conf *conf, vg_sink_done_fn *done, void *ctx, void **self, char *why,
            size_t whylen)
{
    if (conf->path != NULL) {
        snprintf(why, whylen,
                 "a stdout sink takes no path: to append alerts to a file write "
                 "{type: jsonl, path: %s}",
                 conf->path);
        return VG_EINVAL;
    }
    if (conf->url != NULL) {
        snprintf(why, whylen,
                 "a stdout sink takes no url: to publish alerts write {type: nng, url: %s}",
                 conf->url);
        return VG_EINVAL;
    }
    fs_sink *s = fs_new(done, ctx);
    if (s == NULL) {
        snprintf(why, whylen, "stdout sink: out of memory");
        return VG_ENOMEM;
    }
    s->f = conf->file != NULL ? conf->file : stdout;
    struct stat st;
    if (conf->file == NULL && fstat(STDOUT_FILENO, &st) == 0 &&
        (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) {
        int fl = fcntl(STDOUT_FILENO, F_GETFL);
        if (fl >= 0 && fcntl(STDOUT_FILENO, F_SETFL, fl | O_NONBLOCK) == 0) {
            fflush(stdout); /* nothing of stdio's left behind the raw writes */
            s->nbfd = STDOUT_FILENO;
        }
    }
    *self = s;
    return VG_OK;
}

/* Writes what is left of the held line; true when all of it is out. *e: an
 * error other than a full pipe (0 if none). */
static bool
pend_out(fs_sink *s, int *e)
{
    *e = 0;
    while (s->pend_off < s->pend.len) {
        ssize_t w = write(s->nbfd, s->pend.data + s->pend_off, s->pend.len - s->pend_off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                *e = errno;
            return false;
        }
        s->pend_off += (size_t)w;
    }
    return true;
}

/* stdout to a pipe or socket: never waits (above). */
static vg_err
stdout_deliver_nb(fs_sink *s, const vg_outrec *recs, size_t n)
{
    int e = 0;
    if (s->has_pend) {
        bool out = pend_out(s, &e);
        if (!out && e == 0)
            return VG_ELIMIT; /* still full: none taken */
        if (!out)
            return fs_failed(s,
                             "writing alerts to standard output failed: %s; they will be "
                             "offered again",
                             strerror(e));
        s->has_pend = false;
        /* the held record is out; the engine offers it again first */
        if (recs[0].seq == s->pend_seq) {
            fs_delivered(s, recs, 1);
            recs++;
            n--;
        }
    }
    s->lines.len = 0;
    for (size_t i = 0; i < n; i++)
        if (vg_buf_append(&s->lines, recs[i].json, recs[i].len) != VG_OK ||
            vg_buf_putc(&s->lines, '\n') != VG_OK)
            return VG_ENOMEM;
    size_t off = 0;
    while (off < s->lines.len) {
        ssize_t w = write(s->nbfd, s->lines.data + off, s->lines.len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            e = errno;
            break;
        }
        off += (size_t)w;
    }
    /* the records whose lines are out whole */
    size_t whole = 0, at = 0;
    while (whole < n && at + recs[whole].len + 1 <= off)
        at += recs[whole++].len + 1;
    if (whole > 0)
        fs_delivered(s, recs, whole);
    if (whole == n)
        return VG_OK;
    if (off > at) { /* a line cut part way: its rest is held */
        s->pend.len = 0;
        if (vg_buf_append(&s->pend, s->lines.data + off, at + recs[whole].len + 1 - off) != VG_OK)
            return VG_ENOMEM;
        s->pend_off = 0;
        s->pend_seq = recs[whole].seq;
        s->has_pend = true;
    }
    if (e == EAGAIN || e == EWOULDBLOCK)
        return VG_ELIMIT; /* the pipe is full: the rest waits in the outbox */
    return fs_failed(s, "writing alerts to standard output failed: %s; they will be offered again",
                     strerror(e));
}

static vg_err
stdout_deliver(void *self, const vg_outrec *recs, size_t n)
{
    fs_sink *s = self;
    if (n == 0)
        return VG_OK;
    if (s->nbfd >= 0)
        return stdout_deliver_nb(s, recs, n);
    int e = 0;
    errno = 0;
    for (size_t i = 0; i < n && e == 0; i++)
        if (fwrite(recs[i].json, 1, recs[i].len, s->f) != recs[i].len || putc('\n', s->f) == EOF)
            e = errno != 0 ? errno : EIO;
    if (e == 0 && fflush(s->f) != 0)
        e = errno != 0 ? errno : EIO;
    if (e == 0 && ferror(s->f))
        e = EIO;
    if (e != 0) {
        /* stdio drops what it could not write, so the next call starts afresh */
        clearerr(s->f);
        return fs_failed(s, "writing alerts to %s failed: %s; they will be offered again",
                         s->f == stdout ? "standard output" : "the stdout sink's file",
                         strerror(e));
    }
    fs_delivered(s, recs, n);
    return VG_OK;
}

static void
stdout_close(void *self)
{
    fs_sink *s = self;
    if (s == NULL)
        return;
    if (s->nbfd >= 0) { /* back as it was, for whoever shares it */
        int fl = fcntl(s->nbfd, F_GETFL);
        if (fl >= 0)
            fcntl(s->nbfd, F_SETFL, fl & ~O_NONBLOCK);
    } else {
        fflush(s->f); /* the stream is the caller's: flushed, not closed */
    }
    fs_free(s);
}

const vg_sink_type vg_sink_stdout = {
    .type = "stdout",
    .open = stdout_open,
    .deliver = stdout_deliver,
    .flush = fs_flush,
    .health = fs_health,
    .close = stdout_close,
};

/* ---- jsonl ------------------------------------------------------------- */

/* What to do about an open() that failed with errno e. */
static const char *
jsonl_open_hint(int e)
{
    switch (e) {
    case ENOENT:
    case ENOTDIR: return "create its folder first, or correct the path";
    case EACCES:
    case EPERM:
    case EROFS: return "let vigil's user write there, or choose another path";
    case EISDIR:
        return "that is a folder: name a file in it, for example path: <folder>/alerts.jsonl";
    default: return "choose a path to a file vigil can write";
    }
}

static vg_err
jsonl_open(const vg_sink_conf *conf, vg_sink_done_fn *done, void *ctx, void **self, char *why,
           size_t whylen)
{
    if (conf->path == NULL || conf->path[0] == '\0') {
        snprintf(why, whylen, "a jsonl sink needs a path: write path: alerts.jsonl");
        return VG_EINVAL;
    }
    if (conf->url != NULL) {
        snprintf(why, whylen, "a jsonl sink takes no url: it appends to its path; remove url");
        return VG_EINVAL;
    }
    fs_sink *s = fs_new(done, ctx);
    if (s == NULL || (s->path = strdup(conf->path)) == NULL) {
        fs_free(s);
        snprintf(why, whylen, "jsonl sink: out of memory");
        return VG_ENOMEM;
    }
    s->fd = open(conf->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (s->fd < 0) {
        int e = errno;
        snprintf(why, whylen, "cannot open jsonl file '%s': %s; %s", conf->path, strerror(e),
                 jsonl_open_hint(e));
        fs_free(s);
        return e == EIO || e == ENOMEM || e == EMFILE || e == ENFILE ? VG_EIO : VG_EINVAL;
    }
    struct stat st;
    if (conf->fsync && (fstat(s->fd, &st) != 0 || !S_ISREG(st.st_mode))) {
        /* fdatasync would fail on every call, and no alert would ever be delivered */
        snprintf(why, whylen,
                 "jsonl file '%s' is not a regular file, so fsync: true cannot work; remove "
                 "fsync or name a regular file",
                 conf->path);
        fs_free(s);
        return VG_EINVAL;
    }
    s->fsync = conf->fsync;
    *self = s;
    return VG_OK;
}

static vg_err
jsonl_deliver(void *self, const vg_outrec *recs, size_t n)
{
    fs_sink *s = self;
    if (n == 0)
        return VG_OK;
    s->lines.len = 0;
    for (size_t i = 0; i < n; i++)
        if (vg_buf_append(&s->lines, recs[i].json, recs[i].len) != VG_OK ||
            vg_buf_putc(&s->lines, '\n') != VG_OK)
            return VG_ENOMEM;

    /* rotated (logrotate moved or removed the file): a new file at the path */
    struct stat at_path, ours;
    bool moved = stat(s->path, &at_path) != 0
                     ? errno == ENOENT
                     : fstat(s->fd, &ours) == 0 &&
                           (at_path.st_ino != ours.st_ino || at_path.st_dev != ours.st_dev);
    if (moved) {
        int fd = open(s->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            return fs_failed(s,
                             "reopening %s after it was moved failed: %s; the alerts will be "
                             "offered again",
                             s->path, strerror(errno));
        close(s->fd);
        s->fd = fd;
    }

    /* O_APPEND writes at the end, so the size now is where this call's lines begin */
    struct stat st;
    if (fstat(s->fd, &st) != 0)
        return fs_failed(s, "cannot read the size of %s: %s; the alerts will be offered again",
                         s->path, strerror(errno));
    size_t off = 0;
    int e = 0;
    const char *what = "writing to";
    while (off < s->lines.len) {
        ssize_t w = write(s->fd, s->lines.data + off, s->lines.len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            e = w < 0 ? errno : EIO;
            break;
        }
        off += (size_t)w;
    }
    if (e == 0 && s->fsync && fdatasync(s->fd) != 0) {
        e = errno;
        what = "syncing";
    }
    if (e != 0) {
        char cut[96] = "";
        if (off > 0 && ftruncate(s->fd, st.st_size) != 0)
            snprintf(cut, sizeof cut, " (and cutting off the partial lines failed: %s)",
                     strerror(errno));
        return fs_failed(s, "%s %s failed: %s%s; the alerts will be offered again", what, s->path,
                         strerror(e), cut);
    }
    fs_delivered(s, recs, n);
    return VG_OK;
}

static void
jsonl_close(void *self)
{
    fs_free(self);
}

const vg_sink_type vg_sink_jsonl = {
    .type = "jsonl",
    .open = jsonl_open,
    .deliver = jsonl_deliver,
    .flush = fs_flush,
    .health = fs_health,
    .close = jsonl_close,
};
