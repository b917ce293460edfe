/*
 * cmd_replay.c - `vigil replay`: run rules over historical events, in
 * process and deterministically, and say what they would have caught.
 *
 * Alerts go out as JSONL (SPEC §3) on stdout or --out; a summary goes to
 * stderr: events read, rejected (with the first reasons), alerts per rule,
 * events/s, and with --label precision and recall per rule. --expect
 * compares the alerts with a file of expected ones.
 */
#include <getopt.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "vg_config.h"
#include "vg_engine.h"
#include "vg_input.h"
#include "vg_rules.h"
#include "vg_sink.h"
#include "vg_vm.h"

static void
replay_usage(FILE *f)
{
    fprintf(f,
            "usage: vigil replay --rules RULES --input FILE [options]\n"
            "\n"
            "Run the rules over historical events, in process and in file order, and print\n"
            "the alerts they raise as JSON lines (SPEC §3) on stdout. Two runs over the same\n"
            "input print the same bytes. A summary goes to stderr: events read and rejected\n"
            "(with the first reasons), alerts per rule and events per second.\n"
            "\n"
            "Options:\n"
            "  -r, --rules PATH     rule file or folder (repeatable; folders are searched\n"
            "                       for *.vgl)\n"
            "  -i, --input FILE     events: CSV with a header row, JSONL, or length-delimited\n"
            "                       protobuf Event messages; '-' reads standard input\n"
            "  -f, --format FMT     csv, jsonl or pb (default: from the file extension)\n"
            "      --map FILE       CSV only: how to make fields from columns, one\n"
            "                       `field = EXPR` per line (docs/replay.md; maps for PaySim\n"
            "                       and Sparkov are in docs/maps/)\n"
            "      --label COLUMN   a column (CSV) or member (JSONL) marking fraud (1, true,\n"
            "                       yes or fraud, any case): adds precision and recall per rule\n"
            "  -o, --out FILE       write the alerts to FILE instead of stdout\n"
            "      --decisions      write one decision per event instead of the alerts:\n"
            "                       {\"event_id\",\"action\",\"score\",\"rules\":[...]} (SPEC §2)\n"
            "      --state DIR      keep the state (windows, dedupe index, event clock) in an\n"
            "                       LMDB folder, so a later replay carries on from this one;\n"
            "                       without it the state lives in a temporary folder\n"
            "      --cache-keys N   keys held in memory before the least recent are written\n"
            "                       back to the state and dropped (default 4000000)\n"
            "      --expect FILE    compare the alerts with FILE (JSONL alerts, or lines of\n"
            "                       rule,key,event_id); print the difference, exit 1 if any\n"
            "      --flush          at the end, fire the deadlines of trailing `not` steps\n"
            "                       still pending, as if time had passed them (without it,\n"
            "                       they stay pending, in the --state folder if given)\n"
            "      --config FILE    take the decision thresholds (decisions: review_at,\n"
            "                       block_at) and the dedupe horizon from a run config\n"
            "                       (vigil run --help); default review_at 50, block_at 80\n"
            "      --sink NAME      also deliver the alerts to the config's sink NAME: its\n"
            "                       type (all sinks of it, like webhook) or its name (type:url\n"
            "                       or type:path); repeatable; needs --config. Replay waits\n"
            "                       for the deliveries at the end and counts them; there is\n"
            "                       no outbox, so what fails is reported, not kept, and the\n"
            "                       exit status is 69\n"
            "      --sink-wait SEC  how long a sink may make no progress (down, retrying)\n"
            "                       before replay stops waiting for it (default 60)\n"
            "  -q, --quiet          no summary, no progress\n"
            "  -h, --help           show this help and exit\n"
            "\n"
            "A row that is not a valid event is rejected with FILE:LINE: reason, counted,\n"
            "and the replay goes on. Event ids are deduplicated as the live engine does.\n"
            "\n"
            "Exit status: 0 success (rejected rows included), 1 the rules do not compile or\n"
            "--expect differs (or the map file has errors), 64 usage error, 65 an input not\n"
            "of its format, 66 a file that cannot be opened or the output cannot be written.\n"
            "\n"
            "More: docs/replay.md.\n");
}

typedef struct rule_tally {
    uint64_t fraud_alerts; /* emitted alerts whose event (event_id) is fraud */
    uint64_t fraud_hits;   /* fraud events in any alert of the rule, suppressed included */
} rule_tally;

/* The ids of the rows labelled fraud (--label), so that any event of an
 * alert can be judged, not only the row being read (a pattern's match spans
 * earlier rows; a deadline's alert names one). Open addressing; entry i's
 * bit r in `counted` says rule r's alerts counted it for recall already. */
typedef struct fraud_id {
    uint64_t hash; /* 0: empty */
    char *id;
    uint32_t len;
    uint32_t index;
} fraud_id;

typedef struct fraud_set {
    fraud_id *tab;
    size_t n, cap;
    uint8_t *counted; /* n x nrules bits: a bit per rule, then one for "any rule" */
    size_t nrules;    /* the rules, plus one */
} fraud_set;

static uint64_t
id_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h ? h : 1;
}

static fraud_id *
fraud_find(const fraud_set *f, const char *id, size_t len)
{
    if (f->cap == 0)
        return NULL;
    uint64_t h = id_hash(id, len);
    for (size_t i = h & (f->cap - 1);; i = (i + 1) & (f->cap - 1)) {
        fraud_id *e = &f->tab[i];
        if (e->hash == 0)
            return NULL;
        if (e->hash == h && e->len == len && memcmp(e->id, id, len) == 0)
            return e;
    }
}

