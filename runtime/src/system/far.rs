//! Far JMP, CALL and RET: direct transfers to code segments, call gates (16-, 32- and
//! 64-bit) with the privilege change and stack switch through the TSS, and returns to an
//! outer privilege level.
//!
//! Invariants:
//! - Each operation computes and checks everything first (descriptors, TSS, stack limits and
//!   writability), then writes memory (pushes, accessed bits), then changes the CPU state:
//!   on `Err` the [`CpuState`] is unchanged (memory may hold a partial push only when a page
//!   became unwritable between the probe and the write, which cannot happen here).
//! - `op_size` is 2, 4 or 8 bytes; any other value is treated as 4.
//! - Task gates and TSS descriptors as far-transfer targets (task switches) are not
//!   supported: they raise #GP(selector), which is what IA-32e mode does architecturally.

use translator::state::{reg, seg, seg_attr, CpuState, Segment};
use translator::Exception;

use super::descriptors::{
    canonical, is_null, kind, long_mode, protected, read_desc_wide, sel_code, set_type_bit, sys,
    tss64_stack, tss_legacy_stack, Desc,
};
use super::segments::{check_ss, null_segment, GpOrTs, Stack};
use crate::machine::{Machine, Privilege};

fn gp(code: u16) -> Exception {
    Exception::GeneralProtection(code)
}

/// `op_size` normalized to 2, 4 or 8.
pub(crate) fn op_bytes(op_size: u8) -> u8 {
    match op_size {
        2 | 8 => op_size,
        _ => 4,
    }
}

/// `v` truncated to `size` bytes.
pub(crate) fn truncate(v: u64, size: u8) -> u64 {
    match size {
        8 => v,
        4 => v & 0xFFFF_FFFF,
        2 => v & 0xFFFF,
        _ => v & 0xFF,
    }
}

/// Reads the code-segment descriptor a far transfer names: #GP(0) for a null selector,
/// #GP(sel) past the table limit.
pub(crate) fn target_desc(
    m: &mut Machine,
    cpu: &mut CpuState,
    selector: u16,
) -> Result<Desc, Exception> {
    if is_null(selector) {
        return Err(gp(0));
    }
    read_desc_wide(m, cpu, selector)?.ok_or(gp(sel_code(selector)))
}

/// The code segment a far RET or IRET returns to through `selector`: a code descriptor the
/// mode can run, RPL >= CPL, DPL == RPL (DPL <= RPL if conforming) — else #GP(selector) — and
/// present, else #NP(selector). Returns it with its RPL, the new CPL.
pub(crate) fn return_target(
    m: &mut Machine,
    cpu: &mut CpuState,
    selector: u16,
) -> Result<(Desc, u8), Exception> {
    let (cpl, rpl) = (cpu.cpl as u8, (selector & 3) as u8);
    let bad = gp(sel_code(selector));
    let d = target_desc(m, cpu, selector)?;
    if !d.is_code() || rpl < cpl || !code_mode_ok(cpu, &d) {
        return Err(bad);
    }
    if d.is_conforming() && d.dpl() > rpl || !d.is_conforming() && d.dpl() != rpl {
        return Err(bad);
    }
    if !d.present() {
        return Err(Exception::SegmentNotPresent(sel_code(selector)));
    }
    Ok((d, rpl))
}

/// A code segment IA-32e mode can run (L and D both set is reserved).
pub(crate) fn code_mode_ok(cpu: &CpuState, d: &Desc) -> bool {
    !(long_mode(cpu) && d.long() && d.db())
}

/// The new RIP is inside the target code segment (canonical for 64-bit code).
pub(crate) fn offset_ok(cpu: &CpuState, d: &Desc, offset: u64) -> bool {
    if long_mode(cpu) && d.long() {
        canonical(offset)
    } else {
        offset <= d.limit() as u64
    }
}

/// The CS register contents for descriptor `d` at privilege `cpl` (accessed bit set, as it
/// is written back to the descriptor).
pub(crate) fn code_segment(d: &Desc, selector: u16, cpl: u8) -> Segment {
    let mut s = d.segment((selector & !3) | cpl as u16);
    s.attr |= kind::ACCESSED as u16;
    s
}

