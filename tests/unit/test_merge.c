/* test_merge.c - the scheduler's pure parts on either side of the
 * tasks: partition planning (how a table is cut into tasks), merging the
 * tasks' results, and writing the merged value out (msgpack, csv). */
#include "qpeach/sched.h"
#include "qpeach/value.h"

#include "cunit_run.h"
#include "sched_scratch.h"
#include <msgpack.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- partition planning ---- */

static void test_plan_rows(void)
{
    qp_partplan *p = NULL;
    CU_ASSERT_EQUAL_FATAL(qp_partplan_rows(10, 3, &p), 0);
    CU_ASSERT_EQUAL(p->n, 3);
    int64_t want[][2] = { {0, 3}, {3, 6}, {6, 10} };
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(p->parts[i].start, want[i][0]);
        CU_ASSERT_EQUAL(p->parts[i].end, want[i][1]);
    }
    qp_value *d = qp_part_descriptor(p, 2);
    CU_ASSERT(d->type == QP_LONG && d->v.n == 2 && qp_J(d)[0] == 6 && qp_J(d)[1] == 10);
    qp_unref(d);
    char *s = qp_part_describe(p, 1);
    CU_ASSERT_STRING_EQUAL(s, "rows 3-6");
    free(s);
    qp_partplan_free(p);
    /* Fewer rows than pieces: no empty pieces; none at all: one. */
    CU_ASSERT_EQUAL_FATAL(qp_partplan_rows(2, 8, &p), 0);
    CU_ASSERT_EQUAL(p->n, 2);
    qp_partplan_free(p);
    CU_ASSERT_EQUAL_FATAL(qp_partplan_rows(0, 8, &p), 0);
    CU_ASSERT(p->n == 1 && p->parts[0].start == 0 && p->parts[0].end == 0);
    qp_partplan_free(p);
    /* Covering, in order, for awkward sizes. */
    CU_ASSERT_EQUAL_FATAL(qp_partplan_rows(1000003, 7, &p), 0);
    int64_t at = 0;
    for (int64_t i = 0; i < p->n; i++) {
        CU_ASSERT_EQUAL(p->parts[i].start, at);
        CU_ASSERT(p->parts[i].end > at);
        at = p->parts[i].end;
    }
    CU_ASSERT_EQUAL(at, 1000003);
    qp_partplan_free(p);
    CU_ASSERT_EQUAL(qp_partplan_rows(5, 0, &p), QP_EARG);
    qp_partplan_free(NULL);
}

