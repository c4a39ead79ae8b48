/* ipc_int.h - shared by the codec's files (ipc.c, ipc_decode.c,
 * compress.c, reader.c); not a public header. */
#ifndef QPEACH_IPC_INT_H
#define QPEACH_IPC_INT_H

#include "qpeach/ipc.h"

/* Header length is 40 bits (byte 3 + bytes 4..7): q's 1 TB limit. */
#define QP_IPC_MAX_LEN (1ULL << 40)

extern const uint8_t qp__wire_width[20];

/* Writes a little-endian, uncompressed header for a message of len bytes. */
void qp__ipc_header_write(uint8_t *dst, int msgtype, uint64_t len);

/* Asks for transparent huge pages over the 2 MB-aligned interior of a
 * fresh (untouched) block of len bytes: a 100 MB message then costs ~50
 * page faults instead of ~25,000. A hint only; does nothing for small
 * blocks or where the kernel declines. */
void qp__advise_huge(void *p, size_t len);

/* Offset, within a whole uncompressed message, of the items of the first
 * vector worth aligning (a top-level vector, or the first vector of
 * 2..16-byte items among a top-level list's leading items), judged from
 * its first have bytes; 0 when there is none. */
size_t qp__ipc_data_offset(const uint8_t *msg, size_t have);

#endif
