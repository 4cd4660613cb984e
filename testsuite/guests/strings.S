/*
 * String-instruction stress: rep movs/stos of every width forward (DF=0) and
 * backward (DF=1), overlapping copies in both directions, repe/repne cmps and
 * scas stopping at a known place, lods with partial-register merging, rep with
 * RCX=0 (which must leave flags alone), and single unprefixed forms. Each test
 * records the final RSI/RDI as offsets from the buffer bases, RCX, the defined
 * flags, and a checksum of the destination. 32 * SCALE rounds with different
 * data; the last round is printed in detail, and the running hash of all rounds.
 */
#include "asm.h"

#define BUF 2048

    .text
    .globl main
    .type main, @function
main:
    push %rbx
    push %rbp
    push %r12
    push %r13
    push %r14
    push %r15
    xor %r14d, %r14d                /* round number, also the data seed */
    mov $32 * SCALE, %r15d
1:  lea -1(%r15), %rax
    cmp %rax, %r14
    sete %al
    movzbl %al, %eax
    mov %eax, record_verbose(%rip)
    call strings_round
    inc %r14
    cmp %r15, %r14
    jb 1b
    movl $1, record_verbose(%rip)
    LINE "strings: all"
    RECORD rounds, %r14
    RECORD acc, record_acc(%rip)
    END_LINE
    xor %eax, %eax
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbp
    pop %rbx
    ret
    .size main, . - main

/* One round; r14 = seed. Uses r12 = src, r13 = dst, rbx/rbp as scratch. */
    .type strings_round, @function
strings_round:
    lea srcbuf(%rip), %r12
    lea dstbuf(%rip), %r13

    /* src: LCG bytes seeded by the round. */
    movabs $6364136223846793005, %r8
    movabs $1442695040888963407, %r9
    mov %r14, %rax
    imul %r8, %rax
    xor %ecx, %ecx
