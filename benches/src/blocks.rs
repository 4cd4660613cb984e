//! Realistic guest blocks for the translation benchmark, taken from the hot loops of real
//! guest images, and a [`JitEnv`] that lets the JIT run outside the runtime.
//!
//! A *hot loop* here is a block that branches back to its own first instruction: the body of
//! an inner loop, which is what a DBT translates once and runs millions of times. Blocks are
//! found by symbol name and size rather than by address, so they survive recompilation.

use std::fmt;

use runtime::helpers::helper_addr;
use translator::decode::{decode_block, DecodedBlock, MAX_BLOCK_INSNS, PAGE_SIZE};
use translator::jit::{JitEnv, MemoryModel};
use translator::{Helper, Mode};

use crate::elf::{Function, Image};

/// Bytes the decoder may read past the end of a block's page (one maximal instruction).
const MAX_INSN_BYTES: u64 = 15;

/// A guest block chosen for benchmarking: where it came from and the bytes to decode it from.
#[derive(Clone, Debug)]
pub struct HotBlock {
    /// The guest program (`testsuite::guests` name).
    pub guest: &'static str,
    /// The function the block lies in.
    pub function: String,
    /// Guest-virtual address of its first instruction.
    pub pc: u64,
    /// Guest memory from `pc` to the end of its page plus 15 bytes (what the runtime hands
    /// the decoder).
    pub bytes: Vec<u8>,
    /// Instructions in the block.
    pub insns: usize,
}

impl HotBlock {
    /// Decodes the block (what the DBT does before translating it).
    pub fn decode(&self) -> DecodedBlock {
        decode_block(&self.bytes, self.pc, Mode::LONG64_CPL0, MAX_BLOCK_INSNS)
    }
}

impl fmt::Display for HotBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}@{:#x} ({} insns)",
            self.guest, self.function, self.pc, self.insns
        )
    }
}

/// The guest bytes at `pc` as the runtime would fetch them: to the end of the page, plus the
/// first bytes of the next page if the image has them.
fn fetch(image: &Image<'_>, pc: u64) -> Option<Vec<u8>> {
    let from_image = image.bytes_at(pc)?;
    let page_end = (pc & !(PAGE_SIZE - 1)) + PAGE_SIZE;
    let want = usize::try_from(page_end - pc + MAX_INSN_BYTES).ok()?;
    Some(from_image[..want.min(from_image.len())].to_vec())
}

/// Every block of `f` that ends in a branch back to its own start (inner-loop bodies), in
/// address order.
pub fn self_loops(image: &Image<'_>, f: &Function) -> Vec<DecodedBlock> {
    let end = f.addr + f.size;
    // Decode the function linearly, block by block, collecting branch targets inside it.
    let mut targets = Vec::new();
    let mut pc = f.addr;
    while pc < end {
        let Some(bytes) = fetch(image, pc) else { break };
        let block = decode_block(&bytes, pc, Mode::LONG64_CPL0, MAX_BLOCK_INSNS);
        if block.insns.is_empty() {
            break;
        }
        targets.extend(
            block
                .insns
                .iter()
                .map(|i| i.near_branch_target())
                .filter(|t| (f.addr..end).contains(t)),
        );
        pc = block.next_pc();
    }
    targets.sort_unstable();
    targets.dedup();
    targets
        .into_iter()
        .filter_map(|t| {
            let block = decode_block(&fetch(image, t)?, t, Mode::LONG64_CPL0, MAX_BLOCK_INSNS);
            let last = block.insns.last()?;
            (last.near_branch_target() == t).then_some(block)
        })
        .collect()
}

