/*
 * fpmath: a static Linux program for the Debian-kernel boot test (testsuite/tests/linux.rs).
 * It computes with `long double` (x87, 80-bit) and SSE2 (scalar and packed double, packed
 * integer) and prints every result in full (decimal and hex floats). Only operations IEEE 754
 * defines exactly are used (+ - * /, square root, conversions; no transcendental libm calls,
 * whose glibc variants differ per CPU, no RCPPS/RSQRTPS approximations, no FMA contraction),
 * so the guest under popek, the guest under QEMU and the host must print the same bytes.
 *
 * Built at test time: gcc -O2 -static -ffp-contract=off -o fpmath fpmath.c
 */
#include <emmintrin.h>
#include <stdint.h>
#include <stdio.h>

/* x87: sum of 1/k^2 (converges to pi^2/6) in 80-bit precision. */
static long double zeta2(int n)
{
	long double s = 0.0L;
	for (int k = n; k >= 1; k--)
		s += 1.0L / ((long double)k * (long double)k);
	return s;
}

/* x87: Newton's iteration for the square root of 2, and FSQRT itself. */
static long double newton_sqrt2(void)
{
	long double x = 1.0L;
	for (int i = 0; i < 8; i++)
		x = (x + 2.0L / x) / 2.0L;
	return x;
}

/* x87: n!, rounded to the 64-bit significand from 21! on. */
static long double factorial(int n)
{
	long double f = 1.0L;
	for (int i = 2; i <= n; i++)
		f *= (long double)i;
	return f;
}

/* SSE2 packed double: a running sum of (i, 1/i) squared, two lanes at once. */
static __m128d packed_sums(int n)
{
	__m128d acc = _mm_setzero_pd();
	for (int i = 1; i <= n; i++) {
		__m128d x = _mm_set_pd(1.0 / (double)i, (double)i);
		acc = _mm_add_pd(acc, _mm_mul_pd(x, x));
	}
	return _mm_sqrt_pd(acc);
}

/* SSE2 scalar double: the Mandelbrot escape counts of a small grid. */
static uint64_t mandelbrot(void)
{
	uint64_t sum = 0;
	for (int y = 0; y < 24; y++) {
		for (int x = 0; x < 64; x++) {
			double cr = -2.0 + x * (2.6 / 64), ci = -1.2 + y * (2.4 / 24);
			double zr = 0, zi = 0;
			int it = 0;
			while (it < 200 && zr * zr + zi * zi <= 4.0) {
				double t = zr * zr - zi * zi + cr;
				zi = 2.0 * zr * zi + ci;
				zr = t;
				it++;
			}
			sum = sum * 31 + (uint64_t)it;
		}
	}
	return sum;
}

/* SSE2 packed integers: multiply, shuffle and sum-of-absolute-differences checksums. */
static uint64_t packed_ints(void)
{
	__m128i a = _mm_set_epi32(0x12345678, -7, 1000003, 65537);
	__m128i acc = _mm_setzero_si128();
	for (int i = 0; i < 10000; i++) {
		__m128i p = _mm_mul_epu32(a, _mm_shuffle_epi32(a, 0x4E));
		acc = _mm_add_epi64(acc, p);
		acc = _mm_xor_si128(acc, _mm_sad_epu8(a, acc));
		a = _mm_add_epi32(_mm_slli_epi32(a, 1), _mm_srli_epi32(a, 3));
	}
	uint64_t lanes[2];
	_mm_storeu_si128((__m128i *)lanes, acc);
	return lanes[0] ^ (lanes[1] * 0x9E3779B97F4A7C15ull);
}

int main(void)
{
	long double z = zeta2(200000);
	printf("zeta2     %.21Lg %La\n", z, z);
	long double r = newton_sqrt2(), q = __builtin_sqrtl(2.0L);
	printf("sqrt2     %.21Lg %La %s\n", r, q, r == q ? "equal" : "differ");
	long double f = factorial(30);
	printf("30!       %.0Lf %La\n", f, f);
	long double third = 1.0L / 3.0L;
	printf("1/3       %.25Lf int64 %lld\n", third, (long long)(third * 1e18L));

	__m128d s = packed_sums(100000);
	double lanes[2];
	_mm_storeu_pd(lanes, s);
	printf("packed    %.17g %a %.17g %a\n", lanes[0], lanes[0], lanes[1], lanes[1]);
	__m128d mn = _mm_min_pd(s, _mm_set_pd(1.5, 1e5)), dv = _mm_div_pd(s, _mm_set1_pd(7.0));
	_mm_storeu_pd(lanes, mn);
	printf("min       %a %a\n", lanes[0], lanes[1]);
	_mm_storeu_pd(lanes, dv);
	printf("div       %a %a cvt %d %d\n", lanes[0], lanes[1], _mm_cvtsd_si32(dv),
	       _mm_cvttsd_si32(_mm_unpackhi_pd(dv, dv)));
	printf("mandel    %llu\n", (unsigned long long)mandelbrot());
	printf("ints      %016llx\n", (unsigned long long)packed_ints());
	float fsum = 0.0f;
	for (int i = 1; i <= 100000; i++)
		fsum += 1.0f / (float)i;
	printf("float     %.9g %a\n", fsum, fsum);
	return 0;
}