static bool
fraud_add(fraud_set *f, const char *id, size_t len)
{
    if (fraud_find(f, id, len) != NULL)
        return true;
    if ((f->n + 1) * 2 > f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 1024;
        fraud_id *tab = calloc(cap, sizeof(fraud_id));
        uint8_t *counted = realloc(f->counted, (cap * f->nrules + 7) / 8);
        if (tab == NULL || counted == NULL) {
            free(tab);
            if (counted != NULL)
                f->counted = counted;
            return false;
        }
        memset(counted + (f->cap * f->nrules + 7) / 8, 0,
               (cap * f->nrules + 7) / 8 - (f->cap * f->nrules + 7) / 8);
        f->counted = counted;
        for (size_t i = 0; i < f->cap; i++) {
            if (f->tab[i].hash == 0)
                continue;
            size_t j = f->tab[i].hash & (cap - 1);
            while (tab[j].hash != 0)
                j = (j + 1) & (cap - 1);
            tab[j] = f->tab[i];
        }
        free(f->tab);
        f->tab = tab;
        f->cap = cap;
    }
    uint64_t h = id_hash(id, len);
    size_t i = h & (f->cap - 1);
    while (f->tab[i].hash != 0)
        i = (i + 1) & (f->cap - 1);
    f->tab[i].id = malloc(len ? len : 1);
    if (f->tab[i].id == NULL)
        return false;
    memcpy(f->tab[i].id, id, len);
    f->tab[i].hash = h;
    f->tab[i].len = (uint32_t)len;
    f->tab[i].index = (uint32_t)f->n++;
    return true;
}

static void
fraud_free(fraud_set *f)
{
    for (size_t i = 0; i < f->cap; i++)
        free(f->tab[i].id);
    free(f->tab);
    free(f->counted);
}

typedef struct triple {
    char *s; /* "rule\0key\0event_id" joined by \x1f for sorting */
} triple;

/* One rule's alert on the event being decided. */
typedef struct hit {
    const vg_rule *rule;
    char *message;
} hit;

typedef struct replay {
    FILE *out;
    bool decisions; /* --decisions: collect hits, write a decision per event */
    hit *hits;
    size_t nhits, caphits;
    const vg_ruleset *rs;
    rule_tally *tally;
    fraud_set fraud_ids;
    unsigned review_at, block_at; /* decision thresholds */
    bool collect;                 /* --expect: keep the alerts' triples */
    char **got;
    size_t ngot, capgot;
    uint64_t alerts;
    uint64_t any_hits; /* fraud events in any alert of any rule */
    bool write_error;
    /* counts for the summary */
    uint64_t read, accepted, rejected, dups, fraud, unlabelled;
    char *first_reasons[5];
    size_t nreasons;
    struct rsink *sinks; /* --sink */
    size_t nsinks;
    double sink_wait; /* --sink-wait: seconds a sink may make no progress */
    double now_ms;    /* the wall clock at the start (vg_event_too_far_ahead) */
    uint64_t seq;
} replay;

/* A sink of the run config that replay delivers to (--sink). */
static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

typedef struct rsink {
    const vg_sink_conf *conf;
    const vg_sink_type *type;
    void *self;
    pthread_mutex_t mu; /* the counts: done() may come from the sink's thread */
    uint64_t delivered, dead, refused;
    uint64_t abandoned; /* not delivered when replay stopped waiting for it */
    bool given_up;      /* no progress for --sink-wait: no more alerts offered */
} rsink;

/* Records finished by k so far (delivered or dead). */
static uint64_t
rsink_finished(rsink *k)
{
    pthread_mutex_lock(&k->mu);
    uint64_t n = k->delivered + k->dead;
    pthread_mutex_unlock(&k->mu);
    return n;
}

static void
rsink_done(void *ctx, uint64_t seq, vg_sink_outcome outcome)
{
    rsink *k = ctx;
    (void)seq;
    pthread_mutex_lock(&k->mu);
    if (outcome == VG_SINK_DELIVERED)
        k->delivered++;
    else
        k->dead++;
    pthread_mutex_unlock(&k->mu);
}

/* Opens the sinks --sink names (a type, or a sink's name) from the config. */
static int
open_sinks(replay *R, const vg_config *cfg, const char *path, const char *const *names, size_t n,
           vg_sink_conf **confs, size_t *nconfs)
{
    if (vg_config_sinks(cfg, path, confs, nconfs, stderr) != VG_OK)
        return VG_EXIT_CONFIG;
    if ((R->sinks = calloc(*nconfs ? *nconfs : 1, sizeof *R->sinks)) == NULL)
        return 1;
    for (size_t k = 0; k < n; k++) {
        bool any = false;
        for (size_t i = 0; i < *nconfs; i++) {
            const vg_sink_conf *c = &(*confs)[i];
            if (strcmp(c->type, names[k]) != 0 && strcmp(c->name, names[k]) != 0)
                continue;
            any = true;
            bool open = false;
            for (size_t j = 0; j < R->nsinks; j++)
                open = open || R->sinks[j].conf == c;
            if (open)
                continue;
            rsink *s = &R->sinks[R->nsinks];
            s->conf = c;
            s->type = vg_sink_find(c->type);
            char why[400] = "";
            if (s->type == NULL || s->type->open(c, rsink_done, s, &s->self, why, sizeof why)) {
                fprintf(stderr, "%s: error: sink %s: %s\n", path, c->name,
                        why[0] ? why : "no such sink type");
                return VG_EXIT_CONFIG;
            }
            pthread_mutex_init(&s->mu, NULL);
            R->nsinks++;
        }
        if (!any) {
            fprintf(stderr, "vigil replay: --sink %s: %s has no such sink (its sinks:", names[k],
                    path);
            for (size_t i = 0; i < *nconfs; i++)
                fprintf(stderr, " %s", (*confs)[i].name);
            fprintf(stderr, ")\n");
            return VG_EXIT_USAGE;
        }
    }
    return VG_EXIT_OK;
}

