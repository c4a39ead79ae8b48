/* partspec.c - [partition] partitions = A..B or A,B,C (job.h): the
 * kdb+ partitions a job selects, each named as its folder is (a date, a
 * month or an integer). Apart from job.c, which checks the syntax when
 * it reads the key, because the planner (prepare.c) asks it again for
 * every partition the workers hold. */
#include "qpeach/job.h"
#include "qpeach/kdb.h"
#include "qpeach/value.h"

#include <stdio.h>
#include <string.h>

/* One partition, named as its folder is (qp_kdb_part_name). */
static int part_token(const char *s, size_t n, int *type, int64_t *v)
{
    char buf[32];
    if (n == 0 || n >= sizeof buf) return QP_EARG;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return (*type = qp_kdb_part_name(buf, v)) ? 0 : QP_EARG;
}

/* The next item of a list spec from *p: its type and value, and its text
 * in name (when not NULL; 32 bytes); *p moves past it (NULL after the
 * last). 0 or QP_EARG. */
static int next_item(const char **p, int *type, int64_t *v, char *name)
{
    const char *s = *p, *comma = strchr(s, ',');
    size_t n = comma ? (size_t)(comma - s) : strlen(s);
    while (n && *s == ' ') { s++; n--; }
    while (n && s[n - 1] == ' ') n--;
    *p = comma ? comma + 1 : NULL;
    int rc = part_token(s, n, type, v);
    if (!rc && name) snprintf(name, 32, "%.*s", (int)n, s);
    return rc;
}

int qp_job_partitions_named(const char *spec, int64_t i, int *type, int64_t *v, char name[32])
{
    if (strstr(spec, "..")) return QP_EARG;
    for (const char *p = spec; p; i--) {
        if (next_item(&p, type, v, name)) return QP_EARG;
        if (i == 0) return 0;
    }
    return QP_EARG;
}

int qp_job_partitions_parse(const char *spec, int type, int64_t value, bool *in)
{
    if (in) *in = false;
    const char *range = strstr(spec, "..");
    int t1, t2;
    int64_t lo, hi;
    if (range) {
        if (part_token(spec, (size_t)(range - spec), &t1, &lo)
            || part_token(range + 2, strlen(range + 2), &t2, &hi) || t1 != t2 || lo > hi)
            return QP_EARG;
        if (!in) return 0;
        if (t1 != type) return QP_ETYPE;
        *in = value >= lo && value <= hi;
        return 0;
    }
    for (const char *p = spec; p;) {
        if (next_item(&p, &t1, &lo, NULL)) return QP_EARG;
        if (in && t1 != type) return QP_ETYPE;
        if (in && lo == value) *in = true;
    }
    return 0;
}
