/* seeds.c - writes the fuzzers' seed corpora from the messages the unit
 * tests use (tests/unit/ipc_vectors.h): whole messages for fuzz_decode,
 * compressed streams (from byte 8) for fuzz_decompress.
 * Usage: seeds DECODE_DIR DECOMPRESS_DIR */
#include "ipc_vectors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t unhex(const char *h, unsigned char *out)
{
    size_t n = 0;
    for (; h[0] && h[1]; h += 2) {
        unsigned v;
        sscanf(h, "%2x", &v);
        out[n++] = (unsigned char)v;
    }
    return n;
}

static void put(const char *dir, const char *kind, int i, const unsigned char *b, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s_%03d", dir, kind, i);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b, 1, n, f) != n) { perror(path); exit(1); }
    fclose(f);
}

int main(int argc, char **argv)
{
    if (argc != 3) return 2;
    static unsigned char b[1 << 16];
    for (size_t i = 0; i < N_QPY_KNOWN; i++) {
        size_t n = 8 + unhex(qpy_known[i].hex, b + 8);
        unsigned char h[8] = {1, 2, 0, 0, (unsigned char)n, (unsigned char)(n >> 8), 0, 0};
        memcpy(b, h, 8);
        put(argv[1], "qpy", (int)i, b, n);
    }
    for (size_t i = 0; i < N_KX_DOCS; i++) put(argv[1], "kx", (int)i, b, unhex(kx_docs[i].hex, b));
    const char *z[] = {qpy_z0, qpy_z1, qpy_z2};
    for (int i = 0; i < 3; i++) {
        size_t n = unhex(z[i], b + 8) + 8;
        unsigned char h[8] = {1, 2, 1, 0, (unsigned char)n, (unsigned char)(n >> 8), 0, 0};
        memcpy(b, h, 8);
        put(argv[1], "z", i, b, n);
        put(argv[2], "z", i, b + 8, n - 8);
    }
    return 0;
}
