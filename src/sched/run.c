/* run.c - `qpeach run` from start to end: signals, the lock, the input,
 * starting and setting up workers, the plan and the journal, dispatch,
 * merge, output, and cleanup on every exit path.
 *
 * Why split this way: this file owns the lifecycle (what is acquired and
 * released, in order); prepare.c settles input and plan, dispatch.c runs
 * the tasks, runlog.c talks to people. See run_int.h for the shared state.
 */
#include "run_int.h"
#include "qpeach/kdb.h"
#include "qpeach/table.h"

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
        qp__fail(r, "lock %s: %s", path, strerror(errno));
        free(path);
        return QP_RUN_FAILED;
    }
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        if (n > 0) pid[n] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        qp__fail(r, "another run of this job holds the lock %s%s%s%s", path,
                 pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "");
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

/* The merged value, the reducer's result when the job has one. New
 * reference, or NULL with r->error set. */
static qp_value *finish(run *r)
{
    const qp_job *j = r->job;
    qp_value **parts = malloc((size_t)(r->plan->n ? r->plan->n : 1) * sizeof *parts);
    if (!parts) { qp__fail(r, "merge: out of memory"); return NULL; }
    for (int64_t i = 0; i < r->plan->n; i++) parts[i] = r->t[i].result;
    /* Every task is done: the workers the reducer will not use are killed
     * now, so that their exits (unmapping the table, freeing Python)
     * overlap the merge, the reducer and the output. */
    qp__worker *w = j->reducer.file ? qp__first_ready(r) : NULL;
    qp__workers_kill(r->ws, r->nw, w);
    qp_value *m = qp_merge(j->merge | (j->missing_zero ? QP_MERGE_MISSING_ZERO : 0), parts,
                           r->plan->n, j->keys, j->nkeys);
    free(parts);
    if (!m || qp_is_error(m)) {
        qp__fail(r, "merge: %s", m ? m->s : "out of memory");
        qp_unref(m);
        return NULL;
    }
    if (!j->reducer.file) return m;
    /* The reducer runs on a worker: over the list of partials for how =
     * python, else over the merged value. */
    if (!w) {
        qp_unref(m);
        qp__fail(r, "merge: reducer %s: no worker is usable", j->reducer.name);
        return NULL;
    }
    qp_value *v = qp__call_on(r, w, w->proto->reduce(r, m));
    if (!v) {
        qp__fail_context(r, "merge: reducer %s: ", j->reducer.name);
    } else if (qp_is_error(v)) {
        qp__fail_remote(r, w, v->s);
        qp__fail(r, "merge: reducer %s failed on %s: %s", j->reducer.name, w->addr, v->s);
        qp_unref(v);
        v = NULL;
    }
    return v;
}

static int resolve_log(const qp_run_opts *o)
{
    if (o->log != QP_LOG_AUTO) return o->log;
    return isatty(fileno(o->log_to)) ? QP_LOG_BAR : QP_LOG_LINES;
}

/* --dry-run: plans without starting anything: files by glob, a file input
 * by reading it here; a resident table needs a worker. */
static int dry_run(run *r, int local, FILE *out)
{
    const qp_job *job = r->job;
    int rc;
    /* the db as a run would check it: local workers mount it, or the
     * plan is read from it here (by rows or partition) */
    bool reads_db = local > 0 || r->sproto->holds_input || job->part_by != QP_PART_COLUMN;
    if (job->db && reads_db && (rc = qp__check_db(r)) != 0) return rc;
    if (job->part_by == QP_PART_FILE || job->file) {
        if ((rc = qp__prepare_input(r, true)) != 0) return rc;
        if (qp__make_plan(r, local + job->nservers)) return QP_RUN_FAILED;
    } else if (job->db && job->part_by != QP_PART_COLUMN) {
        if (qp__plan_db(r, local + job->nservers)) return QP_RUN_FAILED;
    }
    qp__print_plan(r, out);
    return QP_RUN_OK;
}

