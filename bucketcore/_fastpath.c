/* bucketcore._fastpath: try_acquire, acquire and peek of memory:// (and the
 * single-limit try_acquire and acquire of rocksdb:// in wal mode) in C.
 *
 * The pure-Python MemoryStore (bucketcore/memory.py) is the reference and
 * decides every case; this module only answers the commonest call faster:
 * up to eight Limits, an ASCII str key, an int cost, numbers within 125 bits.
 * Anything else is handed, unchanged, to the Python method it stands in for,
 * so both paths share one lock, one set of tables and one arithmetic
 * (see bucketcore/_gcra.py for its derivation).
 *
 * Why C: a decision in Python costs a few hundred nanoseconds, most of it
 * interpreter overhead, next to a dict, a lock and a clock read that every
 * exact limiter pays. docs/design.md §6 asks for that floor.
 *
 * Write-through (rocksdb:// in wal mode): given `put`, an allowed decision on
 * a resident bucket under the call's limit is written as its fixed 57-byte
 * record (the limit's signature, no hold) before memory changes, as
 * backends/rocksdb/records.py encodes it. A bucket not in memory, a changed
 * limit or a drain's hold, a failed write, or a clock-step clamp is left to
 * the Python path.
 *
 *     store = MemoryStore()              # FastPath(store, record_writer=None)
 *     store.checked_try_acquire("alice", Limit(10, 1.0))   -> True
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#ifndef Py_T_OBJECT_EX /* before 3.12 the member types lived in structmember.h */
#include <structmember.h>
#define Py_T_OBJECT_EX T_OBJECT_EX
#endif

#include <math.h>
#include <stdint.h>
#include <time.h>

#ifndef __SIZEOF_INT128__
#error "bucketcore._fastpath needs a compiler with __int128 (the build skips it otherwise)"
#endif

/* Clock readings, unit ratios and costs below 2**63 (products below 2**126),
 * states and capacities below 2**125: every sum below stays under 2**127.
 * A stored state may grow past 2**125; reading it back then falls back. */
typedef __int128 wide;
#define WIDE_LIMIT ((wide)1 << 125)

#define NEVER (-1) /* retry_ns when the cost exceeds the burst */
#define EXACT_FLOAT_INT (1LL << 53)

/* What fast_decide concluded: a decision, or "let the Python path decide". */
enum { DECIDE_ERROR = -1, DECIDE_FALL_BACK = 0, DECIDE_DONE = 1 };

typedef struct {
    int allowed;
    wide remaining;
    wide retry_ns;
    wide reset_ns;
} Outcome;

typedef struct {
    PyObject_HEAD
    PyObject *tables;           /* dict: identity -> {key: [tat, limit]} */
    PyObject *lock_acquire;     /* bound methods of the store's threading.Lock */
    PyObject *lock_release;
    PyObject *clock;            /* NULL: read CLOCK_MONOTONIC directly */
    PyObject *limit_type;
    PyObject *decision_type;
    PyObject *slow_try_acquire; /* the Python methods this one stands in for */
    PyObject *slow_acquire;
    PyObject *slow_peek;
    PyObject *create;           /* store._create(limit, key, tat, now_ns) */
    PyObject *rebind; /* _buckets.rebind via store._rebind: false hands the call to Python */
    PyObject *sweep_after_calls; /* store._sweep_after_calls(), every calls_per_sweep calls */
    long calls_per_sweep;
    long calls_until_sweep;
    PyObject *seconds_at_least; /* decision.seconds_at_least(ns), for >= 2**53 ns */
    Py_ssize_t max_key_length;
    int closed;                 /* after close(): every call takes the Python path */
    /* Write-through, or put == NULL: put(record_key, record, write_options). */
    PyObject *put;
    PyObject *write_options;
    PyObject *wall_clock;       /* NULL: read CLOCK_REALTIME directly */
    PyObject *record_prefixes;  /* dict: identity -> record-key prefix (bytes) */
    int record_version;
    /* Byte offsets of the slots read from a Limit and written into a Decision. */
    Py_ssize_t limit_identity, limit_units_per_ns, limit_token_units, limit_capacity_units;
    Py_ssize_t decision_allowed, decision_remaining, decision_retry_after;
    Py_ssize_t decision_reset_after, decision_limit, decision_degraded;
} FastPath;

static PyObject *cost_name;    /* interned "cost" */
static PyObject *monotonic_ns; /* time.monotonic_ns, the default clock */
static PyObject *time_ns;      /* time.time_ns, the default wall clock */

/* struct "<BqQQQQqQ": version, full-at wall ns, remainder, units, token units,
 * burst, held-until wall ns, held-for ns (0, 0: no hold; C never writes one) */
#define RECORD_SIZE 57

#define SLOT(object, offset) (*(PyObject **)((char *)(object) + (offset)))

/* -- construction --------------------------------------------------------- */

/* The offset of slot `name` of a slotted class, from its member descriptor. */
static int
slot_offset(PyObject *type, const char *name, Py_ssize_t *offset)
{
    PyObject *descriptor = PyObject_GetAttrString(type, name);
    if (descriptor == NULL) {
        return -1;
    }
    if (!Py_IS_TYPE(descriptor, &PyMemberDescr_Type)
        || ((PyMemberDescrObject *)descriptor)->d_member->type != Py_T_OBJECT_EX) {
        PyErr_Format(PyExc_TypeError, "%R.%s is not a slot", type, name);
        Py_DECREF(descriptor);
        return -1;
    }
    *offset = ((PyMemberDescrObject *)descriptor)->d_member->offset;
    Py_DECREF(descriptor);
    return 0;
}

