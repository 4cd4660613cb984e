//! [`Vm`]: a guest CPU, its [`Machine`], and the engine that runs it.
//!
//! Invariants:
//! - The CPU state and the machine are separate boxes: generated code and helpers hold
//!   pointers to each, never one inside the other.
//! - Host writes to guest memory ([`Vm::write_phys`], [`Vm::load_elf`]) invalidate every
//!   translation of the bytes they change.
//! - Every engine is the DBT engine with a tiering policy ([`Engine::tiering`]), `trap` with
//!   its trapping entry ([`crate::engine::dbt::Trap`]), run by the one vCPU loop
//!   ([`crate::engine::vcpu::run`]); switching engines drops the code cache.

use std::time::Instant;

use cache::CacheConfig;
use translator::state::rflags;
use translator::CpuState;

use crate::console::ConsoleWriter;
use crate::devices::SerialSink;
use crate::engine::dbt::{Dbt, DbtError, DbtOptions, DbtStats, Trap};
use crate::engine::tier::Tiering;
use crate::engine::{Engine, RunOutcome};
use crate::loader::{multiboot, Elf, KernelLoader, LoadError};
use crate::machine::Machine;
use crate::memory::{GuestPhys, MemError};
use crate::stats::Stats;
pub use crate::system::mode::register_dump;

/// Configuration of a [`Vm`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmConfig {
    /// Bytes of guest RAM: a multiple of 4 KiB, 2 MiB to 64 GiB. Default 64 MiB.
    pub mem_bytes: u64,
    /// The engine [`Vm::run`] uses. Default [`Engine::Dbt`].
    pub engine: Engine,
    /// Where COM1 output goes. Default stdout.
    pub serial: SerialSink,
    /// Sizes of the DBT code cache. Default: 256 MiB of code, 2^21 link slots, 4096
    /// jump-cache entries: both are sparse mappings, touched only as code is installed, and
    /// large enough that booting Linux (about 70,000 blocks, 46 MiB of host code) never
    /// flushes (with 32 MiB it flushed and retranslated a fifth of its blocks).
    pub cache: CacheConfig,
    /// Total guest instructions the VM may execute; `None` for no limit.
    pub instruction_limit: Option<u64>,
    /// Generated code counts its inline soft-TLB hits (one memory increment per hit), for
    /// [`Stats::tlb`]. Default off.
    pub count_tlb_hits: bool,
    /// Overrides the engine's tiering (e.g. another hotness threshold for `dbt`); `None` for
    /// the engine's own ([`Engine::tiering`]).
    pub tiering: Option<Tiering>,
    /// An instruction popek does not implement stops the run with
    /// [`RunOutcome::Unsupported`] (a debugging aid) instead of raising #UD in the guest, as
    /// a CPU without the feature does; the #UDs raised are counted by mnemonic in
    /// [`Stats::unsupported_uds`]. Default off.
    pub stop_on_unsupported: bool,
    /// Name every compiled block in `/tmp/perf-<pid>.map` (Linux perf's JIT map), for
    /// profilers. Default off.
    pub perf_map: bool,
}

/// The DBT options that make `engine`.
fn dbt_options(
    engine: Engine,
    count_tlb_hits: bool,
    tiering: Option<Tiering>,
    perf_map: bool,
) -> DbtOptions {
    DbtOptions {
        count_tlb_hits,
        tiering: tiering.unwrap_or_else(|| engine.tiering()),
        perf_map,
    }
}

impl Default for VmConfig {
    fn default() -> Self {
        VmConfig {
            mem_bytes: 64 << 20,
            engine: Engine::Dbt,
            serial: SerialSink::Stdout,
            cache: CacheConfig {
                code_bytes: 256 << 20,
                max_slots: 1 << 21,
                jump_cache_entries: 4096,
            },
            instruction_limit: None,
            count_tlb_hits: false,
            tiering: None,
            stop_on_unsupported: false,
            perf_map: false,
        }
    }
}

