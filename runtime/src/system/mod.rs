//! System virtualization: what the sensitive instructions, exceptions and interrupts do to
//! the virtual machine's privileged state.
//!
//! Every handler takes the [`Machine`](crate::machine::Machine) and the guest
//! [`CpuState`](translator::CpuState) and either completes the operation or returns the
//! guest exception it raises, *without having changed any guest state* (precise
//! exceptions: the caller leaves RIP at the instruction and delivers the exception).
//!
//! Module map:
//! - [`mode`]: the block mode ([`translator::Mode`]) derived from the CPU state, reset state.
//! - [`descriptors`]: GDT/LDT/IDT/TSS descriptor formats and reads.
//! - [`segments`]: segment-register loads with their checks, LLDT/LTR, LAR/LSL/VERR/VERW.
//! - [`far`]: far JMP/CALL/RET, call gates.
//! - [`delivery`]: exception and interrupt delivery through the IDT, IRET, double and triple
//!   faults.
//! - [`control`]: control and debug registers, descriptor-table registers, cache and TLB
//!   instructions.
//! - [`debug`]: DR0-DR3 breakpoint matching under DR7, DR6 status.
//! - [`msr`]: the model-specific registers.
//! - [`kvmclock`]: the KVM paravirtual clock (its MSRs and the pvclock structures).
//! - [`syscall`]: SYSCALL/SYSRET, SYSENTER/SYSEXIT, SWAPGS.
//! - [`io`]: CLI/STI, PUSHF/POPF, IN/OUT/INS/OUTS with IOPL and the TSS I/O bitmap.
//! - [`lean`]: IN/OUT and MOV CR8 at CPL 0, called without a hypercall's state round trip.
//! - [`hypercall`]: the entry point generated code and the trap handler call, dispatching a
//!   [`translator::sensitive::Hypercall`] to the modules above.
//! - [`resume`]: where a block goes on after a hypercall that ends it (the same block, the
//!   jump cache, or the dispatcher).

pub mod control;
pub mod debug;
pub mod delivery;
pub mod descriptors;
pub mod far;
pub mod hypercall;
pub mod io;
pub mod kvmclock;
pub mod lean;
pub mod mode;
pub mod msr;
pub mod mtrr;
pub mod resume;
pub mod segments;
pub mod syscall;
