/* tablepick.c - some columns of a table, by name (value.h): what
 * `.qp.select` answers for a resident table, and the order it gives the
 * columns it read from a db (kdb's qp_kdb_select). */
#include "qpeach/value.h"

#include <stdio.h>
#include <string.h>

/* "a, b, c" for an error message (cut to fit). */
static void names_text(const qp_value *names, char *out, size_t n)
{
    size_t at = 0;
    out[0] = '\0';
    for (int64_t i = 0; i < names->v.n && at < n; i++)
        at += (size_t)snprintf(out + at, n - at, "%s%s", i ? ", " : "", qp_S(names)[i]);
}

qp_value *qp_table_pick(const qp_value *t, const qp_value *names, const char *what)
{
    const qp_value *have = qp_table_names(t), *cols = qp_table_columns(t);
    qp_value *keys = qp_vector(QP_SYMBOL, names->v.n), *out = qp_vector(QP_LIST, names->v.n);
    if (!keys || !out) goto oom;
    for (int64_t i = 0; i < names->v.n; i++) {
        const char *s = qp_S(names)[i];
        int64_t k = 0;
        while (k < have->v.n && qp_S(have)[k] != s) k++;
        if (k == have->v.n) {
            char list[512];
            names_text(have, list, sizeof list);
            out->v.n = i;                   /* only the filled slots */
            qp_unref(keys);
            qp_unref(out);
            return qp_error("%s has no column %s (its columns: %s)", what, s, list);
        }
        qp_S(keys)[i] = s;
        qp_K(out)[i] = qp_ref(qp_K(cols)[k]);
    }
    return qp_table(qp_dict(keys, out));
oom:
    qp_unref(keys);
    qp_unref(out);
    return NULL;
}
