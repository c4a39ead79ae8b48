/* output.c - writing a job's result: CSV (to a file or, whole, to
 * stdout), msgpack or q IPC. Files go to a temporary name in the same folder, are fsync'd, then
 * renamed over the target: a reader sees the old file or the whole new one. */
#include "qpeach/ipc.h"
#include "qpeach/sched.h"
#include "qpeach/table.h"
#include "core/fileio_int.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- msgpack ---- */

static int pack(msgpack_packer *pk, const qp_value *x, int depth);

static void pack_cstr(msgpack_packer *pk, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s ? s : "", n);
}

/* msgpack's timestamp extension (type -1) of ns nanoseconds since 1970:
 * wide enough for every q timestamp and numpy's extremes. */
static int pack_instant(msgpack_packer *pk, __int128 ns)
{
    __int128 s = ns / 1000000000, rem = ns % 1000000000;
    if (rem < 0) { rem += 1000000000; s--; }
    msgpack_timestamp ts = { .tv_sec = (int64_t)s, .tv_nsec = (uint32_t)rem };
    return msgpack_pack_timestamp(pk, &ts);
}

/* A temporal item (timestamp, month, date, datetime as nanoseconds since
 * 2000.01.01 in ns; durations and times of day as their count v) the one
 * way msgpack output writes them (jobs/README.md, [output] path): instants
 * and calendar days as the timestamp extension (dates and months at
 * midnight UTC of their first day), durations and times of day as counts
 * of their unit; +-infinity as numpy's int64 extremes (the timestamp of
 * pandas' Timestamp.max/min, or the count), as a Python function gets
 * them. inf: 0, 1 or -1. */
static int pack_temporal(msgpack_packer *pk, int t, __int128 ns, int64_t v, int inf)
{
    bool instant = t == QP_TIMESTAMP || t == QP_MONTH || t == QP_DATE || t == QP_DATETIME;
    if (inf) {
        int64_t x = inf > 0 ? INT64_MAX : INT64_MIN + 1;
        return instant ? pack_instant(pk, x) : msgpack_pack_int64(pk, x);
    }
    return instant ? pack_instant(pk, ns + QP_EPOCH_NANOS) : msgpack_pack_int64(pk, v);
}

/* Item i of a vector as a msgpack scalar; nulls as nil. */
static int pack_item(msgpack_packer *pk, int t, const void *data, int64_t i)
{
    const __int128 day_ns = 86400000000000LL;
    switch (t) {
    case QP_BOOL: return ((const uint8_t *)data)[i] ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    case QP_BYTE: return msgpack_pack_uint8(pk, ((const uint8_t *)data)[i]);
    case QP_SHORT: {
        int16_t h = ((const int16_t *)data)[i];
        return h == QP_NULL_H ? msgpack_pack_nil(pk) : msgpack_pack_int16(pk, h);
    }
    case QP_INT: {
        int32_t v = ((const int32_t *)data)[i];
        return v == QP_NULL_I ? msgpack_pack_nil(pk) : msgpack_pack_int32(pk, v);
    }
    case QP_MONTH: case QP_DATE: case QP_MINUTE: case QP_SECOND: case QP_TIME: {
        int32_t v = ((const int32_t *)data)[i];
        if (v == QP_NULL_I) return msgpack_pack_nil(pk);
        int inf = v == QP_INF_I ? 1 : v == -QP_INF_I ? -1 : 0;
        __int128 days = v;
        if (t == QP_MONTH) {     /* the first day of the month */
            int64_t y = v / 12 - (v % 12 < 0);
            days = qp_days_from_ymd(2000 + y, (int)(v - y * 12) + 1, 1);
        }
        return pack_temporal(pk, t, days * day_ns, v, inf);
    }
    case QP_LONG: case QP_TIMESPAN: case QP_TIMESTAMP: {
        int64_t v = ((const int64_t *)data)[i];
        if (v == QP_NULL_J) return msgpack_pack_nil(pk);
        if (t == QP_LONG) return msgpack_pack_int64(pk, v);
        return pack_temporal(pk, t, v, v, v == QP_INF_J ? 1 : v == -QP_INF_J ? -1 : 0);
    }
    case QP_REAL: return msgpack_pack_float(pk, ((const float *)data)[i]);
    case QP_FLOAT: return msgpack_pack_double(pk, ((const double *)data)[i]);
    case QP_DATETIME: {      /* days since 2000.01.01, to the millisecond as q shows it */
        double z = ((const double *)data)[i];
        if (isnan(z)) return msgpack_pack_nil(pk);
        if (isinf(z)) return pack_temporal(pk, t, 0, 0, z > 0 ? 1 : -1);
        return pack_temporal(pk, t, (__int128)llround(z * 86400000.0) * 1000000, 0, 0);
    }
    case QP_CHAR: return msgpack_pack_str_with_body(pk, (const char *)data + i, 1);
    case QP_SYMBOL: pack_cstr(pk, ((const char *const *)data)[i]); return 0;
    case QP_GUID:
        msgpack_pack_bin(pk, 16);
        return msgpack_pack_bin_body(pk, (const uint8_t *)data + 16 * i, 16);
    }
    return QP_ETYPE;
}

