/* qpeach/qparse.h - q text that qpeach reads without a q interpreter: q
 * literals, and the call forms a server evaluates (a name, f[a;b], f x).
 * Used by the server for char-vector messages and by `qpeach call` for its
 * arguments. No sockets, no server: text in, values out.
 *
 * Memory rules (they hold for every qp_ function in every module, see
 * value.h): "returns a new reference": the caller owns one reference and
 * must qp_unref() it. Names are interned symbols (qp_sym_intern): never
 * freed, equal names have equal pointers. Input text is borrowed for the
 * call only and need not be NUL-terminated.
 *
 * Limits: parentheses nest at most 64 deep (deeper text is refused, not a
 * stack overflow); a number token is at most 63 characters.
 */
#ifndef QPEACH_QPARSE_H
#define QPEACH_QPARSE_H

#include <stdbool.h>
#include <stddef.h>

#include "qpeach/value.h"

/* Parses one q literal from the n bytes at s:
 *   numbers with q's type suffixes: 1 1i 1h 1j 1e 1f, 1.5 1e3 .5;
 *   nulls and infinities 0N 0Nh 0Ni 0Nj 0Ne 0Nf 0n 0W 0Wi 0w -0W -0w;
 *   booleans 1b 010b; bytes 0x0a 0x0a0b;
 *   vectors of numbers "1 2 3" (typed by the last token's suffix, else
 *   float if any item is, else long);
 *   symbols `a and `a`b`c (` alone is the empty symbol);
 *   "strings" with q's escapes \n \t \r \\ \" \NNN (one char: a char atom);
 *   temporal ones as q writes them: dates 2024.01.02, months 2024.01m,
 *   timestamps 2024.01.02D09:30:00.000000000 (2024.01.02D09:30, 2024.01.02D:
 *   fewer digits), datetimes 2024.01.02T09:30:00.000, timespans
 *   0D00:00:01.5 -0D00:00:01 1D and 00:00:01.500000000 (4-9 fraction
 *   digits), times 09:30:00.000, seconds 09:30:00, minutes 09:30 (a clock
 *   may be negative); their nulls and infinities 0Nd 0Wp -0Wt 0Nz 0wz ...;
 *   vectors of one temporal type, where 0N 0W -0W take that type
 *   (2024.01.02 0N) and a last m makes months (2024.01 2024.02m); a mix
 *   of types in a vector is an error;
 *   (::), () the empty list, (x) = x, and (a;b;...) lists, which collapse
 *   to a vector when every item is an atom of one type, as q does.
 * Blanks around the literal are ignored; anything else after it is an
 * error. Returns a new reference, or NULL with a one-line message in err
 * (what is wrong and the text where it went wrong, "out of memory" when
 * that was the cause). err may be NULL. */
qp_value *qp_literal_parse(const char *s, size_t n, char *err, size_t errlen);

/* A parsed call form. */
typedef struct qp_expr {
    const char *name;      /* interned function or global name */
    bool call;             /* name[args], name x or name`x; false: a bare name */
    qp_value *args;        /* a general list of the arguments, a new reference
                            * owned by the caller (NULL for a bare name) */
    char err[100];         /* QP_EARG because an argument is no literal: why
                            * (qp_literal_parse's message); else "" */
} qp_expr;

/* Parses the n bytes at s as "name", "name[a;b;...]", "name[]" (one
 * argument, (::)), "name x" or "name`x" (as q reads it), where name is
 * letters, digits, '.' and '_' not starting with a digit, and each argument
 * a literal (qp_literal_parse). Returns 0 and fills e; QP_EARG for any
 * other text (nothing to free: the caller words the error, knowing what it
 * evaluates); QP_ENOMEM. */
int qp_expr_parse(const char *s, size_t n, qp_expr *e);

#endif
