/*
 * rules.runtime.handed_rows: a journal record's body (version 2 of
 * rules.runtime.channel.encode_handed) parsed straight into columns, in one C call.
 *
 * Why by hand, in C: the rules process evaluates a chunk column-wise
 * (rules.evaluation.columns), yet decoding it in Python - orjson to lists and dicts, an
 * Observation, a datetime and a SentReading per reading, then those walked again into numpy
 * arrays, then freed - cost ~3 us of CPU a reading of the ~7 the rules process spent on
 * `bench/run --mode batch` (`python -m bench.rules_loop --mode batch --readings 300000`, py-spy:
 * orjson.loads ~0.9, the observations ~0.7, the field columns ~0.8, the row lists ~0.5, freeing
 * them ~0.3), against the target of ~2.5 for all of it. Here a reading costs one pass
 * over its bytes and no Python object but its device id's (looked up in a dict).
 *
 * The pass itself, 0.43-0.47 us a reading of ~250 bytes, is now ~0.31 (the records of
 * `bench.rules_loop --mode batch --readings 300000` parsed in a loop; perf): each number read in
 * one pass (it was scanned, then scanned again to convert it, with a 64-bit division per digit
 * to check for overflow), a field's key matched in place when it is the one expected next, the
 * short strings compared inline rather than by memcmp calls, a string's end sought 8 bytes at a
 * time, and the columns kept from one call to the next (their pages were faulted in anew for
 * every record).
 *
 * It decides only one way: it returns the columns or None, and None sends the record down
 * `decode_handed` (orjson, an Observation per entry), which alone decides what a body that is
 * not plain holds, or that it cannot be read. So it accepts only `[2,[entry,...]]` whose every
 * entry is either
 *   a reading  [zone, device_id, at_us, received, retained, {field: value, ...}]  with strings
 *              without escapes, at_us an integer literal that fits 64 bits, retained
 *              true/false, the fields' values true/false/null/finite numbers (integer
 *              literals that fit 64 bits) or any other JSON value (kind OTHER), and the first
 *              field name given (lamp_on) among them; or
 *   a status   any entry of 7 elements whose first two are such strings and third a string
 *              (version 1's form: the caller decodes it from its span with orjson).
 * Anything else - escapes in those strings, other shapes, numbers out of range, invalid
 * JSON, a body that is not UTF-8 - is None.
 *
 * parse(body, fields) -> None | (rows, device_codes, device_names, zone_codes, zone_names,
 *     at_us, received_codes, received_texts, retained, status, starts, ends, kinds, values)
 * where every array is bytes, one item per row (int64; retained and status uint8), the codes
 * index the names' lists (a status row: received code -1, at_us 0), starts/ends are each
 * entry's byte span in the body, and kinds (int8) and values (float64) are field-major:
 * item [f * rows + r] for field f of `fields`, row r. A kind is ABSENT, NULL, BOOL (value 0 or
 * 1), FLOAT, INT (value: the double nearest the integer, as Python's float() gives it) or
 * OTHER. Held to `decode_handed` by property tests (tests/test_rules_rows.py).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { K_ABSENT, K_NULL, K_BOOL, K_FLOAT, K_INT, K_OTHER };
#define MAX_FIELDS 32
#define MAX_DEPTH 64
#define MAX_NUMBER 64

typedef struct {
    const char *p, *end;
} cursor;

static inline void ws(cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t'))
        c->p++;
}

static inline int take(cursor *c, char expected) {
    ws(c);
    if (c->p < c->end && *c->p == expected) {
        c->p++;
        return 1;
    }
    return 0;
}

static inline int peek(cursor *c) {
    ws(c);
    return c->p < c->end ? (unsigned char)*c->p : -1;
}

static inline uint64_t word_at(const char *s) {
    uint64_t word;
    memcpy(&word, s, 8);
    return word;
}

/* Whether s[:n] and t[:n] are the same bytes: inline, 8 at a time (the strings compared here
 * are a few to a few tens of bytes; a call to memcmp for each cost ~10 % of the parse). */
static inline int same(const char *s, const char *t, Py_ssize_t n) {
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8)
        if (word_at(s + i) != word_at(t + i))
            return 0;
    for (; i < n; i++)
        if (s[i] != t[i])
            return 0;
    return 1;
}

