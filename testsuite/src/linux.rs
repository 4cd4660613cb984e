//! Debian's kernel with its busybox initramfs (the kit `testsuite/linux/fetch` builds in
//! `target/linux-kit/`), booted under popek and under `qemu-system-x86_64 -accel tcg`, with a
//! shell conversation over the serial console.
//!
//! [`converse`] waits for the kit's `/init` to say `popek-init: ready` and for the shell's
//! prompt, then types each [`Step`] after the previous one finished, wrapped in markers:
//!
//! ```text
//! echo "@@""BEGIN name"; { command; }; echo "@@""END name $?"
//! ```
//!
//! The quotes keep the echoed command line from reading as a marker, so [`sections`] finds
//! each command's output (kernel log lines dropped) whatever else the console prints. The
//! conversation ends with `poweroff -f`.
//!
//! A [`Line`] is either an in-process [`runtime::Vm`] ([`boot_in_process`]: its console input
//! and serial tap, no stdin involved) or a child process's stdin and stdout ([`boot_process`]:
//! QEMU, or the `popek` binary for timings from process start).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runtime::{BootSpec, ConsoleWriter, Engine, Initrd, RunOutcome, SerialSink, Vm, VmConfig};

/// What the kit's `/init` prints once the file systems are mounted, before the shell starts.
pub const READY: &str = "popek-init: ready";
/// The kernel's line when it starts `/init`.
pub const RUN_INIT: &str = "Run /init";
/// The command line the test and benchmark boot with.
pub const APPEND: &str = "console=ttyS0 panic=-1";
/// Guest RAM.
pub const MEM_BYTES: u64 = 512 << 20;

