//! The guest programs in `testsuite/guests/` and how to build them.
//!
//! Each guest is freestanding C or GNU assembler that computes something and prints hex
//! results to the serial port. It is built with the machine's gcc twice from the same
//! sources and the same code-generation flags ([`CFLAGS`], then the guest's own
//! [`Guest::cflags`]):
//! - as a bare-metal ELF64 `ET_EXEC` image linked at 1 MiB ([`build_guest`]), which the VMM
//!   enters at `_start` in long mode at CPL 0 with identity-mapped RAM; it exits through the
//!   isa-debug-exit port (`out 0xf4` with 0 on success, so the VM's status is 1);
//! - as a host Linux executable, the *native twin* ([`build_native`], run by
//!   [`crate::native::run_native`]), that prints the same text to stdout.
//!
//! Most images use only general-purpose integer instructions ([`INTEGER_ONLY`]:
//! `-mgeneral-regs-only`, no SSE, x87 or AVX); the floating-point and vector guests drop that
//! flag and add what they need (`-msse4.2`, `-O3`, `-fno-math-errno`), never AVX (popek's
//! CPUID stops at SSE4.2) and never libm. `SCALE` multiplies each program's work linearly; at
//! `SCALE=1` a run is a few million guest instructions (at most ~20 million), and its output
//! is [`Guest::expected`], except the values of host-specific lines ([`HOST_SPECIFIC`]),
//! whose keys only are golden ([`golden_view`]).
//!
//! Invariants of the build cache: an output is `<workspace>/target/guests/<name>-s<scale>.elf`
//! (or `.native`) next to a `.hash` stamp of everything that went into it (sources, runtime,
//! flags, scale); both are written to a temporary file and renamed into place, so concurrent
//! builds, in threads or processes, only ever see complete files.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// One guest program.
#[derive(Debug)]
pub struct Guest {
    /// Short name; also the prefix of every line the program prints (`"sieve: ..."`).
    pub name: &'static str,
    /// What the program exercises.
    pub description: &'static str,
    /// The program's sources, relative to [`guests_dir`]; the runtime is added by the builder.
    pub sources: &'static [&'static str],
    /// Code-generation flags of this guest, after [`CFLAGS`] (so `-O3` overrides `-O2`), in
    /// both builds; part of the build-cache key like every other argument.
    pub cflags: &'static [&'static str],
    /// The exact output at `SCALE=1` (`guests/expected/<name>.out`; run the golden test with
    /// `BLESS=1` to regenerate it from the native twins).
    pub expected: &'static str,
    /// A source generated at build time, compiled after [`Guest::sources`]: for programs
    /// whose code is too large to keep in the repository (`coldcode`).
    pub generated: Option<Generated>,
}

/// A C source that a generator writes into the build directory ([`generated_dir`]) before
/// each build; its text is part of the build-cache key like any source file's.
#[derive(Debug, Clone, Copy)]
pub struct Generated {
    /// File name in [`generated_dir`].
    pub file: &'static str,
    /// The generator: the whole text, the same on every call.
    pub source: fn() -> String,
}

/// The table of guests: `name: source, flags, description [, generated];` (the golden
/// output is found by name).
macro_rules! guests {
    ($($name:ident: $source:literal, $cflags:expr, $description:literal
        $(, $generated:expr)?;)*) => {
        &[$(Guest {
            name: stringify!($name),
            description: $description,
            sources: &[$source],
            cflags: $cflags,
            expected: include_str!(concat!("../guests/expected/", stringify!($name), ".out")),
            generated: guests!(@generated $($generated)?),
        },)*]
    };
    (@generated) => { None };
    (@generated $generated:expr) => { Some($generated) };
}

/// The flags of the integer-only guests: no SSE, x87, MMX or AVX register anywhere.
pub const INTEGER_ONLY: &[&str] = &["-mgeneral-regs-only"];

