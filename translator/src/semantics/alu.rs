//! ADD ADC SUB SBB CMP AND OR XOR TEST INC DEC NEG NOT, and the flag instructions CLC STC
//! CMC LAHF SAHF.
//!
//! Invariants:
//! - Every flag-setting instruction here records a lazy descriptor ([`FlagOp`]); nothing is
//!   computed unless a reader asks. CMP and TEST never write their destination.
//! - A memory destination is loaded, then stored once; the flags and any register write are
//!   pending, so a faulting store leaves the state of the instruction's start.
//! - LOCK needs no work (one vCPU); the decoder already rejects LOCK on register forms.
//!
//! Flags the manuals leave undefined, as measured on the host (the same on an AMD EPYC, Zen 5,
//! and an Intel Xeon, family 6 model 0xCF; see the tests): AF after AND/OR/XOR/TEST is 0,
//! which is what `FlagOp::Logic` yields.
use iced_x86::{Mnemonic as M, OpKind, Register};

use crate::ctx::Ctx;
use crate::emit::Emitter;
use crate::flags::FlagOp;
use crate::ir::{BinOp, Ty, UnOp};
use crate::state::rflags;

/// ADD ADC SUB SBB CMP AND OR XOR TEST: `op0 = op0 <op> op1` (sign-extended immediates).
pub fn binary<E: Emitter>(ctx: &mut Ctx<E>) {
    let m = ctx.insn().mnemonic();
    let ty = ctx.op_ty(0);
    let a = ctx.read_op(0);
    let b = ctx.read_op_sext(1, ty);
    let (op, res, aux) = match m {
        M::Add => (FlagOp::Add, ctx.bin(BinOp::Add, a, b), None),
        M::Sub | M::Cmp if same_register(ctx) => (FlagOp::Sub, ctx.c(ty, 0), None),
        M::Sub | M::Cmp => (FlagOp::Sub, ctx.bin(BinOp::Sub, a, b), None),
        M::Adc | M::Sbb => {
            let carry = ctx.flag(rflags::CF);
            let cw = ctx.to_ty(carry, ty, false);
            let (op, bin) = if m == M::Adc {
                (FlagOp::Adc, BinOp::Add)
            } else {
                (FlagOp::Sbb, BinOp::Sub)
            };
            let t = ctx.bin(bin, a, b);
            (op, ctx.bin(bin, t, cw), Some(carry))
        }
        // XOR r, r is the zeroing idiom: a constant result frees later readers from `r`.
        M::Xor if same_register(ctx) => (FlagOp::Logic, ctx.c(ty, 0), None),
        M::Xor => (FlagOp::Logic, ctx.bin(BinOp::Xor, a, b), None),
        M::Or => (FlagOp::Logic, ctx.bin(BinOp::Or, a, b), None),
        M::And | M::Test => (FlagOp::Logic, ctx.bin(BinOp::And, a, b), None),
        _ => return ctx.unsupported(),
    };
    if !matches!(m, M::Cmp | M::Test) {
        ctx.write_op(0, res);
    }
    ctx.set_flags_lazy(op, a, b, res, aux);
}

/// Whether both operands name the same register (`xor eax, eax`).
fn same_register<E: Emitter>(ctx: &Ctx<E>) -> bool {
    let i = ctx.insn();
    i.op_kind(0) == OpKind::Register
        && i.op_kind(1) == OpKind::Register
        && i.op0_register() == i.op1_register()
        && i.op0_register() != Register::None
}

/// INC DEC: add or subtract 1; CF is preserved (it rides in the descriptor's `aux`).
pub fn inc_dec<E: Emitter>(ctx: &mut Ctx<E>) {
    let ty = ctx.op_ty(0);
    let a = ctx.read_op(0);
    let one = ctx.c(ty, 1);
    let (op, bin) = if ctx.insn().mnemonic() == M::Inc {
        (FlagOp::Inc, BinOp::Add)
    } else {
        (FlagOp::Dec, BinOp::Sub)
    };
    let res = ctx.bin(bin, a, one);
    let cf = ctx.flag(rflags::CF);
    ctx.write_op(0, res);
    ctx.set_flags_lazy(op, a, one, res, Some(cf));
}

