//! The trap-and-emulate engine's host side: the SIGTRAP handler.
//!
//! Under `--engine trap` blocks are translated exactly as under `dbt`, except that each
//! hypercall stub is a real host trap (`int3`, see `translator::jit::JitConfig::
//! trap_hypercalls`): the stub stores its arguments in `CpuState::helper_out[0..3]` and
//! traps. The kernel delivers SIGTRAP; this handler maps the host PC to its block through
//! the code cache, finds the guest instruction in that block's trap table (guest PC and
//! hypercall kind, recorded at translation), runs the same hypercall handler a call would,
//! stores the result in `helper_out[0]` and returns, resuming the block after the `int3`.
//! Every sensitive instruction therefore pays a host fault and a signal delivery, as in a
//! classic trap-and-emulate VMM.
//!
//! Invariants:
//! - The handler acts only on traps whose PC lies in the code cache of the machine the
//!   current thread is running ([`Running`]); any other SIGTRAP gets the default action
//!   (the process dies as it would without this handler).
//! - The signal is synchronous (our own `int3`, between two Rust-free instructions of
//!   generated code), so the handler may call the runtime as a helper call would: no lock
//!   or allocator state of the interrupted code is half-updated.

use std::cell::Cell;
use std::sync::Once;

use hashbrown::HashMap;
use translator::sensitive::{Hypercall, HypercallArgs};
use translator::CpuState;

use crate::machine::{Machine, StopRequest};
use crate::run_state::Effects;

/// One trap site of a block: the guest instruction a trap stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrapSite {
    /// Guest-virtual address of the sensitive instruction.
    pub guest_pc: u64,
    /// Its hypercall.
    pub kind: Hypercall,
}

/// Trap sites by block (the raw [`cache::BlockId`] of the block holding the traps), and
/// how many traps the handler took through the table.
#[derive(Debug, Default)]
pub struct TrapTable {
    sites: HashMap<u32, Box<[TrapSite]>>,
    /// Host traps taken from this engine's code (a `Cell`: the handler sees the table
    /// through a shared pointer, on the thread that owns it).
    taken: Cell<u64>,
}

impl TrapTable {
    /// Records the trap sites of a newly installed block (replacing a reused id's).
    pub fn insert(&mut self, block: cache::BlockId, sites: Box<[TrapSite]>) {
        if sites.is_empty() {
            self.sites.remove(&block.raw());
        } else {
            self.sites.insert(block.raw(), sites);
        }
    }

    /// The site of `block` for guest PC `pc`.
    pub fn find(&self, block: cache::BlockId, pc: u64) -> Option<TrapSite> {
        self.sites
            .get(&block.raw())?
            .iter()
            .find(|s| s.guest_pc == pc)
            .copied()
    }

    /// Forgets every site (code-cache flush).
    pub fn clear(&mut self) {
        self.sites.clear();
    }

    /// Host traps taken from this engine's code.
    pub fn taken(&self) -> u64 {
        self.taken.get()
    }
}

/// The `trap` engine's way into generated code ([`super::dbt::HostEntry`]): the trap sites
/// of every compiled block, and the [`Running`] guard around each entry, through which the
/// signal handler finds them.
#[derive(Debug, Default)]
pub struct Traps {
    table: TrapTable,
}

impl super::dbt::HostEntry for Traps {
    const TRAPS: bool = true;

    fn installed(&mut self, id: cache::BlockId, block: &translator::decode::DecodedBlock) {
        let sites = block
            .insns
            .iter()
            .filter_map(|i| {
                translator::sensitive::lookup(i).map(|e| TrapSite {
                    guest_pc: i.ip(),
                    kind: e.call,
                })
            })
            .collect();
        self.table.insert(id, sites);
    }

    fn flushed(&mut self) {
        self.table.clear();
    }

    fn host_traps(&self) -> u64 {
        self.table.taken()
    }

    unsafe fn enter(&self, enter: super::dbt::EntryFn, cpu: *mut CpuState, host: usize) -> u64 {
        let _running = Running::enter(cpu, &self.table);
        // SAFETY: the caller's contract; the trap handler reaches `cpu` only through
        // `RUNNING` while the block runs, as a helper would.
        unsafe { enter(cpu, host) }
    }
}

thread_local! {
    /// The CPU state generated code on this thread is running with (null when none).
    static RUNNING: Cell<*mut CpuState> = const { Cell::new(std::ptr::null_mut()) };
    /// The trap sites of the engine running it (null when none).
    static TABLE: Cell<*const TrapTable> = const { Cell::new(std::ptr::null()) };
}

