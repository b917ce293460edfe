/*
 * cmd_gen.c - `vigil gen`: a seeded, reproducible synthetic stream of
 * transactions and account events over N accounts, with injected and
 * labelled fraud scenarios, so demos, tests and benchmarks have data whose
 * right answers are known.
 *
 * Normal life: purchases, payments, transfers, withdrawals at home (now and
 * then abroad), amounts log-normal around each account's habit, a login
 * before most transfers. Scenarios (is_fraud = 1, and a `scenario` column):
 *   card_testing       from one fraudster device, 1-2 small declined online
 *                      purchases on each of 3 other stolen cards, then 3-5
 *                      on one card and a large approved one, within minutes
 *   velocity_burst     12-18 online purchases on one account within an hour
 *   impossible_travel  a card-present purchase at home, then one 2,000+ km
 *                      away an hour or two later
 *   account_takeover   a login from abroad (a high-risk country), password
 *                      change, new device, a new payee never confirmed, then
 *                      a large transfer from that device within two hours,
 *                      half the time followed by a large online casino
 *                      purchase
 *   mule_cash_out      a transfer that empties an account into a mule, then a
 *                      cash-out of the same amount by the mule within an hour
 *                      (half the time at an ATM in a high-risk country)
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "vg_event.h"
#include "vg_input.h"
#include "vg_vm.h"

static void
gen_usage(FILE *f)
{
    fprintf(f, "usage: vigil gen --accounts N --events N [options]\n"
               "\n"
               "Write a synthetic, reproducible stream of transactions and account events\n"
               "(logins, password changes, new devices) over N accounts, in time order, with\n"
               "injected fraud scenarios labelled in an is_fraud column (and a scenario column):\n"
               "card_testing, velocity_burst, impossible_travel, account_takeover and\n"
               "mule_cash_out. The same seed gives the same bytes.\n"
               "\n"
               "Options:\n"
               "  -a, --accounts N      accounts (default 1000)\n"
               "  -n, --events N        events, about (default 100000)\n"
               "  -s, --seed S          random seed (default 1)\n"
               "  -r, --fraud-rate R    share of events that belong to fraud scenarios, from 0\n"
               "                        to 0.5 (default 0.01)\n"
               "  -f, --format FMT      csv, jsonl or pb (default: from --out, else csv);\n"
               "                        pb carries no label\n"
               "  -o, --out FILE        write to FILE (default: stdout)\n"
               "  -h, --help            show this help and exit\n"
               "\n"
               "Replay the result, with labels, to see what rules catch:\n"
               "  vigil gen --accounts 2000 --events 100000 -o data.csv\n"
               "  vigil replay --rules rules/examples --input data.csv --label is_fraud\n"
               "\n"
               "Exit status: 0 success, 64 usage error, 66 the output cannot be written.\n");
}

/* A coordinate as the text formats print it (4 decimals) and a reader
 * reads it back: the protobuf output carries the same value as CSV and JSONL. */
static double
as_text(float x)
{
    char b[32];
    snprintf(b, sizeof b, "%.4f", x);
    return strtod(b, NULL);
}

