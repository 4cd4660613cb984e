//! The differential run loop: generate a case, run it natively, run it in each engine's VM,
//! compare, tally per mnemonic, restore memory, repeat.
//!
//! Invariant: before every case the native and guest compared areas both equal the run's
//! pristine pattern (a function of the seed only), so a case's result depends only on
//! `(seed, index, filter)` and `--case` reproduces it alone.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use runtime::Engine;

use super::case::{generate, Case};
use super::forms::{mnemonic_name, select, Family};
use super::guest::{dirty_chunks, GuestResult, GuestRunner};
use super::layout::{MEM_BASE, MEM_SIZE};
use super::native::{self, NativeResult, Regs};
use super::report::{case_report, compare, disassemble, ReportContext, Verdict};
use super::rng::Rng;

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    pub engines: Vec<Engine>,
    /// Number of cases.
    pub cases: u64,
    pub seed: u64,
    /// Index of the first case (`--case I` runs `first = I, cases = 1`).
    pub first: u64,
    /// A `--filter` (see [`super::forms::select`]).
    pub filter: Option<String>,
    /// Stop at the first failing case.
    pub stop_on_first: bool,
    /// Detailed reports to print (and keep) per engine.
    pub max_reports: usize,
    /// Print progress lines about every two seconds.
    pub progress: bool,
    /// Consecutive cases sharing one instruction encoding (see [`generate`]).
    pub variants: u64,
    /// Print the full report of every case, passing or not.
    pub verbose: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            engines: vec![Engine::Interp, Engine::Jit],
            cases: 10_000,
            seed: 1,
            first: 0,
            filter: None,
            stop_on_first: false,
            max_reports: 5,
            progress: false,
            variants: 4,
            verbose: false,
        }
    }
}

/// Failures of one mnemonic.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub mismatches: u64,
    pub unsupported: u64,
    /// One line: the first failing instruction and what went wrong.
    pub example: String,
}

/// The results of one engine.
#[derive(Clone, Debug)]
pub struct EngineSummary {
    pub engine: Engine,
    pub passed: u64,
    /// Mismatches plus unsupported instructions.
    pub failed: u64,
    pub unsupported: u64,
    /// Time spent in this engine's VM (runs and memory synchronization).
    pub time: Duration,
    /// Failures by lower-case mnemonic.
    pub by_mnemonic: BTreeMap<String, Tally>,
    /// Cases (passed, failed) by family.
    pub by_family: BTreeMap<Family, (u64, u64)>,
    /// The first detailed mismatch reports.
    pub reports: Vec<String>,
}

impl EngineSummary {
    /// `interp: N passed, M failed`.
    pub fn line(&self) -> String {
        format!(
            "{}: {} passed, {} failed",
            self.engine.name(),
            self.passed,
            self.failed
        )
    }

    /// Cases per second of guest time.
    pub fn rate(&self) -> f64 {
        (self.passed + self.failed) as f64 / self.time.as_secs_f64().max(1e-9)
    }

    /// One line per family: `  x87  123 passed, 4 failed`.
    pub fn family_table(&self) -> String {
        let mut s = format!("{} by family:\n", self.engine.name());
        for (f, (p, n)) in &self.by_family {
            s.push_str(&format!(
                "  {:<8} {p:>10} passed, {n:>6} failed\n",
                f.name()
            ));
        }
        s
    }

    /// A table of failures by mnemonic, most frequent first.
    pub fn failure_table(&self) -> String {
        let mut rows: Vec<(&String, &Tally)> = self.by_mnemonic.iter().collect();
        rows.sort_by_key(|(_, t)| std::cmp::Reverse(t.mismatches + t.unsupported));
        let mut s = format!(
            "{} failures by mnemonic (mismatched / unsupported), with the first example:\n",
            self.engine.name()
        );
        for (m, t) in rows {
            s.push_str(&format!(
                "  {m:<10} {:>8} / {:>8}   {}\n",
                t.mismatches, t.unsupported, t.example
            ));
        }
        s
    }
}

/// The results of a run.
#[derive(Clone, Debug)]
pub struct Summary {
    pub engines: Vec<EngineSummary>,
    pub cases: u64,
    pub native_time: Duration,
    pub generate_time: Duration,
    pub total_time: Duration,
}

impl Summary {
    /// Whether every engine passed every case.
    pub fn all_passed(&self) -> bool {
        self.engines.iter().all(|e| e.failed == 0)
    }
}

/// The pristine contents of the compared area for `seed`.
pub fn pristine_pattern(seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; MEM_SIZE as usize];
    Rng::new(seed ^ 0x5EED_DA7A_0000_0001).fill(&mut v);
    v
}

