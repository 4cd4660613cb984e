/*
 * ud: instructions a CPU without the feature rejects raise #UD at the instruction (RIP =
 * its first byte), and the guest carries on, as on hardware.
 *
 * Oracle: QEMU TCG (-cpu max,vendor=GenuineIntel). QEMU's CPU offers more than popek's
 * (RDRAND, RDSEED, RDPID, BMI, MONITOR, XSAVE, AVX, ...), so where the two models differ a
 * line states the architectural rule and checks the behaviour against this CPU's own CPUID
 * ("rdrand: #UD iff CPUID.01H:ECX[30]=0: ok"): the same line on both, and a real check on
 * each. Instructions neither model offers (VMX and SVM with EFER.SVME=0, RDPRU, XSAVE and
 * VEX forms while CR4.OSXSAVE=0, EVEX) must raise #UD on both.
 */
#include "kernel.h"

#define CR4_OSXSAVE 0x40000

/*
 * PROBE(name, insn): probe_<name>() executes insn once (PROBE_AFTER: after setup, with
 * RAX = probe_scratch, RCX = RDX = 0 before it); at_<name> is the instruction's address. The
 * registers an instruction may write are saved or declared volatile by the callee
 * convention (RAX, RCX, RDX, R8-R11), and the vector registers are unused by the kernel.
 */