/// NEG: `0 - op0`, flags as that subtraction (CF = operand != 0).
pub fn neg<E: Emitter>(ctx: &mut Ctx<E>) {
    let ty = ctx.op_ty(0);
    let b = ctx.read_op(0);
    let zero = ctx.c(ty, 0);
    let res = ctx.bin(BinOp::Sub, zero, b);
    ctx.write_op(0, res);
    ctx.set_flags_lazy(FlagOp::Sub, zero, b, res, None);
}

/// NOT: bitwise complement, no flags.
pub fn not<E: Emitter>(ctx: &mut Ctx<E>) {
    let a = ctx.read_op(0);
    let res = ctx.un(UnOp::Not, a);
    ctx.write_op(0, res);
}

/// The flags LAHF stores and SAHF loads: SF ZF AF PF CF (AH bit 1 reads as one).
const AH_FLAGS: u64 = rflags::SF | rflags::ZF | rflags::AF | rflags::PF | rflags::CF;

/// CLC STC CMC LAHF SAHF.
pub fn flag_op<E: Emitter>(ctx: &mut Ctx<E>) {
    match ctx.insn().mnemonic() {
        M::Clc => {
            let v = ctx.c(Ty::I64, 0);
            ctx.update_flags(rflags::CF, v);
        }
        M::Stc => {
            let v = ctx.c(Ty::I64, rflags::CF);
            ctx.update_flags(rflags::CF, v);
        }
        M::Cmc => {
            let cf = ctx.flag(rflags::CF);
            let one = ctx.c(Ty::I8, 1);
            let v = ctx.bin(BinOp::Xor, cf, one);
            let v = ctx.to_ty(v, Ty::I64, false);
            ctx.update_flags(rflags::CF, v);
        }
        M::Lahf => {
            let bits = ctx.flags_bits();
            let m = ctx.c(Ty::I64, AH_FLAGS);
            let v = ctx.bin(BinOp::And, bits, m);
            let fixed = ctx.c(Ty::I64, rflags::FIXED);
            let v = ctx.bin(BinOp::Or, v, fixed);
            let v = ctx.to_ty(v, Ty::I8, false);
            ctx.set_reg(Register::AH, v);
        }
        M::Sahf => {
            let ah = ctx.reg(Register::AH);
            let v = ctx.to_ty(ah, Ty::I64, false);
            ctx.update_flags(AH_FLAGS, v);
        }
        _ => ctx.unsupported(),
    }
}

/// Host-probe test support shared by the semantics families: run an instruction (or a short
/// sequence) natively through inline assembly, through the interpreter and through the JIT
/// from the same state, and compare all three.
#[cfg(test)]
pub(crate) mod probe {
    use crate::decode::{decode_block, DecodedBlock};
    use crate::flags::Vendor;
    use crate::helpers::Helper;
    use crate::interp::{run_block_as, InterpEmitter, InterpEnv};
    use crate::jit::{Jit, JitConfig, JitEnv, JitError, MemoryModel};
    use crate::semantics::translate_block;
    use crate::state::{reg, rflags, CpuState, ExitReason};
    use crate::{Exception, Mode};

    /// Register file image the native runner loads and stores (RSP's slot is ignored).
    /// Offsets are fixed: `gpr` at 0, `flags` at 128, `start`/`end` (the instruction's
    /// address range in our own text) at 136/144.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default)]
    pub struct Native {
        pub gpr: [u64; 16],
        pub flags: u64,
        pub start: u64,
        pub end: u64,
    }

    /// Size of the memory window; RDI points at its middle in both worlds.
    pub const MEM: usize = 1024;
    /// Guest address of the window in the interpreter's flat RAM.
    const GUEST_MEM: u64 = 0x8000;

