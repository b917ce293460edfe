/*
 * vg_text.h - reading values from text, the way every input format and map
 * file does (SPEC §4): numbers with E notation, money in major units exact to
 * the currency's digits, times as epoch milliseconds or ISO 8601, enums by
 * name. Each parser returns false, leaving its output alone, when the text is
 * not a value of its kind; the callers say which column and what was meant.
 */
#ifndef VG_TEXT_H
#define VG_TEXT_H

#include "vg_base.h"
#include "vg_schema.h"

/* A decimal number: 12, -3.5, 1.92E+07 (white space around is allowed). */
bool vg_parse_number(const char *s, size_t len, double *out);

/* Money in major units to exact minor units of a currency with `digits`
 * decimals: "9839.64" (2) -> 983964, "1.92E+07" -> 1920000000. *why says
 * "too many decimals" when the text has more than the currency allows. */
bool vg_parse_money(const char *s, size_t len, unsigned digits, int64_t *minor, const char **why);

/* A time: epoch milliseconds (an integer), or ISO 8601 with `T` or a space
 * between date and time, optional seconds and fraction, and an optional `Z`
 * or +hh:mm / -hh:mm offset (UTC when there is none); a date alone is its
 * midnight, UTC. */
bool vg_parse_time(const char *s, size_t len, int64_t *ms);

/* true/false, 1/0, yes/no, any case. */
bool vg_parse_bool(const char *s, size_t len, bool *out);

/* An enum value by name (any case). */
bool vg_parse_enum(const vg_enum *e, const char *s, size_t len, int *out);

/* Days since 1970-01-01 of a proleptic Gregorian date. */
int64_t vg_days_from_civil(int64_t y, unsigned m, unsigned d);

#endif
