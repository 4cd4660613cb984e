//! The host-stub cache: executable copies of the stubs [`translator::hostexec`] builds, one
//! per distinct machine code, at addresses that stay valid for the machine's life (generated
//! code calls them directly).
//!
//! Invariants:
//! - A stub is never freed or moved while the machine lives, so an address handed out once
//!   stays callable; the cache refuses new stubs when full instead of recycling.
//! - [`HostStubs::call`] only calls addresses this cache handed out (a helper's argument
//!   comes from generated code, but is checked anyway).
//! - [`HostStubs::call_catching_xm`] runs an SSE stub with the guest's MXCSR masks, so the
//!   host raises #XM exactly where the guest's instruction must (the flags, the destination
//!   left unwritten: all the hardware's). The SIGFPE handler acts only for a #XM whose PC
//!   lies in this thread's stub memory while such a call runs; it resumes the stub after
//!   the faulting instruction (which did not execute: a stub then stores its unchanged
//!   registers, restores what it saved and returns normally), and chains every other SIGFPE
//!   to the handler it replaced.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{compiler_fence, AtomicI32, AtomicU64, Ordering};
use std::sync::Once;

use cache::exec_mem::ExecMemory;
use iced_x86::{Decoder, DecoderOptions};
use translator::state::HostFrame;

/// Bytes of executable memory for stubs. A stub is under 100 bytes and the distinct ones are
/// bounded by the opcode × immediate forms a guest can use (a few tens of thousands at most).
const STUB_BYTES: usize = 8 << 20;

/// The signature of every stub.
type StubFn = unsafe extern "C" fn(*mut HostFrame);

/// How a stub run under [`HostStubs::call_catching_xm`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StubRun {
    /// The instruction completed.
    Ran,
    /// The instruction raised an unmasked SIMD floating-point exception (#XM); the frame
    /// holds its inputs, MXCSR the flags the hardware set.
    SimdException,
    /// The address is not one of this cache's stubs (nothing ran).
    NotAStub,
}

/// The #XM vector, as the signal context's trap number gives it.
const TRAP_XM: i64 = 19;

thread_local! {
    /// While a stub runs under `call_catching_xm` on this thread: the stub memory's
    /// executable range `[start, end)` (else empty).
    static CATCH: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
    /// Set by the SIGFPE handler when it caught a #XM of the running stub.
    static CAUGHT: Cell<bool> = const { Cell::new(false) };
}

/// The SIGFPE handler ours replaced (address and `sa_flags`), for foreign signals.
static PREV_HANDLER: AtomicU64 = AtomicU64::new(0);
static PREV_FLAGS: AtomicI32 = AtomicI32::new(0);
static INSTALL: Once = Once::new();

/// Install the SIGFPE handler (once per process).
fn install() {
    INSTALL.call_once(|| {
        // SAFETY: querying and setting the SIGFPE action with valid pointers; `on_sigfpe` has
        // the SA_SIGINFO signature.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_sigfpe as *const () as usize;
            act.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&mut act.sa_mask);
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(libc::SIGFPE, &act, &mut old);
            PREV_FLAGS.store(old.sa_flags, Ordering::Release);
            PREV_HANDLER.store(old.sa_sigaction as u64, Ordering::Release);
        }
    });
}

extern "C" fn on_sigfpe(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let (start, end) = CATCH.with(Cell::get);
    // SAFETY: the kernel passes a valid ucontext_t to an SA_SIGINFO handler; we read and
    // write plain register fields of it, and read the faulting instruction's bytes, which
    // lie in the stub memory `[start, end)` (a stub's instruction ends before its `ret`).
    unsafe {
        let gregs = &mut (*ctx.cast::<libc::ucontext_t>()).uc_mcontext.gregs;
        let pc = gregs[libc::REG_RIP as usize] as usize;
        if (start..end).contains(&pc) && gregs[libc::REG_TRAPNO as usize] == TRAP_XM {
            let bytes = std::slice::from_raw_parts(pc as *const u8, (end - pc).min(15));
            let len = Decoder::new(64, bytes, DecoderOptions::NONE).decode().len();
            gregs[libc::REG_RIP as usize] = (pc + len) as i64;
            CAUGHT.with(|c| c.set(true));
            return;
        }
    }
    let prev = PREV_HANDLER.load(Ordering::Acquire) as usize;
    if prev == libc::SIG_DFL || prev == libc::SIG_IGN {
        // SAFETY: restoring the default action; returning re-executes the faulting
        // instruction, which then takes it.
        unsafe {
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(libc::SIGFPE, &dfl, std::ptr::null_mut());
        }
    } else if PREV_FLAGS.load(Ordering::Acquire) & libc::SA_SIGINFO != 0 {
        // SAFETY: an SA_SIGINFO handler has this signature; the kernel's arguments are
        // forwarded unchanged.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(prev) };
        f(sig, info, ctx);
    } else {
        // SAFETY: a plain handler takes the signal number only.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(prev) };
        f(sig);
    }
}

