/*
 * nmi: non-maskable interrupts through the local APIC and the I/O APIC. A self-IPI in NMI
 * delivery mode (shorthand "self", and our own APIC ID) arrives on vector 2 with IF = 0;
 * "all excluding self" reaches nobody on one CPU. An NMI sent from inside the NMI handler
 * stays pending until the handler's IRET and is then taken at once; of two sent, one is
 * lost (one NMI can be pending). An I/O APIC pin in NMI delivery mode (the PIT, pin 2)
 * wakes a HLT executed with IF = 0. LVT LINT1 reads as NMI (the firmware's virtual wire).
 * Oracle: QEMU TCG; the SDM (Vol. 3A §6.7.1 NMI handling, §10.6.1 ICR) agrees.
 */
#include "kernel.h"

#define LAPIC 0xFEE00000ul
#define IOAPIC 0xFEC00000ul
#define L_ID 0x20
#define L_SVR 0xF0
#define L_ICR_LOW 0x300
#define L_ICR_HIGH 0x310
#define L_LINT1 0x360
#define ICR_NMI (4 << 8)
#define ICR_SELF (1 << 18)
#define ICR_ALL_BUT_SELF (3 << 18)

static u32 lapic_read(u32 reg) { return mmio_read32(LAPIC + reg); }
static void lapic_write(u32 reg, u32 v) { mmio_write32(LAPIC + reg, v); }
static void ioapic_write(u32 reg, u32 v)
{
	mmio_write32(IOAPIC, reg);
	mmio_write32(IOAPIC + 0x10, v);
}

static volatile int depth, max_depth, count, resend, mask_pin2;
static volatile u64 saved_if;
static char events[32];
static volatile int nev;

static void ev(char c)
{
	if (nev < 31)
		events[nev++] = c;
	events[nev] = 0;
}

static void send(u32 high, u32 low)
{
	lapic_write(L_ICR_HIGH, high);
	lapic_write(L_ICR_LOW, low);
}

/* Many short blocks: a pending NMI is taken at one of their boundaries. */
static void spin(void)
{
	for (volatile int i = 0; i < 20000; i++)
		;
}

static int nmi(struct frame *f)
{
	if (++depth > max_depth)
		max_depth = depth;
	count++;
	saved_if = (f->rflags >> 9) & 1;
	ev('[');
	if (mask_pin2)
		ioapic_write(0x14, 1 << 16);
	if (resend) {
		int n = resend;
		resend = 0;
		for (int i = 0; i < n; i++)
			send(0, ICR_SELF | ICR_NMI);
		ev('s');
		spin();
	}
	ev(']');
	depth--;
	return 1;
}

static void reset(void)
{
	count = max_depth = nev = 0;
	events[0] = 0;
}

void kmain(void)
{
	printf("nmi: start\n");
	set_trap_hook(2, nmi);
	lapic_write(L_SVR, 0x100 | VEC_SPURIOUS);
	/* The firmware's virtual wire (SeaBIOS also sets the meaningless level bit). */
	u32 lint1 = lapic_read(L_LINT1);
	printf("lvt lint1: delivery mode %u masked %u\n", (lint1 >> 8) & 7, (lint1 >> 16) & 1);
	u32 id = lapic_read(L_ID) >> 24;

	/* Self-IPI with IF = 0. */
	cli();
	reset();
	send(0, ICR_SELF | ICR_NMI);
	spin();
	ev('m');
	printf("self-ipi nmi: count %d events %s interrupted IF %lu\n", count, events, saved_if);

	/* Physical destination: our own APIC ID, no shorthand (vector field ignored). */
	reset();
	send(id << 24, ICR_NMI | 0x42);
	spin();
	printf("nmi to own apic id: count %d\n", count);

	/* All excluding self: nobody else. */
	reset();
	send(0, ICR_ALL_BUT_SELF | ICR_NMI);
	spin();
	printf("nmi to all excluding self: count %d\n", count);

	/* Two NMIs sent from the handler: blocked until IRET, then one is taken. */
	reset();
	resend = 2;
	send(0, ICR_SELF | ICR_NMI);
	spin();
	ev('m');
	printf("nmi from the nmi handler: count %d max depth %d events %s\n", count, max_depth,
	       events);

	/* With IF = 1 too. */
	reset();
	sti();
	send(0, ICR_SELF | ICR_NMI);
	spin();
	cli();
	printf("self-ipi nmi with IF=1: count %d interrupted IF %lu\n", count, saved_if);

	/* HLT with IF = 0, woken by the PIT through I/O APIC pin 2 in NMI mode. */
	reset();
	mask_pin2 = 1;
	ioapic_write(0x15, id << 24);
	ioapic_write(0x14, 4 << 8); /* NMI, physical, edge, active high, unmasked */
	outb(0x43, 0x34);
	outb(0x40, 1193 & 0xFF);
	outb(0x40, 1193 >> 8);
	__asm__ volatile("cli; hlt" ::: "memory");
	ev('w');
	outb(0x43, 0x30); /* channel 0 mode 0: one more edge at most, then quiet */
	outb(0x40, 0);
	outb(0x40, 0);
	printf("hlt with IF=0 woken by an ioapic nmi: count %d events %s\n", count, events);

	printf("nmi: %s\n", failures ? "FAILED" : "done");
	exit(failures ? 1 : 0);
}
