/* cmd_db.c - `qpeach db import` (a CSV file into a kdb+ database, as q
 * 4.x writes it) and `qpeach db info` (what a kdb+ database holds). */
#include "qpeach/kdb.h"
#include "qpeach/table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void usage(FILE *f)
{
    fprintf(f,
        "usage: qpeach db import CSV DB TABLE [--types TYPES] [--partition COLUMN]\n"
        "                        [--parted COLUMN | --no-parted]\n"
        "       qpeach db info DB\n"
        "\n"
        "import  loads CSV (a header line, then rows) and writes it into the kdb+\n"
        "        database folder DB (made if missing; its parent must exist) as\n"
        "        table TABLE, with the bytes q 4.x writes: splayed at DB/TABLE/, or\n"
        "        with --partition one splayed folder per date at DB/YYYY.MM.DD/TABLE/\n"
        "        (COLUMN must be a date column; it is not stored: q and `db info`\n"
        "        call it `date`). Symbol columns are enumerated against DB/sym, new\n"
        "        names appended. When partitioning, the first symbol column (or\n"
        "        --parted COLUMN) is sorted within each partition and given p#, as\n"
        "        q's .Q.dpft does; --no-parted keeps the rows in file order without\n"
        "        p#. An existing table folder is replaced; on any error the database\n"
        "        is left as it was. --types gives one q type char per column (\"SFJ\";\n"
        "        \"*\" is a string column, written as q 4.x nests it: NAME and NAME#);\n"
        "        without it the types are inferred.\n"
        "info    prints each table: rows, partitions (count, first..last), and its\n"
        "        columns with their q type chars and attributes, as q's meta shows them;\n"
        "        then a note for each folder that is not a table (neither .d nor column\n"
        "        files: left out). A table that cannot be read is named with the reason\n"
        "        (exit 1); DB holding no table at all is exit 2.\n"
        "\n"
        "Exit status: 0 done, 1 an error (named on stderr), 2 a usage error or a DB\n"
        "that is not a kdb+ database.\n");
}

/* A usage error: the reason, the short synopsis, exit status 2. */
static int bad_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "qpeach db: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nusage: qpeach db import CSV DB TABLE [--types TYPES] [--partition COLUMN]\n"
                    "                        [--parted COLUMN | --no-parted]\n"
                    "       qpeach db info DB\n(qpeach db --help says more)\n");
    return 2;
}

/* ---- import ---- */

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Prints a q atom as the console shows it. */
static void print_atom(qp_value *x)
{
    char *s = x ? qp_format(x, 0) : NULL;
    if (s) s[strcspn(s, "\n")] = 0;
    fputs(s ? s : "?", stdout);
    free(s);
    qp_unref(x);
}

/* Prints partitions: count, first..last (dates in column pcol of t). */
static void print_parts(const qp_value *dates)
{
    int64_t n = dates->v.n, k = 0;
    int32_t *d = malloc((size_t)(n ? n : 1) * sizeof *d);
    if (!d) return;
    memcpy(d, qp_I(dates), (size_t)n * sizeof *d);
    qsort(d, (size_t)n, sizeof *d, cmp_i32);
    for (int64_t i = 0; i < n; i++) k += !i || d[i] != d[i - 1];
    printf("%lld partition%s ", (long long)k, k == 1 ? "" : "s");
    print_atom(qp_temporal_i(QP_DATE, d[0]));
    printf("..");
    print_atom(qp_temporal_i(QP_DATE, d[n - 1]));
    free(d);
}

static int import(int argc, char **argv)
{
    const char *pos[3];
    int npos = 0;
    qp_csv_opts copts = {0};
    qp_kdb_write_opts wopts = {0};
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--types") && i + 1 < argc) copts.types = argv[++i];
        else if (!strcmp(argv[i], "--partition") && i + 1 < argc) wopts.partition = argv[++i];
        else if (!strcmp(argv[i], "--parted") && i + 1 < argc) wopts.parted = argv[++i];
        else if (!strcmp(argv[i], "--no-parted")) wopts.parted = "";
        else if (argv[i][0] == '-') return bad_usage("unknown or incomplete option %s", argv[i]);
        else if (npos == 3) return bad_usage("one argument too many: %s", argv[i]);
        else pos[npos++] = argv[i];
    }
    if (npos != 3) return bad_usage("import wants CSV DB TABLE%s", "");
    qp_value *t = qp_csv_load(pos[0], &copts);
    if (!t || qp_is_error(t)) {
        fprintf(stderr, "qpeach db import: %s\n", t ? t->s : "out of memory");
        qp_unref(t);
        return 1;
    }
    char err[1024];
    int rc = qp_kdb_write(pos[1], pos[2], t, &wopts, err, sizeof err);
    if (rc) {
        fprintf(stderr, "qpeach db import: %s: %s\n", pos[0], err[0] ? err : qp_strerror(rc));
        qp_unref(t);
        return 1;
    }
    int64_t cols = qp_count(qp_table_names(t));
    printf("wrote %lld rows, %lld columns of %s to ", (long long)qp_count(t),
           (long long)(cols - (wopts.partition != NULL)), pos[2]);
    if (wopts.partition) {
        printf("%s/*/%s: ", pos[1], pos[2]);
        print_parts(qp_table_column(t, wopts.partition));
        printf("\n");
    } else {
        printf("%s/%s (splayed)\n", pos[1], pos[2]);
    }
    qp_unref(t);
    return 0;
}

