/*
 * usermode: CPL 3 in 64-bit and compatibility mode — IRETQ into user mode, SYSCALL/SYSRET
 * (STAR, LSTAR, SFMASK, SWAPGS with KERNEL_GS_BASE), INT 0x80 through a DPL 3 gate on the
 * TSS.RSP0 stack, SYSENTER/SYSEXIT, FS/GS bases set by WRMSR, privileged instructions
 * faulting with #GP(0) (the task is killed, or the instruction skipped), and #PF error
 * codes with the U/S bit.
 */
#include "kernel.h"

#define ASM_FN(name, body) __asm__(".text\n.globl " #name "\n" #name ":\n" body "\n  ret\n")

/* Results written by user code (every page is user-accessible in the library's map). */
static volatile u64 u_cs, u_ss, u_sum, u_magic, u_fs0, u_gs0, u_gs1, u_rcx_ok, u_r11_df;
static volatile u64 k_cs, k_ss, k_rflags, k_gs_magic;
static volatile u64 i_cs, i_ss, i_rsp, i_ret, i_frame;
static volatile u64 s_ret, s_cs, s_ss, s_kcs, skipped_flag;
static u64 fs_area[2] = {0x46534653, 0}, gs_area[2] = {0x47534753, 0};

u64 syscall_dispatch(u64 nr, u64 a0, u64 a1)
{
	u16 cs, ss;
	__asm__ volatile("mov %w0, cs\n mov %w1, ss" : "=r"(cs), "=r"(ss));
	k_cs = cs, k_ss = ss, k_rflags = read_rflags();
	switch (nr) {
	case 1:
		return a0 + a1;
	case 2:
		__asm__ volatile("mov %0, gs:[16]" : "=r"(k_gs_magic));
		return k_gs_magic;
	default:
		return (u64)-1;
	}
}

u64 sysenter_dispatch(u64 nr, u64 a0)
{
	u16 cs;
	__asm__ volatile("mov %w0, cs" : "=r"(cs));
	s_kcs = cs;
	return nr * 0x100 + a0;
}

static inline u64 sys(u64 nr, u64 a0, u64 a1)
{
	__asm__ volatile("syscall"
			 : "+a"(nr), "+D"(a0), "+S"(a1)
			 :
			 : "rcx", "rdx", "r8", "r9", "r10", "r11", "memory");
	return nr;
}

static int int80_hook(struct frame *f)
{
	if (user_exit(f))
		return 1;
	i_cs = f->cs, i_ss = f->ss, i_rsp = f->rsp, i_frame = (u64)f;
	f->rax = f->rax * 0x10 + 1;
	return 1;
}

static void user_basic(void)
{
	u16 cs, ss;
	__asm__ volatile("mov %w0, cs\n mov %w1, ss" : "=r"(cs), "=r"(ss));
	u_cs = cs, u_ss = ss;
	u64 sum = 0;
	for (u64 i = 0; i < 3; i++)
		sum += sys(1, i, 100);
	u_sum = sum;
	__asm__ volatile("mov %0, fs:[0]\n mov %1, gs:[0]" : "=r"(u_fs0), "=r"(u_gs0));
	u_magic = sys(2, 0, 0);
	__asm__ volatile("mov %0, gs:[0]" : "=r"(u_gs1));
	/* SYSCALL saves RIP in RCX and RFLAGS in R11; SYSRET restores RFLAGS (DF=1 here). */
	u64 rcx, r11, expect_rip, flags;
	__asm__ volatile("lea %2, [rip + 1f]\n std\n syscall\n 1: pushfq\n pop %3\n cld"
			 : "=c"(rcx), "=r"(r11), "=&r"(expect_rip), "=&r"(flags)
			 : "a"(1ul), "D"(0ul), "S"(0ul)
			 : "rdx", "r8", "r9", "r10", "memory");
	__asm__ volatile("" ::: "r11");
	u_rcx_ok = rcx == expect_rip;
	u_r11_df = (flags >> 10) & 1;
	(void)r11;
}