2:  imul %r8, %rax
    add %r9, %rax
    mov %rax, (%r12,%rcx,8)
    inc %rcx
    cmp $BUF / 8, %rcx
    jb 2b
    /* dst: zero, the whole buffer including its guard area. */
    mov %r13, %rdi
    xor %eax, %eax
    mov $(BUF + 64) / 8, %ecx
    rep stosq

    /* ---- rep movs forward, every width, unaligned ---- */
    LINE "strings: movs"
    lea 3(%r12), %rsi
    lea 5(%r13), %rdi
    mov %r14, %rcx
    and $15, %rcx
    add $1000, %rcx
    rep movsb
    sub %r12, %rsi
    sub %r13, %rdi
    RECORD b_rsi, %rsi
    RECORD b_rdi, %rdi
    RECORD b_rcx, %rcx
    lea 1(%r12), %rsi
    lea 1030(%r13), %rdi
    mov $150, %ecx
    rep movsw
    sub %r12, %rsi
    sub %r13, %rdi
    RECORD w_rsi, %rsi
    RECORD w_rdi, %rdi
    lea 4(%r12), %rsi
    lea 1337(%r13), %rdi
    mov $100, %ecx
    rep movsl
    sub %r13, %rdi
    RECORD d_rdi, %rdi
    lea 8(%r12), %rsi
    lea 1744(%r13), %rdi
    mov $37, %ecx
    rep movsq
    sub %r13, %rdi
    RECORD q_rdi, %rdi
    RECORD_SUM sum, %r13, $BUF + 64
    END_LINE

    /* ---- rep movs backward (DF=1): rsi/rdi point at the last element ---- */
    LINE "strings: movs_df"
    lea 1000(%r12), %rsi
    lea 1500(%r13), %rdi
    mov $90, %ecx
    std
    rep movsq
    cld
    sub %r12, %rsi
    sub %r13, %rdi
    RECORD q_rsi, %rsi
    RECORD q_rdi, %rdi
    lea 777(%r12), %rsi
    lea 1999(%r13), %rdi
    mov $300, %ecx
    std
    rep movsb
    cld
    sub %r12, %rsi
    sub %r13, %rdi
    RECORD b_rsi, %rsi
    RECORD b_rdi, %rdi
    lea 201(%r12), %rsi
    lea 299(%r13), %rdi
    mov $33, %ecx
    std
    rep movsw
    rep movsl                       /* rcx is 0: nothing moves */
    cld
    sub %r13, %rdi
    RECORD w_rdi, %rdi
    RECORD_SUM sum, %r13, $BUF + 64
    END_LINE

    /* ---- overlapping copies ---- */
    LINE "strings: overlap"
    mov %r12, %rsi
    mov %r13, %rdi
    mov $BUF / 8, %ecx
    rep movsq
    /* dst+1 <- dst forward, byte by byte: replicates dst[0] 300 times. */
    mov %r13, %rsi
    lea 1(%r13), %rdi
    mov $300, %ecx
    rep movsb
    /* Overlap inside one element: 3 bytes apart with words. */
    lea 400(%r13), %rsi
    lea 403(%r13), %rdi
    mov $50, %ecx
    rep movsw
    /* memmove upwards done right: backward copy 10 bytes up. */
    lea 1199(%r13), %rsi
    lea 1209(%r13), %rdi
    mov $400, %ecx
    std
    rep movsb
    /* Backward quadwords overlapping by 4 bytes. */
    lea 1600(%r13), %rsi
    lea 1604(%r13), %rdi
    mov $20, %ecx
    rep movsq
    cld
    /* Forward dwords copying downwards over themselves. */
    lea 1702(%r13), %rsi
    lea 1700(%r13), %rdi
    mov $60, %ecx
    rep movsl
    sub %r13, %rdi
    RECORD d_rdi, %rdi
    RECORD_SUM sum, %r13, $BUF + 64
    END_LINE

    /* ---- rep stos, forward and backward ---- */
    LINE "strings: stos"
    mov %r14, %rax
    movabs $0x8877665544332211, %rdx
    xor %rdx, %rax
    lea 1(%r13), %rdi
    mov $333, %ecx
    rep stosb
    lea 500(%r13), %rdi
    mov $100, %ecx
    rep stosw
    lea 1800(%r13), %rdi
    mov $50, %ecx
    std
    rep stosl
    cld
    sub %r13, %rdi
    RECORD l_rdi, %rdi
    lea 1001(%r13), %rdi
    mov $30, %ecx
    rep stosq
    sub %r13, %rdi
    RECORD q_rdi, %rdi
    RECORD q_rcx, %rcx
    lea 2000(%r13), %rdi
    std
    stosw                           /* one element, no prefix */
    stosb
    cld
    sub %r13, %rdi
    RECORD w_rdi, %rdi
    RECORD_SUM sum, %r13, $BUF + 64
    END_LINE

    /* ---- cmps: dst = src with one byte changed at k ---- */
    LINE "strings: cmps"
    mov %r12, %rsi
    mov %r13, %rdi
    mov $BUF / 8, %ecx
    rep movsq
    mov %r14, %rbx
    imul $37, %rbx, %rbx
    and $1023, %rbx
    add $100, %rbx                  /* k in [100, 1123] */
    xorb $0x10, (%r13,%rbx)
    mov %r12, %rsi
    mov %r13, %rdi
    mov $BUF, %ecx
    repe cmpsb
    FLAGS_TO %rax, FLAGS_ARITH
    sub %r12, %rsi
    sub %r13, %rdi
    RECORD b_rcx, %rcx
    RECORD b_rsi, %rsi
    RECORD b_rdi, %rdi
    RECORD b_flags, %rax
    mov %r12, %rsi
    mov %r13, %rdi
    mov $BUF / 8, %ecx
    repe cmpsq
    FLAGS_TO %rax, FLAGS_ARITH
    RECORD q_rcx, %rcx
    RECORD q_flags, %rax
    lea BUF - 2(%r12), %rsi
    lea BUF - 2(%r13), %rdi
    mov $BUF / 2, %ecx
    std
    repe cmpsw
    cld
    FLAGS_TO %rax, FLAGS_ARITH
    sub %r12, %rsi
    RECORD w_rcx, %rcx
    RECORD w_rsi, %rsi
    RECORD w_flags, %rax
    /* repne: stop at the first equal dword pair (or run out). */
    mov %r12, %rsi
    lea 4(%r13), %rdi
    movl $0, 40(%r12)
    movl $0, 44(%r13)
    mov $64, %ecx
    repne cmpsl
    FLAGS_TO %rax, FLAGS_ARITH
    RECORD d_rcx, %rcx
    RECORD d_flags, %rax
    /* rcx = 0: no comparison, so the flags of the cmp before survive. */
    mov $1, %eax
    cmp $2, %eax
    mov %r12, %rsi
    mov %r12, %rdi
    xor %ecx, %ecx
    repe cmpsb
    FLAGS_TO %rax, FLAGS_ARITH
    sub %r12, %rsi
    RECORD z_flags, %rax
    RECORD z_rsi, %rsi
    /* Single cmpsb, unprefixed. */
    lea 5(%r12), %rsi
    lea 6(%r12), %rdi
    cmpsb
    FLAGS_TO %rax, FLAGS_ARITH
    sub %r12, %rdi
    RECORD s_flags, %rax
    RECORD s_rdi, %rdi
    END_LINE

    /* ---- scas ---- */
    LINE "strings: scas"
    /* repne scasb for src[k]: stops at its first occurrence, at or before k. */
    movzbl (%r12,%rbx), %eax
    mov %r12, %rdi
    mov $BUF, %ecx
    repne scasb
    FLAGS_TO %rdx, FLAGS_ARITH
    sub %r12, %rdi
    RECORD b_rcx, %rcx
    RECORD b_rdi, %rdi
    RECORD b_flags, %rdx
    /* Values that are almost surely absent: the scan runs out, ZF clear. */
    movabs $0x0123456789abcdef, %rax
    xor %r14, %rax
    mov %r12, %rdi
    mov $BUF / 8, %ecx
    repne scasq
    FLAGS_TO %rdx, FLAGS_ARITH
    sub %r12, %rdi
    RECORD q_rcx, %rcx
    RECORD q_rdi, %rdi
    RECORD q_flags, %rdx
    mov %r12, %rdi
    mov $BUF / 2, %ecx
    repne scasw
    FLAGS_TO %rdx, FLAGS_ARITH
    RECORD w_rcx, %rcx
    RECORD w_flags, %rdx
    /* repe scasb over a run of 0xaa that ends at a known place. */
    mov %r13, %rdi
    mov $0xaa, %eax
    mov $123, %ecx
    rep stosb
    movb $0x55, (%rdi)
    mov %r13, %rdi
    mov $200, %ecx
    repe scasb
    FLAGS_TO %rdx, FLAGS_ARITH
    sub %r13, %rdi
    RECORD e_rcx, %rcx
    RECORD e_rdi, %rdi
    RECORD e_flags, %rdx
    /* Backward dword scan for a value planted at a known place. */
    movl $0xfeedf00d, 300(%r12)
    mov $0xfeedf00d, %eax
    lea 1000(%r12), %rdi
    mov $400, %ecx
    std
    repne scasl
    cld
    FLAGS_TO %rdx, FLAGS_ARITH
    sub %r12, %rdi
    RECORD l_rcx, %rcx
    RECORD l_rdi, %rdi
    RECORD l_flags, %rdx
    END_LINE

    /* ---- lods: partial-register merging, both directions ---- */
    LINE "strings: lods"
    movabs $0x1122334455667788, %rax
    xor %ebx, %ebx
    mov %r12, %rsi
    mov $64, %ecx