/* Says which kept workers were found running and which were started. */
static void say_kept(run *r, int local, int reused)
{
    char keep[32], pids[256] = "";
    size_t at = 0;
    for (int i = 0; i < local && at < sizeof pids; i++)
        if (r->ws[i].reused)
            at += (size_t)snprintf(pids + at, sizeof pids - at, "%s%d", at ? ", " : " (pids ",
                                   (int)r->ws[i].pid);
    if (at && at < sizeof pids) snprintf(pids + at, sizeof pids - at, ")");
    qp_job_duration_text(r->job->keep_ms, keep, sizeof keep);
    qp__say(r, "worker", "%d of %d local workers reused%s, %d started; kept for %s after the "
            "run in %s", reused, local, pids, local - reused, keep, r->tmpdir);
    qp__kept_note(r, false);
}

/* Starts the local workers (in a private folder that holds their sockets
 * and logs only; for [workers] keep, a kept set's folder, reusing the
 * workers running there) and names the remote ones; errs[i] says why
 * worker i could not start. 0 or QP_RUN_FAILED. */
static int spawn_workers(run *r, int local, char (*errs)[512])
{
    const qp_job *job = r->job;
    char err[512];
    int plain = local > 0 && job->keep_ms ? qp__kept_open(r, local) : 1;
    if (plain < 0) return QP_RUN_FAILED;
    if (local > 0 && plain) {
        snprintf(r->tmpdir, sizeof r->tmpdir, "/tmp/qpeach-run-XXXXXX");
        if (!mkdtemp(r->tmpdir)) {
            r->tmpdir[0] = '\0';
            qp__fail(r, "temporary folder: %s", strerror(errno));
            return QP_RUN_FAILED;
        }
    }
    int rc = r->place ? qp_topo_bind(r->topo, &r->place->sched, true) : 0;
    if (rc) qp__say_unpinned(r, "the scheduler's thread", &r->place->sched, qp_strerror(rc));
    int reused = 0;
    for (int i = 0; i < r->nw; i++) {
        qp__worker *w = &r->ws[i];
        w->id = i;
        w->proto = i < local ? &qp__proto_qpeach : r->sproto;
        w->kept = i < local && r->kept;
        if (i >= local)
            snprintf(w->addr, sizeof w->addr, "%s", job->servers[i - local]);
        else if (w->kept && qp__kept_adopt(r, w))
            reused++;
        else if (qp__worker_spawn(w, r->o->self, r->tmpdir, job, r->topo,
                                  &r->place->worker[i], err, sizeof err))
            snprintf(errs[i], 512, "%s", err);
        else if (w->pin_error[0]) {
            snprintf(err, sizeof err, "worker %d", i);
            qp__say_unpinned(r, err, &r->place->worker[i], w->pin_error);
        }
    }
    if (r->kept) say_kept(r, local, reused);
    return 0;
}

/* Connects to every worker that started and sends each the setup calls;
 * a worker that fails is reported and left out, and a local one that
 * hung or was lost in its setup is started again, as for a task. Sets
 * *ready to the count of usable workers. 0 or QP_RUN_FAILED. */
static int setup_workers(run *r, char (*errs)[512], int *ready)
{
    const qp_job *job = r->job;
    char err[512];
    int *codes = calloc(r->nw > 0 ? (size_t)r->nw : 1, sizeof *codes);
    if (!codes) {
        qp__fail(r, "out of memory");
        return QP_RUN_FAILED;
    }
    for (int i = 0; i < r->nw; i++) {
        qp__worker *w = &r->ws[i];
        if (errs[i][0] || w->c) continue;         /* w->c: a kept worker, connected */
        if (qp__worker_connect(w, job, 30000, err, sizeof err)) {
            snprintf(errs[i], 512, "%s", err);
            w->dead_for_good = !w->local;
        }
    }
    *ready = qp__setup_all(r->ws, r->nw, &r->setup, qp__setup_timeout_ms(job), errs, codes);
    if (qp__stop_signal) {          /* a setup cut short is no worker's fault */
        free(codes);
        return QP_RUN_INTERRUPTED;
    }
    for (int i = 0; i < r->nw; i++) {
        if (!errs[i][0]) continue;
        qp__say(r, "worker", "worker %d (%s) unusable: %s", i, r->ws[i].addr, errs[i]);
        if (!r->ws[i].local) r->ws[i].dead_for_good = true;
        else if (codes[i] && codes[i] != QP_EARG && !qp__restart_worker(r, i))
            ++*ready;
    }
    free(codes);
    if (*ready == 0) {
        qp__fail(r, "no worker is usable%s%s", r->nw ? ": " : "", r->nw ? errs[0] : "");
        return QP_RUN_FAILED;
    }
    return 0;
}

