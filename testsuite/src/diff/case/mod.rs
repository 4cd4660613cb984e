//! Random test cases: one instruction of a [`Form`] with random operands, an input register,
//! flag and floating-point state, the memory it reads, and the addresses control may reach
//! after it.
//!
//! Invariants (each is what makes native execution safe and the comparison meaningful):
//! - Every memory access of the instruction lies in the compared area
//!   (`MEM_BASE .. MEM_BASE + MEM_SIZE`): memory operands target the hot page (or, through
//!   an RSP base, the stack near RSP), the stack pointer is in the stack area, string
//!   operations stay within the hot page for their (small) count, and bit-test offsets are
//!   bounded.
//! - RSP is never an explicitly written operand; it always points into the stack area.
//! - Every possible next RIP (the fall-through and, for control transfers, the one target the
//!   case sets up) is in `pads`, each with `PAD_LEN` bytes of room disjoint from the
//!   instruction and from the other pads.
//! - A case is a pure function of `(seed, index, forms, variants)`. The floating-point input
//!   state and FP memory operands come from a third generator (`Gen::f`), so adding them left
//!   the integer forms' cases as they were.
//! - Forms outside the floating-point families start from the state after FNINIT with the
//!   default MXCSR (`FxArea::default()`).

use iced_x86::{
    Code, Decoder, DecoderOptions, Encoder, Instruction, InstructionInfoFactory, Mnemonic as M,
    OpAccess, OpCodeOperandKind as K, OpKind, Register,
};

mod fpgen;
pub mod fpstate;
pub mod fpvalues;
mod values;

use super::forms::{sized_gpr_kind, Form, Special};
use super::layout::{
    CODE_BASE, CODE_SIZE, HOT_BASE, HOT_SIZE, PAD_LEN, STACK_BASE, STACK_SIZE, STACK_TOP,
};
use super::rng::{width_mask, Rng};
use translator::state::{rflags, FxArea};

/// One generated test case.
#[derive(Clone, Debug)]
pub struct Case {
    /// Index of the case in its run (with the seed, all that is needed to regenerate it).
    pub index: u64,
    pub form: Form,
    /// The instruction as decoded from `bytes` at `ip`.
    pub insn: Instruction,
    pub ip: u64,
    pub bytes: Vec<u8>,
    /// Input GPRs, RAX..R15.
    pub regs: [u64; 16],
    /// Input RFLAGS: bit 1, the arithmetic flags and DF.
    pub rflags: u64,
    /// Memory written before the run (on top of the area's pristine pattern).
    pub mem: Vec<(u64, Vec<u8>)>,
    /// Every address control may reach after the instruction; `pads[0]` is the fall-through.
    pub pads: Vec<u64>,
    /// Input x87/MMX/SSE state (64-bit FXSAVE layout).
    pub fx: FxArea,
}

impl Case {
    /// A hand-written case: `bytes` (one instruction) at `ip`, with the given inputs and
    /// memory patches; `targets` are the extra addresses control may reach (the fall-through
    /// is added). `None` if the bytes are not one valid instruction.
    pub fn custom(
        bytes: &[u8],
        ip: u64,
        regs: [u64; 16],
        rflags: u64,
        mem: Vec<(u64, Vec<u8>)>,
        targets: &[u64],
    ) -> Option<Case> {
        let insn = Decoder::with_ip(64, bytes, ip, DecoderOptions::NONE).decode();
        if insn.is_invalid() || insn.len() != bytes.len() {
            return None;
        }
        let form = super::forms::classify(insn.code()).unwrap_or(Form {
            code: insn.code(),
            family: super::forms::Family::Data,
            special: Special::Plain,
        });
        let mut pads = vec![insn.next_ip()];
        pads.extend(targets.iter().copied().filter(|&t| t != insn.next_ip()));
        Some(Case {
            index: 0,
            form,
            insn,
            ip,
            bytes: bytes.to_vec(),
            regs,
            rflags: rflags::FIXED | (rflags & COMPARED_FLAGS),
            mem,
            pads,
            fx: FxArea::default(),
        })
    }

    /// The same case with the floating-point input state `fx`.
    pub fn with_fx(mut self, fx: FxArea) -> Case {
        self.fx = fx;
        self
    }
}

