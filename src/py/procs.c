/* src/py/procs.c - q's `-s -N`: worker processes of our own for peach.
 *
 * The server re-executes itself N times as `qpeach serve` on unix sockets
 * (/tmp/qpeach-<pid>-w<i>.sock), each pinned to one core (a topo.h plan
 * of N workers x 1 core over the cores this server is bound to, so --pin
 * or a scheduler's binding holds for them too; the child binds itself
 * before exec, so every thread it starts inherits it), with the same
 * --load tables and timeout. Functions and libraries follow as they are
 * defined: qpfns.c forwards .qp.import/.qp.def/.qp.load/.qp.timeout.
 *
 * Children never outlive the server: PR_SET_PDEATHSIG (SIGTERM) covers a
 * crash of the parent, and a pipe whose write end only the parent holds
 * covers the rest (the child watches for EOF on a thread and exits).
 *
 * .qp.peach hands items out dynamically: one dispatcher thread per worker
 * takes the next item as soon as its worker answered the previous one.
 */
#include "pyint.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qpeach/conn.h"
#include "qpeach/topo.h"

typedef struct worker {
    pid_t pid;
    char addr[128];        /* "unix:/tmp/qpeach-..." */
    qp_conn *c;            /* opened at first use */
    bool dead;
} worker;

static worker *workers;
static int nworkers;
static int pipe_w = -1;    /* the parent's end: closing it ends the workers */

int qp__procs_count(void) { return nworkers; }

/* ---- start ---- */

/* N workers x 1 core inside this process's cores (*plan NULL when the
 * topology cannot be read: the children then run unpinned). */
static void plan_workers(int n, qp_topo **topo, qp_plan **plan)
{
    *topo = NULL;
    *plan = NULL;
    if (qp_topo_load(NULL, topo)) return;
    qp_place own;
    int rc = qp_topo_bound_cores(*topo, &own);
    if (qp_topo_plan_in(*topo, rc ? NULL : &own, n, 1, plan)) *plan = NULL;
    qp_place_clear(&own);
}

int qp__procs_start(const qp_py_opts *o, char *err, size_t errlen)
{
    int n = o->procs, p[2] = {-1, -1};
    char exe[4096];
    const char *self = o->exe;
    if (!self) {
        ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (len <= 0) { snprintf(err, errlen, "cannot find our own binary"); return QP_EIO; }
        exe[len] = 0;
        self = exe;
    }
    workers = calloc((size_t)n, sizeof *workers);
    qp_topo *topo = NULL;
    qp_plan *plan = NULL;
    /* argv: exe serve -p ADDR -s 0 --parent-fd FD --timeout MS (--load X)* NULL */
    int argc = 10 + 2 * o->nloads;
    char **argv = calloc((size_t)argc + 1, sizeof *argv);
    char fdbuf[16], msbuf[16], listen[128];
    if (!workers || !argv) goto nomem;
    if (pipe2(p, O_CLOEXEC) < 0) { snprintf(err, errlen, "pipe: %s", strerror(errno)); goto fail; }
    plan_workers(n, &topo, &plan);
    snprintf(fdbuf, sizeof fdbuf, "%d", p[0]);
    snprintf(msbuf, sizeof msbuf, "%d", o->timeout_ms);
    int a = 0;
    argv[a++] = (char *)self; argv[a++] = "serve"; argv[a++] = "-p"; argv[a++] = listen;
    argv[a++] = "-s"; argv[a++] = "0"; argv[a++] = "--parent-fd"; argv[a++] = fdbuf;
    argv[a++] = "--timeout"; argv[a++] = msbuf;
    for (int i = 0; i < o->nloads; i++) { argv[a++] = "--load"; argv[a++] = (char *)o->loads[i]; }
    argv[a] = NULL;
    pid_t parent = getpid();
    for (int i = 0; i < n; i++) {
        worker *w = &workers[i];
        snprintf(w->addr, sizeof w->addr, "unix:/tmp/qpeach-%d-w%d.sock", (int)parent, i);
        snprintf(listen, sizeof listen, "%s", w->addr);
        unlink(w->addr + 5);
        pid_t pid = fork();
        if (pid < 0) { snprintf(err, errlen, "fork: %s", strerror(errno)); goto fail; }
        if (pid == 0) {
            /* Async-signal-safe calls until exec, but for the binding: it
             * allocates, which glibc's fork keeps safe. This child has one
             * thread, so binding the thread binds the process, without
             * hwloc's walk over /proc/self/task. */
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (getppid() != parent) _exit(1);
            if (plan) qp_topo_bind(topo, &plan->worker[i], true);
            fcntl(p[0], F_SETFD, 0);    /* the read end survives exec */
            execv(self, argv);
            _exit(127);
        }
        w->pid = pid;
        nworkers++;
    }
    close(p[0]);
    pipe_w = p[1];
    free(argv);
    qp_plan_free(plan);
    qp_topo_free(topo);
    atexit(qp__procs_stop);
    return 0;
nomem:
    snprintf(err, errlen, "out of memory");
fail:
    if (p[0] >= 0) close(p[0]);
    if (p[1] >= 0) close(p[1]);
    free(argv);
    qp_plan_free(plan);
    qp_topo_free(topo);
    qp__procs_stop();
    return QP_EIO;
}

