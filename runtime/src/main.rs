//! `popek`: run an x86-64 guest kernel on the popek virtual machine.
//!
//! `popek run --kernel F [--initrd F] [--append S] ...`, or QEMU's spelling of the same
//! (`popek -kernel F -initrd F -append S -m 512M -nographic -serial stdio -no-reboot
//! -accel tcg`; see `qemu_cli.rs`).
//!
//! stdout carries only the guest's serial output; popek's own messages and `--stats` go to
//! stderr. stdin is the guest's serial input (see `terminal.rs`: raw mode and QEMU's `Ctrl-A`
//! escape keys on a terminal, plain bytes from a pipe or file). Exit status (popek's own are even, so they never collide with the guest's odd
//! isa-debug-exit statuses):
//!
//! | status | meaning |
//! | --- | --- |
//! | `(v << 1) \| 1` | the guest wrote `v` to the isa-debug-exit port 0xF4 (always odd) |
//! | 0 | the guest powered off (ACPI S5) or halted (HLT with nothing to wake it) |
//! | 2 | bad input or usage: missing file, not a loadable kernel, bad `--mem`, ... |
//! | 4 | the guest executed an instruction popek does not support |
//! | 6 | the guest reset the machine (0xCF9, the i8042, the ACPI reset register) or triple-faulted: popek does not reboot (QEMU's `-no-reboot`) |
//! | 8 | an unhandled guest exception (raised before the guest loaded an IDT) |
//! | 10 | an internal error in popek |
//! | 12 | the `--max-insns` instruction limit was reached |
//! | 14 | `--timeout` stopped the guest |
//! | 128 + n | signal n (SIGINT, SIGTERM, SIGHUP, SIGQUIT) stopped the guest; a second one ends popek at once |
//!
//! `Ctrl-A x` on a terminal console ends popek with status 0, as QEMU's.

mod qemu_cli;
mod terminal;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use runtime::devices::DebugExit;
use runtime::engine::exit::halted_with_interrupts;
use runtime::engine::tier::Tiering;
use runtime::memory::{MAX_RAM, MIN_RAM, PAGE_SIZE};
use runtime::{
    register_dump, BootSpec, Engine, Initrd, RunOutcome, SerialSink, Vm, VmConfig, VmError,
};

/// Exit status for bad input or usage (clap uses it too).
const EXIT_USAGE: u8 = 2;
/// Exit status for an unsupported guest instruction (with `--stop-on-unsupported`).
const EXIT_UNSUPPORTED: u8 = 4;
/// Exit status for a reset request or a triple fault.
const EXIT_RESET: u8 = 6;
/// Exit status for an unhandled guest exception.
const EXIT_EXCEPTION: u8 = 8;
/// Exit status for an internal error.
const EXIT_INTERNAL: u8 = 10;
/// Exit status when the instruction limit is reached.
const EXIT_LIMIT: u8 = 12;
/// Exit status when `--timeout` stopped the guest.
const EXIT_TIMEOUT: u8 = 14;

