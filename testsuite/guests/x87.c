/*
 * x87 80-bit arithmetic: `long double` series and recurrences compiled by gcc
 * (fld/fmul/fdiv/faddp/fcomip/fcmov/fistp with FCW changes), and the x87
 * instructions gcc never emits on its own, by inline assembly: fsin, fcos,
 * fsincos, fptan, fpatan, f2xm1, fyl2x, fyl2xp1, fscale, fxtract, fprem, fprem1,
 * frndint in all four rounding modes, fbstp/fbld, fxam, fisttp, the constant loads,
 * and the status word's condition codes (C2 for out-of-range arguments and partial
 * remainders, the quotient bits of fprem).
 *
 * Series: e = sum 1/k!, pi by Machin's formula, harmonic sums naive and Kahan-
 * compensated, Newton iterations for sqrt, cbrt and a reciprocal; each is checked
 * against the hardware (fldpi, f2xm1/fscale, fsqrt) to a few ulps. Transcendental
 * identities (sin^2+cos^2 = 1, tan = sin/cos, 2^log2(x) = x, BCD round trips) are
 * checked too. Every result prints as its 80-bit pattern: 4 hex digits of sign and
 * exponent, then the 16 of the significand. SCALE multiplies the harmonic terms and
 * the transcendental inputs.
 */
#include "rt.h"

typedef long double f80;

/* The 80 bits of v: sign and exponent, significand (the rest of the 16 bytes is padding). */
struct bits80 {
    u16 se;
    u64 m;
};

static struct bits80 bits80(f80 v)
{
    union {
        f80 f;
        struct {
            u64 m;
            u16 se;
        } p;
    } u = { .f = v };
    return (struct bits80){ u.p.se, u.p.m };
}

static void print_hex16(u16 v)
{
    static const char digits[] = "0123456789abcdef";
    for (int shift = 12; shift >= 0; shift -= 4)
        putc_serial(digits[(v >> shift) & 0xf]);
}

/* " key=<20 hex digits>": the 80-bit value as sign+exponent then significand. */
static void print_kv80(const char *key, f80 v)
{
    struct bits80 b = bits80(v);
    putc_serial(' ');
    print_str(key);
    putc_serial('=');
    print_hex16(b.se);
    print_hex64(b.m);
}

/* Folded results: of exactly specified operations, and of the transcendentals. */
static u64 acc, hw_acc;

static u64 fold_into(u64 h, f80 v)
{
    struct bits80 b = bits80(v);
    return mix64(mix64(h, b.m), b.se);
}

static void fold(f80 v)
{
    acc = fold_into(acc, v);
}

static void fold_hw(f80 v)
{
    hw_acc = fold_into(hw_acc, v);
}

static f80 fabs80(f80 v)
{
    return v < 0 ? -v : v;
}

/* ---- the instructions, by inline assembly ---- */

#define UNARY(name, insn)                                                                        \
    static f80 name(f80 x)                                                                       \
    {                                                                                            \
        __asm__(insn : "+t"(x));                                                                 \
        return x;                                                                                \
    }
UNARY(x_fsin, "fsin")
UNARY(x_fcos, "fcos")
UNARY(x_f2xm1, "f2xm1")
UNARY(x_frndint, "frndint")
UNARY(x_fsqrt, "fsqrt")

#define CONSTANT(name, insn)                                                                     \
    static f80 name(void)                                                                        \
    {                                                                                            \
        f80 r;                                                                                   \
        __asm__(insn : "=t"(r));                                                                 \
        return r;                                                                                \
    }
CONSTANT(x_fldpi, "fldpi")
CONSTANT(x_fldl2e, "fldl2e")
CONSTANT(x_fldl2t, "fldl2t")
CONSTANT(x_fldlg2, "fldlg2")
CONSTANT(x_fldln2, "fldln2")
CONSTANT(x_fld1, "fld1")

/* The status word right after `insn` on x (for C2 on an out-of-range argument). */
#define STATUS(name, insn)                                                                       \
    static u16 name(f80 *x)                                                                      \
    {                                                                                            \
        u16 sw;                                                                                  \
        __asm__("fnclex\n\t" insn "\n\tfnstsw %1" : "+t"(*x), "=am"(sw));                        \
        return sw;                                                                               \
    }
STATUS(sw_fsin, "fsin")
STATUS(sw_fcos, "fcos")

static void x_fsincos(f80 x, f80 *s, f80 *c)
{
    f80 cs, sn;
    __asm__("fsincos" : "=t"(cs), "=u"(sn) : "0"(x));
    *s = sn;
    *c = cs;
}

