/* group_int.h - a column's rows grouped by key, as q's `g#` keeps them
 * (group.c): built once, in one pass over the column and one counting
 * pass; then the rows of any key are a slice of one array, in row order.
 * What `.qp.apply` selects a (column; value) part through (py/select.c),
 * instead of a scan of the whole column per part. Not a public header.
 *
 * Keys are equal as q's `=` says, as qp_item_key makes them (-0.0 is 0.0,
 * every NaN the one float null): the equality `.qp.distinct` plans the
 * parts with. Symbols are their interned pointers; an enumeration groups
 * by the symbols its indices stand for (two indices of one name, if a
 * domain has it twice, are one key; the null index is the symbol ``), and
 * counts its rows by index, so its rows cost no hash.
 *
 * Memory rules: the index owns its arrays (8 bytes a row, plus its keys)
 * and keeps nothing of the column. qp__group_free is NULL-safe.
 */
#ifndef QPEACH_GROUP_INT_H
#define QPEACH_GROUP_INT_H

#include "qpeach/value.h"

typedef struct qp__group qp__group;

/* The index of col (a vector of types 1..19 or an enumeration; borrowed).
 * 0 and *out, QP_ETYPE for anything else, or QP_ENOMEM. */
int qp__group_build(const qp_value *col, qp__group **out);
void qp__group_free(qp__group *g);
/* The rows whose item equals the atom a (of the column's item type; a
 * symbol for an enumeration): their count, and *rows (borrowed from g)
 * pointing at them in row order. 0 when there are none. */
int64_t qp__group_rows(const qp__group *g, const qp_value *a, const int64_t **rows);
/* Bytes the index holds. */
size_t qp__group_bytes(const qp__group *g);

#endif
