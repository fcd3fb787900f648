/*
 * Edge coverage of a gcc-built C extension for libFuzzer (atheris), which gcc cannot give it
 * directly: gcc's -fsanitize-coverage=trace-pc calls __sanitizer_cov_trace_pc at every basic
 * block, which libFuzzer no longer counts. This defines it to bump an 8-bit counter per code
 * offset and registers the counters (and a matching PC table) with the libFuzzer preloaded by
 * atheris's asan_with_fuzzer.so. Fuzzing only: linked into an instrumented build, never shipped.
 *
 * In a copy of the tree (never over the module pip built in place), with I the Python headers:
 *   gcc -c -fPIC -O2 fuzz/coverage_counters.c -o counters.o      # itself not instrumented
 *   gcc -c -fPIC -std=c11 -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
 *       -fsanitize-undefined-trap-on-error -fsanitize-coverage=trace-pc,trace-cmp -I$I \
 *       ingest/reading_lines.c -o reading_lines.o
 *   gcc -shared reading_lines.o counters.o \
 *       -o ingest/reading_lines.cpython-311-x86_64-linux-gnu.so
 * (linked without -fsanitize: ASan's symbols then come from the one preloaded runtime), then
 *   PYTHONMALLOC=malloc ASAN_OPTIONS=detect_leaks=0 \
 *   LD_PRELOAD=.venv/lib/python3.11/site-packages/asan_with_fuzzer.so \
 *       .venv/bin/python fuzz/fuzz_reading_lines.py <corpus dir> fuzz/corpus_reading_lines
 * PYTHONMALLOC=malloc matters: CPython's own allocator carves small objects (a payload of under
 * 512 bytes) out of arenas ASan sees as one block, so a read past the payload goes unnoticed.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>

#define COUNTERS (1u << 16) /* code offsets of the module, folded: it is far smaller */

static uint8_t counters[COUNTERS];
static uintptr_t pcs[2 * COUNTERS]; /* (pc, flags) pairs, as libFuzzer's PC tables are */
static uintptr_t base;

extern void __sanitizer_cov_8bit_counters_init(uint8_t *start, uint8_t *stop)
    __attribute__((weak));
extern void __sanitizer_cov_pcs_init(const uintptr_t *start, const uintptr_t *stop)
    __attribute__((weak));

/* Hidden: bound inside the module, so that the preloaded libFuzzer's own does not take it. */
__attribute__((visibility("hidden"))) void __sanitizer_cov_trace_pc(void) {
    uintptr_t pc = (uintptr_t)__builtin_return_address(0);
    uint8_t *counter = &counters[(pc - base) & (COUNTERS - 1)];
    if (*counter != 0xff)
        (*counter)++;
}

/* gcc's comparisons of doubles: libFuzzer (clang's) has no hook for them. */
__attribute__((visibility("hidden"))) void __sanitizer_cov_trace_cmpd(double a, double b) {
    (void)a;
    (void)b;
}

__attribute__((visibility("hidden"))) void __sanitizer_cov_trace_cmpf(float a, float b) {
    (void)a;
    (void)b;
}

__attribute__((constructor)) static void register_counters(void) {
    Dl_info info;
    if (dladdr((void *)register_counters, &info) != 0)
        base = (uintptr_t)info.dli_fbase;
    for (uintptr_t i = 0; i < COUNTERS; i++)
        pcs[2 * i] = base + i;
    if (__sanitizer_cov_8bit_counters_init != 0 && __sanitizer_cov_pcs_init != 0) {
        __sanitizer_cov_8bit_counters_init(counters, counters + COUNTERS);
        __sanitizer_cov_pcs_init(pcs, pcs + 2 * COUNTERS);
    }
}
