/*
 * The test kernels' boot path and low-level entry points.
 *
 * _start is entered by a Multiboot v1 loader in 32-bit protected mode (EAX=0x2BADB002,
 * EBX=info, paging off; nothing else is trusted). It clears .bss, loads the library's
 * GDT and flat segments, initialises COM1, calls the kernel's kmain32() hook (weak; a
 * kernel's 32-bit tests go there), identity-maps the first 4 GiB with 2 MiB pages
 * (PML4 -> PDPT -> 4 PDs; U=1 and RW everywhere; the top GiB uncached for the APICs),
 * enables PAE, EFER.LME|NXE|SCE and paging, and far-jumps to 64-bit code, which calls
 * lib_init() and kmain() and exits with code 0.
 *
 * Invariants: the boot path prints nothing (each kernel's transcript is its own); the
 * IDT stub of vector v is at idt_stubs + 16*v; every trap pushes a struct frame (see
 * kernel.h) and calls trap_dispatch(frame), which may edit it before the IRETQ.
 */
#include "defs.h"

    .intel_syntax noprefix

/* ---------------------------------------------------------------- Multiboot header */
    .section .multiboot, "a"
    .balign 4
    .long 0x1BADB002
    .long 3
    .long -(0x1BADB002 + 3)

/* ---------------------------------------------------------------- 32-bit boot */
    .section .text32, "ax"
    .code32
    .globl _start
_start:
    cli
    cld
    mov esi, eax
    mov edi, offset __bss_start
    mov ecx, offset __bss_end
    sub ecx, edi
    shr ecx, 2
    xor eax, eax
    rep stosd
    mov [mb_magic], esi
    mov [mb_info], ebx
    mov esp, offset boot_stack_top
    lgdt [gdtr]
    .byte 0xEA                      /* jmp far SEL_CODE32:1f */
    .long 1f
    .word SEL_CODE32
1:  mov ax, SEL_DATA
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov fs, ax
    mov gs, ax
    call serial_init32
    call kmain32

    /* Identity map of 4 GiB: 2048 PDEs of 2 MiB (P|RW|US|PS), the last GiB PCD|PWT. */
    mov edi, offset boot_pd
    mov eax, 0x87
    mov ecx, 2048
2:  mov [edi], eax
    mov dword ptr [edi + 4], 0
    add eax, 0x200000
    add edi, 8
    loop 2b
    mov edi, offset boot_pd + 3 * 4096
    mov ecx, 512
3:  or dword ptr [edi], 0x18
    add edi, 8
    loop 3b
    mov eax, offset boot_pd + 7
    mov [boot_pdpt], eax
    add eax, 4096
    mov [boot_pdpt + 8], eax
    add eax, 4096
    mov [boot_pdpt + 16], eax
    add eax, 4096
    mov [boot_pdpt + 24], eax
    mov eax, offset boot_pdpt + 7
    mov [boot_pml4], eax

    mov eax, cr4
    or eax, CR4_PAE
    mov cr4, eax
    mov eax, offset boot_pml4
    mov cr3, eax
    mov ecx, MSR_EFER
    rdmsr
    or eax, EFER_LME | EFER_NXE | EFER_SCE
    wrmsr
    mov eax, cr0
    or eax, CR0_PG | CR0_WP | CR0_NE | CR0_PE
    mov cr0, eax
    .byte 0xEA                      /* jmp far SEL_CODE64:long_entry */
    .long long_entry
    .word SEL_CODE64

/* The default 32-bit hook does nothing. */
    .weak kmain32
kmain32:
    ret

/* COM1: 115200 8N1, FIFO on, interrupts off. */
    .globl serial_init32
serial_init32:
    mov dx, COM1 + 1
    xor al, al
    out dx, al
    mov dx, COM1 + 3
    mov al, 0x80
    out dx, al
    mov dx, COM1
    mov al, 1
    out dx, al
    mov dx, COM1 + 1
    xor al, al
    out dx, al
    mov dx, COM1 + 3
    mov al, 3
    out dx, al
    mov dx, COM1 + 2
    mov al, 0xC7
    out dx, al
    mov dx, COM1 + 4
    mov al, 3
    out dx, al
    ret

