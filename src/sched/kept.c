/* kept.c - local workers kept between runs ([workers] keep = DURATION).
 *
 * A kept worker is a `qpeach serve` started and pinned as any local worker
 * (workers.c), but it outlives the run: it is not our child (the child
 * that starts it exits at once), it has a session of its own, and it ends
 * on its own when no client has been connected for `keep` (--idle-exit),
 * or when the job's state folder or its own folder is removed (--watch).
 * The next run of a job with the same worker settings connects to it
 * instead of starting a new one.
 *
 * Where: the workers folder, $QPEACH_WORKERS_DIR or /tmp/qpeach-workers-UID,
 * made 0700 and checked to be this user's and private at every use
 * (whoever reaches a socket runs code in the worker). In it, one folder
 * per set of workers, KEY-SLOT: KEY is 16 hex digits of the SHA-256 of
 * the worker settings, SLOT 0..7. In a set's folder:
 *   lock     flock'd by the run using the set, for the whole run: two runs
 *            never share a worker; a second run of the same settings at
 *            the same time takes the next slot
 *   info     what `qpeach workers` shows: key, job, what the workers hold,
 *            each worker's pid and cores; its mtime is when the last run
 *            let go of the set
 *   stop     `qpeach workers stop` asked while a run held the set: that
 *            run stops the workers at its end
 *   wI.sock, wI.log  worker I's socket and stderr
 *
 * The worker settings (the key): the qpeach binary (path, inode, size,
 * mtime), the working folder, the environment (but _, OLDPWD, PWD and
 * SHLVL, which a shell changes as it goes), local, threads, each worker's
 * cores, libraries, the function's folder (first on the workers'
 * sys.path), the db, the input the workers load, and the job's state
 * folder (which the workers watch). The user is the folder's. What
 * a run sends is not part of it: functions go by their SHA-256 as ever.
 *
 * Never stale: a worker found running gets `.qp.reset[]` before the
 * setup (globals, functions and their module state dropped: the module
 * runs again; only sys.modules stays), and with a db `.qp.reload[]`,
 * which mounts it as it is now (a table added to an existing partition,
 * a splayed table rewritten: what a mounted db notices only when told).
 * The setup then loads the input again; a changed CSV has another
 * converted copy, so other settings, so other workers.
 *
 * Replaced: a worker that does not answer at its socket (died, killed) is
 * started again in its slot, any process still holding that socket's name
 * stopped first. A set that this same job made under other settings, and
 * that no run holds, is stopped when the job takes a set: the job will
 * not use it again.
 */
#include "run_int.h"
#include "core/fileio_int.h"
#include "qpeach/kdb.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum { SLOTS = 8, STOP_MS = 5000 };

extern char **environ;

/* ---- processes that are not our children ---- */

int qp__pidfd_open(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);     /* close-on-exec */
}

bool qp__pidfd_wait(int pidfd, int ms)
{
    struct pollfd p = { .fd = pidfd, .events = POLLIN };
    int rc;
    while ((rc = poll(&p, 1, ms)) < 0 && errno == EINTR) {}
    return rc != 0;      /* an error: nothing more to wait for */
}

