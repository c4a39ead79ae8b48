/* server.c - the worker server's event loop and connections (its threads and
 * work queues are in pool.c).
 *
 * One loop thread owns every socket (epoll, level-triggered). A connection
 * goes TLS handshake (if any) -> q handshake -> ready. In ready state the
 * loop feeds bytes to the connection's qp_reader and takes one message at a
 * time: the work item runs inline when it is small and its function is a loop
 * one (see QP__SMALL_MSG), else it goes to the pool or main thread and
 * comes back through the `done` queue and the eventfd. While a message is
 * in progress, or while the connection's unsent output is above OUT_HIGH,
 * the loop stops reading from it: the kernel's buffers then push back on
 * that client alone, and no client can make the server buffer without
 * bound. Failed logins are closed after DENY_MS, on a timer, so the loop
 * never sleeps for them. A stream that breaks (bad header, length beyond
 * memory, corrupt compression) gets one error response, then the close.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <openssl/crypto.h>

#include "server_int.h"

#define OUT_HIGH (16 << 20)    /* unsent bytes above which we stop reading */
#define HANDSHAKE_MAX 1024     /* longest "user:password" + cap + NUL */
#define DENY_MS 500            /* delay before a failed login is closed */
#define READ_CHUNK (1 << 20)   /* most bytes read per event per connection */
#define HANDSHAKE_MS 30000     /* default opts.handshake_ms: log in within this */
#define EMFILE_PAUSE_MS 100    /* out of fds: stop accepting for this long */

enum cstate { C_TLS, C_HANDSHAKE, C_AUTHING, C_READY, C_DENIED };

typedef struct outbuf {
    struct outbuf *next;
    uint8_t *data;         /* malloc'd message */
    size_t len, off;       /* bytes, bytes already sent */
} outbuf;

struct qp__sconn {
    qp__tp tp;
    uint64_t id;           /* unique for the server's life */
    int state;             /* enum cstate */
    uint32_t events;       /* epoll interest now registered */
    int tls_want;          /* TLS handshake: QP__WANT_READ or _WRITE */
    bool tls_seen;         /* the client's first byte was looked at */
    char hs[HANDSHAKE_MAX];/* handshake bytes so far */
    size_t hslen;
    int cap;               /* capability the client asked for */
    qp_reader *rd;
    bool busy;             /* a message is in progress */
    outbuf *out, *out_tail;
    size_t outbytes;       /* unsent bytes queued */
    char peer[64];         /* "ip:port" or "unix", for logs */
    bool closing;          /* an error response is queued: close once sent */
    qp__work *work;        /* the message in progress off the loop (busy), or NULL */
    bool peer_gone;        /* the client closed its end: its sync calls are cancelled */
};

/* A timer on a connection (failed-login delay, handshake deadline). */
typedef struct qp__deny {
    struct qp__deny *next;
    int fd;
    uint64_t id;
    int64_t at;            /* monotonic ms when to close */
} qp__deny;

/* ====================================================================
 * Connections
 * ==================================================================== */

static void conn_update(qp_server *s, qp__sconn *c)
{
    uint32_t ev = 0;
    switch (c->state) {
    case C_TLS: ev = c->tls_want == QP__WANT_WRITE ? EPOLLOUT : EPOLLIN; break;
    case C_HANDSHAKE: ev = EPOLLIN; break;
    case C_READY:
        if (!c->busy && !c->closing && c->outbytes <= OUT_HIGH) ev = EPOLLIN;
        /* a sync call in progress: hear the client leave (a FIN), to cancel it */
        else if (c->work && c->work->msgtype == QP_MSG_SYNC && !atomic_load(&c->work->cancelled))
            ev = EPOLLRDHUP;
        break;
    default: break;
    }
    if (c->out) ev |= EPOLLOUT;
    if (ev == c->events) return;
    struct epoll_event e = { .events = ev, .data.fd = c->tp.fd };
    epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->tp.fd, &e);
    c->events = ev;
}

