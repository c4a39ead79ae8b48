/* dispatch.c - what the server does with a message: decode it, find the
 * function (or global) it names, run it on the right thread, encode the
 * response.
 *
 * qpeach is not a q interpreter. A char-vector message is read by
 * qpeach/qparse.h: a literal, a global's name, or `f[a;b]` / `f x` where f
 * is registered and the arguments are literals; everything else is
 * answered with an error that says so and names the .qp call to use.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qpeach/qparse.h"
#include "server_int.h"

/* ====================================================================
 * Errors for text qpeach does not evaluate
 *
 * A kdb+ user types q (`count trade`, `select from t`, `til 10`). The
 * answer names what the server does evaluate and, when there is one, the
 * .qp call that does the same work. One line: clients show q errors on one.
 * ==================================================================== */

/* Characters of a q name, and of a symbol (which may hold paths), as
 * qparse.c reads them. */
static bool name_char(char c) { return isalnum((unsigned char)c) || c == '.' || c == '_'; }
static bool sym_char(char c) { return name_char(c) || c == ':' || c == '/'; }

#define EVALUATES "qpeach evaluates literals, global names and f[x;y] / f x calls of its " \
                  "functions with literal arguments"

/* Where a q word's .qp equivalent finds its table in the text. */
enum { ARG_NONE, ARG_NEXT, ARG_FROM };
#define QSQL_NOTE ", or a Python function on it via .qp.apply"

/* q words with a .qp equivalent: `count trade` -> .qp.count`trade. */
static const struct { const char *word, *call; int arg; const char *note; } q_equiv[] = {
    { "count", ".qp.count`", ARG_NEXT, "" },   { "meta", ".qp.meta`", ARG_NEXT, "" },
    { "cols", ".qp.meta`", ARG_NEXT, "" },     { "tables", ".qp.tables[]", ARG_NONE, "" },
    { "get", ".qp.get`", ARG_NEXT, "" },       { "value", ".qp.get`", ARG_NEXT, "" },
    { "set", ".qp.set[`name;value]", ARG_NONE, "" },
    { "select", ".qp.get`", ARG_FROM, QSQL_NOTE }, { "exec", ".qp.get`", ARG_FROM, QSQL_NOTE },
    { "update", ".qp.get`", ARG_FROM, QSQL_NOTE }, { "delete", ".qp.get`", ARG_FROM, QSQL_NOTE },
};

/* Other q keywords: space-separated, with a space at each end. */
static const char q_keywords[] =
    " abs aj all and any asc asof avg avgs by ceiling cor cov cross cut deltas desc dev "
    "differ distinct div each ej enlist except exit exp fby fills first fkeys flip floor "
    "from group hcount hopen iasc idesc ij in inter insert key keys last like lj log "
    "lower lsq ltrim max maxs mcount md5 med min mins mmax mmin mod msum neg next not "
    "null or over parse peach prd prds prev rand rank ratios raze read0 read1 reciprocal "
    "reverse rtrim save scan show signum sin sqrt ss ssr string sublist sum sums sv "
    "system til trim type uj ungroup union upper upsert var view where within wj wsum "
    "xasc xbar xcol xdesc xexp xgroup xkey xlog xprev xrank ";

static bool is_q_keyword(const char *w, size_t n)
{
    if (n == 0 || n > 16) return false;
    char key[20];
    snprintf(key, sizeof key, " %.*s ", (int)n, w);
    return strstr(q_keywords, key) != NULL;
}

/* Whether name is a q keyword (with or without a .qp equivalent). */
static bool is_q_word(const char *name)
{
    for (size_t i = 0; i < sizeof q_equiv / sizeof q_equiv[0]; i++)
        if (!strcmp(name, q_equiv[i].word)) return true;
    return is_q_keyword(name, strlen(name));
}

/* The name after p (skipping blanks, `[` and a backquote); "t" if none. */
static void next_name(const char *p, const char *end, char *out, size_t len)
{
    while (p < end && (isspace((unsigned char)*p) || *p == '[' || *p == '`')) p++;
    const char *b = p;
    while (p < end && name_char(*p)) p++;
    if (p == b) snprintf(out, len, "t");
    else snprintf(out, len, "%.*s", (int)(p - b), b);
}

