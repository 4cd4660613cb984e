//! The host-stub cache: executable copies of the stubs [`translator::hostexec`] builds, one
//! per distinct machine code, at addresses that stay valid for the machine's life (generated
//! code calls them directly).
//!
//! Invariants:
//! - A stub is never freed or moved while the machine lives, so an address handed out once
//!   stays callable; the cache refuses new stubs when full instead of recycling.
//! - [`HostStubs::call`] only calls addresses this cache handed out (a helper's argument
//!   comes from generated code, but is checked anyway).

use std::collections::HashMap;

use cache::exec_mem::ExecMemory;
use translator::state::HostFrame;

/// Bytes of executable memory for stubs. A stub is under 100 bytes and the distinct ones are
/// bounded by the opcode × immediate forms a guest can use (a few tens of thousands at most).
const STUB_BYTES: usize = 8 << 20;

/// The signature of every stub.
type StubFn = unsafe extern "C" fn(*mut HostFrame);

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