/* Waits for the sinks to finish (retries included) and says how it went. */
static void
wait_sinks(replay *R, bool quiet)
{
    for (size_t i = 0; i < R->nsinks; i++) {
        rsink *k = &R->sinks[i];
        vg_sink_health h = {0};
        uint64_t done = rsink_finished(k);
        double moved = now_s();
        for (;;) { /* as long as it makes progress, up to --sink-wait without */
            k->type->flush(k->self, 1.0);
            k->type->health(k->self, &h);
            if (h.in_flight == 0 || h.disabled)
                break;
            uint64_t d = rsink_finished(k);
            if (d != done) {
                done = d;
                moved = now_s();
            } else if (now_s() - moved >= R->sink_wait) {
                pthread_mutex_lock(&k->mu);
                k->abandoned += h.in_flight;
                pthread_mutex_unlock(&k->mu);
                break;
            }
            if (!quiet)
                fprintf(stderr, "replay: sink %s: %zu alerts still being delivered...\n",
                        k->conf->name, h.in_flight);
        }
        pthread_mutex_lock(&k->mu);
        if (!quiet || k->dead + k->refused + k->abandoned > 0)
            fprintf(stderr,
                    "replay: sink %s: %llu delivered, %llu given up (retries spent or refused), "
                    "%llu not delivered in --sink-wait%s%s\n",
                    k->conf->name, (unsigned long long)k->delivered,
                    (unsigned long long)(k->dead + k->refused), (unsigned long long)k->abandoned,
                    h.last_error[0] ? "; last error: " : "", h.last_error);
        pthread_mutex_unlock(&k->mu);
    }
}

/* True when every alert replay offered its sinks was delivered. */
static bool
sinks_all_delivered(replay *R)
{
    bool all = true;
    for (size_t i = 0; i < R->nsinks; i++) {
        rsink *k = &R->sinks[i];
        pthread_mutex_lock(&k->mu);
        all &= k->dead + k->refused + k->abandoned == 0;
        pthread_mutex_unlock(&k->mu);
    }
    return all;
}

/* Hands one alert to each sink that wants it, waiting while one is full. */
static void
to_sinks(replay *R, const vg_alert *a)
{
    char key[1024];
    size_t kl = a->keylen < sizeof key ? a->keylen : sizeof key - 1;
    memcpy(key, a->key, kl);
    key[kl] = '\0';
    vg_outrec rec = {.seq = R->seq++,
                     .rule = a->rule->name,
                     .id = a->id,
                     .key = key,
                     .json = a->json,
                     .len = a->json_len,
                     .shadow = a->rule->shadow,
                     .time_ms = a->time_ms};
    for (size_t i = 0; i < R->nsinks; i++) {
        rsink *k = &R->sinks[i];
        if (!vg_sink_wants(k->conf, &rec))
            continue;
        if (k->given_up) {
            pthread_mutex_lock(&k->mu);
            k->abandoned++;
            pthread_mutex_unlock(&k->mu);
            continue;
        }
        vg_err err;
        uint64_t done = rsink_finished(k);
        double moved = now_s();
        while ((err = k->type->deliver(k->self, &rec, 1)) == VG_ELIMIT) {
            /* full: wait while it makes progress, up to --sink-wait without */
            k->type->flush(k->self, 0.05);
            uint64_t d = rsink_finished(k);
            if (d != done) {
                done = d;
                moved = now_s();
            } else if (now_s() - moved >= R->sink_wait) {
                k->given_up = true;
                break;
            }
        }
        pthread_mutex_lock(&k->mu);
        if (err == VG_ELIMIT)
            k->abandoned++;
        else if (err)
            k->refused++;
        pthread_mutex_unlock(&k->mu);
    }
}

/* Rows read and not yet processed: events are copied out of the reader's
 * buffers (into an arena that does not move during a batch), so the engine
 * can look at a batch of them at once (vg_engine_prepare()). */
typedef struct pending {
    vg_event ev;
    uint64_t line;
    int label;
    const char *reason; /* a rejected row: why; NULL for an event */
} pending;

typedef struct batch {
    pending rows[VG_ENGINE_BATCH];
    const vg_event *evs[VG_ENGINE_BATCH];
    size_t n;
    char *arena;
    size_t used, cap;
} batch;

static char *
triple_of(const char *rule, size_t rl, const char *key, size_t kl, const char *id, size_t il)
{
    char *s = malloc(rl + kl + il + 3);
    if (s == NULL)
        return NULL;
    memcpy(s, rule, rl);
    s[rl] = '\x1f';
    memcpy(s + rl + 1, key, kl);
    s[rl + 1 + kl] = '\x1f';
    memcpy(s + rl + kl + 2, id, il);
    s[rl + kl + il + 2] = '\0';
    return s;
}