/* getattr(object, name), or NULL with an exception. */
static PyObject *
attribute(PyObject *object, const char *name)
{
    return PyObject_GetAttrString(object, name);
}

/* An attribute of module `module_name`. */
static PyObject *
module_attribute(const char *module_name, const char *name)
{
    PyObject *module = PyImport_ImportModule(module_name);
    if (module == NULL) {
        return NULL;
    }
    PyObject *value = PyObject_GetAttrString(module, name);
    Py_DECREF(module);
    return value;
}

/* FastPath(store, record_writer=None). From the MemoryStore `store`: its
 * tables, lock, clock, _create, _rebind and the checked_* methods
 * bound now (the Python path this one hands calls to). From
 * `record_writer` (rocksdb wal, see backends/rocksdb/persistence.py): put,
 * write_options, wall_clock, record_prefixes, record_version, record_size. */
static int
FastPath_init(FastPath *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"store", "record_writer", NULL};
    PyObject *store = NULL, *writer = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O:FastPath", keywords, &store, &writer)) {
        return -1;
    }
    PyObject *tables = NULL, *lock = NULL, *clock = NULL, *limit_type = NULL;
    PyObject *decision_type = NULL, *slow_try_acquire = NULL, *slow_acquire = NULL;
    PyObject *slow_peek = NULL, *create = NULL, *rebind = NULL;
    PyObject *seconds_at_least = NULL, *max_key = NULL, *put = NULL, *write_options = NULL;
    PyObject *sweep_after_calls = NULL, *sweep_every = NULL;
    long calls_per_sweep = 0;
    PyObject *wall_clock = NULL, *record_prefixes = NULL, *version = NULL, *size = NULL;
    int status = -1;
    Py_ssize_t max_key_length = -1;
    long record_version = 0, record_size = 0;
    if ((tables = attribute(store, "_tables")) == NULL || (lock = attribute(store, "_lock")) == NULL
        || (clock = attribute(store, "_clock")) == NULL
        || (slow_try_acquire = attribute(store, "checked_try_acquire")) == NULL
        || (slow_acquire = attribute(store, "checked_acquire")) == NULL
        || (slow_peek = attribute(store, "checked_peek")) == NULL
        || (create = attribute(store, "_create")) == NULL
        || (rebind = attribute(store, "_rebind")) == NULL
        || (sweep_after_calls = attribute(store, "_sweep_after_calls")) == NULL
        || (sweep_every = attribute(store, "_sweep_every_calls")) == NULL
        || (limit_type = module_attribute("bucketcore.limit", "Limit")) == NULL
        || (decision_type = module_attribute("bucketcore.decision", "Decision")) == NULL
        || (seconds_at_least = module_attribute("bucketcore.decision", "seconds_at_least")) == NULL
        || (max_key = module_attribute("bucketcore._keys", "MAX_KEY_BYTES")) == NULL) {
        goto done;
    }
    if (!PyDict_CheckExact(tables) || !PyType_Check(limit_type) || !PyType_Check(decision_type)) {
        PyErr_SetString(PyExc_TypeError, "FastPath needs a MemoryStore");
        goto done;
    }
    if ((max_key_length = PyLong_AsSsize_t(max_key)) < 0) {
        goto done;
    }
    if ((calls_per_sweep = PyLong_AsLong(sweep_every)) < 1) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "_sweep_every_calls must be a positive int");
        }
        goto done;
    }
    if (writer != Py_None) {
        if ((put = attribute(writer, "put")) == NULL
            || (write_options = attribute(writer, "write_options")) == NULL
            || (wall_clock = attribute(writer, "wall_clock")) == NULL
            || (record_prefixes = attribute(writer, "record_prefixes")) == NULL
            || (version = attribute(writer, "record_version")) == NULL
            || (size = attribute(writer, "record_size")) == NULL) {
            goto done;
        }
        record_version = PyLong_AsLong(version);
        record_size = PyLong_AsLong(size);
        if (PyErr_Occurred()) {
            goto done;
        }
        /* The record this file writes is the one backends/rocksdb/records.py states. */
        if (!PyDict_CheckExact(record_prefixes) || record_version < 0 || record_version > 255
            || record_size != RECORD_SIZE) {
            PyErr_SetString(PyExc_TypeError,
                            "record_writer does not match the C record (a version byte, "
                            "record_prefixes a dict, record_size 57)");
            goto done;
        }
    }
    if (self->tables != NULL) {
        PyErr_SetString(PyExc_TypeError, "FastPath is initialised once");
        goto done;
    }
    if (((PyTypeObject *)decision_type)->tp_dictoffset != 0) {
        PyErr_SetString(PyExc_TypeError, "decision_type must be a slotted class");
        goto done;
    }
    if (slot_offset(limit_type, "identity", &self->limit_identity) < 0
        || slot_offset(limit_type, "units_per_ns", &self->limit_units_per_ns) < 0
        || slot_offset(limit_type, "token_units", &self->limit_token_units) < 0
        || slot_offset(limit_type, "capacity_units", &self->limit_capacity_units) < 0
        || slot_offset(decision_type, "allowed", &self->decision_allowed) < 0
        || slot_offset(decision_type, "remaining", &self->decision_remaining) < 0
        || slot_offset(decision_type, "retry_after", &self->decision_retry_after) < 0
        || slot_offset(decision_type, "reset_after", &self->decision_reset_after) < 0
        || slot_offset(decision_type, "limit", &self->decision_limit) < 0
        || slot_offset(decision_type, "degraded", &self->decision_degraded) < 0) {
        goto done;
    }
    PyObject *lock_acquire = PyObject_GetAttrString(lock, "acquire");
    if (lock_acquire == NULL) {
        goto done;
    }
    PyObject *lock_release = PyObject_GetAttrString(lock, "release");
    if (lock_release == NULL) {
        Py_DECREF(lock_acquire);
        goto done;
    }
    self->tables = Py_NewRef(tables);
    self->lock_acquire = lock_acquire;
    self->lock_release = lock_release;
