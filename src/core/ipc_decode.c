/* ipc_decode.c - decoding kdb+ IPC messages into values.
 *
 * Every count is checked against the bytes present before anything is
 * allocated: a vector of n items needs n*width bytes, a list of n items at
 * least 2n (no value is shorter than a type byte and one more), n symbols
 * at least n. Nesting is bounded by limits->max_depth. A malformed message
 * becomes an error value naming what is wrong and where, never a crash.
 *
 * Zero-copy: a little-endian numeric vector whose items are aligned for
 * their type borrows the message buffer (qp_vector_borrow); otherwise the
 * items are copied (and byte-swapped for big-endian messages).
 *
 * Vector counts are 32-bit on the wire. q's capability 6 allows vectors of
 * more than 2^31-1 items, but their encoding is not in any public material
 * we could find, so such a count (a negative int32) is rejected by name.
 */
#include "qpeach/ipc.h"
#include "ipc_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct dec {
    qp_buf *buf;          /* the message: vectors may borrow it */
    const uint8_t *p;     /* body start */
    size_t n;             /* body bytes */
    size_t pos;           /* next byte to read, relative to p */
    bool big;             /* big-endian body: swap on read */
    int max_depth;        /* deepest nesting accepted */
    uint8_t *fix;         /* skip() rewrites big-endian bytes here (p's
                           * writable alias), or NULL */
    int code;             /* first failure (QP_E*), 0 while all is well */
    char err[200];        /* its text */
} dec;

static void *fail(dec *d, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void *fail(dec *d, int code, const char *fmt, ...)
{
    if (d->code) return NULL;
    d->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->err, sizeof d->err, fmt, ap);
    va_end(ap);
    return NULL;
}

static void *oom(dec *d) { return fail(d, QP_ENOMEM, "out of memory"); }

static size_t left(const dec *d) { return d->n - d->pos; }

static bool need(dec *d, size_t k, const char *what)
{
    if (left(d) >= k) return true;
    fail(d, QP_ETRUNC, "truncated: %s needs %zu bytes at byte %zu, %zu present", what, k,
         d->pos, left(d));
    return false;
}

static int32_t rd_i32(dec *d)
{
    uint32_t v;
    memcpy(&v, d->p + d->pos, 4);
    d->pos += 4;
    return (int32_t)(d->big ? __builtin_bswap32(v) : v);
}

static void swap_items(void *data, size_t w, int64_t n);

/* skip() on a big-endian function's private copy: turns the item or count
 * of width w just read (ending at pos) little-endian, so the opaque bytes
 * are what q would send from a little-endian machine. */
static void fix_le(dec *d, size_t w, int64_t n)
{
    if (d->fix) swap_items(d->fix + d->pos - w * (size_t)n, w, n);
}

/* Byte-swaps n items of width w in place (big-endian bodies). The items
 * may be unaligned (inside a function's bytes): memcpy in and out, which
 * compilers turn into plain loads and stores. */
static void swap_items(void *data, size_t w, int64_t n)
{
    uint8_t *p = data;
    if (w == 2) {
        for (int64_t i = 0; i < n; i++, p += 2) {
            uint16_t v;
            memcpy(&v, p, 2);
            v = __builtin_bswap16(v);
            memcpy(p, &v, 2);
        }
    } else if (w == 4) {
        for (int64_t i = 0; i < n; i++, p += 4) {
            uint32_t v;
            memcpy(&v, p, 4);
            v = __builtin_bswap32(v);
            memcpy(p, &v, 4);
        }
    } else if (w == 8) {
        for (int64_t i = 0; i < n; i++, p += 8) {
            uint64_t v;
            memcpy(&v, p, 8);
            v = __builtin_bswap64(v);
            memcpy(p, &v, 8);
        }
    }
    /* 1-byte items and guids (16 raw bytes) have no byte order. */
}

/* A NUL-terminated string at pos: returns its length, advances past the
 * NUL; -1 (and fails) when there is no NUL in the body. */
