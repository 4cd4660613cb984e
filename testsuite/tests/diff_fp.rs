//! Differential tests of the x87, MMX and SSE forms against the host CPU (see
//! `testsuite::diff`), on every engine (interp, dbt, trap).
//!
//! - Harness checks: the FP state a case loads is the one the host runs with and comes back
//!   unchanged through an instruction that does not touch it; #MF, #XM and #GP are told
//!   apart; what this host stores for FOP, FIP and FDP (documented in `diff::fpreport`).
//! - Known-answer and regression cases for the bugs the tester found in the translator's
//!   stub planner, host execution, x87 pointers, the runtime's #XM and FXRSTOR.
//! - `random_fp_cases`, `smoke_*`: see their comments.

use runtime::{Engine, RunOutcome};
use testsuite::diff::case::Case;
use testsuite::diff::layout::{CODE_BASE, HOT_BASE, STACK_TOP};
use testsuite::diff::native::NativeStop;
use testsuite::diff::report::Verdict;
use testsuite::diff::{run_single, SingleRun};
use translator::state::{mxcsr, FxArea};
use translator::Exception;

const ENGINES: [Engine; 3] = [Engine::Interp, Engine::Jit, Engine::Trap];
/// Where the hand-written instructions go.
const IP: u64 = CODE_BASE + 0x500;
/// A 16-byte aligned data address in the compared area.
const DATA: u64 = HOT_BASE + 0x100;

/// Registers with RSP in the stack area and everything else recognizable.
fn regs() -> [u64; 16] {
    let mut r = [0u64; 16];
    for (i, v) in r.iter_mut().enumerate() {
        *v = 0x1111_1111_1111_1111u64.wrapping_mul(i as u64);
    }
    r[4] = STACK_TOP - 0x40;
    r
}

/// `bytes` with a little-endian 32-bit absolute address appended (for `[disp32]` operands).
fn with_addr(bytes: &[u8], addr: u64) -> Vec<u8> {
    let mut v = bytes.to_vec();
    v.extend_from_slice(&(addr as u32).to_le_bytes());
    v
}

/// The 16-byte x87 register slot of an 80-bit value.
fn f80(sign: bool, exp: u16, mant: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&mant.to_le_bytes());
    b[8..10].copy_from_slice(&(exp | if sign { 0x8000 } else { 0 }).to_le_bytes());
    b
}

const ONE: u64 = 1 << 63;

/// Run one instruction natively and on every engine; every engine must agree with the host.
fn check(bytes: &[u8], regs: [u64; 16], fx: FxArea, mem: Vec<(u64, Vec<u8>)>) -> SingleRun {
    let case = Case::custom(bytes, IP, regs, 0, mem, &[])
        .expect("one instruction")
        .with_fx(fx);
    let run = run_single(&case, &ENGINES).expect("run");
    for (e, g, v) in &run.guests {
        assert!(
            matches!(v, Verdict::Pass),
            "{e:?}: {v:?}\nnative {:?}\nguest {:?}",
            run.native.stop,
            g.outcome
        );
    }
    run
}

/// The native trap number of a faulting run (panics if it did not fault).
fn trapno(run: &SingleRun) -> u64 {
    match run.native.stop {
        NativeStop::Signal { trapno, .. } => trapno,
        s => panic!("no fault: {s:?}"),
    }
}

/// The guests' common outcome.
fn outcome(run: &SingleRun) -> RunOutcome {
    run.guests[0].1.outcome.clone()
}

/// CPUID.(7,0):EBX bit `b` of the host.
fn host_leaf7_ebx(b: u32) -> bool {
    std::arch::x86_64::__cpuid_count(7, 0).ebx & (1 << b) != 0
}

