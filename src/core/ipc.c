/* ipc.c - kdb+ IPC: message header and serialization byte-for-byte as q's
 * -8! (little-endian). Decoding lives in ipc_decode.c, compression in
 * compress.c, the incremental reader in reader.c.
 *
 * Large messages (capability 5/6, over 2 GB): the total length is 40 bits,
 * the low 32 in header bytes 4..7 and the high 8 in header byte 3 (q's
 * "reserved" byte, always 0 below 4 GB), which gives q's 1 TB limit.
 * Vector counts stay 32-bit on the wire: a vector of more than 2^31-1 items
 * is refused with QP_ETOOBIG (see ipc_decode.c for why).
 */
#include "qpeach/ipc.h"
#include "ipc_int.h"

#include <string.h>
#include <stdlib.h>
#include <sys/mman.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "the codec memcpy's vectors: it assumes a little-endian host");

/* Wire width of one item of types 0..19 (0: variable or not a vector). */
const uint8_t qp__wire_width[20] = {0, 1, 16, 0, 1, 2, 4, 8, 4, 8, 1, 0, 8, 4, 4, 8, 8, 4, 4, 4};

/* ------------------------------------------------------------------ */
/* Header                                                              */
/* ------------------------------------------------------------------ */

int qp_ipc_header_parse(const uint8_t hdr[QP_IPC_HEADER], qp_ipc_header *h)
{
    if (hdr[0] > 1 || hdr[1] > QP_MSG_RESPONSE || hdr[2] > 2) return QP_EPROTO;
    uint32_t lo;
    memcpy(&lo, hdr + 4, 4);
    if (!hdr[0]) lo = __builtin_bswap32(lo);
    h->little = hdr[0];
    h->msgtype = hdr[1];
    h->compressed = hdr[2];
    h->len = (uint64_t)lo | ((uint64_t)hdr[3] << 32);
    /* A compressed message carries at least the 4-byte uncompressed size. */
    if (h->len < QP_IPC_HEADER + (h->compressed ? 4u : 0u)) return QP_EPROTO;
    return 0;
}

void qp__ipc_header_write(uint8_t *dst, int msgtype, uint64_t len)
{
    uint32_t lo = (uint32_t)len;
    dst[0] = 1;
    dst[1] = (uint8_t)msgtype;
    dst[2] = 0;
    dst[3] = (uint8_t)(len >> 32);
    memcpy(dst + 4, &lo, 4);
}

void qp__advise_huge(void *p, size_t len)
{
    const uintptr_t huge = 2u << 20;
    if (len < 4 * huge) return;
    uintptr_t a = ((uintptr_t)p + huge - 1) & ~(huge - 1);
    uintptr_t b = ((uintptr_t)p + len) & ~(huge - 1);
    if (b > a) madvise((void *)a, b - a, MADV_HUGEPAGE);
}

/* ------------------------------------------------------------------ */
/* Size                                                                */
/* ------------------------------------------------------------------ */

static int64_t sym_size(const char *s) { return (int64_t)strlen(s ? s : "") + 1; }

int64_t qp_ipc_size(const qp_value *x)
{
    if (!x) return QP_ETYPE;
    int t = x->type;
    if (t == QP_ERROR) return 1 + sym_size(x->s);
    if (t < 0) {
        if (t < -19 || t == -3) return QP_ETYPE;
        return t == -QP_SYMBOL ? 1 + sym_size(x->s) : 1 + (int64_t)qp__wire_width[-t];
    }
    if (t == QP_ENUM) {     /* sent as the symbols it stands for, as q does */
        if (x->v.n > INT32_MAX) return QP_ETOOBIG;
        int64_t n = 6;
        for (int64_t i = 0; i < x->v.n; i++) n += sym_size(qp_enum_sym(x, i));
        return n;
    }
    if (t <= 19) {
        if (t == 3) return QP_ETYPE;
        if (x->v.n > INT32_MAX) return QP_ETOOBIG;
        int64_t n = 6;
        if (t == QP_LIST) {
            for (int64_t i = 0; i < x->v.n; i++) {
                int64_t k = qp_ipc_size(qp_K(x)[i]);
                if (k < 0) return k;
                n += k;
            }
        } else if (t == QP_SYMBOL) {
            for (int64_t i = 0; i < x->v.n; i++) n += sym_size(qp_S(x)[i]);
        } else {
            n += x->v.n * qp__wire_width[t];
        }
        return n;
    }
    if (t == QP_TABLE) {
        int64_t k = qp_ipc_size(qp_table_dict(x));
        return k < 0 ? k : 2 + k;
    }
    if (t == QP_DICT || t == QP_SORTED_DICT) {
        int64_t k = qp_ipc_size(qp_dict_keys(x)), v = qp_ipc_size(qp_dict_values(x));
        if (k < 0) return k;
        if (v < 0) return v;
        return 1 + k + v;
    }
    if (t >= QP_LAMBDA && t < QP_DYNLOAD) return 1 + x->v.n;
    return QP_ETYPE;
}

