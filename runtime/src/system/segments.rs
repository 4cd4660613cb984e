//! Segment-register loads with their protection checks (MOV/POP Sreg, LDS/LES/LFS/LGS/LSS),
//! LLDT and LTR, LAR/LSL/VERR/VERW, and the stack accessor the far-transfer and delivery code
//! shares.
//!
//! Invariants:
//! - Every check is made, and every memory write (accessed and busy bits) done, before the
//!   CPU state changes: on `Err` the [`CpuState`] is unchanged.
//! - Fault error codes are the selector with its RPL bits cleared (`sel & 0xFFFC`), or zero
//!   where the SDM says so (null selectors).
//! - A null selector loaded into DS/ES/FS/GS (or SS in 64-bit mode) leaves the register
//!   unusable: `attr` has P = 0 (and DPL = RPL), base and limit are zero (Intel behaviour:
//!   a null FS/GS load clears the base).
//! - Virtual-8086 mode is not supported: RFLAGS.VM is never honoured.

use translator::state::{seg, seg_attr, CpuState, Segment};
use translator::Exception;

use super::descriptors::{
    in_64bit, is_null, kind, long_mode, protected, read_desc, read_desc_wide, sel_code,
    set_type_bit, sys, Desc,
};
use crate::machine::{Machine, Privilege};
use crate::memory::Access;

/// The unusable segment a null selector loads.
pub fn null_segment(selector: u16) -> Segment {
    Segment {
        selector,
        attr: (selector & 3) << seg_attr::DPL_SHIFT,
        limit: 0,
        base: 0,
    }
}

/// The register contents a code/data descriptor loads: the accessed bit is set, as the
/// load also sets it in the descriptor.
fn accessed_segment(d: &Desc, selector: u16) -> Segment {
    let mut s = d.segment(selector);
    s.attr |= kind::ACCESSED as u16;
    s
}

/// Loads segment register `seg` (not CS) with `selector` as MOV Sreg, POP Sreg and LxS do,
/// with every protection check: #GP(sel) for a selector past the table limit, a wrong type or
/// privilege, #NP(sel) (#SS(sel) for SS) for a not-present segment, #GP(0) for a null SS
/// (allowed in 64-bit mode at CPL < 3 with RPL = CPL). Sets the descriptor's accessed bit.
/// In real mode only the selector and base (`selector << 4`) change.
pub fn load_seg(
    m: &mut Machine,
    cpu: &mut CpuState,
    seg: usize,
    selector: u16,
) -> Result<(), Exception> {
    if seg == seg::CS || seg > seg::GS {
        return Err(Exception::InvalidOpcode);
    }
    if !protected(cpu) {
        let s = &mut cpu.seg[seg];
        s.selector = selector;
        s.base = (selector as u64) << 4;
        return Ok(());
    }
    let (new, desc) = if seg == seg::SS {
        let allow_null = in_64bit(cpu);
        check_ss(m, cpu, selector, cpu.cpl as u8, allow_null, GpOrTs::Gp)?
    } else {
        check_data(m, cpu, selector)?
    };
    if let Some(d) = desc {
        set_type_bit(m, cpu, &d, kind::ACCESSED)?;
    }
    cpu.seg[seg] = new;
    Ok(())
}

/// Which fault a bad stack selector raises: #GP (segment loads, returns) or #TS (stack
/// switches through the TSS), with `ext` added to the error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GpOrTs {
    Gp,
    Ts(u16),
}

impl GpOrTs {
    fn fault(self, code: u16) -> Exception {
        match self {
            GpOrTs::Gp => Exception::GeneralProtection(code),
            GpOrTs::Ts(ext) => Exception::InvalidTss(code | ext),
        }
    }
    fn ext(self) -> u16 {
        match self {
            GpOrTs::Gp => 0,
            GpOrTs::Ts(ext) => ext,
        }
    }
}

