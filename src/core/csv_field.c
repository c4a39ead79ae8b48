/* csv_field.c - text to q items: the field parsers of the CSV loader.
 *
 * Each parser takes the bytes of one field (not NUL-terminated, never
 * empty: the loader turns empty fields into nulls itself) and returns 0
 * with the item stored, or -1 when the text is not of that type. They are
 * hand-written because strtol/strtod per field dominate a CSV load:
 * integers are exact, floats take Clinger's fast path (a mantissa of at
 * most 2^53 and a power of ten of at most 10^22 are both exact doubles, so
 * one multiplication or division rounds correctly) and fall back to strtod
 * otherwise, so every float is correctly rounded.
 */
#include "csv_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static inline unsigned digit(char c) { return (unsigned)(c - '0'); }

static bool ieq(const char *s, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    if (n != m) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c + 32);
        if (c != lit[i]) return false;
    }
    return true;
}

/* q's 0N / 0W / -0W (and 0n 0w -0w): 0 null, 1 inf, -1 -inf, 2 none. */
int qp__csv_special(const char *s, size_t n)
{
    if (n == 2 && s[0] == '0') {
        if (s[1] == 'N' || s[1] == 'n') return 0;
        if (s[1] == 'W' || s[1] == 'w') return 1;
    }
    if (n == 3 && s[0] == '-' && s[1] == '0' && (s[2] == 'W' || s[2] == 'w')) return -1;
    return 2;
}

int qp__csv_long(const char *s, size_t n, int64_t *out)
{
    const char *e = s + n;
    bool neg = false;
    if (*s == '-' || *s == '+') { neg = *s == '-'; s++; }
    if (s == e || e - s > 19) return -1;
    uint64_t v = 0;
    for (; s < e; s++) {
        unsigned d = digit(*s);
        if (d > 9) return -1;
        v = v * 10 + d;          /* 19 digits cannot overflow 64 bits */
    }
    if (v > (uint64_t)INT64_MAX) return -1;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return 0;
}

static const double pow10tab[23] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* The common short decimal (at most 18 characters: [-+]digits[.digits],
 * no exponent) as the general path below reads it, without its checks per
 * digit. 0, or -1 when the text is anything else. */
static int short_float(const char *s, size_t n, double *out)
{
    const char *p = s, *e = s + n, *d0;
    bool neg = *p == '-';
    if (*p == '-' || *p == '+') p++;
    uint64_t m = 0;
    for (d0 = p; p < e && digit(*p) <= 9; p++) m = m * 10 + digit(*p);
    long nd = p - d0, fd = 0;
    if (p < e && *p == '.') {
        for (d0 = ++p; p < e && digit(*p) <= 9; p++) m = m * 10 + digit(*p);
        fd = p - d0;
    }
    if (p != e || nd + fd == 0 || m > (1ULL << 53)) return -1;
    double v = (double)m / pow10tab[fd];   /* both exact: one rounding */
    *out = neg ? -v : v;
    return 0;
}

int qp__csv_float(const char *s, size_t n, double *out)
{
    if (n <= 18 && short_float(s, n, out) == 0) return 0;
    const char *p = s, *e = s + n;
    bool neg = false, any = false, slow = false;
    if (*p == '-' || *p == '+') { neg = *p == '-'; p++; }
    uint64_t m = 0;
    int nd = 0, exp10 = 0;
    for (; p < e && digit(*p) <= 9; p++, any = true) {
        if (nd < 19) { m = m * 10 + digit(*p); nd += m != 0; }
        else { exp10++; slow = true; }
    }
    if (p < e && *p == '.') {
        for (p++; p < e && digit(*p) <= 9; p++, any = true) {
            if (nd < 19) { m = m * 10 + digit(*p); nd += m != 0; exp10--; }
            else slow = true;
        }
    }
    if (!any) goto words;
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        bool eneg = false;
        if (p < e && (*p == '-' || *p == '+')) { eneg = *p == '-'; p++; }
        if (p == e) return -1;
        int x = 0;
        for (; p < e && digit(*p) <= 9; p++) if (x < 100000) x = x * 10 + (int)digit(*p);
        exp10 += eneg ? -x : x;
    }
    if (p != e) return -1;
    if (m == 0 && !slow) { *out = neg ? -0.0 : 0.0; return 0; }
    if (!slow && m <= (1ULL << 53) && exp10 >= -22 && exp10 <= 22) {
        double v = (double)m;
        v = exp10 < 0 ? v / pow10tab[-exp10] : v * pow10tab[exp10];
        *out = neg ? -v : v;
        return 0;
    }
    /* Rare: long mantissas or big exponents. strtod rounds correctly. */
    char buf[128];
    if (n >= sizeof buf) return -1;
    memcpy(buf, s, n);
    buf[n] = 0;
    *out = strtod(buf, NULL);
    return 0;
