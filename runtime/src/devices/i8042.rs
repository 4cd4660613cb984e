//! A minimal i8042 keyboard controller with nothing plugged into it: enough for a kernel to
//! probe the controller (self-test, port tests, the configuration byte) and find no
//! keyboard or mouse, and for the classic reset through the controller's output port.
//!
//! Ports (the device sits at 0x60 with a 5-port range; 0x61 belongs to the PIT's port B and
//! is claimed by the platform before the bus is asked; 0x62 and 0x63 read 0xFF):
//! - 0x60 data: reads the output buffer (clearing OBF); a write is the parameter of a
//!   pending controller command (0x60 write configuration byte, 0xD1 write output port,
//!   0xD2/0xD3 echo as keyboard/aux data), else a byte for the keyboard, which is absent:
//!   it is dropped and nothing answers, so the kernel's keyboard probe times out.
//! - 0x64 status on read (OBF, SYS, CMD/DATA, keyboard not inhibited); command on write.
//!
//! Commands: 0x20 read / 0x60 write the configuration byte; 0xA7/0xA8 disable/enable aux;
//! 0xA9 test aux port (0x00); 0xAA self-test (0x55); 0xAB test keyboard port (0x00);
//! 0xAD/0xAE disable/enable keyboard; 0xC0 read input port; 0xD0 read output port; 0xD1
//! write output port (bit 0 clear = reset); 0xD2–0xD4 write the next byte to a port;
//! 0xF0–0xFF pulse output lines (bit 0 clear, e.g. 0xFE, = reset). Others are ignored.
//!
//! Invariants: no interrupt is ever raised (there is no device to interrupt for, and command
//! responses are polled); every access of any width and offset is total; only the two reset
//! paths return [`IoAction::Reset`].

use super::{IoAction, PortIo, PortRange};

/// The device's ports (0x60–0x64; see the module documentation for 0x61–0x63).
pub const I8042_PORTS: PortRange = PortRange { base: 0x60, len: 5 };

/// Offset of the data port.
const DATA: u16 = 0;
/// Offset of the status/command port.
const STATUS: u16 = 4;

/// Status: output buffer full.
pub const STS_OBF: u8 = 1 << 0;
/// Status: system flag (self-test passed).
pub const STS_SYS: u8 = 1 << 2;
/// Status: the last write was a command (port 0x64).
pub const STS_CMD: u8 = 1 << 3;
/// Status: keyboard not inhibited.
pub const STS_UNLOCKED: u8 = 1 << 4;
/// Status: the output buffer holds aux (mouse) data.
pub const STS_AUX_OBF: u8 = 1 << 5;

/// Configuration byte bits: keyboard interrupt, aux interrupt, system flag, keyboard
/// disabled, aux disabled, scancode translation.
const CTR_SYS: u8 = 1 << 2;
const CTR_KBD_DISABLED: u8 = 1 << 4;
const CTR_AUX_DISABLED: u8 = 1 << 5;
/// The configuration byte a BIOS leaves: keyboard interrupt, system flag, translation.
const CTR_BIOS: u8 = 0x45;

/// Output port bit 0: the CPU reset line (active low).
const OUT_RESET_N: u8 = 1 << 0;
/// Output port bit 1: the A20 gate.
const OUT_A20: u8 = 1 << 1;

/// A command waiting for its data byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    WriteConfig,
    WriteOutputPort,
    KeyboardOutput,
    AuxOutput,
    AuxDevice,
}

/// The controller.
#[derive(Debug)]
pub struct I8042 {
    config: u8,
    output_port: u8,
    /// The byte in the output buffer, and whether it is aux data.
    output: Option<(u8, bool)>,
    pending: Option<Pending>,
    last_was_command: bool,
}

impl Default for I8042 {
    fn default() -> Self {
        I8042::new()
    }
}

impl I8042 {
    /// The controller after a BIOS has initialized it, with an empty output buffer.
    pub fn new() -> I8042 {
        I8042 {
            config: CTR_BIOS,
            output_port: OUT_RESET_N | OUT_A20,
            output: None,
            pending: None,
            last_was_command: false,
        }
    }

    /// The status register.
    pub fn status(&self) -> u8 {
        let mut s = STS_UNLOCKED;
        if self.config & CTR_SYS != 0 {
            s |= STS_SYS;
        }
        if self.last_was_command {
            s |= STS_CMD;
        }
        match self.output {
            Some((_, true)) => s |= STS_OBF | STS_AUX_OBF,
            Some((_, false)) => s |= STS_OBF,
            None => {}
        }
        s
    }

    fn respond(&mut self, byte: u8) {
        self.output = Some((byte, false));
    }

    fn command(&mut self, cmd: u8) -> IoAction {
        self.pending = None;
        match cmd {
            0x20 => self.respond(self.config),
            0x60 => self.pending = Some(Pending::WriteConfig),
            0xA7 => self.config |= CTR_AUX_DISABLED,
            0xA8 => self.config &= !CTR_AUX_DISABLED,
            0xA9 | 0xAB => self.respond(0x00),
            0xAA => {
                self.config |= CTR_SYS;
                self.respond(0x55);
            }
            0xAD => self.config |= CTR_KBD_DISABLED,
            0xAE => self.config &= !CTR_KBD_DISABLED,
            0xC0 => self.respond(0x00),
            0xD0 => self.respond(self.output_port),
            0xD1 => self.pending = Some(Pending::WriteOutputPort),
            0xD2 => self.pending = Some(Pending::KeyboardOutput),
            0xD3 => self.pending = Some(Pending::AuxOutput),
            0xD4 => self.pending = Some(Pending::AuxDevice),
            0xF0..=0xFF if cmd & OUT_RESET_N == 0 => return IoAction::Reset,
            _ => {}
        }
        IoAction::Continue
    }

