/* test_kdb.c - the kdb+ reader's mechanics (layouts, lazy opening,
 * damaged files, rows, threads, reloads) on databases our writer makes in
 * a scratch folder, which run everywhere. Its conformance against the
 * q-written fixture dbs is test_kdbconform.c's. */
#include "qpeach/ipc.h"
#include "qpeach/kdb.h"
#include "qpeach/qparse.h"
#include "qpeach/table.h"
#include "qpeach/value.h"
#include "core/value_int.h"    /* qp__buf_maps */

#include "cunit_run.h"
#include "kdb_check.h"
#include <limits.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static char TMP[] = "/tmp/qp_kdb_XXXXXX";

static const char *tmp(const char *rel)
{
    static char buf[8][PATH_MAX];
    static int k;
    char *b = buf[k++ % 8];
    if (snprintf(b, PATH_MAX, "%s/%s", TMP, rel) >= PATH_MAX) abort();
    return b;
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[4 * PATH_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(fwrite(p, 1, n, f), n);
    fclose(f);
}

static void copy_file(const char *src, const char *dst)
{
    static char buf[8192];
    FILE *f = fopen(src, "rb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    write_file(dst, buf, n);
}

/* ------------------------------------------------------------------ */
/* Layouts built in the scratch folder                                 */
/* ------------------------------------------------------------------ */

static void write_trades(const char *db, const char *name, int32_t day, int n, bool part);

/* A db our writer made once, shaped like egor7's: t partitioned over
 * 2015.01.01 and .02 (2 rows each: date, sym p#, px), cust splayed (3
 * rows: date, sym, px), one sym. Its path under the scratch folder. */
static const char *src_db(const char *rel)
{
    static bool made;
    if (!made) {
        write_trades(tmp("src"), "t", 5479, 2, true);
        write_trades(tmp("src"), "t", 5480, 2, true);
        write_trades(tmp("src"), "cust", 5479, 3, false);
        made = true;
    }
    static char buf[4][PATH_MAX];
    static int k;
    char *b = buf[k++ % 4];
    snprintf(b, PATH_MAX, "%s/src%s%s", TMP, *rel ? "/" : "", rel);
    return b;
}

/* par.txt segments, month and year partitions: copies of src_db's. */
static void test_layouts(void)
{
    CU_ASSERT_EQUAL(sh("mkdir -p %s/seg/a %s/seg/b && cp %s %s/seg/ && "
                       "cp -r %s %s/seg/a/ && cp -r %s %s/seg/b/ && printf 'a\\nb\\n' >%s/seg/par.txt",
                       TMP, TMP, src_db("sym"), TMP, src_db("2015.01.01"), TMP,
                       src_db("2015.01.02"), TMP, TMP), 0);
    qp_kdb *ref = open_db(src_db("")), *seg = open_db(tmp("seg"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(seg);
    qp_value *a = qp_kdb_table(ref, "t", 0), *b = qp_kdb_table(seg, "t", 0);
    CU_ASSERT_TRUE(qp_equal(a, b));
    qp_unref(a);
    qp_unref(b);
    qp_kdb_close(seg);
    const char *kinds[2][3] = {{"mon", "2015.01", "2015.02"}, {"year", "2015", "2016"}};
    for (int k = 0; k < 2; k++) {
        CU_ASSERT_EQUAL(sh("mkdir -p %s/%s && cp %s %s/%s/ && cp -r %s %s/%s/%s && cp -r %s %s/%s/%s",
                           TMP, kinds[k][0], src_db("sym"), TMP, kinds[k][0],
                           src_db("2015.01.01"), TMP, kinds[k][0], kinds[k][1],
                           src_db("2015.01.02"), TMP, kinds[k][0], kinds[k][2]), 0);
        qp_kdb *db = open_db(tmp(kinds[k][0]));
        CU_ASSERT_PTR_NOT_NULL_FATAL(db);
        CU_ASSERT_STRING_EQUAL(qp_kdb_part_column(db, "t"), k ? "year" : "month");
        qp_value *p = qp_kdb_partitions(db, "t");
        CU_ASSERT_EQUAL(p->type, k ? QP_LONG : QP_MONTH);
        CU_ASSERT_EQUAL(k ? qp_J(p)[1] : qp_I(p)[1], k ? 2016 : 181);
        qp_value *t = qp_kdb_table(db, "t", 0);
        CU_ASSERT_EQUAL(qp_count(t), 4);
        CU_ASSERT_STRING_EQUAL(qp_S(qp_table_names(t))[0], k ? "year" : "month");
        qp_unref(t);
        qp_unref(p);
        qp_kdb_close(db);
    }
    /* a splayed folder opened on its own: domains from its parent */
    qp_kdb *one = open_db(src_db("cust"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(one);
    qp_value *c1 = qp_kdb_table(one, "cust", 0), *c2 = qp_kdb_table(ref, "cust", 0);
    CU_ASSERT_TRUE(qp_equal(c1, c2));
    qp_unref(c1);
    qp_unref(c2);
    qp_kdb_close(one);
    /* a partition folder, and a table inside it, opened on their own: the
     * root (the partition) has no sym, and the db's root above it is never
     * read, so the table is refused naming the column and the domain */
    const char *inner[2] = {"2015.01.01", "2015.01.01/t"};
    for (int k = 0; k < 2; k++) {
        one = open_db(src_db(inner[k]));
        CU_ASSERT_PTR_NOT_NULL_FATAL(one);
        qp_value *t = qp_kdb_table(one, "t", 0), *m = qp_kdb_meta(one, "t");
        CU_ASSERT_TRUE(has_text(t, "column sym: enumeration domain `sym not found"));
        CU_ASSERT_TRUE(has_text(m, "column sym: enumeration domain `sym not found"));
        qp_unref(t);
        qp_unref(m);
        qp_kdb_close(one);
    }
    qp_kdb_close(ref);
}

/* 1,000 partitions: opening and listing map no file. */
static void test_lazy_open(void)
{
    static const char *const files[] = {".d", "sym", "px"};
    CU_ASSERT_EQUAL(sh("mkdir -p %s/big && cp %s %s/big/", TMP, src_db("sym"), TMP), 0);
    for (int i = 0; i < 1000; i++) {          /* dates 2000.01.01 + i */
        char dir[PATH_MAX];
        int64_t z = i + 10957 + 719468, era = z / 146097, doe = z - era * 146097;
        int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
        int d = (int)(doy - (153 * mp + 2) / 5 + 1), m = (int)(mp < 10 ? mp + 3 : mp - 9);
        int y = (int)(yoe + era * 400 + (m <= 2));
        snprintf(dir, sizeof dir, "%s/big/%04d.%02d.%02d", TMP, y, m, d);
        CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0755), 0);
        strcat(dir, "/t");
        CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0755), 0);
        for (int f = 0; f < 3; f++) {
            char src[64], dst[PATH_MAX + 8];
            snprintf(src, sizeof src, "2015.01.01/t/%s", files[f]);
            snprintf(dst, sizeof dst, "%s/%s", dir, files[f]);
            copy_file(src_db(src), dst);
        }
    }
    long long before = qp__buf_maps();
    qp_kdb *db = open_db(tmp("big"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(db);
    qp_value *tabs = qp_kdb_tables(db), *p = qp_kdb_partitions(db, "t");
    CU_ASSERT_EQUAL(tabs->v.n, 1);
    CU_ASSERT_EQUAL(p->v.n, 1000);
    CU_ASSERT_EQUAL(qp_I(p)[999], 999);
    CU_ASSERT_EQUAL(qp__buf_maps(), before);                /* nothing mapped */
    qp_value *t = qp_kdb_table_part(db, "t", 999, 0);
    CU_ASSERT_EQUAL(qp_count(t), 2);
    CU_ASSERT_EQUAL(qp__buf_maps(), before + 4);            /* .d, 2 columns, sym */
    int64_t n;
    char err[256];
    long long m0 = qp__buf_maps();
    CU_ASSERT_EQUAL(qp_kdb_count(db, "t", &n, err, sizeof err), 0);
    CU_ASSERT_EQUAL(n, 2000);
    CU_ASSERT_EQUAL(qp__buf_maps(), m0 + 1001);              /* one .d, one header each */
    qp_unref(t);
    qp_unref(p);
    qp_unref(tabs);
    qp_kdb_close(db);
}

/* ------------------------------------------------------------------ */
/* Bad input                                                           */
/* ------------------------------------------------------------------ */

static qp_value *load_bytes(const char *name, const void *p, size_t n)
{
    write_file(tmp(name), p, n);
    return qp_kdb_load_file(tmp(name), TMP, 0);
}

static void test_bad_headers(void)
{
    uint8_t v[16 + 24] = {0xfe, 0x20, QP_LONG, 0};
    int64_t n = 10;
    memcpy(v + 8, &n, 8);
    qp_value *x = load_bytes("long10", v, sizeof v);       /* says 10, holds 3 */
    CU_ASSERT_TRUE(has_text(x, "header count 10"));
    CU_ASSERT_TRUE(has_text(x, "long10"));
    qp_unref(x);
    n = 0;
    memcpy(v + 8, &n, 8);
    x = load_bytes("long0", v, sizeof v - 3);              /* zero count, 21 bytes */
    CU_ASSERT_TRUE(has_text(x, "whole number"));
    qp_unref(x);
    x = load_bytes("long0ok", v, sizeof v);                /* zero count: 3 items */
    CU_ASSERT_EQUAL(x->type, QP_LONG);
    CU_ASSERT_EQUAL(x->v.n, 3);
    qp_unref(x);
    v[2] = 3;
    x = load_bytes("type3", v, sizeof v);
    CU_ASSERT_TRUE(has_text(x, "unknown"));
    qp_unref(x);
    v[2] = 50;
    x = load_bytes("type50", v, sizeof v);
    CU_ASSERT_TRUE(has_text(x, "unknown"));
    qp_unref(x);
    x = load_bytes("short", v, 1);
    CU_ASSERT_TRUE(has_text(x, "truncated"));
    qp_unref(x);
    x = load_bytes("empty", v, 0);
    CU_ASSERT_TRUE(has_text(x, "truncated"));
    qp_unref(x);
    uint8_t page[4000] = {0xfd, 0x20};
    x = load_bytes("page", page, sizeof page);              /* fd 20 under 4096 */
    CU_ASSERT_TRUE(has_text(x, "truncated"));
    qp_unref(x);
    x = load_bytes("magic", "hello world", 11);
    CU_ASSERT_TRUE(has_text(x, "not a kdb+ file"));
    qp_unref(x);
    /* a real column cut short */
    CU_ASSERT_EQUAL(sh("head -c 20 %s >%s", src_db("2015.01.01/t/px"), tmp("cut_p")), 0);
    x = qp_kdb_load_file(tmp("cut_p"), NULL, 0);
    CU_ASSERT_TRUE(has_text(x, "header count 2"));
    qp_unref(x);
    /* an enumeration cut short, and a sym file cut mid-name ("a\0b") */
    CU_ASSERT_EQUAL(sh("head -c 4100 %s >%s && head -c 11 %s >%s/sym",
                       src_db("2015.01.01/t/sym"), tmp("cut_e"), src_db("sym"), TMP), 0);
    x = qp_kdb_load_file(tmp("cut_e"), NULL, 0);
    CU_ASSERT_TRUE(has_text(x, "cut_e"));
    qp_unref(x);
    x = qp_kdb_load_file(tmp("sym"), NULL, 0);
    CU_ASSERT_TRUE(has_text(x, "terminator"));
    qp_unref(x);
    unlink(tmp("sym"));
}

/* raw (n bytes) as a kxzipped file of one block compressed with alg (1:
 * q IPC compression, 2: zlib), laid out as kdbzip.c describes q's -19!
 * files; returns the block's compressed length. */
static size_t write_zipped(const char *path, const uint8_t *raw, size_t n, int alg)
{
    uint8_t *blk = NULL;
    size_t blen = 0;
    if (alg == 2) {
        uLongf cap = compressBound((uLong)n);
        blk = malloc(cap);
        CU_ASSERT_EQUAL_FATAL(compress2(blk, &cap, raw, (uLong)n, 6), Z_OK);
        blen = cap;
    } else {                     /* an IPC message: header, then raw */
        uint8_t *msg = malloc(n + 8);
        uint32_t mlen = (uint32_t)n + 8;
        memcpy(msg, "\1\0\0\0", 4);
        memcpy(msg + 4, &mlen, 4);
        memcpy(msg + 8, raw, n);
        CU_ASSERT_EQUAL_FATAL(qp_ipc_compress(msg, n + 8, &blk, &blen), 0);
        free(msg);
    }
    uint8_t tail[32 + 8 + 8] = {1, (uint8_t)alg, 6};
    int64_t u = (int64_t)n, t = 8 + (int64_t)blen, b = 1 << 17, k = 1;
    int32_t clen = (int32_t)blen, a = alg;
    memcpy(tail + 8, &u, 8);
    memcpy(tail + 16, &t, 8);
    memcpy(tail + 24, &b, 8);
    memcpy(tail + 32, &clen, 4);
    memcpy(tail + 36, &a, 4);
    memcpy(tail + 40, &k, 8);
    FILE *f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fwrite("kxzipped", 1, 8, f);
    fwrite(blk, 1, blen, f);
    fwrite(tail, 1, sizeof tail, f);
    fclose(f);
    free(blk);
    return blen;
}

static void test_bad_compressed(void)
{
    uint8_t enc[64] = "kxzippEd";
    qp_value *x = load_bytes("enc", enc, sizeof enc);
    CU_ASSERT_TRUE(has_text(x, "encrypted"));
    qp_unref(x);
    /* a float column in q IPC (alg 1) and zlib (alg 2) blocks: read back
     * whole, then with bytes flipped */
    enum { N = 4096 };
    static uint8_t raw[16 + 8 * N] = {0xfe, 0x20, QP_FLOAT};
    int64_t cnt = N;
    memcpy(raw + 8, &cnt, 8);
    for (int i = 0; i < N; i++) {
        double v = (i * 7919 % 1000) * 0.25;
        memcpy(raw + 16 + 8 * i, &v, 8);
    }
    char src[2][PATH_MAX];
    for (int k = 0; k < 2; k++) snprintf(src[k], PATH_MAX, "%s/z%d", TMP, k + 1);
    for (int k = 0; k < 2; k++) {
        CU_ASSERT_TRUE(write_zipped(src[k], raw, sizeof raw, k + 1) > 8 + 12 + 64);
        x = qp_kdb_load_file(src[k], NULL, 0);
        CU_ASSERT_EQUAL_FATAL(x->type, QP_FLOAT);
        CU_ASSERT_EQUAL(x->v.n, N);
        CU_ASSERT_EQUAL(memcmp(x->v.data, raw + 16, 8 * N), 0);
        qp_unref(x);
    }
    for (int k = 0; k < 2; k++) {
        CU_ASSERT_EQUAL(sh("cp %s %s && chmod u+w %s", src[k], tmp("z"), tmp("z")), 0);
        FILE *f = fopen(tmp("z"), "r+b");
        fseek(f, 8 + 12, SEEK_SET);
        uint8_t junk[64];
        memset(junk, 0xa5, sizeof junk);
        fwrite(junk, 1, sizeof junk, f);
        fclose(f);
        x = qp_kdb_load_file(tmp("z"), NULL, 0);
        CU_ASSERT_TRUE(has_text(x, "corrupt compressed block"));
        qp_unref(x);
    }
    /* a block length in the trailer that no longer adds up */
    CU_ASSERT_EQUAL(sh("cp %s %s && chmod u+w %s", src[1], tmp("z"), tmp("z")), 0);
    FILE *f = fopen(tmp("z"), "r+b");
    fseek(f, -16, SEEK_END);                              /* the last entry */
    int32_t len = 5;
    fwrite(&len, 4, 1, f);
    fclose(f);
    x = qp_kdb_load_file(tmp("z"), NULL, 0);
    CU_ASSERT_TRUE(has_text(x, "do not add up"));
    qp_unref(x);
    /* an unknown algorithm */
    CU_ASSERT_EQUAL(sh("cp %s %s && chmod u+w %s", src[1], tmp("z"), tmp("z")), 0);
    f = fopen(tmp("z"), "r+b");
    fseek(f, -12, SEEK_END);
    int32_t alg = 5;
    fwrite(&alg, 4, 1, f);
    fclose(f);
    x = qp_kdb_load_file(tmp("z"), NULL, 0);
    CU_ASSERT_TRUE(has_text(x, "algorithm 5 not supported"));
    qp_unref(x);
}

/* A table of one long column col (rows 1..n) into db as name. */
static void write_plain(const char *db, const char *name, const char *col, int n)
{
    qp_value *c = qp_vector(QP_LONG, n), *names = qp_vector(QP_SYMBOL, 1);
    for (int i = 0; i < n; i++) qp_J(c)[i] = i + 1;
    qp_S(names)[0] = qp_sym_intern(col, strlen(col));
    qp_value *t = qp_table(qp_dict(names, qp_list(1, c)));
    char err[512];
    CU_ASSERT_EQUAL(qp_kdb_write(db, name, t, NULL, err, sizeof err), 0);
    qp_unref(t);
}

static void test_bad_tables(void)
{
    /* memories: 3 rows of dates and strings (title), and a column file of
     * 1 row (fname) that .d does not list; then .d listing it: columns of
     * different lengths */
    qp_value *date = qp_vector(QP_DATE, 3), *title = qp_vector(QP_LIST, 3);
    qp_value *names = qp_vector(QP_SYMBOL, 2);
    for (int i = 0; i < 3; i++) {
        qp_I(date)[i] = 8000 + i;
        qp_K(title)[i] = qp_cstring(i ? "a title" : "Michael Standing");
    }
    qp_S(names)[0] = qp_sym_intern("date", 4);
    qp_S(names)[1] = qp_sym_intern("title", 5);
    qp_value *mt = qp_table(qp_dict(names, qp_list(2, date, title)));
    char werr[512];
    CU_ASSERT_EQUAL_FATAL(qp_kdb_write(tmp("mem"), "memories", mt, NULL, werr, sizeof werr), 0);
    qp_unref(mt);
    write_plain(tmp("mem"), "one", "fname", 1);
    CU_ASSERT_EQUAL(sh("mv %s/mem/one/fname %s/mem/memories/ && rm -r %s/mem/one", TMP, TMP, TMP), 0);
    static const char d[] = "\xff\x01\x0b\x00\x00\x00\x00\x00" "date\0title\0fname";
    write_file(tmp("mem/memories/.d"), d, sizeof d);
    qp_kdb *db = open_db(tmp("mem"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(db);
    qp_value *t = qp_kdb_table(db, "memories", 0);
    CU_ASSERT_TRUE(has_text(t, "column fname has 1 rows"));
    qp_unref(t);
    qp_kdb_close(db);
    /* .d naming a missing column */
    static const char d2[] = "\xff\x01\x0b\x00\x00\x00\x00\x00" "date\0nosuch";
    write_file(tmp("mem/memories/.d"), d2, sizeof d2);
    db = open_db(tmp("mem"));
    t = qp_kdb_table(db, "memories", 0);
    CU_ASSERT_TRUE(has_text(t, "memories/nosuch"));
    qp_unref(t);
    qp_kdb_close(db);
    /* missing sym: the enumerated table fails, the others still load */
    CU_ASSERT_EQUAL(sh("mkdir -p %s/x/y && cp -r %s %s/x/y/nosym", TMP, src_db(""), TMP), 0);
    write_plain(tmp("x/y/nosym"), "tref", "c1", 3);
    CU_ASSERT_EQUAL(sh("rm %s/x/y/nosym/sym", TMP), 0);
    db = open_db(tmp("x/y/nosym"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(db);
    t = qp_kdb_table_part(db, "t", 0, 0);
    CU_ASSERT_TRUE(has_text(t, "domain `sym"));
    qp_unref(t);
    t = qp_kdb_table(db, "tref", 0);
    CU_ASSERT_EQUAL(t->type, QP_TABLE);
    qp_unref(t);
    qp_value *none = qp_kdb_table(db, "nosuch", 0);
    CU_ASSERT_TRUE(has_text(none, "no table nosuch"));
    qp_unref(none);
    qp_kdb_close(db);
}

/* Rows of a splayed table: views whose enumeration indices are checked
 * over those rows only; a bad index fails the rows that hold it (naming
 * file, column and row) and the whole table, not the rows that do not. */
static void test_rows(void)
{
    enum { N = 10000, BAD = 7000 };
    const char *abc[3] = {qp_sym_intern("a", 1), qp_sym_intern("b", 1), qp_sym_intern("c", 1)};
    qp_value *sym = qp_vector(QP_SYMBOL, N), *px = qp_vector(QP_FLOAT, N);
    for (int64_t i = 0; i < N; i++) {
        qp_S(sym)[i] = abc[i % 3];
        qp_F(px)[i] = (double)i;
    }
    qp_value *names = qp_vector(QP_SYMBOL, 2);
    qp_S(names)[0] = qp_sym_intern("sym", 3);
    qp_S(names)[1] = qp_sym_intern("px", 2);
    qp_value *t = qp_table(qp_dict(names, qp_list(2, sym, px)));
    char err[512];
    qp_kdb_write_opts o = {.parted = ""};
    CU_ASSERT_EQUAL_FATAL(qp_kdb_write(tmp("rows"), "t", t, &o, err, sizeof err), 0);
    qp_kdb *db = open_db(tmp("rows"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(db);
    qp_value *whole = qp_kdb_table(db, "t", QP_KDB_ENUMS);
    qp_value *r = qp_kdb_table_rows(db, "t", 2500, 2600, QP_KDB_ENUMS);
    qp_value *want = qp_table_slice(whole, 2500, 100);
    CU_ASSERT_TRUE(qp_equal(r, want));
    CU_ASSERT_EQUAL(qp_table_column(r, "sym")->type, QP_ENUM);
    qp_unref(want);
    qp_unref(r);
    r = qp_kdb_table_rows(db, "t", 9990, 20000, 0);            /* capped; resolved */
    CU_ASSERT_EQUAL(qp_count(r), 10);
    CU_ASSERT_EQUAL(qp_table_column(r, "sym")->type, QP_SYMBOL);
    qp_unref(r);
    r = qp_kdb_table_rows(db, "t", 10001, 10002, QP_KDB_ENUMS);
    CU_ASSERT_TRUE(has_text(r, "outside 0..10000"));
    qp_unref(r);
    qp_unref(whole);
    qp_kdb_close(db);
    /* index BAD beyond the domain of 3 names */
    int64_t big = 99;
    FILE *f = fopen(tmp("rows/t/sym"), "r+b");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(fseek(f, 4096 + 8 * BAD, SEEK_SET), 0);     /* fd 20: items at 4096 */
    CU_ASSERT_EQUAL(fwrite(&big, 8, 1, f), 1);
    fclose(f);
    db = open_db(tmp("rows"));
    r = qp_kdb_table_rows(db, "t", 0, BAD, QP_KDB_ENUMS);
    CU_ASSERT_EQUAL(qp_count(r), BAD);
    qp_unref(r);
    r = qp_kdb_table_rows(db, "t", BAD - 5, BAD + 5, QP_KDB_ENUMS);
    CU_ASSERT_TRUE(has_text(r, "rows/t/sym"));
    CU_ASSERT_TRUE(has_text(r, "index 99 at row 7000 is beyond the domain of 3 names"));
    qp_unref(r);
    r = qp_kdb_table(db, "t", 0);
    CU_ASSERT_TRUE(has_text(r, "at row 7000"));
    qp_unref(r);
    r = qp_kdb_table_rows(db, "t", BAD + 1, N, QP_KDB_ENUMS);
    CU_ASSERT_EQUAL(qp_count(r), N - BAD - 1);
    qp_unref(r);
    qp_kdb_close(db);
    qp_unref(t);
}

/* meta of a flat table's list column: its first item's type, upper case,
 * as q's meta (and the anymap columns' meta) looks at the first item only. */
static void test_flat_meta_first_item(void)
{
    qp_value *cv = qp_vector(QP_CHAR, 2), *jv = qp_vector(QP_LONG, 3);
    memcpy(qp_C(cv), "ab", 2);
    for (int i = 0; i < 3; i++) qp_J(jv)[i] = i;
    qp_value *names = qp_vector(QP_SYMBOL, 2);
    qp_S(names)[0] = qp_sym_intern("s", 1);
    qp_S(names)[1] = qp_sym_intern("m", 1);
    qp_value *t = qp_table(qp_dict(names, qp_list(2, qp_list(2, qp_ref(cv), qp_ref(cv)),
                                                  qp_list(2, qp_ref(jv), qp_ref(cv)))));
    size_t n = qp_ipc_size(t);
    uint8_t *b = malloc(n + 2);
    b[0] = 0xff, b[1] = 0x01;
    size_t len = 2 + qp_ipc_encode_body(t, b + 2);
    CU_ASSERT_EQUAL_FATAL(mkdir(tmp("fm"), 0755), 0);
    write_file(tmp("fm/t"), b, len);
    qp_kdb *db = open_db(tmp("fm"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(db);
    qp_value *m = qp_kdb_meta(db, "t");
    CU_ASSERT_EQUAL_FATAL(m->type, QP_DICT);
    const qp_value *ty = qp_table_column(qp_K(m)[1], "t");
    CU_ASSERT_PTR_NOT_NULL_FATAL(ty);
    CU_ASSERT_EQUAL(qp_C(ty)[0], 'C');      /* strings */
    CU_ASSERT_EQUAL(qp_C(ty)[1], 'J');      /* a long vector first, a string then */
    qp_unref(m);
    qp_kdb_close(db);
    free(b);
    qp_unref(t);
    qp_unref(cv);
    qp_unref(jv);
}

/* A table as q before 3.6 `set` it to one flat file (KDB_FORMAT.md layout
 * 6), built byte by byte: its sym column is type 0x15, "sym\0", attribute 3
 * (p#, no index), an int32 count, int32 indices; then a float column. */
static size_t old_flat(uint8_t *b, const char *dom, const int32_t *idx, const double *px, int32_t n)
{
    static const uint8_t head[] = {0xff, 0x01, 0x62, 0x00, 0x63, 0x0b, 0x00, 2, 0, 0, 0,
                                   's', 'y', 'm', 0, 'p', 'x', 0, 0x00, 0x00, 2, 0, 0, 0, 0x15};
    size_t at = sizeof head, dl = strlen(dom) + 1;
    memcpy(b, head, at);
    memcpy(b + at, dom, dl);
    at += dl;
    b[at++] = 3;
    memcpy(b + at, &n, 4);
    memcpy(b + at + 4, idx, 4 * (size_t)n);
    at += 4 + 4 * (size_t)n;
    b[at++] = QP_FLOAT;
    b[at++] = 0;
    memcpy(b + at, &n, 4);
    memcpy(b + at + 4, px, 8 * (size_t)n);
    return at + 4 + 8 * (size_t)n;
}

static void test_old_flat_enums(void)
{
    static const char sym[] = "\xff\x01\x0b\x00\x03\x00\x00\x00" "a\0bb\0ccc";
    int32_t idx[5] = {0, 0, 1, 2, 2};
    double px[5] = {1.5, 2.5, 3.5, 4.5, 5.5};
    uint8_t b[256];
    CU_ASSERT_EQUAL_FATAL(mkdir(tmp("old"), 0755), 0);
    write_file(tmp("old/sym"), sym, sizeof sym);
    write_file(tmp("old/t"), b, old_flat(b, "sym", idx, px, 5));
    qp_kdb *db = open_db(tmp("old"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(db);
    const char *want[5] = {"a", "a", "bb", "ccc", "ccc"};
    for (unsigned f = 0; f <= QP_KDB_ENUMS; f++) {
        qp_value *t = qp_kdb_table(db, "t", f);
        CU_ASSERT_EQUAL_FATAL(t->type, QP_TABLE);
        const qp_value *c = qp_table_column(t, "sym"), *p = qp_table_column(t, "px");
        CU_ASSERT_EQUAL(c->type, f ? QP_ENUM : QP_SYMBOL);
        for (int i = 0; i < 5; i++) {
            CU_ASSERT_STRING_EQUAL(f ? qp_enum_sym(c, i) : qp_S(c)[i], want[i]);
            CU_ASSERT_EQUAL(qp_F(p)[i], px[i]);
        }
        qp_unref(t);
    }
    qp_value *m = qp_kdb_meta(db, "t");
    CU_ASSERT_EQUAL(m->type, QP_DICT);
    qp_unref(m);
    qp_kdb_close(db);
    /* an index beyond the domain; a domain the root lacks; cut short */
    idx[3] = 3;
    write_file(tmp("old/t"), b, old_flat(b, "sym", idx, px, 5));
    db = open_db(tmp("old"));
    qp_value *x = qp_kdb_table(db, "t", 0);
    CU_ASSERT_TRUE(has_text(x, "index 3 at row 3"));
    qp_unref(x);
    qp_kdb_close(db);
    write_file(tmp("old/t"), b, old_flat(b, "sym2", idx, px, 5));
    db = open_db(tmp("old"));
    x = qp_kdb_table(db, "t", 0);
    CU_ASSERT_TRUE(has_text(x, "enumeration domain `sym2 not found"));
    CU_ASSERT_TRUE(has_text(x, "(column sym)"));
    qp_unref(x);
    qp_kdb_close(db);
    size_t n = old_flat(b, "sym", idx, px, 5);
    for (size_t cut = 30; cut < n; cut += 7) {
        write_file(tmp("old/t"), b, cut);
        db = open_db(tmp("old"));
        x = qp_kdb_table(db, "t", 0);
        CU_ASSERT_TRUE(has_text(x, "old/t"));
        qp_unref(x);
        qp_kdb_close(db);
    }
}

/* n rows of (date; sym; px) on day (days since 2000.01.01), written by
 * our writer into db as table name: partitioned by date when part. */
static void write_trades(const char *db, const char *name, int32_t day, int n, bool part)
{
    const char *abc[3] = {qp_sym_intern("a", 1), qp_sym_intern("b", 1), qp_sym_intern("c", 1)};
    qp_value *date = qp_vector(QP_DATE, n), *sym = qp_vector(QP_SYMBOL, n);
    qp_value *px = qp_vector(QP_FLOAT, n), *names = qp_vector(QP_SYMBOL, 3);
    for (int i = 0; i < n; i++) {
        qp_I(date)[i] = day;
        qp_S(sym)[i] = abc[i % 3];
        qp_F(px)[i] = i + 0.5;
    }
    qp_S(names)[0] = qp_sym_intern("date", 4);
    qp_S(names)[1] = qp_sym_intern("sym", 3);
    qp_S(names)[2] = qp_sym_intern("px", 2);
    qp_value *t = qp_table(qp_dict(names, qp_list(3, date, sym, px)));
    qp_kdb_write_opts o = {.partition = part ? "date" : NULL};
    char err[512];
    int rc = qp_kdb_write(db, name, t, &o, err, sizeof err);
    if (rc) fprintf(stderr, "write %s: %s\n", name, err);
    CU_ASSERT_EQUAL(rc, 0);
    qp_unref(t);
}

/* A q literal ("`px`date", "2024.01.02") as a value. */
static qp_value *lit(const char *s)
{
    char err[128];
    qp_value *v = qp_literal_parse(s, strlen(s), err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    return v;
}

/* Table t without its columns' attributes (views): a partition read alone
 * keeps p# and s#, the concatenation of all of them does not. */
static qp_value *plain(const qp_value *t)
{
    qp_value *s = qp_table_slice(t, 0, qp_count(t));
    for (int64_t i = 0; s && i < qp_table_columns(s)->v.n; i++)
        qp_K(qp_table_columns(s))[i]->attr = 0;
    return s;
}

/* sel of table (a selection) equals want: rows [a, a + n) of the whole
 * table, columns cols (NULL: all), attributes aside. */
static bool selects(qp_kdb *db, const char *table, const qp_kdb_sel *sel, const qp_value *whole,
                    int64_t a, int64_t n, const qp_value *cols)
{
    qp_value *got = qp_kdb_select(db, table, sel, QP_KDB_ENUMS);
    qp_value *rows = qp_table_slice(whole, a, n);
    qp_value *want = cols ? qp_table_pick(rows, cols, table) : qp_ref(rows);
    qp_value *g0 = got && !qp_is_error(got) ? plain(got) : NULL, *w0 = plain(want);
    bool ok = g0 && qp_equal(g0, w0);
    qp_unref(g0);
    qp_unref(w0);
    if (!ok) {
        char *g = got ? qp_format(got, 0) : NULL, *w = qp_format(want, 0);
        fprintf(stderr, "\n  select of %s: %s\n%s\nwanted\n%s\n", table,
                got && qp_is_error(got) ? got->s : "differs", g ? g : "", w ? w : "");
        free(g);
        free(w);
    }
    qp_unref(got);
    qp_unref(rows);
    qp_unref(want);
    return ok;
}

/* qp_kdb_select: a partition, columns in the order asked (the partition
 * column one of them), rows of a partition or across partitions, of a
 * partitioned and of a splayed table, equal to the whole table's; errors
 * name what is wrong; a column file that is gone fails only what reads it. */
static void test_select(void)
{
    const char *db = tmp("sel");
    for (int k = 0; k < 3; k++) write_trades(db, "trade", 8766 + k, 4 + 3 * k, true);
    write_trades(db, "flat", 8766, 9, false);
    qp_kdb *kdb = open_db(db);
    CU_ASSERT_PTR_NOT_NULL_FATAL(kdb);
    qp_value *whole = qp_kdb_table(kdb, "trade", QP_KDB_ENUMS), *flat = qp_kdb_table(kdb, "flat", QP_KDB_ENUMS);
    qp_value *pxd = lit("`px`date"), *d = lit("2024.01.02"), *sym = lit("`sym`px");
    CU_ASSERT(selects(kdb, "trade", &(qp_kdb_sel){ .b = -1 }, whole, 0, 21, NULL));
    CU_ASSERT(selects(kdb, "trade", &(qp_kdb_sel){ .cols = pxd, .b = -1 }, whole, 0, 21, pxd));
    CU_ASSERT(selects(kdb, "trade", &(qp_kdb_sel){ .part = d, .b = -1 }, whole, 4, 7, NULL));
    CU_ASSERT(selects(kdb, "trade", &(qp_kdb_sel){ .part = d, .cols = sym, .a = 2, .b = 5 }, whole, 6, 3, sym));
    CU_ASSERT(selects(kdb, "trade", &(qp_kdb_sel){ .cols = pxd, .a = 3, .b = 15 }, whole, 3, 12, pxd));
    CU_ASSERT(selects(kdb, "trade", &(qp_kdb_sel){ .a = 20, .b = 99 }, whole, 20, 1, NULL));
    CU_ASSERT(selects(kdb, "flat", &(qp_kdb_sel){ .cols = pxd, .a = 2, .b = 6 }, flat, 2, 4, pxd));
    qp_value *bad = lit("`px`zz"), *r;
    struct { const char *table; qp_kdb_sel sel; const char *text; } errs[] = {
        { "trade", { .cols = bad, .b = -1 }, "trade has no column zz (its columns: date, sym, px)" },
        { "trade", { .part = d, .a = 8, .b = 9 }, "rows 8..9 outside 0..7 of trade's partition 2024.01.02" },
        { "trade", { .a = 22, .b = 30 }, "rows 22..30 outside 0..21 of trade" },
        { "flat", { .part = d, .b = -1 }, "table flat is not partitioned" },
        { "flat", { .cols = bad, .b = -1 }, "flat has no column zz (its columns: date, sym, px)" },
        { "nope", { .b = -1 }, "no table nope" },
    };
    for (size_t i = 0; i < sizeof errs / sizeof *errs; i++) {
        r = qp_kdb_select(kdb, errs[i].table, &errs[i].sel, 0);
        CU_ASSERT_TRUE(has_text(r, errs[i].text));
        qp_unref(r);
    }
    qp_value *d9 = lit("2024.02.04");
    r = qp_kdb_select(kdb, "trade", &(qp_kdb_sel){ .part = d9, .b = -1 }, 0);
    CU_ASSERT_TRUE(has_text(r, "no partition 2024.02.04 (date) for table trade"));
    qp_unref(r);
    qp_kdb_close(kdb);
    /* the px file of the second day gone: what does not read it works */
    CU_ASSERT_EQUAL(unlink(tmp("sel/2024.01.02/trade/px")), 0);
    kdb = open_db(db);
    qp_value *sd = lit("`sym`date");
    CU_ASSERT(selects(kdb, "trade", &(qp_kdb_sel){ .cols = sd, .b = -1 }, whole, 0, 21, sd));
    CU_ASSERT(selects(kdb, "trade", &(qp_kdb_sel){ .a = 11, .b = -1 }, whole, 11, 10, NULL));
    qp_unref(sd);
    r = qp_kdb_select(kdb, "trade", &(qp_kdb_sel){ .part = d, .cols = pxd, .b = -1 }, 0);
    CU_ASSERT_TRUE(has_text(r, "2024.01.02/trade/px"));
    qp_unref(r);
    qp_kdb_close(kdb);
    qp_unref(bad);
    qp_unref(pxd);
    qp_unref(sym);
    qp_unref(d);
    qp_unref(d9);
    qp_unref(whole);
    qp_unref(flat);
}

/* A reload makes a new snapshot only when the root or a domain changed;
 * a reference to the old one goes on reading the old listing. */
static void test_reload(void)
{
    write_trades(tmp("rl"), "t", 0, 3, true);
    qp_kdb *db = open_db(tmp("rl")), *old = qp_kdb_ref(db);
    char err[512];
    CU_ASSERT_EQUAL(qp_kdb_reload(&db, false, err, sizeof err), 0);
    CU_ASSERT_PTR_EQUAL(db, old);
    write_trades(tmp("rl"), "t", 1, 4, true);          /* a new date */
    CU_ASSERT_EQUAL(qp_kdb_reload(&db, false, err, sizeof err), 1);
    qp_value *a = qp_kdb_partitions(old, "t"), *b = qp_kdb_partitions(db, "t");
    CU_ASSERT_EQUAL(a->v.n, 1);
    CU_ASSERT_EQUAL(b->v.n, 2);
    qp_unref(a);
    qp_unref(b);
    qp_kdb_close(old);
    qp_value *t = qp_kdb_table(db, "t", 0);           /* sym read and stamped */
    CU_ASSERT_EQUAL(qp_count(t), 7);
    qp_unref(t);
    CU_ASSERT_EQUAL(qp_kdb_reload(&db, false, err, sizeof err), 0);
    CU_ASSERT_EQUAL(sh("printf 'x\\000' >>%s/rl/sym", TMP), 0);    /* appended in place */
    old = db;
    CU_ASSERT_EQUAL(qp_kdb_reload(&db, false, err, sizeof err), 1);
    CU_ASSERT_PTR_NOT_EQUAL(db, old);
    CU_ASSERT_EQUAL(qp_kdb_reload(&db, true, err, sizeof err), 1);     /* forced */
    CU_ASSERT_EQUAL(sh("rm -r %s/rl/2000.01.01 %s/rl/2000.01.02", TMP, TMP), 0);
    CU_ASSERT_TRUE(qp_kdb_reload(&db, false, err, sizeof err) < 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "no kdb+ tables found"));
    qp_kdb_close(db);
}

/* Folders that are not tables are left out and listed; a name that is
 * both a root splay and a partitioned table is refused naming both. */
static void test_not_tables_and_clashes(void)
{
    write_trades(tmp("nt"), "t", 0, 2, true);
    write_trades(tmp("nt"), "cust", 0, 3, false);
    CU_ASSERT_EQUAL(sh("mkdir -p %s/nt/empty %s/nt/qs %s/nt/2000.01.01/0/t %s/nt/2000.01.01/9 && "
                       "echo 1+1 >%s/nt/qs/a.q", TMP, TMP, TMP, TMP, TMP), 0);
    qp_kdb *db = open_db(tmp("nt"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(db);
    qp_value *names = qp_kdb_tables(db);
    CU_ASSERT_EQUAL(names->v.n, 2);               /* cust, t */
    qp_unref(names);
    int64_t k = 0;
    while (qp_kdb_skipped(db, k, NULL, NULL, 0)) k++;
    CU_ASSERT_EQUAL(k, 4);                        /* empty, qs, 2000.01.01/0 and /9 */
    qp_kdb_close(db);
    write_trades(tmp("nt"), "cust", 0, 3, true);
    db = open_db(tmp("nt"));
    qp_value *t = qp_kdb_table(db, "cust", 0), *p = qp_kdb_partitions(db, "cust");
    CU_ASSERT_TRUE(has_text(t, "nt/cust at the db root and "));
    CU_ASSERT_TRUE(has_text(p, "nt/2000.01.01/cust (partitioned"));
    int64_t n;
    char err[512];
    CU_ASSERT_EQUAL(qp_kdb_count(db, "cust", &n, err, sizeof err), QP_EARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "two places"));
    qp_unref(t);
    qp_unref(p);
    t = qp_kdb_table(db, "t", 0);
    CU_ASSERT_EQUAL(qp_count(t), 2);
    qp_unref(t);
    qp_kdb_close(db);
}

/* One file loaded alone reads its enumerations' domains from the db root
 * it is given, never from a folder it happens to sit under (issue 18.9):
 * without a root it is refused naming the domain. */
static void test_load_file_domains(void)
{
    write_trades(tmp("lf"), "t", 0, 3, true);
    const char *col = tmp("lf/2000.01.01/t/sym");
    qp_value *x = qp_kdb_load_file(col, NULL, 0);
    CU_ASSERT_EQUAL(x->type, QP_ERROR);
    CU_ASSERT_TRUE(has_text(x, "`sym"));
    CU_ASSERT_TRUE(has_text(x, "no db root"));
    qp_unref(x);
    x = qp_kdb_load_file(col, tmp("lf/2000.01.01"), 0);    /* a partition is not a root */
    CU_ASSERT_TRUE(has_text(x, "lf/2000.01.01 has no domain file sym"));
    qp_unref(x);
    x = qp_kdb_load_file(col, tmp("lf"), 0);
    CU_ASSERT_EQUAL_FATAL(x->type, QP_SYMBOL);
    CU_ASSERT_EQUAL(x->v.n, 3);
    CU_ASSERT_STRING_EQUAL(qp_S(x)[2], "c");
    qp_unref(x);
}

/* One db from several threads: the domain loads once and is shared. */
static void *load_cust(void *arg)
{
    qp_value *t = qp_kdb_table((qp_kdb *)arg, "cust", QP_KDB_ENUMS);
    qp_value *p = qp_kdb_table((qp_kdb *)arg, "t", QP_KDB_ENUMS);
    void *dom = NULL;
    if (t->type == QP_TABLE && p->type == QP_TABLE &&
        qp_table_column(t, "sym")->v.dom == qp_table_column(p, "sym")->v.dom)
        dom = qp_table_column(t, "sym")->v.dom;
    qp_unref(t);
    qp_unref(p);
    return dom;
}

static void test_threads(void)
{
    qp_kdb *db = open_db(src_db(""));
    CU_ASSERT_PTR_NOT_NULL_FATAL(db);
    pthread_t th[4];
    void *dom[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, load_cust, db);
    for (int i = 0; i < 4; i++) pthread_join(th[i], &dom[i]);
    CU_ASSERT_PTR_NOT_NULL(dom[0]);
    for (int i = 1; i < 4; i++) CU_ASSERT_PTR_EQUAL(dom[i], dom[0]);
    qp_kdb_close(db);
}

static int setup(void) { return mkdtemp(TMP) ? 0 : 1; }

static int teardown(void) { return qp_test_rmtree(TMP); }

int main(void)
{
    /* databases built here, byte by byte or by our writer */
    static const qp_test tests[] = {
        {"pre-3.6 flat tables with enumerations", test_old_flat_enums},
        {"a flat table's meta: a list column's first item", test_flat_meta_first_item},
        {"reload sees a changed root or sym", test_reload},
        {"folders that are not tables; one name, one table", test_not_tables_and_clashes},
        {"one file's domains from the root given", test_load_file_domains},
        {"segments, months, years, lone splay", test_layouts},
        {"1000 partitions open lazily", test_lazy_open},
        {"bad headers", test_bad_headers},
        {"bad compressed files", test_bad_compressed},
        {"bad tables", test_bad_tables},
        {"rows checked as asked for", test_rows},
        {"select: partitions, columns, rows", test_select},
        {"threads share one domain", test_threads},
    };
    return qp_test_run("kdb", setup, teardown, tests, QP_NTESTS(tests));
}
