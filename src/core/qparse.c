/* qparse.c - q literals and the call forms qpeach evaluates (see
 * qpeach/qparse.h): a small recursive-descent reader over a byte range.
 *
 * Deliberately small: qpeach is not a q interpreter. It reads what a
 * client sends as data (literals) and the shape of a call (f[a;b], f x);
 * the server decides what a name means and words the error for the rest.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qpeach/qparse.h"
#include "csv_int.h"

/* ====================================================================
 * Literals
 * ==================================================================== */

typedef struct lex {
    const char *p, *end;
    char *err;
    size_t errlen;
    int depth;
} lex;

static void skip_ws(lex *l)
{
    while (l->p < l->end && isspace((unsigned char)*l->p)) l->p++;
}

static qp_value *lerr(lex *l, const char *what)
{
    if (l->err && !l->err[0])
        snprintf(l->err, l->errlen, "%s at \"%.*s\"", what,
                 (int)(l->end - l->p > 20 ? 20 : l->end - l->p), l->p);
    return NULL;
}

static bool name_char(char c) { return isalnum((unsigned char)c) || c == '.' || c == '_'; }
static bool sym_char(char c) { return name_char(c) || c == ':' || c == '/'; }

static qp_value *parse_item(lex *l);

/* Makes a vector of a list of atoms that all have one type, as q does
 * for (1;2;3); steals list. */
static qp_value *collapse(qp_value *list)
{
    int64_t n = list->v.n;
    if (n < 1) return list;
    int t = qp_K(list)[0]->type;
    if (t >= 0 || t == QP_ERROR || t == -QP_GUID) return list;
    for (int64_t i = 1; i < n; i++)
        if (qp_K(list)[i]->type != t) return list;
    qp_value *v = qp_vector(-t, n);
    if (!v) { qp_unref(list); return NULL; }
    size_t w = qp_type_width(-t);
    for (int64_t i = 0; i < n; i++) {
        const qp_value *a = qp_K(list)[i];
        const void *src = t == -QP_SYMBOL ? (const void *)&a->s : (const void *)&a->g;
        memcpy((char *)v->v.data + i * w, src, w);
    }
    qp_unref(list);
    return v;
}

static qp_value *parse_string(lex *l)
{
    const char *open = l->p++;                /* opening quote */
    char *buf = malloc((size_t)(l->end - l->p) + 1);
    if (!buf) return NULL;
    size_t n = 0;
    while (l->p < l->end && *l->p != '"') {
        char c = *l->p++;
        if (c == '\\' && l->p < l->end) {
            c = *l->p++;
            if (c == 'n') c = '\n';
            else if (c == 't') c = '\t';
            else if (c == 'r') c = '\r';
            else if (c >= '0' && c <= '7' && l->end - l->p >= 2) {
                c = (char)((c - '0') * 64 + (l->p[0] - '0') * 8 + (l->p[1] - '0'));
                l->p += 2;
            }
        }
        buf[n++] = c;
    }
    if (l->p >= l->end) { free(buf); l->p = open; return lerr(l, "unterminated string"); }
    l->p++;
    qp_value *v = n == 1 ? qp_char(buf[0]) : qp_string(buf, n);
    free(buf);
    return v;
}

static qp_value *parse_symbols(lex *l)
{
    qp_value *v = qp_vector(QP_SYMBOL, 0);
    while (v && l->p < l->end && *l->p == '`') {
        const char *s = ++l->p;
        while (l->p < l->end && sym_char(*l->p)) l->p++;
        const char *sym = qp_sym_intern(s, (size_t)(l->p - s));
        if (!sym || qp_vec_append(v, &sym)) { qp_unref(v); return NULL; }
    }
    if (v && v->v.n == 1) {
        qp_value *a = qp_symbol(qp_S(v)[0]);
        qp_unref(v);
        return a;
    }
    return v;
}

/* One numeric or temporal token: its value and the type it asks for
 * (0: untyped). Integer types and the temporal ones but datetime keep
 * their value in j, floats, reals and datetimes in f. */
