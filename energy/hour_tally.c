/*
 * energy.hour_tally: the hourly rollups tallied from the telemetry lines luxtel has just written,
 * so that closing an hour needs no read-back of its readings from InfluxDB.
 *
 * Why in C: the read-back build costs ~4.5 us of CPU a reading (bench/README.md, "Rollup
 * upkeep"), as much as ingest itself; the issue allows 10 % of ingest. A reading costs here a
 * parse of its line (the sink's own text, `influx.line_protocol.encode_reading`'s shape), one
 * look-up in the tally's own index of device ids and a few integer operations; an hour's close
 * writes its lines straight into write bodies (`take_bodies`).
 *
 * The arithmetic is `energy.counters` + `energy.report.Tally.add`, operation for operation, in
 * integers (energy in mWh, burning time in ms, dimming in %·ms, the baseline in mW·ms): the only
 * float operations are the roundings of a reading's values (`milli`: floor(x * 1000 + 0.5)) and of
 * dim % x burning ms (`round_half_up`), the same IEEE operations as Python's (compiled with
 * -ffp-contract=off: no fused multiply-add), and the integer products are taken in 128 bits with
 * floor division (Python's `//`). So a device-hour's figures are the very integers
 * `energy.rollup_store.build` computes from the same readings read back: interval between
 * consecutive readings (counter step with resets, trapezoid of power where there is no counter,
 * burning time and dimming, kind ok/gap/reset/missing, a break past `max_interval_ms`), shared
 * over hours by telescoping floors at the hours' edges (`part`). tests/test_energy_tally.py holds
 * it to `energy.rollup.compute` with hypothesis.
 *
 * What it does not vouch for, it reports as *fallback hours* (read back at close instead): a
 * reading out of time order for its device, a duplicate (same ts) with other values (InfluxDB
 * merges the two points), a device's first reading since luxtel started when its previous one
 * may be in InfluxDB only (within max_interval of the latest reading written before: `history`),
 * a reading replayed from the spool, a device seen under two zones (two series),
 * a telemetry line not in luxtel's own shape, an hour whose slot was taken. Each marks the hours
 * from ts - max_interval to the latest reading of the device.
 *
 * Clock: only readings' ts (epoch ms). Hours before `closed_ms` are closed (the upkeep's
 * watermark, wall clock): nothing is added to them any more.
 *
 * An in-order reading whose interval reaches back into closed hours (its device was silent past
 * their close, less than max_interval) changes them: they are handed back as *reopened* hours,
 * for the dirty hours' rebuild, as are the hours of readings that are themselves in closed hours
 * (late: `energy.upkeep.DirtyHours`).
 *
 * Memory: one fixed record per inventory device (`record_bytes()` each), allocated at creation;
 * the fallback hours are a set of at most `max_fallback` entries, past which they collapse into
 * one span (`fallback_span`).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MS_PER_H INT64_C(3600000)
#define NSLOT 4
#define ZONE_MAX 64
#define M_COUNTER 1
#define M_POWER 2
#define NO_HOUR INT64_MIN

typedef struct {
    int64_t hour;
    int64_t readings, flagged, resets;
    int64_t counter_mwh, power_mwh, verified_mwh, burn_ms, dim_ms, baseline_mw_ms;
    int methods;
} Acc;

typedef struct {
    int64_t t;
    int64_t first; /* the first reading seen since start: nothing is tallied before it */
    double e, p, dim;
    signed char has_e, has_p, has_dim, lamp; /* lamp: -1 not sent, 0 false, 1 true */
    char seen, untrusted;
    unsigned char zone_len;
    char zone[ZONE_MAX];
    Acc acc[NSLOT];
} Dev;

typedef struct {
    int64_t t;
    double e, p, dim;
    signed char has_e, has_p, has_dim, lamp;
} Rd;

/* A slot of the device index: an open-addressing table (linear probing, at most half full) of
 * the devices' ids. Why not a dict of str: a reading's look-up then made a str of its id,
 * hashed it and touched the dict's entry, the key and the int it held, each a cache miss with
 * a city's devices (at 25,000 the feed took 0.25 us a reading that way, 0.16 this way:
 * bench/README.md, "Rollup upkeep"); a slot holds the id's hash and position, the id's bytes
 * are compared only on a hash match. */
typedef struct {
    uint32_t hash;
    int32_t pos; /* -1: empty */
} Slot;

typedef struct {
    PyObject_HEAD
    Slot *slots;   /* the device index: mask + 1 slots */
    size_t mask;
    char *ids;     /* every device id's UTF-8 bytes, one after the other */
    size_t *id_at; /* device i's id: ids[id_at[i] .. id_at[i + 1]) */
    Py_ssize_t n;
    Dev *devs;
    double *gap_ms;
    int64_t *baseline_mw;
    double max_interval_ms;
    int64_t closed_ms;
    int64_t history_ms; /* no reading written before the tally listened is later than this */
    /* Per device, its line's head ("energy_hourly,circuit=…,device_id=…,zone=… ") and tail
     * (",inventory_crc=…i", after via_power), packed: head i is heads[head_at[i] ..
     * head_at[i + 1]), tail i tails[tail_at[i] .. tail_at[i + 1]). Why not the lists of str they
     * came in: a close then chased a pointer to a str object per line (bench/rollup_tally.py). */
    char *heads, *tails;
    size_t *head_at, *tail_at;
    double *expected;   /* per device: readings expected an hour */
    PyObject *fallback; /* set of hour starts (int ms) */
    PyObject *reopened; /* closed hours an interval now reaches into: to rebuild */
    Py_ssize_t max_fallback;
    int64_t span_lo, span_hi; /* collapsed fallback hours, NO_HOUR when none */
    long long tallied, skipped;
} Tally;

static int64_t floor_hour(int64_t t) {
    int64_t r = t % MS_PER_H;
    return r < 0 ? t - r - MS_PER_H : t - r;
}

static int add_fallback_hour(Tally *self, int64_t h) {
    if (h < self->closed_ms)
        return 0; /* closed: the dirty hours rebuild it */
    if (self->span_lo != NO_HOUR && h >= self->span_lo && h <= self->span_hi)
        return 0;
    if (PySet_GET_SIZE(self->fallback) >= self->max_fallback) {
        /* collapse everything into one span */
        PyObject *it = PyObject_GetIter(self->fallback);
        if (it == NULL)
            return -1;
        PyObject *item;
        int64_t lo = self->span_lo == NO_HOUR ? h : (self->span_lo < h ? self->span_lo : h);
        int64_t hi = self->span_lo == NO_HOUR ? h : (self->span_hi > h ? self->span_hi : h);
        while ((item = PyIter_Next(it)) != NULL) {
            long long v = PyLong_AsLongLong(item);
            Py_DECREF(item);
            if (v < lo)
                lo = v;
            if (v > hi)
                hi = v;
        }
        Py_DECREF(it);
        if (PyErr_Occurred())
            return -1;
        PySet_Clear(self->fallback);
        self->span_lo = lo;
        self->span_hi = hi;
        return 0;
    }
    PyObject *key = PyLong_FromLongLong(h);
    if (key == NULL)
        return -1;
    int rc = PySet_Add(self->fallback, key);
    Py_DECREF(key);
    return rc;
}

