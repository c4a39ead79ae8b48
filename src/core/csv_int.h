/* csv_int.h - internal to the table module (csv.c, csv_field.c, format.c)
 * and to qparse.c, which reads q's temporal literals with the parsers below:
 * field parsers and the cell formatter the CSV writer shares with
 * qp_format. Not installed; no stability promised. */
#ifndef QPEACH_CSV_INT_H
#define QPEACH_CSV_INT_H

#include "qpeach/table.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Inference classes (bit set): the types a value parses as. */
enum { CSV_C_B = 1, CSV_C_J = 2, CSV_C_F = 4, CSV_C_D = 8, CSV_C_P = 16,
       CSV_C_T = 32, CSV_C_N = 64, CSV_C_G = 128, CSV_C_S = 256,
       CSV_C_M = 512, CSV_C_U = 1024, CSV_C_V = 2048 };

/* Parsers: s[0..n) with n > 0; return 0 and store the item, or -1. */
int qp__csv_special(const char *s, size_t n);   /* 0 null, 1 inf, -1 -inf, 2 none */
int qp__csv_long(const char *s, size_t n, int64_t *out);
int qp__csv_float(const char *s, size_t n, double *out);
int qp__csv_date(const char *s, size_t n, int32_t *out);
int qp__csv_month(const char *s, size_t n, int32_t *out);
int qp__csv_clock(const char *s, size_t n, int64_t *ns, int *fd, bool *secs);
/* The same with an optional leading '-' (q's text of a negative minute,
 * second or time: -00:00:01): *ns negative. */
int qp__csv_sclock(const char *s, size_t n, int64_t *ns, int *fd, bool *secs);
int qp__csv_timestamp(const char *s, size_t n, int64_t *out);
int qp__csv_timespan(const char *s, size_t n, int64_t *out);
int qp__csv_guid(const char *s, size_t n, uint8_t out[16]);
int qp__csv_bool(const char *s, size_t n, uint8_t *out);
int qp__csv_byte(const char *s, size_t n, uint8_t *out);
unsigned qp__csv_classes(const char *s, size_t n);
char qp__csv_pick(unsigned classes);

/* Item p of vector type t as CSV text into dst (cap bytes, NUL-terminated):
 * as a q table cell (symbols bare, nulls empty, temporal in q's format),
 * floats with enough digits to round-trip. Returns the length, or -1 if
 * cap is too small. */
int qp__format_cell(char *dst, size_t cap, int t, const void *p);
/* The same, or with iso the text [output] format = iso writes: chosen by
 * the type t, so that pandas reads back the value (format.c: put_iso). */
int qp__format_csv_cell(char *dst, size_t cap, int t, const void *p, bool iso);

#endif
