//! Sensitive instructions whose handlers read and write no guest register, flag or RIP:
//! IN/OUT and MOV to/from CR8 where the block runs at CPL 0
//! ([`translator::Helper::LeanHypercall`]). Generated code calls them without the state
//! round trip of a hypercall (write back, reload), so `cpu`'s registers, flags and RIP are
//! stale here and nothing below reads them. The privilege state they do read (CPL, IOPL,
//! VM, TR, CR8) is never held in a block's variables.
//!
//! Invariants: as for a hypercall, a stop or an exception leaves the instruction undone
//! (`status`), and the block's fault exit writes back the state of its start.

use translator::sensitive::{Hypercall, HypercallArgs};
use translator::state::ExitReason;
use translator::CpuState;

use super::control;
use super::hypercall::{record_port, unknown};
use super::io::{port_in, port_out, request_interrupt_check, IoOutcome};
use crate::machine::Machine;
use crate::run_state::Effects;

/// Runs the lean hypercall `args` (packed [`HypercallArgs`], operand, value) and returns
/// the value for its destination.
pub fn lean(m: &mut Machine, cpu: &mut CpuState, args: [u64; 3]) -> u64 {
    let a = match HypercallArgs::decode(args[0]) {
        Some(a) if is_lean(&a) => a,
        _ => {
            let (r, fx) = unknown(cpu, args[0]);
            m.run.post(cpu, fx);
            return r;
        }
    };
    m.hypercalls[a.kind as usize & 63] += 1;
    let done = match a.kind {
        Hypercall::In | Hypercall::Out => {
            let port = args[1] as u16;
            record_port(m, port, a.op_size);
            if a.kind == Hypercall::In {
                port_in(m, cpu, port, a.op_size).map(|v| (v, IoOutcome::Done))
            } else {
                port_out(m, cpu, port, a.op_size, args[2]).map(|o| (0, o))
            }
        }
        Hypercall::MovToCr => control::write_cr(m, cpu, 8, args[1]).map(|()| (0, IoOutcome::Done)),
        _ => control::read_cr(m, cpu, 8).map(|v| (v, IoOutcome::Done)),
    };
    let fx = match done {
        Ok((v, IoOutcome::Done)) => {
            if std::mem::take(&mut m.run.interrupt_check) {
                request_interrupt_check(cpu);
            }
            return v;
        }
        Ok((_, IoOutcome::Resume)) => {
            // The instruction again, from the dispatcher (the fault exit sets RIP to it).
            cpu.status = ExitReason::Jump as u64;
            Effects::default()
        }
        Ok((_, IoOutcome::Stop(req))) => {
            cpu.status = ExitReason::Stop as u64;
            Effects::stop(req)
        }
        Err(e) => {
            cpu.raise(e);
            Effects::default()
        }
    };
    m.run.post(cpu, fx);
    0
}

/// The kinds the translator makes lean: IN, OUT, MOV to/from CR8.
fn is_lean(a: &HypercallArgs) -> bool {
    match a.kind {
        Hypercall::In | Hypercall::Out => true,
        Hypercall::MovToCr | Hypercall::MovFromCr => a.extra == 8,
        _ => false,
    }
}
