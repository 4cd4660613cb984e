/*
 * popek's embedded demo guest (GNU as, AT&T syntax; assembled by runtime/build.rs without
 * the C preprocessor).
 *
 * Entered in 64-bit mode at CPL 0 with flat identity-mapped RAM, interrupts off and no
 * usable stack. It prints a banner, the CPU vendor from CPUID, the primes below 1000 (by
 * trial division, ten per line), their count and a checksum (c = c * 31 + p, mod 2^32) on
 * COM1, polling the line-status register before each byte, then writes 0 to the
 * isa-debug-exit port (popek exits with status 1) and halts should that return.
 */
    .equ COM1_DATA, 0x3f8
    .equ COM1_LSR, 0x3fd
    .equ LSR_THRE, 0x20
    .equ DEBUG_EXIT, 0xf4
    .equ LIMIT, 1000

    .section .text.start, "ax", @progbits
    .globl _start
    .type _start, @function
_start:
    lea stack_top(%rip), %rsp
    lea banner(%rip), %rsi
    call print_str

    /* CPUID leaf 0: the vendor string is EBX, EDX, ECX. */
    xor %eax, %eax
    xor %ecx, %ecx
    cpuid
    lea vendor(%rip), %rdi
    mov %ebx, (%rdi)
    mov %edx, 4(%rdi)
    mov %ecx, 8(%rdi)
    movb $0, 12(%rdi)
    lea vendor_msg(%rip), %rsi
    call print_str
    lea vendor(%rip), %rsi
    call print_str
    mov $'\n', %al
    call putc

    lea primes_msg(%rip), %rsi
    call print_str
    mov $2, %ebx                /* candidate */
    xor %r12d, %r12d            /* primes found */
    xor %r13d, %r13d            /* checksum */
next_candidate:
    mov $2, %ecx                /* divisor */
try_divisor:
    mov %ecx, %eax
    mul %ecx                    /* edx:eax = divisor^2 */
    cmp %ebx, %eax
    ja is_prime
    mov %ebx, %eax
    xor %edx, %edx
    div %ecx
    test %edx, %edx
    jz not_prime
    inc %ecx
    jmp try_divisor
is_prime:
    inc %r12d
    imul $31, %r13d, %r13d
    add %ebx, %r13d
    /* Separator before every prime but the first: a newline after each ten. */
    cmp $1, %r12d
    je 2f
    lea -1(%r12), %eax
    xor %edx, %edx
    mov $10, %ecx
    div %ecx
    test %edx, %edx
    mov $' ', %al
    jnz 1f
    mov $'\n', %al
1:  call putc
2:  mov %ebx, %eax
    call print_dec
not_prime:
    inc %ebx
    cmp $LIMIT, %ebx
    jb next_candidate
    mov $'\n', %al
    call putc

    lea count_msg(%rip), %rsi
    call print_str
    mov %r12d, %eax
    call print_dec
    lea checksum_msg(%rip), %rsi
    call print_str
    mov %r13d, %eax
    call print_hex32
    mov $'\n', %al
    call putc
    lea bye_msg(%rip), %rsi
    call print_str

    xor %eax, %eax
    outl %eax, $DEBUG_EXIT
halt:
    cli
    hlt
    jmp halt
    .size _start, . - _start

/* putc: write AL to COM1 once the transmitter is empty. Preserves all registers. */
putc:
    push %rdx
    push %rax
    mov $COM1_LSR, %dx
1:  in %dx, %al
    test $LSR_THRE, %al
    jz 1b
    pop %rax
    mov $COM1_DATA, %dx
    out %al, %dx
    pop %rdx
    ret

/* print_str: write the NUL-terminated string at RSI. Clobbers RSI. */
print_str:
    push %rax
1:  movzbl (%rsi), %eax
    test %al, %al
    jz 2f
    call putc
    inc %rsi
    jmp 1b
2:  pop %rax
    ret

/* print_dec: write EAX in decimal. Preserves all registers. */
print_dec:
    push %rax
    push %rcx
    push %rdx
    push %rdi
    lea numbuf_end(%rip), %rdi
    mov $10, %ecx
1:  xor %edx, %edx
    div %ecx
    add $'0', %dl
    dec %rdi
    mov %dl, (%rdi)
    test %eax, %eax
    jnz 1b
    lea numbuf_end(%rip), %rdx
2:  mov (%rdi), %al
    call putc
    inc %rdi
    cmp %rdx, %rdi
    jb 2b
    pop %rdi
    pop %rdx
    pop %rcx
    pop %rax
    ret

/* print_hex32: write EAX as 0x and eight hex digits. Preserves all registers. */
print_hex32:
    push %rax
    push %rbx
    push %rcx
    push %rdx
    mov %eax, %edx
    mov $'0', %al
    call putc
    mov $'x', %al
    call putc
    lea hexdigits(%rip), %rbx
    mov $8, %ecx
1:  rol $4, %edx
    mov %edx, %eax
    and $0xf, %eax
    mov (%rbx,%rax), %al
    call putc
    dec %ecx
    jnz 1b
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    ret

    .section .rodata
banner:       .asciz "popek demo guest: hello from a virtual x86-64 CPU\n"
vendor_msg:   .asciz "cpu vendor: "
primes_msg:   .asciz "primes below 1000:\n"
count_msg:    .asciz "count="
checksum_msg: .asciz " checksum="
bye_msg:      .asciz "goodbye\n"
hexdigits:    .ascii "0123456789abcdef"

    .section .bss
    .balign 16
vendor:       .skip 16
numbuf:       .skip 16
numbuf_end:
    .balign 4096
stack:        .skip 16384
stack_top:

    .section .note.GNU-stack, "", @progbits