/* Every hour from floor_hour(a) to floor_hour(b) (both included) that is not closed. */
static int add_fallback_range(Tally *self, int64_t a, int64_t b) {
    int64_t lo = floor_hour(a), hi = floor_hour(b);
    if (lo < self->closed_ms)
        lo = self->closed_ms;
    for (int64_t h = lo; h <= hi; h += MS_PER_H) {
        if (add_fallback_hour(self, h) < 0)
            return -1;
    }
    return 0;
}

/* The accumulator of hour h of a device, or NULL when its slot holds another open hour (then h
 * is a fallback hour). */
static Acc *acc_of(Tally *self, Dev *d, int64_t h, int *error) {
    int64_t k = h / MS_PER_H;
    Acc *a = &d->acc[((k % NSLOT) + NSLOT) % NSLOT];
    if (a->hour == h)
        return a;
    if (a->hour == NO_HOUR || a->hour < self->closed_ms) {
        memset(a, 0, sizeof *a);
        a->hour = h;
        return a;
    }
    if (add_fallback_hour(self, h) < 0)
        *error = 1;
    return NULL;
}

static int lit(const Rd *r) {
    if (r->lamp >= 0)
        return r->lamp;
    return r->has_p && r->p > 0;
}

/* Python's n // d (floor division), in 128 bits. */
static __int128 floordiv(__int128 n, __int128 d) {
    __int128 q = n / d;
    if (n % d != 0 && ((n < 0) != (d < 0)))
        q -= 1;
    return q;
}

/* energy.counters.readable: |x| < 2^40 (and not NaN); energy.counters._dim: 0 <= dim <= 100. */
#define READABLE 1099511627776.0
static int readable(double x) { return x > -READABLE && x < READABLE; }
static int dim_known(signed char has, double dim) { return has && dim >= 0 && dim <= 100; }

/* energy.counters.milli: x in thousandths, to the nearest, halves up. */
static int64_t milli(double x) { return (int64_t)floor(x * 1000 + 0.5); }

/* energy.counters.round_half_up */
static int64_t round_half_up(double x) { return (int64_t)floor(x + 0.5); }

/* energy.counters.part: the share of [x, y) of q spread over [t0, t1). */
static int64_t part(int64_t q, int64_t t0, int64_t t1, int64_t x, int64_t y) {
    int64_t dt = t1 - t0;
    x = x < t0 ? t0 : (x > t1 ? t1 : x);
    y = y < t0 ? t0 : (y > t1 ? t1 : y);
    if (q > -INT32_MAX && q < INT32_MAX && dt > 0 && dt < INT32_MAX) {
        /* the products fit in 64 bits: the same floors without the 128-bit division routine
         * (__divmodti4: ~9 % of the feed's instructions under callgrind, bench/rollup_tally.py's
         * lines) */
        int64_t hi = q * (y - t0), lo = q * (x - t0);
        int64_t qh = hi / dt - (hi % dt != 0 && hi < 0), ql = lo / dt - (lo % dt != 0 && lo < 0);
        return qh - ql;
    }
    return (int64_t)(floordiv((__int128)q * (y - t0), dt) - floordiv((__int128)q * (x - t0), dt));
}

/* energy.counters.interval_between / CounterStream.push and ReportBuilder._account with
 * Tally.add: the interval a -> b shared over the open hours it overlaps. */
static int account(Tally *self, Py_ssize_t i, Dev *d, const Rd *a, const Rd *b) {
    int64_t dt = b->t - a->t;
    int64_t energy = 0, on_ms = 0, dim_on_ms = 0;
    int method = 0, reset = 0;
    enum { OK, GAP, RESET, MISSING } kind;
    if ((double)dt > self->max_interval_ms) {
        kind = MISSING;
    } else {
        if (a->has_e && b->has_e && readable(a->e) && readable(b->e)) {
            int64_t before = milli(a->e), after = milli(b->e);
            if (after >= before) {
                energy = after - before;
            } else {
                energy = after;
                reset = 1;
            }
            method = M_COUNTER;
        } else if (a->has_p && b->has_p && readable(a->p) && readable(b->p)) {
            __int128 n = ((__int128)milli(a->p) + milli(b->p)) * dt + MS_PER_H;
            energy = (int64_t)floordiv(n, 2 * MS_PER_H);
            method = M_POWER;
        }
        int a_on = lit(a), b_on = lit(b);
        if (a_on && b_on) {
            double dim;
            int a_dim = dim_known(a->has_dim, a->dim), b_dim = dim_known(b->has_dim, b->dim);
            if (a_dim && b_dim)
                dim = (a->dim + b->dim) / 2;
            else if (a_dim)
                dim = a->dim / 1;
            else if (b_dim)
                dim = b->dim / 1;
            else
                dim = 100.0;
            on_ms = dt;
            dim_on_ms = round_half_up(dim * (double)dt);
        } else if (a_on || b_on) {
            const Rd *l = a_on ? a : b;
            int64_t power_mw = l->has_p && readable(l->p) ? milli(l->p) : 0;
            if (power_mw > 0) {
                __int128 x = floordiv((__int128)energy * MS_PER_H, power_mw);
                on_ms = x < dt ? (int64_t)x : dt;
            } else {
                on_ms = dt / 2;
            }
            double dim = dim_known(l->has_dim, l->dim) ? l->dim : 100.0;
            dim_on_ms = round_half_up(dim * (double)on_ms);
        }
        if (method == 0)
            kind = MISSING;
        else if (reset)
            kind = RESET;
        else if ((double)dt > self->gap_ms[i])
            kind = GAP;
        else
            kind = OK;
    }
    int64_t lo = floor_hour(a->t);
    if (lo < self->closed_ms)
        lo = self->closed_ms;
    int error = 0;
    for (int64_t h = lo; h < b->t; h += MS_PER_H) {
        int64_t s = a->t > h ? a->t : h;
        int64_t e = b->t < h + MS_PER_H ? b->t : h + MS_PER_H;
        if (e - s <= 0)
            continue;
        Acc *acc = acc_of(self, d, h, &error);
        if (error)
            return -1;
        if (acc == NULL)
            continue;
        if (kind == MISSING) {
            acc->flagged += 1;
            continue;
        }
        int whole = s == a->t && e == b->t;
        int64_t share = whole ? energy : part(energy, a->t, b->t, s, e);
        if (method == M_COUNTER)
            acc->counter_mwh += share;
        else
            acc->power_mwh += share;
        acc->methods |= method;
        if (kind == OK) {
            int64_t on = whole ? on_ms : part(on_ms, a->t, b->t, s, e);
            acc->verified_mwh += share;
            acc->burn_ms += on;
            acc->dim_ms += whole ? dim_on_ms : part(dim_on_ms, a->t, b->t, s, e);
            acc->baseline_mw_ms += self->baseline_mw[i] * on;
        } else {
            acc->flagged += 1;
        }
    }
    if (kind == RESET) {
        int64_t h = floor_hour(b->t - 1);
        if (h >= self->closed_ms) {
            Acc *acc = acc_of(self, d, h, &error);
            if (error)
                return -1;
            if (acc != NULL)
                acc->resets += 1;
        }
    }
    return 0;
}

