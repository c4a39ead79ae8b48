/* workers.c - worker processes the scheduler starts, connections to them
 * and to running servers, and the setup every worker gets. */
#include "sched_int.h"
#include "core/fileio_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int64_t qp__ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int qp__worker_spawn(qp__worker *w, const char *self, const char *dir, const qp_job *job,
                     const qp_topo *topo, const qp_place *place, char *err, size_t errlen)
{
    char sock[256], sarg[16];
    snprintf(sock, sizeof sock, "unix:%s/w%d.sock", dir, w->id);
    snprintf(w->log, sizeof w->log, "%s/w%d.log", dir, w->id);
    snprintf(sarg, sizeof sarg, "%d", job->threads);
    unlink(sock + 5);
    snprintf(w->addr, sizeof w->addr, "%s", sock);
    w->pin_error[0] = '\0';
    /* The child binds itself to its cores before exec (so every thread
     * Python and numpy start is bound) and writes why when it cannot into
     * this pipe, which its exec closes. */
    int pin[2];
    if (pipe2(pin, O_CLOEXEC)) {
        int e = errno;
        snprintf(err, errlen, "pipe: %s", strerror(e));
        return -e;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(pin[0]);
        close(pin[1]);
        snprintf(err, errlen, "fork: %s", strerror(e));
        return -e;
    }
    if (pid == 0) {
        /* Die with the scheduler, even on its SIGKILL; and if it died
         * before prctl took effect, go at once. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127);
        signal(SIGINT, SIG_IGN);      /* a terminal ^C is the scheduler's to handle */
        close(pin[0]);
        int rc = topo && place ? qp_topo_bind(topo, place, false) : 0;
        if (rc) dprintf(pin[1], "%s", qp_strerror(rc));
        int fd = open(w->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd >= 0) { dup2(fd, 2); }
        int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (nul >= 0) { dup2(nul, 0); dup2(nul, 1); }
        /* Python (and numpy) start as soon as the worker runs, while we
         * connect and prepare the setup calls, instead of at the first. */
        setenv("QPEACH_PY_EAGER", "1", 1);
        /* The function's folder first on its sys.path (QPEACH_PYTHONPATH,
         * py.c), as a script's own folder is: its module imports the
         * modules and packages beside it as it does here. */
        char path[PATH_MAX * 2];
        const char *fn = job->function.file ? job->function.file : "";
        const char *slash = strrchr(fn, '/'), *old = getenv("QPEACH_PYTHONPATH");
        if (slash) {
            snprintf(path, sizeof path, "%.*s%s%s", (int)(slash - fn), fn, old && *old ? ":" : "",
                     old && *old ? old : "");
            setenv("QPEACH_PYTHONPATH", path, 1);
        }
        char *argv[] = { (char *)self, "serve", "-p", sock, "-s", sarg,
                         job->db ? "--db" : NULL, job->db, NULL };
        execv(self, argv);
        dprintf(2, "exec %s: %s\n", self, strerror(errno));
        _exit(127);
    }
    close(pin[1]);
    ssize_t got, at = 0;
    while ((got = read(pin[0], w->pin_error + at, sizeof w->pin_error - 1 - (size_t)at)) > 0
           || (got < 0 && errno == EINTR))
        at += got > 0 ? got : 0;
    w->pin_error[at] = '\0';
    close(pin[0]);
    w->pid = pid;
    w->local = true;
    return 0;
}

void qp__cores_text(const qp_place *pl, char *buf, size_t n)
{
    size_t at = (size_t)snprintf(buf, n, "core%s ", pl->ncores == 1 ? "" : "s");
    for (int i = 0; i < pl->ncores && at < n; i++)
        at += (size_t)snprintf(buf + at, n - at, "%s%d", i ? "," : "", pl->cores[i]);
}

/* The last line a local worker wrote to its log (its stderr) into buf:
 * why it exited, as `qpeach serve` says it ("" when it said nothing). */
