/* test_qparse.c - CUnit suite for qpeach/qparse.h: q literals of every type
 * the parser knows, nested lists, the call forms a server evaluates, and
 * malformed text (a clear one-line error, never a crash or an over-read:
 * inputs are parsed from exact-size buffers, so ASan sees any byte read
 * past the end).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cunit_run.h"

#include "qpeach/qparse.h"
#include "qpeach/table.h"

static qp_value *lit(const char *s)
{
    char err[128];
    return qp_literal_parse(s, strlen(s), err, sizeof err);
}

/* ---- literals ---- */

static void test_literal_atoms(void)
{
    qp_value *v;
    v = lit("42");    CU_ASSERT(v && v->type == -QP_LONG && v->j == 42); qp_unref(v);
    v = lit(" -7 ");  CU_ASSERT(v && v->type == -QP_LONG && v->j == -7); qp_unref(v);
    v = lit("1.5");   CU_ASSERT(v && v->type == -QP_FLOAT && v->f == 1.5); qp_unref(v);
    v = lit("2e");    CU_ASSERT(v && v->type == -QP_REAL && v->e == 2.0f); qp_unref(v);
    v = lit("1e3");   CU_ASSERT(v && v->type == -QP_FLOAT && v->f == 1000.0); qp_unref(v);
    v = lit("3i");    CU_ASSERT(v && v->type == -QP_INT && v->i == 3); qp_unref(v);
    v = lit("3h");    CU_ASSERT(v && v->type == -QP_SHORT && v->h == 3); qp_unref(v);
    v = lit("3j");    CU_ASSERT(v && v->type == -QP_LONG && v->j == 3); qp_unref(v);
    v = lit("3f");    CU_ASSERT(v && v->type == -QP_FLOAT && v->f == 3.0); qp_unref(v);
    v = lit("1b");    CU_ASSERT(v && v->type == -QP_BOOL && v->g == 1); qp_unref(v);
    v = lit("0x2a");  CU_ASSERT(v && v->type == -QP_BYTE && v->g == 42); qp_unref(v);
    v = lit("0N");    CU_ASSERT(v && v->type == -QP_LONG && v->j == QP_NULL_J); qp_unref(v);
    v = lit("0Ni");   CU_ASSERT(v && v->type == -QP_INT && v->i == QP_NULL_I); qp_unref(v);
    v = lit("0Wh");   CU_ASSERT(v && v->type == -QP_SHORT && v->h == QP_INF_H); qp_unref(v);
    v = lit("-0W");   CU_ASSERT(v && v->type == -QP_LONG && v->j == -QP_INF_J); qp_unref(v);
    v = lit("0n");    CU_ASSERT(v && v->type == -QP_FLOAT && isnan(v->f)); qp_unref(v);
    v = lit("-0w");   CU_ASSERT(v && v->type == -QP_FLOAT && isinf(v->f) && v->f < 0); qp_unref(v);
    v = lit("`abc");  CU_ASSERT(v && v->type == -QP_SYMBOL && !strcmp(v->s, "abc")); qp_unref(v);
    v = lit("`");     CU_ASSERT(v && v->type == -QP_SYMBOL && !strcmp(v->s, "")); qp_unref(v);
    v = lit("`.qp.x"); CU_ASSERT(v && v->type == -QP_SYMBOL && !strcmp(v->s, ".qp.x")); qp_unref(v);
    v = lit("\"a\""); CU_ASSERT(v && v->type == -QP_CHAR && v->c == 'a'); qp_unref(v);
    v = lit("(::)");  CU_ASSERT(v && v->type == QP_UNARY); qp_unref(v);
}

static void test_literal_vectors_and_lists(void)
{
    qp_value *v = lit("1 2 3");
    CU_ASSERT(v && v->type == QP_LONG && v->v.n == 3 && qp_J(v)[2] == 3);
    qp_unref(v);
    v = lit("1 2.5 -3");
    CU_ASSERT(v && v->type == QP_FLOAT && v->v.n == 3 && qp_F(v)[1] == 2.5 && qp_F(v)[2] == -3);
    qp_unref(v);
    v = lit("1 2 3h");
    CU_ASSERT(v && v->type == QP_SHORT && v->v.n == 3 && qp_H(v)[0] == 1);
    qp_unref(v);
    v = lit("1 0N 3i");
    CU_ASSERT(v && v->type == QP_INT && qp_I(v)[1] == QP_NULL_I);
    qp_unref(v);
    v = lit("0101b");
    CU_ASSERT(v && v->type == QP_BOOL && v->v.n == 4 && qp_G(v)[1] == 1 && qp_G(v)[2] == 0);
    qp_unref(v);
    v = lit("0x0102ff");
    CU_ASSERT(v && v->type == QP_BYTE && v->v.n == 3 && qp_G(v)[2] == 255);
    qp_unref(v);
    v = lit("`a`bc`");
    CU_ASSERT(v && v->type == QP_SYMBOL && v->v.n == 3 && !strcmp(qp_S(v)[1], "bc") && !strcmp(qp_S(v)[2], ""));
    qp_unref(v);
    v = lit("\"hello \\\"q\\\"\\n\"");
    CU_ASSERT(v && v->type == QP_CHAR && v->v.n == 10 && !memcmp(qp_C(v), "hello \"q\"\n", 10));
    qp_unref(v);
    v = lit("\"\"");
    CU_ASSERT(v && v->type == QP_CHAR && v->v.n == 0);
    qp_unref(v);
    v = lit("(1;2;3)");                         /* collapses to a vector, as in q */
    CU_ASSERT(v && v->type == QP_LONG && v->v.n == 3);
    qp_unref(v);
    v = lit("(1;`a;\"bc\";(2.5;()))");
    CU_ASSERT(v && v->type == QP_LIST && v->v.n == 4);
    if (v && v->v.n == 4) {
        CU_ASSERT(qp_K(v)[1]->type == -QP_SYMBOL);
        CU_ASSERT(qp_K(v)[2]->type == QP_CHAR);
        qp_value *in = qp_K(v)[3];
        CU_ASSERT(in->type == QP_LIST && in->v.n == 2 && qp_K(in)[1]->type == QP_LIST && qp_K(in)[1]->v.n == 0);
    }
    qp_unref(v);
    v = lit("()");
    CU_ASSERT(v && v->type == QP_LIST && v->v.n == 0);
    qp_unref(v);
    v = lit("(42)");
    CU_ASSERT(v && v->type == -QP_LONG && v->j == 42);
    qp_unref(v);
}

