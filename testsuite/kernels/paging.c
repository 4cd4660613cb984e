/*
 * paging: 4-level paging with 4 KiB pages built by the kernel (identity map of the first
 * 8 MiB, supervisor-only, test pages at 1 GiB): demand paging from the #PF handler,
 * CR0.WP, NX, A/D bits, INVLPG, CR3 reload, global pages and CR4.PGE, reserved bits,
 * 2 MiB pages, aliases, SMEP and SMAP. Only architecturally guaranteed outcomes are
 * printed: after INVLPG / CR3 load / PGE toggle the new mapping must be visible.
 */
#include "kernel.h"

#define P 0x1ul
#define RW 0x2ul
#define US 0x4ul
#define ACC 0x20ul
#define DIRTY 0x40ul
#define PS 0x80ul
#define G 0x100ul
#define NX (1ul << 63)
#define ADDR 0x000FFFFFFFFFF000ul

#define TEST_VA 0x40000000ul
#define FRAMES 0x700000ul /* test frames: 0x700000..0x800000, identity-mapped */

static u64 pool[48][512] __attribute__((aligned(4096)));
static int pool_used;
static u64 *pml4;
static u64 next_frame = FRAMES;

static u64 *alloc_table(void)
{
	u64 *t = pool[pool_used++];
	memset(t, 0, 4096);
	return t;
}

static u64 *next_level(u64 *table, int index)
{
	if (!(table[index] & P))
		table[index] = (u64)alloc_table() | P | RW | US;
	return (u64 *)(table[index] & ADDR);
}

static u64 *pde_of(u64 va)
{
	u64 *pdpt = next_level(pml4, (va >> 39) & 511);
	u64 *pd = next_level(pdpt, (va >> 30) & 511);
	return &pd[(va >> 21) & 511];
}

static u64 *pte_of(u64 va)
{
	u64 *pd = pde_of(va);
	if (!(*pd & P))
		*pd = (u64)alloc_table() | P | RW | US;
	return &((u64 *)(*pd & ADDR))[(va >> 12) & 511];
}

static void map(u64 va, u64 pa, u64 flags) { *pte_of(va) = pa | flags; }

static u64 new_frame(u32 fill)
{
	u64 f = next_frame;
	next_frame += 4096;
	for (int i = 0; i < 1024; i++)
		((volatile u32 *)f)[i] = fill;
	return f;
}

static u64 rd(u64 va) { return *(volatile u64 *)va; }
static void wr(u64 va, u64 v) { *(volatile u64 *)va = v; }

/* Demand paging: a not-present access in [TEST_VA, TEST_VA + 64 KiB) maps a zeroed frame. */
static int demand_hook(struct frame *f)
{
	u64 cr2 = read_cr2();
	if (!(f->error & 1) && cr2 >= TEST_VA && cr2 < TEST_VA + 0x10000) {
		printf("  #PF cr2=0x%lx err=0x%lx rip=%s: mapped a frame\n", cr2, f->error,
		       f->rip >= (u64)__image_start && f->rip < (u64)_end ? "kernel" : "other");
		map(cr2 & ~0xFFFul, new_frame(0), P | RW);
		return 1;
	}
	return 0;
}

static u64 probe_va, probe_value;
static void probe_read(void *arg) { (void)arg, probe_value = rd(probe_va); }
static void probe_write(void *arg) { (void)arg, wr(probe_va, 0x5157); }
static void probe_call(void *arg) { (void)arg, ((void (*)(void))probe_va)(); }
static void probe_stac_read(void *arg)
{
	(void)arg;
	__asm__ volatile("stac" ::: "memory");
	probe_value = rd(probe_va);
	__asm__ volatile("clac" ::: "memory");
}

/* Expect a #PF with this error code at probe_va (printed either way). */
static void expect_pf(const char *what, void (*fn)(void *), u64 va, u64 error)
{
	probe_va = va;
	int r = try_call(fn, 0);
	printf("%s: vector=0x%lx err=0x%lx cr2=0x%lx", what, last_trap.vector, last_trap.error,
	       last_trap.cr2);
	ok("", r == 1 && last_trap.vector == 14 && last_trap.error == error && last_trap.cr2 == va);
}

static void expect_no_fault(const char *what, void (*fn)(void *), u64 va)
{
	probe_va = va;
	int r = try_call(fn, 0);
	ok(what, r == 0);
}

static void ad_bits(const char *when, u64 va)
{
	u64 pte = *pte_of(va);
	printf("%s: pte.A=%lu pte.D=%lu\n", when, (pte >> 5) & 1, (pte >> 6) & 1);
}

