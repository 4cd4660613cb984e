/*
 * LZSS compression round trip: a 4 KiB sliding window, 3..18-byte matches found
 * through hash chains, flag bytes grouping eight literal/match items. SCALE
 * rounds compress and decompress 24 KiB of generated word-salad text; the output
 * must reproduce the input. Prints compressed sizes and checksums.
 */
#include "rt.h"

#define IN_LEN (24u * 1024)
#define WINDOW 4096u
#define MIN_MATCH 3u
#define MAX_MATCH 18u
#define HASH_SIZE 4096u
#define MAX_CHAIN 16u
#define NIL 0xffffffffu

static u8 input[IN_LEN];
static u8 packed[IN_LEN + IN_LEN / 8 + 16];
static u8 unpacked[IN_LEN];
static u32 head[HASH_SIZE];
static u32 prev[IN_LEN];

static const char *const words[] = {
    "the ",   "popek ", "goldberg ", "virtual ", "machine ", "trap ",  "and ",
    "emulate ", "x86 ", "sensitive ", "instruction ", "block ", "cache ", "of ",
    "guest ", "host ", "\n",   "translate ", "page ",  "table ",  "fault ", "a ",
};

static u64 rng;

static u32 next(void)
{
    rng = rng * 6364136223846793005UL + 1442695040888963407UL;
    return (u32)(rng >> 33);
}

static void generate(u64 seed)
{
    rng = seed;
    u32 n = 0;
    while (n < IN_LEN) {
        u32 r = next();
        if (r % 13 == 0) {
            /* Occasional noise so that not everything matches. */
            input[n++] = (u8)(r >> 8);
            continue;
        }
        const char *w = words[r % ARRAY_LEN(words)];
        while (*w && n < IN_LEN)
            input[n++] = (u8)*w++;
    }
}

static u32 hash3(const u8 *p)
{
    return ((u32)p[0] << 16 ^ (u32)p[1] << 8 ^ p[2]) * 2654435761u >> 20;
}

static usize compress(const u8 *in, usize n, u8 *out, u32 *matches)
{
    usize o = 0, flag_pos = 0;
    u32 item = 8;
    for (u32 i = 0; i < HASH_SIZE; i++)
        head[i] = NIL;
    *matches = 0;
    for (usize i = 0; i < n;) {
        if (item == 8) {
            flag_pos = o++;
            out[flag_pos] = 0;
            item = 0;
        }
        u32 best_len = 0, best_off = 0;
        if (i + MIN_MATCH <= n) {
            u32 h = hash3(in + i);
            u32 cand = head[h];
            for (u32 chain = 0; cand != NIL && i - cand <= WINDOW && chain < MAX_CHAIN; chain++) {
                u32 len = 0, limit = n - i < MAX_MATCH ? (u32)(n - i) : MAX_MATCH;
                while (len < limit && in[cand + len] == in[i + len])
                    len++;
                if (len > best_len) {
                    best_len = len;
                    best_off = (u32)(i - cand);
                }
                cand = prev[cand];
            }
        }
        usize step = best_len >= MIN_MATCH ? best_len : 1;
        if (best_len >= MIN_MATCH) {
            out[flag_pos] |= (u8)(1u << item);
            u32 code = (best_off - 1) << 4 | (best_len - MIN_MATCH);
            out[o++] = (u8)code;
            out[o++] = (u8)(code >> 8);
            (*matches)++;
        } else {
            out[o++] = in[i];
        }
        item++;
        /* Index every position the step covers, so later matches can start there. */
        for (usize k = 0; k < step; k++, i++) {
            if (i + MIN_MATCH <= n) {
                u32 h = hash3(in + i);
                prev[i] = head[h];
                head[h] = (u32)i;
            }
        }
    }
    return o;
}

static usize decompress(const u8 *in, usize n, u8 *out, usize cap)
{
    usize o = 0;
    for (usize i = 0; i < n;) {
        u8 flags = in[i++];
        for (u32 item = 0; item < 8 && i < n; item++) {
            if (flags & (1u << item)) {
                u32 code = in[i] | (u32)in[i + 1] << 8;
                i += 2;
                usize off = (code >> 4) + 1, len = (code & 15) + MIN_MATCH;
                if (off > o || o + len > cap)
                    return (usize)-1;
                /* Byte by byte: matches may overlap their own output. */
                for (usize k = 0; k < len; k++, o++)
                    out[o] = out[o - off];
            } else {
                if (o >= cap)
                    return (usize)-1;
                out[o++] = in[i++];
            }
        }
    }
    return o;
}

int main(void)
{
    u64 acc = 0, total_packed = 0;
    usize plen = 0;
    u32 matches = 0;
    for (u32 round = 0; round < SCALE; round++) {
        generate(0x5851f42d4c957f2dUL + round);
        plen = compress(input, IN_LEN, packed, &matches);
        usize ulen = decompress(packed, plen, unpacked, IN_LEN);
        if (ulen != IN_LEN || memcmp(input, unpacked, IN_LEN) != 0)
            return fail("lzss", "round trip does not reproduce the input");
        total_packed += plen;
        acc = mix64(acc, checksum(packed, plen));
    }
    print_str("lzss:");
    print_kv("in", IN_LEN);
    print_kv("out", plen);
    print_kv("matches", matches);
    print_kv("total", total_packed);
    print_kv("acc", acc);
    print_nl();
    return 0;
}
