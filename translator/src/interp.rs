//! The interpreter: the same semantics as the JIT, evaluated directly on concrete values,
//! one instruction at a time. It is the emulation baseline and the reference when engines
//! disagree.
//!
//! Invariant: every memory access and hypercall goes through [`InterpEnv::helper`], the same
//! runtime helpers the JIT's slow paths call, so the two engines share one definition of
//! guest memory and device behaviour.

use iced_x86::Instruction;

use crate::ctx::Ctx;
use crate::emit::VectorOps;
use crate::emit::{Emitter, Exit, ValueOps};
use crate::flags::{CVal, Concrete, Vendor};
use crate::helpers::Helper;
use crate::hostexec::{HostStub, StubCall};
use crate::ir::{BinOp, Cmp, Conv, Ty, UnOp};
use crate::state::{CpuState, ExitReason};
use crate::vector::{self, Lanes, VBin, VCvt, VShift, VUn};
use crate::Mode;

/// What the interpreter needs from the runtime.
pub trait InterpEnv {
    /// Run a helper exactly as generated code would (`extern "C"` shims call the same code).
    /// A helper that stops the instruction sets `cpu.status`.
    fn helper(&mut self, cpu: &mut CpuState, h: Helper, args: [u64; 3]) -> u64;

    /// Whether a store since the last call wrote to guest code the engine had decoded (the
    /// rest of the block being interpreted may be stale); clears the indication.
    fn take_code_modified(&mut self) -> bool {
        false
    }

    /// Run a host stub on `cpu.hx` as generated code would (see [`crate::hostexec`]). A
    /// stub call that stops the instruction sets `cpu.status`. The default refuses: the
    /// instruction raises #UD.
    fn run_stub(&mut self, cpu: &mut CpuState, stub: &HostStub, how: StubCall) {
        let _ = (stub, how);
        cpu.raise(crate::Exception::InvalidOpcode);
    }
}

/// Vector variables one instruction may declare.
const MAX_VVARS: usize = 8;

/// Variables one instruction may declare (`Ctx` uses 17); a fixed array keeps the per-step
/// cost free of allocation.
const MAX_VARS: usize = 32;

/// The interpreter's emitter. Values are concrete; labels are never needed because every
/// condition is known.
pub struct InterpEmitter<'a> {
    cpu: &'a mut CpuState,
    env: &'a mut dyn InterpEnv,
    vars: [CVal; MAX_VARS],
    nvars: usize,
    vvars: [u128; MAX_VVARS],
    nvvars: usize,
    faulted: bool,
    exit: Option<ExitReason>,
}

impl<'a> InterpEmitter<'a> {
    /// An emitter executing against `cpu` and `env`.
    pub fn new(cpu: &'a mut CpuState, env: &'a mut dyn InterpEnv) -> Self {
        InterpEmitter {
            cpu,
            env,
            vars: [CVal { ty: Ty::I64, v: 0 }; MAX_VARS],
            nvars: 0,
            vvars: [0; MAX_VVARS],
            nvvars: 0,
            faulted: false,
            exit: None,
        }
    }

    fn state_ptr(&mut self, off: u32, bytes: u32) -> Option<*mut u8> {
        let end = off as usize + bytes as usize;
        if end > std::mem::size_of::<CpuState>() {
            return None;
        }
        Some(
            (self.cpu as *mut CpuState)
                .cast::<u8>()
                .wrapping_add(off as usize),
        )
    }
}

impl ValueOps for InterpEmitter<'_> {
    type Value = CVal;
    fn ty(&self, v: CVal) -> Ty {
        v.ty
    }
    fn as_const(&self, v: CVal) -> Option<u64> {
        Some(v.v)
    }
    fn iconst(&mut self, ty: Ty, v: u64) -> CVal {
        Concrete.iconst(ty, v)
    }
    fn binop(&mut self, op: BinOp, a: CVal, b: CVal) -> CVal {
        Concrete.binop(op, a, b)
    }
    fn unop(&mut self, op: UnOp, a: CVal) -> CVal {
        Concrete.unop(op, a)
    }
    fn icmp(&mut self, cc: Cmp, a: CVal, b: CVal) -> CVal {
        Concrete.icmp(cc, a, b)
    }
    fn select(&mut self, c: CVal, t: CVal, f: CVal) -> CVal {
        Concrete.select(c, t, f)
    }
    fn convert(&mut self, op: Conv, v: CVal, to: Ty) -> CVal {
        Concrete.convert(op, v, to)
    }
    fn is_concrete(&self) -> bool {
        true
    }
}