/* ---- Randomness: splitmix64, so every platform gives the same stream ---- */

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t
next64(rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double
uniform(rng *r)
{
    return (double)(next64(r) >> 11) / 9007199254740992.0;
}

static uint64_t
below(rng *r, uint64_t n)
{
    return n ? next64(r) % n : 0;
}

static double
normal(rng *r)
{
    double u = uniform(r), v = uniform(r);
    return sqrt(-2.0 * log(u + 1e-300)) * cos(2 * M_PI * v);
}

/* ---- The world ---------------------------------------------------------- */

typedef struct city {
    const char *country;
    double lat, lon;
} city;

static const city cities[] = {
    {"DE", 52.52, 13.405},    {"DE", 48.137, 11.575},   {"FR", 48.857, 2.352},
    {"FR", 43.296, 5.37},     {"GB", 51.507, -0.128},   {"GB", 53.48, -2.242},
    {"NL", 52.37, 4.895},     {"ES", 40.417, -3.704},   {"IT", 41.903, 12.496},
    {"PL", 52.23, 21.012},    {"SE", 59.329, 18.069},   {"US", 40.713, -74.006},
    {"US", 34.052, -118.244}, {"BR", -23.551, -46.633}, {"NG", 6.524, 3.379},
    {"IN", 19.076, 72.878},   {"SG", 1.352, 103.82},    {"JP", 35.676, 139.65},
};

#define DAY_MS 86400000LL

/* Great-circle distance between two cities (as geo_km computes it). */
static double
city_km(uint16_t a, uint16_t b)
{
    double r = M_PI / 180, la1 = cities[a].lat * r, la2 = cities[b].lat * r;
    double dla = la2 - la1, dlo = (cities[b].lon - cities[a].lon) * r;
    double h = sin(dla / 2) * sin(dla / 2) + cos(la1) * cos(la2) * sin(dlo / 2) * sin(dlo / 2);
    return 2 * 6371.0 * asin(sqrt(h));
}

static const struct {
    const char *id, *name, *category;
} merchants[] = {
    {"m-grocer-11", "FreshMart", "5411"},
    {"m-grocer-12", "Corner Shop", "5411"},
    {"m-fuel-21", "Fuel & Go", "5541"},
    {"m-cafe-31", "Cafe Aroma", "5814"},
    {"m-books-41", "Page Turner", "5942"},
    {"m-tech-51", "Volt Electronics", "5732"},
    {"m-fashion-61", "Threads", "5651"},
    {"m-air-71", "SkyFly Airlines", "4511"},
    {"m-hotel-81", "Harbor Hotel", "7011"},
    {"m-pharma-91", "Green Cross Pharmacy", "5912"},
    {"m-stream-13", "StreamBox", "4899"},
    {"m-market-15", "MegaMarket", "5311"},
    /* the last two are on rules/examples' blocked list: fraud uses them */
    {"m-casino-991", "Lucky Casino Online", "7995"},
    {"m-giftcards-204", "GiftCard Hub", "5999"},
};
#define NORMAL_MERCHANTS (VG_ARRAY_LEN(merchants) - 2)

enum { TXN_STREAM = 0, EVENT_STREAM = 1 };
/* wire numbers of the enums (proto/vigil.proto) */
enum {
    PURCHASE = 1,
    PAYMENT = 2,
    TRANSFER = 3,
    CASH_OUT = 4,
    CASH_IN = 5,
    WITHDRAWAL = 7,
    REFUND = 8
};
enum { APPROVED = 1, DECLINED = 2 };
enum { POS = 1, ECOMMERCE = 2, ATM = 3, MOBILE = 4, TRANSFER_RAIL = 6 };
enum { K_LOGIN = 0, K_PASSWORD_CHANGE, K_DEVICE_CHANGE, K_NEW_PAYEE, K_PAYEE_CONFIRMED };

/* attrs: a login's user agent (the last one is a scripting library's) */
static const char *const agents[] = {
    "", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Version/17.4 "
     "Safari/605.1.15"),
    "python-requests/2.31.0"};
#define AGENT_SCRIPTED 4
static const char *const kinds[] = {"login", "password_change", "device_change", "new_payee",
                                    "payee_confirmed"};
static const char *const scenarios[] = {
    "", "card_testing", "velocity_burst", "impossible_travel", "account_takeover", "mule_cash_out"};

typedef struct account {
    uint16_t city;
    double mean;     /* typical purchase, major units */
    int64_t balance; /* minor units */
    /* where the card was last present, and a trip abroad under way */
    bool has_cp;
    uint16_t last_cp_city, trip_city;
    int64_t last_cp_t, trip_end;
} account;

typedef struct gev {
    int64_t t;    /* ms */
    uint32_t seq; /* creation order: ties in time keep it */
    uint32_t acct;
    int32_t cp;                    /* counterparty account, or -1 */
    int64_t amount;                /* minor units */
    int64_t bal_before, bal_after; /* INT64_MIN: absent */
    uint32_t device;
    float lat, lon;
    uint16_t city;
    uint8_t stream, type, status, channel, kind, success, merchant, scenario;
    uint8_t agent;  /* logins: the user agent (attrs), 0 none */
    bool mule_mail; /* a transfer's payee email is at a disposable-mail domain */
    bool has_merchant;
} gev;

typedef struct world {
    rng r;
    account *acct;
    uint32_t naccts;
    gev *ev;
    size_t n, cap;
    uint32_t seq;
    int64_t start, span; /* ms */
    bool oom;            /* an add() failed: the output would be incomplete */
} world;

static gev *
add(world *w, int64_t t, uint32_t a, uint8_t stream)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 4096;
        gev *v = realloc(w->ev, cap * sizeof(gev));
        if (v == NULL) {
            w->oom = true;
            return NULL;
        }
        w->ev = v;
        w->cap = cap;
    }
    gev *e = &w->ev[w->n++];
    memset(e, 0, sizeof *e);
    e->t = t;
    e->seq = w->seq++;
    e->acct = a;
    e->cp = -1;
    e->stream = stream;
    e->bal_before = e->bal_after = INT64_MIN;
    e->device = a;
    e->city = w->acct[a].city;
    /* where in town the account lives: a fixed offset of up to ~5 km */
    e->lat = (float)(cities[e->city].lat + (double)(a % 97) / 97 * 0.09 - 0.045);
    e->lon = (float)(cities[e->city].lon + (double)(a / 97 % 89) / 89 * 0.09 - 0.045);
    e->success = 1;
    e->status = APPROVED;
    return e;
}

