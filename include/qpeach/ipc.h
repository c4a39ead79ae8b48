/* qpeach/ipc.h - kdb+ IPC: serialization byte-for-byte as q's -8!, the
 * 8-byte message header, compression, and an incremental message reader.
 * The codec never touches a socket: bytes in, values out (and back).
 *
 * Memory rules: see value.h. Encoders return malloc'd bytes the caller
 * frees with free(). qp_ipc_decode() returns a new reference; numeric
 * vectors in it may borrow the message buffer (it takes buffer references
 * as needed, so the caller may drop its own at once).
 */
#ifndef QPEACH_IPC_H
#define QPEACH_IPC_H

#include "qpeach/value.h"

/* Message types (header byte 1). */
enum qp_msgtype { QP_MSG_ASYNC = 0, QP_MSG_SYNC = 1, QP_MSG_RESPONSE = 2 };

#define QP_IPC_HEADER 8
/* q's rule: compress only messages over this size, to non-local peers. */
#define QP_IPC_COMPRESS_MIN 2000

typedef struct qp_ipc_header {
    uint8_t little;        /* 1: little-endian body, 0: big-endian */
    uint8_t msgtype;       /* enum qp_msgtype */
    uint8_t compressed;    /* 1: compressed body, 2: compressed (cap 6) */
    uint64_t len;          /* total length including the header (as sent:
                            * the compressed length for compressed ones) */
} qp_ipc_header;

/* Limits checked before anything is allocated. */
typedef struct qp_ipc_limits {
    uint64_t max_msg;      /* largest message accepted, bytes (0: 1 TiB) */
    int max_depth;         /* deepest nesting of lists/dicts (0: 128) */
} qp_ipc_limits;

/* ---- Encoding ---- */
/* Bytes x takes on the wire, without the header; < 0 on unsupported type
 * (QP_ETYPE). */
int64_t qp_ipc_size(const qp_value *x);
/* A whole message (header + body, little-endian, uncompressed) in a new
 * malloc'd buffer. Returns 0 or a negative code. */
int qp_ipc_encode(const qp_value *x, int msgtype, uint8_t **out, size_t *len);
/* Encodes the body of x into dst, which has room for qp_ipc_size(x) bytes;
 * returns the bytes written. */
size_t qp_ipc_encode_body(const qp_value *x, uint8_t *dst);

/* ---- Header ---- */
/* Parses 8 header bytes. Returns 0, or QP_EPROTO for a malformed header. */
int qp_ipc_header_parse(const uint8_t hdr[QP_IPC_HEADER], qp_ipc_header *h);

/* ---- Decoding ---- */
/* Decodes a whole message (header included, already decompressed) held in
 * buf. Returns a new reference: the value, or on a malformed message an
 * error value (-128) whose text says what is wrong. NULL only on OOM.
 * limits may be NULL (defaults). */
qp_value *qp_ipc_decode(qp_buf *buf, const qp_ipc_limits *limits);
/* Same, telling a malformed message from a q error sent on purpose: returns
 * 0 and *out (a new reference: the value, which may itself be a q error),
 * or a negative code (QP_ETRUNC, QP_ETYPE, QP_EDEPTH, QP_ETOOBIG,
 * QP_ECORRUPT, QP_EPROTO) with *out an error value saying what is wrong, or
 * QP_ENOMEM with *out NULL. A compressed message is decompressed first. */
int qp_ipc_decode_msg(qp_buf *buf, const qp_ipc_limits *limits, qp_value **out);
/* Same for a bare body (no header), little-endian unless big is set.
 * Used for q IPC files written by -8! / set. */
qp_value *qp_ipc_decode_body(qp_buf *buf, size_t off, size_t len, bool big,
                             const qp_ipc_limits *limits);

/* ---- Compression (kdb+'s LZ-style scheme) ---- */
/* Should a message of len bytes be compressed for this peer? q's rule. */
bool qp_ipc_should_compress(size_t len, bool local_peer);
/* Compresses a whole uncompressed message (header included) into a new
 * malloc'd message with the compressed flag set. Returns 0, QP_ENOGAIN
 * when the result would not be at most half the input (as q: then send it
 * uncompressed), or QP_ENOMEM. */
int qp_ipc_compress(const uint8_t *msg, size_t len, uint8_t **out, size_t *outlen);
/* Decompresses a whole compressed message (header included) into a new
 * buffer holding the uncompressed message (header included, flag clear).
 * Returns 0 or QP_ECORRUPT / QP_ETOOBIG / QP_ENOMEM. */
int qp_ipc_decompress(const uint8_t *msg, size_t len, const qp_ipc_limits *limits,
                      qp_buf **out);

/* ---- Incremental reader (hiredis style: feed bytes, take messages) ---- */
typedef struct qp_reader qp_reader;
qp_reader *qp_reader_new(const qp_ipc_limits *limits);
void qp_reader_free(qp_reader *r);            /* NULL-safe */
/* Copies n bytes in. Returns 0 or the sticky error. */
int qp_reader_feed(qp_reader *r, const void *bytes, size_t n);
/* Where to read into directly (avoids a copy for large bodies): returns a
 * pointer with at least *room bytes free; call qp_reader_commit(r, n)
 * after writing n of them. */
void *qp_reader_space(qp_reader *r, size_t *room);
int qp_reader_commit(qp_reader *r, size_t n);
/* Takes the next complete message: 1 and *msg (a new buffer reference,
 * decompressed, header included) and *h; 0 when more bytes are needed;
 * or a negative code (sticky: the stream is unusable, see errstr). */
int qp_reader_next(qp_reader *r, qp_buf **msg, qp_ipc_header *h);
const char *qp_reader_errstr(const qp_reader *r);

#endif