static void test_plan_column_and_files(void)
{
    qp_value *v = qp_vector(QP_SYMBOL, 5);
    const char *names[] = { "MSFT", "IBM", "MSFT", "AAPL", "IBM" };
    for (int i = 0; i < 5; i++) qp_S(v)[i] = qp_sym_intern(names[i], strlen(names[i]));
    qp_partplan *p = NULL;
    CU_ASSERT_EQUAL_FATAL(qp_partplan_column("sym", v, &p), 0);
    CU_ASSERT_EQUAL_FATAL(p->n, 3);
    CU_ASSERT_STRING_EQUAL(p->parts[0].value->s, "AAPL");
    CU_ASSERT_STRING_EQUAL(p->parts[2].value->s, "MSFT");
    qp_value *d = qp_part_descriptor(p, 1);
    CU_ASSERT(d->type == QP_LIST && qp_K(d)[0]->type == -QP_SYMBOL);
    CU_ASSERT_STRING_EQUAL(qp_K(d)[0]->s, "sym");
    CU_ASSERT_STRING_EQUAL(qp_K(d)[1]->s, "IBM");
    qp_unref(d);
    char *s = qp_part_describe(p, 1);
    CU_ASSERT_STRING_EQUAL(s, "sym=`IBM");
    free(s);
    qp_partplan_free(p);
    qp_unref(v);
    /* Numbers sort numerically, floats with nulls first. */
    qp_value *f = qp_vector(QP_FLOAT, 4);
    double fx[] = { 2.5, QP_NULL_F, -1, 2.5 };
    memcpy(f->v.data, fx, sizeof fx);
    qp_value *u = qp_distinct_sorted(f);
    CU_ASSERT_EQUAL(u->v.n, 3);
    CU_ASSERT(qp_F(u)[0] != qp_F(u)[0] && qp_F(u)[1] == -1 && qp_F(u)[2] == 2.5);
    qp_unref(u);
    qp_unref(f);
    /* q's =: -0.0 is 0.0 and NaNs of any sign bit are the one null; the
     * values kept are 0.0 and that null, which select every such row. */
    f = qp_vector(QP_FLOAT, 5);
    uint64_t nan_neg = 0xfff8000000000000ull, nan_pay = 0x7ff8000000000123ull;
    double zx[] = { -0.0, 0.0, 0, 0, 1.5 };
    memcpy(&zx[2], &nan_neg, 8);
    memcpy(&zx[3], &nan_pay, 8);
    memcpy(f->v.data, zx, sizeof zx);
    u = qp_distinct_sorted(f);
    CU_ASSERT_EQUAL_FATAL(u->v.n, 3);
    double null = QP_NULL_F;
    CU_ASSERT(!memcmp(&qp_F(u)[0], &null, 8) && !signbit(qp_F(u)[1]) && qp_F(u)[1] == 0);
    for (int i = 0; i < 4; i++)
        CU_ASSERT(qp_item_eq(QP_FLOAT, &zx[i], &qp_F(u)[i < 2 ? 1 : 0]));
    CU_ASSERT(!qp_item_eq(QP_FLOAT, &zx[4], &qp_F(u)[1]));
    qp_unref(u);
    qp_unref(f);
    qp_value *l = qp_vector(QP_LIST, 0);
    CU_ASSERT_EQUAL(qp_partplan_column("x", l, &p), QP_EARG);
    qp_unref(l);
    /* Files: sorted, and the plan value names them. */
    write_file("d2.csv", "a\n1\n");
    write_file("d1.csv", "a\n1\n");
    char pat[512];
    snprintf(pat, sizeof pat, "%s/d*.csv", tmp);
    CU_ASSERT_EQUAL_FATAL(qp_partplan_files(pat, &p), 0);
    CU_ASSERT_EQUAL(p->n, 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(p->parts[0].file, "d1.csv"));
    qp_value *pv = qp_partplan_value(p);
    CU_ASSERT(pv->type == QP_LIST && pv->v.n == 2 && qp_K(pv)[1]->type == QP_CHAR);
    qp_unref(pv);
    qp_partplan_free(p);
    snprintf(pat, sizeof pat, "%s/none*.csv", tmp);
    CU_ASSERT_EQUAL(qp_partplan_files(pat, &p), QP_EARG);
}

/* ---- merging ---- */

static qp_value *longs(int n, const int64_t *x)
{
    qp_value *v = qp_vector(QP_LONG, n);
    memcpy(v->v.data, x, (size_t)n * 8);
    return v;
}

static qp_value *syms(int n, const char **x)
{
    qp_value *v = qp_vector(QP_SYMBOL, n);
    for (int i = 0; i < n; i++) qp_S(v)[i] = qp_sym_intern(x[i], strlen(x[i]));
    return v;
}

static qp_value *table2(const char *a, qp_value *ca, const char *b, qp_value *cb)
{
    const char *n[] = { a, b };
    return qp_table(qp_dict(syms(2, n), qp_list(2, ca, cb)));
}

