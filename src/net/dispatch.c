/* dispatch.c - what the server does with a message: decode it, find the
 * function (or global) it names, run it on the right thread, encode the
 * response. Also the small q literal/expression parser used for char-vector
 * messages and by `qpeach call`.
 *
 * The parser is deliberately small: qpeach is not a q interpreter. It
 * accepts a global's name, `f[a;b]` and `f x` where f is registered and the
 * arguments are literals; everything else is answered with an error that
 * says so.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "srv.h"

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
    l->p++;                                   /* opening quote */
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
    if (l->p >= l->end) { free(buf); return lerr(l, "unterminated string"); }
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

/* One numeric token: its value and the type it asks for (0: untyped). */
typedef struct num {
    int type;              /* -QP_LONG etc. as written; 0 when inferred */
    bool isfloat;          /* written with '.', an exponent, 0n or 0w */
    double f;
    int64_t j;
} num;

static int suffix_type(char c)
{
    switch (c) {
    case 'h': return -QP_SHORT; case 'i': return -QP_INT; case 'j': return -QP_LONG;
    case 'e': return -QP_REAL; case 'f': return -QP_FLOAT;
    default: return 0;
    }
}

static int parse_num(const char *s, size_t n, num *out)
{
    memset(out, 0, sizeof *out);
    char tok[64];
    if (n == 0 || n >= sizeof tok) return -1;
    memcpy(tok, s, n);
    tok[n] = 0;
    bool neg = tok[0] == '-';
    const char *b = tok + neg;
    /* q's nulls and infinities: 0N 0Nh 0n 0w 0W 0Wi ... */
    if (b[0] == '0' && (b[1] == 'N' || b[1] == 'n' || b[1] == 'W' || b[1] == 'w')) {
        char k = b[1];
        if (b[2] && b[3]) return -1;
        int t = b[2] ? suffix_type(b[2]) : 0;
        if (b[2] && !t) return -1;
        if (k == 'n' || k == 'w') {
            if (b[2]) return -1;
            out->isfloat = true;
            out->f = k == 'n' ? QP_NULL_F : neg ? -QP_INF_F : QP_INF_F;
            return 0;
        }
        out->type = t;
        if (t == -QP_REAL || t == -QP_FLOAT) {
            out->isfloat = true;
            out->f = k == 'N' ? QP_NULL_F : neg ? -QP_INF_F : QP_INF_F;
        } else {
            out->j = k == 'N' ? QP_NULL_J : neg ? -QP_INF_J : QP_INF_J;
        }
        return 0;
    }
    if (!isdigit((unsigned char)b[0]) && !(b[0] == '.' && isdigit((unsigned char)b[1]))) return -1;
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

static qp_value *num_atom(int t, const num *x)
{
    switch (t) {
    case -QP_SHORT: return qp_short(x->j == QP_NULL_J ? QP_NULL_H : x->j == QP_INF_J ? QP_INF_H
                                    : x->j == -QP_INF_J ? -QP_INF_H : (int16_t)x->j);
    case -QP_INT: return qp_int(x->j == QP_NULL_J ? QP_NULL_I : x->j == QP_INF_J ? QP_INF_I
                                : x->j == -QP_INF_J ? -QP_INF_I : (int32_t)x->j);
    case -QP_REAL: return qp_real(x->isfloat ? (float)x->f : (float)x->j);
    case -QP_FLOAT: return qp_float(x->isfloat ? x->f : (double)x->j);
    default: return qp_long(x->j);
    }
}

static qp_value *parse_numbers(lex *l)
{
    /* booleans (1b, 0101b) and bytes (0x0a, 0x0a0b) are single tokens */
    const char *s = l->p;
    while (l->p < l->end && (isalnum((unsigned char)*l->p) || *l->p == '.' || *l->p == '-')) l->p++;
    size_t n = (size_t)(l->p - s);
    if (n >= 2 && s[n - 1] == 'b' && strspn(s, "01") == n - 1) {
        if (n == 2) return qp_bool(s[0] == '1');
        qp_value *v = qp_vector(QP_BOOL, (int64_t)n - 1);
        for (size_t i = 0; v && i < n - 1; i++) qp_G(v)[i] = s[i] == '1';
        return v;
    }
    if (n >= 2 && s[0] == '0' && s[1] == 'x') {
        size_t h = n - 2;
        if (h == 0 || strspn(s + 2, "0123456789abcdefABCDEF") != h) return lerr(l, "bad byte literal");
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
    /* a run of space-separated numbers: one atom, or a vector whose type
     * is the last token's suffix, else float if any is, else long */
    num items[1];
    num *all = NULL;
    size_t cnt = 0, cap = 0;
    l->p = s;
    for (;;) {
        const char *t = l->p;
        while (l->p < l->end && (isalnum((unsigned char)*l->p) || *l->p == '.' || *l->p == '-')) l->p++;
        if (parse_num(t, (size_t)(l->p - t), items)) { free(all); l->p = t; return lerr(l, "bad number"); }
        if (cnt == cap) {
            cap = cap ? 2 * cap : 8;
            num *m = realloc(all, cap * sizeof *m);
            if (!m) { free(all); return NULL; }
            all = m;
        }
        all[cnt++] = items[0];
        const char *save = l->p;
        skip_ws(l);
        if (l->p < l->end && l->p > save &&
            (isdigit((unsigned char)*l->p) || (*l->p == '-' && l->p + 1 < l->end &&
                                               (isdigit((unsigned char)l->p[1]) || l->p[1] == '.')))) continue;
        l->p = save;
        break;
    }
    int type = all[cnt - 1].type;
    if (!type) {
        type = -QP_LONG;
        for (size_t i = 0; i < cnt; i++) if (all[i].isfloat) type = -QP_FLOAT;
    }
    for (size_t i = 0; i < cnt; i++)
        if (all[i].isfloat && type != -QP_FLOAT && type != -QP_REAL) {
            free(all);
            return lerr(l, "float in an integer vector");
        }
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

qp_value *qp__literal_parse(const char *s, size_t n, char *err, size_t errlen)
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
            for (p++; p < end && *p != '"'; p++) if (*p == '\\') p++;
        } else if (c == '(' || c == '[') depth++;
        else if ((c == ')' || c == ']') && depth) depth--;
        else if ((c == ';' || c == ']') && !depth) return p;
        if (p < end) p++;
    }
    return end;
}