static void test_literal_rejects(void)
{
    const char *bad[] = { "", "1+1", "x", "1 2 +", "\"open", "(1;2", "1.5i", "0x", "0x123",
                          "1 `a", "{x}", "1q", "(1 2", "--1", "`a b" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[128] = "";
        qp_value *v = qp_literal_parse(bad[i], strlen(bad[i]), err, sizeof err);
        if (v) printf("\n  accepted bad literal: %s\n", bad[i]);
        CU_ASSERT_PTR_NULL(v);
        CU_ASSERT(err[0] != 0);
        qp_unref(v);
    }
    /* deep nesting is refused, not a stack overflow */
    char deep[4000];
    memset(deep, '(', 2000);
    memset(deep + 2000, ')', 2000);
    CU_ASSERT_PTR_NULL(qp_literal_parse(deep, sizeof deep, NULL, 0));
}

/* ---- expressions ---- */

static void test_expr(void)
{
    qp_expr e;
    const char *s = ".qp.echo[1;`a]";
    CU_ASSERT_EQUAL(qp_expr_parse(s, strlen(s), &e), 0);
    CU_ASSERT(e.call && !strcmp(e.name, ".qp.echo") && e.args && e.args->v.n == 2);
    CU_ASSERT(e.name == qp_sym_intern(".qp.echo", 8));     /* interned */
    qp_unref(e.args);

    s = ".qp.ping[]";
    CU_ASSERT_EQUAL(qp_expr_parse(s, strlen(s), &e), 0);
    CU_ASSERT(e.call && e.args->v.n == 1 && qp_K(e.args)[0]->type == QP_UNARY);
    qp_unref(e.args);

    s = "f 1 2 3";
    CU_ASSERT_EQUAL(qp_expr_parse(s, strlen(s), &e), 0);
    CU_ASSERT(e.call && e.args->v.n == 1 && qp_K(e.args)[0]->type == QP_LONG);
    qp_unref(e.args);

    s = ".qp.count`trade";                             /* f`x, as q reads it */
    CU_ASSERT_EQUAL(qp_expr_parse(s, strlen(s), &e), 0);
    CU_ASSERT(e.call && !strcmp(e.name, ".qp.count") && e.args->v.n == 1 &&
              qp_K(e.args)[0]->type == -QP_SYMBOL && !strcmp(qp_K(e.args)[0]->s, "trade"));
    qp_unref(e.args);

    s = "f[\"a;b]\";(1;2)]";                           /* ; and ] inside strings/parens */
    CU_ASSERT_EQUAL(qp_expr_parse(s, strlen(s), &e), 0);
    CU_ASSERT(e.args && e.args->v.n == 2 && qp_K(e.args)[0]->v.n == 4);
    qp_unref(e.args);

    s = "  trade  ";
    CU_ASSERT_EQUAL(qp_expr_parse(s, strlen(s), &e), 0);
    CU_ASSERT(!e.call && !strcmp(e.name, "trade") && !e.args);

    const char *bad[] = { "1+1", "f[1;]", "f[;1]", "f[1", "f[1]x", "f 1+", "select from t",
                          "f[1](2)", "f", "", "`a" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = qp_expr_parse(bad[i], strlen(bad[i]), &e);
        if (!strcmp(bad[i], "f")) { CU_ASSERT(rc == 0 && !e.call); continue; }
        if (rc == 0) printf("\n  accepted bad expression: %s\n", bad[i]);
        CU_ASSERT_EQUAL(rc, QP_EARG);
        CU_ASSERT_PTR_NULL(e.args);
    }
}

/* ---- every type, from exact-size buffers ---- */

/* Parses s from a malloc'd copy without a terminating NUL, so ASan reports
 * any read past the end. */
static qp_value *lit_exact(const char *s, char *err, size_t errlen)
{
    size_t n = strlen(s);
    char *b = malloc(n ? n : 1);
    if (!b) return NULL;
    memcpy(b, s, n);
    qp_value *v = qp_literal_parse(b, n, err, errlen);
    free(b);
    return v;
}

static qp_value *lx(const char *s)
{
    char err[128] = "";
    qp_value *v = lit_exact(s, err, sizeof err);
    if (!v) printf("\n  refused literal %s: %s\n", s, err);
    return v;
}

