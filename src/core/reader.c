/* reader.c - incremental message reader, hiredis style: feed bytes in any
 * chunking, take whole messages out (decompressed, header included).
 *
 * Each message gets its own buffer, allocated once its header and first
 * bytes are known, placed (qp_buf_new_skewed) so that the items of its
 * first numeric vector are 16-byte aligned: a top-level vector, or the
 * argument vector of a call like (`f; x) then decodes without a copy.
 * Large bodies can be read straight into that buffer (qp_reader_space).
 * Any error is sticky: the stream is out of step and cannot recover.
 */
#include "qpeach/ipc.h"
#include "ipc_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes staged before a message's buffer is allocated: the header plus
 * enough of the body to see where its first vector's items start. */
#define STAGE 256
/* Scratch for qp_reader_space when not reading into a body. */
#define SCRATCH 65536

typedef struct done {
    qp_buf *buf;               /* the whole message */
    qp_ipc_header h;           /* its header (as received) */
} done;

struct qp_reader {
    qp_ipc_limits lim;         /* limits, defaults filled in */
    int err;                   /* sticky error, 0 while all is well */
    char errstr[128];          /* its text */
    uint8_t stage[STAGE];      /* header and first body bytes */
    size_t staged;             /* bytes in stage */
    bool have_hdr;             /* h is parsed */
    qp_ipc_header h;           /* header of the message being read */
    qp_buf *cur;               /* its buffer, once allocated */
    size_t got;                /* bytes of it in cur */
    done *q;                   /* complete messages, oldest at qhead */
    size_t qhead, qlen, qcap;  /* ring of complete messages */
    uint8_t *scratch;          /* SCRATCH bytes for qp_reader_space */
    bool direct;               /* the last space was inside cur */
};

static int set_err(qp_reader *r, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int set_err(qp_reader *r, int code, const char *fmt, ...)
{
    r->err = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->errstr, sizeof r->errstr, fmt, ap);
    va_end(ap);
    return code;
}

qp_reader *qp_reader_new(const qp_ipc_limits *limits)
{
    qp_reader *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    if (limits) r->lim = *limits;
    if (!r->lim.max_msg || r->lim.max_msg > QP_IPC_MAX_LEN) r->lim.max_msg = QP_IPC_MAX_LEN;
    if (r->lim.max_depth <= 0) r->lim.max_depth = 128;
    return r;
}

void qp_reader_free(qp_reader *r)
{
    if (!r) return;
    for (size_t k = 0; k < r->qlen; k++) qp_buf_unref(r->q[(r->qhead + k) % r->qcap].buf);
    free(r->q);
    qp_buf_unref(r->cur);
    free(r->scratch);
    free(r);
}

const char *qp_reader_errstr(const qp_reader *r) { return r->err ? r->errstr : ""; }

static int push(qp_reader *r, qp_buf *b)
{
    if (r->qlen == r->qcap) {
        size_t cap = r->qcap ? r->qcap * 2 : 4;
        done *q = malloc(cap * sizeof *q);
        if (!q) { qp_buf_unref(b); return set_err(r, QP_ENOMEM, "out of memory"); }
        for (size_t k = 0; k < r->qlen; k++) q[k] = r->q[(r->qhead + k) % r->qcap];
        free(r->q);
        r->q = q;
        r->qcap = cap;
        r->qhead = 0;
    }
    r->q[(r->qhead + r->qlen++) % r->qcap] = (done){b, r->h};
    return 0;
}

static size_t skew_for(const uint8_t *msg, size_t have)
{
    size_t off = qp__ipc_data_offset(msg, have);
    return (16 - off % 16) % 16;
}

