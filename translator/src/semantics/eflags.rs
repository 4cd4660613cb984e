//! PUSHF and POPF in line, where the block's mode decides their privilege rules at
//! translation time, and CLI at CPL 0: no hypercall, the same result as the runtime's
//! handlers (`runtime::system::io::{pushf, popf, cli}`), which remain for the modes decided
//! here not to be inline.
//!
//! Invariants:
//! - Inline only where virtual-8086 mode is impossible ([`inline`]): VM86 code runs at
//!   CPL 3 outside 64-bit mode, so a block at CPL < 3 or in 64-bit mode is never VM86 code.
//!   There PUSHF cannot fault (beyond its store) and POPF's masks depend only on CPL and
//!   IOPL: CPL 0 (which includes real mode) writes IF and IOPL, CPL 1-3 write IF when
//!   CPL ≤ IOPL (read when the code runs) and never IOPL.
//! - The PUSHF image is the arithmetic flags (from the lazy state, inline), the other bits
//!   of `CpuState::rflags` without VM and RF, and the fixed bit 1.
//! - POPF writes `CpuState::rflags` after its pop (the only access that can fault), and the
//!   arithmetic flags through the lazy state. Its block ends after it (the table's
//!   `ends_block`); when it sets TF, changes AC or turns IF on, it also sets
//!   `icount_limit = 0`, so the next block entry (linked or not) returns to the run loop,
//!   which takes a pending interrupt or starts single-stepping before the next instruction,
//!   as after the hypercall (`request_interrupt_check`).
//! - CLI at CPL 0 (real mode included; never VM86) always passes its IOPL check and has no
//!   effect for the run loop (masking interrupts makes none deliverable): it clears
//!   `CpuState::rflags.IF` and nothing else.
//! - STI at CPL 0 passes its IOPL check too. It sets IF; when IF was clear it records its
//!   interrupt shadow in `CpuState::sti_shadow` (the run loop takes it as the handler's
//!   posted shadow, `runtime::system::io::sti`) and, when `CpuState::irq_pending` says an
//!   interrupt may be pending, sets `icount_limit = 0`. Its block ends after it
//!   (`crate::decode::ends_block`), so the next block entry returns to the run loop, which
//!   runs the shadowed instruction and then takes the interrupt, as after the hypercall.
//!   Not in line where the next instruction would be at [`crate::state::NO_SHADOW`].

use crate::ctx::Ctx;
use crate::emit::Emitter;
use crate::ir::{BinOp, Cmp, Ty};
use crate::sensitive::Hypercall;
use crate::state::{self, rflags};

use super::system::{op_ty, push_size};

/// Whether PUSHF/POPF are translated in line in this block (see the module invariants).
pub fn inline<E: Emitter>(ctx: &Ctx<E>) -> bool {
    let m = ctx.mode();
    m.bitness == 64 || m.cpl < 3
}

/// Whether CLI and STI are translated in line in this block (see the module invariants).
pub fn if_inline<E: Emitter>(ctx: &Ctx<E>) -> bool {
    ctx.mode().cpl == 0 && ctx.next_pc() != state::NO_SHADOW
}

/// Translates the sensitive instruction of hypercall `call` in line when this module does
/// in this block; whether it did.
pub fn in_line<E: Emitter>(ctx: &mut Ctx<E>, call: Hypercall) -> bool {
    match call {
        Hypercall::Pushf if inline(ctx) => pushf(ctx),
        Hypercall::Popf if inline(ctx) => popf(ctx),
        Hypercall::Cli | Hypercall::Sti if if_inline(ctx) => set_if(ctx, call == Hypercall::Sti),
        _ => return false,
    }
    true
}

