/*
 * sink.c - the table of sink types (vg_sink.h).
 */
#include <string.h>

#include "vg_sink.h"

extern const vg_sink_type vg_sink_webhook;

static const vg_sink_type *const table[] = {
    &vg_sink_webhook, NULL /* the types, in the order vg_sink_types names them */
};

const char *const vg_sink_types[] = {"webhook", NULL};

const vg_sink_type *
vg_sink_find(const char *type)
{
    for (size_t i = 0; table[i] != NULL; i++)
        if (strcmp(table[i]->type, type) == 0)
            return table[i];
    return NULL;
}