/* Step 1: starts, connects and sets up the workers. Sets *ready to the
 * count of usable ones. 0 or an exit code. */
static int start_workers(run *r, int local, int *ready)
{
    r->nw = local + r->job->nservers;
    r->ws = calloc((size_t)r->nw, sizeof *r->ws);
    char (*errs)[512] = calloc((size_t)r->nw, sizeof *errs);
    int rc = QP_RUN_FAILED;
    if (!r->ws || !errs) goto fail;
    if ((rc = spawn_workers(r, local, errs)) != 0) goto fail;
    rc = setup_workers(r, errs, ready);
fail:
    free(errs);
    return rc;
}

int qp__journal_begin(run *r, const char *jpath, int enc, const uint8_t *pb, size_t pl,
                      const qp_journal_id ids[3], const uint8_t (*tids)[32])
{
    char msg[1024] = "";
    if (enc) {
        qp__fail(r, "journal: cannot encode the plan: %s", qp_strerror(enc));
        return QP_RUN_FAILED;
    }
    if (!jpath) {
        qp__fail(r, "journal: %s", qp_strerror(QP_ENOMEM));
        return QP_RUN_FAILED;
    }
    int rc = qp_journal_open(jpath, ids, 3, pb, pl, tids, tids ? r->plan->n : 0, r->o->resume,
                             &r->journal, msg, sizeof msg);
    if (rc || !r->journal) {
        qp__fail(r, "%s", msg[0] ? msg : qp_strerror(rc ? rc : QP_ENOMEM));
        return QP_RUN_FAILED;
    }
    if (msg[0]) qp__say(r, "journal", "%s", msg);
    return 0;
}

/* Names the tasks whose journaled results were left out because what they
 * read changed since (a partition imported again): they run again. */
static void say_changed(run *r)
{
    char names[600] = "";
    size_t at = 0;
    int64_t n = 0, id;
    const uint8_t *b;
    size_t len;
    bool *named = calloc((size_t)(r->plan->n ? r->plan->n : 1), sizeof *named);
    for (int64_t k = 0; named && k < qp_journal_count(r->journal); k++) {
        qp_journal_record(r->journal, k, &id, &b, &len);
        if (qp_journal_current(r->journal, k) || id < 0 || id >= r->plan->n
            || r->t[id].state == T_DONE || named[id])
            continue;
        named[id] = true;
        char *d = qp_part_describe(r->plan, id);
        if (at < sizeof names)
            at += (size_t)snprintf(names + at, sizeof names - at, "%s%s", n ? ", " : "",
                                   d ? d : "?");
        free(d);
        n++;
    }
    free(named);
    if (n)
        qp__say(r, "resume", "%s changed since %s journaled: %s again", names,
                n == 1 ? "its result was" : "their results were", n == 1 ? "it runs" : "they run");
}

/* Takes the results an earlier run journaled: those tasks are done,
 * unless what a task reads changed since (qp_journal_current). 0 or
 * QP_RUN_FAILED (out of memory). */
