/* kdbfile.c - one file q wrote, as a value: qp_kdb_load_file and the
 * decoder the db reader (kdbdb.c) and the fuzzer share. Byte layouts:
 * ../shared/KDB_FORMAT.md; nested and anymap columns are in kdbnest.c.
 *
 * Memory rules (kdb.h's, and how they are kept):
 *   - A file is mapped once (qp_buf_map: read-only, shared); the vectors
 *     of an uncompressed file view that mapping (qp_vector_borrow /
 *     qp_enum_borrow add a reference to it), so nothing is copied and the
 *     mapping lives as long as any value viewing it. A kxzipped file is
 *     decompressed once into one buffer, which its vectors view alike.
 *   - The one copy: pre-3.6 enumerations hold int32 indices, widened into a
 *     new int64 buffer (0Ni becomes 0Nj).
 *   - Every header count is checked against the bytes present before any
 *     item is touched: a header that claims more than the file holds is
 *     an error naming the file, never a read past the mapping.
 *   - Enumerations resolve against domain files: with QP_KDB_ENUMS they
 *     stay type 20 sharing the domain value; otherwise they become symbol
 *     vectors (one interned pointer per row, no string interned per row).
 *
 * Unverified (no public file has them): a pre-3.6 enumeration whose domain
 * name is longer than 6 bytes (we round its header to 8 bytes as for
 * `sym`); simple vectors inside a `fd 20` page (read like `fe 20` at 4096).
 */
#include "kdb_int.h"
#include "qpeach/ipc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22       /* Linux 5.14; older headers lack it */
#endif

qp_value *qp__kdb_nested(qp_buf *buf, const qp__khead *h, const char *path,
                         const qp__kdb_env *env);

/* ------------------------------------------------------------------ */
/* Headers                                                             */
/* ------------------------------------------------------------------ */

