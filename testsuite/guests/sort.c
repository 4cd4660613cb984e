/*
 * Quicksort (median of three, insertion sort for short runs, comparator called
 * through a function pointer) and top-down mergesort over signed 64-bit LCG data,
 * SCALE rounds of 12000 elements. Both results must be sorted permutations of the
 * input and identical.
 */
#include "rt.h"

#define N 12000

typedef int (*cmp_fn)(i64, i64);

static i64 input[N], qs[N], ms[N], tmp[N];

static int cmp_i64(i64 a, i64 b)
{
    return (a > b) - (a < b);
}

static void insertion(i64 *a, i64 n, cmp_fn cmp)
{
    for (i64 i = 1; i < n; i++) {
        i64 v = a[i], j = i - 1;
        while (j >= 0 && cmp(a[j], v) > 0) {
            a[j + 1] = a[j];
            j--;
        }
        a[j + 1] = v;
    }
}

static void swap(i64 *a, i64 *b)
{
    i64 t = *a;
    *a = *b;
    *b = t;
}

/* The indirect comparator call is the point: it gives the translator indirect calls. */
NOINLINE static void quicksort(i64 *a, i64 n, cmp_fn cmp)
{
    while (n > 16) {
        i64 mid = n / 2;
        if (cmp(a[mid], a[0]) < 0)
            swap(&a[mid], &a[0]);
        if (cmp(a[n - 1], a[0]) < 0)
            swap(&a[n - 1], &a[0]);
        if (cmp(a[n - 1], a[mid]) < 0)
            swap(&a[n - 1], &a[mid]);
        i64 pivot = a[mid];
        i64 i = -1, j = n;
        for (;;) {
            do
                i++;
            while (cmp(a[i], pivot) < 0);
            do
                j--;
            while (cmp(a[j], pivot) > 0);
            if (i >= j)
                break;
            swap(&a[i], &a[j]);
        }
        /* Recurse into the smaller half so the stack stays O(log n). */
        if (j + 1 < n - j - 1) {
            quicksort(a, j + 1, cmp);
            a += j + 1;
            n -= j + 1;
        } else {
            quicksort(a + j + 1, n - j - 1, cmp);
            n = j + 1;
        }
    }
    insertion(a, n, cmp);
}

static void mergesort(i64 *a, i64 *t, i64 n)
{
    if (n < 2)
        return;
    i64 h = n / 2;
    mergesort(a, t, h);
    mergesort(a + h, t, n - h);
    i64 i = 0, j = h, k = 0;
    while (i < h && j < n)
        t[k++] = a[j] < a[i] ? a[j++] : a[i++];
    while (i < h)
        t[k++] = a[i++];
    while (j < n)
        t[k++] = a[j++];
    for (k = 0; k < n; k++)
        a[k] = t[k];
}

int main(void)
{
    u64 x = 0x2545f4914f6cdd1dUL;
    u64 sum_acc = 0, order_acc = 0;
    for (u32 round = 0; round < SCALE; round++) {
        /* Mix full-range values with many duplicates to exercise both partitions. */
        for (i64 i = 0; i < N; i++) {
            x = x * 6364136223846793005UL + 1442695040888963407UL;
            input[i] = (i & 3) == 0 ? (i64)(x >> 60) - 8 : (i64)x;
        }
        u64 in_sum = 0;
        for (i64 i = 0; i < N; i++) {
            qs[i] = ms[i] = input[i];
            in_sum += (u64)input[i];
        }
        quicksort(qs, N, cmp_i64);
        mergesort(ms, tmp, N);
        u64 out_sum = 0;
        for (i64 i = 0; i < N; i++) {
            if (qs[i] != ms[i])
                return fail("sort", "quicksort and mergesort disagree");
            if (i > 0 && qs[i - 1] > qs[i])
                return fail("sort", "output not sorted");
            out_sum += (u64)qs[i];
        }
        if (in_sum != out_sum)
            return fail("sort", "output is not a permutation of the input");
        sum_acc = mix64(sum_acc, out_sum);
        order_acc = mix64(order_acc, checksum(qs, sizeof(qs)));
    }
    print_str("sort:");
    print_kv("n", N);
    print_kv("min", (u64)qs[0]);
    print_kv("median", (u64)qs[N / 2]);
    print_kv("max", (u64)qs[N - 1]);
    print_kv("sum", sum_acc);
    print_kv("order", order_acc);
    print_nl();
    return 0;
}
