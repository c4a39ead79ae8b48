/* transport.c - addresses, sockets, and the plain/TLS transport table.
 *
 * Everything above this file sees a qp__tp: read/write/close that answer
 * QP__WANT_READ / QP__WANT_WRITE instead of blocking, so the server's
 * epoll loop and the client's poll() waits drive plain sockets and TLS
 * sessions the same way. A client waits for an answer with
 * qp__tp_read_wait, which on a plain socket blocks in recv() itself (see
 * qp__tp_block for why).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "net_int.h"

/* ====================================================================
 * Addresses
 * ==================================================================== */

static int parse_port(const char *s, int *port)
{
    if (!*s) return QP_EADDR;
    long v = 0;
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char)*p)) return QP_EADDR;
        v = v * 10 + (*p - '0');
        if (v > 65535) return QP_EADDR;
    }
    *port = (int)v;
    return 0;
}

int qp__addr_parse(const char *s, bool server, qp__addr *a)
{
    memset(a, 0, sizeof *a);
    if (!s || !*s) return QP_EADDR;
    if (!strncmp(s, "unix://", 7)) {
        /* q's convention: unix://5050 is the socket /tmp/kx.5050, in the
         * abstract namespace on Linux. */
        int port;
        if (parse_port(s + 7, &port)) return QP_EADDR;
        a->kind = QP__ADDR_UNIX;
        a->abstract = true;
        snprintf(a->path, sizeof a->path, "/tmp/kx.%d", port);
        return 0;
    }
    if (!strncmp(s, "unix:", 5) || s[0] == '@') {
        const char *p = s[0] == '@' ? s + 1 : s + 5;
        if (!*p || strlen(p) >= sizeof a->path) return QP_EADDR;
        a->kind = QP__ADDR_UNIX;
        strcpy(a->path, p);
        return 0;
    }
    a->kind = QP__ADDR_TCP;
    const char *colon = strrchr(s, ':');
    if (!colon) {
        strcpy(a->host, "127.0.0.1");
        return parse_port(s, &a->port);
    }
    size_t hl = (size_t)(colon - s);
    const char *h = s;
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') { h++; hl -= 2; }  /* [::1]:5050 */
    if (hl >= sizeof a->host) return QP_EADDR;
    (void)server;   /* both sides default to loopback */
    if (hl == 0) strcpy(a->host, "127.0.0.1");
    else if (hl == 1 && h[0] == '*') strcpy(a->host, "0.0.0.0");
    else { memcpy(a->host, h, hl); a->host[hl] = 0; }
    return parse_port(colon + 1, &a->port);
}

bool qp__host_is_loopback(const char *host)
{
    return !strncmp(host, "127.", 4) || !strcmp(host, "::1") ||
           !strcmp(host, "localhost");
}

/* ====================================================================
 * Sockets
 * ==================================================================== */

int64_t qp__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int qp__set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return -errno;
    return 0;
}

int qp__wait_fd(int fd, int want, int64_t deadline_ms)
{
    struct pollfd p = { .fd = fd, .events = want == QP__WANT_WRITE ? POLLOUT : POLLIN };
    for (;;) {
        int t = -1;
        if (deadline_ms >= 0) {
            int64_t left = deadline_ms - qp__now_ms();
            if (left <= 0) return QP_ETIMEOUT;
            t = left > 1000000 ? 1000000 : (int)left;
        }
        int r = poll(&p, 1, t);
        if (r > 0) return 0;               /* ready, or error/hup: the I/O says which */
        if (r == 0) { if (deadline_ms >= 0 && qp__now_ms() >= deadline_ms) return QP_ETIMEOUT; continue; }
        if (errno != EINTR) return -errno;
    }
}

static socklen_t unix_sockaddr(const qp__addr *a, struct sockaddr_un *sun)
{
    memset(sun, 0, sizeof *sun);
    sun->sun_family = AF_UNIX;
    size_t n = strlen(a->path);
    if (a->abstract) {
        /* abstract: a leading NUL, then the name, no terminator */
        memcpy(sun->sun_path + 1, a->path, n);
        return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
    }
    memcpy(sun->sun_path, a->path, n);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
}

