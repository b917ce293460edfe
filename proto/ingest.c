/*
 * ingest.c - the ingest protocol's other messages (vigil.proto): building an
 * EventBatch for a producer, and the BatchReply both ways.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vg_event.h"
#include "vigil.pb-c.h"

vg_err
vg_batch_encode(const vg_schema *sc, const vg_event *const *evs, size_t n, bool decisions,
                vg_buf *out)
{
    /* an EventBatch is its events as field 1, each length-delimited: the tag
     * byte, then exactly what the delimited `pb` format holds */
    out->len = 0;
    vg_err err = VG_OK;
    for (size_t i = 0; i < n && err == VG_OK; i++) {
        err = vg_buf_putc(out, 0x0A);
        err = err ? err : vg_pb_encode(sc, evs[i], out);
    }
    if (err == VG_OK && decisions)
        err = vg_buf_append(out, "\x10\x01", 2);
    return err;
}

/* A copy of s[0..len) (up to a NUL) fit for a protobuf string, which must be
 * UTF-8: each byte that is not part of a valid sequence becomes U+FFFD, so
 * an event id or a message made of a producer's bad bytes cannot make the
 * reply unreadable to a strict client (Python, Go, Java reject it). */
static char *
utf8_dup(const char *s, size_t len)
{
    size_t n = strnlen(s, len);
    char *out = malloc(n * 3 + 1); /* a bad byte (1) becomes 3 */
    if (out == NULL)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = vg_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (k == 0) {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(out + o, s + i, k);
            o += k;
            i += k;
        }
    }
    out[o] = '\0';
    return out;
}

vg_err
vg_reply_encode(const vg_reply *r, vg_buf *out)
{
    Vigil__V1__BatchReply m = VIGIL__V1__BATCH_REPLY__INIT;
    m.accepted = r->accepted;
    m.duplicates = r->duplicates;
    m.error = (char *)(r->error ? r->error : "");
    m.permanent = r->permanent;
    Vigil__V1__Rejection *rj = r->nrej ? calloc(r->nrej, sizeof *rj) : NULL;
    Vigil__V1__Rejection **rp = r->nrej ? calloc(r->nrej, sizeof *rp) : NULL;
    char **ids = r->nrej ? calloc(r->nrej, sizeof *ids) : NULL;
    vg_err err = r->nrej && (rj == NULL || rp == NULL || ids == NULL) ? VG_ENOMEM : VG_OK;
    for (size_t i = 0; i < r->nrej && err == VG_OK; i++) {
        vigil__v1__rejection__init(&rj[i]);
        rj[i].index = r->rej[i].index;
        ids[i] = utf8_dup(r->rej[i].event_id ? r->rej[i].event_id : "", r->rej[i].idlen);
        if (ids[i] == NULL)
            err = VG_ENOMEM;
        rj[i].event_id = ids[i];
        rj[i].reason = (char *)r->rej[i].reason;
        rj[i].code = (char *)r->rej[i].code;
        rp[i] = &rj[i];
    }
    m.n_rejections = r->nrej;
    m.rejections = rp;
    /* decisions: one Decision and its RuleHits per event */
    size_t nhits = 0;
    for (size_t i = 0; i < r->ndec; i++)
        nhits += r->dec[i].nhits;
    Vigil__V1__Decision *dm = r->ndec ? calloc(r->ndec, sizeof *dm) : NULL;
    Vigil__V1__Decision **dp = r->ndec ? calloc(r->ndec, sizeof *dp) : NULL;
    Vigil__V1__RuleHit *hm = nhits ? calloc(nhits, sizeof *hm) : NULL;
    Vigil__V1__RuleHit **hp = nhits ? calloc(nhits, sizeof *hp) : NULL;
    char **strs = r->ndec ? calloc(r->ndec + nhits, sizeof *strs) : NULL;
    if ((r->ndec && (dm == NULL || dp == NULL || strs == NULL)) ||
        (nhits && (hm == NULL || hp == NULL)))
        err = VG_ENOMEM;
    size_t h = 0, ns = 0;
    for (size_t i = 0; i < r->ndec && err == VG_OK; i++) {
        const vg_decision *d = &r->dec[i];
        vigil__v1__decision__init(&dm[i]);
        strs[ns] = utf8_dup(d->event_id ? d->event_id : "", d->idlen);
        if (strs[ns] == NULL) {
            err = VG_ENOMEM;
            break;
        }
        dm[i].event_id = strs[ns++];
        dm[i].action = (Vigil__V1__Action)(d->action + 1);
        dm[i].score = (uint32_t)d->score;
        dm[i].duplicate = d->duplicate;
        dm[i].n_rules = d->nhits;
        dm[i].rules = hp ? hp + h : NULL;
        for (size_t k = 0; k < d->nhits && err == VG_OK; k++, h++) {
            const vg_rule_hit *x = &d->hits[k];
            vigil__v1__rule_hit__init(&hm[h]);
            hm[h].rule = (char *)x->rule;
            hm[h].score = (uint32_t)x->score;
            hm[h].action = (Vigil__V1__Action)(x->action + 1);
            strs[ns] = utf8_dup(x->message ? x->message : "", x->message_len);
            if (strs[ns] == NULL)
                err = VG_ENOMEM;
            hm[h].message = strs[ns++];
            hm[h].shadow = x->shadow;
            hp[h] = &hm[h];
        }
        dp[i] = &dm[i];
    }
    m.n_decisions = r->ndec;
    m.decisions = dp;
    if (err == VG_OK) {
        size_t len = vigil__v1__batch_reply__get_packed_size(&m);
        out->len = 0;
        err = vg_buf_append(out, NULL, 0);
        if (err == VG_OK && out->cap < len + 1) {
            char *p = realloc(out->data, len + 1);
            if (p == NULL)
                err = VG_ENOMEM;
            else
                out->data = p, out->cap = len + 1;
        }
        if (err == VG_OK)
            out->len = vigil__v1__batch_reply__pack(&m, (uint8_t *)out->data);
    }
    for (size_t i = 0; strs != NULL && i < ns; i++)
        free(strs[i]);
    free(strs);
    free(dm);
    free(dp);
    free(hm);
    free(hp);
    for (size_t i = 0; ids != NULL && i < r->nrej; i++)
        free(ids[i]);
    free(ids);
    free(rp);
    free(rj);
    return err;
}

