/* pykxmsg.c - what `qpeach run` sends q + PyKX servers ([workers] protocol
 * = pykx): PyKX's own messages (their texts: qpeach/pykx.h), in place of the .qp.* calls qpeach workers get.
 *
 *   at connect   Q0 `pykx in key `, which must answer 1b
 *   setup        (Q2; `alias; `library), one per [job] libraries entry
 *   per task     (Q3; source; `name; enlist data; 1): the function's
 *                module and the partition's rows, as a table
 *
 * A q server selects nothing for us, so the scheduler holds the input
 * (a parsed file, or the db opened here) and each call carries its
 * partition. The source sent is the whole module with a comment line
 * first: pykx.q drops the first line (PyKX's decorator line) and execs
 * the rest in __main__, so module-level imports and helpers work as they
 * do on qpeach workers; the module is exec'd again on every call there
 * (pykx.q caches nothing), and its names land in the server's __main__.
 */
#include "run_int.h"
#include "qpeach/pykx.h"
#include "qpeach/kdb.h"
#include "qpeach/table.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* PyKX's session check, as kx.remote.session sends it: a q server
 * without pykx.q could not run a single call. */
static int pykx_connect(qp_conn *c, int timeout_ms, char *err, size_t errlen)
{
    qp_value *q0 = qp_cstring(qp_pykx_q0), *v = NULL;
    int t = 0, rc = q0 ? qp_conn_send(c, q0, QP_MSG_SYNC) : QP_ENOMEM;
    qp_unref(q0);
    while (!rc) {
        qp_unref(v);
        v = NULL;
        if ((rc = qp_conn_recv(c, &v, &t, timeout_ms)) || t == QP_MSG_RESPONSE) break;
    }
    if (rc) snprintf(err, errlen, "PyKX session check: %s", qp_conn_errstr(c));
    else if (v->type != -QP_BOOL || !v->g) {
        snprintf(err, errlen, "PyKX session check (`pykx in key `) answered %s, not 1b: is pykx.q "
                 "loaded on the server?", qp_is_error(v) ? v->s : qp_type_name(v->type));
        rc = QP_EARG;
    }
    qp_unref(v);
    return rc;
}

/* PyKX's libraries lambda, one message per [job] libraries entry (none:
 * NULL, 0). 0 or QP_ENOMEM. */
static int setup_msgs(const qp_job *job, qp_value ***msgs, int *n)
{
    *msgs = NULL;
    *n = 0;
    if (!job->nlibs) return 0;
    qp_value **m = calloc((size_t)job->nlibs, sizeof *m);
    if (!m) return QP_ENOMEM;
    for (int i = 0; i < job->nlibs; i++) {
        m[i] = qp_list(3, qp_cstring(qp_pykx_q2), qp_symbol(job->lib_alias[i]),
                       qp_symbol(job->lib_module[i]));
        if (!m[i]) {
            for (int k = 0; k < i; k++) qp_unref(m[k]);
            free(m);
            return QP_ENOMEM;
        }
    }
    *msgs = m;
    *n = job->nlibs;
    return 0;
}

qp_value *qp__pykx_call_msg(const char *source, const char *name, qp_value *arg)
{
    /* args as an unlicensed PyKX client frames one argument: a general
     * list (enlist arg), and the count as a long atom */
    qp_value *args = arg ? qp_list(1, arg) : NULL;
    return qp_list(5, qp_cstring(qp_pykx_q3), qp_cstring(source), qp_symbol(name), args,
                   qp_long(1));
}

/* The module of fn, with a first line for pykx.q to drop. malloc'd, or
 * NULL with r->error set. */
