/*
 * msr: the MSRs a kernel reads on a CPU with this CPUID, each read and written under
 * try_call: IA32_MISC_ENABLE, APIC_BASE, PAT, the MTRRs (MTRRcap, MTRRdefType, variable
 * and fixed ranges, as the firmware leaves them), TSC_AUX with RDTSCP, the SYSCALL MSRs,
 * IA32_BIOS_SIGN_ID, the performance counters (read as zero, writes ignored, while CPUID
 * advertises no PMU) and the speculation-control MSRs (present only if advertised).
 *
 * Oracle: QEMU TCG, which leaves the MTRRs as SeaBIOS programs them. QEMU reads 0 from MSRs
 * it does not implement and ignores writes to them, and does not check reserved bits in
 * PAT or the MTRRs; where the SDM says #GP, the line starts with `~` (popek raises #GP, as
 * the SDM says; runtime/src/system/msr.rs tests it).
 */
#include "kernel.h"

struct access {
	u32 msr;
	u64 value;
};

static void do_rdmsr(void *p)
{
	struct access *x = p;
	x->value = rdmsr(x->msr);
}
static void do_wrmsr(void *p)
{
	struct access *x = p;
	wrmsr(x->msr, x->value);
}

/* RDMSR under try_call: 0 and the value, or the vector of the fault. */
static int rd(u32 msr, u64 *v)
{
	struct access x = {msr, 0};
	int r = try_call(do_rdmsr, &x);
	*v = x.value;
	return r ? (int)last_trap.vector : 0;
}
static int wr(u32 msr, u64 v)
{
	struct access x = {msr, v};
	return try_call(do_wrmsr, &x) ? (int)last_trap.vector : 0;
}

/* Writes v, reads it back, restores the old value. */
static void roundtrip(const char *name, u32 msr, u64 v)
{
	u64 old, got = 0;
	int r0 = rd(msr, &old), r1 = wr(msr, v), r2 = rd(msr, &got);
	if (!r0)
		wr(msr, old);
	printf("%s (0x%x): wrote 0x%lx read 0x%lx faults %d/%d/%d\n", name, msr, v, got, r0, r1,
	       r2);
}

static void probe_gp(const char *why, u32 msr)
{
	u64 v;
	int r = rd(msr, &v);
	printf("~rdmsr 0x%x (%s): vector %d\n", msr, why, r ? r : -1);
}

