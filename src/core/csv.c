/* csv.c - a CSV file opened for loading: its mapping, lines and fields,
 * the header, each column's type, the chunks the parsers share out, and
 * the error text that names file, line, column and value. csv_parse.c
 * parses the chunks into columns (qp_csv_load) or batches (qp_csv_scan).
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
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SAMPLE 1000             /* values of a column its type is inferred from */

/* ------------------------------------------------------------------ */
/* Fields                                                              */
/* ------------------------------------------------------------------ */

const char *qp__csv_quoted(qp__csv_chunk *k, const char *p, const char *le, char delim,
                           const char **fs, const char **fe)
{
    const char *q = p + 1;
    bool doubled = false;
    for (; q < le; q++) {
        if (*q != '"') continue;
        if (q + 1 < le && q[1] == '"') { doubled = true; q++; continue; }
        break;
    }
    if (q >= le || (q + 1 != le && q[1] != delim)) return p;   /* unbalanced */
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

/* ------------------------------------------------------------------ */
/* Chunks and errors                                                   */
/* ------------------------------------------------------------------ */

int qp__csv_type_of(char tc)
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

static int64_t line_of(const qp__csv_ctx *c, const char *at)
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

void qp__csv_drop(const qp__csv_ctx *c, const char *a, const char *b)
{
    const size_t big = 2 << 20;        /* a PMD: the page cache's largest folio */
    size_t from = (size_t)(a - c->data) / big * big, to = ((size_t)(b - c->data) + big - 1) / big * big;
    if (to > c->size) to = c->size;
    if (to > from) madvise((char *)c->map + from, to - from, MADV_DONTNEED);
}

int qp__csv_split(qp__csv_ctx *c, int n, size_t min_bytes, bool drop)
{
    const char *body = c->body;
    size_t size = (size_t)(c->end - body);
    if (min_bytes && (size_t)n > size / min_bytes) n = (int)(size / min_bytes);
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
            const char *nl = qp__csv_eol(c, target, c->end);
            e = nl < c->end ? nl + 1 : c->end;
        } else {
            while (e < target && e < c->end) e = qp__csv_line_end(c, e, c->end) + 1;
            if (e > c->end) e = c->end;
        }
        if (drop) qp__csv_drop(c, p, e);
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

qp_value *qp__csv_chunk_error(const qp__csv_ctx *c, const qp__csv_chunk *bad)
{
    long long line = line_of(c, bad->err_at);
    if (bad->err_col < 0)
        return qp_error("%s:%lld: %d fields, expected %d", c->path, line, bad->err_fields, c->ncols);
    const qp__csv_col *cl = &c->cols[bad->err_col];
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
        int is_t = qp__csv_type_of(qp__csv_pick(qp__csv_classes(v, bad->err_len)));
        const char *is = qp_type_name(is_t);
        return qp_error("%s:%lld: column %s: '%.*s%s' is %s %s, not %s %s (as %s holds it)", c->path,
                        line, cl->name, shown, v, more, article(is), is, article(tn), tn,
                        c->o->schema->of);
    }
    return qp_error("%s:%lld: column %s: '%.*s%s' is not %s %s", c->path, line, cl->name, shown, v,
                    more, article(tn), tn);
}

