/* csv.c - CSV files to q tables and back.
 *
 * Loading: the file is mmap'd and its body (after the header line) split
 * into chunks at line boundaries. Pass 1 counts the rows of every chunk in
 * parallel; the columns are then allocated once at their final size, and
 * pass 2 parses every chunk in parallel straight into them (row offsets
 * come from pass 1). Threads pull chunks from an atomic counter so a slow
 * chunk does not hold the rest back. Symbols are interned through a small
 * per-thread cache of recent texts: most columns repeat a few symbols, and
 * a cache hit skips the shared table's lock.
 *
 * Types come from opts->types or are inferred from a sample: each column's
 * first SAMPLE values (blanks skipped; the scan goes on past the first rows
 * only for columns still short of values). The type is the narrowest one
 * every number, date or time of the sample parses as (qp__csv_classes),
 * reading q's text and what [output] format = iso writes alike: 2024-03 a
 * month, hh:mm a minute, hh:mm:ss a second, hh:mm:ss.fff a time, more
 * digits, 1D02:03:04 or an ISO 8601 duration (P1DT2H3M4.5S) a timespan;
 * a column of words only is a symbol column, one with no value at all a
 * float (null) column, as pandas makes it. Then every value of the file
 * must parse as that type: a misfit anywhere (a word in a float column, a
 * float after a thousand longs, a blank boolean) fails the load naming
 * file, line, column and value, never turning the column into symbols or
 * rounding it. A bad value costs one parse: there is no second pass.
 *
 * Lines end at \n, \r\n or a lone \r (old Mac files). A quoted field may
 * hold the delimiter, doubled quotes and line ends. Files without any quote
 * take a faster path (memchr line splitting).
 */
#include "csv_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SAMPLE 1000             /* values of a column its type is inferred from */
#define CHUNK_MIN (256 * 1024)
#define SYMCACHE 4096          /* per-thread symbol cache slots (power of 2) */

typedef struct col {
    char tc;               /* type char (lower case), '*' string, ' ' skip */
    int type;              /* qp type of the column: 1..19, or 0 for strings */
    bool inferred;         /* from the sample (the error says so) */
    bool active;           /* parsed (not skipped) */
    int64_t sampled;       /* inferred: rows the sample spanned for it */
    const char *name;      /* interned header text */
    bool held;             /* the type is opts->schema's (errors say so) */
    qp_value *v;           /* the column (NULL for skipped ones) */
} col;

typedef struct symslot {
    const char *s;         /* interned symbol */
    uint32_t n, h;         /* its length and hash */
} symslot;

typedef struct chunk {
    const char *beg, *end; /* whole lines */
    int64_t rows, row0;    /* rows in the chunk, index of its first */
    const char *err_at;    /* first bad field (or line) in the chunk */
    size_t err_len;
    int err_col;           /* column of the bad field; -1: field count */
    bool err_blank;        /* the bad field is blank */
    int err_fields;        /* fields found, for field-count errors */
    char *scratch;         /* unescaped quoted field */
    size_t scratch_cap;
} chunk;

typedef struct ctx {
    const char *path;
    const char *data, *end;/* the mapped file */
    bool quotes;           /* the file has a '"' somewhere */
    bool cr;               /* ... and a '\r' */
    char delim;
    int ncols;
    col *cols;
    chunk *chunks;
    int nchunks;
    atomic_int next;       /* next chunk to take */
    int pass;              /* 1 count, 2 parse */
    int oom;               /* set by any thread on allocation failure */
    const qp_csv_opts *o;
} ctx;

/* ------------------------------------------------------------------ */
/* Lines and fields                                                    */
/* ------------------------------------------------------------------ */

/* End of the unquoted line at p: its '\n', a lone '\r' before that, or end.
 * For "\r\n" the '\n' (trim_cr drops the '\r'), so the common endings
 * cost one memchr each, and a second over the line in files with a '\r'. */
static const char *eol(const ctx *c, const char *p, const char *end)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl) nl = end;
    if (c->cr) {
        const char *r = memchr(p, '\r', (size_t)(nl - p));
        if (r && r + 1 != nl) return r;
    }
    return nl;
}

/* End of the line starting at p (its '\n', lone '\r' or end), honouring
 * quotes. */
