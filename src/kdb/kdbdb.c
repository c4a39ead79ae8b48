/* kdbdb.c - mounting a kdb+ database: qp_kdb_open and the listings
 * (tables, partitions, meta, count). Tables themselves load in kdbtab.c.
 *
 * Memory rules (kdb.h's, and how they are kept):
 *   - Opening reads folder listings (the root, each segment of par.txt,
 *     each partition folder) and par.txt, plus the first 8 bytes of each
 *     regular file at the root (is it a flat table?). No column file and no
 *     domain is opened: a db of 1,000 partitions costs 1,000 readdirs.
 *   - Domains load once per db, on first use, under the db's one mutex;
 *     every column enumerated against a domain shares that one value.
 *   - Everything else in a qp_kdb is immutable after open, so readers need
 *     no lock but for the domain cache. A db changed on disk is mounted
 *     again into a new qp_kdb (qp_kdb_reload, kdbstamp.c); references to
 *     the old one keep reading the old listing.
 *
 * Layouts: a partitioned root (folders named as dates 2015.01.07, months
 * 2015.01, years 2015 or integers; the kind with the highest precedence
 * date > month > year/int wins; folders of the kinds that lost are not
 * partitions, as q ignores them, and are listed in skipped), with par.txt
 * segments; splayed folders (with .d, or without .d when they hold column
 * files and no folder, as finspace's) and flat table files (ff 01, type
 * 98) at the root; or one splayed folder opened directly. A folder that is
 * none of these where a table could be (an empty folder, one with only a
 * .q script, TorQ's int folders inside a date folder) is not a table: it
 * is listed in skipped, for `db info` to say so. Nothing that cannot be
 * opened is taken for absent: a partition folder of the winning kind that
 * cannot be read (a link to a disk not mounted, no permission) is listed
 * in bad and refuses every partitioned table (its rows there cannot be
 * known); an entry of a partition that cannot be opened is a part of the
 * table of its name when other partitions hold that table (reading it
 * fails with the cause), else listed in skipped with the cause. A name that is
 * both a root table and a partitioned one is refused (one name, one
 * table). Domain files are the root's only (a partition or a table folder
 * of a db opened as if it were a root finds none: a folder above the
 * root is never read, so the answer cannot depend on how the path is
 * spelt); a splayed folder opened alone has the folder above as its root.
 *
 * Unverified (no public db has them): par.txt segments (tested only with a
 * db built by copying fixture partitions), month and year partitions.
 */
#include "kdb_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Partition names                                                     */
/* ------------------------------------------------------------------ */

static bool digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return false;
    return n > 0;
}

static int num(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) v = v * 10 + (s[i] - '0');
    return v;
}

/* The partition kind and value a folder name stands for (PK_NONE: none). */
static int part_of(const char *s, int64_t *v)
{
    size_t n = strlen(s);
    if (n == 10 && s[4] == '.' && s[7] == '.' && digits(s, 4) && digits(s + 5, 2) &&
        digits(s + 8, 2)) {
        int m = num(s + 5, 2), d = num(s + 8, 2);
        if (m < 1 || m > 12 || d < 1 || d > 31) return PK_NONE;
        *v = qp_days_from_ymd(num(s, 4), m, d);
        return PK_DATE;
    }
    if (n == 7 && s[4] == '.' && digits(s, 4) && digits(s + 5, 2)) {
        int m = num(s + 5, 2);
        if (m < 1 || m > 12) return PK_NONE;
        *v = (int64_t)(num(s, 4) - 2000) * 12 + m - 1;
        return PK_MONTH;
    }
    if (digits(s, n) && n <= 18) {
        *v = strtoll(s, NULL, 10);
        return n == 4 ? PK_YEAR : PK_INT;
    }
    return PK_NONE;
}

int qp_kdb_part_name(const char *name, int64_t *v)
{
    switch (part_of(name, v)) {
    case PK_DATE: return QP_DATE;
    case PK_MONTH: return QP_MONTH;
    case PK_YEAR: case PK_INT: return QP_LONG;
    default: return 0;
    }
}

