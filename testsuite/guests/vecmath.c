/*
 * Auto-vectorized numeric kernels (built with -O3 -msse4.2, so gcc turns the loops
 * below into packed SSE): float saxpy, dot products with eight partial sums,
 * Horner polynomials over an array, a column-major float matrix-vector product,
 * int32 multiply-add (pmulld), min/max reductions (pminsd/pmaxsd), conversions
 * between int32 and float, and scalar int32 histograms and prefix sums.
 *
 * Every vectorized kernel has a scalar twin compiled with vectorization off
 * (SCALAR): both do the same IEEE operations in the same order per element, so
 * their results must be bit-identical; a difference prints FAIL. The twins run
 * every fourth round (so the packed loops dominate the run), on the same inputs.
 * Results are printed as bit patterns (hashes of the arrays, float bits of the
 * sums). SCALE multiplies the rounds, each on fresh data.
 */
#include "rt.h"

#define N 2048
#define MN 64
#define BINS 256

/* A function the compiler must not vectorize: the reference for its packed twin. */
#define SCALAR NOINLINE __attribute__((optimize("no-tree-vectorize", "no-tree-slp-vectorize")))
#define VECTOR NOINLINE

static float x[N], y[N], y2[N], z[N], z2[N];
static float mat[MN * MN], vin[MN], vout[MN], vout2[MN];
static i32 ia[N], ib[N], ic[N], id[N], id2[N];
static u32 hist[BINS], prefix[BINS];
static float fconv[N], fconv2[N];
static i32 iconv[N], iconv2[N];

static u64 rng = 0x243f6a8885a308d3UL;

static u64 next(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717UL;
}

/* A float in [-1, 1) with 24 significant bits: exact, no rounding in the conversion. */
static float unit(void)
{
    return (float)((i32)(next() >> 40) - (1 << 23)) * (1.0f / (1 << 23));
}

/* A hash of n bytes (a multiple of 8) by 64-bit words: cheap next to the kernels. */
static u64 hash(const void *p, usize n)
{
    const u64 *w = p;
    u64 h = 0;
    for (usize i = 0; i < n / 8; i++)
        h = (h ^ w[i]) * 0x100000001b3UL;
    return h;
}

/* Whether n bytes (a multiple of 4) are equal: no early exit, so it vectorizes too. */
static int same(const void *a, const void *b, usize n)
{
    const u32 *x = a, *y = b;
    u32 diff = 0;
    for (usize i = 0; i < n / 4; i++)
        diff |= x[i] ^ y[i];
    return diff == 0;
}

static u32 fbits(float f)
{
    union {
        float f;
        u32 u;
    } v = { .f = f };
    return v.u;
}

/* ---- saxpy: y = a*x + y ---- */

VECTOR static void saxpy_v(float a, const float *xs, float *ys, int n)
{
    for (int i = 0; i < n; i++)
        ys[i] = a * xs[i] + ys[i];
}

SCALAR static void saxpy_s(float a, const float *xs, float *ys, int n)
{
    for (int i = 0; i < n; i++)
        ys[i] = a * xs[i] + ys[i];
}

/* ---- dot product in eight interleaved partial sums, summed pairwise at the end ---- */

