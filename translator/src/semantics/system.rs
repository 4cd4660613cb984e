//! Sensitive instructions as hypercall stubs (IN OUT HLT CLI STI PUSHF POPF CPUID RDTSC), and
//! the instructions that raise exceptions unconditionally (UD0/UD1/UD2, INT3, INT1, undefined
//! opcodes).
//!
//! Invariants:
//! - Each sensitive instruction is one [`Helper`] call; the runtime decides what it means for
//!   the guest (device access, privilege checks, virtual CPUID/TSC). Helpers that can fault
//!   (`can_stop`) leave through the fault path with the state of the instruction's start.
//! - PUSHF hands the materialized arithmetic flags to the runtime, which returns the whole
//!   RFLAGS image (VM and RF cleared); POPF gives the popped value to the runtime, which
//!   writes the non-arithmetic bits under the guest's privilege rules and returns the new
//!   arithmetic bits, which we install. POPF ends the block so that a newly enabled interrupt
//!   or a changed DF/TF is seen by the dispatcher at the next block entry.
//! - INT3 (#BP) and INT1 (#DB) are traps: the exception is reported with RIP at the *next*
//!   instruction. UD0/UD1/UD2 are faults (#UD at the instruction).
//! - No flags are undefined here: IN/OUT/HLT/CLI/STI/CPUID/RDTSC leave the arithmetic flags
//!   alone.
use iced_x86::{Code, OpKind, Register};

use crate::ctx::Ctx;
use crate::emit::Emitter;
use crate::exception::Exception;
use crate::helpers::Helper;
use crate::ir::{BinOp, Ty};
use crate::state::{self, reg, rflags, ExitReason};

/// An undefined opcode: #UD at the instruction.
pub fn invalid<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.raise(Exception::InvalidOpcode)
}

/// IN AL/AX/EAX, imm8|DX and OUT imm8|DX, AL/AX/EAX.
pub fn io<E: Emitter>(ctx: &mut Ctx<E>) {
    let insn = *ctx.insn();
    let (port_op, data_op) = match insn.code() {
        Code::In_AL_imm8
        | Code::In_AX_imm8
        | Code::In_EAX_imm8
        | Code::In_AL_DX
        | Code::In_AX_DX
        | Code::In_EAX_DX => (1, 0),
        Code::Out_imm8_AL
        | Code::Out_imm8_AX
        | Code::Out_imm8_EAX
        | Code::Out_DX_AL
        | Code::Out_DX_AX
        | Code::Out_DX_EAX => (0, 1),
        _ => return ctx.unsupported(),
    };
    let port = io_port(ctx, port_op);
    let data = insn.op_register(data_op);
    let size = ctx.c(Ty::I64, data.size() as u64);
    if port_op == 1 {
        let v = ctx.call(Helper::IoIn, &[port, size]);
        // AL/AX merge into RAX, EAX zero-extends: set_reg applies the x86 write rules.
        ctx.set_reg(data, v);
    } else {
        let v = ctx.reg(data);
        ctx.call(Helper::IoOut, &[port, size, v]);
    }
}

/// The port of an IN/OUT: an 8-bit immediate (zero-extended) or DX.
fn io_port<E: Emitter>(ctx: &mut Ctx<E>, op: u32) -> E::Value {
    if ctx.insn().op_kind(op) == OpKind::Register {
        let dx = ctx.reg(Register::DX);
        ctx.to_ty(dx, Ty::I64, false)
    } else {
        let imm = ctx.insn().immediate(op) & 0xff;
        ctx.c(Ty::I64, imm)
    }
}

/// HLT: the runtime sleeps the vCPU; the block ends with RIP at the next instruction.
pub fn hlt<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.call(Helper::Hlt, &[]);
    let next = ctx.next_pc();
    ctx.exit_with(ExitReason::Halt, next);
}

