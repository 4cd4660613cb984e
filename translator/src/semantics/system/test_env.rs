//! A tiny machine for the semantics' unit tests: flat RAM at address 0, recorded hypercalls,
//! and helpers to assemble and interpret code. Shared by the family modules' tests.

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
    /// Every hypercall and port access ([`Helper::LeanHypercall`]): (arguments, b, c).
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
            Helper::LeanHypercall => {
                // The device access alone: the instruction itself completes in the block.
                let args = HypercallArgs::decode(a[0]).expect("the translator packs valid args");
                self.hypercalls.push((args, a[1], a[2]));
                self.calls.push((h, a));
                let bits = 8 * u32::from(args.op_size.min(8));
                self.in_value & u64::MAX.checked_shr(64 - bits).unwrap_or(0)
            }
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
