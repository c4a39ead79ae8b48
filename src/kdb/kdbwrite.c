/* kdbwrite.c - qp_kdb_write: a table written as q 4.x writes it, splayed
 * (db/NAME/) or partitioned by date (db/DATE/NAME/), byte for byte.
 *
 * Bytes (see ../shared/KDB_FORMAT.md; checked against fixtures/kdb):
 *   - simple columns: `fe 20` + type + attr + 4 zero bytes + int64 count
 *     (always stored, as egor7/db/tref has it) + the items;
 *   - symbol columns: enumerated against db/sym, a 4096-byte `fd 20` page
 *     (domain name "sym" at byte 16, `fd 00 14 attr 0000` + int64 count at
 *     4080) then int64 indices; p# adds q's index after the data (layout
 *     in kdbwrite_sym.c);
 *   - general lists of vectors (strings): q's anymap NAME + NAME# (see
 *     write_nested);
 *   - `.d` and a new db/sym: `ff 01 0b 00` + int32 count + NUL-ended
 *     names. A sym file q extends with `?` keeps count 0, and appends keep
 *     the existing header (stale counts are normal), so we do the same.
 *
 * Memory rules: nothing of t is copied. Columns are streamed to their files
 * through one 64 KiB buffer; a partitioned or p# write keeps one int64 row
 * permutation (8 bytes a row) and the p# runs of one partition; a nested
 * column keeps one int64 offset per row of one partition. The sym
 * domain (existing file read whole + new names, which point into t's
 * interned symbols) lives for the call only.
 *
 * Atomicity: a write holds db's lock (kdbwrite_lock.c) from reading db/sym
 * to its commit, so two writers never append to one sym. Every table
 * folder is written complete (columns, then .d) in a temporary folder
 * beside its final place (".NAME.qpeach-new": a dot name, which the reader
 * skips). Only when all are written, db/sym is replaced by a temporary
 * copy holding the old bytes plus the new names (the old file kept as a
 * hard link until the end), then each temporary folder is renamed into
 * place (an existing table folder moved aside first). Each step is noted
 * in db's journal before it is taken, and any failure rolls back what the
 * journal says was done: the db is left as it was, byte for byte. A
 * process killed half way is rolled back the same way by its guard
 * (QP_KDB_GUARD) or by the next writer. A reader never sees a
 * half-written table folder; it may see a new, still empty partition
 * folder while the write runs, and the new sym before the folders (extra
 * names are harmless). Folders and files are made 0777 and 0666 less the
 * umask, as q makes them. No fsync: this protects against errors and
 * kills, not power loss.
 */
#include "kdbwrite_int.h"
#include "core/fileio_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "kdb+ files are little-endian");

#define PAGE 4096

/* ------------------------------------------------------------------ */
/* Buffered output with a sticky error                                 */
/* ------------------------------------------------------------------ */

typedef qp__kw_out out;

void qp__kw_flush(out *o)
{
    if (!o->rc && o->used) o->rc = qp__write_all(o->fd, o->buf, o->used);
    o->used = 0;
}

void qp__kw_put(out *o, const void *p, size_t n)
{
    if (o->rc) return;
    if (o->used + n > sizeof o->buf) qp__kw_flush(o);
    if (n >= sizeof o->buf) {
        if (!o->rc) o->rc = qp__write_all(o->fd, p, n);
        return;
    }
    memcpy(o->buf + o->used, p, n);
    o->used += n;
}

static void qp__kw_zeros(out *o, size_t n)
{
    static const uint8_t z[256];
    for (; n > sizeof z; n -= sizeof z) qp__kw_put(o, z, sizeof z);
    qp__kw_put(o, z, n);
}

/* Opens dir/name for writing (new file, mode 0666 less the umask). */
static int out_open(out *o, const char *dir, const char *name, char *err, size_t errlen)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    o->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    o->rc = o->fd < 0 ? -errno : 0;
    o->used = 0;
    if (o->rc) return qp__kerr(err, errlen, o->rc, "%s: %s", path, strerror(-o->rc));
    return 0;
}