static int replay_journal(run *r)
{
    for (int64_t k = 0; k < qp_journal_count(r->journal); k++) {
        int64_t id;
        const uint8_t *b;
        size_t len;
        qp_journal_record(r->journal, k, &id, &b, &len);
        if (id < 0 || id >= r->plan->n || r->t[id].state == T_DONE
            || !qp_journal_current(r->journal, k))
            continue;
        qp_buf *buf = qp_buf_new(len);
        if (!buf) return QP_RUN_FAILED;
        memcpy(buf->data, b, len);
        qp_value *v = qp_ipc_decode(buf, NULL);
        qp_buf_unref(buf);
        if (!v || qp_is_error(v)) { qp_unref(v); continue; }
        r->t[id].result = v;
        r->t[id].state = T_DONE;
        r->ndone++;
        if (r->plan->parts[id].rows > 0) r->rows_done += r->plan->parts[id].rows;
    }
    say_changed(r);
    if (qp_journal_state(r->journal) == QP_JOURNAL_RESUMED)
        qp__say(r, "resume", "resuming: %" PRId64 " of %" PRId64 " tasks already done", r->ndone,
            r->plan->n);
    return 0;
}

/* Step 2: the plan over the ready workers, its tasks, the journal, and
 * what an earlier run already finished. 0 or an exit code. */
static int open_journal(run *r, int ready)
{
    if (qp__make_plan(r, ready)) return QP_RUN_FAILED;
    r->t = calloc((size_t)(r->plan->n ? r->plan->n : 1), sizeof *r->t);
    r->retry = calloc((size_t)(r->plan->n ? r->plan->n : 1), sizeof *r->retry);
    if (!r->t || !r->retry) return QP_RUN_FAILED;
    for (int64_t i = 0; i < r->plan->n; i++) r->t[i].last_worker = -1;
    qp_journal_id ids[3];
    if (qp__job_ids(r, ids)) {
        qp__fail(r, "cannot hash the job");
        return QP_RUN_FAILED;
    }
    qp_value *pv = qp_partplan_value(r->plan);
    uint8_t *pb = NULL;
    size_t pl = 0;
    int enc = pv ? qp_ipc_encode(pv, QP_MSG_ASYNC, &pb, &pl) : QP_ENOMEM;
    qp_unref(pv);
    char *jpath = qp_job_state_path(r->job, "journal");
    uint8_t (*tids)[32] = NULL;
    int rc = qp__task_ids(r, &tids);
    if (!rc) rc = qp__journal_begin(r, jpath, enc, pb, pl, ids, tids);
    free(tids);
    free(pb);
    free(jpath);
    return rc ? rc : replay_journal(r);
}

/* Step 3: runs every task not yet done. An exit code. */
static int dispatch(run *r, int ready)
{
    qp__say(r, "start", "%" PRId64 " tasks (%s) on %d worker%s", r->plan->n,
        qp_job_part_name(r->job->part_by), ready, ready == 1 ? "" : "s");
    int rc = qp__dispatch(r);
    if (rc == QP_RUN_INTERRUPTED && r->cb_stop)
        qp__fail(r, "stopped by the progress callback: %" PRId64 " of %" PRId64
                 " tasks done, journal kept (the next run resumes from it)", r->ndone, r->plan->n);
    else if (rc == QP_RUN_INTERRUPTED)
        qp__fail(r, "interrupted by signal %d: %" PRId64 " of %" PRId64
                 " tasks done, journal kept (the next qpeach run resumes from it)",
                 (int)qp__stop_signal, r->ndone, r->plan->n);
    return rc;
}

/* --show: q's console view of the merged value (tables: the first rows,
 * then ".."). 0, or QP_RUN_FAILED with r->error set. */
static int show(run *r, const qp_value *v, FILE *out)
{
    char *s = qp_format(v, 0);
    if (!s) {
        qp__fail(r, "--show: out of memory");
        return QP_RUN_FAILED;
    }
    fputs(s, out);
    if (s[0] && s[strlen(s) - 1] != '\n') fputc('\n', out);
    free(s);
    if (fflush(out)) {
        qp__fail(r, "--show: %s", strerror(errno));
        return QP_RUN_FAILED;
    }
    return 0;
}

/* Step 4: merges, makes every result durable, writes the output, and
 * drops the journal. An exit code. */
