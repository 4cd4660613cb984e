/*
 * 64-bit multiply/divide stress: unsigned and signed products, full 128-bit
 * products (__int128, i.e. mul/imul with a 128-bit result), / and % of every
 * width with mixed signs (C truncates toward zero, as idiv does), division by
 * constants (which gcc turns into multiplications), and divq with a 128-bit
 * dividend through inline asm. Divisors are never zero, and INT_MIN / -1 is
 * never formed. The SCALE * 24000 operand pairs come from an LCG.
 */
#include "rt.h"

static u64 lcg_state = 0x853c49e6748fea9bUL;

static u64 next(void)
{
    lcg_state = lcg_state * 6364136223846793005UL + 1442695040888963407UL;
    u64 x = lcg_state;
    return x ^ (x >> 31);
}

/* Operands of assorted magnitudes, so that quotients are not all 0 or huge. */
static u64 operand(void)
{
    u64 x = next();
    return x >> (next() & 63);
}

static u64 nonzero(u64 x)
{
    return x ? x : 0x9e3779b9UL;
}

/* Avoid the one signed division that traps: the minimum value divided by -1. */
static i64 safe_idiv_divisor(i64 a, i64 d, i64 min)
{
    if (d == 0)
        return 3;
    if (a == min && d == -1)
        return -2;
    return d;
}

static u64 divq(u64 hi, u64 lo, u64 d, u64 *rem)
{
    u64 q, r;
    __asm__("divq %4" : "=a"(q), "=d"(r) : "a"(lo), "d"(hi), "rm"(d) : "cc");
    *rem = r;
    return q;
}

static i64 idivq(i64 hi, u64 lo, i64 d, i64 *rem)
{
    i64 q, r;
    __asm__("idivq %4" : "=a"(q), "=d"(r) : "a"(lo), "d"(hi), "rm"(d) : "cc");
    *rem = r;
    return q;
}

/* Known answers, checked before the random part so that a failure says where. */
static int known_answers(void)
{
    i64 a = -7, b = 2, m = (i64)0x8000000000000000UL, c3 = 3;
    u64 big = ~0UL, r;
    OPAQUE(a);
    OPAQUE(b);
    OPAQUE(m);
    OPAQUE(c3);
    OPAQUE(big);
    if (a / b != -3 || a % b != -1 || -a / -b != -3 || a / -b != 3 || a % -b != -1)
        return fail("muldiv", "signed 64-bit truncating division");
    if ((i32)a / (i32)b != -3 || (i32)a % (i32)b != -1 || (i16)a / (i16)b != -3 ||
        (i8)a % (i8)b != -1)
        return fail("muldiv", "signed narrow division");
    if (m / c3 != (i64)0xd555555555555556UL || m % c3 != -2)
        return fail("muldiv", "INT64_MIN / 3");
    if ((u128)big * big != (((u128)0xfffffffffffffffeUL << 64) | 1))
        return fail("muldiv", "unsigned 128-bit product");
    if ((i128)m * m != (i128)1 << 126 || (i128)m * (i128)c3 != -((i128)3 << 63))
        return fail("muldiv", "signed 128-bit product");
    if (divq(2, 5, 3, &r) != 0xaaaaaaaaaaaaaaacUL || r != 1)
        return fail("muldiv", "divq with 128-bit dividend");
    i64 sr;
    if (idivq(-1, (u64)-100, 7, &sr) != -14 || sr != -2)
        return fail("muldiv", "idivq with 128-bit dividend");
    return 0;
}

int main(void)
{
    if (known_answers())
        return 1;

    u64 h_umul = 0, h_imul = 0, h_wide = 0, h_udiv = 0, h_idiv = 0, h_narrow = 0, h_const = 0,
        h_asm = 0;
    for (u32 i = 0; i < 24000u * SCALE; i++) {
        u64 a = operand(), b = operand();

        h_umul = mix64(h_umul, a * b);
        h_imul = mix64(h_imul, (u64)((i64)a * (i64)(b | 1)));
        u128 up = (u128)a * b;
        i128 sp = (i128)(i64)a * (i64)b;
        h_wide = mix64(mix64(h_wide, (u64)(up >> 64) ^ (u64)up), (u64)(sp >> 64) + (u64)sp);

        u64 ud = nonzero(b);
        h_udiv = mix64(h_udiv, a / ud + 3 * (a % ud));
        i64 sa = (i64)a, sd = safe_idiv_divisor(sa, (i64)b, (i64)0x8000000000000000UL);
        h_idiv = mix64(h_idiv, (u64)(sa / sd) ^ (u64)(sa % sd) << 1);

        u32 ua32 = (u32)a, ud32 = (u32)b ? (u32)b : 7u;
        i32 sa32 = (i32)a, sd32 = (i32)safe_idiv_divisor(sa32, (i32)b, (i32)0x80000000u);
        i16 sa16 = (i16)a, sd16 = (i16)safe_idiv_divisor(sa16, (i16)b, (i16)0x8000);
        i8 sa8 = (i8)a, sd8 = (i8)safe_idiv_divisor(sa8, (i8)b, (i8)0x80);
        u8 ua8 = (u8)a, ud8 = (u8)b ? (u8)b : 5;
        u64 narrow = (u64)(ua32 / ud32) << 32 | (ua32 % ud32);
        narrow ^= (u64)(u32)(sa32 / sd32) * 3 + (u64)(u32)(sa32 % sd32);
        narrow ^= (u64)(u16)(sa16 / sd16) << 16 | (u16)(sa16 % sd16);
        narrow ^= (u64)(u8)(sa8 / sd8) << 40 | (u64)(u8)(sa8 % sd8) << 48;
        narrow ^= (u64)(ua8 / ud8) << 56 | (ua8 % ud8);
        h_narrow = mix64(h_narrow, narrow);

        h_const = mix64(h_const, a / 10 + a % 7 + (u64)(sa / 10) + (u64)(sa % 7) +
                                     (u64)((i32)a / -3) + (u32)a / 1000000007u);

        /* A dividend high half below the divisor keeps the quotient in 64 bits. */
        u64 d = nonzero(b | (1UL << 63 >> (a & 31))), rem;
        u64 q = divq(a % d, b, d, &rem);
        i64 sq, srem;
        i64 sdiv = (i64)(d >> 1) | 1;
        if (a & 1)
            sdiv = -sdiv;
        /* Sign-extended 64-bit dividend: always representable. */
        sq = idivq(sa < 0 ? -1 : 0, (u64)sa, sdiv, &srem);
        h_asm = mix64(mix64(h_asm, q ^ rem), (u64)sq + (u64)srem);
    }
    print_str("muldiv: mul");
    print_kv("umul", h_umul);
    print_kv("imul", h_imul);
    print_kv("wide", h_wide);
    print_nl();
    print_str("muldiv: div");
    print_kv("udiv", h_udiv);
    print_kv("idiv", h_idiv);
    print_kv("narrow", h_narrow);
    print_kv("const", h_const);
    print_kv("asm", h_asm);
    print_nl();
    return 0;
}