/* The client of c has closed its end, or c is being closed: its sync
 * call in progress is cancelled, and so is each it sent before leaving. */
static void conn_gone(qp_server *s, qp__sconn *c)
{
    c->peer_gone = true;
    if (c->work && qp__work_cancel(s, c->work))
        fprintf(stderr, "qpeach serve: %s closed the connection: its call is cancelled\n", c->peer);
}

static void conn_close(qp_server *s, qp__sconn *c)
{
    int fd = c->tp.fd;
    conn_gone(s, c);
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL);
    s->conns[fd] = NULL;
    qp__tp_close(&c->tp);
    qp_reader_free(c->rd);
    for (outbuf *o = c->out, *n; o; o = n) {
        n = o->next;
        free(o->data);
        free(o);
    }
    OPENSSL_cleanse(c->hs, sizeof c->hs);
    free(c);
}

/* Sends what the output queue holds until the socket is full.
 * Returns 0, or -1 when the connection was closed. */
static int conn_flush(qp_server *s, qp__sconn *c)
{
    while (c->out) {
        outbuf *o = c->out;
        ssize_t w = qp__tp_write(&c->tp, o->data + o->off, o->len - o->off);
        if (w == QP__WANT_WRITE || w == QP__WANT_READ) break;
        if (w <= 0) { conn_close(s, c); return -1; }
        o->off += (size_t)w;
        c->outbytes -= (size_t)w;
        if (o->off == o->len) {
            c->out = o->next;
            if (!c->out) c->out_tail = NULL;
            free(o->data);
            free(o);
        }
    }
    if (c->closing && !c->out) { conn_close(s, c); return -1; }
    return 0;
}

/* Queues a malloc'd message (taken over) and tries to send it at once. */
static int conn_send(qp_server *s, qp__sconn *c, uint8_t *data, size_t len)
{
    outbuf *o = malloc(sizeof *o);
    if (!o) { free(data); conn_close(s, c); return -1; }
    o->next = NULL;
    o->data = data;
    o->len = len;
    o->off = 0;
    if (c->out_tail) c->out_tail->next = o; else c->out = o;
    c->out_tail = o;
    c->outbytes += len;
    return conn_flush(s, c);
}

static void conn_read(qp_server *s, qp__sconn *c);

/* The input stream is broken (the reader's error is sticky): tell the
 * client why in an error response, as far as the protocol allows, then
 * close once it is sent. */
static void conn_fail(qp_server *s, qp__sconn *c)
{
    const char *why = qp_reader_errstr(c->rd);
    fprintf(stderr, "qpeach serve: %s: %s; closing\n", c->peer, why);
    qp_value *e = qp_error("qpeach: %s; closing the connection", why);
    uint8_t *m = NULL;
    size_t len = 0;
    c->closing = true;
    if (!e || qp_ipc_encode(e, QP_MSG_RESPONSE, &m, &len)) {
        qp_unref(e);
        conn_close(s, c);
        return;
    }
    qp_unref(e);
    if (conn_send(s, c, m, len)) return;
    conn_update(s, c);
}

/* Starts the connection's next buffered message, if it may. */
static void conn_next(qp_server *s, qp__sconn *c)
{
    while (c->state == C_READY && !c->busy && c->outbytes <= OUT_HIGH) {
        qp_buf *m = NULL;
        qp_ipc_header h;
        int r = qp_reader_next(c->rd, &m, &h);
        if (r < 0) {
            conn_fail(s, c);
            return;
        }
        if (r == 0) break;
        if (h.msgtype == QP_MSG_RESPONSE) { qp_buf_unref(m); continue; }  /* nothing asked */
        qp__work *j = calloc(1, sizeof *j);
        if (!j) { qp_buf_unref(m); conn_close(s, c); return; }
        j->kind = QP__WORK_MSG;
        j->fd = c->tp.fd;
        j->cid = c->id;
        j->msgtype = h.msgtype;
        j->local = c->tp.local;
        j->msg = m;
        /* sent before the client left: nobody waits for the answer */
        if (c->peer_gone && h.msgtype == QP_MSG_SYNC) atomic_store(&j->cancelled, true);
        c->busy = true;
        if (qp__work_run(s, j, QP_EXEC_LOOP) == QP__WORK_MOVED) {
            c->work = j;
            break;
        }
        c->busy = false;
        uint8_t *out = j->out;
        size_t len = j->outlen;
        j->out = NULL;
        qp__work_free(j);
        if (out && conn_send(s, c, out, len)) return;
    }
    conn_update(s, c);
}

