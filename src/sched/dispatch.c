/* dispatch.c - the scheduler's loop: one thread, poll() over every worker
 * connection; each keeps a small window of sync calls in flight from one
 * shared queue, so a fast worker takes more tasks and nobody waits on a
 * slow one. Responses are read through the connection (qp_conn_recv_nowait
 * until it would block, so nothing buffered is missed by poll); failures
 * are retried elsewhere, lost workers' tasks requeued, local workers
 * restarted.
 *
 * Small tasks go several to a message (the protocol's batch: qpeach's
 * .qp.applyeach), so that a task costs neither a round trip, nor a wake-up
 * of the worker's threads, nor a write() of its own. A batch is only a
 * transport: each task of it is answered, journaled, retried and logged as
 * its own. A batch that is lost (its worker died or timed out) blames none
 * of its tasks: they go again one per message, where a fault is the
 * task's own.
 *
 * Why a file of its own: this is the state machine that must be right
 * under faults; it shares nothing with start-up or output but the run.
 */
#include "run_int.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Window when the job sets none: 2 keeps long tasks spread (a fast worker
 * takes more), but with tasks of a few hundred microseconds a worker would
 * sit idle for a round trip between them; once tasks finish under 2 ms
 * apart the window opens to 16, which hides the round trip while still
 * holding back most of the queue, and to two batches when tasks go in
 * batches. */
static int auto_window(const qp__worker *w, int batch)
{
    int small = w->gap_us > 0 && w->gap_us < 2000 ? 16 : 2;
    return batch > 1 && 2 * batch > small ? 2 * batch : small;
}

/* Tasks per message to w: the job's batch, or (auto) 1 until tasks finish
 * under 2 ms apart, then as many as take about BATCH_US, and no more than
 * a quarter of the task timeout (a batch that runs past it is lost whole,
 * and its tasks sent again one by one). 1 for a worker that refused a
 * batch, and for tasks of two messages (file partitions). */
#define BATCH_US 2000.0
static int batch_size(const run *r, const qp__worker *w)
{
    if (!w->proto->batch || w->nobatch || r->plan->n == 0 || r->plan->parts[0].kind == QP_PART_FILE)
        return 1;
    if (r->job->batch) return r->job->batch < QP__MAX_BATCH ? r->job->batch : QP__MAX_BATCH;
    if (!(w->gap_us > 0 && w->gap_us < 2000)) return 1;
    double us = BATCH_US, quarter = r->job->task_timeout_ms * 250.0;
    if (quarter > 0 && quarter < us) us = quarter;
    double b = us / w->gap_us;
    return b < 1 ? 1 : b > QP__MAX_BATCH ? QP__MAX_BATCH : (int)b;
}

/* The ring of requests in flight holds at most two per task of a full
 * window; its head is in range, and every task counted in flight has its
 * final request in the ring. */
#define RING_CAP ((int)(sizeof ((qp__worker *)0)->fl / sizeof ((qp__worker *)0)->fl[0]))
#define RING_OK(w) ((w)->nfl >= 0 && (w)->nfl <= RING_CAP && (w)->flhead >= 0 \
                    && (w)->flhead < RING_CAP && (w)->tasks_in >= 0 && (w)->tasks_in <= (w)->nfl)

static void push_flight(qp__worker *w, int64_t task, bool final, int attempt, int batch)
{
    assert(RING_OK(w) && w->nfl < RING_CAP);
    int at = (w->flhead + w->nfl) % RING_CAP;
    w->fl[at] = (qp__flight){ .task = task, .final = final, .attempt = attempt, .batch = batch,
                              .sent_ms = qp__ms() };
    if (w->nfl == 0) w->head_start_ms = w->fl[at].sent_ms;
    w->nfl++;
}

static void requeue(run *r, int64_t i)
{
    if (r->t[i].state != T_RUNNING) return;     /* already queued, or done */
    assert(r->nretry < r->plan->n);             /* each task is queued once */
    r->t[i].state = T_QUEUED;
    r->retry[r->nretry++] = i;
}

/* Task i goes out (again): running, its attempt counted. */
static void begin_task(run *r, int64_t i)
{
    assert(r->t[i].state == T_QUEUED);
    r->t[i].state = T_RUNNING;
    r->t[i].attempt_failed = false;
    r->t[i].sends++;
}

/* Sends task i (begun) to w, its messages as w's protocol makes them: 0,
 * a negative code (the connection failed: the task is queued again), or 1
 * (the run failed: r->error says why). */
