/* kdbwrite_lock.c - for the kdb+ writer: one writer at a time per db, and
 * a write that dies half way undone by whoever comes next.
 *
 * The lock is flock(2) on DB/.qpeach.lock, held from before DB/sym is read
 * until the write has committed; the file holds the holder's pid (for a
 * waiter's message) and is removed on release, so a db at rest has none. A
 * waiter that opened the file just before it was removed may get the lock
 * on the removed file: it checks, after flock, that the path still names
 * the file it locked, and starts again if not.
 *
 * The journal, DB/.qpeach.journal, lists every change a write is about to
 * make, one line each, written before the change: `mkdir DIR` (a partition
 * folder made), `table DIR NAME` (DIR/.NAME.qpeach-new written, to replace
 * DIR/NAME), `sym 0|1` (DB/.sym.qpeach-new written; whether a sym was
 * there), then `commit` before the renames that publish the write and
 * `done` after them. Rolling back reads it: without `commit` it removes
 * what was written; with `commit` it also takes back what was renamed into
 * place (a new table folder moved back, the old one, kept aside as
 * .NAME.qpeach-old, put back; the old sym, kept as a hard link
 * .sym.qpeach-old, put back); with `done` it finishes instead (removes what
 * was kept aside). A line cut short by a kill is ignored: its change had
 * not begun. The same roll back serves a write that fails, the guard of a
 * process that was killed, and the next lock taker after both were.
 *
 * Memory rules: a qp_kdb_lock is malloc'd by qp_kdb_lock and freed by
 * qp_kdb_lock_release; the journal is read whole for a roll back and freed.
 */
#include "kdbwrite_int.h"
#include "core/fileio_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct qp_kdb_lock {
    char *db;
    int fd;                /* the lock file, flock'd */
    bool made;             /* qp_kdb_lock made the db folder */
    bool committed;        /* a write under this lock committed */
    pid_t guard;           /* the guard process, or 0 */
    int guard_fd;          /* its pipe: a byte says all is well */
};

/* ------------------------------------------------------------------ */
/* Names                                                               */
/* ------------------------------------------------------------------ */

void qp__kw_path(char *buf, size_t cap, const char *db, const char *dir, const char *name,
                 const char *suffix)
{
    const char *dot = suffix ? "." : "";
    if (!strcmp(dir, "."))
        snprintf(buf, cap, "%s/%s%s%s", db, dot, name, suffix ? suffix : "");
    else
        snprintf(buf, cap, "%s/%s/%s%s%s", db, dir, dot, name, suffix ? suffix : "");
}

static bool exists(const char *path)
{
    struct stat st;
    return !lstat(path, &st);
}

/* ------------------------------------------------------------------ */
/* The journal                                                         */
/* ------------------------------------------------------------------ */

int qp__kw_jopen(const char *db, int *fd, char *err, size_t errlen)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/" QP__KW_JOURNAL, db);
    *fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0666);
    if (*fd < 0) return qp__kerr(err, errlen, -errno, "%s: %s", path, strerror(errno));
    return 0;
}

int qp__kw_jot(int fd, char *err, size_t errlen, const char *fmt, ...)
{
    char line[PATH_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= (int)sizeof line - 1)
        return qp__kerr(err, errlen, QP_EARG, "journal line too long");
    line[n++] = '\n';
    ssize_t w;
    while ((w = write(fd, line, (size_t)n)) < 0 && errno == EINTR) {}
    if (w != n)
        return qp__kerr(err, errlen, w < 0 ? -errno : QP_EIO, "the write journal: %s",
                        w < 0 ? strerror(errno) : "short write");
    return 0;
}

/* The journal's text, whole lines only (NULL when there is none). */
static qp_buf *read_journal(const char *db, int *rc)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/" QP__KW_JOURNAL, db);
    qp_buf *b = NULL;
    *rc = qp__file_read(path, &b);
    if (*rc == -ENOENT) *rc = 0;
    if (!b) return NULL;
    size_t got = b->len;
    while (got > 0 && b->data[got - 1] != '\n') got--;      /* a line cut short: not begun */
    b->data[got] = 0;
    b->len = got;
    return b;
}

/* Whether the journal has line word (alone on its line). */
static bool has_line(const char *text, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = text; (p = strstr(p, word)) != NULL; p += n)
        if ((p == text || p[-1] == '\n') && p[n] == '\n') return true;
    return false;
}