typedef struct num {
    int type;              /* -QP_LONG, -QP_DATE etc. as written; 0 when inferred */
    bool isfloat;          /* written with '.', an exponent, 0n or 0w */
    bool special;          /* 0N 0W -0W without a suffix: null or infinity of any type */
    double f;
    int64_t j;
    const char *s;         /* the token, for a vector whose last item types it */
    size_t n;
    const char *bad;       /* why it is not a literal (on failure) */
} num;

static int suffix_type(char c)
{
    switch (c) {
    case 'h': return -QP_SHORT; case 'i': return -QP_INT; case 'j': return -QP_LONG;
    case 'e': return -QP_REAL; case 'f': return -QP_FLOAT;
    default: return 0;
    }
}

static bool is_temporal(int t) { return t <= -QP_TIMESTAMP && t >= -QP_TIME; }

/* The type a null's or infinity's suffix names: a number's, or q's
 * temporal type chars p m d z n u v t. */
static int null_suffix_type(char c)
{
    static const char tc[] = "pmdznuvt";      /* types 12..19, in order */
    const char *k = c ? strchr(tc, c) : NULL;
    return k ? -(QP_TIMESTAMP + (int)(k - tc)) : suffix_type(c);
}

static bool is_float_type(int t) { return t == -QP_REAL || t == -QP_FLOAT || t == -QP_DATETIME; }

/* 0N 0Nh 0n 0w 0W 0Wi 0Nd 0Wp 0wz ...: q's nulls and infinities. b is
 * the token after its sign. */
static int parse_special(const char *b, bool neg, num *out)
{
    bool null = b[1] == 'N' || b[1] == 'n';
    int t = b[2] ? null_suffix_type(b[2]) : 0;
    if ((b[2] && (b[3] || !t)) || ((b[1] == 'n' || b[1] == 'w') && b[2] && t != -QP_DATETIME))
        return -1;                            /* 0n and 0w take z only */
    out->type = t;
    if (b[1] == 'n' || b[1] == 'w' || is_float_type(t)) {
        out->isfloat = !is_temporal(t);       /* a datetime is no float to mix */
        out->f = null ? QP_NULL_F : neg ? -QP_INF_F : QP_INF_F;
    } else {
        out->special = !t;
        out->j = null ? QP_NULL_J : neg ? -QP_INF_J : QP_INF_J;
    }
    return 0;
}

/* ---- temporal literals ----
 * The CSV parsers (csv_field.c) read the parts; here is what q's lexer
 * adds: which form is which type, '.' as the only date separator, and
 * D or T alone after a date (midnight) or a day count (whole days). */

/* s (n < cap bytes) into buf, with "00:00" after a final D or T: the
 * CSV parsers want a clock there. */
static size_t with_clock(const char *s, size_t n, char *buf, size_t cap)
{
    memcpy(buf, s, n);
    if (n && (s[n - 1] == 'D' || s[n - 1] == 'T') && n + 5 < cap) {
        memcpy(buf + n, "00:00", 5);
        n += 5;
    }
    buf[n] = 0;
    return n;
}

/* A clock alone, [-]hh:mm[:ss[.f]]: a minute, a second, a time (1 to 3
 * fraction digits) or a timespan (4 to 9), as q reads them. */
static int parse_clock(const char *s, size_t n, num *out)
{
    int64_t ns;
    int fd = 0;
    bool secs = false;
    const char *dot = memchr(s, '.', n);
    out->bad = dot ? "bad time" : n > 6 ? "bad second" : "bad minute";
    if (s[n - 1] == '.' || qp__csv_sclock(s, n, &ns, &fd, &secs) < 0) return -1;
    if (fd > 3) { out->type = -QP_TIMESPAN; out->j = ns; }
    else if (fd) { out->type = -QP_TIME; out->j = ns / 1000000; }
    else if (secs) { out->type = -QP_SECOND; out->j = ns / 1000000000; }
    else { out->type = -QP_MINUTE; out->j = ns / 60000000000LL; }
    return 0;
}

