//! The soft-TLB memory model ([`MemoryModel::Tlb`]): hits are done inline through the
//! entry's addend without calling a helper; misses (invalid or other tag, page-crossing
//! accesses, stores through a read-only entry) call `MemRead`/`MemWrite` with the linear
//! address and use their result; a faulting helper leaves with the precise state; the set is
//! the one the model names. Random blocks agree with the interpreter.
//!
//! The machine's helpers treat linear addresses as RAM addresses (identity paging) and raise
//! #PF outside RAM, so a test tells a hit from a miss by pointing the TLB at a separate host
//! buffer whose bytes differ from RAM's.

use iced_x86::code_asm::*;
use iced_x86::IcedError;

use super::{asm, interp_block, Harness, Machine, Observed, Rng};
use crate::decode::DecodedBlock;
use crate::helpers::Helper;
use crate::jit::{disassemble, JitEnv, MemoryModel};
use crate::state::{reg, rflags, CpuState, ExitReason, Tlb, TlbEntry, TLB_ENTRIES, TLB_INVALID};
use crate::Mode;

/// Where the test blocks are.
const PC: u64 = 0x1000;
/// What a test block that ran to its end returns: it ends with a jump to the next
/// instruction (see [`end`]), not with HLT, a sensitive instruction.
const DONE: u64 = ExitReason::Jump as u64;
/// A virtual page far outside RAM: reachable only through the TLB.
const FAR: u64 = 0x7fff_1234_5000;
/// A virtual page inside RAM (a miss reads RAM through the helper).
const NEAR: u64 = 0x5000;

/// End a test block: a direct jump to the next instruction.
fn end(a: &mut CodeAssembler) -> Result<(), IcedError> {
    let mut next = a.create_label();
    a.jmp(next)?;
    a.set_label(&mut next)?;
    a.nop()
}

/// The test machine seen through the TLB model of set `set`; nothing is linked.
struct TlbEnv<'a> {
    m: &'a mut Machine,
    set: usize,
}

impl JitEnv for TlbEnv<'_> {
    fn helper_addr(&self, h: Helper) -> usize {
        self.m.helper_addr(h)
    }
    fn memory(&self) -> MemoryModel {
        MemoryModel::Tlb { set: self.set }
    }
    fn link_slot(&mut self, _target_pc: u64) -> Option<usize> {
        None
    }
}

/// A paging mode whose CPL uses `set`.
fn mode_of(set: usize) -> Mode {
    Mode {
        paging: true,
        ..Mode::new(64, if set == 1 { 3 } else { 0 })
    }
}

/// Translate `block` with the TLB model of `set` and install it.
fn install(h: &mut Harness, block: &DecodedBlock, set: usize) -> usize {
    let mut env = TlbEnv { m: &mut h.m, set };
    let c = h
        .jit
        .translate(block, mode_of(set), &mut env)
        .expect("translate");
    h.code.install(&c.code)
}

/// Load `code` at [`PC`] and translate it with the TLB model of `set`.
fn compile(h: &mut Harness, code: &[u8], set: usize) -> usize {
    h.mode = mode_of(set);
    h.load(PC, code);
    let block = h.decode(PC, 64);
    install(h, &block, set)
}

/// Point virtual page `virt` at host address `host` in `set` (readable; writable if
/// `write`).
fn map(cpu: &mut CpuState, set: usize, virt: u64, host: usize, write: bool) {
    cpu.tlb.sets[set][entry_index(virt)] = TlbEntry {
        read_tag: virt,
        write_tag: if write { virt } else { TLB_INVALID },
        addend: (host as u64).wrapping_sub(virt),
        phys: 0,
    };
}

fn entry_index(virt: u64) -> usize {
    (virt >> 12) as usize % TLB_ENTRIES
}

/// The memory helper calls made since the last clear.
fn mem_calls(m: &Machine) -> Vec<(Helper, [u64; 3])> {
    m.calls
        .iter()
        .filter(|c| matches!(c.0, Helper::MemRead | Helper::MemWrite))
        .copied()
        .collect()
}

