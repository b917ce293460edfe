/*
 * tls.c - tls+tcp:// endpoints (vg_tls.h).
 */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "vg_tls.h"
/* after nng.h (through vg_tls.h): it needs nng's declarations */
#include <nng/supplemental/tls/tls.h>

bool
vg_tls_url(const char *url)
{
    return strncmp(url, "tls+tcp", 7) == 0;
}

/* Reads a PEM file whole (NUL-terminated), or NULL with *why. */
static char *
pem(const char *what, const char *path, char *why, size_t whylen)
{
    vg_buf b = {0};
    vg_err err = vg_read_file(path, &b);
    if (err) {
        snprintf(why, whylen, "can't read the TLS %s '%s': %s", what, path, vg_strerror(err));
        vg_buf_free(&b);
        return NULL;
    }
    return b.data;
}

/* A TLS configuration for mode from the files; NULL with *why. */
static nng_tls_config *
config(nng_tls_mode mode, const vg_tls_files *t, char *why, size_t whylen)
{
    nng_tls_config *cfg;
    int rv = nng_tls_config_alloc(&cfg, mode);
    if (rv != 0) {
        snprintf(why, whylen, "TLS: %s", nng_strerror(rv));
        return NULL;
    }
    bool server = mode == NNG_TLS_MODE_SERVER;
    if (t->cert != NULL && t->key != NULL) {
        char *c = pem("certificate", t->cert, why, whylen);
        char *k = c ? pem("key", t->key, why, whylen) : NULL;
        rv = c && k ? nng_tls_config_own_cert(cfg, c, k, NULL) : -1;
        if (k != NULL)
            memset(k, 0, strlen(k)); /* no key left in freed memory */
        free(c);
        free(k);
        if (rv > 0)
            snprintf(why, whylen,
                     "TLS: the certificate '%s' and key '%s' do not load (%s): they must be PEM, "
                     "and the key the certificate's",
                     t->cert, t->key, nng_strerror(rv));
        if (rv != 0) {
            nng_tls_config_free(cfg);
            return NULL;
        }
    } else if (server || t->cert != NULL || t->key != NULL) {
        snprintf(why, whylen, "TLS: %s",
                 server ? "tls+tcp:// needs tls.cert and tls.key"
                        : "a client certificate needs both cert and key");
        nng_tls_config_free(cfg);
        return NULL;
    }
    if (t->ca != NULL) {
        if ((rv = nng_tls_config_ca_file(cfg, t->ca)) != 0 ||
            (rv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED)) != 0) {
            snprintf(why, whylen, "TLS: the CA file '%s' does not load: %s (it must be PEM)", t->ca,
                     nng_strerror(rv));
            nng_tls_config_free(cfg);
            return NULL;
        }
    } else if (!server) {
        snprintf(why, whylen, "TLS: tls+tcp:// needs the CA that signed the engine's certificate");
        nng_tls_config_free(cfg);
        return NULL;
    } else {
        nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_NONE);
    }
    if (!server && t->server_name != NULL &&
        (rv = nng_tls_config_server_name(cfg, t->server_name)) != 0) {
        snprintf(why, whylen, "TLS: %s", nng_strerror(rv));
        nng_tls_config_free(cfg);
        return NULL;
    }
    return cfg;
}

vg_err
vg_tls_listen(nng_socket s, const char *url, const vg_tls_files *tls, char *why, size_t whylen)
{
    int rv;
    if (!vg_tls_url(url)) {
        if ((rv = nng_listen(s, url, NULL, 0)) != 0) {
            snprintf(why, whylen, "can't listen on %s: %s", url, nng_strerror(rv));
            return VG_EIO;
        }
        return VG_OK;
    }
    nng_tls_config *cfg = config(NNG_TLS_MODE_SERVER, tls, why, whylen);
    if (cfg == NULL)
        return VG_EINVAL;
    nng_listener l;
    if ((rv = nng_listener_create(&l, s, url)) != 0 ||
        (rv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, cfg)) != 0 ||
        (rv = nng_listener_start(l, 0)) != 0) {
        snprintf(why, whylen, "can't listen on %s: %s", url, nng_strerror(rv));
        nng_tls_config_free(cfg);
        return VG_EIO;
    }
    nng_tls_config_free(cfg); /* the listener holds its own reference */
    return VG_OK;
}

