/* cmd_call.c - `qpeach call ADDR EXPR [ARG...]`: one call, result printed
 * as the q console would. Exit 0 on a result, 1 on a q error (printed as
 * 'msg to stderr), 2 on bad usage or a transport failure.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qpeach/auth.h"
#include "qpeach/conn.h"
#include "qpeach/qparse.h"
#include "qpeach/table.h"

/* ---- the command ---- */

static void usage(FILE *f)
{
    fprintf(f,
        "usage: qpeach call [-u USER:PASSWORD | -u @FILE] [--tls] [--tls-ca FILE] [--tls-no-verify]\n"
        "                   [--timeout MS] ADDR EXPR [ARG...]\n"
        "\n"
        "Sends EXPR (as a string) to the q process at ADDR (host:port, :port,\n"
        "unix:/path, @/path), or with ARGs the list (EXPR; ARG...) where each ARG\n"
        "is a q literal (42, 1.5, `sym, \"text\", 1 2 3, (1;`a)), and prints the\n"
        "result as the q console would.\n"
        "\n"
        "A qpeach server is not a q interpreter. It evaluates only:\n"
        "  a literal                    42   1 2 3   `a`b   \"text\"   (1;`a)\n"
        "  a global's name              trade   (a --load/--db table or .qp.set value)\n"
        "  a call with literal args     f[x;y]   f x   f[]   of the functions it has:\n"
        "    .qp.echo .qp.ping .qp.info .qp.set .qp.get .qp.tables .qp.count .qp.meta\n"
        "    .qp.partitions .qp.def .qp.call .qp.callk .qp.apply .qp.peach .qp.import\n"
        "    .qp.load .qp.timeout (a program embedding libqpeach may define more)\n"
        "q operators, keywords, lambdas and qSQL are not evaluated: instead of\n"
        "count t, meta t, tables[], select from t use .qp.count`t, .qp.meta`t,\n"
        ".qp.tables[], .qp.get`t (or a Python function on t via .qp.apply).\n"
        "A real kdb+ process at ADDR evaluates any q, as usual.\n"
        "\n"
        "-u @FILE reads USER:PASSWORD from FILE's first line, so the password\n"
        "does not show in ps.\n"
        "Exit status: 0 result, 1 q error ('msg on stderr), 2 usage or connection error.\n");
}

int qp_cmd_call(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "tls", no_argument, NULL, 1 },
        { "tls-ca", required_argument, NULL, 2 },
        { "tls-no-verify", no_argument, NULL, 3 },
        { "timeout", required_argument, NULL, 4 },
        { NULL, 0, NULL, 0 },
    };
    qp_conn_opts o = { .timeout_ms = 0 };
    char *cred = NULL;
    int c;
    optind = 1;
    /* "+": stop at the first operand, so ARGs like -1 are not options */
    while ((c = getopt_long(argc, argv, "+hu:", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': usage(stdout); return 0;
        case 'u': cred = optarg; break;
        case 1: o.tls = true; break;
        case 2: o.tls = true; o.tls_ca = optarg; break;
        case 3: o.tls = true; o.tls_no_verify = true; break;
        case 4: o.timeout_ms = atoi(optarg); o.connect_timeout_ms = o.timeout_ms; break;
        default: usage(stderr); return 2;
        }
    }
    if (argc - optind < 2) { usage(stderr); return 2; }
    const char *addr = argv[optind], *expr = argv[optind + 1];
    int nargs = argc - optind - 2;
    char user[512] = "", err[512];
    if (cred && qp_credentials_parse(cred, user, sizeof user, &o.user, &o.password,
                                     err, sizeof err) < 0) {
        fprintf(stderr, "qpeach call: -u: %s\n", err);
        return 2;
    }
    qp_value *msg = NULL;
    if (nargs == 0) {
        msg = qp_cstring(expr);
    } else {
        msg = qp_vector(QP_LIST, nargs + 1);
        if (msg) qp_K(msg)[0] = qp_cstring(expr);
        for (int i = 0; msg && i < nargs; i++) {
            const char *a = argv[optind + 2 + i];
            qp_value *v = qp_literal_parse(a, strlen(a), err, sizeof err);
            if (!v) {
                fprintf(stderr, "qpeach call: argument %d (%s): %s\n", i + 1, a, err);
                qp_unref(msg);
                return 2;
            }
            qp_K(msg)[i + 1] = v;
        }
    }
    if (!msg) { fprintf(stderr, "qpeach call: out of memory\n"); return 2; }
    qp_conn *conn = NULL;
    int rc = qp_conn_open(addr, &o, &conn, err, sizeof err);
    explicit_bzero(user, sizeof user);
    if (rc) {
        fprintf(stderr, "qpeach call: %s: %s\n", addr, err);
        qp_unref(msg);
        return 2;
    }
    qp_value *r = qp_conn_call(conn, msg);
    qp_unref(msg);
    if (!r) {
        fprintf(stderr, "qpeach call: %s\n", qp_conn_errstr(conn));
        qp_conn_close(conn);
        return 2;
    }
    qp_conn_close(conn);
    if (r->type == QP_ERROR) {
        fprintf(stderr, "'%s\n", r->s);
        qp_unref(r);
        return 1;
    }
    char *text = qp_format(r, 0);
    qp_unref(r);
    if (!text) { fprintf(stderr, "qpeach call: out of memory\n"); return 2; }
    size_t n = strlen(text);
    fputs(text, stdout);
    if (n && text[n - 1] != '\n') fputc('\n', stdout);
    free(text);
    return 0;
}