static int64_t
amount_minor(double major)
{
    if (major < 0.01)
        major = 0.01;
    return llround(major * 100);
}

/* Puts e in city c (at the city's own coordinates when it is not the
 * account's home, where add() placed it near home). */
static void
move_to(gev *e, uint16_t c)
{
    if (c != e->city) {
        e->city = c;
        e->lat = (float)cities[c].lat;
        e->lon = (float)cities[c].lon;
    }
}

static void
normal_txn(world *w, int64_t t, uint32_t a)
{
    rng *r = &w->r;
    account *ac = &w->acct[a];
    double u = uniform(r);
    uint8_t type = u < 0.72   ? PURCHASE
                   : u < 0.82 ? PAYMENT
                   : u < 0.89 ? TRANSFER
                   : u < 0.94 ? WITHDRAWAL
                   : u < 0.97 ? CASH_IN
                   : u < 0.99 ? REFUND
                              : CASH_OUT;
    uint8_t channel = type == PURCHASE     ? (uniform(r) < 0.55 ? POS : ECOMMERCE)
                      : type == WITHDRAWAL ? ATM
                      : type == TRANSFER   ? MOBILE
                                           : TRANSFER_RAIL;
    /* where the owner is (every event of the account happens there, the
     * card's and the phone's alike): at home, or on a trip, which starts
     * rarely, with a purchase abroad; nobody travels faster than a plane, so
     * a new city needs a day since the account was last seen elsewhere */
    uint16_t c = ac->city;
    if (t < ac->trip_end) {
        c = ac->trip_city;
    } else if (channel == POS && uniform(r) < 0.02) {
        ac->trip_city = (uint16_t)below(r, VG_ARRAY_LEN(cities));
        ac->trip_end = t + DAY_MS + (int64_t)below(r, 4 * DAY_MS);
        c = ac->trip_city;
    }
    if (ac->has_cp && c != ac->last_cp_city && t - ac->last_cp_t < DAY_MS)
        c = ac->last_cp_city;
    ac->has_cp = true;
    ac->last_cp_city = c;
    ac->last_cp_t = t;
    if (type == TRANSFER && uniform(r) < 0.9) {
        /* most people log in shortly before they move money */
        gev *l = add(w, t - 60000 - (int64_t)below(r, 900000), a, EVENT_STREAM);
        if (l) {
            l->kind = K_LOGIN, l->agent = (uint8_t)(1 + a % 3);
            move_to(l, c);
        }
    }
    if (type == TRANSFER && uniform(r) < 0.1) {
        /* a new payee, confirmed (by the second factor) a few minutes later */
        int64_t tp = t - 1200000 - (int64_t)below(r, 1800000);
        /* one at a time: add() may move the array, so no pointer is kept
         * across a second call */
        gev *p = add(w, tp, a, EVENT_STREAM);
        if (p == NULL)
            return;
        p->kind = K_NEW_PAYEE;
        move_to(p, c);
        gev *q = add(w, tp + 30000 + (int64_t)below(r, 600000), a, EVENT_STREAM);
        if (q == NULL)
            return;
        q->kind = K_PAYEE_CONFIRMED;
        move_to(q, c);
    }
    gev *e = add(w, t, a, TXN_STREAM);
    if (e == NULL)
        return;
    e->type = type;
    e->channel = channel;
    move_to(e, c);
    double amt = ac->mean * exp(normal(r) * 0.6);
    if (type == TRANSFER || type == CASH_IN)
        amt *= 4;
    e->amount = amount_minor(amt);
    if (type == PURCHASE || type == PAYMENT || type == REFUND) {
        e->has_merchant = true;
        e->merchant = (uint8_t)below(r, NORMAL_MERCHANTS); /* not the risky ones */
    }
    if (type == TRANSFER)
        e->cp = (int32_t)below(r, w->naccts);
    if (uniform(r) < 0.03)
        e->status = DECLINED;
    e->bal_before = ac->balance;
    int64_t delta = type == CASH_IN || type == REFUND ? e->amount : -e->amount;
    if (e->status == APPROVED && ac->balance + delta >= 0)
        ac->balance += delta;
    e->bal_after = ac->balance;
}

/* The first city in a country of rules/examples' high_risk_countries. */
static uint16_t
risky_city(void)
{
    for (uint16_t i = 0; i < VG_ARRAY_LEN(cities); i++)
        if (strcmp(cities[i].country, "NG") == 0)
            return i;
    return 0;
}

static void
at_city(gev *e, uint16_t c)
{
    e->city = c;
    e->lat = (float)cities[c].lat;
    e->lon = (float)cities[c].lon;
}

