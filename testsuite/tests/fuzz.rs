//! Fuzzing both engines with random guest code.
//!
//! 100,000 blocks (25,000 in debug builds) of guest code are executed from random register
//! states under both engines, with an instruction limit of 1,000 so loops end. Half the
//! blocks are random bytes, half are random sequences of valid instructions from the
//! differential tester's generator. Registers point into a scratch area of RAM, into the
//! code, anywhere else in RAM, or outside it; RAM outside the scratch area holds `hlt`, so
//! control reaching it ends the run.
//!
//! Asserted: the host neither crashes nor panics, every run ends in a [`RunOutcome`] other
//! than `InternalError`, resident memory stays bounded, and each engine is deterministic
//! (running a block twice from the same state gives the same outcome, registers, flags,
//! instruction count and memory). Runs that observe anything outside the guest state
//! ([`testsuite::fuzzing::outside_observations`]: the TSC, port or MMIO reads, interrupts)
//! are exempt. Whether the two engines agree with each other is counted and printed, not asserted
//! (that comparison belongs to the differential tester, which has the host as the reference;
//! instruction counts are never compared across engines: the DBT counts a block at entry).
//!
//! Invariant: before each run the scratch area and the code page are brought back to their
//! pristine contents by rewriting only the pages that differ, so the second run of a block
//! finds the DBT's translations of the first still valid (and exercises them). A stray store
//! elsewhere could make the two runs start from different states, so a disagreement is
//! confirmed with a full RAM reset before it is reported.
//!
//! Environment: `POPEK_FUZZ_BLOCKS` (count), `POPEK_FUZZ_FIRST` (first block index, to replay
//! one), `POPEK_FUZZ_ENGINES` (`interp`, `jit` or both), `POPEK_FUZZ_PROGRESS=N` (a progress
//! line every N blocks).

use runtime::{Engine, RunOutcome, Vm};
use testsuite::diff::case::generate;
use testsuite::diff::forms::all_forms;
use testsuite::diff::rng::Rng;
use testsuite::fuzzing::{env_u64, hex, outside_observations, resident_mib, vm_with};
use translator::state::rflags;
use translator::CpuState;

const RAM: u64 = 2 << 20;
const SCRATCH: u64 = 0x1000;
const SCRATCH_LEN: usize = 0x10000;
const CODE: u64 = 0x18_0000;
const CODE_LEN: usize = 0x1000;
const LIMIT: u64 = 1_000;

/// Resident memory above which the test fails (it normally stays near 100 MiB).
const MAX_RESIDENT_MIB: u64 = 4096;

fn blocks() -> u64 {
    if let Some(n) = env_u64("POPEK_FUZZ_BLOCKS") {
        return n;
    }
    if cfg!(debug_assertions) {
        25_000
    } else {
        100_000
    }
}

/// One block: code bytes at an offset of the code page, and the initial CPU state.
struct Block {
    code: Vec<u8>,
    rip: u64,
    gpr: [u64; 16],
    rflags: u64,
}

fn random_block(seed: u64, i: u64) -> Block {
    let mut r = Rng::for_case(seed, i);
    let mut code = Vec::new();
    if r.chance(50) {
        code.resize(4 + r.below(36) as usize, 0);
        r.fill(&mut code);
    } else {
        let forms = all_forms();
        for j in 0..1 + r.below(4) {
            code.extend(generate(seed ^ i, j, forms, 1).bytes);
        }
    }
    let rip = CODE + r.below((CODE_LEN - code.len()) as u64);
    let mut gpr = [0u64; 16];
    for (n, g) in gpr.iter_mut().enumerate() {
        // RCX is mostly a small count, so REP string loops stay short.
        if n == 1 && r.chance(75) {
            *g = r.below(64);
            continue;
        }
        *g = match r.below(10) {
            0..=3 => SCRATCH + r.below(SCRATCH_LEN as u64),
            4 => rip + r.below(64),
            5 => r.below(RAM),
            _ => {
                let w = r.pick(&[8, 16, 32, 64]);
                r.reg_value(w)
            }
        };
    }
    let rflags = rflags::FIXED | (r.next_u64() & (rflags::ARITH | rflags::DF));
    Block {
        code,
        rip,
        gpr,
        rflags,
    }
}

/// Everything a run's result is compared on.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Observed {
    outcome: RunOutcome,
    gpr: [u64; 16],
    rip: u64,
    rflags: u64,
    icount: u64,
    scratch: Vec<u8>,
    code: Vec<u8>,
    /// The run read the virtual TSC, which follows host time: not reproducible.
    read_tsc: bool,
}