void qp__procs_stop(void)
{
    if (pipe_w >= 0) { close(pipe_w); pipe_w = -1; }
    for (int i = 0; i < nworkers; i++) {
        worker *w = &workers[i];
        qp_conn_close(w->c);
        w->c = NULL;
        if (w->pid > 0) {
            kill(w->pid, SIGTERM);
            for (int t = 0; t < 200 && waitpid(w->pid, NULL, WNOHANG) == 0; t++) usleep(10000);
            if (waitpid(w->pid, NULL, WNOHANG) == 0) { kill(w->pid, SIGKILL); waitpid(w->pid, NULL, 0); }
            w->pid = 0;
        }
        unlink(w->addr + 5);
    }
    free(workers);
    workers = NULL;
    nworkers = 0;
}

/* ---- connections ---- */

/* Opens w's connection, waiting up to 30 s for the child to listen. */
static qp_value *connect_worker(worker *w, int i)
{
    if (w->c) return NULL;
    if (w->dead) return qp_error("qp.peach: worker process %d is gone", i);
    char err[256] = "";
    for (int t = 0; t < 600; t++) {
        if (qp_conn_open(w->addr, NULL, &w->c, err, sizeof err) == 0) return NULL;
        if (waitpid(w->pid, NULL, WNOHANG) == w->pid) { w->pid = 0; break; }
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
    }
    w->dead = true;
    return qp_error("qp.peach: worker process %d did not start: %s", i, err);
}

static qp_value *worker_call(worker *w, int i, const qp_value *msg)
{
    qp_value *e = connect_worker(w, i);
    if (e) return e;
    qp_value *r = qp_conn_call(w->c, msg);
    if (!r) {
        e = qp_error("qp.peach: worker process %d failed: %s", i, qp_conn_errstr(w->c));
        qp_conn_close(w->c);
        w->c = NULL;
        w->dead = true;
        return e;
    }
    return r;
}

qp_value *qp__procs_broadcast(const qp_value *msg)
{
    for (int i = 0; i < nworkers; i++) {
        qp_value *r = worker_call(&workers[i], i, msg);
        if (r && qp_is_error(r)) return r;
        qp_unref(r);
    }
    return NULL;
}

/* ---- peach ---- */

typedef struct pjob {
    const char *fn;
    const qp_value *items;
    qp_value **out;
    atomic_int_fast64_t next;
    int64_t n;
} pjob;

typedef struct parg { pjob *j; int w; } parg;

static void *dispatch_main(void *p)
{
    parg *a = p;
    pjob *j = a->j;
    worker *w = &workers[a->w];
    int64_t i;
    while (!w->dead && (i = atomic_fetch_add(&j->next, 1)) < j->n) {
        qp_value *it = qp_item(j->items, i);
        qp_value *msg = it ? qp_list(3, qp_symbol(".qp.call"), qp_symbol(j->fn), qp_list(1, it)) : NULL;
        j->out[i] = msg ? worker_call(w, a->w, msg) : NULL;
        qp_unref(msg);
    }
    return NULL;
}

qp_value *qp__procs_peach(const char *fn, const qp_value *items)
{
    int64_t n = items->v.n;
    qp_value *out = qp_vector(QP_LIST, n);
    pthread_t *th = calloc((size_t)nworkers, sizeof *th);
    parg *args = calloc((size_t)nworkers, sizeof *args);
    if (!out || !th || !args) { free(th); free(args); qp_unref(out); return NULL; }
    pjob j = {.fn = fn, .items = items, .out = qp_K(out), .n = n};
    atomic_init(&j.next, 0);
    /* The dispatchers only wait on sockets: let other Python threads run. */
    PyThreadState *ts = PyEval_SaveThread();
    int started = 0;
    for (int i = 0; i < nworkers; i++) {
        args[i] = (parg){&j, i};
        if (pthread_create(&th[started], NULL, dispatch_main, &args[i]) == 0) started++;
    }
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    PyEval_RestoreThread(ts);
    free(th);
    free(args);
    for (int64_t i = 0; i < n; i++) {
        if (!qp_K(out)[i]) {   /* never run: every worker is gone */
            qp_unref(out);
            return qp_error("qp.peach: no worker process left");
        }
        if (qp_is_error(qp_K(out)[i])) {
            qp_value *e = qp_ref(qp_K(out)[i]);
            qp_unref(out);
            return e;
        }
    }
    return qp__collapse(out);
}

/* ---- worker side ---- */

typedef struct watch { int fd; char path[256]; } watch;

static void *watch_main(void *p)
{
    watch w = *(watch *)p;
    free(p);
    char b;
    while (read(w.fd, &b, 1) < 0 && errno == EINTR) {}
    /* EOF: the parent is gone. Leave at once: the main thread may be deep
     * in a Python call that would keep a clean stop waiting. */
    if (w.path[0]) unlink(w.path);
    _exit(0);
    return NULL;
}

int qp__procs_watch_parent(int fd, qp_server *s)
{
    watch *w = malloc(sizeof *w);
    if (!w) return QP_ENOMEM;
    /* the address is copied now: the server may be freed before EOF */
    const char *addr = qp_server_address(s);
    w->fd = fd;
    w->path[0] = 0;
    if (addr && !strncmp(addr, "unix:", 5)) snprintf(w->path, sizeof w->path, "%s", addr + 5);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    pthread_t t;
    if (pthread_create(&t, NULL, watch_main, w) != 0) { free(w); return QP_EIO; }
    pthread_detach(t);
    return 0;
}
