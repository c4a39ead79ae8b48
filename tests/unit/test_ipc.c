/* test_ipc.c - the kdb+ IPC codec on known bytes: decode, re-encode
 * byte-for-byte, split reads, truncation at every offset, malformed and
 * oversized input, big-endian messages, compression, zero-copy. */
#include "qpeach/ipc.h"
#include "core/ipc_int.h"      /* qp__ipc_header_write */
#include "ipc_vectors.h"

#include "cunit_run.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* ---- helpers ---- */

static size_t unhex(const char *h, uint8_t *out)
{
    size_t n = 0;
    for (; h[0] && h[1]; h += 2) {
        unsigned v;
        sscanf(h, "%2x", &v);
        out[n++] = (uint8_t)v;
    }
    return n;
}

/* A whole message in a fresh buffer: header (response, little-endian) +
 * the body given in hex. */
static qp_buf *msg_from_body(const char *hex)
{
    size_t n = strlen(hex) / 2;
    qp_buf *b = qp_buf_new(8 + n);
    qp__ipc_header_write(b->data, QP_MSG_RESPONSE, 8 + n);
    unhex(hex, b->data + 8);
    return b;
}

static qp_buf *msg_from_hex(const char *hex)
{
    size_t n = strlen(hex) / 2;
    qp_buf *b = qp_buf_new(n);
    unhex(hex, b->data);
    return b;
}

/* Encodes x with the header type of want and compares with want. */
static int encodes_to(const qp_value *x, const qp_buf *want)
{
    uint8_t *m;
    size_t n;
    if (qp_ipc_encode(x, want->data[1], &m, &n)) return 0;
    int ok = n == want->len && memcmp(m, want->data, n) == 0;
    if (!ok) {
        fprintf(stderr, "\n  encoded %zu bytes, want %zu:\n  got  ", n, want->len);
        for (size_t i = 0; i < n && i < 80; i++) fprintf(stderr, "%02x", m[i]);
        fprintf(stderr, "\n  want ");
        for (size_t i = 0; i < want->len && i < 80; i++) fprintf(stderr, "%02x", want->data[i]);
        fprintf(stderr, "\n");
    }
    free(m);
    return ok;
}

/* ---- every known message decodes and re-encodes byte-for-byte ---- */

static void check_roundtrip(const char *expr, qp_buf *m)
{
    qp_value *x = NULL;
    int rc = qp_ipc_decode_msg(m, NULL, &x);
    if (rc) fprintf(stderr, "\n  %s: %s\n", expr, x ? x->s : "?");
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(qp_ipc_size(x), (int64_t)m->len - 8);
    if (!encodes_to(x, m)) {
        fprintf(stderr, "  expression: %s\n", expr);
        CU_FAIL("re-encoding differs");
    }
    qp_unref(x);
}

static void test_known_roundtrip(void)
{
    for (size_t i = 0; i < N_QPY_KNOWN; i++) {
        qp_buf *m = msg_from_body(qpy_known[i].hex);
        check_roundtrip(qpy_known[i].expr, m);
        qp_buf_unref(m);
    }
    for (size_t i = 0; i < N_KX_DOCS; i++) {
        qp_buf *m = msg_from_hex(kx_docs[i].hex);
        check_roundtrip(kx_docs[i].expr, m);
        qp_buf_unref(m);
    }
}

static const char *find_known(const char *expr)
{
    for (size_t i = 0; i < N_QPY_KNOWN; i++)
        if (!strcmp(qpy_known[i].expr, expr)) return qpy_known[i].hex;
    CU_FAIL("no such known expression");
    return "";
}

/* Builds a value in C and checks it encodes to q's bytes for expr, and
 * that q's bytes decode to an equal value. Steals x. */
static void check_value(const char *expr, qp_value *x)
{
    qp_buf *m = msg_from_body(find_known(expr));
    if (!encodes_to(x, m)) {
        fprintf(stderr, "  expression: %s\n", expr);
        CU_FAIL("encoding differs from q's");
    }
    qp_value *y = qp_ipc_decode(m, NULL);
    CU_ASSERT(qp_equal(x, y));
    qp_unref(x);
    qp_unref(y);
    qp_buf_unref(m);
}

static qp_value *longs(int n, const int64_t *v)
{
    qp_value *x = qp_vector(QP_LONG, n);
    memcpy(x->v.data, v, (size_t)n * 8);
    return x;
}

static qp_value *syms(int n, const char **s)
{
    qp_value *x = qp_vector(QP_SYMBOL, n);
    for (int i = 0; i < n; i++) qp_S(x)[i] = qp_sym_intern(s[i], strlen(s[i]));
    return x;
}