static int pack(msgpack_packer *pk, const qp_value *x, int depth)
{
    if (depth > 64) return QP_EDEPTH;
    int rc = 0;
    if (x->type < 0 && x->type != QP_ERROR) {
        int t = -x->type;
        const void *data = t == QP_GUID ? (const void *)x->u : t == QP_SYMBOL ? (const void *)&x->s
                                                                               : (const void *)&x->g;
        return pack_item(pk, t, data, 0);
    }
    if (x->type == QP_CHAR) return msgpack_pack_str_with_body(pk, x->v.data, (size_t)x->v.n);
    if (x->type == QP_ENUM) {     /* written as the symbols it stands for */
        msgpack_pack_array(pk, (size_t)x->v.n);
        for (int64_t i = 0; i < x->v.n; i++) pack_cstr(pk, qp_enum_sym(x, i));
        return 0;
    }
    if (qp_is_vector(x) || x->type == QP_LIST) {
        msgpack_pack_array(pk, (size_t)x->v.n);
        for (int64_t i = 0; i < x->v.n && !rc; i++)
            rc = x->type == QP_LIST ? pack(pk, qp_K(x)[i], depth + 1)
                                    : pack_item(pk, x->type, x->v.data, i);
        return rc;
    }
    if (x->type == QP_TABLE) {
        qp_value *names = qp_table_names(x), *cols = qp_table_columns(x);
        msgpack_pack_map(pk, (size_t)names->v.n);
        for (int64_t c = 0; c < names->v.n && !rc; c++) {
            pack_cstr(pk, qp_S(names)[c]);
            rc = pack(pk, qp_K(cols)[c], depth + 1);
        }
        return rc;
    }
    if (qp_is_dict(x)) {
        qp_value *k = qp_dict_keys(x), *v = qp_dict_values(x);
        if (k->type == QP_TABLE && v->type == QP_TABLE) {
            /* A keyed table: one map of all columns, keys first. */
            qp_value *kn = qp_table_names(k), *vn = qp_table_names(v);
            msgpack_pack_map(pk, (size_t)(kn->v.n + vn->v.n));
            for (int64_t c = 0; c < kn->v.n && !rc; c++) {
                pack_cstr(pk, qp_S(kn)[c]);
                rc = pack(pk, qp_K(qp_table_columns(k))[c], depth + 1);
            }
            for (int64_t c = 0; c < vn->v.n && !rc; c++) {
                pack_cstr(pk, qp_S(vn)[c]);
                rc = pack(pk, qp_K(qp_table_columns(v))[c], depth + 1);
            }
            return rc;
        }
        int64_t n = qp_count(k);
        if (n != qp_count(v)) return QP_ETYPE;
        msgpack_pack_map(pk, (size_t)n);
        for (int64_t i = 0; i < n && !rc; i++) {
            qp_value *ki = qp_item(k, i), *vi = qp_item(v, i);
            rc = !ki || !vi ? QP_ENOMEM : pack(pk, ki, depth + 1);
            if (!rc) rc = pack(pk, vi, depth + 1);
            qp_unref(ki);
            qp_unref(vi);
        }
        return rc;
    }
    if (x->type == QP_UNARY) return msgpack_pack_nil(pk);    /* (::) */
    return QP_ETYPE;
}

int qp_msgpack_encode(const qp_value *x, uint8_t **out, size_t *len)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = pack(&pk, x, 0);
    if (rc) { msgpack_sbuffer_destroy(&sb); return rc < 0 ? rc : QP_ENOMEM; }
    *out = (uint8_t *)sb.data;
    *len = sb.size;
    if (!sb.data) { *out = malloc(1); if (!*out) return QP_ENOMEM; }
    return 0;
}

/* ---- files ---- */

/* A table for CSV: keyed tables unkeyed, dicts as two columns key,value,
 * vectors as one column "x". New reference or NULL (no table shape). */
