//! The test kernels in `testsuite/kernels/` and the QEMU oracle that judges them.
//!
//! Each kernel is a Multiboot v1 image that boots in 32-bit protected mode, switches to long
//! mode (or tests 32-bit paging first) and checks one area of the architecture, printing one
//! deterministic line per check to COM1 and ending with `exit(0)` through isa-debug-exit.
//! The oracle is `qemu-system-x86_64 -accel tcg` ([`run_qemu`]); the same transcript is
//! required of every popek engine ([`run_popek`]). Expected transcripts are
//! `kernels/expected/<name>.out`, regenerated from QEMU with `BLESS=1`.
//!
//! Transcript rule ([`compare_transcripts`]): lines must be equal, except that an expected
//! line starting with `~` only requires an actual line starting with `~` in its place (the
//! rest may legitimately differ between emulators, e.g. where QEMU departs from the SDM).
//!
//! Build: every source is compiled by the machine's gcc into an ELF64 object (32-bit code
//! sits in `.code32` sections), linked with `ld -m elf_x86_64 -T kernels/link.ld` at 1 MiB,
//! then converted with `objcopy -O elf32-i386`, because QEMU's `-kernel` takes only ELF32
//! Multiboot images. Invariants of the cache: the image is
//! `<workspace>/target/kernels/<name>.elf` next to a `.hash` stamp of every input (sources,
//! library, linker script, flags, tool names); both are renamed into place, so concurrent
//! builds only ever see complete files.
//!
//! ```no_run
//! let image = testsuite::kernels::build_kernel("longmode").unwrap();
//! let run = testsuite::kernels::run_qemu(&image, std::time::Duration::from_secs(10)).unwrap();
//! assert_eq!(run.exit_code, Some(0));
//! ```

use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One test kernel.
#[derive(Debug)]
pub struct Kernel {
    /// Short name; also the name of its expected transcript.
    pub name: &'static str,
    /// What it checks.
    pub description: &'static str,
    /// Its sources, relative to [`kernels_dir`]; the library is added by the builder.
    pub sources: &'static [&'static str],
}

static KERNELS: &[Kernel] = &[
    Kernel {
        name: "longmode",
        description: "32-bit PM integer code, the switch to IA-32e, compatibility mode and back",
        sources: &["longmode/pm32.S", "longmode/longmode.c"],
    },
    Kernel {
        name: "exceptions",
        description: "#DE #DB #BP #UD #NP #SS #GP #PF delivery and error codes, #DF on IST1",
        sources: &["exceptions.c"],
    },
    Kernel {
        name: "paging",
        description: "4-level paging: demand paging, WP, NX, A/D, INVLPG, CR3, PGE, SMEP, SMAP",
        sources: &["paging.c"],
    },
    Kernel {
        name: "paging32",
        description: "32-bit paging (4 KiB and 4 MiB pages) and PAE paging in protected mode",
        sources: &["paging32.S"],
    },
    Kernel {
        name: "usermode",
        description: "CPL 3: IRETQ, SYSCALL/SYSRET, SWAPGS, INT 0x80, SYSENTER/SYSEXIT, #GP(0)",
        sources: &["usermode.c"],
    },
    Kernel {
        name: "pit",
        description: "8259 PIC remap and 8254 PIT channel 0 ticks with HLT",
        sources: &["pit.c"],
    },
    Kernel {
        name: "apic",
        description: "local APIC timer, TPR/CR8 holding an interrupt, IOAPIC routing of the PIT",
        sources: &["apic.c"],
    },
    Kernel {
        name: "smc",
        description: "self-modifying code: patched immediates, next instruction, copies, aliases",
        sources: &["smc.c"],
    },
    Kernel {
        name: "portio",
        description: "port I/O: UART scratch, CMOS RAM, PIC IMR, sizes, REP INS/OUTS, open bus",
        sources: &["portio.c"],
    },
    Kernel {
        name: "sensitive",
        description: "every sensitive instruction at CPL 0 and at CPL 3",
        sources: &["sensitive.c"],
    },
    Kernel {
        name: "fpu",
        description: "x87/MMX/SSE rules: OSFXSR, EM, TS and lazy switching, #MF, FERR, #XM, FXSAVE",
        sources: &["fpu.c"],
    },
    Kernel {
        name: "identity",
        description: "CPUID identity: known vendor, hypervisor leaves, brand, coherent family",
        sources: &["identity.c"],
    },
    Kernel {
        name: "msr",
        description: "the model's MSRs: MISC_ENABLE, MTRRs, PAT, TSC_AUX, microcode, PMU, #GP",
        sources: &["msr.c"],
    },
    Kernel {
        name: "nmi",
        description: "NMIs: self-IPI, blocking until IRET with one pending, waking HLT with IF=0",
        sources: &["nmi.c"],
    },
    Kernel {
        name: "debug",
        description: "TF single-step, MOV SS, RF, DR0-DR3 breakpoints, DR7.GD, INT1 (ICEBP)",
        sources: &["debug.c"],
    },
    Kernel {
        name: "ferr",
        description: "x87 errors with CR0.NE clear: FERR# on IRQ 13, port 0xF0 and IGNNE#",
        sources: &["ferr.c"],
    },
    Kernel {
        name: "ud",
        description: "#UD for VMX/SVM, RDPRU, XSAVE, VEX/EVEX and whatever CPUID does not offer",
        sources: &["ud.c"],
    },
    Kernel {
        name: "realmode",
        description: "real mode: far CALL/JMP through m16:16 and m16:32, RETF, IRET",
        sources: &["realmode.S"],
    },
    Kernel {
        name: "cmdline",
        description: "the Multiboot command line: the kernel's file name, then the -append text",
        sources: &["cmdline.c"],
    },
];