/// The flags of `coldcode`: integer-only, and no debug information, which took a third of
/// the compile time of its 70,000 generated lines.
const COLD_CODE: &[&str] = &["-mgeneral-regs-only", "-g0"];

static GUESTS: &[Guest] = guests! {
    sieve: "sieve.c", INTEGER_ONLY, "segmented sieve of Eratosthenes over byte flags";
    crc32: "crc32.c", INTEGER_ONLY, "CRC-32 bitwise, by table and slicing-by-4; CRC-32C";
    sha256: "sha256.c", INTEGER_ONLY, "SHA-256 of standard vectors and a generated buffer";
    sort: "sort.c", INTEGER_ONLY, "quicksort through a comparator pointer, and mergesort";
    bytecode: "bytecode.c", INTEGER_ONLY, "stack-VM interpreters: a switch loop and computed goto";
    muldiv: "muldiv.c", INTEGER_ONLY, "64/128-bit multiply; signed and unsigned divide of all widths";
    recursion: "recursion.c", INTEGER_ONLY, "Ackermann, Fibonacci, Takeuchi, 20000-frame recursion";
    bits: "bits.c", INTEGER_ONLY, "popcnt, bsf/bsr, bswap, rotates, bt*, shld/shrd, rcl/rcr, setcc, cmov";
    lzss: "lzss.c", INTEGER_ONLY, "LZSS compression round trip with hash chains";
    matmul: "matmul.c", INTEGER_ONLY, "integer matrix products and modular matrix powers";
    strings: "strings.S", INTEGER_ONLY, "rep movs/stos/cmps/scas/lods in both directions, overlaps";
    flags: "flags.S", INTEGER_ONLY, "adc/sbb, lahf/sahf, pushf/popf, loop*, atomics, enter, mul/div";
    vecmath: "vecmath.c", &["-O3", "-msse4.2"],
        "auto-vectorized float/int32 kernels (packed SSE) checked against scalar twins";
    nbody: "nbody.c", &["-fno-math-errno"], "double n-body, radix-2 complex FFT, sqrtsd, conversions";
    pcmpstr: "pcmpstr.c", &["-msse4.2"], "strlen/strchr/strspn/strstr by PCMPISTRI/PCMPESTRI/..M";
    x87: "x87.c", &[], "long double series, x87 transcendentals, fprem, BCD, rounding control";
    coldcode: "coldcode.c", COLD_CODE, "3000 distinct generated functions, each called 4 times",
        Generated { file: "coldcode-gen.c", source: crate::coldcode::source };
};

/// The guests whose work is code that runs a few times: their `SCALE` multiplies the runs
/// of every function, so a large scale makes their code hot. Benchmarks run them at a small
/// scale of their own.
pub const COLD: &[&str] = &["coldcode"];

/// Every guest program.
pub fn all() -> &'static [Guest] {
    GUESTS
}

/// The guest called `name`, if there is one.
pub fn by_name(name: &str) -> Option<&'static Guest> {
    GUESTS.iter().find(|g| g.name == name)
}

impl Guest {
    /// Whether the guest is built without floating-point and vector registers
    /// ([`INTEGER_ONLY`]).
    pub fn integer_only(&self) -> bool {
        self.cflags.contains(&"-mgeneral-regs-only")
    }
}

/// The word that marks a line of host-specific values: `"<name>: hw key=value ..."`. The x87
/// transcendentals (FSIN, FPATAN, F2XM1, ...) are accurate to about an ulp and processors
/// differ in that ulp (Intel's and AMD's do), so such a line is exact only against the native
/// twin on the same host; the golden output fixes its keys, not its values.
pub const HOST_SPECIFIC: &str = "hw";