static int send_task(run *r, qp__worker *w, int64_t i)
{
    qp_value *m[2] = { NULL, NULL };
    int n = 0, rc = 0;
    if (w->proto->task(r, i, m, &n)) return 1;
    for (int k = 0; k < n && !rc; k++) {
        rc = qp_conn_send(w->c, m[k], QP_MSG_SYNC);
        push_flight(w, i, k == n - 1, r->t[i].sends, 1);
    }
    for (int k = 0; k < n; k++) qp_unref(m[k]);
    if (rc) requeue(r, i);          /* its final request may never have gone */
    else w->tasks_in++;
    assert(RING_OK(w));
    return rc;
}

/* Sends tasks ids[0..n) (n > 1, begun) to w in one message; as
 * send_task. */
static int send_batch(run *r, qp__worker *w, const int64_t *ids, int n)
{
    qp_value *m = NULL;
    if (w->proto->batch(r, ids, n, &m)) return 1;
    int rc = qp_conn_send(w->c, m, QP_MSG_SYNC);
    qp_unref(m);
    for (int k = 0; k < n; k++) {
        push_flight(w, ids[k], true, r->t[ids[k]].sends, n);
        if (rc) requeue(r, ids[k]);
    }
    if (!rc) w->tasks_in += n;
    assert(RING_OK(w));
    return rc;
}

static int alive_count(run *r)
{
    int n = 0;
    for (int i = 0; i < r->nw; i++) n += r->ws[i].c != NULL;
    return n;
}

static bool holds(const run *r, int wi, int64_t i)
{
    return !r->holds || !r->holds[wi] || r->holds[wi][i];
}

/* Whether a live worker other than wi holds task i. */
static bool held_elsewhere(const run *r, int wi, int64_t i)
{
    for (int w = 0; w < r->nw; w++)
        if (w != wi && r->ws[w].c && holds(r, w, i)) return true;
    return false;
}

/* The next task for worker wi, among those it holds: a retry that last
 * failed elsewhere (or anywhere, when no other live worker holds it), else
 * a fresh one (never sent), in plan order. */
static int64_t pick(run *r, int wi)
{
    for (int64_t k = 0; k < r->nretry; k++) {
        int64_t i = r->retry[k];
        if (holds(r, wi, i) && (r->t[i].last_worker != wi || !held_elsewhere(r, wi, i))) {
            memmove(r->retry + k, r->retry + k + 1, (size_t)(r->nretry - k - 1) * sizeof *r->retry);
            r->nretry--;
            return i;
        }
    }
    while (r->next_fresh < r->plan->n
           && (r->t[r->next_fresh].state != T_QUEUED || r->t[r->next_fresh].sends))
        r->next_fresh++;
    for (int64_t i = r->next_fresh; i < r->plan->n; i++)
        if (r->t[i].state == T_QUEUED && !r->t[i].sends && holds(r, wi, i)) return i;
    return -1;
}

/* True when tasks are left but no live worker is running or can take
 * one: their partitions are held only by workers that are gone. */
static bool stalled(run *r)
{
    for (int wi = 0; wi < r->nw; wi++)
        if (r->ws[wi].c && r->ws[wi].nfl) return false;
    for (int wi = 0; wi < r->nw; wi++)
        if (!r->ws[wi].dead_for_good && !r->ws[wi].c && r->ws[wi].local) return false;
    return r->ndone < r->plan->n;
}

/* Task i failed for good on worker wi (its last attempt): the run's
 * error says which task, partition and worker, and why (raised: what the
 * worker answered, read as its protocol's remote exception). */
static void task_lost(run *r, int64_t i, int wi, const char *why, bool raised, const char *d)
{
    const task *t = &r->t[i];
    if (!qp__failed(r)) {
        qp_run_error *e = &r->error;
        if (raised) {
            qp__fail_remote(r, &r->ws[wi], why);
        } else {            /* lost or timed out: nothing was raised */
            snprintf(e->worker, sizeof e->worker, "%s", r->ws[wi].addr);
            snprintf(e->cause, sizeof e->cause, "%s", why);
        }
        snprintf(e->partition, sizeof e->partition, "%s", d ? d : "?");
        e->task = i;
        e->attempts = t->attempts;
    }
    if (raised && !r->job->retry_errors)
        qp__fail(r, "task %" PRId64 " (%s) failed on %s: %s", i, d ? d : "?", r->ws[wi].addr, why);
    else
        qp__fail(r, "task %" PRId64 " (%s) failed after %d attempt%s: %s", i, d ? d : "?",
                 t->attempts, t->attempts == 1 ? "" : "s", why);
}