#[derive(Parser)]
#[command(
    name = "popek",
    version,
    about = "A dynamic binary translator for x86-64 guest kernels"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a guest kernel (a Linux bzImage, a Multiboot v1 image, or an ELF64 x86-64
    /// executable); without --kernel, the built-in demo.
    Run(RunArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// The kernel to run, as `qemu-system-x86_64 -kernel` runs it: a Linux bzImage (through
    /// the boot protocol, entered at its 64-bit entry point), a Multiboot v1 image (ELF32 or
    /// a.out kludge, entered in 32-bit protected mode), or an ELF64 x86-64 ET_EXEC image
    /// (entered in 64-bit mode at CPL 0 without paging).
    #[arg(long, value_name = "FILE")]
    kernel: Option<PathBuf>,
    /// The initrd of a Linux kernel; for a Multiboot kernel, comma-separated modules, each
    /// "FILE ARGS" (as QEMU's -initrd).
    #[arg(long, value_name = "FILE")]
    initrd: Option<String>,
    /// The kernel command line (for a Multiboot kernel: appended to the kernel's file name,
    /// as QEMU's -append).
    #[arg(long, value_name = "STRING", allow_hyphen_values = true)]
    append: Option<String>,
    /// The execution engine.
    #[arg(long, value_enum, default_value_t = EngineArg::Dbt)]
    engine: EngineArg,
    /// dbt only: compile a block with Cranelift after it ran N times in the interpreter tier
    /// (default 200; 0 compiles every block before it first runs, as --engine jit does).
    #[arg(long, value_name = "N")]
    compile_after: Option<u32>,
    /// dbt only: blocks are first compiled quickly (little optimization); recompile one with
    /// full optimization after its quick code ran N times (default 2000; 0 compiles hot
    /// blocks fully optimized at once; 4294967295 never recompiles).
    #[arg(long, value_name = "N")]
    optimize_after: Option<u32>,
    /// dbt only: compile each hot block alone, not with the blocks of the loop around it as
    /// one region (for comparisons).
    #[arg(long)]
    no_regions: bool,
    /// Guest RAM: bytes, or with a K, M or G suffix (e.g. 512M, 1G); 2M to 64G.
    #[arg(
        long,
        value_name = "SIZE",
        default_value = "128M",
        allow_hyphen_values = true
    )]
    mem: String,
    /// Print statistics to stderr when the guest stops.
    #[arg(long)]
    stats: bool,
    /// Stop the VM at an instruction popek does not implement (exit status 4) instead of
    /// raising #UD in the guest as a CPU without the feature does (a debugging aid).
    #[arg(long)]
    stop_on_unsupported: bool,
    /// Name every compiled block in /tmp/perf-<pid>.map (Linux perf's JIT map: `perf record`
    /// then `perf report` show guest blocks as guest_<pc>_<tier>_<n>insns).
    #[arg(long)]
    perf_map: bool,
    /// Stop after this many guest instructions (exit status 12).
    #[arg(long, value_name = "N")]
    max_insns: Option<u64>,
    /// Stop after this many seconds of host time, halted time included (exit status 14).
    #[arg(long, value_name = "SECONDS", allow_hyphen_values = true)]
    timeout: Option<String>,
}

/// Parses `--timeout`: positive seconds, fractions allowed.
fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0 && *v < 1e9)
        .map(std::time::Duration::from_secs_f64)
        .ok_or_else(|| format!("invalid --timeout '{s}' (expected seconds, e.g. 10 or 0.5)"))
}

#[derive(Clone, Copy, ValueEnum)]
enum EngineArg {
    /// Tiered dynamic binary translation: cold blocks interpreted, hot blocks compiled with
    /// Cranelift on a second thread.
    Dbt,
    /// Dynamic binary translation compiling every block before it first runs.
    Jit,
    /// The interpreter (blocks recorded once, never compiled).
    Interp,
    /// Trap-and-emulate: translated like jit, but every sensitive instruction is a real host
    /// trap (int3 + SIGTRAP) emulated by the signal handler.
    Trap,
}

/// A `popek: error:` line and exit status.
struct Failure {
    message: String,
    status: u8,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            status: EXIT_USAGE,
        }
    }
}

/// Parses a memory size: decimal bytes with an optional K/M/G suffix (binary units, an
/// optional trailing "B" or "iB"), a multiple of 4 KiB from 2 MiB to 64 GiB.
fn parse_mem(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let upper = t.to_ascii_uppercase();
    let body = upper
        .strip_suffix("IB")
        .or_else(|| upper.strip_suffix('B'))
        .unwrap_or(&upper);
    let (digits, shift) = match body.chars().last() {
        Some('K') => (&body[..body.len() - 1], 10),
        Some('M') => (&body[..body.len() - 1], 20),
        Some('G') => (&body[..body.len() - 1], 30),
        _ => (body, 0),
    };
    let bad = || format!("invalid --mem size '{s}' (expected e.g. 64M, 1G or 16777216)");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let bytes = n.checked_mul(1 << shift).ok_or_else(bad)?;
    if !(MIN_RAM..=MAX_RAM).contains(&bytes) {
        return Err(format!("--mem size '{s}' is out of range (2M to 64G)"));
    }
    if !bytes.is_multiple_of(PAGE_SIZE) {
        return Err(format!("--mem size '{s}' is not a multiple of 4 KiB"));
    }
    Ok(bytes)
}