/* ------------------------------------------------------------------ */
/* Encoding                                                            */
/* ------------------------------------------------------------------ */

static uint8_t *put_sym(uint8_t *p, const char *s)
{
    size_t n = strlen(s ? s : "");
    memcpy(p, s ? s : "", n);
    p[n] = 0;
    return p + n + 1;
}

static uint8_t *put_i32(uint8_t *p, int32_t v)
{
    memcpy(p, &v, 4);
    return p + 4;
}

/* Writes x at p (room checked by qp_ipc_size); returns the end. */
static uint8_t *enc(const qp_value *x, uint8_t *p)
{
    int t = x->type;
    if (t == QP_ENUM) {
        *p++ = QP_SYMBOL;
        *p++ = x->attr;
        p = put_i32(p, (int32_t)x->v.n);
        for (int64_t i = 0; i < x->v.n; i++) p = put_sym(p, qp_enum_sym(x, i));
        return p;
    }
    *p++ = (uint8_t)x->type;
    if (t == QP_ERROR || t == -QP_SYMBOL) return put_sym(p, x->s);
    if (t < 0) {
        size_t w = qp__wire_width[-t];
        /* Every atom field starts at the union's first byte. */
        memcpy(p, &x->g, w);
        return p + w;
    }
    if (t <= 19) {
        *p++ = x->attr;
        p = put_i32(p, (int32_t)x->v.n);
        if (t == QP_LIST) {
            for (int64_t i = 0; i < x->v.n; i++) p = enc(qp_K(x)[i], p);
        } else if (t == QP_SYMBOL) {
            for (int64_t i = 0; i < x->v.n; i++) p = put_sym(p, qp_S(x)[i]);
        } else {
            size_t b = (size_t)x->v.n * qp__wire_width[t];
            if (b) memcpy(p, x->v.data, b);
            p += b;
        }
        return p;
    }
    if (t == QP_TABLE) {
        *p++ = x->attr;
        return enc(qp_table_dict(x), p);
    }
    if (t == QP_DICT || t == QP_SORTED_DICT) {
        p = enc(qp_dict_keys(x), p);
        return enc(qp_dict_values(x), p);
    }
    /* Functions: the opaque bytes after the type byte, as received. */
    if (x->v.n) memcpy(p, x->v.data, (size_t)x->v.n);
    return p + x->v.n;
}

size_t qp_ipc_encode_body(const qp_value *x, uint8_t *dst)
{
    return (size_t)(enc(x, dst) - dst);
}

int qp_ipc_encode(const qp_value *x, int msgtype, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (msgtype < 0 || msgtype > QP_MSG_RESPONSE) return QP_EARG;
    int64_t body = qp_ipc_size(x);
    if (body < 0) return (int)body;
    uint64_t total = QP_IPC_HEADER + (uint64_t)body;
    if (total >= QP_IPC_MAX_LEN) return QP_ETOOBIG;
    uint8_t *m = malloc(total);
    if (!m) return QP_ENOMEM;
    qp__advise_huge(m, total);
    qp__ipc_header_write(m, msgtype, total);
    qp_ipc_encode_body(x, m + QP_IPC_HEADER);
    *out = m;
    *len = total;
    return 0;
}