/// Executable host stubs by their code.
pub struct HostStubs {
    /// Mapped on the first stub (most machines never run one).
    mem: Option<ExecMemory>,
    by_code: HashMap<Vec<u8>, usize>,
}

impl std::fmt::Debug for HostStubs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostStubs")
            .field("stubs", &self.by_code.len())
            .field("bytes", &self.mem.as_ref().map_or(0, ExecMemory::used))
            .finish()
    }
}

impl Default for HostStubs {
    fn default() -> Self {
        HostStubs::new()
    }
}

impl HostStubs {
    /// An empty cache (no memory mapped yet).
    pub fn new() -> HostStubs {
        HostStubs {
            mem: None,
            by_code: HashMap::new(),
        }
    }

    /// The address of the stub with this code, installing it on first use; `None` when the
    /// cache is full (or its memory cannot be mapped).
    pub fn addr(&mut self, code: &[u8]) -> Option<usize> {
        if let Some(&a) = self.by_code.get(code) {
            return Some(a);
        }
        if self.mem.is_none() {
            self.mem = Some(ExecMemory::new(STUB_BYTES).ok()?);
        }
        let a = self.mem.as_mut()?.alloc(code).ok()?;
        self.by_code.insert(code.to_vec(), a);
        Some(a)
    }

    /// Number of stubs installed.
    pub fn len(&self) -> usize {
        self.by_code.len()
    }

    /// Whether no stub is installed.
    pub fn is_empty(&self) -> bool {
        self.by_code.is_empty()
    }

    /// Whether `addr` is a stub of this cache.
    pub fn contains(&self, addr: usize) -> bool {
        self.mapped(addr) && self.by_code.values().any(|&a| a == addr)
    }

    fn mapped(&self, addr: usize) -> bool {
        self.mem.as_ref().is_some_and(|m| m.contains(addr))
    }

    /// Run the stub at `addr` on `frame`, catching a #XM it raises (the caller has loaded
    /// MXCSR with the guest's exception masks: see [`crate::fpu`]).
    pub fn call_catching_xm(&self, addr: usize, frame: &mut HostFrame) -> StubRun {
        let Some(mem) = self.mem.as_ref().filter(|m| m.contains(addr)) else {
            return StubRun::NotAStub;
        };
        install();
        let start = mem.exec_base();
        CATCH.with(|c| c.set((start, start + mem.capacity())));
        CAUGHT.with(|c| c.set(false));
        compiler_fence(Ordering::SeqCst);
        // SAFETY: as in `call`; after a #XM of the stub's instruction the SIGFPE handler
        // resumes the stub past it, which then returns normally.
        unsafe {
            let f = std::mem::transmute::<usize, StubFn>(addr);
            f(frame);
        }
        compiler_fence(Ordering::SeqCst);
        CATCH.with(|c| c.set((0, 0)));
        if CAUGHT.with(Cell::get) {
            StubRun::SimdException
        } else {
            StubRun::Ran
        }
    }

    /// Run the stub at `addr` on `frame`. Returns `false` (running nothing) if `addr` is not
    /// one of this cache's stubs.
    pub fn call(&self, addr: usize, frame: &mut HostFrame) -> bool {
        if !self.mapped(addr) {
            return false;
        }
        // SAFETY: `addr` lies in this cache's executable memory, where only complete stubs
        // from `translator::hostexec` are installed, each a System V function taking the
        // frame pointer; a stub touches only the frame and caller-saved registers (XMM0..2,
        // RAX, RCX, RDX, R8, R9, RFLAGS), MXCSR's flags and the x87/MMX state, which the
        // runtime owns for the guest on this thread (see `crate::fpu`). `frame` is a live,
        // exclusively borrowed, 16-byte aligned `HostFrame`.
        unsafe {
            let f = std::mem::transmute::<usize, StubFn>(addr);
            f(frame);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Decoder, DecoderOptions};

    #[test]
    fn a_stub_runs_an_sse_instruction_on_the_frame() {
        let mut s = HostStubs::new();
        // paddd xmm3, xmm4
        let insn =
            Decoder::with_ip(64, &[0x66, 0x0F, 0xFE, 0xDC], 0, DecoderOptions::NONE).decode();
        let plan = translator::hostexec::plan(&insn).unwrap();
        let a = s.addr(&plan.stub.code).unwrap();
        assert_eq!(s.addr(&plan.stub.code), Some(a), "one copy per code");
        let mut f = HostFrame::default();
        f.xmm[1] = 0x0000_0001_0000_0002_0000_0003_0000_0004;
        f.xmm[2] = 0x0000_0010_0000_0020_0000_0030_0000_0040;
        assert!(s.call(a, &mut f));
        assert_eq!(f.xmm[1], 0x0000_0011_0000_0022_0000_0033_0000_0044);
        assert!(!s.call(0x1000, &mut f));
        assert!(s.contains(a) && !s.contains(a + 1));
    }
}