/// `output` as the golden files fix it: every value of a host-specific line
/// ([`HOST_SPECIFIC`]) replaced by `*`, everything else as is.
pub fn golden_view(output: &str) -> String {
    let mut out = String::with_capacity(output.len());
    for line in output.split_inclusive('\n') {
        let host_specific = line
            .split_once(": ")
            .is_some_and(|(_, rest)| rest.split(' ').next() == Some(HOST_SPECIFIC));
        if !host_specific {
            out.push_str(line);
            continue;
        }
        let (body, newline) = match line.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (line, ""),
        };
        let words: Vec<String> = body
            .split(' ')
            .map(|w| match w.split_once('=') {
                Some((key, _)) => format!("{key}=*"),
                None => w.to_owned(),
            })
            .collect();
        out.push_str(&words.join(" "));
        out.push_str(newline);
    }
    out
}

/// Code-generation flags shared by the guest and native builds, so that the code that does
/// the work is the same machine code in both (only output and exit differ). Each guest adds
/// its own [`Guest::cflags`] after these.
pub const CFLAGS: &[&str] = &[
    "-std=gnu11",
    "-O2",
    "-g",
    "-ffreestanding",
    "-fno-builtin",
    // gcc turns copy and clear loops into calls to memcpy/memset, even inside them.
    "-fno-tree-loop-distribute-patterns",
    "-nostdlib",
    "-static",
    "-fno-pic",
    "-fno-pie",
    "-no-pie",
    "-mcmodel=small",
    "-mno-red-zone",
    "-fno-stack-protector",
    "-fno-asynchronous-unwind-tables",
    "-fno-unwind-tables",
    "-fcf-protection=none",
    "-Wall",
    "-Wextra",
    "-Werror",
];

/// Link flags of the bare-metal image, besides `-T guests/link.ld`.
pub const GUEST_LDFLAGS: &[&str] = &[
    "-Wl,--build-id=none",
    "-Wl,-z,max-page-size=4096",
    "-Wl,-z,noexecstack",
];

/// Link flags of the native twin.
pub const NATIVE_LDFLAGS: &[&str] = &["-Wl,--build-id=none", "-Wl,-z,noexecstack"];

/// Runtime sources linked into every guest image (besides the program's own sources).
const GUEST_RUNTIME: &[&str] = &["rt/start.S", "rt/rt.c", "rt/serial.c"];
/// Runtime sources linked into every native twin.
const NATIVE_RUNTIME: &[&str] = &["rt/start.S", "rt/rt.c", "rt/native.c"];
/// Files that are included rather than compiled, but still decide the output.
const SHARED_INPUTS: &[&str] = &["rt/rt.h", "rt/asm.h", "link.ld"];
/// Libraries after the objects: libgcc for helpers such as `__popcountdi2`.
const LIBS: &[&str] = &["-lgcc"];

/// Why a guest or its native twin could not be built or run.
#[derive(Debug)]
pub enum BuildError {
    /// The compiler could not be started (is gcc installed?).
    CompilerMissing {
        /// The compiler that was tried.
        compiler: String,
        /// The error from starting it.
        source: io::Error,
    },
    /// The compiler rejected the program.
    Compile {
        /// The guest being built.
        guest: &'static str,
        /// The command line, for reproducing the failure by hand.
        command: String,
        /// What the compiler printed.
        stderr: String,
    },
    /// A file could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The native twin could not be started, or did not exit with status 0.
    NativeRun {
        /// The guest being run.
        guest: &'static str,
        /// Its exit status, or `None` if it was killed by a signal or never started.
        status: Option<i32>,
        /// What it printed before failing (guests print `"<name>: FAIL ..."` on a failed check).
        stdout: String,
        /// Its stderr, or the error from starting it.
        stderr: String,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CompilerMissing { compiler, source } => {
                write!(f, "cannot run the guest compiler `{compiler}`: {source}")
            }
            Self::Compile {
                guest,
                command,
                stderr,
            } => write!(f, "building guest `{guest}` failed: {command}\n{stderr}"),
            Self::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Self::NativeRun {
                guest,
                status,
                stdout,
                stderr,
            } => write!(
                f,
                "native twin of `{guest}` failed (exit status {status:?})\nstdout:\n{stdout}\nstderr:\n{stderr}"
            ),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::CompilerMissing { source, .. } | Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Which of the two builds of a guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Target {
    Guest,
    Native,
}

impl Target {
    fn extension(self) -> &'static str {
        match self {
            Target::Guest => "elf",
            Target::Native => "native",
        }
    }
}

/// The directory holding the guest sources (`testsuite/guests`).
pub fn guests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("guests")
}