/* The handshake is complete in c->hs (NUL-terminated, cap byte before). */
static void conn_handshake_done(qp_server *s, qp__sconn *c, size_t nul)
{
    size_t n = nul;
    c->cap = 0;
    /* the byte before the NUL is the capability when it is a small number
     * (old clients send none) */
    if (n > 0 && (unsigned char)c->hs[n - 1] < 32) c->cap = (unsigned char)c->hs[--n];
    c->hs[n] = 0;
    if (!s->auth) {
        uint8_t *ans = malloc(1);
        if (!ans) { conn_close(s, c); return; }
        ans[0] = (uint8_t)(c->cap < 6 ? c->cap : 6);
        c->state = C_READY;
        if (conn_send(s, c, ans, 1)) return;
        conn_next(s, c);
        return;
    }
    qp__work *j = calloc(1, sizeof *j);
    if (!j || !(j->cred = strdup(c->hs))) { free(j); conn_close(s, c); return; }
    j->kind = QP__WORK_AUTH;
    j->fd = c->tp.fd;
    j->cid = c->id;
    c->state = C_AUTHING;
    /* a login costs tens of ms: never on the loop */
    qp__work_post(s, j, QP_EXEC_POOL);
    conn_update(s, c);
}

static void conn_read(qp_server *s, qp__sconn *c)
{
    int fd = c->tp.fd;
    size_t budget = READ_CHUNK;
    while (!c->closing && (c->state == C_HANDSHAKE || (c->state == C_READY && !c->busy))) {
        /* Past the budget, yield to other connections; but not while TLS
         * holds decrypted bytes: epoll cannot see those, and the socket
         * may have nothing more to wake us with. */
        if (!budget && !qp__tp_pending(&c->tp)) break;
        ssize_t r;
        if (c->state == C_HANDSHAKE) {
            r = qp__tp_read(&c->tp, c->hs + c->hslen, sizeof c->hs - c->hslen);
            if (r > 0) {
                size_t start = c->hslen;
                c->hslen += (size_t)r;
                char *z = memchr(c->hs + start, 0, (size_t)r);
                if (z) {
                    size_t nul = (size_t)(z - c->hs), rest = c->hslen - nul - 1;
                    /* bytes after the NUL are the first message: keep them */
                    /* (a feed error is sticky: conn_next reports it once
                     * the client is in) */
                    if (rest) qp_reader_feed(c->rd, z + 1, rest);
                    conn_handshake_done(s, c, nul);
                    return;
                }
                if (c->hslen == sizeof c->hs) { conn_close(s, c); return; }
                continue;
            }
        } else {
            size_t room = 0;
            void *p = qp_reader_space(c->rd, &room);
            if (!p) { conn_close(s, c); return; }
            if (budget && room > budget) room = budget;
            r = qp__tp_read(&c->tp, p, room);
            if (r > 0) {
                budget -= (size_t)r < budget ? (size_t)r : budget;
                if (qp_reader_commit(c->rd, (size_t)r) < 0) {
                    /* answer the whole messages before the bad one first;
                     * conn_next reaches the error after them */
                    conn_next(s, c);
                    return;
                }
                conn_next(s, c);
                if (s->conns[fd] != c) return;   /* closed */
                /* A short read drained the socket: skip the read that would
                 * only say EAGAIN (epoll tells us when more comes). */
                if ((size_t)r < room && !qp__tp_pending(&c->tp)) break;
                continue;
            }
        }
        if (r == QP__WANT_READ || r == QP__WANT_WRITE) break;
        conn_close(s, c);                    /* end of stream or error */
        return;
    }
    conn_update(s, c);
}

