/* fuzz_jobfile.c - libFuzzer target: the strict job-file parser (libinih
 * and our checks in src/sched/job.c) on any bytes.
 *
 * The input is written as job.ini in a private folder and loaded. The
 * folder also holds f.py and creds (a "user:password" line) so keys that
 * name files can succeed. Invariants (abort on violation):
 *   - qp_job_load returns 0 with a job, or a negative code with no job and
 *     a message; a QP_EARG message names the file ("job.ini:");
 *   - a loaded job has its required function, absolute paths, and a state
 *     path; freeing it is clean (ASan checks).
 */
#include "qpeach/job.h"
#include "qpeach/value.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64], file[96];

static void put(const char *name, const char *text)
{
    char p[128];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (!f) abort();
    fputs(text, f);
    fclose(f);
}

static void cleanup(void)
{
    char p[128];
    const char *names[] = { "job.ini", "f.py", "creds" };
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/qpfuzz-job-XXXXXX");
        if (!mkdtemp(dir)) abort();
        snprintf(file, sizeof file, "%s/job.ini", dir);
        put("f.py", "def f(t):\n    return t\n");
        put("creds", "alice:s3cret\n");
        atexit(cleanup);
    }
    /* Overwritten in place and cut to size, not opened with O_TRUNC: ext4
     * flushes a file truncated to zero when it is closed, which made each
     * input wait for the disk (300 inputs/s instead of thousands). */
    int fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) abort();
    if (size && write(fd, data, size) != (ssize_t)size) abort();
    if (ftruncate(fd, (off_t)size)) abort();
    close(fd);

    qp_job *job = (qp_job *)1;
    char err[512] = "";
    int rc = qp_job_load(file, &job, err, sizeof err);
    if (rc == 0) {
        if (!job || !job->function.file || !job->function.name || job->function.file[0] != '/' ||
            !job->name || !job->state)
            abort();
        if (job->output && strcmp(job->output, "-") && job->output[0] != '/') abort();
        char *sp = qp_job_state_path(job, "journal");
        if (!sp) abort();
        free(sp);
        qp_job_free(job);
    } else {
        if (job || !err[0]) abort();
        if (rc == QP_EARG && !strstr(err, "job.ini")) {
            fprintf(stderr, "fuzz_jobfile: error without the file name: %s\n", err);
            abort();
        }
    }
    return 0;
}
