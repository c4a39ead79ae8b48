/* src/core/topo.c - hwloc topology, placement plans and binding. It sits in
 * core (it needs only hwloc and value.h) so the server, its -s -N worker
 * processes and the scheduler all place threads and processes the same way. */
#include "qpeach/topo.h"
#include "qpeach/value.h"

#include <errno.h>
#include <hwloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct qp_topo {
    hwloc_topology_t h;
    int ncores;            /* cores, or PUs on a machine hwloc shows no cores for */
    hwloc_obj_type_t core_type;
    int npus;
    int nnodes;
    int *core_node;        /* [ncores] NUMA node of each core */
};

int qp_topo_load(const char *synthetic, qp_topo **out)
{
    *out = NULL;
    qp_topo *t = calloc(1, sizeof *t);
    if (!t) return QP_ENOMEM;
    int rc = QP_ENOMEM;
    /* Cores and NUMA nodes are all we ask; hwloc's I/O plugins (PCI,
     * OpenCL, GL, libxml) would each be dlopen'd with their libraries at
     * every init: ~50 ms of every `qpeach run`. The user's setting wins. */
    setenv("HWLOC_PLUGINS_BLACKLIST", "hwloc_pci,hwloc_opencl,hwloc_gl,hwloc_xml_libxml,hwloc_cuda,"
           "hwloc_nvml,hwloc_rsmi,hwloc_levelzero", 0);      /* hwloc 2.9 spells it so */
    if (hwloc_topology_init(&t->h)) { free(t); return QP_ENOMEM; }
    if (synthetic && hwloc_topology_set_synthetic(t->h, synthetic)) { rc = QP_EARG; goto fail; }
    if (hwloc_topology_load(t->h)) { rc = -(errno ? errno : EINVAL); goto fail; }
    t->core_type = HWLOC_OBJ_CORE;
    t->ncores = hwloc_get_nbobjs_by_type(t->h, HWLOC_OBJ_CORE);
    if (t->ncores <= 0) {
        t->core_type = HWLOC_OBJ_PU;
        t->ncores = hwloc_get_nbobjs_by_type(t->h, HWLOC_OBJ_PU);
    }
    t->npus = hwloc_get_nbobjs_by_type(t->h, HWLOC_OBJ_PU);
    t->nnodes = hwloc_get_nbobjs_by_type(t->h, HWLOC_OBJ_NUMANODE);
    if (t->nnodes < 1) t->nnodes = 1;
    if (t->ncores < 1) { rc = QP_EARG; goto fail; }
    t->core_node = calloc(t->ncores, sizeof *t->core_node);
    if (!t->core_node) goto fail;
    for (int c = 0; c < t->ncores; c++) {
        hwloc_obj_t core = hwloc_get_obj_by_type(t->h, t->core_type, c);
        for (int n = 0; n < t->nnodes; n++) {
            hwloc_obj_t node = hwloc_get_obj_by_type(t->h, HWLOC_OBJ_NUMANODE, n);
            if (node && core && hwloc_bitmap_isincluded(core->cpuset, node->cpuset)) {
                t->core_node[c] = n;
                break;
            }
        }
    }
    *out = t;
    return 0;
fail:
    hwloc_topology_destroy(t->h);
    free(t->core_node);
    free(t);
    return rc;
}

void qp_topo_free(qp_topo *t)
{
    if (!t) return;
    hwloc_topology_destroy(t->h);
    free(t->core_node);
    free(t);
}

int qp_topo_cores(const qp_topo *t) { return t->ncores; }
int qp_topo_pus(const qp_topo *t) { return t->npus; }
int qp_topo_nodes(const qp_topo *t) { return t->nnodes; }

int qp_topo_core_node(const qp_topo *t, int core)
{
    return core >= 0 && core < t->ncores ? t->core_node[core] : -1;
}

static char *bitmap_list(hwloc_const_bitmap_t set)
{
    char *s = NULL;
    if (hwloc_bitmap_iszero(set)) return strdup("-");
    if (hwloc_bitmap_list_asprintf(&s, set) < 0) return NULL;
    return s;
}

char *qp_topo_core_pus(const qp_topo *t, int core)
{
    hwloc_obj_t o = hwloc_get_obj_by_type(t->h, t->core_type, core);
    return o ? bitmap_list(o->cpuset) : strdup("-");
}

/* ---- text building ---- */

typedef struct sbuf { char *s; size_t n, cap; bool oom; } sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (n < 0) { b->oom = true; return; }
        if (b->s && b->n + (size_t)n < b->cap) { b->n += (size_t)n; return; }
        size_t cap = (b->cap + (size_t)n + 64) * 2;
        char *s = realloc(b->s, cap);
        if (!s) { b->oom = true; return; }
        b->s = s;
        b->cap = cap;
    }
}

