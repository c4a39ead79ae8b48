/* test_table.c - q-console formatting, the CSV loader and writer, q IPC
 * files. Files go to a fresh directory under /tmp, removed at the end. */
#include "qpeach/kdb.h"       /* qp_table_load */
#include "qpeach/table.h"
#include "core/csv_int.h"

#include "cunit_run.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static const char *tmp(const char *name)
{
    static char path[4][128];
    static int k;
    k = (k + 1) % 4;
    snprintf(path[k], sizeof path[k], "%s/%s", dir, name);
    return path[k];
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    fclose(f);
}

/* Asserts qp_format(x) == want, then drops x. */
#define FMT(x, want) fmt_check((x), (want), 0, __LINE__)
#define FMTW(x, want, w) fmt_check((x), (want), (w), __LINE__)
static void fmt_check(qp_value *x, const char *want, int cols, int line)
{
    char *s = qp_format(x, cols);
    if (!s || strcmp(s, want) != 0)
        fprintf(stderr, "\nline %d: got [%s] want [%s]\n", line, s ? s : "(null)", want);
    CU_ASSERT(s && strcmp(s, want) == 0);
    free(s);
    qp_unref(x);
}

static qp_value *longs(int n, ...)
{
    qp_value *v = qp_vector(QP_LONG, n);
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) qp_J(v)[i] = va_arg(ap, int64_t);
    va_end(ap);
    return v;
}

static qp_value *syms(int n, ...)
{
    qp_value *v = qp_vector(QP_SYMBOL, n);
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        const char *s = va_arg(ap, const char *);
        qp_S(v)[i] = qp_sym_intern(s, strlen(s));
    }
    va_end(ap);
    return v;
}

/* ------------------------------------------------------------------ */
/* Formatting                                                          */
/* ------------------------------------------------------------------ */

static void test_format_atoms(void)
{
    FMT(qp_long(1), "1\n");
    FMT(qp_long(-42), "-42\n");
    FMT(qp_int(1), "1i\n");
    FMT(qp_short(1), "1h\n");
    FMT(qp_byte(1), "0x01\n");
    FMT(qp_bool(true), "1b\n");
    FMT(qp_float(1.5), "1.5\n");
    FMT(qp_float(1), "1f\n");
    FMT(qp_float(3.14159265358979), "3.141593\n");
    FMT(qp_float(1e10), "1e+10\n");
    FMT(qp_real(1.5f), "1.5e\n");
    FMT(qp_char('a'), "\"a\"\n");
    FMT(qp_symbol("sym"), "`sym\n");
    FMT(qp_symbol(""), "`\n");
    FMT(qp_temporal_i(-QP_DATE, 0), "2000.01.01\n");
    FMT(qp_temporal_i(-QP_DATE, 8766), "2024.01.01\n");
    FMT(qp_temporal_i(-QP_DATE, -1), "1999.12.31\n");
    FMT(qp_temporal_i(-QP_MONTH, 0), "2000.01m\n");
    FMT(qp_temporal_i(-QP_MONTH, 13), "2001.02m\n");
    FMT(qp_temporal_j(-QP_TIMESTAMP, 0), "2000.01.01D00:00:00.000000000\n");
    FMT(qp_temporal_j(-QP_TIMESTAMP, -1), "1999.12.31D23:59:59.999999999\n");
    qp_value *z = qp_atom(-QP_DATETIME);
    z->f = 1.5;
    FMT(z, "2000.01.02T12:00:00.000\n");
    FMT(qp_temporal_j(-QP_TIMESPAN, 0), "0D00:00:00.000000000\n");
    FMT(qp_temporal_j(-QP_TIMESPAN, -1), "-0D00:00:00.000000001\n");
    FMT(qp_temporal_j(-QP_TIMESPAN, 90061000000001LL), "1D01:01:01.000000001\n");
    FMT(qp_temporal_i(-QP_MINUTE, 0), "00:00\n");
    FMT(qp_temporal_i(-QP_MINUTE, 61), "01:01\n");
    FMT(qp_temporal_i(-QP_SECOND, 0), "00:00:00\n");
    FMT(qp_temporal_i(-QP_TIME, 0), "00:00:00.000\n");
    FMT(qp_temporal_i(-QP_TIME, 34200123), "09:30:00.123\n");
    uint8_t u[16] = {0x8c, 0x68, 0x0a, 0x01, 0x5a, 0x49, 0x5a, 0xab,
                     0x5a, 0x65, 0xd4, 0xbf, 0xdd, 0xb6, 0xa6, 0x61};
    FMT(qp_guid(u), "8c680a01-5a49-5aab-5a65-d4bfddb6a661\n");
    FMT(qp_error("type"), "'type\n");
    FMT(qp_identity(), "");
}

static void test_format_nulls(void)
{
    FMT(qp_long(QP_NULL_J), "0N\n");
    FMT(qp_long(QP_INF_J), "0W\n");
    FMT(qp_long(-QP_INF_J), "-0W\n");
    FMT(qp_int(QP_NULL_I), "0Ni\n");
    FMT(qp_int(QP_INF_I), "0Wi\n");
    FMT(qp_int(-QP_INF_I), "-0Wi\n");
    FMT(qp_short(QP_NULL_H), "0Nh\n");
    FMT(qp_float(QP_NULL_F), "0n\n");
    FMT(qp_float(QP_INF_F), "0w\n");
    FMT(qp_float(-QP_INF_F), "-0w\n");
    FMT(qp_real(QP_NULL_E), "0Ne\n");
    FMT(qp_temporal_i(-QP_DATE, QP_NULL_I), "0Nd\n");
    FMT(qp_temporal_i(-QP_DATE, QP_INF_I), "0Wd\n");
    FMT(qp_temporal_j(-QP_TIMESTAMP, QP_NULL_J), "0Np\n");
    FMT(qp_temporal_j(-QP_TIMESPAN, QP_NULL_J), "0Nn\n");
    FMT(qp_temporal_i(-QP_MONTH, QP_NULL_I), "0Nm\n");
    FMT(qp_temporal_i(-QP_TIME, QP_NULL_I), "0Nt\n");
    FMT(qp_temporal_i(-QP_MINUTE, QP_NULL_I), "0Nu\n");
    FMT(qp_temporal_i(-QP_SECOND, QP_NULL_I), "0Nv\n");
    uint8_t zero[16] = {0};
    FMT(qp_guid(zero), "00000000-0000-0000-0000-000000000000\n");
}