/* ------------------------------------------------------------------ */
/* Types: inferred from a sample                                       */
/* ------------------------------------------------------------------ */

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
static int sample(qp__csv_ctx *c)
{
    seen *sn = calloc((size_t)c->ncols, sizeof *sn);
    if (!sn) return QP_ENOMEM;
    int open = 0;                  /* inferred columns short of SAMPLE values */
    for (int f = 0; f < c->ncols; f++)
        if (c->cols[f].inferred) { sn[f].acc = ~0u; open++; }
    qp__csv_chunk k = {0};
    int64_t rows = 0;
    int rc = 0;
    for (const char *p = c->body; p < c->end && open > 0;) {
        const char *nl = qp__csv_line_end(c, p, c->end), *le = qp__csv_trim_cr(p, nl);
        const char *q = p;
        p = nl + 1;
        if (le == q) continue;
        rows++;
        for (int f = 0; f < c->ncols; f++) {
            const char *fs, *fe;
            if (!(q = qp__csv_next_field(&k, q, le, c->delim, &fs, &fe))) { rc = QP_ENOMEM; goto done; }
            qp__csv_col *cl = &c->cols[f];
            if (cl->inferred && sn[f].n < SAMPLE && fe > fs) {
                see(&sn[f], qp__csv_classes(fs, (size_t)(fe - fs)));
                if (++sn[f].n == SAMPLE) { cl->sampled = rows; open--; }
            }
            if (q >= le) break;
            q++;
        }
    }
    for (int f = 0; f < c->ncols; f++) {
        qp__csv_col *cl = &c->cols[f];
        if (!cl->inferred) continue;
        if (sn[f].n < SAMPLE) cl->sampled = rows;
        cl->tc = sn[f].acc != ~0u ? qp__csv_pick(sn[f].acc) : sn[f].words ? 's' : 'f';
        cl->type = qp__csv_type_of(cl->tc);
    }
done:
    free(k.scratch);
    free(sn);
    return rc;
}

/* ------------------------------------------------------------------ */
/* The header and the types given or held                              */
/* ------------------------------------------------------------------ */

/* The header line h..hle: c->ncols and the column names. 0 or QP_ENOMEM. */
static int read_header(qp__csv_ctx *c, const char *h, const char *hle)
{
    qp__csv_chunk k = {0};
    const char *fs, *fe, *q = h;
    for (c->ncols = 0;; c->ncols++) {
        q = qp__csv_next_field(&k, q, hle, c->delim, &fs, &fe);
        if (!q || q >= hle) { c->ncols++; break; }
        q++;
    }
    c->cols = calloc((size_t)c->ncols, sizeof *c->cols);
    q = h;
    for (int f = 0; c->cols && f < c->ncols; f++) {
        q = qp__csv_next_field(&k, q, hle, c->delim, &fs, &fe);
        c->cols[f].name = q ? qp_sym_intern(fs, (size_t)(fe - fs)) : NULL;
        if (!c->cols[f].name) { free(c->cols); c->cols = NULL; break; }
        q++;
    }
    free(k.scratch);
    return c->cols ? 0 : QP_ENOMEM;
}

static char lower(char t) { return t >= 'A' && t <= 'Z' ? (char)(t + 32) : t; }

/* The name of a type char's type ('*': string). */
static const char *tc_name(char tc)
{
    return qp__csv_type_of(tc) > 0 ? qp_type_name(qp__csv_type_of(tc)) : "string";
}

/* The schema's (lower-case) type char for column name, or 0. */
static char held_type(const qp_csv_schema *sc, const char *name)
{
    for (int i = 0; i < sc->n; i++)
        if (!strcmp(sc->names[i], name)) return lower(sc->types[i]);
    return 0;
}

/* Each column's type: given (types), held (opts->schema) or to infer
 * (NULL types, no schema). An error value naming the column, or NULL. */