const char *qp__kdb_pcol(int pkind)
{
    switch (pkind) {
    case PK_DATE: return "date";
    case PK_MONTH: return "month";
    case PK_YEAR: return "year";
    case PK_INT: return "int";
    default: return NULL;
    }
}

/* ------------------------------------------------------------------ */
/* Building the listing                                                */
/* ------------------------------------------------------------------ */

typedef struct cand {          /* a partition folder seen while listing */
    int kind;
    int64_t v;
    int err;               /* it cannot be opened: why (errno); 0 */
    char *dir;
} cand;

typedef struct pending {       /* an entry of a partition that cannot be opened */
    char *dir;
    int64_t p;             /* the partition */
    int err;
} pending;

typedef struct opening {
    qp_kdb *db;
    cand *c;
    int64_t nc, capc;
    pending *pe;           /* decided once every partition is listed */
    int64_t npe;
    char *err;
    size_t errlen;
} opening;

char *qp__kdb_join(const char *a, const char *b)
{
    char *s = NULL;
    return asprintf(&s, "%s/%s", a, b) < 0 ? NULL : s;
}

static qp__ktable *table_add(qp_kdb *db, const char *name, int kind)
{
    const char *in = qp_sym_intern(name, strlen(name));
    if (!in) return NULL;
    for (int i = 0; i < db->ntables; i++)
        if (db->tables[i].name == in) return &db->tables[i];
    qp__ktable *t = realloc(db->tables, sizeof *t * (size_t)(db->ntables + 1));
    if (!t) return NULL;
    db->tables = t;
    t = &t[db->ntables++];
    memset(t, 0, sizeof *t);
    t->name = in;
    t->kind = kind;
    return t;
}

static int cand_add(opening *o, int kind, int64_t v, int err, const char *seg, const char *name)
{
    if (o->nc == o->capc) {
        int64_t cap = o->capc ? o->capc * 2 : 64;
        cand *c = realloc(o->c, sizeof *c * (size_t)cap);
        if (!c) return QP_ENOMEM;
        o->c = c;
        o->capc = cap;
    }
    char *dir = qp__kdb_join(seg, name);
    if (!dir) return QP_ENOMEM;
    o->c[o->nc++] = (cand){kind, v, err, dir};
    return 0;
}

/* Whether entry e of folder dir is a folder, or a symbolic link to one
 * (kdb+ sites link partitions to other disks), in *isdir; stat when the
 * file system does not say. Returns 0, or the errno when it cannot be
 * told (a link whose target is gone, a folder not searchable). */
static int entry_stat(const char *dir, const struct dirent *e, bool *isdir)
{
    *isdir = e->d_type == DT_DIR;
    if (e->d_type != DT_UNKNOWN && e->d_type != DT_LNK) return 0;
    char *p = qp__kdb_join(dir, e->d_name);
    struct stat st;
    int rc = !p ? ENOMEM : stat(p, &st) < 0 ? errno : 0;
    *isdir = !rc && S_ISDIR(st.st_mode);
    free(p);
    return rc;
}

static bool entry_is_dir(const char *dir, const struct dirent *e)
{
    bool isdir;
    return entry_stat(dir, e, &isdir) == 0 && isdir;
}

/* 1 when folder dir is a splayed table: it has .d, or it holds column
 * files q writes and no folder (finspace's splays have no .d); 0 when it
 * is not (an empty folder, one holding only a .q script or only folders);
 * -errno when it cannot be opened to tell. */
static int is_splay(const char *dir)
{
    char *d = qp__kdb_join(dir, ".d");
    struct stat st;
    bool yes = d && stat(d, &st) == 0 && S_ISREG(st.st_mode);
    free(d);
    if (yes) return 1;
    DIR *h = opendir(dir);
    if (!h) return -errno;
    bool cols = false, dirs = false;
    for (struct dirent *e; !dirs && (e = readdir(h));) {
        if (e->d_name[0] == '.') continue;
        if (entry_is_dir(dir, e)) { dirs = true; continue; }
        if (cols || strchr(e->d_name, '#')) continue;
        char *p = qp__kdb_join(dir, e->d_name);
        cols = p && qp__kdb_sniff(p);
        free(p);
    }
    closedir(h);
    return cols && !dirs;
}

