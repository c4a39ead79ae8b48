/* cmd_topo.c - `qpeach topo [--plan N[xT]]`: the machine as hwloc sees it
 * and where `qpeach run` would place N workers of T threads. */
#include "qpeach/topo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
        "usage: qpeach topo [--plan N[xT]] [--synthetic DESC]\n"
        "\n"
        "Prints the NUMA nodes, cores and PUs (hwloc) and the placement qpeach\n"
        "would use for N local workers with T threads each, plus the scheduler\n"
        "(default plan: one worker per core but one). --synthetic takes an hwloc\n"
        "synthetic description such as \"node:2 core:4 pu:2\" instead of this machine.\n");
}

int qp_cmd_topo(int argc, char **argv)
{
    const char *planarg = NULL, *synth = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return 0; }
        if (!strcmp(argv[i], "--plan") && i + 1 < argc) planarg = argv[++i];
        else if (!strcmp(argv[i], "--synthetic") && i + 1 < argc) synth = argv[++i];
        else { usage(stderr); return 2; }
    }
    qp_topo *t = NULL;
    if (qp_topo_load(synth, &t)) {
        fprintf(stderr, "qpeach topo: cannot load the topology%s%s\n", synth ? ": " : "",
                synth ? synth : "");
        return 1;
    }
    int n = qp_topo_cores(t) > 1 ? qp_topo_cores(t) - 1 : 1, th = 1;
    if (planarg) {
        char *end;
        long a = strtol(planarg, &end, 10), b = 1;
        if (*end == 'x') b = strtol(end + 1, &end, 10);
        if (*end || a < 0 || a > 4096 || b < 1 || b > 1024) {
            fprintf(stderr, "qpeach topo: --plan wants N or NxT, not '%s'\n", planarg);
            qp_topo_free(t);
            return 2;
        }
        n = (int)a;
        th = (int)b;
    }
    char *d = qp_topo_describe(t);
    qp_plan *p = NULL;
    int rc = qp_topo_plan(t, n, th, &p);
    char *pd = rc ? NULL : qp_plan_describe(t, p);
    if (d) fputs(d, stdout);
    if (pd) fputs(pd, stdout);
    free(d);
    free(pd);
    qp_plan_free(p);
    qp_topo_free(t);
    return rc ? 1 : 0;
}
