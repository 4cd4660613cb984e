//! The native side: runs one instruction on the host CPU, at the same address and against
//! memory at the same addresses as the guest sees, and captures the resulting registers and
//! floating-point state.
//!
//! Layout (see [`super::layout`]): the compared data + stack area and a harness page are
//! anonymous mappings at fixed low host addresses; the code pages are one memfd mapped twice,
//! read-write at a kernel-chosen address (where the harness writes the instruction) and
//! read-execute at [`CODE_BASE`] (where it runs), so no page is ever writable and executable.
//!
//! A run: the harness writes the instruction at its address and an 18-byte *landing pad* at
//! every address control may reach next (the fall-through and, for branches, the target).
//! Every other code byte is `int3`. [`popek_diff_enter`] saves the host callee-saved
//! registers, stack pointer and floating-point state (FXSAVE64), loads the case's x87/MMX/SSE
//! state (FXRSTOR64 of its 64-bit FXSAVE image), RFLAGS and all 16 GPRs, and jumps to the
//! instruction. A pad stores its own address in the harness page and jumps to
//! `popek_diff_exit`, which first stores the FP state (FXSAVE64: non-waiting, so a pending
//! x87 exception stays pending and unraised), then all 16 GPRs and RFLAGS, restores the host
//! FP state (FXRSTOR64 of what it saved: no exception pending, the host's MXCSR and FCW) and
//! context, and returns. A fault (SIGFPE for #DE, #MF and #XM, SIGSEGV for #GP and #PF,
//! SIGILL, SIGBUS) or an `int3` reached by an unexpected landing is caught by a signal handler
//! that records it with the trap number and error code of the signal context and the FP state
//! the kernel saved there (`uc_mcontext.fpregs`, FXSAVE format), and redirects the faulting
//! context to `popek_diff_exit`, so the registers captured are those at the fault.
//!
//! Invariants:
//! - Only one native run at a time in the process: the machine is a singleton behind a mutex,
//!   and the trampoline's scratch area is a static.
//! - The signal handler acts only for the thread that is running native code
//!   (`ACTIVE_TID`), and otherwise chains to the handler it replaced.
//! - Every signal the handler takes runs on an alternate stack (the guest-controlled RSP may
//!   point anywhere), installed for the running thread before its first run.
//! - After a run, every code byte the run wrote is `int3` again.
//! - No host code runs between the FXRSTOR64 of the case's state and the FXSAVE64 of the
//!   result but the instruction under test (and a pad, which touches no FP state): a pending
//!   unmasked x87 exception of the case can never reach a waiting host instruction.

use std::cell::Cell;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use super::layout::{CODE_BASE, CODE_SIZE, HARNESS_PAGE, MEM_BASE, MEM_SIZE, PAD_LEN};
use translator::state::FxArea;

/// Registers in and out of a native run: RAX..R15 in encoding order, then RFLAGS.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Regs {
    pub gpr: [u64; 16],
    pub rflags: u64,
}

/// How a native run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NativeStop {
    /// Control reached a landing pad (or an `int3` byte) at this address: the next RIP.
    Landed(u64),
    /// The instruction raised a signal: `pc` is the faulting instruction, `addr` the fault
    /// address (`si_addr`), `trapno` and `err` the exception vector and error code of the
    /// signal context (`REG_TRAPNO`, `REG_ERR`).
    Signal {
        signo: i32,
        code: i32,
        pc: u64,
        addr: u64,
        trapno: u64,
        err: u64,
    },
}

/// The result of a native run.
#[derive(Clone, Copy, Debug)]
pub struct NativeResult {
    pub stop: NativeStop,
    pub regs: Regs,
    /// The x87/MMX/SSE state after the instruction (or at the fault).
    pub fx: FxArea,
}

/// The trampoline's scratch area (addressed RIP-relative from the assembly below).
#[repr(C, align(64))]
struct Scratch {
    /// Host RSP after the callee-saved registers were pushed.
    host_rsp: u64,
    /// Address of the instruction under test.
    entry: u64,
    /// Registers captured by `popek_diff_exit`.
    out: Regs,
    /// The host's FP state while the case runs.
    host_fx: FxArea,
    /// The FP state captured by `popek_diff_exit`.
    out_fx: FxArea,
}

