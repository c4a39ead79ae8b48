/* sched_scratch.h - the scratch folder of the scheduler's two suites
 * (test_sched.c, test_merge.c): made by suite_init, removed with all in it
 * by suite_clean; write_file puts a text file in it. Static: included by
 * those files only. */
#ifndef QPEACH_TESTS_SCHED_SCRATCH_H
#define QPEACH_TESTS_SCHED_SCRATCH_H

#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>

static char tmp[256];

static int suite_init(void)
{
    snprintf(tmp, sizeof tmp, "/tmp/qp-test-sched-XXXXXX");
    return mkdtemp(tmp) ? 0 : -1;
}

static int suite_clean(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    return system(cmd) == 0 ? 0 : -1;
}

static char *write_file(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    fclose(f);
    return path;
}

#endif