/// The `-append` text of the kernels that take one (the same for QEMU and popek).
static APPEND: &[(&str, &str)] = &[("cmdline", "alpha beta=2 --gamma x,y")];

/// The `-append` text kernel `name` is booted with, if any.
pub fn append_for(name: &str) -> Option<&'static str> {
    APPEND.iter().find(|(k, _)| *k == name).map(|(_, a)| *a)
}

/// Benchmark kernels: built and run like the test kernels, but their output is measurements,
/// so they have no expected transcript and are not in [`all`] (nor the transcript tests).
static BENCH_KERNELS: &[Kernel] = &[Kernel {
    name: "nanobench",
    description: "Adams-Agesen nanobenchmarks: cycles per syscall, IN, CR8, #PF, #DE, PTE write",
    sources: &["nanobench.c"],
}];

/// The names of the benchmark kernels (built like the test kernels; no transcripts).
pub fn bench_kernel_names() -> Vec<&'static str> {
    BENCH_KERNELS.iter().map(|k| k.name).collect()
}

/// Every kernel.
pub fn all() -> &'static [Kernel] {
    KERNELS
}

/// The names of all kernels.
pub fn kernel_names() -> &'static [&'static str] {
    static NAMES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| KERNELS.iter().map(|k| k.name).collect())
}

/// The kernel called `name` (test or benchmark kernel), if there is one.
pub fn by_name(name: &str) -> Option<&'static Kernel> {
    KERNELS.iter().chain(BENCH_KERNELS).find(|k| k.name == name)
}

/// The library linked into every kernel (its entry point first).
const LIBRARY: &[&str] = &["lib/entry.S", "lib/lib.c"];
/// Files included rather than compiled that still decide the image.
const SHARED_INPUTS: &[&str] = &["lib/defs.h", "lib/kernel.h", "lib/report32.h", "link.ld"];

/// Compiler flags for every source (`.S` and `.c`).
pub const CFLAGS: &[&str] = &[
    "-m64",
    "-std=gnu11",
    "-O2",
    "-ffreestanding",
    "-fno-builtin",
    "-fno-tree-loop-distribute-patterns",
    "-nostdlib",
    "-fno-pic",
    "-fno-pie",
    "-mno-red-zone",
    "-mgeneral-regs-only",
    "-mcmodel=small",
    "-fno-stack-protector",
    "-fno-asynchronous-unwind-tables",
    "-fno-unwind-tables",
    "-fcf-protection=none",
    "-masm=intel",
    "-Wall",
    "-Wextra",
    "-Werror",
];

/// Linker flags, besides the script and the output.
pub const LDFLAGS: &[&str] = &[
    "-m",
    "elf_x86_64",
    "-nostdlib",
    "--build-id=none",
    "-z",
    "max-page-size=4096",
    "-z",
    "noexecstack",
    "--no-warn-rwx-segments",
];

/// The QEMU CPU model: all TCG features (SMEP, SMAP, ...) with Intel's behaviour where the
/// vendors differ (SYSENTER in long mode).
pub const QEMU_CPU: &str = "max,vendor=GenuineIntel";

