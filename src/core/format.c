/* format.c - any value as the q console prints it (qp_format).
 *
 * Three renderings, as q has them:
 *   - inline ("-3!" style): what an item looks like nested in a row:
 *     1i, `a`b, ,1, `long$(), (1;`a), `a`b!1 2, +`a`b!(1 2;3 4);
 *   - cell: an item inside a table or dict column: symbols bare, strings
 *     unquoted, no type suffix, nulls blank (q shows 0N as a blank cell);
 *   - console: the top level: atoms and vectors inline, general lists one
 *     item per line, dicts as "key| value" lines, tables with a header and
 *     dashes, keyed tables as "keys| values".
 * Choices where q's rules were not at hand are marked "choice:" below.
 * Lines wider than the console are cut to cols-2 characters plus "..", and
 * tables, dicts and lists longer than the console height (25, q's default
 * \c 25 80) show their first FORMAT_ROWS rows and then "..".
 */
#include "csv_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FORMAT_HEIGHT 25
/* Rows shown before "..": header, dashes, rows and ".." fill the console
 * height less q's prompt line and the next input line. */
#define FORMAT_ROWS (FORMAT_HEIGHT - 5)

/* ------------------------------------------------------------------ */
/* String builder                                                      */
/* ------------------------------------------------------------------ */

typedef struct sb {
    char *p;      /* malloc'd, NUL-terminated when ok */
    size_t n;     /* bytes used */
    size_t cap;   /* bytes allocated */
    int oom;      /* sticky: set once an allocation failed */
    int fixed;    /* p is the caller's buffer of cap bytes: never grown */
} sb;

static void sb_grow(sb *b, size_t more)
{
    if (b->oom || b->n + more + 1 <= b->cap) return;
    if (b->fixed) { b->oom = 1; return; }
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + more + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) { b->oom = 1; return; }
    b->p = p;
    b->cap = cap;
}

static void sb_putn(sb *b, const char *s, size_t n)
{
    sb_grow(b, n);
    if (b->oom) return;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_puts(sb *b, const char *s) { sb_putn(b, s, strlen(s)); }
static void sb_putc(sb *b, char c) { sb_putn(b, &c, 1); }

static void sb_pad(sb *b, size_t n)
{
    for (size_t i = 0; i < n; i++) sb_putc(b, ' ');
}

static void sb_printf(sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sb *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) { sb_putn(b, tmp, (size_t)n); return; }
    sb_grow(b, (size_t)n);
    if (b->oom) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)n;
}

/* ------------------------------------------------------------------ */
/* Atoms                                                               */
/* ------------------------------------------------------------------ */

/* Rendering modes for one item. */
enum { M_INLINE = 0,   /* with q's type suffix where q shows one */
       M_BARE = 1,     /* as an item inside a vector: no suffix */
       M_CELL = 2,     /* inside a table/dict column: no suffix, nulls blank */
       M_CSV = 3,      /* a cell, floats with round-trip digits */
       M_ISO = 4 };    /* a CSV cell as pandas reads it back (put_iso) */

static int64_t floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static void put_date(sb *b, int64_t days)
{
    int y, m, d;
    qp_ymd_from_days(days, &y, &m, &d);
    sb_printf(b, "%04d.%02d.%02d", y, m, d);
}

/* hh:mm:ss plus frac digits of the remainder (value in units of 10^-frac s). */
static void put_clock(sb *b, int64_t v, int frac, int secs)
{
    int64_t unit = 1;
    for (int i = 0; i < frac; i++) unit *= 10;
    if (v < 0) { sb_putc(b, '-'); v = -v; }
    int64_t s = v / unit, f = v % unit;
    if (secs) sb_printf(b, "%02lld:%02lld:%02lld", (long long)(s / 3600),
                        (long long)(s / 60 % 60), (long long)(s % 60));
    else sb_printf(b, "%02lld:%02lld", (long long)(s / 3600), (long long)(s / 60 % 60));
    if (frac) sb_printf(b, ".%0*lld", frac, (long long)f);
}