static int connect_one(int family, const struct sockaddr *sa, socklen_t len,
                       int64_t deadline, char *err, size_t errlen)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "socket: %s", strerror(e));
        return -e;
    }
    if (connect(fd, sa, len) < 0) {
        int e = errno;
        if (e != EINPROGRESS) {
            snprintf(err, errlen, "connect: %s", strerror(e));
            close(fd);
            return -e;
        }
        int r = qp__wait_fd(fd, QP__WANT_WRITE, deadline);
        if (r < 0) {
            snprintf(err, errlen, "connect: %s", r == QP_ETIMEOUT ? "timed out" : strerror(-r));
            close(fd);
            return r;
        }
        socklen_t sl = sizeof e;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl) < 0) e = errno;
        if (e) {
            snprintf(err, errlen, "connect: %s", strerror(e));
            close(fd);
            return -e;
        }
    }
    if (family != AF_UNIX) {
        int one = 1;   /* small calls must not wait for Nagle */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

/* The TCP addresses of a (passive: for bind). Returns 0 and *res (free
 * with freeaddrinfo), or QP_EADDR with a message in err. */
static int resolve(const qp__addr *a, bool passive, struct addrinfo **res,
                   char *err, size_t errlen)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0) };
    char port[8];
    snprintf(port, sizeof port, "%d", a->port);
    int g = getaddrinfo(a->host, port, &hints, res);
    if (g) {
        snprintf(err, errlen, "%s: %s", a->host, gai_strerror(g));
        return QP_EADDR;
    }
    return 0;
}

int qp__connect(const qp__addr *a, int timeout_ms, char *err, size_t errlen)
{
    int64_t deadline = timeout_ms > 0 ? qp__now_ms() + timeout_ms : -1;
    if (a->kind == QP__ADDR_UNIX) {
        struct sockaddr_un sun;
        socklen_t len = unix_sockaddr(a, &sun);
        return connect_one(AF_UNIX, (struct sockaddr *)&sun, len, deadline, err, errlen);
    }
    struct addrinfo *res = NULL;
    if (resolve(a, false, &res, err, errlen) < 0) return QP_EADDR;
    int fd = QP_EADDR;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = connect_one(ai->ai_family, ai->ai_addr, ai->ai_addrlen, deadline, err, errlen);
        if (fd >= 0 || fd == QP_ETIMEOUT) break;
    }
    freeaddrinfo(res);
    return fd;
}

int qp__listen(const qp__addr *a, char *bound, size_t boundlen, char *err, size_t errlen)
{
    int fd = -1, e;
    if (a->kind == QP__ADDR_UNIX) {
        struct sockaddr_un sun;
        socklen_t len = unix_sockaddr(a, &sun);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) goto fail;
        if (!a->abstract) {
            /* A stale socket file from a dead server would make bind fail;
             * remove it only if it is a socket. */
            struct stat st;
            if (!lstat(a->path, &st) && S_ISSOCK(st.st_mode)) unlink(a->path);
        }
        /* The file is created with mode 0600: only our user may connect. */
        mode_t old = umask(0177);
        int r = bind(fd, (struct sockaddr *)&sun, len);
        umask(old);
        if (r < 0) goto fail;
        if (listen(fd, 1024) < 0) goto fail;
        snprintf(bound, boundlen, "%s%s", a->abstract ? "@" : "", a->path);
        return fd;
    }
    struct addrinfo *res = NULL;
    if (resolve(a, true, &res, err, errlen) < 0) return QP_EADDR;
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) { freeaddrinfo(res); goto fail; }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0) { freeaddrinfo(res); goto fail; }
    freeaddrinfo(res);
    if (listen(fd, 1024) < 0) goto fail;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    char host[INET6_ADDRSTRLEN] = "?";
    int p = 0;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        p = ntohs(in->sin_port);
        snprintf(bound, boundlen, "%s:%d", host, p);
    } else {
        struct sockaddr_in6 *in = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &in->sin6_addr, host, sizeof host);
        p = ntohs(in->sin6_port);
        snprintf(bound, boundlen, "[%s]:%d", host, p);
    }
    return fd;
fail:
    e = errno;
    if (a->kind == QP__ADDR_UNIX)
        snprintf(err, errlen, "listen on %s: %s", a->path, strerror(e));
    else
        snprintf(err, errlen, "listen on %s:%d: %s", a->host, a->port, strerror(e));
    if (fd >= 0) close(fd);
    return -e;
}