int qp__expr_parse(const char *s, size_t n, qp__expr *e)
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
                x = qp__literal_parse(a, (size_t)(ae - a), NULL, 0);
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
    if (!(x = qp__literal_parse(p, (size_t)(end - p), NULL, 0))) goto bad;
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

/* ====================================================================
 * Errors for text qpeach does not evaluate
 *
 * A kdb+ user types q (`count trade`, `select from t`, `til 10`). The
 * answer names what the server does evaluate and, when there is one, the
 * .qp call that does the same work. One line: clients show q errors on one.
 * ==================================================================== */

#define EVALUATES "qpeach evaluates literals, global names and f[x;y] / f x calls of its " \
                  "functions with literal arguments"

/* Where a q word's .qp equivalent finds its table in the text. */
enum { ARG_NONE, ARG_NEXT, ARG_FROM };
#define QSQL_NOTE ", or a Python function on it via .qp.apply"

/* q words with a .qp equivalent: `count trade` -> .qp.count`trade. */
static const struct { const char *word, *call; int arg; const char *note; } q_equiv[] = {
    { "count", ".qp.count`", ARG_NEXT, "" },   { "meta", ".qp.meta`", ARG_NEXT, "" },
    { "cols", ".qp.meta`", ARG_NEXT, "" },     { "tables", ".qp.tables[]", ARG_NONE, "" },
    { "get", ".qp.get`", ARG_NEXT, "" },       { "value", ".qp.get`", ARG_NEXT, "" },
    { "set", ".qp.set[`name;value]", ARG_NONE, "" },
    { "select", ".qp.get`", ARG_FROM, QSQL_NOTE }, { "exec", ".qp.get`", ARG_FROM, QSQL_NOTE },
    { "update", ".qp.get`", ARG_FROM, QSQL_NOTE }, { "delete", ".qp.get`", ARG_FROM, QSQL_NOTE },
};