/* The position after the word "from" in text, or end. */
static const char *after_from(const char *p, const char *end)
{
    while (p < end) {
        while (p < end && !name_char(*p)) p++;
        const char *w = p;
        while (p < end && name_char(*p)) p++;
        if (p - w == 4 && !memcmp(w, "from", 4)) return p;
    }
    return end;
}

/* Whether text (outside strings and symbols) holds a q operator, adverb,
 * lambda, system command or keyword. */
static bool looks_like_q(const char *p, const char *end)
{
    const char *start = p;
    while (p < end) {
        if (*p == '"') {                             /* skip "..." with its escapes */
            for (p++; p < end && *p != '"'; p++)
                if (*p == '\\' && p + 1 < end) p++;
            if (p < end) p++;
        } else if (*p == '`') {
            for (p++; p < end && sym_char(*p); p++) {}
        } else if (isalpha((unsigned char)*p)) {
            const char *w = p;
            while (p < end && name_char(*p)) p++;
            if (is_q_keyword(w, (size_t)(p - w))) return true;
        } else if (isdigit((unsigned char)*p)) {
            while (p < end && name_char(*p)) p++;    /* 1.5e, 0x0a, 10b */
        } else if (*p && strchr("+*%&|<>=~!#,$@?'^:{}\\", *p)) {
            return true;
        } else if (*p == '-' && p > start && (name_char(p[-1]) || p[-1] == ')' || p[-1] == ']')) {
            return true;                             /* x-1, not the literal -1 */
        } else {
            p++;
        }
    }
    return false;
}

/* Fills buf with a hint for text: the .qp call that does what its q word
 * would, or that q is not evaluated; empty when text does not look like q
 * (a malformed literal, an unknown name). */
static void q_hint(const char *s, size_t n, char *buf, size_t len)
{
    const char *p = s, *end = s + n;
    buf[0] = 0;
    while (p < end && isspace((unsigned char)*p)) p++;
    const char *w = p;
    while (p < end && name_char(*p)) p++;
    size_t wn = (size_t)(p - w);
    for (size_t i = 0; wn && i < sizeof q_equiv / sizeof q_equiv[0]; i++) {
        if (strlen(q_equiv[i].word) != wn || memcmp(w, q_equiv[i].word, wn)) continue;
        char t[64] = "";
        if (q_equiv[i].arg != ARG_NONE)
            next_name(q_equiv[i].arg == ARG_FROM ? after_from(p, end) : p, end, t, sizeof t);
        snprintf(buf, len, "try %s%s%s", q_equiv[i].call, t, q_equiv[i].note);
        return;
    }
    if (looks_like_q(w, end)) snprintf(buf, len, "q operators and keywords are not evaluated");
}

/* The error for text qpeach does not evaluate (a char message); why: what
 * was wrong with an argument (qp_expr.err). A literal that is malformed
 * (a bad date, a mixed vector) is said before the guess that the text is
 * q; a q word's .qp equivalent comes first. */
static qp_value *unsupported_text(const char *s, size_t n, const char *why)
{
    char hint[160];
    q_hint(s, n, hint, sizeof hint);
    bool bad_literal = why && (!strncmp(why, "bad ", 4) || !strncmp(why, "mixed ", 6) ||
                               !strncmp(why, "float in", 8));
    if (why && *why && (!hint[0] || (bad_literal && strncmp(hint, "try ", 4))))
        snprintf(hint, sizeof hint, "%s", why);
    int m = n > 200 ? 200 : (int)n;
    return qp_error("qpeach: unsupported expression: %.*s%s (%s%s" EVALUATES ")", m, s,
                    n > 200 ? "..." : "", hint, hint[0] ? "; " : "");
}

/* The error for a call of a function this server does not have: text is
 * the char message that named it (NULL for a list message, whose first
 * argument args[0] may name a table). A q keyword gets the hint. */
