//! [`Machine`]: everything the runtime helpers reach while guest code runs — RAM and the MMU,
//! the port bus, the code cache and the interpreter's decode cache, the virtual TSC — plus
//! the guest memory access paths shared by both engines.
//!
//! Invariants:
//! - The guest CPU state is *not* part of `Machine`: generated code holds a `*mut CpuState`
//!   while helpers borrow the machine through `CpuState::runtime`, so the two never alias.
//! - A guest store to a page holding translated code either invalidates that code before the
//!   store completes (interpreter, host writes) or, from generated code, is not performed at
//!   all and reported as [`WriteOutcome::CodeModified`], so no block ever runs stale code.
//! - A store is precise: every page it touches is translated before any byte is written.

use translator::decode::PAGE_SIZE;
use translator::{CpuState, Exception, Mode};

use crate::devices::serial::COM1;
use crate::devices::{
    debug_exit::DEBUG_EXIT, DebugExit, DeviceId, PortBus, PortRange, PostCode, Serial, SerialSink,
};
use crate::engine::interp::DecodeCache;
use crate::helpers::HelperCounters;
use crate::memory::{Access, GuestRam, GuestVirt, MemError, Mmu};
use crate::tsc::VirtualTsc;

/// The POST diagnostic port.
pub const POST_PORT: PortRange = PortRange { base: 0x80, len: 1 };

/// Longest x86 instruction, in bytes.
pub const MAX_INSN_LEN: usize = 15;

/// Which engine is executing guest code (decides how helpers treat stores to code pages).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Executing {
    /// The interpreter (or the host): stores to code pages invalidate the code and proceed.
    #[default]
    Interp,
    /// Generated code: a store to a page with translated code is not performed.
    Jit,
}

/// Why a device or a helper asked the VM to stop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopRequest {
    /// The guest wrote this value to the isa-debug-exit port.
    DebugExit(u32),
    /// A runtime bug was caught (e.g. a panic inside a helper).
    Internal(String),
}

/// Result of a guest store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The bytes were written.
    Done,
    /// The store hit translated code while generated code was running; nothing was written
    /// and [`Machine::modified`] holds its guest-physical ranges.
    CodeModified,
}

/// Guest code bytes fetched for decoding: up to the end of the first page, plus up to
/// [`MAX_INSN_LEN`] bytes of the next page when it is mapped.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// The bytes, starting at the fetch address.
    pub bytes: Vec<u8>,
    /// Guest-physical address of the first byte.
    pub phys: u64,
    /// How many of `bytes` lie in the first page.
    pub first_len: usize,
    /// Guest-physical address of the next page, if any of its bytes were fetched.
    pub next_phys: Option<u64>,
}

impl Fetched {
    /// Guest-physical `[start, end)` ranges of the first `len` fetched bytes.
    pub fn phys_ranges(&self, len: u64) -> Vec<(u64, u64)> {
        let first = len.min(self.first_len as u64);
        let mut v = vec![(self.phys, self.phys + first)];
        if let (true, Some(next)) = (len > first, self.next_phys) {
            v.push((next, next + (len - first)));
        }
        v
    }
}

/// The machine the helpers operate on. See the module invariants.
pub struct Machine {
    /// Guest RAM.
    pub ram: GuestRam,
    /// Virtual → physical translation.
    pub mmu: Mmu,
    /// Port-I/O devices.
    pub bus: PortBus,
    serial: DeviceId,
    /// The DBT engine's code cache (created with that engine).
    pub code: Option<cache::CodeCache>,
    /// The interpreter's decoded instructions.
    pub decoded: DecodeCache,
    /// Set when a store dropped decoded blocks; the interpreter then ends the block it is
    /// running after the storing instruction.
    pub decoded_dropped: bool,
    /// Who is executing guest code right now.
    pub executing: Executing,
    /// Set when a device or helper asks the VM to stop.
    pub stop: Option<StopRequest>,
    /// Guest-physical ranges of the last store refused with [`WriteOutcome::CodeModified`].
    pub modified: Vec<(u64, u64)>,
    /// The virtual time-stamp counter.
    pub tsc: VirtualTsc,
    /// Helper calls by kind.
    pub counters: HelperCounters,
    /// Guest exceptions that reached the dispatcher.
    pub exceptions: u64,
    /// Stores refused because they hit translated code (self-modifying code).
    pub code_modified: u64,
    /// Set when virtual-to-physical mappings may have changed (TLB flush, INVLPG); the
    /// dispatcher then drops virtual-PC-keyed state (the jump cache) and clears it.
    pub mappings_changed: bool,
}

