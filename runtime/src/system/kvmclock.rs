//! The KVM paravirtual clock (kvmclock), behind KVM's CPUID signature, as KVM offers it and
//! Linux reads it (`arch/x86/kernel/kvmclock.c`, `pvclock.c`; the structures of
//! `arch/x86/include/asm/pvclock-abi.h`; `Documentation/virt/kvm/x86/msr.rst`).
//!
//! The guest writes the guest-physical address of a 32-byte `pvclock_vcpu_time_info`, with
//! bit 0 set to enable it, to `MSR_KVM_SYSTEM_TIME_NEW`; popek fills it in:
//!
//! | offset | field | value |
//! | --- | --- | --- |
//! | 0 | `u32 version` | odd while popek writes, even when the fields are consistent |
//! | 8 | `u64 tsc_timestamp` | the guest's TSC at the update |
//! | 16 | `u64 system_time` | ns since the VM was created, at that TSC |
//! | 24 | `u32 tsc_to_system_mul` | with `tsc_shift`: ns = ((tsc delta << shift) * mul) >> 32 |
//! | 28 | `i8 tsc_shift` | |
//! | 29 | `u8 flags` | `PVCLOCK_TSC_STABLE_BIT` |
//!
//! The guest's clock is `system_time + scale(rdtsc() - tsc_timestamp)`. popek's TSC runs at
//! a constant [`TSC_HZ`] from one host clock and never jumps except when the guest writes
//! IA32_TSC, so one update stays exact for the VM's life: the structure is written when the
//! MSR is written and again when the TSC offset changes. `PVCLOCK_TSC_STABLE_BIT` is set
//! (one vCPU, one monotonic time base), so Linux needs no global last-value fix-up and the
//! vDSO may read the clock from user space.
//!
//! `MSR_KVM_WALL_CLOCK_NEW` takes the address of a 12-byte `pvclock_wall_clock`: version
//! (odd, then even, as KVM writes it), and the wall-clock time at `system_time` 0 in seconds
//! and nanoseconds.
//!
//! Invariants: only guest RAM is written, and a structure that is not wholly in RAM or
//! crosses a 4 KiB page (KVM refuses those too) is not written at all; the MSRs read back
//! what was written and never raise #GP; every byte written drops translations of it.

use translator::CpuState;

use crate::machine::Machine;
use crate::memory::GuestPhys;
use crate::tsc::TSC_HZ;

/// CPUID leaf of the hypervisor signature (EAX = the highest hypervisor leaf).
pub const CPUID_SIGNATURE: u32 = 0x4000_0000;
/// CPUID leaf of the KVM features (EAX) and hints (EDX).
pub const CPUID_FEATURES: u32 = 0x4000_0001;
/// CPUID leaf of the timing information (EAX = TSC kHz, EBX = local APIC bus kHz), as KVM
/// and VMware give it.
pub const CPUID_TIMING: u32 = 0x4000_0010;
/// The signature in EBX, ECX, EDX of [`CPUID_SIGNATURE`].
pub const SIGNATURE: &[u8; 12] = b"KVMKVMKVM\0\0\0";

/// KVM feature bits (CPUID 0x4000_0001 EAX).
pub mod feature {
    /// Port I/O needs no delays (nothing to implement: popek's devices have no timing).
    pub const NOP_IO_DELAY: u32 = 1 << 1;
    /// The clock MSRs at 0x4b564d00/0x4b564d01.
    pub const CLOCKSOURCE2: u32 = 1 << 3;
    /// `PVCLOCK_TSC_STABLE_BIT` may be set in the time structure's flags.
    pub const CLOCKSOURCE_STABLE_BIT: u32 = 1 << 24;
}

/// The features popek implements: nothing else (no async page faults, steal time, PV EOI,
/// PV unhalt or hypercalls).
pub const FEATURES: u32 =
    feature::NOP_IO_DELAY | feature::CLOCKSOURCE2 | feature::CLOCKSOURCE_STABLE_BIT;

/// MSR_KVM_WALL_CLOCK_NEW.
pub const MSR_WALL_CLOCK_NEW: u32 = 0x4b56_4d00;
/// MSR_KVM_SYSTEM_TIME_NEW.
pub const MSR_SYSTEM_TIME_NEW: u32 = 0x4b56_4d01;

/// Time-structure flag: the TSC is stable, the clock needs no cross-CPU fix-up.
pub const PVCLOCK_TSC_STABLE_BIT: u8 = 1 << 0;

