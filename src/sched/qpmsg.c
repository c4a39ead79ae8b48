/* qpmsg.c - what `qpeach run` sends qpeach workers (`qpeach serve`): the
 * .qp calls of the contract in docs/ARCHITECTURE.md, behind the protocol
 * table (sched_int.h) that pykxmsg.c implements for q + PyKX servers.
 *
 *   setup      .qp.import[aliases!modules], .qp.def[name; code; opts] for
 *              the function and the reducer, .qp.load[table; path] of the
 *              converted input
 *   per task   .qp.apply[fn; table; part] (a file partition is first
 *              .qp.load'ed as qp__part); small tasks several to a message:
 *              .qp.applyeach[fn; table; parts], row ranges as one long
 *              vector of (start; end) pairs (nothing allocated per task)
 *   reducer    .qp.call[name; enlist value]
 *
 * A worker holds the table, so a call names only rows of it. A Python
 * exception comes back in one documented text, read here once
 * (qp_remote_error_parse).
 */
#include "run_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- setup ---- */

/* The modules function fn's module imports from its folder (the dict
 * .qp.def's `modules` option takes), or NULL when it imports none. Code
 * given by the caller (a function defined in Python) may name a module
 * file that is not there: it then has none. 0, or a negative code with
 * err. */
int qp__fn_modules(const qp_job_fn *fn, bool given, qp_value **out, char *err, size_t errlen)
{
    *out = NULL;
    if (given && access(fn->file, R_OK) != 0) return 0;
    qp_value *m = NULL;
    int rc = qp_job_modules(fn->file, &m, err, errlen);
    if (rc) return rc;
    if (qp_count(qp_dict_keys(m))) *out = m;
    else qp_unref(m);
    return 0;
}

/* .qp.def's options for function i (0: the job's, 1: the reducer):
 * `reuse` keeps a resident server's definition when it came from this
 * same code, modules and options (the worker compares the SHA-256), so a
 * repeated run does not compile and run the module again; symbols as
 * codes + names (categorical) for the function: no str object per row,
 * and it can group by the codes directly; pandas; the modules shipped
 * with it (steals mods). New reference, NULL on OOM. */
static qp_value *def_opts(const qp_job *job, int i, bool pandas, qp_value *mods)
{
    const char *sym_opt = i > 0 ? NULL : job->categorical ? "categorical" : job->codes ? "codes" : NULL;
    const char *names[4] = { "reuse" };
    int n = 1;
    if (sym_opt) names[n++] = sym_opt;
    if (pandas) names[n++] = "pandas";
    if (mods) names[n++] = "modules";
    qp_value *k = qp_vector(QP_SYMBOL, n), *v = qp_vector(QP_LIST, n);
    for (int j = 0; k && v && j < n; j++) {
        qp_S(k)[j] = qp_sym_intern(names[j], strlen(names[j]));
        qp_K(v)[j] = mods && j == n - 1 ? qp_ref(mods) : qp_bool(true);
        if (!qp_S(k)[j] || !qp_K(v)[j]) { qp_unref(k); qp_unref(v); k = v = NULL; }
    }
    qp_unref(mods);
    return k && v ? qp_dict(k, v) : (qp_unref(k), qp_unref(v), NULL);
}

/* The setup calls (imports, function definitions, the input load), as new
 * references in a malloc'd array. o's fn_code (reducer_code), when set,
 * is the function's (reducer's) code: no module file is read. 0, or
 * QP_EARG / QP_ENOMEM with err. */
