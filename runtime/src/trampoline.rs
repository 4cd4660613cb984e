//! The register-preserving trampoline generated code calls helpers through (see
//! `translator::jit::JitEnv::preserving_trampoline`).
//!
//! Generated code calls helpers with Cranelift's `preserve_all` convention: at the call site
//! no register is clobbered, so values that live across a helper on a cold path (a memory
//! access's slow path, say) stay in registers on the hot path instead of being kept in stack
//! slots. The trampoline keeps that promise for the System V helpers: it saves every
//! caller-saved general register and all sixteen XMM registers, calls the helper, stores its
//! result in `CpuState::helper_ret`, and restores them.
//!
//! Calling convention: `rdi` = `cpu`, `rsi`, `rdx`, `rcx` = the helper's three arguments,
//! `r8` = the helper (`extern "C" fn(*mut CpuState, u64, u64, u64) -> u64`). Nothing is
//! returned in registers.

use std::mem::offset_of;

use translator::CpuState;

std::arch::global_asm!(
    ".pushsection .text.popek_trampoline,\"ax\",@progbits",
    ".globl popek_preserving_trampoline",
    ".hidden popek_preserving_trampoline",
    ".p2align 4",
    "popek_preserving_trampoline:",
    // Entry: rsp = 8 mod 16. Nine pushes leave it 0 mod 16, and so does the XMM area.
    "push rax",
    "push rcx",
    "push rdx",
    "push rsi",
    "push rdi",
    "push r8",
    "push r9",
    "push r10",
    "push r11",
    "sub rsp, 0x100",
    "movdqu [rsp + 0x00], xmm0",
    "movdqu [rsp + 0x10], xmm1",
    "movdqu [rsp + 0x20], xmm2",
    "movdqu [rsp + 0x30], xmm3",
    "movdqu [rsp + 0x40], xmm4",
    "movdqu [rsp + 0x50], xmm5",
    "movdqu [rsp + 0x60], xmm6",
    "movdqu [rsp + 0x70], xmm7",
    "movdqu [rsp + 0x80], xmm8",
    "movdqu [rsp + 0x90], xmm9",
    "movdqu [rsp + 0xa0], xmm10",
    "movdqu [rsp + 0xb0], xmm11",
    "movdqu [rsp + 0xc0], xmm12",
    "movdqu [rsp + 0xd0], xmm13",
    "movdqu [rsp + 0xe0], xmm14",
    "movdqu [rsp + 0xf0], xmm15",
    "call r8",
    // The saved rdi is the CpuState.
    "mov rdi, [rsp + 0x100 + 0x20]",
    "mov [rdi + {ret}], rax",
    "movdqu xmm0, [rsp + 0x00]",
    "movdqu xmm1, [rsp + 0x10]",
    "movdqu xmm2, [rsp + 0x20]",
    "movdqu xmm3, [rsp + 0x30]",
    "movdqu xmm4, [rsp + 0x40]",
    "movdqu xmm5, [rsp + 0x50]",
    "movdqu xmm6, [rsp + 0x60]",
    "movdqu xmm7, [rsp + 0x70]",
    "movdqu xmm8, [rsp + 0x80]",
    "movdqu xmm9, [rsp + 0x90]",
    "movdqu xmm10, [rsp + 0xa0]",
    "movdqu xmm11, [rsp + 0xb0]",
    "movdqu xmm12, [rsp + 0xc0]",
    "movdqu xmm13, [rsp + 0xd0]",
    "movdqu xmm14, [rsp + 0xe0]",
    "movdqu xmm15, [rsp + 0xf0]",
    "add rsp, 0x100",
    "pop r11",
    "pop r10",
    "pop r9",
    "pop r8",
    "pop rdi",
    "pop rsi",
    "pop rdx",
    "pop rcx",
    "pop rax",
    "ret",
    ".popsection",
    ret = const offset_of!(CpuState, helper_ret),
);

unsafe extern "C" {
    fn popek_preserving_trampoline();
}

/// The trampoline's address.
pub fn address() -> usize {
    popek_preserving_trampoline as *const () as usize
}
