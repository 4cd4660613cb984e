/*
 * SSE4.2 string search with PCMPISTRI/PCMPISTRM/PCMPESTRI/PCMPESTRM (the
 * <nmmintrin.h> intrinsics, built with -msse4.2) over a generated text of words,
 * digits, punctuation and newlines, each function cross-checked against a plain
 * byte loop:
 * - strlen (EQUAL_EACH with masked negative polarity: the first invalid byte);
 * - strchr (EQUAL_ANY with a one-byte set), counting every occurrence of a byte;
 * - strspn/strcspn over character ranges (RANGES), splitting the text into words;
 * - strstr (EQUAL_ORDERED), counting every occurrence of several needles;
 * - character classes counted from PCMPISTRM bit masks (popcount) and byte masks;
 * - memcmp-style first difference of explicit-length buffers (PCMPESTRI/PCMPESTRM,
 *   which look past NUL bytes).
 * The text buffer has 16 NUL bytes of padding so 16-byte loads past the end are
 * safe. SCALE multiplies the passes over the text.
 */
#include "rt.h"
#include <nmmintrin.h>

#define TLEN 24000

/* The text, NUL-terminated, with a 16-byte zero tail for the last loads. */
static char text[TLEN + 32] __attribute__((aligned(16)));
static char other[TLEN + 32] __attribute__((aligned(16)));

static u64 rng = 0xa4093822299f31d0UL;

static u64 next(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717UL;
}

static const char *const words[] = {
    "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "popek", "goldberg",
    "virtualization", "translation", "binary", "dynamic", "Cranelift", "SSE", "pcmpistri",
    "needle", "haystack", "x86", "vector", "lane", "mask", "index",
};

static void make_text(void)
{
    usize n = 0;
    while (n < TLEN - 40) {
        u64 r = next();
        const char *w = words[r % ARRAY_LEN(words)];
        while (*w)
            text[n++] = *w++;
        switch ((r >> 8) % 16) {
        case 0:
            text[n++] = ',';
            break;
        case 1:
            text[n++] = '.';
            text[n++] = '\n';
            continue;
        case 2:
            for (int d = (int)((r >> 16) % 6); d >= 0; d--)
                text[n++] = (char)('0' + (r >> (20 + 3 * d)) % 10);
            break;
        default:
            break;
        }
        text[n++] = ' ';
    }
    while (n < TLEN + 32)
        text[n++] = 0;
}

static __m128i load(const char *p)
{
    return _mm_loadu_si128((const __m128i *)p);
}

/* ---- strlen ---- */

#define LEN_MODE (_SIDD_UBYTE_OPS | _SIDD_CMP_EQUAL_EACH | _SIDD_MASKED_NEGATIVE_POLARITY)

NOINLINE static usize sse_strlen(const char *s)
{
    for (usize n = 0;; n += 16) {
        __m128i c = load(s + n);
        int i = _mm_cmpistri(c, c, LEN_MODE);
        if (i < 16)
            return n + (usize)i;
    }
}

NOINLINE static usize ref_strlen(const char *s)
{
    usize n = 0;
    OPAQUE(n);
    while (s[n])
        n++;
    return n;
}

/* ---- strchr ---- */

#define ANY_MODE (_SIDD_UBYTE_OPS | _SIDD_CMP_EQUAL_ANY | _SIDD_LEAST_SIGNIFICANT)

NOINLINE static const char *sse_strchr(const char *s, char ch)
{
    __m128i set = _mm_cvtsi32_si128((u8)ch);
    for (;; s += 16) {
        __m128i c = load(s);
        if (_mm_cmpistrc(set, c, ANY_MODE))
            return s + _mm_cmpistri(set, c, ANY_MODE);
        if (_mm_cmpistrz(set, c, ANY_MODE))
            return 0;
    }
}

NOINLINE static const char *ref_strchr(const char *s, char ch)
{
    for (; *s; s++)
        if (*s == ch)
            return s;
    return 0;
}

/* ---- strspn / strcspn over ranges (set: pairs of inclusive bounds, NUL-terminated) ---- */

#define RANGE_MODE (_SIDD_UBYTE_OPS | _SIDD_CMP_RANGES | _SIDD_LEAST_SIGNIFICANT)

/* Length of the prefix of s whose bytes are all in (accept != 0) or all outside the ranges. */
NOINLINE static usize sse_span(const char *s, __m128i ranges, int accept)
{
    for (usize n = 0;; n += 16) {
        __m128i c = load(s + n);
        int i = accept ? _mm_cmpistri(ranges, c, RANGE_MODE | _SIDD_MASKED_NEGATIVE_POLARITY)
                       : _mm_cmpistri(ranges, c, RANGE_MODE);
        if (i < 16)
            return n + (usize)i;
        if (_mm_cmpistrz(ranges, c, RANGE_MODE))
            return n + sse_strlen(s + n);
    }
}

static int in_ranges(const char *set, char ch)
{
    for (; set[0]; set += 2)
        if ((u8)ch >= (u8)set[0] && (u8)ch <= (u8)set[1])
            return 1;
    return 0;
}