// Offsets used by the assembly.
const SCRATCH_OUT: usize = 16;
const SCRATCH_HOST_FX: usize = std::mem::offset_of!(Scratch, host_fx);
const SCRATCH_OUT_FX: usize = std::mem::offset_of!(Scratch, out_fx);
const _: () = assert!(std::mem::offset_of!(Scratch, out) == SCRATCH_OUT);
const _: () = assert!(std::mem::offset_of!(Regs, rflags) == 128);
const _: () = assert!(SCRATCH_HOST_FX.is_multiple_of(16) && SCRATCH_OUT_FX.is_multiple_of(16));

const ZERO_FX: FxArea = FxArea {
    fcw: 0,
    fsw: 0,
    ftw: 0,
    _rsvd1: 0,
    fop: 0,
    fip: 0,
    fdp: 0,
    mxcsr: 0,
    mxcsr_mask: 0,
    st: [[0; 16]; 8],
    xmm: [0; 16],
    _rsvd: [0; 96],
};

static mut SCRATCH: Scratch = Scratch {
    host_rsp: 0,
    entry: 0,
    out: Regs {
        gpr: [0; 16],
        rflags: 0,
    },
    host_fx: ZERO_FX,
    out_fx: ZERO_FX,
};

/// The FP state the kernel saved in the signal context of the last fault (written by the
/// signal handler only, read after the run).
static mut SIG_FX: FxArea = ZERO_FX;

std::arch::global_asm!(
    ".pushsection .text.popek_diff,\"ax\",@progbits",
    ".globl popek_diff_enter",
    ".hidden popek_diff_enter",
    ".p2align 4",
    // extern "C" fn(regs: *const Regs /* rdi */, entry: u64 /* rsi */, fx: *const FxArea /* rdx */)
    "popek_diff_enter:",
    "push rbx",
    "push rbp",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "mov qword ptr [rip + {s}], rsp",
    "mov qword ptr [rip + {s} + 8], rsi",
    "fxsave64 [rip + {s} + {host_fx}]",
    "fxrstor64 [rdx]",
    "push qword ptr [rdi + 128]",
    "popfq",
    "mov rax, qword ptr [rdi + 0]",
    "mov rcx, qword ptr [rdi + 8]",
    "mov rdx, qword ptr [rdi + 16]",
    "mov rbx, qword ptr [rdi + 24]",
    "mov rsp, qword ptr [rdi + 32]",
    "mov rbp, qword ptr [rdi + 40]",
    "mov rsi, qword ptr [rdi + 48]",
    "mov r8, qword ptr [rdi + 64]",
    "mov r9, qword ptr [rdi + 72]",
    "mov r10, qword ptr [rdi + 80]",
    "mov r11, qword ptr [rdi + 88]",
    "mov r12, qword ptr [rdi + 96]",
    "mov r13, qword ptr [rdi + 104]",
    "mov r14, qword ptr [rdi + 112]",
    "mov r15, qword ptr [rdi + 120]",
    "mov rdi, qword ptr [rdi + 56]",
    "jmp qword ptr [rip + {s} + 8]",
    // Reached from a landing pad, or from the signal handler with the faulting context.
    ".globl popek_diff_exit",
    ".hidden popek_diff_exit",
    ".p2align 4",
    "popek_diff_exit:",
    "fxsave64 [rip + {s} + {out_fx}]",
    "mov qword ptr [rip + {s} + 16 + 0], rax",
    "mov qword ptr [rip + {s} + 16 + 8], rcx",
    "mov qword ptr [rip + {s} + 16 + 16], rdx",
    "mov qword ptr [rip + {s} + 16 + 24], rbx",
    "mov qword ptr [rip + {s} + 16 + 32], rsp",
    "mov qword ptr [rip + {s} + 16 + 40], rbp",
    "mov qword ptr [rip + {s} + 16 + 48], rsi",
    "mov qword ptr [rip + {s} + 16 + 56], rdi",
    "mov qword ptr [rip + {s} + 16 + 64], r8",
    "mov qword ptr [rip + {s} + 16 + 72], r9",
    "mov qword ptr [rip + {s} + 16 + 80], r10",
    "mov qword ptr [rip + {s} + 16 + 88], r11",
    "mov qword ptr [rip + {s} + 16 + 96], r12",
    "mov qword ptr [rip + {s} + 16 + 104], r13",
    "mov qword ptr [rip + {s} + 16 + 112], r14",
    "mov qword ptr [rip + {s} + 16 + 120], r15",
    "mov rsp, qword ptr [rip + {s}]",
    "pushfq",
    "pop rax",
    "mov qword ptr [rip + {s} + 16 + 128], rax",
    "fxrstor64 [rip + {s} + {host_fx}]",
    "cld",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbp",
    "pop rbx",
    "ret",
    ".popsection",
    s = sym SCRATCH,
    host_fx = const SCRATCH_HOST_FX,
    out_fx = const SCRATCH_OUT_FX,
);