/// CLI and STI. The block goes on after STI so its one-instruction interrupt shadow holds
/// for the next instruction (`sti; hlt`).
pub fn cli_sti<E: Emitter>(ctx: &mut Ctx<E>) {
    let h = match ctx.insn().code() {
        Code::Cli => Helper::Cli,
        Code::Sti => Helper::Sti,
        _ => return ctx.unsupported(),
    };
    ctx.call(h, &[]);
}

/// PUSHF/PUSHFQ (2 or 8 bytes) and POPF/POPFQ.
pub fn pushf_popf<E: Emitter>(ctx: &mut Ctx<E>) {
    if ctx.mode().bitness != 64 {
        return ctx.unsupported();
    }
    match ctx.insn().code() {
        Code::Pushfw => pushf(ctx, Ty::I16),
        Code::Pushfq => pushf(ctx, Ty::I64),
        Code::Popfw => popf(ctx, Ty::I16),
        Code::Popfq => popf(ctx, Ty::I64),
        _ => ctx.unsupported(),
    }
}

fn pushf<E: Emitter>(ctx: &mut Ctx<E>, ty: Ty) {
    let arith = ctx.flags_bits();
    let image = ctx.call(Helper::Pushf, &[arith]);
    let v = ctx.to_ty(image, ty, false);
    ctx.push(v);
}

fn popf<E: Emitter>(ctx: &mut Ctx<E>, ty: Ty) {
    let v = ctx.pop(ty);
    let size = ctx.c(Ty::I64, ty.bytes() as u64);
    let arith = ctx.call(Helper::Popf, &[v, size]);
    // Trust nothing outside the arithmetic bits: set_flags_bits requires the others zero.
    let m = ctx.c(Ty::I64, rflags::ARITH);
    let arith = ctx.bin(BinOp::And, arith, m);
    ctx.set_flags_bits(arith);
    let next = ctx.next_pc();
    let t = ctx.c(Ty::I64, next);
    ctx.exit_jump(t);
}

/// CPUID: EAX from the helper's result, EBX ECX EDX from `helper_out[0..3]`; each write
/// zero-extends into the 64-bit register.
pub fn cpuid<E: Emitter>(ctx: &mut Ctx<E>) {
    let eax = ctx.gpr_ty(reg::RAX, Ty::I32);
    let ecx = ctx.gpr_ty(reg::RCX, Ty::I32);
    let a = ctx.call(Helper::Cpuid, &[eax, ecx]);
    ctx.set_gpr_ty(reg::RAX, Ty::I32, a);
    for (i, r) in [reg::RBX, reg::RCX, reg::RDX].into_iter().enumerate() {
        let v = ctx
            .e
            .load_state(Ty::I64, state::OFF_HELPER_OUT + 8 * i as u32);
        ctx.set_gpr_ty(r, Ty::I32, v);
    }
}

/// RDTSC: EDX:EAX = the virtual TSC; the upper halves of RAX and RDX are cleared.
pub fn rdtsc<E: Emitter>(ctx: &mut Ctx<E>) {
    let t = ctx.call(Helper::Rdtsc, &[]);
    let sh = ctx.c(Ty::I64, 32);
    let hi = ctx.bin(BinOp::UShr, t, sh);
    ctx.set_gpr_ty(reg::RAX, Ty::I32, t);
    ctx.set_gpr_ty(reg::RDX, Ty::I32, hi);
}

/// UD0/UD1/UD2 (#UD, a fault), INT3 (#BP) and INT1 (#DB), which are traps.
pub fn trap<E: Emitter>(ctx: &mut Ctx<E>) {
    match ctx.insn().code() {
        Code::Int3 => ctx.raise_trap(Exception::Breakpoint),
        Code::Int1 => ctx.raise_trap(Exception::Debug),
        _ => ctx.raise(Exception::InvalidOpcode),
    }
}

/// A tiny machine for the semantics' unit tests: flat RAM at address 0, recorded hypercalls,
/// and helpers to assemble and interpret code. Shared by the family modules' tests.
#[cfg(test)]
pub(crate) mod test_env {
    use iced_x86::code_asm::CodeAssembler;
    use iced_x86::{Decoder, DecoderOptions};

