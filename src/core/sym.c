/* sym.c - the symbol intern table, as kdb+'s: every distinct symbol text is
 * stored once for the life of the process, so symbols compare by pointer.
 *
 * The table is split into shards by hash, each with its own mutex, so
 * threads decoding or parsing CSV in parallel rarely wait on each other.
 * Strings live in per-shard arenas that are never freed. Lookup is O(1)
 * expected; each shard doubles when it is more than half full. */
#include "qpeach/value.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHARDS 64
#define ARENA_CHUNK (64 * 1024)

typedef struct shard {
    pthread_mutex_t lock;
    const char **slots;    /* open addressing; NULL = empty */
    size_t cap;            /* slots, a power of two (0 before first use) */
    size_t used;           /* occupied slots */
    char *arena;           /* current chunk for string bytes */
    size_t arena_left;     /* bytes free in it */
} shard;

static shard shards[SHARDS] = {
#define S0 {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0, NULL, 0}
#define S4 S0, S0, S0, S0
#define S16 S4, S4, S4, S4
    S16, S16, S16, S16
#undef S16
#undef S4
#undef S0
};

/* FNV-1a: fast on the short strings symbols usually are. */
static uint64_t hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ULL;
    return h;
}

static char *arena_copy(shard *sh, const char *s, size_t n)
{
    if (sh->arena_left < n + 1) {
        size_t chunk = n + 1 > ARENA_CHUNK ? n + 1 : ARENA_CHUNK;
        char *a = malloc(chunk);
        if (!a) return NULL;
        sh->arena = a;
        sh->arena_left = chunk;
    }
    char *out = sh->arena;
    memcpy(out, s, n);
    out[n] = 0;
    sh->arena += n + 1;
    sh->arena_left -= n + 1;
    return out;
}

static int grow(shard *sh)
{
    size_t cap = sh->cap ? sh->cap * 2 : 256;
    const char **slots = calloc(cap, sizeof *slots);
    if (!slots) return QP_ENOMEM;
    for (size_t i = 0; i < sh->cap; i++) {
        const char *s = sh->slots[i];
        if (!s) continue;
        size_t j = (hash(s, strlen(s)) >> 6) & (cap - 1);
        while (slots[j]) j = (j + 1) & (cap - 1);
        slots[j] = s;
    }
    free(sh->slots);
    sh->slots = slots;
    sh->cap = cap;
    return 0;
}

const char *qp_sym_intern(const char *s, size_t n)
{
    /* A symbol is a C string, so its text ends at a NUL: keyed on all n
     * bytes, "a\0b" would be a second symbol that reads as "a" (breaking
     * pointer equality), and the compare below would read past "a". */
    n = strnlen(s, n);
    uint64_t h = hash(s, n);
    shard *sh = &shards[h & (SHARDS - 1)];
    const char *out = NULL;
    pthread_mutex_lock(&sh->lock);
    if (sh->used * 2 >= sh->cap && grow(sh)) goto done;
    size_t j = (h >> 6) & (sh->cap - 1);
    for (; sh->slots[j]; j = (j + 1) & (sh->cap - 1)) {
        const char *t = sh->slots[j];
        if (strncmp(t, s, n) == 0 && t[n] == 0) { out = t; goto done; }
    }
    out = arena_copy(sh, s, n);
    if (out) { sh->slots[j] = out; sh->used++; }
done:
    pthread_mutex_unlock(&sh->lock);
    return out;
}

const char *qp_name_of(const qp_value *x)
{
    if (x->type == -QP_SYMBOL) return x->s;
    if (x->type == QP_CHAR) return qp_sym_intern(x->v.data, (size_t)x->v.n);
    if (x->type == -QP_CHAR) return qp_sym_intern(&x->c, 1);
    return NULL;
}

void qp_syms_text(char *buf, size_t cap, const qp_value *syms, int64_t n)
{
    size_t at = 0;
    if (cap) buf[0] = '\0';
    for (int64_t i = 0; i < n && at < cap; i++)
        at += (size_t)snprintf(buf + at, cap - at, "%s%s", i ? ", " : "", qp_S(syms)[i]);
}