#[test]
fn harness_fp_state_goes_in_and_comes_back() {
    // NOP leaves the loaded state alone: every register, MXCSR with flags and DAZ/FTZ, a
    // pending x87 exception, the pointers, all come back as they went in.
    let mut fx = FxArea {
        fcw: 0x0B7E,
        fsw: 0xB881,
        ftw: 0xA5,
        fop: 0x1C1,
        fip: 0x20_0123,
        fdp: 0x10_1234,
        mxcsr: 0xFFBF & mxcsr::VALID,
        ..FxArea::default()
    };
    for i in 0..8 {
        fx.st[i] = f80(i % 2 == 1, 0x3FFF + i as u16, ONE | i as u64);
    }
    for (i, x) in fx.xmm.iter_mut().enumerate() {
        *x = 0x0123_4567_89AB_CDEF_FEDC_BA98_7654_3210u128.rotate_left(i as u32 * 8);
    }
    let run = check(&[0x90], regs(), fx, vec![]);
    let n = run.native.fx;
    assert_eq!(
        (n.fcw, n.fsw, n.ftw, n.mxcsr),
        (fx.fcw, fx.fsw, fx.ftw, fx.mxcsr)
    );
    assert_eq!((n.fop, n.fip, n.fdp), (fx.fop, fx.fip, fx.fdp));
    assert_eq!(n.xmm, fx.xmm);
    for i in 0..8 {
        assert_eq!(n.st[i][..10], fx.st[i][..10], "st{i}");
    }
}

#[test]
fn harness_mf_xm_and_gp_are_told_apart() {
    // fwait with an unmasked invalid-operation exception pending: #MF (vector 16).
    let fx = FxArea {
        fcw: 0x037E,
        fsw: 0x8081,
        ..FxArea::default()
    };
    let run = check(&[0x9B], regs(), fx, vec![]);
    assert_eq!(trapno(&run), 16);
    assert_eq!(
        outcome(&run),
        RunOutcome::Exception {
            exc: Exception::FloatingPoint,
            rip: IP
        }
    );
    // divss xmm0, xmm1 with 1/0 and ZE unmasked: #XM (vector 19), xmm0 unwritten.
    let mut fx = FxArea {
        mxcsr: mxcsr::DEFAULT & !(1 << 9),
        ..FxArea::default()
    };
    fx.xmm[0] = 1f32.to_bits().into();
    let run = check(&[0xF3, 0x0F, 0x5E, 0xC1], regs(), fx, vec![]);
    assert_eq!(trapno(&run), 19);
    assert_eq!(run.native.fx.xmm[0], fx.xmm[0]);
    assert_eq!(run.native.fx.mxcsr & mxcsr::FLAGS, 1 << 2);
    // movaps xmm0, [DATA + 8]: misaligned, #GP(0) (vector 13).
    let run = check(
        &with_addr(&[0x0F, 0x28, 0x04, 0x25], DATA + 8),
        regs(),
        fx,
        vec![],
    );
    assert_eq!(trapno(&run), 13);
    assert_eq!(
        outcome(&run),
        RunOutcome::Exception {
            exc: Exception::GeneralProtection(0),
            rip: IP
        }
    );
}

#[test]
fn host_fpu_pointers() {
    // What this host stores for FOP, FIP and FDP (see `testsuite::diff::fpreport`).
    let fx = FxArea {
        fop: 0x123,
        fip: 0x1111,
        fdp: 0x5555,
        ..FxArea::default()
    };
    // fld1: FIP is its address on every x87 non-control instruction.
    let run = check(&[0xD9, 0xE8], regs(), fx, vec![]);
    let n = run.native.fx;
    assert_eq!(n.fip, IP);
    if host_leaf7_ebx(6) {
        // FDP_EXCPTN_ONLY: FOP and FDP keep their values without an unmasked exception.
        assert_eq!((n.fop, n.fdp), (0x123, 0x5555));
    }
    // fldcw [DATA]: a control instruction leaves FIP too.
    let cw = vec![(DATA, 0x037Fu16.to_le_bytes().to_vec())];
    let run = check(&with_addr(&[0xD9, 0x2C, 0x25], DATA), regs(), fx, cw);
    assert_eq!(run.native.fx.fip, 0x1111);
    // fdiv qword [DATA] by zero with ZE unmasked: FOP = DC 34, FDP = DATA, FSW.ES set.
    let mut fx1 = fx;
    fx1.fcw = 0x037B;
    fx1.fsw = 0x3800;
    fx1.ftw = 0x80;
    fx1.st[0] = f80(false, 0x3FFF, ONE);
    let zero = vec![(DATA, 0f64.to_bits().to_le_bytes().to_vec())];
    let run = check(&with_addr(&[0xDC, 0x34, 0x25], DATA), regs(), fx1, zero);
    let n = run.native.fx;
    assert_eq!((n.fop, n.fdp, n.fip), (0x434, DATA, IP));
    assert_eq!(n.fsw & 0x8084, 0x8084);
    // (FNSTENV and FNSAVE images: `x87_pointers_of_mmx_forms_and_stored_environments`.)
}

