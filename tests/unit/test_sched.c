/* test_sched.c - the scheduler's pure parts: job files, topology plans,
 * the journal, and a run's own state (its first failure, a worker's error
 * text). Partition planning, merging and output are test_merge.c's. */
#include "qpeach/job.h"
#include "qpeach/journal.h"
#include "qpeach/sched.h"
#include "qpeach/topo.h"
#include "qpeach/value.h"

#include "cunit_run.h"
#include "sched_scratch.h"
#include "sched/run_int.h"
#include <sched.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- job files ---- */

static const char *good_job =
    "[job]\n"
    "name = vwap\n"
    "function = vwap.py:vwap      ; file : function\n"
    "libraries = np=numpy, pd = pandas\n"
    "[input]\n"
    "table = trade\n"
    "file = ../data/trades.csv\n"
    "[partition]\n"
    "by = rows\n"
    "pieces = 16\n"
    "[workers]\n"
    "local = 2\n"
    "servers = localhost:5001, unix:/tmp/w.sock\n"
    "threads = 1\n"
    "keep = 10m\n"
    "user = alice:secret\n"
    "[merge]\n"
    "how = sum-by-key\n"
    "key = sym\n"
    "reducer = vwap.py:finish\n"
    "[output]\n"
    "path = ./out//vwap.csv    ; normalized to <dir>/out/vwap.csv\n"
    "[run]\n"
    "retries = 3\n"
    "task_timeout = 90s\n";

