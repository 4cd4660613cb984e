//! Guest memory: RAM as one host mapping with guard space around it, guest address newtypes,
//! and the foundation's flat MMU (paging is [`crate::mmu`]).
//!
//! Invariants:
//! - [`GuestRam`] reserves `guard + size + guard` bytes of host address space as `PROT_NONE`
//!   and makes only the middle `size` bytes readable and writable, so a stray host access just
//!   past either end of RAM faults instead of touching other host memory.
//! - The mapping never moves or shrinks while the `GuestRam` lives: generated code may embed
//!   [`GuestRam::host_base`], always behind its own `offset + len <= size` check.
//! - Every Rust access takes a guest-physical address and is bounds-checked with checked
//!   arithmetic before any host pointer is formed. No guest value is used as a host address
//!   without that check.
//! - The foundation machine's MMU is flat: guest-virtual = guest-physical, in 64-bit mode at
//!   CPL 0, and exactly RAM is "mapped"; anything else is a not-present page. It applies
//!   while CR0.PE is clear (the foundation machine runs with CR0's reset value); protected
//!   mode and paging translate through [`crate::mmu`] instead.

use translator::Exception;

/// Guest page size (4 KiB).
pub const PAGE_SIZE: u64 = 4096;

/// Smallest RAM a VM may have (2 MiB).
pub const MIN_RAM: u64 = 2 << 20;

/// Largest RAM a VM may have (64 GiB; only address space is reserved up front).
pub const MAX_RAM: u64 = 64 << 30;

/// Inaccessible host address space on each side of RAM.
pub const GUARD_BYTES: usize = 2 << 20;

/// A guest-physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GuestPhys(pub u64);

/// A guest-virtual (linear) address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GuestVirt(pub u64);

impl GuestPhys {
    /// The address `n` bytes further on, or `None` on overflow.
    pub fn checked_add(self, n: u64) -> Option<GuestPhys> {
        self.0.checked_add(n).map(GuestPhys)
    }
}

/// The kind of memory access, as a page walk sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// A data read.
    Read,
    /// A data write.
    Write,
    /// An instruction fetch.
    Fetch,
}

impl Access {
    /// The #PF error code of a not-present fault at CPL 0 for this access: bit 1 (W/R) for
    /// writes, bit 4 (I/D) for fetches; P, U/S and RSVD are zero.
    pub const fn not_present_code(self) -> u32 {
        match self {
            Access::Read => 0,
            Access::Write => 1 << 1,
            Access::Fetch => 1 << 4,
        }
    }
}

/// Errors of guest memory.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MemError {
    /// RAM size {0:#x} is invalid: it must be a multiple of 4 KiB between 2 MiB and 64 GiB.
    #[error("RAM size {0:#x} is invalid: it must be a multiple of 4 KiB between 2 MiB and 64 GiB")]
    BadSize(u64),
    /// Could not reserve {bytes:#x} bytes of host memory for guest RAM: {errno}.
    #[error("could not reserve {bytes:#x} bytes of host memory for guest RAM: {errno}")]
    Map {
        /// Bytes requested (RAM and guards).
        bytes: u64,
        /// The host's `errno`.
        errno: i32,
    },
    /// Guest-physical range {addr:#x}+{len:#x} is outside RAM (size {ram:#x}).
    #[error("guest-physical range {addr:#x}+{len:#x} is outside RAM (size {ram:#x})")]
    OutOfRange {
        /// First byte of the access.
        addr: u64,
        /// Length of the access.
        len: u64,
        /// RAM size.
        ram: u64,
    },
}

/// Guest RAM: guest-physical `[0, size)` backed by one anonymous host mapping.
pub struct GuestRam {
    /// Start of the whole reservation (guards included).
    reservation: *mut u8,
    reservation_len: usize,
    /// Start of RAM (`reservation + GUARD_BYTES`).
    base: *mut u8,
    size: u64,
}

// SAFETY: `GuestRam` exclusively owns its mapping; the raw pointers are only dereferenced
// through `&self`/`&mut self` methods (or by generated code the owner runs), so moving the
// owner to another thread moves all access with it.
unsafe impl Send for GuestRam {}