/* void putc32(int c) — cdecl; usable from 32-bit protected and compatibility mode. */
    .globl putc32
putc32:
    mov edx, COM1 + 5
1:  in al, dx
    test al, 0x20
    jz 1b
    mov eax, [esp + 4]
    mov edx, COM1
    out dx, al
    ret

/* void puts32(const char *s) */
    .globl puts32
puts32:
    push esi
    mov esi, [esp + 8]
1:  movzx eax, byte ptr [esi]
    test eax, eax
    jz 2f
    push eax
    call putc32
    add esp, 4
    inc esi
    jmp 1b
2:  pop esi
    ret

/* void puthex32(unsigned v) — eight hex digits */
    .globl puthex32
puthex32:
    push ebx
    push esi
    mov ebx, [esp + 12]
    mov esi, 8
1:  rol ebx, 4
    mov eax, ebx
    and eax, 0xF
    movzx eax, byte ptr [hexdigits + eax]
    push eax
    call putc32
    add esp, 4
    dec esi
    jnz 1b
    pop esi
    pop ebx
    ret

/* ---------------------------------------------------------------- 64-bit entry */
    .text
    .code64
long_entry:
    mov ax, SEL_DATA
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax                    /* FS and GS null: their bases come from the MSRs */
    mov fs, ax
    mov gs, ax
    lea rsp, [rip + stack_top]
    xor ebp, ebp
    call lib_init
    call kmain
    xor edi, edi
    call exit
    ud2

/* One 16-byte stub per vector: push a zero error code where the CPU pushes none. */
    .balign 16
    .globl idt_stubs
