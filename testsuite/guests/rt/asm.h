/*
 * Macros for the assembly guest programs. The same .S file builds for the guest
 * and natively: all output goes through the C runtime (record*, print_*), whose
 * putc_serial is an outb in the guest and a buffered write(2) natively, so the
 * instructions under test are identical in both builds.
 *
 * CALL_C* preserve every general-purpose register (and realign the stack, so they
 * can be used anywhere); they clobber the flags. DF must be clear when they run,
 * as the C ABI requires. Arguments may be registers, memory operands that are not
 * RSP-relative, or 32-bit immediates (including $symbol: the images are linked
 * below 2 GiB).
 */
#ifndef POPEK_ASM_H
#define POPEK_ASM_H

/* Arithmetic flags whose values are defined after add/sub/cmp: OF SF ZF AF PF CF. */
#define FLAGS_ARITH 0x8d5
/* The same without AF, for logic ops and shifts, which leave AF undefined. */
#define FLAGS_LOGIC 0x8c5

.macro SAVE_CALLER_SAVED
    push %rax
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %r8
    push %r9
    push %r10
    push %r11
    push %rbp
.endm

.macro RESTORE_CALLER_SAVED
    pop %rbp
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rax
.endm

/* Arguments go through the stack so that any register may be passed in any slot. */
.macro CALL_C3 fn:req, a1:req, a2:req, a3:req
    SAVE_CALLER_SAVED
    pushq \a1
    pushq \a2
    pushq \a3
    pop %rdx
    pop %rsi
    pop %rdi
    mov %rsp, %rbp
    and $-16, %rsp
    call \fn
    mov %rbp, %rsp
    RESTORE_CALLER_SAVED
.endm

.macro CALL_C2 fn:req, a1:req, a2:req
    CALL_C3 \fn, \a1, \a2, $0
.endm

.macro CALL_C1 fn:req, a1:req
    CALL_C3 \fn, \a1, $0, $0
.endm

/* Define a string in .rodata under the given label. */
.macro STRING label:req, text:req
    .pushsection .rodata.str1.1, "aMS", @progbits, 1
\label: .asciz "\text"
    .popsection
.endm

/* record("key", src): src is a 64-bit register, memory operand or immediate. */
.macro RECORD key:req, src:req
    STRING .Lrecord_key\@, \key
    CALL_C2 record, $.Lrecord_key\@, \src
.endm

/* record("key", checksum(ptr, len)). */
.macro RECORD_SUM key:req, ptr:req, len:req
    STRING .Lrecord_key\@, \key
    CALL_C3 record_checksum, $.Lrecord_key\@, \ptr, \len
.endm

/* Start an output line: "label" (the program name and group, e.g. "strings: movs"). */
.macro LINE label:req
    STRING .Lline_label\@, "\label"
    CALL_C1 record_begin, $.Lline_label\@
.endm

.macro END_LINE
    CALL_C1 record_end, $0
.endm

/* reg = the flags in mask (FLAGS_ARITH or FLAGS_LOGIC). */
.macro FLAGS_TO reg:req, mask:req
    pushfq
    pop \reg
    and $\mask, \reg
.endm

#endif
