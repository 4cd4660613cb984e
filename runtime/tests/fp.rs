//! x87, MMX and SSE end to end: the same guest code on every engine gives what the host CPU
//! computes, and the CR0/CR4/MXCSR rules raise the exceptions the manuals give.

use iced_x86::code_asm::*;
use runtime::{Engine, RunOutcome, SerialSink, Vm, VmConfig};
use translator::state::{cr, mxcsr};
use translator::Exception;

const ENGINES: [Engine; 4] = Engine::ALL;
const CODE: u64 = 0x1000;
const DATA: u64 = 0x8000;

fn make(engine: Engine, code: &[u8], data: &[u8]) -> Vm {
    let mut vm = Vm::new(VmConfig {
        mem_bytes: 4 << 20,
        engine,
        serial: SerialSink::Capture,
        instruction_limit: Some(1_000_000),
        ..VmConfig::default()
    })
    .unwrap();
    vm.write_phys(CODE, code).unwrap();
    vm.write_phys(DATA, data).unwrap();
    let cpu = vm.cpu_mut();
    cpu.rip = CODE;
    cpu.gpr[4] = 0x7000;
    cpu.cr0 |= cr::CR0_MP | cr::CR0_NE;
    cpu.cr4 |= cr::CR4_OSFXSR | cr::CR4_OSXMMEXCPT;
    vm
}

fn assemble(f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).unwrap();
    f(&mut a).unwrap();
    a.hlt().unwrap();
    a.assemble(CODE).unwrap()
}

