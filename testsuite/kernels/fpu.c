/*
 * fpu: the rules around the x87, MMX and SSE units — CR4.OSFXSR and CR0.EM give #UD, CR0.TS
 * gives #NM (and lazy FPU switching: a #NM handler that clears TS resumes the instruction),
 * WAIT and CR0.MP, a pending unmasked x87 exception gives #MF at the next waiting instruction
 * with CR0.NE set (FERR# with it clear is the `ferr` kernel), an unmasked MXCSR exception gives #XM
 * (#UD without CR4.OSXMMEXCPT) and leaves the destination, LDMXCSR's reserved bits,
 * FXSAVE/FXRSTOR round trips and alignment. Values are printed as bit patterns.
 */
#include "kernel.h"

#define ASM_FN(name, body) \
	__asm__(".text\n.globl " #name "\n" #name ":\n" body "\n  ret\n")

void sse_add(void *), x87_op(void *), mmx_op(void *), do_wait(void *), do_ldmxcsr(void *),
	do_fxsave(void *), sse_div(void *), x87_divzero(void *);
extern u8 sse_add_insn[], x87_op_insn[], mmx_op_insn[], do_wait_insn[], do_fxsave_insn[];

/* xmm0 += xmm1 */
ASM_FN(sse_add, ".globl sse_add_insn\nsse_add_insn: addps xmm0, xmm1");
ASM_FN(x87_op, ".globl x87_op_insn\nx87_op_insn: fld1\n fstp st(0)");
ASM_FN(mmx_op, ".globl mmx_op_insn\nmmx_op_insn: paddb mm0, mm1\n emms");
ASM_FN(do_wait, ".globl do_wait_insn\ndo_wait_insn: fwait");
ASM_FN(do_ldmxcsr, ".globl do_ldmxcsr_insn\ndo_ldmxcsr_insn: ldmxcsr [rdi]");
ASM_FN(do_fxsave, ".globl do_fxsave_insn\ndo_fxsave_insn: fxsave [rdi]");
ASM_FN(sse_div, ".globl sse_div_insn\nsse_div_insn: divps xmm0, xmm1");
/* 1 / 0 in the x87: raises ZE (pending if unmasked; nothing after it may wait). */
ASM_FN(x87_divzero, "fld1\n fldz\n fdivp st(1), st");

static u8 fxarea[512 + 16] __attribute__((aligned(16)));

static const char *vec_name(u64 v)
{
	switch (v) {
	case 6: return "#UD";
	case 7: return "#NM";
	case 13: return "#GP";
	case 16: return "#MF";
	case 19: return "#XM";
	default: return "other";
	}
}

/* Where QEMU 7.2 departs from the architecture (no #XM, no #UD without OSXMMEXCPT, no #GP
 * for LDMXCSR's reserved bits): print what happened on a `~` line, without a verdict; the
 * host-CPU differential tester and runtime/tests/fp.rs check these against the hardware. */
static void observe(const char *what, void (*fn)(void *), void *arg)
{
	int faulted = try_call(fn, arg);
	printf("~%s: %s err=0x%lx\n", what, faulted ? vec_name(last_trap.vector) : "no fault",
	       faulted ? last_trap.error : 0);
}

/* Runs fn(arg); prints whether and how it faulted, expecting `vector` (0: no fault) at rip. */
static void expect(const char *what, void (*fn)(void *), void *arg, u64 vector, void *rip)
{
	u64 before = last_trap.count;
	int faulted = try_call(fn, arg);
	int good;
	if (vector == 0) {
		good = !faulted;
		printf("%s: %s %s\n", what, faulted ? vec_name(last_trap.vector) : "no fault",
		       good ? "ok" : "FAIL");
	} else {
		good = faulted && last_trap.count == before + 1 && last_trap.vector == vector &&
		       last_trap.rip == (u64)rip && last_trap.error == 0;
		printf("%s: %s err=0x%lx rip=%s %s\n", what, faulted ? vec_name(last_trap.vector) : "none",
		       faulted ? last_trap.error : 0, last_trap.rip == (u64)rip ? "insn" : "other",
		       good ? "ok" : "FAIL");
	}
	if (!good)
		failures++;
}

static void set_xmm01(u32 a, u32 b)
{
	__asm__ volatile("movd xmm0, %0\n movd xmm1, %1" ::"r"(a), "r"(b));
}

static u32 xmm0_lo(void)
{
	u32 v;
	__asm__ volatile("movd %0, xmm0" : "=r"(v));
	return v;
}

static u32 stmxcsr(void)
{
	u32 v;
	__asm__ volatile("stmxcsr %0" : "=m"(v));
	return v;
}

static void ldmxcsr(u32 v) { __asm__ volatile("ldmxcsr %0" ::"m"(v)); }

static u16 fnstsw(void)
{
	u16 v;
	__asm__ volatile("fnstsw ax" : "=a"(v));
	return v;
}

static int nm_count;
static int nm_clears_ts(struct frame *f)
{
	(void)f;
	nm_count++;
	write_cr0(read_cr0() & ~CR0_TS);
	return 1;
}

static void setup(u64 cr0_set, u64 cr0_clear, u64 cr4_set, u64 cr4_clear)
{
	write_cr0((read_cr0() | cr0_set) & ~cr0_clear);
	write_cr4((read_cr4() | cr4_set) & ~cr4_clear);
}

void kmain(void)
{
	u32 a, b, c, d;
	cpuid(1, 0, &a, &b, &c, &d);
	printf("cpuid: fpu=%u mmx=%u fxsr=%u sse=%u sse2=%u sse3=%u ssse3=%u sse41=%u sse42=%u\n",
	       d & 1, (d >> 23) & 1, (d >> 24) & 1, (d >> 25) & 1, (d >> 26) & 1, c & 1,
	       (c >> 9) & 1, (c >> 19) & 1, (c >> 20) & 1);

	/* SSE is off until the OS says it saves the state (CR4.OSFXSR). */
	setup(CR0_MP | CR0_NE, CR0_EM | CR0_TS, 0, CR4_OSFXSR | CR4_OSXMMEXCPT);
	expect("addps without CR4.OSFXSR", sse_add, 0, 6, sse_add_insn);
	expect("fld1 without CR4.OSFXSR", x87_op, 0, 0, 0);
	setup(0, 0, CR4_OSFXSR | CR4_OSXMMEXCPT, 0);
	set_xmm01(0x3FC00000, 0x40100000); /* 1.5 + 2.25 */
	expect("addps with CR4.OSFXSR", sse_add, 0, 0, 0);
	printf("addps 1.5+2.25 = 0x%x %s\n", xmm0_lo(), xmm0_lo() == 0x40700000 ? "ok" : "FAIL");
	printf("mxcsr after reset = 0x%x\n", stmxcsr());

	/* CR0.TS: every unit faults with #NM; WAIT only with CR0.MP. */
	setup(CR0_TS, 0, 0, 0);
	expect("addps with CR0.TS", sse_add, 0, 7, sse_add_insn);
	expect("fld1 with CR0.TS", x87_op, 0, 7, x87_op_insn);
	expect("paddb mm with CR0.TS", mmx_op, 0, 7, mmx_op_insn);
	expect("fwait with CR0.TS and MP", do_wait, 0, 7, do_wait_insn);
	setup(0, CR0_MP, 0, 0);
	expect("fwait with CR0.TS, MP clear", do_wait, 0, 0, 0);
	setup(CR0_MP, 0, 0, 0);

	/* Lazy FPU switching: the #NM handler clears TS and the instruction runs again. */
	set_trap_hook(7, nm_clears_ts);
	setup(CR0_MP, CR0_TS, 0, 0);
	set_xmm01(0x3F800000, 0x3F800000);
	setup(CR0_TS, 0, 0, 0);
	sse_add(0);
	printf("lazy switch: #NM handled %d time(s), addps 1+1 = 0x%x, TS=%lu %s\n", nm_count,
	       xmm0_lo(), (read_cr0() >> 3) & 1,
	       nm_count == 1 && xmm0_lo() == 0x40000000 ? "ok" : "FAIL");
	setup(CR0_TS, 0, 0, 0);
	x87_op(0);
	printf("lazy switch for x87: #NM handled %d time(s) %s\n", nm_count,
	       nm_count == 2 ? "ok" : "FAIL");
	set_trap_hook(7, 0);
	__asm__ volatile("clts");
	printf("clts: TS=%lu\n", (read_cr0() >> 3) & 1);

	/* CR0.EM: x87 #NM, MMX and SSE #UD; WAIT ignores EM. */
	setup(CR0_EM, 0, 0, 0);
	expect("fld1 with CR0.EM", x87_op, 0, 7, x87_op_insn);
	expect("addps with CR0.EM", sse_add, 0, 6, sse_add_insn);
	expect("paddb mm with CR0.EM", mmx_op, 0, 6, mmx_op_insn);
	expect("fwait with CR0.EM", do_wait, 0, 0, 0);
	setup(0, CR0_EM, 0, 0);

	/* #MF: an unmasked x87 exception is reported at the next waiting instruction. */
	__asm__ volatile("fninit");
	u16 cw = 0x37B; /* ZM unmasked */
	__asm__ volatile("fldcw %0" ::"m"(cw));
	expect("fdiv by zero with ZM unmasked", x87_divzero, 0, 0, 0);
	printf("fsw after: ES=%u ZE=%u\n", (fnstsw() >> 7) & 1, (fnstsw() >> 2) & 1);
	expect("fwait with a pending exception, CR0.NE", do_wait, 0, 16, do_wait_insn);
	__asm__ volatile("fnclex");
	expect("fwait after fnclex", do_wait, 0, 0, 0);

	__asm__ volatile("fninit");

	/* #XM: an unmasked SIMD exception; the destination keeps its value. */
	set_xmm01(0x3F800000, 0);
	ldmxcsr(0x1F80 & ~0x200); /* ZM unmasked */
	observe("divps by zero with ZM unmasked (#XM)", sse_div, 0);
	printf("~after #XM: xmm0=0x%x mxcsr flags=0x%x\n", xmm0_lo(), stmxcsr() & 0x3F);
	setup(0, 0, 0, CR4_OSXMMEXCPT);
	observe("divps by zero without CR4.OSXMMEXCPT (#UD)", sse_div, 0);
	setup(0, 0, CR4_OSXMMEXCPT, 0);
	ldmxcsr(0x1F80);
	set_xmm01(0x3F800000, 0);
	expect("divps by zero, masked", sse_div, 0, 0, 0);
	printf("masked: xmm0=0x%x mxcsr flags=0x%x\n", xmm0_lo(), stmxcsr() & 0x3F);
	ldmxcsr(0x1F80);

	/* LDMXCSR refuses reserved bits. */
	u32 bad = 0x11F80;
	observe("ldmxcsr with bit 16 set (#GP(0))", do_ldmxcsr, &bad);
	ldmxcsr(0x1F80);

	/* FXSAVE/FXRSTOR round trip and alignment. */
	u64 pi_bits;
	__asm__ volatile("fninit\n fldpi\n movd xmm7, %1\n fxsave %0"
			 : "=m"(fxarea) : "r"(0x12345678u));
	__asm__ volatile("fninit\n pxor xmm7, xmm7\n fxrstor %1\n fstp qword ptr %0"
			 : "=m"(pi_bits) : "m"(fxarea));
	u32 x7;
	__asm__ volatile("movd %0, xmm7" : "=r"(x7));
	printf("fxsave/fxrstor: fcw=0x%x mxcsr=0x%x xmm7=0x%x pi=0x%lx %s\n",
	       *(u16 *)fxarea, *(u32 *)(fxarea + 24), x7, pi_bits,
	       x7 == 0x12345678 && pi_bits == 0x400921fb54442d18ul ? "ok" : "FAIL");
	expect("fxsave to a misaligned area", do_fxsave, fxarea + 8, 13, do_fxsave_insn);
}