/// CLI (`set` false) or STI (`set` true) at CPL 0.
pub fn set_if<E: Emitter>(ctx: &mut Ctx<E>, set: bool) {
    let old = ctx.e.load_state(Ty::I64, state::OFF_RFLAGS);
    if !set {
        let keep = ctx.c(Ty::I64, !rflags::IF);
        let rf = ctx.bin(BinOp::And, old, keep);
        return ctx.e.store_state(state::OFF_RFLAGS, rf);
    }
    let bit = ctx.c(Ty::I64, rflags::IF);
    let new = ctx.bin(BinOp::Or, old, bit);
    ctx.e.store_state(state::OFF_RFLAGS, new);
    let was = ctx.bin(BinOp::And, old, bit);
    let zero = ctx.c(Ty::I64, 0);
    let rose = ctx.cmp(Cmp::Eq, was, zero);
    let next = ctx.c(Ty::I64, ctx.next_pc());
    let shadow = ctx.e.load_state(Ty::I64, state::OFF_STI_SHADOW);
    let shadow = ctx.select(rose, next, shadow);
    ctx.e.store_state(state::OFF_STI_SHADOW, shadow);
    let pending = ctx.e.load_state(Ty::I64, state::OFF_IRQ_PENDING);
    let pending = ctx.cmp(Cmp::Ne, pending, zero);
    let limit = ctx.e.load_state(Ty::I64, state::OFF_ICOUNT_LIMIT);
    let checked = ctx.select(pending, zero, limit);
    let limit = ctx.select(rose, checked, limit);
    ctx.e.store_state(state::OFF_ICOUNT_LIMIT, limit);
}

/// PUSHF/PUSHFD/PUSHFQ.
pub fn pushf<E: Emitter>(ctx: &mut Ctx<E>) {
    let size = push_size(ctx.insn(), ctx.mode().bitness);
    let arith = ctx.flags_bits();
    let rf = ctx.e.load_state(Ty::I64, state::OFF_RFLAGS);
    let keep = ctx.c(Ty::I64, !(rflags::ARITH | rflags::VM | rflags::RF));
    let rest = ctx.bin(BinOp::And, rf, keep);
    let fixed = ctx.c(Ty::I64, rflags::FIXED);
    let rest = ctx.bin(BinOp::Or, rest, fixed);
    let image = ctx.bin(BinOp::Or, rest, arith);
    let v = ctx.to_ty(image, op_ty(size), false);
    ctx.push(v)
}

/// POPF/POPFD/POPFQ.
pub fn popf<E: Emitter>(ctx: &mut Ctx<E>) {
    let size = push_size(ctx.insn(), ctx.mode().bitness);
    let cpl = ctx.mode().cpl;
    let popped = ctx.pop(op_ty(size));
    let value = ctx.to_ty(popped, Ty::I64, false);
    let old = ctx.e.load_state(Ty::I64, state::OFF_RFLAGS);
    let always = rflags::ARITH | rflags::TF | rflags::DF | rflags::NT | rflags::AC | rflags::ID;
    let width = if size == 2 { 0xFFFF } else { u64::MAX };
    let mask = if cpl == 0 {
        ctx.c(Ty::I64, (always | rflags::IF | rflags::IOPL) & width)
    } else {
        // IF when CPL <= IOPL.
        let sh = ctx.c(Ty::I64, 12);
        let iopl = ctx.bin(BinOp::UShr, old, sh);
        let three = ctx.c(Ty::I64, 3);
        let iopl = ctx.bin(BinOp::And, iopl, three);
        let cpl_v = ctx.c(Ty::I64, u64::from(cpl));
        let allowed = ctx.cmp(Cmp::Ule, cpl_v, iopl);
        let with_if = ctx.c(Ty::I64, (always | rflags::IF) & width);
        let without = ctx.c(Ty::I64, always & width);
        ctx.select(allowed, with_if, without)
    };
    // new = (old & !mask) | (value & mask) | FIXED, RF cleared by the 4- and 8-byte forms.
    let ones = ctx.c(Ty::I64, u64::MAX);
    let not_mask = ctx.bin(BinOp::Xor, mask, ones);
    let kept = ctx.bin(BinOp::And, old, not_mask);
    let taken = ctx.bin(BinOp::And, value, mask);
    let new = ctx.bin(BinOp::Or, kept, taken);
    let fixed = ctx.c(Ty::I64, rflags::FIXED);
    let mut new = ctx.bin(BinOp::Or, new, fixed);
    if size != 2 {
        let no_rf = ctx.c(Ty::I64, !rflags::RF);
        new = ctx.bin(BinOp::And, new, no_rf);
    }
    ctx.e.store_state(state::OFF_RFLAGS, new);
    let arith = ctx.c(Ty::I64, rflags::ARITH);
    let bits = ctx.bin(BinOp::And, new, arith);
    ctx.set_flags_bits(bits);
    // Back to the run loop before the next instruction when TF is set, AC changed or IF
    // went from 0 to 1.
    let changed = ctx.bin(BinOp::Xor, old, new);
    let rose = ctx.bin(BinOp::And, changed, new);
    let tf = ctx.c(Ty::I64, rflags::TF);
    let tf = ctx.bin(BinOp::And, new, tf);
    let ac = ctx.c(Ty::I64, rflags::AC);
    let ac = ctx.bin(BinOp::And, changed, ac);
    let if_ = ctx.c(Ty::I64, rflags::IF);
    let if_ = ctx.bin(BinOp::And, rose, if_);
    let any = ctx.bin(BinOp::Or, tf, ac);
    let any = ctx.bin(BinOp::Or, any, if_);
    let zero = ctx.c(Ty::I64, 0);
    let check = ctx.cmp(Cmp::Ne, any, zero);
    let limit = ctx.e.load_state(Ty::I64, state::OFF_ICOUNT_LIMIT);
    let limit = ctx.select(check, zero, limit);
    ctx.e.store_state(state::OFF_ICOUNT_LIMIT, limit);
}

