/* pykxwire.c - the q texts an unmodified PyKX client sends for its remote
 * functions (kx.remote.session, session.libraries, @kx.remote.function),
 * recognised as text so that `qpeach serve` can answer them without being
 * a q interpreter. The messages and what q + pykx.q does with each are in
 * ../shared/PYKX_WIRE.md (Q0..Q3 there):
 *
 *   Q0 "`pykx in key `"                      -> 1b (PyKX is "loaded")
 *   Q1 @[system"l ",;"pykx.q";{'...}]         -> (::) (3.x and 4.x texts)
 *   Q2 (libraries lambda; alias; library)     -> .qp.pykx.libraries
 *   Q3 (call lambda; code; name; args; n)     -> .qp.pykx.call
 *
 * Matching is tolerant and never evaluates q: the text with every
 * whitespace byte removed must equal the known text so squeezed. PyKX
 * indents its lambdas with the caller's source layout (a triple-quoted
 * string), which differs between releases; the tokens do not. A text that
 * only resembles a lambda is not one, and gets the usual "unsupported
 * expression" answer.
 */
#include <ctype.h>
#include <string.h>

#include "srv.h"

/* Known texts, whitespace removed (PYKX_WIRE.md). */
static const char q0_session[] = "`pykxinkey`";
/* Q1 differs between 3.x ("PyKX") and 4.x ("KDB-X Python") only in the
 * error text after this prefix, which we never show: it is only sent when
 * Q0 answered false, and we answer true. */
static const char q1_load_prefix[] = "@[system\"l\",;\"pykx.q\";";
static const char q2_libraries[] =
    "{[alias;library]alias:stringalias;library:stringlibrary;@[.pykx.pyexec;"
    "\"import\",library,\"as\",alias;{'\"Failedtoloadlibrary'\",x,\"'withalias'\",y,"
    "\"'witherror:\",z}[library;alias]]}";
static const char q3_call[] =
    "{[code;func_name;args;lenargs].pykx.pyexectrim\"\"sv1_\"\"vscode;"
    "func:.pykx.get[func_name;<];$[lenargs;func.args;func[]]}";

/* Compares s (n bytes) with whitespace skipped against pat. Returns true
 * when every non-space byte of s matches pat in order and, unless prefix,
 * pat is used up exactly. Linear, no allocation: a 400-byte call text costs
 * one pass, against the call it prefixes. */
static bool squeezed_eq(const char *s, size_t n, const char *pat, bool prefix)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isspace(c)) continue;
        if (!*pat) return prefix;
        if ((unsigned char)*pat != c) return false;
        pat++;
    }
    return *pat == 0;
}

int qp__pykx_text(const char *s, size_t n)
{
    /* the first non-space byte tells the candidates apart cheaply */
    size_t i = 0;
    while (i < n && isspace((unsigned char)s[i])) i++;
    if (i == n) return QP__PYKX_NONE;
    switch (s[i]) {
    case '`':
        return squeezed_eq(s, n, q0_session, false) ? QP__PYKX_SESSION : QP__PYKX_NONE;
    case '@':
        return squeezed_eq(s, n, q1_load_prefix, true) ? QP__PYKX_LOAD : QP__PYKX_NONE;
    case '{':
        if (squeezed_eq(s, n, q3_call, false)) return QP__PYKX_CALL;
        if (squeezed_eq(s, n, q2_libraries, false)) return QP__PYKX_LIBRARIES;
        return QP__PYKX_NONE;
    default:
        return QP__PYKX_NONE;
    }
}