void kmain(void)
{
	u32 a, b, c, d;
	u64 v;
	printf("msr: start\n");
	cpuid(0, 0, &a, &b, &c, &d);
	int intel = b == 0x756e6547; /* "Genu" */

	/* IA32_MISC_ENABLE: fast strings on; bit 0 writable. */
	int r = rd(0x1A0, &v);
	printf("misc_enable: fault %d fast-strings %lu\n", r, v & 1);
	printf("~misc_enable=0x%lx\n", v);
	u64 misc = v;
	r = wr(0x1A0, misc & ~1ul);
	u64 cleared;
	rd(0x1A0, &cleared);
	wr(0x1A0, misc);
	rd(0x1A0, &v);
	printf("misc_enable fast strings cleared: fault %d bit0 %lu, restored bit0 %lu\n", r,
	       cleared & 1, v & 1);

	/* APIC_BASE, PAT. */
	rd(MSR_APIC_BASE, &v);
	printf("apic_base=0x%lx\n", v);
	rd(MSR_PAT, &v);
	printf("pat=0x%lx\n", v);
	roundtrip("pat", MSR_PAT, 0x0007010600070106ul);
	r = wr(MSR_PAT, 0x0007040600070402ul);
	printf("~pat with reserved type 2: vector %d\n", r ? r : -1);

	/* MTRRs. */
	cpuid(1, 0, &a, &b, &c, &d);
	printf("cpuid mtrr=%u\n", (d >> 12) & 1);
	rd(0xFE, &v);
	printf("mtrrcap: vcnt>=8 %d fix %lu wc %lu\n", (v & 0xFF) >= 8, (v >> 8) & 1, (v >> 10) & 1);
	printf("~mtrrcap=0x%lx\n", v);
	rd(0x2FF, &v);
	printf("mtrr_def_type=0x%lx\n", v);
	static const u32 fixed[] = {0x250, 0x258, 0x259, 0x268, 0x269, 0x26A,
				    0x26B, 0x26C, 0x26D, 0x26E, 0x26F};
	for (unsigned i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
		r = rd(fixed[i], &v);
		printf("fixed mtrr 0x%x: fault %d 0x%lx\n", fixed[i], r, v);
	}
	for (u32 m = 0x200; m < 0x210; m++) {
		r = rd(m, &v);
		printf("~variable mtrr 0x%x: fault %d 0x%lx\n", m, r, v);
	}
	roundtrip("physbase7", 0x20E, 0xE0000000ul);
	roundtrip("physmask7", 0x20F, 0xFFE0000800ul & ((1ul << 36) - 1));
	roundtrip("fix4k_f8000", 0x26F, 0x0606060605050404ul);
	r = wr(0x2FF, 0xC06 | (1ul << 12));
	printf("~mtrr_def_type reserved bit 12: vector %d\n", r ? r : -1);
	r = wr(0xFE, 0);
	printf("~write mtrrcap: vector %d\n", r ? r : -1);

	/* TSC_AUX and RDTSCP. */
	cpuid(0x80000001, 0, &a, &b, &c, &d);
	printf("cpuid rdtscp=%u\n", (d >> 27) & 1);
	roundtrip("tsc_aux", 0xC0000103, 0x55);
	wr(0xC0000103, 0x123);
	u32 aux;
	__asm__ volatile("rdtscp" : "=c"(aux)::"rax", "rdx");
	printf("rdtscp ecx=0x%x\n", aux);

	/* SYSCALL MSRs. */
	roundtrip("star", MSR_STAR, 0x0023001000000000ul);
	roundtrip("lstar", MSR_LSTAR, 0xFFFFFFFF81000000ul);
	roundtrip("cstar", MSR_CSTAR, 0xFFFFFFFF81000100ul);
	roundtrip("sfmask", MSR_SFMASK, 0x47700);

	/* Microcode revision: write 0, CPUID, read (Linux's sequence on Intel). */
	if (intel) {
		r = wr(0x8B, 0);
		cpuid(1, 0, &a, &b, &c, &d);
		int r2 = rd(0x8B, &v);
		printf("bios_sign_id: faults %d/%d revision 0x%lx\n", r, r2, v >> 32);
	} else {
		r = rd(0x8B, &v);
		printf("patch_level: fault %d nonzero %d\n", r, v != 0);
	}

	/* Performance counters: CPUID leaf 0xA reports no PMU. */
	cpuid(0, 0, &a, &b, &c, &d);
	u32 pmu = 0;
	if (a >= 0xA) {
		cpuid(0xA, 0, &pmu, &b, &c, &d);
	}
	printf("cpuid pmu version %u\n", pmu & 0xFF);
	if (intel) {
		static const u32 perf[] = {0xC1,  0xC2,  0xC3,  0xC4,  0x186, 0x187, 0x188,
					   0x189, 0x309, 0x30A, 0x30B, 0x38D, 0x38E, 0x38F, 0x390};
		int good = 1;
		for (unsigned i = 0; i < sizeof perf / sizeof perf[0]; i++) {
			u64 got = 1;
			int w = wr(perf[i], perf[i] == 0x186 ? 0x43003C : 0x1234);
			int q = rd(perf[i], &got);
			good &= w == 0 && q == 0 && got == 0;
		}
		ok("intel performance-counter MSRs read 0 after writes", good);
	} else {
		int good = 1;
		for (u32 m = 0xC0010000; m <= 0xC0010007; m++) {
			u64 got = 1;
			good &= wr(m, 0x1234) == 0 && rd(m, &got) == 0 && got == 0;
		}
		ok("amd performance-counter MSRs read 0 after writes", good);
	}

	/* Speculation control: only if CPUID.7.0:EDX advertises it. */
	cpuid(7, 0, &a, &b, &c, &d);
	printf("~cpuid.7 edx: spec_ctrl %u arch_capabilities %u\n", (d >> 26) & 1, (d >> 29) & 1);
	probe_gp("SPEC_CTRL, present iff advertised", 0x48);
	probe_gp("PRED_CMD, present iff advertised", 0x49);
	probe_gp("ARCH_CAPABILITIES, present iff advertised", 0x10A);

	/* MSRs the model does not have. */
	probe_gp("absent", 0x12345);
	probe_gp("ninth variable MTRR", 0x210);
	probe_gp("the other vendor's PMU", intel ? 0xC0010000 : 0xC1);
	printf("msr: done\n");
}
