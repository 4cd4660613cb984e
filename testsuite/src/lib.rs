//! popek's oracles and guests. Correctness is measured against things other than popek:
//!
//! - [`diff`]: the differential tester, which runs each instruction form natively on the host
//!   CPU (at the same addresses as in the guest) and through each engine, and compares
//!   registers, flags and memory (binary `difftest`, tests `tests/diff.rs`, `tests/fuzz.rs`);
//! - [`guests`]: freestanding guest programs built at test time with the machine's gcc/as,
//!   and [`native`]: their host-executable twins, whose output is the oracle
//!   (`tests/guests.rs`);
//! - [`fuzzing`]: what the fuzz tests share;
//! - [`kernels`]: the Multiboot test kernels and their QEMU oracle;
//! - [`linux`]: Debian's kernel booted under popek and QEMU, with a shell conversation over
//!   the serial console (`tests/linux.rs`, the `linux_boot` benchmark).
//!
//! ```no_run
//! let g = testsuite::guests::by_name("sieve").unwrap();
//! let elf = testsuite::guests::build_guest(g, 1).unwrap();
//! assert!(elf.exists());
//! ```

pub mod coldcode;
pub mod diff;
pub mod fuzzing;
pub mod guests;
pub mod kernels;
pub mod linux;
pub mod native;