static void pidfd_signal(int pidfd, int sig)
{
    syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

void qp__pidfd_stop(int pidfd, int ms)
{
    pidfd_signal(pidfd, SIGTERM);
    if (qp__pidfd_wait(pidfd, ms)) return;
    pidfd_signal(pidfd, SIGKILL);
    qp__pidfd_wait(pidfd, STOP_MS);
}

/* ---- the workers folder ---- */

/* Into out: the workers folder, made when make; checked to be a folder
 * of this user's that nobody else may enter. 0; 1 when it does not exist
 * (and not make); or a negative code with err. */
static int workers_dir(char *out, size_t n, bool make, char *err, size_t errlen)
{
    const char *env = getenv("QPEACH_WORKERS_DIR");
    if (env && *env && *env != '/') {
        snprintf(err, errlen, "QPEACH_WORKERS_DIR must be an absolute path, not %s", env);
        return QP_EARG;
    }
    if (env && *env) snprintf(out, n, "%s", env);
    else snprintf(out, n, "/tmp/qpeach-workers-%u", (unsigned)getuid());
    struct stat st;
    if (make && mkdir(out, 0700) && errno != EEXIST) {
        int e = errno;
        snprintf(err, errlen, "cannot make the workers folder %s: %s", out, strerror(e));
        return -e;
    }
    if (lstat(out, &st)) {
        int e = errno;
        if (e == ENOENT && !make) return 1;
        snprintf(err, errlen, "workers folder %s: %s", out, strerror(e));
        return -e;
    }
    if (!S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 077)) {
        snprintf(err, errlen, "the workers folder %s is not a private folder of this user "
                 "(%s, mode %03o, owner %u): others could reach the workers' sockets; remove "
                 "it, or set QPEACH_WORKERS_DIR", out, S_ISDIR(st.st_mode) ? "a folder" :
                 S_ISLNK(st.st_mode) ? "a link" : "not a folder", (unsigned)(st.st_mode & 0777),
                 (unsigned)st.st_uid);
        return QP_EARG;
    }
    return 0;
}

/* ---- worker processes found in /proc ---- */

typedef struct found {
    pid_t pid;
    char sock[300];        /* its -p, without "unix:" */
    int64_t keep_ms;       /* its --idle-exit */
} found;

/* Whether pid is a `qpeach serve` of ours listening at prefix (a socket)
 * or under it (a folder); its socket and --idle-exit into *f. */
static bool kept_proc(pid_t pid, const char *prefix, found *f)
{
    char path[64], buf[4096];
    struct stat st;
    snprintf(path, sizeof path, "/proc/%d", (int)pid);
    if (stat(path, &st) || st.st_uid != getuid()) return false;
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0) close(fd);
    if (n <= 0) return false;
    buf[n] = '\0';
    const char *arg[32];
    int na = 0;
    for (const char *p = buf; p < buf + n && na < 32; p += strlen(p) + 1) arg[na++] = p;
    if (na < 4 || strcmp(arg[1], "serve")) return false;
    size_t pl = strlen(prefix);
    *f = (found){ .pid = pid };
    for (int i = 2; i + 1 < na; i++) {
        if (!strcmp(arg[i], "-p") && !strncmp(arg[i + 1], "unix:", 5) &&
            !strncmp(arg[i + 1] + 5, prefix, pl) &&
            (arg[i + 1][5 + pl] == '/' || (pl && arg[i + 1][5 + pl] == '\0')))
            snprintf(f->sock, sizeof f->sock, "%s", arg[i + 1] + 5);
        if (!strcmp(arg[i], "--idle-exit")) f->keep_ms = strtoll(arg[i + 1], NULL, 10);
    }
    return f->sock[0] != '\0';
}

/* Every kept worker process at or under prefix: *out malloc'd (NULL
 * when none), *n of them. 0 or QP_ENOMEM. */
static int scan(const char *prefix, found **out, int *n)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir("/proc");
    if (!d) return 0;
    int cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        found f;
        if (*end || pid <= 0 || !kept_proc((pid_t)pid, prefix, &f)) continue;
        if (*n == cap) {
            found *m = realloc(*out, (size_t)(cap = cap ? 2 * cap : 8) * sizeof *m);
            if (!m) { closedir(d); free(*out); *out = NULL; *n = 0; return QP_ENOMEM; }
            *out = m;
        }
        (*out)[(*n)++] = f;
    }
    closedir(d);
    return 0;
}

/* Stops the processes in f (SIGTERM to all, SIGKILL to what is left after
 * STOP_MS), each checked again once its pidfd is open, so that a pid used
 * again since the scan is left alone. Returns how many were stopped. */
