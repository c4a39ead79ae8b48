/* ptrmap_int.h - a hash map keyed by pointers (interned symbols, whose
 * pointer is their identity): open addressing with linear probing,
 * doubled when half full, keys never removed (ptrmap.c). The one such
 * table: the symbol -> str cache of the Python conversion, and the codes
 * and duplicate checks of its Categoricals. Not a public header.
 *
 * Memory rules: the map owns its slots array only; what values point to
 * is the caller's (free them before qp__ptrmap_free). A zeroed map is an
 * empty one. Not thread-safe: one owner at a time.
 */
#ifndef QPEACH_PTRMAP_INT_H
#define QPEACH_PTRMAP_INT_H

#include <stddef.h>
#include <stdint.h>

typedef struct qp__ptrslot {
    const void *k;         /* NULL: empty */
    union { void *p; int64_t i; } v;
} qp__ptrslot;

typedef struct qp__ptrmap {
    qp__ptrslot *slots;    /* cap of them (a power of two), or NULL */
    size_t cap, used;
} qp__ptrmap;

static inline size_t qp__ptr_hash(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33;
    return (size_t)x;
}

/* The slot holding key k (not NULL), or NULL when k is not in m. */
static inline qp__ptrslot *qp__ptrmap_find(const qp__ptrmap *m, const void *k)
{
    if (!m->cap) return NULL;
    for (size_t h = qp__ptr_hash(k) & (m->cap - 1);; h = (h + 1) & (m->cap - 1)) {
        if (m->slots[h].k == k) return &m->slots[h];
        if (!m->slots[h].k) return NULL;
    }
}

/* Adds key k, which is not in m yet (growing m first when it is half
 * full). Returns its slot, value zeroed for the caller to set, or NULL on
 * OOM (m unchanged). */
qp__ptrslot *qp__ptrmap_add(qp__ptrmap *m, const void *k);
/* Frees the slots; m is empty again. */
void qp__ptrmap_free(qp__ptrmap *m);

#endif
