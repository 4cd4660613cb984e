//! Where a block goes on after the hypercall of an entry that ends it
//! ([`translator::sensitive::Resume`]): on in the same block, on at the host code found in
//! the jump cache for the new RIP and mode, or back to the dispatcher. [`decide`] is the
//! decision (a pure function of what the handler did), [`token`] its encoding as the
//! hypercall's return value.
//!
//! Invariants:
//! - The block leaves to the dispatcher whenever the run loop must act before the next
//!   guest instruction: a halt, a stop, a single-step trap, a possibly deliverable interrupt
//!   (an interrupt check was posted, or a handler set `icount_limit = 0`), changed
//!   mappings (the jump cache must be dropped first), or debug stepping (TF, RF or an enabled
//!   breakpoint: the loop single-steps).
//! - Effects that may wait until the block chain returns are still posted by the caller:
//!   STI's and MOV SS's interrupt shadow (it only names the instruction that must complete
//!   before an interrupt is taken; interrupts are taken only after the chain returns, and a
//!   shadow whose instruction is no longer at RIP is dropped), and the end of NMI blocking
//!   after IRET (an NMI that waits for it makes IRET ask for an interrupt check).
//! - On in the same block only when the instruction completed in place (RIP = the next
//!   instruction), the mode key is unchanged, and (INVLPG) the invalidated page is not one
//!   the block's code may lie on: the code after the instruction is then what the dispatcher
//!   would run.
//! - Changed mappings leave, except after MOV CR3 when both pages a block holding the
//!   instruction may lie on ([`Machine::code_pages_peek`]) still translate to the physical
//!   pages they did: the rest of the block, and every block its links reach (links stay on
//!   the block's first page, see `engine::dbt`'s `BlockEnv::link_slot`; regions stay on their
//!   entry's page), is then the code the dispatcher would find. The jump cache is emptied
//!   before the block goes on, so no inline probe or [`Next::Lookup`] finds a block through
//!   a stale virtual PC; `mappings_changed` stays set, so the run loop still drops the rest
//!   of the virtual-PC-keyed state when the chain returns. Until then every other hypercall
//!   that sees `mappings_changed` leaves.

use translator::sensitive::{Hypercall, HypercallArgs, Resume};
use translator::state::rflags;
use translator::CpuState;

use crate::machine::Machine;
use crate::memory::PAGE_SIZE;
use crate::run_state::Effects;

/// Where the block goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// With the next instruction of the same block.
    InBlock,
    /// At the block the jump cache holds for the new RIP and mode (the dispatcher on a miss).
    Lookup,
    /// Back to the dispatcher.
    Dispatcher,
}

/// What the handler did, as far as [`decide`] needs it.
#[derive(Clone, Copy, Debug)]
pub struct Done<'a> {
    /// The table's choice for the instruction.
    pub resume: Resume,
    /// The handler left a nonzero `status` (an exception or a stop): the block leaves through
    /// its fault exit, whatever the return value.
    pub stopped: bool,
    /// RIP is the instruction after this one.
    pub in_place: bool,
    /// The mode key is what it was before the handler.
    pub same_mode: bool,
    /// The effects the handler returned.
    pub effects: &'a Effects,
    /// Virtual-to-physical mappings changed wholesale.
    pub mappings_changed: bool,
    /// Someone set `icount_limit = 0` (an interrupt may be deliverable).
    pub interrupt_check: bool,
    /// The run loop single-steps from here (TF, RF, an enabled breakpoint).
    pub debug: bool,
    /// INVLPG invalidated a page the running block's code may lie on.
    pub own_page: bool,
}

/// Where the block goes on after the handler (see the module invariants).
pub fn decide(d: &Done) -> Next {
    let fx = d.effects;
    let must_leave = d.stopped
        || fx.halt
        || fx.stop.is_some()
        || fx.step_trap
        || fx.check_interrupts
        || d.mappings_changed
        || d.interrupt_check
        || d.debug;
    match d.resume {
        _ if must_leave => Next::Dispatcher,
        Resume::Dispatcher => Next::Dispatcher,
        Resume::Lookup => Next::Lookup,
        Resume::InBlock if d.in_place && d.same_mode && !d.own_page => Next::InBlock,
        Resume::InBlock => Next::Dispatcher,
    }
}