static void test_merge_concat_and_arith(void)
{
    int64_t a[] = {1, 2}, b[] = {3}, c[] = {10, 20};
    qp_value *p[3] = { longs(2, a), longs(1, b), longs(0, a) };
    qp_value *m = qp_merge(QP_MERGE_CONCAT, p, 3, NULL, 0);
    CU_ASSERT(m->type == QP_LONG && m->v.n == 3 && qp_J(m)[2] == 3);
    qp_unref(m);
    m = qp_merge(QP_MERGE_COUNT, p, 3, NULL, 0);
    CU_ASSERT(m->type == -QP_LONG && m->j == 3);
    qp_unref(m);
    qp_unref(p[1]);
    qp_unref(p[2]);
    p[1] = longs(2, c);
    m = qp_merge(QP_MERGE_SUM, p, 2, NULL, 0);
    CU_ASSERT(m->type == QP_LONG && qp_J(m)[0] == 11 && qp_J(m)[1] == 22);
    qp_unref(m);
    m = qp_merge(QP_MERGE_MAX, p, 2, NULL, 0);
    CU_ASSERT(qp_J(m)[1] == 20);
    qp_unref(m);
    qp_unref(p[0]);
    qp_unref(p[1]);
    /* Atoms: sum skips nulls, min/max keep the type; floats widen. */
    qp_value *f[3] = { qp_float(1.5), qp_float(QP_NULL_F), qp_float(-2) };
    m = qp_merge(QP_MERGE_SUM, f, 3, NULL, 0);
    CU_ASSERT(m->type == -QP_FLOAT && m->f == -0.5);
    qp_unref(m);
    m = qp_merge(QP_MERGE_MIN, f, 3, NULL, 0);
    CU_ASSERT(m->f == -2);
    qp_unref(m);
    m = qp_merge(QP_MERGE_CONCAT, f, 3, NULL, 0);
    CU_ASSERT(m->type == QP_FLOAT && m->v.n == 3 && qp_F(m)[2] == -2);
    qp_unref(m);
    qp_value *mixed[2] = { f[0], qp_long(1) };
    m = qp_merge(QP_MERGE_SUM, mixed, 2, NULL, 0);
    CU_ASSERT(qp_is_error(m));
    qp_unref(m);
    m = qp_merge(QP_MERGE_CONCAT, mixed, 2, NULL, 0);
    CU_ASSERT(m->type == QP_LIST && m->v.n == 2);
    qp_unref(m);
    qp_unref(mixed[1]);
    for (int i = 0; i < 3; i++) qp_unref(f[i]);
    /* Tables concatenate column by column, in partition order. */
    const char *s1[] = {"a", "b"}, *s2[] = {"c"};
    qp_value *t[2] = { table2("sym", syms(2, s1), "n", longs(2, a)),
                       table2("sym", syms(1, s2), "n", longs(1, b)) };
    m = qp_merge(QP_MERGE_CONCAT, t, 2, NULL, 0);
    CU_ASSERT_EQUAL_FATAL(m->type, QP_TABLE);
    CU_ASSERT_EQUAL(qp_count(m), 3);
    CU_ASSERT_STRING_EQUAL(qp_S(qp_table_column(m, "sym"))[2], "c");
    qp_unref(m);
    qp_unref(t[1]);
    t[1] = table2("sym", syms(1, s2), "x", longs(1, b));
    m = qp_merge(QP_MERGE_CONCAT, t, 2, NULL, 0);
    CU_ASSERT(qp_is_error(m));
    qp_unref(m);
    qp_unref(t[0]);
    qp_unref(t[1]);
}

/* A keyed table ([key] ! [a; b]) of one row: key k, values a and b. */
static qp_value *keyed1(const char *kname, int64_t k, const char *a, int64_t va, const char *b,
                        int64_t vb)
{
    qp_value *kt = qp_table(qp_dict(syms(1, &kname), qp_list(1, longs(1, &k))));
    return qp_dict(kt, table2(a, longs(1, &va), b, longs(1, &vb)));
}

/* Columns are matched by name: a partial {k; y; x} adds its x to x; other
 * names fail naming both sets, or count as zero with missing = zero;
 * concat takes the first partial's order. */
