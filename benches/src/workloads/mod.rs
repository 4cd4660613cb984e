//! The guest-workload harness behind the `workloads` binary: run every guest program natively,
//! under QEMU's user-mode emulator and under each engine, check the outputs agree, and report
//! times, ratios, speeds and translation costs as a Markdown table ([`report::markdown`]) and
//! optionally JSON ([`report::json`]).
//!
//! Timing rules:
//! - native: wall time of the twin's process (start to exit), as
//!   [`testsuite::native::run_native`] measures it; one untimed warm-up run first;
//! - qemu: the same native twin run as `qemu-x86_64 <twin>` (user-mode TCG), timed the same
//!   way (process wall time, one untimed warm-up, median of [`Options::runs`]), when
//!   [`Options::qemu`] names an emulator; its output must equal the native output too, the
//!   values of host-specific lines aside ([`testsuite::guests::golden_view`]);
//! - engines: wall time around [`runtime::Vm::run`] only; creating the VM and loading the
//!   image are timed separately (`setup`) and not part of the ratios. Each run is a fresh VM
//!   in a fresh child process ([`isolated`]), so translation starts cold every time;
//! - every figure is the median of the runs (the machine is shared and noisy);
//! - a cold-code guest ([`testsuite::guests::COLD`]) runs at [`Options::cold_scale`] instead
//!   of [`Options::scale`], everywhere (native, QEMU, every engine): its scale multiplies how
//!   often each function runs, so a benchmark scale would make its code hot.
//!
//! Columns are [`Variant`]s: an engine, and for `dbt` optionally its tier-up threshold, so one
//! run can sweep the threshold (`dbt@10`, `dbt@50`, ...).
//!
//! A run *passes* when the guest exits through isa-debug-exit with 0 and its serial output is
//! byte-for-byte the native stdout. Anything else (other outcome, different output, a crash,
//! a timeout) is a mismatch, reported loudly.

pub mod isolated;
pub mod report;

use std::path::PathBuf;
use std::time::Duration;

use runtime::Engine;
use testsuite::guests::{build_guest, build_native, golden_view, Guest, COLD};
use testsuite::native::{run_native, run_native_under};

pub use isolated::Counters;
use isolated::{run_isolated, RunRequest};

/// One column of the table: an engine, and for `dbt` the tier-up threshold if not its default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variant {
    /// The engine.
    pub engine: Engine,
    /// `dbt`: runs in the interpreter tier before a block is compiled
    /// (`runtime::engine::tier::Tiering::compile_after`); `None` for the engine's default.
    pub compile_after: Option<u32>,
}

impl Variant {
    /// The engine with its own policy.
    pub fn of(engine: Engine) -> Variant {
        Variant {
            engine,
            compile_after: None,
        }
    }

    /// The column's name: the engine's, with `@N` for a threshold (`dbt@50`).
    pub fn name(&self) -> String {
        match self.compile_after {
            Some(n) => format!("{}@{n}", self.engine.name()),
            None => self.engine.name().to_owned(),
        }
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Work multiplier handed to the guests' builds (`-DSCALE`).
    pub scale: u32,
    /// Timed runs per guest, natively and under the DBT (the median is reported).
    pub runs: usize,
    /// Timed runs per guest under the interpreter, which is much slower.
    pub interp_runs: usize,
    /// Scale the interpreter runs at (its times are extrapolated to `scale` if different).
    pub interp_scale: u32,
    /// Scale of the cold-code guests ([`COLD`]) for every column, instead of `scale` and
    /// `interp_scale`.
    pub cold_scale: u32,
    /// Columns to run, in order.
    pub engines: Vec<Variant>,
    /// Guest RAM per VM, in bytes.
    pub mem_bytes: u64,
    /// Guest instruction limit per run (a runaway guest then ends as a mismatch).
    pub max_insns: Option<u64>,
    /// Wall-clock limit per engine run.
    pub timeout: Duration,
    /// The harness executable, re-run as the child of every engine run.
    pub exe: PathBuf,
    /// Directory for the children's serial output files.
    pub tmp_dir: PathBuf,
    /// QEMU's user-mode emulator (`qemu-x86_64`) to run the native twins under, if any.
    pub qemu: Option<PathBuf>,
}

impl Options {
    /// Whether `guest` is a cold-code guest, run at [`Options::cold_scale`].
    pub fn is_cold(guest: &str) -> bool {
        COLD.contains(&guest)
    }

    /// The scale of `guest`'s native, QEMU and table figures.
    pub fn scale_for(&self, guest: &str) -> u32 {
        if Self::is_cold(guest) {
            self.cold_scale
        } else {
            self.scale
        }
    }