/* Flushes and closes; returns the first error of the file, naming it. */
static int out_close(out *o, const char *dir, const char *name, char *err, size_t errlen)
{
    qp__kw_flush(o);
    if (o->fd >= 0 && close(o->fd) < 0 && !o->rc) o->rc = -errno;
    o->fd = -1;
    if (o->rc) return qp__kerr(err, errlen, o->rc, "%s/%s: %s", dir, name, strerror(-o->rc));
    return 0;
}

/* ------------------------------------------------------------------ */
/* The write plan                                                      */
/* ------------------------------------------------------------------ */

typedef qp__kw_plan plan;

static const char *col_name(const plan *p, int c) { return qp_S(qp_table_names(p->t))[c]; }
static const qp_value *col(const plan *p, int c) { return qp_K(qp_table_columns(p->t))[c]; }
static bool is_sym(const qp_value *x) { return x->type == QP_SYMBOL || x->type == QP_ENUM; }

/* The symbol of row r of a symbol (11) or enumeration (20) column. */
const char *qp__kw_symat(const qp_value *x, int64_t r)
{
    if (x->type == QP_SYMBOL) return qp_S(x)[r] ? qp_S(x)[r] : "";
    int64_t i = qp_J(x)[r];
    return i == QP_NULL_J ? "" : qp_S(x->v.dom)[i];
}

static int find_col(const plan *p, const char *name)
{
    for (int c = 0; c < p->ncol; c++)
        if (!strcmp(col_name(p, c), name)) return c;
    return -1;
}

/* A name that can be one file or folder name q would also use. */
static bool good_name(const char *s)
{
    if (!s || !*s || s[0] == '.' || strlen(s) > 200) return false;
    for (; *s; s++)
        if (*s == '/' || *s == '#' || (unsigned char)*s < ' ') return false;
    return true;
}

static int check_columns(plan *p, char *err, size_t errlen)
{
    for (int c = 0; c < p->ncol; c++) {
        const qp_value *x = col(p, c);
        const char *cn = col_name(p, c);
        if (!good_name(cn))
            return qp__kerr(err, errlen, QP_EARG, "column name '%s' cannot be a file name", cn);
        if (x->type == QP_ENUM && !x->v.dom)
            return qp__kerr(err, errlen, QP_EARG, "column %s: enumeration without a domain", cn);
        for (int64_t r = 0; x->type == QP_LIST && r < x->v.n; r++) {
            const qp_value *it = qp_K(x)[r];
            if (it->type < 1 || it->type > 19 || it->type == QP_SYMBOL || it->type == 3)
                return qp__kerr(err, errlen, QP_ETYPE, "column %s: row %lld is a %s; a general "
                                   "list column is written only when every row is a vector "
                                   "(strings, numbers; not symbols)", cn, (long long)r,
                                   qp_type_name(it->type));
        }
        if (x->type < 0 || (x->type > 19 && x->type != QP_ENUM) || x->type == 3)
            return qp__kerr(err, errlen, QP_ETYPE, "column %s: type %d cannot be written",
                               cn, x->type);
    }
    return 0;
}