/// Errors of the Linux harness.
#[derive(Debug, thiserror::Error)]
pub enum LinuxError {
    /// The kit is missing and `testsuite/linux/fetch` could not build it: {0}
    #[error("the Linux kit is missing and testsuite/linux/fetch could not build it: {0}")]
    Kit(String),
    /// {path}: {source}
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Building {what} failed: {detail}
    #[error("building {what} failed: {detail}")]
    Build {
        /// What was built.
        what: String,
        /// The tool's message.
        detail: String,
    },
    /// The VM could not be set up: {0}
    #[error("the VM could not be set up: {0}")]
    Vm(String),
    /// The conversation failed: {reason}
    #[error("the conversation failed: {reason}\n--- console so far ---\n{console}")]
    Conversation {
        /// What went wrong (a timeout, a closed line).
        reason: String,
        /// Everything the guest printed.
        console: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LinuxError + '_ {
    move |source| LinuxError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The workspace root.
fn workspace() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_owned()
}

/// The kit's files.
#[derive(Clone, Debug)]
pub struct Kit {
    /// Debian's `linux-image-*-cloud-amd64` bzImage.
    pub vmlinuz: PathBuf,
    /// The busybox initramfs.
    pub initramfs: PathBuf,
    /// The static busybox the initramfs holds, runnable on the host.
    pub busybox: PathBuf,
    /// The kernel's release (`uname -r`).
    pub kernel_release: String,
}

/// The kit in `target/linux-kit/`, built with `testsuite/linux/fetch` first if it is missing.
pub fn kit() -> Result<Kit, LinuxError> {
    static FETCH: Mutex<()> = Mutex::new(());
    let dir = workspace().join("target/linux-kit");
    let find = || {
        let kit = Kit {
            vmlinuz: dir.join("vmlinuz"),
            initramfs: dir.join("initramfs.cpio.gz"),
            busybox: dir.join("busybox/bin/busybox"),
            kernel_release: std::fs::read_to_string(dir.join("kernel-version"))
                .ok()?
                .trim()
                .to_owned(),
        };
        (kit.vmlinuz.exists() && kit.initramfs.exists() && kit.busybox.exists()).then_some(kit)
    };
    let _guard = FETCH.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(kit) = find() {
        return Ok(kit);
    }
    let script = workspace().join("testsuite/linux/fetch");
    let out = Command::new(&script)
        .output()
        .map_err(|e| LinuxError::Kit(format!("{}: {e}", script.display())))?;
    if !out.status.success() {
        return Err(LinuxError::Kit(String::from_utf8_lossy(&out.stderr).into()));
    }
    find().ok_or_else(|| LinuxError::Kit("fetch succeeded but files are missing".into()))
}

/// A file for an initramfs.
#[derive(Clone, Debug)]
pub struct CpioFile {
    /// Path inside the archive, without a leading `/` (its directory must exist).
    pub name: String,
    /// Permission bits (a regular file).
    pub mode: u32,
    /// Contents.
    pub data: Vec<u8>,
}

/// A newc (`070701`) cpio archive of regular `files`, with its trailer.
pub fn newc(files: &[CpioFile]) -> Vec<u8> {
    fn pad(v: &mut Vec<u8>) {
        v.resize(v.len().next_multiple_of(4), 0);
    }
    let mut out = Vec::new();
    let mut put = |ino: usize, name: &str, mode: u32, data: &[u8]| {
        let fields = [
            ino as u32,
            mode,
            0,
            0,
            1,
            0,
            data.len() as u32,
            0,
            0,
            0,
            0,
            name.len() as u32 + 1,
            0,
        ];
        out.extend_from_slice(b"070701");
        for f in fields {
            out.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        pad(&mut out);
        out.extend_from_slice(data);
        pad(&mut out);
    };
    for (i, f) in files.iter().enumerate() {
        put(i + 1, &f.name, 0o100_000 | (f.mode & 0o7777), &f.data);
    }
    put(0, "TRAILER!!!", 0, &[]);
    out
}

/// `base` (an initramfs, compressed or not) followed by a newc archive of `files`: the kernel
/// unpacks concatenated archives in order, later files replacing earlier ones. Zero padding
/// aligns the new archive to 4 bytes, as the kernel's unpacker requires.
pub fn extend_initramfs(base: &[u8], files: &[CpioFile]) -> Vec<u8> {
    let mut out = base.to_vec();
    out.resize(out.len().next_multiple_of(4), 0);
    out.extend_from_slice(&newc(files));
    out
}

/// Builds a static C program from `source` with the host's gcc into `target/linux-test/`.
pub fn build_static(source: &Path, extra_flags: &[&str]) -> Result<PathBuf, LinuxError> {
    let dir = workspace().join("target/linux-test");
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let stem = source.file_stem().unwrap_or_default().to_string_lossy();
    let out = dir.join(format!("{stem}.{}", std::process::id()));
    let result = Command::new("gcc")
        .args(["-O2", "-static", "-ffp-contract=off", "-Wall", "-o"])
        .arg(&out)
        .arg(source)
        .args(extra_flags)
        .output()
        .map_err(io_err(Path::new("gcc")))?;
    if !result.status.success() {
        return Err(LinuxError::Build {
            what: source.display().to_string(),
            detail: String::from_utf8_lossy(&result.stderr).into(),
        });
    }
    Ok(out)
}

/// One command of a conversation.
#[derive(Clone, Debug)]
pub struct Step {
    /// The marker name (no spaces).
    pub name: String,
    /// A shell command line (one line).
    pub command: String,
}

/// A [`Step`].
pub fn step(name: &str, command: &str) -> Step {
    Step {
        name: name.to_owned(),
        command: command.to_owned(),
    }
}

/// The line typed for `s`.
fn marked(s: &Step) -> String {
    format!(
        "echo \"@@\"\"BEGIN {0}\"; {{ {1}; }}; echo \"@@\"\"END {0} $?\"\n",
        s.name, s.command
    )
}

/// One command's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// Its lines (`\n`-terminated, kernel log lines removed).
    pub output: String,
    /// Its exit status.
    pub status: i32,
}

/// Whether `line` is a kernel log line (`[   12.345678] ...`).
fn is_kernel_log(line: &str) -> bool {
    let Some(rest) = line.strip_prefix('[') else {
        return false;
    };
    let Some((stamp, _)) = rest.split_once(']') else {
        return false;
    };
    let stamp = stamp.trim();
    !stamp.is_empty() && stamp.chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// Each marked command's output in `console` (see the module documentation).
pub fn sections(console: &[u8]) -> BTreeMap<String, Section> {
    let text = String::from_utf8_lossy(console).replace('\r', "");
    let mut out = BTreeMap::new();
    let mut open: Option<(String, String)> = None;
    for line in text.lines() {
        // A marker may follow other output on its line (a prompt, a kernel message).
        let after = |marker: &str| line.find(marker).map(|i| &line[i + marker.len()..]);
        if let Some(name) = after("@@BEGIN ") {
            open = Some((name.to_owned(), String::new()));
        } else if let Some(rest) = after("@@END ") {
            let mut words = rest.split(' ');
            let (name, status) = (words.next(), words.next().and_then(|s| s.parse().ok()));
            if let (Some((open_name, output)), Some(name), Some(status)) =
                (open.take(), name, status)
            {
                if open_name == name {
                    out.insert(name.to_owned(), Section { output, status });
                }
            }
        } else if let Some((_, output)) = open.as_mut() {
            if !is_kernel_log(line) {
                output.push_str(line);
                output.push('\n');
            }
        }
    }
    out
}

/// A serial line to a guest's console.
pub trait Line {
    /// Types `bytes`; false if the line is gone.
    fn send(&mut self, bytes: &[u8]) -> bool;
    /// What the guest printed next, waiting up to `timeout`; `None` on a timeout or a
    /// closed line (see [`Line::closed`]).
    fn recv(&mut self, timeout: Duration) -> Option<Vec<u8>>;
    /// Whether the guest side is gone (the VM stopped, the process exited).
    fn closed(&self) -> bool;
}

/// When things happened in a conversation, from the caller's start instant.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    /// The kernel printed `Run /init`.
    pub run_init: Option<Duration>,
    /// `/init` printed [`READY`].
    pub ready: Option<Duration>,
    /// Each step finished (its END marker arrived).
    pub steps: Vec<(String, Duration)>,
    /// `poweroff -f` was typed.
    pub poweroff: Option<Duration>,
}

/// Holds the conversation of the module documentation over `line`: waits for [`READY`] and
/// the prompt, runs `steps` one after another, types `poweroff -f`. Returns what the guest
/// printed meanwhile and when. Fails when `deadline` (from `start`) passes or the line
/// closes before the end.
pub fn converse(
    line: &mut dyn Line,
    steps: &[Step],
    start: Instant,
    deadline: Duration,
) -> Result<(Vec<u8>, Timeline), LinuxError> {
    let mut t = Talk {
        line,
        console: Vec::new(),
        times: Timeline::default(),
        start,
        deadline,
    };
    let ready = t.wait_for(READY, 0)?;
    // Each line is typed at a prompt, so the shell reads it as a command.
    let mut at = t.wait_for("# ", ready)?;
    for s in steps {
        t.send(&marked(s), &s.name)?;
        let after = t.wait_for(&format!("@@END {} ", s.name), at)?;
        let line_end = t.wait_for("\n", after)?;
        t.times.steps.push((s.name.clone(), start.elapsed()));
        at = t.wait_for("# ", line_end)?;
    }
    t.send("poweroff -f\n", "poweroff")?;
    t.times.poweroff = Some(start.elapsed());
    Ok((t.console, t.times))
}

/// A conversation in progress (see [`converse`]).
struct Talk<'a> {
    line: &'a mut dyn Line,
    console: Vec<u8>,
    times: Timeline,
    start: Instant,
    deadline: Duration,
}

