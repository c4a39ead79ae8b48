/* journal.c - the msgpack job journal: header, records (fsync'd in
 * groups by qp_journal_sync), torn tails. */
/* SHA256_Init & co. are deprecated in OpenSSL 3 in favour of EVP, but the
 * first EVP digest of a process loads openssl.cnf and the default provider:
 * about 1 ms, plus its teardown at exit, on every `qpeach run` (whose whole
 * fixed cost is a few ms). The low-level calls need no initialisation. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "qpeach/journal.h"
#include "qpeach/ipc.h"
#include "qpeach/value.h"
#include "core/fileio_int.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <msgpack.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "qpeach_journal"

typedef struct record {
    int64_t task;
    uint8_t *bytes;
    size_t len;
    bool current;          /* written for what its task reads now */
} record;

struct qp_journal {
    int fd;
    int state;
    record *rec;
    int64_t n, cap;
    uint8_t (*task_ids)[32]; /* each task's identity (NULL: none has one) */
    int64_t ntasks;
    /* Records staged for the next write(): one buffer, grown as needed and
     * kept, so a record costs no allocation of its own. */
    uint8_t *pend;
    size_t npend, cappend;
    /* The syncer thread (started by the first qp_journal_sync_async): it
     * runs fdatasync while the dispatch loop goes on. Generations count
     * writes; mu guards everything below. */
    pthread_t th;
    bool th_started, th_stop;
    pthread_mutex_t mu;
    pthread_cond_t want_cv, done_cv;
    uint64_t gen;          /* writes so far */
    uint64_t want;         /* sync requested up to this generation */
    uint64_t synced;       /* durable up to this generation */
    int err;               /* a failed fdatasync's -errno; sticks */
};

/* ---- hashing ---- */

void qp_sha256(const void *data, size_t len, uint8_t out[32])
{
    /* Not SHA256(): in OpenSSL 3 that one goes through EVP. */
    SHA256_CTX ctx;
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, data, len);
    SHA256_Final(out, &ctx);
}

int qp_sha256_file(const char *path, uint8_t out[32])
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    SHA256_CTX ctx;
    SHA256_Init(&ctx);
    static __thread uint8_t buf[1 << 16];
    int rc = 0;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) { rc = -errno; break; }
        if (r == 0) break;
        SHA256_Update(&ctx, buf, (size_t)r);
    }
    if (!rc) SHA256_Final(out, &ctx);
    close(fd);
    return rc;
}

/* ---- writing ---- */

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static int write_header(int fd, const qp_journal_id *ids, int nids, const void *plan,
                        size_t planlen)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    pack_str(&pk, MAGIC);
    msgpack_pack_int(&pk, 1);
    pack_str(&pk, "ids");
    msgpack_pack_map(&pk, (size_t)nids);
    for (int i = 0; i < nids; i++) {
        pack_str(&pk, ids[i].what);
        msgpack_pack_bin(&pk, 32);
        msgpack_pack_bin_body(&pk, ids[i].sha, 32);
    }
    pack_str(&pk, "plan");
    msgpack_pack_bin(&pk, planlen);
    msgpack_pack_bin_body(&pk, plan, planlen);
    int rc = sb.data ? qp__write_all(fd, sb.data, sb.size) : QP_ENOMEM;
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* Task task's identity: the one given at open, else 32 zero bytes. */
static const uint8_t *task_id(const qp_journal *j, int64_t task)
{
    static const uint8_t none[32];
    return j->task_ids && task >= 0 && task < j->ntasks ? j->task_ids[task] : none;
}

/* Room for n more staged bytes: a pointer to them, or NULL on OOM. */
static uint8_t *stage_room(qp_journal *j, size_t n)
{
    if (j->npend + n > j->cappend) {
        size_t cap = j->cappend ? j->cappend : 4096;
        while (cap < j->npend + n) cap *= 2;
        uint8_t *b = realloc(j->pend, cap);
        if (!b) return NULL;
        j->pend = b;
        j->cappend = cap;
    }
    return j->pend + j->npend;
}

/* Stages one record whose payload (len bytes) fill() writes: packed by
 * hand (array(3), uint64, bin32 length, the payload, bin8 of the task's
 * identity), so that staged records go out in one write(). */