    /// Build a native runner for an instruction (or a `;`-separated sequence without
    /// branches) given in Intel syntax. It may use every GPR but RSP, memory through RDI,
    /// and must not change RDI.
    macro_rules! native {
        ($insn:literal) => {{
            fn run(s: &mut $crate::semantics::alu::probe::Native) {
                // SAFETY: the asm saves and restores every register the compiler relies on
                // (RBX, RBP by push/pop, R15 the state pointer), declares the others
                // clobbered, and leaves DF clear; the tested instruction only touches
                // registers and the memory RDI points to, which the caller owns.
                unsafe {
                    core::arch::asm!(
                        "push rbp", "push rbx", "push r15",
                        "lea rax, [rip + 2f]", "mov [r15 + 136], rax",
                        "lea rax, [rip + 3f]", "mov [r15 + 144], rax",
                        "push qword ptr [r15 + 128]", "popfq",
                        "mov rax, [r15]", "mov rcx, [r15 + 8]", "mov rdx, [r15 + 16]",
                        "mov rbx, [r15 + 24]", "mov rbp, [r15 + 40]", "mov rsi, [r15 + 48]",
                        "mov rdi, [r15 + 56]", "mov r8, [r15 + 64]", "mov r9, [r15 + 72]",
                        "mov r10, [r15 + 80]", "mov r11, [r15 + 88]", "mov r12, [r15 + 96]",
                        "mov r13, [r15 + 104]", "mov r14, [r15 + 112]", "mov r15, [r15 + 120]",
                        "2:", $insn, "3:",
                        "pushfq", "push r15", "mov r15, [rsp + 16]",
                        "mov [r15], rax", "mov [r15 + 8], rcx", "mov [r15 + 16], rdx",
                        "mov [r15 + 24], rbx", "mov [r15 + 40], rbp", "mov [r15 + 48], rsi",
                        "mov [r15 + 56], rdi", "mov [r15 + 64], r8", "mov [r15 + 72], r9",
                        "mov [r15 + 80], r10", "mov [r15 + 88], r11", "mov [r15 + 96], r12",
                        "mov [r15 + 104], r13", "mov [r15 + 112], r14",
                        "pop qword ptr [r15 + 120]", "pop qword ptr [r15 + 128]",
                        "pop r15", "pop rbx", "pop rbp", "cld",
                        in("r15") s as *mut $crate::semantics::alu::probe::Native,
                        out("rax") _, out("rcx") _, out("rdx") _, out("rsi") _,
                        out("rdi") _, out("r8") _, out("r9") _, out("r10") _, out("r11") _,
                        out("r12") _, out("r13") _, out("r14") _,
                    );
                }
            }
            run as fn(&mut $crate::semantics::alu::probe::Native)
        }};
    }
    pub(crate) use native;

    /// Flat RAM at address 0 with the helpers semantics call (memory, flags, divide).
    pub struct FlatRam(pub Vec<u8>);
    impl InterpEnv for FlatRam {
        fn helper(&mut self, cpu: &mut CpuState, h: Helper, a: [u64; 3]) -> u64 {
            let (addr, size) = (a[0] as usize, a[1] as usize);
            match h {
                Helper::MemRead | Helper::MemWrite
                    if size > 8 || addr.checked_add(size).is_none_or(|e| e > self.0.len()) =>
                {
                    cpu.raise(Exception::PageFault {
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
                    cpu.rflags & rflags::ARITH
                }
                Helper::DivU | Helper::DivS => {
                    let size = cpu.helper_out[3] as u32;
                    let signed = h == Helper::DivS;
                    match super::super::muldiv::divide(signed, size, a[0], a[1], a[2]) {
                        Ok((q, r)) => {
                            cpu.helper_out[0] = r;
                            q
                        }
                        Err(e) => {
                            cpu.raise(e);
                            0
                        }
                    }
                }
                _ => 0,
            }
        }
    }

    /// Outcome of one instruction: registers (RDI relative to the memory window), the
    /// arithmetic flags plus DF, and the memory window.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Outcome {
        pub gpr: [u64; 16],
        pub flags: u64,
        pub mem: Vec<u8>,
    }

    const COMPARED_FLAGS: u64 = rflags::ARITH | rflags::DF;

