/*
 * Guest-only output: bytes go to the COM1 data register. The VMM's UART (and
 * QEMU's) accepts a byte at any time, so the transmitter-empty bit is not polled;
 * that keeps output to one sensitive instruction per byte.
 */
#include "rt.h"

void putc_serial(char c)
{
    __asm__ volatile("outb %b0, %w1" : : "a"(c), "Nd"((u16)0x3f8));
}
