//! The x87 FPU and the x87/SSE state instructions: FXSAVE/FXRSTOR, LDMXCSR/STMXCSR, and the
//! guest's FPU instruction and data pointers.
//!
//! x87 arithmetic runs on the host FPU through stubs ([`super::host`]): the guest's x87
//! state is live there while it runs, so 80-bit arithmetic, precision and rounding control,
//! the transcendentals, FPREM's partial remainders and the tag word are the hardware's.
//! What the host cannot know is the guest's view of *where* the last x87 instruction was:
//! FIP/FCS, FDP/FDS and the opcode. Those live in `CpuState::fx` (and `fpu_cs`/`fpu_ds`),
//! are updated after every non-control x87 instruction, cleared by FNINIT/FNSAVE, loaded by
//! FLDENV/FRSTOR, and patched into what FNSTENV/FNSAVE store where the host stored its own.
//!
//! Invariants:
//! - LDMXCSR and FXRSTOR end their block without a link: they may change which SIMD
//!   exceptions are unmasked, a part of the block mode ([`crate::fp_mode::SIMD_UNMASKED`]).
//! - FXSAVE sees the XMM registers in `CpuState` (`Ctx::sync_fp` stores the ones the block
//!   holds); after FXRSTOR the block forgets the ones it had loaded.
//! - Every inline floating-point operation before STMXCSR, LDMXCSR, FXSAVE or FXRSTOR has
//!   happened (`Ctx::sync_fp`) before it reads or replaces MXCSR.

use iced_x86::{Code, Encoder, Instruction, Mnemonic as M, Register};

use super::host::{self, check_alignment, copy_in, copy_out, mem_at};
use crate::ctx::Ctx;
use crate::emit::Emitter;
use crate::fp_mode;
use crate::helpers::Helper;
use crate::ir::{BinOp, Cmp, Ty};
use crate::state::{self, seg};

/// Translate an x87 instruction (or WAIT, FXSAVE, FXRSTOR).
pub fn translate<E: Emitter>(ctx: &mut Ctx<E>) {
    match ctx.insn().mnemonic() {
        M::Fxsave | M::Fxsave64 => fxsave(ctx),
        M::Fxrstor | M::Fxrstor64 => fxrstor(ctx),
        _ => host::exec(ctx),
    }
}

/// Whether `m` is an x87 control instruction: it leaves FIP, FDP and the opcode alone.
fn is_control(m: M) -> bool {
    matches!(
        m,
        M::Fninit
            | M::Finit
            | M::Fnclex
            | M::Fclex
            | M::Fldcw
            | M::Fnstcw
            | M::Fstcw
            | M::Fnstsw
            | M::Fstsw
            | M::Fnstenv
            | M::Fstenv
            | M::Fldenv
            | M::Fnsave
            | M::Fsave
            | M::Frstor
            | M::Wait
            | M::Fneni
            | M::Feni
            | M::Fndisi
            | M::Fdisi
            | M::Fnsetpm
            | M::Fsetpm
    )
}

/// The 11-bit x87 opcode of `insn` (low 3 bits of the D8..DF byte, then the ModRM byte), as
/// the hardware records it.
pub fn fop(insn: &Instruction, bitness: u32) -> u16 {
    let mut enc = Encoder::new(bitness);
    if enc.encode(insn, insn.ip()).is_err() {
        return 0;
    }
    let bytes = enc.take_buffer();
    match bytes.iter().position(|&b| (0xD8..=0xDF).contains(&b)) {
        Some(i) if i + 1 < bytes.len() => (u16::from(bytes[i] & 7) << 8) | u16::from(bytes[i + 1]),
        _ => 0,
    }
}

fn seg_index(r: Register) -> usize {
    match r {
        Register::ES => seg::ES,
        Register::CS => seg::CS,
        Register::SS => seg::SS,
        Register::FS => seg::FS,
        Register::GS => seg::GS,
        _ => seg::DS,
    }
}

/// Whether `insn` is an x87 instruction (D8..DF, WAIT): only those keep FIP, FDP and FOP;
/// MMX instructions and the SSE ones on MMX registers (PSHUFW, CVTPI2PS, MOVQ2DQ...) leave
/// them alone.
pub fn is_x87(insn: &Instruction) -> bool {
    use iced_x86::CpuidFeature as F;
    insn.mnemonic() == M::Wait
        || insn
            .cpuid_features()
            .iter()
            .any(|f| matches!(f, F::FPU | F::FPU287 | F::FPU387 | F::FPU387SL_ONLY))
}