impl Talk<'_> {
    fn fail(&self, reason: String) -> LinuxError {
        LinuxError::Conversation {
            reason,
            console: String::from_utf8_lossy(&self.console).into_owned(),
        }
    }

    fn send(&mut self, text: &str, what: &str) -> Result<(), LinuxError> {
        if self.line.send(text.as_bytes()) {
            Ok(())
        } else {
            Err(self.fail(format!("line closed before {what}")))
        }
    }

    /// Reads until `pattern` appears at or after offset `from`; returns the offset after it.
    fn wait_for(&mut self, pattern: &str, from: usize) -> Result<usize, LinuxError> {
        loop {
            if let Some(at) = find(&self.console, pattern.as_bytes(), from) {
                return Ok(at + pattern.len());
            }
            let left = self.deadline.saturating_sub(self.start.elapsed());
            if left.is_zero() || self.line.closed() {
                let why = if left.is_zero() {
                    "timed out"
                } else {
                    "line closed"
                };
                return Err(self.fail(format!("{why} waiting for {pattern:?}")));
            }
            let Some(bytes) = self.line.recv(left.min(Duration::from_millis(100))) else {
                continue;
            };
            let before = self.console.len();
            self.console.extend_from_slice(&bytes);
            let now = self.start.elapsed();
            for (mark, slot) in [
                (RUN_INIT, &mut self.times.run_init),
                (READY, &mut self.times.ready),
            ] {
                let tail = before.saturating_sub(mark.len());
                if slot.is_none() && find(&self.console, mark.as_bytes(), tail).is_some() {
                    *slot = Some(now);
                }
            }
        }
    }
}

