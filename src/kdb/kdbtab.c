/* kdbtab.c - the tables of a mounted kdb+ db: loading splayed, flat and
 * partitioned tables, their meta and row counts.
 *
 * Memory rules (kdb.h's): a splayed table's numeric columns view one
 * mapping per column file (kdbfile.c); nothing is copied but for a whole
 * partitioned table (qp_kdb_table), whose partitions are concatenated into
 * new vectors. The virtual partition column is a new vector.
 *
 * A table is refused, by an error value naming the file and column, when
 * a column file cannot be read, its `.d` names a missing column, its
 * columns differ in length, an enumeration index lies beyond its domain,
 * or its domain is missing at the db root (meta already says so); and,
 * naming both places, when its name is both a root table and a
 * partitioned one. The db keeps serving its other tables.
 */
#include "kdb_int.h"
#include "qpeach/table.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Column files of a folder without .d, in name order (finspace): files
 * that start as q's column files do (a .q script beside them is not). */
static qp_value *columns_listed(const char *dir)
{
    DIR *h = opendir(dir);
    if (!h) return qp_error("%s: cannot list the folder: %s", dir, strerror(errno));
    qp_value *v = qp_vector(QP_SYMBOL, 0);
    for (struct dirent *e; v && (e = readdir(h));) {
        if (e->d_name[0] == '.' || strchr(e->d_name, '#')) continue;
        if (e->d_type != DT_REG && e->d_type != DT_UNKNOWN && e->d_type != DT_LNK) continue;
        char *p = qp__kdb_join(dir, e->d_name);
        bool col = p && qp__kdb_sniff(p);
        free(p);
        if (!col) continue;
        const char *s = qp_sym_intern(e->d_name, strlen(e->d_name));
        if (!s || qp_vec_append(v, &s) < 0) { qp_unref(v); v = NULL; }
    }
    closedir(h);
    if (!v) return qp_error("%s: out of memory", dir);
    qsort(v->v.data, (size_t)v->v.n, sizeof(char *), cmp_str);
    return v;
}

qp_value *qp__kdb_columns(const char *dir)
{
    char *d = qp__kdb_join(dir, ".d");
    struct stat st;
    if (!d) return qp_error("%s: out of memory", dir);
    if (stat(d, &st) < 0) { free(d); return columns_listed(dir); }
    char err[512];
    qp_buf *b = NULL;
    qp_value *v;
    if (qp__kdb_bytes(d, &b, err, sizeof err) < 0) v = qp_error("%s", err);
    else v = qp__kdb_syms(b->data, b->len, d);
    qp_buf_unref(b);
    free(d);
    return v;
}

/* ------------------------------------------------------------------ */
/* Loading                                                             */
/* ------------------------------------------------------------------ */

static bool is_column(const qp_value *v) { return v->type >= 0 && v->type <= QP_ENUM && v->type != 3; }

/* The splayed table in folder dir, named tname in errors: the columns its
 * .d lists, or only those of want (a symbol vector; their files alone are
 * opened). */
static qp_value *load_splay(qp_kdb *db, const char *dir, const char *tname, const qp_value *want,
                            unsigned flags)
{
    qp_value *names = want ? qp_ref((qp_value *)want) : qp__kdb_columns(dir);
    if (!names || qp_is_error(names)) return names;
    qp_value *cols = qp_vector(QP_LIST, names->v.n), *err = NULL;
    if (!cols) { qp_unref(names); return qp_error("%s: out of memory", dir); }
    int64_t got = 0;
    for (; got < names->v.n && !err; got++) {
        const char *cn = qp_S(names)[got];
        char *p = qp__kdb_join(dir, cn);
        qp__colenv ce;
        qp__kdb_env env;
        qp__kdb_colenv(&ce, &env, db, p, cn, flags);
        qp_value *c = p ? qp__kdb_load(p, &env) : NULL;
        if (!c) err = qp_error("%s: out of memory", dir);
        else if (qp_is_error(c)) { err = c; c = NULL; }
        else if (!is_column(c))
            err = qp_error("%s: column %s of table %s is not a list (type %d)", p, cn, tname, c->type);
        else if (got && qp_count(c) != qp_count(qp_K(cols)[0]))
            err = qp_error("%s: table %s: column %s has %lld rows, column %s has %lld", p, tname,
                           cn, (long long)qp_count(c), qp_S(names)[0],
                           (long long)qp_count(qp_K(cols)[0]));
        if (err) { qp_unref(c); free(p); break; }
        qp_K(cols)[got] = c;
        free(p);
    }
    if (err) {
        cols->v.n = got;                  /* only the filled slots */
        qp_unref(cols);
        qp_unref(names);
        return err;
    }
    qp_value *t = qp_table(qp_dict(names, cols));
    return t ? t : qp_error("%s: out of memory", dir);
}

