/* runlog.c - what `qpeach run` tells people while it works: log lines,
 * JSON events (--log-json), the TTY progress bar, and the --dry-run plan.
 *
 * Why a file of its own: presentation changes for reasons of its own
 * (formats, terminals) and should never be tangled with the dispatch
 * loop's state machine; everything here only reads the run.
 */
#include "run_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

bool qp__failed(const run *r)
{
    return r->error.code != 0;
}

void qp__fail(run *r, const char *fmt, ...)
{
    if (qp__failed(r)) return;      /* the first failure is the cause */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error.message, sizeof r->error.message, fmt, ap);
    va_end(ap);
    r->error.code = QP_RUN_FAILED;
}

void qp__fail_context(run *r, const char *fmt, ...)
{
    if (!qp__failed(r)) return;
    char *msg = r->error.message, old[sizeof r->error.message];
    snprintf(old, sizeof old, "%s", msg);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof r->error.message, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof r->error.message)
        snprintf(msg + n, sizeof r->error.message - (size_t)n, "%s", old);
}

void qp__fail_remote(run *r, const qp__worker *w, const char *text)
{
    if (qp__failed(r)) return;
    qp_run_error *e = &r->error;
    snprintf(e->worker, sizeof e->worker, "%s", w->addr);
    snprintf(e->cause, sizeof e->cause, "%s", text ? text : "");
    w->proto->remote_error(text, &e->remote);
}

void qp__say_unpinned(run *r, const char *who, const qp_place *pl, const char *why)
{
    char cores[128];
    qp__cores_text(pl, cores, sizeof cores);
    char *pus = qp_place_pus(r->topo, pl);
    qp__say(r, "pin", "%s could not be pinned to %s (PUs %s), and runs on any core: %s", who,
            cores, pus ? pus : "?", why);
    free(pus);
}

void qp__clear_bar(run *r)
{
    if (r->mode == QP_LOG_BAR && r->last_draw) fprintf(r->log, "\r\033[K");
}

/* A task's fields of a JSON event. */
static void json_ev(const run *r, const qp__ev *ev)
{
    FILE *f = r->log;
    fprintf(f, ",\"task\":%" PRId64 ",\"partition\":", ev->task);
    json_str(f, ev->partition ? ev->partition : "");
    fprintf(f, ",\"worker\":%d,\"addr\":", ev->worker);
    json_str(f, ev->worker >= 0 && ev->worker < r->nw ? r->ws[ev->worker].addr : "");
    if (ev->ms >= 0) fprintf(f, ",\"ms\":%" PRId64, ev->ms);
    else fprintf(f, ",\"ms\":null");
    if (ev->rows >= 0) fprintf(f, ",\"rows\":%" PRId64, ev->rows);
    else fprintf(f, ",\"rows\":null");
}

/* A log event: text for people, or one JSON object with event, the task's
 * fields when it is a task's, and message. */
static void say(run *r, const char *event, const qp__ev *ev, const char *fmt, va_list ap)
{
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (r->o->event_cb) r->o->event_cb(event, msg, r->o->event_data);
    bool quiet = r->mode == QP_LOG_QUIET || r->o->quiet;
    if (quiet && strcmp(event, "error")) return;
    if (r->mode == QP_LOG_JSON) {
        fprintf(r->log, "{\"t\":%.3f,\"event\":", (qp__ms() - r->t0) / 1000.0);
        json_str(r->log, event);
        if (ev) json_ev(r, ev);
        fprintf(r->log, ",\"done\":%" PRId64 ",\"total\":%" PRId64 ",\"message\":", r->ndone,
                r->plan ? r->plan->n : 0);
        json_str(r->log, msg);
        fprintf(r->log, "}\n");
    } else {
        qp__clear_bar(r);
        fprintf(r->log, "qpeach run %s: %s\n", r->job->name, msg);
        r->last_draw = 0;
    }
    fflush(r->log);
}

void qp__say(run *r, const char *event, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say(r, event, NULL, fmt, ap);
    va_end(ap);
}

void qp__say_ev(run *r, const char *event, const qp__ev *ev, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say(r, event, ev, fmt, ap);
    va_end(ap);
}

void qp__draw_bar(run *r, bool force)
{
    /* The caller's callback (a Python progress bar) sees every change;
     * asking to stop is handled as a signal would be. */
    if (r->o->progress_cb && r->plan && (force || r->cb_done != r->ndone + 1)) {
        r->cb_done = r->ndone + 1;
        if (r->o->progress_cb(r->ndone, r->plan->n, r->nfailed_attempts, r->o->progress_data)) {
            r->cb_stop = true;
            qp__stop_signal = SIGINT;
        }
    }
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

/* ---- the plan, for --dry-run ---- */

void qp__print_plan(run *r, FILE *f)
{
    const qp_job *j = r->job;
    fprintf(f, "job %s (%s)\n", j->name, j->path ? j->path : j->base);
    fprintf(f, "function: %s:%s", j->function.file, j->function.name);
    if (j->nlibs) {
        fprintf(f, "  libraries:");
        for (int i = 0; i < j->nlibs; i++) fprintf(f, " %s=%s", j->lib_alias[i], j->lib_module[i]);
    }
    fprintf(f, "\ninput: ");
    if (j->files) fprintf(f, "files %s\n", j->files);
    else if (j->file) fprintf(f, "%s as table %s (workers load %s)\n", j->file, j->table,
                              r->input_path ? r->input_path : j->file);
    else if (j->db) fprintf(f, "table %s of the kdb+ database %s (workers map it)\n", j->table, j->db);
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