static void test_known_values(void)
{
    check_value("1", qp_long(1));
    check_value("1i", qp_int(1));
    check_value("-234h", qp_short(-234));
    check_value("1b", qp_bool(true));
    check_value("0x2a", qp_byte(0x2a));
    check_value("89421099511627575j", qp_long(89421099511627575LL));
    check_value("3.234", qp_float(3.234));
    check_value("5.5e", qp_real(5.5f));
    check_value("\"0\"", qp_char('0'));
    check_value("\"abc\"", qp_cstring("abc"));
    check_value("\"\"", qp_cstring(""));
    check_value("`abc", qp_symbol("abc"));
    check_value("`", qp_symbol(""));
    check_value("2001.01m", qp_temporal_i(QP_MONTH, 12));
    check_value("2001.01.01", qp_temporal_i(QP_DATE, 366));
    check_value("12:01", qp_temporal_i(QP_MINUTE, 721));
    check_value("0Nj", qp_long(QP_NULL_J));
    check_value("0Nh", qp_short(QP_NULL_H));
    check_value("0n", qp_float(QP_NULL_F));
    check_value("0Ne", qp_real(QP_NULL_E));
    check_value("0Np", qp_temporal_j(QP_TIMESTAMP, QP_NULL_J));
    check_value("0Nd", qp_temporal_i(QP_DATE, QP_NULL_I));
    qp_value *z = qp_atom(-QP_DATETIME);
    z->f = QP_NULL_F;
    check_value("0Nz", z);
    check_value("::", qp_identity());
    static const uint8_t g[16] = {0x8c, 0x68, 0x0a, 0x01, 0x5a, 0x49, 0x5a, 0xab,
                                  0x5a, 0x65, 0xd4, 0xbf, 0xdd, 0xb6, 0xa6, 0x61};
    check_value("\"G\"$\"8c680a01-5a49-5aab-5a65-d4bfddb6a661\"", qp_guid(g));
    check_value("1 2 3", longs(3, (int64_t[]){1, 2, 3}));
    check_value("1 0N 3", longs(3, (int64_t[]){1, QP_NULL_J, 3}));
    check_value("`the`quick`brown`fox", syms(4, (const char *[]){"the", "quick", "brown", "fox"}));
    check_value("()", qp_vector(QP_LIST, 0));
    check_value("(1;`bcd;\"0bc\";5.5e)",
                qp_list(4, qp_long(1), qp_symbol("bcd"), qp_cstring("0bc"), qp_real(5.5f)));
    check_value("(42;::;`foo)", qp_list(3, qp_long(42), qp_identity(), qp_symbol("foo")));
    check_value("(enlist `a)!(enlist 1)",
                qp_dict(syms(1, (const char *[]){"a"}), longs(1, (int64_t[]){1})));
    check_value("flip `abc`def!(1 2 3; 4 5 6)",
                qp_table(qp_dict(syms(2, (const char *[]){"abc", "def"}),
                                 qp_list(2, longs(3, (int64_t[]){1, 2, 3}),
                                         longs(3, (int64_t[]){4, 5, 6})))));
    check_value("([k: 1 2 3] v: `a`b`c)",
                qp_dict(qp_table(qp_dict(syms(1, (const char *[]){"k"}),
                                         qp_list(1, longs(3, (int64_t[]){1, 2, 3})))),
                        qp_table(qp_dict(syms(1, (const char *[]){"v"}),
                                         qp_list(1, syms(3, (const char *[]){"a", "b", "c"}))))));
    /* Functions are opaque bytes: the lambda {x+y} is context "" then "{x+y}". */
    static const uint8_t lam[] = {0, 10, 0, 5, 0, 0, 0, '{', 'x', '+', 'y', '}'};
    check_value("{x+y}", qp_func(QP_LAMBDA, lam, sizeof lam));
    static const uint8_t not_[] = {0x0f};
    check_value("not", qp_func(QP_UNARY, not_, 1));
}

static void test_known_kinds(void)
{
    /* 1+` fails in q: the message is the error 'type. */
    qp_buf *m = msg_from_body(find_known("1+`"));
    qp_value *x = NULL;
    CU_ASSERT_EQUAL(qp_ipc_decode_msg(m, NULL, &x), 0);
    CU_ASSERT(qp_is_error(x));
    CU_ASSERT_STRING_EQUAL(x->s, "type");
    qp_unref(x);
    qp_buf_unref(m);
    /* Derived functions, projections and compositions keep their bytes. */
    const char *fns[] = {"{x+y}[3]", "insert [1]", "xbar", "and", "md5", "any", "save",
                         "raze", "sums", "prev"};
    const int types[] = {QP_PROJECTION, QP_PROJECTION, QP_LAMBDA, QP_BINARY, QP_PROJECTION,
                         QP_COMPOSITION, QP_EACH, QP_OVER, QP_SCAN, QP_EACHPRIOR};
    for (size_t i = 0; i < sizeof fns / sizeof *fns; i++) {
        m = msg_from_body(find_known(fns[i]));
        x = qp_ipc_decode(m, NULL);
        CU_ASSERT_EQUAL(x->type, types[i]);
        CU_ASSERT_EQUAL(x->v.n, (int64_t)m->len - 9);
        CU_ASSERT(memcmp(x->v.data, m->data + 9, (size_t)x->v.n) == 0);
        qp_unref(x);
        qp_buf_unref(m);
    }
    /* Table attribute and a `p# column (KX docs, "Sorted table"). */
    m = msg_from_hex(kx_docs[8].hex);
    x = qp_ipc_decode(m, NULL);
    CU_ASSERT_EQUAL(x->type, QP_TABLE);
    CU_ASSERT_EQUAL(x->attr, QP_ATTR_SORTED);
    CU_ASSERT_EQUAL(qp_K(qp_table_columns(x))[0]->attr, QP_ATTR_PARTED);
    qp_unref(x);
    qp_buf_unref(m);
    /* Sorted keyed table: a sorted dict of two tables. */
    m = msg_from_hex(kx_docs[10].hex);
    x = qp_ipc_decode(m, NULL);
    CU_ASSERT_EQUAL(x->type, QP_SORTED_DICT);
    CU_ASSERT(qp_is_keyed_table(x));
    qp_unref(x);
    qp_buf_unref(m);
}