struct Engineer {
    vm: Vm,
    reset_cpu: CpuState,
    pristine: Vec<u8>,
}

impl Engineer {
    fn new(engine: Engine, pristine: &[u8]) -> Engineer {
        let vm = vm_with(engine, RAM, LIMIT, pristine);
        let reset_cpu = vm.cpu().clone();
        Engineer {
            vm,
            reset_cpu,
            pristine: pristine.to_vec(),
        }
    }

    /// Make `[addr, addr + want.len())` hold `want`, writing only the pages that differ (so
    /// translations of unchanged code survive, as they would on hardware).
    fn sync(&mut self, addr: u64, want: &[u8]) {
        let differs: Vec<usize> = {
            let have = self
                .vm
                .machine()
                .ram
                .slice(runtime::memory::GuestPhys(addr), want.len())
                .expect("ram");
            (0..want.len())
                .step_by(4096)
                .filter(|&o| {
                    let e = (o + 4096).min(want.len());
                    have[o..e] != want[o..e]
                })
                .collect()
        };
        for o in differs {
            let e = (o + 4096).min(want.len());
            self.vm
                .write_phys(addr + o as u64, &want[o..e])
                .expect("ram");
        }
    }

    /// Reset the scratch area and the code page (or all of RAM), load `b`, run, observe.
    fn run(&mut self, b: &Block, full_reset: bool) -> Observed {
        if full_reset {
            self.vm.write_phys(0, &self.pristine).expect("ram");
        }
        let s = SCRATCH as usize;
        let scratch = self.pristine[s..s + SCRATCH_LEN].to_vec();
        self.sync(SCRATCH, &scratch);
        let c = CODE as usize;
        let mut code = self.pristine[c..c + CODE_LEN].to_vec();
        let off = (b.rip - CODE) as usize;
        code[off..off + b.code.len()].copy_from_slice(&b.code);
        self.sync(CODE, &code);
        let vm = &mut self.vm;
        let cpu = vm.cpu_mut();
        *cpu = self.reset_cpu.clone();
        cpu.gpr = b.gpr;
        cpu.rip = b.rip;
        cpu.rflags = b.rflags;
        cpu.icount = 0;
        cpu.icount_limit = LIMIT;
        let tsc_reads = outside_observations(vm);
        let outcome = vm.run();
        let read_tsc = outside_observations(vm) != tsc_reads;
        let cpu = vm.cpu();
        let ram = &vm.machine().ram;
        let slice = |a: u64, n: usize| {
            ram.slice(runtime::memory::GuestPhys(a), n)
                .expect("ram")
                .to_vec()
        };
        Observed {
            outcome,
            gpr: cpu.gpr,
            rip: cpu.rip,
            rflags: cpu.full_rflags(),
            icount: cpu.icount,
            scratch: slice(SCRATCH, SCRATCH_LEN),
            code: slice(CODE, CODE_LEN),
            read_tsc,
        }
    }
}

fn outcome_kind(o: &RunOutcome) -> &'static str {
    match o {
        RunOutcome::DebugExit(_) => "debug-exit",
        RunOutcome::Halted => "halted",
        RunOutcome::Exception { .. } => "exception",
        RunOutcome::TripleFault { .. } => "triple-fault",
        RunOutcome::Unsupported { .. } => "unsupported",
        RunOutcome::PowerOff => "power-off",
        RunOutcome::Reset => "reset",
        RunOutcome::InstructionLimit => "instruction-limit",
        RunOutcome::Stopped => "stopped",
        RunOutcome::InternalError(_) => "internal-error",
    }
}