static int setup_msgs(const qp_job *job, const qp_run_opts *o, const char *input_path,
                      qp_value ***msgs, int *n, char *err, size_t errlen)
{
    qp_value **m = calloc(4, sizeof *m);
    int k = 0;
    if (!m) return QP_ENOMEM;
    if (job->nlibs) {
        qp_value *keys = qp_vector(QP_SYMBOL, job->nlibs), *vals = qp_vector(QP_SYMBOL, job->nlibs);
        if (keys && vals)
            for (int i = 0; i < job->nlibs; i++) {
                qp_S(keys)[i] = qp_sym_intern(job->lib_alias[i], strlen(job->lib_alias[i]));
                qp_S(vals)[i] = qp_sym_intern(job->lib_module[i], strlen(job->lib_module[i]));
            }
        m[k++] = keys && vals ? qp__call(".qp.import", 1, qp_dict(keys, vals))
                              : (qp_unref(keys), qp_unref(vals), NULL);
    }
    const qp_job_fn *fns[2] = { &job->function, job->reducer.file ? &job->reducer : NULL };
    for (int i = 0; i < 2; i++) {
        if (!fns[i]) continue;
        const qp_value *given = !o ? NULL : i == 0 ? o->fn_code : o->reducer_code;
        /* The whole module goes: the worker runs it in the function's own
         * namespace, so module-level imports and helpers work; checking
         * for the def here gives a clear error before any worker starts. */
        qp_buf *mod = NULL;
        qp_value *mods = NULL;
        int rc = given ? 0 : qp__py_module(fns[i]->file, fns[i]->name, &mod, err, errlen);
        if (!rc) rc = qp__fn_modules(fns[i], given != NULL, &mods, err, errlen);
        if (rc) {
            qp_buf_unref(mod);
            for (int j = 0; j < k; j++) qp_unref(m[j]);
            free(m);
            return rc == QP_ENOMEM ? rc : QP_EARG;
        }
        qp_value *opts = def_opts(job, i, i == 0 && given && o->fn_pandas, mods);
        qp_value *code = given ? qp_ref((qp_value *)given) : qp_cstring((const char *)mod->data);
        m[k++] = opts ? qp__call(".qp.def", 3, qp_symbol(fns[i]->name), code, opts)
                      : (qp_unref(code), NULL);
        qp_buf_unref(mod);
    }
    if (input_path)
        m[k++] = qp__call(".qp.load", 2, qp_symbol(job->table), qp_cstring(input_path));
    for (int j = 0; j < k; j++)
        if (!m[j]) {
            for (int i = 0; i < k; i++) qp_unref(m[i]);
            free(m);
            snprintf(err, errlen, "out of memory");
            return QP_ENOMEM;
        }
    *msgs = m;
    *n = k;
    return 0;
}

static int connect_none(qp_conn *c, int timeout_ms, char *err, size_t errlen)
{
    (void)c, (void)timeout_ms, (void)err, (void)errlen;
    return 0;
}

/* A bad module is the job's fault: exit 2 before any worker starts. */
static int qpeach_prepare(run *r, qp__msgs *setup)
{
    char err[512];
    const qp_job *j = r->job;
    int rc = setup_msgs(j, r->o, j->files ? NULL : r->input_path, &setup->m, &setup->n, err,
                        sizeof err);
    if (!rc) return 0;
    qp__fail(r, "%s", err);
    return rc == QP_ENOMEM ? QP_RUN_FAILED : QP_RUN_BADJOB;
}

/* ".qp.def: NameError: ..." */
static void qpeach_setup_error(const qp_value *msg, const char *text, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s: %s", qp_K(msg)[0]->s, text);
}

/* ---- tasks and the reducer ---- */

static int qpeach_task(run *r, int64_t i, qp_value *m[2], int *n)
{
    const qp_job *j = r->job;
    const qp_part *p = &r->plan->parts[i];
    *n = 0;
    if (p->kind == QP_PART_FILE) {
        /* A file partition: the worker loads the file as a table of its
         * own, then runs the function over all of it. */
        qp_value *all = qp_vector(QP_LONG, 2);
        if (all) { qp_J(all)[0] = 0; qp_J(all)[1] = QP_INF_J; }
        m[0] = j->csv_types ? qp__call(".qp.load", 3, qp_symbol("qp__part"), qp_cstring(p->file),
                                       qp_cstring(j->csv_types))
                            : qp__call(".qp.load", 2, qp_symbol("qp__part"), qp_cstring(p->file));
        m[1] = qp__call(".qp.apply", 3, qp_symbol(j->function.name), qp_symbol("qp__part"), all);
        *n = 2;
    } else {
        m[0] = qp__call(".qp.apply", 3, qp_symbol(j->function.name), qp_symbol(j->table),
                        qp_part_descriptor(r->plan, i));
        *n = 1;
    }
    for (int k = 0; k < *n; k++)
        if (!m[k]) {
            for (int x = 0; x < *n; x++) qp_unref(m[x]);
            *n = 0;
            qp__fail(r, "out of memory");
            return -1;
        }
    return 0;
}