static char *module_source(run *r, const qp_job_fn *fn, const qp_value *given)
{
    char err[512];
    qp_buf *file = NULL;
    const char *text = NULL;
    size_t len = 0;
    if (given && given->type != QP_CHAR) {     /* dill bytes: nothing pykx.q can exec */
        snprintf(err, sizeof err, "%s: protocol = pykx sends source text, and this function "
                 "came as pickled bytes", fn->name);
    } else if (given) {                        /* a caller's source text (the Python client) */
        text = (const char *)qp_C(given);
        len = (size_t)given->v.n;
    } else if (!qp__py_module(fn->file, fn->name, &file, err, sizeof err)) {
        text = (const char *)file->data;
        len = file->len;
    }
    if (!text) {
        qp__fail(r, "%s", err);
        return NULL;
    }
    const char *first = "# qpeach: the whole module, sent by qpeach run (pykx.q drops this line)\n";
    size_t fl = strlen(first);
    char *out = malloc(fl + len + 1);
    if (out) {
        memcpy(out, first, fl);
        memcpy(out + fl, text, len);
        out[fl + len] = '\0';
    } else qp__fail(r, "out of memory");
    qp_buf_unref(file);
    return out;
}

/* The modules to send, the setup messages, and the input held here (the
 * db opened; its table read unless by = partition). */
static int pykx_prepare(run *r, qp__msgs *setup)
{
    const qp_job *j = r->job;
    char err[512];
    if (!(r->pykx_fn = module_source(r, &j->function, r->o->fn_code))) return QP_RUN_FAILED;
    if (j->reducer.file && !(r->pykx_reducer = module_source(r, &j->reducer, r->o->reducer_code)))
        return QP_RUN_FAILED;
    if (setup_msgs(j, &setup->m, &setup->n)) {
        qp__fail(r, "out of memory");
        return QP_RUN_FAILED;
    }
    if (!j->db) return 0;
    if (qp__open_db(r, err, sizeof err)) {
        qp__fail(r, "%s", err);
        return QP_RUN_FAILED;
    }
    if (j->part_by == QP_PART_PARTITION || r->input) return 0;
    /* by rows or column: the whole table, sliced per task (a splayed
     * table stays mapped; a partitioned one is read once, here) */
    r->input = qp_kdb_table(r->db, j->table, 0);
    if (r->input && !qp_is_error(r->input)) return 0;
    qp__fail(r, "table %s: %s", j->table, r->input ? r->input->s : "out of memory");
    return QP_RUN_FAILED;
}

/* Items idx[0..k) of a column (a vector, an enumeration or a general
 * list). New reference, NULL on OOM, an error value for other types. */
static qp_value *take(const qp_value *c, const int64_t *idx, int64_t k)
{
    if (c->type == QP_ENUM) {
        qp_value *s = qp_enum_resolve(c), *x = s ? take(s, idx, k) : NULL;
        qp_unref(s);
        return x;
    }
    if (c->type != QP_LIST && !qp_is_vector(c))
        return qp_error("cannot select rows of a %s column", qp_type_name(c->type));
    qp_value *x = qp_vector(c->type, k);
    if (!x) return NULL;
    size_t w = c->type == QP_LIST ? sizeof(qp_value *) : qp_type_width(c->type);
    for (int64_t i = 0; i < k; i++) {
        memcpy((char *)x->v.data + (size_t)i * w, (const char *)c->v.data + (size_t)idx[i] * w, w);
        if (c->type == QP_LIST) qp_ref(qp_K(x)[i]);
    }
    return x;
}

/* The rows of t whose column col equals the atom v (the plan's value,
 * of the column's type). New reference, or NULL with r->error set. */
static qp_value *rows_where(run *r, const qp_value *t, const char *col, const qp_value *v)
{
    qp_value *c = qp_table_column(t, col), *s = NULL, *names = qp_table_names(t), *cols = NULL;
    int64_t *idx = NULL, k = 0, n = qp_count(t);
    if (c && c->type == QP_ENUM) c = s = qp_enum_resolve(c);
    size_t w = c && qp_is_vector(c) ? qp_type_width(c->type) : 0;
    if (!w || v->type != -c->type) {
        qp__fail(r, "column %s: cannot select rows by a %s value", col, qp_type_name(v->type));
        goto fail;
    }
    if (!(idx = malloc((size_t)(n ? n : 1) * sizeof *idx))) goto oom;
    for (int64_t i = 0; i < n; i++)    /* q's =, as the plan's distinct values */
        if (qp_item_eq(c->type, (const char *)c->v.data + (size_t)i * w, &v->g)) idx[k++] = i;
    if (!(cols = qp_vector(QP_LIST, names->v.n))) goto oom;
    for (int64_t i = 0; i < names->v.n; i++) {
        qp_K(cols)[i] = take(qp_K(qp_table_columns(t))[i], idx, k);
        if (!qp_K(cols)[i]) goto oom;
        if (qp_is_error(qp_K(cols)[i])) {
            qp__fail(r, "column %s: %s", qp_S(names)[i], qp_K(cols)[i]->s);
            goto fail;
        }
    }
    free(idx);
    qp_unref(s);
    qp_value *rows = qp_table(qp_dict(qp_ref(names), cols));
    if (rows && !qp_is_error(rows)) return rows;
    qp__fail(r, "rows of %s = a value: %s", col, rows ? rows->s : "out of memory");
    qp_unref(rows);
    return NULL;
oom:
    qp__fail(r, "out of memory");
fail:
    free(idx);
    qp_unref(s);
    qp_unref(cols);
    return NULL;
}