/// Reads the `--initrd` files: comma-separated entries, each a file name optionally followed
/// by arguments after a space (the whole entry is a Multiboot module's string).
fn read_initrds(spec: Option<&str>) -> Result<Vec<Initrd>, Failure> {
    let Some(spec) = spec else {
        return Ok(Vec::new());
    };
    spec.split(',')
        .map(|entry| {
            let path = entry.split(' ').next().unwrap_or(entry);
            let bytes = std::fs::read(path)
                .map_err(|e| Failure::usage(format!("cannot read initrd '{path}': {e}")))?;
            Ok(Initrd {
                entry: entry.to_string(),
                bytes,
            })
        })
        .collect()
}

/// `popek run` from QEMU-style arguments.
fn qemu_run_args(args: &[String]) -> Result<RunArgs, Failure> {
    let q = qemu_cli::parse(args).map_err(Failure::usage)?;
    Ok(RunArgs {
        kernel: q.kernel.map(PathBuf::from),
        initrd: q.initrd,
        append: q.append,
        engine: EngineArg::Dbt,
        compile_after: None,
        optimize_after: None,
        no_regions: false,
        perf_map: false,
        mem: q.mem.unwrap_or_else(|| "128M".into()),
        stats: false,
        stop_on_unsupported: false,
        max_insns: None,
        timeout: None,
    })
}

fn run(args: RunArgs) -> Result<u8, Failure> {
    let mem_bytes = parse_mem(&args.mem).map_err(Failure::usage)?;
    let timeout = args
        .timeout
        .as_deref()
        .map(parse_timeout)
        .transpose()
        .map_err(Failure::usage)?;
    let image: std::borrow::Cow<'static, [u8]> = match &args.kernel {
        Some(path) => std::fs::read(path)
            .map_err(|e| Failure::usage(format!("cannot read kernel '{}': {e}", path.display())))?
            .into(),
        None => runtime::DEMO_KERNEL.into(),
    };
    let engine = match args.engine {
        EngineArg::Dbt => Engine::Dbt,
        EngineArg::Jit => Engine::Jit,
        EngineArg::Interp => Engine::Interp,
        EngineArg::Trap => Engine::Trap,
    };
    // The other engines' policies are what they are for (compile all, compile none).
    let dbt_only = args.compile_after.is_some() || args.optimize_after.is_some() || args.no_regions;
    let tiering = match (dbt_only, engine) {
        (false, _) => None,
        (true, Engine::Dbt) => {
            let dflt = Tiering::tiered();
            Some(Tiering {
                compile_after: args.compile_after.unwrap_or(dflt.compile_after),
                optimize_after: args.optimize_after.unwrap_or(dflt.optimize_after),
                regions: !args.no_regions,
                ..dflt
            })
        }
        (true, other) => {
            let flag = if args.compile_after.is_some() {
                "--compile-after"
            } else if args.optimize_after.is_some() {
                "--optimize-after"
            } else {
                "--no-regions"
            };
            return Err(Failure::usage(format!(
                "{flag} applies to --engine dbt only, not {}",
                other.name()
            )));
        }
    };
    let cfg = VmConfig {
        mem_bytes,
        engine,
        serial: SerialSink::Stdout,
        instruction_limit: args.max_insns,
        // The count costs an increment per inline hit: only when it will be shown.
        count_tlb_hits: args.stats,
        tiering,
        stop_on_unsupported: args.stop_on_unsupported,
        perf_map: args.perf_map,
        ..VmConfig::default()
    };
    let mut vm = Vm::new(cfg).map_err(|e| match e {
        VmError::Memory(e) => Failure::usage(e.to_string()),
        other => Failure {
            message: other.to_string(),
            status: EXIT_INTERNAL,
        },
    })?;
    let name = args.kernel.as_ref().map_or_else(
        || "the demo guest".to_string(),
        |p| format!("'{}'", p.display()),
    );
    let initrds = read_initrds(args.initrd.as_deref())?;
    let kernel_name = args
        .kernel
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let spec = BootSpec {
        kernel: &image,
        kernel_name: &kernel_name,
        append: args.append.as_deref().unwrap_or(""),
        initrds: &initrds,
    };
    vm.boot(&spec)
        .map_err(|e| Failure::usage(format!("cannot load {name}: {e}")))?;

    if let Some(limit) = timeout {
        let stop = vm.stop_handle();
        // Detached: the process ends with the run, and a late stop has no VM left to stop.
        std::thread::spawn(move || {
            std::thread::sleep(limit);
            stop.stop();
        });
    }
    // Restores the terminal when dropped, after the report (which may print in raw mode:
    // output processing stays on).
    let _console = terminal::Console::start(vm.console_input(), &vm.stop_handle());
    let outcome = vm.run();
    let status = report(&vm, &outcome);
    if args.stats {
        eprintln!("popek: statistics\n{}", vm.stats());
    }
    Ok(status)
}

