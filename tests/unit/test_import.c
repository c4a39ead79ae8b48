/* test_import.c - qp_kdb_import_csv, which writes a CSV's rows as they are
 * parsed (qp_csv_scan), against qp_kdb_write of qp_csv_load's table, the
 * whole-table path: the same bytes file for file (sym, .d, every column)
 * and the same errors, on CSVs that stress the chunks the parser threads
 * share: quoted fields holding delimiters, doubled quotes and line ends
 * (with chunk boundaries falling inside them), CR and CRLF line ends,
 * blank lines, no last line end, several symbol columns meeting new names
 * in other orders, strings, every type, no rows, an existing sym. Each
 * case runs on 1 and on several parser threads. Scratch under a fresh
 * /tmp folder. */
#include "qpeach/kdb.h"
#include "qpeach/table.h"

#include "cunit_run.h"
#include "treecmp.h"
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char dir[64];
static int serial;

/* dir/name, from a printf format (a new buffer each call, kept). */
static const char *path_of(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *path_of(const char *fmt, ...)
{
    static char paths[256][256];
    char *p = paths[serial++ % 256];
    int n = snprintf(p, sizeof paths[0], "%s/", dir);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p + n, sizeof paths[0] - (size_t)n, fmt, ap);
    va_end(ap);
    return p;
}