/// The self-loop block of `function` in `guest` (built at `SCALE=1`) whose instruction count
/// is closest to `target_insns` (the first such block on a tie).
pub fn hot_block(
    guest: &'static str,
    function: &str,
    target_insns: usize,
) -> Result<HotBlock, String> {
    let g = testsuite::guests::by_name(guest).ok_or_else(|| format!("no guest {guest}"))?;
    let path = testsuite::guests::build_guest(g, 1).map_err(|e| e.to_string())?;
    let file = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let image = Image::parse(&file).ok_or_else(|| format!("{}: not ELF64", path.display()))?;
    let f = image
        .function(function)
        .ok_or_else(|| format!("{guest}: no function {function}"))?;
    let best = self_loops(&image, &f)
        .into_iter()
        .min_by_key(|b| b.insns.len().abs_diff(target_insns))
        .ok_or_else(|| format!("{guest}:{function}: no self-loop block"))?;
    Ok(HotBlock {
        guest,
        function: f.name,
        pc: best.pc,
        bytes: fetch(&image, best.pc).expect("decoded from these bytes"),
        insns: best.insns.len(),
    })
}

/// The ~25-instruction block of the benchmark: the SHA-256 message-schedule loop
/// (`sha256:compress`; rotates, shifts, xors, adds, a load and a store).
pub fn long_block() -> Result<HotBlock, String> {
    hot_block("sha256", "compress", 25)
}

/// The short block of the benchmark: the sieve's marking loop (`sieve:main`; `mov, add,
/// movb, cmp, jae`).
pub fn short_block() -> Result<HotBlock, String> {
    hot_block("sieve", "main", 5)
}

/// Link slots a block may ask for, as in the runtime.
const SLOTS: usize = 4;

/// A [`JitEnv`] for translating outside a VM: the runtime's real helper addresses, a flat
/// memory model of a 64 MiB guest, and link slots in a private array. Code translated with it
/// is only measured, never run (the RAM address is not mapped).
pub struct BenchEnv {
    slots: Box<[u64; SLOTS]>,
    used: usize,
    code_bitmap: Vec<u8>,
}

impl BenchEnv {
    /// Guest RAM size the memory model describes.
    pub const RAM_BYTES: u64 = 64 << 20;
    /// A plausible host address for guest RAM (the JIT bakes it into the code as an
    /// immediate; it is never dereferenced).
    const RAM_BASE: usize = 0x7f00_0000_0000;

    /// A fresh environment.
    pub fn new() -> BenchEnv {
        BenchEnv {
            slots: Box::new([0; SLOTS]),
            used: 0,
            code_bitmap: vec![0; (Self::RAM_BYTES / PAGE_SIZE) as usize],
        }
    }

    /// Returns every link slot, ready for the next translation.
    pub fn reset(&mut self) {
        self.used = 0;
    }
}

impl Default for BenchEnv {
    fn default() -> Self {
        BenchEnv::new()
    }
}

impl JitEnv for BenchEnv {
    fn helper_addr(&self, h: Helper) -> usize {
        helper_addr(h)
    }

    fn memory(&self) -> MemoryModel {
        MemoryModel::Flat {
            ram_base: Self::RAM_BASE,
            ram_size: Self::RAM_BYTES,
            code_bitmap: self.code_bitmap.as_ptr() as usize,
            code_bitmap_len: self.code_bitmap.len() as u64,
        }
    }

    fn link_slot(&mut self, _target_pc: u64) -> Option<usize> {
        let slot = self.slots.get(self.used)? as *const u64 as usize;
        self.used += 1;
        Some(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use translator::jit::Jit;

    /// The benchmark's blocks exist in today's guest builds, are what their names say, and
    /// translate in the stand-in environment.
    #[test]
    fn the_benchmark_blocks_are_found_and_translate() {
        let (short, long) = (short_block().unwrap(), long_block().unwrap());
        assert!((3..=8).contains(&short.insns), "{short}");
        assert!((18..=32).contains(&long.insns), "{long}");
        let mut jit = Jit::new().unwrap();
        for b in [short, long] {
            let decoded = b.decode();
            assert_eq!(decoded.insns.len(), b.insns, "{b}");
            let last = decoded.insns.last().unwrap();
            assert_eq!(last.near_branch_target(), b.pc, "{b} is a self-loop");
            let mut env = BenchEnv::new();
            let c = jit
                .translate(&decoded, Mode::LONG64_CPL0, &mut env)
                .unwrap();
            assert_eq!(c.guest_insns as usize, b.insns, "{b}");
            assert!(!c.code.is_empty());
        }
    }
}