/* fptan pushes 1.0 over tan(x). */
static f80 x_fptan(f80 x, f80 *one)
{
    f80 t, o;
    __asm__("fptan" : "=t"(o), "=u"(t) : "0"(x));
    *one = o;
    return t;
}

/* atan(y / x), in the quadrant of (x, y). */
static f80 x_fpatan(f80 y, f80 x)
{
    f80 r;
    __asm__("fpatan" : "=t"(r) : "0"(x), "u"(y) : "st(1)");
    return r;
}

/* y * log2(x). */
static f80 x_fyl2x(f80 y, f80 x)
{
    f80 r;
    __asm__("fyl2x" : "=t"(r) : "0"(x), "u"(y) : "st(1)");
    return r;
}

/* y * log2(x + 1). */
static f80 x_fyl2xp1(f80 y, f80 x)
{
    f80 r;
    __asm__("fyl2xp1" : "=t"(r) : "0"(x), "u"(y) : "st(1)");
    return r;
}

/* x * 2^trunc(n). */
static f80 x_fscale(f80 x, f80 n)
{
    f80 r;
    __asm__("fscale" : "=t"(r) : "0"(x), "u"(n));
    return r;
}

/* The significand (in [1, 2)) and the unbiased exponent of x. */
static f80 x_fxtract(f80 x, f80 *exponent)
{
    f80 sig, e;
    __asm__("fxtract" : "=t"(sig), "=u"(e) : "0"(x));
    *exponent = e;
    return sig;
}

/* The partial remainder loop of fprem or fprem1; *sw gets the final status word (C0, C3, C1
   hold the low three quotient bits). */
#define REMAINDER(name, insn)                                                                    \
    static f80 name(f80 x, f80 y, u16 *sw)                                                       \
    {                                                                                            \
        u16 s;                                                                                   \
        __asm__("1: " insn "\n\t"                                                                \
                "fnstsw %%ax\n\t"                                                                \
                "testb $4, %%ah\n\t"                                                             \
                "jnz 1b"                                                                         \
                : "+t"(x), "=a"(s)                                                               \
                : "u"(y)                                                                         \
                : "cc");                                                                         \
        *sw = s;                                                                                 \
        return x;                                                                                \
    }
REMAINDER(x_fprem, "fprem")
REMAINDER(x_fprem1, "fprem1")

/* frndint under rounding control rc (0 nearest, 1 down, 2 up, 3 toward zero). */
static f80 x_frndint_rc(f80 x, u16 rc)
{
    u16 saved, cw;
    __asm__("fnstcw %0" : "=m"(saved));
    cw = (u16)((saved & ~0x0c00) | (rc << 10));
    __asm__("fldcw %1\n\tfrndint\n\tfldcw %2" : "+t"(x) : "m"(cw), "m"(saved));
    return x;
}

/* x (an integer below 10^18 in magnitude) to packed BCD and back. */
static f80 x_bcd_round_trip(f80 x, u8 bcd[10])
{
    f80 r;
    __asm__("fbstp %0" : "=m"(*(u8(*)[10])bcd) : "t"(x) : "st");
    __asm__("fbld %1" : "=t"(r) : "m"(*(const u8(*)[10])bcd));
    return r;
}

/* The fxam class: C3, C2, C0 (and the sign in C1) of the status word. */
static u16 x_fxam(f80 x)
{
    u16 sw;
    __asm__("fxam\n\tfnstsw %0" : "=am"(sw) : "t"(x));
    return sw & 0x4700;
}

/* Truncating conversion to int64 (SSE3's fisttp), whatever the rounding control. */
static i64 x_fisttp(f80 x)
{
    i64 r;
    __asm__("fisttpll %0" : "=m"(r) : "t"(x) : "st");
    return r;
}

/* ---- series and recurrences in long double arithmetic ---- */

static f80 series_e(void)
{
    f80 sum = 1, term = 1;
    for (int k = 1; k < 30; k++) {
        term /= k;
        sum += term;
    }
    return sum;
}

/* arctan(1/n) by its Taylor series. */
static f80 arctan_inv(int n)
{
    f80 x = 1.0L / n, x2 = x * x, term = x, sum = 0;
    for (int k = 0; term > 1e-25L; k++) {
        sum += (k & 1) ? -term / (2 * k + 1) : term / (2 * k + 1);
        term *= x2;
    }
    return sum;
}

/* 2^x for any x: f2xm1 on the fraction, fscale by the integer part. */
static f80 exp2_x87(f80 x)
{
    f80 i = x_frndint_rc(x, 3);
    return x_fscale(x_f2xm1(x - i) + 1, i);
}

