/* auth.c - password hashing (PBKDF2-HMAC-SHA256), password files, and the
 * server's login check with its cache of successful logins.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "qpeach/auth.h"
#include "qpeach/value.h"
#include "core/fileio_int.h"

#define SCHEME "pbkdf2-sha256"
#define SALT_LEN 16
#define HASH_LEN 32
#define MAX_ITER 10000000L   /* bounds the work a hostile file can ask for */

/* ====================================================================
 * Hashing
 * ==================================================================== */

static void hex(const unsigned char *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = 0;
}

static int unhex(const char *s, size_t len, unsigned char *out, size_t n)
{
    if (len != 2 * n) return -1;
    for (size_t i = 0; i < 2 * n; i++) {
        char c = s[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (v < 0) return -1;
        if (i % 2 == 0) out[i / 2] = (unsigned char)(v << 4);
        else out[i / 2] |= (unsigned char)v;
    }
    return 0;
}

static int pbkdf2(const char *pw, const unsigned char *salt, long iter, unsigned char *out)
{
    return PKCS5_PBKDF2_HMAC(pw, (int)strlen(pw), salt, SALT_LEN, (int)iter, EVP_sha256(),
                             HASH_LEN, out) == 1 ? 0 : QP_ENOMEM;
}

int qp_passwd_hash(const char *password, char *out, size_t outlen)
{
    unsigned char salt[SALT_LEN], h[HASH_LEN];
    char sx[2 * SALT_LEN + 1], hx[2 * HASH_LEN + 1];
    if (RAND_bytes(salt, sizeof salt) != 1) return QP_EIO;
    if (pbkdf2(password, salt, QP_PASSWD_ITER, h)) return QP_ENOMEM;
    hex(salt, sizeof salt, sx);
    hex(h, sizeof h, hx);
    int n = snprintf(out, outlen, SCHEME "$%d$%s$%s", QP_PASSWD_ITER, sx, hx);
    OPENSSL_cleanse(h, sizeof h);
    return n > 0 && (size_t)n < outlen ? 0 : QP_EARG;
}

int qp_passwd_verify(const char *stored, const char *password)
{
    unsigned char salt[SALT_LEN], want[HASH_LEN], got[HASH_LEN];
    size_t sl = strlen(SCHEME);
    if (strncmp(stored, SCHEME "$", sl + 1)) return QP_EARG;
    const char *p = stored + sl + 1;
    char *end;
    errno = 0;
    long iter = strtol(p, &end, 10);
    if (errno || end == p || *end != '$' || iter < 1 || iter > MAX_ITER) return QP_EARG;
    const char *s = end + 1, *d = strchr(s, '$');
    if (!d || unhex(s, (size_t)(d - s), salt, SALT_LEN)) return QP_EARG;
    const char *hh = d + 1;
    size_t hl = strcspn(hh, "\r\n");
    if (unhex(hh, hl, want, HASH_LEN)) return QP_EARG;
    if (pbkdf2(password, salt, iter, got)) return QP_ENOMEM;
    int ok = CRYPTO_memcmp(got, want, HASH_LEN) == 0;
    OPENSSL_cleanse(got, sizeof got);
    return ok;
}

/* ====================================================================
 * Password files
 * ==================================================================== */

static int valid_user(const char *u)
{
    return *u && !strpbrk(u, ":\r\n") && strlen(u) < 256;
}

/* The password file's text with user's entry set: every other line kept
 * (each ending in a newline), user's first line replaced and any later
 * ones dropped, or the entry added at the end. 0 or a negative code. */
static int passwd_text(const char *file, const char *user, const char *entry, char **text,
                       size_t *len)
{
    qp_buf *old = NULL;
    int rc = qp__file_read(file, &old);
    if (rc && rc != -ENOENT) return rc;
    FILE *out = open_memstream(text, len);
    if (!out) {
        qp_buf_unref(old);
        return QP_ENOMEM;
    }
    size_t ul = strlen(user);
    bool replaced = false;
    const char *p = old ? (const char *)old->data : "", *end = p + (old ? old->len : 0);
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (n > ul && !strncmp(p, user, ul) && p[ul] == ':') {
            if (!replaced) fprintf(out, "%s:%s\n", user, entry);
            replaced = true;
        } else {
            fprintf(out, "%.*s\n", (int)n, p);
        }
        p += n + 1;
    }
    if (!replaced) fprintf(out, "%s:%s\n", user, entry);
    qp_buf_unref(old);
    return fclose(out) ? QP_ENOMEM : 0;
}

int qp_passwd_set(const char *file, const char *user, const char *password,
                  char *err, size_t errlen)
{
    char entry[QP_PASSWD_MAX], *text = NULL;
    size_t len = 0;
    int rc;
    if (!valid_user(user)) {
        snprintf(err, errlen, "bad user name (empty, or has ':' or a newline)");
        return QP_EARG;
    }
    if (strpbrk(password, "\r\n")) {
        snprintf(err, errlen, "password has a newline");
        return QP_EARG;
    }
    if ((rc = qp_passwd_hash(password, entry, sizeof entry))) {
        snprintf(err, errlen, "hashing failed: %s", qp_strerror(rc));
        return rc;
    }
    /* mode 0600 exactly, whatever the umask or an old temporary file */
    rc = passwd_text(file, user, entry, &text, &len);
    if (!rc) rc = qp__file_replace(file, text, len, 0600);
    if (rc) snprintf(err, errlen, "%s: %s", file, qp_strerror(rc));
    free(text);
    return rc;
}

/* ====================================================================
 * The server's view: users, and a cache of successful logins
 * ==================================================================== */

