/* treecmp.h - files and folders compared byte for byte (unit tests). */
#ifndef QPEACH_TESTS_TREECMP_H
#define QPEACH_TESTS_TREECMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The whole file, malloc'd (NULL when missing); *len its size. */
uint8_t *qp_test_slurp(const char *path, size_t *len);
/* True when the two files hold the same bytes; prints the first difference. */
bool qp_test_same_file(const char *want, const char *got);
/* Every file under want (recursively) is under got with the same bytes,
 * and got has nothing else. Returns the files compared, -1 on a mismatch. */
int qp_test_same_tree(const char *want, const char *got);

#endif
