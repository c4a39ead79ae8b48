/* qpeach/value.h - the q value model: one refcounted tagged value, after k.h.
 *
 * Memory rules (they hold for every qp_ function in every module):
 *   - A qp_value has a reference count. qp_ref() adds one reference and returns
 *     its argument; qp_unref() drops one and frees the value when none is left.
 *     qp_unref(NULL) is a no-op. Counts are atomic: a value may be shared by
 *     threads, but a value is only mutated while its count is 1 and it has
 *     not been published to another thread.
 *   - "Returns a new reference": the caller owns one reference and must
 *     qp_unref() it. "Steals x": the callee takes over the caller's reference
 *     to x (even on failure). "Borrowed": no reference changes hands; the
 *     pointer is valid while the owner keeps its reference.
 *   - Constructors return NULL only on out-of-memory.
 *   - Symbols are interned (qp_sym_intern) for the life of the process, as in
 *     kdb+: a `const char *` symbol is never freed and two equal symbols have
 *     equal pointers, so symbol comparison is pointer comparison.
 *   - The items of a vector (types 1..19) always live in a refcounted
 *     qp_buf: one of its own, or a received message (zero-copy decode), or
 *     another vector's (a slice). The vector holds one buffer reference.
 *     Items are shared, read-only, when the buffer has other references:
 *     qp_vec_append() copies them out first. General lists, dicts and tables
 *     hold a malloc'd array of child references.
 */
#ifndef QPEACH_VALUE_H
#define QPEACH_VALUE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- Error codes: functions return 0 or one of these (negative). ---- */
#define QP_ERRORS(X)                                                    \
    X(NOMEM,    -1001, "out of memory")                                 \
    X(TRUNC,    -1002, "message truncated")                             \
    X(TOOBIG,   -1003, "message larger than the limit")                 \
    X(DEPTH,    -1004, "value nested too deep")                         \
    X(TYPE,     -1005, "unknown or unsupported type")                   \
    X(CORRUPT,  -1006, "corrupt data")                                  \
    X(NOGAIN,   -1007, "compression would not halve the message")       \
    X(PROTO,    -1008, "protocol error")                                \
    X(AUTH,     -1009, "access denied")                                 \
    X(TIMEOUT,  -1010, "timed out")                                     \
    X(CLOSED,   -1011, "connection closed")                             \
    X(TLS,      -1012, "TLS error")                                     \
    X(ADDR,     -1013, "bad address")                                   \
    X(ARG,      -1014, "bad argument")                                  \
    X(QERR,     -1015, "q error")                                       \
    X(IO,       -1016, "I/O error")                                     \
    X(PYTHON,   -1017, "Python error")

enum qp_errcode {
#define QP__ERR_ENUM(name, code, text) QP_E##name = code,
    QP_ERRORS(QP__ERR_ENUM)
#undef QP__ERR_ENUM
};

/* Text for a code returned by any qp_ function: QP_E* codes or -errno.
 * Returns a static string. */
const char *qp_strerror(int code);

/* ---- Type codes: exactly the kdb+ wire codes. Atoms are negative. ---- */
enum qp_type {
    QP_LIST = 0,
    QP_BOOL = 1, QP_GUID = 2, QP_BYTE = 4, QP_SHORT = 5, QP_INT = 6,
    QP_LONG = 7, QP_REAL = 8, QP_FLOAT = 9, QP_CHAR = 10, QP_SYMBOL = 11,
    QP_TIMESTAMP = 12, QP_MONTH = 13, QP_DATE = 14, QP_DATETIME = 15,
    QP_TIMESPAN = 16, QP_MINUTE = 17, QP_SECOND = 18, QP_TIME = 19,
    QP_ENUM = 20,          /* enumerated symbols, as read from kdb+ files */
    QP_TABLE = 98, QP_DICT = 99,
    QP_LAMBDA = 100, QP_UNARY = 101, QP_BINARY = 102, QP_TERNARY = 103,
    QP_PROJECTION = 104, QP_COMPOSITION = 105,
    QP_EACH = 106, QP_OVER = 107, QP_SCAN = 108, QP_EACHPRIOR = 109,
    QP_EACHRIGHT = 110, QP_EACHLEFT = 111, QP_DYNLOAD = 112,
    QP_SORTED_DICT = 127,
    QP_ERROR = -128,
};

/* Attributes, as on the wire. */
enum qp_attr { QP_ATTR_NONE = 0, QP_ATTR_SORTED = 1, QP_ATTR_UNIQUE = 2,
               QP_ATTR_PARTED = 3, QP_ATTR_GROUPED = 5 };

