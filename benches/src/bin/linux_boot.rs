//! `linux_boot`: boots Debian's kernel and the busybox initramfs of `testsuite/linux/fetch`
//! under popek's `dbt` engine and under `qemu-system-x86_64 -accel tcg -m 512M -nographic
//! -no-reboot`, in one run, and prints Markdown tables:
//!
//! - **boot**: wall time to the kernel's `Run /init` line and to `/init`'s `popek-init:
//!   ready`, and boot to power-off (`poweroff -f` typed at the first prompt), from process
//!   start for QEMU and from just before the VM is created for popek (which runs in this
//!   process through the `Vm` API, so its statistics need no `--stats` and generated code
//!   does not count its TLB hits); popek's guest instructions, blocks translated, translation
//!   time and time halted for that boot;
//! - **workloads**: commands typed into the shell of a second boot, each timed inside the
//!   guest (`/proc/uptime` before and after, 10 ms resolution): `sha256sum`, `md5sum` and `gzip` of a
//!   64 MiB file of `/dev/urandom` bytes in the guest's tmpfs, an `awk` floating-point loop,
//!   a fork+exec loop (`sh -c :`), a 1-byte `dd` loop (two system calls per byte); the same
//!   commands run natively with the same busybox binary on the host (its `/proc/uptime`),
//!   and the ratios popek/QEMU and popek/native.
//!
//! ```text
//! cargo run --release -p benches --bin linux_boot -- [--runs N] [--no-qemu] [--no-workloads]
//!     [--mib M] [--timeout SECS]
//! ```
//!
//! Exits with status 1 if a boot or a workload fails.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::{Command, ExitCode};
use std::time::Duration;

use clap::Parser;
use runtime::{Engine, RunOutcome};
use testsuite::linux::{self, sections, step, Kit, Section, Step, Timeline};

/// Linux boot and in-guest workloads: popek dbt vs QEMU TCG vs native.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Boots per configuration; medians are reported.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Skip QEMU.
    #[arg(long)]
    no_qemu: bool,
    /// Only the boot table.
    #[arg(long)]
    no_workloads: bool,
    /// Size of the file the sha256sum, md5sum and gzip workloads read, in MiB.
    #[arg(long, default_value_t = 64)]
    mib: u32,
    /// Longest boot with its conversation, in seconds.
    #[arg(long, default_value_t = 1800)]
    timeout: u64,
}

/// The in-guest workloads: name, what the table says, the command (`BIG` is the file).
const WORKLOADS: &[(&str, &str, &str)] = &[
    (
        "sha256",
        "`sha256sum` of the file",
        "sha256sum BIG > /dev/null",
    ),
    ("md5", "`md5sum` of the file", "md5sum BIG > /dev/null"),
    ("gzip", "`gzip -c` of the file", "gzip -c BIG > /dev/null"),
    (
        "awk",
        "`awk` float loop, 10^6 iterations",
        "awk 'BEGIN { s = 0; for (i = 1; i <= 1000000; i++) s += i * 0.5 / (i + 1.5); \
         printf \"%.6f\\n\", s }' > /dev/null",
    ),
    (
        "forkexec",
        "fork+exec loop, 200 × `sh -c :`",
        "i=0; while [ $i -lt 200 ]; do sh -c :; i=$((i + 1)); done",
    ),
    (
        "dd1",
        "`dd bs=1 count=100000` (2 syscalls per byte)",
        "dd if=/dev/zero of=/dev/null bs=1 count=100000 2> /dev/null",
    ),
];

/// `cmd` between two readings of `/proc/uptime`, printed as `@@T start end`.
fn timed(cmd: &str) -> String {
    format!("read a _ < /proc/uptime; {cmd}; read b _ < /proc/uptime; echo \"@@\"\"T $a $b\"")
}

/// The seconds between the `@@T` readings of a section.
fn seconds(s: &Section) -> Option<f64> {
    let line = s.output.lines().find(|l| l.starts_with("@@T "))?;
    let mut w = line.split_whitespace().skip(1);
    let a: f64 = w.next()?.parse().ok()?;
    let b: f64 = w.next()?.parse().ok()?;
    (s.status == 0).then_some(b - a)
}

fn workload_steps(big: &str, mib: u32) -> Vec<Step> {
    let mut steps = vec![step(
        "setup",
        &format!("dd if=/dev/urandom of={big} bs=1048576 count={mib} 2> /dev/null"),
    )];
    for (name, _, cmd) in WORKLOADS {
        steps.push(step(name, &timed(&cmd.replace("BIG", big))));
    }
    steps
}

