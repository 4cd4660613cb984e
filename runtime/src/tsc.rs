//! The virtual time-stamp counter read by RDTSC.
//!
//! It counts host time since the VM was created at a fixed [`TSC_HZ`], so guest timing loops
//! see a constant-rate TSC whatever the host CPU. Invariant: successive reads strictly
//! increase, even if the host clock reads the same nanosecond twice.

use std::time::Instant;

/// Virtual TSC frequency: 1 GHz (one tick per host nanosecond).
pub const TSC_HZ: u64 = 1_000_000_000;

/// A monotonic virtual TSC.
#[derive(Clone, Debug)]
pub struct VirtualTsc {
    start: Instant,
    last: u64,
}

impl VirtualTsc {
    /// A TSC reading about zero now.
    pub fn new() -> VirtualTsc {
        VirtualTsc {
            start: Instant::now(),
            last: 0,
        }
    }

    /// A read-only handle on the same time base, for devices that keep time on their own
    /// (the ACPI PM timer): it reads what [`VirtualTsc::read`] would, give or take the
    /// strict-increase adjustment.
    pub fn clock(&self) -> Clock {
        Clock { start: self.start }
    }

    /// The current value.
    pub fn read(&mut self) -> u64 {
        let ns = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last = ns.max(self.last.saturating_add(1));
        self.last
    }
}

/// A read-only view of a [`VirtualTsc`]'s time base (see [`VirtualTsc::clock`]).
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    /// Virtual TSC ticks (host nanoseconds) since the VM was created; never decreases.
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

impl Default for VirtualTsc {
    fn default() -> Self {
        VirtualTsc::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strictly_increasing_and_roughly_real_time() {
        let mut t = VirtualTsc::new();
        let a = t.read();
        let b = t.read();
        assert!(b > a);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let c = t.read();
        assert!(
            c - b >= 2_000_000,
            "2 ms at 1 GHz is 2e6 ticks, got {}",
            c - b
        );
        let clock = t.clock();
        let (d, e) = (clock.now_ns(), t.read());
        assert!(d >= c && e >= d, "the clock shares the TSC's time base");
    }
}
