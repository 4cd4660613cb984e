/*
 * Flags and the integer instructions around them: adc/sbb carry chains,
 * lahf/sahf, pushf/popf (arithmetic flags and DF only -- IF and IOPL differ
 * between the guest at CPL 0 and the native twin at CPL 3, so they are neither
 * changed nor observed), cmc/clc/stc, loop/loopz/loopnz/jrcxz/jecxz,
 * xchg/cmpxchg/xadd with and without lock, enter/leave at nesting levels 0-2,
 * the sign-extension family, partial-register writes, every form of imul and
 * mul, and div/idiv of every size. Only architecturally defined results and
 * flags are recorded. 64 * SCALE rounds of random operands; the last is printed.
 */
#include "asm.h"

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
    xor %r14d, %r14d
    mov $64 * SCALE, %r15d
1:  lea -1(%r15), %rax
    cmp %rax, %r14
    sete %al
    movzbl %al, %eax
    mov %eax, record_verbose(%rip)
    mov %r14, %rax
    movabs $0x9e3779b97f4a7c15, %rdx
    imul %rdx, %rax
    or $1, %rax
    mov %rax, rng(%rip)
    push %r14
    push %r15
    call adc_chains
    call lahf_sahf
    call pushf_popf
    call loops
    call atomics
    call enter_leave
    call conversions
    call multiply
    call divide
    call arith_flags
    pop %r15
    pop %r14
    inc %r14
    cmp %r15, %r14
    jb 1b
    movl $1, record_verbose(%rip)
    LINE "flags: all"
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

/* rax = next xorshift64 value; clobbers only rax and flags. */
rand64:
    push %rdx
    mov rng(%rip), %rax
    mov %rax, %rdx
    shl $13, %rdx
    xor %rdx, %rax
    mov %rax, %rdx
    shr $7, %rdx
    xor %rdx, %rax
    mov %rax, %rdx
    shl $17, %rdx
    xor %rdx, %rax
    mov %rax, rng(%rip)
    pop %rdx
    ret

/* ---- adc/sbb: 512-bit add and subtract, carries forced to ripple on odd rounds ---- */
adc_chains:
    LINE "flags: adc"
    lea num_a(%rip), %rsi
    lea num_b(%rip), %rdi
    lea num_c(%rip), %rbx
    xor %ecx, %ecx
1:  call rand64
    mov %rax, (%rsi,%rcx,8)
    call rand64
    mov %rax, (%rdi,%rcx,8)
    inc %ecx
    cmp $8, %ecx
    jb 1b
    call rand64
    test $1, %al
    jz 3f
    mov $1, %ecx                    /* b = ~a on limbs 1..6, and limb 0 sure to carry */
2:  mov (%rsi,%rcx,8), %rax
    not %rax
    mov %rax, (%rdi,%rcx,8)
    inc %ecx
    cmp $7, %ecx
    jb 2b
    movq $-1, (%rsi)
3:  xor %edx, %edx                  /* also clears CF */
    mov $8, %ecx
4:  mov (%rsi,%rdx,8), %rax
    adc (%rdi,%rdx,8), %rax
    mov %rax, (%rbx,%rdx,8)
    lea 1(%rdx), %rdx               /* lea and dec leave CF alone */
    dec %ecx
    jnz 4b
    setc %al
    movzbl %al, %eax
    RECORD add_cf, %rax
    RECORD_SUM add, %rbx, $64
    xor %edx, %edx
    mov $8, %ecx
