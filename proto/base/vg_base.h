/*
 * vg_base.h - the basics every Vigil module shares: the error enum, an arena
 * allocator, a growable byte buffer and UTF-8 helpers.
 *
 * This is the bottom layer (STYLE.md "One direction"): it depends on libc only.
 * It lives under proto/ because SPEC fixes the top-level folders and proto/ is
 * the lowest module that uses it.
 */
#ifndef VG_BASE_H
#define VG_BASE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* ---- Errors ------------------------------------------------------------- */

/* One error enum for the project. Fallible functions return it; 0 is success.
 * An out-parameter comes last and is written only on success. */
typedef enum vg_err {
    VG_OK = 0,
    VG_ENOMEM,   /* an allocation failed */
    VG_EINVAL,   /* an argument or input is malformed */
    VG_ENOENT,   /* a file or name does not exist */
    VG_EIO,      /* reading or writing a file failed (see errno) */
    VG_ECOMPILE, /* rule source has errors; they went to the diagnostic sink */
    VG_ELIMIT,   /* a documented limit was reached */
} vg_err;

/* A static, human-readable text for err; never NULL. */
const char *vg_strerror(vg_err err);

/* ---- Arena -------------------------------------------------------------- */

/* A bump allocator: many small allocations, freed all at once. Memory from an
 * arena lives until vg_arena_free(); nothing is freed individually. */
typedef struct vg_arena vg_arena;

/* A new, empty arena, or NULL when out of memory. */
vg_arena *vg_arena_new(void);
/* Frees every block the arena handed out, then the arena. NULL is a no-op. */
void vg_arena_free(vg_arena *a);
/* size bytes aligned for any type, zero-filled; NULL when out of memory. */
void *vg_arena_alloc(vg_arena *a, size_t size);
/* A NUL-terminated copy of s[0..len); NULL when out of memory. */
char *vg_arena_strndup(vg_arena *a, const char *s, size_t len);
/* Bytes the arena holds from the system (for statistics). */
size_t vg_arena_size(const vg_arena *a);

/* ---- Byte buffer -------------------------------------------------------- */

/* A growable byte string. Zero-initialise ({0}) before use. data is always
 * NUL-terminated once anything was appended. The owner calls vg_buf_free(). */
typedef struct vg_buf {
    char *data;
    size_t len; /* bytes, not counting the terminating NUL */
    size_t cap; /* bytes allocated */
} vg_buf;

vg_err vg_buf_append(vg_buf *b, const void *p, size_t n);
vg_err vg_buf_puts(vg_buf *b, const char *s);
vg_err vg_buf_putc(vg_buf *b, char c);
vg_err vg_buf_printf(vg_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void vg_buf_free(vg_buf *b);

/* Reads a whole file into *out (NUL-terminated). On failure returns VG_ENOENT
 * (does not exist), VG_EIO (other errno, left in errno) or VG_ENOMEM, and
 * leaves *out untouched. A path of "-" reads standard input. */
vg_err vg_read_file(const char *path, vg_buf *out);
/* Makes the entries of folder dir durable (a new file's name, a new
 * folder): fsync of a file covers its data, not its name in the folder.
 * VG_EIO with errno set when it cannot. */
vg_err vg_sync_dir(const char *dir);
/* The same, but stops with VG_ELIMIT once the file holds more than max
 * bytes (so /dev/zero or a huge file cannot exhaust memory). */
vg_err vg_read_file_max(const char *path, size_t max, vg_buf *out);

/* ---- UTF-8 -------------------------------------------------------------- */

/* Decodes one UTF-8 sequence of s[0..len). Returns its length in bytes (1..4)
 * and stores the code point in *cp; returns 0 when the sequence is invalid
 * (overlong, surrogate, above U+10FFFF, truncated or a stray byte). */
size_t vg_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp);
/* Writes cp as UTF-8 to out (4 bytes room) and returns the length; 0 when cp
 * is not a Unicode scalar value. */
size_t vg_utf8_encode(uint32_t cp, char *out);

#define VG_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