void kmain(void)
{
	printf("paging: start\n");
	pml4 = alloc_table();
	for (u64 pa = 0; pa < 0x800000; pa += 4096)
		map(pa, pa, P | RW);
	write_cr3((u64)pml4);
	printf("4-level 4 KiB identity map active: cr3 low bits=0x%lx\n", read_cr3() & 0xFFF);

	/* Demand paging */
	set_trap_hook(14, demand_hook);
	wr(TEST_VA + 0x10, 0x1234);
	printf("demand write then read back=0x%lx\n", rd(TEST_VA + 0x10));
	printf("demand read of a fresh page=0x%lx\n", rd(TEST_VA + 0x1008));
	printf("second access, no fault: value=0x%lx\n", rd(TEST_VA + 0x10));
	set_trap_hook(14, 0);

	/* Read-only page and CR0.WP */
	u64 ro = TEST_VA + 0x20000;
	map(ro, new_frame(0x11111111), P);
	printf("read-only page read=0x%lx\n", rd(ro));
	expect_pf("write read-only page, CR0.WP=1", probe_write, ro, 3);
	write_cr0(read_cr0() & ~CR0_WP);
	expect_no_fault("write read-only page, CR0.WP=0", probe_write, ro);
	printf("  value=0x%lx\n", rd(ro));
	write_cr0(read_cr0() | CR0_WP);

	/* NX */
	u64 code = TEST_VA + 0x21000;
	map(code, new_frame(0xC3C3C3C3), P | RW | NX); /* RET everywhere */
	expect_pf("fetch from NX page", probe_call, code, 0x11);
	*pte_of(code) &= ~NX;
	invlpg(code);
	expect_no_fault("fetch after clearing NX and INVLPG", probe_call, code);

	/* Accessed and dirty bits */
	u64 ad = TEST_VA + 0x22000;
	map(ad, new_frame(7), P | RW);
	ad_bits("fresh mapping", ad);
	(void)rd(ad);
	ad_bits("after read", ad);
	wr(ad, 8);
	ad_bits("after write", ad);
	u64 pde = *pde_of(ad);
	printf("pde.A=%lu\n", (pde >> 5) & 1);

	/* INVLPG and CR3 reload make a changed PTE visible */
	u64 va = TEST_VA + 0x23000;
	u64 f1 = new_frame(0xAAAAAAAA), f2 = new_frame(0xBBBBBBBB);
	map(va, f1, P | RW);
	printf("mapped frame 1: 0x%lx\n", rd(va));
	map(va, f2, P | RW);
	invlpg(va);
	printf("remapped to frame 2, INVLPG: 0x%lx\n", rd(va));
	map(va, f1, P | RW);
	write_cr3(read_cr3());
	printf("remapped to frame 1, CR3 reload: 0x%lx\n", rd(va));
	*pte_of(va) = 0;
	invlpg(va);
	expect_pf("unmapped, INVLPG, read", probe_read, va, 0);

	/* Global pages: toggling CR4.PGE flushes them */
	write_cr4(read_cr4() | CR4_PGE);
	map(va, f1, P | RW | G);
	printf("global page: 0x%lx\n", rd(va));
	map(va, f2, P | RW | G);
	write_cr4(read_cr4() & ~CR4_PGE);
	write_cr4(read_cr4() | CR4_PGE);
	printf("remapped global page, CR4.PGE toggle: 0x%lx\n", rd(va));
	map(va, f1, P | RW | G);
	invlpg(va);
	printf("remapped global page, INVLPG: 0x%lx\n", rd(va));
	write_cr4(read_cr4() & ~CR4_PGE);

	/* Two virtual aliases of one frame */
	u64 a1 = TEST_VA + 0x24000, a2 = TEST_VA + 0x25000;
	u64 f3 = new_frame(0);
	map(a1, f3, P | RW);
	map(a2, f3, P | RW);
	wr(a1 + 8, 0xFACE);
	printf("alias: wrote 0xface via one, read 0x%lx via the other\n", rd(a2 + 8));

	/* A 2 MiB page, and reserved bits in a 2 MiB PDE */
	u64 big = TEST_VA + 0x400000;
	*pde_of(big) = 0x600000 | P | RW | PS;
	wr(0x600000 + 0x1234 * 8, 0x2222);
	printf("2 MiB page: 0x%lx\n", rd(big + 0x1234 * 8));
	u64 bad = TEST_VA + 0x600000;
	*pde_of(bad) = 0x600000 | P | RW | PS | (1ul << 13);
	probe_va = bad;
	int r = try_call(probe_read, 0);
	printf("reserved bit 13 in a 2 MiB PDE: vector=0x%lx err.rsvd=%lu err.w/u/i=%lu cr2=0x%lx",
	       last_trap.vector, (last_trap.error >> 3) & 1, last_trap.error & 0x16, last_trap.cr2);
	ok("", r == 1 && last_trap.vector == 14 && (last_trap.error & 0x1E) == 8 &&
		       last_trap.cr2 == bad);
	/* Hardware reports P=1 with RSVD (err=0x9); QEMU 7.2 reports err=0x8. */
	printf("~reserved bit 13 in a 2 MiB PDE: err=0x%lx\n", last_trap.error);

	/* SMEP and SMAP on a user page */
	u64 user = TEST_VA + 0x26000;
	map(user, new_frame(0xC3C3C3C3), P | RW | US);
	expect_no_fault("CPL0 fetch from user page, SMEP off", probe_call, user);
	if (has_smep()) {
		write_cr4(read_cr4() | CR4_SMEP);
		expect_pf("CPL0 fetch from user page, SMEP on", probe_call, user, 0x11);
		write_cr4(read_cr4() & ~CR4_SMEP);
	} else {
		printf("smep skip\n");
	}
	if (has_smap()) {
		write_cr4(read_cr4() | CR4_SMAP);
		expect_pf("CPL0 read of user page, SMAP on, AC=0", probe_read, user, 1);
		expect_pf("CPL0 write to user page, SMAP on, AC=0", probe_write, user, 3);
		expect_no_fault("CPL0 read of user page, SMAP on, STAC", probe_stac_read, user);
		write_cr4(read_cr4() & ~CR4_SMAP);
	} else {
		printf("smap skip\n");
	}
	printf("paging: %s\n", failures ? "FAILED" : "done");
	exit(failures ? 1 : 0);
}
