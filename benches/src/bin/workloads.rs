//! `workloads`: runs every guest program natively, its native twin under QEMU's user-mode
//! emulator (`qemu-x86_64`, where installed), and the guest under popek's engines, checks that
//! the outputs agree, and prints a Markdown table of times, ratios, speeds and translation
//! costs.
//!
//! ```text
//! cargo run --release -p benches --bin workloads -- [--scale N] [--runs R] \
//!     [--guests a,b] [--engines dbt,jit,interp,trap] [--compile-after N[,N...]] \
//!     [--cold-scale N] [--json FILE] [--interp-runs R2] [--interp-scale N2] \
//!     [--timeout SECS] [--max-insns N] [--mem-mib M] [--qemu PATH | --no-qemu]
//! ```
//!
//! `--compile-after` with several values sweeps the dbt engine's tier-up threshold: one dbt
//! column per value (`dbt@1`, `dbt@10`, ...).
//!
//! Every engine run happens in a child process (this same binary, with hidden `--child-run`
//! arguments), so a run that hangs or crashes is reported and the harness goes on.
//!
//! Exits with status 1 if any engine's output differs from the native output (or a guest
//! could not be built or run, or a run crashed or timed out), 2 on bad arguments.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::time::Duration;

use benches::workloads::isolated::{run_in_child, RunRequest};
use benches::workloads::report::{json, markdown};
use benches::workloads::{measure_guest, Options, Variant};
use clap::Parser;
use runtime::Engine;
use testsuite::guests::{all, by_name, Guest};

/// Guest workloads: native and QEMU user mode vs popek's engines.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Work multiplier of the guest builds (-DSCALE); native runs take about a millisecond
    /// per unit.
    #[arg(long, default_value_t = 1)]
    scale: u32,
    /// Timed runs per guest and engine; medians are reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Timed runs per guest under the interpreter (default: --runs).
    #[arg(long)]
    interp_runs: Option<usize>,
    /// Scale the interpreter runs at (default: --scale). If different, its times are
    /// extrapolated to --scale by instruction count, and marked `~`.
    #[arg(long)]
    interp_scale: Option<u32>,
    /// Comma-separated guest names (default: all).
    #[arg(long, value_delimiter = ',')]
    guests: Vec<String>,
    /// Comma-separated engines: dbt, jit, interp, trap.
    #[arg(long, value_delimiter = ',', default_value = "dbt,jit,interp")]
    engines: Vec<String>,
    /// Comma-separated tier-up thresholds of the dbt engine (runs in the interpreter tier
    /// before a block is compiled): one dbt column per value. Default: the engine's own (200).
    #[arg(long, value_delimiter = ',')]
    compile_after: Vec<u32>,
    /// Scale of the cold-code guests (testsuite::guests::COLD: code that runs a few times,
    /// which --scale would make hot), for native, QEMU and every engine.
    #[arg(long, default_value_t = 1)]
    cold_scale: u32,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Guest RAM per VM, in MiB.
    #[arg(long, default_value_t = 64)]
    mem_mib: u64,
    /// Wall-clock limit of one engine run, in seconds; a run over it is killed and reported.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Guest instruction limit of one engine run (a runaway guest then fails cleanly).
    #[arg(long)]
    max_insns: Option<u64>,
    /// QEMU's user-mode emulator to time the native twins under (a name is looked up in
    /// PATH); if it is not found, the qemu columns show `-`.
    #[arg(long, default_value = "qemu-x86_64")]
    qemu: PathBuf,
    /// Leave out the qemu-x86_64 runs.
    #[arg(long)]
    no_qemu: bool,
    /// (Internal) run this guest image once under the one engine of --engines and report.
    #[arg(long, hide = true)]
    child_run: Option<PathBuf>,
    /// (Internal) where the child run writes the guest's serial output.
    #[arg(long, hide = true)]
    child_serial_out: Option<PathBuf>,
}

/// The child side of an isolated run: exit status 0 with a report line on stdout, or 3.
fn child(args: &Args, image: &Path, engines: &[Variant]) -> ExitCode {
    let (Some(serial_out), [engine]) = (&args.child_serial_out, engines) else {
        eprintln!("workloads: --child-run needs --child-serial-out and one engine");
        return ExitCode::from(2);
    };
    let req = RunRequest {
        image: image.to_owned(),
        engine: engine.engine,
        compile_after: engine.compile_after,
        mem_bytes: args.mem_mib << 20,
        max_insns: args.max_insns,
        serial_out: serial_out.clone(),
    };
    match run_in_child(&req) {
        Ok(report) => {
            println!("{}", report.to_line());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("workloads: {e}");
            ExitCode::from(3)
        }
    }
}

fn engine(name: &str) -> Result<Engine, String> {
    Engine::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Engine::ALL.iter().map(|e| e.name()).collect();
        format!("unknown engine {name:?} ({})", names.join(", "))
    })
}

