//! The interpreter engine: decode (cached per block) and [`translator::interp::run_block`],
//! which evaluates each instruction's semantics in turn — no translation.
//!
//! Invariants:
//! - The decode cache holds decoded blocks keyed by the guest-physical address of their first
//!   instruction and mode; each entry is listed under every page its bytes touch, and a store
//!   to such a page drops the page's entries before the store completes
//!   ([`crate::machine::Machine::invalidate_code`]), and ends the block being interpreted
//!   after the storing instruction, so executed instructions always match guest memory.
//! - `icount` counts retired instructions exactly: one per instruction that completed
//!   (including HLT), none for one that faulted or stopped the VM.

use std::sync::Arc;

use hashbrown::HashMap;
use iced_x86::Instruction;
use translator::decode::{decode_block, MAX_BLOCK_INSNS, PAGE_SIZE};
use translator::interp::{run_block, InterpEnv};
use translator::{CpuState, Exception, ExitReason, Helper, Mode};

use super::exit::{handle_exit, ExitAction};
use super::vcpu;
use super::RunOutcome;
use crate::helpers::run_helper;
use crate::machine::{not_present, Executing, Machine};
use crate::memory::Access;

impl InterpEnv for Machine {
    fn helper(&mut self, cpu: &mut CpuState, h: Helper, args: [u64; 3]) -> u64 {
        run_helper(self, cpu, h, args)
    }

    fn take_code_modified(&mut self) -> bool {
        std::mem::take(&mut self.decoded_dropped)
    }

    fn run_stub(
        &mut self,
        cpu: &mut CpuState,
        stub: &translator::hostexec::HostStub,
        how: translator::hostexec::StubCall,
    ) {
        match self.stubs.addr(&stub.code) {
            Some(addr) => crate::fpu::run_stub(self, cpu, addr, how),
            None => {
                self.stop = Some(crate::machine::StopRequest::Internal(
                    "the host-stub cache is full".into(),
                ));
                cpu.status = ExitReason::Stop as u64;
            }
        }
    }
}

/// Key of a decoded block: guest-physical address of its first byte and mode key.
type Key = (u64, u32);

/// Counters of the decode cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Blocks found decoded.
    pub hits: u64,
    /// Blocks decoded because they were missing.
    pub misses: u64,
    /// Pages whose instructions were dropped because they were written.
    pub invalidated_pages: u64,
}

/// Decoded blocks of the interpreter. See the module invariants.
#[derive(Default)]
pub struct DecodeCache {
    /// Each block with the guest-physical page its last instruction runs onto, if any.
    blocks: HashMap<Key, (Arc<[Instruction]>, Option<u64>)>,
    by_page: HashMap<u64, Vec<Key>>,
    /// One byte per guest-physical page (grown on demand): nonzero if `by_page` has it.
    marks: Vec<u8>,
    stats: DecodeStats,
}

impl DecodeCache {
    /// The block decoded at `phys` in mode `mode` for guest-virtual `vpc`, and the physical
    /// page its last instruction runs onto (if any), which the caller must check.
    fn get(&mut self, phys: u64, mode: u32, vpc: u64) -> Option<(Arc<[Instruction]>, Option<u64>)> {
        let block = self
            .blocks
            .get(&(phys, mode))
            .filter(|b| b.0.first().is_some_and(|i| i.ip() == vpc))
            .cloned();
        if block.is_some() {
            self.stats.hits += 1;
        }
        block
    }

    /// Caches `block`, whose bytes lie on the pages of `phys` and, if it crosses a page,
    /// `next_page`.
    fn insert(&mut self, phys: u64, mode: u32, block: Arc<[Instruction]>, next_page: Option<u64>) {
        let key = (phys, mode);
        self.blocks.insert(key, (block, next_page));
        for page in std::iter::once(phys / PAGE_SIZE).chain(next_page.map(|p| p / PAGE_SIZE)) {
            self.by_page.entry(page).or_default().push(key);
            let i = page as usize;
            if i >= self.marks.len() {
                self.marks.resize(i + 1, 0);
            }
            self.marks[i] = 1;
        }
    }