static void
on_alert(void *ctx, const vg_alert *a)
{
    replay *R = ctx;
    rule_tally *t = &R->tally[a->rule->index];
    if (R->decisions && !a->due) { /* suppression affects delivery only: a hit either way */
        if (R->nhits == R->caphits) {
            size_t cap = R->caphits ? R->caphits * 2 : 16;
            hit *v = realloc(R->hits, cap * sizeof(hit));
            if (v == NULL)
                return;
            R->hits = v;
            R->caphits = cap;
        }
        R->hits[R->nhits].rule = a->rule;
        R->hits[R->nhits].message = strndup(a->message, a->message_len);
        R->nhits++;
    }
    /* recall: each fraud event of the match, once per rule (suppressed alerts
     * count: a rule that fires on a burst and suppresses the rest caught it) */
    fraud_set *F = &R->fraud_ids;
    for (uint32_t i = 0; F->n > 0 && i < (a->events ? a->nevents : 1); i++) {
        fraud_id *f = a->events ? fraud_find(F, a->events[i], a->event_lens[i])
                                : fraud_find(F, a->event_id, a->event_id_len);
        size_t bit = f ? (size_t)f->index * F->nrules + a->rule->index : 0;
        size_t any = f ? (size_t)f->index * F->nrules + F->nrules - 1 : 0;
        if (f != NULL && !(F->counted[any / 8] & (1u << (any % 8)))) {
            F->counted[any / 8] |= (uint8_t)(1u << (any % 8));
            R->any_hits++;
        }
        if (f != NULL && !(F->counted[bit / 8] & (1u << (bit % 8)))) {
            F->counted[bit / 8] |= (uint8_t)(1u << (bit % 8));
            t->fraud_hits++;
        }
    }
    if (a->suppressed)
        return;
    R->alerts++;
    if (R->nsinks > 0)
        to_sinks(R, a);
    if (fraud_find(F, a->event_id, a->event_id_len) != NULL)
        t->fraud_alerts++;
    if (!R->decisions &&
        (fwrite(a->json, 1, a->json_len, R->out) != a->json_len || fputc('\n', R->out) == EOF))
        R->write_error = true;
    if (R->collect) {
        if (R->ngot == R->capgot) {
            size_t cap = R->capgot ? R->capgot * 2 : 256;
            char **v = realloc(R->got, cap * sizeof(char *));
            if (v == NULL)
                return;
            R->got = v;
            R->capgot = cap;
        }
        R->got[R->ngot] = triple_of(a->rule->name, strlen(a->rule->name), a->key, a->keylen,
                                    a->event_id, a->event_id_len);
        if (R->got[R->ngot])
            R->ngot++;
    }
}

static void
put_json_string(FILE *f, const char *s, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

/* The decision for the event just processed (SPEC §2 "Decisions"), with the
 * default thresholds: review at 50, block at 80. */
static void
write_decision(replay *R, const char *id, size_t idlen)
{
    static const char *const names[] = {"allow", "review", "block"};
    const vg_rule *few[64] = {0}, **rules = few;
    if (R->nhits > 64 && (rules = malloc(R->nhits * sizeof *rules)) == NULL) {
        R->write_error = true;
        return;
    }
    for (size_t i = 0; i < R->nhits; i++)
        rules[i] = R->hits[i].rule;
    int act, score;
    vg_decide(rules, R->nhits, R->review_at, R->block_at, &act, &score);
    if (rules != few)
        free(rules);
    const char *action = names[act];
    fputs("{\"event_id\":", R->out);
    put_json_string(R->out, id, idlen);
    fprintf(R->out, ",\"action\":\"%s\",\"score\":%d,\"rules\":[", action, score);
    for (size_t i = 0; i < R->nhits; i++) {
        const vg_rule *r = R->hits[i].rule;
        fprintf(R->out, "%s{\"rule\":", i ? "," : "");
        put_json_string(R->out, r->name, strlen(r->name));
        fprintf(R->out, ",\"score\":%d,\"action\":\"%s\",\"message\":", r->score, names[r->action]);
        put_json_string(R->out, R->hits[i].message ? R->hits[i].message : "",
                        R->hits[i].message ? strlen(R->hits[i].message) : 0);
        fprintf(R->out, ",\"shadow\":%s}", r->shadow ? "true" : "false");
        free(R->hits[i].message);
    }
    fputs("]}\n", R->out);
    R->nhits = 0;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads an --expect file: JSONL alerts or rule,key,event_id lines. */
static int
read_expect(const char *path, char ***out, size_t *n)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "vigil replay: can't open --expect file '%s': %m\n", path);
        return VG_EXIT_NOINPUT;
    }
    char *line = NULL;
    size_t cap = 0, lineno = 0, cnt = 0, vcap = 0;
    char **v = NULL;
    ssize_t len;
    int rc = VG_EXIT_OK;
    while ((len = getline(&line, &cap, f)) > 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0 || line[0] == '#')
            continue;
        char *t = NULL;
        if (line[0] == '{') {
            json_error_t je;
            json_t *j = json_loads(line, 0, &je);
            const char *r = j ? json_string_value(json_object_get(j, "rule")) : NULL;
            const char *k = j ? json_string_value(json_object_get(j, "key")) : NULL;
            const char *e = j ? json_string_value(json_object_get(j, "event_id")) : NULL;
            if (r && k && e)
                t = triple_of(r, strlen(r), k, strlen(k), e, strlen(e));
            json_decref(j);
        } else {
            char *c1 = strchr(line, ',');
            char *c2 = c1 ? strrchr(line, ',') : NULL;
            if (c1 && c2 && c2 > c1)
                t = triple_of(line, (size_t)(c1 - line), c1 + 1, (size_t)(c2 - c1 - 1), c2 + 1,
                              strlen(c2 + 1));
        }
        if (t == NULL) {
            fprintf(stderr, "%s:%zu: expected an alert as JSON or a line rule,key,event_id\n", path,
                    lineno);
            rc = VG_EXIT_DATAERR;
            break;
        }
        if (cnt == vcap) {
            vcap = vcap ? vcap * 2 : 256;
            char **nv = realloc(v, vcap * sizeof(char *));
            if (nv == NULL)
                break;
            v = nv;
        }
        v[cnt++] = t;
    }
    free(line);
    fclose(f);
    *out = v;
    *n = cnt;
    return rc;
}

