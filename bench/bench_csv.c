/* bench_csv.c - CSV load speed against baselines measured in the same run.
 *
 *   build/bench/bench_csv [ROWS] [FILE]     (defaults: 10000000, /tmp/qp_bench_trades.csv)
 *
 * Writes a trades file (sym,time,price,size: 8 symbols, ms times, 2-decimal
 * prices, integer sizes), then times:
 *   - read:   read(2) of the file's bytes into memory (the floor),
 *   - qpeach: qp_csv_load with inferred types, on 1 thread and on all cores,
 *   - pandas: Debian python3's pandas.read_csv of the same file (timed inside
 *             Python, so interpreter start-up is excluded),
 * and prints rows/s and the ratios. Best of 2 runs each; the file is in the
 * page cache for all of them (it was just written and read).
 */
#include "qpeach/table.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int gen(const char *path, long rows)
{
    static const char *syms[] = {"AAPL", "MSFT", "IBM", "GOOG", "AMZN", "TSLA", "NVDA", "A"};
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    fputs("sym,time,price,size\n", f);
    unsigned x = 12345;
    char line[96];
    for (long i = 0; i < rows; i++) {
        x = x * 1103515245u + 12345u;
        long ms = 34200000L + i * 23400000L / rows;
        int n = snprintf(line, sizeof line, "%s,%02ld:%02ld:%02ld.%03ld,%u.%02u,%u\n",
                         syms[(x >> 16) & 7], ms / 3600000, ms / 60000 % 60, ms / 1000 % 60,
                         ms % 1000, 10 + (x >> 8) % 990, (x >> 4) % 100, 100 * (1 + (x >> 20) % 50));
        fwrite(line, 1, (size_t)n, f);
    }
    return fclose(f);
}

static double time_read(const char *path, size_t *bytes)
{
    double best = 1e9;
    for (int run = 0; run < 2; run++) {
        double t0 = now();
        int fd = open(path, O_RDONLY);
        if (fd < 0) return -1;
        off_t size = lseek(fd, 0, SEEK_END);
        lseek(fd, 0, SEEK_SET);
        char *buf = malloc((size_t)size);
        size_t got = 0;
        ssize_t n;
        while (buf && got < (size_t)size && (n = read(fd, buf + got, (size_t)size - got)) > 0)
            got += (size_t)n;
        close(fd);
        free(buf);
        double t = now() - t0;
        if (t < best) best = t;
        *bytes = got;
    }
    return best;
}

static double time_load(const char *path, int threads, long rows)
{
    double best = 1e9;
    for (int run = 0; run < 2; run++) {
        qp_csv_opts o = {.threads = threads};
        double t0 = now();
        qp_value *t = qp_csv_load(path, &o);
        double dt = now() - t0;
        if (!t || t->type != QP_TABLE || qp_count(t) != rows) {
            fprintf(stderr, "load failed: %s\n", t && t->type == QP_ERROR ? t->s : "?");
            qp_unref(t);
            return -1;
        }
        if (run == 0 && threads == 0) {
            char *s = qp_format(t, 80);
            printf("%s", s ? s : "");
            free(s);
        }
        qp_unref(t);
        if (dt < best) best = dt;
    }
    return best;
}

static double time_pandas(const char *path)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c 'import sys,time\n"
             "import pandas as pd\n"
             "b=1e9\n"
             "for _ in range(2):\n"
             "  t=time.perf_counter(); d=pd.read_csv(sys.argv[1]); b=min(b,time.perf_counter()-t)\n"
             "print(b)' %s 2>/dev/null",
             path);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    double t = -1;
    if (fscanf(p, "%lf", &t) != 1) t = -1;
    pclose(p);
    return t;
}

int main(int argc, char **argv)
{
    long rows = argc > 1 ? atol(argv[1]) : 10000000L;
    const char *path = argc > 2 ? argv[2] : "/tmp/qp_bench_trades.csv";
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    printf("bench_csv: %ld rows, file %s, %ld cores\n", rows, path, cores);
    double t0 = now();
    if (gen(path, rows) < 0) { perror(path); return 1; }
    printf("generated in %.2f s\n", now() - t0);

    size_t bytes = 0;
    double tr = time_read(path, &bytes);
    double t1 = time_load(path, 1, rows);
    double tn = time_load(path, 0, rows);
    double tp = time_pandas(path);
    if (tr < 0 || t1 < 0 || tn < 0) return 1;
    double mb = (double)bytes / 1e6;
    printf("\n%-22s %9s %12s %10s\n", "", "seconds", "rows/s", "MB/s");
    printf("%-22s %9.3f %12s %10.0f\n", "read bytes (floor)", tr, "", mb / tr);
    printf("%-22s %9.3f %12.3g %10.0f\n", "qpeach, 1 thread", t1, rows / t1, mb / t1);
    printf("%-22s %9.3f %12.3g %10.0f\n", "qpeach, all cores", tn, rows / tn, mb / tn);
    if (tp > 0) printf("%-22s %9.3f %12.3g %10.0f\n", "pandas.read_csv", tp, rows / tp, mb / tp);
    else printf("pandas.read_csv        unavailable (Debian python3-pandas not installed?)\n");
    printf("\nratios: qpeach(all cores)/read = %.1fx slower", tn / tr);
    if (tp > 0) printf(", pandas/qpeach(all cores) = %.1fx, pandas/qpeach(1 thread) = %.1fx", tp / tn, tp / t1);
    printf("\n");
    unlink(path);
    return 0;
}
