/* qpeach/pykx.h - the q texts an unmodified PyKX client (3.1.9) sends for
 * its remote functions, byte for byte. They are protocol, not code: the
 * worker server recognises them (src/server/pykxwire.c) and answers them
 * as q with pykx.q does, the scheduler sends them to q + PyKX servers
 * ([workers] protocol = pykx, src/sched/pykxmsg.c), and the Python client
 * takes them from the extension for session(..., protocol='pykx'). This
 * is their one copy.
 *
 * Memory rules: static constant strings, never freed.
 */
#ifndef QPEACH_PYKX_H
#define QPEACH_PYKX_H

/* The session check (14 bytes): q with pykx.q loaded answers 1b. */
extern const char qp_pykx_q0[];
/* The libraries lambda (367 bytes), applied to (alias; library). */
extern const char qp_pykx_q2[];
/* The call lambda (399 bytes), applied to (code; name; args; count). */
extern const char qp_pykx_q3[];

#endif
