/* csv_cells.h - a CSV file read by hand into cells, for tests that
 * compare tables with published CSVs (the fixtures' CSVs have no quoting).
 * Header-only: every function is static. */
#ifndef QPEACH_TESTS_CSV_CELLS_H
#define QPEACH_TESTS_CSV_CELLS_H

#include "qpeach/value.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct csv {
    char *text;
    char **cell;        /* rows x cols, row-major; header excluded */
    char **head;
    int ncols;
    int64_t nrows;
} csv;

static void csv_free(csv *c)
{
    free(c->text);
    free(c->cell);
    free(c->head);
}

static char **split(char *line, int *n)
{
    int k = 1;
    for (char *p = line; *p; p++) k += *p == ',';
    char **f = malloc(sizeof *f * (size_t)k);
    int i = 0;
    f[i++] = line;
    for (char *p = line; *p; p++)
        if (*p == ',') { *p = 0; f[i++] = p + 1; }
    *n = k;
    return f;
}

static bool csv_read(const char *path, csv *c)
{
    memset(c, 0, sizeof *c);
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    c->text = malloc((size_t)len + 1);
    size_t got = fread(c->text, 1, (size_t)len, f);
    fclose(f);
    c->text[got] = 0;
    int64_t lines = 0;
    for (char *p = c->text; *p; p++) lines += *p == '\n';
    char *save = NULL, *line = strtok_r(c->text, "\n", &save);
    c->head = split(line, &c->ncols);
    c->cell = malloc(sizeof(char *) * (size_t)(lines * c->ncols + 1));
    while ((line = strtok_r(NULL, "\n", &save))) {
        size_t l = strlen(line);
        if (l && line[l - 1] == '\r') line[l - 1] = 0;
        int n;
        char **fs = split(line, &n);
        for (int i = 0; i < c->ncols; i++) c->cell[c->nrows * c->ncols + i] = i < n ? fs[i] : "";
        free(fs);
        c->nrows++;
    }
    return true;
}

/* The CSV text of a temporal value as q prints it: 1991-07-14 -> 1991.07.14,
 * and a datetime's space -> T. */
static void q_text(int t, const char *in, char *out, size_t cap)
{
    snprintf(out, cap, "%s", in);
    if (t == QP_TIMESTAMP || t == QP_MONTH || t == QP_DATE || t == QP_DATETIME) {
        for (int i = 0; i < 10 && out[i]; i++) if (out[i] == '-' && i > 0) out[i] = '.';
        if (t == QP_DATETIME && strlen(out) > 10 && out[10] == ' ') out[10] = 'T';
    }
}

#endif