/* ---- parsing luxtel's telemetry lines -------------------------------------------------- */

static int parse_int64(const char *s, const char *end, int64_t *out) {
    int neg = 0;
    if (s < end && *s == '-') {
        neg = 1;
        s++;
    }
    if (s >= end || end - s > 18)
        return -1;
    int64_t v = 0;
    for (; s < end; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (*s - '0');
    }
    *out = neg ? -v : v;
    return 0;
}

static const double POW10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                               1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15};

static int parse_double(const char *s, const char *end, double *out) {
    /* Clinger's fast path: a plain decimal of at most 15 digits is an integer m < 2^53 over
     * 10^k (k <= 15), both exact in a double, so m / 10^k is one correctly rounded division:
     * the double strtod (and InfluxDB, and Python) read from the same text. */
    const char *p = s;
    int neg = 0;
    if (p < end && *p == '-') {
        neg = 1;
        p++;
    }
    int64_t m = 0;
    int digits = 0, decimals = 0, dot = 0;
    for (; p < end; p++) {
        if (*p >= '0' && *p <= '9') {
            if (++digits > 15)
                break;
            m = m * 10 + (*p - '0');
            decimals += dot;
        } else if (*p == '.' && !dot) {
            dot = 1;
        } else {
            break;
        }
    }
    if (p == end && digits > 0 && digits <= 15) {
        double v = (double)m / POW10[decimals];
        *out = neg ? -v : v;
        return 0;
    }
    char buf[64];
    size_t n = (size_t)(end - s);
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, s, n);
    buf[n] = 0;
    char *stop;
    *out = strtod(buf, &stop);
    return stop == buf + n ? 0 : -1;
}

/* One field's value: a float, an integer (`5i`) read as a float, or a boolean. Returns 1 for a
 * number, 2 for a boolean (in *flag), -1 for anything else. */
static int parse_value(const char *s, const char *end, double *number, int *flag) {
    if (end - s == 4 && memcmp(s, "true", 4) == 0) {
        *flag = 1;
        return 2;
    }
    if (end - s == 5 && memcmp(s, "false", 5) == 0) {
        *flag = 0;
        return 2;
    }
    if (end > s && end[-1] == 'i') {
        int64_t v;
        if (parse_int64(s, end - 1, &v) < 0)
            return -1;
        *number = (double)v;
        return 1;
    }
    return parse_double(s, end, number) < 0 ? -1 : 1;
}

/* The bytes that end a field's key, and its value. Why tables: walking a line's ~150 bytes of
 * fields, each byte tested against each delimiter and the end, was the larger part of the feed
 * (under callgrind, bench/rollup_tally.py's lines: 2,851 instructions a reading, 2,507 with
 * these tables and part's 64-bit path); the fields end at a space (before the ts), which ends
 * both scans, so they need no bound either. */
static const unsigned char KEY_END[256] = {['='] = 1, [' '] = 1};
/* The bytes that end a tag's value (the device id, the zone). */
static const unsigned char TAG_END[256] = {[','] = 1, [' '] = 1, ['\\'] = 1, ['='] = 1};

/* The keys of luxtel's telemetry fields with their '=', in the order both of its encoders write
 * them (influx.line_protocol.encode_reading, ingest/reading_lines.c), as 16 bytes zero-padded:
 * the next one expected is compared with two word compares instead of scanning the key byte by
 * byte (the key scan was ~450 instructions a reading under callgrind, bench/rollup_tally.py's
 * lines); any other key is scanned. */
#define N_KNOWN 10
static const char KNOWN[N_KNOWN][16] = {
    "lamp_on=",  "power_w=",     "energy_wh=",     "voltage_v=", "current_a=",
    "power_factor=", "driver_temp_c=", "lux=",     "seq=",       "dim_pct=",
};
static const unsigned char KNOWN_LEN[N_KNOWN] = {7, 7, 9, 9, 9, 12, 13, 3, 3, 7};

/* Whether the 16 bytes at p (readable) begin with known key k and its '='. */
static inline int is_known(const char *p, int k) {
    uint64_t w[2], want[2];
    memcpy(w, p, 16);
    memcpy(want, KNOWN[k], 16);
    unsigned n = KNOWN_LEN[k] + 1u; /* the key and '=': 4 to 14 bytes */
    uint64_t mask0 = n >= 8 ? ~UINT64_C(0) : (UINT64_C(1) << (8 * n)) - 1;
    uint64_t mask1 = n <= 8 ? 0 : (UINT64_C(1) << (8 * (n - 8))) - 1;
    return ((w[0] ^ want[0]) & mask0) == 0 && ((w[1] ^ want[1]) & mask1) == 0;
}
static const unsigned char VALUE_END[256] = {[','] = 1, ['"'] = 1, ['\\'] = 1, [' '] = 1};

#define PREFIX "telemetry,device_id="

/* Returns 0 parsed, 1 not telemetry, -1 a telemetry line not in our shape (ts in *t when it was
 * readable, else *t = NO_HOUR). */