static int plan_check(plan *p, const qp_kdb_write_opts *opts, char *err, size_t errlen)
{
    if (!p->t || p->t->type != QP_TABLE)
        return qp__kerr(err, errlen, QP_EARG, "not a table (a keyed table must be unkeyed first)");
    /* a q name: a letter first, so it cannot look like a partition */
    if (!good_name(p->name) || !strcmp(p->name, "sym") || !isalpha((unsigned char)p->name[0]))
        return qp__kerr(err, errlen, QP_EARG, "bad table name '%s'", p->name ? p->name : "");
    p->ncol = (int)qp_count(qp_table_names(p->t));
    p->n = qp_count(p->t);
    int rc = check_columns(p, err, errlen);
    if (rc) return rc;
    p->pcol = p->parted = -1;
    const char *pc = opts ? opts->partition : NULL;
    if (pc) {
        if ((p->pcol = find_col(p, pc)) < 0)
            return qp__kerr(err, errlen, QP_EARG, "no column %s to partition by", pc);
        if (col(p, p->pcol)->type != QP_DATE)
            return qp__kerr(err, errlen, QP_ETYPE, "partition column %s is %s, not date", pc,
                               qp_type_name(col(p, p->pcol)->type));
        if (p->ncol < 2)
            return qp__kerr(err, errlen, QP_EARG, "nothing to store beside partition column %s", pc);
        if (p->n == 0)
            return qp__kerr(err, errlen, QP_EARG, "no rows: no partition to write");
    }
    const char *pt = opts ? opts->parted : NULL;
    if (pt && *pt) {
        if ((p->parted = find_col(p, pt)) < 0 || p->parted == p->pcol)
            return qp__kerr(err, errlen, QP_EARG, "no column %s to give p#", pt);
        if (!is_sym(col(p, p->parted)))
            return qp__kerr(err, errlen, QP_ETYPE, "p# column %s is not a symbol column", pt);
    } else if (!pt && p->pcol >= 0) {
        for (int c = 0; c < p->ncol && p->parted < 0; c++)
            if (c != p->pcol && is_sym(col(p, c))) p->parted = c;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Row order: partitions ascending, then the p# column within each      */
/* ------------------------------------------------------------------ */

static int cmp_day(const void *a, const void *b, void *ctx)
{
    const int32_t *d = ctx;
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    if (d[x] != d[y]) return d[x] < d[y] ? -1 : 1;
    return (x > y) - (x < y);
}

/* As q's iasc on the symbols: by their text, stable. */
static int cmp_sym(const void *a, const void *b, void *ctx)
{
    const qp_value *x = ctx;
    int64_t i = *(const int64_t *)a, j = *(const int64_t *)b;
    const char *s = qp__kw_symat(x, i), *t = qp__kw_symat(x, j);
    int c = s == t ? 0 : strcmp(s, t);
    return c ? c : (i > j) - (i < j);
}

static int plan_rows(plan *p, char *err, size_t errlen)
{
    p->np = 1;
    if (p->pcol >= 0 || p->parted >= 0) {
        p->perm = malloc((size_t)(p->n ? p->n : 1) * sizeof *p->perm);
        if (!p->perm) return qp__kerr(err, errlen, QP_ENOMEM, "out of memory");
        for (int64_t r = 0; r < p->n; r++) p->perm[r] = r;
    }
    if (p->pcol >= 0) {
        const int32_t *d = qp_I(col(p, p->pcol));
        for (int64_t r = 0; r < p->n; r++)
            if (d[r] == QP_NULL_I || d[r] < -730119 || d[r] > 2921939)
                return qp__kerr(err, errlen, QP_EARG, "partition column %s: row %lld has %s date",
                                   col_name(p, p->pcol), (long long)r,
                                   d[r] == QP_NULL_I ? "a null" : "an out-of-range");
        qsort_r(p->perm, (size_t)p->n, sizeof *p->perm, cmp_day, (void *)d);
        for (int64_t i = 1; i < p->n; i++) p->np += d[p->perm[i]] != d[p->perm[i - 1]];
    }
    p->pstart = malloc((size_t)(p->np + 1) * sizeof *p->pstart);
    if (!p->pstart) return qp__kerr(err, errlen, QP_ENOMEM, "out of memory");
    p->pstart[0] = 0;
    int64_t k = 1;
    if (p->pcol >= 0) {
        const int32_t *d = qp_I(col(p, p->pcol));
        for (int64_t i = 1; i < p->n; i++)
            if (d[p->perm[i]] != d[p->perm[i - 1]]) p->pstart[k++] = i;
    }
    p->pstart[p->np] = p->n;
    return 0;
}

/* Sorts each partition by the p# column; after enumeration, which takes
 * names in table order as .Q.en does before .Q.dpft sorts. */
static void plan_sort_parted(plan *p)
{
    if (p->parted < 0) return;
    for (int64_t k = 0; k < p->np; k++)
        qsort_r(p->perm + p->pstart[k], (size_t)(p->pstart[k + 1] - p->pstart[k]),
                sizeof *p->perm, cmp_sym, (void *)col(p, p->parted));
}

static int64_t row_at(const plan *p, int64_t i) { return p->perm ? p->perm[i] : i; }

/* Enumerates every symbol column: partitions ascending, columns in table
 * order, rows in table order, new names appended in that order. */
static int plan_enumerate(plan *p, char *err, size_t errlen)
{
    for (int64_t k = 0; k < p->np; k++)
        for (int c = 0; c < p->ncol; c++) {
            if (c == p->pcol || !is_sym(col(p, c))) continue;
            for (int64_t i = p->pstart[k]; i < p->pstart[k + 1]; i++)
                if (qp__kw_sym_add(&p->sym, qp__kw_symat(col(p, c), row_at(p, i))) < 0)
                    return qp__kerr(err, errlen, QP_ENOMEM, "out of memory");
        }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Column files                                                        */
/* ------------------------------------------------------------------ */

static void put_header(out *o, uint8_t type, uint8_t attr, int64_t n)
{
    uint8_t h[16] = {0xfe, 0x20, type, attr};
    memcpy(h + 8, &n, 8);
    qp__kw_put(o, h, 16);
}

static void write_simple(plan *p, const qp_value *x, int64_t a, int64_t b)
{
    size_t w = qp_type_width(x->type);
    /* s# still holds on any subsequence of sorted rows, not after a p# sort */
    uint8_t attr = x->attr == QP_ATTR_SORTED && (p->parted < 0 || !p->perm) ? 1 : 0;
    put_header(p->o, (uint8_t)x->type, attr, b - a);
    const uint8_t *d = x->v.data;
    if (!p->perm) { qp__kw_put(p->o, d + (size_t)a * w, (size_t)(b - a) * w); return; }
    for (int64_t i = a; i < b; i++) qp__kw_put(p->o, d + (size_t)p->perm[i] * w, w);
}

/* The 4096 bytes before the data of a `fd 20` file: the domain name at 16
 * ("" for anymap files), then [fd][a][type][attr][0000][int64 n] at 4080. */
static void put_page(out *o, const char *domain, uint8_t a, uint8_t type, int64_t n)
{
    uint8_t page[16] = {0xfd, 0x20};
    qp__kw_put(o, page, 16);
    qp__kw_put(o, domain, strlen(domain) + 1);
    qp__kw_zeros(o, PAGE - 16 - 16 - strlen(domain) - 1);
    uint8_t h[16] = {0xfd, a, type};
    memcpy(h + 8, &n, 8);
    qp__kw_put(o, h, 16);
}

/* Returns 0, or QP_ENOMEM while collecting the p# runs. */
static int write_enum(plan *p, const qp_value *x, bool parted, int64_t a, int64_t b)
{
    put_page(p->o, "sym", 0, QP_ENUM, b - a);
    qp__kw_runs runs = {0};
    int rc = 0;
    for (int64_t i = a; i < b; i++) {
        int64_t v = qp__kw_sym_find(&p->sym, qp__kw_symat(x, row_at(p, i)));
        qp__kw_put(p->o, &v, 8);
        if (parted && !rc) rc = qp__kw_runs_add(&runs, v, i - a);
    }
    if (parted && !rc && qp__kw_parted_ok(&runs)) {
        rc = qp__kw_parted_index(&runs, b - a, p->o);
        qp__kw_flush(p->o);
        uint8_t attr = QP_ATTR_PARTED;     /* the attribute byte of the 4080 header */
        if (!p->o->rc && pwrite(p->o->fd, &attr, 1, PAGE - 16 + 3) != 1) p->o->rc = -errno;
    }
    qp__kw_runs_free(&runs);
    return rc;
}

/* ---- Nested columns: q 3.6+ anymap ----
 * NAME# holds the rows' items after a `fd 20` page (empty domain, header
 * fd 00 04 00, count 0 as every q-written NAME# has it): a vector of under
 * NEST_SHORT bytes as format 1, [0x7f + type][count byte] + items,
 * unaligned; a larger one as format 0, zero-padded to 8 bytes, then
 * fb 00 type attr <int32 1> <int64 n> + items. NAME is a `fd 20` page
 * (empty domain, header fd 01 4d 00 + n) then one int64 a row: the
 * item's offset in NAME#'s data | format << 56. Seen in fixtures:
 * format 1 strings up to 97 chars (memories, torq-air, dolphindb) and
 * format 0 for 30 longs (240 bytes, dolphindb intArrayVector). The exact
 * size where q switches is not evidenced between 98 and 239 bytes. */
enum { NEST_SHORT = 128 };

void qp__kw_nest_item(out *o, const qp_value *it, uint64_t *off, uint64_t *ent)
{
    size_t bytes = (size_t)it->v.n * qp_type_width(it->type);
    if (bytes < NEST_SHORT && it->v.n < 256) {
        uint8_t h[2] = {(uint8_t)(0x7f + it->type), (uint8_t)it->v.n};
        *ent = *off | 1ull << 56;
        qp__kw_put(o, h, 2);
        *off += 2;
    } else {
        size_t pad = (8 - *off % 8) % 8;
        qp__kw_zeros(o, pad);
        *off += pad;
        uint8_t h[16] = {0xfb, 0, (uint8_t)it->type, it->attr == QP_ATTR_SORTED, 1};
        memcpy(h + 8, &it->v.n, 8);
        *ent = *off;
        qp__kw_put(o, h, 16);
        *off += 16;
    }
    qp__kw_put(o, it->v.data, bytes);
    *off += bytes;
}

static int write_nested(plan *p, const qp_value *x, const char *dir, const char *name,
                        int64_t a, int64_t b, char *err, size_t errlen)
{
    char hname[256];
    snprintf(hname, sizeof hname, "%s#", name);
    uint64_t *ent = malloc((size_t)(b > a ? b - a : 1) * sizeof *ent), off = 0;
    if (!ent) return qp__kerr(err, errlen, QP_ENOMEM, "out of memory");
    int rc = out_open(p->o, dir, hname, err, errlen);
    if (!rc) {
        put_page(p->o, "", 0, QP_BYTE, 0);
        for (int64_t i = a; i < b; i++) qp__kw_nest_item(p->o, qp_K(x)[row_at(p, i)], &off, &ent[i - a]);
        rc = out_close(p->o, dir, hname, err, errlen);
    }
    if (!rc && !(rc = out_open(p->o, dir, name, err, errlen))) {
        put_page(p->o, "", 1, 77, b - a);
        qp__kw_put(p->o, ent, (size_t)(b - a) * sizeof *ent);
        rc = out_close(p->o, dir, name, err, errlen);
    }
    free(ent);
    return rc;
}

static int write_dotd(plan *p, const char *dir, char *err, size_t errlen)
{
    int rc = out_open(p->o, dir, ".d", err, errlen);
    if (rc) return rc;
    uint8_t h[8] = {0xff, 0x01, QP_SYMBOL, 0};
    int32_t cnt = p->ncol - (p->pcol >= 0);
    memcpy(h + 4, &cnt, 4);
    qp__kw_put(p->o, h, 8);
    if (p->parted >= 0) qp__kw_put(p->o, col_name(p, p->parted), strlen(col_name(p, p->parted)) + 1);
    for (int c = 0; c < p->ncol; c++)
        if (c != p->pcol && c != p->parted) qp__kw_put(p->o, col_name(p, c), strlen(col_name(p, c)) + 1);
    return out_close(p->o, dir, ".d", err, errlen);
}

/* Writes rows [a, b) of the plan as a splayed table in folder dir. */
static int write_splay(plan *p, const char *dir, int64_t a, int64_t b, char *err, size_t errlen)
{
    for (int c = 0; c < p->ncol; c++) {
        if (c == p->pcol) continue;
        const qp_value *x = col(p, c);
        int rc;
        if (x->type == QP_LIST) {
            if ((rc = write_nested(p, x, dir, col_name(p, c), a, b, err, errlen))) return rc;
            continue;
        }
        rc = out_open(p->o, dir, col_name(p, c), err, errlen);
        if (rc) return rc;
        if (is_sym(x)) {
            rc = write_enum(p, x, c == p->parted, a, b);
            if (rc) {
                out_close(p->o, dir, col_name(p, c), NULL, 0);
                return qp__kerr(err, errlen, rc, "%s/%s: %s", dir, col_name(p, c), qp_strerror(rc));
            }
        } else {
            write_simple(p, x, a, b);
        }
        if ((rc = out_close(p->o, dir, col_name(p, c), err, errlen))) return rc;
    }
    return write_dotd(p, dir, err, errlen);
}

/* ------------------------------------------------------------------ */
/* Folders: temporary, placed, undone                                  */
/* ------------------------------------------------------------------ */

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)ftw;
    return (flag == FTW_DP ? rmdir(path) : unlink(path)) ? -1 : 0;
}

int qp_kdb_remove(const char *dir)
{
    return nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS) ? -errno : 0;
}

