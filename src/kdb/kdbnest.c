/* kdbnest.c - nested columns: a column file that indexes into its
 * companion file name# (KDB_FORMAT.md, "Nested columns").
 *
 *   - pre-3.6 (type 77+t): the column holds int64 cumulative element ends;
 *     name# holds the raw items of type t, no header. Row i is a vector
 *     viewing items [end[i-1], end[i]) of name#'s buffer: zero-copy.
 *   - anymap (3.6+, fd 20 type 77): the column holds 8-byte entries, a
 *     56-bit offset into name#'s data (from byte 4096) and a top format
 *     byte. Format 1: [0x7F + type][count byte] + items, or for an atom
 *     (type negative) [0x7F + type] + the atom; format 0: a header
 *     fb 00 type attr <int32> <int64 n> + items. Vectors view name# when
 *     their items are aligned for their type, else are copied.
 *
 * Memory rules: the result is a general list holding one new value per
 * row; the vectors among them hold a reference to name#'s buffer. Every
 * end and offset is checked against name#'s length before it is used.
 *
 * Not supported, with an error naming the column: symbols inside items
 * (name## holds their domain; no public file has one, unverified),
 * general lists inside items, unknown item formats.
 */
#include "kdb_int.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

qp_value *qp__kdb_nested(qp_buf *buf, const qp__khead *h, const char *path,
                         const qp__kdb_env *env);

static bool simple_type(int t) { return t >= 1 && t <= 19 && t != 3 && t != QP_SYMBOL; }

/* Pre-3.6: rows are slices of name#'s items. */
static qp_value *nested_old(qp_buf *col, const qp__khead *h, qp_buf *items, const char *path)
{
    const uint8_t *ends = col->data + h->data;
    size_t w = qp_type_width(h->type);
    uint64_t have = items->len / w;
    qp_value *list = qp_vector(QP_LIST, h->n);
    if (!list) return qp_error("%s: out of memory", path);
    int64_t prev = 0;
    for (int64_t i = 0; i < h->n; i++) {
        int64_t e = qp__krd64(ends + 8 * i);
        if (e < prev || (uint64_t)e > have) {
            list->v.n = i;
            qp_unref(list);
            return qp_error("%s: row %lld ends at item %lld, but %s# holds %llu items", path,
                            (long long)i, (long long)e, path, (unsigned long long)have);
        }
        qp_value *v = qp_vector_borrow(h->type, e - prev, items->data + (size_t)prev * w, items);
        if (!v) {
            list->v.n = i;
            qp_unref(list);
            return qp_error("%s: out of memory", path);
        }
        qp_K(list)[i] = v;
        prev = e;
    }
    return list;
}

/* A vector of n items of type t at p (within items): a view when aligned. */
static qp_value *item_vector(int t, int64_t n, const uint8_t *p, qp_buf *items)
{
    size_t w = qp_type_width(t);
    if ((uintptr_t)p % w == 0) return qp_vector_borrow(t, n, (void *)p, items);
    qp_value *v = qp_vector(t, n);
    if (v && n) memcpy(v->v.data, p, (size_t)n * w);
    return v;
}

/* One anymap item at byte at of items (fmt: the entry's top byte). Sets
 * *why and returns NULL when the item is malformed or unsupported. */
static qp_value *anymap_item(qp_buf *items, uint64_t at, int fmt, const char **why)
{
    const uint8_t *p = items->data + at;
    uint64_t room = items->len - at;
    int t;
    int64_t n;
    size_t hdr;
    if (fmt == 1) {
        t = (int)p[0] - 0x7F;
        if (t < 0) {                          /* an atom: no count byte */
            if (!simple_type(-t)) { *why = "unsupported atom type"; return NULL; }
            size_t w = qp_type_width(-t);
            if (room < 1 + w) { *why = "atom runs past the end"; return NULL; }
            qp_value *a = qp_atom(t);
            if (a) memcpy(&a->g, p + 1, w);
            if (!a) *why = "out of memory";
            return a;
        }
        if (room < 2) { *why = "item header runs past the end"; return NULL; }
        n = p[1];
        hdr = 2;
    } else if (fmt == 0) {
        if (room < 16 || p[0] != 0xfb) { *why = "bad item header"; return NULL; }
        t = p[2];
        n = qp__krd64(p + 8);
        hdr = 16;
    } else {
        *why = "unknown item format";
        return NULL;
    }
    if (t == QP_SYMBOL) { *why = "symbols inside items (name##) not supported"; return NULL; }
    if (!simple_type(t)) { *why = "unsupported item type"; return NULL; }
    size_t w = qp_type_width(t);
    if (n < 0 || (uint64_t)n > (room - hdr) / w) { *why = "item runs past the end"; return NULL; }
    qp_value *v = item_vector(t, n, p + hdr, items);
    if (v && fmt == 0) v->attr = 0;
    if (!v) *why = "out of memory";
    return v;
}

