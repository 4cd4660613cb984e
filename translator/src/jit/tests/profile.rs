//! Code-size profile: which guest instructions (by mnemonic and operand form) make the IR
//! instructions and host bytes of translated code. Every block of a guest ELF's executable
//! segments (a linear sweep: a block starts where the previous one ended) is translated as
//! the runtime's quick or optimized tier would, with the IR tagged by guest instruction
//! (`Shape::srclocs`), and Cranelift's source-location ranges attribute the host bytes.
//!
//! ```text
//! POPEK_PROFILE_ELF=$CARGO_TARGET_DIR/guests/flags-s100.elf [POPEK_PROFILE_TIER=optimized] \
//!     cargo test --release -p translator --lib profile_code_size -- --ignored --nocapture
//! ```
//! `(head)` is the function's entry, budget check and frame (prologue, epilogue, spills
//! outside any instruction); `(between)` is what is emitted between or after instructions:
//! the fault tails and exits emitted when translation ends.

use std::collections::HashMap;

use cranelift_codegen::control::ControlPlane;
use iced_x86::{Instruction, OpKind};

use super::FakeJumpCache;
use crate::decode::{decode_block, MAX_BLOCK_INSNS};
use crate::helpers::Helper;
use crate::jit::{Jit, JitConfig, JitEnv, JumpCacheLayout, MemoryModel, OptLevel, Regalloc};
use crate::Mode;

/// The runtime's view of a flat-memory guest, for translation only (nothing runs).
struct ProfileEnv {
    ram: Vec<u8>,
    bitmap: Vec<u8>,
    slots: Box<[u64; 4]>,
    used: usize,
    counter: Box<u64>,
    jump: FakeJumpCache,
    quick: bool,
}

impl JitEnv for ProfileEnv {
    fn helper_addr(&self, h: Helper) -> usize {
        0x7100_0000 + 16 * Helper::ALL.iter().position(|&x| x == h).unwrap_or(0)
    }
    fn memory(&self) -> MemoryModel {
        MemoryModel::Flat {
            ram_base: self.ram.as_ptr() as usize,
            ram_size: self.ram.len() as u64,
            code_bitmap: self.bitmap.as_ptr() as usize,
            code_bitmap_len: self.bitmap.len() as u64,
        }
    }
    fn link_slot(&mut self, _target_pc: u64) -> Option<usize> {
        let i = self.used;
        self.used += 1;
        self.slots.get(i).map(|s| s as *const u64 as usize)
    }
    fn jump_cache(&self) -> Option<JumpCacheLayout> {
        Some(self.jump.layout())
    }
    fn preserving_trampoline(&self) -> Option<usize> {
        Some(0x7000_0000)
    }
    fn host_stub(&mut self, stub: &crate::hostexec::HostStub) -> Option<usize> {
        Some(0x7200_0000 + stub.code.len())
    }
    fn hot_counter(&mut self) -> Option<usize> {
        self.quick
            .then_some(&mut *self.counter as *mut u64 as usize)
    }
}

/// The executable `PT_LOAD` segments of an ELF64 little-endian file: (address, bytes).
fn exec_segments(elf: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let u16_at = |o: usize| u16::from_le_bytes(elf[o..o + 2].try_into().expect("2 bytes"));
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().expect("4 bytes"));
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().expect("8 bytes"));
    assert_eq!(&elf[..5], b"\x7fELF\x02", "an ELF64 file");
    let (phoff, phentsize, phnum) = (u64_at(0x20) as usize, u16_at(0x36), u16_at(0x38));
    (0..usize::from(phnum))
        .map(|i| phoff + i * usize::from(phentsize))
        .filter(|&ph| u32_at(ph) == 1 && u32_at(ph + 4) & 1 != 0)
        .map(|ph| {
            let (off, vaddr, filesz) = (
                u64_at(ph + 8) as usize,
                u64_at(ph + 16),
                u64_at(ph + 32) as usize,
            );
            (vaddr, elf[off..off + filesz].to_vec())
        })
        .collect()
}

/// `mnemonic r64,m32,i`: what an instruction is, for grouping.
fn form(insn: &Instruction) -> String {
    let ops: Vec<String> = (0..insn.op_count())
        .map(|i| match insn.op_kind(i) {
            OpKind::Register => format!("r{}", insn.op_register(i).size() * 8),
            OpKind::Memory => format!("m{}", insn.memory_size().size() * 8),
            OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64 => "rel".into(),
            k if format!("{k:?}").starts_with("Immediate") => "i".into(),
            _ => "x".into(),
        })
        .collect();
    let rep = if insn.has_rep_prefix() || insn.has_repne_prefix() {
        "rep "
    } else {
        ""
    };
    format!(
        "{rep}{} {}",
        format!("{:?}", insn.mnemonic()).to_lowercase(),
        ops.join(",")
    )
}

#[derive(Default, Clone, Copy)]
struct Cost {
    count: u64,
    ir: u64,
    bytes: u64,
}