static int parse_line(const char *s, Py_ssize_t len, const char **dev, Py_ssize_t *dev_len,
                      const char **zone, Py_ssize_t *zone_len, Rd *r) {
    const char *end = s + len;
    r->t = NO_HOUR;
    if ((size_t)len < sizeof PREFIX - 1 || memcmp(s, PREFIX, sizeof PREFIX - 1) != 0)
        return 1;
    const char *last_space = end;
    while (last_space > s && last_space[-1] != ' ')
        last_space--;
    int64_t t;
    if (last_space > s && parse_int64(last_space, end, &t) == 0)
        r->t = t;
    else
        return -1;
    const char *p = s + sizeof PREFIX - 1;
    *dev = p;
    while (p < end && !TAG_END[(unsigned char)*p])
        p++;
    *dev_len = p - *dev;
    if (p + 6 > end || memcmp(p, ",zone=", 6) != 0 || *dev_len == 0)
        return -1;
    p += 6;
    *zone = p;
    while (p < end && !TAG_END[(unsigned char)*p])
        p++;
    *zone_len = p - *zone;
    if (p >= end || *p != ' ' || *zone_len == 0)
        return -1;
    p++;
    const char *fields_end = last_space - 1;
    if (fields_end <= p)
        return -1;
    r->has_e = r->has_p = r->has_dim = 0;
    r->lamp = -1;
    int next = 0; /* the known key expected next */
    while (p < fields_end) {
        const char *key = p;
        while (next < N_KNOWN && end - p >= 16 && !is_known(p, next))
            next++;
        if (next < N_KNOWN && end - p >= 16) {
            p += KNOWN_LEN[next++]; /* at its '=', before fields_end: the ts follows */
        } else {
            while (!KEY_END[(unsigned char)*p]) /* *fields_end is a space: no bound needed */
                p++;
        }
        if (p >= fields_end || *p != '=')
            return -1;
        Py_ssize_t key_len = p - key;
        const char *value = ++p;
        while (!VALUE_END[(unsigned char)*p])
            p++;
        if (p < fields_end && *p != ',')
            return -1; /* a string, an escape or a space: not luxtel's shape */
#define KEY(name) (key_len == (Py_ssize_t)(sizeof(name) - 1) && memcmp(key, name, key_len) == 0)
        if (!(KEY("energy_wh") || KEY("power_w") || KEY("lamp_on") || KEY("dim_pct"))) {
            if (p < fields_end)
                p++; /* a field the rollups do not read */
            continue;
        }
        double number = 0;
        int flag = 0;
        int kind = parse_value(value, p, &number, &flag);
        if (kind < 0)
            return -1;
        if (KEY("energy_wh")) {
            if (kind != 1)
                return -1;
            r->e = number;
            r->has_e = 1;
        } else if (KEY("power_w")) {
            if (kind != 1)
                return -1;
            r->p = number;
            r->has_p = 1;
        } else if (KEY("lamp_on")) {
            if (kind != 2)
                return -1;
            r->lamp = (signed char)flag;
        } else if (KEY("dim_pct")) {
            if (kind != 1)
                return -1;
            r->dim = number;
            r->has_dim = 1;
        }
#undef KEY
        if (p < fields_end)
            p++; /* the comma */
    }
    return 0;
}

static void state_of(const Dev *d, Rd *r) {
    r->t = d->t;
    r->e = d->e;
    r->p = d->p;
    r->dim = d->dim;
    r->has_e = d->has_e;
    r->has_p = d->has_p;
    r->has_dim = d->has_dim;
    r->lamp = d->lamp;
}

static void set_state(Dev *d, const Rd *r) {
    d->t = r->t;
    d->e = r->e;
    d->p = r->p;
    d->dim = r->dim;
    d->has_e = r->has_e;
    d->has_p = r->has_p;
    d->has_dim = r->has_dim;
    d->lamp = r->lamp;
}

static int same_values(const Dev *d, const Rd *r) {
    return d->has_e == r->has_e && (!r->has_e || d->e == r->e) && d->has_p == r->has_p &&
           (!r->has_p || d->p == r->p) && d->has_dim == r->has_dim &&
           (!r->has_dim || d->dim == r->dim) && d->lamp == r->lamp;
}

/* InfluxDB's answer to a second point at the same series and time: the union of the fields,
 * the new values winning. */
static void merge_state(Dev *d, const Rd *r) {
    if (r->has_e) {
        d->e = r->e;
        d->has_e = 1;
    }
    if (r->has_p) {
        d->p = r->p;
        d->has_p = 1;
    }
    if (r->has_dim) {
        d->dim = r->dim;
        d->has_dim = 1;
    }
    if (r->lamp >= 0)
        d->lamp = r->lamp;
}

static int add_reopened(Tally *self, int64_t h) {
    PyObject *key = PyLong_FromLongLong(h);
    if (key == NULL)
        return -1;
    int rc = PySet_Add(self->reopened, key);
    Py_DECREF(key);
    return rc;
}

/* FNV-1a of an id's bytes; -1 when one is not ASCII (such an id is in no inventory's index:
 * the feed skips the line, as it did when it looked the id up as ASCII text). */
static int64_t id_hash(const char *id, Py_ssize_t len) {
    uint32_t h = 2166136261u;
    for (Py_ssize_t k = 0; k < len; k++) {
        unsigned char c = (unsigned char)id[k];
        if (c >= 0x80)
            return -1;
        h = (h ^ c) * 16777619u;
    }
    return h;
}

/* The position of the device with this id, or -1. */
static Py_ssize_t find_device(const Tally *self, const char *id, Py_ssize_t len, uint32_t h) {
    for (size_t k = h & self->mask;; k = (k + 1) & self->mask) {
        const Slot *slot = &self->slots[k];
        if (slot->pos < 0)
            return -1;
        if (slot->hash == h) {
            size_t at = self->id_at[slot->pos];
            if ((Py_ssize_t)(self->id_at[slot->pos + 1] - at) == len &&
                memcmp(self->ids + at, id, (size_t)len) == 0)
                return slot->pos;
        }
    }
}