/// Checks `selector` as the new SS for privilege level `cpl` (RPL = DPL = `cpl`, writable
/// data, present). A null selector is accepted only when `allow_null` (the code after the
/// load runs in 64-bit mode) below CPL 3 with RPL = `cpl`.
pub(crate) fn check_ss(
    m: &mut Machine,
    cpu: &mut CpuState,
    selector: u16,
    cpl: u8,
    allow_null: bool,
    how: GpOrTs,
) -> Result<(Segment, Option<Desc>), Exception> {
    let rpl = (selector & 3) as u8;
    if is_null(selector) {
        if allow_null && cpl != 3 && rpl == cpl {
            return Ok((null_segment(selector), None));
        }
        return Err(how.fault(0));
    }
    let bad = how.fault(sel_code(selector));
    let d = read_desc(m, cpu, selector)?.ok_or(bad)?;
    if rpl != cpl || !d.is_writable_data() || d.dpl() != cpl {
        return Err(bad);
    }
    if !d.present() {
        return Err(Exception::StackFault(sel_code(selector) | how.ext()));
    }
    Ok((accessed_segment(&d, selector), Some(d)))
}

fn check_data(
    m: &mut Machine,
    cpu: &mut CpuState,
    selector: u16,
) -> Result<(Segment, Option<Desc>), Exception> {
    if is_null(selector) {
        return Ok((null_segment(selector), None));
    }
    let bad = Exception::GeneralProtection(sel_code(selector));
    let d = read_desc(m, cpu, selector)?.ok_or(bad)?;
    if !d.is_readable() {
        return Err(bad);
    }
    let rpl = (selector & 3) as u8;
    if !d.is_conforming() && (rpl > d.dpl() || cpu.cpl as u8 > d.dpl()) {
        return Err(bad);
    }
    if !d.present() {
        return Err(Exception::SegmentNotPresent(sel_code(selector)));
    }
    Ok((accessed_segment(&d, selector), Some(d)))
}

/// Common checks of LLDT and LTR: protected mode (#UD), CPL 0 (#GP(0)), a GDT selector
/// (#GP(sel)), the system type `ok` (#GP(sel)), present (#NP(sel)), and in IA-32e mode a
/// zero upper type and canonical base (#GP(sel)).
fn system_desc(
    m: &mut Machine,
    cpu: &mut CpuState,
    selector: u16,
    ok: &[u8],
) -> Result<Desc, Exception> {
    let bad = Exception::GeneralProtection(sel_code(selector));
    if selector & 4 != 0 {
        return Err(bad);
    }
    let d = read_desc_wide(m, cpu, selector)?.ok_or(bad)?;
    if !d.is_system() || !ok.contains(&d.typ()) {
        return Err(bad);
    }
    if long_mode(cpu) && d.hi_type() != 0 {
        return Err(bad);
    }
    if !d.present() {
        return Err(Exception::SegmentNotPresent(sel_code(selector)));
    }
    if long_mode(cpu) && !super::descriptors::canonical(d.base()) {
        return Err(bad);
    }
    Ok(d)
}

fn privileged_system_insn(cpu: &CpuState) -> Result<(), Exception> {
    if !protected(cpu) {
        return Err(Exception::InvalidOpcode);
    }
    if cpu.cpl != 0 {
        return Err(Exception::GeneralProtection(0));
    }
    Ok(())
}

/// LLDT: loads LDTR (a null selector leaves it unusable). 16-byte descriptors in IA-32e
/// mode.
pub fn lldt(m: &mut Machine, cpu: &mut CpuState, selector: u16) -> Result<(), Exception> {
    privileged_system_insn(cpu)?;
    if is_null(selector) {
        cpu.ldtr = Segment {
            selector,
            ..Segment::default()
        };
        return Ok(());
    }
    let d = system_desc(m, cpu, selector, &[sys::LDT])?;
    cpu.ldtr = d.segment(selector);
    Ok(())
}

/// LTR: loads TR from an available TSS descriptor and marks it busy in the GDT. A null
/// selector raises #GP(0).
pub fn ltr(m: &mut Machine, cpu: &mut CpuState, selector: u16) -> Result<(), Exception> {
    privileged_system_insn(cpu)?;
    if is_null(selector) {
        return Err(Exception::GeneralProtection(0));
    }
    let ok: &[u8] = if long_mode(cpu) {
        &[sys::TSS_AVAIL]
    } else {
        &[sys::TSS_AVAIL, sys::TSS16_AVAIL]
    };
    let d = system_desc(m, cpu, selector, ok)?;
    set_type_bit(m, cpu, &d, 2)?;
    let mut tr = d.segment(selector);
    tr.attr |= 2;
    cpu.tr = tr;
    Ok(())
}