impl GuestRam {
    /// Maps `size` bytes of zeroed RAM between two inaccessible guards.
    pub fn new(size: u64) -> Result<GuestRam, MemError> {
        if !(MIN_RAM..=MAX_RAM).contains(&size) || !size.is_multiple_of(PAGE_SIZE) {
            return Err(MemError::BadSize(size));
        }
        // Both fit: size <= 64 GiB and this is a 64-bit host.
        let ram_len = size as usize;
        let total = ram_len + 2 * GUARD_BYTES;
        let map_err = || MemError::Map {
            bytes: total as u64,
            errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        };
        // SAFETY: an anonymous private PROT_NONE reservation at an address of the kernel's
        // choosing; it aliases nothing and we check the result before using it.
        let reservation = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if reservation == libc::MAP_FAILED {
            return Err(map_err());
        }
        let reservation = reservation.cast::<u8>();
        // SAFETY: GUARD_BYTES < total, so the pointer stays inside the reservation.
        let base = unsafe { reservation.add(GUARD_BYTES) };
        // SAFETY: `[base, base + ram_len)` lies inside the reservation we own; making it
        // read-write leaves the guards on both sides PROT_NONE.
        let rc =
            unsafe { libc::mprotect(base.cast(), ram_len, libc::PROT_READ | libc::PROT_WRITE) };
        if rc != 0 {
            let err = map_err();
            // SAFETY: unmapping exactly the reservation created above, which nothing uses.
            unsafe { libc::munmap(reservation.cast(), total) };
            return Err(err);
        }
        Ok(GuestRam {
            reservation,
            reservation_len: total,
            base,
            size,
        })
    }

    /// RAM size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Host address of guest-physical 0. Generated code may use it only behind its own bounds
    /// check against [`GuestRam::size`].
    pub fn host_base(&self) -> usize {
        self.base as usize
    }

    /// Whether `[addr, addr + len)` lies inside RAM.
    pub fn contains(&self, addr: GuestPhys, len: u64) -> bool {
        addr.0.checked_add(len).is_some_and(|end| end <= self.size)
    }

    /// Checks `[addr, addr + len)` and returns its offset into the mapping.
    fn check(&self, addr: GuestPhys, len: usize) -> Result<usize, MemError> {
        if self.contains(addr, len as u64) {
            // In range, so it fits in usize (size <= MAX_RAM).
            Ok(addr.0 as usize)
        } else {
            Err(MemError::OutOfRange {
                addr: addr.0,
                len: len as u64,
                ram: self.size,
            })
        }
    }

    /// The RAM bytes `[addr, addr + len)`.
    pub fn slice(&self, addr: GuestPhys, len: usize) -> Result<&[u8], MemError> {
        let off = self.check(addr, len)?;
        // SAFETY: `check` proved `[off, off + len)` is inside the read-write RAM mapping,
        // which lives as long as `self`. Generated code, the only other writer, never runs
        // while a Rust borrow of `self` is alive (the dispatcher owns both).
        Ok(unsafe { std::slice::from_raw_parts(self.base.add(off), len) })
    }

    /// The RAM bytes `[addr, addr + len)`, writable.
    pub fn slice_mut(&mut self, addr: GuestPhys, len: usize) -> Result<&mut [u8], MemError> {
        let off = self.check(addr, len)?;
        // SAFETY: as in `slice`; `&mut self` guarantees no other Rust borrow exists.
        Ok(unsafe { std::slice::from_raw_parts_mut(self.base.add(off), len) })
    }

    /// Copies RAM at `addr` into `buf`.
    pub fn read(&self, addr: GuestPhys, buf: &mut [u8]) -> Result<(), MemError> {
        buf.copy_from_slice(self.slice(addr, buf.len())?);
        Ok(())
    }

    /// Copies `bytes` into RAM at `addr`.
    pub fn write(&mut self, addr: GuestPhys, bytes: &[u8]) -> Result<(), MemError> {
        self.slice_mut(addr, bytes.len())?.copy_from_slice(bytes);
        Ok(())
    }

    /// Fills `[addr, addr + len)` with zeros.
    pub fn zero(&mut self, addr: GuestPhys, len: u64) -> Result<(), MemError> {
        let len = usize::try_from(len).map_err(|_| MemError::OutOfRange {
            addr: addr.0,
            len,
            ram: self.size,
        })?;
        self.slice_mut(addr, len)?.fill(0);
        Ok(())
    }

    /// Reads a little-endian value of `size` bytes (1..=8), zero-extended.
    pub fn read_le(&self, addr: GuestPhys, size: usize) -> Result<u64, MemError> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b[..size.min(8)])?;
        Ok(u64::from_le_bytes(b))
    }

    /// Writes the low `size` bytes (1..=8) of `value`, little-endian.
    pub fn write_le(&mut self, addr: GuestPhys, size: usize, value: u64) -> Result<(), MemError> {
        self.write(addr, &value.to_le_bytes()[..size.min(8)])
    }
}

impl Drop for GuestRam {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the reservation made in `new`; no borrow of RAM can
        // outlive `self`, and generated code never runs after its owner is dropped.
        unsafe { libc::munmap(self.reservation.cast(), self.reservation_len) };
    }
}

impl std::fmt::Debug for GuestRam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestRam")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// Whether a virtual address is canonical for 48-bit linear addresses (bits 63..47 equal).
pub const fn is_canonical(v: u64) -> bool {
    let top = (v as i64) >> 47;
    top == 0 || top == -1
}