    use crate::ctx::Ctx;
    use crate::emit::{Emitter, Exit, ValueOps};
    use crate::flags::CVal;
    use crate::helpers::Helper;
    use crate::interp::{step, InterpEmitter, InterpEnv};
    use crate::ir::{BinOp, Cmp, Conv, Ty, UnOp};
    use crate::state::{rflags, CpuState, ExitReason};
    use crate::{Exception, Mode};

    /// Where test code is assembled (it is decoded from the assembler's bytes, not RAM).
    pub const CODE: u64 = 0x10_0000;
    /// Size of the flat RAM; accesses beyond it raise #PF.
    pub const RAM: usize = 0x1_0000;
    /// Initial stack pointer of [`TestEnv::cpu`].
    pub const STACK: u64 = 0x8000;

    /// Flat RAM plus a log of every hypercall.
    pub struct TestEnv {
        pub ram: Vec<u8>,
        /// Read-only bytes (#PF on write).
        pub ro: std::ops::Range<usize>,
        /// (helper, arguments) of each hypercall, in order.
        pub calls: Vec<(Helper, [u64; 3])>,
        /// Value IN returns (truncated to the access size).
        pub in_value: u64,
        pub tsc: u64,
    }

    impl TestEnv {
        pub fn new() -> Self {
            TestEnv {
                ram: vec![0; RAM],
                ro: 0..0,
                calls: Vec::new(),
                in_value: 0,
                tsc: 0,
            }
        }
        /// A CPU at `CODE` with the stack at `STACK` and IF set.
        pub fn cpu() -> CpuState {
            let mut cpu = CpuState {
                rip: CODE,
                rflags: rflags::FIXED | rflags::IF,
                ..CpuState::default()
            };
            cpu.gpr[4] = STACK;
            cpu
        }
        pub fn read(&self, addr: u64, size: usize) -> u64 {
            let mut b = [0u8; 8];
            b[..size].copy_from_slice(&self.ram[addr as usize..addr as usize + size]);
            u64::from_le_bytes(b)
        }
        pub fn write(&mut self, addr: u64, size: usize, v: u64) {
            self.ram[addr as usize..addr as usize + size].copy_from_slice(&v.to_le_bytes()[..size]);
        }
    }

    impl InterpEnv for TestEnv {
        fn helper(&mut self, cpu: &mut CpuState, h: Helper, a: [u64; 3]) -> u64 {
            if h.is_hypercall() {
                self.calls.push((h, a));
            }
            let (addr, size) = (a[0] as usize, a[1] as usize);
            let mask = |v: u64| {
                if size >= 8 {
                    v
                } else {
                    v & ((1u64 << (8 * size)) - 1)
                }
            };
            match h {
                Helper::MemRead | Helper::MemWrite => {
                    let end = addr.checked_add(size);
                    let outside = end.is_none_or(|e| e > self.ram.len());
                    let read_only = h == Helper::MemWrite
                        && end.is_some_and(|e| addr < self.ro.end && e > self.ro.start);
                    if size > 8 || outside || read_only {
                        let code = if h == Helper::MemWrite { 2 } else { 0 };
                        cpu.raise(Exception::PageFault { addr: a[0], code });
                        return 0;
                    }
                    if h == Helper::MemRead {
                        self.read(a[0], size)
                    } else {
                        self.write(a[0], size, a[2]);
                        0
                    }
                }
                Helper::FlagsMaterialize => {
                    cpu.settle_flags();
                    cpu.rflags & rflags::ARITH
                }
                Helper::IoIn => mask(self.in_value),
                Helper::Cli => {
                    cpu.rflags &= !rflags::IF;
                    0
                }
                Helper::Sti => {
                    cpu.rflags |= rflags::IF;
                    0
                }
                Helper::Pushf => {
                    (cpu.rflags & !(rflags::ARITH | rflags::VM | rflags::RF)) | a[0] | rflags::FIXED
                }
                Helper::Popf => {
                    // CPL 0 rules, 64-bit: everything but VM/VIF/VIP/RF and the reserved bits.
                    let m = rflags::TF
                        | rflags::IF
                        | rflags::DF
                        | rflags::IOPL
                        | rflags::NT
                        | rflags::AC
                        | rflags::ID;
                    let m = if a[1] == 2 { m & 0xffff } else { m };
                    cpu.rflags = (cpu.rflags & !m) | (a[0] & m);
                    a[0] & rflags::ARITH
                }
                Helper::Cpuid => {
                    cpu.helper_out[0] = 0x1111_0000 | a[0];
                    cpu.helper_out[1] = 0x2222_0000 | a[1];
                    cpu.helper_out[2] = 0x3333_0000 | a[0];
                    0x4444_0000 | a[1]
                }
                Helper::Rdtsc => self.tsc,
                _ => 0,
            }
        }
    }

