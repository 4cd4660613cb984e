/*
 * Native-only runtime: the guest's serial output becomes buffered writes to
 * stdout, and the guest's isa-debug-exit becomes exit_group. Raw system calls
 * keep the native twin free of libc, so its code is the guest's code.
 */
#include "rt.h"

static char outbuf[1 << 16];
static usize outlen;

static long syscall3(long nr, long a, long b, long c)
{
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(a), "S"(b), "d"(c)
                     : "rcx", "r11", "memory");
    return ret;
}

static void flush(void)
{
    usize off = 0;
    while (off < outlen) {
        long n = syscall3(1 /* write */, 1, (long)(outbuf + off), (long)(outlen - off));
        if (n == -4 /* EINTR */)
            continue;
        if (n <= 0)
            break;
        off += (usize)n;
    }
    outlen = 0;
}

void putc_serial(char c)
{
    if (outlen == sizeof(outbuf))
        flush();
    outbuf[outlen++] = c;
}

/* Called by _start with main's return value; never returns. */
void native_exit(int code)
{
    flush();
    for (;;)
        syscall3(231 /* exit_group */, code, 0, 0);
}