/// Why a kernel could not be built or run.
#[derive(Debug)]
pub enum KernelError {
    /// There is no kernel of that name.
    Unknown(String),
    /// A tool (gcc, ld, objcopy, qemu, popek, cargo) could not be started.
    ToolMissing {
        /// The tool.
        tool: String,
        /// The error from starting it.
        source: io::Error,
    },
    /// A build step failed.
    Build {
        /// The kernel.
        kernel: String,
        /// The command line.
        command: String,
        /// What the tool printed.
        stderr: String,
    },
    /// A file could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown(name) => write!(f, "no test kernel named `{name}`"),
            Self::ToolMissing { tool, source } => write!(f, "cannot run `{tool}`: {source}"),
            Self::Build {
                kernel,
                command,
                stderr,
            } => write!(f, "building kernel `{kernel}` failed: {command}\n{stderr}"),
            Self::Io { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for KernelError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::ToolMissing { source, .. } | Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> KernelError + '_ {
    move |source| KernelError::Io {
        path: path.to_owned(),
        source,
    }
}

/// `testsuite/kernels`.
pub fn kernels_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels")
}

/// The workspace's `target` directory.
fn target_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).join("target")
}

/// Where built images are cached (`<workspace>/target/kernels`).
pub fn output_dir() -> PathBuf {
    target_dir().join("kernels")
}

/// The expected transcript's path (`kernels/expected/<name>.out`).
pub fn expected_path(name: &str) -> PathBuf {
    kernels_dir().join("expected").join(format!("{name}.out"))
}

fn compiler() -> String {
    std::env::var("POPEK_GUEST_CC").unwrap_or_else(|_| "gcc".to_owned())
}

/// FNV-1a, stable across Rust versions.
struct Fnv(u64);

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes.iter().chain(&[0xff]) {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x100_0000_01b3);
        }
    }
}

fn build_hash(k: &Kernel, cc: &str) -> Result<String, KernelError> {
    let dir = kernels_dir();
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    for s in [cc, "ld", "objcopy -O elf32-i386"]
        .iter()
        .chain(CFLAGS)
        .chain(LDFLAGS)
    {
        h.write(s.as_bytes());
    }
    for file in SHARED_INPUTS.iter().chain(LIBRARY).chain(k.sources) {
        let path = dir.join(file);
        let bytes = std::fs::read(&path).map_err(io_err(&path))?;
        h.write(file.as_bytes());
        h.write(&bytes);
    }
    Ok(format!("{:016x}", h.0))
}

/// A path no other thread or process uses.
fn unique(path: &Path, what: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{what}.{}.{n}", std::process::id()));
    PathBuf::from(name)
}

fn run_tool(kernel: &str, tool: &str, args: &[String]) -> Result<(), KernelError> {
    let out =
        Command::new(tool)
            .args(args)
            .output()
            .map_err(|source| KernelError::ToolMissing {
                tool: tool.to_owned(),
                source,
            })?;
    if out.status.success() {
        return Ok(());
    }
    Err(KernelError::Build {
        kernel: kernel.to_owned(),
        command: format!("{tool} {}", args.join(" ")),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Build the kernel `name` (cached, see the module documentation); returns the ELF32 image.
pub fn build_kernel(name: &str) -> Result<PathBuf, KernelError> {
    let k = by_name(name).ok_or_else(|| KernelError::Unknown(name.to_owned()))?;
    let out_dir = output_dir();
    std::fs::create_dir_all(&out_dir).map_err(io_err(&out_dir))?;
    let image = out_dir.join(format!("{name}.elf"));
    let stamp = out_dir.join(format!("{name}.elf.hash"));
    let cc = compiler();
    let hash = build_hash(k, &cc)?;
    let fresh = image.exists() && std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == hash);
    if fresh {
        return Ok(image);
    }

    let work = unique(&out_dir.join(name), "build");
    std::fs::create_dir_all(&work).map_err(io_err(&work))?;
    let result = build_in(k, &cc, &work, &image, &stamp, &hash);
    let _ = std::fs::remove_dir_all(&work);
    result.map(|()| image)
}

fn build_in(
    k: &Kernel,
    cc: &str,
    work: &Path,
    image: &Path,
    stamp: &Path,
    hash: &str,
) -> Result<(), KernelError> {
    let dir = kernels_dir();
    let mut objects = Vec::new();
    for (i, source) in LIBRARY.iter().chain(k.sources).enumerate() {
        let object = work.join(format!("{i}.o"));
        let mut args: Vec<String> = CFLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("-I{}", dir.join("lib").display()));
        args.extend([
            "-c".to_owned(),
            "-o".to_owned(),
            object.display().to_string(),
        ]);
        args.push(dir.join(source).display().to_string());
        run_tool(k.name, cc, &args)?;
        objects.push(object.display().to_string());
    }
    let elf64 = work.join("image.elf64");
    let mut args: Vec<String> = LDFLAGS.iter().map(|s| s.to_string()).collect();
    args.extend(["-T".to_owned(), dir.join("link.ld").display().to_string()]);
    args.extend(["-o".to_owned(), elf64.display().to_string()]);
    args.extend(objects);
    run_tool(k.name, "ld", &args)?;
    let tmp = unique(image, "tmp");
    let args = [
        "-O".to_owned(),
        "elf32-i386".to_owned(),
        elf64.display().to_string(),
        tmp.display().to_string(),
    ];
    run_tool(k.name, "objcopy", &args)?;
    std::fs::rename(&tmp, image).map_err(io_err(image))?;
    // The stamp goes last: a crash in between leaves a stale stamp, hence a rebuild.
    let tmp = unique(stamp, "tmp");
    std::fs::write(&tmp, hash).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, stamp).map_err(io_err(stamp))
}