static vg_err
dial(nng_socket s, const char *url, const vg_tls_files *tls, int flags, char *why, size_t whylen)
{
    int rv;
    if (!vg_tls_url(url)) {
        if ((rv = nng_dial(s, url, NULL, flags)) != 0) {
            snprintf(why, whylen, "can't reach the engine at %s: %s", url, nng_strerror(rv));
            return VG_EIO;
        }
        return VG_OK;
    }
    nng_tls_config *cfg = config(NNG_TLS_MODE_CLIENT, tls, why, whylen);
    if (cfg == NULL)
        return VG_EINVAL;
    nng_dialer d;
    if ((rv = nng_dialer_create(&d, s, url)) != 0 ||
        (rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg)) != 0 ||
        (rv = nng_dialer_start(d, flags)) != 0) {
        snprintf(why, whylen, "can't reach the engine at %s: %s", url, nng_strerror(rv));
        nng_tls_config_free(cfg);
        return VG_EIO;
    }
    nng_tls_config_free(cfg);
    return VG_OK;
}

vg_err
vg_tls_dial(nng_socket s, const char *url, const vg_tls_files *tls, char *why, size_t whylen)
{
    return dial(s, url, tls, NNG_FLAG_NONBLOCK, why, whylen);
}

vg_err
vg_tls_dial_now(nng_socket s, const char *url, const vg_tls_files *tls, char *why, size_t whylen)
{
    return dial(s, url, tls, 0, why, whylen);
}

vg_err
vg_tls_check_listen(const char *url, const vg_tls_files *tls, char *why, size_t whylen)
{
    static const char *const schemes[] = {"tcp",     "tcp4",     "tcp6",     "ipc",
                                          "tls+tcp", "tls+tcp4", "tls+tcp6", NULL};
    nng_url *u = NULL;
    int rv = nng_url_parse(&u, url);
    if (rv != 0) {
        snprintf(why, whylen,
                 "'%s' is not an address to listen on (%s): write tcp://HOST:PORT, "
                 "ipc:///PATH or tls+tcp://HOST:PORT",
                 url, nng_strerror(rv));
        return VG_EINVAL;
    }
    bool known = false;
    for (size_t i = 0; schemes[i] != NULL; i++)
        known |= strcmp(u->u_scheme, schemes[i]) == 0;
    bool ipc = strcmp(u->u_scheme, "ipc") == 0;
    bool port = u->u_port != NULL && u->u_port[0] != '\0' && strcmp(u->u_port, "0") != 0;
    if (!known || (ipc ? u->u_path[0] == '\0' : !port)) {
        snprintf(why, whylen,
                 !known ? "'%s': vigil listens on tcp://, ipc:// and tls+tcp:// addresses"
                 : ipc  ? "'%s' names no file: write ipc:///PATH"
                        : "'%s' has no port: write tcp://HOST:PORT",
                 url);
        nng_url_free(u);
        return VG_EINVAL;
    }
    if (ipc) { /* the socket file's folder must exist */
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", u->u_path);
        char *slash = strrchr(dir, '/');
        struct stat st;
        if (slash != NULL && slash != dir) {
            *slash = '\0';
            if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
                snprintf(why, whylen, "'%s': the folder '%s' does not exist: make it first", url,
                         dir);
                nng_url_free(u);
                return VG_EINVAL;
            }
        }
    } else {
        char *end = NULL;
        long p = strtol(u->u_port, &end, 10);
        struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV,
                                 .ai_socktype = SOCK_STREAM},
                        *ai = NULL;
        const char *host =
            u->u_hostname[0] != '\0' && strcmp(u->u_hostname, "*") != 0 ? u->u_hostname : NULL;
        int gai = 0;
        if (*end != '\0' || p < 1 || p > 65535) {
            snprintf(why, whylen, "'%s': the port must be a number from 1 to 65535", url);
            nng_url_free(u);
            return VG_EINVAL;
        }
        if (host != NULL && (gai = getaddrinfo(host, u->u_port, &hints, &ai)) != 0) {
            snprintf(why, whylen, "'%s': the host '%s' does not resolve (%s)", url, host,
                     gai_strerror(gai));
            nng_url_free(u);
            return VG_EINVAL;
        }
        if (ai != NULL)
            freeaddrinfo(ai);
    }
    nng_url_free(u);
    if (vg_tls_url(url)) {
        nng_tls_config *cfg = config(NNG_TLS_MODE_SERVER, tls, why, whylen);
        if (cfg == NULL)
            return VG_EINVAL;
        nng_tls_config_free(cfg);
    }
    return VG_OK;
}