static void test_job_good(void)
{
    char err[512];
    qp_job *j = NULL;
    char *path = write_file("good.ini", good_job);
    CU_ASSERT_EQUAL_FATAL(qp_job_load(path, &j, err, sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(j->name, "vwap");
    CU_ASSERT_STRING_EQUAL(j->function.name, "vwap");
    char want[600];
    snprintf(want, sizeof want, "%s/vwap.py", tmp);
    CU_ASSERT_STRING_EQUAL(j->function.file, want);
    CU_ASSERT_EQUAL(j->nlibs, 2);
    CU_ASSERT_STRING_EQUAL(j->lib_alias[1], "pd");
    CU_ASSERT_STRING_EQUAL(j->lib_module[1], "pandas");
    CU_ASSERT_STRING_EQUAL(j->table, "trade");
    /* "../data" is resolved lexically against the job's folder */
    snprintf(want, sizeof want, "%.*s/data/trades.csv", (int)(strrchr(tmp, '/') - tmp), tmp);
    CU_ASSERT_STRING_EQUAL(j->file, want);
    CU_ASSERT_EQUAL(j->part_by, QP_PART_ROWS);
    CU_ASSERT_EQUAL(j->pieces, 16);
    CU_ASSERT_EQUAL(j->local, 2);
    CU_ASSERT_EQUAL(j->keep_ms, 600000);
    CU_ASSERT_EQUAL(j->nservers, 2);
    CU_ASSERT_STRING_EQUAL(j->servers[1], "unix:/tmp/w.sock");
    CU_ASSERT_STRING_EQUAL(j->user, "alice");
    CU_ASSERT_STRING_EQUAL(j->password, "secret");
    CU_ASSERT_EQUAL(j->merge, QP_MERGE_SUM_BY_KEY);
    CU_ASSERT_EQUAL(j->nkeys, 1);
    CU_ASSERT_STRING_EQUAL(j->reducer.name, "finish");
    snprintf(want, sizeof want, "%s/out/vwap.csv", tmp);
    CU_ASSERT_STRING_EQUAL(j->output, want);
    snprintf(want, sizeof want, "%s/.qpeach", tmp);     /* beside the job file */
    CU_ASSERT_STRING_EQUAL(j->state, want);
    CU_ASSERT_EQUAL(j->retries, 3);
    CU_ASSERT_EQUAL(j->task_timeout_ms, 90000);
    char *jp = qp_job_state_path(j, "journal");
    snprintf(want, sizeof want, "%s/.qpeach/vwap.journal", tmp);
    CU_ASSERT_STRING_EQUAL(jp, want);
    free(jp);
    qp_job_free(j);
    qp_job_free(NULL);
}

static void test_partition_selection(void)
{
    bool in;
    int64_t d0617 = 8203;                      /* 2022.06.17 - 2000.01.01 */
    CU_ASSERT_EQUAL(qp_job_partitions_parse("2022.06.17..2022.06.30", QP_DATE, d0617, &in), 0);
    CU_ASSERT(in);
    CU_ASSERT_EQUAL(qp_job_partitions_parse("2022.06.18..2022.06.30", QP_DATE, d0617, &in), 0);
    CU_ASSERT(!in);
    CU_ASSERT_EQUAL(qp_job_partitions_parse("2022.06.16, 2022.06.17", QP_DATE, d0617, &in), 0);
    CU_ASSERT(in);
    CU_ASSERT_EQUAL(qp_job_partitions_parse("2000.01.01", QP_DATE, 0, &in), 0);
    CU_ASSERT(in);
    CU_ASSERT_EQUAL(qp_job_partitions_parse("1999.12.31", QP_DATE, -1, &in), 0);
    CU_ASSERT(in);
    CU_ASSERT_EQUAL(qp_job_partitions_parse("2022.06", QP_MONTH, 22 * 12 + 5, &in), 0);
    CU_ASSERT(in);
    CU_ASSERT_EQUAL(qp_job_partitions_parse("2015..2016", QP_LONG, 2016, &in), 0);
    CU_ASSERT(in);
    CU_ASSERT_EQUAL(qp_job_partitions_parse("2022.06", QP_DATE, d0617, &in), QP_ETYPE);
    CU_ASSERT_EQUAL(qp_job_partitions_parse("x", 0, 0, NULL), QP_EARG);
    CU_ASSERT_EQUAL(qp_job_partitions_parse("3..1", 0, 0, NULL), QP_EARG);
    CU_ASSERT_EQUAL(qp_job_partitions_parse("1,,2", 0, 0, NULL), QP_EARG);
    /* The items a list names, as spelt, for "no partition X" messages. */
    int type;
    int64_t v;
    char name[32];
    CU_ASSERT_EQUAL(qp_job_partitions_named("2022.06.17 , 2022.06,7", 0, &type, &v, name), 0);
    CU_ASSERT(type == QP_DATE && v == d0617 && !strcmp(name, "2022.06.17"));
    CU_ASSERT_EQUAL(qp_job_partitions_named("2022.06.17 , 2022.06,7", 1, &type, &v, name), 0);
    CU_ASSERT(type == QP_MONTH && v == 22 * 12 + 5 && !strcmp(name, "2022.06"));
    CU_ASSERT_EQUAL(qp_job_partitions_named("2022.06.17 , 2022.06,7", 2, &type, &v, name), 0);
    CU_ASSERT(type == QP_LONG && v == 7 && !strcmp(name, "7"));
    CU_ASSERT_EQUAL(qp_job_partitions_named("2022.06.17 , 2022.06,7", 3, &type, &v, name), QP_EARG);
    CU_ASSERT_EQUAL(qp_job_partitions_named("2015..2016", 0, &type, &v, name), QP_EARG);
}

static void test_job_defaults_and_credentials_file(void)
{
    char err[512];
    qp_job *j = NULL;
    write_file("creds", "bob:pa:ss\n");
    char *path = write_file("min.ini", "[job]\nfunction = f.py:g\n[input]\nfiles = d/*.csv\n"
                                       "[workers]\nservers = :5000\nuser = @creds\n");
    CU_ASSERT_EQUAL_FATAL(qp_job_load(path, &j, err, sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(j->name, "min");
    CU_ASSERT_EQUAL(j->part_by, QP_PART_FILE);
    CU_ASSERT_STRING_EQUAL(j->user, "bob");
    CU_ASSERT_STRING_EQUAL(j->password, "pa:ss");
    CU_ASSERT_STRING_EQUAL(j->output, "-");
    char st[600];
    snprintf(st, sizeof st, "%s/.qpeach", tmp);
    CU_ASSERT_STRING_EQUAL(j->state, st);
    CU_ASSERT_EQUAL(j->retries, 2);
    CU_ASSERT_EQUAL(j->window, 0);            /* auto */
    CU_ASSERT_EQUAL(j->merge, QP_MERGE_CONCAT);
    qp_job_free(j);
}

/* Each bad file and the exact message it must give. */
static void test_job_errors(void)
{
    static const struct { const char *text, *want; } cases[] = {
        { "[job]\nfunction = f.py:g\n[input]\ntable = t\n[partition]\nby = rows\npieces = x\n"
          "[workers]\nlocal = 1\n",
          "bad.ini:7: [partition] pieces: not a positive integer: 'x'" },
        { "[job]\nfunction = f.py:g\n[input]\ntable = t\n[partition]\npieces = 0\n",
          "bad.ini:6: [partition] pieces: not a positive integer: '0'" },
        { "[job]\nfunction = f.py:g\n[input]\ntable = t\n[partition]\nmissing = maybe\n",
          "bad.ini:6: [partition] missing: expected fail or skip: 'maybe'" },
        { "[job]\nfunction = f.py:g\n[input]\ntable = t\n[partition]\nby = partition\n"
          "partitions = 2024.01.02..2024.01.05\nmissing = skip\n[workers]\nlocal = 1\n",
          "bad.ini: [partition] missing is only for a list of partitions (partitions = A, B, C): "
          "a range takes the partitions that exist" },
        { "[job]\nfunction = f.py:g\n[input]\ntable = t\n[partition]\nby = partition\n"
          "missing = fail\n[workers]\nlocal = 1\n",
          "bad.ini: [partition] missing is only for a list of partitions (partitions = A, B, C): "
          "a range takes the partitions that exist" },
        { "[job]\nfunction = f.py:g\ncolour = red\n",
          "bad.ini:3: [job] colour: unknown key (known: name, function, libraries, symbols)" },
        { "[job]\nfunction = f.py:g\n[extra]\n",
          "bad.ini:3: unknown section [extra] (known: job, input, partition, workers, merge, "
          "output, run)" },
        { "name = x\n", "bad.ini:1: name: key before any [section]" },
        { "[job]\nthis line has no equals sign\n",
          "bad.ini:2: expected 'key = value' or '[section]'" },
        { "[job]\nfunction = vwap\n",
          "bad.ini:2: [job] function: expected file.py:function, got 'vwap'" },
        { "[job]\nfunction = f.py:g\nfunction = f.py:h\n",
          "bad.ini:3: [job] function: given twice" },
        { "[job]\nfunction = f.py:g-h\n",
          "bad.ini:2: [job] function: not a Python function name: 'g-h'" },
        { "[job]\nlibraries = numpy=\n",
          "bad.ini:2: [job] libraries: expected alias=module, comma separated: 'numpy='" },
        { "[partition]\nby = hash\n",
          "bad.ini:2: [partition] by: expected rows, column, file or partition: 'hash'" },
        { "[workers]\nlocal = -1\n",
          "bad.ini:2: [workers] local: not a worker count (0..1024): '-1'" },
        { "[workers]\nservers = localhost\n",
          "bad.ini:2: [workers] servers: not an address (host:port, unix:/path): 'localhost'" },
        { "[workers]\nthreads = many\n",
          "bad.ini:2: [workers] threads: not a thread count (0..1024): 'many'" },
        { "[workers]\nuser = @nope\n",
          "bad.ini:2: [workers] user: cannot read credentials file '%T/nope': No such file or directory" },
        { "[merge]\nhow = average\n",
          "bad.ini:2: [merge] how: expected concat, sum, min, max, count, sum-by-key, python "
          "or none: 'average'" },
        { "[output]\npath = out.txt\n",
          "bad.ini:2: [output] path: expected a .csv, .msgpack or .qipc file, or -: 'out.txt'" },
        { "[run]\nretries = lots\n", "bad.ini:2: [run] retries: not a count (0..100): 'lots'" },
        { "[run]\ntask_timeout = soon\n",
          "bad.ini:2: [run] task_timeout: not a duration (e.g. 60s, 500ms, 2m): 'soon'" },
        { "[job]\nname =\n", "bad.ini:2: [job] name: empty value" },
        { "[input]\ntable = t\n", "bad.ini: [job] function: required (file.py:function)" },
        { "[job]\nfunction = f.py:g\n", "bad.ini: [input]: give table, file or files (or db and table)" },
        { "[job]\nfunction = f.py:g\n[input]\ndb = d\n[workers]\nlocal = 1\n",
          "bad.ini: [input] db needs [input] table (a table of the db)" },
        { "[job]\nfunction = f.py:g\n[input]\ndb = d\nfile = a.csv\ntable = t\n",
          "bad.ini: [input]: db excludes file and files" },
        { "[job]\nfunction = f.py:g\n[input]\nfile = a.csv\n[partition]\nby = partition\n",
          "bad.ini: [partition] by = partition needs a kdb+ table ([input] db, or a table servers hold)" },
        { "[job]\nfunction = f.py:g\n[input]\ntable = t\n[partition]\npartitions = 2022.01.01\n",
          "bad.ini: [partition] partitions is only for by = partition" },
        { "[partition]\npartitions = 2022.13.01\n",
          "bad.ini:2: [partition] partitions: expected partitions as A..B or A,B,C (e.g. "
          "2022.06.17..2022.06.30, 2022.06, 7): '2022.13.01'" },
        { "[partition]\npartitions = 2022.01.02..2022.01\n",
          "bad.ini:2: [partition] partitions: expected partitions as A..B or A,B,C (e.g. "
          "2022.06.17..2022.06.30, 2022.06, 7): '2022.01.02..2022.01'" },
        { "[job]\nfunction = f.py:g\n[input]\ntable = t\n",
          "bad.ini: [workers]: give local = N or servers = host:port, ..." },
        { "[job]\nfunction = f.py:g\n[input]\ntable = t\n[partition]\nby = column\n"
          "[workers]\nlocal = 1\n",
          "bad.ini: [partition] by = column needs [partition] column" },
        { "[job]\nfunction = f.py:g\n[input]\ntable = t\n[partition]\nby = file\n"
          "[workers]\nlocal = 1\n",
          "bad.ini: [partition] by = file needs [input] files" },
        { "[job]\nfunction = f.py:g\n[input]\nfile = a.csv\nfiles = *.csv\n[workers]\nlocal = 1\n",
          "bad.ini: [input]: file and files exclude each other" },
        { "[job]\nfunction = f.py:g\n[input]\ntable = t\n[workers]\nlocal = 1\n[merge]\nhow = python\n",
          "bad.ini: [merge] how = python needs [merge] reducer (file.py:function)" },
        { "[job]\nfunction = f.py:g\n[input]\ntable = t\n[partition]\nby = column\ncolumn = s\n"
          "pieces = 3\n[workers]\nlocal = 1\n",
          "bad.ini:8: [partition] pieces: only for by = rows" },
        { "[workers]\nkeep = forever\n",
          "bad.ini:2: [workers] keep: not a duration up to 7 days (e.g. 10m, 90s, 0: not kept): "
          "'forever'" },
        { "[workers]\nkeep = 200h\n",
          "bad.ini:2: [workers] keep: not a duration up to 7 days (e.g. 10m, 90s, 0: not kept): "
          "'200h'" },
        { "[job]\nfunction = f.py:g\n[input]\ntable = t\n[workers]\nservers = h:1\nkeep = 1m\n",
          "bad.ini: [workers] keep is for local workers (servers run on their own)" },
        { "[workers]\nprotocol = q\n",
          "bad.ini:2: [workers] protocol: expected qpeach or pykx: 'q'" },
        { "[job]\nfunction = f.py:g\n[input]\nfile = a.csv\n[workers]\nlocal = 1\nprotocol = pykx\n",
          "bad.ini: [workers] protocol = pykx is for servers (local workers speak qpeach)" },
        { "[job]\nfunction = f.py:g\n[input]\ntable = t\n[workers]\nservers = h:1\nprotocol = pykx\n",
          "bad.ini: [workers] protocol = pykx needs the input here ([input] file, files or db): "
          "a q server selects nothing for us" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char err[512] = "", want[512];
        qp_job *j = (qp_job *)1;
        char *path = write_file("bad.ini", cases[i].text);
        int rc = qp_job_load(path, &j, err, sizeof err);
        CU_ASSERT_EQUAL(rc, QP_EARG);
        CU_ASSERT_PTR_NULL(j);
        const char *t = strstr(cases[i].want, "%T");
        if (t) snprintf(want, sizeof want, "%.*s%s%s", (int)(t - cases[i].want), cases[i].want,
                        tmp, t + 2);
        else snprintf(want, sizeof want, "%s", cases[i].want);
        if (strcmp(err, want)) printf("\ncase %zu:\n got: %s\nwant: %s\n", i, err, want);
        CU_ASSERT_STRING_EQUAL(err, want);
    }
    char err[512];
    qp_job *j;
    CU_ASSERT(qp_job_load("/nonexistent/x.ini", &j, err, sizeof err) < 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot read job file"));
    /* A line too long for the parser is an error, not a silent split. */
    char *big = malloc(6000);
    strcpy(big, "[job]\nname = ");
    memset(big + strlen(big), 'a', 5000);
    strcpy(big + 13 + 5000, "\n");
    char *path = write_file("bad.ini", big);
    free(big);
    CU_ASSERT_EQUAL(qp_job_load(path, &j, err, sizeof err), QP_EARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "bad.ini:2: line longer than"));
}

static void test_durations(void)
{
    int64_t ms;
    CU_ASSERT(!qp_job_parse_duration("60s", &ms) && ms == 60000);
    CU_ASSERT(!qp_job_parse_duration("250ms", &ms) && ms == 250);
    CU_ASSERT(!qp_job_parse_duration("2m", &ms) && ms == 120000);
    CU_ASSERT(!qp_job_parse_duration("1.5", &ms) && ms == 1500);
    CU_ASSERT(!qp_job_parse_duration("1h", &ms) && ms == 3600000);
    CU_ASSERT(qp_job_parse_duration("5 days", &ms) < 0);
    char t[32];
    int64_t texts[] = { 850, 4200, 187000, 7500000 };
    const char *want[] = { "850ms", "4.2s", "3m07s", "2h05m" };
    for (int i = 0; i < 4; i++) {
        qp_job_duration_text(texts[i], t, sizeof t);
        CU_ASSERT_STRING_EQUAL(t, want[i]);
    }
    CU_ASSERT(qp_job_parse_duration("-1s", &ms) < 0);
    CU_ASSERT(qp_job_parse_duration("", &ms) < 0);
    /* A code of the error table, not -1 (which qp_strerror reads as EPERM). */
    CU_ASSERT_EQUAL(qp_job_parse_duration("5 days", &ms), QP_EARG);
    CU_ASSERT_STRING_EQUAL(qp_strerror(qp_job_parse_duration("x", &ms)), "bad argument");
}

/* ---- topology plans ---- */

/* Invariants every plan keeps: each worker gets min(T, cores) distinct
 * valid cores inside one node when the node is big enough; no core is used
 * twice while there are enough; workers balanced over nodes; the scheduler
 * takes a free core when one is left. */
static void check_plan(qp_topo *t, int n, int th)
{
    qp_plan *p = NULL;
    CU_ASSERT_EQUAL_FATAL(qp_topo_plan(t, n, th, &p), 0);
    int cores = qp_topo_cores(t), nodes = qp_topo_nodes(t);
    int per = th < 1 ? 1 : th;
    if (per > cores) per = cores;
    int *use = calloc(cores, sizeof *use), *on_node = calloc(nodes, sizeof *on_node);
    for (int i = 0; i < n; i++) {
        qp_place *w = &p->worker[i];
        CU_ASSERT_EQUAL(w->ncores, per);
        for (int k = 0; k < w->ncores; k++) {
            CU_ASSERT(w->cores[k] >= 0 && w->cores[k] < cores);
            for (int m = 0; m < k; m++) CU_ASSERT(w->cores[m] != w->cores[k]);
            use[w->cores[k]]++;
            if (n * per <= cores && (cores / nodes) % per == 0)
                CU_ASSERT_EQUAL(qp_topo_core_node(t, w->cores[k]), w->node);
        }
        on_node[w->node]++;
    }
    bool fits = n * per <= cores;
    for (int c = 0; c < cores; c++)
        if (fits) CU_ASSERT(use[c] <= 1);
    CU_ASSERT_EQUAL(p->oversubscribed, n * (th < 1 ? 1 : th) > cores);
    if (fits && (cores / nodes) % per == 0) {
        int lo = n, hi = 0;
        for (int m = 0; m < nodes; m++) {
            if (on_node[m] < lo) lo = on_node[m];
            if (on_node[m] > hi) hi = on_node[m];
        }
        CU_ASSERT(hi - lo <= 1);
    }
    if (n * per < cores) {
        CU_ASSERT_EQUAL(p->sched.ncores, 1);
        CU_ASSERT_EQUAL(use[p->sched.cores[0]], 0);
    } else {
        CU_ASSERT_EQUAL(p->sched.ncores, 0);
    }
    char *d = qp_plan_describe(t, p);
    CU_ASSERT_PTR_NOT_NULL(strstr(d, "worker 0") ? d : (n ? NULL : d));
    free(d);
    free(use);
    free(on_node);
    qp_plan_free(p);
}

static void test_topo_machine(void)
{
    qp_topo *t = NULL;
    CU_ASSERT_EQUAL_FATAL(qp_topo_load(NULL, &t), 0);
    CU_ASSERT(qp_topo_cores(t) >= 1);
    CU_ASSERT(qp_topo_pus(t) >= qp_topo_cores(t));
    CU_ASSERT(qp_topo_nodes(t) >= 1);
    char *d = qp_topo_describe(t);
    CU_ASSERT_PTR_NOT_NULL(strstr(d, "machine:"));
    free(d);
    for (int n = 0; n <= 4; n++)
        for (int th = 0; th <= 3; th++) check_plan(t, n, th);
    /* Binding this thread to worker 0's core really changes the affinity. */
    qp_plan *p;
    CU_ASSERT_EQUAL_FATAL(qp_topo_plan(t, 1, 1, &p), 0);
    CU_ASSERT_EQUAL(qp_topo_bind(t, &p->worker[0], true), 0);
    cpu_set_t set;
    CU_ASSERT_EQUAL(sched_getaffinity(0, sizeof set, &set), 0);
    CU_ASSERT_EQUAL(CPU_COUNT(&set), qp_topo_pus(t) / qp_topo_cores(t));
    /* And back to everything, for the tests that follow. */
    CPU_ZERO(&set);
    for (int i = 0; i < CPU_SETSIZE && i < 1024; i++) CPU_SET(i, &set);
    sched_setaffinity(0, sizeof set, &set);
    qp_plan_free(p);
    qp_topo_free(t);
}

static void test_topo_synthetic(void)
{
    static const char *machines[] = { "node:2 core:4 pu:2", "pack:2 node:2 core:3 pu:1",
                                      "core:1 pu:1", "node:4 core:2 pu:1" };
    for (size_t i = 0; i < sizeof machines / sizeof *machines; i++) {
        qp_topo *t = NULL;
        CU_ASSERT_EQUAL_FATAL(qp_topo_load(machines[i], &t), 0);
        for (int n = 0; n <= 9; n++)
            for (int th = 1; th <= 5; th++) check_plan(t, n, th);
        qp_topo_free(t);
    }
    qp_topo *t = NULL;
    CU_ASSERT_EQUAL_FATAL(qp_topo_load("node:2 core:4 pu:2", &t), 0);
    CU_ASSERT_EQUAL(qp_topo_cores(t), 8);
    CU_ASSERT_EQUAL(qp_topo_pus(t), 16);
    CU_ASSERT_EQUAL(qp_topo_nodes(t), 2);
    /* Two workers land on different nodes; the scheduler on a free core. */
    qp_plan *p;
    CU_ASSERT_EQUAL_FATAL(qp_topo_plan(t, 2, 2, &p), 0);
    CU_ASSERT_NOT_EQUAL(p->worker[0].node, p->worker[1].node);
    char *pus = qp_place_pus(t, &p->worker[0]);
    CU_ASSERT_STRING_EQUAL(pus, "0-3");
    free(pus);
    qp_plan_free(p);
    qp_topo_free(t);
    CU_ASSERT_EQUAL(qp_topo_load("bogus:7", &t), QP_EARG);
}

/* ---- journal ---- */

static void ids_for(qp_journal_id *ids, const char *job, const char *input)
{
    ids[0].what = "job file";
    qp_sha256(job, strlen(job), ids[0].sha);
    ids[1].what = "input";
    qp_sha256(input, strlen(input), ids[1].sha);
}

static void test_journal(void)
{
    char path[512], msg[512];
    snprintf(path, sizeof path, "%s/j.journal", tmp);
    qp_journal_id ids[2];
    ids_for(ids, "job1", "in1");
    qp_journal *j = NULL;
    CU_ASSERT_EQUAL_FATAL(qp_journal_open(path, ids, 2, "plan", 4, NULL, 0, false, &j, msg, sizeof msg), 0);
    CU_ASSERT_EQUAL(qp_journal_state(j), QP_JOURNAL_NEW);
    CU_ASSERT_EQUAL(qp_journal_count(j), 0);
    CU_ASSERT_EQUAL(qp_journal_append(j, 3, "three", 5), 0);
    CU_ASSERT_EQUAL(qp_journal_append(j, 0, "", 0), 0);
    uint8_t big[70000];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)(i * 7);
    CU_ASSERT_EQUAL(qp_journal_append(j, 1ll << 40, big, sizeof big), 0);
    qp_journal_close(j);

    /* Reopen with resume: the records come back, in order. */
    CU_ASSERT_EQUAL_FATAL(qp_journal_open(path, ids, 2, "plan", 4, NULL, 0, true, &j, msg, sizeof msg), 0);
    CU_ASSERT_EQUAL(qp_journal_state(j), QP_JOURNAL_RESUMED);
    CU_ASSERT_STRING_EQUAL(msg, "");
    CU_ASSERT_EQUAL_FATAL(qp_journal_count(j), 3);
    int64_t task;
    const uint8_t *b;
    size_t len;
    qp_journal_record(j, 0, &task, &b, &len);
    CU_ASSERT(task == 3 && len == 5 && !memcmp(b, "three", 5));
    qp_journal_record(j, 1, &task, &b, &len);
    CU_ASSERT(task == 0 && len == 0);
    qp_journal_record(j, 2, &task, &b, &len);
    CU_ASSERT(task == 1ll << 40 && len == sizeof big && !memcmp(b, big, len));
    CU_ASSERT_EQUAL(qp_journal_append(j, 4, "four", 4), 0);
    /* Group commit through the syncer thread: records written between
     * requests, a request with nothing new, then a wait. */
    CU_ASSERT_EQUAL(qp_journal_write(j, 5, "five", 4), 0);
    CU_ASSERT_EQUAL(qp_journal_sync_async(j), 0);
    CU_ASSERT_EQUAL(qp_journal_write(j, 6, "six", 3), 0);
    CU_ASSERT_EQUAL(qp_journal_sync_async(j), 0);
    CU_ASSERT_EQUAL(qp_journal_sync_async(j), 0);
    CU_ASSERT_EQUAL(qp_journal_sync(j), 0);
    qp_journal_close(j);
    CU_ASSERT_EQUAL_FATAL(qp_journal_open(path, ids, 2, "plan", 4, NULL, 0, true, &j, msg, sizeof msg), 0);
    CU_ASSERT_EQUAL(qp_journal_count(j), 6);
    qp_journal_record(j, 5, &task, &b, &len);
    CU_ASSERT(task == 6 && len == 3 && !memcmp(b, "six", 3));
    qp_journal_close(j);        /* then the 4 records the tests below expect */
    CU_ASSERT_EQUAL(truncate(path, 0), 0);
    CU_ASSERT_EQUAL_FATAL(qp_journal_open(path, ids, 2, "plan", 4, NULL, 0, false, &j, msg, sizeof msg), 0);
    CU_ASSERT_EQUAL(qp_journal_append(j, 3, "three", 5), 0);
    CU_ASSERT_EQUAL(qp_journal_append(j, 0, "", 0), 0);
    CU_ASSERT_EQUAL(qp_journal_append(j, 1ll << 40, big, sizeof big), 0);
    CU_ASSERT_EQUAL(qp_journal_append(j, 4, "four", 4), 0);
    qp_journal_close(j);

    /* Tear the last record at every length: the whole ones survive, the
     * torn one is dropped with a note, and appending works after it. */
    struct stat st;
    CU_ASSERT_EQUAL_FATAL(stat(path, &st), 0);
    off_t full = st.st_size;
    for (off_t cut = 1; cut < 1 + 9 + 5 + 4 + 2 + 32; cut++) {
        CU_ASSERT_EQUAL(truncate(path, full - cut), 0);
        CU_ASSERT_EQUAL_FATAL(qp_journal_open(path, ids, 2, "plan", 4, NULL, 0, true, &j, msg, sizeof msg), 0);
        CU_ASSERT_EQUAL(qp_journal_count(j), 3);
        CU_ASSERT_PTR_NOT_NULL(strstr(msg, "dropped a torn last record"));
        CU_ASSERT_EQUAL(qp_journal_append(j, 4, "four", 4), 0);
        qp_journal_close(j);
        CU_ASSERT_EQUAL(stat(path, &st), 0);
        CU_ASSERT_EQUAL(st.st_size, full);
    }

    /* A changed input: started over, and the message says what changed. */
    qp_journal_id ids2[2];
    ids_for(ids2, "job1", "in2");
    CU_ASSERT_EQUAL_FATAL(qp_journal_open(path, ids2, 2, "plan", 4, NULL, 0, true, &j, msg, sizeof msg), 0);
    CU_ASSERT_EQUAL(qp_journal_state(j), QP_JOURNAL_RESTARTED);
    CU_ASSERT_EQUAL(qp_journal_count(j), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "cannot be resumed (input changed): starting over"));
    qp_journal_close(j);
    /* Now the journal is for ids2: the old job file and input both differ
     * from nothing, but a changed plan is named too. */
    CU_ASSERT_EQUAL_FATAL(qp_journal_open(path, ids2, 2, "plan2", 5, NULL, 0, true, &j, msg, sizeof msg), 0);
    CU_ASSERT_EQUAL(qp_journal_state(j), QP_JOURNAL_RESTARTED);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "partition plan changed"));
    qp_journal_close(j);
    ids_for(ids, "job2", "in3");
    CU_ASSERT_EQUAL_FATAL(qp_journal_open(path, ids, 2, "plan2", 5, NULL, 0, true, &j, msg, sizeof msg), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "job file changed, input changed"));
    qp_journal_close(j);
    /* Garbage is not a journal. */
    FILE *f = fopen(path, "w");
    fputs("\xc1garbage", f);
    fclose(f);
    CU_ASSERT_EQUAL_FATAL(qp_journal_open(path, ids, 2, "p", 1, NULL, 0, true, &j, msg, sizeof msg), 0);
    CU_ASSERT_EQUAL(qp_journal_state(j), QP_JOURNAL_RESTARTED);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "header is damaged"));
    qp_journal_close(j);
    qp_journal_close(NULL);

    uint8_t h[32];
    write_file("abc", "abc");
    char p2[512];
    snprintf(p2, sizeof p2, "%s/abc", tmp);
    CU_ASSERT_EQUAL(qp_sha256_file(p2, h), 0);
    CU_ASSERT_EQUAL(h[0], 0xba);
    CU_ASSERT_EQUAL(h[31], 0xad);
}

