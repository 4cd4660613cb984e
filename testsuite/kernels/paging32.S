/*
 * paging32: paging in 32-bit protected mode, run from kmain32() before the library's
 * switch to long mode (paging is turned off again at the end).
 *
 * 1. 32-bit paging with CR4.PSE: a 4 MiB identity page for the kernel, a page table
 *    remapping 0x400000 -> 0x600000 with 4 KiB pages (one read-only, one not present),
 *    a 4 MiB alias of physical 0 at 0x800000: reads, #PF error codes and CR2, A/D bits of
 *    a PTE and of a 4 MiB PDE, INVLPG after a PTE change.
 * 2. PAE paging (PDPT -> PD -> PT, 2 MiB identity pages) with EFER.NXE: a read through a
 *    4 KiB page, and #PF err=0x11 on a fetch from an NX page.
 * A minimal 32-bit IDT holds only the #PF gate; its handler records CR2 and the error
 * code and resumes at pf_resume with ESP from pf_esp.
 */
#include "defs.h"
    .intel_syntax noprefix
#include "report32.h"

/* GATE32 vector, handler: a 32-bit interrupt gate in idt32 (clobbers EAX). */
.macro GATE32 vector, handler
    mov eax, offset \handler
    mov [idt32 + \vector * 8], ax
    mov word ptr [idt32 + \vector * 8 + 2], SEL_CODE32
    mov word ptr [idt32 + \vector * 8 + 4], 0x8E00
    shr eax, 16
    mov [idt32 + \vector * 8 + 6], ax
.endm

/* PROBE insn: run insn expecting a #PF; the handler resumes after it. */
.macro PROBE insn:vararg
    mov [pf_esp], esp
    mov dword ptr [pf_resume], offset 8f
    \insn
8:  mov esp, [pf_esp]
.endm

    .section .text32, "ax"
    .code32
    .globl kmain32