/* Notes folder dir as listed and left out, for reason (QP_KDB_SKIP_*;
 * kind or err as qp__kskip says). 0 or QP_ENOMEM. */
static int skip_add(qp_kdb *db, const char *dir, int reason, int kind, int err)
{
    int64_t n = db->nskipped;
    if (!(n & (n - 1))) {                 /* 0, 1, 2, 4, ...: grow */
        qp__kskip *s = realloc(db->skipped, sizeof *s * (size_t)(n ? 2 * n : 1));
        if (!s) return QP_ENOMEM;
        db->skipped = s;
    }
    db->skipped[n] = (qp__kskip){strdup(dir), reason, kind, err};
    if (!db->skipped[n].dir) return QP_ENOMEM;
    db->nskipped++;
    return 0;
}

/* Notes partition folder dir as unreadable (err), and watches it: a link
 * to a disk that is mounted again is seen at the next check. 0 or
 * QP_ENOMEM. */
static int bad_add(qp_kdb *db, const char *dir, int err)
{
    qp__kbad *b = realloc(db->bad, sizeof *b * (size_t)(db->nbad + 1));
    if (!b) return QP_ENOMEM;
    db->bad = b;
    if (!(b[db->nbad].dir = strdup(dir))) return QP_ENOMEM;
    b[db->nbad++].err = err;
    return qp__kdb_watch(db, strdup(dir));
}

/* 1 when the regular file at path holds a flat table (ff 01, type 98),
 * judged from its first bytes (or its first block when compressed), 0 when
 * it does not, -errno when it cannot be read: then nobody can tell. */
static int flat_table(const char *path)
{
    uint8_t b[8] = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    ssize_t n = pread(fd, b, sizeof b, 0);
    int e = errno;
    close(fd);
    if (n < 0) return -e;
    if (n >= 3 && b[0] == 0xff && b[1] == 0x01) return b[2] == QP_TABLE;
    if (n == 8 && qp__kdb_zipped(b, 8)) {
        qp__khead h;
        char err[256];
        return qp__kdb_peek(path, &h, err, sizeof err) == 0 && h.kind == KF_FLAT &&
               h.type == QP_TABLE;
    }
    return 0;
}

/* Entry name of root folder seg that names no partition: a splayed
 * folder or a flat table file becomes a table. One that cannot be opened
 * is always noted with its cause (it may be a table: asking for it by name
 * then says why it cannot be read, never that there is none); another
 * folder is noted when parts (a par.txt root's folders may be its
 * segments). 0 or QP_ENOMEM. */
static int root_entry(opening *o, const char *seg, const char *name, bool parts)
{
    char *p = qp__kdb_join(seg, name);
    if (!p) return QP_ENOMEM;
    struct stat st;
    int tk = 0, rc = 0, s = 0;         /* s: is_splay's or flat_table's answer, or -errno */
    bool dir = false;
    if (stat(p, &st) < 0) s = -errno;
    else if ((dir = S_ISDIR(st.st_mode))) s = is_splay(p);
    else if (S_ISREG(st.st_mode)) s = flat_table(p);
    if (s > 0) tk = dir ? KT_SPLAY : KT_FLAT;
    else if (s < 0) rc = skip_add(o->db, p, QP_KDB_SKIP_UNOPENED, 0, -s);
    else if (dir && parts) rc = skip_add(o->db, p, QP_KDB_SKIP_NOT_TABLE, 0, 0);
    qp__ktable *t = tk ? table_add(o->db, name, tk) : NULL;
    if (tk && !t) rc = QP_ENOMEM;
    if (t && !t->path) t->path = p;
    else free(p);
    return rc;
}

/* Lists one folder: partition folders (and links to them, and names of
 * partitions that cannot be opened) become candidates; at the root (root
 * true) other folders and files may be splayed or flat tables. */