static qp_value *as_table(const qp_value *x)
{
    if (x->type == QP_TABLE) return qp_ref((qp_value *)x);
    if (qp_is_keyed_table(x)) {
        qp_value *k = qp_dict_keys(x), *v = qp_dict_values(x);
        qp_value *kn = qp_table_names(k), *vn = qp_table_names(v);
        int64_t n = kn->v.n + vn->v.n;
        qp_value *names = qp_vector(QP_SYMBOL, n), *cols = qp_vector(QP_LIST, n);
        if (!names || !cols) { qp_unref(names); qp_unref(cols); return NULL; }
        for (int64_t c = 0; c < n; c++) {
            bool key = c < kn->v.n;
            qp_S(names)[c] = key ? qp_S(kn)[c] : qp_S(vn)[c - kn->v.n];
            qp_K(cols)[c] = qp_ref(key ? qp_K(qp_table_columns(k))[c]
                                       : qp_K(qp_table_columns(v))[c - kn->v.n]);
        }
        return qp_table(qp_dict(names, cols));
    }
    if (qp_is_dict(x) && qp_is_vector(qp_dict_keys(x))
        && (qp_is_vector(qp_dict_values(x)) || qp_dict_values(x)->type == QP_LIST)) {
        qp_value *names = qp_vector(QP_SYMBOL, 2);
        if (!names) return NULL;
        qp_S(names)[0] = qp_sym_intern("key", 3);
        qp_S(names)[1] = qp_sym_intern("value", 5);
        return qp_table(qp_dict(names, qp_list(2, qp_ref(qp_dict_keys(x)),
                                               qp_ref(qp_dict_values(x)))));
    }
    if (qp_is_vector(x)) {
        qp_value *names = qp_vector(QP_SYMBOL, 1);
        if (!names) return NULL;
        qp_S(names)[0] = qp_sym_intern("x", 1);
        return qp_table(qp_dict(names, qp_list(1, qp_ref((qp_value *)x))));
    }
    if (qp_is_atom(x)) {
        qp_value *names = qp_vector(QP_SYMBOL, 1);
        qp_value *col = qp_vector(-x->type, 1);
        if (!names || !col) { qp_unref(names); qp_unref(col); return NULL; }
        qp_S(names)[0] = qp_sym_intern("x", 1);
        memcpy(col->v.data, x->type == -QP_GUID ? (const void *)x->u
                          : x->type == -QP_SYMBOL ? (const void *)&x->s : (const void *)&x->g,
               qp_type_width(-x->type));
        return qp_table(qp_dict(names, qp_list(1, col)));
    }
    return NULL;
}

/* x as CSV to out (stdout): the whole value in the output format. */
static int write_stdout(const qp_value *x, bool q_text, FILE *out, char *err, size_t errlen)
{
    qp_value *t = as_table(x);
    int rc = !t || qp_is_error(t) ? QP_ETYPE : qp_csv_fwrite(t, out, !q_text);
    if (rc == QP_ETYPE)
        snprintf(err, errlen, "stdout: a %s result cannot be written as CSV (write it to a "
                 ".qipc or .msgpack path, or see it with --show)", qp_type_name(x->type));
    else if (rc)
        snprintf(err, errlen, "stdout: %s", qp_strerror(rc));
    qp_unref(t);
    return rc;
}

int qp_output_write(const qp_value *x, const char *path, bool q_text, FILE *out, char *err,
                    size_t errlen)
{
    if (!strcmp(path, "-")) return write_stdout(x, q_text, out, err, errlen);
    const char *dot = strrchr(path, '.');
    bool csv = dot && !strcmp(dot, ".csv");
    qp_value *t = csv ? as_table(x) : NULL;
    if (csv && (!t || qp_is_error(t))) {
        snprintf(err, errlen, "%s: a %s result cannot be written as CSV", path,
                 qp_type_name(x->type));
        qp_unref(t);
        return QP_ETYPE;
    }
    uint8_t *bytes = NULL;
    size_t len = 0;
    int rc = 0;
    if (!csv && dot && !strcmp(dot, ".msgpack")) rc = qp_msgpack_encode(x, &bytes, &len);
    else if (!csv) rc = qp_ipc_encode(x, QP_MSG_ASYNC, &bytes, &len);
    /* 0666 less the umask, as q's files and every other file we write */
    qp__replace r;
    if (!rc) rc = qp__replace_begin(&r, path, 0666);
    if (!rc) {
        /* the CSV writer opens the temporary file by name; commit syncs it
         * through r.fd all the same (one file) */
        rc = csv ? qp_csv_write_iso(t, r.tmp, !q_text) : qp__write_all(r.fd, bytes, len);
        if (rc) qp__replace_abort(&r);
        else rc = qp__replace_commit(&r);
    }
    if (rc) snprintf(err, errlen, "%s: %s", path, qp_strerror(rc));
    qp_unref(t);
    free(bytes);
    return rc;
}
