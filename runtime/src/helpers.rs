//! The runtime side of [`Helper`]: one function, [`run_helper`], implements every helper for
//! both engines; `extern "C"` shims give generated code one entry point per helper.
//!
//! Invariants:
//! - A helper that fails (guest exception, device stop, refused store to code) leaves the
//!   guest state of the start of the instruction and reports through `cpu.status`; it never
//!   partially performs a store.
//! - No panic unwinds into generated code: every shim runs the helper under
//!   [`std::panic::catch_unwind`] and turns a panic into a stop with an internal-error note.
//! - Shims find the [`Machine`] through `CpuState::runtime`, which the engine sets to the
//!   machine that owns the executing code right before entering it.

use std::panic::{catch_unwind, AssertUnwindSafe};

use translator::semantics::muldiv::divide;
use translator::state::rflags;
use translator::{CpuState, Exception, ExitReason, Helper};

use crate::machine::{Machine, StopRequest, WriteOutcome};
use crate::memory::{Access, GuestVirt};
use crate::system::debug::AccessKind;

/// Calls of each helper, indexed by `Helper as usize`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HelperCounters(pub [u64; Helper::ALL.len()]);

impl HelperCounters {
    /// Calls of `h`.
    pub fn get(&self, h: Helper) -> u64 {
        self.0[h as usize]
    }
}

/// Runs helper `h` for `cpu` on machine `m`. Called by the interpreter directly and by
/// generated code through the shims; see [`Helper`] for each helper's arguments.
pub fn run_helper(m: &mut Machine, cpu: &mut CpuState, h: Helper, args: [u64; 3]) -> u64 {
    m.counters.0[h as usize] += 1;
    let [a, b, c] = args;
    // Single-stepped instructions report their data accesses to the debug registers (only
    // the step interpreter runs while DR7 enables a breakpoint, and it reaches memory here).
    match h {
        Helper::MemRead => m.debug_accesses.record(a, b, AccessKind::Read),
        Helper::MemWrite => m.debug_accesses.record(a, b, AccessKind::Write),
        _ => {}
    }
    match h {
        Helper::Hypercall => hypercall(m, cpu, args),
        Helper::MemRead if b == 16 => {
            let mut buf = [0u8; 16];
            match m.read_virt_bytes_for(cpu, a, &mut buf, Access::Read) {
                Ok(()) => {
                    let v = u128::from_le_bytes(buf);
                    cpu.helper_out[0] = (v >> 64) as u64;
                    v as u64
                }
                Err(e) => {
                    cpu.raise(e);
                    0
                }
            }
        }
        Helper::MemRead => match m.read_virt_for(cpu, a, b as usize, Access::Read) {
            Ok(v) => v,
            Err(e) => {
                cpu.raise(e);
                0
            }
        },
        Helper::MemWrite => {
            let r = if b == 16 {
                let v = u128::from(c) | u128::from(cpu.helper_out[0]) << 64;
                m.write_virt_bytes_for(cpu, a, &v.to_le_bytes())
            } else {
                m.write_virt_for(cpu, a, b as usize, c)
            };
            match r {
                Ok(WriteOutcome::Done) => {
                    if std::mem::take(&mut m.run.interrupt_check) {
                        cpu.icount_limit = 0;
                    }
                }
                Ok(WriteOutcome::CodeModified) => cpu.status = ExitReason::CodeModified as u64,
                Err(e) => cpu.raise(e),
            }
            0
        }
        Helper::FlagsMaterialize => {
            cpu.settle_flags();
            cpu.rflags & rflags::ARITH
        }
        Helper::DivU | Helper::DivS => {
            let size = cpu.helper_out[3] as u32;
            match divide(h == Helper::DivS, size, a, b, c) {
                Ok((q, r)) => {
                    cpu.helper_out[0] = r;
                    q
                }
                Err(e) => {
                    cpu.raise(e);
                    0
                }
            }
        }
        Helper::Lookup => lookup(m, cpu, a),
        Helper::SimdChecked => {
            crate::fpu::simd_checked(m, cpu, a);
            0
        }
        Helper::FpuExec => {
            crate::fpu::fpu_exec(m, cpu, a, b);
            0
        }
        Helper::Mxcsr => crate::fpu::mxcsr_access(cpu, a, b),
        Helper::FxSave => {
            crate::fpu::fxsave(cpu, a != 0);
            0
        }
        Helper::FxRstor => {
            crate::fpu::fxrstor(cpu, a != 0, b);
            0
        }
        Helper::ProbeWrite => {
            match m.probe_write_for(cpu, a, b as usize) {
                Ok(true) => cpu.status = ExitReason::CodeModified as u64,
                Ok(false) => {}
                Err(e) => cpu.raise(e),
            }
            0
        }
        Helper::RepString => m.rep_string(cpu, a, b, c),
        Helper::LeanHypercall => crate::system::lean::lean(m, cpu, args),
        Helper::FaultIf => {
            if a != 0 {
                // Semantics ask only for architectural vectors; anything else is #UD.
                let e = Exception::from_parts(b as u8, c as u32, 0);
                cpu.raise(e.unwrap_or(Exception::InvalidOpcode));
            }
            0
        }
    }
}

