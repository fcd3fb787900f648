/*
 * ingest.reading_lines: a plain, valid reading's JSON to its line of line protocol, in one C call.
 *
 * Why by hand, in C: this is the per-reading hot path of the decoder. Done in Python (msgspec to
 * decode and check, then the timestamp, the ms, the line) it cost ~12 us of CPU a reading out of
 * ~33 in all on the project's 2-core machine, and the targets are 20 us a telemetry
 * message and 8 a batched reading (`bench/run`, `python -m ingest.bench_decode`). Every Python
 * step costs ~0.5-1k instructions there (callgrind), so the cost was in the glue, not in any
 * one library call; doing the whole reading here takes it to well under a microsecond.
 *
 * It decides only one way, exactly as the msgspec path it replaces did: it returns the lines
 * (and, when asked, the checked values) or None, and None sends the message down the full path
 * (orjson + the pydantic models), which alone decides rejections, their reasons and sentences.
 * So it only has to be sure of what it accepts, and it accepts only this: a JSON object (or, for
 * a batch, an array of them) whose keys are the reading's own, each at most once, with
 *   lamp_on   true/false                seq, dim_pct   plain non-negative integer literals
 *   floats    JSON numbers in the models' ranges, finite; integer literals of <= 18 digits
 *   device_id a string matching models.identifiers.ID_PATTERN (no escapes)
 *   ts        RFC 3339 `YYYY-MM-DDTHH:MM:SS[.f{1,6}](Z|+hh:mm|-hh:mm)` or epoch seconds (a
 *             number), after 2000-01-01 and not later than the receive time + the allowed skew
 *             (a millisecond's margin either side), or absent (then the reading is stamped
 *             with its receive time made unique per device, by a `Stamps`: below)
 * and null for any optional field. Anything else - escapes, non-ASCII, other keys, other
 * forms - is None. Held to the pydantic path by property tests (tests/test_reading_lines.py).
 *
 * Numbers are written as the full path writes their values: a plain decimal literal is copied
 * (InfluxDB and Python both round it correctly to the same double), an integer literal in a
 * float field gets ".0", and an exponent form is written as Python's repr of the double.
 * Identifiers are validated and numbers checked, so nothing needs escaping.
 *
 * Stamps: a reading without `ts` is written at its receive time, in ms, and a device's readings
 * read from the socket in one go share one receive time: written as they are, the last would
 * overwrite the others (issue 13: 100 readings became 3 points). A `Stamps` gives each a time
 * unique per device and strictly increasing, max(receive ms, the device's last stamp + 1) - the
 * same object for both paths (the pydantic path calls `Stamps.stamp`), so they stamp alike.
 * Readings with `ts` never touch it. A batch the fast path stamps but then refuses is rolled back
 * (the full path stamps it again, from the same state).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

enum kind { K_BOOL, K_FLOAT, K_INT, K_ID, K_TS };

typedef struct {
    const char *name;
    size_t length;
    enum kind kind;
    double low, high;
    int required;
} field_spec;

/* The order of the line's fields: the full path's (floats, then the two integers). */
enum {
    F_LAMP_ON,
    F_POWER_W,
    F_ENERGY_WH,
    F_VOLTAGE_V,
    F_CURRENT_A,
    F_POWER_FACTOR,
    F_DRIVER_TEMP_C,
    F_LUX,
    F_SEQ,
    F_DIM_PCT,
    F_DEVICE_ID,
    F_TS,
    F_COUNT,
    F_MEASURED = F_DEVICE_ID /* fields before this one are written to the line */
};

#define NAME(s) s, sizeof(s) - 1

static const field_spec FIELDS[F_COUNT] = {
    {NAME("lamp_on"), K_BOOL, 0, 0, 1},
    {NAME("power_w"), K_FLOAT, 0, 5000, 1},
    {NAME("energy_wh"), K_FLOAT, 0, DBL_MAX, 1},
    {NAME("voltage_v"), K_FLOAT, 0, 600, 0},
    {NAME("current_a"), K_FLOAT, 0, 50, 0},
    {NAME("power_factor"), K_FLOAT, 0, 1, 0},
    {NAME("driver_temp_c"), K_FLOAT, -60, 200, 0},
    {NAME("lux"), K_FLOAT, 0, DBL_MAX, 0},
    {NAME("seq"), K_INT, 0, 0, 0},
    {NAME("dim_pct"), K_INT, 0, 100, 0},
    {NAME("device_id"), K_ID, 0, 0, 0},
    {NAME("ts"), K_TS, 0, 0, 0},
};

#define EARLIEST_MS 946684800000LL /* 2000-01-01T00:00:00Z, models.EARLIEST_TS */
#define LATEST_EPOCH_S 253402300799.0
#define MAX_INT_DIGITS 18 /* below 10**18: fits int64, and orjson reads it as an int */
#define MAX_COPIED 40     /* a longer plain decimal is written as repr instead of copied */
#define MAX_LINE 2048

typedef enum { N_INT, N_DECIMAL, N_EXPONENT } number_form;

typedef struct {
    const char *text; /* the value's text in the payload (numbers, strings without quotes) */
    Py_ssize_t length;
    number_form form;
    double number;
    long long integer; /* integer literals */
    int exact;         /* a decimal `exact_decimal` read: any correct parser reads its text alike */
    int flag;          /* lamp_on */
} value;

typedef struct {
    unsigned seen;    /* every key met, null or not (a repeated key is refused) */
    unsigned present; /* keys with a non-null value */
    value values[F_COUNT];
    long long ts_us; /* epoch microseconds when `ts` is present */
} reading;

typedef struct {
    const char *at;
    const char *end;
} cursor;

static inline void skip_space(cursor *c) {
    while (c->at < c->end &&
           (*c->at == ' ' || *c->at == '\t' || *c->at == '\n' || *c->at == '\r'))
        c->at++;
}

