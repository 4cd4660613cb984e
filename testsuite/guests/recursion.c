/*
 * Call-heavy code: Ackermann, naive Fibonacci, Takeuchi, mutual recursion, and a
 * non-tail recursion 20000 frames deep whose frames stay live across the call
 * (about 640 KiB of the 1 MiB stack). Prints results and how many stack bytes the
 * deep recursion used, which is address-independent and so must match natively.
 */
#include "rt.h"

#define DEPTH 20000

static u64 calls;
static usize stack_low;

NOINLINE static u64 ackermann(u64 m, u64 n)
{
    calls++;
    if (m == 0)
        return n + 1;
    if (n == 0)
        return ackermann(m - 1, 1);
    return ackermann(m - 1, ackermann(m, n - 1));
}

NOINLINE static u64 fib(u64 n)
{
    calls++;
    return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

NOINLINE static i64 tak(i64 x, i64 y, i64 z)
{
    calls++;
    if (y >= x)
        return z;
    return tak(tak(x - 1, y, z), tak(y - 1, z, x), tak(z - 1, x, y));
}

NOINLINE static int is_odd(u32 n);

NOINLINE static int is_even(u32 n)
{
    calls++;
    return n == 0 ? 1 : is_odd(n - 1) * 1;
}

NOINLINE static int is_odd(u32 n)
{
    calls++;
    return n == 0 ? 0 : is_even(n - 1) * 1;
}

/* The volatile slots are read after the call returns, so no frame can be elided. */
NOINLINE static u64 deep(u32 n, u64 seed)
{
    volatile u64 slot[2];
    slot[0] = seed ^ n;
    slot[1] = seed + n;
    if ((usize)&slot[0] < stack_low)
        stack_low = (usize)&slot[0];
    if (n == 0)
        return seed;
    u64 r = deep(n - 1, seed * 6364136223846793005UL + n);
    return (r ^ slot[n & 1]) + (r >> 7);
}

int main(void)
{
    u64 acc = 0, ack = 0, fibv = 0, deepv = 0;
    i64 takv = 0;
    int parity = 0;
    usize stack_used = 0;
    for (u32 round = 0; round < SCALE; round++) {
        u64 m = 3, n = 5 + (round & 1);
        OPAQUE(m);
        ack = ackermann(m, n);
        fibv = fib(22 + (round & 1));
        takv = tak(18, 12, 6 - (i64)(round & 1));
        parity = is_even(5001 + round) + 2 * is_odd(4001 + round);

        /* Measure from a local in this frame down to the deepest slot. */
        volatile u64 here = 0;
        stack_low = (usize)&here;
        deepv = deep(DEPTH, 0x1234 + round);
        stack_used = (usize)&here - stack_low;
        acc = mix64(mix64(mix64(acc, ack), fibv), mix64((u64)takv, deepv));
    }
    print_str("recursion:");
    print_kv("ack", ack);
    print_kv("fib", fibv);
    print_kv("tak", (u64)takv);
    print_kv("parity", (u64)parity);
    print_kv("deep", deepv);
    print_nl();
    print_str("recursion:");
    print_kv("acc", acc);
    print_kv("calls", calls);
    print_kv("stack_used", stack_used);
    print_nl();
    if (SCALE == 1 && (ack != 253 || fibv != 17711 || takv != 7))
        return fail("recursion", "known values of ack(3,5), fib(22), tak(18,12,6)");
    return 0;
}