/// A host buffer of `pages` pages with a pattern unlike RAM's.
fn buffer(pages: usize) -> Vec<u8> {
    (0..pages * 4096).map(|i| (i * 7 + 0x5a) as u8).collect()
}

fn u64_at(bytes: &[u8], at: usize, n: usize) -> u64 {
    let mut b = [0u8; 8];
    b[..n].copy_from_slice(&bytes[at..at + n]);
    u64::from_le_bytes(b)
}

#[test]
fn hits_of_every_size_stay_inline() {
    let mut h = Harness::new();
    let code = asm(|a| {
        a.movzx(eax, byte_ptr(rcx + 0xfff))?; // the page's last byte
        a.movzx(edx, word_ptr(rcx + 0x7fe))?;
        a.mov(ebx, dword_ptr(rcx + 0x123))?;
        a.mov(rsi, qword_ptr(rcx + 0xff8))?; // ends on the page's last byte
        a.mov(byte_ptr(rcx + 0x201), r8b)?;
        a.mov(word_ptr(rcx + 0x303), r9w)?;
        a.mov(dword_ptr(rcx + 0x405), r10d)?;
        a.mov(qword_ptr(rcx + 0x507), r11)?;
        end(a)
    });
    let host = compile(&mut h, &code, 0);
    let mut buf = buffer(2);
    let page = buf.as_mut_ptr() as usize + 0x1000;
    map(&mut h.cpu, 0, FAR, page, true);
    h.cpu.gpr[reg::RCX] = FAR;
    h.cpu.gpr[8..12].copy_from_slice(&[0x11, 0x2222, 0x3333_3333, 0x4444_4444_4444_4444]);
    assert_eq!(h.enter(host), DONE);
    assert_eq!(mem_calls(&h.m), vec![], "every access should hit");
    let p = &buf[0x1000..];
    assert_eq!(h.cpu.gpr[reg::RAX], u64_at(p, 0xfff, 1));
    assert_eq!(h.cpu.gpr[reg::RDX], u64_at(p, 0x7fe, 2));
    assert_eq!(h.cpu.gpr[reg::RBX], u64_at(p, 0x123, 4));
    assert_eq!(h.cpu.gpr[reg::RSI], u64_at(p, 0xff8, 8));
    assert_eq!(
        [
            u64_at(p, 0x201, 1),
            u64_at(p, 0x303, 2),
            u64_at(p, 0x405, 4),
            u64_at(p, 0x507, 8)
        ],
        [0x11, 0x2222, 0x3333_3333, 0x4444_4444_4444_4444]
    );
    // The page before the mapped one is untouched.
    assert_eq!(buf[..0x1000], buffer(1)[..]);
}