static inline int is_digit(char ch) { return ch >= '0' && ch <= '9'; }

static inline int is_alnum(char ch) {
    return is_digit(ch) || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

/* Bytes a plain string may hold: printable ASCII but the quote and the backslash. */
static unsigned char PLAIN[256];

static void init_plain(void) {
    for (int ch = 0x20; ch < 0x80; ch++)
        PLAIN[ch] = ch != '"' && ch != '\\';
}

/* A string with no escapes, no control characters and nothing but ASCII; 0 otherwise. */
static int scan_string(cursor *c, const char **text, Py_ssize_t *length) {
    if (c->at >= c->end || *c->at != '"')
        return 0;
    const char *start = ++c->at, *p = start, *end = c->end;
    while (p < end && PLAIN[(unsigned char)*p])
        p++;
    if (p >= end || *p != '"')
        return 0;
    *text = start;
    *length = p - start;
    c->at = p + 1;
    return 1;
}

static int scan_literal(cursor *c, const char *word, size_t length) {
    if ((size_t)(c->end - c->at) < length || memcmp(c->at, word, length) != 0)
        return 0;
    c->at += length;
    return 1;
}

static const double POWERS_OF_TEN[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                       1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                       1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* A decimal without exponent of at most 15 significant digits, as the double nearest to it:
 * the digits as an integer (exact below 2**53) divided by a power of ten (exact up to 1e22), one
 * correctly rounded IEEE division (Clinger's fast path, as dtoa's own). 0 when it does not
 * apply: the caller converts with CPython's dtoa. */
static int exact_decimal(const char *start, const char *end, double *out) {
    const char *p = start;
    int negative = *p == '-';
    p += negative;
    unsigned long long mantissa = 0;
    int digits = 0, fraction = -1;
    for (; p < end; p++) {
        if (*p == '.') {
            fraction = 0;
            continue;
        }
        if (*p < '0' || *p > '9')
            return 0; /* an exponent */
        if (mantissa == 0 && *p == '0') {
            if (fraction >= 0)
                fraction++;
            continue; /* leading zeros are not significant */
        }
        if (++digits > 15)
            return 0;
        mantissa = mantissa * 10 + (unsigned long long)(*p - '0');
        if (fraction >= 0)
            fraction++;
    }
    if (fraction < 0 || fraction > 22)
        return 0;
    double value = (double)mantissa / POWERS_OF_TEN[fraction];
    *out = negative ? -value : value;
    return 1;
}

/* A JSON number: its form, and its value as a double (and as an integer for integer
 * literals of at most MAX_INT_DIGITS digits). 0 for anything else. */
static int scan_number(cursor *c, value *v) {
    const char *start = c->at, *p = c->at, *end = c->end;
    int negative = 0;
    if (p < end && *p == '-') {
        negative = 1;
        p++;
    }
    if (p >= end || !is_digit(*p))
        return 0;
    const char *digits = p;
    if (*p == '0')
        p++;
    else
        while (p < end && is_digit(*p))
            p++;
    Py_ssize_t integer_digits = p - digits;
    number_form form = N_INT;
    if (p < end && *p == '.') {
        p++;
        if (p >= end || !is_digit(*p))
            return 0;
        while (p < end && is_digit(*p))
            p++;
        form = N_DECIMAL;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || !is_digit(*p))
            return 0;
        while (p < end && is_digit(*p))
            p++;
        form = N_EXPONENT;
    }
    v->text = start;
    v->length = p - start;
    v->form = form;
    v->exact = 0;
    if (form == N_INT) {
        if (integer_digits > MAX_INT_DIGITS || (negative && digits[0] == '0'))
            return 0; /* orjson's limits; "-0" reads as the int 0 there */
        long long n = 0;
        for (const char *d = digits; d < p; d++)
            n = n * 10 + (*d - '0');
        v->integer = negative ? -n : n;
        v->number = (double)v->integer; /* exact: < 2**63, and correctly rounded by C */
    } else if (exact_decimal(start, p, &v->number)) {
        v->exact = 1;
    } else {
        /* The digits are followed by a delimiter (checked by the caller) or the bytes object's
         * terminating NUL, so the conversion stops where the scan did. */
        char *stop = NULL;
        v->number = PyOS_string_to_double(start, &stop, NULL);
        if (v->number == -1.0 && PyErr_Occurred()) {
            PyErr_Clear();
            return 0;
        }
        if (stop != p)
            return 0;
    }
    c->at = p;
    return 1;
}

static int is_identifier(const char *text, Py_ssize_t length) {
    if (length < 1 || length > 64 || !is_alnum(text[0]))
        return 0;
    for (Py_ssize_t i = 1; i < length; i++) {
        char ch = text[i];
        if (!(is_alnum(ch) || ch == '_' || ch == '.' || ch == ':' || ch == '-'))
            return 0;
    }
    return 1;
}

/* Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static long long days_from_civil(long long y, unsigned m, unsigned d) {
    y -= m <= 2;
    const long long era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

static int days_in_month(int year, int month) {
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month == 2 && ((year % 4 == 0 && year % 100 != 0) || year % 400 == 0))
        return 29;
    return days[month - 1];
}

static int digits_at(const char *s, int count, int *out) {
    int n = 0;
    for (int i = 0; i < count; i++) {
        if (!is_digit(s[i]))
            return 0;
        n = n * 10 + (s[i] - '0');
    }
    *out = n;
    return 1;
}

/* The forms models.timestamps reads through datetime.fromisoformat, as epoch microseconds;
 * 0 for any other form or an impossible date (the full path then decides). */
static int rfc3339_us(const char *s, Py_ssize_t n, long long *us) {
    int year, month, day, hour, minute, second, fraction = 0;
    if (n < 20 || !digits_at(s, 4, &year) || s[4] != '-' || !digits_at(s + 5, 2, &month) ||
        s[7] != '-' || !digits_at(s + 8, 2, &day) || s[10] != 'T' ||
        !digits_at(s + 11, 2, &hour) || s[13] != ':' || !digits_at(s + 14, 2, &minute) ||
        s[16] != ':' || !digits_at(s + 17, 2, &second))
        return 0;
    Py_ssize_t i = 19;
    if (s[i] == '.') {
        int scale = 100000, count = 0;
        for (i++; i < n && is_digit(s[i]); i++, count++) {
            if (count == 6)
                return 0;
            fraction += (s[i] - '0') * scale;
            scale /= 10;
        }
        if (count == 0)
            return 0;
    }
    long long offset_s = 0;
    if (i == n - 1 && s[i] == 'Z') {
        offset_s = 0;
    } else if (i == n - 6 && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        int offset_h, offset_m;
        if (!digits_at(s + i + 1, 2, &offset_h) || !digits_at(s + i + 4, 2, &offset_m) ||
            offset_h > 23 || offset_m > 59)
            return 0;
        offset_s = (offset_h * 3600LL + offset_m * 60LL) * (s[i] == '-' ? -1 : 1);
    } else {
        return 0;
    }
    if (year < 1 || month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) ||
        hour > 23 || minute > 59 || second > 59)
        return 0;
    long long seconds = days_from_civil(year, (unsigned)month, (unsigned)day) * 86400LL +
                        hour * 3600LL + minute * 60LL + second - offset_s;
    *us = seconds * 1000000LL + fraction;
    return 1;
}