#define ONES 0x0101010101010101u
#define HIGHS 0x8080808080808080u

/* Whether any byte of the word is a quote, a backslash or a control character (< 0x20). */
static inline int special(uint64_t word) {
    uint64_t quote = word ^ (ONES * '"'), slash = word ^ (ONES * '\\');
    uint64_t zero = ((quote - ONES) & ~quote) | ((slash - ONES) & ~slash);
    uint64_t low = (word - ONES * 0x20) & ~word;
    return ((zero | low) & HIGHS) != 0;
}

/* A string without escapes or control characters: its bytes (between the quotes). */
static inline int plain_string(cursor *c, const char **start, Py_ssize_t *length) {
    if (!take(c, '"'))
        return 0;
    const char *s = c->p;
    while (c->p + 8 <= c->end && !special(word_at(c->p)))
        c->p += 8;
    while (c->p < c->end) {
        unsigned char ch = (unsigned char)*c->p;
        if (ch == '"') {
            *start = s;
            *length = c->p - s;
            c->p++;
            return 1;
        }
        if (ch == '\\' || ch < 0x20)
            return 0;
        c->p++;
    }
    return 0;
}

static inline int literal(cursor *c, const char *word) {
    size_t n = strlen(word); /* a constant, once inlined */
    if ((size_t)(c->end - c->p) < n || !same(c->p, word, (Py_ssize_t)n))
        return 0;
    c->p += n;
    return 1;
}

/* A JSON number (RFC 8259's grammar); *integer when it has no fraction nor exponent. */
static int number(cursor *c, const char **start, Py_ssize_t *length, int *integer) {
    ws(c);
    const char *s = c->p;
    if (c->p < c->end && *c->p == '-')
        c->p++;
    if (c->p >= c->end)
        return 0;
    if (*c->p == '0') {
        c->p++;
    } else if (*c->p >= '1' && *c->p <= '9') {
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
            c->p++;
    } else {
        return 0;
    }
    *integer = 1;
    if (c->p < c->end && *c->p == '.') {
        *integer = 0;
        c->p++;
        if (c->p >= c->end || *c->p < '0' || *c->p > '9')
            return 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
            c->p++;
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        *integer = 0;
        c->p++;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
            c->p++;
        if (c->p >= c->end || *c->p < '0' || *c->p > '9')
            return 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
            c->p++;
    }
    *start = s;
    *length = c->p - s;
    return 1;
}