/* True when the first byte a client sent cannot start a TLS handshake
 * (a record of type 22): a plain kdb+ client on a TLS port. Its login
 * (`user:password` + 3 + NUL, or just 3 + NUL) is too short a record for
 * OpenSSL to reject, so it would wait for the handshake timeout. */
static bool plain_client_on_tls(qp__sconn *c)
{
    unsigned char b;
    if (c->tls_seen || recv(c->tp.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) != 1) return false;
    c->tls_seen = true;            /* later records may be of other types */
    return b != 0x16;
}

static void conn_tls(qp_server *s, qp__sconn *c)
{
    char err[256] = "";
    if (plain_client_on_tls(c)) {
        fprintf(stderr, "qpeach serve: %s: not a TLS client (this port serves TLS); closing\n", c->peer);
        conn_close(s, c);
        return;
    }
    int r = qp__tp_handshake(&c->tp, err, sizeof err);
    if (r == QP__WANT_READ || r == QP__WANT_WRITE) {
        c->tls_want = r;
        conn_update(s, c);
        return;
    }
    if (r) {
        fprintf(stderr, "qpeach serve: %s: %s\n", c->peer, err);
        conn_close(s, c);
        return;
    }
    c->state = C_HANDSHAKE;
    conn_read(s, c);                          /* TLS may hold the bytes already */
}

/* Appends a timer for connection c, due in ms; 0 or -1 on no memory. */
static int timer_add(qp__deny **head, qp__deny **tail, const qp__sconn *c, int ms)
{
    qp__deny *d = malloc(sizeof *d);
    if (!d) return -1;
    d->next = NULL;
    d->fd = c->tp.fd;
    d->id = c->id;
    d->at = qp__now_ms() + ms;
    if (*tail) (*tail)->next = d; else *head = d;
    *tail = d;
    return 0;
}

static void conn_accept(qp_server *s)
{
    for (int k = 0; k < 64; k++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(s->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                /* the pending connection stays readable: without a pause
                 * the loop would spin on it */
                fprintf(stderr, "qpeach serve: accept: %s; pausing accepts\n", strerror(errno));
                epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->lfd, NULL);
                s->accept_paused_until = qp__now_ms() + EMFILE_PAUSE_MS;
            }
            return;
        }
        if (fd >= s->nconns) {
            int n = s->nconns ? s->nconns : 64;
            while (n <= fd) n *= 2;
            qp__sconn **m = realloc(s->conns, (size_t)n * sizeof *m);
            if (!m) { close(fd); continue; }
            memset(m + s->nconns, 0, (size_t)(n - s->nconns) * sizeof *m);
            s->conns = m;
            s->nconns = n;
        }
        qp__sconn *c = calloc(1, sizeof *c);
        if (!c || !(c->rd = qp_reader_new(&s->rlim))) { free(c); close(fd); continue; }
        c->id = ++s->next_cid;
        if (!s->unix_sock) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *in = (struct sockaddr_in *)&ss;
            char ip[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
            snprintf(c->peer, sizeof c->peer, "%s:%d", ip, ntohs(in->sin_port));
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *in = (struct sockaddr_in6 *)&ss;
            char ip[INET6_ADDRSTRLEN];
            inet_ntop(AF_INET6, &in->sin6_addr, ip, sizeof ip);
            snprintf(c->peer, sizeof c->peer, "[%s]:%d", ip, ntohs(in->sin6_port));
        } else {
            snprintf(c->peer, sizeof c->peer, "unix");
        }
        if (s->tls) {
            if (qp__tp_tls(&c->tp, fd, s->tls, true, NULL)) { qp_reader_free(c->rd); free(c); continue; }
            c->state = C_TLS;
            c->tls_want = QP__WANT_READ;
        } else {
            qp__tp_plain(&c->tp, fd);
            c->state = C_HANDSHAKE;
        }
        s->conns[fd] = c;
        c->events = EPOLLIN;
        struct epoll_event e = { .events = EPOLLIN, .data.fd = fd };
        if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &e) ||
            timer_add(&s->hs_timers, &s->hs_timers_tail, c,
                      s->opts.handshake_ms > 0 ? s->opts.handshake_ms : HANDSHAKE_MS)) {
            conn_close(s, c);
            continue;
        }
    }
}