static char *sb_done(sbuf *b)
{
    if (b->oom) { free(b->s); return NULL; }
    if (!b->s) return strdup("");
    return b->s;
}

char *qp_topo_describe(const qp_topo *t)
{
    sbuf b = {0};
    hwloc_obj_t root = hwloc_get_root_obj(t->h);
    sb_printf(&b, "machine: %d NUMA node%s, %d core%s, %d PU%s\n", t->nnodes,
              t->nnodes == 1 ? "" : "s", t->ncores, t->ncores == 1 ? "" : "s",
              t->npus, t->npus == 1 ? "" : "s");
    (void)root;
    for (int n = 0; n < t->nnodes; n++) {
        hwloc_obj_t node = hwloc_get_obj_by_type(t->h, HWLOC_OBJ_NUMANODE, n);
        int first = -1, count = 0;
        for (int c = 0; c < t->ncores; c++)
            if (t->core_node[c] == n) { if (first < 0) first = c; count++; }
        char *pus = node ? bitmap_list(node->cpuset) : strdup("-");
        unsigned long long mb = node ? (unsigned long long)(node->attr->numanode.local_memory >> 20) : 0;
        sb_printf(&b, "  node %d: %d core%s (cores %d-%d), PUs %s, %llu MB\n", n, count,
                  count == 1 ? "" : "s", first, first + count - 1, pus ? pus : "?", mb);
        free(pus);
    }
    for (int c = 0; c < t->ncores; c++) {
        char *pus = qp_topo_core_pus(t, c);
        sb_printf(&b, "  core %d: node %d, PUs %s\n", c, t->core_node[c], pus ? pus : "?");
        free(pus);
    }
    return sb_done(&b);
}

/* ---- placement ---- */

void qp_plan_free(qp_plan *p)
{
    if (!p) return;
    if (p->worker)
        for (int i = 0; i < p->workers; i++) free(p->worker[i].cores);
    free(p->worker);
    free(p->sched.cores);
    free(p);
}

/* Free cores (load 0) on node n among the allowed ones. */
static int node_free(const qp_topo *t, const int *load, const bool *ok, int n)
{
    int k = 0;
    for (int c = 0; c < t->ncores; c++)
        if (ok[c] && t->core_node[c] == n && load[c] == 0) k++;
    return k;
}

/* The core to take next among the allowed ones: the least loaded
 * (distinct cores come first), then one on node n, then the lowest index. */
static int pick_core(const qp_topo *t, const int *load, const bool *ok, const bool *taken, int n)
{
    int best = -1;
    for (int c = 0; c < t->ncores; c++) {
        if (!ok[c] || taken[c]) continue;
        if (best < 0 || load[c] < load[best]
            || (load[c] == load[best] && t->core_node[c] == n && t->core_node[best] != n))
            best = c;
    }
    return best;
}

int qp_topo_plan(const qp_topo *t, int workers, int threads, qp_plan **out)
{
    return qp_topo_plan_in(t, NULL, workers, threads, out);
}

int qp_topo_plan_in(const qp_topo *t, const qp_place *within, int workers, int threads,
                    qp_plan **out)
{
    *out = NULL;
    if (workers < 0 || workers > 4096) return QP_EARG;
    if (threads < 1) threads = 1;
    qp_plan *p = calloc(1, sizeof *p);
    int *load = calloc(t->ncores, sizeof *load);
    bool *taken = calloc(t->ncores, sizeof *taken);
    bool *ok = calloc(t->ncores, sizeof *ok);
    if (!p || !load || !taken || !ok) goto oom;
    int nok = 0;
    if (within && within->ncores > 0) {
        for (int k = 0; k < within->ncores; k++) {
            int c = within->cores[k];
            if (c >= 0 && c < t->ncores && !ok[c]) { ok[c] = true; nok++; }
        }
    }
    if (nok == 0) {        /* no set (or none of it on this machine): all */
        for (int c = 0; c < t->ncores; c++) ok[c] = true;
        nok = t->ncores;
    }
    p->workers = workers;
    p->threads = threads;
    p->worker = calloc(workers ? workers : 1, sizeof *p->worker);
    if (!p->worker) goto oom;
    int per = threads < nok ? threads : nok;
    for (int i = 0; i < workers; i++) {
        /* Node: round-robin, unless that node cannot hold the worker and
         * another one can; then the node with the most free cores. */
        int n = i % t->nnodes;
        if (node_free(t, load, ok, n) < per) {
            int best = n;
            for (int m = 0; m < t->nnodes; m++)
                if (node_free(t, load, ok, m) > node_free(t, load, ok, best)) best = m;
            n = best;
        }
        qp_place *pl = &p->worker[i];
        pl->cores = calloc(per, sizeof *pl->cores);
        if (!pl->cores) goto oom;
        memset(taken, 0, t->ncores * sizeof *taken);
        for (int k = 0; k < per; k++) {
            int c = pick_core(t, load, ok, taken, n);
            taken[c] = true;
            load[c]++;
            pl->cores[pl->ncores++] = c;
        }
        pl->node = t->core_node[pl->cores[0]];
    }
    /* The scheduler: a free core if one is left (the last one, away from
     * the workers), else unpinned: it mostly sleeps in poll(), and the OS
     * places it better than a fixed share of a worker's core would. */
    p->sched.node = -1;
    for (int c = t->ncores - 1; c >= 0; c--)
        if (ok[c] && load[c] == 0) {
            p->sched.cores = malloc(sizeof *p->sched.cores);
            if (!p->sched.cores) goto oom;
            p->sched.cores[0] = c;
            p->sched.ncores = 1;
            p->sched.node = t->core_node[c];
            break;
        }
    for (int c = 0; c < t->ncores; c++)
        if (load[c] > 1) p->oversubscribed = true;
    if (workers * threads > nok) p->oversubscribed = true;
    free(load);
    free(taken);
    free(ok);
    *out = p;
    return 0;
oom:
    free(load);
    free(taken);
    free(ok);
    qp_plan_free(p);
    return QP_ENOMEM;
}

