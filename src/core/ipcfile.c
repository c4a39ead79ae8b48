/* ipcfile.c - q values in files: the bytes of -8! (an IPC message with its
 * 8-byte header, possibly compressed) and of q's `set` for a flat value
 * (0xff 0x01, six zero bytes, then the IPC body). qp_table_load
 * (src/kdb/tableload.c) picks the CSV loader, a splayed folder or this.
 *
 * The file is read whole into one refcounted buffer so the decoder can
 * leave numeric vectors in place (zero-copy); the buffer lives as long as
 * any vector borrowing it. Not handled, with a clear error: q's compressed
 * files (-19!, "kxzipped"), and the 0xfe 0x20 layout q 3.x+ uses for
 * splayed columns (load a splayed table column by column in q instead).
 */
#include "qpeach/ipc.h"
#include "qpeach/table.h"
#include "fileio_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

qp_value *qp_ipcfile_load(const char *path)
{
    qp_buf *b;
    int rc = qp__file_read(path, &b);
    if (rc < 0) return qp_error("%s: %s", path, qp_strerror(rc));
    const uint8_t *d = b->data;
    size_t n = b->len;
    qp_value *x;
    if (n >= 8 && d[0] == 0xff && d[1] == 0x01) {
        x = qp_ipc_decode_body(b, 8, n - 8, false, NULL);
    } else if (n >= 8 && memcmp(d, "kxzipped", 8) == 0) {
        x = qp_error("%s: a compressed q file (-19!): not supported, save it uncompressed", path);
    } else if (n >= 2 && d[0] == 0xfe && d[1] == 0x20) {
        x = qp_error("%s: a q column file (0xfe20 layout): not supported", path);
    } else if (n >= QP_IPC_HEADER && d[0] <= 1 && d[1] <= 2 && d[2] <= 2) {
        qp_ipc_header h = {0};
        if (qp_ipc_header_parse(d, &h) < 0 || h.len != n)
            x = qp_error("%s: not a q IPC file: header length %llu, file has %zu bytes", path,
                         (unsigned long long)h.len, n);
        else
            x = qp_ipc_decode(b, NULL);
    } else {
        x = qp_error("%s: not a q IPC file (neither -8! bytes nor a `set` file)", path);
    }
    qp_buf_unref(b);
    if (x && x->type == QP_ERROR && strncmp(x->s, path, strlen(path)) != 0) {
        qp_value *e = qp_error("%s: %s", path, x->s);   /* name the file */
        qp_unref(x);
        x = e;
    }
    return x;
}

int qp_ipcfile_write(const qp_value *x, const char *path)
{
    uint8_t *bytes = NULL;
    size_t len = 0;
    int rc = qp_ipc_encode(x, QP_MSG_ASYNC, &bytes, &len);   /* -8! uses 0 */
    if (rc < 0) return rc;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) { rc = -errno; goto done; }
    rc = qp__write_all(fd, bytes, len);
    if (close(fd) < 0 && rc == 0) rc = -errno;
    if (rc < 0) unlink(path);
done:
    free(bytes);
    return rc;
}
