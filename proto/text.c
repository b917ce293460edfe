/*
 * text.c - values from text (vg_text.h).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "vg_text.h"

static void
trim(const char **s, size_t *len)
{
    while (*len > 0 && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t' || (*s)[*len - 1] == '\r'))
        (*len)--;
}

bool
vg_parse_number(const char *s, size_t len, double *out)
{
    trim(&s, &len);
    char buf[64];
    if (len == 0 || len >= sizeof buf)
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    /* strtod takes hex, inf and nan too: only decimal notation is a number here */
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (!((c >= '0' && c <= '9') || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E'))
            return false;
    }
    char *end;
    double d = strtod(buf, &end);
    if (end != buf + len || !isfinite(d))
        return false;
    *out = d;
    return true;
}

bool
vg_parse_money(const char *s, size_t len, unsigned digits, int64_t *minor, const char **why)
{
    trim(&s, &len);
    *why = NULL;
    size_t i = 0;
    bool neg = false;
    if (i < len && (s[i] == '-' || s[i] == '+'))
        neg = s[i++] == '-';
    int64_t mant = 0;
    int exp10 = 0, ndig = 0;
    bool any = false, dot = false;
    for (; i < len; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9') {
            any = true;
            if (mant > (INT64_MAX - 9) / 10) {
                if (!dot)
                    exp10++; /* drop digits beyond what int64 holds: only zeros are exact */
                if (c != '0') {
                    *why = "the amount has too many digits";
                    return false;
                }
                continue;
            }
            mant = mant * 10 + (c - '0');
            ndig++;
            if (dot)
                exp10--;
        } else if (c == '.' && !dot) {
            dot = true;
        } else {
            break;
        }
    }
    if (!any)
        return false;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        bool eneg = false;
        if (i < len && (s[i] == '-' || s[i] == '+'))
            eneg = s[i++] == '-';
        int e = 0;
        bool edig = false;
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
            edig = true;
            if (e < 1000)
                e = e * 10 + (s[i] - '0');
        }
        if (!edig)
            return false;
        exp10 += eneg ? -e : e;
    }
    if (i != len)
        return false;
    /* value = mant * 10^exp10; minor = value * 10^digits */
    int shift = exp10 + (int)digits;
    while (shift < 0) {
        if (mant % 10 != 0) {
            *why = "the amount has more decimals than its currency allows";
            return false;
        }
        mant /= 10;
        shift++;
    }
    while (shift > 0) {
        if (mant > INT64_MAX / 10) {
            *why = "the amount is too large";
            return false;
        }
        mant *= 10;
        shift--;
    }
    *minor = neg ? -mant : mant;
    return true;
}

int64_t
vg_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    /* Howard Hinnant's days_from_civil */
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* n digits at s[*i] as an integer; false when they are not all digits. */
static bool
digits(const char *s, size_t len, size_t *i, int n, int *out)
{
    int v = 0;
    for (int k = 0; k < n; k++, (*i)++) {
        if (*i >= len || s[*i] < '0' || s[*i] > '9')
            return false;
        v = v * 10 + (s[*i] - '0');
    }
    *out = v;
    return true;
}

bool
vg_parse_time(const char *s, size_t len, int64_t *ms)
{
    trim(&s, &len);
    if (len == 0)
        return false;
    /* epoch milliseconds */
    size_t i = 0;
    if (s[0] == '-')
        i++;
    while (i < len && s[i] >= '0' && s[i] <= '9')
        i++;
    if (i == len && i > (s[0] == '-' ? 1u : 0u)) {
        if (len > 18)
            return false;
        char num[20]; /* the cell only: cells are stored back to back */
        memcpy(num, s, len);
        num[len] = '\0';
        *ms = strtoll(num, NULL, 10);
        return true;
    }
    /* ISO 8601 */
    i = 0;
    int y, mo, d, h = 0, mi = 0, sec = 0, frac = 0;
    if (!digits(s, len, &i, 4, &y) || i >= len || s[i++] != '-' || !digits(s, len, &i, 2, &mo) ||
        i >= len || s[i++] != '-' || !digits(s, len, &i, 2, &d))
        return false;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap))
        return false; /* 2024-02-30 is no date */
    int64_t offset_min = 0;
    if (i < len && (s[i] == 'T' || s[i] == 't' || s[i] == ' ')) {
        i++;
        if (!digits(s, len, &i, 2, &h) || i >= len || s[i++] != ':' || !digits(s, len, &i, 2, &mi))
            return false;
        if (i < len && s[i] == ':') {
            i++;
            if (!digits(s, len, &i, 2, &sec))
                return false;
            if (i < len && (s[i] == '.' || s[i] == ',')) {
                i++;
                int n = 0;
                while (i < len && s[i] >= '0' && s[i] <= '9') {
                    if (n < 3)
                        frac = frac * 10 + (s[i] - '0');
                    n++;
                    i++;
                }
                if (n == 0)
                    return false;
                for (; n < 3; n++)
                    frac *= 10;
            }
        }
        if (h > 23 || mi > 59 || sec > 60)
            return false;
        if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
            i++;
        } else if (i < len && (s[i] == '+' || s[i] == '-')) {
            int sign = s[i++] == '-' ? -1 : 1, oh, om = 0;
            if (!digits(s, len, &i, 2, &oh))
                return false;
            if (i < len && s[i] == ':')
                i++;
            if (i < len && !digits(s, len, &i, 2, &om))
                return false;
            offset_min = sign * (oh * 60 + om);
        }
    }
    if (i != len)
        return false;
    int64_t days = vg_days_from_civil(y, (unsigned)mo, (unsigned)d);
    int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    *ms = secs * 1000 + frac;
    return true;
}

bool
vg_parse_bool(const char *s, size_t len, bool *out)
{
    trim(&s, &len);
    static const char *const yes[] = {"true", "1", "yes"};
    static const char *const no[] = {"false", "0", "no"};
    for (size_t k = 0; k < 3; k++) {
        if (strlen(yes[k]) == len && strncasecmp(s, yes[k], len) == 0) {
            *out = true;
            return true;
        }
        if (strlen(no[k]) == len && strncasecmp(s, no[k], len) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

bool
vg_parse_enum(const vg_enum *e, const char *s, size_t len, int *out)
{
    trim(&s, &len);
    if (vg_enum_lookup(e, s, len, out))
        return true;
    for (size_t i = 0; i < vg_enum_count(e); i++) {
        const char *name = vg_enum_value_name(e, i);
        if (strlen(name) == len && strncasecmp(name, s, len) == 0)
            return vg_enum_lookup(e, name, len, out);
    }
    return false;
}
