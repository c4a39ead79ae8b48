/* fuzz_kdbfile.c - libFuzzer target: the kdb+ file decoder (kdbfile.c,
 * kdbnest.c, kdbzip.c) through qp__kdb_decode, the entry point the file
 * loader uses too.
 *
 * Input: a little-endian uint32 L (its top bit asks for QP_KDB_ENUMS),
 * then L bytes of a column file (any kind, kxzipped too), then the rest as
 * its companion name# file. Enumerations resolve against a fixed domain of
 * five names. Invariants (abort on violation): the decoder returns a value
 * or an error value, never NULL on small inputs, never a crash or an
 * out-of-bounds read (ASan); a value that is a table or list-like has
 * every item inside its buffer, which encoding it to IPC touches.
 */
#include "kdb/kdb_int.h"
#include "qpeach/ipc.h"

#include <stdlib.h>
#include <string.h>

typedef struct fz {
    qp_value *dom;
    const uint8_t *comp;
    size_t ncomp;
} fz;

static qp_value *fz_domain(void *data, const char *name)
{
    (void)name;
    return qp_ref(((fz *)data)->dom);
}

static int fz_companion(void *data, const char *suffix, qp_buf **out, char *err, size_t errlen)
{
    (void)suffix;
    (void)err;
    (void)errlen;
    fz *f = data;
    *out = qp_buf_new(f->ncomp);
    if (!*out) return QP_ENOMEM;
    if (f->ncomp) memcpy((*out)->data, f->comp, f->ncomp);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static qp_value *dom;
    if (!dom) {
        static const char *const names[] = {"a", "bb", "", "ccc", "d"};
        dom = qp_vector(QP_SYMBOL, 5);
        for (int i = 0; i < 5; i++) qp_S(dom)[i] = qp_sym_intern(names[i], strlen(names[i]));
    }
    if (size < 4) return 0;
    uint32_t l;
    memcpy(&l, data, 4);
    unsigned flags = l >> 31 ? QP_KDB_ENUMS : 0;
    l &= 0x7fffffff;
    data += 4;
    size -= 4;
    if (l > size) l = (uint32_t)size;
    fz f = {dom, data + l, size - l};
    qp__kdb_env env = {fz_domain, fz_companion, &f, flags};
    qp_buf *b = qp_buf_new(l);
    if (!b) return 0;
    if (l) memcpy(b->data, data, l);
    qp_value *x = qp__kdb_decode(b, "fuzz", &env);
    qp_buf_unref(b);                  /* values keep what they view */
    if (!x) abort();
    if (!qp_is_error(x)) {
        uint8_t *m = NULL;
        size_t n = 0;
        if (qp_ipc_size(x) >= 0 && qp_ipc_size(x) < (1 << 26) &&
            qp_ipc_encode(x, QP_MSG_ASYNC, &m, &n) == 0)
            free(m);
    }
    qp_unref(x);
    return 0;
}