/* ---- the reader: every split, byte by byte, several at once ---- */

static qp_buf *read_one(qp_reader *r, const uint8_t *p, size_t n, size_t cut)
{
    CU_ASSERT_EQUAL(qp_reader_feed(r, p, cut), 0);
    qp_buf *got = NULL;
    qp_ipc_header h;
    if (cut < n) CU_ASSERT_EQUAL(qp_reader_next(r, &got, &h), 0);
    CU_ASSERT_EQUAL(qp_reader_feed(r, p + cut, n - cut), 0);
    CU_ASSERT_EQUAL(qp_reader_next(r, &got, &h), 1);
    return got;
}

static void test_reader_splits(void)
{
    qp_reader *r = qp_reader_new(NULL);
    for (size_t i = 0; i < N_QPY_KNOWN; i++) {
        qp_buf *m = msg_from_body(qpy_known[i].hex);
        for (size_t cut = 0; cut <= m->len; cut++) {
            qp_buf *got = read_one(r, m->data, m->len, cut);
            CU_ASSERT_FATAL(got != NULL);
            CU_ASSERT(got->len == m->len && !memcmp(got->data, m->data, m->len));
            qp_buf_unref(got);
        }
        qp_buf_unref(m);
    }
    /* All messages in one feed, then byte by byte. */
    size_t total = 0;
    for (size_t i = 0; i < N_QPY_KNOWN; i++) total += 8 + strlen(qpy_known[i].hex) / 2;
    uint8_t *all = malloc(total), *p = all;
    for (size_t i = 0; i < N_QPY_KNOWN; i++) {
        qp_buf *m = msg_from_body(qpy_known[i].hex);
        memcpy(p, m->data, m->len);
        p += m->len;
        qp_buf_unref(m);
    }
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 0) {
            CU_ASSERT_EQUAL(qp_reader_feed(r, all, total), 0);
        } else {
            for (size_t k = 0; k < total; k++) CU_ASSERT_EQUAL(qp_reader_feed(r, all + k, 1), 0);
        }
        size_t off = 0, count = 0;
        qp_buf *got;
        qp_ipc_header h;
        while (qp_reader_next(r, &got, &h) == 1) {
            CU_ASSERT(!memcmp(got->data, all + off, got->len));
            CU_ASSERT_EQUAL(h.len, got->len);
            off += got->len;
            count++;
            qp_value *x = qp_ipc_decode(got, NULL);
            CU_ASSERT(x != NULL);
            qp_unref(x);
            qp_buf_unref(got);
        }
        CU_ASSERT_EQUAL(count, N_QPY_KNOWN);
        CU_ASSERT_EQUAL(off, total);
    }
    /* Through space/commit, in odd-sized reads. */
    size_t off = 0, count = 0;
    while (off < total) {
        size_t room;
        uint8_t *dst = qp_reader_space(r, &room);
        size_t n = room < 7 ? room : 7;
        if (n > total - off) n = total - off;
        memcpy(dst, all + off, n);
        CU_ASSERT_EQUAL(qp_reader_commit(r, n), 0);
        off += n;
        qp_buf *got;
        while (qp_reader_next(r, &got, NULL) == 1) {
            count++;
            qp_buf_unref(got);
        }
    }
    CU_ASSERT_EQUAL(count, N_QPY_KNOWN);
    free(all);
    qp_reader_free(r);
}