/// The first offset of `needle` in `hay` at or after `from`.
fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// An in-process VM's console: [`Vm::console_input`] and [`Vm::serial_tap`].
struct VmLine {
    tx: ConsoleWriter,
    rx: Receiver<Vec<u8>>,
    done: Arc<AtomicBool>,
}

impl Line for VmLine {
    fn send(&mut self, bytes: &[u8]) -> bool {
        self.tx.send(bytes).is_ok()
    }
    fn recv(&mut self, timeout: Duration) -> Option<Vec<u8>> {
        let first = self.rx.recv_timeout(timeout).ok()?;
        Some(
            first
                .into_iter()
                .chain(self.rx.try_iter().flatten())
                .collect(),
        )
    }
    fn closed(&self) -> bool {
        self.done.load(Ordering::SeqCst)
    }
}

/// A boot under an in-process VM.
#[derive(Debug)]
pub struct VmBoot {
    /// How the run ended (a `poweroff -f` is [`RunOutcome::PowerOff`]).
    pub outcome: RunOutcome,
    /// Everything the guest printed.
    pub console: Vec<u8>,
    /// The conversation's result: its timeline, or why it failed.
    pub conversation: Result<Timeline, LinuxError>,
    /// The VM's statistics.
    pub stats: runtime::Stats,
    /// From before the VM was created to the end of its run.
    pub total: Duration,
}

/// Boots `kernel` with `initrd` under an in-process [`Vm`] on `engine` and holds the
/// conversation over its console (no stdin involved); the VM is stopped if `timeout` passes.
/// Times count from just before the VM is created.
pub fn boot_in_process(
    engine: Engine,
    kernel: &[u8],
    initrd: &[u8],
    steps: &[Step],
    timeout: Duration,
) -> Result<VmBoot, LinuxError> {
    let start = Instant::now();
    let mut vm = Vm::new(VmConfig {
        mem_bytes: MEM_BYTES,
        engine,
        serial: SerialSink::Capture,
        ..VmConfig::default()
    })
    .map_err(|e| LinuxError::Vm(e.to_string()))?;
    let initrds = [Initrd {
        entry: "initramfs".into(),
        bytes: initrd.to_vec(),
    }];
    let spec = BootSpec {
        kernel,
        kernel_name: "vmlinuz",
        append: APPEND,
        initrds: &initrds,
    };
    vm.boot(&spec).map_err(|e| LinuxError::Vm(e.to_string()))?;
    let done = Arc::new(AtomicBool::new(false));
    let mut line = VmLine {
        tx: vm.console_input(),
        rx: vm.serial_tap(),
        done: done.clone(),
    };
    let stop = vm.stop_handle();
    let steps = steps.to_vec();
    let driver = std::thread::spawn(move || {
        let result = converse(&mut line, &steps, start, timeout);
        // After `poweroff -f` (or a failure) the VM must end by the deadline.
        while !line.closed() && start.elapsed() < timeout {
            let _ = line.recv(Duration::from_millis(50));
        }
        stop.stop();
        result.map(|(_, times)| times)
    });
    let outcome = vm.run();
    let total = start.elapsed();
    done.store(true, Ordering::SeqCst);
    let conversation = driver
        .join()
        .unwrap_or_else(|_| Err(LinuxError::Vm("the driver thread panicked".into())));
    Ok(VmBoot {
        outcome,
        console: vm.serial_output().to_vec(),
        conversation,
        stats: vm.stats(),
        total,
    })
}

