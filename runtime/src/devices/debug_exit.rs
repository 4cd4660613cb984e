//! QEMU's `isa-debug-exit` device at port 0xF4 (iosize 4): a write of `v` stops the VM, and
//! `popek` then exits with status `(v << 1) | 1`, exactly as QEMU does. Reads return all ones.

use super::{IoAction, PortIo, PortRange};

/// The device's ports.
pub const DEBUG_EXIT: PortRange = PortRange { base: 0xF4, len: 4 };

/// The isa-debug-exit device.
#[derive(Debug, Default)]
pub struct DebugExit;

impl DebugExit {
    /// The process exit status QEMU uses for a written value: `(v << 1) | 1` (always odd).
    pub const fn exit_status(value: u32) -> i32 {
        ((value << 1) | 1) as i32
    }
}

impl PortIo for DebugExit {
    fn read(&mut self, _offset: u16, data: &mut [u8]) {
        data.fill(0xFF);
    }

    fn write(&mut self, offset: u16, data: &[u8]) -> IoAction {
        // A narrower write at an offset lands in the matching byte lanes of the 32-bit port.
        let mut v = [0u8; 4];
        for (i, &b) in data.iter().enumerate() {
            if let Some(lane) = v.get_mut(offset as usize + i) {
                *lane = b;
            }
        }
        IoAction::Exit(u32::from_le_bytes(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_request_an_exit_with_the_value() {
        let mut d = DebugExit;
        assert_eq!(d.write(0, &[0x2A, 0, 0, 0]), IoAction::Exit(0x2A));
        assert_eq!(d.write(0, &[3]), IoAction::Exit(3));
        assert_eq!(d.write(1, &[1]), IoAction::Exit(0x100));
        let mut r = [0u8; 4];
        d.read(0, &mut r);
        assert_eq!(r, [0xFF; 4]);
    }

    #[test]
    fn exit_status_is_odd() {
        assert_eq!(DebugExit::exit_status(0), 1);
        assert_eq!(DebugExit::exit_status(1), 3);
        assert_eq!(DebugExit::exit_status(0x7F) & 0xFF, 0xFF);
    }
}