/* q's float text: \P 7 significant digits (%g's rules for the exponent). */
static void put_float(sb *b, double f, int prec)
{
    char tmp[40];
    snprintf(tmp, sizeof tmp, "%.*g", prec, f);
    sb_puts(b, tmp);
}

/* The shortest %g text that reads back as the same number. */
static void put_float_exact(sb *b, double f, bool single)
{
    char tmp[40];
    for (int prec = single ? 6 : 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, f);
        double back = strtod(tmp, NULL);
        if (single ? (float)back == (float)f : back == f) break;
    }
    sb_puts(b, tmp);
}

static bool integral_text(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != '-' && (s[i] < '0' || s[i] > '9')) return false;
    return n > 0;
}

/* Null or infinity text of item p of type t (absolute), or NULL. */
static const char *special(int t, const void *p)
{
    int64_t j;
    double f;
    switch (t) {
    case QP_SHORT: {
        int16_t h = *(const int16_t *)p;
        return h == QP_NULL_H ? "0N" : h == QP_INF_H ? "0W" : h == -QP_INF_H ? "-0W" : NULL;
    }
    case QP_INT: case QP_MONTH: case QP_DATE: case QP_MINUTE: case QP_SECOND: case QP_TIME: {
        int32_t i = *(const int32_t *)p;
        return i == QP_NULL_I ? "0N" : i == QP_INF_I ? "0W" : i == -QP_INF_I ? "-0W" : NULL;
    }
    case QP_LONG: case QP_TIMESTAMP: case QP_TIMESPAN:
        j = *(const int64_t *)p;
        return j == QP_NULL_J ? "0N" : j == QP_INF_J ? "0W" : j == -QP_INF_J ? "-0W" : NULL;
    case QP_REAL:
        f = *(const float *)p;
        return isnan(f) ? "0N" : isinf(f) ? (f > 0 ? "0W" : "-0W") : NULL;
    case QP_FLOAT:
        f = *(const double *)p;
        return isnan(f) ? "0n" : isinf(f) ? (f > 0 ? "0w" : "-0w") : NULL;
    case QP_DATETIME:
        f = *(const double *)p;
        return isnan(f) ? "0N" : isinf(f) ? (f > 0 ? "0W" : "-0W") : NULL;
    default:
        return NULL;
    }
}

/* Suffix q puts after an atom of type t (its type char), for nulls and
 * infinities of every type, and for ordinary values of the types below. */
static char type_char(int t)
{
    static const char c[] = " bg xhijefcspmdznuvt";
    return t > 0 && t < 20 ? c[t] : ' ';
}

static void put_guid(sb *b, const uint8_t *u)
{
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) sb_putc(b, '-');
        sb_printf(b, "%02x", u[i]);
    }
}

static void put_qchar(sb *b, char c)
{
    switch (c) {
    case '"': sb_puts(b, "\\\""); return;
    case '\\': sb_puts(b, "\\\\"); return;
    case '\n': sb_puts(b, "\\n"); return;
    case '\t': sb_puts(b, "\\t"); return;
    case '\r': sb_puts(b, "\\r"); return;
    }
    if ((unsigned char)c < 32 || c == 127) sb_printf(b, "\\%03o", (unsigned char)c);
    else sb_putc(b, c);
}

static void put_item(sb *b, int t, const void *p, int m);

/* A timestamp as ISO 8601, from nanoseconds since 2000.01.01, wide
 * enough for q's values and numpy's extremes alike. */
static void put_iso_timestamp(sb *b, __int128 ns)
{
    const __int128 day_ns = 86400000000000LL;
    __int128 day = ns / day_ns;
    if (ns % day_ns < 0) day--;
    int y, m, d;
    qp_ymd_from_days((int64_t)day, &y, &m, &d);
    sb_printf(b, "%04d-%02d-%02dT", y, m, d);
    put_clock(b, (int64_t)(ns - day * day_ns), 9, 1);
}

/* A timespan as an ISO 8601 duration, [-]PnDTnHnMn.nnnnnnnnnS, which
 * pd.to_timedelta reads exactly (it reads q's -1D02:03:04 as -1 day
 * plus 2 hours). */