/* date D clock (timestamp), date T clock (datetime), days D clock
 * (timespan); sep points at the D or T in s. */
static int parse_dated(const char *s, size_t n, const char *sep, num *out)
{
    char buf[72];
    size_t k = (size_t)(sep - s), m = with_clock(s, n, buf, sizeof buf);
    bool date = k == 10 && s[4] == '.' && s[7] == '.';
    if (*sep == 'T') {
        out->bad = "bad datetime";
        out->type = -QP_DATETIME;
        return date ? qp__csv_datetime(buf, m, &out->f) : -1;   /* days, as q keeps them */
    }
    if (date) {
        out->bad = "bad timestamp";
        out->type = -QP_TIMESTAMP;
        return qp__csv_timestamp(buf, m, &out->j);
    }
    out->bad = "bad timespan";
    out->type = -QP_TIMESPAN;
    return qp__csv_timespan(buf, m, &out->j);
}

/* A temporal token (no sign but a timespan's or a clock's): 1 with *out
 * set, 0 when it has no temporal form (a number, maybe), -1 when it has
 * one but is not valid (out->bad says which). month: a YYYY.MM without
 * its m is a month (a vector whose last item has the m). */
static int parse_temporal(const char *s, size_t n, bool month, num *out)
{
    const char *sep = memchr(s, 'D', n);
    if (!sep) sep = memchr(s, 'T', n);
    if (sep) return parse_dated(s, n, sep, out) < 0 ? -1 : 1;
    if (memchr(s, ':', n)) return parse_clock(s, n, out) < 0 ? -1 : 1;
    const char *dot = memchr(s, '.', n);
    bool two = dot && memchr(dot + 1, '.', n - (size_t)(dot + 1 - s));
    int32_t v;
    if (two) {                                     /* no number has two dots */
        out->bad = "bad date";
        out->type = -QP_DATE;
        if (n != 10 || s[4] != '.' || s[7] != '.' || qp__csv_date(s, n, &v) < 0) return -1;
    } else if ((n == 8 && s[7] == 'm') || (month && n == 7)) {
        out->bad = "bad month";
        out->type = -QP_MONTH;
        if (s[4] != '.' || qp__csv_month(s, 7, &v) < 0) return -1;
    } else {
        return 0;
    }
    out->j = v;
    return 1;
}

/* One token: a number, a null or infinity, or a temporal literal. 0, or
 * -1 with out->bad set. */
static int parse_num(const char *s, size_t n, bool month, num *out)
{
    memset(out, 0, sizeof *out);
    out->s = s;
    out->n = n;
    out->bad = "bad number";
    char tok[64];
    if (n == 0 || n >= sizeof tok) return -1;
    memcpy(tok, s, n);
    tok[n] = 0;
    bool neg = tok[0] == '-';
    const char *b = tok + neg;
    if (b[0] == '0' && (b[1] == 'N' || b[1] == 'n' || b[1] == 'W' || b[1] == 'w'))
        return parse_special(b, neg, out);
    if (!isdigit((unsigned char)b[0]) && !(b[0] == '.' && isdigit((unsigned char)b[1]))) return -1;
    int r = parse_temporal(tok, n, month, out);
    if (r) return r < 0 ? -1 : 0;
    char last = tok[n - 1];
    int t = isalpha((unsigned char)last) ? suffix_type(last) : 0;
    if (isalpha((unsigned char)last)) {
        if (!t) return -1;
        tok[--n] = 0;
    }
    char *end;
    errno = 0;
    if (strpbrk(tok, ".eE") || t == -QP_REAL || t == -QP_FLOAT) {
        out->f = strtod(tok, &end);
        out->isfloat = true;
        if (t && t != -QP_REAL && t != -QP_FLOAT) return -1;   /* 1.5i */
    } else {
        out->j = strtoll(tok, &end, 10);
    }
    if (*end || errno) return -1;
    out->type = t;
    return 0;
}

/* An integer token as a float: 0N and 0W (written without a float
 * suffix, in a vector that is float) are the float null and infinity. */