/* Makes folder dir of db (a partition) unless it exists, noted first in
 * the journal. */
static int make_dir(plan *p, const char *dir, char *err, size_t errlen)
{
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", p->db, dir);
    if (!stat(path, &st) && S_ISDIR(st.st_mode)) return 0;
    int rc = qp__kw_jot(p->jfd, err, errlen, "mkdir %s", dir);
    if (!rc && mkdir(path, 0777) < 0) rc = qp__kerr(err, errlen, -errno, "%s: %s", path, strerror(errno));
    return rc;
}

/* Writes partition k (or the splayed table) into a new temporary folder
 * and records where it goes. */
static int write_part(plan *p, int64_t k, char *err, size_t errlen)
{
    qp__kw_move *mv = &p->moves[p->nmoves++];
    strcpy(mv->dir, ".");
    if (p->pcol >= 0) {
        int y, m, d;
        qp_ymd_from_days(qp_I(col(p, p->pcol))[p->perm[p->pstart[k]]], &y, &m, &d);
        snprintf(mv->dir, sizeof mv->dir, "%04d.%02d.%02d", y, m, d);
        int rc = make_dir(p, mv->dir, err, errlen);
        if (rc) return rc;
    }
    char tmp[PATH_MAX], final[PATH_MAX];
    qp__kw_path(final, sizeof final, p->db, mv->dir, p->name, NULL);
    qp__kw_path(tmp, sizeof tmp, p->db, mv->dir, p->name, QP__KW_NEW);
    struct stat st;
    if (!lstat(final, &st) && !S_ISDIR(st.st_mode))
        return qp__kerr(err, errlen, QP_EARG, "%s exists and is not a folder", final);
    int rc = qp__kw_jot(p->jfd, err, errlen, "table %s %s", mv->dir, p->name);
    if (rc) return rc;
    qp_kdb_remove(tmp);    /* one of ours, journal lost: the lock makes it stale */
    if (mkdir(tmp, 0777) < 0) return qp__kerr(err, errlen, -errno, "%s: %s", tmp, strerror(errno));
    return write_splay(p, tmp, p->pstart[k], p->pstart[k + 1], err, errlen);
}

