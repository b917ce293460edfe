/*
 * value.c - printing and hashing values (vg_vm.h): the text of keys,
 * messages and alert JSON, and the hashes that distinct() and seen() compare.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vg_vm.h"

/* The shortest decimal that reads back as v: 181, 9.5, 0.1. */
static vg_err
format_number(double v, vg_buf *out)
{
    if (v == 0)
        return vg_buf_putc(out, '0');                  /* -0 prints as 0 */
    if (v == floor(v) && fabs(v) < 9007199254740992.0) /* 2^53: exact integers */
        return vg_buf_printf(out, "%lld", (long long)v);
    if (!isfinite(v))
        return vg_buf_puts(out, isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
    /* the fewest significant digits that read back as v ... */
    char buf[40];
    for (int prec = 0; prec <= 16; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    /* ... laid out as a plain decimal (2e-07 is 0.0000002), except far
     * from 1, where the exponent form is shorter (JSON reads both) */
    char *e = strchr(buf, 'e');
    int exp = atoi(e + 1);
    if (exp < -20 || exp > 20) {
        char *m = e; /* drop a trailing ".0" style mantissa tail: 1.0e+300 -> 1e+300 */
        while (m > buf && m[-1] == '0')
            m--;
        if (m > buf && m[-1] == '.')
            m--;
        return vg_buf_printf(out, "%.*s%s", (int)(m - buf), buf, e);
    }
    char digits[24];
    size_t nd = 0;
    for (const char *p = buf; p < e; p++)
        if (*p >= '0' && *p <= '9')
            digits[nd++] = *p;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    vg_err err = v < 0 ? vg_buf_putc(out, '-') : VG_OK;
    if (exp < 0) {
        err = err ? err : vg_buf_puts(out, "0.");
        for (int i = -1; i > exp && err == VG_OK; i--)
            err = vg_buf_putc(out, '0');
        return err ? err : vg_buf_append(out, digits, nd);
    }
    for (int i = 0; i <= exp && err == VG_OK; i++)
        err = vg_buf_putc(out, (size_t)i < nd ? digits[i] : '0');
    if (err == VG_OK && (size_t)exp + 1 < nd) {
        err = vg_buf_putc(out, '.');
        err = err ? err : vg_buf_append(out, digits + exp + 1, nd - (size_t)exp - 1);
    }
    return err;
}

/* 2024-05-01T12:00:00.000Z for Unix epoch ms. */
static vg_err
format_time(double ms, vg_buf *out)
{
    int64_t t = (int64_t)ms;
    int64_t secs = t / 1000, rem = t % 1000;
    if (rem < 0) {
        rem += 1000;
        secs -= 1;
    }
    time_t tt = (time_t)secs;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL)
        return format_number(ms, out);
    return vg_buf_printf(out, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)rem);
}

/* 1h30m, 2d, 500ms, 0s; a fraction of a millisecond is dropped. */
static vg_err
format_duration(double ms, vg_buf *out)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};
    int64_t v = (int64_t)ms;
    vg_err err = VG_OK;
    if (v == 0)
        return vg_buf_puts(out, "0s");
    if (v < 0) {
        err = vg_buf_putc(out, '-');
        v = -v;
    }
    for (size_t i = 0; i < VG_ARRAY_LEN(units) && err == VG_OK; i++) {
        if (v >= units[i].ms) {
            err = vg_buf_printf(out, "%lld%s", (long long)(v / units[i].ms), units[i].unit);
            v %= units[i].ms;
        }
    }
    return err;
}

vg_err
vg_value_format(const vg_value *v, bool money, unsigned digits, const vg_enum *en, vg_buf *out)
{
    switch ((vg_vkind)v->kind) {
    case VG_V_MISSING: return VG_OK;
    case VG_V_STR: return vg_buf_append(out, v->u.s, v->len);
    case VG_V_BOOL: return vg_buf_puts(out, v->u.num != 0 ? "true" : "false");
    case VG_V_TIME: return format_time(v->u.num, out);
    case VG_V_DUR: return format_duration(v->u.num, out);
    case VG_V_ENUM: {
        const char *name = en ? vg_enum_name_of(en, (int)v->u.num) : NULL;
        return name ? vg_buf_puts(out, name) : format_number(v->u.num, out);
    }
    case VG_V_NUM:
        if (money && isfinite(v->u.num))
            return vg_buf_printf(out, "%.*f", (int)digits, v->u.num);
        return format_number(v->u.num, out);
    }
    return VG_OK;
}

static uint64_t
mix64(uint64_t x)
{
    /* splitmix64's finaliser */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

uint64_t
vg_value_hash(const vg_value *v)
{
    if (v->kind == VG_V_STR) {
        uint64_t h = 1469598103934665603ull; /* FNV-1a */
        for (uint32_t i = 0; i < v->len; i++)
            h = (h ^ (unsigned char)v->u.s[i]) * 1099511628211ull;
        return mix64(h ^ 0x5354) | 1; /* never 0: 0 marks an empty slot */
    }
    double d = v->u.num == 0 ? 0 : v->u.num; /* -0 == 0 */
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    return mix64(bits) | 1;
}