vg_err
vg_reply_decode(const uint8_t *buf, size_t len, vg_reply *out)
{
    memset(out, 0, sizeof *out);
    Vigil__V1__BatchReply *m = vigil__v1__batch_reply__unpack(NULL, len, buf);
    if (m == NULL)
        return VG_EINVAL;
    out->accepted = m->accepted;
    out->duplicates = m->duplicates;
    out->nrej = m->n_rejections;
    out->rej = m->n_rejections ? calloc(m->n_rejections, sizeof *out->rej) : NULL;
    vg_err err = m->n_rejections && out->rej == NULL ? VG_ENOMEM : VG_OK;
    for (size_t i = 0; i < out->nrej && err == VG_OK; i++) {
        const Vigil__V1__Rejection *r = m->rejections[i];
        out->rej[i].index = r->index;
        out->rej[i].event_id = strdup(r->event_id ? r->event_id : "");
        out->rej[i].idlen = (uint32_t)strlen(r->event_id ? r->event_id : "");
        out->rej[i].reason = strdup(r->reason ? r->reason : "");
        out->rej[i].code = strdup(r->code ? r->code : "");
        if (!out->rej[i].event_id || !out->rej[i].reason || !out->rej[i].code)
            err = VG_ENOMEM;
    }
    out->permanent = m->permanent;
    if (err == VG_OK && m->error && *m->error && (out->error = strdup(m->error)) == NULL)
        err = VG_ENOMEM;
    out->ndec = m->n_decisions;
    out->dec = m->n_decisions ? calloc(m->n_decisions, sizeof *out->dec) : NULL;
    if (m->n_decisions && out->dec == NULL)
        err = VG_ENOMEM;
    for (size_t i = 0; i < out->ndec && err == VG_OK; i++) {
        const Vigil__V1__Decision *d = m->decisions[i];
        vg_decision *o = &out->dec[i];
        o->event_id = strdup(d->event_id ? d->event_id : "");
        o->idlen = (uint32_t)strlen(d->event_id ? d->event_id : "");
        o->action = d->action > 0 ? (int)d->action - 1 : 0;
        o->score = (int)d->score;
        o->duplicate = d->duplicate;
        o->nhits = d->n_rules;
        o->hits = d->n_rules ? calloc(d->n_rules, sizeof *o->hits) : NULL;
        if (o->event_id == NULL || (d->n_rules && o->hits == NULL)) {
            err = VG_ENOMEM;
            break;
        }
        for (size_t k = 0; k < o->nhits; k++) {
            const Vigil__V1__RuleHit *x = d->rules[k];
            o->hits[k].rule = strdup(x->rule ? x->rule : "");
            o->hits[k].score = (int)x->score;
            o->hits[k].action = x->action > 0 ? (int)x->action - 1 : 0;
            o->hits[k].message = strdup(x->message ? x->message : "");
            o->hits[k].message_len = (uint32_t)strlen(x->message ? x->message : "");
            o->hits[k].shadow = x->shadow;
            if (o->hits[k].rule == NULL || o->hits[k].message == NULL)
                err = VG_ENOMEM;
        }
    }
    vigil__v1__batch_reply__free_unpacked(m, NULL);
    if (err)
        vg_reply_free(out);
    return err;
}

void
vg_reply_free(vg_reply *r)
{
    for (size_t i = 0; r->rej != NULL && i < r->nrej; i++) {
        free((char *)r->rej[i].event_id);
        free((char *)r->rej[i].reason);
        free((char *)r->rej[i].code);
    }
    free(r->rej);
    for (size_t i = 0; r->dec != NULL && i < r->ndec; i++) {
        for (size_t k = 0; r->dec[i].hits != NULL && k < r->dec[i].nhits; k++) {
            free((char *)r->dec[i].hits[k].rule);
            free((char *)r->dec[i].hits[k].message);
        }
        free(r->dec[i].hits);
        free((char *)r->dec[i].event_id);
    }
    free(r->dec);
    free((char *)r->error);
    memset(r, 0, sizeof *r);
}