/// Size of `pvclock_vcpu_time_info`.
pub const TIME_INFO_SIZE: u64 = 32;
/// Size of `pvclock_wall_clock`.
pub const WALL_CLOCK_SIZE: u64 = 12;

/// Nanoseconds per second.
const NSEC_PER_SEC: u64 = 1_000_000_000;

/// The multiplier and shift that turn TSC ticks at `tsc_hz` into nanoseconds the way the
/// guest computes (see [`scale_delta`]): KVM's `kvm_get_time_scale(NSEC_PER_SEC, tsc_hz)`.
pub fn time_scale(tsc_hz: u64) -> (u32, i8) {
    let mut scaled = NSEC_PER_SEC;
    let mut tps = tsc_hz.max(1);
    let mut shift: i32 = 0;
    while tps > scaled * 2 || tps >> 32 != 0 {
        tps >>= 1;
        shift -= 1;
    }
    let mut tps32 = tps as u32;
    while u64::from(tps32) <= scaled || scaled >> 32 != 0 {
        if scaled >> 32 != 0 || tps32 & 0x8000_0000 != 0 {
            scaled >>= 1;
        } else {
            tps32 <<= 1;
        }
        shift += 1;
    }
    let mul = ((scaled << 32) / u64::from(tps32)) as u32;
    (mul, shift as i8)
}

/// The guest's conversion of a TSC delta to nanoseconds (Linux's `pvclock_scale_delta`).
pub fn scale_delta(delta: u64, mul: u32, shift: i8) -> u64 {
    let d = if shift < 0 {
        delta >> (-i32::from(shift))
    } else {
        delta << shift
    };
    ((u128::from(d) * u128::from(mul)) >> 32) as u64
}

/// One `pvclock_vcpu_time_info`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeInfo {
    /// Odd while being written.
    pub version: u32,
    /// The guest TSC the other fields were computed at.
    pub tsc_timestamp: u64,
    /// Nanoseconds at `tsc_timestamp`.
    pub system_time: u64,
    /// TSC-to-ns multiplier (32.32 fixed point after the shift).
    pub tsc_to_system_mul: u32,
    /// TSC-to-ns shift.
    pub tsc_shift: i8,
    /// `PVCLOCK_*` flags.
    pub flags: u8,
}

impl TimeInfo {
    /// The structure's bytes (little-endian, packed, 32 bytes).
    pub fn to_bytes(&self) -> [u8; TIME_INFO_SIZE as usize] {
        let mut b = [0u8; TIME_INFO_SIZE as usize];
        b[0..4].copy_from_slice(&self.version.to_le_bytes());
        b[8..16].copy_from_slice(&self.tsc_timestamp.to_le_bytes());
        b[16..24].copy_from_slice(&self.system_time.to_le_bytes());
        b[24..28].copy_from_slice(&self.tsc_to_system_mul.to_le_bytes());
        b[28] = self.tsc_shift as u8;
        b[29] = self.flags;
        b
    }

    /// Parses the structure's bytes.
    pub fn from_bytes(b: &[u8; TIME_INFO_SIZE as usize]) -> TimeInfo {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| u64::from(u32_at(i)) | u64::from(u32_at(i + 4)) << 32;
        TimeInfo {
            version: u32_at(0),
            tsc_timestamp: u64_at(8),
            system_time: u64_at(16),
            tsc_to_system_mul: u32_at(24),
            tsc_shift: b[28] as i8,
            flags: b[29],
        }
    }

    /// The clock at guest TSC `tsc`, as Linux's `__pvclock_read_cycles` computes it.
    pub fn read(&self, tsc: u64) -> u64 {
        let delta = tsc.wrapping_sub(self.tsc_timestamp);
        self.system_time
            .wrapping_add(scale_delta(delta, self.tsc_to_system_mul, self.tsc_shift))
    }
}

/// The kvmclock state of the (single) vCPU.
#[derive(Clone, Debug, Default)]
pub struct KvmClock {
    system_time_msr: u64,
    wall_clock_msr: u64,
    /// The version last written to the time structure (even).
    version: u32,
    /// Wall-clock ns since the Unix epoch when the VM was created (system time 0).
    boot_wall_ns: u64,
    /// Time structures written (statistics).
    updates: u64,
}

impl KvmClock {
    /// The clock of a VM created at `boot_wall_ns` (ns since the Unix epoch).
    pub fn new(boot_wall_ns: u64) -> KvmClock {
        KvmClock {
            boot_wall_ns,
            ..KvmClock::default()
        }
    }