/// The directory the builds are cached in (`<workspace>/target/guests`).
pub fn output_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .unwrap_or(manifest)
        .join("target")
        .join("guests")
}

/// Where generated sources are written (`<workspace>/target/guests/generated`).
pub fn generated_dir() -> PathBuf {
    output_dir().join("generated")
}

/// Writes `g`'s generated source, unless the file already holds that text.
fn write_generated(g: &Guest) -> Result<(), BuildError> {
    let Some(gen) = g.generated else {
        return Ok(());
    };
    let dir = generated_dir();
    std::fs::create_dir_all(&dir).map_err(|source| BuildError::Io {
        path: dir.clone(),
        source,
    })?;
    let path = dir.join(gen.file);
    let text = (gen.source)();
    if std::fs::read(&path).is_ok_and(|old| old == text.as_bytes()) {
        return Ok(());
    }
    write_atomically(&path, text.as_bytes())
}

/// `g`'s own sources, then its generated source: `(name, path)`.
fn program_sources(g: &Guest) -> Vec<(&'static str, PathBuf)> {
    let dir = guests_dir();
    let own = g.sources.iter().map(|s| (*s, dir.join(s)));
    let generated = g
        .generated
        .iter()
        .map(|gen| (gen.file, generated_dir().join(gen.file)));
    own.chain(generated).collect()
}

/// The compiler: `$POPEK_GUEST_CC` if set, else `gcc`.
fn compiler() -> String {
    std::env::var("POPEK_GUEST_CC").unwrap_or_else(|_| "gcc".to_owned())
}

/// Build `g` as a bare-metal ELF image with the given work multiplier; returns its path.
///
/// The result is cached (see the module documentation), so calling this again is cheap.
pub fn build_guest(g: &Guest, scale: u32) -> Result<PathBuf, BuildError> {
    build(g, scale, Target::Guest)
}

/// Build `g`'s native twin, a static Linux executable printing the guest's output to stdout.
pub fn build_native(g: &Guest, scale: u32) -> Result<PathBuf, BuildError> {
    build(g, scale, Target::Native)
}

/// The full compiler command line (without the compiler itself) for one build.
fn compiler_args(g: &Guest, scale: u32, target: Target, output: &Path) -> Vec<String> {
    let dir = guests_dir();
    let mut args: Vec<String> = CFLAGS
        .iter()
        .chain(g.cflags)
        .map(|s| s.to_string())
        .collect();
    args.push(format!("-I{}", dir.join("rt").display()));
    args.push(format!("-DSCALE={scale}"));
    let runtime = match target {
        Target::Guest => {
            args.push(format!("-Wl,-T,{}", dir.join("link.ld").display()));
            args.extend(GUEST_LDFLAGS.iter().map(|s| s.to_string()));
            GUEST_RUNTIME
        }
        Target::Native => {
            args.push("-DPOPEK_NATIVE".to_owned());
            args.extend(NATIVE_LDFLAGS.iter().map(|s| s.to_string()));
            NATIVE_RUNTIME
        }
    };
    args.push("-o".to_owned());
    args.push(output.display().to_string());
    for source in runtime {
        args.push(dir.join(source).display().to_string());
    }
    for (_, path) in program_sources(g) {
        args.push(path.display().to_string());
    }
    args.extend(LIBS.iter().map(|s| s.to_string()));
    args
}

/// FNV-1a: stable across Rust versions (unlike `DefaultHasher`), and plenty for a cache key.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x100_0000_01b3);
        }
        // A separator, so that ("ab", "c") and ("a", "bc") differ.
        self.0 ^= 0xff;
        self.0 = self.0.wrapping_mul(0x100_0000_01b3);
    }
}