/* A failed attempt: the worker was lost or timed out, or (raised) the
 * function raised, which is retried only under [run] retry_errors: a bug
 * fails the same way every time. Returns false when the task has failed
 * for good. */
static bool task_failed(run *r, int64_t i, int wi, const char *why, bool raised)
{
    task *t = &r->t[i];
    t->attempts++;
    t->last_worker = wi;
    r->nfailed_attempts++;
    char *d = qp_part_describe(r->plan, i);
    if ((raised && !r->job->retry_errors) || t->attempts > r->job->retries) {
        task_lost(r, i, wi, why, raised, d);
        free(d);
        return false;
    }
    qp__ev ev = { .task = i, .partition = d, .worker = wi, .ms = -1, .rows = r->plan->parts[i].rows };
    qp__say_ev(r, "retry", &ev, "task %" PRId64 " (%s) failed on %s, retrying (%d/%d): %s", i,
        d ? d : "?", r->ws[wi].addr, t->attempts, r->job->retries, why);
    free(d);
    requeue(r, i);
    return true;
}

int qp__restart_worker(run *r, int wi)
{
    qp__worker *w = &r->ws[wi];
    char err[512] = "";
    if (!w->local || w->restarts >= 5) { w->dead_for_good = true; return -1; }
    w->restarts++;
    const qp_place *pl = r->place ? &r->place->worker[wi] : NULL;
    int rc = qp__worker_spawn(w, r->o->self, r->tmpdir, r->job, r->topo, pl, err, sizeof err);
    if (!rc && w->pin_error[0]) {
        snprintf(err, sizeof err, "worker %d", wi);
        qp__say_unpinned(r, err, pl, w->pin_error);
    }
    if (!rc) rc = qp__worker_connect(w, r->job, 30000, err, sizeof err);
    if (!rc) {
        char errs[1][512] = { "" };
        if (qp__setup_all(w, 1, &r->setup, qp__setup_timeout_ms(r->job), errs, NULL) != 1) {
            snprintf(err, sizeof err, "%s", errs[0]);
            rc = -1;
        }
    }
    if (rc) {
        qp__say(r, "worker", "worker %d could not be restarted: %s", wi, err);
        qp__worker_down(w, true);
        return -1;
    }
    qp__say(r, "worker", "worker %d restarted (pid %d)", wi, (int)w->pid);
    return 0;
}

/* A connection is gone or hung: its requests are requeued; the task it
 * was running counts a failed attempt when blame is set, unless it ran in
 * a batch, whose tasks all go again one per message instead (which of
 * them was at fault is not known). Returns false when that failure ends
 * the job. */
static bool worker_lost(run *r, int wi, const char *why, bool blame)
{
    qp__worker *w = &r->ws[wi];
    bool ok = true, seen = false;
    qp__say(r, "worker", "lost worker %d (%s): %s", wi, w->addr, why);
    int head_batch = 0;     /* entries of the message that was running */
    assert(RING_OK(w));
    for (int k = 0; k < w->nfl; k++) {
        qp__flight *f = &w->fl[(w->flhead + k) % RING_CAP];
        if (k == 0) head_batch = f->batch;
        if (!f->final) continue;
        bool running = !seen;      /* the first task awaited: the one running */
        seen = true;
        /* an answer no longer awaited: its task was sent again since */
        if (f->attempt != r->t[f->task].sends) continue;
        if (running && blame && f->batch == 1) {
            ok = task_failed(r, f->task, wi, why, false);
            continue;
        }
        if (k < head_batch && head_batch > 1) r->t[f->task].solo = true;
        requeue(r, f->task);
    }
    qp__worker_down(w, true);
    if (ok && w->local && !qp__stop_signal) qp__restart_worker(r, wi);
    else if (!w->local) w->dead_for_good = true;
    return ok;
}

/* n tasks finished on w at once: the moving average of the time between
 * finished tasks takes their mean. */
static void note_done(qp__worker *w, int n)
{
    int64_t now = now_us();
    if (w->last_done_us && n > 0) {
        double gap = (double)(now - w->last_done_us) / n;
        w->gap_us = w->gap_us > 0 ? 0.8 * w->gap_us + 0.2 * gap : gap;
    }
    w->last_done_us = now;
}