5:  mov (%rsi,%rdx,8), %rax
    sbb (%rdi,%rdx,8), %rax
    mov %rax, (%rbx,%rdx,8)
    inc %rdx                        /* inc leaves CF alone too */
    dec %ecx
    jnz 5b
    sbb %rax, %rax                  /* -CF */
    RECORD sub_borrow, %rax
    RECORD_SUM sub, %rbx, $64
    /* Narrow adc/sbb with all six flags. */
    call rand64
    mov %rax, %rdx
    stc
    adc $0x7f, %al
    FLAGS_TO %rcx, FLAGS_ARITH
    RECORD adc8, %rax
    RECORD adc8_f, %rcx
    mov %rdx, %rax
    stc
    sbb $0x8000, %ax
    FLAGS_TO %rcx, FLAGS_ARITH
    RECORD sbb16, %rax
    RECORD sbb16_f, %rcx
    mov %rdx, %rax
    clc
    adc %edx, %eax
    FLAGS_TO %rcx, FLAGS_ARITH
    RECORD adc32, %rax
    RECORD adc32_f, %rcx
    mov %rdx, %rax
    stc
    sbb %rdx, %rax
    FLAGS_TO %rcx, FLAGS_ARITH
    RECORD sbb64, %rax
    RECORD sbb64_f, %rcx
    mov %rdx, %rax
    neg %rax
    FLAGS_TO %rcx, FLAGS_ARITH
    RECORD neg_f, %rcx
    xor %eax, %eax
    neg %rax
    FLAGS_TO %rcx, FLAGS_ARITH
    RECORD neg0_f, %rcx
    END_LINE
    ret

/* ---- lahf/sahf: all 256 AH values round-trip, and lahf after add ---- */
lahf_sahf:
    LINE "flags: lahf"
    xor %ebx, %ebx
    xor %ecx, %ecx
1:  mov %cl, %ah
    sahf
    pushfq
    pop %rdx
    and $0xd5, %edx                 /* sahf writes SF ZF AF PF CF only */
    lahf
    movzbl %ah, %eax
    imul $33, %rbx, %rbx
    add %rax, %rbx
    shl $8, %edx
    add %rdx, %rbx
    inc %ecx
    cmp $256, %ecx
    jb 1b
    RECORD roundtrip, %rbx
    xor %ebx, %ebx
    mov $16, %ecx
2:  call rand64
    mov %rax, %rdx
    call rand64
    add %rdx, %rax
    lahf
    shl $8, %rbx
    movzbl %ah, %eax
    or %rax, %rbx
    dec %ecx
    jnz 2b
    RECORD after_add, %rbx
    END_LINE
    ret

/* ---- pushf/popf: set arithmetic flags and DF through popf, read them back ---- */
pushf_popf:
    LINE "flags: pushf"
    pushfq
    pop %rbx
    and $~0xcd5, %rbx               /* keep IF, IOPL and the rest as they are */
    xor %r8d, %r8d
    mov $16, %ecx
1:  call rand64
    and $0x8d5, %eax
    mov %rax, %r9
    or %rbx, %rax
    push %rax
    popfq
    /* Read back through conditions and lahf, with nothing in between that
       writes flags; then pushf must show the same image. */
    seto %r10b
    sets %r11b
    setz %dl
    setp %r12b
    setc %sil
    lahf
    pushfq
    pop %rdi
    and $0x8d5, %edi
    xor %r9, %rdi                   /* 0 when popf/pushf round-tripped */
    movzbl %ah, %eax
    and $0x10, %eax                 /* AF */
    movzbl %r10b, %r10d
    shl $4, %r10d
    movzbl %r11b, %r11d
    shl $3, %r11d
    or %r11d, %r10d
    movzbl %dl, %r11d
    shl $2, %r11d
    or %r11d, %r10d
    movzbl %r12b, %r11d
    shl $1, %r11d
    or %r11d, %r10d
    movzbl %sil, %r11d
    or %r11d, %r10d
    shl $5, %r10d
    or %eax, %r10d
    shl $8, %r8
    xor %r10, %r8
    add %rdi, %r8
    dec %ecx
    jnz 1b
    RECORD conds, %r8
    /* DF through popf: a stosb moves backwards. */
    lea num_c + 32(%rip), %rdi
    mov %rdi, %rdx
    mov %rbx, %rax
    or $0x400, %rax
    push %rax
    popfq
    xor %eax, %eax
    stosb
    pushfq
    pop %rax
    cld
    and $0x400, %eax
    sub %rdi, %rdx
    RECORD df, %rax
    RECORD df_step, %rdx
    /* cmc/clc/stc observed through adc. */
    xor %eax, %eax
    clc
    cmc
    adc $0, %rax                    /* 1 */
    stc
    cmc
    adc $0, %rax                    /* 1 */
    stc
    adc %rax, %rax                  /* 3 */
    clc
    sbb $0, %rax                    /* 3 */
    stc
    sbb $0, %rax                    /* 2 */
    cmc
    cmc
    setc %cl
    movzbl %cl, %ecx
    RECORD cmc, %rax
    RECORD cmc_cf, %rcx
    END_LINE
    ret

