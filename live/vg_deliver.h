/*
 * vg_deliver.h - delivery of the outbox to the sinks (the live engine).
 *
 * Runs on the engine thread, between groups: it collects what the sinks
 * finished (their done callbacks, from any thread, only queue it), moves each
 * sink's cursor past its finished prefix, puts dead letters in the store, and
 * offers each sink the records after what it was offered last, filtered by
 * its rules and shadow settings. The cursors go to the engine, which saves
 * them with the state and deletes what every sink finished.
 */
#ifndef VG_DELIVER_H
#define VG_DELIVER_H

#include "vg_engine.h"
#include "vg_sink.h"

typedef struct vg_deliver vg_deliver;

/* Opens the n sinks of confs (each conf's strings must outlive d). wake(ctx)
 * is called, from any thread, when a sink finished something. */
vg_err vg_deliver_open(const vg_sink_conf *confs, size_t n, void (*wake)(void *), void *ctx,
                       vg_deliver **out, char *why, size_t whylen);
/* Takes the cursors from e (first call), or gives e the ones held (after e
 * was reopened over new rules). */
vg_err vg_deliver_attach(vg_deliver *d, vg_engine *e);
/* One round: completions in, cursors on, new records out. */
vg_err vg_deliver_step(vg_deliver *d, vg_engine *e);
/* Rounds until every sink finished what it was offered, or timeout_s. */
vg_err vg_deliver_drain(vg_deliver *d, vg_engine *e, double timeout_s);
/* Prometheus text: outbox depth, age, deliveries and failures per sink. */
vg_err vg_deliver_metrics(vg_deliver *d, vg_engine *e, vg_buf *out);
/* False when a sink is disabled (a webhook answered 410). */
bool vg_deliver_healthy(vg_deliver *d);
void vg_deliver_close(vg_deliver *d);

#endif