fn f64s(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn sse_and_x87_arithmetic_match_the_host() {
    let code = assemble(|a| {
        a.mov(rbx, DATA)?;
        a.movapd(xmm0, xmmword_ptr(rbx))?;
        a.addpd(xmm0, xmmword_ptr(rbx + 16))?;
        a.sqrtsd(xmm1, xmm0)?;
        a.cvttsd2si(rax, xmm1)?;
        a.minpd(xmm0, xmmword_ptr(rbx))?;
        a.movapd(xmmword_ptr(rbx + 32), xmm0)?;
        a.fld(qword_ptr(rbx))?;
        a.fldpi()?;
        a.fmulp(st1, st0)?;
        a.fsin()?;
        a.fstp(qword_ptr(rbx + 48))?;
        a.pcmpeqb(xmm2, xmm2)?;
        a.psrlq(xmm2, 60)?;
        Ok(())
    });
    let data = f64s(&[2.25, -0.5, 100.0, 4.0, 0.0, 0.0, 0.0, 0.0]);
    let x0 = [2.25f64 + 100.0, -0.5 + 4.0];
    let want_sqrt = x0[0].sqrt();
    let want_sin = {
        // The host's own fsin of 2.25 * pi (80-bit, rounded to double on store).
        let mut out = 0f64;
        let v = 2.25f64;
        // SAFETY: x87 instructions on local memory; the stack is left as found.
        unsafe {
            std::arch::asm!("fld qword ptr [{v}]", "fldpi", "fmulp st(1), st", "fsin",
                            "fstp qword ptr [{o}]", v = in(reg) &v, o = in(reg) &mut out);
        }
        out
    };
    for engine in ENGINES {
        let mut vm = make(engine, &code, &data);
        assert_eq!(vm.run(), RunOutcome::Halted, "{engine:?}");
        let cpu = vm.cpu();
        assert_eq!(cpu.gpr[0], want_sqrt as i64 as u64, "{engine:?}");
        let mut out = [0u8; 24];
        vm.read_phys(DATA + 32, &mut out).unwrap();
        let mins = [x0[0].min(2.25), x0[1].min(-0.5)];
        assert_eq!(out[..16], f64s(&mins)[..], "{engine:?} minpd");
        assert_eq!(
            f64::from_le_bytes(out[16..24].try_into().unwrap()).to_bits(),
            want_sin.to_bits(),
            "{engine:?} fsin"
        );
        assert_eq!(
            cpu.fx.xmm[2], 0x0000_0000_0000_000F_0000_0000_0000_000F,
            "{engine:?}"
        );
        assert_eq!(cpu.fx.fsw & 0x3800, 0, "{engine:?} x87 stack balanced");
    }
}

#[test]
fn sse_without_osfxsr_is_ud_and_ts_is_nm() {
    let code = assemble(|a| a.addps(xmm0, xmm1));
    for engine in ENGINES {
        let mut vm = make(engine, &code, &[]);
        vm.cpu_mut().cr4 &= !cr::CR4_OSFXSR;
        assert_eq!(
            vm.run(),
            RunOutcome::Exception {
                exc: Exception::InvalidOpcode,
                rip: CODE
            },
            "{engine:?}"
        );
        let mut vm = make(engine, &code, &[]);
        vm.cpu_mut().cr0 |= cr::CR0_TS;
        assert_eq!(
            vm.run(),
            RunOutcome::Exception {
                exc: Exception::DeviceNotAvailable,
                rip: CODE
            },
            "{engine:?}"
        );
    }
}

#[test]
fn an_unmasked_simd_exception_raises_xm_and_leaves_the_destination() {
    // divps by zero with ZM unmasked.
    let code = assemble(|a| a.divps(xmm0, xmm1));
    for engine in ENGINES {
        let mut vm = make(engine, &code, &[]);
        let cpu = vm.cpu_mut();
        cpu.fx.xmm[0] = u128::from(1f32.to_bits());
        cpu.fx.mxcsr = mxcsr::DEFAULT & !(1 << 9);
        assert_eq!(
            vm.run(),
            RunOutcome::Exception {
                exc: Exception::SimdFloatingPoint,
                rip: CODE
            },
            "{engine:?}"
        );
        let cpu = vm.cpu();
        assert_eq!(cpu.fx.xmm[0], u128::from(1f32.to_bits()), "{engine:?}");
        assert_ne!(cpu.fx.mxcsr & 0x4, 0, "{engine:?} ZE flag set");
    }
}

#[test]
fn mxcsr_rounding_applies_to_inline_and_host_operations() {
    // 1/3 in round-toward-zero and round-up differ in the last bit.
    let code = assemble(|a| {
        a.ldmxcsr(dword_ptr(DATA))?;
        a.divsd(xmm0, xmm1)?;
        a.stmxcsr(dword_ptr(DATA + 4))?;
        Ok(())
    });
    for engine in ENGINES {
        let mut got = Vec::new();
        for rc in [0u32, 2] {
            let mut vm = make(engine, &code, &(mxcsr::DEFAULT | rc << 13).to_le_bytes());
            let cpu = vm.cpu_mut();
            cpu.fx.xmm[0] = u128::from(1f64.to_bits());
            cpu.fx.xmm[1] = u128::from(3f64.to_bits());
            assert_eq!(vm.run(), RunOutcome::Halted, "{engine:?}");
            let mut m = [0u8; 4];
            vm.read_phys(DATA + 4, &mut m).unwrap();
            assert_eq!(
                u32::from_le_bytes(m),
                mxcsr::DEFAULT | rc << 13 | 0x20,
                "{engine:?} PE flag"
            );
            got.push(vm.cpu().fx.xmm[0] as u64);
        }
        assert_eq!(
            got[1],
            got[0] + 1,
            "{engine:?}: round up is one ulp above toward zero"
        );
        assert_eq!(
            got[0],
            (1f64 / 3f64).to_bits(),
            "{engine:?}: RZ equals RN for 1/3"
        );
    }
}

/// Deterministic pseudo-random numbers (xorshift).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// A 32- or 64-bit lane value biased toward floating-point edge cases.
    fn lane(&mut self, bits: u32) -> u64 {
        let edge32 = [
            0,
            0x8000_0000,
            0x7F80_0000,
            0xFF80_0000,
            0x7FC0_0001,
            0x7FA0_0001,
            0x0000_0001,
            0x8080_0000,
            0x3F80_0000,
            0x4F00_0000,
            0x7F7F_FFFF,
            0x3F00_0000,
        ];
        let edge64 = [
            0,
            1 << 63,
            0x7FF0 << 48,
            0xFFF0 << 48,
            0x7FF8_0000_0000_0001,
            0x7FF4_0000_0000_0001,
            1,
            0x0010 << 48,
            0x3FF0 << 48,
            0x43E0 << 48,
            0x7FEF_FFFF_FFFF_FFFF,
            0x3FE0 << 48,
        ];
        let r = self.next();
        match r % 4 {
            0 if bits == 32 => edge32[(r >> 8) as usize % edge32.len()],
            0 => edge64[(r >> 8) as usize % edge64.len()],
            1 if bits == 32 => f32::to_bits((r >> 40) as i32 as f32 / 7.0) as u64,
            1 => f64::to_bits((r >> 20) as i64 as f64 / 7.0),
            _ => self.next() & if bits == 32 { 0xFFFF_FFFF } else { u64::MAX },
        }
    }
    fn vec(&mut self, bits: u32) -> u128 {
        (0..128 / bits).fold(0u128, |v, i| v | u128::from(self.lane(bits)) << (i * bits))
    }
}