/// The foundation's flat MMU: guest-virtual → guest-physical while CR0.PE is clear.
///
/// The foundation machine is flat (identity over RAM, 64-bit mode, CPL 0). With CR0.PE set,
/// [`crate::machine::Machine`] translates through [`crate::mmu`] (identity with paging off,
/// page walks and the soft TLB with it on) and sends non-RAM addresses to MMIO.
#[derive(Clone, Debug, Default)]
pub struct Mmu {
    /// Guest-physical bytes the flat mapping covers (RAM size).
    ram_size: u64,
}

impl Mmu {
    /// A flat MMU mapping exactly `[0, ram_size)`.
    pub fn flat(ram_size: u64) -> Mmu {
        Mmu { ram_size }
    }

    /// Translates `vaddr` for `access`. Non-canonical addresses raise #GP(0); addresses the
    /// mapping does not cover raise a not-present #PF with CR2 = `vaddr`.
    pub fn translate(&self, vaddr: GuestVirt, access: Access) -> Result<GuestPhys, Exception> {
        if !is_canonical(vaddr.0) {
            return Err(Exception::GeneralProtection(0));
        }
        if vaddr.0 >= self.ram_size {
            return Err(Exception::PageFault {
                addr: vaddr.0,
                code: access.not_present_code(),
            });
        }
        Ok(GuestPhys(vaddr.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_validated() {
        assert_eq!(GuestRam::new(0).unwrap_err(), MemError::BadSize(0));
        assert_eq!(
            GuestRam::new(MIN_RAM - PAGE_SIZE).unwrap_err(),
            MemError::BadSize(MIN_RAM - PAGE_SIZE)
        );
        assert_eq!(
            GuestRam::new(MIN_RAM + 1).unwrap_err(),
            MemError::BadSize(MIN_RAM + 1)
        );
        assert!(GuestRam::new(MAX_RAM + PAGE_SIZE).is_err());
        assert_eq!(GuestRam::new(MIN_RAM).unwrap().size(), MIN_RAM);
    }

    #[test]
    fn ram_starts_zeroed_and_round_trips() {
        let mut ram = GuestRam::new(MIN_RAM).unwrap();
        assert_eq!(ram.read_le(GuestPhys(0x1000), 8).unwrap(), 0);
        ram.write_le(GuestPhys(0x1FFF), 2, 0xBEEF).unwrap();
        assert_eq!(ram.read_le(GuestPhys(0x1FFF), 2).unwrap(), 0xBEEF);
        assert_eq!(ram.read_le(GuestPhys(0x1FFF), 1).unwrap(), 0xEF);
        let last = MIN_RAM - 8;
        ram.write_le(GuestPhys(last), 8, u64::MAX).unwrap();
        assert_eq!(ram.read_le(GuestPhys(last), 8).unwrap(), u64::MAX);
        ram.zero(GuestPhys(last), 8).unwrap();
        assert_eq!(ram.read_le(GuestPhys(last), 8).unwrap(), 0);
    }

    #[test]
    fn accesses_are_bounds_checked() {
        let mut ram = GuestRam::new(MIN_RAM).unwrap();
        let end = MIN_RAM;
        assert!(
            ram.read_le(GuestPhys(end - 4), 8).is_err(),
            "straddles the end"
        );
        assert!(ram.write(GuestPhys(end), &[1]).is_err());
        assert!(
            ram.read(GuestPhys(u64::MAX), &mut [0u8; 2]).is_err(),
            "wraps"
        );
        assert!(ram.zero(GuestPhys(0), end + 1).is_err());
        assert!(
            ram.slice(GuestPhys(end), 0).is_ok(),
            "empty access at the end"
        );
        assert!(!ram.contains(GuestPhys(u64::MAX - 1), 4));
        assert_eq!(
            ram.write(GuestPhys(end - 1), &[0, 0]).unwrap_err(),
            MemError::OutOfRange {
                addr: end - 1,
                len: 2,
                ram: end
            }
        );
    }

    #[test]
    fn flat_mmu_maps_exactly_ram() {
        let mmu = Mmu::flat(MIN_RAM);
        assert_eq!(
            mmu.translate(GuestVirt(0x1234), Access::Read),
            Ok(GuestPhys(0x1234))
        );
        assert_eq!(
            mmu.translate(GuestVirt(MIN_RAM), Access::Write),
            Err(Exception::PageFault {
                addr: MIN_RAM,
                code: 2
            })
        );
        assert_eq!(
            mmu.translate(GuestVirt(MIN_RAM + 5), Access::Fetch),
            Err(Exception::PageFault {
                addr: MIN_RAM + 5,
                code: 0x10
            })
        );
        assert_eq!(
            mmu.translate(GuestVirt(0x8000_0000_0000), Access::Read),
            Err(Exception::GeneralProtection(0))
        );
        assert!(is_canonical(0xFFFF_8000_0000_0000));
        assert!(!is_canonical(0x0000_8000_0000_0000));
    }
}
