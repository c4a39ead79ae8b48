/* treecmp.c - files and folders compared byte for byte, for the unit
 * tests of the kdb+ writer and the CSV import (treecmp.h). */
#include "treecmp.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The whole file, malloc'd (NULL when missing); *len its size. */
uint8_t *qp_test_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    *len = fread(b, 1, (size_t)n, f);
    fclose(f);
    return b;
}

/* True when the two files hold the same bytes; prints the first difference. */
bool qp_test_same_file(const char *want, const char *got)
{
    size_t a = 0, b = 0;
    uint8_t *x = qp_test_slurp(want, &a), *y = qp_test_slurp(got, &b);
    bool same = x && y && a == b && !memcmp(x, y, a);
    if (!same) {
        size_t i = 0;
        while (x && y && i < a && i < b && x[i] == y[i]) i++;
        fprintf(stderr, "\n%s (%zu bytes) != %s (%zu bytes), first difference at %zu\n",
                want, a, got, b, i);
    }
    free(x);
    free(y);
    return same;
}

/* Every file under want (recursively) is under got with the same bytes,
 * and got has nothing else. Returns the files compared, -1 on a mismatch. */
int qp_test_same_tree(const char *want, const char *got)
{
    DIR *d = opendir(want);
    if (!d) return -1;
    int n = 0, entries = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n >= 0) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        entries++;
        char w[512], g[512];
        snprintf(w, sizeof w, "%s/%s", want, e->d_name);
        snprintf(g, sizeof g, "%s/%s", got, e->d_name);
        struct stat st;
        stat(w, &st);
        int k = S_ISDIR(st.st_mode) ? qp_test_same_tree(w, g) : qp_test_same_file(w, g) ? 1 : -1;
        n = k < 0 ? -1 : n + k;
    }
    closedir(d);
    if (n < 0) return -1;
    int others = 0;
    if ((d = opendir(got))) {
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) others++;
        closedir(d);
    }
    if (others != entries) fprintf(stderr, "\n%s has %d entries, %s has %d\n", got, others, want, entries);
    return others == entries ? n : -1;
}