/* ---- q's nulls and infinities. ---- */
#define QP_NULL_H   INT16_MIN
#define QP_INF_H    INT16_MAX
#define QP_NULL_I   INT32_MIN
#define QP_INF_I    INT32_MAX
#define QP_NULL_J   INT64_MIN
#define QP_INF_J    INT64_MAX
#define QP_NULL_F   (__builtin_nan(""))
#define QP_INF_F    (__builtin_inf())
#define QP_NULL_E   (__builtin_nanf(""))
#define QP_INF_E    (__builtin_inff())
#define QP_NULL_C   ' '
/* q's null symbol is the empty symbol: qp_sym_intern("", 0). */

/* Days and nanoseconds between 1970.01.01 and q's epoch 2000.01.01. */
#define QP_EPOCH_DAYS  10957
#define QP_EPOCH_NANOS (10957LL * 86400LL * 1000000000LL)

/* A date as q counts it, days since 2000.01.01, from the proleptic
 * Gregorian year, month (1-12) and day, and back (H. Hinnant's civil
 * algorithms; no range is checked). */
int64_t qp_days_from_ymd(int64_t y, int m, int d);
void qp_ymd_from_days(int64_t days, int *y, int *m, int *d);

/* ---- Refcounted byte buffer: the home of received messages. ---- */
typedef struct qp_buf {
    atomic_int refs;       /* references; freed at zero */
    size_t len;            /* usable bytes at data */
    uint8_t *data;         /* start of the bytes: base + skew */
    void *base;            /* the malloc'd block, freed with the buffer */
    size_t maplen;         /* nonzero: base is a read-only mmap of this
                            * many bytes, munmap'd with the buffer */
} qp_buf;

/* A buffer of len bytes (contents undefined), data 16-byte aligned;
 * returns a new reference, NULL on OOM. */
qp_buf *qp_buf_new(size_t len);
/* Same, with data % 16 == skew % 16: lets a reader place a message so
 * that the vectors inside it land aligned (zero-copy decode). */
qp_buf *qp_buf_new_skewed(size_t len, size_t skew);
/* Grows (or shrinks) a buffer that has one reference; may move data.
 * Returns 0 or QP_ENOMEM (the buffer is unchanged then). */
int qp_buf_resize(qp_buf *b, size_t len);
/* A buffer viewing the first len bytes of open file fd, mapped read-only
 * and shared (every process mapping the file shares its page cache). The
 * fd may be closed afterwards. len 0 gives an empty buffer. Returns 0 or
 * -errno / QP_ENOMEM; *out gets a new reference. */
int qp_buf_map(int fd, size_t len, qp_buf **out);
qp_buf *qp_buf_ref(qp_buf *b);          /* returns b */
void qp_buf_unref(qp_buf *b);           /* NULL-safe */

/* ---- The value. ---- */
typedef struct qp_value qp_value;
struct qp_value {
    int8_t type;           /* enum qp_type: wire code */
    uint8_t attr;          /* enum qp_attr, for vectors */
    uint8_t pad[2];
    atomic_int refs;       /* references; freed at zero */
    union {
        /* atoms */
        uint8_t g;         /* bool, byte */
        int16_t h;         /* short */
        int32_t i;         /* int, month, date, minute, second, time */
        int64_t j;         /* long, timestamp, timespan */
        float e;           /* real */
        double f;          /* float, datetime */
        char c;            /* char */
        const char *s;     /* symbol: interned; error: owned message text */
        uint8_t u[16];     /* guid */
        /* vectors (1..19), general lists (0), dicts (99/127: n = 2, keys
         * then values), tables (98: n = 1, the column dict), functions
         * (100..112: opaque wire bytes after the type byte, n = byte count) */
        struct {
            int64_t n;     /* item count */
            int64_t cap;   /* items allocated (owned data only) */
            void *data;    /* items: see qp_J() etc.; qp_value ** for 0/98/99 */
            qp_buf *owner; /* vectors: the buffer holding data; else NULL */
            qp_value *dom; /* enums (20): the domain, a symbol vector
                            * (one reference); else NULL */
        } v;
    };
};

/* ---- Lifetime. ---- */
static inline qp_value *qp_ref(qp_value *x)
{
    if (x) atomic_fetch_add_explicit(&x->refs, 1, memory_order_relaxed);
    return x;
}
void qp_unref(qp_value *x);   /* NULL-safe; frees children */

/* ---- Typed accessors (no checks: callers know the type). ---- */
#define QP__ACC(name, ctype) \
    static inline ctype *name(const qp_value *x) { return (ctype *)x->v.data; }
QP__ACC(qp_G, uint8_t)        /* bool, byte */
QP__ACC(qp_H, int16_t)
QP__ACC(qp_I, int32_t)        /* int, month, date, minute, second, time */
QP__ACC(qp_J, int64_t)        /* long, timestamp, timespan */
QP__ACC(qp_E, float)
QP__ACC(qp_F, double)         /* float, datetime */
QP__ACC(qp_C, char)
QP__ACC(qp_S, const char *)   /* symbols, interned */
QP__ACC(qp_U, uint8_t)        /* guids: 16 bytes each */
QP__ACC(qp_K, qp_value *)     /* list items; dict keys/values; table dict */
#undef QP__ACC

