/* test_qparse.c - CUnit suite for qpeach/qparse.h: q literals of every type
 * the parser knows, nested lists, the call forms a server evaluates, and
 * malformed text (a clear one-line error, never a crash or an over-read:
 * inputs are parsed from exact-size buffers, so ASan sees any byte read
 * past the end).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cunit_run.h"

#include "qpeach/qparse.h"

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

int main(void)
{
    static const qp_test tests[] = {
        {"literal atoms", test_literal_atoms},
        {"literal vectors and lists", test_literal_vectors_and_lists},
        {"literal rejects", test_literal_rejects},
        {"expressions", test_expr},
    };
    return qp_test_run("qparse", NULL, NULL, tests, QP_NTESTS(tests));
}