/* datetime.fromtimestamp(value, UTC) as epoch microseconds: CPython's split into whole seconds
 * and a fraction rounded half to even (_PyTime_DoubleToDenominator, _PyTime_RoundHalfEven). */
static long long epoch_float_us(double d) {
    double whole;
    volatile double part = modf(d, &whole);
    part *= 1e6;
    double rounded = round(part);
    if (fabs(part - rounded) == 0.5)
        rounded = 2.0 * round(part / 2.0);
    part = rounded;
    if (part >= 1e6) {
        part -= 1e6;
        whole += 1.0;
    } else if (part < 0) {
        part += 1e6;
        whole -= 1.0;
    }
    return (long long)whole * 1000000LL + (long long)part;
}

static long long floor_div(long long a, long long b) {
    long long q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* The field a key names: the first letter and the length tell every field apart, so one
 * comparison confirms it. -1 for any other key. */
static int field_index(const char *key, Py_ssize_t length) {
    int index;
    switch (length << 8 | (length ? (unsigned char)key[0] : 0)) {
    case 7 << 8 | 'l': index = F_LAMP_ON; break;
    case 7 << 8 | 'p': index = F_POWER_W; break;
    case 9 << 8 | 'e': index = F_ENERGY_WH; break;
    case 9 << 8 | 'v': index = F_VOLTAGE_V; break;
    case 9 << 8 | 'c': index = F_CURRENT_A; break;
    case 12 << 8 | 'p': index = F_POWER_FACTOR; break;
    case 13 << 8 | 'd': index = F_DRIVER_TEMP_C; break;
    case 3 << 8 | 'l': index = F_LUX; break;
    case 3 << 8 | 's': index = F_SEQ; break;
    case 7 << 8 | 'd': index = F_DIM_PCT; break;
    case 9 << 8 | 'd': index = F_DEVICE_ID; break;
    case 2 << 8 | 't': index = F_TS; break;
    default: return -1;
    }
    return memcmp(key, FIELDS[index].name, (size_t)length) == 0 ? index : -1;
}

static int scan_value(cursor *c, int index, reading *r) {
    value *v = &r->values[index];
    const field_spec *spec = &FIELDS[index];
    if (scan_literal(c, "null", 4))
        return !spec->required;
    switch (spec->kind) {
    case K_BOOL:
        if (scan_literal(c, "true", 4))
            v->flag = 1;
        else if (scan_literal(c, "false", 5))
            v->flag = 0;
        else
            return 0;
        break;
    case K_FLOAT:
        if (!scan_number(c, v) || !isfinite(v->number) || v->number < spec->low ||
            v->number > spec->high)
            return 0;
        if (v->form == N_INT && v->integer == 0 && v->text[0] == '-')
            return 0;
        break;
    case K_INT:
        if (!scan_number(c, v) || v->form != N_INT || v->integer < 0 ||
            (spec->high > 0 && v->integer > (long long)spec->high))
            return 0;
        break;
    case K_ID:
        if (!scan_string(c, &v->text, &v->length) || !is_identifier(v->text, v->length))
            return 0;
        break;
    case K_TS:
        if (c->at < c->end && *c->at == '"') {
            if (!scan_string(c, &v->text, &v->length) ||
                !rfc3339_us(v->text, v->length, &r->ts_us))
                return 0;
        } else {
            if (!scan_number(c, v) || !isfinite(v->number) || v->number < -LATEST_EPOCH_S ||
                v->number > LATEST_EPOCH_S)
                return 0;
            r->ts_us = v->form == N_INT ? v->integer * 1000000LL : epoch_float_us(v->number);
        }
        break;
    }
    r->present |= 1u << index;
    return 1;
}

/* One reading object at the cursor; 0 unless it is plain and valid. */
static int scan_reading(cursor *c, reading *r) {
    r->seen = r->present = 0;
    skip_space(c);
    if (c->at >= c->end || *c->at != '{')
        return 0;
    c->at++;
    skip_space(c);
    if (c->at < c->end && *c->at == '}') {
        c->at++;
        return 0; /* no lamp_on: the full path names what is missing */
    }
    for (;;) {
        const char *key;
        Py_ssize_t key_length;
        if (!scan_string(c, &key, &key_length))
            return 0;
        int index = field_index(key, key_length);
        if (index < 0 || (r->seen & (1u << index)))
            return 0;
        r->seen |= 1u << index;
        skip_space(c);
        if (c->at >= c->end || *c->at != ':')
            return 0;
        c->at++;
        skip_space(c);
        if (!scan_value(c, index, r))
            return 0;
        skip_space(c);
        if (c->at >= c->end)
            return 0;
        if (*c->at == '}') {
            c->at++;
            break;
        }
        if (*c->at != ',')
            return 0;
        c->at++;
        skip_space(c);
    }
    const unsigned required =
        (1u << F_LAMP_ON) | (1u << F_POWER_W) | (1u << F_ENERGY_WH);
    return (r->present & required) == required;
}

typedef struct {
    char data[MAX_LINE];
    Py_ssize_t length;
    int overflow;
} line_buffer;

static void put(line_buffer *b, const char *text, Py_ssize_t length) {
    if (b->overflow || length > MAX_LINE - b->length) {
        b->overflow = 1;
        return;
    }
    memcpy(b->data + b->length, text, (size_t)length);
    b->length += length;
}

static int put_number(line_buffer *b, const value *v, int as_float) {
    if (!as_float) {
        put(b, v->text, v->length);
        put(b, "i", 1);
    } else if (v->form == N_INT) {
        put(b, v->text, v->length);
        put(b, ".0", 2);
    } else if (v->form == N_DECIMAL && v->length <= MAX_COPIED) {
        put(b, v->text, v->length);
    } else {
        char *text = PyOS_double_to_string(v->number, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
        if (text == NULL)
            return 0;
        put(b, text, (Py_ssize_t)strlen(text));
        PyMem_Free(text);
    }
    return 1;
}

/* The reading's line; NULL with an exception set only on a real failure (memory). */
static PyObject *line_of(const reading *r, const char *zone, Py_ssize_t zone_length,
                         const char *device, Py_ssize_t device_length, long long ts_ms) {
    line_buffer b;
    b.length = 0;
    b.overflow = 0;
    put(&b, "telemetry,device_id=", 20);
    put(&b, device, device_length);
    put(&b, ",zone=", 6);
    put(&b, zone, zone_length);
    char separator = ' ';
    for (int i = 0; i < F_MEASURED; i++) {
        if (!(r->present & (1u << i)))
            continue;
        put(&b, &separator, 1);
        separator = ',';
        put(&b, FIELDS[i].name, (Py_ssize_t)FIELDS[i].length);
        put(&b, "=", 1);
        if (FIELDS[i].kind == K_BOOL) {
            if (r->values[i].flag)
                put(&b, "true", 4);
            else
                put(&b, "false", 5);
        } else if (!put_number(&b, &r->values[i], FIELDS[i].kind == K_FLOAT)) {
            return NULL;
        }
    }
    char stamp[24]; /* " " and the digits of a positive int64, written backwards */
    char *digit = stamp + sizeof stamp;
    unsigned long long rest = (unsigned long long)ts_ms; /* > EARLIEST_MS or the receive time */
    do {
        *--digit = (char)('0' + rest % 10);
        rest /= 10;
    } while (rest);
    *--digit = ' ';
    put(&b, digit, stamp + sizeof stamp - digit);
    if (b.overflow) {
        PyErr_SetString(PyExc_ValueError, "reading_lines: line longer than its buffer");
        return NULL;
    }
    return PyUnicode_DecodeASCII(b.data, b.length, NULL);
}

/* The fields' names as interned str, made once (`init_field_names`): PyDict_SetItemString
 * made and hashed a new str for every field of every reading, ~0.4 us a reading. */
static PyObject *field_names[F_COUNT];

static int init_field_names(void) {
    for (int i = 0; i < F_COUNT; i++) {
        field_names[i] = PyUnicode_InternFromString(FIELDS[i].name);
        if (field_names[i] == NULL)
            return 0;
    }
    return 1;
}

/* {field: value} of the measured fields sent, None for those sent as null, and "device_id" or
 * "ts": None when those were sent as null: the rules' Reading, whose fields_set holds every
 * field sent, null or not (as pydantic's does). */
static PyObject *values_of(const reading *r) {
    PyObject *values = PyDict_New();
    if (values == NULL)
        return NULL;
    for (int i = 0; i < F_COUNT; i++) {
        unsigned bit = 1u << i;
        if (!(r->seen & bit) || (i >= F_MEASURED && (r->present & bit)))
            continue;
        const value *v = &r->values[i];
        PyObject *item;
        if (!(r->present & bit))
            item = Py_NewRef(Py_None);
        else if (FIELDS[i].kind == K_BOOL)
            item = PyBool_FromLong(v->flag);
        else if (FIELDS[i].kind == K_INT)
            item = PyLong_FromLongLong(v->integer);
        else
            item = PyFloat_FromDouble(v->number);
        if (item == NULL || PyDict_SetItem(values, field_names[i], item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(values);
            return NULL;
        }
        Py_DECREF(item);
    }
    return values;
}

/* ---- The rules' journal entry, as JSON text (hand-over mode) --------------------------------- */

/* `text` as a JSON string, escaped as orjson escapes (the quote, the backslash and the control
 * characters; anything else, UTF-8 included, as it is). Zones and ids are validated identifiers
 * on this path, so nothing is escaped in practice; it is done anyway, not assumed. */
static void put_json_string(line_buffer *b, const char *text, Py_ssize_t length) {
    static const char HEX[] = "0123456789abcdef";
    put(b, "\"", 1);
    Py_ssize_t start = 0;
    for (Py_ssize_t i = 0; i < length; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        put(b, text + start, i - start);
        start = i + 1;
        char escape[6] = {'\\', 'u', '0', '0', HEX[ch >> 4], HEX[ch & 15]};
        switch (ch) {
        case '"': put(b, "\\\"", 2); break;
        case '\\': put(b, "\\\\", 2); break;
        case '\b': put(b, "\\b", 2); break;
        case '\t': put(b, "\\t", 2); break;
        case '\n': put(b, "\\n", 2); break;
        case '\f': put(b, "\\f", 2); break;
        case '\r': put(b, "\\r", 2); break;
        default: put(b, escape, 6); break;
        }
    }
    put(b, text + start, length - start);
    put(b, "\"", 1);
}

static void put_integer(line_buffer *b, long long n) {
    char digits[24]; /* "-" and the digits of an int64, written backwards */
    char *digit = digits + sizeof digits;
    unsigned long long rest = n < 0 ? 0ULL - (unsigned long long)n : (unsigned long long)n;
    do {
        *--digit = (char)('0' + rest % 10);
        rest /= 10;
    } while (rest);
    if (n < 0)
        *--digit = '-';
    put(b, digit, digits + sizeof digits - digit);
}

#define EXACT_INTEGERS 9007199254740992LL /* 2**53: integers below it are doubles exactly */

/* The reading's entry of the rules' journal (format 2, `rules.runtime.channel.encode_handed`):
 * `[zone, device_id, at_us, received, false, {field: value}]`, the fields as `values_of` has
 * them. A float is written so that orjson reads back the very double checked: as the text sent
 * when that text leaves no room for rounding — a decimal of at most 15 significant digits and
 * 22 after the point (`exact_decimal`: one exact integer divided by an exact power of ten, so
 * every correctly rounding parser, orjson's included, gets the same double), or an integer
 * literal below 2**53 with ".0" — and otherwise as Python's repr of the double
 * (`float.__repr__`, shortest round-trip; ~0.1 us a value, hence not for all). Integers as sent
 * (plain non-negative literals). `received` is the receive time's JSON text, given.
 * Written into `b`; 0 with an exception set on a real failure (memory, a buffer too small). */
static int write_entry(line_buffer *b, const reading *r, const char *zone,
                       Py_ssize_t zone_length, const char *device, Py_ssize_t device_length,
                       long long at_us, const char *received, Py_ssize_t received_length) {
    b->length = 0;
    b->overflow = 0;
    put(b, "[", 1);
    put_json_string(b, zone, zone_length);
    put(b, ",", 1);
    put_json_string(b, device, device_length);
    put(b, ",", 1);
    put_integer(b, at_us);
    put(b, ",", 1);
    put(b, received, received_length);
    put(b, ",false,", 7);
    char separator = '{';
    for (int i = 0; i < F_COUNT; i++) {
        unsigned bit = 1u << i;
        if (!(r->seen & bit) || (i >= F_MEASURED && (r->present & bit)))
            continue;
        put(b, &separator, 1);
        separator = ',';
        put(b, "\"", 1);
        put(b, FIELDS[i].name, (Py_ssize_t)FIELDS[i].length);
        put(b, "\":", 2);
        const value *v = &r->values[i];
        if (!(r->present & bit)) {
            put(b, "null", 4);
        } else if (FIELDS[i].kind == K_BOOL) {
            if (v->flag)
                put(b, "true", 4);
            else
                put(b, "false", 5);
        } else if (FIELDS[i].kind == K_INT) {
            put(b, v->text, v->length); /* a plain non-negative integer literal */
        } else if (v->exact) {
            put(b, v->text, v->length);
        } else if (v->form == N_INT && v->integer < EXACT_INTEGERS && v->integer > -EXACT_INTEGERS) {
            put(b, v->text, v->length);
            put(b, ".0", 2);
        } else {
            char *text = PyOS_double_to_string(v->number, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
            if (text == NULL)
                return 0;
            put(b, text, (Py_ssize_t)strlen(text));
            PyMem_Free(text);
        }
    }
    if (separator == '{')
        put(b, "{", 1);
    put(b, "}]", 2);
    if (b->overflow) {
        PyErr_SetString(PyExc_ValueError, "reading_lines: journal entry longer than its buffer");
        return 0;
    }
    return 1;
}

static PyObject *entry_of(const reading *r, const char *zone, Py_ssize_t zone_length,
                          const char *device, Py_ssize_t device_length, long long at_us,
                          const char *received, Py_ssize_t received_length) {
    line_buffer b;
    if (!write_entry(&b, r, zone, zone_length, device, device_length, at_us, received,
                     received_length))
        return NULL;
    return PyBytes_FromStringAndSize(b.data, b.length);
}

/* `write_entry`, appended to `run` (a bytearray: the entries of a journal run, comma-separated,
 * as `rules.runtime.channel.encode_handed` joins them), so no Python object is made per reading.
 * 0 with an exception set on a real failure. */
static int append_entry(PyObject *run, const reading *r, const char *zone, Py_ssize_t zone_length,
                        const char *device, Py_ssize_t device_length, long long at_us,
                        const char *received, Py_ssize_t received_length) {
    line_buffer b;
    if (!write_entry(&b, r, zone, zone_length, device, device_length, at_us, received,
                     received_length))
        return 0;
    Py_ssize_t at = PyByteArray_GET_SIZE(run);
    Py_ssize_t comma = at > 0 ? 1 : 0;
    if (PyByteArray_Resize(run, at + comma + b.length) < 0)
        return 0;
    char *to = PyByteArray_AS_STRING(run) + at;
    if (comma)
        *to++ = ',';
    memcpy(to, b.data, (size_t)b.length);
    return 1;
}

/* ---- Stamps: the receive time of readings without `ts`, unique per device -------------------- */

#define LATEST_MS 253402300799999LL /* 9999-12-31T23:59:59.999Z */
#define STEP_BACK_MAX_MS 10000LL /* a larger step back of the clock is a correction: followed */
#define SWEEP_SLACK 64           /* entries allowed beyond twice the last sweep's before sweeping */

typedef struct {
    PyObject_HEAD
    PyObject *last;   /* {device_id: the last ms stamped}: only devices stamped at >= floor matter */
    long long floor;  /* the latest receive ms seen: the receive clock, made never to go back */
    long long high;   /* the latest ms in `last` (LLONG_MIN when empty): once passed, all are stale */
    Py_ssize_t kept;  /* entries left by the last sweep */
} Stamps;

static PyTypeObject StampsType;

/* What one batch stamped, to undo if the fast path then leaves the batch to the full path. */
typedef struct {
    PyObject *key;
    PyObject *previous; /* the value it replaced, NULL when it had none */
} undo_entry;

typedef struct {
    undo_entry *entries;
    Py_ssize_t count, capacity;
} undo_log;

static void stamps_clear(Stamps *s) {
    PyDict_Clear(s->last);
    s->high = LLONG_MIN;
    s->kept = 0;
}

/* Keep only the entries stamped at or after `base` (the others can no longer change a stamp). */
static int stamps_sweep(Stamps *s, long long base) {
    PyObject *kept = PyDict_New();
    if (kept == NULL)
        return -1;
    Py_ssize_t at = 0;
    PyObject *key, *value;
    while (PyDict_Next(s->last, &at, &key, &value)) {
        long long last = PyLong_AsLongLong(value);
        if (last == -1 && PyErr_Occurred()) {
            Py_DECREF(kept);
            return -1;
        }
        if (last >= base && PyDict_SetItem(kept, key, value) < 0) {
            Py_DECREF(kept);
            return -1;
        }
    }
    Py_SETREF(s->last, kept);
    s->kept = PyDict_GET_SIZE(kept);
    return 0;
}

/* The ms to write a reading of `device` received at `received_ms` with; -1 with an exception
 * set on failure (memory). With `undo`, what it replaced is logged there. */
static long long stamps_stamp(Stamps *s, PyObject *device, long long received_ms, undo_log *undo) {
    if (received_ms < 0 || received_ms > LATEST_MS) { /* so that nothing below can overflow */
        PyErr_Format(PyExc_ValueError, "received_ms %lld is not in the years 1970 to 9999",
                     received_ms);
        return -1;
    }
    if (received_ms > s->floor) {
        s->floor = received_ms;
    } else if (received_ms < s->floor - STEP_BACK_MAX_MS) {
        s->floor = received_ms; /* the clock was corrected: follow it, forget the future */
        stamps_clear(s);
    }
    const long long base = s->floor;
    const Py_ssize_t size = PyDict_GET_SIZE(s->last);
    if (size && base > s->high)
        stamps_clear(s); /* every entry is older than the receive time: none matters */
    else if (size > 2 * s->kept + SWEEP_SLACK && stamps_sweep(s, base) < 0)
        return -1;
    long long stamp = base;
    PyObject *found = PyDict_GetItemWithError(s->last, device); /* borrowed */
    if (found != NULL) {
        long long last = PyLong_AsLongLong(found);
        if (last == -1 && PyErr_Occurred())
            return -1;
        if (last >= base)
            stamp = last + 1;
    } else if (PyErr_Occurred()) {
        return -1;
    }
    if (undo != NULL) {
        if (undo->count == undo->capacity) {
            Py_ssize_t capacity = undo->capacity ? 2 * undo->capacity : 16;
            undo_entry *grown = PyMem_Realloc(undo->entries, (size_t)capacity * sizeof *grown);
            if (grown == NULL) {
                PyErr_NoMemory();
                return -1;
            }
            undo->entries = grown;
            undo->capacity = capacity;
        }
        undo->entries[undo->count].key = Py_NewRef(device);
        undo->entries[undo->count].previous = Py_XNewRef(found);
        undo->count++;
    }
    PyObject *value = PyLong_FromLongLong(stamp);
    if (value == NULL || PyDict_SetItem(s->last, device, value) < 0) {
        Py_XDECREF(value);
        return -1;
    }
    Py_DECREF(value);
    if (stamp > s->high)
        s->high = stamp;
    return stamp;
}

/* Puts back what the logged stamps replaced, newest first (rollback), or only lets go of the
 * log (commit). Never fails: an entry swept meanwhile is simply not there to delete. */
static void undo_finish(undo_log *undo, Stamps *s, int rollback) {
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    for (Py_ssize_t i = undo->count - 1; i >= 0; i--) {
        undo_entry *e = &undo->entries[i];
        if (rollback) {
            if (e->previous != NULL ? PyDict_SetItem(s->last, e->key, e->previous) < 0
                                    : PyDict_DelItem(s->last, e->key) < 0)
                PyErr_Clear();
        }
        Py_DECREF(e->key);
        Py_XDECREF(e->previous);
    }
    PyMem_Free(undo->entries);
    undo->entries = NULL;
    undo->count = undo->capacity = 0;
    PyErr_Restore(type, value, traceback);
}

static PyObject *Stamps_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    if (PyTuple_GET_SIZE(args) != 0 || (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0)) {
        PyErr_SetString(PyExc_TypeError, "Stamps() takes no arguments");
        return NULL;
    }
    Stamps *s = (Stamps *)type->tp_alloc(type, 0);
    if (s == NULL)
        return NULL;
    s->last = PyDict_New();
    if (s->last == NULL) {
        Py_DECREF(s);
        return NULL;
    }
    s->floor = 0;
    s->high = LLONG_MIN;
    s->kept = 0;
    return (PyObject *)s;
}

static void Stamps_dealloc(Stamps *s) {
    Py_XDECREF(s->last);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

static PyObject *Stamps_stamp(Stamps *s, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "stamp expects 2 arguments, got %zd", nargs);
        return NULL;
    }
    if (!PyUnicode_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "device_id must be a str");
        return NULL;
    }
    long long received_ms = PyLong_AsLongLong(args[1]);
    if (received_ms == -1 && PyErr_Occurred())
        return NULL;
    long long stamp = stamps_stamp(s, args[0], received_ms, NULL);
    return stamp == -1 && PyErr_Occurred() ? NULL : PyLong_FromLongLong(stamp);
}

static PyObject *Stamps_len(Stamps *s, PyObject *Py_UNUSED(ignored)) {
    return PyLong_FromSsize_t(PyDict_GET_SIZE(s->last));
}

static PyMethodDef Stamps_methods[] = {
    {"stamp", (PyCFunction)(void (*)(void))Stamps_stamp, METH_FASTCALL,
     "stamp(device_id, received_ms)\n--\n\n"
     "The ms to write a reading of `device_id` without `ts` received at `received_ms` with:\n"
     "max(the receive clock, the device's last stamp + 1)."},
    {"remembered", (PyCFunction)Stamps_len, METH_NOARGS,
     "remembered()\n--\n\nHow many devices the memory holds now (for tests of its bound)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject StampsType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "ingest.reading_lines.Stamps",
    .tp_basicsize = sizeof(Stamps),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Stamps()\n--\n\n"
              "Receive times for readings without `ts`, unique per device (see reading_lines.c).",
    .tp_new = Stamps_new,
    .tp_dealloc = (destructor)Stamps_dealloc,
    .tp_methods = Stamps_methods,
};

typedef struct {
    const char *zone;
    Py_ssize_t zone_length;
    const char *source; /* the topic's device (telemetry), NULL for a batch */
    Py_ssize_t source_length;
    PyObject *source_id; /* the same as a str (the stamps' key), NULL for a batch */
    long long received_ms;
    long long skew_ms;
    int with_values;
    const char *received; /* hand-over mode: the receive time's JSON text, else NULL */
    Py_ssize_t received_length;
    PyObject *run; /* hand-over mode with a run (a bytearray): the entries go there, else NULL */
    Stamps *stamps;
    undo_log *undo; /* a batch's stamps, NULL for a telemetry message */
} context;

/* The checked reading's item for the result list: its line, or with values
 * (line, device_id sent or None, ts in epoch microseconds or None, values_of the reading,
 * receive stamp in ms or None), or in hand-over mode (`with_values` given as the receive time's
 * JSON text) (line, entry_of the reading): no Python object per value.
 * Py_None (a new reference) when the reading is not surely accepted. */
static PyObject *item_of(const reading *r, const context *x) {
    const value *id = &r->values[F_DEVICE_ID];
    int has_id = (r->present & (1u << F_DEVICE_ID)) != 0;
    const char *device = x->source;
    Py_ssize_t device_length = x->source_length;
    if (device == NULL) {
        if (!has_id)
            Py_RETURN_NONE;
        device = id->text;
        device_length = id->length;
    } else if (has_id && (id->length != device_length ||
                          memcmp(id->text, device, (size_t)device_length) != 0)) {
        Py_RETURN_NONE; /* device_id differs from the topic's */
    }
    long long ts_ms;
    int has_ts = (r->present & (1u << F_TS)) != 0;
    if (has_ts) {
        ts_ms = floor_div(r->ts_us, 1000);
        if (!(EARLIEST_MS < ts_ms && ts_ms < x->received_ms + x->skew_ms - 1))
            Py_RETURN_NONE;
    } else {
        /* Taken for sure from here on: the reading's receive stamp, unique per device. */
        PyObject *key = x->source_id != NULL
                            ? Py_NewRef(x->source_id)
                            : PyUnicode_DecodeASCII(device, device_length, NULL);
        if (key == NULL)
            return NULL;
        ts_ms = stamps_stamp(x->stamps, key, x->received_ms, x->undo);
        Py_DECREF(key);
        if (ts_ms == -1 && PyErr_Occurred())
            return NULL;
    }
    PyObject *line = line_of(r, x->zone, x->zone_length, device, device_length, ts_ms);
    if (line == NULL || !x->with_values)
        return line;
    if (x->run != NULL) {
        if (!append_entry(x->run, r, x->zone, x->zone_length, device, device_length,
                          has_ts ? r->ts_us : ts_ms * 1000, x->received, x->received_length)) {
            Py_DECREF(line);
            return NULL;
        }
        return line;
    }
    if (x->received != NULL) {
        PyObject *entry = entry_of(r, x->zone, x->zone_length, device, device_length,
                                   has_ts ? r->ts_us : ts_ms * 1000, x->received,
                                   x->received_length);
        PyObject *pair = entry == NULL ? NULL : PyTuple_Pack(2, line, entry);
        Py_XDECREF(entry);
        Py_DECREF(line);
        return pair;
    }
    PyObject *values = values_of(r);
    if (values == NULL) {
        Py_DECREF(line);
        return NULL;
    }
    PyObject *sent_id = has_id ? PyUnicode_DecodeASCII(id->text, id->length, NULL)
                               : Py_NewRef(Py_None);
    PyObject *ts = has_ts ? PyLong_FromLongLong(r->ts_us) : Py_NewRef(Py_None);
    PyObject *stamp = has_ts ? Py_NewRef(Py_None) : PyLong_FromLongLong(ts_ms);
    PyObject *item = NULL;
    if (sent_id != NULL && ts != NULL && stamp != NULL)
        item = PyTuple_Pack(5, line, sent_id, ts, values, stamp);
    Py_XDECREF(sent_id);
    Py_XDECREF(ts);
    Py_XDECREF(stamp);
    Py_DECREF(values);
    Py_DECREF(line);
    return item;
}

static int parse_context(PyObject *const *args, Py_ssize_t nargs, int batch, cursor *c,
                         context *x) {
    const Py_ssize_t expected = batch ? 6 : 7;
    if (nargs != expected && nargs != expected + 1) {
        PyErr_Format(PyExc_TypeError, "expected %zd or %zd arguments, got %zd", expected,
                     expected + 1, nargs);
        return 0;
    }
    if (!PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "payload must be bytes");
        return 0;
    }
    c->at = PyBytes_AS_STRING(args[0]);
    c->end = c->at + PyBytes_GET_SIZE(args[0]);
    Py_ssize_t at = 1;
    x->zone = PyUnicode_AsUTF8AndSize(args[at++], &x->zone_length);
    if (x->zone == NULL)
        return 0;
    x->source = NULL;
    x->source_length = 0;
    x->source_id = NULL;
    x->undo = NULL;
    if (!batch) {
        x->source_id = args[at];
        x->source = PyUnicode_AsUTF8AndSize(args[at++], &x->source_length);
        if (x->source == NULL)
            return 0;
    }
    x->received_ms = PyLong_AsLongLong(args[at++]);
    if (x->received_ms == -1 && PyErr_Occurred())
        return 0;
    x->skew_ms = PyLong_AsLongLong(args[at++]);
    if (x->skew_ms == -1 && PyErr_Occurred())
        return 0;
    x->received = NULL;
    x->received_length = 0;
    if (PyBytes_Check(args[at])) {
        x->with_values = 1;
        x->received = PyBytes_AS_STRING(args[at]);
        x->received_length = PyBytes_GET_SIZE(args[at]);
        at++;
    } else {
        x->with_values = PyObject_IsTrue(args[at++]);
        if (x->with_values < 0)
            return 0;
    }
    if (!PyObject_TypeCheck(args[at], &StampsType)) {
        PyErr_SetString(PyExc_TypeError, "stamps must be a reading_lines.Stamps");
        return 0;
    }
    x->stamps = (Stamps *)args[at++];
    x->run = NULL;
    if (nargs > at) {
        if (x->received == NULL || !PyByteArray_Check(args[at])) {
            PyErr_SetString(PyExc_TypeError,
                            "run must be a bytearray, given with the receive time's JSON text");
            return 0;
        }
        x->run = args[at];
    }
    return 1;
}

/* Steals `item`; 1 when appended, 0 when it is None (dropped), -1 on error. */
static int append_item(PyObject *list, PyObject *item) {
    if (item == NULL)
        return -1;
    if (item == Py_None) {
        Py_DECREF(item);
        return 0;
    }
    int failed = PyList_Append(list, item);
    Py_DECREF(item);
    return failed ? -1 : 1;
}

static PyObject *telemetry(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    cursor c;
    context x;
    reading r;
    if (!parse_context(args, nargs, 0, &c, &x))
        return NULL;
    if (!scan_reading(&c, &r))
        Py_RETURN_NONE;
    skip_space(&c);
    if (c.at != c.end)
        Py_RETURN_NONE;
    return item_of(&r, &x);
}

static PyObject *batch(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    cursor c;
    context x;
    reading r;
    undo_log undo = {NULL, 0, 0};
    if (!parse_context(args, nargs, 1, &c, &x))
        return NULL;
    x.undo = &undo;
    skip_space(&c);
    if (c.at >= c.end || *c.at != '[')
        Py_RETURN_NONE;
    c.at++;
    Py_ssize_t run_length = x.run != NULL ? PyByteArray_GET_SIZE(x.run) : 0;
    PyObject *items = PyList_New(0);
    if (items == NULL)
        return NULL;
    for (;;) {
        if (!scan_reading(&c, &r))
            goto refused;
        int appended = append_item(items, item_of(&r, &x));
        if (appended < 0) {
            undo_finish(&undo, x.stamps, 1);
            Py_DECREF(items);
            if (x.run != NULL) /* shrinking: cannot fail */
                (void)PyByteArray_Resize(x.run, run_length);
            return NULL;
        }
        if (appended == 0)
            goto refused;
        skip_space(&c);
        if (c.at < c.end && *c.at == ',') {
            c.at++;
            continue;
        }
        if (c.at < c.end && *c.at == ']') {
            c.at++;
            break;
        }
        goto refused;
    }
    skip_space(&c);
    if (c.at != c.end)
        goto refused;
    undo_finish(&undo, x.stamps, 0);
    return items;
refused:
    undo_finish(&undo, x.stamps, 1);
    Py_DECREF(items);
    if (x.run != NULL && PyByteArray_Resize(x.run, run_length) < 0) /* shrinking */
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"telemetry", (PyCFunction)(void (*)(void))telemetry, METH_FASTCALL,
     "telemetry(payload, zone, device_id, received_ms, skew_ms, with_values, stamps)\n--\n\n"
     "A telemetry payload's line, or None to leave it to the full path. with_values True:\n"
     "(line, device_id sent, ts us, values, stamp ms); bytes (the receive time's JSON text):\n"
     "(line, the reading's journal entry as JSON bytes); and a bytearray `run` after stamps:\n"
     "the line, the entry appended to run (comma-separated)."},
    {"batch", (PyCFunction)(void (*)(void))batch, METH_FASTCALL,
     "batch(payload, zone, received_ms, skew_ms, with_values, stamps)\n--\n\n"
     "A batch payload's lines, or None to leave the whole batch to the full path\n"
     "(items as telemetry's, by with_values; with a run: lines, the entries appended to it,\n"
     "none when the batch is left to the full path)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "ingest.reading_lines",
    .m_doc = "Plain valid readings to line protocol in C (see reading_lines.c for why).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit_reading_lines(void) {
    init_plain();
    if (!init_field_names())
        return NULL;
    if (PyType_Ready(&StampsType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    if (PyModule_AddObjectRef(module, "Stamps", (PyObject *)&StampsType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