    /// Execute natively; also return the instruction's bytes (read from our own text).
    /// `gpr[RDI]` is an offset from the middle of the memory window.
    pub fn run_native(
        run: fn(&mut Native),
        gpr: [u64; 16],
        flags: u64,
        mem: &[u8],
    ) -> (Outcome, Vec<u8>) {
        let mut m = mem.to_vec();
        m.resize(MEM, 0);
        let base = m.as_mut_ptr() as u64 + MEM as u64 / 2;
        let mut n = Native {
            gpr,
            flags: (flags & COMPARED_FLAGS) | rflags::FIXED,
            ..Native::default()
        };
        n.gpr[reg::RDI] = n.gpr[reg::RDI].wrapping_add(base);
        run(&mut n);
        n.gpr[reg::RDI] = n.gpr[reg::RDI].wrapping_sub(base);
        n.gpr[reg::RSP] = 0;
        let len = n.end.wrapping_sub(n.start) as usize;
        assert!(len > 0 && len <= 256, "bad instruction range");
        // SAFETY: [start, end) is the tested instruction inside the runner's own code, which
        // is mapped readable; the length was checked just above.
        let bytes = unsafe { std::slice::from_raw_parts(n.start as *const u8, len).to_vec() };
        let out = Outcome {
            gpr: n.gpr,
            flags: n.flags & COMPARED_FLAGS,
            mem: m,
        };
        (out, bytes)
    }

    /// Execute `bytes` (one or more instructions) through the interpreter's emitter from the
    /// same state (`mem` is the window, RDI its middle), translated as one block so flags
    /// stay lazy between the instructions as in the JIT. Returns how the block left
    /// (`Jump` = ran to its end), the outcome, and the final state.
    pub fn run_interp(
        bytes: &[u8],
        gpr: [u64; 16],
        flags: u64,
        mem: &[u8],
    ) -> (ExitReason, Outcome, CpuState) {
        run_interp_as(Vendor::host(), bytes, gpr, flags, mem)
    }

    /// As [`run_interp`], translating for `vendor`'s undefined flags.
    pub fn run_interp_as(
        vendor: Vendor,
        bytes: &[u8],
        gpr: [u64; 16],
        flags: u64,
        mem: &[u8],
    ) -> (ExitReason, Outcome, CpuState) {
        let block = decode_block(bytes, 0x1000, Mode::LONG64_CPL0, 16);
        let mut ram = FlatRam(vec![0; 0x10000]);
        let base = GUEST_MEM as usize;
        let n = mem.len().min(MEM);
        ram.0[base..base + n].copy_from_slice(&mem[..n]);
        let mut cpu = CpuState {
            gpr,
            rflags: (flags & COMPARED_FLAGS) | rflags::FIXED,
            ..CpuState::default()
        };
        let mid = GUEST_MEM + MEM as u64 / 2;
        cpu.gpr[reg::RDI] = cpu.gpr[reg::RDI].wrapping_add(mid);
        let exit = if block.insns.len() == 1 {
            run_block_as(
                vendor,
                &mut cpu,
                &mut ram,
                &block.insns[..1],
                Mode::LONG64_CPL0,
            )
            .exit
        } else {
            let e = InterpEmitter::new(&mut cpu, &mut ram);
            let _ = translate_block(e, &block, Mode::LONG64_CPL0, 0xffff, vendor);
            match cpu.status {
                0 if cpu.rip == block.next_pc() => ExitReason::Jump,
                0 => ExitReason::Unsupported,
                s => ExitReason::from_u64(s).unwrap_or(ExitReason::Exception),
            }
        };
        let mut out = cpu.gpr;
        out[reg::RDI] = out[reg::RDI].wrapping_sub(mid);
        out[reg::RSP] = 0;
        let o = Outcome {
            gpr: out,
            flags: cpu.full_rflags() & COMPARED_FLAGS,
            mem: ram.0[base..base + MEM].to_vec(),
        };
        (exit, o, cpu)
    }

    type HelperFn = extern "C" fn(*mut CpuState, u64, u64, u64) -> u64;
    type Trampoline = extern "C" fn(*mut CpuState, usize) -> u64;