/* ---- info ---- */

/* Prints meta's rows (c, t, a) indented. */
static void print_meta(const qp_value *meta)
{
    qp_value *c = qp_K(qp_table_columns(qp_dict_keys(meta)))[0];
    qp_value *v = qp_table_columns(qp_dict_values(meta));
    qp_value *ty = qp_K(v)[0], *a = qp_K(v)[2];
    for (int64_t i = 0; i < c->v.n; i++) {
        const char *attr = qp_S(a)[i];
        printf("  %-16s %c%s%s\n", qp_S(c)[i], qp_C(ty)[i], *attr ? "  " : "", attr);
    }
}

/* One table's summary. Returns 0, or 1 when it cannot be read. */
static int info_table(qp_kdb *db, const char *name)
{
    char err[1024];
    int64_t n = 0;
    qp_value *parts = NULL, *meta = NULL;
    int rc = 1;
    if (qp_kdb_count(db, name, &n, err, sizeof err)) {
        fprintf(stderr, "qpeach db info: table %s: %s\n", name, err);
        printf("table %s: cannot be read (%s)\n", name, err);
        return 1;
    }
    parts = qp_kdb_partitions(db, name);
    meta = qp_kdb_meta(db, name);
    if (!parts || !meta || qp_is_error(parts) || qp_is_error(meta)) {
        const char *m = !parts || !meta ? "out of memory" : qp_is_error(parts) ? parts->s : meta->s;
        fprintf(stderr, "qpeach db info: table %s: %s\n", name, m);
        printf("table %s: cannot be read (%s)\n", name, m);
        goto done;
    }
    printf("table %s: %lld rows, ", name, (long long)n);
    const char *pc = qp_kdb_part_column(db, name);
    if (pc) {
        printf("partitioned by %s, %lld partition%s", pc, (long long)parts->v.n, parts->v.n == 1 ? "" : "s");
        if (parts->v.n) {
            printf(" ");
            print_atom(qp_item(parts, 0));
            printf("..");
            print_atom(qp_item(parts, parts->v.n - 1));
        }
    } else {
        /* a flat table is one file at the root; DB may itself be a splayed folder */
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", qp_kdb_path(db), name);
        printf("%s", !stat(path, &st) && S_ISREG(st.st_mode) ? "flat" : "splayed");
    }
    printf(", %lld columns\n", (long long)qp_count(meta));
    print_meta(meta);
    rc = 0;
done:
    qp_unref(parts);
    qp_unref(meta);
    return rc;
}

/* The folders left out as not tables: the first few, then how many more. */
static void print_skipped(const qp_kdb *db)
{
    enum { SHOWN = 20 };
    int64_t n = 0;
    for (const char *p; (p = qp_kdb_skipped(db, n)); n++)
        if (n < SHOWN) printf("note: %s: not a table (neither .d nor column files), left out\n", p);
    if (n > SHOWN)
        printf("note: %lld more folders are not tables either, left out\n", (long long)(n - SHOWN));
}

static int info(int argc, char **argv)
{
    if (argc != 3 || argv[2][0] == '-') return bad_usage("info wants one DB folder%s", "");
    char err[1024];
    qp_kdb *db = NULL;
    if (qp_kdb_open(argv[2], &db, err, sizeof err)) {   /* err names the path */
        fprintf(stderr, "qpeach db info: %s\n", err);
        return 2;
    }
    qp_value *tables = qp_kdb_tables(db);
    int rc = tables ? 0 : 1;
    printf("database %s: %lld table%s\n", qp_kdb_path(db), (long long)(tables ? tables->v.n : 0),
           tables && tables->v.n == 1 ? "" : "s");
    for (int64_t i = 0; tables && i < tables->v.n; i++) rc |= info_table(db, qp_S(tables)[i]);
    print_skipped(db);
    qp_unref(tables);
    qp_kdb_close(db);
    return rc;
}

int qp_cmd_db(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) { usage(stdout); return 0; }
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return 0; }
    if (argc >= 2 && !strcmp(argv[1], "import")) return import(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "info")) return info(argc, argv);
    return bad_usage(argc >= 2 ? "unknown subcommand %s" : "a subcommand is needed%s", argc >= 2 ? argv[1] : "");
}