/// Nulls ES/DS/FS/GS that the new (outer) privilege `cpl` may not use: data or
/// non-conforming code with DPL < `cpl`. The selector becomes 0 and the register unusable
/// (P = 0); base and limit stay, as QEMU does.
pub(crate) fn null_inaccessible_data(cpu: &mut CpuState, cpl: u8) {
    for i in [seg::ES, seg::DS, seg::FS, seg::GS] {
        let s = &mut cpu.seg[i];
        let conforming_code = s.attr & 0xC == 0xC;
        if !is_null(s.selector) && !conforming_code && s.dpl() < cpl {
            s.selector = 0;
            s.attr &= !seg_attr::P;
        }
    }
}

pub(crate) fn real_mode_cs(selector: u16) -> Segment {
    Segment {
        selector,
        attr: 0x9B,
        limit: 0xFFFF,
        base: (selector as u64) << 4,
    }
}

/// What a checked far JMP/CALL does.
struct Transfer {
    cs: Segment,
    cs_desc: Desc,
    rip: u64,
    cpl: u8,
    /// For a call gate: the gate's size in bytes (2, 4 or 8), else `None`.
    gate_size: Option<u8>,
    /// The gate's parameter count (legacy call gates).
    params: u8,
}

/// Checks a far JMP/CALL target: a code segment or a call gate. `call` selects CALL's rule
/// for non-conforming targets through a gate (DPL < CPL moves inward instead of faulting).
fn check_transfer(
    m: &mut Machine,
    cpu: &mut CpuState,
    selector: u16,
    offset: u64,
    op: u8,
    call: bool,
) -> Result<Transfer, Exception> {
    let cpl = cpu.cpl as u8;
    let rpl = (selector & 3) as u8;
    let bad = gp(sel_code(selector));
    let d = target_desc(m, cpu, selector)?;
    if d.is_code() {
        if d.is_conforming() {
            if d.dpl() > cpl {
                return Err(bad);
            }
        } else if rpl > cpl || d.dpl() != cpl {
            return Err(bad);
        }
        if !code_mode_ok(cpu, &d) {
            return Err(bad);
        }
        if !d.present() {
            return Err(Exception::SegmentNotPresent(sel_code(selector)));
        }
        let rip = truncate(offset, op);
        if !offset_ok(cpu, &d, rip) {
            return Err(gp(0));
        }
        return Ok(Transfer {
            cs: code_segment(&d, selector, cpl),
            cs_desc: d,
            rip,
            cpl,
            gate_size: None,
            params: 0,
        });
    }
    // Only call gates remain (task gates and TSSs would be task switches).
    let gate_size = match (d.is_system(), d.typ(), long_mode(cpu)) {
        (true, sys::CALL_GATE16, false) => 2,
        (true, sys::CALL_GATE, false) => 4,
        (true, sys::CALL_GATE, true) => 8,
        _ => return Err(bad),
    };
    if d.dpl() < cpl || rpl > d.dpl() {
        return Err(bad);
    }
    if !d.present() {
        return Err(Exception::SegmentNotPresent(sel_code(selector)));
    }
    if gate_size == 8 && d.hi_type() != 0 {
        return Err(bad);
    }
    let tsel = d.gate_selector();
    let t = target_desc(m, cpu, tsel)?;
    let tbad = gp(sel_code(tsel));
    if !t.is_code() || t.dpl() > cpl {
        return Err(tbad);
    }
    if gate_size == 8 && !t.is_code64() {
        return Err(tbad);
    }
    if !call && !t.is_conforming() && t.dpl() != cpl {
        return Err(tbad);
    }
    if !t.present() {
        return Err(Exception::SegmentNotPresent(sel_code(tsel)));
    }
    let rip = truncate(d.gate_offset(), gate_size);
    if !offset_ok(cpu, &t, rip) {
        return Err(gp(0));
    }
    let new_cpl = if t.is_conforming() { cpl } else { t.dpl() };
    Ok(Transfer {
        cs: code_segment(&t, tsel, new_cpl),
        cs_desc: t,
        rip,
        cpl: new_cpl,
        gate_size: Some(gate_size),
        params: if gate_size == 8 { 0 } else { d.gate_params() },
    })
}

