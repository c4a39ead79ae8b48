/* run.c - `qpeach run` from start to end: signals, the lock, the input,
 * starting and setting up workers, the plan and the journal, dispatch,
 * merge, output, and cleanup on every exit path.
 *
 * Why split this way: this file owns the lifecycle (what is acquired and
 * released, in order); prepare.c settles input and plan, dispatch.c runs
 * the tasks, runlog.c talks to people. See run_int.h for the shared state.
 */
#include "run_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

volatile sig_atomic_t qp__stop_signal;
static void on_signal(int sig) { qp__stop_signal = sig; }

/* ---- the run ---- */

static int lock_job(run *r, int *fd_out)
{
    char *path = qp_job_state_path(r->job, "lock");
    if (!path) return QP_RUN_FAILED;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(r->failure, sizeof r->failure, "lock %s: %s", path, strerror(errno));
        free(path);
        return QP_RUN_FAILED;
    }
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        if (n > 0) pid[n] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        snprintf(r->failure, sizeof r->failure, "another run of this job holds the lock %s%s%s%s",
                 path, pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "");
        close(fd);
        free(path);
        return QP_RUN_LOCKED;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    /* Overwrite, then cut to length: truncating to 0 first would free and
     * reallocate the file's block on every run. */
    if (pwrite(fd, pid, (size_t)n, 0) == n && ftruncate(fd, n)) { /* informational only */ }
    free(path);
    *fd_out = fd;
    return 0;
}

static qp_value *finish(run *r)
{
    const qp_job *j = r->job;
    qp_value **parts = malloc((size_t)(r->plan->n ? r->plan->n : 1) * sizeof *parts);
    if (!parts) return NULL;
    for (int64_t i = 0; i < r->plan->n; i++) parts[i] = r->t[i].result;
    qp_value *m = qp_merge(j->merge, parts, r->plan->n, j->keys, j->nkeys);
    free(parts);
    if (!m || qp_is_error(m) || !j->reducer.file) return m;
    /* The reducer runs on a worker: over the list of partials for how =
     * python, else over the merged value. */
    qp_value *args = qp_vector(QP_LIST, 1);
    if (!args) { qp_unref(m); return NULL; }
    qp_K(args)[0] = m;
    qp_value *v = qp__call_one(r, qp__call(".qp.call", 2, qp_symbol(j->reducer.name), args));
    if (!v) return qp_error("reducer %s: %s", j->reducer.name, r->failure);
    return v;
}

static int resolve_log(const qp_run_opts *o)
{
    if (o->log != QP_LOG_AUTO) return o->log;
    return isatty(fileno(o->log_to)) ? QP_LOG_BAR : QP_LOG_LINES;
}