    /// Assemble 64-bit code at [`CODE`].
    pub fn asm(f: impl FnOnce(&mut CodeAssembler) -> Result<(), iced_x86::IcedError>) -> Vec<u8> {
        let mut a = CodeAssembler::new(64).unwrap();
        f(&mut a).unwrap();
        a.assemble(CODE).unwrap()
    }

    /// Interpret the instruction at `cpu.rip` (code bytes start at [`CODE`]).
    pub fn step1(cpu: &mut CpuState, env: &mut TestEnv, code: &[u8]) -> ExitReason {
        let off = (cpu.rip - CODE) as usize;
        let mut d = Decoder::with_ip(64, &code[off..], cpu.rip, DecoderOptions::NONE);
        let insn = d.decode();
        step(cpu, env, &insn, Mode::LONG64_CPL0)
    }

    /// An interpreter whose values are never reported as constants, so `Ctx` takes the paths
    /// the JIT takes for values known only at run time (selects instead of folding). Only for
    /// instructions without run-time control flow (no REP loops or conditional exits).
    pub struct Opaque<'a>(pub InterpEmitter<'a>);

    impl ValueOps for Opaque<'_> {
        type Value = CVal;
        fn ty(&self, v: CVal) -> Ty {
            v.ty
        }
        fn as_const(&self, _v: CVal) -> Option<u64> {
            None
        }
        fn iconst(&mut self, ty: Ty, v: u64) -> CVal {
            self.0.iconst(ty, v)
        }
        fn binop(&mut self, op: BinOp, a: CVal, b: CVal) -> CVal {
            self.0.binop(op, a, b)
        }
        fn unop(&mut self, op: UnOp, a: CVal) -> CVal {
            self.0.unop(op, a)
        }
        fn icmp(&mut self, cc: Cmp, a: CVal, b: CVal) -> CVal {
            self.0.icmp(cc, a, b)
        }
        fn select(&mut self, c: CVal, t: CVal, f: CVal) -> CVal {
            self.0.select(c, t, f)
        }
        fn convert(&mut self, op: Conv, v: CVal, to: Ty) -> CVal {
            self.0.convert(op, v, to)
        }
    }

    impl Emitter for Opaque<'_> {
        type Label = ();
        type Var = usize;
        fn load_state(&mut self, ty: Ty, off: u32) -> CVal {
            self.0.load_state(ty, off)
        }
        fn store_state(&mut self, off: u32, v: CVal) {
            self.0.store_state(off, v)
        }
        fn declare_var(&mut self, ty: Ty) -> usize {
            self.0.declare_var(ty)
        }
        fn def_var(&mut self, var: usize, v: CVal) {
            self.0.def_var(var, v)
        }
        fn use_var(&mut self, var: usize) -> CVal {
            self.0.use_var(var)
        }
        fn load_mem(&mut self, ty: Ty, addr: CVal) -> CVal {
            self.0.load_mem(ty, addr)
        }
        fn store_mem(&mut self, addr: CVal, v: CVal) {
            self.0.store_mem(addr, v)
        }
        fn call_helper(&mut self, h: Helper, args: [CVal; 3]) -> CVal {
            self.0.call_helper(h, args)
        }
        fn new_label(&mut self) {}
        fn bind(&mut self, _l: ()) {}
        fn jump(&mut self, _l: ()) {}
        fn branch(&mut self, _c: CVal, _t: (), _f: ()) {
            panic!("Opaque cannot follow run-time control flow");
        }
        fn set_fault_label(&mut self, _l: Option<()>) {}
        fn fault_label_used(&self) -> bool {
            false
        }
        fn faulted(&self) -> bool {
            self.0.faulted()
        }
        fn exit(&mut self, exit: Exit<CVal>) {
            self.0.exit(exit)
        }
    }

    /// As [`step1`], through [`Opaque`]. The caller checks the state, not the exit reason.
    pub fn step1_opaque(cpu: &mut CpuState, env: &mut TestEnv, code: &[u8]) {
        let off = (cpu.rip - CODE) as usize;
        let mut d = Decoder::with_ip(64, &code[off..], cpu.rip, DecoderOptions::NONE);
        let insn = d.decode();
        cpu.status = 0;
        let mut ctx = Ctx::new(
            Opaque(InterpEmitter::new(cpu, env)),
            Mode::LONG64_CPL0,
            0xffff,
        );
        ctx.begin_insn(&insn);
        crate::semantics::translate_insn(&mut ctx);
        ctx.end_insn();
        ctx.finish(insn.next_ip());
    }

    /// Interpret instructions until one leaves with something other than `Jump` or RIP
    /// leaves the code; returns the last exit.
    pub fn run(cpu: &mut CpuState, env: &mut TestEnv, code: &[u8]) -> ExitReason {
        for _ in 0..10_000 {
            let r = step1(cpu, env, code);
            if r != ExitReason::Jump || !(CODE..CODE + code.len() as u64).contains(&cpu.rip) {
                return r;
            }
        }
        panic!("test program does not stop");
    }
}

