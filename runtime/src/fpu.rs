//! The guest's floating-point state on the host: MXCSR and the x87/MMX registers, and the
//! helpers that run host stubs on them.
//!
//! popek runs the guest's floating-point and vector instructions on the host CPU (see
//! [`translator::hostexec`]), so the guest's floating-point *environment* must be the host's
//! while they run — as VMware's binary translator and VirtualBox's raw mode ran guest FPU
//! code natively:
//! - MXCSR: from [`enter`] to [`leave`] (one [`crate::Vm::run`]) the host MXCSR holds the
//!   guest's rounding control, DAZ, FTZ and exception flags, with every exception *masked*
//!   (the guest's masks stay in `CpuState::fx.mxcsr`; while one is unmasked, SIMD stubs go
//!   through [`simd_checked`], which runs them with the guest's masks and catches the host's
//!   own #XM, see [`crate::stubs`]). Generated code's inline float
//!   operations therefore round, flush and raise flags exactly as the guest's instructions.
//! - x87/MMX: loaded into the host FPU on the first x87 or MMX instruction of a run
//!   (`CpuState::fpu_live`), left there across instructions, saved back by [`leave`].
//!
//! Invariants:
//! - Between [`enter`] and [`leave`], host code on the vCPU thread computes with floats only
//!   inside [`HostFp`] (Cranelift compiling a block does, the run loop and devices do not),
//!   and executes no x87 instruction of its own: Rust on x86-64 compiles floating point to
//!   SSE, and the only x87 code is the guest's own, in stubs. (This is why the x87 stack may
//!   be non-empty across calls, outside what the System V ABI promises.)
//! - No waiting x87 instruction ever runs on the host while an unmasked x87 exception is
//!   pending: [`fpu_exec`] checks FSW.ES first and raises #MF (or FERR) instead, so the host
//!   never takes a floating-point trap for the guest.
//! - A guest MXCSR is never loaded with reserved bits set (LDMXCSR and FXRSTOR #GP first), so
//!   `ldmxcsr` cannot fault on the host.

use std::arch::asm;

use translator::hostexec::FpuInfo;
use translator::state::{cr, fpu, mxcsr, CpuState, FxArea, HostFrame};
use translator::Exception;

use crate::machine::Machine;
use crate::stubs::StubRun;

/// The MXCSR host code expects: round to nearest, everything masked, no flags.
const HOST_MXCSR: u32 = mxcsr::DEFAULT;

/// The host's MXCSR.
pub fn read_mxcsr() -> u32 {
    let mut v: u32 = 0;
    // SAFETY: STMXCSR stores the 4-byte MXCSR at the address of `v`, a live local.
    unsafe { asm!("stmxcsr [{p}]", p = in(reg) &mut v, options(nostack, preserves_flags)) };
    v
}

/// Load the host's MXCSR. `v` must have no bit outside [`mxcsr::VALID`].
fn write_mxcsr(v: u32) {
    let v = v & mxcsr::VALID;
    // SAFETY: LDMXCSR loads 4 bytes from the address of `v`, a live local; with no reserved
    // bit set it cannot fault.
    unsafe { asm!("ldmxcsr [{p}]", p = in(reg) &v, options(nostack, preserves_flags, readonly)) };
}

/// The guest's MXCSR as the guest sees it: the live flags and control bits while it runs,
/// its own masks.
fn guest_mxcsr(cpu: &CpuState) -> u32 {
    (read_mxcsr() & !mxcsr::MASKS & mxcsr::VALID) | (cpu.fx.mxcsr & mxcsr::MASKS)
}

/// Make the guest's MXCSR the host's (the start of a run).
pub fn enter(cpu: &mut CpuState) {
    cpu.fx.mxcsr &= mxcsr::VALID;
    write_mxcsr(cpu.fx.mxcsr | mxcsr::MASKS);
}

/// Take the guest's floating-point state back from the host (the end of a run): MXCSR's
/// flags into `cpu.fx.mxcsr`, the x87/MMX registers into `cpu.fx`; the host gets its own
/// MXCSR and an empty x87 FPU.
pub fn leave(cpu: &mut CpuState) {
    cpu.fx.mxcsr = guest_mxcsr(cpu);
    write_mxcsr(HOST_MXCSR);
    unload_x87(cpu);
}

/// While alive, the host's own MXCSR is in force (Cranelift compiling a block inside a run).
pub struct HostFp {
    saved: u32,
}

