/* test_group.c - a column's group index (core/group.c) and the keyset it
 * numbers keys with (core/keyset.c): each key's rows must be exactly the
 * rows a scan comparing every item as q's = does (qp_item_eq) finds, in
 * row order, for every kind of column: floats with -0.0 and NaNs of
 * several bit patterns, symbols, an enumeration whose domain holds a name
 * twice and whose column holds nulls, guids. */
#include "core/group_int.h"
#include "core/keyset_int.h"

#include "cunit_run.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The rows of col whose item equals atom a, by a scan (as .qp.apply found
 * them before the index), into want; their count. */
static int64_t scan(const qp_value *col, const qp_value *a, int64_t *want)
{
    int64_t m = 0;
    if (col->type == QP_ENUM) {
        for (int64_t i = 0; i < col->v.n; i++) if (qp_enum_sym(col, i) == a->s) want[m++] = i;
        return m;
    }
    size_t w = qp_type_width(col->type);
    for (int64_t i = 0; i < col->v.n; i++)
        if (qp_item_eq(col->type, (const char *)col->v.data + (size_t)i * w, &a->g)) want[m++] = i;
    return m;
}

/* Every atom of keys (one per item) selects from col's index what a scan
 * selects. */
static void check_index(const qp_value *col, const qp_value *keys)
{
    qp__group *g = NULL;
    CU_ASSERT_EQUAL_FATAL(qp__group_build(col, &g), 0);
    int64_t *want = malloc((size_t)(col->v.n ? col->v.n : 1) * sizeof *want);
    int64_t total = 0;
    for (int64_t k = 0; k < keys->v.n; k++) {
        qp_value *a = qp_item(keys, k);
        const int64_t *rows = NULL;
        int64_t m = qp__group_rows(g, a, &rows), w = scan(col, a, want);
        CU_ASSERT_EQUAL(m, w);
        if (m == w && m) CU_ASSERT_EQUAL(memcmp(rows, want, (size_t)m * sizeof *rows), 0);
        total += m;
        qp_unref(a);
    }
    CU_ASSERT(qp__group_bytes(g) >= (size_t)col->v.n * sizeof(int64_t));
    free(want);
    qp__group_free(g);
    (void)total;
}

static double bits(uint64_t u)
{
    double d;
    memcpy(&d, &u, 8);
    return d;
}

static void test_floats_as_q_compares_them(void)
{
    /* -0.0 is 0.0; NaNs of either sign and any payload are the one null */
    double x[] = { 0.0, -0.0, bits(0x7ff8000000000000ull), 1.5, bits(0xfff8000000000000ull),
                   bits(0x7ff8000000000123ull), -0.0, 1.5, 2.0, NAN };
    int n = (int)(sizeof x / sizeof x[0]);
    qp_value *col = qp_vector(QP_FLOAT, n);
    memcpy(col->v.data, x, sizeof x);
    qp_value *keys = qp_vector(QP_FLOAT, 5);
    double k[] = { 0.0, -0.0, NAN, 1.5, 3.0 };
    memcpy(keys->v.data, k, sizeof k);
    check_index(col, keys);
    /* the zero group has rows 0, 1 and 6; the null one 2, 4, 5 and 9 */
    qp__group *g = NULL;
    CU_ASSERT_EQUAL_FATAL(qp__group_build(col, &g), 0);
    qp_value *z = qp_float(-0.0), *nn = qp_float(bits(0xfff8000000000001ull));
    const int64_t *rows;
    CU_ASSERT_EQUAL(qp__group_rows(g, z, &rows), 3);
    CU_ASSERT(rows[0] == 0 && rows[1] == 1 && rows[2] == 6);
    CU_ASSERT_EQUAL(qp__group_rows(g, nn, &rows), 4);
    CU_ASSERT(rows[0] == 2 && rows[1] == 4 && rows[2] == 5 && rows[3] == 9);
    qp__group_free(g);
    qp_unref(z);
    qp_unref(nn);
    qp_unref(keys);
    qp_unref(col);
}

static void test_symbols_longs_guids(void)
{
    const char *names[] = { "b", "a", "", "b", "c", "a", "b" };
    qp_value *col = qp_vector(QP_SYMBOL, 7);
    for (int i = 0; i < 7; i++) qp_S(col)[i] = qp_sym_intern(names[i], strlen(names[i]));
    qp_value *keys = qp_vector(QP_SYMBOL, 5);
    const char *ks[] = { "a", "b", "", "c", "zz" };
    for (int i = 0; i < 5; i++) qp_S(keys)[i] = qp_sym_intern(ks[i], strlen(ks[i]));
    check_index(col, keys);
    qp_unref(col);
    qp_unref(keys);

    int64_t n = 10000;
    col = qp_vector(QP_LONG, n);
    for (int64_t i = 0; i < n; i++) qp_J(col)[i] = (i * 7919) % 301 - 150;
    qp_J(col)[17] = QP_NULL_J;
    keys = qp_vector(QP_LONG, 304);
    for (int64_t i = 0; i < 303; i++) qp_J(keys)[i] = i - 151;
    qp_J(keys)[303] = QP_NULL_J;
    check_index(col, keys);
    qp_unref(col);
    qp_unref(keys);

    col = qp_vector(QP_GUID, 6);
    keys = qp_vector(QP_GUID, 3);
    memset(col->v.data, 0, 6 * 16);
    memset(keys->v.data, 0, 3 * 16);
    for (int i = 0; i < 6; i++) qp_U(col)[i * 16 + 15] = (uint8_t)(i % 3);
    for (int i = 0; i < 3; i++) qp_U(keys)[i * 16 + 15] = (uint8_t)(i * 2);
    check_index(col, keys);
    qp_unref(col);
    qp_unref(keys);
}