/* One `table DIR NAME` line: undone (or, when done, finished). */
static void undo_table(const char *db, const char *dir, const char *name, bool commit, bool done)
{
    char tmp[PATH_MAX], final[PATH_MAX], old[PATH_MAX];
    qp__kw_path(tmp, sizeof tmp, db, dir, name, QP__KW_NEW);
    qp__kw_path(final, sizeof final, db, dir, name, NULL);
    qp__kw_path(old, sizeof old, db, dir, name, QP__KW_OLD);
    if (done) { if (exists(old)) qp_kdb_remove(old); return; }
    /* after `commit` every new folder was whole, so a missing one was placed */
    if (commit && !exists(tmp) && exists(final)) rename(final, tmp);
    if (commit && exists(old) && !exists(final)) rename(old, final);
    if (exists(tmp)) qp_kdb_remove(tmp);
}

static void undo_sym(const char *db, bool had, bool commit, bool done)
{
    char sym[PATH_MAX], tmp[PATH_MAX], old[PATH_MAX];
    qp__kw_path(sym, sizeof sym, db, ".", "sym", NULL);
    qp__kw_path(tmp, sizeof tmp, db, ".", "sym", QP__KW_NEW);
    qp__kw_path(old, sizeof old, db, ".", "sym", QP__KW_OLD);
    if (!done && commit && had && exists(old)) rename(old, sym);
    else if (!done && commit && !had && !exists(tmp)) unlink(sym);
    unlink(old);           /* a rename onto its own hard link leaves it */
    unlink(tmp);
}

int qp__kw_recover(const char *db, char *err, size_t errlen)
{
    int rc;
    qp_buf *jb = read_journal(db, &rc);
    char *text = jb ? (char *)jb->data : NULL;
    if (!text) return rc ? qp__kerr(err, errlen, rc, "%s/" QP__KW_JOURNAL ": %s", db, qp_strerror(rc)) : 0;
    bool commit = has_line(text, "commit"), done = has_line(text, "done");
    /* last change first: tables, the sym, then the folders made */
    int nl = 0;
    for (char *p = text; *p; p++) nl += *p == '\n';
    char **lines = malloc((size_t)(nl + 1) * sizeof *lines);
    if (!lines) { qp_buf_unref(jb); return qp__kerr(err, errlen, QP_ENOMEM, "out of memory"); }
    int k = 0;
    for (char *p = text, *e; *p; p = e + 1) {
        e = strchr(p, '\n');
        *e = 0;
        lines[k++] = p;
    }
    for (int i = k - 1; i >= 0; i--) {
        char *l = lines[i], *sp;
        if (!strncmp(l, "table ", 6) && (sp = strchr(l + 6, ' ')) != NULL) {
            *sp = 0;
            undo_table(db, l + 6, sp + 1, commit, done);
        } else if (!strncmp(l, "sym ", 4)) {
            undo_sym(db, l[4] == '1', commit, done);
        } else if (!strncmp(l, "mkdir ", 6) && !done) {
            char dir[PATH_MAX];
            snprintf(dir, sizeof dir, "%s/%s", db, l + 6);
            rmdir(dir);
        }
    }
    free(lines);
    qp_buf_unref(jb);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/" QP__KW_JOURNAL, db);
    unlink(path);
    return 0;
}

/* ------------------------------------------------------------------ */
/* The lock                                                            */
/* ------------------------------------------------------------------ */

/* The pid in the lock file, 0 when unreadable. A holder writes it just
 * after taking the lock, so an empty file is read again for up to 50 ms. */
static long holder_pid(const char *path)
{
    for (int tries = 0; tries < 25; tries++) {
        char buf[32] = {0};
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) return 0;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n > 0) return strtol(buf, NULL, 10);
        nanosleep(&(struct timespec){0, 2 * 1000 * 1000}, NULL);
    }
    return 0;
}

