/*
 * portio: port I/O through the device models — the COM1 scratch, line-control and divisor
 * latch registers and the idle line status; CMOS RAM bytes written and read back through
 * the index/data pair (also with one 16-bit OUT that the bus splits into index and data);
 * the PIC mask registers; immediate-port and DX forms; 8-, 16- and 32-bit accesses;
 * REP OUTSB to the UART (the string appears in the transcript) and REP INSB from the
 * scratch register; unmapped ports reading as all ones.
 */
#include "kernel.h"

static u8 cmos_read(u8 index)
{
	outb(0x70, index);
	return inb(0x71);
}

static void cmos_write(u8 index, u8 v)
{
	outb(0x70, index);
	outb(0x71, v);
}

void kmain(void)
{
	printf("portio: start\n");
	outb(COM1 + 7, 0x5A);
	u8 a = inb(COM1 + 7);
	outb(COM1 + 7, 0xA5);
	printf("com1 scratch: 0x%x 0x%x\n", a, inb(COM1 + 7));
	outb(COM1 + 3, 0x1B);
	a = inb(COM1 + 3);
	outb(COM1 + 3, 0x83);
	outb(COM1, 0x0C);
	u8 dll = inb(COM1);
	outb(COM1, 0x01);
	outb(COM1 + 3, 0x03);
	printf("com1 lcr=0x%x divisor latch low=0x%x lcr restored=0x%x\n", a, dll, inb(COM1 + 3));
	while ((inb(COM1 + 5) & 0x60) != 0x60)
		;
	printf("com1 lsr idle thre|temt=0x%x\n", inb(COM1 + 5) & 0x60);

	for (int i = 0; i < 8; i++)
		cmos_write(0x40 + i, (u8)(0x11 * i + 3));
	printf("cmos 0x40..0x47:");
	for (int i = 0; i < 8; i++)
		printf(" %02x", cmos_read(0x40 + i));
	printf("\n");
	outw(0x70, 0x9942); /* index 0x42 to port 0x70, data 0x99 to port 0x71 */
	printf("outw 0x70 split into index/data: cmos[0x42]=0x%x\n", cmos_read(0x42));

	__asm__ volatile("mov al, 0xA5\n out 0x21, al" ::: "rax");
	u8 imr;
	__asm__ volatile("in al, 0x21" : "=a"(imr));
	outb(0xA1, 0x5A);
	printf("pic imr via imm8: 0x%x, slave via dx: 0x%x\n", imr, inb(0xA1));
	outb(0x21, 0xFF), outb(0xA1, 0xFF);

	printf("unmapped: inb 0x2e0=0x%x inw 0x2e0=0x%x inl 0x2e0=0x%x inb 0x210=0x%x\n",
	       inb(0x2E0), inw(0x2E0), inl(0x2E0), inb(0x210));
	u8 imm_unmapped;
	__asm__ volatile("in al, 0xEE" : "=a"(imm_unmapped));
	printf("unmapped via imm8: inb 0xee=0x%x\n", imm_unmapped);
	outb(0x80, 0x42);
	printf("out 0x80 (post code) ok\n");

	static const char msg[] = "rep outsb: this line went out through REP OUTSB\n";
	u64 n = sizeof msg - 1;
	const char *p = msg;
	__asm__ volatile("rep outsb" : "+S"(p), "+c"(n) : "d"(COM1) : "memory");
	printf("rep outsb left rcx=%lu rsi advanced by %lu\n", n, (u64)(p - msg));

	static u8 buf[8];
	outb(COM1 + 7, 0x3C);
	u8 *q = buf;
	n = 4;
	__asm__ volatile("rep insb" : "+D"(q), "+c"(n) : "d"(COM1 + 7) : "memory");
	printf("rep insb from scratch: %02x %02x %02x %02x %02x, rdi advanced by %lu\n", buf[0],
	       buf[1], buf[2], buf[3], buf[4], (u64)(q - buf));
	static u16 wbuf[2];
	u16 *w = wbuf;
	n = 2;
	__asm__ volatile("rep insw" : "+D"(w), "+c"(n) : "d"(0x2E0) : "memory");
	printf("rep insw from unmapped: %04x %04x\n", wbuf[0], wbuf[1]);
	printf("portio: done\n");
}