static void test_literal_every_type(void)
{
    qp_value *v;
    /* bool */
    v = lx("0b");      CU_ASSERT(v && v->type == -QP_BOOL && v->g == 0); qp_unref(v);
    v = lx("10b");     CU_ASSERT(v && v->type == QP_BOOL && v->v.n == 2 && qp_G(v)[0] == 1); qp_unref(v);
    v = lx("(1b;0b)"); CU_ASSERT(v && v->type == QP_BOOL && v->v.n == 2 && qp_G(v)[1] == 0); qp_unref(v);
    /* byte, at the very end of the buffer */
    v = lx("0x0a");    CU_ASSERT(v && v->type == -QP_BYTE && v->g == 10); qp_unref(v);
    v = lx("0xff");    CU_ASSERT(v && v->type == -QP_BYTE && v->g == 255); qp_unref(v);
    v = lx("0x0");     CU_ASSERT(v && v->type == -QP_BYTE && v->g == 0); qp_unref(v);
    v = lx("0xABcd");  CU_ASSERT(v && v->type == QP_BYTE && v->v.n == 2 && qp_G(v)[1] == 0xcd); qp_unref(v);
    v = lx("(0x01;0x02)"); CU_ASSERT(v && v->type == QP_BYTE && v->v.n == 2); qp_unref(v);
    /* short */
    v = lx("-3h");     CU_ASSERT(v && v->type == -QP_SHORT && v->h == -3); qp_unref(v);
    v = lx("0Nh");     CU_ASSERT(v && v->type == -QP_SHORT && v->h == QP_NULL_H); qp_unref(v);
    v = lx("-0Wh");    CU_ASSERT(v && v->type == -QP_SHORT && v->h == -QP_INF_H); qp_unref(v);
    v = lx("1 0N 0W 2h");
    CU_ASSERT(v && v->type == QP_SHORT && v->v.n == 4 && qp_H(v)[1] == QP_NULL_H && qp_H(v)[2] == QP_INF_H);
    qp_unref(v);
    /* int */
    v = lx("-5i");     CU_ASSERT(v && v->type == -QP_INT && v->i == -5); qp_unref(v);
    v = lx("0Wi");     CU_ASSERT(v && v->type == -QP_INT && v->i == QP_INF_I); qp_unref(v);
    v = lx("-0Wi");    CU_ASSERT(v && v->type == -QP_INT && v->i == -QP_INF_I); qp_unref(v);
    v = lx("7 8i");    CU_ASSERT(v && v->type == QP_INT && v->v.n == 2 && qp_I(v)[1] == 8); qp_unref(v);
    /* long */
    v = lx("9223372036854775807"); CU_ASSERT(v && v->type == -QP_LONG && v->j == INT64_MAX); qp_unref(v);
    v = lx("0W");      CU_ASSERT(v && v->type == -QP_LONG && v->j == QP_INF_J); qp_unref(v);
    v = lx("0Nj");     CU_ASSERT(v && v->type == -QP_LONG && v->j == QP_NULL_J); qp_unref(v);
    v = lx("1 -2 3j"); CU_ASSERT(v && v->type == QP_LONG && v->v.n == 3 && qp_J(v)[1] == -2); qp_unref(v);
    v = lx("(1;2j)");  CU_ASSERT(v && v->type == QP_LONG && v->v.n == 2); qp_unref(v);
    /* real */
    v = lx("1.5e");    CU_ASSERT(v && v->type == -QP_REAL && v->e == 1.5f); qp_unref(v);
    v = lx("0Ne");     CU_ASSERT(v && v->type == -QP_REAL && isnan(v->e)); qp_unref(v);
    v = lx("0We");     CU_ASSERT(v && v->type == -QP_REAL && isinf(v->e) && v->e > 0); qp_unref(v);
    v = lx("1 2.5e");  CU_ASSERT(v && v->type == QP_REAL && v->v.n == 2 && qp_E(v)[1] == 2.5f); qp_unref(v);
    /* float */
    v = lx(".5");      CU_ASSERT(v && v->type == -QP_FLOAT && v->f == 0.5); qp_unref(v);
    v = lx("-2.5e-3"); CU_ASSERT(v && v->type == -QP_FLOAT && v->f == -2.5e-3); qp_unref(v);
    v = lx("0Nf");     CU_ASSERT(v && v->type == -QP_FLOAT && isnan(v->f)); qp_unref(v);
    v = lx("0Wf");     CU_ASSERT(v && v->type == -QP_FLOAT && isinf(v->f) && v->f > 0); qp_unref(v);
    v = lx("0w");      CU_ASSERT(v && v->type == -QP_FLOAT && isinf(v->f) && v->f > 0); qp_unref(v);
    v = lx("1 2f");    CU_ASSERT(v && v->type == QP_FLOAT && v->v.n == 2 && qp_F(v)[0] == 1.0); qp_unref(v);
    v = lx("1 0n 0w"); CU_ASSERT(v && v->type == QP_FLOAT && isnan(qp_F(v)[1]) && isinf(qp_F(v)[2])); qp_unref(v);
    /* a long null or infinity in a float vector is the float one */
    v = lx("0N 1.5");  CU_ASSERT(v && v->type == QP_FLOAT && v->v.n == 2 && isnan(qp_F(v)[0])); qp_unref(v);
    v = lx("-0W 0W 1e");
    CU_ASSERT(v && v->type == QP_REAL && isinf(qp_E(v)[0]) && qp_E(v)[0] < 0 && isinf(qp_E(v)[1])); qp_unref(v);
    /* char */
    v = lx("\" \"");   CU_ASSERT(v && v->type == -QP_CHAR && v->c == ' '); qp_unref(v);
    v = lx("\"\\t\\r\\\\\\\"\\101\"");
    CU_ASSERT(v && v->type == QP_CHAR && v->v.n == 5 && !memcmp(qp_C(v), "\t\r\\\"A", 5)); qp_unref(v);
    v = lx("(\"a\";\"b\")"); CU_ASSERT(v && v->type == QP_CHAR && v->v.n == 2 && !memcmp(qp_C(v), "ab", 2)); qp_unref(v);
    v = lx("\"a;b)\"");      CU_ASSERT(v && v->type == QP_CHAR && v->v.n == 4); qp_unref(v);
    /* symbol */
    v = lx("`a.b_c");  CU_ASSERT(v && v->type == -QP_SYMBOL && !strcmp(v->s, "a.b_c")); qp_unref(v);
    v = lx("`:data/t"); CU_ASSERT(v && v->type == -QP_SYMBOL && !strcmp(v->s, ":data/t")); qp_unref(v);
    v = lx("``a");     CU_ASSERT(v && v->type == QP_SYMBOL && v->v.n == 2 && !strcmp(qp_S(v)[0], "")); qp_unref(v);
    v = lx("(`a;`b)"); CU_ASSERT(v && v->type == QP_SYMBOL && v->v.n == 2); qp_unref(v);
    v = lx("`a");
    CU_ASSERT(v && v->s == qp_sym_intern("a", 1));        /* interned */
    qp_unref(v);
    /* identity, empty list */
    v = lx(" (::) ");  CU_ASSERT(v && v->type == QP_UNARY); qp_unref(v);
    v = lx(" ( ) ");   CU_ASSERT(v && v->type == QP_LIST && v->v.n == 0); qp_unref(v);
}