/// What [`token`] compares the mode key after the handler with.
#[derive(Clone, Copy, Debug)]
enum ModeBefore {
    /// Not compared (the block does not go on in place).
    Unused,
    /// The handler cannot change it (computing it is a good part of a cheap hypercall).
    Kept,
    /// The key before the handler.
    Key(u32),
}

/// The state before a hypercall that [`token`] compares with.
#[derive(Clone, Copy, Debug)]
pub struct Before {
    rip: u64,
    /// The mode key, for [`Resume::InBlock`] only (a lookup is keyed by the new mode).
    mode_key: ModeBefore,
    /// For MOV CR3: the physical pages of the block's code ([`Machine::code_pages_peek`]).
    code_pages: Option<[Option<u64>; 2]>,
}

impl Before {
    /// Records `cpu` before the handler of a block-ending hypercall `a` runs.
    pub fn of(m: &Machine, cpu: &CpuState, a: &HypercallArgs) -> Before {
        let kind = a.kind;
        let cr3 = kind == Hypercall::MovToCr && a.extra == 3;
        Before {
            rip: cpu.rip,
            mode_key: match kind {
                _ if kind.resume() != Resume::InBlock => ModeBefore::Unused,
                // Only IF, or the TLB: nothing the mode is computed from.
                Hypercall::Sti | Hypercall::Invlpg => ModeBefore::Kept,
                _ => ModeBefore::Key(super::mode::mode(cpu).key()),
            },
            // Only where virtual pages are linear ones (CS base 0): links and regions are
            // confined to virtual pages.
            code_pages: (cr3 && super::mode::code_linear(cpu, cpu.rip) == cpu.rip)
                .then(|| m.code_pages_peek(cpu, cpu.rip)),
        }
    }
}

/// Decides where the block goes on after the handler of `kind` (instruction length `len`,
/// operand `b`) returned `fx`, and returns it as the hypercall's return value: 0 for the
/// same block, else the host code to tail-call (a block, or the exit stub, which returns to
/// the dispatcher). Without a code cache (no generated code runs) any nonzero value does.
pub fn token(
    m: &mut Machine,
    cpu: &CpuState,
    before: Before,
    kind: Hypercall,
    len: u8,
    b: u64,
    fx: &Effects,
) -> u64 {
    let next_rip = before.rip.wrapping_add(u64::from(len));
    let own_page = kind == Hypercall::Invlpg && near_code(cpu, before.rip, b);
    // The block's code may stay where it was (see the module invariants); `cpu.rip` is only
    // compared once the handler completed in place.
    let code_kept = m.run.mappings_changed
        && cpu.status == 0
        && before
            .code_pages
            .is_some_and(|old| m.code_pages_peek(cpu, before.rip) == old);
    if code_kept {
        let keep_global = !m.run.global_mappings_changed;
        if let Some(c) = m.code_tracking_mut() {
            c.forget_all_virtual(keep_global);
        }
    }
    let done = Done {
        resume: kind.resume(),
        stopped: cpu.status != 0,
        // 16/32-bit wrap-around of RIP: leave, the dispatcher handles it.
        in_place: cpu.rip == next_rip,
        same_mode: match before.mode_key {
            ModeBefore::Unused => false,
            ModeBefore::Kept => true,
            ModeBefore::Key(k) => super::mode::mode(cpu).key() == k,
        },
        effects: fx,
        mappings_changed: m.run.mappings_changed && !code_kept,
        interrupt_check: cpu.icount_limit == 0 || m.run.interrupt_check,
        debug: cpu.rflags & (rflags::TF | rflags::RF) != 0 || super::debug::any_enabled(cpu),
        own_page,
    };
    let stub = m.code_tracking().map_or(1, |c| c.exit_stub().0 as u64);
    match decide(&done) {
        Next::InBlock => 0,
        Next::Lookup => match crate::helpers::lookup(m, cpu, cpu.rip) {
            0 => stub,
            host => host,
        },
        Next::Dispatcher => stub,
    }
}