/// [`Helper::Hypercall`] (counted by the caller), the hottest helper, on its own: generated
/// code reaches it without the rest of [`run_helper`] (see [`shim`]).
fn hypercall(m: &mut Machine, cpu: &mut CpuState, args: [u64; 3]) -> u64 {
    let (r, fx) = crate::system::hypercall::entry(m, cpu, args);
    m.run.post(cpu, fx);
    r
}

/// Indirect-branch lookup: the host code of the block for guest `target` in the current
/// mode, or the unlinked exit stub. Never translates.
pub(crate) fn lookup(m: &mut Machine, cpu: &CpuState, target: u64) -> u64 {
    let mode = crate::system::mode::mode(cpu);
    let Some(code) = m.code_tracking() else {
        return 0;
    };
    let stub = code.exit_stub().0 as u64;
    if mode.cs_based {
        // CS.base + EIP is not a virtual PC the cache knows: the dispatcher finds the code.
        return stub;
    }
    let mode = mode.key();
    if let Some(host) = code.jump_target(target, mode) {
        return host.0 as u64;
    }
    if cpu.cr0 & translator::state::cr::CR0_PG != 0 {
        // The page walk (and its #PF) belongs to the dispatcher.
        return stub;
    }
    let Ok(phys) = m.mmu.translate(GuestVirt(target), Access::Fetch) else {
        return stub;
    };
    let key = cache::BlockKey {
        phys_pc: phys.0,
        virt_pc: target,
        mode,
    };
    // A cold block (no host code) runs from the dispatcher.
    m.code_tracking_mut()
        .and_then(|code| code.find_compiled(key))
        .map_or(stub, |host| host.0 as u64)
}

// -------------------------------------------------------------------- extern "C" shims

/// The calling shape generated code uses for every helper.
pub type HelperFn = extern "C" fn(*mut CpuState, u64, u64, u64) -> u64;

/// Runs `h` for generated code. See the module invariants.
pub(crate) fn shim(h: Helper, cpu: *mut CpuState, args: [u64; 3]) -> u64 {
    match h {
        Helper::Hypercall => guarded(h, cpu, |m, cpu| {
            m.counters.0[h as usize] += 1;
            hypercall(m, cpu, args)
        }),
        _ => guarded(h, cpu, |m, cpu| run_helper(m, cpu, h, args)),
    }
}

/// Runs `body` (helper `h`) on the CPU state at `cpu` and the machine its `runtime` names,
/// turning a panic into a stop with an internal-error note instead of unwinding.
fn guarded(
    h: Helper,
    cpu: *mut CpuState,
    body: impl FnOnce(&mut Machine, &mut CpuState) -> u64,
) -> u64 {
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: generated code passes the `CpuState` pointer it was entered with, which the
        // engine derived from a live `&mut CpuState` and does not use while the block runs.
        let cpu = unsafe { &mut *cpu };
        if cpu.runtime == 0 {
            cpu.status = ExitReason::Stop as u64;
            return 0;
        }
        // SAFETY: the engine set `runtime` to its `Machine` right before entering generated
        // code and holds no reference to it until the block returns; the machine does not
        // contain the `CpuState`, so the two exclusive borrows do not overlap.
        let m = unsafe { &mut *(cpu.runtime as *mut Machine) };
        body(m, cpu)
    }));
    match result {
        Ok(v) => v,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            // SAFETY: as above; the panicking closure's borrows ended when it unwound.
            let cpu = unsafe { &mut *cpu };
            cpu.status = ExitReason::Stop as u64;
            if cpu.runtime != 0 {
                // SAFETY: as above.
                let m = unsafe { &mut *(cpu.runtime as *mut Machine) };
                let why = format!("panic in the {} helper: {what}", h.name());
                m.run.post(
                    cpu,
                    crate::run_state::Effects::stop(StopRequest::Internal(why)),
                );
                if h == Helper::Lookup {
                    // Lookup's result is jumped to: give it the exit stub, which returns.
                    return m.code_tracking().map_or(0, |c| c.exit_stub().0 as u64);
                }
            }
            0
        }
    }
}

