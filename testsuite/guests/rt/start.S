/*
 * Entry point of every guest program (and of its native twin, with -DPOPEK_NATIVE).
 *
 * The VMM enters here in 64-bit mode at CPL 0 with flat identity-mapped RAM and
 * interrupts off; no register is trusted, not even RSP, so nothing touches the
 * stack before RSP is set. .bss (which holds the stack) is cleared first, main is
 * called, and its return value is written to the isa-debug-exit port 0xf4: the VM
 * then exits with status (value << 1) | 1, so 1 means success.
 */
    .section .text.start, "ax", @progbits
    .globl _start
    .type _start, @function
_start:
    cld
#ifndef POPEK_NATIVE
    /* Linux zero-fills .bss itself, and its default linker script may put
       __bss_start on a read-only page, so only the guest clears it. */
    lea __bss_start(%rip), %rdi
    lea _end(%rip), %rcx
    sub %rdi, %rcx
    shr $3, %rcx
    xor %eax, %eax
    rep stosq
#endif
    lea stack_top(%rip), %rsp
    xor %ebp, %ebp
    call main
#ifdef POPEK_NATIVE
    mov %eax, %edi
    call native_exit
    ud2
#else
    outl %eax, $0xf4
1:  cli
    hlt
    jmp 1b
#endif
    .size _start, . - _start

    .section .bss
    .balign 4096
stack_bottom:
    .skip 1 << 20
stack_top:

    .section .note.GNU-stack, "", @progbits