    /// Whether any cached instruction touches the page of `phys`.
    pub fn page_has_insns(&self, phys: u64) -> bool {
        usize::try_from(phys / PAGE_SIZE)
            .ok()
            .and_then(|i| self.marks.get(i))
            .is_some_and(|&m| m != 0)
    }

    /// Drops every block on the pages of guest-physical `[start, end)`; true if any was.
    pub fn invalidate(&mut self, start: u64, end: u64) -> bool {
        let mut dropped = false;
        if end <= start || self.by_page.is_empty() {
            return dropped;
        }
        let (first, last) = (start / PAGE_SIZE, (end - 1) / PAGE_SIZE);
        let last = last.min(self.marks.len() as u64);
        for page in first..=last {
            if !self.page_has_insns(page * PAGE_SIZE) {
                continue;
            }
            self.marks[page as usize] = 0;
            for key in self.by_page.remove(&page).unwrap_or_default() {
                dropped |= self.blocks.remove(&key).is_some();
            }
            self.stats.invalidated_pages += 1;
        }
        dropped
    }

    /// Drops everything.
    pub fn clear(&mut self) {
        self.blocks.clear();
        self.by_page.clear();
        self.marks.clear();
    }

    /// The counters.
    pub fn stats(&self) -> DecodeStats {
        self.stats
    }

    /// Marks `[start, end)` as holding a (dummy) instruction, for tests of invalidation.
    #[cfg(test)]
    pub fn mark_for_test(&mut self, start: u64, end: u64) {
        let next = (end / PAGE_SIZE != start / PAGE_SIZE).then_some(end);
        self.insert(start, 0, Arc::from([Instruction::default()]), next);
    }
}

/// Decodes the block at guest-virtual `vpc` (only its first instruction unless `cache`);
/// with `cache`, the block is cached.
fn decode_at(
    m: &mut Machine,
    cpu: &CpuState,
    vpc: u64,
    mode: Mode,
    cache: bool,
) -> Result<Arc<[Instruction]>, Exception> {
    let f = m.fetch_code(cpu, vpc)?;
    let max = if cache { MAX_BLOCK_INSNS } else { 1 };
    let block = decode_block(&f.bytes, vpc, mode, max);
    if block.insns.is_empty() {
        // The first instruction runs past readable memory: its fetch faults there.
        return Err(not_present(
            vpc.wrapping_add(f.bytes.len() as u64),
            Access::Fetch,
        ));
    }
    let crosses = block.byte_len() > f.first_len as u64;
    if let (true, Some(next)) = (crosses, f.next_phys) {
        // The last instruction runs onto the next page: now it is fetched (A bits).
        m.next_code_page_is(cpu, vpc, next);
    }
    let insns: Arc<[Instruction]> = block.insns.into();
    if cache {
        m.decoded.stats.misses += 1;
        let next = if crosses { f.next_phys } else { None };
        m.decoded.insert(f.phys, mode.key(), insns.clone(), next);
    }
    Ok(insns)
}

/// The block at guest-virtual `vpc`, from the decode cache or freshly decoded.
fn fetch_block(
    m: &mut Machine,
    cpu: &CpuState,
    vpc: u64,
    mode: Mode,
) -> Result<Arc<[Instruction]>, Exception> {
    let phys = m.translate_code(cpu, vpc)?;
    match m.decoded.get(phys.0, mode.key(), vpc) {
        Some((block, None)) => Ok(block),
        // Decoded from the next page's old mapping if that page moved since.
        Some((block, Some(next))) if m.next_code_page_is(cpu, vpc, next) => Ok(block),
        _ => decode_at(m, cpu, vpc, mode, true),
    }
}

