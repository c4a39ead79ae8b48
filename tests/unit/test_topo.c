/* test_topo.c - core sets for pinning: core lists ("0-3,6"), PU lists to
 * cores, the cores this process is bound to, and plans inside a set; on
 * synthetic machines (known answers) and on this one (real binding). */
#include "qpeach/topo.h"
#include "qpeach/value.h"

#include "cunit_run.h"
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* pl's cores as "a,b,c" (in a static buffer), for readable asserts. */
static const char *cores_str(const qp_place *pl)
{
    static char b[512];
    size_t n = 0;
    b[0] = 0;
    for (int k = 0; k < pl->ncores && n < sizeof b - 16; k++)
        n += (size_t)snprintf(b + n, sizeof b - n, "%s%d", k ? "," : "", pl->cores[k]);
    return b;
}

static void parses_to(const qp_topo *t, const char *list, const char *want, int node)
{
    qp_place pl;
    char err[256] = "";
    int rc = qp_topo_parse_cores(t, list, &pl, err, sizeof err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc) { fprintf(stderr, "\n  %s: %s\n", list, err); return; }
    CU_ASSERT_STRING_EQUAL(cores_str(&pl), want);
    CU_ASSERT_EQUAL(pl.node, node);
    qp_place_clear(&pl);
    CU_ASSERT_EQUAL(pl.ncores, 0);
    CU_ASSERT_PTR_NULL(pl.cores);
}

/* A refused list: QP_EARG, nothing allocated, and a message with `says`. */
static void refuses(const qp_topo *t, const char *list, const char *says)
{
    qp_place pl;
    char err[256] = "";
    CU_ASSERT_EQUAL(qp_topo_parse_cores(t, list, &pl, err, sizeof err), QP_EARG);
    CU_ASSERT_EQUAL(pl.ncores, 0);
    CU_ASSERT_PTR_NULL(pl.cores);
    if (!strstr(err, says)) fprintf(stderr, "\n  '%s' -> '%s' (want '%s')\n", list, err, says);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, says));
}

static void test_parse_good(void)
{
    qp_topo *t = NULL;
    CU_ASSERT_EQUAL_FATAL(qp_topo_load("node:2 core:4 pu:2", &t), 0);
    parses_to(t, "0", "0", 0);
    parses_to(t, "7", "7", 1);
    parses_to(t, "1-2", "1,2", 0);
    parses_to(t, "4-7", "4,5,6,7", 1);
    parses_to(t, "0-3,6", "0,1,2,3,6", -1);
    parses_to(t, "6,1,1-2,2", "1,2,6", -1);      /* sorted, each once */
    parses_to(t, "0-7", "0,1,2,3,4,5,6,7", -1);
    parses_to(t, "3-3", "3", 0);
    parses_to(t, "007", "7", 1);
    qp_topo_free(t);
    qp_place_clear(NULL);                        /* NULL-safe */
}

static void test_parse_bad(void)
{
    qp_topo *t = NULL;
    CU_ASSERT_EQUAL_FATAL(qp_topo_load("node:2 core:4 pu:2", &t), 0);
    refuses(t, "", "empty");
    refuses(t, NULL, "empty");
    refuses(t, "a", "bad syntax at 'a'");
    refuses(t, "1-", "bad syntax at the end");
    refuses(t, "-1", "bad syntax");
    refuses(t, "+1", "bad syntax");
    refuses(t, "1,,2", "bad syntax at ',2'");
    refuses(t, "1,", "bad syntax at the end");
    refuses(t, " 1", "bad syntax");
    refuses(t, "1 ", "bad syntax at ' '");
    refuses(t, "1-2-3", "bad syntax at '-3'");
    refuses(t, "1;2", "bad syntax");
    refuses(t, "0x1", "bad syntax");
    refuses(t, "3-1", "runs backwards");
    /* out of range: the message names the machine's cores */
    refuses(t, "8", "core 8 is beyond this machine's 8 cores (0-7)");
    refuses(t, "0-8", "core 8 is beyond");
    refuses(t, "2,9", "core 9 is beyond");
    refuses(t, "99999999999999999999", "is beyond");
    qp_topo_free(t);

    CU_ASSERT_EQUAL_FATAL(qp_topo_load("core:1 pu:1", &t), 0);
    refuses(t, "1", "beyond this machine's 1 core (0-0)");
    parses_to(t, "0", "0", 0);
    qp_topo_free(t);
}

