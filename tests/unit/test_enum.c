/* test_enum.c - enumerations (type 20) and mapped buffers: construction,
 * checks, slices, equality, and every consumer that must see an enum as
 * the symbols it stands for (IPC bytes, console text, CSV, msgpack). */
#include "qpeach/ipc.h"
#include "qpeach/sched.h"
#include "qpeach/table.h"
#include "qpeach/value.h"
#include "core/value_int.h"     /* qp__buf_maps */

#include "cunit_run.h"
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static qp_value *syms(int n, const char *const *s)
{
    qp_value *v = qp_vector(QP_SYMBOL, n);
    for (int i = 0; i < n; i++) qp_S(v)[i] = qp_sym_intern(s[i], strlen(s[i]));
    return v;
}

static const char *const DOM[] = {"ibm", "msft", "", "goog"};

/* An enum over DOM of the given indices, its items in a buffer of its own. */
static qp_value *make_enum(int n, const int64_t *idx)
{
    qp_buf *b = qp_buf_new((size_t)n * 8);
    memcpy(b->data, idx, (size_t)n * 8);
    qp_value *e = qp_enum_borrow(n, (int64_t *)b->data, b, syms(4, DOM));
    qp_buf_unref(b);
    return e;
}

static void test_enum_basics(void)
{
    int64_t idx[] = {1, 0, QP_NULL_J, 3, 2};
    qp_value *e = make_enum(5, idx);
    CU_ASSERT_EQUAL_FATAL(e->type, QP_ENUM);
    CU_ASSERT_EQUAL(qp_count(e), 5);
    CU_ASSERT_EQUAL(qp_type_width(QP_ENUM), 8);
    CU_ASSERT_STRING_EQUAL(qp_type_name(QP_ENUM), "enum");
    CU_ASSERT_STRING_EQUAL(qp_enum_sym(e, 0), "msft");
    CU_ASSERT_STRING_EQUAL(qp_enum_sym(e, 2), "");
    qp_value *r = qp_enum_resolve(e);
    CU_ASSERT_EQUAL(r->type, QP_SYMBOL);
    const char *want[] = {"msft", "ibm", "", "goog", ""};
    qp_value *w = syms(5, want);
    CU_ASSERT_TRUE(qp_equal(r, w));
    CU_ASSERT_TRUE(qp_equal(e, w));          /* an enum matches its symbols */
    CU_ASSERT_TRUE(qp_equal(w, e));
    qp_S(w)[0] = qp_sym_intern("x", 1);
    CU_ASSERT_FALSE(qp_equal(e, w));
    qp_value *it = qp_item(e, 3);
    CU_ASSERT_EQUAL(it->type, -QP_SYMBOL);
    CU_ASSERT_STRING_EQUAL(it->s, "goog");
    /* a slice keeps the domain (and outlives the enum it came from) */
    qp_value *s = qp_slice(e, 3, 10);
    qp_unref(e);
    CU_ASSERT_EQUAL(s->type, QP_ENUM);
    CU_ASSERT_EQUAL(s->v.n, 2);
    CU_ASSERT_STRING_EQUAL(qp_enum_sym(s, 0), "goog");
    int64_t one = 0;
    CU_ASSERT_EQUAL(qp_vec_append(s, &one), QP_ETYPE);
    CU_ASSERT_PTR_EQUAL(qp_enum_resolve(it), it);   /* non-enums: same value */
    qp_unref(it);
    qp_unref(it);
    qp_unref(s);
    qp_unref(r);
    qp_unref(w);
}

static void test_enum_bad_index(void)
{
    int64_t idx[] = {0, 1, 4, 2};
    qp_value *e = make_enum(4, idx);
    CU_ASSERT_EQUAL_FATAL(e->type, QP_ERROR);
    CU_ASSERT_PTR_NOT_NULL(strstr(e->s, "index 4 at row 2"));
    qp_unref(e);
    int64_t neg[] = {-1};
    e = make_enum(1, neg);
    CU_ASSERT_EQUAL(e->type, QP_ERROR);
    qp_unref(e);
    qp_buf *b = qp_buf_new(8);
    e = qp_enum_borrow(0, (int64_t *)b->data, b, qp_vector(QP_LONG, 1));
    CU_ASSERT_EQUAL(e->type, QP_ERROR);      /* the domain must be symbols */
    qp_unref(e);
    qp_buf_unref(b);
}