int qp_run(const qp_job *job, const qp_run_opts *opts)
{
    run R = { .job = job, .o = opts, .log = opts->log_to ? opts->log_to : stderr };
    run *r = &R;
    r->mode = resolve_log(opts);
    r->t0 = qp__ms();
    int result = QP_RUN_FAILED, lockfd = -1;
    int local = opts->jobs > 0 ? opts->jobs : job->local;
    FILE *out = opts->out ? opts->out : stdout;
    char (*errs)[512] = NULL;
    qp__stop_signal = 0;

    struct sigaction sa = { .sa_handler = on_signal }, old_int, old_term, old_pipe;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    struct sigaction ign = { .sa_handler = SIG_IGN };
    sigaction(SIGPIPE, &ign, &old_pipe);

    if (local > 0) {
        if (qp_topo_load(NULL, &r->topo) || qp_topo_plan(r->topo, local, job->threads, &r->place)) {
            snprintf(r->failure, sizeof r->failure, "hwloc: cannot read the topology");
            goto done;
        }
    }
    if (opts->dry_run) {
        /* Plan without starting anything: files by glob, a file input by
         * reading it here; a resident table needs a worker. */
        if (job->part_by == QP_PART_FILE || job->file) {
            if ((result = qp__prepare_input(r, true)) != 0) goto done;
            if (qp__make_plan(r, local + job->nservers)) { result = QP_RUN_FAILED; goto done; }
        } else if (job->db && job->part_by != QP_PART_COLUMN) {
            if (qp__plan_db(r, local + job->nservers)) { result = QP_RUN_FAILED; goto done; }
        }
        qp__print_plan(r, out);
        result = QP_RUN_OK;
        goto done;
    }
    qp__mkdir_p(job->state);
    if ((result = lock_job(r, &lockfd)) != 0) goto done;
    result = QP_RUN_FAILED;
    if (qp__prepare_input(r, job->part_by == QP_PART_COLUMN && job->file) != 0) goto done;

    /* Workers: start the local ones, connect to all, set them up. The
     * private folder holds local workers' sockets only. */
    if (local > 0) snprintf(r->tmpdir, sizeof r->tmpdir, "/tmp/qpeach-run-XXXXXX");
    if (local > 0 && !mkdtemp(r->tmpdir)) {
        r->tmpdir[0] = '\0';
        snprintf(r->failure, sizeof r->failure, "temporary folder: %s", strerror(errno));
        goto done;
    }
    r->nw = local + job->nservers;
    r->ws = calloc((size_t)r->nw, sizeof *r->ws);
    errs = calloc((size_t)r->nw, sizeof *errs);
    if (!r->ws || !errs) goto done;
    if (r->place && r->place->sched.ncores) qp_topo_bind(r->topo, &r->place->sched, true);
    char err[512];
    for (int i = 0; i < r->nw; i++) {
        qp__worker *w = &r->ws[i];
        w->id = i;
        if (i < local) {
            if (qp__worker_spawn(w, opts->self, r->tmpdir, job, r->topo,
                                 &r->place->worker[i], err, sizeof err))
                snprintf(errs[i], 512, "%s", err);
        } else {
            snprintf(w->addr, sizeof w->addr, "%s", job->servers[i - local]);
        }
    }
    for (int i = 0; i < r->nw; i++) {
        qp__worker *w = &r->ws[i];
        if (errs[i][0]) continue;
        if (qp__worker_connect(w, job, 30000, err, sizeof err)) {
            snprintf(errs[i], 512, "%s", err);
            w->dead_for_good = !w->local;
        }
    }
    if (qp__setup_msgs(job, opts, job->files ? NULL : r->input_path, &r->setup, &r->nsetup, err, sizeof err)) {
        snprintf(r->failure, sizeof r->failure, "%s", err);
        result = QP_RUN_BADJOB;
        goto done;
    }
    int ready = qp__setup_all(r->ws, r->nw, r->setup, r->nsetup, 600000, errs);
    for (int i = 0; i < r->nw; i++)
        if (errs[i][0]) {
            qp__say(r, "worker", "worker %d (%s) unusable: %s", i, r->ws[i].addr, errs[i]);
            if (!r->ws[i].local) r->ws[i].dead_for_good = true;
        }
    if (ready == 0) {
        snprintf(r->failure, sizeof r->failure, "no worker is usable%s%s", r->nw ? ": " : "",
                 r->nw ? errs[0] : "");
        goto done;
    }
    if (qp__stop_signal) { result = QP_RUN_INTERRUPTED; goto done; }
    if ((result = qp__check_columns(r)) != 0) goto done;
    result = QP_RUN_FAILED;

    /* Plan, journal, and what an earlier run already finished. */
    if (qp__make_plan(r, ready)) goto done;
    r->t = calloc((size_t)(r->plan->n ? r->plan->n : 1), sizeof *r->t);
    r->retry = calloc((size_t)(r->plan->n ? r->plan->n : 1), sizeof *r->retry);
    if (!r->t || !r->retry) goto done;
    for (int64_t i = 0; i < r->plan->n; i++) r->t[i].last_worker = -1;
    {
        qp_journal_id ids[3];
        if (qp__job_ids(r, ids)) { snprintf(r->failure, sizeof r->failure, "cannot hash the job"); goto done; }
        qp_value *pv = qp_partplan_value(r->plan);
        uint8_t *pb = NULL;
        size_t pl = 0;
        int rc = pv ? qp_ipc_encode(pv, QP_MSG_ASYNC, &pb, &pl) : QP_ENOMEM;
        qp_unref(pv);
        char *jpath = qp_job_state_path(job, "journal");
        char msg[1024];
        if (!rc && jpath)
            rc = qp_journal_open(jpath, ids, 3, pb, pl, opts->resume, &r->journal, msg, sizeof msg);
        free(pb);
        free(jpath);
        if (rc || !r->journal) { snprintf(r->failure, sizeof r->failure, "%s", msg); goto done; }
        if (msg[0]) qp__say(r, "journal", "%s", msg);
        for (int64_t k = 0; k < qp_journal_count(r->journal); k++) {
            int64_t id;
            const uint8_t *b;
            size_t len;
            qp_journal_record(r->journal, k, &id, &b, &len);
            if (id < 0 || id >= r->plan->n || r->t[id].state == T_DONE) continue;
            qp_buf *buf = qp_buf_new(len);
            if (!buf) goto done;
            memcpy(buf->data, b, len);
            qp_value *v = qp_ipc_decode(buf, NULL);
            qp_buf_unref(buf);
            if (!v || qp_is_error(v)) { qp_unref(v); continue; }
            r->t[id].result = v;
            r->t[id].state = T_DONE;
            r->ndone++;
            if (r->plan->parts[id].rows > 0) r->rows_done += r->plan->parts[id].rows;
        }
        if (qp_journal_state(r->journal) == QP_JOURNAL_RESUMED)
            qp__say(r, "resume", "resuming: %" PRId64 " of %" PRId64 " tasks already done", r->ndone,
                r->plan->n);
    }
    qp__say(r, "start", "%" PRId64 " tasks (%s) on %d worker%s", r->plan->n,
        qp_job_part_name(job->part_by), ready, ready == 1 ? "" : "s");
    result = qp__dispatch(r);
    if (result == QP_RUN_INTERRUPTED) {
        snprintf(r->failure, sizeof r->failure, "interrupted by signal %d: %" PRId64 " of %" PRId64
                 " tasks done, journal kept (the next qpeach run resumes from it)",
                 (int)qp__stop_signal, r->ndone, r->plan->n);
        goto done;
    }
    if (result) goto done;
    result = QP_RUN_FAILED;
    {
        qp_value *v = finish(r);
        if (!v || qp_is_error(v)) {
            snprintf(r->failure, sizeof r->failure, "merge: %s", v ? v->s : "out of memory");
            qp_unref(v);
            goto done;
        }
        /* Every result durable before the output exists (a no-op when
         * the reducer call already synced). */
        int rc = qp_journal_sync(r->journal);
        if (rc) {
            snprintf(r->failure, sizeof r->failure, "journal: %s", qp_strerror(rc));
            qp_unref(v);
            goto done;
        }
        const char *slash = strrchr(job->output, '/');
        if (slash && slash != job->output) {       /* the output's folder, on demand */
            char dir[4096];
            snprintf(dir, sizeof dir, "%.*s", (int)(slash - job->output), job->output);
            qp__mkdir_p(dir);
        }
        /* A caller that takes the value gets it instead of "-" output. */
        if (opts->merged) *opts->merged = qp_ref(v);
        if (!opts->merged || strcmp(job->output, "-"))
            rc = qp_output_write(v, job->output, job->q_text, out, err, sizeof err);
        qp_unref(v);
        if (rc) { snprintf(r->failure, sizeof r->failure, "output %s", err); goto done; }
    }
    result = QP_RUN_OK;
    {
        double secs = (qp__ms() - r->t0) / 1000.0;
        qp__clear_bar(r);
        r->last_draw = 0;
        qp__say(r, "done", "%" PRId64 " tasks in %.2fs%s%s", r->plan->n, secs,
            strcmp(job->output, "-") ? ", wrote " : "", strcmp(job->output, "-") ? job->output : "");
    }
    char *jpath = qp_job_state_path(job, "journal");
    if (jpath) unlink(jpath);
    free(jpath);

done:
    if (result == QP_RUN_FAILED && r->badjob) result = QP_RUN_BADJOB;
    if (result != QP_RUN_OK && r->failure[0]) {
        qp__clear_bar(r);
        r->last_draw = 0;
        int m = r->mode;
        if (m == QP_LOG_QUIET) r->mode = QP_LOG_LINES;
        qp__say(r, "error", "%s", r->failure);
        r->mode = m;
    }
    if (result != QP_RUN_OK && opts->merged) { qp_unref(*opts->merged); *opts->merged = NULL; }
    if (result != QP_RUN_OK && opts->err)
        snprintf(opts->err, opts->errlen, "%s", r->failure[0] ? r->failure : "run failed");
    /* A failed merge, reducer or output keeps every finished task. */
    if (result != QP_RUN_OK && r->journal) qp_journal_sync(r->journal);
    if (r->ws) qp__workers_stop(r->ws, r->nw);
    if (r->tmpdir[0]) {
        for (int i = 0; i < r->nw; i++) {
            char p[300];
            snprintf(p, sizeof p, "%s/w%d.sock", r->tmpdir, i);
            unlink(p);
            snprintf(p, sizeof p, "%s/w%d.log", r->tmpdir, i);
            unlink(p);
        }
        rmdir(r->tmpdir);
    }
    for (int i = 0; i < r->nsetup; i++) qp_unref(r->setup[i]);
    free(r->setup);
    r->setup = NULL;
    for (int64_t i = 0; r->t && i < r->plan->n; i++) qp_unref(r->t[i].result);
    free(r->t);
    free(r->retry);
    for (int i = 0; r->holds && i < r->nw; i++) free(r->holds[i]);
    free(r->holds);
    free(r->ws);
    free(errs);
    qp_journal_close(r->journal);
    qp_partplan_free(r->plan);
    qp_unref(r->input);
    free(r->input_path);
    qp_plan_free(r->place);
    qp_topo_free(r->topo);
    if (lockfd >= 0) close(lockfd);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGPIPE, &old_pipe, NULL);
    return result;
}

