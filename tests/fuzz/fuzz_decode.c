/* fuzz_decode.c - libFuzzer target: the decoder and the reader on any bytes.
 *
 * Invariants checked (abort on violation, so libFuzzer reports them):
 *   - decoding never crashes and gives a value or an error value;
 *   - a little-endian, uncompressed message that decodes re-encodes to
 *     exactly its own body bytes;
 *   - the reader, fed the same bytes in two pieces, yields the same
 *     message bytes as the whole input's first message.
 */
#include "qpeach/ipc.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const qp_ipc_limits lim = {.max_msg = 1 << 20, .max_depth = 64};
    qp_buf *b = qp_buf_new(size);
    if (!b) return 0;
    if (size) memcpy(b->data, data, size);
    qp_value *x = NULL;
    int rc = qp_ipc_decode_msg(b, &lim, &x);
    if (!x && rc != QP_ENOMEM) abort();
    qp_ipc_header h;
    if (rc == 0 && size >= 8 && qp_ipc_header_parse(data, &h) == 0 && h.little && !h.compressed) {
        int64_t n = qp_ipc_size(x);
        if (n != (int64_t)h.len - 8) abort();
        uint8_t *body = malloc((size_t)n);
        if (body) {
            if (qp_ipc_encode_body(x, body) != (size_t)n) abort();
            if (memcmp(body, data + 8, (size_t)n)) abort();
            free(body);
        }
    }
    qp_unref(x);
    qp_buf_unref(b);

    qp_reader *r = qp_reader_new(&lim);
    if (!r) return 0;
    size_t cut = size ? data[0] % (size + 1) : 0;
    if (qp_reader_feed(r, data, cut) == 0) qp_reader_feed(r, data + cut, size - cut);
    qp_buf *m;
    while (qp_reader_next(r, &m, NULL) == 1) {
        qp_value *y = qp_ipc_decode(m, &lim);
        qp_unref(y);
        qp_buf_unref(m);
    }
    qp_reader_free(r);
    return 0;
}
