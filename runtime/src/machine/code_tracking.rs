//! [`CodeTracking`]: what the machine layer and the helpers need to know about translated
//! code — whether a store touches it, how to drop it, and the indirect-branch lookup — and
//! nothing else. The engine that translates code implements it on its code cache and
//! installs it with [`super::Machine::set_code_tracking`]; without one (a bare machine,
//! the host, tests) every store is plain data.
//!
//! Invariants:
//! - The machine only *holds* the tracking object; it never names the concrete type. The
//!   engine that installed it is the only code that looks through it to its cache (by
//!   type, [`super::Machine::code_tracking_as`]), so the cache's bookkeeping stays the
//!   engine's business.
//! - Every method is called between generated-code instructions only from the machine's
//!   own `&mut self` (a store's slow path, INVLPG, a TLB fill, a helper): Rust's borrow of
//!   the machine makes a second, overlapping use impossible, with no runtime check to fail.
//! - [`CodeTracking::invalidate`] is immediate: when it returns, no link slot, jump-cache
//!   entry or block map entry reaches code overlapping the range, so a store into code
//!   unlinks the blocks before any other generated code can run.
//! - Addresses given out ([`CodeTracking::exit_stub`], the host code from
//!   [`CodeTracking::jump_target`] and [`CodeTracking::find_compiled`]) stay valid while
//!   the object is installed and the installing engine is alive.

use std::any::Any;

use cache::{BlockKey, HostCode};

/// Byte-exact tracking of translated code, as the machine layer sees it. See the module
/// invariants.
pub trait CodeTracking: Any + Send {
    /// Whether the 4 KiB guest-physical page holding `phys` holds translated code (a soft-TLB
    /// fill keeps stores to such a page off the inline fast path).
    fn page_has_code(&self, phys: u64) -> bool;

    /// Whether any byte of guest-physical `[start, end)` is translated code (data sharing a
    /// page with code is not).
    fn bytes_have_code(&self, start: u64, end: u64) -> bool;

    /// Drops every translation whose bytes overlap guest-physical `[start, end)`, unlinking
    /// it everywhere. The machine calls it only for ranges that
    /// [`CodeTracking::bytes_have_code`] says hold code.
    fn invalidate(&mut self, start: u64, end: u64);

    /// Forgets what was cached for guest-virtual PCs in `[start, end)` (INVLPG: the mapping
    /// that found those blocks may be gone).
    fn forget_virtual(&mut self, start: u64, end: u64);

    /// Forgets what was cached for every guest-virtual PC (a CR3 write that kept the running
    /// block's code where it was: every other mapping may have changed), but with
    /// `keep_global` what was found through global translations, which a non-global flush
    /// keeps.
    fn forget_all_virtual(&mut self, keep_global: bool);

    /// The compiled code cached for guest-virtual `pc` in mode `mode` (the jump cache
    /// generated code probes inline), if any.
    fn jump_target(&self, pc: u64, mode: u32) -> Option<HostCode>;

    /// The compiled code of the block `key`, remembered for `key.virt_pc` so the next
    /// inline probe hits; `None` if there is none (absent, or run another way).
    fn find_compiled(&mut self, key: BlockKey) -> Option<HostCode>;

    /// The unlinked exit stub: generated code jumping there returns to the dispatcher.
    fn exit_stub(&self) -> HostCode;
}

#[cfg(test)]
pub(crate) mod fake {
    //! A second implementation for the machine's tests: code is a set of byte ranges, and
    //! every call that could change anything is logged.

    use super::*;

    /// Tracks `code`; logs invalidations and virtual-range forgets.
    #[derive(Debug, Default)]
    pub struct FakeTracking {
        /// Guest-physical `[start, end)` ranges holding "code".
        pub code: Vec<(u64, u64)>,
        /// Every [`CodeTracking::invalidate`] range, in order.
        pub invalidated: Vec<(u64, u64)>,
        /// Every [`CodeTracking::forget_virtual`] range, in order.
        pub forgotten: Vec<(u64, u64)>,
    }

    impl CodeTracking for FakeTracking {
        fn page_has_code(&self, phys: u64) -> bool {
            let page = phys & !0xfff;
            self.code
                .iter()
                .any(|&(s, e)| s < page + 0x1000 && page < e)
        }
        fn bytes_have_code(&self, start: u64, end: u64) -> bool {
            self.code.iter().any(|&(s, e)| s < end && start < e)
        }
        fn invalidate(&mut self, start: u64, end: u64) {
            self.invalidated.push((start, end));
            self.code.retain(|&(s, e)| !(s < end && start < e));
        }
        fn forget_virtual(&mut self, start: u64, end: u64) {
            self.forgotten.push((start, end));
        }
        fn forget_all_virtual(&mut self, _keep_global: bool) {
            self.forgotten.push((0, u64::MAX));
        }
        fn jump_target(&self, _pc: u64, _mode: u32) -> Option<HostCode> {
            None
        }
        fn find_compiled(&mut self, _key: BlockKey) -> Option<HostCode> {
            None
        }
        fn exit_stub(&self) -> HostCode {
            HostCode(0x1000)
        }
    }

    /// The fake installed in `m`.
    pub fn installed(m: &crate::machine::Machine) -> &FakeTracking {
        m.code_tracking_as()
            .expect("the installed tracking is the fake")
    }
}
