/* tableload.c - qp_table_load: a table from a file by its kind, for
 * `serve --load`, `.qp.load` and a job's input: a CSV, a kdb+ splayed
 * folder, or a q IPC file. It sits above the CSV and IPC readers (core)
 * because of the splayed folder. */
#include "qpeach/kdb.h"
#include "qpeach/table.h"

#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* A folder: a kdb+ splayed table (its enumerations resolved against the
 * db root above it), mapped, with enumerated columns kept as type 20 so
 * Python gets zero-copy Categoricals. */
static qp_value *splayed_load(const char *path)
{
    char err[512];
    qp_kdb *db = NULL;
    if (qp_kdb_open(path, &db, err, sizeof err)) return qp_error("%s", err);
    qp_value *names = qp_kdb_tables(db);
    qp_value *t = names && names->v.n == 1 ? qp_kdb_table(db, qp_S(names)[0], QP_KDB_ENUMS)
                : names ? qp_error("%s: not one splayed table", path) : NULL;
    qp_unref(names);
    qp_kdb_close(db);          /* the table keeps its mappings */
    return t;
}

qp_value *qp_table_load(const char *path, const qp_csv_opts *opts)
{
    size_t n = strlen(path);
    struct stat st;
    if (n >= 4 && strcasecmp(path + n - 4, ".csv") == 0) return qp_csv_load(path, opts);
    if (!stat(path, &st) && S_ISDIR(st.st_mode)) return splayed_load(path);
    return qp_ipcfile_load(path);
}
