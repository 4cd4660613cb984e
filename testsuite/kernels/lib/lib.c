/*
 * The test kernels' library, 64-bit part: COM1 output and printf, exit through
 * isa-debug-exit, the IDT/TSS, trap dispatch (hooks, then try_call recovery, then
 * "unexpected"), the SYSCALL/SYSENTER dispatchers, and user-mode entry.
 */
#include "kernel.h"

u64 idt[512] __attribute__((aligned(16)));
struct tss64 tss __attribute__((aligned(16)));
struct percpu percpu;
volatile struct trap_record last_trap;
int failures;
static trap_hook hooks[256];
extern u64 recover_rip, recover_rsp;
extern void syscall_entry(void), sysenter_entry(void), gate_target(void);

u8 ist1_stack[16384] __attribute__((aligned(16)));
u8 rsp0_stack[16384] __attribute__((aligned(16)));
u8 syscall_stack[16384] __attribute__((aligned(16)));
u8 user_stack[16384] __attribute__((aligned(16)));

void *memset(void *d, int c, u64 n)
{
	u8 *p = d;
	while (n--)
		*p++ = (u8)c;
	return d;
}

void *memcpy(void *d, const void *s, u64 n)
{
	u8 *p = d;
	const u8 *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

void putc(int c)
{
	while (!(inb(COM1 + 5) & 0x20))
		;
	outb(COM1, (u8)c);
}

void puts(const char *s)
{
	while (*s)
		putc(*s++);
}

static void put_unsigned(u64 v, unsigned base, int width, char pad)
{
	char buf[24];
	int n = 0;
	do {
		buf[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	while (width-- > n)
		putc(pad);
	while (n)
		putc(buf[--n]);
}

/* %s %c %d %u %x %p with an optional '0' flag, width and 'l' (values are 64-bit with l). */
void printf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			putc(*fmt);
			continue;
		}
		fmt++;
		char pad = ' ';
		int width = 0, lng = 0;
		if (*fmt == '0')
			pad = '0', fmt++;
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l')
			lng = 1, fmt++;
		switch (*fmt) {
		case 's':
			puts(va_arg(ap, const char *));
			break;
		case 'c':
			putc(va_arg(ap, int));
			break;
		case 'd': {
			i64 v = lng ? va_arg(ap, i64) : va_arg(ap, int);
			if (v < 0)
				putc('-'), v = -v;
			put_unsigned((u64)v, 10, width, pad);
			break;
		}
		case 'u':
			put_unsigned(lng ? va_arg(ap, u64) : va_arg(ap, u32), 10, width, pad);
			break;
		case 'x':
			put_unsigned(lng ? va_arg(ap, u64) : va_arg(ap, u32), 16, width, pad);
			break;
		case 'p':
			puts("0x");
			put_unsigned((u64)va_arg(ap, void *), 16, width, pad);
			break;
		default:
			putc(*fmt);
		}
	}
	va_end(ap);
}

void exit(int code)
{
	outl(DEBUG_EXIT_PORT, (u32)code);
	for (;;) {
		cli();
		hlt();
	}
}

void ok(const char *what, int good)
{
	printf("%s %s\n", what, good ? "ok" : "FAIL");
	if (!good)
		failures++;
}

void cpuid(u32 leaf, u32 sub, u32 *a, u32 *b, u32 *c, u32 *d)
{
	__asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(sub));
}

static u32 cpuid7_ebx(void)
{
	u32 a, b, c, d;
	cpuid(0, 0, &a, &b, &c, &d);
	if (a < 7)
		return 0;
	cpuid(7, 0, &a, &b, &c, &d);
	return b;
}

int has_smep(void) { return (cpuid7_ebx() >> 7) & 1; }
int has_smap(void) { return (cpuid7_ebx() >> 20) & 1; }

/* A 16-byte system descriptor (TSS, LDT, 64-bit call gate) at GDT offset sel. */
static void set_system_descriptor(u16 sel, u64 base, u32 limit, u8 type_byte)
{
	u64 *d = (u64 *)(gdt + sel);
	d[0] = (limit & 0xFFFF) | ((base & 0xFFFFFF) << 16) | ((u64)type_byte << 40) |
	       ((u64)((limit >> 16) & 0xF) << 48) | (((base >> 24) & 0xFF) << 56);
	d[1] = base >> 32;
}

static void set_call_gate(u16 sel, void *target, int dpl)
{
	u64 off = (u64)target;
	u64 *d = (u64 *)(gdt + sel);
	d[0] = (off & 0xFFFF) | ((u64)SEL_CODE64 << 16) | ((u64)(0x8C | (dpl << 5)) << 40) |
	       ((off >> 16) << 48);
	d[1] = off >> 32;
}

void set_gate(int vector, void *handler, int dpl, int ist)
{
	u64 off = (u64)handler;
	idt[2 * vector] = (off & 0xFFFF) | ((u64)SEL_CODE64 << 16) | ((u64)ist << 32) |
			  ((u64)(0x8E | (dpl << 5)) << 40) | ((off >> 16) << 48);
	idt[2 * vector + 1] = off >> 32;
}

void set_trap_hook(int vector, trap_hook hook) { hooks[vector] = hook; }