int qp__kerr(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

int qp__kdb_attr(int a)
{
    static const int map[5] = {QP_ATTR_NONE, QP_ATTR_SORTED, QP_ATTR_UNIQUE,
                               QP_ATTR_PARTED, QP_ATTR_GROUPED};
    return a >= 0 && a <= 4 ? map[a] : -1;
}

static bool simple_type(int t) { return t >= 1 && t <= 19 && t != 3 && t != QP_SYMBOL; }

/* The zero-count rule and the size check, for items of width w from byte
 * h->data of a len-byte file whose header said n. */
static int count_items(qp__khead *h, int64_t n, int rawattr, size_t len, char *err,
                       size_t errlen)
{
    size_t w = h->width, room = len >= h->data ? len - h->data : 0;
    if (len < h->data)
        return qp__kerr(err, errlen, QP_ETRUNC, "truncated: %zu bytes, the items start at %zu",
                    len, h->data);
    if (n == 0 && rawattr <= 1) {           /* newer files leave n to the length */
        if (room % w)
            return qp__kerr(err, errlen, QP_ECORRUPT, "%zu data bytes are not a whole number of "
                        "%zu-byte items", room, w);
        n = (int64_t)(room / w);
    }
    if (n < 0 || (uint64_t)n > room / w)
        return qp__kerr(err, errlen, QP_ETRUNC, "header count %lld needs %llu bytes, the file "
                    "holds %zu", (long long)n, (unsigned long long)n * w, room);
    h->n = n;
    return 0;
}

/* h is a vector of simple type t; QP_ETYPE (with err) for any other t. */
static int vec_kind(qp__khead *h, int t, char *err, size_t errlen)
{
    if (!simple_type(t))
        return qp__kerr(err, errlen, QP_ETYPE, "unknown or unsupported column type %d", t);
    h->kind = KF_VEC;
    h->type = t;
    h->width = qp_type_width(t);
    return 0;
}

/* `fe 20`: a 16-byte header, then the items. */
static int head_fe20(const uint8_t *p, size_t have, size_t len, qp__khead *h, char *err,
                     size_t errlen)
{
    if (have < 16) return qp__kerr(err, errlen, QP_ETRUNC, "truncated header (%zu bytes)", have);
    int t = p[2];
    h->attr = qp__kdb_attr(p[3]);
    if (h->attr < 0) return qp__kerr(err, errlen, QP_ECORRUPT, "unknown attribute %d", p[3]);
    h->data = 16;
    if (t >= 77 + 1 && simple_type(t - 77)) {
        h->kind = KF_NESTED;
        h->type = t - 77;
        h->width = 8;
    } else if (vec_kind(h, t, err, errlen)) {
        return QP_ETYPE;
    }
    return count_items(h, qp__krd64(p + 8), p[3], len, err, errlen);
}

/* `fd 20`: a domain name at 16, a second header at 4080, items at 4096. */
static int head_fd20(const uint8_t *p, size_t have, size_t len, qp__khead *h, char *err,
                     size_t errlen)
{
    if (have < 4096)
        return qp__kerr(err, errlen, QP_ETRUNC, "truncated page header (%zu bytes)", have);
    const uint8_t *nul = memchr(p + 16, 0, 4080 - 16);
    size_t nl = nul ? (size_t)(nul - (p + 16)) : SIZE_MAX;
    if (nl >= sizeof h->dom) return qp__kerr(err, errlen, QP_ECORRUPT, "bad domain name");
    memcpy(h->dom, p + 16, nl);
    h->dom[nl] = 0;
    const uint8_t *q = p + 4080;
    int t = q[2];
    h->attr = qp__kdb_attr(q[3]);
    if (h->attr < 0) return qp__kerr(err, errlen, QP_ECORRUPT, "unknown attribute %d", q[3]);
    h->data = 4096;
    h->width = 8;
    if (t == QP_ENUM) {
        if (!nl) return qp__kerr(err, errlen, QP_ECORRUPT, "enumeration without a domain name");
        h->kind = KF_ENUM;
        h->type = QP_ENUM;
    } else if (t == 77) {
        h->kind = KF_ANYMAP;
        h->type = 0;
    } else if (vec_kind(h, t, err, errlen)) {
        return QP_ETYPE;
    }
    return count_items(h, qp__krd64(q + 8), q[3], len, err, errlen);
}

/* Pre-3.6 enumeration: fe, the domain name, zero padding to 8, a 16-byte
 * header with n at +8, then int32 indices. */
static int head_oldenum(const uint8_t *p, size_t have, size_t len, qp__khead *h, char *err,
                        size_t errlen)
{
    size_t lim = have < 64 ? have : 64;
    const uint8_t *nul = lim > 1 ? memchr(p + 1, 0, lim - 1) : NULL;
    if (!nul)
        return qp__kerr(err, errlen, QP_ECORRUPT, "not a kdb+ file (magic fe %02x)",
                        have > 1 ? p[1] : 0);
    size_t nl = (size_t)(nul - (p + 1));
    if (!nl) return qp__kerr(err, errlen, QP_ECORRUPT, "enumeration without a domain name");
    memcpy(h->dom, p + 1, nl);
    h->dom[nl] = 0;
    size_t hdr = (1 + nl + 1 + 7) & ~(size_t)7;
    if (have < hdr + 16)
        return qp__kerr(err, errlen, QP_ETRUNC, "truncated header (%zu bytes)", have);
    h->attr = qp__kdb_attr(p[hdr + 3]);
    if (h->attr < 0) return qp__kerr(err, errlen, QP_ECORRUPT, "unknown attribute %d", p[hdr + 3]);
    h->kind = KF_OLDENUM;
    h->type = QP_ENUM;
    h->data = hdr + 16;
    h->width = 4;
    return count_items(h, qp__krd64(p + hdr + 8), p[hdr + 3], len, err, errlen);
}

int qp__kdb_head(const uint8_t *p, size_t have, size_t len, qp__khead *h, char *err,
                 size_t errlen)
{
    memset(h, 0, sizeof *h);
    h->n = -1;
    if (have > len) have = len;
    if (have < 2)
        return qp__kerr(err, errlen, QP_ETRUNC, "empty or truncated file (%zu bytes)", len);
    if (p[0] == 0xff && p[1] == 0x01) {
        if (have < 3) return qp__kerr(err, errlen, QP_ETRUNC, "truncated file (%zu bytes)", len);
        h->kind = KF_FLAT;
        h->type = (int8_t)p[2];
        h->data = 2;
        return 0;
    }
    if (p[0] == 0xfe && p[1] == 0x20) return head_fe20(p, have, len, h, err, errlen);
    if (p[0] == 0xfd && p[1] == 0x20) return head_fd20(p, have, len, h, err, errlen);
    if (p[0] == 0xfe) return head_oldenum(p, have, len, h, err, errlen);
    if (qp__kdb_zipped(p, have))
        return qp__kerr(err, errlen, QP_ECORRUPT, "compressed file inside a compressed file");
    return qp__kerr(err, errlen, QP_ETYPE, "not a kdb+ file (magic %02x %02x)", p[0], p[1]);
}

bool qp__kdb_sniff(const char *path)
{
    uint8_t b[8] = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    ssize_t n = pread(fd, b, sizeof b, 0);
    close(fd);
    if (n < 2) return false;
    if ((b[0] == 0xfe || b[0] == 0xfd) && b[1] == 0x20) return true;
    if (b[0] == 0xfe && ((b[1] | 0x20) >= 'a' && (b[1] | 0x20) <= 'z')) return true;
    return n == 8 && qp__kdb_zipped(b, 8);
}

/* ------------------------------------------------------------------ */
/* Files                                                               */
/* ------------------------------------------------------------------ */

int qp__kdb_map(const char *path, qp_buf **out, char *err, size_t errlen)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return qp__kerr(err, errlen, -errno, "%s: %s", path, strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) < 0) rc = -errno;
    else if (S_ISDIR(st.st_mode)) rc = -EISDIR;
    else rc = qp_buf_map(fd, (size_t)st.st_size, out);
    close(fd);
    if (rc < 0) return qp__kerr(err, errlen, rc, "%s: %s", path, qp_strerror(rc));
    return 0;
}