#ifdef __linux__
    /* On Linux time.monotonic_ns is clock_gettime(CLOCK_MONOTONIC): the same
     * numbers without a call, so both paths still share one clock. */
    self->clock = clock == monotonic_ns ? NULL : Py_NewRef(clock);
#else
    self->clock = Py_NewRef(clock);
#endif
    self->limit_type = Py_NewRef(limit_type);
    self->decision_type = Py_NewRef(decision_type);
    self->slow_try_acquire = Py_NewRef(slow_try_acquire);
    self->slow_acquire = Py_NewRef(slow_acquire);
    self->slow_peek = Py_NewRef(slow_peek);
    self->create = Py_NewRef(create);
    self->rebind = Py_NewRef(rebind);
    self->sweep_after_calls = Py_NewRef(sweep_after_calls);
    self->calls_per_sweep = self->calls_until_sweep = calls_per_sweep;
    self->seconds_at_least = Py_NewRef(seconds_at_least);
    self->max_key_length = max_key_length;
    if (put != NULL) {
        self->put = Py_NewRef(put);
        self->write_options = Py_NewRef(write_options);
#ifdef __linux__
        self->wall_clock = wall_clock == time_ns ? NULL : Py_NewRef(wall_clock);
#else
        self->wall_clock = Py_NewRef(wall_clock);
#endif
        self->record_prefixes = Py_NewRef(record_prefixes);
        self->record_version = record_version;
    }
    status = 0;
done:
    Py_XDECREF(tables);
    Py_XDECREF(lock);
    Py_XDECREF(clock);
    Py_XDECREF(limit_type);
    Py_XDECREF(decision_type);
    Py_XDECREF(slow_try_acquire);
    Py_XDECREF(slow_acquire);
    Py_XDECREF(slow_peek);
    Py_XDECREF(create);
    Py_XDECREF(rebind);
    Py_XDECREF(sweep_after_calls);
    Py_XDECREF(sweep_every);
    Py_XDECREF(seconds_at_least);
    Py_XDECREF(max_key);
    Py_XDECREF(put);
    Py_XDECREF(write_options);
    Py_XDECREF(wall_clock);
    Py_XDECREF(record_prefixes);
    Py_XDECREF(version);
    Py_XDECREF(size);
    return status;
}

/* The bound methods refer back to the store, which refers to this object. */
static int
FastPath_traverse(FastPath *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->tables);
    Py_VISIT(self->lock_acquire);
    Py_VISIT(self->lock_release);
    Py_VISIT(self->clock);
    Py_VISIT(self->limit_type);
    Py_VISIT(self->decision_type);
    Py_VISIT(self->slow_try_acquire);
    Py_VISIT(self->slow_acquire);
    Py_VISIT(self->slow_peek);
    Py_VISIT(self->create);
    Py_VISIT(self->rebind);
    Py_VISIT(self->sweep_after_calls);
    Py_VISIT(self->seconds_at_least);
    Py_VISIT(self->put);
    Py_VISIT(self->write_options);
    Py_VISIT(self->wall_clock);
    Py_VISIT(self->record_prefixes);
    return 0;
}

static int
FastPath_clear(FastPath *self)
{
    Py_CLEAR(self->tables);
    Py_CLEAR(self->lock_acquire);
    Py_CLEAR(self->lock_release);
    Py_CLEAR(self->clock);
    Py_CLEAR(self->limit_type);
    Py_CLEAR(self->decision_type);
    Py_CLEAR(self->slow_try_acquire);
    Py_CLEAR(self->slow_acquire);
    Py_CLEAR(self->slow_peek);
    Py_CLEAR(self->create);
    Py_CLEAR(self->rebind);
    Py_CLEAR(self->sweep_after_calls);
    Py_CLEAR(self->seconds_at_least);
    Py_CLEAR(self->put);
    Py_CLEAR(self->write_options);
    Py_CLEAR(self->wall_clock);
    Py_CLEAR(self->record_prefixes);
    return 0;
}