static void test_format_vectors(void)
{
    FMT(longs(3, (int64_t)1, (int64_t)2, (int64_t)3), "1 2 3\n");
    FMT(longs(3, (int64_t)1, QP_NULL_J, (int64_t)3), "1 0N 3\n");
    FMT(longs(1, (int64_t)1), ",1\n");
    FMT(qp_vector(QP_LONG, 0), "`long$()\n");
    FMT(qp_vector(QP_SYMBOL, 0), "`symbol$()\n");
    FMT(qp_vector(QP_CHAR, 0), "\"\"\n");
    FMT(qp_vector(QP_LIST, 0), "()\n");
    qp_value *v = qp_vector(QP_INT, 3);
    for (int i = 0; i < 3; i++) qp_I(v)[i] = i + 1;
    FMT(v, "1 2 3i\n");
    v = qp_vector(QP_INT, 2);
    qp_I(v)[0] = QP_NULL_I;
    qp_I(v)[1] = 1;
    FMT(v, "0N 1i\n");
    v = qp_vector(QP_BOOL, 3);
    qp_G(v)[0] = 1, qp_G(v)[2] = 1;
    FMT(v, "101b\n");
    v = qp_vector(QP_BYTE, 2);
    qp_G(v)[0] = 1, qp_G(v)[1] = 2;
    FMT(v, "0x0102\n");
    FMT(qp_cstring("abc"), "\"abc\"\n");
    FMT(qp_cstring("a\"b\n"), "\"a\\\"b\\n\"\n");
    FMT(qp_cstring("a"), ",\"a\"\n");
    FMT(syms(2, "a", "b"), "`a`b\n");
    FMT(syms(1, "a"), ",`a\n");
    v = qp_vector(QP_FLOAT, 3);
    qp_F(v)[0] = 1, qp_F(v)[1] = 2, qp_F(v)[2] = 3;
    FMT(v, "1 2 3f\n");
    v = qp_vector(QP_FLOAT, 2);
    qp_F(v)[0] = 1.5, qp_F(v)[1] = QP_NULL_F;
    FMT(v, "1.5 0n\n");
    v = qp_vector(QP_REAL, 2);
    qp_E(v)[0] = 1.5f, qp_E(v)[1] = 2;
    FMT(v, "1.5 2e\n");
    v = qp_vector(QP_SHORT, 2);
    qp_H(v)[0] = 1, qp_H(v)[1] = QP_NULL_H;
    FMT(v, "1 0Nh\n");
    v = qp_vector(QP_DATE, 2);
    qp_I(v)[0] = 0, qp_I(v)[1] = QP_NULL_I;
    FMT(v, "2000.01.01 0N\n");
    v = qp_vector(QP_MONTH, 2);
    qp_I(v)[0] = 0, qp_I(v)[1] = 1;
    FMT(v, "2000.01 2000.02m\n");
    v = qp_vector(QP_TIME, 2);
    qp_I(v)[0] = 0, qp_I(v)[1] = 1;
    FMT(v, "00:00:00.000 00:00:00.001\n");
    /* long lines are cut to the console width with ".." */
    v = qp_vector(QP_LONG, 100);
    for (int i = 0; i < 100; i++) qp_J(v)[i] = i;
    FMTW(v, "0 1 2 3 4 5 ..\n", 14);
}

static void test_format_lists_dicts(void)
{
    FMT(qp_list(3, qp_long(1), qp_symbol("a"), qp_cstring("abc")), "1\n`a\n\"abc\"\n");
    FMT(qp_list(2, qp_long(1), qp_list(2, qp_long(2), qp_symbol("a"))), "1\n(2;`a)\n");
    FMT(qp_list(2, longs(2, (int64_t)1, (int64_t)2), longs(2, (int64_t)3, (int64_t)4)),
        "1 2\n3 4\n");
    FMT(qp_list(1, qp_long(1)), "1\n");
    FMT(qp_dict(syms(2, "a", "bb"), longs(2, (int64_t)1, (int64_t)2)), "a | 1\nbb| 2\n");
    FMT(qp_dict(syms(2, "a", "b"), qp_list(2, longs(2, (int64_t)1, (int64_t)2), qp_symbol("x"))),
        "a| 1 2\nb| `x\n");
    FMT(qp_dict(syms(2, "a", "b"), syms(2, "x", "y")), "a| x\nb| y\n");
    /* nested in a row: inline forms */
    FMT(qp_list(2, qp_dict(syms(2, "a", "b"), longs(2, (int64_t)1, (int64_t)2)), qp_long(3)),
        "`a`b!1 2\n3\n");
}

static qp_value *small_table(void)
{
    qp_value *price = qp_vector(QP_FLOAT, 3);
    qp_F(price)[0] = 1.5, qp_F(price)[1] = QP_NULL_F, qp_F(price)[2] = 100;
    return qp_table(qp_dict(syms(3, "sym", "price", "size"),
                            qp_list(3, syms(3, "ibm", "msft", "a"), price,
                                    longs(3, (int64_t)10, (int64_t)200, QP_NULL_J))));
}