static int feed_one(Tally *self, const char *s, Py_ssize_t len, int replayed) {
    const char *dev, *zone;
    Py_ssize_t dev_len = 0, zone_len = 0;
    Rd r;
    int64_t reach = (int64_t)self->max_interval_ms;
    int parsed = parse_line(s, len, &dev, &dev_len, &zone, &zone_len, &r);
    if (parsed == 1)
        return 0;
    if (r.t != NO_HOUR && r.t < self->closed_ms && add_reopened(self, floor_hour(r.t)) < 0)
        return -1; /* a reading of a closed hour: rebuild it (the dirty hours) */
    if (parsed < 0) {
        self->skipped++;
        if (r.t == NO_HOUR)
            return 0; /* no ts: InfluxDB refuses such a line; it was never written */
        return add_fallback_range(self, r.t - reach, r.t + reach);
    }
    int64_t h_id = id_hash(dev, dev_len);
    if (h_id < 0) {
        self->skipped++;
        return add_fallback_range(self, r.t - reach, r.t + reach);
    }
    Py_ssize_t i = find_device(self, dev, dev_len, (uint32_t)h_id);
    if (i < 0)
        return 0; /* not in the inventory: no rollup has it */
    Dev *d = &self->devs[i];
    if (d->seen && !d->untrusted &&
        ((Py_ssize_t)d->zone_len != zone_len || memcmp(d->zone, zone, (size_t)zone_len) != 0))
        d->untrusted = 1; /* two series for one device: the read-back merges them */
    if (d->untrusted) {
        int64_t hi = d->t > r.t ? d->t : r.t;
        if (r.t > d->t)
            set_state(d, &r);
        return add_fallback_range(self, r.t - reach, hi + reach);
    }
    if (!d->seen) {
        set_state(d, &r);
        d->first = r.t;
        d->seen = 1;
        if (zone_len > ZONE_MAX) {
            d->untrusted = 1;
        } else {
            memcpy(d->zone, zone, (size_t)zone_len);
            d->zone_len = (unsigned char)zone_len;
        }
        /* its previous reading may be in InfluxDB only (written before the tally listened) */
        if (r.t - reach <= self->history_ms)
            return add_fallback_range(self, r.t - reach, r.t);
        /* No reading before it within max_interval: the stretch from its hour's start to it
         * is without readings (an onboarding, or a break), as the build's finish() says. */
        int64_t h = floor_hour(r.t);
        int error = 0;
        if (h >= self->closed_ms) {
            Acc *acc = acc_of(self, d, h, &error);
            if (error)
                return -1;
            if (acc != NULL) {
                acc->readings += 1;
                if (r.t > h)
                    acc->flagged += 1;
            }
        }
        self->tallied++;
        return replayed ? add_fallback_range(self, r.t - reach, r.t) : 0;
    }
    if (r.t == d->t) {
        if (same_values(d, &r))
            return replayed ? add_fallback_range(self, r.t - reach, r.t) : 0;
        merge_state(d, &r);
        return add_fallback_range(self, r.t - reach, r.t);
    }
    if (r.t < d->t)
        return add_fallback_range(self, r.t - reach, d->t);
    Rd before;
    state_of(d, &before);
    if (before.t < self->closed_ms && (double)(r.t - before.t) <= self->max_interval_ms) {
        /* The interval reaches back into closed hours, which were closed with a stretch
         * without readings after `before`: they change (the read-back build would not have
         * seen this reading either). */
        int64_t stop = r.t < self->closed_ms ? r.t : self->closed_ms - 1;
        for (int64_t h = floor_hour(before.t); h <= stop; h += MS_PER_H) {
            if (add_reopened(self, h) < 0)
                return -1;
        }
    }
    int64_t h = floor_hour(r.t);
    int error = 0;
    if (h >= self->closed_ms) {
        Acc *acc = acc_of(self, d, h, &error);
        if (error)
            return -1;
        if (acc != NULL)
            acc->readings += 1;
    }
    if (account(self, i, d, &before, &r) < 0)
        return -1;
    set_state(d, &r);
    self->tallied++;
    if (replayed)
        return add_fallback_range(self, r.t - reach, r.t);
    return 0;
}

/* ---- the type -------------------------------------------------------------------------- */

static void Tally_dealloc(Tally *self) {
    PyMem_Free(self->slots);
    PyMem_Free(self->ids);
    PyMem_Free(self->id_at);
    Py_XDECREF(self->fallback);
    Py_XDECREF(self->reopened);
    PyMem_Free(self->heads);
    PyMem_Free(self->tails);
    PyMem_Free(self->head_at);
    PyMem_Free(self->tail_at);
    PyMem_Free(self->expected);
    PyMem_Free(self->devs);
    PyMem_Free(self->gap_ms);
    PyMem_Free(self->baseline_mw);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The UTF-8 of the n str of `list` one after the other in *text, item i at (*at)[i] ..
 * (*at)[i + 1]. */
static int pack_texts(PyObject *list, Py_ssize_t n, char **text, size_t **at) {
    size_t total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t len;
        if (PyUnicode_AsUTF8AndSize(PyList_GET_ITEM(list, i), &len) == NULL)
            return -1;
        total += (size_t)len;
    }
    *text = PyMem_Malloc(total ? total : 1);
    *at = PyMem_Calloc((size_t)n + 1, sizeof(size_t));
    if (*text == NULL || *at == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t len;
        const char *item = PyUnicode_AsUTF8AndSize(PyList_GET_ITEM(list, i), &len);
        memcpy(*text + (*at)[i], item, (size_t)len);
        (*at)[i + 1] = (*at)[i] + (size_t)len;
    }
    return 0;
}

