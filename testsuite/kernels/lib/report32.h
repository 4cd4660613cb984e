/*
 * REPORT "text", value — for 32-bit code (protected or compatibility mode): prints
 * "text" then value as 8 hex digits and a newline, preserving every register and flag.
 * value must not be ESP-relative.
 */
.macro REPORT msg, val
    pushfd
    pushad
    push \val
    push offset 9f
    call puts32
    add esp, 4
    call puthex32
    add esp, 4
    push 10
    call putc32
    add esp, 4
    popad
    popfd
    .section .rodata
9:  .asciz "\msg"
    .previous
.endm
