/* src/py/procs.c - q's `-s -N`: worker processes of our own for peach.
 *
 * The server re-executes itself N times as `qpeach serve` on unix sockets
 * (/tmp/qpeach-<pid>-w<i>.sock), each pinned to one core (a topo.h plan
 * of N workers x 1 core over the cores this server is bound to, so --pin
 * or a scheduler's binding holds for them too; the child sets its CPU
 * affinity before exec, so every thread it starts inherits it), with the
 * same --load tables, --db database and timeout. What clients tell the server later
 * follows: qpfns.c forwards .qp.import/.qp.def/.qp.load/.qp.set/
 * .qp.timeout through qp__procs_broadcast, which also keeps them in a
 * history (the latest .qp.def/.qp.set/.qp.load per name, the latest
 * timeout, every import) to replay to a restarted worker; and a forced
 * .qp.reload[] of the db, which is not replayed (a new worker mounts the
 * db as it is).
 *
 * Children never outlive the server: PR_SET_PDEATHSIG (SIGTERM) covers a
 * crash of the parent, and a pipe whose write end only the parent holds
 * covers the rest (the child watches for EOF on a thread and exits).
 *
 * .qp.peach hands items out dynamically: one dispatcher thread per worker
 * takes the next item as soon as its worker answered the previous one.
 * A dispatcher waits for its answer in 50 ms polls, so that a peach whose
 * client left (qp_server_cancelled) stops within one: it closes its
 * connection, and the worker process cancels the item itself.
 *
 * A worker that dies is restarted: same core, argv (--load, --db) and history.
 * During peach its in-flight item goes back to a queue that every
 * dispatcher (its own too, once the worker is back) takes from first; an
 * item that has killed its worker QP_PEACH_TRIES times ends the call with
 * an error naming the item and how the process ended. Restarts are done
 * by the thread running peach or the broadcast (the server's Python
 * thread), never by a dispatcher: PR_SET_PDEATHSIG fires when the thread
 * that forked ends, and dispatchers end with each peach. A worker found
 * dead between calls is restarted at the next peach or broadcast.
 */
#include "py_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qpeach/conn.h"
#include "qpeach/topo.h"

/* Deaths of worker processes one peach item may cause before the call
 * gives up on it. */
#define QP_PEACH_TRIES 3

typedef struct worker {
    pid_t pid;             /* 0: no process (reaped, or a restart failed) */
    char addr[128];        /* "unix:/tmp/qpeach-..." */
    qp_conn *c;            /* opened at first use */
    bool pinned;
    cpu_set_t cpus;        /* its core's PUs, when pinned */
    bool want;             /* peach: its dispatcher waits for a restart */
    bool down;             /* peach: a restart failed; no more items */
    char cause[160];       /* how its last process ended */
} worker;

static worker *workers;
static int nworkers;
static int pipe_r = -1;    /* the children's end, kept to start new ones */
static int pipe_w = -1;    /* the parent's end: closing it ends the workers */
static char **wargv;       /* the workers' argv; [3] is set per worker */
static char *wexe;
static qp_value **hist;    /* messages to replay to a restarted worker */
static int nhist, caphist;

int qp__procs_count(void) { return nworkers; }

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

/* ---- start ---- */

/* "0-1,4" (OS PU indices, as qp_place_pus prints) into *set; false when
 * there is nothing to bind to. */
static bool parse_pus(const char *s, cpu_set_t *set)
{
    CPU_ZERO(set);
    int n = 0;
    while (s && *s >= '0' && *s <= '9') {
        char *end;
        long lo = strtol(s, &end, 10), hi = lo;
        if (*end == '-') hi = strtol(end + 1, &end, 10);
        for (long p = lo; p <= hi && p < CPU_SETSIZE; p++, n++) CPU_SET((int)p, set);
        s = *end == ',' ? end + 1 : NULL;
    }
    return n > 0;
}