    fn data(&mut self, byte: u8) -> IoAction {
        match self.pending.take() {
            Some(Pending::WriteConfig) => self.config = byte,
            Some(Pending::WriteOutputPort) => {
                self.output_port = byte;
                if byte & OUT_RESET_N == 0 {
                    return IoAction::Reset;
                }
            }
            Some(Pending::KeyboardOutput) => self.output = Some((byte, false)),
            Some(Pending::AuxOutput) => self.output = Some((byte, true)),
            // No keyboard and no mouse: the byte goes nowhere and nothing answers.
            Some(Pending::AuxDevice) | None => {}
        }
        IoAction::Continue
    }
}

impl PortIo for I8042 {
    fn read(&mut self, offset: u16, data: &mut [u8]) {
        let value = match offset {
            DATA => self.output.take().map_or(0, |(b, _)| b),
            STATUS => self.status(),
            _ => 0xFF,
        };
        data.fill(0xFF);
        if let Some(first) = data.first_mut() {
            *first = value;
        }
    }

    fn write(&mut self, offset: u16, data: &[u8]) -> IoAction {
        let Some(&byte) = data.first() else {
            return IoAction::Continue;
        };
        match offset {
            DATA => {
                self.last_was_command = false;
                self.data(byte)
            }
            STATUS => {
                self.last_was_command = true;
                self.command(byte)
            }
            _ => IoAction::Continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inb(k: &mut I8042, off: u16) -> u8 {
        let mut d = [0u8; 1];
        k.read(off, &mut d);
        d[0]
    }

    /// A command and the byte it answers with.
    fn ask(k: &mut I8042, cmd: u8) -> Option<u8> {
        assert_eq!(k.write(STATUS, &[cmd]), IoAction::Continue);
        (inb(k, STATUS) & STS_OBF != 0).then(|| inb(k, DATA))
    }

    #[test]
    fn probe_sequence_as_linux_runs_it() {
        let mut k = I8042::new();
        // i8042_flush: nothing to read.
        assert_eq!(inb(&mut k, STATUS) & STS_OBF, 0);
        assert_eq!(ask(&mut k, 0xAA), Some(0x55), "self-test");
        assert_eq!(ask(&mut k, 0x20), Some(CTR_BIOS), "read CTR");
        k.write(STATUS, &[0x60]);
        k.write(DATA, &[0x30]);
        assert_eq!(ask(&mut k, 0x20), Some(0x30), "CTR written");
        assert_eq!(ask(&mut k, 0xAB), Some(0x00), "keyboard port test");
        assert_eq!(ask(&mut k, 0xA9), Some(0x00), "aux port test");
        // Loopback through the aux output buffer (i8042_check_aux).
        k.write(STATUS, &[0xD3]);
        k.write(DATA, &[0x5A]);
        assert_eq!(
            inb(&mut k, STATUS) & (STS_OBF | STS_AUX_OBF),
            STS_OBF | STS_AUX_OBF
        );
        assert_eq!(inb(&mut k, DATA), 0x5A);
        assert_eq!(
            inb(&mut k, STATUS) & STS_OBF,
            0,
            "reading empties the buffer"
        );
    }

    #[test]
    fn no_keyboard_answers() {
        let mut k = I8042::new();
        // GETID to the keyboard: dropped, nothing to read.
        assert_eq!(k.write(DATA, &[0xF2]), IoAction::Continue);
        assert_eq!(inb(&mut k, STATUS) & STS_OBF, 0);
        k.write(STATUS, &[0xD4]);
        k.write(DATA, &[0xF2]);
        assert_eq!(inb(&mut k, STATUS) & STS_OBF, 0);
    }

    #[test]
    fn both_reset_paths() {
        let mut k = I8042::new();
        assert_eq!(k.write(STATUS, &[0xFE]), IoAction::Reset);
        assert_eq!(
            k.write(STATUS, &[0xFF]),
            IoAction::Continue,
            "pulse nothing"
        );
        k.write(STATUS, &[0xD1]);
        assert_eq!(
            k.write(DATA, &[0x03]),
            IoAction::Continue,
            "A20 on, no reset"
        );
        assert_eq!(ask(&mut k, 0xD0), Some(0x03));
        k.write(STATUS, &[0xD1]);
        assert_eq!(k.write(DATA, &[0x02]), IoAction::Reset);
    }

    #[test]
    fn odd_accesses_are_total() {
        let mut k = I8042::new();
        let mut d = [0u8; 4];
        k.read(2, &mut d);
        assert_eq!(d, [0xFF; 4]);
        k.read(STATUS, &mut d);
        assert_eq!(d[1..], [0xFF; 3]);
        assert_eq!(k.write(DATA, &[]), IoAction::Continue);
        assert_eq!(k.write(3, &[0xFE]), IoAction::Continue);
        assert_eq!(inb(&mut k, STATUS) & STS_CMD, 0);
    }
}