/// Whether INVLPG of linear address `lin` invalidates what the jump cache may have found the
/// block at `rip` through: the window `Machine::invlpg` clears, widened by a page on each
/// side (a block starts at most a page before its instructions and runs onto at most the
/// next page).
fn near_code(cpu: &CpuState, rip: u64, lin: u64) -> bool {
    let code = super::mode::code_linear(cpu, rip);
    let window = crate::mmu::PagingRegs::of(cpu)
        .largest_page()
        .max(PAGE_SIZE);
    let base = lin & !(window - 1);
    let start = base.saturating_sub(2 * PAGE_SIZE);
    let end = base.saturating_add(window).saturating_add(PAGE_SIZE);
    (start..end).contains(&code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::SerialSink;
    use translator::state::{cr, seg, Segment};

    /// 64-bit mode at CPL 0 without paging, SYSCALL enabled, at 0x1000.
    fn machine() -> (Machine, CpuState) {
        let m = Machine::new(4 << 20, SerialSink::Capture).unwrap();
        let mut cpu = CpuState::default();
        super::super::msr::reset(&mut cpu);
        cpu.rip = 0x1000;
        cpu.icount_limit = u64::MAX;
        cpu.cr0 = cr::CR0_PE | cr::CR0_ET;
        cpu.cr4 = cr::CR4_PAE;
        cpu.efer = cr::EFER_SCE | cr::EFER_LME | cr::EFER_LMA;
        cpu.seg[seg::CS] = Segment::flat(0x10, 0xA09B);
        cpu.seg[seg::SS] = Segment::flat(0x18, 0xC093);
        (m, cpu)
    }

    /// The hypercall entry's return value for `kind` (3 bytes long, `extra`, operand `b`).
    fn entry(m: &mut Machine, cpu: &mut CpuState, kind: Hypercall, extra: u8, b: u64) -> u64 {
        let a = HypercallArgs {
            kind,
            len: 3,
            op_size: 8,
            addr_size: 8,
            extra,
            extra2: 0,
            imm: 0,
        };
        let (r, fx) = super::super::hypercall::entry(m, cpu, [a.encode(), b, 0]);
        m.run.post(cpu, fx);
        r
    }

    #[test]
    fn sti_without_a_pending_interrupt_goes_on_in_place() {
        let (mut m, mut cpu) = machine();
        assert_eq!(entry(&mut m, &mut cpu, Hypercall::Sti, 0, 0), 0);
        assert_eq!(cpu.rip, 0x1003);
        assert_eq!(
            m.run.pending.shadow,
            Some(0x1003),
            "the shadow is still posted"
        );
    }

    #[test]
    fn a_mode_change_or_single_stepping_leaves() {
        let (mut m, mut cpu) = machine();
        // CR0.TS is part of the mode key (x87 and SSE raise #NM).
        let cr0 = cpu.cr0 | cr::CR0_TS;
        assert_ne!(entry(&mut m, &mut cpu, Hypercall::MovToCr, 0, cr0), 0);
        assert_eq!(cpu.cr0, cr0);
        cpu.rflags |= rflags::TF;
        assert_ne!(entry(&mut m, &mut cpu, Hypercall::Sti, 0, 0), 0);
    }

    #[test]
    fn invlpg_of_the_code_page_leaves_of_another_goes_on() {
        let (mut m, mut cpu) = machine();
        assert_eq!(entry(&mut m, &mut cpu, Hypercall::Invlpg, 0, 0x40_0000), 0);
        cpu.rip = 0x1000;
        assert_ne!(entry(&mut m, &mut cpu, Hypercall::Invlpg, 0, 0x1800), 0);
        cpu.rip = 0x1000;
        assert_ne!(entry(&mut m, &mut cpu, Hypercall::Invlpg, 0, 0x2000), 0);
    }

    #[test]
    fn popf_goes_on_in_place_unless_tf_or_if_turns_on() {
        let (mut m, mut cpu) = machine();
        let flags = rflags::FIXED | rflags::CF | rflags::DF;
        assert_eq!(entry(&mut m, &mut cpu, Hypercall::Popf, 0, flags), 0);
        assert_eq!(cpu.rflags, flags);
        assert_eq!(cpu.rip, 0x1003);
        // TF: the run loop single-steps from the next instruction.
        let tf = flags | rflags::TF;
        assert_ne!(entry(&mut m, &mut cpu, Hypercall::Popf, 0, tf), 0);
        assert_eq!(cpu.rflags, tf);
        cpu.rflags = flags;
        // IF turning on: an interrupt may be deliverable.
        cpu.icount_limit = u64::MAX;
        let on = flags | rflags::IF;
        assert_ne!(entry(&mut m, &mut cpu, Hypercall::Popf, 0, on), 0);
        assert_eq!(cpu.rflags, on);
        // IF already on: nothing for the run loop.
        cpu.icount_limit = u64::MAX;
        assert_eq!(entry(&mut m, &mut cpu, Hypercall::Popf, 0, on), 0);
    }

    #[test]
    fn syscall_names_code_to_go_on_at() {
        let (mut m, mut cpu) = machine();
        cpu.msr.lstar = 0x2000;
        assert_ne!(entry(&mut m, &mut cpu, Hypercall::Syscall, 0, 0), 0);
        assert_eq!(cpu.rip, 0x2000);
    }

    fn done(resume: Resume, fx: &Effects) -> Done<'_> {
        Done {
            resume,
            stopped: false,
            in_place: true,
            same_mode: true,
            effects: fx,
            mappings_changed: false,
            interrupt_check: false,
            debug: false,
            own_page: false,
        }
    }

    #[test]
    fn nothing_for_the_dispatcher_goes_on() {
        let fx = Effects::default();
        assert_eq!(decide(&done(Resume::InBlock, &fx)), Next::InBlock);
        assert_eq!(decide(&done(Resume::Lookup, &fx)), Next::Lookup);
        assert_eq!(decide(&done(Resume::Dispatcher, &fx)), Next::Dispatcher);
    }

    #[test]
    fn effects_that_can_wait_do_not_end_the_block() {
        let fx = Effects {
            shadow: Some(0x1000),
            end_nmi_blocking: true,
            ..Effects::default()
        };
        assert_eq!(decide(&done(Resume::InBlock, &fx)), Next::InBlock);
        assert_eq!(decide(&done(Resume::Lookup, &fx)), Next::Lookup);
    }

    #[test]
    fn anything_the_run_loop_must_see_first_leaves() {
        let leave = [
            Effects {
                halt: true,
                ..Effects::default()
            },
            Effects {
                step_trap: true,
                ..Effects::default()
            },
            Effects {
                check_interrupts: true,
                ..Effects::default()
            },
            Effects::stop(crate::machine::StopRequest::PowerOff),
        ];
        for fx in &leave {
            for r in [Resume::InBlock, Resume::Lookup] {
                assert_eq!(decide(&done(r, fx)), Next::Dispatcher, "{fx:?} {r:?}");
            }
        }
        let fx = Effects::default();
        let cases: [fn(&mut Done); 5] = [
            |d| d.stopped = true,
            |d| d.mappings_changed = true,
            |d| d.interrupt_check = true,
            |d| d.debug = true,
            |d| {
                d.stopped = true;
                d.resume = Resume::Lookup
            },
        ];
        for (i, set) in cases.iter().enumerate() {
            for r in [Resume::InBlock, Resume::Lookup] {
                let mut d = done(r, &fx);
                set(&mut d);
                assert_eq!(decide(&d), Next::Dispatcher, "case {i} {r:?}");
            }
        }
    }

    #[test]
    fn the_same_block_only_in_place_in_the_same_mode_off_its_own_page() {
        let fx = Effects::default();
        let cases: [fn(&mut Done); 3] = [
            |d| d.in_place = false,
            |d| d.same_mode = false,
            |d| d.own_page = true,
        ];
        for (i, set) in cases.iter().enumerate() {
            let mut d = done(Resume::InBlock, &fx);
            set(&mut d);
            assert_eq!(decide(&d), Next::Dispatcher, "case {i}");
            // A jump through the jump cache is keyed by the new RIP and mode anyway.
            let mut d = done(Resume::Lookup, &fx);
            set(&mut d);
            assert_eq!(decide(&d), Next::Lookup, "case {i}");
        }
    }
}
