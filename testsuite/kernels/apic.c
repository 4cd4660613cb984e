/*
 * apic: the local APIC at 0xFEE00000 (enabled through SVR) — its periodic timer on vector
 * 0x40 with HLT and EOI; TPR/CR8 holding a pending vector 0x40 until CR8 is lowered (the
 * order of events is printed); and the IOAPIC at 0xFEC00000 routing ISA IRQ 0 (pin 2)
 * to vector 0x30 with the PICs masked.
 */
#include "kernel.h"

#define LAPIC 0xFEE00000ul
#define IOAPIC 0xFEC00000ul
#define L_ID 0x20
#define L_TPR 0x80
#define L_EOI 0xB0
#define L_SVR 0xF0
#define L_ISR 0x100
#define L_IRR 0x200
#define L_LVT_TIMER 0x320
#define L_INITIAL 0x380
#define L_CURRENT 0x390
#define L_DIVIDE 0x3E0

static u32 lapic_read(u32 reg) { return mmio_read32(LAPIC + reg); }
static void lapic_write(u32 reg, u32 v) { mmio_write32(LAPIC + reg, v); }
static u32 ioapic_read(u32 reg)
{
	mmio_write32(IOAPIC, reg);
	return mmio_read32(IOAPIC + 0x10);
}
static void ioapic_write(u32 reg, u32 v)
{
	mmio_write32(IOAPIC, reg);
	mmio_write32(IOAPIC + 0x10, v);
}

static volatile u64 timer_count, ioapic_count, isr_bit;
static char events[16];
static volatile int nevents;

static int timer(struct frame *f)
{
	(void)f;
	if (timer_count == 0)
		isr_bit = (lapic_read(L_ISR + 0x20) >> 0) & 1; /* vector 0x40: ISR bit 64 */
	timer_count++;
	if (nevents < 15)
		events[nevents++] = 'I';
	lapic_write(L_EOI, 0);
	return 1;
}

static int ioapic_irq(struct frame *f)
{
	(void)f;
	ioapic_count++;
	lapic_write(L_EOI, 0);
	return 1;
}

void kmain(void)
{
	printf("apic: start\n");
	u64 base = rdmsr(MSR_APIC_BASE);
	printf("apic base=0x%lx enabled=%lu bsp=%lu\n", base & ~0xFFFul, (base >> 11) & 1,
	       (base >> 8) & 1);
	lapic_write(L_SVR, 0x100 | VEC_SPURIOUS);
	printf("svr=0x%x id=%u\n", lapic_read(L_SVR), lapic_read(L_ID) >> 24);
	set_trap_hook(VEC_APIC_TIMER, timer);

	/* Periodic timer: five interrupts. */
	lapic_write(L_DIVIDE, 0x3);
	lapic_write(L_LVT_TIMER, VEC_APIC_TIMER | (1 << 17));
	lapic_write(L_INITIAL, 200000);
	while (timer_count < 5)
		sti_hlt(), cli();
	lapic_write(L_LVT_TIMER, VEC_APIC_TIMER | (1 << 16));
	lapic_write(L_INITIAL, 0);
	ok("5 periodic timer interrupts", timer_count >= 5);
	printf("isr bit of vector 0x40 in the handler=%lu\n", isr_bit);
	printf("lvt timer after masking=0x%x\n", lapic_read(L_LVT_TIMER));

	/* TPR: with CR8=5 a vector 0x40 (class 4) interrupt stays pending in the IRR. */
	nevents = 0;
	timer_count = 0;
	write_cr8(5);
	printf("cr8=5: tpr=0x%x\n", lapic_read(L_TPR));
	lapic_write(L_LVT_TIMER, VEC_APIC_TIMER); /* one-shot */
	lapic_write(L_INITIAL, 1000);
	sti();
	while (lapic_read(L_CURRENT) != 0)
		;
	/* The count reaching 0 and the IRR bit being set need not be simultaneous (QEMU raises
	 * the interrupt from its timer thread): wait for the IRR bit. */
	for (u64 i = 0; i < 100000000 && !(lapic_read(L_IRR + 0x20) & 1); i++)
		;
	events[nevents++] = 'H';
	printf("timer expired with cr8=5: delivered=%lu irr bit=%u\n", timer_count,
	       lapic_read(L_IRR + 0x20) & 1);
	write_cr8(0);
	events[nevents++] = 'L';
	cli();
	events[nevents] = 0;
	printf("event order (H held, I interrupt, L after lowering cr8): %s\n", events);
	printf("tpr after cr8=0: 0x%x\n", lapic_read(L_TPR));

	/* IOAPIC: ISA IRQ 0 arrives on pin 2; route it to vector 0x30. */
	set_trap_hook(VEC_IOAPIC, ioapic_irq);
	ioapic_write(0x14, VEC_IOAPIC); /* pin 2: fixed, physical, edge, active high, unmasked */
	ioapic_write(0x15, 0);		 /* destination APIC 0 */
	printf("ioapic redirection pin 2=0x%x:0x%x\n", ioapic_read(0x15), ioapic_read(0x14));
	outb(0x43, 0x34);
	outb(0x40, 1193 & 0xFF);
	outb(0x40, 1193 >> 8);
	while (ioapic_count < 3)
		sti_hlt(), cli();
	ioapic_write(0x14, VEC_IOAPIC | (1 << 16));
	ok("3 pit ticks through ioapic pin 2 on vector 0x30 with the pics masked",
	   ioapic_count >= 3);
	printf("pic imr=0x%x\n", inb(0x21));
	printf("apic: %s\n", failures ? "FAILED" : "done");
	exit(failures ? 1 : 0);
}