/// The host's result for `insn` (register operands XMM1, XMM2) on `a`, `b` under `mx`:
/// through the instruction's own host stub, which is the reference implementation.
fn host_result(bytes: &[u8], a: u128, b: u128, mx: u32, x0: u128) -> (u128, u32) {
    let insn = iced_x86::Decoder::with_ip(64, bytes, 0, iced_x86::DecoderOptions::NONE).decode();
    let plan = translator::hostexec::plan(&insn).unwrap();
    let mut stubs = runtime::stubs::HostStubs::new();
    let addr = stubs.addr(&plan.stub.code).unwrap();
    let mut f = translator::state::HostFrame::default();
    f.xmm[0] = x0;
    f.xmm[1] = a;
    f.xmm[2] = b;
    let saved = runtime::fpu::read_mxcsr();
    let set = |v: u32| {
        // SAFETY: LDMXCSR of a valid value (reserved bits clear) from a local.
        unsafe { std::arch::asm!("ldmxcsr [{p}]", p = in(reg) &v) };
    };
    set(mx);
    assert!(stubs.call(addr, &mut f));
    let after = runtime::fpu::read_mxcsr();
    set(saved);
    (f.xmm[1], after)
}

#[test]
fn inline_lowerings_equal_the_host_stub() {
    let forms: Vec<(&str, Vec<u8>, u32)> = {
        let mut v = Vec::new();
        macro_rules! form {
            ($bits:expr, $($name:ident)*) => {$({
                let mut a = CodeAssembler::new(64).unwrap();
                a.$name(xmm1, xmm2).unwrap();
                v.push((stringify!($name), a.assemble(0).unwrap(), $bits));
            })*};
        }
        form!(32, addps subps mulps divps sqrtps addss subss mulss divss sqrtss unpcklps unpckhps);
        form!(64, addpd subpd mulpd divpd sqrtpd addsd subsd mulsd divsd sqrtsd unpcklpd unpckhpd);
        form!(64, andps andnps orps xorps pand pandn por pxor movss movsd_2 movaps movq movddup);
        form!(32, movsldup movshdup);
        form!(64, paddb paddw paddd paddq psubb psubw psubd psubq paddsb paddsw paddusb paddusw);
        form!(64, psubsb psubsw psubusb psubusw pminsb pminsw pminsd pminub pminuw pminud);
        form!(64, pmaxsb pmaxsw pmaxsd pmaxub pmaxuw pmaxud pavgb pavgw pmullw pmulld pmulhw);
        form!(64, pmulhuw pmuludq pmuldq pmaddwd pcmpeqb pcmpeqw pcmpeqd pcmpeqq pcmpgtb);
        form!(64, pcmpgtw pcmpgtd pcmpgtq packsswb packssdw packuswb packusdw pabsb pabsw pabsd);
        form!(64, punpcklbw punpckhbw punpcklwd punpckhwd punpckldq punpckhdq punpcklqdq);
        form!(64, punpckhqdq pshufb psllw pslld psllq psrlw psrld psrlq psraw psrad);
        form!(64, pmovsxbw pmovsxbd pmovsxbq pmovsxwd pmovsxwq pmovsxdq pmovzxbw pmovzxbd);
        form!(64, pmovzxbq pmovzxwd pmovzxwq pmovzxdq);
        form!(32, minps maxps minss maxss cvtss2sd cvtdq2ps cvttps2dq cvtps2pd blendvps);
        form!(64, minpd maxpd minsd maxsd cvtsd2ss cvtpd2ps cvtdq2pd blendvpd pblendvb);
        macro_rules! form_imm {
            ($($name:ident)*) => {$({
                for imm in [0u32, 1, 3, 0x1B, 0x4E, 0x80, 0xA5, 0xFF, 7, 15, 17] {
                    let mut a = CodeAssembler::new(64).unwrap();
                    a.$name(xmm1, xmm2, imm).unwrap();
                    v.push((stringify!($name), a.assemble(0).unwrap(), 32));
                }
            })*};
        }
        form_imm!(pshufd pshuflw pshufhw shufps shufpd palignr pblendw blendps blendpd insertps);
        v
    };
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    for (name, bytes, bits) in &forms {
        let mut code = bytes.clone();
        code.push(0xF4);
        for engine in [Engine::Interp, Engine::Jit] {
            for round in 0..40 {
                let (a, b) = (rng.vec(*bits), rng.vec(*bits));
                // Random rounding, DAZ and FTZ; every exception masked; flags clear.
                let r = rng.next();
                let mx = mxcsr::MASKS
                    | ((r as u32 & 3) << 13)
                    | ((r >> 2) as u32 & 1) << 6
                    | ((r >> 3) as u32 & 1) << 15;
                let mask = rng.vec(8);
                let want = host_result(bytes, a, b, mx, mask);
                let mut vm = make(engine, &code, &[]);
                let cpu = vm.cpu_mut();
                cpu.fx.xmm[0] = mask;
                cpu.fx.xmm[1] = a;
                cpu.fx.xmm[2] = b;
                cpu.fx.mxcsr = mx;
                assert_eq!(vm.run(), RunOutcome::Halted, "{name} {engine:?}");
                assert!(
                    vm.machine().stubs.is_empty(),
                    "{name}: lowered inline, no stub"
                );
                let got = (vm.cpu().fx.xmm[1], vm.cpu().fx.mxcsr);
                assert_eq!(
                    got, want,
                    "{name} {engine:?} round {round}: a={a:#034x} b={b:#034x} mxcsr={mx:#x}\n got {:#034x} {:#x}\nwant {:#034x} {:#x}",
                    got.0, got.1, want.0, want.1
                );
            }
        }
    }
}