    /// MSR_KVM_SYSTEM_TIME_NEW.
    pub fn system_time_msr(&self) -> u64 {
        self.system_time_msr
    }

    /// MSR_KVM_WALL_CLOCK_NEW.
    pub fn wall_clock_msr(&self) -> u64 {
        self.wall_clock_msr
    }

    /// Time structures written so far.
    pub fn updates(&self) -> u64 {
        self.updates
    }
}

/// Whether `len` bytes at `addr` lie in RAM within one 4 KiB page.
fn fits(m: &Machine, addr: u64, len: u64) -> bool {
    addr.checked_add(len).is_some_and(|end| end <= m.ram.size()) && (addr & 0xFFF) + len <= 0x1000
}

/// Writes `bytes` at guest-physical `addr` (already checked by [`fits`]), dropping
/// translations of them.
fn put(m: &mut Machine, addr: u64, bytes: &[u8]) {
    if m.ram.write(GuestPhys(addr), bytes).is_ok() {
        m.invalidate_code(addr, addr + bytes.len() as u64);
    }
}

/// WRMSR MSR_KVM_SYSTEM_TIME_NEW: remembers `value` and, if bit 0 enables it, publishes the
/// time structure at `value & !1`.
pub fn write_system_time(m: &mut Machine, cpu: &CpuState, value: u64) {
    m.kvmclock.system_time_msr = value;
    publish(m, cpu);
}

/// Rewrites the enabled time structure for the current TSC offset (after the MSR write, or
/// a write to IA32_TSC). The version goes odd, the fields are written, the version goes
/// even, as a guest reading concurrently would need.
pub fn publish(m: &mut Machine, cpu: &CpuState) {
    let msr = m.kvmclock.system_time_msr;
    let addr = msr & !1;
    if msr & 1 == 0 || !fits(m, addr, TIME_INFO_SIZE) {
        return;
    }
    let ns = m.tsc.read();
    let (mul, shift) = time_scale(TSC_HZ);
    let odd = m.kvmclock.version.wrapping_add(1) | 1;
    let info = TimeInfo {
        version: odd,
        // The virtual TSC counts at TSC_HZ = 1 GHz: its ticks are the nanoseconds.
        tsc_timestamp: ns.wrapping_add(cpu.msr.tsc_offset),
        system_time: ns,
        tsc_to_system_mul: mul,
        tsc_shift: shift,
        flags: PVCLOCK_TSC_STABLE_BIT,
    };
    put(m, addr, &odd.to_le_bytes());
    put(m, addr, &info.to_bytes());
    let even = odd.wrapping_add(1);
    put(m, addr, &even.to_le_bytes());
    m.kvmclock.version = even;
    m.kvmclock.updates += 1;
}