static void
print_triple(FILE *f, char sign, const char *t)
{
    fputc(sign, f);
    fputc(' ', f);
    for (const char *p = t; *p; p++)
        fputc(*p == '\x1f' ? ',' : *p, f);
    fputc('\n', f);
}

/* Multiset difference of two sorted lists; returns the number of lines. */
static size_t
diff_triples(char **want, size_t nw, char **got, size_t ng)
{
    size_t i = 0, j = 0, nd = 0;
    while (i < nw || j < ng) {
        int c = i == nw ? 1 : j == ng ? -1 : strcmp(want[i], got[j]);
        if (c == 0) {
            i++, j++;
        } else if (c < 0) {
            if (nd++ < 50)
                print_triple(stderr, '-', want[i]);
            i++;
        } else {
            if (nd++ < 50)
                print_triple(stderr, '+', got[j]);
            j++;
        }
    }
    if (nd > 50)
        fprintf(stderr, "... and %zu more differences\n", nd - 50);
    return nd;
}

static void
show_progress(const vg_reader *rd, uint64_t events, double t0, bool final)
{
    uint64_t done, total;
    vg_reader_progress(rd, &done, &total);
    double dt = now_s() - t0;
    fprintf(stderr, "\r  %llu events", (unsigned long long)events);
    if (total > 0)
        fprintf(stderr, " (%.0f%%)", 100.0 * (double)done / (double)total);
    if (dt > 0)
        fprintf(stderr, ", %.0f events/s", (double)events / dt);
    fprintf(stderr, final ? "\n" : "   ");
}

/* Keeps the first few rejection reasons for the summary. */
static void
keep_reason(char *reasons[5], size_t *n, const char *input, uint64_t line, const char *reason)
{
    if (*n == 5)
        return;
    char buf[700];
    snprintf(buf, sizeof buf, "%s:%llu: %s", input, (unsigned long long)line, reason);
    if ((reasons[*n] = strdup(buf)) != NULL)
        (*n)++;
}

/* Processes the rows of b in order. Returns VG_ENOMEM (*line: where). */
static vg_err
run_batch(replay *R, vg_engine *eng, batch *b, const char *input, uint64_t *line)
{
    size_t m = 0;
    for (size_t i = 0; i < b->n; i++)
        if (b->rows[i].reason == NULL)
            b->evs[m++] = &b->rows[i].ev;
    vg_err err = vg_engine_prepare(eng, b->evs, m);
    for (size_t i = 0; i < b->n && err == VG_OK; i++) {
        pending *p = &b->rows[i];
        const char *reason = p->reason;
        R->read++;
        if (reason != NULL) {
            R->rejected++;
            keep_reason(R->first_reasons, &R->nreasons, input, p->line, reason);
            continue;
        }
        const vg_field *idf = vg_schema_field(vg_ruleset_schema(R->rs), p->ev.stream, "id", 2);
        const vg_value *idv = idf ? &p->ev.v[idf->slot] : NULL;
        bool has_id = idv != NULL && idv->kind == VG_V_STR;
        /* before the event's alerts, which may name it */
        if (p->label == 1 && has_id && !fraud_add(&R->fraud_ids, idv->u.s, idv->len)) {
            err = VG_ENOMEM;
            break;
        }
        vg_outcome out;
        *line = p->line;
        err = vg_engine_process(eng, &p->ev, on_alert, R, &out, &reason);
        if (err)
            break;
        if (out == VG_EV_ACCEPTED) { /* a duplicate or rejected row is not counted twice */
            R->fraud += p->label == 1;
            R->unlabelled += p->label < 0;
        }
        if (R->decisions && out == VG_EV_ACCEPTED && has_id)
            write_decision(R, idv->u.s, idv->len);
        if (out == VG_EV_REJECTED) {
            R->rejected++;
            keep_reason(R->first_reasons, &R->nreasons, input, p->line, reason);
        } else if (out == VG_EV_DUPLICATE) {
            R->dups++;
        } else {
            R->accepted++;
        }
    }
    b->n = 0;
    b->used = 0;
    return err;
}

/* Adds a row to b (an event, or with reason a rejection), first processing
 * the batch when it is full or its arena has no room. */
static vg_err
add_row(replay *R, vg_engine *eng, batch *b, const char *input, const vg_event *ev, uint64_t line,
        int label, const char *reason, uint64_t *errline)
{
    const vg_schema *sc = vg_ruleset_schema(R->rs);
    if (reason == NULL && vg_event_too_far_ahead(sc, ev, R->now_ms)) /* as live does */
        reason = vg_too_far_ahead;
    size_t need = reason ? strlen(reason) + 1 : vg_event_size(sc, ev);
    need = (need + 7) & ~(size_t)7; /* the next copy's attrs stay aligned */
    vg_err err = VG_OK;
    if (b->n == VG_ENGINE_BATCH || b->used + need > b->cap)
        err = run_batch(R, eng, b, input, errline);
    if (err)
        return err;
    if (need > b->cap) { /* empty now: nothing points into it */
        size_t cap = need > 2 * b->cap ? need : 2 * b->cap;
        char *a = realloc(b->arena, cap);
        if (a == NULL)
            return VG_ENOMEM;
        b->arena = a;
        b->cap = cap;
    }
    pending *p = &b->rows[b->n++];
    char *mem = b->arena + b->used;
    b->used += need;
    p->line = line;
    p->label = label;
    p->reason = NULL;
    if (reason != NULL)
        p->reason = memcpy(mem, reason, strlen(reason) + 1);
    else
        vg_event_copy(sc, &p->ev, ev, mem);
    return VG_OK;
}