/// The cache key of one build: every input file, the command line and the compiler name.
fn build_hash(g: &Guest, scale: u32, target: Target, cc: &str) -> Result<String, BuildError> {
    let dir = guests_dir();
    let mut h = Fnv::new();
    h.write(cc.as_bytes());
    for arg in compiler_args(g, scale, target, Path::new("out")) {
        h.write(arg.as_bytes());
    }
    let runtime = match target {
        Target::Guest => GUEST_RUNTIME,
        Target::Native => NATIVE_RUNTIME,
    };
    let inputs = SHARED_INPUTS
        .iter()
        .chain(runtime)
        .map(|f| (*f, dir.join(f)));
    for (file, path) in inputs.chain(program_sources(g)) {
        let bytes = std::fs::read(&path).map_err(|source| BuildError::Io { path, source })?;
        h.write(file.as_bytes());
        h.write(&bytes);
    }
    Ok(format!("{:016x}", h.0))
}

/// A lock per output file, so that test threads in one process do not compile the same
/// thing at once (processes may still race; the renames keep that safe, merely wasteful).
fn output_lock(output: &Path) -> Arc<Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>> = OnceLock::new();
    let mut locks = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    locks.entry(output.to_owned()).or_default().clone()
}

/// A name in the output directory that no other thread or process is using.
fn temp_path(output: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut name = output.as_os_str().to_owned();
    name.push(format!(".tmp.{}.{n}", std::process::id()));
    PathBuf::from(name)
}

/// Write `bytes` to `path` atomically (temporary file, then rename).
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), BuildError> {
    let tmp = temp_path(path);
    let io_err = |source| BuildError::Io {
        path: path.to_owned(),
        source,
    };
    std::fs::write(&tmp, bytes).map_err(io_err)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_err(e)
    })
}

