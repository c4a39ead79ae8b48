/* cunit_run.h - the one main() body every CUnit suite shares.
 *
 * qp_test_run registers one suite and its tests, runs them in CUnit's
 * verbose mode (so CUnit prints its run summary, which CI reads) and
 * returns the process exit status: 0 when every test and assert passed,
 * 1 when any failed, 2 when CUnit itself could not start. */
#ifndef QPEACH_TESTS_CUNIT_RUN_H
#define QPEACH_TESTS_CUNIT_RUN_H

#include <CUnit/Basic.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct qp_test {
    const char *name;      /* as CUnit prints it */
    CU_TestFunc fn;
} qp_test;

#define QP_NTESTS(tests) (sizeof(tests) / sizeof((tests)[0]))

/* The folder of q-written kdb+ databases the conformance tests read:
 * $QPEACH_FIXTURES when set (it must then exist: a wrong setting is not a
 * reason to skip), else ../shared/fixtures/kdb from the repository root when
 * it exists, else NULL: those tests do not run (tests/README.md). */
static inline const char *qp_test_fixtures(void)
{
    static char path[4096];
    const char *env = getenv("QPEACH_FIXTURES");
    if (env && *env) {
        if (!realpath(env, path)) {
            fprintf(stderr, "QPEACH_FIXTURES=%s: no such folder\n", env);
            exit(2);
        }
        return path;
    }
    return realpath("../shared/fixtures/kdb", path) ? path : NULL;
}

/* As qp_test_run, plus tests that read the q-written fixtures: registered
 * only when qp_test_fixtures() finds them; otherwise they are counted in one
 * line that scripts/run-unit.sh adds up ("N tests not run (no fixtures"). */
static inline int qp_test_run_fixtures(const char *suite, CU_InitializeFunc init,
                                       CU_CleanupFunc clean, const qp_test *tests, size_t n,
                                       const qp_test *fix, size_t nfix)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return 2;
    CU_pSuite s = CU_add_suite(suite, init, clean);
    for (size_t i = 0; s && i < n; i++) CU_add_test(s, tests[i].name, tests[i].fn);
    bool have = qp_test_fixtures() != NULL;
    for (size_t i = 0; s && have && i < nfix; i++) CU_add_test(s, fix[i].name, fix[i].fn);
    if (!s) { CU_cleanup_registry(); return 2; }
    if (!have && nfix)
        printf("kdb+ conformance against q-written databases: %zu tests not run "
               "(no fixtures; see tests/README.md)\n", nfix);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed() +
                      CU_get_number_of_suites_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}

static inline int qp_test_run(const char *suite, CU_InitializeFunc init,
                              CU_CleanupFunc clean, const qp_test *tests, size_t n)
{
    return qp_test_run_fixtures(suite, init, clean, tests, n, NULL, 0);
}

/* Removes a suite's scratch folder (made with mkdtemp) and everything in
 * it. Returns 0, or 1 when it could not. */
static inline int qp_test_rmtree(const char *dir)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) != 0;
}

#endif
