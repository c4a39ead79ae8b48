/* qpeach/topo.h - the machine's topology (hwloc) and where qpeach places
 * its threads and worker processes.
 *
 * A placement plan gives N local workers T cores each (one per secondary
 * thread; at least one), plus one core for the scheduler's own thread, on
 * distinct cores while there are enough. With more than one NUMA node the
 * workers are spread round-robin over the nodes and a worker's cores stay
 * inside one node, so its threads share that node's memory. When there are
 * not enough cores the plan wraps around and says so (oversubscribed).
 *
 * Cores are named by their logical index (0..cores-1, as `qpeach topo`
 * prints them), PUs by their OS index (as the kernel and taskset do).
 *
 * Memory rules: qp_topo and qp_plan are owned by the caller and freed with
 * their *_free (NULL-safe). A qp_place the caller filled (parse, bound
 * cores) owns its cores array: empty it with qp_place_clear; a plan's
 * places go with qp_plan_free. Strings returned are malloc'd, caller frees.
 * The topology is read-only after qp_topo_load: threads may share one.
 */
#ifndef QPEACH_TOPO_H
#define QPEACH_TOPO_H

#include <stdbool.h>
#include <stddef.h>

typedef struct qp_topo qp_topo;

/* Loads this machine's topology (synthetic == NULL) or a synthetic one in
 * hwloc's syntax ("node:2 core:4 pu:2"). Returns 0 and *out, or a negative
 * code (QP_EARG for a bad synthetic description). */
int qp_topo_load(const char *synthetic, qp_topo **out);
void qp_topo_free(qp_topo *t);

int qp_topo_cores(const qp_topo *t);   /* cores (a machine without cores: PUs) */
int qp_topo_pus(const qp_topo *t);     /* hardware threads */
int qp_topo_nodes(const qp_topo *t);   /* NUMA nodes (at least 1) */
/* NUMA node of core i (0-based logical index), 0..nodes-1. */
int qp_topo_core_node(const qp_topo *t, int core);
/* The OS indices of core i's PUs as a list "0,4" (malloc'd). */
char *qp_topo_core_pus(const qp_topo *t, int core);

/* A description of the machine, several lines (malloc'd). */
char *qp_topo_describe(const qp_topo *t);

/* One placed thing: a worker process or the scheduler. */
typedef struct qp_place {
    int ncores;            /* cores in cores[] (0: not pinned) */
    int *cores;            /* logical core indices */
    int node;              /* NUMA node of the cores (-1 when not pinned) */
} qp_place;

typedef struct qp_plan {
    int workers;           /* N */
    int threads;           /* T: cores per worker */
    qp_place *worker;      /* [workers] */
    qp_place sched;        /* the scheduler's thread */
    bool oversubscribed;   /* some core holds more than one placed thread */
} qp_plan;

/* Plans N workers of T threads each (T <= 0 counts as 1). Returns 0 and
 * *out, or QP_EARG / QP_ENOMEM. */
int qp_topo_plan(const qp_topo *t, int workers, int threads, qp_plan **out);
/* The same, using only the cores of `within` (borrowed; NULL or no cores:
 * the whole machine), e.g. the cores this process is bound to, so a server
 * pinned by its scheduler keeps its own workers inside its share. The
 * scheduler's place, when free, is also taken from within. */
int qp_topo_plan_in(const qp_topo *t, const qp_place *within, int workers, int threads,
                    qp_plan **out);
void qp_plan_free(qp_plan *p);
/* The plan as text, one line per worker and one for the scheduler. */
char *qp_plan_describe(const qp_topo *t, const qp_plan *p);
/* A place's PUs as a list of OS indices "0-1,4" (malloc'd; "-" if none). */
char *qp_place_pus(const qp_topo *t, const qp_place *pl);

/* Binds the calling process (all its threads, and children it forks
 * later) or only the calling thread to a place's cores. Returns 0, or a
 * negative code (-errno from hwloc). A place with no cores is a no-op. */
int qp_topo_bind(const qp_topo *t, const qp_place *pl, bool thread_only);

/* Frees pl->cores and empties *pl (node -1); NULL-safe. */
void qp_place_clear(qp_place *pl);

/* Parses a core list "0-3,6": comma-separated logical core indices or
 * inclusive ranges, no spaces. Fills *out (cleared first; the caller
 * owns it) with the cores ascending, each once; out->node is their NUMA
 * node, or -1 when they span nodes. Returns 0, or QP_EARG with a message
 * in err for an empty list, bad syntax, a reversed range or a core beyond
 * the machine's; QP_ENOMEM. */
int qp_topo_parse_cores(const qp_topo *t, const char *list, qp_place *out,
                        char *err, size_t errlen);

/* The cores holding at least one of the PUs in `pus`, a list of OS
 * indices "0-1,4" (as qp_topo_core_pus prints). Fills *out as
 * qp_topo_parse_cores does. Returns 0, QP_EARG (bad list, or no PU of
 * this machine in it) or QP_ENOMEM. */
int qp_topo_pus_cores(const qp_topo *t, const char *pus, qp_place *out);

/* The cores the calling process is bound to (hwloc_get_cpubind: its
 * threads' union), as qp_topo_pus_cores maps that PU set; an unbound
 * process gets every core. A worker that `qpeach run` pinned before exec
 * spreads its threads inside this set. Returns 0, or a negative code:
 * -ENOSYS on a synthetic topology (not this machine), -errno from hwloc,
 * QP_ENOMEM. */
int qp_topo_bound_cores(const qp_topo *t, qp_place *out);

#endif