/// How one run of a kernel ended.
#[derive(Debug, Clone)]
pub struct KernelRun {
    /// Everything the kernel wrote to COM1.
    pub serial: String,
    /// The value the kernel passed to `exit()` (isa-debug-exit; the process exit status is
    /// `(code << 1) | 1`), or `None` if the process ended otherwise (even status, signal,
    /// timeout).
    pub exit_code: Option<i32>,
    /// The raw exit status of the emulator process.
    pub status: Option<i32>,
    /// What the emulator printed on stderr.
    pub stderr: String,
    /// The run was killed at the timeout.
    pub timed_out: bool,
}

/// Whether `qemu-system-x86_64` can be started.
pub fn qemu_available() -> bool {
    Command::new("qemu-system-x86_64")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Run `cmd` with stdout as the serial output, killing it after `timeout`.
fn run_captured(mut cmd: Command, timeout: Duration) -> Result<KernelRun, KernelError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| KernelError::ToolMissing {
            tool: program,
            source,
        })?;
    let reader = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = reader(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = reader(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                timed_out = true;
                break child.wait().ok();
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => break None,
        }
    };
    let code = status.and_then(|s| s.code());
    let exit_code = match code {
        Some(c) if c & 1 == 1 && !timed_out => Some(c >> 1),
        _ => None,
    };
    Ok(KernelRun {
        serial: stdout.join().unwrap_or_default(),
        exit_code,
        status: code,
        stderr: stderr.join().unwrap_or_default(),
        timed_out,
    })
}

/// Run `image` under `qemu-system-x86_64 -accel tcg` (the oracle), for at most `timeout`.
pub fn run_qemu(image: &Path, timeout: Duration) -> Result<KernelRun, KernelError> {
    run_qemu_appending(image, None, timeout)
}

/// As [`run_qemu`], with `-append text` when `append` is given.
pub fn run_qemu_appending(
    image: &Path,
    append: Option<&str>,
    timeout: Duration,
) -> Result<KernelRun, KernelError> {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-accel", "tcg", "-cpu", QEMU_CPU, "-m", "128", "-kernel"])
        .arg(image)
        .args([
            "-display",
            "none",
            "-serial",
            "stdio",
            "-monitor",
            "none",
            "-no-reboot",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
        ]);
    if let Some(text) = append {
        cmd.arg("-append").arg(text);
    }
    run_captured(cmd, timeout)
}

/// The `popek` binary of the current build profile, built with cargo if it is missing.
pub fn popek_binary() -> Result<PathBuf, KernelError> {
    // Test executables live in target/<profile>/deps/.
    let exe = std::env::current_exe().map_err(io_err(Path::new("current_exe")))?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .map(Path::to_owned)
        .unwrap_or_else(|| target_dir().join("release"));
    let binary = profile_dir.join("popek");
    if binary.exists() {
        return Ok(binary);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut args = vec!["build", "-p", "runtime", "--bin", "popek"];
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        args.push("--release");
    }
    let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
    run_tool("popek", &cargo, &args)?;
    Ok(binary)
}

/// Run `image` under the workspace's `popek run --kernel IMAGE --engine ENGINE`, whose stdout
/// is the guest's serial output, for at most `timeout`.
pub fn run_popek(image: &Path, engine: &str, timeout: Duration) -> Result<KernelRun, KernelError> {
    run_popek_with(&popek_binary()?, image, engine, timeout)
}

