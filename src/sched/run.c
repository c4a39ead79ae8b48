/* run.c - `qpeach run`: lock, input, workers, plan, journal, dispatch,
 * merge, output. One thread: poll() over every connection; each keeps a
 * small window of sync calls in flight from one shared queue, so a fast
 * worker takes more tasks and nobody waits on a slow one. */
#include "qpeach/journal.h"
#include "qpeach/table.h"
#include "sched_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static volatile sig_atomic_t stop_signal;
static void on_signal(int sig) { stop_signal = sig; }

enum { T_QUEUED, T_RUNNING, T_DONE };

typedef struct task {
    int state;
    int attempts;          /* failed attempts so far */
    int last_worker;       /* where it last failed (-1: none) */
    bool attempt_failed;   /* a non-final message of this attempt failed */
    int sends;             /* attempts sent so far */
    qp_value *result;
} task;

typedef struct run {
    const qp_job *job;
    const qp_run_opts *o;
    FILE *log;
    int mode;              /* enum qp_run_log, resolved */
    qp_topo *topo;
    qp_plan *place;
    qp__worker *ws;
    int nw;
    char tmpdir[256];
    char *input_path;      /* what workers load (NULL: resident table) */
    qp_value *input;       /* the input table when the scheduler read it */
    qp_partplan *plan;
    task *t;
    int64_t ndone, nfailed_attempts, rows_done, rows_total;
    int64_t t0, last_draw;
    qp_journal *journal;
    int64_t next_fresh;    /* next never-tried task */
    int64_t *retry;        /* tasks waiting for another attempt */
    int64_t nretry;
    char failure[1024];    /* why the job failed */
} run;

/* ---- logging ---- */

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void clear_bar(run *r)
{
    if (r->mode == QP_LOG_BAR && r->last_draw) fprintf(r->log, "\r\033[K");
}

/* A log event: text for people, or one JSON object with event + message. */
static void say(run *r, const char *event, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(run *r, const char *event, const char *fmt, ...)
{
    if (r->mode == QP_LOG_QUIET && strcmp(event, "error")) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r->mode == QP_LOG_JSON) {
        fprintf(r->log, "{\"t\":%.3f,\"event\":", (qp__ms() - r->t0) / 1000.0);
        json_str(r->log, event);
        fprintf(r->log, ",\"done\":%" PRId64 ",\"total\":%" PRId64 ",\"message\":", r->ndone,
                r->plan ? r->plan->n : 0);
        json_str(r->log, msg);
        fprintf(r->log, "}\n");
    } else {
        clear_bar(r);
        fprintf(r->log, "qpeach run %s: %s\n", r->job->name, msg);
        r->last_draw = 0;
    }
    fflush(r->log);
}

static void draw_bar(run *r, bool force)
{
    if (r->mode != QP_LOG_BAR || !r->plan) return;
    int64_t now = qp__ms();
    if (!force && now - r->last_draw < 100) return;
    r->last_draw = now;
    double secs = (now - r->t0) / 1000.0;
    int64_t n = r->plan->n;
    int width = 30, fill = n ? (int)(width * r->ndone / n) : width;
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    char rate[64] = "", eta[32] = "";
    if (r->rows_total > 0 && secs > 0)
        snprintf(rate, sizeof rate, "  %.2fM rows/s", r->rows_done / secs / 1e6);
    if (r->ndone > 0 && r->ndone < n)
        snprintf(eta, sizeof eta, "  ETA %.0fs", secs / r->ndone * (n - r->ndone));
    fprintf(r->log, "\r\033[K[%s] %" PRId64 "/%" PRId64 " tasks%s%s  %" PRId64 " failed", bar,
            r->ndone, n, rate, eta, r->nfailed_attempts);
    fflush(r->log);
}

/* ---- input and identity ---- */

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* A CSV input is parsed once, here, into a q IPC file beside the journal;
 * every worker loads that binary copy. Reused while newer than the CSV. */
