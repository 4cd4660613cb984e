//! The COM1 16550A UART at ports 0x3F8–0x3FF.
//!
//! The register model is vm-superio's [`vm_superio::Serial`] (a pure `read(offset)` /
//! `write(offset, value)` model); this module only adapts it to [`PortIo`] and gives it an
//! output sink. The model's interrupt trigger sets an [`IrqLatch`] shared with the platform,
//! which samples it at block boundaries and pulses ISA IRQ4 (COM1's line). The modem-control
//! OUT2 gate of PC boards is not modelled: every trigger reaches the line.
//!
//! Input arrives through [`Serial::receive`]: the run loop feeds it from
//! [`crate::console::ConsoleInput`] as [`Serial::rx_room`] allows (FIFO room, and RTS
//! asserted by the guest).
//!
//! Invariants: every byte the guest transmits (outside loopback mode) reaches the sink in
//! order; stdout output is buffered per line and flushed by [`Serial::flush`] at the latest;
//! every interrupt the model triggers is seen by the next [`IrqLatch::take`].

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use vm_superio::serial::NoEvents;
use vm_superio::Trigger;

use super::{IoAction, PortIo, PortRange};

/// The ports of COM1.
pub const COM1: PortRange = PortRange {
    base: 0x3F8,
    len: 8,
};

/// Where the guest's serial output goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SerialSink {
    /// The process's standard output (line-buffered).
    #[default]
    Stdout,
    /// An in-memory buffer, read with [`Serial::captured`] (tests and harnesses).
    Capture,
}

/// The modem control register's offset, and its RTS and loopback bits.
const MCR: u8 = 4;
const MCR_RTS: u8 = 1 << 1;
const MCR_LOOP: u8 = 1 << 4;

/// COM1's ISA interrupt line.
pub const COM1_IRQ: u8 = 4;

/// An edge latch for an interrupt line shared between a device and the platform: the device
/// raises it, the platform takes it (and pulses the ISA line). Clones share the latch; it is
/// `Send` and `Sync`.
#[derive(Clone, Debug, Default)]
pub struct IrqLatch(Arc<AtomicBool>);

impl IrqLatch {
    /// A latch that is not raised.
    pub fn new() -> IrqLatch {
        IrqLatch::default()
    }

    /// Records an interrupt edge.
    pub fn raise(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether an edge was raised since the last call; clears it.
    pub fn take(&self) -> bool {
        self.0.swap(false, Ordering::AcqRel)
    }

    /// Whether an edge is waiting, without clearing it.
    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

impl Trigger for IrqLatch {
    type E = std::convert::Infallible;
    fn trigger(&self) -> Result<(), Self::E> {
        self.raise();
        Ok(())
    }
}

/// The byte sink behind the UART's transmitter.
#[derive(Debug)]
pub struct SerialOut {
    sink: SerialSink,
    /// Captured output, or stdout bytes not yet written.
    buf: Vec<u8>,
    /// Bytes that could not be written to stdout (e.g. a closed pipe).
    lost: u64,
    /// A copy of every transmitted byte, as it is transmitted (see [`Serial::tap`]).
    tap: Option<std::sync::mpsc::Sender<Vec<u8>>>,
}

/// Bytes kept before stdout output is written even without a newline.
const STDOUT_CHUNK: usize = 4096;

impl SerialOut {
    fn new(sink: SerialSink) -> SerialOut {
        SerialOut {
            sink,
            buf: Vec::new(),
            lost: 0,
            tap: None,
        }
    }

    /// Writes buffered stdout bytes out now.
    fn drain(&mut self) {
        if self.sink != SerialSink::Stdout || self.buf.is_empty() {
            return;
        }
        let mut out = std::io::stdout().lock();
        if out.write_all(&self.buf).and_then(|()| out.flush()).is_err() {
            self.lost += self.buf.len() as u64;
        }
        self.buf.clear();
    }
}

impl Write for SerialOut {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if let Some(tap) = &self.tap {
            if tap.send(data.to_vec()).is_err() {
                self.tap = None;
            }
        }
        Ok(data.len())
    }

    /// The model flushes after every byte; stdout is only written per line or chunk.
    fn flush(&mut self) -> std::io::Result<()> {
        if self.sink == SerialSink::Stdout
            && (self.buf.last() == Some(&b'\n') || self.buf.len() >= STDOUT_CHUNK)
        {
            self.drain();
        }
        Ok(())
    }
}

/// COM1: a 16550A UART register model with an output sink.
pub struct Serial {
    uart: vm_superio::Serial<IrqLatch, NoEvents, SerialOut>,
    irq: IrqLatch,
}

impl Serial {
    /// A UART in its reset state writing to `sink`, with its own interrupt latch (see
    /// [`Serial::irq_line`]).
    pub fn new(sink: SerialSink) -> Serial {
        Serial::with_irq_line(sink, IrqLatch::new())
    }