    extern "C" fn shim<const H: usize>(cpu: *mut CpuState, a: u64, b: u64, c: u64) -> u64 {
        // SAFETY: generated code passes the `CpuState` `JitRunner::run` entered it with,
        // live and unborrowed while the block runs; `runtime` holds the address of the
        // runner's boxed `FlatRam`, equally unborrowed during the run.
        let (cpu, ram) = unsafe { (&mut *cpu, &mut *((*cpu).runtime as *mut FlatRam)) };
        ram.helper(cpu, Helper::ALL[H], [a, b, c])
    }

    const SHIMS: [HelperFn; 15] = [
        shim::<0>, shim::<1>, shim::<2>, shim::<3>, shim::<4>, shim::<5>, shim::<6>, shim::<7>,
        shim::<8>, shim::<9>, shim::<10>, shim::<11>, shim::<12>, shim::<13>, shim::<14>,
    ];

    /// The JIT's view of the runner's machine: flat RAM, no translated-code pages, no links.
    struct FlatJitEnv {
        ram: usize,
        bitmap: usize,
    }
    impl JitEnv for FlatJitEnv {
        fn helper_addr(&self, h: Helper) -> usize {
            SHIMS[Helper::ALL.iter().position(|&x| x == h).unwrap_or(0)] as usize
        }
        fn memory(&self) -> MemoryModel {
            MemoryModel::Flat {
                ram_base: self.ram,
                ram_size: GUEST_RAM as u64,
                code_bitmap: self.bitmap,
                code_bitmap_len: (GUEST_RAM >> 12) as u64,
            }
        }
        fn link_slot(&mut self, _target_pc: u64) -> Option<usize> {
            None
        }
    }

    const GUEST_RAM: usize = 0x10000;

    /// Runs blocks through the JIT on a flat RAM whose address the code has baked in.
    pub struct JitRunner {
        jit: Jit,
        maps: Vec<memmap2::Mmap>,
        trampoline: Trampoline,
        ram: Box<FlatRam>,
        bitmap: Box<[u8; GUEST_RAM >> 12]>,
        compiled: Option<(Vec<u8>, usize)>,
    }

    impl JitRunner {
        pub fn new() -> JitRunner {
            JitRunner::for_vendor(Vendor::host())
        }

        /// A runner whose JIT translates for `vendor`'s undefined flags.
        pub fn for_vendor(vendor: Vendor) -> JitRunner {
            let config = JitConfig {
                vendor,
                ..JitConfig::default()
            };
            let mut jit = Jit::with_config(config).expect("host JIT");
            let mut maps = Vec::new();
            let t = install(&mut maps, &jit.entry_trampoline().expect("trampoline"));
            // SAFETY: `t` is the entry trampoline just compiled for this host, a complete
            // function with exactly this C signature, in executable memory `maps` keeps.
            let trampoline = unsafe { std::mem::transmute::<usize, Trampoline>(t) };
            JitRunner {
                jit,
                maps,
                trampoline,
                ram: Box::new(FlatRam(vec![0; GUEST_RAM])),
                bitmap: Box::new([0; GUEST_RAM >> 12]),
                compiled: None,
            }
        }

        /// Host code of the block `bytes` at 0x1000 (compiled once per distinct bytes).
        fn block(&mut self, bytes: &[u8]) -> usize {
            if let Some((b, host)) = &self.compiled {
                if b == bytes {
                    return *host;
                }
            }
            let block = decode_block(bytes, 0x1000, Mode::LONG64_CPL0, 16);
            let mut env = FlatJitEnv {
                ram: self.ram.0.as_ptr() as usize,
                bitmap: self.bitmap.as_ptr() as usize,
            };
            let c = self
                .jit
                .translate(&block, Mode::LONG64_CPL0, &mut env)
                .unwrap_or_else(|e| panic!("JIT of {bytes:02x?}: {e}"));
            let host = install(&mut self.maps, &c.code);
            self.compiled = Some((bytes.to_vec(), host));
            host
        }

