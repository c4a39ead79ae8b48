/* keyset.c - distinct fixed-width keys numbered in first-seen order
 * (keyset_int.h). */
#include "keyset_int.h"
#include "qpeach/value.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* Eight bytes at a time, each word multiplied in (keys are pointers,
 * numbers and guids: a byte loop was the cost of grouping a column). */
static uint64_t hash(const uint8_t *p, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, p, n);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
    }
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 29);
}

int qp__keyset_init(qp__keyset *k, size_t kw)
{
    *k = (qp__keyset){ .cap = 1024, .kcap = 256, .kw = kw };
    k->slot = malloc((size_t)k->cap * sizeof *k->slot);
    k->keys = malloc((size_t)k->kcap * (kw ? kw : 1));
    if (!k->slot || !k->keys) { qp__keyset_free(k); return QP_ENOMEM; }
    memset(k->slot, 0xff, (size_t)k->cap * sizeof *k->slot);
    return 0;
}

void qp__keyset_free(qp__keyset *k)
{
    free(k->slot);
    free(k->keys);
    k->slot = NULL;
    k->keys = NULL;
    k->n = k->cap = k->kcap = 0;
}

/* The slot holding key, or the empty one where it would go. */
static int64_t slot_of(const qp__keyset *k, const void *key)
{
    int64_t at = (int64_t)(hash(key, k->kw) & (uint64_t)(k->cap - 1));
    while (k->slot[at] >= 0 && memcmp(qp__keyset_key(k, k->slot[at]), key, k->kw))
        at = (at + 1) & (k->cap - 1);
    return at;
}

/* Doubles the slots and puts every key back. */
static int rehash(qp__keyset *k)
{
    int64_t ncap = k->cap * 2;
    int64_t *ns = malloc((size_t)ncap * sizeof *ns);
    if (!ns) return QP_ENOMEM;
    memset(ns, 0xff, (size_t)ncap * sizeof *ns);
    for (int64_t q = 0; q < k->n; q++) {
        int64_t a = (int64_t)(hash(qp__keyset_key(k, q), k->kw) & (uint64_t)(ncap - 1));
        while (ns[a] >= 0) a = (a + 1) & (ncap - 1);
        ns[a] = q;
    }
    free(k->slot);
    k->slot = ns;
    k->cap = ncap;
    return 0;
}

int64_t qp__keyset_add(qp__keyset *k, const void *key)
{
    int64_t at = slot_of(k, key);
    if (k->slot[at] >= 0) return k->slot[at];
    if (k->n == k->kcap) {
        uint8_t *b = realloc(k->keys, (size_t)k->kcap * 2 * (k->kw ? k->kw : 1));
        if (!b) return QP_ENOMEM;
        k->keys = b;
        k->kcap *= 2;
    }
    if ((k->n + 1) * 2 > k->cap) {      /* room first: the set stays unchanged on OOM */
        if (rehash(k)) return QP_ENOMEM;
        at = slot_of(k, key);
    }
    int64_t id = k->slot[at] = k->n++;
    memcpy(k->keys + (size_t)id * k->kw, key, k->kw);
    assert(k->n * 2 <= k->cap);         /* probing always finds a free slot */
    return id;
}

int64_t qp__keyset_find(const qp__keyset *k, const void *key)
{
    return k->slot[slot_of(k, key)];
}