static int finish_output(run *r, FILE *out)
{
    const qp_job *job = r->job;
    char err[512];
    qp_value *v = finish(r);
    if (!v) return QP_RUN_FAILED;
    /* Every result durable before the output exists (a no-op when the
     * reducer call already synced). */
    int rc = qp_journal_sync(r->journal);
    if (rc) {
        qp__fail(r, "journal: %s", qp_strerror(rc));
        goto fail;
    }
    const char *slash = strrchr(job->output, '/');
    if (slash && slash != job->output) {       /* the output's folder, on demand */
        char dir[4096];
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - job->output), job->output);
        qp__mkdir_p(dir);
    }
    /* A caller that takes the value, or --show, gets it instead of "-"
     * output. */
    bool stdout_out = !strcmp(job->output, "-");
    if (r->o->merged) *r->o->merged = qp_ref(v);
    if (!stdout_out || (!r->o->merged && !r->o->show))
        rc = qp_output_write(v, job->output, job->q_text, out, err, sizeof err);
    if (rc) {
        qp__fail(r, "output %s", err);
        goto fail;
    }
    if (r->o->show && show(r, v, out)) goto fail;
    qp_unref(v);
    double secs = (qp__ms() - r->t0) / 1000.0;
    qp__clear_bar(r);
    r->last_draw = 0;
    bool file = strcmp(job->output, "-") != 0;
    qp__say(r, "done", "%" PRId64 " tasks in %.2fs%s%s", r->plan->n, secs,
        file ? ", wrote " : "", file ? job->output : "");
    char *jpath = qp_job_state_path(job, "journal");
    if (jpath) unlink(jpath);
    free(jpath);
    return QP_RUN_OK;
fail:
    qp_unref(v);
    return QP_RUN_FAILED;
}

/* From the lock to the output, after the topology is read. An exit code. */
static int run_job(run *r, int local, FILE *out, int *lockfd)
{
    const qp_job *job = r->job;
    int rc, ready = 0;
    if (r->o->dry_run) return dry_run(r, local, out);
    qp__mkdir_p(job->state);
    if ((rc = lock_job(r, lockfd)) != 0) return rc;
    /* protocol = pykx: every call carries its rows, so the input is held here */
    bool holds = r->sproto->holds_input;
    if (qp__prepare_input(r, (job->part_by == QP_PART_COLUMN || holds) && job->file) != 0)
        return QP_RUN_FAILED;
    /* a db local workers mount or the scheduler reads: checked here, so
     * that a bad one is named rather than seen as workers that exit */
    if ((local > 0 || holds) && (rc = qp__check_db(r)) != 0) return rc;
    /* what each kind of worker needs, before any starts: local workers
     * speak qpeach, servers the job's protocol */
    const qp__proto *kinds[2] = { &qp__proto_qpeach, r->sproto };
    for (int k = 0; k < 2 && (k == 0 || kinds[1] != kinds[0]); k++)
        if ((rc = kinds[k]->prepare(r, &r->setup.of[kinds[k]->id])) != 0) return rc;
    if ((rc = start_workers(r, local, &ready)) != 0) return rc;
    if (qp__stop_signal) return QP_RUN_INTERRUPTED;
    if ((rc = qp__check_columns(r)) != 0) return rc;
    if ((rc = open_journal(r, ready)) != 0) return rc;
    if ((rc = dispatch(r, ready)) != 0) return rc;
    return finish_output(r, out);
}

/* Says why the run failed (even in quiet mode), hands the caller its
 * error, and keeps every finished task: a failed merge, reducer or output
 * loses none. */
static void report_failure(run *r, int result)
{
    const qp_run_opts *opts = r->o;
    if (result == QP_RUN_OK) {
        if (opts->error) *opts->error = (qp_run_error){ .task = -1 };
        return;
    }
    if (!qp__failed(r) && result == QP_RUN_INTERRUPTED)
        qp__fail(r, "interrupted by signal %d before any task ran", (int)qp__stop_signal);
    else if (!qp__failed(r))
        qp__fail(r, "run failed");
    r->error.code = result;
    qp__clear_bar(r);
    r->last_draw = 0;
    int m = r->mode;
    if (m == QP_LOG_QUIET) r->mode = QP_LOG_LINES;
    qp__say(r, "error", "%s", r->error.message);
    r->mode = m;
    if (opts->merged) { qp_unref(*opts->merged); *opts->merged = NULL; }
    if (opts->error) *opts->error = r->error;
    if (r->journal) qp_journal_sync(r->journal);
}

