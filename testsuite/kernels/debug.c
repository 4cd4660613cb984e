/*
 * debug: debug exceptions (SDM vol. 3 ch. 18) in 64-bit mode — single-step with TF (the
 * instruction that sets TF does not trap, the one that clears it does; INT n and faults
 * enter their handlers with TF clear; SYSCALL's FMASK keeps the kernel entry from trapping
 * and SYSRET restoring TF traps at once in user mode; HLT traps at once, not halting),
 * MOV SS deferring #DB by one instruction, RF (set in fault frames, suppressing an
 * instruction breakpoint after IRET, cleared after one instruction), DR0-DR3 execute/write/read-write/I/O breakpoints with
 * DR6 status (also for IRETQ's stack pops and INS/OUTS's memory side), an instruction
 * breakpoint after MOV SS, DR7.GD, DR4/DR5 aliases, MOV DR at CPL 3, and INT1/ICEBP.
 *
 * Single-step traces print the saved RIPs of successive #DBs as offsets from a label in
 * the traced code, so the transcript says exactly after which instructions #DB came.
 *
 * Oracle: QEMU TCG, except the `~` lines, where QEMU 7.2 departs from the SDM (no RF in
 * fault frames, no DR7.GD general detect, #UD for ICEBP); popek follows the SDM there and
 * testsuite/kernels/README.md gives both values. POP SS (#UD in 64-bit mode) is traced in
 * compatibility mode at CPL 3.
 */
#include "kernel.h"