#[test]
fn stub_gprs_and_implicit_xmm0() {
    // Found by the tester: iced lists a 32-bit destination's zero-extended full register as
    // an extra written register; the stub planner made it a stale implicit RDX (cvttsd2si
    // edx gave 0) or refused it (#UD for cvtss2si r8d, pextrw r13d, pmovmskb esi). And an
    // explicit XMM0 hid the implicit one: pblendvb xmm0, x used a stale mask, pcmpistrm
    // xmm0, x dropped its result.
    let mut fx = FxArea::default();
    fx.xmm[13] = 1e300f64.to_bits().into();
    fx.xmm[14] = (-2.5f32).to_bits().into();
    fx.xmm[12] = 0x0102_0304_0506_0708_090A_0B0C_0D0E_0F10;
    fx.xmm[0] = 0x8000_8000_0080_0000_8080_0000_0000_8000;
    fx.xmm[1] = u128::from_le_bytes(*b"abcdefgh\0ijklmno");
    fx.st[7] = f80(false, 0xFFFF, 0x8001_7FFE_0000_FFFF);
    fx.ftw = 0x80;
    let run = check(&[0xF2, 0x41, 0x0F, 0x2C, 0xD5], regs(), fx, vec![]);
    assert_eq!(run.native.regs.gpr[2], 0x8000_0000);
    check(&[0xF3, 0x45, 0x0F, 0x2D, 0xC6], regs(), fx, vec![]);
    // (The MMX forms, pextrw r13d, mm7 and pmovmskb esi, mm7: with the x87 pointers below.)
    check(&[0x66, 0x44, 0x0F, 0xC5, 0xEF, 0x6C], regs(), fx, vec![]);
    check(&[0x66, 0x0F, 0xD7, 0xF7], regs(), fx, vec![]);
    check(&[0x66, 0x41, 0x0F, 0x38, 0x10, 0xC4], regs(), fx, vec![]);
    let run = check(&[0x66, 0x0F, 0x3A, 0x62, 0xC1, 0x40], regs(), fx, vec![]);
    assert_ne!(run.native.fx.xmm[0], fx.xmm[0]);
}

#[test]
fn x87_store_suppressed_by_an_unmasked_exception() {
    // Found by the tester: fst qword [m] with ST0 empty and IM unmasked stores nothing on the
    // host (stack underflow, FSW.ES set); the guest wrote the frame's stale bytes.
    let fx = FxArea {
        fcw: 0x037E,
        ..FxArea::default()
    };
    let old = vec![(DATA, vec![0xB8, 0x9A, 0x40, 0x65, 0xF4, 0xCB, 0xFE, 0xFF])];
    let run = check(&with_addr(&[0xDD, 0x14, 0x25], DATA), regs(), fx, old);
    assert_eq!(run.native.fx.fsw & 0x80C1, 0x80C1);
    // fistp word [m] of a NaN with IM unmasked: nothing stored either.
    let mut fx = fx;
    fx.fsw = 0x3800;
    fx.ftw = 0x80;
    fx.st[0] = f80(false, 0x7FFF, ONE | 1 << 62);
    let old = vec![(DATA, vec![0x12, 0x34])];
    check(&with_addr(&[0xDF, 0x1C, 0x25], DATA), regs(), fx, old);
}

