/* net_int.h - internals of the net module, shared by its files and
 * tests/unit/test_net.c. Not a public header: nothing here is a promise
 * to other modules.
 *
 * Memory rules: see value.h. A qp__tp owns its fd and SSL object; close
 * releases both.
 */
#ifndef QPEACH_NET_INT_H
#define QPEACH_NET_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include "qpeach/value.h"

/* ---- Addresses ---- */
enum qp__addr_kind { QP__ADDR_TCP = 0, QP__ADDR_UNIX = 1 };

typedef struct qp__addr {
    int kind;              /* enum qp__addr_kind */
    char host[256];        /* TCP: name or numeric address */
    int port;              /* TCP: 0..65535 */
    char path[108];        /* unix: socket path (sun_path size) */
    bool abstract;         /* unix: Linux abstract name (q's unix://PORT) */
} qp__addr;

/* Parses an address. Client forms: "host:port", ":port", "port",
 * "unix:/path", "unix://PORT", "@/path". Server forms: "PORT" and ":PORT"
 * (127.0.0.1), "HOST:PORT" ("*" = 0.0.0.0), and the unix forms.
 * Returns 0 or QP_EADDR. */
int qp__addr_parse(const char *s, bool server, qp__addr *a);
/* True when a TCP host is loopback ("127.x", "::1", "localhost"). */
bool qp__host_is_loopback(const char *host);

/* ---- Transports: plain socket or TLS behind one small table. ---- */
/* Extra codes of read/write/handshake beside -errno and QP_E*: the call
 * would block and wants the fd readable / writable. */
#define QP__WANT_READ  (-2001)
#define QP__WANT_WRITE (-2002)

typedef struct qp__tp qp__tp;
typedef struct qp__tp_ops {
    /* > 0 bytes, 0 at end of stream, or a negative code */
    ssize_t (*read)(qp__tp *t, void *buf, size_t n);
    ssize_t (*write)(qp__tp *t, const void *buf, size_t n);
    void (*close)(qp__tp *t);
} qp__tp_ops;

struct qp__tp {
    const qp__tp_ops *ops;
    int fd;                /* socket, -1 when closed: non-blocking, or
                            * blocking after qp__tp_block (read and write
                            * still never block) */
    SSL *ssl;              /* TLS session, NULL for plain */
    bool local;            /* peer on this machine (loopback or unix) */
    bool blocking;         /* qp__tp_block made fd blocking */
    int64_t rcvtimeo_ms;   /* SO_RCVTIMEO as last set (0: none) */
};

/* Wraps fd as a plain transport (takes over fd). */
void qp__tp_plain(qp__tp *t, int fd);
/* Wraps fd in TLS (takes over fd; on failure fd is closed). host, for a
 * client, is the name or IP to verify the certificate against (NULL: no
 * name check). Returns 0 or QP_ETLS / QP_ENOMEM. */
int qp__tp_tls(qp__tp *t, int fd, SSL_CTX *ctx, bool server, const char *host);
/* Advances the TLS handshake: 0 done, QP__WANT_READ/WRITE, or QP_ETLS. */
int qp__tp_handshake(qp__tp *t, char *err, size_t errlen);
static inline ssize_t qp__tp_read(qp__tp *t, void *b, size_t n) { return t->ops->read(t, b, n); }
static inline ssize_t qp__tp_write(qp__tp *t, const void *b, size_t n) { return t->ops->write(t, b, n); }
static inline void qp__tp_close(qp__tp *t) { if (t->ops) t->ops->close(t); t->ops = NULL; }
/* Makes a plain transport's socket blocking, for qp__tp_read_wait (its
 * read and write still never block). Returns 0 or -errno. */
int qp__tp_block(qp__tp *t);
/* Reads up to n (>= 1) bytes, waiting for at least one until the absolute
 * monotonic deadline (ms; < 0: none): > 0 bytes, 0 at end of stream,
 * QP_ETIMEOUT or a negative code. A blocked plain socket waits inside
 * recv(), any other in poll(). */
ssize_t qp__tp_read_wait(qp__tp *t, void *buf, size_t n, int64_t deadline_ms);
/* Bytes TLS holds decrypted but not yet returned (0 for plain). */
size_t qp__tp_pending(const qp__tp *t);

/* TLS contexts. Return NULL with a message in err. */
SSL_CTX *qp__tls_client_ctx(const char *ca_file, bool no_verify, char *err, size_t errlen);
SSL_CTX *qp__tls_server_ctx(const char *cert, const char *key, char *err, size_t errlen);
/* Last OpenSSL error as text into err (clears the queue). */
void qp__tls_errstr(const char *what, char *err, size_t errlen);

/* ---- Sockets ---- */
/* Connects (non-blocking socket left non-blocking) within timeout_ms.
 * Returns the fd or a negative code with err filled. */
int qp__connect(const qp__addr *a, int timeout_ms, char *err, size_t errlen);
/* Binds and listens (non-blocking). bound receives "host:port" or the unix
 * path actually bound. Returns the fd or a negative code with err. */
int qp__listen(const qp__addr *a, char *bound, size_t boundlen, char *err, size_t errlen);
/* Whether the peer of a connected socket is on this machine. */
bool qp__fd_is_local(int fd);
int qp__set_nonblock(int fd);
/* Waits for fd to become readable (want = QP__WANT_READ) or writable
 * until the absolute monotonic deadline (ms; < 0: none). 0 or QP_ETIMEOUT
 * or -errno. */
int qp__wait_fd(int fd, int want, int64_t deadline_ms);
int64_t qp__now_ms(void);

#endif
