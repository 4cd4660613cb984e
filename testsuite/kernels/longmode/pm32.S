/*
 * longmode, 32-bit part: kmain32() runs in 32-bit protected mode before the library
 * switches to long mode, and exercises 32-bit integer code with 16- and 32-bit operand
 * sizes; compat_entry is the compatibility-mode leg of the 64 -> 32 -> 64 round trip.
 * Every value printed is computed, and the expected output pins it.
 */
#include "defs.h"
    .intel_syntax noprefix
#include "report32.h"

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

    mov eax, cr0
    and eax, CR0_PG | CR0_PE
    REPORT "pm32: cr0 pg|pe=", eax

    /* 32-bit arithmetic under LOOP */
    xor eax, eax
    mov ecx, 1000
1:  imul eax, eax, 31
    add eax, ecx
    mov edx, ecx
    shl edx, 7
    xor eax, edx
    loop 1b
    REPORT "pm32: loop32 sum=", eax

    /* 16-bit operand size (0x66 prefixes); the upper halves must survive */
    mov eax, 0xABCD1234
    mov ebx, 0x87650000
    mov ecx, 0x55550000 + 500
2:  add ax, cx
    rol ax, 3
    xor ax, 0x5A5A
    adc bx, ax
    movzx edx, cx
    imul dx, dx, 7
    sub bx, dx
    dec cx
    jnz 2b
    REPORT "pm32: op16 eax=", eax
    REPORT "pm32: op16 ebx=", ebx
    REPORT "pm32: op16 ecx=", ecx

    /* PUSHAD/POPAD */
    mov eax, 0x11111111
    mov ebx, 0x22222222
    mov ecx, 0x33333333
    mov edx, 0x44444444
    mov esi, 0x55555555
    mov edi, 0x66666666
    mov ebp, 0x77777777
    mov [saved_esp], esp
    pushad
    mov eax, [esp]
    add eax, [esp + 4]
    add eax, [esp + 8]
    add eax, [esp + 16]
    add eax, [esp + 20]
    add eax, [esp + 24]
    add eax, [esp + 28]
    mov [pushad_sum], eax
    mov eax, [esp + 12]
    sub eax, [saved_esp]
    mov [pushad_espslot], eax       /* the pushed ESP is the value before PUSHAD: 0 */
    mov dword ptr [esp + 28], 0x99999999
    popad
    mov [esp_after], esp
    mov esi, [pushad_sum]
    REPORT "pm32: pushad sum=", esi
    mov esi, [pushad_espslot]
    REPORT "pm32: pushad esp slot-esp=", esi
    REPORT "pm32: popad eax=", eax
    REPORT "pm32: popad edi=", edi
    mov esi, [esp_after]
    sub esi, [saved_esp]
    REPORT "pm32: popad esp delta=", esi

    /* PUSHA/POPA with the 0x66 prefix: eight 16-bit pushes */
    mov eax, 0xAAAA0101
    mov ecx, 0xBBBB0202
    mov edx, 0xCCCC0303
    mov ebx, 0xDDDD0404
    mov ebp, 0xEEEE0606
    mov esi, 0xFFFF0707
    mov edi, 0x12340808
    .byte 0x66, 0x60                /* pushaw */
    mov eax, [saved_esp]
    sub eax, esp
    REPORT "pm32: pushaw bytes=", eax
    movzx eax, word ptr [esp]       /* DI */
    add ax, [esp + 2]               /* SI */
    add ax, [esp + 4]               /* BP */
    add ax, [esp + 10]              /* DX */
    add ax, [esp + 8]               /* BX */
    add ax, [esp + 12]              /* CX */
    add ax, [esp + 14]              /* AX */
    mov word ptr [esp + 14], 0x4242
    mov word ptr [esp], 0x4343
    mov [pushad_sum], eax
    .byte 0x66, 0x61                /* popaw */
    mov [esp_after], esp
    mov esi, [pushad_sum]
    REPORT "pm32: pushaw sum=", esi
    REPORT "pm32: popaw eax=", eax
    REPORT "pm32: popaw edi=", edi
    mov esi, [esp_after]
    sub esi, [saved_esp]
    REPORT "pm32: popaw esp delta=", esi

    /* FS segment override with a descriptor base of 0x300000 */
    mov dword ptr [FSDATA_BASE + 0x10], 0xC0FFEE11
    mov ax, SEL_FSDATA
    mov fs, ax
    mov ebx, 0x10
    mov eax, fs:[ebx]
    REPORT "pm32: fs:[0x10]=", eax
    mov dword ptr fs:[ebx + 4], 0xFEEDF00D
    mov eax, [FSDATA_BASE + 0x14]
    REPORT "pm32: ds:[0x300014]=", eax
    movzx eax, word ptr fs:[ebx + 2]
    REPORT "pm32: fs:[0x12] word=", eax
    mov ax, SEL_DATA
    mov fs, ax

    /* LOOP, LOOPE, LOOPNE, JECXZ */
    xor edx, edx
    xor ecx, ecx
    jecxz 3f
    inc edx
