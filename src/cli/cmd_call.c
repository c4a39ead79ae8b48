/* cmd_call.c - `qpeach call ADDR EXPR [ARG...]`: one call, result printed
 * as the q console would. Exit 0 on a result, 1 on a q error (printed as
 * 'msg to stderr), 2 on bad usage or a transport failure.
 */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qpeach/conn.h"
#include "../net/net.h"

/* ---- A minimal q-console printer, until table.h's qp_format lands.
 * (TODO: replace by qp_format and delete this section.) ---- */

static void print_atom(FILE *f, int t, const void *p, bool in_vec)
{
    switch (t) {
    case QP_BOOL: fprintf(f, "%d%s", *(const uint8_t *)p, in_vec ? "" : "b"); break;
    case QP_BYTE: fprintf(f, "%s%02x", in_vec ? "" : "0x", *(const uint8_t *)p); break;
    case QP_SHORT: {
        int16_t h = *(const int16_t *)p;
        if (h == QP_NULL_H) fprintf(f, "0N"); else fprintf(f, "%d", h);
        if (!in_vec) fputc('h', f);
        break;
    }
    case QP_INT: case QP_MONTH: case QP_DATE: case QP_MINUTE: case QP_SECOND: case QP_TIME: {
        int32_t i = *(const int32_t *)p;
        if (i == QP_NULL_I) fprintf(f, "0N"); else fprintf(f, "%d", i);
        if (!in_vec && t == QP_INT) fputc('i', f);
        break;
    }
    case QP_LONG: case QP_TIMESTAMP: case QP_TIMESPAN: {
        int64_t j = *(const int64_t *)p;
        if (j == QP_NULL_J) fprintf(f, "0N"); else fprintf(f, "%" PRId64, j);
        break;
    }
    case QP_REAL: case QP_FLOAT: case QP_DATETIME: {
        double d = t == QP_REAL ? *(const float *)p : *(const double *)p;
        if (isnan(d)) fprintf(f, "0n");
        else if (isinf(d)) fprintf(f, d > 0 ? "0w" : "-0w");
        else {
            char b[40];
            snprintf(b, sizeof b, "%.7g", d);
            fputs(b, f);
            if (!in_vec && !strpbrk(b, ".e")) fputc('f', f);
        }
        if (!in_vec && t == QP_REAL) fputc('e', f);
        break;
    }
    case QP_CHAR: fprintf(f, in_vec ? "%c" : "\"%c\"", *(const char *)p); break;
    case QP_SYMBOL: fprintf(f, "`%s", *(const char *const *)p); break;
    default: fprintf(f, "<%s>", qp_type_name(t)); break;
    }
}

static void print_value(FILE *f, const qp_value *x)
{
    if (x->type < 0 && x->type != QP_ERROR) {
        print_atom(f, -x->type, &x->g, false);
    } else if (x->type == QP_CHAR) {
        fprintf(f, "%s\"%.*s\"", x->v.n == 1 ? "," : "", (int)x->v.n, qp_C(x));
    } else if (x->type >= 1 && x->type <= 19) {
        if (x->v.n == 0) { fprintf(f, "`%s$()", qp_type_name(x->type)); return; }
        if (x->v.n == 1) fputc(',', f);
        size_t w = qp_type_width(x->type);
        for (int64_t i = 0; i < x->v.n; i++) {
            if (i && x->type != QP_SYMBOL && x->type != QP_BOOL) fputc(' ', f);
            print_atom(f, x->type, (const char *)x->v.data + i * w, true);
        }
        if (x->type == QP_BOOL) fputc('b', f);
    } else if (x->type == QP_LIST) {
        fputc('(', f);
        for (int64_t i = 0; i < x->v.n; i++) {
            if (i) fputc(';', f);
            print_value(f, qp_K(x)[i]);
        }
        fputc(')', f);
    } else if (qp_is_dict(x)) {
        print_value(f, qp_dict_keys(x));
        fputc('!', f);
        print_value(f, qp_dict_values(x));
    } else if (x->type == QP_TABLE) {
        fputc('+', f);
        print_value(f, qp_table_dict(x));
    } else if (x->type == QP_UNARY && x->v.n == 1 && ((const uint8_t *)x->v.data)[0] == 0) {
        fprintf(f, "::");
    } else {
        fprintf(f, "<%s>", qp_type_name(x->type));
    }
}

/* ---- the command ---- */

static void usage(FILE *f)
{
    fprintf(f,
        "usage: qpeach call [-u USER:PASSWORD] [--tls] [--tls-ca FILE] [--tls-no-verify]\n"
        "                   [--timeout MS] ADDR EXPR [ARG...]\n"
        "\n"
        "Sends EXPR (a q expression, as a string) to the q process at ADDR\n"
        "(host:port, :port, unix:/path, @/path), or with ARGs the list\n"
        "(EXPR; ARG...) where each ARG is a q literal (42, 1.5, `sym, \"text\",\n"
        "1 2 3, (1;`a)), and prints the result as the q console would.\n"
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
    char user[512] = "";
    if (cred) {
        snprintf(user, sizeof user, "%s", cred);
        char *colon = strchr(user, ':');
        if (colon) { *colon = 0; o.password = colon + 1; }
        o.user = user;
    }
    char err[512];
    qp_value *msg = NULL;
    if (nargs == 0) {
        msg = qp_cstring(expr);
    } else {
        msg = qp_vector(QP_LIST, nargs + 1);
        if (msg) qp_K(msg)[0] = qp_cstring(expr);
        for (int i = 0; msg && i < nargs; i++) {
            const char *a = argv[optind + 2 + i];
            qp_value *v = qp__literal_parse(a, strlen(a), err, sizeof err);
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
    print_value(stdout, r);
    fputc('\n', stdout);
    qp_unref(r);
    return 0;
}