static void user_int80(void)
{
	u64 rax = 7;
	__asm__ volatile("int 0x80" : "+a"(rax)::"memory");
	i_ret = rax;
}

static void user_sysenter(void)
{
	u64 rax = 5;
	u16 cs, ss;
	__asm__ volatile("lea rdx, [rip + 1f]\n mov rcx, rsp\n sysenter\n 1:"
			 : "+a"(rax)
			 : "D"(3ul)
			 : "rcx", "rdx", "rsi", "r8", "r9", "r10", "r11", "memory");
	__asm__ volatile("mov %w0, cs\n mov %w1, ss" : "=r"(cs), "=r"(ss));
	s_ret = rax, s_cs = cs, s_ss = ss;
}

void u_cli(void), u_hlt(void), u_rdcr0(void), u_wrmsr(void), u_in(void), u_lgdt(void),
	u_skip_hlt(void);
extern u8 u_cli_insn[], u_hlt_insn[], u_rdcr0_insn[], u_wrmsr_insn[], u_in_insn[],
	u_lgdt_insn[], u_skip_insn[];
ASM_FN(u_cli, ".globl u_cli_insn\nu_cli_insn: cli");
ASM_FN(u_hlt, ".globl u_hlt_insn\nu_hlt_insn: hlt");
ASM_FN(u_rdcr0, ".globl u_rdcr0_insn\nu_rdcr0_insn: mov rax, cr0");
ASM_FN(u_wrmsr, "mov ecx, 0xC0000080\n xor eax, eax\n xor edx, edx\n"
		".globl u_wrmsr_insn\nu_wrmsr_insn: wrmsr");
ASM_FN(u_in, "mov dx, 0x3F8\n.globl u_in_insn\nu_in_insn: in al, dx");
ASM_FN(u_lgdt, "lea rax, [rip + gdtr]\n.globl u_lgdt_insn\nu_lgdt_insn: lgdt [rax]");
ASM_FN(u_skip_hlt, ".globl u_skip_insn\nu_skip_insn: hlt\n mov qword ptr [rip + skipped_after], 1");
__asm__(".data\n.globl skipped_after\nskipped_after: .quad 0\n.text");
extern volatile u64 skipped_after;

static void expect_gp(const char *what, void (*fn)(void), u8 *insn)
{
	int r = run_user(fn, 0x2);
	printf("cpl3 %s: vector=0x%lx err=0x%lx cs=0x%lx", what, last_trap.vector, last_trap.error,
	       last_trap.cs);
	ok(" rip=insn killed", r == 1 && last_trap.vector == 13 && last_trap.error == 0 &&
				       last_trap.rip == (u64)insn && last_trap.cs == 0x33);
}

/* #GP from CPL 3 at u_skip_insn: skip the 1-byte HLT and let the task continue. */
static int skip_hook(struct frame *f)
{
	if ((f->cs & 3) == 3 && f->rip == (u64)u_skip_insn) {
		f->rip += 1;
		skipped_flag = 1;
		return 1;
	}
	return 0;
}

static volatile u64 pf_va;
static void user_read(void) { (void)*(volatile u64 *)pf_va; }
static void user_write(void) { *(volatile u64 *)pf_va = 1; }

static void expect_user_pf(const char *what, void (*fn)(void), u64 va, u64 err)
{
	pf_va = va;
	int r = run_user(fn, 0x2);
	printf("cpl3 %s: vector=0x%lx err=0x%lx cr2=0x%lx", what, last_trap.vector,
	       last_trap.error, last_trap.cr2);
	ok("", r == 1 && last_trap.vector == 14 && last_trap.error == err && last_trap.cr2 == va);
}

void user32_code(void);
__asm__(".section .text32, \"ax\"\n.code32\n.globl user32_code\nuser32_code:\n"
	"  mov ax, cs\n  movzx eax, ax\n  mov [user32_cs], eax\n"
	"  mov ecx, esp\n  push eax\n  sub ecx, esp\n  pop eax\n  mov [user32_push], ecx\n"
	"  xor eax, eax\n  int 0x80\n  ud2\n"
	".code64\n.data\nuser32_cs: .long 0\nuser32_push: .long 0\n.text\n");