#[cfg(test)]
mod tests {
    use iced_x86::code_asm::*;

    use super::test_env::*;
    use crate::helpers::Helper;
    use crate::state::{rflags, ExitReason};

    #[test]
    fn in_out_all_sizes_and_port_forms() {
        let code = asm(|a| {
            a.in_(al, 0x60)?;
            a.in_(ax, dx)?;
            a.in_(eax, dx)?;
            a.out(0x80, al)?;
            a.out(dx, ax)?;
            a.out(dx, eax)
        });
        let mut env = TestEnv::new();
        let mut cpu = TestEnv::cpu();
        env.in_value = 0x1234_5678_9abc_def0;
        cpu.gpr[0] = 0xffff_ffff_ffff_ffff;
        cpu.gpr[2] = 0xaaaa_0000_0000_03f8;
        assert_eq!(step1(&mut cpu, &mut env, &code), ExitReason::Jump);
        assert_eq!(cpu.gpr[0], 0xffff_ffff_ffff_fff0);
        step1(&mut cpu, &mut env, &code);
        assert_eq!(cpu.gpr[0], 0xffff_ffff_ffff_def0);
        step1(&mut cpu, &mut env, &code);
        assert_eq!(cpu.gpr[0], 0x9abc_def0, "IN EAX zero-extends");
        cpu.gpr[0] = 0x1122_3344_5566_7788;
        run(&mut cpu, &mut env, &code);
        let calls: Vec<_> = env.calls.iter().map(|&(h, a)| (h, a)).collect();
        assert_eq!(
            calls,
            [
                (Helper::IoIn, [0x60, 1, 0]),
                (Helper::IoIn, [0x3f8, 2, 0]),
                (Helper::IoIn, [0x3f8, 4, 0]),
                (Helper::IoOut, [0x80, 1, 0x88]),
                (Helper::IoOut, [0x3f8, 2, 0x7788]),
                (Helper::IoOut, [0x3f8, 4, 0x5566_7788]),
            ]
        );
    }

