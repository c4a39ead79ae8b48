/* cmd_serve.c - `qpeach serve`: the worker server.
 *
 * Prints exactly one ready line to stderr once the listener is bound
 * ("qpeach serve: listening on ADDR"), which tests and scripts wait for;
 * SIGINT and SIGTERM stop it cleanly (exit 0).
 *
 * Pinning: --pin CORES binds the whole process to those cores before any
 * thread starts; without it the process keeps the cores it was started on
 * (`qpeach run` binds each local worker before exec; otherwise all). The
 * main (Python) thread and the loop keep that whole set, and secondary
 * thread i is bound to the set's i-th core, round-robin, so threads get
 * distinct cores while there are enough.
 *
 * --db PATH mounts a kdb+ database (qpeach/kdb.h) before listening: its
 * tables become globals, read lazily when a call asks for them, and what
 * is written to it later is seen (see src/server/db.c). A database that
 * cannot be mounted (a folder holding no table among them) is a usage
 * error, exit 2, one line, before the listener is bound; so is a --load
 * name that is one of its tables.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "qpeach/kdb.h"
#include "qpeach/py.h"
#include "qpeach/server.h"
#include "qpeach/table.h"
#include "qpeach/topo.h"

static qp_server *running;

static void on_signal(int sig)
{
    (void)sig;
    if (running) qp_server_stop(running);   /* async-signal-safe */
}

/* ---- --idle-exit and --watch: a server that ends on its own ----
 * What `qpeach run` starts as kept workers ([workers] keep): nobody waits
 * for them, so each goes when no client has been connected for its idle
 * time, or when a path it watches (the job's state folder, its own
 * socket's folder) is gone. A thread looks every second at most; a stop
 * it asks for that has not ended the process 10 s later (a call stuck in
 * C code) ends it at once. */

enum { MAX_WATCH = 4, LAST_WORDS_MS = 10000 };

typedef struct watchdog {
    qp_server *s;
    int64_t idle_ms;                 /* 0: no idle limit */
    const char *watch[MAX_WATCH];
    int nwatch;
    bool started;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;               /* on CLOCK_MONOTONIC */
    int64_t exit_at;                 /* under mu: _exit then (0: not stopping) */
    bool ending;                     /* under mu: the loop returned, s is not looked at */
    bool done;                       /* under mu: the thread returns */
} watchdog;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Why the server should go now, said into buf; false to stay. */
static bool watch_why(watchdog *w, char *buf, size_t n)
{
    struct stat st;
    for (int i = 0; i < w->nwatch; i++)
        if (stat(w->watch[i], &st) && errno == ENOENT) {
            snprintf(buf, n, "%s is gone", w->watch[i]);
            return true;
        }
    int64_t idle = w->idle_ms ? qp_server_idle_ms(w->s) : 0;
    if (w->idle_ms && idle >= w->idle_ms) {
        snprintf(buf, n, "no client for %lld ms (--idle-exit %lld)", (long long)idle,
                 (long long)w->idle_ms);
        return true;
    }
    return false;
}