/// Interprets `insns`; `None` to continue, or how the run ends.
fn execute(
    m: &mut Machine,
    cpu: &mut CpuState,
    insns: &[Instruction],
    mode: Mode,
) -> Option<RunOutcome> {
    m.decoded_dropped = false;
    let r = run_block(cpu, m, insns, mode);
    cpu.icount += r.retired;
    if r.exit == ExitReason::Jump {
        return None;
    }
    match handle_exit(m, cpu, r.exit as u64) {
        // The interpreter performs stores to code itself, so SingleStep cannot come back.
        ExitAction::Continue { .. } | ExitAction::SingleStep => None,
        ExitAction::Stop(outcome) => Some(outcome),
    }
}

/// A failed instruction fetch at `cpu.rip`: delivered to the guest; `Some` if that stops
/// the run.
fn fetch_fault(m: &mut Machine, cpu: &mut CpuState, exc: Exception) -> Option<RunOutcome> {
    vcpu::raise(m, cpu, exc).err()
}

/// Runs the guest with the interpreter until something stops it.
pub fn run(m: &mut Machine, cpu: &mut CpuState) -> RunOutcome {
    vcpu::with_slices(m, cpu, run_slices)
}

fn run_slices(m: &mut Machine, cpu: &mut CpuState) -> RunOutcome {
    m.executing = Executing::Interp;
    vcpu::open_slice(m, cpu);
    if let Err(outcome) = vcpu::service(m, cpu) {
        return outcome;
    }
    loop {
        if cpu.icount >= cpu.icount_limit || m.halted {
            if cpu.icount >= m.insn_limit {
                return RunOutcome::InstructionLimit;
            }
            if let Err(outcome) = vcpu::service(m, cpu) {
                return outcome;
            }
            if let Some(stop) = m.stop.take() {
                return super::exit::stop_outcome(stop);
            }
        }
        if cpu.rflags & translator::state::rflags::TF != 0 {
            if let Err(outcome) = vcpu::single_step_trap(m, cpu) {
                return outcome;
            }
            continue;
        }
        let mode = crate::system::mode::mode(cpu);
        let block = match fetch_block(m, cpu, cpu.rip, mode) {
            Ok(block) => block,
            Err(exc) => match fetch_fault(m, cpu, exc) {
                Some(outcome) => return outcome,
                None => continue,
            },
        };
        // Never run past the instruction limit: the count must stop exactly there.
        let room = usize::try_from(cpu.icount_limit - cpu.icount).unwrap_or(usize::MAX);
        let n = block.len().min(room);
        if let Some(outcome) = execute(m, cpu, &block[..n], mode) {
            return outcome;
        }
    }
}

