/*
 * Segmented sieve of Eratosthenes over [0, SCALE * 2^18): byte flags, one 64 KiB
 * segment at a time, base primes from a small plain sieve. Prints the prime count,
 * their sum, and a hash of the gaps. At SCALE=1 the count must be pi(2^18) = 23000.
 */
#include "rt.h"

#define SEGMENT (1u << 16)
#define LIMIT ((u64)SCALE << 18)
#define MAX_BASE 65536 /* covers sqrt(LIMIT) for SCALE up to 2^14 */

static u8 base_composite[MAX_BASE + 1];
static u32 base_primes[8192];
static u8 segment[SEGMENT];

static u32 isqrt(u64 n)
{
    u64 r = 0;
    while ((r + 1) * (r + 1) <= n)
        r++;
    return (u32)r;
}

int main(void)
{
    u32 root = isqrt(LIMIT - 1);
    u32 nbase = 0;
    for (u32 i = 2; i <= root; i++) {
        if (base_composite[i])
            continue;
        base_primes[nbase++] = i;
        for (u32 j = i * i; j <= root; j += i)
            base_composite[j] = 1;
    }

    u64 count = 0, sum = 0, gaps = 0, last = 0;
    for (u64 lo = 0; lo < LIMIT; lo += SEGMENT) {
        memset(segment, 0, SEGMENT);
        if (lo == 0)
            segment[0] = segment[1] = 1;
        for (u32 k = 0; k < nbase; k++) {
            u64 p = base_primes[k];
            u64 start = p * p;
            if (start >= lo + SEGMENT)
                break;
            if (start < lo)
                start = (lo + p - 1) / p * p;
            for (u64 j = start - lo; j < SEGMENT; j += p)
                segment[j] = 1;
        }
        for (u32 i = 0; i < SEGMENT; i++) {
            if (segment[i])
                continue;
            u64 n = lo + i;
            count++;
            sum += n;
            gaps = mix64(gaps, n - last);
            last = n;
        }
    }

    print_str("sieve:");
    print_kv("limit", LIMIT);
    print_kv("count", count);
    print_kv("sum", sum);
    print_kv("gaps", gaps);
    print_kv("last", last);
    print_nl();
    if (SCALE == 1 && count != 23000)
        return fail("sieve", "pi(2^18) != 23000");
    return 0;
}