static int stage(qp_journal *j, int64_t task, size_t len,
                 void (*fill)(uint8_t *dst, const void *src, size_t len), const void *src)
{
    if (len > UINT32_MAX) return -EFBIG;
    size_t h = 1 + 9 + 5, whole = h + len + 2 + 32;
    uint8_t *rec = stage_room(j, whole);
    if (!rec) return QP_ENOMEM;
    size_t at = 0;
    rec[at++] = 0x93;
    rec[at++] = 0xcf;
    for (int i = 7; i >= 0; i--) rec[at++] = (uint8_t)((uint64_t)task >> (8 * i));
    rec[at++] = 0xc6;
    for (int i = 3; i >= 0; i--) rec[at++] = (uint8_t)((uint64_t)len >> (8 * i));
    fill(rec + h, src, len);
    rec[h + len] = 0xc4;
    rec[h + len + 1] = 32;
    memcpy(rec + h + len + 2, task_id(j, task), 32);
    j->npend += whole;
    return 0;
}

static void fill_bytes(uint8_t *dst, const void *src, size_t len)
{
    if (len) memcpy(dst, src, len);
}

/* A value as the response message that carried it would be: header and
 * body, so that decoding it on --resume gives the same value. */
static void fill_value(uint8_t *dst, const void *src, size_t len)
{
    dst[0] = 1;
    dst[1] = 2;            /* a response */
    dst[2] = dst[3] = 0;
    uint32_t n = (uint32_t)len;
    memcpy(dst + 4, &n, 4);
    qp_ipc_encode_body(src, dst + 8);
}

int qp_journal_stage_value(qp_journal *j, int64_t task, const qp_value *v)
{
    int64_t n = qp_ipc_size(v);
    if (n < 0) return (int)n;
    return stage(j, task, (size_t)n + 8, fill_value, v);
}

int qp_journal_flush(qp_journal *j)
{
    /* Not fsync'd here: qp_journal_sync (or qp_journal_append) does that,
     * once for a group of records. A crash mid-write leaves a torn record,
     * which open() drops. */
    if (!j->npend) return 0;
    int rc = qp__write_all(j->fd, j->pend, j->npend);
    j->npend = 0;
    if (!rc) {
        pthread_mutex_lock(&j->mu);
        j->gen++;
        pthread_mutex_unlock(&j->mu);
    }
    return rc;
}

int qp_journal_write(qp_journal *j, int64_t task, const void *bytes, size_t len)
{
    int rc = stage(j, task, len, fill_bytes, bytes);
    return rc ? rc : qp_journal_flush(j);
}

static void *syncer(void *data)
{
    qp_journal *j = data;
    pthread_mutex_lock(&j->mu);
    for (;;) {
        while (!j->th_stop && j->want <= j->synced) pthread_cond_wait(&j->want_cv, &j->mu);
        if (j->th_stop) break;
        uint64_t target = j->want;
        pthread_mutex_unlock(&j->mu);
        int rc = fdatasync(j->fd) ? -errno : 0;      /* every write before `target` */
        pthread_mutex_lock(&j->mu);
        if (rc && !j->err) j->err = rc;
        j->synced = target;
        pthread_cond_broadcast(&j->done_cv);
    }
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

int qp_journal_sync_async(qp_journal *j)
{
    int frc = qp_journal_flush(j);
    if (frc) return frc;
    pthread_mutex_lock(&j->mu);
    if (!j->th_started && !j->th_stop) {
        j->th_started = pthread_create(&j->th, NULL, syncer, j) == 0;
        j->th_stop = !j->th_started;        /* no thread: sync inline from now on */
    }
    int rc = j->err;
    bool inline_sync = !j->th_started && j->gen > j->synced;
    uint64_t target = j->gen;
    if (j->th_started && j->gen > j->want) {
        j->want = j->gen;
        pthread_cond_signal(&j->want_cv);
    }
    pthread_mutex_unlock(&j->mu);
    if (inline_sync && !rc) {
        rc = fdatasync(j->fd) ? -errno : 0;
        if (!rc) j->synced = target;
    }
    return rc;
}

int qp_journal_sync(qp_journal *j)
{
    int rc = qp_journal_sync_async(j);
    pthread_mutex_lock(&j->mu);
    uint64_t target = j->gen;
    while (j->th_started && !j->err && j->synced < target) pthread_cond_wait(&j->done_cv, &j->mu);
    if (!rc) rc = j->err;
    pthread_mutex_unlock(&j->mu);
    return rc;
}

int qp_journal_append(qp_journal *j, int64_t task, const void *bytes, size_t len)
{
    int rc = qp_journal_write(j, task, bytes, len);
    return rc ? rc : qp_journal_sync(j);
}

/* ---- reading ---- */

static const msgpack_object *map_get(const msgpack_object *m, const char *key)
{
    if (m->type != MSGPACK_OBJECT_MAP) return NULL;
    size_t n = strlen(key);
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n
            && !memcmp(k->via.str.ptr, key, n))
            return &m->via.map.ptr[i].val;
    }
    return NULL;
}