static int Tally_init(Tally *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"devices",      "gap_ms", "baseline_mw", "max_interval_ms", "closed_ms",
                             "max_fallback", "heads",  "expected",    "tails",           NULL};
    PyObject *devices, *gaps, *baselines, *heads = NULL, *expected = NULL, *tails = NULL;
    double max_interval_ms;
    long long closed_ms;
    Py_ssize_t max_fallback;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOdLn|OOO", kwlist, &devices, &gaps, &baselines,
                                     &max_interval_ms, &closed_ms, &max_fallback, &heads,
                                     &expected, &tails))
        return -1;
    if (self->devs != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "HourTally is initialised once");
        return -1;
    }
    PyObject *dseq = PySequence_Fast(devices, "devices must be a sequence");
    if (dseq == NULL)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(dseq);
    if (PySequence_Size(gaps) != n || PySequence_Size(baselines) != n) {
        Py_DECREF(dseq);
        PyErr_SetString(PyExc_ValueError, "devices, gap_ms and baseline_mw differ in length");
        return -1;
    }
    if (max_interval_ms <= 0 || max_fallback < 1) {
        Py_DECREF(dseq);
        PyErr_SetString(PyExc_ValueError, "max_interval_ms and max_fallback must be positive");
        return -1;
    }
    if (n > INT32_MAX / 4) {
        Py_DECREF(dseq);
        PyErr_SetString(PyExc_ValueError, "too many devices");
        return -1;
    }
    size_t nslots = 16;
    while (nslots < 2 * (size_t)n)
        nslots *= 2;
    self->slots = PyMem_Malloc(nslots * sizeof(Slot));
    self->mask = nslots - 1;
    self->id_at = PyMem_Calloc((size_t)n + 1, sizeof(size_t));
    size_t id_bytes = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name = PySequence_Fast_GET_ITEM(dseq, i);
        Py_ssize_t name_len;
        if (!PyUnicode_Check(name) || PyUnicode_AsUTF8AndSize(name, &name_len) == NULL) {
            Py_DECREF(dseq);
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "device ids must be str");
            return -1;
        }
        id_bytes += (size_t)name_len;
    }
    self->ids = PyMem_Malloc(id_bytes ? id_bytes : 1);
    self->fallback = PySet_New(NULL);
    self->reopened = PySet_New(NULL);
    self->devs = PyMem_Calloc(n ? (size_t)n : 1, sizeof(Dev));
    self->gap_ms = PyMem_Calloc(n ? (size_t)n : 1, sizeof(double));
    self->baseline_mw = PyMem_Calloc(n ? (size_t)n : 1, sizeof(int64_t));
    if (!self->slots || !self->id_at || !self->ids || !self->fallback || !self->reopened ||
        !self->devs || !self->gap_ms || !self->baseline_mw) {
        Py_DECREF(dseq);
        PyErr_NoMemory();
        return -1;
    }
    for (size_t k = 0; k < nslots; k++)
        self->slots[k].pos = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t name_len;
        const char *name = PyUnicode_AsUTF8AndSize(PySequence_Fast_GET_ITEM(dseq, i), &name_len);
        size_t at = self->id_at[i];
        memcpy(self->ids + at, name, (size_t)name_len);
        self->id_at[i + 1] = at + (size_t)name_len;
        int64_t h = id_hash(name, name_len);
        if (h >= 0) { /* a later device of the same id takes its place, as in a dict */
            Py_ssize_t old = find_device(self, name, name_len, (uint32_t)h);
            size_t k = (uint32_t)h & self->mask;
            if (old >= 0) {
                while (self->slots[k].pos != old)
                    k = (k + 1) & self->mask;
            } else {
                while (self->slots[k].pos >= 0)
                    k = (k + 1) & self->mask;
            }
            self->slots[k].hash = (uint32_t)h;
            self->slots[k].pos = (int32_t)i;
        }
        PyObject *g = PySequence_GetItem(gaps, i);
        PyObject *b = PySequence_GetItem(baselines, i);
        self->gap_ms[i] = g ? PyFloat_AsDouble(g) : -1;
        self->baseline_mw[i] = b ? PyLong_AsLongLong(b) : -1;
        Py_XDECREF(g);
        Py_XDECREF(b);
        if (PyErr_Occurred()) {
            Py_DECREF(dseq);
            return -1;
        }
        for (int k = 0; k < NSLOT; k++)
            self->devs[i].acc[k].hour = NO_HOUR;
    }
    Py_DECREF(dseq);
    if (heads != NULL && expected != NULL && tails != NULL) {
        if (!PyList_Check(heads) || PyList_GET_SIZE(heads) != n || PySequence_Size(expected) != n ||
            !PyList_Check(tails) || PyList_GET_SIZE(tails) != n) {
            PyErr_SetString(PyExc_ValueError,
                            "heads, expected and tails: a list each, one per device");
            return -1;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            if (!PyUnicode_Check(PyList_GET_ITEM(heads, i)) ||
                !PyUnicode_Check(PyList_GET_ITEM(tails, i))) {
                PyErr_SetString(PyExc_TypeError, "heads and tails must be str");
                return -1;
            }
        }
        self->expected = PyMem_Calloc(n ? (size_t)n : 1, sizeof(double));
        if (self->expected == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *e = PySequence_GetItem(expected, i);
            self->expected[i] = e ? PyFloat_AsDouble(e) : -1;
            Py_XDECREF(e);
            if (PyErr_Occurred())
                return -1;
        }
        if (pack_texts(heads, n, &self->heads, &self->head_at) < 0 ||
            pack_texts(tails, n, &self->tails, &self->tail_at) < 0)
            return -1;
    }
    self->n = n;
    self->max_interval_ms = max_interval_ms;
    self->closed_ms = closed_ms;
    self->history_ms = INT64_MAX;
    self->max_fallback = max_fallback;
    self->span_lo = self->span_hi = NO_HOUR;
    return 0;
}

static PyObject *Tally_feed(Tally *self, PyObject *args) {
    PyObject *lines;
    int replayed = 0;
    if (!PyArg_ParseTuple(args, "O|p", &lines, &replayed))
        return NULL;
    if (self->devs == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "HourTally not initialised");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(lines, "lines must be a sequence of str");
    if (seq == NULL)
        return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t k = 0; k < count; k++) {
        Py_ssize_t len;
        const char *s = PyUnicode_AsUTF8AndSize(items[k], &len);
        if (s == NULL || feed_one(self, s, len, replayed) < 0) {
            Py_DECREF(seq);
            return NULL;
        }
    }
    Py_DECREF(seq);
    Py_RETURN_NONE;
}

static int hour_arg(PyObject *arg, long long *hour) {
    *hour = PyLong_AsLongLong(arg);
    if (*hour == -1 && PyErr_Occurred())
        return -1;
    if (*hour % MS_PER_H != 0) {
        PyErr_SetString(PyExc_ValueError, "take: an hour's start (ms) is a multiple of 3600000");
        return -1;
    }
    return 0;
}

/* Device i's sums of the hour, forgotten: its accumulator with the stretch at the end. */
static Acc take_one(Tally *self, Py_ssize_t i, int64_t hour) {
    Dev *d = &self->devs[i];
    int64_t k = hour / MS_PER_H;
    Acc *a = &d->acc[((k % NSLOT) + NSLOT) % NSLOT];
    Acc out;
    if (a->hour == hour) {
        out = *a;
        a->hour = NO_HOUR;
    } else {
        memset(&out, 0, sizeof out);
    }
    /* ReportBuilder.finish(closed=True): no reading at or after the hour's end yet, or none
     * before it that the tally knows of (then the hour lies more than max_interval before the
     * first one seen, or is a fallback hour): a stretch without readings */
    int64_t end = hour + MS_PER_H;
    if (!d->seen || d->t < end || d->first >= end)
        out.flagged += 1;
    return out;
}

static PyObject *Tally_take(Tally *self, PyObject *arg) {
    long long hour;
    if (hour_arg(arg, &hour) < 0)
        return NULL;
    PyObject *out = PyList_New(self->n);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < self->n; i++) {
        Acc use = take_one(self, i, hour);
        PyObject *row = Py_BuildValue(
            "(LLLiLLLLLL)", (long long)use.readings, (long long)use.counter_mwh,
            (long long)use.power_mwh, use.methods, (long long)use.verified_mwh,
            (long long)use.burn_ms, (long long)use.dim_ms, (long long)use.baseline_mw_ms,
            (long long)use.flagged, (long long)use.resets);
        if (row == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, row);
    }
    return out;
}

/* An integer's decimal digits, appended (callers hold ROLLUP_LINE_MAX bytes for a line). */
static const char DIGIT_PAIRS[201] = "00010203040506070809101112131415161718192021222324"
                                     "25262728293031323334353637383940414243444546474849"
                                     "50515253545556575859606162636465666768697071727374"
                                     "75767778798081828384858687888990919293949596979899";

static void put_int(char **p, long long v) {
    /* two digits a division (a line holds ~100 digits: one a division was a third of the
     * close's formatting, bench/rollup_tally.py) */
    char digits[24];
    int n = 24;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    while (u >= 100) {
        unsigned k = (unsigned)(u % 100) * 2;
        u /= 100;
        digits[--n] = DIGIT_PAIRS[k + 1];
        digits[--n] = DIGIT_PAIRS[k];
    }
    if (u >= 10) {
        digits[--n] = DIGIT_PAIRS[u * 2 + 1];
        digits[--n] = DIGIT_PAIRS[u * 2];
    } else {
        digits[--n] = (char)('0' + u);
    }
    if (v < 0)
        *(*p)++ = '-';
    memcpy(*p, digits + n, (size_t)(24 - n));
    *p += 24 - n;
}