/* Task f.task's result v (stolen) from worker wi, its record staged in
 * the journal (the caller flushes). false when the run has failed. */
static bool task_done(run *r, int wi, const qp__flight *f, qp_value *v, int64_t started_ms)
{
    task *t = &r->t[f->task];
    if (r->ndone == 0 && qp__check_key(r, v, f->task)) {
        r->badjob = true;
        qp_unref(v);
        return false;
    }
    int rc = qp_journal_stage_value(r->journal, f->task, v);
    if (rc) {
        qp__fail(r, "journal: %s", qp_strerror(rc));
        qp_unref(v);
        return false;
    }
    t->state = T_DONE;
    t->result = v;
    r->ndone++;
    r->ws[wi].done++;
    if (r->plan->parts[f->task].rows > 0) r->rows_done += r->plan->parts[f->task].rows;
    if (r->mode == QP_LOG_LINES || r->mode == QP_LOG_JSON) {
        char *d = qp_part_describe(r->plan, f->task);
        char of[48] = "";
        if (f->batch > 1) snprintf(of, sizeof of, ", one of a batch of %d", f->batch);
        qp__ev ev = { .task = f->task, .partition = d, .worker = wi, .ms = qp__ms() - started_ms,
                      .rows = r->plan->parts[f->task].rows };
        qp__say_ev(r, "task", &ev, "task %" PRId64 " (%s) done on worker %d in %" PRId64 " ms%s",
            f->task, d ? d : "?", wi, ev.ms, of);
        free(d);
    }
    return true;
}

/* Whether v is a batch's answer for n tasks: (ok; r), a boolean and an
 * item of r per task. */
static bool batch_shaped(const qp_value *v, int n)
{
    return v->type == QP_LIST && v->v.n == 2 && qp_K(v)[0]->type == QP_BOOL &&
           qp_K(v)[0]->v.n == n && qp_K(v)[1]->type == QP_LIST && qp_K(v)[1]->v.n == n;
}

/* The answer v (stolen) to a batch, whose n entries fl[0..n) were taken
 * off the ring: each task's result or error, as if it had come alone. A
 * worker that refuses the batch as a whole (an older server, a table it
 * lacks) gets its tasks again one per message, where each answers for
 * itself. false when the run has failed; the tasks that finished are
 * journaled even then. */
static bool on_batch(run *r, int wi, const qp__flight *fl, int n, qp_value *v, int64_t started_ms)
{
    qp__worker *w = &r->ws[wi];
    bool shaped = batch_shaped(v, n), ok = true;
    if (!shaped) {
        char why[200];
        snprintf(why, sizeof why, "%s", qp_is_error(v) ? v->s : "an answer that is not (ok; results)");
        qp__say(r, "worker", "worker %d refused a batch of %d tasks (%s): they go one per message",
            wi, n, why);
        w->nobatch = true;
    }
    for (int k = 0; k < n; k++) {
        const qp__flight *f = &fl[k];
        task *t = &r->t[f->task];
        w->tasks_in--;
        if (f->attempt != t->sends || t->state != T_RUNNING) continue;     /* stale */
        if (!shaped) {
            t->solo = true;
            requeue(r, f->task);
            continue;
        }
        qp_value *x = qp_ref(qp_K(qp_K(v)[1])[k]);
        if (qp_G(qp_K(v)[0])[k]) {
            ok = task_done(r, wi, f, x, started_ms) && ok;
            continue;
        }
        char *why = x->type == QP_CHAR ? strndup(x->v.data, (size_t)x->v.n) : strdup("not a text");
        qp_unref(x);
        if (!why) { qp__fail(r, "out of memory"); ok = false; continue; }
        ok = task_failed(r, f->task, wi, why, true) && ok;
        free(why);
    }
    note_done(w, n);
    qp_unref(v);
    int rc = qp_journal_flush(r->journal);
    if (rc) qp__fail(r, "journal: %s", qp_strerror(rc));
    return ok && !rc;
}