/// A child process's stdin and stdout.
struct ChildLine {
    stdin: Option<ChildStdin>,
    rx: Receiver<Vec<u8>>,
    closed: bool,
}

impl Line for ChildLine {
    fn send(&mut self, bytes: &[u8]) -> bool {
        self.stdin
            .as_mut()
            .is_some_and(|s| s.write_all(bytes).and_then(|()| s.flush()).is_ok())
    }
    fn recv(&mut self, timeout: Duration) -> Option<Vec<u8>> {
        match self.rx.recv_timeout(timeout) {
            Ok(first) => Some(
                first
                    .into_iter()
                    .chain(self.rx.try_iter().flatten())
                    .collect(),
            ),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                self.closed = true;
                None
            }
        }
    }
    fn closed(&self) -> bool {
        self.closed
    }
}

/// A boot under a child process.
#[derive(Debug)]
pub struct ProcessBoot {
    /// The exit status (`None`: killed at the timeout, or by a signal).
    pub status: Option<i32>,
    /// Everything the process printed on stdout (the guest's console).
    pub console: Vec<u8>,
    /// What it printed on stderr.
    pub stderr: String,
    /// The conversation's result.
    pub conversation: Result<Timeline, LinuxError>,
    /// Process start to exit.
    pub total: Duration,
}

/// Runs `cmd` (an emulator with the guest's console on stdin/stdout) and holds the
/// conversation; kills it if `timeout` passes.
pub fn boot_process(
    mut cmd: Command,
    steps: &[Step],
    timeout: Duration,
) -> Result<ProcessBoot, LinuxError> {
    let program = PathBuf::from(cmd.get_program());
    let start = Instant::now();
    let mut child: Child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io_err(&program))?;
    let (tx, rx) = std::sync::mpsc::channel();
    let mut stdout = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut stderr = child.stderr.take().expect("piped stderr");
    let errs = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut line = ChildLine {
        stdin: child.stdin.take(),
        rx,
        closed: false,
    };
    let result = converse(&mut line, steps, start, timeout);
    let mut console = match &result {
        Ok((c, _)) => c.clone(),
        Err(_) => Vec::new(),
    };
    // Read the rest until the process ends or the deadline passes.
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status.code();
        }
        if start.elapsed() >= timeout {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let total = start.elapsed();
    drop(line.stdin.take());
    while let Some(more) = line.recv(Duration::from_millis(200)) {
        console.extend_from_slice(&more);
    }
    let conversation = result.map(|(_, times)| times);
    if let Err(LinuxError::Conversation { console: seen, .. }) = &conversation {
        console = seen.clone().into_bytes();
    }
    Ok(ProcessBoot {
        status,
        console,
        stderr: errs.join().unwrap_or_default(),
        conversation,
        total,
    })
}

