//! Native twins: each guest program built as a host Linux executable from the same sources
//! and code-generation flags, printing to stdout what the guest prints to its serial port.
//!
//! A native run is the reference output for a guest run, and its wall time is the baseline
//! for the engines' timings. The twin is static and free of libc (raw `write`/`exit_group`
//! system calls), so it runs on any x86-64 Linux host.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::guests::{build_native, BuildError, Guest};

/// Build (if needed) and run `g`'s native twin; return its stdout and the wall time of the run
/// (process start to exit, build excluded). A nonzero exit status — a failed self-check in
/// the program — is an error.
pub fn run_native(g: &Guest, scale: u32) -> Result<(Vec<u8>, Duration), BuildError> {
    let path = build_native(g, scale)?;
    run_binary(g, None, &path)
}

/// [`run_native`] with the twin started by `launcher` (`launcher <twin>`): under a user-mode
/// emulator such as `qemu-x86_64`, which the wall time then includes.
pub fn run_native_under(
    g: &Guest,
    scale: u32,
    launcher: &Path,
) -> Result<(Vec<u8>, Duration), BuildError> {
    let path = build_native(g, scale)?;
    run_binary(g, Some(launcher), &path)
}

fn run_binary(
    g: &Guest,
    launcher: Option<&Path>,
    path: &Path,
) -> Result<(Vec<u8>, Duration), BuildError> {
    let mut cmd = match launcher {
        Some(l) => {
            let mut cmd = Command::new(l);
            cmd.arg(path);
            cmd
        }
        None => Command::new(path),
    };
    let start = Instant::now();
    let out = cmd.output();
    let elapsed = start.elapsed();
    let program = launcher.unwrap_or(path);
    let out = out.map_err(|e| BuildError::NativeRun {
        guest: g.name,
        status: None,
        stdout: String::new(),
        stderr: format!("cannot start {}: {e}", program.display()),
    })?;
    if !out.status.success() {
        return Err(BuildError::NativeRun {
            guest: g.name,
            status: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok((out.stdout, elapsed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guests::{all, build_guest, by_name, golden_view, guests_dir};
    use std::io;
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;

    /// The native twins print the golden output (values of host-specific lines aside: see
    /// [`crate::guests::golden_view`]).
    #[test]
    fn native_twins_print_their_golden_output() {
        let bless = std::env::var_os("BLESS").is_some();
        let mut mismatches = Vec::new();
        for g in all() {
            let (out, _) = run_native(g, 1).unwrap_or_else(|e| panic!("{e}"));
            let out = String::from_utf8(out).expect("guest output is ASCII");
            if bless {
                let path = guests_dir()
                    .join("expected")
                    .join(format!("{}.out", g.name));
                std::fs::write(&path, &out).unwrap();
            } else if golden_view(&out) != golden_view(g.expected) {
                mismatches.push(format!(
                    "{}:\n got:\n{out}\n expected:\n{}",
                    g.name, g.expected
                ));
            }
        }
        assert!(
            mismatches.is_empty(),
            "native output differs from guests/expected (BLESS=1 to accept):\n{}",
            mismatches.join("\n")
        );
    }

    #[test]
    fn native_twins_are_deterministic_and_well_formed() {
        for g in all() {
            let (first, _) = run_native(g, 1).unwrap_or_else(|e| panic!("{e}"));
            let (second, _) = run_native(g, 1).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(first, second, "{}: two runs differ", g.name);
            let text = String::from_utf8(first).expect("guest output is ASCII");
            assert!(text.ends_with('\n'), "{}: unterminated output", g.name);
            let prefix = format!("{}: ", g.name);
            for line in text.lines() {
                assert!(line.starts_with(&prefix), "{}: stray line {line:?}", g.name);
                assert!(!line.contains("FAIL"), "{}: {line}", g.name);
            }
        }
    }

    /// SCALE changes the work done, not just a label: the sieve's bound grows with it.
    #[test]
    fn scale_changes_the_computation() {
        let g = by_name("sieve").unwrap();
        let (one, _) = run_native(g, 1).unwrap();
        let (two, _) = run_native(g, 2).unwrap();
        assert_ne!(one, two);
        assert!(String::from_utf8(two)
            .unwrap()
            .contains("limit=0000000000080000"));
    }

    /// What became of a guest image run as a host process.
    enum HostRun {
        /// It wrote `value` to the isa-debug-exit port after printing `output`.
        Exited { output: Vec<u8>, value: u32 },
        /// ptrace is not permitted here.
        Unsupported(io::Error),
    }

    /// Run a guest ELF image as an ordinary host process: the image is linked at 1 MiB, which
    /// Linux maps like any static executable, and at CPL 3 each `out` faults; under ptrace the
    /// serial `outb` is emulated (its byte collected, RIP stepped past it) and the
    /// isa-debug-exit `outl` ends the run. This checks the bare-metal build itself (its
    /// `_start`, .bss and stack set-up, serial output) on the real CPU, with no VMM involved.
    fn run_image_on_host(path: &Path) -> Result<HostRun, String> {
        let mut cmd = Command::new(path);
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
        // SAFETY: the closure runs between fork and exec and makes one system call, which is
        // async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => return Ok(HostRun::Unsupported(e)),
            Err(e) => return Err(format!("cannot start {}: {e}", path.display())),
        };
        let pid = child.id() as libc::pid_t;
        let wait = || {
            let mut status = 0;
            // SAFETY: waiting for our own child, with a valid pointer for the status.
            let r = unsafe { libc::waitpid(pid, &mut status, 0) };
            assert_eq!(r, pid, "waitpid: {}", io::Error::last_os_error());
            status
        };
        let kill = || {
            // SAFETY: the child is ours and not yet reaped, so the pid is still its own.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            wait();
        };
        // The child stops with SIGTRAP at its exec.
        wait();
        let mut output = Vec::new();
        let mut pass_signal = 0usize;
        loop {
            // SAFETY: ptrace requests on our stopped tracee; data is a signal number.
            unsafe { libc::ptrace(libc::PTRACE_CONT, pid, 0, pass_signal) };
            pass_signal = 0;
            let status = wait();
            if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
                return Err(format!(
                    "{} ended without reaching the exit port",
                    path.display()
                ));
            }
            let signal = libc::WSTOPSIG(status);
            if signal != libc::SIGSEGV {
                pass_signal = signal as usize;
                continue;
            }
            // SAFETY: an all-zero user_regs_struct is valid; GETREGS fills it in.
            let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
            // SAFETY: the tracee is stopped; regs is a valid user_regs_struct to write.
            unsafe { libc::ptrace(libc::PTRACE_GETREGS, pid, 0, &mut regs) };
            // SAFETY: reading one word of the stopped tracee's text.
            let word = unsafe { libc::ptrace(libc::PTRACE_PEEKTEXT, pid, regs.rip, 0) } as u64;
            match (word as u8, (word >> 8) as u8) {
                // out %al, %dx to COM1's data register
                (0xee, _) if regs.rdx as u16 == 0x3f8 => {
                    output.push(regs.rax as u8);
                    regs.rip += 1;
                    // SAFETY: as for GETREGS; regs holds the tracee's registers.
                    unsafe { libc::ptrace(libc::PTRACE_SETREGS, pid, 0, &regs) };
                }
                // out %eax, $0xf4: isa-debug-exit
                (0xe7, 0xf4) => {
                    kill();
                    let value = regs.rax as u32;
                    return Ok(HostRun::Exited { output, value });
                }
                (b0, b1) => {
                    kill();
                    return Err(format!(
                        "{}: unexpected fault at {:#x} ({b0:02x} {b1:02x})",
                        path.display(),
                        regs.rip
                    ));
                }
            }
        }
    }

    #[test]
    fn guest_images_print_the_golden_output_on_the_host_cpu() {
        for g in all() {
            let path = build_guest(g, 1).unwrap_or_else(|e| panic!("{e}"));
            match run_image_on_host(&path).unwrap() {
                HostRun::Exited { output, value } => {
                    assert_eq!(value, 0, "{}: exit value", g.name);
                    assert_eq!(
                        golden_view(&String::from_utf8_lossy(&output)),
                        golden_view(g.expected),
                        "{}",
                        g.name
                    );
                }
                HostRun::Unsupported(e) => {
                    eprintln!("ptrace not permitted ({e}); skipping");
                    return;
                }
            }
        }
    }
}