static void test_enumeration_by_its_symbols(void)
{
    /* a domain holding "x" twice (q never writes one, but a file may) and
     * no ``: the null index is the symbol `` */
    const char *dn[] = { "x", "y", "x", "z" };
    qp_value *dom = qp_vector(QP_SYMBOL, 4);
    for (int i = 0; i < 4; i++) qp_S(dom)[i] = qp_sym_intern(dn[i], 1);
    qp_buf *b = qp_buf_new(9 * sizeof(int64_t));
    int64_t idx[] = { 0, 1, 2, QP_NULL_J, 3, 0, 2, QP_NULL_J, 1 };
    memcpy(b->data, idx, sizeof idx);
    qp_value *col = qp_enum_borrow(9, (const int64_t *)b->data, b, dom);
    qp_buf_unref(b);
    CU_ASSERT_FATAL(col && col->type == QP_ENUM);
    qp_value *keys = qp_vector(QP_SYMBOL, 5);
    const char *ks[] = { "x", "y", "z", "", "w" };
    for (int i = 0; i < 5; i++) qp_S(keys)[i] = qp_sym_intern(ks[i], strlen(ks[i]));
    check_index(col, keys);
    qp__group *g = NULL;
    CU_ASSERT_EQUAL_FATAL(qp__group_build(col, &g), 0);
    qp_value *x = qp_symbol("x");
    const int64_t *rows;
    CU_ASSERT_EQUAL(qp__group_rows(g, x, &rows), 4);     /* indices 0 and 2 */
    CU_ASSERT(rows[0] == 0 && rows[1] == 2 && rows[2] == 5 && rows[3] == 6);
    qp_unref(x);
    qp__group_free(g);
    qp_unref(keys);
    qp_unref(col);
}

static void test_what_has_no_index(void)
{
    qp__group *g = (qp__group *)1;
    qp_value *l = qp_list(2, qp_long(1), qp_long(2));
    CU_ASSERT_EQUAL(qp__group_build(l, &g), QP_ETYPE);
    CU_ASSERT_PTR_NULL(g);
    qp_unref(l);
    qp_value *e = qp_vector(QP_LONG, 0);               /* no rows: an empty index */
    CU_ASSERT_EQUAL_FATAL(qp__group_build(e, &g), 0);
    qp_value *a = qp_long(1);
    const int64_t *rows;
    CU_ASSERT_EQUAL(qp__group_rows(g, a, &rows), 0);
    qp_unref(a);
    qp_unref(e);
    qp__group_free(g);
    qp__group_free(NULL);
}

static void test_keyset_numbers_keys_in_first_seen_order(void)
{
    qp__keyset k;
    CU_ASSERT_EQUAL_FATAL(qp__keyset_init(&k, 12), 0);
    uint8_t key[12];
    for (int round = 0; round < 2; round++)       /* the second adds nothing */
        for (uint32_t i = 0; i < 5000; i++) {
            memset(key, 0, sizeof key);
            uint32_t v = (i * 2654435761u) % 3001;
            memcpy(key + 5, &v, 4);
            int64_t id = qp__keyset_add(&k, key);
            CU_ASSERT(id >= 0 && id < 3001);
            CU_ASSERT_EQUAL(qp__keyset_find(&k, key), id);
            CU_ASSERT_EQUAL(memcmp(qp__keyset_key(&k, id), key, sizeof key), 0);
        }
    CU_ASSERT_EQUAL(k.n, 3001);
    /* first seen first: key of i = 0 is id 0, of i = 1 id 1 */
    uint32_t v1 = 2654435761u % 3001;
    CU_ASSERT_EQUAL(memcmp(qp__keyset_key(&k, 1) + 5, &v1, 4), 0);
    memset(key, 0xee, sizeof key);
    CU_ASSERT_EQUAL(qp__keyset_find(&k, key), -1);
    qp__keyset_free(&k);
    CU_ASSERT_EQUAL_FATAL(qp__keyset_init(&k, 0), 0);  /* no bytes: one key */
    CU_ASSERT_EQUAL(qp__keyset_add(&k, key), 0);
    CU_ASSERT_EQUAL(qp__keyset_add(&k, key + 1), 0);
    qp__keyset_free(&k);
}

int main(void)
{
    static const qp_test tests[] = {
        {"floats as q compares them", test_floats_as_q_compares_them},
        {"symbols, longs, guids", test_symbols_longs_guids},
        {"an enumeration by its symbols", test_enumeration_by_its_symbols},
        {"what has no index", test_what_has_no_index},
        {"keyset numbers keys in first-seen order", test_keyset_numbers_keys_in_first_seen_order},
    };
    return qp_test_run("group", NULL, NULL, tests, QP_NTESTS(tests));
}
