/* test_kdbconform.c - the kdb+ reader on every real q-written fixture db
 * (../shared/fixtures/kdb from the repository root, or $QPEACH_FIXTURES),
 * compared with the values their sources publish. Conformance: these run
 * only where the fixtures are (tests/README.md); the reader's mechanics on
 * our writer's databases are test_kdb.c's. Fixture files are never
 * modified. */
#include "qpeach/kdb.h"
#include "qpeach/table.h"
#include "qpeach/value.h"
#include "core/csv_int.h"      /* qp__format_cell */

#include "cunit_run.h"
#include "kdb_check.h"
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char FIX[PATH_MAX];


/* Path under the fixtures (a rotating static buffer). */
static const char *fx(const char *rel)
{
    static char buf[8][PATH_MAX];
    static int k;
    char *b = buf[k++ % 8];
    if (snprintf(b, PATH_MAX, "%s/%s", FIX, rel) >= PATH_MAX) abort();
    return b;
}

#include "csv_cells.h"

/* Compares cell r of col (kdb) with CSV text s; floats to 7 digits. */
static bool cell_equal(const qp_value *col, int64_t r, const char *s)
{
    if (col->type == QP_ENUM) return strcmp(qp_enum_sym(col, r), s) == 0;
    if (col->type == QP_SYMBOL) return strcmp(qp_S(col)[r], s) == 0;
    if (col->type == QP_FLOAT || col->type == QP_REAL) {
        double v = col->type == QP_FLOAT ? qp_F(col)[r] : qp_E(col)[r];
        if (!*s) return isnan(v);
        double w = strtod(s, NULL);
        return fabs(v - w) <= 1e-6 * fmax(fabs(v), fabs(w)) + 1e-300;
    }
    if (!qp_is_vector(col)) return false;
    char a[128], b[128];
    qp__format_cell(a, sizeof a, col->type,
                    (const uint8_t *)col->v.data + (size_t)r * qp_type_width(col->type));
    q_text(col->type, s, b, sizeof b);
    if (col->type == QP_CHAR && !strcmp(b, "")) strcpy(b, " ");
    return strcmp(a, b) == 0;
}

/* Every CSV column equals the table's column of that name, rows in order
 * (or in the order given by rows[], when not NULL). Returns mismatches. */