static void
FastPath_dealloc(FastPath *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    FastPath_clear(self);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

/* -- the decision ----------------------------------------------------------- */

/* An exact int that fits in 64 bits; 0 if `value` is anything else. */
static int
as_int64(PyObject *value, long long *out)
{
    if (value == NULL || !PyLong_CheckExact(value)) {
        return 0;
    }
    int overflow;
    *out = PyLong_AsLongLongAndOverflow(value, &overflow);
    return !overflow; /* an exact int cannot fail otherwise */
}

/* An exact int below WIDE_LIMIT in size: 1, or 0 if not, or -1 on error.
 * Most values fit 64 bits; burst * period can need more (1e12 tokens/hour). */
static int
as_wide(PyObject *value, wide *out)
{
    if (value == NULL || !PyLong_CheckExact(value)) {
        return 0;
    }
    int overflow;
    long long narrow = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (!overflow) {
        *out = narrow;
        return 1;
    }
    unsigned char bytes[16]; /* little-endian two's complement */
#if PY_VERSION_HEX >= 0x030D0000
    Py_ssize_t needed = PyLong_AsNativeBytes(value, bytes, sizeof bytes,
                                             Py_ASNATIVEBYTES_LITTLE_ENDIAN);
    if (needed < 0) {
        return -1;
    }
    if ((size_t)needed > sizeof bytes) {
        return 0;
    }
#else
    if (_PyLong_AsByteArray((PyLongObject *)value, bytes, sizeof bytes, 1, 1) < 0) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) {
            return -1;
        }
        PyErr_Clear();
        return 0;
    }
#endif
    unsigned __int128 bits = 0;
    for (int i = (int)sizeof bytes - 1; i >= 0; i--) {
        bits = (bits << 8) | bytes[i];
    }
    wide result = (wide)bits;
    if (result >= WIDE_LIMIT || result <= -WIDE_LIMIT) {
        return 0;
    }
    *out = result;
    return 1;
}

static PyObject *
wide_to_int(wide value)
{
    if (value >= INT64_MIN && value <= INT64_MAX) {
        return PyLong_FromLongLong((long long)value);
    }
    unsigned char bytes[16];
    unsigned __int128 bits = (unsigned __int128)value;
    for (size_t i = 0; i < sizeof bytes; i++) {
        bytes[i] = (unsigned char)(bits >> (8 * i));
    }
#if PY_VERSION_HEX >= 0x030D0000
    return PyLong_FromNativeBytes(bytes, sizeof bytes, Py_ASNATIVEBYTES_LITTLE_ENDIAN);
#else
    return _PyLong_FromByteArray(bytes, sizeof bytes, 1, 1);
#endif
}

static wide
ceil_div(wide numerator, wide denominator) /* numerator >= 0, denominator > 0 */
{
    return (numerator + denominator - 1) / denominator;
}

static int
lock_release(FastPath *self)
{
    PyObject *result = PyObject_CallNoArgs(self->lock_release);
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

/* Read `clock` (or, when NULL, the system clock `id`) into *now_ns; 0 if it
 * returned something the fast path cannot use. */
static int
read_clock(PyObject *clock, clockid_t id, long long *now_ns)
{
    if (clock == NULL) {
        struct timespec ts;
        if (clock_gettime(id, &ts) != 0) {
            PyErr_SetFromErrno(PyExc_OSError);
            return DECIDE_ERROR;
        }
        *now_ns = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
        return DECIDE_DONE;
    }
    PyObject *result = PyObject_CallNoArgs(clock);
    if (result == NULL) {
        return DECIDE_ERROR;
    }
    int usable = as_int64(result, now_ns);
    Py_DECREF(result);
    return usable ? DECIDE_DONE : DECIDE_FALL_BACK;
}

/* Replace bucket[0] (the tat) with `tat`. */
static int
store_tat(PyObject *bucket, wide tat)
{
    PyObject *value = wide_to_int(tat);
    if (value == NULL) {
        return -1;
    }
    PyObject *old = PyList_GET_ITEM(bucket, 0);
    PyList_SET_ITEM(bucket, 0, value);
    Py_DECREF(old);
    return 0;
}

static void
put_le64(unsigned char *out, unsigned long long value)
{
    for (int i = 0; i < 8; i++) {
        out[i] = (unsigned char)(value >> (8 * i));
    }
}

/* Write the new state `tat` of (identity, key) as records.encode does (the
 * layout backends/rocksdb/records.py states; tests/test_fastpath.py
 * test_c_writes_the_record_records_encode_writes holds the two equal),
 * before memory changes. DECIDE_FALL_BACK for anything the Python path
 * must handle, a failed write included: it retries and reports the error. */
static int
persist(FastPath *self, PyObject *identity, PyObject *key, long long units,
        long long token_units, wide capacity, wide tat, long long now_ns)
{
    PyObject *prefix = PyDict_GetItemWithError(self->record_prefixes, identity);
    if (prefix == NULL || !PyBytes_CheckExact(prefix)) {
        return PyErr_Occurred() ? DECIDE_ERROR : DECIDE_FALL_BACK;
    }
    long long wall_ns;
    int status = read_clock(self->wall_clock, CLOCK_REALTIME, &wall_ns);
    if (status != DECIDE_DONE) {
        return status;
    }
    /* Python's divmod: the remainder is never negative. */
    wide full_at_ns = tat / units, remainder = tat % units;
    if (remainder < 0) {
        remainder += units;
        full_at_ns -= 1;
    }
    wide full_at_wall_ns = full_at_ns + wall_ns - now_ns;
    if (full_at_wall_ns < INT64_MIN || full_at_wall_ns > INT64_MAX) {
        return DECIDE_FALL_BACK; /* the Python path raises StoreError for it */
    }
    unsigned char record[RECORD_SIZE];
    record[0] = (unsigned char)self->record_version;
    put_le64(record + 1, (unsigned long long)(long long)full_at_wall_ns);
    put_le64(record + 9, (unsigned long long)remainder);
    put_le64(record + 17, (unsigned long long)units);
    put_le64(record + 25, (unsigned long long)token_units);
    put_le64(record + 33, (unsigned long long)(capacity / token_units)); /* the burst */
    put_le64(record + 41, 0);
    put_le64(record + 49, 0);
    /* An ASCII key's UTF-8 is its characters, one byte each. */
    Py_ssize_t prefix_size = PyBytes_GET_SIZE(prefix), key_size = PyUnicode_GET_LENGTH(key);
    PyObject *record_key = PyBytes_FromStringAndSize(NULL, prefix_size + key_size);
    PyObject *value = record_key == NULL ? NULL
        : PyBytes_FromStringAndSize((const char *)record, RECORD_SIZE);
    if (value == NULL) {
        Py_XDECREF(record_key);
        return DECIDE_ERROR;
    }
    memcpy(PyBytes_AS_STRING(record_key), PyBytes_AS_STRING(prefix), prefix_size);
    memcpy(PyBytes_AS_STRING(record_key) + prefix_size, PyUnicode_DATA(key), key_size);
    PyObject *call[3] = {record_key, value, self->write_options};
    PyObject *result = PyObject_Vectorcall(self->put, call, 3, NULL);
    Py_DECREF(record_key);
    Py_DECREF(value);
    if (result == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_Exception)) {
            return DECIDE_ERROR; /* KeyboardInterrupt and the like go up as they are */
        }
        PyErr_Clear();
        return DECIDE_FALL_BACK;
    }
    Py_DECREF(result);
    return DECIDE_DONE;
}