/// Regression: an inline division whose result was overwritten unread was removed as dead
/// code by Cranelift, and with it the ZE flag; and one read only after STMXCSR ran after it.
#[test]
fn flags_of_dead_and_late_results_reach_mxcsr() {
    let code = assemble(|a| {
        a.divsd(xmm0, xmm1)?; // 1 / 0: ZE, result overwritten below
        a.movapd(xmm0, xmm2)?;
        a.mulsd(xmm3, xmm4)?; // inexact: PE, result read only at the block's end
        a.stmxcsr(dword_ptr(DATA))?;
        Ok(())
    });
    for engine in ENGINES {
        let mut vm = make(engine, &code, &[0; 4]);
        let cpu = vm.cpu_mut();
        cpu.fx.xmm[0] = u128::from(1f64.to_bits());
        cpu.fx.xmm[3] = u128::from(0.1f64.to_bits());
        cpu.fx.xmm[4] = u128::from(0.3f64.to_bits());
        assert_eq!(vm.run(), RunOutcome::Halted, "{engine:?}");
        let mut m = [0u8; 4];
        vm.read_phys(DATA, &mut m).unwrap();
        assert_eq!(
            u32::from_le_bytes(m),
            mxcsr::DEFAULT | 0x4 | 0x20,
            "{engine:?}"
        );
    }
}