static void test_reader_errors(void)
{
    qp_ipc_limits lim = {.max_msg = 1000};
    qp_reader *r = qp_reader_new(&lim);
    /* 2000-byte message over a 1000-byte limit: refused at the header. */
    uint8_t h[8] = {1, 1, 0, 0, 0xd0, 0x07, 0, 0};
    CU_ASSERT_EQUAL(qp_reader_feed(r, h, 8), QP_ETOOBIG);
    CU_ASSERT(strstr(qp_reader_errstr(r), "2000") != NULL);
    /* Sticky. */
    qp_buf *got;
    CU_ASSERT_EQUAL(qp_reader_feed(r, h, 1), QP_ETOOBIG);
    CU_ASSERT_EQUAL(qp_reader_next(r, &got, NULL), QP_ETOOBIG);
    qp_reader_free(r);
    r = qp_reader_new(NULL);
    uint8_t bad[8] = {7, 1, 0, 0, 9, 0, 0, 0};
    CU_ASSERT_EQUAL(qp_reader_feed(r, bad, 8), QP_EPROTO);
    qp_reader_free(r);
    /* Header length below 8. */
    r = qp_reader_new(NULL);
    uint8_t small[8] = {1, 1, 0, 0, 5, 0, 0, 0};
    CU_ASSERT_EQUAL(qp_reader_feed(r, small, 8), QP_EPROTO);
    qp_reader_free(r);
    qp_reader_free(NULL);
}

/* ---- truncated, malformed, oversized ---- */

static void test_truncated_everywhere(void)
{
    for (size_t i = 0; i < N_QPY_KNOWN; i++) {
        size_t n = strlen(qpy_known[i].hex) / 2;
        qp_buf *full = msg_from_body(qpy_known[i].hex);
        for (size_t k = 0; k < n; k++) {
            /* A shorter body whose header agrees: must be an error value. */
            qp_buf *m = qp_buf_new(8 + k);
            memcpy(m->data, full->data, 8 + k);
            qp__ipc_header_write(m->data, 2, 8 + k);
            qp_value *x = NULL;
            int rc = qp_ipc_decode_msg(m, NULL, &x);
            CU_ASSERT(rc < 0);
            CU_ASSERT(x && qp_is_error(x));
            qp_unref(x);
            /* And a header that claims more than the buffer holds. */
            m->len = 8 + k;
            qp__ipc_header_write(m->data, 2, 8 + n);
            CU_ASSERT_EQUAL(qp_ipc_decode_msg(m, NULL, &x), QP_ETRUNC);
            qp_unref(x);
            qp_buf_unref(m);
        }
        qp_buf_unref(full);
    }
}

/* Decodes body hex, expects failure rc with text containing want. */
static void expect_bad(const char *hex, const qp_ipc_limits *lim, int rc, const char *want)
{
    qp_buf *m = msg_from_body(hex);
    qp_value *x = NULL;
    int got = qp_ipc_decode_msg(m, lim, &x);
    CU_ASSERT_EQUAL(got, rc);
    CU_ASSERT_FATAL(x && qp_is_error(x));
    if (!strstr(x->s, want)) {
        fprintf(stderr, "\n  error text \"%s\" lacks \"%s\"\n", x->s, want);
        CU_FAIL("error text");
    }
    qp_unref(x);
    qp_buf_unref(m);
}

static void test_malformed(void)
{
    /* Counts beyond the bytes present: refused before allocating. */
    expect_bad("070040420f00010000000000000002000000", NULL, QP_ETRUNC,
               "vector of 1000000 longs needs 8000000 bytes, 12 present");
    expect_bad("0000ffffff7f0000", NULL, QP_ETRUNC, "list of 2147483647 items");
    expect_bad("0b00ffffff7f6100", NULL, QP_ETRUNC, "2147483647 symbols");
    expect_bad("0700ffffffff", NULL, QP_ETOOBIG, "not supported");
    expect_bad("0a0005000000616263", NULL, QP_ETRUNC, "vector of 5 chars");
    /* Unknown or unsendable types, named. */
    expect_bad("03000100000000", NULL, QP_ETYPE, "unknown type 3");
    expect_bad("fd00", NULL, QP_ETYPE, "unknown type -3");
    expect_bad("14000100000000000000", NULL, QP_ETYPE, "unknown type 20");
    expect_bad("4d00", NULL, QP_ETYPE, "unknown type 77");
    expect_bad("7000", NULL, QP_ETYPE, "type 112");
    expect_bad("68010000007000", NULL, QP_ETYPE, "type 112");
    expect_bad("7e00", NULL, QP_ETYPE, "unknown type 126");
    expect_bad("ec00", NULL, QP_ETYPE, "unknown type -20");
    /* Strings without their NUL. */
    expect_bad("f5616263", NULL, QP_ETRUNC, "no terminating NUL");
    expect_bad("80747970", NULL, QP_ETRUNC, "no terminating NUL");
    expect_bad("64616263", NULL, QP_ETRUNC, "no terminating NUL");
    /* Trailing bytes; a table that is not one. */
    expect_bad("f9010000000000000000", NULL, QP_ECORRUPT, "1 bytes left over");
    /* (fuzz_decode found a use-after-free here: the text named the freed
     * value's type.) */
    expect_bad("6200f90100000000000000", NULL, QP_ECORRUPT, "holds a long, not a dict");
    expect_bad("62000b000100000061006200", NULL, QP_ECORRUPT, "holds a symbol, not a dict");
    expect_bad("6200630b000100000061000700010000000100000000000000", NULL, QP_ECORRUPT,
               "columns must be a general list");
    /* Message size limit. */
    qp_ipc_limits lim = {.max_msg = 4};
    expect_bad("f90100000000000000", &lim, QP_ETOOBIG, "exceeds the limit");
    /* Nesting: 200 lists deep against the default 128, and 3 against 2. */
    char deep[200 * 12 + 32] = "";
    for (int i = 0; i < 200; i++) strcat(deep, "000001000000");
    strcat(deep, "f90100000000000000");
    expect_bad(deep, NULL, QP_EDEPTH, "nested deeper than 128");
    lim = (qp_ipc_limits){.max_depth = 2};
    expect_bad("000001000000000001000000000001000000f90100000000000000", &lim, QP_EDEPTH,
               "deeper than 2");
    /* Deep nesting inside a function is bounded too. */
    char fdeep[200 * 12 + 32] = "6a";
    for (int i = 0; i < 200; i++) strcat(fdeep, "000001000000");
    strcat(fdeep, "f90100000000000000");
    expect_bad(fdeep, NULL, QP_EDEPTH, "nested deeper");
    /* A bad header. */
    qp_buf *m = msg_from_hex("0501000009000000ff");
    qp_value *x = NULL;
    CU_ASSERT_EQUAL(qp_ipc_decode_msg(m, NULL, &x), QP_EPROTO);
    CU_ASSERT(qp_is_error(x));
    qp_unref(x);
    qp_buf_unref(m);
    /* Encoding what has no wire form. */
    qp_value *bad = qp_atom(-3);
    uint8_t *out;
    size_t n;
    CU_ASSERT_EQUAL(qp_ipc_encode(bad, 1, &out, &n), QP_ETYPE);
    CU_ASSERT_EQUAL(qp_ipc_size(bad), QP_ETYPE);
    qp_unref(bad);
}