bool qp__fd_is_local(int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0) return false;
    if (ss.ss_family == AF_UNIX) return true;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *in = (struct sockaddr_in6 *)&ss;
        if (IN6_IS_ADDR_LOOPBACK(&in->sin6_addr)) return true;
        if (IN6_IS_ADDR_V4MAPPED(&in->sin6_addr)) return in->sin6_addr.s6_addr[12] == 127;
    }
    return false;
}

/* ====================================================================
 * Plain transport
 * ==================================================================== */

static ssize_t plain_read(qp__tp *t, void *buf, size_t n)
{
    for (;;) {
        ssize_t r = recv(t->fd, buf, n, MSG_DONTWAIT);
        if (r >= 0) return r;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return QP__WANT_READ;
        return -errno;
    }
}

static ssize_t plain_write(qp__tp *t, const void *buf, size_t n)
{
    for (;;) {
        /* MSG_NOSIGNAL: a peer that went away is an error, not SIGPIPE */
        ssize_t r = send(t->fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (r >= 0) return r;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return QP__WANT_WRITE;
        return -errno;
    }
}

static void plain_close(qp__tp *t)
{
    if (t->fd >= 0) close(t->fd);
    t->fd = -1;
}

static const qp__tp_ops plain_ops = { plain_read, plain_write, plain_close };

void qp__tp_plain(qp__tp *t, int fd)
{
    t->ops = &plain_ops;
    t->fd = fd;
    t->ssl = NULL;
    t->local = qp__fd_is_local(fd);
    t->blocking = false;
    t->rcvtimeo_ms = 0;
}

/* AF_UNIX wakes a thread blocked in recv() on a socket as soon as the peer
 * takes what that socket sent (the write-space wake-up); a poll() waiter
 * asks for POLLIN only and sleeps on. A client blocked in recv() is thus
 * woken while the server is still making the answer, not after it: on 2
 * cores a poll() client cost 1.1-1.2x a blocking one over unix (issue
 * 21.5), the same over TCP, which has no such wake-up. */
int qp__tp_block(qp__tp *t)
{
    if (t->ssl) return QP_EARG;              /* OpenSSL's reads must not block */
    int fl = fcntl(t->fd, F_GETFL);
    if (fl < 0 || fcntl(t->fd, F_SETFL, fl & ~O_NONBLOCK) < 0) return -errno;
    t->blocking = true;
    return 0;
}

/* Sets SO_RCVTIMEO to what is left before deadline_ms (none for < 0),
 * without a system call when it is already so. QP_ETIMEOUT when nothing
 * is left. */
static int rcv_timeout(qp__tp *t, int64_t deadline_ms)
{
    int64_t left = 0;
    if (deadline_ms >= 0 && (left = deadline_ms - qp__now_ms()) <= 0) return QP_ETIMEOUT;
    if (left == t->rcvtimeo_ms) return 0;
    struct timeval tv = { .tv_sec = (time_t)(left / 1000), .tv_usec = (suseconds_t)(left % 1000) * 1000 };
    if (setsockopt(t->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv)) return -errno;
    t->rcvtimeo_ms = left;
    return 0;
}

ssize_t qp__tp_read_wait(qp__tp *t, void *buf, size_t n, int64_t deadline_ms)
{
    for (;;) {
        if (!t->blocking) {
            ssize_t r = qp__tp_read(t, buf, n);
            if (r != QP__WANT_READ && r != QP__WANT_WRITE) return r;
            int w = qp__wait_fd(t->fd, (int)r, deadline_ms);
            if (w < 0) return w;
            continue;
        }
        int rc = rcv_timeout(t, deadline_ms);   /* out of time: only what is there */
        if (rc && rc != QP_ETIMEOUT) return rc;
        ssize_t r = recv(t->fd, buf, n, rc ? MSG_DONTWAIT : 0);
        if (r >= 0) return r;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return -errno;
        if (rc) return QP_ETIMEOUT;
        /* SO_RCVTIMEO ran out a little early (its clock is coarser) */
    }
}

/* ====================================================================
 * TLS transport (OpenSSL)
 * ==================================================================== */

void qp__tls_errstr(const char *what, char *err, size_t errlen)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "";
    if (e) ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    snprintf(err, errlen, "%s%s%s", what, *buf ? ": " : "", buf);
}