/// The descriptor LAR/LSL/VERR/VERW look at, if it exists and is visible at the CPL and the
/// selector's RPL (conforming code segments are always visible). A fault reading the table
/// counts as "not accessible".
fn visible_desc(m: &mut Machine, cpu: &mut CpuState, selector: u16) -> Option<Desc> {
    if !protected(cpu) || is_null(selector) {
        return None;
    }
    let d = read_desc(m, cpu, selector).ok()??;
    let rpl = (selector & 3) as u8;
    if !d.is_conforming() && (d.dpl() < cpu.cpl as u8 || d.dpl() < rpl) {
        return None;
    }
    Some(d)
}

/// LAR: the access rights (descriptor bytes 5..7 as bits 8..23, masked with `0x00F0FF00`),
/// or `None` (ZF = 0) for a null, out-of-table, invisible or unsuitable descriptor. The
/// caller masks to the operand size and raises #UD in real mode.
pub fn lar(m: &mut Machine, cpu: &mut CpuState, selector: u16) -> Option<u32> {
    let d = visible_desc(m, cpu, selector)?;
    if d.is_system() {
        let ok: &[u8] = if long_mode(cpu) {
            &[sys::LDT, sys::TSS_AVAIL, sys::TSS_BUSY, sys::CALL_GATE]
        } else {
            &[1, 2, 3, 4, 5, 9, 0xB, 0xC]
        };
        if !ok.contains(&d.typ()) {
            return None;
        }
    }
    Some((d.lo >> 32) as u32 & 0x00F0_FF00)
}

/// LSL: the byte-granular segment limit, or `None` (ZF = 0).
pub fn lsl(m: &mut Machine, cpu: &mut CpuState, selector: u16) -> Option<u32> {
    let d = visible_desc(m, cpu, selector)?;
    if d.is_system() {
        let ok: &[u8] = if long_mode(cpu) {
            &[sys::LDT, sys::TSS_AVAIL, sys::TSS_BUSY]
        } else {
            &[1, 2, 3, 9, 0xB]
        };
        if !ok.contains(&d.typ()) {
            return None;
        }
    }
    Some(d.limit())
}

/// VERR: the segment is readable at the current privilege.
pub fn verr(m: &mut Machine, cpu: &mut CpuState, selector: u16) -> bool {
    visible_desc(m, cpu, selector).is_some_and(|d| d.is_readable())
}

/// VERW: the segment is writable data at the current privilege.
pub fn verw(m: &mut Machine, cpu: &mut CpuState, selector: u16) -> bool {
    visible_desc(m, cpu, selector).is_some_and(|d| d.is_writable_data())
}

/// Whether `size` bytes at offset `off` lie inside data segment `s` (expand-up or
/// expand-down; an unusable segment contains nothing).
pub fn seg_contains(s: &Segment, off: u64, size: u64) -> bool {
    if s.attr & seg_attr::P == 0 {
        return false;
    }
    let last = off.saturating_add(size.max(1) - 1);
    let expand_down = s.attr & seg_attr::S != 0
        && s.attr & (kind::CODE | kind::EXPAND_DOWN_CONFORMING) as u16 == 4;
    if expand_down {
        let upper: u64 = if s.attr & seg_attr::DB != 0 {
            0xFFFF_FFFF
        } else {
            0xFFFF
        };
        off > s.limit as u64 && last <= upper
    } else {
        last <= s.limit as u64
    }
}

/// The most slots [`Stack::frame`] reads: IRET's RIP, CS, RFLAGS, RSP, SS.
pub(crate) const FRAME_SLOTS: usize = 5;

/// A frame on a [`Stack`], read ahead in one access when [`Stack::frame`] could.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Frame {
    stack: Stack,
    size: u8,
    slots: Option<[u64; FRAME_SLOTS]>,
}