static void put_iso_duration(sb *b, int64_t ns)
{
    uint64_t a = ns < 0 ? -(uint64_t)ns : (uint64_t)ns, s = a / 1000000000u;
    sb_printf(b, "%sP%lluDT%lluH%lluM%llu.%09lluS", ns < 0 ? "-" : "",
              (unsigned long long)(s / 86400), (unsigned long long)(s / 3600 % 24),
              (unsigned long long)(s / 60 % 60), (unsigned long long)(s % 60),
              (unsigned long long)(a % 1000000000u));
}

/* Item p of type t as format = iso writes it, chosen by the type (never by
 * the look of q's text) so pandas reads back the value: booleans
 * true/false, bytes decimal, integer infinities as the integers they are,
 * floats with a decimal point (3217000.0) and infinities inf/-inf, temporal types in ISO 8601 with +-0Wp as
 * numpy's largest/smallest datetime64[ns] (pandas' Timestamp.max/min, as a
 * Python function gets them), minutes as hh:mm:00. false where the text is
 * q's: nulls (blank), symbols, guids, chars, seconds, times, and the
 * infinities of month, date, datetime, minute, second and time (0W/-0W:
 * no pandas value holds them). */
static bool put_iso(sb *b, int t, const void *p)
{
    const char *sp = special(t, p);
    if (sp && (sp[1] == 'N' || sp[1] == 'n')) return false;
    int64_t j = 0;
    switch (t) {
    case QP_BOOL: sb_puts(b, *(const uint8_t *)p ? "true" : "false"); return true;
    case QP_BYTE: sb_printf(b, "%u", *(const uint8_t *)p); return true;
    case QP_SHORT: j = *(const int16_t *)p; break;
    case QP_INT: j = *(const int32_t *)p; break;
    case QP_LONG: j = *(const int64_t *)p; break;
    case QP_REAL: case QP_FLOAT: {
        if (sp) {
            sb_puts(b, sp[0] == '-' ? "-inf" : "inf");
            return true;
        }
        size_t at = b->n;        /* 3217000.0: read back as a float, not an int */
        put_float_exact(b, t == QP_REAL ? *(const float *)p : *(const double *)p, t == QP_REAL);
        if (!b->oom && integral_text(b->p + at, b->n - at)) sb_puts(b, ".0");
        return true;
    }
    case QP_TIMESTAMP:
        j = *(const int64_t *)p;
        put_iso_timestamp(b, j == QP_INF_J ? (__int128)INT64_MAX - QP_EPOCH_NANOS
                             : j == -QP_INF_J ? (__int128)(INT64_MIN + 1) - QP_EPOCH_NANOS : j);
        return true;
    case QP_TIMESPAN: put_iso_duration(b, *(const int64_t *)p); return true;
    case QP_MINUTE:
        if (sp) return false;
        put_clock(b, (int64_t)*(const int32_t *)p * 60, 0, 1);
        return true;
    case QP_MONTH: case QP_DATE: case QP_DATETIME: {
        if (sp) return false;
        size_t at = b->n;
        put_item(b, t, p, M_CSV);    /* yyyy.mm.dd... with dashes */
        for (size_t i = at; i < b->n && !b->oom && b->p[i] != 'T'; i++)
            if (b->p[i] == '.') b->p[i] = '-';
        return true;
    }
    default: return false;
    }
    sb_printf(b, "%lld", (long long)j);   /* short, int, long: also 0W, -0W */
    return true;
}

