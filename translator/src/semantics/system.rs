//! Sensitive instructions as hypercall stubs, and the instructions that raise exceptions
//! unconditionally (UD0/UD1/UD2, undefined opcodes).
//!
//! Invariants:
//! - Which instructions are sensitive, and what each one's hypercall is, is data
//!   ([`crate::sensitive`]); this module only marshals operands. Each sensitive instruction
//!   is exactly one [`Ctx::hypercall`], issued before any store of the instruction, so a
//!   handler's exception is precise.
//! - PUSHF and POPF are not stubs where the block's mode rules out virtual-8086 mode, nor
//!   CLI and STI at CPL 0 ([`super::eflags`]).
//! - Privileged instructions in CPL > 0 blocks are not stubs: they raise #GP(0) here, at
//!   translation time, as hardware does. IOPL- and CR4-dependent checks are the handler's.
//! - Instructions whose entry ends the block leave right after the handler, which may have
//!   changed RIP, the mode or the address space: to the dispatcher, to the host code the
//!   handler returned, or on in the block when it returned 0 ([`crate::sensitive::Resume`]).
//!   Their entries have no destination operand, so the return value is free for that.

use iced_x86::{Code, Instruction, OpKind, Register};

use crate::ctx::Ctx;
use crate::emit::Emitter;
use crate::exception::Exception;
use crate::ir::{BinOp, Ty};
use crate::sensitive::{Class, Entry, Hypercall as H, HypercallArgs};

/// An undefined opcode: #UD at the instruction.
pub fn invalid<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.raise(Exception::InvalidOpcode)
}

/// UD0/UD1/UD2: #UD at the instruction.
pub fn trap<E: Emitter>(ctx: &mut Ctx<E>) {
    ctx.raise(Exception::InvalidOpcode)
}

