/* ptrmap.c - growth and insertion of the pointer-keyed map
 * (ptrmap_int.h); lookups are inline in the header. */
#include "ptrmap_int.h"

#include <stdlib.h>

/* Where key k goes in slots (cap a power of two, k not there yet). */
static qp__ptrslot *free_slot(qp__ptrslot *slots, size_t cap, const void *k)
{
    size_t h = qp__ptr_hash(k) & (cap - 1);
    while (slots[h].k) h = (h + 1) & (cap - 1);
    return &slots[h];
}

static int grow(qp__ptrmap *m)
{
    size_t cap = m->cap ? 2 * m->cap : 1024;
    qp__ptrslot *n = calloc(cap, sizeof *n);
    if (!n) return -1;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].k) *free_slot(n, cap, m->slots[i].k) = m->slots[i];
    free(m->slots);
    m->slots = n;
    m->cap = cap;
    return 0;
}

qp__ptrslot *qp__ptrmap_add(qp__ptrmap *m, const void *k)
{
    if ((m->used + 1) * 2 > m->cap && grow(m)) return NULL;
    qp__ptrslot *s = free_slot(m->slots, m->cap, k);
    s->k = k;
    m->used++;
    return s;
}

void qp__ptrmap_free(qp__ptrmap *m)
{
    free(m->slots);
    *m = (qp__ptrmap){0};
}