#define PROBE_AFTER(name, setup, insn)                                                    \
	void probe_##name(void);                                                          \
	extern u8 at_##name[];                                                            \
	__asm__(".text\n.globl probe_" #name "\nprobe_" #name ":\n"                       \
		"  lea rax, [rip + probe_scratch]\n  mov rcx, 0\n  mov rdx, 0\n  " setup "\n" \
		".globl at_" #name "\nat_" #name ":\n  " insn "\n  ret\n")
#define PROBE(name, insn) PROBE_AFTER(name, "", insn)

/* A 64-byte aligned buffer for the memory operands (XSAVE needs 64, VMXON 4096). */
u8 probe_scratch[8192] __attribute__((aligned(4096)));

PROBE(vmcall, ".byte 0x0f, 0x01, 0xc1");
PROBE(vmmcall, ".byte 0x0f, 0x01, 0xd9");
PROBE(vmlaunch, ".byte 0x0f, 0x01, 0xc2");
PROBE(vmresume, ".byte 0x0f, 0x01, 0xc3");
PROBE(vmxoff, ".byte 0x0f, 0x01, 0xc4");
PROBE(vmxon, "vmxon [rax]");
PROBE(vmrun, ".byte 0x0f, 0x01, 0xd8");
PROBE(vmload, ".byte 0x0f, 0x01, 0xda");
PROBE(vmsave, ".byte 0x0f, 0x01, 0xdb");
PROBE(rdpru, ".byte 0x0f, 0x01, 0xfd");
PROBE(xgetbv, "xgetbv");
PROBE_AFTER(xsetbv, "mov eax, 1", "xsetbv");
PROBE(xsave, "xsave [rax]");
PROBE(xrstor, "xrstor [rax]");
PROBE(xsaveopt, "xsaveopt [rax]");
PROBE(xsavec, "xsavec [rax]");
PROBE(vaddps_ymm, "vaddps ymm0, ymm1, ymm2");
PROBE(vpxor_xmm, "vpxor xmm0, xmm1, xmm2");
PROBE(vzeroupper, "vzeroupper");
PROBE(vaddps_zmm, "vaddps zmm0, zmm1, zmm2");
PROBE(andn, "andn eax, ecx, edx");
PROBE(shlx, "shlx eax, ecx, edx");
PROBE(rdrand, "rdrand eax");
PROBE(rdseed, "rdseed eax");
PROBE(rdpid, "rdpid rax");
PROBE(rdtscp, "rdtscp");
PROBE(movbe, "movbe eax, [rax]");
PROBE(adcx, "adcx eax, ecx");
PROBE(clflushopt, "clflushopt [rax]");
PROBE(popcnt, "popcnt eax, ecx");
PROBE(ud2, "ud2");

/* Runs probe and returns 1 if it raised #UD at its instruction, 0 if it completed. Any
 * other trap prints what it was and returns -1. */
static int raises_ud(void (*probe)(void), const u8 *at)
{
	u64 before = last_trap.count;
	int trapped = try_call((void (*)(void *))probe, 0);
	if (!trapped)
		return 0;
	if (last_trap.count != before && last_trap.vector == 6 && last_trap.rip == (u64)at)
		return 1;
	printf("  unexpected trap: vector %lu at %s the instruction\n", last_trap.vector,
	       last_trap.rip == (u64)at ? "" : "not");
	return -1;
}

#define UD(name) raises_ud(probe_##name, at_##name)

/* The instruction raises #UD on every CPU in this state. */
static void must_ud(const char *what, int r)
{
	printf("%s: %s\n", what, r == 1 ? "#UD" : r == 0 ? "completed FAIL" : "FAIL");
	if (r != 1)
		failures++;
}

/* The instruction raises #UD exactly when the feature is absent. */
static void ud_iff_absent(const char *what, const char *rule, int r, int present)
{
	int good = r >= 0 && r == !present;
	printf("%s: #UD iff %s: %s", what, rule, good ? "ok\n" : "FAIL");
	if (!good) {
		printf(" (#UD=%d, offered=%d)\n", r, present);
		failures++;
	}
}

static u32 bit(u32 leaf, u32 sub, int reg, int n)
{
	u32 r[4];
	cpuid(leaf, sub, &r[0], &r[1], &r[2], &r[3]);
	return (r[reg] >> n) & 1;
}
enum { EAX, EBX, ECX, EDX };

static u32 max_leaf(u32 base)
{
	u32 a, b, c, d;
	cpuid(base, 0, &a, &b, &c, &d);
	return a;
}

static u32 feature(u32 leaf, int reg, int n)
{
	u32 top = max_leaf(leaf & 0x80000000);
	return leaf <= top ? bit(leaf, 0, reg, n) : 0;
}

static void set_osxsave_probe(void *on) { write_cr4(on ? read_cr4() | CR4_OSXSAVE : read_cr4() & ~CR4_OSXSAVE); }

static void xsetbv_probe(void *v)
{
	u64 x = (u64)v;
	__asm__ volatile("xsetbv" ::"c"(0), "a"((u32)x), "d"((u32)(x >> 32)));
}

void kmain(void)
{
	printf("ud: #UD for what the CPU does not offer\n");
	u64 efer = rdmsr(MSR_EFER);
	printf("cr4.osxsave=%lu efer.svme=%lu\n", (read_cr4() & CR4_OSXSAVE) >> 18,
	       (efer >> 12) & 1);

	/* Hardware virtualization: none offered (VMX needs CR4.VMXE, SVM needs EFER.SVME). */
	must_ud("vmcall", UD(vmcall));
	must_ud("vmmcall", UD(vmmcall));
	must_ud("vmlaunch", UD(vmlaunch));
	must_ud("vmresume", UD(vmresume));
	must_ud("vmxoff", UD(vmxoff));
	must_ud("vmxon (CR4.VMXE=0)", UD(vmxon));
	must_ud("vmrun (EFER.SVME=0)", UD(vmrun));
	must_ud("vmload (EFER.SVME=0)", UD(vmload));
	must_ud("vmsave (EFER.SVME=0)", UD(vmsave));
	/* RDPRU is AMD's (CPUID.80000008H:EBX[4]); neither model is an AMD part with it. */
	must_ud("rdpru", UD(rdpru));

	/* XSAVE family and VEX/EVEX forms: #UD while CR4.OSXSAVE=0, whatever CPUID says. */
	must_ud("xgetbv (CR4.OSXSAVE=0)", UD(xgetbv));
	must_ud("xsetbv (CR4.OSXSAVE=0)", UD(xsetbv));
	must_ud("xsave (CR4.OSXSAVE=0)", UD(xsave));
	must_ud("xrstor (CR4.OSXSAVE=0)", UD(xrstor));
	must_ud("xsaveopt (CR4.OSXSAVE=0)", UD(xsaveopt));
	must_ud("xsavec (CR4.OSXSAVE=0)", UD(xsavec));
	must_ud("vaddps ymm (VEX, CR4.OSXSAVE=0)", UD(vaddps_ymm));
	must_ud("vpxor xmm (VEX, CR4.OSXSAVE=0)", UD(vpxor_xmm));
	must_ud("vzeroupper (VEX, CR4.OSXSAVE=0)", UD(vzeroupper));
	must_ud("vaddps zmm (EVEX, CR4.OSXSAVE=0)", UD(vaddps_zmm));

	/* CR4.OSXSAVE can be set exactly when XSAVE is offered (#GP otherwise); then XGETBV
	 * works, and AVX forms work exactly when AVX is offered and enabled in XCR0. */
	u32 xsave = feature(1, ECX, 26), avx = feature(1, ECX, 28);
	int gp = try_call(set_osxsave_probe, (void *)1);
	ok("cr4.osxsave settable iff CPUID.01H:ECX[26]=1:",
	   gp ? xsave == 0 && last_trap.vector == 13 : xsave == 1);
	if (!gp) {
		ud_iff_absent("xgetbv (CR4.OSXSAVE=1)", "CPUID.01H:ECX[26]=0", UD(xgetbv), xsave);
		int avx_on = avx && !try_call(xsetbv_probe, (void *)7);
		ud_iff_absent("vaddps ymm (VEX)", "AVX not offered or not in XCR0", UD(vaddps_ymm),
			      avx_on);
		if (avx_on)
			xsetbv_probe((void *)1);
		set_osxsave_probe(0);
	} else {
		printf("xgetbv (CR4.OSXSAVE=1): #UD iff CPUID.01H:ECX[26]=0: ok\n");
		printf("vaddps ymm (VEX): #UD iff AVX not offered or not in XCR0: ok\n");
	}

	/* VEX-encoded general-purpose instructions need no OSXSAVE, only their CPUID bit. */
	ud_iff_absent("andn", "CPUID.07H:EBX[3]=0 (BMI1)", UD(andn), feature(7, EBX, 3));
	ud_iff_absent("shlx", "CPUID.07H:EBX[8]=0 (BMI2)", UD(shlx), feature(7, EBX, 8));

	/* Random numbers, processor ID, and the rest by their CPUID bits. */
	ud_iff_absent("rdrand", "CPUID.01H:ECX[30]=0", UD(rdrand), feature(1, ECX, 30));
	/* QEMU 7.2 executes RDSEED without offering it (the SDM: #UD when CPUID.07H:EBX[18]=0),
	 * so this line is a `~` line; runtime/tests/unsupported.rs holds popek to the SDM. */
	int seed = UD(rdseed), seed_offered = feature(7, EBX, 18);
	printf("~rdseed: #UD iff CPUID.07H:EBX[18]=0: %s\n",
	       seed == !seed_offered ? "ok" : "executed although not offered");
	ud_iff_absent("rdpid", "CPUID.07H:ECX[22]=0", UD(rdpid), feature(7, ECX, 22));
	ud_iff_absent("rdtscp", "CPUID.80000001H:EDX[27]=0", UD(rdtscp),
		      feature(0x80000001, EDX, 27));
	ud_iff_absent("movbe", "CPUID.01H:ECX[22]=0", UD(movbe), feature(1, ECX, 22));
	ud_iff_absent("adcx", "CPUID.07H:EBX[19]=0 (ADX)", UD(adcx), feature(7, EBX, 19));
	ud_iff_absent("clflushopt", "CPUID.07H:EBX[23]=0", UD(clflushopt), feature(7, EBX, 23));
	ud_iff_absent("popcnt", "CPUID.01H:ECX[23]=0", UD(popcnt), feature(1, ECX, 23));
	must_ud("ud2", UD(ud2));

	/* Execution carries on after all of that. */
	ok("still running after the #UDs:", 1);
	exit(failures ? 1 : 0);
}