/* Tasks with identities of their own (a kdb+ partition's files): a
 * record written under another identity than its task has now is not
 * current, the others are; a task without one (zeros) matches records
 * written without one. */
static void test_journal_task_ids(void)
{
    char path[512], msg[512];
    snprintf(path, sizeof path, "%s/t.journal", tmp);
    qp_journal_id ids[2];
    ids_for(ids, "job", "in");
    uint8_t tid[3][32];
    for (int i = 0; i < 3; i++) qp_sha256(&i, sizeof i, tid[i]);
    qp_journal *j = NULL;
    CU_ASSERT_EQUAL_FATAL(qp_journal_open(path, ids, 2, "p", 1, tid, 3, false, &j, msg, sizeof msg), 0);
    for (int i = 0; i < 3; i++) CU_ASSERT_EQUAL(qp_journal_append(j, i, "r", 1), 0);
    qp_journal_close(j);
    memset(tid[1], 7, 32);          /* task 1's partition changed */
    CU_ASSERT_EQUAL_FATAL(qp_journal_open(path, ids, 2, "p", 1, tid, 3, true, &j, msg, sizeof msg), 0);
    CU_ASSERT_EQUAL(qp_journal_state(j), QP_JOURNAL_RESUMED);
    CU_ASSERT_EQUAL_FATAL(qp_journal_count(j), 3);
    CU_ASSERT(qp_journal_current(j, 0) && !qp_journal_current(j, 1) && qp_journal_current(j, 2));
    CU_ASSERT_EQUAL(qp_journal_append(j, 1, "R", 1), 0);      /* run again: current */
    qp_journal_close(j);
    CU_ASSERT_EQUAL_FATAL(qp_journal_open(path, ids, 2, "p", 1, tid, 3, true, &j, msg, sizeof msg), 0);
    CU_ASSERT_EQUAL_FATAL(qp_journal_count(j), 4);
    int64_t task;
    const uint8_t *b;
    size_t len;
    qp_journal_record(j, 3, &task, &b, &len);
    CU_ASSERT(task == 1 && len == 1 && b[0] == 'R' && qp_journal_current(j, 3));
    CU_ASSERT(!qp_journal_current(j, 1));
    qp_journal_close(j);
    /* Without identities now: none of those records is current. */
    CU_ASSERT_EQUAL_FATAL(qp_journal_open(path, ids, 2, "p", 1, NULL, 0, true, &j, msg, sizeof msg), 0);
    CU_ASSERT(!qp_journal_current(j, 0) && !qp_journal_current(j, 3));
    qp_journal_close(j);
    /* A record of two items (no identity) is current for a task without one. */
    FILE *f = fopen(path, "r+b");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(fseek(f, 0, SEEK_END), 0);
    const uint8_t old[] = { 0x92, 0x05, 0xc4, 0x01, 'o' };
    CU_ASSERT_EQUAL(fwrite(old, 1, sizeof old, f), sizeof old);
    fclose(f);
    CU_ASSERT_EQUAL_FATAL(qp_journal_open(path, ids, 2, "p", 1, tid, 3, true, &j, msg, sizeof msg), 0);
    CU_ASSERT_EQUAL_FATAL(qp_journal_count(j), 5);
    qp_journal_record(j, 4, &task, &b, &len);
    CU_ASSERT(task == 5 && len == 1 && b[0] == 'o' && qp_journal_current(j, 4));
    CU_ASSERT_STRING_EQUAL(msg, "");
    qp_journal_close(j);
}