#[cfg(test)]
mod tests {
    use iced_x86::code_asm::CodeAssembler;
    use iced_x86::{Decoder, DecoderOptions};

    use super::super::system::test_env::{Opaque, TestEnv, CODE, STACK};
    use crate::ctx::Ctx;
    use crate::flags::{encode_op, FlagOp};
    use crate::interp::InterpEmitter;
    use crate::ir::Ty;
    use crate::sensitive::Hypercall as H;
    use crate::state::{rflags::*, CpuState, ExitReason};
    use crate::Mode;

    /// Assemble one instruction at [`CODE`] for `bitness`.
    fn one(
        bitness: u32,
        f: impl FnOnce(&mut CodeAssembler) -> Result<(), iced_x86::IcedError>,
    ) -> iced_x86::Instruction {
        let mut a = CodeAssembler::new(bitness).unwrap();
        f(&mut a).unwrap();
        let bytes = a.assemble(CODE).unwrap();
        Decoder::with_ip(bitness, &bytes, CODE, DecoderOptions::NONE).decode()
    }

    /// Run `insn` in `mode`: concretely (the interpreter, lazy descriptors read at once) or
    /// through [`Opaque`] values (the paths generated code takes: stored flags inline).
    fn exec(
        cpu: &mut CpuState,
        env: &mut TestEnv,
        insn: &iced_x86::Instruction,
        mode: Mode,
        opaque: bool,
    ) {
        cpu.rip = insn.ip();
        cpu.status = 0;
        if opaque {
            let mut ctx = Ctx::new(Opaque(InterpEmitter::new(cpu, env)), mode, 0xffff);
            ctx.begin_insn(insn);
            crate::semantics::translate_insn(&mut ctx);
            ctx.end_insn();
            ctx.finish(insn.next_ip());
        } else {
            assert_eq!(crate::interp::step(cpu, env, insn, mode), ExitReason::Jump);
        }
    }

    fn next(s: &mut u64) -> u64 {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        *s
    }

    /// The runtime's PUSHF image (`runtime::system::io::pushf`).
    fn handler_image(cpu: &CpuState) -> u64 {
        (cpu.full_rflags() & !(VM | RF)) | FIXED
    }