/// The privilege an access is checked with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Privilege {
    /// CPL 3 (user pages only; SMAP/SMEP do not apply).
    User,
    /// CPL 0..2 or an implicit supervisor access.
    Supervisor,
}

impl Privilege {
    /// The privilege of explicit accesses at `cpl`.
    pub fn of_cpl(cpl: u64) -> Privilege {
        if cpl == 3 {
            Privilege::User
        } else {
            Privilege::Supervisor
        }
    }
}

impl Machine {
    /// A machine with `mem_bytes` of RAM and the standard devices: COM1 (to `serial`), the
    /// isa-debug-exit port and the POST port.
    pub fn new(mem_bytes: u64, serial: SerialSink) -> Result<Machine, MemError> {
        let ram = GuestRam::new(mem_bytes)?;
        let mut bus = PortBus::new();
        let serial = bus
            .register(COM1, Box::new(Serial::new(serial)))
            .expect("fixed ports do not overlap");
        bus.register(DEBUG_EXIT, Box::new(DebugExit))
            .expect("fixed ports do not overlap");
        bus.register(POST_PORT, Box::new(PostCode::default()))
            .expect("fixed ports do not overlap");
        Ok(Machine {
            mmu: Mmu::flat(ram.size()),
            ram,
            bus,
            serial,
            code: None,
            decoded: DecodeCache::default(),
            decoded_dropped: false,
            executing: Executing::Interp,
            stop: None,
            modified: Vec::new(),
            tsc: VirtualTsc::new(),
            counters: HelperCounters::default(),
            exceptions: 0,
            code_modified: 0,
            mappings_changed: false,
        })
    }

    /// The current execution mode (the foundation machine has only one).
    pub fn mode(&self) -> Mode {
        Mode::LONG64_CPL0
    }

    /// COM1.
    pub fn serial(&self) -> &Serial {
        self.bus.device(self.serial).expect("COM1 is a Serial")
    }

    /// COM1, mutably.
    pub fn serial_mut(&mut self) -> &mut Serial {
        self.bus.device_mut(self.serial).expect("COM1 is a Serial")
    }

    // ---------------------------------------------------------------- guest memory

    /// Reads `size` bytes (1..=8) at guest-virtual `vaddr`, zero-extended; a read crossing a
    /// page is translated page by page.
    pub fn read_virt(&mut self, vaddr: u64, size: usize, access: Access) -> Result<u64, Exception> {
        let size = size.clamp(1, 8);
        let mut bytes = [0u8; 8];
        let mut done = 0;
        while done < size {
            let va = vaddr.wrapping_add(done as u64);
            let n = (size - done).min(bytes_to_page_end(va));
            let pa = self.mmu.translate(GuestVirt(va), access)?;
            // The flat MMU only maps RAM, so this cannot fail; a future MMIO hole would be
            // dispatched here.
            self.ram
                .read(pa, &mut bytes[done..done + n])
                .map_err(|_| not_present(va, access))?;
            done += n;
        }
        Ok(u64::from_le_bytes(bytes))
    }