/* Stops the workers and frees everything r owns. */
static void cleanup(run *r)
{
    if (r->ws) qp__workers_stop(r->ws, r->nw);
    if (r->kept) {
        qp__kept_close(r);
    } else if (r->tmpdir[0]) {
        for (int i = 0; i < r->nw; i++) {
            char p[300];
            snprintf(p, sizeof p, "%s/w%d.sock", r->tmpdir, i);
            unlink(p);
            snprintf(p, sizeof p, "%s/w%d.log", r->tmpdir, i);
            unlink(p);
        }
        rmdir(r->tmpdir);
    }
    for (int k = 0; k < QP__NPROTO; k++) {
        for (int i = 0; i < r->setup.of[k].n; i++) qp_unref(r->setup.of[k].m[i]);
        free(r->setup.of[k].m);
    }
    for (int i = 0; i < r->setup.reuse.n; i++) qp_unref(r->setup.reuse.m[i]);
    free(r->setup.reuse.m);
    r->setup = (qp__setup){ 0 };
    qp_kdb_close(r->db);
    free(r->pykx_fn);
    free(r->pykx_reducer);
    for (int64_t i = 0; r->t && i < r->plan->n; i++) qp_unref(r->t[i].result);
    free(r->t);
    free(r->retry);
    for (int i = 0; r->holds && i < r->nw; i++) free(r->holds[i]);
    free(r->holds);
    free(r->ws);
    qp_journal_close(r->journal);
    qp_partplan_free(r->plan);
    qp_unref(r->input);
    free(r->input_path);
    qp_plan_free(r->place);
    qp_topo_free(r->topo);
}

/* Where local workers go: the machine's topology and a plan over it.
 * 0 or QP_RUN_FAILED with the cause. */
static int place_workers(run *r, int local)
{
    int rc = qp_topo_load(NULL, &r->topo);
    if (rc) {
        qp__fail(r, "hwloc: cannot read this machine's topology, which places the local "
                 "workers: %s", qp_strerror(rc));
        return QP_RUN_FAILED;
    }
    if ((rc = qp_topo_plan(r->topo, local, r->job->threads, &r->place)) != 0) {
        qp__fail(r, "hwloc: cannot place %d local worker%s of %d thread%s on %d cores: %s", local,
                 local == 1 ? "" : "s", r->job->threads, r->job->threads == 1 ? "" : "s",
                 qp_topo_cores(r->topo), qp_strerror(rc));
        return QP_RUN_FAILED;
    }
    return 0;
}

int qp_run(const qp_job *job, const qp_run_opts *opts)
{
    run R = { .job = job, .o = opts, .log = opts->log_to ? opts->log_to : stderr,
              .error = { .task = -1 },
              .sproto = job->pykx ? &qp__proto_pykx : &qp__proto_qpeach };
    run *r = &R;
    r->mode = resolve_log(opts);
    r->t0 = qp__ms();
    int result = QP_RUN_FAILED, lockfd = -1;
    int local = opts->jobs > 0 ? opts->jobs : job->local;
    qp__stop_signal = 0;

    struct sigaction sa = { .sa_handler = on_signal }, old_int, old_term, old_pipe;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    struct sigaction ign = { .sa_handler = SIG_IGN };
    sigaction(SIGPIPE, &ign, &old_pipe);

    if (local <= 0 || !place_workers(r, local))
        result = run_job(r, local, opts->out ? opts->out : stdout, &lockfd);
    if (result == QP_RUN_FAILED && r->badjob) result = QP_RUN_BADJOB;
    report_failure(r, result);
    cleanup(r);
    if (lockfd >= 0) close(lockfd);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGPIPE, &old_pipe, NULL);
    return result;
}