static void test_format_tables(void)
{
    FMT(small_table(),
        "sym  price size\n"
        "---------------\n"
        "ibm  1.5   10  \n"
        "msft       200 \n"
        "a    100       \n");
    qp_value *t = small_table();
    qp_value *k = qp_table(qp_dict(syms(1, "sym"), qp_list(1, qp_ref(qp_K(qp_table_columns(t))[0]))));
    qp_value *v = qp_table(qp_dict(syms(2, "price", "size"),
                                   qp_list(2, qp_ref(qp_K(qp_table_columns(t))[1]),
                                           qp_ref(qp_K(qp_table_columns(t))[2]))));
    qp_unref(t);
    FMT(qp_dict(k, v),
        "sym | price size\n"
        "----| ----------\n"
        "ibm | 1.5   10  \n"
        "msft|       200 \n"
        "a   | 100       \n");
    /* string column unquoted, symbol-vector cells with backticks */
    FMT(qp_table(qp_dict(syms(2, "s", "v"), qp_list(2, qp_list(2, qp_cstring("ab"), qp_cstring("c")),
                                                     qp_list(2, syms(2, "x", "y"), qp_long(1))))),
        "s  v   \n"
        "-------\n"
        "ab `x`y\n"
        "c  1   \n");
    /* a long table shows its first rows then ".." */
    qp_value *big = qp_table(qp_dict(syms(1, "a"), qp_list(1, qp_vector(QP_LONG, 100))));
    char *s = qp_format(big, 0);
    int lines = 0;
    for (char *p = s; *p; p++) lines += *p == '\n';
    CU_ASSERT_EQUAL(lines, 2 + 20 + 1);
    CU_ASSERT(strstr(s, "\n..\n") != NULL);
    free(s);
    qp_unref(big);
    /* lambda text; other functions as a placeholder */
    const char body[] = "{x+1}";
    uint8_t bytes[32] = {0, QP_CHAR, 0, 5, 0, 0, 0};
    memcpy(bytes + 7, body, 5);
    FMT(qp_func(QP_LAMBDA, bytes, 12), "{x+1}\n");
    uint8_t one = 1;
    FMT(qp_func(QP_BINARY, &one, 1), "<operator>\n");
}

/* ------------------------------------------------------------------ */
/* Field parsers                                                       */
/* ------------------------------------------------------------------ */

static void test_parse_floats(void)
{
    /* The fast path must agree with strtod (correct rounding) bit for bit. */
    const char *cases[] = {"0", "1", "-1", "1.5", "0.1", "0.3", "123.456", "1e10", "1E-5",
                           "2.2250738585072014e-308", "1.7976931348623157e308", "3.14159265358979323846",
                           "9007199254740993", "0.000001", "123456789012345678901234567890",
                           "1.00000000000000011102230246251565404236316680908203125", ".5", "5.",
                           "-0.0", "4.35", "99.99", "1e22", "1e23", "8.589973e9"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double got, want = strtod(cases[i], NULL);
        CU_ASSERT_EQUAL(qp__csv_float(cases[i], strlen(cases[i]), &got), 0);
        CU_ASSERT(memcmp(&got, &want, 8) == 0);
    }
    srand(7);
    char buf[64];
    for (int i = 0; i < 200000; i++) {
        int a = rand() % 1000000, b = rand() % 1000000, e = rand() % 40 - 20;
        int n = snprintf(buf, sizeof buf, "%d.%06de%d", a, b, e);
        double got, want = strtod(buf, NULL);
        if (qp__csv_float(buf, (size_t)n, &got) != 0 || memcmp(&got, &want, 8) != 0) {
            CU_FAIL("float parse differs from strtod");
            fprintf(stderr, "\n%s\n", buf);
            break;
        }
    }
    const char *bad[] = {"", "-", ".", "1.2.3", "1e", "abc", "1x", "--1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double d;
        CU_ASSERT_EQUAL(qp__csv_float(bad[i], strlen(bad[i]), &d), -1);
    }
    int64_t j;
    CU_ASSERT_EQUAL(qp__csv_long("9223372036854775807", 19, &j), 0);
    CU_ASSERT_EQUAL(j, INT64_MAX);
    CU_ASSERT_EQUAL(qp__csv_long("9223372036854775808", 19, &j), -1);
    CU_ASSERT_EQUAL(qp__csv_long("-12", 3, &j), 0);
    CU_ASSERT_EQUAL(j, -12);
    int32_t d;
    CU_ASSERT_EQUAL(qp__csv_date("2024.02.29", 10, &d), 0);
    CU_ASSERT_EQUAL(qp__csv_date("2023-02-29", 10, &d), -1);
    CU_ASSERT_EQUAL(qp__csv_date("2000-01-01", 10, &d), 0);
    CU_ASSERT_EQUAL(d, 0);
}

/* ------------------------------------------------------------------ */
/* CSV                                                                 */
/* ------------------------------------------------------------------ */

static qp_value *load(const char *text, const char *types)
{
    const char *p = tmp("t.csv");
    write_file(p, text);
    qp_csv_opts o = {.types = types, .threads = 2};
    return qp_csv_load(p, &o);
}

