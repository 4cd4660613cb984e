/*
 * sensitive: every sensitive instruction of DESIGN.md, first at CPL 0 (printing only
 * architecturally defined results: what was loaded reads back, fixed bits read as
 * defined), then at CPL 3: each privileged one raises #GP(0); the unprivileged sensitive
 * ones return the same values as at CPL 0; IOPL-sensitive ones fault with IOPL 0 and work
 * with IOPL 3.
 */
#include "kernel.h"

#define ASM_FN(name, body) __asm__(".text\n.globl " #name "\n" #name ":\n" body "\n  ret\n")

struct __attribute__((packed)) dtr {
	u16 limit;
	u64 base;
};
struct __attribute__((packed)) far_ptr64 {
	u64 offset;
	u16 selector;
};

static u8 gdt_copy[GDT_LIMIT + 1] __attribute__((aligned(16)));
static u64 idt_copy[512] __attribute__((aligned(16)));
static u64 ldt[2] __attribute__((aligned(16))) = {0x00CF93000000FFFF, 0x00CFF3000000FFFF};

static u64 hook_vector, hook_rip;
static int resume_hook(struct frame *f)
{
	hook_vector = f->vector, hook_rip = f->rip;
	return 1;
}

/* ------------------------------------------------------------------ descriptor queries */
struct seg_query {
	u64 lar_zf, ar, lsl_zf, limit, verr, verw;
};

static void query(u16 sel, struct seg_query *q)
{
	u64 ar = 0, limit = 0;
	u8 z1, z2, z3, z4;
	__asm__ volatile("lar %0, %w6\n setz %2\n lsl %1, %w6\n setz %3\n verr %w6\n setz %4\n"
			 " verw %w6\n setz %5"
			 : "+r"(ar), "+r"(limit), "=&q"(z1), "=&q"(z2), "=&q"(z3), "=&q"(z4)
			 : "r"((u64)sel)
			 : "cc");
	/* Bits 19:16 are undefined; in a gate descriptor bits 31:16 are the target offset. */
	u64 mask = ar & 0x1000 ? 0x00F0FF00 : 0xFF00;
	q->lar_zf = z1, q->ar = z1 ? ar & mask : 0, q->lsl_zf = z2;
	q->limit = z2 ? limit : 0, q->verr = z3, q->verw = z4;
}

static const u16 query_selectors[] = {0x00,	      SEL_CODE32, SEL_CODE64, SEL_DATA,
				      SEL_UCODE32 | 3, SEL_UDATA | 3, SEL_UCODE64 | 3, SEL_TSS,
				      SEL_NOTPRESENT,  SEL_GATE0,  SEL_LDT,    SEL_SMALL,
				      0x1000};
#define NQUERY (sizeof query_selectors / sizeof query_selectors[0])
static struct seg_query user_queries[NQUERY];

static void print_queries(const char *cpl, struct seg_query *qs)
{
	for (u64 i = 0; i < NQUERY; i++) {
		struct seg_query *q = &qs[i];
		printf("%s sel 0x%04x: lar zf=%lu ar=0x%08lx lsl zf=%lu limit=0x%lx verr=%lu verw=%lu\n",
		       cpl, query_selectors[i], q->lar_zf, q->ar, q->lsl_zf, q->limit, q->verr,
		       q->verw);
	}
}

/* ------------------------------------------------------------------ compatibility mode */
u64 saved_rsp64;
void call_compat(u32 eip);
__asm__(".globl call_compat\n"
	"call_compat:\n"
	"  push rbx\n  push rbp\n  push r12\n  push r13\n  push r14\n  push r15\n"
	"  mov [rip + saved_rsp64], rsp\n"
	"  push 0x08\n  push rdi\n"
	"  .byte 0x48, 0xCB\n"
	".globl compat_back\n"
	"compat_back:\n"
	"  mov rsp, [rip + saved_rsp64]\n"
	"  mov ax, 0x18\n  mov ds, ax\n  mov es, ax\n  mov ss, ax\n"
	"  pop r15\n  pop r14\n  pop r13\n  pop r12\n  pop rbp\n  pop rbx\n"
	"  ret\n");