static double num_float(const num *x)
{
    if (x->isfloat || x->type == -QP_DATETIME) return x->f;
    return x->j == QP_NULL_J ? QP_NULL_F : x->j == QP_INF_J ? QP_INF_F
         : x->j == -QP_INF_J ? -QP_INF_F : (double)x->j;
}

/* An integer token as an int: 0N and 0W as the int null and infinity. */
static int32_t num_int(const num *x)
{
    return x->j == QP_NULL_J ? QP_NULL_I : x->j == QP_INF_J ? QP_INF_I
         : x->j == -QP_INF_J ? -QP_INF_I : (int32_t)x->j;
}

static qp_value *num_atom(int t, const num *x)
{
    qp_value *a;
    switch (t) {
    case -QP_SHORT: return qp_short(x->j == QP_NULL_J ? QP_NULL_H : x->j == QP_INF_J ? QP_INF_H
                                    : x->j == -QP_INF_J ? -QP_INF_H : (int16_t)x->j);
    case -QP_INT: return qp_int(num_int(x));
    case -QP_REAL: return qp_real((float)num_float(x));
    case -QP_FLOAT: return qp_float(num_float(x));
    case -QP_MONTH: case -QP_DATE: case -QP_MINUTE: case -QP_SECOND: case -QP_TIME:
        return qp_temporal_i(t, num_int(x));
    case -QP_TIMESTAMP: case -QP_TIMESPAN: return qp_temporal_j(t, x->j);
    case -QP_DATETIME:
        if ((a = qp_atom(t))) a->f = num_float(x);
        return a;
    default: return qp_long(x->j);
    }
}

/* strspn within n bytes: the text need not be NUL-terminated. */
static size_t span_in(const char *s, size_t n, const char *set)
{
    size_t i = 0;
    while (i < n && s[i] && strchr(set, s[i])) i++;
    return i;
}

static bool token_char(char c) { return isalnum((unsigned char)c) || c == '.' || c == '-' || c == ':'; }

/* The type of a run of tokens, as q types 1 2 3h or 2024.01.02 0N: the
 * last token's suffix, else a temporal item's type, else float if any
 * item is, else long. NULL, or why the items make no vector. */
static const char *run_type(const num *all, size_t cnt, int *type)
{
    int t = all[cnt - 1].type;
    for (size_t i = 0; !t && i < cnt; i++)
        if (is_temporal(all[i].type)) t = all[i].type;
    if (!t) {
        t = -QP_LONG;
        for (size_t i = 0; i < cnt; i++) if (all[i].isfloat) t = -QP_FLOAT;
    }
    *type = t;
    for (size_t i = 0; i < cnt; i++) {
        const num *x = &all[i];
        if (is_temporal(t) || is_temporal(x->type)) {
            if (x->type != t && !x->special) return "mixed types in a vector";
        } else if (x->isfloat && t != -QP_FLOAT && t != -QP_REAL) {
            return "float in an integer vector";
        }
    }
    return NULL;
}

/* The tokens of a run into *all (malloc'd, *cnt of them): 0, -1 with the
 * error reported, -2 out of memory. */
static int read_run(lex *l, num **all, size_t *cnt)
{
    size_t cap = 0;
    *all = NULL;
    *cnt = 0;
    for (;;) {
        const char *t = l->p;
        num x;
        while (l->p < l->end && token_char(*l->p)) l->p++;
        if (parse_num(t, (size_t)(l->p - t), false, &x)) { l->p = t; lerr(l, x.bad); return -1; }
        if (*cnt == cap) {
            cap = cap ? 2 * cap : 8;
            num *m = realloc(*all, cap * sizeof *m);
            if (!m) return -2;
            *all = m;
        }
        (*all)[(*cnt)++] = x;
        const char *save = l->p;
        skip_ws(l);
        if (l->p < l->end && l->p > save &&
            (isdigit((unsigned char)*l->p) || (*l->p == '-' && l->p + 1 < l->end &&
                                               (isdigit((unsigned char)l->p[1]) || l->p[1] == '.')))) continue;
        l->p = save;
        return 0;
    }
}