/* N workers x 1 core inside this process's cores, as CPU sets (workers
 * unpinned when the topology cannot be read). */
static void plan_workers(int n)
{
    qp_topo *topo = NULL;
    qp_plan *plan = NULL;
    if (qp_topo_load(NULL, &topo)) return;
    qp_place own;
    int rc = qp_topo_bound_cores(topo, &own);
    if (qp_topo_plan_in(topo, rc ? NULL : &own, n, 1, &plan) == 0) {
        for (int i = 0; i < n; i++) {
            char *pus = qp_place_pus(topo, &plan->worker[i]);
            workers[i].pinned = parse_pus(pus, &workers[i].cpus);
            free(pus);
        }
    }
    qp_place_clear(&own);
    qp_plan_free(plan);
    qp_topo_free(topo);
}

/* Forks and execs worker i. Only the thread that lives as long as the
 * server may call this (see the top of the file). */
static int spawn(int i, char *err, size_t errlen)
{
    worker *w = &workers[i];
    wargv[3] = w->addr;
    unlink(w->addr + 5);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) { snprintf(err, errlen, "fork: %s", strerror(errno)); return QP_EIO; }
    if (pid == 0) {
        /* Async-signal-safe calls only until exec: the parent has threads. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) _exit(1);
        if (w->pinned) sched_setaffinity(0, sizeof w->cpus, &w->cpus);
        fcntl(pipe_r, F_SETFD, 0);    /* the read end survives exec */
        execv(wexe, wargv);
        _exit(127);
    }
    w->pid = pid;
    w->cause[0] = 0;
    return 0;
}

int qp__procs_start(const qp_py_opts *o, char *err, size_t errlen)
{
    int n = o->procs, p[2];
    char exe[4096];
    const char *self = o->exe;
    if (!self) {
        ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (len <= 0) { snprintf(err, errlen, "cannot find our own binary"); return QP_EIO; }
        exe[len] = 0;
        self = exe;
    }
    workers = calloc((size_t)n, sizeof *workers);
    /* argv: exe serve -p ADDR -s 0 --parent-fd FD --timeout MS (--load X)*
     * [--db PATH] NULL: the workers mount the same db (read lazily there
     * too: they share the page cache of its mapped files) */
    int argc = 12 + 2 * o->nloads;
    wargv = calloc((size_t)argc + 1, sizeof *wargv);
    wexe = strdup(self);
    if (!workers || !wargv || !wexe) { snprintf(err, errlen, "out of memory"); goto fail; }
    if (pipe2(p, O_CLOEXEC) < 0) { snprintf(err, errlen, "pipe: %s", strerror(errno)); goto fail; }
    pipe_r = p[0];
    pipe_w = p[1];
    nworkers = n;
    pid_t parent = getpid();
    for (int i = 0; i < n; i++)
        snprintf(workers[i].addr, sizeof workers[i].addr, "unix:/tmp/qpeach-%d-w%d.sock", (int)parent, i);
    plan_workers(n);
    static char fdbuf[16], msbuf[16];
    snprintf(fdbuf, sizeof fdbuf, "%d", pipe_r);
    snprintf(msbuf, sizeof msbuf, "%d", o->timeout_ms);
    int a = 0;
    wargv[a++] = wexe; wargv[a++] = "serve"; wargv[a++] = "-p"; wargv[a++] = NULL;
    wargv[a++] = "-s"; wargv[a++] = "0"; wargv[a++] = "--parent-fd"; wargv[a++] = fdbuf;
    wargv[a++] = "--timeout"; wargv[a++] = msbuf;
    for (int i = 0; i < o->nloads; i++) {
        wargv[a++] = "--load";
        if (!(wargv[a++] = strdup(o->loads[i]))) { snprintf(err, errlen, "out of memory"); goto fail; }
    }
    if (o->db) {   /* strdup'd like the --load values, freed with them */
        wargv[a++] = "--db";
        if (!(wargv[a++] = strdup(o->db))) { snprintf(err, errlen, "out of memory"); goto fail; }
    }
    for (int i = 0; i < n; i++)
        if (spawn(i, err, errlen)) goto fail;
    atexit(qp__procs_stop);
    return 0;
fail:
    qp__procs_stop();   /* closes the pipe, stops the workers started */
    return QP_EIO;
}

