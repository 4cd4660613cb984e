//! Executable memory for translated code: one memory file (memfd) mapped twice.
//!
//! Invariants:
//! - The writable view and the executable view map the same memfd pages at different host
//!   addresses. No view is ever writable and executable at once (W^X): code is written through
//!   the read-write view and runs from the read-execute view.
//! - `used <= capacity`. Bytes `[0, used)` hold installed code and `int3` padding; everything
//!   handed out is [`CODE_ALIGN`]-aligned and lies inside the executable view.
//! - [`ExecMemory::reset`] only rewinds `used`. The caller guarantees that nothing executes or
//!   can reach the old code any more (all link slots reset, maps cleared) when it calls it.
//!
//! x86 keeps instruction fetch coherent with stores made through another virtual alias of the
//! same physical page, so no instruction-cache maintenance is needed after writing code. A
//! port to a host without coherent instruction caches would have to add it in `alloc`.

use std::fs::File;

use memmap2::{Mmap, MmapMut, MmapOptions};
use rustix::fs::{memfd_create, MemfdFlags};
use rustix::io::Errno;

use crate::CacheError;

/// Alignment of every block of code.
pub const CODE_ALIGN: usize = 16;

/// Filler between blocks: `int3`, so a stray jump into padding traps at once.
const PAD_BYTE: u8 = 0xCC;

/// Granule the capacity is rounded up to.
const MAP_GRANULE: usize = 4096;

/// Bump allocator over a W^X pair of views of one memfd.
pub struct ExecMemory {
    /// Read-write, non-executable view; only ever written through.
    rw: MmapMut,
    /// Read-execute view of the same pages; the addresses handed out.
    rx: Mmap,
    /// Bytes in use from the start of the views.
    used: usize,
}

impl ExecMemory {
    /// Creates `bytes` (rounded up to 4 KiB) of executable memory.
    pub fn new(bytes: usize) -> Result<Self, CacheError> {
        if bytes == 0 {
            return Err(CacheError::InvalidConfig("code_bytes must be non-zero"));
        }
        let len = bytes
            .checked_next_multiple_of(MAP_GRANULE)
            .ok_or(CacheError::InvalidConfig("code_bytes is too large"))?;
        let file = code_file()?;
        file.set_len(len as u64)?;
        // SAFETY: the memfd is private to this process and never truncated after this point,
        // so the mapping cannot be invalidated under us; the view is only accessed through the
        // `MmapMut` (bounds-checked slices).
        let rw = unsafe { MmapOptions::new().len(len).map_mut(&file)? };
        // SAFETY: same file, same length, never truncated; this view is read-execute only and
        // we never create references into it that could observe writes as a data race (code
        // is only written while nothing executes it, and Rust never reads it).
        let rx = unsafe { MmapOptions::new().len(len).map_exec(&file)? };
        // Both mappings keep the memory alive; the descriptor itself is no longer needed.
        drop(file);
        Ok(Self { rw, rx, used: 0 })
    }

    /// Copies `code` into the cache and returns its address in the executable view.
    pub fn alloc(&mut self, code: &[u8]) -> Result<usize, CacheError> {
        let capacity = self.capacity();
        if code.len() > capacity {
            return Err(CacheError::TooLarge {
                requested: code.len(),
                capacity,
            });
        }
        let start = self.used.next_multiple_of(CODE_ALIGN);
        let end = match start.checked_add(code.len()) {
            Some(end) if end <= capacity => end,
            _ => return Err(CacheError::Full),
        };
        self.rw[self.used..start].fill(PAD_BYTE);
        self.rw[start..end].copy_from_slice(code);
        self.used = end;
        Ok(self.rx.as_ptr() as usize + start)
    }

    /// Forgets all code; offsets restart at 0. See the module invariants.
    pub fn reset(&mut self) {
        self.used = 0;
    }

    /// Bytes in use (code and padding).
    pub fn used(&self) -> usize {
        self.used
    }

    /// Total bytes of executable memory.
    pub fn capacity(&self) -> usize {
        self.rx.len()
    }