/* store._create(limit, key, tat, now_ns): a new bucket, and now and then a sweep. */
static int
create(FastPath *self, PyObject *limit, PyObject *key, wide tat, long long now_ns)
{
    PyObject *tat_object = wide_to_int(tat);
    PyObject *now_object = tat_object == NULL ? NULL : PyLong_FromLongLong(now_ns);
    PyObject *created = now_object == NULL ? NULL
        : PyObject_CallFunctionObjArgs(self->create, limit, key, tat_object, now_object, NULL);
    Py_XDECREF(tat_object);
    Py_XDECREF(now_object);
    if (created == NULL) {
        return -1;
    }
    Py_DECREF(created);
    return 0;
}

/* One limit of a call: its bucket read and evaluated, before any change. */
typedef struct {
    PyObject *limit; /* borrowed, as the call's arguments are */
    PyObject *identity;
    PyObject *bucket; /* borrowed from its table, or NULL: not in memory */
    long long units, token_units;
    wide capacity;
    wide state_if_allowed;
    wide state_if_not; /* the bucket clamped to empty, if a clock step back put it beyond */
    int clamped;       /* state_if_not differs from what the bucket holds */
    Outcome outcome;
} LimitStep;

#define MAX_FAST_LIMITS 8 /* more limits in one call take the Python path */

/* Evaluate `cost` against one limit's bucket with the lock held, changing
 * nothing: _gcra.evaluate on 128-bit integers. With debt = max(tat, now) -
 * now, a call is allowed iff debt + cost * token_units <= capacity. A value
 * out of range falls back, and so, in write-through mode, does a bucket not
 * in memory (the Python path loads it from disk). */
static int
evaluate_limit(FastPath *self, PyObject *key, PyObject *limit, long long cost, long long now_ns,
               LimitStep *step)
{
    long long units, token_units;
    wide capacity, tat;
    int usable;
    if (!as_int64(SLOT(limit, self->limit_units_per_ns), &units)
        || !as_int64(SLOT(limit, self->limit_token_units), &token_units)
        || units < 1 || token_units < 1) {
        return DECIDE_FALL_BACK;
    }
    usable = as_wide(SLOT(limit, self->limit_capacity_units), &capacity);
    if (usable != 1) {
        return usable < 0 ? DECIDE_ERROR : DECIDE_FALL_BACK;
    }
    PyObject *identity = SLOT(limit, self->limit_identity);
    if (identity == NULL || !PyUnicode_CheckExact(identity)) {
        return DECIDE_FALL_BACK;
    }
    wide now = (wide)now_ns * units;
    wide need = (wide)cost * token_units;
    wide start = now; /* a bucket not in memory is full */
    PyObject *table = PyDict_GetItemWithError(self->tables, identity);
    PyObject *bucket = table == NULL ? NULL : PyDict_GetItemWithError(table, key);
    if (bucket == NULL) {
        if (PyErr_Occurred()) {
            return DECIDE_ERROR;
        }
        if (self->put != NULL) {
            return DECIDE_FALL_BACK;
        }
    }
    step->clamped = 0;
    if (bucket != NULL) {
        if (!PyList_CheckExact(bucket) || PyList_GET_SIZE(bucket) != 2) {
            return DECIDE_FALL_BACK;
        }
        if (PyList_GET_ITEM(bucket, 1) != limit) {
            /* An equal Limit object is adopted here; a changed plan or a
             * drained bucket (_gcra.Held) is converted by Python. */
            PyObject *alike = PyObject_CallFunctionObjArgs(self->rebind, bucket, limit, NULL);
            if (alike == NULL) {
                return DECIDE_ERROR;
            }
            Py_DECREF(alike);
            if (alike != Py_True) {
                return DECIDE_FALL_BACK;
            }
        }
        usable = as_wide(PyList_GET_ITEM(bucket, 0), &tat);
        if (usable != 1) {
            return usable < 0 ? DECIDE_ERROR : DECIDE_FALL_BACK;
        }
        /* max(tat, now), but never beyond an empty bucket (a clock step back) */
        start = tat < now ? now : (tat > now + capacity ? now + capacity : tat);
        step->clamped = start != tat;
    }
    wide debt = (start - now) + need; /* in [0, capacity + need]: no overflow */
    step->limit = limit;
    step->identity = identity;
    step->bucket = bucket;
    step->units = units;
    step->token_units = token_units;
    step->capacity = capacity;
    step->state_if_allowed = now + debt;
    step->state_if_not = start;
    if (debt <= capacity) {
        step->outcome = (Outcome){1, (capacity - debt) / token_units, 0, ceil_div(debt, units)};
    }
    else {
        wide debt_now = start - now;
        wide retry_ns = need > capacity ? NEVER : ceil_div(debt - capacity, units);
        step->outcome =
            (Outcome){0, (capacity - debt_now) / token_units, retry_ns, ceil_div(debt_now, units)};
    }
    return DECIDE_DONE;
}