void qp__procs_stop(void)
{
    if (pipe_w >= 0) { close(pipe_w); pipe_w = -1; }
    if (pipe_r >= 0) { close(pipe_r); pipe_r = -1; }
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
    if (wargv) {
        for (int a = 11; wargv[a - 1] && wargv[a]; a += 2) free(wargv[a]);   /* the --load and --db values */
        free(wargv);
        wargv = NULL;
    }
    free(wexe);
    wexe = NULL;
    for (int i = 0; i < nhist; i++) qp_unref(hist[i]);
    free(hist);
    hist = NULL;
    nhist = caphist = 0;
}

/* ---- processes ---- */

static void describe(int st, char *buf, size_t n)
{
    if (WIFSIGNALED(st)) snprintf(buf, n, "killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else if (WIFEXITED(st)) snprintf(buf, n, "exited with status %d", WEXITSTATUS(st));
    else snprintf(buf, n, "ended (wait status %#x)", st);
}

/* Closes w's connection and waits for its process, killing it if it does
 * not end within 2 s (a broken connection to a live worker: it cannot be
 * trusted any more). Records how it ended in w->cause. Any thread. */
static void reap(worker *w)
{
    qp_conn_close(w->c);
    w->c = NULL;
    if (w->pid <= 0) return;
    /* The socket closes before the process is a zombie: give it time to
     * finish dying so the cause is its own, not our SIGKILL. */
    int st = 0;
    pid_t r = 0;
    for (int t = 0; t < 200 && (r = waitpid(w->pid, &st, WNOHANG)) == 0; t++) sleep_ms(10);
    if (r == 0) { kill(w->pid, SIGKILL); r = waitpid(w->pid, &st, 0); }
    if (r == w->pid) describe(st, w->cause, sizeof w->cause);
    else if (!w->cause[0]) snprintf(w->cause, sizeof w->cause, "lost (%s)", strerror(errno));
    w->pid = 0;
}

/* Opens w's connection, waiting up to 30 s for the child to listen.
 * Returns NULL, or an error value. */
static qp_value *connect_worker(worker *w, int i)
{
    if (w->c) return NULL;
    if (w->pid <= 0) return qp_error("qp.peach: worker process %d is gone: %s", i, w->cause);
    char err[256] = "";
    for (int t = 0; t < 600; t++) {
        if (qp_conn_open(w->addr, NULL, &w->c, err, sizeof err) == 0) return NULL;
        int st;
        if (waitpid(w->pid, &st, WNOHANG) == w->pid) {
            w->pid = 0;
            describe(st, w->cause, sizeof w->cause);
            return qp_error("qp.peach: worker process %d did not start: it %s", i, w->cause);
        }
        sleep_ms(50);
    }
    reap(w);
    return qp_error("qp.peach: worker process %d did not start: %s", i, err);
}

/* Worker i's connection failed: the process is reaped, *e says why (a
 * new error value). Returns NULL. */
static qp_value *worker_failed(int i, qp_value **e)
{
    worker *w = &workers[i];
    char why[200];
    snprintf(why, sizeof why, "%s", qp_conn_errstr(w->c));
    reap(w);
    *e = qp_error("qp.peach: worker process %d failed: %s (it %s)", i, why, w->cause);
    return NULL;
}

/* msg on worker i: a new reference, or NULL when the connection failed
 * (*e then says why: an error value the caller owns). *sent (optional)
 * tells whether msg reached a worker that was up, i.e. whether a failure
 * is msg's doing rather than a start that failed. */
static qp_value *worker_call(int i, const qp_value *msg, qp_value **e, bool *sent)
{
    worker *w = &workers[i];
    if (sent) *sent = false;
    if ((*e = connect_worker(w, i))) return NULL;
    if (sent) *sent = true;
    qp_value *r = qp_conn_call(w->c, msg);
    return r ? r : worker_failed(i, e);
}

/* A new process for worker i, given the history. Main thread only.
 * Returns NULL, or an error value (the worker then has no process). */
static qp_value *restart(int i)
{
    worker *w = &workers[i];
    reap(w);
    char err[256];
    if (spawn(i, err, sizeof err)) return qp_error("qp.peach: cannot restart worker process %d: %s", i, err);
    for (int h = 0; h < nhist; h++) {
        qp_value *e = NULL, *r = worker_call(i, hist[h], &e, NULL);
        if (r && qp_is_error(r)) {
            e = qp_error("qp.peach: restarted worker process %d refused %s: %s", i,
                         qp_K(hist[h])[0]->s, r->s);
            reap(w);
        }
        qp_unref(r);
        if (e) return e;
    }
    return connect_worker(w, i);   /* no history yet: wait until it listens */
}

/* Restarts the workers whose process is gone (died since the last call,
 * or a restart failed). Main thread. Returns the last failure (new
 * reference) or NULL. */
static qp_value *revive(void)
{
    qp_value *last = NULL;
    for (int i = 0; i < nworkers; i++) {
        worker *w = &workers[i];
        int st;
        if (w->pid > 0 && waitpid(w->pid, &st, WNOHANG) == w->pid) {
            w->pid = 0;
            describe(st, w->cause, sizeof w->cause);
        }
        if (w->pid > 0) continue;
        qp_value *e = restart(i);
        if (e) { qp_unref(last); last = e; }
    }
    return last;
}

/* ---- history ---- */

/* What a later message of the same kind replaces: the function, and for
 * def/set/load the name it defines (an interned symbol). NULL key name:
 * nothing to replace (import) or only the function (timeout). */
static const char *hist_name(const qp_value *msg, bool *replaces)
{
    const char *fn = qp_K(msg)[0]->s;
    *replaces = true;
    if (!strcmp(fn, ".qp.timeout")) return NULL;
    if (strcmp(fn, ".qp.def") && strcmp(fn, ".qp.set") && strcmp(fn, ".qp.load") ) {
        *replaces = false;
        return NULL;
    }
    const char *name = msg->v.n > 1 ? qp_name_of(qp_K(msg)[1]) : NULL;
    if (!name) *replaces = false;
    return name;
}

static int record(const qp_value *msg)
{
    bool rep, rep2;
    const char *name = hist_name(msg, &rep);
    if (rep) {   /* drop the entry this one replaces: a loop of .qp.set keeps one */
        for (int h = 0; h < nhist; h++) {
            if (qp_K(hist[h])[0]->s != qp_K(msg)[0]->s || hist_name(hist[h], &rep2) != name) continue;
            qp_unref(hist[h]);
            memmove(&hist[h], &hist[h + 1], (size_t)(nhist - h - 1) * sizeof *hist);
            nhist--;
            break;
        }
    }
    if (nhist == caphist) {
        int cap = caphist ? 2 * caphist : 16;
        qp_value **m = realloc(hist, (size_t)cap * sizeof *m);
        if (!m) return QP_ENOMEM;
        hist = m;
        caphist = cap;
    }
    hist[nhist++] = qp_ref((qp_value *)msg);
    return 0;
}

qp_value *qp__procs_broadcast(const qp_value *msg, bool replay)
{
    /* a worker that cannot be brought back now gets msg with the history
     * at the next attempt */
    qp_unref(revive());
    for (int i = 0; i < nworkers; i++) {
        if (workers[i].pid <= 0) continue;
        qp_value *e = NULL, *r = worker_call(i, msg, &e, NULL);
        if (!r) {   /* died meanwhile: back with the history, then msg */
            qp_unref(e);
            if ((e = restart(i))) { qp_unref(e); continue; }
            r = worker_call(i, msg, &e, NULL);
            if (!r) { qp_unref(e); continue; }
        }
        if (qp_is_error(r)) return r;
        qp_unref(r);
    }
    return replay && record(msg) ? qp_error("wsfull") : NULL;
}

/* ---- peach ---- */

/* One .qp.peach spread over the worker processes. */
typedef struct peachrun {
    qp_server *s;          /* whose call it is (cancellation) */
    const char *fn;
    const qp_value *items;
    qp_value **out;
    int64_t n, next;
    int64_t *queue;        /* items back from a dead worker (<= nworkers) */
    int nqueue;
    uint8_t *deaths;       /* per item: worker processes it has killed */
    qp_value *fatal;       /* set: hand out no more items */
    int running;           /* dispatchers still going */
    pthread_mutex_t mu;
    pthread_cond_t cv;
} peachrun;

typedef struct parg { peachrun *j; int w; } parg;

static int64_t take(peachrun *j)
{
    int64_t i = -1;
    pthread_mutex_lock(&j->mu);
    if (j->fatal) i = -1;
    else if (j->nqueue) i = j->queue[--j->nqueue];
    else if (j->next < j->n) i = j->next++;
    pthread_mutex_unlock(&j->mu);
    return i;
}

/* msg on worker i for a peach item, as worker_call, but waiting in 50 ms
 * polls: when the peach is cancelled the connection is closed (the worker
 * cancels the item on seeing it close; its process stays) and *e says so,
 * with *sent false (no fault of the item's). */
static qp_value *peach_call(peachrun *j, int i, const qp_value *msg, qp_value **e, bool *sent)
{
    worker *w = &workers[i];
    *sent = false;
    if ((*e = connect_worker(w, i))) return NULL;
    *sent = true;
    if (qp_conn_send(w->c, msg, QP_MSG_SYNC) < 0) return worker_failed(i, e);
    for (;;) {
        qp_buf *m = NULL;
        qp_ipc_header h;
        int rc = qp_conn_recv_nowait(w->c, &m, &h);
        if (rc == 0 && h.msgtype == QP_MSG_RESPONSE) {
            qp_value *r = qp_ipc_decode(m, NULL);
            qp_buf_unref(m);
            return r ? r : (*e = qp_error("wsfull"), NULL);
        }
        qp_buf_unref(m);
        if (rc < 0 && rc != -EAGAIN) return worker_failed(i, e);
        if (qp_server_cancelled(j->s)) {
            qp_conn_close(w->c);
            w->c = NULL;
            *sent = false;
            *e = qp_error("cancelled: qp.peach: its client closed the connection");
            return NULL;
        }
        struct pollfd pfd = { .fd = qp_conn_fd(w->c), .events = POLLIN };
        if (rc == -EAGAIN) poll(&pfd, 1, 50);
    }
}

static void *dispatch_main(void *p)
{
    parg *a = p;
    peachrun *j = a->j;
    worker *w = &workers[a->w];
    int64_t i;
    while ((i = take(j)) >= 0) {
        qp_value *it = qp_item(j->items, i);
        qp_value *msg = it ? qp_list(3, qp_symbol(".qp.call"), qp_symbol(j->fn), qp_list(1, it)) : NULL;
        bool sent = false;   /* a failed (re)start is not the item's doing */
        qp_value *e = NULL, *r = msg ? peach_call(j, a->w, msg, &e, &sent) : NULL;
        qp_unref(msg);
        if (r) { j->out[i] = r; continue; }
        pthread_mutex_lock(&j->mu);
        if (e && qp_server_cancelled(j->s)) {   /* no restart: the next call revives */
            if (!j->fatal) j->fatal = e; else qp_unref(e);
            pthread_mutex_unlock(&j->mu);
            break;
        }
        if (!e) {
            if (!j->fatal) j->fatal = qp_error("wsfull");
        } else if (sent && ++j->deaths[i] >= QP_PEACH_TRIES) {
            if (!j->fatal)
                j->fatal = qp_error("qp.peach: item %lld killed its worker process %d times; last: worker "
                                    "process %d %s", (long long)i, QP_PEACH_TRIES, a->w, w->cause);
        } else {
            j->queue[j->nqueue++] = i;
        }
        qp_unref(e);
        if (w->pid <= 0 || !w->c) {   /* wait for the peach thread to restart it */
            w->want = true;
            pthread_cond_broadcast(&j->cv);
            while (w->want) pthread_cond_wait(&j->cv, &j->mu);
        }
        bool down = w->down;
        pthread_mutex_unlock(&j->mu);
        if (down) break;
    }
    pthread_mutex_lock(&j->mu);
    j->running--;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

qp_value *qp__procs_peach(qp_server *s, const char *fn, const qp_value *items)
{
    int64_t n = items->v.n;
    qp_value *out = qp_vector(QP_LIST, n), *lost = NULL;
    pthread_t *th = calloc((size_t)nworkers, sizeof *th);
    parg *args = calloc((size_t)nworkers, sizeof *args);
    peachrun j = {.s = s, .fn = fn, .items = items, .n = n};
    j.queue = calloc((size_t)nworkers, sizeof *j.queue);
    j.deaths = calloc((size_t)(n ? n : 1), 1);
    if (!out || !th || !args || !j.queue || !j.deaths) goto done;
    j.out = qp_K(out);
    pthread_mutex_init(&j.mu, NULL);
    pthread_cond_init(&j.cv, NULL);
    /* The dispatchers only wait on sockets: let other Python threads run. */
    PyThreadState *ts = PyEval_SaveThread();
    lost = revive();
    pthread_mutex_lock(&j.mu);
    for (int i = 0; i < nworkers; i++) {
        workers[i].down = workers[i].want = false;
        args[i] = (parg){&j, i};
        if (workers[i].pid > 0 && pthread_create(&th[i], NULL, dispatch_main, &args[i]) == 0) {
            j.running++;
            args[i].j = &j;
        } else {
            args[i].j = NULL;
        }
    }
    /* Restarts on request, here: this thread lives as long as the server. */
    while (j.running > 0) {
        int k = -1;
        for (int i = 0; i < nworkers && k < 0; i++) if (workers[i].want) k = i;
        if (k < 0) { pthread_cond_wait(&j.cv, &j.mu); continue; }
        pthread_mutex_unlock(&j.mu);
        qp_value *e = restart(k);
        pthread_mutex_lock(&j.mu);
        if (e) { workers[k].down = true; qp_unref(lost); lost = e; }
        workers[k].want = false;
        pthread_cond_broadcast(&j.cv);
    }
    pthread_mutex_unlock(&j.mu);
    for (int i = 0; i < nworkers; i++) if (args[i].j) pthread_join(th[i], NULL);
    PyEval_RestoreThread(ts);
    pthread_mutex_destroy(&j.mu);
    pthread_cond_destroy(&j.cv);
done:
    free(th);
    free(args);
    free(j.queue);
    free(j.deaths);
    if (!out || !j.out) { qp_unref(out); qp_unref(lost); qp_unref(j.fatal); return NULL; }
    qp_value *err = j.fatal;
    for (int64_t i = 0; !err && i < n; i++) {   /* q's peach signals the first error */
        if (!qp_K(out)[i])   /* never run: every worker is gone */
            err = qp_error("qp.peach: no worker process left to run item %lld%s%s", (long long)i,
                           lost ? "; " : "", lost ? lost->s : "");
        else if (qp_is_error(qp_K(out)[i])) err = qp_ref(qp_K(out)[i]);
    }
    qp_unref(lost);
    if (err) { qp_unref(out); return err; }
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
