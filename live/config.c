/*
 * config.c - the run config (vg_config.h).
 */
#include <cyaml/cyaml.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vg_config.h"
#include "vg_engine.h"

/* What libcyaml loads: strings as written, then checked and converted. */
typedef struct raw_state {
    char *path, *max_size;
} raw_state;
typedef struct raw_decisions {
    unsigned *review_at, *block_at; /* NULL: absent (0 is a threshold) */
} raw_decisions;
typedef struct raw_tls {
    char *cert, *key, *ca;
} raw_tls;
typedef struct raw_config {
    char *rules;
    raw_state *state;
    char *ingest, *stream, *http;
    int idle_advance;
    raw_decisions *decisions;
    raw_tls *tls;
    vg_sink_config *sinks;
    unsigned sinks_count;
    char *max_message_bytes, *dedupe_horizon;
} raw_config;

/* Booleans are strict: true or false (libcyaml takes anything else as false). */
static const cyaml_strval_t bools[] = {{"false", 0}, {"true", 1}};

#define OPT (CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL)
#define STR(key, type, member) CYAML_FIELD_STRING_PTR(key, OPT, type, member, 0, CYAML_UNLIMITED)
#define BOOL(key, type, member)                                                                    \
    CYAML_FIELD_ENUM(key, CYAML_FLAG_OPTIONAL | CYAML_FLAG_STRICT, type, member, bools, 2)

static const cyaml_schema_value_t string_entry = {
    CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 0, CYAML_UNLIMITED)};

static const cyaml_schema_field_t state_fields[] = {
    STR("path", raw_state, path), STR("max_size", raw_state, max_size), CYAML_FIELD_END};
static const cyaml_schema_field_t decision_fields[] = {
    CYAML_FIELD_UINT_PTR("review_at", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL, raw_decisions,
                         review_at),
    CYAML_FIELD_UINT_PTR("block_at", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL, raw_decisions,
                         block_at),
    CYAML_FIELD_END};
static const cyaml_schema_field_t tls_fields[] = {
    STR("cert", raw_tls, cert), STR("key", raw_tls, key), STR("ca", raw_tls, ca), CYAML_FIELD_END};
static const cyaml_schema_field_t sink_fields[] = {
    CYAML_FIELD_STRING_PTR("type", CYAML_FLAG_POINTER, vg_sink_config, type, 0, CYAML_UNLIMITED),
    STR("path", vg_sink_config, path),
    STR("url", vg_sink_config, url),
    STR("secret_env", vg_sink_config, secret_env),
    STR("timeout", vg_sink_config, timeout),
    STR("proxy", vg_sink_config, proxy),
    BOOL("fsync", vg_sink_config, fsync),
    CYAML_FIELD_SEQUENCE("secret_files", OPT, vg_sink_config, secret_files, &string_entry, 0,
                         CYAML_UNLIMITED),
    CYAML_FIELD_SEQUENCE("secrets", OPT, vg_sink_config, secrets, &string_entry, 0,
                         CYAML_UNLIMITED),
    CYAML_FIELD_SEQUENCE("retry_schedule", OPT, vg_sink_config, retry_schedule, &string_entry, 0,
                         CYAML_UNLIMITED),
    BOOL("allow_private", vg_sink_config, allow_private),
    CYAML_FIELD_SEQUENCE("rules", OPT, vg_sink_config, rules, &string_entry, 0, CYAML_UNLIMITED),
    BOOL("shadow", vg_sink_config, shadow),
    CYAML_FIELD_END};