/* Exact powers of ten as doubles (10^22 is the last one a double holds exactly). */
static const double POWERS[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* A finite double, parsed as Python's float() parses it (correctly rounded). A plain decimal
 * (no exponent) of at most 15 significant digits and 22 decimals is its digits, exact as an
 * integer below 2^53, divided by an exact power of ten: one IEEE division, so correctly
 * rounded (Clinger's fast path), and some 10 times faster than the general parser, which
 * takes the rest (the journal's floats are Python's repr, a few digits as a rule). */
static int to_double(const char *s, Py_ssize_t n, double *out) {
    uint64_t digits = 0;
    int significant = 0, decimals = 0, fraction = 0, plain = 1;
    Py_ssize_t i = s[0] == '-';
    for (; i < n; i++) {
        char ch = s[i];
        if (ch == '.') {
            fraction = 1;
        } else if (ch >= '0' && ch <= '9') {
            if (digits || ch != '0')
                significant++;
            digits = digits * 10 + (uint64_t)(ch - '0');
            decimals += fraction;
            if (significant > 15)
                break;
        } else {
            plain = 0; /* an exponent */
            break;
        }
    }
    if (plain && i == n && decimals <= 22) {
        double value = (double)digits / POWERS[decimals];
        *out = s[0] == '-' ? -value : value;
        return 1;
    }
    char text[MAX_NUMBER + 1];
    if (n > MAX_NUMBER)
        return 0;
    memcpy(text, s, (size_t)n);
    text[n] = '\0';
    char *end = NULL;
    double value = PyOS_string_to_double(text, &end, NULL);
    if (value == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    if (end != text + n || !isfinite(value))
        return 0;
    *out = value;
    return 1;
}

/* A JSON number read in one pass: an integer literal (no fraction nor exponent) that fits 64
 * bits as *whole (*integer set), any other as the finite double Python's float() gives
 * (`to_double`, whose fast path is taken here from the digits as they are scanned). 0 when it
 * is not a number, or out of those ranges (not plain). */
static int read_number(cursor *c, int *integer, int64_t *whole, double *value) {
    ws(c);
    const char *s = c->p, *p = c->p, *end = c->end;
    int negative = 0;
    if (p < end && *p == '-') {
        negative = 1;
        p++;
    }
    if (p >= end)
        return 0;
    uint64_t digits = 0;
    int significant = 0, decimals = 0, overflow = 0;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        for (; p < end && *p >= '0' && *p <= '9'; p++) {
            if (__builtin_mul_overflow(digits, 10, &digits) ||
                __builtin_add_overflow(digits, (uint64_t)(*p - '0'), &digits))
                overflow = 1;
            significant++;
        }
    } else {
        return 0;
    }
    int fraction = 0, exponent = 0;
    if (p < end && *p == '.') {
        fraction = 1;
        p++;
        if (p >= end || *p < '0' || *p > '9')
            return 0;
        for (; p < end && *p >= '0' && *p <= '9'; p++) {
            if (digits || *p != '0')
                significant++;
            if (significant <= 15) {
                digits = digits * 10 + (uint64_t)(*p - '0');
                decimals++;
            }
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        exponent = 1;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || *p < '0' || *p > '9')
            return 0;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    c->p = p;
    if (!fraction && !exponent) {
        *integer = 1;
        if (overflow)
            return 0;
        if (negative) {
            if (digits > (uint64_t)INT64_MAX + 1)
                return 0;
            *whole = digits == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)digits;
        } else {
            if (digits > (uint64_t)INT64_MAX)
                return 0;
            *whole = (int64_t)digits;
        }
        return 1;
    }
    *integer = 0;
    if (!exponent && significant <= 15 && decimals <= 22) {
        double number = (double)digits / POWERS[decimals];
        *value = negative ? -number : number;
        return 1;
    }
    return to_double(s, p - s, value);
}

static int skip_value(cursor *c, int depth);

static int skip_string(cursor *c) {
    if (!take(c, '"'))
        return 0;
    while (c->p < c->end) {
        unsigned char ch = (unsigned char)*c->p++;
        if (ch == '"')
            return 1;
        if (ch < 0x20)
            return 0;
        if (ch == '\\') {
            if (c->p >= c->end)
                return 0;
            char e = *c->p++;
            if (e == 'u') {
                for (int i = 0; i < 4; i++, c->p++)
                    if (c->p >= c->end || !((*c->p >= '0' && *c->p <= '9') ||
                                            (*c->p >= 'a' && *c->p <= 'f') ||
                                            (*c->p >= 'A' && *c->p <= 'F')))
                        return 0;
            } else if (!strchr("\"\\/bfnrt", e) || e == '\0') {
                return 0;
            }
        }
    }
    return 0;
}

static int skip_value(cursor *c, int depth) {
    if (depth > MAX_DEPTH)
        return 0;
    int ch = peek(c);
    const char *s;
    Py_ssize_t n;
    int integer;
    switch (ch) {
    case '"':
        return skip_string(c);
    case 't':
        return literal(c, "true");
    case 'f':
        return literal(c, "false");
    case 'n':
        return literal(c, "null");
    case '[':
        c->p++;
        if (take(c, ']'))
            return 1;
        do {
            if (!skip_value(c, depth + 1))
                return 0;
        } while (take(c, ','));
        return take(c, ']');
    case '{':
        c->p++;
        if (take(c, '}'))
            return 1;
        do {
            if (!skip_string(c) || !take(c, ':') || !skip_value(c, depth + 1))
                return 0;
        } while (take(c, ','));
        return take(c, '}');
    default:
        return number(c, &s, &n, &integer);
    }
}

/* The distinct strings of a column (device ids, zones, receive times), each given a code in
 * the order first seen: an open-addressing table over their bytes in the body, so that a row
 * makes no Python object (a str and a dict lookup per row cost ~15 % of the parse); the str is
 * made once per distinct string. */
typedef struct {
    PyObject *names; /* list of str, by code */
    int64_t *slots;  /* code + 1; 0: empty */
    size_t mask;
    const char **text; /* by code: its bytes in the body */
    Py_ssize_t *length;
    size_t count, capacity;
    const char *last; /* the previous row's, tried first */
    Py_ssize_t last_length;
    int64_t last_code;
} interned;

static void free_interned(interned *table) {
    Py_CLEAR(table->names);
    free(table->slots);
    free(table->text);
    free(table->length);
}

/* A hash of the string's bytes, 8 at a time, mixed at the end (murmur3's finalizer) so that
 * the low bits the table reads depend on every byte. */
static uint64_t hash_of(const char *s, Py_ssize_t n) {
    uint64_t h = 14695981039346656037u ^ (uint64_t)n;
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8)
        h = (h ^ word_at(s + i)) * 1099511628211u;
    if (i < n) {
        uint64_t tail = 0;
        memcpy(&tail, s + i, (size_t)(n - i));
        h = (h ^ tail) * 1099511628211u;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdu;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53u;
    h ^= h >> 33;
    return h;
}

static int64_t *slot_of(interned *table, const char *s, Py_ssize_t n, uint64_t h) {
    size_t i = (size_t)h & table->mask;
    while (table->slots[i]) {
        int64_t code = table->slots[i] - 1;
        if (table->length[code] == n && same(table->text[code], s, n))
            break;
        i = (i + 1) & table->mask;
    }
    return &table->slots[i];
}

static int grow_table(interned *table) {
    size_t size = table->mask ? (table->mask + 1) * 2 : 1024;
    size_t capacity = size / 2;
    int64_t *slots = calloc(size, sizeof *slots);
    const char **text = realloc(table->text, capacity * sizeof *text);
    if (text != NULL)
        table->text = text;
    Py_ssize_t *length = realloc(table->length, capacity * sizeof *length);
    if (length != NULL)
        table->length = length;
    if (slots == NULL || text == NULL || length == NULL) {
        free(slots);
        PyErr_NoMemory();
        return 0;
    }
    free(table->slots);
    table->slots = slots;
    table->mask = size - 1;
    table->capacity = capacity;
    for (size_t code = 0; code < table->count; code++)
        *slot_of(table, table->text[code], table->length[code],
                 hash_of(table->text[code], table->length[code])) = (int64_t)code + 1;
    return 1;
}

/* The code of the string s[:n] (UTF-8), a new one when first seen; -1 on error (set), -2 when
 * it is not UTF-8 (not plain). */
static int64_t code_of(interned *table, const char *s, Py_ssize_t n) {
    if (table->last != NULL && n == table->last_length && same(s, table->last, n))
        return table->last_code;
    if (table->count >= table->capacity && !grow_table(table))
        return -1;
    uint64_t h = hash_of(s, n);
    int64_t *slot = slot_of(table, s, n, h);
    int64_t code;
    if (*slot) {
        code = *slot - 1;
    } else {
        PyObject *text = PyUnicode_DecodeUTF8(s, n, NULL);
        if (text == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
                return -1;
            PyErr_Clear();
            return -2;
        }
        int failed = PyList_Append(table->names, text);
        Py_DECREF(text);
        if (failed < 0)
            return -1;
        code = (int64_t)table->count++;
        table->text[code] = s;
        table->length[code] = n;
        *slot = code + 1;
    }
    table->last = s;
    table->last_length = n;
    table->last_code = code;
    return code;
}

/* The columns, row-major as they are read, in memory kept from one call to the next (a
 * record's columns are ~1 MB: allocated afresh, their pages were faulted in at every call),
 * grown to `capacity` rows at once. */
typedef struct {
    int64_t *device, *zone, *at, *received, *starts, *ends;
    uint8_t *retained, *status;
    int8_t *kinds;  /* row * count + f */
    double *values; /* row * count + f */
    Py_ssize_t capacity, count;
} columns;

static columns kept_columns;
static int kept_busy;
#define MAX_KEPT_ROWS 65536 /* ~9 MB kept at most (the sink's records hold 5000 rows) */

static void free_columns(columns *k) {
    free(k->device);
    free(k->zone);
    free(k->at);
    free(k->received);
    free(k->starts);
    free(k->ends);
    free(k->retained);
    free(k->status);
    free(k->kinds);
    free(k->values);
    memset(k, 0, sizeof *k);
}

#define GROW(field, rows, item)                                                              \
    do {                                                                                     \
        void *grown = realloc(k->field, (size_t)(rows) * (item));                            \
        if (grown == NULL)                                                                   \
            return 0;                                                                        \
        k->field = grown;                                                                    \
    } while (0)

/* Room for `rows` rows of `count` fields: 0 when out of memory (the columns kept as they were,
 * each at least as large as before). */
static int reserve(columns *k, Py_ssize_t rows, Py_ssize_t count) {
    if (rows <= k->capacity && count == k->count)
        return 1;
    /* None kept meanwhile: a failure leaves the columns to be reserved afresh. */
    Py_ssize_t capacity = count == k->count ? k->capacity : 0;
    k->capacity = 0;
    if (rows < capacity)
        rows = capacity;
    if (rows < 1024)
        rows = 1024;
    GROW(device, rows, sizeof(int64_t));
    GROW(zone, rows, sizeof(int64_t));
    GROW(at, rows, sizeof(int64_t));
    GROW(received, rows, sizeof(int64_t));
    GROW(starts, rows, sizeof(int64_t));
    GROW(ends, rows, sizeof(int64_t));
    GROW(retained, rows, 1);
    GROW(status, rows, 1);
    GROW(kinds, rows, (size_t)count);
    GROW(values, rows, sizeof(double) * (size_t)count);
    k->capacity = rows;
    k->count = count;
    return 1;
}

typedef struct {
    const char *text[MAX_FIELDS];
    Py_ssize_t length[MAX_FIELDS];
    int quotable[MAX_FIELDS]; /* no quote, backslash or control character in it */
} field_names;

/* The key at the cursor when it is the field name `f`, quoted: no scan for the string's end,
 * no search (the fields come in the same order in every entry, as a rule). */
static inline int key_is(cursor *c, const field_names *names, Py_ssize_t f) {
    Py_ssize_t n = names->length[f];
    if (!names->quotable[f] || c->end - c->p < n + 2 || c->p[0] != '"' || c->p[n + 1] != '"' ||
        !same(c->p + 1, names->text[f], n))
        return 0;
    c->p += n + 2;
    return 1;
}

/* Outcome of one entry: 1 read, 0 not plain (None), -1 a Python error. */
static int fields_object(cursor *c, const field_names *names, Py_ssize_t count, int8_t *kinds,
                         double *values, Py_ssize_t *guess) {
    for (Py_ssize_t f = 0; f < count; f++) {
        kinds[f] = K_ABSENT;
        values[f] = 0.0;
    }
    if (!take(c, '{'))
        return 0;
    if (take(c, '}'))
        return 1;
    do {
        Py_ssize_t f = *guess < count ? *guess : 0;
        ws(c);
        if (!key_is(c, names, f)) {
            const char *key;
            Py_ssize_t key_length;
            if (!plain_string(c, &key, &key_length))
                return 0;
            for (f = 0; f < count; f++)
                if (names->length[f] == key_length && same(names->text[f], key, key_length))
                    break;
        }
        if (!take(c, ':'))
            return 0;
        *guess = f + 1;
        if (f == count) {
            if (!skip_value(c, 1))
                return 0;
            continue;
        }
        int ch = peek(c);
        if (ch == 't' && literal(c, "true")) {
            kinds[f] = K_BOOL;
            values[f] = 1.0;
        } else if (ch == 'f' && literal(c, "false")) {
            kinds[f] = K_BOOL;
            values[f] = 0.0;
        } else if (ch == 'n' && literal(c, "null")) {
            kinds[f] = K_NULL;
            values[f] = 0.0;
        } else if (ch == '-' || (ch >= '0' && ch <= '9')) {
            int integer;
            int64_t whole;
            if (!read_number(c, &integer, &whole, &values[f]))
                return 0;
            if (integer) {
                kinds[f] = K_INT;
                values[f] = (double)whole;
            } else {
                kinds[f] = K_FLOAT;
            }
        } else {
            if (!skip_value(c, 1))
                return 0;
            kinds[f] = K_OTHER;
            values[f] = 0.0;
        }
    } while (take(c, ','));
    return take(c, '}');
}

typedef struct {
    interned devices, zones, received;
    Py_ssize_t guess;
} tables;

/* Entry `row` into the columns (which have room for it). */
static int entry(cursor *c, const char *body, const field_names *names, Py_ssize_t count,
                 tables *t, columns *k, Py_ssize_t row) {
    int8_t *kinds = k->kinds + row * count;
    double *values = k->values + row * count;
    int64_t start = c->p - body;
    const char *s;
    Py_ssize_t n;
    if (!take(c, '['))
        return 0;
    if (!plain_string(c, &s, &n) || !take(c, ','))
        return 0;
    int64_t zone = code_of(&t->zones, s, n);
    if (zone < 0)
        return zone == -2 ? 0 : -1;
    if (!plain_string(c, &s, &n) || !take(c, ','))
        return 0;
    int64_t device = code_of(&t->devices, s, n);
    if (device < 0)
        return device == -2 ? 0 : -1;
    int64_t at = 0, received = -1;
    uint8_t retained = 0, status;
    if (peek(c) == '"') {
        /* A status (version 1's form): seven elements, decoded by the caller from its span. */
        int elements = 2;
        do {
            if (!skip_value(c, 1))
                return 0;
            elements++;
        } while (take(c, ','));
        if (elements != 7 || !take(c, ']'))
            return 0;
        status = 1;
        for (Py_ssize_t f = 0; f < count; f++) {
            kinds[f] = K_ABSENT;
            values[f] = 0.0;
        }
    } else {
        int integer;
        double unused;
        if (!read_number(c, &integer, &at, &unused) || !integer || !take(c, ','))
            return 0;
        if (!plain_string(c, &s, &n) || !take(c, ','))
            return 0;
        received = code_of(&t->received, s, n);
        if (received < 0)
            return received == -2 ? 0 : -1;
        ws(c);
        if (literal(c, "true"))
            retained = 1;
        else if (!literal(c, "false"))
            return 0;
        if (!take(c, ','))
            return 0;
        int got = fields_object(c, names, count, kinds, values, &t->guess);
        if (got <= 0)
            return got;
        if (!take(c, ']') || kinds[0] == K_ABSENT)
            return 0;
        status = 0;
    }
    k->device[row] = device;
    k->zone[row] = zone;
    k->at[row] = at;
    k->received[row] = received;
    k->retained[row] = retained;
    k->status[row] = status;
    k->starts[row] = start;
    k->ends[row] = c->p - body;
    return 1;
}

static PyObject *as_bytes(const void *data, Py_ssize_t rows, size_t item) {
    return PyBytes_FromStringAndSize(data, rows * (Py_ssize_t)item);
}

/* Row-major (row * count + f) to field-major (f * rows + r). */
static PyObject *transposed(const void *data, Py_ssize_t rows, Py_ssize_t count, size_t item) {
    PyObject *out = PyBytes_FromStringAndSize(NULL, rows * count * (Py_ssize_t)item);
    if (out == NULL)
        return NULL;
    if (item == 1) {
        const int8_t *from = data;
        int8_t *to = (int8_t *)PyBytes_AS_STRING(out);
        for (Py_ssize_t r = 0; r < rows; r++)
            for (Py_ssize_t f = 0; f < count; f++)
                to[f * rows + r] = from[r * count + f];
    } else {
        const double *from = data;
        double *to = (double *)PyBytes_AS_STRING(out);
        for (Py_ssize_t r = 0; r < rows; r++)
            for (Py_ssize_t f = 0; f < count; f++)
                to[f * rows + r] = from[r * count + f];
    }
    return out;
}

/* Whether the body is UTF-8, as orjson requires of all of it (the strings skipped here too):
 * ASCII, as a rule (identifiers are: models.identifiers), checked 8 bytes at a time; else by
 * Python's strict decoder. */
static int utf8(const char *body, Py_ssize_t length) {
    Py_ssize_t i = 0;
    for (; i + 8 <= length; i += 8) {
        uint64_t word;
        memcpy(&word, body + i, 8);
        if (word & 0x8080808080808080u)
            break;
    }
    for (; i < length; i++)
        if ((unsigned char)body[i] & 0x80)
            break;
    if (i == length)
        return 1;
    PyObject *text = PyUnicode_DecodeUTF8(body, length, NULL);
    if (text == NULL) {
        PyErr_Clear();
        return 0;
    }
    Py_DECREF(text);
    return 1;
}

static PyObject *parse(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer view;
    PyObject *names;
    if (!PyArg_ParseTuple(args, "y*O!", &view, &PyTuple_Type, &names))
        return NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(names);
    PyObject *result = NULL;
    /* The kept columns, unless a call is already using them (none can: nothing here runs
     * Python code; but a nested call would get columns of its own). */
    columns own;
    memset(&own, 0, sizeof own);
    int kept = !kept_busy;
    columns *k = kept ? &kept_columns : &own;
    kept_busy |= kept;
    tables t;
    memset(&t, 0, sizeof t);
    interned *all[] = {&t.devices, &t.zones, &t.received};
    if (count < 1 || count > MAX_FIELDS) {
        PyErr_SetString(PyExc_ValueError, "between 1 and 32 field names");
        goto done;
    }
    field_names wanted;
    for (Py_ssize_t f = 0; f < count; f++) {
        wanted.text[f] = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(names, f), &wanted.length[f]);
        if (wanted.text[f] == NULL)
            goto done;
        wanted.quotable[f] = 1;
        for (Py_ssize_t i = 0; i < wanted.length[f]; i++) {
            unsigned char ch = (unsigned char)wanted.text[f][i];
            if (ch == '"' || ch == '\\' || ch < 0x20)
                wanted.quotable[f] = 0;
        }
    }
    for (int i = 0; i < 3; i++) {
        all[i]->names = PyList_New(0);
        if (all[i]->names == NULL)
            goto done;
    }
    const char *body = view.buf;
    cursor c = {body, body + view.len};
    if (!utf8(body, view.len))
        goto plain_none;
    int got = 0;
    Py_ssize_t rows = 0;
    if (!take(&c, '[') || (ws(&c), !literal(&c, "2")) || !take(&c, ',') || !take(&c, '['))
        goto plain_none;
    if (!take(&c, ']')) {
        do {
            if (rows >= k->capacity || count != k->count) {
                if (!reserve(k, rows < 512 ? 1024 : rows * 2, count)) {
                    PyErr_NoMemory();
                    goto done;
                }
            }
            got = entry(&c, body, &wanted, count, &t, k, rows);
            if (got < 0)
                goto done;
            if (got == 0)
                goto plain_none;
            rows++;
        } while (take(&c, ','));
        if (!take(&c, ']'))
            goto plain_none;
    }
    if (!take(&c, ']'))
        goto plain_none;
    ws(&c);
    if (c.p != c.end)
        goto plain_none;
    PyObject *kinds = transposed(k->kinds, rows, count, 1);
    PyObject *values = kinds ? transposed(k->values, rows, count, sizeof(double)) : NULL;
    if (values == NULL) {
        Py_XDECREF(kinds);
        goto done;
    }
    result = Py_BuildValue(
        "(nNONONNONNNNNN)", rows, as_bytes(k->device, rows, 8), t.devices.names,
        as_bytes(k->zone, rows, 8), t.zones.names, as_bytes(k->at, rows, 8),
        as_bytes(k->received, rows, 8), t.received.names, as_bytes(k->retained, rows, 1),
        as_bytes(k->status, rows, 1), as_bytes(k->starts, rows, 8), as_bytes(k->ends, rows, 8),
        kinds, values);
    goto done;
plain_none:
    result = Py_NewRef(Py_None);
done:
    for (int i = 0; i < 3; i++) {
        free_interned(all[i]);
    }
    if (kept) {
        kept_busy = 0;
        if (kept_columns.capacity > MAX_KEPT_ROWS)
            free_columns(&kept_columns);
    } else {
        free_columns(&own);
    }
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"parse", parse, METH_VARARGS,
     "parse(body, fields): a version 2 journal body as columns, or None (see handed_rows.c)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "rules.runtime.handed_rows",
    .m_doc = "Journal records (version 2) straight into columns, in C (see handed_rows.c).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit_handed_rows(void) { return PyModule_Create(&module_def); }