/* ---- loop family ---- */
loops:
    LINE "flags: loop"
    xor %eax, %eax
    mov $37, %ecx
1:  add %rcx, %rax
    loop 1b
    RECORD loop_sum, %rax
    RECORD loop_rcx, %rcx
    /* loopz runs while equal: a run of 0xaa of random length, then 0x55. */
    lea num_c(%rip), %rdi
    call rand64
    and $31, %eax
    mov %rax, %rdx
    mov %eax, %ecx
    mov $0xaa, %eax
    rep stosb
    movb $0x55, (%rdi)
    lea num_c(%rip), %rdi
    mov $40, %ecx
2:  cmpb $0xaa, (%rdi)
    lea 1(%rdi), %rdi
    loopz 2b
    setz %al
    movzbl %al, %eax
    lea num_c(%rip), %rsi
    sub %rsi, %rdi
    RECORD loopz_rcx, %rcx
    RECORD loopz_rdi, %rdi
    RECORD loopz_zf, %rax
    /* loopnz runs while not equal: find the 0x55. */
    lea num_c(%rip), %rdi
    mov $40, %ecx
3:  cmpb $0x55, (%rdi)
    lea 1(%rdi), %rdi
    loopnz 3b
    RECORD loopnz_rcx, %rcx
    /* loopnz that runs out of count with ZF clear. */
    mov $5, %ecx
    xor %eax, %eax
4:  inc %eax
    cmp $100, %eax
    loopnz 4b
    RECORD loopnz_out, %rax
    /* jrcxz tests all of RCX, jecxz only ECX. */
    xor %ebx, %ebx
    xor %ecx, %ecx
    jrcxz 5f
    or $1, %ebx
5:  movabs $0x100000000, %rcx
    jrcxz 6f
    or $2, %ebx
6:  jecxz 7f
    or $4, %ebx
7:  mov $1, %ecx
    loop 8f                         /* rcx becomes 0: not taken */
    or $8, %ebx
8:  RECORD jrcxz, %rbx
    END_LINE
    ret