words:
    p = s;
    if (ieq(s, n, "nan")) { *out = QP_NULL_F; return 0; }
    if (*p == '+' || *p == '-') p++;
    if (ieq(p, (size_t)(e - p), "inf") || ieq(p, (size_t)(e - p), "infinity")) {
        *out = neg ? -QP_INF_F : QP_INF_F;
        return 0;
    }
    return -1;
}

static int num(const char *s, int len)
{
    int v = 0;
    for (int i = 0; i < len; i++) {
        unsigned d = digit(s[i]);
        if (d > 9) return -1;
        v = v * 10 + (int)d;
    }
    return v;
}

static bool is_sep(char c) { return c == '.' || c == '-' || c == '/'; }

/* YYYY.MM.DD (or - or /). */
int qp__csv_date(const char *s, size_t n, int32_t *out)
{
    if (n != 10 || !is_sep(s[4]) || s[7] != s[4]) return -1;
    int y = num(s, 4), m = num(s + 5, 2), d = num(s + 8, 2);
    if (y < 0 || m < 1 || m > 12 || d < 1) return -1;
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[m - 1] || (m == 2 && d == 29 && !leap)) return -1;
    *out = (int32_t)qp_days_from_ymd(y, m, d);
    return 0;
}

/* YYYY.MM (or -): months since 2000.01. */
int qp__csv_month(const char *s, size_t n, int32_t *out)
{
    if (n != 7 || !is_sep(s[4])) return -1;
    int y = num(s, 4), m = num(s + 5, 2);
    if (y < 0 || m < 1 || m > 12) return -1;
    *out = (y - 2000) * 12 + m - 1;
    return 0;
}

/* h[h]:mm[:ss[.f...]] -> nanoseconds; *fd = fraction digits, *secs = has
 * seconds. Hours may exceed 23 (q's times do). */
int qp__csv_clock(const char *s, size_t n, int64_t *ns, int *fd, bool *secs)
{
    size_t hl = n > 2 && s[1] == ':' ? 1 : 2;
    if (n < hl + 3 || s[hl] != ':') return -1;
    int h = num(s, (int)hl), m = num(s + hl + 1, 2), sec = 0;
    if (h < 0 || m < 0 || m > 59) return -1;
    size_t i = hl + 3;
    int64_t frac = 0;
    *fd = 0;
    *secs = false;
    if (i < n) {
        if (s[i] != ':' || i + 3 > n) return -1;
        sec = num(s + i + 1, 2);
        if (sec < 0 || sec > 59) return -1;
        *secs = true;
        i += 3;
        if (i < n) {
            if (s[i] != '.') return -1;
            for (i++; i < n; i++) {
                unsigned d = digit(s[i]);
                if (d > 9 || *fd == 9) return -1;
                frac = frac * 10 + d;
                ++*fd;
            }
            for (int k = *fd; k < 9; k++) frac *= 10;
        }
    }
    *ns = ((int64_t)h * 3600 + m * 60 + sec) * 1000000000LL + frac;
    return 0;
}

int qp__csv_sclock(const char *s, size_t n, int64_t *ns, int *fd, bool *secs)
{
    bool neg = n > 1 && s[0] == '-';
    if (qp__csv_clock(s + neg, n - neg, ns, fd, secs) < 0) return -1;
    if (neg) *ns = -*ns;
    return 0;
}

/* A date, or a date then D, T or a space then a clock under a day: the
 * day (since 2000.01.01) into *d and the clock's nanoseconds into *ns. */
