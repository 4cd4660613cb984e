/*
 * Bit manipulation, each result cross-checked against a plain-C reference:
 * popcount (libgcc, the popcnt instruction, and a loop), clz/ctz (bsr/bsf),
 * bswap, rotates of every width, bt/bts/btr/btc on registers and on a memory bit
 * string, shld/shrd, rcl/rcr through CF, all sixteen setcc conditions, and
 * cmov-shaped selections. Only architecturally defined results and flags are
 * observed. SCALE * 5000 random inputs.
 */
#include "rt.h"

static u64 rng = 0xda942042e4dd58b5UL;

static u64 next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* ---- reference implementations ---- */

static u32 ref_popcount(u64 x)
{
    u32 n = 0;
    for (; x; x >>= 1)
        n += x & 1;
    return n;
}

static u32 ref_clz(u64 x)
{
    u32 n = 0;
    for (u64 bit = 1UL << 63; !(x & bit); bit >>= 1)
        n++;
    return n;
}

static u32 ref_ctz(u64 x)
{
    u32 n = 0;
    for (; !(x & 1); x >>= 1)
        n++;
    return n;
}

static u64 ref_bswap(u64 x)
{
    u64 r = 0;
    for (int i = 0; i < 8; i++)
        r |= ((x >> (8 * i)) & 0xff) << (56 - 8 * i);
    return r;
}

static u64 rotl64(u64 x, u32 n)
{
    n &= 63;
    return n ? (x << n) | (x >> (64 - n)) : x;
}

/* ---- instruction wrappers ---- */

static u64 asm_popcnt(u64 x)
{
    u64 r;
    __asm__("popcnt %1, %0" : "=r"(r) : "rm"(x) : "cc");
    return r;
}

/* bsf/bsr with a nonzero source: the index, and ZF (clear). */
static u64 asm_bsf_bsr(u64 x)
{
    u64 f, r;
    u8 zf;
    __asm__("bsf %[x], %[f]\n\tbsr %[x], %[r]\n\tsetz %[zf]"
            : [f] "=&r"(f), [r] "=&r"(r), [zf] "=&r"(zf)
            : [x] "r"(x)
            : "cc");
    return f | r << 8 | (u64)zf << 16;
}

static u64 asm_rotates(u64 x, u8 c)
{
    u8 b = (u8)x;
    u16 w = (u16)x;
    u32 d = (u32)x;
    u64 q = x;
    __asm__("rolb %%cl, %0\n\t"
            "rorw %%cl, %1\n\t"
            "roll %%cl, %2\n\t"
            "rorq %%cl, %3\n\t"
            "rolq $13, %3\n\t"
            "rorl $1, %2"
            : "+r"(b), "+r"(w), "+r"(d), "+r"(q)
            : "c"(c)
            : "cc");
    return mix64(mix64(b | (u64)w << 8 | (u64)d << 24, q), 0);
}

/* bt/bts/btr/btc with register, immediate and memory operands; CF of each. */
static u64 asm_bit_tests(u64 x, u64 idx, u64 *mem)
{
    u64 v = x;
    u8 c0, c1, c2, c3, c4, c5;
    __asm__("btq %7, %6\n\tsetc %0\n\t"
            "btsq %7, %6\n\tsetc %1\n\t"
            "btrq $5, %6\n\tsetc %2\n\t"
            "btcq %7, %6\n\tsetc %3\n\t"
            "btl $33, %k6\n\tsetc %4\n\t" /* immediate is taken mod 32 */
            "btcw $3, %w6\n\tsetc %5"
            : "=&r"(c0), "=&r"(c1), "=&r"(c2), "=&r"(c3), "=&r"(c4), "=&r"(c5), "+r"(v)
            : "r"(idx)
            : "cc");
    /* A register bit offset addresses a bit string: idx may reach past *mem. */
    u64 m_idx = idx * 3 % 192; /* stays inside the caller's 8-word array */
    u8 m0, m1, m2;
    __asm__("btsq %3, %4\n\tsetc %0\n\t"
            "btcq %3, %4\n\tsetc %1\n\t"
            "btrl %k3, %5\n\tsetc %2"
            : "=&r"(m0), "=&r"(m1), "=&r"(m2)
            : "r"(m_idx), "m"(*mem), "m"(*(u32 *)mem)
            : "cc", "memory");
    return v ^ (u64)(c0 | c1 << 1 | c2 << 2 | c3 << 3 | c4 << 4 | c5 << 5) << 56 ^
           (u64)(m0 | m1 << 1 | m2 << 2) << 48;
}

