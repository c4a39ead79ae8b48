/* fuzz_decompress.c - libFuzzer target: kdb+ IPC decompression.
 *
 * The input is a compressed message from byte 8 on (the uncompressed
 * length, then the stream), as q sends it; the header is made here so the
 * fuzzer spends its time in the stream. Invariants (abort on violation):
 *   - decompression gives a message of the stated length or QP_ECORRUPT /
 *     QP_ETOOBIG, never a crash or an out-of-bounds access;
 *   - compressing the input taken as a message and decompressing the
 *     result gives the input back.
 */
#include "qpeach/ipc.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const qp_ipc_limits lim = {.max_msg = 1 << 22};
    size_t n = 8 + size;
    uint8_t *m = malloc(n);
    if (!m) return 0;
    m[0] = 1; m[1] = 2; m[2] = 1; m[3] = 0;
    uint32_t len = (uint32_t)n;
    memcpy(m + 4, &len, 4);
    if (size) memcpy(m + 8, data, size);
    qp_buf *u = NULL;
    int rc = qp_ipc_decompress(m, n, &lim, &u);
    if (rc == 0) {
        uint32_t ulen;
        if (size < 4) abort();
        memcpy(&ulen, data, 4);
        if (!u || u->len != ulen || u->data[2] != 0) abort();
    } else if (rc != QP_ECORRUPT && rc != QP_ETOOBIG && rc != QP_ENOMEM) {
        abort();
    }
    qp_buf_unref(u);

    /* The same bytes as an uncompressed message, compressed and back. */
    m[2] = 0;
    uint8_t *c;
    size_t cn;
    rc = qp_ipc_compress(m, n, &c, &cn);
    if (rc == 0) {
        if (cn > n / 2) abort();
        u = NULL;
        if (qp_ipc_decompress(c, cn, NULL, &u)) abort();
        if (u->len != n || memcmp(u->data + 8, m + 8, n - 8)) abort();
        qp_buf_unref(u);
        free(c);
    } else if (rc != QP_ENOGAIN && rc != QP_ENOMEM) {
        abort();
    }
    free(m);
    return 0;
}