static const char *write_csv(const char *name, const char *text)
{
    const char *p = path_of("%s.csv", name);
    FILE *f = fopen(p, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    fclose(f);
    return p;
}

/* A small table with symbols, written first into a db that is to have a
 * sym before the import (names the CSV has too, and others). */
static void seed(const char *db)
{
    qp_value *names = qp_vector(QP_SYMBOL, 1), *cols = qp_vector(QP_LIST, 1);
    qp_value *s = qp_vector(QP_SYMBOL, 3);
    const char *v[] = {"zz", "b", ""};
    for (int i = 0; i < 3; i++) qp_S(s)[i] = qp_sym_intern(v[i], strlen(v[i]));
    qp_S(names)[0] = qp_sym_intern("s", 1);
    qp_K(cols)[0] = s;
    qp_value *t = qp_table(qp_dict(names, cols));
    char err[512];
    CU_ASSERT_EQUAL(qp_kdb_write(db, "seed", t, NULL, err, sizeof err), 0);
    qp_unref(t);
}

/* Imports csv both ways (types may be NULL) into two fresh dbs and checks
 * every file equal, on 1 and on `threads` parser threads. */
static void same_both_ways(const char *csv, const char *types, int threads, bool seeded)
{
    int runs[2] = {1, threads};
    for (int k = 0; k < 2; k++) {
        const char *a = path_of("db%d-load", serial), *b = path_of("db%d-scan", serial);
        if (seeded) { seed(a); seed(b); }
        qp_csv_opts o = {.types = types, .threads = runs[k]};
        qp_value *t = qp_csv_load(csv, &o);
        CU_ASSERT_FATAL(t && t->type == QP_TABLE);
        char err[1024];
        int rc = qp_kdb_write(a, "t", t, NULL, err, sizeof err);
        if (rc) fprintf(stderr, "\n%s: qp_kdb_write: %s\n", csv, err);
        CU_ASSERT_EQUAL(rc, 0);
        qp_kdb_import st;
        rc = qp_kdb_import_csv(csv, &o, b, "t", NULL, &st, err, sizeof err);
        if (rc) fprintf(stderr, "\n%s: qp_kdb_import_csv: %s\n", csv, err);
        CU_ASSERT_EQUAL(rc, 0);
        CU_ASSERT_EQUAL(st.rows, qp_count(t));
        CU_ASSERT_EQUAL(st.cols, qp_count(qp_table_names(t)));
        int files = qp_test_same_tree(a, b);
        if (files < 0) fprintf(stderr, "\n%s (types %s, %d threads): the dbs differ\n", csv,
                               types ? types : "inferred", runs[k]);
        CU_ASSERT(files >= 3);             /* sym or a column, .d, the lock's absence */
        qp_unref(t);
    }
}

/* Both ways fail with the same text; the import leaves its db as it was. */
static void same_error(const char *csv, const char *types, int threads, bool csv_fault)
{
    const char *a = path_of("db%d-before", serial), *b = path_of("db%d-scan", serial);
    seed(a);
    seed(b);
    qp_csv_opts o = {.types = types, .threads = threads};
    qp_value *t = qp_csv_load(csv, &o);
    char want[1024] = "", err[1024] = "";
    if (t && t->type == QP_ERROR) snprintf(want, sizeof want, "%s", t->s);
    else CU_ASSERT_NOT_EQUAL(qp_kdb_write(path_of("db%d-load", serial), "t", t, NULL, want,
                                          sizeof want), 0);
    qp_kdb_import st;
    CU_ASSERT(qp_kdb_import_csv(csv, &o, b, "t", NULL, &st, err, sizeof err) < 0);
    CU_ASSERT_EQUAL(st.csv_fault, csv_fault);
    if (strcmp(want, err)) fprintf(stderr, "\nwant: %s\ngot:  %s\n", want, err);
    CU_ASSERT_STRING_EQUAL(err, want);
    CU_ASSERT(qp_test_same_tree(a, b) > 0);    /* nothing of t, sym as it was */
    qp_unref(t);
}

static void test_quoted_fields(void)
{
    const char *csv = write_csv("quoted",
        "id,name,note,sym\n"
        "1,\"Smith, J\",\"said \"\"hi\"\"\",a\n"
        "2,\"two\nlines\",\"crlf\r\ninside\",\"b,c\"\n"
        "3,5\" pipe,plain,\"\"\n"
        "4,\" edge \",\"\",d\n");
    same_both_ways(csv, NULL, 3, false);
    same_both_ways(csv, "J**S", 3, true);
}

static void test_line_ends(void)
{
    static const char *const texts[][2] = {
        {"cr", "a,b,c\r1,x,1.5\r2,,2.5\r3,y,\r"},
        {"crlf", "a,b,c\r\n1,x,1.5\r\n2,,2.5\r\n3,y,\r\n"},
        {"mixed", "a,b,c\n1,x,1.5\r\n2,,2.5\r3,y,\n"},
        {"blank", "a,b,c\n1,x,1.5\n\n2,,2.5\n\r\n3,y,\n\n\n"},
        {"nolast", "a,b,c\n1,x,1.5\n2,,2.5\n3,y,"},
        {"nolast8", "a,b,c\n1,x,1.5\n2,,2.5\n3,sixteen-chars-ab,12345.67"},   /* 8 bytes a word */
        {"norows", "a,b,c\n"},
        {"header", "a,b,c"},
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        const char *csv = write_csv(texts[i][0], texts[i][1]);
        same_both_ways(csv, NULL, 2, false);
        same_both_ways(csv, "JSF", 2, i % 2 == 0);
    }
}

static void test_every_type(void)
{
    const char *csv = write_csv("types",
        "d,s,b,x,h,i,j,e,f,c,p,m,z,n,u,v,t,g,str\n"
        "2024.03.01,ibm,1,0a,7,8,9,1.5,2.25,q,2024.03.01D09:30:00.5,2024.03,"
        "2024.03.01T09:30:00.000,0D00:00:01.000000002,09:30,09:30:01,09:30:01.002,"
        "0a0b0c0d-0e0f-1011-1213-141516171819,text\n"
        "2024.03.02,,0,ff,,,,,,r,,,,,,,,,\n"
        "2024.03.03,msft,1,01,-7,-8,-9,-1.5,-2.25,s,2024.03.03D23:59:59,2024.04,"
        "2024.03.03T23:59:59.999,-1D02:03:04,23:59,23:59:58,23:59:58.999,"
        "00000000-0000-0000-0000-00000000000f,\"more, text\"\n");
    same_both_ways(csv, "DSBXHIJEFCPMZNUVTG*", 2, false);
    same_both_ways(csv, "DSBXHIJEFCPMZNUVTG ", 2, true);
    same_error(csv, NULL, 2, true);            /* 0a: not a long, inferred */
}

/* Rows whose quoted note (most of each row's bytes) holds line ends, a
 * delimiter and doubled quotes; *inside counts the parser's chunk
 * boundaries (qp_csv_scan cuts `threads` chunks of a file this size, at
 * equal offsets from the body's start) that fall inside a note. */
static const char *big_quoted(int rows, int threads, int *inside)
{
    const char *p = path_of("bigq.csv");
    FILE *f = fopen(p, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    long body = fprintf(f, "id,sym,note,px\n"), size;
    long *beg = malloc(sizeof(long) * (size_t)rows), *end = malloc(sizeof(long) * (size_t)rows);
    for (int i = 0; i < rows; i++) {
        fprintf(f, "%d,S%d,", i, i % 37);
        beg[i] = ftell(f);
        fprintf(f, "\"row %d: a note\nover lines, with \"\"quotes\"\"\r\nand %0*d\"", i, 100 + i % 50, i);
        end[i] = ftell(f);
        fprintf(f, ",%d.%02d\n", i % 1000, i % 100);
    }
    size = ftell(f) - body;
    fclose(f);
    *inside = 0;
    for (int k = 1; k < threads; k++) {
        long target = body + size / threads * k;
        for (int i = 0; i < rows; i++) *inside += target > beg[i] && target < end[i];
    }
    free(beg);
    free(end);
    return p;
}

static void test_chunk_boundary_inside_quotes(void)
{
    int inside;
    const char *csv = big_quoted(6000, 8, &inside);    /* ~1 MB: 8 chunks on 8 threads */
    CU_ASSERT(inside >= 3);
    same_both_ways(csv, NULL, 8, false);
    same_both_ways(csv, "JS*F", 8, true);
}

/* Three symbol columns meeting new names in other orders than column by
 * column (the second has a name long before the first), nulls among them,
 * over many chunks: sym's new names in qp_kdb_write's order. */
static void test_symbol_columns_in_other_orders(void)
{
    const char *p = path_of("syms.csv");
    FILE *f = fopen(p, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("a,b,n,c\n", f);
    for (int i = 0; i < 300000; i++) {
        if (i % 7 == 0) fprintf(f, ",B%d,%d,\n", i / 3000 + 40, i);
        else fprintf(f, "A%d,A%d,%d,%s\n", i / 3000, i / 3000 + 40, i, i % 5 ? "b" : "zz");
    }
    fclose(f);
    same_both_ways(p, NULL, 4, false);
    same_both_ways(p, "SSJS", 4, true);
}

static void test_same_errors(void)
{
    /* a bad value far into a file of many chunks, and its first rows */
    const char *p = path_of("late.csv");
    FILE *f = fopen(p, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("s,x\n", f);
    for (int i = 0; i < 400000; i++) fprintf(f, "N%d,%d.5\n", i % 1000, i);
    fputs("N1,oops\nN2,1.5\n", f);
    fclose(f);
    same_error(p, NULL, 4, true);
    same_error(p, "SF", 1, true);
    same_error(write_csv("fields", "a,b\n1,2\n3\n"), NULL, 2, true);
    same_error(write_csv("bool", "a,b\ntrue,1\n,2\n"), NULL, 2, true);
    same_error(write_csv("twice", "a,b,a\n1,2,3\n"), NULL, 2, true);
    /* the writer's: a column name that cannot be a file name */
    same_error(write_csv("slash", "a/b,c\n1,2\n"), NULL, 2, false);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/qp_import_XXXXXX");
    if (!mkdtemp(dir)) return 2;
    static const qp_test tests[] = {
        {"quoted fields", test_quoted_fields},
        {"CR, CRLF, blank and missing line ends", test_line_ends},
        {"every type, strings", test_every_type},
        {"a chunk boundary inside a quoted field", test_chunk_boundary_inside_quotes},
        {"symbol columns meeting names in other orders", test_symbol_columns_in_other_orders},
        {"the same errors, the db as it was", test_same_errors},
    };
    int failed = qp_test_run("import", NULL, NULL, tests, QP_NTESTS(tests));
    return failed + qp_test_rmtree(dir);
}
