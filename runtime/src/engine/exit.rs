//! Exit handling: what the dispatcher does when a block (or an interpreted instruction)
//! returns. A free function of the machine, the CPU state and the exit value, so tests feed it
//! synthetic exits.

use iced_x86::{Decoder, DecoderOptions, Formatter, GasFormatter};
use translator::state::rflags;
use translator::{CpuState, Exception, ExitReason};

use super::RunOutcome;
use crate::machine::{Machine, StopRequest};

/// What the dispatcher does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitAction {
    /// Continue at `cpu.rip`. `link_from` is the link slot of the direct exit taken, to be
    /// linked to the block at `cpu.rip` once it is found or translated.
    Continue {
        /// Address of the slot the exit jumped through.
        link_from: Option<u64>,
    },
    /// Execute the instruction at `cpu.rip` with the interpreter, then continue: a store hit
    /// translated code and was not performed (the code has been invalidated), or a block
    /// would overrun the instruction budget that a few more instructions fit in.
    SingleStep,
    /// Stop the run.
    Stop(RunOutcome),
}

/// Handles the exit `exit` (a raw [`ExitReason`] value) of a block or an interpreted
/// instruction.
pub fn handle_exit(m: &mut Machine, cpu: &mut CpuState, exit: u64) -> ExitAction {
    super::vcpu::settle(m);
    // A stop request wins over whatever the block reported (e.g. a panicked Lookup, whose
    // block then left through the exit stub).
    if let Some(req) = m.run.stop.take() {
        return ExitAction::Stop(stop_outcome(req));
    }
    let Some(reason) = ExitReason::from_u64(exit) else {
        return ExitAction::Stop(RunOutcome::InternalError(format!(
            "generated code returned an unknown exit reason {exit} at rip {:#x}",
            cpu.rip
        )));
    };
    let rip = cpu.rip;
    ExitAction::Stop(match reason {
        ExitReason::Jump => {
            return ExitAction::Continue {
                link_from: (cpu.link_slot != 0).then_some(cpu.link_slot),
            }
        }
        ExitReason::Budget if cpu.icount >= m.run.insn_limit => RunOutcome::InstructionLimit,
        // The block's instructions do not all fit in the user's budget, but some do.
        ExitReason::Budget if cpu.icount_limit >= m.run.insn_limit => {
            return ExitAction::SingleStep
        }
        // The end of a slice, or a handler asked for an interrupt check: the run loop
        // services the devices before the next block.
        ExitReason::Budget => {
            if cpu.icount_limit > cpu.icount {
                // A block larger than the rest of the slice: let it run.
                cpu.icount_limit = cpu.icount;
            }
            return ExitAction::Continue { link_from: None };
        }
        ExitReason::CodeModified => {
            for (start, end) in std::mem::take(&mut m.modified) {
                m.invalidate_code(start, end);
            }
            return ExitAction::SingleStep;
        }
        ExitReason::Retry => return ExitAction::Continue { link_from: None },
        // The engine queued the optimized compile before this; the block runs again.
        ExitReason::Promote => return ExitAction::Continue { link_from: None },
        ExitReason::Halt => RunOutcome::Halted,
        ExitReason::Exception => match cpu.exception() {
            Some(exc) => match super::vcpu::raise(m, cpu, exc) {
                Ok(()) => return ExitAction::Continue { link_from: None },
                Err(outcome) => outcome,
            },
            None => RunOutcome::InternalError(format!(
                "exception with unknown vector {} at rip {rip:#x}",
                cpu.exc_vector
            )),
        },
        ExitReason::Unsupported => {
            let bytes = m.insn_bytes_for(cpu, rip);
            let bitness = crate::system::mode::mode(cpu).bitness;
            if m.stop_on_unsupported {
                let what = describe(&bytes, rip, bitness);
                return ExitAction::Stop(RunOutcome::Unsupported { rip, bytes, what });
            }
            // A CPU without the feature raises #UD: the guest probes and carries on.
            *m.unsupported_uds
                .entry(mnemonic_name(&bytes, rip, bitness))
                .or_default() += 1;
            match super::vcpu::raise(m, cpu, Exception::InvalidOpcode) {
                Ok(()) => return ExitAction::Continue { link_from: None },
                Err(outcome) => outcome,
            }
        }
        ExitReason::Stop => {
            RunOutcome::InternalError(format!("stop without a reason at rip {rip:#x}"))
        }
    })
}