    /// A UART in its reset state writing to `sink` and raising `irq`.
    pub fn with_irq_line(sink: SerialSink, irq: IrqLatch) -> Serial {
        Serial {
            uart: vm_superio::Serial::new(irq.clone(), SerialOut::new(sink)),
            irq,
        }
    }

    /// The UART's interrupt line, to hand to the platform (`Platform::attach_com1`).
    pub fn irq_line(&self) -> IrqLatch {
        self.irq.clone()
    }

    /// Everything the guest transmitted so far ([`SerialSink::Capture`]); empty for stdout.
    pub fn captured(&self) -> &[u8] {
        let out = self.uart.writer();
        match out.sink {
            SerialSink::Capture => &out.buf,
            SerialSink::Stdout => &[],
        }
    }

    /// Writes pending stdout output now.
    pub fn flush(&mut self) {
        self.uart.writer_mut().drain();
    }

    /// How many bytes the line may deliver now: the free entries of the receive FIFO
    /// (16550A: 64) while the guest asserts RTS (MCR bit 1) outside loopback mode, else 0.
    /// popek's end of the line honours RTS as a terminal with hardware flow control does:
    /// Linux raises RTS when user space opens the port, after the driver's start-up has
    /// discarded what the FIFO held, so no typed-ahead byte is lost to it.
    pub fn rx_room(&mut self) -> usize {
        let mcr = self.uart.read(MCR);
        if mcr & (MCR_RTS | MCR_LOOP) == MCR_RTS {
            self.uart.fifo_capacity()
        } else {
            0
        }
    }

    /// Whether the received-data interrupt is enabled (IER bit 0).
    pub fn rx_interrupt_enabled(&self) -> bool {
        self.uart.state().interrupt_enable & 1 != 0
    }

    /// Bytes arrive on the line: as many of `bytes` as the receive FIFO has room for are
    /// queued (data ready set, the received-data interrupt raised if enabled). Returns how
    /// many. In loopback mode the line is disconnected and nothing is taken.
    pub fn receive(&mut self, bytes: &[u8]) -> usize {
        // The only errors are a full FIFO (nothing taken) and a trigger failure, which
        // cannot happen with an `IrqLatch`.
        self.uart.enqueue_raw_bytes(bytes).unwrap_or(0)
    }

    /// From now on, also sends every transmitted byte to the returned receiver as it is
    /// transmitted (besides the sink): a harness on another thread can watch the console
    /// while the VM runs. A new tap replaces the old one; dropping the receiver ends it.
    pub fn tap(&mut self) -> std::sync::mpsc::Receiver<Vec<u8>> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.uart.writer_mut().tap = Some(tx);
        rx
    }

    /// Bytes lost because stdout could not be written.
    pub fn lost_bytes(&self) -> u64 {
        self.uart.writer().lost
    }
}

impl Drop for Serial {
    fn drop(&mut self) {
        self.flush();
    }
}