/* Writes the new sym (old bytes + new names) to a temporary file. */
static int write_sym(plan *p, char *err, size_t errlen)
{
    /* a new name, or a first symbol column: the domain file must exist */
    if (!p->syms || (p->sym.file && !qp__kw_sym_new(&p->sym))) return 0;
    char tmp[PATH_MAX];
    qp__kw_path(tmp, sizeof tmp, p->db, ".", "sym", QP__KW_NEW);
    int rc = qp__kw_jot(p->jfd, err, errlen, "sym %d", p->sym.file != NULL);
    if (rc) return rc;
    p->symnew = true;
    unlink(tmp);
    p->o->fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (p->o->fd < 0) return qp__kerr(err, errlen, -errno, "%s: %s", tmp, strerror(errno));
    p->o->rc = 0;
    p->o->used = 0;
    qp__kw_sym_write(&p->sym, p->o);
    return out_close(p->o, p->db, "sym (its new copy)", err, errlen);
}

/* rename(2), naming what failed. */
static int move_to(const char *from, const char *to, char *err, size_t errlen)
{
    if (!rename(from, to)) return 0;
    return qp__kerr(err, errlen, -errno, "%s: cannot rename it to %s: %s", from, to, strerror(errno));
}

/* Puts the new sym and every folder in place (a failure is rolled back
 * by the journal). */