/// While alive, traps from generated code on this thread belong to `cpu` (whose `runtime`
/// names the machine).
pub struct Running {
    prev: *mut CpuState,
    prev_table: *const TrapTable,
}

impl Running {
    /// Marks `cpu` as the state generated code on this thread runs with, and `table` as
    /// its trap sites (the engine leaves it unchanged while the code runs).
    pub fn enter(cpu: *mut CpuState, table: &TrapTable) -> Running {
        install();
        Running {
            prev: RUNNING.with(|r| r.replace(cpu)),
            prev_table: TABLE.with(|t| t.replace(table)),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.with(|r| r.set(self.prev));
        TABLE.with(|t| t.set(self.prev_table));
    }
}

static INSTALL: Once = Once::new();

/// Installs the SIGTRAP handler (once per process).
fn install() {
    INSTALL.call_once(|| {
        // SAFETY: a zeroed `sigaction` is a valid starting value; we set the handler, flags
        // and an empty mask before passing it to the kernel, and `on_sigtrap` has the
        // `SA_SIGINFO` signature.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_sigtrap as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(libc::SIGTRAP, &sa, std::ptr::null_mut());
        }
    });
}

/// Restores the default action, so that returning re-executes nothing and a foreign
/// SIGTRAP is fatal as usual.
fn default_action() {
    // SAFETY: resetting a signal to SIG_DFL with a zeroed mask is always valid.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGTRAP, &sa, std::ptr::null_mut());
        libc::raise(libc::SIGTRAP);
    }
}

extern "C" fn on_sigtrap(_sig: libc::c_int, _info: *mut libc::siginfo_t, uctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid `ucontext_t` to an SA_SIGINFO handler.
    let host_pc =
        unsafe { (*(uctx as *mut libc::ucontext_t)).uc_mcontext.gregs[libc::REG_RIP as usize] };
    // `int3` traps after itself: the trapping instruction is the byte before.
    let trap_pc = (host_pc as usize).wrapping_sub(1);
    let cpu = RUNNING.with(|r| r.get());
    if cpu.is_null() || !handle(cpu, trap_pc) {
        default_action();
    }
}

/// Emulates the hypercall the trap at host address `trap_pc` stands for. False if the trap
/// is not ours.
fn handle(cpu_ptr: *mut CpuState, trap_pc: usize) -> bool {
    let args = {
        // SAFETY: `RUNNING` holds the pointer the engine entered generated code with; that
        // code is what trapped (checked below against the cache before anything else is
        // done), and the engine does not touch the state while it runs. The borrow ends
        // before the hypercall takes its own.
        let cpu = unsafe { &mut *cpu_ptr };
        if cpu.runtime == 0 {
            return false;
        }
        // SAFETY: as for helper calls: the engine set `runtime` to its machine before
        // entering generated code and holds no reference to it meanwhile.
        let m = unsafe { &mut *(cpu.runtime as *mut Machine) };
        let Some(block) = super::dbt::cache(m).and_then(|c| c.block_at_host(trap_pc)) else {
            return false;
        };
        let args = [cpu.helper_out[0], cpu.helper_out[1], cpu.helper_out[2]];
        let table = TABLE.with(|t| t.get());
        // SAFETY: `Running::enter` set it from the engine's table, which the engine neither
        // moves nor changes while the block that trapped runs (sites are added and cleared
        // only by the dispatcher); null when no engine entered code on this thread.
        let table = unsafe { table.as_ref() };
        if let Some(t) = table {
            t.taken.set(t.taken.get() + 1);
        }
        let site = table.and_then(|t| t.find(block, cpu.rip));
        let decoded = HypercallArgs::decode(args[0]);
        if !site.is_some_and(|s| decoded.is_some_and(|x| x.kind == s.kind)) {
            let why = format!(
                "host trap at {trap_pc:#x} (guest rip {:#x}) has no trap-table entry",
                cpu.rip
            );
            m.run.post(cpu, Effects::stop(StopRequest::Internal(why)));
            cpu.helper_out[0] = 0;
            return true;
        }
        args
    };
    let r = crate::helpers::shim(translator::Helper::Hypercall, cpu_ptr, args);
    // SAFETY: as above; the hypercall's borrows have ended.
    unsafe { (*cpu_ptr).helper_out[0] = r };
    true
}