/* Other q keywords: space-separated, with a space at each end. */
static const char q_keywords[] =
    " abs aj all and any asc asof avg avgs by ceiling cor cov cross cut deltas desc dev "
    "differ distinct div each ej enlist except exit exp fby fills first fkeys flip floor "
    "from group hcount hopen iasc idesc ij in inter insert key keys last like lj log "
    "lower lsq ltrim max maxs mcount md5 med min mins mmax mmin mod msum neg next not "
    "null or over parse peach prd prds prev rand rank ratios raze read0 read1 reciprocal "
    "reverse rtrim save scan show signum sin sqrt ss ssr string sublist sum sums sv "
    "system til trim type uj ungroup union upper upsert var view where within wj wsum "
    "xasc xbar xcol xdesc xexp xgroup xkey xlog xprev xrank ";

static bool is_q_keyword(const char *w, size_t n)
{
    if (n == 0 || n > 16) return false;
    char key[20];
    snprintf(key, sizeof key, " %.*s ", (int)n, w);
    return strstr(q_keywords, key) != NULL;
}

/* Whether name is a q keyword (with or without a .qp equivalent). */
static bool is_q_word(const char *name)
{
    for (size_t i = 0; i < sizeof q_equiv / sizeof q_equiv[0]; i++)
        if (!strcmp(name, q_equiv[i].word)) return true;
    return is_q_keyword(name, strlen(name));
}

/* The name after p (skipping blanks, `[` and a backquote); "t" if none. */
static void next_name(const char *p, const char *end, char *out, size_t len)
{
    while (p < end && (isspace((unsigned char)*p) || *p == '[' || *p == '`')) p++;
    const char *b = p;
    while (p < end && name_char(*p)) p++;
    if (p == b) snprintf(out, len, "t");
    else snprintf(out, len, "%.*s", (int)(p - b), b);
}

/* The position after the word "from" in text, or end. */
static const char *after_from(const char *p, const char *end)
{
    while (p < end) {
        while (p < end && !name_char(*p)) p++;
        const char *w = p;
        while (p < end && name_char(*p)) p++;
        if (p - w == 4 && !memcmp(w, "from", 4)) return p;
    }
    return end;
}

/* Whether text (outside strings and symbols) holds a q operator, adverb,
 * lambda, system command or keyword. */
static bool looks_like_q(const char *p, const char *end)
{
    const char *start = p;
    while (p < end) {
        if (*p == '"') {                             /* skip "..." with its escapes */
            for (p++; p < end && *p != '"'; p++)
                if (*p == '\\' && p + 1 < end) p++;
            if (p < end) p++;
        } else if (*p == '`') {
            for (p++; p < end && sym_char(*p); p++) {}
        } else if (isalpha((unsigned char)*p)) {
            const char *w = p;
            while (p < end && name_char(*p)) p++;
            if (is_q_keyword(w, (size_t)(p - w))) return true;
        } else if (isdigit((unsigned char)*p)) {
            while (p < end && name_char(*p)) p++;    /* 1.5e, 0x0a, 10b */
        } else if (*p && strchr("+*%&|<>=~!#,$@?'^:{}\\", *p)) {
            return true;
        } else if (*p == '-' && p > start && (name_char(p[-1]) || p[-1] == ')' || p[-1] == ']')) {
            return true;                             /* x-1, not the literal -1 */
        } else {
            p++;
        }
    }
    return false;
}