static const char *line_end(const ctx *c, const char *p, const char *end)
{
    if (!c->quotes) return eol(c, p, end);
    /* Only a quote that opens a field starts quoted text (as next_field
     * reads it), so a stray quote inside a bare field (5" pipe) does not
     * swallow the following lines. */
    bool start = true;
    for (; p < end; p++) {
        if (start && *p == '"') {
            for (p++; p < end; p++) {
                if (*p != '"') continue;
                if (p + 1 < end && p[1] == '"') { p++; continue; }
                break;
            }
            if (p >= end) return end;
            start = false;
            continue;
        }
        if (*p == '\n') return p;
        if (*p == '\r' && (p + 1 == end || p[1] != '\n')) return p;
        start = *p == c->delim;
    }
    return end;
}

/* Line content end: drops a '\r' before the '\n'. */
static const char *trim_cr(const char *b, const char *e)
{
    return e > b && e[-1] == '\r' ? e - 1 : e;
}

/* The next field of a line: [*fs, *fe) is its text (unescaped into the
 * scratch buffer when it had doubled quotes). Returns the position after
 * the field (at the delimiter or line end), or NULL on OOM. */
static const char *next_field(chunk *k, const char *p, const char *le, char delim,
                              const char **fs, const char **fe)
{
    if (p < le && *p == '"') {
        const char *q = p + 1;
        bool doubled = false;
        for (; q < le; q++) {
            if (*q != '"') continue;
            if (q + 1 < le && q[1] == '"') { doubled = true; q++; continue; }
            break;
        }
        if (q < le && (q + 1 == le || q[1] == delim)) {
            if (!doubled) { *fs = p + 1; *fe = q; return q + 1; }
            size_t need = (size_t)(q - p);
            if (need > k->scratch_cap) {
                char *s = realloc(k->scratch, need * 2);
                if (!s) return NULL;
                k->scratch = s;
                k->scratch_cap = need * 2;
            }
            size_t n = 0;
            for (const char *r = p + 1; r < q; r++) {
                k->scratch[n++] = *r;
                if (*r == '"') r++;
            }
            *fs = k->scratch;
            *fe = k->scratch + n;
            return q + 1;
        }
        /* Unbalanced quote: take the text up to the delimiter as it is. */
    }
    const char *q = p;
    while (q < le && *q != delim) q++;
    *fs = p;
    *fe = q;
    return q;
}

/* ------------------------------------------------------------------ */
/* One field into a column                                             */
/* ------------------------------------------------------------------ */