/// The run outcome of a stop request.
pub fn stop_outcome(req: StopRequest) -> RunOutcome {
    match req {
        StopRequest::DebugExit(v) => RunOutcome::DebugExit(v),
        StopRequest::Internal(e) => RunOutcome::InternalError(e),
        StopRequest::TripleFault(report) => RunOutcome::TripleFault { report },
        StopRequest::PowerOff => RunOutcome::PowerOff,
        StopRequest::Reset => RunOutcome::Reset,
    }
}

/// Whether a HLT left interrupts enabled (so only an interrupt, which no device can raise
/// yet, could have woken the guest).
pub fn halted_with_interrupts(cpu: &CpuState) -> bool {
    cpu.rflags & rflags::IF != 0
}

/// The lower-case mnemonic of the instruction in `bytes` ("invalid" if it does not decode).
pub fn mnemonic_name(bytes: &[u8], rip: u64, bitness: u32) -> String {
    let insn = Decoder::with_ip(bitness, bytes, rip, DecoderOptions::NONE).decode();
    if insn.is_invalid() {
        return "invalid".into();
    }
    format!("{:?}", insn.mnemonic()).to_ascii_lowercase()
}

/// "`mnemonic operands`" of the instruction in `bytes`, or why it cannot be decoded.
pub fn describe(bytes: &[u8], rip: u64, bitness: u32) -> String {
    if bytes.is_empty() {
        return "instruction bytes cannot be fetched".into();
    }
    let insn = Decoder::with_ip(bitness, bytes, rip, DecoderOptions::NONE).decode();
    if insn.is_invalid() {
        return "undecodable instruction".into();
    }
    let mut text = String::new();
    GasFormatter::new().format(&insn, &mut text);
    format!("`{text}` is not implemented by the translator")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::SerialSink;
    use crate::memory::{GuestPhys, MIN_RAM};

    fn machine() -> Machine {
        Machine::new(MIN_RAM, SerialSink::Capture).unwrap()
    }

    fn exit(m: &mut Machine, cpu: &CpuState, r: ExitReason) -> ExitAction {
        let mut cpu = cpu.clone();
        handle_exit(m, &mut cpu, r as u64)
    }

    #[test]
    fn jumps_continue_and_carry_the_link_slot() {
        let mut m = machine();
        let mut cpu = CpuState::default();
        assert_eq!(
            exit(&mut m, &cpu, ExitReason::Jump),
            ExitAction::Continue { link_from: None }
        );
        cpu.link_slot = 0x7000_1000;
        assert_eq!(
            exit(&mut m, &cpu, ExitReason::Jump),
            ExitAction::Continue {
                link_from: Some(0x7000_1000)
            }
        );
    }

    #[test]
    fn budget_stops_only_at_the_limit() {
        let mut m = machine();
        m.run.insn_limit = 10;
        let mut cpu = CpuState {
            icount: 5,
            icount_limit: 10,
            ..Default::default()
        };
        assert_eq!(
            exit(&mut m, &cpu, ExitReason::Budget),
            ExitAction::SingleStep
        );
        cpu.icount = 10;
        assert_eq!(
            exit(&mut m, &cpu, ExitReason::Budget),
            ExitAction::Stop(RunOutcome::InstructionLimit)
        );
    }

    #[test]
    fn exceptions_are_reported_with_rip_and_counted() {
        let mut m = machine();
        let mut cpu = CpuState {
            rip: 0x1234,
            ..Default::default()
        };
        cpu.raise(Exception::PageFault {
            addr: 0xdead,
            code: 2,
        });
        assert_eq!(
            exit(&mut m, &cpu, ExitReason::Exception),
            ExitAction::Stop(RunOutcome::Exception {
                exc: Exception::PageFault {
                    addr: 0xdead,
                    code: 2
                },
                rip: 0x1234
            })
        );
        assert_eq!(m.exceptions, 1);
        cpu.exc_vector = 99;
        assert!(matches!(
            exit(&mut m, &cpu, ExitReason::Exception),
            ExitAction::Stop(RunOutcome::InternalError(_))
        ));
    }

    #[test]
    fn stop_requests_become_outcomes() {
        let mut m = machine();
        let cpu = CpuState::default();
        m.run.stop = Some(StopRequest::DebugExit(3));
        assert_eq!(
            exit(&mut m, &cpu, ExitReason::Stop),
            ExitAction::Stop(RunOutcome::DebugExit(3))
        );
        assert!(m.run.stop.is_none());
        m.run.stop = Some(StopRequest::Internal("boom".into()));
        assert_eq!(
            exit(&mut m, &cpu, ExitReason::Jump),
            ExitAction::Stop(RunOutcome::InternalError("boom".into())),
            "a stop request wins over the exit reason"
        );
        assert!(matches!(
            exit(&mut m, &cpu, ExitReason::Stop),
            ExitAction::Stop(RunOutcome::InternalError(_))
        ));
    }

    #[test]
    fn halt_and_unknown_exits() {
        let mut m = machine();
        let mut cpu = CpuState::default();
        assert_eq!(
            exit(&mut m, &cpu, ExitReason::Halt),
            ExitAction::Stop(RunOutcome::Halted)
        );
        assert!(!halted_with_interrupts(&cpu));
        cpu.rflags |= rflags::IF;
        assert!(halted_with_interrupts(&cpu));
        assert!(matches!(
            handle_exit(&mut m, &mut cpu, 0),
            ExitAction::Stop(RunOutcome::InternalError(_))
        ));
        assert!(matches!(
            handle_exit(&mut m, &mut cpu, 77),
            ExitAction::Stop(RunOutcome::InternalError(_))
        ));
    }

    #[test]
    fn unsupported_reports_bytes_and_mnemonic() {
        let mut m = machine();
        m.stop_on_unsupported = true;
        // fsin (x87)
        m.ram.write(GuestPhys(0x3000), &[0xD9, 0xFE]).unwrap();
        let cpu = CpuState {
            rip: 0x3000,
            ..Default::default()
        };
        let ExitAction::Stop(RunOutcome::Unsupported { rip, bytes, what }) =
            exit(&mut m, &cpu, ExitReason::Unsupported)
        else {
            panic!("expected Unsupported");
        };
        assert_eq!(rip, 0x3000);
        assert_eq!(&bytes[..2], &[0xD9, 0xFE]);
        assert_eq!(bytes.len(), 15);
        assert!(what.contains("fsin"), "{what}");
        let cpu = CpuState {
            rip: MIN_RAM + 8,
            ..Default::default()
        };
        let ExitAction::Stop(RunOutcome::Unsupported { bytes, what, .. }) =
            exit(&mut m, &cpu, ExitReason::Unsupported)
        else {
            panic!("expected Unsupported");
        };
        assert!(bytes.is_empty());
        assert!(what.contains("cannot be fetched"));
    }

    #[test]
    fn unsupported_raises_ud_and_counts_it_by_mnemonic() {
        let mut m = machine();
        // vmcall, then bytes that do not decode in 64-bit mode (a lone LOCK on NOP).
        m.ram.write(GuestPhys(0x3000), &[0x0F, 0x01, 0xC1]).unwrap();
        m.ram.write(GuestPhys(0x3010), &[0xF0, 0x90]).unwrap();
        let cpu = CpuState {
            rip: 0x3000,
            icount: 7,
            ..Default::default()
        };
        // No IDT: the #UD ends the run as any unhandled exception does.
        let action = exit(&mut m, &cpu, ExitReason::Unsupported);
        assert_eq!(
            action,
            ExitAction::Stop(RunOutcome::Exception {
                exc: Exception::InvalidOpcode,
                rip: 0x3000
            })
        );
        let cpu = CpuState { rip: 0x3010, ..cpu };
        exit(&mut m, &cpu, ExitReason::Unsupported);
        exit(&mut m, &cpu, ExitReason::Unsupported);
        let counted: Vec<(&str, u64)> = m
            .unsupported_uds
            .iter()
            .map(|(k, &n)| (k.as_str(), n))
            .collect();
        assert_eq!(counted, [("invalid", 2), ("vmcall", 1)]);
        assert_eq!(m.exceptions_by_vector[6], 3);
    }

    #[test]
    fn code_modified_invalidates_and_single_steps() {
        use cache::{BlockInfo, BlockKey, CacheConfig, CodeCache, HostCode, SlotRange};
        let mut m = machine();
        let mut c = CodeCache::new(CacheConfig::default(), HostCode(0x1000)).unwrap();
        c.set_phys_limit(MIN_RAM);
        let key = BlockKey {
            phys_pc: 0x5000,
            virt_pc: 0x5000,
            mode: 0,
        };
        c.insert(BlockInfo {
            key,
            virt_pc: 0x5000,
            host: HostCode::NONE,
            code_len: 0,
            phys_ranges: vec![(0x5000, 0x5004)],
            guest_insns: 1,
            slots: SlotRange::EMPTY,
        });
        m.set_code_tracking(Some(Box::new(c)));
        m.modified = vec![(0x5002, 0x5003)];
        let cpu = CpuState::default();
        assert_eq!(
            exit(&mut m, &cpu, ExitReason::CodeModified),
            ExitAction::SingleStep
        );
        assert!(m.modified.is_empty());
        let c = crate::engine::dbt::cache(&m).unwrap();
        assert!(!c.page_has_code(0x5000));
    }
}