/* Fills buf with a hint for text: the .qp call that does what its q word
 * would, or that q is not evaluated; empty when text does not look like q
 * (a malformed literal, an unknown name). */
static void q_hint(const char *s, size_t n, char *buf, size_t len)
{
    const char *p = s, *end = s + n;
    buf[0] = 0;
    while (p < end && isspace((unsigned char)*p)) p++;
    const char *w = p;
    while (p < end && name_char(*p)) p++;
    size_t wn = (size_t)(p - w);
    for (size_t i = 0; wn && i < sizeof q_equiv / sizeof q_equiv[0]; i++) {
        if (strlen(q_equiv[i].word) != wn || memcmp(w, q_equiv[i].word, wn)) continue;
        char t[64] = "";
        if (q_equiv[i].arg != ARG_NONE)
            next_name(q_equiv[i].arg == ARG_FROM ? after_from(p, end) : p, end, t, sizeof t);
        snprintf(buf, len, "try %s%s%s", q_equiv[i].call, t, q_equiv[i].note);
        return;
    }
    if (looks_like_q(w, end)) snprintf(buf, len, "q operators and keywords are not evaluated");
}

/* The error for text qpeach does not evaluate (a char message). */
static qp_value *unsupported_text(const char *s, size_t n)
{
    char hint[160];
    q_hint(s, n, hint, sizeof hint);
    int m = n > 200 ? 200 : (int)n;
    return qp_error("qpeach: unsupported expression: %.*s%s (%s%s" EVALUATES ")", m, s,
                    n > 200 ? "..." : "", hint, hint[0] ? "; " : "");
}

/* The error for a call of a function this server does not have: text is
 * the char message that named it (NULL for a list message, whose first
 * argument args[0] may name a table). A q keyword gets the hint. */
static qp_value *unknown_fn(const char *name, const qp_value *text, const qp_value *args)
{
    if (!is_q_word(name)) return qp_error("qpeach: unknown function: %s", name);
    if (text) return unsupported_text(qp_C(text), (size_t)text->v.n);
    char call[128], hint[160];
    const qp_value *a0 = args && args->type == QP_LIST && args->v.n ? qp_K(args)[0] : NULL;
    snprintf(call, sizeof call, "%s %s", name, a0 && a0->type == -QP_SYMBOL ? a0->s : "");
    q_hint(call, strlen(call), hint, sizeof hint);
    return qp_error("qpeach: unknown function: %s (%s; " EVALUATES ")", name, hint);
}

/* ====================================================================
 * Jobs
 * ==================================================================== */

/* The function a (text; args...) message names: PyKX's libraries and call
 * lambdas map to the functions that do their work; any other text is taken
 * as a function's name, as before. NULL when out of memory. */
static const char *pykx_lambda_or_name(const qp_value *f)
{
    const char *fn = NULL;
    switch (qp__pykx_text(qp_C(f), (size_t)f->v.n)) {
    case QP__PYKX_LIBRARIES: fn = QP__PYKX_LIBRARIES_FN; break;
    case QP__PYKX_CALL: fn = QP__PYKX_CALL_FN; break;
    default: return qp_sym_intern(qp_C(f), (size_t)f->v.n);
    }
    return qp_sym_intern(fn, strlen(fn));
}

/* A char message as a call: 0 with *name and *args (NULL for a bare
 * name) set, or 1 with j->result set (a literal's value, or an error). */