/* A local worker that exits before listening: the error carries the
 * last line it wrote to stderr (why, as `qpeach serve` says it), not only
 * its exit status. The "binary" is a script that fails as serve would. */
static void test_worker_says_why_it_could_not_start(void)
{
    char *self = write_file("fakeserve", "#!/bin/sh\necho starting >&2\n"
                            "echo 'qpeach serve: --db /x: /x: No such file or directory' >&2\nexit 2\n");
    CU_ASSERT_EQUAL_FATAL(chmod(self, 0755), 0);
    qp_job job = { .connect_timeout_ms = 1000 };
    qp__worker w = { .id = 0 };
    char err[512] = "";
    CU_ASSERT_EQUAL_FATAL(qp__worker_spawn(&w, self, tmp, &job, NULL, NULL, err, sizeof err), 0);
    CU_ASSERT_EQUAL(qp__worker_connect(&w, &job, 10000, err, sizeof err), QP_ECLOSED);
    CU_ASSERT_STRING_EQUAL(err, "worker process exited (status 2) before listening: "
                           "qpeach serve: --db /x: /x: No such file or directory");
    CU_ASSERT_EQUAL(w.pid, 0);
}

/* A job from pairs: paths from the folder given, values trimmed as a
 * file's, the file's errors named by the name given. */