/* t with the virtual partition column (value v of kind pkind) first. */
static qp_value *with_pcol(qp_value *t, int pkind, int64_t v)
{
    if (!t || qp_is_error(t)) return t;
    int64_t n = qp_count(t), nc = qp_table_names(t)->v.n;
    int type = pkind == PK_DATE ? QP_DATE : pkind == PK_MONTH ? QP_MONTH : QP_LONG;
    qp_value *pc = qp_vector(type, n);
    qp_value *names = qp_vector(QP_SYMBOL, nc + 1), *cols = qp_vector(QP_LIST, nc + 1);
    const char *pn = qp__kdb_pcol(pkind);
    if (!pc || !names || !cols) goto oom;
    for (int64_t i = 0; i < n; i++) {
        if (type == QP_LONG) qp_J(pc)[i] = v;
        else qp_I(pc)[i] = (int32_t)v;
    }
    pc->attr = QP_ATTR_SORTED;
    qp_S(names)[0] = qp_sym_intern(pn, strlen(pn));
    qp_K(cols)[0] = pc;
    for (int64_t i = 0; i < nc; i++) {
        qp_S(names)[i + 1] = qp_S(qp_table_names(t))[i];
        qp_K(cols)[i + 1] = qp_ref(qp_K(qp_table_columns(t))[i]);
    }
    qp_unref(t);
    return qp_table(qp_dict(names, cols));
oom:
    qp_unref(pc);
    qp_unref(names);
    qp_unref(cols);
    qp_unref(t);
    return qp_error("out of memory");
}

/* Partition p (an index into db->parts) of partitioned table t: its
 * columns want (NULL: all) and, when pcol, the virtual partition column
 * first. A table missing there (no such name at all) comes back as 0 rows
 * of another partition's columns; one there that cannot be opened (a link
 * to a disk that is gone) is an error naming it and the cause. */
static qp_value *part_cols(qp_kdb *db, const qp__ktable *t, int64_t p, const qp_value *want,
                           bool pcol, unsigned flags)
{
    char *dir = qp__kdb_join(db->parts[p].dir, t->name);
    if (!dir) return qp_error("out of memory");
    struct stat st;
    qp_value *x;
    int e = stat(dir, &st) == 0 ? 0 : errno;
    if (!e && S_ISDIR(st.st_mode)) {
        x = load_splay(db, dir, t->name, want, flags);
    } else if (e != ENOENT || lstat(dir, &st) == 0) {
        x = qp_error("%s: table %s: %s", dir, t->name, e ? strerror(e) : "not a folder");
    } else {
        char *other = qp__kdb_join(db->parts[t->parts[t->nparts - 1]].dir, t->name);
        qp_value *full = other ? load_splay(db, other, t->name, want, flags) : NULL;
        x = full && !qp_is_error(full) ? qp_table_slice(full, 0, 0) : qp_ref(full);
        qp_unref(full);
        free(other);
        if (!x) x = qp_error("out of memory");
    }
    free(dir);
    return pcol ? with_pcol(x, db->pkind, db->parts[p].v) : x;
}

static qp_value *part_table(qp_kdb *db, const qp__ktable *t, int64_t p, unsigned flags)
{
    return part_cols(db, t, p, NULL, true, flags);
}

qp_value *qp__kdb_part(qp_kdb *db, const qp__ktable *t, int64_t i, const qp_value *want, bool pcol,
                       unsigned flags)
{
    return part_cols(db, t, t->parts[i], want, pcol, flags);
}

/* Table `table`, or NULL and *err: there is none, or it is refused. */
static qp__ktable *find_or(qp_kdb *db, const char *table, qp_value **err)
{
    qp__ktable *t = qp__kdb_find(db, table);
    if (!t) *err = qp__kdb_no_table(db, table);
    else if ((*err = qp__kdb_refused(db, t))) t = NULL;
    return t;
}

