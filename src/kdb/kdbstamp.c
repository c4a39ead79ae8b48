/* kdbstamp.c - noticing that a mounted kdb+ db changed on disk, and
 * mounting it again (qp_kdb_reload).
 *
 * A qp_kdb is a snapshot of folder listings. What those listings depend
 * on, and what q and `qpeach db import` change when they add to a db:
 *   - the root folder: a partition, a splayed table or a flat table
 *     renamed in or removed (its mtime, and its link count for a folder
 *     added or removed within one clock tick);
 *   - par.txt and each segment folder it names, likewise;
 *   - each domain file read so far (`sym`): q's .Q.en appends to it in
 *     place, so only its size and mtime show new names;
 *   - each partition folder that could not be read (a link to a disk not
 *     mounted): its target coming back changes nothing above.
 * Each is stamped (stat) before it is listed or read, so a change made
 * while listing shows at the next check. A check is one stat per stamp;
 * partition and table folders are not stamped (a db of 1,000 dates would
 * cost 1,000 stats a call), so a table added to an existing partition, or
 * a table's files rewritten in place, are seen only when a reload is
 * forced.
 */
#include "kdb_int.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void qp__kdb_stamp(const char *path, qp__kstamp *st)
{
    struct stat s;
    memset(st, 0, sizeof *st);
    if (stat(path, &s) < 0) return;
    *st = (qp__kstamp){ .present = true, .dev = s.st_dev, .ino = s.st_ino,
                        .nlink = s.st_nlink, .size = s.st_size, .mtime = s.st_mtim };
}

bool qp__kdb_stamp_same(const qp__kstamp *a, const qp__kstamp *b)
{
    return a->present == b->present && a->dev == b->dev && a->ino == b->ino &&
           a->nlink == b->nlink && a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
           a->mtime.tv_nsec == b->mtime.tv_nsec;
}

int qp__kdb_watch(qp_kdb *db, char *path)
{
    if (!path) return QP_ENOMEM;
    char **w = realloc(db->watch, sizeof *w * (size_t)(db->nwatch + 1));
    if (w) db->watch = w;
    qp__kstamp *s = w ? realloc(db->stamps, sizeof *s * (size_t)(db->nwatch + 1)) : NULL;
    if (!s) {
        free(path);
        return QP_ENOMEM;
    }
    db->stamps = s;
    db->watch[db->nwatch] = path;
    qp__kdb_stamp(path, &db->stamps[db->nwatch++]);
    return 0;
}

/* True when anything db's listing or domains came from has changed. */
static bool changed(qp_kdb *db)
{
    qp__kstamp now;
    for (int i = 0; i < db->nwatch; i++) {
        qp__kdb_stamp(db->watch[i], &now);
        if (!qp__kdb_stamp_same(&now, &db->stamps[i])) return true;
    }
    bool diff = false;
    char p[PATH_MAX];
    pthread_mutex_lock(&db->lock);
    for (int i = 0; i < db->ndoms && !diff; i++) {
        snprintf(p, sizeof p, "%s/%s", db->domdir, db->doms[i].name);
        qp__kdb_stamp(p, &now);
        diff = !qp__kdb_stamp_same(&now, &db->doms[i].st);
    }
    pthread_mutex_unlock(&db->lock);
    return diff;
}

int qp_kdb_reload(qp_kdb **dbp, bool force, char *err, size_t errlen)
{
    qp_kdb *old = *dbp, *db = NULL;
    if (!force && !changed(old)) return 0;
    int rc = qp_kdb_open(old->path, &db, err, errlen);
    if (rc) return rc;
    *dbp = db;
    qp_kdb_close(old);
    return 1;
}
