/*
 * nanobench: the nanobenchmarks of Adams & Agesen (ASPLOS 2006, "A Comparison of Software
 * and Hardware Techniques for x86 Virtualization"), plus CLI/STI, POPF and MOV CR3, as a
 * guest. Run by `benches/src/bin/nanobench/`, which converts the ticks to host cycles.
 *
 * Each operation is an assembler loop `1: <op>; dec rdi; jnz 1b` run N times (N fixed per
 * op below, so that the loop takes 20-40 ms under QEMU TCG on a 2.6 GHz host), after an
 * untimed warm-up of WARMUP iterations (so a translator has translated the loop). It is timed
 * with RDTSC in REPS chunks of N / REPS iterations, each followed by as many iterations of the
 * empty loop `1: dec rdi; jnz 1b`; the fastest op chunk minus the fastest empty chunk, times
 * REPS, is the op's cost for N iterations. One line per op:
 *
 *   ~bench <name> <N> <net ticks> <empty-loop ticks>
 *
 * where net = op loop - empty loop (0 if negative). Ticks are the guest's TSC: under popek a
 * 1 GHz virtual TSC, under QEMU TCG the host TSC. Lines start with `~` because their values
 * differ run to run. The kernel runs at CPL 0 with interrupts off and the PICs masked (the
 * library's state), except `syscall`, which loops at CPL 3.
 *
 * What one iteration of each op is:
 *   syscall  SYSCALL from CPL 3 to an LSTAR handler that is one SYSRETQ
 *   in80     IN AL, 0x80
 *   cr8      MOV CR8, RAX with RAX alternating 1 and 0 (plus an XOR)
 *   callret  CALL to a function that is one RET
 *   pgfault  clear P of a 4 KiB PTE, INVLPG, a load from that page: #PF, a handler that sets
 *            P and IRETQs (no INVLPG), the load again (so pgfault - ptemod ~ the fault)
 *   divzero  DIV ECX with ECX=0: #DE, a handler that adds 2 to the saved RIP and IRETQs
 *   ptemod   a store to a 4 KiB PTE (toggling the software bit 9) then INVLPG of its page
 *   clisti   CLI; STI
 *   popf     PUSHFQ; POPFQ
 *   cr3      MOV CR3, RAX with the current CR3 (a full non-global TLB flush)
 */
#include "kernel.h"

#define WARMUP 256
#define REPS 5 /* every N below is a multiple */

#define N_SYSCALL 400000ul
#define N_IN80 200000ul
#define N_CR8 150000ul
#define N_CALLRET 1000000ul
#define N_PGFAULT 20000ul
#define N_DIVZERO 50000ul
#define N_PTEMOD 100000ul
#define N_CLISTI 500000ul
#define N_POPF 500000ul
#define N_CR3 10000ul

/* The page the PTE benchmarks play with: a 4 KiB page at 1 GiB, backed by bench_page. */
#define BENCH_VA 0x40000000ul

static u8 bench_page[4096] __attribute__((aligned(4096)));
static u64 bench_pt[512] __attribute__((aligned(4096)));
u64 *volatile bench_pte = &bench_pt[0];

/* The loops: void nb_<op>(u64 n), n > 0; each runs its op n times. */
void nb_empty(u64 n), nb_syscall(u64 n), nb_in80(u64 n), nb_cr8(u64 n), nb_callret(u64 n),
	nb_pgfault(u64 n), nb_divzero(u64 n), nb_ptemod(u64 n), nb_clisti(u64 n),
	nb_popf(u64 n), nb_cr3(u64 n);
/* The handlers: LSTAR, #PF, #DE. */
void nb_sysret(void), nb_pf_handler(void), nb_de_handler(void);
extern void syscall_entry(void); /* the library's LSTAR */

__asm__(".text\n"
	".balign 16\n.globl nb_empty\nnb_empty:\n"
	"1: dec rdi\n jnz 1b\n ret\n"

	".balign 16\n.globl nb_syscall\nnb_syscall:\n"
	"1: syscall\n dec rdi\n jnz 1b\n ret\n"
	".balign 16\n.globl nb_sysret\nnb_sysret:\n"
	" .byte 0x48, 0x0F, 0x07\n" /* sysretq */

	".balign 16\n.globl nb_in80\nnb_in80:\n"
	"1: in al, 0x80\n dec rdi\n jnz 1b\n ret\n"

	".balign 16\n.globl nb_cr8\nnb_cr8:\n"
	" xor eax, eax\n"
	"1: xor eax, 1\n mov cr8, rax\n dec rdi\n jnz 1b\n"
	" xor eax, eax\n mov cr8, rax\n ret\n"

	".balign 16\n.globl nb_callret\nnb_callret:\n"
	"1: call nb_ret\n dec rdi\n jnz 1b\n ret\n"
	".balign 16\nnb_ret: ret\n"

	".balign 16\n.globl nb_pgfault\nnb_pgfault:\n"
	" mov rdx, [rip + bench_pte]\n mov rcx, 0x40000000\n"
	"1: and qword ptr [rdx], -2\n invlpg [rcx]\n mov al, [rcx]\n dec rdi\n jnz 1b\n ret\n"
	".balign 16\n.globl nb_pf_handler\nnb_pf_handler:\n"
	" push rax\n mov rax, [rip + bench_pte]\n or qword ptr [rax], 1\n pop rax\n"
	" add rsp, 8\n iretq\n"

	".balign 16\n.globl nb_divzero\nnb_divzero:\n"
	" xor ecx, ecx\n"
	"1: div ecx\n dec rdi\n jnz 1b\n ret\n" /* div ecx: F7 F1, 2 bytes */
	".balign 16\n.globl nb_de_handler\nnb_de_handler:\n"
	" add qword ptr [rsp], 2\n iretq\n"

	".balign 16\n.globl nb_ptemod\nnb_ptemod:\n"
	" mov rdx, [rip + bench_pte]\n mov rax, [rdx]\n mov rcx, 0x40000000\n"
	"1: xor rax, 0x200\n mov [rdx], rax\n invlpg [rcx]\n dec rdi\n jnz 1b\n ret\n"

	".balign 16\n.globl nb_clisti\nnb_clisti:\n"
	"1: cli\n sti\n dec rdi\n jnz 1b\n cli\n ret\n"

	".balign 16\n.globl nb_popf\nnb_popf:\n"
	"1: pushfq\n popfq\n dec rdi\n jnz 1b\n ret\n"

	".balign 16\n.globl nb_cr3\nnb_cr3:\n"
	" mov rax, cr3\n"
	"1: mov cr3, rax\n dec rdi\n jnz 1b\n ret\n");