    /// Writes the low `size` bytes (1..=8) of `value` at guest-virtual `vaddr`. Every page is
    /// translated before anything is written. See [`WriteOutcome`] for stores to code.
    pub fn write_virt(
        &mut self,
        vaddr: u64,
        size: usize,
        value: u64,
    ) -> Result<WriteOutcome, Exception> {
        let size = size.clamp(1, 8);
        let first = size.min(bytes_to_page_end(vaddr));
        let pa0 = self.mmu.translate(GuestVirt(vaddr), Access::Write)?;
        let pa1 = if first < size {
            let va1 = vaddr.wrapping_add(first as u64);
            Some(self.mmu.translate(GuestVirt(va1), Access::Write)?)
        } else {
            None
        };
        let pieces = [
            Some((pa0, 0, first)),
            pa1.map(|pa| (pa, first, size - first)),
        ];
        let hits_jit_code = self.executing == Executing::Jit
            && pieces
                .iter()
                .flatten()
                .any(|&(pa, _, n)| self.has_translated_code(pa.0, n));
        if hits_jit_code {
            self.modified.clear();
            for (pa, _, n) in pieces.into_iter().flatten() {
                self.modified.push((pa.0, pa.0 + n as u64));
            }
            self.code_modified += 1;
            return Ok(WriteOutcome::CodeModified);
        }
        let bytes = value.to_le_bytes();
        for (pa, off, n) in pieces.into_iter().flatten() {
            self.ram
                .write(pa, &bytes[off..off + n])
                .map_err(|_| not_present(vaddr.wrapping_add(off as u64), Access::Write))?;
            self.invalidate_code(pa.0, pa.0 + n as u64);
        }
        Ok(WriteOutcome::Done)
    }

    /// Reads `size` bytes (1..=8) at linear address `lin` as the system handlers do: with
    /// `privilege`'s rights (descriptor-table, TSS and interrupt-stack accesses are
    /// [`Privilege::Supervisor`] whatever the CPL), through paging when CR0.PG is set. Guest
    /// faults come back as values (#PF with its error code; the caller sets CR2 when it
    /// delivers).
    pub fn read_lin(
        &mut self,
        cpu: &mut CpuState,
        lin: u64,
        size: usize,
        access: Access,
        privilege: Privilege,
    ) -> Result<u64, Exception> {
        let _ = (cpu, privilege);
        self.read_virt(lin, size, access)
    }

    /// Writes the low `size` bytes (1..=8) of `value` at linear address `lin` (see
    /// [`Machine::read_lin`]). Translated code on the page is invalidated; the write always
    /// happens (handlers run between blocks, never inside a block's store).
    pub fn write_lin(
        &mut self,
        cpu: &mut CpuState,
        lin: u64,
        size: usize,
        value: u64,
        privilege: Privilege,
    ) -> Result<(), Exception> {
        let _ = (cpu, privilege);
        let saved = std::mem::replace(&mut self.executing, Executing::Interp);
        let r = self.write_virt(lin, size, value).map(|_| ());
        self.executing = saved;
        r
    }

    /// Invalidates every TLB entry (MOV CR3, CR0/CR4 paging changes); `global` also drops
    /// global pages. Sets [`Machine::mappings_changed`].
    pub fn flush_tlb(&mut self, cpu: &mut CpuState, global: bool) {
        let _ = global;
        cpu.tlb.flush();
        self.mappings_changed = true;
    }

    /// Invalidates the TLB entries of the page holding linear address `lin` (INVLPG). Sets
    /// [`Machine::mappings_changed`].
    pub fn invlpg(&mut self, cpu: &mut CpuState, lin: u64) {
        let _ = lin;
        cpu.tlb.flush();
        self.mappings_changed = true;
    }

    /// Whether translated code (of either engine) may cover `[phys, phys + len)`'s pages.
    fn has_translated_code(&self, phys: u64, len: usize) -> bool {
        let last = phys + len.max(1) as u64 - 1;
        self.code
            .as_ref()
            .is_some_and(|c| c.page_has_code(phys) || c.page_has_code(last))
    }

    /// Drops every translation (blocks and decoded instructions) of guest-physical
    /// `[start, end)`. Cheap when the range holds no code.
    pub fn invalidate_code(&mut self, start: u64, end: u64) {
        if end <= start {
            return;
        }
        if let Some(c) = self.code.as_mut() {
            let (first, last) = (start & !(PAGE_SIZE - 1), (end - 1) & !(PAGE_SIZE - 1));
            let mut page = first;
            loop {
                if c.page_has_code(page) {
                    c.invalidate_range(start, end);
                    break;
                }
                if page >= last {
                    break;
                }
                page += PAGE_SIZE;
            }
        }
        if self.decoded.invalidate(start, end) {
            self.decoded_dropped = true;
        }
    }