/// Far JMP to `selector:offset` (`op_size` 2/4/8 truncates the offset): a code segment
/// (conforming: DPL <= CPL; non-conforming: RPL <= CPL and DPL = CPL) or a call gate (no
/// privilege change). Real mode loads CS = selector, base = selector << 4.
pub fn jmp_far(
    m: &mut Machine,
    cpu: &mut CpuState,
    selector: u16,
    offset: u64,
    op_size: u8,
) -> Result<(), Exception> {
    let op = op_bytes(op_size);
    if !protected(cpu) {
        cpu.seg[seg::CS] = real_mode_cs(selector);
        cpu.rip = truncate(offset, op);
        return Ok(());
    }
    let t = check_transfer(m, cpu, selector, offset, op, false)?;
    set_type_bit(m, cpu, &t.cs_desc, kind::ACCESSED)?;
    cpu.seg[seg::CS] = t.cs;
    cpu.rip = t.rip;
    Ok(())
}

/// Far CALL to `selector:offset`, returning to `next_rip`. Direct calls push CS and the
/// return address (`op_size` each) on the current stack. Call gates push with the gate's
/// size; a gate to a more privileged non-conforming segment switches to the TSS stack of
/// the target DPL (legacy: SSn:ESPn, with the gate's parameter count copied from the old
/// stack; IA-32e: RSPn with a null SS) after pushing the old SS:RSP.
pub fn call_far(
    m: &mut Machine,
    cpu: &mut CpuState,
    selector: u16,
    offset: u64,
    op_size: u8,
    next_rip: u64,
) -> Result<(), Exception> {
    let op = op_bytes(op_size);
    let old_cs = cpu.seg[seg::CS].selector as u64;
    if !protected(cpu) {
        let stack = Stack::current(cpu);
        let sp = stack.push(m, cpu, &[old_cs, truncate(next_rip, op)], op)?;
        cpu.gpr[reg::RSP] = sp;
        cpu.seg[seg::CS] = real_mode_cs(selector);
        cpu.rip = truncate(offset, op);
        return Ok(());
    }
    let t = check_transfer(m, cpu, selector, offset, op, true)?;
    let cpl = cpu.cpl as u8;
    let old = Stack::current(cpu);
    let (new_ss, sp) = match t.gate_size {
        None => {
            let sp = old.push(m, cpu, &[old_cs, truncate(next_rip, op)], op)?;
            (None, sp)
        }
        Some(size) if t.cpl == cpl => {
            let mut stack = old;
            if size == 8 {
                stack.width = 8;
            }
            let sp = stack.push(m, cpu, &[old_cs, truncate(next_rip, size)], size)?;
            (None, sp)
        }
        Some(size) => {
            let (ss, stack) = inner_stack(m, cpu, t.cpl, size)?;
            let mut slots = vec![cpu.seg[seg::SS].selector as u64, old.sp];
            for i in (0..t.params as i64).rev() {
                slots.push(old.read(m, cpu, i * size as i64, size)?);
            }
            slots.push(old_cs);
            slots.push(truncate(next_rip, size));
            let sp = stack.push(m, cpu, &slots, size)?;
            (Some(ss), sp)
        }
    };
    set_type_bit(m, cpu, &t.cs_desc, kind::ACCESSED)?;
    if let Some((ss, ss_desc)) = new_ss {
        if let Some(d) = ss_desc {
            set_type_bit(m, cpu, &d, kind::ACCESSED)?;
        }
        cpu.seg[seg::SS] = ss;
    }
    cpu.gpr[reg::RSP] = sp;
    cpu.seg[seg::CS] = t.cs;
    cpu.cpl = t.cpl as u64;
    cpu.rip = t.rip;
    Ok(())
}