/// WRMSR MSR_KVM_WALL_CLOCK_NEW: writes the wall-clock time at system time 0 to the
/// `pvclock_wall_clock` at `value`, with KVM's version protocol (the guest's version made
/// odd, the time written, then even).
pub fn write_wall_clock(m: &mut Machine, value: u64) {
    m.kvmclock.wall_clock_msr = value;
    if !fits(m, value, WALL_CLOCK_SIZE) {
        return;
    }
    let mut v = [0u8; 4];
    if m.ram.read(GuestPhys(value), &mut v).is_err() {
        return;
    }
    let mut version = u32::from_le_bytes(v);
    if version & 1 != 0 {
        version = version.wrapping_add(1);
    }
    version = version.wrapping_add(1);
    let wall = m.kvmclock.boot_wall_ns;
    let mut wc = [0u8; WALL_CLOCK_SIZE as usize];
    wc[0..4].copy_from_slice(&version.to_le_bytes());
    // `sec` is 32 bits in the ABI (it wraps in 2106, as KVM's does).
    wc[4..8].copy_from_slice(&((wall / NSEC_PER_SEC) as u32).to_le_bytes());
    wc[8..12].copy_from_slice(&((wall % NSEC_PER_SEC) as u32).to_le_bytes());
    put(m, value, &wc);
    put(m, value, &version.wrapping_add(1).to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::SerialSink;

    fn setup() -> (Machine, CpuState) {
        let mut m = Machine::new(4 << 20, SerialSink::Capture).unwrap();
        m.kvmclock = KvmClock::new(1_700_000_000_123_456_789);
        let mut cpu = CpuState::default();
        crate::system::msr::reset(&mut cpu);
        (m, cpu)
    }

    fn time_info(m: &Machine, addr: u64) -> TimeInfo {
        let mut b = [0u8; 32];
        m.ram.read(GuestPhys(addr), &mut b).unwrap();
        TimeInfo::from_bytes(&b)
    }

    #[test]
    fn scale_of_common_frequencies_matches_the_guests_arithmetic() {
        // 1 GHz: exactly one ns per tick (KVM computes mul 2^31, shift 1).
        assert_eq!(time_scale(1_000_000_000), (1 << 31, 1));
        for hz in [
            1_000_000_000u64,
            2_596_000_000,
            3_000_000_000,
            100_000_000,
            32_768,
        ] {
            let (mul, shift) = time_scale(hz);
            // Linux's pvclock_tsc_khz recovers the frequency from mul and shift.
            let mut khz = (1_000_000u64 << 32) / u64::from(mul);
            khz = if shift < 0 {
                khz << -shift
            } else {
                khz >> shift
            };
            let want = hz / 1000;
            assert!(khz.abs_diff(want) <= want / 100_000 + 1, "{hz}: {khz}");
            // One second of ticks is one second, to a few ppm.
            let ns = scale_delta(hz, mul, shift);
            assert!(ns.abs_diff(NSEC_PER_SEC) < 10_000, "{hz}: {ns}");
        }
    }

    #[test]
    fn system_time_structure_follows_the_abi() {
        let (mut m, mut cpu) = setup();
        cpu.msr.tsc_offset = 5_000_000;
        write_system_time(&mut m, &cpu, 0x2000 | 1);
        assert_eq!(m.kvmclock.system_time_msr(), 0x2001);
        let t = time_info(&m, 0x2000);
        assert_eq!(t.version % 2, 0, "even: consistent");
        assert_ne!(t.version, 0);
        assert_eq!((t.tsc_to_system_mul, t.tsc_shift), (1 << 31, 1));
        assert_eq!(t.flags, PVCLOCK_TSC_STABLE_BIT);
        assert_eq!(t.tsc_timestamp, t.system_time + 5_000_000);
        // The guest's reading of the clock at its current TSC is the VM's time in ns.
        let tsc = crate::system::msr::read_tsc(&mut m, &cpu);
        let ns = t.read(tsc);
        assert_eq!(ns, tsc - 5_000_000);
        // A TSC write republishes with a new version; the clock does not jump.
        let before = t.read(crate::system::msr::read_tsc(&mut m, &cpu));
        crate::system::msr::wrmsr(&mut m, &mut cpu, crate::system::msr::index::TSC, 1 << 40)
            .unwrap();
        let u = time_info(&m, 0x2000);
        assert_eq!(u.version, t.version + 2);
        let after = u.read(crate::system::msr::read_tsc(&mut m, &cpu));
        assert!(
            after >= before && after - before < 1_000_000_000,
            "{before} {after}"
        );
        assert_eq!(m.kvmclock.updates(), 2);
    }

    #[test]
    fn disabled_or_misplaced_structures_are_not_written() {
        let (mut m, cpu) = setup();
        let ram = m.ram.size();
        for msr in [0x3000, (ram - 16) | 1, ram | 1, u64::MAX, 0x2FF0 | 1] {
            write_system_time(&mut m, &cpu, msr);
            assert_eq!(m.kvmclock.system_time_msr(), msr, "read back as written");
        }
        assert_eq!(m.kvmclock.updates(), 0);
        let mut b = [0u8; 32];
        m.ram.read(GuestPhys(0x2FF0), &mut b[..16]).unwrap();
        m.ram.read(GuestPhys(0x3000), &mut b[16..]).unwrap();
        assert_eq!(b, [0; 32]);
        write_wall_clock(&mut m, ram - 8);
        write_wall_clock(&mut m, u64::MAX - 3);
        assert_eq!(m.kvmclock.wall_clock_msr(), u64::MAX - 3);
    }

    #[test]
    fn wall_clock_is_the_time_at_system_time_zero() {
        let (mut m, _) = setup();
        m.ram.write(GuestPhys(0x4000), &7u32.to_le_bytes()).unwrap(); // junk, odd
        write_wall_clock(&mut m, 0x4000);
        let words = |m: &Machine| {
            let mut b = [0u8; 12];
            m.ram.read(GuestPhys(0x4000), &mut b).unwrap();
            let w = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
            [w(0), w(4), w(8)]
        };
        // 7 -> 8 -> odd 9 while writing -> even 10.
        assert_eq!(words(&m), [10, 1_700_000_000, 123_456_789]);
        write_wall_clock(&mut m, 0x4000);
        assert_eq!(words(&m)[0], 12);
    }
}
