/*
 * realmode: far transfers in real mode, run from kmain32() before the library's switch to
 * long mode. Oracle: QEMU TCG (and the SDM: in real mode a far transfer loads CS with the
 * selector and its base with selector * 16; the target is base + offset).
 *
 * The 16-bit code below (rm_start..rm_end) is copied to RM_BASE (real mode reaches only
 * the first MiB) and entered through a 16-bit protected-mode code segment based there,
 * which clears CR0.PE and far-jumps to RM_SEG:offset. Each target sits in the blob, but is
 * reached through another segment (RM_SEG - 0x100, etc.) with a correspondingly larger
 * offset, so a transfer that used the offset alone, or the old CS base, lands in zeroed
 * memory. Each target records the CS it runs with and what the call pushed; the caller
 * records the CS and SP it came back with. Back in protected mode, the records are printed.
 *
 * Transfers: CALL FAR m16:16 [bx], CALL FAR m16:32 (0x66) [ebx] (0x67), JMP FAR m16:16,
 * JMP FAR m16:32, RETF and RETF imm16 (16-bit), RETFD (0x66), IRET, direct JMP FAR back.
 */
#include "defs.h"
    .intel_syntax noprefix
#include "report32.h"

#define RM_BASE 0x7000
#define RM_SEG (RM_BASE >> 4)
#define RM_STACK 0x6ff0
/* An offset of label in the blob, as seen from RM_SEG. */
#define OFF(label) ((label) - rm_start)

    .section .text32, "ax"
    .code32
    .globl kmain32
kmain32:
    pushad
    mov [saved_esp], esp
    /* Copy the real-mode blob below 1 MiB. */
    mov esi, offset rm_start
    mov edi, RM_BASE
    mov ecx, offset rm_end
    sub ecx, esi
    cld
    rep movsb

    lgdt [rm_gdtr]
    .byte 0xEA                      /* jmp far 0x08:1f (flat 32-bit code, own GDT) */
    .long 1f
    .word 0x08
1:  mov ax, 0x20                    /* 16-bit data segments: limit 0xFFFF, base 0 */
    mov ds, ax
    mov es, ax
    mov fs, ax
    mov gs, ax
    mov ss, ax
    .byte 0xEA                      /* jmp far 0x10:OFF(pm16): 16-bit code based at RM_BASE */
    .long OFF(pm16)
    .word 0x10

    /* Back from real mode (jmp far 0x08:pm_back from 16-bit code, with 0x66). */
pm_back:
    mov ax, 0x18
    mov ds, ax
    mov es, ax
    mov fs, ax
    mov gs, ax
    mov ss, ax
    mov esp, [saved_esp]
    lgdt [gdtr]                     /* the library's GDT: same 0x08 and 0x18 selectors */
    .byte 0xEA
    .long 2f
    .word SEL_CODE32
2:  push offset s_hello
    call puts32
    add esp, 4
    mov esi, RM_BASE + OFF(rec)
    REPORT "call far m16:16 [bx]: target cs=", [esi + 0]
    REPORT "call far m16:16 [bx]: pushed ip=", [esi + 4]
    REPORT "call far m16:16 [bx]: pushed cs=", [esi + 8]
    REPORT "call far m16:16 [bx]: back with cs=", [esi + 12]
    REPORT "call far m16:16 [bx]: sp moved by ", [esi + 16]
    REPORT "call far m16:32 [ebx]: target cs=", [esi + 20]
    REPORT "call far m16:32 [ebx]: pushed eip=", [esi + 24]
    REPORT "call far m16:32 [ebx]: pushed cs=", [esi + 28]
    REPORT "call far m16:32 [ebx]: back with cs=", [esi + 32]
    REPORT "call far m16:32 [ebx]: sp moved by ", [esi + 36]
    REPORT "jmp far m16:16: target cs=", [esi + 40]
    REPORT "jmp far m16:32: target cs=", [esi + 44]
    REPORT "jmp far back: cs=", [esi + 48]
    REPORT "retf 4: sp moved by ", [esi + 52]
    REPORT "iret: target cs=", [esi + 56]
    REPORT "iret: flags after=", [esi + 60]
    REPORT "real mode cr0.pe=", [esi + 64]
    mov ax, cs
    movzx eax, ax
    REPORT "back in protected mode: cs=", eax
    mov esp, [saved_esp]
    popad
    ret

/* --------------------------------------------------------------- the real-mode blob */
    .balign 16
rm_start:
    .code16
pm16:
    /* 16-bit protected mode: clear PE, then reload CS with a real-mode segment. */
    mov eax, cr0
    and eax, ~CR0_PE
    mov cr0, eax
    .byte 0xEA
    .word OFF(rm_entry)
    .word RM_SEG
