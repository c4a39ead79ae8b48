/* qpeach/auth.h - password files for `qpeach serve -u FILE`.
 *
 * A password file has one line per user, `user:scheme$params$salt$hash`;
 * the scheme is pbkdf2-sha256 (OpenSSL's PKCS5_PBKDF2_HMAC) with
 * QP_PASSWD_ITER iterations, a 16-byte random salt and a 32-byte hash, both
 * hex. 100000 iterations cost about 40 ms per verification on a 2020s core:
 * slow enough to make guessing expensive, fast enough for a login. The
 * server verifies off its event loop and remembers successful logins only
 * as keyed SHA-256 digests, so a reconnecting client pays the cost once.
 * Passwords are never stored or logged in clear.
 *
 * Memory rules: strings passed in are borrowed; qp_auth is owned by the
 * caller of qp_auth_load and freed with qp_auth_free (NULL-safe).
 */
#ifndef QPEACH_AUTH_H
#define QPEACH_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#define QP_PASSWD_ITER 100000
/* Longest stored entry (scheme, params, salt and hash), with its NUL. */
#define QP_PASSWD_MAX 160

/* Hashes password with a fresh random salt into out ("pbkdf2-sha256$..."),
 * which has room for QP_PASSWD_MAX bytes. Returns 0 or a negative code. */
int qp_passwd_hash(const char *password, char *out, size_t outlen);
/* Checks password against a stored "scheme$params$salt$hash" in constant
 * time. Returns 1 on a match, 0 on none, QP_EARG when stored is malformed. */
int qp_passwd_verify(const char *stored, const char *password);
/* Adds user to file, or replaces its entry, hashing password; the file is
 * rewritten atomically with mode 0600. Returns 0 or a negative code with a
 * message in err. */
int qp_passwd_set(const char *file, const char *user, const char *password,
                  char *err, size_t errlen);

/* Client credentials, as `qpeach call -u` and job files take them:
 * "user:password", "user", or "@path" naming a file whose first line is one
 * of those (so a password need not appear on a command line). Splits them
 * into buf (buflen bytes; wipe it after use): *user and *password point
 * into buf. Returns 0, or a negative code with a message in err. */
int qp_credentials_parse(const char *spec, char *buf, size_t buflen,
                         const char **user, const char **password,
                         char *err, size_t errlen);

typedef struct qp_auth qp_auth;
/* Loads a password file. Returns 0 and *out, or a negative code with a
 * message in err (missing file, malformed line N). */
int qp_auth_load(const char *file, qp_auth **out, char *err, size_t errlen);
/* Whether user:password may log in. Thread-safe; slow on a cache miss. */
bool qp_auth_check(qp_auth *a, const char *user, const char *password);
void qp_auth_free(qp_auth *a);

#endif