/// Run the cases of `opts`, writing progress and reports to `log`.
pub fn run(opts: &Options, log: &mut dyn Write) -> Result<Summary, String> {
    let forms = select(opts.filter.as_deref())?;
    let pristine = pristine_pattern(opts.seed);
    let mut machine = native::machine();
    machine.mem_mut().copy_from_slice(&pristine);
    let mut guests = Vec::new();
    for &e in &opts.engines {
        guests.push(GuestRunner::new(e, &pristine).map_err(|err| err.to_string())?);
    }
    let mut sums: Vec<EngineSummary> = opts
        .engines
        .iter()
        .map(|&engine| EngineSummary {
            engine,
            passed: 0,
            failed: 0,
            unsupported: 0,
            time: Duration::ZERO,
            by_mnemonic: BTreeMap::new(),
            by_family: BTreeMap::new(),
            reports: Vec::new(),
        })
        .collect();

    let start = Instant::now();
    let (mut native_time, mut generate_time) = (Duration::ZERO, Duration::ZERO);
    let mut last_progress = Instant::now();
    let mut done = 0;
    'cases: for index in opts.first..opts.first.saturating_add(opts.cases) {
        let t0 = Instant::now();
        let case = generate(opts.seed, index, &forms, opts.variants);
        let t1 = Instant::now();
        let nres = run_native(&mut machine, &case);
        native_time += t1.elapsed();
        generate_time += t1 - t0;

        let mut stop = false;
        for (g, sum) in guests.iter_mut().zip(sums.iter_mut()) {
            let t = Instant::now();
            let gres = g.run(&case);
            let verdict = compare(&case, &nres, machine.mem(), &gres, g.mem());
            if matches!(verdict, Verdict::Pass) {
                g.restore(&pristine);
            } else {
                g.reset(&pristine);
            }
            sum.time += t.elapsed();
            let key = mnemonic_name(case.form.mnemonic());
            let ctx = ReportContext {
                engine: g.engine(),
                seed: opts.seed,
                filter: opts.filter.as_deref(),
                variants: opts.variants,
            };
            if opts.verbose {
                let diffs = match &verdict {
                    Verdict::Pass => vec!["none: PASS".to_string()],
                    Verdict::Unsupported(w) => vec![format!("unsupported: {w}")],
                    Verdict::Mismatch(d) => d.clone(),
                };
                let _ = writeln!(log, "{}", case_report(&ctx, &case, &nres, &gres, &diffs));
            }
            let fam = sum.by_family.entry(case.form.family).or_default();
            if matches!(verdict, Verdict::Pass) {
                fam.0 += 1;
            } else {
                fam.1 += 1;
            }
            match verdict {
                Verdict::Pass => sum.passed += 1,
                Verdict::Unsupported(what) => {
                    sum.failed += 1;
                    sum.unsupported += 1;
                    let t = sum.by_mnemonic.entry(key.clone()).or_default();
                    t.unsupported += 1;
                    if t.example.is_empty() {
                        t.example = format!("{}: unsupported ({what})", disassemble(&case));
                    }
                    stop |= opts.stop_on_first;
                }
                Verdict::Mismatch(diffs) => {
                    sum.failed += 1;
                    let t = sum.by_mnemonic.entry(key.clone()).or_default();
                    t.mismatches += 1;
                    if t.example.is_empty() || t.mismatches == 1 {
                        t.example = format!(
                            "{}: {} (case {})",
                            disassemble(&case),
                            diffs.join("; "),
                            case.index
                        );
                    }
                    if sum.reports.len() < opts.max_reports {
                        let r = case_report(&ctx, &case, &nres, &gres, &diffs);
                        if !opts.verbose {
                            let _ = writeln!(log, "{r}");
                        }
                        sum.reports.push(r);
                    }
                    stop |= opts.stop_on_first;
                }
            }
        }
        let t = Instant::now();
        restore_native(&mut machine, &pristine);
        native_time += t.elapsed();
        done += 1;

        if opts.progress && last_progress.elapsed() >= Duration::from_secs(2) {
            last_progress = Instant::now();
            let per: Vec<String> = sums
                .iter()
                .map(|s| format!("{} {} failed", s.engine.name(), s.failed))
                .collect();
            let _ = writeln!(
                log,
                "[difftest] {done}/{} cases, {} ({:.0} cases/s)",
                opts.cases,
                per.join(", "),
                done as f64 / start.elapsed().as_secs_f64()
            );
        }
        if stop {
            break 'cases;
        }
    }
    Ok(Summary {
        engines: sums,
        cases: done,
        native_time,
        generate_time,
        total_time: start.elapsed(),
    })
}

/// One case run natively and in each engine.
#[derive(Clone, Debug)]
pub struct SingleRun {
    pub native: NativeResult,
    /// Per engine: the guest result and the verdict.
    pub guests: Vec<(Engine, GuestResult, Verdict)>,
}

/// Run one (typically hand-written) case natively and in fresh VMs of `engines`, against
/// the pristine pattern of seed 0.
pub fn run_single(case: &Case, engines: &[Engine]) -> Result<SingleRun, String> {
    let pristine = pristine_pattern(0);
    let mut machine = native::machine();
    machine.mem_mut().copy_from_slice(&pristine);
    let native = run_native(&mut machine, case);
    let mut guests = Vec::new();
    for &e in engines {
        let mut g = GuestRunner::new(e, &pristine).map_err(|err| err.to_string())?;
        let res = g.run(case);
        let verdict = compare(case, &native, machine.mem(), &res, g.mem());
        guests.push((e, res, verdict));
    }
    restore_native(&mut machine, &pristine);
    Ok(SingleRun { native, guests })
}

/// Apply the case's memory patches to the native area and run it natively.
fn run_native(machine: &mut native::NativeMachine, case: &Case) -> NativeResult {
    let mem = machine.mem_mut();
    for (addr, bytes) in &case.mem {
        let off = (addr - MEM_BASE) as usize;
        mem[off..off + bytes.len()].copy_from_slice(bytes);
    }
    machine.run(
        case.ip,
        &case.bytes,
        &case.pads,
        &Regs {
            gpr: case.regs,
            rflags: case.rflags,
        },
        &case.fx,
    )
}

fn restore_native(machine: &mut native::NativeMachine, pristine: &[u8]) {
    for (off, len) in dirty_chunks(machine.mem(), pristine) {
        machine.mem_mut()[off..off + len].copy_from_slice(&pristine[off..off + len]);
    }
}