static void last_log_line(const qp__worker *w, char *buf, size_t n)
{
    char tail[1024];
    buf[0] = '\0';
    int fd = open(w->log, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    off_t end = lseek(fd, 0, SEEK_END), keep = (off_t)sizeof tail - 1;
    ssize_t got = pread(fd, tail, sizeof tail - 1, end > keep ? end - keep : 0);
    close(fd);
    if (got <= 0) return;
    while (got > 0 && (tail[got - 1] == '\n' || tail[got - 1] == '\r')) got--;
    tail[got] = '\0';
    const char *nl = strrchr(tail, '\n');
    snprintf(buf, n, "%.*s", (int)(n - 1), nl ? nl + 1 : tail);
}

int qp__worker_connect(qp__worker *w, const qp_job *job, int wait_ms, char *err, size_t errlen)
{
    /* TLS goes to the servers only: local workers listen on unix sockets
     * that only this user can reach. */
    qp_conn_opts o = { .user = job->user, .password = job->password,
                       .connect_timeout_ms = job->connect_timeout_ms,
                       .tls = job->tls && !w->local, .tls_ca = job->tls_ca };
    int64_t end = qp__ms() + wait_ms;
    for (;;) {
        int rc = qp_conn_open(w->addr, &o, &w->c, err, errlen);
        if (!rc) break;
        /* A local worker may still be starting: wait for its socket,
         * unless the process has already gone. */
        if (!w->local || qp__ms() > end || rc == QP_EAUTH) return rc;
        int st;
        if (w->pid && waitpid(w->pid, &st, WNOHANG) == w->pid) {
            w->pid = 0;
            char why[512];
            last_log_line(w, why, sizeof why);
            snprintf(err, errlen, "worker process exited (%s %d) before listening%s%s",
                     WIFSIGNALED(st) ? "signal" : "status",
                     WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), why[0] ? ": " : "", why);
            return QP_ECLOSED;
        }
        usleep(2000);           /* a worker listens ~6 ms after its exec */
    }
    w->nfl = w->flhead = w->tasks_in = 0;
    int rc = w->proto->connect(w->c, wait_ms, err, errlen);
    if (rc) qp__worker_down(w, false);
    return rc;
}

void qp__worker_down(qp__worker *w, bool kill_process)
{
    qp_conn_close(w->c);
    w->c = NULL;
    w->nfl = w->flhead = w->tasks_in = 0;
    if (w->local && w->pid > 0 && kill_process) {
        kill(w->pid, SIGTERM);
        int st;
        for (int i = 0; i < 100; i++) {
            if (waitpid(w->pid, &st, WNOHANG) == w->pid) { w->pid = 0; return; }
            usleep(10000);
        }
        kill(w->pid, SIGKILL);
        waitpid(w->pid, &st, 0);
        w->pid = 0;
    }
}

void qp__workers_kill(qp__worker *ws, int n, const qp__worker *keep)
{
    for (int i = 0; i < n; i++) {
        if (&ws[i] == keep) continue;
        qp_conn_close(ws[i].c);
        ws[i].c = NULL;
        if (ws[i].local && ws[i].pid > 0) kill(ws[i].pid, SIGKILL);
    }
}

void qp__workers_stop(qp__worker *ws, int n)
{
    /* Every result is in hand: no worker has anything left to say, so
     * they are killed at once, all of them before waiting for any (a
     * SIGTERM would have each finalize Python, one after another). */
    qp__workers_kill(ws, n, NULL);
    for (int i = 0; i < n; i++) {
        int st;
        if (ws[i].local && ws[i].pid > 0) waitpid(ws[i].pid, &st, 0);
        ws[i].pid = 0;
    }
}

qp_value *qp__call(const char *name, int nargs, ...)
{
    qp_value *l = qp_vector(QP_LIST, nargs + 1);
    va_list ap;
    va_start(ap, nargs);
    if (!l) {
        for (int i = 0; i < nargs; i++) qp_unref(va_arg(ap, qp_value *));
        va_end(ap);
        return NULL;
    }
    qp_K(l)[0] = qp_symbol(name);
    bool oom = !qp_K(l)[0];
    for (int i = 0; i < nargs; i++) {
        qp_K(l)[i + 1] = va_arg(ap, qp_value *);
        if (!qp_K(l)[i + 1]) oom = true;
    }
    va_end(ap);
    if (oom) {
        for (int i = 0; i <= nargs; i++) if (!qp_K(l)[i]) qp_K(l)[i] = qp_identity();
        qp_unref(l);
        return NULL;
    }
    return l;
}

