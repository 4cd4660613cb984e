//! GDT/LDT/IDT/TSS descriptor formats and their reads from guest memory.
//!
//! Invariants:
//! - Every table access is bounds-checked against the table's limit (GDTR, the LDTR's hidden
//!   limit, IDTR, TR's hidden limit) before memory is touched; a selector past the limit gives
//!   `None` and the caller raises the architectural fault with its own error code.
//! - Guest descriptor contents are hostile: decoding never panics and never overflows; every
//!   field is extracted with masks and shifts of the raw 64-bit words.
//! - Descriptor, TSS and IDT reads and the accessed/busy bit writes are implicit supervisor
//!   accesses ([`Privilege::Supervisor`]); linear addresses wrap at 4 GiB outside IA-32e mode.

use translator::state::{cr, seg_attr};
use translator::state::{CpuState, Segment};
use translator::Exception;

use crate::machine::{Machine, Privilege};
use crate::memory::Access;

/// Code/data (S = 1) descriptor type bits (the low nibble of byte 5).
pub mod kind {
    /// Accessed.
    pub const ACCESSED: u8 = 1;
    /// Data: writable. Code: readable.
    pub const WRITABLE_READABLE: u8 = 2;
    /// Data: expand-down. Code: conforming.
    pub const EXPAND_DOWN_CONFORMING: u8 = 4;
    /// Code (else data).
    pub const CODE: u8 = 8;
}

/// System descriptor types (S = 0). Values shared by legacy and IA-32e mode mean the 64-bit
/// form in IA-32e mode (see [`system_type_valid`]).
pub mod sys {
    /// 16-bit TSS, available.
    pub const TSS16_AVAIL: u8 = 1;
    /// LDT.
    pub const LDT: u8 = 2;
    /// 16-bit TSS, busy.
    pub const TSS16_BUSY: u8 = 3;
    /// 16-bit call gate.
    pub const CALL_GATE16: u8 = 4;
    /// Task gate.
    pub const TASK_GATE: u8 = 5;
    /// 16-bit interrupt gate.
    pub const INT_GATE16: u8 = 6;
    /// 16-bit trap gate.
    pub const TRAP_GATE16: u8 = 7;
    /// 32-bit (64-bit in IA-32e mode) TSS, available.
    pub const TSS_AVAIL: u8 = 9;
    /// 32-bit (64-bit) TSS, busy.
    pub const TSS_BUSY: u8 = 0xB;
    /// 32-bit (64-bit) call gate.
    pub const CALL_GATE: u8 = 0xC;
    /// 32-bit (64-bit) interrupt gate.
    pub const INT_GATE: u8 = 0xE;
    /// 32-bit (64-bit) trap gate.
    pub const TRAP_GATE: u8 = 0xF;
}

/// Whether system type `t` exists in the current mode (IA-32e mode keeps only the LDT, the
/// 64-bit TSS and the 64-bit gates).
pub fn system_type_valid(cpu: &CpuState, t: u8) -> bool {
    if long_mode(cpu) {
        matches!(
            t,
            sys::LDT
                | sys::TSS_AVAIL
                | sys::TSS_BUSY
                | sys::CALL_GATE
                | sys::INT_GATE
                | sys::TRAP_GATE
        )
    } else {
        t != 0 && t != 8 && t != 0xA && t != 0xD
    }
}

/// IA-32e mode is active (EFER.LMA).
pub fn long_mode(cpu: &CpuState) -> bool {
    cpu.efer & cr::EFER_LMA != 0
}

/// 64-bit mode: IA-32e mode with a 64-bit code segment.
pub fn in_64bit(cpu: &CpuState) -> bool {
    long_mode(cpu) && cpu.seg[translator::state::seg::CS].attr & seg_attr::L != 0
}

/// Protected mode (CR0.PE).
pub fn protected(cpu: &CpuState) -> bool {
    cpu.cr0 & cr::CR0_PE != 0
}

/// Whether `a` is canonical (48-bit virtual addresses).
pub fn canonical(a: u64) -> bool {
    (((a << 16) as i64) >> 16) as u64 == a
}

/// A linear address as the current mode forms it (wrapping at 4 GiB outside IA-32e mode).
pub fn linear(cpu: &CpuState, a: u64) -> u64 {
    if long_mode(cpu) {
        a
    } else {
        a & 0xFFFF_FFFF
    }
}

