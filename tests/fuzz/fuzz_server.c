/* fuzz_server.c - libFuzzer target: a real qp_server's per-connection input
 * path (q handshake, reader, decoder, dispatch, the q expression parser and
 * the `.qp` built-ins), driven in-process through a unix socket.
 *
 * One server (no password file, one secondary thread) runs on a thread of
 * this process for the whole campaign, so ASan/UBSan see every server-side
 * fault. Each input is one connection: the bytes are sent (after a valid
 * handshake when the first byte is odd, so most of the time goes past the
 * handshake), the write side is shut, and everything the server answers is
 * read until it closes. Invariants (abort on violation):
 *   - the server closes the connection within 10 s of the input ending
 *     (no hang, no leaked connection);
 *   - after a valid handshake the server answers one capability byte, then
 *     only whole, well-formed response messages (type 2) that decode.
 */
#include "qpeach/ipc.h"
#include "qpeach/server.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static qp_server *srv;
static char path[108];

static void *loop(void *p)
{
    (void)p;
    qp_server_run(srv);
    return NULL;
}

static void stop_server(void)
{
    qp_server_stop(srv);
}

static void start(void)
{
    snprintf(path, sizeof path, "/tmp/qpfuzz-%d.sock", (int)getpid());
    unlink(path);
    char listen[128], err[256];
    snprintf(listen, sizeof listen, "unix:%s", path);
    /* 64 MB: a length claim beyond it is refused like one beyond memory
     * (under ASan, a 4 GB buffer costs seconds of shadow-memory writes) */
    qp_server_opts o = { .listen = listen, .secondary = 1, .handshake_ms = 10000,
                         .max_msg = 64 << 20 };
    if (qp_server_new(&o, &srv, err, sizeof err)) {
        fprintf(stderr, "fuzz_server: %s\n", err);
        abort();
    }
    pthread_t t;
    if (pthread_create(&t, NULL, loop, NULL)) abort();
    pthread_detach(t);
    atexit(stop_server);
}

static int dial(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) abort();
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    memcpy(a.sun_path, path, strlen(path) + 1);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) abort();
    return fd;
}

/* Sends all of b, reading (into out) whatever the server answers meanwhile
 * so neither side blocks on a full buffer. */
static void exchange(int fd, const uint8_t *b, size_t n, uint8_t **out, size_t *outlen, size_t *cap)
{
    size_t sent = 0;
    bool shut = false;
    for (;;) {
        if (sent == n && !shut) {
            shutdown(fd, SHUT_WR);
            shut = true;
        }
        struct pollfd p = { .fd = fd, .events = POLLIN | (sent < n ? POLLOUT : 0) };
        int r = poll(&p, 1, 10000);
        if (r == 0) {
            fprintf(stderr, "fuzz_server: server neither read nor closed for 10 s\n");
            abort();
        }
        if (r < 0) {
            if (errno == EINTR) continue;
            abort();
        }
        if (p.revents & POLLOUT) {
            ssize_t w = send(fd, b + sent, n - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w > 0) sent += (size_t)w;
            else if (w < 0 && errno != EAGAIN) sent = n;   /* server closed: stop sending */
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            if (*cap - *outlen < 65536) {
                *cap = *cap * 2 + 65536;
                if (!(*out = realloc(*out, *cap))) abort();
            }
            ssize_t k = recv(fd, *out + *outlen, *cap - *outlen, MSG_DONTWAIT);
            if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) return;
            if (k > 0) *outlen += (size_t)k;
        }
    }
}

static void check_answers(const uint8_t *a, size_t n)
{
    if (n == 0) return;                       /* refused or closed early */
    if (a[0] > 6) abort();                    /* the capability byte */
    qp_reader *r = qp_reader_new(NULL);
    if (!r) return;
    if (qp_reader_feed(r, a + 1, n - 1)) {
        fprintf(stderr, "fuzz_server: server sent a bad stream: %s\n", qp_reader_errstr(r));
        abort();
    }
    qp_buf *m;
    qp_ipc_header h;
    while (qp_reader_next(r, &m, &h) == 1) {
        if (h.msgtype != QP_MSG_RESPONSE) abort();
        qp_value *x = NULL;
        int rc = qp_ipc_decode_msg(m, NULL, &x);
        if (rc && rc != QP_ENOMEM) {
            fprintf(stderr, "fuzz_server: server sent an undecodable response: %s\n",
                    x ? x->s : "?");
            abort();
        }
        qp_unref(x);
        qp_buf_unref(m);
    }
    qp_reader_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t *out;
    static size_t cap;
    if (!srv) start();
    if (size == 0) return 0;
    bool login = data[0] & 1;
    static const uint8_t hs[] = "fuzz:pw\3";   /* with its NUL: 9 bytes */
    size_t n = (login ? sizeof hs : 0) + size - 1;
    uint8_t *b = malloc(n + 1);
    if (!b) return 0;
    if (login) memcpy(b, hs, sizeof hs);
    memcpy(b + (login ? sizeof hs : 0), data + 1, size - 1);
    size_t outlen = 0;
    int fd = dial();
    exchange(fd, b, n, &out, &outlen, &cap);
    close(fd);
    free(b);
    if (login) check_answers(out, outlen);
    return 0;
}
