//! The debug registers' breakpoint model (SDM vol. 3 ch. 18): which of DR0-DR3 an
//! instruction fetch, a data access or an I/O port access matches under DR7, and the DR6
//! status bits a #DB reports.
//!
//! Invariants:
//! - Pure functions of `CpuState` (and of the accesses an instruction made): the run loop
//!   decides when to look (the engine's debug stepper), this module only what matches.
//! - A breakpoint's address is aligned down to its length (the SDM leaves unaligned
//!   addresses undefined; hardware ignores the low bits), and an access matches when any of
//!   its bytes falls inside the breakpoint's range.
//! - I/O breakpoints (R/W = 10) exist only with CR4.DE; without it the encoding is undefined
//!   and matches nothing.

use translator::state::{cr, CpuState};

/// DR6.B0..B3: breakpoint n matched.
pub const DR6_B: u64 = 0xF;
/// DR6.BD: general detect (a MOV DR while DR7.GD was set).
pub const DR6_BD: u64 = 1 << 13;
/// DR6.BS: single step.
pub const DR6_BS: u64 = 1 << 14;
/// DR7.L0..L3 and G0..G3: any breakpoint enabled.
pub const DR7_ENABLES: u64 = 0xFF;

/// A breakpoint's R/W field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// 00: instruction execution.
    Execute,
    /// 01: data writes.
    Write,
    /// 10 (with CR4.DE): I/O reads and writes.
    Io,
    /// 11: data reads and writes (not fetches).
    ReadWrite,
}

/// One memory or port access an instruction made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// Linear address or port.
    pub addr: u64,
    /// Bytes accessed.
    pub len: u64,
    /// What kind of access.
    pub kind: AccessKind,
}

/// What an [`Access`] was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessKind {
    /// A data read.
    Read,
    /// A data write.
    Write,
    /// A port read or write.
    Port,
}

/// The accesses of the instruction being single-stepped, collected while debugging needs
/// them (`Some`), so the data and I/O breakpoints can be matched when it completes.
#[derive(Clone, Debug, Default)]
pub struct AccessLog(Option<Vec<Access>>);

impl AccessLog {
    /// Starts collecting (clearing what an earlier instruction left).
    pub fn start(&mut self) {
        self.0.get_or_insert_with(Vec::new).clear();
    }
    /// Stops collecting and returns what was collected.
    pub fn finish(&mut self) -> Vec<Access> {
        self.0.take().unwrap_or_default()
    }
    /// Forgets what was collected so far, still collecting if it was: a fault's delivery
    /// starts here, as the faulting instruction's own accesses never complete.
    pub fn restart(&mut self) {
        if let Some(log) = &mut self.0 {
            log.clear();
        }
    }
    /// Whether accesses are being collected.
    pub fn collecting(&self) -> bool {
        self.0.is_some()
    }
    /// Records an access if collecting.
    pub fn record(&mut self, addr: u64, len: u64, kind: AccessKind) {
        if let Some(log) = &mut self.0 {
            // A hostile instruction cannot grow the log without bound: the longest (a
            // 512-byte FXSAVE is one access) records a handful.
            if log.len() < 64 {
                log.push(Access { addr, len, kind });
            }
        }
    }
}

/// Whether any of DR0-DR3 is enabled (locally or globally).
pub fn any_enabled(cpu: &CpuState) -> bool {
    cpu.dr[7] & DR7_ENABLES != 0
}

fn enabled(dr7: u64, n: usize) -> bool {
    dr7 >> (2 * n) & 3 != 0
}

/// Breakpoint `n`'s kind under the current CR4.DE; `None` for the undefined I/O encoding.
fn kind(cpu: &CpuState, n: usize) -> Option<Kind> {
    match cpu.dr[7] >> (16 + 4 * n) & 3 {
        0 => Some(Kind::Execute),
        1 => Some(Kind::Write),
        2 if cpu.cr4 & cr::CR4_DE != 0 => Some(Kind::Io),
        2 => None,
        _ => Some(Kind::ReadWrite),
    }
}

/// Breakpoint `n`'s length in bytes (LEN 00, 01, 11, 10 = 1, 2, 4, 8).
fn len(cpu: &CpuState, n: usize) -> u64 {
    match cpu.dr[7] >> (18 + 4 * n) & 3 {
        0 => 1,
        1 => 2,
        2 => 8,
        _ => 4,
    }
}

fn overlaps(cpu: &CpuState, n: usize, addr: u64, size: u64) -> bool {
    let l = len(cpu, n);
    let start = cpu.dr[n] & !(l - 1);
    // Wide arithmetic: neither range wraps at 2^64.
    let (a, e) = (u128::from(addr), u128::from(addr) + u128::from(size.max(1)));
    let (s, t) = (u128::from(start), u128::from(start) + u128::from(l));
    a < t && s < e
}

/// The breakpoints that match, as DR6 B bits: `all` the matching ones (enabled or not, as
/// the SDM allows and QEMU reports), and whether an `enabled` one is among them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hits {
    /// DR6.B0..B3 for every match.
    pub all: u64,
    /// Some match is enabled: a #DB is due.
    pub enabled: bool,
}

