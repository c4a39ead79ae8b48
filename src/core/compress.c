/* compress.c - kdb+ IPC compression, the scheme of kx's c.java (compress /
 * uncompress), so that q reads what we write and we read what q writes.
 *
 * Format: the 8-byte header (flag byte 2 set to 1, length = compressed
 * length), the uncompressed total length (4 bytes, message byte order),
 * then groups of up to 8 tokens, each group led by a flag byte whose bit k
 * says whether token k is a literal byte (0) or a back-reference (1). A
 * back-reference is two bytes: h, an index into a 256-entry table of
 * earlier positions keyed by the XOR of the two bytes there, and n: copy
 * 2 + n bytes from that position. Both sides keep the table identically:
 * every literal position and every reference start is recorded (positions
 * inside a copied run are not), each one step late, so a position is never
 * its own match.
 *
 * Decompression trusts nothing: every input read, every output write and
 * every back-reference is checked; bad data gives QP_ECORRUPT.
 */
#include "qpeach/ipc.h"
#include "ipc_int.h"

#include <stdlib.h>
#include <string.h>

bool qp_ipc_should_compress(size_t len, bool local_peer)
{
    return len > QP_IPC_COMPRESS_MIN && !local_peer;
}

static uint32_t rd32(const uint8_t *p, bool little)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return little ? v : __builtin_bswap32(v);
}

static void wr32(uint8_t *p, uint32_t v, bool little)
{
    if (!little) v = __builtin_bswap32(v);
    memcpy(p, &v, 4);
}

int qp_ipc_compress(const uint8_t *y, size_t t, uint8_t **out, size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    /* The sizes are 32-bit fields: larger messages go uncompressed. */
    if (t < QP_IPC_HEADER + 4 || t > INT32_MAX) return QP_ENOGAIN;
    size_t e = t / 2; /* the result must fit in half, as q requires */
    uint8_t *b = malloc(e);
    if (!b) return QP_ENOMEM;
    bool little = y[0] == 1;
    uint32_t a[256] = {0};    /* last position seen for each XOR key */
    size_t s = 8, d = 12, c = 12, s0 = 0;
    unsigned i = 0, f = 0, h = 0, h0 = 0;
    for (; s < t; i = (i * 2) & 0xff) {
        if (i == 0) {
            /* A group is at most 17 bytes: stop when it might not fit. */
            if (d + 17 > e) {
                free(b);
                return QP_ENOGAIN;
            }
            i = 1;
            b[c] = (uint8_t)f;
            c = d++;
            f = 0;
        }
        size_t p = 0;
        bool lit = s + 3 > t;
        if (!lit) {
            h = y[s] ^ y[s + 1];
            p = a[h];
            lit = p == 0 || y[s] != y[p];
        }
        if (s0) {
            a[h0] = (uint32_t)s0;
            s0 = 0;
        }
        if (lit) {
            h0 = h;
            s0 = s;
            b[d++] = y[s++];
        } else {
            a[h] = (uint32_t)s;
            f |= i;
            p += 2;
            s += 2;
            size_t r = s, q = s + 255 < t ? s + 255 : t;
            while (s < q && y[p] == y[s]) {
                s++;
                p++;
            }
            b[d++] = (uint8_t)h;
            b[d++] = (uint8_t)(s - r);
        }
    }
    b[c] = (uint8_t)f;
    memcpy(b, y, 4);
    b[2] = 1;
    b[3] = 0;
    wr32(b + 4, (uint32_t)d, little);
    wr32(b + 8, (uint32_t)t, little);
    uint8_t *shrunk = realloc(b, d);
    *out = shrunk ? shrunk : b;
    *outlen = d;
    return 0;
}

int qp_ipc_decompress(const uint8_t *src, size_t len, const qp_ipc_limits *limits,
                      qp_buf **out)
{
    *out = NULL;
    qp_ipc_header h;
    if (len < QP_IPC_HEADER + 4 || qp_ipc_header_parse(src, &h) || h.compressed != 1)
        return QP_ECORRUPT;
    if (h.len < len) len = (size_t)h.len; /* ignore whatever follows */
    if (h.len > len) return QP_ECORRUPT;
    bool little = h.little;
    size_t ulen = rd32(src + 8, little);
    uint64_t max = limits && limits->max_msg ? limits->max_msg : QP_IPC_MAX_LEN;
    if (ulen < QP_IPC_HEADER) return QP_ECORRUPT;
    if (ulen > max) return QP_ETOOBIG;
    /* Each 2 stream bytes yield at most 257 (a back-reference), so a stated
     * length beyond that is corrupt: refuse it before allocating it. */
    if ((uint64_t)(ulen - 8) > (uint64_t)(len - 12) * 129) return QP_ECORRUPT;
    qp_buf *buf = qp_buf_new(ulen);
    if (!buf) return QP_ENOMEM;
    qp__advise_huge(buf->data, ulen);
    uint8_t *dst = buf->data;
    memcpy(dst, src, 4);
    dst[2] = 0;
    dst[3] = 0;
    wr32(dst + 4, (uint32_t)ulen, little);

    uint32_t a[256] = {0};
    size_t s = 8, p = 8, d = 12;
    unsigned i = 0, f = 0;
    while (s < ulen) {
        if (i == 0) {
            if (d >= len) goto corrupt;
            f = src[d++];
            i = 1;
        }
        if (f & i) {
            if (d + 2 > len) goto corrupt;
            size_t r = a[src[d++]];
            size_t n = (size_t)src[d++] + 2;
            /* 0 is "no position yet"; r <= s-2 by construction. */
            if (r == 0 || n > ulen - s) goto corrupt;
            if (s - r >= n) {
                memcpy(dst + s, dst + r, n);
            } else {
                for (size_t k = 0; k < n; k++) dst[s + k] = dst[r + k];
            }
            for (; p < s + 1; p++) a[dst[p] ^ dst[p + 1]] = (uint32_t)p;
            s += n;
            p = s;
        } else {
            if (d >= len) goto corrupt;
            dst[s++] = src[d++];
            for (; p + 1 < s; p++) a[dst[p] ^ dst[p + 1]] = (uint32_t)p;
        }
        i = (i * 2) & 0xff;
    }
    *out = buf;
    return 0;
corrupt:
    qp_buf_unref(buf);
    return QP_ECORRUPT;
}