macro_rules! shims {
    ($($name:ident => $h:ident),* $(,)?) => {
        $(
            extern "C" fn $name(cpu: *mut CpuState, a: u64, b: u64, c: u64) -> u64 {
                shim(Helper::$h, cpu, [a, b, c])
            }
        )*

        /// The host address of the `extern "C"` shim of `h`, for generated code to call.
        pub fn helper_addr(h: Helper) -> usize {
            let f: HelperFn = match h {
                $(Helper::$h => $name,)*
            };
            f as usize
        }
    };
}

shims! {
    shim_mem_read => MemRead,
    shim_mem_write => MemWrite,
    shim_flags => FlagsMaterialize,
    shim_div => DivU,
    shim_idiv => DivS,
    shim_hypercall => Hypercall,
    shim_lookup => Lookup,
    shim_fault_if => FaultIf,
    shim_simd_checked => SimdChecked,
    shim_fpu_exec => FpuExec,
    shim_mxcsr => Mxcsr,
    shim_fxsave => FxSave,
    shim_fxrstor => FxRstor,
    shim_probe_write => ProbeWrite,
    shim_rep_string => RepString,
    shim_lean_hypercall => LeanHypercall,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::SerialSink;
    use crate::memory::{GuestPhys, MIN_RAM};
    use rflags::*;
    use translator::sensitive::{Hypercall as H, HypercallArgs};
    use translator::Exception;

    /// Packed hypercall arguments of `kind` for an instruction of `len` bytes.
    fn args(kind: H, len: u8) -> u64 {
        HypercallArgs {
            kind,
            len,
            op_size: 4,
            addr_size: 8,
            extra: 0,
            extra2: 0,
            imm: 0,
        }
        .encode()
    }

    fn setup() -> (Box<Machine>, Box<CpuState>) {
        let m = Box::new(Machine::new(MIN_RAM, SerialSink::Capture).unwrap());
        (m, Box::default())
    }

    #[test]
    fn cli_sti_flags_and_materialize() {
        let (mut m, mut cpu) = setup();
        run_helper(&mut m, &mut cpu, Helper::Hypercall, [args(H::Sti, 1), 0, 0]);
        assert_ne!(cpu.rflags & IF, 0);
        run_helper(&mut m, &mut cpu, Helper::Hypercall, [args(H::Cli, 1), 0, 0]);
        assert_eq!(cpu.rflags & IF, 0);
        cpu.rflags |= CF;
        assert_eq!(
            run_helper(&mut m, &mut cpu, Helper::FlagsMaterialize, [0; 3]),
            CF
        );
        assert_eq!(m.hypercalls[H::Cli as usize], 1);
    }

    #[test]
    fn cpuid_returns_the_model_in_helper_out() {
        let (mut m, mut cpu) = setup();
        run_helper(
            &mut m,
            &mut cpu,
            Helper::Hypercall,
            [args(H::Cpuid, 2), 0, 0],
        );
        assert_eq!(cpu.gpr[0], crate::cpuid::MAX_BASIC_LEAF as u64);
        let [ebx, ecx, edx] = [cpu.gpr[3], cpu.gpr[1], cpu.gpr[2]];
        let mut s = Vec::new();
        for r in [ebx, edx, ecx] {
            s.extend_from_slice(&(r as u32).to_le_bytes());
        }
        assert_eq!(&s, crate::cpuid::vendor_id(crate::cpuid::vendor()));
    }

    #[test]
    fn divide_helpers() {
        let (mut m, mut cpu) = setup();
        cpu.helper_out[3] = 4;
        assert_eq!(run_helper(&mut m, &mut cpu, Helper::DivU, [0, 100, 7]), 14);
        assert_eq!(cpu.helper_out[0], 2);
        assert_eq!(cpu.status, 0);
        // -7 / 2 = -3 rem -1 (32-bit).
        let q = run_helper(
            &mut m,
            &mut cpu,
            Helper::DivS,
            [0xFFFF_FFFF, (-7i32) as u32 as u64, 2],
        );
        assert_eq!(
            (q, cpu.helper_out[0]),
            ((-3i32) as u32 as u64, (-1i32) as u32 as u64)
        );
        run_helper(&mut m, &mut cpu, Helper::DivU, [0, 1, 0]);
        assert_eq!(cpu.status, ExitReason::Exception as u64);
        assert_eq!(cpu.exception(), Some(Exception::DivideError));
    }

    #[test]
    fn memory_helpers_fault_with_page_faults() {
        let (mut m, mut cpu) = setup();
        run_helper(&mut m, &mut cpu, Helper::MemWrite, [0x1000, 4, 0xDEAD_BEEF]);
        assert_eq!(cpu.status, 0);
        assert_eq!(
            run_helper(&mut m, &mut cpu, Helper::MemRead, [0x1000, 2, 0]),
            0xBEEF
        );
        run_helper(&mut m, &mut cpu, Helper::MemRead, [MIN_RAM - 1, 2, 0]);
        assert_eq!(
            cpu.exception(),
            Some(Exception::PageFault {
                addr: MIN_RAM,
                code: 0
            })
        );
        cpu.status = 0;
        run_helper(&mut m, &mut cpu, Helper::MemWrite, [MIN_RAM, 1, 0]);
        assert_eq!(
            cpu.exception(),
            Some(Exception::PageFault {
                addr: MIN_RAM,
                code: 2
            })
        );
    }

    #[test]
    fn port_helpers_reach_devices_and_debug_exit_stops() {
        let (mut m, mut cpu) = setup();
        let port = |kind, size| {
            let a = HypercallArgs {
                op_size: size,
                ..HypercallArgs::decode(args(kind, 1)).unwrap()
            };
            a.encode()
        };
        let hc = Helper::Hypercall;
        run_helper(&mut m, &mut cpu, hc, [port(H::Out, 1), 0x3F8, b'x' as u64]);
        assert_eq!(m.serial().captured(), b"x");
        let lsr = run_helper(&mut m, &mut cpu, hc, [port(H::In, 1), 0x3FD, 0]);
        assert_ne!(lsr & 0x20, 0, "THR empty");
        assert_eq!(
            run_helper(&mut m, &mut cpu, hc, [port(H::In, 2), 0x1234, 0]),
            0xFFFF
        );
        run_helper(&mut m, &mut cpu, hc, [port(H::Out, 1), 0x80, 0x11]);
        assert_eq!(cpu.status, 0);
        run_helper(&mut m, &mut cpu, hc, [port(H::Out, 4), 0xF4, 0x2A]);
        assert_eq!(cpu.status, ExitReason::Stop as u64);
        assert_eq!(m.run.pending.stop, Some(StopRequest::DebugExit(0x2A)));
        assert_eq!(m.bus.stats().unclaimed_reads, 1);
    }

    #[test]
    fn rdtsc_is_monotonic() {
        let (mut m, mut cpu) = setup();
        let mut read = || {
            run_helper(
                &mut m,
                &mut cpu,
                Helper::Hypercall,
                [args(H::Rdtsc, 2), 0, 0],
            );
            (cpu.gpr[2] << 32) | cpu.gpr[0]
        };
        let a = read();
        let b = read();
        assert!(b > a);
    }

    #[test]
    fn shims_reach_the_machine_through_cpu_runtime() {
        let (mut m, mut cpu) = setup();
        m.ram
            .write_le(GuestPhys(0x2000), 8, 0x0123_4567_89AB_CDEF)
            .unwrap();
        cpu.runtime = &mut *m as *mut Machine as usize;
        // SAFETY: the address is one of our shims, whose signature is `HelperFn`.
        let read: HelperFn = unsafe { std::mem::transmute(helper_addr(Helper::MemRead)) };
        let cpu_ptr: *mut CpuState = &mut *cpu;
        assert_eq!(read(cpu_ptr, 0x2000, 8, 0), 0x0123_4567_89AB_CDEF);
        // Every helper has a distinct shim.
        let mut addrs: Vec<usize> = Helper::ALL.iter().map(|&h| helper_addr(h)).collect();
        addrs.sort_unstable();
        addrs.dedup();
        assert_eq!(addrs.len(), Helper::ALL.len());
    }

    #[test]
    fn a_panicking_helper_stops_the_vm_instead_of_unwinding() {
        let (mut m, mut cpu) = setup();
        cpu.runtime = &mut *m as *mut Machine as usize;
        let cpu_ptr: *mut CpuState = &mut *cpu;
        let r = guarded(Helper::Hypercall, cpu_ptr, |_, _| panic!("device exploded"));
        assert_eq!(r, 0);
        assert_eq!(cpu.status, ExitReason::Stop as u64);
        let Some(StopRequest::Internal(note)) = &m.run.pending.stop else {
            panic!(
                "expected an internal-error stop, got {:?}",
                m.run.pending.stop
            );
        };
        assert!(
            note.contains("hypercall helper") && note.contains("device exploded"),
            "{note}"
        );
    }

    #[test]
    fn a_shim_without_a_machine_stops_instead_of_crashing() {
        let mut cpu = CpuState::default();
        // SAFETY: as above.
        let f: HelperFn = unsafe { std::mem::transmute(helper_addr(Helper::Hypercall)) };
        assert_eq!(f(&mut cpu, 0, 0, 0), 0);
        assert_eq!(cpu.status, ExitReason::Stop as u64);
    }
}