/// Lower the sensitive instruction `entry` describes to its hypercall stub.
pub fn sensitive<E: Emitter>(ctx: &mut Ctx<E>, entry: Entry) {
    if entry.class == Class::Privileged && ctx.mode().cpl != 0 {
        return ctx.raise(Exception::GeneralProtection(0));
    }
    if super::eflags::in_line(ctx, entry.call) {
        return;
    }
    let insn = *ctx.insn();
    let mut args = HypercallArgs {
        kind: entry.call,
        len: insn.len() as u8,
        op_size: default_op_size(&insn, ctx.mode().bitness),
        addr_size: ctx.addr_ty().bytes() as u8,
        extra: 0,
        extra2: 0,
        imm: 0,
    };
    let zero = ctx.c(Ty::I64, 0);
    let (mut b, mut c) = (zero, zero);
    match entry.call {
        H::In | H::Out => {
            let (port_op, data_op) = if entry.call == H::In { (1, 0) } else { (0, 1) };
            b = io_port(ctx, port_op);
            let data = insn.op_register(data_op);
            args.op_size = data.size() as u8;
            if entry.call == H::Out {
                c = ctx.reg(data);
            }
        }
        H::Ins | H::Outs => {
            args.op_size = string_elem_size(&insn);
            args.extra = u8::from(insn.has_rep_prefix() || insn.has_repne_prefix());
            if entry.call == H::Outs {
                args.extra |= seg_index(insn.memory_segment()) << 4;
            }
        }
        H::Pushf => args.op_size = push_size(&insn, ctx.mode().bitness),
        H::Popf => {
            args.op_size = push_size(&insn, ctx.mode().bitness);
            b = ctx.pop(op_ty(args.op_size));
        }
        H::Int => {
            let (vector, kind) = match insn.code() {
                Code::Int3 => (3, 1),
                Code::Into => (4, 2),
                Code::Int1 => (1, 3),
                _ => (insn.immediate8(), 0),
            };
            args.extra = vector;
            args.extra2 = kind;
        }
        H::MovToCr | H::MovToDr => {
            args.extra = control_number(insn.op0_register());
            args.op_size = insn.op1_register().size() as u8;
            b = ctx.reg(insn.op1_register());
        }
        H::MovFromCr | H::MovFromDr => {
            args.extra = control_number(insn.op1_register());
            args.op_size = insn.op0_register().size() as u8;
        }
        H::Lgdt | H::Lidt | H::Sgdt | H::Sidt | H::Invlpg => {
            if ctx.mode().bitness == 64 {
                args.op_size = 8;
            }
            b = ctx.op_addr();
        }
        H::Invpcid => {
            b = ctx.op_addr();
            c = ctx.read_op(0);
        }
        H::Lldt | H::Ltr | H::Lmsw | H::Verr | H::Verw => b = selector_operand(ctx, 0),
        H::Sldt | H::Str | H::Smsw => args.op_size = ctx.op_ty(0).bytes() as u8,
        H::Lar | H::Lsl => {
            args.op_size = insn.op0_register().size() as u8;
            args.extra = gpr_number(insn.op0_register());
            b = selector_operand(ctx, 1);
        }
        H::LoadSeg => {
            if insn.op_count() == 1 {
                // POP Sreg: the pop's RSP update commits after the handler accepted it.
                args.extra = seg_index(insn.op0_register());
                args.op_size = push_size(&insn, ctx.mode().bitness);
                let v = ctx.pop(op_ty(args.op_size));
                b = ctx.to_ty(v, Ty::I16, false);
            } else {
                args.extra = seg_index(insn.op0_register());
                b = selector_operand(ctx, 1);
            }
        }
        H::ReadSeg => {
            let seg = if insn.op_count() == 1 {
                insn.op0_register()
            } else {
                insn.op1_register()
            };
            args.extra = seg_index(seg);
            if insn.op_count() == 1 {
                args.op_size = push_size(&insn, ctx.mode().bitness);
            } else {
                args.op_size = ctx.op_ty(0).bytes() as u8;
            }
        }
        H::LoadFarPtr => {
            args.extra = match insn.code().mnemonic() {
                iced_x86::Mnemonic::Les => 0,
                iced_x86::Mnemonic::Lss => 2,
                iced_x86::Mnemonic::Lds => 3,
                iced_x86::Mnemonic::Lfs => 4,
                _ => 5,
            };
            args.extra2 = gpr_number(insn.op0_register());
            args.op_size = insn.op0_register().size() as u8;
            (b, c) = far_pointer(ctx, args.op_size);
        }
        H::JmpFar | H::CallFar => match insn.op0_kind() {
            OpKind::FarBranch16 | OpKind::FarBranch32 => {
                args.op_size = if insn.op0_kind() == OpKind::FarBranch16 {
                    2
                } else {
                    4
                };
                b = ctx.c(Ty::I64, u64::from(insn.far_branch_selector()));
                let off = if insn.op0_kind() == OpKind::FarBranch16 {
                    u64::from(insn.far_branch16())
                } else {
                    u64::from(insn.far_branch32())
                };
                c = ctx.c(Ty::I64, off);
            }
            _ => {
                args.op_size = match insn.code() {
                    Code::Jmp_m1616 | Code::Call_m1616 => 2,
                    Code::Jmp_m1632 | Code::Call_m1632 => 4,
                    _ => 8,
                };
                (b, c) = far_pointer(ctx, args.op_size);
            }
        },
        H::RetFar => {
            args.op_size = match insn.code() {
                Code::Retfw | Code::Retfw_imm16 => 2,
                Code::Retfq | Code::Retfq_imm16 => 8,
                _ => 4,
            };
            if insn.op_count() == 1 {
                args.imm = insn.immediate16();
            }
        }
        H::SetAc => args.extra = u8::from(insn.mnemonic() == iced_x86::Mnemonic::Stac),
        H::Iret => {
            args.op_size = match insn.code() {
                Code::Iretw => 2,
                Code::Iretq => 8,
                _ => 4,
            }
        }
        H::Sysret | H::Sysexit => {
            args.op_size = if matches!(insn.code(), Code::Sysretq | Code::Sysexitq) {
                8
            } else {
                4
            }
        }
        H::Hlt
        | H::Cli
        | H::Sti
        | H::Cpuid
        | H::Rdtsc
        | H::Rdtscp
        | H::Rdpmc
        | H::Rdmsr
        | H::Wrmsr
        | H::Clts
        | H::Invd
        | H::Wbinvd
        | H::Swapgs
        | H::Syscall
        | H::Sysenter
        | H::Xsetbv => {}
    }
    let r = ctx.hypercall(args.encode(), b, c);
    match entry.call {
        H::In => ctx.set_reg(insn.op0_register(), r),
        H::MovFromCr | H::MovFromDr => ctx.set_reg(insn.op0_register(), r),
        H::Sldt | H::Str | H::Smsw => {
            let v = ctx.to_ty(r, op_ty(args.op_size), false);
            ctx.write_op(0, v)
        }
        H::ReadSeg if insn.op_count() == 1 => {
            let v = ctx.to_ty(r, op_ty(args.op_size), false);
            ctx.push(v)
        }
        H::ReadSeg => {
            let v = ctx.to_ty(r, op_ty(args.op_size), false);
            ctx.write_op(0, v)
        }
        H::Pushf => {
            let v = ctx.to_ty(r, op_ty(args.op_size), false);
            ctx.push(v)
        }
        _ => {}
    }
    if entry.ends_block {
        ctx.resume_after_hypercall(entry.call.resume(), r);
    }
}