impl HostFp {
    /// Switch to the host MXCSR until the guard drops.
    pub fn new() -> HostFp {
        let saved = read_mxcsr();
        write_mxcsr(HOST_MXCSR);
        HostFp { saved }
    }
}

impl Default for HostFp {
    fn default() -> Self {
        HostFp::new()
    }
}

impl Drop for HostFp {
    fn drop(&mut self) {
        write_mxcsr(self.saved);
    }
}

/// A 16-byte aligned FXSAVE image.
#[repr(C, align(16))]
struct Image([u8; 512]);

fn fxsave_host(img: &mut Image) {
    // SAFETY: FXSAVE64 stores 512 bytes at a 16-byte aligned address: `img` is exactly that.
    // It reads the FPU state without changing it and never faults on a pending exception.
    unsafe {
        asm!("fxsave64 [{p}]", p = in(reg) img.0.as_mut_ptr(), options(nostack, preserves_flags))
    };
}

/// Load the guest's x87/MMX registers into the host FPU if they are not there.
pub fn load_x87(cpu: &mut CpuState) {
    if cpu.fpu_live != 0 {
        return;
    }
    let mut img = Image([0; 512]);
    // The current host image, so FXRSTOR leaves MXCSR (the live guest value) as it is; XMM
    // registers are clobbered, which the asm declares.
    fxsave_host(&mut img);
    let fx = &cpu.fx;
    img.0[0..2].copy_from_slice(&fx.fcw.to_le_bytes());
    img.0[2..4].copy_from_slice(&fx.fsw.to_le_bytes());
    img.0[4] = fx.ftw;
    for (i, st) in fx.st.iter().enumerate() {
        img.0[32 + 16 * i..42 + 16 * i].copy_from_slice(&st[..10]);
    }
    // SAFETY: FXRSTOR64 reads 512 bytes from the aligned image we just filled; its MXCSR is
    // the host's current one (valid), so it cannot fault. It replaces the x87/MMX state and
    // XMM0..15, all declared clobbered (the x87 and MMX registers belong to the guest from
    // here on; see the module invariants).
    unsafe {
        asm!("fxrstor64 [{p}]", p = in(reg) img.0.as_ptr(),
             out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
             out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
             out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
             out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
             out("mm0") _, out("mm1") _, out("mm2") _, out("mm3") _,
             out("mm4") _, out("mm5") _, out("mm6") _, out("mm7") _,
             out("st(0)") _, out("st(1)") _, out("st(2)") _, out("st(3)") _,
             out("st(4)") _, out("st(5)") _, out("st(6)") _, out("st(7)") _,
             options(nostack, preserves_flags, readonly));
    }
    cpu.fpu_live = 1;
}

/// The live x87 registers (FCW, FSW, FTW, ST0..7) copied into `fx`.
fn copy_live_x87(fx: &mut FxArea) {
    let mut img = Image([0; 512]);
    fxsave_host(&mut img);
    fx.fcw = u16::from_le_bytes([img.0[0], img.0[1]]);
    fx.fsw = u16::from_le_bytes([img.0[2], img.0[3]]);
    fx.ftw = img.0[4];
    for (i, st) in fx.st.iter_mut().enumerate() {
        st.copy_from_slice(&img.0[32 + 16 * i..48 + 16 * i]);
    }
}

/// Save the live x87/MMX registers into `cpu.fx` and give the host an empty FPU.
pub fn unload_x87(cpu: &mut CpuState) {
    if cpu.fpu_live == 0 {
        return;
    }
    copy_live_x87(&mut cpu.fx);
    // SAFETY: FNINIT resets the x87 FPU (a non-waiting instruction: no trap even with an
    // exception pending); the registers it clears are declared clobbered.
    unsafe {
        asm!("fninit",
             out("mm0") _, out("mm1") _, out("mm2") _, out("mm3") _,
             out("mm4") _, out("mm5") _, out("mm6") _, out("mm7") _,
             out("st(0)") _, out("st(1)") _, out("st(2)") _, out("st(3)") _,
             out("st(4)") _, out("st(5)") _, out("st(6)") _, out("st(7)") _,
             options(nostack, nomem, preserves_flags));
    }
    cpu.fpu_live = 0;
}

