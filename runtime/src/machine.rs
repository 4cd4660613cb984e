//! [`Machine`]: everything the runtime helpers reach while guest code runs — RAM and the MMU,
//! the port bus and the platform devices, the virtual TSC, the vCPU's run control
//! ([`crate::run_state`], which only the run loop acts on), and a handle to the engine's code
//! tracking ([`CodeTracking`]) — plus the guest memory access paths shared by every engine.
//!
//! Invariants:
//! - The guest CPU state is *not* part of `Machine`: generated code holds a `*mut CpuState`
//!   while helpers borrow the machine through `CpuState::runtime`, so the two never alias.
//! - A guest store to a page holding translated code either invalidates that code before the
//!   store completes (interpreter, host writes) or, from generated code, is not performed at
//!   all and reported as [`WriteOutcome::CodeModified`], so no block ever runs stale code.
//!   "Holding translated code" is what the installed [`CodeTracking`] says; with none
//!   installed, no page does.
//! - The code cache is the engine's: the machine holds it only as a `dyn CodeTracking` and
//!   never names its type (see [`code_tracking`] for who may look through it).
//! - A store is precise: every page it touches is translated before any byte is written (and
//!   a read translates every page before reading any, so MMIO reads have no effect on a
//!   fault).
//! - Guest accesses translate through [`crate::mmu`] when CR0.PG is set (the soft TLB, then a
//!   walk that refills it); with CR0.PE clear, through the foundation's flat [`Mmu`].
//!   Physical addresses outside RAM are MMIO ([`Machine::mmio_read`],
//!   [`Machine::mmio_write`]); nothing outside RAM is ever touched through a host pointer.
//! - Functions without a `cpu` argument (`read_virt`, `write_virt`, `insn_bytes`) see guest
//!   memory as a CPU with CR0.PE = 0 does; they are for the host and tests.

use translator::decode::PAGE_SIZE;
use translator::state::Tlb;
use translator::{CpuState, Exception};

use crate::devices::serial::COM1;
use crate::devices::{
    debug_exit::DEBUG_EXIT, Chipset, DebugExit, DeviceId, PortBus, PortRange, PostCode, Serial,
    SerialSink,
};
use crate::helpers::HelperCounters;
use crate::memory::{Access, GuestPhys, GuestRam, GuestVirt, MemError, Mmu};
use crate::mmu::{tlb, walk, walk_peek, PagingRegs};
use crate::tsc::VirtualTsc;

mod bulk;
pub mod code_tracking;
mod fetch;

pub use code_tracking::CodeTracking;
pub use fetch::Fetched;

/// The POST diagnostic port.
pub const POST_PORT: PortRange = PortRange { base: 0x80, len: 1 };

/// The PC's math-coprocessor error port: a write clears FERR#'s interrupt and lets x87
/// instructions ignore the error (IGNNE#).
pub const FPU_ERROR_PORT: PortRange = PortRange { base: 0xF0, len: 1 };

/// The ISA line FERR# drives on a PC.
const FERR_IRQ: u8 = 13;

/// Port 0xF0 (see [`FPU_ERROR_PORT`]); reads as all ones.
struct FpuErrorPort(crate::devices::IrqLatch);

impl crate::devices::PortIo for FpuErrorPort {
    fn read(&mut self, _offset: u16, data: &mut [u8]) {
        data.fill(0xFF);
    }
    fn write(&mut self, _offset: u16, _data: &[u8]) -> crate::devices::IoAction {
        self.0.raise();
        crate::devices::IoAction::Continue
    }
}

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

pub use crate::run_state::StopRequest;

/// Result of a guest store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The bytes were written.
    Done,
    /// The store hit translated code while generated code was running; nothing was written
    /// and [`Machine::modified`] holds its guest-physical ranges.
    CodeModified,
}