/* Whether src has "def NAME(" (or "async def", or "def NAME (") at the
 * start of a line: a top-level function of that name. */
static bool defines(const char *src, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = src; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        const char *q = p;
        if (!strncmp(q, "async ", 6)) q += 6;
        if (strncmp(q, "def ", 4)) continue;
        q += 4;
        while (*q == ' ') q++;
        if (!strncmp(q, name, nl) && (q[nl] == '(' || q[nl] == ' ')) return true;
    }
    return false;
}

int qp__py_module(const char *file, const char *name, qp_buf **out, char *err, size_t errlen)
{
    int rc = qp__file_read(file, out);
    if (rc) {
        snprintf(err, errlen, "%s: %s", file, qp_strerror(rc));
        return rc;
    }
    if (defines((const char *)(*out)->data, name)) return 0;
    snprintf(err, errlen, "%s: no top-level function '%s'", file, name);
    qp_buf_unref(*out);
    *out = NULL;
    return QP_EARG;
}

int qp__setup_timeout_ms(const qp_job *job)
{
    int64_t ms = job->task_timeout_ms;
    return ms > 0 && ms < INT_MAX ? (int)ms : 600000;
}

/* Reads the answers to worker w's setup messages m[0..n) until the
 * deadline (qp__ms). 0; QP_EARG (with err) when one is an error (the
 * first is said; the rest are read, so the connection stays in step); or
 * the transport's code (with err) when the connection fails or the
 * deadline passes. */
static int setup_answers(qp__worker *w, qp_value **m, int n, int64_t deadline, int timeout_ms,
                         char *err)
{
    int result = 0;
    for (int k = 0; k < n; k++) {
        qp_value *v = NULL;
        int t = 0, rc;
        do {
            qp_unref(v);
            v = NULL;
            int64_t left = deadline - qp__ms();
            rc = left > 0 ? qp_conn_recv(w->c, &v, &t, (int)left) : QP_ETIMEOUT;
        } while (!rc && t != QP_MSG_RESPONSE);
        if (rc == QP_ETIMEOUT) {
            snprintf(err, 512, "setup (%s) timed out after %d ms", qp_K(m[k])[0]->s, timeout_ms);
            return rc;
        }
        if (rc) {
            snprintf(err, 512, "%s", qp_conn_errstr(w->c));
            return rc;
        }
        if (qp_is_error(v) && !result) {
            w->proto->setup_error(m[k], v->s, err, 512);
            result = QP_EARG;
        }
        qp_unref(v);
    }
    return result;
}

int qp__setup_all(qp__worker *ws, int nw, const qp__setup *s, int timeout_ms, char (*errs)[512],
                  int *codes)
{
    int ready = 0;
    int64_t deadline = qp__ms() + timeout_ms;
    for (int i = 0; i < nw; i++) {
        if (codes) codes[i] = 0;
        if (!ws[i].c) continue;
        const qp__msgs *m = &s->of[ws[i].proto->id];
        for (int k = 0; k < m->n; k++)
            if (qp_conn_send(ws[i].c, m->m[k], QP_MSG_SYNC)) {
                snprintf(errs[i], 512, "%s", qp_conn_errstr(ws[i].c));
                if (codes) codes[i] = qp_conn_err(ws[i].c);
                qp__worker_down(&ws[i], true);
                break;
            }
    }
    /* One deadline for all: a worker that hangs (stopped, stuck in its
     * module's import) costs the others no more than the timeout. */
    for (int i = 0; i < nw; i++) {
        if (!ws[i].c) continue;
        const qp__msgs *m = &s->of[ws[i].proto->id];
        int rc = setup_answers(&ws[i], m->m, m->n, deadline, timeout_ms, errs[i]);
        if (codes) codes[i] = rc;
        if (!rc) ready++;
        else qp__worker_down(&ws[i], true);
    }
    return ready;
}
