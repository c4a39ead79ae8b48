/* csv_int.h - internal to the table module (csv.c, csv_parse.c,
 * csv_field.c, csv_write.c, format.c) and to qparse.c, which reads q's
 * temporal literals with the field parsers: the loader's state, lines and
 * fields, the field parsers, and the cell formatter the CSV writer shares
 * with qp_format. Not installed; no stability promised. */
#ifndef QPEACH_CSV_INT_H
#define QPEACH_CSV_INT_H

#include "qpeach/table.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Inference classes (bit set): the types a value parses as. */
enum { CSV_C_B = 1, CSV_C_J = 2, CSV_C_F = 4, CSV_C_D = 8, CSV_C_P = 16,
       CSV_C_T = 32, CSV_C_N = 64, CSV_C_G = 128, CSV_C_S = 256,
       CSV_C_M = 512, CSV_C_U = 1024, CSV_C_V = 2048 };

/* Parsers: s[0..n) with n > 0; return 0 and store the item, or -1. */
int qp__csv_special(const char *s, size_t n);   /* 0 null, 1 inf, -1 -inf, 2 none */
int qp__csv_long(const char *s, size_t n, int64_t *out);
int qp__csv_float(const char *s, size_t n, double *out);
int qp__csv_date(const char *s, size_t n, int32_t *out);
int qp__csv_month(const char *s, size_t n, int32_t *out);
int qp__csv_clock(const char *s, size_t n, int64_t *ns, int *fd, bool *secs);
/* The same with an optional leading '-' (q's text of a negative minute,
 * second or time: -00:00:01): *ns negative. */
int qp__csv_sclock(const char *s, size_t n, int64_t *ns, int *fd, bool *secs);
int qp__csv_timestamp(const char *s, size_t n, int64_t *out);
int qp__csv_datetime(const char *s, size_t n, double *out);
int qp__csv_timespan(const char *s, size_t n, int64_t *out);
int qp__csv_guid(const char *s, size_t n, uint8_t out[16]);
int qp__csv_bool(const char *s, size_t n, uint8_t *out);
int qp__csv_byte(const char *s, size_t n, uint8_t *out);
unsigned qp__csv_classes(const char *s, size_t n);
char qp__csv_pick(unsigned classes);

/* Item p of vector type t as CSV text into dst (cap bytes, NUL-terminated):
 * as a q table cell (symbols bare, nulls empty, temporal in q's format),
 * floats with enough digits to round-trip. Returns the length, or -1 if
 * cap is too small. */
int qp__format_cell(char *dst, size_t cap, int t, const void *p);
/* The same, or with iso the text [output] format = iso writes: chosen by
 * the type t, so that pandas reads back the value (format.c: put_iso). */
int qp__format_csv_cell(char *dst, size_t cap, int t, const void *p, bool iso);

/* ---- The loader (csv.c: the file, header, types, errors; csv_parse.c:
 * fields into columns, on threads) ---- */

typedef struct qp__csv_col {
    char tc;               /* type char (lower case), '*' string, ' ' skip */
    int type;              /* qp type of the column: 1..19, or 0 for strings */
    bool inferred;         /* from the sample (the error says so) */
    bool active;           /* parsed (not skipped) */
    int64_t sampled;       /* inferred: rows the sample spanned for it */
    const char *name;      /* interned header text */
    bool held;             /* the type is opts->schema's (errors say so) */
    qp_value *v;           /* qp_csv_load: the column (NULL for skipped ones) */
} qp__csv_col;

typedef struct qp__csv_chunk {
    const char *beg, *end; /* whole lines */
    int64_t rows, row0;    /* rows in the chunk, index of its first */
    const char *err_at;    /* first bad field (or line) in the chunk */
    size_t err_len;
    int err_col;           /* column of the bad field; -1: field count */
    bool err_blank;        /* the bad field is blank */
    int err_fields;        /* fields found, for field-count errors */
    char *scratch;         /* unescaped quoted field */
    size_t scratch_cap;
} qp__csv_chunk;