fn hits(cpu: &CpuState, matches: impl Fn(Kind, usize) -> bool) -> Hits {
    let mut h = Hits::default();
    for n in 0..4 {
        if kind(cpu, n).is_some_and(|k| matches(k, n)) {
            h.all |= 1 << n;
            h.enabled |= enabled(cpu.dr[7], n);
        }
    }
    h
}

/// Instruction breakpoints at the linear address `lin` of the next instruction.
pub fn execute_hits(cpu: &CpuState, lin: u64) -> Hits {
    hits(cpu, |k, n| k == Kind::Execute && cpu.dr[n] == lin)
}

/// Data and I/O breakpoints the completed instruction's `accesses` hit. Only enabled data
/// breakpoints report (QEMU arms only those; the SDM allows either).
pub fn access_hits(cpu: &CpuState, accesses: &[Access]) -> Hits {
    let h = hits(cpu, |k, n| {
        enabled(cpu.dr[7], n)
            && accesses.iter().any(|a| {
                let wanted = match a.kind {
                    AccessKind::Read => k == Kind::ReadWrite,
                    AccessKind::Write => matches!(k, Kind::Write | Kind::ReadWrite),
                    AccessKind::Port => k == Kind::Io,
                };
                wanted && overlaps(cpu, n, a.addr, a.len)
            })
    });
    Hits {
        all: h.all,
        enabled: h.all != 0,
    }
}

/// DR6 after a #DB that reports breakpoints `b` (B0-B3, replacing earlier ones as QEMU
/// does; the SDM lets the processor clear them) and `extra` (BS: sticky until software
/// clears it).
pub fn report(cpu: &mut CpuState, b: u64, extra: u64) {
    if b != 0 {
        cpu.dr[6] = (cpu.dr[6] & !DR6_B) | (b & DR6_B);
    }
    cpu.dr[6] |= extra;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu_with(dr7: u64, drs: [u64; 4]) -> CpuState {
        let mut cpu = CpuState::default();
        cpu.dr[..4].copy_from_slice(&drs);
        cpu.dr[7] = dr7 | 0x400;
        cpu
    }

    #[test]
    fn execute_breakpoints_match_exactly_and_report_disabled_matches_too() {
        // DR0 enabled (L0), DR1 at the same address but disabled.
        let cpu = cpu_with(1, [0x1000, 0x1000, 0x2000, 0]);
        assert_eq!(
            execute_hits(&cpu, 0x1000),
            Hits {
                all: 0b11,
                enabled: true
            }
        );
        assert_eq!(execute_hits(&cpu, 0x1001), Hits::default());
        let h = execute_hits(&cpu, 0x2000);
        assert_eq!((h.all, h.enabled), (0b100, false));
    }

    #[test]
    fn data_breakpoints_align_by_length_and_split_read_from_write() {
        // DR0: write, 4 bytes at 0x1002 (aligned to 0x1000); DR1: read/write, 8 bytes.
        let dr7 = 1 | 4 | (0b11_01 << 16) | (0b10_11 << 20);
        let cpu = cpu_with(dr7, [0x1002, 0x2000, 0, 0]);
        let w = |addr, len| Access {
            addr,
            len,
            kind: AccessKind::Write,
        };
        let r = |addr, len| Access {
            addr,
            len,
            kind: AccessKind::Read,
        };
        assert_eq!(access_hits(&cpu, &[w(0x1000, 1)]).all, 1);
        assert_eq!(access_hits(&cpu, &[w(0x0FFF, 2)]).all, 1, "straddles in");
        assert_eq!(access_hits(&cpu, &[w(0x1004, 4)]).all, 0);
        assert_eq!(access_hits(&cpu, &[r(0x1000, 4)]).all, 0, "write-only");
        assert_eq!(access_hits(&cpu, &[r(0x2007, 1)]).all, 2);
        assert_eq!(access_hits(&cpu, &[w(0x2000, 8), w(0x1003, 1)]).all, 3);
        assert_eq!(access_hits(&cpu, &[w(u64::MAX, 1)]).all, 0, "no wrap");
    }

    #[test]
    fn io_breakpoints_need_cr4_de() {
        let mut cpu = cpu_with(2 | (0b00_10 << 16), [0x80, 0, 0, 0]);
        let port = [Access {
            addr: 0x80,
            len: 1,
            kind: AccessKind::Port,
        }];
        assert_eq!(access_hits(&cpu, &port).all, 0);
        cpu.cr4 |= cr::CR4_DE;
        assert_eq!(access_hits(&cpu, &port).all, 1);
    }

    #[test]
    fn the_access_log_is_bounded_and_off_by_default() {
        let mut log = AccessLog::default();
        log.record(1, 1, AccessKind::Read);
        assert!(log.finish().is_empty());
        log.start();
        for _ in 0..1000 {
            log.record(1, 1, AccessKind::Read);
        }
        assert_eq!(log.finish().len(), 64);
    }
}