/* ---- temporal literals ---- */

/* Days since 2000.01.01 by libc's calendar (timegm), not ours. */
static int64_t days(int y, int m, int d)
{
    struct tm a = { .tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d };
    struct tm e = { .tm_year = 100, .tm_mon = 0, .tm_mday = 1 };
    return (int64_t)((timegm(&a) - timegm(&e)) / 86400);
}

#define DAY_NS 86400000000000LL
#define SEC_NS 1000000000LL

static void test_literal_temporal_atoms(void)
{
    qp_value *v;
    v = lx("2024.01.02");  CU_ASSERT(v && v->type == -QP_DATE && v->i == days(2024, 1, 2)); qp_unref(v);
    v = lx("2000.01.01");  CU_ASSERT(v && v->type == -QP_DATE && v->i == 0); qp_unref(v);
    v = lx("1999.12.31");  CU_ASSERT(v && v->type == -QP_DATE && v->i == -1); qp_unref(v);
    v = lx("2024.02.29");  CU_ASSERT(v && v->type == -QP_DATE && v->i == days(2024, 2, 29)); qp_unref(v);
    v = lx("0001.01.01");  CU_ASSERT(v && v->type == -QP_DATE && v->i == days(1, 1, 1)); qp_unref(v);
    v = lx("2024.01m");    CU_ASSERT(v && v->type == -QP_MONTH && v->i == 24 * 12); qp_unref(v);
    v = lx("1999.12m");    CU_ASSERT(v && v->type == -QP_MONTH && v->i == -1); qp_unref(v);
    int64_t d = days(2024, 1, 2);
    v = lx("2024.01.02D09:30:00.000000000");
    CU_ASSERT(v && v->type == -QP_TIMESTAMP && v->j == d * DAY_NS + 34200 * SEC_NS); qp_unref(v);
    v = lx("2024.01.02D09:30:00.5");
    CU_ASSERT(v && v->type == -QP_TIMESTAMP && v->j == d * DAY_NS + 34200 * SEC_NS + SEC_NS / 2); qp_unref(v);
    v = lx("2024.01.02D09:30");
    CU_ASSERT(v && v->type == -QP_TIMESTAMP && v->j == d * DAY_NS + 34200 * SEC_NS); qp_unref(v);
    v = lx("2024.01.02D");
    CU_ASSERT(v && v->type == -QP_TIMESTAMP && v->j == d * DAY_NS); qp_unref(v);
    v = lx("1999.12.31D23:59:59.999999999");
    CU_ASSERT(v && v->type == -QP_TIMESTAMP && v->j == -1); qp_unref(v);
    v = lx("2024.01.02T09:30:00.000");
    CU_ASSERT(v && v->type == -QP_DATETIME && v->f == (double)d + 34200.0 / 86400.0); qp_unref(v);
    v = lx("2024.01.02T");
    CU_ASSERT(v && v->type == -QP_DATETIME && v->f == (double)d); qp_unref(v);
    v = lx("0D00:00:01.5");
    CU_ASSERT(v && v->type == -QP_TIMESPAN && v->j == 3 * SEC_NS / 2); qp_unref(v);
    v = lx("-0D00:00:01");
    CU_ASSERT(v && v->type == -QP_TIMESPAN && v->j == -SEC_NS); qp_unref(v);
    v = lx("1D");          CU_ASSERT(v && v->type == -QP_TIMESPAN && v->j == DAY_NS); qp_unref(v);
    v = lx("2D03:04:05.000000006");
    CU_ASSERT(v && v->type == -QP_TIMESPAN && v->j == 2 * DAY_NS + 11045 * SEC_NS + 6); qp_unref(v);
    v = lx("12:00:00.123456789");                   /* nine digits: a timespan */
    CU_ASSERT(v && v->type == -QP_TIMESPAN && v->j == 43200 * SEC_NS + 123456789); qp_unref(v);
    v = lx("09:30:00.000"); CU_ASSERT(v && v->type == -QP_TIME && v->i == 34200000); qp_unref(v);
    v = lx("09:30:00.5");   CU_ASSERT(v && v->type == -QP_TIME && v->i == 34200500); qp_unref(v);
    v = lx("-00:00:01.000"); CU_ASSERT(v && v->type == -QP_TIME && v->i == -1000); qp_unref(v);
    v = lx("09:30");        CU_ASSERT(v && v->type == -QP_MINUTE && v->i == 570); qp_unref(v);
    v = lx("25:00");        CU_ASSERT(v && v->type == -QP_MINUTE && v->i == 1500); qp_unref(v);
    v = lx("-00:01");       CU_ASSERT(v && v->type == -QP_MINUTE && v->i == -1); qp_unref(v);
    v = lx("09:30:00");     CU_ASSERT(v && v->type == -QP_SECOND && v->i == 34200); qp_unref(v);
}

