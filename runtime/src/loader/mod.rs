//! Kernel loaders: one per image format, behind [`KernelLoader`].
//!
//! A loader validates the whole image before it writes a byte of guest memory, so a rejected
//! image leaves RAM untouched.

pub mod elf;
pub mod linux;
pub mod multiboot;

pub use elf::{Elf, LoadError};
pub use linux::{LinuxBoot, LinuxError};
pub use multiboot::{MultibootBoot, MultibootError};

use crate::memory::GuestRam;

/// What a successful load produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadInfo {
    /// Guest address of the first instruction.
    pub entry: u64,
    /// Guest-physical `[start, end)` ranges written (file bytes and zeroed tails).
    pub ranges: Vec<(u64, u64)>,
}

/// A kernel image format.
pub trait KernelLoader {
    /// Validates `image` and loads it into `ram`.
    fn load(ram: &mut GuestRam, image: &[u8]) -> Result<LoadInfo, LoadError>;
}