static int commit(plan *p, char *err, size_t errlen)
{
    char a[PATH_MAX], b[PATH_MAX], c[PATH_MAX];
    int rc = qp__kw_jot(p->jfd, err, errlen, "commit");
    if (!rc && p->symnew) {
        qp__kw_path(a, sizeof a, p->db, ".", "sym", NULL);
        qp__kw_path(b, sizeof b, p->db, ".", "sym", QP__KW_NEW);
        qp__kw_path(c, sizeof c, p->db, ".", "sym", QP__KW_OLD);
        unlink(c);
        if (p->sym.file && link(a, c) < 0)
            rc = qp__kerr(err, errlen, -errno, "%s: cannot keep the old sym: %s", a, strerror(errno));
        if (!rc) rc = move_to(b, a, err, errlen);
    }
    for (int64_t i = 0; !rc && i < p->nmoves; i++) {
        qp__kw_path(a, sizeof a, p->db, p->moves[i].dir, p->name, NULL);
        qp__kw_path(b, sizeof b, p->db, p->moves[i].dir, p->name, QP__KW_NEW);
        qp__kw_path(c, sizeof c, p->db, p->moves[i].dir, p->name, QP__KW_OLD);
        struct stat st;
        if (!lstat(a, &st)) {
            qp_kdb_remove(c);
            rc = move_to(a, c, err, errlen);
        }
        if (!rc) rc = move_to(b, a, err, errlen);
    }
    return rc ? rc : qp__kw_jot(p->jfd, err, errlen, "done");
}