VECTOR static float dot_v(const float *a, const float *b, int n)
{
    float acc[8] = { 0 };
    for (int i = 0; i < n; i += 8)
        for (int k = 0; k < 8; k++)
            acc[k] += a[i + k] * b[i + k];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

SCALAR static float dot_s(const float *a, const float *b, int n)
{
    float acc[8] = { 0 };
    for (int i = 0; i < n; i += 8)
        for (int k = 0; k < 8; k++)
            acc[k] += a[i + k] * b[i + k];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* ---- Horner polynomial of degree 9 at every x ---- */

static const float coef[10] = {
    1.0f, -0.5f, 0.25f, -0.125f, 0.0625f, 0.75f, -1.5f, 0.3125f, 2.0f, -0.0078125f,
};

VECTOR static void poly_v(const float *xs, float *out, int n)
{
    for (int i = 0; i < n; i++) {
        float t = xs[i], p = coef[9];
        for (int k = 8; k >= 0; k--)
            p = p * t + coef[k];
        out[i] = p;
    }
}

SCALAR static void poly_s(const float *xs, float *out, int n)
{
    for (int i = 0; i < n; i++) {
        float t = xs[i], p = coef[9];
        for (int k = 8; k >= 0; k--)
            p = p * t + coef[k];
        out[i] = p;
    }
}

/* ---- matrix-vector product, column-major: out = M v, column by column ---- */

VECTOR static void matvec_v(const float *m, const float *v, float *out)
{
    for (int i = 0; i < MN; i++)
        out[i] = 0.0f;
    for (int j = 0; j < MN; j++)
        for (int i = 0; i < MN; i++)
            out[i] += m[j * MN + i] * v[j];
}

SCALAR static void matvec_s(const float *m, const float *v, float *out)
{
    for (int i = 0; i < MN; i++)
        out[i] = 0.0f;
    for (int j = 0; j < MN; j++)
        for (int i = 0; i < MN; i++)
            out[i] += m[j * MN + i] * v[j];
}

/* ---- int32: d = a*b + (c >> 3) - (a > b ? c : a), wrapping ---- */

VECTOR static void imix_v(const i32 *a, const i32 *b, const i32 *c, i32 *d, int n)
{
    for (int i = 0; i < n; i++)
        d[i] = (i32)((u32)a[i] * (u32)b[i] + (u32)(c[i] >> 3) - (u32)(a[i] > b[i] ? c[i] : a[i]));
}

SCALAR static void imix_s(const i32 *a, const i32 *b, const i32 *c, i32 *d, int n)
{
    for (int i = 0; i < n; i++)
        d[i] = (i32)((u32)a[i] * (u32)b[i] + (u32)(c[i] >> 3) - (u32)(a[i] > b[i] ? c[i] : a[i]));
}

/* ---- int32 reductions: min, max, and a wrapping sum of squares ---- */

struct red {
    i32 min, max;
    u32 sumsq;
};

VECTOR static struct red reduce_v(const i32 *a, int n)
{
    struct red r = { a[0], a[0], 0 };
    for (int i = 0; i < n; i++) {
        r.min = a[i] < r.min ? a[i] : r.min;
        r.max = a[i] > r.max ? a[i] : r.max;
        r.sumsq += (u32)a[i] * (u32)a[i];
    }
    return r;
}

SCALAR static struct red reduce_s(const i32 *a, int n)
{
    struct red r = { a[0], a[0], 0 };
    for (int i = 0; i < n; i++) {
        r.min = a[i] < r.min ? a[i] : r.min;
        r.max = a[i] > r.max ? a[i] : r.max;
        r.sumsq += (u32)a[i] * (u32)a[i];
    }
    return r;
}

/* ---- conversions: float = int * scale; int = truncate(float * 1000), in range ---- */

VECTOR static void convert_v(const i32 *a, const float *f, float *fo, i32 *io, int n)
{
    for (int i = 0; i < n; i++) {
        fo[i] = (float)(a[i] >> 8) * 0.001953125f;
        io[i] = (i32)(f[i] * 1000.0f);
    }
}

SCALAR static void convert_s(const i32 *a, const float *f, float *fo, i32 *io, int n)
{
    for (int i = 0; i < n; i++) {
        fo[i] = (float)(a[i] >> 8) * 0.001953125f;
        io[i] = (i32)(f[i] * 1000.0f);
    }
}

/* ---- scalar: a byte histogram and its prefix sums ---- */

static void histogram(const i32 *a, int n)
{
    for (int b = 0; b < BINS; b++)
        hist[b] = 0;
    for (int i = 0; i < n; i++)
        hist[(u32)a[i] >> 24]++;
    u32 run = 0;
    for (int b = 0; b < BINS; b++) {
        run += hist[b];
        prefix[b] = run;
    }
}

int main(void)
{
    u64 acc = 0;
    u32 dot = 0, dotxy = 0;
    struct red r = { 0, 0, 0 };
    for (u32 round = 0; round < 16 * SCALE; round++) {
        int check = round % 4 == 0;
        for (int i = 0; i < N; i++) {
            x[i] = unit();
            y[i] = y2[i] = unit();
            u64 r = next();
            ia[i] = (i32)r;
            ib[i] = (i32)(r >> 47) ^ i;
            ic[i] = (i32)(r >> 32) * (i32)0x9e3779b1;
        }
        for (int i = 0; i < MN * MN; i++)
            mat[i] = unit();
        for (int i = 0; i < MN; i++)
            vin[i] = vout[i] = vout2[i] = unit();

        for (int k = 0; k < 32; k++) {
            float a = (float)(k % 8 + 1) * 0.375f - 1.0f;
            saxpy_v(a, x, y, N);
            if (check)
                saxpy_s(a, x, y2, N);
        }
        if (check && !same(y, y2, sizeof(y)))
            return fail("vecmath", "packed and scalar saxpy differ");
        acc = mix64(acc, hash(y, sizeof(y)));

        float d1 = 0, d2 = 0;
        for (int k = 0; k < 16; k++) {
            d1 = dot_v(x, y, N) + d1 * 0.5f;
            if (check)
                d2 = dot_s(x, y, N) + d2 * 0.5f;
        }
        if (check && fbits(d1) != fbits(d2))
            return fail("vecmath", "packed and scalar dot products differ");
        dotxy = fbits(d1);
        dot = fbits(dot_v(y, y, N));
        acc = mix64(acc, dot);

        for (int k = 0; k < 4; k++) {
            const float *in = k & 1 ? y : x;
            poly_v(in, z, N);
            if (check) {
                poly_s(in, z2, N);
                if (!same(z, z2, sizeof(z)))
                    return fail("vecmath", "packed and scalar polynomials differ");
            }
            acc = mix64(acc, hash(z, sizeof(z)));
        }

        /* Power iteration, scaled by 1/16 (exact) per step: v <- M v / 16. */
        for (int k = 0; k < 16; k++) {
            matvec_v(mat, vout, vin);
            for (int i = 0; i < MN; i++)
                vout[i] = vin[i] * 0.0625f;
            if (check) {
                matvec_s(mat, vout2, vin);
                for (int i = 0; i < MN; i++)
                    vout2[i] = vin[i] * 0.0625f;
                if (!same(vout, vout2, sizeof(vout)))
                    return fail("vecmath", "packed and scalar matrix-vector products differ");
            }
        }
        acc = mix64(acc, hash(vout, sizeof(vout)));

        for (int k = 0; k < 4; k++) {
            imix_v(ia, ib, ic, id, N);
            if (check) {
                imix_s(ia, ib, ic, id2, N);
                if (!same(id, id2, sizeof(id)))
                    return fail("vecmath", "packed and scalar int32 kernels differ");
            }
            r = reduce_v(id, N);
            if (check) {
                struct red r2 = reduce_s(id, N);
                if (r.min != r2.min || r.max != r2.max || r.sumsq != r2.sumsq)
                    return fail("vecmath", "packed and scalar reductions differ");
            }
            acc = mix64(acc, ((u64)(u32)r.min << 32) | (u32)r.max);
            acc = mix64(acc, r.sumsq);
            /* The next pass multiplies by this one's result. */
            for (int i = 0; i < N; i++) {
                i32 t = ia[i];
                ia[i] = id[i];
                ic[i] = t;
            }
        }
        acc = mix64(acc, hash(id, sizeof(id)));

        convert_v(id, y, fconv, iconv, N);
        if (check) {
            convert_s(id, y, fconv2, iconv2, N);
            if (!same(fconv, fconv2, sizeof(fconv)) || !same(iconv, iconv2, sizeof(iconv)))
                return fail("vecmath", "packed and scalar conversions differ");
        }
        acc = mix64(acc, hash(fconv, sizeof(fconv)));
        acc = mix64(acc, hash(iconv, sizeof(iconv)));

        histogram(id, N);
        if (prefix[BINS - 1] != N)
            return fail("vecmath", "histogram does not add up");
        acc = mix64(acc, hash(prefix, sizeof(prefix)));
    }
    print_str("vecmath:");
    print_kv("y0", fbits(y[0]));
    print_kv("dotxy", dotxy);
    print_kv("dotyy", dot);
    print_kv("poly", hash(z, sizeof(z)));
    print_kv("matvec", hash(vout, sizeof(vout)));
    print_nl();
    print_str("vecmath:");
    print_kv("min", (u32)r.min);
    print_kv("max", (u32)r.max);
    print_kv("sumsq", r.sumsq);
    print_kv("median", prefix[BINS / 2]);
    print_kv("conv", hash(iconv, sizeof(iconv)));
    print_kv("acc", acc);
    print_nl();
    return 0;
}
