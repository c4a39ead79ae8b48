/* qpeach/journal.h - the job journal: a msgpack file next to the output
 * holding each finished task's result, so `qpeach run --resume` redoes only
 * what was not finished and writes the same bytes.
 *
 * File format: a stream of msgpack objects.
 *   header: map {"qpeach_journal": 1, "ids": {what: bin[32], ...},
 *                "plan": bin}
 *   record: array [task id (uint), result (bin: the q IPC message bytes),
 *                  the task's identity (bin[32]; zeros: none)]
 *           (records of two items, from before identities, read as zeros)
 * Every record is written with one write() and fsync'd (in groups: see
 * qp_journal_sync) before the job's output is written. After a crash the
 * last record may be torn: opening the journal drops it (the task simply runs again). A header whose ids or plan
 * differ from this run's means the job file, its code or its input changed:
 * the journal is started over and the message says what changed. A task
 * may have an identity of its own (what it alone reads: a kdb+ partition's
 * files); a record written under another identity than the task has now
 * is kept in the file but not current (qp_journal_current): that task
 * runs again while the others resume.
 *
 * Memory rules: the journal owns the records it read; record bytes are
 * borrowed, valid until qp_journal_close (NULL-safe).
 */
#ifndef QPEACH_JOURNAL_H
#define QPEACH_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct qp_journal qp_journal;
struct qp_value;


/* One named SHA-256 that must match for a journal to be resumed. */
typedef struct qp_journal_id {
    const char *what;      /* "job file", "code", "input", ... */
    uint8_t sha[32];
} qp_journal_id;

enum qp_journal_state {
    QP_JOURNAL_NEW = 0,        /* no journal, or not resuming: started empty */
    QP_JOURNAL_RESUMED = 1,    /* the records of an earlier run were kept */
    QP_JOURNAL_RESTARTED = 2,  /* an earlier journal did not match: started over */
};

/* Opens (creating or truncating) the journal at path. With resume, an
 * existing journal whose ids and plan match is kept and its records loaded;
 * one that does not match is started over and msg says why. msg also notes
 * a dropped torn record. task_ids (borrowed, copied; NULL: no task has an
 * identity) holds ntasks identities, task i's at task_ids[i]; every record
 * written carries its task's. A new header is written but not yet fsync'd:
 * the next qp_journal_sync (or append) makes it durable with the first
 * records. Returns 0 and *out, or -errno / QP_ENOMEM with msg set (on
 * QP_ENOMEM it may be empty). */
int qp_journal_open(const char *path, const qp_journal_id *ids, int nids,
                    const void *plan, size_t planlen, const uint8_t (*task_ids)[32],
                    int64_t ntasks, bool resume, qp_journal **out, char *msg, size_t msglen);
void qp_journal_close(qp_journal *j);            /* NULL-safe */

int qp_journal_state(const qp_journal *j);       /* enum qp_journal_state */
/* Records loaded on open, in file order. A task id may appear more than
 * once; every copy is a whole result (the scheduler takes the first). */
int64_t qp_journal_count(const qp_journal *j);
/* Record i: its task id, and its bytes (borrowed). */
void qp_journal_record(const qp_journal *j, int64_t i, int64_t *task,
                       const uint8_t **bytes, size_t *len);
/* Whether record i was written under the identity its task has now
 * (task_ids at open): false means what the task reads changed since, and
 * its result must not be reused. */
bool qp_journal_current(const qp_journal *j, int64_t i);

/* Appends and fsyncs one record. Returns 0, -errno or QP_ENOMEM. Thread-compatible:
 * one thread appends at a time. */
int qp_journal_append(qp_journal *j, int64_t task, const void *bytes, size_t len);
/* Group commit: qp_journal_write appends a record (one write(), so a
 * killed process loses nothing; a power cut may lose it) and
 * qp_journal_sync makes every record written so far durable with one
 * fdatasync (a no-op when nothing is pending), waiting for it.
 * qp_journal_sync_async asks for the same without waiting: a thread of the
 * journal's runs the fdatasync (tens of ms on some disks) while the caller
 * goes on; the scheduler asks once per dispatch round and waits (sync)
 * only before the output is written. Both return 0 or -errno, including a
 * failed earlier fdatasync (the error sticks; qp_journal_write also
 * QP_ENOMEM). One thread calls these. */
int qp_journal_write(qp_journal *j, int64_t task, const void *bytes, size_t len);
/* Many records in one write(): qp_journal_stage_value stages a record of v
 * (borrowed) as the q IPC response message that would carry it (decoding
 * it on resume gives v), with no allocation of its own once the journal's
 * buffer has grown; qp_journal_flush writes every staged record with one
 * write() (qp_journal_write and the syncs flush first). 0, -errno,
 * QP_ETYPE (v cannot be encoded) or QP_ENOMEM. */
int qp_journal_stage_value(qp_journal *j, int64_t task, const struct qp_value *v);
int qp_journal_flush(qp_journal *j);
int qp_journal_sync(qp_journal *j);
int qp_journal_sync_async(qp_journal *j);

/* SHA-256 of a file's bytes. Returns 0 or -errno. */
int qp_sha256_file(const char *path, uint8_t out[32]);
/* SHA-256 of memory. */
void qp_sha256(const void *data, size_t len, uint8_t out[32]);

#endif
