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

#include "qpeach/pykx.h"
#include "server_int.h"

/* Q1 differs between 3.x ("PyKX") and 4.x ("KDB-X Python") only in the
 * error text after this prefix, which we never show: it is only sent when
 * Q0 answered false, and we answer true. */
static const char q1_load_prefix[] = "@[system\"l\",;\"pykx.q\";";

/* Compares s (n bytes) with pat, whitespace skipped in both. Returns true
 * when every non-space byte of s matches pat's next non-space byte in
 * order and, unless prefix, pat is used up exactly. Linear, no allocation: a 400-byte call text costs
 * one pass, against the call it prefixes. */
static bool squeezed_eq(const char *s, size_t n, const char *pat, bool prefix)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isspace(c)) continue;
        while (isspace((unsigned char)*pat)) pat++;
        if (!*pat) return prefix;
        if ((unsigned char)*pat != c) return false;
        pat++;
    }
    while (isspace((unsigned char)*pat)) pat++;
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
        return squeezed_eq(s, n, qp_pykx_q0, false) ? QP__PYKX_SESSION : QP__PYKX_NONE;
    case '@':
        return squeezed_eq(s, n, q1_load_prefix, true) ? QP__PYKX_LOAD : QP__PYKX_NONE;
    case '{':
        if (squeezed_eq(s, n, qp_pykx_q3, false)) return QP__PYKX_CALL;
        if (squeezed_eq(s, n, qp_pykx_q2, false)) return QP__PYKX_LIBRARIES;
        return QP__PYKX_NONE;
    default:
        return QP__PYKX_NONE;
    }
}