static void mkdir_p(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') { *p = '\0'; mkdir(buf, 0755); *p = '/'; }
    mkdir(buf, 0755);
}

static int prepare_input(run *r, bool need_table)
{
    const qp_job *j = r->job;
    if (!j->file) return 0;
    struct stat st, qs;
    if (stat(j->file, &st)) {
        snprintf(r->failure, sizeof r->failure, "input %s: %s", j->file, strerror(errno));
        return QP_RUN_FAILED;
    }
    if (!ends_with(j->file, ".csv")) {
        r->input_path = strdup(j->file);
        if (need_table) r->input = qp_table_load(j->file, NULL);
    } else {
        r->input_path = qp_job_state_path(j, "input.qipc");
        if (!r->input_path) return QP_RUN_FAILED;
        bool fresh = !stat(r->input_path, &qs)
                     && (qs.st_mtim.tv_sec > st.st_mtim.tv_sec
                         || (qs.st_mtim.tv_sec == st.st_mtim.tv_sec && qs.st_mtim.tv_nsec >= st.st_mtim.tv_nsec));
        if (!fresh || need_table) {
            int64_t t = qp__ms();
            qp_csv_opts co = { .types = j->csv_types, .threads = 2 };
            r->input = qp_csv_load(j->file, &co);
            if (r->input && !qp_is_error(r->input) && !fresh && !r->o->dry_run) {
                char tmp[600];
                snprintf(tmp, sizeof tmp, "%s.tmp.%d", r->input_path, (int)getpid());
                int rc = qp_ipcfile_write(r->input, tmp);
                if (!rc && rename(tmp, r->input_path)) rc = -errno;
                if (rc) {
                    unlink(tmp);
                    snprintf(r->failure, sizeof r->failure, "writing %s: %s", r->input_path,
                             qp_strerror(rc));
                    return QP_RUN_FAILED;
                }
                say(r, "input", "parsed %s once (%" PRId64 " rows, %.1fs) into %s", j->file,
                    qp_count(r->input), (qp__ms() - t) / 1000.0, r->input_path);
            }
        }
    }
    if (need_table && (!r->input || qp_is_error(r->input))) {
        snprintf(r->failure, sizeof r->failure, "input %s: %s", j->file,
                 r->input ? r->input->s : "out of memory");
        return QP_RUN_FAILED;
    }
    return 0;
}