/* The IPC bytes of an enum are exactly those of its symbol vector. */
static void test_enum_ipc(void)
{
    int64_t idx[] = {3, QP_NULL_J, 0, 1};
    qp_value *e = make_enum(4, idx), *r = qp_enum_resolve(e);
    e->attr = r->attr = QP_ATTR_GROUPED;
    uint8_t *a, *b;
    size_t na, nb;
    CU_ASSERT_EQUAL_FATAL(qp_ipc_encode(e, QP_MSG_SYNC, &a, &na), 0);
    CU_ASSERT_EQUAL_FATAL(qp_ipc_encode(r, QP_MSG_SYNC, &b, &nb), 0);
    CU_ASSERT_EQUAL(na, nb);
    CU_ASSERT_EQUAL(memcmp(a, b, na), 0);
    CU_ASSERT_EQUAL(a[8], QP_SYMBOL);
    qp_value *t = qp_table(qp_dict(syms(1, (const char *[]){"s"}), qp_list(1, qp_ref(e))));
    CU_ASSERT_EQUAL_FATAL(t->type, QP_TABLE);
    CU_ASSERT_EQUAL(qp_count(t), 4);
    free(a);
    free(b);
    CU_ASSERT_EQUAL_FATAL(qp_ipc_encode(t, QP_MSG_SYNC, &a, &na), 0);
    qp_buf *mb = qp_buf_new(na);
    memcpy(mb->data, a, na);
    qp_value *back = qp_ipc_decode(mb, NULL);
    CU_ASSERT_EQUAL(qp_K(qp_table_columns(back))[0]->type, QP_SYMBOL);
    CU_ASSERT_TRUE(qp_equal(back, t));
    qp_buf_unref(mb);
    free(a);
    qp_unref(back);
    qp_unref(t);
    qp_unref(e);
    qp_unref(r);
}

