/*
 * admin.c - /metrics, /healthz, /readyz over nng's HTTP server (vg_admin.h).
 */
#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vg_admin.h"

struct vg_admin {
    nng_http_server *srv;
    nng_url *url;
    vg_admin_fns fns;
};

static void
respond(nng_aio *aio, uint16_t status, const char *type, const char *body, size_t len)
{
    nng_http_res *res;
    if (nng_http_res_alloc(&res) != 0) {
        nng_aio_finish(aio, NNG_ENOMEM);
        return;
    }
    if (nng_http_res_set_status(res, status) != 0 ||
        nng_http_res_set_header(res, "Content-Type", type) != 0 ||
        nng_http_res_copy_data(res, body, len) != 0) {
        nng_http_res_free(res);
        nng_aio_finish(aio, NNG_ENOMEM);
        return;
    }
    nng_aio_set_output(aio, 0, res);
    nng_aio_finish(aio, 0);
}

static vg_admin *
admin_of(nng_aio *aio)
{
    nng_http_handler *h = nng_aio_get_input(aio, 1);
    return nng_http_handler_get_data(h);
}

static void
on_metrics(nng_aio *aio)
{
    vg_admin *a = admin_of(aio);
    vg_buf b = {0};
    a->fns.metrics(a->fns.ctx, &b);
    respond(aio, 200, "text/plain; version=0.0.4; charset=utf-8", b.data ? b.data : "", b.len);
    vg_buf_free(&b);
}

static void
on_healthz(nng_aio *aio)
{
    respond(aio, 200, "text/plain", "ok\n", 3);
}

static void
on_readyz(nng_aio *aio)
{
    vg_admin *a = admin_of(aio);
    if (a->fns.ready(a->fns.ctx))
        respond(aio, 200, "text/plain", "ready\n", 6);
    else
        respond(aio, 503, "text/plain", "not ready\n", 10);
}

vg_err
vg_admin_start(const char *addr, const vg_admin_fns *fns, vg_admin **out, char *why, size_t whylen)
{
    vg_admin *a = calloc(1, sizeof *a);
    if (a == NULL)
        return VG_ENOMEM;
    a->fns = *fns;
    char url[512];
    snprintf(url, sizeof url, "http://%s", addr);
    static const struct {
        const char *path;
        void (*fn)(nng_aio *);
    } routes[] = {{"/metrics", on_metrics}, {"/healthz", on_healthz}, {"/readyz", on_readyz}};
    int rv = nng_url_parse(&a->url, url);
    if (rv == 0)
        rv = nng_http_server_hold(&a->srv, a->url);
    for (size_t i = 0; rv == 0 && i < sizeof routes / sizeof routes[0]; i++) {
        nng_http_handler *h;
        rv = nng_http_handler_alloc(&h, routes[i].path, routes[i].fn);
        if (rv == 0 && (rv = nng_http_handler_set_data(h, a, NULL)) == 0)
            rv = nng_http_server_add_handler(a->srv, h);
        else if (rv == 0)
            nng_http_handler_free(h);
    }
    if (rv == 0)
        rv = nng_http_server_start(a->srv);
    if (rv != 0) {
        snprintf(why, whylen, "can't serve /metrics on %s: %s", addr, nng_strerror(rv));
        vg_admin_stop(a);
        return VG_EIO;
    }
    *out = a;
    return VG_OK;
}

void
vg_admin_stop(vg_admin *a)
{
    if (a == NULL)
        return;
    if (a->srv != NULL) {
        nng_http_server_stop(a->srv);
        nng_http_server_release(a->srv);
    }
    if (a->url != NULL)
        nng_url_free(a->url);
    free(a);
}
