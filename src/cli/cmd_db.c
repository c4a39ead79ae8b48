/* cmd_db.c - `qpeach db import` (a CSV file into a kdb+ database, as q
 * 4.x writes it) and `qpeach db info` (what a kdb+ database holds). */
#include "qpeach/kdb.h"
#include "qpeach/table.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SYNOPSIS \
    "usage: qpeach db import CSV DB TABLE [--types TYPES] [--partition COLUMN]\n" \
    "                        [--parted COLUMN | --no-parted] [--wait SECONDS]\n" \
    "       qpeach db info DB\n"

static void usage(FILE *f)
{
    fprintf(f, SYNOPSIS
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
        "        p#. An existing table folder (a splayed table, or a date already\n"
        "        there) is replaced. Folders and files follow the umask, as q's do.\n"
        "        A splayed table is written as it is parsed (memory holds a few MB\n"
        "        per core); a partitioned one is read whole first (its rows are\n"
        "        reordered).\n"
        "types   --types gives one q type char per column (\"SFJ\"; \"*\" is a string\n"
        "        column, written as q 4.x nests it: NAME and NAME#). Without it each\n"
        "        column's type is inferred from its first 1000 values (blanks\n"
        "        skipped): the narrowest type they all parse as (2024-03 a month,\n"
        "        09:30 a minute, 09:30:00 a second, 09:30:00.123 a time, P1DT2H3M4S or\n"
        "        1D02:03:04 a timespan: what qpeach run's CSV output writes reads\n"
        "        back); words only make a symbol column, no value at all a float\n"
        "        (null) one, integers beyond 64 bits symbols (ids). A later value\n"
        "        that does not parse as that type (or a blank boolean: q has none)\n"
        "        fails the import, naming file, line, column and value; the type\n"
        "        never changes silently.\n"
        "append  a new date for a partitioned table that exists takes the table's\n"
        "        columns, order, types and p# column from its last partition: the\n"
        "        CSV's columns may come in any order and are parsed as the table\n"
        "        holds them (an integer as a float); a missing or extra column, or\n"
        "        a value that does not parse, fails naming the column and both types.\n"
        "safety  one import at a time per DB: an import holds DB/.qpeach.lock (flock)\n"
        "        from reading DB/sym to its commit; another waits up to --wait\n"
        "        SECONDS (default 60, 0: not at all), then fails naming the holder's\n"
        "        pid. Any failure (a bad value, a full disk, a kill -9) leaves DB\n"
        "        byte for byte as it was: new names reach DB/sym only when the\n"
        "        import commits, and a guard process rolls back a killed import.\n"
        "info    prints each table: rows, partitions (count, first..last), and its\n"
        "        columns with their q type chars and attributes, as q's meta shows them\n"
        "        (C for a column of strings); then a note for each folder left out: not\n"
        "        a table (neither .d nor column files), named as a partition of another\n"
        "        kind (a month folder in a date-partitioned db: q ignores it too), or\n"
        "        one that cannot be opened. A table that cannot be read is named with\n"
        "        the reason, and a partition folder that cannot be read (a broken link,\n"
        "        no permission) refuses every partitioned table (exit 1); DB holding\n"
        "        no table at all is exit 2.\n"
        "\n"
        "Exit status: 0 done, 1 an error (named on stderr), 2 a usage error or a DB\n"
        "that is not a kdb+ database.\n");
}

/* A usage error: the reason, the short synopsis, exit status 2. */
static int bad_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "qpeach db: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n" SYNOPSIS "(qpeach db --help says more)\n");
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

/* What an append must keep: the existing table's columns (from its last
 * partition: names in .d order, type chars, the p# column). */
typedef struct schema {
    qp_csv_schema s;
    const char **names;
    char *types;
    const char *parted;    /* its p# column, or "" */
    char of[300];
} schema;

static void schema_free(schema *sc)
{
    free(sc->names);
    free(sc->types);
}

/* Type char of a stored column, as --types spells it; 0 when a CSV cannot
 * give it (a list of anything but strings). */
static char stored_type(const qp_value *x)
{
    static const char TC[] = " bg xhijefcspmdznuvt";
    if (x->type == QP_ENUM) return 's';
    if (x->type >= 1 && x->type <= 19) return TC[x->type];
    if (x->type == QP_LIST && (!x->v.n || qp_K(x)[0]->type == QP_CHAR)) return '*';
    return 0;
}

