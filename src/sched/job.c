/* job.c - job files (INI, parsed with libinih): strict keys, errors that
 * name the file, line and key, paths made absolute against the job file. */
#include "qpeach/auth.h"
#include "qpeach/job.h"
#include "qpeach/journal.h"
#include "qpeach/value.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LINE 4096

/* ---- parse state ---- */

typedef struct parse {
    qp_job *job;
    FILE *f;
    int line;              /* line the reader handed inih last */
    char section[64];      /* current section, checked by the reader */
    char *err;
    size_t errlen;
    bool failed;
    bool oom;
    uint32_t seen[8];      /* bit per key index: repeated keys are errors */
    int pieces_line;
} parse;

static void fail(parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(parse *p, const char *fmt, ...)
{
    if (p->failed) return;
    p->failed = true;
    /* a job from pairs has no lines: its name alone */
    int n = p->line ? snprintf(p->err, p->errlen, "%s:%d: ", p->job->base, p->line)
                    : snprintf(p->err, p->errlen, "%s: ", p->job->base);
    if (n < 0 || (size_t)n >= p->errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err + n, p->errlen - n, fmt, ap);
    va_end(ap);
}

static const char *sections[] = { "job", "input", "partition", "workers", "merge",
                                  "output", "run" };

/* Whether section [s] (len bytes) is known; fails p naming them if not. */
static bool known_section(parse *p, const char *s, size_t len)
{
    for (size_t i = 0; i < sizeof sections / sizeof *sections; i++)
        if (strlen(sections[i]) == len && !strncmp(sections[i], s, len)) return true;
    fail(p, "unknown section [%.*s] (known: job, input, partition, workers, merge, output, run)",
         (int)len, s);
    return false;
}

/* fgets-style reader for ini_parse_stream: counts lines, checks section
 * headers (inih has no callback for a section without keys) and refuses
 * lines longer than MAX_LINE instead of letting inih split them. */
static char *reader(char *str, int num, void *stream)
{
    parse *p = stream;
    if (!fgets(str, num, p->f)) return NULL;
    p->line++;
    size_t n = strlen(str);
    if (n == (size_t)num - 1 && str[n - 1] != '\n' && !feof(p->f)) {
        fail(p, "line longer than %d bytes", num - 2);
        int c;
        while ((c = fgetc(p->f)) != EOF && c != '\n') {}
        str[0] = '\0';
        return str;
    }
    const char *s = str;
    while (isspace((unsigned char)*s)) s++;
    if (*s == '[') {
        const char *e = strchr(s, ']');
        if (!e) return str;        /* inih reports it as a syntax error */
        known_section(p, s + 1, (size_t)(e - s - 1));
    }
    return str;
}

/* ---- value helpers ---- */

static char *dup(parse *p, const char *s)
{
    char *d = strdup(s);
    if (!d) p->oom = true;
    return d;
}

/* Absolute path of v relative to the job's folder (v itself if absolute). */
/* Drops "." and "dir/.." segments and repeated slashes from an absolute
 * path, in place, as Python's os.path.normpath does (lexically: the files
 * need not exist yet), so messages show "/srv/out/x.csv", not
 * "/srv/jobs/../out/x.csv". */
static void normalize(char *path)
{
    char *out = path;              /* write position; path[0] is '/' */
    for (const char *in = path; *in;) {
        while (*in == '/') in++;
        const char *end = in + strcspn(in, "/");
        size_t n = (size_t)(end - in);
        if (n == 1 && in[0] == '.') {
            /* skip */
        } else if (n == 2 && in[0] == '.' && in[1] == '.') {
            while (out > path && *--out != '/') {}
        } else if (n) {
            *out++ = '/';
            memmove(out, in, n);
            out += n;
        }
        in = end;
    }
    if (out == path) *out++ = '/';
    *out = '\0';
}

static char *abspath(parse *p, const char *v)
{
    if (!strcmp(v, "-")) return dup(p, v);
    size_t n = strlen(p->job->dir) + strlen(v) + 2;
    char *s = malloc(n);
    if (!s) { p->oom = true; return NULL; }
    if (v[0] == '/') snprintf(s, n, "%s", v);
    else snprintf(s, n, "%s/%s", p->job->dir, v);
    normalize(s);
    return s;
}

static bool parse_bool(const char *v, bool *out)
{
    if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "1")) *out = true;
    else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "0")) *out = false;
    else return false;
    return true;
}