static u64 asm_shld_shrd(u64 a, u64 b, u8 c)
{
    u64 l = a, r = a;
    u32 l32 = (u32)a, r32 = (u32)a;
    u16 l16 = (u16)a;
    u8 c16 = c & 15;
    u8 cf;
    __asm__("shldq %%cl, %5, %0\n\t"
            "shrdq %%cl, %5, %1\n\t"
            "shldl $7, %k5, %2\n\t"
            "shrdl %%cl, %k5, %3\n\t"
            "setc %4"
            : "+r"(l), "+r"(r), "+r"(l32), "+r"(r32), "=&r"(cf)
            : "r"(b), "c"(c)
            : "cc");
    __asm__("shldw %%cl, %w1, %0" : "+r"(l16) : "r"(b), "c"(c16) : "cc");
    return mix64(mix64(l, r), (u64)l32 << 32 | r32) ^ (u64)l16 << 3 ^ (u64)(cf & (c != 0 && (c & 31) != 0));
}

/* rcl/rcr of each width, starting from a chosen CF; result and final CF. */
static u64 asm_rcl_rcr(u64 x, u8 c, u8 carry_in)
{
    u8 b = (u8)x, cf_b, cf_q;
    u16 w = (u16)(x >> 8);
    u32 d = (u32)(x >> 16);
    u64 q = x;
    __asm__("bt $0, %k6\n\t" /* CF = carry_in */
            "rclb %%cl, %0\n\t"
            "rcrw $1, %1\n\t"
            "rcll %%cl, %2\n\t"
            "setc %4\n\t"
            "rcrq %%cl, %3\n\t"
            "rclq $1, %3\n\t"
            "setc %5"
            : "+r"(b), "+r"(w), "+r"(d), "+r"(q), "=&r"(cf_b), "=&r"(cf_q)
            : "r"((u32)carry_in), "c"(c)
            : "cc");
    /* CF is only defined when the masked count is nonzero; rcrw $1 always defines it. */
    if ((c & 31) == 0)
        cf_b = 0;
    return mix64(mix64(b | (u64)w << 8 | (u64)d << 24, q), cf_b | cf_q << 1);
}

/* All sixteen conditions after sub (all six flags defined), packed into a word. */
static u32 asm_setcc(u64 a, u64 b)
{
    u32 r = 0;
    u8 f[16];
    __asm__("sub %17, %16\n\t"
            "seto %0\n\tsetno %1\n\tsetb %2\n\tsetae %3\n\t"
            "sete %4\n\tsetne %5\n\tsetbe %6\n\tseta %7\n\t"
            "sets %8\n\tsetns %9\n\tsetp %10\n\tsetnp %11\n\t"
            "setl %12\n\tsetge %13\n\tsetle %14\n\tsetg %15"
            : "=m"(f[0]), "=m"(f[1]), "=m"(f[2]), "=m"(f[3]), "=m"(f[4]), "=m"(f[5]),
              "=m"(f[6]), "=m"(f[7]), "=m"(f[8]), "=m"(f[9]), "=m"(f[10]), "=m"(f[11]),
              "=m"(f[12]), "=m"(f[13]), "=m"(f[14]), "=m"(f[15]), "+r"(a)
            : "r"(b)
            : "cc");
    for (int i = 0; i < 16; i++)
        r |= (u32)f[i] << i;
    return r;
}

/* The same conditions in C, which gcc compiles to setcc/cmov on cmp. */
static u32 c_conditions(u64 a, u64 b)
{
    i64 sa = (i64)a, sb = (i64)b;
    u32 r = 0;
    r |= (u32)(a < b) << 2 | (u32)(a >= b) << 3 | (u32)(a == b) << 4 | (u32)(a != b) << 5;
    r |= (u32)(a <= b) << 6 | (u32)(a > b) << 7;
    r |= (u32)(sa < sb) << 12 | (u32)(sa >= sb) << 13 | (u32)(sa <= sb) << 14 |
         (u32)(sa > sb) << 15;
    return r;
}

