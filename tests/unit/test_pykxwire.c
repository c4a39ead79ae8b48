/* test_pykxwire.c - CUnit suite for src/server/pykxwire.c: PyKX's q texts
 * (../shared/PYKX_WIRE.md) are recognised byte for byte, re-indented, and
 * split anywhere by whitespace; look-alikes, truncations and extensions are
 * not. The server's answers to them are tested against a real process in
 * tests/integration/test_pykx.py.
 */
#include <stdlib.h>
#include <string.h>

#include "cunit_run.h"

#include "qpeach/journal.h"

#include "qpeach/pykx.h"
#include "server/server_int.h"
#include "sched/sched_int.h"

/* The texts exactly as PyKX 3.1.9 sends them. */
static const char Q0[] = "`pykx in key `";
static const char Q1_3X[] = "@[system\"l \",;\"pykx.q\";{'\"Failed to load PyKX with error: \",x}]";
static const char Q1_4X[] =
    "@[system\"l \",;\"pykx.q\";{'\"Failed to load KDB-X Python with error: \",x}]";
static const char Q2[] =
    "\n                {[alias;library]\n"
    "                  alias:string alias;\n"
    "                  library:string library;\n"
    "                  @[.pykx.pyexec;\n"
    "                    \"import \",library,\" as \",alias;\n"
    "                    {'\"Failed to load library '\",x,\n"
    "                      \"' with alias '\",y,\"' with error: \",z}[library;alias]\n"
    "                    ]}\n"
    "                ";
static const char Q3[] =
    "\n                                           {[code;func_name;args;lenargs]\n"
    "                                             .pykx.pyexec trim \"\n\" sv 1_\"\n\" vs code;\n"
    "                                             func:.pykx.get[func_name;<];\n"
    "                                             $[lenargs;func . args;func[]]\n"
    "                                             }\n"
    "                                           ";

static int kind(const char *s) { return qp__pykx_text(s, strlen(s)); }

static void test_exact_texts(void)
{
    CU_ASSERT_EQUAL(strlen(Q0), 14);
    CU_ASSERT_EQUAL(strlen(Q1_3X), 63);
    CU_ASSERT_EQUAL(strlen(Q1_4X), 71);
    CU_ASSERT_EQUAL(strlen(Q2), 367);
    CU_ASSERT_EQUAL(strlen(Q3), 399);
    CU_ASSERT_EQUAL(kind(Q0), QP__PYKX_SESSION);
    CU_ASSERT_EQUAL(kind(Q1_3X), QP__PYKX_LOAD);
    CU_ASSERT_EQUAL(kind(Q1_4X), QP__PYKX_LOAD);
    CU_ASSERT_EQUAL(kind(Q2), QP__PYKX_LIBRARIES);
    CU_ASSERT_EQUAL(kind(Q3), QP__PYKX_CALL);
}

/* Every whitespace byte removed, or doubled, or turned into a tab: the
 * same text to us. */
static void test_whitespace_tolerated(void)
{
    const char *texts[] = { Q0, Q1_3X, Q2, Q3 };
    const int kinds[] = { QP__PYKX_SESSION, QP__PYKX_LOAD, QP__PYKX_LIBRARIES, QP__PYKX_CALL };
    for (int t = 0; t < 4; t++) {
        size_t n = strlen(texts[t]);
        char *squeezed = malloc(n + 1), *wide = malloc(3 * n + 1);
        CU_ASSERT_FATAL(squeezed && wide);
        size_t a = 0, b = 0;
        for (size_t i = 0; i < n; i++) {
            char c = texts[t][i];
            if (c == ' ' || c == '\n') {
                wide[b++] = '\t';
                wide[b++] = '\r';
                wide[b++] = '\n';
            } else {
                squeezed[a++] = c;
                wide[b++] = c;
            }
        }
        CU_ASSERT_EQUAL(qp__pykx_text(squeezed, a), kinds[t]);
        CU_ASSERT_EQUAL(qp__pykx_text(wide, b), kinds[t]);
        free(squeezed);
        free(wide);
    }
}