/// One boot's measurements.
#[derive(Clone, Debug, Default)]
struct Boot {
    run_init: Option<f64>,
    ready: Option<f64>,
    total: f64,
    /// popek only: guest instructions, blocks translated, guest instructions translated,
    /// translation s (IR, Cranelift), halted s.
    stats: Option<(u64, u64, u64, f64, f64, f64)>,
    workloads: BTreeMap<String, f64>,
}

fn secs(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64())
}

fn workload_times(console: &[u8]) -> Result<BTreeMap<String, f64>, String> {
    let got = sections(console);
    WORKLOADS
        .iter()
        .map(|(name, _, _)| {
            let t = got.get(*name).and_then(seconds);
            t.map(|t| (name.to_string(), t))
                .ok_or_else(|| format!("workload {name} failed: {:?}", got.get(*name)))
        })
        .collect()
}

fn popek_boot(kit: &Kit, steps: &[Step], timeout: Duration) -> Result<Boot, String> {
    let kernel = std::fs::read(&kit.vmlinuz).map_err(|e| e.to_string())?;
    let initrd = std::fs::read(&kit.initramfs).map_err(|e| e.to_string())?;
    let b = linux::boot_in_process(Engine::Dbt, &kernel, &initrd, steps, timeout)
        .map_err(|e| e.to_string())?;
    let times: &Timeline = b.conversation.as_ref().map_err(|e| e.to_string())?;
    if b.outcome != RunOutcome::PowerOff {
        return Err(format!("popek: {} instead of a power-off", b.outcome));
    }
    let d = &b.stats.dbt;
    Ok(Boot {
        run_init: secs(times.run_init),
        ready: secs(times.ready),
        total: b.total.as_secs_f64(),
        stats: Some((
            b.stats.guest_insns,
            d.blocks_translated,
            d.guest_insns_translated,
            d.translate_ns as f64 / 1e9,
            d.compile_ns as f64 / 1e9,
            b.stats.halted_ns as f64 / 1e9,
        )),
        workloads: if steps.is_empty() {
            BTreeMap::new()
        } else {
            workload_times(&b.console)?
        },
    })
}

fn qemu_boot(kit: &Kit, steps: &[Step], timeout: Duration) -> Result<Boot, String> {
    let cmd = linux::qemu_command(&kit.vmlinuz, &kit.initramfs);
    let b = linux::boot_process(cmd, steps, timeout).map_err(|e| e.to_string())?;
    let times = b.conversation.as_ref().map_err(|e| e.to_string())?;
    if b.status != Some(0) {
        return Err(format!("QEMU exited with {:?}: {}", b.status, b.stderr));
    }
    Ok(Boot {
        run_init: secs(times.run_init),
        ready: secs(times.ready),
        total: b.total.as_secs_f64(),
        stats: None,
        workloads: if steps.is_empty() {
            BTreeMap::new()
        } else {
            workload_times(&b.console)?
        },
    })
}