/* Columns of partition t (the virtual date first) into sc, then pcol. */
static int schema_of_part(const qp_value *t, const char *name, const char *pcol, schema *sc,
                          char *err, size_t errlen)
{
    const qp_value *nv = qp_table_names(t), *cv = qp_table_columns(t);
    int n = (int)nv->v.n;              /* n - 1 stored columns, then pcol */
    sc->names = malloc((size_t)n * sizeof *sc->names);
    sc->types = calloc((size_t)n + 1, 1);
    if (!sc->names || !sc->types) return snprintf(err, errlen, "out of memory"), QP_ENOMEM;
    sc->parted = "";
    for (int i = 1; i < n; i++) {
        const qp_value *x = qp_K(cv)[i];
        sc->names[i - 1] = qp_S(nv)[i];
        if (!(sc->types[i - 1] = stored_type(x)))
            return snprintf(err, errlen, "column %s of table %s holds %s lists: a CSV cannot append "
                            "to it", qp_S(nv)[i], name, qp_type_name(qp_K(x)[0]->type)), QP_ETYPE;
        if (x->attr == QP_ATTR_PARTED) sc->parted = qp_S(nv)[i];
    }
    if (!(sc->names[n - 1] = qp_sym_intern(pcol, strlen(pcol))))
        return snprintf(err, errlen, "out of memory"), QP_ENOMEM;
    sc->types[n - 1] = 'd';
    snprintf(sc->of, sizeof sc->of, "table %s", name);
    sc->s = (qp_csv_schema){sc->of, n, sc->names, sc->types};
    return 0;
}

/* Whether db/name or db/ANY/name exists: a table the import must fit (a
 * new db is not opened as one). */
static bool has_table(const char *db, const char *name)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", db, name);
    bool found = !stat(path, &st);
    DIR *d = found ? NULL : opendir(db);
    for (struct dirent *e; d && !found && (e = readdir(d)) != NULL;) {
        snprintf(path, sizeof path, "%s/%s/%s", db, e->d_name, name);
        found = e->d_name[0] != '.' && !stat(path, &st);
    }
    if (d) closedir(d);
    return found;
}

/* The schema an import of table name into dbpath must keep (sc->s.n 0:
 * none, a new table or a splayed one being replaced). 0 or an error. */
static int read_schema(const char *dbpath, const char *name, const char *pcol, schema *sc,
                       char *err, size_t errlen)
{
    qp_kdb *db = NULL;
    qp_value *parts = NULL, *t = NULL;
    if (!has_table(dbpath, name)) return 0;
    int rc = qp_kdb_open(dbpath, &db, err, errlen);
    if (rc || !qp_kdb_has(db, name)) goto done;
    const char *pc = qp_kdb_part_column(db, name);
    if (!pc != !pcol || (pc && strcmp(pc, "date"))) {
        rc = QP_EARG;
        snprintf(err, errlen, pc ? "table %s is partitioned by %s in %s: import it with --partition "
                 "COLUMN (a date column)" : "table %s is a splayed table in %s: importing it by "
                 "partition would make a second table of that name", name, pc ? pc : dbpath, dbpath);
        goto done;
    }
    if (!pc) goto done;                /* splayed: replaced whole */
    parts = qp_kdb_partitions(db, name);
    if (!parts || qp_is_error(parts) || !parts->v.n) goto done;
    t = qp_kdb_table_part(db, name, parts->v.n - 1, QP_KDB_ENUMS);
    if (!t || qp_is_error(t)) {
        rc = QP_EIO;
        snprintf(err, errlen, "table %s: %s", name, t ? t->s : "out of memory");
        goto done;
    }
    rc = schema_of_part(t, name, pcol, sc, err, errlen);
done:
    qp_unref(t);
    qp_unref(parts);
    qp_kdb_close(db);
    return rc;
}

/* t's columns in the schema's order (a new table), or t itself. */
static qp_value *in_schema_order(qp_value *t, const schema *sc)
{
    if (!sc->s.n) return t;
    qp_value *names = qp_vector(QP_SYMBOL, sc->s.n), *cols = qp_vector(QP_LIST, sc->s.n);
    for (int i = 0; names && cols && i < sc->s.n; i++) {
        qp_S(names)[i] = sc->names[i];
        qp_K(cols)[i] = qp_ref(qp_table_column(t, sc->names[i]));   /* the loader checked */
    }
    qp_unref(t);
    if (!names || !cols) { qp_unref(names); qp_unref(cols); return NULL; }
    return qp_table(qp_dict(names, cols));
}

/* Takes DB's lock with a guard: at once, or after saying it waits. */
static int lock_db(const char *db, double wait, qp_kdb_lock **lk)
{
    char err[1024];
    long pid = 0;
    int rc = qp_kdb_lock_take(db, 0, QP_KDB_GUARD, lk, &pid, err, sizeof err);
    if (rc == QP_ETIMEOUT && wait > 0) {
        fprintf(stderr, "qpeach db import: waiting for pid %ld, which is writing %s (up to %g s; "
                "--wait SECONDS)\n", pid, db, wait);
        rc = qp_kdb_lock_take(db, wait, QP_KDB_GUARD, lk, &pid, err, sizeof err);
    }
    if (rc == QP_ETIMEOUT)
        fprintf(stderr, "qpeach db import: %s; waited %g s (--wait SECONDS)\n", err, wait);
    else if (rc)
        fprintf(stderr, "qpeach db import: %s\n", err);
    return rc;
}

/* Prints what was written: rows, cols (the partition column among them)
 * and, when partitioned, the dates (t's column pcol). */
static void say_wrote(int64_t rows, int64_t cols, const qp_value *t, const char *db,
                      const char *name, const char *pcol)
{
    printf("wrote %lld rows, %lld columns of %s to ", (long long)rows,
           (long long)(cols - (pcol != NULL)), name);
    if (pcol) {
        printf("%s/*/%s: ", db, name);
        print_parts(qp_table_column(t, pcol));
        printf("\n");
    } else {
        printf("%s/%s (splayed)\n", db, name);
    }
}