/// Whether the block's mode says no x87 exception can be pending or become pending
/// ([`fp_mode::X87_MASKED`]): stubs skip the pending-exception check.
pub fn masked<E: Emitter>(ctx: &Ctx<E>) -> bool {
    ctx.mode().fp & fp_mode::X87_MASKED != 0
}

/// After an instruction that may change whether every x87 exception is masked with none
/// pending ([`fp_mode::X87_MASKED`], a part of the block mode): leave the block without a
/// link where it may have changed, so the next block is chosen (and linked) in the new mode.
/// Either way matters: a block of masked mode skips the pending-exception checks, and a
/// link made from a block of the other mode would lead back into one. FLDENV and FRSTOR
/// always leave; FNINIT, FNSAVE, FNSTENV and FNCLEX (which mask all, or clear what is
/// pending) outside masked mode; FLDCW if its control word's masks say otherwise than the block's mode (not
/// for gcc's rounding-mode switches).
pub fn leave_if_mode_changes<E: Emitter>(ctx: &mut Ctx<E>) {
    let masked = masked(ctx);
    let next = ctx.next_pc();
    match ctx.insn().mnemonic() {
        M::Fldenv | M::Frstor => ctx.exit_unlinked(next),
        M::Fninit
        | M::Finit
        | M::Fnsave
        | M::Fsave
        | M::Fnstenv
        | M::Fstenv
        | M::Fnclex
        | M::Fclex
            if !masked =>
        {
            ctx.exit_unlinked(next)
        }
        M::Fldcw => {
            // The control word it loaded is still the frame's operand.
            let cw = ctx.e.load_state(Ty::I16, mem_at(0));
            let cw = ctx.to_ty(cw, Ty::I64, false);
            let masks = ctx.c(Ty::I64, X87_MASKS);
            let set = ctx.bin(BinOp::And, cw, masks);
            // Masked mode ends with any mask clear; outside it, all six set may begin it.
            let unset = ctx.bin(BinOp::Xor, set, masks);
            let changed = if masked {
                unset
            } else {
                let z = ctx.c(Ty::I64, 0);
                ctx.cmp(Cmp::Eq, unset, z)
            };
            if let Some(c) = ctx.e.as_const(changed) {
                if c != 0 {
                    ctx.exit_unlinked(next);
                }
                return;
            }
            let (out, stay) = (ctx.e.new_label(), ctx.e.new_label());
            ctx.e.mark_cold(out);
            ctx.e.branch(changed, out, stay);
            ctx.e.bind(out);
            // Mid-block: the later instructions are uncharged.
            ctx.detour(|ctx| ctx.cut_exit(next));
            ctx.e.bind(stay);
        }
        _ => {}
    }
}

/// The x87 control word's exception masks.
const X87_MASKS: u64 = 0x3F;

/// After an x87/MMX stub: the guest's FPU pointers.
pub fn after<E: Emitter>(ctx: &mut Ctx<E>, has_mem: bool) {
    let insn = *ctx.insn();
    let m = insn.mnemonic();
    if !is_x87(&insn) {
        return;
    }
    match m {
        M::Fninit | M::Finit | M::Fnsave | M::Fsave => {
            let z = ctx.c(Ty::I64, 0);
            ctx.e.store_state(state::OFF_FIP, z);
            ctx.e.store_state(state::OFF_FDP, z);
            let z16 = ctx.c(Ty::I16, 0);
            for off in [state::OFF_FOP, state::OFF_FPU_CS, state::OFF_FPU_DS] {
                ctx.e.store_state(off, z16);
            }
        }
        M::Fldenv | M::Frstor => load_pointers(ctx),
        _ if is_control(m) => {}
        _ => {
            let pc = ctx.pc();
            store_pointers(ctx, &insn, pc);
            if has_mem {
                store_data_pointer(ctx);
            }
        }
    }
}

