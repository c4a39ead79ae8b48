/* workers.c - worker processes the scheduler starts, connections to them
 * and to running servers, and the setup every worker gets. */
#include "sched_int.h"
#include "core/fileio_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/close_range.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int64_t qp__ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int qp__fn_dir(const qp_job *job, const char **fn)
{
    *fn = job->function.file ? job->function.file : "";
    const char *slash = strrchr(*fn, '/');
    return slash ? (int)(slash - *fn) : -1;
}

/* The child's side of qp__worker_spawn: bound to its cores, stderr to
 * its log, then exec. A kept worker first writes its pid to fd (its
 * parent is the child that started it, not us). Never returns. */
static void worker_exec(const qp__worker *w, const char *self, const char *dir,
                        const qp_job *job, const char *sock, const qp_topo *topo,
                        const qp_place *place, int fd)
{
    signal(SIGINT, SIG_IGN);      /* a terminal ^C is the scheduler's to handle */
    pid_t me = getpid();
    if (w->kept && write(fd, &me, sizeof me) != (ssize_t)sizeof me) _exit(127);
    int rc = topo && place ? qp_topo_bind(topo, place, false) : 0;
    if (rc) dprintf(fd, "%s", qp_strerror(rc));
    int log = open(w->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (log >= 0) { dup2(log, 2); }
    int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (nul >= 0) { dup2(nul, 0); dup2(nul, 1); }
    /* Python (and numpy) start as soon as the worker runs, while we
     * connect and prepare the setup calls, instead of at the first. */
    setenv("QPEACH_PY_EAGER", "1", 1);
    /* The function's folder first on its sys.path (QPEACH_PYTHONPATH,
     * py.c), as a script's own folder is: its module imports the
     * modules and packages beside it as it does here. */
    char path[PATH_MAX * 2];
    const char *fn, *old = getenv("QPEACH_PYTHONPATH");
    int dl = qp__fn_dir(job, &fn);
    if (dl >= 0) {
        snprintf(path, sizeof path, "%.*s%s%s", dl, fn, old && *old ? ":" : "", old && *old ? old : "");
        setenv("QPEACH_PYTHONPATH", path, 1);
    }
    char sarg[16], karg[24];
    snprintf(sarg, sizeof sarg, "%d", job->threads);
    snprintf(karg, sizeof karg, "%lld", (long long)job->keep_ms);
    const char *argv[16] = { self, "serve", "-p", sock, "-s", sarg };
    int n = 6;
    if (job->db) { argv[n++] = "--db"; argv[n++] = job->db; }
    if (w->kept) {
        argv[n++] = "--idle-exit"; argv[n++] = karg;
        argv[n++] = "--watch"; argv[n++] = job->state;
        argv[n++] = "--watch"; argv[n++] = dir;
    }
    argv[n] = NULL;
    execv(self, (char **)argv);
    dprintf(2, "exec %s: %s\n", self, strerror(errno));
    _exit(127);
}

/* Reads what the child wrote to fd until its exec closed it: a kept
 * worker's pid, then why it could not be pinned (into w->pin_error). */
static int read_child(qp__worker *w, int fd, pid_t *pid, char *err, size_t errlen)
{
    ssize_t got, at = 0;
    if (w->kept) {
        while ((got = read(fd, pid, sizeof *pid)) < 0 && errno == EINTR) {}
        if (got != (ssize_t)sizeof *pid) {
            snprintf(err, errlen, "a kept worker's process did not start");
            return QP_ECLOSED;
        }
    }
    while ((got = read(fd, w->pin_error + at, sizeof w->pin_error - 1 - (size_t)at)) > 0
           || (got < 0 && errno == EINTR))
        at += got > 0 ? got : 0;
    w->pin_error[at] = '\0';
    return 0;
}

int qp__worker_spawn(qp__worker *w, const char *self, const char *dir, const qp_job *job,
                     const qp_topo *topo, const qp_place *place, char *err, size_t errlen)
{
    char sock[256];
    snprintf(sock, sizeof sock, "unix:%s/w%d.sock", dir, w->id);
    snprintf(w->log, sizeof w->log, "%s/w%d.log", dir, w->id);
    unlink(sock + 5);
    snprintf(w->addr, sizeof w->addr, "%s", sock);
    w->pin_error[0] = '\0';
    w->reused = false;
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
        if (w->kept) {              /* a session of its own, init's child */
            setsid();
            pid_t g = fork();
            if (g != 0) _exit(g < 0 ? 127 : 0);
            /* and nothing the caller had open (a host process's files and
             * sockets) held for as long as it lives: all close at exec */
            syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
        } else {
            /* Die with the scheduler, even on its SIGKILL; and if it died
             * before prctl took effect, go at once. */
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent) _exit(127);
        }
        close(pin[0]);
        worker_exec(w, self, dir, job, sock, topo, place, pin[1]);
    }
    close(pin[1]);
    int st, rc = 0;
    if (w->kept) while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    rc = read_child(w, pin[0], &pid, err, errlen);
    close(pin[0]);
    if (rc) return rc;
    w->pid = pid;
    w->pidfd = w->kept ? qp__pidfd_open(pid) : -1;
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