/// `qemu-system-x86_64 -accel tcg -m 512M -nographic -no-reboot` booting `kernel` and
/// `initrd` with [`APPEND`], as the README's command.
pub fn qemu_command(kernel: &Path, initrd: &Path) -> Command {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-accel", "tcg", "-m", "512M", "-nographic", "-no-reboot"])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", APPEND]);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_find_marked_output_and_drop_kernel_log_lines() {
        let console = b"/ # echo \"@@\"\"BEGIN a\"; { uname -r; }; echo \"@@\"\"END a $?\"\r\n\
            @@BEGIN a\r\n6.1.0\r\n[   12.345678] random: crng init done\r\n@@END a 0\r\n\
            / # @@BEGIN b\r\n@@END b 3\r\n@@BEGIN c\r\nunfinished\r\n";
        let s = sections(console);
        assert_eq!(s.len(), 2);
        assert_eq!(
            s["a"],
            Section {
                output: "6.1.0\n".into(),
                status: 0
            }
        );
        assert_eq!(s["b"].status, 3);
        assert!(is_kernel_log("[    0.000000] Linux version"));
        assert!(!is_kernel_log("[x] no"));
        assert_eq!(
            marked(&step("n", "true")),
            "echo \"@@\"\"BEGIN n\"; { true; }; echo \"@@\"\"END n $?\"\n"
        );
    }

    #[test]
    fn newc_archives_are_aligned_and_terminated() {
        let a = newc(&[CpioFile {
            name: "bin/x".into(),
            mode: 0o755,
            data: b"abc".to_vec(),
        }]);
        assert_eq!(a.len() % 4, 0);
        assert!(a.starts_with(b"070701"));
        // mode 0100755, file size 3, name size 6.
        assert_eq!(&a[14..22], b"000081ED");
        assert_eq!(&a[54..62], b"00000003");
        assert_eq!(&a[94..102], b"00000006");
        let name_at = 110;
        assert_eq!(&a[name_at..name_at + 6], b"bin/x\0");
        assert_eq!(&a[116..119], b"abc", "header + name padded to 4");
        assert!(find(&a, b"TRAILER!!!\0", 0).is_some());
        let ext = extend_initramfs(b"12345", &[]);
        assert_eq!(&ext[..8], b"12345\0\0\0");
        assert!(ext[8..].starts_with(b"070701"));
    }

    /// A scripted line: the guest's side of a conversation, for [`converse`].
    struct Script {
        pending: Vec<Vec<u8>>,
        typed: Vec<u8>,
    }

    impl Line for Script {
        fn send(&mut self, bytes: &[u8]) -> bool {
            self.typed.extend_from_slice(bytes);
            let text = String::from_utf8_lossy(bytes).into_owned();
            if let Some(rest) = text.split("BEGIN ").nth(1) {
                let name = rest.split('"').next().unwrap_or_default();
                self.pending
                    .push(format!("@@BEGIN {name}\r\nout\r\n@@END {name} 0\r\n/ # ").into());
            }
            true
        }
        fn recv(&mut self, _: Duration) -> Option<Vec<u8>> {
            (!self.pending.is_empty()).then(|| self.pending.remove(0))
        }
        fn closed(&self) -> bool {
            false
        }
    }

    #[test]
    fn converse_types_each_step_after_the_previous_one() {
        let mut line = Script {
            pending: vec![
                b"[ 1.0] Run /init as init process\r\n".to_vec(),
                b"popek-init: ready\r\n/ # ".to_vec(),
            ],
            typed: Vec::new(),
        };
        let steps = [step("one", "true"), step("two", "false")];
        let (console, times) =
            converse(&mut line, &steps, Instant::now(), Duration::from_secs(5)).unwrap();
        assert!(times.run_init.is_some() && times.ready.is_some());
        assert_eq!(times.steps.len(), 2);
        let typed = String::from_utf8(line.typed).unwrap();
        assert!(typed.ends_with("poweroff -f\n"), "{typed}");
        assert_eq!(
            sections(&console).len(),
            2,
            "{}",
            String::from_utf8_lossy(&console)
        );
        // A guest that never answers: a timeout naming what was awaited.
        let mut silent = Script {
            pending: Vec::new(),
            typed: Vec::new(),
        };
        let err = converse(
            &mut silent,
            &steps,
            Instant::now(),
            Duration::from_millis(50),
        );
        assert!(matches!(err, Err(LinuxError::Conversation { .. })));
        // No steps: power off at the first prompt.
        let mut line = Script {
            pending: vec![b"popek-init: ready\r\n/ # ".to_vec()],
            typed: Vec::new(),
        };
        converse(&mut line, &[], Instant::now(), Duration::from_secs(5)).unwrap();
        assert_eq!(line.typed, b"poweroff -f\n");
    }
}
