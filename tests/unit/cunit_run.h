/* cunit_run.h - the one main() body every CUnit suite shares.
 *
 * qp_test_run registers one suite and its tests, runs them in CUnit's
 * verbose mode (so CUnit prints its run summary, which CI reads) and
 * returns the process exit status: 0 when every test and assert passed,
 * 1 when any failed, 2 when CUnit itself could not start. */
#ifndef QPEACH_TESTS_CUNIT_RUN_H
#define QPEACH_TESTS_CUNIT_RUN_H

#include <CUnit/Basic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct qp_test {
    const char *name;      /* as CUnit prints it */
    CU_TestFunc fn;
} qp_test;

#define QP_NTESTS(tests) (sizeof(tests) / sizeof((tests)[0]))

static inline int qp_test_run(const char *suite, CU_InitializeFunc init,
                              CU_CleanupFunc clean, const qp_test *tests, size_t n)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return 2;
    CU_pSuite s = CU_add_suite(suite, init, clean);
    for (size_t i = 0; s && i < n; i++) CU_add_test(s, tests[i].name, tests[i].fn);
    if (!s) { CU_cleanup_registry(); return 2; }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
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