    #[test]
    fn inline_pushf_image_equals_the_handlers_for_random_lazy_states() {
        let insn = one(64, |a| a.pushfq());
        let ops = FlagOp::ALL;
        let tys = [Ty::I8, Ty::I16, Ty::I32, Ty::I64];
        let mut s = 0x1234_5678_9abc_def1u64;
        for i in 0..3000 {
            let mut cpu = TestEnv::cpu();
            cpu.rflags = next(&mut s) & 0x3f_7fff | FIXED;
            if i % 5 != 0 {
                let op = ops[(next(&mut s) % 8) as usize];
                let ty = tys[(next(&mut s) % 4) as usize];
                cpu.flags_op = encode_op(op, ty);
                cpu.flags_a = next(&mut s) & ty.mask();
                cpu.flags_b = next(&mut s) & ty.mask();
                cpu.flags_res = next(&mut s) & ty.mask();
                cpu.flags_aux = next(&mut s) & 1;
            }
            let want = handler_image(&cpu);
            for opaque in [false, true] {
                let (mut env, mut c) = (TestEnv::new(), cpu.clone());
                exec(&mut c, &mut env, &insn, Mode::LONG64_CPL0, opaque);
                assert_eq!(
                    env.read(STACK - 8, 8),
                    want,
                    "state {cpu:?}, opaque {opaque}"
                );
                assert!(env.hypercalls.is_empty());
                assert_eq!(c.full_rflags(), cpu.full_rflags(), "PUSHF changes no flag");
            }
        }
    }

    /// The runtime's POPF (`runtime::system::io::popf`) outside virtual-8086 mode.
    fn handler_popf(cpu: &mut CpuState, value: u64, size: u8) {
        cpu.settle_flags();
        let old = cpu.rflags;
        let mut mask = ARITH | TF | DF | NT | AC | ID;
        if cpu.cpl == 0 {
            mask |= IF | IOPL;
        } else if cpu.cpl <= (old & IOPL) >> 12 {
            mask |= IF;
        }
        let mut new = old;
        if size == 2 {
            mask &= 0xFFFF;
        } else {
            new &= !RF;
        }
        cpu.rflags = (new & !mask) | (value & mask) | FIXED;
    }

    #[test]
    fn inline_popf_follows_the_handlers_rules_by_cpl_iopl_and_size() {
        let mut s = 0x0bad_cafe_f00d_0001u64;
        for (bitness, cpl) in [(64, 0), (64, 3), (32, 0), (32, 1), (16, 0), (64, 2)] {
            let forms = [
                one(bitness, |a| a.popf()),
                if bitness == 64 {
                    one(bitness, |a| a.popfq())
                } else {
                    one(bitness, |a| a.popfd())
                },
            ];
            for insn in forms {
                let size = insn.stack_pointer_increment() as u8;
                for _ in 0..300 {
                    let mut cpu = TestEnv::cpu();
                    cpu.cpl = u64::from(cpl);
                    cpu.rflags = next(&mut s) & 0x3f_7fff & !VM | FIXED;
                    cpu.flags_op = encode_op(FlagOp::Sub, Ty::I32);
                    cpu.flags_a = next(&mut s) & 0xffff_ffff;
                    let value = next(&mut s);
                    let mut want = cpu.clone();
                    handler_popf(&mut want, value, size);
                    for opaque in [false, true] {
                        let (mut env, mut c) = (TestEnv::new(), cpu.clone());
                        env.write(STACK, usize::from(size), value);
                        exec(&mut c, &mut env, &insn, Mode::new(bitness, cpl), opaque);
                        assert_eq!(c.full_rflags(), want.rflags, "{insn} cpl {cpl} {opaque}");
                        assert_eq!(c.gpr[4], STACK + u64::from(size));
                        assert!(env.hypercalls.is_empty());
                    }
                }
            }
        }
    }

    #[test]
    fn inline_popf_returns_to_the_run_loop_when_tf_is_set_ac_changes_or_if_rises() {
        let insn = one(64, |a| a.popfq());
        let base = FIXED | ZF;
        // (rflags before, value popped, whether the run loop must look before what follows)
        let cases = [
            (base, base, false),
            (base | IF, base | IF | CF | DF, false),
            (base, base | IF, true),
            (base | IF, base, false),
            (base, base | TF, true),
            (base | TF, base | TF, true),
            (base | TF, base, false),
            (base, base | AC, true),
            (base | AC, base, true),
        ];
        for (before, value, check) in cases {
            for opaque in [false, true] {
                let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
                cpu.rflags = before;
                cpu.icount_limit = 1000;
                env.write(STACK, 8, value);
                exec(&mut cpu, &mut env, &insn, Mode::LONG64_CPL0, opaque);
                assert_eq!(cpu.full_rflags(), value | FIXED);
                let want = if check { 0 } else { 1000 };
                assert_eq!(
                    cpu.icount_limit, want,
                    "{before:#x} <- {value:#x}, {opaque}"
                );
            }
        }
    }

