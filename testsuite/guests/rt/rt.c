/*
 * popek guest runtime: formatting and memory helpers shared by the guest and
 * native builds. Only putc_serial (serial.c or native.c) differs between them.
 */
#include "rt.h"

void print_str(const char *s)
{
    while (*s)
        putc_serial(*s++);
}

int puts(const char *s)
{
    print_str(s);
    putc_serial('\n');
    return 0;
}

void print_hex64(u64 v)
{
    static const char digits[] = "0123456789abcdef";
    for (int shift = 60; shift >= 0; shift -= 4)
        putc_serial(digits[(v >> shift) & 0xf]);
}

void print_dec(u64 v)
{
    char buf[20];
    int n = 0;
    do {
        buf[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        putc_serial(buf[--n]);
}

void print_kv(const char *key, u64 v)
{
    putc_serial(' ');
    print_str(key);
    putc_serial('=');
    print_hex64(v);
}

void print_nl(void)
{
    putc_serial('\n');
}

int fail(const char *name, const char *what)
{
    print_str(name);
    print_str(": FAIL ");
    puts(what);
    return 1;
}

u64 checksum(const void *p, usize n)
{
    const u8 *b = p;
    u64 h = 0xcbf29ce484222325UL;
    for (usize i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3UL;
    }
    return h;
}

u64 mix64(u64 h, u64 v)
{
    h ^= v;
    h *= 0x100000001b3UL;
    return h ^ (h >> 29);
}

u64 record_acc;
int record_verbose;

void record(const char *key, u64 v)
{
    record_acc = mix64(record_acc, v);
    if (record_verbose)
        print_kv(key, v);
}

void record_checksum(const char *key, const void *p, usize n)
{
    record(key, checksum(p, n));
}

void record_begin(const char *label)
{
    if (record_verbose)
        print_str(label);
}

void record_end(void)
{
    if (record_verbose)
        print_nl();
}

void *memcpy(void *dst, const void *src, usize n)
{
    u8 *d = dst;
    const u8 *s = src;
    while (n--)
        *d++ = *s++;
    return dst;
}

void *memmove(void *dst, const void *src, usize n)
{
    u8 *d = dst;
    const u8 *s = src;
    if (d < s) {
        while (n--)
            *d++ = *s++;
    } else {
        while (n--)
            d[n] = s[n];
    }
    return dst;
}

void *memset(void *dst, int c, usize n)
{
    u8 *d = dst;
    while (n--)
        *d++ = (u8)c;
    return dst;
}

int memcmp(const void *a, const void *b, usize n)
{
    const u8 *x = a, *y = b;
    for (usize i = 0; i < n; i++)
        if (x[i] != y[i])
            return x[i] < y[i] ? -1 : 1;
    return 0;
}

usize strlen(const char *s)
{
    usize n = 0;
    while (s[n])
        n++;
    return n;
}