static void test_pus_to_cores(void)
{
    qp_topo *t = NULL;
    qp_place pl;
    CU_ASSERT_EQUAL_FATAL(qp_topo_load("node:2 core:4 pu:2", &t), 0);
    /* synthetic PUs are numbered in order: core c holds PUs 2c, 2c+1 */
    CU_ASSERT_EQUAL(qp_topo_pus_cores(t, "1", &pl), 0);
    CU_ASSERT_STRING_EQUAL(cores_str(&pl), "0");
    qp_place_clear(&pl);
    CU_ASSERT_EQUAL(qp_topo_pus_cores(t, "0,3", &pl), 0);    /* part of a core counts */
    CU_ASSERT_STRING_EQUAL(cores_str(&pl), "0,1");
    CU_ASSERT_EQUAL(pl.node, 0);
    qp_place_clear(&pl);
    CU_ASSERT_EQUAL(qp_topo_pus_cores(t, "6-9", &pl), 0);
    CU_ASSERT_STRING_EQUAL(cores_str(&pl), "3,4");
    CU_ASSERT_EQUAL(pl.node, -1);
    qp_place_clear(&pl);
    CU_ASSERT_EQUAL(qp_topo_pus_cores(t, "0-15", &pl), 0);
    CU_ASSERT_EQUAL(pl.ncores, 8);
    qp_place_clear(&pl);
    CU_ASSERT_EQUAL(qp_topo_pus_cores(t, "16-20", &pl), QP_EARG);   /* no PU of this machine */
    CU_ASSERT_EQUAL(qp_topo_pus_cores(t, "x", &pl), QP_EARG);
    CU_ASSERT_EQUAL(qp_topo_pus_cores(t, "1 2", &pl), QP_EARG);
    CU_ASSERT_EQUAL(qp_topo_pus_cores(t, "", &pl), QP_EARG);
    CU_ASSERT_EQUAL(pl.ncores, 0);
    /* A synthetic machine is not this one: its binding cannot be read. */
    CU_ASSERT_EQUAL(qp_topo_bound_cores(t, &pl), -ENOSYS);
    CU_ASSERT_EQUAL(pl.ncores, 0);
    qp_topo_free(t);
}

static void test_plan_in(void)
{
    qp_topo *t = NULL;
    qp_place in;
    qp_plan *p;
    CU_ASSERT_EQUAL_FATAL(qp_topo_load("node:2 core:4 pu:2", &t), 0);
    /* two workers inside {5,6}: distinct cores there, node 1, and no
     * core of the set left for the scheduler */
    CU_ASSERT_EQUAL_FATAL(qp_topo_parse_cores(t, "5-6", &in, NULL, 0), 0);
    CU_ASSERT_EQUAL_FATAL(qp_topo_plan_in(t, &in, 2, 1, &p), 0);
    CU_ASSERT_EQUAL(p->worker[0].cores[0], 5);
    CU_ASSERT_EQUAL(p->worker[1].cores[0], 6);
    CU_ASSERT_EQUAL(p->worker[0].node, 1);
    CU_ASSERT_EQUAL(p->sched.ncores, 0);
    CU_ASSERT_FALSE(p->oversubscribed);
    qp_plan_free(p);
    /* three workers on two cores: wrap around inside the set */
    CU_ASSERT_EQUAL_FATAL(qp_topo_plan_in(t, &in, 3, 1, &p), 0);
    for (int i = 0; i < 3; i++)
        CU_ASSERT(p->worker[i].cores[0] == 5 || p->worker[i].cores[0] == 6);
    CU_ASSERT_NOT_EQUAL(p->worker[0].cores[0], p->worker[1].cores[0]);
    CU_ASSERT_TRUE(p->oversubscribed);
    qp_plan_free(p);
    /* one worker of 4 threads in a set of 2 gets the 2 */
    CU_ASSERT_EQUAL_FATAL(qp_topo_plan_in(t, &in, 1, 4, &p), 0);
    CU_ASSERT_EQUAL(p->worker[0].ncores, 2);
    CU_ASSERT_TRUE(p->oversubscribed);
    qp_plan_free(p);
    qp_place_clear(&in);
    /* a set spanning nodes: one worker per node still, scheduler inside */
    CU_ASSERT_EQUAL_FATAL(qp_topo_parse_cores(t, "2-5", &in, NULL, 0), 0);
    CU_ASSERT_EQUAL_FATAL(qp_topo_plan_in(t, &in, 2, 1, &p), 0);
    CU_ASSERT_NOT_EQUAL(p->worker[0].node, p->worker[1].node);
    CU_ASSERT_EQUAL(p->sched.ncores, 1);
    CU_ASSERT(p->sched.cores[0] >= 2 && p->sched.cores[0] <= 5);
    qp_plan_free(p);
    qp_place_clear(&in);
    /* NULL within: the whole machine, as qp_topo_plan */
    CU_ASSERT_EQUAL_FATAL(qp_topo_plan_in(t, NULL, 8, 1, &p), 0);
    CU_ASSERT_FALSE(p->oversubscribed);
    qp_plan_free(p);
    qp_topo_free(t);
}