        /// Translate one block without running it (robustness checks).
        pub fn translate(&mut self, block: &DecodedBlock, mode: Mode) -> Result<(), JitError> {
            let mut env = FlatJitEnv {
                ram: self.ram.0.as_ptr() as usize,
                bitmap: self.bitmap.as_ptr() as usize,
            };
            self.jit.translate(block, mode, &mut env).map(|_| ())
        }

        /// As [`run_interp`], through the JIT.
        pub fn run(
            &mut self,
            bytes: &[u8],
            gpr: [u64; 16],
            flags: u64,
            mem: &[u8],
        ) -> (ExitReason, Outcome, CpuState) {
            let host = self.block(bytes);
            self.ram.0.fill(0);
            let base = GUEST_MEM as usize;
            let n = mem.len().min(MEM);
            self.ram.0[base..base + n].copy_from_slice(&mem[..n]);
            let mid = GUEST_MEM + MEM as u64 / 2;
            let mut cpu = CpuState {
                gpr,
                rip: 0x1000,
                rflags: (flags & COMPARED_FLAGS) | rflags::FIXED,
                runtime: &mut *self.ram as *mut FlatRam as usize,
                ..CpuState::default()
            };
            cpu.gpr[reg::RDI] = cpu.gpr[reg::RDI].wrapping_add(mid);
            let exit =
                ExitReason::from_u64((self.trampoline)(&mut cpu, host)).expect("valid exit reason");
            let mut out = cpu.gpr;
            out[reg::RDI] = out[reg::RDI].wrapping_sub(mid);
            out[reg::RSP] = 0;
            let o = Outcome {
                gpr: out,
                flags: cpu.full_rflags() & COMPARED_FLAGS,
                mem: self.ram.0[base..base + MEM].to_vec(),
            };
            (exit, o, cpu)
        }
    }

    /// Copy `code` to fresh executable memory; its address.
    fn install(maps: &mut Vec<memmap2::Mmap>, code: &[u8]) -> usize {
        let mut m = memmap2::MmapMut::map_anon(code.len().max(1)).expect("map code");
        m[..code.len()].copy_from_slice(code);
        let m = m.make_exec().expect("make code executable");
        let addr = m.as_ptr() as usize;
        maps.push(m);
        addr
    }

    /// Run natively, interpreted and through the JIT; describe any difference.
    pub fn compare(
        run: fn(&mut Native),
        gpr: [u64; 16],
        flags: u64,
        mem: &[u8],
    ) -> Result<(), String> {
        compare_with(&mut JitRunner::new(), run, gpr, flags, mem)
    }

    /// As [`compare`], reusing a JIT runner (and its compiled block).
    pub fn compare_with(
        jit: &mut JitRunner,
        run: fn(&mut Native),
        gpr: [u64; 16],
        flags: u64,
        mem: &[u8],
    ) -> Result<(), String> {
        let (native, bytes) = run_native(run, gpr, flags, mem);
        let end = 0x1000 + bytes.len() as u64;
        let (exit, interp, cpu) = run_interp(&bytes, gpr, flags, mem);
        if exit != ExitReason::Jump || cpu.rip != end {
            return Err(format!(
                "{bytes:02x?}: interp exit {exit:?} rip {:#x}",
                cpu.rip
            ));
        }
        let (jexit, jitted, jcpu) = jit.run(&bytes, gpr, flags, mem);
        if jexit != ExitReason::Jump || jcpu.rip != end {
            return Err(format!(
                "{bytes:02x?}: jit exit {jexit:?} rip {:#x}",
                jcpu.rip
            ));
        }
        let mut msg = String::new();
        for (name, got) in [("interp", &interp), ("jit", &jitted)] {
            for i in 0..16 {
                if native.gpr[i] != got.gpr[i] {
                    msg += &format!(
                        " r{i} native {:#x} {name} {:#x};",
                        native.gpr[i], got.gpr[i]
                    );
                }
            }
            if native.flags != got.flags {
                msg += &format!(
                    " flags native {:#x} {name} {:#x} (diff {:#x});",
                    native.flags,
                    got.flags,
                    native.flags ^ got.flags
                );
            }
            if native.mem != got.mem {
                msg += &format!(" {name} memory differs;");
            }
        }
        if msg.is_empty() {
            return Ok(());
        }
        Err(format!(
            "{bytes:02x?} in gpr {gpr:x?} flags {flags:#x}:{msg}"
        ))
    }

