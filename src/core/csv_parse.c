/* csv_parse.c - the chunks of an opened CSV (csv.c) parsed into columns on
 * threads: all at once into a table (qp_csv_load), or a batch of rows at a
 * time handed to a sink in file order (qp_csv_scan).
 *
 * Loading: pass 1 counts the rows of every chunk in parallel; the columns
 * are then allocated once at their final size, and pass 2 parses every
 * chunk in parallel straight into them (row offsets come from pass 1).
 * Threads pull chunks from an atomic counter so a slow chunk does not hold
 * the rest back.
 *
 * Scanning: one pass. Each thread parses a chunk (a few MB of whole lines)
 * into buffers of its own, waits until the chunk before it was handed
 * over, hands its rows to the sink and takes the next chunk. So at most a
 * chunk's rows per thread are in memory, and the file's pages a chunk read
 * are dropped from the process once it is parsed (the page cache keeps
 * them). The first bad value in file order stops the scan: every chunk
 * before it was handed over cleanly, so its error is the file's first.
 *
 * Symbols: each chunk keeps a table of the texts it has met (symtab): a
 * text is interned (the process-wide table, under its lock) the first time
 * a chunk meets it; later rows find it in the chunk's table. A scanned
 * batch gives a symbol column as an enumeration (type 20) over the chunk's
 * own names, in the order they first appear, so that a writer maps each
 * distinct name once per chunk rather than each row.
 */
#include "csv_int.h"

#include <pthread.h>
#include <unistd.h>

#define CHUNK_MIN (256 * 1024)         /* qp_csv_load: smallest chunk */
#define SCAN_CHUNK (2 * 1024 * 1024)   /* qp_csv_scan: chunk size */

/* ------------------------------------------------------------------ */
/* A chunk's symbols                                                   */
/* ------------------------------------------------------------------ */

typedef struct symslot {
    const char *s;         /* interned; NULL: empty slot */
    uint64_t w0;           /* its first 8 bytes (zero-padded): a symbol
                            * of up to 8 bytes is compared by this alone */
    size_t n;
    int64_t id;            /* its index in names */
} symslot;

typedef struct symtab {
    symslot *slots;        /* open addressing, at most half full */
    size_t mask;           /* slots - 1 */
    int64_t n, cap;        /* names, allocated */
    const char **names;    /* by id, in the order first met */
} symtab;

static uint64_t prefix8(const char *s, size_t n)
{
    uint64_t w = 0;
    if (n >= 8) memcpy(&w, s, 8);
    else for (size_t i = 0; i < n; i++) w |= (uint64_t)(uint8_t)s[i] << (8 * i);
    return w;
}

static inline uint64_t hash_text(const char *s, size_t n, uint64_t w0)
{
    uint64_t h = (w0 ^ n) * 0xff51afd7ed558ccdull, w;
    for (size_t i = 8; i < n; i += 8) {
        w = prefix8(s + i, n - i);
        h = (h ^ (h >> 32) ^ w) * 0xc4ceb9fe1a85ec53ull;
    }
    return h ^ (h >> 29);
}

/* Doubles the slots (1024 at first) and the names. 0 or QP_ENOMEM. */
static int grow_syms(symtab *t)
{
    size_t size = t->slots ? (t->mask + 1) * 2 : 1024;
    symslot *slots = calloc(size, sizeof *slots);
    const char **names = realloc(t->names, size / 2 * sizeof *names);
    if (names) t->names = names;
    if (!slots || !names) { free(slots); return QP_ENOMEM; }
    for (size_t i = 0; t->slots && i <= t->mask; i++) {
        const symslot *e = &t->slots[i];
        if (!e->s) continue;
        size_t j = hash_text(e->s, e->n, e->w0) & (size - 1);
        while (slots[j].s) j = (j + 1) & (size - 1);
        slots[j] = *e;
    }
    free(t->slots);
    t->slots = slots;
    t->mask = size - 1;
    t->cap = (int64_t)(size / 2);
    return 0;
}

/* The id of text s[0..n) (w0 its prefix8) in t, interned and added when
 * new; -1 on OOM. */