#[test]
fn misses_call_the_helper_and_use_its_result() {
    let mut h = Harness::new();
    let load = asm(|a| {
        a.movzx(eax, byte_ptr(rcx))?;
        a.movzx(edx, word_ptr(rcx + 2))?;
        a.mov(ebx, dword_ptr(rcx + 4))?;
        a.mov(rsi, qword_ptr(rcx + 8))?;
        end(a)
    });
    let loads = compile(&mut h, &load, 0);
    let mut r = Rng(17);
    for b in &mut h.m.ram[0x4000..0x8000] {
        *b = r.next() as u8;
    }
    let buf = buffer(2);
    let (page, other) = (buf.as_ptr() as usize, buf.as_ptr() as usize + 0x1000);
    let ram = h.m.ram.clone();
    let from_ram = |at: u64| {
        let at = at as usize;
        [
            u64_at(&ram, at, 1),
            u64_at(&ram, at + 2, 2),
            u64_at(&ram, at + 4, 4),
            u64_at(&ram, at + 8, 8),
        ]
    };
    let calls = |at: u64| {
        vec![
            (Helper::MemRead, [at, 1, 0]),
            (Helper::MemRead, [at + 2, 2, 0]),
            (Helper::MemRead, [at + 4, 4, 0]),
            (Helper::MemRead, [at + 8, 8, 0]),
        ]
    };
    let run = |h: &mut Harness, at: u64| {
        h.m.calls.clear();
        h.cpu.gpr[reg::RCX] = at;
        assert_eq!(h.enter(loads), DONE);
        let g = h.cpu.gpr;
        (
            [g[reg::RAX], g[reg::RDX], g[reg::RBX], g[reg::RSI]],
            mem_calls(&h.m),
        )
    };

    // Invalid entry (the initial state).
    assert_eq!(
        run(&mut h, NEAR + 0x10),
        (from_ram(NEAR + 0x10), calls(NEAR + 0x10))
    );
    // Another page in the same entry.
    map(
        &mut h.cpu,
        0,
        NEAR + (TLB_ENTRIES as u64) * 4096,
        page,
        true,
    );
    assert_eq!(
        run(&mut h, NEAR + 0x10),
        (from_ram(NEAR + 0x10), calls(NEAR + 0x10))
    );
    // Only the write tag.
    map(&mut h.cpu, 0, NEAR, page, true);
    h.cpu.tlb.sets[0][entry_index(NEAR)].read_tag = TLB_INVALID;
    assert_eq!(
        run(&mut h, NEAR + 0x10),
        (from_ram(NEAR + 0x10), calls(NEAR + 0x10))
    );
    // Mapped: a hit through the buffer.
    map(&mut h.cpu, 0, NEAR, page, false);
    let hit = run(&mut h, NEAR + 0x10);
    assert_eq!(hit.1, vec![]);
    assert_eq!(hit.0, {
        let b = &buf[..];
        [
            u64_at(b, 0x10, 1),
            u64_at(b, 0x12, 2),
            u64_at(b, 0x14, 4),
            u64_at(b, 0x18, 8),
        ]
    });
    // Both pages mapped, but the 8-byte load at 0x5ffc crosses into the next one: only it
    // misses (the 4-byte load at 0x5ff8 ends on the page's last byte and hits).
    map(&mut h.cpu, 0, NEAR + 0x1000, other, false);
    let (vals, got) = run(&mut h, NEAR + 0xff4);
    assert_eq!(got, vec![(Helper::MemRead, [NEAR + 0xffc, 8, 0])]);
    assert_eq!(vals[3], u64_at(&ram, (NEAR + 0xffc) as usize, 8));
    assert_eq!(vals[2], u64_at(&buf, 0xff8, 4));
}