/* A literal (a C string constant), appended. */
#define PUT(p, text)                                                                               \
    do {                                                                                           \
        memcpy(*(p), text, sizeof text - 1);                                                       \
        *(p) += sizeof text - 1;                                                                   \
    } while (0)

/* Python's repr of a float, appended. */
static int put_float(char **p, char *end, double v) {
    if (v == floor(v) && fabs(v) < 1e15 && !(v == 0.0 && signbit(v)) && end - *p > 24) {
        /* a whole number below 1e16: repr writes its digits and ".0" (0.0, 1.0, 100.0 — the
         * common cases), without the general routine */
        put_int(p, (long long)v);
        PUT(p, ".0");
        return 0;
    }
    char *text = PyOS_double_to_string(v, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (text == NULL)
        return -1;
    size_t n = strlen(text);
    if ((size_t)(end - *p) < n + 1) {
        PyMem_Free(text);
        PyErr_SetString(PyExc_RuntimeError, "take_lines: line too long");
        return -1;
    }
    memcpy(*p, text, n);
    *p += n;
    PyMem_Free(text);
    return 0;
}

/* `name=<v>i`, appended. */
#define PUT_INT(p, name, v)                                                                        \
    do {                                                                                           \
        PUT(p, name);                                                                              \
        put_int(p, v);                                                                             \
        *(*(p))++ = 'i';                                                                           \
    } while (0)

#define ROLLUP_LINE_MAX 1536
/* A line: its head (at most 512 bytes, checked), its tail (64) and the rest (the fields and
 * the time: under 700). */

/* Device i's line of the hour (its sums taken and forgotten): energy.rollup.line(Rollup.of(lum,
 * hour, tally)), character for character, written at buf (ROLLUP_LINE_MAX bytes free); returns its
 * length, or -1 with an exception set. */
static Py_ssize_t put_line(Tally *self, Py_ssize_t i, int64_t hour, char *buf) {
    Acc use = take_one(self, i, hour);
    /* divmod(baseline mW·ms, 3,600,000): whole mWh and the rest (energy.rollup.BASELINE) */
    long long whole = (long long)floordiv(use.baseline_mw_ms, MS_PER_H);
    long long rest = (long long)use.baseline_mw_ms - whole * MS_PER_H;
    int methods = use.methods;
    const char *head = self->heads + self->head_at[i], *tail = self->tails + self->tail_at[i];
    size_t head_len = self->head_at[i + 1] - self->head_at[i];
    size_t tail_len = self->tail_at[i + 1] - self->tail_at[i];
    if (head_len > 512 || tail_len > 64) {
        PyErr_SetString(PyExc_ValueError, "take_lines: tags too long");
        return -1;
    }
    char *p = buf, *end = buf + ROLLUP_LINE_MAX;
    memcpy(p, head, (size_t)head_len);
    p += head_len;
    PUT_INT(&p, "readings=", (long long)use.readings);
    PUT(&p, ",expected=");
    if (put_float(&p, end, self->expected[i]) < 0)
        return -1;
    PUT_INT(&p, ",metered_mwh=", (long long)(use.counter_mwh + use.power_mwh));
    PUT_INT(&p, ",counter_mwh=", (long long)use.counter_mwh);
    PUT_INT(&p, ",power_mwh=", (long long)use.power_mwh);
    PUT_INT(&p, ",verified_mwh=", (long long)use.verified_mwh);
    PUT_INT(&p, ",burning_ms=", (long long)use.burn_ms);
    PUT_INT(&p, ",dim_pct_ms=", (long long)use.dim_ms);
    PUT_INT(&p, ",baseline_mwh=", whole);
    PUT_INT(&p, ",baseline_rest=", rest);
    PUT_INT(&p, ",flagged=", (long long)use.flagged);
    PUT_INT(&p, ",resets=", (long long)use.resets);
    if (use.flagged)
        PUT(&p, ",gap=true,method=\"");
    else
        PUT(&p, ",gap=false,method=\"");
    if (methods == 3)
        PUT(&p, "counter+power");
    else if (methods == 1)
        PUT(&p, "counter");
    else if (methods == 2)
        PUT(&p, "power");
    else
        PUT(&p, "none");
    PUT_INT(&p, "\",via_counter=", (long long)((methods & 1) ? 1 : 0));
    PUT_INT(&p, ",via_power=", (long long)((methods & 2) ? 1 : 0));
    memcpy(p, tail, (size_t)tail_len);
    p += tail_len;
    PUT_INT(&p, ",reported=", (long long)(use.readings > 0 ? 1 : 0));
    *p++ = ' ';
    put_int(&p, (long long)hour);
    return p - buf;
}

static int lines_arg(Tally *self, PyObject *arg, long long *hour) {
    if (self->head_at == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "take_lines needs heads, expected and tails");
        return -1;
    }
    return hour_arg(arg, hour);
}

/* energy.rollup.line(Rollup.of(lum, hour, tally)) for every device, as str. */
static PyObject *Tally_take_lines(Tally *self, PyObject *arg) {
    long long hour;
    if (lines_arg(self, arg, &hour) < 0)
        return NULL;
    PyObject *out = PyList_New(self->n);
    if (out == NULL)
        return NULL;
    char buf[ROLLUP_LINE_MAX];
    for (Py_ssize_t i = 0; i < self->n; i++) {
        Py_ssize_t len = put_line(self, i, hour, buf);
        PyObject *text = len < 0 ? NULL : PyUnicode_DecodeUTF8(buf, len, NULL);
        if (text == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, text);
    }
    return out;
}

/* The same lines, written straight into write bodies: bytes of at most `per_body` lines joined
 * by "\n" (b"\n".join of take_lines' lines, encoded, in slices). Why: at a city's cadence (4
 * readings a device-hour) a str per line, then joining and encoding them, cost as much as
 * formatting them (bench/README.md, "Rollup upkeep"). */
