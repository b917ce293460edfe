/*
 * base.c - errors, arena, byte buffer, file reading and UTF-8 (see vg_base.h).
 */
#include "vg_base.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *
vg_strerror(vg_err err)
{
    switch (err) {
    case VG_OK: return "success";
    case VG_ENOMEM: return "out of memory";
    case VG_EINVAL: return "invalid input";
    case VG_ENOENT: return "no such file or name";
    case VG_EIO: return "input/output error";
    case VG_ECOMPILE: return "rules have errors";
    case VG_ELIMIT: return "limit reached";
    }
    return "unknown error";
}

/* ---- Arena --------------------------------------------------------------
 * Blocks are chained newest first. A request larger than a quarter of the
 * block size gets a block of its own so big strings do not waste the tail of
 * the current block. */

#define ARENA_BLOCK 65536 /* bytes */
#define ARENA_ALIGN 16

typedef struct arena_block {
    struct arena_block *next;
    size_t used, cap; /* bytes of data[] */
    _Alignas(ARENA_ALIGN) unsigned char data[];
} arena_block;

struct vg_arena {
    arena_block *head;
    size_t total; /* bytes obtained from malloc */
};

vg_arena *
vg_arena_new(void)
{
    return calloc(1, sizeof(vg_arena));
}

void
vg_arena_free(vg_arena *a)
{
    if (a == NULL)
        return;
    arena_block *b = a->head;
    while (b != NULL) {
        arena_block *next = b->next;
        free(b);
        b = next;
    }
    free(a);
}

static arena_block *
arena_grow(vg_arena *a, size_t cap)
{
    arena_block *b = malloc(sizeof(arena_block) + cap);
    if (b == NULL)
        return NULL;
    b->used = 0;
    b->cap = cap;
    a->total += sizeof(arena_block) + cap;
    return b;
}

void *
vg_arena_alloc(vg_arena *a, size_t size)
{
    size = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (size == 0)
        size = ARENA_ALIGN;
    arena_block *b = a->head;
    if (b == NULL || b->cap - b->used < size) {
        if (size > ARENA_BLOCK / 4) {
            /* A private block, linked behind the current one so the current
             * block's free tail stays usable. */
            arena_block *big = arena_grow(a, size);
            if (big == NULL)
                return NULL;
            big->used = size;
            if (b == NULL) {
                big->next = NULL;
                a->head = big;
            } else {
                big->next = b->next;
                b->next = big;
            }
            memset(big->data, 0, size);
            return big->data;
        }
        b = arena_grow(a, ARENA_BLOCK);
        if (b == NULL)
            return NULL;
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += size;
    memset(p, 0, size);
    return p;
}

char *
vg_arena_strndup(vg_arena *a, const char *s, size_t len)
{
    char *p = vg_arena_alloc(a, len + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

size_t
vg_arena_size(const vg_arena *a)
{
    return a->total;
}

/* ---- Byte buffer -------------------------------------------------------- */

static vg_err
buf_reserve(vg_buf *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len - 1)
        return VG_ENOMEM;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return VG_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(b->data, cap);
    if (p == NULL)
        return VG_ENOMEM;
    b->data = p;
    b->cap = cap;
    return VG_OK;
}

vg_err
vg_buf_append(vg_buf *b, const void *p, size_t n)
{
    vg_err err = buf_reserve(b, n);
    if (err)
        return err;
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return VG_OK;
}

vg_err
vg_buf_puts(vg_buf *b, const char *s)
{
    return vg_buf_append(b, s, strlen(s));
}

vg_err
vg_buf_putc(vg_buf *b, char c)
{
    return vg_buf_append(b, &c, 1);
}

vg_err
vg_buf_printf(vg_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return VG_EINVAL;
    vg_err err = buf_reserve(b, (size_t)n);
    if (err)
        return err;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return VG_OK;
}

void
vg_buf_free(vg_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

vg_err
vg_read_file(const char *path, vg_buf *out)
{
    return vg_read_file_max(path, SIZE_MAX, out);
}

vg_err
vg_read_file_max(const char *path, size_t max, vg_buf *out)
{
    bool is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (f == NULL)
        return errno == ENOENT ? VG_ENOENT : VG_EIO;
    vg_buf b = {0};
    vg_err err = vg_buf_append(&b, "", 0); /* an empty file still gets its NUL */
    char chunk[65536];
    size_t n;
    while (err == VG_OK && (n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        err = vg_buf_append(&b, chunk, n);
        if (err == VG_OK && b.len > max)
            err = VG_ELIMIT;
    }
    if (err == VG_OK && ferror(f)) {
        err = VG_EIO;
        if (errno == 0)
            errno = EIO;
    }
    int saved = errno;
    if (!is_stdin)
        fclose(f);
    errno = saved;
    if (err) {
        vg_buf_free(&b);
        return err;
    }
    *out = b;
    return VG_OK;
}

/* ---- UTF-8 -------------------------------------------------------------- */

size_t
vg_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
    if (len == 0)
        return 0;
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t n;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2, v = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3, v = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return n;
}

size_t
vg_utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp >= 0xD800 && cp <= 0xDFFF)
        return 0;
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    if (cp <= 0x10FFFF) {
        out[0] = (char)(0xF0 | (cp >> 18));
        out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[3] = (char)(0x80 | (cp & 0x3F));
        return 4;
    }
    return 0;
}

vg_err
vg_sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return VG_EIO;
    int rc = fsync(fd), e = errno;
    close(fd);
    errno = e;
    return rc == 0 ? VG_OK : VG_EIO;
}
