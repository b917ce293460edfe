/*
 * vg_tls.h - tls+tcp:// endpoints with nng's TLS (mbedtls underneath).
 *
 * The engine's side: a certificate and key of its own, and with a CA, mutual
 * TLS: a client must present a certificate that CA signed. The client's
 * side (vigil send, vigil score): the CA that signed the engine's
 * certificate, and with a certificate and key, its own for mutual TLS.
 * Other URLs are listened on and dialed as they are.
 */
#ifndef VG_TLS_H
#define VG_TLS_H

#include <nng/nng.h>
#include <stdbool.h>
#include <stddef.h>

#include "vg_base.h"

typedef struct vg_tls_files {
    const char *cert, *key, *ca; /* PEM files; NULL: none */
    const char *server_name;     /* the client's check of the engine's name; NULL: the URL's host */
} vg_tls_files;

bool vg_tls_url(const char *url); /* tls+tcp:// */

/* Listens on url; a tls+tcp:// url needs tls->cert and tls->key. VG_EINVAL
 * or VG_EIO with *why (what, and what to do). */
vg_err vg_tls_listen(nng_socket s, const char *url, const vg_tls_files *tls, char *why,
                     size_t whylen);
/* Checks what vg_tls_listen() would need, without listening: url is a
 * tcp://, ipc:// or tls+tcp:// address nng can parse, with a port or a path;
 * for tls+tcp://, the files load. VG_EINVAL with *why. */
vg_err vg_tls_check_listen(const char *url, const vg_tls_files *tls, char *why, size_t whylen);
/* Dials url without blocking (nng keeps trying); a tls+tcp:// url needs
 * tls->ca. */
vg_err vg_tls_dial(nng_socket s, const char *url, const vg_tls_files *tls, char *why,
                   size_t whylen);
/* The same, connected before it returns: an engine that is not there is an
 * error at once (NNG_ECONNREFUSED and the like, in *why), for a person at a
 * terminal (vigil score). */
vg_err vg_tls_dial_now(nng_socket s, const char *url, const vg_tls_files *tls, char *why,
                       size_t whylen);

#endif
