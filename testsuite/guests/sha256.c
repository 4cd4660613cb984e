/*
 * SHA-256 (FIPS 180-4) with 32-bit rotates and big-endian loads. Checks the
 * standard "abc" and two-block vectors, then hashes a 32 KiB generated buffer
 * 2 * SCALE times, feeding each digest back into the buffer.
 */
#include "rt.h"

#define BUF_LEN (1u << 15)

struct sha256 {
    u32 h[8];
    u8 block[64];
    u32 fill;
    u64 total;
};

static const u32 K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2,
};

static u8 buf[BUF_LEN];

static inline u32 ror(u32 x, int n)
{
    return (x >> n) | (x << (32 - n));
}

static void compress(u32 h[8], const u8 *p)
{
    u32 w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (u32)p[4 * i] << 24 | (u32)p[4 * i + 1] << 16 | (u32)p[4 * i + 2] << 8 |
               (u32)p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        u32 s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
        u32 s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    u32 a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        u32 t1 = hh + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
        u32 t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += hh;
}

static void sha_init(struct sha256 *s)
{
    static const u32 iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                              0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    for (int i = 0; i < 8; i++)
        s->h[i] = iv[i];
    s->fill = 0;
    s->total = 0;
}

static void sha_update(struct sha256 *s, const u8 *p, usize n)
{
    s->total += n;
    while (n) {
        if (s->fill == 0 && n >= 64) {
            compress(s->h, p);
            p += 64;
            n -= 64;
            continue;
        }
        s->block[s->fill++] = *p++;
        n--;
        if (s->fill == 64) {
            compress(s->h, s->block);
            s->fill = 0;
        }
    }
}

static void sha_final(struct sha256 *s, u8 out[32])
{
    u64 bits = s->total * 8;
    u8 pad = 0x80;
    sha_update(s, &pad, 1);
    pad = 0;
    while (s->fill != 56)
        sha_update(s, &pad, 1);
    u8 len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (u8)(bits >> (56 - 8 * i));
    sha_update(s, len, 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (u8)(s->h[i] >> 24);
        out[4 * i + 1] = (u8)(s->h[i] >> 16);
        out[4 * i + 2] = (u8)(s->h[i] >> 8);
        out[4 * i + 3] = (u8)s->h[i];
    }
}

static void sha256(const void *p, usize n, u8 out[32])
{
    struct sha256 s;
    sha_init(&s);
    sha_update(&s, p, n);
    sha_final(&s, out);
}

static u64 be64(const u8 *p)
{
    u64 v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void print_digest(const char *label, const u8 d[32])
{
    print_str("sha256: ");
    print_str(label);
    for (int i = 0; i < 4; i++)
        print_kv(i == 0 ? "d0" : i == 1 ? "d1" : i == 2 ? "d2" : "d3", be64(d + 8 * i));
    print_nl();
}

int main(void)
{
    static const u8 abc_expect[32] = {
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
        0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
        0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    static const u8 two_expect[32] = {
        0x24, 0x8d, 0x6a, 0x61, 0xd2, 0x06, 0x38, 0xb8, 0xe5, 0xc0, 0x26,
        0x93, 0x0c, 0x3e, 0x60, 0x39, 0xa3, 0x3c, 0xe4, 0x59, 0x64, 0xff,
        0x21, 0x67, 0xf6, 0xec, 0xed, 0xd4, 0x19, 0xdb, 0x06, 0xc1};
    static const char two[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    u8 d[32];

    sha256("abc", 3, d);
    print_digest("abc", d);
    if (memcmp(d, abc_expect, 32) != 0)
        return fail("sha256", "digest of abc");
    sha256(two, strlen(two), d);
    print_digest("two-block", d);
    if (memcmp(d, two_expect, 32) != 0)
        return fail("sha256", "two-block digest");

    u64 x = 0x0123456789abcdefUL;
    for (u32 i = 0; i < BUF_LEN; i++) {
        x = x * 6364136223846793005UL + 1442695040888963407UL;
        buf[i] = (u8)(x >> 56);
    }
    for (u32 round = 0; round < 2 * SCALE; round++) {
        sha256(buf, BUF_LEN, d);
        memcpy(buf + (round * 32) % (BUF_LEN - 32), d, 32);
    }
    /* Streaming in odd-sized pieces must give the same digest as one call. */
    struct sha256 s;
    u8 d2[32];
    sha_init(&s);
    for (usize off = 0, step = 1; off < BUF_LEN; off += step, step = step * 3 % 97 + 1)
        sha_update(&s, buf + off, step < BUF_LEN - off ? step : BUF_LEN - off);
    sha_final(&s, d2);
    sha256(buf, BUF_LEN, d);
    if (memcmp(d, d2, 32) != 0)
        return fail("sha256", "streamed and one-shot digests differ");
    print_digest("data", d);
    return 0;
}