static int64_t sym_id(symtab *t, const char *s, size_t n, uint64_t w0)
{
    uint64_t h = hash_text(s, n, w0);
    size_t i = t->slots ? h & t->mask : 0;
    for (; t->slots && t->slots[i].s; i = (i + 1) & t->mask) {
        const symslot *e = &t->slots[i];
        if (e->w0 == w0 && e->n == n && (n <= 8 || memcmp(e->s + 8, s + 8, n - 8) == 0)) return e->id;
    }
    if (t->n + 1 > t->cap) {
        if (grow_syms(t)) return -1;
        for (i = h & t->mask; t->slots[i].s; i = (i + 1) & t->mask) {}
    }
    const char *y = qp_sym_intern(s, n);
    if (!y) return -1;
    t->slots[i] = (symslot){ y, w0, n, t->n };
    t->names[t->n] = y;
    return t->n++;
}

static void syms_reset(symtab *t)
{
    if (t->n) memset(t->slots, 0, (t->mask + 1) * sizeof *t->slots);
    t->n = 0;
}

static void syms_free(symtab *t)
{
    free(t->slots);
    free(t->names);
}

/* ------------------------------------------------------------------ */
/* One field into a column                                             */
/* ------------------------------------------------------------------ */

/* Where one chunk's fields go (one per thread). */
typedef struct dest {
    const char *lo, *hi;   /* the mapped file: 8 bytes at s are read at once
                            * when lo <= s and s + 8 <= hi */
    void **data;           /* per column: the chunk's first row (NULL: skipped) */
    symtab *syms;          /* per column: the chunk's symbols */
    bool ids;              /* symbol columns get ids into syms (int64), not
                            * interned pointers */
} dest;

/* Symbol s[0..n) (w0 its prefix8) into row r of column f. 0 or
 * QP_ENOMEM. */
static inline int store_sym(dest *ds, int f, int64_t r, const char *s, size_t n, uint64_t w0)
{
    int64_t id = sym_id(&ds->syms[f], s, n, w0);
    if (id < 0) return QP_ENOMEM;
    if (ds->ids) ((int64_t *)ds->data[f])[r] = id;
    else ((const char **)ds->data[f])[r] = ds->syms[f].names[id];
    return 0;
}

/* A field's symbol into row r of column f. 0 or QP_ENOMEM. */
static inline int put_sym(dest *ds, int f, int64_t r, const char *s, size_t n)
{
    uint64_t w0;
    if (s >= ds->lo && s + 8 <= ds->hi) {      /* one load, the bytes past n masked */
        memcpy(&w0, s, 8);
        if (n < 8) w0 &= (1ull << (8 * n)) - 1;
    } else {
        w0 = prefix8(s, n);
    }
    return store_sym(ds, f, r, s, n, w0);
}

/* A blank: the column's null. 0 or QP_ENOMEM. */
static int set_null(const qp__csv_col *c, dest *ds, int f, int64_t r)
{
    void *d = ds->data[f];
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
    case QP_SYMBOL: return store_sym(ds, f, r, "", 0, 0);
    case QP_LIST:
        if (!(((qp_value **)d)[r] = qp_string("", 0))) return QP_ENOMEM;
        break;
    }
    return 0;
}

