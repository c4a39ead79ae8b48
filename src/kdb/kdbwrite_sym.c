/* kdbwrite_sym.c - for the kdb+ writer: the sym domain (the existing
 * db/sym plus appended names, as .Q.en extends it), q's p# index, dates.
 *
 * Memory rules: the domain owns the bytes of the old sym file (read whole)
 * and an array of name pointers into it or into the written table; a p#
 * index needs one hash table of at most 16384 int64 slots.
 */
#include "kdbwrite_int.h"
#include "core/fileio_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* The sym domain                                                      */
/* ------------------------------------------------------------------ */

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;           /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Rehashes into a table at least twice the names (and twice the old). */
static int grow_slots(qp__kw_sym *s)
{
    size_t size = s->slots ? (s->mask + 1) * 2 : 1024;
    while (size < (size_t)(s->n + 1) * 2) size *= 2;
    int64_t *slots = calloc(size, sizeof *slots);
    if (!slots) return QP_ENOMEM;
    free(s->slots);
    s->slots = slots;
    s->mask = size - 1;
    for (int64_t i = 0; i < s->n; i++) {
        size_t h = hash_str(s->names[i]) & s->mask;
        while (slots[h] && strcmp(s->names[slots[h] - 1], s->names[i])) h = (h + 1) & s->mask;
        if (!slots[h]) slots[h] = i + 1;           /* a repeated name keeps its first index */
    }
    return 0;
}

int64_t qp__kw_sym_find(const qp__kw_sym *s, const char *name)
{
    if (!s->slots) return -1;
    for (size_t h = hash_str(name) & s->mask; s->slots[h]; h = (h + 1) & s->mask)
        if (!strcmp(s->names[s->slots[h] - 1], name)) return s->slots[h] - 1;
    return -1;
}

/* Appends name to the names without hashing it. 0 or QP_ENOMEM. */
static int push_name(qp__kw_sym *s, const char *name)
{
    if (s->n == s->cap) {
        int64_t cap = s->cap ? s->cap * 2 : 256;
        const char **names = realloc(s->names, (size_t)cap * sizeof *names);
        if (!names) return QP_ENOMEM;
        s->names = names;
        s->cap = cap;
    }
    s->names[s->n++] = name;
    return 0;
}

int64_t qp__kw_sym_add(qp__kw_sym *s, const char *name)
{
    int64_t i = qp__kw_sym_find(s, name);
    if (i >= 0) return i;
    if ((!s->slots || (size_t)(s->n + 1) * 2 > s->mask + 1) && grow_slots(s)) return -1;
    if (push_name(s, name)) return -1;
    size_t h = hash_str(name) & s->mask;
    while (s->slots[h]) h = (h + 1) & s->mask;
    s->slots[h] = s->n;
    return s->n - 1;
}

bool qp__kw_sym_new(const qp__kw_sym *s) { return s->n > s->nold; }

/* Checks the bytes of a sym file and lists its names. */
static int parse_sym(qp__kw_sym *s, const char *path, char *err, size_t errlen)
{
    const char *b = (const char *)s->file->data;
    size_t len = s->file->len;
    if (len >= 8 && !memcmp(b, "kxzipped", 8))
        return qp__kerr(err, errlen, QP_ETYPE, "%s is compressed: qpeach cannot append to it", path);
    if (len < 8 || (uint8_t)b[0] != 0xff || b[1] != 1 || b[2] != QP_SYMBOL)
        return qp__kerr(err, errlen, QP_ECORRUPT, "%s is not a q symbol list (ff 01 0b)", path);
    if (len > 8 && b[len - 1] != 0)
        return qp__kerr(err, errlen, QP_ECORRUPT, "%s: its last name has no NUL end", path);
    for (size_t at = 8; at < len; at += strlen(b + at) + 1)
        if (push_name(s, b + at)) return qp__kerr(err, errlen, QP_ENOMEM, "out of memory");
    s->nold = s->n;
    if (grow_slots(s)) return qp__kerr(err, errlen, QP_ENOMEM, "out of memory");
    return 0;
}

int qp__kw_sym_load(qp__kw_sym *s, const char *db, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/sym", db);
    int rc = qp__file_read(path, &s->file);
    if (rc == -ENOENT) return 0;
    if (rc) return qp__kerr(err, errlen, rc, "%s: %s", path, qp_strerror(rc));
    return parse_sym(s, path, err, errlen);
}