/// FDP and FDS: the current instruction's memory operand.
pub fn store_data_pointer<E: Emitter>(ctx: &mut Ctx<E>) {
    let ea = ctx.op_ea();
    ctx.e.store_state(state::OFF_FDP, ea);
    let s = seg_index(ctx.insn().memory_segment());
    let ds = ctx.e.load_state(Ty::I16, state::off_seg_selector(s));
    ctx.e.store_state(state::OFF_FPU_DS, ds);
}

/// FIP, FCS and the opcode of the non-control x87 instruction `insn` at `pc`, which has
/// just run (FDP and FDS are a memory operand's, and left to the caller).
pub fn store_pointers<E: Emitter>(ctx: &mut Ctx<E>, insn: &Instruction, pc: u64) {
    let ip = ctx.c(Ty::I64, pc);
    ctx.e.store_state(state::OFF_FIP, ip);
    let op = ctx.c(Ty::I16, u64::from(fop(insn, ctx.mode().bitness)));
    ctx.e.store_state(state::OFF_FOP, op);
    let cs = ctx.e.load_state(Ty::I16, state::off_seg_selector(seg::CS));
    ctx.e.store_state(state::OFF_FPU_CS, cs);
}

/// The pointer fields of a protected-mode environment image: (FIP, FCS, FOP, FDP, FDS)
/// offsets and the FIP/FDP width; `None` where a format has no such field.
struct EnvLayout {
    fip: (u32, Ty),
    fcs: u32,
    fop: Option<u32>,
    fdp: (u32, Ty),
    fds: u32,
}

fn env_layout(bytes: u32) -> Option<EnvLayout> {
    match bytes {
        // 16-bit formats: FNSTENV/FLDENV m14, FNSAVE/FRSTOR m94.
        14 | 94 => Some(EnvLayout {
            fip: (6, Ty::I16),
            fcs: 8,
            fop: None,
            fdp: (10, Ty::I16),
            fds: 12,
        }),
        // 32-bit formats: m28, m108.
        28 | 108 => Some(EnvLayout {
            fip: (12, Ty::I32),
            fcs: 16,
            fop: Some(18),
            fdp: (20, Ty::I32),
            fds: 24,
        }),
        _ => None,
    }
}

/// Before FNSTENV/FNSAVE's image goes to guest memory: the guest's FIP, FCS, FOP, FDP and FDS
/// replace the host's (which are those of the host's last stub, or zero: the host may
/// deprecate FCS/FDS and update FDP/FOP only on unmasked exceptions, and popek's CPUID claims
/// neither, so the guest's own values are always the ones its FXSAVE shows too).
pub fn patch_env<E: Emitter>(ctx: &mut Ctx<E>, bytes: u32) {
    if !matches!(
        ctx.insn().mnemonic(),
        M::Fnstenv | M::Fstenv | M::Fnsave | M::Fsave
    ) {
        return;
    }
    let Some(l) = env_layout(bytes) else {
        return;
    };
    let fields = [
        (l.fip.0, l.fip.1, state::OFF_FIP),
        (l.fcs, Ty::I16, state::OFF_FPU_CS),
        (l.fdp.0, l.fdp.1, state::OFF_FDP),
        (l.fds, Ty::I16, state::OFF_FPU_DS),
    ];
    for (off, ty, src) in fields {
        let guest = ctx.e.load_state(ty, src);
        ctx.e.store_state(mem_at(off), guest);
    }
    if let Some(off) = l.fop {
        // The opcode shares its word with bits the processor stores as zero.
        let host = ctx.e.load_state(Ty::I16, mem_at(off));
        let guest = ctx.e.load_state(Ty::I16, state::OFF_FOP);
        let m = ctx.c(Ty::I16, 0x7FF);
        let keep = ctx.c(Ty::I16, !0x7FF);
        let high = ctx.bin(BinOp::And, host, keep);
        let gop = ctx.bin(BinOp::And, guest, m);
        let v = ctx.bin(BinOp::Or, high, gop);
        ctx.e.store_state(mem_at(off), v);
    }
}

