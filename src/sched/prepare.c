/* prepare.c - everything `qpeach run` settles before the first task goes
 * out: the input (a CSV or q IPC file converted once to a kdb+ splayed
 * table), the identity a journal
 * is checked against, and the partition plan (which may need a worker to
 * count a resident table or list a column's values).
 *
 * Why a file of its own: these steps run once, in order, and mostly touch
 * files and the plan; keeping them apart leaves dispatch.c about the loop.
 */
#include "run_int.h"
#include "qpeach/kdb.h"
#include "qpeach/table.h"

#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- input and identity ---- */

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* A CSV input is parsed once, here, into a q IPC file beside the journal;
 * every worker loads that binary copy. Reused while newer than the CSV. */
void qp__mkdir_p(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') { *p = '\0'; mkdir(buf, 0755); *p = '/'; }
    mkdir(buf, 0755);
}

/* The parsed copy of a CSV (a kdb+ splayed table) is named by everything that shapes it: the
 * CSV's path, size and modification time, and the job's `types`. A copy
 * is written only after a clean parse, so a name that exists is a good
 * copy; a changed CSV or `types` gets a new name and is parsed again (and
 * its parse errors fail the run). Returns a malloc'd path, NULL on OOM. */
static char *parsed_copy_path(const qp_job *j, const struct stat *st)
{
    char key[4600];
    int n = snprintf(key, sizeof key, "%s\n%lld\n%lld.%09ld\n%s", j->file, (long long)st->st_size,
                     (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec,
                     j->csv_types ? j->csv_types : "(inferred)");
    uint8_t h[32];
    qp_sha256(key, (size_t)n < sizeof key ? (size_t)n : sizeof key, h);
    char suffix[300];
    snprintf(suffix, sizeof suffix, "input-%02x%02x%02x%02x%02x%02x/%s", h[0], h[1], h[2], h[3],
             h[4], h[5], j->table);
    return qp_job_state_path(j, suffix);
}

/* Removes this job's parsed copies other than the one at r->input_path
 * (older CSVs or types): they can never be used again. */
static void drop_stale_copies(run *r)
{
    char *pat = qp_job_state_path(r->job, "input-*");
    size_t keep = strlen(r->input_path) - strlen(r->job->table) - 1;   /* its db root */
    glob_t g;
    if (pat && !glob(pat, 0, NULL, &g)) {
        for (size_t i = 0; i < g.gl_pathc; i++)
            if (strlen(g.gl_pathv[i]) != keep || strncmp(g.gl_pathv[i], r->input_path, keep))
                qp_kdb_remove(g.gl_pathv[i]);
        globfree(&g);
    }
    free(pat);
}

/* The db folder the copy at r->input_path is a table of. */
static void copy_root(run *r, char *root, size_t n)
{
    snprintf(root, n, "%.*s", (int)(strlen(r->input_path) - strlen(r->job->table) - 1),
             r->input_path);
}

/* Writes the parsed table as a kdb+ splayed table at r->input_path, its
 * symbols enumerated against a `sym` beside it: every worker maps the
 * columns (one page cache for all) and gets symbols as codes. A failure
 * fails the run when loud, else is only reported. */
static int write_copy(run *r, bool loud)
{
    char root[4096], err[512];
    copy_root(r, root, sizeof root);
    qp__mkdir_p(root);
    int rc = qp_kdb_write(root, r->job->table, r->input, NULL, err, sizeof err);
    if (rc && loud) qp__fail(r, "writing %s: %s", r->input_path, err);
    else if (rc) qp__say(r, "input", "%s stays a file each worker loads: %s", r->job->file, err);
    return rc ? QP_RUN_FAILED : 0;
}

/* A CSV input into the copy, written as it is parsed: the scheduler never
 * holds the table (a parse error fails the run, naming file, line and
 * column). *rows gets its rows. 0 or QP_RUN_FAILED. */
static int import_csv(run *r, int64_t *rows)
{
    char root[4096], err[1024];
    copy_root(r, root, sizeof root);
    qp__mkdir_p(root);
    qp_csv_opts co = { .types = r->job->csv_types, .threads = 2 };
    qp_kdb_import st;
    int rc = qp_kdb_import_csv(r->job->file, &co, root, r->job->table, NULL, &st, err, sizeof err);
    if (rc && st.csv_fault) qp__fail(r, "input: %s", err);    /* the loader's text names the file */
    else if (rc) qp__fail(r, "writing %s: %s", r->input_path, err);
    *rows = st.rows;
    return rc ? QP_RUN_FAILED : 0;
}

/* The input stays the file itself (workers load it), not a parsed copy. */
static int keep_file(run *r)
{
    free(r->input_path);
    r->input_path = strdup(r->job->file);
    return r->input_path ? 0 : QP_RUN_FAILED;
}

/* The rows of the copy at r->input_path, from its column headers (no
 * worker is asked, none has to be up). 0, or -1 when the input is no copy
 * or the copy cannot say. */
static int copy_rows(run *r, int64_t *n)
{
    char root[4096], err[512];
    struct stat st;
    qp_kdb *db = NULL;
    if (!r->job->file || !r->input_path || !strcmp(r->input_path, r->job->file) ||
        stat(r->input_path, &st) || !S_ISDIR(st.st_mode))
        return -1;                 /* the file itself, or a folder the job names */
    copy_root(r, root, sizeof root);
    int rc = qp_kdb_open(root, &db, err, sizeof err);
    if (!rc) rc = qp_kdb_count(db, r->job->table, n, err, sizeof err);
    qp_kdb_close(db);
    return rc ? -1 : 0;
}

/* The copy at r->input_path, mapped, as r->input. 0 or QP_RUN_FAILED. */
static int map_copy(run *r)
{
    r->input = qp_table_load(r->input_path, NULL);
    if (r->input && !qp_is_error(r->input)) return 0;
    qp__fail(r, "input %s: %s", r->input_path, r->input ? r->input->s : "out of memory");
    return QP_RUN_FAILED;
}

/* Reads the input file (a CSV always loudly: a parse error fails the run,
 * naming file, line and column) and, unless this is a dry run, writes the
 * parsed copy at r->input_path; the table read is not kept (the workers
 * map the copy): the copy, mapped, is r->input when need_table. A q IPC
 * file holding anything but a table the db writer takes (a keyed table,
 * say) is left as it is: each worker loads the file, as before copies
 * existed. */
static int read_input(run *r, bool csv, bool write, bool need_table)
{
    const qp_job *j = r->job;
    int64_t t = qp__ms(), rows = 0;
    if (csv && write) {
        if (import_csv(r, &rows)) return QP_RUN_FAILED;
    } else {
        qp_csv_opts co = { .types = j->csv_types, .threads = 2 };
        r->input = csv ? qp_csv_load(j->file, &co) : qp_ipcfile_load(j->file);
        if (!r->input || qp_is_error(r->input)) {
            const char *why = r->input ? r->input->s : "out of memory";
            if (csv) qp__fail(r, "input: %s", why);     /* the CSV loader's text names the file */
            else qp__fail(r, "input %s: %s", j->file, why);
            return QP_RUN_FAILED;
        }
        if (!write) return 0;
        if (!csv && r->input->type != QP_TABLE) return keep_file(r);
        if (write_copy(r, csv)) return csv ? QP_RUN_FAILED : keep_file(r);
        rows = qp_count(r->input);
        qp_unref(r->input);
        r->input = NULL;
    }
    drop_stale_copies(r);
    qp__say(r, "input", "%s %s once (%" PRId64 " rows, %.1fs) into %s", csv ? "parsed" : "read",
            j->file, rows, (qp__ms() - t) / 1000.0, r->input_path);
    return need_table ? map_copy(r) : 0;
}

int qp__prepare_input(run *r, bool need_table)
{
    const qp_job *j = r->job;
    if (!j->file) return 0;
    struct stat st;
    if (stat(j->file, &st)) {
        qp__fail(r, "input %s: %s", j->file, strerror(errno));
        return QP_RUN_FAILED;
    }
    if (S_ISDIR(st.st_mode)) {      /* a kdb+ splayed table: mapped as it is */
        if (!(r->input_path = strdup(j->file))) return QP_RUN_FAILED;
        if (!need_table) return 0;
        r->input = qp_table_load(j->file, NULL);
        if (r->input && !qp_is_error(r->input)) return 0;
        qp__fail(r, "input %s: %s", j->file, r->input ? r->input->s : "out of memory");
        return QP_RUN_FAILED;
    }
    /* a CSV or a q IPC file: read once into a splayed table the workers map */
    r->input_path = parsed_copy_path(j, &st);
    if (!r->input_path) return QP_RUN_FAILED;
    char done[4200];          /* qp_kdb_write writes .d last */
    snprintf(done, sizeof done, "%s/.d", r->input_path);
    if (access(done, R_OK))
        return read_input(r, ends_with(j->file, ".csv"), !r->o->dry_run, need_table);
    return need_table ? map_copy(r) : 0;
}

/* SHA-256 of a function's code: as the caller gave it (its IPC bytes),
 * else its module file. */
/* The SHA-256 of what a worker runs for function fn, as the journal keys
 * it: the identity the caller gave (id), else the code given, else the
 * module file; then the modules it ships from its folder, so a changed
 * ohlc.py beside slow.py starts the run over too. */
static int code_sha(const qp_value *given, const char *id, const qp_job_fn *fn, uint8_t out[32])
{
    int rc = 0;
    uint8_t two[64] = {0}, *b = NULL;
    size_t len = 0;
    char err[512];
    qp_value *mods = NULL;
    if (id) qp_sha256(id, strlen(id), two);
    else if (!given) rc = qp_sha256_file(fn->file, two);
    else if (!(rc = qp_ipc_encode(given, QP_MSG_ASYNC, &b, &len))) qp_sha256(b, len, two);
    free(b);
    b = NULL;
    if (!rc) rc = qp__fn_modules(fn, given != NULL, &mods, err, sizeof err);
    if (!rc && mods && !(rc = qp_ipc_encode(mods, QP_MSG_ASYNC, &b, &len)))
        qp_sha256(b, len, two + 32);
    free(b);
    if (!rc && mods) qp_sha256(two, 64, out);
    else if (!rc) memcpy(out, two, 32);       /* the same as before modules went along */
    qp_unref(mods);
    return rc;
}

/* ---- what a task reads, for the journal ---- */

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);       /* not the locale's order */
}