extern "C" {
    /// Enter the instruction at `entry` with the registers of `regs` and the FP state `fx`
    /// (16-byte aligned); returns once `popek_diff_exit` ran (the registers are then in
    /// `SCRATCH.out`, the FP state in `SCRATCH.out_fx`).
    fn popek_diff_enter(regs: *const Regs, entry: u64, fx: *const FxArea);
    /// The common exit (never called from Rust: its address goes into pads and contexts).
    fn popek_diff_exit();
}

/// The thread running native code (0: none), read by the signal handler.
static ACTIVE_TID: AtomicI32 = AtomicI32::new(0);
static FAULT_SIG: AtomicI32 = AtomicI32::new(0);
static FAULT_CODE: AtomicI32 = AtomicI32::new(0);
static FAULT_PC: AtomicU64 = AtomicU64::new(0);
static FAULT_ADDR: AtomicU64 = AtomicU64::new(0);
static FAULT_TRAPNO: AtomicU64 = AtomicU64::new(0);
static FAULT_ERR: AtomicU64 = AtomicU64::new(0);

/// The signals the harness catches while native code runs.
const SIGNALS: [i32; 5] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGTRAP,
];

/// The handlers ours replaced, to chain to for signals that are not ours: per signal of
/// [`SIGNALS`], the handler address and its `sa_flags` (atomics, so the handler reads them
/// without locking, and a re-installation after someone replaced us, such as the trap
/// engine's SIGTRAP handler, chains to the newer handler).
static CHAIN_HANDLER: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];
static CHAIN_FLAGS: [AtomicI32; 5] = [const { AtomicI32::new(0) }; 5];
/// Serializes installations.
static INSTALLING: Mutex<()> = Mutex::new(());

extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let active = ACTIVE_TID.load(Ordering::Acquire);
    // SAFETY: gettid has no preconditions and is async-signal-safe.
    if active != 0 && active == unsafe { libc::gettid() } {
        // SAFETY: the kernel passes a valid ucontext_t and siginfo_t to an SA_SIGINFO
        // handler; we only read and write plain fields of them.
        unsafe {
            let uc = ctx.cast::<libc::ucontext_t>();
            let rip = &mut (*uc).uc_mcontext.gregs[libc::REG_RIP as usize];
            FAULT_SIG.store(sig, Ordering::Relaxed);
            FAULT_CODE.store((*info).si_code, Ordering::Relaxed);
            FAULT_PC.store(*rip as u64, Ordering::Relaxed);
            FAULT_ADDR.store((*info).si_addr() as u64, Ordering::Relaxed);
            let gregs = &(*uc).uc_mcontext.gregs;
            FAULT_TRAPNO.store(gregs[libc::REG_TRAPNO as usize] as u64, Ordering::Relaxed);
            FAULT_ERR.store(gregs[libc::REG_ERR as usize] as u64, Ordering::Relaxed);
            // The FP state at the fault, in the FXSAVE format (the legacy area of the
            // kernel's XSAVE image).
            let fp = (*uc).uc_mcontext.fpregs;
            let dst = std::ptr::addr_of_mut!(SIG_FX).cast::<u8>();
            if fp.is_null() {
                std::ptr::write_bytes(dst, 0, 512);
            } else {
                std::ptr::copy_nonoverlapping(fp.cast::<u8>(), dst, 512);
            }
            ACTIVE_TID.store(0, Ordering::Release);
            *rip = popek_diff_exit as *const () as usize as i64;
        }
        return;
    }
    chain(sig, info, ctx);
}

