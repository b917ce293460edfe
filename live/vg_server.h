/*
 * vg_server.h - the live engine (SPEC §5): events in over nng request/reply,
 * acked only once durable, alerts out, state checkpointed with its log
 * position, recovery on start.
 *
 * One engine thread owns the rule state; nng's callbacks only move requests
 * to it. Requests that arrive together form a group: each is processed in
 * turn, then the group's accepted events go to the event log with one
 * fdatasync, then every request of the group gets its reply (group commit).
 */
#ifndef VG_SERVER_H
#define VG_SERVER_H

#include <stdarg.h>
#include <stdio.h>

#include "vg_engine.h"
#include "vg_sink.h"
#include "vg_tls.h"

/* The engine's log on stderr: one logfmt line per event,
 *   time=2026-12-08T05:58:01.123Z level=info msg="ready: ..."
 * (the message quoted, its quotes, backslashes and line breaks escaped). */
typedef enum vg_level { VG_INFO, VG_WARN, VG_ERROR } vg_level;
void vg_server_log(FILE *f, vg_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void vg_server_vlog(FILE *f, vg_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

typedef struct vg_server_opts {
    const char *state_dir;        /* LMDB state and the event log (log/) */
    const char *ingest_url;       /* the REP endpoint */
    const char *stream_url;       /* the PULL endpoint (fire-and-forget); NULL or "": none */
    bool idle_advance;            /* the event clock follows the wall clock on a quiet stream */
    vg_tls_files tls;             /* for tls+tcp:// endpoints */
    const char *http;             /* /metrics /healthz /readyz on host:port; NULL or "": none */
    size_t max_message_bytes;     /* one request at most; 0 means 16 MiB */
    double checkpoint_s;          /* seconds between checkpoints; 0 means 30 */
    size_t cache_keys;            /* keys held in memory (vg_engine_opts); 0: the default */
    int64_t dedupe_horizon_ms;    /* 0: the engine's default (7 days) */
    size_t max_state_bytes;       /* the LMDB map's limit; 0: 64 GiB */
    unsigned review_at, block_at; /* decision thresholds (vg_config_defaults: 50 and 80) */
    FILE *alerts;                 /* the stdout sink's file (default stdout) */
    /* where alerts go, from the outbox; none: one stdout sink */
    const vg_sink_conf *sinks;
    size_t nsinks;
    FILE *log; /* where the engine says what it does (stderr) */
    /* SIGHUP: compiles the rules again; NULL when they do not compile (the
     * diagnostics are the callback's to print). NULL: no reload. */
    vg_ruleset *(*reload)(void *ctx);
    void *reload_ctx;
} vg_server_opts;

/* Runs the engine over rs until SIGTERM or SIGINT (then it drains, checkpoints
 * and returns 0). Returns 1 when it cannot start or cannot go on (the log
 * says why). Blocks SIGTERM, SIGINT and SIGHUP in the calling thread. */
int vg_server_run(vg_ruleset *rs, const vg_server_opts *opts);

#endif
