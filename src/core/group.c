/* group.c - a column's rows grouped by key (group_int.h). */
#include "group_int.h"
#include "keyset_int.h"

#include <stdlib.h>
#include <string.h>

struct qp__group {
    int type;              /* the column's type (QP_ENUM: keys are symbols) */
    qp__keyset keys;       /* key id = group */
    int64_t *off;          /* group g's rows: rows[off[g] .. off[g+1]) */
    int64_t *rows;
    int64_t n;
};

void qp__group_free(qp__group *g)
{
    if (!g) return;
    qp__keyset_free(&g->keys);
    free(g->off);
    free(g->rows);
    free(g);
}

/* Each row's group into gid, for an enumeration: the symbols of the
 * indices the column uses get ids (the null index, slot nd, is ``), then
 * a row costs a table lookup. 0 or QP_ENOMEM. */
static int enum_ids(qp__group *g, const qp_value *col, int64_t *gid)
{
    const qp_value *dom = col->v.dom;
    int64_t nd = dom->v.n, n = col->v.n;
    const int64_t *x = qp_J(col);
    int64_t *tab = malloc(((size_t)nd + 1) * sizeof *tab);
    if (!tab) return QP_ENOMEM;
    for (int64_t k = 0; k <= nd; k++) tab[k] = -1;
    for (int64_t i = 0; i < n; i++) tab[x[i] == QP_NULL_J ? nd : x[i]] = 0;   /* used */
    const char *empty = qp_sym_intern("", 0);
    for (int64_t k = 0; k <= nd; k++) {
        if (tab[k] < 0) continue;
        const char *s = k == nd ? empty : qp_S(dom)[k];
        if ((tab[k] = qp__keyset_add(&g->keys, &s)) < 0) { free(tab); return QP_ENOMEM; }
    }
    for (int64_t i = 0; i < n; i++) gid[i] = tab[x[i] == QP_NULL_J ? nd : x[i]];
    free(tab);
    return 0;
}

/* Each row's group into gid, for a vector: its item as a key. */
static int item_ids(qp__group *g, const qp_value *col, int64_t *gid)
{
    size_t w = qp_type_width(col->type);
    const uint8_t *p = col->v.data;
    uint8_t key[16];
    for (int64_t i = 0; i < col->v.n; i++, p += w) {
        qp_item_key(col->type, p, key);
        if ((gid[i] = qp__keyset_add(&g->keys, key)) < 0) return QP_ENOMEM;
    }
    return 0;
}

/* The rows of each group, in row order: a count per group, its prefix
 * sums, then each row in its group's next place. */
static int place(qp__group *g, const int64_t *gid)
{
    int64_t ng = g->keys.n;
    g->off = calloc((size_t)ng + 1, sizeof *g->off);
    g->rows = malloc((size_t)(g->n ? g->n : 1) * sizeof *g->rows);
    int64_t *at = malloc(((size_t)ng + 1) * sizeof *at);
    if (!g->off || !g->rows || !at) { free(at); return QP_ENOMEM; }
    for (int64_t i = 0; i < g->n; i++) g->off[gid[i] + 1]++;
    for (int64_t k = 0; k < ng; k++) g->off[k + 1] += g->off[k];
    memcpy(at, g->off, ((size_t)ng + 1) * sizeof *at);
    for (int64_t i = 0; i < g->n; i++) g->rows[at[gid[i]]++] = i;
    free(at);
    return 0;
}

int qp__group_build(const qp_value *col, qp__group **out)
{
    *out = NULL;
    bool en = col->type == QP_ENUM;
    if (!en && (!qp_is_vector(col) || qp_type_width(col->type) > 16)) return QP_ETYPE;
    qp__group *g = calloc(1, sizeof *g);
    int64_t *gid = malloc((size_t)(col->v.n ? col->v.n : 1) * sizeof *gid);
    size_t kw = en || col->type == QP_SYMBOL ? sizeof(const char *) : qp_type_width(col->type);
    int rc = g && gid ? qp__keyset_init(&g->keys, kw) : QP_ENOMEM;
    if (!rc) {
        g->type = col->type;
        g->n = col->v.n;
        rc = en ? enum_ids(g, col, gid) : item_ids(g, col, gid);
    }
    if (!rc) rc = place(g, gid);
    free(gid);
    if (rc) { qp__group_free(g); return rc; }
    *out = g;
    return 0;
}

int64_t qp__group_rows(const qp__group *g, const qp_value *a, const int64_t **rows)
{
    uint8_t key[16];
    if (g->type == QP_ENUM || g->type == QP_SYMBOL) memcpy(key, &a->s, sizeof a->s);
    else qp_item_key(g->type, g->type == QP_GUID ? (const void *)a->u : (const void *)&a->g, key);
    int64_t k = qp__keyset_find(&g->keys, key);
    if (k < 0) { *rows = g->rows; return 0; }
    *rows = g->rows + g->off[k];
    return g->off[k + 1] - g->off[k];
}

size_t qp__group_bytes(const qp__group *g)
{
    return (size_t)g->n * sizeof *g->rows + ((size_t)g->keys.n + 1) * sizeof *g->off
         + (size_t)g->keys.cap * sizeof *g->keys.slot + (size_t)g->keys.kcap * g->keys.kw;
}