void lib_init(void)
{
	/* The loader's firmware may have left the PICs at vector 8; move them and mask all. */
	outb(0x20, 0x11), outb(0xA0, 0x11);
	outb(0x21, 0x20), outb(0xA1, 0x28);
	outb(0x21, 4), outb(0xA1, 2);
	outb(0x21, 1), outb(0xA1, 1);
	outb(0x21, 0xFF), outb(0xA1, 0xFF);

	for (int v = 0; v < 256; v++)
		set_gate(v, idt_stubs + 16 * v, v == 3 || v == 4 || v == VEC_SYSCALL ? 3 : 0,
			 v == 8 ? 1 : 0);
	struct {
		u16 limit;
		u64 base;
	} __attribute__((packed)) idtr = {sizeof idt - 1, (u64)idt};
	__asm__ volatile("lidt %0" ::"m"(idtr));

	tss.rsp[0] = (u64)rsp0_stack_top;
	tss.ist[0] = (u64)ist1_stack_top;
	tss.iopb = sizeof tss; /* no I/O bitmap */
	set_system_descriptor(SEL_TSS, (u64)&tss, sizeof tss - 1, 0x89);
	__asm__ volatile("ltr %w0" ::"r"(SEL_TSS));
	set_call_gate(SEL_GATE0, gate_target, 0);
	set_call_gate(SEL_GATE3, gate_target, 3);

	percpu.kstack = (u64)(syscall_stack + sizeof syscall_stack);
	percpu.magic = 0x6b65726e656c6773; /* "sglenrek" */
	wrmsr(MSR_KERNEL_GS_BASE, (u64)&percpu);
	wrmsr(MSR_STAR, ((u64)(SEL_UCODE32 | 3) << 48) | ((u64)SEL_CODE64 << 32));
	wrmsr(MSR_LSTAR, (u64)syscall_entry);
	wrmsr(MSR_SFMASK, RFLAGS_IF | RFLAGS_TF | RFLAGS_DF | RFLAGS_AC);
	wrmsr(MSR_SYSENTER_CS, SEL_CODE64);
	wrmsr(MSR_SYSENTER_ESP, (u64)(syscall_stack + sizeof syscall_stack));
	wrmsr(MSR_SYSENTER_EIP, (u64)sysenter_entry);
}

static const char *const names[32] = {
	"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS",
	"#NP", "#SS", "#GP", "#PF", "v15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
};

void trap_dispatch(struct frame *f)
{
	last_trap.vector = f->vector;
	last_trap.error = f->error;
	last_trap.rip = f->rip;
	last_trap.cs = f->cs;
	last_trap.rsp = f->rsp;
	last_trap.frame = (u64)f;
	last_trap.count++;
	if (f->vector == 14)
		last_trap.cr2 = read_cr2();
	if (hooks[f->vector] && hooks[f->vector](f))
		return;
	if (f->vector == VEC_SPURIOUS)
		return;
	if (recover_rip) {
		f->rip = recover_rip;
		f->rsp = recover_rsp;
		f->cs = SEL_CODE64;
		f->ss = SEL_DATA;
		f->rflags = 0x2;
		return;
	}
	printf("unexpected %s vector=0x%lx err=0x%lx rip=0x%lx cs=0x%lx cr2=0x%lx\n",
	       f->vector < 32 && names[f->vector] ? names[f->vector] : "int", f->vector,
	       f->error, f->rip, f->cs, last_trap.cr2);
	exit(3);
}

/* A kernel whose tests all run in kmain32() has no kmain. */
__attribute__((weak)) void kmain(void) {}

/* The default SYSCALL handler: 1 = add, 2 = read percpu.magic through GS. */
__attribute__((weak)) u64 syscall_dispatch(u64 nr, u64 a0, u64 a1)
{
	u64 magic;
	switch (nr) {
	case 1:
		return a0 + a1;
	case 2:
		__asm__ volatile("mov %0, gs:[16]" : "=r"(magic));
		return magic;
	default:
		return (u64)-1;
	}
}

__attribute__((weak)) u64 sysenter_dispatch(u64 nr, u64 a0) { return nr * 0x100 + a0; }

struct user_call {
	void (*fn)(void);
	u64 rflags;
	u32 eip;
};

static void user_trampoline(void *arg)
{
	struct user_call *c = arg;
	enter_user(c->fn, (u64)user_stack_top, c->rflags);
}

static void user32_trampoline(void *arg)
{
	struct user_call *c = arg;
	enter_user32(c->eip, (u32)(u64)user_stack_top, c->rflags);
}

/* INT 0x80 with RAX=0 from CPL 3 unwinds to the enclosing try_call (which returns 1). */
static int user_exit_hook(struct frame *f)
{
	if ((f->cs & 3) == 3 && f->rax == 0) {
		f->rip = recover_rip;
		f->rsp = recover_rsp;
		f->cs = SEL_CODE64;
		f->ss = SEL_DATA;
		f->rflags = 0x2;
		last_trap.vector = ~0ul; /* a clean exit, not a fault */
		return 1;
	}
	return 0;
}

int run_user(void (*fn)(void), u64 rflags)
{
	struct user_call c = {fn, rflags, 0};
	if (!hooks[VEC_SYSCALL])
		set_trap_hook(VEC_SYSCALL, user_exit_hook);
	return try_call(user_trampoline, &c);
}

int run_user32(u32 eip, u64 rflags)
{
	struct user_call c = {0, rflags, eip};
	if (!hooks[VEC_SYSCALL])
		set_trap_hook(VEC_SYSCALL, user_exit_hook);
	return try_call(user32_trampoline, &c);
}

/* A far CALL through a call gate lands here (CPL 0, 64-bit); it records its CS and returns. */
__asm__(".globl gate_target\n"
	"gate_target:\n"
	"  mov ax, cs\n"
	"  mov [rip + gate_target_cs], ax\n"
	"  mov [rip + gate_target_rsp], rsp\n"
	"  .byte 0x48, 0xCB\n" /* retfq */
	".data\n.globl gate_target_cs, gate_target_rsp\n"
	"gate_target_cs: .quad 0\ngate_target_rsp: .quad 0\n.text\n");

/* Used by the kernels that need the user-exit hook alongside their own INT 0x80 hook. */
int user_exit(struct frame *f) { return user_exit_hook(f); }