/* ---- xchg, cmpxchg, xadd, locked read-modify-write ---- */
atomics:
    LINE "flags: atomic"
    lea cell(%rip), %rdi
    call rand64
    mov %rax, (%rdi)
    call rand64
    mov %rax, %rbx
    xchg %rbx, (%rdi)               /* implicitly locked */
    RECORD xchg_old, %rbx
    RECORD xchg_new, (%rdi)
    mov %rbx, %rcx
    not %rcx
    xchg %ebx, %ecx                 /* 32-bit: both zero-extended */
    RECORD xchg32_b, %rbx
    RECORD xchg32_c, %rcx
    mov %rcx, %rdx
    xchg %bl, %dh                   /* high-byte register */
    xchg %ax, %dx
    RECORD xchg8, %rbx
    RECORD xchg16, %rdx
    movabs $0xdeadbeefcafef00d, %rax
    xchg %eax, %eax                 /* 87 c0, not a nop: clears bits 63:32 */
    RECORD xchg_eax, %rax
    /* cmpxchg success, then failure. */
    mov (%rdi), %rax
    mov %rax, %rsi
    call rand64
    mov %rax, %rdx
    mov %rsi, %rax
    lock cmpxchg %rdx, (%rdi)
    FLAGS_TO %rcx, FLAGS_ARITH
    RECORD cx_ok_f, %rcx
    RECORD cx_ok_mem, (%rdi)
    mov %rsi, %rax                  /* stale expected value */
    lock cmpxchg %rsi, (%rdi)
    FLAGS_TO %rcx, FLAGS_ARITH
    RECORD cx_fail_f, %rcx
    RECORD cx_fail_rax, %rax
    /* 32-bit cmpxchg: failure zero-extends into RAX, success leaves RAX alone. */
    movabs $0x1111111122222222, %rax
    movl $0x22222222, 8(%rdi)
    cmpxchgl %edx, 8(%rdi)
    RECORD cx32_ok_rax, %rax
    movabs $0x3333333344444444, %rax
    cmpxchgl %edx, 8(%rdi)
    FLAGS_TO %rcx, FLAGS_ARITH
    RECORD cx32_fail_rax, %rax
    RECORD cx32_fail_f, %rcx
    mov %rdx, %rax
    mov %rdx, %rbx
    not %rbx
    cmpxchg %bl, %al                /* register destination, equal */
    cmpxchg %bx, %dx                /* unequal: AX <- DX */
    FLAGS_TO %rcx, FLAGS_ARITH
    RECORD cx8_16, %rax
    RECORD cx8_16_dx, %rdx
    RECORD cx8_16_f, %rcx
    /* xadd: memory locked, and register forms. */
    call rand64
    mov %rax, %rdx
    lock xadd %rdx, (%rdi)
    FLAGS_TO %rcx, FLAGS_ARITH
    RECORD xadd_old, %rdx
    RECORD xadd_mem, (%rdi)
    RECORD xadd_f, %rcx
    mov %rdx, %rbx
    xadd %ebx, %edx
    xadd %al, %bh
    RECORD xadd_reg_b, %rbx
    RECORD xadd_reg_d, %rdx
    /* Locked read-modify-write forms, flags of the last. */
    lock addq $77, (%rdi)
    lock subl $5, 4(%rdi)
    lock orw $0x8001, 2(%rdi)
    lock andb $0xf7, 1(%rdi)
    lock xorq %rdx, (%rdi)
    lock incq (%rdi)
    lock decl (%rdi)
    lock notq (%rdi)
    lock negq (%rdi)
    stc
    lock adcq $3, (%rdi)
    lock sbbw $9, 6(%rdi)
    FLAGS_TO %rcx, FLAGS_ARITH
    RECORD lock_mem, (%rdi)
    RECORD lock_f, %rcx
    lock btsq $13, (%rdi)
    setc %al
    lock btrq $63, (%rdi)
    adc $0, %al
    lock btcl $7, (%rdi)
    adc $0, %al
    movzbl %al, %eax
    RECORD lock_bt, %rax
    RECORD lock_bt_mem, (%rdi)
    END_LINE
    ret

/* ---- enter/leave at nesting levels 0, 1 and 2; only frame-relative values ---- */
enter_leave:
    LINE "flags: enter"
    mov %rsp, %r12
    mov %rbp, %r13
    call rand64
    mov %rax, %rbp                  /* enter saves it; nothing dereferences it at level 0 */
    mov %rax, %r11
    enter $24, $0
    mov %r12, %rax
    sub %rbp, %rax                  /* 8: old rbp pushed */
    mov %rbp, %rbx
    sub %rsp, %rbx                  /* 24 */
    mov (%rbp), %rcx
    sub %r11, %rcx                  /* 0: the pushed rbp */
    RECORD e0_push, %rax
    RECORD e0_size, %rbx
    RECORD e0_saved, %rcx
    movq $0x5a5a, -8(%rbp)
    mov %rbp, %r10                  /* level-0 frame */
    enter $16, $1
    mov %rbp, %rax
    sub %rsp, %rax                  /* 16 + 8: the frame pointer copy */
    mov -8(%rbp), %rbx
    sub %rbp, %rbx                  /* 0: level 1 pushes the new frame pointer */
    mov (%rbp), %rcx
    sub %r10, %rcx                  /* 0 */
    RECORD e1_size, %rax
    RECORD e1_copy, %rbx
    RECORD e1_saved, %rcx
    mov %rbp, %r9                   /* level-1 frame */
    enter $8, $2
    mov %rbp, %rax
    sub %rsp, %rax                  /* 8 + 16 */
    mov -8(%rbp), %rbx
    sub %r9, %rbx                   /* 0: copied from the outer frame's [rbp-8] */
    mov -16(%rbp), %rcx
    sub %rbp, %rcx                  /* 0: the new frame pointer */
    RECORD e2_size, %rax
    RECORD e2_copy, %rbx
    RECORD e2_self, %rcx
    leave
    leave
    mov -8(%rbp), %rax              /* the level-0 local survived */
    RECORD e0_local, %rax
    leave
    mov %r12, %rax
    sub %rsp, %rax
    mov %rbp, %rbx
    sub %r11, %rbx
    RECORD leave_rsp, %rax
    RECORD leave_rbp, %rbx
    mov %r13, %rbp
    END_LINE
    ret