    #[test]
    fn hlt_exits_with_next_rip() {
        let code = asm(|a| a.hlt());
        let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
        assert_eq!(step1(&mut cpu, &mut env, &code), ExitReason::Halt);
        assert_eq!(cpu.rip, CODE + 1);
        assert_eq!(env.calls[0].0, Helper::Hlt);
    }

    #[test]
    fn cli_sti_call_the_runtime() {
        let code = asm(|a| {
            a.cli()?;
            a.sti()
        });
        let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
        step1(&mut cpu, &mut env, &code);
        assert_eq!(cpu.rflags & rflags::IF, 0);
        step1(&mut cpu, &mut env, &code);
        assert_eq!(cpu.rflags & rflags::IF, rflags::IF);
        assert_eq!(cpu.rip, CODE + 2);
    }

    #[test]
    fn pushf_popf_round_trip_and_sizes() {
        let code = asm(|a| {
            a.pushfq()?;
            a.pushf()?;
            a.popf()?;
            a.popfq()
        });
        let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
        // Flags as a lazy descriptor: SUB 0 - 1 (8-bit) = CF SF AF PF.
        cpu.flags_op = crate::flags::encode_op(crate::flags::FlagOp::Sub, crate::ir::Ty::I8);
        cpu.flags_a = 0;
        cpu.flags_b = 1;
        cpu.flags_res = 0xff;
        step1(&mut cpu, &mut env, &code);
        let img = rflags::CF | rflags::SF | rflags::AF | rflags::PF | rflags::IF | rflags::FIXED;
        assert_eq!(cpu.gpr[4], STACK - 8);
        assert_eq!(env.read(STACK - 8, 8), img);
        step1(&mut cpu, &mut env, &code);
        assert_eq!(cpu.gpr[4], STACK - 10, "PUSHF with 66h pushes 2 bytes");
        assert_eq!(env.read(STACK - 10, 2), img);
        // POPF (16-bit) of an image with DF and ZF only.
        env.write(STACK - 10, 2, rflags::DF | rflags::ZF | rflags::FIXED);
        assert_eq!(step1(&mut cpu, &mut env, &code), ExitReason::Jump);
        assert_eq!(cpu.gpr[4], STACK - 8);
        assert_eq!(
            cpu.rip,
            CODE + 5,
            "POPF ends the block at the next instruction"
        );
        assert_eq!(cpu.full_rflags() & rflags::ARITH, rflags::ZF);
        assert_eq!(cpu.rflags & (rflags::DF | rflags::IF), rflags::DF);
        step1(&mut cpu, &mut env, &code);
        assert_eq!(cpu.gpr[4], STACK);
        assert_eq!(cpu.full_rflags() & rflags::ARITH, img & rflags::ARITH);
        assert_eq!(env.calls.last().unwrap().1[1], 8);
    }

    #[test]
    fn popf_fault_is_precise() {
        let code = asm(|a| a.popfq());
        let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
        cpu.gpr[4] = RAM as u64 - 4;
        assert_eq!(step1(&mut cpu, &mut env, &code), ExitReason::Exception);
        assert_eq!(
            (cpu.rip, cpu.gpr[4], cpu.exc_vector),
            (CODE, RAM as u64 - 4, 14)
        );
    }

    #[test]
    fn cpuid_and_rdtsc_zero_extend() {
        let code = asm(|a| {
            a.cpuid()?;
            a.rdtsc()
        });
        let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
        cpu.gpr[..4].copy_from_slice(&[0xffff_ffff_0000_0007, 0xffff_ffff_0000_0001, !0, !0]);
        step1(&mut cpu, &mut env, &code);
        assert_eq!(
            cpu.gpr[..4],
            [0x4444_0001, 0x2222_0001, 0x3333_0007, 0x1111_0007],
            "rax rcx rdx rbx"
        );
        assert_eq!(env.calls[0], (Helper::Cpuid, [7, 1, 0]));
        env.tsc = 0x0123_4567_89ab_cdef;
        step1(&mut cpu, &mut env, &code);
        assert_eq!((cpu.gpr[0], cpu.gpr[2]), (0x89ab_cdef, 0x0123_4567));
    }