int qp__kdb_bytes(const char *path, qp_buf **out, char *err, size_t errlen)
{
    int rc = qp__kdb_map(path, out, err, errlen);
    if (rc < 0 || !qp__kdb_zipped((*out)->data, (*out)->len)) return rc;
    qp_buf *z = *out, *u = NULL;
    char why[200];
    rc = qp__kdb_unzip(z->data, z->len, SIZE_MAX, &u, why, sizeof why);
    qp_buf_unref(z);
    *out = u;
    if (rc < 0) qp__kerr(err, errlen, rc, "%s: %s", path, why);
    return rc;
}

int qp__kdb_peek(const char *path, qp__khead *h, char *err, size_t errlen)
{
    qp_buf *b = NULL, *u = NULL;
    char why[200];
    int rc = qp__kdb_map(path, &b, err, errlen);
    if (rc < 0) return rc;
    const uint8_t *p = b->data;
    size_t len = b->len;
    if (qp__kdb_zipped(p, len)) {            /* the header is in block 0 */
        rc = qp__kdb_unzip(p, len, 4096 + 16, &u, why, sizeof why);
        if (rc < 0) goto fail;
        p = u->data;
        len = u->len;
    }
    rc = qp__kdb_head(p, len < 4096 + 16 ? len : 4096 + 16, len, h, why, sizeof why);
    if (rc < 0) goto fail;
    qp_buf_unref(u);
    qp_buf_unref(b);
    return 0;
fail:
    qp__kerr(err, errlen, rc, "%s: %s", path, why);
    qp_buf_unref(u);
    qp_buf_unref(b);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Decoding                                                            */
/* ------------------------------------------------------------------ */

qp_value *qp__kdb_syms(const uint8_t *p, size_t len, const char *path)
{
    if (len < 8 || p[0] != 0xff || p[1] != 0x01 || p[2] != QP_SYMBOL)
        return qp_error("%s: not a symbol list file", path);
    /* The count at 4 is advisory (stale in real `sym` files): count the
     * names by their terminators instead. */
    int64_t n = 0;
    for (size_t i = 8; i < len; i++) n += p[i] == 0;
    if (len > 8 && p[len - 1] != 0)
        return qp_error("%s: truncated: the last symbol has no terminator", path);
    qp_value *v = qp_vector(QP_SYMBOL, n);
    if (!v) return qp_error("%s: out of memory for %lld symbols", path, (long long)n);
    size_t at = 8;
    for (int64_t i = 0; i < n; i++) {
        size_t k = strlen((const char *)p + at);
        if (!(qp_S(v)[i] = qp_sym_intern((const char *)p + at, k))) {
            qp_unref(v);
            return qp_error("%s: out of memory", path);
        }
        at += k + 1;
    }
    v->attr = qp__kdb_attr(p[3]) > 0 ? (uint8_t)qp__kdb_attr(p[3]) : 0;
    return v;
}

static qp_value *flat(qp_buf *buf, const char *path, const qp__kdb_env *env)
{
    const uint8_t *p = buf->data;
    if (p[2] == QP_SYMBOL) return qp__kdb_syms(p, buf->len, path);
    qp_value *x = p[2] == QP_TABLE ? qp__kdb_flat_enums(buf, path, env) : NULL;
    if (x) return x;
    x = qp_ipc_decode_body(buf, 2, buf->len - 2, false, NULL);
    if (x && qp_is_error(x)) {
        qp_value *e = qp_error("%s: %s", path, x->s);
        qp_unref(x);
        return e;
    }
    return x;
}

void qp__kdb_populate(const void *p, size_t len)
{
    uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE), a = (uintptr_t)p & ~(pg - 1);
    if (len) madvise((void *)a, (uintptr_t)p + len - a, MADV_POPULATE_READ);
}