static inline bool qp_is_atom(const qp_value *x) { return x->type < 0 && x->type != QP_ERROR; }
static inline bool qp_is_vector(const qp_value *x) { return x->type >= 1 && x->type <= 19; }
static inline bool qp_is_error(const qp_value *x) { return x->type == QP_ERROR; }
static inline bool qp_is_func(const qp_value *x) { return x->type >= 100 && x->type <= 112; }
static inline bool qp_is_dict(const qp_value *x) { return x->type == QP_DICT || x->type == QP_SORTED_DICT; }

/* Item width in bytes of vector type t (1..19), 0 for general lists and
 * others. Symbols count as pointer width (in memory, not on the wire). */
size_t qp_type_width(int t);
/* Name of a type, as q's type names: "long", "symbol", "table", ... */
const char *qp_type_name(int t);

/* Count as q's `count`: 1 for atoms, n for vectors and lists, key count for
 * dicts, row count for tables. */
int64_t qp_count(const qp_value *x);

/* ---- Constructors: all return a new reference (NULL on OOM). ---- */
qp_value *qp_atom(int type);                 /* zeroed atom of type (< 0) */
qp_value *qp_bool(bool b);
qp_value *qp_byte(uint8_t g);
qp_value *qp_short(int16_t h);
qp_value *qp_int(int32_t i);
qp_value *qp_long(int64_t j);
qp_value *qp_real(float e);
qp_value *qp_float(double f);
qp_value *qp_char(char c);
qp_value *qp_symbol(const char *s);          /* interns s */
qp_value *qp_guid(const uint8_t u[16]);
qp_value *qp_temporal_i(int type, int32_t i); /* month/date/minute/second/time */
qp_value *qp_temporal_j(int type, int64_t j); /* timestamp/timespan */
qp_value *qp_identity(void);                  /* q's (::): type 101, byte 0 */
qp_value *qp_string(const char *s, size_t n); /* char vector, copies */
qp_value *qp_cstring(const char *s);          /* char vector of a C string */
/* Error value (-128) with a printf-style message (copied). */
qp_value *qp_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Vector of type t (0..19) with n items (zeroed; 0-lists get NULLs, which
 * must be filled before use), capacity >= n. */
qp_value *qp_vector(int type, int64_t n);
/* Vector of type t (1..19) viewing n items at data inside buf (adds a buf
 * reference; copies nothing). For symbols, data holds const char * items. */
qp_value *qp_vector_borrow(int type, int64_t n, void *data, qp_buf *buf);
/* Items [start, start+n) of a vector or list, clamped to its count: a view
 * for vectors (no copy), new references to the items for lists. */
qp_value *qp_slice(const qp_value *x, int64_t start, int64_t n);
/* Rows [start, start+n) of a table: every column sliced as above. */
qp_value *qp_table_slice(const qp_value *t, int64_t start, int64_t n);
/* The items of n vectors or general lists, in order, in a new vector (a
 * list's items are shared). Types must agree, but symbols and enumerations
 * mix: enumerations all over one domain stay an enumeration (indices
 * copied), anything else comes out as symbols. New reference, an error
 * value naming the types that differ, or NULL on OOM. */
qp_value *qp_concat(qp_value *const *v, int64_t n);
/* The rows of n (>= 1) tables with the same column names, in order: each
 * column as qp_concat, matched by name in the first table's order (one
 * table is returned itself, so views of a mapped file stay views). New
 * reference, an error value (naming the column, or both sets of names),
 * or NULL on OOM. */
qp_value *qp_table_concat(qp_value *const *t, int64_t n);
/* The columns of table t named by names (a symbol vector), in that order,
 * sharing t's columns (no copy). New reference; an error value naming a
 * column t lacks and listing t's (what names t in it: "trade"); NULL on
 * OOM. */
qp_value *qp_table_pick(const qp_value *t, const qp_value *names, const char *what);
/* Appends one item (for lists: steals *(qp_value **)item). May move the data;
 * copies borrowed data out first. Returns 0 or QP_ENOMEM. */
int qp_vec_append(qp_value *x, const void *item);
/* A general list of n items; steals every item. */
qp_value *qp_list(int64_t n, ...);
/* Dict keys!values; steals both. sorted: type 127 instead of 99. */
qp_value *qp_dict(qp_value *keys, qp_value *values);
qp_value *qp_dict_sorted(qp_value *keys, qp_value *values);
/* Table from a dict of symbol keys -> list of equal-length columns; steals
 * it. Returns an error value (-128) if the shape is wrong. */