/* A finished work item is back on the loop. */
static void work_done(qp_server *s, qp__work *j)
{
    qp__sconn *c = j->fd < s->nconns ? s->conns[j->fd] : NULL;
    if (!c || c->id != j->cid) { qp__work_free(j); return; }   /* client left */
    if (j->kind == QP__WORK_AUTH) {
        if (j->auth_ok) {
            int fd = j->fd;
            uint8_t *ans = malloc(1);
            if (!ans) { qp__work_free(j); conn_close(s, c); return; }
            ans[0] = (uint8_t)(c->cap < 6 ? c->cap : 6);
            c->state = C_READY;
            qp__work_free(j);
            if (conn_send(s, c, ans, 1)) return;
            conn_next(s, c);
            if (s->conns[fd] == c) conn_read(s, c);
            return;
        }
        char *colon = strchr(j->cred, ':');
        if (colon) *colon = 0;
        char user[64 * 4 + 8];
        qp__log_text(user, sizeof user, j->cred);
        fprintf(stderr, "qpeach serve: failed login for user '%s' from %s\n", user, c->peer);
        qp__work_free(j);
        if (timer_add(&s->denied, &s->denied_tail, c, DENY_MS)) { conn_close(s, c); return; }
        c->state = C_DENIED;
        conn_update(s, c);
        return;
    }
    uint8_t *out = j->out;
    size_t len = j->outlen;
    int fd = j->fd;
    j->out = NULL;
    qp__work_free(j);
    c->busy = false;
    c->work = NULL;
    if (out && conn_send(s, c, out, len)) return;
    conn_next(s, c);
    /* bytes may wait in TLS, or reading was off while busy */
    if (fd < s->nconns && s->conns[fd] == c && !c->busy) conn_read(s, c);
}

/* Fires the timers that are due: closes failed logins whose delay is
 * over and connections still not logged in after HANDSHAKE_MS. Returns
 * ms to the next timer, or -1. */
static int timers_run(qp_server *s)
{
    int64_t now = qp__now_ms();
    qp__deny **heads[2] = { &s->denied, &s->hs_timers }, **tails[2] = { &s->denied_tail, &s->hs_timers_tail };
    int64_t next = -1;
    for (int k = 0; k < 2; k++) {
        qp__deny **h = heads[k];
        while (*h && (*h)->at <= now) {
            qp__deny *d = *h;
            *h = d->next;
            if (!*h) *tails[k] = NULL;
            qp__sconn *c = d->fd < s->nconns ? s->conns[d->fd] : NULL;
            if (c && c->id == d->id && (k == 0 || c->state == C_TLS || c->state == C_HANDSHAKE)) {
                if (k == 1)
                    fprintf(stderr, "qpeach serve: %s: handshake timed out after %d ms; closing\n",
                            c->peer, s->opts.handshake_ms > 0 ? s->opts.handshake_ms : HANDSHAKE_MS);
                conn_close(s, c);
            }
            free(d);
        }
        if (*h && (next < 0 || (*h)->at - now < next)) next = (*h)->at - now;
    }
    if (s->accept_paused_until) {
        if (s->accept_paused_until <= now) {
            s->accept_paused_until = 0;
            struct epoll_event e = { .events = EPOLLIN, .data.fd = s->lfd };
            epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->lfd, &e);
        } else if (next < 0 || s->accept_paused_until - now < next) {
            next = s->accept_paused_until - now;
        }
    }
    return (int)next;
}