static void test_job_from_pairs(void)
{
    const char *kv[] = { "job", "function", "  f.py:g ", "input", "file", "../d.csv",
                         "workers", "local", "2" };
    qp_job *j = NULL;
    char err[256] = "";
    CU_ASSERT_EQUAL_FATAL(qp_job_from_pairs("job", "/srv/x", kv, 3, &j, err, sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(j->function.file, "/srv/x/f.py");
    CU_ASSERT_STRING_EQUAL(j->function.name, "g");
    CU_ASSERT_STRING_EQUAL(j->file, "/srv/d.csv");
    CU_ASSERT_STRING_EQUAL(j->name, "job");
    CU_ASSERT_STRING_EQUAL(j->state, "/srv/x/.qpeach");
    CU_ASSERT_PTR_NULL(j->path);
    uint8_t sha[32];
    memcpy(sha, j->sha, 32);
    qp_job_free(j);
    /* the same pairs from another folder are another job */
    CU_ASSERT_EQUAL_FATAL(qp_job_from_pairs("job", "/srv/y", kv, 3, &j, err, sizeof err), 0);
    CU_ASSERT(memcmp(sha, j->sha, 32) != 0);
    qp_job_free(j);
    const char *bad[] = { "job", "function", "f.py:g", "partition", "pieces", "x" };
    CU_ASSERT_EQUAL(qp_job_from_pairs("job", "/srv", bad, 2, &j, err, sizeof err), QP_EARG);
    CU_ASSERT_STRING_EQUAL(err, "job: [partition] pieces: not a positive integer: 'x'");
    CU_ASSERT_PTR_NULL(j);
    const char *two[] = { "job", "function", "f.py:g\nname = h" };
    CU_ASSERT_EQUAL(qp_job_from_pairs("job", "/srv", two, 1, &j, err, sizeof err), QP_EARG);
    CU_ASSERT_STRING_EQUAL(err, "job: [job] function: a value must be one line");
    const char *twice[] = { "run", "retries", "1", "run", "retries", "2" };
    CU_ASSERT_EQUAL(qp_job_from_pairs("job", "/srv", twice, 2, &j, err, sizeof err), QP_EARG);
    CU_ASSERT_STRING_EQUAL(err, "job: [run] retries: given twice");
    char *n = qp_job_fn_name("f-1.x_Y");
    CU_ASSERT_STRING_EQUAL(n, "f_1_x_Y");
    free(n);
}

/* A run whose error message holds garbage but is not set (code 0). */
static void fresh_run(run *r, const qp_run_opts *o)
{
    *r = (run){ .o = o, .log = stderr, .mode = QP_LOG_QUIET, .error = { .task = -1 } };
    memset(r->error.message, 'x', sizeof r->error.message - 1);
}

/* Regression: when the plan could not be encoded or the journal's path
 * not be made, qp_run reported an uninitialised message buffer as the
 * failure. The failure now names the cause. */
static void test_journal_begin_failure(void)
{
    qp_run_opts o = { 0 };
    static run r;
    qp_journal_id ids[3] = { { 0 } };
    fresh_run(&r, &o);
    CU_ASSERT_EQUAL(qp__journal_begin(&r, "/nonexistent/j", QP_ETOOBIG, NULL, 0, ids, NULL), QP_RUN_FAILED);
    CU_ASSERT_STRING_EQUAL(r.error.message, "journal: cannot encode the plan: message larger than the limit");
    CU_ASSERT_PTR_NULL(r.journal);
    fresh_run(&r, &o);
    CU_ASSERT_EQUAL(qp__journal_begin(&r, NULL, 0, (const uint8_t *)"", 0, ids, NULL), QP_RUN_FAILED);
    CU_ASSERT_STRING_EQUAL(r.error.message, "journal: out of memory");
    /* A journal that cannot be created: qp_journal_open's own message. */
    char path[512];
    snprintf(path, sizeof path, "%s/nodir/j.journal", tmp);
    fresh_run(&r, &o);
    CU_ASSERT_EQUAL(qp__journal_begin(&r, path, 0, (const uint8_t *)"", 0, ids, NULL), QP_RUN_FAILED);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.error.message, "nodir/j.journal"));
    CU_ASSERT_PTR_NULL(r.journal);
}