static int list_folder(opening *o, const char *seg, bool root, bool parts)
{
    DIR *h = opendir(seg);
    if (!h) {
        snprintf(o->err, o->errlen, "%s: %s", seg, strerror(errno));
        return -errno;
    }
    int rc = 0;
    for (struct dirent *e; !rc && (e = readdir(h));) {
        if (e->d_name[0] == '.') continue;
        int64_t v;
        bool isdir = false;
        int kind = parts ? part_of(e->d_name, &v) : PK_NONE;
        int err = kind != PK_NONE ? entry_stat(seg, e, &isdir) : 0;
        if (kind != PK_NONE && (err || isdir)) rc = cand_add(o, kind, v, err, seg, e->d_name);
        else if (root) rc = root_entry(o, seg, e->d_name, parts);
    }
    closedir(h);
    if (rc == QP_ENOMEM) snprintf(o->err, o->errlen, "%s: out of memory", seg);
    return rc;
}

/* par.txt: one segment folder per line (relative to the root or absolute). */
static int list_segments(opening *o, const char *partxt)
{
    FILE *f = fopen(partxt, "r");
    if (!f) {
        snprintf(o->err, o->errlen, "%s: %s", partxt, strerror(errno));
        return -errno;
    }
    char line[PATH_MAX];
    int rc = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0]) continue;
        char *seg = line[0] == '/' ? strdup(line) : qp__kdb_join(o->db->path, line);
        if (!seg) { rc = QP_ENOMEM; break; }
        rc = qp__kdb_watch(o->db, strdup(seg));
        if (!rc) rc = list_folder(o, seg, false, true);
        free(seg);
    }
    fclose(f);
    return rc;
}

static int cmp_cand(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->v != y->v) return x->v < y->v ? -1 : 1;
    return strcmp(x->dir, y->dir);
}

static int cmp_table(const void *a, const void *b)
{
    return strcmp(((const qp__ktable *)a)->name, ((const qp__ktable *)b)->name);
}

/* Adds partition p (an index into db->parts) to table name, in order; a
 * root table of that name makes it a clash, refused when asked for. */
static int part_add(qp_kdb *db, const char *name, int64_t p)
{
    qp__ktable *t = table_add(db, name, KT_PART);
    if (!t) return QP_ENOMEM;
    if (t->kind != KT_PART) {        /* a root splay or flat file of this name */
        t->clash = t->path;
        t->path = NULL;
        t->kind = KT_PART;
    }
    if (t->nparts == t->cap) {
        int64_t cap = t->cap ? t->cap * 2 : 8;
        int64_t *np = realloc(t->parts, sizeof *np * (size_t)cap);
        if (!np) return QP_ENOMEM;
        t->parts = np;
        t->cap = cap;
    }
    int64_t at = t->nparts;          /* the end, but for a pending entry */
    while (at > 0 && t->parts[at - 1] > p) at--;
    if (at > 0 && t->parts[at - 1] == p) return 0;
    memmove(&t->parts[at + 1], &t->parts[at], sizeof *t->parts * (size_t)(t->nparts - at));
    t->parts[at] = p;
    t->nparts++;
    return 0;
}

static int pend_add(opening *o, const char *dir, int64_t p, int err)
{
    pending *pe = realloc(o->pe, sizeof *pe * (size_t)(o->npe + 1));
    if (!pe) return QP_ENOMEM;
    o->pe = pe;
    if (!(pe[o->npe].dir = strdup(dir))) return QP_ENOMEM;
    pe[o->npe].p = p;
    pe[o->npe++].err = err;
    return 0;
}

/* Lists the tables in partition p's folder; other folders are noted, and
 * entries that cannot be opened (a table linked to a disk that is gone)
 * are decided once every partition is listed. A partition folder that
 * cannot be opened refuses every partitioned table (qp__kdb_refused). */
