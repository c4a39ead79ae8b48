/* test_regress.c - regression tests for faults the fuzzers (tests/fuzz,
 * `make fuzz`) found, one test per finding, named after the target. Each
 * feeds the finding's input (or its essence) to the code that failed.
 */
#include "qpeach/ipc.h"
#include "qpeach/table.h"

#include "cunit_run.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

static char dir[] = "/tmp/qpeach-regress-XXXXXX";

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CU_ASSERT_FATAL(f != NULL);
    fputs(text, f);
    fclose(f);
}

/* fuzz_csv: a bad field with doubled quotes ("7""8") in a typed column.
 * The error pointed into the field's unescaped scratch copy, and the line
 * count ran memchr from the file's start to that unrelated pointer: a read
 * far out of bounds (ASan), or a wrong line number. */
static void test_csv_error_in_doubled_quote_field(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/q.csv", dir);
    write_file(path, "name,v,n\n\"a,b\",1.5,7\nx,1.0,\"7\"\"8\"\n");
    qp_csv_opts o = { .types = "SFJ", .threads = 1 };
    qp_value *t = qp_csv_load(path, &o);
    CU_ASSERT_FATAL(t != NULL);
    CU_ASSERT_EQUAL(t->type, QP_ERROR);
    if (t->type == QP_ERROR) {
        CU_ASSERT(strstr(t->s, "q.csv:3:") != NULL);
        CU_ASSERT(strstr(t->s, "column n") != NULL);
        CU_ASSERT(strstr(t->s, "\"7\"\"8\"") != NULL);
    }
    qp_unref(t);
    /* the fuzzer's own input: the same shape in a multi-threaded load */
    write_file(path, "name,v,n\n\"a,b\",1.5,\"\n7x\"\"y\",,8\n");
    for (int th = 1; th <= 4; th++) {
        o.threads = th;
        t = qp_csv_load(path, &o);
        CU_ASSERT(t != NULL && t->type == QP_ERROR);
        qp_unref(t);
    }
}

/* fuzz_csv: a timestamp in the year 6124 (and a timespan of 999999 days)
 * overflowed int64 nanoseconds (UBSan: signed overflow); now such a field
 * is not a timestamp / timespan, while q's whole range still parses. */
