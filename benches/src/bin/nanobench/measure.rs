//! Running the `nanobench` kernel and turning its output into host cycles per operation.
//!
//! The kernel prints `~bench <op> <iterations> <net ticks> <empty-loop ticks>` per op (see
//! `testsuite/kernels/nanobench.c`); ticks are the guest's TSC. A column's guest TSC rate is
//! what converts them: popek's virtual TSC counts at 1 GHz (`runtime::tsc::TSC_HZ`), QEMU
//! TCG's RDTSC returns the host TSC. Host cycles here means host TSC ticks, whose rate
//! [`host_tsc_ghz`] measures.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use testsuite::kernels::{self, KernelRun};

/// The operations, in table order, with what one iteration is (for the README and JSON).
pub const OPS: &[(&str, &str)] = &[
    (
        "syscall",
        "SYSCALL from CPL 3 to a handler that is one SYSRETQ",
    ),
    ("in80", "IN AL, 0x80"),
    ("cr8", "MOV CR8, reg (alternating 1 and 0)"),
    ("callret", "CALL to a function that is one RET"),
    (
        "pgfault",
        "PTE P cleared + INVLPG, a load: #PF, handler sets P, IRETQ, load again",
    ),
    ("divzero", "DIV by zero: #DE, handler skips the DIV, IRETQ"),
    ("ptemod", "store to a 4 KiB PTE + INVLPG"),
    ("clisti", "CLI; STI"),
    ("popf", "PUSHFQ; POPFQ"),
    ("cr3", "MOV CR3 with the same value"),
];

/// Where a column's numbers come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    /// `popek run --engine <name>`.
    Popek(&'static str),
    /// `qemu-system-x86_64 -accel tcg`.
    Qemu,
}

impl Column {
    /// The column named `name` on the command line (`dbt`, `trap`, `interp`, `qemu`).
    pub fn parse(name: &str) -> Option<Column> {
        match name {
            "dbt" => Some(Column::Popek("dbt")),
            "trap" => Some(Column::Popek("trap")),
            "interp" => Some(Column::Popek("interp")),
            "qemu" | "qemu-tcg" => Some(Column::Qemu),
            _ => None,
        }
    }

    /// The column's heading.
    pub fn name(self) -> &'static str {
        match self {
            Column::Popek(engine) => engine,
            Column::Qemu => "qemu-tcg",
        }
    }

    /// Host TSC ticks per guest TSC tick.
    pub fn host_ticks_per_guest_tick(self, host_tsc_ghz: f64) -> f64 {
        match self {
            Column::Popek(_) => host_tsc_ghz * 1e9 / runtime::tsc::TSC_HZ as f64,
            Column::Qemu => 1.0,
        }
    }
}

/// One op's line of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The op's name.
    pub op: String,
    /// Loop iterations.
    pub iterations: u64,
    /// Guest TSC ticks of the op loop minus the empty loop.
    pub net_ticks: u64,
    /// Guest TSC ticks of the empty loop (already subtracted).
    pub empty_ticks: u64,
}

impl Sample {
    /// Host cycles per operation.
    pub fn cycles_per_op(&self, host_per_guest_tick: f64) -> f64 {
        self.net_ticks as f64 * host_per_guest_tick / self.iterations.max(1) as f64
    }
}

/// One run of the kernel.
#[derive(Clone, Debug)]
pub struct Run {
    /// Its samples (whatever it printed, even if it then failed).
    pub samples: Vec<Sample>,
    /// Why the run failed, if it did. Its samples still count: each `~bench` line is complete
    /// when printed, so a kernel that dies at one op has measured the ops before it.
    pub failure: Option<String>,
    /// The run was killed at the timeout.
    pub timed_out: bool,
    /// Wall time of the emulator process.
    pub wall: Duration,
}

/// The `~bench` lines of a transcript.
pub fn parse_samples(serial: &str) -> Vec<Sample> {
    serial
        .lines()
        .filter_map(|line| {
            let mut f = line.strip_prefix("~bench ")?.split_whitespace();
            let op = f.next()?.to_owned();
            let iterations = f.next()?.parse().ok()?;
            let net_ticks = f.next()?.parse().ok()?;
            let empty_ticks = f.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            Some(Sample {
                op,
                iterations,
                net_ticks,
                empty_ticks,
            })
        })
        .collect()
}

/// Why a finished run does not count, if it does not.
fn judge(run: &KernelRun, timeout: Duration) -> Option<String> {
    let last_stderr = || {
        let tail: Vec<&str> = run.stderr.lines().rev().take(3).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        if tail.is_empty() {
            String::new()
        } else {
            format!(": {}", tail.join(" / "))
        }
    };
    if run.timed_out {
        return Some(format!("timed out after {} s", timeout.as_secs()));
    }
    if run.exit_code != Some(0) {
        // Status (code << 1) | 1 is the guest's exit(code), but an emulator's own error
        // status may look the same (popek exits 3 on an unsupported instruction).
        let last_serial = run.serial.lines().last().unwrap_or("");
        return Some(format!(
            "exit status {} (last serial line {last_serial:?}){}",
            run.status
                .map_or("none (a signal?)".to_owned(), |s| s.to_string()),
            last_stderr()
        ));
    }
    let samples = parse_samples(&run.serial);
    let missing: Vec<&str> = OPS
        .iter()
        .map(|&(op, _)| op)
        .filter(|op| !samples.iter().any(|s| s.op == *op))
        .collect();
    (!missing.is_empty()).then(|| format!("no result for {}", missing.join(", ")))
}