static uint32_t hash32(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static const char *sym_get(symslot *cache, const char *s, size_t n)
{
    uint32_t h = hash32(s, n);
    symslot *e = &cache[h & (SYMCACHE - 1)];
    if (e->s && e->h == h && e->n == n && memcmp(e->s, s, n) == 0) return e->s;
    const char *r = qp_sym_intern(s, n);
    if (r && n < UINT32_MAX) { e->s = r; e->n = (uint32_t)n; e->h = h; }
    return r;
}

static void set_null(col *c, int64_t r)
{
    void *d = c->v->v.data;
    switch (c->type) {
    case QP_BOOL: case QP_BYTE: ((uint8_t *)d)[r] = 0; break;
    case QP_GUID: memset((uint8_t *)d + r * 16, 0, 16); break;
    case QP_SHORT: ((int16_t *)d)[r] = QP_NULL_H; break;
    case QP_INT: case QP_MONTH: case QP_DATE: case QP_MINUTE: case QP_SECOND: case QP_TIME:
        ((int32_t *)d)[r] = QP_NULL_I; break;
    case QP_LONG: case QP_TIMESTAMP: case QP_TIMESPAN: ((int64_t *)d)[r] = QP_NULL_J; break;
    case QP_REAL: ((float *)d)[r] = QP_NULL_E; break;
    case QP_FLOAT: case QP_DATETIME: ((double *)d)[r] = QP_NULL_F; break;
    case QP_CHAR: ((char *)d)[r] = ' '; break;
    case QP_SYMBOL: ((const char **)d)[r] = qp_sym_intern("", 0); break;
    }
}

/* 0N/0W/-0W for numeric and temporal columns. Returns 0 if it was one. */
static int put_special(col *c, int64_t r, const char *s, size_t n)
{
    int sp = qp__csv_special(s, n);
    if (sp == 2) return -1;
    void *d = c->v->v.data;
    switch (c->type) {
    case QP_SHORT:
        ((int16_t *)d)[r] = sp == 0 ? QP_NULL_H : (int16_t)(sp * QP_INF_H); return 0;
    case QP_INT: case QP_MONTH: case QP_DATE: case QP_MINUTE: case QP_SECOND: case QP_TIME:
        ((int32_t *)d)[r] = sp == 0 ? QP_NULL_I : sp * QP_INF_I; return 0;
    case QP_LONG: case QP_TIMESTAMP: case QP_TIMESPAN:
        ((int64_t *)d)[r] = sp == 0 ? QP_NULL_J : sp * QP_INF_J; return 0;
    case QP_REAL: ((float *)d)[r] = sp == 0 ? QP_NULL_E : (float)sp * QP_INF_E; return 0;
    case QP_FLOAT: case QP_DATETIME:
        ((double *)d)[r] = sp == 0 ? QP_NULL_F : sp * QP_INF_F; return 0;
    }
    return -1;
}

/* Parses s[0..n) into row r of column c. Returns 0, -1 if the text is not
 * of the column's type, QP_ENOMEM on OOM. A blank is the column's null;
 * q has no boolean null, so a blank in a column only guessed boolean is
 * an error (0b when the type was given, as q's 0: reads it). */
static int put_field(col *c, int64_t r, const char *s, size_t n, symslot *cache)
{
    if (n == 0) {
        if (c->type == QP_BOOL && c->inferred) return -1;
        if (c->type == QP_LIST) {
            qp_value *e = qp_string("", 0);
            if (!e) return QP_ENOMEM;
            qp_K(c->v)[r] = e;
        } else {
            set_null(c, r);
        }
        return 0;
    }
    void *d = c->v->v.data;
    int64_t j;
    double f;
    int32_t i;
    int fd;
    bool secs;
    switch (c->type) {
    case QP_SYMBOL: {
        const char *y = sym_get(cache, s, n);
        if (!y) return QP_ENOMEM;
        ((const char **)d)[r] = y;
        return 0;
    }
    case QP_LONG:
        if (qp__csv_long(s, n, &j) < 0) return put_special(c, r, s, n);
        ((int64_t *)d)[r] = j;
        return 0;
    case QP_FLOAT:
        if (qp__csv_float(s, n, &f) < 0) return put_special(c, r, s, n);
        ((double *)d)[r] = f;
        return 0;
    case QP_REAL:
        if (qp__csv_float(s, n, &f) < 0) return put_special(c, r, s, n);
        ((float *)d)[r] = (float)f;
        return 0;
    case QP_INT:
        if (qp__csv_long(s, n, &j) < 0 || j < -INT32_MAX || j > INT32_MAX)
            return put_special(c, r, s, n);
        ((int32_t *)d)[r] = (int32_t)j;
        return 0;
    case QP_SHORT:
        if (qp__csv_long(s, n, &j) < 0 || j < -INT16_MAX || j > INT16_MAX)
            return put_special(c, r, s, n);
        ((int16_t *)d)[r] = (int16_t)j;
        return 0;
    case QP_DATE:
        if (qp__csv_date(s, n, &i) < 0) return put_special(c, r, s, n);
        ((int32_t *)d)[r] = i;
        return 0;
    case QP_MONTH:
        if (qp__csv_month(s, n, &i) < 0) return put_special(c, r, s, n);
        ((int32_t *)d)[r] = i;
        return 0;
    case QP_TIMESTAMP:
        if (qp__csv_timestamp(s, n, &j) < 0) return put_special(c, r, s, n);
        ((int64_t *)d)[r] = j;
        return 0;
    case QP_DATETIME:
        if (qp__csv_timestamp(s, n, &j) < 0) return put_special(c, r, s, n);
        ((double *)d)[r] = (double)j / 86400e9;
        return 0;
    case QP_TIMESPAN:
        if (qp__csv_timespan(s, n, &j) < 0) return put_special(c, r, s, n);
        ((int64_t *)d)[r] = j;
        return 0;
    /* clocks as q writes them, negative ones too; a minute also as
     * hh:mm:00, as format = iso writes it */
    case QP_TIME:
        if (qp__csv_sclock(s, n, &j, &fd, &secs) < 0 || fd > 3) return put_special(c, r, s, n);
        ((int32_t *)d)[r] = (int32_t)(j / 1000000);
        return 0;
    case QP_SECOND:
        if (qp__csv_sclock(s, n, &j, &fd, &secs) < 0 || fd || !secs) return put_special(c, r, s, n);
        ((int32_t *)d)[r] = (int32_t)(j / 1000000000);
        return 0;
    case QP_MINUTE:
        if (qp__csv_sclock(s, n, &j, &fd, &secs) < 0 || fd || j % 60000000000LL)
            return put_special(c, r, s, n);
        ((int32_t *)d)[r] = (int32_t)(j / 60000000000LL);
        return 0;
    case QP_BOOL: return qp__csv_bool(s, n, (uint8_t *)d + r);
    case QP_BYTE: return qp__csv_byte(s, n, (uint8_t *)d + r);
    case QP_GUID: return qp__csv_guid(s, n, (uint8_t *)d + r * 16);
    case QP_CHAR:
        if (n != 1) return -1;
        ((char *)d)[r] = s[0];
        return 0;
    case QP_LIST: {
        qp_value *e = qp_string(s, n);
        if (!e) return QP_ENOMEM;
        qp_K(c->v)[r] = e;
        return 0;
    }
    }
    return -1;
}

/* ------------------------------------------------------------------ */
/* Passes                                                              */
/* ------------------------------------------------------------------ */

static void count_chunk(ctx *c, chunk *k)
{
    int64_t rows = 0;
    for (const char *p = k->beg; p < k->end;) {
        const char *le = line_end(c, p, k->end);
        if (trim_cr(p, le) > p) rows++;
        p = le + 1;
    }
    k->rows = rows;
}

static void parse_chunk(ctx *c, chunk *k)
{
    symslot *cache = calloc(SYMCACHE, sizeof *cache);
    if (!cache) { c->oom = 1; return; }
    int64_t r = k->row0;
    for (const char *p = k->beg; p < k->end;) {
        const char *nl = line_end(c, p, k->end), *le = trim_cr(p, nl);
        const char *line = p;
        p = nl + 1;
        if (le == line) continue;
        int f = 0;
        for (const char *q = line;; f++) {
            const char *fs, *fe, *raw = q;
            q = next_field(k, q, le, c->delim, &fs, &fe);
            if (!q) { c->oom = 1; goto done; }
            if (f < c->ncols) {
                col *cl = &c->cols[f];
                if (cl->active) {
                    int rc = put_field(cl, r, fs, (size_t)(fe - fs), cache);
                    if (rc == QP_ENOMEM) { c->oom = 1; goto done; }
                    if (rc < 0) {
                        /* the field as it stands in the file: fs may point
                         * into the scratch buffer (a field with doubled
                         * quotes), which line_of cannot measure from */
                        k->err_at = raw;
                        k->err_len = (size_t)(q - raw);
                        k->err_col = f;
                        k->err_blank = fe == fs;
                        goto done;
                    }
                }
            }
            if (q >= le) break;
            q++;
        }
        if (f + 1 != c->ncols) {
            k->err_at = line;
            k->err_col = -1;
            k->err_fields = f + 1;
            goto done;
        }
        r++;
    }
done:
    free(cache);
}

static void *worker(void *arg)
{
    ctx *c = arg;
    for (;;) {
        int i = atomic_fetch_add(&c->next, 1);
        if (i >= c->nchunks || c->oom) break;
        if (c->pass == 1) count_chunk(c, &c->chunks[i]);
        else parse_chunk(c, &c->chunks[i]);
    }
    return NULL;
}

static void run_pass(ctx *c, int pass, int threads)
{
    c->pass = pass;
    atomic_store(&c->next, 0);
    if (threads > c->nchunks) threads = c->nchunks;
    pthread_t tid[256];
    int started = 0;
    for (int t = 1; t < threads && t < 256; t++)
        if (pthread_create(&tid[started], NULL, worker, c) == 0) started++;
    worker(c);                     /* this thread works too */
    for (int t = 0; t < started; t++) pthread_join(tid[t], NULL);
}

/* ------------------------------------------------------------------ */
/* Setup                                                               */
/* ------------------------------------------------------------------ */

static int type_of(char tc)
{
    static const char chars[] = " bg xhijefcspmdznuvt";
    if (tc == '*') return QP_LIST;
    const char *p = tc ? strchr(chars + 1, tc) : NULL;
    return p ? (int)(p - chars) : -1;
}

static const char *article(const char *noun)
{
    return strchr("aeiou", noun[0]) ? "an" : "a";
}

static int64_t line_of(const ctx *c, const char *at)
{
    int64_t line = 1;
    if (!c->cr) {
        for (const char *p = c->data; (p = memchr(p, '\n', (size_t)(at - p))) != NULL; p++) line++;
        return line;
    }
    for (const char *p = c->data; p < at; p++)
        line += *p == '\n' || (*p == '\r' && (p + 1 == c->end || p[1] != '\n'));
    return line;
}

/* Splits the body into chunks at line starts. */
static int split(ctx *c, const char *body, int threads)
{
    size_t size = (size_t)(c->end - body);
    int n = threads * 4;
    if ((size_t)n > size / CHUNK_MIN) n = (int)(size / CHUNK_MIN);
    if (n < 1) n = 1;
    c->chunks = calloc((size_t)n, sizeof *c->chunks);
    if (!c->chunks) return QP_ENOMEM;
    const char *p = body;
    int k = 0;
    for (int i = 0; i < n && p < c->end; i++) {
        const char *target = body + size / (size_t)n * (size_t)(i + 1);
        const char *e = p;
        if (i == n - 1) e = c->end;
        else if (!c->quotes) {
            if (target < p) target = p;
            const char *nl = eol(c, target, c->end);
            e = nl < c->end ? nl + 1 : c->end;
        } else {
            while (e < target && e < c->end) e = line_end(c, e, c->end) + 1;
            if (e > c->end) e = c->end;
        }
        if (e > p) {
            c->chunks[k].beg = p;
            c->chunks[k].end = e;
            k++;
        }
        p = e;
    }
    c->nchunks = k;
    return 0;
}

/* What the sample saw of one inferred column. */
typedef struct seen {
    unsigned acc;          /* classes every typed value fits; ~0u: none yet */
    bool words;            /* a value that is no number, date or time */
    int n;                 /* values seen */
} seen;

/* A value's classes into the column's: a value of no type but symbol is a
 * word; one that would leave the typed values no common type is skipped
 * here, and the parse reports it where it stands. */
static void see(seen *sn, unsigned cls)
{
    unsigned typed = cls & ~(unsigned)CSV_C_S;
    if (!typed) sn->words = true;
    else if (sn->acc & typed) sn->acc &= typed;
}

/* Infers the type of every inferred column from its first SAMPLE values
 * (blanks skipped): the narrowest type its numbers, dates and times all
 * parse as; symbol for words only; float (all null) for no value at all.
 * 0 or QP_ENOMEM. */
static int sample(ctx *c, const char *body)
{
    seen *sn = calloc((size_t)c->ncols, sizeof *sn);
    if (!sn) return QP_ENOMEM;
    int open = 0;                  /* inferred columns short of SAMPLE values */
    for (int f = 0; f < c->ncols; f++)
        if (c->cols[f].inferred) { sn[f].acc = ~0u; open++; }
    chunk k = {0};
    int64_t rows = 0;
    int rc = 0;
    for (const char *p = body; p < c->end && open > 0;) {
        const char *nl = line_end(c, p, c->end), *le = trim_cr(p, nl);
        const char *q = p;
        p = nl + 1;
        if (le == q) continue;
        rows++;
        for (int f = 0; f < c->ncols; f++) {
            const char *fs, *fe;
            if (!(q = next_field(&k, q, le, c->delim, &fs, &fe))) { rc = QP_ENOMEM; goto done; }
            col *cl = &c->cols[f];
            if (cl->inferred && sn[f].n < SAMPLE && fe > fs) {
                see(&sn[f], qp__csv_classes(fs, (size_t)(fe - fs)));
                if (++sn[f].n == SAMPLE) { cl->sampled = rows; open--; }
            }
            if (q >= le) break;
            q++;
        }
    }
    for (int f = 0; f < c->ncols; f++) {
        col *cl = &c->cols[f];
        if (!cl->inferred) continue;
        if (sn[f].n < SAMPLE) cl->sampled = rows;
        cl->tc = sn[f].acc != ~0u ? qp__csv_pick(sn[f].acc) : sn[f].words ? 's' : 'f';
        cl->type = type_of(cl->tc);
    }
done:
    free(k.scratch);
    free(sn);
    return rc;
}

static qp_value *load_error(ctx *c)
{
    chunk *bad = NULL;
    for (int i = 0; i < c->nchunks; i++)
        if (c->chunks[i].err_at && (!bad || c->chunks[i].err_at < bad->err_at)) bad = &c->chunks[i];
    if (!bad) return NULL;
    long long line = line_of(c, bad->err_at);
    if (bad->err_col < 0)
        return qp_error("%s:%lld: %d fields, expected %d", c->path, line, bad->err_fields, c->ncols);
    col *cl = &c->cols[bad->err_col];
    const char *tn = cl->type ? qp_type_name(cl->type) : "string", *v = bad->err_at;
    int shown = bad->err_len > 40 ? 40 : (int)bad->err_len;
    const char *more = bad->err_len > 40 ? "..." : "";
    long long n = cl->sampled;
    if (bad->err_blank)
        return qp_error("%s:%lld: column %s: a blank in a boolean column: q has no boolean null "
                        "(boolean inferred from the first %lld rows; give --types to choose, "
                        "where B reads a blank as false)", c->path, line, cl->name, n);
    if (cl->inferred)
        return qp_error("%s:%lld: column %s: '%.*s%s' is not %s %s (inferred from the first %lld "
                        "rows; give --types to choose)", c->path, line, cl->name, shown, v, more,
                        article(tn), tn, n);
    if (cl->held) {
        const char *is = qp_type_name(type_of(qp__csv_pick(qp__csv_classes(v, bad->err_len))));
        return qp_error("%s:%lld: column %s: '%.*s%s' is %s %s, not %s %s (as %s holds it)", c->path,
                        line, cl->name, shown, v, more, article(is), is, article(tn), tn,
                        c->o->schema->of);
    }
    return qp_error("%s:%lld: column %s: '%.*s%s' is not %s %s", c->path, line, cl->name, shown, v,
                    more, article(tn), tn);
}

static int alloc_col(col *cl, int64_t rows)
{
    qp_unref(cl->v);
    cl->v = qp_vector(cl->type, rows);
    return cl->v ? 0 : QP_ENOMEM;
}

/* The header line h..hle: c->ncols and the column names. 0 or QP_ENOMEM. */
static int read_header(ctx *c, const char *h, const char *hle)
{
    chunk k = {0};
    const char *fs, *fe, *q = h;
    for (c->ncols = 0;; c->ncols++) {
        q = next_field(&k, q, hle, c->delim, &fs, &fe);
        if (!q || q >= hle) { c->ncols++; break; }
        q++;
    }
    c->cols = calloc((size_t)c->ncols, sizeof *c->cols);
    q = h;
    for (int f = 0; c->cols && f < c->ncols; f++) {
        q = next_field(&k, q, hle, c->delim, &fs, &fe);
        c->cols[f].name = q ? qp_sym_intern(fs, (size_t)(fe - fs)) : NULL;
        if (!c->cols[f].name) { free(c->cols); c->cols = NULL; break; }
        q++;
    }
    free(k.scratch);
    return c->cols ? 0 : QP_ENOMEM;
}

static char lower(char t) { return t >= 'A' && t <= 'Z' ? (char)(t + 32) : t; }

/* The name of a type char's type ('*': string). */
static const char *tc_name(char tc) { return type_of(tc) > 0 ? qp_type_name(type_of(tc)) : "string"; }

/* The schema's (lower-case) type char for column name, or 0. */
static char held_type(const qp_csv_schema *sc, const char *name)
{
    for (int i = 0; i < sc->n; i++)
        if (!strcmp(sc->names[i], name)) return lower(sc->types[i]);
    return 0;
}

/* Each column's type: given (types), held (opts->schema) or to infer
 * (NULL types, no schema). An error value naming the column, or NULL. */
static qp_value *apply_types(ctx *c, const char *types)
{
    const qp_csv_schema *sc = c->o ? c->o->schema : NULL;
    if (types && (int)strlen(types) != c->ncols)
        return qp_error("%s: %zu types given for %d columns", c->path, strlen(types), c->ncols);
    int kept = 0;
    for (int f = 0; f < c->ncols; f++) {
        col *cl = &c->cols[f];
        char t = types ? lower(types[f]) : 0, h = sc ? held_type(sc, cl->name) : 0;
        if (!(cl->active = t != ' ')) continue;
        if (t && type_of(t) < 0)
            return qp_error("%s: unknown type char '%c' for column %s", c->path, types[f], cl->name);
        if (sc && !h) return qp_error("%s: column %s is not in %s", c->path, cl->name, sc->of);
        if (t && h && t != h)
            return qp_error("%s: column %s: given as %s, but %s holds it as %s", c->path, cl->name,
                            tc_name(t), sc->of, tc_name(h));
        cl->held = h != 0;
        cl->inferred = !t && !h;
        cl->tc = t ? t : h;
        cl->type = cl->tc ? type_of(cl->tc) : 0;
        kept++;
    }
    /* A table needs a column: its row count is its columns' length. */
    if (kept == 0 && types)
        return qp_error("%s: every column is skipped (types \"%s\"): nothing to load", c->path, types);
    return NULL;
}

/* A name twice among the loaded columns would leave one of them unseen (a
 * dict keeps one value per key); a schema column must be there. An error
 * value, or NULL. */
static qp_value *check_names(ctx *c)
{
    for (int f = 0; f < c->ncols; f++)
        for (int g = 0; g < f && c->cols[f].active; g++)
            if (c->cols[g].active && c->cols[g].name == c->cols[f].name)   /* interned */
                return qp_error("%s: column %s appears twice in the header (fields %d and %d)",
                                c->path, c->cols[f].name, g + 1, f + 1);
    const qp_csv_schema *sc = c->o ? c->o->schema : NULL;
    for (int i = 0; sc && i < sc->n; i++) {
        int f = 0;
        while (f < c->ncols && !(c->cols[f].active && !strcmp(c->cols[f].name, sc->names[i]))) f++;
        if (f == c->ncols)
            return qp_error("%s: column %s (%s in %s) is not in the file", c->path, sc->names[i],
                            tc_name(lower(sc->types[i])), sc->of);
    }
    return NULL;
}

/* The loaded columns (taken from c) as a table; NULL if out of memory. */
static qp_value *to_table(ctx *c)
{
    int nout = 0;
    for (int f = 0; f < c->ncols; f++) nout += c->cols[f].v != NULL;
    qp_value *names = qp_vector(QP_SYMBOL, nout), *list = qp_vector(QP_LIST, nout);
    if (!names || !list) { qp_unref(names); qp_unref(list); return NULL; }
    for (int f = 0, o = 0; f < c->ncols; f++) {
        if (!c->cols[f].v) continue;
        qp_S(names)[o] = c->cols[f].name;
        qp_K(list)[o++] = c->cols[f].v;
        c->cols[f].v = NULL;
    }
    qp_value *d = qp_dict(names, list);
    return d ? qp_table(d) : NULL;
}

qp_value *qp_csv_load(const char *path, const qp_csv_opts *opts)
{
    ctx c = {0};
    qp_value *result = NULL;
    int fd = -1;
    size_t size = 0;
    void *map = MAP_FAILED;
    c.path = path;
    c.o = opts;
    c.delim = opts && opts->delim ? opts->delim : ',';
    int threads = opts && opts->threads > 0 ? opts->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (threads < 1) threads = 1;
    if (threads > 256) threads = 256;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        result = qp_error("%s: %s", path, strerror(errno));
        goto done;
    }
    size = (size_t)st.st_size;
    if (size == 0) { result = qp_error("%s: empty file, no header line", path); goto done; }
    map = mmap(NULL, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (map == MAP_FAILED) { result = qp_error("%s: mmap: %s", path, strerror(errno)); goto done; }
    madvise(map, size, MADV_SEQUENTIAL);
    c.data = map;
    c.end = c.data + size;
    c.quotes = memchr(c.data, '"', size) != NULL;
    c.cr = memchr(c.data, '\r', size) != NULL;

    /* Header line (skipping a UTF-8 byte order mark). */
    const char *h = c.data;
    if (size >= 3 && memcmp(h, "\xEF\xBB\xBF", 3) == 0) h += 3;
    const char *hnl = line_end(&c, h, c.end), *hle = trim_cr(h, hnl);
    const char *body = hnl < c.end ? hnl + 1 : c.end;
    if (read_header(&c, h, hle)) goto done;
    const char *types = opts ? opts->types : NULL;
    if ((result = apply_types(&c, types)) != NULL || (result = check_names(&c)) != NULL) goto done;
    if (sample(&c, body) < 0) goto done;

    if (split(&c, body, threads) < 0) goto done;
    run_pass(&c, 1, threads);
    int64_t rows = 0;
    for (int i = 0; i < c.nchunks; i++) { c.chunks[i].row0 = rows; rows += c.chunks[i].rows; }
    for (int f = 0; f < c.ncols; f++)
        if (c.cols[f].active && alloc_col(&c.cols[f], rows) < 0) goto done;
    run_pass(&c, 2, threads);
    if (c.oom || (result = load_error(&c)) != NULL) goto done;
    result = to_table(&c);
done:
    for (int f = 0; c.cols && f < c.ncols; f++) qp_unref(c.cols[f].v);
    for (int i = 0; c.chunks && i < c.nchunks; i++) free(c.chunks[i].scratch);
    free(c.chunks);
    free(c.cols);
    if (map != MAP_FAILED) munmap(map, size);
    if (fd >= 0) close(fd);
    return result;
}

/* ------------------------------------------------------------------ */
/* Writing                                                             */
/* ------------------------------------------------------------------ */

typedef struct out {
    FILE *f;
    char delim;
    bool iso;              /* [output] format = iso: qp__format_csv_cell */
    size_t n;              /* bytes of the current row's fields so far */
} out;

/* Text quoted when it holds the delimiter, a quote, a newline, or edge
 * spaces (which a reader might trim). */
static void put_text(out *o, const char *s, size_t n)
{
    bool quote = n && (s[0] == ' ' || s[n - 1] == ' ');
    for (size_t i = 0; i < n && !quote; i++)
        quote = s[i] == o->delim || s[i] == '"' || s[i] == '\n' || s[i] == '\r';
    o->n += n + 2 * quote;
    if (!quote) { fwrite(s, 1, n, o->f); return; }
    fputc('"', o->f);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"') fputc('"', o->f);
        fputc(s[i], o->f);
    }
    fputc('"', o->f);
}

