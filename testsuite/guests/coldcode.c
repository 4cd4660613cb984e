/*
 * Cold code: thousands of distinct small functions (generated at build time by
 * testsuite/src/coldcode.rs into the build directory; arithmetic, branches and short
 * loops, each function different), every one called CALLS times, a round over all of
 * them at a time. Nearly all of the work is code that runs a few times, as in a kernel
 * boot: a translator pays for translating it and gets little back, so the time is
 * translation cost, not code quality. SCALE multiplies the calls per function (4 at
 * SCALE=1); at large scales the code is no longer cold. Prints a hash per group of 500
 * functions and one over everything.
 */
#include "rt.h"

#define CALLS (4 * SCALE)
#define GROUP 500

extern u64 (*const cold_fns[])(u64, u64);
extern const u32 cold_count;

static u64 groups[64];

int main(void)
{
    u64 all = 0, x = 0x0123456789abcdefu;
    u32 n = cold_count;
    if (n > GROUP * ARRAY_LEN(groups))
        return fail("coldcode", "too many functions for the group table");
    for (u32 round = 0; round < CALLS; round++) {
        for (u32 i = 0; i < n; i++) {
            u64 v = cold_fns[i](x, ((u64)round << 32) | i);
            groups[i / GROUP] = mix64(groups[i / GROUP], v);
            x = v ^ (x >> 7);
        }
        all = mix64(all, x);
    }

    print_str("coldcode:");
    print_kv("functions", n);
    print_kv("calls", (u64)n * CALLS);
    print_kv("all", all);
    print_nl();
    for (u32 g = 0; g * GROUP < n; g++) {
        print_str("coldcode:");
        print_kv("group", g);
        print_kv("hash", groups[g]);
        print_nl();
    }
    return 0;
}
