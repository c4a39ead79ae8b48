/* test_net.c - CUnit suite for the net module's pure parts: password
 * hashing and files, and address parsing (q literals and expressions are
 * in test_qparse.c). The server and client are tested against a real server
 * process in tests/integration/test_serve.py.
 */
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cunit_run.h"

#include "qpeach/auth.h"
#include "qpeach/conn.h"
#include "qpeach/ipc.h"
#include "qpeach/server.h"
#include "net/net_int.h"

/* ---- passwords ---- */

static void test_passwd_hash_verify(void)
{
    char h1[QP_PASSWD_MAX], h2[QP_PASSWD_MAX];
    CU_ASSERT_EQUAL(qp_passwd_hash("s3cret", h1, sizeof h1), 0);
    CU_ASSERT_EQUAL(qp_passwd_hash("s3cret", h2, sizeof h2), 0);
    CU_ASSERT(strncmp(h1, "pbkdf2-sha256$100000$", 21) == 0);
    CU_ASSERT(strcmp(h1, h2) != 0);                       /* salted */
    CU_ASSERT(strstr(h1, "s3cret") == NULL);
    CU_ASSERT_EQUAL(qp_passwd_verify(h1, "s3cret"), 1);
    CU_ASSERT_EQUAL(qp_passwd_verify(h2, "s3cret"), 1);
    CU_ASSERT_EQUAL(qp_passwd_verify(h1, "s3cres"), 0);
    CU_ASSERT_EQUAL(qp_passwd_verify(h1, ""), 0);
    /* a well-formed entry (digest of something else) verifies as 0, not an error */
    const char *known = "pbkdf2-sha256$1$000102030405060708090a0b0c0d0e0f$"
                        "7e8a0b3f9a1e30b48f7ea3f7d42f3c1ba8d09a0b8d3bfbeb4a0c1a3f2c5b8a10";
    CU_ASSERT_EQUAL(qp_passwd_verify(known, "x"), 0);
    const char *bad[] = { "", "md5$1$00$00", "pbkdf2-sha256$0$000102030405060708090a0b0c0d0e0f$00",
                          "pbkdf2-sha256$1$0001$7e8a", "pbkdf2-sha256$x$00$00",
                          "pbkdf2-sha256$99999999999$000102030405060708090a0b0c0d0e0f$"
                          "7e8a0b3f9a1e30b48f7ea3f7d42f3c1ba8d09a0b8d3bfbeb4a0c1a3f2c5b8a10" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CU_ASSERT_EQUAL(qp_passwd_verify(bad[i], "x"), QP_EARG);
}

static void test_passwd_python_vector(void)
{
    /* computed independently by Python's hashlib (OpenSSL underneath, but
     * a different code path: our file format, our hex, our compare) */
    FILE *p = popen("/usr/bin/python3 -c \"import hashlib;print(hashlib.pbkdf2_hmac("
                    "'sha256', b'password', bytes(range(16)), 3).hex())\"", "r");
    char hexd[80] = "";
    if (!p || !fgets(hexd, sizeof hexd, p)) { if (p) pclose(p); CU_FAIL("python3 not available"); return; }
    pclose(p);
    hexd[strcspn(hexd, "\n")] = 0;
    char entry[200];
    snprintf(entry, sizeof entry, "pbkdf2-sha256$3$000102030405060708090a0b0c0d0e0f$%s", hexd);
    CU_ASSERT_EQUAL(qp_passwd_verify(entry, "password"), 1);
    CU_ASSERT_EQUAL(qp_passwd_verify(entry, "Password"), 0);
}

static void test_passwd_file_and_auth(void)
{
    char dir[] = "/tmp/qpeach-test-net-XXXXXX", path[128], err[256];
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/passwd", dir);
    CU_ASSERT_EQUAL(qp_passwd_set(path, "alice", "one", err, sizeof err), 0);
    CU_ASSERT_EQUAL(qp_passwd_set(path, "bob", "two", err, sizeof err), 0);
    CU_ASSERT_EQUAL(qp_passwd_set(path, "alice", "three", err, sizeof err), 0);
    CU_ASSERT(qp_passwd_set(path, "bad:name", "x", err, sizeof err) < 0);
    CU_ASSERT(qp_passwd_set(path, "", "x", err, sizeof err) < 0);
    struct stat st;
    CU_ASSERT(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    qp_auth *a = NULL;
    CU_ASSERT_EQUAL_FATAL(qp_auth_load(path, &a, err, sizeof err), 0);
    CU_ASSERT(qp_auth_check(a, "alice", "three"));
    CU_ASSERT(qp_auth_check(a, "alice", "three"));       /* from the cache */
    CU_ASSERT(!qp_auth_check(a, "alice", "one"));
    CU_ASSERT(qp_auth_check(a, "bob", "two"));
    CU_ASSERT(!qp_auth_check(a, "bob", "three"));
    CU_ASSERT(!qp_auth_check(a, "carol", "two"));
    CU_ASSERT(!qp_auth_check(a, "", ""));
    qp_auth_free(a);
    qp_auth_free(NULL);
    /* malformed file: an error naming the line */
    FILE *f = fopen(path, "a");
    fputs("eve:plaintext\n", f);
    fclose(f);
    CU_ASSERT(qp_auth_load(path, &a, err, sizeof err) < 0);
    CU_ASSERT(strstr(err, "line 3") != NULL);
    char missing[160];
    snprintf(missing, sizeof missing, "%s/none", dir);
    CU_ASSERT(qp_auth_load(missing, &a, err, sizeof err) < 0);
    unlink(path);
    rmdir(dir);
}

/* ---- addresses ---- */

static void test_addresses(void)
{
    qp__addr a;
    CU_ASSERT(qp__addr_parse("localhost:5050", false, &a) == 0 && a.kind == QP__ADDR_TCP &&
              !strcmp(a.host, "localhost") && a.port == 5050);
    CU_ASSERT(qp__addr_parse(":5050", false, &a) == 0 && !strcmp(a.host, "127.0.0.1") && a.port == 5050);
    CU_ASSERT(qp__addr_parse("5050", true, &a) == 0 && !strcmp(a.host, "127.0.0.1") && a.port == 5050);
    CU_ASSERT(qp__addr_parse("0", true, &a) == 0 && a.port == 0);
    CU_ASSERT(qp__addr_parse("0.0.0.0:1", true, &a) == 0 && !strcmp(a.host, "0.0.0.0"));
    CU_ASSERT(qp__addr_parse("*:1", true, &a) == 0 && !strcmp(a.host, "0.0.0.0"));
    CU_ASSERT(qp__addr_parse("[::1]:7", false, &a) == 0 && !strcmp(a.host, "::1") && a.port == 7);
    CU_ASSERT(qp__addr_parse("unix:/tmp/x.sock", false, &a) == 0 && a.kind == QP__ADDR_UNIX &&
              !strcmp(a.path, "/tmp/x.sock") && !a.abstract);
    CU_ASSERT(qp__addr_parse("@/tmp/kx.5050", true, &a) == 0 && a.kind == QP__ADDR_UNIX &&
              !strcmp(a.path, "/tmp/kx.5050") && !a.abstract);
    CU_ASSERT(qp__addr_parse("unix://5050", false, &a) == 0 && a.kind == QP__ADDR_UNIX &&
              !strcmp(a.path, "/tmp/kx.5050") && a.abstract);
    const char *bad[] = { "", "host:", "host:99999", "host:12x", "unix:", "@", "unix://x", ":-1" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CU_ASSERT_EQUAL(qp__addr_parse(bad[i], false, &a), QP_EADDR);
    CU_ASSERT(qp__host_is_loopback("127.0.0.1") && qp__host_is_loopback("localhost") &&
              qp__host_is_loopback("::1") && !qp__host_is_loopback("0.0.0.0") &&
              !qp__host_is_loopback("10.0.0.1"));

    /* the client reports a bad address and a refused connection clearly */
    char err[256];
    qp_conn *c = NULL;
    CU_ASSERT_EQUAL(qp_conn_open("nope:", NULL, &c, err, sizeof err), QP_EADDR);
    CU_ASSERT(strstr(err, "bad address") != NULL && c == NULL);
    CU_ASSERT(qp_conn_open("unix:/nonexistent/qpeach.sock", NULL, &c, err, sizeof err) < 0);
    CU_ASSERT(strstr(err, "connect") != NULL && c == NULL);
    qp_conn_close(NULL);
}

/* ---- an in-process server: threads, exec kinds, parallel ---- */

static pthread_t thread_ids[8];          /* [0] main, [1..] secondaries */
static atomic_int threads_started;
static sem_t release_sem;

static void on_start(int index, void *data)
{
    (void)data;
    thread_ids[index + 1] = pthread_self();
    atomic_fetch_add(&threads_started, 1);
}

/* Returns 1b when it runs on the thread its exec kind promises. */
static qp_value *fn_where(qp_server *s, qp_value *args, void *data)
{
    (void)args;
    int exec = (int)(intptr_t)data;
    pthread_t me = pthread_self();
    bool ok = false;
    if (exec == QP_EXEC_MAIN || (exec == QP_EXEC_POOL && qp_server_secondary(s) == 0)) {
        ok = pthread_equal(me, thread_ids[0]);
    } else if (exec == QP_EXEC_POOL) {
        for (int i = 1; i <= qp_server_secondary(s); i++) ok |= pthread_equal(me, thread_ids[i]);
    } else {
        ok = true;
        for (int i = 0; i <= qp_server_secondary(s); i++) ok &= !pthread_equal(me, thread_ids[i]);
    }
    return qp_bool(ok);
}

static qp_value *fn_block(qp_server *s, qp_value *args, void *data)
{
    (void)s; (void)args; (void)data;
    sem_wait(&release_sem);              /* until another client calls release */
    return qp_symbol("released");
}

static qp_value *fn_release(qp_server *s, qp_value *args, void *data)
{
    (void)s; (void)args; (void)data;
    sem_post(&release_sem);
    return qp_bool(true);
}

typedef struct par_state { atomic_int hits[10000]; } par_state;

static void par_item(int64_t i, void *data)
{
    atomic_fetch_add(&((par_state *)data)->hits[i], 1);
}

static qp_value *fn_par(qp_server *s, qp_value *args, void *data)
{
    (void)args; (void)data;
    par_state *p = calloc(1, sizeof *p);
    qp_server_parallel(s, 10000, par_item, p);
    int64_t bad = 0;
    for (int i = 0; i < 10000; i++) bad += atomic_load(&p->hits[i]) != 1;
    free(p);
    return qp_long(bad);
}

static void *loop_thread(void *s)
{
    qp_server_run(s);
    return NULL;
}

static qp_value *call_sym(qp_conn *c, const char *fn)
{
    qp_value *m = qp_list(2, qp_symbol(fn), qp_identity());
    qp_value *r = qp_conn_call(c, m);
    qp_unref(m);
    return r;
}

static void check_server(int secondary)
{
    char err[256];
    memset(thread_ids, 0, sizeof thread_ids);
    atomic_store(&threads_started, 0);
    char dir[] = "/tmp/qpeach-test-srv-XXXXXX", pwfile[128];
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    snprintf(pwfile, sizeof pwfile, "%s/passwd", dir);
    CU_ASSERT_EQUAL_FATAL(qp_passwd_set(pwfile, "u", "pw", err, sizeof err), 0);
    qp_server_opts o = { .listen = "0", .secondary = secondary, .on_thread_start = on_start,
                         .passwd_file = pwfile };
    qp_server *s = NULL;
    CU_ASSERT_EQUAL_FATAL(qp_server_new(&o, &s, err, sizeof err), 0);
    CU_ASSERT_EQUAL(qp_server_def(s, "where_loop", 1, QP_EXEC_LOOP, fn_where, (void *)(intptr_t)QP_EXEC_LOOP), 0);
    CU_ASSERT_EQUAL(qp_server_def(s, "where_pool", 1, QP_EXEC_POOL, fn_where, (void *)(intptr_t)QP_EXEC_POOL), 0);
    CU_ASSERT_EQUAL(qp_server_def(s, "where_main", 1, QP_EXEC_MAIN, fn_where, (void *)(intptr_t)QP_EXEC_MAIN), 0);
    CU_ASSERT_EQUAL(qp_server_def(s, "block", 1, QP_EXEC_MAIN, fn_block, NULL), 0);
    CU_ASSERT_EQUAL(qp_server_def(s, "release", 1, QP_EXEC_LOOP, fn_release, NULL), 0);
    CU_ASSERT_EQUAL(qp_server_def(s, "par", 1, QP_EXEC_POOL, fn_par, NULL), 0);
    CU_ASSERT(qp_server_def(s, "bad", 1, 7, fn_par, NULL) < 0);
    CU_ASSERT(strncmp(qp_server_address(s), "127.0.0.1:", 10) == 0);
    sem_init(&release_sem, 0, 0);
    pthread_t loop;
    pthread_create(&loop, NULL, loop_thread, s);

    qp_conn_opts co = { .timeout_ms = 20000, .user = "u", .password = "pw" };
    qp_conn *a = NULL, *b = NULL;
    CU_ASSERT_EQUAL_FATAL(qp_conn_open(qp_server_address(s), &co, &a, err, sizeof err), 0);
    CU_ASSERT_EQUAL(qp_conn_capability(a), 6);
    CU_ASSERT(qp_conn_is_local(a));
    const char *fns[] = { "where_loop", "where_pool", "where_main" };
    for (int i = 0; i < 3; i++) {
        qp_value *r = call_sym(a, fns[i]);
        CU_ASSERT(r && r->type == -QP_BOOL && r->g == 1);
        if (!r || r->type != -QP_BOOL || !r->g) printf("\n  %s ran on the wrong thread\n", fns[i]);
        qp_unref(r);
    }
    CU_ASSERT_EQUAL(atomic_load(&threads_started), 1 + secondary);
    qp_value *r = call_sym(a, "par");
    CU_ASSERT(r && r->type == -QP_LONG && r->j == 0);
    qp_unref(r);

    /* a main-thread call in progress blocks neither the loop, nor logins
     * (checked off the main thread even with -s 0), nor other clients: b
     * logs in and is answered, and it is b that releases a */
    qp_value *m = qp_list(2, qp_symbol("block"), qp_identity());
    CU_ASSERT_EQUAL(qp_conn_send(a, m, QP_MSG_SYNC), 0);
    qp_unref(m);
    qp_conn_opts cb = { .timeout_ms = 20000, .user = "u", .password = "pw" };
    CU_ASSERT_EQUAL_FATAL(qp_conn_open(qp_server_address(s), &cb, &b, err, sizeof err), 0);
    qp_conn *bad = NULL;
    cb.password = "wrong";
    CU_ASSERT_EQUAL(qp_conn_open(qp_server_address(s), &cb, &bad, err, sizeof err), QP_EAUTH);
    CU_ASSERT(strstr(err, "access denied") != NULL && bad == NULL);
    r = call_sym(b, ".qp.ping");
    CU_ASSERT(r && r->type == -QP_BOOL && r->g == 1);
    qp_unref(r);
    r = call_sym(b, "release");
    CU_ASSERT(r && r->type == -QP_BOOL);
    qp_unref(r);
    int t = -1;
    r = NULL;
    CU_ASSERT_EQUAL(qp_conn_recv(a, &r, &t, -1), 0);
    CU_ASSERT(r && r->type == -QP_SYMBOL && !strcmp(r->s, "released") && t == QP_MSG_RESPONSE);
    qp_unref(r);

    /* a q error is a value, and the connection stays usable */
    r = call_sym(a, "nosuch");
    CU_ASSERT(r && r->type == QP_ERROR && strstr(r->s, "unknown function: nosuch"));
    qp_unref(r);
    m = qp_cstring(".qp.echo 1 2 3");
    r = qp_conn_call(a, m);
    CU_ASSERT(r && r->type == QP_LONG && r->v.n == 3);
    qp_unref(r);
    qp_unref(m);

    /* globals from C */
    CU_ASSERT_EQUAL(qp_server_set(s, "g", qp_long(5)), 0);
    qp_value *g = qp_server_get(s, "g");
    CU_ASSERT(g && g->j == 5);
    qp_unref(g);
    CU_ASSERT_PTR_NULL(qp_server_get(s, "nope"));

    qp_conn_close(a);
    qp_conn_close(b);
    qp_server_stop(s);
    pthread_join(loop, NULL);
    qp_server_free(s);
    sem_destroy(&release_sem);
    unlink(pwfile);
    rmdir(dir);
}

static void test_server_threads_s0(void) { check_server(0); }
static void test_server_threads_s3(void) { check_server(3); }

static void test_server_refuses(void)
{
    char err[256];
    qp_server *s = NULL;
    qp_server_opts o = { .listen = "0.0.0.0:0" };
    CU_ASSERT_EQUAL(qp_server_new(&o, &s, err, sizeof err), QP_EARG);
    CU_ASSERT(strstr(err, "--insecure") != NULL && s == NULL);
    o.listen = "nonsense:port";
    CU_ASSERT_EQUAL(qp_server_new(&o, &s, err, sizeof err), QP_EADDR);
    o.listen = "0";
    o.tls_cert = "/nonexistent.pem";
    CU_ASSERT(qp_server_new(&o, &s, err, sizeof err) < 0);
    o.tls_key = "/nonexistent.key";
    CU_ASSERT_EQUAL(qp_server_new(&o, &s, err, sizeof err), QP_ETLS);
    CU_ASSERT(strstr(err, "nonexistent.pem") != NULL);
    qp_server_free(NULL);
}

int main(void)
{
    static const qp_test tests[] = {
        {"password hash and verify", test_passwd_hash_verify},
        {"password vs python hashlib", test_passwd_python_vector},
        {"password file and auth", test_passwd_file_and_auth},
        {"addresses", test_addresses},
        {"server threads, -s 0", test_server_threads_s0},
        {"server threads, -s 3", test_server_threads_s3},
        {"server refuses bad options", test_server_refuses},
    };
    int fails = qp_test_run("net", NULL, NULL, tests, QP_NTESTS(tests));
    return fails;
}