static bool parse_int(const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) return false;
    *out = x;
    return true;
}

int qp_job_parse_duration(const char *s, int64_t *ms)
{
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (errno || end == s || x < 0 || x != x) return QP_EARG;
    double mult = 1000;
    if (!*end || !strcmp(end, "s")) mult = 1000;
    else if (!strcmp(end, "ms")) mult = 1;
    else if (!strcmp(end, "m")) mult = 60000;
    else if (!strcmp(end, "h")) mult = 3600000;
    else return QP_EARG;
    if (x * mult > 1e15) return QP_EARG;
    *ms = (int64_t)(x * mult + 0.5);
    return 0;
}

/* Splits a comma-separated list into trimmed, non-empty items. */
static int split(parse *p, const char *v, char ***out)
{
    int n = 0;
    char **items = NULL;
    const char *s = v;
    while (*s) {
        const char *e = strchr(s, ',');
        if (!e) e = s + strlen(s);
        const char *a = s, *b = e;
        while (a < b && isspace((unsigned char)*a)) a++;
        while (b > a && isspace((unsigned char)b[-1])) b--;
        if (b > a) {
            char **t = realloc(items, (n + 1) * sizeof *t);
            if (!t) { p->oom = true; break; }
            items = t;
            items[n] = strndup(a, (size_t)(b - a));
            if (!items[n]) { p->oom = true; break; }
            n++;
        }
        s = *e ? e + 1 : e;
    }
    *out = items;
    return n;
}

