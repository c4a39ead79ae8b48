/* value_int.h - what value.c tells the tests beyond value.h. Not a
 * public header. */
#ifndef QPEACH_VALUE_INT_H
#define QPEACH_VALUE_INT_H

/* How many qp_buf_map mappings were made so far in this process: lets a
 * test check that a lazy open mapped nothing. */
long long qp__buf_maps(void);

#endif