impl PortIo for Serial {
    fn read(&mut self, offset: u16, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            let off = offset as usize + i;
            *b = if off < COM1.len as usize {
                self.uart.read(off as u8)
            } else {
                0xFF
            };
        }
    }

    fn write(&mut self, offset: u16, data: &[u8]) -> IoAction {
        for (i, &b) in data.iter().enumerate() {
            let off = offset as usize + i;
            if off < COM1.len as usize {
                // The only error is a failed write of the sink, which cannot fail here
                // (stdout failures are counted in `lost_bytes` instead).
                let _ = self.uart.write(off as u8, b);
            }
        }
        IoAction::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 16550 register offsets and bits used by the tests.
    const THR: u16 = 0;
    const IER: u16 = 1;
    const IIR: u16 = 2;
    const LCR: u16 = 3;
    const LSR: u16 = 5;
    const SCR: u16 = 7;
    const LCR_DLAB: u8 = 0x80;
    const LSR_THRE: u8 = 0x20;
    const LSR_TEMT: u8 = 0x40;

    fn rd(s: &mut Serial, off: u16) -> u8 {
        let mut b = [0];
        s.read(off, &mut b);
        b[0]
    }

    #[test]
    fn transmits_to_the_capture_buffer() {
        let mut s = Serial::new(SerialSink::Capture);
        for &b in b"hi\n" {
            assert_eq!(s.write(THR, &[b]), IoAction::Continue);
        }
        assert_eq!(s.captured(), b"hi\n");
        assert_eq!(s.lost_bytes(), 0);
    }

    #[test]
    fn line_status_says_the_transmitter_is_always_ready() {
        let mut s = Serial::new(SerialSink::Capture);
        let lsr = rd(&mut s, LSR);
        assert_eq!(lsr & (LSR_THRE | LSR_TEMT), LSR_THRE | LSR_TEMT);
        // 16550A: FIFO bits set in IIR, no interrupt pending.
        assert_eq!(rd(&mut s, IIR) & 0xC1, 0xC1);
    }

    #[test]
    fn divisor_latch_and_scratch_registers() {
        let mut s = Serial::new(SerialSink::Capture);
        s.write(LCR, &[LCR_DLAB | 3]);
        s.write(THR, &[0x01]); // divisor low: 115200 baud
        s.write(IER, &[0x00]);
        assert_eq!(rd(&mut s, THR), 0x01);
        s.write(LCR, &[3]);
        assert_eq!(rd(&mut s, LCR), 3);
        s.write(SCR, &[0x5A]);
        assert_eq!(rd(&mut s, SCR), 0x5A);
        assert!(s.captured().is_empty(), "divisor writes are not data");
    }

    #[test]
    fn transmitter_empty_interrupt_raises_the_line() {
        let mut s = Serial::new(SerialSink::Capture);
        let line = s.irq_line();
        s.write(THR, b"x");
        assert!(!line.take(), "IER clear: no interrupt");
        s.write(IER, &[0x02]); // THRE interrupt: the holding register is empty at once
        assert!(line.take());
        assert!(!line.take(), "taking clears the latch");
        assert_ne!(rd(&mut s, IIR) & 0x02, 0, "IIR says THRE");
        s.write(THR, b"y");
        assert!(line.is_raised());
        let shared = IrqLatch::new();
        let mut t = Serial::with_irq_line(SerialSink::Capture, shared.clone());
        t.write(IER, &[0x02]);
        assert!(shared.take());
    }

    #[test]
    fn input_flows_while_rts_is_asserted_outside_loopback() {
        const MCR_OFF: u16 = 4;
        let mut s = Serial::new(SerialSink::Capture);
        assert_eq!(s.rx_room(), 0, "reset: OUT2 only, RTS clear");
        s.write(MCR_OFF, &[0x0B]); // DTR | RTS | OUT2
        assert_eq!(s.rx_room(), 64);
        assert_eq!(s.receive(b"hi"), 2);
        assert_eq!(s.rx_room(), 62);
        assert_ne!(rd(&mut s, LSR) & 1, 0, "data ready");
        assert_eq!((rd(&mut s, THR), rd(&mut s, THR)), (b'h', b'i'));
        assert_eq!(rd(&mut s, LSR) & 1, 0);
        s.write(MCR_OFF, &[0x1B]); // loopback
        assert_eq!(s.rx_room(), 0);
        assert_eq!(s.receive(b"x"), 0, "the line is disconnected in loopback");
        s.write(MCR_OFF, &[0x0B]);
        assert_eq!(s.receive(&[0; 100]), 64, "a full FIFO takes no more");
        assert_eq!(s.receive(b"y"), 0);
    }

    #[test]
    fn the_tap_sees_every_byte_as_it_is_sent() {
        let mut s = Serial::new(SerialSink::Capture);
        s.write(THR, b"a");
        let tap = s.tap();
        s.write(THR, b"b");
        s.write(THR, b"c");
        assert_eq!(tap.try_iter().flatten().collect::<Vec<u8>>(), b"bc");
        drop(tap);
        s.write(THR, b"d");
        assert_eq!(s.captured(), b"abcd", "the sink is unaffected");
    }

    #[test]
    fn wide_accesses_are_split_into_registers() {
        let mut s = Serial::new(SerialSink::Capture);
        s.write(THR, &[b'A', 0x00]); // THR, then IER = 0
        assert_eq!(s.captured(), b"A");
        let mut d = [0u8; 2];
        s.read(7, &mut d); // SCR, then past the end
        assert_eq!(d, [0, 0xFF]);
    }
}