#[test]
fn nothing_after_a_faulting_stub() {
    // Found by the tester (interpreter): after #MF, FLD1 still updated FIP and FOP, and
    // FLDENV/FRSTOR still loaded the guest's pointers from the frame.
    let fx = FxArea {
        fcw: 0x037E,
        fsw: 0x8081,
        fop: 0x27B,
        fip: 0x20_1D21,
        fdp: 0x817A_7ABB,
        ..FxArea::default()
    };
    let run = check(&[0xD9, 0xE8], regs(), fx, vec![]);
    assert_eq!(trapno(&run), 16);
    let env = vec![(DATA, vec![0x55; 28])];
    check(&with_addr(&[0xD9, 0x24, 0x25], DATA), regs(), fx, env);
}

#[test]
fn x87_pointers_of_mmx_forms_and_stored_environments() {
    // Found by the tester: the SSE-feature instructions on MMX registers (PSHUFW, CVTPI2PS,
    // MOVQ2DQ...) set FIP/FOP like x87 instructions; the host's do not.
    let fx = FxArea {
        fop: 0x123,
        fip: 0x20_0777,
        fdp: 0x10_1234,
        ..FxArea::default()
    };
    check(&[0x0F, 0x70, 0xCA, 0x1B], regs(), fx, vec![]);
    check(&[0x44, 0x0F, 0xC5, 0xEF, 0x6C], regs(), fx, vec![]);
    check(&[0x0F, 0xD7, 0xF7], regs(), fx, vec![]);
    check(&[0x0F, 0x2A, 0xC1], regs(), fx, vec![]);
    check(&[0xF3, 0x0F, 0xD6, 0xC1], regs(), fx, vec![]);
    // ...and FNSTENV/FNSAVE stored zero for FIP, FOP, FDP where the host's own stub pointers
    // were zero, instead of the guest's.
    for op in [
        &[0xD9, 0x34, 0x25][..],
        &[0x66, 0xD9, 0x34, 0x25],
        &[0xDD, 0x34, 0x25],
    ] {
        let run = check(&with_addr(op, DATA), regs(), fx, vec![]);
        assert!(matches!(run.native.stop, NativeStop::Landed(_)));
    }
}

#[test]
fn crc32_movnti_fences_and_clflush() {
    // Found by the tester: unsupported by the translator.
    let mut r = regs();
    r[0] = 0xFFFF_FFFF_0000_0000;
    r[1] = 0x1234_5678_9ABC_DEF0;
    check(
        &[0xF2, 0x0F, 0x38, 0xF1, 0xC1],
        r,
        FxArea::default(),
        vec![],
    );
    check(
        &[0xF2, 0x48, 0x0F, 0x38, 0xF1, 0xC1],
        r,
        FxArea::default(),
        vec![],
    );
    for fence in [[0x0F, 0xAE, 0xE8], [0x0F, 0xAE, 0xF0], [0x0F, 0xAE, 0xF8]] {
        check(&fence, r, FxArea::default(), vec![]);
    }
    check(
        &with_addr(&[0x48, 0x0F, 0xC3, 0x0C, 0x25], DATA),
        r,
        FxArea::default(),
        vec![],
    );
    check(
        &with_addr(&[0x0F, 0xAE, 0x3C, 0x25], DATA + 3),
        r,
        FxArea::default(),
        vec![],
    );
}