/// Executes the single instruction at `cpu.rip` with the interpreter, without caching its
/// decoding (the DBT engine's way through a store to translated code). `None` to continue.
pub fn single_step(m: &mut Machine, cpu: &mut CpuState) -> Option<RunOutcome> {
    m.executing = Executing::Interp;
    let mode = crate::system::mode::mode(cpu);
    let insns = match decode_at(m, cpu, cpu.rip, mode, false) {
        Ok(insns) => insns,
        Err(exc) => return fetch_fault(m, cpu, exc),
    };
    execute(m, cpu, &insns[..1], mode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::SerialSink;
    use crate::memory::{GuestPhys, MIN_RAM};

    fn machine_with(code: &[u8], at: u64) -> (Machine, CpuState) {
        let mut m = Machine::new(MIN_RAM, SerialSink::Capture).unwrap();
        m.ram.write(GuestPhys(at), code).unwrap();
        let mut cpu = CpuState {
            rip: at,
            ..Default::default()
        };
        crate::system::mode::reset_long_flat64(&mut cpu);
        (m, cpu)
    }

    #[test]
    fn decode_cache_hits_and_is_invalidated_by_stores() {
        // mov eax, 1 ; mov ebx, 2 ; jmp to self-2 ...
        let (mut m, _) = machine_with(&[0xB8, 1, 0, 0, 0, 0xBB, 2, 0, 0, 0], 0x1000);
        let mode = Mode::LONG64_CPL0;
        let i = fetch_block(&mut m, &CpuState::default(), 0x1000, mode).unwrap()[0];
        assert_eq!(i.len(), 5);
        assert_eq!(m.decoded.stats().misses, 1);
        assert_eq!(
            fetch_block(&mut m, &CpuState::default(), 0x1000, mode).unwrap()[1].len(),
            5
        );
        assert_eq!(m.decoded.stats().hits, 1, "the block was decoded once");
        assert!(m.decoded.page_has_insns(0x1FFF));
        // A guest store to the page drops it.
        m.write_virt(0x1006, 1, 7).unwrap();
        assert!(!m.decoded.page_has_insns(0x1000));
        let i = fetch_block(&mut m, &CpuState::default(), 0x1005, mode).unwrap()[0];
        assert_eq!(i.immediate32(), 7);
        assert_eq!(m.decoded.stats().misses, 2);
    }

    #[test]
    fn instructions_crossing_a_page_are_listed_on_both() {
        // nop ... then a 5-byte mov straddling 0x2000.
        let (mut m, _) = machine_with(&[0xB8, 1, 0, 0, 0], 0x1FFE);
        fetch_block(&mut m, &CpuState::default(), 0x1FFE, Mode::LONG64_CPL0).unwrap();
        assert!(m.decoded.page_has_insns(0x2000));
        m.write_virt(0x2001, 1, 9).unwrap();
        let key = Mode::LONG64_CPL0.key();
        assert!(
            m.decoded.get(0x1FFE, key, 0x1FFE).is_none(),
            "dropped with the second page"
        );
        assert_eq!(
            fetch_block(&mut m, &CpuState::default(), 0x1FFE, Mode::LONG64_CPL0).unwrap()[0]
                .immediate32(),
            0x0009_0001
        );
    }

    #[test]
    fn fetch_past_the_end_of_ram_faults() {
        let mut m = Machine::new(MIN_RAM, SerialSink::Capture).unwrap();
        let mode = Mode::LONG64_CPL0;
        // A REX prefix in the very last byte: the instruction runs off the end.
        m.ram.write(GuestPhys(MIN_RAM - 1), &[0x48]).unwrap();
        assert_eq!(
            fetch_block(&mut m, &CpuState::default(), MIN_RAM - 1, mode).unwrap_err(),
            Exception::PageFault {
                addr: MIN_RAM,
                code: 0x10
            }
        );
        let mut cpu = CpuState {
            rip: MIN_RAM,
            ..Default::default()
        };
        assert_eq!(
            run(&mut m, &mut cpu),
            RunOutcome::Exception {
                exc: Exception::PageFault {
                    addr: MIN_RAM,
                    code: 0x10
                },
                rip: MIN_RAM
            }
        );
    }

    #[test]
    fn runs_until_the_instruction_limit() {
        // jz $ (ZF=0 at reset: falls through) repeated, then loops back via jnz.
        // 0x1000: jnz 0x1000 -> loops forever with ZF clear.
        let (mut m, mut cpu) = machine_with(&[0x75, 0xFE], 0x1000);
        cpu.icount_limit = 1000;
        assert_eq!(run(&mut m, &mut cpu), RunOutcome::InstructionLimit);
        assert_eq!(cpu.icount, 1000);
        assert_eq!(cpu.rip, 0x1000);
    }

    #[test]
    fn invalid_opcode_is_a_guest_exception() {
        // push es is invalid in 64-bit mode.
        let (mut m, mut cpu) = machine_with(&[0x06], 0x1000);
        assert_eq!(
            run(&mut m, &mut cpu),
            RunOutcome::Exception {
                exc: Exception::InvalidOpcode,
                rip: 0x1000
            }
        );
        assert_eq!(cpu.icount, 0);
    }
}
