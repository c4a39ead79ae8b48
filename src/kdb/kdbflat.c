/* kdbflat.c - flat table files (`ff 01` + a type 98 body) that q before
 * 3.6 wrote with `set`, whose enumerated columns sit inside the body
 * (KDB_FORMAT.md, layout 6): type byte 20+k, the domain name NUL-ended
 * (no padding), one attribute byte (3, p#, with no index after), an int32
 * count n, then n int32 indices into the root's file of that name.
 *
 * The IPC decoder knows no type 20+k, so such a body is walked here: the
 * byte span of every top-level column is found first (every count checked
 * against the bytes present), then each enumeration is read as a pre-3.6
 * enumeration file's indices are (qp__kdb_enum: widened to int64, its
 * domain from the db), and every other column is handed to the IPC
 * decoder over its own span. A body without enumerations, or one this
 * walk does not recognise, is left to the IPC decoder whole.
 *
 * Memory rules: as kdbfile.c's. The indices are copied (widened); the
 * other columns are what qp_ipc_decode_body makes of their bytes (numeric
 * vectors view buf when aligned).
 */
#include "kdb_int.h"
#include "qpeach/ipc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_enum(int t) { return t >= QP_ENUM && t < 77; }

static int32_t rd32(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Bytes after the NUL-ended string at p (len bytes), or 0 when it has no
 * NUL. */
static size_t cstr(const uint8_t *p, size_t len)
{
    const uint8_t *z = memchr(p, 0, len);
    return z ? (size_t)(z - p) + 1 : 0;
}

/* Bytes of the value at p (len bytes available): an atom, a vector, a
 * general list of those, or an enumeration. 0 when it is none of these
 * or runs past len. */
static size_t span(const uint8_t *p, size_t len, int depth)
{
    if (!len || depth > 8) return 0;
    int t = (int8_t)p[0];
    if (t == -QP_SYMBOL) return len > 1 && cstr(p + 1, len - 1) ? 1 + cstr(p + 1, len - 1) : 0;
    if (t < 0) return -t <= 19 && t != -3 && len > qp_type_width(-t) ? 1 + qp_type_width(-t) : 0;
    if (is_enum(t)) {
        size_t at = len > 1 ? cstr(p + 1, len - 1) : 0;
        if (!at || len - 1 - at < 5) return 0;
        at += 1;
        int32_t n = rd32(p + at + 1);
        return n >= 0 && (size_t)n <= (len - at - 5) / 4 ? at + 5 + 4 * (size_t)n : 0;
    }
    if (t > 19 || t == 3 || len < 6 || rd32(p + 2) < 0) return 0;
    int64_t n = rd32(p + 2);
    size_t at = 6;
    for (int64_t i = 0; t == QP_LIST && i < n; i++) {
        size_t k = span(p + at, len - at, depth + 1);
        if (!k) return 0;
        at += k;
    }
    for (int64_t i = 0; t == QP_SYMBOL && i < n; i++) {
        size_t k = cstr(p + at, len - at);
        if (!k) return 0;
        at += k;
    }
    if (t == QP_LIST || t == QP_SYMBOL) return at;
    size_t w = qp_type_width(t);
    return (uint64_t)n <= (len - at) / w ? at + (size_t)n * w : 0;
}

/* The enumeration column at byte off of buf. */
static qp_value *enum_column(qp_buf *buf, size_t off, const char *path, const qp__kdb_env *env)
{
    const uint8_t *p = buf->data + off;
    size_t nl = strlen((const char *)p + 1);
    qp__khead h = { .kind = KF_OLDENUM, .type = QP_ENUM, .attr = qp__kdb_attr(p[nl + 2]),
                    .n = rd32(p + nl + 3), .data = off + nl + 7, .width = 4 };
    if (nl >= sizeof h.dom) return qp_error("%s: domain name of %zu bytes", path, nl);
    if (h.attr < 0) return qp_error("%s: unknown attribute %d", path, p[nl + 2]);
    memcpy(h.dom, p + 1, nl + 1);
    return qp__kdb_enum(buf, &h, path, env);
}

/* Columns at off[0..n] (n + 1 offsets) of buf, named by names. */
static qp_value *columns(qp_buf *buf, const size_t *off, const qp_value *names, const char *path,
                         const qp__kdb_env *env)
{
    int64_t n = names->v.n;
    qp_value *cols = qp_vector(QP_LIST, n);
    if (!cols) return qp_error("%s: out of memory", path);
    for (int64_t i = 0; i < n; i++) {
        qp_value *c = is_enum(buf->data[off[i]])
                    ? enum_column(buf, off[i], path, env)
                    : qp_ipc_decode_body(buf, off[i], off[i + 1] - off[i], false, NULL);
        if (!c || qp_is_error(c)) {
            qp_value *e = qp_error("%s: %s (column %s)", path, c ? c->s : "out of memory",
                                   qp_S(names)[i]);
            qp_unref(c);
            cols->v.n = i;              /* only the filled slots */
            qp_unref(cols);
            return e;
        }
        qp_K(cols)[i] = c;
    }
    return cols;
}

qp_value *qp__kdb_flat_enums(qp_buf *buf, const char *path, const qp__kdb_env *env)
{
    const uint8_t *p = buf->data;
    size_t len = buf->len, at = 5, k;
    /* ff 01, 98 attr, 99, the names (a symbol vector), a list of columns */
    if (len < 12 || p[4] != QP_DICT || p[at] != QP_SYMBOL) return NULL;
    size_t names_at = at, names_len = k = span(p + at, len - at, 0);
    if (!k || (at += k) > len - 6 || p[at] != QP_LIST || rd32(p + at + 2) != rd32(p + names_at + 2))
        return NULL;
    int64_t n = rd32(p + at + 2);
    size_t *off = malloc(sizeof *off * (size_t)(n + 1));
    if (!off) return qp_error("%s: out of memory", path);
    bool any = false;
    qp_value *x = NULL;
    at += 6;
    for (int64_t i = 0; i < n; i++) {
        off[i] = at;
        any |= at < len && is_enum(p[at]);
        if (at < len && (k = span(p + at, len - at, 0))) { at += k; continue; }
        if (any)                          /* else the IPC decoder's error */
            x = qp_error("%s: column %lld of %lld (at byte %zu) runs past the end of the file "
                         "or is malformed", path, (long long)i + 1, (long long)n, at);
        goto done;
    }
    if (!any) goto done;                 /* the IPC decoder's */
    if (at != len) {
        x = qp_error("%s: %zu bytes left over after the table", path, len - at);
        goto done;
    }
    off[n] = at;
    qp_value *names = qp_ipc_decode_body(buf, names_at, names_len, false, NULL);
    if (!names || qp_is_error(names)) {
        x = qp_error("%s: column names: %s", path, names ? names->s : "out of memory");
        qp_unref(names);
        goto done;
    }
    qp_value *cols = columns(buf, off, names, path, env);
    if (qp_is_error(cols)) {
        qp_unref(names);
        x = cols;
        goto done;
    }
    x = qp_table(qp_dict(names, cols));
    if (!x || qp_is_error(x)) {
        qp_value *e = qp_error("%s: %s", path, x ? x->s : "out of memory");
        qp_unref(x);
        x = e;
    }
done:
    free(off);
    return x;
}
