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

typedef struct {
    char *data;
    size_t used, size;
} buffer;

static int grow(buffer *b, size_t more) {
    if (b->used + more <= b->size)
        return 1;
    size_t size = b->size ? b->size : 4096;
    while (size < b->used + more)
        size *= 2;
    char *data = realloc(b->data, size);
    if (data == NULL)
        return 0;
    b->data = data;
    b->size = size;
    return 1;
}

static inline int put(buffer *b, const void *item, size_t length) {
    if (!grow(b, length))
        return 0;
    memcpy(b->data + b->used, item, length);
    b->used += length;
    return 1;
}

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

/* A string without escapes or control characters: its bytes (between the quotes). */
static int plain_string(cursor *c, const char **start, Py_ssize_t *length) {
    if (!take(c, '"'))
        return 0;
    const char *s = c->p;
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

static int literal(cursor *c, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
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

static int to_int64(const char *s, Py_ssize_t n, int64_t *out) {
    int negative = s[0] == '-';
    uint64_t value = 0;
    for (Py_ssize_t i = negative; i < n; i++) {
        unsigned digit = (unsigned)(s[i] - '0');
        if (value > (UINT64_MAX - digit) / 10)
            return 0;
        value = value * 10 + digit;
    }
    if (negative) {
        if (value > (uint64_t)INT64_MAX + 1)
            return 0;
        *out = value == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)value;
    } else {
        if (value > (uint64_t)INT64_MAX)
            return 0;
        *out = (int64_t)value;
    }
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

static uint64_t hash_of(const char *s, Py_ssize_t n) {
    uint64_t h = 14695981039346656037u; /* FNV-1a */
    for (Py_ssize_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211u;
    return h;
}

static int64_t *slot_of(interned *table, const char *s, Py_ssize_t n, uint64_t h) {
    size_t i = (size_t)h & table->mask;
    while (table->slots[i]) {
        int64_t code = table->slots[i] - 1;
        if (table->length[code] == n && memcmp(table->text[code], s, (size_t)n) == 0)
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
    if (table->last != NULL && n == table->last_length && memcmp(s, table->last, (size_t)n) == 0)
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

typedef struct {
    buffer device, zone, at, received, retained, status, starts, ends, kinds, values;
} columns;

static void free_columns(columns *k) {
    buffer *all[] = {&k->device, &k->zone,   &k->at,   &k->received, &k->retained,
                     &k->status, &k->starts, &k->ends, &k->kinds,    &k->values};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        free(all[i]->data);
}

/* Outcome of one entry: 1 read, 0 not plain (None), -1 a Python error. */
typedef struct {
    const char *text[MAX_FIELDS];
    Py_ssize_t length[MAX_FIELDS];
} field_names;

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
        const char *key;
        Py_ssize_t key_length;
        if (!plain_string(c, &key, &key_length) || !take(c, ':'))
            return 0;
        /* The fields come in the same order in every entry, as a rule: the one after the
         * previous key's is tried first. */
        Py_ssize_t f = *guess < count ? *guess : 0;
        if (names->length[f] != key_length || memcmp(names->text[f], key, (size_t)key_length)) {
            for (f = 0; f < count; f++)
                if (names->length[f] == key_length &&
                    memcmp(names->text[f], key, (size_t)key_length) == 0)
                    break;
        }
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
            const char *s;
            Py_ssize_t n;
            int integer;
            if (!number(c, &s, &n, &integer))
                return 0;
            if (integer) {
                int64_t whole;
                if (!to_int64(s, n, &whole))
                    return 0;
                kinds[f] = K_INT;
                values[f] = (double)whole;
            } else {
                if (!to_double(s, n, &values[f]))
                    return 0;
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

static int entry(cursor *c, const char *body, const field_names *names, Py_ssize_t count,
                 tables *t, columns *k) {
    int8_t kinds[MAX_FIELDS];
    double values[MAX_FIELDS];
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
        if (!number(c, &s, &n, &integer) || !integer || !to_int64(s, n, &at) || !take(c, ','))
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
    int64_t end = c->p - body;
    if (!put(&k->device, &device, sizeof device) || !put(&k->zone, &zone, sizeof zone) ||
        !put(&k->at, &at, sizeof at) || !put(&k->received, &received, sizeof received) ||
        !put(&k->retained, &retained, 1) || !put(&k->status, &status, 1) ||
        !put(&k->starts, &start, sizeof start) || !put(&k->ends, &end, sizeof end) ||
        !put(&k->kinds, kinds, (size_t)count) ||
        !put(&k->values, values, sizeof(double) * (size_t)count)) {
        PyErr_NoMemory();
        return -1;
    }
    return 1;
}

static PyObject *as_bytes(buffer *b) { return PyBytes_FromStringAndSize(b->data, (Py_ssize_t)b->used); }

/* Row-major (row * count + f) to field-major (f * rows + r). */
static PyObject *transposed(buffer *b, Py_ssize_t rows, Py_ssize_t count, size_t item) {
    PyObject *out = PyBytes_FromStringAndSize(NULL, rows * count * (Py_ssize_t)item);
    if (out == NULL)
        return NULL;
    if (item == 1) {
        const int8_t *from = (const int8_t *)b->data;
        int8_t *to = (int8_t *)PyBytes_AS_STRING(out);
        for (Py_ssize_t r = 0; r < rows; r++)
            for (Py_ssize_t f = 0; f < count; f++)
                to[f * rows + r] = from[r * count + f];
    } else {
        const double *from = (const double *)b->data;
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
    columns k;
    memset(&k, 0, sizeof k);
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
            got = entry(&c, body, &wanted, count, &t, &k);
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
    PyObject *kinds = transposed(&k.kinds, rows, count, 1);
    PyObject *values = kinds ? transposed(&k.values, rows, count, sizeof(double)) : NULL;
    if (values == NULL) {
        Py_XDECREF(kinds);
        goto done;
    }
    result = Py_BuildValue("(nNONONNONNNNNN)", rows, as_bytes(&k.device), t.devices.names,
                           as_bytes(&k.zone), t.zones.names, as_bytes(&k.at),
                           as_bytes(&k.received), t.received.names, as_bytes(&k.retained),
                           as_bytes(&k.status), as_bytes(&k.starts), as_bytes(&k.ends), kinds,
                           values);
    goto done;
plain_none:
    result = Py_NewRef(Py_None);
done:
    for (int i = 0; i < 3; i++) {
        free_interned(all[i]);
    }
    free_columns(&k);
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