NOINLINE static void harmonic(u32 n, f80 *naive, f80 *kahan, double *kahan_d)
{
    f80 s = 0, k = 0, c = 0;
    double d = 0, cd = 0;
    for (u32 i = 1; i <= n; i++) {
        f80 t = 1.0L / i;
        s += t;
        f80 y = t - c;
        f80 u = k + y;
        c = (u - k) - y;
        k = u;
        double yd = 1.0 / i - cd;
        double ud = d + yd;
        cd = (ud - d) - yd;
        d = ud;
    }
    *naive = s;
    *kahan = k;
    *kahan_d = d;
}

static f80 newton_sqrt(f80 v)
{
    f80 r = v > 1 ? v / 2 : 1;
    for (int k = 0; k < 40; k++)
        r = (r + v / r) / 2;
    return r;
}

static f80 newton_cbrt(f80 v)
{
    f80 r = v > 1 ? v / 3 : 1;
    for (int k = 0; k < 60; k++)
        r = (2 * r + v / (r * r)) / 3;
    return r;
}

/* 1/d without a division: x <- x (2 - d x) from 1/2^ceil(log2 d). */
static f80 newton_recip(f80 d)
{
    f80 e, sig = x_fxtract(d, &e);
    f80 x = x_fscale(0.5L, -e);
    (void)sig;
    for (int k = 0; k < 8; k++)
        x = x * (2 - d * x);
    return x;
}

/* How far the transcendental identities may be off: a few double ulps, not long double ones.
   The checks are for gross errors (a wrong instruction, operand or register); the exact bits
   are what the engines are compared on. QEMU's user-mode x87 computes FSIN, F2XM1, FYL2X,
   ... in double precision, and must pass these too. */
#define TRANSCENDENTAL_TOL 1e-15L

static int close(f80 a, f80 b, f80 tol)
{
    return fabs80(a - b) <= tol * fabs80(b);
}

