/* conn.c - the client side of kdb+ IPC: connect, handshake, send, receive.
 *
 * Every wait is bounded by the connect or call deadline, so a dead peer
 * costs at most the timeout: a plain socket, made blocking once connected,
 * waits for an answer inside recv() (qp__tp_block says why) with
 * SO_RCVTIMEO, and every other read and write on it never blocks; a TLS
 * session, non-blocking, waits in poll(). A
 * transport failure or a timeout in the middle of a message leaves the
 * stream at an unknown offset: the connection is then marked broken and
 * every later call fails fast with the first error.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qpeach/conn.h"
#include "qpeach/ipc.h"
#include "net_int.h"

struct qp_conn {
    qp__tp tp;             /* socket or TLS session */
    SSL_CTX *ctx;          /* TLS context, NULL for plain */
    qp_reader *rd;         /* incoming byte stream -> messages */
    qp_buf *ahead;         /* a whole message taken from rd, not yet
                            * returned: lets qp_conn_pending (const) see
                            * what poll() on the fd cannot */
    qp_ipc_header ahead_h; /* its header */
    int cap;               /* capability byte the server answered */
    int timeout_ms;        /* per-call timeout, 0: none */
    int broken;            /* 0, or the error that made the stream unusable */
    int code;              /* code of the last failure (QP_E* or -errno), 0: none */
    char err[256];         /* text of the last failure */
};

