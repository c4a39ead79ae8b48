/* test_value.c - the value model: constructors, refcounts, slices, symbols. */
#include "qpeach/value.h"

#include "cunit_run.h"
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static void test_atoms(void)
{
    qp_value *j = qp_long(42), *f = qp_float(QP_NULL_F), *s = qp_symbol("abc");
    CU_ASSERT_EQUAL(j->type, -QP_LONG);
    CU_ASSERT_EQUAL(j->j, 42);
    CU_ASSERT(isnan(f->f));
    CU_ASSERT_STRING_EQUAL(s->s, "abc");
    CU_ASSERT_PTR_EQUAL(s->s, qp_sym_intern("abc", 3));
    CU_ASSERT_EQUAL(qp_count(j), 1);
    qp_value *e = qp_error("bad %s", "thing");
    CU_ASSERT(qp_is_error(e));
    CU_ASSERT_STRING_EQUAL(e->s, "bad thing");
    qp_value *id = qp_identity();
    CU_ASSERT_EQUAL(id->type, QP_UNARY);
    CU_ASSERT_EQUAL(id->v.n, 1);
    qp_unref(j); qp_unref(f); qp_unref(s); qp_unref(e); qp_unref(id);
    qp_unref(NULL);
}

static void test_vector_append_and_share(void)
{
    qp_value *v = qp_vector(QP_LONG, 0);
    for (int64_t i = 0; i < 1000; i++) CU_ASSERT_EQUAL(qp_vec_append(v, &i), 0);
    CU_ASSERT_EQUAL(v->v.n, 1000);
    CU_ASSERT_EQUAL(qp_J(v)[999], 999);
    /* A slice shares the items; appending to the parent then copies them
     * out, leaving the slice's view intact. */
    qp_value *s = qp_slice(v, 10, 5);
    CU_ASSERT_EQUAL(s->v.n, 5);
    CU_ASSERT_EQUAL(qp_J(s)[0], 10);
    CU_ASSERT_PTR_EQUAL(s->v.owner, v->v.owner);
    int64_t x = -1;
    qp_vec_append(v, &x);
    CU_ASSERT_EQUAL(qp_J(s)[4], 14);
    CU_ASSERT_EQUAL(qp_J(v)[1000], -1);
    /* Slices clamp to the count. */
    qp_value *c = qp_slice(v, 995, 100);
    CU_ASSERT_EQUAL(c->v.n, 6);
    qp_unref(c); qp_unref(s); qp_unref(v);
}

static void test_symbols_vector(void)
{
    qp_value *v = qp_vector(QP_SYMBOL, 3);
    CU_ASSERT_STRING_EQUAL(qp_S(v)[0], "");
    qp_S(v)[1] = qp_sym_intern("ibm", 3);
    qp_value *a = qp_item(v, 1);
    CU_ASSERT_EQUAL(a->type, -QP_SYMBOL);
    CU_ASSERT_PTR_EQUAL(a->s, qp_sym_intern("ibm", 3));
    qp_unref(a); qp_unref(v);
}

static qp_value *sample_table(int64_t n)
{
    qp_value *names = qp_vector(QP_SYMBOL, 2);
    qp_S(names)[0] = qp_sym_intern("a", 1);
    qp_S(names)[1] = qp_sym_intern("b", 1);
    qp_value *a = qp_vector(QP_LONG, n), *b = qp_vector(QP_FLOAT, n);
    for (int64_t i = 0; i < n; i++) { qp_J(a)[i] = i; qp_F(b)[i] = i * 0.5; }
    return qp_table(qp_dict(names, qp_list(2, a, b)));
}

static void test_tables(void)
{
    qp_value *t = sample_table(100);
    CU_ASSERT_EQUAL(t->type, QP_TABLE);
    CU_ASSERT_EQUAL(qp_count(t), 100);
    qp_value *b = qp_table_column(t, "b");
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_DOUBLE_EQUAL(qp_F(b)[10], 5.0, 0);
    CU_ASSERT_PTR_NULL(qp_table_column(t, "zz"));
    qp_value *s = qp_table_slice(t, 90, 20);
    CU_ASSERT_EQUAL(qp_count(s), 10);
    CU_ASSERT_EQUAL(qp_J(qp_table_column(s, "a"))[0], 90);
    qp_value *k = qp_dict(qp_ref(s), qp_ref(s));
    CU_ASSERT(qp_is_keyed_table(k));
    CU_ASSERT(!qp_is_keyed_table(t));
    qp_unref(k); qp_unref(s); qp_unref(t);
    /* Mismatched columns give an error value, not a table. */
    qp_value *names = qp_vector(QP_SYMBOL, 2);
    qp_value *bad = qp_table(qp_dict(names, qp_list(2, qp_vector(QP_LONG, 1),
                                                    qp_vector(QP_LONG, 2))));
    CU_ASSERT(qp_is_error(bad));
    qp_unref(bad);
}

static void test_equal(void)
{
    qp_value *a = sample_table(10), *b = sample_table(10), *c = sample_table(11);
    CU_ASSERT(qp_equal(a, b));
    CU_ASSERT(!qp_equal(a, c));
    qp_value *n1 = qp_float(QP_NULL_F), *n2 = qp_float(QP_NULL_F);
    CU_ASSERT(qp_equal(n1, n2));
    qp_unref(a); qp_unref(b); qp_unref(c); qp_unref(n1); qp_unref(n2);
}

static void *intern_many(void *arg)
{
    char buf[32];
    for (int i = 0; i < 20000; i++) {
        int n = snprintf(buf, sizeof buf, "s%d", i % 5000);
        if (qp_sym_intern(buf, (size_t)n) != qp_sym_intern(buf, (size_t)n)) return arg;
    }
    return NULL;
}

static void test_intern_threads(void)
{
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, intern_many, (void *)1);
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        CU_ASSERT_PTR_NULL(r);
    }
    CU_ASSERT_PTR_EQUAL(qp_sym_intern("s42", 3), qp_sym_intern("s42x", 3));
}

static void test_strerror(void)
{
    CU_ASSERT_STRING_EQUAL(qp_strerror(QP_ETRUNC), "message truncated");
    CU_ASSERT_STRING_EQUAL(qp_strerror(-2), "No such file or directory");
}

int main(void)
{
    static const qp_test tests[] = {
        {"atoms", test_atoms},
        {"vector append and share", test_vector_append_and_share},
        {"symbol vectors", test_symbols_vector},
        {"tables", test_tables},
        {"equality", test_equal},
        {"intern from threads", test_intern_threads},
        {"strerror", test_strerror},
    };
    int failed = qp_test_run("value", NULL, NULL, tests, QP_NTESTS(tests));
    return failed;
}
