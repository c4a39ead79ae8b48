/* bench_latency.c - round-trip latency of `.qp.echo` on loopback against a
 * bare TCP ping-pong of the same byte sizes, measured in the same run.
 *
 * The server is a real qp_server (its loop on a thread of this process);
 * the client is qp_conn, so the echo side pays for encode, decode, the
 * server's parse and dispatch, and both event paths. The baseline is a
 * blocking echo thread that reads the request's bytes and writes the
 * response's bytes back, with TCP_NODELAY like ours. The two alternate in
 * blocks so background load hits both alike. Target (issue 3): echo p50
 * at most 1.3x TCP p50.
 *
 * usage: bench_latency [ROUNDS]   (default 20000 round trips per case)
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "qpeach/conn.h"
#include "qpeach/ipc.h"
#include "qpeach/server.h"

#define BLOCK 500

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + ts.tv_nsec * 1e-3;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---- the bare TCP echo ---- */

typedef struct tcp_peer {
    int lfd;
    size_t req, resp;      /* bytes per request / response */
} tcp_peer;

static int io_all(int fd, void *p, size_t n, bool wr)
{
    char *c = p;
    while (n) {
        ssize_t r = wr ? write(fd, c, n) : read(fd, c, n);
        if (r <= 0) return -1;
        c += r;
        n -= (size_t)r;
    }
    return 0;
}

static void *tcp_serve(void *arg)
{
    tcp_peer *t = arg;
    int fd = accept(t->lfd, NULL, NULL);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char *buf = calloc(1, t->req > t->resp ? t->req : t->resp);
    while (io_all(fd, buf, t->req, false) == 0 && io_all(fd, buf, t->resp, true) == 0) {}
    free(buf);
    close(fd);
    return NULL;
}

static void *loop_main(void *s)
{
    qp_server_run(s);
    return NULL;
}

static void report(const char *what, double *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, cmp);
    printf("  %-22s p50 %7.1f us   p99 %7.1f us\n", what, t[n / 2], t[n * 99 / 100]);
}

/* One case: echo of x against TCP of the same sizes. Returns p50 ratio. */
static double run_case(qp_server *s, const char *label, qp_value *x, int rounds)
{
    char err[256];
    qp_value *msg = qp_list(2, qp_symbol(".qp.echo"), qp_ref(x));
    uint8_t *enc = NULL, *renc = NULL;
    size_t req = 0, resp = 0;
    qp_ipc_encode(msg, QP_MSG_SYNC, &enc, &req);
    qp_ipc_encode(x, QP_MSG_RESPONSE, &renc, &resp);
    free(enc);
    free(renc);

    tcp_peer tp = { .req = req, .resp = resp };
    tp.lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof sa;
    bind(tp.lfd, (struct sockaddr *)&sa, sizeof sa);
    listen(tp.lfd, 1);
    getsockname(tp.lfd, (struct sockaddr *)&sa, &sl);
    pthread_t th;
    pthread_create(&th, NULL, tcp_serve, &tp);
    int cfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    connect(cfd, (struct sockaddr *)&sa, sizeof sa);
    char *buf = calloc(1, req > resp ? req : resp);

    qp_conn *c = NULL;
    if (qp_conn_open(qp_server_address(s), NULL, &c, err, sizeof err)) {
        fprintf(stderr, "bench_latency: %s\n", err);
        exit(1);
    }
    double *te = malloc(sizeof(double) * (size_t)rounds), *tt = malloc(sizeof(double) * (size_t)rounds);
    int ne = 0, nt = 0;
    for (int w = 0; w < 1000; w++) {       /* warm up both paths */
        qp_unref(qp_conn_call(c, msg));
        io_all(cfd, buf, req, true);
        io_all(cfd, buf, resp, false);
    }
    while (ne < rounds) {
        for (int i = 0; i < BLOCK && nt < rounds; i++) {
            double t0 = now_us();
            io_all(cfd, buf, req, true);
            io_all(cfd, buf, resp, false);
            tt[nt++] = now_us() - t0;
        }
        for (int i = 0; i < BLOCK && ne < rounds; i++) {
            double t0 = now_us();
            qp_value *r = qp_conn_call(c, msg);
            te[ne++] = now_us() - t0;
            if (!r || r->type == QP_ERROR) {
                fprintf(stderr, "bench_latency: echo failed: %s\n", r ? r->s : qp_conn_errstr(c));
                exit(1);
            }
            qp_unref(r);
        }
    }
    printf("%s: request %zu bytes, response %zu bytes, %d round trips each\n", label, req, resp, rounds);
    report("bare TCP ping-pong", tt, nt);
    report(".qp.echo (qp_conn)", te, ne);
    double ratio = te[ne / 2] / tt[nt / 2];
    printf("  ratio echo/TCP p50: %.2fx (target <= 1.3x)\n\n", ratio);
    qp_conn_close(c);
    close(cfd);
    pthread_join(th, NULL);
    close(tp.lfd);
    free(buf);
    free(te);
    free(tt);
    qp_unref(msg);
    return ratio;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 20000;
    if (rounds < 100) rounds = 100;
    qp_server_opts o = { .listen = "0", .secondary = 1 };
    qp_server *s = NULL;
    char err[256];
    if (qp_server_new(&o, &s, err, sizeof err)) {
        fprintf(stderr, "bench_latency: %s\n", err);
        return 1;
    }
    pthread_t loop;
    pthread_create(&loop, NULL, loop_main, s);

    qp_value *small = qp_long(42);
    qp_value *medium = qp_vector(QP_FLOAT, 1000);
    for (int i = 0; i < 1000; i++) qp_F(medium)[i] = i * 0.5;
    run_case(s, "small (a long atom)", small, rounds);
    run_case(s, "medium (1000 floats)", medium, rounds);
    qp_unref(small);
    qp_unref(medium);

    qp_server_stop(s);
    pthread_join(loop, NULL);
    qp_server_free(s);
    return 0;
}
