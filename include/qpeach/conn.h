/* qpeach/conn.h - a client connection to a kdb+ process (q, or qpeach serve).
 *
 * Addresses: "host:port", ":port" (localhost), "unix:/path/to/socket",
 * "unix://PORT" (q's convention: the socket /tmp/kx.PORT, abstract on Linux
 * as q does), "@/path" (explicit path, as q's -p @/tmp/kx.5050).
 *
 * Memory rules: see value.h. A qp_conn is used by one thread at a time.
 * Values passed in are borrowed; values returned are new references.
 */
#ifndef QPEACH_CONN_H
#define QPEACH_CONN_H

#include "qpeach/ipc.h"
#include "qpeach/value.h"

typedef struct qp_conn qp_conn;

typedef struct qp_conn_opts {
    const char *user;          /* NULL or "": anonymous */
    const char *password;      /* NULL or "" */
    int connect_timeout_ms;    /* 0: 10 s */
    int timeout_ms;            /* per call; 0: none */
    bool tls;                  /* TLS over TCP */
    const char *tls_ca;        /* CA file to verify the server; NULL: system */
    bool tls_no_verify;        /* skip certificate verification (tests) */
    bool no_large;             /* ask for capability 3 instead of 6 */
} qp_conn_opts;

/* Connects and does the handshake. Returns 0 and *out, or a negative code
 * with a message in err (QP_EAUTH when the server closes on the handshake,
 * as q does for bad credentials). opts may be NULL. */
int qp_conn_open(const char *addr, const qp_conn_opts *opts, qp_conn **out,
                 char *err, size_t errlen);
void qp_conn_close(qp_conn *c);              /* NULL-safe */

/* Sync call: sends x, waits for the response. Returns a new reference: the
 * result, or a q error value (-128) when the server answered with one.
 * Returns NULL on a failure: qp_conn_err says which (QP_ETIMEOUT when the
 * call timeout ran out, QP_ECLOSED when the server closed, -errno, ...)
 * and qp_conn_errstr why. After a transport failure or a timeout the
 * connection is unusable (qp_conn_broken): close it and open another. */
qp_value *qp_conn_call(qp_conn *c, const qp_value *x);
/* Sends x as msgtype (QP_MSG_ASYNC / SYNC / RESPONSE) without waiting.
 * Sync messages may be pipelined: responses arrive in order. */
int qp_conn_send(qp_conn *c, const qp_value *x, int msgtype);
/* Receives one message: 0 and *out (new reference) and *msgtype, or a
 * negative code (QP_ETIMEOUT when timeout_ms ran out: the connection is
 * then broken, since a late reply would be taken for the next one's).
 * timeout_ms < 0 uses the connection's call timeout. */
int qp_conn_recv(qp_conn *c, qp_value **out, int *msgtype, int timeout_ms);
/* Receives one message without waiting and without decoding it: reads
 * what the socket (or TLS) holds now. Returns 0 and *msg (a new buffer
 * reference: the whole message as received, decompressed, header
 * included, as qp_ipc_decode takes it) and *h; -EAGAIN when no whole
 * message is in yet (what was read stays buffered: poll qp_conn_fd and
 * call again); or another negative code (the connection is unusable).
 * Called until -EAGAIN, it leaves nothing buffered that poll() misses. */
int qp_conn_recv_nowait(qp_conn *c, qp_buf **msg, qp_ipc_header *h);
/* True when a receive can complete without the socket becoming readable:
 * a whole message is buffered, TLS holds decrypted bytes, or the stream
 * is broken (the receive then fails at once). poll() on qp_conn_fd sees
 * none of these, so a poll loop over blocking qp_conn_recv calls must ask
 * this first. */
bool qp_conn_pending(const qp_conn *c);

int qp_conn_fd(const qp_conn *c);
/* Capability the server accepted (the byte it answered). */
int qp_conn_capability(const qp_conn *c);
/* Errors stay on the connection (hiredis' shape): every failing call
 * above sets both. qp_conn_err: the code of the last failure (QP_E* or
 * -errno), 0 when none yet; qp_conn_errstr: its text ("" when none). A
 * connection that failed stays failed: later calls fail at once with the
 * code and text of the failure that broke it. */
int qp_conn_err(const qp_conn *c);
const char *qp_conn_errstr(const qp_conn *c);
/* True once a transport failure or a timeout left the stream at an
 * unknown offset: every later send or receive fails (an encode error,
 * which sends nothing, does not break the connection). */
bool qp_conn_broken(const qp_conn *c);
/* Whether the peer is on this machine (loopback or unix): q does not
 * compress for local peers. */
bool qp_conn_is_local(const qp_conn *c);

#endif
