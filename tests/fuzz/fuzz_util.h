/*
 * fuzz_util.h - what several fuzz targets share: putting an input where a
 * path-taking API can open it (a memfd, reached as /proc/self/fd/N, so no
 * file is left behind and nothing else on the machine is read), and reading
 * bytes so that AddressSanitizer sees a pointer that points where it must
 * not. Needs only proto/base (vg_base.h); events are fuzz_reader.h's.
 *
 * Header-only (static functions) so that each target stays one .c file plus
 * replay.c; a target that does not use a helper gets no unused-function
 * warning because the helpers are inline.
 */
#ifndef VG_FUZZ_UTIL_H
#define VG_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vg_base.h"

/* Where the bytes read by fuzz_touch go, so the reads are not optimized out. */
static volatile unsigned fuzz_sink_byte;

/* A finding reported and not yet fixed (tests/fuzz/pending/README.md) may be
 * worked around by a target, so that fuzzing (CI's included) goes on
 * finding new things meanwhile: the workaround applies only with
 * VG_FUZZ_LENIENT set in the environment. None is pending now: the six
 * findings of the first runs are fixed and their inputs are regressions
 * (tests/fuzz/regressions/). When one is fixed, move its input from
 * pending/ to regressions/. */
static inline bool
fuzz_strict(void)
{
    static int strict = -1;
    if (strict < 0)
        strict = getenv("VG_FUZZ_LENIENT") == NULL;
    return strict != 0;
}

/* Writes data[0..size) to a new memfd and its path (/proc/self/fd/N) to
 * path. Returns the fd (close it when done), or -1. */
static inline int
fuzz_memfd(const char *name, const uint8_t *data, size_t size, char *path, size_t pathlen)
{
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    for (size_t off = 0; off < size;) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)w;
    }
    snprintf(path, pathlen, "/proc/self/fd/%d", fd);
    return fd;
}

static inline void
fuzz_touch(const void *p, size_t len)
{
    const unsigned char *b = p;
    unsigned acc = 0;
    for (size_t i = 0; i < len; i++)
        acc += b[i];
    fuzz_sink_byte += acc;
}

#endif