static void test_csv_inference(void)
{
    qp_value *t = load("a,b,c,d,e,f,g,h,i\r\n"
                       "1,1.5,2024.01.02,x,2024-01-02T09:30:00.5,09:30:00.123,true,,8c680a01-5a49-5aab-5a65-d4bfddb6a661\r\n"
                       "-2,3,2024-01-03,y z,2024.01.02D10:00:00,10:00,FALSE,,8c680a01-5a49-5aab-5a65-d4bfddb6a662\r\n",
                       NULL);
    CU_ASSERT_EQUAL_FATAL(t->type, QP_TABLE);
    qp_value *c = qp_table_columns(t);
    CU_ASSERT_EQUAL(qp_count(t), 2);
    int want[] = {QP_LONG, QP_FLOAT, QP_DATE, QP_SYMBOL, QP_TIMESTAMP, QP_TIME, QP_BOOL, QP_FLOAT, QP_GUID};
    for (int i = 0; i < 9; i++) CU_ASSERT_EQUAL(qp_K(c)[i]->type, want[i]);
    CU_ASSERT_EQUAL(qp_J(qp_K(c)[0])[1], -2);
    CU_ASSERT_EQUAL(qp_F(qp_K(c)[1])[0], 1.5);
    CU_ASSERT_EQUAL(qp_I(qp_K(c)[2])[1], 8768);
    CU_ASSERT_STRING_EQUAL(qp_S(qp_K(c)[3])[1], "y z");
    CU_ASSERT_EQUAL(qp_J(qp_K(c)[4])[0], 8767LL * 86400000000000LL + 34200500000000LL);
    CU_ASSERT_EQUAL(qp_I(qp_K(c)[5])[1], 36000000);
    CU_ASSERT_EQUAL(qp_G(qp_K(c)[6])[0], 1);
    CU_ASSERT(isnan(qp_F(qp_K(c)[7])[0]));          /* all empty: float nulls, as pandas */
    CU_ASSERT_EQUAL(qp_U(qp_K(c)[8])[31], 0x62);
    qp_unref(t);

    /* A column's type comes from its first 1000 values; a misfit after
     * them fails naming line, column and value (never a wider type or
     * symbols). A column empty in the first rows is typed by its first
     * values further down. */
    const char *p = tmp("wide.csv");
    const char *bad[] = {"2.5", "abc", "12345678901234567890", ""};
    const char *says[] = {"'2.5' is not a long", "'abc' is not a long",
                          "'12345678901234567890' is not a long", NULL};
    for (int b = 0; b < 4; b++) {
        FILE *f = fopen(p, "w");
        fputs("n,e,k\n", f);
        for (int i = 0; i < 5000; i++) fprintf(f, "%d,,%s\n", i, i % 2 ? "true" : "false");
        fprintf(f, "%s,2024.01.01,%s\n", bad[b], b == 3 ? "" : "true");
        fclose(f);
        t = qp_csv_load(p, NULL);
        char want[512];
        if (b < 3) {
            snprintf(want, sizeof want, "%s:5002: column n: %s (inferred from the first 1000 rows; "
                     "give --types to choose)", p, says[b]);
        } else {
            snprintf(want, sizeof want, "%s:5002: column k: a blank in a boolean column: q has no "
                     "boolean null (boolean inferred from the first 1000 rows; give --types to "
                     "choose, where B reads a blank as false)", p);
        }
        CU_ASSERT_EQUAL_FATAL(t->type, QP_ERROR);
        CU_ASSERT_STRING_EQUAL(t->s, want);
        qp_unref(t);
    }
    t = qp_csv_load(p, &(qp_csv_opts){.types = "JDB"});   /* given: a blank boolean is 0b */
    CU_ASSERT_EQUAL_FATAL(t->type, QP_TABLE);
    c = qp_table_columns(t);
    CU_ASSERT_EQUAL(qp_I(qp_K(c)[1])[5000], 8766);
    CU_ASSERT_EQUAL(qp_G(qp_K(c)[2])[5000], 0);
    qp_unref(t);
    FILE *f = fopen(p, "w");                  /* the same with a good last line */
    fputs("n,e\n", f);
    for (int i = 0; i < 5000; i++) fprintf(f, "%d,\n", i);
    fputs("5000,2024.01.01\n", f);
    fclose(f);
    t = qp_csv_load(p, NULL);
    CU_ASSERT_EQUAL_FATAL(t->type, QP_TABLE);
    c = qp_table_columns(t);
    CU_ASSERT_EQUAL(qp_K(c)[0]->type, QP_LONG);
    CU_ASSERT_EQUAL(qp_K(c)[1]->type, QP_DATE);
    CU_ASSERT_EQUAL(qp_I(qp_K(c)[1])[0], QP_NULL_I);
    CU_ASSERT_EQUAL(qp_I(qp_K(c)[1])[5000], 8766);
    qp_unref(t);
    /* a word among numbers, a number among dates: the first misfit of the
     * sample is the error; words only are symbols */
    t = load("a,b,c\n1.5,2024.01.02,x\nfoo,7,y\n", NULL);
    CU_ASSERT_EQUAL_FATAL(t->type, QP_ERROR);
    CU_ASSERT(strstr(t->s, "t.csv:3: column a: 'foo' is not a float (inferred from the first 2 rows") != NULL);
    qp_unref(t);
    t = load("b,c\n2024.01.02,x\n7,y\n", NULL);
    CU_ASSERT_EQUAL_FATAL(t->type, QP_ERROR);
    CU_ASSERT(strstr(t->s, "t.csv:3: column b: '7' is not a date") != NULL);
    qp_unref(t);
}

static void test_csv_quotes(void)
{
    qp_value *t = load("name,\"note, with comma\",n\n"
                       "\"a,b\",\"say \"\"hi\"\"\",1\n"
                       "plain,\"multi\nline\",2\n"
                       "\"\",,3\n", "S*J");
    CU_ASSERT_EQUAL_FATAL(t->type, QP_TABLE);
    qp_value *c = qp_table_columns(t);
    CU_ASSERT_STRING_EQUAL(qp_S(qp_table_names(t))[1], "note, with comma");
    CU_ASSERT_STRING_EQUAL(qp_S(qp_K(c)[0])[0], "a,b");
    CU_ASSERT_STRING_EQUAL(qp_S(qp_K(c)[0])[2], "");
    qp_value *s = qp_K(qp_K(c)[1])[0];
    CU_ASSERT(s->v.n == 8 && memcmp(s->v.data, "say \"hi\"", 8) == 0);
    s = qp_K(qp_K(c)[1])[1];
    CU_ASSERT(s->v.n == 10 && memcmp(s->v.data, "multi\nline", 10) == 0);
    CU_ASSERT_EQUAL(qp_K(qp_K(c)[1])[2]->v.n, 0);
    CU_ASSERT_EQUAL(qp_J(qp_K(c)[2])[2], 3);
    qp_unref(t);
    /* a stray quote inside a bare field is text, not the start of quoting */
    t = load("what,n\n5\" pipe,1\n\"x\"\"\",2\n", "SJ");
    CU_ASSERT_EQUAL_FATAL(t->type, QP_TABLE);
    CU_ASSERT_EQUAL(qp_count(t), 2);
    CU_ASSERT_STRING_EQUAL(qp_S(qp_K(qp_table_columns(t))[0])[0], "5\" pipe");
    CU_ASSERT_STRING_EQUAL(qp_S(qp_K(qp_table_columns(t))[0])[1], "x\"");
    qp_unref(t);
    /* tab-separated, default threads (the online cores) */
    write_file(tmp("t.tsv"), "a\tb\n1\tx y\n2\t\n");
    t = qp_csv_load(tmp("t.tsv"), &(qp_csv_opts){.delim = '\t'});
    CU_ASSERT_EQUAL_FATAL(t->type, QP_TABLE);
    CU_ASSERT_EQUAL(qp_K(qp_table_columns(t))[0]->type, QP_LONG);
    CU_ASSERT_STRING_EQUAL(qp_S(qp_K(qp_table_columns(t))[1])[0], "x y");
    CU_ASSERT_STRING_EQUAL(qp_S(qp_K(qp_table_columns(t))[1])[1], "");
    qp_unref(t);
}