/* PUSH/POP of segment registers in 32-bit code (compatibility mode, CPL 0). */
void compat_segs(void);
__asm__(".section .text32, \"ax\"\n.code32\ncompat_segs:\n"
	"  mov ecx, esp\n  push ds\n  sub ecx, esp\n  mov [seg32 + 0], ecx\n  pop eax\n  mov [seg32 + 4], eax\n"
	"  push cs\n  pop eax\n  mov [seg32 + 8], eax\n"
	"  push ss\n  pop eax\n  mov [seg32 + 12], eax\n"
	"  push 0x50\n  pop es\n  mov eax, es\n  mov [seg32 + 16], eax\n"
	"  push ds\n  pop es\n  mov eax, es\n  mov [seg32 + 20], eax\n"
	"  .byte 0xEA\n  .long compat_back\n  .word 0x10\n"
	".code64\n.data\n.globl seg32\nseg32: .long 0, 0, 0, 0, 0, 0\n.text\n");
extern volatile u32 seg32[6];

/* ------------------------------------------------------------------ CPL 0 */
static u64 probe_msr;
static void rdmsr_probe(void *arg) { (void)arg, (void)rdmsr((u32)probe_msr); }
static void ltr_busy(void *arg) { (void)arg; __asm__ volatile("ltr %w0" ::"r"(SEL_TSS)); }

static void msr_roundtrip(const char *name, u32 msr, u64 value)
{
	u64 old = rdmsr(msr);
	wrmsr(msr, value);
	u64 got = rdmsr(msr);
	wrmsr(msr, old);
	printf("wrmsr/rdmsr %s (0x%x): wrote 0x%lx read 0x%lx", name, msr, value, got);
	ok("", got == value);
}

