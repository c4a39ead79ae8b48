/* csv_write.c - q tables to CSV text: a header row, then one line a row,
 * each value as q prints it (or, with iso, as pandas reads it back); text
 * is quoted only when a reader could misread it. */
#include "csv_int.h"

#include <errno.h>
#include <stdio.h>
#include <unistd.h>

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