/// The stack of privilege `cpl` from the TSS for a call through a gate of `size` bytes:
/// the new SS (with its descriptor, to mark accessed) and a [`Stack`] positioned at the
/// TSS's stack pointer.
#[allow(clippy::type_complexity)]
fn inner_stack(
    m: &mut Machine,
    cpu: &mut CpuState,
    cpl: u8,
    size: u8,
) -> Result<((Segment, Option<Desc>), Stack), Exception> {
    let privilege = Privilege::of_cpl(cpl as u64);
    if size == 8 {
        let rsp = tss64_stack(m, cpu, cpl, 0, 0)?;
        if !canonical(rsp) {
            return Err(Exception::StackFault(0));
        }
        let ss = null_segment(cpl as u16);
        let stack = Stack {
            ss,
            sp: rsp,
            width: 8,
            privilege,
            fault: Exception::StackFault(0),
        };
        return Ok(((ss, None), stack));
    }
    let (ss_sel, esp) = tss_legacy_stack(m, cpu, cpl, 0)?;
    let (ss, d) = check_ss(m, cpu, ss_sel, cpl, false, GpOrTs::Ts(0))?;
    let stack = Stack {
        ss,
        sp: esp,
        width: if ss.attr & seg_attr::DB != 0 { 4 } else { 2 },
        privilege,
        fault: Exception::StackFault(sel_code(ss_sel)),
    };
    Ok(((ss, d), stack))
}