/* ---- big-endian messages ---- */

/* be_body: q's little-endian body for le_expr, rewritten big-endian
 * (every count and number byte-swapped); the header is made here. */
static void check_big(const char *be_body, const char *le_expr)
{
    size_t n = strlen(be_body) / 2;
    qp_buf *be = qp_buf_new(8 + n);
    uint8_t h[8] = {0, 2, 0, 0, (uint8_t)((8 + n) >> 24), (uint8_t)((8 + n) >> 16),
                    (uint8_t)((8 + n) >> 8), (uint8_t)(8 + n)};
    memcpy(be->data, h, 8);
    unhex(be_body, be->data + 8);
    qp_buf *le = msg_from_body(find_known(le_expr));
    qp_value *x = NULL, *y = qp_ipc_decode(le, NULL);
    CU_ASSERT_EQUAL(qp_ipc_decode_msg(be, NULL, &x), 0);
    CU_ASSERT(qp_equal(x, y));
    if (!qp_equal(x, y)) fprintf(stderr, "\n  big-endian %s differs\n", le_expr);
    /* Big-endian items are copied, never borrowed. */
    if (qp_is_vector(x)) CU_ASSERT(x->v.owner != be);
    qp_unref(x);
    qp_unref(y);
    qp_buf_unref(be);
    qp_buf_unref(le);
}

static void test_big_endian(void)
{
    check_big("f90000000000000001", "1");
    check_big("fa00000001", "1i");
    check_big("fbff16", "-234h");
    check_big("f7" "4009df3b645a1cac", "3.234");
    check_big("f8" "40b00000", "5.5e");
    check_big("f4" "0000fe20facac000", "2000.01.04D05:36:57.600");
    check_big("070000000003" "0000000000000001" "0000000000000002" "0000000000000003", "1 2 3");
    check_big("060000000003" "00000001" "80000000" "00000003", "(1i;0Ni;3i)");
    check_big("050000000003" "0001" "8000" "0003", "(1h;0Nh;3h)");
    check_big("090000000002" "4009d70a3d70a3d7" "7ff8000000000000", "3.23 0n");
    check_big("0b0000000004" "74686500717569636b0062726f776e00666f7800", "`the`quick`brown`fox");
    check_big("fe8c680a015a495aab5a65d4bfddb6a661",
              "\"G\"$\"8c680a01-5a49-5aab-5a65-d4bfddb6a661\"");
    check_big("000000000003" "0a0000000003" "6f6e65" "0a0000000003" "74776f" "f633",
              "(\"one\"; \"two\"; \"3\")");
    check_big("630b0000000002" "78007900" "000000000002" "f56100" "f90000000000000002",
              "(`x`y!(`a;2))");
    check_big("6200630b0000000002" "6e616d6500697100" "000000000002"
              "0b0000000003" "44656e7400426565626c6562726f780050726566656374" "00"
              "070000000003" "0000000000000062" "000000000000002a" "000000000000007e",
              "flip `name`iq!(`Dent`Beeblebrox`Prefect;98 42 126)");
    /* Function bytes from a big-endian message are turned little-endian,
     * even where their numbers sit unaligned (fuzz_decode found UB here). */
    qp_buf *be = msg_from_hex("000200000000001b" "6800000002" "f90000000000000001" "fa00000002");
    qp_value *f = qp_ipc_decode(be, NULL);
    static const uint8_t le[] = {2, 0, 0, 0, 0xf9, 1, 0, 0, 0, 0, 0, 0, 0, 0xfa, 2, 0, 0, 0};
    CU_ASSERT_EQUAL(f->type, QP_PROJECTION);
    CU_ASSERT(f->v.n == sizeof le && !memcmp(f->v.data, le, sizeof le));
    qp_unref(f);
    qp_buf_unref(be);
    check_big("6800000002" "64000a0000000005" "7b782b797d" "f90000000000000003", "{x+y}[3]");
}