#[test]
fn maskmovq_and_maskmovdqu() {
    // Found by the tester: refused by the stub planner (#UD). They store the bytes whose mask
    // byte has its top bit set to [rDI] (EDI with 67h, whatever RDI's upper half holds).
    let mut fx = FxArea::default();
    fx.xmm[1] = 0x1111_2222_3333_4444_5555_6666_7777_8888;
    fx.xmm[2] = 0x80FF_0001_8000_7F80_0080_FF00_8181_0000;
    fx.st[1] = f80(false, 0xFFFF, 0xAAAA_BBBB_CCCC_DDDD);
    fx.st[2] = f80(false, 0xFFFF, 0x80FF_0001_8000_7F80);
    let mut r = regs();
    r[7] = DATA + 3;
    check(&[0x66, 0x0F, 0xF7, 0xCA], r, fx, vec![]);
    check(&[0x0F, 0xF7, 0xCA], r, fx, vec![]);
    r[7] = 0xDEAD_BEEF_0000_0000 | (DATA + 5);
    check(&[0x67, 0x66, 0x0F, 0xF7, 0xCA], r, fx, vec![]);
}

#[test]
fn unmasked_simd_exceptions_are_the_hardware_s() {
    // Found by the tester: #XM was emulated by running the stub masked, which misses an
    // unmasked underflow with an exact tiny result (2^-126 - 2^-127) and sets precision
    // where the unmasked response does not.
    let mut fx = FxArea {
        mxcsr: mxcsr::DEFAULT & !(1 << 11),
        ..FxArea::default()
    };
    fx.xmm[7] = 0x0080_0000_0080_0000_0080_0000_0080_0000;
    fx.xmm[9] = 0x0040_0000;
    let run = check(&[0x41, 0x0F, 0x5C, 0xF9], regs(), fx, vec![]);
    assert_eq!(trapno(&run), 19);
    assert_eq!(run.native.fx.mxcsr & mxcsr::FLAGS, 0b01_0010); // UE, DE
                                                               // FTZ does not apply while underflow is unmasked.
    fx.mxcsr |= mxcsr::FTZ;
    fx.xmm[9] = 0x0040_0001;
    check(&[0x41, 0x0F, 0x5C, 0xF9], regs(), fx, vec![]);
    // Found by the tester: the SSE instructions on MMX registers took no #XM at all.
    // cvtpi2ps xmm0, mm1 of 0x7fffffff (inexact) with PE unmasked.
    let mut fx = FxArea {
        mxcsr: mxcsr::DEFAULT & !(1 << 12),
        ..FxArea::default()
    };
    fx.st[1] = f80(false, 0xFFFF, 0x7FFF_FFFF);
    let run = check(&[0x0F, 0x2A, 0xC1], regs(), fx, vec![]);
    assert_eq!(trapno(&run), 19);
    // Found by the tester: cvtpd2pi mm2, [misaligned] with an x87 exception pending is #MF
    // before the alignment #GP.
    let fx = FxArea {
        fcw: 0x037E,
        fsw: 0x8081,
        ..FxArea::default()
    };
    let run = check(
        &with_addr(&[0x66, 0x0F, 0x2D, 0x14, 0x25], DATA + 8),
        regs(),
        fx,
        vec![],
    );
    assert_eq!(trapno(&run), 16);
}

#[test]
fn fxrstor_keeps_what_the_host_keeps() {
    // Found by the tester: FXRSTOR kept FCW's reserved bits (the host reads bit 6 as 1 and
    // bits 7, 13..15 as 0) and every bit of FIP (the host keeps fewer).
    let mut img = vec![0u8; 512];
    img[0..2].copy_from_slice(&0xE03Fu16.to_le_bytes());
    img[8..16].copy_from_slice(&0x1234_5678_9ABC_DEF0u64.to_le_bytes());
    img[16..24].copy_from_slice(&0x0100_8000_0000_1000u64.to_le_bytes());
    img[24..28].copy_from_slice(&mxcsr::DEFAULT.to_le_bytes());
    for rex in [&[0x48u8][..], &[]] {
        let mut op = rex.to_vec();
        op.extend_from_slice(&[0x0F, 0xAE, 0x0C, 0x25]);
        let run = check(
            &with_addr(&op, DATA),
            regs(),
            FxArea::default(),
            vec![(DATA, img.clone())],
        );
        assert_eq!(run.native.fx.fcw & 0xE0C0, 0x0040);
    }
}
