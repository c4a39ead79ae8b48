/* kdb_check.h - what the kdb+ reader's two suites both use: test_kdb.c
 * (its mechanics, on our writer's databases) and test_kdbconform.c
 * (conformance, on the q-written fixtures). Static functions: included by
 * those two files only. Memory: open_db's db is the caller's to close;
 * has_text borrows x. */
#ifndef QPEACH_TESTS_KDB_CHECK_H
#define QPEACH_TESTS_KDB_CHECK_H

#include <CUnit/CUnit.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "qpeach/kdb.h"
#include "qpeach/value.h"

static qp_kdb *open_db(const char *path)
{
    qp_kdb *db = NULL;
    char err[512];
    int rc = qp_kdb_open(path, &db, err, sizeof err);
    if (rc) fprintf(stderr, "open %s: %s\n", path, err);
    CU_ASSERT_EQUAL(rc, 0);
    return db;
}

static bool has_text(const qp_value *x, const char *needle)
{
    bool ok = x && qp_is_error(x) && strstr(x->s, needle);
    if (!ok) fprintf(stderr, "expected an error with '%s', got: %s\n", needle,
                     x && qp_is_error(x) ? x->s : "(a value)");
    return ok;
}

#endif