qp_value *qp_kdb_table_part(qp_kdb *db, const char *table, int64_t part, unsigned flags)
{
    qp_value *err = NULL;
    qp__ktable *t = find_or(db, table, &err);
    if (!t) return err;
    if (t->kind != KT_PART) return qp_error("%s: table %s is not partitioned", db->path, table);
    if (part < 0 || part >= t->nparts)
        return qp_error("%s: table %s has %lld partitions, not %lld", db->path, table,
                        (long long)t->nparts, (long long)part + 1);
    return part_table(db, t, t->parts[part], flags);
}

/* The index into db->parts of the partition whose value is v (a date,
 * month or long atom, as the db's partitions are), or -1 and *err. */
static int64_t part_at(qp_kdb *db, const char *table, const qp_value *v, qp_value **err)
{
    int want = db->pkind == PK_DATE ? -QP_DATE : db->pkind == PK_MONTH ? -QP_MONTH : -QP_LONG;
    int64_t x;
    if (v->type == want && want != -QP_LONG) x = v->i;
    else if (want == -QP_LONG && v->type == -QP_LONG) x = v->j;
    else if (want == -QP_LONG && (v->type == -QP_INT || v->type == -QP_SHORT))
        x = v->type == -QP_INT ? v->i : v->h;
    else {
        *err = qp_error("%s: a %s partition value must be a %s, not a %s", db->path,
                        qp__kdb_pcol(db->pkind), qp_type_name(want), qp_type_name(v->type));
        return -1;
    }
    int64_t lo = 0, hi = db->nparts - 1;
    while (lo <= hi) {
        int64_t mid = (lo + hi) / 2;
        if (db->parts[mid].v == x) return mid;
        if (db->parts[mid].v < x) lo = mid + 1;
        else hi = mid - 1;
    }
    char text[64];                   /* the value as q writes it: 2024.01.05 */
    qp_format_line(v, text, sizeof text);
    *err = qp_error("%s: no partition %s (%s) for table %s", db->path, text,
                    qp__kdb_pcol(db->pkind), table);
    return -1;
}

qp_value *qp_kdb_table_at(qp_kdb *db, const char *table, const qp_value *v, unsigned flags)
{
    qp_value *err = NULL;
    qp__ktable *t = find_or(db, table, &err);
    if (!t) return err;
    if (t->kind != KT_PART) return qp_error("%s: table %s is not partitioned", db->path, table);
    int64_t p = part_at(db, table, v, &err);
    return p < 0 ? err : part_table(db, t, p, flags);
}

/* ------------------------------------------------------------------ */
/* Whole tables: partitions concatenated                               */
/* ------------------------------------------------------------------ */

static qp_value *whole_parted(qp_kdb *db, const qp__ktable *t, const qp_value *want, bool pcol,
                              unsigned flags)
{
    qp_value **ts = calloc((size_t)(t->nparts ? t->nparts : 1), sizeof *ts), *r = NULL;
    if (!ts) return qp_error("out of memory");
    int64_t i = 0;
    for (; i < t->nparts; i++) {
        ts[i] = part_cols(db, t, t->parts[i], want, pcol, flags);
        if (qp_is_error(ts[i])) { r = qp_ref(ts[i]); i++; goto done; }
    }
    r = t->nparts ? qp_table_concat(ts, t->nparts) : qp_error("table %s has no partitions", t->name);
    if (!r) r = qp_error("%s: out of memory", t->name);
done:
    while (i-- > 0) qp_unref(ts[i]);
    free(ts);
    return r;
}

static qp_value *load_flat(qp_kdb *db, const qp__ktable *t, unsigned flags)
{
    qp__colenv ce;
    qp__kdb_env env;
    qp__kdb_colenv(&ce, &env, db, t->path, NULL, flags);
    qp_value *x = qp__kdb_load(t->path, &env);
    if (x && !qp_is_error(x) && x->type != QP_TABLE) {
        qp_unref(x);
        return qp_error("%s: not a table", t->path);
    }
    return x ? x : qp_error("%s: out of memory", t->path);
}

/* A splayed or flat table is read (mapped) once and kept: every later
 * call, e.g. each task's rows of it, views the same mapping. The files are
 * not looked at again, as q maps a db once until it is loaded again: a
 * table rewritten on disk is seen after the next mount. Its enumerations'
 * indices are checked against their domains only as rows are asked for:
 * a worker given half of a large table reads (and pages in) only that
 * half of its symbol columns, once. */