/// Run `image` once in `column`.
pub fn run_once(column: Column, image: &Path, popek: &Path, timeout: Duration) -> Run {
    let start = Instant::now();
    let result = match column {
        Column::Qemu => kernels::run_qemu(image, timeout).map_err(|e| e.to_string()),
        Column::Popek(engine) => run_popek(popek, image, engine, timeout),
    };
    let wall = start.elapsed();
    match result {
        Ok(run) => Run {
            samples: parse_samples(&run.serial),
            failure: judge(&run, timeout),
            timed_out: run.timed_out,
            wall,
        },
        Err(e) => Run {
            samples: Vec::new(),
            failure: Some(e),
            timed_out: false,
            wall,
        },
    }
}

/// `popek run --mem 128M --engine ENGINE --kernel IMAGE` with this harness's binary.
fn run_popek(
    popek: &Path,
    image: &Path,
    engine: &str,
    timeout: Duration,
) -> Result<KernelRun, String> {
    kernels::run_popek_with(popek, image, engine, timeout).map_err(|e| e.to_string())
}

/// The release `popek` binary next to this executable, rebuilt with cargo first (a no-op
/// when it is fresh). A failed build falls back to an existing binary, with a warning.
pub fn popek_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let dir = exe.parent().ok_or("no directory for current_exe")?;
    // `target/release/nanobench`, or `target/release/deps/nanobench-<hash>` under cargo test.
    let dir = if dir.ends_with("deps") {
        dir.parent().unwrap_or(dir)
    } else {
        dir
    };
    let binary = dir.join("popek");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut args = vec!["build", "-q", "-p", "runtime", "--bin", "popek"];
    if dir.file_name().is_some_and(|n| n == "release") {
        args.push("--release");
    }
    eprintln!("nanobench: {cargo} {}", args.join(" "));
    let built = Command::new(&cargo)
        .args(&args)
        .status()
        .is_ok_and(|s| s.success());
    if binary.exists() {
        if !built {
            eprintln!(
                "nanobench: warning: building popek failed; using the existing {}",
                binary.display()
            );
        }
        Ok(binary)
    } else {
        Err(format!(
            "{} does not exist and could not be built",
            binary.display()
        ))
    }
}

/// The host TSC rate in GHz: `rdtsc` against `Instant` over ~100 ms, median of three.
pub fn host_tsc_ghz() -> f64 {
    let mut rates: Vec<f64> = (0..3)
        .map(|_| {
            let t0 = Instant::now();
            // SAFETY: RDTSC has no memory effects; it is available on every x86-64 CPU.
            let c0 = unsafe { core::arch::x86_64::_rdtsc() };
            while t0.elapsed() < Duration::from_millis(100) {
                std::hint::spin_loop();
            }
            // SAFETY: as above.
            let c1 = unsafe { core::arch::x86_64::_rdtsc() };
            let ns = t0.elapsed().as_nanos() as f64;
            c1.wrapping_sub(c0) as f64 / ns
        })
        .collect();
    median(&mut rates).unwrap_or(f64::NAN)
}

/// The host CPU's model name (`/proc/cpuinfo`), if known.
pub fn host_cpu() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The median (the mean of the middle two for an even count); `None` if empty.
pub fn median(xs: &mut [f64]) -> Option<f64> {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(xs[n / 2]),
        _ => Some((xs[n / 2 - 1] + xs[n / 2]) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bench_lines_and_ignores_the_rest() {
        let s = parse_samples(
            "nanobench: start\n~bench in80 200000 400 30\n~bench x 1\n~bench cr3 10 5\n",
        );
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].op, "in80");
        assert_eq!(
            (s[0].iterations, s[0].net_ticks, s[0].empty_ticks),
            (200000, 400, 30)
        );
        assert_eq!((s[1].op.as_str(), s[1].empty_ticks), ("cr3", 0));
    }

    #[test]
    fn converts_popek_ns_and_qemu_ticks() {
        let s = Sample {
            op: "x".into(),
            iterations: 1000,
            net_ticks: 50_000,
            empty_ticks: 0,
        };
        // popek: 50 ns per op at 2.5 GHz = 125 cycles; QEMU: 50 ticks per op.
        let popek = Column::Popek("dbt").host_ticks_per_guest_tick(2.5);
        assert!((s.cycles_per_op(popek) - 125.0).abs() < 1e-9);
        assert_eq!(
            s.cycles_per_op(Column::Qemu.host_ticks_per_guest_tick(2.5)),
            50.0
        );
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }
}