#[test]
#[ignore = "a report: set POPEK_PROFILE_ELF to a guest ELF"]
fn profile_code_size() {
    let Ok(path) = std::env::var("POPEK_PROFILE_ELF") else {
        println!("set POPEK_PROFILE_ELF to a guest ELF");
        return;
    };
    let quick = std::env::var("POPEK_PROFILE_TIER").map_or(true, |t| t != "optimized");
    let elf = std::fs::read(&path).expect("read the ELF");
    let segments = exec_segments(&elf);
    let top = segments
        .iter()
        .map(|(a, b)| a + b.len() as u64)
        .max()
        .expect("an executable segment");
    let ram_size = (top + 0x10_0000) & !0xFFFF;
    let mut env = ProfileEnv {
        ram: vec![0; ram_size as usize],
        bitmap: vec![0; (ram_size >> 12) as usize],
        slots: Box::new([0; 4]),
        used: 0,
        counter: Box::new(0),
        jump: FakeJumpCache::new(4096, 4, [0, 1, 2]),
        quick,
    };
    for (a, b) in &segments {
        env.ram[*a as usize..*a as usize + b.len()].copy_from_slice(b);
    }
    let config = if quick {
        JitConfig {
            opt_level: OptLevel::None,
            regalloc: Regalloc::SinglePass,
            ..JitConfig::default()
        }
    } else {
        JitConfig::default()
    };
    let mut jit = Jit::with_config(config).expect("host JIT");
    jit.srclocs = true;
    let mode = Mode::LONG64_CPL0;
    let mut by_form: HashMap<String, Cost> = HashMap::new();
    let (mut total, mut blocks, mut failed) = (Cost::default(), 0, 0);
    for (start, bytes) in &segments {
        let end = start + bytes.len() as u64;
        let mut pc = *start;
        while pc < end {
            let block = decode_block(
                &env.ram[pc as usize..(pc as usize + 4096 + 15).min(env.ram.len())],
                pc,
                mode,
                MAX_BLOCK_INSNS,
            );
            let next = block.insns.last().map_or(pc + 1, |i| i.next_ip());
            pc = next.max(pc + 1);
            if block.insns.is_empty() {
                continue;
            }
            env.used = 0;
            if jit
                .translate_ir(std::slice::from_ref(&block), mode, &mut env)
                .is_err()
            {
                failed += 1;
                continue;
            }
            let func = &jit.ctx.func;
            let mut ir: HashMap<u32, u64> = HashMap::new();
            for b in func.layout.blocks() {
                for i in func.layout.block_insts(b) {
                    *ir.entry(func.srcloc(i).bits()).or_default() += 1;
                }
            }
            let Ok(code) = jit.ctx.compile(&*jit.isa, &mut ControlPlane::default()) else {
                failed += 1;
                continue;
            };
            let mut host: HashMap<u32, u64> = HashMap::new();
            let mut tagged = 0;
            for s in code.buffer.get_srclocs_sorted() {
                *host.entry(s.loc.bits()).or_default() += u64::from(s.end - s.start);
                tagged += u64::from(s.end - s.start);
            }
            let size = code.code_buffer().len() as u64;
            *host.entry(u32::MAX).or_default() += size - tagged;
            blocks += 1;
            total.count += block.insns.len() as u64;
            total.ir += ir.values().sum::<u64>();
            total.bytes += size;
            let keys: std::collections::HashSet<u32> =
                ir.keys().chain(host.keys()).copied().collect();
            for k in keys {
                let name = match k {
                    u32::MAX => "(head)".to_string(),
                    crate::jit::SRCLOC_BETWEEN => "(between)".to_string(),
                    k => form(&block.insns[(k - 1) as usize]),
                };
                let c = by_form.entry(name).or_default();
                c.ir += ir.get(&k).copied().unwrap_or(0);
                c.bytes += host.get(&k).copied().unwrap_or(0);
            }
            for insn in &block.insns {
                by_form.entry(form(insn)).or_default().count += 1;
            }
        }
    }
    let n = total.count.max(1) as f64;
    println!(
        "{path} ({} tier): {blocks} blocks ({failed} failed), {} guest insns, {} IR insts \
         ({:.1}/insn), {} host bytes ({:.1}/insn)",
        if quick { "quick" } else { "optimized" },
        total.count,
        total.ir,
        total.ir as f64 / n,
        total.bytes,
        total.bytes as f64 / n
    );
    let mut rows: Vec<(String, Cost)> = by_form.into_iter().collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1.bytes));
    println!(
        "{:<28} {:>6} {:>8} {:>6} {:>6} {:>9} {:>6} {:>6}",
        "form", "count", "IR", "IR/i", "IR%", "bytes", "B/i", "B%"
    );
    for (name, c) in rows.iter().take(40) {
        let per = c.count.max(1) as f64;
        println!(
            "{name:<28} {:>6} {:>8} {:>6.1} {:>6.1} {:>9} {:>6.1} {:>6.1}",
            c.count,
            c.ir,
            c.ir as f64 / per,
            100.0 * c.ir as f64 / total.ir.max(1) as f64,
            c.bytes,
            c.bytes as f64 / per,
            100.0 * c.bytes as f64 / total.bytes.max(1) as f64
        );
    }
}