/* ---- sign/zero extension and partial-register writes ---- */
conversions:
    LINE "flags: convert"
    call rand64
    mov %rax, %rbx
    mov %rbx, %rax
    cbw                             /* AX only */
    RECORD cbw, %rax
    mov %rbx, %rax
    cwde                            /* zero-extends into RAX */
    RECORD cwde, %rax
    mov %rbx, %rax
    cdqe
    RECORD cdqe, %rax
    mov %rbx, %rax
    mov %rbx, %rdx
    not %rdx
    cwd                             /* DX only */
    RECORD cwd, %rdx
    mov %rbx, %rdx
    cdq                             /* EDX, zero-extended */
    RECORD cdq, %rdx
    cqo
    RECORD cqo, %rdx
    btc $7, %rax                    /* flip sign bits so both paths get used */
    btc $15, %rax
    cbw
    cwd
    RECORD cbw_cwd, %rax
    RECORD cbw_cwd_dx, %rdx
    movsbw %bl, %ax
    RECORD movsbw, %rax
    movsbl %bh, %eax
    RECORD movsbl, %rax
    movsbq %bl, %rax
    RECORD movsbq, %rax
    movswl %bx, %ecx
    movswq %bx, %rdx
    movslq %ebx, %rsi
    RECORD movswl, %rcx
    RECORD movswq, %rdx
    RECORD movslq, %rsi
    mov %rbx, %rax
    movzbw %bh, %ax
    RECORD movzbw, %rax
    movzbl %bl, %ecx
    movzwl %bx, %edx
    movzwq %bx, %rsi
    RECORD movzbl, %rcx
    RECORD movzwl, %rdx
    RECORD movzwq, %rsi
    /* Partial writes: 8 and 16 bits merge, 32 bits zero-extend. */
    mov %rbx, %rax
    mov $0x12, %al
    mov $0x34, %ah
    RECORD mov8, %rax
    mov $0x5678, %ax
    RECORD mov16, %rax
    add $0x9abc, %ax
    RECORD add16, %rax
    add $1, %eax
    RECORD add32, %rax
    mov %rbx, %rax
    mov %eax, %eax
    RECORD mov32, %rax
    /* cmov with a false condition still writes (zero-extends) a 32-bit destination. */
    mov %rbx, %rax
    mov %rbx, %rcx
    not %rcx
    xor %edx, %edx
    inc %edx                        /* ZF = 0 */
    cmovz %ecx, %eax
    RECORD cmov32_false, %rax
    mov %rbx, %rax
    cmovnz %rcx, %rax
    RECORD cmov64_true, %rax
    mov %rbx, %rax
    cmovz %cx, %ax
    RECORD cmov16_false, %rax
    END_LINE
    ret

/* ---- imul and mul, every form; only CF and OF are defined ---- */
.macro MUL_RECORD key
    FLAGS_TO %r8, 0x801
    RECORD \key, %rax
    RECORD \key\()_d, %rdx
    RECORD \key\()_f, %r8
.endm

multiply:
    LINE "flags: mul"
    call rand64
    mov %rax, %rbx
    call rand64
    mov %rax, %rsi                  /* rsi: operand a, rbx: operand b */
    /* One small operand half the time, so that both CF=OF=0 and =1 occur. */
    test $1, %bl
    jz 1f
    sar $50, %rsi