static const cyaml_schema_value_t sink_entry = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, vg_sink_config, sink_fields)};
static const cyaml_schema_field_t config_fields[] = {
    STR("rules", raw_config, rules),
    CYAML_FIELD_MAPPING_PTR("state", OPT, raw_config, state, state_fields),
    STR("ingest", raw_config, ingest),
    STR("stream", raw_config, stream),
    STR("http", raw_config, http),
    BOOL("idle_advance", raw_config, idle_advance),
    CYAML_FIELD_MAPPING_PTR("decisions", OPT, raw_config, decisions, decision_fields),
    CYAML_FIELD_MAPPING_PTR("tls", OPT, raw_config, tls, tls_fields),
    CYAML_FIELD_SEQUENCE("sinks", OPT, raw_config, sinks, &sink_entry, 0, CYAML_UNLIMITED),
    STR("max_message_bytes", raw_config, max_message_bytes),
    STR("dedupe_horizon", raw_config, dedupe_horizon),
    CYAML_FIELD_END};
static const cyaml_schema_value_t config_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, raw_config, config_fields)};

typedef struct logctx {
    FILE *err;
    const char *path;
    char pending[512]; /* an error waiting for its position */
} logctx;

/* Where key `key` stands in the file (libcyaml gives the position of the
 * mapping around an unknown key, not of the key): the first place it is
 * written as a key. */
static bool
find_key(const char *path, const char *key, unsigned *line, unsigned *col)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    char buf[4096];
    size_t n = strlen(key);
    bool found = false;
    for (unsigned ln = 1; !found && fgets(buf, sizeof buf, f) != NULL; ln++) {
        for (char *p = strstr(buf, key); p != NULL; p = strstr(p + 1, key)) {
            char before = p == buf ? ' ' : p[-1];
            const char *after = p + n;
            while (*after == ' ')
                after++;
            if ((before == ' ' || before == '{' || before == ',' || before == '-') &&
                *after == ':') {
                *line = ln;
                *col = (unsigned)(p - buf) + 1;
                found = true;
                break;
            }
        }
    }
    fclose(f);
    return found;
}

/* libcyaml says an error, then where in a backtrace ("  in mapping field
 * 'state' (line: 2, column: 8)", innermost first): printed as
 * PATH:LINE:COL: error: what, like a compiler. */
static void __attribute__((format(printf, 3, 0)))
cy_log(cyaml_log_t level, void *ctx, const char *fmt, va_list args)
{
    logctx *L = ctx;
    if (level < CYAML_LOG_ERROR || L->err == NULL)
        return;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, args);
    msg[strcspn(msg, "\n")] = '\0';
    const char *m = strncmp(msg, "Load: ", 6) == 0 ? msg + 6 : msg;
    if (strncmp(m, "Backtrace:", 10) == 0)
        return;
    unsigned line, col;
    const char *at = strstr(m, "(line: ");
    if (at != NULL && sscanf(at, "(line: %u, column: %u)", &line, &col) == 2) {
        char key[256];
        if (sscanf(L->pending, "unknown key '%255[^']'", key) == 1)
            find_key(L->path, key, &line, &col);
        if (L->pending[0]) {
            fprintf(L->err, "%s:%u:%u: error: %s\n", L->path, line, col, L->pending);
            L->pending[0] = '\0';
        }
        return;
    }
    if (L->pending[0])
        fprintf(L->err, "%s: error: %s\n", L->path, L->pending);
    /* libcyaml's words, in ours where they are cryptic */
    static const struct {
        const char *theirs, *pre, *post;
    } words[] = {
        {"Unexpected key: ", "unknown key '", "'"},
        {"Invalid ENUM value: ", "'", "' is not true or false"},
        {"Invalid uint64_t value: ", "", " is not a whole number"},
        {"Expecting STRING, got event: SEQUENCE_START", "expected a string, not a list", ""},
        {"Expecting STRING, got event: MAPPING_START", "expected a string, not a mapping", ""},
        {"Expecting MAPPING, got event: SCALAR", "expected a mapping (key: value, ...)", ""},
        {"Expecting SEQUENCE, got event: SCALAR", "expected a list ([a, b] or - items)", ""}};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        size_t n = strlen(words[i].theirs);
        if (strncmp(m, words[i].theirs, n) == 0) {
            snprintf(L->pending, sizeof L->pending, "%s%s%s", words[i].pre, m + n, words[i].post);
            return;
        }
    }
    snprintf(L->pending, sizeof L->pending, "%s", m);
}