/* The first failure sticks: a later one is not put in its place (it used
 * to be: the last writer won), context goes before it, and the remote
 * parts of a later failure do not mix into the first's. */
static void test_first_failure_sticks(void)
{
    qp_run_opts o = { 0 };
    static run r;
    fresh_run(&r, &o);
    qp__worker w1 = { .addr = "unix:/w1", .proto = &qp__proto_qpeach };
    qp__worker w2 = { .addr = "unix:/w2", .proto = &qp__proto_qpeach };
    CU_ASSERT(!qp__failed(&r));
    qp__fail_context(&r, "merge: ");              /* nothing set: nothing to add to */
    CU_ASSERT(!qp__failed(&r));
    qp__fail_remote(&r, &w1, "KeyError: 'x'\nTraceback (last frames):\n  File \"f\", line 1");
    qp__fail(&r, "task 3 (rows 3-4) failed on %s: KeyError: 'x'", w1.addr);
    CU_ASSERT(qp__failed(&r));
    CU_ASSERT_EQUAL(r.error.code, QP_RUN_FAILED);
    qp__fail_remote(&r, &w2, "ValueError: second");
    qp__fail(&r, "no worker left");
    CU_ASSERT_STRING_EQUAL(r.error.message, "task 3 (rows 3-4) failed on unix:/w1: KeyError: 'x'");
    CU_ASSERT_STRING_EQUAL(r.error.worker, "unix:/w1");
    CU_ASSERT_STRING_EQUAL(r.error.remote.type, "KeyError");
    CU_ASSERT_STRING_EQUAL(r.error.remote.message, "'x'");
    CU_ASSERT_STRING_EQUAL(r.error.remote.traceback, "  File \"f\", line 1");
    qp__fail_context(&r, "merge: reducer %s: ", "f");
    CU_ASSERT_STRING_EQUAL(r.error.message,
                           "merge: reducer f: task 3 (rows 3-4) failed on unix:/w1: KeyError: 'x'");
}