idt_stubs:
    .set vec, 0
    .rept 256
    .balign 16
    .if (vec == 8) || (vec == 10) || (vec == 11) || (vec == 12) || (vec == 13) || (vec == 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    push 0
    .endif
    push vec
    jmp trap_common
    .set vec, vec + 1
    .endr

trap_common:
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    cld
    mov rdi, rsp
    mov rbp, rsp
    and rsp, -16
    call trap_dispatch
    mov rsp, rbp
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
    add rsp, 16
    iretq

/*
 * int try_call(void (*fn)(void *), void *arg): calls fn(arg) and returns 0; if a trap
 * that no hook handles happens meanwhile (at any CPL), trap_dispatch records it and
 * resumes at try_landing on this stack at CPL 0, and try_call returns 1. Not reentrant.
 */
    .globl try_call
try_call:
    push rbx
    push rbp
    push r12
    push r13
    push r14
    push r15
    sub rsp, 8
    mov [rip + recover_rsp], rsp
    lea rax, [rip + try_landing]
    mov [rip + recover_rip], rax
    mov rax, rdi
    mov rdi, rsi
    call rax
    xor eax, eax
    jmp 1f
try_landing:
    mov ax, SEL_DATA
    mov ds, ax
    mov es, ax
    mov eax, 1
1:  mov qword ptr [rip + recover_rip], 0
    add rsp, 8
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    ret

/*
 * void enter_user(void (*fn)(void), u64 rsp, u64 rflags): IRETQ to fn at CPL 3 in 64-bit
 * mode on stack rsp; when fn returns, user_return asks the kernel (INT 0x80, RAX=0) to
 * unwind to the enclosing try_call. Call it only inside try_call.
 */
    .globl enter_user
enter_user:
    sub rsi, 8
    lea rax, [rip + user_return]
    mov [rsi], rax
    mov ax, SEL_UDATA + 3
    mov ds, ax
    mov es, ax
    push SEL_UDATA + 3
    push rsi
    push rdx
    push SEL_UCODE64 + 3
    push rdi
    iretq

/* void enter_user32(u32 eip, u32 esp, u64 rflags): IRETQ to compatibility mode at CPL 3. */
    .globl enter_user32
enter_user32:
    mov ax, SEL_UDATA + 3
    mov ds, ax
    mov es, ax
    push SEL_UDATA + 3
    push rsi
    push rdx
    push SEL_UCODE32 + 3
    push rdi
    iretq

    .globl user_return
user_return:
    xor eax, eax
    int VEC_SYSCALL
    ud2

/*
 * SYSCALL entry (LSTAR): SWAPGS to the per-CPU block (KERNEL_GS_BASE -> struct percpu:
 * +0 kernel stack top, +8 saved user RSP), call syscall_dispatch(rax, rdi, rsi) and
 * SYSRETQ with its result in RAX. RCX and R11 (user RIP and RFLAGS) are preserved.
 */
    .globl syscall_entry
syscall_entry:
    swapgs
    mov gs:[8], rsp
    mov rsp, gs:[0]
    push rcx
    push r11
    mov rdx, rsi
    mov rsi, rdi
    mov rdi, rax
    call syscall_dispatch
    pop r11
    pop rcx
    mov rsp, gs:[8]
    swapgs
    .byte 0x48, 0x0F, 0x07          /* sysretq */

/*
 * SYSENTER entry (SYSENTER_EIP, stack SYSENTER_ESP): call sysenter_dispatch(rax, rdi)
 * and return with 64-bit SYSEXIT to RIP=RDX, RSP=RCX (the caller put them there).
 */
    .globl sysenter_entry
sysenter_entry:
    push rdx
    push rcx
    mov rsi, rdi
    mov rdi, rax
    call sysenter_dispatch
    pop rcx
    pop rdx
    .byte 0x48, 0x0F, 0x35          /* sysexitq */

/* ---------------------------------------------------------------- data */
    .data
    .balign 16
    .globl gdt
gdt:
    .quad 0
    .quad 0x00CF9B000000FFFF        /* 0x08 code32 */
    .quad 0x00AF9B000000FFFF        /* 0x10 code64 */
    .quad 0x00CF93000000FFFF        /* 0x18 data */
    .quad 0x00CFFB000000FFFF        /* 0x20 user code32 */
    .quad 0x00CFF3000000FFFF        /* 0x28 user data */
    .quad 0x00AFFB000000FFFF        /* 0x30 user code64 */
    .quad 0x00CFF3000000FFFF        /* 0x38 user data (SYSEXIT64 SS) */
    .quad 0, 0                      /* 0x40 TSS: lib_init fills it */
    .quad 0x00CF93300000FFFF        /* 0x50 data, base 0x300000 */
    .quad 0x00CF13000000FFFF        /* 0x58 data, not present */
    .quad 0, 0                      /* 0x60 call gate DPL0: lib_init */
    .quad 0, 0                      /* 0x70 LDT: filled by the kernel that uses it */
    .quad 0, 0                      /* 0x80 call gate DPL3: lib_init */
    .quad 0x0000930000000FFF        /* 0x90 data, byte-granular limit 0xFFF */
gdt_end:
    .globl gdtr
gdtr:
    .word gdt_end - gdt - 1
    .quad gdt
    .globl hexdigits
hexdigits:
    .ascii "0123456789abcdef"

    .bss
    .balign 4096
    .globl boot_pml4, boot_pdpt, boot_pd
boot_pml4: .skip 4096
boot_pdpt: .skip 4096
boot_pd:   .skip 4 * 4096
    .globl mb_magic, mb_info, recover_rip, recover_rsp
mb_magic: .skip 8
mb_info: .skip 8
recover_rip: .skip 8
recover_rsp: .skip 8
    .balign 16
boot_stack: .skip 16384
    .globl boot_stack_top
boot_stack_top:
    .balign 16
    .skip 65536
    .globl stack_top
stack_top:

    .section .note.GNU-stack, "", @progbits
