/*
 * mqtt.publish_frames: the run of plain PUBLISH packets at the start of a received chunk, split
 * in C.
 *
 * Why by hand, in C: during a backlog nearly every byte luxtel receives is a PUBLISH, and
 * splitting them in Python (`StreamDecoder.feed`) took ~20 % of luxtel's CPU per telemetry
 * message (py-spy over `python bench/ingest.py --only luxtel --profile DIR`), ~3 us of the ~15
 * left once the decoder was in C.
 *
 * It decides only one way, like `reading_lines`: it takes the complete, plain PUBLISH packets it
 * is sure of and stops at the first packet that is anything else - another packet type, one not
 * yet complete, one over the size limit, QoS 2 or 3, a packet id of 0, an empty or overlong
 * topic, MQTT 5 properties other than none, a remaining length of more than four bytes - and
 * `StreamDecoder.feed` then handles that packet exactly as before: it raises the protocol errors,
 * reads properties, keeps partial packets. Held to the Python decoder by property tests
 * (tests/test_publish_frames.py): any stream, chunked any way, gives the same packets.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define PUBLISH 3

/* A Publish (a named tuple: topic, payload, qos, packet_id, retain, dup), built as tuple.__new__
 * would build it. NULL with an exception set on failure. */
static PyObject *new_publish(PyTypeObject *cls, const unsigned char *topic, Py_ssize_t topic_length,
                             const unsigned char *payload, Py_ssize_t payload_length, int qos,
                             long packet_id, int retain, int dup) {
    PyObject *packet = cls->tp_alloc(cls, 6);
    if (packet == NULL)
        return NULL;
    PyObject *items[6] = {
        PyBytes_FromStringAndSize((const char *)topic, topic_length),
        PyBytes_FromStringAndSize((const char *)payload, payload_length),
        PyLong_FromLong(qos),
        PyLong_FromLong(packet_id),
        PyBool_FromLong(retain),
        PyBool_FromLong(dup),
    };
    int failed = 0;
    for (int i = 0; i < 6; i++) {
        if (items[i] == NULL)
            failed = 1;
        PyTuple_SET_ITEM(packet, i, items[i]); /* NULL items are fine for the dealloc below */
    }
    if (failed) {
        Py_DECREF(packet);
        return NULL;
    }
    return packet;
}

/* split(cls, data, start, v5, limit, out) -> position: appends to `out` a `cls` for each plain
 * PUBLISH from `start` on and returns where it stopped (`start` when it took none). */
static PyObject *split(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 6 || !PyType_Check(args[0]) ||
        !PyType_IsSubtype((PyTypeObject *)args[0], &PyTuple_Type) || !PyBytes_Check(args[1]) ||
        !PyList_Check(args[5])) {
        PyErr_SetString(PyExc_TypeError,
                        "split(cls: tuple subclass, data: bytes, start, v5, limit, out: list)");
        return NULL;
    }
    PyTypeObject *cls = (PyTypeObject *)args[0];
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(args[1]);
    Py_ssize_t n = PyBytes_GET_SIZE(args[1]);
    Py_ssize_t i = PyLong_AsSsize_t(args[2]);
    if (i == -1 && PyErr_Occurred())
        return NULL;
    int v5 = PyObject_IsTrue(args[3]);
    if (v5 < 0)
        return NULL;
    Py_ssize_t limit = PyLong_AsSsize_t(args[4]);
    if (limit == -1 && PyErr_Occurred())
        return NULL;
    PyObject *out = args[5];
    if (i < 0 || i > n) {
        PyErr_SetString(PyExc_ValueError, "start is outside the data");
        return NULL;
    }
    while (n - i >= 2) {
        unsigned char first = data[i];
        if (first >> 4 != PUBLISH)
            break;
        int qos = (first >> 1) & 3;
        if (qos > 1)
            break;
        /* The remaining length: 1 to 4 bytes, 7 bits each. */
        Py_ssize_t length = 0, j = i + 1;
        int shift = 0, complete = 0;
        while (j < n && shift <= 21) {
            unsigned char byte = data[j++];
            length |= (Py_ssize_t)(byte & 0x7F) << shift;
            if (byte < 0x80) {
                complete = 1;
                break;
            }
            shift += 7;
        }
        if (!complete)
            break;
        Py_ssize_t end = j + length;
        if (end - i > limit || end > n)
            break;
        if (j + 2 > end)
            break;
        Py_ssize_t topic_length = ((Py_ssize_t)data[j] << 8) | data[j + 1];
        Py_ssize_t topic_start = j + 2, k = topic_start + topic_length;
        if (topic_length == 0 || k > end)
            break;
        long packet_id = 0;
        if (qos) {
            if (k + 2 > end)
                break;
            packet_id = ((long)data[k] << 8) | data[k + 1];
            if (packet_id == 0)
                break;
            k += 2;
        }
        if (v5) {
            if (k >= end || data[k] != 0)
                break; /* properties (or none at all): StreamDecoder reads them */
            k += 1;
        }
        PyObject *packet = new_publish(cls, data + topic_start, topic_length, data + k, end - k,
                                       qos, packet_id, first & 1, (first & 8) != 0);
        if (packet == NULL)
            return NULL;
        int failed = PyList_Append(out, packet);
        Py_DECREF(packet);
        if (failed)
            return NULL;
        i = end;
    }
    return PyLong_FromSsize_t(i);
}

static PyMethodDef methods[] = {
    {"split", (PyCFunction)(void (*)(void))split, METH_FASTCALL,
     "split(cls, data, start, v5, limit, out)\n--\n\n"
     "Append the plain PUBLISH packets from `start` on to `out`; return where it stopped."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "mqtt.publish_frames",
    .m_doc = "Plain PUBLISH packets split in C (see publish_frames.c for why).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit_publish_frames(void) { return PyModule_Create(&module_def); }