/* A splayed table: parsed and written a batch of rows at a time. */
static int import_streamed(const char **pos, qp_csv_opts *copts, qp_kdb_write_opts *wopts)
{
    char err[1024];
    qp_kdb_import st;
    int rc = qp_kdb_import_csv(pos[0], copts, pos[1], pos[2], wopts, &st, err, sizeof err);
    if (rc && st.csv_fault) fprintf(stderr, "qpeach db import: %s\n", err);
    else if (rc) fprintf(stderr, "qpeach db import: %s: %s\n", pos[0], err[0] ? err : qp_strerror(rc));
    else say_wrote(st.rows, st.cols, NULL, pos[1], pos[2], NULL);
    return rc;
}

/* Loads the CSV as the db's table must be, and writes it, under the lock:
 * a partitioned or p# table whole (its rows are reordered), a splayed one
 * as it is parsed. */
static int import_locked(const char **pos, qp_csv_opts *copts, qp_kdb_write_opts *wopts)
{
    char err[1024];
    schema sc = {0};
    qp_value *t = NULL;
    int rc = read_schema(pos[1], pos[2], wopts->partition, &sc, err, sizeof err);
    if (rc) {
        fprintf(stderr, "qpeach db import: %s\n", err);
        goto done;
    }
    copts->schema = sc.s.n ? &sc.s : NULL;
    if (sc.s.n && !wopts->parted) wopts->parted = sc.parted;
    if (!wopts->partition && !(wopts->parted && *wopts->parted)) {
        rc = import_streamed(pos, copts, wopts);
        goto done;
    }
    t = qp_csv_load(pos[0], copts);
    if (t && !qp_is_error(t)) t = in_schema_order(t, &sc);
    if (!t || qp_is_error(t)) {
        fprintf(stderr, "qpeach db import: %s\n", t ? t->s : "out of memory");
        rc = 1;
        goto done;
    }
    if ((rc = qp_kdb_write(pos[1], pos[2], t, wopts, err, sizeof err))) {
        fprintf(stderr, "qpeach db import: %s: %s\n", pos[0], err[0] ? err : qp_strerror(rc));
        goto done;
    }
    say_wrote(qp_count(t), qp_count(qp_table_names(t)), t, pos[1], pos[2], wopts->partition);
done:
    qp_unref(t);
    schema_free(&sc);
    return rc ? 1 : 0;
}

static int import(int argc, char **argv)
{
    const char *pos[3];
    int npos = 0;
    double wait = 60;
    qp_csv_opts copts = {0};
    qp_kdb_write_opts wopts = {0};
    for (int i = 2; i < argc; i++) {
        char *end;
        if (!strcmp(argv[i], "--types") && i + 1 < argc) copts.types = argv[++i];
        else if (!strcmp(argv[i], "--partition") && i + 1 < argc) wopts.partition = argv[++i];
        else if (!strcmp(argv[i], "--parted") && i + 1 < argc) wopts.parted = argv[++i];
        else if (!strcmp(argv[i], "--no-parted")) wopts.parted = "";
        else if (!strcmp(argv[i], "--wait") && i + 1 < argc) {
            wait = strtod(argv[++i], &end);
            if (*end || end == argv[i] || !(wait >= 0 && wait < 1e9))
                return bad_usage("--wait wants a number of seconds, not %s", argv[i]);
        }
        else if (argv[i][0] == '-') return bad_usage("unknown or incomplete option %s", argv[i]);
        else if (npos == 3) return bad_usage("one argument too many: %s", argv[i]);
        else pos[npos++] = argv[i];
    }
    if (npos != 3) return bad_usage("import wants CSV DB TABLE%s", "");
    qp_kdb_lock *lk = NULL;
    if (lock_db(pos[1], wait, &lk)) return 1;
    wopts.lock = lk;
    int rc = import_locked(pos, &copts, &wopts);
    qp_kdb_lock_release(lk);
    return rc;
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

/* The folders left out (not tables, partitions of a kind that lost the
 * vote, folders that cannot be opened): the first few, then how many
 * more. Partition folders that cannot be read: each, and 1 (every
 * partitioned table is refused). */
static int print_skipped(const qp_kdb *db)
{
    enum { SHOWN = 20 };
    int64_t n = 0;
    char why[256];
    for (const char *p; (p = qp_kdb_skipped(db, n, NULL, why, sizeof why)); n++)
        if (n < SHOWN) printf("note: %s: %s, left out\n", p, why);
    if (n > SHOWN)
        printf("note: %lld more folders left out\n", (long long)(n - SHOWN));
    int err = 0;
    n = 0;
    for (const char *p; (p = qp_kdb_unreadable(db, n, &err)); n++)
        printf("error: partition folder %s cannot be read (%s): every partitioned table is "
               "refused\n", p, strerror(err));
    return n ? 1 : 0;
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
    rc |= print_skipped(db);
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