static ptrdiff_t rd_str(dec *d, const char *what)
{
    const uint8_t *s = d->p + d->pos;
    const uint8_t *z = memchr(s, 0, left(d));
    if (!z) {
        fail(d, QP_ETRUNC, "truncated: %s at byte %zu has no terminating NUL", what, d->pos);
        return -1;
    }
    d->pos += (size_t)(z - s) + 1;
    return z - s;
}

static const char *rd_sym(dec *d)
{
    size_t at = d->pos;
    ptrdiff_t k = rd_str(d, "symbol");
    if (k < 0) return NULL;
    const char *s = qp_sym_intern((const char *)d->p + at, (size_t)k);
    return s ? s : oom(d);
}

static qp_value *value(dec *d, int depth);

/* ------------------------------------------------------------------ */
/* Atoms and vectors                                                   */
/* ------------------------------------------------------------------ */

static qp_value *atom(dec *d, int t)
{
    if (t == -QP_SYMBOL) {
        const char *s = rd_sym(d);
        if (!s) return NULL;
        qp_value *x = qp_atom(t);
        if (!x) return oom(d);
        x->s = s;
        return x;
    }
    size_t w = qp__wire_width[-t];
    if (!need(d, w, qp_type_name(-t))) return NULL;
    qp_value *x = qp_atom(t);
    if (!x) return oom(d);
    memcpy(&x->g, d->p + d->pos, w);
    if (d->big) swap_items(&x->g, w, 1);
    d->pos += w;
    return x;
}

/* Reads the attribute byte and 32-bit count of a vector or list. */
static bool vec_head(dec *d, int t, uint8_t *attr, int64_t *n)
{
    if (!need(d, 5, "vector header")) return false;
    *attr = d->p[d->pos++];
    int32_t c = rd_i32(d);
    if (c < 0) {
        fail(d, QP_ETOOBIG, "%s of count %d (over 2^31-1 items) is not supported",
             t ? qp_type_name(t) : "list", c);
        return false;
    }
    *n = c;
    return true;
}

