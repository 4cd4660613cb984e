/*
 * Constants shared by the kernel library's assembler and C sources: the GDT layout,
 * control-register and MSR bits. Only #defines, so that both can include it.
 *
 * GDT layout (the order is fixed by SYSCALL/SYSRET and SYSENTER/SYSEXIT):
 *   0x08 code32  0x10 code64  0x18 data   (SYSCALL: CS=STAR[47:32], SS=CS+8)
 *   0x20 ucode32 0x28 udata   0x30 ucode64 (SYSRET: base=STAR[63:48]=0x20: SS=+8, CS64=+16)
 *   0x38 udata (SYSEXIT64 SS = SYSENTER_CS+40)   0x40 TSS (16 bytes)
 *   0x50 data with base 0x300000 (FS-override test)   0x58 not-present data
 *   0x60 64-bit call gate DPL0 -> code64 (16 bytes)   0x70 LDT (16 bytes)
 *   0x80 64-bit call gate DPL3 -> code64 (16 bytes)   0x90 code16-style data limit 0xFFF
 * Every descriptor has its accessed bit preset, so the CPU never writes the GDT.
 */
#define SEL_CODE32 0x08
#define SEL_CODE64 0x10
#define SEL_DATA 0x18
#define SEL_UCODE32 0x20
#define SEL_UDATA 0x28
#define SEL_UCODE64 0x30
#define SEL_UDATA2 0x38
#define SEL_TSS 0x40
#define SEL_FSDATA 0x50
#define SEL_NOTPRESENT 0x58
#define SEL_GATE0 0x60
#define SEL_LDT 0x70
#define SEL_GATE3 0x80
#define SEL_SMALL 0x90
#define GDT_LIMIT 0x97

#define FSDATA_BASE 0x300000

#define CR0_PE 0x1
#define CR0_MP 0x2
#define CR0_EM 0x4
#define CR0_TS 0x8
#define CR0_ET 0x10
#define CR0_NE 0x20
#define CR0_WP 0x10000
#define CR0_AM 0x40000
#define CR0_PG 0x80000000

#define CR4_TSD 0x4
#define CR4_DE 0x8
#define CR4_PSE 0x10
#define CR4_PAE 0x20
#define CR4_PGE 0x80
#define CR4_OSFXSR 0x200
#define CR4_OSXMMEXCPT 0x400
#define CR4_SMEP 0x100000
#define CR4_SMAP 0x200000

#define MSR_EFER 0xC0000080
#define MSR_STAR 0xC0000081
#define MSR_LSTAR 0xC0000082
#define MSR_CSTAR 0xC0000083
#define MSR_SFMASK 0xC0000084
#define MSR_FS_BASE 0xC0000100
#define MSR_GS_BASE 0xC0000101
#define MSR_KERNEL_GS_BASE 0xC0000102
#define MSR_SYSENTER_CS 0x174
#define MSR_SYSENTER_ESP 0x175
#define MSR_SYSENTER_EIP 0x176
#define MSR_PAT 0x277
#define MSR_APIC_BASE 0x1B

#define EFER_SCE 0x1
#define EFER_LME 0x100
#define EFER_LMA 0x400
#define EFER_NXE 0x800

/* Interrupt vectors the library routes. */
#define VEC_IRQ0 0x20
#define VEC_IOAPIC 0x30
#define VEC_APIC_TIMER 0x40
#define VEC_SYSCALL 0x80
#define VEC_SPURIOUS 0xFF

/* Physical memory the library's identity map covers: 4 GiB in 2 MiB pages (U=1, RW). */
#define DEBUG_EXIT_PORT 0xF4
#define COM1 0x3F8