kmain32:
    push ebx
    push esi
    push edi
    push ebp
    push offset s_hello
    call puts32
    add esp, 4

    /* The #PF gate: 32-bit interrupt gate to pf32 in the 32-bit code segment. */
    GATE32 14, pf32
    lidt [idtr32]

    mov dword ptr [0x600000], 0xCAFE0001
    mov dword ptr [0x601000], 0xCAFE0002

    /* ------------------------------------------------ 32-bit paging, PSE */
    mov dword ptr [pd32], 0x00000083            /* 0..4 MiB: 4 MiB page */
    mov eax, offset pt32 + 3
    mov [pd32 + 4], eax                         /* 4..8 MiB: page table */
    mov dword ptr [pd32 + 8], 0x00000083        /* 8..12 MiB: alias of 0..4 MiB */
    mov dword ptr [pt32], 0x600003              /* 0x400000 -> 0x600000 RW */
    mov dword ptr [pt32 + 4], 0x601001          /* 0x401000 -> 0x601000 RO */
    mov eax, cr4
    or eax, CR4_PSE
    mov cr4, eax
    mov eax, offset pd32
    mov cr3, eax
    mov eax, cr0
    or eax, CR0_PG | CR0_WP
    mov cr0, eax
    push offset s_on32
    call puts32
    add esp, 4

    mov eax, [0x400000]
    REPORT "pg32: read 0x400000 (-> 0x600000)=", eax
    mov eax, [0x401000]
    REPORT "pg32: read 0x401000 (read-only)=", eax
    mov eax, [0x800000 + pg32_magic]
    REPORT "pg32: read through the 4 MiB alias=", eax
    mov eax, [pt32]
    and eax, 0x60
    REPORT "pg32: pte a|d after read=", eax
    mov dword ptr [0x400004], 0x12345678
    mov eax, [pt32]
    and eax, 0x60
    REPORT "pg32: pte a|d after write=", eax
    mov eax, [pd32 + 8]
    and eax, 0x60
    REPORT "pg32: 4 MiB pde a|d after read=", eax
    mov dword ptr [0x800000 + pg32_scratch], 1
    mov eax, [pd32 + 8]
    and eax, 0x60
    REPORT "pg32: 4 MiB pde a|d after write=", eax

    PROBE mov dword ptr [0x401000], 1
    mov eax, [pf_count]
    REPORT "pg32: write read-only, WP=1: #PF count=", eax
    mov eax, [pf_err]
    REPORT "pg32:   err=", eax
    mov eax, [pf_cr2]
    REPORT "pg32:   cr2=", eax
    PROBE mov eax, [0x402000]
    mov eax, [pf_err]
    REPORT "pg32: read not-present: err=", eax
    mov eax, [pf_cr2]
    REPORT "pg32:   cr2=", eax

    mov dword ptr [pt32], 0x601003
    invlpg [0x400000]
    mov eax, [0x400000]
    REPORT "pg32: remapped to 0x601000, invlpg, read=", eax

    mov eax, cr0
    and eax, ~CR0_PG
    mov cr0, eax
    mov eax, cr4
    and eax, ~CR4_PSE
    mov cr4, eax

    /* ------------------------------------------------ PAE paging in 32-bit mode */
    mov byte ptr [0x602000], 0xC3               /* RET, in a page mapped NX below */
    mov eax, offset pae_pd + 1
    mov [pae_pdpt], eax                         /* PDPTEs: only P (RW/US are reserved) */
    mov dword ptr [pae_pd], 0x00000083          /* 0..2 MiB */
    mov dword ptr [pae_pd + 8], 0x00200083      /* 2..4 MiB */
    mov eax, offset pae_pt + 3
    mov [pae_pd + 16], eax                      /* 4..6 MiB: page table */
    mov dword ptr [pae_pt], 0x601003            /* 0x400000 -> 0x601000 */
    mov dword ptr [pae_pt + 8], 0x602003        /* 0x401000 -> 0x602000, NX */
    mov dword ptr [pae_pt + 12], 0x80000000
    mov ecx, MSR_EFER
    rdmsr
    or eax, EFER_NXE
    wrmsr
    mov eax, cr4
    or eax, CR4_PAE
    mov cr4, eax
    mov eax, offset pae_pdpt
    mov cr3, eax
    mov eax, cr0
    or eax, CR0_PG
    mov cr0, eax
    push offset s_onpae
    call puts32
    add esp, 4

    mov eax, [0x400000]
    REPORT "pae32: read 0x400000 (-> 0x601000)=", eax
    mov eax, [pae_pt]
    and eax, 0x60
    REPORT "pae32: pte a|d after read=", eax
    PROBE call 0x401000
    mov eax, [pf_err]
    REPORT "pae32: fetch from NX page: err=", eax
    mov eax, [pf_cr2]
    REPORT "pae32:   cr2=", eax
    and dword ptr [pae_pt + 12], 0
    invlpg [0x401000]
    PROBE call 0x401000
    mov eax, [pf_count]
    REPORT "pae32: NX cleared, invlpg, call returned; #PF count=", eax

    mov eax, cr0
    and eax, ~CR0_PG
    mov cr0, eax
    mov eax, cr4
    and eax, ~CR4_PAE
    mov cr4, eax
    push offset s_off
    call puts32
    add esp, 4

    /* BOUND (32- and 16-bit operands): in range, below, above; #BR resumes after it. */
    GATE32 5, br32
    mov dword ptr [br_bounds], -5
    mov dword ptr [br_bounds + 4], 10
    mov dword ptr [br_bounds16], 0x00200010        /* words 0x10 .. 0x20 */
    mov ecx, 3
    PROBE bound ecx, [br_bounds]
    mov eax, [br_count]
    REPORT "bound: 3 in [-5, 10]: #BR count=", eax
    mov ecx, -6
    PROBE bound ecx, [br_bounds]
    mov ecx, 10
    PROBE bound ecx, [br_bounds]
    mov ecx, 11
    PROBE bound ecx, [br_bounds]
    mov eax, [br_count]
    REPORT "bound: -6, 10, 11: #BR count=", eax
    mov ecx, 0xFFFF0020
    PROBE bound cx, [br_bounds16]
    mov ecx, 0x0021
    PROBE bound cx, [br_bounds16]
    mov eax, [br_count]
    REPORT "bound: 16-bit 0x20, 0x21: #BR count=", eax
    pop ebp
    pop edi
    pop esi
    pop ebx
    ret

/* #BR (no error code): count, then resume at pf_resume (the PROBE's label). */
br32:
    inc dword ptr [br_count]
    push eax
    mov eax, [pf_resume]
    mov [esp + 4], eax
    pop eax
    iretd

/* #PF: record, then resume at pf_resume on the stack saved in pf_esp. */
pf32:
    push eax
    mov eax, cr2
    mov [pf_cr2], eax
    mov eax, [esp + 4]
    mov [pf_err], eax
    inc dword ptr [pf_count]
    mov eax, [pf_resume]
    mov [esp + 8], eax
    pop eax
    add esp, 4
    iretd

    .section .rodata
s_hello: .asciz "paging32: start\n"
s_on32: .asciz "pg32: 32-bit paging with PSE on\n"
s_onpae: .asciz "pae32: PAE paging on\n"
s_off: .asciz "paging32: paging off, on to long mode\n"

    .data
    .balign 8
idtr32:
    .word 256 * 8 - 1
    .long idt32
pg32_magic: .long 0x4D414749
pg32_scratch: .long 0

    .bss
    .balign 4096
pd32: .skip 4096
pt32: .skip 4096
pae_pd: .skip 4096
pae_pt: .skip 4096
idt32: .skip 256 * 8
    .balign 32
pae_pdpt: .skip 32
pf_cr2: .skip 4
pf_err: .skip 4
pf_count: .skip 4
br_count: .skip 4
br_bounds: .skip 8
br_bounds16: .skip 4
pf_resume: .skip 4
pf_esp: .skip 4

    .section .note.GNU-stack, "", @progbits
