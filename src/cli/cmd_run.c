/* cmd_run.c - `qpeach run JOB`: runs a job file (see jobs/README.md). */
#include "qpeach/job.h"
#include "qpeach/sched.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f,
        "usage: qpeach run JOB [--fresh] [--dry-run] [--show] [--quiet] [--log-json] [-j N]\n"
        "\n"
        "Runs the job file JOB (INI; every key in jobs/README.md): splits the input\n"
        "into partitions, runs the job's Python function on each across local worker\n"
        "processes and/or running servers, merges the results and writes the output.\n"
        "\n"
        "  --fresh      start over: discard the tasks an interrupted run finished\n"
        "               (by default a run resumes from its journal when the job file,\n"
        "               code, input and plan are unchanged, and says so)\n"
        "  --resume     the default; accepted for old cron lines\n"
        "  --dry-run    print the plan (partitions, workers, cores) and exit\n"
        "  --show       print q's console view of the result (its first rows) to\n"
        "               stdout; [output] path = - (the default) otherwise writes the\n"
        "               whole result there as CSV (a file path is written either way)\n"
        "  --quiet      no progress, only errors (as JSON with --log-json)\n"
        "  --log-json   progress as JSON lines on stderr, one object per event:\n"
        "               t, event, message, done, total; a task's also task,\n"
        "               partition, worker, addr, ms, rows\n"
        "  -j N         N local workers (overrides [workers] local)\n"
        "\n"
        "Progress goes to stderr: a bar on a terminal, log lines otherwise.\n"
        "\n"
        "Exit status:\n"
        "  0  ok: the output was written\n"
        "  1  the job failed (a task failed after its retries, no usable worker,\n"
        "     merge or output error); the message names the partition and error\n"
        "  2  bad job file or command line, or input it names is not there (a db,\n"
        "     a table, a listed partition no worker holds)\n"
        "  3  another run of this job holds its lock (cron overlap)\n"
        "  4  interrupted by SIGINT/SIGTERM; the journal is kept: the next run\n"
        "     resumes from it\n");
}

int qp_cmd_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "resume", no_argument, NULL, 'r' }, { "fresh", no_argument, NULL, 'f' },
        { "dry-run", no_argument, NULL, 'n' }, { "show", no_argument, NULL, 's' },
        { "quiet", no_argument, NULL, 'q' },  { "log-json", no_argument, NULL, 'J' },
        { "help", no_argument, NULL, 'h' },   { NULL, 0, NULL, 0 },
    };
    qp_run_opts o = { .out = stdout, .log_to = stderr, .resume = true };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "j:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'r': o.resume = true; break;
        case 'f': o.resume = false; break;
        case 'n': o.dry_run = true; break;
        case 's': o.show = true; break;
        case 'q': o.quiet = true; break;
        case 'J': o.log = QP_LOG_JSON; break;
        case 'j': {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (*end || n < 1 || n > 1024) {
                fprintf(stderr, "qpeach run: -j wants a worker count 1..1024, not '%s'\n", optarg);
                return QP_RUN_BADJOB;
            }
            o.jobs = (int)n;
            break;
        }
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return QP_RUN_BADJOB;
        }
    }
    if (argc - optind != 1) { usage(stderr); return QP_RUN_BADJOB; }
    /* --quiet with --log-json: only the error, as JSON */
    if (o.quiet && o.log != QP_LOG_JSON) o.log = QP_LOG_QUIET;
    char err[1024];
    qp_job *job = NULL;
    if (qp_job_load(argv[optind], &job, err, sizeof err)) {
        fprintf(stderr, "qpeach run: %s\n", err);
        return QP_RUN_BADJOB;
    }
    /* Workers are this same binary: /proc/self/exe survives a relative
     * argv[0] and a changed directory. */
    static char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) { fprintf(stderr, "qpeach run: cannot find my own binary\n"); qp_job_free(job); return 1; }
    self[n] = '\0';
    o.self = self;
    int rc = qp_run(job, &o);
    qp_job_free(job);
    return rc;
}