static void test_merge_by_name(void)
{
    qp_value *p[3] = { keyed1("k", 1, "x", 1, "y", 10), keyed1("k", 1, "y", 20, "x", 2),
                       keyed1("k", 2, "x", 3, "zzz", 30) };
    qp_value *m = qp_merge(QP_MERGE_SUM_BY_KEY, p, 2, NULL, 0);
    CU_ASSERT_FATAL(qp_is_keyed_table(m));
    qp_value *v = qp_dict_values(m);
    CU_ASSERT(qp_J(qp_table_column(v, "x"))[0] == 3 && qp_J(qp_table_column(v, "y"))[0] == 30);
    CU_ASSERT_STRING_EQUAL(qp_S(qp_table_names(v))[0], "x");
    qp_unref(m);
    m = qp_merge(QP_MERGE_SUM_BY_KEY, p, 3, NULL, 0);
    CU_ASSERT_FATAL(qp_is_error(m));
    CU_ASSERT_PTR_NOT_NULL(strstr(m->s, "partial 3 has value columns (x, zzz) where partial 1 has (x, y)"));
    qp_unref(m);
    m = qp_merge(QP_MERGE_SUM_BY_KEY | QP_MERGE_MISSING_ZERO, p, 3, NULL, 0);
    CU_ASSERT_FATAL(qp_is_keyed_table(m));
    v = qp_dict_values(m);
    CU_ASSERT_EQUAL(qp_count(v), 2);
    CU_ASSERT(qp_J(qp_table_column(v, "x"))[1] == 3 && qp_J(qp_table_column(v, "y"))[1] == 0);
    CU_ASSERT(qp_J(qp_table_column(v, "zzz"))[0] == 0 && qp_J(qp_table_column(v, "zzz"))[1] == 30);
    qp_unref(m);
    /* concat: the values of p[1] under the first's names and order */
    m = qp_merge(QP_MERGE_CONCAT, p, 2, NULL, 0);
    CU_ASSERT_FATAL(qp_is_keyed_table(m));
    v = qp_dict_values(m);
    CU_ASSERT_STRING_EQUAL(qp_S(qp_table_names(v))[0], "x");
    CU_ASSERT(qp_J(qp_table_column(v, "x"))[1] == 2 && qp_J(qp_table_column(v, "y"))[1] == 20);
    qp_unref(m);
    m = qp_merge(QP_MERGE_CONCAT, p + 1, 2, NULL, 0);
    CU_ASSERT(qp_is_error(m) && strstr(m->s, "table 2 has (x, zzz) where table 1 has (y, x)"));
    qp_unref(m);
    /* key columns by name too */
    int64_t one = 1, two = 2;
    qp_value *kk[2] = {
        qp_dict(table2("a", longs(1, &one), "b", longs(1, &two)),
                table2("x", longs(1, &one), "y", longs(1, &one))),
        qp_dict(table2("b", longs(1, &two), "a", longs(1, &one)),
                table2("x", longs(1, &one), "y", longs(1, &one))) };
    m = qp_merge(QP_MERGE_SUM_BY_KEY, kk, 2, NULL, 0);
    CU_ASSERT_FATAL(qp_is_keyed_table(m));
    CU_ASSERT_EQUAL(qp_count(qp_dict_values(m)), 1);
    CU_ASSERT_EQUAL(qp_J(qp_table_column(qp_dict_values(m), "x"))[0], 2);
    qp_unref(m);
    for (int i = 0; i < 3; i++) qp_unref(p[i]);
    qp_unref(kk[0]);
    qp_unref(kk[1]);
}

static void test_merge_sum_by_key(void)
{
    const char *k1[] = {"IBM", "MSFT", "IBM"}, *k2[] = {"AAPL", "MSFT"};
    int64_t v1[] = {1, 2, 3}, v2[] = {10, 20};
    /* Dicts: keys in first-seen order, values added. */
    qp_value *d[2] = { qp_dict(syms(3, k1), longs(3, v1)), qp_dict(syms(2, k2), longs(2, v2)) };
    qp_value *m = qp_merge(QP_MERGE_SUM_BY_KEY, d, 2, NULL, 0);
    CU_ASSERT_FATAL(qp_is_dict(m));
    qp_value *k = qp_dict_keys(m), *v = qp_dict_values(m);
    CU_ASSERT_EQUAL_FATAL(k->v.n, 3);
    CU_ASSERT_STRING_EQUAL(qp_S(k)[0], "IBM");
    CU_ASSERT_STRING_EQUAL(qp_S(k)[2], "AAPL");
    CU_ASSERT(qp_J(v)[0] == 4 && qp_J(v)[1] == 22 && qp_J(v)[2] == 10);
    qp_unref(m);
    qp_unref(d[0]);
    qp_unref(d[1]);
    /* Plain tables with a key column, float sums. */
    qp_value *f1 = qp_vector(QP_FLOAT, 3), *f2 = qp_vector(QP_FLOAT, 2);
    double x1[] = {0.5, 1, 1.5}, x2[] = {2, QP_NULL_F};
    memcpy(f1->v.data, x1, sizeof x1);
    memcpy(f2->v.data, x2, sizeof x2);
    qp_value *t[2] = { table2("sym", syms(3, k1), "pv", f1), table2("sym", syms(2, k2), "pv", f2) };
    char *keys[] = { "sym" };
    m = qp_merge(QP_MERGE_SUM_BY_KEY, t, 2, keys, 1);
    CU_ASSERT_EQUAL_FATAL(m->type, QP_TABLE);
    qp_value *pv = qp_table_column(m, "pv");
    CU_ASSERT(pv->type == QP_FLOAT && pv->v.n == 3);
    CU_ASSERT(qp_F(pv)[0] == 2.0 && qp_F(pv)[1] == 1.0 && qp_F(pv)[2] == 2.0);
    qp_unref(m);
    m = qp_merge(QP_MERGE_SUM_BY_KEY, t, 2, NULL, 0);
    CU_ASSERT(qp_is_error(m));
    qp_unref(m);
    qp_unref(t[0]);
    qp_unref(t[1]);
    /* Many keys: the table grows and rehashes. */
    qp_value *big = qp_vector(QP_LONG, 5000), *ones = qp_vector(QP_LONG, 5000);
    for (int i = 0; i < 5000; i++) { qp_J(big)[i] = i % 3000; qp_J(ones)[i] = 1; }
    qp_value *bd[2] = { qp_dict(qp_ref(big), qp_ref(ones)), qp_dict(big, ones) };
    m = qp_merge(QP_MERGE_SUM_BY_KEY, bd, 2, NULL, 0);
    CU_ASSERT_EQUAL(qp_dict_keys(m)->v.n, 3000);
    CU_ASSERT_EQUAL(qp_J(qp_dict_values(m))[0], 4);
    CU_ASSERT_EQUAL(qp_J(qp_dict_values(m))[2999], 2);
    qp_unref(m);
    qp_unref(bd[0]);
    qp_unref(bd[1]);
}

