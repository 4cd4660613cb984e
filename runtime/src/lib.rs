//! The popek virtual machine: guest RAM and the MMU entry point, devices on a port bus, the
//! ELF loader, the runtime helpers generated code calls, the DBT and interpreter engines with
//! their run loop, and statistics. The `popek` binary is a thin CLI over [`Vm`].
//!
//! ```
//! use runtime::{Engine, RunOutcome, SerialSink, Vm, VmConfig};
//!
//! let mut vm = Vm::new(VmConfig {
//!     engine: Engine::Interp,
//!     serial: SerialSink::Capture,
//!     instruction_limit: Some(1000),
//!     ..VmConfig::default()
//! })?;
//! // `jnz $`: spins forever, since ZF is clear at reset.
//! vm.write_phys(0x1000, &[0x75, 0xFE])?;
//! vm.cpu_mut().rip = 0x1000;
//! assert_eq!(vm.run(), RunOutcome::InstructionLimit);
//! assert_eq!(vm.stats().guest_insns, 1000);
//! # Ok::<(), runtime::VmError>(())
//! ```
//!
//! Module map: [`memory`] (RAM, addresses, MMU), [`devices`] (port bus, UART, debug exit),
//! [`console`] (console input for the UART, the terminal's escape keys),
//! [`loader`] (ELF, Multiboot, Linux), [`firmware`] (ACPI tables, fw_cfg), [`machine`] (what helpers operate on), [`helpers`] (the helper table),
//! [`cpuid`] and [`tsc`] (the virtual CPU model), [`engine`] (DBT, interpreter, exit
//! handling), [`fpu`] and [`stubs`] (the guest's floating-point state on the host, and the
//! host stubs that run its x87/MMX/SSE instructions), [`vm`] (the [`Vm`] API), [`stats`].

#![warn(missing_docs)]

pub mod boot;
pub mod console;
pub mod cpuid;
pub mod devices;
pub mod engine;
pub mod firmware;
pub mod fpu;
pub mod helpers;
pub mod loader;
pub mod machine;
pub mod memory;
pub mod mmu;
pub mod run_state;
pub mod stats;
pub mod stubs;
pub mod system;
pub mod trampoline;
pub mod tsc;
pub mod vm;

pub use boot::{BootSpec, Initrd, KernelFormat};
pub use console::{ConsoleWriter, Escape, Keystroke};
pub use devices::SerialSink;
pub use engine::{Engine, RunOutcome};
pub use loader::LoadError;
pub use stats::Stats;
pub use vm::{register_dump, KernelError, NmiHandle, StopHandle, Vm, VmConfig, VmError};

/// The embedded demo guest (`runtime/demo/demo.S`): prints a banner, the CPU vendor, the
/// primes below 1000 and a checksum on COM1, then writes 0 to the isa-debug-exit port.
pub const DEMO_KERNEL: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/demo.elf"));
