//! One guest run under one engine, in a child process of the harness, so that a run that
//! hangs (killed at a deadline) or crashes the host process (a fault in generated code) is
//! reported for that guest and engine while the harness goes on with the others.
//!
//! Protocol: the parent runs its own executable with the hidden `--child-run` arguments
//! ([`child_args`]); the child loads the image, runs it once ([`run_in_child`]), writes the
//! guest's serial output to a file the parent named, and prints one line to stdout: `RUN`
//! followed by `key=value` fields, the last of which, `outcome=`, takes the rest of the line
//! ([`RunReport::to_line`], [`RunReport::parse`]).

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use runtime::engine::tier::Tiering;
use runtime::{Engine, RunOutcome, SerialSink, Vm, VmConfig};

/// The marker that starts the report line.
const MARKER: &str = "RUN";

/// The counters of one run that the harness reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Guest instructions executed.
    pub guest_insns: u64,
    /// Blocks the DBT translated.
    pub blocks_translated: u64,
    /// Guest instructions in those blocks.
    pub guest_insns_translated: u64,
    /// Cranelift IR instructions built.
    pub ir_insts: u64,
    /// Nanoseconds building IR.
    pub translate_ns: u64,
    /// Nanoseconds in Cranelift.
    pub compile_ns: u64,
    /// Bytes of host code generated.
    pub code_bytes: u64,
    /// Blocks entered from the dispatcher.
    pub dispatches: u64,
    /// Blocks recorded for the interpreter tier.
    pub blocks_recorded: u64,
    /// Guest instructions in those blocks.
    pub guest_insns_recorded: u64,
    /// Nanoseconds decoding and recording them.
    pub record_ns: u64,
    /// Blocks handed to the background compiler.
    pub background_jobs: u64,
}

impl Counters {
    /// Nanoseconds translating (IR build and Cranelift).
    pub fn translation_ns(&self) -> u64 {
        self.translate_ns + self.compile_ns
    }
}

/// What one run reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunReport {
    /// Nanoseconds creating the VM and loading the image.
    pub setup_ns: u64,
    /// Nanoseconds in [`Vm::run`].
    pub run_ns: u64,
    /// Whether the guest exited through isa-debug-exit with 0.
    pub clean_exit: bool,
    /// The counters after the run.
    pub counters: Counters,
    /// How the run ended ([`RunOutcome`]'s text, on one line).
    pub outcome: String,
}

impl RunReport {
    /// The report as the child prints it.
    pub fn to_line(&self) -> String {
        let c = &self.counters;
        let mut s = format!(
            "{MARKER} setup_ns={} run_ns={} clean_exit={}",
            self.setup_ns, self.run_ns, self.clean_exit as u8
        );
        for (k, v) in [
            ("guest_insns", c.guest_insns),
            ("blocks_translated", c.blocks_translated),
            ("guest_insns_translated", c.guest_insns_translated),
            ("ir_insts", c.ir_insts),
            ("translate_ns", c.translate_ns),
            ("compile_ns", c.compile_ns),
            ("code_bytes", c.code_bytes),
            ("dispatches", c.dispatches),
            ("blocks_recorded", c.blocks_recorded),
            ("guest_insns_recorded", c.guest_insns_recorded),
            ("record_ns", c.record_ns),
            ("background_jobs", c.background_jobs),
        ] {
            let _ = write!(s, " {k}={v}");
        }
        let _ = write!(s, " outcome={}", self.outcome.replace(['\n', '\r'], " "));
        s
    }

    /// Finds and parses the report line in a child's stdout.
    pub fn parse(stdout: &str) -> Option<RunReport> {
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix(MARKER)?.strip_prefix(' '))?;
        let (fields, outcome) = line.split_once(" outcome=")?;
        let mut r = RunReport {
            setup_ns: 0,
            run_ns: 0,
            clean_exit: false,
            counters: Counters::default(),
            outcome: outcome.to_owned(),
        };
        for field in fields.split(' ') {
            let (k, v) = field.split_once('=')?;
            let v: u64 = v.parse().ok()?;
            let c = &mut r.counters;
            match k {
                "setup_ns" => r.setup_ns = v,
                "run_ns" => r.run_ns = v,
                "clean_exit" => r.clean_exit = v != 0,
                "guest_insns" => c.guest_insns = v,
                "blocks_translated" => c.blocks_translated = v,
                "guest_insns_translated" => c.guest_insns_translated = v,
                "ir_insts" => c.ir_insts = v,
                "translate_ns" => c.translate_ns = v,
                "compile_ns" => c.compile_ns = v,
                "code_bytes" => c.code_bytes = v,
                "dispatches" => c.dispatches = v,
                "blocks_recorded" => c.blocks_recorded = v,
                "guest_insns_recorded" => c.guest_insns_recorded = v,
                "record_ns" => c.record_ns = v,
                "background_jobs" => c.background_jobs = v,
                _ => return None,
            }
        }
        Some(r)
    }
}

/// What the parent asks of a child run.
#[derive(Clone, Debug)]
pub struct RunRequest {
    /// The guest image.
    pub image: PathBuf,
    /// The engine.
    pub engine: Engine,
    /// `dbt`'s tier-up threshold, if not its default.
    pub compile_after: Option<u32>,
    /// Guest RAM in bytes.
    pub mem_bytes: u64,
    /// Guest instruction limit, if any.
    pub max_insns: Option<u64>,
    /// Where the child writes the guest's serial output.
    pub serial_out: PathBuf,
}

