//! Debian 12's stock cloud kernel boots to the busybox shell of the kit's initramfs
//! (`testsuite/linux/fetch`, run first if the kit is missing) under popek's `dbt` and `trap`
//! engines, in process through the `Vm` API (console input and a serial tap, no stdin), and
//! through the serial console runs:
//!
//! | step | command | compared with |
//! | --- | --- | --- |
//! | uname | `uname -r` | the kit's kernel release, QEMU |
//! | flags | `grep -m1 flags /proc/cpuinfo` | the CPUID model (what must and must not be there) |
//! | clock | the current and available clocksources, `cpu MHz`, `bogomips` | `tsc` (with `kvm-clock` available), 1000.000, 2000.00 |
//! | vuln | `/sys/devices/system/cpu/vulnerabilities/{meltdown,indirect_target_selection}` | `Not affected` (IA32_ARCH_CAPABILITIES: no page-table isolation, no return thunks), QEMU |
//! | sha256 | `sha256sum` of a file made with `seq` and `dd` | QEMU, the host (same busybox) |
//! | awk | a floating-point `awk` loop | QEMU, the host |
//! | fpmath | `testsuite/linux/fpmath.c`: `long double` and SSE math, built at test time with `gcc -static`, added to the initramfs | QEMU, the host |
//!
//! then `poweroff -f`, which must end the VM with a power-off. The oracle is the same
//! conversation under `qemu-system-x86_64 -accel tcg -m 512M -nographic -no-reboot` (run once
//! per test binary). Markers around each command keep kernel log lines out of the
//! comparison.
//!
//! Every engine boots it: dbt (tiered), jit (every block compiled first, ~1 minute), interp
//! (the interpreter tier only, ~2 minutes) and trap.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use runtime::{Engine, RunOutcome};
use testsuite::linux::{self, sections, step, CpioFile, Section, Step};

/// Boot and conversation under popek: 30 s to 2 minutes per engine on an idle 2-core
/// machine; the margin covers a loaded CI machine.
const POPEK_TIMEOUT: Duration = Duration::from_secs(900);
/// QEMU's boot and conversation (about 10 s).
const QEMU_TIMEOUT: Duration = Duration::from_secs(300);

const SHA_CMD: &str = "seq 1 100000 > /tmp/seq.txt && dd if=/dev/zero bs=4096 count=64 \
    2>/dev/null >> /tmp/seq.txt && sha256sum /tmp/seq.txt";
/// Busybox's awk has no math functions here: the square root is Newton's.
const AWK_PROGRAM: &str = "BEGIN { s = 0; for (i = 1; i <= 200000; i++) s += 1 / (i * i); \
    x = 6 * s; r = x; for (k = 0; k < 40; k++) r = (r + x / r) / 2; \
    printf \"%.15f %.10e %d %.17g\\n\", s, r, int(s * 1e9), s / 7 }";

fn steps() -> Vec<Step> {
    vec![
        step("uname", "uname -r"),
        step("flags", "grep -m1 flags /proc/cpuinfo"),
        step(
            "clock",
            "cat /sys/devices/system/clocksource/clocksource0/current_clocksource; \
             cat /sys/devices/system/clocksource/clocksource0/available_clocksource; \
             grep -m1 MHz /proc/cpuinfo; grep -m1 bogomips /proc/cpuinfo",
        ),
        step(
            "vuln",
            "cd /sys/devices/system/cpu/vulnerabilities && cat meltdown && \
             (cat indirect_target_selection 2>/dev/null || echo absent)",
        ),
        step("sha256", SHA_CMD),
        step("awk", &format!("awk '{AWK_PROGRAM}'")),
        step("fpmath", "/bin/fpmath"),
    ]
}