    /// Whether `addr` lies inside the executable view.
    pub fn contains(&self, addr: usize) -> bool {
        let base = self.rx.as_ptr() as usize;
        addr >= base && addr - base < self.rx.len()
    }

    /// Start of the executable view.
    pub fn exec_base(&self) -> usize {
        self.rx.as_ptr() as usize
    }

    /// Start of the writable view (a different address than [`ExecMemory::exec_base`]).
    pub fn write_base(&self) -> usize {
        self.rw.as_ptr() as usize
    }
}

/// Creates the anonymous memory file backing the code views.
fn code_file() -> std::io::Result<File> {
    const NAME: &str = "popek-code-cache";
    // Kernels with `vm.memfd_noexec` want executability asked for explicitly (MFD_EXEC, Linux
    // 6.3); older kernels reject the flag, and their memfds are always mappable executable.
    let fd = match memfd_create(NAME, MemfdFlags::CLOEXEC | MemfdFlags::EXEC) {
        Ok(fd) => fd,
        Err(Errno::INVAL) => memfd_create(NAME, MemfdFlags::CLOEXEC)?,
        Err(e) => return Err(e.into()),
    };
    Ok(File::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Permission string (e.g. `r-xs`) of the mapping holding `addr`, from /proc/self/maps.
    fn perms_of(addr: usize) -> String {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        for line in maps.lines() {
            let mut fields = line.split_whitespace();
            let range = fields.next().unwrap();
            let perms = fields.next().unwrap();
            let (lo, hi) = range.split_once('-').unwrap();
            let lo = usize::from_str_radix(lo, 16).unwrap();
            let hi = usize::from_str_radix(hi, 16).unwrap();
            if (lo..hi).contains(&addr) {
                return perms.to_string();
            }
        }
        panic!("{addr:#x} is not mapped");
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn runs_code_from_exec_view() {
        let mut mem = ExecMemory::new(4096).unwrap();
        // mov eax, 42; ret
        let addr = mem.alloc(&[0xB8, 0x2A, 0x00, 0x00, 0x00, 0xC3]).unwrap();
        assert!(mem.contains(addr));
        // SAFETY: `addr` is a complete C-ABI function returning a u32 in eax.
        let f: extern "C" fn() -> u32 = unsafe { std::mem::transmute(addr) };
        assert_eq!(f(), 42);
    }

    #[test]
    fn views_are_w_xor_x() {
        let mem = ExecMemory::new(8192).unwrap();
        assert_ne!(mem.exec_base(), mem.write_base());
        let rx = perms_of(mem.exec_base());
        let rw = perms_of(mem.write_base());
        assert!(rx.starts_with("r-x"), "exec view is {rx}");
        assert!(rw.starts_with("rw-"), "write view is {rw}");
    }

    #[test]
    fn aligns_and_pads() {
        let mut mem = ExecMemory::new(4096).unwrap();
        let a = mem.alloc(&[0xC3]).unwrap();
        let b = mem.alloc(&[0x90, 0xC3]).unwrap();
        assert_eq!(a % CODE_ALIGN, 0);
        assert_eq!(b, a + CODE_ALIGN);
        assert_eq!(mem.used(), CODE_ALIGN + 2);
        assert_eq!(&mem.rw[1..CODE_ALIGN], &[PAD_BYTE; CODE_ALIGN - 1]);
    }

    #[test]
    fn full_then_reset_restarts_at_zero() {
        let mut mem = ExecMemory::new(100).unwrap();
        assert_eq!(mem.capacity(), 4096);
        let first = mem.alloc(&[0xC3; 4000]).unwrap();
        assert!(matches!(mem.alloc(&[0xC3; 100]), Err(CacheError::Full)));
        assert!(matches!(
            mem.alloc(&[0xC3; 5000]),
            Err(CacheError::TooLarge {
                requested: 5000,
                capacity: 4096
            })
        ));
        mem.reset();
        assert_eq!(mem.alloc(&[0xC3; 100]).unwrap(), first);
    }

    #[test]
    fn rejects_empty_capacity() {
        assert!(matches!(
            ExecMemory::new(0),
            Err(CacheError::InvalidConfig(_))
        ));
    }
}