void
vg_config_defaults(vg_config *c)
{
    memset(c, 0, sizeof *c);
    c->review_at = 50;
    c->block_at = 80;
    c->max_size = (uint64_t)64 << 30;
    c->max_message_bytes = (uint64_t)16 << 20;
    c->dedupe_horizon_ms = 7LL * 86400000;
}

/* "64GiB", "512MiB", "1000" (bytes) -> bytes. */
static bool
parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || v < 0)
        return false;
    static const struct {
        const char *unit;
        double mul;
    } units[] = {{"", 1},
                 {"B", 1},
                 {"KiB", 1024.0},
                 {"MiB", 1048576.0},
                 {"GiB", 1073741824.0},
                 {"TiB", 1099511627776.0}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(end, units[i].unit) == 0) {
            double b = v * units[i].mul;
            if (!(b < 1.8e19)) /* not a size a uint64 holds (inf and nan included) */
                return false;
            *out = (uint64_t)b;
            return true;
        }
    }
    return false;
}

/* "7d", "12h", "90m", "30s", "500ms" -> ms. */
static bool
parse_duration(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || errno || v <= 0)
        return false;
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(end, units[i].unit) == 0) {
            if (v > INT64_MAX / units[i].ms) /* past any sensible duration */
                return false;
            *out = v * units[i].ms;
            return true;
        }
    }
    return false;
}

/* A sink's name: its type, and where it goes, as a stable text that keys its
 * cursor and labels its metrics. A file's path is made absolute (the same
 * file is the same sink however the config was named on the command line);
 * a URL loses what may be secret: the user and password before '@', and the
 * query. */
static char *
sink_name(const char *type, const char *url, const char *path)
{
    vg_buf b = {0};
    bool ok = vg_buf_printf(&b, "%s", type) == VG_OK;
    if (path != NULL) {
        char *abs = NULL;
        if (path[0] == '/') {
            abs = strdup(path);
        } else {
            char cwd[4096];
            if (getcwd(cwd, sizeof cwd) != NULL) {
                size_t n = strlen(cwd) + strlen(path) + 2;
                if ((abs = malloc(n)) != NULL)
                    snprintf(abs, n, "%s/%s", cwd, path);
            }
        }
        /* the folder's real path (links, "..") when it exists */
        char *slash = abs ? strrchr(abs, '/') : NULL, real[4096];
        if (slash != NULL && slash != abs) {
            *slash = '\0';
            bool found = realpath(abs, real) != NULL;
            *slash = '/';
            if (found)
                ok &= vg_buf_printf(&b, ":%s%s", real, slash) == VG_OK;
            else
                ok &= vg_buf_printf(&b, ":%s", abs) == VG_OK;
        } else {
            ok &= vg_buf_printf(&b, ":%s", abs ? abs : path) == VG_OK;
        }
        free(abs);
    } else if (url != NULL) {
        const char *host = strstr(url, "://");
        host = host ? host + 3 : url;
        const char *end = host + strcspn(host, "/?#");
        const char *at = memchr(host, '@', (size_t)(end - host));
        ok &= vg_buf_printf(&b, ":%.*s%s", (int)(host - url), url, at ? "***@" : "") == VG_OK;
        const char *from = at ? at + 1 : host;
        size_t keep = strcspn(from, "?#");
        ok &=
            vg_buf_printf(&b, "%.*s%s", (int)keep, from, from[keep] == '?' ? "?***" : "") == VG_OK;
    }
    char *name = ok ? strdup(b.data) : NULL; /* NULL: out of memory */
    vg_buf_free(&b);
    return name;
}