/* ---- compression ---- */

static qp_buf *zmsg(const char *hex_from8)
{
    size_t n = strlen(hex_from8) / 2;
    qp_buf *b = qp_buf_new(8 + n);
    qp__ipc_header_write(b->data, QP_MSG_RESPONSE, 8 + n);
    b->data[2] = 1;
    unhex(hex_from8, b->data + 8);
    return b;
}

static void check_q_compressed(const char *zhex, qp_value *want)
{
    qp_buf *z = zmsg(zhex);
    qp_buf *u = NULL;
    CU_ASSERT_EQUAL_FATAL(qp_ipc_decompress(z->data, z->len, NULL, &u), 0);
    qp_value *x = qp_ipc_decode(u, NULL);
    CU_ASSERT(qp_equal(x, want));
    /* Decoding the compressed message directly does the same. */
    qp_value *y = qp_ipc_decode(z, NULL);
    CU_ASSERT(qp_equal(y, want));
    /* Our compressor reproduces q's bytes exactly. */
    uint8_t *c;
    size_t cn;
    CU_ASSERT_EQUAL(qp_ipc_compress(u->data, u->len, &c, &cn), 0);
    CU_ASSERT(cn == z->len && !memcmp(c, z->data, cn));
    /* Every truncation of the compressed stream is refused, never read
     * past; so is a wrong length. */
    for (size_t k = 0; k < z->len; k++) {
        qp_buf *t = NULL;
        uint8_t *cut = malloc(k ? k : 1);
        memcpy(cut, z->data, k);
        if (k >= 8) qp__ipc_header_write(cut, 2, k), cut[2] = 1;
        CU_ASSERT(qp_ipc_decompress(cut, k, NULL, &t) < 0);
        CU_ASSERT(t == NULL);
        free(cut);
    }
    /* Through the reader, split everywhere. */
    qp_reader *r = qp_reader_new(NULL);
    for (size_t cut = 0; cut <= z->len; cut += 7) {
        qp_buf *got = read_one(r, z->data, z->len, cut);
        CU_ASSERT(got && got->len == u->len && !memcmp(got->data, u->data, u->len));
        qp_buf_unref(got);
    }
    qp_reader_free(r);
    free(c);
    qp_unref(x);
    qp_unref(y);
    qp_unref(want);
    qp_buf_unref(u);
    qp_buf_unref(z);
}

static qp_value *nsyms(int n, const char *s)
{
    qp_value *x = qp_vector(QP_SYMBOL, n);
    for (int i = 0; i < n; i++) qp_S(x)[i] = qp_sym_intern(s, strlen(s));
    return x;
}

static void test_compress_known(void)
{
    check_q_compressed(qpy_z0, nsyms(1000, "q"));
    check_q_compressed(qpy_z1, qp_table(qp_dict(nsyms(1, "q"), qp_list(1, nsyms(1000, "q")))));
    qp_value *a = qp_vector(QP_LONG, 200), *b = qp_vector(QP_LONG, 200);
    for (int i = 0; i < 200; i++) qp_J(a)[i] = i, qp_J(b)[i] = 25 + i;
    check_q_compressed(qpy_z2,
                       qp_table(qp_dict(syms(3, (const char *[]){"a", "b", "c"}),
                                        qp_list(3, a, b, nsyms(200, "a")))));
}