/// Scalar loads into XMM registers (MOVSS, MOVSD, an ADDSD operand), each one `movss` /
/// `movsd` from memory on a hit: the upper lanes cleared on a hit and on a miss alike.
#[test]
fn scalar_xmm_loads_hit_and_miss_with_the_upper_lanes_cleared() {
    let mut h = Harness::new();
    let code = asm(|a| {
        a.movss(xmm1, dword_ptr(rcx + 0x10))?;
        a.movsd_2(xmm2, qword_ptr(rcx + 0x18))?;
        a.movq(xmm3, qword_ptr(rcx + 0x20))?;
        a.addsd(xmm4, qword_ptr(rcx + 0x28))?;
        end(a)
    });
    let host = compile(&mut h, &code, 0);
    let mut buf = buffer(1);
    let bits = [
        1.5f32.to_bits() as u64,
        2.5f64.to_bits(),
        0x0123_4567_89ab_cdef,
        0.25f64.to_bits(),
    ];
    for (k, b) in bits.iter().enumerate() {
        buf[0x10 + 8 * k..0x18 + 8 * k].copy_from_slice(&b.to_le_bytes());
    }
    h.m.ram[NEAR as usize..NEAR as usize + 0x1000].copy_from_slice(&buf);
    let want = |cpu: &CpuState| {
        let x4 = cpu.fx.xmm[4];
        let sum = f64::from_bits(x4 as u64) + 0.25;
        [
            u128::from(bits[0]),
            u128::from(bits[1]),
            u128::from(bits[2]),
            (x4 >> 64) << 64 | u128::from(sum.to_bits()),
        ]
    };
    let start = |cpu: &mut CpuState| {
        cpu.fx.xmm = std::array::from_fn(|i| u128::MAX / (i as u128 + 3));
        cpu.fx.xmm[4] = 7u128 << 64 | u128::from(1f64.to_bits());
        cpu.gpr[reg::RCX] = NEAR;
    };
    // A miss (the entry invalid): through the helper.
    start(&mut h.cpu);
    let expect = want(&h.cpu);
    h.m.calls.clear();
    assert_eq!(h.enter(host), DONE);
    assert_eq!(mem_calls(&h.m).len(), 4, "every load misses");
    assert_eq!(h.cpu.fx.xmm[1..5], expect);
    // A hit through the buffer.
    map(&mut h.cpu, 0, NEAR, buf.as_ptr() as usize, false);
    start(&mut h.cpu);
    h.m.calls.clear();
    assert_eq!(h.enter(host), DONE);
    assert_eq!(mem_calls(&h.m), vec![], "every load hits");
    assert_eq!(h.cpu.fx.xmm[1..5], expect);
}

#[test]
fn stores_without_a_write_tag_call_the_helper() {
    let mut h = Harness::new();
    let code = asm(|a| {
        a.mov(byte_ptr(rcx), dl)?;
        a.mov(word_ptr(rcx + 2), dx)?;
        a.mov(dword_ptr(rcx + 4), edx)?;
        a.mov(qword_ptr(rcx + 8), rdx)?;
        a.mov(rax, qword_ptr(rcx + 8))?;
        end(a)
    });
    let host = compile(&mut h, &code, 0);
    let buf = buffer(1);
    map(&mut h.cpu, 0, NEAR, buf.as_ptr() as usize, false);
    let v = 0x0102_0304_0506_0708u64;
    h.cpu.gpr[reg::RCX] = NEAR + 0x20;
    h.cpu.gpr[reg::RDX] = v;
    assert_eq!(h.enter(host), DONE);
    let a = NEAR + 0x20;
    assert_eq!(
        mem_calls(&h.m),
        vec![
            (Helper::MemWrite, [a, 1, v & 0xff]),
            (Helper::MemWrite, [a + 2, 2, v & 0xffff]),
            (Helper::MemWrite, [a + 4, 4, v & 0xffff_ffff]),
            (Helper::MemWrite, [a + 8, 8, v]),
        ]
    );
    // The helper wrote RAM; the buffer (read through the entry) is untouched.
    let r = &h.m.ram[a as usize..];
    assert_eq!(
        [
            u64_at(r, 0, 1),
            u64_at(r, 2, 2),
            u64_at(r, 4, 4),
            u64_at(r, 8, 8)
        ],
        [v & 0xff, v & 0xffff, v & 0xffff_ffff, v]
    );
    assert_eq!(buf, buffer(1));
    assert_eq!(h.cpu.gpr[reg::RAX], u64_at(&buf, 0x28, 8));
    // An access crossing into the next page misses even with both pages writable.
    let mut two = buffer(2);
    map(&mut h.cpu, 0, NEAR, two.as_mut_ptr() as usize, true);
    map(
        &mut h.cpu,
        0,
        NEAR + 0x1000,
        two.as_mut_ptr() as usize + 0x1000,
        true,
    );
    h.m.calls.clear();
    h.cpu.gpr[reg::RCX] = NEAR + 0xff4;
    assert_eq!(h.enter(host), DONE);
    assert_eq!(
        mem_calls(&h.m),
        vec![
            (Helper::MemWrite, [NEAR + 0xffc, 8, v]),
            (Helper::MemRead, [NEAR + 0xffc, 8, 0]),
        ]
    );
    assert_eq!(u64_at(&two, 0xff8, 4), v & 0xffff_ffff);
    assert_eq!(h.cpu.gpr[reg::RAX], v);
}