/// The workloads run natively by the kit's busybox, in a scratch directory.
fn native(kit: &Kit, mib: u32) -> Result<BTreeMap<String, f64>, String> {
    let dir = std::env::temp_dir().join(format!("popek-linux-boot.{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let big = dir.join("big").to_string_lossy().into_owned();
    let mut script = String::new();
    for s in workload_steps(&big, mib) {
        let _ = writeln!(
            script,
            "echo @@BEGIN {0}; {{ {1}; }}; echo @@END {0} $?",
            s.name, s.command
        );
    }
    let out = Command::new(&kit.busybox)
        .args(["sh", "-c", &script])
        .output()
        .map_err(|e| e.to_string());
    let _ = std::fs::remove_dir_all(&dir);
    workload_times(&out?.stdout)
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    v.sort_by(f64::total_cmp);
    (!v.is_empty()).then(|| v[v.len() / 2])
}

fn med<T>(boots: &[Boot], f: impl Fn(&Boot) -> Option<T>) -> Option<f64>
where
    T: Into<f64>,
{
    median(boots.iter().filter_map(|b| f(b).map(Into::into)).collect())
}

/// A number drawn from a boot, for a table row.
type Column = fn(&Boot) -> Option<f64>;

fn cell(v: Option<f64>, unit: &str) -> String {
    v.map_or("-".into(), |v| format!("{v:.2}{unit}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.1}x", a / b),
        _ => "-".into(),
    }
}

fn report(
    popek: &[Boot],
    qemu: &[Boot],
    work_p: &[Boot],
    work_q: &[Boot],
    nat: &[BTreeMap<String, f64>],
    args: &Args,
) -> String {
    let mut out = String::new();
    let runs = args.runs;
    let _ = writeln!(
        out,
        "### Boot (median of {runs}; wall time, popek from VM creation, QEMU from process start)\n"
    );
    let _ = writeln!(
        out,
        "| | popek dbt | QEMU TCG | popek/QEMU |\n|---|---:|---:|---:|"
    );
    let rows: [(&str, Column); 3] = [
        ("kernel's `Run /init`", |b| b.run_init),
        ("`popek-init: ready`", |b| b.ready),
        (
            "boot to power-off (`poweroff -f` at the first prompt)",
            |b| Some(b.total),
        ),
    ];
    for (label, f) in rows {
        let (p, q) = (med(popek, f), med(qemu, f));
        let _ = writeln!(
            out,
            "| {label} | {} | {} | {} |",
            cell(p, " s"),
            cell(q, " s"),
            ratio(p, q)
        );
    }
    let stat = |i: usize| {
        med(popek, |b| {
            b.stats
                .map(|s| [s.0 as f64, s.1 as f64, s.2 as f64, s.3, s.4, s.5][i])
        })
    };
    let (insns, blocks, tinsns) = (stat(0), stat(1), stat(2));
    let (ir, cl, halted) = (stat(3), stat(4), stat(5));
    let total = med(popek, |b| Some(b.total));
    let _ = writeln!(
        out,
        "\npopek, boot to power-off: {:.0} guest instructions, {:.0} blocks translated ({:.0} guest \
         instructions), translation {:.1} s (IR {:.1} s, Cranelift {:.1} s: {:.0}% of the run, \
         {:.0} µs per guest instruction translated), halted {:.1} s.",
        insns.unwrap_or(0.0),
        blocks.unwrap_or(0.0),
        tinsns.unwrap_or(0.0),
        ir.unwrap_or(0.0) + cl.unwrap_or(0.0),
        ir.unwrap_or(0.0),
        cl.unwrap_or(0.0),
        100.0 * (ir.unwrap_or(0.0) + cl.unwrap_or(0.0)) / total.unwrap_or(f64::INFINITY),
        1e6 * (ir.unwrap_or(0.0) + cl.unwrap_or(0.0)) / tinsns.unwrap_or(f64::INFINITY),
        halted.unwrap_or(0.0),
    );
    if args.no_workloads {
        return out;
    }
    let _ = writeln!(
        out,
        "\n### In-guest workloads (seconds, timed in the guest; file {} MiB; median of {runs})\n",
        args.mib
    );
    let _ = writeln!(out, "| workload | native | QEMU TCG | popek dbt | popek/QEMU | popek/native |\n|---|---:|---:|---:|---:|---:|");
    for (name, label, _) in WORKLOADS {
        let n = median(nat.iter().filter_map(|m| m.get(*name).copied()).collect());
        let q = med(work_q, |b| b.workloads.get(*name).copied());
        let p = med(work_p, |b| b.workloads.get(*name).copied());
        let _ = writeln!(
            out,
            "| {label} | {} | {} | {} | {} | {} |",
            cell(n, ""),
            cell(q, ""),
            cell(p, ""),
            ratio(p, q),
            ratio(p, n)
        );
    }
    out
}

/// Keeps a boot's measurements, or says why it failed; false on failure.
fn record(what: &str, r: Result<Boot, String>, into: &mut Vec<Boot>) -> bool {
    match r {
        Ok(b) => {
            eprintln!(
                "linux_boot: {what}: Run /init at {}, total {:.1} s",
                cell(b.run_init, " s"),
                b.total
            );
            into.push(b);
            true
        }
        Err(e) => {
            eprintln!("linux_boot: {what} FAILED: {e}");
            false
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let kit = match linux::kit() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("linux_boot: {e}");
            return ExitCode::FAILURE;
        }
    };
    let timeout = Duration::from_secs(args.timeout);
    let work = workload_steps("/tmp/big", args.mib);
    let (mut popek, mut qemu, mut work_p, mut work_q, mut nat) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut failed = false;
    for run in 1..=args.runs {
        eprintln!("linux_boot: run {run}/{}", args.runs);
        if !args.no_qemu {
            failed |= !record("QEMU boot", qemu_boot(&kit, &[], timeout), &mut qemu);
        }
        failed |= !record("popek boot", popek_boot(&kit, &[], timeout), &mut popek);
        if args.no_workloads {
            continue;
        }
        if !args.no_qemu {
            failed |= !record(
                "QEMU workloads",
                qemu_boot(&kit, &work, timeout),
                &mut work_q,
            );
        }
        failed |= !record(
            "popek workloads",
            popek_boot(&kit, &work, timeout),
            &mut work_p,
        );
        match native(&kit, args.mib) {
            Ok(m) => nat.push(m),
            Err(e) => {
                eprintln!("linux_boot: native workloads FAILED: {e}");
                failed = true;
            }
        }
    }
    println!("{}", report(&popek, &qemu, &work_p, &work_q, &nat, &args));
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