/* Item p of vector type t (1..19) in mode m. */
static void put_item(sb *b, int t, const void *p, int m)
{
    if (m == M_ISO) {
        if (put_iso(b, t, p)) return;
        m = M_CSV;
    }
    const char *sp = special(t, p);
    if (sp) {
        if (m >= M_CELL && (sp[1] == 'N' || sp[1] == 'n')) return;   /* null: blank */
        sb_puts(b, sp);
        /* 0n 0w for floats, 0N 0W for longs; others add their type char */
        if (m == M_INLINE && t != QP_FLOAT && t != QP_LONG) sb_putc(b, type_char(t));
        return;
    }
    switch (t) {
    case QP_BOOL:
        sb_putc(b, *(const uint8_t *)p ? '1' : '0');
        if (m == M_INLINE) sb_putc(b, 'b');
        return;
    case QP_GUID: put_guid(b, p); return;
    case QP_BYTE:
        sb_printf(b, m == M_INLINE ? "0x%02x" : "%02x", *(const uint8_t *)p);
        return;
    case QP_SHORT:
        sb_printf(b, "%d", *(const int16_t *)p);
        if (m == M_INLINE) sb_putc(b, 'h');
        return;
    case QP_INT:
        sb_printf(b, "%d", *(const int32_t *)p);
        if (m == M_INLINE) sb_putc(b, 'i');
        return;
    case QP_LONG: sb_printf(b, "%lld", (long long)*(const int64_t *)p); return;
    case QP_REAL:
        if (m == M_CSV) { put_float_exact(b, *(const float *)p, true); return; }
        put_float(b, *(const float *)p, 7);
        if (m == M_INLINE) sb_putc(b, 'e');
        return;
    case QP_FLOAT: {
        if (m == M_CSV) { put_float_exact(b, *(const double *)p, false); return; }
        size_t at = b->n;
        put_float(b, *(const double *)p, 7);
        if (m == M_INLINE && !b->oom && integral_text(b->p + at, b->n - at)) sb_putc(b, 'f');
        return;
    }
    case QP_CHAR:
        if (m >= M_CELL) { sb_putc(b, *(const char *)p); return; }
        if (m == M_INLINE) sb_putc(b, '"');
        put_qchar(b, *(const char *)p);
        if (m == M_INLINE) sb_putc(b, '"');
        return;
    case QP_SYMBOL:
        if (m < M_CELL) sb_putc(b, '`');
        sb_puts(b, *(const char *const *)p);
        return;
    case QP_TIMESTAMP: {
        int64_t ns = *(const int64_t *)p, day = floordiv(ns, 86400000000000LL);
        put_date(b, day);
        sb_putc(b, 'D');
        put_clock(b, ns - day * 86400000000000LL, 9, 1);
        return;
    }
    case QP_MONTH: {
        int32_t mo = *(const int32_t *)p;
        int64_t y = floordiv(mo, 12);
        sb_printf(b, "%04lld.%02lld", (long long)(2000 + y), (long long)(mo - y * 12 + 1));
        if (m == M_INLINE) sb_putc(b, 'm');
        return;
    }
    case QP_DATE: put_date(b, *(const int32_t *)p); return;
    case QP_DATETIME: {
        double z = *(const double *)p;
        int64_t ms = llround(z * 86400000.0), day = floordiv(ms, 86400000);
        put_date(b, day);
        sb_putc(b, 'T');
        put_clock(b, ms - day * 86400000, 3, 1);
        return;
    }
    case QP_TIMESPAN: {
        int64_t ns = *(const int64_t *)p;
        if (ns < 0) { sb_putc(b, '-'); ns = -ns; }
        sb_printf(b, "%lldD", (long long)(ns / 86400000000000LL));
        put_clock(b, ns % 86400000000000LL, 9, 1);
        return;
    }
    case QP_MINUTE: put_clock(b, (int64_t)*(const int32_t *)p * 60, 0, 0); return;
    case QP_SECOND: put_clock(b, *(const int32_t *)p, 0, 1); return;
    case QP_TIME: put_clock(b, *(const int32_t *)p, 3, 1); return;
    }
}

/* ------------------------------------------------------------------ */
/* Inline rendering                                                    */
/* ------------------------------------------------------------------ */

static void put_inline(sb *b, const qp_value *x, int depth);

/* Lambda text: the wire bytes are the context name (NUL-terminated) then
 * a char vector (type 10, attribute, 4-byte count, text). */
static bool lambda_text(const qp_value *x, const char **s, size_t *n)
{
    const uint8_t *p = x->v.data;
    size_t len = (size_t)x->v.n;
    const uint8_t *z = memchr(p, 0, len);
    if (!z || (size_t)(z - p) + 7 > len || z[1] != QP_CHAR) return false;
    uint32_t cnt;
    memcpy(&cnt, z + 3, 4);
    if (cnt > len - (size_t)(z - p) - 7) return false;
    *s = (const char *)z + 7;
    *n = cnt;
    return true;
}

