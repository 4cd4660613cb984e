//! Instruction semantics, written once against [`Ctx`] and shared by every engine.
//!
//! The dispatch below is one line per family; each family module states the exact flag
//! behaviour it implements, including the flags the manuals leave undefined, for Intel and
//! for AMD (the host's vendor is chosen at translation time, [`Ctx::vendor`]; matched to the
//! host CPU by the differential tester in `testsuite/` and the families' own host tests).

pub mod alu;
pub mod bcd;
pub mod bits;
pub mod branch;
pub mod data;
pub mod eflags;
pub mod host;
pub mod muldiv;
pub mod shift;
pub mod simd;
pub mod sse;
pub mod stack;
pub mod string;
pub mod system;
pub mod x87;
pub mod x87run;

use iced_x86::Mnemonic as M;

use crate::ctx::Ctx;
use crate::decode::DecodedBlock;
use crate::emit::Emitter;
use crate::flags::Vendor;
use crate::Mode;

/// Translate the current instruction of `ctx` (between `begin_insn` and `end_insn`).
pub fn translate_insn<E: Emitter>(ctx: &mut Ctx<E>) {
    let insn = *ctx.insn();
    if insn.is_invalid() {
        return system::invalid(ctx);
    }
    if let Some(entry) = crate::sensitive::lookup(&insn) {
        return system::sensitive(ctx, entry);
    }
    if insn.is_jcc_short_or_near() {
        return branch::jcc(ctx);
    }
    if insn.is_string_instruction() {
        return string::string_op(ctx);
    }
    if let Some(class) = simd::classify(&insn) {
        return simd::translate(ctx, class);
    }
    match insn.mnemonic() {
        M::Seto
        | M::Setno
        | M::Setb
        | M::Setae
        | M::Sete
        | M::Setne
        | M::Setbe
        | M::Seta
        | M::Sets
        | M::Setns
        | M::Setp
        | M::Setnp
        | M::Setl
        | M::Setge
        | M::Setle
        | M::Setg => data::setcc(ctx),
        M::Cmovo
        | M::Cmovno
        | M::Cmovb
        | M::Cmovae
        | M::Cmove
        | M::Cmovne
        | M::Cmovbe
        | M::Cmova
        | M::Cmovs
        | M::Cmovns
        | M::Cmovp
        | M::Cmovnp
        | M::Cmovl
        | M::Cmovge
        | M::Cmovle
        | M::Cmovg => data::cmovcc(ctx),
        // ---- integer arithmetic and logic
        M::Add | M::Adc | M::Sub | M::Sbb | M::Cmp | M::And | M::Or | M::Xor | M::Test => {
            alu::binary(ctx)
        }
        M::Inc | M::Dec => alu::inc_dec(ctx),
        M::Neg => alu::neg(ctx),
        M::Not => alu::not(ctx),
        M::Clc | M::Stc | M::Cmc | M::Lahf | M::Sahf => alu::flag_op(ctx),
        M::Aaa | M::Aas | M::Daa | M::Das | M::Aam | M::Aad => bcd::adjust(ctx),
        // ---- multiply and divide
        M::Mul | M::Imul => muldiv::mul(ctx),
        M::Div | M::Idiv => muldiv::div(ctx),
        // ---- shifts and rotates
        M::Shl | M::Sal | M::Shr | M::Sar | M::Rol | M::Ror | M::Rcl | M::Rcr => shift::shift(ctx),
        M::Shld | M::Shrd => shift::double_shift(ctx),
        // ---- bit operations
        M::Bt | M::Bts | M::Btr | M::Btc => bits::bit_test(ctx),
        M::Bsf | M::Bsr => bits::bit_scan(ctx),
        M::Popcnt | M::Lzcnt | M::Tzcnt => bits::count(ctx),
        M::Bswap => bits::bswap(ctx),
        // ---- data movement
        M::Mov => data::mov(ctx),
        M::Movzx | M::Movsx | M::Movsxd => data::mov_extend(ctx),
        M::Lea => data::lea(ctx),
        M::Xchg => data::xchg(ctx),
        M::Cmpxchg => data::cmpxchg(ctx),
        M::Cmpxchg8b | M::Cmpxchg16b => data::cmpxchg_wide(ctx),
        M::Xadd => data::xadd(ctx),
        M::Cbw | M::Cwde | M::Cdqe | M::Cwd | M::Cdq | M::Cqo => data::convert(ctx),
        M::Xlatb => data::xlat(ctx),
        M::Arpl => data::arpl(ctx),
        M::Bound => data::bound(ctx),
        M::Nop
        | M::Pause
        | M::Endbr64
        | M::Endbr32
        | M::Prefetchnta
        | M::Prefetcht0
        | M::Prefetcht1
        | M::Prefetcht2
        | M::Prefetchw => data::nop(ctx),
        M::Cld | M::Std => data::direction(ctx),
        // One vCPU, and memory accesses in program order: the fences order nothing more.
        M::Lfence | M::Mfence | M::Sfence => data::nop(ctx),
        M::Clflush => data::clflush(ctx),
        M::Movnti => data::mov(ctx),
        // ---- stack
        M::Push | M::Pop => stack::push_pop(ctx),
        M::Enter | M::Leave => stack::frame(ctx),
        M::Pusha | M::Pushad | M::Popa | M::Popad => stack::pusha_popa(ctx),
        // ---- control transfer
        M::Jmp => branch::jmp(ctx),
        M::Call => branch::call(ctx),
        M::Ret => branch::ret(ctx),
        M::Loop | M::Loope | M::Loopne | M::Jrcxz | M::Jecxz | M::Jcxz => branch::loop_jrcxz(ctx),
        // ---- sensitive instructions: `crate::sensitive` routes them above
        M::Ud2 | M::Ud0 | M::Ud1 => system::trap(ctx),
        _ => ctx.unsupported(),
    }
}

