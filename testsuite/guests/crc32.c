/*
 * CRC-32 (IEEE, reflected 0xEDB88320) three ways -- bitwise, byte table, and
 * slicing-by-4 -- plus bitwise CRC-32C (Castagnoli), over a 64 KiB xorshift buffer
 * that is regenerated each of SCALE rounds. The ways must agree, and the standard
 * check values of "123456789" must come out.
 */
#include "rt.h"

#define BUF_LEN (1u << 16)

static u8 buf[BUF_LEN];
static u32 table[4][256];

static u32 crc32_bitwise(u32 crc, const u8 *p, usize n, u32 poly)
{
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (poly & (0u - (crc & 1)));
    }
    return ~crc;
}

static void make_tables(void)
{
    for (u32 i = 0; i < 256; i++) {
        u32 c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0xedb88320u : c >> 1;
        table[0][i] = c;
    }
    for (u32 i = 0; i < 256; i++)
        for (int t = 1; t < 4; t++)
            table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xff];
}

static u32 crc32_table(u32 crc, const u8 *p, usize n)
{
    crc = ~crc;
    while (n--)
        crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
    return ~crc;
}

static u32 crc32_slice4(u32 crc, const u8 *p, usize n)
{
    crc = ~crc;
    while (n >= 4) {
        /* Assemble the word bytewise: the buffer need not be aligned. */
        u32 w = crc ^ ((u32)p[0] | (u32)p[1] << 8 | (u32)p[2] << 16 | (u32)p[3] << 24);
        crc = table[3][w & 0xff] ^ table[2][(w >> 8) & 0xff] ^ table[1][(w >> 16) & 0xff] ^
              table[0][w >> 24];
        p += 4;
        n -= 4;
    }
    while (n--)
        crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
    return ~crc;
}

static void fill(u64 seed)
{
    u64 x = seed;
    for (u32 i = 0; i < BUF_LEN; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        for (int k = 0; k < 8; k++)
            buf[i + k] = (u8)(x >> (8 * k));
    }
}

int main(void)
{
    static const u8 check[] = "123456789";
    make_tables();
    u32 c1 = crc32_bitwise(0, check, 9, 0xedb88320u);
    u32 c2 = crc32_table(0, check, 9);
    u32 c3 = crc32_bitwise(0, check, 9, 0x82f63b78u);
    print_str("crc32: check");
    print_kv("ieee", c1);
    print_kv("table", c2);
    print_kv("crc32c", c3);
    print_nl();
    if (c1 != 0xcbf43926u || c2 != 0xcbf43926u)
        return fail("crc32", "check value of 123456789");
    if (c3 != 0xe3069283u)
        return fail("crc32", "crc32c check value of 123456789");

    u64 acc_ieee = 0, acc_c = 0;
    u32 chained = 0;
    for (u32 round = 0; round < SCALE; round++) {
        fill(0x9e3779b97f4a7c15UL + round);
        u32 a = crc32_bitwise(0, buf, BUF_LEN, 0xedb88320u);
        u32 b = crc32_table(0, buf, BUF_LEN);
        /* Odd offset and length exercise the unaligned head and the tail loop. */
        u32 c = crc32_slice4(0, buf + 1, BUF_LEN - 4);
        u32 d = crc32_table(0, buf + 1, BUF_LEN - 4);
        if (a != b || c != d)
            return fail("crc32", "bitwise, table and slicing disagree");
        chained = crc32_slice4(chained, buf, BUF_LEN);
        acc_ieee = mix64(acc_ieee, ((u64)a << 32) | c);
        acc_c = mix64(acc_c, crc32_bitwise(0, buf, BUF_LEN / 4, 0x82f63b78u));
    }
    print_str("crc32: data");
    print_kv("ieee", acc_ieee);
    print_kv("crc32c", acc_c);
    print_kv("chained", chained);
    print_nl();
    return 0;
}