static void put_func(sb *b, const qp_value *x)
{
    const char *s;
    size_t n;
    if (x->type == QP_LAMBDA && lambda_text(x, &s, &n)) { sb_putn(b, s, n); return; }
    if (x->type == QP_UNARY && x->v.n == 1 && ((uint8_t *)x->v.data)[0] == 0) {
        sb_puts(b, "::");
        return;
    }
    /* choice: q prints primitives and derived functions as their source
     * (+, f', {x+y}[1]); we keep them as opaque bytes, so we show the kind. */
    sb_printf(b, "<%s>", qp_type_name(x->type));
}

static void put_vector_inline(sb *b, const qp_value *x)
{
    int t = x->type;
    int64_t n = x->v.n;
    size_t w = qp_type_width(t);
    const uint8_t *d = x->v.data;
    if (n == 0) {
        if (t == QP_CHAR) sb_puts(b, "\"\"");
        else sb_printf(b, "`%s$()", qp_type_name(t));
        return;
    }
    if (n == 1) {
        sb_putc(b, ',');
        put_item(b, t, d, M_INLINE);
        return;
    }
    switch (t) {
    case QP_BOOL:
        for (int64_t i = 0; i < n; i++) sb_putc(b, d[i] ? '1' : '0');
        sb_putc(b, 'b');
        return;
    case QP_BYTE:
        sb_puts(b, "0x");
        for (int64_t i = 0; i < n; i++) sb_printf(b, "%02x", d[i]);
        return;
    case QP_CHAR:
        sb_putc(b, '"');
        for (int64_t i = 0; i < n; i++) put_qchar(b, (char)d[i]);
        sb_putc(b, '"');
        return;
    case QP_SYMBOL:
        for (int64_t i = 0; i < n; i++) put_item(b, t, d + i * w, M_BARE);
        return;
    }
    size_t at = b->n;
    bool all_null = true;
    for (int64_t i = 0; i < n; i++) {
        if (i) sb_putc(b, ' ');
        const char *sp = special(t, d + i * w);
        if (!sp || sp[1] != 'N') all_null = false;
        put_item(b, t, d + i * w, M_BARE);
    }
    switch (t) {
    case QP_SHORT: case QP_INT: case QP_REAL: case QP_MONTH:
        sb_putc(b, type_char(t));
        break;
    case QP_FLOAT: {
        /* "1 2 3f" only when nothing else tells a float apart */
        bool plain = true;
        for (size_t i = at; plain && !b->oom && i < b->n; i++)
            if (b->p[i] != ' ' && b->p[i] != '-' && (b->p[i] < '0' || b->p[i] > '9')) plain = false;
        if (plain) sb_putc(b, 'f');
        break;
    }
    default:
        /* choice: a temporal vector of nulls only gets its type char, as
         * the items alone ("0N 0N") would read as longs. */
        if (all_null && t != QP_LONG && t != QP_GUID) sb_putc(b, type_char(t));
    }
}

static void put_list_inline(sb *b, const qp_value *x, int depth)
{
    int64_t n = x->v.n;
    if (n == 0) { sb_puts(b, "()"); return; }
    if (n == 1) { sb_putc(b, ','); put_inline(b, qp_K(x)[0], depth + 1); return; }
    sb_putc(b, '(');
    for (int64_t i = 0; i < n; i++) {
        if (i) sb_putc(b, ';');
        put_inline(b, qp_K(x)[i], depth + 1);
    }
    sb_putc(b, ')');
}

/* Parenthesise dicts and tables that sit on the left of '!'. */
static void put_inline_operand(sb *b, const qp_value *x, int depth)
{
    bool paren = qp_is_dict(x) || x->type == QP_TABLE;
    if (paren) sb_putc(b, '(');
    put_inline(b, x, depth);
    if (paren) sb_putc(b, ')');
}