/// `program` if it is a path to a file, else the first executable file of that name in PATH.
fn find_program(program: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.components().count() > 1 {
        return executable(program).then(|| program.to_owned());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| executable(p))
}

fn guests(names: &[String]) -> Result<Vec<&'static Guest>, String> {
    if names.is_empty() {
        return Ok(all().iter().collect());
    }
    names
        .iter()
        .map(|n| {
            by_name(n).ok_or_else(|| {
                let known: Vec<&str> = all().iter().map(|g| g.name).collect();
                format!("unknown guest {n:?} (known: {})", known.join(", "))
            })
        })
        .collect()
}

fn main() -> ExitCode {
    let args = Args::parse();
    let setup = guests(&args.guests).and_then(|g| {
        let mut variants = Vec::new();
        for name in &args.engines {
            match engine(name)? {
                Engine::Dbt if !args.compile_after.is_empty() => {
                    variants.extend(args.compile_after.iter().map(|&n| Variant {
                        engine: Engine::Dbt,
                        compile_after: Some(n),
                    }))
                }
                e => variants.push(Variant::of(e)),
            }
        }
        Ok((g, variants))
    });
    let (guests, engines) = match setup {
        Ok(x) => x,
        Err(e) => {
            eprintln!("workloads: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(image) = &args.child_run {
        return child(&args, image, &engines);
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("workloads: cannot find my own executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    let tmp_dir = std::env::temp_dir().join(format!("popek-workloads-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&tmp_dir) {
        eprintln!("workloads: cannot create {}: {e}", tmp_dir.display());
        return ExitCode::FAILURE;
    }
    let opts = Options {
        scale: args.scale,
        runs: args.runs.max(1),
        interp_runs: args.interp_runs.unwrap_or(args.runs).max(1),
        interp_scale: args.interp_scale.unwrap_or(args.scale),
        cold_scale: args.cold_scale.max(1),
        engines,
        mem_bytes: args.mem_mib << 20,
        max_insns: args.max_insns,
        timeout: Duration::from_secs(args.timeout.max(1)),
        exe,
        tmp_dir: tmp_dir.clone(),
        qemu: if args.no_qemu {
            None
        } else {
            find_program(&args.qemu)
        },
    };
    if opts.qemu.is_none() && !args.no_qemu {
        eprintln!(
            "workloads: {} not found; the qemu columns will be empty (apt-get install qemu-user)",
            args.qemu.display()
        );
    }
    let columns: Vec<String> = opts.engines.iter().map(Variant::name).collect();
    eprintln!(
        "workloads: {} guests, scale {} (cold-code guests {}), {} runs each (interp: {} at scale {}), engines {}, qemu {}",
        guests.len(),
        opts.scale,
        opts.cold_scale,
        opts.runs,
        opts.interp_runs,
        opts.interp_scale,
        columns.join(","),
        opts.qemu
            .as_ref()
            .map_or("-".to_owned(), |p| p.display().to_string())
    );

    let mut results = Vec::new();
    for g in guests {
        let r = measure_guest(g, &opts, &mut |step| eprintln!("  {step}"));
        if let Some(e) = &r.error {
            eprintln!("!!! ERROR {}: {e}", g.name);
        }
        for e in r.engines.iter().filter(|e| !e.ok) {
            eprintln!(
                "!!! MISMATCH {} on {}: {}",
                g.name,
                e.engine.name(),
                e.problem.as_deref().unwrap_or("?")
            );
        }
        results.push(r);
    }
    let _ = std::fs::remove_dir_all(&tmp_dir);

    println!();
    let interp = if !opts.engines.iter().any(|v| v.engine == Engine::Interp) {
        String::new()
    } else if opts.interp_scale != opts.scale {
        format!(
            " ({} under interp, at scale {})",
            opts.interp_runs, opts.interp_scale
        )
    } else if opts.interp_runs != opts.runs {
        format!(" ({} under interp)", opts.interp_runs)
    } else {
        String::new()
    };
    println!(
        "Guest workloads, scale {} (cold-code guests: {}), median of {} runs{interp} (engine \
         times: Vm::run only; native and qemu: process wall time)\n",
        opts.scale, opts.cold_scale, opts.runs
    );
    print!("{}", markdown(&results, &opts));
    let _ = std::io::stdout().flush();

    if let Some(path) = &args.json {
        if let Err(e) = std::fs::write(path, json(&results, &opts)) {
            eprintln!("workloads: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }

    let failed: Vec<&str> = results.iter().filter(|r| !r.ok()).map(|r| r.name).collect();
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "\n!!! MISMATCH or ERROR in {} guest(s): {}",
            failed.len(),
            failed.join(", ")
        );
        ExitCode::FAILURE
    }
}