/* The current message is whole: decompress it if need be, queue it. */
static int finish(qp_reader *r)
{
    qp_buf *b = r->cur;
    r->cur = NULL;
    r->got = 0;
    r->have_hdr = false;
    if (r->h.compressed) {
        qp_buf *u = NULL;
        int rc = r->h.compressed == 1 ? qp_ipc_decompress(b->data, b->len, &r->lim, &u)
                                      : QP_ECORRUPT;
        qp_buf_unref(b);
        if (rc == QP_ETOOBIG)
            return set_err(r, rc, "compressed message expands beyond the limit of %llu bytes",
                           (unsigned long long)r->lim.max_msg);
        if (rc) return set_err(r, rc, "bad compressed message: %s", qp_strerror(rc));
        /* Place the expanded message as we would have placed it raw. */
        size_t skew = skew_for(u->data, u->len);
        if (((uintptr_t)u->data - skew) % 16) {
            qp_buf *v = qp_buf_new_skewed(u->len, skew);
            if (!v) { qp_buf_unref(u); return set_err(r, QP_ENOMEM, "out of memory"); }
            memcpy(v->data, u->data, u->len);
            qp_buf_unref(u);
            u = v;
        }
        b = u;
    }
    return push(r, b);
}

int qp_reader_feed(qp_reader *r, const void *bytes, size_t n)
{
    const uint8_t *p = bytes;
    while (!r->err) {
        if (r->cur) {
            if (n == 0) break;
            size_t take = r->cur->len - r->got;
            if (take > n) take = n;
            memcpy(r->cur->data + r->got, p, take);
            r->got += take;
            p += take;
            n -= take;
            if (r->got == r->cur->len && finish(r)) break;
            continue;
        }
        size_t want = r->have_hdr ? (r->h.len < STAGE ? (size_t)r->h.len : STAGE) : QP_IPC_HEADER;
        size_t take = want - r->staged;
        if (take > n) take = n;
        memcpy(r->stage + r->staged, p, take);
        r->staged += take;
        p += take;
        n -= take;
        if (r->staged < want) break;
        if (!r->have_hdr) {
            if (qp_ipc_header_parse(r->stage, &r->h))
                return set_err(r, QP_EPROTO, "bad message header %02x %02x %02x %02x", r->stage[0],
                               r->stage[1], r->stage[2], r->stage[3]);
            if (r->h.len > r->lim.max_msg)
                return set_err(r, QP_ETOOBIG, "message of %llu bytes exceeds the limit of %llu",
                               (unsigned long long)r->h.len, (unsigned long long)r->lim.max_msg);
            r->have_hdr = true;
            continue;
        }
        size_t skew = r->h.compressed ? 0 : skew_for(r->stage, r->staged);
        r->cur = qp_buf_new_skewed((size_t)r->h.len, skew);
        if (!r->cur) return set_err(r, QP_ENOMEM, "out of memory for a message of %llu bytes",
                                    (unsigned long long)r->h.len);
        qp__advise_huge(r->cur->data, r->cur->len);
        memcpy(r->cur->data, r->stage, r->staged);
        r->got = r->staged;
        r->staged = 0;
        if (r->got == r->cur->len && finish(r)) break;
    }
    return r->err;
}

void *qp_reader_space(qp_reader *r, size_t *room)
{
    r->direct = r->cur && !r->err;
    if (r->direct) {
        *room = r->cur->len - r->got;
        return r->cur->data + r->got;
    }
    if (!r->scratch && !(r->scratch = malloc(SCRATCH))) {
        *room = 0;
        return NULL;
    }
    *room = SCRATCH;
    return r->scratch;
}

int qp_reader_commit(qp_reader *r, size_t n)
{
    if (r->err) return r->err;
    if (!r->direct) return qp_reader_feed(r, r->scratch, n);
    if (!r->cur || n > r->cur->len - r->got)
        return set_err(r, QP_EARG, "commit of %zu bytes exceeds the space given", n);
    r->got += n;
    r->direct = false;
    if (r->got == r->cur->len) finish(r);
    return r->err;
}

int qp_reader_next(qp_reader *r, qp_buf **msg, qp_ipc_header *h)
{
    *msg = NULL;
    if (r->qlen) {
        done x = r->q[r->qhead];
        r->qhead = (r->qhead + 1) % r->qcap;
        r->qlen--;
        *msg = x.buf;
        if (h) *h = x.h;
        return 1;
    }
    return r->err;
}