/* Whether local worker w's process has ended (then reaped, when it is
 * our child, and forgotten); how: " (status 1)", " (signal 9)", or ""
 * for a kept worker, whose status is its parent's. */
static bool worker_ended(qp__worker *w, char *how, size_t n)
{
    int st;
    how[0] = '\0';
    if (w->kept) {
        if (w->pidfd >= 0 && !qp__pidfd_wait(w->pidfd, 0)) return false;
        close(w->pidfd);
        w->pidfd = -1;
    } else if (waitpid(w->pid, &st, WNOHANG) == w->pid) {
        snprintf(how, n, " (%s %d)", WIFSIGNALED(st) ? "signal" : "status",
                 WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
    } else {
        return false;
    }
    w->pid = 0;
    return true;
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
        char how[64];
        if (w->pid && worker_ended(w, how, sizeof how)) {
            char why[512];
            last_log_line(w, why, sizeof why);
            snprintf(err, errlen, "worker process exited%s before listening%s%s", how,
                     why[0] ? ": " : "", why);
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
    if (w->local && w->pid > 0 && kill_process && w->kept) {
        if (w->pidfd >= 0) {
            qp__pidfd_stop(w->pidfd, 1000);
            close(w->pidfd);
        }
        w->pidfd = -1;
        w->pid = 0;
    } else if (w->local && w->pid > 0 && kill_process) {
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
        if (ws[i].local && ws[i].pid > 0 && !ws[i].kept) kill(ws[i].pid, SIGKILL);
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
        if (ws[i].kept) continue;              /* kept.c writes down its pid */
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

/* Waits until worker w's connection has input, in slices of 100 ms so
 * that a SIGINT/SIGTERM stops a setup that hangs (a slow import) at once:
 * 0, QP_ETIMEOUT at the deadline (qp__ms), or -EINTR when the run was
 * asked to stop. */
static int wait_input(qp__worker *w, int64_t deadline)
{
    struct pollfd p = { .fd = qp_conn_fd(w->c), .events = POLLIN };
    while (!qp_conn_pending(w->c)) {
        if (qp__stop_signal) return -EINTR;
        int64_t left = deadline - qp__ms();
        if (left <= 0) return QP_ETIMEOUT;
        int n = poll(&p, 1, left < 100 ? (int)left : 100);
        if (n > 0) return 0;
        if (n < 0 && errno != EINTR) return -errno;
    }
    return 0;
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
            rc = wait_input(w, deadline);
            int64_t left = deadline - qp__ms();
            if (!rc) rc = left > 0 ? qp_conn_recv(w->c, &v, &t, (int)left) : QP_ETIMEOUT;
        } while (!rc && t != QP_MSG_RESPONSE);
        if (rc == -EINTR) {
            snprintf(err, 512, "interrupted by signal %d during setup", (int)qp__stop_signal);
            return rc;
        }
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

/* Sends the n messages m to worker w: 0, or the transport's code with
 * the cause in err (the worker is dropped). */
static int setup_send(qp__worker *w, qp_value **m, int n, char *err)
{
    for (int k = 0; k < n; k++)
        if (qp_conn_send(w->c, m[k], QP_MSG_SYNC)) {
            int rc = qp_conn_err(w->c);
            snprintf(err, 512, "%s", qp_conn_errstr(w->c));
            qp__worker_down(w, true);
            return rc ? rc : QP_ECLOSED;
        }
    return 0;
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
        /* a kept worker found running forgets its last run first */
        int rc = ws[i].reused ? setup_send(&ws[i], s->reuse.m, s->reuse.n, errs[i]) : 0;
        if (!rc) rc = setup_send(&ws[i], m->m, m->n, errs[i]);
        if (rc && codes) codes[i] = rc;
    }
    /* One deadline for all: a worker that hangs (stopped, stuck in its
     * module's import) costs the others no more than the timeout. */
    for (int i = 0; i < nw; i++) {
        if (!ws[i].c) continue;
        const qp__msgs *m = &s->of[ws[i].proto->id];
        int rc = ws[i].reused ? setup_answers(&ws[i], s->reuse.m, s->reuse.n, deadline,
                                              timeout_ms, errs[i]) : 0;
        /* a kept worker that failed to forget its last run is not trusted;
         * one that answered an error to the job's own setup is sound, and
         * stays for the next run, which resets it */
        bool sound = !rc && ws[i].kept;
        if (!rc) rc = setup_answers(&ws[i], m->m, m->n, deadline, timeout_ms, errs[i]);
        if (codes) codes[i] = rc;
        if (!rc) ready++;
        else qp__worker_down(&ws[i], rc != QP_EARG || !sound);
    }
    return ready;
}