/* Partition i's rows, as a table. New reference, or NULL with r->error. */
static qp_value *part_data(run *r, int64_t i)
{
    const qp_job *j = r->job;
    const qp_part *p = &r->plan->parts[i];
    qp_value *t = NULL;
    /* by = partition plans are column plans over the virtual column: the
     * job says which */
    switch (j->part_by) {
    case QP_PART_ROWS:
        t = qp_table_slice(r->input, p->start, p->end - p->start);
        break;
    case QP_PART_COLUMN:
        return rows_where(r, r->input, j->column, p->value);
    case QP_PART_FILE: {
        qp_csv_opts co = { .types = j->csv_types, .threads = 1 };
        t = qp_table_load(p->file, &co);
        break;
    }
    case QP_PART_PARTITION:
        t = qp_kdb_table_at(r->db, j->table, p->value, 0);
        break;
    }
    if (t && !qp_is_error(t)) return t;
    char *d = qp_part_describe(r->plan, i);
    qp__fail(r, "task %lld (%s): %s", (long long)i, d ? d : "?", t ? t->s : "out of memory");
    free(d);
    qp_unref(t);
    return NULL;
}

/* One call that carries the partition's rows. */
static int pykx_task(run *r, int64_t i, qp_value *m[2], int *n)
{
    *n = 0;
    qp_value *t = part_data(r, i);      /* NULL: r->error says why */
    if (!t) return -1;
    if (!(m[0] = qp__pykx_call_msg(r->pykx_fn, r->job->function.name, t))) {
        qp__fail(r, "out of memory");
        return -1;
    }
    *n = 1;
    return 0;
}

/* PyKX's call, the merged value its one argument. */
static qp_value *pykx_reduce(run *r, qp_value *v)
{
    return qp__pykx_call_msg(r->pykx_reducer, r->job->reducer.name, v);
}

/* PyKX's error text names the library and alias itself. */
static void pykx_setup_error(const qp_value *msg, const char *text, char *err, size_t errlen)
{
    (void)msg;
    snprintf(err, errlen, "libraries: %s", text);
}

/* pykx.q answers repr(exception): ZeroDivisionError('division by zero').
 * The type is the name before the parenthesis, the message what is in
 * it (a lone string argument without its quotes); no traceback comes. */
static void pykx_remote_error(const char *text, qp_remote_error *out)
{
    memset(out, 0, sizeof *out);
    if (!text) text = "";
    size_t len = strlen(text), n = qp__type_len(text, text + len);
    if (!n || text[n] != '(' || len < n + 2 || text[len - 1] != ')') {
        snprintf(out->message, sizeof out->message, "%s", text);
        return;
    }
    snprintf(out->type, sizeof out->type, "%.*s", (int)n, text);
    const char *a = text + n + 1, *b = text + len - 1;
    if (b - a >= 2 && (*a == '\'' || *a == '"') && b[-1] == *a && !memchr(a + 1, *a, (size_t)(b - a - 2)))
        a++, b--;
    snprintf(out->message, sizeof out->message, "%.*s", (int)(b - a), a);
}

const qp__proto qp__proto_pykx = {
    .id = 1,
    .name = "pykx",
    .holds_input = true,
    .connect = pykx_connect,
    .prepare = pykx_prepare,
    .setup_error = pykx_setup_error,
    .task = pykx_task,
    .reduce = pykx_reduce,
    .remote_error = pykx_remote_error,
};