rm_entry:
    mov ax, RM_SEG
    mov ds, ax
    mov es, ax
    xor ax, ax
    mov ss, ax
    mov sp, RM_STACK
    mov eax, cr0
    and eax, CR0_PE
    mov dword ptr [OFF(rec) + 64], eax

    /* CALL FAR m16:16 through [bx]: target in segment RM_SEG - 0x10. */
    mov bx, OFF(ptr1616)
    mov dx, sp
    .byte 0xFF, 0x1F                /* call far word ptr [bx] */
    mov word ptr [OFF(rec) + 12], cs
    sub dx, sp
    movsx edx, dx
    mov dword ptr [OFF(rec) + 16], edx

    /* CALL FAR m16:32 through [ebx] (0x66 0x67): target in segment RM_SEG - 0x20. */
    mov ebx, OFF(ptr1632)
    mov dx, sp
    .byte 0x66, 0x67, 0xFF, 0x1B    /* call far dword ptr [ebx] */
    mov word ptr [OFF(rec) + 32], cs
    sub dx, sp
    movsx edx, dx
    mov dword ptr [OFF(rec) + 36], edx

    /* JMP FAR m16:16 and m16:32: targets jump back directly. */
    .byte 0xFF, 0x2E                /* jmp far word ptr [jptr1616] */
    .word OFF(jptr1616)
jback1:
    .byte 0x66, 0xFF, 0x2E          /* jmp far dword ptr [jptr1632] */
    .word OFF(jptr1632)
jback2:
    mov word ptr [OFF(rec) + 48], cs

    /* RETF imm16: a 16-bit far return that also releases 4 bytes of arguments. */
    mov dx, sp
    push 0x1111
    push 0x2222
    push cs
    push OFF(retf_back)
    retf 4
retf_back:
    sub dx, sp
    movsx edx, dx
    mov dword ptr [OFF(rec) + 52], edx

    /* IRET to segment RM_SEG - 0x40 with a FLAGS image that sets CF. */
    push 0x0003
    push RM_SEG - 0x40
    push OFF(iret_target) + 0x400
    iret
iret_back:
    pushf
    pop ax
    movzx eax, ax
    and eax, 0x0CD5                 /* OF DF IF TF SF ZF AF PF CF */
    mov dword ptr [OFF(rec) + 60], eax

    /* Back to protected mode. */
    mov eax, cr0
    or eax, CR0_PE
    mov cr0, eax
    .byte 0x66, 0xEA                /* jmp far 0x08:pm_back (32-bit offset) */
    .long pm_back
    .word 0x08

/* Reached as (RM_SEG - 0x10):(OFF + 0x100). */
call16_target:
    mov word ptr [OFF(rec) + 0], cs
    mov bp, sp
    movzx eax, word ptr [bp]
    mov dword ptr [OFF(rec) + 4], eax
    movzx eax, word ptr [bp + 2]
    mov dword ptr [OFF(rec) + 8], eax
    retf

/* Reached as (RM_SEG - 0x20):(OFF + 0x200). */
call32_target:
    mov word ptr [OFF(rec) + 20], cs
    mov bp, sp
    mov eax, [bp]
    mov dword ptr [OFF(rec) + 24], eax
    movzx eax, word ptr [bp + 4]    /* the upper half of the CS slot is undefined */
    mov dword ptr [OFF(rec) + 28], eax
    .byte 0x66
    retf

/* Reached as (RM_SEG - 0x30):(OFF + 0x300) and (RM_SEG - 0x50):(OFF + 0x500). */
jmp16_target:
    mov word ptr [OFF(rec) + 40], cs
    .byte 0xEA
    .word OFF(jback1)
    .word RM_SEG
jmp32_target:
    mov word ptr [OFF(rec) + 44], cs
    .byte 0xEA
    .word OFF(jback2)
    .word RM_SEG

/* Reached as (RM_SEG - 0x40):(OFF + 0x400). */
iret_target:
    mov word ptr [OFF(rec) + 56], cs
    .byte 0xEA
    .word OFF(iret_back)
    .word RM_SEG

    .balign 4
ptr1616:
    .word OFF(call16_target) + 0x100
    .word RM_SEG - 0x10
ptr1632:
    .long OFF(call32_target) + 0x200
    .word RM_SEG - 0x20
jptr1616:
    .word OFF(jmp16_target) + 0x300
    .word RM_SEG - 0x30
jptr1632:
    .long OFF(jmp32_target) + 0x500
    .word RM_SEG - 0x50
    .balign 4
rec:
    .fill 72, 1, 0
rm_end:
    .code32

    .section .rodata
s_hello:
    .asciz "realmode: far CALL/JMP/RET/IRET in real mode\n"
    .balign 8
rm_gdt:
    .quad 0
    .quad 0x00CF9B000000FFFF        /* 0x08 code32 flat */
    .quad 0x00009B007000FFFF        /* 0x10 code16, base RM_BASE, limit 0xFFFF */
    .quad 0x00CF93000000FFFF        /* 0x18 data32 flat */
    .quad 0x000093000000FFFF        /* 0x20 data16, base 0, limit 0xFFFF */
rm_gdt_end:
rm_gdtr:
    .word rm_gdt_end - rm_gdt - 1
    .long rm_gdt

    .section .data
    .balign 4
saved_esp:
    .long 0
