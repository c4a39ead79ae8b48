/* test_conn.c - CUnit suite for the client connection's receive side as a
 * poll() loop uses it: qp_conn_pending and qp_conn_recv_nowait.
 *
 * The peer is a bare unix socket driven by this test (one thread answers
 * the handshake), so the test decides exactly which bytes arrive together:
 * three responses in one write, a message split in two, a close. That is
 * what poll() on the fd cannot tell apart and these two calls must.
 * The same peer checks that every failure leaves its code and text on
 * the connection (qp_conn_err, qp_conn_errstr, qp_conn_broken), and that
 * a call waiting for its answer is woken as soon as the peer takes its
 * request, as a thread blocked in read() is (the wake-up then overlaps the
 * peer's work instead of following it).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cunit_run.h"

#include "qpeach/conn.h"
#include "qpeach/ipc.h"

typedef struct peer {
    int lfd;               /* listening socket */
    int fd;                /* the accepted connection */
} peer;

/* Accepts one client and answers its handshake (capability 3). */
static void *accept_one(void *data)
{
    peer *p = data;
    p->fd = accept(p->lfd, NULL, NULL);
    if (p->fd < 0) return NULL;
    char hs[256];
    size_t n = 0;
    while (n < sizeof hs) {           /* "user:password" capability NUL */
        ssize_t r = read(p->fd, hs + n, 1);
        if (r <= 0) break;
        if (hs[n++] == 0) break;
    }
    uint8_t cap = 3;
    if (write(p->fd, &cap, 1) != 1) { close(p->fd); p->fd = -1; }
    return NULL;
}

static void write_all(int fd, const uint8_t *b, size_t n)
{
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w <= 0) { CU_FAIL("peer write"); return; }
        b += w;
        n -= (size_t)w;
    }
}

/* A response message carrying the long x, appended to *buf. */
static void add_response(uint8_t **buf, size_t *len, int64_t x)
{
    qp_value *v = qp_long(x);
    uint8_t *m = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(qp_ipc_encode(v, QP_MSG_RESPONSE, &m, &n), 0);
    qp_unref(v);
    *buf = realloc(*buf, *len + n);
    memcpy(*buf + *len, m, n);
    *len += n;
    free(m);
}

static int64_t buf_long(qp_buf *m)
{
    qp_value *v = qp_ipc_decode(m, NULL);
    int64_t x = v && v->type == -QP_LONG ? v->j : -1;
    qp_unref(v);
    return x;
}