static void test_literal_temporal_nulls(void)
{
    static const struct { const char *s; int t; } ints[] = {
        { "m", QP_MONTH }, { "d", QP_DATE }, { "u", QP_MINUTE }, { "v", QP_SECOND }, { "t", QP_TIME },
    };
    char text[8];
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
        snprintf(text, sizeof text, "0N%s", ints[k].s);
        qp_value *v = lx(text);
        CU_ASSERT(v && v->type == -ints[k].t && v->i == QP_NULL_I);
        qp_unref(v);
        snprintf(text, sizeof text, "0W%s", ints[k].s);
        v = lx(text);
        CU_ASSERT(v && v->type == -ints[k].t && v->i == QP_INF_I);
        qp_unref(v);
        snprintf(text, sizeof text, "-0W%s", ints[k].s);
        v = lx(text);
        CU_ASSERT(v && v->type == -ints[k].t && v->i == -QP_INF_I);
        qp_unref(v);
    }
    static const struct { const char *s; int t; } longs[] = { { "p", QP_TIMESTAMP }, { "n", QP_TIMESPAN } };
    for (size_t k = 0; k < 2; k++) {
        snprintf(text, sizeof text, "0N%s", longs[k].s);
        qp_value *v = lx(text);
        CU_ASSERT(v && v->type == -longs[k].t && v->j == QP_NULL_J);
        qp_unref(v);
        snprintf(text, sizeof text, "0W%s", longs[k].s);
        v = lx(text);
        CU_ASSERT(v && v->type == -longs[k].t && v->j == QP_INF_J);
        qp_unref(v);
        snprintf(text, sizeof text, "-0W%s", longs[k].s);
        v = lx(text);
        CU_ASSERT(v && v->type == -longs[k].t && v->j == -QP_INF_J);
        qp_unref(v);
    }
    qp_value *v = lx("0Nz"); CU_ASSERT(v && v->type == -QP_DATETIME && isnan(v->f)); qp_unref(v);
    v = lx("0Wz");  CU_ASSERT(v && v->type == -QP_DATETIME && isinf(v->f) && v->f > 0); qp_unref(v);
    v = lx("0wz");  CU_ASSERT(v && v->type == -QP_DATETIME && isinf(v->f) && v->f > 0); qp_unref(v);
    v = lx("-0Wz"); CU_ASSERT(v && v->type == -QP_DATETIME && isinf(v->f) && v->f < 0); qp_unref(v);
}