/// The guest's x87 status word (live or saved).
fn fsw(cpu: &CpuState) -> u16 {
    if cpu.fpu_live == 0 {
        return cpu.fx.fsw;
    }
    let sw: u16;
    // SAFETY: FNSTSW AX reads the FPU status word (non-waiting, no fault).
    unsafe { asm!("fnstsw ax", out("ax") sw, options(nostack, nomem, preserves_flags)) };
    sw
}

/// The guest's x87 control word (live or saved).
fn fcw(cpu: &CpuState) -> u16 {
    if cpu.fpu_live == 0 {
        return cpu.fx.fcw;
    }
    let mut cw: u16 = 0;
    // SAFETY: FNSTCW stores the 2-byte control word at the address of `cw`, a live local
    // (non-waiting, no fault).
    unsafe { asm!("fnstcw [{p}]", p = in(reg) &mut cw, options(nostack, preserves_flags)) };
    cw
}

/// Whether the guest's x87 control word masks every exception and none is pending
/// ([`translator::fp_mode::X87_MASKED`]).
pub fn x87_masked(cpu: &CpuState) -> bool {
    const MASKS: u16 = 0x3F;
    fcw(cpu) & MASKS == MASKS && fsw(cpu) & fpu::FSW_ES == 0
}

/// [`translator::Helper::FpuExec`]: an x87/MMX instruction's stub.
pub fn fpu_exec(m: &mut Machine, cpu: &mut CpuState, stub: u64, info: u64) {
    let info = FpuInfo::from_bits(info);
    load_x87(cpu);
    let mut ignore_pending = false;
    if info.waiting && fsw(cpu) & fpu::FSW_ES != 0 {
        if cpu.cr0 & cr::CR0_NE != 0 {
            return cpu.raise(Exception::FloatingPoint);
        }
        // CR0.NE clear: the PC way, FERR# to IRQ 13; the instruction waits for the handler
        // (which writes port 0xF0 to ignore the error, or clears it) and runs again.
        if !m.fpu_error(true) {
            cpu.status = translator::ExitReason::Retry as u64;
            cpu.icount_limit = 0;
            cpu.fpu_live = LIVE_FERR;
            return;
        }
        ignore_pending = true;
    } else if info.waiting {
        m.fpu_error(false);
    }
    let ran = if info.check_only {
        true
    } else if ignore_pending {
        run_ignoring_pending(m, stub as usize, &mut cpu.hx)
    } else {
        m.stubs.call(stub as usize, &mut cpu.hx)
    };
    if !ran {
        cpu.raise(Exception::InvalidOpcode);
    }
    // Generated code calls stubs directly only while nothing needs this function: the
    // state live and FERR# not asserted (see `LIVE` and `LIVE_FERR`).
    cpu.fpu_live = if m.ferr_asserted() { LIVE_FERR } else { LIVE };
}

/// `CpuState::fpu_live`: the guest's x87 state is in the host FPU.
pub const LIVE: u8 = 1;
/// `CpuState::fpu_live`: live, and FERR# is asserted (every x87 instruction goes through
/// [`fpu_exec`] until it is deasserted).
pub const LIVE_FERR: u8 = 2;

/// A protected-mode x87 environment image (FNSTENV/FLDENV, 32-bit format).
#[repr(C)]
struct Env([u16; 14]);

/// Run a waiting x87 stub while IGNNE# lets it ignore a pending unmasked exception: the
/// host cannot be asked to ignore one (it would trap), so the exception flags are set aside
/// for the instruction and put back after it, with any it raised itself.
fn run_ignoring_pending(m: &mut Machine, addr: usize, frame: &mut HostFrame) -> bool {
    const FLAGS: u16 = 0x3F;
    let mut before = Env([0; 14]);
    // SAFETY: FNSTENV stores the 28-byte environment into `before` (and masks every
    // exception in the live FCW, which the FLDENV below replaces); both are non-waiting.
    unsafe {
        asm!("fnstenv [{p}]", p = in(reg) before.0.as_mut_ptr(), options(nostack, preserves_flags));
    }
    let pending = before.0[2] & FLAGS;
    let mut clean = Env(before.0);
    clean.0[2] &= !(FLAGS | fpu::FSW_ES | 0x8000);
    // SAFETY: FLDENV loads the environment just built from the live one, with no exception
    // flag set, so nothing is pending afterwards.
    unsafe {
        asm!("fldenv [{p}]", p = in(reg) clean.0.as_ptr(), options(nostack, preserves_flags, readonly));
    }
    let ran = m.stubs.call(addr, frame);
    let mut after = Env([0; 14]);
    // SAFETY: as above; the environment goes back with the set-aside flags merged into the
    // status word (ES and B follow: the error is still pending).
    unsafe {
        asm!("fnstenv [{p}]", p = in(reg) after.0.as_mut_ptr(), options(nostack, preserves_flags));
        after.0[2] |= pending | fpu::FSW_ES | 0x8000;
        asm!("fldenv [{p}]", p = in(reg) after.0.as_ptr(), options(nostack, preserves_flags, readonly));
    }
    ran
}

