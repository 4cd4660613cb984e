/*
 * popek guest runtime: the few services a freestanding guest program needs.
 *
 * Every guest is built twice from the same sources: as a bare-metal guest (output
 * goes to the COM1 data port) and as a host Linux executable (output goes to
 * stdout). Only putc_serial and the exit path differ; everything a program
 * computes is the same machine code in both builds, so the two print exactly the
 * same text. Programs must therefore print only address-independent values.
 */
#ifndef POPEK_RT_H
#define POPEK_RT_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long u64;
typedef signed char i8;
typedef short i16;
typedef int i32;
typedef long i64;
typedef unsigned long usize;
typedef unsigned __int128 u128;
typedef __int128 i128;

/* Work multiplier: each program does SCALE times its base amount of work. */
#ifndef SCALE
#define SCALE 1
#endif

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define NOINLINE __attribute__((noinline, noipa))

/* Hide a value from the optimizer so that work on constants is not folded away. */
#define OPAQUE(x) __asm__ volatile("" : "+r"(x))

/* Emit one byte of output (COM1 in the guest, stdout natively). */
void putc_serial(char c);

/* Write a NUL-terminated string followed by a newline, like libc's puts. */
int puts(const char *s);
/* Write a NUL-terminated string as is. */
void print_str(const char *s);
/* Write v as exactly 16 lowercase hex digits. */
void print_hex64(u64 v);
/* Write v in decimal. */
void print_dec(u64 v);
/* Write " key=<16 hex digits>"; results are printed as lines of these. */
void print_kv(const char *key, u64 v);
/* Write a newline. */
void print_nl(void);
/* Write "<name>: FAIL <what>\n" and return 1, for `return fail(...)` from main. */
int fail(const char *name, const char *what);

/* FNV-1a over a byte buffer: the checksum programs print for their data. */
u64 checksum(const void *p, usize n);
/* Fold a 64-bit value into a running FNV-style hash. */
u64 mix64(u64 h, u64 v);

/*
 * Result recording for the assembly programs (see asm.h): every recorded value is
 * folded into record_acc, and printed as " key=value" while record_verbose is set,
 * so a program can run many rounds and print only the last one in detail.
 */
extern u64 record_acc;
extern int record_verbose;
void record(const char *key, u64 v);
void record_checksum(const char *key, const void *p, usize n);
/* Start an output line with label (verbose only). */
void record_begin(const char *label);
/* End the output line (verbose only). */
void record_end(void);

/* gcc may emit calls to these even with -fno-builtin (struct copies, zeroing). */
void *memcpy(void *dst, const void *src, usize n);
void *memmove(void *dst, const void *src, usize n);
void *memset(void *dst, int c, usize n);
int memcmp(const void *a, const void *b, usize n);
usize strlen(const char *s);

/* The program's entry, called by _start on a fresh 1 MiB stack; 0 means success. */
int main(void);

#endif