    /// The scale `engine` runs `guest` at.
    pub fn scale_of(&self, guest: &str, engine: Engine) -> u32 {
        match engine {
            _ if Self::is_cold(guest) => self.cold_scale,
            Engine::Interp => self.interp_scale,
            Engine::Dbt | Engine::Jit | Engine::Trap => self.scale,
        }
    }
}

/// One engine's results on one guest.
#[derive(Clone, Debug)]
pub struct EngineResult {
    /// The column.
    pub engine: Variant,
    /// The scale the engine ran the guest at.
    pub scale: u32,
    /// Median wall time of `Vm::run`, at [`EngineResult::scale`].
    pub run: Duration,
    /// If the engine ran at another scale than the table's: its time extrapolated to the
    /// table's scale (see [`EngineResult::time`]).
    pub estimate: Option<Duration>,
    /// Median wall time of VM creation and image loading.
    pub setup: Duration,
    /// Runs completed (fewer than asked if one failed).
    pub runs: usize,
    /// How the last run ended.
    pub outcome: String,
    /// Whether every run exited with 0 and printed exactly the native output.
    pub ok: bool,
    /// If not `ok`: what went wrong (first differing line, the outcome, crash, timeout).
    pub problem: Option<String>,
    /// The counters of the last run, with the translation times replaced by the medians
    /// over the runs.
    pub counters: Counters,
}

impl EngineResult {
    /// A result for a guest that could not be run at all.
    fn failed(engine: Variant, scale: u32, problem: String) -> EngineResult {
        EngineResult {
            engine,
            scale,
            run: Duration::ZERO,
            estimate: None,
            setup: Duration::ZERO,
            runs: 0,
            outcome: problem.clone(),
            ok: false,
            problem: Some(problem),
            counters: Counters::default(),
        }
    }

    /// The time at the table's scale: the median, or its extrapolation.
    pub fn time(&self) -> Duration {
        self.estimate.unwrap_or(self.run)
    }

    /// Guest instructions per second, in millions (measured, never extrapolated).
    pub fn mips(&self) -> f64 {
        self.counters.guest_insns as f64 / self.run.as_secs_f64().max(1e-12) / 1e6
    }
}

/// One guest's results.
#[derive(Clone, Debug)]
pub struct GuestResult {
    /// The guest's name.
    pub name: &'static str,
    /// The scale of its native and QEMU runs (and of the engines', unless extrapolated).
    pub scale: u32,
    /// Median native wall time (`None` if the twin could not be built or run).
    pub native: Option<Duration>,
    /// Median wall time of the native twin under [`Options::qemu`] (`None` if not run, or if
    /// a run failed).
    pub qemu: Option<Duration>,
    /// How QEMU's run went wrong: it failed (could not start, crashed, a self-check failed:
    /// then there is no time), or it printed something else than the native run.
    pub qemu_problem: Option<String>,
    /// Per engine, in [`Options::engines`] order.
    pub engines: Vec<EngineResult>,
    /// Why the guest could not be measured at all (build failures, native failures).
    pub error: Option<String>,
}

impl GuestResult {
    /// Whether the guest was measured and every engine matched the native output.
    pub fn ok(&self) -> bool {
        self.error.is_none() && self.engines.iter().all(|e| e.ok)
    }

    /// The result of column `engine`, if it ran.
    pub fn engine(&self, engine: Variant) -> Option<&EngineResult> {
        self.engines.iter().find(|e| e.engine == engine)
    }

    /// `engine`'s median time over the native median, if the engine passed.
    pub fn ratio(&self, engine: Variant) -> Option<f64> {
        let native = self.native?.as_secs_f64();
        let e = self.engine(engine)?;
        (native > 0.0 && e.ok).then(|| e.time().as_secs_f64() / native)
    }

    /// The QEMU median over the native median, if QEMU ran and matched.
    pub fn qemu_ratio(&self) -> Option<f64> {
        let native = self.native?.as_secs_f64();
        let qemu = self.qemu?.as_secs_f64();
        (native > 0.0).then(|| qemu / native)
    }

    /// `engine`'s median time over the QEMU median, if both passed.
    pub fn ratio_to_qemu(&self, engine: Variant) -> Option<f64> {
        let qemu = self.qemu?.as_secs_f64();
        let e = self.engine(engine)?;
        (qemu > 0.0 && e.ok).then(|| e.time().as_secs_f64() / qemu)
    }
}

/// The median of `v` (mean of the middle two for an even count); zero for none.
pub fn median(v: &mut [Duration]) -> Duration {
    v.sort_unstable();
    match v.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2,
    }
}

/// The median of `v`; zero for none.
fn median_u64(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    match v.len() {
        0 => 0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2,
    }
}

/// The geometric mean of `v`, if it is not empty.
pub fn geomean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| (v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp())
}