static void test_csv_errors(void)
{
    qp_value *t = load("sym,price\nibm,1.5\nmsft,abc\n", "SF");
    CU_ASSERT_EQUAL_FATAL(t->type, QP_ERROR);
    char want[256];
    snprintf(want, sizeof want, "%s:3: column price: 'abc' is not a float", tmp("t.csv"));
    CU_ASSERT_STRING_EQUAL(t->s, want);
    qp_unref(t);
    t = load("a,b\n1,2\n3\n", NULL);
    CU_ASSERT_EQUAL_FATAL(t->type, QP_ERROR);
    CU_ASSERT(strstr(t->s, "t.csv:3: 1 fields, expected 2") != NULL);
    qp_unref(t);
    t = load("a,b\n1,2\n", "J");
    CU_ASSERT_EQUAL_FATAL(t->type, QP_ERROR);
    CU_ASSERT(strstr(t->s, "1 types given for 2 columns") != NULL);
    qp_unref(t);
    t = load("a\n1\n", "Q");
    CU_ASSERT_EQUAL_FATAL(t->type, QP_ERROR);
    qp_unref(t);
    t = qp_csv_load(tmp("missing.csv"), NULL);
    CU_ASSERT_EQUAL_FATAL(t->type, QP_ERROR);
    CU_ASSERT(strstr(t->s, "No such file") != NULL);
    qp_unref(t);
    t = load("", NULL);
    CU_ASSERT_EQUAL_FATAL(t->type, QP_ERROR);
    qp_unref(t);
    /* header only: zero rows; skipped column left out */
    t = load("a,b,c\n", "J S");
    CU_ASSERT_EQUAL_FATAL(t->type, QP_TABLE);
    CU_ASSERT_EQUAL(qp_count(t), 0);
    CU_ASSERT_EQUAL(qp_table_names(t)->v.n, 2);
    qp_unref(t);
}

/* q's timestamps reach from 1707.09.22D00:12:43.145224194 to
 * 2292.04.10D23:47:16.854775806: both ends load (the first's day alone is
 * beyond int64 nanoseconds), one nanosecond further (-0W, 0W) does not. */
static void test_csv_timestamp_ends(void)
{
    qp_value *t = load("ts\n1707.09.22D00:12:43.145224194\n2292.04.10D23:47:16.854775806\n", "P");
    CU_ASSERT_EQUAL_FATAL(t->type, QP_TABLE);
    const int64_t *ts = qp_J(qp_K(qp_table_columns(t))[0]);
    CU_ASSERT_EQUAL(ts[0], INT64_MIN + 2);
    CU_ASSERT_EQUAL(ts[1], INT64_MAX - 1);
    qp_unref(t);
    const char *beyond[] = {"ts\n1707.09.22D00:12:43.145224193\n", "ts\n2292.04.10D23:47:16.854775807\n"};
    for (int i = 0; i < 2; i++) {
        t = load(beyond[i], "P");
        CU_ASSERT_EQUAL_FATAL(t->type, QP_ERROR);
        CU_ASSERT(strstr(t->s, "is not a timestamp") != NULL);
        qp_unref(t);
    }
}

/* q's datetimes (z) are days as a float: any year a date takes, where a
 * timestamp's range ends (1650 and 2400 load; the time of day kept). */