    /// A small deterministic generator (xorshift64*).
    pub struct Rng(pub u64);
    impl Rng {
        pub fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        /// A value biased toward edge cases (0, ±1, sign boundaries at every width, small).
        pub fn interesting(&mut self) -> u64 {
            const EDGES: [u64; 12] = [
                0,
                1,
                u64::MAX,
                0x7F,
                0x80,
                0xFF,
                0x7FFF,
                0x8000,
                0x7FFF_FFFF,
                0x8000_0000,
                0x7FFF_FFFF_FFFF_FFFF,
                0x8000_0000_0000_0000,
            ];
            match self.next() % 8 {
                0 | 1 => EDGES[(self.next() % 12) as usize],
                2 => self.next() % 16,
                3 => EDGES[(self.next() % 12) as usize]
                    .wrapping_add(self.next() % 3)
                    .wrapping_sub(1),
                _ => self.next(),
            }
        }
        /// A full register file of interesting values, and arithmetic flags.
        pub fn state(&mut self) -> ([u64; 16], u64) {
            let mut g = [0u64; 16];
            for v in g.iter_mut() {
                *v = self.interesting();
            }
            g[reg::RDI] = 0;
            (g, self.next() & rflags::ARITH)
        }
    }

    /// What one vendor's CPU leaves after a hand-written case: the arithmetic flags, and
    /// the registers listed (others are not checked).
    #[derive(Clone, Copy, Debug)]
    pub struct Want {
        pub flags: u64,
        pub regs: &'static [(usize, u64)],
    }

    /// A flags-only [`Want`].
    pub const fn flags_only(flags: u64) -> Want {
        Want { flags, regs: &[] }
    }

    /// A hand-written case for a vendor-specific rule: from registers `set` (the others 0;
    /// RDI is the memory window's middle) and arithmetic flags `fin`, each vendor's CPU gives
    /// `want` (Intel's, AMD's). The interpreter and the JIT are checked translating for each
    /// vendor, the host against its own vendor's expectation.
    pub fn vendor_rule(
        what: &str,
        run: fn(&mut Native),
        set: &[(usize, u64)],
        fin: u64,
        [intel, amd]: [Want; 2],
    ) {
        let mut g = [0u64; 16];
        for &(r, v) in set {
            g[r] = v;
        }
        let mem = vec![0x5a; MEM];
        let (native, bytes) = run_native(run, g, fin, &mem);
        for (vendor, want) in [(Vendor::Intel, intel), (Vendor::Amd, amd)] {
            let (_, interp, _) = run_interp_as(vendor, &bytes, g, fin, &mem);
            let (_, jitted, _) = JitRunner::for_vendor(vendor).run(&bytes, g, fin, &mem);
            let mut outs = vec![("interp", interp), ("jit", jitted)];
            if vendor == Vendor::host() {
                outs.push(("host", native.clone()));
            }
            for (name, out) in outs {
                let got = out.flags & rflags::ARITH;
                assert_eq!(
                    got, want.flags,
                    "{what}: {vendor:?} flags, {name} gives {got:#x}, want {:#x}",
                    want.flags
                );
                for &(r, v) in want.regs {
                    assert_eq!(out.gpr[r], v, "{what}: {vendor:?} r{r}, {name}");
                }
            }
        }
    }

    /// Compare `runs` random states (and a random memory window) for one instruction.
    pub fn fuzz(run: fn(&mut Native), runs: usize, seed: u64) {
        fuzz_with(run, runs, seed, |_, _, _| {});
    }

