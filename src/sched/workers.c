/* workers.c - worker processes the scheduler starts, connections to them
 * and to running servers, and the setup every worker gets. */
#include "sched_int.h"
#include "core/fileio_int.h"

#include <errno.h>
#include <fcntl.h>
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
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        return -errno;
    }
    if (pid == 0) {
        /* Die with the scheduler, even on its SIGKILL; and if it died
         * before prctl took effect, go at once. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127);
        signal(SIGINT, SIG_IGN);      /* a terminal ^C is the scheduler's to handle */
        if (topo && place) qp_topo_bind(topo, place, false);
        int fd = open(w->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd >= 0) { dup2(fd, 2); }
        int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (nul >= 0) { dup2(nul, 0); dup2(nul, 1); }
        /* Python (and numpy) start as soon as the worker runs, while we
         * connect and prepare the setup calls, instead of at the first. */
        setenv("QPEACH_PY_EAGER", "1", 1);
        char *argv[] = { (char *)self, "serve", "-p", sock, "-s", sarg,
                         job->db ? "--db" : NULL, job->db, NULL };
        execv(self, argv);
        dprintf(2, "exec %s: %s\n", self, strerror(errno));
        _exit(127);
    }
    w->pid = pid;
    w->local = true;
    return 0;
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
    /* PyKX's session check, as kx.remote.session sends it: a q server
     * without pykx.q could not run a single call */
    int rc = w->pykx ? qp__pykx_check_session(w->c, wait_ms, err, errlen) : 0;
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

int qp__setup_msgs(const qp_job *job, const qp_run_opts *o, const char *input_path,
                   qp_value ***msgs, int *n, char *err, size_t errlen)
{
    qp_value **m = calloc(4, sizeof *m);
    int k = 0;
    if (!m) return QP_ENOMEM;
    if (job->nlibs) {
        qp_value *keys = qp_vector(QP_SYMBOL, job->nlibs), *vals = qp_vector(QP_SYMBOL, job->nlibs);
        if (keys && vals)
            for (int i = 0; i < job->nlibs; i++) {
                qp_S(keys)[i] = qp_sym_intern(job->lib_alias[i], strlen(job->lib_alias[i]));
                qp_S(vals)[i] = qp_sym_intern(job->lib_module[i], strlen(job->lib_module[i]));
            }
        m[k++] = keys && vals ? qp__call(".qp.import", 1, qp_dict(keys, vals))
                              : (qp_unref(keys), qp_unref(vals), NULL);
    }
    const qp_job_fn *fns[2] = { &job->function, job->reducer.file ? &job->reducer : NULL };
    for (int i = 0; i < 2; i++) {
        if (!fns[i]) continue;
        const qp_value *given = !o ? NULL : i == 0 ? o->fn_code : o->reducer_code;
        /* The whole module goes: the worker runs it in the function's own
         * namespace, so module-level imports and helpers work; checking
         * for the def here gives a clear error before any worker starts. */
        qp_buf *mod = NULL;
        if (!given && qp__py_module(fns[i]->file, fns[i]->name, &mod, err, errlen)) {
            for (int j = 0; j < k; j++) qp_unref(m[j]);
            free(m);
            return QP_EARG;
        }
        /* opts: `reuse` keeps a resident server's definition when it came
         * from this same code and options (the worker compares the
         * SHA-256), so a repeated run does not compile and run the module
         * again; symbols as codes + names (categorical) for the function:
         * no str object per row, and it can group by the codes directly. */
        const char *sym_opt = i > 0 ? NULL : job->categorical ? "categorical" : job->codes ? "codes" : NULL;
        bool pandas = i == 0 && given && o->fn_pandas;
        int nopt = 1 + (sym_opt != NULL) + pandas;
        qp_value *ok = qp_vector(QP_SYMBOL, nopt), *on = qp_vector(QP_BOOL, nopt);
        if (ok && on) {
            qp_S(ok)[0] = qp_sym_intern("reuse", 5);
            if (sym_opt) qp_S(ok)[1] = qp_sym_intern(sym_opt, strlen(sym_opt));
            if (pandas) qp_S(ok)[nopt - 1] = qp_sym_intern("pandas", 6);
            for (int j = 0; j < nopt; j++) qp_G(on)[j] = 1;
        }
        qp_value *code = given ? qp_ref((qp_value *)given) : qp_cstring((const char *)mod->data);
        m[k++] = ok && on ? qp__call(".qp.def", 3, qp_symbol(fns[i]->name), code, qp_dict(ok, on))
                          : (qp_unref(ok), qp_unref(on), qp_unref(code), NULL);
        qp_buf_unref(mod);
    }
    if (input_path)
        m[k++] = qp__call(".qp.load", 2, qp_symbol(job->table), qp_cstring(input_path));
    for (int j = 0; j < k; j++)
        if (!m[j]) {
            for (int i = 0; i < k; i++) qp_unref(m[i]);
            free(m);
            snprintf(err, errlen, "out of memory");
            return QP_ENOMEM;
        }
    *msgs = m;
    *n = k;
    return 0;
}

/* Reads the answers to worker i's setup messages m[0..n); false (with
 * errs[i]) on the first error or a lost connection. */
static bool setup_answers(qp__worker *w, qp_value **m, int n, int timeout_ms, char *err)
{
    bool ok = true;
    for (int k = 0; k < n; k++) {
        qp_value *v = NULL;
        int t = 0, rc;
        do {
            qp_unref(v);
            rc = qp_conn_recv(w->c, &v, &t, timeout_ms);
        } while (!rc && t != QP_MSG_RESPONSE);
        if (rc) {
            if (ok) snprintf(err, 512, "%s", qp_conn_errstr(w->c));
            return false;
        }
        /* PyKX's error text names the library and alias itself */
        if (qp_is_error(v) && ok) {
            if (w->pykx) snprintf(err, 512, "libraries: %s", v->s);
            else snprintf(err, 512, "%s: %s", qp_K(m[k])[0]->s, v->s);
            ok = false;
        }
        qp_unref(v);
    }
    return ok;
}

int qp__setup_all(qp__worker *ws, int nw, const qp__setup *s, int timeout_ms, char (*errs)[512])
{
    int ready = 0;
    for (int i = 0; i < nw; i++) {
        if (!ws[i].c) continue;
        qp_value **m = ws[i].pykx ? s->pykx : s->msgs;
        int n = ws[i].pykx ? s->npykx : s->n;
        for (int k = 0; k < n; k++)
            if (qp_conn_send(ws[i].c, m[k], QP_MSG_SYNC)) {
                snprintf(errs[i], 512, "%s", qp_conn_errstr(ws[i].c));
                qp__worker_down(&ws[i], true);
                break;
            }
    }
    for (int i = 0; i < nw; i++) {
        if (!ws[i].c) continue;
        if (setup_answers(&ws[i], ws[i].pykx ? s->pykx : s->msgs,
                          ws[i].pykx ? s->npykx : s->n, timeout_ms, errs[i])) ready++;
        else qp__worker_down(&ws[i], true);
    }
    return ready;
}