/* A path from the config, relative to its folder. */
static char *
resolve(const char *cfgpath, const char *p)
{
    if (p == NULL)
        return NULL;
    const char *slash = strrchr(cfgpath, '/');
    if (p[0] == '/' || slash == NULL || strstr(p, "://") != NULL)
        return strdup(p);
    size_t d = (size_t)(slash - cfgpath) + 1;
    char *r = malloc(d + strlen(p) + 1);
    if (r != NULL) {
        memcpy(r, cfgpath, d);
        strcpy(r + d, p);
    }
    return r;
}

vg_err
vg_config_load(const char *path, vg_config *c, FILE *err)
{
    logctx L = {err, path, ""};
    cyaml_config_t cc = {
        .log_fn = cy_log, .log_ctx = &L, .mem_fn = cyaml_mem, .log_level = CYAML_LOG_ERROR};
    raw_config *r = NULL;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        if (err)
            fprintf(err, "%s: can't read it: %s\n", path, strerror(errno));
        return VG_ENOENT;
    }
    fclose(f);
    cyaml_err_t e = cyaml_load_file(path, &cc, &config_schema, (cyaml_data_t **)&r, NULL);
    if (L.pending[0] && err)
        fprintf(err, "%s: error: %s\n", path, L.pending);
    if (e == CYAML_ERR_OOM)
        return VG_ENOMEM;
    if (e != CYAML_OK) {
        if (err)
            fprintf(err,
                    "%s: not a valid run config (%s); the keys and their types are in "
                    "docs/operations.md\n",
                    path, cyaml_strerror(e));
        return VG_EINVAL;
    }
    if (r == NULL) /* an empty file: the defaults */
        return VG_OK;
    c->raw = r;
    bool bad = false;
    c->rules = resolve(path, r->rules);
    if (r->state) {
        c->state = resolve(path, r->state->path);
        if (r->state->max_size && !parse_size(r->state->max_size, &c->max_size)) {
            fprintf(err, "%s: error: state.max_size: '%s' is not a size (like 64GiB or 512MiB)\n",
                    path, r->state->max_size);
            bad = true;
        } else if (c->max_size < (uint64_t)1 << 20) {
            /* LMDB needs room for its own pages before any state */
            fprintf(err, "%s: error: state.max_size: '%s' is too small: at least 1MiB\n", path,
                    r->state->max_size);
            bad = true;
        }
    }
    c->ingest = r->ingest ? strdup(r->ingest) : NULL;
    c->stream = r->stream ? strdup(r->stream) : NULL;
    c->http = r->http ? strdup(r->http) : NULL;
    c->idle_advance = r->idle_advance;
    if (r->decisions) {
        c->review_at = r->decisions->review_at ? *r->decisions->review_at : c->review_at;
        c->block_at = r->decisions->block_at ? *r->decisions->block_at : c->block_at;
        if (c->review_at > 100 || c->block_at > 100 || c->review_at > c->block_at) {
            fprintf(err,
                    "%s: error: decisions: review_at and block_at are scores, 0 to 100, review_at "
                    "at most block_at\n",
                    path);
            bad = true;
        }
    }
    if (r->tls) {
        c->tls_cert = resolve(path, r->tls->cert);
        c->tls_key = resolve(path, r->tls->key);
        c->tls_ca = resolve(path, r->tls->ca);
    }
    c->sinks = r->sinks;
    c->nsinks = r->sinks_count;
    if (r->max_message_bytes &&
        (!parse_size(r->max_message_bytes, &c->max_message_bytes) || c->max_message_bytes < 1024)) {
        fprintf(err,
                "%s: error: max_message_bytes: '%s' is not a size of 1KiB or more (like 16MiB)\n",
                path, r->max_message_bytes);
        bad = true;
    }
    if (r->dedupe_horizon && !parse_duration(r->dedupe_horizon, &c->dedupe_horizon_ms)) {
        fprintf(err, "%s: error: dedupe_horizon: '%s' is not a duration (like 7d or 12h)\n", path,
                r->dedupe_horizon);
        bad = true;
    }
    return bad ? VG_EINVAL : VG_OK;
}