static int date_clock(const char *s, size_t n, int32_t *d, int64_t *ns)
{
    *ns = 0;
    if (n < 10 || qp__csv_date(s, 10, d) < 0) return -1;
    if (n == 10) return 0;
    int fd;
    bool secs;
    if ((s[10] != 'D' && s[10] != 'T' && s[10] != ' ') ||
        qp__csv_clock(s + 11, n - 11, ns, &fd, &secs) < 0 || *ns >= 86400000000000LL)
        return -1;
    return 0;
}

/* date, or date then D, T or a space then a clock: ns since 2000.01.01. */
int qp__csv_timestamp(const char *s, size_t n, int64_t *out)
{
    int32_t d;
    int64_t ns;
    if (date_clock(s, n, &d, &ns) < 0) return -1;
    /* beyond q's range (1707.09.22D00:12:43.145224194 to
     * 2292.04.10D23:47:16.854775806) the nanoseconds overflow; the day
     * alone may overflow where the time of day brings it back in */
    __int128 t = (__int128)d * 86400000000000LL + ns;
    if (t <= -(__int128)INT64_MAX || t >= INT64_MAX)
        return -1;                                  /* (nor the null or infinities) */
    *out = (int64_t)t;
    return 0;
}

/* A datetime (q's z), written as a timestamp is, as days since
 * 2000.01.01 (a float, as q keeps it: any year 0000-9999, where a
 * timestamp stops at 1707 and 2292). */
int qp__csv_datetime(const char *s, size_t n, double *out)
{
    int32_t d;
    int64_t ns;
    if (date_clock(s, n, &d, &ns) < 0) return -1;
    *out = (double)d + (double)ns / 86400e9;
    return 0;
}

/* An ISO 8601 duration, [-]P[nD][T[nH][nM][n[.f]S]] as format = iso and
 * pandas' isoformat write it: nanoseconds. Years, months and weeks (no
 * fixed length) are refused; so is anything beyond q's range, but for
 * +-int64 max ns exactly, which is 0W/-0W (what the writer writes for
 * them). */
static int iso_duration(const char *s, size_t n, int64_t *out)
{
    static const char units[] = "DHMS";
    static const int64_t unit_ns[] = {86400000000000LL, 3600000000000LL, 60000000000LL,
                                      1000000000LL};
    bool neg = s[0] == '-', time = false;
    size_t i = neg;
    int last = -1;                       /* units in order: D, then T, H, M, S */
    __int128 ns = 0;
    if (i >= n || s[i++] != 'P') return -1;
    while (i < n) {
        if (s[i] == 'T' && !time) { time = true; i++; continue; }
        uint64_t v = 0;
        int nd = 0, fd = 0;
        int64_t frac = 0;
        for (; i < n && digit(s[i]) <= 9; i++, nd++) {
            if (nd == 18) return -1;
            v = v * 10 + digit(s[i]);
        }
        if (i < n && s[i] == '.')
            for (i++; i < n && digit(s[i]) <= 9; i++, fd++) {
                if (fd == 9) return -1;
                frac = frac * 10 + digit(s[i]);
            }
        const char *u = i < n && s[i] ? strchr(units, s[i]) : NULL;
        int k = u ? (int)(u - units) : -1;
        if (!nd || k <= last || (k == 0) == time || (fd && k != 3)) return -1;
        for (int z = fd; z < 9; z++) frac *= 10;
        ns += (__int128)v * unit_ns[k] + frac;
        if (ns > INT64_MAX) return -1;
        last = k;
        i++;
    }
    if (last < 0) return -1;
    *out = neg ? -(int64_t)ns : (int64_t)ns;
    return 0;
}

/* [-][dD]clock, or an ISO 8601 duration: nanoseconds. */
int qp__csv_timespan(const char *s, size_t n, int64_t *out)
{
    if (n > 1 && (s[0] == 'P' || (s[0] == '-' && s[1] == 'P'))) return iso_duration(s, n, out);
    bool neg = n > 0 && s[0] == '-';
    size_t i = neg;
    int64_t days = 0, ns;
    const char *D = memchr(s + i, 'D', n - i);
    if (D) {
        for (; s + i < D; i++) {
            unsigned d = digit(s[i]);
            if (d > 9 || days > 1000000) return -1;
            days = days * 10 + d;
        }
        i++;
    }
    int fd;
    bool secs;
    if (qp__csv_clock(s + i, n - i, &ns, &fd, &secs) < 0) return -1;
    int64_t dn;
    if (__builtin_mul_overflow(days, 86400000000000LL, &dn) || __builtin_add_overflow(ns, dn, &ns) ||
        ns == INT64_MAX)
        return -1;                                  /* beyond q's timespan range */
    *out = neg ? -ns : ns;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int qp__csv_guid(const char *s, size_t n, uint8_t out[16])
{
    if (n != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-') return -1;
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) continue;
        int hi = hexval(s[i]), lo = hexval(s[i + 1]);
        if (hi < 0 || lo < 0) return -1;
        out[k++] = (uint8_t)(hi * 16 + lo);
        i++;
    }
    return 0;
}