static int stop_found(const found *f, int n)
{
    int *fds = calloc((size_t)(n ? n : 1), sizeof *fds), stopped = 0;
    for (int i = 0; i < n; i++) {
        found again;
        fds[i] = fds ? qp__pidfd_open(f[i].pid) : -1;
        if (fds[i] >= 0 && (!kept_proc(f[i].pid, "", &again) || strcmp(again.sock, f[i].sock))) {
            close(fds[i]);
            fds[i] = -1;
        }
        if (fds[i] >= 0) pidfd_signal(fds[i], SIGTERM);
    }
    int64_t end = qp__ms() + STOP_MS;
    for (int i = 0; fds && i < n; i++) {
        if (fds[i] < 0) continue;
        int64_t left = end - qp__ms();
        if (!qp__pidfd_wait(fds[i], left > 0 ? (int)left : 0)) qp__pidfd_stop(fds[i], 0);
        close(fds[i]);
        stopped++;
    }
    free(fds);
    return stopped;
}

/* Stops every kept worker listening at or under prefix. How many. */
static int stop_under(const char *prefix)
{
    found *f;
    int n, stopped = 0;
    if (!scan(prefix, &f, &n)) stopped = stop_found(f, n);
    free(f);
    return stopped;
}

/* Removes a set's folder and what is in it (sockets, logs, lock, info). */
static void remove_set(const char *dir)
{
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        char p[600];
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    if (d) closedir(d);
    rmdir(dir);
}

/* The set at dir locked for us (fd, LOCK_EX), or -1: in use, or no lock. */
static int lock_set(const char *dir)
{
    char p[600];
    snprintf(p, sizeof p, "%s/lock", dir);
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB)) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Line "KEY value" of the set's info into out ("" when none). */
static void info_line(const char *dir, const char *key, char *out, size_t n)
{
    char p[600], line[2048];
    size_t kl = strlen(key);
    out[0] = '\0';
    snprintf(p, sizeof p, "%s/info", dir);
    FILE *f = fopen(p, "re");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == ' ') {
            line[strcspn(line, "\n")] = '\0';
            snprintf(out, n, "%s", line + kl + 1);
            break;
        }
    if (f) fclose(f);
}

/* ---- the worker settings ---- */

