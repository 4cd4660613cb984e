//! 16- and 32-bit code through the JIT against the interpreter: both code sizes, 66h/67h
//! forms, 16- and 32-bit stacks, segment bases, the stack instructions, BCD, string
//! operations and near branches, as random blocks and as hostile bytes.

use iced_x86::code_asm::*;

use super::blocks::fuzz_rounds;
use super::{differential_in, Rng};
use crate::decode::decode_block;
use crate::jit::JitConfig;
use crate::sensitive;
use crate::state::{reg, rflags, seg, CpuState};
use crate::Mode;

/// Where the blocks are placed.
const PC: u64 = 0x1000;
/// BX/EBX: the data pointer memory operands use.
const DATA: u64 = 0x8000;
/// SP/ESP at entry.
const STACK: u64 = 0x6000;

/// A random mode outside 64-bit mode: code size, stack width (sometimes the other one) and
/// whether CS/DS/ES/SS bases apply.
fn legacy_mode(rng: &mut Rng) -> Mode {
    let bitness = [16, 32][rng.below(2) as usize];
    let stack = match rng.below(4) {
        0 => 48 - bitness as u8,
        _ => bitness as u8,
    };
    Mode {
        stack,
        seg_bases: rng.below(2) == 0,
        ..Mode::new(bitness, [0, 3][rng.below(2) as usize])
    }
}

/// A CPU with random registers (EBX = DATA, ESP = STACK, upper halves random) and segment
/// bases that keep every access of the generated code inside RAM.
fn legacy_cpu(rng: &mut Rng) -> CpuState {
    let mut cpu = CpuState::default();
    for g in cpu.gpr.iter_mut() {
        *g = match rng.below(3) {
            0 => rng.below(0x100),
            1 => rng.next() & 0xffff,
            _ => rng.next(),
        };
    }
    cpu.gpr[reg::RBX] = (rng.next() & !0xffff_ffff) | DATA;
    cpu.gpr[reg::RSP] = (rng.next() & !0xffff_ffff) | STACK;
    cpu.rflags = rflags::FIXED | (rng.next() & rflags::ARITH);
    if rng.below(4) == 0 {
        cpu.rflags |= rflags::DF;
    }
    let bases = [
        (seg::ES, 0x5_0000),
        (seg::SS, 0x2_0000),
        (seg::DS, 0x3_0000),
        (seg::FS, 0x6_0000),
        (seg::GS, 0x7_0000),
    ];
    for (i, b) in bases {
        cpu.seg[i].base = b;
    }
    cpu
}

/// Random bytes around every place the segment bases put the data and the stack.
fn legacy_data(ram: &mut [u8]) {
    let mut r = Rng(2718);
    for base in [0, 0x2_0000, 0x3_0000, 0x5_0000, 0x6_0000, 0x7_0000] {
        for b in &mut ram[base + 0x4000..base + 0x1_0000] {
            *b = r.next() as u8;
        }
    }
}