/// Tells stderr how the guest stopped (unless it exited on purpose) and picks the status.
fn report(vm: &Vm, outcome: &RunOutcome) -> u8 {
    match outcome {
        // The process status keeps the low 8 bits, as QEMU's exit() does.
        RunOutcome::DebugExit(v) => DebugExit::exit_status(*v) as u8,
        RunOutcome::Halted => {
            if halted_with_interrupts(vm.cpu()) {
                eprintln!(
                    "popek: guest halted at rip {:#x} with interrupts enabled and no timer \
                     armed; nothing can wake it",
                    vm.cpu().rip
                );
            }
            0
        }
        RunOutcome::Unsupported { .. } => {
            eprintln!("popek: {outcome}");
            EXIT_UNSUPPORTED
        }
        RunOutcome::Exception { .. } => {
            eprintln!("popek: {outcome}\n{}", register_dump(vm.cpu()));
            EXIT_EXCEPTION
        }
        RunOutcome::TripleFault { report } => {
            eprintln!("popek: triple fault (the guest could not handle an exception)\n{report}");
            EXIT_RESET
        }
        RunOutcome::PowerOff => 0,
        RunOutcome::Reset => {
            eprintln!(
                "popek: the guest reset the machine at rip {:#x}; popek does not reboot",
                vm.cpu().rip
            );
            EXIT_RESET
        }
        RunOutcome::InstructionLimit => {
            eprintln!(
                "popek: instruction limit reached at rip {:#x} after {} instructions",
                vm.cpu().rip,
                vm.cpu().icount
            );
            EXIT_LIMIT
        }
        RunOutcome::Stopped => {
            let (rip, icount) = (vm.cpu().rip, vm.cpu().icount);
            match terminal::stop_cause() {
                terminal::StopCause::Timeout => {
                    eprintln!(
                        "popek: timeout: stopped at rip {rip:#x} after {icount} instructions"
                    );
                    EXIT_TIMEOUT
                }
                terminal::StopCause::Quit => {
                    eprintln!("popek: terminated (Ctrl-A x)");
                    0
                }
                terminal::StopCause::Signal(sig) => {
                    eprintln!(
                        "popek: stopped by signal {sig} at rip {rip:#x} after {icount} instructions"
                    );
                    (128 + sig).clamp(0, 255) as u8
                }
            }
        }
        RunOutcome::InternalError(e) => {
            eprintln!("popek: internal error: {e}\n{}", register_dump(vm.cpu()));
            EXIT_INTERNAL
        }
    }
}

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let rest: Option<Vec<String>> = argv
        .iter()
        .skip(1)
        .map(|a| a.to_str().map(String::from))
        .collect();
    let status = match rest {
        Some(rest) if qemu_cli::is_qemu_style(&rest) => qemu_run_args(&rest).and_then(run),
        _ => match Cli::parse_from(argv).command {
            Command::Run(args) => run(args),
        },
    };
    match status {
        Ok(s) => ExitCode::from(s),
        Err(f) => {
            eprintln!("popek: error: {}", f.message);
            ExitCode::from(f.status)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_mem("64M"), Ok(64 << 20));
        assert_eq!(parse_mem("1G"), Ok(1 << 30));
        assert_eq!(parse_mem("1g"), Ok(1 << 30));
        assert_eq!(parse_mem("16777216"), Ok(16 << 20));
        assert_eq!(parse_mem("4096K"), Ok(4 << 20));
        assert_eq!(parse_mem("2MiB"), Ok(2 << 20));
        assert_eq!(parse_mem("8MB"), Ok(8 << 20));
        for bad in [
            "",
            "M",
            "1M",
            "64X",
            "-1G",
            "1.5G",
            "65G",
            "99999999999999999999G",
            "2097153",
        ] {
            assert!(parse_mem(bad).is_err(), "{bad:?}");
        }
    }
}