static int qpeach_batch(run *r, const int64_t *ids, int n, qp_value **m)
{
    const qp_partplan *p = r->plan;
    bool rows = true;
    for (int k = 0; k < n; k++) rows = rows && p->parts[ids[k]].kind == QP_PART_ROWS;
    qp_value *parts = qp_vector(rows ? QP_LONG : QP_LIST, rows ? 2 * n : n);
    for (int k = 0; parts && k < n; k++) {
        const qp_part *pt = &p->parts[ids[k]];
        if (rows) {
            qp_J(parts)[2 * k] = pt->start;
            qp_J(parts)[2 * k + 1] = pt->end;
        } else if (!(qp_K(parts)[k] = qp_part_descriptor(p, ids[k]))) {
            while (k < n) qp_K(parts)[k++] = qp_identity();
            qp_unref(parts);
            parts = NULL;
        }
    }
    *m = parts ? qp__call(".qp.applyeach", 3, qp_symbol(r->job->function.name),
                          qp_symbol(r->job->table), parts) : NULL;
    if (*m) return 0;
    qp__fail(r, "out of memory");
    return -1;
}

static qp_value *qpeach_reduce(run *r, qp_value *v)
{
    qp_value *args = v ? qp_list(1, v) : NULL;
    return args ? qp__call(".qp.call", 2, qp_symbol(r->job->reducer.name), args) : NULL;
}

/* ---- a Python exception's text ---- */

/* The separator py.c's format_exc puts between an exception and its
 * frames. */
static const char frames_mark[] = "\nTraceback (last frames):\n";

static bool name_start(char c)
{
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

size_t qp__type_len(const char *s, const char *end)
{
    const char *p = s, *last = s;
    for (;;) {
        last = p;
        if (end - p >= 8 && !strncmp(p, "<locals>", 8)) {
            p += 8;                 /* a class defined in a function */
        } else {
            if (p == end || !name_start(*p)) return 0;
            while (p < end && (name_start(*p) || (*p >= '0' && *p <= '9'))) p++;
        }
        if (p == end || *p != '.') break;
        p++;
    }
    if (*last < 'A' || *last > 'Z') return 0;  /* a class name starts with a capital */
    return (size_t)(p - s);
}

/* The length of a "Type: message" or "Type" line's type at s (line ends
 * at end), 0 when the line is not one. */
static size_t type_line(const char *s, const char *end)
{
    size_t n = qp__type_len(s, end);
    if (!n || (s + n < end && strncmp(s + n, ": ", 2))) return 0;
    return n;
}

static void copy(char *dst, size_t cap, const char *s, size_t n)
{
    snprintf(dst, cap, "%.*s", (int)(n < cap ? n : cap - 1), s);
}

void qp_remote_error_parse(const char *text, qp_remote_error *out)
{
    memset(out, 0, sizeof *out);
    if (!text) text = "";
    const char *tb = strstr(text, frames_mark), *end = tb ? tb : text + strlen(text);
    const char *line = text, *eol = memchr(text, '\n', (size_t)(end - text));
    size_t n = type_line(line, eol ? eol : end);
    /* A SyntaxError's location comes first: File "...", line N, the code
     * and its caret, then its type line. */
    while (!n && !strncmp(text, "File \"", 6) && eol) {
        line = eol + 1;
        eol = memchr(line, '\n', (size_t)(end - line));
        n = type_line(line, eol ? eol : end);
    }
    if (!n) {
        copy(out->message, sizeof out->message, text, (size_t)(end - text));
        if (tb) snprintf(out->traceback, sizeof out->traceback, "%s", tb + strlen(frames_mark));
        return;
    }
    copy(out->type, sizeof out->type, line, n);
    const char *msg = line + n;
    msg += !strncmp(msg, ": ", 2) ? 2 : msg < end;
    copy(out->message, sizeof out->message, msg, (size_t)(end - msg));
    /* the location lines, then the frames */
    size_t at = line > text ? (size_t)(line - text) : 0;
    copy(out->traceback, sizeof out->traceback, text, at);
    if (tb && at < sizeof out->traceback)
        snprintf(out->traceback + at, sizeof out->traceback - at, "%s", tb + strlen(frames_mark));
}

const qp__proto qp__proto_qpeach = {
    .id = 0,
    .name = "qpeach",
    .holds_input = false,
    .connect = connect_none,
    .prepare = qpeach_prepare,
    .setup_error = qpeach_setup_error,
    .task = qpeach_task,
    .batch = qpeach_batch,
    .reduce = qpeach_reduce,
    .remote_error = qp_remote_error_parse,
};