/* Enumerations: the domain, then the indices (widened when int32), checked
 * against it (the pages mapped in first: the check reads every index)
 * unless the caller checks them later (QP__KDB_UNCHECKED). */
qp_value *qp__kdb_enum(qp_buf *buf, const qp__khead *h, const char *path,
                       const qp__kdb_env *env)
{
    if (!env || !env->domain) return qp_error("%s: enumeration against `%s: no domain", path, h->dom);
    qp_value *dom = env->domain(env->data, h->dom);
    if (!dom || qp_is_error(dom)) return dom;
    qp_buf *ib = buf;
    const int64_t *idx = (const int64_t *)(buf->data + h->data);
    if (h->kind == KF_OLDENUM) {
        ib = qp_buf_new((size_t)h->n * 8);
        if (!ib) { qp_unref(dom); return qp_error("%s: out of memory", path); }
        int64_t *w = (int64_t *)ib->data;
        const uint8_t *src = buf->data + h->data;
        for (int64_t i = 0; i < h->n; i++) {
            int32_t v;
            memcpy(&v, src + 4 * i, 4);
            w[i] = v == QP_NULL_I ? QP_NULL_J : v;
        }
        idx = w;
    }
    qp_value *e;
    if (env->flags & QP__KDB_UNCHECKED) {      /* kdbtab.c checks the rows it hands out */
        e = qp_vector_borrow(QP_ENUM, h->n, (void *)idx, ib);
        if (e) e->v.dom = dom;
        else qp_unref(dom);
    } else {
        if (ib == buf && buf->maplen) qp__kdb_populate(idx, (size_t)h->n * 8);
        e = qp_enum_borrow(h->n, idx, ib, dom);
    }
    if (ib != buf) qp_buf_unref(ib);
    if (!e) return qp_error("%s: out of memory", path);
    if (qp_is_error(e)) {
        qp_value *x = qp_error("%s: %s (domain `%s)", path, e->s, h->dom);
        qp_unref(e);
        return x;
    }
    e->attr = (uint8_t)h->attr;
    if (env->flags & QP_KDB_ENUMS) return e;
    qp_value *s = qp_enum_resolve(e);
    qp_unref(e);
    return s ? s : qp_error("%s: out of memory", path);
}

static qp_value *decode_plain(qp_buf *buf, const char *path, const qp__kdb_env *env)
{
    char why[200];
    qp__khead h;
    if (qp__kdb_head(buf->data, buf->len, buf->len, &h, why, sizeof why) < 0)
        return qp_error("%s: %s", path, why);
    switch (h.kind) {
    case KF_FLAT: return flat(buf, path, env);
    case KF_VEC: {
        qp_value *v = qp_vector_borrow(h.type, h.n, buf->data + h.data, buf);
        if (!v) return qp_error("%s: out of memory", path);
        v->attr = (uint8_t)h.attr;
        return v;
    }
    case KF_ENUM: case KF_OLDENUM: return qp__kdb_enum(buf, &h, path, env);
    default: return qp__kdb_nested(buf, &h, path, env);
    }
}