/* A time in [start, start + span) when people are awake: the hour of day
 * (local time of the mostly European accounts, UTC+1) weighs the draw, so
 * nights are quiet and days busy. */
static int64_t
daytime(rng *r, int64_t start, int64_t span)
{
    static const double weight[24] = {0.15, 0.1, 0.1, 0.1, 0.1, 0.15, 0.3, 0.5, 0.7, 0.9, 1,   1,
                                      1,    1,   1,   1,   1,   1,    1,   1,   0.9, 0.7, 0.5, 0.3};
    for (;;) {
        int64_t t = start + (int64_t)below(r, (uint64_t)span);
        if (uniform(r) < weight[(t / 3600000 + 1) % 24])
            return t;
    }
}

static int
cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Emits one fraud scenario starting near t; returns the events it made. */
static size_t
scenario(world *w, int64_t t, uint8_t which)
{
    rng *r = &w->r;
    uint32_t a = (uint32_t)below(r, w->naccts);
    size_t before = w->n;
    gev *e;
    switch (which) {
    case 1: {                                                        /* card_testing */
        uint32_t dev = w->naccts + 1000000 + (uint32_t)below(r, 50); /* a fraudster's */
        for (int c = 0; c < 4; c++) {
            /* three other stolen cards get a try or two, the last one more */
            uint32_t card = c < 3 ? (uint32_t)below(r, w->naccts) : a;
            int n = c < 3 ? 1 + (int)below(r, 2) : 3 + (int)below(r, 3);
            for (int i = 0; i < n; i++) {
                t += 20000 + (int64_t)below(r, 40000);
                if ((e = add(w, t, card, TXN_STREAM)) == NULL)
                    return 0;
                e->type = PURCHASE, e->channel = ECOMMERCE, e->status = DECLINED;
                e->amount = 100 + (int64_t)below(r, 399);
                e->has_merchant = true, e->merchant = NORMAL_MERCHANTS + 1; /* gift cards */
                e->device = dev;
            }
        }
        t += 60000 + (int64_t)below(r, 120000);
        if ((e = add(w, t, a, TXN_STREAM)) == NULL)
            return 0;
        e->device = dev;
        e->type = PURCHASE, e->channel = ECOMMERCE;
        e->amount = 60000 + (int64_t)below(r, 140000);
        e->has_merchant = true, e->merchant = 5;
        break;
    }
    case 2: { /* velocity_burst */
        int n = 12 + (int)below(r, 7);
        for (int i = 0; i < n; i++) {
            t += 60000 + (int64_t)below(r, 180000);
            if ((e = add(w, t, a, TXN_STREAM)) == NULL)
                return 0;
            e->type = PURCHASE, e->channel = ECOMMERCE;
            e->amount = amount_minor(20 + uniform(r) * 180);
            e->has_merchant = true, e->merchant = (uint8_t)(NORMAL_MERCHANTS - 2 + below(r, 3));
        }
        break;
    }
    case 3: { /* impossible_travel */
        if ((e = add(w, t, a, TXN_STREAM)) == NULL)
            return 0;
        e->type = PURCHASE, e->channel = POS, e->amount = amount_minor(30 + uniform(r) * 70);
        e->has_merchant = true, e->merchant = (uint8_t)below(r, 5);
        uint16_t home = w->acct[a].city, far = home;
        while (far == home || city_km(home, far) < 2000) /* faster than any plane */
            far = (uint16_t)below(r, VG_ARRAY_LEN(cities));
        t += 3600000 + (int64_t)below(r, 3600000);
        if ((e = add(w, t, a, TXN_STREAM)) == NULL)
            return 0;
        e->type = PURCHASE, e->channel = POS, e->amount = amount_minor(600 + uniform(r) * 1800);
        e->has_merchant = true, e->merchant = 5;
        e->city = far;
        e->lat = (float)cities[far].lat;
        e->lon = (float)cities[far].lon;
        break;
    }
    case 4: { /* account_takeover */
        uint32_t dev = w->naccts + (uint32_t)below(r, 1000000);
        if ((e = add(w, t, a, EVENT_STREAM)) == NULL)
            return 0;
        e->kind = K_LOGIN, e->device = dev; /* the attacker, from abroad, by script */
        e->agent = AGENT_SCRIPTED;
        at_city(e, risky_city());
        t += 60000 + (int64_t)below(r, 600000);
        if ((e = add(w, t, a, EVENT_STREAM)) == NULL)
            return 0;
        e->kind = K_PASSWORD_CHANGE, e->device = dev;
        t += 120000 + (int64_t)below(r, 1200000);
        if ((e = add(w, t, a, EVENT_STREAM)) == NULL)
            return 0;
        e->kind = K_DEVICE_CHANGE, e->device = dev;
        t += 60000 + (int64_t)below(r, 600000);
        if ((e = add(w, t, a, EVENT_STREAM)) == NULL) /* the mule, never confirmed */
            return 0;
        e->kind = K_NEW_PAYEE, e->device = dev;
        t += 300000 + (int64_t)below(r, 2400000);
        if ((e = add(w, t, a, TXN_STREAM)) == NULL)
            return 0;
        e->type = TRANSFER, e->channel = MOBILE, e->device = dev;
        e->amount = 250000 + (int64_t)below(r, 750000);
        e->cp = (int32_t)below(r, w->naccts);
        if (uniform(r) < 0.5) {
            t += 300000 + (int64_t)below(r, 1800000);
            if ((e = add(w, t, a, TXN_STREAM)) == NULL)
                return 0;
            e->type = PURCHASE, e->channel = ECOMMERCE, e->device = dev;
            e->amount = amount_minor(300 + uniform(r) * 1200);
            e->has_merchant = true, e->merchant = NORMAL_MERCHANTS; /* the online casino */
        }
        break;
    }
    default: { /* mule_cash_out */
        uint32_t mule = (uint32_t)below(r, w->naccts);
        if (mule == a)
            mule = (mule + 1) % w->naccts;
        int64_t all = 50000 + (int64_t)below(r, 950000);
        if ((e = add(w, t, a, TXN_STREAM)) == NULL)
            return 0;
        e->type = TRANSFER, e->channel = TRANSFER_RAIL, e->amount = all, e->cp = (int32_t)mule;
        e->bal_before = all, e->bal_after = 0;
        e->mule_mail = true;
        t += 300000 + (int64_t)below(r, 2400000);
        if ((e = add(w, t, mule, TXN_STREAM)) == NULL)
            return 0;
        e->type = CASH_OUT, e->channel = ATM, e->amount = all;
        if (uniform(r) < 0.5)
            at_city(e, risky_city());
        break;
    }
    }
    for (size_t i = before; i < w->n; i++)
        w->ev[i].scenario = which;
    return w->n - before;
}