/// Where two outputs first differ, for the report.
fn first_difference(got: &[u8], want: &[u8]) -> String {
    let (got, want) = (String::from_utf8_lossy(got), String::from_utf8_lossy(want));
    let mut g = got.lines();
    let mut w = want.lines();
    for line in 1.. {
        match (g.next(), w.next()) {
            (None, None) => break,
            (a, b) if a == b => continue,
            (a, b) => {
                return format!(
                    "output differs at line {line}: got {:?}, expected {:?}",
                    a.unwrap_or("<end of output>"),
                    b.unwrap_or("<end of output>")
                )
            }
        }
    }
    "outputs differ only in line endings".to_owned()
}

/// Builds `g` at `scale` (image and native twin) and runs the twin once, untimed: the image
/// and the reference output.
fn prepare(g: &Guest, scale: u32) -> Result<(PathBuf, Vec<u8>), String> {
    let image = build_native(g, scale)
        .and_then(|_| build_guest(g, scale))
        .map_err(|e| format!("build at scale {scale} failed: {e}"))?;
    let (reference, _) =
        run_native(g, scale).map_err(|e| format!("native run at scale {scale} failed: {e}"))?;
    Ok((image, reference))
}

/// Runs `g` natively and under every engine of `opts`; `progress` gets a line per step.
pub fn measure_guest(
    g: &'static Guest,
    opts: &Options,
    progress: &mut dyn FnMut(&str),
) -> GuestResult {
    let scale = opts.scale_for(g.name);
    let mut result = GuestResult {
        name: g.name,
        scale,
        native: None,
        qemu: None,
        qemu_problem: None,
        engines: Vec::new(),
        error: None,
    };
    progress(&format!("{}: building (scale {scale})", g.name));
    let (image, reference) = match prepare(g, scale) {
        Ok(x) => x,
        Err(e) => {
            result.error = Some(e);
            return result;
        }
    };

    progress(&format!("{}: native", g.name));
    let mut times = Vec::new();
    for _ in 0..opts.runs {
        match run_native(g, scale) {
            Ok((out, t)) if out == reference => times.push(t),
            Ok(_) => {
                result.error = Some("the native twin's output changed between runs".into());
                return result;
            }
            Err(e) => {
                result.error = Some(format!("native run failed: {e}"));
                return result;
            }
        }
    }
    let native = median(&mut times);
    result.native = Some(native);
    progress(&format!(
        "{}: native {:.1} ms",
        g.name,
        native.as_secs_f64() * 1e3
    ));

    if let Some(qemu) = &opts.qemu {
        let (time, problem) = measure_qemu(g, scale, qemu, &reference, opts);
        if let Some(t) = time {
            progress(&format!("{}: qemu {:.1} ms", g.name, t.as_secs_f64() * 1e3));
        }
        if let Some(p) = &problem {
            progress(&format!("{}: qemu differs: {p}", g.name));
        }
        result.qemu = time;
        result.qemu_problem = problem;
    }

    for &variant in &opts.engines {
        let engine_scale = opts.scale_of(g.name, variant.engine);
        let prepared = if engine_scale == scale {
            Ok((image.clone(), reference.clone()))
        } else {
            progress(&format!("{}: building (scale {engine_scale})", g.name));
            prepare(g, engine_scale)
        };
        let (image, reference) = match prepared {
            Ok(x) => x,
            Err(e) => {
                result
                    .engines
                    .push(EngineResult::failed(variant, engine_scale, e));
                continue;
            }
        };
        let req = RunRequest {
            image,
            engine: variant.engine,
            compile_after: variant.compile_after,
            mem_bytes: opts.mem_bytes,
            max_insns: opts.max_insns,
            serial_out: opts
                .tmp_dir
                .join(format!("{}-{}.serial", g.name, variant.name())),
        };
        let mut r = measure_engine(&req, &reference, opts, &mut |step| {
            progress(&format!("{}: {} {step}", g.name, variant.name()))
        });
        r.engine = variant;
        r.scale = engine_scale;
        result.engines.push(r);
    }
    extrapolate(&mut result, scale);
    result
}