/* Maps an SSL_* result to our codes. */
static ssize_t tls_result(qp__tp *t, int r)
{
    int e = SSL_get_error(t->ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ: return QP__WANT_READ;
    case SSL_ERROR_WANT_WRITE: return QP__WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN: return 0;
    case SSL_ERROR_SYSCALL: {
        int en = errno;
        ERR_clear_error();
        /* an EOF without close_notify: the peer is gone */
        return (r == 0 || en == 0) ? 0 : -en;
    }
    default:
        ERR_clear_error();
        return QP_ETLS;
    }
}

static ssize_t tls_read(qp__tp *t, void *buf, size_t n)
{
    size_t got = 0;
    int r = SSL_read_ex(t->ssl, buf, n, &got);
    if (r > 0) return (ssize_t)got;
    return tls_result(t, r);
}

static ssize_t tls_write(qp__tp *t, const void *buf, size_t n)
{
    size_t put = 0;
    int r = SSL_write_ex(t->ssl, buf, n, &put);
    if (r > 0) return (ssize_t)put;
    ssize_t e = tls_result(t, r);
    return e == 0 ? -EPIPE : e;
}

static void tls_close(qp__tp *t)
{
    if (t->ssl) {
        SSL_shutdown(t->ssl);        /* best effort: the socket is non-blocking */
        SSL_free(t->ssl);
        t->ssl = NULL;
        ERR_clear_error();
    }
    plain_close(t);
}

static const qp__tp_ops tls_ops = { tls_read, tls_write, tls_close };

int qp__tp_tls(qp__tp *t, int fd, SSL_CTX *ctx, bool server, const char *host)
{
    qp__tp_plain(t, fd);
    SSL *ssl = SSL_new(ctx);
    if (!ssl) goto fail;
    /* Non-blocking writes may be retried with another buffer address, and
     * a write may be partial: the same contract as send(). */
    SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (!SSL_set_fd(ssl, fd)) goto fail;
    if (server) {
        SSL_set_accept_state(ssl);
    } else {
        SSL_set_connect_state(ssl);
        if (host && *host) {
            unsigned char ip[16];
            bool is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
            X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
            if (is_ip) {
                if (!X509_VERIFY_PARAM_set1_ip_asc(vp, host)) goto fail;
            } else {
                SSL_set_tlsext_host_name(ssl, host);
                if (!SSL_set1_host(ssl, host)) goto fail;
            }
        }
    }
    t->ssl = ssl;
    t->ops = &tls_ops;
    return 0;
fail:
    SSL_free(ssl);
    ERR_clear_error();
    plain_close(t);
    t->ops = NULL;
    return QP_ETLS;
}

int qp__tp_handshake(qp__tp *t, char *err, size_t errlen)
{
    if (!t->ssl) return 0;
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) return 0;
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ) return QP__WANT_READ;
    if (e == SSL_ERROR_WANT_WRITE) return QP__WANT_WRITE;
    long v = SSL_get_verify_result(t->ssl);
    if (v != X509_V_OK) {
        snprintf(err, errlen, "TLS handshake: certificate verify failed: %s",
                 X509_verify_cert_error_string(v));
        ERR_clear_error();
    } else if (e == SSL_ERROR_SYSCALL && !ERR_peek_error()) {
        snprintf(err, errlen, "TLS handshake: connection closed by peer");
    } else {
        qp__tls_errstr("TLS handshake", err, errlen);
    }
    return QP_ETLS;
}

size_t qp__tp_pending(const qp__tp *t)
{
    return t->ssl ? (size_t)SSL_pending(t->ssl) : 0;
}

SSL_CTX *qp__tls_client_ctx(const char *ca_file, bool no_verify, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) { qp__tls_errstr("TLS", err, errlen); return NULL; }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (no_verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        return ctx;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    int ok = ca_file && *ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                                 : SSL_CTX_set_default_verify_paths(ctx);
    if (!ok) {
        char what[300];
        snprintf(what, sizeof what, "TLS: cannot load CA %s", ca_file ? ca_file : "(system)");
        qp__tls_errstr(what, err, errlen);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

SSL_CTX *qp__tls_server_ctx(const char *cert, const char *key, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) { qp__tls_errstr("TLS", err, errlen); return NULL; }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    char what[600];
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        snprintf(what, sizeof what, "TLS: cannot load certificate %s", cert);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        snprintf(what, sizeof what, "TLS: cannot load key %s", key);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(what, sizeof what, "TLS: key %s does not match certificate %s", key, cert);
        goto fail;
    }
    return ctx;
fail:
    qp__tls_errstr(what, err, errlen);
    SSL_CTX_free(ctx);
    return NULL;
}