/// The hidden command-line arguments that make the harness binary run `req` as a child.
pub fn child_args(req: &RunRequest) -> Vec<String> {
    let mut args = vec![
        "--child-run".to_owned(),
        req.image.display().to_string(),
        "--child-serial-out".to_owned(),
        req.serial_out.display().to_string(),
        "--engines".to_owned(),
        req.engine.name().to_owned(),
        "--mem-mib".to_owned(),
        (req.mem_bytes >> 20).to_string(),
    ];
    if let Some(n) = req.max_insns {
        args.extend(["--max-insns".to_owned(), n.to_string()]);
    }
    if let Some(n) = req.compile_after {
        args.extend(["--compile-after".to_owned(), n.to_string()]);
    }
    args
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The child's side: run `req` once and write its serial output; the report, or what made
/// the run impossible.
pub fn run_in_child(req: &RunRequest) -> Result<RunReport, String> {
    let image = std::fs::read(&req.image).map_err(|e| format!("{}: {e}", req.image.display()))?;
    let tiering = req.compile_after.map(|n| Tiering {
        compile_after: n,
        ..req.engine.tiering()
    });
    let t0 = Instant::now();
    let mut vm = Vm::new(VmConfig {
        mem_bytes: req.mem_bytes,
        engine: req.engine,
        tiering,
        serial: SerialSink::Capture,
        instruction_limit: req.max_insns,
        ..VmConfig::default()
    })
    .map_err(|e| format!("cannot create the VM: {e}"))?;
    vm.load_elf(&image)
        .map_err(|e| format!("cannot load {}: {e}", req.image.display()))?;
    let t1 = Instant::now();
    let outcome = vm.run();
    let t2 = Instant::now();
    std::fs::write(&req.serial_out, vm.serial_output())
        .map_err(|e| format!("{}: {e}", req.serial_out.display()))?;
    let stats = vm.stats();
    let d = &stats.dbt;
    Ok(RunReport {
        setup_ns: nanos(t1 - t0),
        run_ns: nanos(t2 - t1),
        clean_exit: outcome == RunOutcome::DebugExit(0),
        counters: Counters {
            guest_insns: stats.guest_insns,
            blocks_translated: d.blocks_translated,
            guest_insns_translated: d.guest_insns_translated,
            ir_insts: d.ir_insts,
            translate_ns: d.translate_ns,
            compile_ns: d.compile_ns,
            code_bytes: d.code_bytes,
            dispatches: d.dispatches,
            blocks_recorded: d.tier.blocks_recorded,
            guest_insns_recorded: d.tier.guest_insns_recorded,
            record_ns: d.tier.record_ns,
            background_jobs: d.tier.background_jobs,
        },
        outcome: outcome.to_string(),
    })
}

/// The last `n` characters of `s` (on a character boundary).
fn tail(s: &str, n: usize) -> &str {
    let start = s.len().saturating_sub(n);
    let start = (start..=s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    &s[start..]
}

/// The parent's side: run `req` in a child process of `exe`, killing it after `timeout`;
/// the report and the guest's serial output, or why there is none.
pub fn run_isolated(
    exe: &Path,
    req: &RunRequest,
    timeout: Duration,
) -> Result<(RunReport, Vec<u8>), String> {
    let _ = std::fs::remove_file(&req.serial_out);
    let mut child = Command::new(exe)
        .args(child_args(req))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    // Drain the pipes on threads so a chatty child cannot block on a full pipe.
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped")));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("waiting for the run: {e}")),
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    let Some(status) = status else {
        return Err(format!("TIMEOUT: killed after {} s", timeout.as_secs()));
    };
    match RunReport::parse(&stdout) {
        Some(report) => {
            let output = std::fs::read(&req.serial_out)
                .map_err(|e| format!("{}: {e}", req.serial_out.display()))?;
            let _ = std::fs::remove_file(&req.serial_out);
            Ok((report, output))
        }
        None => {
            use std::os::unix::process::ExitStatusExt as _;
            let how = match (status.code(), status.signal()) {
                (_, Some(sig)) => format!("CRASHED: killed by signal {sig}"),
                (Some(code), _) => format!("the run failed (exit status {code})"),
                _ => format!("the run failed ({status})"),
            };
            Err(format!("{how}; stderr: {}", tail(stderr.trim(), 300)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_line_round_trips() {
        let r = RunReport {
            setup_ns: 1,
            run_ns: 2,
            clean_exit: true,
            counters: Counters {
                guest_insns: 3,
                blocks_translated: 4,
                guest_insns_translated: 5,
                ir_insts: 6,
                translate_ns: 7,
                compile_ns: 8,
                code_bytes: 9,
                dispatches: 10,
                blocks_recorded: 11,
                guest_insns_recorded: 12,
                record_ns: 13,
                background_jobs: 14,
            },
            outcome: "unsupported instruction at rip 0x1000 [0f 0b]: ud2 x=1".into(),
        };
        let out = format!("noise\n{}\nmore noise\n", r.to_line());
        assert_eq!(RunReport::parse(&out), Some(r));
        assert_eq!(RunReport::parse("RUN garbage"), None);
    }

    #[test]
    fn tail_respects_char_boundaries() {
        assert_eq!(tail("abcdef", 3), "def");
        assert_eq!(tail("ab", 5), "ab");
        assert_eq!(tail("aµb", 2), "b");
    }
}