/* In a child (binding a whole process must not leak into the other tests):
 * bind to core c, then ask. Exit 0 when the answer is exactly {c}. */
static int bound_in_child(int c)
{
    pid_t pid = fork();
    if (pid == 0) {
        qp_topo *t = NULL;
        if (qp_topo_load(NULL, &t)) _exit(10);
        qp_place one = { .ncores = 1, .cores = &c, .node = -1 }, got;
        if (qp_topo_bind(t, &one, false)) _exit(11);
        if (qp_topo_bound_cores(t, &got)) _exit(12);
        int ok = got.ncores == 1 && got.cores[0] == c;
        qp_place_clear(&got);
        qp_topo_free(t);
        _exit(ok ? 0 : 13);
    }
    int st = -1;
    if (pid < 0 || waitpid(pid, &st, 0) != pid) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + WTERMSIG(st);
}

static void test_machine(void)
{
    qp_topo *t = NULL;
    CU_ASSERT_EQUAL_FATAL(qp_topo_load(NULL, &t), 0);
    int n = qp_topo_cores(t);
    char list[64], err[256];
    qp_place pl, want;
    /* every core, by a range */
    snprintf(list, sizeof list, "0-%d", n - 1);
    CU_ASSERT_EQUAL_FATAL(qp_topo_parse_cores(t, list, &pl, err, sizeof err), 0);
    CU_ASSERT_EQUAL(pl.ncores, n);
    for (int k = 0; k < pl.ncores; k++) CU_ASSERT_EQUAL(pl.cores[k], k);
    qp_place_clear(&pl);
    snprintf(list, sizeof list, "%d", n);
    refuses(t, list, "is beyond this machine's");
    /* The bound cores are the cores of this (one-threaded) process's
     * affinity mask, read independently with sched_getaffinity. */
    cpu_set_t set;
    CU_ASSERT_EQUAL_FATAL(sched_getaffinity(0, sizeof set, &set), 0);
    char pus[4096] = "";
    size_t len = 0;
    for (int i = 0; i < CPU_SETSIZE; i++)
        if (CPU_ISSET(i, &set) && len < sizeof pus - 16)
            len += (size_t)snprintf(pus + len, sizeof pus - len, "%s%d", len ? "," : "", i);
    CU_ASSERT_EQUAL_FATAL(qp_topo_pus_cores(t, pus, &want), 0);
    CU_ASSERT_EQUAL_FATAL(qp_topo_bound_cores(t, &pl), 0);
    CU_ASSERT_STRING_EQUAL(cores_str(&pl), cores_str(&want));
    qp_place_clear(&pl);
    /* bound by us to one core (in a child), the answer is that core */
    for (int k = 0; k < want.ncores && k < 4; k++)
        CU_ASSERT_EQUAL(bound_in_child(want.cores[k]), 0);
    qp_place_clear(&want);
    qp_topo_free(t);
}

static const qp_test tests[] = {
    { "core lists: good ones, ranges, order, duplicates", test_parse_good },
    { "core lists: bad syntax and out of range", test_parse_bad },
    { "PU lists to cores; no binding on a synthetic machine", test_pus_to_cores },
    { "plans inside a core set", test_plan_in },
    { "this machine: lists, bound cores, bound in a child", test_machine },
};

int main(void)
{
    return qp_test_run("topo", NULL, NULL, tests, QP_NTESTS(tests));
}