/// The kit, the test initramfs and the host's own results.
struct Setup {
    kit: linux::Kit,
    kernel: Vec<u8>,
    initramfs: Vec<u8>,
    /// The test initramfs on disk (for QEMU).
    initramfs_path: PathBuf,
    host_sha256: String,
    host_awk: String,
    host_fpmath: String,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let kit = linux::kit().unwrap_or_else(|e| panic!("{e}"));
        let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("linux/fpmath.c");
        let fpmath = linux::build_static(&source, &[]).unwrap_or_else(|e| panic!("{e}"));
        let base = std::fs::read(&kit.initramfs).expect("read the kit's initramfs");
        let program = std::fs::read(&fpmath).expect("read fpmath");
        let initramfs = linux::extend_initramfs(
            &base,
            &[CpioFile {
                name: "bin/fpmath".into(),
                mode: 0o755,
                data: program,
            }],
        );
        let initramfs_path = fpmath.with_extension("cpio");
        std::fs::write(&initramfs_path, &initramfs).expect("write the test initramfs");
        let host = |args: &[&str]| {
            let out = Command::new(args[0]).args(&args[1..]).output();
            let out = out.unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert!(out.status.success(), "{args:?}: {out:?}");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let busybox = kit.busybox.to_string_lossy().into_owned();
        let dir = fpmath.with_extension("d");
        std::fs::create_dir_all(&dir).expect("scratch directory");
        let sha_cmd = SHA_CMD.replace("/tmp/", &format!("{}/", dir.display()));
        let host_sha256 = host(&[&busybox, "sh", "-c", &sha_cmd]);
        let host_awk = host(&[&busybox, "awk", AWK_PROGRAM]);
        let host_fpmath = host(&[&fpmath.to_string_lossy()]);
        Setup {
            kernel: std::fs::read(&kit.vmlinuz).expect("read vmlinuz"),
            kit,
            initramfs,
            initramfs_path,
            host_sha256: first_word(&host_sha256),
            host_awk,
            host_fpmath,
        }
    })
}

fn first_word(s: &str) -> String {
    s.split_whitespace().next().unwrap_or_default().to_owned()
}

/// The sections of the QEMU run, or `None` without QEMU (outside CI).
fn qemu() -> Option<&'static BTreeMap<String, Section>> {
    static QEMU: OnceLock<Option<BTreeMap<String, Section>>> = OnceLock::new();
    QEMU.get_or_init(|| {
        if !testsuite::kernels::qemu_available() {
            assert!(
                std::env::var_os("CI").is_none(),
                "qemu-system-x86_64 is required in CI"
            );
            eprintln!("qemu-system-x86_64 not found: no oracle comparison");
            return None;
        }
        let s = setup();
        let cmd = linux::qemu_command(&s.kit.vmlinuz, &s.initramfs_path);
        let boot = linux::boot_process(cmd, &steps(), QEMU_TIMEOUT).expect("start QEMU");
        let console = String::from_utf8_lossy(&boot.console);
        if let Err(e) = &boot.conversation {
            panic!("QEMU: {e}\nstderr: {}", boot.stderr);
        }
        assert_eq!(
            boot.status,
            Some(0),
            "QEMU's exit\n{console}\n{}",
            boot.stderr
        );
        Some(sections(&boot.console))
    })
    .as_ref()
}

/// CPU flags Linux must report (from the CPUID model, the kvmclock and TSC-deadline
/// support), and flags of features popek does not have.
const FLAGS_PRESENT: &[&str] = &[
    "fpu",
    "tsc",
    "msr",
    "pae",
    "cx8",
    "apic",
    "sep",
    "pge",
    "cmov",
    "pat",
    "clflush",
    "mmx",
    "fxsr",
    "sse",
    "sse2",
    "syscall",
    "nx",
    "rdtscp",
    "lm",
    "pni",
    "ssse3",
    "cx16",
    "pcid",
    "sse4_1",
    "sse4_2",
    "popcnt",
    "tsc_deadline_timer",
    "hypervisor",
    "lahf_lm",
    "abm",
    "smep",
    "smap",
    "umip",
    "tsc_known_freq",
    // The model's invariant TSC (CPUID.8000_0007:EDX.8), which Linux reads for a vendor it
    // knows; the virtual TSC does run at a constant rate.
    "constant_tsc",
    "nonstop_tsc",
    "mtrr",
];
const FLAGS_ABSENT: &[&str] = &[
    "avx", "avx2", "xsave", "x2apic", "vmx", "svm", "fma", "aes", "pdpe1gb", "rdrand", "bmi1",
    "movbe",
];