/// Hand a signal that is not ours to the handler we replaced.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let slot = SIGNALS.iter().position(|&s| s == sig);
    let old = slot.map(|i| {
        (
            CHAIN_HANDLER[i].load(Ordering::Acquire) as usize,
            CHAIN_FLAGS[i].load(Ordering::Acquire),
        )
    });
    match old {
        Some((h, flags)) if h != libc::SIG_DFL && h != libc::SIG_IGN => {
            if flags & libc::SA_SIGINFO != 0 {
                // SAFETY: an SA_SIGINFO handler has this signature; we forward the kernel's
                // arguments unchanged.
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    unsafe { std::mem::transmute(h) };
                f(sig, info, ctx);
            } else {
                // SAFETY: a plain handler takes the signal number only.
                let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(h) };
                f(sig);
            }
        }
        _ => {
            // Restore the default action; returning re-executes the faulting instruction
            // (or, for an asynchronous signal, the default action applies next time).
            // SAFETY: sigaction with a zeroed struct and SIG_DFL is always valid.
            unsafe {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
    }
}

/// Install our handler for every signal in [`SIGNALS`] where it is not the current one,
/// remembering what it replaces.
fn install_handlers() {
    let _serial = INSTALLING.lock().unwrap_or_else(|e| e.into_inner());
    for (i, &sig) in SIGNALS.iter().enumerate() {
        // SAFETY: querying and setting a signal action with valid pointers; the handler is
        // an `extern "C"` function with the SA_SIGINFO signature.
        unsafe {
            let mut cur: libc::sigaction = std::mem::zeroed();
            libc::sigaction(sig, std::ptr::null(), &mut cur);
            if cur.sa_sigaction == on_signal as *const () as usize {
                continue;
            }
            CHAIN_FLAGS[i].store(cur.sa_flags, Ordering::Release);
            CHAIN_HANDLER[i].store(cur.sa_sigaction as u64, Ordering::Release);
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_signal as *const () as usize;
            act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(sig, &act, std::ptr::null_mut());
        }
    }
}

thread_local! {
    static ALTSTACK_READY: Cell<bool> = const { Cell::new(false) };
}

/// Make sure the current thread has an alternate signal stack.
fn ensure_altstack() {
    if ALTSTACK_READY.with(|r| r.get()) {
        return;
    }
    const SIZE: usize = 256 * 1024;
    // SAFETY: querying the current alternate stack; installing a leaked, never-freed
    // allocation of SIZE bytes as this thread's alternate stack.
    unsafe {
        let mut cur: libc::stack_t = std::mem::zeroed();
        libc::sigaltstack(std::ptr::null(), &mut cur);
        if cur.ss_flags & libc::SS_DISABLE != 0 || cur.ss_size < SIZE / 4 {
            let mem: &'static mut [u8] = Box::leak(vec![0u8; SIZE].into_boxed_slice());
            let st = libc::stack_t {
                ss_sp: mem.as_mut_ptr().cast(),
                ss_flags: 0,
                ss_size: SIZE,
            };
            let rc = libc::sigaltstack(&st, std::ptr::null_mut());
            assert_eq!(rc, 0, "sigaltstack failed");
        }
    }
    ALTSTACK_READY.with(|r| r.set(true));
}

/// Map `len` bytes at exactly `addr`, or panic with a clear message.
fn map_fixed(addr: u64, len: usize, prot: i32, flags: i32, fd: i32) -> *mut u8 {
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping; we check the result.
    let p = unsafe {
        libc::mmap(
            addr as *mut libc::c_void,
            len,
            prot,
            flags | libc::MAP_FIXED_NOREPLACE,
            fd,
            0,
        )
    };
    assert!(
        p != libc::MAP_FAILED && p as u64 == addr,
        "difftest: cannot map {len:#x} bytes at the fixed host address {addr:#x} ({}); \
         something else in this process lives there",
        std::io::Error::last_os_error()
    );
    p.cast()
}

/// The host-side twin of the guest's memory and code pages. A process-wide singleton: get it
/// with [`machine`].
pub struct NativeMachine {
    /// Writable view of the code pages (the executable view is at `CODE_BASE`).
    code_rw: *mut u8,
    /// The compared data + stack area at `MEM_BASE`.
    mem: *mut u8,
    /// The harness page at `HARNESS_PAGE`: landed address (u32 at +0), exit address (+8).
    harness: *mut u8,
    /// Code ranges written by the current run, restored to `int3` afterwards.
    dirty: Vec<(usize, usize)>,
}