static void put_inline(sb *b, const qp_value *x, int depth)
{
    if (depth > 64) { sb_puts(b, ".."); return; }
    if (x->type == QP_ERROR) { sb_putc(b, '\''); sb_puts(b, x->s ? x->s : ""); return; }
    if (qp_is_atom(x)) {
        int t = -x->type;
        if (t >= 1 && t <= 19) put_item(b, t, &x->g, M_INLINE);
        else sb_printf(b, "<%s>", qp_type_name(x->type));
        return;
    }
    if (qp_is_vector(x)) { put_vector_inline(b, x); return; }
    if (x->type == QP_ENUM) {    /* shown as the symbols it stands for */
        qp_value *r = qp_enum_resolve(x);
        if (r) put_vector_inline(b, r);
        else b->oom = 1;
        qp_unref(r);
        return;
    }
    if (x->type == QP_LIST) { put_list_inline(b, x, depth); return; }
    if (qp_is_dict(x)) {
        if (x->type == QP_SORTED_DICT) sb_puts(b, "`s#");
        put_inline_operand(b, qp_dict_keys(x), depth + 1);
        sb_putc(b, '!');
        put_inline(b, qp_dict_values(x), depth + 1);
        return;
    }
    if (x->type == QP_TABLE) { sb_putc(b, '+'); put_inline(b, qp_table_dict(x), depth + 1); return; }
    if (qp_is_func(x)) { put_func(b, x); return; }
    sb_printf(b, "<%s>", qp_type_name(x->type));
}

/* Item i of a column as a table or dict cell. */
static void put_cell(sb *b, const qp_value *col, int64_t i)
{
    if (col->type == QP_ENUM) {
        const char *s = qp_enum_sym(col, i);
        put_item(b, QP_SYMBOL, &s, M_CELL);
        return;
    }
    if (qp_is_vector(col)) {
        put_item(b, col->type, (const uint8_t *)col->v.data + (size_t)i * qp_type_width(col->type), M_CELL);
        return;
    }
    if (col->type != QP_LIST) return;
    const qp_value *x = qp_K(col)[i];
    if (x->type == QP_CHAR) { sb_putn(b, x->v.data, (size_t)x->v.n); return; }   /* strings bare */
    put_inline(b, x, 1);
}

/* ------------------------------------------------------------------ */
/* Columns: tables, keyed tables and dicts                             */
/* ------------------------------------------------------------------ */

/* Renders rows [0, rows) of each column into cells; widths[c] gets the
 * widest (header included). cells[c * rows + r] are offsets into b. */
typedef struct grid {
    sb text;          /* every cell's text, NUL-separated */
    size_t *off;      /* cell start offsets, column-major */
    size_t *width;    /* per column */
    int64_t rows;
    int64_t ncols;
} grid;

static void grid_free(grid *g)
{
    free(g->text.p);
    free(g->off);
    free(g->width);
}

/* cols: the columns; names: header texts (may be NULL for no header). */
static int grid_fill(grid *g, const qp_value *const *cols, int64_t ncols,
                     const char *const *names, int64_t rows)
{
    memset(g, 0, sizeof *g);
    g->rows = rows;
    g->ncols = ncols;
    g->off = malloc(sizeof(size_t) * (size_t)(ncols * rows + 1));
    g->width = calloc((size_t)ncols + 1, sizeof(size_t));
    if (!g->off || !g->width) return QP_ENOMEM;
    for (int64_t c = 0; c < ncols; c++) {
        if (names) g->width[c] = strlen(names[c]);
        for (int64_t r = 0; r < rows; r++) {
            size_t at = g->text.n;
            put_cell(&g->text, cols[c], r);
            size_t w = g->text.n - at;
            sb_putc(&g->text, 0);
            g->off[c * rows + r] = at;
            if (w > g->width[c]) g->width[c] = w;
        }
    }
    return g->text.oom ? QP_ENOMEM : 0;
}

static const char *grid_cell(const grid *g, int64_t c, int64_t r)
{
    return g->text.p ? g->text.p + g->off[c * g->rows + r] : "";
}