static int put_value(out *o, const qp_value *c, int64_t r)
{
    char buf[96];
    if (c->type == QP_SYMBOL || c->type == QP_ENUM) {
        const char *s = c->type == QP_ENUM ? qp_enum_sym(c, r) : qp_S(c)[r];
        put_text(o, s, strlen(s));
        return 0;
    }
    if (c->type == QP_CHAR) {
        put_text(o, qp_C(c) + r, 1);
        return 0;
    }
    if (qp_is_vector(c)) {
        int n = qp__format_csv_cell(buf, sizeof buf, c->type,
                                    (const uint8_t *)c->v.data + (size_t)r * qp_type_width(c->type),
                                    o->iso);
        if (n < 0) return QP_EARG;
        fwrite(buf, 1, (size_t)n, o->f);
        o->n += (size_t)n;
        return 0;
    }
    const qp_value *x = qp_K(c)[r];
    if (x->type == QP_CHAR) { put_text(o, x->v.data, (size_t)x->v.n); return 0; }
    if (x->type == -QP_SYMBOL) { put_text(o, x->s, strlen(x->s)); return 0; }
    if (qp_is_atom(x)) {
        int n = qp__format_csv_cell(buf, sizeof buf, -x->type, &x->g, o->iso);
        if (n < 0) return QP_EARG;
        fwrite(buf, 1, (size_t)n, o->f);
        o->n += (size_t)n;
        return 0;
    }
    return QP_ETYPE;       /* nested lists have no CSV text */
}