/// [`translator::Helper::SimdChecked`]: an SSE stub while MXCSR unmasks an exception.
///
/// The stub runs with the guest's exception masks in the host MXCSR and its flags clear, so
/// the host raises #XM exactly when and as the guest's instruction must: which exceptions
/// fault (an unmasked underflow is raised for an exact tiny result too, where the masked
/// response flags nothing; FTZ does not apply), which flags the fault leaves (precision only
/// if the unbounded-exponent result is inexact; only the pre-computation ones when those
/// fault), and no destination written. The stub cache catches that #XM
/// ([`crate::stubs::HostStubs::call_catching_xm`]).
pub fn simd_checked(m: &mut Machine, cpu: &mut CpuState, stub: u64) {
    let before = read_mxcsr();
    write_mxcsr((before & !(mxcsr::FLAGS | mxcsr::MASKS)) | (cpu.fx.mxcsr & mxcsr::MASKS));
    let run = m.stubs.call_catching_xm(stub as usize, &mut cpu.hx);
    let raised = read_mxcsr() & mxcsr::FLAGS;
    write_mxcsr(before | raised);
    match run {
        StubRun::Ran => {}
        StubRun::NotAStub => cpu.raise(Exception::InvalidOpcode),
        StubRun::SimdException => cpu.raise(if cpu.cr4 & cr::CR4_OSXMMEXCPT != 0 {
            Exception::SimdFloatingPoint
        } else {
            Exception::InvalidOpcode
        }),
    }
}

/// [`translator::Helper::Mxcsr`]: `op` 0 reads the guest's MXCSR, 1 loads `value`.
pub fn mxcsr_access(cpu: &mut CpuState, op: u64, value: u64) -> u64 {
    if op == 0 {
        return u64::from(guest_mxcsr(cpu));
    }
    let v = value as u32;
    if u64::from(v) != value & 0xFFFF_FFFF || v & !mxcsr::VALID != 0 {
        cpu.raise(Exception::GeneralProtection(0));
        return 0;
    }
    cpu.fx.mxcsr = v;
    write_mxcsr(v | mxcsr::MASKS);
    0
}

/// [`translator::Helper::FxSave`]: the guest's FXSAVE image into `cpu.hx.mem`.
pub fn fxsave(cpu: &mut CpuState, wide: bool) {
    let mut fx = cpu.fx;
    if cpu.fpu_live != 0 {
        copy_live_x87(&mut fx);
    }
    let img = image_of(&fx, guest_mxcsr(cpu), cpu.fpu_cs, cpu.fpu_ds, wide);
    cpu.hx.mem.copy_from_slice(&img);
}

/// The FXSAVE image of `fx` (64-bit layout if `wide`, else the 32-bit one with selectors).
fn image_of(fx: &FxArea, mxcsr_now: u32, fcs: u16, fds: u16, wide: bool) -> [u8; 512] {
    let mut b = [0u8; 512];
    b[0..2].copy_from_slice(&fx.fcw.to_le_bytes());
    b[2..4].copy_from_slice(&fx.fsw.to_le_bytes());
    b[4] = fx.ftw;
    b[6..8].copy_from_slice(&(fx.fop & 0x7FF).to_le_bytes());
    if wide {
        b[8..16].copy_from_slice(&fx.fip.to_le_bytes());
        b[16..24].copy_from_slice(&fx.fdp.to_le_bytes());
    } else {
        b[8..12].copy_from_slice(&(fx.fip as u32).to_le_bytes());
        b[12..14].copy_from_slice(&fcs.to_le_bytes());
        b[16..20].copy_from_slice(&(fx.fdp as u32).to_le_bytes());
        b[20..22].copy_from_slice(&fds.to_le_bytes());
    }
    b[24..28].copy_from_slice(&mxcsr_now.to_le_bytes());
    b[28..32].copy_from_slice(&mxcsr::VALID.to_le_bytes());
    for (i, st) in fx.st.iter().enumerate() {
        b[32 + 16 * i..42 + 16 * i].copy_from_slice(&st[..10]);
    }
    for (i, x) in fx.xmm.iter().enumerate() {
        b[160 + 16 * i..176 + 16 * i].copy_from_slice(&x.to_le_bytes());
    }
    b
}