/* What must be unchanged for a journal to be resumed. */
static int job_ids(run *r, qp_journal_id ids[3])
{
    const qp_job *j = r->job;
    int rc = qp_sha256_file(j->path, ids[0].sha);
    ids[0].what = "job file";
    if (rc) return rc;
    /* Code: the function's and the reducer's module files, as sent. */
    uint8_t h1[32], h2[32] = {0};
    if ((rc = qp_sha256_file(j->function.file, h1))) return rc;
    if (j->reducer.file && (rc = qp_sha256_file(j->reducer.file, h2))) return rc;
    uint8_t both[64];
    memcpy(both, h1, 32);
    memcpy(both + 32, h2, 32);
    qp_sha256(both, 64, ids[1].sha);
    ids[1].what = "function code";
    /* Input: name, size and modification time of each input file (hashing
     * gigabytes on every run would cost more than the check is worth). */
    char *desc = NULL;
    size_t dlen = 0;
    FILE *m = open_memstream(&desc, &dlen);
    if (!m) return QP_ENOMEM;
    struct stat st;
    if (j->file && !stat(j->file, &st))
        fprintf(m, "%s %lld %lld.%09ld\n", j->file, (long long)st.st_size,
                (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    for (int64_t i = 0; r->plan && i < r->plan->n; i++)
        if (r->plan->parts[i].file && !stat(r->plan->parts[i].file, &st))
            fprintf(m, "%s %lld %lld.%09ld\n", r->plan->parts[i].file, (long long)st.st_size,
                    (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    fclose(m);
    qp_sha256(desc, dlen, ids[2].sha);
    ids[2].what = "input";
    free(desc);
    return 0;
}

/* ---- planning ---- */

static qp__worker *first_ready(run *r)
{
    for (int i = 0; i < r->nw; i++) if (r->ws[i].c) return &r->ws[i];
    return NULL;
}

/* One sync call on a ready worker (planning, reducing). New reference or
 * NULL with r->failure set. */
static qp_value *call_one(run *r, qp_value *msg)
{
    qp__worker *w = first_ready(r);
    if (!w || !msg) {
        snprintf(r->failure, sizeof r->failure, "%s", msg ? "no worker is usable" : "out of memory");
        qp_unref(msg);
        return NULL;
    }
    qp_value *v = qp_conn_call(w->c, msg);
    qp_unref(msg);
    if (!v) snprintf(r->failure, sizeof r->failure, "%s: %s", w->addr, qp_conn_errstr(w->c));
    return v;
}

static int make_plan(run *r, int slots)
{
    const qp_job *j = r->job;
    int rc = 0;
    if (j->part_by == QP_PART_FILE) {
        rc = qp_partplan_files(j->files, &r->plan);
        if (rc == QP_EARG) snprintf(r->failure, sizeof r->failure, "no file matches %s", j->files);
    } else if (j->part_by == QP_PART_ROWS) {
        int64_t count;
        if (r->input) count = qp_count(r->input);
        else {
            qp_value *v = call_one(r, qp__call(".qp.count", 1, qp_symbol(j->table)));
            if (!v) return QP_RUN_FAILED;
            if (v->type != -QP_LONG) {
                snprintf(r->failure, sizeof r->failure, "counting table %s: %s", j->table,
                         qp_is_error(v) ? v->s : "not a count");
                qp_unref(v);
                return QP_RUN_FAILED;
            }
            count = v->j;
            qp_unref(v);
        }
        rc = qp_partplan_rows(count, j->pieces ? j->pieces : 4 * (slots ? slots : 1), &r->plan);
    } else {
        qp_value *col = NULL;
        if (r->input) {
            col = qp_table_column(r->input, j->column);
            if (col) qp_ref(col);
        } else {
            /* The values come from a worker: a small helper function over
             * the whole table returns the distinct values of the column. */
            char code[512];
            snprintf(code, sizeof code, "def qp__distinct(t):\n    import numpy\n"
                     "    return numpy.unique(numpy.asarray(t['%s']))\n", j->column);
            qp_value *v = call_one(r, qp__call(".qp.def", 2, qp_symbol("qp__distinct"), qp_cstring(code)));
            if (v && !qp_is_error(v)) {
                qp_unref(v);
                qp_value *all = qp_vector(QP_LONG, 2);
                if (all) { qp_J(all)[0] = 0; qp_J(all)[1] = QP_INF_J; }
                v = call_one(r, qp__call(".qp.apply", 3, qp_symbol("qp__distinct"),
                                         qp_symbol(j->table), all));
            }
            if (!v) return QP_RUN_FAILED;
            if (qp_is_error(v)) {
                snprintf(r->failure, sizeof r->failure, "distinct values of %s.%s: %s", j->table,
                         j->column, v->s);
                qp_unref(v);
                return QP_RUN_FAILED;
            }
            col = v;
        }
        if (!col) {
            snprintf(r->failure, sizeof r->failure, "input has no column %s", j->column);
            return QP_RUN_FAILED;
        }
        rc = qp_partplan_column(j->column, col, &r->plan);
        qp_unref(col);
        if (rc == QP_ETYPE || rc == QP_EARG)
            snprintf(r->failure, sizeof r->failure, "cannot partition by column %s", j->column);
    }
    if (rc) {
        if (!r->failure[0]) snprintf(r->failure, sizeof r->failure, "planning: %s", qp_strerror(rc));
        return QP_RUN_FAILED;
    }
    r->rows_total = 0;
    for (int64_t i = 0; i < r->plan->n; i++)
        if (r->plan->parts[i].rows > 0) r->rows_total += r->plan->parts[i].rows;
    return 0;
}

/* ---- dispatch ---- */

static qp_value **setup_msgs;
static int nsetup;

static qp_value *task_msg(run *r, int64_t i, bool load_step)
{
    const qp_job *j = r->job;
    const qp_part *p = &r->plan->parts[i];
    if (p->kind == QP_PART_FILE) {
        /* A file partition: the worker loads the file as a table of its
         * own, then runs the function over all of it. */
        if (load_step) return qp__call(".qp.load", 2, qp_symbol("qp__part"), qp_cstring(p->file));
        qp_value *all = qp_vector(QP_LONG, 2);
        if (all) { qp_J(all)[0] = 0; qp_J(all)[1] = QP_INF_J; }
        return qp__call(".qp.apply", 3, qp_symbol(j->function.name), qp_symbol("qp__part"), all);
    }
    return qp__call(".qp.apply", 3, qp_symbol(j->function.name), qp_symbol(j->table),
                    qp_part_descriptor(r->plan, i));
}

static void push_flight(qp__worker *w, int64_t task, bool final, int attempt)
{
    int at = (w->flhead + w->nfl) % (int)(sizeof w->fl / sizeof *w->fl);
    w->fl[at] = (qp__flight){ .task = task, .final = final, .attempt = attempt,
                              .sent_ms = qp__ms() };
    if (w->nfl == 0) w->head_start_ms = w->fl[at].sent_ms;
    w->nfl++;
}

static int send_task(run *r, qp__worker *w, int64_t i)
{
    bool file = r->plan->parts[i].kind == QP_PART_FILE;
    r->t[i].state = T_RUNNING;
    r->t[i].attempt_failed = false;
    r->t[i].sends++;
    for (int step = file ? 0 : 1; step < 2; step++) {
        qp_value *m = task_msg(r, i, step == 0);
        int rc = m ? qp_conn_send(w->c, m, QP_MSG_SYNC) : QP_ENOMEM;
        qp_unref(m);
        push_flight(w, i, step == 1, r->t[i].sends);
        if (rc) return rc;
    }
    w->tasks_in++;
    return 0;
}

static int alive_count(run *r)
{
    int n = 0;
    for (int i = 0; i < r->nw; i++) n += r->ws[i].c != NULL;
    return n;
}

/* The next task for worker wi: a retry that last failed elsewhere (or
 * anywhere, when it is the only worker left), else a fresh one. */
static int64_t pick(run *r, int wi)
{
    bool alone = alive_count(r) <= 1;
    for (int64_t k = 0; k < r->nretry; k++) {
        int64_t i = r->retry[k];
        if (alone || r->t[i].last_worker != wi) {
            memmove(r->retry + k, r->retry + k + 1, (size_t)(r->nretry - k - 1) * sizeof *r->retry);
            r->nretry--;
            return i;
        }
    }
    while (r->next_fresh < r->plan->n && r->t[r->next_fresh].state != T_QUEUED) r->next_fresh++;
    return r->next_fresh < r->plan->n ? r->next_fresh++ : -1;
}

static void requeue(run *r, int64_t i)
{
    if (r->t[i].state != T_RUNNING) return;     /* already queued, or done */
    r->t[i].state = T_QUEUED;
    r->retry[r->nretry++] = i;
}

/* A failed attempt. Returns false when the task has failed for good. */
static bool task_failed(run *r, int64_t i, int wi, const char *why)
{
    task *t = &r->t[i];
    t->attempts++;
    t->last_worker = wi;
    r->nfailed_attempts++;
    char *d = qp_part_describe(r->plan, i);
    if (t->attempts > r->job->retries) {
        snprintf(r->failure, sizeof r->failure, "task %" PRId64 " (%s) failed after %d attempt%s: %s",
                 i, d ? d : "?", t->attempts, t->attempts == 1 ? "" : "s", why);
        free(d);
        return false;
    }
    say(r, "retry", "task %" PRId64 " (%s) failed on %s, retrying (%d/%d): %s", i, d ? d : "?",
        r->ws[wi].addr, t->attempts, r->job->retries, why);
    free(d);
    requeue(r, i);
    return true;
}

static int restart_worker(run *r, int wi)
{
    qp__worker *w = &r->ws[wi];
    char err[512] = "";
    if (!w->local || w->restarts >= 5) { w->dead_for_good = true; return -1; }
    w->restarts++;
    int rc = qp__worker_spawn(w, r->o->self, r->tmpdir, r->job->threads, r->topo,
                              r->place ? &r->place->worker[wi] : NULL, err, sizeof err);
    if (!rc) rc = qp__worker_connect(w, r->job, 30000, err, sizeof err);
    if (!rc) {
        char errs[1][512] = { "" };
        if (qp__setup_all(w, 1, setup_msgs, nsetup, 300000, errs) != 1) {
            snprintf(err, sizeof err, "%s", errs[0]);
            rc = -1;
        }
    }
    if (rc) {
        say(r, "worker", "worker %d could not be restarted: %s", wi, err);
        qp__worker_down(w, true);
        return -1;
    }
    say(r, "worker", "worker %d restarted (pid %d)", wi, (int)w->pid);
    return 0;
}

/* A connection is gone or hung: its requests are requeued; the task it
 * was running counts a failed attempt when blame is set. Returns false
 * when that failure ends the job. */
static bool worker_lost(run *r, int wi, const char *why, bool blame)
{
    qp__worker *w = &r->ws[wi];
    bool ok = true;
    say(r, "worker", "lost worker %d (%s): %s", wi, w->addr, why);
    int cap = (int)(sizeof w->fl / sizeof *w->fl);
    int64_t head = -1;
    for (int k = 0; k < w->nfl; k++) {
        qp__flight *f = &w->fl[(w->flhead + k) % cap];
        if (!f->final) continue;
        if (head < 0) {
            head = f->task;
            if (blame) { ok = task_failed(r, f->task, wi, why); continue; }
        }
        requeue(r, f->task);
    }
    qp__worker_down(w, true);
    if (ok && w->local && !stop_signal) restart_worker(r, wi);
    else if (!w->local) w->dead_for_good = true;
    return ok;
}

/* One response from worker wi. Returns false when the job has failed. */
static bool on_response(run *r, int wi, qp_buf *m, const qp_ipc_header *h)
{
    qp__worker *w = &r->ws[wi];
    if (h->msgtype != QP_MSG_RESPONSE) return true;     /* async chatter: ignored */
    if (w->nfl == 0) return worker_lost(r, wi, "response without a request", false);
    int cap = (int)(sizeof w->fl / sizeof *w->fl);
    qp__flight f = w->fl[w->flhead];
    w->flhead = (w->flhead + 1) % cap;
    w->nfl--;
    w->head_start_ms = qp__ms();
    task *t = &r->t[f.task];
    qp_value *v = qp_ipc_decode(m, NULL);
    if (!v) { snprintf(r->failure, sizeof r->failure, "out of memory"); return false; }
    bool ok = true;
    bool stale = f.attempt != t->sends || t->state != T_RUNNING;
    if (f.final) w->tasks_in--;
    if (stale) { qp_unref(v); return true; }
    if (!f.final) {
        if (qp_is_error(v)) {
            t->attempt_failed = true;
            ok = task_failed(r, f.task, wi, v->s);
        }
        qp_unref(v);
        return ok;
    }
    if (t->attempt_failed) { qp_unref(v); return true; }
    if (qp_is_error(v)) {
        ok = task_failed(r, f.task, wi, v->s);
        qp_unref(v);
        return ok;
    }
    /* Journal the response bytes as received: decoding them again on
     * --resume gives exactly this value. */
    int rc = qp_journal_append(r->journal, f.task, m->data, m->len);
    if (rc) {
        snprintf(r->failure, sizeof r->failure, "journal: %s", qp_strerror(rc));
        qp_unref(v);
        return false;
    }
    t->state = T_DONE;
    t->result = v;
    r->ndone++;
    w->done++;
    if (r->plan->parts[f.task].rows > 0) r->rows_done += r->plan->parts[f.task].rows;
    if (r->mode == QP_LOG_LINES || r->mode == QP_LOG_JSON) {
        char *d = qp_part_describe(r->plan, f.task);
        say(r, "task", "task %" PRId64 " (%s) done on worker %d in %" PRId64 " ms", f.task,
            d ? d : "?", wi, qp__ms() - f.sent_ms);
        free(d);
    }
    return true;
}

static int dispatch(run *r)
{
    const qp_job *j = r->job;
    int window = j->window < QP__MAX_WINDOW ? j->window : QP__MAX_WINDOW;
    struct pollfd *pfd = calloc((size_t)r->nw, sizeof *pfd);
    int *who = calloc((size_t)r->nw, sizeof *who);
    if (!pfd || !who) { free(pfd); free(who); return QP_RUN_FAILED; }
    int result = QP_RUN_OK;
    while (r->ndone < r->plan->n) {
        if (stop_signal) { result = QP_RUN_INTERRUPTED; break; }
        /* Fill every window. */
        for (int wi = 0; wi < r->nw; wi++) {
            qp__worker *w = &r->ws[wi];
            while (w->c && w->tasks_in < window) {
                int64_t i = pick(r, wi);
                if (i < 0) break;
                if (send_task(r, w, i)) {
                    if (!worker_lost(r, wi, qp_conn_errstr(w->c), false)) goto failed;
                    break;
                }
            }
        }
        int n = 0;
        int64_t now = qp__ms(), wait = 200;
        for (int wi = 0; wi < r->nw; wi++) {
            qp__worker *w = &r->ws[wi];
            if (!w->c) continue;
            if (w->nfl && j->task_timeout_ms) {
                int64_t left = w->head_start_ms + j->task_timeout_ms - now;
                if (left <= 0) {
                    char why[64];
                    snprintf(why, sizeof why, "timed out after %" PRId64 " ms", j->task_timeout_ms);
                    if (!worker_lost(r, wi, why, true)) goto failed;
                    continue;
                }
                if (left < wait) wait = left;
            }
            /* Bytes the connection already holds are invisible to poll. */
            if (qp_conn_pending(w->c)) wait = 0;
            pfd[n] = (struct pollfd){ .fd = qp_conn_fd(w->c), .events = POLLIN };
            who[n++] = wi;
        }
        if (n == 0) {
            bool any = false;
            for (int wi = 0; wi < r->nw; wi++)
                if (!r->ws[wi].dead_for_good && r->ws[wi].local && restart_worker(r, wi) == 0) any = true;
            if (!any) {
                snprintf(r->failure, sizeof r->failure, "no worker left (%" PRId64 " of %" PRId64
                         " tasks done)", r->ndone, r->plan->n);
                goto failed;
            }
            continue;
        }
        draw_bar(r, false);
        int pr = poll(pfd, (nfds_t)n, (int)wait);
        if (pr < 0 && errno != EINTR) {
            snprintf(r->failure, sizeof r->failure, "poll: %s", strerror(errno));
            goto failed;
        }
        for (int k = 0; pr >= 0 && k < n; k++) {
            int wi = who[k];
            qp__worker *w = &r->ws[wi];
            if (!pfd[k].revents && !(w->c && qp_conn_pending(w->c))) continue;
            if (!w->c) continue;
            int rc = 0;
            /* Take every whole message until the connection has nothing
             * more buffered, even when it then turns out closed: those
             * results are good. */
            for (;;) {
                qp_buf *m = NULL;
                qp_ipc_header h;
                int got = qp_conn_recv_nowait(w->c, &m, &h);
                if (got == 0) {
                    bool ok = on_response(r, wi, m, &h);
                    qp_buf_unref(m);
                    if (!ok) goto failed;
                    if (!w->c) break;
                    continue;
                }
                if (got != -EAGAIN) rc = got;
                break;
            }
            if (rc && w->c) {
                char why[256];
                snprintf(why, sizeof why, "%s", qp_conn_errstr(w->c)[0] ? qp_conn_errstr(w->c) : qp_strerror(rc));
                if (!worker_lost(r, wi, why, true)) goto failed;
            }
        }
    }
    draw_bar(r, true);
    free(pfd);
    free(who);
    return result;
failed:
    free(pfd);
    free(who);
    return QP_RUN_FAILED;
}

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
    if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)n, 0) < 0) { /* informational only */ }
    free(path);
    *fd_out = fd;
    return 0;
}