static int part_tables(opening *o, int64_t p)
{
    qp_kdb *db = o->db;
    const char *pd = db->parts[p].dir;
    DIR *h = opendir(pd);
    if (!h) return bad_add(db, pd, errno);
    int rc = 0;
    for (struct dirent *e; !rc && (e = readdir(h));) {
        bool isdir;
        int err = e->d_name[0] == '.' ? 0 : entry_stat(pd, e, &isdir);
        if (e->d_name[0] == '.' || (!err && !isdir)) continue;
        char *dir = qp__kdb_join(pd, e->d_name);
        int s = !dir ? 0 : err ? -err : is_splay(dir);
        if (!dir) rc = QP_ENOMEM;
        else if (s > 0) rc = part_add(db, e->d_name, p);
        else if (s == 0) rc = skip_add(db, dir, QP_KDB_SKIP_NOT_TABLE, 0, 0);
        else rc = pend_add(o, dir, p, -s);
        free(dir);
    }
    closedir(h);
    return rc;
}

/* An entry of a partition that could not be opened: a part of the table of
 * its name when other partitions hold that table (reading it then fails
 * with the cause, never 0 rows there), else noted (a lost+found). */
static int settle_pending(opening *o)
{
    int rc = 0;
    for (int64_t i = 0; !rc && i < o->npe; i++) {
        const pending *pe = &o->pe[i];
        const char *name = strrchr(pe->dir, '/') + 1, *in = qp_sym_intern(name, strlen(name));
        bool known = false;
        for (int k = 0; in && k < o->db->ntables; k++)
            known |= o->db->tables[k].name == in && o->db->tables[k].kind == KT_PART;
        rc = !in ? QP_ENOMEM : known ? part_add(o->db, name, pe->p)
                                     : skip_add(o->db, pe->dir, QP_KDB_SKIP_UNOPENED, 0, pe->err);
    }
    return rc;
}

/* Keeps the candidates of the winning kind as the db's partitions, and
 * lists each partition's tables. */
static int settle_parts(opening *o)
{
    qp_kdb *db = o->db;
    bool has[PK_INT + 1] = {false};
    for (int64_t i = 0; i < o->nc; i++) has[o->c[i].kind] = true;
    db->pkind = has[PK_DATE] ? PK_DATE : has[PK_MONTH] ? PK_MONTH
              : has[PK_INT] ? PK_INT : has[PK_YEAR] ? PK_YEAR : PK_NONE;
    if (db->pkind == PK_INT)           /* 2015 beside 451353600000000000: ints */
        for (int64_t i = 0; i < o->nc; i++) if (o->c[i].kind == PK_YEAR) o->c[i].kind = PK_INT;
    if (o->nc) qsort(o->c, (size_t)o->nc, sizeof *o->c, cmp_cand);
    db->parts = calloc((size_t)(o->nc ? o->nc : 1), sizeof *db->parts);
    if (!db->parts) return QP_ENOMEM;
    int rc = 0;
    for (int64_t i = 0; !rc && i < o->nc; i++) {
        cand *c = &o->c[i];
        if (c->kind != db->pkind) {          /* as q, not a partition: noted */
            rc = skip_add(db, c->dir, QP_KDB_SKIP_OTHER_KIND, c->kind, 0);
        } else if (c->err) {
            rc = bad_add(db, c->dir, c->err);
        } else {
            db->parts[db->nparts++] = (qp__kpart){c->v, c->dir};
            c->dir = NULL;
        }
    }
    for (int64_t p = 0; !rc && p < db->nparts; p++) rc = part_tables(o, p);
    return rc ? rc : settle_pending(o);
}

/* No tables found: path itself may be one splayed table, whose root (its
 * domains) is the folder above it, found from the real path so that
 * "t", "./t" and "/db/t" mean one folder. */
static int lone_splay(opening *o)
{
    qp_kdb *db = o->db;
    if (db->ntables || db->nparts || db->nbad || is_splay(db->path) <= 0) return 0;
    const char *slash = strrchr(db->path, '/');
    qp__ktable *t = table_add(db, slash ? slash + 1 : db->path, KT_SPLAY);
    if (!t || !(t->path = strdup(db->path))) return QP_ENOMEM;
    char real[PATH_MAX];
    if (!realpath(db->path, real)) {
        int e = errno;
        snprintf(o->err, o->errlen, "%s: %s", db->path, strerror(e));
        return -e;
    }
    char *up = strrchr(real, '/');
    free(db->domdir);
    db->domdir = up == real ? strdup("/") : strndup(real, (size_t)(up - real));
    return db->domdir ? 0 : QP_ENOMEM;
}