NOINLINE static usize ref_span(const char *s, const char *set, int accept)
{
    usize n = 0;
    while (s[n] && in_ranges(set, s[n]) == accept)
        n++;
    return n;
}

/* ---- strstr ---- */

#define ORDERED_MODE (_SIDD_UBYTE_OPS | _SIDD_CMP_EQUAL_ORDERED | _SIDD_LEAST_SIGNIFICANT)

NOINLINE static const char *sse_strstr(const char *hay, const char *needle)
{
    __m128i nv = load(needle);
    for (;;) {
        __m128i c = load(hay);
        if (_mm_cmpistrc(nv, c, ORDERED_MODE)) {
            const char *cand = hay + _mm_cmpistri(nv, c, ORDERED_MODE);
            usize k = 0;
            while (needle[k] && cand[k] == needle[k])
                k++;
            if (!needle[k])
                return cand;
            hay = cand + 1;
        } else if (_mm_cmpistrz(nv, c, ORDERED_MODE)) {
            return 0;
        } else {
            hay += 16;
        }
    }
}

NOINLINE static const char *ref_strstr(const char *hay, const char *needle)
{
    for (; *hay; hay++) {
        usize k = 0;
        while (needle[k] && hay[k] == needle[k])
            k++;
        if (!needle[k])
            return hay;
    }
    return 0;
}

/* ---- character classes from masks ---- */

struct classes {
    u32 digits, vowels, upper;
};