/* ====================================================================
 * Public API
 * ==================================================================== */

int qp_server_new(const qp_server_opts *opts, qp_server **out, char *err, size_t errlen)
{
    *out = NULL;
    char dummy[8];
    if (!err) { err = dummy; errlen = sizeof dummy; }
    err[0] = 0;
    if (!opts || opts->secondary < 0 || opts->secondary > 1024) {
        snprintf(err, errlen, "bad options");
        return QP_EARG;
    }
    qp__addr a;
    const char *listen = opts->listen && *opts->listen ? opts->listen : "5000";
    if (qp__addr_parse(listen, true, &a)) {
        snprintf(err, errlen, "bad listen address %s (PORT, HOST:PORT, unix:/path or @/path)", listen);
        return QP_EADDR;
    }
    if (a.kind == QP__ADDR_TCP && !qp__host_is_loopback(a.host) && !opts->passwd_file && !opts->insecure) {
        snprintf(err, errlen, "refusing to listen on %s:%d without a password file: a worker "
                 "runs code for its clients. Use -u FILE, or --insecure if the network is trusted",
                 a.host, a.port);
        return QP_EARG;
    }
    if ((opts->tls_cert != NULL) != (opts->tls_key != NULL)) {
        snprintf(err, errlen, "TLS needs both --tls-cert and --tls-key");
        return QP_EARG;
    }
    qp_server *s = calloc(1, sizeof *s);
    if (!s) { snprintf(err, errlen, "out of memory"); return QP_ENOMEM; }
    s->opts = *opts;
    s->lfd = s->epfd = s->evfd = -1;
    s->run = qp__work_run;   /* what the pool's threads do with a work item */
    /* A length field beyond physical memory is refused before anything is
     * allocated for it (and under ASan, rather than abort on a huge malloc). */
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    if (pages > 0 && psize > 0) s->rlim.max_msg = (uint64_t)pages * (uint64_t)psize;
    if (opts->max_msg) s->rlim.max_msg = opts->max_msg;
    pthread_mutex_init(&s->gmu, NULL);
    pthread_mutex_init(&s->dbmu, NULL);
    pthread_cond_init(&s->ready_cv, NULL);
    qp__workq *qs[] = { &s->pool, &s->mainq, &s->done };
    for (int i = 0; i < 3; i++) {
        pthread_mutex_init(&qs[i]->mu, NULL);
        pthread_cond_init(&qs[i]->cv, NULL);
    }
    int rc;
    /* a client that goes away must not kill the server on write */
    signal(SIGPIPE, SIG_IGN);
    if (opts->passwd_file && (rc = qp_auth_load(opts->passwd_file, &s->auth, err, errlen))) goto fail;
    if (opts->tls_cert) {
        if (a.kind != QP__ADDR_TCP) { snprintf(err, errlen, "TLS needs a TCP port"); rc = QP_EARG; goto fail; }
        if (!(s->tls = qp__tls_server_ctx(opts->tls_cert, opts->tls_key, err, errlen))) { rc = QP_ETLS; goto fail; }
    }
    if ((rc = qp__builtins_register(s))) { snprintf(err, errlen, "out of memory"); goto fail; }
    if ((s->lfd = qp__listen(&a, s->address, sizeof s->address, err, errlen)) < 0) {
        rc = s->lfd;
        goto fail;
    }
    s->unix_sock = a.kind == QP__ADDR_UNIX;
    if (s->unix_sock && !a.abstract) snprintf(s->unix_path, sizeof s->unix_path, "%s", a.path);
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    s->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->epfd < 0 || s->evfd < 0) {
        rc = -errno;
        snprintf(err, errlen, "epoll/eventfd: %s", strerror(errno));
        goto fail;
    }
    struct epoll_event e = { .events = EPOLLIN, .data.fd = s->lfd };
    struct epoll_event w = { .events = EPOLLIN, .data.fd = s->evfd };
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->lfd, &e) || epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->evfd, &w)) {
        rc = -errno;
        snprintf(err, errlen, "epoll_ctl: %s", strerror(errno));
        goto fail;
    }
    *out = s;
    return 0;