impl Frame {
    /// [`Stack::read`] of `size` bytes at `sp + delta`, from the frame read ahead when it
    /// holds them. The slot counts as read (for DR0-DR3) here, when the instruction reads
    /// it, as with [`Stack::read`]; slots read ahead that the instruction never reads were
    /// RAM on the page of one it does read, so reading them had no effect.
    pub fn read(
        &self,
        m: &mut Machine,
        cpu: &mut CpuState,
        delta: i64,
        size: u8,
    ) -> Result<u64, Exception> {
        let slot = usize::try_from(delta / i64::from(size.max(1))).ok();
        match (self.slots, slot) {
            (Some(slots), Some(i))
                if size == self.size && delta % i64::from(size) == 0 && i < FRAME_SLOTS =>
            {
                if m.debug_accesses.collecting() {
                    let a = self.stack.lin(cpu, delta, u64::from(size))?;
                    m.debug_accesses
                        .record(a, u64::from(size), super::debug::AccessKind::Read);
                }
                Ok(slots[i])
            }
            _ => self.stack.read(m, cpu, delta, size),
        }
    }
}

/// A stack the far-transfer and delivery code pushes to or pops from: SS's hidden part, the
/// full stack pointer and its width (2, 4 or 8 bytes; 8 means 64-bit mode: no base, no
/// limit, canonical addresses). Accesses outside the segment raise `fault`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stack {
    pub ss: Segment,
    pub sp: u64,
    pub width: u8,
    pub privilege: Privilege,
    pub fault: Exception,
}

impl Stack {
    /// The current stack (SS:RSP at the CPL; faults raise #SS(0)).
    pub fn current(cpu: &CpuState) -> Stack {
        let width = if in_64bit(cpu) {
            8
        } else if cpu.seg[seg::SS].attr & seg_attr::DB != 0 {
            4
        } else {
            2
        };
        Stack {
            ss: cpu.seg[seg::SS],
            sp: cpu.gpr[translator::state::reg::RSP],
            width,
            privilege: Privilege::of_cpl(cpu.cpl),
            fault: Exception::StackFault(0),
        }
    }

    fn mask(&self) -> u64 {
        match self.width {
            8 => u64::MAX,
            4 => 0xFFFF_FFFF,
            _ => 0xFFFF,
        }
    }

    /// The stack pointer moved by `delta` bytes, as the register is written back (a 16-bit
    /// stack keeps RSP's upper bits, a 32-bit one zero-extends).
    pub fn moved(&self, delta: i64) -> u64 {
        let v = self.sp.wrapping_add(delta as u64);
        match self.width {
            8 => v,
            4 => v & 0xFFFF_FFFF,
            _ => (self.sp & !0xFFFF) | (v & 0xFFFF),
        }
    }

    /// The linear address of `size` bytes at stack offset `sp + delta`.
    fn lin(&self, cpu: &CpuState, delta: i64, size: u64) -> Result<u64, Exception> {
        let off = self.sp.wrapping_add(delta as u64) & self.mask();
        if self.width == 8 {
            if !super::descriptors::canonical(off)
                || !super::descriptors::canonical(off.wrapping_add(size - 1))
            {
                return Err(self.fault);
            }
            return Ok(off);
        }
        if protected(cpu) && !seg_contains(&self.ss, off, size) {
            return Err(self.fault);
        }
        Ok(self.ss.base.wrapping_add(off) & 0xFFFF_FFFF)
    }

    /// Reads `size` bytes at `sp + delta`.
    pub fn read(
        &self,
        m: &mut Machine,
        cpu: &mut CpuState,
        delta: i64,
        size: u8,
    ) -> Result<u64, Exception> {
        let a = self.lin(cpu, delta, size as u64)?;
        let v = m.read_lin(cpu, a, size as usize, Access::Read, self.privilege)?;
        // Stack reads of IRET, RET FAR and event delivery are data accesses for DR0-DR3.
        m.debug_accesses
            .record(a, u64::from(size), super::debug::AccessKind::Read);
        Ok(v)
    }

    /// The frame of up to [`FRAME_SLOTS`] `size`-byte slots at `sp` that IRET pops, read in
    /// one access when it is RAM within one page and the segment (the common case). Reading
    /// it changes nothing the slot-by-slot reads would not: see [`Frame::read`].
    pub fn frame(&self, m: &mut Machine, cpu: &mut CpuState, size: u8) -> Frame {
        let mut frame = Frame {
            stack: *self,
            size,
            slots: None,
        };
        let n = FRAME_SLOTS as i64 * i64::from(size);
        let (Ok(first), Ok(last)) = (
            self.lin(cpu, 0, u64::from(size)),
            self.lin(cpu, n - i64::from(size), u64::from(size)),
        ) else {
            return frame;
        };
        let mut buf = [0u8; 8 * FRAME_SLOTS];
        let buf = &mut buf[..n as usize];
        if last.checked_sub(first) != Some(n as u64 - u64::from(size))
            || m.read_lin_ram(cpu, first, buf, self.privilege).is_none()
        {
            return frame;
        }
        let mut slots = [0u64; FRAME_SLOTS];
        for (v, b) in slots.iter_mut().zip(buf.chunks(usize::from(size))) {
            let mut le = [0u8; 8];
            le[..b.len()].copy_from_slice(b);
            *v = u64::from_le_bytes(le);
        }
        frame.slots = Some(slots);
        frame
    }

