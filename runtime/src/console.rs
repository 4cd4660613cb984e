//! Console input: bytes for COM1's receiver, from another thread (the `popek` binary's stdin
//! reader, a test, a harness) to the run loop.
//!
//! A [`ConsoleWriter`] sends chunks over a bounded channel (a full channel blocks the
//! sender: a large file on stdin is read no faster than the guest consumes it) and rings the
//! machine's [`Doorbell`], so a halted vCPU wakes at once instead of at its next timer. The
//! run loop owns the [`ConsoleInput`] and moves bytes into the UART's 64-byte receive FIFO as
//! it has room ([`ConsoleInput::pump`], called from `engine::vcpu::service`).
//!
//! [`Escape`] is the terminal's escape-key state machine (QEMU's `Ctrl-A` prefix), pure so it
//! can be tested without a terminal.
//!
//! Invariants: bytes reach the UART in the order they were sent, none is dropped or
//! duplicated; the end of the input (the writer dropped, e.g. EOF on a pipe) leaves the guest
//! running with no more input, as QEMU does.

use std::collections::VecDeque;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::devices::Serial;

/// Chunks the channel holds before a sender blocks.
const CHANNEL_CHUNKS: usize = 64;

/// Wakes a halted vCPU: [`Doorbell::ring`] from any thread ends the current or next
/// [`Doorbell::wait`]. Clones share the bell.
#[derive(Clone, Debug, Default)]
pub struct Doorbell(Arc<(Mutex<bool>, Condvar)>);

impl Doorbell {
    /// A bell that has not rung.
    pub fn new() -> Doorbell {
        Doorbell::default()
    }

    /// Rings: the waiter wakes (or its next wait returns at once).
    pub fn ring(&self) {
        let (flag, cv) = &*self.0;
        // A poisoned lock only means a waiter panicked; the flag is still a plain bool.
        *flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
    }

    /// Waits until the bell rings or `timeout` passes; returns whether it rang (and clears it).
    pub fn wait(&self, timeout: Duration) -> bool {
        let (flag, cv) = &*self.0;
        let guard = flag.lock().unwrap_or_else(|e| e.into_inner());
        let (mut rang, _) = cv
            .wait_timeout_while(guard, timeout, |rang| !*rang)
            .unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *rang)
    }
}

/// The sending end of the console: cloneable, `Send`.
#[derive(Clone, Debug)]
pub struct ConsoleWriter {
    tx: SyncSender<Vec<u8>>,
    bell: Doorbell,
}

/// The VM (and its console input) is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the console's receiver is gone")]
pub struct ConsoleClosed;

impl ConsoleWriter {
    /// Sends `bytes` to the guest's UART; blocks while the channel is full. Errors when the
    /// VM has been dropped.
    pub fn send(&self, bytes: &[u8]) -> Result<(), ConsoleClosed> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.tx.send(bytes.to_vec()).map_err(|_| ConsoleClosed)?;
        self.bell.ring();
        Ok(())
    }
}

/// The receiving end, owned by the machine.
#[derive(Debug, Default)]
pub struct ConsoleInput {
    rx: Option<Receiver<Vec<u8>>>,
    /// Bytes received from the channel that the FIFO had no room for yet.
    pending: VecDeque<u8>,
    /// Bytes handed to the UART so far.
    delivered: u64,
}

impl ConsoleInput {
    /// A fresh channel: the writer for the sender's side; `bell` wakes the vCPU. Bytes a
    /// previous writer sent and the UART has not taken yet stay queued before the new ones.
    pub fn connect(&mut self, bell: Doorbell) -> ConsoleWriter {
        self.drain_channel();
        let (tx, rx) = sync_channel(CHANNEL_CHUNKS);
        self.rx = Some(rx);
        ConsoleWriter { tx, bell }
    }

    /// Queues `bytes` directly (the host side of the VM API, no channel).
    pub fn push(&mut self, bytes: &[u8]) {
        self.pending.extend(bytes);
    }

    /// Whether input may still arrive or is waiting for FIFO room.
    pub fn is_active(&self) -> bool {
        self.rx.is_some() || !self.pending.is_empty()
    }

    /// Bytes handed to the UART so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Moves what the channel holds into `pending`; forgets a channel whose writers are
    /// all gone.
    fn drain_channel(&mut self) {
        let Some(rx) = &self.rx else {
            return;
        };
        loop {
            match rx.try_recv() {
                Ok(chunk) => self.pending.extend(chunk),
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    self.rx = None;
                    return;
                }
            }
        }
    }

    /// Moves as many waiting bytes into `uart`'s receive FIFO as it has room for (raising
    /// its received-data interrupt if enabled). Returns how many moved.
    pub fn pump(&mut self, uart: &mut Serial) -> usize {
        if self.pending.len() < uart.rx_room() {
            self.drain_channel();
        }
        let mut moved = 0;
        while uart.rx_room() > 0 && !self.pending.is_empty() {
            let (front, _) = self.pending.as_slices();
            let n = uart.receive(front);
            if n == 0 {
                break;
            }
            self.pending.drain(..n);
            moved += n;
        }
        self.delivered += moved as u64;
        moved
    }
}