static int fail(qp_conn *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(qp_conn *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    c->code = code;
    return code;
}

/* The stream is now unusable: every later send and receive fails fast
 * with code, and the text of the failure stays as it was. */
static int breaks(qp_conn *c, int code)
{
    c->broken = code;
    c->code = code;
    return code;
}

static int64_t deadline_of(int timeout_ms)
{
    return timeout_ms > 0 ? qp__now_ms() + timeout_ms : -1;
}

/* Writes all n bytes before the deadline. */
static int send_all(qp_conn *c, const uint8_t *p, size_t n, int64_t deadline)
{
    while (n) {
        ssize_t w = qp__tp_write(&c->tp, p, n);
        if (w > 0) { p += w; n -= (size_t)w; continue; }
        if (w == QP__WANT_READ || w == QP__WANT_WRITE) {
            int r = qp__wait_fd(c->tp.fd, (int)w, deadline);
            if (r < 0) return fail(c, r, "send: %s", qp_strerror(r));
            continue;
        }
        return fail(c, w == QP_ETLS ? QP_ETLS : QP_ECLOSED, "send: %s",
                    w == 0 ? "connection closed" : qp_strerror((int)w));
    }
    return 0;
}

int qp_conn_open(const char *addr, const qp_conn_opts *opts, qp_conn **out,
                 char *err, size_t errlen)
{
    static const qp_conn_opts defaults;
    if (!opts) opts = &defaults;
    *out = NULL;
    char dummy[8];
    if (!err) { err = dummy; errlen = sizeof dummy; }
    err[0] = 0;
    qp__addr a;
    if (qp__addr_parse(addr, false, &a)) {
        snprintf(err, errlen, "bad address: %s (host:port, :port, unix:/path, unix://PORT or @/path)",
                 addr ? addr : "(null)");
        return QP_EADDR;
    }
    qp_conn *c = calloc(1, sizeof *c);
    if (!c) { snprintf(err, errlen, "out of memory"); return QP_ENOMEM; }
    c->tp.fd = -1;
    c->timeout_ms = opts->timeout_ms;
    int rc;
    int64_t deadline = deadline_of(opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : 10000);
    int fd = qp__connect(&a, (int)(deadline - qp__now_ms()), c->err, sizeof c->err);
    if (fd < 0) { rc = fd; goto fail; }
    if (opts->tls) {
        if (a.kind != QP__ADDR_TCP) {
            qp__tp_plain(&c->tp, fd);
            rc = fail(c, QP_EARG, "TLS needs a TCP address");
            goto fail;
        }
        c->ctx = qp__tls_client_ctx(opts->tls_ca, opts->tls_no_verify, c->err, sizeof c->err);
        if (!c->ctx) { qp__tp_plain(&c->tp, fd); rc = QP_ETLS; goto fail; }
        if ((rc = qp__tp_tls(&c->tp, fd, c->ctx, false, opts->tls_no_verify ? NULL : a.host))) {
            fail(c, rc, "TLS setup failed");
            goto fail;
        }
        for (;;) {
            rc = qp__tp_handshake(&c->tp, c->err, sizeof c->err);
            if (rc == 0) break;
            if (rc != QP__WANT_READ && rc != QP__WANT_WRITE) goto fail;
            int w = qp__wait_fd(c->tp.fd, rc, deadline);
            if (w < 0) { rc = fail(c, w, "TLS handshake: %s", qp_strerror(w)); goto fail; }
        }
    } else {
        qp__tp_plain(&c->tp, fd);
        if ((rc = qp__tp_block(&c->tp))) { fail(c, rc, "socket: %s", qp_strerror(rc)); goto fail; }
    }

    /* Handshake: "user:password", the capability byte, NUL; the server
     * answers one byte, or closes the socket when it refuses us. */
    const char *u = opts->user ? opts->user : "", *p = opts->password ? opts->password : "";
    size_t ul = strlen(u), pl = strlen(p);
    if (ul + pl > 4096) { rc = fail(c, QP_EARG, "user:password too long"); goto fail; }
    uint8_t hs[4100];
    size_t n = 0;
    memcpy(hs, u, ul); n += ul;
    if (pl) { hs[n++] = ':'; memcpy(hs + n, p, pl); n += pl; }
    hs[n++] = opts->no_large ? 3 : 6;
    hs[n++] = 0;
    if ((rc = send_all(c, hs, n, deadline))) goto fail;
    uint8_t ans;
    ssize_t r = qp__tp_read_wait(&c->tp, &ans, 1, deadline);
    if (r == 0 || r == -ECONNRESET) {    /* q closes on a bad login; so does a TLS port */
        rc = fail(c, QP_EAUTH, opts->tls ? "access denied"
                  : "access denied (wrong user or password, or the server wants TLS: --tls)");
        goto fail;
    }
    if (r < 0) { rc = fail(c, (int)r, "handshake: %s", qp_strerror((int)r)); goto fail; }
    c->cap = ans;
    c->rd = qp_reader_new(NULL);
    if (!c->rd) { rc = fail(c, QP_ENOMEM, "out of memory"); goto fail; }
    *out = c;
    return 0;
fail:
    snprintf(err, errlen, "%s", c->err[0] ? c->err : qp_strerror(rc));
    qp_conn_close(c);
    return rc;
}

void qp_conn_close(qp_conn *c)
{
    if (!c) return;
    qp__tp_close(&c->tp);
    if (c->ctx) SSL_CTX_free(c->ctx);
    qp_reader_free(c->rd);
    qp_buf_unref(c->ahead);
    free(c);
}

int qp_conn_send(qp_conn *c, const qp_value *x, int msgtype)
{
    if (c->broken) return breaks(c, c->broken);
    uint8_t *msg = NULL, *z = NULL;
    size_t len = 0, zlen = 0;
    int rc = qp_ipc_encode(x, msgtype, &msg, &len);
    if (rc) return fail(c, rc, "encode: %s", qp_strerror(rc));
    const uint8_t *wire = msg;
    size_t wlen = len;
    /* q's rule: large messages to other machines go compressed when that
     * at least halves them (qp_ipc_compress answers QP_ENOGAIN if not). */
    if (qp_ipc_should_compress(len, c->tp.local) && qp_ipc_compress(msg, len, &z, &zlen) == 0) {
        wire = z;
        wlen = zlen;
    }
    rc = send_all(c, wire, wlen, deadline_of(c->timeout_ms));
    free(msg);
    free(z);
    /* A partial write leaves the peer mid-message: nothing can follow. */
    return rc ? breaks(c, rc) : 0;
}

/* The next whole message from what is buffered: 1 and *m, 0 when more
 * bytes are needed, or the reader's sticky error. */
static int take(qp_conn *c, qp_buf **m, qp_ipc_header *h)
{
    if (c->ahead) {
        *m = c->ahead;
        *h = c->ahead_h;
        c->ahead = NULL;
        return 1;
    }
    int rc = qp_reader_next(c->rd, m, h);
    if (rc < 0) fail(c, rc, "receive: %s", qp_reader_errstr(c->rd));
    return rc;
}

/* Keeps the invariant qp_conn_pending relies on: when the reader holds a
 * whole message on return to the caller, one sits in c->ahead. */
static void look_ahead(qp_conn *c)
{
    if (c->ahead) return;
    int rc = qp_reader_next(c->rd, &c->ahead, &c->ahead_h);
    if (rc != 1) c->ahead = NULL;
    /* A stream out of step stays so: the next receive reports it. */
    if (rc < 0) c->broken = fail(c, rc, "receive: %s", qp_reader_errstr(c->rd));
}

/* Receives one raw message before the deadline. nowait: never block; a
 * read that would block answers -EAGAIN with the stream intact. */
static int recv_msg(qp_conn *c, qp_buf **m, qp_ipc_header *h, int64_t deadline, bool nowait)
{
    *m = NULL;
    if (c->broken) return breaks(c, c->broken);
    int rc;
    bool first = !nowait;
    for (;;) {
        rc = take(c, m, h);
        if (rc == 1) { look_ahead(c); return 0; }
        if (rc < 0) break;
        size_t room = 0;
        void *sp = qp_reader_space(c->rd, &room);
        if (!sp) { rc = fail(c, QP_ENOMEM, "out of memory"); break; }
        if (first && !c->tp.blocking && !qp__tp_pending(&c->tp)) {
            /* Right after a request the answer is a round trip away: wait
             * first rather than try a read that would only say EAGAIN
             * (one syscall less on the latency path; a blocking socket
             * waits in the read itself). */
            int w = qp__wait_fd(c->tp.fd, QP__WANT_READ, deadline);
            if (w < 0) { rc = fail(c, w, "receive: %s", qp_strerror(w)); break; }
        }
        first = false;
        ssize_t r = nowait ? qp__tp_read(&c->tp, sp, room) : qp__tp_read_wait(&c->tp, sp, room, deadline);
        if (r > 0) {
            if ((rc = qp_reader_commit(c->rd, (size_t)r)) < 0) {
                fail(c, rc, "receive: %s", qp_reader_errstr(c->rd));
                break;
            }
            continue;
        }
        if (nowait && (r == QP__WANT_READ || r == QP__WANT_WRITE)) return -EAGAIN;
        if (r == 0) { rc = fail(c, QP_ECLOSED, "connection closed by the server"); break; }
        rc = fail(c, (int)r, "receive: %s", qp_strerror((int)r));
        break;
    }
    /* A timeout mid-message, or before the answer, leaves a reply on its
     * way that the next receive would take for its own: broken too. */
    return breaks(c, rc);
}

int qp_conn_recv(qp_conn *c, qp_value **out, int *msgtype, int timeout_ms)
{
    *out = NULL;
    qp_buf *m;
    qp_ipc_header h;
    int rc = recv_msg(c, &m, &h, deadline_of(timeout_ms < 0 ? c->timeout_ms : timeout_ms), false);
    if (rc) return rc;
    qp_value *v = qp_ipc_decode(m, NULL);
    qp_buf_unref(m);
    if (!v) return c->broken = fail(c, QP_ENOMEM, "out of memory");
    *out = v;
    if (msgtype) *msgtype = h.msgtype;
    return 0;
}

int qp_conn_recv_nowait(qp_conn *c, qp_buf **msg, qp_ipc_header *h)
{
    return recv_msg(c, msg, h, -1, true);
}

bool qp_conn_pending(const qp_conn *c)
{
    /* A broken stream counts: the next receive reports why at once. */
    return c->ahead || c->broken || qp__tp_pending(&c->tp) > 0;
}

qp_value *qp_conn_call(qp_conn *c, const qp_value *x)
{
    if (qp_conn_send(c, x, QP_MSG_SYNC)) return NULL;
    for (;;) {
        qp_value *v = NULL;
        int t = QP_MSG_RESPONSE;
        if (qp_conn_recv(c, &v, &t, -1)) return NULL;
        if (t == QP_MSG_RESPONSE) return v;
        qp_unref(v);
        /* The server may send us async messages; a sync request from it
         * would wait forever for us, so answer it with an error. */
        if (t == QP_MSG_SYNC) {
            qp_value *e = qp_error("qpeach client: requests not served");
            int rc = e ? qp_conn_send(c, e, QP_MSG_RESPONSE)
                       : breaks(c, fail(c, QP_ENOMEM, "out of memory"));
            qp_unref(e);
            if (rc) return NULL;
        }
    }
}

int qp_conn_fd(const qp_conn *c) { return c->tp.fd; }
int qp_conn_capability(const qp_conn *c) { return c->cap; }
const char *qp_conn_errstr(const qp_conn *c) { return c->err; }
int qp_conn_err(const qp_conn *c) { return c->code; }
bool qp_conn_broken(const qp_conn *c) { return c->broken != 0; }
bool qp_conn_is_local(const qp_conn *c) { return c->tp.local; }