/* Branch-free selections that gcc turns into cmov. */
static u64 selections(u64 a, u64 b)
{
    i64 sa = (i64)a, sb = (i64)b;
    u64 umin = a < b ? a : b;
    u64 umax = a < b ? b : a;
    i64 smin = sa < sb ? sa : sb;
    i64 sabs = sa < 0 ? -sa : sa;
    u64 sel = (a & 1) ? b : a ^ 0x5555;
    i32 clamp = (i32)a;
    clamp = clamp > 1000 ? 1000 : clamp < -1000 ? -1000 : clamp;
    return mix64(mix64(umin ^ umax << 1, (u64)smin ^ (u64)sabs), sel + (u64)(i64)clamp);
}

static u64 bit_reverse(u64 x)
{
    x = (x & 0x5555555555555555UL) << 1 | ((x >> 1) & 0x5555555555555555UL);
    x = (x & 0x3333333333333333UL) << 2 | ((x >> 2) & 0x3333333333333333UL);
    x = (x & 0x0f0f0f0f0f0f0f0fUL) << 4 | ((x >> 4) & 0x0f0f0f0f0f0f0f0fUL);
    return __builtin_bswap64(x);
}

static u64 morton(u32 x, u32 y)
{
    u64 r = 0;
    for (int i = 0; i < 32; i++)
        r |= ((u64)(x >> i) & 1) << (2 * i) | ((u64)(y >> i) & 1) << (2 * i + 1);
    return r;
}

static u64 next_pow2(u64 x)
{
    return x <= 1 ? 1 : x > (1UL << 63) ? 0 : 1UL << (64 - __builtin_clzll(x - 1));
}

int main(void)
{
    u64 mem[8] = {0x0123456789abcdefUL, 0xfedcba9876543210UL, 0, ~0UL, 0, 0, 0, 0};
    u64 h_count = 0, h_rot = 0, h_bt = 0, h_shd = 0, h_rc = 0, h_cc = 0, h_misc = 0;
    for (u32 i = 0; i < 5000u * SCALE; i++) {
        u64 x = next(), y = next();
        u64 nz = x | 1UL << (y & 63);
        u8 c = (u8)(y >> 58);

        u32 pc = ref_popcount(x);
        if (pc != (u32)__builtin_popcountll(x) || pc != asm_popcnt(x))
            return fail("bits", "popcount");
        u32 lz = ref_clz(nz), tz = ref_ctz(nz);
        if (lz != (u32)__builtin_clzll(nz) || tz != (u32)__builtin_ctzll(nz))
            return fail("bits", "clz/ctz");
        u64 bsx = asm_bsf_bsr(nz);
        if ((bsx & 0xff) != tz || ((bsx >> 8) & 0xff) != 63 - lz || (bsx >> 16))
            return fail("bits", "bsf/bsr");
        if (ref_bswap(x) != __builtin_bswap64(x) ||
            (u32)(ref_bswap(x) >> 32) != __builtin_bswap32((u32)x))
            return fail("bits", "bswap");
        h_count = mix64(h_count, pc | lz << 8 | tz << 16 | (u64)__builtin_parityll(y) << 24);

        if (rotl64(x, c) != ((x << (c & 63)) | (x >> ((64 - c) & 63))))
            return fail("bits", "rotate idiom");
        h_rot = mix64(h_rot, asm_rotates(x, c) ^ rotl64(y, (u32)x));

        h_bt = mix64(h_bt, asm_bit_tests(x, y & 127, &mem[i & 1]));
        h_shd = mix64(h_shd, asm_shld_shrd(x, y, c));
        h_rc = mix64(h_rc, asm_rcl_rcr(x, c, (u8)(y & 1)));

        /* Equal operands half the time; small values so signed/unsigned differ. */
        u64 a = (i & 2) ? x : y, b = (i & 4) ? y : (i & 8) ? a : (u64)(i64)(i8)x;
        u32 cc = asm_setcc(a, b);
        if ((cc & 0xf0fc) != c_conditions(a, b))
            return fail("bits", "setcc disagrees with C comparisons");
        h_cc = mix64(h_cc, cc);

        h_misc = mix64(h_misc, selections(x, y) ^ bit_reverse(x) ^ morton((u32)x, (u32)y) ^
                                   next_pow2(x >> (y & 63)));
    }
    print_str("bits: count");
    print_kv("counts", h_count);
    print_kv("rot", h_rot);
    print_kv("bt", h_bt);
    print_kv("mem", checksum(mem, sizeof(mem)));
    print_nl();
    print_str("bits: shift");
    print_kv("shd", h_shd);
    print_kv("rc", h_rc);
    print_kv("cc", h_cc);
    print_kv("misc", h_misc);
    print_nl();
    return 0;
}
