/*
 * sink.c - the table of sink types (vg_sink.h).
 */
#include <stdio.h>
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

bool
vg_sink_wants(const vg_sink_conf *c, const vg_outrec *rec)
{
    if (rec->shadow && !c->shadow) /* SPEC §2: only to sinks that ask for them */
        return false;
    if (c->nrules == 0)
        return true;
    const char *tags = strstr(rec->json, "\"tags\":[");
    for (size_t i = 0; i < c->nrules; i++) {
        if (strcmp(c->rules[i], rec->rule) == 0)
            return true;
        if (tags != NULL) { /* a tag: "name" inside the tags array */
            char q[260];
            snprintf(q, sizeof q, "\"%s\"", c->rules[i]);
            const char *hit = strstr(tags, q), *end = strchr(tags, ']');
            if (hit != NULL && end != NULL && hit < end)
                return true;
        }
    }
    return false;
}

const vg_sink_type *
vg_sink_find(const char *type)
{
    for (size_t i = 0; table[i] != NULL; i++)
        if (strcmp(table[i]->type, type) == 0)
            return table[i];
    return NULL;
}