/// Errors of [`Vm::load_kernel`].
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// {0}
    #[error("{0}")]
    Elf(#[from] LoadError),
    /// {0}
    #[error("{0}")]
    Multiboot(#[from] multiboot::MultibootError),
    /// {0}
    #[error("{0}")]
    Linux(#[from] crate::loader::linux::LinuxError),
    /// A Linux kernel takes one initrd, not {0}.
    #[error("a Linux kernel takes one initrd, not {0}")]
    TooManyInitrds(usize),
    /// An ELF64 kernel takes no command line and no initrd (they need Linux or Multiboot).
    #[error("an ELF64 kernel takes no command line and no initrd (they need Linux or Multiboot)")]
    ElfTakesNoArguments,
}

/// Errors of VM setup and host access to guest memory.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// Guest memory: {0}
    #[error("guest memory: {0}")]
    Memory(#[from] MemError),
    /// DBT engine: {0}
    #[error("DBT engine: {0}")]
    Dbt(#[from] DbtError),
}

/// Stops a [`Vm`] that another thread is running: [`Vm::run`] returns
/// [`RunOutcome::Stopped`] before the dispatcher enters another block, within one
/// instruction slice (50,000 guest instructions; a repeated string instruction counts its
/// iterations and stops between them), or at once from a halted sleep (20 ms for a stop
/// that only set [`StopHandle::flag`]). `runtime/tests/stops.rs` measures each case.
/// A stop requested while the VM is not running ends its next run at once.
#[derive(Clone, Debug)]
pub struct StopHandle {
    flag: std::sync::Arc<std::sync::atomic::AtomicBool>,
    bell: crate::console::Doorbell,
}

impl StopHandle {
    /// Asks the VM to stop (a halted vCPU wakes at once).
    pub fn stop(&self) {
        self.flag.store(true, std::sync::atomic::Ordering::Relaxed);
        self.bell.ring();
    }

    /// The flag [`StopHandle::stop`] sets, for a signal handler (which may store to it but
    /// not ring the doorbell: the halted vCPU then notices within its 20 ms sleep).
    pub fn flag(&self) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
        self.flag.clone()
    }
}

/// The host's NMI button for a [`Vm`] that another thread is running: an edge on the
/// board's NMI line, which reaches the guest through LAPIC LINT1 (NMI mode at reset, as the
/// ACPI MADT describes it; dropped while LINT1 is masked, as on hardware). The NMI wakes a
/// halted vCPU, with RFLAGS.IF = 0 too: while a handle exists, a vCPU halted with
/// interrupts off waits for it instead of ending the run.
#[derive(Clone, Debug)]
pub struct NmiHandle {
    button: std::sync::Arc<std::sync::atomic::AtomicBool>,
    bell: crate::console::Doorbell,
}

impl NmiHandle {
    /// Presses the button (a halted vCPU wakes at once).
    pub fn nmi(&self) {
        self.button
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.bell.ring();
    }
}

/// The engine a [`Vm`] runs: the DBT engine with a tiering policy (`dbt`, `jit`, `interp`),
/// or with trapping hypercalls (`trap`). Each is its own [`crate::engine::vcpu::run`].
enum Runner {
    Dbt(Dbt),
    Trap(Trap),
}

impl Runner {
    /// Sets up `engine` on `m`.
    fn new(
        m: &mut Machine,
        engine: Engine,
        cfg: CacheConfig,
        opts: DbtOptions,
    ) -> Result<Runner, DbtError> {
        Ok(match engine {
            Engine::Trap => Runner::Trap(Trap::with_options(m, cfg, opts)?),
            Engine::Dbt | Engine::Jit | Engine::Interp => {
                Runner::Dbt(Dbt::with_options(m, cfg, opts)?)
            }
        })
    }

    fn run(&mut self, m: &mut Machine, cpu: &mut CpuState) -> RunOutcome {
        match self {
            Runner::Dbt(e) => crate::engine::vcpu::run(e, m, cpu),
            Runner::Trap(e) => crate::engine::vcpu::run(e, m, cpu),
        }
    }

    fn stats(&self) -> DbtStats {
        match self {
            Runner::Dbt(e) => e.stats(),
            Runner::Trap(e) => e.stats(),
        }
    }
}

/// A virtual machine with one CPU.
pub struct Vm {
    cpu: Box<CpuState>,
    machine: Box<Machine>,
    engine: Engine,
    dbt: Option<Runner>,
    cache_cfg: CacheConfig,
    count_tlb_hits: bool,
    tiering: Option<Tiering>,
    perf_map: bool,
    run_ns: u64,
}

impl Vm {
    /// A VM with the CPU in 64-bit mode at CPL 0, RFLAGS = 0x2 (interrupts off), every other
    /// register zero (RSP too: the guest sets it), and RAM zeroed.
    pub fn new(cfg: VmConfig) -> Result<Vm, VmError> {
        let mut machine = Box::new(Machine::new(cfg.mem_bytes, cfg.serial)?);
        let dbt = Some(Runner::new(
            &mut machine,
            cfg.engine,
            cfg.cache,
            dbt_options(cfg.engine, cfg.count_tlb_hits, cfg.tiering, cfg.perf_map),
        )?);
        machine.run.insn_limit = cfg.instruction_limit.unwrap_or(u64::MAX);
        machine.stop_on_unsupported = cfg.stop_on_unsupported;
        // Between runs `icount_limit` holds the user's limit (see `engine::vcpu`).
        let mut cpu = Box::new(CpuState {
            rflags: rflags::FIXED,
            icount_limit: machine.run.insn_limit,
            ..CpuState::default()
        });
        // MSRs first: their reset clears EFER, which the long-mode reset then sets.
        crate::system::msr::reset(&mut cpu);
        crate::system::mode::reset_long_flat64(&mut cpu);
        Ok(Vm {
            cpu,
            machine,
            engine: cfg.engine,
            dbt,
            cache_cfg: cfg.cache,
            count_tlb_hits: cfg.count_tlb_hits,
            tiering: cfg.tiering,
            perf_map: cfg.perf_map,
            run_ns: 0,
        })
    }

    /// Loads an ELF64 x86-64 executable and points RIP at its entry. Returns the entry.
    pub fn load_elf(&mut self, image: &[u8]) -> Result<u64, LoadError> {
        let info = Elf::load(&mut self.machine.ram, image)?;
        for (start, end) in info.ranges {
            self.machine.invalidate_code(start, end);
        }
        self.cpu.rip = info.entry;
        Ok(info.entry)
    }

    /// Loads a kernel image with command line `cmdline` and no initrd: a Linux bzImage
    /// through the boot protocol, a Multiboot v1 image in 32-bit protected mode as the
    /// specification says (EAX = magic, EBX = the information structure, flat segments,
    /// paging off, interrupts off; `cmdline` given as is); anything else must be an ELF64
    /// executable ([`Vm::load_elf`]). [`Vm::boot`] is the QEMU-like entry with initrds.
    /// Returns the entry point.
    pub fn load_kernel(&mut self, image: &[u8], cmdline: &str) -> Result<u64, KernelError> {
        match crate::boot::detect(image) {
            crate::boot::KernelFormat::Linux => self.boot_linux(image, None, cmdline),
            crate::boot::KernelFormat::Multiboot => self.boot_multiboot(image, cmdline, &[]),
            crate::boot::KernelFormat::Elf64 => Ok(self.load_elf(image)?),
        }
    }

    /// The DBT engine, the machine and the CPU state, for the engine's unit tests.
    #[cfg(test)]
    pub(crate) fn dbt_parts(&mut self) -> Option<(&mut Dbt, &mut Machine, &mut CpuState)> {
        match self.dbt.as_mut()? {
            Runner::Dbt(e) => Some((e, &mut self.machine, &mut self.cpu)),
            Runner::Trap(_) => None,
        }
    }

    /// The CPU state and the machine, for the boot code that sets both up.
    pub(crate) fn parts_mut(&mut self) -> (&mut CpuState, &mut Machine) {
        self.machine.run.mappings_changed = true;
        self.machine.run.global_mappings_changed = true;
        self.machine.tlb_large = true;
        (&mut self.cpu, &mut self.machine)
    }

    /// Copies `bytes` into guest-physical memory at `addr`, dropping translations of them.
    pub fn write_phys(&mut self, addr: u64, bytes: &[u8]) -> Result<(), VmError> {
        self.machine.ram.write(GuestPhys(addr), bytes)?;
        self.machine
            .invalidate_code(addr, addr + bytes.len() as u64);
        Ok(())
    }

    /// Copies guest-physical memory at `addr` into `buf`.
    pub fn read_phys(&self, addr: u64, buf: &mut [u8]) -> Result<(), VmError> {
        Ok(self.machine.ram.read(GuestPhys(addr), buf)?)
    }

    /// A handle another thread can stop this VM's runs with.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            flag: self.machine.run.stop_flag.clone(),
            bell: self.machine.doorbell.clone(),
        }
    }

    /// A handle another thread can send this VM NMIs with (see [`NmiHandle`]).
    pub fn nmi_handle(&self) -> NmiHandle {
        NmiHandle {
            button: self.machine.run.nmi_button.clone(),
            bell: self.machine.doorbell.clone(),
        }
    }

    /// Sends an NMI through the board's NMI line (see [`NmiHandle`]); between runs, the
    /// next run takes it before its first instruction.
    pub fn nmi(&mut self) {
        self.machine
            .run
            .nmi_button
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Connects a new console input: what the returned writer sends (from any thread) is
    /// what the guest reads from COM1, fed as the UART's receive FIFO has room; sending
    /// wakes a halted vCPU. Dropping every writer ends the input (the guest keeps running).
    pub fn console_input(&mut self) -> ConsoleWriter {
        let bell = self.machine.doorbell.clone();
        self.machine.console.connect(bell)
    }

    /// A copy of everything the guest transmits on COM1 from now on, as it transmits it
    /// (see [`crate::devices::Serial::tap`]): with [`Vm::console_input`], a harness thread
    /// can hold a conversation with the guest while [`Vm::run`] runs.
    pub fn serial_tap(&mut self) -> std::sync::mpsc::Receiver<Vec<u8>> {
        self.machine.serial_mut().tap()
    }

    /// Queues `bytes` for COM1's receiver directly (between runs, no thread needed).
    pub fn send_console(&mut self, bytes: &[u8]) {
        self.machine.console.push(bytes);
    }

    /// The guest CPU state.
    pub fn cpu(&self) -> &CpuState {
        &self.cpu
    }

    /// The guest CPU state, mutably (set registers before [`Vm::run`]). The host may change
    /// anything, CR3 and the paging controls included, so the next run drops every
    /// virtual-address-keyed lookup (as KVM flushes the TLB on `KVM_SET_SREGS`); the soft TLB
    /// is part of the state and is the caller's.
    pub fn cpu_mut(&mut self) -> &mut CpuState {
        self.machine.run.mappings_changed = true;
        self.machine.run.global_mappings_changed = true;
        // The TLB the host installs may hold anything.
        self.machine.tlb_large = true;
        &mut self.cpu
    }

    /// The engine [`Vm::run`] uses.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Switches engines for the next [`Vm::run`].
    pub fn set_engine(&mut self, e: Engine) {
        if e != self.engine {
            // Tiers and translation styles differ between engines: start a fresh cache.
            self.dbt = None;
            self.machine.set_code_tracking(None);
        }
        self.engine = e;
    }

    /// Runs the guest until something stops it.
    pub fn run(&mut self) -> RunOutcome {
        let t0 = Instant::now();
        let outcome = self.run_dbt();
        self.run_ns += u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.machine.serial_mut().flush();
        outcome
    }

    fn run_dbt(&mut self) -> RunOutcome {
        if self.dbt.is_none() {
            let opts = dbt_options(
                self.engine,
                self.count_tlb_hits,
                self.tiering,
                self.perf_map,
            );
            match Runner::new(&mut self.machine, self.engine, self.cache_cfg, opts) {
                Ok(d) => self.dbt = Some(d),
                Err(e) => return RunOutcome::InternalError(e.to_string()),
            }
        }
        let dbt = self.dbt.as_mut().expect("created above");
        dbt.run(&mut self.machine, &mut self.cpu)
    }

    /// Everything the guest wrote to COM1 ([`SerialSink::Capture`]; empty for stdout).
    pub fn serial_output(&self) -> &[u8] {
        self.machine.serial().captured()
    }

    /// The machine (RAM, devices, caches), for tools and tests.
    pub fn machine(&self) -> &Machine {
        &self.machine
    }

    /// Counters of the VM and its engines.
    pub fn stats(&self) -> Stats {
        let m = &self.machine;
        let dbt = self.dbt.as_ref().map(Runner::stats).unwrap_or_default();
        Stats {
            engine: self.engine,
            guest_insns: self.cpu.icount,
            dbt,
            cache: crate::engine::dbt::cache(m)
                .map(|c| c.stats())
                .unwrap_or_default(),
            run_ns: self.run_ns,
            helpers: m.counters,
            exceptions: m.exceptions,
            code_modified: m.code_modified,
            bus: m.bus.stats(),
            serial_lost_bytes: m.serial().lost_bytes(),
            hypercalls: translator::sensitive::Hypercall::ALL
                .iter()
                .map(|&h| (h, m.hypercalls[h as usize]))
                .collect(),
            host_traps: dbt.host_traps,
            exceptions_by_vector: m.exceptions_by_vector,
            unsupported_uds: m
                .unsupported_uds
                .iter()
                .map(|(k, &n)| (k.clone(), n))
                .collect(),
            interrupts: m.interrupts_delivered,
            tlb: m.tlb,
            tlb_inline_hits: self.count_tlb_hits.then_some(self.cpu.tlb_inline_hits),
            halted_ns: m.halted_ns,
            mmio: m.mmio,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(engine: Engine) -> Vm {
        Vm::new(VmConfig {
            mem_bytes: 4 << 20,
            engine,
            serial: SerialSink::Capture,
            instruction_limit: Some(10_000),
            ..VmConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn vm_can_move_to_another_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<Vm>();
    }

    #[test]
    fn initial_cpu_state() {
        let v = vm(Engine::Interp);
        assert_eq!(v.cpu().rflags, 0x2);
        assert_eq!(v.cpu().gpr, [0; 16]);
        assert_eq!(v.cpu().icount_limit, 10_000);
    }

    #[test]
    fn bad_memory_size_is_an_error() {
        let cfg = VmConfig {
            mem_bytes: 1 << 20,
            ..VmConfig::default()
        };
        assert!(matches!(
            Vm::new(cfg),
            Err(VmError::Memory(MemError::BadSize(_)))
        ));
    }

    #[test]
    fn phys_access_is_bounds_checked() {
        let mut v = vm(Engine::Interp);
        v.write_phys(0x1000, b"abc").unwrap();
        let mut b = [0u8; 3];
        v.read_phys(0x1000, &mut b).unwrap();
        assert_eq!(&b, b"abc");
        assert!(v.write_phys((4 << 20) - 1, b"ab").is_err());
        assert!(v.read_phys(u64::MAX, &mut b).is_err());
    }

    /// `jnz $` with ZF clear: an endless loop of one instruction.
    const SPIN: [u8; 2] = [0x75, 0xFE];

    /// A guest that raises RTS, then echoes what COM1 receives (polling LSR.DR) until `!`,
    /// then halts with interrupts off.
    const ECHO: [u8; 27] = [
        0x66, 0xBA, 0xFC, 0x03, // mov dx, 0x3FC (MCR)
        0xB0, 0x0B, // mov al, DTR | RTS | OUT2
        0xEE, // out dx, al
        0x66, 0xBA, 0xFD, 0x03, // 1: mov dx, 0x3FD (LSR)
        0xEC, // in al, dx
        0xA8, 0x01, // test al, 1 (data ready)
        0x74, 0xF7, // jz 1b
        0x66, 0xBA, 0xF8, 0x03, // mov dx, 0x3F8 (RBR/THR)
        0xEC, // in al, dx
        0xEE, // out dx, al
        0x3C, b'!', // cmp al, '!'
        0x75, 0xED, // jne 1b
        0xF4, // hlt
    ];

    #[test]
    fn console_input_reaches_a_polling_guest_on_every_engine() {
        for engine in [Engine::Interp, Engine::Dbt, Engine::Trap] {
            let mut v = Vm::new(VmConfig {
                mem_bytes: 4 << 20,
                engine,
                serial: SerialSink::Capture,
                instruction_limit: Some(10_000_000),
                ..VmConfig::default()
            })
            .unwrap();
            v.write_phys(0x1000, &ECHO).unwrap();
            v.cpu_mut().rip = 0x1000;
            // Queued before the run, from the host side...
            v.send_console(b"ab");
            // ...and from another thread through a writer, more than the 64-byte FIFO.
            let w = v.console_input();
            let long: Vec<u8> = (0..200).map(|i| b'c' + (i % 20) as u8).collect();
            let sender = std::thread::spawn(move || {
                w.send(&long).unwrap();
                w.send(b"!").unwrap();
            });
            sender.join().unwrap();
            assert_eq!(v.run(), RunOutcome::Halted, "{engine:?}");
            let out = v.serial_output();
            assert_eq!(out.len(), 203, "{engine:?}");
            assert!(
                out.starts_with(b"abcde") && out.ends_with(b"!"),
                "{engine:?}"
            );
            // Port I/O is sensitive: under `trap` each IN and OUT is a host trap, which the
            // trap engine counts (no other engine takes any).
            let traps = v.stats().host_traps;
            assert_eq!(
                traps >= 2 * 203,
                engine == Engine::Trap,
                "{engine:?}: {traps}"
            );
            assert_eq!(traps == 0, engine != Engine::Trap, "{engine:?}: {traps}");
        }
    }

    #[test]
    fn both_engines_stop_at_the_instruction_limit() {
        for engine in [Engine::Interp, Engine::Dbt] {
            let mut v = vm(engine);
            v.write_phys(0x1000, &SPIN).unwrap();
            v.cpu_mut().rip = 0x1000;
            assert_eq!(v.run(), RunOutcome::InstructionLimit, "{engine:?}");
            assert_eq!(v.cpu().icount, 10_000, "{engine:?}");
            assert_eq!(v.stats().guest_insns, 10_000);
        }
    }

    #[test]
    fn jit_links_direct_exits_and_counts_translations() {
        let mut v = vm(Engine::Jit);
        // 0x1000: jmp 0x1010 ; 0x1010: jnz 0x1000 (taken: ZF is clear) — two blocks that
        // chain into each other once linked.
        v.write_phys(0x1000, &[0xEB, 0x0E]).unwrap();
        v.write_phys(0x1010, &[0x75, 0xEE]).unwrap();
        v.cpu_mut().rip = 0x1000;
        assert_eq!(v.run(), RunOutcome::InstructionLimit);
        let s = v.stats();
        assert_eq!(s.dbt.blocks_translated, 2);
        assert_eq!(s.cache.links, 2, "both edges of the loop were linked");
        assert!(
            s.dbt.dispatches < 10,
            "linked code ran without the dispatcher"
        );
        assert_eq!(s.guest_insns, 10_000);
    }

    #[test]
    fn fetch_outside_ram_is_a_page_fault_in_both_engines() {
        for engine in [Engine::Interp, Engine::Dbt] {
            let mut v = vm(engine);
            v.cpu_mut().rip = 8 << 20;
            assert_eq!(
                v.run(),
                RunOutcome::Exception {
                    exc: translator::Exception::PageFault {
                        addr: 8 << 20,
                        code: 0x10
                    },
                    rip: 8 << 20
                },
                "{engine:?}"
            );
            assert_eq!(v.stats().exceptions, 1);
        }
    }

    #[test]
    fn host_writes_invalidate_translated_code() {
        let mut v = vm(Engine::Dbt);
        v.write_phys(0x1000, &SPIN).unwrap();
        v.cpu_mut().rip = 0x1000;
        v.run();
        assert_eq!(v.stats().cache.blocks_live, 1);
        v.write_phys(0x1001, &[0xFE]).unwrap();
        assert_eq!(v.stats().cache.blocks_live, 0);
        assert_eq!(v.stats().cache.invalidations, 1);
    }

    #[test]
    fn register_dump_names_every_register() {
        let mut cpu = CpuState::default();
        cpu.gpr[15] = 0xABCD;
        cpu.rip = 0x1000;
        let d = register_dump(&cpu);
        assert!(d.contains("r15=000000000000abcd"), "{d}");
        assert!(d.contains("rip=0000000000001000"));
        assert_eq!(d.lines().count(), 5);
    }
}