#[test]
fn constant_addresses_are_checked_at_run_time() {
    let mut h = Harness::new();
    let code = asm(|a| {
        a.mov(rax, qword_ptr(0x5010))?;
        a.mov(qword_ptr(0x5020), rdx)?;
        end(a)
    });
    let host = compile(&mut h, &code, 0);
    let mut b1 = buffer(1);
    let mut b2 = vec![0u8; 4096];
    h.cpu.gpr[reg::RDX] = 0xabcd;
    for (i, b) in [&mut b1, &mut b2].into_iter().enumerate() {
        map(&mut h.cpu, 0, NEAR, b.as_mut_ptr() as usize, true);
        h.m.calls.clear();
        h.cpu.gpr[reg::RDX] += 1;
        assert_eq!(h.enter(host), DONE);
        assert_eq!(mem_calls(&h.m), vec![], "mapping {i}");
        assert_eq!(h.cpu.gpr[reg::RAX], u64_at(b, 0x10, 8));
        assert_eq!(u64_at(b, 0x20, 8), 0xabcd + 1 + i as u64);
    }
    h.cpu.tlb.flush();
    h.m.calls.clear();
    assert_eq!(h.enter(host), DONE);
    assert_eq!(
        mem_calls(&h.m),
        vec![
            (Helper::MemRead, [0x5010, 8, 0]),
            (Helper::MemWrite, [0x5020, 8, 0xabcd + 2]),
        ]
    );
}

#[test]
fn a_page_fault_leaves_with_the_state_of_the_instruction_start() {
    let mut h = Harness::new();
    let code = asm(|a| {
        a.mov(eax, 1)?;
        a.add(rdx, 5)?;
        a.push(rdx)?; // RSP is not mapped: #PF on the store
        a.mov(ebx, 7)?;
        end(a)
    });
    let host = compile(&mut h, &code, 0);
    let block = h.decode(PC, 64);
    let top = FAR + 0x800;
    h.cpu.gpr = [0x99; 16];
    h.cpu.gpr[reg::RSP] = top;
    h.cpu.rflags = rflags::FIXED;
    assert_eq!(h.enter(host), ExitReason::Exception as u64);
    assert_eq!(h.cpu.rip, block.insns[2].ip());
    assert_eq!(
        (h.cpu.gpr[reg::RAX], h.cpu.gpr[reg::RDX]),
        (1, 0x99 + 5),
        "instructions before the fault are done"
    );
    assert_eq!((h.cpu.gpr[reg::RSP], h.cpu.gpr[reg::RBX]), (top, 0x99));
    assert_eq!(h.cpu.full_rflags() & rflags::ARITH, 0, "the flags of `add`");
    assert_eq!(
        (h.cpu.exc_vector, h.cpu.exc_code, h.cpu.exc_addr),
        (14, 2, top - 8)
    );
    assert_eq!(h.cpu.icount, 2, "only the completed instructions count");
    // A read-only entry does not let the store through either.
    let buf = buffer(1);
    map(&mut h.cpu, 0, FAR, buf.as_ptr() as usize, false);
    h.cpu.gpr[reg::RDX] = 0x99;
    h.cpu.icount = 0;
    assert_eq!(h.enter(host), ExitReason::Exception as u64);
    assert_eq!((h.cpu.rip, h.cpu.gpr[reg::RSP]), (block.insns[2].ip(), top));
    assert_eq!(buf, buffer(1));
    // Writable: the block runs to the end.
    let mut buf = buffer(1);
    map(&mut h.cpu, 0, FAR, buf.as_mut_ptr() as usize, true);
    h.cpu.gpr[reg::RDX] = 0x99;
    h.m.calls.clear();
    assert_eq!(h.enter(host), DONE);
    assert_eq!(mem_calls(&h.m), vec![]);
    assert_eq!((h.cpu.gpr[reg::RSP], h.cpu.gpr[reg::RBX]), (top - 8, 7));
    assert_eq!(u64_at(&buf, 0x7f8, 8), 0x99 + 5);
}