int
cmd_replay(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"rules", required_argument, NULL, 'r'},
        {"input", required_argument, NULL, 'i'},
        {"format", required_argument, NULL, 'f'},
        {"map", required_argument, NULL, 'm'},
        {"label", required_argument, NULL, 'l'},
        {"out", required_argument, NULL, 'o'},
        {"expect", required_argument, NULL, 'e'},
        {"quiet", no_argument, NULL, 'q'},
        {"state", required_argument, NULL, 'S'},
        {"cache-keys", required_argument, NULL, 'K'},
        {"decisions", no_argument, NULL, 'D'},
        {"flush", no_argument, NULL, 'F'},
        {"config", required_argument, NULL, 'C'},
        {"sink", required_argument, NULL, 'k'},
        {"sink-wait", required_argument, NULL, 'W'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *rules[64];
    size_t nrules = 0;
    const char *input = NULL, *format = NULL, *map = NULL, *label = NULL, *outpath = NULL,
               *expect = NULL, *state = NULL;
    bool quiet = false, decisions = false, flush = false;
    const char *config = NULL;
    const char *sinknames[16];
    size_t nsinknames = 0;
    size_t cache_keys = 0;
    double sink_wait = 60;
    char *end;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+r:i:f:o:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'r':
            if (nrules == VG_ARRAY_LEN(rules))
                return cli_usage_error("replay", "at most %zu --rules", VG_ARRAY_LEN(rules));
            rules[nrules++] = optarg;
            break;
        case 'i': input = optarg; break;
        case 'f': format = optarg; break;
        case 'm': map = optarg; break;
        case 'l': label = optarg; break;
        case 'o': outpath = optarg; break;
        case 'e': expect = optarg; break;
        case 'q': quiet = true; break;
        case 'S': state = optarg; break;
        case 'D': decisions = true; break;
        case 'F': flush = true; break;
        case 'C': config = optarg; break;
        case 'k':
            if (nsinknames == 16)
                return cli_usage_error("replay", "at most 16 --sink options");
            sinknames[nsinknames++] = optarg;
            break;
        case 'W':
            sink_wait = strtod(optarg, &end);
            if (*end || sink_wait <= 0)
                return cli_usage_error("replay", "--sink-wait takes seconds, like 60");
            break;
        case 'K':
            cache_keys = strtoull(optarg, &end, 10);
            if (*end || cache_keys < 1)
                return cli_usage_error("replay", "--cache-keys takes a number of keys, at least 1");
            break;
        case 'h': replay_usage(stdout); return VG_EXIT_OK;
        default:
            if (optopt && strchr("rifoemlSKC", optopt))
                return cli_usage_error("replay", "option '%s' needs a value", argv[optind - 1]);
            return cli_usage_error("replay", "unrecognized option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_error("replay", "unexpected argument '%s'", argv[optind]);
    if (nrules == 0)
        return cli_usage_error("replay", "no rules: give --rules FILE_OR_FOLDER");
    if (input == NULL)
        return cli_usage_error("replay", "no events: give --input FILE");
    if (nsinknames > 0 && config == NULL)
        return cli_usage_error("replay", "--sink names a sink of a run config: give --config FILE");
    vg_format fmt = VG_FMT_AUTO;
    if (format != NULL && (fmt = vg_format_parse(format)) == VG_FMT_AUTO)
        return cli_usage_error("replay", "--format takes csv, jsonl or pb, not '%s'", format);
    vg_format eff = fmt != VG_FMT_AUTO ? fmt : vg_format_of_path(input);
    if (eff == VG_FMT_AUTO)
        return cli_usage_error("replay",
                               strcmp(input, "-") == 0
                                   ? "standard input has no extension: say its format with "
                                     "--format csv, jsonl or pb"
                                   : "'%s' does not end in .csv, .jsonl or .pb: say its format "
                                     "with --format",
                               input);
    if (map != NULL && eff != VG_FMT_CSV)
        return cli_usage_error("replay", "--map applies to CSV input only ('%s' is %s)", input,
                               eff == VG_FMT_JSONL ? "JSONL" : "protobuf");

    /* decision thresholds and the dedupe horizon, as the live engine has them */
    vg_config cfg;
    vg_config_defaults(&cfg);
    if (config != NULL) {
        vg_err cerr = vg_config_load(config, &cfg, stderr);
        if (cerr) {
            vg_config_free(&cfg);
            return cerr == VG_ENOMEM ? 1 : cerr == VG_ENOENT ? VG_EXIT_NOINPUT : VG_EXIT_CONFIG;
        }
    }
    int rc = VG_EXIT_OK;
    vg_ruleset *rs = NULL;
    vg_engine *eng = NULL;
    vg_reader *rd = NULL;
    char why[256];
    replay R = {.out = stdout,
                .review_at = cfg.review_at,
                .block_at = cfg.block_at,
                .sink_wait = sink_wait};
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    R.now_ms = (double)wall.tv_sec * 1000.0 + (double)(wall.tv_nsec / 1000000);
    int64_t horizon_ms = cfg.dedupe_horizon_ms;
    char **want = NULL;
    size_t nwant = 0;
    vg_sink_conf *sinkconfs = NULL; /* they point into cfg: freed last */
    size_t nsinkconfs = 0;
    if (nsinknames > 0 && (rc = open_sinks(&R, &cfg, config, sinknames, nsinknames, &sinkconfs,
                                           &nsinkconfs)) != VG_EXIT_OK)
        goto done;
    unsigned nerr = 0;
    vg_compile_opts copts = {.diag = cli_print_diag};
    vg_err err = vg_ruleset_compile(rules, nrules, &copts, &nerr, &rs);
    if (err == VG_ECOMPILE) {
        vg_diag_summary(stderr, nerr);
        rc = VG_EXIT_RULES;
        goto done;
    }
    if (err) {
        rc = err == VG_ENOMEM ? VG_EXIT_RULES : VG_EXIT_NOINPUT;
        goto done;
    }
    if (expect != NULL && (rc = read_expect(expect, &want, &nwant)) != VG_EXIT_OK)
        goto done;
    unsigned map_errors = 0;
    bool map_failed = false;
    vg_reader_opts ropts = {.format = fmt,
                            .map_path = map,
                            .label = label,
                            .diag = cli_print_diag,
                            .map_errors = &map_errors,
                            .map_failed = &map_failed};
    err = vg_reader_open(input, vg_ruleset_schema(rs), &ropts, why, sizeof why, &rd);
    if (err == VG_ECOMPILE) {
        vg_diag_summary(stderr, map_errors);
        rc = VG_EXIT_RULES;
        goto done;
    }
    if (err && map_failed) { /* the map's own diagnostic says what */
        rc = err == VG_ENOMEM ? 1 : VG_EXIT_NOINPUT;
        goto done;
    }
    if (err) {
        fprintf(stderr, "vigil replay: can't read '%s': %s\n", input, why);
        rc = err == VG_EINVAL ? VG_EXIT_DATAERR : err == VG_ENOMEM ? 1 : VG_EXIT_NOINPUT;
        goto done;
    }
    if (outpath != NULL && (R.out = fopen(outpath, "w")) == NULL) {
        fprintf(stderr, "vigil replay: can't write '%s': %m\n", outpath);
        rc = VG_EXIT_NOINPUT;
        goto done;
    }
    vg_engine_opts eopts = {
        .state_dir = state, .cache_keys = cache_keys, .dedupe_horizon_ms = horizon_ms};
    why[0] = '\0';
    err = vg_engine_open(rs, &eopts, why, sizeof why, &eng);
    if (err) {
        fprintf(stderr, "vigil replay: %s\n", why[0] ? why : vg_strerror(err));
        rc = err == VG_ENOMEM ? 1 : VG_EXIT_NOINPUT;
        goto done;
    }
    size_t nr = vg_ruleset_nrules(rs);
    R.rs = rs;
    R.tally = calloc(nr ? nr : 1, sizeof(rule_tally));
    R.fraud_ids.nrules = nr + 1;
    R.collect = expect != NULL;
    R.decisions = decisions;
    bool tty = isatty(STDERR_FILENO) && !quiet;
    double t0 = now_s(), last_progress = t0;
    batch *B = calloc(1, sizeof *B);
    if (B == NULL || (B->arena = malloc(B->cap = 64 << 10)) == NULL) {
        free(B);
        fprintf(stderr, "vigil replay: out of memory\n");
        rc = 1;
        goto done;
    }
    vg_event ev;
    for (;;) {
        uint64_t line, errline = 0;
        const char *reason;
        int lab;
        vg_read r = vg_reader_next(rd, &ev, &line, &reason, &lab);
        if (r == VG_READ_END || r == VG_READ_ERROR)
            err = run_batch(&R, eng, B, input, &errline);
        else
            err = add_row(&R, eng, B, input, &ev, line, lab, r == VG_READ_REJECT ? reason : NULL,
                          &errline);
        if (err) {
            fprintf(stderr, "vigil replay: out of memory at %s:%llu\n", input,
                    (unsigned long long)errline);
            rc = 1;
            break;
        }
        if (r == VG_READ_END)
            break;
        if (r == VG_READ_ERROR) { /* counted, and the replay cannot go on */
            R.read++;
            R.rejected++;
            fprintf(stderr, "vigil replay: %s:%llu: %s\n", input, (unsigned long long)line, reason);
            rc = VG_EXIT_DATAERR;
            break;
        }
        if (tty && B->n == 0) {
            double now = now_s();
            if (now - last_progress > 0.5) {
                show_progress(rd, R.read, t0, false);
                last_progress = now;
            }
        }
    }
    free(B->arena);
    free(B);
    if (flush && rc == VG_EXIT_OK && vg_engine_finish(eng, on_alert, &R) != VG_OK) {
        fprintf(stderr, "vigil replay: out of memory firing the pending deadlines\n");
        rc = 1;
    }
    if (R.nsinks > 0) {
        wait_sinks(&R, quiet);
        if (!sinks_all_delivered(&R)) {
            fprintf(stderr, "vigil replay: not every alert reached its sinks (above): replay keeps "
                            "no outbox, so they are not kept; fix the sink and replay again, or "
                            "give a longer --sink-wait\n");
            if (rc == VG_EXIT_OK)
                rc = VG_EXIT_UNAVAILABLE;
        }
    }
    double dt = now_s() - t0;
    if (tty && dt > 0.5)
        show_progress(rd, R.read, t0, true);
    if (fflush(R.out) != 0 || R.write_error || ferror(R.out)) {
        fprintf(stderr, "vigil replay: writing the alerts to %s failed: %m\n",
                outpath ? outpath : "standard output");
        rc = VG_EXIT_NOINPUT;
    }
    if (!quiet) {
        fprintf(stderr,
                "replay: %llu events read, %llu accepted, %llu rejected, %llu duplicates, "
                "%llu alerts, %.0f events/s\n",
                (unsigned long long)R.read, (unsigned long long)R.accepted,
                (unsigned long long)R.rejected, (unsigned long long)R.dups,
                (unsigned long long)R.alerts, dt > 0 ? (double)R.read / dt : 0.0);
        for (size_t i = 0; i < R.nreasons; i++)
            fprintf(stderr, "  rejected %s\n", R.first_reasons[i]);
        if (R.rejected > R.nreasons)
            fprintf(stderr, "  ... and %llu more rejected rows\n",
                    (unsigned long long)(R.rejected - R.nreasons));
        if (label)
            fprintf(stderr, "  %llu events labelled fraud\n", (unsigned long long)R.fraud);
        if (label && R.unlabelled > 0)
            fprintf(stderr, "  %llu events have no member '%s' (counted as not fraud)\n",
                    (unsigned long long)R.unlabelled, label);
        if (R.dups > 0 && vg_reader_row_ids(rd))
            fprintf(stderr,
                    "  note: ids are row numbers here (nothing sets id), so with --state the\n"
                    "  rows of a second file repeat the first file's ids; map an id column\n"
                    "  (id = ...) to tell them apart\n");
        fprintf(stderr, "  %-32s %8s %10s %10s", "rule", "alerts", "suppressed", "empty key");
        if (label)
            fprintf(stderr, " %9s %9s", "precision", "recall");
        fputc('\n', stderr);
        for (size_t i = 0; i < nr; i++) {
            const vg_rule *r = vg_ruleset_rule(rs, i);
            const vg_rule_stats *st = vg_engine_rule_stats(eng, i);
            fprintf(stderr, "  %-32s %8llu %10llu %10llu", r->name, (unsigned long long)st->alerts,
                    (unsigned long long)st->suppressed, (unsigned long long)st->empty_keys);
            if (label) {
                if (st->alerts)
                    fprintf(stderr, " %9.3f", (double)R.tally[i].fraud_alerts / (double)st->alerts);
                else
                    fprintf(stderr, " %9s", "-");
                if (R.fraud)
                    fprintf(stderr, " %9.3f", (double)R.tally[i].fraud_hits / (double)R.fraud);
                else
                    fprintf(stderr, " %9s", "-");
            }
            if (st->dropped)
                fprintf(stderr, "  (%llu partial matches dropped at the bound of %d per key)",
                        (unsigned long long)st->dropped, VG_PATTERN_PARTIALS);
            fputc('\n', stderr);
        }
        if (label && R.fraud && nr > 1)
            fprintf(stderr, "  %-32s %8llu %10s %10s %9s %9.3f\n", "(any rule)",
                    (unsigned long long)R.alerts, "", "", "", (double)R.any_hits / (double)R.fraud);
    }
    for (size_t i = 0; !quiet && i < nr; i++) {
        const vg_rule_stats *st = vg_engine_rule_stats(eng, i);
        if (st->late > 0)
            fprintf(stderr,
                    "  note: %s: %llu events came more than the rule's window after a later event "
                    "of their key;\n  their windows may miss events older than twice the window "
                    "(the lateness the engine keeps)\n",
                    vg_ruleset_rule(rs, i)->name, (unsigned long long)st->late);
    }
    uint64_t rx = eng ? vg_engine_regex_limit_hits(eng) : 0;
    if (!quiet && rx > 0)
        fprintf(stderr,
                "  note: %llu regex matches stopped at their match limit (the value is taken as "
                "missing there); a pattern with nested repetition, like (a+)+, is the usual "
                "cause\n",
                (unsigned long long)rx);
    if (rc == VG_EXIT_OK && R.read > 0 && R.accepted + R.dups == 0 &&
        vg_reader_syntax_rejects(rd) * 2 > R.read) {
        /* not one event, and most rows not even of the format: the file is
         * not what its format says (a row of the format that is not a valid
         * event is the data's problem, counted, not the file's) */
        static const char *const names[] = {"", "CSV", "JSONL", "length-delimited protobuf"};
        fprintf(stderr,
                "vigil replay: no row of '%s' is an event (the first: %s); is it really %s? "
                "(--format says what a file is when its extension does not)\n",
                input, R.nreasons ? R.first_reasons[0] : "?", names[eff]);
        rc = VG_EXIT_DATAERR;
    }
    if (expect != NULL && rc == VG_EXIT_OK) {
        if (nwant > 1)
            qsort(want, nwant, sizeof(char *), cmp_str);
        if (R.ngot > 1)
            qsort(R.got, R.ngot, sizeof(char *), cmp_str);
        size_t nd = diff_triples(want, nwant, R.got, R.ngot);
        if (nd > 0) {
            fprintf(stderr, "replay: %zu differences from %s (- expected, + got)\n", nd, expect);
            rc = VG_EXIT_RULES;
        } else if (!quiet) {
            fprintf(stderr, "replay: the alerts match %s (%zu)\n", expect, nwant);
        }
    }
    for (size_t i = 0; i < R.nreasons; i++)
        free(R.first_reasons[i]);
done:
    if (R.out != NULL && R.out != stdout)
        fclose(R.out);
    for (size_t i = 0; i < R.ngot; i++)
        free(R.got[i]);
    free(R.got);
    for (size_t i = 0; i < nwant; i++)
        free(want[i]);
    free(want);
    free(R.tally);
    fraud_free(&R.fraud_ids);
    free(R.hits);
    vg_reader_close(rd);
    if (vg_engine_close(eng) != VG_OK && rc == VG_EXIT_OK) {
        fprintf(stderr, "vigil replay: can't save the state in '%s'\n", state);
        rc = 1;
    }
    vg_ruleset_unref(rs);
    for (size_t i = 0; i < R.nsinks; i++) {
        R.sinks[i].type->close(R.sinks[i].self);
        pthread_mutex_destroy(&R.sinks[i].mu);
    }
    free(R.sinks);
    vg_config_sinks_free(sinkconfs, nsinkconfs);
    vg_config_free(&cfg);
    return rc;
}