static hwloc_bitmap_t place_set(const qp_topo *t, const qp_place *pl)
{
    hwloc_bitmap_t set = hwloc_bitmap_alloc();
    if (!set) return NULL;
    for (int k = 0; k < pl->ncores; k++) {
        hwloc_obj_t o = hwloc_get_obj_by_type(t->h, t->core_type, pl->cores[k]);
        if (o) hwloc_bitmap_or(set, set, o->cpuset);
    }
    return set;
}

char *qp_place_pus(const qp_topo *t, const qp_place *pl)
{
    hwloc_bitmap_t set = place_set(t, pl);
    if (!set) return NULL;
    char *s = bitmap_list(set);
    hwloc_bitmap_free(set);
    return s;
}

char *qp_plan_describe(const qp_topo *t, const qp_plan *p)
{
    sbuf b = {0};
    sb_printf(&b, "plan: %d worker%s x %d thread%s%s\n", p->workers, p->workers == 1 ? "" : "s",
              p->threads, p->threads == 1 ? "" : "s",
              p->oversubscribed ? " (oversubscribed: more threads than cores)" : "");
    for (int i = 0; i < p->workers; i++) {
        char *pus = qp_place_pus(t, &p->worker[i]);
        sb_printf(&b, "  worker %d: node %d, core%s ", i, p->worker[i].node,
                  p->worker[i].ncores == 1 ? "" : "s");
        for (int k = 0; k < p->worker[i].ncores; k++)
            sb_printf(&b, "%s%d", k ? "," : "", p->worker[i].cores[k]);
        sb_printf(&b, ", PUs %s\n", pus ? pus : "?");
        free(pus);
    }
    if (p->sched.ncores) {
        char *pus = qp_place_pus(t, &p->sched);
        sb_printf(&b, "  scheduler: node %d, core %d, PUs %s\n", p->sched.node,
                  p->sched.cores[0], pus ? pus : "?");
        free(pus);
    } else {
        sb_printf(&b, "  scheduler: not pinned (no free core)\n");
    }
    return sb_done(&b);
}

int qp_topo_bind(const qp_topo *t, const qp_place *pl, bool thread_only)
{
    if (!pl || pl->ncores == 0) return 0;
    hwloc_bitmap_t set = place_set(t, pl);
    if (!set) return QP_ENOMEM;
    int rc = hwloc_set_cpubind(t->h, set, thread_only ? HWLOC_CPUBIND_THREAD
                                                       : HWLOC_CPUBIND_PROCESS);
    int e = errno;
    hwloc_bitmap_free(set);
    return rc ? -(e ? e : EINVAL) : 0;
}

/* ---- core sets: parsing, PUs to cores, the process's binding ---- */

void qp_place_clear(qp_place *pl)
{
    if (!pl) return;
    free(pl->cores);
    pl->cores = NULL;
    pl->ncores = 0;
    pl->node = -1;
}