/// [`translator::Helper::FxRstor`]: the guest state from the image in `cpu.hx.mem`
/// (`len` bytes of it: 288 without XMM8..15).
///
/// The x87 part goes through the host's own FXRSTOR (of the instruction's format) and is
/// live in the host FPU afterwards, so the guest keeps of the image exactly what the
/// processor keeps: the difftester found that this host's FCW reads back with bit 6 set and
/// bits 7, 13..15 clear, and FIP with fewer bits than 64 (FDP with all of them).
pub fn fxrstor(cpu: &mut CpuState, wide: bool, len: u64) {
    let b = cpu.hx.mem;
    let word = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let dword = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    let new_mxcsr = dword(24);
    if new_mxcsr & !mxcsr::VALID != 0 {
        return cpu.raise(Exception::GeneralProtection(0));
    }
    unload_x87(cpu);
    let kept = host_fxrstor(&b, wide);
    let fx = &mut cpu.fx;
    fx.fcw = u16::from_le_bytes([kept.0[0], kept.0[1]]);
    fx.fsw = u16::from_le_bytes([kept.0[2], kept.0[3]]);
    fx.ftw = kept.0[4];
    fx.fop = u16::from_le_bytes([kept.0[6], kept.0[7]]) & 0x7FF;
    fx.fip = u64::from_le_bytes(kept.0[8..16].try_into().unwrap_or_default());
    fx.fdp = u64::from_le_bytes(kept.0[16..24].try_into().unwrap_or_default());
    if !wide {
        cpu.fpu_cs = word(12);
        cpu.fpu_ds = word(20);
    }
    let fx = &mut cpu.fx;
    for (i, st) in fx.st.iter_mut().enumerate() {
        st.copy_from_slice(&kept.0[32 + 16 * i..48 + 16 * i]);
    }
    let regs = if len >= 416 { 16 } else { 8 };
    for (i, x) in fx.xmm.iter_mut().take(regs).enumerate() {
        *x = u128::from_le_bytes(b[160 + 16 * i..176 + 16 * i].try_into().unwrap_or_default());
    }
    fx.mxcsr = new_mxcsr;
    write_mxcsr(new_mxcsr | mxcsr::MASKS);
    // Live, and the next x87 instruction goes through `fpu_exec` (which settles FERR#).
    cpu.fpu_live = LIVE_FERR;
}

/// Load the image `b` into the host FPU with FXRSTOR64 (`wide`) or FXRSTOR, keeping the
/// host's MXCSR, and return what FXSAVE64 then reads back. The x87/MMX registers hold the
/// image's afterwards.
fn host_fxrstor(b: &[u8; 512], wide: bool) -> Image {
    let mut img = Image(*b);
    img.0[24..28].copy_from_slice(&read_mxcsr().to_le_bytes());
    let mut out = Image([0; 512]);
    // SAFETY: FXRSTOR(64) reads 512 bytes from the aligned image, whose MXCSR is the host's
    // current (valid) one, so it cannot fault; it replaces the x87/MMX state and XMM0..15,
    // all declared clobbered (the x87 and MMX registers belong to the guest from here on,
    // see the module invariants). FXSAVE64 stores 512 bytes into the aligned `out`.
    unsafe {
        if wide {
            asm!("fxrstor64 [{p}]", p = in(reg) img.0.as_ptr(),
                 out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
                 out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
                 out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
                 out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
                 out("mm0") _, out("mm1") _, out("mm2") _, out("mm3") _,
                 out("mm4") _, out("mm5") _, out("mm6") _, out("mm7") _,
                 out("st(0)") _, out("st(1)") _, out("st(2)") _, out("st(3)") _,
                 out("st(4)") _, out("st(5)") _, out("st(6)") _, out("st(7)") _,
                 options(nostack, preserves_flags, readonly));
        } else {
            asm!("fxrstor [{p}]", p = in(reg) img.0.as_ptr(),
                 out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
                 out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
                 out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
                 out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
                 out("mm0") _, out("mm1") _, out("mm2") _, out("mm3") _,
                 out("mm4") _, out("mm5") _, out("mm6") _, out("mm7") _,
                 out("st(0)") _, out("st(1)") _, out("st(2)") _, out("st(3)") _,
                 out("st(4)") _, out("st(5)") _, out("st(6)") _, out("st(7)") _,
                 options(nostack, preserves_flags, readonly));
        }
    }
    fxsave_host(&mut out);
    out
}

