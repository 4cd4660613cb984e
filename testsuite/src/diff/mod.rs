//! The differential tester: random instances of every instruction form the translator
//! supports, executed on the host CPU and in popek's engines, compared register for register,
//! flag for flag (undefined flags included) and byte for byte.
//!
//! How a case runs (see [`native`] and [`guest`]): the instruction is placed at the same
//! address in a host executable page and in guest RAM, and the memory it touches lives at the
//! same addresses in both (fixed host mappings at [`layout::MEM_BASE`], identity-mapped guest
//! RAM), so effective addresses, RIP-relative operands and branch targets agree. Natively,
//! landing pads after the instruction record where control went; in the guest every other
//! code byte is `hlt`, so the halt address names the next RIP.
//!
//! ```no_run
//! use testsuite::diff::{run, Options};
//! let opts = Options { cases: 1000, filter: Some("shl".into()), ..Options::default() };
//! let summary = run(&opts, &mut std::io::stderr()).unwrap();
//! for e in &summary.engines {
//!     println!("{}", e.line()); // e.g. `interp: 1000 passed, 0 failed`
//! }
//! ```
//!
//! Invariants: the fixed host addresses below are reserved for the tester in any process
//! that uses it (creation panics if something else is mapped there); one native run at a time
//! per process.

pub mod case;
pub mod forms;
pub mod fpreport;
pub mod guest;
pub mod native;
pub mod report;
pub mod rng;
pub mod runner;

pub use runner::{
    pristine_pattern, run, run_single, EngineSummary, Options, SingleRun, Summary, Tally,
};

/// Fixed addresses shared by the host and the guest.
pub mod layout {
    /// Start of the compared area: data pages then stack pages.
    pub const MEM_BASE: u64 = 0x0010_0000;
    /// Bytes of data pages.
    pub const DATA_SIZE: u64 = 0x3000;
    /// Memory operands target the middle data page, so bounded offsets around it stay inside.
    pub const HOT_BASE: u64 = MEM_BASE + 0x1000;
    /// Size of the hot page.
    pub const HOT_SIZE: u64 = 0x1000;
    /// Start of the stack pages.
    pub const STACK_BASE: u64 = MEM_BASE + DATA_SIZE;
    /// Bytes of stack pages.
    pub const STACK_SIZE: u64 = 0x3000;
    /// Initial RSP values are at most this (and at least 256 bytes below it).
    pub const STACK_TOP: u64 = STACK_BASE + 0x2000;
    /// Bytes of the compared area.
    pub const MEM_SIZE: u64 = DATA_SIZE + STACK_SIZE;
    /// Native only: where landing pads record the landing address and find the exit.
    pub const HARNESS_PAGE: u64 = 0x0010_8000;
    /// Start of the two code pages.
    pub const CODE_BASE: u64 = 0x0020_0000;
    /// Bytes of code pages.
    pub const CODE_SIZE: u64 = 0x2000;
    /// Bytes of a native landing pad.
    pub const PAD_LEN: usize = 18;
    /// Guest RAM size (covers everything above).
    pub const GUEST_MEM_BYTES: u64 = 0x0040_0000;
}
