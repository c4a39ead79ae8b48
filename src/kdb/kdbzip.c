/* kdbzip.c - q's compressed files ("kxzipped", written by -19! or
 * .z.zd): a file cut into blocks of B bytes, each compressed on its own,
 * and a trailer giving every block's compressed length.
 *
 *   0      "kxzipped"
 *   8      the blocks, end to end
 *   T      int32 version, uint8 algorithm, uint8 level, 2 zero bytes,
 *          int64 U (uncompressed length), int64 T, int64 B (block size)
 *   T+32   k entries: int32 compressed length, int32 algorithm
 *   end-8  int64 k
 *
 * Algorithms: 0 stored, 1 q IPC compression (each block an IPC-compressed
 * message, decompressed by compress.c), 2 zlib (each block a zlib stream).
 * 3 snappy, 4 lz4hc, 5 zstd are refused by number ("not supported"): no
 * public file exercises them, so their block format is unverified.
 * "kxzippEd" (encrypted, q 4.0+) is refused by name.
 *
 * Memory rules: the result is one new malloc'd buffer of U bytes (numeric
 * columns then view it, as they view a mapping). Before anything is
 * allocated or read, the trailer is checked the way every real file
 * satisfies it: k = ceil(U/B), 8 + sum of lengths = T, file length =
 * T + 32 + 8k + 8, B a power of two in 2^12..2^20; so U <= 2^20 * len / 8
 * and a short lying file cannot ask for a huge buffer. Each block must
 * decompress to exactly its share of U.
 */
#include "kdb_int.h"
#include "qpeach/ipc.h"

#include <stdio.h>
#include <string.h>
#include <zlib.h>

bool qp__kdb_zipped(const uint8_t *p, size_t len)
{
    return len >= 8 && (memcmp(p, "kxzipped", 8) == 0 || memcmp(p, "kxzippEd", 8) == 0);
}

static int32_t rd32(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

typedef struct ztrailer {
    int alg;
    uint64_t ulen, blk, k, tpos;
} ztrailer;

/* Checks the trailer and block table of a kxzipped file of len bytes. */
static int trailer(const uint8_t *p, size_t len, ztrailer *z, char *err, size_t errlen)
{
    if (len < 8 + 32 + 8) {
        snprintf(err, errlen, "compressed file of %zu bytes is too short for its trailer", len);
        return QP_ETRUNC;
    }
    int64_t k = qp__krd64(p + len - 8);
    if (k < 0 || (uint64_t)k > (len - 48) / 8) {
        snprintf(err, errlen, "compressed file: block count %lld does not fit in %zu bytes",
                 (long long)k, len);
        return QP_ECORRUPT;
    }
    size_t t = len - 8 - 8 * (size_t)k - 32;
    const uint8_t *tr = p + t;
    int64_t u = qp__krd64(tr + 8), tp = qp__krd64(tr + 16), b = qp__krd64(tr + 24);
    z->alg = tr[4];
    z->k = (uint64_t)k;
    z->tpos = t;
    if (tp != (int64_t)t || b < 4096 || b > (1 << 20) || (b & (b - 1)) || u < 0) {
        snprintf(err, errlen, "compressed file: bad trailer (trailer at %lld, file says %lld; "
                 "block size %lld; length %lld)", (long long)t, (long long)tp, (long long)b,
                 (long long)u);
        return QP_ECORRUPT;
    }
    z->ulen = (uint64_t)u;
    z->blk = (uint64_t)b;
    if ((z->ulen + z->blk - 1) / z->blk != z->k) {
        snprintf(err, errlen, "compressed file: %llu blocks for %llu bytes in blocks of %llu",
                 (unsigned long long)z->k, (unsigned long long)z->ulen,
                 (unsigned long long)z->blk);
        return QP_ECORRUPT;
    }
    uint64_t sum = 8;
    for (uint64_t j = 0; j < z->k; j++) {
        int32_t c = rd32(tr + 32 + 8 * j);
        if (c < 0) sum = UINT64_MAX;
        else sum += (uint64_t)c;
        if (sum > t) break;
    }
    if (sum != t) {
        snprintf(err, errlen, "compressed file: block lengths do not add up to the trailer "
                 "offset %zu", t);
        return QP_ECORRUPT;
    }
    return 0;
}

/* Decompresses block src (clen bytes, algorithm alg) into exactly want
 * bytes at dst. */
static int block(int alg, const uint8_t *src, size_t clen, uint8_t *dst, size_t want,
                 char *err, size_t errlen)
{
    if (alg == 0) {
        if (clen != want) goto bad;
        memcpy(dst, src, want);
        return 0;
    }
    if (alg == 1) {
        qp_buf *m = NULL;
        int rc = qp_ipc_decompress(src, clen, NULL, &m);
        if (rc < 0 || m->len != want + 8) { qp_buf_unref(m); goto bad; }
        memcpy(dst, m->data + 8, want);
        qp_buf_unref(m);
        return 0;
    }
    if (alg == 2) {
        uLongf got = (uLongf)want;
        uLong used = (uLong)clen;
        if (uncompress2(dst, &got, src, &used) != Z_OK || got != want) goto bad;
        return 0;
    }
    snprintf(err, errlen, "compression algorithm %d not supported%s", alg,
             alg >= 3 && alg <= 5 ? " (3 snappy, 4 lz4hc, 5 zstd: save with 0, 1 or 2)" : "");
    return QP_ETYPE;
bad:
    snprintf(err, errlen, "corrupt compressed block (algorithm %d, %zu bytes, %zu expected out)",
             alg, clen, want);
    return QP_ECORRUPT;
}

int qp__kdb_unzip(const uint8_t *p, size_t len, size_t upto, qp_buf **out, char *err,
                  size_t errlen)
{
    *out = NULL;
    if (len >= 8 && memcmp(p, "kxzippEd", 8) == 0) {
        snprintf(err, errlen, "encrypted file (kxzippEd): not supported");
        return QP_ETYPE;
    }
    ztrailer z;
    int rc = trailer(p, len, &z, err, errlen);
    if (rc < 0) return rc;
    qp_buf *b = qp_buf_new((size_t)z.ulen);
    if (!b) {
        snprintf(err, errlen, "out of memory for %llu uncompressed bytes",
                 (unsigned long long)z.ulen);
        return QP_ENOMEM;
    }
    const uint8_t *tab = p + z.tpos + 32;
    size_t src = 8;
    for (uint64_t j = 0; j < z.k && j * z.blk < upto; j++) {
        size_t clen = (size_t)rd32(tab + 8 * j);
        int alg = rd32(tab + 8 * j + 4);
        size_t at = (size_t)(j * z.blk);
        size_t want = z.ulen - at < z.blk ? (size_t)(z.ulen - at) : (size_t)z.blk;
        rc = block(alg, p + src, clen, b->data + at, want, err, errlen);
        if (rc < 0) {
            size_t m = strlen(err);
            snprintf(err + m, errlen - m, " in block %llu", (unsigned long long)j);
            qp_buf_unref(b);
            return rc;
        }
        src += clen;
    }
    *out = b;
    return 0;
}
