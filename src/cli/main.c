/* main.c - the `qpeach` binary: one table of subcommands.
 *
 * To add a command: one line in COMMANDS below and a file cmd_NAME.c that
 * defines `int qp_cmd_NAME(int argc, char **argv)` (argv[0] is the command
 * name; it must answer --help itself). Exit codes are the command's.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "qpeach/version.h"

#define COMMANDS(X) \
    X(serve,  "run a worker server that speaks kdb+ IPC") \
    X(call,   "send one call to a q process and print the result") \
    X(passwd, "add or replace a user in a password file") \
    X(run,    "run a job file: partitions, workers, merge, resume") \
    X(topo,   "print the machine's topology and worker placement") \
    X(db,     "import a CSV into a kdb+ database; describe a database") \
    X(workers, "list or stop the local workers kept by [workers] keep")

#define DECLARE(name, help) int qp_cmd_##name(int argc, char **argv);
COMMANDS(DECLARE)
#undef DECLARE

static const struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} commands[] = {
#define ENTRY(name, help) { #name, qp_cmd_##name, help },
    COMMANDS(ENTRY)
#undef ENTRY
};

static void usage(FILE *f)
{
    fprintf(f, "usage: qpeach COMMAND [ARGS...]    (qpeach --version: its version)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n`qpeach COMMAND --help` describes one.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) { usage(stderr); return 2; }
    const char *name = argv[1];
    if (!strcmp(name, "-h") || !strcmp(name, "--help")) { usage(stdout); return 0; }
    if (!strcmp(name, "--version") || !strcmp(name, "-V")) {
        printf("qpeach %s\n", QPEACH_VERSION);
        return 0;
    }
    char *help_argv[] = { NULL, "--help", NULL };
    bool help = !strcmp(name, "help");          /* qpeach help CMD = qpeach CMD --help */
    if (help) {
        if (argc < 3) { usage(stdout); return 0; }
        name = help_argv[0] = argv[2];
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(commands[i].name, name))
            return help ? commands[i].run(2, help_argv) : commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "qpeach: unknown command '%s'\n", name);
    usage(stderr);
    return 2;
}