static void test_literal_temporal_vectors(void)
{
    qp_value *v = lx("2024.01.02 2024.01.03");
    CU_ASSERT(v && v->type == QP_DATE && v->v.n == 2 && qp_I(v)[1] == days(2024, 1, 3));
    qp_unref(v);
    /* untyped nulls and infinities take the vector's type, as in q */
    v = lx("2024.01.02 0N 0W -0W");
    CU_ASSERT(v && v->type == QP_DATE && v->v.n == 4 && qp_I(v)[1] == QP_NULL_I &&
              qp_I(v)[2] == QP_INF_I && qp_I(v)[3] == -QP_INF_I);
    qp_unref(v);
    v = lx("0Nd 2024.01.02");
    CU_ASSERT(v && v->type == QP_DATE && v->v.n == 2 && qp_I(v)[0] == QP_NULL_I);
    qp_unref(v);
    v = lx("09:30 10:00 0N");
    CU_ASSERT(v && v->type == QP_MINUTE && v->v.n == 3 && qp_I(v)[1] == 600 && qp_I(v)[2] == QP_NULL_I);
    qp_unref(v);
    v = lx("2024.01 2024.02m");                      /* the last item's m types them all */
    CU_ASSERT(v && v->type == QP_MONTH && v->v.n == 2 && qp_I(v)[0] == 288 && qp_I(v)[1] == 289);
    qp_unref(v);
    v = lx("2024.01.02D09:30 0Np 2024.01.02D");
    CU_ASSERT(v && v->type == QP_TIMESTAMP && v->v.n == 3 &&
              qp_J(v)[0] == days(2024, 1, 2) * DAY_NS + 34200 * SEC_NS && qp_J(v)[1] == QP_NULL_J &&
              qp_J(v)[2] == days(2024, 1, 2) * DAY_NS);
    qp_unref(v);
    v = lx("0D00:00:01 0W 00:00:00.000000001");
    CU_ASSERT(v && v->type == QP_TIMESPAN && v->v.n == 3 && qp_J(v)[1] == QP_INF_J && qp_J(v)[2] == 1);
    qp_unref(v);
    v = lx("2024.01.02T12:00:00.000 0Nz");
    CU_ASSERT(v && v->type == QP_DATETIME && v->v.n == 2 && qp_F(v)[0] == days(2024, 1, 2) + 0.5 &&
              isnan(qp_F(v)[1]));
    qp_unref(v);
    v = lx("0Nt 09:30:00.001");
    CU_ASSERT(v && v->type == QP_TIME && v->v.n == 2 && qp_I(v)[1] == 34200001);
    qp_unref(v);
    /* general lists: a symbol and a date stay a list; dates collapse */
    v = lx("(`date;2024.01.02)");
    CU_ASSERT(v && v->type == QP_LIST && v->v.n == 2 && qp_K(v)[0]->type == -QP_SYMBOL &&
              qp_K(v)[1]->type == -QP_DATE && qp_K(v)[1]->i == days(2024, 1, 2));
    qp_unref(v);
    v = lx("(2024.01.02;2024.01.03)");
    CU_ASSERT(v && v->type == QP_DATE && v->v.n == 2);
    qp_unref(v);
    v = lx("(2024.01.02;09:30;0D00:00:01;2024.01.02D)");
    CU_ASSERT(v && v->type == QP_LIST && v->v.n == 4 && qp_K(v)[1]->type == -QP_MINUTE &&
              qp_K(v)[3]->type == -QP_TIMESTAMP);
    qp_unref(v);
    v = lx("(`sym;`AC)");                              /* q: a symbol vector */
    CU_ASSERT(v && v->type == QP_SYMBOL && v->v.n == 2);
    qp_unref(v);
}

/* What q's console prints for each literal is the literal itself. */
static void test_literal_temporal_roundtrip(void)
{
    static const char *texts[] = {
        "2024.01.02", "2024.01m", "2024.01.02D09:30:00.000000000", "0D00:00:01.500000000",
        "09:30:00.000", "09:30", "09:30:00", "2024.01.02T09:30:00.000", "0Nd", "0Wp", "0Nm",
        "2024.01.02 2024.01.03", "-0D00:00:01.000000000", "1999.12.31D23:59:59.999999999",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        qp_value *v = lx(texts[i]);
        char *f = v ? qp_format(v, 0) : NULL;
        size_t n = f ? strlen(f) : 0;
        while (n && f[n - 1] == '\n') f[--n] = 0;
        if (!f || strcmp(f, texts[i])) printf("\n  %s printed as %s\n", texts[i], f ? f : "(null)");
        CU_ASSERT(f && !strcmp(f, texts[i]));
        free(f);
        qp_unref(v);
    }
}