/// FLDENV/FRSTOR: the guest's pointers come from the loaded image (still in the frame).
fn load_pointers<E: Emitter>(ctx: &mut Ctx<E>) {
    let bytes = ctx.insn().memory_size().size() as u32;
    let Some(l) = env_layout(bytes) else {
        return;
    };
    let fip = ctx.e.load_state(l.fip.1, mem_at(l.fip.0));
    let fip = ctx.to_ty(fip, Ty::I64, false);
    ctx.e.store_state(state::OFF_FIP, fip);
    let fdp = ctx.e.load_state(l.fdp.1, mem_at(l.fdp.0));
    let fdp = ctx.to_ty(fdp, Ty::I64, false);
    ctx.e.store_state(state::OFF_FDP, fdp);
    for (off, dst) in [(l.fcs, state::OFF_FPU_CS), (l.fds, state::OFF_FPU_DS)] {
        let v = ctx.e.load_state(Ty::I16, mem_at(off));
        ctx.e.store_state(dst, v);
    }
    let op = match l.fop {
        Some(off) => {
            let v = ctx.e.load_state(Ty::I16, mem_at(off));
            let m = ctx.c(Ty::I16, 0x7FF);
            ctx.bin(BinOp::And, v, m)
        }
        None => ctx.c(Ty::I16, 0),
    };
    ctx.e.store_state(state::OFF_FOP, op);
}

/// Bytes of the FXSAVE image the instruction reads and writes: with XMM8..15 in 64-bit
/// mode; bytes 464..511 are the software's and never touched.
fn fx_bytes<E: Emitter>(ctx: &Ctx<E>) -> u32 {
    if ctx.mode().bitness == 64 {
        416
    } else {
        288
    }
}

fn fxsave<E: Emitter>(ctx: &mut Ctx<E>) {
    let a = ctx.op_addr();
    check_alignment(ctx, a, 16);
    let wide = ctx.c(
        Ty::I64,
        u64::from(ctx.insn().code() == Code::Fxsave64_m512byte),
    );
    // The image holds the XMM registers and MXCSR's flags as of now.
    ctx.sync_fp();
    ctx.call(Helper::FxSave, &[wide]);
    let n = fx_bytes(ctx);
    copy_out(ctx, a, n);
}

fn fxrstor<E: Emitter>(ctx: &mut Ctx<E>) {
    let a = ctx.op_addr();
    check_alignment(ctx, a, 16);
    let n = fx_bytes(ctx);
    copy_in(ctx, a, n);
    let wide = ctx.c(
        Ty::I64,
        u64::from(ctx.insn().code() == Code::Fxrstor64_m512byte),
    );
    let len = ctx.c(Ty::I64, u64::from(n));
    ctx.call(Helper::FxRstor, &[wide, len]);
    ctx.forget_xmm();
    let next = ctx.next_pc();
    ctx.exit_unlinked(next);
}

/// LDMXCSR and STMXCSR.
pub fn mxcsr<E: Emitter>(ctx: &mut Ctx<E>) {
    let a = ctx.op_addr();
    if ctx.insn().mnemonic() == M::Ldmxcsr {
        let v = ctx.load(Ty::I32, a);
        // Earlier inline operations run under the MXCSR they saw.
        ctx.sync_fp();
        let one = ctx.c(Ty::I64, 1);
        ctx.call(Helper::Mxcsr, &[one, v]);
        let next = ctx.next_pc();
        ctx.exit_unlinked(next);
    } else {
        // The flags of every earlier inline operation must be in MXCSR first.
        ctx.sync_fp();
        let z = ctx.c(Ty::I64, 0);
        let v = ctx.call(Helper::Mxcsr, &[z]);
        let v = ctx.to_ty(v, Ty::I32, false);
        ctx.store(a, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Decoder, DecoderOptions};

    #[test]
    fn fop_is_the_low_opcode_bits_and_modrm() {
        // fadd qword [rax+8] = DC 40 08; with a REX prefix and a segment override.
        let i = Decoder::with_ip(64, &[0xDC, 0x40, 0x08], 0, DecoderOptions::NONE).decode();
        assert_eq!(fop(&i, 64), 0x440);
        let i = Decoder::with_ip(64, &[0x64, 0x41, 0xD9, 0x00], 0, DecoderOptions::NONE).decode();
        assert_eq!(fop(&i, 64), 0x100);
        let i = Decoder::with_ip(64, &[0xDE, 0xC1], 0, DecoderOptions::NONE).decode();
        assert_eq!(fop(&i, 64), 0x6C1);
    }
}