extern volatile u32 user32_cs, user32_push;

void kmain(void)
{
	printf("usermode: start\n");
	set_trap_hook(VEC_SYSCALL, int80_hook);
	wrmsr(MSR_FS_BASE, (u64)fs_area);
	wrmsr(MSR_GS_BASE, (u64)gs_area);

	int r = run_user(user_basic, 0x2);
	ok("iretq to cpl3 and back through int 0x80 exit", r == 1 && last_trap.vector == ~0ul);
	printf("cpl3 cs=0x%lx ss=0x%lx\n", u_cs, u_ss);
	printf("syscall: kernel cs=0x%lx ss=0x%lx, 3 adds sum=0x%lx\n", k_cs, k_ss, u_sum);
	printf("sfmask: kernel rflags df=%lu ac=%lu tf=%lu if=%lu\n", (k_rflags >> 10) & 1,
	       (k_rflags >> 18) & 1, (k_rflags >> 8) & 1, (k_rflags >> 9) & 1);
	printf("sysret: rcx=return rip %lu, user df restored=%lu\n", u_rcx_ok, u_r11_df);
	printf("swapgs: kernel gs:[16]=0x%lx user saw 0x%lx\n", k_gs_magic, u_magic);
	printf("cpl3 fs:[0]=0x%lx gs:[0]=0x%lx, gs:[0] after syscall=0x%lx\n", u_fs0, u_gs0, u_gs1);
	printf("gs base after return=%s\n", rdmsr(MSR_GS_BASE) == (u64)gs_area ? "user" : "other");

	r = run_user(user_int80, 0x2);
	printf("int 0x80: frame cs=0x%lx ss=0x%lx rsp=%s, rax 7 -> 0x%lx", i_cs, i_ss,
	       i_rsp <= (u64)user_stack_top && i_rsp > (u64)user_stack ? "user stack" : "other",
	       i_ret);
	ok(", handler on TSS.RSP0 stack", r == 1 && i_frame >= (u64)rsp0_stack &&
						  i_frame < (u64)rsp0_stack_top);

	r = run_user(user_sysenter, 0x2);
	printf("sysenter: kernel cs=0x%lx, returned 0x%lx; sysexit to cs=0x%lx ss=0x%lx", s_kcs,
	       s_ret, s_cs, s_ss);
	ok("", r == 1 && last_trap.vector == ~0ul && s_ret == 0x503);

	expect_gp("cli", u_cli, u_cli_insn);
	expect_gp("hlt", u_hlt, u_hlt_insn);
	expect_gp("mov rax, cr0", u_rdcr0, u_rdcr0_insn);
	expect_gp("wrmsr", u_wrmsr, u_wrmsr_insn);
	expect_gp("in al, dx (IOPL 0)", u_in, u_in_insn);
	expect_gp("lgdt", u_lgdt, u_lgdt_insn);

	set_trap_hook(13, skip_hook);
	r = run_user(u_skip_hlt, 0x2);
	set_trap_hook(13, 0);
	ok("cpl3 hlt skipped by the #GP handler, task continued",
	   r == 1 && last_trap.vector == ~0ul && skipped_flag && skipped_after);

	/* User access to a supervisor page: the 2 MiB page at 8 MiB loses U/S. */
	boot_pd[4] &= ~4ul;
	invlpg(0x800000);
	expect_user_pf("read supervisor page", user_read, 0x800000, 5);
	expect_user_pf("write supervisor page", user_write, 0x800008, 7);
	boot_pd[4] |= 4;
	invlpg(0x800000);
	expect_user_pf("read unmapped", user_read, 0x200000000, 4);

	r = run_user32((u32)(u64)user32_code, 0x2);
	printf("compat-mode cpl3: cs=0x%x push size=%u", user32_cs, user32_push);
	ok("", r == 1 && last_trap.vector == ~0ul);

	printf("usermode: %s\n", failures ? "FAILED" : "done");
	exit(failures ? 1 : 0);
}
