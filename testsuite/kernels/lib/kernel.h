/*
 * The test kernels' library: serial output, exits, traps, user mode, and the privileged
 * instructions as inline functions. See entry.S for the boot path and the GDT layout.
 *
 * Conventions: kmain() runs in 64-bit mode at CPL 0 with interrupts off, the 4 GiB
 * identity map, the library's IDT and TSS loaded (IST1 for #DF), the PICs remapped to
 * 0x20/0x28 and masked. Each check prints one deterministic line; exit(0) ends a
 * successful run (kmain returning does the same). A trap no hook claims, outside
 * try_call, prints `unexpected ...` and exits with code 3.
 */
#ifndef KERNEL_H
#define KERNEL_H

#include <stdarg.h>
#include "defs.h"

typedef unsigned long u64;
typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;
typedef long i64;

/* What the trap stubs push, lowest address first; a hook may edit it before IRETQ. */
struct frame {
	u64 r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
	u64 vector, error, rip, cs, rflags, rsp, ss;
};

/* Returns nonzero when it handled the trap (the frame is then resumed as edited). */
typedef int (*trap_hook)(struct frame *f);

/* The most recent trap (recorded for every trap before hooks run). */
struct trap_record {
	u64 vector, error, rip, cr2, cs, rsp;
	u64 frame; /* address of the struct frame, to tell which stack was used */
	u64 count;
};
extern volatile struct trap_record last_trap;

/* Per-CPU block at KERNEL_GS_BASE while the kernel runs (used by the SYSCALL path). */
struct percpu {
	u64 kstack;   /* +0 */
	u64 user_rsp; /* +8 */
	u64 magic;    /* +16 */
};
extern struct percpu percpu;

extern u8 ist1_stack[16384], rsp0_stack[16384], user_stack[16384];
#define ist1_stack_top (ist1_stack + sizeof ist1_stack)
#define rsp0_stack_top (rsp0_stack + sizeof rsp0_stack)
#define user_stack_top (user_stack + sizeof user_stack)
extern u64 boot_pml4[], boot_pdpt[], boot_pd[];
extern u8 gdt[], idt_stubs[], __image_start[], _end[];
extern struct gdtr_t {
	u16 limit;
	u64 base;
} __attribute__((packed)) gdtr;
extern struct tss64 {
	u32 reserved0;
	u64 rsp[3];
	u64 reserved1;
	u64 ist[7];
	u64 reserved2;
	u16 reserved3, iopb;
} __attribute__((packed)) tss;
extern u64 idt[512];

void putc(int c);
void puts(const char *s);
void printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void exit(int code) __attribute__((noreturn));
void ok(const char *what, int good); /* prints "<what> ok" or "<what> FAIL" (and records) */
extern int failures;

void set_trap_hook(int vector, trap_hook hook);
void set_gate(int vector, void *handler, int dpl, int ist);
int try_call(void (*fn)(void *), void *arg);
int user_exit(struct frame *f); /* the INT 0x80 RAX=0 unwinding, for kernels' own hooks */
extern volatile u16 gate_target_cs;
extern volatile u64 gate_target_rsp;
/* Runs fn at CPL 3 (64-bit) inside try_call; returns try_call's result. */
int run_user(void (*fn)(void), u64 rflags);
/* Runs code at eip at CPL 3 in compatibility mode inside try_call; it ends with INT 0x80, EAX=0. */
int run_user32(u32 eip, u64 rflags);
void enter_user(void (*fn)(void), u64 rsp, u64 rflags);
void enter_user32(u32 eip, u32 esp, u64 rflags);
void *memset(void *d, int c, u64 n);
void *memcpy(void *d, const void *s, u64 n);
void cpuid(u32 leaf, u32 sub, u32 *a, u32 *b, u32 *c, u32 *d);
int has_smep(void);
int has_smap(void);

static inline void outb(u16 port, u8 v) { __asm__ volatile("out dx, al" ::"d"(port), "a"(v)); }
static inline void outw(u16 port, u16 v) { __asm__ volatile("out dx, ax" ::"d"(port), "a"(v)); }
static inline void outl(u16 port, u32 v) { __asm__ volatile("out dx, eax" ::"d"(port), "a"(v)); }
static inline u8 inb(u16 port)
{
	u8 v;
	__asm__ volatile("in al, dx" : "=a"(v) : "d"(port));
	return v;
}
static inline u16 inw(u16 port)
{
	u16 v;
	__asm__ volatile("in ax, dx" : "=a"(v) : "d"(port));
	return v;
}
static inline u32 inl(u16 port)
{
	u32 v;
	__asm__ volatile("in eax, dx" : "=a"(v) : "d"(port));
	return v;
}
static inline u64 rdmsr(u32 msr)
{
	u32 lo, hi;
	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return ((u64)hi << 32) | lo;
}
static inline void wrmsr(u32 msr, u64 v)
{
	__asm__ volatile("wrmsr" ::"c"(msr), "a"((u32)v), "d"((u32)(v >> 32)) : "memory");
}
#define CR_ACCESSORS(n)                                                         \
	static inline u64 read_cr##n(void)                                      \
	{                                                                       \
		u64 v;                                                          \
		__asm__ volatile("mov %0, cr" #n : "=r"(v));                    \
		return v;                                                       \
	}                                                                       \
	static inline void write_cr##n(u64 v)                                   \
	{                                                                       \
		__asm__ volatile("mov cr" #n ", %0" ::"r"(v) : "memory");       \
	}
CR_ACCESSORS(0)
CR_ACCESSORS(2)
CR_ACCESSORS(3)
CR_ACCESSORS(4)
CR_ACCESSORS(8)
static inline u64 read_rflags(void)
{
	u64 v;
	__asm__ volatile("pushfq; pop %0" : "=r"(v));
	return v;
}
static inline void write_rflags(u64 v) { __asm__ volatile("push %0; popfq" ::"r"(v) : "memory", "cc"); }
static inline void invlpg(u64 va) { __asm__ volatile("invlpg [%0]" ::"r"(va) : "memory"); }
static inline void cli(void) { __asm__ volatile("cli" ::: "memory"); }
static inline void sti(void) { __asm__ volatile("sti" ::: "memory"); }
static inline void hlt(void) { __asm__ volatile("hlt" ::: "memory"); }
/* STI; HLT: the interrupt shadow makes the pair atomic. */
static inline void sti_hlt(void) { __asm__ volatile("sti; hlt" ::: "memory"); }
static inline u64 rdtsc(void)
{
	u32 lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((u64)hi << 32) | lo;
}
static inline u32 mmio_read32(u64 addr) { return *(volatile u32 *)addr; }
static inline void mmio_write32(u64 addr, u32 v) { *(volatile u32 *)addr = v; }

#define RFLAGS_CF 0x1
#define RFLAGS_TF 0x100
#define RFLAGS_IF 0x200
#define RFLAGS_DF 0x400
#define RFLAGS_IOPL3 0x3000
#define RFLAGS_AC 0x40000

#endif