static qp_value *anymap(qp_buf *col, const qp__khead *h, qp_buf *items, const char *path)
{
    if (items->len < 4096) return qp_error("%s#: truncated (%zu bytes)", path, items->len);
    const uint8_t *ent = col->data + h->data;
    qp_value *list = qp_vector(QP_LIST, h->n);
    if (!list) return qp_error("%s: out of memory", path);
    for (int64_t i = 0; i < h->n; i++) {
        uint64_t e = (uint64_t)qp__krd64(ent + 8 * i);
        uint64_t off = e & 0x00ffffffffffffffULL;
        const char *why = "offset beyond the end";
        qp_value *v = NULL;
        if (off < items->len - 4096) v = anymap_item(items, 4096 + off, (int)(e >> 56), &why);
        if (!v) {
            list->v.n = i;
            qp_unref(list);
            return qp_error("%s: row %lld: %s (%s#, offset %llu)", path, (long long)i, why,
                            path, (unsigned long long)off);
        }
        qp_K(list)[i] = v;
    }
    return list;
}

qp_value *qp__kdb_nested(qp_buf *buf, const qp__khead *h, const char *path,
                         const qp__kdb_env *env)
{
    if (h->kind != KF_NESTED && h->kind != KF_ANYMAP)
        return qp_error("%s: unknown file kind", path);
    if (!env || !env->companion) return qp_error("%s: a nested column without its %s# file", path, path);
    char err[512];
    qp_buf *items = NULL;
    if (env->companion(env->data, "#", &items, err, sizeof err) < 0) return qp_error("%s", err);
    qp_value *x = h->kind == KF_NESTED ? nested_old(buf, h, items, path)
                                       : anymap(buf, h, items, path);
    qp_buf_unref(items);
    return x;
}

int qp__kdb_anymap_first(const char *path, const qp__khead *h, int *type, char *err,
                         size_t errlen)
{
    *type = 0;
    if (h->kind != KF_ANYMAP || h->n <= 0) return 0;
    qp_buf *col = NULL, *items = NULL;
    char p[PATH_MAX];
    int rc = qp__kdb_bytes(path, &col, err, errlen);
    if (rc < 0) return rc;
    if (snprintf(p, sizeof p, "%s#", path) >= (int)sizeof p)
        rc = qp__kerr(err, errlen, QP_EARG, "%s#: path too long", path);
    else if (col->len < h->data + 8)
        rc = qp__kerr(err, errlen, QP_EIO, "%s: truncated (%zu bytes)", path, col->len);
    else
        rc = qp__kdb_bytes(p, &items, err, errlen);
    if (rc < 0) goto done;
    uint64_t e = (uint64_t)qp__krd64(col->data + h->data), off = e & 0x00ffffffffffffffULL;
    int fmt = (int)(e >> 56);
    if (items->len < 4096 || off >= items->len - 4096) {
        rc = qp__kerr(err, errlen, QP_EIO, "%s: row 0: offset beyond the end (%s#, offset %llu)",
                      path, path, (unsigned long long)off);
        goto done;
    }
    const uint8_t *at = items->data + 4096 + off;
    if (fmt == 1) *type = (int)at[0] - 0x7F;
    else if (fmt == 0 && items->len - 4096 - off >= 16 && at[0] == 0xfb) *type = at[2];
done:
    qp_buf_unref(items);
    qp_buf_unref(col);
    return rc;
}