static void plan_free(plan *p)
{
    free(p->moves); free(p->perm); free(p->pstart);
    qp__kw_sym_free(&p->sym);
    free(p->o);
}

int qp__kw_begin(plan *p, const char *db, const char *name, const qp_value *t,
                 const qp_kdb_write_opts *opts, char *err, size_t errlen)
{
    *p = (plan){.db = db, .name = name, .t = t, .jfd = -1, .lk = opts ? opts->lock : NULL};
    if (err && errlen) err[0] = 0;
    if (!db || !*db) return qp__kerr(err, errlen, QP_EARG, "no database folder given");
    int rc = plan_check(p, opts, err, errlen);
    if (rc) return rc;
    for (int c = 0; c < p->ncol; c++) p->syms |= c != p->pcol && is_sym(col(p, c));
    if ((rc = plan_rows(p, err, errlen))) return rc;
    if (!(p->o = malloc(sizeof *p->o)) || !(p->moves = calloc((size_t)p->np, sizeof *p->moves)))
        return qp__kerr(err, errlen, QP_ENOMEM, "out of memory");
    p->o->fd = -1;
    if (!p->lk && (rc = qp_kdb_lock_take(db, 60, 0, &p->own, NULL, err, errlen))) return rc;
    if (p->syms && (rc = qp__kw_sym_load(&p->sym, p->db, err, errlen))) return rc;
    if (p->syms && (rc = plan_enumerate(p, err, errlen))) return rc;
    plan_sort_parted(p);
    if ((rc = qp__kw_jopen(p->db, &p->jfd, err, errlen))) return rc;
    for (int64_t k = 0; k < p->np; k++)
        if ((rc = write_part(p, k, err, errlen))) return rc;
    return 0;
}

int qp__kw_end(plan *p, int rc, char *err, size_t errlen)
{
    if (!rc && !(rc = write_sym(p, err, errlen))) rc = commit(p, err, errlen);
    if (p->o && p->o->fd >= 0) close(p->o->fd);
    if (p->jfd >= 0) close(p->jfd);
    /* failed: roll back; done: drop what was kept aside */
    char err2[256];
    if (p->jfd >= 0 && qp__kw_recover(p->db, err2, sizeof err2) && !rc)
        rc = qp__kerr(err, errlen, QP_EIO, "%s", err2);
    if (!rc) qp__kw_committed(p->own ? p->own : p->lk);
    qp_kdb_lock_release(p->own);
    plan_free(p);
    return rc;
}

int qp_kdb_write(const char *db, const char *name, const qp_value *t,
                 const qp_kdb_write_opts *opts, char *err, size_t errlen)
{
    plan p;
    int rc = qp__kw_begin(&p, db, name, t, opts, err, errlen);
    return qp__kw_end(&p, rc, err, errlen);
}