/* A run of space-separated numbers or temporal items: one atom, or a
 * vector (run_type). 2024.01 2024.02m is a month vector: the last item's
 * m types the rest, as a suffix does numbers. */
static qp_value *parse_run(lex *l)
{
    const char *start = l->p;
    num *all;
    size_t cnt;
    int type, rc = read_run(l, &all, &cnt);
    if (rc) { free(all); return NULL; }        /* reported, or out of memory */
    if (all[cnt - 1].type == -QP_MONTH)
        for (size_t i = 0; i + 1 < cnt; i++)
            if (!all[i].special && parse_num(all[i].s, all[i].n, true, &all[i])) {
                l->p = all[i].s;
                free(all);
                return lerr(l, "bad month");
            }
    const char *why = run_type(all, cnt, &type);
    if (why) { free(all); l->p = start; return lerr(l, why); }
    qp_value *v = NULL;
    if (cnt == 1) {
        v = num_atom(type, &all[0]);
    } else if ((v = qp_vector(-type, (int64_t)cnt))) {
        size_t w = qp_type_width(-type);
        for (size_t i = 0; i < cnt; i++) {
            qp_value *a = num_atom(type, &all[i]);
            if (!a) { qp_unref(v); v = NULL; break; }
            memcpy((char *)v->v.data + i * w, &a->g, w);
            qp_unref(a);
        }
    }
    free(all);
    return v;
}

static qp_value *parse_numbers(lex *l)
{
    /* booleans (1b, 0101b) and bytes (0x0a, 0x0a0b) are single tokens */
    const char *s = l->p;
    while (l->p < l->end && (isalnum((unsigned char)*l->p) || *l->p == '.' || *l->p == '-')) l->p++;
    size_t n = (size_t)(l->p - s);
    if (n >= 2 && s[n - 1] == 'b' && span_in(s, n, "01") == n - 1) {
        if (n == 2) return qp_bool(s[0] == '1');
        qp_value *v = qp_vector(QP_BOOL, (int64_t)n - 1);
        for (size_t i = 0; v && i < n - 1; i++) qp_G(v)[i] = s[i] == '1';
        return v;
    }
    if (n >= 2 && s[0] == '0' && s[1] == 'x') {
        size_t h = n - 2;
        if (h == 0 || span_in(s + 2, h, "0123456789abcdefABCDEF") != h) return lerr(l, "bad byte literal");
        char digits[3] = {0};
        if (h <= 2) {
            memcpy(digits, s + 2, h);
            return qp_byte((uint8_t)strtol(digits, NULL, 16));
        }
        if (h % 2) return lerr(l, "bad byte literal");
        qp_value *v = qp_vector(QP_BYTE, (int64_t)h / 2);
        for (size_t i = 0; v && i < h / 2; i++) {
            memcpy(digits, s + 2 + 2 * i, 2);
            qp_G(v)[i] = (uint8_t)strtol(digits, NULL, 16);
        }
        return v;
    }
    l->p = s;
    return parse_run(l);
}

static qp_value *parse_paren(lex *l)
{
    l->p++;                                   /* ( */
    skip_ws(l);
    if (l->end - l->p >= 3 && !memcmp(l->p, "::)", 3)) { l->p += 3; return qp_identity(); }
    qp_value *list = qp_vector(QP_LIST, 0);
    if (!list) return NULL;
    if (l->p < l->end && *l->p == ')') { l->p++; return list; }
    if (++l->depth > 64) { qp_unref(list); return lerr(l, "nested too deep"); }
    bool semi = false;
    for (;;) {
        qp_value *x = parse_item(l);
        if (!x) { qp_unref(list); return NULL; }
        if (qp_vec_append(list, &x)) { qp_unref(x); qp_unref(list); return NULL; }
        skip_ws(l);
        if (l->p < l->end && *l->p == ';') { l->p++; semi = true; continue; }
        if (l->p < l->end && *l->p == ')') { l->p++; break; }
        qp_unref(list);
        return lerr(l, "expected ; or )");
    }
    l->depth--;
    if (!semi) {                              /* (x) is just x */
        qp_value *x = qp_ref(qp_K(list)[0]);
        qp_unref(list);
        return x;
    }
    return collapse(list);
}