static char *slurp_text(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    static char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

/* Console text, CSV and msgpack see the symbols. */
static void test_enum_consumers(void)
{
    int64_t idx[] = {1, QP_NULL_J, 3};
    qp_value *e = make_enum(3, idx);
    char *s = qp_format(e, 80);
    CU_ASSERT_STRING_EQUAL(s, "`msft``goog\n");
    free(s);
    qp_value *t = qp_table(qp_dict(syms(1, (const char *[]){"s"}), qp_list(1, qp_ref(e))));
    s = qp_format(t, 80);
    CU_ASSERT_STRING_EQUAL(s, "s   \n----\nmsft\n    \ngoog\n");
    free(s);
    char dir[] = "/tmp/qp_enum_XXXXXX", path[128];
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/t.csv", dir);
    CU_ASSERT_EQUAL(qp_csv_write(t, path), 0);
    CU_ASSERT_STRING_EQUAL(slurp_text(path), "s\nmsft\n\"\"\ngoog\n");   /* a null: not a blank line */
    /* msgpack: same bytes as for the resolved table */
    qp_value *rt = qp_table(qp_dict(syms(1, (const char *[]){"s"}), qp_list(1, qp_enum_resolve(e))));
    uint8_t *m1, *m2;
    size_t n1, n2;
    CU_ASSERT_EQUAL_FATAL(qp_msgpack_encode(t, &m1, &n1), 0);
    CU_ASSERT_EQUAL_FATAL(qp_msgpack_encode(rt, &m2, &n2), 0);
    CU_ASSERT_TRUE(n1 == n2 && memcmp(m1, m2, n1) == 0);
    free(m1);
    free(m2);
    /* concat of an enum partial and a symbol partial: symbols */
    qp_value *parts[2] = {t, rt};
    qp_value *cat = qp_merge(QP_MERGE_CONCAT, parts, 2, NULL, 0);
    CU_ASSERT_EQUAL_FATAL(cat->type, QP_TABLE);
    qp_value *col = qp_K(qp_table_columns(cat))[0];
    CU_ASSERT_EQUAL(col->type, QP_SYMBOL);
    CU_ASSERT_EQUAL(col->v.n, 6);
    CU_ASSERT_STRING_EQUAL(qp_S(col)[5], "goog");
    qp_unref(cat);
    /* partitioning by an enum column: by its distinct symbols */
    qp_value *d = qp_distinct_sorted(e);
    CU_ASSERT_EQUAL_FATAL(d->type, QP_SYMBOL);
    CU_ASSERT_EQUAL(d->v.n, 3);                  /* ``goog`msft */
    qp_unref(d);
    qp_partplan *plan = NULL;
    CU_ASSERT_EQUAL(qp_partplan_column("s", e, &plan), 0);
    qp_partplan_free(plan);
    qp_test_rmtree(dir);
    qp_unref(rt);
    qp_unref(t);
    qp_unref(e);
}

/* qp_buf_map: a read-only shared view of the file, unmapped on release. */
/* qp_concat / qp_table_concat: one domain stays an enumeration, other
 * mixes come out as symbols, a type that differs is named. */
static void test_concat(void)
{
    int64_t i1[] = {1, 0}, i2[] = {3};
    qp_value *a = make_enum(2, i1), *b = make_enum(1, i2);
    qp_value *two[] = {a, b};
    qp_value *c = qp_concat(two, 2);             /* two enums, but two domains */
    CU_ASSERT_EQUAL_FATAL(c->type, QP_SYMBOL);
    CU_ASSERT_STRING_EQUAL(qp_S(c)[2], "goog");
    qp_unref(c);
    qp_value *one_dom = make_enum(1, i2);
    qp_unref(one_dom->v.dom);
    one_dom->v.dom = qp_ref(a->v.dom);
    qp_value *same[] = {a, one_dom};
    c = qp_concat(same, 2);
    CU_ASSERT_EQUAL_FATAL(c->type, QP_ENUM);
    CU_ASSERT_PTR_EQUAL(c->v.dom, a->v.dom);
    CU_ASSERT(c->v.n == 3 && qp_J(c)[0] == 1 && qp_J(c)[2] == 3);
    qp_unref(c);
    qp_value *s = syms(1, (const char *[]){"x"});
    qp_value *mixed[] = {s, a};
    c = qp_concat(mixed, 2);
    CU_ASSERT_EQUAL_FATAL(c->type, QP_SYMBOL);
    CU_ASSERT(!strcmp(qp_S(c)[0], "x") && !strcmp(qp_S(c)[1], "msft") && !strcmp(qp_S(c)[2], "ibm"));
    qp_unref(c);
    qp_value *l = qp_vector(QP_LONG, 1);
    qp_J(l)[0] = 7;
    qp_value *t1 = qp_table(qp_dict(syms(1, (const char *[]){"s"}), qp_list(1, qp_ref(a))));
    qp_value *t2 = qp_table(qp_dict(syms(1, (const char *[]){"s"}), qp_list(1, l)));
    qp_value *tt[] = {t1, t1};
    qp_value *t = qp_table_concat(tt, 2);
    CU_ASSERT_EQUAL_FATAL(t->type, QP_TABLE);
    CU_ASSERT_EQUAL(qp_count(t), 4);
    CU_ASSERT_EQUAL(qp_table_column(t, "s")->type, QP_ENUM);
    qp_unref(t);
    CU_ASSERT_PTR_EQUAL(qp_table_concat(tt, 1), t1);      /* one table: itself */
    qp_unref(t1);
    tt[1] = t2;
    t = qp_table_concat(tt, 2);
    CU_ASSERT_EQUAL_FATAL(t->type, QP_ERROR);
    CU_ASSERT_STRING_EQUAL(t->s, "column s: enum and long do not concatenate");
    qp_unref(t);
    qp_unref(t1); qp_unref(t2); qp_unref(s); qp_unref(a); qp_unref(b); qp_unref(one_dom);
}

static void test_buf_map(void)
{
    char path[] = "/tmp/qp_map_XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    int64_t v[3] = {7, 8, 9};
    CU_ASSERT_EQUAL(write(fd, v, sizeof v), (ssize_t)sizeof v);
    long long before = qp__buf_maps();
    qp_buf *b;
    CU_ASSERT_EQUAL_FATAL(qp_buf_map(fd, sizeof v, &b), 0);
    close(fd);
    unlink(path);
    CU_ASSERT_EQUAL(qp__buf_maps(), before + 1);
    CU_ASSERT_EQUAL(b->maplen, sizeof v);
    qp_value *x = qp_vector_borrow(QP_LONG, 3, b->data, b);
    qp_buf_unref(b);
    CU_ASSERT_EQUAL(qp_J(x)[2], 9);
    CU_ASSERT_EQUAL(qp_buf_resize(x->v.owner, 64), QP_EARG);
    int64_t ten = 10;
    CU_ASSERT_EQUAL(qp_vec_append(x, &ten), 0);     /* copied out first */
    CU_ASSERT_EQUAL(x->v.owner->maplen, 0);
    CU_ASSERT_EQUAL(qp_J(x)[3], 10);
    CU_ASSERT_EQUAL(qp_J(x)[0], 7);
    qp_unref(x);
    CU_ASSERT_EQUAL(qp_buf_map(0, 0, &b), 0);       /* len 0: no mmap */
    CU_ASSERT_EQUAL(b->len, 0);
    CU_ASSERT_EQUAL(b->maplen, 0);
    CU_ASSERT_EQUAL(qp__buf_maps(), before + 1);
    qp_buf_unref(b);
}

int main(void)
{
    static const qp_test tests[] = {
        {"enum basics", test_enum_basics},
        {"enum bad index", test_enum_bad_index},
        {"enum ipc bytes", test_enum_ipc},
        {"enum consumers", test_enum_consumers},
        {"buf map", test_buf_map},
        {"concat", test_concat},
    };
    return qp_test_run("enum", NULL, NULL, tests, QP_NTESTS(tests));
}