1:  mov %rsi, %rax
    mov %rbx, %rdx
    imulb %bl
    MUL_RECORD imul8
    mov %rsi, %rax
    mov %rbx, %rdx
    imulw %bx
    MUL_RECORD imul16
    mov %rsi, %rax
    imull %ebx
    MUL_RECORD imul32
    mov %rsi, %rax
    imulq %rbx
    MUL_RECORD imul64
    mov %rsi, %rax
    mov %rbx, %rdx
    mulb %bl
    MUL_RECORD mul8
    mov %rsi, %rax
    mov %rbx, %rdx
    mulw %bx
    MUL_RECORD mul16
    mov %rsi, %rax
    mull %ebx
    MUL_RECORD mul32
    mov %rsi, %rax
    mulq %rbx
    MUL_RECORD mul64
    lea cell(%rip), %rdi
    mov %rbx, (%rdi)
    mov %rsi, %rax
    mulq (%rdi)
    MUL_RECORD mul64m
    /* Two- and three-operand forms. */
    mov %rsi, %rax
    mov %rbx, %rdx
    imul %bx, %ax
    MUL_RECORD imul2_16
    mov %rsi, %rax
    imul %ebx, %eax
    MUL_RECORD imul2_32
    mov %rsi, %rax
    imul %rbx, %rax
    MUL_RECORD imul2_64
    mov %rsi, %rax
    imul (%rdi), %rax
    MUL_RECORD imul2_64m
    mov %rsi, %rax
    imul $-7, %rbx, %rax
    MUL_RECORD imul3_i8
    imul $0x12345, %rsi, %rax
    MUL_RECORD imul3_i32
    mov %rsi, %rax
    imul $-1000, %bx, %ax
    MUL_RECORD imul3_16
    imul $100003, %esi, %eax
    MUL_RECORD imul3_32
    imul $-2, (%rdi), %rax
    MUL_RECORD imul3_m
    END_LINE
    ret

/* ---- div and idiv, every size, with operands that cannot fault ---- */
.macro DIV_RECORD key
    RECORD \key\()_q, %rax
    RECORD \key\()_r, %rdx
.endm

divide:
    LINE "flags: div"
    /* Unsigned: dividend = q * d + r with q below the size limit and r < d. */
    call rand64
    mov %rax, %rsi                  /* rsi: random bits for q and r */
    call rand64
    or $1, %rax
    mov %rax, %rbx                  /* rbx: divisor (low part per size), nonzero */
    movzbl %bl, %ecx
    movzbl %sil, %eax
    imul %ecx, %eax                 /* q * d */
    mov %ecx, %edx
    shr $1, %edx
    and %esi, %edx                  /* r <= d / 2 */
    add %edx, %eax
    mov %rsi, %rdx
    divb %bl                        /* AL = q, AH = r */
    DIV_RECORD div8
    movzwl %bx, %ecx
    movzwl %si, %eax
    imul %ecx, %eax                 /* fits in 32 bits */
    mov %ecx, %edx
    shr $1, %edx
    and %esi, %edx
    add %edx, %eax
    mov %eax, %edx
    shr $16, %edx                   /* DX:AX */
    divw %bx
    DIV_RECORD div16
    mov %ebx, %ecx
    mov %esi, %eax
    mul %rcx                        /* q * d < 2^64 */
    mov %ecx, %edx
    shr $1, %edx
    and %esi, %edx
    add %rdx, %rax
    mov %rax, %rdx
    shr $32, %rdx                   /* EDX:EAX */
    divl %ebx
    DIV_RECORD div32
    mov %rsi, %rax
    mulq %rbx                       /* q * d as 128 bits */
    mov %rbx, %rcx
    shr $1, %rcx
    and %rsi, %rcx
    add %rcx, %rax
    adc $0, %rdx
    divq %rbx
    DIV_RECORD div64
    /* Signed: sign-extended dividends; divisors d with bit 0 set and bit 1 clear
       are neither 0 nor -1, so no quotient overflows. */
    and $~2, %rbx
    call rand64
    mov %rax, %rsi
    cbw
    idivb %bl
    DIV_RECORD idiv8
    mov %rsi, %rax
    cwd
    idivw %bx
    DIV_RECORD idiv16
    mov %rsi, %rax
    cdq
    idivl %ebx
    DIV_RECORD idiv32
    mov %rsi, %rax
    cqo
    idivq %rbx
    DIV_RECORD idiv64
    mov %rsi, %rax
    sar $40, %rbx                   /* a small divisor: large quotient */
    or $1, %rbx
    and $~2, %rbx
    cqo
    lea cell(%rip), %rdi
    mov %rbx, (%rdi)
    idivq (%rdi)
    DIV_RECORD idiv64m
    END_LINE
    ret