vg_err
vg_config_check(const vg_config *c, FILE *err, const char *path)
{
    bool bad = false;
    for (unsigned i = 0; i < c->nsinks; i++) {
        if (vg_sink_find(c->sinks[i].type) == NULL) {
            fprintf(err, "%s: error: sinks[%u]: no sink type '%s' (there are:", path, i,
                    c->sinks[i].type);
            for (size_t k = 0; vg_sink_types[k] != NULL; k++)
                fprintf(err, " %s", vg_sink_types[k]);
            fprintf(err, ")\n");
            bad = true;
        }
    }
    return bad ? VG_EINVAL : VG_OK;
}

void
vg_config_free(vg_config *c)
{
    cyaml_config_t cc = {.mem_fn = cyaml_mem, .log_level = CYAML_LOG_ERROR};
    if (c->raw)
        cyaml_free(&cc, &config_schema, c->raw, 0);
    free(c->rules);
    free(c->state);
    free(c->ingest);
    free(c->stream);
    free(c->http);
    free(c->tls_cert);
    free(c->tls_key);
    free(c->tls_ca);
    memset(c, 0, sizeof *c);
}

/* ---- Sinks ---------------------------------------------------------------- */

/* Appends the whitespace-separated words of text to *v. */
static bool
add_words(char ***v, size_t *n, const char *text)
{
    const char *p = text;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            p++;
        if (*p == '\0')
            return true;
        size_t len = strcspn(p, " \t\r\n");
        char **w = realloc(*v, (*n + 1) * sizeof *w);
        if (w == NULL)
            return false;
        *v = w;
        if ((w[*n] = strndup(p, len)) == NULL)
            return false;
        (*n)++;
        p += len;
    }
}

/* What a sink conf owns, freed by vg_config_sinks_free (name, path and the
 * arrays are ours; the rest points into the config). */
static void
sink_free(vg_sink_conf *s)
{
    free((char *)s->name);
    free((char *)s->path);
    for (size_t k = 0; k < s->nsecrets; k++) {
        char *x = (char *)s->secrets[k];
        memset(x, 0, strlen(x)); /* no secret left in freed memory */
        free(x);
    }
    free((void *)s->secrets);
    free((void *)s->retry_ms);
}

void
vg_config_sinks_free(vg_sink_conf *s, size_t n)
{
    for (size_t i = 0; s != NULL && i < n; i++)
        sink_free(&s[i]);
    free(s);
}