static qp_value *unknown_fn(const char *name, const qp_value *text, const qp_value *args)
{
    if (!is_q_word(name)) return qp_error("qpeach: unknown function: %s", name);
    if (text) return unsupported_text(qp_C(text), (size_t)text->v.n, NULL);
    char call[128], hint[160];
    const qp_value *a0 = args && args->type == QP_LIST && args->v.n ? qp_K(args)[0] : NULL;
    snprintf(call, sizeof call, "%s %s", name, a0 && a0->type == -QP_SYMBOL ? a0->s : "");
    q_hint(call, strlen(call), hint, sizeof hint);
    return qp_error("qpeach: unknown function: %s (%s; " EVALUATES ")", name, hint);
}

/* ====================================================================
 * Work items
 * ==================================================================== */

/* The function a (text; args...) message names: PyKX's libraries and call
 * lambdas map to the functions that do their work; any other text is taken
 * as a function's name, as before. NULL when out of memory. */
static const char *pykx_lambda_or_name(const qp_value *f)
{
    const char *fn = NULL;
    switch (qp__pykx_text(qp_C(f), (size_t)f->v.n)) {
    case QP__PYKX_LIBRARIES: fn = QP__PYKX_LIBRARIES_FN; break;
    case QP__PYKX_CALL: fn = QP__PYKX_CALL_FN; break;
    default: return qp_sym_intern(qp_C(f), (size_t)f->v.n);
    }
    return qp_sym_intern(fn, strlen(fn));
}

/* A char message as a call: 0 with *name and *args (NULL for a bare
 * name) set, or 1 with j->result set (a literal's value, or an error). */
static int resolve_text(qp__work *j, const qp_value *x, const char **name, qp_value **args)
{
    int64_t sp = 0;
    while (sp < x->v.n && isspace((unsigned char)qp_C(x)[sp])) sp++;
    if (sp == x->v.n) { j->result = qp_identity(); return 1; }   /* "" is (::) */
    /* PyKX's session check and pykx.q load (pykxwire.c): answered as q
     * with pykx.q loaded answers them */
    int pk = qp__pykx_text(qp_C(x), (size_t)x->v.n);
    if (pk == QP__PYKX_SESSION) { j->result = qp_bool(true); return 1; }
    if (pk == QP__PYKX_LOAD) { j->result = qp_identity(); return 1; }
    qp_expr e;
    int rc = qp_expr_parse(qp_C(x), (size_t)x->v.n, &e);
    if (rc == QP_ENOMEM) { j->result = qp_error("wsfull"); return 1; }
    if (rc) {
        int n = x->v.n > 200 ? 200 : (int)x->v.n;
        snprintf(j->what, sizeof j->what, "%.*s", n, qp_C(x));
        /* a literal evaluates to itself, as in q */
        if (!(j->result = qp_literal_parse(qp_C(x), (size_t)x->v.n, NULL, 0)))
            j->result = unsupported_text(qp_C(x), (size_t)x->v.n, e.err);
        return 1;
    }
    *name = e.name;
    *args = e.args;
    return 0;
}

/* A bare name: a global's value, a db table (read off the loop, as
 * .qp.get `name), or q's error for an undefined name. text: the char
 * message that named it, or NULL. With a db mounted, a name that may be
 * one of its tables (db tables come first, and one may have appeared on
 * disk since the last listing) goes to .qp.get, off the loop. */
static void resolve_global(qp_server *s, qp__work *j, const char *name, const qp_value *text)
{
    snprintf(j->what, sizeof j->what, "%s", name);
    if (s->mounted && *name != '.' && !qp__fn_find(s, name) && !is_q_word(name)) {
        if (!(j->args = qp_list(1, qp_symbol(name)))) { j->result = qp_error("wsfull"); return; }
        j->fn = qp__fn_find(s, qp_sym_intern(".qp.get", 7));
        return;
    }
    if ((j->result = qp__global_get(s, name))) return;
    if (qp__fn_find(s, name))
        j->result = qp_error("qpeach: %s is a function: call it as %s[...]", name, name);
    else if (is_q_word(name))                 /* `tables` alone: say what to use */
        j->result = unknown_fn(name, text, NULL);
    else
        j->result = qp_error("%s", name);    /* q's error for an undefined name */
}