fn boot_and_check(engine: Engine, timeout: Duration) {
    let s = setup();
    let t0 = Instant::now();
    let boot = linux::boot_in_process(engine, &s.kernel, &s.initramfs, &steps(), timeout)
        .unwrap_or_else(|e| panic!("{e}"));
    let console = String::from_utf8_lossy(&boot.console);
    let times = match &boot.conversation {
        Ok(t) => t,
        Err(e) => panic!("{engine:?}: {e}\noutcome {:?}", boot.outcome),
    };
    assert_eq!(boot.outcome, RunOutcome::PowerOff, "{engine:?}\n{console}");
    eprintln!(
        "{engine:?}: /init at {:?}, powered off after {:?} ({} guest instructions, {} blocks \
         translated in {:.1} s)",
        times.run_init,
        t0.elapsed(),
        boot.stats.guest_insns,
        boot.stats.dbt.blocks_translated,
        (boot.stats.dbt.translate_ns + boot.stats.dbt.compile_ns) as f64 / 1e9,
    );
    let got = sections(&boot.console);
    let section = |name: &str| -> &Section {
        let sec = got
            .get(name)
            .unwrap_or_else(|| panic!("{engine:?}: no {name} section\n{console}"));
        assert_eq!(sec.status, 0, "{engine:?}: {name} failed: {}", sec.output);
        sec
    };
    // uname -r
    assert_eq!(section("uname").output.trim(), s.kit.kernel_release);
    // The CPU flags the guest sees.
    let flags = section("flags").output.clone();
    let words: Vec<&str> = flags.split_whitespace().collect();
    for f in FLAGS_PRESENT {
        assert!(words.contains(f), "{engine:?}: no flag {f}: {flags}");
    }
    for f in FLAGS_ABSENT {
        assert!(
            !words.contains(f),
            "{engine:?}: flag {f} is not implemented: {flags}"
        );
    }
    // The TSC as the clocksource (invariant, and its frequency known from kvmclock and
    // CPUID leaf 0x15: Linux rates it above kvm-clock, as on KVM with invtsc), kvm-clock
    // registered next to it.
    let clock = &section("clock").output;
    let lines: Vec<&str> = clock.lines().collect();
    assert_eq!(lines.first(), Some(&"tsc"), "{clock}");
    assert!(
        lines
            .get(1)
            .is_some_and(|l| l.split_whitespace().any(|c| c == "kvm-clock")),
        "{clock}"
    );
    assert!(clock.contains("cpu MHz\t\t: 1000.000"), "{clock}");
    assert!(clock.contains("bogomips\t: 2000.00"), "{clock}");
    // The model's IA32_ARCH_CAPABILITIES: Linux runs without page-table isolation (a soft-TLB
    // flush at every kernel entry and exit) and without ITS return thunks, as on QEMU's model.
    let vuln = &section("vuln").output;
    assert_eq!(
        vuln.lines().next(),
        Some("Not affected"),
        "{engine:?}: {vuln}"
    );
    assert!(!vuln.contains("Mitigation"), "{engine:?}: {vuln}");
    // Host-independent results: the host's.
    assert_eq!(first_word(&section("sha256").output), s.host_sha256);
    assert_eq!(section("awk").output, s.host_awk);
    assert_eq!(section("fpmath").output, s.host_fpmath);
    // The oracle.
    if let Some(q) = qemu() {
        for name in ["uname", "vuln", "sha256", "awk", "fpmath"] {
            let theirs = q
                .get(name)
                .unwrap_or_else(|| panic!("QEMU: no {name} section"));
            assert_eq!(
                section(name).output,
                theirs.output,
                "{engine:?} and QEMU differ on {name}"
            );
        }
        eprintln!("QEMU's CPU flags: {}", q["flags"].output.trim());
    }
}

#[test]
fn debian_boots_to_a_shell_under_dbt() {
    boot_and_check(Engine::Dbt, POPEK_TIMEOUT);
}

#[test]
fn debian_boots_to_a_shell_under_jit() {
    boot_and_check(Engine::Jit, POPEK_TIMEOUT);
}

#[test]
fn debian_boots_to_a_shell_under_trap() {
    boot_and_check(Engine::Trap, POPEK_TIMEOUT);
}

#[test]
fn debian_boots_to_a_shell_under_interp() {
    boot_and_check(Engine::Interp, POPEK_TIMEOUT);
}