// SAFETY: the raw pointers designate process-wide mappings that live forever; access is
// serialized by the `Mutex` in `machine()`.
unsafe impl Send for NativeMachine {}

static MACHINE: OnceLock<Mutex<NativeMachine>> = OnceLock::new();

/// Lock the native machine (creating its mappings and signal handlers on first use).
pub fn machine() -> MutexGuard<'static, NativeMachine> {
    let m = MACHINE.get_or_init(|| Mutex::new(NativeMachine::create()));
    let guard = m.lock().unwrap_or_else(|e| e.into_inner());
    install_handlers();
    ensure_altstack();
    guard
}

impl NativeMachine {
    fn create() -> NativeMachine {
        let prot_rw = libc::PROT_READ | libc::PROT_WRITE;
        let anon = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
        let mem = map_fixed(MEM_BASE, MEM_SIZE as usize, prot_rw, anon, -1);
        let harness = map_fixed(HARNESS_PAGE, 4096, prot_rw, anon, -1);
        // SAFETY: memfd_create with a valid NUL-terminated name; ftruncate on the new fd.
        let fd = unsafe {
            let fd = libc::memfd_create(c"popek-difftest-code".as_ptr(), libc::MFD_CLOEXEC);
            assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
            let rc = libc::ftruncate(fd, CODE_SIZE as libc::off_t);
            assert_eq!(rc, 0, "ftruncate: {}", std::io::Error::last_os_error());
            fd
        };
        // SAFETY: mapping the memfd read-write at a kernel-chosen address.
        let code_rw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                CODE_SIZE as usize,
                prot_rw,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        assert!(code_rw != libc::MAP_FAILED, "mmap code (rw)");
        let code_rw = code_rw.cast::<u8>();
        map_fixed(
            CODE_BASE,
            CODE_SIZE as usize,
            libc::PROT_READ | libc::PROT_EXEC,
            libc::MAP_SHARED,
            fd,
        );
        // SAFETY: the mappings keep the file alive; the fd is no longer needed.
        unsafe { libc::close(fd) };
        // SAFETY: code_rw is a fresh CODE_SIZE-byte writable mapping; harness a 4 KiB one.
        unsafe {
            std::ptr::write_bytes(code_rw, 0xCC, CODE_SIZE as usize);
            harness
                .add(8)
                .cast::<u64>()
                .write(popek_diff_exit as *const () as usize as u64);
        }
        NativeMachine {
            code_rw,
            mem,
            harness,
            dirty: Vec::new(),
        }
    }

    /// The compared data + stack area, `MEM_BASE .. MEM_BASE + MEM_SIZE`.
    pub fn mem(&self) -> &[u8] {
        // SAFETY: `mem` is a live MEM_SIZE-byte mapping owned by this machine; the `&self`
        // borrow (under the machine's mutex) excludes writers.
        unsafe { std::slice::from_raw_parts(self.mem, MEM_SIZE as usize) }
    }

