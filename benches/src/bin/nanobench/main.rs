//! `nanobench`: the nanobenchmarks of Adams & Agesen (ASPLOS 2006) — syscall round trip, IN
//! from port 0x80, MOV to CR8, call/ret, a guest-handled page fault, divide-by-zero, PTE
//! modification, plus CLI/STI, POPF and MOV CR3 — run as a guest kernel
//! (`testsuite/kernels/nanobench.c`) under popek's engines and under
//! `qemu-system-x86_64 -accel tcg`, printed as one table of host cycles per operation.
//!
//! ```text
//! cargo run --release -p benches --bin nanobench -- \
//!     [--engines dbt,trap,interp,qemu] [--runs R] [--json PATH] [--timeout SECS]
//! ```
//!
//! The Markdown table goes to stdout, progress to stderr, the JSON (host information,
//! per-column medians, every raw run) to `--json` (default `target/nanobench.json`). A column
//! whose runs fail (nonzero guest exit, crash, timeout, missing tool) shows `—`, with the
//! reason below the table and in the JSON. See `benches/README.md` for what each op measures.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

mod measure;
mod report;

use measure::{host_cpu, host_tsc_ghz, popek_binary, run_once, Column};
use report::{json, markdown, ColumnResult, Host};

/// Nanobenchmarks: host cycles per sensitive operation, popek engines vs QEMU TCG.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Comma-separated columns: dbt, trap, interp, qemu.
    #[arg(long, value_delimiter = ',', default_value = "dbt,trap,interp,qemu")]
    engines: Vec<String>,
    /// Runs per column; the table shows the median per op.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Where to write the JSON results (default: <workspace>/target/nanobench.json).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Wall-clock limit of one run, in seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

fn default_json_path() -> PathBuf {
    testsuite::kernels::output_dir()
        .parent()
        .map(|target| target.join("nanobench.json"))
        .unwrap_or_else(|| PathBuf::from("nanobench.json"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let columns: Result<Vec<Column>, String> = args
        .engines
        .iter()
        .map(|e| {
            Column::parse(e)
                .ok_or_else(|| format!("unknown engine {e:?} (dbt, trap, interp, qemu)"))
        })
        .collect();
    let columns = match columns {
        Ok(c) if !c.is_empty() => c,
        Ok(_) => {
            eprintln!("nanobench: no engines");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("nanobench: {e}");
            return ExitCode::from(2);
        }
    };
    let runs = args.runs.max(1);
    let timeout = Duration::from_secs(args.timeout.max(1));

    eprintln!("nanobench: measuring the host TSC rate");
    let host = Host {
        cpu: host_cpu(),
        tsc_ghz: host_tsc_ghz(),
        runs,
    };
    eprintln!("nanobench: {} GHz TSC on {}", host.tsc_ghz, host.cpu);

    let image = testsuite::kernels::build_kernel("nanobench").map_err(|e| e.to_string());
    let popek = if columns.iter().any(|c| matches!(c, Column::Popek(_))) {
        Some(popek_binary())
    } else {
        None
    };

    let mut results = Vec::new();
    for &column in &columns {
        let setup = image.clone().and_then(|image| match (column, &popek) {
            (Column::Popek(_), Some(Err(e))) => Err(e.clone()),
            (Column::Popek(_), Some(Ok(p))) => Ok((image, p.clone())),
            _ => Ok((image, PathBuf::new())),
        });
        let (image, popek) = match setup {
            Ok(x) => x,
            Err(e) => {
                eprintln!("nanobench: {}: {e}", column.name());
                results.push(ColumnResult {
                    column,
                    runs: Vec::new(),
                    failure: Some(e),
                });
                continue;
            }
        };
        let mut col = ColumnResult {
            column,
            runs: Vec::new(),
            failure: None,
        };
        for i in 0..runs {
            let run = run_once(column, &image, &popek, timeout);
            eprintln!(
                "nanobench: {} run {}/{runs}: {:.1} s{}",
                column.name(),
                i + 1,
                run.wall.as_secs_f64(),
                run.failure
                    .as_deref()
                    .map_or(String::new(), |f| format!(", FAILED: {f}"))
            );
            // A first run that timed out or measured nothing would do the same again; one that
            // died at some op still measured the ops before it, so the others run too.
            let hopeless = run.timed_out || (run.failure.is_some() && run.samples.is_empty());
            col.runs.push(run);
            if hopeless && i == 0 {
                break;
            }
        }
        results.push(col);
    }

    println!("{}", markdown(&results, &host));
    let path = args.json.unwrap_or_else(default_json_path);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::write(&path, json(&results, &host)) {
        Ok(()) => eprintln!("nanobench: wrote {}", path.display()),
        Err(e) => {
            eprintln!("nanobench: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