/// Conversions to and from general registers and the compares into RFLAGS: each inline
/// lowering (with its guarded stub fallback) against the host stub.
#[test]
fn inline_conversions_and_compares_equal_the_host_stub() {
    let mut forms: Vec<(&str, Vec<u8>, u32)> = Vec::new();
    let mut add =
        |name: &'static str, bits: u32, f: &dyn Fn(&mut CodeAssembler) -> Result<(), IcedError>| {
            let mut a = CodeAssembler::new(64).unwrap();
            f(&mut a).unwrap();
            forms.push((name, a.assemble(0).unwrap(), bits));
        };
    add("cvttsd2si r64", 64, &|a| a.cvttsd2si(r8, xmm1));
    add("cvttsd2si r32", 64, &|a| a.cvttsd2si(r8d, xmm1));
    add("cvttss2si r64", 32, &|a| a.cvttss2si(r8, xmm1));
    add("cvttss2si r32", 32, &|a| a.cvttss2si(r8d, xmm1));
    add("cvtsi2sd r64", 64, &|a| a.cvtsi2sd(xmm1, r8));
    add("cvtsi2sd r32", 64, &|a| a.cvtsi2sd(xmm1, r8d));
    add("cvtsi2ss r64", 32, &|a| a.cvtsi2ss(xmm1, r8));
    add("cvtsi2ss r32", 32, &|a| a.cvtsi2ss(xmm1, r8d));
    add("comisd", 64, &|a| a.comisd(xmm1, xmm2));
    add("ucomisd", 64, &|a| a.ucomisd(xmm1, xmm2));
    add("comiss", 32, &|a| a.comiss(xmm1, xmm2));
    add("ucomiss", 32, &|a| a.ucomiss(xmm1, xmm2));
    let mut rng = Rng(0x0DDB_A11C_AFE0_1234);
    let set = |v: u32| {
        // SAFETY: LDMXCSR of a valid value from a local.
        unsafe { std::arch::asm!("ldmxcsr [{p}]", p = in(reg) &v) };
    };
    for (name, bytes, bits) in &forms {
        let mut code = bytes.clone();
        code.push(0xF4);
        let insn =
            iced_x86::Decoder::with_ip(64, bytes, 0, iced_x86::DecoderOptions::NONE).decode();
        let plan = translator::hostexec::plan(&insn).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut stubs = runtime::stubs::HostStubs::new();
        let addr = stubs.addr(&plan.stub.code).unwrap();
        for engine in [Engine::Interp, Engine::Jit] {
            for round in 0..60 {
                let (a, b) = (rng.vec(*bits), rng.vec(*bits));
                let g = match rng.next() % 4 {
                    0 => rng.next() as i32 as i64 as u64,
                    1 => rng.next() >> (rng.next() % 64),
                    _ => rng.next(),
                };
                let r = rng.next();
                let mx = mxcsr::MASKS
                    | ((r as u32 & 3) << 13)
                    | ((r >> 2) as u32 & 1) << 6
                    | ((r >> 3) as u32 & 1) << 15;
                // The host: the stub on a frame (R8 is general slot 3).
                let mut f = translator::state::HostFrame::default();
                f.xmm[1] = a;
                f.xmm[2] = b;
                f.gpr[3] = g;
                let saved = runtime::fpu::read_mxcsr();
                set(mx);
                assert!(stubs.call(addr, &mut f));
                let host_mx = runtime::fpu::read_mxcsr();
                set(saved);
                let want = (f.xmm[1], f.gpr[3], f.rflags & 0x45, host_mx);
                let mut vm = make(engine, &code, &[]);
                let cpu = vm.cpu_mut();
                cpu.fx.xmm[1] = a;
                cpu.fx.xmm[2] = b;
                cpu.gpr[8] = g;
                cpu.fx.mxcsr = mx;
                assert_eq!(vm.run(), RunOutcome::Halted, "{name} {engine:?}");
                let cpu = vm.cpu();
                let got = (
                    cpu.fx.xmm[1],
                    cpu.gpr[8],
                    cpu.full_rflags() & 0x45,
                    cpu.fx.mxcsr,
                );
                assert_eq!(
                    got, want,
                    "{name} {engine:?} round {round}: a={a:#x} b={b:#x} g={g:#x} mxcsr={mx:#x}"
                );
                assert!(
                    vm.machine().stubs.len() <= 1,
                    "{name}: at most the guarded path's stub"
                );
            }
        }
    }
}

