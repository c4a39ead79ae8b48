/* dispatch.c - the scheduler's loop: one thread, poll() over every worker
 * connection; each keeps a small window of sync calls in flight from one
 * shared queue, so a fast worker takes more tasks and nobody waits on a
 * slow one. Responses are read through the connection (qp_conn_recv_nowait
 * until it would block, so nothing buffered is missed by poll); failures
 * are retried elsewhere, lost workers' tasks requeued, local workers
 * restarted.
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
 * holding back most of the queue. */
static int auto_window(const qp__worker *w)
{
    return w->gap_us > 0 && w->gap_us < 2000 ? 16 : 2;
}

/* The ring of requests in flight holds at most two per task of a full
 * window; its head is in range, and every task counted in flight has its
 * final request in the ring. */
#define RING_CAP ((int)(sizeof ((qp__worker *)0)->fl / sizeof ((qp__worker *)0)->fl[0]))
#define RING_OK(w) ((w)->nfl >= 0 && (w)->nfl <= RING_CAP && (w)->flhead >= 0 \
                    && (w)->flhead < RING_CAP && (w)->tasks_in >= 0 && (w)->tasks_in <= (w)->nfl)

static void push_flight(qp__worker *w, int64_t task, bool final, int attempt)
{
    assert(RING_OK(w) && w->nfl < RING_CAP);
    int at = (w->flhead + w->nfl) % RING_CAP;
    w->fl[at] = (qp__flight){ .task = task, .final = final, .attempt = attempt,
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

/* Sends task i to w, its messages as w's protocol makes them: 0, a
 * negative code (the connection failed: the task is queued again), or 1
 * (the run failed: r->error says why). */
static int send_task(run *r, qp__worker *w, int64_t i)
{
    qp_value *m[2] = { NULL, NULL };
    int n = 0, rc = 0;
    assert(r->t[i].state == T_QUEUED);
    if (w->proto->task(r, i, m, &n)) return 1;
    r->t[i].state = T_RUNNING;
    r->t[i].attempt_failed = false;
    r->t[i].sends++;
    for (int k = 0; k < n && !rc; k++) {
        rc = qp_conn_send(w->c, m[k], QP_MSG_SYNC);
        push_flight(w, i, k == n - 1, r->t[i].sends);
    }
    for (int k = 0; k < n; k++) qp_unref(m[k]);
    if (rc) requeue(r, i);          /* its final request may never have gone */
    else w->tasks_in++;
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
 * was running counts a failed attempt when blame is set. Returns false
 * when that failure ends the job. */
static bool worker_lost(run *r, int wi, const char *why, bool blame)
{
    qp__worker *w = &r->ws[wi];
    bool ok = true;
    qp__say(r, "worker", "lost worker %d (%s): %s", wi, w->addr, why);
    int64_t head = -1;
    assert(RING_OK(w));
    for (int k = 0; k < w->nfl; k++) {
        qp__flight *f = &w->fl[(w->flhead + k) % RING_CAP];
        if (!f->final) continue;
        if (head < 0) {
            head = f->task;
            if (blame) { ok = task_failed(r, f->task, wi, why, false); continue; }
        }
        requeue(r, f->task);
    }
    qp__worker_down(w, true);
    if (ok && w->local && !qp__stop_signal) qp__restart_worker(r, wi);
    else if (!w->local) w->dead_for_good = true;
    return ok;
}

/* One response from worker wi. Returns false when the job has failed. */
static bool on_response(run *r, int wi, qp_buf *m, const qp_ipc_header *h)
{
    qp__worker *w = &r->ws[wi];
    if (h->msgtype != QP_MSG_RESPONSE) return true;     /* async chatter: ignored */
    if (w->nfl == 0) return worker_lost(r, wi, "response without a request", false);
    assert(RING_OK(w));
    qp__flight f = w->fl[w->flhead];
    w->flhead = (w->flhead + 1) % RING_CAP;
    w->nfl--;
    /* A worker runs its requests in order: this one started when it was
     * sent or when the previous answer came, whichever was later. */
    int64_t started_ms = f.sent_ms > w->head_start_ms ? f.sent_ms : w->head_start_ms;
    w->head_start_ms = qp__ms();
    task *t = &r->t[f.task];
    qp_value *v = qp_ipc_decode(m, NULL);
    if (!v) { qp__fail(r, "out of memory"); return false; }
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
    if (r->ndone == 0 && qp__check_key(r, v, f.task)) {
        r->badjob = true;
        qp_unref(v);
        return false;
    }
    /* Journal the response bytes as received: decoding them again on
     * --resume gives exactly this value. */
    int rc = qp_journal_write(r->journal, f.task, m->data, m->len);
    if (rc) {
        qp__fail(r, "journal: %s", qp_strerror(rc));
        qp_unref(v);
        return false;
    }
    t->state = T_DONE;
    t->result = v;
    r->ndone++;
    w->done++;
    int64_t now = now_us();
    if (w->last_done_us) {
        double gap = (double)(now - w->last_done_us);
        w->gap_us = w->gap_us > 0 ? 0.8 * w->gap_us + 0.2 * gap : gap;
    }
    w->last_done_us = now;
    if (r->plan->parts[f.task].rows > 0) r->rows_done += r->plan->parts[f.task].rows;
    if (r->mode == QP_LOG_LINES || r->mode == QP_LOG_JSON) {
        char *d = qp_part_describe(r->plan, f.task);
        qp__ev ev = { .task = f.task, .partition = d, .worker = wi, .ms = qp__ms() - started_ms,
                      .rows = r->plan->parts[f.task].rows };
        qp__say_ev(r, "task", &ev, "task %" PRId64 " (%s) done on worker %d in %" PRId64 " ms",
            f.task, d ? d : "?", wi, ev.ms);
        free(d);
    }
    return true;
}

static int journal_sync(run *r)
{
    int rc = qp_journal_sync_async(r->journal);
    if (rc) qp__fail(r, "journal: %s", qp_strerror(rc));
    return rc;
}

/* Fills every worker's window with tasks. false: the run failed. */
static bool fill_windows(run *r, int fixed)
{
    for (int wi = 0; wi < r->nw; wi++) {
        qp__worker *w = &r->ws[wi];
        int window = fixed ? fixed : auto_window(w);
        while (w->c && w->tasks_in < window) {
            int64_t i = pick(r, wi);
            if (i < 0) break;
            int rc = send_task(r, w, i);
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
