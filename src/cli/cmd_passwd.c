/* cmd_passwd.c - `qpeach passwd FILE USER`: add or replace a user in a
 * password file for `qpeach serve -u FILE`. The password comes from
 * standard input (one line), or from a prompt without echo on a terminal.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "qpeach/auth.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: qpeach passwd FILE USER\n"
        "\n"
        "Adds USER to the password file FILE (created with mode 0600), or\n"
        "replaces its password. The password is read from standard input, or\n"
        "asked for twice without echo on a terminal. Stored as\n"
        "USER:pbkdf2-sha256$ITERATIONS$SALT$HASH, never in clear.\n");
}

/* Reads one line into buf without its newline; echo off on a terminal. */
static int read_line(const char *prompt, char *buf, size_t len)
{
    bool tty = isatty(STDIN_FILENO);
    struct termios old, quiet;
    if (tty) {
        fputs(prompt, stderr);
        fflush(stderr);
        tcgetattr(STDIN_FILENO, &old);
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    char *r = fgets(buf, (int)len, stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputc('\n', stderr);
    }
    if (!r) return -1;
    buf[strcspn(buf, "\r\n")] = 0;
    return 0;
}

int qp_cmd_passwd(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage(stdout);
        return 0;
    }
    if (argc != 3) { usage(stderr); return 2; }
    char pw[1024], again[1024], err[512];
    int rc = 2;
    if (read_line("Password: ", pw, sizeof pw)) {
        fprintf(stderr, "qpeach passwd: no password given\n");
        return 2;
    }
    if (isatty(STDIN_FILENO)) {
        if (read_line("Again: ", again, sizeof again) || strcmp(pw, again)) {
            fprintf(stderr, "qpeach passwd: passwords differ\n");
            goto done;
        }
    }
    if (!pw[0]) {
        fprintf(stderr, "qpeach passwd: empty password\n");
        goto done;
    }
    if (qp_passwd_set(argv[1], argv[2], pw, err, sizeof err)) {
        fprintf(stderr, "qpeach passwd: %s\n", err);
        rc = 1;
        goto done;
    }
    rc = 0;
done:
    OPENSSL_cleanse(pw, sizeof pw);
    OPENSSL_cleanse(again, sizeof again);
    return rc;
}