struct result {
	u64 net, empty;
};

/*
 * Warm up, then time n iterations of fn and of the empty loop as REPS chunks of n / REPS,
 * keeping the fastest chunk of each: the host preempting the emulator inflates a chunk, never
 * deflates one. The result is scaled back to n iterations.
 */
static struct result measure(void (*fn)(u64), u64 n)
{
	u64 chunk = n / REPS, best_op = ~0ul, best_empty = ~0ul;
	fn(WARMUP);
	nb_empty(WARMUP);
	for (int i = 0; i < REPS; i++) {
		u64 t0 = rdtsc();
		fn(chunk);
		u64 t1 = rdtsc();
		nb_empty(chunk);
		u64 t2 = rdtsc();
		if (t1 - t0 < best_op)
			best_op = t1 - t0;
		if (t2 - t1 < best_empty)
			best_empty = t2 - t1;
	}
	struct result r = {best_op > best_empty ? REPS * (best_op - best_empty) : 0,
			   REPS * best_empty};
	return r;
}

static void report(const char *name, u64 n, struct result r)
{
	printf("~bench %s %lu %lu %lu\n", name, n, r.net, r.empty);
}

/* The syscall loop runs at CPL 3 (all of the library's map is user-accessible). */
static volatile struct result syscall_result;
static void user_syscall(void)
{
	struct result r = measure(nb_syscall, N_SYSCALL);
	syscall_result.net = r.net;
	syscall_result.empty = r.empty;
}

static void bench_syscall(void)
{
	wrmsr(MSR_LSTAR, (u64)nb_sysret);
	int killed = run_user(user_syscall, 0x2);
	wrmsr(MSR_LSTAR, (u64)syscall_entry);
	if (killed != 1 || last_trap.vector != ~0ul) {
		printf("syscall: the CPL 3 loop died: vector=0x%lx rip=0x%lx\n", last_trap.vector,
		       last_trap.rip);
		exit(4);
	}
	struct result r = {syscall_result.net, syscall_result.empty};
	report("syscall", N_SYSCALL, r);
}

/* Map BENCH_VA alone through bench_pt: the 2 MiB PDE at 1 GiB becomes a page table. */
static void map_bench_page(void)
{
	bench_pt[0] = (u64)bench_page | 0x3; /* P | RW */
	boot_pd[512] = (u64)bench_pt | 0x7; /* P | RW | US */
	write_cr3(read_cr3());
	*(volatile u8 *)BENCH_VA = 0x5a;
	if (bench_page[0] != 0x5a) {
		printf("bench page mapping failed\n");
		exit(4);
	}
}

void kmain(void)
{
	printf("nanobench: start\n");
	map_bench_page();

	/* The ops an emulator is least likely to get wrong first. */
	report("callret", N_CALLRET, measure(nb_callret, N_CALLRET));
	report("in80", N_IN80, measure(nb_in80, N_IN80));
	report("clisti", N_CLISTI, measure(nb_clisti, N_CLISTI));
	report("popf", N_POPF, measure(nb_popf, N_POPF));
	report("cr8", N_CR8, measure(nb_cr8, N_CR8));
	report("cr3", N_CR3, measure(nb_cr3, N_CR3));
	report("ptemod", N_PTEMOD, measure(nb_ptemod, N_PTEMOD));

	set_gate(0, nb_de_handler, 0, 0);
	report("divzero", N_DIVZERO, measure(nb_divzero, N_DIVZERO));
	set_gate(0, idt_stubs, 0, 0);
	set_gate(14, nb_pf_handler, 0, 0);
	report("pgfault", N_PGFAULT, measure(nb_pgfault, N_PGFAULT));
	set_gate(14, idt_stubs + 16 * 14, 0, 0);

	bench_syscall();

	printf("nanobench: done\n");
	exit(0);
}