static int64_t compare_csv(const qp_value *t, const csv *c, const int64_t *rows)
{
    int64_t bad = 0;
    CU_ASSERT_EQUAL(qp_count(t), c->nrows);
    if (qp_count(t) != c->nrows) return 1;
    for (int k = 0; k < c->ncols; k++) {
        const qp_value *col = qp_table_column(t, c->head[k]);
        CU_ASSERT_PTR_NOT_NULL(col);
        if (!col) { bad++; continue; }
        for (int64_t r = 0; r < c->nrows; r++) {
            const char *s = c->cell[(rows ? rows[r] : r) * c->ncols + k];
            if (cell_equal(col, r, s)) continue;
            if (bad++ < 5) fprintf(stderr, "column %s row %lld: csv '%s'\n", c->head[k], (long long)r, s);
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    return bad;
}


#define DOLPHIN "dolphindb/kdb/test/data/kdb_sample"
#define DOLCSV "dolphindb/kdb/test/data/csv_sample/"

static void check_dolphin_table(qp_kdb *db, const char *table, const char *csvname)
{
    csv c;
    CU_ASSERT_TRUE_FATAL(csv_read(fx(csvname), &c));
    qp_value *t = qp_kdb_table(db, table, 0);
    CU_ASSERT_EQUAL_FATAL(t->type, QP_TABLE);
    compare_csv(t, &c, NULL);
    /* the comparison can fail: every column against a neighbour's text */
    for (int k = 0; k < c.ncols; k++) {
        const qp_value *col = qp_table_column(t, c.head[k]);
        int64_t differ = 0;
        for (int64_t r = 1; col && r < c.nrows; r++)
            differ += strcmp(c.cell[r * c.ncols + k], c.cell[(r - 1) * c.ncols + k]) != 0
                      && cell_equal(col, r, c.cell[(r - 1) * c.ncols + k]);
        CU_ASSERT_EQUAL(differ, 0);
    }
    int64_t n = -1;
    char err[256];
    CU_ASSERT_EQUAL(qp_kdb_count(db, table, &n, err, sizeof err), 0);
    CU_ASSERT_EQUAL(n, c.nrows);
    qp_unref(t);
    csv_free(&c);
}

static void test_dolphindb(void)
{
    qp_kdb *db = open_db(fx(DOLPHIN));
    CU_ASSERT_PTR_NOT_NULL_FATAL(db);
    check_dolphin_table(db, "Daily", DOLCSV "Daily.csv");       /* zlib columns */
    check_dolphin_table(db, "Syms", DOLCSV "Syms.csv");
    check_dolphin_table(db, "ORD", DOLCSV "Orders.csv");        /* domain sym_ORD */
    check_dolphin_table(db, "TRANSACTION", DOLCSV "Trans.csv");
    CU_ASSERT_STRING_EQUAL(qp_kdb_part_column(db, "Daily"), "date");
    /* the meta of a partitioned table: the virtual column first */
    qp_value *m = qp_kdb_meta(db, "Daily");
    CU_ASSERT_EQUAL_FATAL(m->type, QP_DICT);
    qp_value *names = qp_K(qp_table_columns(qp_dict_keys(m)))[0];
    qp_value *types = qp_K(qp_table_columns(qp_dict_values(m)))[0];
    qp_value *attrs = qp_K(qp_table_columns(qp_dict_values(m)))[2];
    CU_ASSERT_STRING_EQUAL(qp_S(names)[0], "date");
    CU_ASSERT_STRING_EQUAL(qp_S(names)[1], "sym");
    CU_ASSERT_EQUAL(qp_C(types)[0], 'd');
    CU_ASSERT_EQUAL(qp_C(types)[1], 's');
    CU_ASSERT_STRING_EQUAL(qp_S(attrs)[1], "u");
    qp_unref(m);
    /* a table missing from a partition: 0 rows, the others' columns */
    qp_value *d = qp_temporal_i(QP_DATE, 8374);           /* 2022.12.05 */
    qp_value *e = qp_kdb_table_at(db, "Daily", d, 0);
    CU_ASSERT_EQUAL_FATAL(e->type, QP_TABLE);
    CU_ASSERT_EQUAL(qp_count(e), 0);
    CU_ASSERT_EQUAL(qp_table_names(e)->v.n, 21);
    CU_ASSERT_EQUAL(qp_table_column(e, "close")->type, QP_FLOAT);
    qp_unref(e);
    qp_unref(d);
    /* anymap columns, the second with a compressed .d */
    qp_value *a = qp_kdb_table(db, "charArrayVector", 0);
    qp_value *b = qp_kdb_table(db, "compressCharArrayVector", 0);
    CU_ASSERT_EQUAL_FATAL(a->type, QP_TABLE);
    CU_ASSERT_EQUAL(qp_count(a), 2000);
    CU_ASSERT_TRUE(qp_equal(a, b));
    qp_value *nc = qp_table_column(a, "nestChar");
    CU_ASSERT_EQUAL(qp_K(nc)[3]->type, QP_CHAR);
    CU_ASSERT_EQUAL(memcmp(qp_K(nc)[3]->v.data, "dolphindb", 9), 0);
    qp_unref(a);
    qp_unref(b);
    qp_value *iv = qp_kdb_table(db, "intArrayVector", 0);
    CU_ASSERT_EQUAL_FATAL(iv->type, QP_TABLE);
    qp_value *dcol = qp_table_column(iv, "d");
    CU_ASSERT_EQUAL(qp_K(dcol)[0]->type, QP_LONG);
    CU_ASSERT_EQUAL(qp_K(dcol)[0]->v.n, 3);
    CU_ASSERT_EQUAL(qp_J(qp_K(dcol)[0])[2], 3);
    CU_ASSERT_EQUAL(qp_K(dcol)[1]->type, -QP_LONG);        /* an atom item */
    CU_ASSERT_EQUAL(qp_K(dcol)[1]->j, 4);
    CU_ASSERT_EQUAL(qp_K(dcol)[3]->v.n, 30);               /* format 0 item */
    qp_unref(iv);
    /* anymap columns' meta is their first item's type, upper case, as q's
     * meta shows it (compressed files too) */
    const char *const am[][2] = {{"intArrayVector", "JC"}, {"charArrayVector", "iC"},
                                 {"compressCharArrayVector", "iC"}};
    for (int i = 0; i < 3; i++) {
        m = qp_kdb_meta(db, am[i][0]);
        CU_ASSERT_EQUAL_FATAL(m->type, QP_DICT);
        types = qp_K(qp_table_columns(qp_dict_values(m)))[0];
        CU_ASSERT_EQUAL(types->v.n, 2);
        CU_ASSERT_EQUAL(memcmp(qp_C(types), am[i][1], 2), 0);
        qp_unref(m);
    }
    qp_value *q = qp_kdb_table(db, "quote_cffex", 0);
    CU_ASSERT_EQUAL(q->type, QP_TABLE);
    CU_ASSERT_EQUAL(qp_count(q), 0);
    qp_unref(q);
    qp_kdb_close(db);

    /* allDataTypes: every simple type, as a splay and as a flat file */
    db = open_db(fx(DOLPHIN "/allDataTypes"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(db);
    check_dolphin_table(db, "splayedTable", DOLCSV "test.csv");
    check_dolphin_table(db, "test", DOLCSV "test.csv");
    qp_value *flat = qp_kdb_table(db, "test", 0);
    qp_value *wt = qp_kdb_load_file(fx(DOLPHIN "/widetable"), NULL, 0);
    CU_ASSERT_EQUAL(wt->type, QP_TABLE);
    qp_unref(wt);
    qp_unref(flat);
    qp_kdb_close(db);
}

static void test_egor7(void)
{
    qp_kdb *db = open_db(fx("egor7/db"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(db);
    qp_value *tabs = qp_kdb_tables(db);
    CU_ASSERT_EQUAL(tabs->v.n, 4);
    CU_ASSERT_STRING_EQUAL(qp_S(tabs)[0], "cust");
    CU_ASSERT_STRING_EQUAL(qp_S(tabs)[3], "tref");
    qp_unref(tabs);
    CU_ASSERT_PTR_NULL(qp_kdb_part_column(db, "tref"));
    qp_value *sym = qp_kdb_load_file(fx("egor7/db/sym"), NULL, 0);
    const char *want[] = {"oracle", "microsoft", "google", "ibm", "msft", "goog"};
    CU_ASSERT_EQUAL_FATAL(sym->v.n, 6);
    for (int i = 0; i < 6; i++) CU_ASSERT_STRING_EQUAL(qp_S(sym)[i], want[i]);
    qp_unref(sym);
    qp_value *tref = qp_kdb_table(db, "tref", 0);
    CU_ASSERT_EQUAL(qp_J(qp_table_column(tref, "c1"))[2], 3);
    CU_ASSERT_EQUAL(qp_F(qp_table_column(tref, "c2"))[1], 2.2);
    qp_unref(tref);
    qp_value *cust = qp_kdb_table(db, "cust", 0);
    qp_value *cs = qp_table_column(cust, "sym"), *cn = qp_table_column(cust, "name");
    CU_ASSERT_STRING_EQUAL(qp_S(cs)[0], "ibm");
    CU_ASSERT_STRING_EQUAL(qp_S(cs)[2], "goog");
    CU_ASSERT_STRING_EQUAL(qp_S(cn)[1], "microsoft");
    qp_unref(cust);
    /* with QP_KDB_ENUMS: type 20, one domain shared by every column */
    cust = qp_kdb_table(db, "cust", QP_KDB_ENUMS);
    cs = qp_table_column(cust, "sym");
    cn = qp_table_column(cust, "name");
    CU_ASSERT_EQUAL(cs->type, QP_ENUM);
    CU_ASSERT_PTR_EQUAL(cs->v.dom, cn->v.dom);
    CU_ASSERT_STRING_EQUAL(qp_enum_sym(cn, 0), "oracle");
    qp_unref(cust);
    qp_value *t = qp_kdb_table(db, "t", 0);
    CU_ASSERT_EQUAL_FATAL(t->type, QP_TABLE);
    CU_ASSERT_STRING_EQUAL(qp_S(qp_table_names(t))[0], "date");
    CU_ASSERT_EQUAL(qp_count(t), 4);
    qp_value *ti = qp_table_column(t, "ti"), *p = qp_table_column(t, "p");
    CU_ASSERT_EQUAL(ti->type, QP_SECOND);
    CU_ASSERT_EQUAL(qp_I(ti)[1], 9 * 3600 + 31 * 60);
    CU_ASSERT_EQUAL(qp_F(p)[0], 101);
    CU_ASSERT_EQUAL(qp_F(p)[1], 33);
    CU_ASSERT_EQUAL(qp_F(p)[2], 101.5);
    CU_ASSERT_EQUAL(qp_F(p)[3], 33.5);
    CU_ASSERT_STRING_EQUAL(qp_S(qp_table_column(t, "sym"))[1], "msft");
    CU_ASSERT_EQUAL(qp_I(qp_table_column(t, "date"))[0], 5479);     /* 2015.01.01 */
    CU_ASSERT_EQUAL(qp_I(qp_table_column(t, "date"))[3], 5480);
    qp_unref(t);
    qp_value *q = qp_kdb_table_part(db, "q", 1, 0);
    CU_ASSERT_EQUAL(qp_F(qp_table_column(q, "b"))[0], 101.25);
    CU_ASSERT_EQUAL(qp_F(qp_table_column(q, "a"))[1], 33.75);
    CU_ASSERT_EQUAL(qp_I(qp_table_column(q, "ti"))[1], 9 * 3600 + 30 * 60);
    qp_unref(q);
    q = qp_kdb_table_part(db, "q", 0, 0);
    CU_ASSERT_EQUAL(qp_F(qp_table_column(q, "b"))[0], 100.75);
    CU_ASSERT_EQUAL(qp_F(qp_table_column(q, "a"))[1], 33.25);
    qp_unref(q);
    qp_kdb_close(db);

    db = open_db(fx("egor7/hdb"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(db);
    qp_value *t1 = qp_kdb_table_part(db, "t1", 0, 0), *t2 = qp_kdb_table_part(db, "t2", 1, 0);
    qp_value *c1 = qp_table_column(t1, "c1"), *c2 = qp_table_column(t2, "c2");
    CU_ASSERT_EQUAL(c1->type, QP_SHORT);
    CU_ASSERT_EQUAL(c1->v.n, 3);
    CU_ASSERT_EQUAL(qp_H(c1)[2], 3);
    CU_ASSERT_EQUAL(c2->type, QP_INT);
    CU_ASSERT_EQUAL(qp_I(c2)[0], 1);
    int64_t n = -1;
    char err[256];
    CU_ASSERT_EQUAL(qp_kdb_count(db, "t1", &n, err, sizeof err), 0);
    CU_ASSERT_EQUAL(n, 3);                                  /* the others empty */
    CU_ASSERT_EQUAL(qp_kdb_count(db, "t3", &n, err, sizeof err), 0);
    CU_ASSERT_EQUAL(n, 0);
    qp_unref(t1);
    qp_unref(t2);
    qp_kdb_close(db);

    qp_value *tt = qp_kdb_load_file(fx("egor7/f/tt"), NULL, 0);
    CU_ASSERT_EQUAL(tt->type, QP_SHORT);
    CU_ASSERT_EQUAL(tt->v.n, 2);
    CU_ASSERT_EQUAL(qp_H(tt)[0], 255);
    CU_ASSERT_EQUAL(qp_H(tt)[1], 1001);
    qp_unref(tt);
}

static int cmp_rows_sd(const void *a, const void *b, void *data)
{
    const csv *c = data;
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    int k = strcmp(c->cell[x * c->ncols], c->cell[y * c->ncols]);
    return k ? k : strcmp(c->cell[x * c->ncols + 1], c->cell[y * c->ncols + 1]);
}

static void test_ssshahani(void)
{
    qp_kdb *db = open_db(fx("ssshahani/db"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(db);
    qp_value *daily = qp_kdb_table(db, "daily", 0);
    CU_ASSERT_EQUAL_FATAL(daily->type, QP_TABLE);
    csv c;
    CU_ASSERT_TRUE_FATAL(csv_read(fx("ssshahani/data/raw/all_daily.csv"), &c));
    CU_ASSERT_EQUAL(c.nrows, 15020);
    int64_t *rows = malloc(sizeof *rows * (size_t)c.nrows);
    for (int64_t i = 0; i < c.nrows; i++) rows[i] = i;
    qsort_r(rows, (size_t)c.nrows, sizeof *rows, cmp_rows_sd, &c);
    compare_csv(daily, &c, rows);
    free(rows);
    csv_free(&c);
    qp_unref(daily);
    int64_t n;
    char err[256];
    CU_ASSERT_EQUAL(qp_kdb_count(db, "trades", &n, err, sizeof err), 0);
    qp_value *tr = qp_kdb_table(db, "trades", 0), *t0 = qp_kdb_table_part(db, "trades", 0, 0);
    CU_ASSERT_EQUAL(qp_count(tr), n);
    CU_ASSERT_TRUE(n > qp_count(t0) && qp_count(t0) > 0);
    CU_ASSERT_EQUAL(qp_table_column(t0, "sym")->attr, QP_ATTR_SORTED);
    qp_unref(tr);
    qp_unref(t0);
    qp_kdb_close(db);
}

static void test_torq_finance(void)
{
    qp_kdb *db = open_db(fx("torq-finance/hdb"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(db);
    int64_t n = -1;
    char err[256];
    CU_ASSERT_EQUAL(qp_kdb_count(db, "trade", &n, err, sizeof err), 0);
    CU_ASSERT_EQUAL(n, 196519);
    qp_value *t = qp_kdb_table_part(db, "trade", 0, 0);
    CU_ASSERT_EQUAL_FATAL(t->type, QP_TABLE);
    CU_ASSERT_EQUAL(qp_count(t), 196519);
    qp_value *sym = qp_table_column(t, "sym"), *price = qp_table_column(t, "price");
    CU_ASSERT_EQUAL(sym->type, QP_SYMBOL);
    CU_ASSERT_EQUAL(sym->attr, QP_ATTR_PARTED);
    CU_ASSERT_EQUAL(qp_table_column(t, "cond")->type, QP_CHAR);
    CU_ASSERT_EQUAL(price->v.owner->maplen, 0);     /* decompressed, not mapped */
    /* p#: each symbol's rows are contiguous */
    int64_t runs = 1;
    for (int64_t i = 1; i < sym->v.n; i++) runs += qp_S(sym)[i] != qp_S(sym)[i - 1];
    qp_value *parts = qp_kdb_table_part(db, "trade", 0, QP_KDB_ENUMS);
    qp_value *es = qp_table_column(parts, "sym");
    CU_ASSERT_EQUAL(es->type, QP_ENUM);
    CU_ASSERT_TRUE(runs <= es->v.dom->v.n);
    CU_ASSERT_TRUE(qp_equal(es, sym));
    double lo = 1e300, hi = -1e300;
    for (int64_t i = 0; i < price->v.n; i++) { lo = fmin(lo, qp_F(price)[i]); hi = fmax(hi, qp_F(price)[i]); }
    CU_ASSERT_TRUE(lo > 0 && hi < 10000);
    qp_unref(parts);
    qp_unref(t);
    qp_value *e = qp_kdb_table(db, "trade_iex", 0);
    CU_ASSERT_EQUAL(e->type, QP_TABLE);
    CU_ASSERT_EQUAL(qp_count(e), 0);
    qp_unref(e);
    qp_kdb_close(db);
}

static void test_torq_crypto(void)
{
    qp_kdb *db = open_db(fx("torq-crypto/hdb/database"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(db);
    qp_value *t = qp_kdb_table_part(db, "bhex", 0, 0);
    CU_ASSERT_EQUAL_FATAL(t->type, QP_TABLE);
    CU_ASSERT_EQUAL(qp_count(t), 5366);
    qp_value *ask = qp_table_column(t, "ask");
    CU_ASSERT_EQUAL_FATAL(ask->type, QP_LIST);
    qp_value *r0 = qp_K(ask)[0];
    CU_ASSERT_EQUAL(r0->type, QP_FLOAT);
    CU_ASSERT_EQUAL(r0->v.n, 10);
    CU_ASSERT_EQUAL(qp_F(r0)[0], 6240.63);
    CU_ASSERT_EQUAL(qp_F(r0)[1], 6240.73);
    CU_ASSERT_NOT_EQUAL(r0->v.owner->maplen, 0);    /* views ask# */
    CU_ASSERT_EQUAL(qp_table_column(t, "sym")->attr, QP_ATTR_PARTED);
    qp_unref(t);
    qp_kdb_close(db);
}

static void test_finspace(void)
{
    qp_kdb *db = open_db(fx("finspace/inthdb/hdb"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(db);
    CU_ASSERT_STRING_EQUAL(qp_kdb_part_column(db, "trades"), "int");
    qp_value *p = qp_kdb_partitions(db, "trades");
    CU_ASSERT_EQUAL(p->type, QP_LONG);
    CU_ASSERT_EQUAL(qp_J(p)[0], 451353600000000000LL);
    qp_value *at = qp_long(451353600000000000LL);
    qp_value *t = qp_kdb_table_at(db, "trades", at, 0);
    qp_unref(at);
    qp_unref(p);
    CU_ASSERT_EQUAL_FATAL(t->type, QP_TABLE);
    CU_ASSERT_EQUAL(qp_count(t), 29229);
    CU_ASSERT_STRING_EQUAL(qp_S(qp_table_names(t))[0], "int");
    CU_ASSERT_STRING_EQUAL(qp_S(qp_table_column(t, "sym"))[0], "AAPL");
    CU_ASSERT_EQUAL(qp_F(qp_table_column(t, "price"))[0], 23.43);
    qp_value *size = qp_table_column(t, "size");
    CU_ASSERT_EQUAL(size->type == QP_INT ? qp_I(size)[0] : qp_J(size)[0], 1492);
    qp_unref(t);
    qp_kdb_close(db);
}

static void test_memories(void)
{
    qp_kdb *db = open_db(fx("memories/db"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(db);
    qp_value *t = qp_kdb_table(db, "memories", 0);
    CU_ASSERT_EQUAL_FATAL(t->type, QP_TABLE);
    CU_ASSERT_EQUAL(qp_count(t), 7);
    CU_ASSERT_PTR_NULL(qp_table_column(t, "fname"));       /* not in .d */
    qp_value *title = qp_table_column(t, "title");
    CU_ASSERT_EQUAL(qp_K(title)[0]->v.n, 16);
    CU_ASSERT_EQUAL(memcmp(qp_K(title)[0]->v.data, "Michael Standing", 16), 0);
    /* zero-copy: a numeric column views the file's mapping */
    qp_value *date = qp_table_column(t, "date");
    CU_ASSERT_NOT_EQUAL(date->v.owner->maplen, 0);
    CU_ASSERT_PTR_EQUAL(date->v.data, date->v.owner->data + 16);
    qp_unref(t);
    qp_kdb_close(db);
}

/* torq-air: enumeration indices beyond `sym: refused by column name, and
 * the db keeps answering. */
static void test_torq_air(void)
{
    qp_kdb *db = open_db(fx("torq-air/hdb"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(db);
    qp_value *t = qp_kdb_table_part(db, "flights", 0, 0);
    CU_ASSERT_TRUE(has_text(t, "flights/sym"));
    CU_ASSERT_TRUE(has_text(t, "beyond the domain"));
    qp_unref(t);
    qp_value *m = qp_kdb_meta(db, "flights");
    CU_ASSERT_EQUAL(m->type, QP_DICT);
    qp_unref(m);
    int64_t n;
    char err[256];
    CU_ASSERT_EQUAL(qp_kdb_count(db, "flights", &n, err, sizeof err), 0);
    CU_ASSERT_TRUE(n > 0);
    qp_kdb_close(db);
}

static int setup(void)
{
    const char *fix = qp_test_fixtures();
    if (fix) snprintf(FIX, sizeof FIX, "%s", fix);
    return 0;
}

int main(void)
{
    /* conformance: these read the q-written fixtures */
    static const qp_test fixture_tests[] = {
        {"dolphindb equals its csv", test_dolphindb},
        {"egor7 exact values", test_egor7},
        {"ssshahani daily equals its csv", test_ssshahani},
        {"torq-finance compressed", test_torq_finance},
        {"torq-crypto nested", test_torq_crypto},
        {"finspace int partitions", test_finspace},
        {"memories anymap and zero-copy", test_memories},
        {"torq-air refused by column", test_torq_air},
    };
    return qp_test_run_fixtures("kdb conformance", setup, NULL, NULL, 0, fixture_tests,
                                QP_NTESTS(fixture_tests));
}