/// The selector's table-index-and-TI bits as an error code (RPL cleared).
pub const fn sel_code(selector: u16) -> u16 {
    selector & 0xFFFC
}

/// A selector with a null index in the GDT (RPL ignored).
pub const fn is_null(selector: u16) -> bool {
    selector & 0xFFFC == 0
}

/// A descriptor as read from a GDT/LDT/IDT: the low quadword and, for 16-byte IA-32e system
/// descriptors and gates, the high one (zero otherwise).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Desc {
    /// Bytes 0..8.
    pub lo: u64,
    /// Bytes 8..16 (16-byte descriptors only).
    pub hi: u64,
    /// Linear address of byte 0 (for the accessed and busy bits).
    pub addr: u64,
}

impl Desc {
    /// The [`Segment::attr`] form of the attributes (byte 5, flags nibble of byte 6).
    pub fn attr(&self) -> u16 {
        (((self.lo >> 40) & 0xFF) | (((self.lo >> 52) & 0xF) << 12)) as u16
    }
    /// The 4-bit type field.
    pub fn typ(&self) -> u8 {
        ((self.lo >> 40) & 0xF) as u8
    }
    /// A system descriptor or gate (S = 0).
    pub fn is_system(&self) -> bool {
        self.lo & (1 << 44) == 0
    }
    /// A code segment.
    pub fn is_code(&self) -> bool {
        !self.is_system() && self.typ() & kind::CODE != 0
    }
    /// A data segment.
    pub fn is_data(&self) -> bool {
        !self.is_system() && self.typ() & kind::CODE == 0
    }
    /// A conforming code segment.
    pub fn is_conforming(&self) -> bool {
        self.is_code() && self.typ() & kind::EXPAND_DOWN_CONFORMING != 0
    }
    /// A readable code or a data segment.
    pub fn is_readable(&self) -> bool {
        self.is_data() || (self.is_code() && self.typ() & kind::WRITABLE_READABLE != 0)
    }
    /// A writable data segment.
    pub fn is_writable_data(&self) -> bool {
        self.is_data() && self.typ() & kind::WRITABLE_READABLE != 0
    }
    /// Descriptor privilege level.
    pub fn dpl(&self) -> u8 {
        ((self.lo >> 45) & 3) as u8
    }
    /// Present.
    pub fn present(&self) -> bool {
        self.lo & (1 << 47) != 0
    }
    /// 64-bit code (L = 1).
    pub fn long(&self) -> bool {
        self.lo & (1 << 53) != 0
    }
    /// A 64-bit code segment (L = 1, D = 0), the only kind IA-32e gates may target.
    pub fn is_code64(&self) -> bool {
        self.is_code() && self.long() && !self.db()
    }
    /// D/B bit.
    pub fn db(&self) -> bool {
        self.lo & (1 << 54) != 0
    }
    /// Base address; 64 bits for 16-byte system descriptors.
    pub fn base(&self) -> u64 {
        let b = ((self.lo >> 16) & 0xFF_FFFF) | (((self.lo >> 56) & 0xFF) << 24);
        b | ((self.hi & 0xFFFF_FFFF) << 32)
    }
    /// Byte-granular limit (scaled by G).
    pub fn limit(&self) -> u32 {
        let raw = ((self.lo & 0xFFFF) | ((self.lo >> 32) & 0xF_0000)) as u32;
        if self.lo & (1 << 55) != 0 {
            (raw << 12) | 0xFFF
        } else {
            raw
        }
    }
    /// The segment register contents this descriptor loads with `selector`.
    pub fn segment(&self, selector: u16) -> Segment {
        Segment {
            selector,
            attr: self.attr(),
            limit: self.limit(),
            base: self.base(),
        }
    }
    /// Gate: the target code-segment selector.
    pub fn gate_selector(&self) -> u16 {
        (self.lo >> 16) as u16
    }
    /// Gate: the target offset (16-bit gates: 16 bits; 64-bit gates: 64 bits).
    pub fn gate_offset(&self) -> u64 {
        (self.lo & 0xFFFF) | ((self.lo >> 32) & 0xFFFF_0000) | ((self.hi & 0xFFFF_FFFF) << 32)
    }
    /// Call gate: the parameter count (legacy gates).
    pub fn gate_params(&self) -> u8 {
        ((self.lo >> 32) & 0x1F) as u8
    }
    /// IA-32e interrupt/trap gate: the IST index (0 = none).
    pub fn gate_ist(&self) -> u8 {
        ((self.lo >> 32) & 7) as u8
    }
    /// The type field of the high quadword of a 16-byte descriptor (must be zero).
    pub fn hi_type(&self) -> u8 {
        ((self.hi >> 40) & 0x1F) as u8
    }
}