/* Turns a decoded message into a call (j->fn, j->args) or a result. */
static void resolve(qp_server *s, qp__work *j, qp_value *x)
{
    const char *name = NULL;
    qp_value *args = NULL;
    if (x->type == QP_CHAR) {
        if (resolve_text(j, x, &name, &args)) return;
        if (!args) { resolve_global(s, j, name, x); return; }
    } else if (x->type == -QP_SYMBOL) {
        resolve_global(s, j, x->s, NULL);
        return;
    } else if (x->type == QP_LIST && x->v.n >= 1 &&
               (qp_K(x)[0]->type == -QP_SYMBOL || qp_K(x)[0]->type == QP_CHAR)) {
        qp_value *f = qp_K(x)[0];
        name = f->type == QP_CHAR ? pykx_lambda_or_name(f) : f->s;
        args = qp_slice(x, 1, x->v.n - 1);
    } else if (x->type == QP_SYMBOL && x->v.n >= 1) {
        /* q evaluates `f`a`b as f[`a;`b] */
        name = qp_S(x)[0];
        args = qp_vector(QP_LIST, x->v.n - 1);
        for (int64_t i = 1; args && i < x->v.n; i++)
            if (!(qp_K(args)[i - 1] = qp_symbol(qp_S(x)[i]))) { qp_unref(args); args = NULL; }
    } else {
        j->result = qp_error("qpeach: unsupported message: a %s (send a q expression as a "
                             "string, or (`name; args...))", qp_type_name(x->type));
        return;
    }
    if (!name || !args) { qp_unref(args); j->result = qp_error("wsfull"); return; }
    snprintf(j->what, sizeof j->what, "%s", name);
    if (args->type != QP_LIST || args->v.n == 0) {
        /* f alone, or f with a vector slice: make the argument list */
        qp_value *l = args->v.n == 0 ? qp_list(1, qp_identity()) : NULL;
        if (!l && args->v.n) {
            l = qp_vector(QP_LIST, args->v.n);
            for (int64_t i = 0; l && i < args->v.n; i++) qp_K(l)[i] = qp_item(args, i);
        }
        qp_unref(args);
        if (!(args = l)) { j->result = qp_error("wsfull"); return; }
    }
    const qp__fn *fn = qp__fn_find(s, name);
    if (!fn) {
        j->result = unknown_fn(name, x->type == QP_CHAR ? x : NULL, args);
        qp_unref(args);
        return;
    }
    if (fn->nargs >= 0 && args->v.n != fn->nargs) {
        j->result = qp_error("rank: %s takes %d argument%s, got %lld", name, fn->nargs,
                             fn->nargs == 1 ? "" : "s", (long long)args->v.n);
        qp_unref(args);
        return;
    }
    j->fn = fn;
    j->args = args;
}

static void encode(qp__work *j)
{
    uint8_t *msg = NULL, *z = NULL;
    size_t len = 0, zlen = 0;
    int rc = qp_ipc_encode(j->result, QP_MSG_RESPONSE, &msg, &len);
    if (rc) {
        qp_value *e = qp_error("qpeach: cannot send the result: %s", qp_strerror(rc));
        rc = e ? qp_ipc_encode(e, QP_MSG_RESPONSE, &msg, &len) : QP_ENOMEM;
        qp_unref(e);
        if (rc) { msg = NULL; len = 0; }
    }
    if (msg && qp_ipc_should_compress(len, j->local) && qp_ipc_compress(msg, len, &z, &zlen) == 0) {
        free(msg);
        msg = z;
        len = zlen;
    }
    j->out = msg;
    j->outlen = len;
}

/* j's function, run here. On the main thread the call is numbered
 * first, then its cancel flag read: qp__work_cancel sets the flag, then
 * reads the number, so one of them sees the other. */
