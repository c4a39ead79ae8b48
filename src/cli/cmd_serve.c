/* cmd_serve.c - `qpeach serve`: the worker server.
 *
 * Prints exactly one ready line to stderr once the listener is bound
 * ("qpeach serve: listening on ADDR"), which tests and scripts wait for;
 * SIGINT and SIGTERM stop it cleanly (exit 0).
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qpeach/py.h"
#include "qpeach/server.h"
#include "qpeach/table.h"

static qp_server *running;

static void on_signal(int sig)
{
    (void)sig;
    if (running) qp_server_stop(running);   /* async-signal-safe */
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: qpeach serve -p PORT [-s N] [-u FILE] [--tls-cert F --tls-key F]\n"
        "                    [--insecure] [--load NAME=FILE]...\n"
        "\n"
        "Runs a worker server that speaks kdb+ IPC (q, node-q, PyKX and qpeach\n"
        "clients can call it).\n"
        "\n"
        "  -p ADDR           PORT or :PORT (127.0.0.1 only), HOST:PORT, 0.0.0.0:PORT,\n"
        "                    unix:/path, @/path (socket file mode 0600), unix://PORT\n"
        "                    (abstract /tmp/kx.PORT). Port 0 picks a free port.\n"
        "  -s N              secondary threads (default 0); -s -N: N worker\n"
        "                    processes for .qp.peach, as q's -s -N\n"
        "  -u FILE, -U FILE  password file (see `qpeach passwd`); without one any\n"
        "                    user is let in, so only loopback is allowed\n"
        "  --tls-cert F      PEM certificate (chain): serve TLS\n"
        "  --tls-key F       PEM private key for it\n"
        "  --insecure        allow listening beyond loopback without -u\n"
        "  --handshake-timeout MS  close a client that has not logged in by then\n"
        "                    (default 30000)\n"
        "  --load NAME=FILE  load a table at start (.csv, or a q IPC file)\n"
        "  --timeout MS      cut off a Python call after MS ms (0: never)\n"
        "\n"
        "Prints \"qpeach serve: listening on ADDR\" to stderr when ready.\n");
}

int qp_cmd_serve(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "tls-cert", required_argument, NULL, 1 },
        { "tls-key", required_argument, NULL, 2 },
        { "insecure", no_argument, NULL, 3 },
        { "handshake-timeout", required_argument, NULL, 7 },
        { "load", required_argument, NULL, 4 },
        { "timeout", required_argument, NULL, 5 },
        { "parent-fd", required_argument, NULL, 6 },   /* worker processes (-s -N) */
        { NULL, 0, NULL, 0 },
    };
    qp_server_opts o = { .listen = NULL, .on_thread_start = qp_py_thread_start_cb };
    qp_py_opts po = { .parent_fd = -1 };
    const char **loads = calloc((size_t)argc, sizeof *loads);
    int nloads = 0, c;
    if (!loads) return 1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hp:s:u:U:", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': usage(stdout); free(loads); return 0;
        case 'p': o.listen = optarg; break;
        case 's': {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (*end || n < -1024 || n > 1024) {
                fprintf(stderr, "qpeach serve: -s wants a count 0..1024, not %s\n", optarg);
                free(loads);
                return 2;
            }
            o.secondary = n > 0 ? (int)n : 0;
            po.procs = n < 0 ? (int)-n : 0;
            break;
        }
        case 'u': case 'U': o.passwd_file = optarg; break;
        case 1: o.tls_cert = optarg; break;
        case 2: o.tls_key = optarg; break;
        case 3: o.insecure = true; break;
        case 7: {
            char *end;
            long ms = strtol(optarg, &end, 10);
            if (*end || ms < 1 || ms > 86400000) {
                fprintf(stderr, "qpeach serve: --handshake-timeout wants milliseconds 1..86400000, not %s\n", optarg);
                free(loads);
                return 2;
            }
            o.handshake_ms = (int)ms;
            break;
        }
        case 4:
            if (!strchr(optarg, '=')) {
                fprintf(stderr, "qpeach serve: --load wants NAME=FILE, not %s\n", optarg);
                free(loads);
                return 2;
            }
            loads[nloads++] = optarg;
            break;
        case 5: case 6: {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (*end || n < 0 || n > 86400000) {
                fprintf(stderr, "qpeach serve: --%s wants a number, not %s\n",
                        c == 5 ? "timeout" : "parent-fd", optarg);
                free(loads);
                return 2;
            }
            if (c == 5) po.timeout_ms = (int)n; else po.parent_fd = (int)n;
            break;
        }
        default: usage(stderr); free(loads); return 2;
        }
    }
    if (optind < argc || !o.listen) {
        if (!o.listen) fprintf(stderr, "qpeach serve: -p PORT is required\n");
        else fprintf(stderr, "qpeach serve: unexpected argument %s\n", argv[optind]);
        usage(stderr);
        free(loads);
        return 2;
    }
    char err[512];
    qp_server *s = NULL;
    int rc = qp_server_new(&o, &s, err, sizeof err);
    if (rc) {
        fprintf(stderr, "qpeach serve: %s\n", err);
        free(loads);
        return 1;
    }
    /* --load NAME=FILE: tables (CSV, or q IPC files) as globals before the
     * first client can ask for them */
    for (int i = 0; i < nloads; i++) {
        char name[256];
        const char *eq = strchr(loads[i], '=');
        snprintf(name, sizeof name, "%.*s", (int)(eq - loads[i]), loads[i]);
        qp_value *t = qp_table_load(eq + 1, NULL);
        if (!t || t->type == QP_ERROR) {
            fprintf(stderr, "qpeach serve: --load %s: %s\n", loads[i], t ? t->s : "out of memory");
            qp_unref(t);
            qp_server_free(s);
            free(loads);
            return 1;
        }
        if (qp_server_set(s, name, t)) {
            fprintf(stderr, "qpeach serve: --load %s: out of memory\n", loads[i]);
            qp_server_free(s);
            free(loads);
            return 1;
        }
    }
    /* Python (.qp.import/def/call/apply/load/peach/timeout) and the -s -N
     * worker processes, which load the same --load files. */
    po.loads = loads;
    po.nloads = nloads;
    rc = qp_py_register(s, &po, err, sizeof err);
    if (rc) {
        fprintf(stderr, "qpeach serve: %s\n", err);
        qp_py_shutdown();
        qp_server_free(s);
        free(loads);
        return 1;
    }
    free(loads);
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    running = s;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    fprintf(stderr, "qpeach serve: listening on %s\n", qp_server_address(s));
    rc = qp_server_run(s);
    running = NULL;
    qp_py_shutdown();
    qp_server_free(s);
    if (rc) {
        fprintf(stderr, "qpeach serve: %s\n", qp_strerror(rc));
        return 1;
    }
    return 0;
}
