/*
 * vg_schema_pb.h - building a schema from protobuf-c descriptors.
 *
 * For the codec and for tests; rule code uses vg_schema.h only.
 */
#ifndef VG_SCHEMA_PB_H
#define VG_SCHEMA_PB_H

#include <protobuf-c/protobuf-c.h>

#include "vg_event.h"
#include "vg_schema.h"

/* Builds the schema of two message types: txn is the Transaction-like
 * message, event the AccountEvent-like one. The descriptors must outlive the
 * schema. Returns VG_EINVAL, with a one-line reason in why[0..whylen), when
 * two fields map to the same rule name (say `amount` and `amount_minor`);
 * VG_ENOMEM when out of memory. */
vg_err vg_schema_new(const ProtobufCMessageDescriptor *txn, const ProtobufCMessageDescriptor *event,
                     char *why, size_t whylen, vg_schema **out);

/* Fills ev from m, a message of stream s's type (Transaction, AccountEvent).
 * Strings point into m, which must outlive ev; attrs (attr_cap entries) gets
 * the attrs map. Returns VG_ELIMIT when m has more than attr_cap attrs. */
vg_err vg_event_from_pb(const vg_schema *sc, vg_stream_id s, const ProtobufCMessage *m,
                        vg_attr *attrs, size_t attr_cap, vg_event *ev);

#endif