void qp__kw_sym_write(const qp__kw_sym *s, qp__kw_out *o)
{
    if (s->file) {
        qp__kw_put(o, s->file->data, s->file->len);
    } else {
        static const uint8_t h[8] = {0xff, 0x01, QP_SYMBOL, 0, 0, 0, 0, 0};
        qp__kw_put(o, h, 8);
    }
    for (int64_t i = s->nold; i < s->n; i++) qp__kw_put(o, s->names[i], strlen(s->names[i]) + 1);
}

void qp__kw_sym_free(qp__kw_sym *s)
{
    qp_buf_unref(s->file);
    free(s->names);
    free(s->slots);
    *s = (qp__kw_sym){0};
}

/* ------------------------------------------------------------------ */
/* q's p# index                                                        */
/* ------------------------------------------------------------------ */
/* What q 4.x writes after the int64 data of a p# enumeration, reproduced
 * byte for byte from every p# file in fixtures/kdb (finspace, torq-air,
 * dolphindb's empty quote_cffex), where d = distinct values (runs):
 *   int64 0
 *   header [m1][0][20][2][0000] int64 d   then H/2+1 int64 slots: the run
 *                                         values in order, zero-padded
 *   H int64 hash slots: run number, or -1 (H = 2, doubled while < 2d)
 *   header [m2][0][7][0][0000] int64 d+1  then the run starts and n
 * m is q's allocation class of each object: ceil(log2(bytes)) - 4, the
 * first object spanning its header, slots and hash, the second its header
 * and starts. Value v hashes to floor(v * 7271266 / 4096) mod H, linear
 * probing upwards, runs inserted in order. That multiplier is known mod
 * 16384 (dolphindb's u# sym column, 16384 slots, matches it exactly), so
 * larger tables (more than 8192 runs) are not given p#: qp__kw_parted_ok. */

enum { PARTED_MAX_RUNS = 8192 };

int qp__kw_runs_add(qp__kw_runs *r, int64_t v, int64_t i)
{
    if (r->n && r->val[r->n - 1] == v) return 0;
    if (r->n == r->cap) {
        int64_t cap = r->cap ? r->cap * 2 : 64;
        int64_t *val = realloc(r->val, (size_t)cap * sizeof *val);
        if (!val) return QP_ENOMEM;
        r->val = val;
        int64_t *start = realloc(r->start, (size_t)cap * sizeof *start);
        if (!start) return QP_ENOMEM;
        r->start = start;
        r->cap = cap;
    }
    r->val[r->n] = v;
    r->start[r->n++] = i;
    return 0;
}

bool qp__kw_parted_ok(const qp__kw_runs *r) { return r->n <= PARTED_MAX_RUNS; }

static uint8_t alloc_class(uint64_t bytes)
{
    uint8_t b = 0;
    while ((1ull << b) < bytes) b++;
    return (uint8_t)(b - 4);
}

static void put_j(qp__kw_out *o, int64_t v) { qp__kw_put(o, &v, 8); }

int qp__kw_parted_index(const qp__kw_runs *r, int64_t n, qp__kw_out *o)
{
    int64_t d = r->n, H = 2;
    while (H < 2 * d) H *= 2;
    int64_t slots = H / 2 + 1;
    int64_t *hash = malloc((size_t)H * sizeof *hash);
    if (!hash) return QP_ENOMEM;
    memset(hash, 0xff, (size_t)H * sizeof *hash);   /* -1: empty */
    for (int64_t i = 0; i < d; i++) {
        uint64_t h = (uint64_t)r->val[i] * 7271266u >> 12 & (uint64_t)(H - 1);
        while (hash[h] != -1) h = (h + 1) & (uint64_t)(H - 1);
        hash[h] = i;
    }
    put_j(o, 0);
    uint8_t h1[8] = {alloc_class(16 + 8 * (uint64_t)(slots + H)), 0, QP_ENUM, 2};
    qp__kw_put(o, h1, 8);
    put_j(o, d);
    qp__kw_put(o, r->val, (size_t)d * 8);
    for (int64_t i = d; i < slots; i++) put_j(o, 0);
    qp__kw_put(o, hash, (size_t)H * 8);
    uint8_t h2[8] = {alloc_class(16 + 8 * (uint64_t)(d + 1)), 0, QP_LONG, 0};
    qp__kw_put(o, h2, 8);
    put_j(o, d + 1);
    qp__kw_put(o, r->start, (size_t)d * 8);
    put_j(o, n);
    free(hash);
    return 0;
}

void qp__kw_runs_free(qp__kw_runs *r)
{
    free(r->val);
    free(r->start);
    *r = (qp__kw_runs){0};
}
