/*
 * exceptions: delivery of CPU exceptions in 64-bit mode at CPL 0 — vector, error code,
 * saved RIP (the faulting instruction for faults, the next one for traps), resumption —
 * including #DF on IST1 from two contributory faults and from a #PF on a bad stack.
 */
#include "kernel.h"

#define ASM_FN(name, body) \
	__asm__(".text\n.globl " #name "\n" #name ":\n" body "\n  ret\n")

void de_div(void *), de_idiv(void *), bp_int3(void *), ud_ud2(void *), ud_push_es(void *),
	ud_into(void *), gp_selector(void *), np_ds(void *), ss_np(void *), gp_ss_rpl(void *),
	gp_noncanonical(void *), pf_read(void *), pf_write(void *), pf_fetch(void *),
	db_step(void *), int41(void *), stack_overflow(void *);
extern u8 de_div_insn[], de_idiv_insn[], bp_after[], ud_ud2_insn[], ud_push_es_insn[],
	ud_into_insn[], gp_selector_insn[], np_ds_insn[], ss_np_insn[], gp_ss_rpl_insn[],
	gp_noncanonical_insn[], pf_read_insn[], pf_write_insn[], db_after[], int41_after[], int41_insn[];

#define UNMAPPED "0x200000000" /* 8 GiB: beyond the 4 GiB identity map */

ASM_FN(de_div, "mov eax, 1\n xor edx, edx\n xor ecx, ecx\n.globl de_div_insn\nde_div_insn: div ecx");
ASM_FN(de_idiv, "mov eax, 0x80000000\n cdq\n mov ecx, -1\n.globl de_idiv_insn\nde_idiv_insn: idiv ecx");
ASM_FN(bp_int3, "int3\n.globl bp_after\nbp_after: nop");
ASM_FN(ud_ud2, ".globl ud_ud2_insn\nud_ud2_insn: ud2");
ASM_FN(ud_push_es, ".globl ud_push_es_insn\nud_push_es_insn: .byte 0x06");
ASM_FN(ud_into, ".globl ud_into_insn\nud_into_insn: .byte 0xCE");
ASM_FN(gp_selector, "mov ax, 0x1003\n.globl gp_selector_insn\ngp_selector_insn: mov ds, ax");
ASM_FN(np_ds, "mov ax, 0x58\n.globl np_ds_insn\nnp_ds_insn: mov ds, ax");
ASM_FN(ss_np, "mov ax, 0x58\n.globl ss_np_insn\nss_np_insn: mov ss, ax");
ASM_FN(gp_ss_rpl, "mov ax, 0x2b\n.globl gp_ss_rpl_insn\ngp_ss_rpl_insn: mov ss, ax");
ASM_FN(gp_noncanonical, "movabs rax, 0x8000000000000000\n"
			".globl gp_noncanonical_insn\ngp_noncanonical_insn: mov rax, [rax]");
ASM_FN(pf_read, "movabs rax, " UNMAPPED "\n.globl pf_read_insn\npf_read_insn: mov rax, [rax]");
ASM_FN(pf_write, "movabs rax, " UNMAPPED "\n.globl pf_write_insn\npf_write_insn: mov [rax], eax");
ASM_FN(pf_fetch, "movabs rax, " UNMAPPED "\n call rax");
ASM_FN(db_step, "pushfq\n or qword ptr [rsp], 0x100\n popfq\n nop\n.globl db_after\ndb_after: nop");
ASM_FN(int41, ".globl int41_insn\nint41_insn: int 0x41\n.globl int41_after\nint41_after: nop");
ASM_FN(stack_overflow, "movabs rsp, " UNMAPPED "\n push rax");

static const char *name_of(u64 v)
{
	static const char *const n[] = {"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM",
					"#DF", "v9",  "#TS", "#NP", "#SS", "#GP", "#PF"};
	return v < 15 ? n[v] : "int";
}

/* Runs fn expecting a fault with this vector and error code at rip. */
static void expect(const char *what, void (*fn)(void *), u64 vector, u64 error, void *rip)
{
	int faulted = try_call(fn, 0);
	int good = faulted && last_trap.vector == vector && last_trap.error == error &&
		   last_trap.rip == (u64)rip && last_trap.cs == SEL_CODE64;
	printf("%s: %s vector=0x%lx err=0x%lx rip=%s %s\n", what, name_of(last_trap.vector),
	       last_trap.vector, last_trap.error, last_trap.rip == (u64)rip ? "insn" : "other",
	       good ? "ok" : "FAIL");
	if (!good)
		failures++;
}

static u64 dr6_seen, hook_rip;

/* Traps resume: record, clear TF, return to the next instruction. */
static int resume_hook(struct frame *f)
{
	hook_rip = f->rip;
	if (f->vector == 1) {
		__asm__ volatile("mov %0, dr6" : "=r"(dr6_seen));
		f->rflags &= ~RFLAGS_TF;
	}
	return 1;
}

static int frame_on_ist1(void)
{
	return last_trap.frame >= (u64)ist1_stack && last_trap.frame < (u64)ist1_stack_top;
}

void kmain(void)
{
	printf("exceptions: start\n");
	expect("div by zero", de_div, 0, 0, de_div_insn);
	expect("idiv overflow", de_idiv, 0, 0, de_idiv_insn);
	expect("ud2", ud_ud2, 6, 0, ud_ud2_insn);
	expect("push es in 64-bit mode", ud_push_es, 6, 0, ud_push_es_insn);
	expect("into in 64-bit mode", ud_into, 6, 0, ud_into_insn);
	expect("mov ds, 0x1003 (beyond GDT limit)", gp_selector, 13, 0x1000, gp_selector_insn);
	expect("mov ds, not-present 0x58", np_ds, 11, 0x58, np_ds_insn);
	expect("mov ss, not-present 0x58", ss_np, 12, 0x58, ss_np_insn);
	expect("mov ss, 0x2b (RPL != CPL)", gp_ss_rpl, 13, 0x28, gp_ss_rpl_insn);
	expect("non-canonical load", gp_noncanonical, 13, 0, gp_noncanonical_insn);
	expect("read unmapped", pf_read, 14, 0, pf_read_insn);
	printf("  cr2=0x%lx\n", last_trap.cr2);
	expect("write unmapped", pf_write, 14, 2, pf_write_insn);
	printf("  cr2=0x%lx\n", last_trap.cr2);
	expect("fetch unmapped", pf_fetch, 14, 0x10, (void *)0x200000000);
	printf("  cr2=0x%lx\n", last_trap.cr2);

	/* Traps: the saved RIP is the next instruction, and the handler returns there. */
	set_trap_hook(3, resume_hook);
	set_trap_hook(1, resume_hook);
	set_trap_hook(0x41, resume_hook);
	int r = try_call(bp_int3, 0);
	ok("int3: #BP vector=0x3 resumed at next insn", r == 0 && hook_rip == (u64)bp_after);
	r = try_call(db_step, 0);
	printf("single step: #DB dr6.bs=%lu", (dr6_seen >> 14) & 1);
	ok(" resumed after the nop", r == 0 && hook_rip == (u64)db_after);
	r = try_call(int41, 0);
	ok("int 0x41: vector=0x41 resumed", r == 0 && last_trap.vector == 0x41 &&
						    hook_rip == (u64)int41_after);

	/* A not-present IDT gate: #NP with the IDT bit and vector in the error code. */
	set_trap_hook(0x41, 0);
	idt[2 * 0x41] &= ~(1ul << 47);
	r = try_call(int41, 0);
	printf("int 0x41 via not-present gate: %s vector=0x%lx idt=%lu ext=%lu",
	       name_of(last_trap.vector), last_trap.vector, (last_trap.error >> 1) & 1,
	       last_trap.error & 1);
	ok(" rip=insn", r == 1 && last_trap.vector == 11 && last_trap.rip == (u64)int41_insn);
	/* The selector index is the vector (0x20a); QEMU 7.2 reports vector*16+2 (0x412). */
	printf("~int 0x41 via not-present gate: err=0x%lx\n", last_trap.error);
	idt[2 * 0x41] |= 1ul << 47;

	/* #DE whose gate is not present raises #NP while delivering it: a double fault. */
	idt[0] &= ~(1ul << 47);
	r = try_call(de_div, 0);
	idt[0] |= 1ul << 47;
	printf("#DE with not-present gate: %s vector=0x%lx err=0x%lx", name_of(last_trap.vector),
	       last_trap.vector, last_trap.error);
	ok(" on IST1", r == 1 && last_trap.vector == 8 && last_trap.error == 0 && frame_on_ist1());

	/* A push to an unmapped stack: #PF, whose delivery faults again: a double fault. */
	r = try_call(stack_overflow, 0);
	printf("push on unmapped stack: %s vector=0x%lx err=0x%lx", name_of(last_trap.vector),
	       last_trap.vector, last_trap.error);
	ok(" on IST1", r == 1 && last_trap.vector == 8 && last_trap.error == 0 && frame_on_ist1());

	/* Everything still works after the double faults. */
	expect("div by zero again", de_div, 0, 0, de_div_insn);
	printf("exceptions: %s\n", failures ? "FAILED" : "done");
	exit(failures ? 1 : 0);
}