static uint64_t rng = 88172645463325252ULL;
static uint64_t xorshift(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void roundtrip_compress(const uint8_t *m, size_t n, bool expect_gain)
{
    uint8_t *c;
    size_t cn;
    int rc = qp_ipc_compress(m, n, &c, &cn);
    if (!expect_gain) {
        CU_ASSERT_EQUAL(rc, QP_ENOGAIN);
        return;
    }
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT(cn <= n / 2);
    qp_buf *u = NULL;
    CU_ASSERT_EQUAL_FATAL(qp_ipc_decompress(c, cn, NULL, &u), 0);
    CU_ASSERT(u->len == n && !memcmp(u->data + 8, m + 8, n - 8));
    CU_ASSERT_EQUAL(u->data[2], 0);
    qp_buf_unref(u);
    /* Flipped bytes: an error or some output, never a crash. */
    for (int k = 0; k < 200; k++) {
        uint8_t *z = malloc(cn);
        memcpy(z, c, cn);
        z[12 + xorshift() % (cn - 12)] ^= (uint8_t)(1 + xorshift() % 255);
        u = NULL;
        rc = qp_ipc_decompress(z, cn, NULL, &u);
        CU_ASSERT(rc == 0 || rc == QP_ECORRUPT);
        qp_buf_unref(u);
        free(z);
    }
    free(c);
}

static void test_compress_roundtrips(void)
{
    CU_ASSERT(!qp_ipc_should_compress(2000, false));
    CU_ASSERT(qp_ipc_should_compress(2001, false));
    CU_ASSERT(!qp_ipc_should_compress(1 << 20, true));
    size_t sizes[] = {12, 100, 1999, 2001, 65536, 1 << 20};
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        size_t n = sizes[si];
        uint8_t *m = malloc(n);
        qp__ipc_header_write(m, 1, n);
        /* Random bytes do not halve. */
        for (size_t i = 8; i < n; i++) m[i] = (uint8_t)xorshift();
        roundtrip_compress(m, n, false);
        /* Repetitive data does, whatever q's size rule would say. */
        for (size_t i = 8; i < n; i++) m[i] = (uint8_t)("abcabcabd"[i % 9]);
        roundtrip_compress(m, n, n >= 64);
        /* Runs and short-range repeats (overlapping copies). */
        for (size_t i = 8; i < n; i++) m[i] = (uint8_t)(i / 300);
        roundtrip_compress(m, n, n >= 64);
        /* Mostly repeats with noise: exercises every token kind. */
        for (size_t i = 8; i < n; i++) m[i] = xorshift() % 16 ? (uint8_t)(i % 7) : (uint8_t)xorshift();
        if (n >= 2001) roundtrip_compress(m, n, true);
        free(m);
    }
    /* A whole encoded value: an int vector of small numbers. */
    qp_value *v = qp_vector(QP_INT, 10000);
    for (int i = 0; i < 10000; i++) qp_I(v)[i] = i % 100;
    uint8_t *m;
    size_t n;
    CU_ASSERT_EQUAL(qp_ipc_encode(v, 1, &m, &n), 0);
    uint8_t *c;
    size_t cn;
    CU_ASSERT_EQUAL(qp_ipc_compress(m, n, &c, &cn), 0);
    qp_value *y = qp_ipc_decode(&(qp_buf){.len = cn, .data = c}, NULL);
    CU_ASSERT(qp_equal(v, y));
    /* Corrupt compressed data decodes to an error value, not a crash. */
    c[cn / 2] ^= 0x55;
    c[cn / 2 + 1] ^= 0xaa;
    qp_value *z = qp_ipc_decode(&(qp_buf){.len = cn, .data = c}, NULL);
    CU_ASSERT(z != NULL);
    qp_unref(z);
    /* Expanding beyond the limit is refused before allocating. */
    qp_buf *u = NULL;
    c[cn / 2] ^= 0x55;
    c[cn / 2 + 1] ^= 0xaa;
    CU_ASSERT_EQUAL(qp_ipc_decompress(c, cn, &(qp_ipc_limits){.max_msg = 1000}, &u), QP_ETOOBIG);
    free(c);
    free(m);
    qp_unref(v);
    qp_unref(y);
}

/* ---- zero-copy and placement ---- */