static void test_csv_temporal_overflow(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/t.csv", dir);
    const char *bad[][2] = {
        { "p\n6124.01.02D10:00:00.123456789\n", "P" },
        { "p\n0001.01.01D00:00:00\n", "P" },
        { "n\n999999D00:00:00\n", "N" },
        { "n\n-999999D23:59:59.999999999\n", "N" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        write_file(path, bad[i][0]);
        qp_csv_opts o = { .types = bad[i][1], .threads = 1 };
        qp_value *t = qp_csv_load(path, &o);
        CU_ASSERT(t != NULL && t->type == QP_ERROR && strstr(t->s, "t.csv:2:") != NULL);
        qp_unref(t);
    }
    write_file(path, "p,n\n2290.01.01D00:00:00,100000D00:00:00\n1710.01.01D00:00:00,-100000D00:00:00\n");
    qp_csv_opts o = { .types = "PN", .threads = 1 };
    qp_value *t = qp_csv_load(path, &o);
    CU_ASSERT_FATAL(t != NULL);
    CU_ASSERT_EQUAL(t->type, QP_TABLE);
    if (t->type == QP_TABLE) {
        qp_value *p = qp_K(qp_table_columns(t))[0], *n = qp_K(qp_table_columns(t))[1];
        CU_ASSERT(qp_J(p)[0] > 0 && qp_J(p)[1] < 0 && qp_J(p)[1] != QP_NULL_J);
        CU_ASSERT_EQUAL(qp_J(n)[0], 100000LL * 86400000000000LL);
        CU_ASSERT_EQUAL(qp_J(n)[1], -100000LL * 86400000000000LL);
    }
    qp_unref(t);
}

/* fuzz_csv: types that skip every column (" " for a one-column file) gave
 * a table with no columns, which has no row count: later code reading its
 * first column would read past an empty list. Now an error naming the file
 * and the types; skipping some of the columns still loads the rest. */
static void test_csv_every_column_skipped(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/s.csv", dir);
    write_file(path, "[");                         /* the fuzzer's input */
    for (int th = 1; th <= 4; th++) {
        qp_csv_opts o = { .types = " ", .threads = th };
        qp_value *t = qp_csv_load(path, &o);
        CU_ASSERT_FATAL(t != NULL);
        CU_ASSERT_EQUAL(t->type, QP_ERROR);
        if (t->type == QP_ERROR) {
            CU_ASSERT(strstr(t->s, "s.csv: every column is skipped") != NULL);
            CU_ASSERT(strstr(t->s, "types \" \"") != NULL);
        }
        qp_unref(t);
    }
    write_file(path, "a,b,c\n1,x,2.5\n3,y,\n");
    qp_csv_opts o = { .types = "   ", .threads = 2 };
    qp_value *t = qp_csv_load(path, &o);
    CU_ASSERT(t != NULL && t->type == QP_ERROR);
    qp_unref(t);
    o.types = " S ";
    t = qp_csv_load(path, &o);
    CU_ASSERT_FATAL(t != NULL);
    CU_ASSERT_EQUAL_FATAL(t->type, QP_TABLE);
    qp_value *names = qp_table_names(t), *cols = qp_table_columns(t);
    CU_ASSERT_EQUAL(names->v.n, 1);
    CU_ASSERT_STRING_EQUAL(qp_S(names)[0], "b");
    CU_ASSERT_EQUAL(qp_K(cols)[0]->type, QP_SYMBOL);
    CU_ASSERT_EQUAL(qp_K(cols)[0]->v.n, 2);
    CU_ASSERT_STRING_EQUAL(qp_S(qp_K(cols)[0])[1], "y");
    qp_unref(t);
}

/* fuzz_csv: a symbol field holding a NUL byte ("a\0b"). Interning keyed
 * it on all its bytes: a second symbol that reads as "a" (two pointers for
 * one text), and when a stored "a" shared its hash slot the compare read
 * t[n], past the end of "a" (ASan: heap-buffer-overflow at the end of an
 * arena chunk). Now a symbol's text ends at its first NUL: one pointer. */
static void test_sym_with_nul(void)
{
    const char *a = qp_sym_intern("a", 1);
    CU_ASSERT_PTR_EQUAL(qp_sym_intern("a\0b", 3), a);
    CU_ASSERT_PTR_EQUAL(qp_sym_intern("a\0", 2), a);
    CU_ASSERT_PTR_EQUAL(qp_sym_intern("\0zz", 3), qp_sym_intern("", 0));

    char path[128];
    snprintf(path, sizeof path, "%s/n.csv", dir);
    FILE *f = fopen(path, "w");
    CU_ASSERT_FATAL(f != NULL);
    fwrite("s\na\0b\na\n", 1, 8, f);          /* the fuzzer's input, shortened */
    fclose(f);
    for (int th = 1; th <= 2; th++) {
        qp_csv_opts o = { .types = "S", .threads = th };
        qp_value *t = qp_csv_load(path, &o);
        CU_ASSERT_FATAL(t != NULL);
        CU_ASSERT_EQUAL_FATAL(t->type, QP_TABLE);
        qp_value *c = qp_K(qp_table_columns(t))[0];
        CU_ASSERT_EQUAL(c->v.n, 2);
        if (c->v.n == 2) CU_ASSERT(qp_S(c)[0] == a && qp_S(c)[1] == a);
        qp_unref(t);
    }
}

/* fuzz_server (through the reader): an 88-byte compressed message stating
 * an uncompressed length of 4 GB made the decompressor allocate 4 GB
 * before looking at the stream. A stream of n bytes yields at most
 * 129 n: beyond that it is corrupt, refused before any allocation. */
static uint8_t *small_liar(size_t *n)
{
    static uint8_t m[88];
    memset(m, 0, sizeof m);
    m[0] = 1; m[1] = 1; m[2] = 1;
    m[4] = sizeof m;
    uint32_t ulen = 0xfffffff0u;
    memcpy(m + 8, &ulen, 4);
    *n = sizeof m;
    return m;
}

static void test_decompress_refuses_impossible_length(void)
{
    size_t n;
    uint8_t *m = small_liar(&n);
    qp_buf *u = NULL;
    CU_ASSERT_EQUAL(qp_ipc_decompress(m, n, NULL, &u), QP_ECORRUPT);
    CU_ASSERT(u == NULL);
#ifndef UNDER_ASAN
    /* with address space for 256 MB only, an allocation of 4 GB would give
     * QP_ENOMEM: QP_ECORRUPT shows the length was refused first */
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit r = { 256 << 20, 256 << 20 };
        setrlimit(RLIMIT_AS, &r);
        qp_buf *v = NULL;
        _exit(qp_ipc_decompress(m, n, NULL, &v) == QP_ECORRUPT ? 0 : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
#endif
    /* the bound is not too tight: the best ratio the compressor reaches */
    size_t len = 8 + (4 << 20);
    uint8_t *z = calloc(1, len), *c = NULL;
    CU_ASSERT_FATAL(z != NULL);
    z[0] = 1; z[1] = 1;
    uint32_t l32 = (uint32_t)len;
    memcpy(z + 4, &l32, 4);
    size_t clen = 0;
    CU_ASSERT_EQUAL_FATAL(qp_ipc_compress(z, len, &c, &clen), 0);
    CU_ASSERT_EQUAL(qp_ipc_decompress(c, clen, NULL, &u), 0);
    CU_ASSERT(u && u->len == len && !memcmp(u->data + 8, z + 8, len - 8));
    qp_buf_unref(u);
    free(c);
    free(z);
}

int main(void)
{
    if (!mkdtemp(dir)) return 2;
    static const qp_test tests[] = {
        {"fuzz_csv: error in a doubled-quote field", test_csv_error_in_doubled_quote_field},
        {"fuzz_csv: temporal overflow", test_csv_temporal_overflow},
        {"fuzz_csv: every column skipped", test_csv_every_column_skipped},
        {"fuzz_csv: a symbol with a NUL byte", test_sym_with_nul},
        {"fuzz_server: impossible decompressed length", test_decompress_refuses_impossible_length},
    };
    int failed = qp_test_run("regress", NULL, NULL, tests, QP_NTESTS(tests));
    return failed + qp_test_rmtree(dir);
}