static int
cmp_gev(const void *x, const void *y)
{
    const gev *a = x, *b = y;
    if (a->t != b->t)
        return a->t < b->t ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* ---- Output ------------------------------------------------------------- */

static void
iso_time(int64_t ms, char *buf, size_t size)
{
    vg_value v = {.kind = VG_V_TIME};
    v.u.num = (double)ms;
    vg_buf b = {0};
    vg_value_format(&v, false, 0, NULL, &b);
    snprintf(buf, size, "%s", b.data ? b.data : "");
    vg_buf_free(&b);
}

static const char *const type_names[] = {
    "", "PURCHASE", "PAYMENT", "TRANSFER", "CASH_OUT", "CASH_IN", "DEBIT", "WITHDRAWAL", "REFUND"};
static const char *const status_names[] = {"", "APPROVED", "DECLINED"};
static const char *const channel_names[] = {"",       "POS",    "ECOMMERCE",    "ATM",
                                            "MOBILE", "BRANCH", "TRANSFER_RAIL"};

static void
money(char *buf, size_t size, int64_t minor)
{
    snprintf(buf, size, "%s%lld.%02lld", minor < 0 ? "-" : "", (long long)llabs(minor) / 100,
             (long long)llabs(minor) % 100);
}

/* A transfer's payee email (attrs), or "". */
static const char *
payee_email(const gev *e, char *buf, size_t size)
{
    if (e->stream == EVENT_STREAM || e->type != TRANSFER || e->cp < 0)
        return "";
    snprintf(buf, size, e->mule_mail ? "cash%06d@mailinator.com" : "acct-%06d@mail.example", e->cp);
    return buf;
}

static void
write_csv(FILE *f, const gev *e, uint64_t id)
{
    char t[40], amt[32] = "", bb[32] = "", ba[32] = "", cp[32] = "", mail[64];
    iso_time(e->t, t, sizeof t);
    const city *c = &cities[e->city];
    if (e->stream == EVENT_STREAM) {
        fprintf(f,
                "e-%07llu,%s,event,acct-%06u,,,,,,,,,,,,,%s,%.4f,%.4f,dev-%06u,,%s,%s,%d,%s,%s,\n",
                (unsigned long long)id, t, e->acct, c->country, e->lat, e->lon, e->device,
                kinds[e->kind], e->success ? "true" : "false", e->scenario != 0,
                scenarios[e->scenario], agents[e->agent]);
        return;
    }
    money(amt, sizeof amt, e->amount);
    if (e->bal_before != INT64_MIN)
        money(bb, sizeof bb, e->bal_before);
    if (e->bal_after != INT64_MIN)
        money(ba, sizeof ba, e->bal_after);
    if (e->cp >= 0)
        snprintf(cp, sizeof cp, "acct-%06d", e->cp);
    fprintf(f,
            "t-%07llu,%s,txn,acct-%06u,card-%06u,%s,%s,%s,%s,EUR,%s,%s,%s,%s,%s,%s,%s,%.4f,"
            "%.4f,dev-%06u,,,,%d,%s,,%s\n",
            (unsigned long long)id, t, e->acct, e->acct, type_names[e->type],
            status_names[e->status], channel_names[e->channel], amt, bb, ba, cp,
            e->has_merchant ? merchants[e->merchant].id : "",
            e->has_merchant ? merchants[e->merchant].name : "",
            e->has_merchant ? merchants[e->merchant].category : "", c->country, e->lat, e->lon,
            e->device, e->scenario != 0, scenarios[e->scenario], payee_email(e, mail, sizeof mail));
}

static void
write_jsonl(FILE *f, const gev *e, uint64_t id)
{
    char t[40], amt[32];
    iso_time(e->t, t, sizeof t);
    const city *c = &cities[e->city];
    if (e->stream == EVENT_STREAM) {
        fprintf(f,
                "{\"stream\":\"event\",\"id\":\"e-%07llu\",\"time\":\"%s\",\"account_id\":"
                "\"acct-%06u\",\"kind\":\"%s\",\"success\":%s,\"device_id\":\"dev-%06u\","
                "\"country\":\"%s\",\"lat\":%.4f,\"lon\":%.4f,\"is_fraud\":%d,\"scenario\":\"%s\"",
                (unsigned long long)id, t, e->acct, kinds[e->kind], e->success ? "true" : "false",
                e->device, c->country, e->lat, e->lon, e->scenario != 0, scenarios[e->scenario]);
        if (e->agent)
            fprintf(f, ",\"attrs\":{\"user_agent\":\"%s\"}", agents[e->agent]);
        fputs("}\n", f);
        return;
    }
    money(amt, sizeof amt, e->amount);
    fprintf(f,
            "{\"id\":\"t-%07llu\",\"time\":\"%s\",\"account_id\":\"acct-%06u\",\"card_id\":"
            "\"card-%06u\",\"type\":\"%s\",\"status\":\"%s\",\"channel\":\"%s\",\"amount\":\"%s\","
            "\"currency\":\"EUR\"",
            (unsigned long long)id, t, e->acct, e->acct, type_names[e->type],
            status_names[e->status], channel_names[e->channel], amt);
    if (e->bal_before != INT64_MIN) {
        char bb[32], ba[32];
        money(bb, sizeof bb, e->bal_before);
        money(ba, sizeof ba, e->bal_after);
        fprintf(f, ",\"balance_before\":\"%s\",\"balance_after\":\"%s\"", bb, ba);
    }
    if (e->cp >= 0)
        fprintf(f, ",\"counterparty_id\":\"acct-%06d\"", e->cp);
    if (e->has_merchant)
        fprintf(f, ",\"merchant_id\":\"%s\",\"merchant_name\":\"%s\",\"category\":\"%s\"",
                merchants[e->merchant].id, merchants[e->merchant].name,
                merchants[e->merchant].category);
    fprintf(f,
            ",\"country\":\"%s\",\"lat\":%.4f,\"lon\":%.4f,\"device_id\":\"dev-%06u\","
            "\"is_fraud\":%d,\"scenario\":\"%s\"",
            c->country, e->lat, e->lon, e->device, e->scenario != 0, scenarios[e->scenario]);
    char mail[64];
    if (*payee_email(e, mail, sizeof mail))
        fprintf(f, ",\"attrs\":{\"payee_email\":\"%s\"}", mail);
    fputs("}\n", f);
}

static void
set_str(vg_event *ev, const vg_schema *sc, const char *name, const char *s)
{
    const vg_field *f = vg_schema_field(sc, ev->stream, name, strlen(name));
    if (f == NULL || s == NULL || s[0] == '\0')
        return;
    ev->v[f->slot].kind = VG_V_STR;
    ev->v[f->slot].u.s = s;
    ev->v[f->slot].len = (uint32_t)strlen(s);
}

static void
set_num(vg_event *ev, const vg_schema *sc, const char *name, uint8_t kind, double v)
{
    const vg_field *f = vg_schema_field(sc, ev->stream, name, strlen(name));
    if (f == NULL)
        return;
    ev->v[f->slot].kind = kind;
    ev->v[f->slot].u.num = v;
}

static vg_err
write_pb(FILE *f, const vg_schema *sc, const gev *e, uint64_t id, vg_buf *out)
{
    vg_event ev;
    vg_event_clear(&ev, e->stream == EVENT_STREAM ? VG_STREAM_EVENT : VG_STREAM_TXN);
    char sid[32], acct[32], card[32], dev[32], cp[32];
    snprintf(sid, sizeof sid, "%s-%07llu", e->stream == EVENT_STREAM ? "e" : "t",
             (unsigned long long)id);
    snprintf(acct, sizeof acct, "acct-%06u", e->acct);
    snprintf(card, sizeof card, "card-%06u", e->acct);
    snprintf(dev, sizeof dev, "dev-%06u", e->device);
    set_str(&ev, sc, "id", sid);
    set_num(&ev, sc, "time", VG_V_TIME, (double)e->t);
    set_str(&ev, sc, "account_id", acct);
    set_str(&ev, sc, "device_id", dev);
    set_str(&ev, sc, "country", cities[e->city].country);
    set_num(&ev, sc, "lat", VG_V_NUM, as_text(e->lat));
    set_num(&ev, sc, "lon", VG_V_NUM, as_text(e->lon));
    if (e->stream == EVENT_STREAM) {
        set_str(&ev, sc, "kind", kinds[e->kind]);
        set_num(&ev, sc, "success", VG_V_BOOL, e->success);
    } else {
        set_str(&ev, sc, "card_id", card);
        set_num(&ev, sc, "type", VG_V_ENUM, e->type);
        set_num(&ev, sc, "status", VG_V_ENUM, e->status);
        set_num(&ev, sc, "channel", VG_V_ENUM, e->channel);
        set_num(&ev, sc, "amount", VG_V_NUM, (double)e->amount / 100);
        set_str(&ev, sc, "currency", "EUR");
        if (e->bal_before != INT64_MIN) {
            set_num(&ev, sc, "balance_before", VG_V_NUM, (double)e->bal_before / 100);
            set_num(&ev, sc, "balance_after", VG_V_NUM, (double)e->bal_after / 100);
        }
        if (e->cp >= 0) {
            snprintf(cp, sizeof cp, "acct-%06d", e->cp);
            set_str(&ev, sc, "counterparty_id", cp);
        }
        if (e->has_merchant) {
            set_str(&ev, sc, "merchant_id", merchants[e->merchant].id);
            set_str(&ev, sc, "merchant_name", merchants[e->merchant].name);
            set_str(&ev, sc, "category", merchants[e->merchant].category);
        }
    }
    char mail[64];
    vg_attr at;
    if (e->agent)
        at = (vg_attr){"user_agent", agents[e->agent], 10, (uint32_t)strlen(agents[e->agent])};
    else if (*payee_email(e, mail, sizeof mail))
        at = (vg_attr){"payee_email", mail, 11, (uint32_t)strlen(mail)};
    if (e->agent || *payee_email(e, mail, sizeof mail)) {
        ev.attrs = &at;
        ev.nattrs = 1;
    }
    out->len = 0;
    vg_err err = vg_pb_encode(sc, &ev, out);
    if (err == VG_OK && fwrite(out->data, 1, out->len, f) != out->len)
        err = VG_EIO;
    return err;
}

int
cmd_gen(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"accounts", required_argument, NULL, 'a'}, {"events", required_argument, NULL, 'n'},
        {"seed", required_argument, NULL, 's'},     {"fraud-rate", required_argument, NULL, 'r'},
        {"format", required_argument, NULL, 'f'},   {"out", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    long long accounts = 1000, events = 100000;
    unsigned long long seed = 1;
    double rate = 0.01;
    const char *format = NULL, *outpath = NULL;
    int c;
    char *end;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+a:n:s:r:f:o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'a':
            accounts = strtoll(optarg, &end, 10);
            if (*end || accounts < 1 || accounts > 100000000)
                return cli_usage_error("gen", "--accounts takes a number from 1 to 100000000");
            break;
        case 'n':
            events = strtoll(optarg, &end, 10);
            if (*end || events < 1 || events > 1000000000)
                return cli_usage_error("gen", "--events takes a number from 1 to 1000000000");
            break;
        case 's':
            seed = strtoull(optarg, &end, 10);
            if (*end)
                return cli_usage_error("gen", "--seed takes a whole number");
            break;
        case 'r':
            rate = strtod(optarg, &end);
            if (*end || !(rate >= 0 && rate <= 0.5))
                return cli_usage_error("gen", "--fraud-rate takes a number from 0 to 0.5");
            break;
        case 'f': format = optarg; break;
        case 'o': outpath = optarg; break;
        case 'h': gen_usage(stdout); return VG_EXIT_OK;
        default:
            if (optopt && strchr("anrsfo", optopt))
                return cli_usage_error("gen", "option '%s' needs a value", argv[optind - 1]);
            return cli_usage_error("gen", "unrecognized option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_error("gen", "unexpected argument '%s'", argv[optind]);
    vg_format fmt = format                                  ? vg_format_parse(format)
                    : outpath && vg_format_of_path(outpath) ? vg_format_of_path(outpath)
                                                            : VG_FMT_CSV;
    if (fmt == VG_FMT_AUTO)
        return cli_usage_error("gen", "--format takes csv, jsonl or pb, not '%s'", format);

    world w = {.r = {seed * 0x2545F4914F6CDD1Dull + 1}, .naccts = (uint32_t)accounts};
    w.acct = calloc((size_t)accounts, sizeof(account));
    if (w.acct == NULL) {
        fprintf(stderr, "vigil gen: out of memory\n");
        return 1;
    }
    for (uint32_t i = 0; i < w.naccts; i++) {
        w.acct[i].city = (uint16_t)below(&w.r, VG_ARRAY_LEN(cities) - 6); /* most live in Europe */
        w.acct[i].mean = exp(3.0 + normal(&w.r) * 0.7);
        w.acct[i].balance = amount_minor(500 + exp(7 + normal(&w.r)));
    }
    w.start = 1714521600000LL; /* 2024-05-01T00:00:00Z */
    double per_day = 4.0 * (double)accounts;
    double days = (double)events / per_day;
    w.span = (int64_t)((days < 1 ? 1 : days) * 86400000.0);
    /* fraud first, then normal life to fill up to --events */
    size_t target_fraud = (size_t)((double)events * rate);
    size_t made = 0;
    while (made < target_fraud) {
        size_t n = scenario(&w, w.start + (int64_t)below(&w.r, (uint64_t)w.span),
                            (uint8_t)(1 + below(&w.r, 5)));
        if (n == 0)
            break;
        made += n;
    }
    if (w.oom) {
        fprintf(stderr, "vigil gen: out of memory\n");
        return 1;
    }
    /* normal events in time order per account, so balances run forward */
    size_t normal_n = (size_t)events > w.n ? (size_t)events - w.n : 0;
    int64_t *times = malloc((normal_n ? normal_n : 1) * sizeof(int64_t));
    if (times == NULL) {
        fprintf(stderr, "vigil gen: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < normal_n; i++)
        times[i] = daytime(&w.r, w.start, w.span);
    qsort(times, normal_n, sizeof(int64_t), cmp_i64);
    for (size_t i = 0; i < normal_n; i++) {
        size_t before = w.n;
        normal_txn(&w, times[i], (uint32_t)below(&w.r, w.naccts));
        if (w.n == before || w.oom) {
            fprintf(stderr, "vigil gen: out of memory\n");
            return 1;
        }
    }
    free(times);
    qsort(w.ev, w.n, sizeof(gev), cmp_gev);

    FILE *f = stdout;
    if (outpath != NULL && (f = fopen(outpath, fmt == VG_FMT_PB ? "wb" : "w")) == NULL) {
        fprintf(stderr, "vigil gen: can't write '%s': %m\n", outpath);
        return VG_EXIT_NOINPUT;
    }
    if (fmt == VG_FMT_CSV)
        fprintf(f, "id,time,stream,account_id,card_id,type,status,channel,amount,currency,"
                   "balance_before,balance_after,counterparty_id,merchant_id,merchant_name,"
                   "category,country,lat,lon,device_id,ip,kind,success,is_fraud,scenario,"
                   "attr.user_agent,attr.payee_email\n");
    bool tty = isatty(STDERR_FILENO);
    vg_buf pb = {0};
    size_t fraud = 0;
    for (size_t i = 0; i < w.n; i++) {
        if (fmt == VG_FMT_CSV)
            write_csv(f, &w.ev[i], i + 1);
        else if (fmt == VG_FMT_JSONL)
            write_jsonl(f, &w.ev[i], i + 1);
        else if (write_pb(f, vg_schema_default(), &w.ev[i], i + 1, &pb) != VG_OK)
            break;
        fraud += w.ev[i].scenario != 0;
        if (tty && (i & 0xFFFF) == 0 && w.n > 200000)
            fprintf(stderr, "\r  %zu of %zu events written", i, w.n);
    }
    vg_buf_free(&pb);
    if (tty && w.n > 200000)
        fprintf(stderr, "\r  %zu of %zu events written\n", w.n, w.n);
    int rc = VG_EXIT_OK;
    if (fflush(f) != 0 || ferror(f)) {
        fprintf(stderr, "vigil gen: writing failed: %m\n");
        rc = VG_EXIT_NOINPUT;
    }
    if (f != stdout)
        fclose(f);
    fprintf(stderr,
            "gen: %zu events (%zu in fraud scenarios) over %lld accounts, %.1f days, seed %llu\n",
            w.n, fraud, accounts, (double)w.span / 86400000.0, seed);
    free(w.ev);
    free(w.acct);
    return rc;
}