qp_value *qp_table(qp_value *dict);
/* Opaque function value: n wire bytes after the type byte (copied). */
qp_value *qp_func(int type, const uint8_t *bytes, size_t n);

/* ---- Enumerations (type 20). ----
 * An enumerated symbol column as kdb+ keeps it on disk: int64 indices into
 * a domain (a symbol vector, e.g. the db's `sym` file). The indices usually
 * view a mapped column file (zero-copy); the domain is shared by every
 * column enumerated against it. Index i means dom[i]; 0Nj (QP_NULL_J) is
 * the null symbol. Constructors check every index against the domain and
 * return an error value (-128) naming the first bad one. Type 20 travels
 * nowhere as itself: the IPC encoder, formatting, CSV output and equality
 * see it as the symbol vector it stands for (qp_enum_resolve); only the
 * Python conversion uses the indices directly (Categorical codes).
 * Width 8 (qp_type_width(20) == 8); qp_slice views it like a vector. */
/* n indices at idx inside buf (adds a buf reference, copies nothing);
 * steals dom. New reference, or an error value for an index beyond dom. */
qp_value *qp_enum_borrow(int64_t n, const int64_t *idx, qp_buf *buf, qp_value *dom);
/* The check those constructors make: the position of the first of n
 * indices that is neither 0Nj nor below ndom, or -1 when all are good. */
int64_t qp_enum_check(const int64_t *idx, int64_t n, int64_t ndom);
/* The symbol vector an enum stands for (a new vector of interned symbols;
 * dom's symbols, no string is interned again). New reference. For any
 * other value: returns a new reference to x itself. */
qp_value *qp_enum_resolve(const qp_value *x);
/* Symbol of row i of enum e (interned; the null symbol for 0Nj). Borrowed.
 * No bounds check: 0 <= i < e->v.n. */
const char *qp_enum_sym(const qp_value *e, int64_t i);

/* ---- Dicts and tables (borrowed results). ---- */
static inline qp_value *qp_dict_keys(const qp_value *d) { return qp_K(d)[0]; }
static inline qp_value *qp_dict_values(const qp_value *d) { return qp_K(d)[1]; }
static inline qp_value *qp_table_dict(const qp_value *t) { return qp_K(t)[0]; }
/* Column names (symbol vector) and columns (general list) of a table. */
static inline qp_value *qp_table_names(const qp_value *t) { return qp_dict_keys(qp_table_dict(t)); }
static inline qp_value *qp_table_columns(const qp_value *t) { return qp_dict_values(qp_table_dict(t)); }
/* Column by name, or NULL. Borrowed. */
qp_value *qp_table_column(const qp_value *t, const char *name);
/* True for a keyed table: a dict whose keys and values are both tables. */
bool qp_is_keyed_table(const qp_value *x);

/* Item i of any list-like value as a new value (atom for vectors, the item
 * itself for general lists). New reference. */
qp_value *qp_item(const qp_value *x, int64_t i);

/* ---- Symbols. ---- */
/* The interned copy of s[0..n), which ends at a NUL if s[0..n) holds one
 * (a symbol is a C string): thread-safe; never freed. NULL on OOM. */
const char *qp_sym_intern(const char *s, size_t n);
/* A name as q sends one: a symbol, a string or a one-char atom, interned;
 * NULL for any other value (or on OOM). */
const char *qp_name_of(const qp_value *x);
/* The first n names of symbol vector syms as "a, b, c" into buf (cap
 * bytes, NUL-terminated, cut short when full): for messages. */
void qp_syms_text(char *buf, size_t cap, const qp_value *syms, int64_t n);

/* ---- Comparison and printing. ---- */
/* Deep equality: same type, attribute, count and items (NaN equals NaN,
 * as q's ~ match). */
bool qp_equal(const qp_value *a, const qp_value *b);
/* One item of vector type t (1..19) as q's = compares it, for grouping:
 * -0.0 as 0.0 and every NaN as the one float null (real, float,
 * datetime); other types as they are. qp_type_width(t) bytes from src to
 * dst (which may be src). Equal items get equal bytes, so memcmp and
 * hashing of the keys group as q does (distinct, by-column partitions,
 * sum-by-key keys). */
void qp_item_key(int t, const void *src, void *dst);
/* Whether items a and b of vector type t are equal as qp_item_key says. */
bool qp_item_eq(int t, const void *a, const void *b);
/* Distinct items of a vector (or the symbols of an enumeration) in sorted
 * order: symbols by bytes, numbers numerically, the null first; equal as
 * qp_item_key says, each kept as its key. New reference, or an error
 * value for unsupported types. */
qp_value *qp_distinct_sorted(const qp_value *v);

#endif