/// The RFLAGS bits a case sets and compares.
pub const COMPARED_FLAGS: u64 = rflags::ARITH | rflags::DF;

const GPR64: [Register; 16] = [
    Register::RAX,
    Register::RCX,
    Register::RDX,
    Register::RBX,
    Register::RSP,
    Register::RBP,
    Register::RSI,
    Register::RDI,
    Register::R8,
    Register::R9,
    Register::R10,
    Register::R11,
    Register::R12,
    Register::R13,
    Register::R14,
    Register::R15,
];
const GPR32: [Register; 16] = [
    Register::EAX,
    Register::ECX,
    Register::EDX,
    Register::EBX,
    Register::ESP,
    Register::EBP,
    Register::ESI,
    Register::EDI,
    Register::R8D,
    Register::R9D,
    Register::R10D,
    Register::R11D,
    Register::R12D,
    Register::R13D,
    Register::R14D,
    Register::R15D,
];
const GPR16: [Register; 16] = [
    Register::AX,
    Register::CX,
    Register::DX,
    Register::BX,
    Register::SP,
    Register::BP,
    Register::SI,
    Register::DI,
    Register::R8W,
    Register::R9W,
    Register::R10W,
    Register::R11W,
    Register::R12W,
    Register::R13W,
    Register::R14W,
    Register::R15W,
];
const GPR8: [Register; 20] = [
    Register::AL,
    Register::CL,
    Register::DL,
    Register::BL,
    Register::AH,
    Register::CH,
    Register::DH,
    Register::BH,
    Register::SPL,
    Register::BPL,
    Register::SIL,
    Register::DIL,
    Register::R8L,
    Register::R9L,
    Register::R10L,
    Register::R11L,
    Register::R12L,
    Register::R13L,
    Register::R14L,
    Register::R15L,
];

/// Index (0..16) of the 64-bit register containing `r`.
pub fn gpr_index(r: Register) -> usize {
    r.full_register() as usize - Register::RAX as usize
}

/// Whether `r` is one of AH, CH, DH, BH (bits 8..15 of its register).
fn is_high8(r: Register) -> bool {
    matches!(r, Register::AH | Register::CH | Register::DH | Register::BH)
}

const RSP: usize = 4;
const RAX: usize = 0;
const RCX: usize = 1;
const RDX: usize = 2;
const RBP: usize = 5;
const RSI: usize = 6;
const RDI: usize = 7;

/// A chosen operand, before encoding.
#[derive(Clone, Copy, Debug)]
enum Op {
    Reg(Register),
    Mem(MemShape),
    Imm(OpKind, u64),
    Branch,
}

/// A memory operand's encoding.
#[derive(Clone, Copy, Debug)]
struct MemShape {
    base: Register,
    index: Register,
    scale: u32,
    disp: i64,
    displ_size: u32,
}

/// The accessed memory operand of a case: its effective address, size and patched value.
#[derive(Clone, Copy, Debug)]
struct MemTarget {
    addr: u64,
    size: u64,
    value: u64,
}

/// Case construction state. Decisions that shape the encoding (form, registers, addressing,
/// immediates, IP, branch target) come from `s`; input values come from `v`, so the cases
/// of one group share their instruction bytes and differ in their inputs.
struct Gen<'a> {
    s: &'a mut Rng,
    v: &'a mut Rng,
    /// Floating-point input state and FP memory contents.
    f: &'a mut Rng,
    form: Form,
    regs: [u64; 16],
    /// Registers whose value semantic constraints set (never chosen as base or index).
    reserved: u16,
    mem: Vec<(u64, Vec<u8>)>,
    target: Option<MemTarget>,
}