#[test]
fn a_load_fault_keeps_the_destination() {
    let mut h = Harness::new();
    let code = asm(|a| {
        a.inc(rcx)?;
        a.mov(rbx, qword_ptr(rcx + 0xf))?;
        end(a)
    });
    let host = compile(&mut h, &code, 1);
    h.cpu.gpr[reg::RCX] = FAR;
    h.cpu.gpr[reg::RBX] = 0x77;
    assert_eq!(h.enter(host), ExitReason::Exception as u64);
    assert_eq!((h.cpu.gpr[reg::RCX], h.cpu.gpr[reg::RBX]), (FAR + 1, 0x77));
    assert_eq!(
        (h.cpu.exc_vector, h.cpu.exc_code, h.cpu.exc_addr),
        (14, 0, FAR + 0x10)
    );
    assert_eq!(mem_calls(&h.m), vec![(Helper::MemRead, [FAR + 0x10, 8, 0])]);
}

#[test]
fn the_model_names_the_set() {
    let code = asm(|a| {
        a.mov(rax, qword_ptr(rcx))?;
        end(a)
    });
    let buf = buffer(1);
    for set in [0, 1, 2] {
        let mut h = Harness::new();
        h.m.ram[NEAR as usize..NEAR as usize + 8].copy_from_slice(&[0xee; 8]);
        let host = compile(&mut h, &code, set);
        h.cpu.gpr[reg::RCX] = NEAR;
        for mapped in [0, 1] {
            h.cpu.tlb = Tlb::default();
            map(&mut h.cpu, mapped, NEAR, buf.as_ptr() as usize, true);
            h.m.calls.clear();
            assert_eq!(h.enter(host), DONE);
            let hit = mem_calls(&h.m).is_empty();
            assert_eq!(hit, set == mapped, "set {set}, entry in set {mapped}");
            let want = if hit {
                u64_at(&buf, 0, 8)
            } else {
                0xeeee_eeee_eeee_eeee
            };
            assert_eq!(h.cpu.gpr[reg::RAX], want);
        }
    }
    assert_eq!((Tlb::set_for(0), Tlb::set_for(3)), (0, 1));
}