/* A long value column in one partial and a float one in another: float
 * sums, whichever comes first (the order of the partials must not decide:
 * long first used to fail, and built that error once per row, leaking all
 * but the last: ASan's 99 leaks for 100 rows). */
static void test_merge_sum_by_key_mixed_types(void)
{
    qp_value *k1 = qp_vector(QP_LONG, 100), *k2 = qp_vector(QP_LONG, 100);
    qp_value *l = qp_vector(QP_LONG, 100), *f = qp_vector(QP_FLOAT, 100);
    for (int i = 0; i < 100; i++) {
        qp_J(k1)[i] = qp_J(k2)[i] = i;
        qp_J(l)[i] = i;
        qp_F(f)[i] = i + 0.5;
    }
    qp_value *d[2] = { qp_dict(k1, l), qp_dict(k2, f) }, *e[2] = { d[1], d[0] };
    qp_value *const *orders[2] = { d, e };
    for (int o = 0; o < 2; o++) {
        qp_value *m = qp_merge(QP_MERGE_SUM_BY_KEY, orders[o], 2, NULL, 0);
        CU_ASSERT_FATAL(m && qp_is_dict(m));
        CU_ASSERT_EQUAL(qp_dict_values(m)->type, QP_FLOAT);
        CU_ASSERT_DOUBLE_EQUAL(qp_F(qp_dict_values(m))[99], 198.5, 1e-9);
        qp_unref(m);
    }
    qp_unref(d[0]);
    qp_unref(d[1]);
}

static void test_msgpack_output(void)
{
    const char *k[] = {"a", "b"};
    int64_t v[] = {1, QP_NULL_J};
    qp_value *t = table2("sym", syms(2, k), "n", longs(2, v));
    uint8_t *b = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(qp_msgpack_encode(t, &b, &n), 0);
    /* {"sym": ["a","b"], "n": [1, nil]} */
    static const uint8_t want[] = { 0x82, 0xa3, 's', 'y', 'm', 0x92, 0xa1, 'a', 0xa1, 'b',
                                    0xa1, 'n', 0x92, 0x01, 0xc0 };
    CU_ASSERT_EQUAL(n, sizeof want);
    CU_ASSERT(n == sizeof want && !memcmp(b, want, n));
    free(b);
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/o.msgpack", tmp);
    CU_ASSERT_EQUAL(qp_output_write(t, path, false, stdout, err, sizeof err), 0);
    struct stat st;
    CU_ASSERT(stat(path, &st) == 0 && st.st_size == (off_t)sizeof want);
    snprintf(path, sizeof path, "%s/o.csv", tmp);
    CU_ASSERT_EQUAL(qp_output_write(t, path, false, stdout, err, sizeof err), 0);
    CU_ASSERT(stat(path, &st) == 0 && st.st_size > 0);
    snprintf(path, sizeof path, "%s/nodir/o.qipc", tmp);
    CU_ASSERT(qp_output_write(t, path, false, stdout, err, sizeof err) < 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "nodir/o.qipc"));
    qp_unref(t);
}

/* One item of type t packed, unpacked with libmsgpack's reader (whose
 * objects point into the bytes: the previous call's are freed here). */