static qp_value *raw_table(qp_kdb *db, qp__ktable *t)
{
    pthread_mutex_lock(&db->lock);
    qp_value *x = qp_ref(t->raw);
    pthread_mutex_unlock(&db->lock);
    if (x) return x;
    unsigned f = QP_KDB_ENUMS | QP__KDB_UNCHECKED;
    x = t->kind == KT_SPLAY ? load_splay(db, t->path, t->name, NULL, f) : load_flat(db, t, f);
    if (!x || qp_is_error(x)) return x;
    pthread_mutex_lock(&db->lock);
    if (!t->raw) t->raw = qp_ref(x);
    pthread_mutex_unlock(&db->lock);
    return x;
}

/* Column c of raw table x, rows [a, a + n): a view (the column itself when
 * whole, attribute and all); when it is an enumeration, its indices
 * checked (their pages mapped in one call first: the check reads them
 * all), and resolved to symbols without QP_KDB_ENUMS. Other columns are
 * left to fault in as read: a function may use few of a wide table's. */
static qp_value *checked_column(const qp__ktable *t, const qp_value *x, int64_t c, int64_t a,
                                int64_t n, unsigned flags)
{
    const qp_value *col = qp_K(qp_table_columns(x))[c];
    qp_value *v = a == 0 && n == qp_count(col) ? qp_ref((qp_value *)col) : qp_slice(col, a, n);
    if (!v || v->type != QP_ENUM) return v;
    if (v->v.owner && v->v.owner->maplen) qp__kdb_populate(v->v.data, (size_t)n * 8);
    int64_t bad = qp_enum_check(qp_J(v), n, v->v.dom->v.n);
    if (bad >= 0) {
        qp_value *e = qp_error("%s/%s: enum: index %lld at row %lld is beyond the domain of "
                               "%lld names", t->path, qp_S(qp_table_names(x))[c],
                               (long long)qp_J(v)[bad], (long long)(a + bad),
                               (long long)v->v.dom->v.n);
        qp_unref(v);
        return e;
    }
    if (flags & QP_KDB_ENUMS) return v;
    qp_value *s = qp_enum_resolve(v);
    qp_unref(v);
    return s;
}

/* Rows [a, a + n) of raw table x, checked: a new table of views, or an
 * error value naming the file, column and row of a bad index. */
static qp_value *checked_rows(const qp__ktable *t, const qp_value *x, int64_t a, int64_t n,
                              unsigned flags)
{
    const qp_value *cols = qp_table_columns(x);
    qp_value *out = qp_vector(QP_LIST, cols->v.n);
    for (int64_t c = 0; out && c < cols->v.n; c++) {
        qp_value *v = checked_column(t, x, c, a, n, flags);
        if (!v || qp_is_error(v)) {
            out->v.n = c;                  /* only the filled slots */
            qp_unref(out);
            return v ? v : qp_error("%s: out of memory", t->name);
        }
        qp_K(out)[c] = v;
    }
    qp_value *r = out ? qp_table(qp_dict(qp_ref(qp_table_names(x)), out)) : NULL;
    return r ? r : qp_error("%s: out of memory", t->name);
}

/* The whole table, checked once and then kept. */
static qp_value *cached(qp_kdb *db, qp__ktable *t, unsigned flags)
{
    int k = (flags & QP_KDB_ENUMS) != 0;
    pthread_mutex_lock(&db->lock);
    qp_value *x = qp_ref(t->mapped[k]);
    pthread_mutex_unlock(&db->lock);
    if (x) return x;
    qp_value *raw = raw_table(db, t);
    if (!raw || qp_is_error(raw)) return raw;
    x = checked_rows(t, raw, 0, qp_count(raw), flags);
    qp_unref(raw);
    if (qp_is_error(x)) return x;
    pthread_mutex_lock(&db->lock);
    if (!t->mapped[k]) t->mapped[k] = qp_ref(x);      /* a racing reader may have won */
    pthread_mutex_unlock(&db->lock);
    return x;
}

qp_value *qp_kdb_table(qp_kdb *db, const char *table, unsigned flags)
{
    qp_value *err = NULL;
    qp__ktable *t = find_or(db, table, &err);
    if (!t) return err;
    if (t->kind == KT_SPLAY || t->kind == KT_FLAT) return cached(db, t, flags);
    return whole_parted(db, t, NULL, true, flags);
}