/// The operand size of an instruction without an explicit operand (64-bit mode defaults to
/// 4 unless REX.W, which iced reports through the code).
fn default_op_size(insn: &Instruction, bitness: u32) -> u8 {
    if insn.op_count() > 0 && insn.op0_kind() == OpKind::Register {
        return insn.op0_register().size().clamp(1, 8) as u8;
    }
    if bitness == 16 {
        2
    } else {
        4
    }
}

/// The size PUSH/POP-like forms move (PUSHF/POPF and PUSH/POP Sreg): from the stack
/// operand iced reports.
pub(super) fn push_size(insn: &Instruction, bitness: u32) -> u8 {
    let s = insn.stack_pointer_increment().unsigned_abs();
    if s > 0 {
        s.min(8) as u8
    } else if bitness == 64 {
        8
    } else {
        4
    }
}

/// The element size of INS/OUTS.
fn string_elem_size(insn: &Instruction) -> u8 {
    use iced_x86::Mnemonic as M;
    match insn.mnemonic() {
        M::Insb | M::Outsb => 1,
        M::Insw | M::Outsw => 2,
        _ => 4,
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

/// A 16-bit selector operand (register low word or a 16-bit memory read).
fn selector_operand<E: Emitter>(ctx: &mut Ctx<E>, op: u32) -> E::Value {
    let v = if ctx.op_is_mem(op) {
        let a = ctx.op_addr();
        ctx.load(Ty::I16, a)
    } else {
        ctx.read_op(op)
    };
    ctx.to_ty(v, Ty::I16, false)
}

/// (selector, offset) of an m16:16/32/64 far pointer: the offset first, then the selector.
fn far_pointer<E: Emitter>(ctx: &mut Ctx<E>, op_size: u8) -> (E::Value, E::Value) {
    let a = ctx.op_addr();
    let off = ctx.load(op_ty(op_size), a);
    let n = ctx.c(Ty::I64, u64::from(op_size));
    let a2 = ctx.bin(BinOp::Add, a, n);
    let a2 = ctx.wrap_ea(a2);
    let sel = ctx.load(Ty::I16, a2);
    (sel, off)
}

/// The integer type of `bytes` (1, 2, 4 or 8).
pub(super) fn op_ty(bytes: u8) -> Ty {
    Ty::from_bytes(usize::from(bytes)).unwrap_or(Ty::I64)
}

/// Segment register index in encoding order (ES CS SS DS FS GS).
fn seg_index(r: Register) -> u8 {
    match r {
        Register::ES => 0,
        Register::CS => 1,
        Register::SS => 2,
        Register::DS => 3,
        Register::FS => 4,
        Register::GS => 5,
        _ => 3,
    }
}

/// CRn/DRn number.
fn control_number(r: Register) -> u8 {
    if r.is_cr() {
        (r as u32 - Register::CR0 as u32) as u8
    } else {
        (r as u32 - Register::DR0 as u32) as u8
    }
}

/// Number (0..15) of a general-purpose register of any size.
fn gpr_number(r: Register) -> u8 {
    (r.full_register() as u32).wrapping_sub(Register::RAX as u32) as u8 & 15
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
    use crate::sensitive::{Hypercall, HypercallArgs};
    use crate::state::{rflags, CpuState, ExitReason};
    use crate::vector::{Lanes, VBin, VShift, VUn};
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
        /// Every hypercall: (arguments, b, c).
        pub hypercalls: Vec<(HypercallArgs, u64, u64)>,
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
                hypercalls: Vec::new(),
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

    impl TestEnv {
        /// A miniature of the runtime's handlers: enough for the semantics' tests.
        fn hypercall(&mut self, cpu: &mut CpuState, a: [u64; 3]) -> u64 {
            let args = HypercallArgs::decode(a[0]).expect("the translator packs valid args");
            self.hypercalls.push((args, a[1], a[2]));
            let size = usize::from(args.op_size);
            let mask = |v: u64| {
                if size >= 8 {
                    v
                } else {
                    v & ((1u64 << (8 * size)) - 1)
                }
            };
            let next = cpu.rip + u64::from(args.len);
            let r = match args.kind {
                Hypercall::In => mask(self.in_value),
                Hypercall::Cli => {
                    cpu.rflags &= !rflags::IF;
                    0
                }
                Hypercall::Sti => {
                    cpu.rflags |= rflags::IF;
                    0
                }
                Hypercall::Pushf => {
                    cpu.settle_flags();
                    cpu.rflags & !(rflags::VM | rflags::RF)
                }
                Hypercall::Popf => {
                    cpu.settle_flags();
                    let m = rflags::ARITH
                        | rflags::TF
                        | rflags::IF
                        | rflags::DF
                        | rflags::IOPL
                        | rflags::NT
                        | rflags::AC
                        | rflags::ID;
                    let m = if size == 2 { m & 0xffff } else { m };
                    cpu.rflags = (cpu.rflags & !m) | (a[1] & m) | rflags::FIXED;
                    0
                }
                Hypercall::Cpuid => {
                    let (eax, ecx) = (cpu.gpr[0] as u32 as u64, cpu.gpr[1] as u32 as u64);
                    cpu.gpr[0] = 0x1111_0000 | eax;
                    cpu.gpr[3] = 0x2222_0000 | ecx;
                    cpu.gpr[1] = 0x3333_0000 | eax;
                    cpu.gpr[2] = 0x4444_0000 | ecx;
                    0
                }
                Hypercall::Rdtsc => {
                    cpu.gpr[0] = self.tsc & 0xffff_ffff;
                    cpu.gpr[2] = self.tsc >> 32;
                    0
                }
                Hypercall::MovFromCr => cpu.cr3,
                Hypercall::MovToCr => {
                    if args.extra == 3 {
                        cpu.cr3 = a[1];
                    }
                    0
                }
                Hypercall::LoadSeg if a[1] & 0xfffc == 0xfff8 => {
                    cpu.raise(Exception::GeneralProtection(a[1] as u16 & 0xfffc));
                    return 0;
                }
                Hypercall::LoadSeg => {
                    cpu.seg[usize::from(args.extra)].selector = a[1] as u16;
                    0
                }
                Hypercall::ReadSeg => u64::from(cpu.seg[usize::from(args.extra)].selector),
                Hypercall::Int => {
                    cpu.rip = 0x5000 + u64::from(args.extra);
                    return 0;
                }
                _ => 0,
            };
            cpu.rip = next;
            r
        }
    }

    impl InterpEnv for TestEnv {
        fn helper(&mut self, cpu: &mut CpuState, h: Helper, a: [u64; 3]) -> u64 {
            if h.is_hypercall() {
                self.calls.push((h, a));
            }
            let (addr, size) = (a[0] as usize, a[1] as usize);
            let _mask = |v: u64| {
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
                Helper::Hypercall => self.hypercall(cpu, a),
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

    impl crate::emit::VectorOps for Opaque<'_> {
        type Vec = u128;
        fn vconst(&mut self, v: u128) -> u128 {
            v
        }
        fn vbin(&mut self, op: VBin, l: Lanes, a: u128, b: u128) -> u128 {
            self.0.vbin(op, l, a, b)
        }
        fn vun(&mut self, op: VUn, l: Lanes, a: u128) -> u128 {
            self.0.vun(op, l, a)
        }
        fn vshift(&mut self, op: VShift, l: Lanes, a: u128, c: CVal) -> u128 {
            self.0.vshift(op, l, a, c)
        }
        fn vshuffle(&mut self, a: u128, b: u128, m: [u8; 16]) -> u128 {
            self.0.vshuffle(a, b, m)
        }
        fn vextract(&mut self, v: u128, l: Lanes, i: u8) -> CVal {
            self.0.vextract(v, l, i)
        }
        fn vinsert(&mut self, v: u128, l: Lanes, i: u8, x: CVal) -> u128 {
            self.0.vinsert(v, l, i, x)
        }
        fn vsplat(&mut self, l: Lanes, x: CVal) -> u128 {
            self.0.vsplat(l, x)
        }
        fn vmovmsk(&mut self, v: u128, l: Lanes) -> CVal {
            self.0.vmovmsk(v, l)
        }
        fn vselect(&mut self, c: CVal, t: u128, f: u128) -> u128 {
            self.0.vselect(c, t, f)
        }
        fn vblendv(&mut self, l: Lanes, a: u128, b: u128, m: u128) -> u128 {
            self.0.vblendv(l, a, b, m)
        }
        fn vcvt(&mut self, op: crate::vector::VCvt, a: u128) -> u128 {
            self.0.vcvt(op, a)
        }
        fn vcvt_from_int(&mut self, l: Lanes, a: u128, x: CVal) -> u128 {
            self.0.vcvt_from_int(l, a, x)
        }
        fn vcvtt_to_int(&mut self, l: Lanes, a: u128, ty: Ty) -> CVal {
            self.0.vcvtt_to_int(l, a, ty)
        }
        fn vfcmp_flags(&mut self, l: Lanes, a: u128, b: u128, o: bool) -> CVal {
            self.0.vfcmp_flags(l, a, b, o)
        }
    }

    impl Emitter for Opaque<'_> {
        type Label = ();
        type Var = usize;
        type VVar = usize;
        fn vload_state(&mut self, off: u32) -> u128 {
            self.0.vload_state(off)
        }
        fn vstore_state(&mut self, off: u32, v: u128) {
            self.0.vstore_state(off, v)
        }
        fn vload_mem(&mut self, a: CVal) -> u128 {
            self.0.vload_mem(a)
        }
        fn vstore_mem(&mut self, a: CVal, v: u128) {
            self.0.vstore_mem(a, v)
        }
        fn declare_vvar(&mut self) -> usize {
            self.0.declare_vvar()
        }
        fn def_vvar(&mut self, var: usize, v: u128) {
            self.0.def_vvar(var, v)
        }
        fn use_vvar(&mut self, var: usize) -> u128 {
            self.0.use_vvar(var)
        }
        fn call_stub(&mut self, stub: &crate::hostexec::HostStub, how: crate::hostexec::StubCall) {
            self.0.call_stub(stub, how)
        }
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
    use crate::sensitive::Hypercall as H;
    use crate::state::{rflags, ExitReason};
    use crate::{Exception, Mode};

    /// (kind, op_size, extra, b, c) of every hypercall made.
    fn calls(env: &TestEnv) -> Vec<(H, u8, u8, u64, u64)> {
        env.hypercalls
            .iter()
            .map(|&(a, b, c)| (a.kind, a.op_size, a.extra, b, c))
            .collect()
    }

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
        assert_eq!(
            calls(&env),
            [
                (H::In, 1, 0, 0x60, 0),
                (H::In, 2, 0, 0x3f8, 0),
                (H::In, 4, 0, 0x3f8, 0),
                (H::Out, 1, 0, 0x80, 0x88),
                (H::Out, 2, 0, 0x3f8, 0x7788),
                (H::Out, 4, 0, 0x3f8, 0x5566_7788),
            ]
        );
    }

    #[test]
    fn the_handler_sees_the_state_of_the_instructions_start() {
        // The flags of the ADD and the MOV to RBX are in CpuState when CPUID runs.
        let code = asm(|a| {
            a.mov(ebx, 7)?;
            a.add(ecx, ecx)?;
            a.cpuid()?;
            a.hlt()
        });
        let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
        cpu.gpr[0] = 1;
        cpu.gpr[1] = 0x8000_0000;
        run(&mut cpu, &mut env, &code);
        assert_eq!(cpu.gpr[0], 0x1111_0001);
        assert_eq!(cpu.gpr[3], 0x2222_0000, "ECX was 0 after the ADD");
        assert_ne!(
            cpu.full_rflags() & rflags::CF,
            0,
            "the ADD's carry survives"
        );
    }

    #[test]
    fn block_ending_hypercalls_continue_where_the_handler_says() {
        let code = asm(|a| {
            a.hlt()?;
            a.int(0x80)
        });
        let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
        assert_eq!(step1(&mut cpu, &mut env, &code), ExitReason::Jump);
        assert_eq!(cpu.rip, CODE + 1, "HLT: the handler set the next RIP");
        assert_eq!(step1(&mut cpu, &mut env, &code), ExitReason::Jump);
        assert_eq!(cpu.rip, 0x5080, "INT n: the handler's target");
        assert_eq!(calls(&env)[1], (H::Int, 4, 0x80, 0, 0));
    }

    #[test]
    fn privileged_instructions_at_cpl3_raise_gp_without_a_stub() {
        for bytes in [
            &[0xF4][..],         // hlt
            &[0x0F, 0x22, 0xD8], // mov cr3, rax
            &[0x0F, 0x32],       // rdmsr
            &[0x0F, 0x01, 0x10], // lgdt [rax]
            &[0x0F, 0x01, 0xF8], // swapgs
        ] {
            let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
            let insn = iced_x86::Decoder::with_ip(64, bytes, CODE, iced_x86::DecoderOptions::NONE)
                .decode();
            let r = crate::interp::step(&mut cpu, &mut env, &insn, Mode::new(64, 3));
            assert_eq!(r, ExitReason::Exception, "{bytes:x?}");
            assert_eq!(cpu.exception(), Some(Exception::GeneralProtection(0)));
            assert_eq!(cpu.rip, CODE);
            assert!(env.hypercalls.is_empty());
        }
    }

    #[test]
    fn control_register_moves_pass_the_number_and_value() {
        let code = asm(|a| {
            a.mov(cr3, rcx)?;
            a.mov(rdx, cr3)
        });
        let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
        cpu.gpr[1] = 0x12_3000;
        assert_eq!(step1(&mut cpu, &mut env, &code), ExitReason::Jump);
        assert_eq!(cpu.cr3, 0x12_3000);
        step1(&mut cpu, &mut env, &code);
        assert_eq!(cpu.gpr[2], 0x12_3000);
        assert_eq!(
            calls(&env),
            [(H::MovToCr, 8, 3, 0x12_3000, 0), (H::MovFromCr, 8, 3, 0, 0)]
        );
    }

    #[test]
    fn pop_sreg_commits_rsp_only_when_the_load_succeeds() {
        let code = [0x1F]; // pop ds (32-bit code)
        let insn =
            iced_x86::Decoder::with_ip(32, &code, CODE, iced_x86::DecoderOptions::NONE).decode();
        let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
        env.write(STACK, 4, 0x2b);
        crate::interp::step(&mut cpu, &mut env, &insn, Mode::new(32, 0));
        assert_eq!(cpu.seg[crate::state::seg::DS].selector, 0x2b);
        assert_eq!(cpu.gpr[4], STACK + 4);
        assert_eq!(cpu.rip, CODE + 1);
        // A selector the handler refuses: #GP, RSP unchanged.
        let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
        env.write(STACK, 4, 0xfff8);
        let r = crate::interp::step(&mut cpu, &mut env, &insn, Mode::new(32, 0));
        assert_eq!(r, ExitReason::Exception);
        assert_eq!(cpu.gpr[4], STACK);
        assert_eq!(cpu.rip, CODE);
    }

    #[test]
    fn pushf_popf_round_trip_and_sizes() {
        let code = asm(|a| {
            a.pushfq()?;
            a.popfq()?;
            a.pushf()?;
            a.popf()
        });
        let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
        cpu.rflags |= rflags::CF | rflags::ZF;
        step1(&mut cpu, &mut env, &code);
        assert_eq!(cpu.gpr[4], STACK - 8);
        let image = env.read(STACK - 8, 8);
        assert_eq!(
            image & (rflags::CF | rflags::ZF | rflags::IF),
            rflags::CF | rflags::ZF | rflags::IF
        );
        env.write(STACK - 8, 8, image & !rflags::CF);
        assert_eq!(step1(&mut cpu, &mut env, &code), ExitReason::Jump);
        assert_eq!(cpu.full_rflags() & rflags::CF, 0);
        assert_eq!(cpu.gpr[4], STACK);
        step1(&mut cpu, &mut env, &code);
        assert_eq!(cpu.gpr[4], STACK - 2);
        step1(&mut cpu, &mut env, &code);
        assert_eq!(cpu.gpr[4], STACK);
        assert!(
            calls(&env).is_empty(),
            "inline in 64-bit mode (semantics::eflags)"
        );
    }

    #[test]
    fn popf_fault_is_precise() {
        let code = asm(|a| a.popfq());
        let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
        cpu.gpr[4] = RAM as u64 - 4;
        assert_eq!(step1(&mut cpu, &mut env, &code), ExitReason::Exception);
        assert_eq!(cpu.gpr[4], RAM as u64 - 4);
        assert_eq!(cpu.rip, CODE);
        assert!(env.hypercalls.is_empty());
    }

    #[test]
    fn ud_faults_and_int3_is_a_software_interrupt() {
        let code = asm(|a| a.ud2());
        let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
        assert_eq!(step1(&mut cpu, &mut env, &code), ExitReason::Exception);
        assert_eq!(cpu.exception(), Some(Exception::InvalidOpcode));
        assert_eq!(cpu.rip, CODE);
        let code = asm(|a| a.int3());
        step1(&mut cpu, &mut env, &code);
        assert_eq!(calls(&env), [(H::Int, 4, 3, 0, 0)]);
        assert_eq!(env.hypercalls[0].0.extra2, 1, "INT3 is marked");
    }

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