int main(void)
{
    f80 e = series_e(), e_hw = exp2_x87(x_fldl2e());
    if (!close(e, e_hw, TRANSCENDENTAL_TOL))
        return fail("x87", "e by series and by f2xm1/fscale differ");
    f80 pi = 4 * (4 * arctan_inv(5) - arctan_inv(239));
    if (!close(pi, x_fldpi(), 1e-18L))
        return fail("x87", "Machin's pi and fldpi differ");
    print_str("x87:");
    print_kv80("e", e);
    print_kv80("pi", pi);
    print_kv80("l2t", x_fldl2t());
    print_kv80("lg2", x_fldlg2());
    print_nl();

    f80 naive, kahan;
    double kahan_d;
    harmonic(150000 * SCALE, &naive, &kahan, &kahan_d);
    if (!close(naive, kahan, 1e-15L) || !close(kahan, kahan_d, 1e-14L))
        return fail("x87", "harmonic sums disagree");
    print_str("x87:");
    print_kv80("h_naive", naive);
    print_kv80("h_kahan", kahan);
    print_kv("h_double", ((union { double d; u64 u; }){ .d = kahan_d }).u);
    print_nl();

    f80 s2 = newton_sqrt(2), c3 = newton_cbrt(3), r7 = newton_recip(7);
    if (!close(s2, x_fsqrt(2), 1e-18L) || !close(c3 * c3 * c3, 3, 1e-18L) ||
        !close(r7 * 7, 1, 1e-18L))
        return fail("x87", "Newton iterations");
    print_str("x87:");
    print_kv80("sqrt2", s2);
    print_kv80("cbrt3", c3);
    print_kv80("recip7", r7);
    print_nl();

    /* Transcendentals over a sweep of arguments; every result is folded into acc. */
    u64 quotients = 0;
    f80 last_sin = 0, last_atan = 0, last_log = 0, last_rem = 0;
    u32 n = 1500 * SCALE;
    for (u32 i = 0; i < n; i++) {
        f80 x = (f80)i / n * 20 - 10 + 0.001L * (i % 7);
        f80 s, c, one, t;
        x_fsincos(x, &s, &c);
        f80 s1 = x_fsin(x), c1 = x_fcos(x);
        if (!close(s, s1, TRANSCENDENTAL_TOL) && fabs80(s - s1) > TRANSCENDENTAL_TOL)
            return fail("x87", "fsincos and fsin differ");
        if (!close(c, c1, TRANSCENDENTAL_TOL) && fabs80(c - c1) > TRANSCENDENTAL_TOL)
            return fail("x87", "fsincos and fcos differ");
        if (fabs80(s * s + c * c - 1) > TRANSCENDENTAL_TOL)
            return fail("x87", "sin^2 + cos^2 != 1");
        t = x_fptan(x, &one);
        if (one != 1 || (fabs80(c) > 1e-3L && !close(t, s / c, 1e-15L)))
            return fail("x87", "fptan");
        f80 at = x_fpatan(s, c);
        f80 fr = x / 8 - x_frndint(x / 8);
        f80 p2 = x_f2xm1(fr);
        f80 ax = fabs80(x) + 0.5L;
        f80 lg = x_fyl2x(x_fld1(), ax);
        if (!close(exp2_x87(lg), ax, TRANSCENDENTAL_TOL))
            return fail("x87", "2^log2(x) != x");
        f80 lp = x_fyl2xp1(x_fldln2(), fr / 4);
        f80 ex, sig = x_fxtract(x * 1e6L, &ex);
        f80 sc = x_fscale(x, (f80)(i64)(i % 41) - 20);
        u16 sw, sw1;
        f80 rem = x_fprem(x * 1e5L, x_fldpi(), &sw);
        f80 rem1 = x_fprem1(x * 1e5L, x_fldpi(), &sw1);
        quotients = mix64(quotients, (u64)(sw & 0x4700) << 16 | (sw1 & 0x4700));
        for (u16 rc = 0; rc < 4; rc++)
            fold(x_frndint_rc(x * 3.3L, rc));
        f80 exact[] = { fr, sig, ex, sc, rem, rem1 };
        for (usize k = 0; k < ARRAY_LEN(exact); k++)
            fold(exact[k]);
        f80 hw[] = { s, c, s1, c1, t, at, p2, lg, lp };
        for (usize k = 0; k < ARRAY_LEN(hw); k++)
            fold_hw(hw[k]);
        last_sin = s;
        last_atan = at;
        last_log = lp;
        last_rem = rem;
    }
    print_str("x87:");
    print_kv80("rem", last_rem);
    print_kv("quot", quotients);
    print_kv("acc", acc);
    print_nl();
    /* The transcendentals are accurate to about an ulp, and processors differ in that ulp
       (Intel and AMD do): a line marked "hw" is compared with the native run on the same
       host, and only its keys with the golden output. */
    print_str("x87: hw");
    print_kv80("e_hw", e_hw);
    print_kv80("sin", last_sin);
    print_kv80("atan", last_atan);
    print_kv80("log1p", last_log);
    print_kv("acc", hw_acc);
    print_nl();

    /* Out-of-range arguments: C2 set, the operand left alone. */
    f80 big = 1e30L, big2 = big;
    u16 sw_s = sw_fsin(&big), sw_c = sw_fcos(&big2);
    if (!(sw_s & 0x400) || !(sw_c & 0x400) || big != 1e30L || big2 != 1e30L)
        return fail("x87", "fsin/fcos of 1e30 should set C2 and keep the operand");

    /* Packed BCD, fisttp, fxam classes, and the compiler's own fistp/fcomi. */
    u64 bcdsum = 0, ints = 0, classes = 0;
    for (u32 i = 0; i < 200; i++) {
        f80 v = (f80)(i * 987654321987ULL % 999999999999999999ULL) * ((i & 1) ? -1 : 1);
        u8 bcd[10];
        f80 back = x_bcd_round_trip(v + 0.25L * (i % 3), bcd);
        if (back != x_frndint(v + 0.25L * (i % 3)))
            return fail("x87", "fbstp/fbld round trip");
        bcdsum = mix64(bcdsum, checksum(bcd, sizeof(bcd)));
        f80 w = v / 7.5L;
        ints = mix64(ints, (u64)x_fisttp(w));
        ints = mix64(ints, (u64)(i64)w);
        ints = mix64(ints, (u64)(i64)(w + 0.5L));
    }
    union {
        f80 f;
        struct {
            u64 m;
            u16 se;
        } p;
    } denormal = { .p = { 0x123, 0 } };
    f80 specials[] = { 0.0L, -0.0L, 1.5L, -2.25L, denormal.f, 1.0L / 0.0L, -1.0L / 0.0L,
                       0.0L / 0.0L };
    for (usize k = 0; k < ARRAY_LEN(specials); k++)
        classes = classes << 4 ^ x_fxam(specials[k]) >> 8;
    print_str("x87:");
    print_kv("bcd", bcdsum);
    print_kv("ints", ints);
    print_kv("fxam", classes);
    /* Only C2 (bit 10) is defined after an out-of-range fsin/fcos. */
    print_kv("sw_sin", sw_s & 0x400u);
    print_kv("sw_cos", sw_c & 0x400u);
    print_nl();
    return 0;
}