fn build(g: &Guest, scale: u32, target: Target) -> Result<PathBuf, BuildError> {
    let out_dir = output_dir();
    std::fs::create_dir_all(&out_dir).map_err(|source| BuildError::Io {
        path: out_dir.clone(),
        source,
    })?;
    let output = out_dir.join(format!("{}-s{scale}.{}", g.name, target.extension()));
    let stamp = output.with_extension(format!("{}.hash", target.extension()));
    let cc = compiler();
    let lock = output_lock(&output);
    let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
    write_generated(g)?;
    let hash = build_hash(g, scale, target, &cc)?;
    let fresh =
        output.exists() && std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == hash.as_str());
    if fresh {
        return Ok(output);
    }

    let tmp = temp_path(&output);
    let args = compiler_args(g, scale, target, &tmp);
    let result = Command::new(&cc).args(&args).output();
    let out = match result {
        Ok(out) => out,
        Err(source) => {
            return Err(BuildError::CompilerMissing {
                compiler: cc,
                source,
            })
        }
    };
    if !out.status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(BuildError::Compile {
            guest: g.name,
            command: format!("{cc} {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    std::fs::rename(&tmp, &output).map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        BuildError::Io {
            path: output.clone(),
            source,
        }
    })?;
    // The stamp goes last: a crash in between leaves a stale stamp, hence a rebuild.
    write_atomically(&stamp, hash.as_bytes())?;
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Decoder, DecoderOptions, EncodingKind, InstructionInfoFactory};

    /// The parts of an ELF64 header and its program headers that the VMM's loader relies on.
    struct Elf {
        class64: bool,
        little_endian: bool,
        e_type: u16,
        machine: u16,
        entry: u64,
        segments: Vec<Segment>,
    }

    struct Segment {
        p_type: u32,
        flags: u32,
        offset: u64,
        vaddr: u64,
        paddr: u64,
        filesz: u64,
        memsz: u64,
    }

    const PT_LOAD: u32 = 1;
    const PF_X: u32 = 1;

    fn u16_at(b: &[u8], at: usize) -> u16 {
        u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
    }
    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }
    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    fn parse_elf(b: &[u8]) -> Elf {
        assert!(b.len() >= 64 && &b[..4] == b"\x7fELF", "not an ELF file");
        let phoff = u64_at(b, 32) as usize;
        let phentsize = usize::from(u16_at(b, 54));
        let phnum = usize::from(u16_at(b, 56));
        let segments = (0..phnum)
            .map(|i| {
                let p = phoff + i * phentsize;
                Segment {
                    p_type: u32_at(b, p),
                    flags: u32_at(b, p + 4),
                    offset: u64_at(b, p + 8),
                    vaddr: u64_at(b, p + 16),
                    paddr: u64_at(b, p + 24),
                    filesz: u64_at(b, p + 32),
                    memsz: u64_at(b, p + 40),
                }
            })
            .collect();
        Elf {
            class64: b[4] == 2,
            little_endian: b[5] == 1,
            e_type: u16_at(b, 16),
            machine: u16_at(b, 18),
            entry: u64_at(b, 24),
            segments,
        }
    }

    fn build_all() -> Vec<(&'static Guest, Vec<u8>)> {
        all()
            .iter()
            .map(|g| {
                let path = build_guest(g, 1).unwrap_or_else(|e| panic!("{e}"));
                (g, std::fs::read(path).unwrap())
            })
            .collect()
    }

    #[test]
    fn names_are_unique_and_match_expected_output() {
        for (i, g) in all().iter().enumerate() {
            assert!(
                all()[..i].iter().all(|o| o.name != g.name),
                "{} twice",
                g.name
            );
            assert!(std::ptr::eq(by_name(g.name).unwrap(), g));
            let prefix = format!("{}: ", g.name);
            assert!(!g.expected.is_empty(), "{}: empty golden output", g.name);
            for line in g.expected.lines() {
                assert!(line.starts_with(&prefix), "{}: stray line {line:?}", g.name);
            }
        }
        let asm = all()
            .iter()
            .filter(|g| g.sources.iter().any(|s| s.ends_with(".S")));
        assert!(asm.count() >= 2);
    }

    #[test]
    fn every_guest_is_a_loadable_elf64_exec_image() {
        for (g, bytes) in build_all() {
            let elf = parse_elf(&bytes);
            assert!(elf.class64 && elf.little_endian, "{}: not ELF64 LE", g.name);
            assert_eq!(elf.e_type, 2, "{}: not ET_EXEC", g.name);
            assert_eq!(elf.machine, 62, "{}: not x86-64", g.name);
            assert!(
                (0x10_0000..0x100_0000).contains(&elf.entry),
                "{}: entry {:#x} outside [1 MiB, 16 MiB)",
                g.name,
                elf.entry
            );
            let loads: Vec<_> = elf
                .segments
                .iter()
                .filter(|s| s.p_type == PT_LOAD)
                .collect();
            assert!(!loads.is_empty(), "{}: no PT_LOAD", g.name);
            for s in &loads {
                assert_eq!(s.vaddr % 4096, 0, "{}: segment not page-aligned", g.name);
                assert_eq!(s.offset % 4096, 0, "{}: offset not page-aligned", g.name);
                assert_eq!(s.vaddr, s.paddr, "{}: not identity-linked", g.name);
                assert!(s.filesz <= s.memsz && s.offset + s.filesz <= bytes.len() as u64);
                assert!(
                    s.vaddr >= 0x10_0000 && s.vaddr + s.memsz <= 0x100_0000,
                    "{}: segment {:#x}+{:#x} outside [1 MiB, 16 MiB)",
                    g.name,
                    s.vaddr,
                    s.memsz
                );
            }
            let text = loads.iter().find(|s| s.flags & PF_X != 0).unwrap();
            assert!((text.vaddr..text.vaddr + text.filesz).contains(&elf.entry));
        }
    }

    /// The instructions in the executable segments of `bytes` (padding between functions,
    /// which may decode as anything and is never run, left out).
    fn decode_text(bytes: &[u8]) -> Vec<iced_x86::Instruction> {
        let elf = parse_elf(bytes);
        let mut insns = Vec::new();
        for s in elf
            .segments
            .iter()
            .filter(|s| s.p_type == PT_LOAD && s.flags & PF_X != 0)
        {
            let code = &bytes[s.offset as usize..(s.offset + s.filesz) as usize];
            let decoder = Decoder::with_ip(64, code, s.vaddr, DecoderOptions::NONE);
            insns.extend(decoder.into_iter().filter(|i| !i.is_invalid()));
        }
        insns
    }

    /// The integer-only guests: decode all executable bytes and reject any vector, x87 or MMX
    /// register; and no guest uses VEX/EVEX/XOP code (popek's CPUID stops at SSE4.2).
    #[test]
    fn guests_use_only_the_instructions_their_flags_allow() {
        for (g, bytes) in build_all() {
            let mut info = InstructionInfoFactory::new();
            for insn in decode_text(&bytes) {
                assert_eq!(
                    insn.encoding(),
                    EncodingKind::Legacy,
                    "{}: {insn} at {:#x}",
                    g.name,
                    insn.ip()
                );
                if !g.integer_only() {
                    continue;
                }
                let used = info.info(&insn).used_registers();
                for r in used.iter().map(|u| u.register()) {
                    let scalar = !(r.is_xmm() || r.is_ymm() || r.is_zmm())
                        && !(r.is_st() || r.is_mm() || r.is_k() || r.is_tmm());
                    assert!(scalar, "{}: {insn} at {:#x} uses {r:?}", g.name, insn.ip());
                }
            }
        }
    }

    /// The floating-point and vector guests really use what they are for: the mnemonics that
    /// must appear in each image (what `objdump -d` shows, in iced-x86's names).
    #[test]
    fn fp_guests_use_their_intended_instructions() {
        use iced_x86::Mnemonic as M;
        let intended: &[(&str, &[M])] = &[
            (
                "vecmath",
                &[
                    M::Addps,
                    M::Mulps,
                    M::Movups,
                    M::Pmulld,
                    M::Pminsd,
                    M::Pmaxsd,
                    M::Pcmpgtd,
                    M::Pblendvb,
                    M::Cvtdq2ps,
                    M::Cvttps2dq,
                ],
            ),
            (
                "nbody",
                &[M::Sqrtsd, M::Mulsd, M::Divsd, M::Addsd, M::Cvtsi2sd],
            ),
            (
                "pcmpstr",
                &[
                    M::Pcmpistri,
                    M::Pcmpistrm,
                    M::Pcmpestri,
                    M::Pcmpestrm,
                    M::Popcnt,
                ],
            ),
            (
                "x87",
                &[
                    M::Fsin,
                    M::Fcos,
                    M::Fsincos,
                    M::Fptan,
                    M::Fpatan,
                    M::F2xm1,
                    M::Fyl2x,
                    M::Fyl2xp1,
                    M::Fscale,
                    M::Fxtract,
                    M::Fprem,
                    M::Fprem1,
                    M::Frndint,
                    M::Fbstp,
                    M::Fbld,
                    M::Fxam,
                    M::Fisttp,
                    M::Fldcw,
                    M::Fcomip,
                ],
            ),
        ];
        for (name, mnemonics) in intended {
            let g = by_name(name).unwrap();
            assert!(!g.integer_only(), "{name}");
            let bytes = std::fs::read(build_guest(g, 1).unwrap_or_else(|e| panic!("{e}"))).unwrap();
            let used: std::collections::HashSet<M> =
                decode_text(&bytes).iter().map(|i| i.mnemonic()).collect();
            let missing: Vec<_> = mnemonics.iter().filter(|m| !used.contains(m)).collect();
            assert!(missing.is_empty(), "{name} does not use {missing:?}");
        }
        let covered: Vec<&str> = intended.iter().map(|(n, _)| *n).collect();
        for g in all().iter().filter(|g| !g.integer_only()) {
            assert!(
                covered.contains(&g.name),
                "{}: no intended instructions",
                g.name
            );
        }
    }

    /// The integer-only check with objdump, where it is installed.
    #[test]
    fn objdump_finds_no_vector_or_x87_registers() {
        for (g, _) in build_all().into_iter().filter(|(g, _)| g.integer_only()) {
            let path = build_guest(g, 1).unwrap();
            let out = match Command::new("objdump").arg("-d").arg(&path).output() {
                Ok(out) if out.status.success() => out,
                _ => {
                    eprintln!("objdump unavailable; skipping");
                    return;
                }
            };
            let text = String::from_utf8_lossy(&out.stdout);
            let bad: Vec<_> = text
                .lines()
                .filter(|l| {
                    ["%xmm", "%ymm", "%zmm", "%st", "%mm"]
                        .iter()
                        .any(|r| l.contains(r))
                })
                .collect();
            assert!(bad.is_empty(), "{}: {bad:#?}", g.name);
        }
    }

    #[test]
    fn flags_are_part_of_the_build_key() {
        let g = by_name("sieve").unwrap();
        let with = |cflags: &'static [&'static str]| Guest {
            name: g.name,
            description: g.description,
            sources: g.sources,
            cflags,
            expected: g.expected,
            generated: None,
        };
        let a = build_hash(&with(INTEGER_ONLY), 1, Target::Guest, "gcc").unwrap();
        let b = build_hash(&with(&["-O3"]), 1, Target::Guest, "gcc").unwrap();
        assert_ne!(a, b);
        assert_eq!(a, build_hash(g, 1, Target::Guest, "gcc").unwrap());
    }

    #[test]
    fn golden_view_hides_only_host_specific_values() {
        let out = "x87: a=01 b=02\nx87: hw sin=0123 acc=ff\nx87: hwx=1\n";
        assert_eq!(
            golden_view(out),
            "x87: a=01 b=02\nx87: hw sin=* acc=*\nx87: hwx=1\n"
        );
        assert_eq!(golden_view("x: hw k=1"), "x: hw k=*");
    }

    #[test]
    fn builds_are_cached_and_keyed_by_scale() {
        let g = by_name("sieve").unwrap();
        let a = build_guest(g, 1).unwrap();
        let modified = std::fs::metadata(&a).unwrap().modified().unwrap();
        assert_eq!(build_guest(g, 1).unwrap(), a);
        assert_eq!(std::fs::metadata(&a).unwrap().modified().unwrap(), modified);
        let b = build_guest(g, 2).unwrap();
        assert_ne!(a, b);
        assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    }

    #[test]
    fn concurrent_builds_agree() {
        let g = by_name("crc32").unwrap();
        let paths: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4).map(|_| s.spawn(|| build_native(g, 3))).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap().unwrap())
                .collect()
        });
        assert!(paths.windows(2).all(|w| w[0] == w[1]));
    }

    #[test]
    fn compile_errors_carry_the_compiler_output() {
        std::fs::create_dir_all(output_dir()).unwrap();
        let source = output_dir().join("broken-test-source.c");
        std::fs::write(&source, "int main(void) { return no_such_variable; }\n").unwrap();
        // An absolute path replaces guests_dir() when joined to it.
        let source: &'static str = Box::leak(source.display().to_string().into_boxed_str());
        let broken = Guest {
            name: "broken-test",
            description: "does not compile",
            sources: Box::leak(Box::new([source])),
            cflags: INTEGER_ONLY,
            expected: "",
            generated: None,
        };
        match build_guest(&broken, 1) {
            Err(BuildError::Compile { stderr, .. }) => {
                assert!(stderr.contains("no_such_variable"), "{stderr}")
            }
            other => panic!("expected a compile error, got {other:?}"),
        }
    }
}