impl VectorOps for InterpEmitter<'_> {
    type Vec = u128;
    fn vconst(&mut self, v: u128) -> u128 {
        v
    }
    // After a fault (say a misaligned m128 operand's #GP) the semantics run on with dead
    // values: a floating-point operation must not reach the host then, or it would leave
    // its MXCSR flags behind an instruction that did not execute.
    fn vbin(&mut self, op: VBin, lanes: Lanes, a: u128, b: u128) -> u128 {
        if self.faulted {
            return a;
        }
        vector::eval_bin(op, lanes, a, b)
    }
    fn vun(&mut self, op: VUn, lanes: Lanes, a: u128) -> u128 {
        if self.faulted {
            return a;
        }
        vector::eval_un(op, lanes, a)
    }
    fn vshift(&mut self, op: VShift, lanes: Lanes, a: u128, count: CVal) -> u128 {
        vector::eval_shift(op, lanes, a, count.v)
    }
    fn vshuffle(&mut self, a: u128, b: u128, mask: [u8; 16]) -> u128 {
        vector::eval_shuffle(a, b, mask)
    }
    fn vextract(&mut self, v: u128, lanes: Lanes, idx: u8) -> CVal {
        let l = lanes.int();
        let i = u32::from(idx) % l.count();
        CVal {
            ty: l.ty(),
            v: vector::lane(v, l.bits(), i),
        }
    }
    fn vinsert(&mut self, v: u128, lanes: Lanes, idx: u8, x: CVal) -> u128 {
        let l = lanes.int();
        vector::with_lane(v, l.bits(), u32::from(idx) % l.count(), x.v)
    }
    fn vsplat(&mut self, lanes: Lanes, x: CVal) -> u128 {
        let l = lanes.int();
        (0..l.count()).fold(0, |v, i| vector::with_lane(v, l.bits(), i, x.v))
    }
    fn vmovmsk(&mut self, v: u128, lanes: Lanes) -> CVal {
        CVal {
            ty: Ty::I32,
            v: vector::eval_movmsk(v, lanes),
        }
    }
    fn vselect(&mut self, c: CVal, t: u128, f: u128) -> u128 {
        if c.v != 0 {
            t
        } else {
            f
        }
    }
    fn vblendv(&mut self, lanes: Lanes, a: u128, b: u128, mask: u128) -> u128 {
        vector::eval_blendv(lanes, a, b, mask)
    }
    fn vcvt(&mut self, op: VCvt, a: u128) -> u128 {
        if self.faulted {
            return a;
        }
        vector::eval_cvt(op, a)
    }
    fn vcvt_from_int(&mut self, lanes: Lanes, a: u128, x: CVal) -> u128 {
        if self.faulted {
            return a;
        }
        vector::eval_cvt_from_int(lanes, a, x.v, x.ty.bits())
    }
    fn vcvtt_to_int(&mut self, lanes: Lanes, a: u128, ty: Ty) -> CVal {
        CVal {
            ty,
            v: if self.faulted {
                0
            } else {
                vector::eval_cvtt_to_int(lanes, a, ty.bits())
            },
        }
    }
    fn vfcmp_flags(&mut self, lanes: Lanes, a: u128, b: u128, ordered: bool) -> CVal {
        CVal {
            ty: Ty::I64,
            v: if self.faulted {
                0
            } else {
                vector::eval_fcmp_flags(lanes, a, b, ordered)
            },
        }
    }
}