/// Regression: MIN/MAX of a register with itself, or with a copy of itself, was folded by
/// Cranelift to the register (a select between equal values), so DAZ did not flush a
/// denormal lane and IE/DE were not raised; such a form now runs as the host stub.
#[test]
fn min_and_max_of_a_value_with_itself_keep_daz_and_flags() {
    let denormal_and_nans =
        1u128 | 0x7FC0_0001u128 << 32 | 0x7FA0_0001u128 << 64 | 0x8000_0001u128 << 96;
    for (name, op) in [("minps", 0x5Du8), ("maxps", 0x5F)] {
        // `movaps xmm2, xmm1; OPps xmm1, xmm2` (a copy) and `OPps xmm1, xmm1` (itself).
        for (what, code) in [
            ("copy", vec![0x0F, 0x28, 0xD1, 0x0F, op, 0xCA, 0xF4]),
            ("itself", vec![0x0F, op, 0xC9, 0xF4]),
        ] {
            let mx = mxcsr::MASKS | 1 << 6; // DAZ
            let want = host_result(
                &[0x0F, op, 0xCA],
                denormal_and_nans,
                denormal_and_nans,
                mx,
                0,
            );
            for engine in ENGINES {
                let mut vm = make(engine, &code, &[]);
                let cpu = vm.cpu_mut();
                cpu.fx.xmm[1] = denormal_and_nans;
                cpu.fx.mxcsr = mx;
                assert_eq!(vm.run(), RunOutcome::Halted, "{name} {what} {engine:?}");
                let got = (vm.cpu().fx.xmm[1], vm.cpu().fx.mxcsr);
                assert_eq!(got, want, "{name} {what} {engine:?}");
            }
        }
    }
}

/// Generated code keeps XMM registers in variables and stores them at exits: a fault
/// exit after several XMM writes (floating-point and not, one result overwritten unread)
/// leaves each committed value and every MXCSR flag, as FXSAVE sees them mid-block.
#[test]
fn xmm_registers_held_in_a_block_reach_fault_exits_and_fxsave() {
    let body = |a: &mut CodeAssembler| -> Result<(), IcedError> {
        a.addsd(xmm0, xmm1)?; // 1 + 2^-60: inexact (PE)
        a.movapd(xmm2, xmm0)?;
        a.divsd(xmm3, xmm4)?; // 1 / 0: ZE, the result overwritten unread
        a.xorps(xmm3, xmm3)?;
        a.pshufd(xmm5, xmm2, 0x4e)?;
        a.mulpd(xmm6, xmm6)?; // a result that is only ever stored by the exit
        for k in 0..8 {
            // Enough instructions that can fault for the exits to share tails.
            a.addsd(xmm7, qword_ptr(rbx + 8 * k))?;
        }
        Ok(())
    };
    let setup = |vm: &mut Vm| {
        let cpu = vm.cpu_mut();
        cpu.gpr[3] = DATA;
        cpu.fx.xmm[0] = u128::from(1f64.to_bits());
        cpu.fx.xmm[1] = u128::from((2f64).powi(-60).to_bits());
        cpu.fx.xmm[3] = u128::from(1f64.to_bits());
        cpu.fx.xmm[4] = 0;
        cpu.fx.xmm[6] = u128::from(3f64.to_bits()) << 64 | u128::from(0.5f64.to_bits());
    };
    let one = u128::from(1f64.to_bits());
    let want = [
        one,
        u128::from((2f64).powi(-60).to_bits()),
        one,
        0,
        0,
        one << 64,
        u128::from(9f64.to_bits()) << 64 | u128::from(0.25f64.to_bits()),
        0,
    ];
    let flags = 0x4 | 0x20;
    // A misaligned MOVAPD after them: #GP(0) there, with the state before it.
    let faulting = assemble(|a| {
        body(a)?;
        a.movapd(xmm0, xmmword_ptr(DATA + 1))
    });
    // MOVAPD xmm0, [disp32] is 9 bytes, then HLT.
    let fault_at = CODE + faulting.len() as u64 - 1 - 9;
    // FXSAVE after them: its image holds them.
    let saving = assemble(|a| {
        body(a)?;
        a.fxsave(ptr(DATA))
    });
    for engine in ENGINES {
        let mut vm = make(engine, &faulting, &[0; 512]);
        setup(&mut vm);
        assert_eq!(
            vm.run(),
            RunOutcome::Exception {
                exc: Exception::GeneralProtection(0),
                rip: fault_at
            },
            "{engine:?}"
        );
        let cpu = vm.cpu();
        assert_eq!(cpu.fx.xmm[..8], want, "{engine:?}: registers at the fault");
        assert_eq!(
            cpu.fx.mxcsr & 0x3f,
            flags,
            "{engine:?}: MXCSR flags at the fault"
        );

        let mut vm = make(engine, &saving, &[0; 512]);
        setup(&mut vm);
        assert_eq!(vm.run(), RunOutcome::Halted, "{engine:?}");
        let mut img = [0u8; 512];
        vm.read_phys(DATA, &mut img).unwrap();
        let mx = u32::from_le_bytes(img[24..28].try_into().unwrap());
        assert_eq!(mx & 0x3f, flags, "{engine:?}: MXCSR in the FXSAVE image");
        for (i, w) in want.iter().enumerate() {
            let at = 160 + 16 * i;
            let x = u128::from_le_bytes(img[at..at + 16].try_into().unwrap());
            assert_eq!(x, *w, "{engine:?}: xmm{i} in the FXSAVE image");
        }
    }
}

