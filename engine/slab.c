/*
 * slab.c - the allocator of per-key state (key records, rule states, window
 * entries, prev() strings), cut from 2 MiB chunks that ask for transparent
 * huge pages.
 *
 * Why not malloc: the state of a million keys is millions of small blocks
 * reached at random, so what costs is the TLB and cache misses, and at the
 * end freeing them one by one (5-8% of a replay). Here blocks carry no header,
 * sit in huge pages, and slab_destroy() returns everything at once, so the
 * engine need not walk its keys to close. Blocks up to 1 KiB come in classes
 * of 16 bytes, then powers of two up to 1 MiB (window entries that grow);
 * bigger ones come from malloc, listed so slab_destroy() frees them too.
 * Freed blocks go to their class's free list (the first word links them).
 * The caller passes each block's size back when it frees or grows it.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "engineInt.h"

#define SLAB_CHUNK ((size_t)2 << 20)
#define SLAB_SMALL 1024            /* classes of 16 bytes up to here */
#define SLAB_MAX ((size_t)1 << 20) /* then powers of two up to here */
#define SLAB_CLASSES (64 + 10)

/* Under AddressSanitizer every block is its own malloc, so overflows of
 * window entries or states are caught (a slab would hide them). */
#if defined(__SANITIZE_ADDRESS__)
#define SLAB_EACH_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLAB_EACH_MALLOC 1
#endif
#endif
#ifndef SLAB_EACH_MALLOC
#define SLAB_EACH_MALLOC 0
#endif

typedef struct chunk {
    struct chunk *next;
} chunk;

/* A block over SLAB_MAX: from malloc, after this header (padded to 32
 * bytes, so the block stays 16-byte aligned), on a list. */
typedef struct big {
    struct big *prev, *next;
} big;
#define BIG_HDR 32

struct slab {
    void *free[SLAB_CLASSES + 1]; /* by class: a list of free blocks */
    chunk *chunks;                /* every chunk, newest first */
    big *bigs;                    /* every big block */
    char *p, *end;                /* what is left of the newest chunk */
};

slab *
slab_new(void)
{
    return calloc(1, sizeof(slab));
}

void
slab_destroy(slab *s)
{
    if (s == NULL)
        return;
    for (chunk *c = s->chunks, *next; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    for (big *b = s->bigs, *next; b != NULL; b = next) {
        next = b->next;
        free(b);
    }
    free(s);
}

/* The class of an n-byte block (n <= SLAB_MAX), and its size. */
static size_t
klass(size_t n)
{
    if (n <= SLAB_SMALL)
        return n ? (n + 15) / 16 : 1;
    size_t k = 65, size = 2048;
    while (size < n)
        size *= 2, k++;
    return k;
}

static size_t
class_bytes(size_t k)
{
    return k <= 64 ? k * 16 : (size_t)1 << (k - 64 + 10);
}

void *
slab_alloc(slab *s, size_t n)
{
    if (n > SLAB_MAX || SLAB_EACH_MALLOC) {
        big *b = malloc(BIG_HDR + n);
        if (b == NULL)
            return NULL;
        b->prev = NULL;
        b->next = s->bigs;
        if (s->bigs)
            s->bigs->prev = b;
        s->bigs = b;
        return (char *)b + BIG_HDR;
    }
    size_t k = klass(n);
    void *b = s->free[k];
    if (b != NULL) {
        memcpy(&s->free[k], b, sizeof(void *));
        return b;
    }
    size_t bytes = class_bytes(k);
    if ((size_t)(s->end - s->p) < bytes) {
        void *m = NULL;
        if (posix_memalign(&m, SLAB_CHUNK, SLAB_CHUNK) != 0)
            return NULL;
#ifdef MADV_HUGEPAGE
        (void)madvise(m, SLAB_CHUNK, MADV_HUGEPAGE); /* a hint */
#endif
        chunk *c = m;
        c->next = s->chunks;
        s->chunks = c;
        s->p = (char *)m + 16; /* blocks stay 16-byte aligned */
        s->end = (char *)m + SLAB_CHUNK;
    }
    b = s->p;
    s->p += bytes;
    return b;
}

void
slab_free(slab *s, void *p, size_t n)
{
    if (p == NULL)
        return;
    if (n > SLAB_MAX || SLAB_EACH_MALLOC) {
        big *b = (big *)((char *)p - BIG_HDR);
        if (b->prev)
            b->prev->next = b->next;
        else
            s->bigs = b->next;
        if (b->next)
            b->next->prev = b->prev;
        free(b);
        return;
    }
    size_t k = klass(n);
    memcpy(p, &s->free[k], sizeof(void *));
    s->free[k] = p;
}

void *
slab_realloc(slab *s, void *p, size_t old, size_t n)
{
    if (p == NULL)
        return slab_alloc(s, n);
    if (!SLAB_EACH_MALLOC && old <= SLAB_MAX && n <= SLAB_MAX && klass(old) == klass(n))
        return p;
    void *q = slab_alloc(s, n);
    if (q == NULL)
        return NULL;
    memcpy(q, p, old < n ? old : n);
    slab_free(s, p, old);
    return q;
}
