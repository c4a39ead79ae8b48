/* bench_codec.c - codec throughput against memcpy of the same bytes,
 * measured in the same run (best of a few rounds; no absolute targets).
 *
 *   float/long vectors (100 MB): encode into a reused buffer, encode into
 *   a fresh message (qp_ipc_encode: malloc + header + copy), decode placed
 *   (zero-copy borrow) and misplaced (copy); ratio = memcpy time / codec
 *   time, so 1.0 is memcpy speed and the target is >= 0.5.
 *   symbol vector (1M items of 1000 names) and a small table: per item /
 *   per message costs.
 *
 * Every figure is also printed as a machine line for bench/harness.py:
 *   CSV,codec,<value>,<operation>,<seconds>,<bytes>,<memcpy seconds>
 * and `bench_codec --quick` uses 10 MB vectors and 100k symbols. The values
 * are the ones bench/nodeq_codec.js encodes with node-q (same formulas).
 */
#include "qpeach/ipc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

#define ROUNDS 3
#define BEST(var, stmt)                                   \
    do {                                                  \
        var = 1e30;                                       \
        for (int r_ = 0; r_ < ROUNDS; r_++) {             \
            double t0_ = now();                           \
            stmt;                                         \
            double t_ = now() - t0_;                      \
            if (t_ < var) var = t_;                       \
        }                                                 \
    } while (0)

static volatile uint64_t sink;
static const char *cur = "";
static size_t vec_bytes = 100u << 20;
static int64_t sym_items = 1000000;

static void csv(const char *what, double bytes, double t, double base)
{
    printf("CSV,codec,%s,%s,%.9f,%.0f,%.9f\n", cur, what, t, bytes, base);
}

static void row(const char *what, double bytes, double t, double base)
{
    csv(what, bytes, t, base);
    printf("  %-34s %8.1f ms %8.2f GB/s   %5.2fx memcpy\n", what, t * 1e3, bytes / t / 1e9,
           base / t);
}

static void vector_bench(int type, const char *name)
{
    const size_t bytes = vec_bytes;
    int64_t n = (int64_t)(bytes / 8);
    cur = name;
    qp_value *v = qp_vector(type, n);
    for (int64_t i = 0; i < n; i++) {
        if (type == QP_FLOAT) qp_F(v)[i] = (double)i * 0.25;
        else qp_J(v)[i] = i * 7;
    }
    size_t len = 8 + (size_t)qp_ipc_size(v);
    uint8_t *src = v->v.data, *dst = malloc(len), *msg = NULL;
    memset(dst, 1, len);
    double t_memcpy, t_fresh, t_body, t_enc, t_dec, t_dec_copy;
    BEST(t_memcpy, memcpy(dst, src, bytes); sink += dst[bytes / 2]);
    /* The same copy into a fresh block: what any new message pays. */
    BEST(t_fresh, uint8_t *f = malloc(bytes); memcpy(f, src, bytes); sink += f[bytes / 2]; free(f));
    BEST(t_body, qp_ipc_encode_body(v, dst + 8); sink += dst[len / 2]);
    BEST(t_enc, size_t l; qp_ipc_encode(v, 1, &msg, &l); sink += msg[l / 2]; free(msg));
    /* A buffer placed as the reader places it: items 16-byte aligned. */
    qp_buf *placed = qp_buf_new_skewed(len, 2), *off = qp_buf_new_skewed(len, 3);
    qp_ipc_encode(v, 1, &msg, &len);
    memcpy(placed->data, msg, len);
    memcpy(off->data, msg, len);
    free(msg);
    qp_value *x = NULL;
    BEST(t_dec, x = qp_ipc_decode(placed, NULL); sink += (uint64_t)qp_count(x); qp_unref(x));
    BEST(t_dec_copy, x = qp_ipc_decode(off, NULL); sink += (uint64_t)qp_count(x); qp_unref(x));
    x = qp_ipc_decode(placed, NULL);
    int borrowed = x->v.owner == placed;
    qp_unref(x);
    printf("%s vector, %zu MB (%lld items)\n", name, bytes >> 20, (long long)n);
    row("memcpy (baseline)", bytes, t_memcpy, t_memcpy);
    row("malloc + memcpy (fresh block)", bytes, t_fresh, t_memcpy);
    row("encode_body into reused buffer", bytes, t_body, t_memcpy);
    row("qp_ipc_encode (fresh malloc)", bytes, t_enc, t_memcpy);
    row(borrowed ? "decode placed (zero-copy)" : "decode placed (COPIED)", bytes, t_dec, t_memcpy);
    row("decode misplaced (copy)", bytes, t_dec_copy, t_memcpy);
    row("encode_body + decode placed", bytes, t_body + t_dec, t_memcpy);
    row("qp_ipc_encode + decode misplaced", bytes, t_enc + t_dec_copy, t_memcpy);
    printf("  %-34s %5.2fx (fresh-block memcpy: %5.2fx)\n", "=> qp_ipc_encode + decode placed:",
           t_memcpy / (t_enc + t_dec), t_fresh / (t_enc + t_dec));
    qp_buf_unref(placed);
    qp_buf_unref(off);
    free(dst);
    qp_unref(v);
}