static void cpl0(void)
{
	struct dtr d;
	__asm__ volatile("sgdt %0" : "=m"(d));
	printf("sgdt limit=0x%x base=%s\n", d.limit, d.base == (u64)gdt ? "gdt" : "other");
	__asm__ volatile("sidt %0" : "=m"(d));
	printf("sidt limit=0x%x base=%s\n", d.limit, d.base == (u64)idt ? "idt" : "other");

	memcpy(gdt_copy, gdt, sizeof gdt_copy);
	struct dtr g = {GDT_LIMIT, (u64)gdt_copy};
	__asm__ volatile("lgdt %0\n sgdt %1" : : "m"(g), "m"(d) : "memory");
	__asm__ volatile("sgdt %0" : "=m"(d));
	printf("lgdt copy: sgdt limit=0x%x base=%s\n", d.limit,
	       d.base == (u64)gdt_copy ? "copy" : "other");
	__asm__ volatile("lgdt %0" ::"m"(gdtr) : "memory");

	memcpy(idt_copy, idt, sizeof idt_copy);
	struct dtr i = {0x41 * 16 + 15, (u64)idt_copy};
	__asm__ volatile("lidt %0" ::"m"(i) : "memory");
	__asm__ volatile("sidt %0" : "=m"(d));
	set_trap_hook(0x41, resume_hook);
	__asm__ volatile("int 0x41" ::: "memory");
	printf("lidt copy: sidt limit=0x%x base=%s, int 0x41 through it: vector=0x%lx\n", d.limit,
	       d.base == (u64)idt_copy ? "copy" : "other", hook_vector);
	struct dtr orig = {sizeof idt - 1, (u64)idt};
	__asm__ volatile("lidt %0" ::"m"(orig) : "memory");

	u16 sel;
	__asm__ volatile("sldt %w0" : "=r"(sel));
	printf("sldt=0x%x\n", sel);
	u64 *ldt_desc = (u64 *)(gdt + SEL_LDT);
	u64 base = (u64)ldt;
	ldt_desc[0] = (sizeof ldt - 1) | ((base & 0xFFFFFF) << 16) | (0x82ul << 40) |
		      (((base >> 24) & 0xFF) << 56);
	ldt_desc[1] = base >> 32;
	u16 ds;
	__asm__ volatile("lldt %w1\n sldt %w0" : "=r"(sel) : "r"(SEL_LDT));
	__asm__ volatile("mov ds, %w1\n mov %w0, ds\n mov ds, %w2"
			 : "=&r"(ds)
			 : "r"(0x4), "r"(SEL_DATA));
	printf("lldt 0x70: sldt=0x%x, ds loaded from LDT=0x%x\n", sel, ds);
	__asm__ volatile("lldt %w0" ::"r"(0));
	__asm__ volatile("str %w0" : "=r"(sel));
	printf("str=0x%x\n", sel);
	int r = try_call(ltr_busy, 0);
	printf("ltr of the busy TSS: vector=0x%lx err=0x%lx", last_trap.vector, last_trap.error);
	ok("", r == 1 && last_trap.vector == 13 && last_trap.error == SEL_TSS);

	u16 msw;
	__asm__ volatile("smsw %0" : "=m"(msw));
	printf("smsw=0x%x\n", msw);
	__asm__ volatile("lmsw %w0" ::"r"((u16)(msw | CR0_TS)));
	printf("lmsw +TS: cr0.ts=%lu\n", (read_cr0() >> 3) & 1);
	__asm__ volatile("lmsw %w0" ::"r"((u16)(msw & ~CR0_PE)));
	printf("lmsw -PE: cr0.pe=%lu cr0.ts=%lu\n", read_cr0() & 1, (read_cr0() >> 3) & 1);
	__asm__ volatile("lmsw %w0" ::"r"((u16)(msw | CR0_TS)));
	__asm__ volatile("clts");
	printf("clts: cr0.ts=%lu\n", (read_cr0() >> 3) & 1);

	u64 cr0 = read_cr0();
	printf("cr0=0x%lx\n", cr0);
	write_cr0(cr0 | CR0_MP);
	printf("cr0 +MP=0x%lx\n", read_cr0());
	write_cr0(cr0);
	write_cr2(0x123456789abc);
	printf("cr2=0x%lx\n", read_cr2());
	printf("cr3=%s\n", read_cr3() == (u64)boot_pml4 ? "boot_pml4" : "other");
	write_cr3(read_cr3());
	u64 cr4 = read_cr4();
	printf("cr4=0x%lx\n", cr4);
	write_cr4(cr4 | CR4_TSD | CR4_DE);
	printf("cr4 +TSD+DE=0x%lx\n", read_cr4());
	write_cr4(cr4);
	write_cr8(5);
	printf("cr8=0x%lx\n", read_cr8());
	write_cr8(15);
	printf("cr8=0x%lx\n", read_cr8());
	write_cr8(0);

	u64 dr[4];
	__asm__ volatile("mov dr0, %4\n mov dr1, %5\n mov dr2, %6\n mov dr3, %7\n"
			 "mov %0, dr0\n mov %1, dr1\n mov %2, dr2\n mov %3, dr3"
			 : "=&r"(dr[0]), "=&r"(dr[1]), "=&r"(dr[2]), "=&r"(dr[3])
			 : "r"(0x1000ul), "r"(0x2000ul), "r"(0x3000ul), "r"(0x4000ul));
	printf("dr0..3=0x%lx 0x%lx 0x%lx 0x%lx\n", dr[0], dr[1], dr[2], dr[3]);
	u64 dr6, dr7;
	__asm__ volatile("mov dr6, %1\n mov %0, dr6" : "=r"(dr6) : "r"(0ul));
	__asm__ volatile("mov dr7, %1\n mov %0, dr7" : "=r"(dr7) : "r"(0ul));
	printf("dr6 after writing 0=0x%lx dr7 after writing 0=0x%lx\n", dr6, dr7);

	__asm__ volatile("invd\n wbinvd" ::: "memory");
	invlpg((u64)gdt_copy);
	printf("invd, wbinvd, invlpg executed\n");

	printf("rdmsr efer=0x%lx\n", rdmsr(MSR_EFER));
	printf("rdmsr pat=0x%lx\n", rdmsr(MSR_PAT));
	msr_roundtrip("star", MSR_STAR, 0x0023001000000000);
	msr_roundtrip("lstar", MSR_LSTAR, 0xffff800012345678);
	msr_roundtrip("cstar", MSR_CSTAR, 0x0000000087654321);
	msr_roundtrip("sfmask", MSR_SFMASK, 0x47700);
	msr_roundtrip("fs_base", MSR_FS_BASE, 0x00007fff12345000);
	msr_roundtrip("gs_base", MSR_GS_BASE, 0xffff8000abcde000);
	msr_roundtrip("kernel_gs_base", MSR_KERNEL_GS_BASE, 0x0000123456789000);
	msr_roundtrip("sysenter_cs", MSR_SYSENTER_CS, 0x10);
	msr_roundtrip("sysenter_esp", MSR_SYSENTER_ESP, 0x12345670);
	msr_roundtrip("sysenter_eip", MSR_SYSENTER_EIP, 0x76543210);
	msr_roundtrip("pat", MSR_PAT, 0x0007010600070106);
	probe_msr = 0xC0011FFF;
	r = try_call(rdmsr_probe, 0);
	printf("~rdmsr 0x%lx (unimplemented): faulted=%d vector=0x%lx err=0x%lx\n", probe_msr, r,
	       r ? last_trap.vector : 0, r ? last_trap.error : 0);

	u64 kgs = rdmsr(MSR_KERNEL_GS_BASE), gs = rdmsr(MSR_GS_BASE);
	__asm__ volatile("swapgs" ::: "memory");
	ok("swapgs exchanges gs_base and kernel_gs_base",
	   rdmsr(MSR_GS_BASE) == kgs && rdmsr(MSR_KERNEL_GS_BASE) == gs);
	__asm__ volatile("swapgs" ::: "memory");

	u32 a, b, c, dd;
	cpuid(0, 0, &a, &b, &c, &dd);
	printf("cpuid 0: max leaf >= 1: %d\n", a >= 1);
	cpuid(1, 0, &a, &b, &c, &dd);
	printf("cpuid 1: edx.tsc=%u edx.msr=%u edx.apic=%u edx.sep=%u\n", (dd >> 4) & 1,
	       (dd >> 5) & 1, (dd >> 9) & 1, (dd >> 11) & 1);
	u64 t0 = rdtsc(), t1 = rdtsc();
	ok("rdtsc monotonic", t1 >= t0);

	u64 fl = read_rflags();
	printf("rflags if=%lu iopl=%lu\n", (fl >> 9) & 1, (fl >> 12) & 3);
	write_rflags(fl | RFLAGS_IOPL3 | RFLAGS_IF);
	u64 fl2 = read_rflags();
	write_rflags(fl);
	printf("popf at cpl0 sets if=%lu iopl=%lu\n", (fl2 >> 9) & 1, (fl2 >> 12) & 3);
	sti();
	u64 fl3 = read_rflags();
	cli();
	printf("sti: if=%lu, cli: if=%lu\n", (fl3 >> 9) & 1, (read_rflags() >> 9) & 1);

	static struct seg_query q[NQUERY];
	for (u64 k = 0; k < NQUERY; k++)
		query(query_selectors[k], &q[k]);
	print_queries("cpl0", q);

	u16 cs, ss, es, fs, gsr;
	__asm__ volatile("mov %w0, cs\n mov %w1, ss\n mov %w2, ds\n mov %w3, es\n mov %w4, fs\n"
			 " mov %w5, gs"
			 : "=r"(cs), "=r"(ss), "=r"(ds), "=r"(es), "=r"(fs), "=r"(gsr));
	printf("mov from cs=0x%x ss=0x%x ds=0x%x es=0x%x fs=0x%x gs=0x%x\n", cs, ss, ds, es, fs, gsr);
	call_compat((u32)(u64)compat_segs);
	printf("compat push ds: %u bytes, ds=0x%x cs=0x%x ss=0x%x, pop es=0x%x then 0x%x\n",
	       seg32[0], seg32[1] & 0xFFFF, seg32[2] & 0xFFFF, seg32[3] & 0xFFFF, seg32[4],
	       seg32[5]);

	static struct far_ptr64 gate = {0, SEL_GATE0};
	u64 rsp;
	__asm__ volatile("mov %0, rsp\n .byte 0x48, 0xFF, 0x18" : "=&r"(rsp) : "a"(&gate) : "memory");
	printf("far call through call gate 0x60: target cs=0x%x, %lu bytes pushed\n", gate_target_cs,
	       rsp - gate_target_rsp);

	u64 landed;
	__asm__ volatile("mov rax, rsp\n push 0x18\n push rax\n pushfq\n push 0x10\n"
			 " lea rax, [rip + 1f]\n push rax\n iretq\n 1: mov %0, 1"
			 : "=r"(landed)
			 :
			 : "rax", "memory");
	printf("iretq to cpl0: landed=%lu\n", landed);
	__asm__ volatile("int 0x41" ::: "memory");
	printf("int 0x41 at cpl0: vector=0x%lx\n", hook_vector);
}