/* One row of cells [c0, c1) padded to their widths, space-separated. */
static void grid_row(sb *b, const grid *g, int64_t c0, int64_t c1, int64_t r,
                     const char *const *names)
{
    for (int64_t c = c0; c < c1; c++) {
        if (c > c0) sb_putc(b, ' ');
        const char *s = names ? names[c] : grid_cell(g, c, r);
        sb_puts(b, s);
        sb_pad(b, g->width[c] - strlen(s));
    }
}

static size_t grid_span(const grid *g, int64_t c0, int64_t c1)
{
    size_t w = 0;
    for (int64_t c = c0; c < c1; c++) w += g->width[c] + (c > c0);
    return w;
}

static void put_dashes(sb *b, size_t n)
{
    for (size_t i = 0; i < n; i++) sb_putc(b, '-');
}

/* A table, or a keyed table when nkey > 0 (the first nkey columns are keys). */
static void put_columns(sb *b, const qp_value *const *cols, const char *const *names,
                        int64_t ncols, int64_t nkey, int64_t count)
{
    int64_t rows = count > FORMAT_HEIGHT - 4 ? FORMAT_ROWS : count;
    grid g;
    if (grid_fill(&g, cols, ncols, names, rows) < 0) { b->oom = 1; grid_free(&g); return; }
    for (int64_t r = -2; r < rows; r++) {
        if (r == -1) {
            if (nkey) { put_dashes(b, grid_span(&g, 0, nkey)); sb_puts(b, "| "); }
            put_dashes(b, grid_span(&g, nkey, ncols));
        } else {
            if (nkey) { grid_row(b, &g, 0, nkey, r, r < 0 ? names : NULL); sb_puts(b, "| "); }
            grid_row(b, &g, nkey, ncols, r, r < 0 ? names : NULL);
        }
        sb_putc(b, '\n');
    }
    if (rows < count) sb_puts(b, "..\n");
    grid_free(&g);
}

static void put_table(sb *b, const qp_value *t)
{
    qp_value *names = qp_table_names(t), *cols = qp_table_columns(t);
    put_columns(b, (const qp_value *const *)cols->v.data, qp_S(names), cols->v.n, 0, qp_count(t));
}

static void put_keyed(sb *b, const qp_value *kt)
{
    const qp_value *k = qp_dict_keys(kt), *v = qp_dict_values(kt);
    int64_t nk = qp_table_columns(k)->v.n, nv = qp_table_columns(v)->v.n;
    const qp_value **cols = malloc(sizeof *cols * (size_t)(nk + nv + 1));
    const char **names = malloc(sizeof *names * (size_t)(nk + nv + 1));
    if (!cols || !names) { b->oom = 1; goto done; }
    for (int64_t i = 0; i < nk; i++) {
        cols[i] = qp_K(qp_table_columns(k))[i];
        names[i] = qp_S(qp_table_names(k))[i];
    }
    for (int64_t i = 0; i < nv; i++) {
        cols[nk + i] = qp_K(qp_table_columns(v))[i];
        names[nk + i] = qp_S(qp_table_names(v))[i];
    }
    put_columns(b, cols, names, nk + nv, nk, qp_count(k));
done:
    free(cols);
    free(names);
}

static void put_dict(sb *b, const qp_value *d)
{
    const qp_value *k = qp_dict_keys(d), *v = qp_dict_values(d);
    int64_t n = qp_count(k);
    if (!(qp_is_vector(k) || k->type == QP_LIST || k->type == QP_ENUM) ||
        !(qp_is_vector(v) || v->type == QP_LIST || v->type == QP_ENUM) || qp_count(v) != n) {
        put_inline(b, d, 0);       /* odd shapes: the inline form */
        sb_putc(b, '\n');
        return;
    }
    int64_t rows = n > FORMAT_HEIGHT - 2 ? FORMAT_ROWS : n;
    grid g;
    const qp_value *cols[1] = {k};
    if (grid_fill(&g, cols, 1, NULL, rows) < 0) { b->oom = 1; grid_free(&g); return; }
    for (int64_t r = 0; r < rows; r++) {
        grid_row(b, &g, 0, 1, r, NULL);
        sb_puts(b, "| ");
        if (v->type == QP_LIST) put_inline(b, qp_K(v)[r], 1);   /* (1 2;`x): inline */
        else put_cell(b, v, r);
        sb_putc(b, '\n');
    }
    if (rows < n) sb_puts(b, "..\n");
    grid_free(&g);
}

