/*
 * smc: self-modifying code. A patched immediate changes a function's result; a store
 * patches the very next instruction of the same straight-line block; a loop rewrites
 * its own body every iteration; code copied to a fresh page runs there and is patched
 * again; and code is modified through a second virtual alias of its physical page (and
 * run through the alias after the original is patched). Each function runs several times
 * before it is patched, so a translator has cached it.
 */
#include "kernel.h"

#define ASM_FN(name, body) __asm__(".text\n.globl " #name "\n" #name ":\n" body "\n")

u32 smc_imm(void);
extern u8 smc_imm_value[];
ASM_FN(smc_imm, "  .byte 0xB8\n.globl smc_imm_value\nsmc_imm_value: .long 0x11111111\n  ret");

/* Stores its argument into the immediate of the next instruction, which returns it. */
u32 smc_next(u32 v);
ASM_FN(smc_next, "  mov [rip + 1f + 1], edi\n  mov eax, 0x0BADC0DE\n  1: mov eax, 0x0BADC0DE\n  ret");

/* for i in 0..10: edx += imm; imm += 1 (the add's own immediate, in the same block). */
u32 smc_loop(void);
ASM_FN(smc_loop, "  mov dword ptr [rip + 2f], 0\n  xor edx, edx\n  mov ecx, 10\n"
		 "1: .byte 0x81, 0xC2\n2: .long 0\n  inc dword ptr [rip + 2b]\n  loop 1b\n"
		 "  mov eax, edx\n  ret");

/* Overwrites its own first instruction with "mov eax, 0x600D; ret" and jumps back to it. */
u32 smc_self(void);
ASM_FN(smc_self, "1: mov dword ptr [rip + 1b], 0x600DB8 + 0\n"
		 "  mov byte ptr [rip + 1b + 3], 0\n  mov byte ptr [rip + 1b + 4], 0\n"
		 "  mov byte ptr [rip + 1b + 5], 0xC3\n  jmp 1b");

static u8 page[4096] __attribute__((aligned(4096)));
static u64 alias_pd[512] __attribute__((aligned(4096)));
static u64 alias_pt[512] __attribute__((aligned(4096)));
#define ALIAS 0x100000000ul /* 4 GiB, above the identity map */

typedef u32 (*fn0)(void);

void kmain(void)
{
	printf("smc: start\n");
	u32 r = 0;
	for (int i = 0; i < 3; i++)
		r = smc_imm();
	printf("immediate before patch=0x%x\n", r);
	*(volatile u32 *)smc_imm_value = 0x22222222;
	printf("immediate after patch=0x%x\n", smc_imm());
	*(volatile u32 *)smc_imm_value = 0x33333333;
	printf("immediate after second patch=0x%x\n", smc_imm());

	printf("next instruction patched: 0x%x 0x%x 0x%x\n", smc_next(1), smc_next(2),
	       smc_next(0x12345678));
	printf("self-rewriting loop sum=%u (again %u)\n", smc_loop(), smc_loop());

	/* Copy smc_imm to a fresh page and run it there. */
	memcpy(page, (void *)smc_imm, 6);
	fn0 copy = (fn0)(void *)page;
	for (int i = 0; i < 3; i++)
		r = copy();
	printf("copy on a new page=0x%x\n", r);
	*(volatile u32 *)(page + 1) = 0x44444444;
	printf("copy patched=0x%x\n", copy());

	/* A second virtual mapping of the same page. */
	alias_pt[0] = (u64)page | 3;
	alias_pd[0] = (u64)alias_pt | 7;
	boot_pdpt[4] = (u64)alias_pd | 7;
	invlpg(ALIAS);
	*(volatile u32 *)(ALIAS + 1) = 0x55555555;
	printf("patched through the alias, run at the original=0x%x\n", copy());
	fn0 alias = (fn0)(void *)ALIAS;
	for (int i = 0; i < 3; i++)
		r = alias();
	printf("run through the alias=0x%x\n", r);
	*(volatile u32 *)(page + 1) = 0x66666666;
	printf("patched at the original, run through the alias=0x%x\n", alias());
	printf("patched at the original, run at the original=0x%x\n", copy());

	/* Code that overwrites itself and then runs the new bytes. */
	memcpy(page + 64, (void *)smc_self, 64);
	printf("self-overwriting code on the page returned=0x%x\n", ((fn0)(void *)(page + 64))());
	printf("smc: done\n");
}