    /// Pushes `slots` (first element pushed first, each `size` bytes) below `sp`, checking
    /// every slot's limit and writability before writing any; returns the new stack pointer.
    pub fn push(
        &self,
        m: &mut Machine,
        cpu: &mut CpuState,
        slots: &[u64],
        size: u8,
    ) -> Result<u64, Exception> {
        let mut addrs = Vec::with_capacity(slots.len());
        for i in 0..slots.len() {
            addrs.push(self.lin(cpu, -((i as i64 + 1) * size as i64), size as u64)?);
        }
        if self.push_in_one_page(m, cpu, slots, size, &addrs) {
            return Ok(self.moved(-(slots.len() as i64 * size as i64)));
        }
        for &a in &addrs {
            m.read_lin(cpu, a, size as usize, Access::Write, self.privilege)?;
        }
        for (&a, &v) in addrs.iter().zip(slots) {
            m.write_lin(cpu, a, size as usize, v, self.privilege)?;
            // Frame pushes of event delivery and far calls are data writes for DR0-DR3.
            m.debug_accesses
                .record(a, u64::from(size), super::debug::AccessKind::Write);
        }
        Ok(self.moved(-(slots.len() as i64 * size as i64)))
    }

    /// The common case of [`Stack::push`] in one write: 8-byte slots at consecutive
    /// descending addresses `addrs` within one page. False (nothing written) if they are not,
    /// or if the write would fault: the slot-by-slot path then raises the exact fault.
    fn push_in_one_page(
        &self,
        m: &mut Machine,
        cpu: &mut CpuState,
        slots: &[u64],
        size: u8,
        addrs: &[u64],
    ) -> bool {
        const MAX: usize = 8;
        let (Some(&high), Some(&low)) = (addrs.first(), addrs.last()) else {
            return false;
        };
        let n = slots.len();
        let contiguous = size == 8
            && n <= MAX
            && high.checked_sub(low) == Some(8 * (n as u64 - 1))
            && high
                .checked_add(7)
                .is_some_and(|end| end >> 12 == low >> 12);
        if !contiguous {
            return false;
        }
        let mut buf = [0u8; 8 * MAX];
        // The first slot is pushed first: it is at the highest address.
        for (i, v) in slots.iter().rev().enumerate() {
            buf[8 * i..8 * i + 8].copy_from_slice(&v.to_le_bytes());
        }
        if m.write_lin_bytes(cpu, low, &buf[..8 * n], self.privilege)
            .is_err()
        {
            return false;
        }
        for &a in addrs {
            // Frame pushes of event delivery and far calls are data writes for DR0-DR3.
            m.debug_accesses
                .record(a, 8, super::debug::AccessKind::Write);
        }
        true
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::devices::SerialSink;
    use crate::system::mode::reset_protected_flat32;

    /// GDT at 0x1000 for the tests of this module and its siblings.
    pub const GDT: u64 = 0x1000;

    /// A code/data descriptor: `access` = byte 5, `flags` = high nibble of byte 6.
    pub fn seg_desc(base: u32, limit: u32, access: u8, flags: u8) -> u64 {
        let (b, l) = (base as u64, limit as u64);
        (l & 0xFFFF)
            | ((b & 0xFF_FFFF) << 16)
            | ((access as u64) << 40)
            | (((l >> 16) & 0xF) << 48)
            | (((flags & 0xF) as u64) << 52)
            | (((b >> 24) & 0xFF) << 56)
    }

    /// Writes descriptor `index` of the GDT.
    pub fn put(m: &mut Machine, index: u64, v: u64) {
        m.write_virt(GDT + index * 8, 8, v).unwrap();
    }

    /// A 32-bit protected-mode machine with a GDT: 1 = code0, 2 = data0, 3 = code3 (DPL 3),
    /// 4 = data3, 5 = execute-only code0, 6 = not-present data0, 7 = read-only data0,
    /// 8 = conforming readable code (DPL 0).
    pub fn setup32() -> (Machine, CpuState) {
        let mut m = Machine::new(crate::memory::MIN_RAM, SerialSink::Capture).unwrap();
        let mut cpu = CpuState::default();
        reset_protected_flat32(&mut cpu);
        cpu.gdtr.base = GDT;
        cpu.gdtr.limit = 0x200 - 1;
        put(&mut m, 1, seg_desc(0, 0xFFFFF, 0x9A, 0xC));
        put(&mut m, 2, seg_desc(0, 0xFFFFF, 0x92, 0xC));
        put(&mut m, 3, seg_desc(0, 0xFFFFF, 0xFA, 0xC));
        put(&mut m, 4, seg_desc(0, 0xFFFFF, 0xF2, 0xC));
        put(&mut m, 5, seg_desc(0, 0xFFFFF, 0x98, 0xC));
        put(&mut m, 6, seg_desc(0, 0xFFFFF, 0x12, 0xC));
        put(&mut m, 7, seg_desc(0x1234_0000, 0xFF, 0x90, 0x4));
        put(&mut m, 8, seg_desc(0, 0xFFFFF, 0x9E, 0xC));
        (m, cpu)
    }

    const GP: fn(u16) -> Exception = Exception::GeneralProtection;

    #[test]
    fn data_segment_loads_and_sets_accessed() {
        let (mut m, mut cpu) = setup32();
        assert_eq!(load_seg(&mut m, &mut cpu, seg::DS, 0x38), Ok(()));
        assert_eq!(cpu.seg[seg::DS].base, 0x1234_0000);
        assert_eq!(cpu.seg[seg::DS].limit, 0xFF);
        assert_eq!(cpu.seg[seg::DS].attr, 0x4091, "accessed");
        assert_eq!(m.read_virt(GDT + 7 * 8 + 5, 1, Access::Read), Ok(0x91));
        // Null DS/ES/FS/GS are fine and unusable.
        assert_eq!(load_seg(&mut m, &mut cpu, seg::FS, 3), Ok(()));
        assert_eq!(cpu.seg[seg::FS], null_segment(3));
        // Conforming readable code into DS at any RPL.
        assert_eq!(load_seg(&mut m, &mut cpu, seg::ES, 0x43), Ok(()));
    }

    #[test]
    fn bad_loads_fault_with_the_selector_and_change_nothing() {
        let (mut m, mut cpu) = setup32();
        let before = cpu.seg;
        assert_eq!(load_seg(&mut m, &mut cpu, seg::DS, 0x200), Err(GP(0x200)));
        assert_eq!(load_seg(&mut m, &mut cpu, seg::DS, 0x1FB), Err(GP(0x1F8)));
        assert_eq!(
            load_seg(&mut m, &mut cpu, seg::DS, 0x2B),
            Err(GP(0x28)),
            "exec-only"
        );
        assert_eq!(
            load_seg(&mut m, &mut cpu, seg::DS, 0x30),
            Err(Exception::SegmentNotPresent(0x30))
        );
        assert_eq!(load_seg(&mut m, &mut cpu, seg::SS, 0x00), Err(GP(0)));
        assert_eq!(
            load_seg(&mut m, &mut cpu, seg::SS, 0x13),
            Err(GP(0x10)),
            "RPL"
        );
        assert_eq!(
            load_seg(&mut m, &mut cpu, seg::SS, 0x20),
            Err(GP(0x20)),
            "DPL"
        );
        assert_eq!(
            load_seg(&mut m, &mut cpu, seg::SS, 0x38),
            Err(GP(0x38)),
            "RO"
        );
        assert_eq!(
            load_seg(&mut m, &mut cpu, seg::SS, 0x08),
            Err(GP(0x08)),
            "code"
        );
        assert_eq!(
            load_seg(&mut m, &mut cpu, seg::CS, 0x08),
            Err(Exception::InvalidOpcode)
        );
        // LDT selector with no LDT.
        assert_eq!(load_seg(&mut m, &mut cpu, seg::DS, 0x0C), Err(GP(0x0C)));
        put(&mut m, 6, seg_desc(0, 0xFFFFF, 0x12, 0xC));
        assert_eq!(
            load_seg(&mut m, &mut cpu, seg::SS, 0x30),
            Err(Exception::StackFault(0x30))
        );
        cpu.cpl = 3;
        assert_eq!(
            load_seg(&mut m, &mut cpu, seg::DS, 0x10),
            Err(GP(0x10)),
            "DPL < CPL"
        );
        assert_eq!(load_seg(&mut m, &mut cpu, seg::DS, 0x23), Ok(()));
        assert_eq!(load_seg(&mut m, &mut cpu, seg::SS, 0x23), Ok(()));
        cpu.cpl = 0;
        assert_eq!(
            load_seg(&mut m, &mut cpu, seg::DS, 0x13),
            Err(GP(0x10)),
            "RPL > DPL"
        );
        cpu.seg[seg::DS] = before[seg::DS];
        cpu.seg[seg::SS] = before[seg::SS];
        assert_eq!(cpu.seg, before);
    }

    #[test]
    fn null_ss_in_64bit_mode_below_cpl3() {
        let (mut m, mut cpu) = setup32();
        crate::system::mode::reset_long_flat64(&mut cpu);
        cpu.gdtr.base = GDT;
        cpu.gdtr.limit = 0x1FF;
        assert_eq!(load_seg(&mut m, &mut cpu, seg::SS, 0), Ok(()));
        assert_eq!(load_seg(&mut m, &mut cpu, seg::SS, 1), Err(GP(0)));
        cpu.cpl = 3;
        assert_eq!(load_seg(&mut m, &mut cpu, seg::SS, 3), Err(GP(0)));
    }

    #[test]
    fn real_mode_loads_shift_the_selector() {
        let (mut m, mut cpu) = setup32();
        cpu.cr0 = 0;
        assert_eq!(load_seg(&mut m, &mut cpu, seg::ES, 0xB800), Ok(()));
        assert_eq!(cpu.seg[seg::ES].base, 0xB8000);
    }

    #[test]
    fn lldt_and_ltr() {
        let (mut m, mut cpu) = setup32();
        put(&mut m, 9, seg_desc(0x5000, 0x67, 0x89, 0));
        put(&mut m, 10, seg_desc(0x6000, 0xFF, 0x82, 0));
        assert_eq!(ltr(&mut m, &mut cpu, 0x48), Ok(()));
        assert_eq!(cpu.tr.base, 0x5000);
        assert_eq!(cpu.tr.attr & 0xF, 0xB);
        assert_eq!(m.read_virt(GDT + 9 * 8 + 5, 1, Access::Read), Ok(0x8B));
        assert_eq!(ltr(&mut m, &mut cpu, 0x48), Err(GP(0x48)), "busy");
        assert_eq!(ltr(&mut m, &mut cpu, 0), Err(GP(0)));
        assert_eq!(ltr(&mut m, &mut cpu, 0x50), Err(GP(0x50)));
        assert_eq!(lldt(&mut m, &mut cpu, 0x50), Ok(()));
        assert_eq!((cpu.ldtr.base, cpu.ldtr.limit), (0x6000, 0xFF));
        // A descriptor in the LDT.
        m.write_virt(0x6008, 8, seg_desc(0x7000, 0xFFF, 0x92, 0x4))
            .unwrap();
        assert_eq!(load_seg(&mut m, &mut cpu, seg::GS, 0x0C), Ok(()));
        assert_eq!(cpu.seg[seg::GS].base, 0x7000);
        assert_eq!(lldt(&mut m, &mut cpu, 0x54), Err(GP(0x54)), "TI");
        assert_eq!(lldt(&mut m, &mut cpu, 0x10), Err(GP(0x10)));
        cpu.cpl = 3;
        assert_eq!(lldt(&mut m, &mut cpu, 0), Err(GP(0)));
    }

    #[test]
    fn ltr_and_lldt_in_long_mode_read_16_bytes() {
        let (mut m, mut cpu) = setup32();
        crate::system::mode::reset_long_flat64(&mut cpu);
        cpu.gdtr.base = GDT;
        cpu.gdtr.limit = 0x1FF;
        put(&mut m, 9, seg_desc(0x5000, 0x67, 0x89, 0));
        put(&mut m, 10, 0xFFFF_8000);
        assert_eq!(ltr(&mut m, &mut cpu, 0x48), Ok(()));
        assert_eq!(cpu.tr.base, 0xFFFF_8000_0000_5000);
        put(&mut m, 11, seg_desc(0x5000, 0x67, 0x89, 0));
        put(&mut m, 12, 0x1_0000);
        assert_eq!(ltr(&mut m, &mut cpu, 0x58), Err(GP(0x58)), "non-canonical");
        cpu.gdtr.limit = 0x5F;
        assert_eq!(
            ltr(&mut m, &mut cpu, 0x58),
            Err(GP(0x58)),
            "upper half past limit"
        );
    }

    #[test]
    fn lar_lsl_verr_verw() {
        let (mut m, mut cpu) = setup32();
        assert_eq!(lar(&mut m, &mut cpu, 0x08), Some(0x00C0_9A00));
        assert_eq!(lsl(&mut m, &mut cpu, 0x08), Some(0xFFFF_FFFF));
        assert_eq!(lsl(&mut m, &mut cpu, 0x38), Some(0xFF));
        assert_eq!(lar(&mut m, &mut cpu, 0), None);
        assert_eq!(lar(&mut m, &mut cpu, 0x200), None);
        assert!(verr(&mut m, &mut cpu, 0x08) && !verw(&mut m, &mut cpu, 0x08));
        assert!(!verr(&mut m, &mut cpu, 0x28), "execute-only");
        assert!(verw(&mut m, &mut cpu, 0x10) && !verw(&mut m, &mut cpu, 0x38));
        // Not-present segments still answer LAR.
        assert_eq!(lar(&mut m, &mut cpu, 0x30), Some(0x00C0_1200));
        cpu.cpl = 3;
        assert_eq!(lar(&mut m, &mut cpu, 0x10), None, "DPL < CPL");
        assert_eq!(lar(&mut m, &mut cpu, 0x43), Some(0x00C0_9E00), "conforming");
        assert!(verw(&mut m, &mut cpu, 0x23));
        cpu.cpl = 0;
        assert!(!verw(&mut m, &mut cpu, 0x13), "RPL > DPL");
        put(&mut m, 9, seg_desc(0x5000, 0x67, 0x89, 0));
        assert_eq!(lsl(&mut m, &mut cpu, 0x48), Some(0x67));
        put(&mut m, 9, seg_desc(0x5000, 0x67, 0x8E, 0));
        assert_eq!(lsl(&mut m, &mut cpu, 0x48), None, "interrupt gate");
        assert_eq!(lar(&mut m, &mut cpu, 0x48), None);
    }

    #[test]
    fn expand_down_limits() {
        let s = Segment {
            selector: 0x10,
            attr: seg_attr::P | seg_attr::S | 0x6,
            limit: 0xFFF,
            base: 0,
        };
        assert!(!seg_contains(&s, 0xFFF, 1));
        assert!(seg_contains(&s, 0x1000, 4));
        assert!(!seg_contains(&s, 0xFFFE, 4), "16-bit upper bound");
        assert!(!seg_contains(&Segment::flat(0x10, 0xC093), u64::MAX, 8));
    }

    /// The one-write push and the slot-by-slot one leave the same frame: within a page and
    /// across a page boundary (the latter takes the slot-by-slot path).
    #[test]
    fn frame_pushes_within_and_across_a_page_agree() {
        let (mut m, mut cpu) = crate::system::delivery::tests::setup64();
        let slots = [0x11, 0x22, 0x33, 0x44, 0x55];
        for sp in [0x9000u64, 0x8010] {
            cpu.gpr[translator::state::reg::RSP] = sp;
            let st = Stack::current(&cpu);
            assert_eq!(st.push(&mut m, &mut cpu, &slots, 8), Ok(sp - 40));
            let sup = Privilege::Supervisor;
            for (i, &v) in slots.iter().enumerate() {
                let a = sp - 8 * (i as u64 + 1);
                let got = m.read_lin(&mut cpu, a, 8, Access::Read, sup);
                assert_eq!(got, Ok(v), "sp {sp:#x} slot {i}");
            }
        }
    }
}
