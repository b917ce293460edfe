/*
 * vg_config.h - the run config (SPEC §5): a YAML file, every key optional,
 * read with libcyaml. Unknown keys and values of the wrong type are errors
 * that name the line; relative paths are taken from the config file's
 * folder. vg_config_check() reports what cannot work (an unknown sink type).
 */
#ifndef VG_CONFIG_H
#define VG_CONFIG_H

#include <stdio.h>

#include "vg_event.h"
#include "vg_sink.h"

typedef struct vg_sink_config {
    char *type; /* stdout, jsonl, nng, webhook */
    char *path, *url, *secret_env, *timeout, *proxy;
    char **secret_files, **secrets, **retry_schedule, **rules;
    unsigned secret_files_count, secrets_count, retry_schedule_count, rules_count;
    int allow_private, shadow, fsync; /* 0 or 1 */
} vg_sink_config;

typedef struct vg_config {
    char *rules;       /* a file or folder */
    char *state;       /* the state folder */
    uint64_t max_size; /* bytes the LMDB map may grow to */
    char *ingest, *stream, *http;
    int idle_advance; /* 0 or 1 */
    unsigned review_at, block_at;
    char *tls_cert, *tls_key, *tls_ca;
    vg_sink_config *sinks;
    unsigned nsinks;
    uint64_t max_message_bytes;
    int64_t dedupe_horizon_ms;
    void *raw; /* what libcyaml loaded */
} vg_config;

/* The built-in defaults (SPEC §5). */
void vg_config_defaults(vg_config *c);
/* Loads path over the defaults. Errors go to err as "PATH: ..." lines (with
 * the line and column libcyaml reports). Returns VG_ENOENT (cannot read it),
 * VG_EINVAL (not a valid config), VG_ENOMEM. */
vg_err vg_config_load(const char *path, vg_config *c, FILE *err);
/* Settings this version cannot act on: says which on err; VG_EINVAL. */
vg_err vg_config_check(const vg_config *c, FILE *err, const char *path);
/* The sinks of c as the engine opens them (secrets read from their files
 * or the environment, durations in ms, paths resolved). Errors go to err
 * ("PATH: error: sinks[i] (type): what"); VG_EINVAL. An empty list: *n 0. */
vg_err vg_config_sinks(const vg_config *c, const char *path, vg_sink_conf **out, size_t *n,
                       FILE *err);
void vg_config_sinks_free(vg_sink_conf *s, size_t n);
void vg_config_free(vg_config *c);

#endif