/* *out from a membership array [ncores]: ascending, node or -1. */
static int place_from(const qp_topo *t, const bool *in, qp_place *out)
{
    int n = 0;
    for (int c = 0; c < t->ncores; c++) n += in[c];
    if (n == 0) return QP_EARG;
    if (!(out->cores = malloc((size_t)n * sizeof *out->cores))) return QP_ENOMEM;
    for (int c = 0; c < t->ncores; c++)
        if (in[c]) out->cores[out->ncores++] = c;
    out->node = t->core_node[out->cores[0]];
    for (int k = 1; k < n; k++)
        if (t->core_node[out->cores[k]] != out->node) out->node = -1;
    return 0;
}

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* One decimal index at *s (digits only, no sign); advances *s. */
static bool parse_index(const char **s, long *out)
{
    const char *p = *s;
    long v = 0;
    if (*p < '0' || *p > '9') return false;
    for (; *p >= '0' && *p <= '9'; p++)
        if (v <= 1000000) v = v * 10 + (*p - '0');  /* saturates: out of range */
    *s = p;
    *out = v;
    return true;
}

int qp_topo_parse_cores(const qp_topo *t, const char *list, qp_place *out,
                        char *err, size_t errlen)
{
    *out = (qp_place){ .node = -1 };
    if (!list || !*list) {
        seterr(err, errlen, "empty core list (want e.g. 0-3,6)");
        return QP_EARG;
    }
    bool *in = calloc(t->ncores, sizeof *in);
    if (!in) return QP_ENOMEM;
    int rc = QP_EARG;
    const char *s = list;
    for (;;) {
        long lo, hi;
        if (!parse_index(&s, &lo)) goto bad;
        hi = lo;
        if (*s == '-') {
            s++;
            if (!parse_index(&s, &hi)) goto bad;
            if (hi < lo) {
                seterr(err, errlen, "core list '%s': range %ld-%ld runs backwards", list, lo, hi);
                goto fail;
            }
        }
        if (*s && *s != ',') goto bad;
        if (hi >= t->ncores) {
            seterr(err, errlen, "core list '%s': core %ld is beyond this machine's %d core%s (0-%d)",
                   list, hi, t->ncores, t->ncores == 1 ? "" : "s", t->ncores - 1);
            goto fail;
        }
        for (long c = lo; c <= hi; c++) in[c] = true;
        if (!*s) break;
        s++;                   /* the comma: another item must follow */
    }
    rc = place_from(t, in, out);
    free(in);
    return rc;
bad:
    seterr(err, errlen, "core list '%s': bad syntax at %s%s%s (want logical core "
           "indices and ranges, e.g. 0-3,6)", list, *s ? "'" : "the end", s, *s ? "'" : "");
fail:
    free(in);
    return rc;
}

/* The cores whose PUs meet `set`. */
static int set_cores(const qp_topo *t, hwloc_const_bitmap_t set, qp_place *out)
{
    *out = (qp_place){ .node = -1 };
    bool *in = calloc(t->ncores, sizeof *in);
    if (!in) return QP_ENOMEM;
    for (int c = 0; c < t->ncores; c++) {
        hwloc_obj_t o = hwloc_get_obj_by_type(t->h, t->core_type, c);
        in[c] = o && hwloc_bitmap_intersects(o->cpuset, set);
    }
    int rc = place_from(t, in, out);
    free(in);
    return rc;
}

int qp_topo_pus_cores(const qp_topo *t, const char *pus, qp_place *out)
{
    *out = (qp_place){ .node = -1 };
    /* hwloc's list parser accepts what it prints ("0-1,4") but also
     * stops quietly at junk: check the characters first. */
    if (!pus || !*pus || strspn(pus, "0123456789,-") != strlen(pus)) return QP_EARG;
    hwloc_bitmap_t set = hwloc_bitmap_alloc();
    if (!set) return QP_ENOMEM;
    int rc = hwloc_bitmap_list_sscanf(set, pus) < 0 ? QP_EARG : set_cores(t, set, out);
    hwloc_bitmap_free(set);
    return rc;
}

int qp_topo_bound_cores(const qp_topo *t, qp_place *out)
{
    *out = (qp_place){ .node = -1 };
    /* Only a topology of this very machine can read its binding: hwloc
     * answers ENOSYS for a synthetic one, and we say the same rather than
     * guess. */
    if (!hwloc_topology_is_thissystem(t->h)) return -ENOSYS;
    hwloc_bitmap_t set = hwloc_bitmap_alloc();
    if (!set) return QP_ENOMEM;
    errno = 0;
    int rc;
    if (hwloc_get_cpubind(t->h, set, HWLOC_CPUBIND_PROCESS) < 0) {
        rc = -(errno ? errno : EINVAL);
    } else {
        rc = set_cores(t, set, out);
        /* a binding to PUs outside this topology (cannot happen, but a
         * worker must not end up with no cores): every core */
        if (rc == QP_EARG) {
            hwloc_bitmap_copy(set, hwloc_topology_get_topology_cpuset(t->h));
            rc = set_cores(t, set, out);
        }
    }
    hwloc_bitmap_free(set);
    return rc;
}