/// Random blocks (memory operands at unaligned offsets near page boundaries, the stack, a
/// register holding an arbitrary address) with the TLB mapping some RAM pages identically,
/// read-write, read-only or not at all: the JIT and the interpreter agree, and some accesses
/// did hit.
#[test]
fn random_blocks_match_the_interpreter_through_the_tlb() {
    let mut rng = Rng(0x7eb);
    let regs64 = [rax, rcx, rdx, rbx, rsi, rdi, r8, r9, r10, r11, r12, r13];
    let regs32 = [
        eax, ecx, edx, ebx, esi, edi, r8d, r9d, r10d, r11d, r12d, r13d,
    ];
    let regs16 = [ax, cx, dx, bx, si, di, r8w, r9w, r10w, r11w, r12w, r13w];
    let (mut jit_calls, mut interp_calls) = (0, 0);
    for round in 0..150 {
        let n = 1 + rng.below(20) as usize;
        let picks: Vec<(u64, u64, u64)> = (0..n)
            .map(|_| (rng.below(12), rng.next(), rng.next()))
            .collect();
        let code = asm(|a| {
            for &(k, x, y) in &picks {
                let (r, s) = (regs64[(x % 12) as usize], regs64[(y % 12) as usize]);
                let (r32, s32) = (regs32[(x % 12) as usize], regs32[(y % 12) as usize]);
                let s16 = regs16[(y % 12) as usize];
                // Around the boundary between the data pages 0x3f000 and 0x40000.
                let disp = (y % 0x1000) as i32 - 0x800;
                match k {
                    0 => a.add(r, qword_ptr(r15 + disp))?,
                    1 => a.mov(qword_ptr(r15 + disp), r)?,
                    2 => a.sub(dword_ptr(r15 + disp), s32)?,
                    3 => a.movzx(r32, byte_ptr(r15 + disp))?,
                    4 => a.mov(word_ptr(r15 + disp), s16)?,
                    5 => a.push(r)?,
                    6 => a.pop(r)?,
                    7 => a.add(r, s)?,
                    8 => a.xor(r32, s32)?,
                    9 => a.mov(r32, dword_ptr(0x3_f800 + (x % 0x1000) as i32))?,
                    10 => a.inc(r)?,
                    // R14 holds an arbitrary value: usually a faulting access.
                    _ => a.xor(qword_ptr(r14 + disp), r)?,
                }
            }
            end(a)
        });
        let set = rng.below(2) as usize;
        let mut cpu = CpuState::default();
        for g in cpu.gpr.iter_mut() {
            *g = rng.next();
        }
        cpu.gpr[reg::RSP] = 0x8_0000 + rng.below(3) * 4 - 4;
        cpu.gpr[15] = 0x4_0000;
        if rng.below(4) == 0 {
            cpu.gpr[14] = 0x4_0000 + rng.below(0x100);
        }
        cpu.rflags = rflags::FIXED | (rng.next() & rflags::ARITH);
        // Per page: 0 unmapped, 1 read-only, 2+ read-write (identity, added to RAM's host
        // address once the machine exists).
        let pages: Vec<(u64, u64)> = [0x3e, 0x3f, 0x40, 0x41, 0x7f, 0x80]
            .into_iter()
            .map(|p| (p << 12, rng.below(4)))
            .collect();
        let (jit, interp, ram_same, calls) = differential_tlb(&code, &cpu, set, &pages);
        assert_eq!(jit, interp, "round {round}: {code:02x?}");
        assert!(ram_same, "round {round}: RAM differs");
        jit_calls += calls.0;
        interp_calls += calls.1;
    }
    assert!(
        jit_calls < interp_calls / 2,
        "too few hits: {jit_calls} helper calls against the interpreter's {interp_calls}"
    );
}

fn data(ram: &mut [u8]) {
    let mut r = Rng(77);
    for b in &mut ram[0x3_e000..0x4_2000] {
        *b = r.next() as u8;
    }
}

/// Run `code` at [`PC`] as one block through the JIT with the TLB model of `set` (the pages
/// `(virt, kind)` mapped identically onto RAM: kind 0 unmapped, 1 read-only, else
/// read-write) and through the interpreter. Returns both observations, whether RAM agrees,
/// and the memory helper calls of each.
fn differential_tlb(
    code: &[u8],
    cpu: &CpuState,
    set: usize,
    pages: &[(u64, u64)],
) -> (Observed, Observed, bool, (usize, usize)) {
    let mut h = Harness::new();
    data(&mut h.m.ram);
    h.mode = mode_of(set);
    h.load(PC, code);
    let mut block = h.decode(PC, 64);
    *h.cpu = cpu.clone();
    h.cpu.rip = PC;
    let ram = h.m.ram.as_ptr() as usize;
    for &(virt, kind) in pages {
        if kind != 0 {
            map(&mut h.cpu, set, virt, ram + virt as usize, kind >= 2);
        }
    }
    let mut env = TlbEnv { m: &mut h.m, set };
    let c = h
        .jit
        .translate(&block, mode_of(set), &mut env)
        .expect("translate");
    let host = h.code.install(&c.code);
    block.insns.truncate(c.guest_insns as usize);
    let jit_exit = ExitReason::from_u64(h.enter(host)).expect("exit reason");
    let jit = Observed::of(jit_exit, &h.cpu);

    let mut m = Machine::new(0);
    data(&mut m.ram);
    m.ram[PC as usize..PC as usize + code.len()].copy_from_slice(code);
    let mut icpu = cpu.clone();
    icpu.rip = PC;
    let n = block.insns.len() as u64;
    icpu.icount += n;
    let (exit, completed) = interp_block(&mut m, &mut icpu, &block, mode_of(set));
    if exit != ExitReason::Jump {
        icpu.icount -= n - completed;
    }
    let interp = Observed::of(exit, &icpu);
    let calls = (mem_calls(&h.m).len(), mem_calls(&m).len());
    (jit, interp, m.ram == h.m.ram, calls)
}