/* One attempt: 0 taken (lk->fd), 1 held by another, or a negative code. */
static int try_lock(qp_kdb_lock *lk, const char *path, char *err, size_t errlen)
{
    if (!mkdir(lk->db, 0777)) lk->made = true;
    else if (errno != EEXIST) return qp__kerr(err, errlen, -errno, "%s: %s", lk->db, strerror(errno));
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) return qp__kerr(err, errlen, -errno, "%s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK) return 1;
        return qp__kerr(err, errlen, -e, "%s: %s", path, strerror(e));
    }
    struct stat a, b;
    if (fstat(fd, &a) < 0 || stat(path, &b) < 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
        close(fd);                 /* released and removed meanwhile: again */
        return 1;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
        int e = errno;
        close(fd);
        return qp__kerr(err, errlen, -e, "%s: %s", path, strerror(e));
    }
    lk->fd = fd;
    return 0;
}

/* Waits in the background of the caller: if the caller dies before it
 * says all is well, rolls its write back and releases the lock. */
static void guard_main(qp_kdb_lock *lk, int rfd)
{
    int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) signal(sigs[i], SIG_IGN);
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) { dup2(null, 0); dup2(null, 1); close(null); }
    char b;
    ssize_t r;
    while ((r = read(rfd, &b, 1)) < 0 && errno == EINTR) {}
    if (r == 1) _exit(0);
    char err[1024], path[PATH_MAX];
    if (qp__kw_recover(lk->db, err, sizeof err))
        fprintf(stderr, "qpeach: rolling back an interrupted write into %s: %s\n", lk->db, err);
    snprintf(path, sizeof path, "%s/" QP__KW_LOCK, lk->db);
    unlink(path);
    if (lk->made) rmdir(lk->db);
    _exit(0);
}

static int start_guard(qp_kdb_lock *lk, char *err, size_t errlen)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) return qp__kerr(err, errlen, -errno, "pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(p[0]);
        close(p[1]);
        return qp__kerr(err, errlen, -e, "fork: %s", strerror(e));
    }
    if (pid == 0) {
        close(p[1]);
        guard_main(lk, p[0]);
    }
    close(p[0]);
    lk->guard = pid;
    lk->guard_fd = p[1];
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Tries until taken or wait seconds have passed. 0, 1 (held), or < 0. */
static int take(qp_kdb_lock *lk, const char *path, double wait, char *err, size_t errlen)
{
    double end = now_s() + wait;
    for (;;) {
        int rc = try_lock(lk, path, err, errlen);
        if (rc <= 0 || now_s() >= end) return rc;
        nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
    }
}

int qp_kdb_lock_take(const char *db, double wait, unsigned flags, qp_kdb_lock **out, long *holder,
                char *err, size_t errlen)
{
    char path[PATH_MAX];
    *out = NULL;
    if (holder) *holder = 0;
    qp_kdb_lock *lk = calloc(1, sizeof *lk);
    if (!lk || !(lk->db = strdup(db))) {
        free(lk);
        return qp__kerr(err, errlen, QP_ENOMEM, "out of memory");
    }
    lk->fd = lk->guard_fd = -1;
    snprintf(path, sizeof path, "%s/" QP__KW_LOCK, db);
    int rc = take(lk, path, wait, err, errlen);
    if (rc == 1) {
        long pid = holder_pid(path);
        if (holder) *holder = pid;
        rc = qp__kerr(err, errlen, QP_ETIMEOUT, "%s is being written: its lock (%s) is held by "
                      "pid %ld", db, QP__KW_LOCK, pid);
    }
    if (!rc) rc = qp__kw_recover(db, err, errlen);     /* a writer that died mid-write */
    if (!rc && (flags & QP_KDB_GUARD)) rc = start_guard(lk, err, errlen);
    if (rc) {
        qp_kdb_lock_release(lk);
        return rc;
    }
    *out = lk;
    return 0;
}

void qp__kw_committed(qp_kdb_lock *lk) { lk->committed = true; }

void qp_kdb_lock_release(qp_kdb_lock *lk)
{
    if (!lk) return;
    if (lk->fd >= 0) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/" QP__KW_LOCK, lk->db);
        unlink(path);                      /* still held: see the top */
    }
    if (lk->made && !lk->committed) rmdir(lk->db);     /* only if empty */
    if (lk->guard > 0) {
        ssize_t w;
        while ((w = write(lk->guard_fd, "k", 1)) < 0 && errno == EINTR) {}
        close(lk->guard_fd);
        while (waitpid(lk->guard, NULL, 0) < 0 && errno == EINTR) {}
    }
    if (lk->fd >= 0) close(lk->fd);
    free(lk->db);
    free(lk);
}