/// Random straight-line 16/32-bit blocks ending in a branch of the mode's own forms.
#[test]
fn random_legacy_blocks_match_the_interpreter() {
    let mut rng = Rng(1632);
    let r32 = [eax, ecx, edx, esi, edi, ebp];
    let r16 = [ax, cx, dx, si, di, bp];
    let regs8 = [al, cl, dl, ah, ch, dh];
    for round in 0..fuzz_rounds(200) {
        let mode = legacy_mode(&mut rng);
        let n = 1 + rng.below(20) as usize;
        let picks: Vec<_> = (0..n)
            .map(|_| (rng.below(30), rng.next(), rng.next()))
            .collect();
        let end = rng.below(7);
        let mut a = CodeAssembler::new(mode.bitness).expect("assembler");
        let emit = |a: &mut CodeAssembler| -> Result<(), IcedError> {
            for &(k, x, y) in &picks {
                let (d, s) = ((x % 6) as usize, (y % 6) as usize);
                let disp = (y >> 8) as i32 % 0x800;
                let imm = (x >> 32) as i32;
                // Memory at [ebx+disp] (32-bit address) or [bx+disp] (16-bit address).
                let m32 = dword_ptr(ebx + disp);
                let m16 = word_ptr(bx + disp);
                match k {
                    0 => a.mov(r32[d], r32[s])?,
                    1 => a.mov(r16[d], imm as u32 & 0xffff)?,
                    2 => a.add(r32[d], r32[s])?,
                    3 => a.sub(r16[d], r16[s])?,
                    4 => a.and(r32[d], imm)?,
                    5 => a.adc(regs8[d], regs8[s])?,
                    6 => a.xor(r32[d], m32)?,
                    7 => a.mov(m16, r16[s])?,
                    8 => a.inc(r32[d])?,
                    9 => a.dec(r16[d])?,
                    10 => a.push(r32[d])?,
                    11 => a.pop(r16[d])?,
                    // A 16-bit PUSH takes a 16-bit immediate.
                    12 if mode.bitness == 16 => a.push(imm as i16 as i32)?,
                    12 => a.push(imm)?,
                    13 => a.pushad()?,
                    14 => a.popa()?,
                    15 => a.lea(r32[d], dword_ptr(bx + si + disp))?,
                    16 => match x % 4 {
                        0 => a.daa()?,
                        1 => a.das()?,
                        2 => a.aaa()?,
                        _ => a.aas()?,
                    },
                    17 if x % 2 == 0 => a.aam(1 + (y % 20) as u32)?,
                    17 => a.aad((y % 20) as u32)?,
                    18 => a.shl(r32[d], (x % 32) as u32)?,
                    19 => a.imul_2(r16[d], r16[s])?,
                    20 => a.cmovl(r32[d], m32)?,
                    21 => {
                        a.mov(esi, (x % 0x400) as u32 + 0x4000)?;
                        a.mov(edi, (y % 0x400) as u32 + 0x4000)?;
                        a.mov(ecx, (x >> 20) as u32 % 6)?;
                        match y % 5 {
                            0 => a.rep().movsb()?,
                            1 => a.rep().stosd()?,
                            2 => a.repe().cmpsw()?,
                            3 => a.repne().scasb()?,
                            _ => a.lodsd()?,
                        }
                    }
                    22 => a.push(m32)?,
                    23 => a.pop(m16)?,
                    24 => {
                        a.enter((x % 0x40) as u32, (y % 3) as u32)?;
                        a.leave()?;
                    }
                    25 => a.xchg(regs8[d], regs8[s])?,
                    26 => a.movzx(r32[d], byte_ptr(bp + di + disp))?,
                    27 => a.mov(r32[d], dword_ptr(esp + (disp & 0x3c)))?,
                    28 => a.bts(m16, r16[s])?,
                    _ => a.add(r32[d], dword_ptr(ebx + disp).fs())?,
                }
            }
            let mut t = a.create_label();
            match end {
                0 => {
                    a.cmp(eax, ecx)?;
                    a.jle(t)?;
                }
                1 => a.loop_(t)?,
                2 if mode.bitness == 32 => a.jecxz(t)?,
                2 => a.jcxz(t)?,
                3 => a.ret()?,
                4 => a.ret_1(6)?,
                5 => a.call(t)?,
                _ => a.jmp(edx)?,
            }
            a.nop()?;
            a.set_label(&mut t)?;
            a.nop()
        };
        if let Err(e) = emit(&mut a) {
            panic!("round {round} {mode:?}: {e}");
        }
        let code = a.assemble(PC).expect("encode");
        let cpu = legacy_cpu(&mut rng);
        let (jit, interp, ram_same) =
            differential_in(JitConfig::default(), mode, &code, PC, &cpu, legacy_data);
        assert_eq!(jit, interp, "round {round} {mode:?}: {code:02x?}");
        assert!(
            ram_same,
            "round {round} {mode:?}: RAM differs for {code:02x?}"
        );
    }
}

/// Random bytes decoded as 16- or 32-bit code: the JIT and the interpreter agree.
#[test]
fn hostile_legacy_bytes_agree() {
    let mut rng = Rng(5150);
    for round in 0..fuzz_rounds(300) {
        let mode = legacy_mode(&mut rng);
        let len = 1 + rng.below(48) as usize;
        let mut code: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Stop before the first sensitive instruction: the test machine's hypercall does
        // nothing, so the block would leave (unlinked) to its own start, which the
        // interpreter side of the comparison models as a block looping on itself.
        // (Decoded as the harness does, from RAM: zeros follow the bytes.)
        let padded: Vec<u8> = code.iter().copied().chain([0; 15]).collect();
        let block = decode_block(&padded, PC, mode, 64);
        if let Some(i) = block.insns.iter().find(|i| sensitive::lookup(i).is_some()) {
            code.truncate(((i.ip() - PC) as usize).min(code.len()));
        }
        if code.is_empty() {
            continue;
        }
        let mut cpu = legacy_cpu(&mut rng);
        cpu.icount_limit = 1000;
        let (jit, interp, ram_same) =
            differential_in(JitConfig::default(), mode, &code, PC, &cpu, legacy_data);
        assert_eq!(jit, interp, "round {round} {mode:?}: {code:02x?}");
        assert!(
            ram_same,
            "round {round} {mode:?}: RAM differs for {code:02x?}"
        );
    }
}