/* Compares a header with this run's ids and plan; writes what differs
 * into why ("" when it matches). */
static void header_diff(const msgpack_object *hd, const qp_journal_id *ids, int nids,
                        const void *plan, size_t planlen, char *why, size_t whylen)
{
    why[0] = '\0';
    const msgpack_object *v = map_get(hd, MAGIC), *mids = map_get(hd, "ids"),
                         *mplan = map_get(hd, "plan");
    if (!v || v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 != 1 || !mids
        || !mplan || mplan->type != MSGPACK_OBJECT_BIN) {
        snprintf(why, whylen, "not a qpeach journal (version 1)");
        return;
    }
    for (int i = 0; i < nids; i++) {
        const msgpack_object *s = map_get(mids, ids[i].what);
        if (!s || s->type != MSGPACK_OBJECT_BIN || s->via.bin.size != 32
            || memcmp(s->via.bin.ptr, ids[i].sha, 32)) {
            size_t used = strlen(why);
            snprintf(why + used, whylen - used, "%s%s changed", used ? ", " : "", ids[i].what);
        }
    }
    if (!why[0] && (mids->via.map.size != (uint32_t)nids || mplan->via.bin.size != planlen
                    || (planlen && memcmp(mplan->via.bin.ptr, plan, planlen))))
        snprintf(why, whylen, "partition plan changed");
}

static int add_record(qp_journal *j, int64_t task, const void *bytes, size_t len,
                      const uint8_t *id)
{
    if (j->n == j->cap) {
        int64_t cap = j->cap ? j->cap * 2 : 64;
        record *r = realloc(j->rec, (size_t)cap * sizeof *r);
        if (!r) return QP_ENOMEM;
        j->rec = r;
        j->cap = cap;
    }
    record *r = &j->rec[j->n];
    r->bytes = malloc(len ? len : 1);
    if (!r->bytes) return QP_ENOMEM;
    if (len) memcpy(r->bytes, bytes, len);
    r->len = len;
    r->task = task;
    r->current = !memcmp(id, task_id(j, task), 32);
    j->n++;
    return 0;
}

static int read_file(int fd, char **out, size_t *len)
{
    struct stat st;
    if (fstat(fd, &st)) return -errno;
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) return QP_ENOMEM;
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = pread(fd, buf + got, (size_t)st.st_size - got, (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) { int e = errno; free(buf); return -e; }
        if (r == 0) break;
        got += (size_t)r;
    }
    *out = buf;
    *len = got;
    return 0;
}

/* A record's task identity: its third item, or for a record of two items
 * (written before records had one) 32 zero bytes. NULL when o is not a
 * record. */
static const uint8_t *record_id(const msgpack_object *o)
{
    static const uint8_t none[32];
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 2 || o->via.array.size > 3)
        return NULL;
    const msgpack_object *a = o->via.array.ptr;
    if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[1].type != MSGPACK_OBJECT_BIN)
        return NULL;
    if (o->via.array.size == 2) return none;
    return a[2].type == MSGPACK_OBJECT_BIN && a[2].via.bin.size == 32
               ? (const uint8_t *)a[2].via.bin.ptr : NULL;
}

/* Loads an existing journal. Returns 0 with the records loaded and *keep
 * set (the end offset of the last whole record in *good), or 0 with *keep
 * false and why set (start over), or a negative code. */
static int load(qp_journal *j, const qp_journal_id *ids, int nids, const void *plan,
                size_t planlen, bool *keep, size_t *good, char *why, size_t whylen)
{
    char *buf = NULL;
    size_t len = 0, off = 0;
    *keep = false;
    int rc = read_file(j->fd, &buf, &len);
    if (rc) return rc;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    int r = msgpack_unpack_next(&u, buf, len, &off);
    if (r != MSGPACK_UNPACK_SUCCESS) {
        snprintf(why, whylen, len ? "its header is damaged" : "it is empty");
        goto done;
    }
    header_diff(&u.data, ids, nids, plan, planlen, why, whylen);
    if (why[0]) goto done;
    *keep = true;
    *good = off;
    for (;;) {
        size_t at = off;
        r = msgpack_unpack_next(&u, buf, len, &off);
        if (r != MSGPACK_UNPACK_SUCCESS) break;
        const uint8_t *id = record_id(&u.data);
        if (!id) {
            off = at;
            break;
        }
        const msgpack_object *a = u.data.via.array.ptr;
        rc = add_record(j, (int64_t)a[0].via.u64, a[1].via.bin.ptr, a[1].via.bin.size, id);
        if (rc) break;
        *good = off;
    }
    if (!rc && *good < len)
        snprintf(why, whylen, "dropped a torn last record (%zu bytes)", len - *good);
done:
    msgpack_unpacked_destroy(&u);
    free(buf);
    return rc;
}