/* ---- add/sub/logic/shift flags over random operands ---- */
.macro ARITH_STEP insn, mask
    mov %rsi, %rax
    \insn
    FLAGS_TO %rdx, \mask
    imul $1000003, %r12, %r12       /* odd multiplier: no earlier step is lost */
    xor %rdx, %r12
    add %rax, %r13
    rol $5, %r13
.endm

arith_flags:
    LINE "flags: arith"
    xor %r12d, %r12d
    xor %r13d, %r13d
    mov $6, %r9d
1:  call rand64
    mov %rax, %rsi
    call rand64
    mov %rax, %rbx
    test $1, %r9b                   /* equal operands sometimes */
    jz 2f
    mov %rsi, %rbx
2:  mov %ebx, %ecx
    and $7, %ecx
    or $1, %ecx                     /* shift counts 1..7: defined for every width */
    ARITH_STEP "add %rbx, %rax", FLAGS_ARITH
    ARITH_STEP "sub %ebx, %eax", FLAGS_ARITH
    ARITH_STEP "cmp %bx, %ax", FLAGS_ARITH
    ARITH_STEP "add %bl, %al", FLAGS_ARITH
    ARITH_STEP "sub %bh, %ah", FLAGS_ARITH
    ARITH_STEP "stc; inc %al", FLAGS_ARITH      /* inc and dec leave CF alone */
    ARITH_STEP "clc; dec %rax", FLAGS_ARITH
    ARITH_STEP "neg %ax", FLAGS_ARITH
    ARITH_STEP "and %rbx, %rax", FLAGS_LOGIC
    ARITH_STEP "or %ebx, %eax", FLAGS_LOGIC
    ARITH_STEP "xor %bl, %al", FLAGS_LOGIC
    ARITH_STEP "test %bx, %ax", FLAGS_LOGIC
    ARITH_STEP "cmp %rbx, %rax; not %rax", FLAGS_ARITH /* not leaves flags alone */
    ARITH_STEP "shl $1, %rax", FLAGS_LOGIC
    ARITH_STEP "shr $1, %eax", FLAGS_LOGIC
    ARITH_STEP "sar $1, %al", FLAGS_LOGIC
    ARITH_STEP "shl %cl, %ax", 0xc5
    ARITH_STEP "shr %cl, %al", 0xc5
    ARITH_STEP "sar %cl, %rax", 0xc5
    ARITH_STEP "rol %cl, %eax", 0x1
    ARITH_STEP "ror $1, %ax", 0x801
    ARITH_STEP "bsf %rbx, %rax", 0x40
    dec %r9d
    jnz 1b
    /* bsf/bsr of zero: ZF set (the destination is undefined, so not looked at). */
    xor %ebx, %ebx
    bsf %rbx, %rax
    FLAGS_TO %rdx, 0x40
    bsr %ebx, %eax
    FLAGS_TO %rcx, 0x40
    add %rcx, %rdx
    RECORD flags, %r12
    RECORD values, %r13
    RECORD bsf0, %rdx
    END_LINE
    ret

    .bss
    .balign 64
rng:
    .skip 8
cell:
    .skip 16
num_a:
    .skip 64
num_b:
    .skip 64
num_c:
    .skip 64

    .section .note.GNU-stack, "", @progbits