static bool
sink_conf(const vg_sink_config *in, unsigned i, const char *path, vg_sink_conf *o, FILE *err)
{
    char head[64];
    snprintf(head, sizeof head, "sinks[%u] (%s)", i, in->type);
    /* a setting the sink does not use is a mistake, not something to ignore */
    bool webhook = strcmp(in->type, "webhook") == 0;
    const char *unused = NULL;
    if (!webhook)
        unused = in->secrets_count          ? "secrets"
                 : in->secret_files_count   ? "secret_files"
                 : in->secret_env           ? "secret_env"
                 : in->retry_schedule_count ? "retry_schedule"
                 : in->timeout              ? "timeout"
                 : in->allow_private        ? "allow_private"
                 : in->proxy                ? "proxy"
                                            : NULL;
    if (unused == NULL && in->fsync && strcmp(in->type, "jsonl") != 0)
        unused = "fsync";
    if (unused != NULL) {
        fprintf(err, "%s: error: %s: %s is not a setting of a %s sink; remove it\n", path, head,
                unused, in->type);
        return false;
    }
    o->type = in->type;
    o->url = in->url;
    o->fsync = in->fsync;
    o->allow_private = in->allow_private;
    o->proxy = in->proxy; /* NULL: none, whatever the environment says */
    o->shadow = in->shadow;
    o->rules = (const char *const *)in->rules;
    o->nrules = in->rules_count;
    o->path = resolve(path, in->path);
    char *name = sink_name(in->type, in->url, in->url ? NULL : o->path);
    if (name == NULL)
        return false;
    o->name = name;
    char **sec = NULL;
    size_t nsec = 0;
    bool ok = true;
    for (unsigned k = 0; ok && k < in->secrets_count; k++)
        ok = add_words(&sec, &nsec, in->secrets[k]);
    for (unsigned k = 0; ok && k < in->secret_files_count; k++) {
        char *file = resolve(path, in->secret_files[k]);
        FILE *f = file ? fopen(file, "r") : NULL;
        if (f == NULL) {
            fprintf(err, "%s: error: %s: can't read the secret file '%s': %s\n", path, head,
                    file ? file : in->secret_files[k], strerror(errno));
            ok = false;
        } else {
            char buf[4096];
            size_t got = fread(buf, 1, sizeof buf - 1, f);
            buf[got] = '\0';
            ok = add_words(&sec, &nsec, buf);
            memset(buf, 0, sizeof buf);
            fclose(f);
        }
        free(file);
    }
    if (ok && in->secret_env != NULL) {
        const char *v = getenv(in->secret_env);
        if (v == NULL || *v == '\0') {
            fprintf(err, "%s: error: %s: secret_env: the environment variable %s is not set\n",
                    path, head, in->secret_env);
            ok = false;
        } else {
            ok = add_words(&sec, &nsec, v);
        }
    }
    o->secrets = (const char *const *)sec;
    o->nsecrets = nsec;
    if (ok && in->retry_schedule_count > 0) {
        int64_t *ms = calloc(in->retry_schedule_count, sizeof *ms);
        ok = ms != NULL;
        for (unsigned k = 0; ok && k < in->retry_schedule_count; k++) {
            if (!parse_duration(in->retry_schedule[k], &ms[k])) {
                fprintf(err,
                        "%s: error: %s: retry_schedule: '%s' is not a duration (like 5s, 5m, "
                        "2h)\n",
                        path, head, in->retry_schedule[k]);
                ok = false;
            }
        }
        o->retry_ms = ms;
        o->nretry = in->retry_schedule_count;
    }
    if (ok && in->timeout != NULL) {
        int64_t ms;
        if (!parse_duration(in->timeout, &ms)) {
            fprintf(err, "%s: error: %s: timeout: '%s' is not a duration (like 10s)\n", path, head,
                    in->timeout);
            ok = false;
        } else {
            o->timeout_s = (double)ms / 1000.0;
        }
    }
    return ok;
}

vg_err
vg_config_sinks(const vg_config *c, const char *path, vg_sink_conf **out, size_t *n, FILE *err)
{
    *out = NULL;
    *n = 0;
    if (c->nsinks == 0)
        return VG_OK;
    vg_sink_conf *v = calloc(c->nsinks, sizeof *v);
    if (v == NULL)
        return VG_ENOMEM;
    bool ok = true;
    for (unsigned i = 0; i < c->nsinks; i++)
        ok = sink_conf(&c->sinks[i], i, path, &v[i], err) && ok;
    for (unsigned i = 0; ok && i < c->nsinks; i++)
        if (strlen(v[i].name) > VG_SINK_NAME_MAX) {
            fprintf(err,
                    "%s: error: sinks[%u]: its name (%.40s...) is over %d bytes: use a "
                    "shorter url or path\n",
                    path, i, v[i].name, VG_SINK_NAME_MAX);
            ok = false;
        }
    /* two sinks of one name would share a cursor */
    for (unsigned i = 0; ok && i < c->nsinks; i++)
        for (unsigned k = 0; k < i; k++)
            if (strcmp(v[i].name, v[k].name) == 0) {
                fprintf(err, "%s: error: sinks[%u] and sinks[%u] are the same sink (%s)\n", path, k,
                        i, v[i].name);
                ok = false;
            }
    if (!ok) {
        vg_config_sinks_free(v, c->nsinks);
        return VG_EINVAL;
    }
    *out = v;
    *n = c->nsinks;
    return VG_OK;
}