static int resolve_text(qp__job *j, const qp_value *x, const char **name, qp_value **args)
{
    int64_t sp = 0;
    while (sp < x->v.n && isspace((unsigned char)qp_C(x)[sp])) sp++;
    if (sp == x->v.n) { j->result = qp_identity(); return 1; }   /* "" is (::) */
    /* PyKX's session check and pykx.q load (pykxwire.c): answered as q
     * with pykx.q loaded answers them */
    int pk = qp__pykx_text(qp_C(x), (size_t)x->v.n);
    if (pk == QP__PYKX_SESSION) { j->result = qp_bool(true); return 1; }
    if (pk == QP__PYKX_LOAD) { j->result = qp_identity(); return 1; }
    qp__expr e;
    int rc = qp__expr_parse(qp_C(x), (size_t)x->v.n, &e);
    if (rc == QP_ENOMEM) { j->result = qp_error("wsfull"); return 1; }
    if (rc) {
        int n = x->v.n > 200 ? 200 : (int)x->v.n;
        snprintf(j->what, sizeof j->what, "%.*s", n, qp_C(x));
        /* a literal evaluates to itself, as in q */
        if (!(j->result = qp__literal_parse(qp_C(x), (size_t)x->v.n, NULL, 0)))
            j->result = unsupported_text(qp_C(x), (size_t)x->v.n);
        return 1;
    }
    *name = e.name;
    *args = e.args;
    return 0;
}

/* A bare name: a global's value, a db table (read off the loop, as
 * .qp.get `name), or q's error for an undefined name. text: the char
 * message that named it, or NULL. */
static void resolve_global(qp_server *s, qp__job *j, const char *name, const qp_value *text)
{
    snprintf(j->what, sizeof j->what, "%s", name);
    if ((j->result = qp__global_get(s, name))) return;
    if (qp__db_has(s, name)) {
        if (!(j->args = qp_list(1, qp_symbol(name)))) { j->result = qp_error("wsfull"); return; }
        j->fn = qp__fn_find(s, qp_sym_intern(".qp.get", 7));
        return;
    }
    if (qp__fn_find(s, name))
        j->result = qp_error("qpeach: %s is a function: call it as %s[...]", name, name);
    else if (is_q_word(name))                 /* `tables` alone: say what to use */
        j->result = unknown_fn(name, text, NULL);
    else
        j->result = qp_error("%s", name);    /* q's error for an undefined name */
}

/* Turns a decoded message into a call (j->fn, j->args) or a result. */
static void resolve(qp_server *s, qp__job *j, qp_value *x)
{
    const char *name = NULL;
    qp_value *args = NULL;
    if (x->type == QP_CHAR) {
        if (resolve_text(j, x, &name, &args)) return;
        if (!args) { resolve_global(s, j, name, x); return; }
    } else if (x->type == -QP_SYMBOL) {
        resolve_global(s, j, x->s, NULL);
        return;
    } else if (x->type == QP_LIST && x->v.n >= 1 &&
               (qp_K(x)[0]->type == -QP_SYMBOL || qp_K(x)[0]->type == QP_CHAR)) {
        qp_value *f = qp_K(x)[0];
        name = f->type == QP_CHAR ? pykx_lambda_or_name(f) : f->s;
        args = qp_slice(x, 1, x->v.n - 1);
    } else if (x->type == QP_SYMBOL && x->v.n >= 1) {
        /* q evaluates `f`a`b as f[`a;`b] */
        name = qp_S(x)[0];
        args = qp_vector(QP_LIST, x->v.n - 1);
        for (int64_t i = 1; args && i < x->v.n; i++)
            if (!(qp_K(args)[i - 1] = qp_symbol(qp_S(x)[i]))) { qp_unref(args); args = NULL; }
    } else {
        j->result = qp_error("qpeach: unsupported message: a %s (send a q expression as a "
                             "string, or (`name; args...))", qp_type_name(x->type));
        return;
    }
    if (!name || !args) { qp_unref(args); j->result = qp_error("wsfull"); return; }
    snprintf(j->what, sizeof j->what, "%s", name);
    if (args->type != QP_LIST || args->v.n == 0) {
        /* f alone, or f with a vector slice: make the argument list */
        qp_value *l = args->v.n == 0 ? qp_list(1, qp_identity()) : NULL;
        if (!l && args->v.n) {
            l = qp_vector(QP_LIST, args->v.n);
            for (int64_t i = 0; l && i < args->v.n; i++) qp_K(l)[i] = qp_item(args, i);
        }
        qp_unref(args);
        if (!(args = l)) { j->result = qp_error("wsfull"); return; }
    }
    const qp__fn *fn = qp__fn_find(s, name);
    if (!fn) {
        j->result = unknown_fn(name, x->type == QP_CHAR ? x : NULL, args);
        qp_unref(args);
        return;
    }
    if (fn->nargs >= 0 && args->v.n != fn->nargs) {
        j->result = qp_error("rank: %s takes %d argument%s, got %lld", name, fn->nargs,
                             fn->nargs == 1 ? "" : "s", (long long)args->v.n);
        qp_unref(args);
        return;
    }
    j->fn = fn;
    j->args = args;
}

