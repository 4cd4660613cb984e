//! `difftest`: the differential tester against the host CPU.
//!
//! ```text
//! cargo run --release -p testsuite --bin difftest -- --engine both --cases 10000000
//! cargo run --release -p testsuite --bin difftest -- --engine interp --filter shl --cases 20000
//! cargo run --release -p testsuite --bin difftest -- --engine jit --seed 7 --case 1234
//! cargo run --release -p testsuite --bin difftest -- --engine all --filter fp --cases 100000
//! ```
//!
//! Prints progress, detailed reports of the first mismatches, a table of failures by mnemonic,
//! and one summary line per engine of the exact form `ENGINE: N passed, M failed`. Exits
//! with status 1 if anything failed.

use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use runtime::Engine;
use testsuite::diff::{forms, run, Options};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum EngineArg {
    /// Tiered: blocks start in the interpreter tier and compile when hot.
    Dbt,
    /// Every block compiled with Cranelift.
    Jit,
    /// The interpreter tier only.
    Interp,
    Trap,
    /// interp and jit (each tier on its own).
    Both,
    /// interp, jit, dbt and trap.
    All,
}

/// Differential tester: random instances of every supported instruction form, run on the
/// host CPU and in popek's engines, compared register for register.
#[derive(Parser, Debug)]
#[command(name = "difftest")]
struct Args {
    /// Engine(s) to test against the host.
    #[arg(long, value_enum, default_value = "both")]
    engine: EngineArg,
    /// Number of cases.
    #[arg(long, default_value_t = 100_000)]
    cases: u64,
    /// Run seed (cases are a function of the seed, the index and the filter).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Only these forms: comma-separated mnemonics (`shl,sar`, `addps`), families (`alu flags
    /// muldiv shift bits data nop stack branch string x87 mmx sse sseint ssefp sseconv ssestr
    /// fpstate`), `fp` (every floating-point and vector family), `int` (every other one),
    /// `jcc`/`setcc`/`cmovcc`, or iced Code names; a `-term` removes what it matches
    /// (`fp,-minps`).
    #[arg(long)]
    filter: Option<String>,
    /// Run only the case with this index (prints its full report even if it passes).
    #[arg(long)]
    case: Option<u64>,
    /// Index of the first case.
    #[arg(long, default_value_t = 0)]
    first: u64,
    /// Stop at the first failing case.
    #[arg(long)]
    stop_on_first: bool,
    /// Detailed mismatch reports to print per engine.
    #[arg(long, default_value_t = 5)]
    reports: usize,
    /// Consecutive cases sharing one instruction encoding (the DBT translates each group
    /// once; 1 = a fresh encoding and translation for every case).
    #[arg(long, default_value_t = 4)]
    variants: u64,
    /// Print the full report of every case, passing or not.
    #[arg(long)]
    verbose: bool,
    /// List the forms the filter selects and exit.
    #[arg(long)]
    list: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.list {
        match forms::select(args.filter.as_deref()) {
            Ok(fs) => {
                for f in &fs {
                    println!(
                        "{:<10} {:<8} {:?}",
                        forms::mnemonic_name(f.mnemonic()),
                        f.family.name(),
                        f.code
                    );
                }
                println!("{} forms", fs.len());
                return ExitCode::SUCCESS;
            }
            Err(e) => {
                eprintln!("difftest: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let engines = match args.engine {
        EngineArg::Dbt => vec![Engine::Dbt],
        EngineArg::Jit => vec![Engine::Jit],
        EngineArg::Interp => vec![Engine::Interp],
        EngineArg::Trap => vec![Engine::Trap],
        EngineArg::Both => vec![Engine::Interp, Engine::Jit],
        EngineArg::All => Engine::ALL.to_vec(),
    };
    let (first, cases) = match args.case {
        Some(i) => (i, 1),
        None => (args.first, args.cases),
    };
    let opts = Options {
        engines,
        cases,
        seed: args.seed,
        first,
        filter: args.filter.clone(),
        stop_on_first: args.stop_on_first,
        max_reports: if args.case.is_some() { 1 } else { args.reports },
        progress: true,
        variants: args.variants.max(1),
        verbose: args.verbose || args.case.is_some(),
    };
    let mut err = std::io::stderr();
    eprintln!("difftest: host {}", testsuite::diff::report::host_cpu());
    let summary = match run(&opts, &mut err) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("difftest: {e}");
            return ExitCode::from(2);
        }
    };
    let secs = summary.total_time.as_secs_f64();
    println!(
        "{} cases in {secs:.1} s ({:.0} cases/s overall; native {:.1} s, generation {:.1} s)",
        summary.cases,
        summary.cases as f64 / secs.max(1e-9),
        summary.native_time.as_secs_f64(),
        summary.generate_time.as_secs_f64()
    );
    for e in &summary.engines {
        print!("{}", e.family_table());
        if e.failed > 0 {
            print!("{}", e.failure_table());
        }
        println!(
            "{}: {:.1} s in the VM, {:.0} cases/s",
            e.engine.name(),
            e.time.as_secs_f64(),
            e.rate()
        );
    }
    for e in &summary.engines {
        println!("{}", e.line());
    }
    if summary.all_passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
