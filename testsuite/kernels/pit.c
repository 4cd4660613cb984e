/*
 * pit: the 8259 PICs (remapped to 0x20/0x28 by the library) and the 8254 PIT: channel 0
 * in mode 2 at ~1 kHz, IRQ 0 unmasked, STI; HLT until 10 ticks, checking the PIC's
 * in-service register inside the handler; then IRQ 0 is masked again. No timing values
 * are printed.
 */
#include "kernel.h"

static volatile u64 ticks, isr_in_handler, irr_unused;

static int tick(struct frame *f)
{
	(void)f;
	if (ticks == 0) {
		outb(0x20, 0x0B); /* OCW3: read ISR */
		isr_in_handler = inb(0x20);
		outb(0x20, 0x0A); /* back to IRR */
	}
	ticks++;
	outb(0x20, 0x20); /* non-specific EOI */
	return 1;
}

void kmain(void)
{
	printf("pit: start\n");
	set_trap_hook(VEC_IRQ0, tick);
	outb(0x43, 0x34); /* channel 0, lobyte/hibyte, mode 2, binary */
	outb(0x40, 1193 & 0xFF);
	outb(0x40, 1193 >> 8);
	outb(0x43, 0xE2); /* read-back: status of channel 0 */
	printf("pit channel 0 status (rw/mode/bcd)=0x%x\n", inb(0x40) & 0x3F);
	outb(0x21, 0xFE);
	printf("pic master imr=0x%x slave imr=0x%x\n", inb(0x21), inb(0xA1));
	while (ticks < 10)
		sti_hlt(), cli();
	ok("10 ticks", ticks >= 10);
	printf("isr during the first tick=0x%lx\n", isr_in_handler);
	outb(0x20, 0x0B);
	printf("isr after eoi=0x%x\n", inb(0x20));
	outb(0x21, 0xFF);
	printf("irq0 masked: imr=0x%x\n", inb(0x21));
	u64 before = ticks;
	for (volatile int i = 0; i < 100000; i++)
		;
	sti();
	for (volatile int i = 0; i < 100000; i++)
		;
	cli();
	ok("no ticks while masked", ticks == before);
	printf("pit: %s\n", failures ? "FAILED" : "done");
	exit(failures ? 1 : 0);
}