/// Generate case `index` of the run `seed`, drawing its form from `forms` (non-empty).
///
/// The `variants` consecutive cases of a group (`index / variants`) share the instruction
/// bytes and address and differ in register, flag and memory inputs, so the DBT translates
/// the group once and then runs its translation on fresh inputs (which also checks that a
/// translation does not depend on the state it was made in).
pub fn generate(seed: u64, index: u64, forms: &[Form], variants: u64) -> Case {
    let mut s = Rng::for_case(seed, index / variants.max(1));
    let mut v = Rng::for_case(seed ^ 0xA5A5_0F0F_3C3C_9669, index);
    let mut f = Rng::for_case(seed ^ 0x0F10_A7F1_0A75_0003, index);
    let form = forms[s.below(forms.len() as u64) as usize];
    for _ in 0..10_000 {
        if let Some(mut case) = try_generate(&mut s, &mut v, &mut f, form) {
            case.index = index;
            return case;
        }
    }
    panic!("could not generate a case for {:?}", form.code);
}

fn try_generate(s: &mut Rng, v: &mut Rng, f: &mut Rng, form: Form) -> Option<Case> {
    let mut g = Gen {
        s,
        v,
        f,
        form,
        regs: [0; 16],
        reserved: 1 << RSP,
        mem: Vec::new(),
        target: None,
    };
    g.init_regs();
    let rflags = g.init_flags();
    let fx = if form.family.is_fp() {
        fpstate::random_state(g.f, form.family)
    } else {
        FxArea::default()
    };
    let (mut insn, ops) = g.build_insn(rflags)?;
    g.prefix_noise(&mut insn);

    // Length first (it does not depend on IP or target), then the IP, then the target.
    let len = encode(&insn, CODE_BASE + 0x800)?.len() as u64;
    let ip = g.choose_ip(len);
    let next = ip + len;
    let branch_target = match form.special {
        Special::DirectBranch | Special::CountBranch { .. } => {
            let rel8 = form.code.op_code().op_kinds().contains(&K::br64_1);
            let t = g.choose_target(rel8, ip, next);
            insn.set_near_branch64(t);
            Some(t)
        }
        Special::IndirectBranch | Special::Ret => Some(g.choose_target(false, ip, next)),
        _ => None,
    };
    g.semantic_constraints(&ops, branch_target);

    let bytes = encode(&insn, ip)?;
    if bytes.len() as u64 != len {
        return None;
    }
    let decoded = Decoder::with_ip(64, &bytes, ip, DecoderOptions::NONE).decode();
    if decoded.is_invalid() || decoded.len() != bytes.len() || decoded.code() != form.code {
        return None;
    }
    let mut pads = vec![next];
    if let Some(t) = branch_target.filter(|&t| t != next) {
        pads.push(t);
    }
    Some(Case {
        index: 0,
        form,
        insn: decoded,
        ip,
        bytes,
        regs: g.regs,
        rflags,
        mem: g.mem,
        pads,
        fx,
    })
}

fn encode(insn: &Instruction, ip: u64) -> Option<Vec<u8>> {
    let mut enc = Encoder::new(64);
    enc.encode(insn, ip).ok()?;
    Some(enc.take_buffer())
}

/// Bits of a register-or-memory operand kind.
fn kind_bits(k: K) -> u32 {
    match k {
        K::r8_or_mem | K::r8_reg | K::r8_opcode | K::al | K::cl => 8,
        K::r16_or_mem | K::r16_reg | K::r16_opcode | K::ax => 16,
        K::r32_or_mem | K::r32_reg | K::r32_opcode | K::eax => 32,
        _ => 64,
    }
}

/// The operand size of a form: that of its first register or r/m operand (64 if none).
pub fn operand_bits(code: Code) -> u32 {
    let oc = code.op_code();
    for &k in oc.op_kinds() {
        if sized_gpr_kind(k) {
            return kind_bits(k);
        }
    }
    match oc.memory_size().size() {
        1 => 8,
        2 => 16,
        4 => 32,
        _ => 64,
    }
}