    #[test]
    fn ud_faults_int3_and_int1_trap() {
        for (bytes, vector, rip_after) in [
            (&[0x0f, 0x0b][..], 6, CODE),
            (&[0x0f, 0xb9, 0xc0][..], 6, CODE),
            (&[0x0f, 0xff, 0xc0][..], 6, CODE),
            (&[0xcc][..], 3, CODE + 1),
            (&[0xf1][..], 1, CODE + 1),
        ] {
            let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
            cpu.gpr[0] = 5;
            assert_eq!(step1(&mut cpu, &mut env, bytes), ExitReason::Exception);
            assert_eq!((cpu.exc_vector, cpu.rip), (vector, rip_after), "{bytes:x?}");
            assert_eq!(cpu.gpr[0], 5);
        }
    }

    /// Hostile encodings of every opcode these families handle (with prefixes, any ModRM,
    /// displacements and immediates) must decode to a clean exit, never a panic.
    #[test]
    fn hostile_encodings_of_our_opcodes_never_panic() {
        const OPCODES: &[&[u8]] = &[
            &[0xc0],
            &[0xc1],
            &[0xd0],
            &[0xd1],
            &[0xd2],
            &[0xd3],
            &[0x0f, 0xa4],
            &[0x0f, 0xa5],
            &[0x0f, 0xac],
            &[0x0f, 0xad],
            &[0x50],
            &[0x5c],
            &[0x58],
            &[0x5c],
            &[0x8f],
            &[0xff],
            &[0x6a],
            &[0x68],
            &[0xc8],
            &[0xc9],
            &[0xe8],
            &[0xe9],
            &[0xeb],
            &[0xc2],
            &[0xc3],
            &[0xca],
            &[0xcb],
            &[0xe0],
            &[0xe1],
            &[0xe2],
            &[0xe3],
            &[0xa4],
            &[0xa5],
            &[0xa6],
            &[0xa7],
            &[0xaa],
            &[0xab],
            &[0xac],
            &[0xad],
            &[0xae],
            &[0xaf],
            &[0x6c],
            &[0x6f],
            &[0xe4],
            &[0xe5],
            &[0xe6],
            &[0xe7],
            &[0xec],
            &[0xed],
            &[0xee],
            &[0xef],
            &[0xf4],
            &[0xfa],
            &[0xfb],
            &[0x9c],
            &[0x9d],
            &[0x0f, 0xa2],
            &[0x0f, 0x31],
            &[0xcc],
            &[0xf1],
            &[0x0f, 0x0b],
            &[0x0f, 0xb9],
            &[0x0f, 0xff],
            &[0x0f, 0xa0],
            &[0x0f, 0xa1],
            &[0x0f, 0xa8],
            &[0x0f, 0xa9],
            &[0x74],
            &[0x0f, 0x8c],
        ];
        const PREFIXES: &[u8] = &[
            0x66, 0x67, 0xf2, 0xf3, 0x64, 0x65, 0x2e, 0x26, 0x48, 0x41, 0x4f,
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for i in 0..40_000 {
            let mut code = Vec::new();
            for _ in 0..rnd() % 4 {
                code.push(PREFIXES[(rnd() % PREFIXES.len() as u64) as usize]);
            }
            code.extend_from_slice(OPCODES[i % OPCODES.len()]);
            code.extend((0..12).map(|_| rnd() as u8));
            let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
            for r in 0..16 {
                let v = rnd();
                cpu.gpr[r] = if v & 1 == 0 { v } else { v % RAM as u64 };
            }
            cpu.gpr[1] %= 64; // keep REP counts short
            cpu.rflags |= rnd() & (rflags::ARITH | rflags::DF);
            cpu.seg[crate::state::seg::FS].base = rnd() % 0x100;
            let _ = step1(&mut cpu, &mut env, &code);
        }
    }
}