impl Emitter for InterpEmitter<'_> {
    type Label = ();
    type Var = usize;
    type VVar = usize;

    fn vload_state(&mut self, off: u32) -> u128 {
        let lo = self.load_state(Ty::I64, off).v;
        let hi = self.load_state(Ty::I64, off + 8).v;
        u128::from(lo) | u128::from(hi) << 64
    }
    fn vstore_state(&mut self, off: u32, v: u128) {
        self.store_state(
            off,
            CVal {
                ty: Ty::I64,
                v: v as u64,
            },
        );
        self.store_state(
            off + 8,
            CVal {
                ty: Ty::I64,
                v: (v >> 64) as u64,
            },
        );
    }
    // A 16-byte access passes its high half through `helper_out[0]`; the old value is put
    // back so the state after it is what generated code's inline path leaves.
    fn vload_mem(&mut self, addr: CVal) -> u128 {
        let size = CVal { ty: Ty::I64, v: 16 };
        let saved = self.cpu.helper_out[0];
        let zero = CVal { ty: Ty::I64, v: 0 };
        let lo = self.call_helper(Helper::MemRead, [addr, size, zero]);
        let hi = std::mem::replace(&mut self.cpu.helper_out[0], saved);
        if self.faulted {
            return 0;
        }
        u128::from(lo.v) | u128::from(hi) << 64
    }
    fn vstore_mem(&mut self, addr: CVal, v: u128) {
        if self.faulted {
            return;
        }
        let saved = std::mem::replace(&mut self.cpu.helper_out[0], (v >> 64) as u64);
        let size = CVal { ty: Ty::I64, v: 16 };
        let lo = CVal {
            ty: Ty::I64,
            v: v as u64,
        };
        self.call_helper(Helper::MemWrite, [addr, size, lo]);
        self.cpu.helper_out[0] = saved;
    }
    fn declare_vvar(&mut self) -> usize {
        let i = self.nvvars.min(MAX_VVARS - 1);
        self.vvars[i] = 0;
        self.nvvars += 1;
        i
    }
    fn def_vvar(&mut self, var: usize, v: u128) {
        if let Some(slot) = self.vvars.get_mut(var) {
            *slot = v;
        }
    }
    fn use_vvar(&mut self, var: usize) -> u128 {
        self.vvars.get(var).copied().unwrap_or(0)
    }
    fn call_stub(&mut self, stub: &HostStub, how: StubCall) {
        if self.faulted {
            return;
        }
        self.env.run_stub(self.cpu, stub, how);
        if self.cpu.status != 0 {
            self.faulted = true;
        }
    }

    fn load_state(&mut self, ty: Ty, off: u32) -> CVal {
        let v = match self.state_ptr(off, ty.bytes()) {
            Some(p) => {
                let mut le = [0u8; 8];
                // SAFETY: `state_ptr` checked that [off, off + size) lies inside the
                // `CpuState` we hold a unique reference to; exactly `size` bytes are copied
                // (never past the struct), every field is a plain integer so any bytes are
                // a valid value, and `le` does not overlap it.
                unsafe { std::ptr::copy_nonoverlapping(p, le.as_mut_ptr(), ty.bytes() as usize) };
                u64::from_le_bytes(le)
            }
            None => 0,
        };
        CVal {
            ty,
            v: v & ty.mask(),
        }
    }

    fn store_state(&mut self, off: u32, v: CVal) {
        let bytes = v.ty.bytes();
        if let Some(p) = self.state_ptr(off, bytes) {
            let le = v.v.to_le_bytes();
            // SAFETY: as in `load_state`, the destination range is inside our `CpuState`,
            // whose fields accept any bit pattern; `le` does not overlap it.
            unsafe { std::ptr::copy_nonoverlapping(le.as_ptr(), p, bytes as usize) };
        }
    }

    fn declare_var(&mut self, ty: Ty) -> usize {
        // Past the capacity every further variable shares the last slot: wrong values, but
        // never a panic; `Ctx` stays far below it.
        let i = self.nvars.min(MAX_VARS - 1);
        self.vars[i] = CVal { ty, v: 0 };
        self.nvars += 1;
        i
    }
    fn def_var(&mut self, var: usize, v: CVal) {
        if let Some(slot) = self.vars.get_mut(var) {
            *slot = CVal {
                ty: slot.ty,
                v: v.v & slot.ty.mask(),
            };
        }
    }
    fn use_var(&mut self, var: usize) -> CVal {
        self.vars
            .get(var)
            .copied()
            .unwrap_or(CVal { ty: Ty::I64, v: 0 })
    }

    fn load_mem(&mut self, ty: Ty, addr: CVal) -> CVal {
        let v = self.call_helper(
            Helper::MemRead,
            [
                addr,
                CVal {
                    ty: Ty::I64,
                    v: ty.bytes() as u64,
                },
                CVal { ty: Ty::I64, v: 0 },
            ],
        );
        CVal {
            ty,
            v: v.v & ty.mask(),
        }
    }

    fn store_mem(&mut self, addr: CVal, v: CVal) {
        let size = CVal {
            ty: Ty::I64,
            v: v.ty.bytes() as u64,
        };
        self.call_helper(Helper::MemWrite, [addr, size, v]);
    }

    fn call_helper(&mut self, h: Helper, args: [CVal; 3]) -> CVal {
        // After a fault nothing with an effect may run; a pure helper still must, since the
        // fault exit materializes the flags of the instruction's start through one.
        if self.faulted && h.can_stop() {
            return CVal { ty: Ty::I64, v: 0 };
        }
        let r = self
            .env
            .helper(self.cpu, h, [args[0].v, args[1].v, args[2].v]);
        if h.can_stop() && self.cpu.status != 0 {
            self.faulted = true;
        }
        CVal { ty: Ty::I64, v: r }
    }

    fn new_label(&mut self) {}
    fn bind(&mut self, _l: ()) {}
    fn jump(&mut self, _l: ()) {}
    fn branch(&mut self, _c: CVal, _t: (), _f: ()) {}
    fn set_fault_label(&mut self, _l: Option<()>) {}
    fn fault_label_used(&self) -> bool {
        false
    }
    fn faulted(&self) -> bool {
        self.faulted
    }

    fn exit(&mut self, exit: Exit<CVal>) {
        if self.exit.is_some() {
            return;
        }
        self.exit = Some(match exit {
            Exit::Jump(t) => {
                self.cpu.rip = t.v;
                self.cpu.link_slot = 0;
                ExitReason::Jump
            }
            Exit::Return(r) => r,
            Exit::Status => ExitReason::from_u64(self.cpu.status).unwrap_or(ExitReason::Exception),
            Exit::Host(_) => ExitReason::Jump,
        });
    }
}

