/*
 * Integer matrix arithmetic: a 48x48 signed 32-bit product with 64-bit
 * accumulation (row-major and through a transpose, which must agree), and powers
 * of a 24x24 matrix modulo the prime 1000000007 by repeated squaring (64-bit
 * products reduced with %, compiled to multiply-high). SCALE rounds on fresh data.
 */
#include "rt.h"

#define N 48
#define M 24
#define P 1000000007UL

static i32 a[N][N], b[N][N], bt[N][N];
static i64 c1[N][N], c2[N][N];
static u64 base[M][M], result[M][M], tmpm[M][M];

static u64 rng = 0x9e3779b97f4a7c15UL;

static u64 next(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717UL;
}

static void mul_plain(void)
{
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            i64 s = 0;
            for (int k = 0; k < N; k++)
                s += (i64)a[i][k] * b[k][j];
            c1[i][j] = s;
        }
}

static void mul_transposed(void)
{
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            bt[j][i] = b[i][j];
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            const i32 *x = a[i], *y = bt[j];
            i64 s = 0;
            for (int k = 0; k < N; k++)
                s += (i64)x[k] * y[k];
            c2[i][j] = s;
        }
}

/* dst = x * y mod P; dst may alias neither input. */
static void mul_mod(u64 dst[M][M], u64 x[M][M], u64 y[M][M])
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < M; j++) {
            u64 s = 0;
            for (int k = 0; k < M; k++)
                s = (s + x[i][k] * y[k][j]) % P;
            dst[i][j] = s;
        }
}

static void copy_mod(u64 dst[M][M], u64 src[M][M])
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < M; j++)
            dst[i][j] = src[i][j];
}

static void pow_mod(u64 e)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < M; j++)
            result[i][j] = i == j;
    while (e) {
        if (e & 1) {
            mul_mod(tmpm, result, base);
            copy_mod(result, tmpm);
        }
        mul_mod(tmpm, base, base);
        copy_mod(base, tmpm);
        e >>= 1;
    }
}

int main(void)
{
    u64 acc = 0, trace = 0, corner = 0;
    for (u32 round = 0; round < SCALE; round++) {
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++) {
                a[i][j] = (i32)next();
                b[i][j] = (i32)(next() >> 40) - (1 << 23);
            }
        mul_plain();
        mul_transposed();
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++)
                if (c1[i][j] != c2[i][j])
                    return fail("matmul", "plain and transposed products differ");
        acc = mix64(acc, checksum(c1, sizeof(c1)));

        for (int i = 0; i < M; i++)
            for (int j = 0; j < M; j++)
                base[i][j] = next() % P;
        pow_mod(1000 + round);
        trace = 0;
        for (int i = 0; i < M; i++)
            trace = (trace + result[i][i]) % P;
        corner = result[M - 1][0];
        acc = mix64(acc, checksum(result, sizeof(result)));
    }
    print_str("matmul:");
    print_kv("c00", (u64)c1[0][0]);
    print_kv("c_last", (u64)c1[N - 1][N - 1]);
    print_kv("trace", trace);
    print_kv("corner", corner);
    print_kv("acc", acc);
    print_nl();
    return 0;
}