/// The linear address of `len` bytes of the descriptor `selector` names, or `None` when
/// they pass the table's limit (or TI = 1 and the LDTR is unusable).
pub fn desc_addr(cpu: &CpuState, selector: u16, len: u64) -> Option<u64> {
    let (base, limit) = if selector & 4 != 0 {
        if cpu.ldtr.attr & seg_attr::P == 0 || is_null(cpu.ldtr.selector) {
            return None;
        }
        (cpu.ldtr.base, cpu.ldtr.limit as u64)
    } else {
        (cpu.gdtr.base, cpu.gdtr.limit)
    };
    let off = (selector & 0xFFF8) as u64;
    if off + len - 1 > limit {
        return None;
    }
    Some(linear(cpu, base.wrapping_add(off)))
}

fn read_u64(m: &mut Machine, cpu: &mut CpuState, lin: u64) -> Result<u64, Exception> {
    m.read_lin(cpu, lin, 8, Access::Read, Privilege::Supervisor)
}

/// Reads the 8-byte descriptor `selector` names. `Ok(None)` when it passes the table limit.
pub fn read_desc(
    m: &mut Machine,
    cpu: &mut CpuState,
    selector: u16,
) -> Result<Option<Desc>, Exception> {
    let Some(addr) = desc_addr(cpu, selector, 8) else {
        return Ok(None);
    };
    let lo = read_u64(m, cpu, addr)?;
    Ok(Some(Desc { lo, hi: 0, addr }))
}

/// Reads a descriptor that is 16 bytes long in IA-32e mode when it is a system descriptor
/// (LDT, TSS, call gate); the high quadword is read only then. `Ok(None)` past the limit.
pub fn read_desc_wide(
    m: &mut Machine,
    cpu: &mut CpuState,
    selector: u16,
) -> Result<Option<Desc>, Exception> {
    let Some(mut d) = read_desc(m, cpu, selector)? else {
        return Ok(None);
    };
    if long_mode(cpu) && d.is_system() {
        let Some(addr) = desc_addr(cpu, selector, 16) else {
            return Ok(None);
        };
        d.hi = read_u64(m, cpu, linear(cpu, addr.wrapping_add(8)))?;
    }
    Ok(Some(d))
}

/// Reads IDT entry `vector` (8 bytes, or 16 in IA-32e mode). `Ok(None)` past the IDT limit.
pub fn read_idt(
    m: &mut Machine,
    cpu: &mut CpuState,
    vector: u8,
) -> Result<Option<Desc>, Exception> {
    let size: u64 = if long_mode(cpu) { 16 } else { 8 };
    let off = vector as u64 * size;
    if off + size - 1 > cpu.idtr.limit {
        return Ok(None);
    }
    let addr = linear(cpu, cpu.idtr.base.wrapping_add(off));
    // A 16-byte gate in one access when it is RAM on one page; else quadword by quadword.
    let mut gate = [0u8; 16];
    if size == 16
        && m.read_lin_ram(cpu, addr, &mut gate, Privilege::Supervisor)
            .is_some()
    {
        let [lo, hi] =
            [0, 8].map(|i| u64::from_le_bytes(gate[i..i + 8].try_into().unwrap_or_default()));
        return Ok(Some(Desc { lo, hi, addr }));
    }
    let lo = read_u64(m, cpu, addr)?;
    let hi = if size == 16 {
        read_u64(m, cpu, linear(cpu, addr.wrapping_add(8)))?
    } else {
        0
    };
    Ok(Some(Desc { lo, hi, addr }))
}

/// Sets bit `bit` of the descriptor's type byte (byte 5) in memory if it is clear: the
/// accessed bit (1) of a code/data descriptor or the busy bit (2) of a TSS descriptor.
pub fn set_type_bit(
    m: &mut Machine,
    cpu: &mut CpuState,
    d: &Desc,
    bit: u8,
) -> Result<(), Exception> {
    let byte = ((d.lo >> 40) & 0xFF) as u8;
    if byte & bit != 0 {
        return Ok(());
    }
    let at = linear(cpu, d.addr.wrapping_add(5));
    m.write_lin(cpu, at, 1, (byte | bit) as u64, Privilege::Supervisor)
}

