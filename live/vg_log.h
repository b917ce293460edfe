/*
 * vg_log.h - the live engine's event log: an append-only, checksummed
 * record of every accepted event, in processing order, made durable by a
 * group commit before any batch is acked (SPEC §5 "Durability").
 *
 * Positions count records from the first ever written: the state's
 * checkpoint names the position it reflects (vg_engine_set_logpos), and
 * recovery replays the records from there. The log is a folder of
 * segments named by the position of their first record; segments wholly
 * before a checkpoint are removed.
 *
 * Record: u32 length, u64 checksum of the payload, payload (an Event as the
 * delimited `pb` format writes it). A torn record at the end (a crash
 * mid-write, never acked) is cut off when the log is opened.
 */
#ifndef VG_LOG_H
#define VG_LOG_H

#include "vg_event.h"

typedef struct vg_log vg_log;

/* Opens (making it if needed) the log in dir. *end gets the position after
 * the last whole record. VG_EIO (why says what) or VG_ENOMEM. */
vg_err vg_log_open(const char *dir, vg_log **out, int64_t *end, char *why, size_t whylen);
void vg_log_close(vg_log *l);

/* Calls fn for every record from position `from` on, in order. */
vg_err vg_log_replay(vg_log *l, int64_t from,
                     vg_err (*fn)(void *ctx, int64_t pos, const uint8_t *rec, size_t len),
                     void *ctx);

/* Adds a record to the pending group (in memory); returns its position. */
vg_err vg_log_add(vg_log *l, const uint8_t *rec, size_t len, int64_t *pos);
/* Writes the pending group and makes it durable (one fdatasync). */
vg_err vg_log_commit(vg_log *l);
/* The position of the next record (pending ones included). */
/* Why the last vg_log_commit() failed ("No space left on device"), or NULL. */
const char *vg_log_error(const vg_log *l);
int64_t vg_log_next(const vg_log *l);
/* Removes the segments that hold only records before pos. */
void vg_log_trim(vg_log *l, int64_t pos);

#endif