/// Far RET (`op_size` 2/4/8), releasing `release` bytes of parameters. Pops RIP and CS;
/// returning to an outer privilege level (CS.RPL > CPL) also pops RSP and SS, checks them,
/// and nulls the data segment registers the outer level may not use.
pub fn ret_far(
    m: &mut Machine,
    cpu: &mut CpuState,
    op_size: u8,
    release: u16,
) -> Result<(), Exception> {
    let op = op_bytes(op_size);
    let o = op as i64;
    let stack = Stack::current(cpu);
    let rip = stack.read(m, cpu, 0, op)?;
    let sel = stack.read(m, cpu, o, op)? as u16;
    if !protected(cpu) {
        cpu.gpr[reg::RSP] = stack.moved(2 * o + release as i64);
        cpu.seg[seg::CS] = real_mode_cs(sel);
        cpu.rip = rip;
        return Ok(());
    }
    let cpl = cpu.cpl as u8;
    let (d, rpl) = return_target(m, cpu, sel)?;
    if !offset_ok(cpu, &d, rip) {
        return Err(gp(0));
    }
    let cs = code_segment(&d, sel, rpl);
    if rpl == cpl {
        set_type_bit(m, cpu, &d, kind::ACCESSED)?;
        cpu.gpr[reg::RSP] = stack.moved(2 * o + release as i64);
        cpu.seg[seg::CS] = cs;
        cpu.rip = rip;
        return Ok(());
    }
    let at = 2 * o + release as i64;
    let new_sp = stack.read(m, cpu, at, op)?;
    let ss_sel = stack.read(m, cpu, at + o, op)? as u16;
    let to_64 = long_mode(cpu) && d.long();
    let (ss, ss_desc) = check_ss(m, cpu, ss_sel, rpl, to_64, GpOrTs::Gp)?;
    set_type_bit(m, cpu, &d, kind::ACCESSED)?;
    if let Some(sd) = ss_desc {
        set_type_bit(m, cpu, &sd, kind::ACCESSED)?;
    }
    let new_stack = Stack {
        ss,
        sp: new_sp,
        width: if to_64 {
            8
        } else if ss.attr & seg_attr::DB != 0 {
            4
        } else {
            2
        },
        privilege: Privilege::of_cpl(rpl as u64),
        fault: Exception::StackFault(0),
    };
    cpu.gpr[reg::RSP] = new_stack.moved(release as i64);
    cpu.seg[seg::SS] = ss;
    cpu.seg[seg::CS] = cs;
    cpu.cpl = rpl as u64;
    cpu.rip = rip;
    null_inaccessible_data(cpu, rpl);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::Access;
    use crate::system::descriptors::read_desc;
    use crate::system::mode::reset_long_flat64;
    use crate::system::segments::tests::{put, seg_desc, setup32, GDT};

    /// A legacy call gate.
    fn gate32(sel: u16, offset: u32, typ: u8, dpl: u8, params: u8) -> u64 {
        (offset as u64 & 0xFFFF)
            | ((sel as u64) << 16)
            | ((params as u64 & 0x1F) << 32)
            | ((0x80 | (dpl as u64) << 5 | typ as u64) << 40)
            | ((offset as u64 >> 16) << 48)
    }

    const TSS: u64 = 0x5000;

    /// setup32 plus a 32-bit TSS (selector 0x48) with SS0:ESP0 = 0x10:0x9000, a call gate
    /// (0x50, DPL 3, 2 params) to code0:0x4000, and CPL 3 state on a user stack at 0x8000.
    fn user32() -> (Machine, CpuState) {
        let (mut m, mut cpu) = setup32();
        put(&mut m, 9, seg_desc(TSS as u32, 0x67, 0x8B, 0));
        m.write_virt(TSS + 4, 4, 0x9000).unwrap();
        m.write_virt(TSS + 8, 2, 0x10).unwrap();
        put(&mut m, 10, gate32(0x08, 0x4000, sys::CALL_GATE, 3, 2));
        cpu.tr = read_desc(&mut m, &mut cpu, 0x48)
            .unwrap()
            .unwrap()
            .segment(0x48);
        cpu.cpl = 3;
        cpu.seg[seg::CS] = Segment::flat(0x1B, 0xC0FB);
        for i in [seg::SS, seg::DS, seg::ES] {
            cpu.seg[i] = Segment::flat(0x23, 0xC0F3);
        }
        cpu.seg[seg::FS] = Segment::flat(0x10, 0xC093);
        cpu.gpr[reg::RSP] = 0x8000;
        (m, cpu)
    }

    fn rd(m: &mut Machine, a: u64, n: usize) -> u64 {
        m.read_virt(a, n, Access::Read).unwrap()
    }

    #[test]
    fn direct_jmp_call_ret_same_privilege() {
        let (mut m, mut cpu) = setup32();
        cpu.gpr[reg::RSP] = 0x8000;
        assert_eq!(jmp_far(&mut m, &mut cpu, 0x08, 0x1_2345_6789, 4), Ok(()));
        assert_eq!(cpu.rip, 0x2345_6789);
        assert_eq!(call_far(&mut m, &mut cpu, 0x08, 0x3000, 4, 0x1111), Ok(()));
        assert_eq!((cpu.rip, cpu.gpr[reg::RSP]), (0x3000, 0x7FF8));
        assert_eq!(
            (rd(&mut m, 0x7FF8, 4), rd(&mut m, 0x7FFC, 4)),
            (0x1111, 0x08)
        );
        assert_eq!(ret_far(&mut m, &mut cpu, 4, 8), Ok(()));
        assert_eq!((cpu.rip, cpu.gpr[reg::RSP]), (0x1111, 0x8008));
    }

    #[test]
    fn far_transfer_faults_change_nothing() {
        let (mut m, mut cpu) = setup32();
        cpu.gpr[reg::RSP] = 0x8000;
        let before = cpu.clone();
        let cases: [(u16, Exception); 6] = [
            (0, gp(0)),
            (0x10, gp(0x10)),
            (0x18, gp(0x18)),
            (0x0B, gp(0x08)),
            (0x200, gp(0x200)),
            (0x48, gp(0x48)),
        ];
        for (sel, want) in cases {
            assert_eq!(jmp_far(&mut m, &mut cpu, sel, 0, 4), Err(want), "{sel:#x}");
            assert_eq!(
                call_far(&mut m, &mut cpu, sel, 0, 4, 0),
                Err(want),
                "{sel:#x}"
            );
        }
        put(&mut m, 9, seg_desc(0, 0xFFF, 0x1A, 0x4));
        assert_eq!(
            jmp_far(&mut m, &mut cpu, 0x48, 0, 4),
            Err(Exception::SegmentNotPresent(0x48))
        );
        put(&mut m, 9, seg_desc(0, 0xFFF, 0x9A, 0x4));
        assert_eq!(
            jmp_far(&mut m, &mut cpu, 0x48, 0x1000, 4),
            Err(gp(0)),
            "limit"
        );
        assert_eq!(cpu.rip, before.rip);
        assert_eq!(cpu.seg, before.seg);
        assert_eq!(cpu.gpr, before.gpr);
        // Conforming code at a lower DPL keeps the CPL.
        cpu.cpl = 3;
        cpu.seg[seg::CS].selector = 0x1B;
        assert_eq!(jmp_far(&mut m, &mut cpu, 0x40, 0x10, 4), Ok(()));
        assert_eq!((cpu.seg[seg::CS].selector, cpu.cpl), (0x43, 3));
    }

    #[test]
    fn call_gate_to_ring0_and_back() {
        let (mut m, mut cpu) = user32();
        m.write_virt(0x8000, 4, 0xAAAA).unwrap();
        m.write_virt(0x8004, 4, 0xBBBB).unwrap();
        assert_eq!(call_far(&mut m, &mut cpu, 0x53, 0xDEAD, 4, 0x1234), Ok(()));
        assert_eq!(cpu.cpl, 0);
        assert_eq!((cpu.seg[seg::CS].selector, cpu.rip), (0x08, 0x4000));
        assert_eq!(cpu.seg[seg::SS].selector, 0x10);
        assert_eq!(cpu.gpr[reg::RSP], 0x9000 - 24);
        let frame: Vec<u64> = (0..6).map(|i| rd(&mut m, 0x9000 - 24 + i * 4, 4)).collect();
        assert_eq!(frame, [0x1234, 0x1B, 0xAAAA, 0xBBBB, 0x8000, 0x23]);
        // RET 8 back to ring 3 releases the parameters on both stacks.
        cpu.seg[seg::DS] = Segment::flat(0x10, 0xC093);
        assert_eq!(ret_far(&mut m, &mut cpu, 4, 8), Ok(()));
        assert_eq!(cpu.cpl, 3);
        assert_eq!((cpu.seg[seg::CS].selector, cpu.rip), (0x1B, 0x1234));
        assert_eq!(
            (cpu.seg[seg::SS].selector, cpu.gpr[reg::RSP]),
            (0x23, 0x8008)
        );
        assert_eq!(cpu.seg[seg::DS].selector, 0, "ring-0 DS nulled");
        assert_eq!(cpu.seg[seg::FS].selector, 0, "ring-0 FS nulled");
        assert_eq!(cpu.seg[seg::ES].selector, 0x23);
    }

    #[test]
    fn call_gate_checks() {
        let (mut m, mut cpu) = user32();
        let before = cpu.clone();
        put(&mut m, 10, gate32(0x08, 0x4000, sys::CALL_GATE, 0, 0));
        assert_eq!(
            call_far(&mut m, &mut cpu, 0x53, 0, 4, 0),
            Err(gp(0x50)),
            "gate DPL"
        );
        put(
            &mut m,
            10,
            gate32(0x08, 0x4000, sys::CALL_GATE, 3, 0) & !(1 << 47),
        );
        assert_eq!(
            call_far(&mut m, &mut cpu, 0x53, 0, 4, 0),
            Err(Exception::SegmentNotPresent(0x50))
        );
        put(&mut m, 10, gate32(0x10, 0x4000, sys::CALL_GATE, 3, 0));
        assert_eq!(
            call_far(&mut m, &mut cpu, 0x53, 0, 4, 0),
            Err(gp(0x10)),
            "data target"
        );
        put(&mut m, 10, gate32(0x08, 0x4000, sys::CALL_GATE, 3, 0));
        assert_eq!(
            jmp_far(&mut m, &mut cpu, 0x53, 0, 4),
            Err(gp(0x08)),
            "JMP can't go in"
        );
        // A bad SS0 in the TSS.
        m.write_virt(TSS + 8, 2, 0x20).unwrap();
        assert_eq!(
            call_far(&mut m, &mut cpu, 0x53, 0, 4, 0),
            Err(Exception::InvalidTss(0x20))
        );
        m.write_virt(TSS + 8, 2, 0).unwrap();
        assert_eq!(
            call_far(&mut m, &mut cpu, 0x53, 0, 4, 0),
            Err(Exception::InvalidTss(0))
        );
        assert_eq!(cpu.gpr, before.gpr);
        assert_eq!(cpu.seg, before.seg);
        assert_eq!(cpu.cpl, 3);
    }

    #[test]
    fn long_mode_call_gate_and_return() {
        let (mut m, mut cpu) = user32();
        reset_long_flat64(&mut cpu);
        cpu.gdtr.base = GDT;
        cpu.gdtr.limit = 0x1FF;
        put(&mut m, 11, seg_desc(0, 0xFFFFF, 0x9A, 0xA));
        put(&mut m, 12, seg_desc(0, 0xFFFFF, 0xFA, 0xA));
        put(&mut m, 9, seg_desc(TSS as u32, 0x67, 0x89, 0));
        put(&mut m, 10, 0);
        assert_eq!(crate::system::segments::ltr(&mut m, &mut cpu, 0x48), Ok(()));
        m.write_virt(TSS + 4, 8, 0xA000).unwrap();
        put(&mut m, 13, gate32(0x58, 0x4000, sys::CALL_GATE, 3, 0));
        put(&mut m, 14, 0x0000_0001);
        cpu.cpl = 3;
        cpu.seg[seg::CS] = Segment::flat(0x63, 0xA0FB);
        cpu.seg[seg::SS] = Segment::flat(0x23, 0xC0F3);
        cpu.gpr[reg::RSP] = 0x8000;
        assert_eq!(call_far(&mut m, &mut cpu, 0x6B, 0, 8, 0x1234), Ok(()));
        assert_eq!(cpu.rip, 0x1_0000_4000);
        assert_eq!((cpu.cpl, cpu.seg[seg::SS].selector), (0, 0));
        assert_eq!(cpu.gpr[reg::RSP], 0xA000 - 32);
        let frame: Vec<u64> = (0..4).map(|i| rd(&mut m, 0xA000 - 32 + i * 8, 8)).collect();
        assert_eq!(frame, [0x1234, 0x63, 0x8000, 0x23]);
        assert_eq!(ret_far(&mut m, &mut cpu, 8, 0), Ok(()));
        assert_eq!((cpu.cpl, cpu.rip, cpu.gpr[reg::RSP]), (3, 0x1234, 0x8000));
        assert_eq!(cpu.seg[seg::SS].selector, 0x23);
        // A 32-bit gate type does not exist in IA-32e mode: 16-bit call gates fault.
        put(&mut m, 13, gate32(0x58, 0x4000, sys::CALL_GATE16, 3, 0));
        assert_eq!(call_far(&mut m, &mut cpu, 0x6B, 0, 8, 0), Err(gp(0x68)));
    }

    #[test]
    fn real_mode_far_transfers() {
        let (mut m, mut cpu) = setup32();
        cpu.cr0 = 0;
        cpu.seg[seg::SS] = Segment {
            selector: 0,
            attr: 0x93,
            limit: 0xFFFF,
            base: 0,
        };
        cpu.gpr[reg::RSP] = 0x1_0000_7000;
        assert_eq!(call_far(&mut m, &mut cpu, 0x1000, 0x20, 2, 0x55), Ok(()));
        assert_eq!((cpu.seg[seg::CS].base, cpu.rip), (0x10000, 0x20));
        assert_eq!(cpu.gpr[reg::RSP], 0x1_0000_6FFC);
        assert_eq!(ret_far(&mut m, &mut cpu, 2, 0), Ok(()));
        assert_eq!((cpu.seg[seg::CS].selector, cpu.rip), (0x08, 0x55));
    }
}