static void *watchdog_main(void *data)
{
    watchdog *w = data;
    char why[600];
    pthread_mutex_lock(&w->mu);
    while (!w->done) {
        int64_t now = mono_ms(), wait = 1000;
        if (w->exit_at && now >= w->exit_at) {
            fprintf(stderr, "qpeach serve: still running %d s after stopping: exiting\n",
                    LAST_WORDS_MS / 1000);
            _exit(1);
        }
        if (w->exit_at) wait = w->exit_at - now;
        else if (!w->ending && watch_why(w, why, sizeof why)) {
            fprintf(stderr, "qpeach serve: %s: exiting\n", why);
            qp_server_stop(w->s);
            w->exit_at = now + LAST_WORDS_MS;
            continue;
        } else if (!w->ending && w->idle_ms) {
            int64_t left = w->idle_ms - qp_server_idle_ms(w->s);
            if (left > 0 && left < wait) wait = left;
        }
        int64_t at = now + wait;
        struct timespec ts = { .tv_sec = at / 1000, .tv_nsec = (long)(at % 1000) * 1000000L };
        pthread_cond_timedwait(&w->cv, &w->mu, &ts);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static int watchdog_start(watchdog *w, qp_server *s)
{
    w->s = s;
    if (!w->idle_ms && !w->nwatch) return 0;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc = pthread_create(&w->thread, NULL, watchdog_main, w);
    if (rc)
        fprintf(stderr, "qpeach serve: cannot start the --idle-exit/--watch thread: %s\n",
                strerror(rc));
    w->started = rc == 0;
    return rc ? 1 : 0;
}

/* The loop has returned: s is left alone from now on, and the process
 * has LAST_WORDS_MS to end (if the watchdog began the stop, from then). */
static void watchdog_ending(watchdog *w)
{
    if (!w->started) return;
    pthread_mutex_lock(&w->mu);
    w->ending = true;
    if (!w->exit_at) w->exit_at = mono_ms() + LAST_WORDS_MS;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void watchdog_stop(watchdog *w)
{
    if (!w->started) return;
    pthread_mutex_lock(&w->mu);
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    w->started = false;
}

/* The process's cores, shared read-only by the starting threads. */
typedef struct pinning {
    qp_topo *topo;         /* NULL: no thread pinning */
    qp_place set;          /* the process's cores (--pin, or its binding) */
} pinning;

static void pinning_clear(pinning *p)
{
    qp_place_clear(&p->set);
    qp_topo_free(p->topo);
    p->topo = NULL;
}

/* on_thread_start: pins a secondary thread, then Python's own start. */
static void thread_start_cb(int index, void *data)
{
    const pinning *p = data;
    if (index >= 0 && p->topo && p->set.ncores > 0) {
        int core = p->set.cores[index % p->set.ncores];
        qp_place one = { .ncores = 1, .cores = &core, .node = -1 };
        int rc = qp_topo_bind(p->topo, &one, true);
        if (rc)   /* the thread still runs, on the process's cores */
            fprintf(stderr, "qpeach serve: cannot pin secondary thread %d to core %d: %s\n",
                    index, core, qp_strerror(rc));
    }
    qp_py_thread_start_cb(index, NULL);
}

/* Sets up p for the threads to come; with --pin (list != NULL) binds the
 * process first. Returns 0, or the exit status after printing why. */
static int pinning_setup(pinning *p, const char *list, int secondary)
{
    *p = (pinning){ .set = { .node = -1 } };
    /* No threads to place: skip reading the topology (it costs a few ms).
     * -s -N workers are placed by src/py/procs.c with its own read. */
    if (!list && secondary == 0) return 0;
    int rc = qp_topo_load(NULL, &p->topo);
    if (rc) {
        if (!list) return 0;   /* unpinned threads still work */
        fprintf(stderr, "qpeach serve: --pin: cannot read the topology: %s\n", qp_strerror(rc));
        return 1;
    }
    if (list) {
        char err[256];
        if (qp_topo_parse_cores(p->topo, list, &p->set, err, sizeof err)) {
            fprintf(stderr, "qpeach serve: --pin: %s\n", err);
            pinning_clear(p);
            return 2;
        }
        if ((rc = qp_topo_bind(p->topo, &p->set, false))) {
            fprintf(stderr, "qpeach serve: --pin %s: cannot bind: %s\n", list, qp_strerror(rc));
            pinning_clear(p);
            return 1;
        }
    } else if (qp_topo_bound_cores(p->topo, &p->set)) {
        qp_place_clear(&p->set);   /* unknown binding: leave threads to the OS */
    }
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: qpeach serve -p PORT [-s N] [-u FILE] [--tls-cert F --tls-key F]\n"
        "                    [--insecure] [--load NAME[:TYPES]=FILE]... [--db PATH] [--pin CORES]\n"
        "\n"
        "Runs a worker server that speaks kdb+ IPC (q, node-q, PyKX and qpeach\n"
        "clients can call it).\n"
        "\n"
        "  -p ADDR           PORT or :PORT (127.0.0.1 only), HOST:PORT, 0.0.0.0:PORT,\n"
        "                    unix:/path, @/path (socket file mode 0600), unix://PORT\n"
        "                    (abstract /tmp/kx.PORT). Port 0 picks a free port.\n"
        "  -s N              secondary threads (default 0); -s -N: N worker\n"
        "                    processes for .qp.peach, as q's -s -N\n"
        "  -u FILE, -U FILE  password file (see `qpeach passwd`); without one any\n"
        "                    user is let in, so only loopback is allowed\n"
        "  --tls-cert F      PEM certificate (chain): serve TLS\n"
        "  --tls-key F       PEM private key for it\n"
        "  --insecure        allow listening beyond loopback without -u\n"
        "  --handshake-timeout MS  close a client that has not logged in by then\n"
        "                    (default 30000)\n"
        "  --load NAME[:TYPES]=FILE  load a table at start (.csv, or a q IPC file);\n"
        "                    TYPES: q type letters of the CSV's columns (e.g. trade:SFJ=t.csv)\n"
        "  --db PATH         mount a kdb+ database: a partitioned root (date,\n"
        "                    month, year or int folders, par.txt), a root of\n"
        "                    splayed and flat tables, or one splayed table folder.\n"
        "                    Its tables are globals (.qp.tables[], .qp.count,\n"
        "                    .qp.meta, .qp.get, .qp.partitions, qtable(), a bare\n"
        "                    name), read from disk only when asked for (mapped,\n"
        "                    not copied); no global may take their names. New\n"
        "                    partitions and tables are seen when next asked for\n"
        "                    (.qp.reload[] forces a new look). One database per\n"
        "                    server; exit 2 if it holds no table or cannot be\n"
        "                    mounted. -s -N workers mount it too\n"
        "  --timeout MS      cut off a Python call after MS ms (0: never)\n"
        "  --idle-exit MS    exit when no client has been connected for MS ms\n"
        "  --watch PATH      exit when PATH no longer exists (looked at every\n"
        "                    second; up to 4 paths). `qpeach run` starts its kept\n"
        "                    workers ([workers] keep) with both\n"
        "  --pin CORES       bind the server to these cores: logical indices as\n"
        "                    `qpeach topo` prints them, e.g. 0-3,6. Without it the\n"
        "                    server keeps the cores it was started on (all, unless\n"
        "                    bound, as `qpeach run` binds its workers). Secondary\n"
        "                    thread i runs on the i-th of those cores (round-robin),\n"
        "                    the Python thread on all of them; -s -N workers get\n"
        "                    one core each among them\n"
        "\n"
        "Prints \"qpeach serve: listening on ADDR\" to stderr when ready.\n");
}

/* --load NAME[:TYPES]=FILE: tables (CSV, or q IPC files) as globals before the
 * first client can ask for them. Returns 0, or the exit status after saying
 * why: 2 for a name the --db database has as a table, 1 otherwise. */
static int load_tables(qp_server *s, const char *const *loads, int nloads)
{
    for (int i = 0; i < nloads; i++) {
        char name[256];
        const char *eq = strchr(loads[i], '=');
        snprintf(name, sizeof name, "%.*s", (int)(eq - loads[i]), loads[i]);
        char *colon = strchr(name, ':');          /* NAME:TYPES=FILE */
        qp_csv_opts co = { .types = colon ? colon + 1 : NULL };
        if (colon) *colon = '\0';
        qp_value *t = qp_server_name_taken(s, name, "--load");
        if (t) {
            fprintf(stderr, "qpeach serve: %s\n", t->s);
            qp_unref(t);
            return 2;
        }
        t = qp_table_load(eq + 1, &co);
        if (!t || t->type == QP_ERROR) {
            fprintf(stderr, "qpeach serve: --load %s: %s\n", loads[i], t ? t->s : "out of memory");
            qp_unref(t);
            return 1;
        }
        if (qp_server_set(s, name, t)) {
            fprintf(stderr, "qpeach serve: --load %s: out of memory\n", loads[i]);
            return 1;
        }
    }
    return 0;
}

/* The log lines at mount for what the db leaves out: each partition
 * folder that cannot be read (its partitioned tables are refused), each
 * folder named as a partition of a kind that lost the vote or that cannot
 * be opened (the first few), and how many folders are not tables
 * (`qpeach db info` lists them). Worker processes (-s -N) say nothing:
 * their server said it. */
static void log_db_notes(const char *path, const qp_kdb *db)
{
    enum { SHOWN = 20 };
    int64_t shown = 0, others = 0, nt = 0;
    int err = 0, reason = 0;
    char why[256];
    for (const char *p; (p = qp_kdb_unreadable(db, nt, &err)); nt++)
        fprintf(stderr, "qpeach serve: --db %s: partition folder %s cannot be read (%s): every "
                "partitioned table is refused\n", path, p, strerror(err));
    nt = 0;
    for (int64_t i = 0; qp_kdb_skipped(db, i, NULL, NULL, 0); i++) {
        const char *p = qp_kdb_skipped(db, i, &reason, why, sizeof why);
        if (reason == QP_KDB_SKIP_NOT_TABLE) nt++;
        else if (shown++ < SHOWN) fprintf(stderr, "qpeach serve: note: %s: %s, left out\n", p, why);
        else others++;
    }
    if (others)
        fprintf(stderr, "qpeach serve: note: %lld more folders left out\n", (long long)others);
    if (nt)
        fprintf(stderr, "qpeach serve: note: --db %s: %lld folder%s (neither .d nor column "
                "files), left out (qpeach db info lists them)\n", path, (long long)nt,
                nt == 1 ? " is not a table" : "s are not tables");
}

/* What the command line asked for. */
typedef struct serve_args {
    qp_server_opts o;
    qp_py_opts po;
    const char *pin_list, *db_path;
    const char **loads;    /* --load values (argv's strings), nloads of them */
    int nloads;
    watchdog dog;          /* --idle-exit, --watch */
} serve_args;

/* optarg as a whole number in lo..hi; false if it is not one. */
static bool arg_long(long lo, long hi, long *out)
{
    char *end;
    long n = strtol(optarg, &end, 10);
    if (*end || n < lo || n > hi) return false;
    *out = n;
    return true;
}

/* Takes one option c (with optarg) into a. -1 to go on, else the exit
 * status after saying why. */
static int take_opt(int c, serve_args *a)
{
    long n;
    switch (c) {
    case 'h': usage(stdout); return 0;
    case 'p': a->o.listen = optarg; break;
    case 's':
        if (!arg_long(-1024, 1024, &n)) {
            fprintf(stderr, "qpeach serve: -s wants a count 0..1024, not %s\n", optarg);
            return 2;
        }
        a->o.secondary = n > 0 ? (int)n : 0;
        a->po.procs = n < 0 ? (int)-n : 0;
        break;
    case 'u': case 'U': a->o.passwd_file = optarg; break;
    case 1: a->o.tls_cert = optarg; break;
    case 2: a->o.tls_key = optarg; break;
    case 3: a->o.insecure = true; break;
    case 7:
        if (!arg_long(1, 86400000, &n)) {
            fprintf(stderr, "qpeach serve: --handshake-timeout wants milliseconds 1..86400000, "
                    "not %s\n", optarg);
            return 2;
        }
        a->o.handshake_ms = (int)n;
        break;
    case 8: a->pin_list = optarg; break;
    case 9:
        if (a->db_path) {
            fprintf(stderr, "qpeach serve: --db given twice (one database per server)\n");
            return 2;
        }
        a->db_path = optarg;
        break;
    case 4:
        if (!strchr(optarg, '=')) {
            fprintf(stderr, "qpeach serve: --load wants NAME=FILE, not %s\n", optarg);
            return 2;
        }
        a->loads[a->nloads++] = optarg;
        break;
    case 10:
        if (!arg_long(1, 30L * 86400000, &n)) {
            fprintf(stderr, "qpeach serve: --idle-exit wants milliseconds 1..2592000000, not %s\n",
                    optarg);
            return 2;
        }
        a->dog.idle_ms = n;
        break;
    case 11:
        if (a->dog.nwatch == MAX_WATCH) {
            fprintf(stderr, "qpeach serve: --watch given more than %d times\n", MAX_WATCH);
            return 2;
        }
        a->dog.watch[a->dog.nwatch++] = optarg;
        break;
    case 5: case 6:
        if (!arg_long(0, 86400000, &n)) {
            fprintf(stderr, "qpeach serve: --%s wants a number, not %s\n",
                    c == 5 ? "timeout" : "parent-fd", optarg);
            return 2;
        }
        if (c == 5) a->po.timeout_ms = (int)n; else a->po.parent_fd = (int)n;
        break;
    default: usage(stderr); return 2;
    }
    return -1;
}

/* Reads the command line into a (whose loads has room for argc items).
 * -1 to go on, else the exit status after saying why. */
static int parse_args(int argc, char **argv, serve_args *a)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "tls-cert", required_argument, NULL, 1 },
        { "tls-key", required_argument, NULL, 2 },
        { "insecure", no_argument, NULL, 3 },
        { "handshake-timeout", required_argument, NULL, 7 },
        { "load", required_argument, NULL, 4 },
        { "timeout", required_argument, NULL, 5 },
        { "parent-fd", required_argument, NULL, 6 },   /* worker processes (-s -N) */
        { "pin", required_argument, NULL, 8 },
        { "db", required_argument, NULL, 9 },
        { "idle-exit", required_argument, NULL, 10 },
        { "watch", required_argument, NULL, 11 },
        { NULL, 0, NULL, 0 },
    };
    int c, rc;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hp:s:u:U:", longopts, NULL)) != -1)
        if ((rc = take_opt(c, a)) >= 0) return rc;
    if (optind < argc || !a->o.listen) {
        if (!a->o.listen) fprintf(stderr, "qpeach serve: -p PORT is required\n");
        else fprintf(stderr, "qpeach serve: unexpected argument %s\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    return -1;
}

/* Registers Python (.qp.import/def/call/apply/load/peach/timeout) and
 * the -s -N worker processes (which load the same --load files and --db),
 * then serves until a signal stops it. The exit status. */
static int serve(qp_server *s, serve_args *a)
{
    char err[512];
    a->po.loads = a->loads;
    a->po.nloads = a->nloads;
    a->po.db = a->db_path;
    int rc = qp_py_register(s, &a->po, err, sizeof err);
    if (rc) {
        fprintf(stderr, "qpeach serve: %s\n", err);
        return 1;
    }
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    running = s;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    fprintf(stderr, "qpeach serve: listening on %s\n", qp_server_address(s));
    if (watchdog_start(&a->dog, s)) return 1;
    rc = qp_server_run(s);
    watchdog_ending(&a->dog);
    running = NULL;
    if (rc) fprintf(stderr, "qpeach serve: %s\n", qp_strerror(rc));
    return rc ? 1 : 0;
}

int qp_cmd_serve(int argc, char **argv)
{
    static pinning pin;    /* static: the threads read it until qp_server_free */
    serve_args a = {
        .o = { .listen = NULL, .on_thread_start = thread_start_cb, .thread_data = &pin },
        .po = { .parent_fd = -1 },
        .loads = calloc((size_t)argc, sizeof *a.loads),
    };
    char err[512];
    qp_kdb *db = NULL;     /* until the server takes it */
    qp_server *s = NULL;
    int rc, status;
    if (!a.loads) return 1;
    if ((status = parse_args(argc, argv, &a)) >= 0) goto out;
    /* Before any thread starts (they inherit the process's binding) and
     * before listening (a bad list is a usage error, exit 2). */
    if ((status = pinning_setup(&pin, a.pin_list, a.o.secondary)) != 0) goto out;
    if (a.db_path && (rc = qp_kdb_open(a.db_path, &db, err, sizeof err))) {
        /* err names the path: "PATH: no kdb+ tables found ..." */
        fprintf(stderr, "qpeach serve: %s\n", err[0] ? err : qp_strerror(rc));
        status = 2;
        goto fail;
    }
    if (db && a.po.parent_fd < 0) log_db_notes(a.db_path, db);
    rc = qp_server_new(&a.o, &s, err, sizeof err);
    if (!rc && db && (rc = qp_server_mount(s, db)))
        snprintf(err, sizeof err, "--db %s: %s", a.db_path, qp_strerror(rc));
    else if (!rc)
        db = NULL;                            /* the server's now */
    if (rc) {
        fprintf(stderr, "qpeach serve: %s\n", err);
        status = rc == QP_EADDR || rc == QP_EARG ? 2 : 1;     /* usage errors are 2 */
        goto fail;
    }
    if (!(status = load_tables(s, a.loads, a.nloads))) status = serve(s, &a);
    qp_py_shutdown();
fail:
    qp_server_free(s);
    qp_kdb_close(db);
    pinning_clear(&pin);
    watchdog_stop(&a.dog);
out:
    free(a.loads);
    return status;
}