static void test_literal_temporal_errors(void)
{
    static const struct { const char *text, *err; } cases[] = {
        { "2024.02.30", "bad date" },
        { "2023.02.29", "bad date" },
        { "2024.13.01", "bad date" },
        { "2024.1.02", "bad date" },
        { "2024-01-02", "bad number" },
        { "2024.13m", "bad month" },
        { "2024.01.02D24:00", "bad timestamp" },
        { "1600.01.01D00:00", "bad timestamp" },
        { "2024.01.02T09:30:00:00", "bad datetime" },
        { "xD00:00", "not a literal" },
        { "1xD00:00", "bad timespan" },
        { "09:60", "bad minute" },
        { "09:30:60", "bad second" },
        { "09:30:00.", "bad time" },
        { "09:30:00.1234567891", "bad time" },
        { "2024.01.02 09:30", "mixed types" },
        { "2024.01.02 1", "mixed types" },
        { "1 2024.01.02", "mixed types" },
        { "2024.01.02 0Nm", "mixed types" },
        { "09:30 1.5", "mixed types" },
        { "2024.01.02 1 2h", "mixed types" },
        { "0Nx", "bad number" },
        { "2024.01.02 09:30", "mixed types in a vector at \"2024.01.02 09:30\"" },
        { "(1;2024.01 2024.02 0Nd)", "mixed types in a vector at \"2024.01 2024.02 0Nd)\"" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[128] = "";
        qp_value *v = lit_exact(cases[i].text, err, sizeof err);
        if (v) printf("\n  accepted bad literal: %s\n", cases[i].text);
        CU_ASSERT_PTR_NULL(v);
        qp_unref(v);
        if (!strstr(err, cases[i].err))
            printf("\n  %s: error \"%s\", wanted \"%s\"\n", cases[i].text, err, cases[i].err);
        CU_ASSERT(strstr(err, cases[i].err) != NULL);
    }
}

static void test_expr_temporal(void)
{
    qp_expr e;
    const char *s = ".qp.apply[`cnt;`trade;(`date;2024.01.02)]";     /* the README's call */
    CU_ASSERT_EQUAL(qp_expr_parse(s, strlen(s), &e), 0);
    CU_ASSERT(e.call && e.args && e.args->v.n == 3 && qp_K(e.args)[2]->type == QP_LIST &&
              qp_K(qp_K(e.args)[2])[1]->type == -QP_DATE);
    qp_unref(e.args);
    s = ".qp.echo 2024.01.02";
    CU_ASSERT_EQUAL(qp_expr_parse(s, strlen(s), &e), 0);
    CU_ASSERT(e.call && e.args && e.args->v.n == 1 && qp_K(e.args)[0]->type == -QP_DATE);
    qp_unref(e.args);
    s = ".qp.echo[1;2024.02.30]";                     /* the argument's error is kept */
    CU_ASSERT_EQUAL(qp_expr_parse(s, strlen(s), &e), QP_EARG);
    CU_ASSERT(e.args == NULL && strstr(e.err, "bad date at \"2024.02.30\"") != NULL);
    s = "f[09:30;0D00:00:01;2024.01.02 2024.01.03]";
    CU_ASSERT_EQUAL(qp_expr_parse(s, strlen(s), &e), 0);
    CU_ASSERT(e.args && e.args->v.n == 3 && qp_K(e.args)[0]->type == -QP_MINUTE &&
              qp_K(e.args)[1]->type == -QP_TIMESPAN && qp_K(e.args)[2]->type == QP_DATE);
    qp_unref(e.args);
}

/* ---- nesting ---- */

static void test_literal_nested(void)
{
    qp_value *v = lx("((1;2);(`a;`b);(\"xy\";(3.5;(::)));())");
    CU_ASSERT(v && v->type == QP_LIST && v->v.n == 4);
    if (v && v->type == QP_LIST && v->v.n == 4) {
        CU_ASSERT(qp_K(v)[0]->type == QP_LONG && qp_K(v)[0]->v.n == 2);
        CU_ASSERT(qp_K(v)[1]->type == QP_SYMBOL && qp_K(v)[1]->v.n == 2);
        qp_value *in = qp_K(v)[2];
        CU_ASSERT(in->type == QP_LIST && in->v.n == 2 && qp_K(in)[0]->type == QP_CHAR);
        if (in->type == QP_LIST && in->v.n == 2) {
            qp_value *in2 = qp_K(in)[1];
            CU_ASSERT(in2->type == QP_LIST && in2->v.n == 2 && qp_K(in2)[1]->type == QP_UNARY);
        }
        CU_ASSERT(qp_K(v)[3]->type == QP_LIST && qp_K(v)[3]->v.n == 0);
    }
    qp_unref(v);
    /* mixed atoms stay a list; one item in parentheses is that item */
    v = lx("(1;2h)");   CU_ASSERT(v && v->type == QP_LIST && v->v.n == 2); qp_unref(v);
    v = lx("((((7))))"); CU_ASSERT(v && v->type == -QP_LONG && v->j == 7); qp_unref(v);
    v = lx("(())");     CU_ASSERT(v && v->type == QP_LIST && v->v.n == 0); qp_unref(v);

    /* 64 levels of lists are read; the 65th is refused with a message */
    char text[400], err[128];
    for (int depth = 64; depth <= 65; depth++) {
        size_t n = 0;
        for (int i = 0; i < depth; i++) text[n++] = '(';
        text[n++] = '1'; text[n++] = ';'; text[n++] = '2';
        for (int i = 0; i < depth; i++) { text[n++] = ';'; text[n++] = '3'; text[n++] = ')'; }
        text[n] = 0;
        err[0] = 0;
        v = lit_exact(text, err, sizeof err);
        if (depth == 64) {
            CU_ASSERT(v && v->type == QP_LIST && v->v.n == 2);
        } else {
            CU_ASSERT_PTR_NULL(v);
            CU_ASSERT(strstr(err, "nested too deep") != NULL);
        }
        qp_unref(v);
    }
}

/* ---- malformed text: which error, on one line ---- */

static void test_literal_errors(void)
{
    static const struct { const char *text, *err; } cases[] = {
        { "", "expected a value" },
        { "   ", "expected a value" },
        { "\"open", "unterminated string" },
        { "\"a\\\"", "unterminated string" },
        { "(1;2", "expected ; or )" },
        { "(1 2 `a)", "expected ; or )" },
        { "(1;", "expected a value" },
        { "1.5i", "bad number" },
        { "1q", "bad number" },
        { "12345678901234567890", "bad number" },
        { "0Nq", "bad number" },
        { "0x", "bad byte literal" },
        { "0x123", "bad byte literal" },
        { "0xzz", "bad byte literal" },
        { "1 2.5 3i", "float in an integer vector" },
        { "1 2 x", "unexpected text" },
        { "`a b", "unexpected text" },
        { "1)", "unexpected text" },
        { "abc", "not a literal" },
        { "{x}", "not a literal" },
        { "(1;{x})", "not a literal" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[128] = "";
        qp_value *v = lit_exact(cases[i].text, err, sizeof err);
        CU_ASSERT_PTR_NULL(v);
        qp_unref(v);
        if (!strstr(err, cases[i].err))
            printf("\n  %s: error \"%s\", wanted \"%s\"\n", cases[i].text, err, cases[i].err);
        CU_ASSERT(strstr(err, cases[i].err) != NULL);
        CU_ASSERT(strchr(err, '\n') == NULL);
        CU_ASSERT(strlen(err) < 80);              /* the quoted text is clipped */
    }
    /* the message names where it went wrong */
    char err[128] = "";
    CU_ASSERT_PTR_NULL(qp_literal_parse("(1;2;x)", 7, err, sizeof err));
    CU_ASSERT_STRING_EQUAL(err, "not a literal at \"x)\"");
    /* a small err buffer is filled, truncated and terminated */
    char small[8];
    CU_ASSERT_PTR_NULL(qp_literal_parse("\"open", 5, small, sizeof small));
    CU_ASSERT(strlen(small) == 7);
}

/* ---- no crash on any text ---- */

/* Every prefix and every one-byte deletion of valid literals and calls,
 * then 20000 strings of q's characters from a fixed-seed generator: each
 * is a value, or NULL with a message; a call is 0 or QP_EARG. */
static void check_any(const char *s, size_t n)
{
    char *b = malloc(n ? n : 1), err[128];
    if (!b) return;
    memcpy(b, s, n);
    err[0] = 0;
    qp_value *v = qp_literal_parse(b, n, err, sizeof err);
    CU_ASSERT(v != NULL || err[0] != 0);
    qp_unref(v);
    qp_expr e;
    int rc = qp_expr_parse(b, n, &e);
    CU_ASSERT(rc == 0 || rc == QP_EARG);
    CU_ASSERT(rc == 0 || e.args == NULL);
    if (rc == 0) CU_ASSERT(e.name != NULL && e.call == (e.args != NULL));
    qp_unref(e.args);
    free(b);
}

static void test_no_crash(void)
{
    static const char *good[] = {
        "(1;`a;\"x\\\"y\";(2.5e;0x0a0b;(::));())", "1 2 0N 0W -0Wi", "`a`b`:c/d", "0101b",
        ".qp.echo[(1;2);\"a;b]\";`c]", "f 1 2 3h", "f`a`b", "f[]", "\"\\101\\n\"",
    };
    for (size_t g = 0; g < sizeof good / sizeof good[0]; g++) {
        size_t n = strlen(good[g]);
        char del[128];
        for (size_t k = 0; k <= n; k++) check_any(good[g], k);
        for (size_t k = 0; k < n; k++) {
            memcpy(del, good[g], k);
            memcpy(del + k, good[g] + k + 1, n - k - 1);
            check_any(del, n - 1);
        }
    }
    static const char alphabet[] = "0123456789.-`\"\\();[]: abexfhijnNwWq:/_\t\0DTmdpzuvt";
    uint64_t x = 0x9e3779b97f4a7c15u;
    char buf[40];
    for (int i = 0; i < 20000; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        size_t n = (size_t)(x >> 59);          /* 0..31 */
        for (size_t k = 0; k < n; k++) {
            x = x * 6364136223846793005u + 1442695040888963407u;
            buf[k] = alphabet[(x >> 33) % (sizeof alphabet - 1)];
        }
        check_any(buf, n);
    }
    /* NULL err is allowed */
    CU_ASSERT_PTR_NULL(qp_literal_parse("(", 1, NULL, 0));
}

/* ---- more call forms ---- */

static void test_expr_forms(void)
{
    qp_expr e;
    const char *s = "f`a`b";                              /* one symbol-vector argument */
    CU_ASSERT_EQUAL(qp_expr_parse(s, strlen(s), &e), 0);
    CU_ASSERT(e.call && e.args && e.args->v.n == 1 && qp_K(e.args)[0]->type == QP_SYMBOL);
    qp_unref(e.args);
    s = " .a_b.c[1;2;(3;4)] ";
    CU_ASSERT_EQUAL(qp_expr_parse(s, strlen(s), &e), 0);
    CU_ASSERT(e.call && !strcmp(e.name, ".a_b.c") && e.args->v.n == 3 && qp_K(e.args)[2]->type == QP_LONG);
    qp_unref(e.args);
    s = "f \"x\"";
    CU_ASSERT_EQUAL(qp_expr_parse(s, strlen(s), &e), 0);
    CU_ASSERT(e.call && qp_K(e.args)[0]->type == -QP_CHAR);
    qp_unref(e.args);
    /* q that is not a call form: refused, nothing to free */
    const char *bad[] = { "f [1]", "f[1] ", "f[1]]", "f[[1]", "til 10 + 1", "f[x]", "1 f", "f\"x\"",
                          "count trade", "select from t", "f[1;2", "f[\"a]" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = qp_expr_parse(bad[i], strlen(bad[i]), &e);
        if (!strcmp(bad[i], "f[1] ")) {                   /* trailing blanks are fine */
            CU_ASSERT_EQUAL(rc, 0);
            qp_unref(e.args);
            continue;
        }
        if (rc == 0) printf("\n  accepted bad expression: %s\n", bad[i]);
        CU_ASSERT_EQUAL(rc, QP_EARG);
        CU_ASSERT_PTR_NULL(e.args);
    }
}

int main(void)
{
    static const qp_test tests[] = {
        {"literal atoms", test_literal_atoms},
        {"literal vectors and lists", test_literal_vectors_and_lists},
        {"literal rejects", test_literal_rejects},
        {"expressions", test_expr},
        {"literals of every type", test_literal_every_type},
        {"nested lists and the depth limit", test_literal_nested},
        {"malformed literals: which error", test_literal_errors},
        {"no crash or over-read on any text", test_no_crash},
        {"call forms", test_expr_forms},
        {"temporal literals", test_literal_temporal_atoms},
        {"temporal nulls and infinities", test_literal_temporal_nulls},
        {"temporal vectors and lists", test_literal_temporal_vectors},
        {"temporal literals print as q prints them", test_literal_temporal_roundtrip},
        {"temporal literals: which error", test_literal_temporal_errors},
        {"call forms with temporal arguments", test_expr_temporal},
    };
    return qp_test_run("qparse", NULL, NULL, tests, QP_NTESTS(tests));
}