static qp_value *parse_item(lex *l)
{
    skip_ws(l);
    if (l->p >= l->end) return lerr(l, "expected a value");
    char c = *l->p;
    if (c == '"') return parse_string(l);
    if (c == '`') return parse_symbols(l);
    if (c == '(') return parse_paren(l);
    if (isdigit((unsigned char)c) || c == '-' || c == '.') return parse_numbers(l);
    return lerr(l, "not a literal");
}

qp_value *qp_literal_parse(const char *s, size_t n, char *err, size_t errlen)
{
    if (err && errlen) err[0] = 0;
    lex l = { s, s + n, err, errlen, 0 };
    qp_value *v = parse_item(&l);
    if (!v) {
        if (err && errlen && !err[0]) snprintf(err, errlen, "out of memory");
        return NULL;
    }
    skip_ws(&l);
    if (l.p != l.end) {
        qp_unref(v);
        return lerr(&l, "unexpected text");
    }
    return v;
}

/* ====================================================================
 * Expressions: name, name[a;b], name x
 * ==================================================================== */

/* End of one bracket argument: the next ';' or ']' outside strings and
 * parentheses. */
static const char *arg_end(const char *p, const char *end)
{
    int depth = 0;
    while (p < end) {
        char c = *p;
        if (c == '"') {
            for (p++; p < end && *p != '"'; p++)
                if (*p == '\\' && p + 1 < end) p++;   /* never past end */
        } else if (c == '(' || c == '[') depth++;
        else if ((c == ')' || c == ']') && depth) depth--;
        else if ((c == ';' || c == ']') && !depth) return p;
        if (p < end) p++;
    }
    return end;
}

int qp_expr_parse(const char *s, size_t n, qp_expr *e)
{
    memset(e, 0, sizeof *e);
    const char *p = s, *end = s + n;
    while (p < end && isspace((unsigned char)*p)) p++;
    while (end > p && isspace((unsigned char)end[-1])) end--;
    const char *nm = p;
    if (p >= end || !(isalpha((unsigned char)*p) || *p == '.')) return QP_EARG;
    while (p < end && name_char(*p)) p++;
    if (!(e->name = qp_sym_intern(nm, (size_t)(p - nm)))) return QP_ENOMEM;
    if (p == end) return 0;                  /* a bare name */
    e->call = true;
    if (!(e->args = qp_vector(QP_LIST, 0))) return QP_ENOMEM;
    qp_value *x = NULL;
    if (*p == '[') {
        p++;
        for (int i = 0;; i++) {
            const char *a = p, *ae = arg_end(p, end);
            if (ae >= end) goto bad;          /* no closing ] */
            const char *t = a;
            while (t < ae && isspace((unsigned char)*t)) t++;
            if (t == ae) {
                /* f[] passes (::); an empty argument elsewhere would be a
                 * projection, which we do not do */
                if (i > 0 || *ae != ']') goto bad;
                x = qp_identity();
            } else {
                x = qp_literal_parse(a, (size_t)(ae - a), e->err, sizeof e->err);
            }
            if (!x) goto bad;
            if (qp_vec_append(e->args, &x)) goto nomem;
            p = ae + 1;
            if (*ae == ']') break;
        }
        if (p != end) goto bad;
        return 0;
    }
    /* f x, and f`x as q reads it (.qp.count`trade) */
    if (!isspace((unsigned char)*p) && *p != '`') goto bad;
    if (!(x = qp_literal_parse(p, (size_t)(end - p), e->err, sizeof e->err))) goto bad;
    if (qp_vec_append(e->args, &x)) goto nomem;
    return 0;
nomem:
    qp_unref(x);
    qp_unref(e->args);
    e->args = NULL;
    return QP_ENOMEM;
bad:
    qp_unref(e->args);
    e->args = NULL;
    return QP_EARG;
}