/// As [`run_popek`], with `--append text` when `append` is given.
pub fn run_popek_appending(
    image: &Path,
    engine: &str,
    append: Option<&str>,
    timeout: Duration,
) -> Result<KernelRun, KernelError> {
    let mut cmd = Command::new(popek_binary()?);
    cmd.args(["run", "--mem", "128M", "--engine", engine, "--kernel"])
        .arg(image);
    if let Some(text) = append {
        cmd.arg("--append").arg(text);
    }
    run_captured(cmd, timeout)
}

/// As [`run_popek`], with the `popek` binary given (tools outside the test executables).
pub fn run_popek_with(
    popek: &Path,
    image: &Path,
    engine: &str,
    timeout: Duration,
) -> Result<KernelRun, KernelError> {
    let mut cmd = Command::new(popek);
    cmd.args(["run", "--mem", "128M", "--engine", engine, "--kernel"])
        .arg(image);
    run_captured(cmd, timeout)
}

/// Whether an actual line satisfies an expected one (the `~` rule).
fn line_matches(expected: &str, actual: &str) -> bool {
    match expected.strip_prefix('~') {
        Some(_) => actual.starts_with('~'),
        None => expected == actual,
    }
}

/// Compare a transcript with the expected one: `Ok` if every line matches (an expected line
/// starting with `~` matches any actual line starting with `~`), else a readable diff
/// (`-` expected, `+` actual, two lines of context).
pub fn compare_transcripts(expected: &str, actual: &str) -> Result<(), String> {
    let e: Vec<&str> = expected.lines().collect();
    let a: Vec<&str> = actual.lines().collect();
    if e.len() == a.len() && e.iter().zip(&a).all(|(x, y)| line_matches(x, y)) {
        return Ok(());
    }
    // Longest common subsequence under line_matches, then a unified-style listing.
    let (n, m) = (e.len(), a.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if line_matches(e[i], a[j]) {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut ops = Vec::new(); // (tag, expected line number, text)
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && line_matches(e[i], a[j]) {
            ops.push((' ', i + 1, a[j]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            ops.push(('+', i + 1, a[j]));
            j += 1;
        } else {
            ops.push(('-', i + 1, e[i]));
            i += 1;
        }
    }
    let changed: Vec<usize> = (0..ops.len()).filter(|&k| ops[k].0 != ' ').collect();
    let mut out = format!(
        "transcripts differ ({} expected lines, {} actual; - expected, + actual):\n",
        n, m
    );
    let mut last_shown = None;
    for (k, &(tag, line, text)) in ops.iter().enumerate() {
        if !changed.iter().any(|&c| k + 2 >= c && k <= c + 2) {
            continue;
        }
        if last_shown.is_some_and(|l: usize| l + 1 != k) || (last_shown.is_none() && k > 0) {
            out.push_str(&format!("@@ line {line} @@\n"));
        }
        out.push_str(&format!("{tag}{text}\n"));
        last_shown = Some(k);
    }
    Err(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tilde_lines_match_any_tilde_line() {
        assert!(compare_transcripts("a\n~x=1\nb\n", "a\n~x=2\nb\n").is_ok());
        assert!(compare_transcripts("a\n~x=1\n", "a\nx=1\n").is_err());
        assert!(compare_transcripts("a\n~x=1\n", "a\n").is_err());
        assert!(compare_transcripts("~\n", "~anything\n").is_ok());
    }

    #[test]
    fn diff_names_both_sides() {
        let err = compare_transcripts("one\ntwo\nthree\n", "one\nTWO\nthree\nfour\n").unwrap_err();
        assert!(err.contains("-two"), "{err}");
        assert!(err.contains("+TWO"), "{err}");
        assert!(err.contains("+four"), "{err}");
        assert!(err.contains(" one"), "{err}");
        assert!(compare_transcripts("x\n", "x\n").is_ok());
        assert!(compare_transcripts("x\n", "x").is_ok());
    }

    #[test]
    fn every_kernel_has_sources_and_a_unique_name() {
        for (i, k) in all().iter().enumerate() {
            assert!(
                all()[..i].iter().all(|o| o.name != k.name),
                "{} twice",
                k.name
            );
            for s in k.sources {
                assert!(kernels_dir().join(s).exists(), "{}: missing {s}", k.name);
            }
        }
        assert_eq!(kernel_names().len(), all().len());
    }
}