/* Store what `step` leaves when the call takes nothing: its bucket clamped,
 * as MemoryStore._tat does. Write-through stores leave that to Python. */
static int
settle_untaken(FastPath *self, const LimitStep *step)
{
    if (!step->clamped) {
        return DECIDE_DONE;
    }
    if (self->put != NULL) {
        return DECIDE_FALL_BACK;
    }
    return store_tat(step->bucket, step->state_if_not) < 0 ? DECIDE_ERROR : DECIDE_DONE;
}

/* Decide `cost` tokens of one limit for `key` with the lock held; in
 * write-through mode the new state is written before memory changes. */
static int
decide_locked(FastPath *self, PyObject *key, PyObject *limit, long long cost, Outcome *out)
{
    long long now_ns;
    LimitStep step;
    int status = read_clock(self->clock, CLOCK_MONOTONIC, &now_ns);
    if (status == DECIDE_DONE) {
        status = evaluate_limit(self, key, limit, cost, now_ns, &step);
    }
    if (status != DECIDE_DONE) {
        return status;
    }
    if (step.outcome.allowed) {
        if (self->put != NULL) { /* the bucket is in memory: evaluate_limit saw to it */
            status = persist(self, step.identity, key, step.units, step.token_units, step.capacity,
                             step.state_if_allowed, now_ns);
            if (status != DECIDE_DONE) {
                return status;
            }
        }
        if (step.bucket != NULL ? store_tat(step.bucket, step.state_if_allowed) < 0
                                : create(self, limit, key, step.state_if_allowed, now_ns) < 0) {
            return DECIDE_ERROR;
        }
    }
    else if ((status = settle_untaken(self, &step)) != DECIDE_DONE) {
        return status;
    }
    *out = step.outcome;
    return DECIDE_DONE;
}

/* The binding limit, as _gcra.decision_from_steps picks it: allowed, the
 * fewest tokens left (then the longest reset); denied, the longest wait
 * (never first, then fewest tokens). Ties go to the first. */
static Py_ssize_t
binding_step(const LimitStep *steps, Py_ssize_t count, int allowed)
{
    Py_ssize_t best = 0;
    for (Py_ssize_t i = 1; i < count; i++) {
        const Outcome *a = &steps[i].outcome, *b = &steps[best].outcome;
        int better;
        if (allowed) {
            better = a->remaining < b->remaining
                || (a->remaining == b->remaining && a->reset_ns > b->reset_ns);
        }
        else {
            int a_never = a->retry_ns == NEVER, b_never = b->retry_ns == NEVER;
            better = a_never > b_never
                || (a_never == b_never
                    && (a->retry_ns > b->retry_ns
                        || (a->retry_ns == b->retry_ns && a->remaining < b->remaining)));
        }
        if (better) {
            best = i;
        }
    }
    return best;
}

/* Decide a call of several limits with the lock held: all or nothing, as
 * MemoryStore._decide does (memory:// only: rocksdb:// writes them in one
 * batch, which is the Python path's). `consume` 0 is a peek: nothing taken. */