int qp_kdb_open(const char *path, qp_kdb **out, char *err, size_t errlen)
{
    *out = NULL;
    struct stat st;
    if (stat(path, &st) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -errno;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: not a folder (a kdb+ db is a folder: a partitioned root, a "
                 "root of splayed tables, or one splayed table)", path);
        return QP_EARG;
    }
    qp_kdb *db = calloc(1, sizeof *db);
    opening o = {.db = db, .err = err, .errlen = errlen};
    int rc = QP_ENOMEM;
    if (!db) goto done;
    atomic_init(&db->refs, 1);
    pthread_mutex_init(&db->lock, NULL);
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    if (!(db->path = strndup(path, n)) || !(db->domdir = strdup(db->path))) goto done;
    char *partxt = qp__kdb_join(db->path, "par.txt");
    /* stamped before listing: a change while listing shows at the next check */
    if (!partxt || qp__kdb_watch(db, strdup(db->path)) || qp__kdb_watch(db, strdup(partxt)))
        { free(partxt); goto done; }
    bool seg = stat(partxt, &st) == 0 && S_ISREG(st.st_mode);
    rc = list_folder(&o, db->path, true, !seg);
    if (!rc && seg) rc = list_segments(&o, partxt);
    free(partxt);
    if (!rc) rc = settle_parts(&o);
    if (!rc) rc = lone_splay(&o);
    if (!rc && !db->ntables && db->nbad) {
        snprintf(err, errlen, "%s: no kdb+ table could be listed: partition folder %s cannot be "
                 "read (%s)", db->path, db->bad[0].dir, strerror(db->bad[0].err));
        rc = QP_EARG;
    } else if (!rc && !db->ntables) {
        snprintf(err, errlen, "%s: no kdb+ tables found (a db root holds sym and date folders "
                 "or splayed tables)", db->path);
        rc = QP_EARG;
    }
    if (!rc && db->ntables) qsort(db->tables, (size_t)db->ntables, sizeof *db->tables, cmp_table);
done:
    if (rc == QP_ENOMEM) snprintf(err, errlen, "%s: out of memory", path);
    for (int64_t i = 0; i < o.nc; i++) free(o.c[i].dir);
    for (int64_t i = 0; i < o.npe; i++) free(o.pe[i].dir);
    free(o.c);
    free(o.pe);
    if (rc) qp_kdb_close(db);
    else *out = db;
    return rc;
}

qp_kdb *qp_kdb_ref(qp_kdb *db)
{
    atomic_fetch_add(&db->refs, 1);
    return db;
}

void qp_kdb_close(qp_kdb *db)
{
    if (!db || atomic_fetch_sub(&db->refs, 1) > 1) return;
    for (int64_t i = 0; i < db->nparts; i++) free(db->parts[i].dir);
    for (int64_t i = 0; i < db->nskipped; i++) free(db->skipped[i].dir);
    for (int64_t i = 0; i < db->nbad; i++) free(db->bad[i].dir);
    for (int i = 0; i < db->nwatch; i++) free(db->watch[i]);
    for (int i = 0; i < db->ntables; i++) {
        free(db->tables[i].path);
        free(db->tables[i].clash);
        free(db->tables[i].parts);
        free((void *)db->tables[i].rows);
        qp_unref(db->tables[i].raw);
        qp_unref(db->tables[i].mapped[0]);
        qp_unref(db->tables[i].mapped[1]);
    }
    for (int i = 0; i < db->ndoms; i++) qp_unref(db->doms[i].v);
    free(db->doms);
    free(db->skipped);
    free(db->bad);
    free(db->watch);
    free(db->stamps);
    free(db->tables);
    free(db->parts);
    free(db->path);
    free(db->domdir);
    pthread_mutex_destroy(&db->lock);
    free(db);
}

const char *qp_kdb_path(const qp_kdb *db) { return db->path; }

