/* pykxwire.h - the exact q texts PyKX sends for its remote functions
 * (../shared/PYKX_WIRE.md, Q0, Q2 and Q3 there), byte for byte: `qpeach
 * serve` recognises them (pykxwire.c, whitespace-free) and the scheduler
 * sends them to q + PyKX servers (src/sched/pykxmsg.c, [workers] protocol
 * = pykx). One copy, here. Not a public header.
 */
#ifndef QPEACH_PYKXWIRE_H
#define QPEACH_PYKXWIRE_H

/* Q0, the session check (14 bytes): q with pykx.q answers 1b. */
extern const char qp__pykx_q0[];
/* Q2, the libraries lambda (367 bytes), applied to (alias; library). */
extern const char qp__pykx_q2[];
/* Q3, the call lambda (399 bytes), applied to (code; name; args; count). */
extern const char qp__pykx_q3[];

#endif
