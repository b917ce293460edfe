/*
 * sink.c - the table of sink types (vg_sink.h).
 */
#include <string.h>

#include "vg_sink.h"

extern const vg_sink_type vg_sink_stdout; /* file.c */
extern const vg_sink_type vg_sink_jsonl;  /* file.c */
extern const vg_sink_type vg_sink_nng;    /* pub.c */
extern const vg_sink_type vg_sink_webhook;

/* the types, in the order vg_sink_types names them */
static const vg_sink_type *const table[] = {&vg_sink_stdout, &vg_sink_jsonl, &vg_sink_nng,
                                            &vg_sink_webhook, NULL};

const char *const vg_sink_types[] = {"stdout", "jsonl", "nng", "webhook", NULL};

const vg_sink_type *
vg_sink_find(const char *type)
{
    for (size_t i = 0; table[i] != NULL; i++)
        if (strcmp(table[i]->type, type) == 0)
            return table[i];
    return NULL;
}