qp_value *qp_kdb_table_rows(qp_kdb *db, const char *table, int64_t a, int64_t b, unsigned flags)
{
    qp_value *err = NULL;
    qp__ktable *t = find_or(db, table, &err);
    if (!t) return err;
    if (t->kind == KT_PART)
        return qp_error("%s: table %s is partitioned: its rows are read by partition", db->path, table);
    int k = (flags & QP_KDB_ENUMS) != 0;
    pthread_mutex_lock(&db->lock);
    qp_value *whole = qp_ref(t->mapped[k]);        /* checked already: views will do */
    pthread_mutex_unlock(&db->lock);
    qp_value *x = whole ? whole : raw_table(db, t);
    if (!x || qp_is_error(x)) return x;
    int64_t n = qp_count(x), m = (b < n ? b : n) - a;
    qp_value *r;
    if (a < 0 || b < a || a > n)
        r = qp_error("rows %lld..%lld outside 0..%lld of %s", (long long)a, (long long)b,
                     (long long)n, table);
    else
        r = whole ? qp_table_slice(x, a, m) : checked_rows(t, x, a, m, flags);
    qp_unref(x);
    return r ? r : qp_error("%s: out of memory", table);
}

/* ------------------------------------------------------------------ */
/* Counts and meta                                                     */
/* ------------------------------------------------------------------ */

/* Rows of the column file at path: its header (a flat column is decoded). */
static int count_col(qp_kdb *db, const char *path, int64_t *n, char *err, size_t errlen)
{
    qp__khead h;
    int rc = qp__kdb_peek(path, &h, err, errlen);
    if (rc || h.n >= 0) {
        *n = rc ? 0 : h.n;
        return rc;
    }
    qp__colenv ce;
    qp__kdb_env env;
    qp__kdb_colenv(&ce, &env, db, path, NULL, 0);
    qp_value *x = qp__kdb_load(path, &env);
    if (!x || qp_is_error(x)) {
        snprintf(err, errlen, "%s", x ? x->s : "out of memory");
        rc = QP_EIO;
    } else {
        *n = qp_count(x);
    }
    qp_unref(x);
    return rc;
}

/* The first column's name of splayed folder dir (NULL: no columns). */
static int first_column(const char *dir, const char **name, char *err, size_t errlen)
{
    qp_value *names = qp__kdb_columns(dir);
    *name = NULL;
    if (!names || qp_is_error(names)) {
        snprintf(err, errlen, "%s", names ? names->s : "out of memory");
        qp_unref(names);
        return names ? QP_EIO : QP_ENOMEM;
    }
    if (names->v.n) *name = qp_S(names)[0];        /* interned: outlives names */
    qp_unref(names);
    return 0;
}

/* Rows of the table in dir: the header of column col (or of its first). */
static int count_splay(qp_kdb *db, const char *dir, const char *col, int64_t *n, char *err,
                       size_t errlen)
{
    *n = 0;
    int rc = col ? 0 : first_column(dir, &col, err, errlen);
    if (rc || !col) return rc;
    char *p = qp__kdb_join(dir, col);
    rc = p ? count_col(db, p, n, err, errlen) : QP_ENOMEM;
    free(p);
    return rc;
}

int qp__kdb_part_count(qp_kdb *db, const qp__ktable *t, int64_t i, int64_t *n, char *err,
                       size_t errlen)
{
    char *dir = qp__kdb_join(db->parts[t->parts[i]].dir, t->name);
    int rc = dir ? count_splay(db, dir, NULL, n, err, errlen) : QP_ENOMEM;
    free(dir);
    return rc;
}