static msgpack_object packed_item(int t, const void *item, msgpack_unpacked *u)
{
    static uint8_t *b;
    free(b);
    b = NULL;
    if (!item) return (msgpack_object){ 0 };
    qp_value *v = qp_vector(t, 1);
    memcpy(v->v.data, item, qp_type_width(t));
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(qp_msgpack_encode(v, &b, &n), 0);
    qp_unref(v);
    msgpack_unpacked_init(u);
    CU_ASSERT_EQUAL_FATAL(msgpack_unpack_next(u, (const char *)b, n, NULL), MSGPACK_UNPACK_SUCCESS);
    CU_ASSERT_EQUAL_FATAL(u->data.type, MSGPACK_OBJECT_ARRAY);
    return u->data.via.array.ptr[0];
}

/* The temporal types a Python function cannot return (datetime) and the
 * edges of the others: instants and days as the timestamp extension,
 * since 1970 (2024.03 was 290 months since 2000; a datetime its raw day
 * fraction; 0Wp wrapped to 1707), durations as counts, infinities numpy's
 * int64 extremes. */
static void test_msgpack_temporal(void)
{
    msgpack_unpacked u;
    msgpack_timestamp ts;
    double z = 1.5, zinf = QP_INF_F;
    int32_t mo = 290, d = -1, inf = QP_INF_I;
    int64_t p = QP_INF_J, n = -QP_INF_J;
    msgpack_object o = packed_item(QP_DATETIME, &z, &u);   /* 2000.01.02T12:00 */
    CU_ASSERT(msgpack_object_to_timestamp(&o, &ts) && ts.tv_sec == 946814400 && ts.tv_nsec == 0);
    msgpack_unpacked_destroy(&u);
    o = packed_item(QP_MONTH, &mo, &u);                    /* 2024.03.01 */
    CU_ASSERT(msgpack_object_to_timestamp(&o, &ts) && ts.tv_sec == 1709251200);
    msgpack_unpacked_destroy(&u);
    o = packed_item(QP_DATE, &d, &u);                      /* 1999.12.31 */
    CU_ASSERT(msgpack_object_to_timestamp(&o, &ts) && ts.tv_sec == 946598400);
    msgpack_unpacked_destroy(&u);
    o = packed_item(QP_TIMESTAMP, &p, &u);                 /* pandas' Timestamp.max */
    CU_ASSERT(msgpack_object_to_timestamp(&o, &ts) && ts.tv_sec == INT64_MAX / 1000000000 &&
              ts.tv_nsec == INT64_MAX % 1000000000);
    msgpack_unpacked_destroy(&u);
    o = packed_item(QP_DATETIME, &zinf, &u);
    CU_ASSERT(msgpack_object_to_timestamp(&o, &ts) && ts.tv_sec == INT64_MAX / 1000000000);
    msgpack_unpacked_destroy(&u);
    o = packed_item(QP_TIMESPAN, &n, &u);
    CU_ASSERT(o.type == MSGPACK_OBJECT_NEGATIVE_INTEGER && o.via.i64 == INT64_MIN + 1);
    msgpack_unpacked_destroy(&u);
    o = packed_item(QP_SECOND, &inf, &u);
    CU_ASSERT(o.type == MSGPACK_OBJECT_POSITIVE_INTEGER && o.via.u64 == INT64_MAX);
    msgpack_unpacked_destroy(&u);
    o = packed_item(QP_MINUTE, &mo, &u);
    CU_ASSERT(o.type == MSGPACK_OBJECT_POSITIVE_INTEGER && o.via.u64 == 290);
    msgpack_unpacked_destroy(&u);
    packed_item(0, NULL, NULL);
}

int main(void)
{
    static const qp_test tests[] = {
        {"plan: rows", test_plan_rows},
        {"plan: column values, files", test_plan_column_and_files},
        {"merge: concat, sum, min, max, count", test_merge_concat_and_arith},
        {"merge: sum-by-key", test_merge_sum_by_key},
        {"merge: columns by name", test_merge_by_name},
        {"merge: sum-by-key, long meets float in either order", test_merge_sum_by_key_mixed_types},
        {"output: msgpack, csv, errors", test_msgpack_output},
        {"output: msgpack temporal types", test_msgpack_temporal},
    };
    int fails = qp_test_run("merge", suite_init, suite_clean, tests, QP_NTESTS(tests));
    return fails;
}
