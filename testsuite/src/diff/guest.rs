//! The guest side: runs a case in a popek [`Vm`] with one engine.
//!
//! One VM per engine is reused for every case. Its code pages are all `hlt` except the
//! instruction under test, so wherever control goes next in the code pages the guest halts
//! there and `cpu.rip - 1` is the next RIP, comparable with the native landing address. Its
//! data and stack area holds the run's pristine pattern plus the case's memory patches.
//! Floating point is set up as an operating system would: CR0.MP and CR0.NE (#MF, not
//! FERR#/IRQ 13), CR4.OSFXSR and CR4.OSXMMEXCPT (SSE on, #XM reported), CR0.EM and CR0.TS
//! clear; the case's x87/MMX/SSE state goes into `CpuState::fx` with the FPU segment
//! selectors zero (the host stores zero for them, see `report`).
//!
//! Invariants:
//! - Between cases the code pages are all `hlt` except the current group's instruction, and
//!   the compared area equals the pristine pattern ([`GuestRunner::restore`] puts back every
//!   byte a case changed).
//! - The guest runs at most [`INSN_BUDGET`] instructions per case, so a wrong branch into
//!   zeroed RAM ends with `InstructionLimit` instead of running away.

use runtime::{Engine, RunOutcome, SerialSink, Vm, VmConfig, VmError};
use translator::state::{cr, rflags, FxArea};

use super::case::Case;
use super::layout::{CODE_BASE, CODE_SIZE, GUEST_MEM_BYTES, MEM_BASE};

/// Instructions a case may execute in the guest (the instruction, the `hlt`, and slack).
pub const INSN_BUDGET: u64 = 64;

/// Register state and outcome of a guest run.
#[derive(Clone, Debug)]
pub struct GuestResult {
    pub outcome: RunOutcome,
    pub gpr: [u64; 16],
    /// RFLAGS with the lazy arithmetic flags materialized.
    pub rflags: u64,
    pub rip: u64,
    /// The x87/MMX/SSE state after the run.
    pub fx: FxArea,
}

/// A VM dedicated to differential cases, with one engine.
pub struct GuestRunner {
    vm: Vm,
    engine: Engine,
    /// The compared area as the last run left it.
    mem: Vec<u8>,
    /// The instruction currently in guest code memory (kept across the cases of a group, so
    /// the DBT reuses its translation).
    code: Option<(u64, Vec<u8>)>,
}

impl GuestRunner {
    /// A VM for `engine` whose compared area holds `pristine`.
    pub fn new(engine: Engine, pristine: &[u8]) -> Result<GuestRunner, VmError> {
        let mut vm = Vm::new(VmConfig {
            mem_bytes: GUEST_MEM_BYTES,
            engine,
            serial: SerialSink::Capture,
            instruction_limit: Some(INSN_BUDGET),
            // The host executes what popek may not implement: such a case is skipped as
            // unsupported, not compared as a #UD.
            stop_on_unsupported: true,
            ..VmConfig::default()
        })?;
        vm.write_phys(CODE_BASE, &vec![0xF4; CODE_SIZE as usize])?;
        vm.write_phys(MEM_BASE, pristine)?;
        Ok(GuestRunner {
            vm,
            engine,
            mem: pristine.to_vec(),
            code: None,
        })
    }

    /// The engine this runner uses.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The compared area after the last [`GuestRunner::run`].
    pub fn mem(&self) -> &[u8] {
        &self.mem
    }

    /// Run `case`; afterwards [`GuestRunner::mem`] holds the compared area.
    pub fn run(&mut self, case: &Case) -> GuestResult {
        let vm = &mut self.vm;
        for (addr, bytes) in &case.mem {
            vm.write_phys(*addr, bytes).expect("patch inside guest RAM");
        }
        if self.code.as_ref() != Some(&(case.ip, case.bytes.clone())) {
            if let Some((ip, bytes)) = self.code.take() {
                vm.write_phys(ip, &vec![0xF4; bytes.len()])
                    .expect("code inside guest RAM");
            }
            vm.write_phys(case.ip, &case.bytes)
                .expect("code inside guest RAM");
            self.code = Some((case.ip, case.bytes.clone()));
        }
        let cpu = vm.cpu_mut();
        cpu.gpr = case.regs;
        cpu.rip = case.ip;
        cpu.rflags = rflags::FIXED | (case.rflags & !rflags::IF);
        cpu.flags_op = 0;
        cpu.status = 0;
        cpu.icount = 0;
        cpu.icount_limit = INSN_BUDGET;
        cpu.exc_vector = 0;
        cpu.exc_code = 0;
        cpu.exc_addr = 0;
        cpu.cr0 = (cpu.cr0 | cr::CR0_MP | cr::CR0_NE) & !(cr::CR0_EM | cr::CR0_TS);
        cpu.cr4 |= cr::CR4_OSFXSR | cr::CR4_OSXMMEXCPT;
        cpu.fx = case.fx;
        cpu.fpu_cs = 0;
        cpu.fpu_ds = 0;
        let outcome = vm.run();
        let cpu = vm.cpu();
        let result = GuestResult {
            outcome,
            gpr: cpu.gpr,
            rflags: cpu.full_rflags(),
            rip: cpu.rip,
            fx: cpu.fx,
        };
        vm.read_phys(MEM_BASE, &mut self.mem)
            .expect("compared area inside guest RAM");
        result
    }

    /// Rewrite the code pages (all `hlt`) and the whole compared area: after a failing case,
    /// whose guest run may have stored anywhere (e.g. into the code pages).
    pub fn reset(&mut self, pristine: &[u8]) {
        self.vm
            .write_phys(CODE_BASE, &vec![0xF4; CODE_SIZE as usize])
            .expect("code pages inside guest RAM");
        self.code = None;
        self.vm
            .write_phys(MEM_BASE, pristine)
            .expect("compared area inside guest RAM");
        self.mem.copy_from_slice(pristine);
    }

    /// Put the compared area back to `pristine` (writing only the chunks that differ).
    pub fn restore(&mut self, pristine: &[u8]) {
        for (off, len) in dirty_chunks(&self.mem, pristine) {
            self.vm
                .write_phys(MEM_BASE + off as u64, &pristine[off..off + len])
                .expect("compared area inside guest RAM");
        }
        self.mem.copy_from_slice(pristine);
    }
}

/// The 64-byte-aligned chunks (merged when adjacent) where `a` and `b` differ.
pub fn dirty_chunks(a: &[u8], b: &[u8]) -> Vec<(usize, usize)> {
    const CHUNK: usize = 64;
    let mut out: Vec<(usize, usize)> = Vec::new();
    for (i, (x, y)) in a.chunks(CHUNK).zip(b.chunks(CHUNK)).enumerate() {
        if x != y {
            let off = i * CHUNK;
            match out.last_mut() {
                Some((o, l)) if *o + *l == off => *l += x.len(),
                _ => out.push((off, x.len())),
            }
        }
    }
    out
}