    /// Fetches the code bytes at `vaddr` for decoding (see [`Fetched`]). Fails only when the
    /// first byte cannot be fetched.
    pub fn fetch_code(&self, vaddr: u64) -> Result<Fetched, Exception> {
        let pa = self.mmu.translate(GuestVirt(vaddr), Access::Fetch)?;
        let first_len = bytes_to_page_end(vaddr);
        let mut bytes = self
            .ram
            .slice(pa, first_len)
            .map_err(|_| not_present(vaddr, Access::Fetch))?
            .to_vec();
        let next_va = vaddr.wrapping_add(first_len as u64);
        let next_phys = match self.mmu.translate(GuestVirt(next_va), Access::Fetch) {
            Ok(pb) => self.ram.slice(pb, MAX_INSN_LEN).ok().map(|s| {
                bytes.extend_from_slice(s);
                pb.0
            }),
            Err(_) => None,
        };
        Ok(Fetched {
            bytes,
            phys: pa.0,
            first_len,
            next_phys,
        })
    }

    /// Up to [`MAX_INSN_LEN`] instruction bytes at `vaddr` (fewer at the end of memory); for
    /// reports.
    pub fn insn_bytes(&self, vaddr: u64) -> Vec<u8> {
        self.fetch_code(vaddr)
            .map(|f| f.bytes.into_iter().take(MAX_INSN_LEN).collect())
            .unwrap_or_default()
    }
}

/// Bytes from `vaddr` to the end of its page (1..=4096).
pub fn bytes_to_page_end(vaddr: u64) -> usize {
    (PAGE_SIZE - (vaddr & (PAGE_SIZE - 1))) as usize
}

/// The not-present page fault of an access to `vaddr`.
pub fn not_present(vaddr: u64, access: Access) -> Exception {
    Exception::PageFault {
        addr: vaddr,
        code: access.not_present_code(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{GuestPhys, MIN_RAM};

    fn machine() -> Machine {
        Machine::new(MIN_RAM, SerialSink::Capture).unwrap()
    }

    #[test]
    fn reads_and_writes_cross_pages() {
        let mut m = machine();
        assert_eq!(
            m.write_virt(0x1FFD, 8, 0x1122_3344_5566_7788),
            Ok(WriteOutcome::Done)
        );
        assert_eq!(
            m.read_virt(0x1FFD, 8, Access::Read),
            Ok(0x1122_3344_5566_7788)
        );
        assert_eq!(m.read_virt(0x2000, 1, Access::Read), Ok(0x55));
    }

    #[test]
    fn out_of_ram_accesses_fault_precisely() {
        let mut m = machine();
        let end = MIN_RAM;
        m.ram.write_le(GuestPhys(end - 2), 2, 0xAAAA).unwrap();
        assert_eq!(
            m.write_virt(end - 2, 4, 0),
            Err(Exception::PageFault { addr: end, code: 2 })
        );
        assert_eq!(
            m.ram.read_le(GuestPhys(end - 2), 2).unwrap(),
            0xAAAA,
            "no partial write"
        );
        assert_eq!(
            m.read_virt(end - 1, 2, Access::Read),
            Err(Exception::PageFault { addr: end, code: 0 })
        );
        assert_eq!(
            m.read_virt(u64::MAX, 1, Access::Read),
            Err(Exception::PageFault {
                addr: u64::MAX,
                code: 0
            })
        );
        assert_eq!(
            m.read_virt(1 << 63, 8, Access::Read),
            Err(Exception::GeneralProtection(0))
        );
    }

    #[test]
    fn fetch_takes_the_page_and_a_little_of_the_next() {
        let m = machine();
        let f = m.fetch_code(0x1FF0).unwrap();
        assert_eq!(
            (f.first_len, f.bytes.len(), f.next_phys),
            (16, 31, Some(0x2000))
        );
        assert_eq!(f.phys_ranges(20), vec![(0x1FF0, 0x2000), (0x2000, 0x2004)]);
        assert_eq!(f.phys_ranges(3), vec![(0x1FF0, 0x1FF3)]);
        let last = m.fetch_code(MIN_RAM - 4).unwrap();
        assert_eq!((last.bytes.len(), last.next_phys), (4, None));
        assert_eq!(
            m.fetch_code(MIN_RAM).unwrap_err(),
            Exception::PageFault {
                addr: MIN_RAM,
                code: 0x10
            }
        );
        assert_eq!(m.insn_bytes(0x1000).len(), MAX_INSN_LEN);
    }
}