/* One response from worker wi. Returns false when the job has failed. */
static bool on_response(run *r, int wi, qp_buf *m, const qp_ipc_header *h)
{
    qp__worker *w = &r->ws[wi];
    if (h->msgtype != QP_MSG_RESPONSE) return true;     /* async chatter: ignored */
    if (w->nfl == 0) return worker_lost(r, wi, "response without a request", false);
    assert(RING_OK(w));
    qp__flight fl[QP__MAX_BATCH];
    int n = w->fl[w->flhead].batch;
    assert(n >= 1 && n <= QP__MAX_BATCH && n <= w->nfl);
    for (int k = 0; k < n; k++) {
        fl[k] = w->fl[w->flhead];
        w->flhead = (w->flhead + 1) % RING_CAP;
        w->nfl--;
    }
    /* A worker runs its requests in order: this one started when it was
     * sent or when the previous answer came, whichever was later. */
    int64_t started_ms = fl[0].sent_ms > w->head_start_ms ? fl[0].sent_ms : w->head_start_ms;
    w->head_start_ms = qp__ms();
    qp_value *v = qp_ipc_decode(m, NULL);
    if (!v) { qp__fail(r, "out of memory"); return false; }
    if (n > 1) return on_batch(r, wi, fl, n, v, started_ms);
    qp__flight f = fl[0];
    task *t = &r->t[f.task];
    bool ok = true;
    bool stale = f.attempt != t->sends || t->state != T_RUNNING;
    if (f.final) w->tasks_in--;
    assert(RING_OK(w) && f.attempt <= t->sends);
    if (stale) { qp_unref(v); return true; }
    if (!f.final) {
        if (qp_is_error(v)) {
            t->attempt_failed = true;
            ok = task_failed(r, f.task, wi, v->s, true);
        }
        qp_unref(v);
        return ok;
    }
    if (t->attempt_failed) { qp_unref(v); return true; }
    if (qp_is_error(v)) {
        ok = task_failed(r, f.task, wi, v->s, true);
        qp_unref(v);
        return ok;
    }
    note_done(w, 1);
    if (!task_done(r, wi, &f, v, started_ms)) return false;
    int rc = qp_journal_flush(r->journal);
    if (rc) qp__fail(r, "journal: %s", qp_strerror(rc));
    return !rc;
}

static int journal_sync(run *r)
{
    int rc = qp_journal_sync_async(r->journal);
    if (rc) qp__fail(r, "journal: %s", qp_strerror(rc));
    return rc;
}

/* Takes up to want tasks for worker wi into ids, begun: their count.
 * *solo when one of them must go alone. */
static int take_tasks(run *r, int wi, int want, int64_t *ids, bool *solo)
{
    int k = 0;
    *solo = false;
    while (k < want) {
        int64_t i = pick(r, wi);
        if (i < 0) break;
        begin_task(r, i);
        ids[k++] = i;
        *solo = *solo || r->t[i].solo;
    }
    return k;
}

/* Sends tasks ids[0..n) (begun) to w: one message when they may share
 * one, else one each. As send_task; tasks not sent are queued again. */
static int send_tasks(run *r, qp__worker *w, const int64_t *ids, int n, bool solo)
{
    if (n > 1 && !solo) return send_batch(r, w, ids, n);
    for (int k = 0; k < n; k++) {
        int rc = send_task(r, w, ids[k]);
        if (rc) {
            while (++k < n) requeue(r, ids[k]);
            return rc;
        }
    }
    return 0;
}

/* Fills every worker's window with tasks. false: the run failed. */
static bool fill_windows(run *r, int fixed)
{
    for (int wi = 0; wi < r->nw; wi++) {
        qp__worker *w = &r->ws[wi];
        int batch = batch_size(r, w);
        int window = fixed ? fixed : auto_window(w, batch);
        while (w->c && w->tasks_in < window) {
            int64_t ids[QP__MAX_BATCH];
            bool solo;
            int n = take_tasks(r, wi, window - w->tasks_in < batch ? window - w->tasks_in : batch,
                               ids, &solo);
            if (!n) break;
            int rc = send_tasks(r, w, ids, n, solo);
            if (rc > 0) return false;
            if (rc) {
                if (!worker_lost(r, wi, qp_conn_errstr(w->c), false)) return false;
                break;
            }
        }
        assert(!w->c || RING_OK(w));
    }
    return true;
}

/* The connections to wait on (pfd, and who[k] the worker of pfd[k]) and
 * how long (*wait, ms): the next task timeout, or 0 when a connection
 * already holds bytes. Workers past their task timeout are lost here.
 * The count, or -1: the run failed. */