3:  mov ecx, 5
4:  add edx, ecx
    loop 4b
    jecxz 5f
    add edx, 0x100
5:  mov ecx, 3
6:  add edx, 0x10
    loope 6b
    mov esi, ecx
    mov ecx, 4
7:  add edx, 0x1000
    loopne 7b
    REPORT "pm32: loops edx=", edx
    REPORT "pm32: loope left ecx=", esi

    /* String instructions with ESI/EDI, both directions */
    mov esi, offset src_bytes
    mov edi, offset str_buf
    mov ecx, 16
    rep movsd
    mov al, 0x5A
    mov ecx, 16
    rep stosb
    mov esi, offset str_buf
    mov edi, offset src_bytes
    mov ecx, 64
    repe cmpsb
    REPORT "pm32: repe cmpsb equal ecx=", ecx
    mov byte ptr [str_buf + 37], 0
    mov esi, offset str_buf
    mov edi, offset src_bytes
    mov ecx, 64
    repe cmpsb
    REPORT "pm32: repe cmpsb mismatch ecx=", ecx
    mov edi, offset str_buf
    mov al, 'q'
    mov ecx, 64
    repne scasb
    sub edi, offset str_buf
    REPORT "pm32: repne scasb 'q' edi-buf=", edi
    std
    mov esi, offset str_buf + 79
    mov edi, offset str_buf + 199
    mov ecx, 80
    rep movsb
    cld
    mov esi, offset str_buf + 120
    mov ecx, 20
    xor edx, edx
8:  lodsd
    add edx, eax
    rol edx, 5
    loop 8b
    REPORT "pm32: std movsb+lodsd sum=", edx

    /* XLAT (AL indexes a table at EBX; the rest of EAX stays) and ARPL (register and
       memory destinations, ZF) */
    mov ebx, offset src_bytes
    mov eax, 0x12345604
    xlatb
    REPORT "pm32: xlat eax=", eax
    mov eax, 0xABCD00FF
    mov al, 10
    .byte 0x3E                      /* ds: prefix, same segment */
    xlatb
    REPORT "pm32: xlat ds eax=", eax
    mov eax, 0x77771231             /* RPL 1 */
    mov ecx, 0x00000003             /* RPL 3 */
    arpl ax, cx
    setz dl
    movzx edx, dl
    REPORT "pm32: arpl raise eax=", eax
    REPORT "pm32: arpl raise zf=", edx
    xor ecx, ecx
    arpl ax, cx
    setz dl
    movzx edx, dl
    REPORT "pm32: arpl keep eax=", eax
    REPORT "pm32: arpl keep zf=", edx
    mov word ptr [arpl_mem], 0x0010
    mov ecx, 2
    arpl [arpl_mem], cx
    setz dl
    movzx edx, dl
    movzx eax, word ptr [arpl_mem]
    REPORT "pm32: arpl mem=", eax
    REPORT "pm32: arpl mem zf=", edx

    pop ebp
    pop edi
    pop esi
    pop ebx
    ret

/* Compatibility mode (CS=0x08 with EFER.LMA=1): entered by RETFQ from 64-bit code. */
    .globl compat_entry
compat_entry:
    push offset s_compat
    call puts32
    add esp, 4
    mov eax, 5
    .byte 0x48                      /* DEC EAX here, a REX prefix in 64-bit mode */
    .byte 0x48
    REPORT "compat: dec eax via 0x48 eax=", eax
    mov ecx, esp
    push eax
    sub ecx, esp
    pop eax
    REPORT "compat: push size=", ecx
    mov ax, cs
    movzx eax, ax
    REPORT "compat: cs=", eax
    .byte 0xEA                      /* jmp far SEL_CODE64:compat_back */
    .long compat_back
    .word SEL_CODE64

    .section .rodata
s_hello:
    .asciz "longmode: 32-bit protected mode\n"
s_compat:
    .asciz "compat: in compatibility mode\n"
src_bytes:
    .ascii "The quick brown fox jumps over the lazy dog; pack my box with q."

    .bss
saved_esp: .skip 4
pushad_sum: .skip 4
esp_after: .skip 4
pushad_espslot: .skip 4
str_buf: .skip 256
arpl_mem: .skip 4

    .section .note.GNU-stack, "", @progbits