NOINLINE static struct classes sse_classes(const char *s)
{
    const __m128i digit = _mm_setr_epi8('0', '9', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m128i vowel =
        _mm_setr_epi8('a', 'e', 'i', 'o', 'u', 'A', 'E', 'I', 'O', 'U', 0, 0, 0, 0, 0, 0);
    const __m128i upper = _mm_setr_epi8('A', 'Z', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    struct classes r = { 0, 0, 0 };
    __m128i upper_bytes = _mm_setzero_si128();
    u32 chunks = 0;
    for (;; s += 16) {
        __m128i c = load(s);
        __m128i m = _mm_cmpistrm(digit, c, _SIDD_UBYTE_OPS | _SIDD_CMP_RANGES | _SIDD_BIT_MASK);
        r.digits += (u32)__builtin_popcount((u32)_mm_cvtsi128_si32(m));
        m = _mm_cmpistrm(vowel, c, _SIDD_UBYTE_OPS | _SIDD_CMP_EQUAL_ANY | _SIDD_BIT_MASK);
        r.vowels += (u32)__builtin_popcount((u32)_mm_cvtsi128_si32(m));
        /* A byte mask is 0xff per match: subtracting it counts per lane, emptied every 128. */
        m = _mm_cmpistrm(upper, c, _SIDD_UBYTE_OPS | _SIDD_CMP_RANGES | _SIDD_UNIT_MASK);
        upper_bytes = _mm_sub_epi8(upper_bytes, m);
        if (_mm_cmpistrz(digit, c, _SIDD_UBYTE_OPS | _SIDD_CMP_RANGES)) {
            __m128i sums = _mm_sad_epu8(upper_bytes, _mm_setzero_si128());
            r.upper += (u32)_mm_extract_epi16(sums, 0) + (u32)_mm_extract_epi16(sums, 4);
            return r;
        }
        if (++chunks % 128 == 0) {
            __m128i sums = _mm_sad_epu8(upper_bytes, _mm_setzero_si128());
            r.upper += (u32)_mm_extract_epi16(sums, 0) + (u32)_mm_extract_epi16(sums, 4);
            upper_bytes = _mm_setzero_si128();
        }
    }
}

NOINLINE static struct classes ref_classes(const char *s)
{
    struct classes r = { 0, 0, 0 };
    for (; *s; s++) {
        r.digits += *s >= '0' && *s <= '9';
        r.upper += *s >= 'A' && *s <= 'Z';
        for (const char *v = "aeiouAEIOU"; *v; v++)
            r.vowels += *s == *v;
    }
    return r;
}

/* ---- first difference of explicit-length buffers (NULs included) ---- */

#define DIFF_MODE (_SIDD_UBYTE_OPS | _SIDD_CMP_EQUAL_EACH | _SIDD_NEGATIVE_POLARITY)

/* The index of the first byte where a and b differ, or n. */
NOINLINE static usize sse_mismatch(const char *a, const char *b, usize n)
{
    for (usize off = 0; off < n; off += 16) {
        int len = n - off < 16 ? (int)(n - off) : 16;
        __m128i x = load(a + off), y = load(b + off);
        if (_mm_cmpestrc(x, len, y, len, DIFF_MODE))
            return off + (usize)_mm_cmpestri(x, len, y, len, DIFF_MODE);
    }
    return n;
}

/* The number of differing bytes, from PCMPESTRM bit masks. */
NOINLINE static u32 sse_hamming(const char *a, const char *b, usize n)
{
    u32 d = 0;
    for (usize off = 0; off < n; off += 16) {
        int len = n - off < 16 ? (int)(n - off) : 16;
        __m128i m = _mm_cmpestrm(load(a + off), len, load(b + off), len,
                                 DIFF_MODE | _SIDD_MASKED_NEGATIVE_POLARITY | _SIDD_BIT_MASK);
        d += (u32)__builtin_popcount((u32)_mm_cvtsi128_si32(m));
    }
    return d;
}

NOINLINE static usize ref_mismatch(const char *a, const char *b, usize n)
{
    usize i = 0;
    while (i < n && a[i] == b[i])
        i++;
    return i;
}

NOINLINE static u32 ref_hamming(const char *a, const char *b, usize n)
{
    u32 d = 0;
    for (usize i = 0; i < n; i++)
        d += a[i] != b[i];
    return d;
}

int main(void)
{
    static const char *const needles[] = { "the", "fox jumps", "pcmpistri", "x86 ", "lazy dog",
                                           "Cranelift, ", "virtualization translation" };
    static const char letters[] = "azAZ";
    static const char digits[] = "09";
    u64 acc = 0;
    usize len = 0, nwords = 0, longest = 0;
    u32 chars = 0, found = 0, hamming = 0;
    struct classes cls = { 0, 0, 0 };
    make_text();
    __m128i letter_ranges = _mm_setr_epi8('a', 'z', 'A', 'Z', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    __m128i digit_ranges = _mm_setr_epi8('0', '9', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);

    for (u32 round = 0; round < SCALE; round++) {
        /* Vary the text a little every round: a different tail length. */
        usize cut = TLEN - 40 - round % 97;
        char saved = text[cut];
        text[cut] = 0;

        len = sse_strlen(text);
        if (len != ref_strlen(text) || len != cut)
            return fail("pcmpstr", "strlen");
        for (usize k = 0; k < 64; k++)
            if (sse_strlen(text + k * 37) != ref_strlen(text + k * 37))
                return fail("pcmpstr", "strlen at an offset");

        chars = 0;
        for (const char *c = "e.,9Qz\n"; *c; c++) {
            const char *p = text;
            for (;;) {
                const char *a = sse_strchr(p, *c), *b = ref_strchr(p, *c);
                if (a != b)
                    return fail("pcmpstr", "strchr");
                if (!a)
                    break;
                chars++;
                acc = mix64(acc, (u64)(a - text));
                p = a + 1;
            }
        }

        nwords = 0;
        longest = 0;
        for (const char *p = text; *p;) {
            usize skip = sse_span(p, letter_ranges, 0);
            if (skip != ref_span(p, letters, 0))
                return fail("pcmpstr", "strcspn");
            p += skip;
            usize w = sse_span(p, letter_ranges, 1);
            if (w != ref_span(p, letters, 1))
                return fail("pcmpstr", "strspn");
            if (w) {
                nwords++;
                longest = w > longest ? w : longest;
                acc = mix64(acc, w);
            }
            usize d = sse_span(p + w, digit_ranges, 1);
            if (d != ref_span(p + w, digits, 1))
                return fail("pcmpstr", "strspn of digits");
            p += w;
        }

        found = 0;
        for (usize k = 0; k < ARRAY_LEN(needles); k++) {
            const char *p = text;
            for (;;) {
                const char *a = sse_strstr(p, needles[k]), *b = ref_strstr(p, needles[k]);
                if (a != b)
                    return fail("pcmpstr", "strstr");
                if (!a)
                    break;
                found++;
                acc = mix64(acc, (u64)(a - text));
                p = a + 1;
            }
        }

        cls = sse_classes(text);
        struct classes ref = ref_classes(text);
        if (cls.digits != ref.digits || cls.vowels != ref.vowels || cls.upper != ref.upper)
            return fail("pcmpstr", "character classes");

        /* other = text with every 61st byte changed, NULs included. */
        for (usize i = 0; i < TLEN; i++)
            other[i] = i % 61 == round % 61 ? (char)(text[i] ^ 0x20) : text[i];
        hamming = sse_hamming(text, other, TLEN);
        if (hamming != ref_hamming(text, other, TLEN))
            return fail("pcmpstr", "hamming distance");
        for (usize at = 0; at < TLEN; at += 1000) {
            usize a = sse_mismatch(text + at, other + at, TLEN - at);
            if (a != ref_mismatch(text + at, other + at, TLEN - at))
                return fail("pcmpstr", "mismatch");
            acc = mix64(acc, a);
        }
        text[cut] = saved;
    }
    print_str("pcmpstr:");
    print_kv("len", len);
    print_kv("chars", chars);
    print_kv("words", nwords);
    print_kv("longest", longest);
    print_kv("found", found);
    print_nl();
    print_str("pcmpstr:");
    print_kv("digits", cls.digits);
    print_kv("vowels", cls.vowels);
    print_kv("upper", cls.upper);
    print_kv("hamming", hamming);
    print_kv("acc", acc);
    print_nl();
    return 0;
}
