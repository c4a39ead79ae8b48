/* fuzz_csv.c - libFuzzer target: the parallel CSV loader and the q-console
 * formatter on any text.
 *
 * The first input byte picks the options: parser threads 1..4 (bits 0-1,
 * so chunk boundaries fall in different places), tab or comma (bit 2), and
 * (bit 3) an explicit type string taken from the input's first line (at
 * most 32 bytes). The rest is written to a file and loaded. Invariants
 * (abort on violation):
 *   - the loader gives a table, or an error value whose text names the
 *     file; never a crash, never NULL (no OOM at these sizes);
 *   - a loaded table has equal-length columns and formats without a crash;
 *   - qp_csv_scan of the same file hands over the same rows in batches
 *     (their concatenation equals the loaded table), or fails with the
 *     loader's error text.
 */
#include "qpeach/table.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char file[64];

static void cleanup(void) { unlink(file); }

/* The scan's batches, kept (their views keep the parser's buffers, which
 * then takes fresh ones). */
typedef struct got {
    qp_value *t[4096];
    int n;
} got;

static int keep(void *arg, const qp_value *t)
{
    got *g = arg;
    if (g->n == 4096) return -1;
    if (!(g->t[g->n++] = qp_table_slice(t, 0, qp_count(t)))) abort();
    return 0;
}

/* qp_csv_scan gives what qp_csv_load gave (t, a table or an error). */
static void same_scan(const qp_csv_opts *opts, const qp_value *t)
{
    got g = {.n = 0};
    qp_csv_sink sink = {keep, keep, &g};
    qp_value *err = NULL;
    int rc = qp_csv_scan(file, opts, &sink, &err);
    if (rc == -1) goto done;                       /* more batches than kept */
    if (t->type == QP_ERROR) {
        if (!rc || !err || strcmp(err->s, t->s)) abort();
        goto done;
    }
    if (rc || err || g.n < 1) abort();
    /* the first is the empty table begin got: alone when there are no rows */
    qp_value *all = g.n == 1 ? qp_ref(g.t[0]) : qp_table_concat(g.t + 1, g.n - 1);
    if (!all || !qp_equal(all, t)) abort();
    qp_unref(all);
done:
    qp_unref(err);
    for (int i = 0; i < g.n; i++) qp_unref(g.t[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!file[0]) {
        snprintf(file, sizeof file, "/tmp/qpfuzz-csv-%d.csv", (int)getpid());
        atexit(cleanup);
    }
    if (size == 0) return 0;
    uint8_t o = data[0];
    data++, size--;
    char types[33];
    qp_csv_opts opts = { .threads = 1 + (o & 3), .delim = (o & 4) ? '\t' : ',' };
    if (o & 8) {
        const uint8_t *nl = memchr(data, '\n', size < 32 ? size : 32);
        if (!nl) return 0;
        size_t k = (size_t)(nl - data);
        memcpy(types, data, k);
        types[k] = 0;
        if (strlen(types) != k) return 0;     /* a NUL inside: not a C string */
        opts.types = types;
        data = nl + 1;
        size -= k + 1;
    }
    /* Overwritten in place and cut to size, not opened with O_TRUNC: ext4
     * flushes a file truncated to zero when it is closed, which made each
     * input wait for the disk (300 inputs/s instead of thousands). */
    int fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) abort();
    if (size && write(fd, data, size) != (ssize_t)size) abort();
    if (ftruncate(fd, (off_t)size)) abort();
    close(fd);

    qp_value *t = qp_csv_load(file, &opts);
    if (!t) abort();
    if (t->type == QP_ERROR) {
        if (!strstr(t->s, file)) {
            fprintf(stderr, "fuzz_csv: error without the file name: %s\n", t->s);
            abort();
        }
    } else {
        if (t->type != QP_TABLE) abort();
        qp_value *cols = qp_table_columns(t);
        if (qp_table_names(t)->v.n != cols->v.n || cols->v.n < 1) abort();
        for (int64_t i = 1; i < cols->v.n; i++)
            if (qp_K(cols)[i]->v.n != qp_K(cols)[0]->v.n) abort();
        char *s = qp_format(t, 80);
        if (!s) abort();
        free(s);
    }
    same_scan(&opts, t);
    qp_unref(t);
    return 0;
}