int qp_kdb_count(qp_kdb *db, const char *table, int64_t *n, char *err, size_t errlen)
{
    *n = 0;
    qp_value *no = NULL;
    qp__ktable *t = find_or(db, table, &no);
    if (!t) {
        snprintf(err, errlen, "%s", no ? no->s : "out of memory");
        qp_unref(no);
        return QP_EARG;
    }
    if (t->kind == KT_SPLAY) return count_splay(db, t->path, NULL, n, err, errlen);
    if (t->kind == KT_FLAT) {
        qp_value *x = load_flat(db, t, 0);
        int rc = qp_is_error(x) ? QP_EIO : 0;
        if (rc) snprintf(err, errlen, "%s", x->s);
        else *n = qp_count(x);
        qp_unref(x);
        return rc;
    }
    /* One .d (the last partition's) names the column; then one header
     * per partition. */
    char *last = qp__kdb_join(db->parts[t->parts[t->nparts - 1]].dir, t->name);
    const char *col = NULL;
    int rc = last ? first_column(last, &col, err, errlen) : QP_ENOMEM;
    free(last);
    for (int64_t i = 0; !rc && col && i < t->nparts; i++) {
        char *dir = qp__kdb_join(db->parts[t->parts[i]].dir, t->name);
        int64_t k = 0;
        rc = dir ? count_splay(db, dir, col, &k, err, errlen) : QP_ENOMEM;
        free(dir);
        *n += k;
    }
    return rc;
}

static const char TC[] = " bg xhijefcspmdznuvt";

/* Type char and attribute of column col's file, from its header; an
 * enumeration whose domain the root lacks is refused here already. */
static int col_meta(qp_kdb *db, const char *path, const char *col, char *tc, int *attr,
                    char *err, size_t errlen)
{
    qp__khead h;
    int rc = qp__kdb_peek(path, &h, err, errlen);
    if (rc) return rc;
    if ((h.kind == KF_ENUM || h.kind == KF_OLDENUM) && !qp__kdb_has_domain(db, h.dom)) {
        qp_value *e = qp__kdb_nodomain(db->domdir, path, col, h.dom);
        snprintf(err, errlen, "%s", e ? e->s : "out of memory");
        qp_unref(e);
        return QP_EIO;
    }
    *attr = h.attr;
    int first = 0;
    switch (h.kind) {
    case KF_VEC: *tc = TC[h.type]; break;
    case KF_NESTED: *tc = (char)(TC[h.type] - 'a' + 'A'); break;
    case KF_ENUM: case KF_OLDENUM: *tc = 's'; break;
    case KF_FLAT: *tc = h.type >= 0 && h.type <= 19 ? TC[h.type] : ' '; break;
    case KF_ANYMAP:   /* q 4.x's strings: as q's meta, its first item's type upper case */
        if ((rc = qp__kdb_anymap_first(path, &h, &first, err, errlen))) return rc;
        *tc = first >= 1 && first <= 19 && TC[first] != ' ' ? (char)(TC[first] - 'a' + 'A') : ' ';
        break;
    default: *tc = ' ';
    }
    return 0;
}

/* Type char of a loaded column (flat tables). A list column's is its
 * first item's, upper case, as q's meta (and the anymap case above) looks
 * at the first item only. */
static char val_meta(const qp_value *c)
{
    if (c->type == QP_ENUM) return 's';
    if (c->type >= 1 && c->type <= 19) return TC[c->type];
    if (c->type != QP_LIST || !c->v.n) return ' ';
    int t = qp_K(c)[0]->type;
    return t >= 1 && t <= 19 && TC[t] != ' ' ? (char)(TC[t] - 'a' + 'A') : ' ';
}

/* meta's keyed table from n names, type chars and attributes. */
static qp_value *meta_table(qp_value *c, qp_value *ty, const int *attrs)
{
    static const char *const an[] = {"", "s", "u", "p", "", "g"};
    int64_t n = c->v.n;
    qp_value *f = qp_vector(QP_SYMBOL, n), *a = qp_vector(QP_SYMBOL, n);
    const char *empty = qp_sym_intern("", 0);
    for (int64_t i = 0; f && a && i < n; i++) {
        const char *s = attrs[i] >= 0 && attrs[i] < 6 ? an[attrs[i]] : "";
        qp_S(a)[i] = qp_sym_intern(s, strlen(s));
        qp_S(f)[i] = empty;
    }
    qp_value *r = qp_meta_table(c, ty, f, a);
    return r ? r : qp_error("out of memory");
}

static qp_value *meta_flat(qp_kdb *db, const qp__ktable *t)
{
    qp_value *x = load_flat(db, t, 0);
    if (qp_is_error(x)) return x;
    qp_value *names = qp_table_names(x), *cols = qp_table_columns(x);
    int64_t n = names->v.n;
    qp_value *ty = qp_vector(QP_CHAR, n);
    int *attrs = calloc((size_t)n + 1, sizeof *attrs);
    qp_value *r = NULL;
    if (ty && attrs) {
        for (int64_t i = 0; i < n; i++) {
            qp_C(ty)[i] = val_meta(qp_K(cols)[i]);
            attrs[i] = qp_K(cols)[i]->attr;
        }
        r = meta_table(qp_ref(names), ty, attrs);
        ty = NULL;
    }
    qp_unref(ty);
    free(attrs);
    qp_unref(x);
    return r ? r : qp_error("out of memory");
}