/// Floating-point results left unstored because a later operation reads them
/// (`Ctx::expect_fp_reads`): the chain's flags reach MXCSR when its end is overwritten
/// unread, when the expected reader takes a stub instead (MAXSD of a value with itself),
/// and at a fault between the result and its reader.
#[test]
fn results_left_for_a_later_reader_keep_their_flags() {
    let chain = assemble(|a| {
        a.divsd(xmm0, xmm1)?; // 1 / 0: ZE, read by the ADDSD below
        a.movapd(xmm2, xmm0)?;
        a.add(rax, 1)?;
        a.mulsd(xmm3, xmm4)?; // inexact: PE, read by the MAXSD below (a stub)
        a.addsd(xmm0, xmm5)?; // its result overwritten unread
        a.xorps(xmm0, xmm0)?;
        a.maxsd(xmm3, xmm3)?;
        a.stmxcsr(dword_ptr(DATA))
    });
    let faulting = assemble(|a| {
        a.divsd(xmm0, xmm1)?; // ZE, to be read by the last ADDSD
        a.addpd(xmm3, xmmword_ptr(DATA + 1))?; // misaligned: #GP(0)
        a.addsd(xmm0, xmm2)
    });
    // DIVSD xmm0, xmm1 is 4 bytes.
    let fault_at = CODE + 4;
    let setup = |vm: &mut Vm| {
        let cpu = vm.cpu_mut();
        cpu.fx.xmm[0] = u128::from(1f64.to_bits());
        cpu.fx.xmm[1] = 0;
        cpu.fx.xmm[3] = u128::from(0.1f64.to_bits());
        cpu.fx.xmm[4] = u128::from(0.3f64.to_bits());
        cpu.fx.xmm[5] = u128::from(1f64.to_bits());
    };
    let inf = u128::from(f64::INFINITY.to_bits());
    for engine in ENGINES {
        let mut vm = make(engine, &chain, &[0; 32]);
        setup(&mut vm);
        assert_eq!(vm.run(), RunOutcome::Halted, "{engine:?}");
        let mut m = [0u8; 4];
        vm.read_phys(DATA, &mut m).unwrap();
        assert_eq!(
            u32::from_le_bytes(m),
            mxcsr::DEFAULT | 0x4 | 0x20,
            "{engine:?}"
        );
        let cpu = vm.cpu();
        assert_eq!(cpu.fx.xmm[0], 0, "{engine:?}");
        assert_eq!(cpu.fx.xmm[2], inf, "{engine:?}");
        assert_eq!(cpu.fx.xmm[3] as u64, (0.1f64 * 0.3).to_bits(), "{engine:?}");

        let mut vm = make(engine, &faulting, &[0; 32]);
        setup(&mut vm);
        assert_eq!(
            vm.run(),
            RunOutcome::Exception {
                exc: Exception::GeneralProtection(0),
                rip: fault_at
            },
            "{engine:?}"
        );
        let cpu = vm.cpu();
        assert_eq!(cpu.fx.xmm[0], inf, "{engine:?}: the result at the fault");
        assert_eq!(cpu.fx.mxcsr & 0x3f, 0x4, "{engine:?}: ZE at the fault");
    }
}