#define ASM_FN(name, body) \
	__asm__(".text\n.globl " #name "\n" #name ":\n" body "\n  ret\n")
#define LABEL(l) ".globl " #l "\n" #l ": "
#define TF_ON "pushfq\n or qword ptr [rsp], 0x100\n popfq\n"
#define TF_OFF "pushfq\n and qword ptr [rsp], ~0x100\n popfq\n"

#define RFLAGS_RF 0x10000
#define DR6_BS 0x4000

static inline u64 read_dr6(void)
{
	u64 v;
	__asm__ volatile("mov %0, dr6" : "=r"(v));
	return v;
}
static inline u64 read_dr7(void)
{
	u64 v;
	__asm__ volatile("mov %0, dr7" : "=r"(v));
	return v;
}
static inline void write_dr6(u64 v) { __asm__ volatile("mov dr6, %0" ::"r"(v)); }
static inline void write_dr7(u64 v) { __asm__ volatile("mov dr7, %0" ::"r"(v) : "memory"); }
static inline void write_dr0(u64 v) { __asm__ volatile("mov dr0, %0" ::"r"(v)); }
static inline void write_dr1(u64 v) { __asm__ volatile("mov dr1, %0" ::"r"(v)); }

/* ---------------------------------------------------------------- the #DB recorder */

#define MAX_DB 24
static struct {
	u64 count;
	u64 rip[MAX_DB], cs[MAX_DB], dr6[MAX_DB], rflags[MAX_DB];
	int set_rf;    /* resume instruction breakpoints with RF = 1 */
	u64 limit;     /* after this many #DBs: clear TF and DR7 (a runaway guard) */
} db;

static int db_hook(struct frame *f)
{
	u64 i = db.count++;
	u64 dr6 = read_dr6();
	if (i < MAX_DB) {
		db.rip[i] = f->rip;
		db.cs[i] = f->cs;
		db.dr6[i] = dr6;
		db.rflags[i] = f->rflags;
	}
	write_dr6(0);
	if (db.set_rf && (dr6 & 0xF))
		f->rflags |= RFLAGS_RF;
	if (db.count >= db.limit) {
		f->rflags &= ~RFLAGS_TF;
		write_dr7(0);
	}
	return 1;
}

static void db_reset(void)
{
	memset(&db, 0, sizeof db);
	db.limit = MAX_DB;
	write_dr6(0);
}

/* Prints the recorded #DB RIPs as offsets from base (`k` for one outside [base, base+256)). */
static void print_trace(const char *what, void *base)
{
	printf("%s: %lu #DB:", what, db.count);
	for (u64 i = 0; i < db.count && i < MAX_DB; i++) {
		u64 off = db.rip[i] - (u64)base;
		if (off < 256)
			printf(" +%lu", off);
		else
			printf(" k");
		if ((db.cs[i] & 3) != 0)
			printf("/u");
		if (!(db.dr6[i] & DR6_BS))
			printf("/nobs");
	}
	printf("\n");
}

/* ---------------------------------------------------------------- a. TF */

void tf_popf(void *), tf_int(void *), tf_ud(void *), tf_movss(void *), tf_user(void),
	tf_rep(void *);
extern u8 tf_popf_base[], tf_int_base[], tf_ud_base[], tf_movss_base[], tf_user_base[],
	tf_rep_base[];
extern u64 watched[2];

/* Set with POPF (no trap after it), three steps, cleared with POPF (which traps). */
ASM_FN(tf_popf, TF_ON LABEL(tf_popf_base) "nop\n xchg eax, eax\n mov eax, 1\n" TF_OFF "nop");
/* INT n clears TF in the handler; IRET restores it, and the step after IRET traps. */
ASM_FN(tf_int, TF_ON LABEL(tf_int_base) "nop\n int 0x41\n nop\n nop\n" TF_OFF "nop");
/* A fault (#UD) under TF: no step trap for it; its handler skips it. */
ASM_FN(tf_ud, TF_ON LABEL(tf_ud_base) "nop\n ud2\n nop\n" TF_OFF "nop");
/* MOV SS holds the step trap: the instruction after it runs before #DB. */
ASM_FN(tf_movss, "mov ax, ss\n" TF_ON LABEL(tf_movss_base) "nop\n mov ss, ax\n nop\n nop\n" TF_OFF
		 "nop");
/* Compatibility mode at CPL 3, TF from IRETQ: POP SS holds the trap like MOV SS. */
void tf_popss32(void);
extern u8 tf_popss32_base[];
__asm__(".section .text32, \"ax\"\n.code32\n.globl tf_popss32\ntf_popss32:\n" LABEL(tf_popss32_base)
	"nop\n push ss\n pop ss\n nop\n nop\n xor eax, eax\n int 0x80\n ud2\n.code64\n.text\n");
/* A REP string instruction traps after each iteration, RIP at itself until the last. */
ASM_FN(tf_rep, "lea rsi, [rip + watched]\n lea rdi, [rip + watched + 8]\n mov ecx, 3\n" TF_ON
	       LABEL(tf_rep_base) "rep movsb\n nop\n" TF_OFF "nop");
/* CPL 3 with TF from IRETQ: SYSCALL (FMASK clears TF), SYSRET (restores it from R11). */
__asm__(".text\n.globl tf_user\ntf_user:\n" LABEL(tf_user_base) "nop\n mov eax, 1\n mov edi, 2\n"
	" mov esi, 3\n syscall\n nop\n nop\n" TF_OFF "nop\n xor eax, eax\n int 0x80\n ud2\n");

static u64 int41_tf, ud_frame_rflags, ud_tf;

static int int41_hook(struct frame *f)
{
	(void)f;
	int41_tf = read_rflags() & RFLAGS_TF;
	return 1;
}

static int ud_hook(struct frame *f)
{
	ud_frame_rflags = f->rflags;
	ud_tf = read_rflags() & RFLAGS_TF;
	f->rip += 2;
	return 1;
}

static void single_step(void)
{
	db_reset();
	int r = try_call(tf_popf, 0);
	print_trace("tf set and cleared by popf", tf_popf_base);
	ok("  tf off afterwards", r == 0 && !(read_rflags() & RFLAGS_TF));

	db_reset();
	r = try_call(tf_int, 0);
	print_trace("tf over int 0x41", tf_int_base);
	ok("  int 0x41 handler ran with tf=0", r == 0 && int41_tf == 0);

	db_reset();
	r = try_call(tf_ud, 0);
	print_trace("tf over ud2", tf_ud_base);
	printf("  #UD frame tf=%lu, handler tf=%lu\n", (ud_frame_rflags >> 8) & 1, ud_tf >> 8);

	db_reset();
	r = try_call(tf_movss, 0);
	print_trace("tf over mov ss", tf_movss_base);

	db_reset();
	r = run_user32((u32)(u64)tf_popss32, 0x2 | RFLAGS_TF);
	print_trace("cpl3 compat tf over pop ss", tf_popss32_base);

	db_reset();
	r = try_call(tf_rep, 0);
	print_trace("tf over rep movsb (rcx=3)", tf_rep_base);

	db_reset();
	r = run_user(tf_user, 0x2 | RFLAGS_TF);
	print_trace("cpl3 tf over syscall/sysret", tf_user_base);
	u64 kernel = 0;
	for (u64 i = 0; i < db.count && i < MAX_DB; i++)
		kernel += (db.cs[i] & 3) == 0;
	printf("  #DB taken in the kernel: %lu\n", kernel);
}

/* HLT under TF: a debug exception ends the HLT state (SDM vol. 2 "HLT"), so the step trap
 * after HLT comes at once (+1) and the vCPU does not halt. QEMU 7.2 halts, and a one-shot
 * LAPIC timer (vector 0x42) wakes it without that trap: `~` line, README table. */
void tf_hlt(void *);
extern u8 tf_hlt_base[];
ASM_FN(tf_hlt, TF_ON LABEL(tf_hlt_base) "hlt\n nop\n nop\n" TF_OFF "nop");
static volatile u64 hlt_timer;
static int hlt_timer_hook(struct frame *f)
{
	(void)f;
	hlt_timer++;
	mmio_write32(0xFEE000B0, 0); /* EOI */
	return 1;
}

static void tf_over_hlt(void)
{
	set_trap_hook(0x42, hlt_timer_hook);
	mmio_write32(0xFEE000F0, 0x1FF); /* SVR: enabled */
	mmio_write32(0xFEE003E0, 0xB);   /* divide by 1 */
	mmio_write32(0xFEE00320, 0x42);  /* LVT timer: one-shot, vector 0x42 */
	db_reset();
	sti();
	mmio_write32(0xFEE00380, 10000000); /* initial count */
	try_call(tf_hlt, 0);
	while (!hlt_timer)
		__asm__ volatile("pause");
	cli();
	print_trace("~tf over hlt", tf_hlt_base);
	printf("  timer interrupt taken: %lu\n", hlt_timer);
}

/* ---------------------------------------------------------------- c. RF */

void rf_loop(void *), rf_gp(void *);
extern u8 rf_loop_x[], rf_gp_insn[];
ASM_FN(rf_loop, "mov ecx, 2\n" LABEL(rf_loop_x) "nop\n dec ecx\n jnz rf_loop_x");
ASM_FN(rf_gp, "mov ax, 0x1003\n" LABEL(rf_gp_insn) "mov ds, ax");

static u64 gp_frame_rflags;
static int gp_hook(struct frame *f)
{
	gp_frame_rflags = f->rflags;
	f->rip += 2;
	return 1;
}

static void resume_flag(void)
{
	int r = try_call(rf_gp, 0);
	printf("~#GP frame rflags.rf=%lu\n", (gp_frame_rflags >> 16) & 1);
	ok("#GP resumed after the faulting mov", r == 0);
	printf("~#UD frame rflags.rf=%lu\n", (ud_frame_rflags >> 16) & 1);

	/* An instruction breakpoint resumed with RF=1 runs its instruction once; RF is
	 * cleared after it, so the loop's second pass breaks again. */
	db_reset();
	db.set_rf = 1;
	db.limit = 6;
	write_dr0((u64)rf_loop_x);
	write_dr7(0x401);
	r = try_call(rf_loop, 0);
	write_dr7(0);
	printf("rf: execute breakpoint in a 2-pass loop: %lu #DB", db.count);
	for (u64 i = 0; i < db.count && i < MAX_DB; i++)
		printf(" rip=%s dr6=0x%lx", db.rip[i] == (u64)rf_loop_x ? "x" : "other", db.dr6[i]);
	printf(" frame.rf=%lu\n", (db.rflags[0] >> 16) & 1);
}

/* ---------------------------------------------------------------- d. DR0-DR3 */

void bp_exec(void *), bp_write(void *), bp_rw(void *), bp_io(void *), gd_read(void *),
	dr4_read(void *), user_mov_dr(void), ss_bp(void *);
extern u8 ss_bp_next[], ss_bp_later[], bp_exec_x[], bp_write_after[], bp_rw_after[], bp_io_after[], gd_insn[];
u64 watched[2] __attribute__((aligned(16)));

ASM_FN(bp_exec, "nop\n" LABEL(bp_exec_x) "nop\n nop");
/* A read of a write breakpoint's bytes does not trap; the write does, after itself. */
ASM_FN(bp_write, "mov al, [rip + watched]\n mov byte ptr [rip + watched + 8], 1\n"
		 "mov byte ptr [rip + watched + 3], 1\n" LABEL(bp_write_after) "nop");
ASM_FN(bp_rw, "mov al, [rip + watched + 7]\n" LABEL(bp_rw_after) "nop");
ASM_FN(bp_io, "in al, 0x81\n out 0x80, al\n" LABEL(bp_io_after) "nop");
ASM_FN(ss_bp, "mov eax, ss\n mov ss, eax\n" LABEL(ss_bp_next) "nop\n" LABEL(ss_bp_later) "nop");
ASM_FN(gd_read, LABEL(gd_insn) "mov rax, dr0");
ASM_FN(dr4_read, "mov rax, dr4");
__asm__(".text\n.globl user_mov_dr\nuser_mov_dr: mov rax, dr7\n xor eax, eax\n int 0x80\n");

static void breakpoints(void)
{
	/* Execute: fault-class, RIP at the instruction; DR1 matches too but is disabled. */
	db_reset();
	db.set_rf = 1;
	db.limit = 4;
	write_dr0((u64)bp_exec_x);
	write_dr1((u64)bp_exec_x);
	write_dr7(0x401);
	int r = try_call(bp_exec, 0);
	write_dr7(0);
	printf("execute bp: %lu #DB rip=%s dr6=0x%lx\n", db.count,
	       db.rip[0] == (u64)bp_exec_x ? "insn" : "other", db.dr6[0]);
	ok("  resumed", r == 0);

	/* After MOV SS an instruction breakpoint on the next instruction is suppressed (as if
	 * RF were 1, SDM vol. 3 6.8.3); one on the instruction after it fires. */
	db_reset();
	db.set_rf = 1;
	db.limit = 4;
	write_dr0((u64)ss_bp_next);
	write_dr7(0x401);
	try_call(ss_bp, 0);
	write_dr7(0);
	printf("~execute bp after mov ss: %lu #DB\n", db.count);
	db_reset();
	db.set_rf = 1;
	db.limit = 4;
	write_dr0((u64)ss_bp_later);
	write_dr7(0x401);
	try_call(ss_bp, 0);
	write_dr7(0);
	printf("execute bp one after mov ss: %lu #DB rip=%s\n", db.count,
	       db.rip[0] == (u64)ss_bp_later ? "insn" : "other");

	/* Write, 4 bytes at watched+2 (aligned down to watched): trap after the store. */
	db_reset();
	db.limit = 4;
	write_dr0((u64)watched + 2);
	write_dr7(0x400 | 0xD0001);
	r = try_call(bp_write, 0);
	write_dr7(0);
	printf("write bp (len 4): %lu #DB rip=%s dr6=0x%lx\n", db.count,
	       db.rip[0] == (u64)bp_write_after ? "next" : "other", db.dr6[0]);

	/* Read/write, 8 bytes, in DR3 with G3: a read traps. */
	db_reset();
	db.limit = 4;
	__asm__ volatile("mov dr3, %0" ::"r"((u64)watched));
	write_dr7(0x400 | 0x80 | (0xBul << 28));
	r = try_call(bp_rw, 0);
	write_dr7(0);
	printf("read/write bp (len 8, dr3): %lu #DB rip=%s dr6=0x%lx\n", db.count,
	       db.rip[0] == (u64)bp_rw_after ? "next" : "other", db.dr6[0]);

	/* I/O with CR4.DE: OUT to port 0x80 traps, IN from 0x81 does not. */
	db_reset();
	db.limit = 4;
	write_cr4(read_cr4() | CR4_DE);
	write_dr0(0x80);
	write_dr7(0x400 | 0x20002);
	r = try_call(bp_io, 0);
	write_dr7(0);
	write_cr4(read_cr4() & ~CR4_DE);
	printf("i/o bp (port 0x80): %lu #DB rip=%s dr6=0x%lx\n", db.count,
	       db.rip[0] == (u64)bp_io_after ? "next" : "other", db.dr6[0]);

	/* General detect: the MOV DR faults with BD; GD is clear in the handler. */
	db_reset();
	db.limit = 4;
	write_dr7(0x2400);
	r = try_call(gd_read, 0);
	printf("~dr7.gd: %lu #DB rip=%s dr6=0x%lx, dr7 after=0x%lx\n", db.count,
	       db.rip[0] == (u64)gd_insn ? "insn" : "other", db.dr6[0], read_dr7());

	/* Reserved bits; DR4/DR5 alias DR6/DR7 unless CR4.DE, which makes them #UD. */
	write_dr6(0);
	write_dr7(0);
	printf("dr6 after writing 0: 0x%lx, dr7: 0x%lx\n", read_dr6(), read_dr7());
	u64 dr4, dr5;
	__asm__ volatile("mov dr4, %2\n mov %0, dr4\n mov %1, dr5" : "=&r"(dr4), "=&r"(dr5) : "r"(0ul));
	printf("cr4.de=0: dr4=0x%lx dr5=0x%lx\n", dr4, dr5);
	write_cr4(read_cr4() | CR4_DE);
	r = try_call(dr4_read, 0);
	write_cr4(read_cr4() & ~CR4_DE);
	printf("cr4.de=1: mov rax, dr4: %s vector=0x%lx\n", r ? "fault" : "no fault", last_trap.vector);
	r = run_user(user_mov_dr, 0x2);
	printf("cpl3 mov rax, dr7: vector=0x%lx err=0x%lx\n", last_trap.vector, last_trap.error);
}

/* ------------------------------------------- d2. data breakpoints on the CPU's own accesses */

void iret_pop(void *), ins_write(void *), outs_read(void *);
extern u8 iret_after[], ins_after[], outs_after[];
/* Data breakpoints see the CPU's own accesses too: IRETQ's stack pops, INS's memory write
 * and OUTS's memory read. (A frame pushed by event delivery is watched as well, but QEMU
 * 7.2 aborts on that watchpoint hit, so the runtime tests check it:
 * engine::debug::tests::a_frame_push_hitting_a_write_breakpoint_traps_at_the_handler.) */
/* The frame's RSP is 128 below it: the #DB handler's pushes stay clear of the watched slot. */
ASM_FN(iret_pop, "lea rcx, [rsp - 128]\n mov eax, ss\n push rax\n push rcx\n pushfq\n"
		 "mov eax, cs\n push rax\n lea rax, [rip + iret_after]\n push rax\n mov dr0, rsp\n"
		 "mov eax, 0xB0401\n mov dr7, rax\n iretq\n" LABEL(iret_after)
		 "xor eax, eax\n mov dr7, rax\n add rsp, 128");
ASM_FN(ins_write, "lea rdi, [rip + watched + 8]\n mov dx, 0x80\n insb\n" LABEL(ins_after) "nop");
ASM_FN(outs_read, "lea rsi, [rip + watched + 8]\n mov dx, 0x80\n outsb\n" LABEL(outs_after) "nop");

static void cpu_accesses(void)
{
	/* IRETQ's pop of RIP is a read (DR0 read/write, LEN 8): #DB after it, at the target. */
	db_reset();
	db.limit = 4;
	try_call(iret_pop, 0);
	write_dr7(0);
	printf("iretq pop on a read/write bp: %lu #DB rip=%s dr6=0x%lx\n", db.count,
	       db.rip[0] == (u64)iret_after ? "target" : "other", db.dr6[0]);

	/* INSB's memory write, OUTSB's memory read (DR0 LEN 1 at watched+8). */
	db_reset();
	db.limit = 4;
	write_dr0((u64)watched + 8);
	write_dr7(0x400 | 0x10001);
	try_call(ins_write, 0);
	write_dr7(0);
	printf("insb to a write bp: %lu #DB rip=%s dr6=0x%lx\n", db.count,
	       db.rip[0] == (u64)ins_after ? "next" : "other", db.dr6[0]);
	db_reset();
	db.limit = 4;
	write_dr7(0x400 | 0x10001);
	try_call(outs_read, 0);
	write_dr7(0);
	printf("outsb from a write bp: %lu #DB\n", db.count);
	db_reset();
	db.limit = 4;
	write_dr7(0x400 | 0x30001);
	try_call(outs_read, 0);
	write_dr7(0);
	printf("outsb from a read/write bp: %lu #DB rip=%s dr6=0x%lx\n", db.count,
	       db.rip[0] == (u64)outs_after ? "next" : "other", db.dr6[0]);
}

/* ---------------------------------------------------------------- e. INT1 */

void icebp(void *), user_icebp(void);
extern u8 icebp_after[], user_icebp_after[];
ASM_FN(icebp, ".byte 0xF1\n" LABEL(icebp_after) "nop");
__asm__(".text\n.globl user_icebp\nuser_icebp: .byte 0xF1\n" LABEL(user_icebp_after)
	"xor eax, eax\n int 0x80\n");

static void int1(void)
{
	db_reset();
	write_dr6(0);
	int r = try_call(icebp, 0);
	printf("~icebp: %lu #DB rip=%s dr6=0x%lx resumed=%d other trap=0x%lx\n", db.count,
	       db.rip[0] == (u64)icebp_after ? "next" : "other", db.dr6[0], r == 0,
	       r ? last_trap.vector : 0);
	db_reset();
	r = run_user(user_icebp, 0x2);
	printf("~cpl3 icebp (gate dpl 0): %lu #DB rip=%s cs=0x%lx other trap=0x%lx\n", db.count,
	       db.rip[0] == (u64)user_icebp_after ? "next" : "other", db.cs[0],
	       last_trap.vector);
}

void kmain(void)
{
	printf("debug: start\n");
	set_trap_hook(1, db_hook);
	set_trap_hook(0x41, int41_hook);
	set_trap_hook(6, ud_hook);
	set_trap_hook(13, gp_hook);
	single_step();
	tf_over_hlt();
	resume_flag();
	set_trap_hook(6, 0);
	set_trap_hook(13, 0);
	breakpoints();
	cpu_accesses();
	int1();
	printf("debug: done, %d failures\n", failures);
}