static qp_value *apply_types(qp__csv_ctx *c, const char *types)
{
    const qp_csv_schema *sc = c->o ? c->o->schema : NULL;
    if (types && (int)strlen(types) != c->ncols)
        return qp_error("%s: %zu types given for %d columns", c->path, strlen(types), c->ncols);
    int kept = 0;
    for (int f = 0; f < c->ncols; f++) {
        qp__csv_col *cl = &c->cols[f];
        char t = types ? lower(types[f]) : 0, h = sc ? held_type(sc, cl->name) : 0;
        if (!(cl->active = t != ' ')) continue;
        if (t && qp__csv_type_of(t) < 0)
            return qp_error("%s: unknown type char '%c' for column %s", c->path, types[f], cl->name);
        if (sc && !h) return qp_error("%s: column %s is not in %s", c->path, cl->name, sc->of);
        if (t && h && t != h)
            return qp_error("%s: column %s: given as %s, but %s holds it as %s", c->path, cl->name,
                            tc_name(t), sc->of, tc_name(h));
        cl->held = h != 0;
        cl->inferred = !t && !h;
        cl->tc = t ? t : h;
        cl->type = cl->tc ? qp__csv_type_of(cl->tc) : 0;
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
static qp_value *check_names(qp__csv_ctx *c)
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

/* ------------------------------------------------------------------ */
/* Opening                                                             */
/* ------------------------------------------------------------------ */

/* Opens and maps the file. 0, or a negative code with *error. */
static int map_file(qp__csv_ctx *c, bool populate, qp_value **error)
{
    c->fd = open(c->path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (c->fd < 0 || fstat(c->fd, &st) < 0) {
        int rc = -errno;
        *error = qp_error("%s: %s", c->path, strerror(errno));
        return rc;
    }
    c->size = (size_t)st.st_size;
    if (c->size == 0) {
        *error = qp_error("%s: empty file, no header line", c->path);
        return QP_EARG;
    }
    c->map = mmap(NULL, c->size, PROT_READ, MAP_PRIVATE | (populate ? MAP_POPULATE : 0), c->fd, 0);
    if (c->map == MAP_FAILED) {
        int rc = -errno;
        *error = qp_error("%s: mmap: %s", c->path, strerror(errno));
        return rc;
    }
    madvise(c->map, c->size, MADV_SEQUENTIAL);
    c->data = c->map;
    c->end = c->data + c->size;
    /* A window at a time, each dropped from the process once read unless
     * every page stays (populate): a scan holds no more of the file. */
    for (size_t at = 0, w = 16 << 20; at < c->size; at += w) {
        size_t n = c->size - at < w ? c->size - at : w;
        c->quotes = c->quotes || memchr(c->data + at, '"', n);
        c->cr = c->cr || memchr(c->data + at, '\r', n);
        if (!populate) qp__csv_drop(c, c->data + at, c->data + at + n);
    }
    return 0;
}

int qp__csv_open(qp__csv_ctx *c, const char *path, const qp_csv_opts *opts, bool populate,
                 qp_value **error)
{
    *c = (qp__csv_ctx){ .path = path, .o = opts, .fd = -1, .map = MAP_FAILED };
    *error = NULL;
    c->delim = opts && opts->delim ? opts->delim : ',';
    c->threads = opts && opts->threads > 0 ? opts->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (c->threads < 1) c->threads = 1;
    if (c->threads > 256) c->threads = 256;
    int rc = map_file(c, populate, error);
    if (rc) return rc;
    /* Header line (skipping a UTF-8 byte order mark). */
    const char *h = c->data;
    if (c->size >= 3 && memcmp(h, "\xEF\xBB\xBF", 3) == 0) h += 3;
    const char *hnl = qp__csv_line_end(c, h, c->end), *hle = qp__csv_trim_cr(h, hnl);
    c->body = hnl < c->end ? hnl + 1 : c->end;
    if ((rc = read_header(c, h, hle))) return rc;
    const char *types = opts ? opts->types : NULL;
    if ((*error = apply_types(c, types)) != NULL || (*error = check_names(c)) != NULL) return QP_EARG;
    return sample(c);
}

void qp__csv_close(qp__csv_ctx *c)
{
    for (int f = 0; c->cols && f < c->ncols; f++) qp_unref(c->cols[f].v);
    for (int i = 0; c->chunks && i < c->nchunks; i++) free(c->chunks[i].scratch);
    free(c->chunks);
    free(c->cols);
    if (c->map != MAP_FAILED) munmap(c->map, c->size);
    if (c->fd >= 0) close(c->fd);
    *c = (qp__csv_ctx){ .fd = -1, .map = MAP_FAILED };
}