static void encode(qp__job *j)
{
    uint8_t *msg = NULL, *z = NULL;
    size_t len = 0, zlen = 0;
    int rc = qp_ipc_encode(j->result, QP_MSG_RESPONSE, &msg, &len);
    if (rc) {
        qp_value *e = qp_error("qpeach: cannot send the result: %s", qp_strerror(rc));
        rc = e ? qp_ipc_encode(e, QP_MSG_RESPONSE, &msg, &len) : QP_ENOMEM;
        qp_unref(e);
        if (rc) { msg = NULL; len = 0; }
    }
    if (msg && qp_ipc_should_compress(len, j->local) && qp_ipc_compress(msg, len, &z, &zlen) == 0) {
        free(msg);
        msg = z;
        len = zlen;
    }
    j->out = msg;
    j->outlen = len;
}

int qp__job_run(qp_server *s, qp__job *j, int where)
{
    if (j->kind == QP__JOB_AUTH) {
        char *colon = strchr(j->cred, ':');
        const char *pw = "";
        if (colon) { *colon = 0; pw = colon + 1; }
        j->auth_ok = qp_auth_check(s->auth, j->cred, pw);
        if (colon) *colon = ':';
        return QP__JOB_DONE;
    }
    if (j->msg) {
        if (where == QP_EXEC_LOOP && j->msg->len > QP__SMALL_MSG) {
            qp__job_post(s, j, QP_EXEC_POOL);
            return QP__JOB_MOVED;
        }
        qp_value *x = qp_ipc_decode(j->msg, NULL);
        qp_buf_unref(j->msg);
        j->msg = NULL;
        if (!x) j->result = qp_error("wsfull");
        else if (x->type == QP_ERROR) j->result = qp_ref(x);   /* malformed: say so */
        else resolve(s, j, x);
        qp_unref(x);
    }
    if (j->fn && !j->result) {
        int exec = j->fn->exec;
        if (exec == QP_EXEC_POOL && s->opts.secondary == 0) exec = QP_EXEC_MAIN;
        if (exec != QP_EXEC_LOOP && exec != where) {
            qp__job_post(s, j, exec);
            return QP__JOB_MOVED;
        }
        j->result = j->fn->fn(s, j->args, j->fn->data);
        if (!j->result) j->result = qp_error("wsfull");
        qp_unref(j->args);
        j->args = NULL;
    }
    if (j->msgtype != QP_MSG_SYNC) {
        if (j->result && j->result->type == QP_ERROR) {
            char what[sizeof j->what * 4], text[1024];
            qp__log_text(what, sizeof what, j->what);
            qp__log_text(text, sizeof text, j->result->s);
            fprintf(stderr, "qpeach serve: async %s: error: %s\n", what, text);
        }
        qp_unref(j->result);
        j->result = NULL;
        return QP__JOB_DONE;
    }
    if (where != QP_EXEC_POOL &&
        qp_ipc_size(j->result) > QP__SMALL_MSG) {
        qp__job_post(s, j, QP_EXEC_POOL);     /* encode big results off this thread */
        return QP__JOB_MOVED;
    }
    encode(j);
    qp_unref(j->result);
    j->result = NULL;
    return QP__JOB_DONE;
}