impl Gen<'_> {
    fn init_regs(&mut self) {
        for i in 0..16 {
            let w = self.v.pick(&[8, 16, 32, 64]);
            self.regs[i] = self.v.reg_value(w);
        }
        let mut rsp = STACK_TOP - 8 * self.v.below(32);
        if self.v.chance(5) {
            rsp -= self.v.below(8);
        }
        if self.v.chance(3) {
            // A push or pop straddles the page boundary at STACK_TOP.
            rsp = STACK_TOP + 1 + self.v.below(7);
        }
        self.regs[RSP] = rsp;
        if self.v.chance(25) {
            self.regs[RBP] = self.stack_addr();
        }
    }

    /// A random address in the stack area with 0x200 bytes of room on each side.
    fn stack_addr(&mut self) -> u64 {
        let a = STACK_BASE + 0x200 + self.v.below(STACK_SIZE - 0x400);
        if self.v.chance(80) {
            a & !7
        } else {
            a
        }
    }

    fn init_flags(&mut self) -> u64 {
        let df_percent = if matches!(self.form.special, Special::String(_)) {
            50
        } else {
            20
        };
        let mut f = rflags::FIXED | (self.v.next_u64() & rflags::ARITH);
        if self.v.chance(df_percent) {
            f |= rflags::DF;
        }
        f
    }

    /// Prefixes whose effect is architecturally defined: segment overrides CS DS ES SS,
    /// ignored in 64-bit mode (branch hints on Jcc); F2 (BND) and F3 (`rep ret`) on near
    /// JMP/CALL/RET/Jcc, which ignore them; LOCK, which is #UD where not allowed. F2/F3 on
    /// other non-string instructions are reserved and left out: this host's LOOPE/LOOPNE,
    /// for one, take their condition from such a prefix. A prefix that makes the bytes
    /// another instruction (F3 0F BC is TZCNT, not BSF) is caught by the decode check in
    /// `try_generate`, which then retries.
    fn prefix_noise(&mut self, insn: &mut Instruction) {
        let branch = matches!(
            self.form.special,
            Special::DirectBranch | Special::IndirectBranch | Special::Ret
        );
        match self.s.below(100) {
            0..=2 => insn.set_segment_prefix(self.s.pick(&[
                Register::CS,
                Register::DS,
                Register::ES,
                Register::SS,
            ])),
            3 if branch => insn.set_has_repe_prefix(true),
            4 if branch => insn.set_has_repne_prefix(true),
            5 => insn.set_has_lock_prefix(true),
            _ => {}
        }
    }

    fn random_reg(&mut self, bits: u32) -> Register {
        match bits {
            8 => self.s.pick(&GPR8),
            16 => self.s.pick(&GPR16),
            32 => self.s.pick(&GPR32),
            _ => self.s.pick(&GPR64),
        }
    }

    /// The low part of a register as the operand `r` sees it.
    fn reg_part(&self, r: Register) -> u64 {
        let v = self.regs[gpr_index(r)];
        if is_high8(r) {
            (v >> 8) & 0xFF
        } else {
            v & width_mask(r.size() as u32 * 8)
        }
    }

    /// Set the part of a register that the operand `r` names, keeping the other bits.
    fn set_reg_part(&mut self, r: Register, v: u64) {
        let i = gpr_index(r);
        if is_high8(r) {
            self.regs[i] = (self.regs[i] & !0xFF00) | ((v & 0xFF) << 8);
        } else {
            let m = width_mask(r.size() as u32 * 8);
            self.regs[i] = (self.regs[i] & !m) | (v & m);
        }
    }

    fn patch(&mut self, addr: u64, value: u64, size: u64) {
        self.mem
            .push((addr, value.to_le_bytes()[..size as usize].to_vec()));
    }

    /// Choose the operands and build the instruction (a branch target is set later).
    fn build_insn(&mut self, rflags: u64) -> Option<(Instruction, Vec<Op>)> {
        let form = self.form;
        if let Special::String(size) = form.special {
            return Some((self.build_string(size as u64, rflags)?, Vec::new()));
        }
        if form.special == Special::MaskMove {
            return Some((self.build_maskmove()?, Vec::new()));
        }
        let kinds = form.code.op_code().op_kinds();
        let op_bits = operand_bits(form.code);

        // Registers and immediates first (reservations depend on them), then memory.
        let mut ops: Vec<Option<Op>> = vec![None; kinds.len()];
        let mut mem_slot = None;
        for (i, &k) in kinds.iter().enumerate() {
            ops[i] = match k {
                K::r8_or_mem | K::r16_or_mem | K::r32_or_mem | K::r64_or_mem => {
                    if self.s.chance(50) {
                        mem_slot = Some(i);
                        None
                    } else {
                        Some(Op::Reg(self.random_reg(kind_bits(k))))
                    }
                }
                K::xmm_or_mem | K::mm_or_mem => {
                    if self.s.chance(50) {
                        mem_slot = Some(i);
                        None
                    } else {
                        Some(Op::Reg(self.vector_reg(k)))
                    }
                }
                K::xmm_reg | K::xmm_rm | K::mm_reg | K::mm_rm | K::st0 | K::sti_opcode => {
                    Some(Op::Reg(self.vector_reg(k)))
                }
                K::mem | K::mem_offs => {
                    mem_slot = Some(i);
                    None
                }
                K::r8_reg | K::r8_opcode => Some(Op::Reg(self.random_reg(8))),
                K::r16_reg | K::r16_opcode => Some(Op::Reg(self.random_reg(16))),
                K::r32_reg | K::r32_opcode => Some(Op::Reg(self.random_reg(32))),
                K::r64_reg | K::r64_opcode => Some(Op::Reg(self.random_reg(64))),
                K::al => Some(Op::Reg(Register::AL)),
                K::ax => Some(Op::Reg(Register::AX)),
                K::eax => Some(Op::Reg(Register::EAX)),
                K::rax => Some(Op::Reg(Register::RAX)),
                K::cl => Some(Op::Reg(Register::CL)),
                K::br64_1 | K::br64_4 => Some(Op::Branch),
                _ => Some(self.immediate(k, op_bits)),
            };
        }

        self.reserved |= match form.special {
            Special::Div => (1 << RAX) | (1 << RDX),
            Special::Cmpxchg => 1 << RAX,
            Special::Enter | Special::Leave => 1 << RBP,
            Special::CountBranch { .. } => 1 << RCX,
            Special::StrLen | Special::Cmpxchg8b => (1 << RAX) | (1 << RDX),
            _ => 0,
        };
        if kinds.contains(&K::cl) {
            self.reserved |= 1 << RCX;
        }
        if matches!(
            form.special,
            Special::BitTestReg | Special::IndirectBranch | Special::Div
        ) {
            for op in ops.iter().flatten() {
                if let Op::Reg(r) = op {
                    if gpr_index(*r) == RSP {
                        return None; // its value is constrained, and RSP's must not be
                    }
                    self.reserved |= 1 << gpr_index(*r);
                }
            }
        }
        if let Some(i) = mem_slot {
            let access = form.special != Special::NoAccess;
            ops[i] = Some(Op::Mem(self.memory(kinds[i], access)?));
        }
        let ops: Vec<Op> = ops.into_iter().collect::<Option<_>>()?;

        let mut insn = Instruction::default();
        insn.set_code(form.code);
        for (i, op) in ops.iter().enumerate() {
            set_operand(&mut insn, i as u32, *op)?;
        }
        let has_mem = ops.iter().any(|o| matches!(o, Op::Mem(_)));
        if has_mem
            && form.special != Special::NoAccess
            && form.code.op_code().can_use_lock_prefix()
            && self.s.chance(30)
        {
            insn.set_has_lock_prefix(true);
        }

        // RSP may be read, or be a base, but is never written as an explicit operand.
        let mut factory = InstructionInfoFactory::new();
        let info = factory.info(&insn);
        for (i, op) in ops.iter().enumerate() {
            if let Op::Reg(r) = op {
                if gpr_index(*r) == RSP && info.op_access(i as u32) != OpAccess::Read {
                    return None;
                }
            }
        }
        Some((insn, ops))
    }

    /// A random immediate of kind `k` for an instruction of `op_bits` operand bits.
    fn immediate(&mut self, k: K, op_bits: u32) -> Op {
        let m = self.form.mnemonic();
        if k == K::imm8 && self.form.family.is_fp() {
            return Op::Imm(OpKind::Immediate8, self.fp_imm8());
        }
        let is_count =
            self.form.special == Special::Shift || matches!(m, M::Bt | M::Bts | M::Btr | M::Btc);
        match k {
            K::imm8_const_1 => Op::Imm(OpKind::Immediate8, 1),
            K::imm8 if is_count => Op::Imm(OpKind::Immediate8, self.s.shift_count(op_bits) as u64),
            K::imm8 if m == M::Enter => {
                let level = match self.s.below(10) {
                    0..=3 => 0,
                    4 | 5 => 1,
                    6 | 7 => self.s.range(2, 6) as u64,
                    _ => self.s.below(256),
                };
                Op::Imm(OpKind::Immediate8_2nd, level)
            }
            // ENTER's frame size: AMD CPUs access the final RSP (a write probe), so it stays
            // within the mapped area below the stack.
            K::imm16 if m == M::Enter => {
                let v = match self.s.below(6) {
                    0 => 0,
                    1 => 8,
                    2 => 16,
                    3 | 4 => self.s.below(0x200),
                    _ => self.s.below(0x3000),
                };
                Op::Imm(OpKind::Immediate16, v)
            }
            K::imm16 if m == M::Ret => {
                let v = match self.s.below(6) {
                    0 => 0,
                    1 => 8,
                    2 => 16,
                    3 | 4 => self.s.below(0x200),
                    _ => self.s.edge(16),
                };
                Op::Imm(OpKind::Immediate16, v)
            }
            K::imm8 => Op::Imm(OpKind::Immediate8, self.s.edge(8)),
            K::imm16 => Op::Imm(OpKind::Immediate16, self.s.edge(16)),
            K::imm32 => Op::Imm(OpKind::Immediate32, self.s.edge(32)),
            K::imm64 => Op::Imm(OpKind::Immediate64, self.s.edge(64)),
            K::imm8sex16 => Op::Imm(OpKind::Immediate8to16, self.s.edge(8)),
            K::imm8sex32 => Op::Imm(OpKind::Immediate8to32, self.s.edge(8)),
            K::imm8sex64 => Op::Imm(OpKind::Immediate8to64, self.s.edge(8)),
            _ => Op::Imm(OpKind::Immediate32to64, self.s.edge(32)), // imm32sex64
        }
    }

    /// A register usable as base or index: not RSP, not reserved, not in `taken`.
    fn free_reg(&mut self, taken: u16) -> Option<usize> {
        let busy = self.reserved | taken | (1 << RSP);
        let avail: Vec<usize> = (0..16).filter(|&r| busy & (1 << r) == 0).collect();
        (!avail.is_empty()).then(|| self.s.pick(&avail))
    }

    /// A memory operand. For an accessed operand its effective address lands in the hot page
    /// (base/index registers set accordingly) and the target gets a random edge value; for an
    /// address-only operand (LEA, NOP, PREFETCH) the address is arbitrary.
    fn memory(&mut self, k: K, access: bool) -> Option<MemShape> {
        let size = match self.form.code.op_code().memory_size().size() {
            0 => 8,
            s => s as u64,
        };
        let fp = self.fp_memory_form();
        let addr32 = self.s.chance(15);
        let amask = if addr32 { 0xFFFF_FFFF } else { u64::MAX };
        let names = if addr32 { &GPR32 } else { &GPR64 };
        let wide = if addr32 { 4 } else { 8 };
        // An encoded target (RIP-relative, absolute) is part of the shape; a target reached
        // through registers is a value.
        let (mut fixed_target, mut target) = if fp {
            self.fp_targets(size)
        } else {
            (
                HOT_BASE + self.s.below(HOT_SIZE - 32),
                HOT_BASE + self.v.below(HOT_SIZE - 32),
            )
        };
        if !fp && self.s.chance(50) {
            fixed_target &= !(size - 1);
            target &= !(size - 1);
        }
        // Sometimes straddle the boundary between the hot page and the next one.
        if !fp && size > 1 && self.s.chance(3) {
            fixed_target = HOT_BASE + HOT_SIZE - 1 - self.s.below(size - 1);
        }
        if !fp && size > 1 && self.v.chance(3) {
            target = HOT_BASE + HOT_SIZE - 1 - self.v.below(size - 1);
        }
        if !access && self.s.chance(50) {
            fixed_target = self.s.edge(64) & amask;
            target = self.v.edge(64) & amask;
        }
        let upper = |g: &mut Self| {
            if addr32 && g.v.chance(50) {
                g.v.next_u64() & !0xFFFF_FFFF
            } else {
                0
            }
        };
        let encoded = |target: u64, base: Register| MemShape {
            base,
            index: Register::None,
            scale: 1,
            disp: target as i64,
            displ_size: wide,
        };

        let (shape, target) = if k == K::mem_offs {
            (encoded(fixed_target, Register::None), fixed_target)
        } else {
            match self.s.below(100) {
                // RIP/EIP-relative: the encoder turns the absolute target into rel32.
                0..=9 => {
                    let base = if addr32 { Register::EIP } else { Register::RIP };
                    (encoded(fixed_target, base), fixed_target)
                }
                // Absolute [disp32].
                10..=14 => {
                    if !addr32 && fixed_target > 0x7FFF_FFFF {
                        return None;
                    }
                    (encoded(fixed_target, Register::None), fixed_target)
                }
                // [index*scale + disp32]: the target moves down to a reachable address.
                15..=24 => {
                    let scale = self.s.pick(&[1u32, 2, 4, 8]);
                    let ix = self.free_reg(0)?;
                    let d = self.s.range(-0x1000, 0x1000);
                    let rest = (target as i64).wrapping_sub(d);
                    let target = target.wrapping_sub(rest.rem_euclid(scale as i64) as u64);
                    let iv = ((target as i64).wrapping_sub(d) / scale as i64) as u64;
                    self.regs[ix] = (iv & amask) | upper(self);
                    let shape = MemShape {
                        base: Register::None,
                        index: names[ix],
                        scale,
                        disp: d,
                        displ_size: wide,
                    };
                    (shape, target)
                }
                // [base (+ index*scale) + disp]; the base may be RSP.
                n => self.base_memory(n >= 55, access, target, addr32, upper)?,
            }
        };
        if access && fp {
            let bytes = self.fp_memory(size);
            let mut low = [0u8; 8];
            let n = bytes.len().min(8);
            low[..n].copy_from_slice(&bytes[..n]);
            self.target = Some(MemTarget {
                addr: target,
                size: n as u64,
                value: u64::from_le_bytes(low),
            });
            if !bytes.is_empty() {
                self.mem.push((target, bytes));
            }
        } else if access {
            let value = self.v.edge((size as u32 * 8).min(64));
            let sz = size.min(8);
            self.patch(target, value, sz);
            self.target = Some(MemTarget {
                addr: target,
                size: sz,
                value,
            });
        }
        Some(shape)
    }

    /// `[base (+ index*scale) + disp]` reaching `target`, or for an RSP base, reaching the
    /// stack near RSP (returns the effective address).
    fn base_memory(
        &mut self,
        with_index: bool,
        access: bool,
        target: u64,
        addr32: bool,
        upper: impl Fn(&mut Self) -> u64,
    ) -> Option<(MemShape, u64)> {
        let amask = if addr32 { 0xFFFF_FFFF } else { u64::MAX };
        let names = if addr32 { &GPR32 } else { &GPR64 };
        // (Bit tests with a register offset reach +-4 KiB around the address: not from RSP.)
        let use_rsp = access && self.form.special != Special::BitTestReg && self.s.chance(8);
        let b = if use_rsp { RSP } else { self.free_reg(0)? };
        let (mut index, mut scale, mut iv) = (Register::None, 1, 0u64);
        if with_index {
            let ix = self.free_reg(1 << b)?;
            scale = self.s.pick(&[1u32, 2, 4, 8]);
            iv = if use_rsp {
                self.v.range(-0x40, 0x40) as u64
            } else {
                self.v.reg_value(64)
            };
            self.regs[ix] = (iv & amask) | upper(self);
            index = names[ix];
        }
        let rest = iv.wrapping_mul(scale as u64);
        let (disp, target) = if use_rsp {
            // EA = RSP + small index + small displacement: somewhere in the stack area.
            let d = self.s.range(-0x100, 0x100);
            let ea = self.regs[RSP].wrapping_add(rest).wrapping_add(d as u64) & amask;
            (d, ea)
        } else {
            let d = match self.s.below(10) {
                0..=2 => 0,
                3..=5 => self.s.range(-128, 127),
                6..=8 => self.s.range(-0x10_0000, 0x10_0000),
                _ => self.s.next_u64() as i32 as i64,
            };
            let bv = target.wrapping_sub(rest).wrapping_sub(d as u64);
            self.regs[b] = (bv & amask) | upper(self);
            (d, target)
        };
        let displ_size = if disp == 0 && self.s.chance(80) {
            0
        } else if (-128..=127).contains(&disp) && self.s.chance(80) {
            1
        } else if addr32 {
            4
        } else {
            8
        };
        let shape = MemShape {
            base: names[b],
            index,
            scale,
            disp,
            displ_size,
        };
        Some((shape, target))
    }

    /// Where the instruction goes: anywhere in the code pages with room for pads, and 5% of
    /// the time straddling the boundary between the two code pages.
    fn choose_ip(&mut self, len: u64) -> u64 {
        if len >= 2 && self.s.chance(5) {
            CODE_BASE + 0x1000 - 1 - self.s.below(len - 1)
        } else {
            CODE_BASE + 0x100 + self.s.below(CODE_SIZE - 0x200 - len)
        }
    }

    /// A branch target with a pad that does not overlap the instruction or the fall-through
    /// pad (or the fall-through itself).
    fn choose_target(&mut self, rel8: bool, ip: u64, next: u64) -> u64 {
        for _ in 0..100 {
            let t = if self.s.chance(5) {
                next
            } else if rel8 {
                next.wrapping_add(self.s.range(-128, 127) as u64)
            } else if self.s.chance(50) {
                next.wrapping_add(self.s.range(-0x200, 0x200) as u64)
            } else {
                CODE_BASE + self.s.below(CODE_SIZE - PAD_LEN as u64)
            };
            let pad = PAD_LEN as u64;
            if t == next {
                return t;
            }
            if t < CODE_BASE || t + pad > CODE_BASE + CODE_SIZE {
                continue;
            }
            if t + pad <= ip || t >= next + pad {
                return t;
            }
        }
        next
    }
}