    #[test]
    fn where_vm86_is_possible_pushf_and_popf_stay_hypercalls() {
        for insn in [one(32, |a| a.pushfd()), one(32, |a| a.popfd())] {
            let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
            cpu.cpl = 3;
            let _ = crate::interp::step(&mut cpu, &mut env, &insn, Mode::new(32, 3));
            let kinds: Vec<H> = env.hypercalls.iter().map(|h| h.0.kind).collect();
            assert!(matches!(kinds[..], [H::Pushf] | [H::Popf]), "{kinds:?}");
        }
    }

    /// STI's in-line form against the handler's rules (`runtime::system::io::sti`): IF set;
    /// when it rose, the shadow names the next instruction and a possibly pending interrupt
    /// asks for a check; when IF was set already, nothing else changes.
    #[test]
    fn sti_is_inline_at_cpl0_with_its_shadow_and_interrupt_check() {
        use crate::state::{rflags, NO_SHADOW};
        let insn = one(64, |a| a.sti());
        for opaque in [false, true] {
            for (was_set, pending) in [(false, 0), (false, 1), (true, 1), (true, 0)] {
                let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
                cpu.rflags = (cpu.rflags & !rflags::IF) | rflags::DF;
                cpu.rflags |= if was_set { rflags::IF } else { 0 };
                cpu.irq_pending = pending;
                cpu.icount_limit = 5000;
                exec(&mut cpu, &mut env, &insn, Mode::LONG64_CPL0, opaque);
                let case = format!("was_set {was_set} pending {pending} opaque {opaque}");
                assert!(env.hypercalls.is_empty(), "{case}");
                assert_eq!(
                    cpu.rflags & (rflags::IF | rflags::DF),
                    rflags::IF | rflags::DF
                );
                let (shadow, limit) = match (was_set, pending) {
                    (true, _) => (NO_SHADOW, 5000),
                    (false, 0) => (insn.next_ip(), 5000),
                    (false, _) => (insn.next_ip(), 0),
                };
                assert_eq!(cpu.sti_shadow, shadow, "{case}");
                assert_eq!(cpu.icount_limit, limit, "{case}");
            }
        }
        // Above CPL 0 the IOPL check is the handler's.
        let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
        cpu.cpl = 3;
        let _ = crate::interp::step(&mut cpu, &mut env, &insn, Mode::new(64, 3));
        let kinds: Vec<H> = env.hypercalls.iter().map(|h| h.0.kind).collect();
        assert_eq!(kinds, [H::Sti]);
        assert_eq!(cpu.sti_shadow, NO_SHADOW);
    }

    #[test]
    fn cli_is_inline_at_cpl0_and_a_hypercall_above() {
        use crate::state::rflags;
        let insn = one(64, |a| a.cli());
        let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
        cpu.rflags |= rflags::IF | rflags::DF;
        let r = crate::interp::step(&mut cpu, &mut env, &insn, Mode::new(64, 0));
        assert_eq!(r, crate::state::ExitReason::Jump);
        assert_eq!(cpu.rflags & (rflags::IF | rflags::DF), rflags::DF);
        assert!(env.hypercalls.is_empty());
        let (mut env, mut cpu) = (TestEnv::new(), TestEnv::cpu());
        cpu.cpl = 3;
        let _ = crate::interp::step(&mut cpu, &mut env, &insn, Mode::new(64, 3));
        let kinds: Vec<H> = env.hypercalls.iter().map(|h| h.0.kind).collect();
        assert_eq!(kinds, [H::Cli], "the IOPL check is the handler's");
    }
}