/// Reads `size` bytes at `offset` in the current TSS, checking TR's limit; past the limit
/// (or with no usable TR) raises #TS(TR selector) with `ext` added.
pub fn read_tss(
    m: &mut Machine,
    cpu: &mut CpuState,
    offset: u64,
    size: usize,
    ext: u16,
) -> Result<u64, Exception> {
    let tr = cpu.tr;
    let fault = Exception::InvalidTss(sel_code(tr.selector) | ext);
    if tr.attr & seg_attr::P == 0 || offset + size as u64 - 1 > tr.limit as u64 {
        return Err(fault);
    }
    let lin = linear(cpu, tr.base.wrapping_add(offset));
    m.read_lin(cpu, lin, size, Access::Read, Privilege::Supervisor)
}

/// Whether TR holds a 16-bit TSS (else 32-bit or, in IA-32e mode, 64-bit).
pub fn tss_is_16bit(cpu: &CpuState) -> bool {
    matches!(
        (cpu.tr.attr & seg_attr::TYPE) as u8,
        sys::TSS16_AVAIL | sys::TSS16_BUSY
    )
}

/// The inner-privilege stack of a legacy TSS for `dpl` (0..=2): `(ss, esp)`.
pub fn tss_legacy_stack(
    m: &mut Machine,
    cpu: &mut CpuState,
    dpl: u8,
    ext: u16,
) -> Result<(u16, u64), Exception> {
    let n = dpl as u64;
    if tss_is_16bit(cpu) {
        let sp = read_tss(m, cpu, 2 + 4 * n, 2, ext)?;
        let ss = read_tss(m, cpu, 4 + 4 * n, 2, ext)?;
        Ok((ss as u16, sp))
    } else {
        let esp = read_tss(m, cpu, 4 + 8 * n, 4, ext)?;
        let ss = read_tss(m, cpu, 8 + 8 * n, 2, ext)?;
        Ok((ss as u16, esp))
    }
}

/// RSPn (`ist == 0`, n = `dpl`) or ISTn (`ist` 1..=7) of the 64-bit TSS.
pub fn tss64_stack(
    m: &mut Machine,
    cpu: &mut CpuState,
    dpl: u8,
    ist: u8,
    ext: u16,
) -> Result<u64, Exception> {
    let offset = if ist != 0 {
        0x24 + 8 * (ist as u64 - 1)
    } else {
        4 + 8 * dpl as u64
    };
    read_tss(m, cpu, offset, 8, ext)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_flat_code_descriptor() {
        let d = Desc {
            lo: 0x00CF_9A00_0000_FFFF,
            hi: 0,
            addr: 0,
        };
        assert!(d.is_code() && d.is_readable() && !d.is_conforming());
        assert_eq!((d.base(), d.limit(), d.dpl()), (0, 0xFFFF_FFFF, 0));
        assert_eq!(d.attr(), 0xC09A);
        assert!(d.present() && d.db() && !d.long());
    }

    #[test]
    fn decodes_a_64bit_gate_and_tss() {
        let gate = Desc {
            lo: 0x1234_EE03_0008_5678,
            hi: 0xFFFF_FFFF,
            addr: 0,
        };
        assert_eq!(gate.gate_offset(), 0xFFFF_FFFF_1234_5678);
        assert_eq!(
            (gate.gate_selector(), gate.gate_ist(), gate.dpl()),
            (8, 3, 3)
        );
        assert_eq!(gate.typ(), sys::INT_GATE);
        let tss = Desc {
            lo: 0xAA00_8900_BBBB_0067,
            hi: 0x1,
            addr: 0,
        };
        assert_eq!((tss.base(), tss.limit()), (0x1_AA00_BBBB, 0x67));
    }

    #[test]
    fn hostile_values_do_not_panic() {
        let d = Desc {
            lo: u64::MAX,
            hi: u64::MAX,
            addr: u64::MAX,
        };
        let _ = (d.base(), d.limit(), d.gate_offset(), d.attr(), d.hi_type());
        let mut cpu = CpuState::default();
        cpu.gdtr.limit = u64::MAX;
        cpu.gdtr.base = u64::MAX;
        assert!(desc_addr(&cpu, 0xFFF8, 16).is_some());
        assert!(desc_addr(&cpu, 0xFFFF, 16).is_none(), "no LDT");
        assert!(canonical(0xFFFF_8000_0000_0000) && !canonical(1 << 47));
    }
}