#[test]
fn random_code_on_both_engines() {
    let seed = 0xF022;
    // RAM outside the scratch area is HLT, so a jump into it ends the run at once (zeroed RAM
    // would decode as long runs of `add [rax], al`, which are slow to translate).
    let mut pristine = vec![0xF4u8; RAM as usize];
    Rng::new(seed).fill(&mut pristine[SCRATCH as usize..SCRATCH as usize + SCRATCH_LEN]);
    let mut interp = Engineer::new(Engine::Interp, &pristine);
    let mut dbt = Engineer::new(Engine::Jit, &pristine);

    let n = blocks();
    let mut failures = Vec::new();
    let mut kinds = std::collections::BTreeMap::<(&str, &str), u64>::new();
    let mut engines_disagree = 0u64;
    let mut tsc_blocks = 0u64;
    let mut disagreement_examples = Vec::new();
    let first = env_u64("POPEK_FUZZ_FIRST").unwrap_or(0);
    // Debugging aid: `POPEK_FUZZ_ENGINES=jit` runs one engine only.
    let engines = std::env::var("POPEK_FUZZ_ENGINES").unwrap_or_else(|_| "interp,jit".into());
    for i in first..first + n {
        let b = random_block(seed, i);
        let mut results = Vec::new();
        for (name, e) in [("interp", &mut interp), ("jit", &mut dbt)] {
            if !engines.contains(name) {
                continue;
            }
            let mut first = e.run(&b, false);
            let mut second = e.run(&b, false);
            if first != second && !first.read_tsc {
                first = e.run(&b, true);
                second = e.run(&b, true);
            }
            if first.read_tsc || second.read_tsc {
                tsc_blocks += 1;
                results.push(first);
                continue;
            }
            *kinds
                .entry((name, outcome_kind(&first.outcome)))
                .or_default() += 1;
            if let RunOutcome::InternalError(msg) = &first.outcome {
                failures.push(format!(
                    "block {i} [{}] at {:#x}: {name}: internal error: {msg}",
                    hex(&b.code),
                    b.rip
                ));
            }
            if first != second {
                failures.push(format!(
                    "block {i} [{}] at {:#x}: {name} is not deterministic: {:?} then {:?}",
                    hex(&b.code),
                    b.rip,
                    (&first.outcome, first.rip, first.icount),
                    (&second.outcome, second.rip, second.icount)
                ));
            }
            results.push(first);
        }
        // The DBT counts a block's instructions at its entry, so a fault in the middle of a
        // block leaves a different count: compare everything else.
        let (a, b2) = (&results[0], results.get(1).unwrap_or(&results[0]));
        if !a.read_tsc
            && !b2.read_tsc
            && (&a.outcome, a.gpr, a.rip, a.rflags, &a.scratch, &a.code)
                != (
                    &b2.outcome,
                    b2.gpr,
                    b2.rip,
                    b2.rflags,
                    &b2.scratch,
                    &b2.code,
                )
        {
            engines_disagree += 1;
            if disagreement_examples.len() < 5 {
                disagreement_examples.push(format!(
                    "block {i} [{}] at {:#x}: interp {} (rip {:#x}, {} insns), jit {} (rip {:#x}, \
                     {} insns)",
                    hex(&b.code),
                    b.rip,
                    results[0].outcome,
                    results[0].rip,
                    results[0].icount,
                    results[1].outcome,
                    results[1].rip,
                    results[1].icount
                ));
            }
        }
        if failures.len() >= 20 {
            break;
        }
        if i % 1000 == 999 {
            // A leak would take the shared machine down before the test ends: stop early.
            let rss = resident_mib();
            assert!(
                rss < MAX_RESIDENT_MIB,
                "{rss} MiB resident after block {i}: the engines leak memory"
            );
        }
        let every = env_u64("POPEK_FUZZ_PROGRESS").unwrap_or(0);
        if every > 0 && i % every == every - 1 {
            let (a, b) = (interp.vm.stats(), dbt.vm.stats());
            let rss_mb = resident_mib();
            eprintln!(
                "[fuzz] {} blocks, {rss_mb} MiB resident: interp {:.1} s, jit {:.1} s ({} \
                 translated, {:.1} s compiling)",
                i + 1,
                a.run_ns as f64 / 1e9,
                b.run_ns as f64 / 1e9,
                b.dbt.blocks_translated,
                b.dbt.compile_ns as f64 / 1e9
            );
        }
    }
    println!("{n} blocks; outcomes by engine: {kinds:?}");
    for (name, e) in [("interp", &interp), ("jit", &dbt)] {
        let st = e.vm.stats();
        println!(
            "{name}: {:.1} s running, {} blocks translated ({} guest insns, {:.1} s translating, \
             {:.1} s compiling), {} single steps",
            st.run_ns as f64 / 1e9,
            st.dbt.blocks_translated,
            st.dbt.guest_insns_translated,
            st.dbt.translate_ns as f64 / 1e9,
            st.dbt.compile_ns as f64 / 1e9,
            st.dbt.single_steps
        );
    }
    println!(
        "the engines disagreed on {engines_disagree} blocks; {tsc_blocks} runs observed host \
         time or device state (not compared)"
    );
    for d in &disagreement_examples {
        println!("  {d}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