static void test_pending_and_nowait(void)
{
    char path[64], addr[80], err[256];
    snprintf(path, sizeof path, "/tmp/qpeach-test-conn-%d.sock", (int)getpid());
    snprintf(addr, sizeof addr, "unix:%s", path);
    unlink(path);
    peer p = { .lfd = socket(AF_UNIX, SOCK_STREAM, 0), .fd = -1 };
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    CU_ASSERT_EQUAL_FATAL(bind(p.lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    CU_ASSERT_EQUAL_FATAL(listen(p.lfd, 1), 0);
    pthread_t th;
    pthread_create(&th, NULL, accept_one, &p);
    qp_conn_opts o = { .timeout_ms = 20000 };
    qp_conn *c = NULL;
    int rc = qp_conn_open(addr, &o, &c, err, sizeof err);
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_FATAL(p.fd >= 0);
    CU_ASSERT_FALSE(qp_conn_pending(c));

    /* Nothing sent yet: a non-blocking receive says so, stream intact. */
    qp_buf *m = NULL;
    qp_ipc_header h;
    CU_ASSERT_EQUAL(qp_conn_recv_nowait(c, &m, &h), -EAGAIN);
    CU_ASSERT_PTR_NULL(m);

    /* Three responses in one write: one read takes them all, so after
     * the first, poll() would see an empty socket; pending must not. */
    uint8_t *b = NULL;
    size_t n = 0;
    for (int i = 1; i <= 3; i++) add_response(&b, &n, i * 10);
    write_all(p.fd, b, n);
    for (int i = 1; i <= 3; i++) {
        qp_value *v = NULL;
        int t = -1;
        CU_ASSERT_EQUAL(qp_conn_recv(c, &v, &t, -1), 0);
        CU_ASSERT(v && v->type == -QP_LONG && v->j == i * 10 && t == QP_MSG_RESPONSE);
        qp_unref(v);
        CU_ASSERT_EQUAL(qp_conn_pending(c), i < 3);
    }
    struct pollfd pf = { .fd = qp_conn_fd(c), .events = POLLIN };
    CU_ASSERT_EQUAL(poll(&pf, 1, 0), 0);

    /* The same through the non-blocking call, which also gives the raw
     * message: it takes buffered ones without touching the socket. */
    write_all(p.fd, b, n);
    CU_ASSERT_EQUAL(poll(&pf, 1, 5000), 1);
    for (int i = 1; i <= 3; i++) {
        CU_ASSERT_EQUAL(qp_conn_recv_nowait(c, &m, &h), 0);
        CU_ASSERT(m && h.msgtype == QP_MSG_RESPONSE && m->len == h.len && buf_long(m) == i * 10);
        qp_buf_unref(m);
    }
    CU_ASSERT_EQUAL(qp_conn_recv_nowait(c, &m, &h), -EAGAIN);
    CU_ASSERT_FALSE(qp_conn_pending(c));
    free(b);

    /* A message split in two: the first half stays buffered. */
    b = NULL;
    n = 0;
    add_response(&b, &n, 77);
    write_all(p.fd, b, 5);
    CU_ASSERT_EQUAL(poll(&pf, 1, 5000), 1);
    CU_ASSERT_EQUAL(qp_conn_recv_nowait(c, &m, &h), -EAGAIN);
    CU_ASSERT_FALSE(qp_conn_pending(c));
    write_all(p.fd, b + 5, n - 5);
    CU_ASSERT_EQUAL(poll(&pf, 1, 5000), 1);
    CU_ASSERT_EQUAL(qp_conn_recv_nowait(c, &m, &h), 0);
    CU_ASSERT(m && buf_long(m) == 77);
    qp_buf_unref(m);
    free(b);

    /* The peer goes: the receive fails, and from then on the broken
     * stream counts as pending so a poll loop asks once more and learns. */
    close(p.fd);
    CU_ASSERT_EQUAL(poll(&pf, 1, 5000), 1);
    CU_ASSERT_EQUAL(qp_conn_recv_nowait(c, &m, &h), QP_ECLOSED);
    CU_ASSERT(qp_conn_pending(c));
    CU_ASSERT_EQUAL(qp_conn_recv_nowait(c, &m, &h), QP_ECLOSED);
    CU_ASSERT(strstr(qp_conn_errstr(c), "closed") != NULL);
    qp_conn_close(c);
    close(p.lfd);
    unlink(path);
}

/* A connection to a peer of this test on a fresh unix socket. */
static qp_conn *open_peer(peer *p, char *path, size_t pathlen, int timeout_ms)
{
    char addr[96], err[256];
    snprintf(path, pathlen, "/tmp/qpeach-test-conn-err-%d.sock", (int)getpid());
    snprintf(addr, sizeof addr, "unix:%s", path);
    unlink(path);
    p->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    p->fd = -1;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    if (bind(p->lfd, (struct sockaddr *)&sa, sizeof sa) || listen(p->lfd, 1)) return NULL;
    pthread_t th;
    pthread_create(&th, NULL, accept_one, p);
    qp_conn_opts o = { .timeout_ms = timeout_ms };
    qp_conn *c = NULL;
    int rc = qp_conn_open(addr, &o, &c, err, sizeof err);
    pthread_join(th, NULL);
    return rc == 0 && p->fd >= 0 ? c : NULL;
}

static void close_peer(peer *p, const char *path)
{
    if (p->fd >= 0) close(p->fd);
    close(p->lfd);
    unlink(path);
}

static void test_error_codes_stay(void)
{
    char path[64];
    peer p;
    qp_conn *c = open_peer(&p, path, sizeof path, 300);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(qp_conn_err(c), 0);
    CU_ASSERT_STRING_EQUAL(qp_conn_errstr(c), "");

    /* A value the encoder refuses (a list with a missing item): nothing
     * is sent, the code says why, and the connection stays usable. */
    qp_value *bad = qp_vector(QP_LIST, 1);
    CU_ASSERT_PTR_NULL(qp_conn_call(c, bad));
    CU_ASSERT_EQUAL(qp_conn_err(c), QP_ETYPE);
    CU_ASSERT(strstr(qp_conn_errstr(c), "encode") != NULL);
    CU_ASSERT_FALSE(qp_conn_broken(c));
    qp_unref(bad);

    /* The peer never answers: the call times out with QP_ETIMEOUT, and
     * the connection is broken (a late reply would be misread). */
    qp_value *x = qp_long(7);
    CU_ASSERT_PTR_NULL(qp_conn_call(c, x));
    CU_ASSERT_EQUAL(qp_conn_err(c), QP_ETIMEOUT);
    CU_ASSERT(strstr(qp_conn_errstr(c), "timed out") != NULL);
    CU_ASSERT(qp_conn_broken(c));
    /* Later calls fail at once with the same cause. */
    CU_ASSERT_PTR_NULL(qp_conn_call(c, x));
    CU_ASSERT_EQUAL(qp_conn_err(c), QP_ETIMEOUT);
    CU_ASSERT(strstr(qp_conn_errstr(c), "timed out") != NULL);
    qp_conn_close(c);
    close_peer(&p, path);

    /* The peer closes during a call: QP_ECLOSED and its text. */
    c = open_peer(&p, path, sizeof path, 5000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    shutdown(p.fd, SHUT_RDWR);
    CU_ASSERT_PTR_NULL(qp_conn_call(c, x));
    int code = qp_conn_err(c);
    CU_ASSERT(code == QP_ECLOSED || code == -ECONNRESET || code == -EPIPE);
    CU_ASSERT(qp_conn_errstr(c)[0] != 0);
    CU_ASSERT(qp_conn_broken(c));
    int mt = 0;
    qp_value *v = NULL;
    CU_ASSERT_EQUAL(qp_conn_recv(c, &v, &mt, -1), code);
    CU_ASSERT_EQUAL(qp_conn_send(c, x, QP_MSG_ASYNC), code);
    CU_ASSERT_EQUAL(qp_conn_err(c), code);
    qp_unref(x);
    qp_conn_close(c);
    close_peer(&p, path);
}

/* A field of the calling process's thread tid from /proc: its state
 * letter (field 'S' of stat) or, with key, a number line of status. */
static long thread_status(long tid, const char *key)
{
    char path[96], line[256];
    snprintf(path, sizeof path, "/proc/self/task/%ld/%s", tid, key ? "status" : "stat");
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long v = -1;
    if (!key) {
        char *rp = fgets(line, sizeof line, f) ? strrchr(line, ')') : NULL;
        v = rp && rp[1] ? rp[2] : -1;           /* "pid (comm) S ..." */
    } else {
        size_t kl = strlen(key);
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, key, kl) && line[kl] == ':') v = atol(line + kl + 1);
    }
    fclose(f);
    return v;
}

/* Polls pred(tid) for up to 5 s; true once it holds. */
static bool within_5s(bool (*pred)(long, long), long tid, long arg)
{
    for (int i = 0; i < 5000; i++) {
        if (pred(tid, arg)) return true;
        struct timespec ms = { 0, 1000000 };
        nanosleep(&ms, NULL);
    }
    return false;
}

static bool asleep(long tid, long unused) { (void)unused; return thread_status(tid, NULL) == 'S'; }
static bool woke_since(long tid, long before)
{
    return thread_status(tid, "voluntary_ctxt_switches") > before;
}

typedef struct caller {
    qp_conn *c;
    atomic_long tid;
    qp_value *got;
} caller;

static void *call_thread(void *data)
{
    caller *k = data;
    k->tid = (long)syscall(SYS_gettid);
    qp_value *x = qp_long(5);
    k->got = qp_conn_call(k->c, x);
    qp_unref(x);
    return NULL;
}

/* AF_UNIX wakes a thread blocked in read() on a socket when its peer takes
 * what that socket sent; poll() and epoll waiters ignore that wake-up. A
 * call must wait like the former, so that the peer taking the request
 * already starts waking the caller while the answer is being made. Nothing
 * else happens on this connection between the take and the answer. */
static void test_call_woken_when_request_taken(void)
{
    char path[64];
    peer p;
    qp_conn *c = open_peer(&p, path, sizeof path, 20000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    caller k = { .c = c };
    pthread_t th;
    pthread_create(&th, NULL, call_thread, &k);
    struct pollfd pf = { .fd = p.fd, .events = POLLIN };
    CU_ASSERT_EQUAL_FATAL(poll(&pf, 1, 5000), 1);          /* the request is here */
    while (!k.tid) sched_yield();
    CU_ASSERT_FATAL(within_5s(asleep, k.tid, 0));          /* the caller waits */
    long before = thread_status(k.tid, "voluntary_ctxt_switches");
    uint8_t req[256];
    ssize_t n = read(p.fd, req, sizeof req);                /* take it, answer nothing yet */
    CU_ASSERT(n > 8 && n == (ssize_t)req[4]);
    CU_ASSERT(within_5s(woke_since, k.tid, before));
    uint8_t *b = NULL;
    size_t len = 0;
    add_response(&b, &len, 55);
    write_all(p.fd, b, len);
    free(b);
    pthread_join(th, NULL);
    CU_ASSERT(k.got && k.got->type == -QP_LONG && k.got->j == 55);
    qp_unref(k.got);
    qp_conn_close(c);
    close_peer(&p, path);
}

int main(void)
{
    static const qp_test tests[] = {
        {"pending and non-blocking receive", test_pending_and_nowait},
        {"errors stay on the connection", test_error_codes_stay},
        {"a call is woken when its request is taken", test_call_woken_when_request_taken},
    };
    int fails = qp_test_run("conn", NULL, NULL, tests, QP_NTESTS(tests));
    return fails;
}