/* ------------------------------------------------------------------ CPL 3 */
#define PRIV(name, setup, insn)                                                       \
	void u_##name(void);                                                          \
	extern u8 u_##name##_insn[];                                                  \
	ASM_FN(u_##name, setup "\n.globl u_" #name "_insn\nu_" #name "_insn: " insn)

PRIV(hlt, "", "hlt");
PRIV(lgdt, "lea rax, [rip + gdtr]", "lgdt [rax]");
PRIV(lidt, "lea rax, [rip + gdtr]", "lidt [rax]");
PRIV(lldt, "xor eax, eax", "lldt ax");
PRIV(ltr, "mov eax, 0x40", "ltr ax");
PRIV(rdcr0, "", "mov rax, cr0");
PRIV(wrcr0, "xor eax, eax", "mov cr0, rax");
PRIV(rdcr2, "", "mov rax, cr2");
PRIV(wrcr3, "xor eax, eax", "mov cr3, rax");
PRIV(rdcr4, "", "mov rax, cr4");
PRIV(rdcr8, "", "mov rax, cr8");
PRIV(rddr7, "", "mov rax, dr7");
PRIV(wrdr0, "xor eax, eax", "mov dr0, rax");
PRIV(lmsw, "xor eax, eax", "lmsw ax");
PRIV(clts, "", "clts");
PRIV(invd, "", "invd");
PRIV(wbinvd, "", "wbinvd");
PRIV(invlpg, "", "invlpg [rsp]");
PRIV(rdmsr, "mov ecx, 0xC0000080", "rdmsr");
PRIV(wrmsr, "mov ecx, 0xC0000080\n xor eax, eax\n xor edx, edx", "wrmsr");
PRIV(swapgs, "", "swapgs");
PRIV(sysret, "", ".byte 0x48, 0x0F, 0x07");
PRIV(sysexit, "", ".byte 0x48, 0x0F, 0x35");
PRIV(rdpmc, "xor ecx, ecx", "rdpmc");
PRIV(rdtsc_tsd, "", "rdtsc");
PRIV(cli, "", "cli");
PRIV(sti, "", "sti");
PRIV(in, "mov dx, 0x3FF", "in al, dx");
PRIV(out, "mov dx, 0x3FF", "out dx, al");
PRIV(insb, "mov dx, 0x3FF\n lea rdi, [rsp - 64]", "insb");
PRIV(outsb, "mov dx, 0x3FF\n mov rsi, rsp", "outsb");
PRIV(int41, "", "int 0x41");

struct priv {
	const char *name;
	void (*fn)(void);
	u8 *insn;
};
#define P(n, text) {text, u_##n, u_##n##_insn}
static const struct priv privileged[] = {
	P(hlt, "hlt"),		   P(lgdt, "lgdt"),	      P(lidt, "lidt"),
	P(lldt, "lldt"),	   P(ltr, "ltr"),	      P(rdcr0, "mov rax, cr0"),
	P(wrcr0, "mov cr0, rax"),  P(rdcr2, "mov rax, cr2"), P(wrcr3, "mov cr3, rax"),
	P(rdcr4, "mov rax, cr4"),  P(rdcr8, "mov rax, cr8"), P(rddr7, "mov rax, dr7"),
	P(wrdr0, "mov dr0, rax"),  P(lmsw, "lmsw"),	      P(clts, "clts"),
	P(invd, "invd"),	   P(wbinvd, "wbinvd"),	      P(invlpg, "invlpg"),
	P(rdmsr, "rdmsr"),	   P(wrmsr, "wrmsr"),	      P(swapgs, "swapgs"),
	P(sysret, "sysretq"),	   P(sysexit, "sysexitq"),    P(rdpmc, "rdpmc (CR4.PCE=0)"),
	P(rdtsc_tsd, "rdtsc (CR4.TSD=1)"),
};
static const struct priv iopl_sensitive[] = {
	P(cli, "cli"), P(sti, "sti"),	  P(in, "in al, dx"),
	P(out, "out dx, al"), P(insb, "insb"), P(outsb, "outsb"),
};

static void expect_gp0(const char *what, const struct priv *p, u64 rflags)
{
	int r = run_user(p->fn, rflags);
	printf("cpl3 %s %s: vector=0x%lx err=0x%lx", what, p->name, last_trap.vector,
	       last_trap.error);
	ok("", r == 1 && last_trap.vector == 13 && last_trap.error == 0 &&
		       last_trap.rip == (u64)p->insn && (last_trap.cs & 3) == 3);
}

static volatile u64 u_rflags_before, u_rflags_after, u_cs, u_ss, u_ds, u_if_after_cli,
	u_if_after_sti, u_scratch, u_cpuid, u_tsc_ok, u_gate_cs, u_gate_rsp, u_after_gate,
	u_iret_landed;
static struct dtr u_gdt, u_idt;
static volatile u16 u_ldt, u_tr, u_msw;

static void user_values(void)
{
	__asm__ volatile("sgdt %0\n sidt %1\n sldt %2\n str %3\n smsw %4"
			 : "=m"(u_gdt), "=m"(u_idt), "=m"(u_ldt), "=m"(u_tr), "=m"(u_msw));
	u16 cs, ss, ds;
	__asm__ volatile("mov %w0, cs\n mov %w1, ss\n mov %w2, ds" : "=r"(cs), "=r"(ss), "=r"(ds));
	u_cs = cs, u_ss = ss, u_ds = ds;
	for (u64 k = 0; k < NQUERY; k++)
		query(query_selectors[k], &user_queries[k]);
	/* POPF at CPL 3 with IOPL 0 leaves IF and IOPL alone (no fault). */
	u_rflags_before = read_rflags();
	write_rflags(u_rflags_before | RFLAGS_IF | RFLAGS_IOPL3);
	u_rflags_after = read_rflags();
	u32 a, b, c, d;
	cpuid(0, 0, &a, &b, &c, &d);
	u_cpuid = a >= 1;
	u64 t0 = rdtsc(), t1 = rdtsc();
	u_tsc_ok = t1 >= t0;
	/* A far call through the DPL 3 call gate enters CPL 0 on the TSS.RSP0 stack. */
	static struct far_ptr64 gate = {0, SEL_GATE3 | 3};
	__asm__ volatile(".byte 0x48, 0xFF, 0x18" : : "a"(&gate) : "memory");
	u_gate_cs = gate_target_cs, u_gate_rsp = gate_target_rsp;
	u16 cs2;
	__asm__ volatile("mov %w0, cs" : "=r"(cs2));
	u_after_gate = cs2;
	u64 landed;
	__asm__ volatile("mov rax, rsp\n push 0x2b\n push rax\n pushfq\n push 0x33\n"
			 " lea rax, [rip + 1f]\n push rax\n iretq\n 1: mov %0, 1"
			 : "=r"(landed)
			 :
			 : "rax", "memory");
	u_iret_landed = landed;
}

static void user_iopl3(void)
{
	__asm__ volatile("cli" ::: "memory");
	u_if_after_cli = (read_rflags() >> 9) & 1;
	__asm__ volatile("sti" ::: "memory");
	u_if_after_sti = (read_rflags() >> 9) & 1;
	__asm__ volatile("cli" ::: "memory");
	outb(COM1 + 7, 0xA5);
	u_scratch = inb(COM1 + 7);
}

static void cpl3(void)
{
	write_cr4(read_cr4() | CR4_TSD);
	for (u64 k = 0; k < sizeof privileged / sizeof privileged[0]; k++)
		expect_gp0("privileged", &privileged[k], 0x2);
	write_cr4(read_cr4() & ~CR4_TSD);
	for (u64 k = 0; k < sizeof iopl_sensitive / sizeof iopl_sensitive[0]; k++)
		expect_gp0("iopl=0", &iopl_sensitive[k], 0x2);

	int r = run_user(u_int41, 0x2);
	printf("cpl3 int 0x41 (DPL0 gate): vector=0x%lx idt=%lu ext=%lu", last_trap.vector,
	       (last_trap.error >> 1) & 1, last_trap.error & 1);
	ok("", r == 1 && last_trap.vector == 13 && last_trap.rip == (u64)u_int41_insn);
	/* The selector index is the vector (0x20a); QEMU 7.2 reports vector*16+2 (0x412). */
	printf("~cpl3 int 0x41 (DPL0 gate): err=0x%lx\n", last_trap.error);

	r = run_user(user_values, 0x2);
	ok("cpl3 unprivileged sensitive instructions ran", r == 1 && last_trap.vector == ~0ul);
	printf("cpl3 sgdt limit=0x%x base=%s sidt limit=0x%x base=%s sldt=0x%x str=0x%x smsw=0x%x\n",
	       u_gdt.limit, u_gdt.base == (u64)gdt ? "gdt" : "other", u_idt.limit,
	       u_idt.base == (u64)idt ? "idt" : "other", u_ldt, u_tr, u_msw);
	printf("cpl3 mov from cs=0x%lx ss=0x%lx ds=0x%lx\n", u_cs, u_ss, u_ds);
	print_queries("cpl3", user_queries);
	printf("cpl3 popf +IF+IOPL3 with IOPL0: if %lu->%lu iopl %lu->%lu\n",
	       (u_rflags_before >> 9) & 1, (u_rflags_after >> 9) & 1, (u_rflags_before >> 12) & 3,
	       (u_rflags_after >> 12) & 3);
	printf("cpl3 cpuid max leaf >= 1: %lu, rdtsc monotonic: %lu\n", u_cpuid, u_tsc_ok);
	printf("cpl3 far call through DPL3 call gate: target cs=0x%lx on %s, back at cs=0x%lx\n",
	       u_gate_cs,
	       u_gate_rsp >= (u64)rsp0_stack && u_gate_rsp < (u64)rsp0_stack_top ? "rsp0 stack"
										 : "other stack",
	       u_after_gate);
	printf("cpl3 iretq to cpl3: landed=%lu\n", u_iret_landed);

	r = run_user(user_iopl3, 0x2 | RFLAGS_IOPL3);
	printf("cpl3 iopl=3: cli if=%lu, sti if=%lu, out/in scratch=0x%lx", u_if_after_cli,
	       u_if_after_sti, u_scratch);
	ok("", r == 1 && last_trap.vector == ~0ul);
}

void kmain(void)
{
	printf("sensitive: cpl0\n");
	cpl0();
	printf("sensitive: cpl3\n");
	cpl3();
	printf("sensitive: %s\n", failures ? "FAILED" : "done");
	exit(failures ? 1 : 0);
}