qp_value *qp_kdb_meta(qp_kdb *db, const char *table)
{
    qp_value *err = NULL;
    qp__ktable *t = find_or(db, table, &err);
    if (!t) return err;
    if (t->kind == KT_FLAT) return meta_flat(db, t);
    bool part = t->kind == KT_PART;
    char *dir = part ? qp__kdb_join(db->parts[t->parts[t->nparts - 1]].dir, t->name) : strdup(t->path);
    qp_value *names = dir ? qp__kdb_columns(dir) : NULL;
    if (!names || qp_is_error(names)) { free(dir); return names ? names : qp_error("out of memory"); }
    int64_t n = names->v.n + part;
    qp_value *c = qp_vector(QP_SYMBOL, n), *ty = qp_vector(QP_CHAR, n);
    int *attrs = calloc((size_t)n + 1, sizeof *attrs);
    char msg[512];
    if (!c || !ty || !attrs) { err = qp_error("out of memory"); goto done; }
    if (part) {
        const char *pn = qp__kdb_pcol(db->pkind);
        qp_S(c)[0] = qp_sym_intern(pn, strlen(pn));
        qp_C(ty)[0] = db->pkind == PK_DATE ? 'd' : db->pkind == PK_MONTH ? 'm' : 'j';
    }
    for (int64_t i = 0; i < names->v.n; i++) {
        char *p = qp__kdb_join(dir, qp_S(names)[i]);
        int rc = p ? col_meta(db, p, qp_S(names)[i], &qp_C(ty)[i + part], &attrs[i + part], msg,
                              sizeof msg) : QP_ENOMEM;
        free(p);
        if (rc) { err = qp_error("%s", rc == QP_ENOMEM ? "out of memory" : msg); goto done; }
        qp_S(c)[i + part] = qp_S(names)[i];
    }
    err = meta_table(c, ty, attrs);
    c = ty = NULL;
done:
    qp_unref(c);
    qp_unref(ty);
    qp_unref(names);
    free(attrs);
    free(dir);
    return err;
}

/* ------------------------------------------------------------------ */
/* A selection: some partitions, columns and rows (qp_kdb_select)      */
/* ------------------------------------------------------------------ */

/* sel's rows of a table or partition of n rows: *a and *m (the count),
 * or an error value naming them. */
static qp_value *sel_rows(const qp_kdb_sel *sel, int64_t n, const char *what, int64_t *a,
                          int64_t *m)
{
    int64_t b = sel->b < 0 || sel->b > n ? n : sel->b;
    *a = sel->a;
    *m = b - *a;
    if (*a < 0 || *a > n || (sel->b >= 0 && sel->b < *a))
        return qp_error("rows %lld..%lld outside 0..%lld of %s", (long long)sel->a,
                        (long long)sel->b, (long long)n, what);
    return NULL;
}

/* A splayed or flat table: its mapping, the columns picked, only the
 * rows asked for checked (as qp_kdb_table_rows). */
static qp_value *select_flat(qp_kdb *db, qp__ktable *t, const qp_kdb_sel *sel, unsigned flags)
{
    if (sel->part)
        return qp_error("%s: table %s is not partitioned: it has no partitions to select",
                        db->path, t->name);
    qp_value *raw = raw_table(db, t);
    if (!raw || qp_is_error(raw)) return raw;
    qp_value *x = sel->cols ? qp_table_pick(raw, sel->cols, t->name) : qp_ref(raw);
    qp_unref(raw);
    if (!x || qp_is_error(x)) return x;
    int64_t a, m;
    qp_value *r = sel_rows(sel, qp_count(x), t->name, &a, &m);
    if (!r) r = checked_rows(t, x, a, m, flags);
    qp_unref(x);
    return r;
}

/* The files to open for columns cols of partitioned table t: cols less
 * its partition column (*pcol: whether that one is asked for), checked
 * against the names its last partition's .d lists (as meta reads them);
 * with no file column asked for, its first one, for the row count. New
 * reference (a symbol vector) or an error value naming a column it lacks. */