/// Translate a whole decoded block, the undefined flags following `vendor` (engines pass
/// [`Vendor::host`]). Returns the emitter and whether semantics touched a register outside
/// `preload` (the caller then retranslates with every register preloaded).
pub fn translate_block<E: Emitter>(
    e: E,
    block: &DecodedBlock,
    mode: Mode,
    preload: u16,
    vendor: Vendor,
) -> (E, bool) {
    translate_region(e, std::slice::from_ref(block), mode, preload, vendor)
}

/// Translate a region: `blocks[0]` is its entry, and a direct jump from any of them to the
/// start of any of them continues inside the function instead of leaving it. Each block
/// charges its own instructions at its head, as a block of its own would. Where the
/// emitter carries state ([`Emitter::carried`]), the registers the region writes and the
/// flags stay in SSA values across its internal edges and are written back only on the way
/// out, a head's budget stop included; otherwise every internal edge writes the state back.
/// `preload` must cover every block's registers. An emitter without region support (see
/// [`Emitter::supports_regions`]) gets the entry block only.
pub fn translate_region<E: Emitter>(
    e: E,
    blocks: &[DecodedBlock],
    mode: Mode,
    preload: u16,
    vendor: Vendor,
) -> (E, bool) {
    let blocks = if e.supports_regions() {
        blocks
    } else {
        &blocks[..blocks.len().min(1)]
    };
    let mut ctx = Ctx::new(e, mode, preload).with_vendor(vendor);
    let mut next_pc = 0;
    for (k, block) in blocks.iter().enumerate() {
        if k > 0 {
            ctx.begin_region_block(block.pc, next_pc);
        }
        let mut i = 0;
        while i < block.insns.len() {
            let run = x87run::run_len(mode, &block.insns[i..]);
            if run >= 2 {
                x87run::translate(&mut ctx, &block.insns[i..i + run]);
                i += run;
            } else {
                ctx.begin_insn(&block.insns[i]);
                ctx.check_stack_run(&block.insns[i..]);
                ctx.expect_fp_reads(sse::fp_reads_ahead(mode, &block.insns[i + 1..]));
                translate_insn(&mut ctx);
                ctx.end_insn();
                i += 1;
            }
            if ctx.terminated() {
                break;
            }
        }
        next_pc = block.next_pc();
    }
    let missing = ctx.missing_regs;
    (ctx.finish(next_pc), missing)
}