const char *qp_kdb_skipped(const qp_kdb *db, int64_t i, int *reason, char *why, size_t whylen)
{
    if (i < 0 || i >= db->nskipped) return NULL;
    const qp__kskip *k = &db->skipped[i];
    if (reason) *reason = k->reason;
    if (!why || !whylen) return k->dir;
    if (k->reason == QP_KDB_SKIP_NOT_TABLE)
        snprintf(why, whylen, "not a table (neither .d nor column files)");
    else if (k->reason == QP_KDB_SKIP_OTHER_KIND)
        snprintf(why, whylen, "named as a %s partition, but this db is partitioned by %s: not one "
                 "of its partitions (q ignores it too)", qp__kdb_pcol(k->kind),
                 qp__kdb_pcol(db->pkind));
    else
        snprintf(why, whylen, "cannot be opened (%s)", strerror(k->err));
    return k->dir;
}

const char *qp_kdb_unreadable(const qp_kdb *db, int64_t i, int *err)
{
    if (i < 0 || i >= db->nbad) return NULL;
    if (err) *err = db->bad[i].err;
    return db->bad[i].dir;
}

/* ------------------------------------------------------------------ */
/* Lookups                                                             */
/* ------------------------------------------------------------------ */

qp__ktable *qp__kdb_find(qp_kdb *db, const char *name)
{
    int lo = 0, hi = db->ntables - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(db->tables[mid].name, name);
        if (!c) return &db->tables[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

qp_value *qp_kdb_tables(qp_kdb *db)
{
    qp_value *v = qp_vector(QP_SYMBOL, db->ntables);
    for (int i = 0; v && i < db->ntables; i++) qp_S(v)[i] = db->tables[i].name;
    return v;
}

/* The root entry named table that could not be opened, or NULL. */
static const qp__kskip *unopened(const qp_kdb *db, const char *table)
{
    size_t n = strlen(table);
    for (int64_t i = 0; i < db->nskipped; i++) {
        const qp__kskip *k = &db->skipped[i];
        size_t m = strlen(k->dir);
        if (k->reason == QP_KDB_SKIP_UNOPENED && m > n && k->dir[m - n - 1] == '/' &&
            !strcmp(k->dir + m - n, table) && !strncmp(k->dir, db->path, m - n - 1))
            return k;
    }
    return NULL;
}

bool qp_kdb_has(qp_kdb *db, const char *table)
{
    return qp__kdb_find(db, table) != NULL || unopened(db, table) != NULL;
}

const char *qp_kdb_part_column(qp_kdb *db, const char *table)
{
    qp__ktable *t = qp__kdb_find(db, table);
    return t && t->kind == KT_PART ? qp__kdb_pcol(db->pkind) : NULL;
}

qp_value *qp__kdb_refused(const qp_kdb *db, const qp__ktable *t)
{
    if (t->kind == KT_PART && db->nbad)
        return qp_error("partition folder %s cannot be read (%s)%s: the rows of table %s there "
                        "cannot be known, so it is refused; mount or fix the folder, or remove it",
                        db->bad[0].dir, strerror(db->bad[0].err),
                        db->nbad > 1 ? " (and more: qpeach db info lists them)" : "", t->name);
    if (!t->clash) return NULL;
    return qp_error("table %s is in two places: %s at the db root and %s/%s (partitioned, %lld "
                    "partition%s): one name must be one table, so it is refused; rename or "
                    "remove one", t->name, t->clash, db->parts[t->parts[0]].dir, t->name,
                    (long long)t->nparts, t->nparts == 1 ? "" : "s");
}

qp_value *qp__kdb_no_table(const qp_kdb *db, const char *table)
{
    const qp__kskip *k = unopened(db, table);
    if (k)
        return qp_error("%s: table %s cannot be read: %s: %s", db->path, table, k->dir,
                        strerror(k->err));
    return qp_error("%s: no table %s", db->path, table);
}

qp_value *qp_kdb_partitions(qp_kdb *db, const char *table)
{
    qp__ktable *t = qp__kdb_find(db, table);
    if (!t) return qp__kdb_no_table(db, table);
    qp_value *no = qp__kdb_refused(db, t);
    if (no) return no;
    if (t->kind != KT_PART) return qp_vector(QP_LONG, 0);
    int type = db->pkind == PK_DATE ? QP_DATE : db->pkind == PK_MONTH ? QP_MONTH : QP_LONG;
    qp_value *v = qp_vector(type, t->nparts);
    for (int64_t i = 0; v && i < t->nparts; i++) {
        int64_t x = db->parts[t->parts[i]].v;
        if (type == QP_LONG) qp_J(v)[i] = x;
        else qp_I(v)[i] = (int32_t)x;
    }
    return v;
}

char *qp_kdb_table_dir(qp_kdb *db, const char *table, int64_t part)
{
    qp__ktable *t = qp__kdb_find(db, table);
    if (!t) return NULL;
    if (t->kind != KT_PART) return t->path ? strdup(t->path) : NULL;
    if (part < 0 || part >= t->nparts) return NULL;
    return qp__kdb_join(db->parts[t->parts[part]].dir, table);
}

/* ------------------------------------------------------------------ */
/* Domains                                                             */
/* ------------------------------------------------------------------ */

qp_value *qp__kdb_nodomain(const char *root, const char *path, const char *column,
                           const char *name)
{
    return qp_error("%s: %s%s%senumeration domain `%s not found: the db root %s has no domain "
                    "file %s (domains are read from the db root only)", path, column ? "column " : "",
                    column ? column : "", column ? ": " : "", name, root, name);
}

bool qp__kdb_has_domain(const qp_kdb *db, const char *name)
{
    char p[PATH_MAX];
    struct stat st;
    return snprintf(p, sizeof p, "%s/%s", db->domdir, name) < (int)sizeof p &&
           stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* The domain name of db: read from the root once, then shared (its file
 * stamped first, for qp_kdb_reload to see it change). Under the lock. */
static qp_value *db_domain(void *data, const char *name)
{
    qp__colenv *ce = data;
    qp_kdb *db = ce->db;
    qp_value *d = NULL;
    pthread_mutex_lock(&db->lock);
    for (int i = 0; i < db->ndoms && !d; i++)
        if (strcmp(db->doms[i].name, name) == 0) d = qp_ref(db->doms[i].v);
    if (d) goto done;
    char p[PATH_MAX];
    qp__kstamp st = {0};
    if (snprintf(p, sizeof p, "%s/%s", db->domdir, name) < (int)sizeof p) qp__kdb_stamp(p, &st);
    if (!(d = qp__kdb_domain_in(db->domdir, name)))
        d = qp__kdb_nodomain(db->domdir, ce->path, ce->column, name);
    if (!d || qp_is_error(d) || strlen(name) >= sizeof db->doms[0].name) goto done;
    if (db->ndoms == db->capdoms) {
        int cap = db->capdoms ? db->capdoms * 2 : 4;
        qp__kdom *nd = realloc(db->doms, sizeof *nd * (size_t)cap);
        if (!nd) goto done;             /* not cached: loaded again next time */
        db->doms = nd;
        db->capdoms = cap;
    }
    snprintf(db->doms[db->ndoms].name, sizeof db->doms[0].name, "%s", name);
    db->doms[db->ndoms].st = st;
    db->doms[db->ndoms++].v = qp_ref(d);
done:
    pthread_mutex_unlock(&db->lock);
    return d;
}

static int db_companion(void *data, const char *suffix, qp_buf **out, char *err, size_t errlen)
{
    qp__colenv *ce = data;
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s%s", ce->path, suffix) >= (int)sizeof p) {
        snprintf(err, errlen, "%s%s: path too long", ce->path, suffix);
        return QP_EARG;
    }
    return qp__kdb_bytes(p, out, err, errlen);
}

void qp__kdb_colenv(qp__colenv *ce, qp__kdb_env *env, qp_kdb *db, const char *path,
                    const char *column, unsigned flags)
{
    ce->db = db;
    ce->path = path;
    ce->column = column;
    *env = (qp__kdb_env){db_domain, db_companion, ce, flags};
}