/* 0N/0W/-0W for numeric and temporal columns. Returns 0 if it was one. */
static int put_special(const qp__csv_col *c, void *d, int64_t r, const char *s, size_t n)
{
    int sp = qp__csv_special(s, n);
    if (sp == 2) return -1;
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

/* A clock of q's time, second or minute type (negative ones too; a minute
 * also as hh:mm:00, as format = iso writes it) into *out. 0 or -1. */
static int put_clock(int type, const char *s, size_t n, int32_t *out)
{
    int64_t j;
    int fd;
    bool secs;
    if (qp__csv_sclock(s, n, &j, &fd, &secs) < 0) return -1;
    if (type == QP_TIME && fd <= 3) *out = (int32_t)(j / 1000000);
    else if (type == QP_SECOND && !fd && secs) *out = (int32_t)(j / 1000000000);
    else if (type == QP_MINUTE && !fd && j % 60000000000LL == 0) *out = (int32_t)(j / 60000000000LL);
    else return -1;
    return 0;
}

/* Parses s[0..n) into row r of column f. Returns 0, -1 if the text is not
 * of the column's type, QP_ENOMEM on OOM. A blank is the column's null;
 * q has no boolean null, so a blank in a column only guessed boolean is
 * an error (0b when the type was given, as q's 0: reads it). */
static inline __attribute__((always_inline)) int put_field(const qp__csv_col *c, dest *ds, int f, int64_t r, const char *s, size_t n)
{
    if (n == 0) return c->type == QP_BOOL && c->inferred ? -1 : set_null(c, ds, f, r);
    void *d = ds->data[f];
    int64_t j;
    double x;
    int32_t i;
    int bad = 0;
    switch (c->type) {
    case QP_SYMBOL: return put_sym(ds, f, r, s, n);
    case QP_LONG: if (!(bad = qp__csv_long(s, n, &j))) ((int64_t *)d)[r] = j; break;
    case QP_FLOAT: if (!(bad = qp__csv_float(s, n, &x))) ((double *)d)[r] = x; break;
    case QP_REAL: if (!(bad = qp__csv_float(s, n, &x))) ((float *)d)[r] = (float)x; break;
    case QP_INT:
        bad = qp__csv_long(s, n, &j) < 0 || j < -INT32_MAX || j > INT32_MAX;
        if (!bad) ((int32_t *)d)[r] = (int32_t)j;
        break;
    case QP_SHORT:
        bad = qp__csv_long(s, n, &j) < 0 || j < -INT16_MAX || j > INT16_MAX;
        if (!bad) ((int16_t *)d)[r] = (int16_t)j;
        break;
    case QP_DATE: if (!(bad = qp__csv_date(s, n, &i))) ((int32_t *)d)[r] = i; break;
    case QP_MONTH: if (!(bad = qp__csv_month(s, n, &i))) ((int32_t *)d)[r] = i; break;
    case QP_TIMESTAMP: if (!(bad = qp__csv_timestamp(s, n, &j))) ((int64_t *)d)[r] = j; break;
    case QP_DATETIME: bad = qp__csv_datetime(s, n, (double *)d + r); break;
    case QP_TIMESPAN: if (!(bad = qp__csv_timespan(s, n, &j))) ((int64_t *)d)[r] = j; break;
    case QP_TIME: case QP_SECOND: case QP_MINUTE:
        if (!(bad = put_clock(c->type, s, n, &i))) ((int32_t *)d)[r] = i;
        break;
    case QP_BOOL: return qp__csv_bool(s, n, (uint8_t *)d + r);
    case QP_BYTE: return qp__csv_byte(s, n, (uint8_t *)d + r);
    case QP_GUID: return qp__csv_guid(s, n, (uint8_t *)d + r * 16);
    case QP_CHAR:
        if (n != 1) return -1;
        ((char *)d)[r] = s[0];
        return 0;
    case QP_LIST:
        return (((qp_value **)d)[r] = qp_string(s, n)) ? 0 : QP_ENOMEM;
    default: return -1;
    }
    return bad ? put_special(c, d, r, s, n) : 0;
}

/* ------------------------------------------------------------------ */
/* A chunk                                                             */
/* ------------------------------------------------------------------ */

static void count_chunk(const qp__csv_ctx *c, qp__csv_chunk *k)
{
    int64_t rows = 0;
    for (const char *p = k->beg; p < k->end;) {
        const char *le = qp__csv_line_end(c, p, k->end);
        if (qp__csv_trim_cr(p, le) > p) rows++;
        p = le + 1;
    }
    k->rows = rows;
}

/* Notes the first bad field of chunk k: raw..q as it stands in the file
 * (fs may point into the scratch buffer for a field with doubled quotes,
 * which line_of cannot measure from). */
static void bad_field(qp__csv_chunk *k, int f, const char *raw, const char *q, bool blank)
{
    k->err_at = raw;
    k->err_len = (size_t)(q - raw);
    k->err_col = f;
    k->err_blank = blank;
}

/* Field f of row r: stored, or noted as k's error. 0, or -1 to stop
 * (an error or, with c->oom, out of memory). */
static inline __attribute__((always_inline)) int take_field(qp__csv_ctx *c, qp__csv_chunk *k, dest *ds, int f, int64_t r, const char *raw,
                      const char *q, const char *fs, const char *fe)
{
    if (f >= c->ncols || !c->cols[f].active) return 0;
    int rc = put_field(&c->cols[f], ds, f, r, fs, (size_t)(fe - fs));
    if (rc == QP_ENOMEM) c->oom = 1;
    else if (rc < 0) bad_field(k, f, raw, q, fe == fs);
    return rc < 0 ? -1 : 0;
}

/* A line of f + 1 fields: 0, or -1 with k's error when it is not ncols. */
static int whole_line(const qp__csv_ctx *c, qp__csv_chunk *k, const char *line, int f)
{
    if (f + 1 == c->ncols) return 0;
    k->err_at = line;
    k->err_col = -1;
    k->err_fields = f + 1;
    return -1;
}

/* Where the field at q ends: its first delimiter, '\n' or '\r', or end.
 * Eight bytes at a time while they are inside the file (hi): each byte
 * equal to one of the three leaves its high bit in m, and the lowest is
 * the first (a borrow only marks bytes above a match). */
static inline const char *field_end(const char *q, const char *end, const char *hi, char d, bool cr)
{
    const uint64_t ones = 0x0101010101010101ull, pd = ones * (uint8_t)d;
    const uint64_t pn = ones * '\n', pr = ones * '\r';
    for (; q + 8 <= hi; q += 8) {
        uint64_t w, a, b, e;
        memcpy(&w, q, 8);
        a = w ^ pd, b = w ^ pn, e = w ^ pr;
        uint64_t m = ((a - ones) & ~a) | ((b - ones) & ~b);
        if (cr) m |= (e - ones) & ~e;        /* no '\r' in the file: one test less */
        m &= ones << 7;
        if (m) {
            q += __builtin_ctzll(m) >> 3;
            return q < end ? q : end;
        }
        if (q + 8 >= end) return end;
    }
    while (q < end && *q != d && *q != '\n' && *q != '\r') q++;
    return q;
}

/* parse_chunk for a file without quotes: a field ends at the delimiter or
 * the line's end, found in one pass (no memchr per line). Lines end as
 * qp__csv_eol says: \n, \r\n, or a lone \r. */
static int64_t parse_plain(qp__csv_ctx *c, qp__csv_chunk *k, dest *ds)
{
    const char *p = k->beg, *end = k->end;
    const char d = c->delim;
    int64_t r = 0;
    while (p < end) {
        const char *line = p, *q;
        int f = 0;
        for (;; f++) {
            q = field_end(p, end, c->end, d, c->cr);
            if (f == 0 && q == line && (q == end || *q != d)) break;     /* a blank line */
            if (take_field(c, k, ds, f, r, p, q, p, q)) return r;
            if (q == end || *q != d) break;
            p = q + 1;
        }
        bool blank = f == 0 && q == line;
        p = q + (q < end && *q == '\r' && q + 1 < end && q[1] == '\n' ? 2 : 1);
        if (blank) continue;
        if (whole_line(c, k, line, f)) return r;
        r++;
    }
    return r;
}

/* Parses the lines of chunk k into ds (row 0 the chunk's first); k->rows
 * the rows parsed. Stops at the first bad field or line (k->err_at) or
 * out of memory (c->oom). */
static void parse_chunk(qp__csv_ctx *c, qp__csv_chunk *k, dest *ds)
{
    int64_t r = 0;
    if (!c->quotes) {
        k->rows = parse_plain(c, k, ds);
        return;
    }
    for (const char *p = k->beg; p < k->end;) {
        const char *nl = qp__csv_line_end(c, p, k->end), *le = qp__csv_trim_cr(p, nl);
        const char *line = p;
        p = nl + 1;
        if (le == line) continue;
        int f = 0;
        for (const char *q = line;; f++) {
            const char *fs, *fe, *raw = q;
            q = qp__csv_next_field(k, q, le, c->delim, &fs, &fe);
            if (!q) { c->oom = 1; goto done; }
            if (take_field(c, k, ds, f, r, raw, q, fs, fe)) goto done;
            if (q >= le) break;
            q++;
        }
        if (whole_line(c, k, line, f)) goto done;
        r++;
    }
done:
    k->rows = r;
}

/* ------------------------------------------------------------------ */
/* Threads                                                             */
/* ------------------------------------------------------------------ */

/* What one thread parses with. */
typedef struct lane {
    dest d;
    qp_buf **bufs;         /* scan: per column, this thread's rows */
    qp_value **lists;      /* scan: per string column, this chunk's strings */
} lane;

static int lane_init(lane *L, const qp__csv_ctx *c, bool scan)
{
    size_t n = (size_t)c->ncols;
    *L = (lane){ .d = { .lo = c->data, .hi = c->end, .data = calloc(n, sizeof(void *)),
                        .syms = calloc(n, sizeof(symtab)), .ids = scan } };
    if (scan) {
        L->bufs = calloc(n, sizeof *L->bufs);
        L->lists = calloc(n, sizeof *L->lists);
    }
    return L->d.data && L->d.syms && (!scan || (L->bufs && L->lists)) ? 0 : QP_ENOMEM;
}

static void lane_free(lane *L, const qp__csv_ctx *c)
{
    for (int f = 0; f < c->ncols; f++) {
        if (L->d.syms) syms_free(&L->d.syms[f]);
        if (L->bufs) qp_buf_unref(L->bufs[f]);
        if (L->lists) qp_unref(L->lists[f]);
    }
    free(L->d.data);
    free(L->d.syms);
    free(L->bufs);
    free(L->lists);
}

static void run_threads(int threads, void *(*fn)(void *), void *arg)
{
    pthread_t tid[256];
    int started = 0;
    for (int t = 1; t < threads && t < 256; t++)
        if (pthread_create(&tid[started], NULL, fn, arg) == 0) started++;
    fn(arg);                       /* this thread works too */
    for (int t = 0; t < started; t++) pthread_join(tid[t], NULL);
}

/* ------------------------------------------------------------------ */
/* qp_csv_load                                                         */
/* ------------------------------------------------------------------ */

typedef struct load {
    qp__csv_ctx *c;
    int pass;              /* 1 count, 2 parse */
} load;

static void *load_worker(void *arg)
{
    load *ld = arg;
    qp__csv_ctx *c = ld->c;
    lane L;
    if (ld->pass == 2 && lane_init(&L, c, false)) { c->oom = 1; lane_free(&L, c); return NULL; }
    for (;;) {
        int i = atomic_fetch_add(&c->next, 1);
        if (i >= c->nchunks || c->oom) break;
        qp__csv_chunk *k = &c->chunks[i];
        if (ld->pass == 1) { count_chunk(c, k); continue; }
        for (int f = 0; f < c->ncols; f++) {
            qp_value *v = c->cols[f].v;
            size_t w = v ? (v->type == QP_LIST ? sizeof(qp_value *) : qp_type_width(v->type)) : 0;
            L.d.data[f] = v ? (uint8_t *)v->v.data + (size_t)k->row0 * w : NULL;
            syms_reset(&L.d.syms[f]);
        }
        parse_chunk(c, k, &L.d);
    }
    if (ld->pass == 2) lane_free(&L, c);
    return NULL;
}

static void run_pass(qp__csv_ctx *c, int pass)
{
    load ld = { c, pass };
    atomic_store(&c->next, 0);
    run_threads(c->threads < c->nchunks ? c->threads : c->nchunks, load_worker, &ld);
}

/* The error of the first bad chunk, or NULL. */
static qp_value *load_error(const qp__csv_ctx *c)
{
    const qp__csv_chunk *bad = NULL;
    for (int i = 0; i < c->nchunks; i++)
        if (c->chunks[i].err_at && (!bad || c->chunks[i].err_at < bad->err_at)) bad = &c->chunks[i];
    return bad ? qp__csv_chunk_error(c, bad) : NULL;
}

/* The names of the loaded columns (a new symbol vector), NULL on OOM. */
static qp_value *active_names(const qp__csv_ctx *c)
{
    int n = 0;
    for (int f = 0; f < c->ncols; f++) n += c->cols[f].active;
    qp_value *names = qp_vector(QP_SYMBOL, n);
    for (int f = 0, o = 0; names && f < c->ncols; f++)
        if (c->cols[f].active) qp_S(names)[o++] = c->cols[f].name;
    return names;
}

/* The loaded columns (taken from c) as a table; NULL if out of memory. */
static qp_value *to_table(qp__csv_ctx *c)
{
    qp_value *names = active_names(c), *list = names ? qp_vector(QP_LIST, names->v.n) : NULL;
    if (!names || !list) { qp_unref(names); qp_unref(list); return NULL; }
    for (int f = 0, o = 0; f < c->ncols; f++) {
        if (!c->cols[f].active) continue;
        qp_K(list)[o++] = c->cols[f].v;
        c->cols[f].v = NULL;
    }
    qp_value *d = qp_dict(names, list);
    return d ? qp_table(d) : NULL;
}

qp_value *qp_csv_load(const char *path, const qp_csv_opts *opts)
{
    qp__csv_ctx c;
    qp_value *result = NULL;
    if (qp__csv_open(&c, path, opts, true, &result) ||
        qp__csv_split(&c, c.threads * 4, CHUNK_MIN, false) < 0)
        goto done;
    run_pass(&c, 1);
    int64_t rows = 0;
    for (int i = 0; i < c.nchunks; i++) { c.chunks[i].row0 = rows; rows += c.chunks[i].rows; }
    for (int f = 0; f < c.ncols; f++)
        if (c.cols[f].active && !(c.cols[f].v = qp_vector(c.cols[f].type, rows))) goto done;
    run_pass(&c, 2);
    if (c.oom || (result = load_error(&c)) != NULL) goto done;
    result = to_table(&c);
done:
    qp__csv_close(&c);
    return result;
}

/* ------------------------------------------------------------------ */
/* qp_csv_scan                                                         */
/* ------------------------------------------------------------------ */

enum { BAD_ROW = 1 };      /* a chunk's parse found a bad field or line */

typedef struct scan {
    qp__csv_ctx *c;
    const qp_csv_sink *sink;
    qp_value *names;       /* the loaded columns' */
    pthread_mutex_t mu;
    pthread_cond_t turned;
    int turn;              /* the chunk whose rows go to the sink next */
    atomic_int rc;         /* the first failure: stops the scan */
    int bad;               /* the chunk whose parse failed, or -1 */
} scan;

/* Room in L for the rows chunk k can hold (a row takes at least one byte
 * a field). 0 or QP_ENOMEM. */
static int lane_fit(lane *L, const qp__csv_ctx *c, const qp__csv_chunk *k)
{
    int64_t rows = (k->end - k->beg) / c->ncols + 1;
    for (int f = 0; f < c->ncols; f++) {
        const qp__csv_col *cl = &c->cols[f];
        syms_reset(&L->d.syms[f]);
        L->d.data[f] = NULL;
        if (!cl->active) continue;
        if (cl->type == QP_LIST) {
            qp_unref(L->lists[f]);
            if (!(L->lists[f] = qp_vector(QP_LIST, rows))) return QP_ENOMEM;
            L->d.data[f] = qp_K(L->lists[f]);
            continue;
        }
        size_t need = (size_t)rows * (cl->type == QP_SYMBOL ? 8 : qp_type_width(cl->type));
        qp_buf *b = L->bufs[f];
        if (!b || b->len < need || atomic_load(&b->refs) != 1) {   /* kept by a sink: not reused */
            qp_buf_unref(b);
            if (!(b = L->bufs[f] = qp_buf_new(need))) return QP_ENOMEM;
        }
        L->d.data[f] = b->data;
    }
    return 0;
}

/* Column f of a batch of rows (a chunk's, or none). New reference. */
static qp_value *batch_col(lane *L, const qp__csv_col *cl, int f, int64_t rows)
{
    if (cl->type == QP_LIST) {
        qp_value *x = L ? L->lists[f] : qp_vector(QP_LIST, 0);
        if (L) L->lists[f] = NULL;
        if (x) x->v.n = rows;
        return x;
    }
    if (!L) return qp_vector(cl->type, 0);
    if (cl->type != QP_SYMBOL) return qp_vector_borrow(cl->type, rows, L->bufs[f]->data, L->bufs[f]);
    const symtab *t = &L->d.syms[f];
    qp_value *dom = qp_vector(QP_SYMBOL, t->n);
    if (!dom) return NULL;
    if (t->n) memcpy(qp_S(dom), t->names, (size_t)t->n * sizeof *t->names);
    qp_value *x = qp_enum_borrow(rows, (const int64_t *)L->bufs[f]->data, L->bufs[f], dom);
    if (x && qp_is_error(x)) { qp_unref(x); x = NULL; }     /* ids are below t->n */
    return x;
}

/* The rows parsed into L (none: L NULL) as a table. New reference; NULL
 * on OOM. */
static qp_value *make_batch(const scan *s, lane *L, int64_t rows)
{
    const qp__csv_ctx *c = s->c;
    qp_value *cols = qp_vector(QP_LIST, s->names->v.n);
    for (int f = 0, o = 0; cols && f < c->ncols; f++) {
        if (!c->cols[f].active) continue;
        if (!(qp_K(cols)[o++] = batch_col(L, &c->cols[f], f, rows))) { qp_unref(cols); cols = NULL; }
    }
    qp_value *d = cols ? qp_dict(qp_ref(s->names), cols) : NULL, *t = d ? qp_table(d) : NULL;
    if (t && qp_is_error(t)) { qp_unref(t); t = NULL; }
    return t;
}

/* Parses chunk k into L and makes its batch. 0, BAD_ROW (k->err_at) or
 * QP_ENOMEM. */
static int parse_batch(scan *s, lane *L, qp__csv_chunk *k, qp_value **batch)
{
    if (lane_fit(L, s->c, k)) return QP_ENOMEM;
    parse_chunk(s->c, k, &L->d);
    if (s->c->oom) return QP_ENOMEM;
    if (k->err_at) return BAD_ROW;
    return (*batch = make_batch(s, L, k->rows)) ? 0 : QP_ENOMEM;
}

/* Waits for chunk i's turn, hands its rows over unless the scan stopped,
 * and passes the turn on. */
static void take_turn(scan *s, int i, int rc, qp_value *batch)
{
    pthread_mutex_lock(&s->mu);
    while (s->turn != i) pthread_cond_wait(&s->turned, &s->mu);
    if (!atomic_load(&s->rc)) {
        if (rc == BAD_ROW) { s->bad = i; rc = QP_EARG; }
        if (!rc) rc = s->sink->rows(s->sink->arg, batch);
        atomic_store(&s->rc, rc);
    }
    s->turn++;
    pthread_cond_broadcast(&s->turned);
    pthread_mutex_unlock(&s->mu);
}

static void *scan_worker(void *arg)
{
    scan *s = arg;
    qp__csv_ctx *c = s->c;
    lane L;
    int ready = lane_init(&L, c, true);
    for (;;) {
        int i = atomic_fetch_add(&c->next, 1);
        if (i >= c->nchunks) break;
        qp__csv_chunk *k = &c->chunks[i];
        qp_value *batch = NULL;
        int rc = ready ? ready : atomic_load(&s->rc) ? 0 : parse_batch(s, &L, k, &batch);
        take_turn(s, i, rc, batch);
        qp_unref(batch);
        free(k->scratch);
        k->scratch = NULL;
        k->scratch_cap = 0;
        qp__csv_drop(c, k->beg, k->end);     /* a neighbour's parse maps its own again */
    }
    lane_free(&L, c);
    return NULL;
}

int qp_csv_scan(const char *path, const qp_csv_opts *opts, const qp_csv_sink *sink,
                qp_value **error)
{
    qp__csv_ctx c;
    scan s = { .c = &c, .sink = sink, .bad = -1 };
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.turned, NULL);
    *error = NULL;
    int rc = qp__csv_open(&c, path, opts, false, error);
    qp_value *empty = NULL;
    if (!rc && (!(s.names = active_names(&c)) || !(empty = make_batch(&s, NULL, 0)))) rc = QP_ENOMEM;
    if (!rc) rc = sink->begin(sink->arg, empty);
    int n = (int)((size_t)(c.end - c.body) / SCAN_CHUNK);
    if (!rc) rc = qp__csv_split(&c, n > c.threads ? n : c.threads, 64 * 1024, true);
    if (!rc) {
        run_threads(c.threads < c.nchunks ? c.threads : c.nchunks, scan_worker, &s);
        rc = atomic_load(&s.rc);
    }
    if (rc && s.bad >= 0 && !(*error = qp__csv_chunk_error(&c, &c.chunks[s.bad]))) rc = QP_ENOMEM;
    qp_unref(empty);
    qp_unref(s.names);
    qp__csv_close(&c);
    pthread_mutex_destroy(&s.mu);
    pthread_cond_destroy(&s.turned);
    return rc;
}