static void print_plan(run *r, FILE *f)
{
    const qp_job *j = r->job;
    fprintf(f, "job %s (%s)\n", j->name, j->path);
    fprintf(f, "function: %s:%s", j->function.file, j->function.name);
    if (j->nlibs) {
        fprintf(f, "  libraries:");
        for (int i = 0; i < j->nlibs; i++) fprintf(f, " %s=%s", j->lib_alias[i], j->lib_module[i]);
    }
    fprintf(f, "\ninput: ");
    if (j->files) fprintf(f, "files %s\n", j->files);
    else if (j->file) fprintf(f, "%s as table %s (workers load %s)\n", j->file, j->table,
                              r->input_path ? r->input_path : j->file);
    else fprintf(f, "resident table %s\n", j->table);
    if (r->plan) {
        fprintf(f, "partitions: %" PRId64 " by %s\n", r->plan->n, qp_job_part_name(j->part_by));
        for (int64_t i = 0; i < r->plan->n; i++) {
            if (r->plan->n > 20 && i == 10) {
                fprintf(f, "  ... %" PRId64 " more\n", r->plan->n - 20);
                i = r->plan->n - 10;
            }
            char *d = qp_part_describe(r->plan, i);
            fprintf(f, "  %" PRId64 ": %s\n", i, d ? d : "?");
            free(d);
        }
    } else {
        fprintf(f, "partitions: by %s, planned once a worker holds the table\n",
                qp_job_part_name(j->part_by));
    }
    int local = r->o->jobs > 0 ? r->o->jobs : j->local;
    fprintf(f, "workers: %d local (%d thread%s each)%s", local, j->threads,
            j->threads == 1 ? "" : "s", j->nservers ? ", servers:" : "");
    for (int i = 0; i < j->nservers; i++) fprintf(f, " %s", j->servers[i]);
    fprintf(f, "\n");
    if (r->place) {
        char *d = qp_plan_describe(r->topo, r->place);
        if (d) fputs(d, f);
        free(d);
    }
    fprintf(f, "merge: %s%s%s%s\n", qp_job_merge_name(j->merge), j->reducer.file ? ", then " : "",
            j->reducer.file ? j->reducer.name : "", "");
    fprintf(f, "output: %s\n", j->output);
    if (j->task_timeout_ms) fprintf(f, "retries: %d, task timeout: %.1fs\n", j->retries, j->task_timeout_ms / 1000.0);
    else fprintf(f, "retries: %d, task timeout: none\n", j->retries);
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
    qp_value *v = call_one(r, qp__call(".qp.call", 2, qp_symbol(j->reducer.name), args));
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
    setup_msgs = NULL;
    nsetup = 0;
    stop_signal = 0;

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
            if ((result = prepare_input(r, true)) != 0) goto done;
            if (make_plan(r, local + job->nservers)) { result = QP_RUN_FAILED; goto done; }
        }
        print_plan(r, out);
        result = QP_RUN_OK;
        goto done;
    }
    mkdir_p(job->state);
    if ((result = lock_job(r, &lockfd)) != 0) goto done;
    result = QP_RUN_FAILED;
    if (prepare_input(r, job->part_by == QP_PART_COLUMN && job->file) != 0) goto done;

    /* Workers: start the local ones, connect to all, set them up. */
    snprintf(r->tmpdir, sizeof r->tmpdir, "/tmp/qpeach-run-XXXXXX");
    if (!mkdtemp(r->tmpdir)) {
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
            if (qp__worker_spawn(w, opts->self, r->tmpdir, job->threads, r->topo,
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
    if (qp__setup_msgs(job, job->files ? NULL : r->input_path, &setup_msgs, &nsetup, err, sizeof err)) {
        snprintf(r->failure, sizeof r->failure, "%s", err);
        result = QP_RUN_BADJOB;
        goto done;
    }
    int ready = qp__setup_all(r->ws, r->nw, setup_msgs, nsetup, 600000, errs);
    for (int i = 0; i < r->nw; i++)
        if (errs[i][0]) {
            say(r, "worker", "worker %d (%s) unusable: %s", i, r->ws[i].addr, errs[i]);
            if (!r->ws[i].local) r->ws[i].dead_for_good = true;
        }
    if (ready == 0) {
        snprintf(r->failure, sizeof r->failure, "no worker is usable%s%s", r->nw ? ": " : "",
                 r->nw ? errs[0] : "");
        goto done;
    }
    if (stop_signal) { result = QP_RUN_INTERRUPTED; goto done; }

    /* Plan, journal, and what an earlier run already finished. */
    if (make_plan(r, ready)) goto done;
    r->t = calloc((size_t)(r->plan->n ? r->plan->n : 1), sizeof *r->t);
    r->retry = calloc((size_t)(r->plan->n ? r->plan->n : 1), sizeof *r->retry);
    if (!r->t || !r->retry) goto done;
    for (int64_t i = 0; i < r->plan->n; i++) r->t[i].last_worker = -1;
    {
        qp_journal_id ids[3];
        if (job_ids(r, ids)) { snprintf(r->failure, sizeof r->failure, "cannot hash the job"); goto done; }
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
        if (msg[0]) say(r, "journal", "%s", msg);
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
            say(r, "resume", "resuming: %" PRId64 " of %" PRId64 " tasks already done", r->ndone,
                r->plan->n);
    }
    say(r, "start", "%" PRId64 " tasks (%s) on %d worker%s", r->plan->n,
        qp_job_part_name(job->part_by), ready, ready == 1 ? "" : "s");
    result = dispatch(r);
    if (result == QP_RUN_INTERRUPTED) {
        snprintf(r->failure, sizeof r->failure, "interrupted by signal %d: %" PRId64 " of %" PRId64
                 " tasks done, journal kept (qpeach run --resume continues)",
                 (int)stop_signal, r->ndone, r->plan->n);
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
        int rc = qp_output_write(v, job->output, out, err, sizeof err);
        qp_unref(v);
        if (rc) { snprintf(r->failure, sizeof r->failure, "output %s", err); goto done; }
    }
    result = QP_RUN_OK;
    {
        double secs = (qp__ms() - r->t0) / 1000.0;
        clear_bar(r);
        r->last_draw = 0;
        say(r, "done", "%" PRId64 " tasks in %.2fs%s%s", r->plan->n, secs,
            strcmp(job->output, "-") ? ", wrote " : "", strcmp(job->output, "-") ? job->output : "");
    }
    char *jpath = qp_job_state_path(job, "journal");
    if (jpath) unlink(jpath);
    free(jpath);

done:
    if (result != QP_RUN_OK && r->failure[0]) {
        clear_bar(r);
        r->last_draw = 0;
        int m = r->mode;
        if (m == QP_LOG_QUIET) r->mode = QP_LOG_LINES;
        say(r, "error", "%s", r->failure);
        r->mode = m;
    }
    for (int i = 0; r->ws && i < r->nw; i++) qp__worker_down(&r->ws[i], true);
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
    for (int i = 0; i < nsetup; i++) qp_unref(setup_msgs[i]);
    free(setup_msgs);
    setup_msgs = NULL;
    for (int64_t i = 0; r->t && i < r->plan->n; i++) qp_unref(r->t[i].result);
    free(r->t);
    free(r->retry);
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