/// What one byte typed on the terminal means (see [`Escape`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keystroke {
    /// Send this byte to the guest.
    Byte(u8),
    /// `Ctrl-A x`: stop the VM and exit.
    Quit,
    /// `Ctrl-A h`: print [`ESCAPE_HELP`].
    Help,
    /// The escape prefix, or an escape sequence popek does not know: nothing happens.
    Nothing,
}

/// The escape prefix, `Ctrl-A` (as QEMU's `-nographic` console).
pub const ESCAPE_KEY: u8 = 0x01;

/// What `Ctrl-A h` prints (raw mode keeps output processing: `\n` is enough).
pub const ESCAPE_HELP: &str = "\nC-a h    print this help\nC-a x    exit popek\n\
C-a C-a  sends C-a\n";

/// The escape-key state machine of a terminal console: `Ctrl-A` followed by `x` (quit), `h`
/// (help) or `Ctrl-A` (one literal `Ctrl-A` for the guest); any other key after the prefix
/// is dropped, as QEMU drops unknown escapes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Escape {
    prefixed: bool,
}

impl Escape {
    /// Interprets one typed byte.
    pub fn feed(&mut self, b: u8) -> Keystroke {
        if !std::mem::take(&mut self.prefixed) {
            if b == ESCAPE_KEY {
                self.prefixed = true;
                return Keystroke::Nothing;
            }
            return Keystroke::Byte(b);
        }
        match b {
            b'x' | b'X' => Keystroke::Quit,
            b'h' | b'H' | b'?' => Keystroke::Help,
            ESCAPE_KEY => Keystroke::Byte(ESCAPE_KEY),
            _ => Keystroke::Nothing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::{PortIo, SerialSink};

    const RBR: u16 = 0;
    const IER: u16 = 1;
    const MCR: u16 = 4;
    const LSR: u16 = 5;
    const LSR_DR: u8 = 1;
    const MCR_DTR_RTS_OUT2: u8 = 0x0B;

    fn read_all(s: &mut Serial) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let mut b = [0];
            s.read(LSR, &mut b);
            if b[0] & LSR_DR == 0 {
                return out;
            }
            s.read(RBR, &mut b);
            out.push(b[0]);
        }
    }

    #[test]
    fn bytes_flow_in_order_as_the_fifo_has_room() {
        let mut input = ConsoleInput::default();
        let bell = Doorbell::new();
        let w = input.connect(bell.clone());
        let data: Vec<u8> = (0..200u8).collect();
        w.send(&data[..150]).unwrap();
        w.send(&data[150..]).unwrap();
        assert!(bell.wait(Duration::ZERO), "sending rings the bell");
        let mut uart = Serial::new(SerialSink::Capture);
        let line = uart.irq_line();
        uart.write(IER, &[1]); // received-data interrupt
        assert_eq!(input.pump(&mut uart), 0, "RTS is not asserted");
        uart.write(MCR, &[MCR_DTR_RTS_OUT2]);
        assert_eq!(input.pump(&mut uart), 64, "one FIFO's worth");
        assert!(line.take());
        assert_eq!(input.pump(&mut uart), 0, "the FIFO is full");
        let mut got = read_all(&mut uart);
        while input.pump(&mut uart) > 0 {
            got.extend(read_all(&mut uart));
        }
        assert_eq!(got, data);
        assert_eq!(input.delivered(), 200);
        assert!(input.is_active(), "the writer is alive");
        drop(w);
        input.pump(&mut uart);
        assert!(
            !input.is_active(),
            "EOF: no more input, nothing else changes"
        );
    }

    #[test]
    fn a_new_writer_keeps_the_queued_bytes_first() {
        let mut input = ConsoleInput::default();
        let w = input.connect(Doorbell::new());
        w.send(b"ab").unwrap();
        let w2 = input.connect(Doorbell::new());
        w2.send(b"c").unwrap();
        assert!(w.send(b"lost").is_err(), "the old channel is gone");
        let mut uart = Serial::new(SerialSink::Capture);
        uart.write(MCR, &[MCR_DTR_RTS_OUT2]);
        input.pump(&mut uart);
        assert_eq!(read_all(&mut uart), b"abc");
    }

    #[test]
    fn doorbell_wakes_a_waiter_from_another_thread() {
        let bell = Doorbell::new();
        assert!(!bell.wait(Duration::from_millis(1)));
        let b = bell.clone();
        let t0 = std::time::Instant::now();
        let h = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            b.ring();
        });
        assert!(bell.wait(Duration::from_secs(10)));
        assert!(t0.elapsed() < Duration::from_secs(5));
        h.join().unwrap();
        assert!(!bell.wait(Duration::ZERO), "waiting cleared it");
    }

    #[test]
    fn escape_keys() {
        let mut e = Escape::default();
        let keys: Vec<Keystroke> = b"a\x01\x01b\x01h\x01zc\x01x"
            .iter()
            .map(|&b| e.feed(b))
            .collect();
        use Keystroke::*;
        assert_eq!(
            keys,
            [
                Byte(b'a'),
                Nothing,
                Byte(1),
                Byte(b'b'),
                Nothing,
                Help,
                Nothing,
                Nothing,
                Byte(b'c'),
                Nothing,
                Quit
            ]
        );
    }
}