static int
decide_many_locked(FastPath *self, PyObject *key, PyObject *const *limits, Py_ssize_t count,
                   long long cost, int consume, PyObject **binding, Outcome *out)
{
    LimitStep steps[MAX_FAST_LIMITS];
    long long now_ns;
    int status = read_clock(self->clock, CLOCK_MONOTONIC, &now_ns);
    if (status != DECIDE_DONE) {
        return status;
    }
    int allowed = 1;
    for (Py_ssize_t i = 0; i < count; i++) {
        status = evaluate_limit(self, key, limits[i], cost, now_ns, &steps[i]);
        if (status != DECIDE_DONE) {
            return status;
        }
        allowed &= steps[i].outcome.allowed;
    }
    if (allowed && consume) {
        for (Py_ssize_t i = 0; i < count; i++) {
            /* Looked up again: creating an earlier limit's bucket may have
             * swept this one away (it was full), as MemoryStore._set_tat knows. */
            PyObject *table = PyDict_GetItemWithError(self->tables, steps[i].identity);
            PyObject *bucket = table == NULL ? NULL : PyDict_GetItemWithError(table, key);
            if (bucket == NULL && PyErr_Occurred()) {
                return DECIDE_ERROR;
            }
            if (bucket != NULL) {
                if (store_tat(bucket, steps[i].state_if_allowed) < 0) {
                    return DECIDE_ERROR;
                }
            }
            else if (create(self, steps[i].limit, key, steps[i].state_if_allowed, now_ns) < 0) {
                return DECIDE_ERROR;
            }
        }
    }
    else { /* nothing created, so nothing swept: the buckets looked at are still there */
        for (Py_ssize_t i = 0; i < count; i++) {
            if ((status = settle_untaken(self, &steps[i])) != DECIDE_DONE) {
                return status;
            }
        }
    }
    Py_ssize_t index = binding_step(steps, count, allowed);
    *binding = steps[index].limit;
    *out = steps[index].outcome;
    return DECIDE_DONE;
}

/* Parse (key, *limits, cost=) and decide (`consume` 0: peek); DECIDE_FALL_BACK for
 * any other call shape. */
static int
fast_decide(FastPath *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
            int consume, PyObject **limit, Outcome *out)
{
    long long cost = 1;
    if (self->tables == NULL) {
        PyErr_SetString(PyExc_TypeError, "FastPath was never initialised");
        return DECIDE_ERROR;
    }
    Py_ssize_t count = nargs - 1; /* the limits after the key */
    if (count < 1 || count > MAX_FAST_LIMITS || self->closed
        || ((count > 1 || !consume) && self->put != NULL)) {
        return DECIDE_FALL_BACK;
    }
    if (kwnames != NULL) {
        if (PyTuple_GET_SIZE(kwnames) != 1) {
            return DECIDE_FALL_BACK;
        }
        PyObject *name = PyTuple_GET_ITEM(kwnames, 0);
        if (name != cost_name && !(PyUnicode_Check(name) && PyUnicode_Compare(name, cost_name) == 0)) {
            return DECIDE_FALL_BACK;
        }
        if (!as_int64(args[nargs], &cost) || cost < 1) {
            return DECIDE_FALL_BACK;
        }
    }
    PyObject *key = args[0];
    PyObject *const *limits = args + 1;
    if (!PyUnicode_CheckExact(key) || !PyUnicode_IS_ASCII(key)
        || PyUnicode_GET_LENGTH(key) > self->max_key_length) {
        return DECIDE_FALL_BACK;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        if (Py_TYPE(limits[i]) != (PyTypeObject *)self->limit_type) {
            return DECIDE_FALL_BACK;
        }
        PyObject *identity = SLOT(limits[i], self->limit_identity);
        if (identity == NULL || !PyUnicode_CheckExact(identity)) {
            return DECIDE_FALL_BACK;
        }
        for (Py_ssize_t j = 0; j < i; j++) { /* the same limit twice: Python says so */
            PyObject *other = SLOT(limits[j], self->limit_identity);
            if (identity == other || PyUnicode_Compare(identity, other) == 0) {
                return DECIDE_FALL_BACK;
            }
        }
    }
    *limit = limits[0];
    PyObject *locked = PyObject_CallNoArgs(self->lock_acquire);
    if (locked == NULL) {
        return DECIDE_ERROR;
    }
    Py_DECREF(locked);
    /* A peek of one limit is a call of one limit that takes nothing. */
    int status = count == 1 && consume
        ? decide_locked(self, key, *limit, cost, out)
        : decide_many_locked(self, key, limits, count, cost, consume, limit, out);
    /* Calls, not only creations, drive the lazy sweep: a spike of one-off keys
     * is released even when later traffic creates no buckets. A countdown
     * here, a Python call every calls_per_sweep calls (the call's changes made). */
    if (status == DECIDE_DONE && --self->calls_until_sweep <= 0) {
        self->calls_until_sweep = self->calls_per_sweep;
        PyObject *swept = PyObject_CallNoArgs(self->sweep_after_calls);
        if (swept == NULL) {
            status = DECIDE_ERROR;
        }
        else {
            Py_DECREF(swept);
        }
    }
    if (status == DECIDE_ERROR) {
        PyObject *type, *value, *traceback; /* release, and keep the first error */
        PyErr_Fetch(&type, &value, &traceback);
        if (lock_release(self) < 0) {
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(traceback);
            return DECIDE_ERROR;
        }
        PyErr_Restore(type, value, traceback);
        return DECIDE_ERROR;
    }
    return lock_release(self) < 0 ? DECIDE_ERROR : status;
}

static PyObject *
seconds(FastPath *self, wide ns)
{
    if (ns <= 0) {
        return PyFloat_FromDouble(0.0);
    }
    if (ns < EXACT_FLOAT_INT) { /* exact, and one step up covers the division's rounding */
        return PyFloat_FromDouble(nextafter((double)ns / 1e9, INFINITY));
    }
    PyObject *ns_object = wide_to_int(ns);
    if (ns_object == NULL) {
        return NULL;
    }
    PyObject *result = PyObject_CallOneArg(self->seconds_at_least, ns_object);
    Py_DECREF(ns_object);
    return result;
}