#define CACHE_SLOTS 256

struct qp_auth {
    char **users;          /* user names */
    char **hashes;         /* their stored entries, same index */
    int n;
    unsigned char key[32]; /* random per process: cache digests are useless elsewhere */
    pthread_mutex_t mu;    /* guards the cache */
    unsigned char cache[CACHE_SLOTS][32];  /* SHA-256(key, user, NUL, password) */
    int ncache;            /* slots used; then a ring */
    int next;
};

int qp_auth_load(const char *file, qp_auth **out, char *err, size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(file, "r");
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "password file %s: %s", file, strerror(e));
        return -e;
    }
    qp_auth *a = calloc(1, sizeof *a);
    char *line = NULL;
    size_t cap = 0;
    int rc = QP_ENOMEM, lineno = 0, capn = 0;
    if (!a) goto fail;
    pthread_mutex_init(&a->mu, NULL);
    if (RAND_bytes(a->key, sizeof a->key) != 1) { rc = QP_EIO; goto fail; }
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        lineno++;
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        if (!n || line[0] == '#') continue;
        char *colon = strchr(line, ':');
        if (!colon || colon == line || strncmp(colon + 1, SCHEME "$", strlen(SCHEME) + 1)) {
            snprintf(err, errlen, "password file %s line %d: expected user:" SCHEME "$...", file, lineno);
            rc = QP_EARG;
            goto fail;
        }
        if (a->n == capn) {
            capn = capn ? 2 * capn : 8;
            char **u = realloc(a->users, capn * sizeof *u);
            if (!u) goto fail;
            a->users = u;
            char **h = realloc(a->hashes, capn * sizeof *h);
            if (!h) goto fail;
            a->hashes = h;
        }
        *colon = 0;
        a->users[a->n] = strdup(line);
        a->hashes[a->n] = strdup(colon + 1);
        a->n++;
        if (!a->users[a->n - 1] || !a->hashes[a->n - 1]) goto fail;
    }
    free(line);
    fclose(f);
    *out = a;
    return 0;
fail:
    if (rc == QP_ENOMEM) snprintf(err, errlen, "out of memory");
    free(line);
    fclose(f);
    qp_auth_free(a);
    return rc;
}

static void cache_key(const qp_auth *a, const char *user, const char *password, unsigned char out[32])
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned int n = 32;
    if (!c || !EVP_DigestInit_ex(c, EVP_sha256(), NULL) ||
        !EVP_DigestUpdate(c, a->key, sizeof a->key) ||
        !EVP_DigestUpdate(c, user, strlen(user) + 1) ||
        !EVP_DigestUpdate(c, password, strlen(password)) || !EVP_DigestFinal_ex(c, out, &n))
        RAND_bytes(out, 32);   /* no digest: a random key never matches the cache */
    EVP_MD_CTX_free(c);
}

bool qp_auth_check(qp_auth *a, const char *user, const char *password)
{
    unsigned char d[32];
    cache_key(a, user, password, d);
    pthread_mutex_lock(&a->mu);
    for (int i = 0; i < a->ncache; i++) {
        if (!CRYPTO_memcmp(a->cache[i], d, 32)) {
            pthread_mutex_unlock(&a->mu);
            return true;
        }
    }
    pthread_mutex_unlock(&a->mu);
    const char *stored = NULL;
    for (int i = 0; i < a->n; i++)
        if (!strcmp(a->users[i], user)) { stored = a->hashes[i]; break; }
    /* An unknown user costs as much as a wrong password: no timing tells
     * which user names exist. */
    static const char dummy[] = SCHEME "$100000$00000000000000000000000000000000$"
                                "0000000000000000000000000000000000000000000000000000000000000000";
    bool ok = qp_passwd_verify(stored ? stored : dummy, password) == 1 && stored;
    if (ok) {
        pthread_mutex_lock(&a->mu);
        memcpy(a->cache[a->next], d, 32);
        a->next = (a->next + 1) % CACHE_SLOTS;
        if (a->ncache < CACHE_SLOTS) a->ncache++;
        pthread_mutex_unlock(&a->mu);
    }
    return ok;
}

void qp_auth_free(qp_auth *a)
{
    if (!a) return;
    for (int i = 0; i < a->n; i++) {
        free(a->users[i]);
        free(a->hashes[i]);
    }
    free(a->users);
    free(a->hashes);
    pthread_mutex_destroy(&a->mu);
    OPENSSL_cleanse(a, sizeof *a);
    free(a);
}

/* ---- client credentials ---- */

int qp_credentials_parse(const char *spec, char *buf, size_t buflen,
                         const char **user, const char **password,
                         char *err, size_t errlen)
{
    if (spec[0] == '@') {
        FILE *f = fopen(spec + 1, "r");
        if (!f) {
            int e = errno;
            snprintf(err, errlen, "cannot read credentials file '%s': %s", spec + 1, strerror(e));
            return -e;
        }
        if (!fgets(buf, (int)buflen, f)) buf[0] = '\0';
        fclose(f);
        buf[strcspn(buf, "\r\n")] = '\0';
        if (!buf[0]) {
            snprintf(err, errlen, "credentials file '%s' is empty", spec + 1);
            return QP_EARG;
        }
    } else if ((size_t)snprintf(buf, buflen, "%s", spec) >= buflen) {
        snprintf(err, errlen, "credentials longer than %zu bytes", buflen - 1);
        return QP_EARG;
    }
    char *colon = strchr(buf, ':');
    if (colon) *colon = '\0';
    *user = buf;
    *password = colon ? colon + 1 : "";
    return 0;
}