static bool env_ignored(const char *e)
{
    static const char *const skip[] = { "_=", "OLDPWD=", "PWD=", "SHLVL=" };
    for (size_t i = 0; i < sizeof skip / sizeof *skip; i++)
        if (!strncmp(e, skip[i], strlen(skip[i]))) return true;
    return false;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The environment, sorted, into m (one line each). */
static int put_env(FILE *m)
{
    size_t n = 0;
    while (environ && environ[n]) n++;
    char **e = malloc((n ? n : 1) * sizeof *e);
    if (!e) return QP_ENOMEM;
    memcpy(e, environ, n * sizeof *e);
    qsort(e, n, sizeof *e, str_cmp);
    for (size_t i = 0; i < n; i++)
        if (!env_ignored(e[i])) fprintf(m, "env %s\n", e[i]);
    free(e);
    return 0;
}

/* The key of this run's worker settings: 64 hex digits into hex. */
static int settings_key(run *r, int local, char hex[65])
{
    const qp_job *j = r->job;
    char *text = NULL, buf[4096];
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    if (!m) return QP_ENOMEM;
    struct stat st;
    char *self = realpath(r->o->self, NULL);
    fprintf(m, "qpeach %s", self ? self : r->o->self);
    if (self && !stat(self, &st))
        fprintf(m, " %llu %lld %lld.%09ld", (unsigned long long)st.st_ino, (long long)st.st_size,
                (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    free(self);
    fprintf(m, "\ncwd %s\nlocal %d threads %d\n", getcwd(buf, sizeof buf) ? buf : "?", local,
            j->threads);
    int rc = put_env(m);
    for (int i = 0; r->place && i < local; i++) {
        qp__cores_text(&r->place->worker[i], buf, sizeof buf);
        fprintf(m, "worker %d %s\n", i, buf);
    }
    for (int i = 0; i < j->nlibs; i++) fprintf(m, "lib %s=%s\n", j->lib_alias[i], j->lib_module[i]);
    const char *fn;
    int dl = qp__fn_dir(j, &fn);
    fprintf(m, "fndir %.*s\n", dl > 0 ? dl : 0, fn);  /* first on sys.path */
    fprintf(m, "db %s\ninput %s\nstate %s\n", j->db ? j->db : "-",
            !j->files && r->input_path ? r->input_path : "-", j->state);
    if (fclose(m) || rc) { free(text); return QP_ENOMEM; }
    uint8_t h[32];
    qp_sha256(text, len, h);
    free(text);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", h[i]);
    return 0;
}

/* What of the db a mounted db does not notice on its own (kdbstamp.c), as
 * 64 hex digits into hex: every table's partitions (a table added to a
 * partition that was there), and the files of the job's table and of
 * every splayed table (rewritten or grown in place: a mounted db keeps a
 * splayed table mapped), with the root, sym and par.txt. A kept worker
 * whose last run saw another is told to mount the db again; one whose
 * db is as it was keeps its mapped columns (mounting again would cost
 * every page of them a fault in the next run). 0, or a negative code
 * (the db does not open here: "" into hex, so the db is mounted again). */
static int db_identity(run *r, char hex[65])
{
    const qp_job *j = r->job;
    char err[512], *text = NULL;
    size_t len = 0;
    hex[0] = '\0';
    int rc = qp__open_db(r, err, sizeof err);
    FILE *m = rc ? NULL : open_memstream(&text, &len);
    if (!m) return rc ? rc : QP_ENOMEM;
    static const char *const files[] = { "", "/sym", "/par.txt" };
    for (size_t k = 0; k < sizeof files / sizeof *files; k++) {
        char p[4200];
        struct stat st;
        snprintf(p, sizeof p, "%s%s", j->db, files[k]);
        if (!stat(p, &st))
            fprintf(m, "%s %llu %lld %lld.%09ld\n", p, (unsigned long long)st.st_ino,
                    (long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    }
    qp_value *t = qp_kdb_tables(r->db);
    for (int64_t i = 0; t && i < t->v.n; i++) {
        const char *name = qp_S(t)[i];
        qp_value *v = qp_kdb_partitions(r->db, name);
        bool parted = v && !qp_is_error(v) && v->v.n;
        fprintf(m, "table %s %lld:", name, (long long)(parted ? v->v.n : 0));
        for (int64_t k = 0; parted && k < v->v.n; k++)
            fprintf(m, " %lld", (long long)(v->type == QP_LONG ? qp_J(v)[k] : qp_I(v)[k]));
        fputc('\n', m);
        for (int64_t k = 0; (!parted || !strcmp(name, j->table)) && k < (parted ? v->v.n : 1); k++) {
            char *dir = qp_kdb_table_dir(r->db, name, k);
            if (dir) qp__describe_files(m, dir);
            free(dir);
        }
        qp_unref(v);
    }
    qp_unref(t);
    if (fclose(m)) { free(text); return QP_ENOMEM; }
    uint8_t h[32];
    qp_sha256(text, len, h);
    free(text);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", h[i]);
    return 0;
}

/* ---- a run's set ---- */

/* Stops the sets this job made under other settings that no run holds:
 * the job will not use them again. */
static void drop_old_sets(run *r, const char *wdir)
{
    char me[4200], job[4200], key[80], dir[600];
    snprintf(me, sizeof me, "%s/%s", r->job->state, r->job->name);
    DIR *d = opendir(wdir);
    int stopped = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.' || !strncmp(e->d_name, r->kept_key, 16)) continue;
        snprintf(dir, sizeof dir, "%s/%s", wdir, e->d_name);
        info_line(dir, "job", job, sizeof job);
        info_line(dir, "key", key, sizeof key);
        if (strcmp(job, me) || !strcmp(key, r->kept_key)) continue;
        int fd = lock_set(dir);
        if (fd < 0) continue;
        stopped += stop_under(dir);
        remove_set(dir);
        close(fd);
    }
    if (d) closedir(d);
    if (stopped)
        qp__say(r, "worker", "stopped %d kept worker%s of this job's earlier settings", stopped,
                stopped == 1 ? "" : "s");
}

/* Takes the first free slot of the key's sets: its folder into r->tmpdir,
 * its lock into r->kept_lock. 0, 1 (all in use), or -1 with r->error. */
static int take_slot(run *r, const char *wdir)
{
    for (int slot = 0; slot < SLOTS; slot++) {
        char *dir = r->tmpdir;
        snprintf(dir, sizeof r->tmpdir, "%.200s/%.16s-%d", wdir, r->kept_key, slot);
        /* the longest socket name, "DIR/w1023.sock", must fit sun_path */
        if (strlen(dir) + 11 >= 108) {
            qp__fail(r, "[workers] keep: the workers folder %s is too long for the workers' "
                     "socket names (at most 80 characters)", wdir);
            return -1;
        }
        if (mkdir(dir, 0700) && errno != EEXIST) {
            qp__fail(r, "[workers] keep: %s: %s", dir, strerror(errno));
            return -1;
        }
        if ((r->kept_lock = lock_set(dir)) >= 0) return 0;
    }
    r->tmpdir[0] = '\0';
    qp__say(r, "worker", "every set of kept workers with these settings is in use by another "
            "run: this run's workers end with it");
    return 1;
}

int qp__kept_open(run *r, int local)
{
    char wdir[256], err[600], p[600], key[80];
    int fd = qp__pidfd_open(getpid()), rc;
    if (fd < 0) {
        qp__say(r, "worker", "[workers] keep needs pidfd_open (Linux 5.3 or later): %s; this "
                "run's workers end with it", strerror(errno));
        return 1;
    }
    close(fd);
    if ((rc = workers_dir(wdir, sizeof wdir, true, err, sizeof err))) {
        qp__fail(r, "[workers] keep: %s", err);
        return -1;
    }
    if (settings_key(r, local, r->kept_key)) {
        qp__fail(r, "out of memory");
        return -1;
    }
    if ((rc = take_slot(r, wdir))) return rc;
    r->kept = true;
    /* what was asked of the set before we had it: stopped, and another
     * key's workers (16 hex digits alike) are not ours */
    snprintf(p, sizeof p, "%s/stop", r->tmpdir);
    info_line(r->tmpdir, "key", key, sizeof key);
    if (!access(p, F_OK) || (key[0] && strcmp(key, r->kept_key))) stop_under(r->tmpdir);
    unlink(p);
    drop_old_sets(r, wdir);
    char was[80];
    info_line(r->tmpdir, "db", was, sizeof was);
    if (r->job->db && db_identity(r, r->kept_db) == QP_ENOMEM) {
        qp__fail(r, "out of memory");
        return -1;
    }
    qp__msgs *m = &r->setup.reuse;
    if (!(m->m = calloc(2, sizeof *m->m))) { qp__fail(r, "out of memory"); return -1; }
    m->m[m->n++] = qp__call(".qp.reset", 1, qp_identity());
    if (r->job->db && (!r->kept_db[0] || strcmp(was, r->kept_db)))
        m->m[m->n++] = qp__call(".qp.reload", 1, qp_identity());
    for (int i = 0; i < m->n; i++)
        if (!m->m[i]) { qp__fail(r, "out of memory"); return -1; }
    return 0;
}

bool qp__kept_adopt(run *r, qp__worker *w)
{
    char err[512], sock[300];
    snprintf(sock, sizeof sock, "%s/w%d.sock", r->tmpdir, w->id);
    snprintf(w->addr, sizeof w->addr, "unix:%.290s", sock);
    snprintf(w->log, sizeof w->log, "%s/w%d.log", r->tmpdir, w->id);
    w->local = w->kept = true;
    w->pid = 0;
    w->pidfd = -1;
    if (access(sock, F_OK)) return false;
    qp_conn_opts o = { .connect_timeout_ms = r->job->connect_timeout_ms };
    qp_conn *c = NULL;
    struct ucred cr;
    socklen_t cl = sizeof cr;
    int fd = -1;
    /* the process that listens is the worker: its pid, while we are
     * connected, cannot be another's */
    if (qp_conn_open(w->addr, &o, &c, err, sizeof err) ||
        getsockopt(qp_conn_fd(c), SOL_SOCKET, SO_PEERCRED, &cr, &cl) || cr.uid != getuid() ||
        (fd = qp__pidfd_open(cr.pid)) < 0) {
        qp_conn_close(c);
        stop_under(sock);       /* whatever still holds the name (hung, not ours) */
        return false;
    }
    w->c = c;
    w->pid = cr.pid;
    w->pidfd = fd;
    w->reused = true;
    w->nfl = w->flhead = w->tasks_in = 0;
    return true;
}

/* What the workers hold, for `qpeach workers`: db, input, libraries, and
 * the functions defined, each with the start of its code's SHA-256. */
static void holds_text(run *r, FILE *m)
{
    const qp_job *j = r->job;
    const char *sep = "";
    if (j->db) { fprintf(m, "db %s", j->db); sep = "; "; }
    if (!j->files && r->input_path) { fprintf(m, "%sinput %s", sep, r->input_path); sep = "; "; }
    for (int i = 0; i < j->nlibs; i++, sep = ", ")
        fprintf(m, "%s%s%s=%s", i ? ", " : sep, i ? "" : "libraries ", j->lib_alias[i],
                j->lib_module[i]);
    const qp__msgs *s = &r->setup.of[qp__proto_qpeach.id];
    for (int i = 0, k = 0; i < s->n; i++) {
        const qp_value *msg = s->m[i], *code = msg->v.n > 2 ? qp_K(msg)[2] : NULL;
        if (strcmp(qp_K(msg)[0]->s, ".qp.def") || !code) continue;
        uint8_t h[32];
        qp_sha256(code->v.data, (size_t)code->v.n, h);
        fprintf(m, "%s%s (%02x%02x%02x%02x%02x%02x)", k++ ? ", " : *sep ? "; functions " :
                "functions ", qp_K(msg)[1]->s, h[0], h[1], h[2], h[3], h[4], h[5]);
    }
}

void qp__kept_note(run *r, bool touch)
{
    char p[600], tmp[640], cores[256], *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    if (!m) return;       /* only `qpeach workers` reads it */
    fprintf(m, "key %s\njob %s/%s\nkeep %" PRId64 "\ndb %s\nholds ", r->kept_key,
            r->job->state, r->job->name, r->job->keep_ms, r->kept_db[0] ? r->kept_db : "-");
    holds_text(r, m);
    fputc('\n', m);
    for (int i = 0; i < r->nw; i++) {
        if (!r->ws[i].kept || r->ws[i].pid <= 0) continue;
        qp__cores_text(&r->place->worker[i], cores, sizeof cores);
        fprintf(m, "worker %d %d %s\n", i, (int)r->ws[i].pid, r->place->worker[i].ncores ?
                cores : "unpinned");
    }
    if (fclose(m)) { free(text); return; }
    snprintf(p, sizeof p, "%s/info", r->tmpdir);
    /* as it was (the same workers, the same job): its time is all that
     * may change, when the run ends */
    qp_buf *was = NULL;
    if (!qp__file_read(p, &was) && was->len == len && !memcmp(was->data, text, len)) {
        if (touch) utimensat(AT_FDCWD, p, NULL, 0);
    } else {
        snprintf(tmp, sizeof tmp, "%s.tmp", p);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || qp__write_all(fd, text, len) || close(fd) || rename(tmp, p)) unlink(tmp);
    }
    qp_buf_unref(was);
    free(text);
}

void qp__kept_close(run *r)
{
    if (!r->kept) return;
    char p[600];
    snprintf(p, sizeof p, "%s/stop", r->tmpdir);
    if (!access(p, F_OK)) {         /* `qpeach workers stop` while we ran */
        for (int i = 0; r->ws && i < r->nw; i++)
            if (r->ws[i].kept && r->ws[i].pid > 0 && r->ws[i].pidfd >= 0)
                qp__pidfd_stop(r->ws[i].pidfd, STOP_MS);
        stop_under(r->tmpdir);
        remove_set(r->tmpdir);
    } else if (r->ws) {
        qp__kept_note(r, true);     /* its time: when the workers' idling began */
    }
    for (int i = 0; r->ws && i < r->nw; i++)
        if (r->ws[i].kept && r->ws[i].pidfd >= 0) close(r->ws[i].pidfd);
    close(r->kept_lock);
    r->kept = false;
}

/* ---- qpeach workers ---- */

/* One worker found in /proc as `qpeach workers` shows it. */
static void describe(const found *f, const char *wdir, qp_kept_info *k)
{
    char dir[300], line[2048];
    snprintf(dir, sizeof dir, "%s", f->sock);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    *k = (qp_kept_info){ .pid = f->pid, .keep_ms = f->keep_ms, .idle_ms = -1 };
    snprintf(k->set, sizeof k->set, "%s", dir + strlen(wdir) + (dir[strlen(wdir)] == '/'));
    k->slot = slash ? atoi(slash + 2) : -1;
    snprintf(k->cores, sizeof k->cores, "?");
    info_line(dir, "holds", k->holds, sizeof k->holds);
    info_line(dir, "job", k->job, sizeof k->job);
    char want[64];
    snprintf(want, sizeof want, "%d %d ", k->slot, (int)f->pid);
    snprintf(line, sizeof line, "%s/info", dir);
    FILE *in = fopen(line, "re");
    while (in && fgets(line, sizeof line, in))
        if (!strncmp(line, "worker ", 7) && !strncmp(line + 7, want, strlen(want))) {
            line[strcspn(line, "\n")] = '\0';
            snprintf(k->cores, sizeof k->cores, "%s", line + 7 + strlen(want));
        }
    if (in) fclose(in);
    int fd = lock_set(dir);
    struct stat st;
    snprintf(line, sizeof line, "%s/info", dir);
    if (fd >= 0 && !stat(line, &st)) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        k->idle_ms = (now.tv_sec - st.st_mtim.tv_sec) * 1000 +
                     (now.tv_nsec - st.st_mtim.tv_nsec) / 1000000;
        if (k->idle_ms < 0) k->idle_ms = 0;
    }
    if (fd >= 0) close(fd);
}

int qp_kept_list(qp_kept_info **out, int *n, char *err, size_t errlen)
{
    char wdir[256];
    *out = NULL;
    *n = 0;
    int rc = workers_dir(wdir, sizeof wdir, false, err, errlen);
    if (rc) return rc > 0 ? 0 : rc;
    found *f;
    int nf;
    if ((rc = scan(wdir, &f, &nf))) return rc;
    *out = calloc((size_t)(nf ? nf : 1), sizeof **out);
    if (!*out) { free(f); return QP_ENOMEM; }
    for (int i = 0; i < nf; i++) describe(&f[i], wdir, &(*out)[i]);
    *n = nf;
    free(f);
    return 0;
}

int qp_kept_stop(int *stopped, int *busy, char *err, size_t errlen)
{
    char wdir[256], dir[600];
    *stopped = *busy = 0;
    int rc = workers_dir(wdir, sizeof wdir, false, err, errlen);
    if (rc) return rc > 0 ? 0 : rc;
    /* the sets no run holds, locked until their workers are gone */
    int cap = 16, nl = 0, *locks = malloc((size_t)cap * sizeof *locks);
    DIR *d = opendir(wdir);
    for (struct dirent *e; locks && d && (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        snprintf(dir, sizeof dir, "%s/%s", wdir, e->d_name);
        int fd = lock_set(dir);
        if (fd < 0) {           /* a run holds it: it stops them at its end */
            snprintf(dir + strlen(dir), sizeof dir - strlen(dir), "/stop");
            int s = open(dir, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
            if (s >= 0) { close(s); ++*busy; }
            continue;
        }
        int *more = nl == cap ? realloc(locks, (size_t)(cap *= 2) * sizeof *locks) : locks;
        if (!more) { close(fd); break; }
        locks = more;
        locks[nl++] = fd;
        *stopped += stop_under(dir);
        remove_set(dir);
    }
    if (d) closedir(d);
    for (int i = 0; locks && i < nl; i++) close(locks[i]);
    free(locks);
    /* and any left whose set is gone (its folder removed by hand) */
    found *f;
    int nf;
    if (!scan(wdir, &f, &nf)) {
        for (int i = 0; i < nf; i++) {
            snprintf(dir, sizeof dir, "%s", f[i].sock);
            *strrchr(dir, '/') = '\0';
            struct stat st;
            if (!stat(dir, &st)) continue;    /* a busy set's: its run stops them */
            *stopped += stop_found(&f[i], 1);
        }
        free(f);
    }
    return 0;
}