int qp_journal_open(const char *path, const qp_journal_id *ids, int nids, const void *plan,
                    size_t planlen, const uint8_t (*task_ids)[32], int64_t ntasks, bool resume,
                    qp_journal **out, char *msg, size_t msglen)
{
    *out = NULL;
    msg[0] = '\0';
    qp_journal *j = calloc(1, sizeof *j);
    if (j) {
        pthread_mutex_init(&j->mu, NULL);
        pthread_cond_init(&j->want_cv, NULL);
        pthread_cond_init(&j->done_cv, NULL);
        j->fd = -1;
    }
    if (!j) return QP_ENOMEM;
    int rc = QP_ENOMEM;
    if (task_ids && ntasks > 0) {
        if (!(j->task_ids = malloc((size_t)ntasks * 32))) goto fail;
        memcpy(j->task_ids, task_ids, (size_t)ntasks * 32);
        j->ntasks = ntasks;
    }
    j->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (j->fd < 0) {
        rc = -errno;
        snprintf(msg, msglen, "journal %s: %s", path, strerror(errno));
        goto fail;
    }
    bool keep = false;
    size_t good = 0;
    char why[256] = "";
    struct stat st;
    if (resume && !fstat(j->fd, &st) && st.st_size > 0) {
        rc = load(j, ids, nids, plan, planlen, &keep, &good, why, sizeof why);
        if (rc) { snprintf(msg, msglen, "journal %s: %s", path, qp_strerror(rc)); goto fail; }
    } else if (!resume && !fstat(j->fd, &st) && st.st_size > 0) {
        snprintf(msg, msglen, "journal %s: starting over (--fresh); the earlier run's finished "
                 "tasks are discarded", path);
    }
    if (keep) {
        j->state = QP_JOURNAL_RESUMED;
        if (why[0]) snprintf(msg, msglen, "journal %s: %s", path, why);
        if (ftruncate(j->fd, (off_t)good) || lseek(j->fd, 0, SEEK_END) < 0) {
            rc = -errno;
            snprintf(msg, msglen, "journal %s: %s", path, strerror(errno));
            goto fail;
        }
    } else {
        for (int64_t i = 0; i < j->n; i++) free(j->rec[i].bytes);
        j->n = 0;
        j->state = resume && why[0] ? QP_JOURNAL_RESTARTED : QP_JOURNAL_NEW;
        if (resume && why[0])
            snprintf(msg, msglen, "journal %s cannot be resumed (%s): starting over", path, why);
        if (ftruncate(j->fd, 0) || lseek(j->fd, 0, SEEK_SET) < 0) {
            rc = -errno;
            snprintf(msg, msglen, "journal %s: %s", path, strerror(errno));
            goto fail;
        }
        rc = write_header(j->fd, ids, nids, plan, planlen);
        if (rc) { snprintf(msg, msglen, "journal %s: %s", path, qp_strerror(rc)); goto fail; }
        /* Durable with the first records, by the next qp_journal_sync: a
         * header lost to a power cut before then loses no finished task
         * (there is none yet), and --resume then starts over. */
        j->gen++;
    }
    *out = j;
    return 0;
fail:
    qp_journal_close(j);
    return rc;
}

void qp_journal_close(qp_journal *j)
{
    if (!j) return;
    pthread_mutex_lock(&j->mu);
    j->th_stop = true;
    pthread_cond_signal(&j->want_cv);
    pthread_mutex_unlock(&j->mu);
    if (j->th_started) pthread_join(j->th, NULL);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->want_cv);
    pthread_cond_destroy(&j->done_cv);
    if (j->fd >= 0) close(j->fd);
    for (int64_t i = 0; i < j->n; i++) free(j->rec[i].bytes);
    free(j->rec);
    free(j->task_ids);
    free(j->pend);
    free(j);
}

int qp_journal_state(const qp_journal *j) { return j->state; }
int64_t qp_journal_count(const qp_journal *j) { return j->n; }
bool qp_journal_current(const qp_journal *j, int64_t i) { return j->rec[i].current; }

void qp_journal_record(const qp_journal *j, int64_t i, int64_t *task, const uint8_t **bytes,
                       size_t *len)
{
    *task = j->rec[i].task;
    *bytes = j->rec[i].bytes;
    *len = j->rec[i].len;
}
