/* fileio_int.h - whole-file I/O for every room (fileio.c): writing all of
 * a buffer, reading all of a file, and replacing a file atomically. Not a
 * public header.
 *
 * Memory rules: as value.h. Buffers come back as new references. Every
 * function returns 0 or a negative code: -errno (qp_strerror gives its
 * words: "No such file or directory", "Is a directory") or QP_ENOMEM. The
 * caller names the file in its message; nothing here prints.
 */
#ifndef QPEACH_FILEIO_INT_H
#define QPEACH_FILEIO_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "qpeach/value.h"

/* Writes the n bytes at p to fd, through short writes and EINTR. */
int qp__write_all(int fd, const void *p, size_t n);

/* The whole file at path, read to its end (a file that grows or shrinks
 * while being read gives what was read): *out gets a new buffer of len
 * bytes followed by one NUL byte, not counted, so a text file can be used
 * as a C string. A folder is -EISDIR. On failure *out is NULL. */
int qp__file_read(const char *path, qp_buf **out);

/* Replacing a file so that a reader, or the file system after a crash,
 * sees the old file or the whole new one, never a part: the new bytes go
 * to a temporary file beside path ("PATH.tmp.PID", same file system), are
 * fsync'd, and the temporary is renamed over path; then the folder is
 * fsync'd so the rename itself survives a crash. */
typedef struct qp__replace {
    char *tmp;             /* the temporary file's name (malloc'd) */
    const char *path;      /* borrowed from qp__replace_begin's caller */
    int fd;                /* open for writing on tmp */
} qp__replace;

/* Creates the temporary file for path with mode (less the umask; a mode
 * without group or other bits is set exactly, whatever an old temporary
 * file of the same name had). Write to r->fd, or to r->tmp by name (a
 * writer that opens its own file: commit syncs the file through r->fd). */
int qp__replace_begin(qp__replace *r, const char *path, mode_t mode);
/* fsync, rename over path, fsync the folder. On failure the temporary
 * file is removed. Either way r is released. */
int qp__replace_commit(qp__replace *r);
/* Removes the temporary file and releases r (after begin succeeded). */
void qp__replace_abort(qp__replace *r);
/* begin, qp__write_all of the n bytes at p, commit. */
int qp__file_replace(const char *path, const void *p, size_t n, mode_t mode);

#endif