/// The machine the helpers operate on. See the module invariants.
pub struct Machine {
    /// Guest RAM.
    pub ram: GuestRam,
    /// The foundation's flat translation, used while CR0.PE is clear (paging is
    /// [`crate::mmu`]).
    pub mmu: Mmu,
    /// Port-I/O devices.
    pub bus: PortBus,
    serial: DeviceId,
    /// The chipset devices on the bus (ACPI PM, PCI host, i8042, fw_cfg).
    pub chipset: Chipset,
    /// The engine's code tracking, installed by the engine that translates code. Assigned
    /// only by [`Machine::set_code_tracking`], which keeps `code_type` in step.
    code: Option<Box<dyn CodeTracking>>,
    /// The concrete type of `code`'s object (set with it): the engine's typed access
    /// compares it instead of calling `Any::type_id` through the vtable every time.
    code_type: std::any::TypeId,
    /// Who is executing guest code right now.
    pub executing: Executing,
    /// The vCPU's run control (halted, interrupt shadow, stop requests, ...): not machine
    /// state, but here because helpers reach only the machine (see [`crate::run_state`]).
    pub run: crate::run_state::RunState,
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
    /// INVLPGs executed: engines caching code by virtual address forget what they cached
    /// when it changes.
    pub invlpgs: u64,
    /// The data and port accesses of the instruction being stepped for the debug registers
    /// (collecting only while `engine::debug` asks).
    pub debug_accesses: crate::system::debug::AccessLog,
    /// Interrupt controllers, timers and the RTC.
    pub platform: crate::devices::platform::Platform,
    /// External interrupts delivered.
    pub interrupts_delivered: u64,
    /// Guest MMIO reads and writes (outside RAM: the APICs, or nothing).
    pub mmio: [u64; 2],
    /// Guest exceptions raised, by vector.
    pub exceptions_by_vector: [u64; 32],
    /// An instruction the translator does not implement stops the run
    /// ([`crate::VmConfig::stop_on_unsupported`]) instead of raising #UD.
    pub stop_on_unsupported: bool,
    /// The #UDs raised for instructions the translator does not implement, by lower-case
    /// mnemonic ("invalid" for bytes that do not decode).
    pub unsupported_uds: std::collections::BTreeMap<String, u64>,
    /// Host nanoseconds slept in HLT.
    pub halted_ns: u64,
    /// Hypercalls by [`translator::sensitive::Hypercall`] number.
    pub hypercalls: [u64; 64],
    /// Soft-TLB activity seen by the runtime (inline hits in generated code are not counted).
    pub tlb: TlbCounters,
    /// Some soft-TLB entry may come from a large page (it can then sit at any index, and
    /// INVLPG must look at every entry): set by fills, cleared by full flushes.
    pub tlb_large: bool,
    /// Which soft-TLB entries were filled since the last flush (flushes, large-page INVLPGs
    /// and code protection visit those, not all of them).
    tlb_filled: tlb::Filled,
    /// Host stubs of the guest's floating-point and vector instructions.
    pub stubs: crate::stubs::HostStubs,
    /// Bytes waiting for COM1's receiver (see [`crate::console`]).
    pub console: crate::console::ConsoleInput,
    /// Wakes the vCPU from a halted sleep (console input, a stop request).
    pub doorbell: crate::console::Doorbell,
    /// The KVM paravirtual clock's MSRs and version.
    pub kvmclock: crate::system::kvmclock::KvmClock,
    /// FERR# is asserted (an x87 error with CR0.NE clear): IRQ 13 is raised.
    ferr: bool,
    /// Set by a write to port 0xF0 (the PC's "clear math coprocessor busy"): x87
    /// instructions ignore a pending error (IGNNE#) until it clears.
    ignne: crate::devices::IrqLatch,
}

/// Soft-TLB counters (see [`Machine::tlb`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlbCounters {
    /// Runtime accesses (memory slow paths, handlers, fetches) that found their page in the
    /// soft TLB.
    pub hits: u64,
    /// Page walks.
    pub misses: u64,
    /// Whole-TLB flushes.
    pub flushes: u64,
    /// Single-page invalidations (INVLPG, INVPCID individual-address).
    pub page_invalidations: u64,
}