int qp__csv_bool(const char *s, size_t n, uint8_t *out)
{
    static const char *const yes[] = {"1", "t", "true", "y", "yes"};
    static const char *const no[] = {"0", "f", "false", "n", "no"};
    for (int i = 0; i < 5; i++) {
        if (ieq(s, n, yes[i])) { *out = 1; return 0; }
        if (ieq(s, n, no[i])) { *out = 0; return 0; }
    }
    return -1;
}

int qp__csv_byte(const char *s, size_t n, uint8_t *out)
{
    if (n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) { s += 2; n -= 2; }
    if (n < 1 || n > 2) return -1;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        int h = hexval(s[i]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    *out = (uint8_t)v;
    return 0;
}

/* Digits, with an optional sign. */
static bool integer(const char *s, size_t n)
{
    size_t i = n && (s[0] == '-' || s[0] == '+');
    if (i == n) return false;
    for (; i < n; i++)
        if (digit(s[i]) > 9) return false;
    return true;
}

/* Inference classes a value fits: every parser the value passes. Booleans
 * count only as true/false: 0/1 columns stay longs. */
unsigned qp__csv_classes(const char *s, size_t n)
{
    if (n == 0) return ~0u;
    unsigned m = CSV_C_S;
    union { int64_t j; double f; int32_t i; uint8_t u[16]; } v;
    int sp = qp__csv_special(s, n);
    if (sp != 2)
        return m | CSV_C_J | CSV_C_F | CSV_C_D | CSV_C_P | CSV_C_M | CSV_C_U | CSV_C_V | CSV_C_T |
               CSV_C_N;
    if (ieq(s, n, "true") || ieq(s, n, "false")) m |= CSV_C_B;
    /* 2024-03 (ISO, as format = iso writes months); 2024.03 is a float first */
    if (qp__csv_month(s, n, &v.i) == 0) m |= CSV_C_M;
    /* an integer beyond int64 is an id: a float would round it */
    if (qp__csv_long(s, n, &v.j) == 0) m |= CSV_C_J;
    else if (!integer(s, n) && qp__csv_float(s, n, &v.f) == 0) m |= CSV_C_F;
    if (qp__csv_date(s, n, &v.i) == 0) m |= CSV_C_D;
    if (qp__csv_timestamp(s, n, &v.j) == 0) m |= CSV_C_P;
    int fd;
    bool secs;
    /* as q's own text of each: hh:mm a minute, hh:mm:ss a second,
     * hh:mm:ss.fff a time, more digits a timespan (each may be negative) */
    if (qp__csv_sclock(s, n, &v.j, &fd, &secs) == 0) {
        if (!fd) m |= secs ? CSV_C_V : CSV_C_U;
        if (fd <= 3) m |= CSV_C_T;
        m |= CSV_C_N;
    } else if (qp__csv_timespan(s, n, &v.j) == 0) {
        m |= CSV_C_N;
    }
    if (qp__csv_guid(s, n, v.u) == 0) m |= CSV_C_G;
    return m;
}

/* The type char for the narrowest class in m (priority order). */
char qp__csv_pick(unsigned m)
{
    static const struct { unsigned c; char t; } order[] = {
        {CSV_C_B, 'b'}, {CSV_C_J, 'j'}, {CSV_C_F, 'f'}, {CSV_C_D, 'd'}, {CSV_C_P, 'p'},
        {CSV_C_M, 'm'}, {CSV_C_U, 'u'}, {CSV_C_V, 'v'}, {CSV_C_T, 't'}, {CSV_C_N, 'n'},
        {CSV_C_G, 'g'}};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (m & order[i].c) return order[i].t;
    return 's';
}