/// Set operand `i` of `insn` from `op`.
fn set_operand(insn: &mut Instruction, i: u32, op: Op) -> Option<()> {
    match op {
        Op::Reg(r) => {
            insn.set_op_kind(i, OpKind::Register);
            insn.set_op_register(i, r);
        }
        Op::Mem(s) => {
            insn.set_op_kind(i, OpKind::Memory);
            insn.set_memory_base(s.base);
            insn.set_memory_index(s.index);
            insn.set_memory_index_scale(s.scale);
            insn.set_memory_displacement64(s.disp as u64);
            insn.set_memory_displ_size(s.displ_size);
        }
        Op::Imm(kind, v) => {
            insn.set_op_kind(i, kind);
            match kind {
                OpKind::Immediate8 => insn.set_immediate8(v as u8),
                OpKind::Immediate8_2nd => insn.set_immediate8_2nd(v as u8),
                OpKind::Immediate16 => insn.set_immediate16(v as u16),
                OpKind::Immediate32 => insn.set_immediate32(v as u32),
                OpKind::Immediate64 => insn.set_immediate64(v),
                OpKind::Immediate8to16 => insn.set_immediate8to16(v as i8 as i16),
                OpKind::Immediate8to32 => insn.set_immediate8to32(v as i8 as i32),
                OpKind::Immediate8to64 => insn.set_immediate8to64(v as i8 as i64),
                OpKind::Immediate32to64 => insn.set_immediate32to64(v as i32 as i64),
                _ => return None,
            }
        }
        Op::Branch => {
            insn.set_op_kind(i, OpKind::NearBranch64);
            insn.set_near_branch64(CODE_BASE + 0x800);
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::super::forms::all_forms;
    use super::super::layout::{MEM_BASE, MEM_SIZE};
    use super::*;

    #[test]
    fn every_form_generates() {
        let forms = all_forms();
        for (i, f) in forms.iter().enumerate() {
            for j in 0..20 {
                let c = generate(i as u64, j, std::slice::from_ref(f), 4);
                assert_eq!(c.insn.code(), f.code);
                for (a, b) in &c.mem {
                    assert!(*a >= MEM_BASE && a + b.len() as u64 <= MEM_BASE + MEM_SIZE);
                }
                assert!(c
                    .pads
                    .iter()
                    .all(|&p| (CODE_BASE..CODE_BASE + CODE_SIZE).contains(&p)));
            }
        }
    }
}
