/* fileio.c - whole-file I/O (fileio_int.h): the one copy of writing all
 * of a buffer, reading all of a file, and the temporary file + fsync +
 * rename that replaces a file atomically. */
#include "fileio_int.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int qp__write_all(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -errno;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads fd to its end into b (which has room for size bytes and a NUL),
 * growing b when the file is longer than size. */
static int read_to_end(int fd, qp_buf *b, size_t size)
{
    size_t got = 0;
    for (;;) {
        if (got == size) {                       /* grew since fstat, or unknown */
            size = size ? 2 * size : 4096;
            if (qp_buf_resize(b, size + 1)) return QP_ENOMEM;
        }
        ssize_t n = read(fd, b->data + got, size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -errno;
        if (n == 0) break;
        got += (size_t)n;
    }
    b->data[got] = 0;
    b->len = got;
    return 0;
}

int qp__file_read(const char *path, qp_buf **out)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    struct stat st;
    qp_buf *b = NULL;
    int rc = fstat(fd, &st) < 0 ? -errno : S_ISDIR(st.st_mode) ? -EISDIR : 0;
    size_t size = rc || !S_ISREG(st.st_mode) ? 0 : (size_t)st.st_size;
    if (!rc && !(b = qp_buf_new(size + 1))) rc = QP_ENOMEM;
    if (!rc) rc = read_to_end(fd, b, size);
    close(fd);
    if (rc) qp_buf_unref(b);
    else *out = b;
    return rc;
}

int qp__replace_begin(qp__replace *r, const char *path, mode_t mode)
{
    size_t n = strlen(path) + 32;
    *r = (qp__replace){ .tmp = malloc(n), .path = path, .fd = -1 };
    if (!r->tmp) return QP_ENOMEM;
    snprintf(r->tmp, n, "%s.tmp.%d", path, (int)getpid());
    r->fd = open(r->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    int rc = r->fd < 0 ? -errno : 0;
    if (!rc && !(mode & 077) && fchmod(r->fd, mode)) rc = -errno;
    if (rc) {
        if (r->fd >= 0) qp__replace_abort(r);
        else free(r->tmp);
        r->tmp = NULL;
    }
    return rc;
}

void qp__replace_abort(qp__replace *r)
{
    if (r->fd >= 0) close(r->fd);
    if (r->tmp) unlink(r->tmp);
    free(r->tmp);
    *r = (qp__replace){ .fd = -1 };
}

/* fsync of the folder holding path: what makes a rename in it durable. */
static int sync_folder(const char *path)
{
    char *copy = strdup(path);
    if (!copy) return QP_ENOMEM;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd < 0) return -errno;
    int rc = fsync(fd) && errno != EINVAL ? -errno : 0;   /* EINVAL: cannot sync a folder */
    close(fd);
    return rc;
}

int qp__replace_commit(qp__replace *r)
{
    int rc = fsync(r->fd) ? -errno : 0;
    if (close(r->fd) && !rc) rc = -errno;
    r->fd = -1;
    if (!rc && rename(r->tmp, r->path)) rc = -errno;
    if (rc) {
        qp__replace_abort(r);
        return rc;
    }
    free(r->tmp);
    rc = sync_folder(r->path);
    *r = (qp__replace){ .fd = -1 };
    return rc;
}

int qp__file_replace(const char *path, const void *p, size_t n, mode_t mode)
{
    qp__replace r;
    int rc = qp__replace_begin(&r, path, mode);
    if (rc) return rc;
    if ((rc = qp__write_all(r.fd, p, n))) {
        qp__replace_abort(&r);
        return rc;
    }
    return qp__replace_commit(&r);
}