static void put_console(sb *b, const qp_value *x)
{
    if (x->type == QP_TABLE) { put_table(b, x); return; }
    if (qp_is_keyed_table(x)) { put_keyed(b, x); return; }
    if (qp_is_dict(x)) { put_dict(b, x); return; }
    if (x->type == QP_LIST && x->v.n > 0) {
        int64_t n = x->v.n, rows = n > FORMAT_HEIGHT - 2 ? FORMAT_ROWS : n;
        for (int64_t i = 0; i < rows; i++) {
            put_inline(b, qp_K(x)[i], 1);
            sb_putc(b, '\n');
        }
        if (rows < n) sb_puts(b, "..\n");
        return;
    }
    /* q prints nothing for (::) at the top level */
    if (x->type == QP_UNARY && x->v.n == 1 && ((uint8_t *)x->v.data)[0] == 0) return;
    put_inline(b, x, 0);
    sb_putc(b, '\n');
}

/* Cuts every line wider than cols to cols-2 characters plus "..", as q. */
static char *clip_lines(sb *in, int cols)
{
    sb out = {0};
    const char *p = in->p ? in->p : "";
    const char *end = p + in->n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (len > (size_t)cols) {
            sb_putn(&out, p, (size_t)cols - 2);
            sb_puts(&out, "..");
        } else {
            sb_putn(&out, p, len);
        }
        if (nl) sb_putc(&out, '\n');
        p += len + (nl != NULL);
    }
    if (!out.p) sb_grow(&out, 0);
    if (out.oom) { free(out.p); return NULL; }
    out.p[out.n] = 0;
    return out.p;
}

int qp__format_cell(char *dst, size_t cap, int t, const void *p)
{
    return qp__format_csv_cell(dst, cap, t, p, false);
}

int qp__format_csv_cell(char *dst, size_t cap, int t, const void *p, bool iso)
{
    sb b = {.p = dst, .cap = cap, .fixed = 1};
    if (cap) dst[0] = 0;
    put_item(&b, t, p, iso ? M_ISO : M_CSV);
    return b.oom ? -1 : (int)b.n;
}

char *qp_format(const qp_value *x, int cols)
{
    if (cols <= 0) cols = 80;
    if (cols < 4) cols = 4;
    sb b = {0};
    if (x) put_console(&b, x);
    else sb_puts(&b, "::\n");
    if (b.oom) { free(b.p); return NULL; }
    char *s = clip_lines(&b, cols);
    free(b.p);
    return s;
}

void qp_format_line(const qp_value *x, char *buf, size_t n)
{
    char *s = qp_format(x, 1 << 20);
    snprintf(buf, n, "%.*s", s ? (int)strcspn(s, "\n") : 1, s ? s : "?");
    free(s);
}

/* ------------------------------------------------------------------ */
/* meta                                                                */
/* ------------------------------------------------------------------ */

static qp_value *sym_names(int n, ...)
{
    qp_value *v = qp_vector(QP_SYMBOL, n);
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        const char *s = va_arg(ap, const char *);
        if (v) qp_S(v)[i] = qp_sym_intern(s, strlen(s));
    }
    va_end(ap);
    return v;
}

qp_value *qp_meta_table(qp_value *c, qp_value *t, qp_value *f, qp_value *a)
{
    qp_value *kn = sym_names(1, "c"), *vn = sym_names(3, "t", "f", "a");
    if (!c || !t || !f || !a || !kn || !vn) {
        qp_unref(c); qp_unref(t); qp_unref(f); qp_unref(a); qp_unref(kn); qp_unref(vn);
        return NULL;
    }
    qp_value *kt = qp_table(qp_dict(kn, qp_list(1, c)));
    qp_value *vt = qp_table(qp_dict(vn, qp_list(3, t, f, a)));
    qp_value *r = kt && vt ? qp_dict(kt, vt) : NULL;
    if (!r) { qp_unref(kt); qp_unref(vt); }
    return r;
}