/// How an interpreted run of instructions ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockRun {
    /// [`ExitReason::Jump`]: continue at `cpu.rip`; anything else goes to the dispatcher.
    pub exit: ExitReason,
    /// Instructions that completed (a faulting or stopping instruction does not count; HLT
    /// does).
    pub retired: u64,
}

/// Interpret `insns`, consecutive instructions of one decoded block, evaluating each one's
/// semantics in turn through a single [`Ctx`] (so flags stay lazy between them and the
/// registers are written back once). Stops early at an exit, a fault, or after an
/// instruction whose store modified code ([`InterpEnv::take_code_modified`]), so the next
/// instruction is fetched afresh. `cpu.status` is cleared first.
pub fn run_block(
    cpu: &mut CpuState,
    env: &mut dyn InterpEnv,
    insns: &[Instruction],
    mode: Mode,
) -> BlockRun {
    run_block_as(Vendor::host(), cpu, env, insns, mode)
}

/// As [`run_block`], the flags the manuals leave undefined following `vendor` instead of
/// the host's (for tests that check each vendor's rules on any host).
pub fn run_block_as(
    vendor: Vendor,
    cpu: &mut CpuState,
    env: &mut dyn InterpEnv,
    insns: &[Instruction],
    mode: Mode,
) -> BlockRun {
    cpu.status = 0;
    let Some(first) = insns.first() else {
        return BlockRun {
            exit: ExitReason::Jump,
            retired: 0,
        };
    };
    let e = InterpEmitter::new(cpu, env);
    // Nothing preloaded: a register read goes straight to `CpuState`, which is as cheap as a
    // variable here.
    let mut ctx = Ctx::new(e, mode, 0).with_vendor(vendor);
    let mut retired = 0;
    let mut next = first.ip();
    let mut left = false;
    for insn in insns {
        ctx.begin_insn(insn);
        crate::semantics::translate_insn(&mut ctx);
        ctx.end_insn();
        if ctx.terminated() {
            left = true;
            break;
        }
        retired += 1;
        next = insn.next_ip();
        if ctx.e.env.take_code_modified() {
            break;
        }
    }
    let e = ctx.finish(next);
    let exit = e.exit.unwrap_or(ExitReason::Jump);
    // The instruction that left the block completed if it left normally (a branch, HLT);
    // a fault, stop or unsupported instruction did not.
    if left && matches!(exit, ExitReason::Jump | ExitReason::Halt) {
        retired += 1;
    }
    BlockRun { exit, retired }
}