static void free_list(char **v, int n)
{
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

/* A byte a function's name may hold in a job. */
static bool fn_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

char *qp_job_fn_name(const char *name)
{
    char *s = strdup(name);
    for (char *c = s; c && *c; c++)
        if (!fn_char(*c)) *c = '_';
    return s;
}

/* "file.py:name" -> absolute file + name. */
static bool parse_fn(parse *p, const char *sec, const char *key, const char *v, qp_job_fn *fn)
{
    const char *colon = strrchr(v, ':');
    if (!colon || colon == v || !colon[1]) {
        fail(p, "[%s] %s: expected file.py:function, got '%s'", sec, key, v);
        return false;
    }
    for (const char *c = colon + 1; *c; c++)
        if (!fn_char(*c)) {
            fail(p, "[%s] %s: not a Python function name: '%s'", sec, key, colon + 1);
            return false;
        }
    char *file = strndup(v, (size_t)(colon - v));
    if (!file) { p->oom = true; return false; }
    fn->file = abspath(p, file);
    free(file);
    fn->name = dup(p, colon + 1);
    return true;
}

/* Credentials: "user:password", "user", or "@file" holding one of those;
 * the file is relative to the job file. */
static void parse_user(parse *p, const char *v)
{
    qp_job *j = p->job;
    char buf[1024], spec[PATH_MAX + 1], err[PATH_MAX + 64];
    const char *user, *password;
    if (v[0] == '@') {
        char *path = abspath(p, v + 1);
        if (!path) return;
        snprintf(spec, sizeof spec, "@%s", path);
        free(path);
        v = spec;
    }
    if (qp_credentials_parse(v, buf, sizeof buf, &user, &password, err, sizeof err) < 0) {
        fail(p, "[workers] user: %s", err);
        return;
    }
    j->user = dup(p, user);
    j->password = dup(p, password);
    explicit_bzero(buf, sizeof buf);
}

/* ---- the key table ---- */

/* In section order: handler() picks the setter by range (K_DB ends [job]
 * and [input], K_PART_MISSING [partition], K_PROTOCOL [workers]). */
enum key_id {
    K_NAME, K_FUNCTION, K_LIBRARIES, K_SYMBOLS,
    K_TABLE, K_FILE, K_FILES, K_TYPES, K_DB,
    K_BY, K_COLUMN, K_PIECES, K_PARTITIONS, K_PART_MISSING,
    K_LOCAL, K_SERVERS, K_THREADS, K_USER, K_WINDOW, K_CONNECT_TIMEOUT, K_TLS, K_TLS_CA,
    K_PROTOCOL,
    K_HOW, K_REDUCER, K_KEY, K_MISSING,
    K_PATH, K_FORMAT,
    K_RETRIES, K_TASK_TIMEOUT, K_STATE, K_RETRY_ERRORS,
    K_COUNT
};

static const struct { const char *sec, *key; } keys[K_COUNT] = {
    [K_NAME] = {"job", "name"}, [K_FUNCTION] = {"job", "function"},
    [K_LIBRARIES] = {"job", "libraries"}, [K_SYMBOLS] = {"job", "symbols"},
    [K_TABLE] = {"input", "table"}, [K_FILE] = {"input", "file"},
    [K_FILES] = {"input", "files"}, [K_TYPES] = {"input", "types"},
    [K_BY] = {"partition", "by"}, [K_COLUMN] = {"partition", "column"},
    [K_PIECES] = {"partition", "pieces"}, [K_DB] = {"input", "db"},
    [K_PARTITIONS] = {"partition", "partitions"}, [K_PART_MISSING] = {"partition", "missing"},
    [K_LOCAL] = {"workers", "local"}, [K_SERVERS] = {"workers", "servers"},
    [K_THREADS] = {"workers", "threads"}, [K_USER] = {"workers", "user"},
    [K_WINDOW] = {"workers", "window"}, [K_CONNECT_TIMEOUT] = {"workers", "connect_timeout"},
    [K_TLS] = {"workers", "tls"}, [K_TLS_CA] = {"workers", "tls_ca"},
    [K_PROTOCOL] = {"workers", "protocol"},
    [K_HOW] = {"merge", "how"}, [K_REDUCER] = {"merge", "reducer"}, [K_KEY] = {"merge", "key"},
    [K_MISSING] = {"merge", "missing"},
    [K_PATH] = {"output", "path"}, [K_FORMAT] = {"output", "format"},
    [K_RETRIES] = {"run", "retries"}, [K_TASK_TIMEOUT] = {"run", "task_timeout"},
    [K_STATE] = {"run", "state"}, [K_RETRY_ERRORS] = {"run", "retry_errors"},
};

static const char *part_names[] = { "rows", "column", "file", "partition" };
static const char *merge_names[] = { "concat", "sum", "min", "max", "count", "sum-by-key",
                                     "python", "none" };

const char *qp_job_part_name(int by)
{
    return by >= 0 && by <= QP_PART_PARTITION ? part_names[by] : "?";
}

const char *qp_job_merge_name(int how)
{
    return how >= 0 && how <= QP_MERGE_NONE ? merge_names[how] : "?";
}

static bool valid_name(const char *v)
{
    if (!*v || isdigit((unsigned char)*v)) return false;
    for (; *v; v++)
        if (!isalnum((unsigned char)*v) && *v != '_' && *v != '.') return false;
    return true;
}

/* [job] libraries = alias=module, ...: modules the function's file may
 * use under another name. false if the value was bad (p says why). */
static bool parse_libraries(parse *p, const char *value)
{
    qp_job *j = p->job;
    char **items;
    int n = split(p, value, &items);
    j->lib_alias = calloc(n ? n : 1, sizeof *j->lib_alias);
    j->lib_module = calloc(n ? n : 1, sizeof *j->lib_module);
    if (!j->lib_alias || !j->lib_module) { free_list(items, n); p->oom = true; return false; }
    for (int i = 0; i < n; i++) {
        char *eq = strchr(items[i], '=');
        const char *alias = items[i], *mod = eq ? eq + 1 : items[i];
        if (eq) *eq = '\0';
        while (*mod == ' ') mod++;
        size_t al = strlen(alias);
        while (al && alias[al - 1] == ' ') al--;
        j->lib_alias[i] = strndup(alias, al);
        j->lib_module[i] = dup(p, mod);
        j->nlibs = i + 1;
        if (!j->lib_alias[i] || !valid_name(j->lib_alias[i]) || !valid_name(mod)) {
            fail(p, "[job] libraries: expected alias=module, comma separated: '%s'", value);
            free_list(items, n);
            return false;
        }
    }
    free_list(items, n);
    return true;
}

/* A bad value: says which key and what was expected, and stops the
 * setter. */
#define BAD(what) \
    do { fail(p, "[%s] %s: " what ": '%s'", section, name, value); return false; } while (0)

/* Sets one of the [job] and [input] keys. false if the value was bad (p says why). */
static bool set_job(parse *p, int k, const char *section, const char *name, const char *value)
{
    qp_job *j = p->job;
    switch (k) {
    case K_NAME:
        if (!valid_name(value)) BAD("not a name (letters, digits, _ and .)");
        free(j->name);
        j->name = dup(p, value);
        break;
    case K_FUNCTION:
        if (!parse_fn(p, section, name, value, &j->function)) return false;
        break;
    case K_LIBRARIES:
        if (!parse_libraries(p, value)) return false;
        break;
    case K_SYMBOLS:
        if (!strcmp(value, "categorical")) j->categorical = true;
        else if (!strcmp(value, "codes")) j->codes = true;
        else if (strcmp(value, "str")) BAD("expected str, categorical or codes");
        break;
    case K_TABLE:
        if (!valid_name(value)) BAD("not a table name");
        j->table = dup(p, value);
        break;
    case K_FILE: j->file = abspath(p, value); break;
    case K_FILES: j->files = abspath(p, value); break;
    case K_TYPES:
        for (const char *c = value; *c; c++)
            if (!strchr(" bghijefcspmdznuvtx*BGHIJEFCSPMDZNUVTX", *c)) BAD("not a q type string");
        j->csv_types = dup(p, value);
        break;
    case K_DB: j->db = abspath(p, value); break;
    }
    return true;
}

/* Sets one of the [partition] keys. false if the value was bad (p says why). */
static bool set_partition(parse *p, int k, const char *section, const char *name, const char *value)
{
    qp_job *j = p->job;
    long x;
    switch (k) {
    case K_BY:
        for (x = 0; x <= QP_PART_PARTITION; x++)
            if (!strcmp(value, part_names[x])) break;
        if (x > QP_PART_PARTITION) BAD("expected rows, column, file or partition");
        j->part_by = (int)x;
        break;
    case K_COLUMN:
        if (!valid_name(value)) BAD("not a column name");
        j->column = dup(p, value);
        break;
    case K_PIECES:
        if (!parse_int(value, 1, 1000000, &x)) BAD("not a positive integer");
        j->pieces = (int)x;
        break;
    case K_PARTITIONS:
        if (qp_job_partitions_parse(value, 0, 0, NULL))
            BAD("expected partitions as A..B or A,B,C (e.g. 2022.06.17..2022.06.30, 2022.06, 7)");
        j->partitions = dup(p, value);
        break;
    case K_PART_MISSING:
        if (strcmp(value, "fail") && strcmp(value, "skip")) BAD("expected fail or skip");
        j->missing_skip = value[0] == 's';
        break;
    }
    return true;
}

/* Sets one of the [workers] keys. false if the value was bad (p says why). */
static bool set_workers(parse *p, int k, const char *section, const char *name, const char *value)
{
    qp_job *j = p->job;
    long x;
    int64_t ms;
    switch (k) {
    case K_LOCAL:
        if (!parse_int(value, 0, 1024, &x)) BAD("not a worker count (0..1024)");
        j->local = (int)x;
        break;
    case K_SERVERS:
        j->nservers = split(p, value, &j->servers);
        for (int i = 0; i < j->nservers; i++)
            if (!strchr(j->servers[i], ':') && j->servers[i][0] != '@')
                { fail(p, "[%s] %s: not an address (host:port, unix:/path): '%s'",
                       section, name, j->servers[i]); return false; }
        break;
    case K_THREADS:
        if (!parse_int(value, 0, 1024, &x)) BAD("not a thread count (0..1024)");
        j->threads = (int)x;
        break;
    case K_USER: parse_user(p, value); break;
    case K_WINDOW:
        if (!strcmp(value, "auto")) { j->window = 0; break; }
        if (!parse_int(value, 1, 1024, &x)) BAD("not a positive integer or auto");
        j->window = (int)x;
        break;
    case K_CONNECT_TIMEOUT:
        if (qp_job_parse_duration(value, &ms) || ms <= 0) BAD("not a duration (e.g. 10s, 500ms)");
        j->connect_timeout_ms = (int)ms;
        break;
    case K_TLS:
        if (!parse_bool(value, &j->tls)) BAD("expected true or false");
        break;
    case K_TLS_CA: j->tls_ca = abspath(p, value); break;
    case K_PROTOCOL:
        if (!strcmp(value, "qpeach")) j->pykx = false;
        else if (!strcmp(value, "pykx")) j->pykx = true;
        else BAD("expected qpeach or pykx");
        break;
    }
    return true;
}

/* Sets one of the [merge], [output] and [run] keys. false if the value was bad (p says why). */
static bool set_merge(parse *p, int k, const char *section, const char *name, const char *value)
{
    qp_job *j = p->job;
    long x;
    int64_t ms;
    switch (k) {
    case K_HOW:
        for (x = 0; x <= QP_MERGE_NONE; x++)
            if (!strcmp(value, merge_names[x])) break;
        if (x > QP_MERGE_NONE)
            BAD("expected concat, sum, min, max, count, sum-by-key, python or none");
        j->merge = (int)x;
        break;
    case K_REDUCER:
        if (!parse_fn(p, section, name, value, &j->reducer)) return false;
        break;
    case K_KEY:
        j->nkeys = split(p, value, &j->keys);
        for (int i = 0; i < j->nkeys; i++)
            if (!valid_name(j->keys[i])) BAD("not a list of column names");
        break;
    case K_MISSING:
        if (!strcmp(value, "zero")) j->missing_zero = true;
        else if (strcmp(value, "fail")) BAD("expected fail or zero");
        break;
    case K_PATH: {
        const char *dot = strrchr(value, '.');
        if (strcmp(value, "-") && (!dot || (strcmp(dot, ".csv") && strcmp(dot, ".msgpack")
                                            && strcmp(dot, ".qipc"))))
            BAD("expected a .csv, .msgpack or .qipc file, or -");
        j->output = abspath(p, value);
        break;
    }
    case K_FORMAT:
        if (!strcmp(value, "q")) j->q_text = true;
        else if (strcmp(value, "iso")) BAD("expected iso or q");
        break;
    case K_RETRIES:
        if (!parse_int(value, 0, 100, &x)) BAD("not a count (0..100)");
        j->retries = (int)x;
        break;
    case K_TASK_TIMEOUT:
        if (qp_job_parse_duration(value, &ms)) BAD("not a duration (e.g. 60s, 500ms, 2m)");
        j->task_timeout_ms = ms;
        break;
    case K_STATE: j->state = abspath(p, value); break;
    case K_RETRY_ERRORS:
        if (!parse_bool(value, &j->retry_errors)) BAD("expected true or false");
        break;
    }
    return true;
}

#undef BAD

/* The key id of section.name, or -1 with p failed (unknown section or
 * key, or a key given twice). */
static int find_key(parse *p, const char *section, const char *name)
{
    int k = -1;
    bool sec_known = false;
    for (int i = 0; i < K_COUNT; i++) {
        if (!strcmp(keys[i].sec, section)) {
            sec_known = true;
            if (!strcmp(keys[i].key, name)) k = i;
        }
    }
    if (!sec_known) { known_section(p, section, strlen(section)); return -1; }
    if (k < 0) {
        char known[256] = "";
        for (int i = 0; i < K_COUNT; i++)
            if (!strcmp(keys[i].sec, section)) {
                if (known[0]) strncat(known, ", ", sizeof known - strlen(known) - 1);
                strncat(known, keys[i].key, sizeof known - strlen(known) - 1);
            }
        fail(p, "[%s] %s: unknown key (known: %s)", section, name, known);
        return -1;
    }
    if (p->seen[k / 32] & (1u << (k % 32))) {
        fail(p, "[%s] %s: given twice", section, name);
        return -1;
    }
    p->seen[k / 32] |= 1u << (k % 32);
    return k;
}

/* inih's callback for each key: 1 to go on, 0 to stop (p says why). */
static int handler(void *user, const char *section, const char *name, const char *value)
{
    parse *p = user;
    if (p->failed || p->oom) return 0;
    if (!section[0]) { fail(p, "%s: key before any [section]", name); return 0; }
    int k = find_key(p, section, name);
    if (k < 0) return 0;
    if (!value[0]) { fail(p, "[%s] %s: empty value", section, name); return 0; }
    bool ok = k <= K_DB ? set_job(p, k, section, name, value)
            : k <= K_PART_MISSING ? set_partition(p, k, section, name, value)
            : k <= K_PROTOCOL ? set_workers(p, k, section, name, value)
            : set_merge(p, k, section, name, value);
    if (!ok) return 0;
    if (k == K_PIECES) p->pieces_line = p->line;
    return p->oom ? 0 : 1;
}

/* Cross-key checks, after the whole file is read. */
static void check(parse *p)
{
    qp_job *j = p->job;
    p->line = 0;
    const char *b = j->base;
#define REQ(...) do { snprintf(p->err, p->errlen, __VA_ARGS__); p->failed = true; return; } while (0)
    bool has = p->seen[K_BY / 32] & (1u << (K_BY % 32));
    if (!j->function.file) REQ("%s: [job] function: required (file.py:function)", b);
    if (j->db && !j->table) REQ("%s: [input] db needs [input] table (a table of the db)", b);
    if (!j->table && !j->file && !j->files)
        REQ("%s: [input]: give table, file or files (or db and table)", b);
    if (j->file && j->files) REQ("%s: [input]: file and files exclude each other", b);
    if (j->db && (j->file || j->files)) REQ("%s: [input]: db excludes file and files", b);
    if (j->part_by == QP_PART_PARTITION && (j->file || j->files))
        REQ("%s: [partition] by = partition needs a kdb+ table ([input] db, or a table "
            "servers hold)", b);
    if (j->partitions && j->part_by != QP_PART_PARTITION)
        REQ("%s: [partition] partitions is only for by = partition", b);
    if ((p->seen[K_PART_MISSING / 32] & (1u << (K_PART_MISSING % 32)))
        && (!j->partitions || strstr(j->partitions, "..")))
        REQ("%s: [partition] missing is only for a list of partitions (partitions = A, B, C): "
            "a range takes the partitions that exist", b);
    if (j->files && !has) j->part_by = QP_PART_FILE;
    if (j->part_by == QP_PART_FILE && !j->files)
        REQ("%s: [partition] by = file needs [input] files", b);
    if (j->files && j->part_by != QP_PART_FILE)
        REQ("%s: [input] files needs [partition] by = file", b);
    if (j->part_by == QP_PART_COLUMN && !j->column)
        REQ("%s: [partition] by = column needs [partition] column", b);
    if (j->column && j->part_by != QP_PART_COLUMN)
        REQ("%s: [partition] column is only for by = column", b);
    if (j->pieces && j->part_by != QP_PART_ROWS) {
        p->line = p->pieces_line;           /* 0 for pairs: the name alone */
        fail(p, "[partition] pieces: only for by = rows");
        return;
    }
    if (j->local == 0 && j->nservers == 0)
        REQ("%s: [workers]: give local = N or servers = host:port, ...", b);
    if (j->tls_ca && !j->tls) REQ("%s: [workers] tls_ca needs tls = true", b);
    if (j->tls && j->nservers == 0)
        REQ("%s: [workers] tls is for servers (local workers use unix sockets)", b);
    if (j->pykx && j->nservers == 0)
        REQ("%s: [workers] protocol = pykx is for servers (local workers speak qpeach)", b);
    if (j->pykx && !j->db && !j->file && !j->files)
        REQ("%s: [workers] protocol = pykx needs the input here ([input] file, files or db): "
            "a q server selects nothing for us", b);
    if (j->merge == QP_MERGE_PYTHON && !j->reducer.file)
        REQ("%s: [merge] how = python needs [merge] reducer (file.py:function)", b);
    if (j->nkeys && j->merge != QP_MERGE_SUM_BY_KEY)
        REQ("%s: [merge] key is only for how = sum-by-key", b);
#undef REQ
    if (!j->name) {
        const char *dot = strrchr(b, '.');
        j->name = strndup(b, dot ? (size_t)(dot - b) : strlen(b));
        if (!j->name) p->oom = true;
    }
    if (!j->table) j->table = dup(p, "qp_input");
    if (!j->output) j->output = dup(p, "-");
    if (!j->state) {            /* .qpeach/ beside the job file, made on demand */
        size_t n = strlen(j->dir) + sizeof "/.qpeach";
        if ((j->state = malloc(n))) snprintf(j->state, n, "%s/.qpeach", j->dir);
        else p->oom = true;
    }
}

/* A job with every default, before any key. NULL on OOM. */
static qp_job *job_new(void)
{
    qp_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->retries = 2;
    j->window = 0;          /* auto: see dispatch.c */
    j->connect_timeout_ms = 10000;
    j->merge = QP_MERGE_CONCAT;
    return j;
}

/* The end of a load: the cross-key checks, and *out or the job freed.
 * 0, QP_EARG or QP_ENOMEM (with err). */
static int job_done(parse *p, const char *what, qp_job **out)
{
    if (!p->failed && !p->oom) check(p);
    int rc = p->oom ? QP_ENOMEM : p->failed ? QP_EARG : 0;
    if (rc == QP_ENOMEM) snprintf(p->err, p->errlen, "%s: out of memory", what);
    if (rc) qp_job_free(p->job);
    else *out = p->job;
    return rc;
}

int qp_job_load(const char *path, qp_job **out, char *err, size_t errlen)
{
    *out = NULL;
    qp_job *j = job_new();
    if (!j) return QP_ENOMEM;
    parse p = { .job = j, .err = err, .errlen = errlen };
    char *real = realpath(path, NULL);
    int rc = real ? qp_sha256_file(real, j->sha) : -errno;
    if (rc) {
        snprintf(err, errlen, "%s: cannot read job file: %s", path, qp_strerror(rc));
        free(real);
        qp_job_free(j);
        return rc;
    }
    j->path = real;
    const char *slash = strrchr(real, '/');
    j->dir = strndup(real, slash == real ? 1 : (size_t)(slash - real));
    j->base = strdup(slash + 1);
    if (!j->dir || !j->base || !(p.f = fopen(real, "r"))) {
        rc = j->dir && j->base ? -errno : QP_ENOMEM;
        snprintf(err, errlen, "%s: cannot read job file: %s", path, qp_strerror(rc));
        qp_job_free(j);
        return rc;
    }
    /* inih's runtime switches (Debian builds them as variables): one value
     * per line, first error stops, lines up to MAX_LINE. */
    ini_allow_multiline = false;
    ini_stop_on_first_error = true;
    ini_use_stack = false;
    ini_max_line = MAX_LINE + 2;
    int bad = ini_parse_stream(reader, &p, handler, &p);
    fclose(p.f);
    if (bad < 0) p.oom = true;
    if (!p.failed && bad > 0) {
        p.line = bad;
        fail(&p, "expected 'key = value' or '[section]'");
    }
    return job_done(&p, path, out);
}

/* One pair's value, trimmed as inih trims a file's, into buf (n bytes).
 * false (p failed) when it is not one line or too long. */
static bool pair_value(parse *p, const char *sec, const char *key, const char *v, char *buf,
                       size_t n)
{
    while (isspace((unsigned char)*v)) v++;
    size_t len = strlen(v);
    while (len && isspace((unsigned char)v[len - 1])) len--;
    if (memchr(v, '\n', len) || memchr(v, '\r', len)) {
        fail(p, "[%s] %s: a value must be one line", sec, key);
        return false;
    }
    if (len >= n) {
        fail(p, "[%s] %s: value longer than %zu bytes", sec, key, n - 1);
        return false;
    }
    memcpy(buf, v, len);
    buf[len] = '\0';
    return true;
}

/* The pairs as the lines of a job file ("[s]" when the section changes,
 * then "k = v") after a comment naming the folder its relative paths are
 * taken from: what the job's SHA-256 is taken of. */
static void pairs_sha(const char *dir, const char *const *kv, int n, uint8_t sha[32], bool *oom)
{
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    if (!m) { *oom = true; return; }
    fprintf(m, "# %s\n", dir);
    for (int i = 0; i < n; i++) {
        if (!i || strcmp(kv[3 * i], kv[3 * i - 3])) fprintf(m, "[%s]\n", kv[3 * i]);
        fprintf(m, "%s = %s\n", kv[3 * i + 1], kv[3 * i + 2]);
    }
    if (fclose(m)) *oom = true;
    else qp_sha256(text, len, sha);
    free(text);
}

int qp_job_from_pairs(const char *name, const char *dir, const char *const *kv, int n,
                      qp_job **out, char *err, size_t errlen)
{
    *out = NULL;
    qp_job *j = job_new();
    if (!j) return QP_ENOMEM;
    parse p = { .job = j, .err = err, .errlen = errlen };
    j->dir = strdup(dir);
    j->base = strdup(name);
    j->name = strdup(name);
    if (!j->dir || !j->base || !j->name) p.oom = true;
    else pairs_sha(dir, kv, n, j->sha, &p.oom);
    char value[MAX_LINE + 1];
    for (int i = 0; i < n && !p.failed && !p.oom; i++) {
        const char *sec = kv[3 * i], *key = kv[3 * i + 1];
        if (pair_value(&p, sec, key, kv[3 * i + 2], value, sizeof value))
            handler(&p, sec, key, value);
    }
    return job_done(&p, name, out);
}

void qp_job_free(qp_job *j)
{
    if (!j) return;
    free(j->path); free(j->dir); free(j->base); free(j->name);
    free(j->function.file); free(j->function.name);
    free_list(j->lib_alias, j->nlibs);
    free_list(j->lib_module, j->nlibs);
    free(j->table); free(j->file); free(j->files); free(j->csv_types); free(j->db);
    free(j->partitions);
    free(j->column);
    free_list(j->servers, j->nservers);
    free(j->user);
    free(j->tls_ca);
    if (j->password) explicit_bzero(j->password, strlen(j->password));
    free(j->password);
    free(j->reducer.file); free(j->reducer.name);
    free_list(j->keys, j->nkeys);
    free(j->output); free(j->state);
    free(j);
}

char *qp_job_state_path(const qp_job *job, const char *suffix)
{
    size_t n = strlen(job->state) + strlen(job->name) + strlen(suffix) + 3;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s.%s", job->state, job->name, suffix);
    return s;
}