/* What qp_remote_error_parse makes of the texts workers send (as
 * src/py/py.c's format_exc writes them) and of others. */
static void test_remote_error_parse(void)
{
    static const struct { const char *text, *type, *message, *traceback; } cases[] = {
        { "ZeroDivisionError: three\nTraceback (last frames):\n  File \"<qpeach:f>\", line 3, "
          "in f\n    raise ZeroDivisionError(\"three\")",
          "ZeroDivisionError", "three",
          "  File \"<qpeach:f>\", line 3, in f\n    raise ZeroDivisionError(\"three\")" },
        /* a class defined in a function, a message over two lines */
        { "g.g.<locals>.Weird: multi\nline\nTraceback (last frames):\n  File \"x\", line 7",
          "g.g.<locals>.Weird", "multi\nline", "  File \"x\", line 7" },
        { "KeyError", "KeyError", "", "" },                  /* no message */
        { "StopIteration\nTraceback (last frames):\n  F", "StopIteration", "", "  F" },
        { "mymod.MyError: a: b", "mymod.MyError", "a: b", "" },
        /* a SyntaxError's location first */
        { "File \"<qpeach:f>\", line 2\n    x = (\n        ^\nSyntaxError: '(' was never closed",
          "SyntaxError", "'(' was never closed", "File \"<qpeach:f>\", line 2\n    x = (\n        ^\n" },
        /* qpeach's own errors, q's: no type */
        { "timeout: f: call exceeded the timeout of 100 ms", "",
          "timeout: f: call exceeded the timeout of 100 ms", "" },
        { "qp.import: cannot import module 'nope' (alias 'n'): ModuleNotFoundError: x", "",
          "qp.import: cannot import module 'nope' (alias 'n'): ModuleNotFoundError: x", "" },
        { "type", "", "type", "" },
        { "'name", "", "'name", "" },
        { "timed out after 500 ms", "", "timed out after 500 ms", "" },
        { "Error:no space", "", "Error:no space", "" },
        { "", "", "", "" },
    };
    qp_remote_error e;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        qp_remote_error_parse(cases[i].text, &e);
        CU_ASSERT_STRING_EQUAL(e.type, cases[i].type);
        CU_ASSERT_STRING_EQUAL(e.message, cases[i].message);
        CU_ASSERT_STRING_EQUAL(e.traceback, cases[i].traceback);
    }
    qp_remote_error_parse(NULL, &e);
    CU_ASSERT_STRING_EQUAL(e.type, "");
    CU_ASSERT_STRING_EQUAL(e.message, "");
    /* PyKX's servers: repr(exception), no frames */
    static const struct { const char *text, *type, *message; } pykx[] = {
        { "ZeroDivisionError('division by zero')", "ZeroDivisionError", "division by zero" },
        { "KeyError(\"it's\")", "KeyError", "it's" },
        { "ValueError('a', 1)", "ValueError", "'a', 1" },
        { "Exception()", "Exception", "" },
        { "'type", "", "'type" },
        { "Failed to load library 'x' with alias 'y'", "", "Failed to load library 'x' with alias 'y'" },
    };
    for (size_t i = 0; i < sizeof pykx / sizeof *pykx; i++) {
        qp__proto_pykx.remote_error(pykx[i].text, &e);
        CU_ASSERT_STRING_EQUAL(e.type, pykx[i].type);
        CU_ASSERT_STRING_EQUAL(e.message, pykx[i].message);
        CU_ASSERT_STRING_EQUAL(e.traceback, "");
    }
}

int main(void)
{
    static const qp_test tests[] = {
        {"job file", test_job_good},
        {"job defaults, credentials file", test_job_defaults_and_credentials_file},
        {"job file errors", test_job_errors},
        {"durations", test_durations},
        {"topology: this machine", test_topo_machine},
        {"topology: synthetic", test_topo_synthetic},
        {"journal", test_journal},
        {"journal: tasks with identities of their own", test_journal_task_ids},
        {"a worker that cannot start says why", test_worker_says_why_it_could_not_start},
        {"journal failures name their cause", test_journal_begin_failure},
        {"a job from pairs", test_job_from_pairs},
        {"the first failure of a run sticks", test_first_failure_sticks},
        {"a worker's error text read as a Python exception", test_remote_error_parse},
        {"partitions = A..B / A,B", test_partition_selection},
    };
    int fails = qp_test_run("sched", suite_init, suite_clean, tests, QP_NTESTS(tests));
    return fails;
}