    /// As [`fuzz`], letting `fix` adjust each state and memory window (whose middle RDI
    /// points to), e.g. to avoid #DE or bound bit offsets.
    pub fn fuzz_with(
        run: fn(&mut Native),
        runs: usize,
        seed: u64,
        mut fix: impl FnMut(&mut [u64; 16], &mut [u8], &mut Rng),
    ) {
        let mut rng = Rng(seed | 1);
        let mut failures = Vec::new();
        let mut jit = JitRunner::new();
        for _ in 0..runs {
            let (mut g, f) = rng.state();
            let mut mem: Vec<u8> = (0..MEM).map(|_| rng.next() as u8).collect();
            fix(&mut g, &mut mem, &mut rng);
            if let Err(e) = compare_with(&mut jit, run, g, f, &mem) {
                failures.push(e);
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {runs} differ; first: {}",
            failures.len(),
            failures[0]
        );
    }
}

#[cfg(test)]
mod tests {
    use super::probe::{fuzz, native};

    #[test]
    fn add_adc_sub_sbb_cmp_match_host() {
        fuzz(native!("add eax, ecx"), 300, 1);
        fuzz(native!("add al, cl"), 300, 2);
        fuzz(native!("add ah, bh"), 300, 3);
        fuzz(native!("add rax, rcx"), 300, 4);
        fuzz(native!("add dx, 0x7fff"), 100, 5);
        fuzz(native!("add qword ptr [rdi], -3"), 100, 6);
        fuzz(native!("adc ecx, edx"), 300, 7);
        fuzz(native!("adc byte ptr [rdi + 5], bl"), 300, 8);
        fuzz(native!("adc rax, 0x7fffffff"), 100, 9);
        fuzz(native!("sub r9w, r10w"), 300, 10);
        fuzz(native!("sub rsi, qword ptr [rdi - 8]"), 300, 11);
        fuzz(native!("sbb ecx, edx"), 300, 12);
        fuzz(native!("sbb bl, 0x80"), 300, 13);
        fuzz(native!("sbb rax, rax"), 100, 14);
        fuzz(native!("cmp rax, rbx"), 300, 15);
        fuzz(native!("cmp word ptr [rdi], 5"), 300, 16);
        fuzz(native!("sub eax, eax"), 50, 17);
        fuzz(native!("lock add dword ptr [rdi + 12], esi"), 100, 18);
    }

    #[test]
    fn logic_matches_host_including_af() {
        fuzz(native!("and eax, ecx"), 300, 21);
        fuzz(native!("and r8b, 0x0f"), 300, 22);
        fuzz(native!("or rdx, qword ptr [rdi]"), 300, 23);
        fuzz(native!("or word ptr [rdi + 2], si"), 300, 24);
        fuzz(native!("xor rax, -1"), 300, 25);
        fuzz(native!("xor eax, eax"), 50, 26);
        fuzz(native!("xor ch, dh"), 300, 27);
        fuzz(native!("test esi, r10d"), 300, 28);
        fuzz(native!("test byte ptr [rdi], 0x81"), 300, 29);
        fuzz(native!("test r12, r13"), 300, 30);
        fuzz(native!("lock xor qword ptr [rdi], r11"), 100, 31);
    }

    #[test]
    fn inc_dec_neg_not_match_host() {
        fuzz(native!("inc eax"), 300, 41);
        fuzz(native!("inc byte ptr [rdi]"), 300, 42);
        fuzz(native!("dec r11w"), 300, 43);
        fuzz(native!("dec rcx"), 300, 44);
        fuzz(native!("lock inc dword ptr [rdi + 4]"), 100, 45);
        fuzz(native!("neg al"), 300, 46);
        fuzz(native!("neg rbx"), 300, 47);
        fuzz(native!("neg word ptr [rdi]"), 300, 48);
        fuzz(native!("not ecx"), 100, 49);
        fuzz(native!("not bh"), 100, 50);
        fuzz(native!("not qword ptr [rdi]"), 100, 51);
    }

    #[test]
    fn flag_instructions_match_host() {
        fuzz(native!("clc"), 50, 61);
        fuzz(native!("stc"), 50, 62);
        fuzz(native!("cmc"), 50, 63);
        fuzz(native!("lahf"), 100, 64);
        fuzz(native!("sahf"), 100, 65);
    }
}