static int poll_set(run *r, struct pollfd *pfd, int *who, int64_t *wait)
{
    const qp_job *j = r->job;
    int n = 0;
    int64_t now = qp__ms();
    *wait = 200;
    for (int wi = 0; wi < r->nw; wi++) {
        qp__worker *w = &r->ws[wi];
        if (!w->c) continue;
        if (w->nfl && j->task_timeout_ms) {
            int64_t left = w->head_start_ms + j->task_timeout_ms - now;
            if (left <= 0) {
                char why[64];
                snprintf(why, sizeof why, "timed out after %" PRId64 " ms", j->task_timeout_ms);
                if (!worker_lost(r, wi, why, true)) return -1;
                continue;
            }
            if (left < *wait) *wait = left;
        }
        /* Bytes the connection already holds are invisible to poll. */
        if (qp_conn_pending(w->c)) *wait = 0;
        pfd[n] = (struct pollfd){ .fd = qp_conn_fd(w->c), .events = POLLIN };
        who[n++] = wi;
    }
    return n;
}

/* No connection left: restarts the local workers that may be. false
 * (with r->error) if none could be. */
static bool restart_all(run *r)
{
    bool any = false;
    for (int wi = 0; wi < r->nw; wi++)
        if (!r->ws[wi].dead_for_good && r->ws[wi].local && qp__restart_worker(r, wi) == 0) any = true;
    if (!any)
        qp__fail(r, "no worker left (%" PRId64 " of %" PRId64 " tasks done)", r->ndone, r->plan->n);
    return any;
}

/* Takes every whole message worker wi's connection holds, even when it
 * then turns out closed (those results are good); a broken connection
 * loses the worker. false: the run failed. */
static bool read_worker(run *r, int wi)
{
    qp__worker *w = &r->ws[wi];
    int rc = 0;
    for (;;) {
        qp_buf *m = NULL;
        qp_ipc_header h;
        int got = qp_conn_recv_nowait(w->c, &m, &h);
        if (got == 0) {
            bool ok = on_response(r, wi, m, &h);
            qp_buf_unref(m);
            if (!ok) return false;
            if (!w->c) break;
            continue;
        }
        if (got != -EAGAIN) rc = got;
        break;
    }
    if (rc && w->c) {
        char why[256];
        const char *e = qp_conn_errstr(w->c);
        snprintf(why, sizeof why, "%s", e[0] ? e : qp_strerror(rc));
        if (!worker_lost(r, wi, why, true)) return false;
    }
    return true;
}

int qp__dispatch(run *r)
{
    const qp_job *j = r->job;
    int fixed = j->window < QP__MAX_WINDOW ? j->window : QP__MAX_WINDOW;
    struct pollfd *pfd = calloc((size_t)r->nw, sizeof *pfd);
    int *who = calloc((size_t)r->nw, sizeof *who);
    int result = QP_RUN_OK;
    if (!pfd || !who) { result = QP_RUN_FAILED; goto out; }
    while (r->ndone < r->plan->n) {
        if (qp__stop_signal) { result = QP_RUN_INTERRUPTED; break; }
        if (!fill_windows(r, fixed)) goto failed;
        if (stalled(r) && alive_count(r) > 0) {
            qp__fail(r, "%" PRId64 " of %" PRId64 " tasks left, and no live worker holds their "
                     "partitions", r->plan->n - r->ndone, r->plan->n);
            goto failed;
        }
        /* Group commit, now that every worker has work: the disk wait
         * overlaps the tasks instead of stalling the loop once per task. */
        if (journal_sync(r)) goto failed;
        int64_t wait;
        int n = poll_set(r, pfd, who, &wait);
        if (n < 0) goto failed;
        if (n == 0) {
            if (!restart_all(r)) goto failed;
            continue;
        }
        qp__draw_bar(r, false);
        int pr = poll(pfd, (nfds_t)n, (int)wait);
        if (pr < 0 && errno != EINTR) {
            qp__fail(r, "poll: %s", strerror(errno));
            goto failed;
        }
        for (int k = 0; pr >= 0 && k < n; k++) {
            qp__worker *w = &r->ws[who[k]];
            if (!pfd[k].revents && !(w->c && qp_conn_pending(w->c))) continue;
            if (w->c && !read_worker(r, who[k])) goto failed;
        }
    }
    qp__draw_bar(r, true);
    /* Interrupted: what was received is made durable now. Done: run.c
     * syncs while the reducer runs (qp__call_one), or before the output. */
    if (result != QP_RUN_OK && journal_sync(r)) result = QP_RUN_FAILED;
    goto out;
failed:
    journal_sync(r);
    result = r->badjob ? QP_RUN_BADJOB : QP_RUN_FAILED;
out:
    free(pfd);
    free(who);
    return result;
}