/// Run a stub for the interpreter, as generated code would call it.
pub fn run_stub(
    m: &mut Machine,
    cpu: &mut CpuState,
    addr: usize,
    how: translator::hostexec::StubCall,
) {
    use translator::hostexec::StubCall;
    match how {
        StubCall::Direct => {
            if !m.stubs.call(addr, &mut cpu.hx) {
                cpu.raise(Exception::InvalidOpcode);
            }
        }
        StubCall::Checked => simd_checked(m, cpu, addr as u64),
        StubCall::Fpu(info) => fpu_exec(m, cpu, addr as u64, info.bits()),
    }
}

/// Unused frame fields are not part of the guest state; this keeps the type in view.
#[allow(dead_code)]
fn _frame(_: &HostFrame) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_fp_restores_the_mxcsr_it_found() {
        let before = read_mxcsr();
        write_mxcsr(0x7F80); // round toward zero
        {
            let _g = HostFp::new();
            assert_eq!(read_mxcsr(), HOST_MXCSR);
        }
        assert_eq!(read_mxcsr(), 0x7F80);
        write_mxcsr(before);
    }

    #[test]
    fn x87_state_round_trips_through_the_host() {
        let mut cpu = CpuState::default();
        cpu.fx.fcw = 0x027F;
        cpu.fx.fsw = 0x3800; // TOP = 7
        cpu.fx.ftw = 0x80;
        cpu.fx.st[0][..10].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 0x80, 0xFF, 0x3F]);
        load_x87(&mut cpu);
        assert_eq!(fsw(&cpu) & 0x3800, 0x3800);
        let saved = cpu.fx;
        cpu.fx.st = [[0; 16]; 8];
        unload_x87(&mut cpu);
        assert_eq!((cpu.fx.fcw, cpu.fx.fsw, cpu.fx.ftw), (0x027F, 0x3800, 0x80));
        assert_eq!(cpu.fx.st[0][..10], saved.st[0][..10]);
        assert_eq!(cpu.fpu_live, 0);
    }

    #[test]
    fn fxrstor_keeps_what_the_processor_keeps() {
        // FCW with its reserved bits inverted, FIP and FDP with every bit set above bit 47:
        // the guest ends up with what the host's own FXRSTOR64 / FXSAVE64 keep.
        let before = read_mxcsr();
        let mut img = image_of(&FxArea::default(), mxcsr::DEFAULT, 0, 0, true);
        img[0..2].copy_from_slice(&0xE03Fu16.to_le_bytes());
        img[8..16].copy_from_slice(&0x1234_5678_9ABC_DEF0u64.to_le_bytes());
        img[16..24].copy_from_slice(&0x0100_8000_0000_1000u64.to_le_bytes());
        let host = host_fxrstor(&img, true);
        // SAFETY: FNINIT (non-waiting) empties the x87 state `host_fxrstor` loaded.
        unsafe { asm!("fninit", options(nostack, nomem, preserves_flags)) };
        let mut cpu = CpuState::default();
        cpu.hx.mem.copy_from_slice(&img);
        fxrstor(&mut cpu, true, 416);
        unload_x87(&mut cpu);
        assert_eq!(cpu.fx.fcw, u16::from_le_bytes([host.0[0], host.0[1]]));
        assert_eq!(cpu.fx.fcw & 0x40, 0x40, "bit 6 reads as 1");
        assert_eq!(cpu.fx.fip.to_le_bytes()[..], host.0[8..16]);
        assert_eq!(cpu.fx.fdp.to_le_bytes()[..], host.0[16..24]);
        write_mxcsr(before);
    }

    #[test]
    fn ldmxcsr_refuses_reserved_bits() {
        let mut cpu = CpuState::default();
        let before = read_mxcsr();
        mxcsr_access(&mut cpu, 1, 0x1_0000);
        assert_eq!(cpu.exception(), Some(Exception::GeneralProtection(0)));
        write_mxcsr(before);
    }
}
