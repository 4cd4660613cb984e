/*
 * longmode, 64-bit part: checks the state the library's switch produced, round-trips
 * through compatibility mode (RETFQ into a 32-bit code segment, far JMP back), and does
 * a far CALL/RETFQ through an m16:64 pointer.
 */
#include "kernel.h"

extern void compat_entry(void), gate_target(void);
u64 saved_rsp64;
void go_compat(void);
__asm__(".globl go_compat\n"
	"go_compat:\n"
	"  push rbx\n  push rbp\n  push r12\n  push r13\n  push r14\n  push r15\n"
	"  mov [rip + saved_rsp64], rsp\n"
	"  push 0x08\n"
	"  lea rax, [rip + compat_entry]\n"
	"  push rax\n"
	"  .byte 0x48, 0xCB\n" /* retfq */
	".globl compat_back\n"
	"compat_back:\n"
	"  mov rsp, [rip + saved_rsp64]\n"
	"  mov ax, 0x18\n  mov ds, ax\n  mov es, ax\n  mov ss, ax\n"
	"  pop r15\n  pop r14\n  pop r13\n  pop r12\n  pop rbp\n  pop rbx\n"
	"  ret\n");

struct __attribute__((packed)) far_ptr64 {
	u64 offset;
	u16 selector;
};

void kmain(void)
{
	u64 efer = rdmsr(MSR_EFER);
	u16 cs;
	__asm__ volatile("mov %w0, cs" : "=r"(cs));
	extern u32 mb_magic;
	printf("longmode: 64-bit mode\n");
	printf("multiboot eax=0x%x\n", mb_magic);
	printf("efer lme=%lu lma=%lu nxe=%lu sce=%lu\n", (efer >> 8) & 1, (efer >> 10) & 1,
	       (efer >> 11) & 1, efer & 1);
	printf("cr0 pg=%lu pe=%lu cr4 pae=%lu cs=0x%x\n", read_cr0() >> 31, read_cr0() & 1,
	       (read_cr4() >> 5) & 1, cs);
	u64 x = 0x123456789abcdef0, y;
	__asm__("rol %0, 12\n bswap %0" : "+r"(x));
	__asm__("mov %0, %1\n imul %0, %0\n add %0, %1" : "=&r"(y) : "r"(x));
	printf("64-bit rol/bswap=0x%016lx imul+add=0x%016lx\n", x, y);

	go_compat();
	__asm__ volatile("mov %w0, cs" : "=r"(cs));
	printf("back in 64-bit mode cs=0x%x\n", cs);
	go_compat();
	printf("second round trip ok\n");

	/* Far CALL through m16:64 (REX.W FF /3), RETFQ back. */
	static struct far_ptr64 p = {(u64)gate_target, SEL_CODE64};
	u64 rsp;
	__asm__ volatile("mov %0, rsp\n .byte 0x48, 0xFF, 0x18" : "=&r"(rsp) : "a"(&p) : "memory");
	printf("far call m16:64 cs=0x%x pushed=%lu bytes\n", gate_target_cs, rsp - gate_target_rsp);
	/* Far JMP through m16:64 (REX.W FF /5) to a label in the same segment. */
	static struct far_ptr64 j = {0, SEL_CODE64};
	u64 landed = 0;
	__asm__ volatile("lea rcx, [rip + 1f]\n mov [rax], rcx\n .byte 0x48, 0xFF, 0x28\n"
			 " ud2\n 1: mov %0, 1"
			 : "+r"(landed) : "a"(&j) : "rcx", "memory");
	printf("far jmp m16:64 landed=%lu\n", landed);
}