static void symbol_bench(void)
{
    const int64_t n = sym_items;
    char names[1000][16];
    cur = "symbol";
    qp_value *v = qp_vector(QP_SYMBOL, n);
    for (int i = 0; i < 1000; i++) snprintf(names[i], sizeof names[i], "sym%04d", i);
    for (int64_t i = 0; i < n; i++) qp_S(v)[i] = qp_sym_intern(names[i % 1000], 7);
    uint8_t *msg;
    size_t len;
    qp_ipc_encode(v, 1, &msg, &len);
    uint8_t *dst = malloc(len);
    memset(dst, 1, len);
    double t_memcpy, t_enc, t_dec;
    BEST(t_memcpy, memcpy(dst, msg, len); sink += dst[len / 2]);
    BEST(t_enc, qp_ipc_encode_body(v, dst + 8); sink += dst[len / 2]);
    qp_buf *b = qp_buf_new(len);
    memcpy(b->data, msg, len);
    qp_value *x = NULL;
    BEST(t_dec, x = qp_ipc_decode(b, NULL); sink += (uint64_t)qp_count(x); qp_unref(x));
    printf("symbol vector, %lld items of 1000 names (%zu wire bytes)\n", (long long)n, len);
    row("memcpy (baseline)", (double)len, t_memcpy, t_memcpy);
    csv("encode_body", (double)len, t_enc, t_memcpy);
    csv("decode", (double)len, t_dec, t_memcpy);
    printf("  %-34s %8.1f ms %8.1f ns/item  %5.2fx memcpy\n", "encode_body", t_enc * 1e3,
           t_enc / n * 1e9, t_memcpy / t_enc);
    printf("  %-34s %8.1f ms %8.1f ns/item  %5.2fx memcpy\n", "decode (interning)", t_dec * 1e3,
           t_dec / n * 1e9, t_memcpy / t_dec);
    qp_buf_unref(b);
    free(msg);
    free(dst);
    qp_unref(v);
}

static void table_bench(void)
{
    const int rows = 10, reps = 100000;
    qp_value *s = qp_vector(QP_SYMBOL, rows), *p = qp_vector(QP_FLOAT, rows),
             *z = qp_vector(QP_LONG, rows), *k = qp_vector(QP_SYMBOL, 3);
    const char *cn[] = {"sym", "price", "size"};
    for (int i = 0; i < 3; i++) qp_S(k)[i] = qp_sym_intern(cn[i], strlen(cn[i]));
    for (int i = 0; i < rows; i++) {
        qp_S(s)[i] = qp_sym_intern(i % 2 ? "IBM" : "MSFT", i % 2 ? 3 : 4);
        qp_F(p)[i] = 100 + i;
        qp_J(z)[i] = 10 * i;
    }
    qp_value *t = qp_table(qp_dict(k, qp_list(3, s, p, z)));
    uint8_t *msg;
    size_t len;
    qp_ipc_encode(t, 1, &msg, &len);
    qp_buf *b = qp_buf_new(len);
    memcpy(b->data, msg, len);
    double t_enc, t_dec, t_memcpy;
    uint8_t *dst = malloc(len);
    cur = "table";
    BEST(t_memcpy, for (int i = 0; i < reps; i++) {
        memcpy(dst, msg, len); __asm__ __volatile__("" : : "r"(dst) : "memory");
    });
    BEST(t_enc, for (int i = 0; i < reps; i++) {
        uint8_t *m; size_t l; qp_ipc_encode(t, 1, &m, &l); sink += m[l - 1]; free(m);
    });
    BEST(t_dec, for (int i = 0; i < reps; i++) {
        qp_value *x = qp_ipc_decode(b, NULL); sink += (uint64_t)x->type; qp_unref(x);
    });
    printf("table of %d rows x 3 columns (%zu-byte message)\n", rows, len);
    printf("  %-34s %8.2f us/msg\n", "qp_ipc_encode", t_enc / reps * 1e6);
    printf("  %-34s %8.2f us/msg\n", "qp_ipc_decode", t_dec / reps * 1e6);
    printf("  %-34s %8.2f us/msg\n", "memcpy of the message", t_memcpy / reps * 1e6);
    csv("memcpy", (double)len * reps, t_memcpy, t_memcpy);
    csv("encode", (double)len * reps, t_enc, t_memcpy);
    csv("decode", (double)len * reps, t_dec, t_memcpy);
    free(dst);
    qp_buf_unref(b);
    free(msg);
    qp_unref(t);
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--quick")) {
        vec_bytes = 10u << 20;
        sym_items = 100000;
    }
    vector_bench(QP_FLOAT, "float");
    vector_bench(QP_LONG, "long");
    symbol_bench();
    table_bench();
    return 0;
}
