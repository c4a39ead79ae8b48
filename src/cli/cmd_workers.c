/* cmd_workers.c - `qpeach workers [stop]`: the local workers that jobs
 * with [workers] keep left running (src/sched/kept.c), listed or stopped. */
#include "qpeach/sched.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
        "usage: qpeach workers [stop]\n"
        "\n"
        "Lists the local workers that jobs with [workers] keep = DURATION left\n"
        "running for their next run: pid, cores, idle time (since the last run\n"
        "using them ended; \"in use\" while a run does), keep, their set, the job\n"
        "that used them last, and what they hold (db, input, libraries, functions\n"
        "with the start of their code's SHA-256). `stop` stops them all (SIGTERM,\n"
        "SIGKILL after 5 s); a set a run is using stops when that run ends.\n"
        "\n"
        "They live in $QPEACH_WORKERS_DIR, else /tmp/qpeach-workers-UID (mode 0700).\n"
        "\n"
        "Exit status: 0 done, 1 an error (named on stderr), 2 a usage error.\n");
}

static int list(void)
{
    qp_kept_info *k;
    int n;
    char err[600], idle[32], keep[32];
    if (qp_kept_list(&k, &n, err, sizeof err)) {
        fprintf(stderr, "qpeach workers: %s\n", err);
        return 1;
    }
    if (n == 0) printf("no kept workers\n");
    else printf("%-8s %-10s %-8s %-8s %-20s %s\n", "PID", "CORES", "IDLE", "KEEP", "SET", "JOB");
    for (int i = 0; i < n; i++) {
        if (k[i].idle_ms < 0) snprintf(idle, sizeof idle, "in use");
        else qp_job_duration_text(k[i].idle_ms, idle, sizeof idle);
        qp_job_duration_text(k[i].keep_ms, keep, sizeof keep);
        printf("%-8d %-10s %-8s %-8s %-20s %s\n", k[i].pid, k[i].cores, idle, keep, k[i].set,
               k[i].job[0] ? k[i].job : "?");
        printf("         holds: %s\n", k[i].holds[0] ? k[i].holds : "?");
    }
    free(k);
    return 0;
}

static int stop(void)
{
    int stopped, busy;
    char err[600];
    if (qp_kept_stop(&stopped, &busy, err, sizeof err)) {
        fprintf(stderr, "qpeach workers: %s\n", err);
        return 1;
    }
    printf("stopped %d kept worker%s", stopped, stopped == 1 ? "" : "s");
    if (busy)
        printf("; %d set%s in use by a run stop%s when %s run%s end", busy, busy == 1 ? "" : "s",
               busy == 1 ? "s" : "", busy == 1 ? "its" : "their", busy == 1 ? "s" : "");
    printf("\n");
    return 0;
}

int qp_cmd_workers(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage(stdout);
        return 0;
    }
    if (argc == 1) return list();
    if (argc == 2 && !strcmp(argv[1], "stop")) return stop();
    usage(stderr);
    return 2;
}