static void test_csv_datetime_range(void)
{
    qp_value *t = load("z\n1650.01.01T12:00:00.000\n2400.06.30D06:00:00.000\n2000.01.02\n", "Z");
    CU_ASSERT_EQUAL_FATAL(t->type, QP_TABLE);
    const double *z = qp_F(qp_K(qp_table_columns(t))[0]);
    CU_ASSERT_DOUBLE_EQUAL(z[0], qp_days_from_ymd(1650, 1, 1) + 0.5, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(z[1], qp_days_from_ymd(2400, 6, 30) + 0.25, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(z[2], 1.0, 0);
    char *s = qp_format(t, 1 << 20);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT(strstr(s, "1650.01.01T12:00:00.000") && strstr(s, "2400.06.30T06:00:00.000"));
    free(s);
    qp_unref(t);
    t = load("z\n2400.06.30X06:00:00.000\n", "Z");
    CU_ASSERT_EQUAL(t->type, QP_ERROR);
    qp_unref(t);
}

/* Every type: build a table, write it, load it with the same types. */
static void test_csv_roundtrip_types(void)
{
    const char *types = "bgxhijefcspmdznuvt*";
    int n = 5;
    qp_value *names = qp_vector(QP_SYMBOL, 19), *cols = qp_vector(QP_LIST, 19);
    srand(3);
    for (int c = 0; c < 19; c++) {
        char nm[8];
        snprintf(nm, sizeof nm, "c%c", types[c] == '*' ? 'S' : types[c]);
        qp_S(names)[c] = qp_sym_intern(nm, strlen(nm));
        int t = c < 18 ? (int)(strchr(" bg xhijefcspmdznuvt", types[c]) - " bg xhijefcspmdznuvt") : 0;
        qp_value *v = qp_vector(t, n);
        for (int r = 0; r < n; r++) {
            int64_t x = (int64_t)(rand() % 200000) - 100000;
            void *d = v->v.data;
            switch (t) {
            case QP_BOOL: qp_G(v)[r] = r & 1; break;
            case QP_GUID: for (int k = 0; k < 16; k++) qp_U(v)[r * 16 + k] = (uint8_t)rand(); break;
            case QP_BYTE: qp_G(v)[r] = (uint8_t)rand(); break;
            case QP_SHORT: qp_H(v)[r] = r == 1 ? QP_NULL_H : (int16_t)(x / 10); break;
            case QP_INT: case QP_DATE: case QP_MONTH: qp_I(v)[r] = r == 1 ? QP_NULL_I : (int32_t)(x / 10); break;
            case QP_LONG: qp_J(v)[r] = r == 1 ? QP_NULL_J : r == 2 ? QP_INF_J : x * 1000003; break;
            case QP_REAL: qp_E(v)[r] = r == 1 ? QP_NULL_E : (float)x / 7; break;
            case QP_FLOAT: qp_F(v)[r] = r == 1 ? QP_NULL_F : r == 2 ? -QP_INF_F : (double)x / 7; break;
            case QP_CHAR: qp_C(v)[r] = r == 1 ? ',' : (char)('a' + r); break;
            case QP_SYMBOL: qp_S(v)[r] = r == 1 ? qp_sym_intern("", 0) : r == 2 ? qp_sym_intern("a \"q\",b", 7) : qp_sym_intern("ibm", 3); break;
            case QP_TIMESTAMP: case QP_TIMESPAN: ((int64_t *)d)[r] = r == 1 ? QP_NULL_J : x * 1000000007LL; break;
            case QP_DATETIME: qp_F(v)[r] = r == 1 ? QP_NULL_F : (double)(x * 1000) / 86400000.0; break;
            case QP_MINUTE: qp_I(v)[r] = r == 1 ? QP_NULL_I : (int32_t)(x % 1440 + 1440) % 1440; break;
            case QP_SECOND: qp_I(v)[r] = r == 1 ? QP_NULL_I : (int32_t)(x % 86400 + 86400) % 86400; break;
            case QP_TIME: qp_I(v)[r] = r == 1 ? QP_NULL_I : (int32_t)((x * 997) % 86400000 + 86400000) % 86400000; break;
            case QP_LIST: qp_K(v)[r] = qp_cstring(r == 1 ? "" : r == 2 ? "x,\"y\"\nz" : "text"); break;
            }
        }
        qp_K(cols)[c] = v;
    }
    qp_value *t = qp_table(qp_dict(names, cols));
    CU_ASSERT_EQUAL_FATAL(t->type, QP_TABLE);
    const char *p = tmp("all.csv");
    CU_ASSERT_EQUAL(qp_csv_write(t, p), 0);
    qp_csv_opts o = {.types = types, .threads = 2};
    qp_value *back = qp_csv_load(p, &o);
    if (back->type == QP_ERROR) fprintf(stderr, "\n%s\n", back->s);
    CU_ASSERT_EQUAL_FATAL(back->type, QP_TABLE);
    /* Datetimes go through milliseconds in text; compare the rest exactly. */
    for (int c = 0; c < 19; c++) {
        qp_value *a = qp_K(qp_table_columns(t))[c], *b = qp_K(qp_table_columns(back))[c];
        if (a->type == QP_DATETIME) {
            for (int r = 0; r < n; r++)
                CU_ASSERT(r == 1 ? isnan(qp_F(b)[r]) : fabs(qp_F(a)[r] - qp_F(b)[r]) < 1e-8);
            continue;
        }
        if (!qp_equal(a, b)) {
            char *fa = qp_format(a, 0), *fb = qp_format(b, 0);
            fprintf(stderr, "\ncolumn %c differs: %s vs %s\n", types[c], fa, fb);
            free(fa);
            free(fb);
            CU_FAIL("round trip");
        }
    }
    CU_ASSERT_EQUAL(qp_csv_write(qp_K(cols)[0], p), QP_ETYPE);
    qp_unref(back);
    qp_unref(t);
}

/* Reads a whole (small) file into buf. */
static const char *slurp(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    return buf;
}

/* Both CSV formats, cell by cell, for every type whose text is chosen by
 * its type: iso never rewrites a float (1234.56 stayed 1234-56 before),
 * writes what pandas reads back (true/false, decimal bytes, 3217000.0,
 * inf, ISO 8601 dates, timestamps with +-0Wp as numpy's extremes, ISO 8601
 * durations, minutes as hh:mm:00); q writes q's text. Row 2 holds nulls
 * and infinities. The types a Python function cannot return (datetime,
 * char) are here; tests/integration/test_values.py reads the others back
 * with pandas. */
static void test_csv_iso_and_q_cells(void)
{
    qp_value *names = syms(14, "b", "x", "h", "e", "f", "c", "p", "m", "d", "z", "n", "u", "v", "t");
    qp_value *cols = qp_vector(QP_LIST, 14);
    static const int types[14] = {QP_BOOL, QP_BYTE, QP_SHORT, QP_REAL, QP_FLOAT, QP_CHAR,
                                  QP_TIMESTAMP, QP_MONTH, QP_DATE, QP_DATETIME, QP_TIMESPAN,
                                  QP_MINUTE, QP_SECOND, QP_TIME};
    for (int c = 0; c < 14; c++) qp_K(cols)[c] = qp_vector(types[c], 2);
    qp_value **k = qp_K(cols);
    qp_G(k[0])[0] = 1, qp_G(k[0])[1] = 0;
    qp_G(k[1])[0] = 16, qp_G(k[1])[1] = 255;
    qp_H(k[2])[0] = QP_INF_H, qp_H(k[2])[1] = QP_NULL_H;
    qp_E(k[3])[0] = 1234.56f, qp_E(k[3])[1] = -QP_INF_E;
    qp_F(k[4])[0] = -123.25, qp_F(k[4])[1] = 3217000;
    qp_C(k[5])[0] = 'x', qp_C(k[5])[1] = ' ';
    qp_J(k[6])[0] = QP_INF_J, qp_J(k[6])[1] = QP_NULL_J;
    qp_I(k[7])[0] = 290, qp_I(k[7])[1] = QP_INF_I;
    qp_I(k[8])[0] = -1, qp_I(k[8])[1] = -QP_INF_I;
    qp_F(k[9])[0] = 1.5, qp_F(k[9])[1] = -QP_INF_F;
    qp_J(k[10])[0] = -1500000000, qp_J(k[10])[1] = QP_INF_J;
    qp_I(k[11])[0] = 570, qp_I(k[11])[1] = QP_NULL_I;
    qp_I(k[12])[0] = -1, qp_I(k[12])[1] = QP_INF_I;
    qp_I(k[13])[0] = QP_INF_I, qp_I(k[13])[1] = QP_NULL_I;
    qp_value *t = qp_table(qp_dict(names, cols));
    static const char *const want[2] = {     /* format = q, format = iso */
        "b,x,h,e,f,c,p,m,d,z,n,u,v,t\n"
        "1,10,0W,1234.56,-123.25,x,0W,2024.03,1999.12.31,2000.01.02T12:00:00.000,"
        "-0D00:00:01.500000000,09:30,-00:00:01,0W\n"
        "0,ff,,-0W,3217000,\" \",,0W,-0W,-0W,0W,,0W,\n",
        "b,x,h,e,f,c,p,m,d,z,n,u,v,t\n"
        "true,16,32767,1234.56,-123.25,x,2262-04-11T23:47:16.854775807,2024-03,1999-12-31,"
        "2000-01-02T12:00:00.000,-P0DT0H0M1.500000000S,09:30:00,-00:00:01,0W\n"
        "false,255,,-inf,3217000.0,\" \",,0W,-0W,-0W,P106751DT23H47M16.854775807S,,0W,\n" };
    char got[1024];
    for (int iso = 0; iso < 2; iso++) {
        CU_ASSERT_EQUAL(qp_csv_write_iso(t, tmp("o.csv"), iso), 0);
        CU_ASSERT_STRING_EQUAL(slurp(tmp("o.csv"), got, sizeof got), want[iso]);
    }
    qp_unref(t);
}

/* What format = iso writes, the reader's inference reads back as the same
 * values: ISO months as months, ISO 8601 durations (0W/-0W too) as
 * timespans, hh:mm:ss (a minute written as hh:mm:00 too) as seconds,
 * negative clocks as q writes them, hh:mm:ss.fff as times. */
static void test_csv_iso_reads_back(void)
{
    qp_value *names = syms(5, "m", "n", "u", "v", "t");
    static const int types[5] = {QP_MONTH, QP_TIMESPAN, QP_MINUTE, QP_SECOND, QP_TIME};
    static const int back[5] = {QP_MONTH, QP_TIMESPAN, QP_SECOND, QP_SECOND, QP_TIME};
    static const int64_t v[5][3] = {
        {290, QP_INF_I, -1}, {-1500000000, QP_INF_J, -QP_INF_J}, {570, 0, 1439},
        {-1, 34200, QP_INF_I}, {34200123, 0, -1}};
    static const int64_t want_u[3] = {34200, 0, 86340};     /* the minutes, as seconds */
    qp_value *cols = qp_vector(QP_LIST, 5);
    for (int c = 0; c < 5; c++) {
        qp_K(cols)[c] = qp_vector(types[c], 3);
        for (int r = 0; r < 3; r++) {
            if (types[c] == QP_TIMESPAN) qp_J(qp_K(cols)[c])[r] = v[c][r];
            else qp_I(qp_K(cols)[c])[r] = (int32_t)v[c][r];
        }
    }
    qp_value *t = qp_table(qp_dict(names, cols));
    CU_ASSERT_EQUAL(qp_csv_write_iso(t, tmp("iso.csv"), 1), 0);
    qp_unref(t);
    t = qp_csv_load(tmp("iso.csv"), NULL);
    CU_ASSERT_EQUAL_FATAL(t->type, QP_TABLE);
    for (int c = 0; c < 5; c++) {
        qp_value *col = qp_K(qp_table_columns(t))[c];
        CU_ASSERT_EQUAL(col->type, back[c]);
        for (int r = 0; col->type == back[c] && r < 3; r++) {
            int64_t got = back[c] == QP_TIMESPAN ? qp_J(col)[r] : qp_I(col)[r];
            CU_ASSERT_EQUAL(got, c == 2 ? want_u[r] : v[c][r]);
        }
    }
    qp_unref(t);
    /* ISO durations as pandas writes them; what is no fixed length (years,
     * months, weeks) or out of order is not a duration */
    t = load("n,bad\nPT1H30M,P1Y\nP2D,PT\nP1DT0.5S,P1H\n", NULL);
    CU_ASSERT_EQUAL_FATAL(t->type, QP_TABLE);
    qp_value *n = qp_K(qp_table_columns(t))[0];
    CU_ASSERT_EQUAL_FATAL(n->type, QP_TIMESPAN);
    CU_ASSERT_EQUAL(qp_J(n)[0], 5400000000000LL);
    CU_ASSERT_EQUAL(qp_J(n)[1], 172800000000000LL);
    CU_ASSERT_EQUAL(qp_J(n)[2], 86400500000000LL);
    CU_ASSERT_EQUAL(qp_K(qp_table_columns(t))[1]->type, QP_SYMBOL);
    qp_unref(t);
    /* 2024.03 stays a float (q's month text looks like one); given the
     * type, a minute reads hh:mm:00 but not a second that is not 00 */
    t = load("a,b\n2024.03,2024-03\n", NULL);
    CU_ASSERT_EQUAL(qp_K(qp_table_columns(t))[0]->type, QP_FLOAT);
    CU_ASSERT_EQUAL(qp_K(qp_table_columns(t))[1]->type, QP_MONTH);
    qp_unref(t);
    t = load("u\n09:30:00\n-00:01\n", "U");
    CU_ASSERT_EQUAL_FATAL(t->type, QP_TABLE);
    CU_ASSERT_EQUAL(qp_I(qp_K(qp_table_columns(t))[0])[0], 570);
    CU_ASSERT_EQUAL(qp_I(qp_K(qp_table_columns(t))[0])[1], -1);
    qp_unref(t);
    t = load("u\n09:30:01\n", "U");
    CU_ASSERT_TRUE(t->type == QP_ERROR && strstr(t->s, "'09:30:01' is not a minute"));
    qp_unref(t);
}

/* A 1M-row file, loaded in parallel (many chunks), every value checked. */
static void test_csv_million(void)
{
    const char *p = tmp("big.csv");
    FILE *f = fopen(p, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("sym,time,price,size\n", f);
    const char *names[] = {"AAPL", "MSFT", "IBM", "GOOG", "A"};
    int n = 1000000;
    for (int i = 0; i < n; i++) {
        int ms = i % 86400000;
        fprintf(f, "%s,%02d:%02d:%02d.%03d,%d.%02d,%d\n", names[i % 5], ms / 3600000,
                ms / 60000 % 60, ms / 1000 % 60, ms % 1000, i % 1000, i % 100, i);
    }
    fclose(f);
    for (int threads = 1; threads <= 3; threads += 2) {
        qp_csv_opts o = {.threads = threads};
        qp_value *t = qp_csv_load(p, &o);
        CU_ASSERT_EQUAL_FATAL(t->type, QP_TABLE);
        CU_ASSERT_EQUAL_FATAL(qp_count(t), n);
        qp_value **c = qp_K(qp_table_columns(t));
        CU_ASSERT_EQUAL(c[0]->type, QP_SYMBOL);
        CU_ASSERT_EQUAL(c[1]->type, QP_TIME);
        CU_ASSERT_EQUAL(c[2]->type, QP_FLOAT);
        CU_ASSERT_EQUAL(c[3]->type, QP_LONG);
        int bad = 0;
        for (int i = 0; i < n && bad < 5; i++) {
            char want[32];
            snprintf(want, sizeof want, "%d.%02d", i % 1000, i % 100);
            if (qp_S(c[0])[i] != qp_sym_intern(names[i % 5], strlen(names[i % 5])) ||
                qp_I(c[1])[i] != i % 86400000 || qp_F(c[2])[i] != strtod(want, NULL) ||
                qp_J(c[3])[i] != i)
                bad++;
        }
        CU_ASSERT_EQUAL(bad, 0);
        qp_unref(t);
    }
}

/* Random bytes drawn from CSV's alphabet: a table or an error, never a
 * crash (run under ASan by make asan). */
static void test_csv_garbage(void)
{
    const char alphabet[] = "a1,\"\n\r.-:ED 0N\t";
    char text[600];
    srand(11);
    for (int i = 0; i < 400; i++) {
        int n = 1 + rand() % (int)(sizeof text - 1);
        for (int k = 0; k < n; k++) text[k] = alphabet[rand() % (int)(sizeof alphabet - 1)];
        text[n] = 0;
        qp_value *t = load(text, NULL);
        CU_ASSERT(t && (t->type == QP_TABLE || t->type == QP_ERROR));
        if (t && t->type == QP_TABLE) {
            char *f = qp_format(t, 40);
            CU_ASSERT_PTR_NOT_NULL(f);
            free(f);
        }
        qp_unref(t);
    }
}

/* ------------------------------------------------------------------ */
/* q IPC files                                                         */
/* ------------------------------------------------------------------ */

static void write_bytes(const char *path, const char *hex)
{
    FILE *f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    for (const char *p = hex; p[0] && p[1]; p += 2) {
        unsigned v;
        sscanf(p, "%2x", &v);
        fputc((int)v, f);
    }
    fclose(f);
}

static void test_ipc_files(void)
{
    /* q's own bytes for (1 2;3): -8! and `set` (from q sessions quoted on
     * Stack Overflow, question 72488931). */
    qp_value *want = qp_list(2, longs(2, (int64_t)1, (int64_t)2), qp_long(3));
    const char *body = "000002000000070002000000010000000000000002000000000000"
                       "00f90300000000000000";
    char hex[256];
    snprintf(hex, sizeof hex, "010000002d000000%s", body);
    write_bytes(tmp("m.bin"), hex);
    qp_value *x = qp_ipcfile_load(tmp("m.bin"));
    CU_ASSERT(qp_equal(x, want));
    qp_unref(x);
    snprintf(hex, sizeof hex, "ff01000000000000%s", body);
    write_bytes(tmp("m.set"), hex);
    x = qp_table_load(tmp("m.set"), NULL);
    CU_ASSERT(qp_equal(x, want));
    qp_unref(x);
    qp_unref(want);

    /* A table written and read back, by qp_table_load (not .csv). */
    qp_value *t = small_table();
    CU_ASSERT_EQUAL(qp_ipcfile_write(t, tmp("t.qpd")), 0);
    x = qp_table_load(tmp("t.qpd"), NULL);
    CU_ASSERT(qp_equal(x, t));
    qp_unref(x);
    /* the same table as a `set` file: 0xff 0x01, six zeros, the body */
    FILE *f = fopen(tmp("t.qpd"), "rb");
    uint8_t buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    f = fopen(tmp("t.set"), "wb");
    fwrite("\xff\x01\0\0\0\0\0\0", 1, 8, f);
    fwrite(buf + 8, 1, n - 8, f);
    fclose(f);
    x = qp_ipcfile_load(tmp("t.set"));
    CU_ASSERT(qp_equal(x, t));
    qp_unref(x);
    /* csv by extension */
    CU_ASSERT_EQUAL(qp_csv_write(t, tmp("t.CSV")), 0);
    x = qp_table_load(tmp("t.CSV"), &(qp_csv_opts){.types = "SFJ"});
    CU_ASSERT(qp_equal(x, t));
    qp_unref(x);
    qp_unref(t);

    /* Damaged files: clear errors naming the file, never a crash. */
    write_bytes(tmp("bad.bin"), "0100000040000000000002000000");
    x = qp_ipcfile_load(tmp("bad.bin"));
    CU_ASSERT(x->type == QP_ERROR && strstr(x->s, "bad.bin") != NULL);
    qp_unref(x);
    write_bytes(tmp("bad.set"), "ff0100000000000000000200000007000200");
    x = qp_ipcfile_load(tmp("bad.set"));
    CU_ASSERT(x->type == QP_ERROR && strstr(x->s, "bad.set") != NULL);
    qp_unref(x);
    write_file(tmp("text.bin"), "hello, world\n");
    x = qp_ipcfile_load(tmp("text.bin"));
    CU_ASSERT(x->type == QP_ERROR && strstr(x->s, "not a q IPC file") != NULL);
    qp_unref(x);
    x = qp_ipcfile_load(tmp("none.bin"));
    CU_ASSERT_EQUAL(x->type, QP_ERROR);
    qp_unref(x);
}

/* ------------------------------------------------------------------ */

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/qp_table_XXXXXX");
    if (!mkdtemp(dir)) return 2;
    static const qp_test tests[] = {
        {"format atoms", test_format_atoms},
        {"format nulls and infinities", test_format_nulls},
        {"format vectors", test_format_vectors},
        {"format lists and dicts", test_format_lists_dicts},
        {"format tables", test_format_tables},
        {"parse numbers and dates", test_parse_floats},
        {"csv inference", test_csv_inference},
        {"csv quotes", test_csv_quotes},
        {"csv errors", test_csv_errors},
        {"csv timestamps at q's ends", test_csv_timestamp_ends},
        {"csv datetimes beyond the timestamps' range", test_csv_datetime_range},
        {"csv round trip, every type", test_csv_roundtrip_types},
        {"csv iso and q text, by type", test_csv_iso_and_q_cells},
        {"csv iso output reads back", test_csv_iso_reads_back},
        {"csv 1M rows", test_csv_million},
        {"csv garbage in, no crash", test_csv_garbage},
        {"q IPC files", test_ipc_files},
    };
    int failed = qp_test_run("table", NULL, NULL, tests, QP_NTESTS(tests));
    return failed + qp_test_rmtree(dir);
}