qp_value *qp__kdb_decode(qp_buf *buf, const char *path, const qp__kdb_env *env)
{
    if (!qp__kdb_zipped(buf->data, buf->len)) return decode_plain(buf, path, env);
    char why[200];
    qp_buf *u = NULL;
    if (qp__kdb_unzip(buf->data, buf->len, SIZE_MAX, &u, why, sizeof why) < 0)
        return qp_error("%s: %s", path, why);
    qp_value *x = decode_plain(u, path, env);
    qp_buf_unref(u);
    return x;
}

qp_value *qp__kdb_load(const char *path, const qp__kdb_env *env)
{
    char err[512];
    qp_buf *b;
    if (qp__kdb_map(path, &b, err, sizeof err) < 0) return qp_error("%s", err);
    qp_value *x = qp__kdb_decode(b, path, env);
    qp_buf_unref(b);
    return x;
}

/* ------------------------------------------------------------------ */
/* qp_kdb_load_file: domains from the db root                          */
/* ------------------------------------------------------------------ */

typedef struct fileenv {
    const char *path;        /* the column file */
    const char *root;        /* the db root holding its domains, or NULL */
    qp_value *cache[4];      /* domains loaded so far (one call) */
    char names[4][128];
} fileenv;

/* Looks for domain name in folder dir: NULL when there is no such file, or
 * when it is not a symbol list (a column named `sym` beside the file). */
qp_value *qp__kdb_domain_in(const char *dir, const char *name)
{
    char p[PATH_MAX];
    struct stat st;
    if (snprintf(p, sizeof p, "%s/%s", dir, name) >= (int)sizeof p) return NULL;
    if (stat(p, &st) < 0 || !S_ISREG(st.st_mode)) return NULL;
    char err[512];
    qp_buf *b;
    if (qp__kdb_bytes(p, &b, err, sizeof err) < 0) return qp_error("%s", err);
    qp_value *v = NULL;
    if (b->len >= 8 && b->data[0] == 0xff && b->data[1] == 0x01 && b->data[2] == QP_SYMBOL)
        v = qp__kdb_syms(b->data, b->len, p);
    qp_buf_unref(b);
    return v;
}

/* The domain from the root only, as qp_kdb_open reads them: a folder above
 * it, or the file's own folder, is never looked in (the answer must not
 * depend on where the file happens to sit). */
static qp_value *file_domain(void *data, const char *name)
{
    fileenv *fe = data;
    for (int i = 0; i < 4; i++)
        if (fe->cache[i] && strcmp(fe->names[i], name) == 0) return qp_ref(fe->cache[i]);
    if (!fe->root)
        return qp_error("%s: enumeration domain `%s: no db root was given to read it from "
                        "(domains are read from the db root only)", fe->path, name);
    qp_value *d = qp__kdb_domain_in(fe->root, name);
    if (!d) return qp__kdb_nodomain(fe->root, fe->path, NULL, name);
    for (int i = 0; i < 4 && !qp_is_error(d); i++)
        if (!fe->cache[i]) {
            fe->cache[i] = qp_ref(d);
            snprintf(fe->names[i], sizeof fe->names[i], "%s", name);
            break;
        }
    return d;
}

static int file_companion(void *data, const char *suffix, qp_buf **out, char *err, size_t errlen)
{
    fileenv *fe = data;
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s%s", fe->path, suffix) >= (int)sizeof p)
        return qp__kerr(err, errlen, QP_EARG, "%s%s: path too long", fe->path, suffix);
    return qp__kdb_bytes(p, out, err, errlen);
}

qp_value *qp_kdb_load_file(const char *path, const char *root, unsigned flags)
{
    fileenv fe = {.path = path, .root = root};
    qp__kdb_env env = {file_domain, file_companion, &fe, flags};
    qp_value *x = qp__kdb_load(path, &env);
    for (int i = 0; i < 4; i++) qp_unref(fe.cache[i]);
    return x ? x : qp_error("%s: out of memory", path);
}
