//! The `popek` binary's console input: stdin feeds the guest's COM1 receiver.
//!
//! - stdin a terminal: raw mode as QEMU's `-nographic` console sets it (no echo, no line
//!   editing, no signals from Ctrl-C/Ctrl-Z, CR not turned into NL; output processing kept),
//!   and the `Ctrl-A` escape keys of [`runtime::Escape`]: `Ctrl-A x` quits, `Ctrl-A h`
//!   helps, `Ctrl-A Ctrl-A` sends one `Ctrl-A`.
//! - stdin a pipe or a file: its bytes as they are; at its end the guest keeps running
//!   without input, as under QEMU.
//!
//! SIGINT, SIGTERM, SIGHUP and SIGQUIT stop the VM the ordinary way (statistics, exit status
//! 128 + the signal); a second one ends the process at once.
//!
//! Invariant: the terminal's settings are restored on every way out of the process that
//! runs code — the [`Console`] guard's drop (normal return, error return, a panic unwinding
//! through `run`) and the signal handler (with only async-signal-safe calls: `tcsetattr`,
//! atomic stores, `_exit`).

use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, OnceLock};

use runtime::{ConsoleWriter, Escape, Keystroke, StopHandle};

/// The terminal settings to restore (set once, before raw mode is entered).
static SAVED: OnceLock<libc::termios> = OnceLock::new();
/// The VM's stop flag, for the signal handler.
static STOP_FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
/// The first stop signal received (0: none).
static SIGNALLED: AtomicI32 = AtomicI32::new(0);
/// `Ctrl-A x` was typed.
static QUIT: AtomicBool = AtomicBool::new(false);

/// The signals that stop the VM.
const STOP_SIGNALS: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// Why a run ended with `RunOutcome::Stopped`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopCause {
    /// `--timeout` (nothing else asked).
    Timeout,
    /// `Ctrl-A x`.
    Quit,
    /// This signal.
    Signal(i32),
}

/// Why the VM was stopped from outside.
pub fn stop_cause() -> StopCause {
    match SIGNALLED.load(Ordering::SeqCst) {
        0 if QUIT.load(Ordering::SeqCst) => StopCause::Quit,
        0 => StopCause::Timeout,
        sig => StopCause::Signal(sig),
    }
}

/// Puts the terminal back as it was, if raw mode was entered. Async-signal-safe.
fn restore_terminal() {
    if let Some(saved) = SAVED.get() {
        // SAFETY: `saved` is a valid termios read by tcgetattr from fd 0; tcsetattr only
        // reads it and is async-signal-safe.
        unsafe {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, saved);
        }
    }
}

extern "C" fn on_stop_signal(sig: libc::c_int) {
    restore_terminal();
    if SIGNALLED
        .compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        // SAFETY: `_exit` is async-signal-safe and ends the process without unwinding.
        unsafe { libc::_exit(128 + sig) };
    }
    if let Some(flag) = STOP_FLAG.get() {
        flag.store(true, Ordering::SeqCst);
    }
}

/// Installs [`on_stop_signal`] for [`STOP_SIGNALS`].
fn install_signal_handlers() {
    for sig in STOP_SIGNALS {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the handler is
        // an `extern "C" fn(c_int)` that only makes async-signal-safe calls.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_stop_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

/// Raw mode as QEMU's stdio character device sets it.
fn make_raw(t: &mut libc::termios) {
    t.c_iflag &= !(libc::IGNBRK
        | libc::BRKINT
        | libc::PARMRK
        | libc::ISTRIP
        | libc::INLCR
        | libc::IGNCR
        | libc::ICRNL
        | libc::IXON);
    t.c_oflag |= libc::OPOST;
    t.c_lflag &= !(libc::ECHO | libc::ECHONL | libc::ICANON | libc::IEXTEN | libc::ISIG);
    t.c_cflag &= !(libc::CSIZE | libc::PARENB);
    t.c_cflag |= libc::CS8;
    t.c_cc[libc::VMIN] = 1;
    t.c_cc[libc::VTIME] = 0;
}

/// Whether stdin is a terminal.
fn stdin_is_terminal() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(libc::STDIN_FILENO) == 1 }
}

/// The console while the VM runs; dropping it restores the terminal.
pub struct Console {
    raw: bool,
}

impl Console {
    /// Starts feeding stdin to `writer` from a reader thread (detached: it may stay blocked
    /// in `read` until the process ends), in raw mode with escape keys when stdin is a
    /// terminal, and installs the stop-signal handlers.
    pub fn start(writer: ConsoleWriter, stop: &StopHandle) -> Console {
        let _ = STOP_FLAG.set(stop.flag());
        let raw = stdin_is_terminal() && enter_raw_mode();
        install_signal_handlers();
        let stop = stop.clone();
        std::thread::spawn(move || read_stdin(&writer, raw.then(Escape::default), &stop));
        Console { raw }
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        if self.raw {
            restore_terminal();
        }
    }
}

/// Saves the terminal's settings and enters raw mode; false if either fails.
fn enter_raw_mode() -> bool {
    // SAFETY: a zeroed termios is plain data that tcgetattr overwrites.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `t` is a valid, writable termios.
    if unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut t) } != 0 {
        return false;
    }
    if SAVED.set(t).is_err() {
        return false;
    }
    make_raw(&mut t);
    // SAFETY: `t` is a valid termios.
    unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &t) == 0 }
}

/// The reader thread: stdin to `writer` until EOF, an error, `Ctrl-A x` or the VM's end.
fn read_stdin(writer: &ConsoleWriter, mut escape: Option<Escape>, stop: &StopHandle) {
    let mut stdin = std::io::stdin().lock();
    let mut buf = [0u8; 4096];
    let mut out = Vec::with_capacity(buf.len());
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        let Some(esc) = escape.as_mut() else {
            if writer.send(&buf[..n]).is_err() {
                return;
            }
            continue;
        };
        out.clear();
        for &b in &buf[..n] {
            match esc.feed(b) {
                Keystroke::Byte(b) => out.push(b),
                Keystroke::Help => eprint!("{}", runtime::console::ESCAPE_HELP),
                Keystroke::Nothing => {}
                Keystroke::Quit => {
                    let _ = writer.send(&out);
                    QUIT.store(true, Ordering::SeqCst);
                    stop.stop();
                    return;
                }
            }
        }
        if writer.send(&out).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_mode_is_qemus() {
        // SAFETY: plain data.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        t.c_iflag = libc::ICRNL | libc::IXON | libc::IUTF8;
        t.c_oflag = libc::OPOST | libc::ONLCR;
        t.c_lflag = libc::ECHO | libc::ICANON | libc::ISIG | libc::IEXTEN;
        t.c_cflag = libc::CS7 | libc::PARENB | libc::CREAD;
        make_raw(&mut t);
        assert_eq!(t.c_iflag, libc::IUTF8, "CR stays CR, no flow control");
        assert_eq!(
            t.c_oflag,
            libc::OPOST | libc::ONLCR,
            "output processing kept"
        );
        assert_eq!(
            t.c_lflag, 0,
            "no echo, no line editing, Ctrl-C goes to the guest"
        );
        assert_eq!(t.c_cflag, libc::CS8 | libc::CREAD);
        assert_eq!((t.c_cc[libc::VMIN], t.c_cc[libc::VTIME]), (1, 0));
    }
}