static qp_value *file_columns(qp_kdb *db, const qp__ktable *t, const qp_value *cols, bool *pcol)
{
    if (!t->nparts) return qp_error("table %s has no partitions", t->name);
    const char *pn = qp__kdb_pcol(db->pkind);
    pn = qp_sym_intern(pn, strlen(pn));
    char *dir = qp__kdb_join(db->parts[t->parts[t->nparts - 1]].dir, t->name);
    qp_value *names = dir ? qp__kdb_columns(dir) : NULL;
    free(dir);
    if (!names || qp_is_error(names)) return names ? names : qp_error("out of memory");
    /* the table's shape without rows: qp_table_pick checks cols on it */
    int64_t n = names->v.n;
    qp_value *all = qp_vector(QP_SYMBOL, n + 1), *none = qp_vector(QP_LIST, n + 1);
    qp_value *want = qp_vector(QP_SYMBOL, 0), *r = NULL;
    if (!all || !none || !want) goto done;
    qp_S(all)[0] = pn;
    for (int64_t i = 0; i < n; i++) qp_S(all)[i + 1] = qp_S(names)[i];
    for (int64_t i = 0; i <= n; i++)
        if (!(qp_K(none)[i] = qp_vector(QP_LIST, 0))) goto done;
    qp_value *shape = qp_table(qp_dict(all, none));
    all = none = NULL;
    r = shape ? qp_table_pick(shape, cols, t->name) : NULL;
    qp_unref(shape);
    if (!r || qp_is_error(r)) goto done;
    qp_unref(r);
    r = NULL;
    *pcol = false;
    for (int64_t i = 0; i < cols->v.n; i++) {
        if (qp_S(cols)[i] == pn) *pcol = true;
        else if (qp_vec_append(want, &qp_S(cols)[i]) < 0) goto done;
    }
    if (!want->v.n && n && qp_vec_append(want, &qp_S(names)[0]) < 0) goto done;
    r = want;
    want = NULL;
done:
    qp_unref(names);
    qp_unref(all);
    qp_unref(none);
    qp_unref(want);
    return r ? r : qp_error("out of memory");
}

/* A partitioned table: one partition, rows across partitions (only the
 * partitions they touch), or all of it; only the column files asked for
 * are opened, and the columns come back in the order asked. */
static qp_value *select_parted(qp_kdb *db, qp__ktable *t, const qp_kdb_sel *sel, unsigned flags)
{
    qp_value *want = NULL, *x = NULL, *err = NULL;
    bool pcol = true;
    if (sel->cols && (want = file_columns(db, t, sel->cols, &pcol)) && qp_is_error(want))
        return want;
    bool keep = pcol;       /* the partition column, when asked for */
    if (sel->part) {
        int64_t p = part_at(db, t->name, sel->part, &err), a, m;
        x = p < 0 ? err : part_cols(db, t, p, want, keep, flags);
        if (x && !qp_is_error(x)) {
            char what[160], pv[64];
            qp_format_line(sel->part, pv, sizeof pv);
            snprintf(what, sizeof what, "%s's partition %s", t->name, pv);
            qp_value *e = sel_rows(sel, qp_count(x), what, &a, &m), *y = NULL;
            if (!e && (a || m != qp_count(x))) y = qp_table_slice(x, a, m);
            if (e || y) { qp_unref(x); x = e ? e : y; }
        }
    } else if (sel->a || sel->b >= 0) {
        int64_t b = sel->b < 0 ? INT64_MAX : sel->b;
        x = qp__kdb_rows_of(db, t, sel->a, b, want, keep, flags);
    } else {
        x = whole_parted(db, t, want, keep, flags);
    }
    qp_unref(want);
    if (!x || qp_is_error(x) || !sel->cols) return x;
    qp_value *r = qp_table_pick(x, sel->cols, t->name);
    qp_unref(x);
    return r;
}

qp_value *qp_kdb_select(qp_kdb *db, const char *table, const qp_kdb_sel *sel, unsigned flags)
{
    qp_value *err = NULL;
    qp__ktable *t = find_or(db, table, &err);
    if (!t) return err;
    qp_value *r = t->kind == KT_PART ? select_parted(db, t, sel, flags) : select_flat(db, t, sel, flags);
    return r ? r : qp_error("%s: out of memory", table);
}