static void test_zero_copy(void)
{
    qp_value *v = qp_vector(QP_FLOAT, 1000);
    for (int i = 0; i < 1000; i++) qp_F(v)[i] = i * 0.5;
    uint8_t *m;
    size_t n;
    CU_ASSERT_EQUAL(qp_ipc_encode(v, 1, &m, &n), 0);
    /* Through the reader: the buffer is placed so the items align. */
    qp_reader *r = qp_reader_new(NULL);
    CU_ASSERT_EQUAL(qp_reader_feed(r, m, n), 0);
    qp_buf *b;
    CU_ASSERT_EQUAL(qp_reader_next(r, &b, NULL), 1);
    qp_value *x = qp_ipc_decode(b, NULL);
    CU_ASSERT_PTR_EQUAL(x->v.owner, b);
    CU_ASSERT_EQUAL((uintptr_t)x->v.data % 16, 0);
    CU_ASSERT(qp_equal(x, v));
    qp_buf_unref(b);  /* the vector keeps the buffer alive */
    CU_ASSERT_EQUAL(qp_F(x)[999], 499.5);
    qp_unref(x);
    /* A misplaced buffer: the items are copied instead. */
    b = qp_buf_new_skewed(n, 3);
    memcpy(b->data, m, n);
    x = qp_ipc_decode(b, NULL);
    CU_ASSERT(x->v.owner != b);
    CU_ASSERT(qp_equal(x, v));
    qp_unref(x);
    qp_buf_unref(b);
    free(m);
    /* A call (`f; 1 2 3f): the argument vector lands aligned. */
    qp_value *call = qp_list(2, qp_symbol("myfunction"), qp_ref(v));
    CU_ASSERT_EQUAL(qp_ipc_encode(call, 1, &m, &n), 0);
    CU_ASSERT_EQUAL(qp_reader_feed(r, m, n), 0);
    CU_ASSERT_EQUAL(qp_reader_next(r, &b, NULL), 1);
    x = qp_ipc_decode(b, NULL);
    CU_ASSERT_PTR_EQUAL(qp_K(x)[1]->v.owner, b);
    CU_ASSERT_EQUAL((uintptr_t)qp_K(x)[1]->v.data % 16, 0);
    qp_unref(x);
    qp_buf_unref(b);
    free(m);
    /* Compressed messages are placed after expansion. */
    CU_ASSERT_EQUAL(qp_ipc_encode(call, 1, &m, &n), 0);
    qp_value *zeros = qp_list(2, qp_symbol("g"), qp_vector(QP_LONG, 5000));
    free(m);
    CU_ASSERT_EQUAL(qp_ipc_encode(zeros, 1, &m, &n), 0);
    uint8_t *c;
    size_t cn;
    CU_ASSERT_EQUAL(qp_ipc_compress(m, n, &c, &cn), 0);
    CU_ASSERT_EQUAL(qp_reader_feed(r, c, cn), 0);
    CU_ASSERT_EQUAL(qp_reader_next(r, &b, NULL), 1);
    x = qp_ipc_decode(b, NULL);
    CU_ASSERT(qp_equal(x, zeros));
    CU_ASSERT_PTR_EQUAL(qp_K(x)[1]->v.owner, b);
    qp_unref(x);
    qp_buf_unref(b);
    free(c);
    free(m);
    qp_unref(zeros);
    qp_unref(call);
    qp_unref(v);
    qp_reader_free(r);
}

/* ---- large messages: 40-bit lengths, synthetic headers only ---- */

static void test_large_header(void)
{
    uint8_t h[8];
    qp_ipc_header p;
    uint64_t len = 5ULL << 30; /* 5 GB */
    qp__ipc_header_write(h, 1, len);
    CU_ASSERT_EQUAL(h[3], 1);
    CU_ASSERT_EQUAL(qp_ipc_header_parse(h, &p), 0);
    CU_ASSERT_EQUAL(p.len, len);
    CU_ASSERT_EQUAL(p.msgtype, 1);
    /* Under 4 GB byte 3 stays 0, as in every message q 3.x writes. */
    qp__ipc_header_write(h, 0, 3000000000ULL);
    CU_ASSERT_EQUAL(h[3], 0);
    CU_ASSERT_EQUAL(qp_ipc_header_parse(h, &p), 0);
    CU_ASSERT_EQUAL(p.len, 3000000000ULL);
    /* Big-endian header of the same. */
    uint8_t be[8] = {0, 2, 0, 1, 0x40, 0, 0, 0};
    CU_ASSERT_EQUAL(qp_ipc_header_parse(be, &p), 0);
    CU_ASSERT_EQUAL(p.len, (1ULL << 32) + 0x40000000ULL);
    CU_ASSERT_EQUAL(p.little, 0);
    /* The reader refuses a 5 GB message over its limit without allocating,
     * and accepts the header when the limit allows (nothing allocated
     * until the body's first bytes arrive). */
    qp_reader *r = qp_reader_new(&(qp_ipc_limits){.max_msg = 1ULL << 30});
    qp__ipc_header_write(h, 1, len);
    CU_ASSERT_EQUAL(qp_reader_feed(r, h, 8), QP_ETOOBIG);
    qp_reader_free(r);
    r = qp_reader_new(NULL);
    CU_ASSERT_EQUAL(qp_reader_feed(r, h, 8), 0);
    qp_reader_free(r);
    /* A vector claiming 2^31 items or more is named, not allocated. */
    expect_bad("090000000080", NULL, QP_ETOOBIG, "over 2^31-1 items");
    /* Encoding a vector past 2^31-1 items is refused (size only). */
    qp_value *big = qp_vector(QP_BOOL, 0);
    big->v.n = (int64_t)INT32_MAX + 1;
    CU_ASSERT_EQUAL(qp_ipc_size(big), QP_ETOOBIG);
    big->v.n = 0;
    qp_unref(big);
}

int main(void)
{
    static const qp_test tests[] = {
        {"known bytes round-trip", test_known_roundtrip},
        {"known values", test_known_values},
        {"errors, functions, attributes", test_known_kinds},
        {"reader splits", test_reader_splits},
        {"reader errors", test_reader_errors},
        {"truncated at every offset", test_truncated_everywhere},
        {"malformed and oversized", test_malformed},
        {"big-endian", test_big_endian},
        {"compression: q's bytes", test_compress_known},
        {"compression round trips", test_compress_roundtrips},
        {"zero-copy", test_zero_copy},
        {"large messages", test_large_header},
    };
    int fails = qp_test_run("ipc", NULL, NULL, tests, QP_NTESTS(tests));
    return fails;
}
