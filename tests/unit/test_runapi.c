/* test_runapi.c - qp_run as a library caller (the Python client) uses it:
 * the function's code given in qp_run_opts (no module file), the merged
 * value handed back instead of printed, the progress callback, a callback
 * that stops the run, and a task's failure text. Real local workers: the
 * qpeach binary beside this test's folder ($BUILD/qpeach). */
#include "qpeach/job.h"
#include "qpeach/sched.h"
#include "qpeach/value.h"

#include "cunit_run.h"
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmp[128];
static char self[PATH_MAX];

static int suite_init(void)
{
    char exe[PATH_MAX - 16];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return -1;
    exe[n] = '\0';
    *strrchr(exe, '/') = '\0';                   /* $BUILD/tests */
    snprintf(self, sizeof self, "%s/../qpeach", exe);
    if (access(self, X_OK)) return -1;
    snprintf(tmp, sizeof tmp, "/tmp/qp-test-runapi-XXXXXX");
    if (!mkdtemp(tmp)) return -1;
    char path[512];
    snprintf(path, sizeof path, "%s/data.csv", tmp);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs("x\n", f);
    for (int i = 0; i < 100; i++) fprintf(f, "%d\n", i);
    fclose(f);
    /* The job names a module file that does not exist: the code comes
     * from the caller. */
    snprintf(path, sizeof path, "%s/job.ini", tmp);
    if (!(f = fopen(path, "w"))) return -1;
    fputs("[job]\nfunction = absent.py:total\n[input]\ntable = t\nfile = data.csv\n"
          "types = J\n[partition]\npieces = 10\n[workers]\nlocal = 2\n[merge]\nhow = sum\n", f);
    fclose(f);
    return 0;
}

static int suite_clean(void) { return qp_test_rmtree(tmp); }

typedef struct { int calls; int64_t last_done, last_total; int stop_at; } progress;

static int on_progress(int64_t done, int64_t total, int64_t failed, void *data)
{
    progress *p = data;
    (void)failed;
    CU_ASSERT(done >= p->last_done);        /* never backwards */
    p->calls++;
    p->last_done = done;
    p->last_total = total;
    return p->stop_at >= 0 && done >= p->stop_at;
}

static int run_with(const char *code, qp_value **merged, progress *pr, qp_run_error *err)
{
    char path[512];
    snprintf(path, sizeof path, "%s/job.ini", tmp);
    qp_job *job = NULL;
    char jerr[512];
    int rc = qp_job_load(path, &job, jerr, sizeof jerr);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    qp_value *fn = qp_cstring(code);
    FILE *sink = fopen("/dev/null", "w");
    qp_run_opts o = { .resume = false, .log = QP_LOG_QUIET, .self = self, .out = stdout,
                      .log_to = sink, .fn_code = fn, .merged = merged,
                      .progress_cb = on_progress, .progress_data = pr,
                      .error = err };
    rc = qp_run(job, &o);
    fclose(sink);
    qp_unref(fn);
    qp_job_free(job);
    return rc;
}

static void test_code_and_value(void)
{
    qp_value *v = NULL;
    progress pr = { .stop_at = -1 };
    qp_run_error err = { .code = -1 };
    int rc = run_with("def total(t):\n    return int(t['x'].sum())\n", &v, &pr, &err);
    CU_ASSERT_EQUAL_FATAL(rc, QP_RUN_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    CU_ASSERT_EQUAL(v->type, -QP_LONG);
    CU_ASSERT_EQUAL(v->j, 4950);                 /* 0 + 1 + ... + 99 */
    CU_ASSERT(pr.calls >= 1);
    CU_ASSERT_EQUAL(pr.last_done, 10);
    CU_ASSERT_EQUAL(pr.last_total, 10);
    CU_ASSERT_EQUAL(err.code, 0);                /* no failure */
    CU_ASSERT_EQUAL(err.task, -1);
    qp_unref(v);
}

/* The failure comes back in parts: the task, its partition, the worker,
 * and the Python exception read into type, message and frames. */
static void test_failure_text(void)
{
    qp_value *v = NULL;
    progress pr = { .stop_at = -1 };
    qp_run_error err;
    int rc = run_with("def total(t):\n    if 42 in list(t['x']):\n"
                      "        raise ValueError('no total here')\n    return 0\n", &v, &pr, &err);
    CU_ASSERT_EQUAL(rc, QP_RUN_FAILED);
    CU_ASSERT_PTR_NULL(v);
    CU_ASSERT_EQUAL(err.code, QP_RUN_FAILED);
    CU_ASSERT_EQUAL(err.task, 4);                /* 10 pieces of 100 rows */
    CU_ASSERT_STRING_EQUAL(err.partition, "rows 40-50");
    CU_ASSERT_EQUAL(err.attempts, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.worker, "unix:"));
    CU_ASSERT_STRING_EQUAL(err.remote.type, "ValueError");
    CU_ASSERT_STRING_EQUAL(err.remote.message, "no total here");
    CU_ASSERT_PTR_NOT_NULL(strstr(err.remote.traceback, "line 3, in total"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "task 4 (rows 40-50) failed on unix:"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "ValueError: no total here"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.cause, "ValueError: no total here\nTraceback"));
}

static void test_callback_stops(void)
{
    qp_value *v = NULL;
    progress pr = { .stop_at = 0 };              /* stop at the first call */
    qp_run_error err;
    int rc = run_with("def total(t):\n    return 1\n", &v, &pr, &err);
    CU_ASSERT_EQUAL(rc, QP_RUN_INTERRUPTED);
    CU_ASSERT_PTR_NULL(v);
    CU_ASSERT_EQUAL(err.code, QP_RUN_INTERRUPTED);
    CU_ASSERT_EQUAL(err.task, -1);
    /* the callback asked to stop, and the reason says so, not a signal */
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "stopped by the progress callback"));
    CU_ASSERT_PTR_NULL(strstr(err.message, "signal"));
}

int main(void)
{
    static const qp_test tests[] = {
        {"code from the caller, value handed back, progress", test_code_and_value},
        {"a raising function: the task and the Python error", test_failure_text},
        {"a progress callback that stops the run", test_callback_stops},
    };
    return qp_test_run("runapi", suite_init, suite_clean, tests, QP_NTESTS(tests));
}
