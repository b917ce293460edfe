/*
 * vg_admin.h - the engine's admin HTTP endpoint (SPEC §5, §7): /metrics in
 * the Prometheus text format, /healthz and /readyz. Served by nng's HTTP
 * server on its own threads; the callbacks must be thread-safe.
 */
#ifndef VG_ADMIN_H
#define VG_ADMIN_H

#include <stdbool.h>

#include "vg_event.h"

typedef struct vg_admin vg_admin;

typedef struct vg_admin_fns {
    void (*metrics)(void *ctx, vg_buf *out); /* appends the metrics text */
    bool (*ready)(void *ctx);                /* may the engine take batches? */
    void *ctx;
} vg_admin_fns;

/* Serves on addr ("127.0.0.1:7471"). VG_EIO with why when it cannot. */
vg_err vg_admin_start(const char *addr, const vg_admin_fns *fns, vg_admin **out, char *why,
                      size_t whylen);
void vg_admin_stop(vg_admin *a); /* NULL is a no-op */

#endif