/// Runs `g`'s native twin under QEMU's user-mode emulator `qemu`: one untimed warm-up run,
/// then `opts.runs` timed ones. Returns the median, if every run exited with status 0, and
/// where the output differed from the native output, if it did (QEMU's own deviations, such
/// as its x87 quotient bits: the work done is the same, so the time still counts, flagged).
/// Values of host-specific lines are not compared: QEMU is another implementation of the x87
/// transcendentals, like another processor ([`golden_view`]).
fn measure_qemu(
    g: &Guest,
    scale: u32,
    qemu: &std::path::Path,
    reference: &[u8],
    opts: &Options,
) -> (Option<Duration>, Option<String>) {
    let mut times = Vec::new();
    let mut problem = None;
    let view = |b: &[u8]| golden_view(&String::from_utf8_lossy(b));
    for i in 0..=opts.runs {
        let (out, t) = match run_native_under(g, scale, qemu) {
            Ok(x) => x,
            Err(e) => return (None, Some(e.to_string())),
        };
        if problem.is_none() && view(&out) != view(reference) {
            problem = Some(first_difference(&out, reference));
        }
        if i > 0 {
            times.push(t);
        }
    }
    (Some(median(&mut times)), problem)
}

/// Gives every passing engine result measured at another scale than `scale` an estimate of
/// its time at `scale`: the measured time times the ratio of instruction counts (those of a
/// passing engine measured at `scale`, else the ratio of scales, as work is linear in it).
fn extrapolate(result: &mut GuestResult, scale: u32) {
    let main_insns = result
        .engines
        .iter()
        .find(|e| e.ok && e.scale == scale)
        .map(|e| e.counters.guest_insns);
    for e in result
        .engines
        .iter_mut()
        .filter(|e| e.ok && e.scale != scale)
    {
        let factor = match main_insns {
            Some(n) if e.counters.guest_insns > 0 => n as f64 / e.counters.guest_insns as f64,
            _ => f64::from(scale) / f64::from(e.scale.max(1)),
        };
        e.estimate = Some(e.run.mul_f64(factor));
    }
}

/// Runs `req` `opts.runs` times, stopping at the first failed run.
fn measure_engine(
    req: &RunRequest,
    reference: &[u8],
    opts: &Options,
    progress: &mut dyn FnMut(&str),
) -> EngineResult {
    let (mut runs, mut setups) = (Vec::new(), Vec::new());
    let (mut translate, mut compile, mut record) = (Vec::new(), Vec::new(), Vec::new());
    let mut result = EngineResult {
        engine: Variant {
            engine: req.engine,
            compile_after: req.compile_after,
        },
        scale: opts.scale,
        run: Duration::ZERO,
        estimate: None,
        setup: Duration::ZERO,
        runs: 0,
        outcome: String::new(),
        ok: true,
        problem: None,
        counters: Counters::default(),
    };
    let n = match req.engine {
        Engine::Interp => opts.interp_runs,
        Engine::Dbt | Engine::Jit | Engine::Trap => opts.runs,
    };
    for i in 0..n {
        let (problem, outcome) = match run_isolated(&opts.exe, req, opts.timeout) {
            Ok((report, output)) => {
                runs.push(Duration::from_nanos(report.run_ns));
                setups.push(Duration::from_nanos(report.setup_ns));
                translate.push(report.counters.translate_ns);
                compile.push(report.counters.compile_ns);
                record.push(report.counters.record_ns);
                result.runs += 1;
                result.counters = report.counters;
                progress(&format!(
                    "run {}/{n}: {:.1} ms",
                    i + 1,
                    report.run_ns as f64 / 1e6
                ));
                let problem = if !report.clean_exit {
                    Some(format!("run ended with: {}", report.outcome))
                } else if output != reference {
                    Some(first_difference(&output, reference))
                } else {
                    None
                };
                (problem, report.outcome)
            }
            Err(e) => (Some(e.clone()), e),
        };
        result.outcome = outcome;
        if let Some(p) = problem {
            progress(&format!("MISMATCH: {p}"));
            result.ok = false;
            result.problem = Some(p);
            break;
        }
    }
    result.run = median(&mut runs);
    result.setup = median(&mut setups);
    result.counters.translate_ns = median_u64(&mut translate);
    result.counters.compile_ns = median_u64(&mut compile);
    result.counters.record_ns = median_u64(&mut record);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let d = Duration::from_millis;
        assert_eq!(median(&mut [d(5), d(1), d(3)]), d(3));
        assert_eq!(
            median(&mut [d(4), d(1), d(3), d(2)]),
            Duration::from_micros(2500)
        );
        assert_eq!(median(&mut []), Duration::ZERO);
        assert_eq!(median_u64(&mut [9, 1, 5]), 5);
    }

    #[test]
    fn geomean_of_ratios() {
        assert!((geomean(&[2.0, 8.0]).unwrap() - 4.0).abs() < 1e-9);
        assert_eq!(geomean(&[]), None);
    }

    #[test]
    fn first_difference_names_the_line() {
        let d = first_difference(b"a\nb\nc\n", b"a\nx\nc\n");
        assert_eq!(d, r#"output differs at line 2: got "b", expected "x""#);
        assert!(first_difference(b"a\n", b"a\nb\n").contains("<end of output>"));
    }
}