typedef struct qp__csv_ctx {
    const char *path;
    const char *data, *end;/* the mapped file */
    const char *body;      /* after the header line */
    void *map;             /* the mapping (MAP_FAILED: none) and its size */
    size_t size;
    int fd;
    bool quotes;           /* the file has a '"' somewhere */
    bool cr;               /* ... and a '\r' */
    char delim;
    int threads;           /* parser threads */
    int ncols;
    qp__csv_col *cols;
    qp__csv_chunk *chunks;
    int nchunks;
    atomic_int next;       /* next chunk to take */
    atomic_int oom;        /* set by any thread on allocation failure */
    const qp_csv_opts *o;
} qp__csv_ctx;

/* Opens and maps path (populate: every page read in at once), reads the
 * header and settles every column's type (given, held or inferred from
 * the sample). 0, or a negative code with *error an error value naming
 * the file (NULL: out of memory). qp__csv_close frees c either way. */
int qp__csv_open(qp__csv_ctx *c, const char *path, const qp_csv_opts *opts, bool populate,
                 qp_value **error);
void qp__csv_close(qp__csv_ctx *c);
/* Splits the body into chunks of whole lines: n of them (at least
 * min_bytes each); drop: what finding them mapped is dropped (see
 * qp__csv_drop). 0 or QP_ENOMEM. */
int qp__csv_split(qp__csv_ctx *c, int n, size_t min_bytes, bool drop);
/* Drops the file's pages from a to b from this process (the page cache
 * keeps them; a later read maps them again). The range is widened to
 * whole 2 MB of the file: a fault maps the page cache's whole folio, up to
 * that size, so dropping less would leave pages mapped. */
void qp__csv_drop(const qp__csv_ctx *c, const char *a, const char *b);
/* The error of chunk k (its first bad field or line) as an error value
 * naming file, line, column and value. New reference; NULL on OOM. */
qp_value *qp__csv_chunk_error(const qp__csv_ctx *c, const qp__csv_chunk *k);

/* End of the unquoted line at p: its '\n', a lone '\r' before that, or
 * end. For "\r\n" the '\n' (trim_cr drops the '\r'), so the common
 * endings cost one memchr each, and a second over the line in files with
 * a '\r'. */
static inline const char *qp__csv_eol(const qp__csv_ctx *c, const char *p, const char *end)
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
static inline const char *qp__csv_line_end(const qp__csv_ctx *c, const char *p, const char *end)
{
    if (!c->quotes) return qp__csv_eol(c, p, end);
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
static inline const char *qp__csv_trim_cr(const char *b, const char *e)
{
    return e > b && e[-1] == '\r' ? e - 1 : e;
}

/* The quoted field at p (*p == '"'): [*fs, *fe) is its text (unescaped
 * into k's scratch buffer when it had doubled quotes). Returns the
 * position after the field, p itself for an unbalanced quote (read as
 * bare text), or NULL on OOM. */
const char *qp__csv_quoted(qp__csv_chunk *k, const char *p, const char *le, char delim,
                           const char **fs, const char **fe);

/* The next field of a line: [*fs, *fe) is its text. Returns the position
 * after the field (at the delimiter or line end), or NULL on OOM. */
static inline const char *qp__csv_next_field(qp__csv_chunk *k, const char *p, const char *le,
                                             char delim, const char **fs, const char **fe)
{
    if (p < le && *p == '"') {
        const char *q = qp__csv_quoted(k, p, le, delim, fs, fe);
        if (q != p) return q;
    }
    const char *q = p;
    while (q < le && *q != delim) q++;
    *fs = p;
    *fe = q;
    return q;
}

/* The q type of a type char ('*': a general list), -1 for none. */
int qp__csv_type_of(char tc);

#endif
