/*
 * ferr: x87 error reporting with CR0.NE clear, the PC way. A waiting x87 instruction that
 * finds an unmasked exception pending asserts FERR#, which the chipset delivers as IRQ 13;
 * the instruction waits for the handler. The handler writes port 0xF0 (which drops IRQ 13
 * and asserts IGNNE#) and clears the exception, and the instruction then runs.
 *
 * No QEMU transcript: QEMU 7.2 aborts (an assertion in tcg_handle_interrupt) when FERR#
 * raises its interrupt, so the expected transcript follows the manuals (Intel SDM vol. 1
 * D.2.1, "MS-DOS compatibility sub-mode").
 */
#include "kernel.h"

#define ASM_FN(name, body) \
	__asm__(".text\n.globl " #name "\n" #name ":\n" body "\n  ret\n")

void x87_divzero(void), do_wait(void);
ASM_FN(x87_divzero, "fld1\n fldz\n fdivp st(1), st");
ASM_FN(do_wait, "fwait");

static u16 fnstsw(void)
{
	u16 v;
	__asm__ volatile("fnstsw ax" : "=a"(v));
	return v;
}

static volatile int ferr_count, ignore_only;
static volatile u16 ferr_fsw;
static int irq13(struct frame *f)
{
	(void)f;
	ferr_count++;
	ferr_fsw = fnstsw();
	outb(0xF0, 0); /* clear the busy latch: IRQ 13 down, IGNNE# asserted */
	if (!ignore_only)
		__asm__ volatile("fnclex");
	outb(0xA0, 0x20);
	outb(0x20, 0x20);
	return 1;
}

void kmain(void)
{
	u16 cw = 0x37B; /* ZM unmasked */
	set_trap_hook(0x2D, irq13);
	outb(0x21, inb(0x21) & ~0x04); /* cascade */
	outb(0xA1, inb(0xA1) & ~0x20); /* IRQ 13 */
	write_cr0((read_cr0() | CR0_MP) & ~(CR0_NE | CR0_TS));
	__asm__ volatile("fninit\n fldcw %0" ::"m"(cw));

	/* The handler clears the exception: the waiting instruction then runs normally. */
	x87_divzero();
	printf("pending: ES=%u ZE=%u\n", (fnstsw() >> 7) & 1, (fnstsw() >> 2) & 1);
	sti();
	do_wait();
	cli();
	printf("ferr: irq13 taken %d time(s), fsw in handler: ES=%u ZE=%u, after: ES=%u %s\n",
	       ferr_count, (ferr_fsw >> 7) & 1, (ferr_fsw >> 2) & 1, (fnstsw() >> 7) & 1,
	       ferr_count == 1 && !(fnstsw() & 0x80) ? "ok" : "FAIL");
	if (ferr_count != 1 || (fnstsw() & 0x80))
		failures++;

	/* The handler only writes port 0xF0: IGNNE# lets the instruction run with the error
	 * still pending. */
	__asm__ volatile("fninit\n fldcw %0" ::"m"(cw));
	ignore_only = 1;
	x87_divzero();
	sti();
	do_wait();
	cli();
	printf("ignne: irq13 taken %d time(s) in all, after: ES=%u %s\n", ferr_count,
	       (fnstsw() >> 7) & 1, ferr_count == 2 && (fnstsw() & 0x80) ? "ok" : "FAIL");
	if (ferr_count != 2)
		failures++;
	__asm__ volatile("fninit");
	outb(0xA1, 0xFF);
}