/* A Decision filled slot by slot, as a frozen dataclass cannot be cheaply. */
static PyObject *
new_decision(FastPath *self, PyObject *limit, const Outcome *outcome)
{
    PyObject *remaining = wide_to_int(outcome->remaining);
    PyObject *retry_after = outcome->retry_ns == NEVER ? PyFloat_FromDouble(INFINITY)
        : seconds(self, outcome->retry_ns);
    PyObject *reset_after = seconds(self, outcome->reset_ns);
    PyTypeObject *type = (PyTypeObject *)self->decision_type;
    PyObject *decision = remaining == NULL || retry_after == NULL || reset_after == NULL
        ? NULL : type->tp_alloc(type, 0);
    if (decision == NULL) {
        Py_XDECREF(remaining);
        Py_XDECREF(retry_after);
        Py_XDECREF(reset_after);
        return NULL;
    }
    SLOT(decision, self->decision_allowed) = Py_NewRef(outcome->allowed ? Py_True : Py_False);
    SLOT(decision, self->decision_remaining) = remaining;
    SLOT(decision, self->decision_retry_after) = retry_after;
    SLOT(decision, self->decision_reset_after) = reset_after;
    SLOT(decision, self->decision_limit) = Py_NewRef(limit);
    SLOT(decision, self->decision_degraded) = Py_NewRef(Py_False);
    return decision;
}

/* One of the three calls: decide in C, or hand the call unchanged to `slow`. */
static PyObject *
answer(FastPath *self, PyObject *const *args, size_t nargsf, PyObject *kwnames, int consume,
       int full, PyObject *slow)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *limit;
    Outcome outcome;
    switch (fast_decide(self, args, nargs, kwnames, consume, &limit, &outcome)) {
    case DECIDE_DONE:
        return full ? new_decision(self, limit, &outcome)
                    : Py_NewRef(outcome.allowed ? Py_True : Py_False);
    case DECIDE_FALL_BACK:
        return PyObject_Vectorcall(slow, args, nargs, kwnames);
    default:
        return NULL;
    }
}

static PyObject *
FastPath_try_acquire(FastPath *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    return answer(self, args, nargsf, kwnames, 1, 0, self->slow_try_acquire);
}

static PyObject *
FastPath_acquire(FastPath *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    return answer(self, args, nargsf, kwnames, 1, 1, self->slow_acquire);
}

static PyObject *
FastPath_peek(FastPath *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    return answer(self, args, nargsf, kwnames, 0, 1, self->slow_peek);
}

static PyObject *
FastPath_close(FastPath *self, PyObject *unused)
{
    self->closed = 1;
    Py_RETURN_NONE;
}

static PyMethodDef FastPath_methods[] = {
    {"close", (PyCFunction)FastPath_close, METH_NOARGS,
     "close(): from now on every call takes the Python path (the store was closed)."},
    {"try_acquire", (PyCFunction)(void (*)(void))FastPath_try_acquire,
     METH_FASTCALL | METH_KEYWORDS,
     "try_acquire(key, *limits, cost=1) -> bool: MemoryStore.checked_try_acquire, faster."},
    {"acquire", (PyCFunction)(void (*)(void))FastPath_acquire, METH_FASTCALL | METH_KEYWORDS,
     "acquire(key, *limits, cost=1) -> Decision: MemoryStore.checked_acquire, faster."},
    {"peek", (PyCFunction)(void (*)(void))FastPath_peek, METH_FASTCALL | METH_KEYWORDS,
     "peek(key, *limits, cost=1) -> Decision: MemoryStore.checked_peek, faster."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot FastPath_slots[] = {
    {Py_tp_doc, "The C fast path of one MemoryStore (see bucketcore.memory)."},
    {Py_tp_init, FastPath_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, FastPath_dealloc},
    {Py_tp_traverse, FastPath_traverse},
    {Py_tp_clear, FastPath_clear},
    {Py_tp_methods, FastPath_methods},
    {0, NULL},
};

static PyType_Spec FastPath_spec = {
    .name = "bucketcore._fastpath.FastPath",
    .basicsize = sizeof(FastPath),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = FastPath_slots,
};

static struct PyModuleDef fastpath_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "bucketcore._fastpath",
    .m_doc = "memory://'s try_acquire, acquire and peek in C (see bucketcore.memory).",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__fastpath(void)
{
    cost_name = PyUnicode_InternFromString("cost");
    if (cost_name == NULL) {
        return NULL;
    }
    PyObject *time = PyImport_ImportModule("time");
    if (time == NULL) {
        return NULL;
    }
    monotonic_ns = PyObject_GetAttrString(time, "monotonic_ns");
    time_ns = monotonic_ns == NULL ? NULL : PyObject_GetAttrString(time, "time_ns");
    Py_DECREF(time);
    if (time_ns == NULL) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&fastpath_module);
    if (module == NULL) {
        return NULL;
    }
    PyObject *type = PyType_FromSpec(&FastPath_spec);
    if (type == NULL || PyModule_AddObject(module, "FastPath", type) < 0) {
        Py_XDECREF(type);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