static qp_value *run_fn(qp_server *s, qp__work *j, int where)
{
    bool main = where == QP_EXEC_MAIN;
    if (main) {
        uint64_t seq = atomic_fetch_add(&s->main_seq, 1) + 1;
        atomic_store(&j->seq, seq);
        atomic_store(&s->main_run, seq);
    }
    qp_value *r = atomic_load(&j->cancelled)
        ? qp_error("cancelled: the client closed the connection")
        : j->fn->fn(s, j->args, j->fn->data);
    if (main) atomic_store(&s->main_run, 0);
    return r;
}

bool qp__work_cancel(qp_server *s, qp__work *j)
{
    if (j->msgtype != QP_MSG_SYNC || atomic_exchange(&j->cancelled, true)) return false;
    uint64_t seq = atomic_load(&j->seq);
    if (!seq) return true;                    /* not started: run_fn will not */
    atomic_store(&s->cancel_seq, seq);
    if (s->on_cancel && atomic_load(&s->main_run) == seq) s->on_cancel(s->on_cancel_data);
    return true;
}

void qp_server_on_cancel(qp_server *s, void (*fn)(void *data), void *data)
{
    s->on_cancel = fn;
    s->on_cancel_data = data;
}

bool qp_server_cancelled(qp_server *s)
{
    uint64_t run = atomic_load(&s->main_run);
    return run && run == atomic_load(&s->cancel_seq);
}

int qp__work_run(qp_server *s, qp__work *j, int where)
{
    if (j->kind == QP__WORK_AUTH) {
        char *colon = strchr(j->cred, ':');
        const char *pw = "";
        if (colon) { *colon = 0; pw = colon + 1; }
        j->auth_ok = qp_auth_check(s->auth, j->cred, pw);
        if (colon) *colon = ':';
        return QP__WORK_DONE;
    }
    if (j->msg) {
        if (where == QP_EXEC_LOOP && j->msg->len > QP__SMALL_MSG) {
            qp__work_post(s, j, QP_EXEC_POOL);
            return QP__WORK_MOVED;
        }
        qp_value *x = qp_ipc_decode(j->msg, NULL);
        qp_buf_unref(j->msg);
        j->msg = NULL;
        if (!x) j->result = qp_error("wsfull");
        else if (x->type == QP_ERROR) j->result = qp_ref(x);   /* malformed: say so */
        else resolve(s, j, x);
        qp_unref(x);
    }
    if (j->fn && !j->result) {
        int exec = j->fn->exec;
        if (exec == QP_EXEC_POOL && s->opts.secondary == 0) exec = QP_EXEC_MAIN;
        if (exec != QP_EXEC_LOOP && exec != where) {
            qp__work_post(s, j, exec);
            return QP__WORK_MOVED;
        }
        j->result = run_fn(s, j, where);
        if (!j->result) j->result = qp_error("wsfull");
        qp_unref(j->args);
        j->args = NULL;
    }
    if (j->msgtype != QP_MSG_SYNC) {
        if (j->result && j->result->type == QP_ERROR) {
            char what[sizeof j->what * 4], text[1024];
            qp__log_text(what, sizeof what, j->what);
            qp__log_text(text, sizeof text, j->result->s);
            fprintf(stderr, "qpeach serve: async %s: error: %s\n", what, text);
        }
        qp_unref(j->result);
        j->result = NULL;
        return QP__WORK_DONE;
    }
    if (where != QP_EXEC_POOL &&
        qp_ipc_size(j->result) > QP__SMALL_MSG) {
        qp__work_post(s, j, QP_EXEC_POOL);     /* encode big results off this thread */
        return QP__WORK_MOVED;
    }
    encode(j);
    qp_unref(j->result);
    j->result = NULL;
    return QP__WORK_DONE;
}

void qp__log_text(char *dst, size_t cap, const char *src)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    for (; *src && n + 5 < cap; src++) {
        unsigned char ch = (unsigned char)*src;
        if (ch >= 0x20 && ch < 0x7f && ch != '\\') {
            dst[n++] = (char)ch;
        } else {
            dst[n++] = '\\';
            dst[n++] = 'x';
            dst[n++] = hex[ch >> 4];
            dst[n++] = hex[ch & 15];
        }
    }
    dst[n] = 0;
}