/// Execute one decoded instruction (see [`run_block`]).
pub fn step(
    cpu: &mut CpuState,
    env: &mut dyn InterpEnv,
    insn: &Instruction,
    mode: Mode,
) -> ExitReason {
    run_block(cpu, env, std::slice::from_ref(insn), mode).exit
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::decode_block;

    /// Flat 64 KiB of RAM at address 0.
    struct FlatRam(Vec<u8>);
    impl InterpEnv for FlatRam {
        fn helper(&mut self, cpu: &mut CpuState, h: Helper, a: [u64; 3]) -> u64 {
            let (addr, size) = (a[0] as usize, a[1] as usize);
            match h {
                Helper::MemRead | Helper::MemWrite
                    if addr.checked_add(size).is_none_or(|e| e > self.0.len()) =>
                {
                    cpu.raise(crate::Exception::PageFault {
                        addr: a[0],
                        code: 0,
                    });
                    0
                }
                Helper::MemRead => {
                    let mut b = [0u8; 8];
                    b[..size].copy_from_slice(&self.0[addr..addr + size]);
                    u64::from_le_bytes(b)
                }
                Helper::MemWrite => {
                    self.0[addr..addr + size].copy_from_slice(&a[2].to_le_bytes()[..size]);
                    0
                }
                Helper::FlagsMaterialize => {
                    cpu.settle_flags();
                    cpu.rflags & crate::state::rflags::ARITH
                }
                _ => 0,
            }
        }
    }

    fn host_mxcsr() -> u32 {
        let mut m = 0u32;
        // SAFETY: STMXCSR writes 4 bytes to a local.
        unsafe { std::arch::asm!("stmxcsr [{p}]", p = in(reg) &mut m) };
        m
    }

    fn set_host_mxcsr(m: u32) {
        // SAFETY: LDMXCSR of a valid value (reserved bits clear) from a local.
        unsafe { std::arch::asm!("ldmxcsr [{p}]", p = in(reg) &m) };
    }

    /// Regression (difftester, misaligned m128 operand): after the #GP the semantics ran on
    /// and computed the packed division on the host, leaving ZE in MXCSR behind an
    /// instruction that did not execute.
    #[test]
    fn a_faulted_instruction_leaves_mxcsr_alone() {
        let mut ram = FlatRam(vec![0; 16]);
        let mut cpu = CpuState::default();
        let saved = host_mxcsr();
        let one = u128::from(1f32.to_bits());
        for faulted in [true, false] {
            set_host_mxcsr(0x1F80);
            let mut e = InterpEmitter::new(&mut cpu, &mut ram);
            e.faulted = faulted;
            e.vbin(VBin::FDiv, Lanes::F32, one, 0);
            let ze = host_mxcsr() & 0x4 != 0;
            set_host_mxcsr(saved);
            assert_eq!(ze, !faulted, "faulted: {faulted}");
        }
    }

    /// Regression: a narrow read at the very end of `CpuState` once read 8 bytes.
    #[test]
    fn narrow_state_read_at_the_end_stays_inside() {
        let mut ram = FlatRam(vec![0; 16]);
        let mut cpu = CpuState::default();
        // The last bytes of CpuState.
        cpu.hx.sink = 0x1122_3344_5566_7788u128 << 64;
        let end = std::mem::size_of::<CpuState>() as u32;
        let mut e = InterpEmitter::new(&mut cpu, &mut ram);
        assert_eq!(e.load_state(Ty::I8, end - 1).v, 0x11);
        assert_eq!(e.load_state(Ty::I16, end - 2).v, 0x1122);
        assert_eq!(e.load_state(Ty::I8, end).v, 0);
    }

    /// Regression (hostile-guest fuzz): the fault exit after SAHF materialized the stored
    /// flags through a helper the faulted interpreter skipped, so OF read as 0.
    #[test]
    fn a_fault_after_sahf_keeps_the_flags_sahf_left_alone() {
        let mut ram = FlatRam(vec![0; 65536]);
        let mut cpu = CpuState::default();
        // sahf ; add dword [rbx], 1  (rbx out of RAM)
        let code = [0x9E, 0x83, 0x03, 0x01];
        let b = decode_block(&code, 0x100, Mode::LONG64_CPL0, 8);
        cpu.gpr[0] = 0xD500; // AH: SF ZF AF PF CF
        cpu.gpr[3] = 0x100000;
        cpu.rflags = crate::state::rflags::FIXED | crate::state::rflags::OF;
        let r = run_block(&mut cpu, &mut ram, &b.insns, Mode::LONG64_CPL0);
        assert_eq!(
            (r.exit, r.retired, cpu.rip),
            (ExitReason::Exception, 1, 0x101)
        );
        assert_eq!(cpu.full_rflags(), 0x8D7, "OF kept, AH's five flags loaded");
    }

    #[test]
    fn mov_and_faulting_store_are_precise() {
        let mut ram = FlatRam(vec![0; 65536]);
        let mut cpu = CpuState::default();
        // mov rax, 0x1234 ; mov [rbx], rax  (rbx out of RAM)
        let code = [0x48, 0xC7, 0xC0, 0x34, 0x12, 0, 0, 0x48, 0x89, 0x03];
        let b = decode_block(&code, 0x100, Mode::LONG64_CPL0, 8);
        cpu.gpr[3] = 0x100000;
        assert_eq!(
            step(&mut cpu, &mut ram, &b.insns[0], Mode::LONG64_CPL0),
            ExitReason::Jump
        );
        assert_eq!(cpu.gpr[0], 0x1234);
        assert_eq!(cpu.rip, 0x107);
        assert_eq!(
            step(&mut cpu, &mut ram, &b.insns[1], Mode::LONG64_CPL0),
            ExitReason::Exception
        );
        assert_eq!(cpu.rip, 0x107);
        assert_eq!(cpu.exc_vector, 14);
    }
}