/// The code of one TLB load and store (`--ignored --nocapture` prints it).
#[test]
#[ignore = "report: run with --ignored --nocapture"]
fn tlb_access_code_report() {
    let mut h = Harness::new();
    let code = asm(|a| {
        a.mov(rax, qword_ptr(rcx))?;
        a.mov(qword_ptr(rdx), rax)?;
        end(a)
    });
    h.mode = mode_of(0);
    h.load(PC, &code);
    let block = h.decode(PC, 64);
    let mut env = TlbEnv {
        m: &mut h.m,
        set: 0,
    };
    let c = h
        .jit
        .translate(&block, mode_of(0), &mut env)
        .expect("translate");
    println!("{}\n{}", h.jit.last_clif(), disassemble(&c.code, 0));
}

/// The x87 store probe: a write-tag hit needs no helper; a read-only entry, a miss or a
/// page-crossing probe calls it (and outside RAM its #PF leaves the block).
#[test]
fn store_probes_hit_inline_through_the_write_tag() {
    use crate::emit::{Emitter, Exit, ValueOps};
    use crate::ir::Ty;
    use crate::state::off_gpr;
    let mut h = Harness::new();
    h.mode = mode_of(0);
    let shape = crate::jit::Shape {
        pc: PC,
        preload: 0,
        reload: 0,
        trap_hypercalls: false,
        count_tlb_hits: false,
        carry: None,
        carry_flags: false,
        srclocs: false,
        mode_key: h.mode.key(),
    };
    let mut env = TlbEnv {
        m: &mut h.m,
        set: 0,
    };
    h.jit
        .build_block(shape, &[], &mut env, &mut Default::default(), |mut e| {
            let a = e.load_state(Ty::I64, off_gpr(reg::RCX));
            let n = e.iconst(Ty::I64, 10);
            let z = e.iconst(Ty::I64, 0);
            e.call_helper(Helper::ProbeWrite, [a, n, z]);
            e.exit(Exit::Return(ExitReason::Stop));
            (e, false)
        })
        .expect("build");
    let host = h.code.install(&h.jit.compile().expect("compile"));
    let buf = buffer(2);
    let probe = |h: &mut Harness, at: u64| {
        h.m.calls.clear();
        h.cpu.gpr[reg::RCX] = at;
        let r = h.enter(host);
        let n =
            h.m.calls
                .iter()
                .filter(|c| c.0 == Helper::ProbeWrite)
                .count();
        (r, n)
    };
    let stop = ExitReason::Stop as u64;
    let fault = ExitReason::Exception as u64;
    map(&mut h.cpu, 0, FAR, buf.as_ptr() as usize, true);
    assert_eq!(probe(&mut h, FAR + 0x10), (stop, 0));
    assert_eq!(probe(&mut h, FAR + 0xff6), (stop, 0));
    // Crossing into the next (unmapped) page, and a read-only entry.
    assert_eq!(probe(&mut h, FAR + 0xff8), (fault, 1));
    map(&mut h.cpu, 0, FAR, buf.as_ptr() as usize, false);
    assert_eq!(probe(&mut h, FAR + 0x10), (fault, 1));
    // A miss inside RAM: the helper finds nothing to stop for.
    assert_eq!(probe(&mut h, NEAR), (stop, 1));
}