static qp_value *vector(dec *d, int t, int depth)
{
    uint8_t attr;
    int64_t n;
    if (!vec_head(d, t, &attr, &n)) return NULL;
    qp_value *x = NULL;
    if (t == QP_LIST) {
        if ((uint64_t)n > left(d) / 2)
            return fail(d, QP_ETRUNC, "truncated: list of %lld items needs at least %llu bytes, %zu present",
                        (long long)n, 2ULL * (unsigned long long)n, left(d));
        if (!(x = qp_vector(QP_LIST, n))) return oom(d);
        for (int64_t i = 0; i < n; i++)
            if (!(qp_K(x)[i] = value(d, depth + 1))) goto fail;
    } else if (t == QP_SYMBOL) {
        if ((uint64_t)n > left(d))
            return fail(d, QP_ETRUNC, "truncated: vector of %lld symbols needs at least %lld bytes, %zu present",
                        (long long)n, (long long)n, left(d));
        if (!(x = qp_vector(QP_SYMBOL, n))) return oom(d);
        const char **s = qp_S(x);
        for (int64_t i = 0; i < n; i++)
            if (!(s[i] = rd_sym(d))) goto fail;
    } else {
        size_t w = qp__wire_width[t];
        if ((uint64_t)n > left(d) / w)
            return fail(d, QP_ETRUNC, "truncated: vector of %lld %ss needs %llu bytes, %zu present",
                        (long long)n, qp_type_name(t), (unsigned long long)n * w, left(d));
        const uint8_t *src = d->p + d->pos;
        size_t align = w == 16 ? 1 : w;
        if (!d->big && d->buf && (uintptr_t)src % align == 0) {
            /* Zero-copy: the vector keeps the message buffer alive. */
            x = qp_vector_borrow(t, n, (void *)src, d->buf);
            if (!x) return oom(d);
        } else {
            /* A fresh buffer, not qp_vector(): it would zero the items
             * first, touching every page twice. */
            qp_buf *b = qp_buf_new(n ? (size_t)n * w : 16);
            if (!b) return oom(d);
            qp__advise_huge(b->data, b->len);
            if (n) memcpy(b->data, src, (size_t)n * w);
            if (d->big) swap_items(b->data, w, n);
            x = qp_vector_borrow(t, n, b->data, b);
            qp_buf_unref(b);
            if (!x) return oom(d);
        }
        d->pos += (size_t)n * w;
    }
    x->attr = attr;
    return x;
fail:
    qp_unref(x);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Functions: opaque bytes, but we must parse them to find their end    */
/* ------------------------------------------------------------------ */

static bool skip(dec *d, int depth);

static bool skip_n(dec *d, int64_t n, int depth)
{
    for (int64_t i = 0; i < n; i++)
        if (!skip(d, depth)) return false;
    return true;
}

/* Advances past one value, checking it as value() would. */
static bool skip(dec *d, int depth)
{
    if (depth > d->max_depth) return fail(d, QP_EDEPTH, "nested deeper than %d", d->max_depth), false;
    if (!need(d, 1, "type byte")) return false;
    size_t at = d->pos;
    int t = (int8_t)d->p[d->pos++];
    if (t == QP_ERROR || t == -QP_SYMBOL) return rd_str(d, "symbol") >= 0;
    if (t < 0 && t >= -19 && t != -3) {
        if (!need(d, qp__wire_width[-t], qp_type_name(-t))) return false;
        d->pos += qp__wire_width[-t];
        fix_le(d, qp__wire_width[-t], 1);
        return true;
    }
    if (t >= 0 && t <= 19 && t != 3) {
        uint8_t attr;
        int64_t n;
        if (!vec_head(d, t, &attr, &n)) return false;
        fix_le(d, 4, 1);
        if (t == QP_LIST) {
            if ((uint64_t)n > left(d) / 2)
                return fail(d, QP_ETRUNC, "truncated: list of %lld items needs at least %llu bytes, %zu present",
                            (long long)n, 2ULL * (unsigned long long)n, left(d)), false;
            return skip_n(d, n, depth + 1);
        }
        if (t == QP_SYMBOL) {
            for (int64_t i = 0; i < n; i++)
                if (rd_str(d, "symbol") < 0) return false;
            return true;
        }
        if ((uint64_t)n > left(d) / qp__wire_width[t])
            return fail(d, QP_ETRUNC, "truncated: vector of %lld %ss needs %llu bytes, %zu present",
                        (long long)n, qp_type_name(t),
                        (unsigned long long)n * qp__wire_width[t], left(d)), false;
        d->pos += (size_t)n * qp__wire_width[t];
        fix_le(d, qp__wire_width[t], n);
        return true;
    }
    switch (t) {
    case QP_TABLE:
        if (!need(d, 1, "table attribute")) return false;
        d->pos++;
        return skip(d, depth + 1);
    case QP_DICT:
    case QP_SORTED_DICT:
        return skip_n(d, 2, depth + 1);
    case QP_LAMBDA:
        return rd_str(d, "lambda context") >= 0 && skip(d, depth + 1);
    case QP_UNARY: case QP_BINARY: case QP_TERNARY:
        return need(d, 1, "primitive") && (d->pos++, true);
    case QP_PROJECTION: case QP_COMPOSITION: {
        if (!need(d, 4, "function count")) return false;
        int32_t n = rd_i32(d);
        fix_le(d, 4, 1);
        if (n < 0 || (uint64_t)n > left(d) / 2)
            return fail(d, QP_ETRUNC, "truncated: %s of %d items at byte %zu", qp_type_name(t), n, at), false;
        return skip_n(d, n, depth + 1);
    }
    case QP_EACH: case QP_OVER: case QP_SCAN: case QP_EACHPRIOR:
    case QP_EACHRIGHT: case QP_EACHLEFT:
        return skip(d, depth + 1);
    case QP_DYNLOAD:
        return fail(d, QP_ETYPE, "type 112 (dynamic load) at byte %zu cannot be sent over IPC", at), false;
    default:
        return fail(d, QP_ETYPE, "unknown type %d at byte %zu", t, at), false;
    }
}

static qp_value *func(dec *d, int t, int depth)
{
    size_t start = d->pos;
    d->pos--; /* let skip() see the type byte */
    if (!skip(d, depth)) return NULL;
    qp_value *x = qp_func(t, d->p + start, d->pos - start);
    if (!x) return oom(d);
    if (d->big) {
        /* Walk the copy again, turning it little-endian in place. */
        dec f = {.p = x->v.data, .n = (size_t)x->v.n, .big = true,
                 .max_depth = d->max_depth, .fix = x->v.data};
        for (f.pos = 0; f.pos < f.n && !f.code;) {
            if (t == QP_LAMBDA && f.pos == 0) rd_str(&f, "lambda context");
            else if (t == QP_UNARY || t == QP_BINARY || t == QP_TERNARY) f.pos = f.n;
            else if ((t == QP_PROJECTION || t == QP_COMPOSITION) && f.pos == 0) {
                rd_i32(&f);
                fix_le(&f, 4, 1);
            } else {
                skip(&f, depth + 1);
            }
        }
    }
    return x;
}

/* ------------------------------------------------------------------ */
/* Values                                                              */
/* ------------------------------------------------------------------ */

static qp_value *value(dec *d, int depth)
{
    if (depth > d->max_depth) return fail(d, QP_EDEPTH, "nested deeper than %d", d->max_depth);
    if (!need(d, 1, "type byte")) return NULL;
    size_t at = d->pos;
    int t = (int8_t)d->p[d->pos++];
    if (t == QP_ERROR) {
        size_t s = d->pos;
        ptrdiff_t k = rd_str(d, "error text");
        if (k < 0) return NULL;
        qp_value *x = qp_error("%.*s", (int)k, (const char *)d->p + s);
        return x ? x : oom(d);
    }
    if (t < 0 && t >= -19 && t != -3) return atom(d, t);
    if (t >= 0 && t <= 19 && t != 3) return vector(d, t, depth);
    if (t == QP_DICT || t == QP_SORTED_DICT) {
        qp_value *k = value(d, depth + 1);
        qp_value *v = k ? value(d, depth + 1) : NULL;
        if (!v) { qp_unref(k); return NULL; }
        qp_value *x = t == QP_DICT ? qp_dict(k, v) : qp_dict_sorted(k, v);
        return x ? x : oom(d);
    }
    if (t == QP_TABLE) {
        if (!need(d, 1, "table attribute")) return NULL;
        uint8_t attr = d->p[d->pos++];
        size_t dat = d->pos;
        qp_value *dict = value(d, depth + 1);
        if (!dict) return NULL;
        if (dict->type != QP_DICT) {
            fail(d, QP_ECORRUPT, "table at byte %zu holds a %s, not a dict", at,
                 qp_type_name(dict->type));
            qp_unref(dict);
            return NULL;
        }
        qp_value *x = qp_table(dict);
        if (!x) return oom(d);
        if (x->type == QP_ERROR) {
            fail(d, QP_ECORRUPT, "bad table at byte %zu: %s", dat, x->s);
            qp_unref(x);
            return NULL;
        }
        x->attr = attr;
        return x;
    }
    if (t >= QP_LAMBDA && t <= QP_DYNLOAD) return func(d, t, depth);
    return fail(d, QP_ETYPE, "unknown type %d at byte %zu", t, at);
}

/* ------------------------------------------------------------------ */
/* Entry points                                                        */
/* ------------------------------------------------------------------ */

static int decode(qp_buf *buf, const uint8_t *p, size_t len, bool big,
                  const qp_ipc_limits *limits, qp_value **out)
{
    dec d = {.buf = buf, .p = p, .n = len, .big = big,
             .max_depth = limits && limits->max_depth > 0 ? limits->max_depth : 128};
    uint64_t max = limits && limits->max_msg ? limits->max_msg : QP_IPC_MAX_LEN;
    qp_value *x = NULL;
    if (len > max)
        fail(&d, QP_ETOOBIG, "message of %zu bytes exceeds the limit of %llu", len,
             (unsigned long long)max);
    else if (!len)
        fail(&d, QP_ETRUNC, "truncated: empty message body");
    else if ((x = value(&d, 0)) && d.pos != d.n) {
        fail(&d, QP_ECORRUPT, "%zu bytes left over after the value", d.n - d.pos);
        qp_unref(x);
        x = NULL;
    }
    if (x) {
        *out = x;
        return 0;
    }
    *out = d.code == QP_ENOMEM ? NULL : qp_error("%s", d.err);
    if (!*out) return QP_ENOMEM;
    return d.code;
}

int qp_ipc_decode_msg(qp_buf *buf, const qp_ipc_limits *limits, qp_value **out)
{
    qp_ipc_header h;
    *out = NULL;
    int rc = buf->len < QP_IPC_HEADER ? QP_EPROTO : qp_ipc_header_parse(buf->data, &h);
    if (rc) {
        *out = qp_error("bad message header");
        return *out ? rc : QP_ENOMEM;
    }
    if (h.len > buf->len) {
        *out = qp_error("truncated: header says %llu bytes, %zu present",
                        (unsigned long long)h.len, buf->len);
        return *out ? QP_ETRUNC : QP_ENOMEM;
    }
    if (h.compressed) {
        qp_buf *u = NULL;
        rc = qp_ipc_decompress(buf->data, (size_t)h.len, limits, &u);
        if (rc) {
            *out = qp_error("bad compressed message: %s", qp_strerror(rc));
            return *out ? rc : QP_ENOMEM;
        }
        rc = qp_ipc_decode_msg(u, limits, out);
        qp_buf_unref(u);
        return rc;
    }
    return decode(buf, buf->data + QP_IPC_HEADER, (size_t)h.len - QP_IPC_HEADER, !h.little,
                  limits, out);
}

qp_value *qp_ipc_decode(qp_buf *buf, const qp_ipc_limits *limits)
{
    qp_value *x;
    qp_ipc_decode_msg(buf, limits, &x);
    return x;
}

qp_value *qp_ipc_decode_body(qp_buf *buf, size_t off, size_t len, bool big,
                             const qp_ipc_limits *limits)
{
    qp_value *x;
    if (off > buf->len || len > buf->len - off)
        return qp_error("truncated: body of %zu bytes at %zu, buffer holds %zu", len, off, buf->len);
    decode(buf, buf->data + off, len, big, limits, &x);
    return x;
}

/* ------------------------------------------------------------------ */
/* Layout sniffing for the reader's buffer placement                  */
/* ------------------------------------------------------------------ */

size_t qp__ipc_data_offset(const uint8_t *m, size_t have)
{
    if (have < QP_IPC_HEADER + 1 || m[0] != 1) return 0;
    size_t pos = QP_IPC_HEADER;
    int t = (int8_t)m[pos];
    if (t > 0 && t <= 19 && t != QP_SYMBOL) return pos + 6;
    if (t != QP_LIST) return 0;
    pos += 6;
    /* Leading items of a call such as (`f; x; y): skip atoms, symbols,
     * strings and byte vectors until a vector that wants alignment. */
    for (int k = 0; k < 16 && pos < have; k++) {
        t = (int8_t)m[pos];
        if (t == -QP_SYMBOL) {
            const uint8_t *z = memchr(m + pos + 1, 0, have - pos - 1);
            if (!z) return 0;
            pos = (size_t)(z - m) + 1;
        } else if (t < 0 && t >= -19) {
            pos += 1 + qp__wire_width[-t];
        } else if (t > 0 && t <= 19 && t != QP_SYMBOL) {
            if (qp__wire_width[t] >= 2 && qp__wire_width[t] <= 8) return pos + 6;
            if (pos + 6 > have) return 0;
            uint32_t n;
            memcpy(&n, m + pos + 2, 4);
            pos += 6 + (size_t)n * qp__wire_width[t];
        } else {
            return 0;
        }
    }
    return 0;
}