/* One line per file of folder path (or for path itself when it is a
 * file): name, inode, size and modification time, in name order. A
 * re-import replaces the files (new inodes and times), an in-place write
 * (q's upsert) changes sizes and times: stat tells both apart from an
 * unchanged table without reading a byte. */
static void describe_files(FILE *m, const char *path)
{
    struct stat st;
    struct dirent **e = NULL;
    int n = stat(path, &st) ? -1 : S_ISDIR(st.st_mode) ? scandir(path, &e, NULL, by_name) : 0;
    fprintf(m, "%s %d\n", path, n);
    if (n == 0) fprintf(m, "%llu %lld %lld.%09ld\n", (unsigned long long)st.st_ino,
                        (long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    for (int i = 0; i < n; i++) {
        char p[4600];
        snprintf(p, sizeof p, "%s/%s", path, e[i]->d_name);
        if (strcmp(e[i]->d_name, ".") && strcmp(e[i]->d_name, "..") && !stat(p, &st))
            fprintf(m, "%s %llu %lld %lld.%09ld\n", e[i]->d_name, (unsigned long long)st.st_ino,
                    (long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
        free(e[i]);
    }
    free(e);
}

void qp__describe_files(FILE *m, const char *path)
{
    describe_files(m, path);
}

int qp__open_db(run *r, char *err, size_t errlen)
{
    return r->db ? 0 : qp_kdb_open(r->job->db, &r->db, err, errlen);
}

/* The db's part of the input's identity: its sym (appended by every
 * write) and par.txt, and the files of the table, all of them unless by =
 * partition, where each task has its partition's for an identity of its
 * own (qp__task_ids): a re-imported partition then runs again while the
 * others resume. A db that does not open here (servers hold it): its
 * root, as far as it can be seen. */
static void describe_db(run *r, FILE *m)
{
    const qp_job *j = r->job;
    char p[4200], err[512];
    struct stat st;
    static const char *const db_files[] = { "/sym", "/par.txt" };
    for (size_t k = 0; k < sizeof db_files / sizeof *db_files; k++) {
        snprintf(p, sizeof p, "%s%s", j->db, db_files[k]);
        if (!stat(p, &st))
            fprintf(m, "%s %lld %lld.%09ld\n", p, (long long)st.st_size,
                    (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    }
    if (qp__open_db(r, err, sizeof err)) {
        describe_files(m, j->db);
        return;
    }
    if (j->part_by == QP_PART_PARTITION) return;
    qp_value *v = qp_kdb_partitions(r->db, j->table);
    int64_t n = v && !qp_is_error(v) && v->v.n ? v->v.n : 1;     /* 1: a splayed table */
    for (int64_t k = 0; k < n; k++) {
        char *dir = qp_kdb_table_dir(r->db, j->table, k);
        if (dir) describe_files(m, dir);
        free(dir);
    }
    qp_unref(v);
}

/* Partition k of a partitions vector (date, month or long), as a number. */
static int64_t part_at(const qp_value *v, int64_t k)
{
    return v->type == QP_LONG ? qp_J(v)[k] : qp_I(v)[k];
}

int qp__task_ids(run *r, uint8_t (**out)[32])
{
    const qp_job *j = r->job;
    char err[512];
    *out = NULL;
    if (j->part_by != QP_PART_PARTITION || !j->db || qp__open_db(r, err, sizeof err)) return 0;
    qp_value *v = qp_kdb_partitions(r->db, j->table);
    uint8_t (*ids)[32] = calloc((size_t)(r->plan->n ? r->plan->n : 1), 32);
    if (!v || !ids) { qp_unref(v); free(ids); return QP_RUN_FAILED; }
    for (int64_t i = 0; !qp_is_error(v) && i < r->plan->n; i++) {
        const qp_value *pv = r->plan->parts[i].value;
        int64_t want = pv->type == -QP_LONG ? pv->j : pv->i, k = 0;
        while (k < v->v.n && part_at(v, k) != want) k++;
        char *dir = k < v->v.n ? qp_kdb_table_dir(r->db, j->table, k) : NULL;
        char *desc = NULL;
        size_t len = 0;
        FILE *m = dir ? open_memstream(&desc, &len) : NULL;
        if (m) {            /* none: a partition only servers hold, unseen here */
            describe_files(m, dir);
            fclose(m);
            qp_sha256(desc, len, ids[i]);
        }
        free(desc);
        free(dir);
    }
    qp_unref(v);
    *out = ids;
    return 0;
}

/* What must be unchanged for a journal to be resumed. */
int qp__job_ids(run *r, qp_journal_id ids[3])
{
    const qp_job *j = r->job;
    int rc;
    memcpy(ids[0].sha, j->sha, 32);     /* the job file as it was read */
    ids[0].what = "job file";
    /* Code: the function's and the reducer's module files, as sent. */
    uint8_t h1[32], h2[32] = {0};
    if ((rc = code_sha(r->o->fn_code, r->o->fn_id, &j->function, h1))) return rc;
    if (j->reducer.file && (rc = code_sha(r->o->reducer_code, r->o->reducer_id, &j->reducer, h2)))
        return rc;
    uint8_t both[64];
    memcpy(both, h1, 32);
    memcpy(both + 32, h2, 32);
    qp_sha256(both, 64, ids[1].sha);
    ids[1].what = "function code";
    /* Input: name, size and modification time of each input file (hashing
     * gigabytes on every run would cost more than the check is worth). */
    char *desc = NULL;
    size_t dlen = 0;
    FILE *m = open_memstream(&desc, &dlen);
    if (!m) return QP_ENOMEM;
    struct stat st;
    if (j->file && !stat(j->file, &st))
        fprintf(m, "%s %lld %lld.%09ld\n", j->file, (long long)st.st_size,
                (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    if (j->db) describe_db(r, m);
    for (int64_t i = 0; r->plan && i < r->plan->n; i++)
        if (r->plan->parts[i].file && !stat(r->plan->parts[i].file, &st))
            fprintf(m, "%s %lld %lld.%09ld\n", r->plan->parts[i].file, (long long)st.st_size,
                    (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    fclose(m);
    qp_sha256(desc, dlen, ids[2].sha);
    ids[2].what = "input";
    free(desc);
    return 0;
}

/* ---- column names, before any task runs ---- */

/* "a, b, c": the names of a symbol vector, for messages. */
static void list_names(const qp_value *names, char *out, size_t n)
{
    size_t at = 0;
    out[0] = '\0';
    for (int64_t i = 0; names && i < names->v.n && at < n; i++)
        at += (size_t)snprintf(out + at, n - at, "%s%s", i ? ", " : "", qp_S(names)[i]);
}

static bool has_name(const qp_value *names, const char *name)
{
    const char *s = qp_sym_intern(name, strlen(name));
    for (int64_t i = 0; i < names->v.n; i++)
        if (qp_S(names)[i] == s) return true;
    return false;
}

/* The input's column names: from the parsed CSV, else from a worker
 * (.qp.meta of the table it holds). New reference, NULL with r->error. */
static qp_value *input_names(run *r)
{
    if (r->input) return qp_ref(qp_table_names(r->input));
    qp_value *m = qp__call_one(r, qp__call(".qp.meta", 1, qp_symbol(r->job->table)));
    if (!m) return NULL;
    qp_value *c = NULL;
    if (m->type == QP_DICT && qp_dict_keys(m)->type == QP_TABLE)
        c = qp_table_column(qp_dict_keys(m), "c");
    if (!c || c->type != QP_SYMBOL) {
        qp__fail(r, "table %s: %s", r->job->table, qp_is_error(m) ? m->s : "no column names");
        qp_unref(m);
        return NULL;
    }
    qp_ref(c);
    qp_unref(m);
    return c;
}

int qp__check_columns(run *r)
{
    const qp_job *j = r->job;
    if (j->part_by != QP_PART_COLUMN) return 0;
    qp_value *names = input_names(r);
    if (!names) return QP_RUN_FAILED;
    int rc = 0;
    if (!has_name(names, j->column)) {
        char have[600];
        list_names(names, have, sizeof have);
        qp__fail(r, "[partition] column = %s: %s has no such column (it has: %s)", j->column,
                 j->file ? j->file : j->table, have);
        rc = QP_RUN_BADJOB;
    }
    qp_unref(names);
    return rc;
}

int qp__check_key(run *r, const qp_value *result, int64_t task)
{
    const qp_job *j = r->job;
    if (j->merge != QP_MERGE_SUM_BY_KEY || !j->nkeys || result->type != QP_TABLE) return 0;
    const qp_value *names = qp_table_names(result);
    for (int i = 0; i < j->nkeys; i++) {
        if (has_name(names, j->keys[i])) continue;
        char have[600];
        list_names(names, have, sizeof have);
        qp__fail(r, "[merge] key = %s: the function's result (task %" PRId64 ") has no such "
                 "column (it has: %s)", j->keys[i], task, have);
        return QP_RUN_BADJOB;
    }
    return 0;
}

/* ---- the db, before any worker starts ---- */

int qp__check_db(run *r)
{
    const qp_job *j = r->job;
    char err[512];
    if (!j->db) return 0;
    if (qp__open_db(r, err, sizeof err)) {
        qp__fail(r, "[input] db: %s", err);
    } else if (!qp_kdb_has(r->db, j->table)) {
        qp_value *t = qp_kdb_tables(r->db);
        char have[600] = "none";
        if (t && t->v.n) list_names(t, have, sizeof have);
        qp__fail(r, "[input] db: %s has no table %s (its tables: %s)", j->db, j->table, have);
        qp_unref(t);
    } else {
        qp_value *m = qp_kdb_meta(r->db, j->table);      /* its .d and column headers read */
        bool ok = m && !qp_is_error(m);
        if (!ok)
            qp__fail(r, "[input] db: %s: table %s: %s", j->db, j->table, m ? m->s : "out of memory");
        qp_unref(m);
        if (ok) return 0;
    }
    r->badjob = true;           /* the job's input is not there */
    return QP_RUN_FAILED;
}

/* ---- planning ---- */

qp__worker *qp__first_ready(run *r)
{
    for (int i = 0; i < r->nw; i++) if (r->ws[i].c) return &r->ws[i];
    return NULL;
}

/* One sync call on a ready worker (planning, reducing). While the worker
 * computes, journal records not yet durable are fsync'd: after the last
 * task this is the reducer's time, so the final sync costs the run
 * nothing. New reference or NULL with r->error set. */
qp_value *qp__call_one(run *r, qp_value *msg)
{
    return qp__call_on(r, qp__first_ready(r), msg);
}

qp_value *qp__call_on(run *r, qp__worker *w, qp_value *msg)
{
    if (!w || !msg) {
        qp__fail(r, "%s", msg ? "no worker is usable" : "out of memory");
        qp_unref(msg);
        return NULL;
    }
    int rc = qp_conn_send(w->c, msg, QP_MSG_SYNC);
    qp_unref(msg);
    if (rc) {
        qp__fail(r, "%s: %s", w->addr, qp_conn_errstr(w->c));
        return NULL;
    }
    if (r->journal && (rc = qp_journal_sync_async(r->journal))) {
        qp__fail(r, "journal: %s", qp_strerror(rc));
        return NULL;
    }
    for (;;) {
        qp_value *v = NULL;
        int t = QP_MSG_RESPONSE;
        if (qp_conn_recv(w->c, &v, &t, -1)) {
            qp__fail(r, "%s: %s", w->addr, qp_conn_errstr(w->c));
            return NULL;
        }
        if (t == QP_MSG_RESPONSE) return v;
        qp_unref(v);       /* async chatter; workers send no requests */
    }
}

/* ---- by = partition ---- */

/* Appends the partitions in v that [partition] partitions selects to all
 * (of v's type). 0, or QP_RUN_FAILED with r->error (and r->badjob
 * when the spec names another kind of partition). */
static int append_selected(run *r, const qp_value *v, qp_value *all)
{
    const char *spec = r->job->partitions;
    size_t w = qp_type_width(v->type);
    for (int64_t k = 0; k < v->v.n; k++) {
        bool in = true;
        if (spec && qp_job_partitions_parse(spec, v->type, part_at(v, k), &in)) {
            qp__fail(r, "[partition] partitions = %s: table %s is partitioned by %s", spec,
                     r->job->table, v->type == QP_DATE ? "date" : v->type == QP_MONTH ? "month"
                                                                      : "year or int");
            r->badjob = true;
            return QP_RUN_FAILED;
        }
        if (in && qp_vec_append(all, (const uint8_t *)v->v.data + (size_t)k * w)) {
            qp__fail(r, "out of memory");
            return QP_RUN_FAILED;
        }
    }
    return 0;
}

/* [partition] partitions as a list: each partition it names must be
 * among those found (all: every worker's selected partitions, or the
 * db's; where says which), else the run fails before any task naming
 * them, or with missing = skip says what it skips. 0 or QP_RUN_FAILED. */
static int check_named(run *r, const qp_value *all, const char *where)
{
    const qp_job *j = r->job;
    char miss[600] = "", name[32];
    size_t at = 0;
    int64_t nmiss = 0, v;
    int type;
    for (int64_t i = 0; j->partitions; i++) {
        if (qp_job_partitions_named(j->partitions, i, &type, &v, name)) break;     /* the last */
        bool found = false;
        for (int64_t k = 0; all && type == all->type && k < all->v.n && !found; k++)
            found = part_at(all, k) == v;
        if (found) continue;
        if (at < sizeof miss)
            at += (size_t)snprintf(miss + at, sizeof miss - at, "%s%s", nmiss ? ", " : "", name);
        nmiss++;
    }
    if (!nmiss) return 0;
    if (j->missing_skip) {
        qp__say(r, "plan", "skipped %" PRId64 " partition%s of %s not found %s: %s", nmiss,
                nmiss == 1 ? "" : "s", j->table, where, miss);
        return 0;
    }
    qp__fail(r, "[partition] partitions = %s: table %s has no partition %s %s (missing = skip "
             "runs the others)", j->partitions, j->table, miss, where);
    r->badjob = true;
    return QP_RUN_FAILED;
}

/* No partition to run: the table has none, or the spec selects none. */
static int no_partitions(run *r)
{
    qp__fail(r, "table %s: %s", r->job->table, r->job->partitions
             ? "[partition] partitions selects none of its partitions"
             : "no partitions (by = partition needs a partitioned kdb+ table)");
    return QP_RUN_FAILED;
}

/* The plan is made: a range says how many partitions it found. */
static void report_range(run *r)
{
    const char *spec = r->job->partitions;
    if (spec && strstr(spec, ".."))
        qp__say(r, "plan", "partitions = %s: %" PRId64 " partition%s of %s found", spec, r->plan->n,
                r->plan->n == 1 ? "" : "s", r->job->table);
}

/* Every worker's partitions of the table (.qp.partitions), the selected
 * ones appended to *all. holds[w] lists worker w's. 0 or QP_RUN_FAILED. */
static int gather_partitions(run *r, qp_value **per, qp_value **all)
{
    for (int wi = 0; wi < r->nw; wi++) {
        if (!r->ws[wi].c) {     /* its partitions would silently be left out */
            qp__fail(r, "%s is unusable, so the partitions it holds are unknown: by = partition "
                     "needs every worker", r->ws[wi].addr);
            return QP_RUN_FAILED;
        }
        qp_value *v = qp__call_on(r, &r->ws[wi], qp__call(".qp.partitions", 1, qp_symbol(r->job->table)));
        if (!v) return QP_RUN_FAILED;
        per[wi] = v;
        if (qp_is_error(v) || (v->type != QP_DATE && v->type != QP_MONTH && v->type != QP_LONG)) {
            qp__fail(r, "%s: partitions of %s: %s", r->ws[wi].addr, r->job->table,
                     qp_is_error(v) ? v->s : "not a list of partitions");
            return QP_RUN_FAILED;
        }
        if (!*all) *all = qp_vector(v->type, 0);
        if (!*all) return QP_RUN_FAILED;
        if ((*all)->type != v->type) {
            qp__fail(r, "%s: table %s is partitioned by another type than on %s", r->ws[wi].addr,
                     r->job->table, r->ws[0].addr);
            return QP_RUN_FAILED;
        }
        if (append_selected(r, v, *all)) return QP_RUN_FAILED;
    }
    return 0;
}

/* Which worker holds which task: NULL rows for workers holding all. */
static int set_holds(run *r, qp_value **per)
{
    r->holds = calloc((size_t)r->nw, sizeof *r->holds);
    if (!r->holds) return QP_RUN_FAILED;
    for (int wi = 0; wi < r->nw; wi++) {
        if (!per[wi]) continue;
        bool *h = calloc((size_t)(r->plan->n ? r->plan->n : 1), sizeof *h);
        if (!h) return QP_RUN_FAILED;
        int64_t held = 0;
        for (int64_t i = 0; i < r->plan->n; i++) {
            const qp_value *pv = r->plan->parts[i].value;    /* an atom of per's type */
            int64_t want = pv->type == -QP_LONG ? pv->j : pv->i;
            for (int64_t k = 0; k < per[wi]->v.n && !h[i]; k++) h[i] = part_at(per[wi], k) == want;
            held += h[i];
        }
        if (held == r->plan->n) { free(h); h = NULL; }
        r->holds[wi] = h;
    }
    return 0;
}

/* One task per kdb+ partition the workers hold (those [partition]
 * partitions selects); a task goes only to a worker holding it. */
static int plan_partitions(run *r)
{
    qp_value **per = calloc((size_t)r->nw, sizeof *per), *all = NULL, *names = NULL;
    int rc = per ? gather_partitions(r, per, &all) : QP_RUN_FAILED;
    if (!rc) rc = check_named(r, all, "on any worker");
    if (!rc && (!all || all->v.n == 0)) rc = no_partitions(r);
    if (!rc && !(names = input_names(r))) rc = QP_RUN_FAILED;   /* the virtual column first */
    if (!rc && qp_partplan_column(qp_S(names)[0], all, &r->plan)) rc = QP_RUN_FAILED;
    if (!rc) report_range(r);
    if (!rc) rc = set_holds(r, per);
    for (int wi = 0; per && wi < r->nw; wi++) qp_unref(per[wi]);
    free(per);
    qp_unref(all);
    qp_unref(names);
    return rc;
}

/* Row ranges for `by = rows` when the job gives no `pieces`: 4 per worker
 * slot, so that the last task is not the run's long tail, and more when
 * the table is large, so that no task exceeds ROWS_PER_TASK rows. A
 * task's temporaries (numpy's copies and casts of its columns: 20-30 bytes
 * a row for jobs/vwap.py) scale with its rows, and a worker keeps its
 * largest task's worth; small tasks keep the workers' memory near the
 * mapped table's own size (bench/bench_cold.py), at ~0.2 ms a task. */
enum { ROWS_PER_TASK = 1 << 19 };

static int row_pieces(const qp_job *j, int64_t count, int slots)
{
    if (j->pieces) return j->pieces;
    int64_t n = 4 * (int64_t)(slots > 0 ? slots : 1), big = (count + ROWS_PER_TASK - 1) / ROWS_PER_TASK;
    if (big > n) n = big;
    return n > INT_MAX ? INT_MAX : (int)n;
}

/* by = partition from the db opened here: its partitions that [partition]
 * partitions selects. 0 or QP_RUN_FAILED. */
static int plan_db_partitions(run *r)
{
    const qp_job *j = r->job;
    qp_value *v = qp_kdb_partitions(r->db, j->table), *sel = NULL;
    int rc = QP_RUN_FAILED;
    if (!v || qp_is_error(v) || !(sel = qp_vector(v->type, 0))) {
        qp__fail(r, "table %s: %s", j->table, v && qp_is_error(v) ? v->s : "out of memory");
        goto fail;
    }
    if (append_selected(r, v, sel) || check_named(r, sel, "in the db")) goto fail;
    if (sel->v.n == 0) {
        no_partitions(r);
        goto fail;
    }
    const char *col = qp_kdb_part_column(r->db, j->table);
    if (qp_partplan_column(col ? col : "date", sel, &r->plan)) {
        qp__fail(r, "planning: out of memory");
        goto fail;
    }
    report_range(r);
    rc = 0;
fail:
    qp_unref(v);
    qp_unref(sel);
    return rc;
}

int qp__plan_db(run *r, int slots)
{
    const qp_job *j = r->job;
    char err[512];
    int64_t n = 0;
    int rc = qp__open_db(r, err, sizeof err);
    if (!rc && j->part_by == QP_PART_ROWS && !(rc = qp_kdb_count(r->db, j->table, &n, err,
                                                                 sizeof err)))
        rc = qp_partplan_rows(n, row_pieces(j, n, slots), &r->plan);
    if (rc) {
        qp__fail(r, "%s", err);
        return QP_RUN_FAILED;
    }
    return j->part_by == QP_PART_PARTITION ? plan_db_partitions(r) : 0;
}

int qp__make_plan(run *r, int slots)
{
    const qp_job *j = r->job;
    int rc = 0;
    if (j->part_by == QP_PART_PARTITION && r->sproto->holds_input) {
        /* the partitions of the db here: they travel with the calls */
        if (qp__plan_db(r, slots)) return QP_RUN_FAILED;
    } else if (j->part_by == QP_PART_PARTITION) {
        if (plan_partitions(r)) return QP_RUN_FAILED;
    } else if (j->part_by == QP_PART_FILE) {
        rc = qp_partplan_files(j->files, &r->plan);
        if (rc == QP_EARG) qp__fail(r, "no file matches %s", j->files);
    } else if (j->part_by == QP_PART_ROWS) {
        int64_t count;
        if (r->input) count = qp_count(r->input);
        else if (copy_rows(r, &count) == 0) {}
        else {
            qp_value *v = qp__call_one(r, qp__call(".qp.count", 1, qp_symbol(j->table)));
            if (!v) return QP_RUN_FAILED;
            if (v->type != -QP_LONG) {
                qp__fail(r, "counting table %s: %s", j->table,
                         qp_is_error(v) ? v->s : "not a count");
                qp_unref(v);
                return QP_RUN_FAILED;
            }
            count = v->j;
            qp_unref(v);
        }
        rc = qp_partplan_rows(count, row_pieces(j, count, slots), &r->plan);
    } else {
        qp_value *col = NULL;
        if (r->input) {
            col = qp_table_column(r->input, j->column);
            if (col) qp_ref(col);
        } else {
            /* The values come from a worker, which reads and scans the
             * column where the table is (mapped, or in its memory). */
            qp_value *v = qp__call_one(r, qp__call(".qp.distinct", 2, qp_symbol(j->table),
                                                   qp_symbol(j->column)));
            if (!v) return QP_RUN_FAILED;
            if (qp_is_error(v)) {
                qp__fail(r, "distinct values of %s.%s: %s", j->table, j->column, v->s);
                qp_unref(v);
                return QP_RUN_FAILED;
            }
            col = v;
        }
        if (!col) {
            qp__fail(r, "input has no column %s", j->column);
            return QP_RUN_FAILED;
        }
        rc = qp_partplan_column(j->column, col, &r->plan);
        qp_unref(col);
        if (rc == QP_ETYPE || rc == QP_EARG)
            qp__fail(r, "cannot partition by column %s", j->column);
    }
    if (rc) {
        qp__fail(r, "planning: %s", qp_strerror(rc));
        return QP_RUN_FAILED;
    }
    r->rows_total = 0;
    for (int64_t i = 0; i < r->plan->n; i++)
        if (r->plan->parts[i].rows > 0) r->rows_total += r->plan->parts[i].rows;
    return 0;
}