/// A loop that carries XMM registers from one iteration to the next (a region once hot
/// under dbt): every engine ends with the value the host computes.
#[test]
fn xmm_registers_carried_around_a_hot_loop() {
    let code = assemble(|a| {
        let mut top = a.create_label();
        a.mov(ecx, 5000)?;
        a.set_label(&mut top)?;
        a.addsd(xmm0, xmm1)?;
        a.movapd(xmm2, xmm0)?;
        a.mulsd(xmm2, xmm2)?;
        a.addsd(xmm3, xmm2)?;
        a.dec(ecx)?;
        a.jnz(top)
    });
    let (mut x0, mut x3) = (0f64, 0f64);
    for _ in 0..5000 {
        x0 += 0.1;
        x3 += x0 * x0;
    }
    for engine in ENGINES {
        let mut vm = make(engine, &code, &[]);
        vm.cpu_mut().fx.xmm[1] = u128::from(0.1f64.to_bits());
        assert_eq!(vm.run(), RunOutcome::Halted, "{engine:?}");
        let cpu = vm.cpu();
        assert_eq!(cpu.fx.xmm[0] as u64, x0.to_bits(), "{engine:?}");
        assert_eq!(cpu.fx.xmm[2] as u64, (x0 * x0).to_bits(), "{engine:?}");
        assert_eq!(cpu.fx.xmm[3] as u64, x3.to_bits(), "{engine:?}");
        assert_eq!(cpu.fx.mxcsr & 0x3f, 0x20, "{engine:?}: PE only");
    }
}

/// A loop that hands XMM registers from one iteration to the next faults part-way (in
/// compiled code, with results left for a later reader pending): the fault exit leaves each
/// register and MXCSR as of the faulting iteration's instruction.
#[test]
fn xmm_registers_carried_around_a_loop_reach_a_fault_inside_it() {
    let code = assemble(|a| {
        let mut top = a.create_label();
        a.mov(ecx, 3000)?;
        a.set_label(&mut top)?;
        a.addsd(xmm0, xmm1)?;
        a.movapd(xmm2, xmm0)?;
        a.mulsd(xmm2, xmm2)?;
        // Misaligned (8 past the aligned DATA) in the iteration with ECX = 1000 only.
        a.xor(edx, edx)?;
        a.cmp(ecx, 1000)?;
        a.sete(dl)?;
        a.shl(edx, 3)?;
        a.movapd(xmm3, xmmword_ptr(rbx + rdx))?;
        a.addpd(xmm4, xmm3)?;
        a.dec(ecx)?;
        a.jnz(top)
    });
    // The MOVAPD: mov ecx (5), addsd (4), movapd (4), mulsd (4), xor (2), cmp (6), sete (3),
    // shl (3).
    let fault_at = CODE + 5 + 4 + 4 + 4 + 2 + 6 + 3 + 3;
    let (mut x0, mut x4) = (0f64, 0f64);
    for _ in 0..=2000 {
        x0 += 0.1;
    }
    for _ in 0..2000 {
        x4 += 0.5;
    }
    for engine in ENGINES {
        let data: Vec<u8> = [0.5f64, 0.25, 0.0, 0.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let mut vm = make(engine, &code, &data);
        let cpu = vm.cpu_mut();
        cpu.gpr[3] = DATA;
        cpu.fx.xmm[1] = u128::from(0.1f64.to_bits());
        assert_eq!(
            vm.run(),
            RunOutcome::Exception {
                exc: Exception::GeneralProtection(0),
                rip: fault_at
            },
            "{engine:?}"
        );
        let cpu = vm.cpu();
        assert_eq!(cpu.gpr[1], 1000, "{engine:?}");
        assert_eq!(cpu.fx.xmm[0] as u64, x0.to_bits(), "{engine:?}");
        assert_eq!(cpu.fx.xmm[2] as u64, (x0 * x0).to_bits(), "{engine:?}");
        assert_eq!(cpu.fx.xmm[4] as u64, x4.to_bits(), "{engine:?}");
        assert_eq!(
            (cpu.fx.xmm[4] >> 64) as u64,
            (2000.0f64 * 0.25).to_bits(),
            "{engine:?}"
        );
        assert_eq!(cpu.fx.mxcsr & 0x3f, 0x20, "{engine:?}: PE only");
    }
}

/// Runs of x87 instructions fused into one host stub, against one at a time.
#[path = "fp/x87_runs.rs"]
mod x87_runs;