    /// The compared area, writable (to set up and restore memory around runs).
    pub fn mem_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `mem`, with `&mut self` giving exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.mem, MEM_SIZE as usize) }
    }

    fn write_code(&mut self, addr: u64, bytes: &[u8]) {
        let off = addr
            .checked_sub(CODE_BASE)
            .filter(|o| o + bytes.len() as u64 <= CODE_SIZE)
            .unwrap_or_else(|| panic!("code at {addr:#x} outside the code pages"))
            as usize;
        // SAFETY: [off, off+len) is inside the CODE_SIZE-byte writable view (checked above).
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.code_rw.add(off), bytes.len())
        };
        self.dirty.push((off, bytes.len()));
    }

    /// Run `code` placed at `ip` with the registers `input` and the FP state `fx`; `pads`
    /// lists every address control may reach after the instruction (each gets an
    /// [`PAD_LEN`]-byte landing pad; the caller keeps them disjoint from each other and from
    /// the instruction). `fx.mxcsr` must have no reserved bit set.
    pub fn run(
        &mut self,
        ip: u64,
        code: &[u8],
        pads: &[u64],
        input: &Regs,
        fx: &FxArea,
    ) -> NativeResult {
        // Someone (the trap engine's SIGTRAP handler) may have replaced ours since.
        install_handlers();
        for &p in pads {
            self.write_code(p, &landing_pad(p));
        }
        self.write_code(ip, code);

        // SAFETY: the harness page is a live mapping; offset 0 holds the landed address.
        unsafe { self.harness.cast::<u32>().write_volatile(0) };
        FAULT_SIG.store(0, Ordering::Relaxed);
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        ACTIVE_TID.store(tid, Ordering::Release);
        // SAFETY: the code at `ip` is the instruction under test followed (on every path the
        // caller predicted) by landing pads that jump to `popek_diff_exit`; any other path
        // hits `int3` or faults, and the signal handler redirects to `popek_diff_exit`. The
        // instruction only touches the fixed mappings the caller set up, and the trampoline
        // restores every host callee-saved register, RSP, DF and the whole FP state
        // (FXRSTOR64 of its own FXSAVE64) before returning. `fx` is a 16-byte aligned
        // 512-byte image with a valid MXCSR, so FXRSTOR64 of it cannot fault.
        unsafe { popek_diff_enter(input, ip, fx) };
        ACTIVE_TID.store(0, Ordering::Release);

        // SAFETY: the trampoline has returned; nothing else writes SCRATCH (we hold the
        // machine lock), and we copy it out by value through a raw pointer.
        let regs = unsafe { std::ptr::addr_of!(SCRATCH.out).read_volatile() };
        // SAFETY: as above, offset 0 of the live harness page.
        let landed = unsafe { self.harness.cast::<u32>().read_volatile() } as u64;
        let sig = FAULT_SIG.load(Ordering::Relaxed);
        // SAFETY: as above; after a signal the handler's copy of the kernel's saved state is
        // the state at the fault (nothing writes SIG_FX outside a native run).
        let out_fx = unsafe {
            if sig == 0 {
                std::ptr::addr_of!(SCRATCH.out_fx).read_volatile()
            } else {
                std::ptr::addr_of!(SIG_FX).read_volatile()
            }
        };
        let stop = if sig == 0 {
            NativeStop::Landed(landed)
        } else {
            let pc = FAULT_PC.load(Ordering::Relaxed);
            let code = FAULT_CODE.load(Ordering::Relaxed);
            // An int3 filler byte executed: control landed at the byte before `pc`.
            if sig == libc::SIGTRAP && (CODE_BASE + 1..=CODE_BASE + CODE_SIZE).contains(&pc) {
                NativeStop::Landed(pc - 1)
            } else {
                NativeStop::Signal {
                    signo: sig,
                    code,
                    pc,
                    addr: FAULT_ADDR.load(Ordering::Relaxed),
                    trapno: FAULT_TRAPNO.load(Ordering::Relaxed),
                    err: FAULT_ERR.load(Ordering::Relaxed),
                }
            }
        };

        for (off, len) in self.dirty.drain(..) {
            // SAFETY: every recorded range was checked to lie inside the writable view.
            unsafe { std::ptr::write_bytes(self.code_rw.add(off), 0xCC, len) };
        }
        NativeResult {
            stop,
            regs,
            fx: out_fx,
        }
    }
}

/// The landing pad placed at `addr`: `mov dword [HARNESS_PAGE], addr` (records where control
/// went, touching no register or flag) then `jmp qword [HARNESS_PAGE + 8]` (to the exit).
pub fn landing_pad(addr: u64) -> [u8; PAD_LEN] {
    let mut p = [0u8; PAD_LEN];
    p[..3].copy_from_slice(&[0xC7, 0x04, 0x25]);
    p[3..7].copy_from_slice(&(HARNESS_PAGE as u32).to_le_bytes());
    p[7..11].copy_from_slice(&(addr as u32).to_le_bytes());
    p[11..14].copy_from_slice(&[0xFF, 0x24, 0x25]);
    p[14..18].copy_from_slice(&((HARNESS_PAGE + 8) as u32).to_le_bytes());
    p
}

/// Human-readable name of a signal number.
pub fn signal_name(signo: i32) -> &'static str {
    match signo {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGTRAP => "SIGTRAP",
        _ => "signal",
    }
}