/// Host wall-clock nanoseconds since the Unix epoch (the RTC's and kvmclock's starting
/// time).
fn wall_clock_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
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
        let boot_wall_ns = wall_clock_ns();
        let platform =
            crate::devices::platform::Platform::new(mem_bytes, boot_wall_ns / 1_000_000_000);
        let serial = bus
            .register(
                COM1,
                Box::new(Serial::with_irq_line(serial, platform.com1_line())),
            )
            .expect("fixed ports do not overlap");
        bus.register(DEBUG_EXIT, Box::new(DebugExit))
            .expect("fixed ports do not overlap");
        bus.register(POST_PORT, Box::new(PostCode::default()))
            .expect("fixed ports do not overlap");
        let ignne = crate::devices::IrqLatch::new();
        bus.register(FPU_ERROR_PORT, Box::new(FpuErrorPort(ignne.clone())))
            .expect("fixed ports do not overlap");
        let tsc = VirtualTsc::new();
        let chipset =
            Chipset::attach(&mut bus, tsc.clock(), mem_bytes).expect("fixed ports do not overlap");
        Ok(Machine {
            mmu: Mmu::flat(ram.size()),
            ram,
            bus,
            serial,
            chipset,
            code: None,
            code_type: std::any::TypeId::of::<()>(),
            executing: Executing::Interp,
            run: Default::default(),
            modified: Vec::new(),
            tsc,
            counters: HelperCounters::default(),
            exceptions: 0,
            code_modified: 0,
            invlpgs: 0,
            debug_accesses: Default::default(),
            platform,
            interrupts_delivered: 0,
            mmio: [0; 2],
            exceptions_by_vector: [0; 32],
            stop_on_unsupported: false,
            unsupported_uds: Default::default(),
            halted_ns: 0,
            hypercalls: [0; 64],
            tlb: TlbCounters::default(),
            tlb_large: false,
            tlb_filled: tlb::Filled::default(),
            stubs: crate::stubs::HostStubs::new(),
            console: Default::default(),
            doorbell: Default::default(),
            kvmclock: crate::system::kvmclock::KvmClock::new(boot_wall_ns),
            ferr: false,
            ignne,
        })
    }

    /// Whether FERR# is asserted (IRQ 13 raised for an x87 error, CR0.NE clear).
    pub fn ferr_asserted(&self) -> bool {
        self.ferr
    }

    /// The PC's x87 error reporting with CR0.NE clear, at a waiting x87 instruction:
    /// `pending` says whether an unmasked exception is pending. Returns whether the
    /// instruction may run (no error, or IGNNE# after a write to port 0xF0); otherwise
    /// FERR# raises IRQ 13 and the instruction waits.
    pub fn fpu_error(&mut self, pending: bool) -> bool {
        if !pending {
            if std::mem::take(&mut self.ferr) {
                self.platform.set_irq(FERR_IRQ, false);
            }
            self.ignne.take();
            return true;
        }
        if self.ignne.is_raised() {
            if std::mem::take(&mut self.ferr) {
                self.platform.set_irq(FERR_IRQ, false);
            }
            return true;
        }
        if !self.ferr {
            self.ferr = true;
            self.platform.set_irq(FERR_IRQ, true);
        }
        false
    }

    /// COM1.
    pub fn serial(&self) -> &Serial {
        self.bus.device(self.serial).expect("COM1 is a Serial")
    }

    /// The fw_cfg device, mutably (loaders add the kernel's items).
    pub fn fw_cfg_mut(&mut self) -> &mut crate::firmware::FwCfg {
        self.bus
            .device_mut(self.chipset.fw_cfg)
            .expect("the chipset's fw_cfg is a FwCfg")
    }

    /// COM1, mutably.
    pub fn serial_mut(&mut self) -> &mut Serial {
        self.bus.device_mut(self.serial).expect("COM1 is a Serial")
    }

    // ---------------------------------------------------------------- guest memory

    /// Reads `size` bytes (1..=8) at `vaddr` as a CPU with CR0.PE = 0 sees it — the
    /// foundation's flat model (see [`Mmu`]) — zero-extended. For the host and tests; guest
    /// accesses use [`Machine::read_virt_for`] or [`Machine::read_lin`].
    pub fn read_virt(&mut self, vaddr: u64, size: usize, access: Access) -> Result<u64, Exception> {
        let regs = PagingRegs::default();
        self.read_with(&regs, None, vaddr, size, access, Privilege::Supervisor)
    }

    /// Writes the low `size` bytes (1..=8) of `value` at `vaddr` in the flat model of
    /// [`Machine::read_virt`]. Every page is translated before anything is written. See
    /// [`WriteOutcome`] for stores to code.
    pub fn write_virt(
        &mut self,
        vaddr: u64,
        size: usize,
        value: u64,
    ) -> Result<WriteOutcome, Exception> {
        let regs = PagingRegs::default();
        self.write_with(&regs, None, vaddr, size, value, Privilege::Supervisor)
    }

    /// Reads `size` bytes (1..=8) at guest-virtual `vaddr`, zero-extended, as an explicit
    /// access of the code running at `cpu.cpl`: through paging when CR0.PG is set (the soft
    /// TLB first, then a walk that fills it), physical addresses outside RAM going to
    /// [`Machine::mmio_read`]. Every page is translated before anything is read.
    pub fn read_virt_for(
        &mut self,
        cpu: &mut CpuState,
        vaddr: u64,
        size: usize,
        access: Access,
    ) -> Result<u64, Exception> {
        let (regs, privilege) = (PagingRegs::of(cpu), Privilege::of_cpl(cpu.cpl));
        self.read_with(&regs, Some(&mut cpu.tlb), vaddr, size, access, privilege)
    }

    /// Writes the low `size` bytes (1..=8) of `value` at guest-virtual `vaddr` as an explicit
    /// access at `cpu.cpl` (see [`Machine::read_virt_for`]). Every page is translated before
    /// anything is written; see [`WriteOutcome`] for stores to code.
    pub fn write_virt_for(
        &mut self,
        cpu: &mut CpuState,
        vaddr: u64,
        size: usize,
        value: u64,
    ) -> Result<WriteOutcome, Exception> {
        let (regs, privilege) = (PagingRegs::of(cpu), Privilege::of_cpl(cpu.cpl));
        self.write_with(&regs, Some(&mut cpu.tlb), vaddr, size, value, privilege)
    }

    /// Reads `size` bytes (1..=8) at linear address `lin` as the system handlers do: with
    /// `privilege`'s rights (descriptor-table, TSS and interrupt-stack accesses are
    /// [`Privilege::Supervisor`] whatever the CPL), through paging when CR0.PG is set. A
    /// supervisor access while CPL = 3 is implicit: SMAP then ignores RFLAGS.AC. Guest faults
    /// come back as values (#PF with its error code; the caller sets CR2 when it delivers).
    pub fn read_lin(
        &mut self,
        cpu: &mut CpuState,
        lin: u64,
        size: usize,
        access: Access,
        privilege: Privilege,
    ) -> Result<u64, Exception> {
        let regs = PagingRegs::of(cpu).implicit(implicit(cpu, privilege));
        self.read_with(&regs, Some(&mut cpu.tlb), lin, size, access, privilege)
    }

    /// Fills `buf` from linear address `lin` as [`Machine::read_lin`] would, in one access,
    /// when the bytes are RAM on one page; `None` otherwise (MMIO, two pages, or a fault),
    /// and then no device was touched: the caller reads piece by piece, which raises the
    /// exact fault. A translation it makes is the one the first piece's read would make.
    pub fn read_lin_ram(
        &mut self,
        cpu: &mut CpuState,
        lin: u64,
        buf: &mut [u8],
        privilege: Privilege,
    ) -> Option<()> {
        let regs = PagingRegs::of(cpu).implicit(implicit(cpu, privilege));
        let lin = lin & regs.lin_mask();
        if bytes_to_page_end(lin) < buf.len() {
            return None;
        }
        let tlb = Some(&mut cpu.tlb);
        match self.translate_with(&regs, tlb, lin, Access::Read, privilege) {
            Ok(Target::Ram(pa)) => self.ram.read(GuestPhys(pa), buf).ok(),
            _ => None,
        }
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
        let regs = PagingRegs::of(cpu).implicit(implicit(cpu, privilege));
        let saved = std::mem::replace(&mut self.executing, Executing::Interp);
        let r = self.write_with(&regs, Some(&mut cpu.tlb), lin, size, value, privilege);
        self.executing = saved;
        r.map(|_| ())
    }

    /// Writes `src` (up to a page) at linear address `lin` as [`Machine::write_lin`] writes
    /// one value: translated everywhere first, so a fault leaves memory untouched.
    pub fn write_lin_bytes(
        &mut self,
        cpu: &mut CpuState,
        lin: u64,
        src: &[u8],
        privilege: Privilege,
    ) -> Result<(), Exception> {
        let regs = PagingRegs::of(cpu).implicit(implicit(cpu, privilege));
        let saved = std::mem::replace(&mut self.executing, Executing::Interp);
        let r = self.write_bytes_with(&regs, Some(&mut cpu.tlb), lin, src, privilege);
        self.executing = saved;
        r.map(|_| ())
    }

    /// Invalidates every TLB entry; `global` also drops global pages. Sets
    /// [`crate::run_state::RunState::mappings_changed`]. The caller flushes on every
    /// paging-relevant change: MOV CR3 and task-switch CR3 loads (`global` false), MOV CR0 changing PG or WP, MOV CR4
    /// changing PGE, PAE, PSE, SMEP or SMAP, WRMSR EFER changing NXE or LME (`global` true).
    /// RFLAGS.AC changes need no flush (see [`crate::mmu::tlb`]).
    pub fn flush_tlb(&mut self, cpu: &mut CpuState, global: bool) {
        self.tlb_filled.flush(&mut cpu.tlb, !global);
        if global {
            self.tlb_large = false;
        }
        self.tlb.flushes += 1;
        self.run.mappings_changed = true;
        self.run.global_mappings_changed |= global;
    }

    /// Invalidates the TLB entries of the page holding linear address `lin` in both sets,
    /// global or not, the whole page if it was a large one (INVLPG), and the jump-cache
    /// entries that may have come through that page: every PC in the aligned window of the
    /// largest page size the paging mode has (the old mapping's size is unknown: the guest
    /// has usually just rewritten the entry), and the page before it (a block there may run
    /// onto it). Cheaper than the full clear of
    /// [`crate::run_state::RunState::mappings_changed`], and the jump cache keeps the entries
    /// of code elsewhere.
    pub fn invlpg(&mut self, cpu: &mut CpuState, lin: u64) {
        let regs = PagingRegs::of(cpu);
        let lin = lin & regs.lin_mask();
        self.tlb_filled
            .invalidate(&mut cpu.tlb, lin, self.tlb_large);
        self.tlb.page_invalidations += 1;
        let window = regs.largest_page();
        let start = (lin & !(window - 1)).saturating_sub(PAGE_SIZE);
        let end = (lin & !(window - 1)).saturating_add(window);
        if let Some(c) = self.code.as_mut() {
            c.forget_virtual(start, end);
        }
        self.invlpgs = self.invlpgs.wrapping_add(1);
    }

    /// The installed code tracking, if any.
    pub fn code_tracking(&self) -> Option<&dyn CodeTracking> {
        self.code.as_deref()
    }

    /// The installed code tracking, mutably (the engine that installed it reaches its cache
    /// through this).
    pub fn code_tracking_mut(&mut self) -> Option<&mut dyn CodeTracking> {
        self.code.as_deref_mut()
    }

    /// The installed code tracking if it is a `T` (the engine that installed it reaching
    /// its own state; as cheap as a field compare, for the engine's hot paths).
    pub fn code_tracking_as<T: CodeTracking>(&self) -> Option<&T> {
        let t = self.code.as_deref()?;
        if self.code_type != std::any::TypeId::of::<T>() {
            return None;
        }
        // SAFETY: `code_type` is the concrete type of the object in `code`: both are set
        // together, only by `set_code_tracking`, from the same box. So the object is a `T`.
        Some(unsafe { &*(t as *const dyn CodeTracking as *const T) })
    }

    /// [`Machine::code_tracking_as`], mutably.
    pub fn code_tracking_as_mut<T: CodeTracking>(&mut self) -> Option<&mut T> {
        if self.code_type != std::any::TypeId::of::<T>() {
            return None;
        }
        let t = self.code.as_deref_mut()?;
        // SAFETY: as in `code_tracking_as`.
        Some(unsafe { &mut *(t as *mut dyn CodeTracking as *mut T) })
    }

    /// Installs (or, with `None`, removes) the engine's code tracking, returning the previous
    /// one. Generated code of the previous one must not run again.
    pub fn set_code_tracking(
        &mut self,
        tracking: Option<Box<dyn CodeTracking>>,
    ) -> Option<Box<dyn CodeTracking>> {
        // The object's own type, through the vtable (not the box's).
        self.code_type = tracking
            .as_deref()
            .map_or(std::any::TypeId::of::<()>(), |t| {
                let any: &dyn std::any::Any = t;
                any.type_id()
            });
        std::mem::replace(&mut self.code, tracking)
    }

    /// Keeps stores to guest-physical page `phys_page` off the TLB fast path: the DBT calls
    /// it for every page it translates code from, so stores to code always reach the slow
    /// path, which detects self-modifying code.
    pub fn protect_code_page(&mut self, cpu: &mut CpuState, phys_page: u64) {
        self.tlb_filled.protect(&mut cpu.tlb, phys_page);
    }

    /// Reads `size` bytes (1..=8) of guest-physical MMIO at `phys`: the local APIC and I/O
    /// APIC pages; unclaimed reads return all ones.
    pub fn mmio_read(&mut self, phys: u64, size: usize) -> u64 {
        self.mmio[0] += 1;
        let size = size.clamp(1, 8);
        let now = self.tsc.read();
        if let Some(v) = self.platform.mmio_read(phys, size as u8, now) {
            return v;
        }
        match size {
            8 => u64::MAX,
            n => (1 << (8 * n)) - 1,
        }
    }

    /// Writes the low `size` bytes (1..=8) of `value` to guest-physical MMIO at `phys`.
    /// Unclaimed writes are ignored. A write to an interrupt controller may unmask an
    /// interrupt, so the run loop is asked to look (the caller's block ends at its next
    /// entry check).
    pub fn mmio_write(&mut self, phys: u64, size: usize, value: u64) {
        self.mmio[1] += 1;
        let now = self.tsc.read();
        if self
            .platform
            .mmio_write(phys, size.clamp(1, 8) as u8, value, now)
        {
            self.run.interrupt_check = true;
        }
    }

    /// Whether any byte of `[phys, phys + len)` is the code of a cached block (byte-exact:
    /// data sharing a page with code is not code).
    fn has_translated_code(&self, phys: u64, len: usize) -> bool {
        let end = phys.saturating_add(len.max(1) as u64);
        self.code
            .as_ref()
            .is_some_and(|c| c.bytes_have_code(phys, end))
    }

    /// Drops every translation (compiled and recorded blocks) overlapping guest-physical
    /// `[start, end)`. Cheap when the range holds no code.
    pub fn invalidate_code(&mut self, start: u64, end: u64) {
        if end <= start {
            return;
        }
        if let Some(c) = self.code.as_mut() {
            // Byte-exact: data next to code on the same page invalidates nothing.
            if c.bytes_have_code(start, end) {
                c.invalidate(start, end);
            }
        }
    }

    /// Translates one linear address (already wrapped to the mode's width): the foundation's
    /// flat model when CR0.PE = 0; otherwise the soft TLB of `privilege` (data accesses with
    /// paging on, when `tlb` is given), else a walk, which then fills that TLB.
    fn translate_with(
        &mut self,
        regs: &PagingRegs,
        tlb: Option<&mut Tlb>,
        lin: u64,
        access: Access,
        privilege: Privilege,
    ) -> Result<Target, Exception> {
        self.translate_global(regs, tlb, lin, access, privilege)
            .map(|(target, _)| target)
    }

    /// [`Machine::translate_with`], and whether the translation is global (G set, CR4.PGE
    /// on; never without paging or from the TLB, which does not say).
    fn translate_global(
        &mut self,
        regs: &PagingRegs,
        tlb: Option<&mut Tlb>,
        lin: u64,
        access: Access,
        privilege: Privilege,
    ) -> Result<(Target, bool), Exception> {
        // Real mode and the foundation's non-architectural "long mode without paging" (the
        // ELF64 guests) keep the flat model: exactly RAM, anything else a not-present #PF.
        let flat64 = regs.efer & translator::state::cr::EFER_LMA != 0 && !regs.paging();
        if regs.unprotected() || flat64 {
            return self
                .mmu
                .translate(GuestVirt(lin), access)
                .map(|pa| (Target::Ram(pa.0), false));
        }
        let cached = regs.paging() && access != Access::Fetch;
        let tlb = tlb.filter(|_| cached);
        if let Some(pa) = tlb
            .as_deref()
            .and_then(|t| tlb::lookup(t, privilege, lin, access == Access::Write))
        {
            self.tlb.hits += 1;
            return Ok((Target::Ram(pa), false));
        }
        self.tlb.misses += 1;
        let t = walk(&mut self.ram, regs, lin, access, privilege)?;
        let target = self.target(t.phys);
        if let (Target::Ram(_), Some(tlb)) = (target, tlb) {
            let page = t.phys & !(PAGE_SIZE - 1);
            let code = self.code.as_ref().is_some_and(|c| c.page_has_code(page));
            let host_base = self.ram.host_base();
            self.tlb_large |= t.page_size > PAGE_SIZE;
            self.tlb_filled
                .fill(tlb, privilege, lin, &t, regs.smap(), code, host_base);
        }
        Ok((target, t.global))
    }

    /// [`Machine::translate_with`] without side effects: no TLB, no A/D updates.
    fn translate_peek(
        &self,
        regs: &PagingRegs,
        lin: u64,
        access: Access,
        privilege: Privilege,
    ) -> Result<Target, Exception> {
        // Real mode and the foundation's non-architectural "long mode without paging" (the
        // ELF64 guests) keep the flat model: exactly RAM, anything else a not-present #PF.
        let flat64 = regs.efer & translator::state::cr::EFER_LMA != 0 && !regs.paging();
        if regs.unprotected() || flat64 {
            return self
                .mmu
                .translate(GuestVirt(lin), access)
                .map(|pa| Target::Ram(pa.0));
        }
        let t = walk_peek(&self.ram, regs, lin, access, privilege)?.translation;
        Ok(self.target(t.phys))
    }

    /// RAM if the page of `phys` is in RAM, else MMIO.
    fn target(&self, phys: u64) -> Target {
        if self
            .ram
            .contains(GuestPhys(phys & !(PAGE_SIZE - 1)), PAGE_SIZE)
        {
            Target::Ram(phys)
        } else {
            Target::Mmio(phys)
        }
    }

    /// Translates the (one or two) pages of a `size`-byte access at `vaddr`.
    fn pieces(
        &mut self,
        regs: &PagingRegs,
        mut tlb: Option<&mut Tlb>,
        vaddr: u64,
        size: usize,
        access: Access,
        privilege: Privilege,
    ) -> Result<[Option<Piece>; 2], Exception> {
        let mask = regs.lin_mask();
        let lin = vaddr & mask;
        let first = size.min(bytes_to_page_end(lin));
        let target = self.translate_with(regs, tlb.as_deref_mut(), lin, access, privilege)?;
        let head = Piece {
            lin,
            target,
            off: 0,
            len: first,
        };
        if first == size {
            return Ok([Some(head), None]);
        }
        let lin1 = lin.wrapping_add(first as u64) & mask;
        let target = self.translate_with(regs, tlb, lin1, access, privilege)?;
        let tail = Piece {
            lin: lin1,
            target,
            off: first,
            len: size - first,
        };
        Ok([Some(head), Some(tail)])
    }

    /// Reads a `size`-byte value (see [`Machine::read_virt_for`]).
    fn read_with(
        &mut self,
        regs: &PagingRegs,
        tlb: Option<&mut Tlb>,
        vaddr: u64,
        size: usize,
        access: Access,
        privilege: Privilege,
    ) -> Result<u64, Exception> {
        let mut bytes = [0u8; 8];
        let n = size.clamp(1, 8);
        self.read_bytes_with(regs, tlb, vaddr, &mut bytes[..n], access, privilege)?;
        Ok(u64::from_le_bytes(bytes))
    }

    /// Reads `buf.len()` bytes (1..=4096): every page translated before anything is read.
    fn read_bytes_with(
        &mut self,
        regs: &PagingRegs,
        tlb: Option<&mut Tlb>,
        vaddr: u64,
        buf: &mut [u8],
        access: Access,
        privilege: Privilege,
    ) -> Result<(), Exception> {
        let pieces = self.pieces(regs, tlb, vaddr, buf.len(), access, privilege)?;
        for p in pieces.into_iter().flatten() {
            let dst = &mut buf[p.off..p.off + p.len];
            match p.target {
                Target::Ram(pa) => self
                    .ram
                    .read(GuestPhys(pa), dst)
                    .map_err(|_| not_present(p.lin, access))?,
                Target::Mmio(pa) => {
                    for (i, chunk) in dst.chunks_mut(8).enumerate() {
                        let v = self.mmio_read(pa + 8 * i as u64, chunk.len());
                        chunk.copy_from_slice(&v.to_le_bytes()[..chunk.len()]);
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes a `size`-byte value (see [`Machine::write_virt_for`]): both pages translated
    /// first, then the code check, then the bytes.
    fn write_with(
        &mut self,
        regs: &PagingRegs,
        tlb: Option<&mut Tlb>,
        vaddr: u64,
        size: usize,
        value: u64,
        privilege: Privilege,
    ) -> Result<WriteOutcome, Exception> {
        let n = size.clamp(1, 8);
        self.write_bytes_with(regs, tlb, vaddr, &value.to_le_bytes()[..n], privilege)
    }

    /// Writes `src` (1..=4096 bytes): every page translated first, then the code check,
    /// then the bytes.
    fn write_bytes_with(
        &mut self,
        regs: &PagingRegs,
        tlb: Option<&mut Tlb>,
        vaddr: u64,
        src: &[u8],
        privilege: Privilege,
    ) -> Result<WriteOutcome, Exception> {
        let pieces = self.pieces(regs, tlb, vaddr, src.len(), Access::Write, privilege)?;
        if self.hits_jit_code(&pieces) {
            self.modified.clear();
            for (pa, n) in pieces.iter().flatten().filter_map(Piece::in_ram) {
                self.modified.push((pa, pa + n as u64));
            }
            self.code_modified += 1;
            return Ok(WriteOutcome::CodeModified);
        }
        for p in pieces.into_iter().flatten() {
            let bytes = &src[p.off..p.off + p.len];
            match p.target {
                Target::Ram(pa) => {
                    self.ram
                        .write(GuestPhys(pa), bytes)
                        .map_err(|_| not_present(p.lin, Access::Write))?;
                    self.invalidate_code(pa, pa + p.len as u64);
                }
                Target::Mmio(pa) => {
                    for (i, chunk) in bytes.chunks(8).enumerate() {
                        let mut v = [0u8; 8];
                        v[..chunk.len()].copy_from_slice(chunk);
                        self.mmio_write(pa + 8 * i as u64, chunk.len(), u64::from_le_bytes(v));
                    }
                }
            }
        }
        Ok(WriteOutcome::Done)
    }

    /// Whether a store's pieces hit translated code while generated code runs (it must
    /// then not be performed, see [`WriteOutcome::CodeModified`]).
    fn hits_jit_code(&self, pieces: &[Option<Piece>; 2]) -> bool {
        self.executing == Executing::Jit
            && pieces
                .iter()
                .flatten()
                .filter_map(Piece::in_ram)
                .any(|(pa, n)| self.has_translated_code(pa, n))
    }

    /// Reads `buf.len()` bytes (up to a page) at guest-virtual `vaddr` as an explicit access
    /// at `cpu.cpl` (see [`Machine::read_virt_for`]).
    pub fn read_virt_bytes_for(
        &mut self,
        cpu: &mut CpuState,
        vaddr: u64,
        buf: &mut [u8],
        access: Access,
    ) -> Result<(), Exception> {
        let (regs, privilege) = (PagingRegs::of(cpu), Privilege::of_cpl(cpu.cpl));
        self.read_bytes_with(&regs, Some(&mut cpu.tlb), vaddr, buf, access, privilege)
    }

    /// Writes `src` (up to a page) at guest-virtual `vaddr` as an explicit access at
    /// `cpu.cpl` (see [`Machine::write_virt_for`]).
    pub fn write_virt_bytes_for(
        &mut self,
        cpu: &mut CpuState,
        vaddr: u64,
        src: &[u8],
    ) -> Result<WriteOutcome, Exception> {
        let (regs, privilege) = (PagingRegs::of(cpu), Privilege::of_cpl(cpu.cpl));
        self.write_bytes_with(&regs, Some(&mut cpu.tlb), vaddr, src, privilege)
    }

    /// Translates the `len` bytes (up to a page) at `vaddr` for a store at `cpu.cpl` without
    /// writing: `Ok(true)` if a store there would hit translated code while generated code
    /// runs.
    pub fn probe_write_for(
        &mut self,
        cpu: &mut CpuState,
        vaddr: u64,
        len: usize,
    ) -> Result<bool, Exception> {
        let (regs, privilege) = (PagingRegs::of(cpu), Privilege::of_cpl(cpu.cpl));
        let len = len.clamp(1, PAGE_SIZE as usize);
        let pieces = self.pieces(
            &regs,
            Some(&mut cpu.tlb),
            vaddr,
            len,
            Access::Write,
            privilege,
        )?;
        Ok(self.hits_jit_code(&pieces))
    }
}

/// Where a translated address lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// Guest-physical RAM (the whole page is in RAM).
    Ram(u64),
    /// Guest-physical address outside RAM.
    Mmio(u64),
}

impl Piece {
    /// The piece's physical start and length if it is RAM.
    fn in_ram(&self) -> Option<(u64, usize)> {
        match self.target {
            Target::Ram(pa) => Some((pa, self.len)),
            Target::Mmio(_) => None,
        }
    }
}

/// The part of an access that lies in one page.
#[derive(Clone, Copy, Debug)]
struct Piece {
    /// Linear address of its first byte.
    lin: u64,
    target: Target,
    /// Offset of its first byte in the access, and its length.
    off: usize,
    len: usize,
}

/// Whether a `privilege` access by `cpu` is an implicit supervisor access (SMAP ignores AC).
fn implicit(cpu: &CpuState, privilege: Privilege) -> bool {
    privilege == Privilege::Supervisor && cpu.cpl == 3
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
#[path = "machine_tests.rs"]
mod tests;