int qp_csv_write(const qp_value *table, const char *path)
{
    return qp_csv_write_iso(table, path, false);
}

/* The header and rows of table to f; 0 or a negative code. */
static int write_rows(const qp_value *table, FILE *f, bool iso)
{
    const qp_value *cols[4096];
    const char *names[4096];
    int ncols = 0;
    const qp_value *parts[2] = {table, NULL};
    if (qp_is_keyed_table(table)) {            /* keys first, as 0: does */
        parts[0] = qp_dict_keys(table);
        parts[1] = qp_dict_values(table);
    } else if (table->type != QP_TABLE) {
        return QP_ETYPE;
    }
    for (int p = 0; p < 2 && parts[p]; p++) {
        const qp_value *cv = qp_table_columns(parts[p]), *nv = qp_table_names(parts[p]);
        for (int64_t i = 0; i < cv->v.n; i++) {
            if (ncols == 4096) return QP_EARG;
            cols[ncols] = qp_K(cv)[i];
            names[ncols++] = qp_S(nv)[i];
        }
    }
    int64_t rows = ncols ? qp_count(cols[0]) : 0;
    out o = {f, ',', iso, 0};
    int rc = 0;
    for (int i = 0; i < ncols; i++) {
        if (i) fputc(',', o.f);
        put_text(&o, names[i], strlen(names[i]));
    }
    fputc('\n', o.f);
    for (int64_t r = 0; r < rows && rc == 0; r++) {
        o.n = 0;
        for (int i = 0; i < ncols && rc == 0; i++) {
            if (i) fputc(',', o.f);
            rc = put_value(&o, cols[i], r);
        }
        /* A blank line is no row to a reader (pandas skips it): a null in a
         * one-column table is an empty quoted field, as Python's csv writes. */
        if (ncols == 1 && o.n == 0) fputs("\"\"", o.f);
        fputc('\n', o.f);
    }
    if (ferror(o.f) && rc == 0) rc = QP_EIO;
    return rc;
}

int qp_csv_fwrite(const qp_value *table, FILE *f, bool iso)
{
    int rc = write_rows(table, f, iso);
    if (fflush(f) && rc == 0) rc = -errno;
    return rc;
}

int qp_csv_write_iso(const qp_value *table, const char *path, bool iso)
{
    if (!qp_is_keyed_table(table) && table->type != QP_TABLE) return QP_ETYPE;
    FILE *f = fopen(path, "w");
    if (!f) return -errno;
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    int rc = write_rows(table, f, iso);
    if (fclose(f) != 0 && rc == 0) rc = -errno;
    if (rc < 0) unlink(path);
    return rc;
}