3:  lodsb                           /* writes AL only */
    imul $31, %rbx, %rbx
    add %rax, %rbx
    lodsw                           /* writes AX only */
    add %rax, %rbx
    dec %ecx
    jnz 3b
    RECORD bw, %rbx
    mov $48, %ecx
4:  lodsl                           /* zero-extends into RAX */
    imul $31, %rbx, %rbx
    add %rax, %rbx
    lodsq
    xor %rax, %rbx
    dec %ecx
    jnz 4b
    sub %r12, %rsi
    RECORD dq, %rbx
    RECORD dq_rsi, %rsi
    lea BUF - 8(%r12), %rsi
    mov $100, %ecx
    std
5:  lodsq
    rol $7, %rbx
    xor %rax, %rbx
    lodsb
    add %rax, %rbx
    dec %ecx
    jnz 5b
    cld
    sub %r12, %rsi
    RECORD back, %rbx
    RECORD back_rsi, %rsi
    /* rep lods is legal: it leaves the last element loaded. */
    lea 16(%r12), %rsi
    mov $5, %ecx
    rep lodsq
    cmp 48(%r12), %rax
    sete %al
    movzbl %al, %eax
    RECORD rep_ok, %rax
    /* Single movsb/movsw with DF=1. */
    lea 100(%r12), %rsi
    lea 100(%r13), %rdi
    std
    movsb
    movsw
    cld
    sub %r12, %rsi
    sub %r13, %rdi
    RECORD s_rsi, %rsi
    RECORD s_rdi, %rdi
    RECORD_SUM sum, %r13, $BUF + 64
    END_LINE
    ret
    .size strings_round, . - strings_round

    .bss
    .balign 64
srcbuf:
    .skip BUF + 64
dstbuf:
    .skip BUF + 64

    .section .note.GNU-stack, "", @progbits