static void test_lookalikes_rejected(void)
{
    CU_ASSERT_EQUAL(kind(""), QP__PYKX_NONE);
    CU_ASSERT_EQUAL(kind("   \n "), QP__PYKX_NONE);
    CU_ASSERT_EQUAL(kind("`pykx in key `.q"), QP__PYKX_NONE);
    CU_ASSERT_EQUAL(kind("`pykx in key"), QP__PYKX_NONE);
    CU_ASSERT_EQUAL(kind("`pyk x in key `"), QP__PYKX_SESSION);   /* spaces never count */
    CU_ASSERT_EQUAL(kind("@[system\"l \",;\"other.q\";{'x}]"), QP__PYKX_NONE);
    CU_ASSERT_EQUAL(kind("{[x] x}"), QP__PYKX_NONE);
    CU_ASSERT_EQUAL(kind(".qp.echo 1"), QP__PYKX_NONE);
    /* every proper prefix of the lambdas, and each with one more token */
    const char *lams[] = { Q2, Q3 };
    for (int t = 0; t < 2; t++) {
        size_t n = strlen(lams[t]);
        int hits = 0;
        for (size_t k = 0; k < n; k++) {
            /* a prefix that is the whole text but for trailing whitespace is the text */
            size_t tail = k;
            while (tail < n && strchr(" \n", lams[t][tail])) tail++;
            if (tail == n) continue;
            hits += qp__pykx_text(lams[t], k) != QP__PYKX_NONE;
        }
        CU_ASSERT_EQUAL(hits, 0);
        char *more = malloc(n + 4);
        CU_ASSERT_FATAL(more != NULL);
        memcpy(more, lams[t], n);
        memcpy(more + n, "[1]", 3);
        CU_ASSERT_EQUAL(qp__pykx_text(more, n + 3), QP__PYKX_NONE);
        size_t last = n;       /* one token byte changed: the closing } */
        while (last && strchr(" \n", more[last - 1])) last--;
        more[last - 1] = ')';
        CU_ASSERT_EQUAL(qp__pykx_text(more, n), QP__PYKX_NONE);
        free(more);
    }
}

/* The one copy the server matches and the scheduler sends is PyKX's
 * bytes, and its SHA-256 is PYKX_WIRE.md's. */
static void test_shared_texts(void)
{
    CU_ASSERT_STRING_EQUAL(qp_pykx_q0, Q0);
    CU_ASSERT_STRING_EQUAL(qp_pykx_q2, Q2);
    CU_ASSERT_STRING_EQUAL(qp_pykx_q3, Q3);
    static const struct { const char *text; uint8_t head[4], tail[4]; } sha[] = {
        { Q0, { 0x86, 0x41, 0x8d, 0x9c }, { 0x3e, 0x16, 0x85, 0xea } },
        { Q2, { 0x96, 0xb7, 0xed, 0x3b }, { 0x32, 0xab, 0x82, 0xbf } },
        { Q3, { 0x63, 0xb6, 0x21, 0xef }, { 0xc5, 0x63, 0x77, 0x6c } },
    };
    for (size_t i = 0; i < 3; i++) {
        uint8_t h[32];
        qp_sha256(sha[i].text, strlen(sha[i].text), h);
        CU_ASSERT_EQUAL(memcmp(h, sha[i].head, 4), 0);
        CU_ASSERT_EQUAL(memcmp(h + 28, sha[i].tail, 4), 0);
    }
}

/* The scheduler's call: (Q3; source; `name; enlist arg; 1j), as an
 * unlicensed PyKX client frames one argument; the server takes it for
 * PyKX's call. */
static void test_call_message(void)
{
    qp_value *m = qp__pykx_call_msg("@d\ndef f(t):\n    return t\n", "f", qp_long(7));
    CU_ASSERT_FATAL(m != NULL);
    CU_ASSERT_EQUAL_FATAL(m->type, QP_LIST);
    CU_ASSERT_EQUAL_FATAL(m->v.n, 5);
    qp_value **k = qp_K(m);
    CU_ASSERT_EQUAL(k[0]->type, QP_CHAR);
    CU_ASSERT_EQUAL(qp__pykx_text(qp_C(k[0]), (size_t)k[0]->v.n), QP__PYKX_CALL);
    CU_ASSERT_EQUAL(k[1]->type, QP_CHAR);
    CU_ASSERT_EQUAL(k[2]->type, -QP_SYMBOL);
    CU_ASSERT_STRING_EQUAL(k[2]->s, "f");
    CU_ASSERT(k[3]->type == QP_LIST && k[3]->v.n == 1 && qp_K(k[3])[0]->j == 7);
    CU_ASSERT(k[4]->type == -QP_LONG && k[4]->j == 1);
    qp_unref(m);
    CU_ASSERT_EQUAL(qp__pykx_call_msg("x", "f", NULL), NULL);    /* an OOM'd argument */
}

int main(void)
{
    static const qp_test tests[] = {
        { "exact texts", test_exact_texts },
        { "whitespace tolerated", test_whitespace_tolerated },
        { "look-alikes rejected", test_lookalikes_rejected },
        { "shared texts", test_shared_texts },
        { "call message", test_call_message },
    };
    return qp_test_run("pykxwire", NULL, NULL, tests, QP_NTESTS(tests));
}