static PyObject *Tally_take_bodies(Tally *self, PyObject *args) {
    PyObject *hour_obj;
    Py_ssize_t per_body;
    if (!PyArg_ParseTuple(args, "On", &hour_obj, &per_body))
        return NULL;
    long long hour;
    if (lines_arg(self, hour_obj, &hour) < 0)
        return NULL;
    if (per_body < 1) {
        PyErr_SetString(PyExc_ValueError, "take_bodies: per_body must be positive");
        return NULL;
    }
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    /* Each body is formatted straight into its bytes object, made for its lines at their
     * longest and then shrunk (pages never written are never touched): no copy. */
    for (Py_ssize_t i = 0; i < self->n;) {
        Py_ssize_t lines = self->n - i < per_body ? self->n - i : per_body;
        PyObject *chunk = PyBytes_FromStringAndSize(NULL, lines * (ROLLUP_LINE_MAX + 1));
        if (chunk == NULL)
            goto fail;
        char *body = PyBytes_AS_STRING(chunk);
        size_t used = 0;
        for (Py_ssize_t k = 0; k < lines; k++, i++) {
            if (k)
                body[used++] = '\n';
            Py_ssize_t len = put_line(self, i, hour, body + used);
            if (len < 0) {
                Py_DECREF(chunk);
                goto fail;
            }
            used += (size_t)len;
        }
        if (_PyBytes_Resize(&chunk, (Py_ssize_t)used) < 0)
            goto fail;
        int appended = PyList_Append(out, chunk);
        Py_DECREF(chunk);
        if (appended < 0)
            goto fail;
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

static PyObject *Tally_close(Tally *self, PyObject *arg) {
    long long closed = PyLong_AsLongLong(arg);
    if (closed == -1 && PyErr_Occurred())
        return NULL;
    if (closed > self->closed_ms)
        self->closed_ms = closed;
    Py_RETURN_NONE;
}

static PyObject *Tally_history(Tally *self, PyObject *arg) {
    long long latest = PyLong_AsLongLong(arg);
    if (latest == -1 && PyErr_Occurred())
        return NULL;
    self->history_ms = latest;
    Py_RETURN_NONE;
}

static PyObject *Tally_fallback(Tally *self, PyObject *Py_UNUSED(ignored)) {
    PyObject *hours = PySet_New(self->fallback);
    if (hours == NULL)
        return NULL;
    PyObject *span = self->span_lo == NO_HOUR
                         ? Py_NewRef(Py_None)
                         : Py_BuildValue("(LL)", (long long)self->span_lo,
                                         (long long)self->span_hi);
    if (span == NULL) {
        Py_DECREF(hours);
        return NULL;
    }
    return Py_BuildValue("(NN)", hours, span);
}

static PyObject *Tally_forget(Tally *self, PyObject *arg) {
    /* drop the fallback hours before `arg` (closed and dealt with) */
    long long before = PyLong_AsLongLong(arg);
    if (before == -1 && PyErr_Occurred())
        return NULL;
    PyObject *keep = PySet_New(NULL);
    if (keep == NULL)
        return NULL;
    PyObject *it = PyObject_GetIter(self->fallback);
    PyObject *item;
    while (it != NULL && (item = PyIter_Next(it)) != NULL) {
        if (PyLong_AsLongLong(item) >= before && PySet_Add(keep, item) < 0) {
            Py_DECREF(item);
            break;
        }
        Py_DECREF(item);
    }
    Py_XDECREF(it);
    if (PyErr_Occurred()) {
        Py_DECREF(keep);
        return NULL;
    }
    Py_SETREF(self->fallback, keep);
    if (self->span_lo != NO_HOUR && self->span_hi < before)
        self->span_lo = self->span_hi = NO_HOUR;
    else if (self->span_lo != NO_HOUR && self->span_lo < before)
        self->span_lo = before;
    Py_RETURN_NONE;
}

static PyObject *Tally_reopened(Tally *self, PyObject *Py_UNUSED(ignored)) {
    PyObject *hours = self->reopened;
    self->reopened = PySet_New(NULL);
    if (self->reopened == NULL) {
        self->reopened = hours;
        return NULL;
    }
    return hours;
}

static PyObject *Tally_stats(Tally *self, PyObject *Py_UNUSED(ignored)) {
    return Py_BuildValue("{s:L,s:L,s:n}", "tallied", self->tallied, "skipped", self->skipped,
                         "fallback_hours", PySet_GET_SIZE(self->fallback));
}

static PyObject *record_bytes(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored)) {
    /* its record, gap, baseline, id offset and two index slots (its id's bytes: with its head) */
    return PyLong_FromSize_t(sizeof(Dev) + sizeof(double) + 2 * sizeof(int64_t) + 2 * sizeof(Slot));
}

static PyMethodDef Tally_methods[] = {
    {"feed", (PyCFunction)Tally_feed, METH_VARARGS,
     "feed(lines, replayed=False): the lines InfluxDB has just accepted."},
    {"take", (PyCFunction)Tally_take, METH_O,
     "take(hour_ms): every device's sums of that hour, in the order of `devices`, and forget "
     "them: (readings, counter_mwh, power_mwh, methods, verified_mwh, burn_ms, dim_ms, "
     "baseline_mw_ms, flagged, resets), integers; methods: 1 counter, 2 power."},
    {"take_lines", (PyCFunction)Tally_take_lines, METH_O,
     "take_lines(hour_ms): as take, as energy.rollup.line's lines (needs heads, expected)."},
    {"take_bodies", (PyCFunction)Tally_take_bodies, METH_VARARGS,
     "take_bodies(hour_ms, per_body): as take_lines, as write bodies: bytes of at most "
     "per_body lines joined by newlines."},
    {"close", (PyCFunction)Tally_close, METH_O,
     "close(ms): hours before ms are closed; nothing is added to them any more."},
    {"history", (PyCFunction)Tally_history, METH_O,
     "history(ms): no reading written before the tally was fed is later than ms (until told, "
     "any may be: a device's first reading then always falls back)."},
    {"fallback", (PyCFunction)Tally_fallback, METH_NOARGS,
     "fallback() -> (set of hour ms, (lo, hi) span or None): hours to read back."},
    {"forget", (PyCFunction)Tally_forget, METH_O,
     "forget(ms): drop the fallback hours before ms."},
    {"reopened", (PyCFunction)Tally_reopened, METH_NOARGS,
     "reopened() -> set of closed hours (ms) that readings fed since the last call change: "
     "rebuild them."},
    {"stats", (PyCFunction)Tally_stats, METH_NOARGS, "counters: tallied, skipped, fallback_hours"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject TallyType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "energy.hour_tally.HourTally",
    .tp_basicsize = sizeof(Tally),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Per device per hour rollup sums tallied from written telemetry lines.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Tally_init,
    .tp_dealloc = (destructor)Tally_dealloc,
    .tp_methods = Tally_methods,
};

static PyMethodDef module_methods[] = {
    {"record_bytes", record_bytes, METH_NOARGS, "Bytes a device's record takes."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "energy.hour_tally",
    .m_doc = "Hourly rollup sums tallied from telemetry lines (see hour_tally.c).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit_hour_tally(void) {
    if (PyType_Ready(&TallyType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    if (PyModule_AddObjectRef(module, "HourTally", (PyObject *)&TallyType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
