/* keyset_int.h - the distinct keys of one width, numbered in the order
 * they were first added: open addressing over ids (at most half full),
 * the key bytes of id q at keys + q * kw (keyset.c). What sum-by-key adds
 * partials' rows up by (sched/merge.c) and what a column's group index
 * numbers its keys by (group.c). Keys are compared as bytes: callers make
 * equal items equal bytes first (qp_item_key). Not a public header.
 *
 * Memory rules: the set owns its arrays; qp__keyset_free frees them. A
 * zeroed set is not usable: qp__keyset_init it. Not thread-safe.
 */
#ifndef QPEACH_KEYSET_INT_H
#define QPEACH_KEYSET_INT_H

#include <stddef.h>
#include <stdint.h>

typedef struct qp__keyset {
    int64_t cap;           /* slots, a power of two */
    int64_t n;             /* keys */
    int64_t kcap;          /* keys the key bytes have room for */
    int64_t *slot;         /* ids, -1: empty */
    uint8_t *keys;
    size_t kw;             /* bytes per key (0 allowed: one key) */
} qp__keyset;

/* An empty set of kw-byte keys. 0 or QP_ENOMEM (the set is then freed). */
int qp__keyset_init(qp__keyset *k, size_t kw);
void qp__keyset_free(qp__keyset *k);
/* The id of key (kw bytes), added as the next id when new: >= 0, or
 * QP_ENOMEM (the set unchanged). */
int64_t qp__keyset_add(qp__keyset *k, const void *key);
/* The id of key, or -1 when it is not in the set. */
int64_t qp__keyset_find(const qp__keyset *k, const void *key);
/* Key q's bytes (borrowed; moved by a later add). */
static inline const uint8_t *qp__keyset_key(const qp__keyset *k, int64_t q)
{
    return k->keys + (size_t)q * k->kw;
}

#endif