fail:
    qp_server_free(s);
    return rc;
}

int qp_server_run(qp_server *s)
{
    char err[256];
    if (!s->threads) {
        int rc = qp__threads_start(s, err, sizeof err);
        if (rc) { fprintf(stderr, "qpeach serve: %s\n", err); return rc; }
    }
    struct epoll_event evs[128];
    while (!atomic_load(&s->stopping)) {
        int timeout = timers_run(s);
        int n = epoll_wait(s->epfd, evs, 128, timeout);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == s->lfd) { conn_accept(s); continue; }
            if (fd == s->evfd) {
                uint64_t v;
                ssize_t r = read(s->evfd, &v, sizeof v);
                (void)r;
                for (qp__work *j = qp__workq_take_all(&s->done), *nx; j; j = nx) {
                    nx = j->next;
                    work_done(s, j);
                }
                continue;
            }
            qp__sconn *c = fd < s->nconns ? s->conns[fd] : NULL;
            if (!c) continue;
            uint32_t ev = evs[i].events;
            if (c->out && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
                if (conn_flush(s, c)) continue;
                if (c->outbytes <= OUT_HIGH) conn_next(s, c);
                if (s->conns[fd] != c) continue;
            }
            if (c->state == C_TLS) { conn_tls(s, c); continue; }
            if ((ev & (EPOLLERR | EPOLLHUP)) && (c->busy || c->state == C_DENIED || c->state == C_AUTHING)) {
                conn_close(s, c);   /* gone while we were not reading: do not spin */
                continue;
            }
            if ((ev & EPOLLRDHUP) && c->busy) {
                /* the client left while its call runs: cancel it; the
                 * answer and the end of the stream are read as usual */
                conn_gone(s, c);
                conn_update(s, c);
                continue;
            }
            if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) conn_read(s, c);
            else if (s->conns[fd] == c) conn_update(s, c);
        }
    }
    return 0;
}

void qp_server_stop(qp_server *s)
{
    atomic_store(&s->stopping, true);
    uint64_t one = 1;
    ssize_t r = write(s->evfd, &one, sizeof one);   /* async-signal-safe */
    (void)r;
}

const char *qp_server_address(const qp_server *s) { return s->address; }

void qp_server_free(qp_server *s)
{
    if (!s) return;
    if (s->threads) qp__threads_stop(s);
    for (int fd = 0; fd < s->nconns; fd++)
        if (s->conns[fd]) conn_close(s, s->conns[fd]);
    free(s->conns);
    for (qp__deny *d = s->denied, *n; d; d = n) { n = d->next; free(d); }
    for (qp__deny *d = s->hs_timers, *n; d; d = n) { n = d->next; free(d); }
    qp__workq *qs[] = { &s->pool, &s->mainq, &s->done };
    for (int i = 0; i < 3; i++) {
        for (qp__work *j = qs[i]->head, *n; j; j = n) {
            n = j->next;
            if (j->kind == QP__WORK_TASK) free(j); else qp__work_free(j);
        }
        pthread_mutex_destroy(&qs[i]->mu);
        pthread_cond_destroy(&qs[i]->cv);
    }
    if (s->lfd >= 0) close(s->lfd);
    if (s->unix_path[0]) unlink(s->unix_path);
    if (s->epfd >= 0) close(s->epfd);
    if (s->evfd >= 0) close(s->evfd);
    if (s->tls) SSL_CTX_free(s->tls);
    qp_auth_free(s->auth);
    qp__globals_free(s);
    free(s->fns);
    pthread_mutex_destroy(&s->gmu);
    pthread_mutex_destroy(&s->dbmu);
    pthread_cond_destroy(&s->ready_cv);
    free(s);
}
